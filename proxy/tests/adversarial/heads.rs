//! Heads count (R-SEC-4, R-NET-6, R-NET-9): request heads, response heads
//! and `CONNECT` heads are paced by the job's shared limiters and counted in
//! the audit, like bodies. Otherwise a job moves data in headers at any
//! rate (100 requests with 15 KB headers moved 7.5 MB/s at `--rate 1mbit`)
//! and the audit shows `bytes_up: 0`.

use std::time::{Duration, Instant};

use crate::harness::*;

const RATE: u64 = 100_000;
/// The limiter's burst (50 ms of the rate): bytes that may go at once.
const BURST: u64 = RATE / 20;
const PAD: usize = 15_000;
const N: usize = 20;

fn opts(port: Option<u16>, f: impl FnOnce(&mut proxy::ProxyConfig) + Send + 'static) -> Opts {
    Opts {
        ranges: vec!["127.0.0.1/32"],
        resolve: vec![("allowed.test", "127.0.0.1")],
        connect_ports: port.map(|p| vec![p]),
        config: Box::new(f),
        ..Opts::default()
    }
}

/// Sends every request at once; returns the answers and how long it took.
async fn all_at_once(env: &Env, requests: Vec<String>) -> (Vec<String>, Duration) {
    let start = Instant::now();
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|r| {
            let addr = env.addr;
            tokio::spawn(async move { send_to(addr, &r).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    (answers, start.elapsed())
}

async fn send_to(addr: std::net::SocketAddr, raw: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    // Nothing more to send: the proxy closes after the answer.
    let _ = s.shutdown().await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// `bytes` at `RATE` take at least this long once the burst is spent.
fn at_least(bytes: u64) -> Duration {
    Duration::from_secs_f64((bytes - BURST) as f64 / RATE as f64)
}

/// Generous for a loaded machine, yet far below what unpaced heads take.
fn at_most(bytes: u64) -> Duration {
    at_least(bytes) * 2 + Duration::from_secs(2)
}

#[tokio::test]
async fn r_sec_4_request_heads_are_paced_and_counted() {
    let up = Upstream::http("127.0.0.1").await;
    let env = Env::start(opts(None, |c| c.rate_up = RATE)).await;
    let p = up.port();
    let requests: Vec<String> = (0..N)
        .map(|i| {
            format!(
                "GET http://allowed.test:{p}/{i} HTTP/1.1\r\nHost: allowed.test:{p}\r\nX-Pad: {}\r\n\r\n",
                "a".repeat(PAD)
            )
        })
        .collect();
    let total: u64 = requests.iter().map(|r| r.len() as u64).sum();
    let (answers, took) = all_at_once(&env, requests).await;
    assert!(answers.iter().all(|a| status(a) == 200), "{answers:?}");
    eprintln!(
        "{N} request heads, {total} bytes at {RATE} B/s: {took:?} ({:.0} B/s)",
        total as f64 / took.as_secs_f64()
    );
    assert!(took >= at_least(total), "{took:?} for {total} bytes");
    assert!(took <= at_most(total), "{took:?} for {total} bytes");
    let recs = env.records(N).await;
    assert_eq!(recs.len(), N);
    assert_eq!(recs.iter().map(|r| r.bytes_up).sum::<u64>(), total);
}

#[tokio::test]
async fn r_sec_4_response_heads_are_paced_and_counted() {
    let up = Upstream::http("127.0.0.1").await;
    let env = Env::start(opts(None, |c| c.rate_down = RATE)).await;
    let p = up.port();
    let requests: Vec<String> = (0..N)
        .map(|_| {
            format!(
                "GET http://allowed.test:{p}/bighead?n={PAD} HTTP/1.1\r\nHost: allowed.test:{p}\r\n\r\n"
            )
        })
        .collect();
    let (answers, took) = all_at_once(&env, requests).await;
    assert!(answers.iter().all(|a| status(a) == 200), "{answers:?}");
    let total: u64 = answers.iter().map(|a| a.len() as u64).sum();
    assert!(total > (N * PAD) as u64);
    eprintln!(
        "{N} response heads, {total} bytes at {RATE} B/s: {took:?} ({:.0} B/s)",
        total as f64 / took.as_secs_f64()
    );
    // Each connection's last chunk (at most the burst) is charged to the
    // job but not waited for.
    assert!(
        took >= at_least(total - N as u64 * BURST),
        "{took:?} for {total} bytes"
    );
    assert!(took <= at_most(total), "{took:?} for {total} bytes");
    let recs = env.records(N).await;
    assert_eq!(recs.len(), N);
    assert_eq!(recs.iter().map(|r| r.bytes_down).sum::<u64>(), total);
}

#[tokio::test]
async fn r_sec_4_connect_heads_are_paced_and_counted() {
    let up = Upstream::echo("127.0.0.1").await;
    let p = up.port();
    let env = Env::start(opts(Some(p), |c| c.rate_up = RATE)).await;
    // Refused or not, a head the job sends is paced and on record: here
    // half go to a port CONNECT may not reach.
    let requests: Vec<String> = (0..N)
        .map(|i| {
            let port = if i % 2 == 0 { p } else { 9 };
            format!(
                "CONNECT allowed.test:{port} HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
                "c".repeat(PAD)
            )
        })
        .collect();
    let total: u64 = requests.iter().map(|r| r.len() as u64).sum();
    // The tunnels are closed by their clients after the answer's head.
    let start = Instant::now();
    let mut tasks = Vec::new();
    for r in requests {
        let addr = env.addr;
        tasks.push(tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(r.as_bytes()).await.unwrap();
            let mut head = [0u8; 12];
            s.read_exact(&mut head).await.unwrap();
            String::from_utf8_lossy(&head).into_owned()
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(status(&t.await.unwrap()));
    }
    let took = start.elapsed();
    assert_eq!(
        codes.iter().filter(|&&c| c == 200).count(),
        N / 2,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|&&c| c == 403).count(),
        N / 2,
        "{codes:?}"
    );
    eprintln!(
        "{N} CONNECT heads, {total} bytes at {RATE} B/s: {took:?} ({:.0} B/s)",
        total as f64 / took.as_secs_f64()
    );
    assert!(took >= at_least(total), "{took:?} for {total} bytes");
    assert!(took <= at_most(total), "{took:?} for {total} bytes");
    let recs = env.records(N).await;
    assert_eq!(recs.len(), N);
    assert_eq!(recs.iter().map(|r| r.bytes_up).sum::<u64>(), total);
}
