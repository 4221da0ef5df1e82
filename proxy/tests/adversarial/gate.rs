//! The egress gate on its own, as WASM egress uses it (R-NET-10): an allowed
//! target is connected and audited with its byte counts once the connection
//! closes; a refused target is audited as refused and never connected.
//! Every refused target has a listener behind it, and the connector records
//! every address it is asked for, so a gate that connected anyway is caught
//! twice.

use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderMap, HeaderValue};
use protocol::domain::DomainSet;
use proxy::target::parse_authority;
use proxy::{
    Cidr, Denial, DenySet, Gate, JOB_HEADER, MemorySink, Meter, OpenError, Policy, Scheme,
    StaticResolver, Verdict,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

struct Setup {
    gate: Gate,
    audit: MemorySink,
    connector: Arc<LoopbackOnly>,
}

/// A gate for `.allowed.test` with loopback's first address allowed as a
/// range, names resolved by `resolve`, plain HTTP and HTTPS open to `ports`.
fn setup(resolve: &[(&str, &str)], deny: DenySet, ports: Vec<u16>) -> Setup {
    let mut resolver = StaticResolver::new();
    for (name, ip) in resolve {
        resolver.insert(*name, ip.parse().unwrap());
    }
    let policy = Policy::new(
        DomainSet::parse([".allowed.test"]).unwrap(),
        deny,
        vec![Cidr::parse("127.0.0.1/32").unwrap()],
        Arc::new(resolver),
        Duration::from_secs(5),
    )
    .with_ports(ports.clone(), ports);
    let audit = MemorySink::new();
    let connector = Arc::new(LoopbackOnly::default());
    let gate = Gate::builder(JOB, policy)
        .connector(connector.clone())
        .audit(Arc::new(audit.clone()))
        .build()
        .unwrap();
    Setup {
        gate,
        audit,
        connector,
    }
}

const WAIT: Duration = Duration::from_secs(5);

/// Whether a denial is the one a case expects.
type Expected = fn(&Denial) -> bool;

#[tokio::test]
async fn r_net_10_an_allowed_target_is_connected_and_audited_with_its_bytes() {
    let echo = Upstream::echo("127.0.0.1").await;
    let s = setup(
        &[("api.allowed.test", "127.0.0.1")],
        DenySet::new(),
        vec![echo.port()],
    );
    let target = parse_authority(&format!("api.allowed.test:{}", echo.port()), None).unwrap();
    let mut conn = s
        .gate
        .open(s.gate.record(Meter::new()), &target, Scheme::Https, WAIT)
        .await
        .expect("allowed");
    assert_eq!(conn.peer(), echo.addr);
    conn.write_all(b"hello, world").await.unwrap();
    let mut back = [0u8; 12];
    conn.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"hello, world");

    // The record waits for the connection: its counts are not final yet.
    s.gate.settled(Duration::from_millis(100)).await;
    assert!(s.audit.records().is_empty(), "{:?}", s.audit.records());
    drop(conn);
    s.gate.settled(WAIT).await;
    let records = s.audit.records();
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r.job, JOB);
    assert_eq!(r.decision, Verdict::Allow);
    assert_eq!(r.host, "api.allowed.test");
    assert_eq!(r.port, Some(echo.port()));
    assert_eq!(r.ip, Some(echo.addr.ip()));
    assert_eq!((r.bytes_up, r.bytes_down), (12, 12));
    assert_eq!(r.reason, None);
    assert_eq!(s.connector.attempts(), [echo.addr]);
    assert_eq!(echo.hits(), 1);
}

