//! URL inputs against a local HTTP server (R-VOL-1).
//!
//! The server is a few lines of tokio: each route answers as a real server
//! would, and counts its requests, so the tests can tell a retry from none.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use storage::download::{DownloadConfig, DownloadError, Downloader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::fixtures::file_hash;

/// How long a new trap address takes to be seen by every view of this
/// host's addresses.
const SETTLE: std::time::Duration =
    std::time::Duration::from_millis(proxy::local::REFRESH.as_millis() as u64 + 200);

/// One response: status line, extra headers, body, and a pause before the body.
pub struct Reply {
    status: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    stall: Option<Duration>,
    /// Omit Content-Length and close the connection after the body.
    no_length: bool,
    /// Announce this length instead of the body's (a connection cut short).
    claimed_len: Option<usize>,
}

impl Reply {
    pub(crate) fn ok(body: &[u8]) -> Reply {
        Reply {
            status: "200 OK",
            headers: vec![],
            body: body.to_vec(),
            stall: None,
            no_length: false,
            claimed_len: None,
        }
    }
    fn status(status: &'static str) -> Reply {
        Reply {
            status,
            ..Reply::ok(b"")
        }
    }
    fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
}

/// A loopback HTTP/1.1 server; `route(path, nth request to it)` answers.
pub struct Server {
    pub addr: SocketAddr,
    hits: Hits,
    tls: bool,
}

type Hits = Arc<Mutex<HashMap<String, u32>>>;

impl Server {
    /// Plain HTTP.
    pub async fn start(route: fn(&str, u32) -> Reply) -> Server {
        Server::listen(route, None).await
    }

    /// HTTPS with a fresh self-signed certificate for `127.0.0.1`; returns
    /// the certificate (PEM) for the client to trust.
    pub async fn start_tls(route: fn(&str, u32) -> Reply) -> (Server, Vec<u8>) {
        use tokio_rustls::rustls;
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let server = Server::listen(route, Some(acceptor)).await;
        (server, cert.cert.pem().into_bytes())
    }

