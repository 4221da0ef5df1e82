//! The egress proxy's handling of a request, up to the moment it would
//! connect (R-NET-3, R-NET-4, R-NET-7, R-NET-8, R-SEC-3): head checks,
//! hyper's parse, the target rules and the policy decision, all through
//! `Proxy::serve_stream` on an in-memory stream.
//!
//! The proxy serves a fixed job: domains `.allowed.test` plus a few address
//! entries, a deny set, one allowed range, and a resolver with fixed answers
//! (public, private, mixed, IPv4-mapped, denied). Its connector connects
//! nowhere: it records the address and fails, so every allowed request ends
//! in a 502 after the decision under test. The runtime's clock is paused, so
//! every timeout fires as soon as nothing else can run.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use protocol::domain::{DomainSet, Host};
use proxy::resolve::BoxFuture;
use proxy::{
    AuditRecord, AuditSink, Cidr, Connector, DenySet, Proxy, ProxyConfig, StaticResolver, Verdict,
    classify,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The job's domains.
const DOMAINS: &[&str] = &[
    ".allowed.test",
    "1.2.3.4",
    "10.9.1.2",
    "127.0.0.1",
    "2001:db8::1",
    "93.184.0.9",
];

/// The resolver's answers. Names outside `DOMAINS` are there to show that
/// they are never resolved or connected to.
const ANSWERS: &[(&str, &[&str])] = &[
    ("allowed.test", &["1.2.3.4"]),
    ("api.allowed.test", &["1.2.3.5", "2600:1f18::5"]),
    ("private.allowed.test", &["10.0.0.1"]),
    ("mixed.allowed.test", &["1.2.3.4", "127.0.0.1"]),
    ("mapped.allowed.test", &["::ffff:127.0.0.1"]),
    ("range.allowed.test", &["10.9.1.1"]),
    ("denied.allowed.test", &["93.184.0.9"]),
    ("loop.allowed.test", &["::1"]),
    ("other.test", &["1.2.3.6"]),
];

/// Control-plane addresses: an address, a socket, a host.
const DENY_IP: &str = "93.184.0.9";
const DENY_SOCKET: &str = "1.2.3.4:8080";
const DENY_HOST: &str = "control.allowed.test";
/// The operator allows this range despite the special-purpose table.
const ALLOWED_RANGE: &str = "10.9.0.0/16";
const CONNECT_PORTS: &[u16] = &[443, 8443];

struct Harness {
    /// Held for a whole exchange: tests on several threads share the
    /// harness, and the records of one exchange must not mix with another's.
    one_at_a_time: Mutex<()>,
    rt: tokio::runtime::Runtime,
    proxy: Proxy,
    domains: DomainSet,
    deny: DenySet,
    range: Cidr,
    /// Ports plain HTTP may reach (the proxy's default).
    http_ports: Vec<u16>,
    connects: Arc<Recorded<SocketAddr>>,
    audit: Arc<Recorded<AuditRecord>>,
}

/// What the proxy handed out during one input.
struct Recorded<T>(Mutex<Vec<T>>);

impl<T> Recorded<T> {
    fn push(&self, item: T) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(item);
    }

    fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl AuditSink for Recorded<AuditRecord> {
    fn record(&self, record: &AuditRecord) {
        self.push(record.clone());
    }
}

impl Connector for Recorded<SocketAddr> {
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<TcpStream>> {
        self.push(addr);
        Box::pin(async { Err(io::Error::other("the fuzz harness connects nowhere")) })
    }
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let domains = DomainSet::parse(DOMAINS).expect("the harness's domains parse");
        let deny = DenySet::new();
        deny.insert_ip(DENY_IP.parse().unwrap());
        deny.insert_socket(DENY_SOCKET.parse().unwrap());
        deny.insert_host(&Host::parse(DENY_HOST).unwrap());
        let range = Cidr::parse(ALLOWED_RANGE).unwrap();
        let mut resolver = StaticResolver::new();
        for (name, ips) in ANSWERS {
            for ip in *ips {
                resolver.insert(*name, ip.parse().unwrap());
            }
        }
        let mut config = ProxyConfig::new("fuzz-job", domains.clone());
        config.deny = deny.clone();
        config.allowed_ranges = vec![range];
        config.connect_ports = CONNECT_PORTS.to_vec();
        let http_ports = config.http_ports.clone();
        let connects = Arc::new(Recorded(Mutex::new(Vec::new())));
        let audit = Arc::new(Recorded(Mutex::new(Vec::new())));
        let proxy = rt
            .block_on(async {
                Proxy::builder(config)
                    .resolver(Arc::new(resolver))
                    .connector(connects.clone())
                    .audit(audit.clone())
                    .build()
            })
            .expect("the harness's proxy builds");
        Harness {
            one_at_a_time: Mutex::new(()),
            rt,
            proxy,
            domains,
            deny,
            range,
            http_ports,
            connects,
            audit,
        }
    })
}