#[tokio::test]
async fn r_net_10_an_allowed_target_that_does_not_answer_is_on_record() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = setup(
        &[("api.allowed.test", "127.0.0.1")],
        DenySet::new(),
        vec![port],
    );
    let target = parse_authority(&format!("api.allowed.test:{port}"), None).unwrap();
    let refused = s
        .gate
        .open(s.gate.record(Meter::new()), &target, Scheme::Http, WAIT)
        .await;
    assert!(
        matches!(&refused, Err(OpenError::Unreachable(_))),
        "{:?}",
        refused.map(|c| c.peer())
    );
    s.gate.settled(WAIT).await;
    let r = &s.audit.records()[0];
    assert_eq!(r.decision, Verdict::Allow, "allowed, then failed: {r:?}");
    assert!(
        r.reason
            .as_deref()
            .is_some_and(|why| why.contains("failed")),
        "{r:?}"
    );
}

#[tokio::test]
async fn r_net_8_refused_targets_are_audited_and_never_connected() {
    // Each refused target has a listener at the address it would reach.
    let special = Upstream::echo("127.0.0.2").await;
    let denied = Upstream::echo("127.0.0.1").await;
    let deny = DenySet::new();
    deny.insert_socket(denied.addr);
    let open_port = special.port();
    let s = setup(
        &[
            ("private.allowed.test", "127.0.0.2"),
            ("control.allowed.test", "127.0.0.1"),
            ("other.test", "127.0.0.2"),
        ],
        deny,
        vec![open_port, denied.port()],
    );
    let cases: Vec<(String, Expected)> = vec![
        // Loopback outside the allowed range.
        (format!("private.allowed.test:{open_port}"), |d| {
            matches!(d, Denial::SpecialAddress { .. })
        }),
        (format!("127.0.0.2:{open_port}"), |d| {
            matches!(d, Denial::NotAllowed(_))
        }),
        // A control-plane socket, inside the allowed range.
        (format!("control.allowed.test:{}", denied.port()), |d| {
            matches!(d, Denial::DeniedAddress { .. })
        }),
        // Outside the job's domains: never even resolved.
        (format!("other.test:{open_port}"), |d| {
            matches!(d, Denial::NotAllowed(_))
        }),
        // A port that is not open.
        ("private.allowed.test:6379".to_owned(), |d| {
            matches!(d, Denial::Port { port: 6379, .. })
        }),
    ];
    for (authority, expected) in &cases {
        let target = parse_authority(authority, None).unwrap();
        let result = s
            .gate
            .open(s.gate.record(Meter::new()), &target, Scheme::Https, WAIT)
            .await;
        match result {
            Err(OpenError::Denied(d)) => assert!(expected(&d), "{authority}: {d:?}"),
            Err(e) => panic!("{authority}: refused for the wrong reason: {e}"),
            Ok(c) => panic!("{authority}: connected to {}", c.peer()),
        }
    }
    s.gate.settled(WAIT).await;
    settle().await;
    assert_eq!(
        special.hits() + denied.hits(),
        0,
        "a refused target was reached"
    );
    assert_eq!(s.connector.attempts(), [], "the gate tried to connect");
    let records = s.audit.records();
    assert_eq!(records.len(), cases.len(), "{records:?}");
    for (r, (authority, _)) in records.iter().zip(&cases) {
        assert_eq!(r.decision, Verdict::Deny, "{r:?}");
        assert_eq!(format!("{}:{}", r.host, r.port.unwrap()), *authority);
        assert!(r.reason.is_some(), "{r:?}");
        assert_eq!((r.bytes_up, r.bytes_down), (0, 0));
    }
    // The refused address is on record where there was one.
    assert_eq!(records[0].ip, Some(special.addr.ip()));
    assert_eq!(records[2].ip, Some(denied.addr.ip()));
    assert_eq!(records[3].ip, None, "other.test was resolved");
}

#[test]
fn r_net_7_the_job_header_replaces_the_jobs_own() {
    let s = setup(&[], DenySet::new(), vec![80]);
    let mut headers = HeaderMap::new();
    headers.append(JOB_HEADER, HeaderValue::from_static("someone-else"));
    headers.append(JOB_HEADER, HeaderValue::from_static("another"));
    s.gate.set_job_header(&mut headers);
    let values: Vec<_> = headers.get_all(JOB_HEADER).iter().collect();
    assert_eq!(values, [JOB]);
}
