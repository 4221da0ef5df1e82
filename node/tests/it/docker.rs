//! The Docker engine against a real Docker engine, with images these tests
//! build themselves (no registry): `FROM scratch` + busybox-static + the
//! probe in `probe.c` compiled with `gcc -static`.
//!
//! The isolation matrix of issue 5 (R-NET-1..R-NET-3, R-NET-8, R-NET-9),
//! inputs and outputs (R-VOL-1, R-VOL-2), limits and cleanup. Every target a
//! test expects to be refused is a listener on this machine, so a failure
//! leaks nothing. Without a reachable engine the tests skip, unless
//! `SKREI_REQUIRE_DOCKER=1` (then they fail).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptions, ListContainersOptions, ListNetworksOptions};
use futures::StreamExt;
use protocol::domain::DomainSet;
use protocol::job::{
    ByteSize, DockerParams, Engine, InlineSource, InputSource, ModuleSource, Network, NetworkMode,
    Publisher, Resources, ResultPath, Source, Task, Timeouts, WasmParams,
};
use skrei_node::executor::docker::DockerTask;
use skrei_node::executor::{
    self, Cancel, DockerConfig, DockerExecutor, Engines, ExecError, Execution, ExecutionDir,
    LimitKind, Limits, RunOutcome,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PROBE_SOURCE: &str = include_str!("probe.c");
pub(crate) const BANNER: &str = "skrei-test-server";

/// Serialises building the probe image across tests.
static IMAGE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub(crate) fn require_docker() -> bool {
    std::env::var("SKREI_REQUIRE_DOCKER").is_ok_and(|v| v == "1")
}

/// A connected engine, or `None` (skip) when there is none and none is required.
pub(crate) async fn engine() -> Option<Docker> {
    let reached = async {
        let d = Docker::connect_with_local_defaults()?
            .negotiate_version()
            .await?;
        d.ping().await?;
        Ok::<_, bollard::errors::Error>(d)
    }
    .await;
    match reached {
        Ok(d) => Some(d),
        Err(e) if require_docker() => {
            panic!("SKREI_REQUIRE_DOCKER=1 but Docker is unreachable: {e}")
        }
        Err(e) => {
            eprintln!(
                "skipping: Docker is unreachable ({e}); set SKREI_REQUIRE_DOCKER=1 to fail instead"
            );
            None
        }
    }
}

/// The probe image's tag, building it when this engine lacks it.
/// The probe image, built on its own runtime for tests that drive node
/// processes; `None` where there is no Docker engine (see [`engine`]).
pub(crate) fn probe_image_blocking() -> Option<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let docker = engine().await?;
        Some(probe_image(&docker).await)
    })
}

pub(crate) async fn probe_image(docker: &Docker) -> String {
    let busybox = std::fs::read("/usr/bin/busybox")
        .or_else(|_| std::fs::read("/bin/busybox"))
        .expect("busybox-static is installed (Debian package busybox-static)");
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&(PROBE_SOURCE, busybox.len()), &mut h);
    let tag = format!("skrei-test-probe:{:016x}", std::hash::Hasher::finish(&h));
    let _guard = IMAGE_LOCK.lock().await;
    if docker.inspect_image(&tag).await.is_ok() {
        return tag;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("probe.c");
    std::fs::write(&src, PROBE_SOURCE).unwrap();
    let bin = tmp.path().join("probe");
    let out = std::process::Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("gcc is installed");
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, bytes: &[u8], mode: u32| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(mode);
        tar.append_data(&mut header, path, bytes).unwrap();
    };
    add(
        "Dockerfile",
        b"FROM scratch\nCOPY rootfs/ /\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
        0o644,
    );
    add("rootfs/bin/busybox", &busybox, 0o755);
    add("rootfs/probe", &std::fs::read(&bin).unwrap(), 0o755);
    add("rootfs/tmp/.keep", b"", 0o644);
    let context = tar.into_inner().unwrap();
    let options = BuildImageOptions {
        t: Some(tag.clone()),
        rm: true,
        forcerm: true,
        ..Default::default()
    };
    let mut build = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(step) = build.next().await {
        let step = step.expect("the probe image builds");
        assert!(
            step.error_detail.is_none(),
            "building the probe image: {step:?}"
        );
    }
    tag
}