/// One client connection sending `data` then closing its side (target
/// `proxy_head`).
///
/// Invariants: the proxy tries to connect only to an address it may reach
/// (not on the deny set, not special-purpose unless the allowed range covers
/// it, an answer for the requested host or the host's own address) of a
/// host the job's domains allow, and for `CONNECT` only on an allowed port;
/// it tries only after recording an `allow` decision for that request;
/// anything it answers, it answers with HTTP responses, each request (a
/// kept-alive connection carries several, one at a time) with its own
/// audit record.
pub fn proxy_head(data: &[u8]) {
    let h = harness();
    let (response, connects, records) = exchange(data);

    if !response.is_empty() {
        assert!(
            response.starts_with(b"HTTP/1.1 ") || response.starts_with(b"HTTP/1.0 "),
            "not an HTTP response: {:?}",
            String::from_utf8_lossy(&response)
        );
        assert!(!records.is_empty(), "an answer without an audit record");
    }
    for addr in &connects {
        // Some request's own allowed record must account for the connection.
        let verdicts: Vec<Result<(), String>> = records
            .iter()
            .map(|record| justifies(h, record, *addr))
            .collect();
        let reasons: Vec<&String> = verdicts.iter().filter_map(|v| v.as_ref().err()).collect();
        assert!(
            verdicts.iter().any(Result::is_ok),
            "a connection to {addr} that no allowed request accounts for: {reasons:?} in {records:?}"
        );
    }
}

/// Whether `record` allowed a connection to `addr`; why not, if it did not.
fn justifies(h: &Harness, record: &AuditRecord, addr: SocketAddr) -> Result<(), String> {
    if record.decision != Verdict::Allow {
        return Err(format!("connected without allowing: {record:?}"));
    }
    let host = Host::parse(&record.host)
        .map_err(|e| format!("connected for the unparsable host {:?}: {e}", record.host))?;
    if !h.domains.allows(&host) {
        return Err(format!("connected for {host}, which the job may not reach"));
    }
    if h.deny.denies_host(&host) {
        return Err(format!("connected for the denied host {host}"));
    }
    let expected: Vec<IpAddr> = match &host {
        Host::Ip(ip) => vec![*ip],
        Host::Name(name) => ANSWERS
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, ips)| ips.iter().map(|ip| ip.parse::<IpAddr>().unwrap()))
            .map(|ip| ip.to_canonical())
            .collect(),
    };
    let ip = addr.ip();
    if !expected.contains(&ip) {
        return Err(format!("connected to {addr}, not an address of {host}"));
    }
    if Some(addr.port()) != record.port {
        return Err("connected to another port than the target's".into());
    }
    if h.deny.denies(addr) {
        return Err(format!("connected to the denied {addr}"));
    }
    if classify(ip).is_some() && !h.range.contains(ip) {
        return Err(format!(
            "connected to the special-purpose {addr} ({})",
            classify(ip).unwrap_or_default()
        ));
    }
    if record.method == "CONNECT" {
        if !CONNECT_PORTS.contains(&addr.port()) {
            return Err(format!("CONNECT to port {}", addr.port()));
        }
    } else if !h.http_ports.contains(&addr.port()) {
        // R-NET-3: plain HTTP only to the listed ports (80 here).
        return Err(format!("plain HTTP to port {}", addr.port()));
    }
    Ok(())
}

/// Serves one connection that sends `data`: the response, the addresses the
/// proxy tried to connect to, the audit records.
fn exchange(data: &[u8]) -> (Vec<u8>, Vec<SocketAddr>, Vec<AuditRecord>) {
    let h = harness();
    let _alone = h
        .one_at_a_time
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let response = h.rt.block_on(async {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let proxy = h.proxy.clone();
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let serve = tokio::spawn(async move { proxy.serve_stream(server, peer).await });
        let (mut reader, mut writer) = tokio::io::split(&mut client);
        let send = async {
            // The proxy may stop reading and close at any point.
            let _ = writer.write_all(data).await;
            let _ = writer.shutdown().await;
        };
        let mut response = Vec::new();
        let receive = reader.read_to_end(&mut response);
        let (_, received) = tokio::join!(send, receive);
        if let Err(e) = serve.await {
            std::panic::resume_unwind(e.into_panic());
        }
        let _ = received;
        response
    });
    (response, h.connects.take(), h.audit.take())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(response: &[u8]) -> &str {
        std::str::from_utf8(&response[9..12]).unwrap()
    }

    /// The harness sees what it checks: an allowed request reaches the
    /// connector at the resolved address, refused ones never do.
    #[test]
    fn the_harness_records_where_the_proxy_would_connect() {
        let (response, connects, records) =
            exchange(b"GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n");
        assert_eq!(status(&response), "502");
        assert_eq!(connects, ["1.2.3.4:80".parse().unwrap()]);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].decision, Verdict::Allow);

        let (response, connects, records) =
            exchange(b"CONNECT range.allowed.test:8443 HTTP/1.1\r\n\r\n");
        assert_eq!(status(&response), "502");
        assert_eq!(connects, ["10.9.1.1:8443".parse().unwrap()]);
        assert_eq!(records.len(), 1);

        for refused in [
            &b"CONNECT mixed.allowed.test:443 HTTP/1.1\r\n\r\n"[..],
            b"GET http://other.test/ HTTP/1.1\r\nHost: other.test\r\n\r\n",
            b"GET http://1.2.3.4:8080/ HTTP/1.1\r\nHost: 1.2.3.4:8080\r\n\r\n",
            b"CONNECT api.allowed.test:22 HTTP/1.1\r\n\r\n",
        ] {
            let (response, connects, records) = exchange(refused);
            assert_eq!(
                status(&response),
                "403",
                "{}",
                String::from_utf8_lossy(refused)
            );
            assert!(connects.is_empty());
            assert_eq!(records[0].decision, Verdict::Deny);
        }
    }

    #[test]
    fn an_incomplete_head_gets_no_answer_and_no_record() {
        let (response, connects, records) = exchange(b"GET http://allowed.test/ HTT");
        assert!(response.is_empty() && connects.is_empty() && records.is_empty());
    }
}
