//! WASM jobs in `http` mode (R-NET-10): a real WASI 0.2 component (probe.wat,
//! componentized here against wit/probe.wit) makes wasi-http requests that go
//! through the egress proxy's decision, connector, rate limiter and audit.
//!
//! Every target is a listener of this test on a loopback address, named
//! through the executor's fixed answers (like the proxy's `--resolve`); a
//! listener counts its connections, so a refusal that leaked would show.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use protocol::domain::DomainSet;
use protocol::job::{
    DEFAULT_WASM_ENTRYPOINT, InlineSource, ModuleSource, Network, NetworkMode, Source, WasmParams,
};
use proxy::{AuditRecord, Cidr, Verdict};
use skrei_node::executor::wasm::{Cancel, WasmExecutor, WasmNetwork, WasmTask, is_component};
use skrei_node::executor::{ExecError, ExecutionDir, Limits, RunOutcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `error-code` case `HTTP-request-denied`, as the probe prints it.
const DENIED: &str = "error 15\n";

/// The probe component, built once.
pub(crate) fn probe() -> &'static [u8] {
    static PROBE: OnceLock<Vec<u8>> = OnceLock::new();
    PROBE.get_or_init(|| componentize("probe", include_str!("probe.wat")))
}

/// `wat`, a core module, made a component of `world` (in wit/probe.wit).
pub(crate) fn componentize(world: &str, wat: &str) -> Vec<u8> {
    let wit = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/wit");
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve.push_dir(wit).expect("the test WIT parses");
    let world = resolve.select_world(&[pkg], Some(world)).unwrap();
    let mut module = wat::parse_str(wat).expect("the WAT parses");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .expect("the module componentizes")
}

/// A one-request-per-connection HTTP server answering `body` to anything.
struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    /// The request heads received, in order.
    heads: Arc<std::sync::Mutex<Vec<String>>>,
}

async fn server(ip: &str, body: Vec<u8>) -> Server {
    serve(ip, body, None).await
}

/// HTTPS with a fresh self-signed certificate for `name`; returns the
/// certificate for the node to trust.
async fn tls_server(
    name: &str,
    body: Vec<u8>,
) -> (
    Server,
    tokio_rustls::rustls::pki_types::CertificateDer<'static>,
) {
    use tokio_rustls::rustls;
    let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
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
    let server = serve("127.0.0.1", body, Some(acceptor)).await;
    (server, cert.cert.der().clone())
}

async fn serve(ip: &str, body: Vec<u8>, tls: Option<tokio_rustls::TlsAcceptor>) -> Server {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = heads.clone();
    let body = Arc::new(body);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            let tls = tls.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(s) = acceptor.accept(tcp).await {
                            answer(s, &body, &seen).await;
                        }
                    }
                    None => answer(tcp, &body, &seen).await,
                }
            });
        }
    });
    Server {
        addr,
        connections,
        heads,
    }
}

async fn answer<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    body: &[u8],
    heads: &std::sync::Mutex<Vec<String>>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    heads
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&head).into_owned());
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(reply.as_bytes()).await;
    let _ = s.write_all(body).await;
    let _ = s.shutdown().await;
}

struct Job {
    _tmp: tempfile::TempDir,
    dir: ExecutionDir,
    params: WasmParams,
    env: BTreeMap<String, String>,
    network: Network,
}

impl Job {
    /// A job GETting `http://authority/hello` with `domains` in `mode`.
    fn new(mode: NetworkMode, domains: &[&str], authority: &str) -> Job {
        let tmp = tempfile::tempdir().unwrap();
        Job {
            dir: ExecutionDir::new(tmp.path().join("exec")),
            _tmp: tmp,
            params: WasmParams {
                entry_module: ModuleSource {
                    source: Source::Inline(InlineSource {
                        url: "data:application/wasm;base64,".into(),
                    }),
                },
                entrypoint: DEFAULT_WASM_ENTRYPOINT.into(),
                parameters: vec!["http".into(), authority.into(), "/hello".into()],
                environment_variables: BTreeMap::new(),
            },
            env: BTreeMap::new(),
            network: Network {
                r#type: mode,
                domains: DomainSet::parse(domains.iter().copied()).unwrap(),
            },
        }
    }

    async fn run(&self, exec: &WasmExecutor, deny: &[SocketAddr]) -> Result<RunOutcome, ExecError> {
        let limits = Limits {
            timeout: std::time::Duration::from_secs(60),
            ..Limits::default()
        };
        self.run_with(exec, deny, limits).await
    }

