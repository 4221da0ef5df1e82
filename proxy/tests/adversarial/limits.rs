//! Robustness limits (issue 3, item 5), the rate limit over real sockets
//! (R-NET-6) and the audit trail (R-NET-9).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;

fn opts(port: Option<u16>, f: impl FnOnce(&mut proxy::ProxyConfig) + Send + 'static) -> Opts {
    Opts {
        ranges: vec!["127.0.0.1/32"],
        resolve: vec![("allowed.test", "127.0.0.1")],
        connect_ports: port.map(|p| vec![p]),
        config: Box::new(f),
        ..Opts::default()
    }
}

#[tokio::test]
async fn r_net_8_slow_header_times_out() {
    let up = Upstream::http("127.0.0.1").await;
    let env = Env::start(opts(None, |c| {
        c.limits.header_read_timeout = Duration::from_millis(300);
    }))
    .await;
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    let start = Instant::now();
    s.write_all(format!("GET http://allowed.test:{}/ HTTP/1.1\r\nHo", up.port()).as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("the proxy closes a slow client")
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(290));
    assert_eq!(status(&String::from_utf8_lossy(&out)), 408);
    assert_eq!(up.hits(), 0);
    let recs = env.records(1).await;
    assert_eq!(recs[0].status, Some(408));
}