/// A listener that answers any request with the banner, like a web server.
pub(crate) async fn test_server(bind: IpAddr) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((bind, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
                let body = BANNER;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    addr
}

/// Docker's default bridge gateway: an address of this host that
/// containers on ordinary bridges reach. Docker 20.10 lists only the
/// subnet; the gateway is its first address.
pub(crate) async fn docker0(docker: &Docker) -> Ipv4Addr {
    let config = docker
        .inspect_network("bridge", None)
        .await
        .unwrap()
        .ipam
        .and_then(|i| i.config)
        .and_then(|c| c.into_iter().next())
        .expect("the default bridge has an address range");
    if let Some(gw) = config.gateway.and_then(|g| g.parse().ok()) {
        return gw;
    }
    let subnet = config.subnet.expect("the default bridge has a subnet");
    let base: Ipv4Addr = subnet.split('/').next().unwrap().parse().unwrap();
    Ipv4Addr::from(u32::from(base) + 1)
}

/// The address this host would send from towards the outside (its LAN
/// address), found without sending anything.
pub(crate) fn lan_address() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("203.0.113.1:9").ok()?;
    Some(s.local_addr().ok()?.ip())
}

pub(crate) struct Fixture {
    _tmp: tempfile::TempDir,
    pub(crate) dir: ExecutionDir,
    pub(crate) owner: String,
    pub(crate) docker: Docker,
    pub(crate) image: String,
}

impl Fixture {
    pub(crate) async fn new(owner: &str) -> Option<Fixture> {
        let docker = engine().await?;
        let image = probe_image(&docker).await;
        let tmp = tempfile::tempdir().unwrap();
        let dir = ExecutionDir::new(tmp.path().join("exec"));
        std::fs::create_dir_all(dir.input("/inputs")).unwrap();
        std::fs::write(dir.input("/inputs/name.txt"), "world").unwrap();
        Some(Fixture {
            _tmp: tmp,
            dir,
            owner: format!("test-{owner}-{}", std::process::id()),
            docker,
            image,
        })
    }

    pub(crate) fn config(&self) -> DockerConfig {
        DockerConfig {
            owner: self.owner.clone(),
            sidecar_executable: Some(PathBuf::from(env!("CARGO_BIN_EXE_skrei"))),
            ..DockerConfig::default()
        }
    }

    pub(crate) async fn executor(&self, config: DockerConfig) -> DockerExecutor {
        DockerExecutor::new(config)
            .await
            .expect("the Docker executor starts")
    }

    pub(crate) fn params(&self, cmd: &[&str]) -> DockerParams {
        DockerParams {
            image: self.image.clone(),
            entrypoint: vec![],
            parameters: cmd.iter().map(|s| s.to_string()).collect(),
            environment_variables: vec!["GREETING=hello".into()],
            working_directory: None,
        }
    }

    pub(crate) async fn run(
        &self,
        exec: &DockerExecutor,
        params: &DockerParams,
        network: &Network,
        limits: Limits,
        cancel: Cancel,
    ) -> Result<RunOutcome, ExecError> {
        let inputs = vec![InputSource {
            source: Source::Inline(InlineSource {
                url: "data:text/plain;base64,d29ybGQ=".into(),
            }),
            target: "/inputs/name.txt".into(),
            alias: None,
        }];
        let outputs = vec![ResultPath {
            name: "outputs".into(),
            path: "/outputs".into(),
        }];
        let env = BTreeMap::new();
        let result = exec
            .run(
                DockerTask {
                    execution_id: "exec-1",
                    params,
                    task_env: &env,
                    inputs: &inputs,
                    result_paths: &outputs,
                    network,
                    dir: &self.dir,
                    limits,
                    deny: &[],
                },
                cancel,
            )
            .await;
        self.assert_nothing_left().await;
        result
    }