    async fn run_with(
        &self,
        exec: &WasmExecutor,
        deny: &[SocketAddr],
        limits: Limits,
    ) -> Result<RunOutcome, ExecError> {
        let task = WasmTask {
            execution_id: "wasm-http-1",
            module: probe(),
            params: &self.params,
            task_env: &self.env,
            inputs: &[],
            result_paths: &[],
            network: &self.network,
            dir: &self.dir,
            limits,
            deny,
        };
        exec.run(task, Cancel::default()).await
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.results().join("stdout")).unwrap()
    }

    fn log(&self) -> Vec<AuditRecord> {
        std::fs::read_to_string(self.dir.results().join("network.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON record per line"))
            .collect()
    }
}

/// Every port: the test servers listen on ports of the system's choosing
/// (the port rule itself has its own test).
fn every_port() -> Vec<u16> {
    (1..=u16::MAX).collect()
}

/// An executor that maps `names` to `ip` and allows 127.0.0.1/32 only.
fn executor(names: &[&str], ip: &str, rate: u64) -> WasmExecutor {
    WasmExecutor::new(false).unwrap().with_network(WasmNetwork {
        http_rate: rate,
        allow_ranges: vec![Cidr::parse("127.0.0.1/32").unwrap()],
        http_ports: every_port(),
        connect_ports: every_port(),
        resolve: names
            .iter()
            .map(|n| (n.to_string(), ip.parse().unwrap()))
            .collect(),
        ..WasmNetwork::default()
    })
}

