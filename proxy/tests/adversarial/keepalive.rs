//! Kept-alive client connections and kept upstream connections (issue 18):
//! every request on a connection is checked, decided, connected and
//! recorded on its own; a kept upstream connection never stands in for a
//! decision, and no job's kept connection carries another job's request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;

/// A client that keeps its connection and reads one answer at a time.
struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn open(env: &Env) -> Client {
        Client {
            s: TcpStream::connect(env.addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, raw: &str) {
        self.s.write_all(raw.as_bytes()).await.unwrap();
    }

    /// One whole answer (its head and `Content-Length` body); empty when the
    /// proxy closed the connection instead.
    async fn answer(&mut self) -> String {
        let read = async {
            let mut chunk = [0u8; 4096];
            loop {
                if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&self.buf[..i + 4]).to_string();
                    let len = content_length(&head);
                    while self.buf.len() < i + 4 + len {
                        match self.s.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = self.buf.len().min(i + 4 + len);
                    let whole: Vec<u8> = self.buf.drain(..end).collect();
                    return String::from_utf8_lossy(&whole).to_string();
                }
                match self.s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return String::new(),
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("an answer within 10 s")
    }

    /// Whether the proxy has closed the connection (waits briefly).
    async fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.s.read(&mut b)).await,
            Ok(Ok(0) | Err(_))
        )
    }
}

fn get(host: &str, port: u16, path: &str) -> String {
    format!("GET http://{host}:{port}{path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n")
}

fn resolving(names: Vec<(&'static str, &'static str)>) -> Opts {
    Opts {
        resolve: names,
        ranges: vec!["127.0.0.0/8"],
        ..Opts::default()
    }
}

#[tokio::test]
async fn r_net_9_requests_on_one_connection_each_have_their_record_and_share_one_upstream() {
    let up = Upstream::keep_alive("127.0.0.1").await;
    let env = Env::start(resolving(vec![("a.allowed.test", "127.0.0.1")])).await;
    let p = up.port();
    let mut c = Client::open(&env).await;
    let mut sent = Vec::new();
    let mut got = Vec::new();
    for i in 0..3 {
        let req = get("a.allowed.test", p, &format!("/{i}"));
        c.send(&req).await;
        let a = c.answer().await;
        assert_eq!(status(&a), 200, "{a}");
        assert!(a.ends_with("hello from upstream"), "{a}");
        sent.push(req.len() as u64);
        got.push(a.len() as u64);
    }
    drop(c);
    let recs = env.records(3).await;
    assert_eq!(recs.len(), 3, "{recs:?}");
    // One record per request, each with exactly its own bytes.
    assert_eq!(recs.iter().map(|r| r.bytes_up).collect::<Vec<_>>(), sent);
    assert_eq!(recs.iter().map(|r| r.bytes_down).collect::<Vec<_>>(), got);
    // One upstream connection carried all three.
    assert_eq!(up.hits(), 1);
    assert_eq!(up.received().len(), 3);
    assert_eq!(env.connector.attempts(), [up.addr]);
}

#[tokio::test]
async fn r_net_4_a_kept_connection_never_carries_a_request_its_own_decision_refuses() {
    // The name resolves to the allowed 127.0.0.2 first, then to 127.0.0.3
    // (not allowed) where a second listener waits: the second request on
    // the same client connection must be refused, although a kept upstream
    // connection to the first answer is ready.
    let good = Upstream::keep_alive("127.0.0.2").await;
    let evil = Upstream::keep_alive("127.0.0.3").await;
    let resolver = Arc::new(Rebinding {
        answers: vec![
            vec!["127.0.0.2".parse().unwrap()],
            vec!["127.0.0.3".parse().unwrap()],
        ],
        calls: AtomicUsize::new(0),
    });
    let env = Env::start(Opts {
        ranges: vec!["127.0.0.2/32"],
        resolver: Some(resolver.clone()),
        ..Opts::default()
    })
    .await;
    let mut c = Client::open(&env).await;
    c.send(&get("rebind.allowed.test", good.port(), "/")).await;
    assert_eq!(status(&c.answer().await), 200);
    c.send(&get("rebind.allowed.test", good.port(), "/again"))
        .await;
    let a = c.answer().await;
    assert_eq!(status(&a), 403, "{a}");
    assert_eq!(resolver.calls.load(Ordering::SeqCst), 2, "decided twice");
    settle().await;
    assert_eq!(good.received().len(), 1);
    assert_eq!(evil.hits(), 0);
    let recs = env.records(2).await;
    assert_eq!(recs[1].decision, proxy::Verdict::Deny);
}

