//! Live testnets in Docker (`simnet up --docker`): each node in a container
//! of its own, all on one Docker network made for the testnet, so that a
//! node can be cut off (`docker network disconnect`) and healed.
//!
//! The image is skrei's own (`skrei docker image`: `FROM scratch`, the
//! binary and its libraries), so no registry is needed. The containers run
//! as the calling user with the network's folder mounted at the same path,
//! so data folders, logs and files given to `add` read the same inside and
//! out. The host reaches each API at the container's address, from the
//! network's gateway: the nodes run with `--api-allow GATEWAY`.
//!
//! This drives the `docker` command line, the tool a user would type the
//! same steps with.

use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::LiveError;

/// The API's port inside each container.
pub(super) const API_PORT: u16 = 7000;
/// The libp2p port inside each container.
pub(super) const P2P_PORT: u16 = 4001;

/// Marks what a testnet made, with the pid of the `simnet` that made it, so
/// that a later run can remove what a killed one left.
const OWNER_LABEL: &str = "skrei.simnet.pid";

/// One testnet's Docker network and image.
pub(super) struct DockerNet {
    /// The network's name, also the prefix of its containers' names.
    pub name: String,
    pub image: String,
    /// The host's address on the network: the source the APIs must allow.
    pub gateway: IpAddr,
    /// The network's IPv4 range (CIDR): the nodes run with
    /// `--private-network` of it, since their addresses are private.
    pub subnet: String,
    /// `--user` for the containers: the owner of the network's folder.
    user: String,
}

impl DockerNet {
    /// Builds (or finds) the image of `skrei` and creates the network.
    pub fn create(skrei: &Path, root: &Path) -> Result<DockerNet, LiveError> {
        remove_orphans();
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(root).map_err(|source| LiveError::Io {
            path: root.to_path_buf(),
            source,
        })?;
        let user = format!("{}:{}", meta.uid(), meta.gid());
        let image = output(Command::new(skrei).args(["docker", "image"]))
            .map_err(|e| LiveError::Docker(format!("`skrei docker image`: {e}")))?
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("skrei-simnet-{}-{nanos:x}", std::process::id());
        let owner = format!("{OWNER_LABEL}={}", std::process::id());
        docker(&["network", "create", "--label", &owner, &name])?;
        match gateway(&name).and_then(|g| Ok((g, subnet(&name)?))) {
            Ok((gateway, subnet)) => Ok(DockerNet {
                name,
                image,
                gateway,
                subnet,
                user,
            }),
            Err(e) => {
                let _ = docker(&["network", "rm", &name]);
                Err(e)
            }
        }
    }

    /// Node `i`'s container name.
    pub fn container(&self, i: usize) -> String {
        format!("{}-node-{i}", self.name)
    }

    /// Creates and starts node `i`'s container running `skrei node ARGS`.
    /// A container of that name left by an earlier start is replaced.
    pub fn run(&self, i: usize, root: &Path, args: &[String]) -> Result<(), LiveError> {
        let container = self.container(i);
        let _ = docker(&["rm", "-f", &container]);
        let owner = format!("{OWNER_LABEL}={}", std::process::id());
        let mount = format!("{0}:{0}", root.display());
        let mut command: Vec<&str> = vec![
            "run",
            "-d",
            "--name",
            &container,
            "--network",
            &self.name,
            "--label",
            &owner,
            "--user",
            &self.user,
            "--tmpfs",
            "/tmp",
            "-v",
            &mount,
        ];
        // The nodes log as the processes of a process testnet would.
        let log_filter = std::env::var("RUST_LOG").map(|f| format!("RUST_LOG={f}"));
        if let Ok(filter) = &log_filter {
            command.extend(["-e", filter]);
        }
        command.extend([self.image.as_str(), "node"]);
        command.extend(args.iter().map(String::as_str));
        docker(&command).map(drop)
    }

    /// Node `i`'s address on the network; `None` while it is cut off or
    /// stopped.
    pub fn ip(&self, i: usize) -> Result<Option<IpAddr>, LiveError> {
        let info = inspect(&["inspect", &self.container(i)])?;
        let address = info["NetworkSettings"]["Networks"][&self.name]["IPAddress"]
            .as_str()
            .unwrap_or_default();
        Ok(address.parse().ok())
    }

    /// Whether node `i`'s container is running.
    pub fn running(&self, i: usize) -> bool {
        inspect(&["inspect", &self.container(i)])
            .is_ok_and(|info| info["State"]["Running"] == Value::Bool(true))
    }