    /// The probe's lines of stdout, after a run that must succeed.
    /// `cmd` is the probe's arguments, split on whitespace (commands
    /// separated by ` , `).
    pub(crate) async fn probe(
        &self,
        exec: &DockerExecutor,
        network: &Network,
        cmd: &str,
    ) -> Vec<String> {
        let mut full = vec!["/probe"];
        full.extend(cmd.split_whitespace());
        let outcome = self
            .run(
                exec,
                &self.params(&full),
                network,
                limits(),
                Cancel::default(),
            )
            .await
            .expect("the probe runs");
        assert_eq!(outcome.exit_code, 0, "stderr: {}", self.read("stderr"));
        let stdout = self.read("stdout");
        eprintln!("probe {cmd:?}:\n{stdout}");
        stdout.lines().map(str::to_owned).collect()
    }

    pub(crate) fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.results().join(name)).unwrap_or_default()
    }

    /// Cleanup: no container or network of this owner survives a run.
    pub(crate) async fn assert_nothing_left(&self) {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("skrei.owner={}", self.owner)],
        )]);
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
            .unwrap();
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .unwrap();
        assert!(
            containers.is_empty(),
            "containers left behind: {containers:?}"
        );
        assert!(networks.is_empty(), "networks left behind: {networks:?}");
    }
}

pub(crate) fn limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(120),
        memory_bytes: 64 << 20,
        output_bytes: 1 << 20,
        cpu_millis: Some(1000),
        fuel: None,
    }
}

pub(crate) fn network(mode: NetworkMode, domains: &[&str]) -> Network {
    Network {
        r#type: mode,
        domains: DomainSet::parse(domains).unwrap(),
    }
}

/// The line the probe printed for command `word` number `n` (0-based).
pub(crate) fn line<'a>(lines: &'a [String], word: &str, n: usize) -> &'a str {
    lines
        .iter()
        .filter(|l| l.split_whitespace().next() == Some(word))
        .nth(n)
        .unwrap_or_else(|| panic!("no line {n} for `{word}` in {lines:#?}"))
}