    async fn listen(
        route: fn(&str, u32) -> Reply,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits: Hits = Arc::default();
        let counts = hits.clone();
        let tls_url = tls.is_some();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let counts = counts.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(sock) = acceptor.accept(tcp).await {
                                serve(sock, counts, route).await;
                            }
                        }
                        None => serve(tcp, counts, route).await,
                    }
                });
            }
        });
        Server {
            addr,
            hits,
            tls: tls_url,
        }
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    pub fn hits(&self, path: &str) -> u32 {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

async fn serve<S>(mut sock: S, counts: Hits, route: fn(&str, u32) -> Reply)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
    let nth = {
        let mut c = counts.lock().unwrap();
        let n = c.entry(path.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let reply = route(&path, nth);
    let mut out = format!("HTTP/1.1 {}\r\nConnection: close\r\n", reply.status);
    if !reply.no_length {
        let len = reply.claimed_len.unwrap_or(reply.body.len());
        out.push_str(&format!("Content-Length: {len}\r\n"));
    }
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    if sock.write_all(out.as_bytes()).await.is_err() {
        return;
    }
    if let Some(d) = reply.stall {
        tokio::time::sleep(d).await;
    }
    let _ = sock.write_all(&reply.body).await;
    let _ = sock.shutdown().await;
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

const LIMIT: u64 = 64 * 1024;

pub fn routes(path: &str, nth: u32) -> Reply {
    match path {
        "/data/hello.txt" => Reply::ok(b"hello\n"),
        "/redirect" => Reply::status("302 Found").header("Location", "/data/hello.txt"),
        "/loop" => Reply::status("302 Found").header("Location", "/loop"),
        "/missing" => Reply::status("404 Not Found"),
        "/flaky" if nth == 1 => Reply::status("503 Service Unavailable"),
        "/flaky" => Reply::ok(b"second time lucky"),
        "/busy" if nth == 1 => Reply::status("429 Too Many Requests"),
        "/busy" => Reply::ok(b"ok"),
        "/down" => Reply::status("500 Internal Server Error"),
        "/cut" if nth == 1 => Reply {
            claimed_len: Some(1000),
            ..Reply::ok(b"only the first part")
        },
        "/cut" => Reply::ok(b"all of it"),
        "/slow" => Reply {
            stall: Some(Duration::from_secs(5)),
            ..Reply::ok(b"too late")
        },
        "/big" => Reply::ok(&vec![b'x'; LIMIT as usize + 1]),
        "/big-unannounced" => Reply {
            no_length: true,
            ..Reply::ok(&vec![b'x'; LIMIT as usize * 4])
        },
        "/gz/text" => Reply::ok(&gzip(&b"compressed ".repeat(1000)))
            .header("Content-Encoding", "gzip")
            .header("Content-Type", "text/plain"),
        "/cd/traversal" => Reply::ok(b"a").header(
            "Content-Disposition",
            "attachment; filename=\"../../etc/passwd\"",
        ),
        "/cd/absolute" => Reply::ok(b"b").header(
            "Content-Disposition",
            "attachment; filename=\"/etc/shadow\"",
        ),
        "/cd/nul" => Reply::ok(b"c").header(
            "Content-Disposition",
            "attachment; filename*=UTF-8''evil%00name%2F..%2F..%2Fx.sh",
        ),
        "/cd/dots" => Reply::ok(b"d").header("Content-Disposition", "attachment; filename=\"..\""),
        _ => Reply::status("404 Not Found"),
    }
}

fn downloader() -> Downloader {
    Downloader::new(DownloadConfig {
        max_bytes: LIMIT,
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_millis(500),
        retries: 2,
        backoff: Duration::from_millis(20),
        max_redirects: 3,
        extra_roots_pem: Vec::new(),
        // The test servers live on loopback.
        allow_private: true,
    })
    .unwrap()
}

/// Every file in `dir`, hidden partial files included.
fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

// R-VOL-1: a plain download is named from the URL and its CID recorded.
#[tokio::test]
async fn download_records_cid() {
    let server = Server::start(routes).await;
    let dir = tempfile::tempdir().unwrap();
    let got = downloader()
        .download(&server.url("/data/hello.txt"), dir.path())
        .await
        .unwrap();
    assert_eq!(got.path, dir.path().join("hello.txt"));
    assert_eq!(std::fs::read(&got.path).unwrap(), b"hello\n");
    assert_eq!(
        got.cid,
        storage::cid::file_cid(blake3::hash(b"hello\n").into())
    );
    assert_eq!(got.attempts, 1);
    assert_eq!(file_hash(&got.path), blake3::hash(b"hello\n"));
}

// R-VOL-1: redirects are followed, but only so many.
#[tokio::test]
async fn redirects_are_bounded() {
    let server = Server::start(routes).await;
    let dir = tempfile::tempdir().unwrap();
    let got = downloader()
        .download(&server.url("/redirect"), dir.path())
        .await
        .unwrap();
    assert_eq!(got.path, dir.path().join("hello.txt"));
    let err = downloader()
        .download(&server.url("/loop"), dir.path())
        .await
        .unwrap_err();
    assert!(matches!(err, DownloadError::Request { .. }), "{err}");
    assert_eq!(server.hits("/loop"), 4, "first request + 3 redirects");
}

// R-VOL-1: a 404 is final: one request, no retry, no file left behind.
#[tokio::test]
async fn not_found_is_not_retried() {
    let server = Server::start(routes).await;
    let dir = tempfile::tempdir().unwrap();
    let err = downloader()
        .download(&server.url("/missing"), dir.path())
        .await
        .unwrap_err();
    assert!(
        matches!(err, DownloadError::Status { status: 404, .. }),
        "{err}"
    );
    assert_eq!(server.hits("/missing"), 1);
    assert!(names(dir.path()).is_empty());
}

// R-VOL-1: 503 and 429 are transient: retried with backoff, then success;
// a server that keeps failing is given up after the retry budget.
#[tokio::test]
async fn transient_errors_are_retried() {
    let server = Server::start(routes).await;
    let dir = tempfile::tempdir().unwrap();
    let got = downloader()
        .download(&server.url("/flaky"), dir.path())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), b"second time lucky");
    assert_eq!((got.attempts, server.hits("/flaky")), (2, 2));
    let got = downloader()
        .download(&server.url("/busy"), dir.path())
        .await
        .unwrap();
    assert_eq!(got.attempts, 2);
    let err = downloader()
        .download(&server.url("/down"), dir.path())
        .await
        .unwrap_err();
    assert!(
        matches!(err, DownloadError::Exhausted { attempts: 3, .. }),
        "{err}"
    );
    assert_eq!(server.hits("/down"), 3);
}

// R-VOL-1: a body cut short is transient: the download starts again and
// the file holds the complete second body, nothing of the first.
#[tokio::test]
async fn cut_body_is_retried() {
    let server = Server::start(routes).await;
    let dir = tempfile::tempdir().unwrap();
    let got = downloader()
        .download(&server.url("/cut"), dir.path())
        .await
        .unwrap();
    assert_eq!(got.attempts, 2);
    assert_eq!(std::fs::read(&got.path).unwrap(), b"all of it");
    assert_eq!(names(dir.path()), ["cut"]);
}

// R-VOL-1: a connection refused is transient too, and bounded.
#[tokio::test]
async fn refused_connection_is_retried_then_fails() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let err = downloader()
        .download(&format!("http://{addr}/x"), dir.path())
        .await
        .unwrap_err();
    assert!(
        matches!(err, DownloadError::Exhausted { attempts: 3, .. }),
        "{err}"
    );
}

