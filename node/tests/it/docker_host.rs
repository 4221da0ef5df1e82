//! The host a Docker job runs on, seen from the job (issue 12, section 7):
//! a `full` job reaches other hosts but no address of this one (R-NET-2,
//! R-SEC-3, R-NET-7), and an `http` job's lookups never leave its own
//! namespace (R-NET-3, CVE-2024-29018), nor does it have IPv6.
//!
//! Every address a test expects to be refused carries a listener on this
//! machine, so a failure is caught here and nothing leaves the machine. The
//! "other host" is a network namespace the test makes. The guard needs
//! `CAP_NET_ADMIN` and `nft`: with `SKREI_REQUIRE_DOCKER=1` (CI runs as
//! root) their absence fails the tests instead of skipping them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{CreateContainerOptions, RemoveContainerOptions};
use protocol::job::NetworkMode;
use skrei_node::executor::{DockerConfig, DockerExecutor};

use super::docker::{
    BANNER, Fixture, docker0, lan_address, line, network, ok, require_docker, test_server,
};

/// The executor's firewall table, or `None` (skip) where this machine
/// cannot filter and nothing requires it.
fn guarded(exec: &DockerExecutor) -> Option<String> {
    match exec.host_guard() {
        Ok(table) => Some(table.to_string()),
        Err(why) if require_docker() => panic!("SKREI_REQUIRE_DOCKER=1 but no host guard: {why}"),
        Err(why) => {
            eprintln!("skipping: this node cannot filter its jobs' networks ({why})");
            None
        }
    }
}

