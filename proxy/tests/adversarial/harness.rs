//! Real sockets on loopback only: a local upstream, a raw-TCP client, a
//! proxy with injected resolution and a connector that refuses (and records)
//! any address outside loopback, so that no test can leak off the machine
//! even if the proxy were wrong.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::domain::DomainSet;
use proxy::resolve::BoxFuture;
use proxy::{
    AuditRecord, Cidr, Connector, DenySet, MemorySink, Proxy, ProxyConfig, Resolver, StaticResolver,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const JOB: &str = "job-adversarial";

/// A local upstream that counts connections and keeps what it received.
pub struct Upstream {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone, Copy)]
enum Mode {
    Http,
    /// HTTP that keeps its connections alive.
    KeepAlive,
    Echo,
}

impl Upstream {
    /// An HTTP server on `ip` (a 127.0.0.0/8 address).
    pub async fn http(ip: &str) -> Upstream {
        Upstream::start(ip, Mode::Http).await
    }

    /// An HTTP server on `ip` that keeps connections alive (its answers
    /// carry no `Connection: close`).
    pub async fn keep_alive(ip: &str) -> Upstream {
        Upstream::start(ip, Mode::KeepAlive).await
    }

    /// A TCP echo server on `ip`, for tunnels.
    pub async fn echo(ip: &str) -> Upstream {
        Upstream::start(ip, Mode::Echo).await
    }

    async fn start(ip: &str, mode: Mode) -> Upstream {
        let ip: IpAddr = ip.parse().unwrap();
        assert!(
            ip.is_loopback() || testkit::is_trap(ip),
            "tests listen on loopback (or a trap address on it) only"
        );
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (h, r) = (hits.clone(), received.clone());
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                h.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                tokio::spawn(async move {
                    match mode {
                        Mode::Http => serve_http(s, r, false).await,
                        Mode::KeepAlive => serve_http(s, r, true).await,
                        Mode::Echo => echo(s).await,
                    }
                });
            }
        });
        Upstream {
            addr,
            hits,
            received,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Raw requests (head and body) received so far.
    pub fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }
}

async fn echo(mut s: TcpStream) {
    let (mut r, mut w) = s.split();
    let _ = tokio::io::copy(&mut r, &mut w).await;
}

async fn serve_http(mut s: TcpStream, received: Arc<Mutex<Vec<String>>>, keep_alive: bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.len() > 65536 {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let len = content_length(&head);
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        // A chunked body ends with the last chunk (the tests send no trailers).
        let end = |buf: &[u8]| {
            if chunked {
                find(&buf[head_end..], b"0\r\n\r\n").map(|i| head_end + i + 5)
            } else {
                (buf.len() >= head_end + len).then_some(head_end + len)
            }
        };
        let end = loop {
            if let Some(end) = end(&buf) {
                break end;
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break buf.len(),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let request: Vec<u8> = buf.drain(..end).collect();
        received
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(&request).to_string());
        let close = if keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        };
        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
        let resp = if let Some(to) = path.strip_prefix("/redirect?to=") {
            format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n{close}\r\n")
        } else if let Some(n) = path.strip_prefix("/bighead?n=") {
            let n: usize = n.parse().unwrap();
            format!(
                "HTTP/1.1 200 OK\r\nX-Pad: {}\r\nContent-Length: 2\r\n{close}\r\nok",
                "h".repeat(n)
            )
        } else if let Some(n) = path.strip_prefix("/big?n=") {
            let n: usize = n.parse().unwrap();
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n{close}\r\n{}",
                "x".repeat(n)
            )
        } else {
            let body = "hello from upstream";
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nKeep-Alive: timeout=5\r\nProxy-Agent: upstream\r\n{close}\r\n{body}",
                body.len()
            )
        };
        if s.write_all(resp.as_bytes()).await.is_err() || !keep_alive {
            let _ = s.shutdown().await;
            return;
        }
    }
}

/// The `Content-Length` of a message head, 0 when it has none.
pub fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Connects only to loopback (and trap addresses on it); records every
/// address it was asked for.
#[derive(Default)]
pub struct LoopbackOnly {
    attempts: Mutex<Vec<SocketAddr>>,
}

impl LoopbackOnly {
    pub fn attempts(&self) -> Vec<SocketAddr> {
        self.attempts.lock().unwrap().clone()
    }
}

impl Connector for LoopbackOnly {
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<TcpStream>> {
        self.attempts.lock().unwrap().push(addr);
        Box::pin(async move {
            let ip = addr.ip().to_canonical();
            if !ip.is_loopback() && !testkit::is_trap(ip) {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    "test connector: not loopback",
                ));
            }
            TcpStream::connect(addr).await
        })
    }
}