    /// Follows node `i`'s output (stdout and stderr, from now on) into
    /// `log` until the container stops.
    pub fn follow_logs(&self, i: usize, log: std::fs::File) -> Result<Child, LiveError> {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() - 1.0);
        let err = log.try_clone().map_err(|source| LiveError::Io {
            path: "node log".into(),
            source,
        })?;
        Command::new("docker")
            .args(["logs", "-f", "--since", &format!("{since:.3}")])
            .arg(self.container(i))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(docker_missing)
    }

    /// Crashes node `i` (SIGKILL).
    pub fn kill(&self, i: usize) -> Result<(), LiveError> {
        docker(&["kill", &self.container(i)]).map(drop)
    }

    /// Stops the containers (SIGTERM; SIGKILL after `grace_s` seconds).
    pub fn stop(&self, nodes: &[usize], grace_s: u64) -> Result<(), LiveError> {
        if nodes.is_empty() {
            return Ok(());
        }
        let grace = grace_s.to_string();
        let names: Vec<String> = nodes.iter().map(|&i| self.container(i)).collect();
        let mut args = vec!["stop", "-t", &grace];
        args.extend(names.iter().map(String::as_str));
        docker(&args).map(drop)
    }

    /// Starts node `i`'s stopped container again, with its data.
    pub fn start(&self, i: usize) -> Result<(), LiveError> {
        docker(&["start", &self.container(i)]).map(drop)
    }

    /// Cuts node `i` off the network: no peer, and not the host, reaches it.
    pub fn disconnect(&self, i: usize) -> Result<(), LiveError> {
        docker(&["network", "disconnect", &self.name, &self.container(i)]).map(drop)
    }

    /// Puts node `i` back on the network (perhaps at a new address).
    pub fn connect(&self, i: usize) -> Result<(), LiveError> {
        docker(&["network", "connect", &self.name, &self.container(i)]).map(drop)
    }

    /// Removes the containers and the network.
    pub fn remove(&self, nodes: usize) {
        let names: Vec<String> = (0..nodes).map(|i| self.container(i)).collect();
        let mut args = vec!["rm", "-f"];
        args.extend(names.iter().map(String::as_str));
        if let Err(e) = docker(&args) {
            eprintln!("removing the testnet's containers: {e}");
        }
        if let Err(e) = docker(&["network", "rm", &self.name]) {
            eprintln!("removing the testnet's network: {e}");
        }
    }
}

/// The gateway of `network`: its first IPv4 range's, or that range's first
/// address when Docker does not name one.
fn gateway(network: &str) -> Result<IpAddr, LiveError> {
    let info = inspect(&["network", "inspect", network])?;
    let configs = info["IPAM"]["Config"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for config in &configs {
        if let Some(Ok(ip)) = config["Gateway"].as_str().map(str::parse::<IpAddr>)
            && ip.is_ipv4()
        {
            return Ok(ip);
        }
        if let Some((base, _)) = config["Subnet"].as_str().and_then(|s| s.split_once('/'))
            && let Ok(std::net::IpAddr::V4(v4)) = base.parse()
        {
            return Ok(IpAddr::V4(std::net::Ipv4Addr::from(u32::from(v4) + 1)));
        }
    }
    Err(LiveError::Docker(format!(
        "network {network} has no IPv4 gateway: {}",
        info["IPAM"]
    )))
}

/// The first IPv4 range (CIDR) of `network`.
fn subnet(network: &str) -> Result<String, LiveError> {
    let info = inspect(&["network", "inspect", network])?;
    info["IPAM"]["Config"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["Subnet"].as_str())
        .find(|s| {
            s.split_once('/')
                .is_some_and(|(ip, _)| ip.parse::<std::net::Ipv4Addr>().is_ok())
        })
        .map(str::to_owned)
        .ok_or_else(|| {
            LiveError::Docker(format!(
                "network {network} has no IPv4 range: {}",
                info["IPAM"]
            ))
        })
}

/// Removes the containers and networks of testnets whose `simnet` is gone
/// (killed before it could clean up).
fn remove_orphans() {
    let Ok(list) = docker(&[
        "network",
        "ls",
        "--filter",
        &format!("label={OWNER_LABEL}"),
        "--format",
        &format!("{{{{.Name}}}} {{{{.Label \"{OWNER_LABEL}\"}}}}"),
    ]) else {
        return;
    };
    for line in list.lines() {
        let Some((name, pid)) = line.split_once(' ') else {
            continue;
        };
        let alive = pid
            .trim()
            .parse::<i32>()
            .is_ok_and(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok());
        if alive {
            continue;
        }
        if let Ok(ids) = docker(&["ps", "-aq", "--filter", &format!("network={name}")]) {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                let _ = docker(&args);
            }
        }
        let _ = docker(&["network", "rm", name]);
    }
}

/// `docker inspect`-like output's first object.
fn inspect(args: &[&str]) -> Result<Value, LiveError> {
    let text = docker(args)?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| LiveError::Docker(format!("docker {}: {e}", args.join(" "))))?;
    Ok(value.get(0).cloned().unwrap_or(Value::Null))
}

/// Runs `docker ARGS`; its stdout, or its stderr as the error.
fn docker(args: &[&str]) -> Result<String, LiveError> {
    let mut command = Command::new("docker");
    command.args(args);
    output(&mut command).map_err(|e| match e {
        LiveError::Docker(message) => LiveError::Docker(format!("docker {}: {message}", args[0])),
        e => e,
    })
}

fn output(command: &mut Command) -> Result<String, LiveError> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(docker_missing)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LiveError::Docker(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

fn docker_missing(e: std::io::Error) -> LiveError {
    LiveError::Docker(format!(
        "cannot run docker ({e}): --docker needs the Docker command line and a running engine"
    ))
}