fn nft(args: &[&str]) -> (bool, String) {
    let out = Command::new("nft").args(args).output().expect("nft runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn ip_cmd(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Another host, as far as a job can tell: a network namespace behind a
/// veth pair, serving the test banner over HTTP with busybox `httpd`. The
/// host side of the pair holds an address too: one more address of this
/// host for a job to be refused.
struct OtherHost {
    ns: String,
    host_ip: Ipv4Addr,
    ip: Ipv4Addr,
    port: u16,
    httpd: std::process::Child,
    _www: tempfile::TempDir,
}

impl OtherHost {
    fn start() -> OtherHost {
        let pid = std::process::id();
        let ns = format!("skrei-oh-{pid}");
        let (veth, peer) = (format!("skoh{pid}a"), format!("skoh{pid}b"));
        // 198.18.0.0/15 is for benchmarking networks: nothing real lives there.
        let net = (pid % 250) as u8;
        let host_ip = Ipv4Addr::new(198, 18, net, 1);
        let ip = Ipv4Addr::new(198, 18, net, 2);
        ip_cmd(&["netns", "add", &ns]);
        ip_cmd(&["link", "add", &veth, "type", "veth", "peer", "name", &peer]);
        ip_cmd(&["link", "set", &peer, "netns", &ns]);
        ip_cmd(&["addr", "add", &format!("{host_ip}/30"), "dev", &veth]);
        ip_cmd(&["link", "set", &veth, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns, "ip"];
            all.extend(args);
            ip_cmd(&all);
        };
        inside(&["addr", "add", &format!("{ip}/30"), "dev", &peer]);
        inside(&["link", "set", &peer, "up"]);
        inside(&["link", "set", "lo", "up"]);
        let www = tempfile::tempdir().unwrap();
        std::fs::write(www.path().join("index.html"), BANNER).unwrap();
        let port = 8080;
        let busybox = ["/usr/bin/busybox", "/bin/busybox"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("busybox-static is installed");
        let httpd = Command::new("ip")
            .args(["netns", "exec", &ns, busybox, "httpd", "-f", "-p"])
            .arg(format!("{ip}:{port}"))
            .arg("-h")
            .arg(www.path())
            .spawn()
            .expect("busybox httpd starts");
        std::thread::sleep(Duration::from_millis(300));
        OtherHost {
            ns,
            host_ip,
            ip,
            port,
            httpd,
            _www: www,
        }
    }
}

impl Drop for OtherHost {
    fn drop(&mut self) {
        let _ = self.httpd.kill();
        let _ = self.httpd.wait();
        // Deleting the namespace deletes its end of the pair, and so both.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// A container of the probe image serving the banner on a port published
/// on all of this host's addresses; removed when dropped.
struct Published {
    docker: Docker,
    id: String,
    port: u16,
}

impl Published {
    async fn start(f: &Fixture) -> Published {
        let bindings = [(
            "8080/tcp".to_string(),
            Some(vec![PortBinding {
                host_ip: Some("0.0.0.0".into()),
                host_port: Some(String::new()),
            }]),
        )];
        let body = ContainerCreateBody {
            image: Some(f.image.clone()),
            cmd: Some(vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "mkdir -p /tmp/www && echo {BANNER} > /tmp/www/index.html && \
                     exec httpd -f -p 8080 -h /tmp/www"
                ),
            ]),
            exposed_ports: Some(vec!["8080/tcp".to_string()]),
            host_config: Some(HostConfig {
                port_bindings: Some(bindings.into_iter().collect()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = f
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(format!("{}-published", f.owner)),
                    ..Default::default()
                }),
                body,
            )
            .await
            .unwrap()
            .id;
        let published = Published {
            docker: f.docker.clone(),
            id,
            port: 0,
        };
        f.docker.start_container(&published.id, None).await.unwrap();
        let port = f
            .docker
            .inspect_container(&published.id, None)
            .await
            .unwrap()
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|mut p| p.remove("8080/tcp").flatten())
            .and_then(|b| b.into_iter().find_map(|b| b.host_port?.parse().ok()))
            .expect("the port is published");
        Published { port, ..published }
    }

    async fn remove(self) {
        let _ = self
            .docker
            .remove_container(
                &self.id,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_jobs_reach_other_hosts_but_no_address_of_this_one() {
    // R-NET-2, R-SEC-3, R-NET-7. On the host, listeners on all interfaces
    // (one stands in for the node's API opened with `--api 0.0.0.0:PORT`),
    // one on loopback, and a port another container publishes. The job
    // tries them by its own gateway, Docker's default bridge address, the
    // host's LAN address and the address of the host's veth towards the
    // other host: all refused. The other host stays reachable.
    let Some(f) = Fixture::new("guard").await else {
        return;
    };
    let api = test_server(IpAddr::V4(Ipv4Addr::UNSPECIFIED)).await;
    let config = DockerConfig {
        services: vec![("API".into(), api)],
        accepts_full: true,
        ..f.config()
    };
    let exec = f.executor(config).await;
    let Some(table) = guarded(&exec) else {
        return;
    };
    let other = OtherHost::start();
    let published = Published::start(&f).await;
    let service = test_server(IpAddr::V4(Ipv4Addr::UNSPECIFIED)).await;
    let loopback = test_server(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let gw = docker0(&f.docker).await;
    let (a, s, l, p) = (api.port(), service.port(), loopback.port(), published.port);
    let mut cmd = format!(
        "tcp {} {} , gw {a} , gw {s} , gw {p} , gw {l} , tcp {gw} {a} , tcp {gw} {s} , \
         tcp {gw} {p} , tcp {} {s}",
        other.ip, other.port, other.host_ip
    );
    let lan = lan_address().filter(|a| !a.is_loopback());
    if let Some(lan) = lan {
        cmd += &format!(" , tcp {lan} {a} , tcp {lan} {s} , tcp {lan} {p}");
    }
    let lines = f.probe(&exec, &network(NetworkMode::Full, &[]), &cmd).await;
    published.remove().await;

    assert!(ok(line(&lines, "tcp", 0)), "the other host: {lines:?}");
    for n in 0..4 {
        assert!(!ok(line(&lines, "gw", n)), "its own gateway: {lines:?}");
    }
    for n in 1..5 {
        assert!(!ok(line(&lines, "tcp", n)), "this host: {lines:?}");
    }
    if lan.is_some() {
        for n in 5..8 {
            assert!(!ok(line(&lines, "tcp", n)), "the LAN address: {lines:?}");
        }
    }
    // Refused at once (a reset), not left to time out.
    assert!(
        line(&lines, "gw", 0).contains("refused"),
        "{}",
        line(&lines, "gw", 0)
    );
    // The job's bridge left the set with its network.
    let (listed, set) = nft(&["list", "set", "inet", &table, "job_bridges"]);
    assert!(listed, "{set}");
    assert!(!set.contains("br-"), "a job bridge is still listed: {set}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_guard_the_node_names_what_full_jobs_can_reach() {
    // R-NET-2: a node that cannot filter (here: no `nft`) says at start-up
    // what `full` jobs reach, naming its own services, and that is true.
    let Some(f) = Fixture::new("unguarded").await else {
        return;
    };
    let api = test_server(IpAddr::V4(Ipv4Addr::UNSPECIFIED)).await;
    let p2p: SocketAddr = "127.0.0.1:4001".parse().unwrap();
    let exec = f
        .executor(DockerConfig {
            services: vec![("API".into(), api), ("libp2p".into(), p2p)],
            accepts_full: true,
            nft: PathBuf::from("/nonexistent/nft"),
            ..f.config()
        })
        .await;
    let why = exec.host_guard().unwrap_err();
    assert!(why.contains("/nonexistent/nft"), "{why}");
    let warning = exec.full_exposure().expect("a warning");
    assert!(warning.contains(&format!("API on {api}")), "{warning}");
    assert!(
        warning.contains("libp2p on 127.0.0.1:4001 (loopback only: not reachable)"),
        "{warning}"
    );
    assert!(warning.contains("/nonexistent/nft"), "{warning}");
    let lines = f
        .probe(
            &exec,
            &network(NetworkMode::Full, &[]),
            &format!("gw {}", api.port()),
        )
        .await;
    assert!(ok(line(&lines, "gw", 0)), "as the warning says: {lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_replaces_the_firewall_table_a_crashed_node_left() {
    let Some(f) = Fixture::new("tables").await else {
        return;
    };
    let crashed = f.executor(f.config()).await;
    let Some(left) = guarded(&crashed) else {
        return;
    };
    // A crash: the table stays.
    std::mem::forget(crashed);
    assert!(nft(&["list", "table", "inet", &left]).0);
    let exec = f.executor(f.config()).await;
    let table = exec.host_guard().unwrap().to_string();
    assert_ne!(table, left);
    assert!(!nft(&["list", "table", "inet", &left]).0, "{left} is left");
    assert!(nft(&["list", "table", "inet", &table]).0);
    drop(exec);
    assert!(
        !nft(&["list", "table", "inet", &table]).0,
        "{table} outlives its node"
    );
}

/// UDP listeners on port 53 of this host's addresses, where a lookup the
/// engine forwarded from the host's namespace would land.
struct DnsTraps(Vec<tokio::net::UdpSocket>);

impl DnsTraps {
    async fn bind(addrs: &[IpAddr]) -> DnsTraps {
        let mut traps = Vec::new();
        for ip in addrs {
            match tokio::net::UdpSocket::bind((*ip, 53)).await {
                Ok(s) => traps.push(s),
                Err(e) => eprintln!("no DNS trap on {ip}:53: {e}"),
            }
        }
        assert!(!traps.is_empty(), "no DNS trap could listen");
        DnsTraps(traps)
    }

    /// The datagrams that mention `label`.
    fn caught(&self, label: &str) -> Vec<String> {
        let mut caught = Vec::new();
        for trap in &self.0 {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = trap.try_recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]);
                if text.contains(label) {
                    caught.push(format!("{} from {from}", trap.local_addr().unwrap()));
                }
            }
        }
        caught
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_job_lookups_end_in_its_own_namespace() {
    // R-NET-3, CVE-2024-29018: an engine before 26.0 forwards lookups from
    // internal networks, from the host's namespace when the host's resolver
    // is on loopback. The job's container names its own loopback as its
    // resolver: the lookup the engine forwards comes to a listener the job
    // holds there, and none reaches a DNS listener on this host's loopback,
    // Docker bridge or LAN address. The job has no IPv6 either.
    let Some(f) = Fixture::new("dns").await else {
        return;
    };
    let gw = docker0(&f.docker).await;
    let mut hosts = vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(gw)];
    hosts.extend(lan_address().filter(|a| !a.is_loopback()));
    let traps = DnsTraps::bind(&hosts).await;
    let exec = f.executor(f.config()).await;
    if let Err(why) = exec.http_support() {
        assert!(
            !require_docker(),
            "this engine cannot isolate http jobs: {why}"
        );
        return;
    }
    let tag = format!("leak{}x{}", std::process::id(), rand_label());
    let (trapped, resolved) = (format!("{tag}a"), format!("{tag}b"));
    let lines = f
        .probe(
            &exec,
            &network(NetworkMode::Http, &["allowed.test"]),
            &format!(
                "dnstrap {trapped}.skrei-test.invalid , dns {resolved}.skrei-test.invalid , ipv6"
            ),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(traps.caught(&tag), Vec::<String>::new(), "{lines:?}");
    assert!(!ok(line(&lines, "dns", 0)), "{lines:?}");
    assert_eq!(line(&lines, "ipv6", 0), "ipv6 0 addresses");
    let version = f
        .docker
        .version()
        .await
        .unwrap()
        .version
        .unwrap_or_default();
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 26 {
        // This engine forwards: to the job's own loopback, nowhere else.
        assert!(
            ok(line(&lines, "dnstrap", 0)),
            "Docker {version}: {lines:?}"
        );
    }
}

/// Eight random hex digits (std's hasher keys are random per process).
fn rand_label() -> String {
    use std::hash::BuildHasher;
    let h = std::collections::hash_map::RandomState::new().hash_one(0u8);
    format!("{:08x}", h & 0xffff_ffff)
}