pub(crate) fn ok(l: &str) -> bool {
    l.split_whitespace().nth(1) == Some("ok")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_mode_has_loopback_only() {
    // R-NET-1: no interface but loopback: no outside server, no host
    // service by any address, no DNS.
    let Some(f) = Fixture::new("none").await else {
        return;
    };
    let exec = f.executor(f.config()).await;
    let server = test_server(IpAddr::V4(Ipv4Addr::UNSPECIFIED)).await;
    let gw = docker0(&f.docker).await.to_string();
    let port = server.port().to_string();
    let lines = f
        .probe(
            &exec,
            &network(NetworkMode::None, &[]),
            &format!("tcp {gw} {port} , gw {port} , tcp 127.0.0.1 {port} , dns localhost.test"),
        )
        .await;
    assert!(!ok(line(&lines, "tcp", 0)), "{lines:?}");
    assert!(!ok(line(&lines, "gw", 0)), "{lines:?}");
    assert!(!ok(line(&lines, "tcp", 1)), "{lines:?}");
    assert!(!ok(line(&lines, "dns", 0)), "{lines:?}");
    assert!(!f.dir.results().join("network.log").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_mode_reaches_only_allowed_domains_through_its_sidecar() {
    // R-NET-3: no route out: no direct TCP (outside server, host by bridge
    // gateway, host by LAN address, its own network's gateway), no DNS;
    // HTTP and CONNECT through the proxy to an allowed domain work, a
    // domain not allowed gets 403, and a listed host address gets 403
    // (R-NET-8). Every decision is in network.log (R-NET-9).
    let Some(f) = Fixture::new("http").await else {
        return;
    };
    let server = test_server(IpAddr::V4(Ipv4Addr::UNSPECIFIED)).await;
    // Stands in for this node's API or libp2p port (R-NET-7): on the same
    // host address as the allowed server, listed by the job, yet denied.
    let control = test_server(IpAddr::V4(Ipv4Addr::UNSPECIFIED)).await;
    let loopback = test_server(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let gw = docker0(&f.docker).await;
    let lan = lan_address().filter(|a| !a.is_loopback());
    let config = DockerConfig {
        resolve: vec![
            ("allowed.test".into(), IpAddr::V4(gw)),
            ("control.test".into(), IpAddr::V4(gw)),
            ("loopback.test".into(), IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ],
        allow_ranges: vec![format!("{gw}/32").parse().unwrap()],
        deny: vec![SocketAddr::new(IpAddr::V4(gw), control.port())],
        connect_ports: vec![443, server.port(), control.port(), loopback.port()],
        http_ports: vec![80, server.port(), control.port(), loopback.port()],
        ..f.config()
    };
    let exec = f.executor(config).await;
    if let Err(why) = exec.http_support() {
        // R-NET-3: an engine that cannot isolate refuses, never runs unisolated.
        let err = f
            .run(
                &exec,
                &f.params(&["/probe", "gw", "1"]),
                &network(NetworkMode::Http, &["allowed.test"]),
                limits(),
                Cancel::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ExecError::Unavailable(_)), "{err}");
        assert!(
            !require_docker(),
            "this engine cannot isolate http jobs: {why}"
        );
        eprintln!("skipping the http matrix: {why}");
        return;
    }

    let port = server.port().to_string();
    let cport = control.port();
    let lport = loopback.port().to_string();
    let gw = gw.to_string();
    let allowed = format!("http://allowed.test:{port}/");
    let denied = format!("http://denied.test:{port}/");
    let tunnel = format!("allowed.test:{port}");
    let control_by_name = format!("http://control.test:{cport}/");
    let control_by_ip = format!("http://{gw}:{cport}/");
    let control_tunnel = format!("control.test:{cport}");
    let loopback_by_name = format!("http://loopback.test:{lport}/");
    let mut domains = vec![
        "allowed.test".to_string(),
        "control.test".to_string(),
        "loopback.test".to_string(),
        gw.clone(),
    ];
    let mut cmd = format!(
        "tcp {gw} {port} , gw {port} , tcp 127.0.0.1 {lport} , dns allowed.test , \
         http {allowed} , http {denied} , http {control_by_name} , http {control_by_ip} , \
         http {loopback_by_name} , connect denied.test:443 , connect {tunnel} , \
         connect {control_tunnel}"
    );
    if let Some(lan) = lan {
        domains.push(lan.to_string());
        cmd += &format!(" , tcp {lan} {port} , http http://{lan}:{port}/");
    }
    let domains: Vec<&str> = domains.iter().map(String::as_str).collect();
    let lines = f
        .probe(&exec, &network(NetworkMode::Http, &domains), &cmd)
        .await;

    assert!(
        !ok(line(&lines, "tcp", 0)),
        "direct to the host bridge: {lines:?}"
    );
    assert!(
        !ok(line(&lines, "gw", 0)),
        "direct to its network's gateway: {lines:?}"
    );
    assert!(!ok(line(&lines, "tcp", 1)), "loopback: {lines:?}");
    assert!(!ok(line(&lines, "dns", 0)), "{lines:?}");
    let allowed_line = line(&lines, "http", 0);
    assert!(
        allowed_line.starts_with("http 200") && allowed_line.ends_with(BANNER),
        "{lines:?}"
    );
    assert!(line(&lines, "http", 1).starts_with("http 403"), "{lines:?}");
    assert!(
        line(&lines, "http", 2).starts_with("http 403"),
        "control by name: {lines:?}"
    );
    assert!(
        line(&lines, "http", 3).starts_with("http 403"),
        "control by IP: {lines:?}"
    );
    assert!(
        line(&lines, "http", 4).starts_with("http 403"),
        "host loopback: {lines:?}"
    );
    assert!(
        line(&lines, "connect", 0).starts_with("connect 403"),
        "{lines:?}"
    );
    let tunnel_line = line(&lines, "connect", 1);
    assert!(
        tunnel_line.starts_with("connect 200") && tunnel_line.ends_with(BANNER),
        "{lines:?}"
    );
    assert!(
        line(&lines, "connect", 2).starts_with("connect 403"),
        "control: {lines:?}"
    );
    if lan.is_some() {
        assert!(
            !ok(line(&lines, "tcp", 2)),
            "direct to the host's LAN address: {lines:?}"
        );
        assert!(
            line(&lines, "http", 5).starts_with("http 403"),
            "host via proxy: {lines:?}"
        );
    }

    let log = f.read("network.log");
    eprintln!("network.log:\n{log}");
    let records: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
        .collect();
    let find = |host: &str, method: &str| {
        records
            .iter()
            .find(|r| r["host"] == host && r["method"] == method)
            .unwrap_or_else(|| panic!("no {method} {host} in network.log: {log}"))
    };
    assert_eq!(find("denied.test", "GET")["status"], 403);
    assert_eq!(find("denied.test", "CONNECT")["status"], 403);
    assert_eq!(find("allowed.test", "GET")["status"], 200);
    assert_eq!(find("allowed.test", "GET")["job"], "exec-1");
    for method in ["GET", "CONNECT"] {
        let refused = find("control.test", method);
        assert_eq!(refused["status"], 403);
        assert!(
            refused["reason"]
                .as_str()
                .unwrap()
                .contains("control-plane"),
            "{refused}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_are_read_only_and_outputs_are_collected() {
    // R-VOL-1, R-VOL-2.
    let Some(f) = Fixture::new("volumes").await else {
        return;
    };
    let exec = f.executor(f.config()).await;
    let lines = f
        .probe(
            &exec,
            &network(NetworkMode::None, &[]),
            "cat /inputs/name.txt , write /inputs/name.txt , write /outputs/out.txt",
        )
        .await;
    assert_eq!(line(&lines, "cat", 0), "cat ok /inputs/name.txt world");
    assert!(!ok(line(&lines, "write", 0)), "{lines:?}");
    assert!(ok(line(&lines, "write", 1)), "{lines:?}");
    assert_eq!(f.read("outputs/out.txt"), "written by the job\n");
    assert_eq!(f.read("exitCode"), "0");
    assert_eq!(
        std::fs::read_to_string(f.dir.input("/inputs/name.txt")).unwrap(),
        "world"
    );
}

// R-VOL-4: a writable input is mounted writable at its checked real path;
// if that path now leads through a symlink (a part of it was swapped
// since the check), nothing runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writable_inputs_are_mounted_only_as_checked() {
    let Some(mut f) = Fixture::new("writable").await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let real = std::fs::canonicalize(tmp.path()).unwrap();
    std::fs::create_dir(real.join("work")).unwrap();
    std::fs::write(real.join("work/name.txt"), "world").unwrap();
    let exec = f.executor(f.config()).await;
    let plain = f.dir.clone();
    f.dir = plain
        .clone()
        .with_writable("/inputs/name.txt", real.join("work/name.txt"));
    let lines = f
        .probe(
            &exec,
            &network(NetworkMode::None, &[]),
            "write /inputs/name.txt",
        )
        .await;
    assert!(ok(line(&lines, "write", 0)), "{lines:?}");
    assert_eq!(
        std::fs::read_to_string(real.join("work/name.txt")).unwrap(),
        "written by the job\n"
    );
    // The folder swapped for a symlink after the check.
    std::os::unix::fs::symlink(real.join("work"), real.join("swapped")).unwrap();
    f.dir = plain.with_writable("/inputs/name.txt", real.join("swapped/name.txt"));
    let err = f
        .run(
            &exec,
            &f.params(&["/probe", "write", "/inputs/name.txt"]),
            &network(NetworkMode::None, &[]),
            limits(),
            Cancel::default(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("changed since it was checked"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_env_and_a_missing_image() {
    let Some(f) = Fixture::new("exit").await else {
        return;
    };
    let exec = f.executor(f.config()).await;
    let none = network(NetworkMode::None, &[]);
    let params = f.params(&["sh", "-c", "echo $GREETING; echo oops >&2; exit 3"]);
    let outcome = f
        .run(&exec, &params, &none, limits(), Cancel::default())
        .await
        .unwrap();
    assert_eq!(outcome.exit_code, 3);
    assert_eq!(f.read("stdout"), "hello\n");
    assert_eq!(f.read("stderr"), "oops\n");
    assert_eq!(f.read("exitCode"), "3");

    let missing = DockerParams {
        image: "skrei-no-such-image:1".into(),
        ..f.params(&[])
    };
    let err = f
        .run(&exec, &missing, &none, limits(), Cancel::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::Missing(_)), "{err}");
    assert!(
        err.to_string().contains("not present on this node"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_hog_is_stopped_by_the_memory_limit() {
    let Some(f) = Fixture::new("memory").await else {
        return;
    };
    let exec = f.executor(f.config()).await;
    let limits = Limits {
        memory_bytes: 32 << 20,
        ..limits()
    };
    let params = f.params(&["/probe", "hog", "512"]);
    let err = f
        .run(
            &exec,
            &params,
            &network(NetworkMode::None, &[]),
            limits,
            Cancel::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ExecError::Limit {
                kind: LimitKind::Memory,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_bomb_is_contained_by_the_pids_limit() {
    let Some(f) = Fixture::new("pids").await else {
        return;
    };
    let exec = f
        .executor(DockerConfig {
            pids_limit: 32,
            ..f.config()
        })
        .await;
    let lines = f
        .probe(&exec, &network(NetworkMode::None, &[]), "forks 10000")
        .await;
    let l = line(&lines, "forks", 0);
    let n: usize = l.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(l.starts_with("forks limited") && n < 32, "{l}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_loop_times_out_and_cancel_kills() {
    let Some(f) = Fixture::new("timeout").await else {
        return;
    };
    let exec = f.executor(f.config()).await;
    let none = network(NetworkMode::None, &[]);
    let spin = f.params(&["sh", "-c", "while :; do :; done"]);
    let short = Limits {
        timeout: Duration::from_secs(2),
        ..limits()
    };
    let start = Instant::now();
    let err = f
        .run(&exec, &spin, &none, short, Cancel::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::Timeout(_)), "{err}");
    assert!(start.elapsed() < Duration::from_secs(20));

    let cancel = Cancel::default();
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        canceller.cancel();
    });
    let start = Instant::now();
    let err = f
        .run(&exec, &spin, &none, limits(), cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::Cancelled), "{err}");
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_of_stdout_is_counted_and_truncated() {
    let Some(f) = Fixture::new("output").await else {
        return;
    };
    let exec = f.executor(f.config()).await;
    let params = f.params(&["sh", "-c", "head -c 1073741824 /dev/zero; echo done >&2"]);
    let outcome = f
        .run(
            &exec,
            &params,
            &network(NetworkMode::None, &[]),
            limits(),
            Cancel::default(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(outcome.stdout_bytes, 1 << 30);
    assert!(outcome.stdout_truncated && !outcome.stderr_truncated);
    let kept = std::fs::metadata(f.dir.results().join("stdout"))
        .unwrap()
        .len();
    assert_eq!(kept, limits().output_bytes);
    assert_eq!(f.read("stderr"), "done\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_removes_this_owners_leftovers_only() {
    let Some(f) = Fixture::new("orphans").await else {
        return;
    };
    let other = format!("{}-other", f.owner);
    let label = |owner: &str| {
        HashMap::from([
            ("skrei.managed".to_string(), "1".to_string()),
            ("skrei.owner".to_string(), owner.to_string()),
            ("skrei.execution".to_string(), "crashed".to_string()),
        ])
    };
    for (name, owner) in [
        (format!("{}-left", f.owner), f.owner.clone()),
        (format!("{other}-kept"), other.clone()),
    ] {
        f.docker
            .create_network(bollard::models::NetworkCreateRequest {
                name,
                labels: Some(label(&owner)),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let _exec = f.executor(f.config()).await;
    f.assert_nothing_left().await;
    let kept = f
        .docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![format!("skrei.owner={other}")],
            )])),
        }))
        .await
        .unwrap();
    assert_eq!(kept.len(), 1);
    f.docker
        .remove_network(&format!("{other}-kept"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_runs_a_task_through_executor_run() {
    // The one entry point the node calls: the task's engine, env, inputs,
    // outputs and resources go in; the results folder comes out.
    let Some(f) = Fixture::new("engines").await else {
        return;
    };
    let engines = Engines {
        docker: Some(f.executor(f.config()).await),
        wasm: None,
    };
    let task = Task {
        name: "main".into(),
        engine: Engine::Docker(f.params(&[
            "sh",
            "-c",
            "echo $(cat /inputs/name.txt) $FROM_TASK $GREETING > /outputs/o.txt",
        ])),
        publisher: Publisher::Local,
        env: BTreeMap::from([("FROM_TASK".to_string(), "task-env".to_string())]),
        meta: BTreeMap::new(),
        input_sources: vec![InputSource {
            source: Source::Inline(InlineSource {
                url: "data:text/plain;base64,d29ybGQ=".into(),
            }),
            target: "/inputs/name.txt".into(),
            alias: None,
        }],
        result_paths: vec![ResultPath {
            name: "outputs".into(),
            path: "/outputs".into(),
        }],
        resources: Resources {
            memory: Some(ByteSize(48 << 20)),
            ..Resources::default()
        },
        network: network(NetworkMode::None, &[]),
        timeouts: Timeouts {
            execution_timeout: Some(60),
            ..Timeouts::default()
        },
    };
    let limits = Limits::for_task(&task, Limits::default());
    assert_eq!(limits.memory_bytes, 48 << 20);
    assert_eq!(limits.timeout, Duration::from_secs(60));
    let outcome = executor::run(
        &engines,
        Execution {
            id: "exec-engines",
            task: &task,
            dir: &f.dir,
            limits,
            wasm_module: None,
            deny: &[],
        },
        Cancel::default(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(f.read("outputs/o.txt"), "world task-env hello\n");
    f.assert_nothing_left().await;

    let wasm_task = Task {
        engine: Engine::Wasm(WasmParams {
            entry_module: ModuleSource {
                source: Source::Inline(InlineSource {
                    url: "data:application/wasm;base64,AGFzbQEAAAA=".into(),
                }),
            },
            entrypoint: "_start".into(),
            parameters: vec![],
            environment_variables: BTreeMap::new(),
        }),
        ..task.clone()
    };
    let err = executor::run(
        &engines,
        Execution {
            id: "exec-wasm",
            task: &wasm_task,
            dir: &f.dir,
            limits,
            wasm_module: Some(b"\0asm\x01\0\0\0"),
            deny: &[],
        },
        Cancel::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ExecError::Unavailable(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_jobs_are_refused_without_a_sidecar() {
    // R-NET-3: "an engine that cannot give this isolation refuses http
    // jobs": here the sidecar image cannot be built, so no container starts.
    let Some(f) = Fixture::new("refuse").await else {
        return;
    };
    let exec = f
        .executor(DockerConfig {
            sidecar_executable: Some(PathBuf::from("/nonexistent/skrei")),
            ..f.config()
        })
        .await;
    let why = exec.http_support().unwrap_err();
    assert!(why.contains("/nonexistent/skrei"), "{why}");
    let err = f
        .run(
            &exec,
            &f.params(&["/probe", "gw", "1"]),
            &network(NetworkMode::Http, &["allowed.test"]),
            limits(),
            Cancel::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::Unavailable(_)), "{err}");
    assert!(!f.dir.results().join("stdout").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_run_still_removes_its_container_and_networks() {
    // The node may drop a run's future (shutdown, lost award): the
    // container and its networks go anyway.
    let Some(f) = Fixture::new("dropped").await else {
        return;
    };
    let exec = f.executor(f.config()).await;
    let params = f.params(&["sleep", "600"]);
    let full = network(NetworkMode::Full, &[]);
    let run = f.run(&exec, &params, &full, limits(), Cancel::default());
    // `f.run` checks for leftovers only when it completes; it is dropped here.
    assert!(
        tokio::time::timeout(Duration::from_secs(3), run)
            .await
            .is_err()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("skrei.owner={}", f.owner)],
        )]);
        let containers = f
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
            .unwrap();
        let networks = f
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .unwrap();
        if containers.is_empty() && networks.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: {containers:?} {networks:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
