//! The `http` sidecar against a real Docker engine: the host's own
//! addresses (R-SEC-3, R-NET-7), plain-HTTP ports (R-NET-3) and the audit
//! cap (R-SEC-4, R-NET-9). Images are built by the tests (see `docker.rs`);
//! without a reachable engine the tests skip unless `SKREI_REQUIRE_DOCKER=1`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use protocol::domain::DomainSet;
use protocol::job::{DockerParams, Network, NetworkMode};
use skrei_node::executor::docker::DockerTask;
use skrei_node::executor::{Cancel, DockerConfig, DockerExecutor, ExecutionDir, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::docker::{BANNER, docker0, engine, probe_image, require_docker};
use testkit::Trap;

/// How long a new trap address takes to be seen by every view of this
/// host's addresses.
const SETTLE: std::time::Duration =
    std::time::Duration::from_millis(proxy::local::REFRESH.as_millis() as u64 + 200);

/// A listener on `ip` that answers like a web server and counts connections.
async fn counting_server(ip: IpAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BANNER}",
                    BANNER.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    (addr, hits)
}

struct Sidecar {
    _tmp: tempfile::TempDir,
    dir: ExecutionDir,
    exec: DockerExecutor,
    image: String,
}

impl Sidecar {
    /// An executor whose `http` jobs get a sidecar; `None` to skip.
    async fn new(name: &str, tune: impl FnOnce(&mut DockerConfig)) -> Option<Sidecar> {
        let docker = engine().await?;
        let image = probe_image(&docker).await;
        let mut config = DockerConfig {
            owner: format!("test-egress-{name}-{}", std::process::id()),
            sidecar_executable: Some(PathBuf::from(env!("CARGO_BIN_EXE_skrei"))),
            ..DockerConfig::default()
        };
        tune(&mut config);
        let exec = DockerExecutor::new(config)
            .await
            .expect("the Docker executor starts");
        if let Err(why) = exec.http_support() {
            assert!(
                !require_docker(),
                "this engine cannot isolate http jobs: {why}"
            );
            eprintln!("skipping: {why}");
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = ExecutionDir::new(tmp.path().join("exec"));
        Some(Sidecar {
            _tmp: tmp,
            dir,
            exec,
            image,
        })
    }

    /// Runs the probe with `cmd` in an `http` job for `domains`; its lines.
    async fn probe(&self, domains: &[&str], cmd: &str, limits: Limits) -> Vec<String> {
        let mut args = vec!["/probe".to_string()];
        args.extend(cmd.split_whitespace().map(str::to_owned));
        let params = DockerParams {
            image: self.image.clone(),
            entrypoint: vec![],
            parameters: args,
            environment_variables: vec![],
            working_directory: None,
        };
        let network = Network {
            r#type: NetworkMode::Http,
            domains: DomainSet::parse(domains).unwrap(),
        };
        let env = BTreeMap::new();
        let outcome = self
            .exec
            .run(
                DockerTask {
                    execution_id: "exec-egress",
                    params: &params,
                    task_env: &env,
                    inputs: &[],
                    result_paths: &[],
                    network: &network,
                    dir: &self.dir,
                    limits,
                    deny: &[],
                },
                Cancel::default(),
            )
            .await
            .expect("the probe runs");
        assert_eq!(outcome.exit_code, 0, "stderr: {}", self.read("stderr"));
        let stdout = self.read("stdout");
        eprintln!("probe:\n{stdout}");
        stdout.lines().map(str::to_owned).collect()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.results().join(name)).unwrap_or_default()
    }

    fn log(&self) -> Vec<serde_json::Value> {
        self.read("network.log")
            .lines()
            .map(|l| serde_json::from_str(l).expect("network.log lines are JSON"))
            .collect()
    }
}

fn limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(120),
        memory_bytes: 64 << 20,
        output_bytes: 1 << 20,
        cpu_millis: Some(1000),
        fuel: None,
    }
}