#[test]
fn the_probe_is_a_component() {
    assert!(is_component(probe()));
    assert!(!is_component(&wat::parse_str("(module)").unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_net_10_allowed_domain_gets_its_answer_and_is_logged() {
    let srv = server("127.0.0.1", b"hello from the test server".to_vec()).await;
    let exec = executor(&["api.allowed.test"], "127.0.0.1", proxy::DEFAULT_RATE);
    let job = Job::new(
        NetworkMode::Http,
        &[".allowed.test"],
        &format!("api.allowed.test:{}", srv.addr.port()),
    );
    let out = job.run(&exec, &[]).await.unwrap();
    assert_eq!(out.exit_code, 0);
    assert_eq!(job.stdout(), "status 200\nhello from the test server");
    assert_eq!(srv.connections.load(Ordering::SeqCst), 1);
    let log = job.log();
    assert_eq!(log.len(), 1, "{log:?}");
    let r = &log[0];
    assert_eq!(r.decision, Verdict::Allow);
    assert_eq!(r.job, "wasm-http-1");
    assert_eq!(r.method, "GET");
    assert_eq!(r.host, "api.allowed.test");
    assert_eq!(r.port, Some(srv.addr.port()));
    assert_eq!(r.ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(r.status, Some(200));
    assert!(r.bytes_up > 0 && r.bytes_down > 26, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_net_10_https_to_an_allowed_domain_verifies_the_certificate() {
    let (srv, cert) = tls_server("tls.allowed.test", b"over tls".to_vec()).await;
    let network = |roots| WasmNetwork {
        allow_ranges: vec![Cidr::parse("127.0.0.1/32").unwrap()],
        resolve: vec![("tls.allowed.test".into(), "127.0.0.1".parse().unwrap())],
        extra_roots: roots,
        connect_ports: every_port(),
        ..WasmNetwork::default()
    };
    let mut job = Job::new(
        NetworkMode::Http,
        &[".allowed.test"],
        &format!("tls.allowed.test:{}", srv.addr.port()),
    );
    job.params.parameters[0] = "https".into();
    let trusting = WasmExecutor::new(false)
        .unwrap()
        .with_network(network(vec![cert]));
    job.run(&trusting, &[]).await.unwrap();
    assert_eq!(job.stdout(), "status 200\nover tls");
    let log = job.log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0].decision, log[0].status),
        (Verdict::Allow, Some(200))
    );

    // Without the test's root the certificate is not trusted.
    let job2 = Job {
        params: job.params.clone(),
        ..Job::new(NetworkMode::Http, &[".allowed.test"], "unused")
    };
    let strict = WasmExecutor::new(false)
        .unwrap()
        .with_network(network(vec![]));
    job2.run(&strict, &[]).await.unwrap();
    assert!(job2.stdout().starts_with("error "), "{}", job2.stdout());
    assert_ne!(job2.stdout(), DENIED);
}

/// R-NET-7: like the sidecar, WASM egress marks every request with the real
/// execution id in `X-Skrei-Job` (which the node API refuses), over HTTP and
/// HTTPS alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_net_7_requests_carry_the_job_header() {
    let srv = server("127.0.0.1", b"seen".to_vec()).await;
    let exec = executor(&["api.allowed.test"], "127.0.0.1", proxy::DEFAULT_RATE);
    let job = Job::new(
        NetworkMode::Http,
        &[".allowed.test"],
        &format!("api.allowed.test:{}", srv.addr.port()),
    );
    job.run(&exec, &[]).await.unwrap();
    assert_eq!(job.stdout(), "status 200\nseen");
    let (tls, cert) = tls_server("tls.allowed.test", b"seen".to_vec()).await;
    let trusting = WasmExecutor::new(false).unwrap().with_network(WasmNetwork {
        allow_ranges: vec![Cidr::parse("127.0.0.1/32").unwrap()],
        resolve: vec![("tls.allowed.test".into(), "127.0.0.1".parse().unwrap())],
        extra_roots: vec![cert],
        connect_ports: every_port(),
        ..WasmNetwork::default()
    });
    let mut job = Job::new(
        NetworkMode::Http,
        &[".allowed.test"],
        &format!("tls.allowed.test:{}", tls.addr.port()),
    );
    job.params.parameters[0] = "https".into();
    job.run(&trusting, &[]).await.unwrap();
    assert_eq!(job.stdout(), "status 200\nseen");
    for heads in [&srv.heads, &tls.heads] {
        let heads = heads.lock().unwrap();
        assert_eq!(heads.len(), 1, "{heads:?}");
        let lines: Vec<&str> = heads[0].lines().collect();
        assert!(
            lines
                .iter()
                .any(|l| l.eq_ignore_ascii_case("x-skrei-job: wasm-http-1")),
            "{lines:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_net_10_domain_not_listed_is_refused_and_logged() {
    let srv = server("127.0.0.1", b"leak".to_vec()).await;
    let exec = executor(&["other.test"], "127.0.0.1", proxy::DEFAULT_RATE);
    let job = Job::new(
        NetworkMode::Http,
        &[".allowed.test"],
        &format!("other.test:{}", srv.addr.port()),
    );
    let out = job.run(&exec, &[]).await.unwrap();
    assert_eq!(out.exit_code, 0);
    assert_eq!(job.stdout(), DENIED);
    assert_eq!(srv.connections.load(Ordering::SeqCst), 0);
    let log = job.log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].decision, Verdict::Deny);
    assert_eq!(log[0].host, "other.test");
    assert!(
        log[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("not in the job's allowed domains"),
        "{log:?}"
    );
}

/// R-NET-3: plain HTTP goes to port 80 and HTTPS to 443 unless the node
/// lists more, as through the sidecar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_net_3_ports_other_than_the_listed_ones_are_refused() {
    let srv = server("127.0.0.1", b"leak".to_vec()).await;
    let p = srv.addr.port();
    let exec = WasmExecutor::new(false).unwrap().with_network(WasmNetwork {
        allow_ranges: vec![Cidr::parse("127.0.0.1/32").unwrap()],
        resolve: vec![("db.allowed.test".into(), "127.0.0.1".parse().unwrap())],
        ..WasmNetwork::default()
    });
    for (scheme, why) in [
        (
            "http",
            format!("plain HTTP to port {p} is not allowed (allowed: 80)"),
        ),
        (
            "https",
            format!("HTTPS (CONNECT) to port {p} is not allowed (allowed: 443)"),
        ),
    ] {
        let mut job = Job::new(
            NetworkMode::Http,
            &[".allowed.test"],
            &format!("db.allowed.test:{p}"),
        );
        job.params.parameters[0] = scheme.into();
        job.run(&exec, &[]).await.unwrap();
        assert_eq!(job.stdout(), DENIED, "{scheme}");
        let log = job.log();
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!(log[0].decision, Verdict::Deny);
        assert_eq!(log[0].reason.as_deref(), Some(why.as_str()), "{log:?}");
    }
    assert_eq!(srv.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_net_7_deny_set_wins_over_the_job_list() {
    let srv = server("127.0.0.1", b"leak".to_vec()).await;
    let exec = executor(&["node.allowed.test"], "127.0.0.1", proxy::DEFAULT_RATE);
    let job = Job::new(
        NetworkMode::Http,
        &[".allowed.test"],
        &format!("node.allowed.test:{}", srv.addr.port()),
    );
    job.run(&exec, &[srv.addr]).await.unwrap();
    assert_eq!(job.stdout(), DENIED);
    assert_eq!(srv.connections.load(Ordering::SeqCst), 0);
    let log = job.log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].decision, Verdict::Deny);
    assert_eq!(log[0].ip, Some(srv.addr.ip()));
    assert!(
        log[0].reason.as_deref().unwrap().contains("deny set"),
        "{log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_net_8_special_address_outside_the_allowed_range_is_refused() {
    // 127.0.0.2 is loopback, and the node allows 127.0.0.1/32 only.
    let srv = server("127.0.0.2", b"leak".to_vec()).await;
    let exec = executor(&["inner.allowed.test"], "127.0.0.2", proxy::DEFAULT_RATE);
    for authority in [
        format!("inner.allowed.test:{}", srv.addr.port()),
        format!("127.0.0.2:{}", srv.addr.port()),
    ] {
        let job = Job::new(
            NetworkMode::Http,
            &[".allowed.test", "127.0.0.2"],
            &authority,
        );
        job.run(&exec, &[]).await.unwrap();
        assert_eq!(job.stdout(), DENIED, "{authority}");
        let log = job.log();
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!(log[0].decision, Verdict::Deny);
        assert!(
            log[0].reason.as_deref().unwrap().contains("loopback"),
            "{log:?}"
        );
    }
    assert_eq!(srv.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_net_6_the_job_rate_paces_the_response() {
    // 150,000 bytes at 100,000 bytes/s cannot take less than 1.28 s: less a
    // 5,000-byte burst and the last read of at most 16 KiB, whose debt is
    // never waited out. A lower bound, which load cannot make flaky.
    let body = vec![b'x'; 150_000];
    let srv = server("127.0.0.1", body).await;
    let exec = executor(&["big.allowed.test"], "127.0.0.1", 100_000);
    let job = Job::new(
        NetworkMode::Http,
        &[".allowed.test"],
        &format!("big.allowed.test:{}", srv.addr.port()),
    );
    job.run(&exec, &[]).await.unwrap();
    assert_eq!(job.stdout().len(), "status 200\n".len() + 150_000);
    let log = job.log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0].bytes_down >= 150_000, "{log:?}");
    assert!(log[0].duration_ms >= 1_280, "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_net_10_none_links_no_wasi_http_and_full_is_refused() {
    let exec = executor(&[], "127.0.0.1", proxy::DEFAULT_RATE);
    let job = Job::new(NetworkMode::None, &[], "127.0.0.1:9");
    let err = job.run(&exec, &[]).await.unwrap_err();
    assert!(
        matches!(&err, ExecError::Missing(m) if m.contains("cannot be instantiated")),
        "{err}"
    );
    assert!(job.log().is_empty());
    let job = Job::new(NetworkMode::Full, &[], "127.0.0.1:9");
    let err = job.run(&exec, &[]).await.unwrap_err();
    assert!(matches!(err, ExecError::Unavailable(_)), "{err}");
}

/// R-SEC-4, R-NET-9: a job that makes requests faster than anyone reads
/// them cannot hide what it did last: past the cap (the task's output
/// limit) network.log keeps the most recent records and opens with a line
/// that counts the dropped ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_sec_4_network_log_keeps_the_latest_records_past_its_cap() {
    const N: usize = 60;
    const CAP: u64 = 4096;
    let exec = executor(&[], "127.0.0.1", proxy::DEFAULT_RATE);
    // Refused by the job's domains: no name is resolved, nothing connects.
    let mut job = Job::new(NetworkMode::Http, &[".allowed.test"], "denied-0.test");
    job.params
        .parameters
        .extend((1..N).map(|i| format!("denied-{i}.test")));
    let limits = Limits {
        timeout: std::time::Duration::from_secs(60),
        output_bytes: CAP,
        ..Limits::default()
    };
    job.run_with(&exec, &[], limits).await.unwrap();
    assert_eq!(job.stdout(), DENIED.repeat(N));
    let text = std::fs::read_to_string(job.dir.results().join("network.log")).unwrap();
    assert!(text.len() as u64 <= CAP, "{} bytes", text.len());
    let lines: Vec<&str> = text.lines().collect();
    let note: proxy::Dropped = serde_json::from_str(lines[0]).expect("a note first");
    let records: Vec<AuditRecord> = lines[1..]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(note.dropped_records > 0, "{note:?}");
    assert_eq!(note.dropped_records as usize + records.len(), N);
    let first = note.dropped_records as usize;
    let hosts: Vec<String> = records.iter().map(|r| r.host.clone()).collect();
    let latest: Vec<String> = (first..N).map(|i| format!("denied-{i}.test")).collect();
    assert_eq!(hosts, latest);
}
