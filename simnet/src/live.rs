//! Live testnets: real `skrei node` processes on loopback (`simnet up`).
//!
//! Where [`crate::run`] simulates the protocol, a [`LiveNet`] runs the real
//! thing: N `skrei node` children, each with its own data folder, an API on
//! a free loopback port and a libp2p listener on another, every node after
//! the first bootstrapped from node 0. Tests use it to run jobs end to end
//! and to take nodes down and bring them back.
//!
//! ```no_run
//! use simnet::live::{LiveNet, LiveOptions, default_skrei};
//!
//! let skrei = default_skrei().expect("build it: cargo build -p node --bin skrei");
//! let mut net = LiveNet::start(LiveOptions::new(5, skrei))?;
//! let job_id = net.api(0).submit("Name: hello\n...")?;
//! net.kill(3)?; // a crash: SIGKILL
//! net.restart(3)?; // same data folder and ports
//! net.shutdown(); // SIGTERM, then SIGKILL; the temporary folder goes too
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Under the network's folder (a new temporary one unless given) node `i`
//! keeps its data in `node-i/`, its log (the child's stderr) in
//! `node-i.log` and its allowlist, if any, in `node-i.allow`.
//!
//! The children run in process groups of their own: a Ctrl-C at the
//! terminal reaches `simnet up` only, which then stops them in order. They
//! also stop by themselves when the thread that started them ends, even if
//! `simnet` is killed (`skrei node --parent-pid`: the kernel's parent-death
//! signal, which follows the spawning thread): drive a [`LiveNet`] from
//! one thread.
//!
//! With [`LiveOptions::docker`] each node runs in a container of its own
//! on a Docker network made for the testnet (see the `docker` module), and
//! [`LiveNet::partition`] and [`LiveNet::heal`] cut a node off and put it
//! back.

mod api;
mod docker;
pub mod policies;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub use api::{Api, ApiError};
pub use policies::NodePolicy;

/// The most nodes one machine is asked to run as processes.
pub const MAX_NODES: usize = 256;

/// How long a node may take to print its API address.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the nodes may take to hear from each other after starting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a node may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How a [`LiveNet`] is started.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// How many nodes, 1 to [`MAX_NODES`].
    pub nodes: usize,
    /// The `skrei` binary.
    pub skrei: PathBuf,
    /// Node `i` runs with `policies[i]`; nodes past the end with the default.
    pub policies: Vec<NodePolicy>,
    /// The network's folder, kept at the end; `None`: a new temporary
    /// folder, removed at the end.
    pub data_dir: Option<PathBuf>,
    /// Seconds between each node's node info messages (`--node-info-interval`).
    /// Short, so that nodes learn about each other (and restarts) quickly.
    pub node_info_interval_s: u64,
    /// Each node in a Docker container of its own, on one Docker network.
    pub docker: bool,
}

impl LiveOptions {
    /// `nodes` nodes of `skrei`, default policies, a temporary folder.
    pub fn new(nodes: usize, skrei: impl Into<PathBuf>) -> LiveOptions {
        LiveOptions {
            nodes,
            skrei: skrei.into(),
            policies: Vec::new(),
            data_dir: None,
            node_info_interval_s: 1,
            docker: false,
        }
    }
}

/// What went wrong running a live testnet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    #[error("--nodes {0}: give 1 to {MAX_NODES}")]
    NodeCount(usize),
    #[error("no node {index}: the network has nodes 0 to {last}")]
    NoSuchNode { index: usize, last: usize },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot start {}: {source}; build it with `cargo build -p node --bin skrei` or give \
         its path",
        skrei.display()
    )]
    Spawn {
        skrei: PathBuf,
        source: std::io::Error,
    },
    #[error("node {index} stopped before it was ready ({status}); the end of {}:\n{tail}", log.display())]
    Exited {
        index: usize,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("node {index} printed no SKREI_API line within {} s; see {}", READY_TIMEOUT.as_secs(), log.display())]
    NotReady { index: usize, log: PathBuf },
    #[error("node {index} is not running")]
    NotRunning { index: usize },
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("node {index}'s API described no listen address: {info}")]
    NoAddress { index: usize, info: String },
    #[error(
        "the nodes did not hear from each other within {} s (node: peers heard from): {heard:?}",
        CONNECT_TIMEOUT.as_secs()
    )]
    NotConnected { heard: Vec<(usize, usize)> },
    #[error("{0}")]
    Docker(String),
    #[error("cutting node {index} off needs a Docker testnet (`simnet up --docker`)")]
    NeedsDocker { index: usize },
    #[error("node {index} is cut off: heal it first")]
    Partitioned { index: usize },
}