#[tokio::test]
async fn r_net_4_a_request_reuses_only_a_connection_to_an_address_it_was_allowed() {
    // Two allowed names on two addresses: the second name's request opens
    // its own connection instead of riding the first name's.
    let one = Upstream::keep_alive("127.0.0.1").await;
    let env = Env::start(resolving(vec![
        ("one.allowed.test", "127.0.0.1"),
        ("two.allowed.test", "127.0.0.4"),
    ]))
    .await;
    let two = Upstream::keep_alive("127.0.0.4").await;
    let mut c = Client::open(&env).await;
    c.send(&get("one.allowed.test", one.port(), "/")).await;
    assert_eq!(status(&c.answer().await), 200);
    // Same port number on the other address is not the same address.
    c.send(&get("two.allowed.test", two.port(), "/")).await;
    assert_eq!(status(&c.answer().await), 200);
    assert_eq!(env.connector.attempts(), [one.addr, two.addr]);
    assert_eq!((one.received().len(), two.received().len()), (1, 1));
}

#[tokio::test]
async fn r_net_8_a_later_request_is_checked_for_smuggling_like_the_first() {
    let up = Upstream::keep_alive("127.0.0.1").await;
    let env = Env::start(resolving(vec![("a.allowed.test", "127.0.0.1")])).await;
    let p = up.port();
    let mut c = Client::open(&env).await;
    c.send(&get("a.allowed.test", p, "/")).await;
    assert_eq!(status(&c.answer().await), 200);
    c.send(&format!(
        "POST http://a.allowed.test:{p}/ HTTP/1.1\r\nHost: a.allowed.test:{p}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET http://evil.test/ HTTP/1.1\r\n\r\n"
    ))
    .await;
    let a = c.answer().await;
    assert_eq!(status(&a), 400, "{a}");
    assert!(c.closed().await, "a refused head ends the connection");
    settle().await;
    assert_eq!(up.received().len(), 1);
}

#[tokio::test]
async fn r_net_8_a_body_is_never_read_as_the_next_request() {
    // The body of a refused POST looks like a request to an allowed host;
    // it must go nowhere, whether the proxy drains it or closes.
    let up = Upstream::keep_alive("127.0.0.1").await;
    let env = Env::start(resolving(vec![("a.allowed.test", "127.0.0.1")])).await;
    let p = up.port();
    let inner = get("a.allowed.test", p, "/smuggled");
    let mut c = Client::open(&env).await;
    c.send(&format!(
        "POST http://evil.test/ HTTP/1.1\r\nHost: evil.test\r\nContent-Length: {}\r\n\r\n{inner}",
        inner.len()
    ))
    .await;
    let a = c.answer().await;
    assert_eq!(status(&a), 403, "{a}");
    // An allowed POST with the same body: forwarded as a body, once.
    c.send(&format!(
        "POST http://a.allowed.test:{p}/post HTTP/1.1\r\nHost: a.allowed.test:{p}\r\nContent-Length: {}\r\n\r\n{inner}",
        inner.len()
    ))
    .await;
    let a = c.answer().await;
    if !a.is_empty() {
        assert_eq!(status(&a), 200, "{a}");
    }
    settle().await;
    let received = up.received();
    assert!(received.len() <= 1, "{received:?}");
    assert!(
        received
            .iter()
            .all(|r| r.starts_with("POST /post ") && r.matches("GET").count() == 1),
        "{received:?}"
    );
}