// R-VOL-1: a server that stops sending hits the read timeout.
#[tokio::test]
async fn slow_server_times_out() {
    let server = Server::start(routes).await;
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let err = downloader()
        .download(&server.url("/slow"), dir.path())
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

// R-VOL-1: the size limit holds whether the server announces the length
// or not; nothing is left behind.
#[tokio::test]
async fn oversized_bodies_are_refused() {
    let server = Server::start(routes).await;
    let dir = tempfile::tempdir().unwrap();
    for path in ["/big", "/big-unannounced"] {
        let err = downloader()
            .download(&server.url(path), dir.path())
            .await
            .unwrap_err();
        assert!(
            matches!(err, DownloadError::TooLarge { .. }),
            "{path}: {err}"
        );
        assert_eq!(server.hits(path), 1, "{path}: not retried");
    }
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

// R-VOL-1: gzip content encoding is undone; the CID is of what the job sees.
#[tokio::test]
async fn gzip_is_decoded() {
    let server = Server::start(routes).await;
    let dir = tempfile::tempdir().unwrap();
    let got = downloader()
        .download(&server.url("/gz/text"), dir.path())
        .await
        .unwrap();
    let plain = b"compressed ".repeat(1000);
    assert_eq!(std::fs::read(&got.path).unwrap(), plain);
    assert_eq!(got.size, plain.len() as u64);
    assert_eq!(got.cid, storage::cid::file_cid(blake3::hash(&plain).into()));
}

// R-VOL-1: hostile Content-Disposition names cannot leave the directory.
#[tokio::test]
async fn hostile_content_disposition() {
    let server = Server::start(routes).await;
    let outer = tempfile::tempdir().unwrap();
    let dir = outer.path().join("target");
    std::fs::create_dir(&dir).unwrap();
    let want = [
        ("/cd/traversal", "passwd"),
        ("/cd/absolute", "shadow"),
        ("/cd/nul", "x.sh"),
        // `..` is no name: the URL's last segment is used instead.
        ("/cd/dots", "dots"),
    ];
    for (path, name) in want {
        let got = downloader()
            .download(&server.url(path), &dir)
            .await
            .unwrap();
        assert_eq!(got.path, dir.join(name), "{path}");
    }
    assert_eq!(names(outer.path()), ["target"]);
    assert_eq!(names(&dir), ["dots", "passwd", "shadow", "x.sh"]);
}

// R-VOL-1: HTTPS through rustls: a server the node trusts is downloaded
// from (gzip and redirects included); an untrusted certificate is refused,
// not retried.
#[tokio::test]
async fn https_downloads_verify_the_server() {
    let (server, pem) = Server::start_tls(routes).await;
    let dir = tempfile::tempdir().unwrap();
    let trusting = Downloader::new(DownloadConfig {
        extra_roots_pem: vec![pem],
        allow_private: true,
        ..DownloadConfig::default()
    })
    .unwrap();
    let got = trusting
        .download(&server.url("/redirect"), dir.path())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), b"hello\n");
    let got = trusting
        .download(&server.url("/gz/text"), dir.path())
        .await
        .unwrap();
    assert_eq!(got.size, 11_000);

    let err = downloader()
        .download(
            &server.url("/data/hello.txt"),
            tempfile::tempdir().unwrap().path(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DownloadError::Request { .. }), "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
}

// R-VOL-1, SPEC §6: by default the node downloads only from public
// addresses: loopback by IP literal (any spelling) or by a name that
// resolves to it is refused before any request, and not retried.
#[tokio::test]
async fn private_addresses_are_refused_by_default() {
    let server = Server::start(routes).await;
    let guarded = Downloader::new(DownloadConfig {
        retries: 2,
        backoff: Duration::from_millis(20),
        ..DownloadConfig::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = server.addr.port();
    for url in [
        server.url("/data/hello.txt"),
        format!("http://localhost:{port}/data/hello.txt"),
        format!("http://2130706433:{port}/data/hello.txt"),
        format!("http://[::ffff:127.0.0.1]:{port}/data/hello.txt"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ] {
        let err = guarded.download(&url, dir.path()).await.unwrap_err();
        assert!(matches!(err, DownloadError::Blocked { .. }), "{url}: {err}");
        assert!(err.to_string().contains("public addresses"), "{err}");
    }
    assert_eq!(server.hits("/data/hello.txt"), 0);
    assert!(names(dir.path()).is_empty());
}

// R-SEC-3: a service listening only on the node's own public address is the
// node's, not the world's: a URL input naming that address is refused like
// loopback. The address is a trap on this host's loopback interface with a
// listener, so a download that got through is counted here.
#[tokio::test]
async fn r_sec_3_the_nodes_own_public_address_is_refused() {
    let Some(trap) = testkit::Trap::add("11.22.2.1", SETTLE).await else {
        return;
    };
    let listener = TcpListener::bind((trap.ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\ntrap")
                .await;
        }
    });
    let guarded = Downloader::new(DownloadConfig {
        retries: 1,
        backoff: Duration::from_millis(20),
        ..DownloadConfig::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for url in [
        format!("http://11.22.2.1:{port}/secret"),
        format!("http://[::ffff:11.22.2.1]:{port}/secret"),
    ] {
        let err = guarded.download(&url, dir.path()).await.unwrap_err();
        assert!(matches!(err, DownloadError::Blocked { .. }), "{url}: {err}");
        assert!(err.to_string().contains("an address of this node"), "{err}");
    }
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(names(dir.path()).is_empty());
}