/// R-SEC-3: the sidecar runs in a network namespace of its own, whose
/// interfaces are the container's; the node gives it the host's addresses,
/// so a service listening only on the host's public address stays out of
/// reach, by plain HTTP and by CONNECT. The address is a trap on the host's
/// loopback interface with a listener: a request that got through is
/// counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_sec_3_the_sidecar_refuses_the_hosts_own_public_address() {
    let Some(trap) = Trap::add("11.22.3.1", SETTLE).await else {
        return;
    };
    let (server, hits) = counting_server(trap.ip).await;
    let port = server.port();
    let Some(s) = Sidecar::new("own", |c| {
        c.connect_ports = vec![port];
        c.http_ports = vec![port];
    })
    .await
    else {
        return;
    };
    let lines = s
        .probe(
            &["11.22.3.1"],
            &format!("http http://11.22.3.1:{port}/ , connect 11.22.3.1:{port}"),
            limits(),
        )
        .await;
    assert!(lines[0].starts_with("http 403"), "{lines:?}");
    assert!(lines[1].starts_with("connect 403"), "{lines:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the trap was reached");
    let log = s.log();
    assert_eq!(log.len(), 2, "{log:?}");
    for r in &log {
        assert_eq!(r["status"], 403);
        assert!(
            r["reason"]
                .as_str()
                .unwrap()
                .contains("an address of this node"),
            "{r}"
        );
    }
}

/// R-NET-3: the sidecar sends plain HTTP to port 80 only unless the node
/// lists more: a POST to another port of an allowed host is refused, and
/// the listener there (on the host, at the Docker bridge's gateway, which
/// the node allows) sees nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_net_3_the_sidecar_refuses_plain_http_to_unlisted_ports() {
    let Some(docker) = engine().await else {
        return;
    };
    let gw = docker0(&docker).await;
    let (server, hits) = counting_server(IpAddr::V4(gw)).await;
    let port = server.port();
    let Some(s) = Sidecar::new("ports", |c| {
        c.resolve = vec![("db.allowed.test".into(), IpAddr::V4(gw))];
        c.allow_ranges = vec![format!("{gw}/32").parse().unwrap()];
    })
    .await
    else {
        return;
    };
    let lines = s
        .probe(
            &[".allowed.test"],
            &format!("http http://db.allowed.test:{port}/"),
            limits(),
        )
        .await;
    assert!(lines[0].starts_with("http 403"), "{lines:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the listener was reached");
    let log = s.log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        log[0]["reason"],
        format!("plain HTTP to port {port} is not allowed (allowed: 80)")
    );
}

/// R-SEC-4, R-NET-9: a job that floods its proxy with refused requests
/// cannot hide what it did last: past the cap (the task's output limit)
/// network.log keeps the most recent records and opens with a line that
/// counts the dropped ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_sec_4_network_log_keeps_the_latest_records_past_its_cap() {
    const N: usize = 60;
    const CAP: u64 = 4096;
    let Some(s) = Sidecar::new("cap", |_| {}).await else {
        return;
    };
    // Refused by the job's domains: nothing is resolved or connected.
    let cmd: Vec<String> = (0..N)
        .map(|i| format!("http http://denied-{i}.test/"))
        .collect();
    let lines = s
        .probe(
            &[".allowed.test"],
            &cmd.join(" , "),
            Limits {
                output_bytes: CAP,
                ..limits()
            },
        )
        .await;
    assert_eq!(lines.len(), N, "{lines:?}");
    assert!(lines.iter().all(|l| l.starts_with("http 403")), "{lines:?}");
    let text = s.read("network.log");
    assert!(text.len() as u64 <= CAP, "{} bytes", text.len());
    let log = s.log();
    let note: proxy::Dropped = serde_json::from_value(log[0].clone()).expect("a note first");
    assert!(note.dropped_records > 0, "{note:?}");
    let records = &log[1..];
    assert_eq!(note.dropped_records as usize + records.len(), N);
    let hosts: Vec<&str> = records
        .iter()
        .map(|r| r["host"].as_str().unwrap())
        .collect();
    assert_latest_kept(&hosts, N);
}

/// `hosts` (`denied-I.test`) are the most recent of `n` requests. A record
/// is written when its connection ends, and the probe has its answer a
/// moment before that, so neighbours may swap places: the kept ones may
/// reach two places further back.
fn assert_latest_kept(hosts: &[&str], n: usize) {
    let mut kept: Vec<usize> = hosts
        .iter()
        .map(|h| h["denied-".len()..h.len() - ".test".len()].parse().unwrap())
        .collect();
    kept.sort_unstable();
    kept.dedup();
    assert_eq!(kept.len(), hosts.len(), "{hosts:?}");
    let oldest = n - kept.len();
    assert!(kept[0] + 2 >= oldest, "{hosts:?}");
    assert!(kept.ends_with(&[n - 3, n - 2, n - 1]), "{hosts:?}");
}