/// Where the `skrei` binary is when not named: `$SKREI_BIN`, else beside
/// the running executable or one folder up (a test runs from
/// `target/debug/deps/`, `skrei` is built into `target/debug/`).
pub fn default_skrei() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SKREI_BIN") {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join(format!("skrei{}", std::env::consts::EXE_SUFFIX)))
        .find(|p| p.is_file())
}

/// One node of the network.
struct LiveNode {
    policy: NodePolicy,
    api: Api,
    node_id: String,
    /// The libp2p listen address with `/p2p/<node_id>`, as `--bootstrap` takes it.
    p2p: String,
    /// The node's process; in a Docker testnet, the `docker logs -f`
    /// following its container. `None` once stopped or killed.
    child: Option<Child>,
    /// Cut off the network by [`LiveNet::partition`].
    partitioned: bool,
}

/// A running network of `skrei node` processes. Dropping it stops them.
pub struct LiveNet {
    options: LiveOptions,
    root: PathBuf,
    /// Holds the temporary folder (removed when dropped), if it is one.
    _temp: Option<tempfile::TempDir>,
    nodes: Vec<LiveNode>,
    /// The Docker network and image, in a Docker testnet.
    docker: Option<docker::DockerNet>,
}

impl LiveNet {
    /// Starts the nodes (node 0 first, then the rest bootstrapped from it,
    /// in parallel) and returns once each has heard from all the others.
    pub fn start(options: LiveOptions) -> Result<LiveNet, LiveError> {
        if options.nodes == 0 || options.nodes > MAX_NODES {
            return Err(LiveError::NodeCount(options.nodes));
        }
        let (root, temp) = match &options.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| LiveError::Io {
                    path: dir.clone(),
                    source,
                })?;
                (dir.clone(), None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("skrei-simnet-")
                    .tempdir()
                    .map_err(|source| LiveError::Io {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let docker = if options.docker {
            Some(docker::DockerNet::create(&options.skrei, &root)?)
        } else {
            None
        };
        let mut net = LiveNet {
            root,
            _temp: temp,
            nodes: Vec::with_capacity(options.nodes),
            options,
            docker,
        };
        for i in 0..net.options.nodes {
            let policy = net.options.policies.get(i).cloned().unwrap_or_default();
            if let Some(list) = &policy.allowlist {
                let path = net.allowlist_file(i);
                std::fs::write(&path, list.join("\n") + "\n")
                    .map_err(|source| LiveError::Io { path, source })?;
            }
            net.nodes.push(LiveNode {
                policy,
                api: Api::new("", None),
                node_id: String::new(),
                p2p: String::new(),
                child: None,
                partitioned: false,
            });
        }
        // `net` stops whatever did start if anything below fails.
        if net.docker.is_some() {
            net.run_container(0, None)?;
            net.ready_docker(0)?;
            let bootstrap = net.nodes[0].p2p.clone();
            for i in 1..net.nodes.len() {
                net.run_container(i, Some(&bootstrap))?;
            }
            for i in 1..net.nodes.len() {
                net.ready_docker(i)?;
            }
            net.wait_connected()?;
            return Ok(net);
        }
        let first = net.spawn(0, "127.0.0.1:0", "/ip4/127.0.0.1/tcp/0", None)?;
        net.ready(0, first)?;
        let bootstrap = net.nodes[0].p2p.clone();
        let mut pending = Vec::new();
        for i in 1..net.nodes.len() {
            pending.push((
                i,
                net.spawn(i, "127.0.0.1:0", "/ip4/127.0.0.1/tcp/0", Some(&bootstrap))?,
            ));
        }
        for (i, ready) in pending {
            net.ready(i, ready)?;
        }
        net.wait_connected()?;
        Ok(net)
    }

    /// The nodes' APIs, node 0 first (stopped nodes included: their last one).
    pub fn apis(&self) -> Vec<Api> {
        self.nodes.iter().map(|n| n.api.clone()).collect()
    }

    /// Node `i`'s API; panics if there is no node `i`.
    pub fn api(&self, i: usize) -> &Api {
        &self.nodes[i].api
    }

    /// Node `i`'s peer id (the `node` of executions and results).
    pub fn node_id(&self, i: usize) -> &str {
        &self.nodes[i].node_id
    }

    /// The index of the node with this peer id.
    pub fn index_of(&self, node_id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.node_id == node_id)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn policy(&self, i: usize) -> &NodePolicy {
        &self.nodes[i].policy
    }

    /// The network's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Node `i`'s log: what it wrote on stderr.
    pub fn log(&self, i: usize) -> PathBuf {
        self.root.join(format!("node-{i}.log"))
    }

    /// Whether node `i` is running (started and not stopped or killed).
    pub fn is_running(&mut self, i: usize) -> bool {
        let alive = match self.nodes.get_mut(i).and_then(|n| n.child.as_mut()) {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        };
        match &self.docker {
            Some(docker) => alive && docker.running(i),
            None => alive,
        }
    }

    /// The Docker network of a Docker testnet (`docker network disconnect
    /// NAME CONTAINER` cuts a node off by hand).
    pub fn docker_network(&self) -> Option<&str> {
        self.docker.as_ref().map(|d| d.name.as_str())
    }

    /// Node `i`'s container, in a Docker testnet.
    pub fn container(&self, i: usize) -> Option<String> {
        self.docker.as_ref().map(|d| d.container(i))
    }

    /// Crashes node `i` (SIGKILL): no goodbye to its peers, its data
    /// folder as it was.
    pub fn kill(&mut self, i: usize) -> Result<(), LiveError> {
        self.check(i)?;
        let mut child = self.nodes[i]
            .child
            .take()
            .ok_or(LiveError::NotRunning { index: i })?;
        if let Some(docker) = &self.docker {
            // The log follower ends with the container.
            let killed = docker.kill(i);
            stop_all(vec![child]);
            return killed;
        }
        let _ = child.kill();
        let _ = child.wait();
        Ok(())
    }

    /// Stops node `i` the way Ctrl-C does (SIGTERM; SIGKILL if it takes
    /// longer than a few seconds).
    pub fn stop(&mut self, i: usize) -> Result<(), LiveError> {
        self.check(i)?;
        let child = self.nodes[i]
            .child
            .take()
            .ok_or(LiveError::NotRunning { index: i })?;
        if let Some(docker) = &self.docker {
            let stopped = docker.stop(&[i], STOP_TIMEOUT.as_secs());
            stop_all(vec![child]);
            return stopped;
        }
        stop_all(vec![child]);
        Ok(())
    }

    /// Cuts node `i` off the network (Docker testnets only): it keeps
    /// running, but no peer reaches it, nor the host its API. Jobs awarded
    /// to it are re-awarded elsewhere; [`heal`](Self::heal) ends it.
    pub fn partition(&mut self, i: usize) -> Result<(), LiveError> {
        let docker = self.docker_for(i)?;
        if self.nodes[i].partitioned {
            return Ok(());
        }
        docker.disconnect(i)?;
        self.nodes[i].partitioned = true;
        Ok(())
    }

    /// Puts node `i` back on the network after [`partition`](Self::partition)
    /// and returns once it and the running nodes have heard from each
    /// other again. Its address may change: [`api`](Self::api) follows.
    pub fn heal(&mut self, i: usize) -> Result<(), LiveError> {
        let docker = self.docker_for(i)?;
        if !self.nodes[i].partitioned {
            return Ok(());
        }
        docker.connect(i)?;
        self.nodes[i].partitioned = false;
        self.ready_docker(i)?;
        self.wait_reconnected(i)?;
        self.wait_connected()
    }

    /// Until some running node is connected to node `i` again: until then
    /// the others may still list it, with its node info, from before.
    fn wait_reconnected(&self, i: usize) -> Result<(), LiveError> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let others: Vec<usize> = (0..self.nodes.len())
            .filter(|&j| j != i && self.nodes[j].child.is_some() && !self.nodes[j].partitioned)
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        loop {
            for &j in &others {
                let info = self.nodes[j].api.node_info()?;
                let connected = info
                    .peers
                    .iter()
                    .any(|p| p.connected && p.node_id.to_string() == self.nodes[i].node_id);
                if connected {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(LiveError::NotConnected {
                    heard: vec![(i, 0)],
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether node `i` is cut off by [`partition`](Self::partition).
    pub fn is_partitioned(&self, i: usize) -> bool {
        self.nodes.get(i).is_some_and(|n| n.partitioned)
    }

    /// Starts node `i` again (after [`kill`](Self::kill) or
    /// [`stop`](Self::stop), or stops it first) with the same data folder,
    /// and the same API and libp2p ports if they are still free. Returns
    /// once it has heard from the running nodes.
    pub fn restart(&mut self, i: usize) -> Result<(), LiveError> {
        self.check(i)?;
        if self.nodes[i].partitioned {
            return Err(LiveError::Partitioned { index: i });
        }
        if self.nodes[i].child.is_some() {
            self.stop(i)?;
        }
        if self.docker.is_some() {
            // The container keeps its arguments and (in its folder) its data.
            self.start_container(i)?;
            self.ready_docker(i)?;
            return self.wait_connected();
        }
        let old_api = self.nodes[i]
            .api
            .url()
            .trim_start_matches("http://")
            .to_owned();
        let old_listen = self.nodes[i]
            .p2p
            .split("/p2p/")
            .next()
            .unwrap_or_default()
            .to_owned();
        // Any running node will do to join through.
        let bootstrap = (0..self.nodes.len())
            .filter(|&j| j != i && self.nodes[j].child.is_some())
            .map(|j| self.nodes[j].p2p.clone())
            .next();
        let same = self.spawn(i, &old_api, &old_listen, bootstrap.as_deref());
        let started = match same.and_then(|r| self.ready(i, r)) {
            Ok(()) => Ok(()),
            // Someone took a port meanwhile: any free ones, then.
            Err(LiveError::Exited { .. }) => {
                let r = self.spawn(
                    i,
                    "127.0.0.1:0",
                    "/ip4/127.0.0.1/tcp/0",
                    bootstrap.as_deref(),
                )?;
                self.ready(i, r)
            }
            Err(e) => Err(e),
        };
        started?;
        self.wait_connected()
    }

    /// Stops every node (SIGTERM, then SIGKILL for those that linger) and
    /// removes the temporary folder, if the network made one.
    pub fn shutdown(mut self) {
        self.stop_everything();
    }

    fn stop_everything(&mut self) {
        let mut running = Vec::new();
        let mut children = Vec::new();
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if let Some(child) = node.child.take() {
                running.push(i);
                children.push(child);
            }
        }
        if let Some(docker) = self.docker.take() {
            if let Err(e) = docker.stop(&running, STOP_TIMEOUT.as_secs()) {
                eprintln!("stopping the testnet's containers: {e}");
            }
            stop_all(children);
            docker.remove(self.nodes.len());
            return;
        }
        stop_all(children);
    }

    /// The Docker network, for cutting node `i` off or healing it.
    fn docker_for(&self, i: usize) -> Result<&docker::DockerNet, LiveError> {
        self.check(i)?;
        self.docker
            .as_ref()
            .ok_or(LiveError::NeedsDocker { index: i })
    }

    fn check(&self, i: usize) -> Result<(), LiveError> {
        if i < self.nodes.len() {
            Ok(())
        } else {
            Err(LiveError::NoSuchNode {
                index: i,
                last: self.nodes.len() - 1,
            })
        }
    }

    /// Node `i`'s API token, once it has made one (its data folder is on
    /// this host, for Docker nodes too).
    fn token(&self, i: usize) -> Option<String> {
        let path = self.root.join(format!("node-{i}")).join("api.token");
        std::fs::read_to_string(path)
            .ok()
            .map(|t| t.trim().to_owned())
    }

    fn allowlist_file(&self, i: usize) -> PathBuf {
        self.root.join(format!("node-{i}.allow"))
    }

    /// The `skrei node` arguments of node `i`, but for its API and libp2p
    /// addresses.
    fn node_args(&self, i: usize, bootstrap: Option<&str>) -> Vec<String> {
        let node = &self.nodes[i];
        let mut args: Vec<String> = vec![
            "--data-dir".into(),
            self.root
                .join(format!("node-{i}"))
                .to_string_lossy()
                .into_owned(),
            "--node-info-interval".into(),
            self.options.node_info_interval_s.to_string(),
            "--accept-network".into(),
            node.policy.accept_network.to_string(),
        ];
        if let Some(b) = bootstrap {
            args.extend(["--bootstrap".into(), b.to_owned()]);
        }
        if node.policy.allowlist.is_some() {
            args.extend([
                "--allowlist".into(),
                self.allowlist_file(i).to_string_lossy().into_owned(),
            ]);
        }
        if let Some(engines) = &node.policy.engines {
            args.extend(["--engines".into(), engines.join(",")]);
        }
        if let Some(capacity) = node.policy.capacity {
            args.extend(["--capacity".into(), capacity.to_string()]);
        }
        args
    }

    /// Creates and starts node `i`'s container; [`ready_docker`](Self::ready_docker)
    /// waits for it.
    fn run_container(&mut self, i: usize, bootstrap: Option<&str>) -> Result<(), LiveError> {
        let docker = self.docker.as_ref().expect("a Docker testnet");
        let mut args = self.node_args(i, bootstrap);
        args.extend([
            "--api".into(),
            format!("0.0.0.0:{}", docker::API_PORT),
            "--api-allow".into(),
            docker.gateway.to_string(),
            // Container addresses are private: the network is the nodes' own.
            "--private-network".into(),
            docker.subnet.clone(),
            "--listen".into(),
            format!("/ip4/0.0.0.0/tcp/{}", docker::P2P_PORT),
        ]);
        docker.run(i, &self.root, &args)?;
        self.follow_logs(i)
    }

    /// Starts node `i`'s stopped container again.
    fn start_container(&mut self, i: usize) -> Result<(), LiveError> {
        self.docker.as_ref().expect("a Docker testnet").start(i)?;
        self.follow_logs(i)
    }

    fn follow_logs(&mut self, i: usize) -> Result<(), LiveError> {
        let log = self.open_log(i)?;
        let child = self
            .docker
            .as_ref()
            .expect("a Docker testnet")
            .follow_logs(i, log)?;
        self.nodes[i].child = Some(child);
        Ok(())
    }

    /// Node `i`'s log, opened to append: a restarted node's log follows
    /// its earlier life.
    fn open_log(&self, i: usize) -> Result<File, LiveError> {
        let log_path = self.log(i);
        File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| LiveError::Io {
                path: log_path,
                source,
            })
    }

    /// Waits until node `i`'s container answers on its API, and learns its
    /// id and its (perhaps new) address.
    fn ready_docker(&mut self, i: usize) -> Result<(), LiveError> {
        let docker = self.docker.as_ref().expect("a Docker testnet");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if !docker.running(i) {
                return Err(LiveError::Exited {
                    index: i,
                    status: format!("container {} stopped", docker.container(i)),
                    log: self.log(i),
                    tail: tail(&self.log(i), 20),
                });
            }
            if let Some(ip) = docker.ip(i)? {
                let api = Api::new(
                    format!("http://{}", SocketAddr::new(ip, docker::API_PORT)),
                    self.token(i),
                );
                if let Ok(info) = api.node_info() {
                    let id = info.node_id;
                    let family = if ip.is_ipv4() { "ip4" } else { "ip6" };
                    let node = &mut self.nodes[i];
                    node.p2p = format!("/{family}/{ip}/tcp/{}/p2p/{id}", docker::P2P_PORT);
                    node.node_id = id.to_string();
                    node.api = api;
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(LiveError::NotReady {
                    index: i,
                    log: self.log(i),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts node `i`'s process; [`ready`](Self::ready) waits for it.
    fn spawn(
        &mut self,
        i: usize,
        api: &str,
        listen: &str,
        bootstrap: Option<&str>,
    ) -> Result<mpsc::Receiver<String>, LiveError> {
        let log = self.open_log(i)?;
        let mut command = Command::new(&self.options.skrei);
        command
            .arg("node")
            .args(self.node_args(i, bootstrap))
            .args(["--api", api, "--listen", listen])
            // The node stops when this process exits, even if killed.
            .arg("--parent-pid")
            .arg(std::process::id().to_string());
        command
            .env_remove("SKREI_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .process_group(0);
        let mut child = command.spawn().map_err(|source| LiveError::Spawn {
            skrei: self.options.skrei.clone(),
            source,
        })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        // Reads the SKREI_API line, then drains stdout until the node exits
        // so that it never writes to a closed pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("SKREI_API=") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        self.nodes[i].child = Some(child);
        Ok(rx)
    }

    /// Waits for node `i`'s SKREI_API line and learns its id and address.
    fn ready(&mut self, i: usize, rx: mpsc::Receiver<String>) -> Result<(), LiveError> {
        let url = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(url) => url,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Its stdout closed without the line: it exited.
                let mut child = self.nodes[i].child.take().expect("spawned");
                let status = child.wait().map_err(|source| LiveError::Io {
                    path: self.options.skrei.clone(),
                    source,
                })?;
                return Err(LiveError::Exited {
                    index: i,
                    status: status.to_string(),
                    log: self.log(i),
                    tail: tail(&self.log(i), 20),
                });
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(child) = self.nodes[i].child.take() {
                    stop_all(vec![child]);
                }
                return Err(LiveError::NotReady {
                    index: i,
                    log: self.log(i),
                });
            }
        };
        let api = Api::new(url, self.token(i));
        let info = api.node_info()?;
        let p2p =
            info.bootstrap_addrs()
                .into_iter()
                .next()
                .ok_or_else(|| LiveError::NoAddress {
                    index: i,
                    info: serde_json::to_string(&info).unwrap_or_default(),
                })?;
        let node = &mut self.nodes[i];
        node.api = api;
        node.node_id = info.node_id.to_string();
        node.p2p = p2p.to_string();
        Ok(())
    }

    /// Until every running node has heard a node info message from every
    /// other running node (cut-off nodes aside).
    fn wait_connected(&mut self) -> Result<(), LiveError> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        loop {
            let running: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].child.is_some() && !self.nodes[i].partitioned)
                .collect();
            let mut heard = Vec::new();
            for &i in &running {
                let others: Vec<&str> = running
                    .iter()
                    .filter(|&&j| j != i)
                    .map(|&j| self.nodes[j].node_id.as_str())
                    .collect();
                let info = self.nodes[i].api.node_info()?;
                let count = info
                    .peers
                    .iter()
                    .filter(|p| {
                        p.info.is_some() && others.contains(&p.node_id.to_string().as_str())
                    })
                    .count();
                if count < others.len() {
                    heard.push((i, count));
                }
            }
            if heard.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LiveError::NotConnected { heard });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for LiveNet {
    fn drop(&mut self) {
        self.stop_everything();
    }
}

/// SIGTERM to all at once, then SIGKILL to those still running after
/// [`STOP_TIMEOUT`].
fn stop_all(mut children: Vec<Child>) {
    for child in &children {
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while !children.is_empty() && Instant::now() < deadline {
        children.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        std::thread::sleep(Duration::from_millis(50));
    }
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The last `lines` lines of a file, for an error message.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