#[tokio::test]
async fn r_net_8_a_request_body_with_its_length_is_forwarded_and_the_next_request_served() {
    let up = Upstream::keep_alive("127.0.0.1").await;
    let env = Env::start(resolving(vec![("a.allowed.test", "127.0.0.1")])).await;
    let p = up.port();
    let mut c = Client::open(&env).await;
    let body = "x".repeat(100_000);
    // Body and the next request in one write.
    c.send(&format!(
        "POST http://a.allowed.test:{p}/post HTTP/1.1\r\nHost: a.allowed.test:{p}\r\nContent-Length: {}\r\n\r\n{body}{}",
        body.len(),
        get("a.allowed.test", p, "/next")
    ))
    .await;
    assert_eq!(status(&c.answer().await), 200);
    assert_eq!(status(&c.answer().await), 200);
    let received = up.received();
    assert_eq!(received.len(), 2, "{received:?}");
    assert!(received[0].ends_with(&body));
    assert!(received[1].starts_with("GET /next "), "{:?}", received[1]);
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn http_1_0_and_connection_close_end_the_connection_after_their_request() {
    let up = Upstream::keep_alive("127.0.0.1").await;
    let env = Env::start(resolving(vec![("a.allowed.test", "127.0.0.1")])).await;
    let p = up.port();
    for raw in [
        format!("GET http://a.allowed.test:{p}/ HTTP/1.0\r\nHost: a.allowed.test:{p}\r\n\r\n"),
        format!(
            "GET http://a.allowed.test:{p}/ HTTP/1.1\r\nHost: a.allowed.test:{p}\r\nConnection: close\r\n\r\n"
        ),
    ] {
        let mut c = Client::open(&env).await;
        c.send(&raw).await;
        let a = c.answer().await;
        assert!(a.contains(" 200 "), "{a}");
        assert!(c.closed().await, "{raw}");
    }
}

#[tokio::test]
async fn kept_upstream_connections_are_never_shared_between_jobs() {
    let up = Upstream::keep_alive("127.0.0.1").await;
    let p = up.port();
    let a = Env::start(resolving(vec![("a.allowed.test", "127.0.0.1")])).await;
    let b = Env::start(resolving(vec![("a.allowed.test", "127.0.0.1")])).await;
    for env in [&a, &b, &a, &b] {
        let mut c = Client::open(env).await;
        c.send(&get("a.allowed.test", p, "/")).await;
        assert_eq!(status(&c.answer().await), 200);
    }
    // Each job reused its own connection and only its own.
    assert_eq!(up.hits(), 2);
    assert_eq!(a.connector.attempts(), [up.addr]);
    assert_eq!(b.connector.attempts(), [up.addr]);
}

#[tokio::test]
async fn a_kept_connection_the_upstream_closed_is_replaced() {
    // The plain upstream closes after each answer: the next request must
    // get a new connection, not an error.
    let up = Upstream::http("127.0.0.1").await;
    let env = Env::start(resolving(vec![("a.allowed.test", "127.0.0.1")])).await;
    let p = up.port();
    let mut c = Client::open(&env).await;
    for _ in 0..3 {
        c.send(&get("a.allowed.test", p, "/")).await;
        assert_eq!(status(&c.answer().await), 200);
        settle().await;
    }
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn a_quiet_kept_connection_is_closed_after_the_idle_timeout() {
    let up = Upstream::keep_alive("127.0.0.1").await;
    let mut opts = resolving(vec![("a.allowed.test", "127.0.0.1")]);
    opts.config = Box::new(|c| c.limits.idle_timeout = Duration::from_millis(300));
    let env = Env::start(opts).await;
    let mut c = Client::open(&env).await;
    c.send(&get("a.allowed.test", up.port(), "/")).await;
    assert_eq!(status(&c.answer().await), 200);
    let start = std::time::Instant::now();
    assert!(c.closed().await);
    assert!(start.elapsed() < Duration::from_secs(3));
}
