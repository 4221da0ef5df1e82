//! The node's own addresses (R-SEC-3, R-NET-7): a service that listens only
//! on the host's public address is the node's, not the world's. The trap
//! address is on this host's loopback interface with a listener, so a
//! request that got through would be counted here.

use crate::harness::*;
use testkit::Trap;

/// How long a new trap address takes to be seen by every view of this
/// host's addresses.
const SETTLE: std::time::Duration =
    std::time::Duration::from_millis(proxy::local::REFRESH.as_millis() as u64 + 200);

fn opts(ip: &'static str, port: u16, ranges: Vec<&'static str>) -> Opts {
    Opts {
        domains: vec![".allowed.test", ip],
        ranges,
        resolve: vec![("own.allowed.test", ip)],
        connect_ports: Some(vec![port]),
        ..Opts::default()
    }
}

fn refused_as_own(r: &proxy::AuditRecord) -> bool {
    r.status == Some(403)
        && r.reason
            .as_deref()
            .is_some_and(|why| why.contains("an address of this node"))
}

#[tokio::test]
async fn r_sec_3_the_hosts_public_address_is_refused_by_ip_and_by_name() {
    let Some(trap) = Trap::add("11.22.1.1", SETTLE).await else {
        return;
    };
    let up = Upstream::http(&trap.ip.to_string()).await;
    let p = up.port();
    let env = Env::start(opts("11.22.1.1", p, vec![])).await;
    for url in [
        format!("http://11.22.1.1:{p}/"),
        format!("http://own.allowed.test:{p}/"),
    ] {
        let r = env.get(&url).await;
        assert_eq!(status(&r), 403, "{url}: {r}");
        assert!(r.contains("an address of this node"), "{r}");
    }
    for target in [format!("11.22.1.1:{p}"), format!("own.allowed.test:{p}")] {
        let (_, r) = connect(&env, &target, "").await;
        assert_eq!(status(&r), 403, "{target}: {r}");
    }
    settle().await;
    assert_eq!(up.hits(), 0, "the trap was reached");
    let recs = env.records(4).await;
    assert_eq!(recs.len(), 4, "{recs:?}");
    for r in &recs {
        assert!(refused_as_own(r), "{r:?}");
        assert_eq!(r.ip, Some(trap.ip));
    }
}

/// The view of the host's interfaces is re-read: an address that appears
/// while the proxy runs is refused too.
#[tokio::test]
async fn r_sec_3_an_address_added_while_the_proxy_runs_is_refused() {
    let env = Env::start(opts("11.22.1.2", 9, vec![])).await;
    // The proxy decides once before the address exists (nothing listens:
    // the connector refuses what is not on this host).
    let r = env.get("http://own.allowed.test:9/").await;
    assert_ne!(status(&r), 200, "{r}");
    let Some(trap) = Trap::add("11.22.1.2", SETTLE).await else {
        return;
    };
    let up = Upstream::http(&trap.ip.to_string()).await;
    let r = env
        .get(&format!("http://own.allowed.test:{}/", up.port()))
        .await;
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.contains("an address of this node"), "{r}");
    settle().await;
    assert_eq!(up.hits(), 0, "the trap was reached");
}

/// The operator can open an own address with an allowed range, as for the
/// special-purpose table.
#[tokio::test]
async fn r_sec_3_an_allowed_range_opens_an_own_address() {
    let Some(trap) = Trap::add("11.22.1.3", SETTLE).await else {
        return;
    };
    let up = Upstream::http(&trap.ip.to_string()).await;
    let p = up.port();
    let env = Env::start(opts("11.22.1.3", p, vec!["11.22.1.3/32"])).await;
    let r = env.get(&format!("http://own.allowed.test:{p}/")).await;
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(up.hits(), 1);
}