/// A resolver that answers from a list of answers, one per call (the last
/// repeats), and counts calls: rebinding made easy.
pub struct Rebinding {
    pub answers: Vec<Vec<IpAddr>>,
    pub calls: AtomicUsize,
}

impl Resolver for Rebinding {
    fn resolve<'a>(
        &'a self,
        _name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<IpAddr>, proxy::ResolveError>> {
        let i = self.calls.fetch_add(1, Ordering::SeqCst);
        let a = self.answers[i.min(self.answers.len() - 1)].clone();
        Box::pin(async move { Ok(a) })
    }
}

/// How to set up a proxy for one test.
pub struct Opts {
    pub domains: Vec<&'static str>,
    pub ranges: Vec<&'static str>,
    pub resolve: Vec<(&'static str, &'static str)>,
    pub connect_ports: Option<Vec<u16>>,
    /// Ports plain HTTP may reach; `None` opens every port, since most
    /// tests' upstreams listen on ports of the system's choosing (the port
    /// rule itself is tested in `ports.rs`).
    pub http_ports: Option<Vec<u16>>,
    pub resolver: Option<Arc<dyn Resolver>>,
    pub config: Box<dyn FnOnce(&mut ProxyConfig) + Send>,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            domains: vec![".allowed.test", "exact.test"],
            ranges: vec![],
            resolve: vec![],
            connect_ports: None,
            http_ports: None,
            resolver: None,
            config: Box::new(|_| {}),
        }
    }
}

/// A running proxy and what a test inspects.
pub struct Env {
    pub addr: SocketAddr,
    pub audit: MemorySink,
    pub connector: Arc<LoopbackOnly>,
    pub deny: DenySet,
}

impl Env {
    pub async fn start(opts: Opts) -> Env {
        let domains = DomainSet::parse(opts.domains).unwrap();
        let mut config = ProxyConfig::new(JOB, domains);
        config.allowed_ranges = opts
            .ranges
            .iter()
            .map(|r| Cidr::parse(r).unwrap())
            .collect();
        if let Some(p) = opts.connect_ports {
            config.connect_ports = p;
        }
        config.http_ports = opts.http_ports.unwrap_or_else(|| (1..=u16::MAX).collect());
        config.rate_up = 0;
        config.rate_down = 0;
        (opts.config)(&mut config);
        let deny = config.deny.clone();
        let resolver: Arc<dyn Resolver> = match opts.resolver {
            Some(r) => r,
            None => {
                let mut r = StaticResolver::new();
                for (name, ip) in opts.resolve {
                    r.insert(name, ip.parse().unwrap());
                }
                Arc::new(r)
            }
        };
        let audit = MemorySink::new();
        let connector = Arc::new(LoopbackOnly::default());
        let proxy = Proxy::builder(config)
            .resolver(resolver)
            .connector(connector.clone())
            .audit(Arc::new(audit.clone()))
            .build()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(proxy.serve(listener));
        Env {
            addr,
            audit,
            connector,
            deny,
        }
    }

    /// Send raw bytes and end the sending side, read the whole answer (the
    /// proxy closes once the client has nothing more to send).
    pub async fn send(&self, raw: &str) -> String {
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        s.write_all(raw.as_bytes()).await.unwrap();
        let _ = s.shutdown().await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).to_string()
    }

    /// `GET url` with a matching Host header.
    pub async fn get(&self, url: &str) -> String {
        let host = url
            .strip_prefix("http://")
            .and_then(|r| r.split('/').next())
            .unwrap_or("");
        self.send(&format!("GET {url} HTTP/1.1\r\nHost: {host}\r\n\r\n"))
            .await
    }

    /// Audit records so far, waiting briefly for the last one to land.
    pub async fn records(&self, at_least: usize) -> Vec<AuditRecord> {
        for _ in 0..200 {
            let r = self.audit.records();
            if r.len() >= at_least {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.audit.records()
    }
}

/// The status code of a raw response, 0 when there is none.
pub fn status(resp: &str) -> u16 {
    resp.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Open a CONNECT tunnel; returns the stream and the response head.
pub async fn connect(env: &Env, target: &str, extra: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\n{extra}\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await {
            Ok(Ok(1)) => head.push(b[0]),
            _ => break,
        }
        if head.ends_with(b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    // Read the body of a refusal, if any, so the text explains it.
    if status(&text) != 200 {
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
        return (s, text + &String::from_utf8_lossy(&rest));
    }
    (s, text)
}

/// Give any wrongly made connection time to arrive before asserting none did.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}