#[tokio::test]
async fn r_net_8_oversized_header_is_refused() {
    let up = Upstream::http("127.0.0.1").await;
    let env = Env::start(opts(None, |c| c.limits.max_header_bytes = 4096)).await;
    let p = up.port();
    let big = "a".repeat(8000);
    let r = env
        .send(&format!(
            "GET http://allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.test:{p}\r\nX-Big: {big}\r\n\r\n"
        ))
        .await;
    assert_eq!(status(&r), 431, "{r}");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn r_net_8_too_many_header_lines_are_refused() {
    let up = Upstream::http("127.0.0.1").await;
    let env = Env::start(opts(None, |c| c.limits.max_headers = 16)).await;
    let p = up.port();
    let many: String = (0..40).map(|i| format!("X-H{i}: v\r\n")).collect();
    let r = env
        .send(&format!(
            "GET http://allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.test:{p}\r\n{many}\r\n"
        ))
        .await;
    assert_eq!(status(&r), 431, "{r}");
    assert_eq!(up.hits(), 0);
}

/// Issue 3 item 5: idle timeout.
#[tokio::test]
async fn idle_tunnel_is_closed() {
    let up = Upstream::echo("127.0.0.1").await;
    let env = Env::start(opts(Some(up.port()), |c| {
        c.limits.idle_timeout = Duration::from_millis(300);
    }))
    .await;
    let (mut s, head) = connect(&env, &format!("allowed.test:{}", up.port()), "").await;
    assert_eq!(status(&head), 200, "{head}");
    let start = Instant::now();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("the proxy closes an idle tunnel")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(start.elapsed() >= Duration::from_millis(250));
    let recs = env.records(1).await;
    assert_eq!(recs[0].reason.as_deref(), Some("tunnel idle timeout"));
}

/// Issue 3 item 5: maximum concurrent connections per job (tunnels count).
#[tokio::test]
async fn max_connections_per_job_is_enforced() {
    let up = Upstream::echo("127.0.0.1").await;
    let env = Env::start(opts(Some(up.port()), |c| c.limits.max_connections = 1)).await;
    let (_tunnel, head) = connect(&env, &format!("allowed.test:{}", up.port()), "").await;
    assert_eq!(status(&head), 200, "{head}");
    let r = env
        .get(&format!("http://allowed.test:{}/", up.port()))
        .await;
    assert_eq!(status(&r), 503, "{r}");
}

/// Issue 3 item 5: a total limit shared by the proxies of one process.
#[tokio::test]
async fn global_connection_limit_is_shared() {
    let up = Upstream::echo("127.0.0.1").await;
    let global = std::sync::Arc::new(tokio::sync::Semaphore::new(1));
    let mut envs = Vec::new();
    for _ in 0..2 {
        let domains = protocol::domain::DomainSet::parse(["127.0.0.1"]).unwrap();
        let mut config = proxy::ProxyConfig::new(JOB, domains);
        config.allowed_ranges = vec![proxy::Cidr::parse("127.0.0.1/32").unwrap()];
        config.connect_ports = vec![up.port()];
        let proxy = proxy::Proxy::builder(config)
            .audit(std::sync::Arc::new(proxy::MemorySink::new()))
            .connector(std::sync::Arc::new(LoopbackOnly::default()))
            .global_limit(global.clone())
            .build()
            .unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        envs.push(l.local_addr().unwrap());
        tokio::spawn(proxy.serve(l));
    }
    let mut a = TcpStream::connect(envs[0]).await.unwrap();
    a.write_all(format!("CONNECT 127.0.0.1:{} HTTP/1.1\r\n\r\n", up.port()).as_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    a.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    let mut b = TcpStream::connect(envs[1]).await.unwrap();
    b.write_all(format!("CONNECT 127.0.0.1:{} HTTP/1.1\r\n\r\n", up.port()).as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), b.read_to_end(&mut out)).await;
    assert_eq!(status(&String::from_utf8_lossy(&out)), 503);
}

#[tokio::test]
async fn r_net_6_tunnel_is_rate_limited() {
    // 40,000 B/s with a 2,000-byte burst: 22,000 bytes echoed back need at
    // least 0.45 s each way (less the burst and the last 2,000-byte chunk,
    // whose debt falls to the job's next bytes); both directions are limited
    // separately, and run concurrently.
    let up = Upstream::echo("127.0.0.1").await;
    let env = Env::start(opts(Some(up.port()), |c| {
        c.rate_up = 40_000;
        c.rate_down = 40_000;
    }))
    .await;
    let (s, head) = connect(&env, &format!("allowed.test:{}", up.port()), "").await;
    assert_eq!(status(&head), 200, "{head}");
    let start = Instant::now();
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        w.write_all(&vec![7u8; 22_000]).await.unwrap();
        w
    });
    let mut got = vec![0u8; 22_000];
    r.read_exact(&mut got).await.unwrap();
    let took = start.elapsed();
    drop(writer.await.unwrap());
    assert!(took >= Duration::from_millis(440), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[tokio::test]
async fn r_net_6_forwarded_response_body_is_rate_limited() {
    let up = Upstream::http("127.0.0.1").await;
    let env = Env::start(opts(None, |c| c.rate_down = 40_000)).await;
    let start = Instant::now();
    let r = env
        .get(&format!("http://allowed.test:{}/big?n=22000", up.port()))
        .await;
    let took = start.elapsed();
    assert_eq!(status(&r), 200);
    assert!(r.ends_with(&"x".repeat(22_000)));
    // The burst and the last chunk aside (see the tunnel test).
    assert!(took >= Duration::from_millis(440), "{took:?}");
    let recs = env.records(1).await;
    // Everything the job received, the response head included (R-SEC-4).
    assert_eq!(recs[0].bytes_down, r.len() as u64);
}

#[tokio::test]
async fn r_net_9_denials_are_audited_with_their_reason() {
    let env = Env::start(opts(None, |_| {})).await;
    let r = env.get("http://other.example/").await;
    assert_eq!(status(&r), 403, "{r}");
    let r = env.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status(&r), 400, "{r}");
    let recs = env.records(2).await;
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].host, "other.example");
    assert_eq!(recs[0].port, Some(80));
    assert_eq!(recs[0].decision, proxy::Verdict::Deny);
    assert!(
        recs[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("not in the job's allowed domains")
    );
    assert_eq!(recs[0].status, Some(403));
    assert!(recs[0].time_ms > 1_600_000_000_000);
    assert_eq!(recs[1].decision, proxy::Verdict::Deny);
    assert_eq!(recs[1].status, Some(400));
    let line = serde_json::to_string(&recs[0]).unwrap();
    for key in [
        "time_ms",
        "job",
        "method",
        "host",
        "port",
        "ip",
        "decision",
        "reason",
        "bytes_up",
        "bytes_down",
        "duration_ms",
    ] {
        assert!(line.contains(&format!("\"{key}\"")), "{key}: {line}");
    }
}

/// Issue 3 item 5: a head that trickles in byte by byte (within the header
/// timeout) is read correctly, the end of the head spanning reads.
#[tokio::test]
async fn head_sent_byte_by_byte_is_accepted() {
    let up = Upstream::http("127.0.0.1").await;
    let env = Env::start(opts(None, |_| {})).await;
    let p = up.port();
    let raw = format!("GET http://allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.test:{p}\r\n\r\n");
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    for b in raw.as_bytes() {
        s.write_all(&[*b]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status(&String::from_utf8_lossy(&out)), 200);
}

/// Bare line feeds end a head too (httparse and hyper accept them).
#[tokio::test]
async fn head_with_bare_line_feeds_is_accepted() {
    let up = Upstream::http("127.0.0.1").await;
    let env = Env::start(opts(None, |_| {})).await;
    let p = up.port();
    let r = env
        .send(&format!(
            "GET http://allowed.test:{p}/ HTTP/1.1\nHost: allowed.test:{p}\n\n"
        ))
        .await;
    assert_eq!(status(&r), 200, "{r}");
}

#[tokio::test]
async fn r_net_6_forwarded_request_body_is_rate_limited() {
    let up = Upstream::http("127.0.0.1").await;
    let env = Env::start(opts(None, |c| c.rate_up = 40_000)).await;
    let p = up.port();
    let body = "y".repeat(22_000);
    let request = format!(
        "POST http://allowed.test:{p}/post HTTP/1.1\r\nHost: allowed.test:{p}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let start = Instant::now();
    let r = env.send(&request).await;
    let took = start.elapsed();
    assert_eq!(status(&r), 200, "{r}");
    assert!(took >= Duration::from_millis(440), "{took:?}");
    assert!(up.received()[0].ends_with(&body));
    assert_eq!(env.records(1).await[0].bytes_up, request.len() as u64);
}

/// A job that ends takes its tunnels with it.
#[tokio::test]
async fn shutdown_closes_tunnels_and_the_listener() {
    let up = Upstream::echo("127.0.0.1").await;
    let domains = protocol::domain::DomainSet::parse(["127.0.0.1"]).unwrap();
    let mut config = proxy::ProxyConfig::new(JOB, domains);
    config.allowed_ranges = vec![proxy::Cidr::parse("127.0.0.1/32").unwrap()];
    config.connect_ports = vec![up.port()];
    let audit = proxy::MemorySink::new();
    let p = proxy::Proxy::builder(config)
        .audit(std::sync::Arc::new(audit.clone()))
        .connector(std::sync::Arc::new(LoopbackOnly::default()))
        .build()
        .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let serving = tokio::spawn(p.clone().serve(l));
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("CONNECT 127.0.0.1:{} HTTP/1.1\r\n\r\n", up.port()).as_bytes())
        .await
        .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    p.shutdown();
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("the accept loop stops")
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .expect("the tunnel is closed")
        .unwrap();
    for _ in 0..100 {
        if !audit.records().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        audit.records()[0].reason.as_deref(),
        Some("proxy shut down")
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

/// Issue 3 item 5: a request body that stalls is cut off by the idle timeout.
#[tokio::test]
async fn stalled_request_body_is_cut_off() {
    let up = Upstream::http("127.0.0.1").await;
    let env = Env::start(opts(None, |c| {
        c.limits.idle_timeout = Duration::from_millis(300);
    }))
    .await;
    let p = up.port();
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    let request = format!(
        "POST http://allowed.test:{p}/ HTTP/1.1\r\nHost: allowed.test:{p}\r\nContent-Length: 100\r\n\r\nonly ten b"
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("the proxy closes a stalled client")
        .ok();
    assert!(start.elapsed() >= Duration::from_millis(250));
    let recs = env.records(1).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].bytes_up, request.len() as u64);
}
