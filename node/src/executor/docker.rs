//! The Docker engine, through bollard (R-NET-1..R-NET-3).
//!
//! A task runs in one container created from an image on the node, pulled
//! first from a registry the operator allows when it is missing ([`pull`]),
//! with its inputs bind-mounted read-only, its
//! result folders read-write, all capabilities dropped, no new privileges,
//! and memory, CPU and process limits. Its output is read through an attach
//! stream (the container logs nothing to disk) and capped.
//!
//! Networks, by mode:
//! - `none`: Docker's network mode `none`: loopback only.
//! - `full`: a bridge network of its own, never the host's namespace, and
//!   refused every address of the host where the node may filter (see
//!   [`firewall`]): the job reaches other hosts, not this one.
//! - `http`: an internal network that gives the host no address (see
//!   [`isolation`]), whose only other member is a proxy sidecar running
//!   `skrei proxy` with the job's domains, also attached to an egress bridge
//!   of its own. The job gets the sidecar in the four proxy variables; the
//!   sidecar's audit lines become `network.log`. The job's container
//!   has no IPv6 and a resolver on its own loopback ([`isolation::confine`]).
//!
//! Every container and network carries `skrei.managed=1`,
//! `skrei.owner=<node>` and `skrei.execution=<id>`, is removed when the run
//! ends (also when the run's future is dropped), and
//! [`DockerExecutor::remove_orphans`] removes what a crashed node left.

mod engine_objects;
mod firewall;
mod isolation;
pub mod pull;
mod resources;
mod sidecar;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountType};
use bollard::query_parameters::{ListContainersOptions, ListNetworksOptions};
use firewall::HostGuard;
use protocol::job::{DockerParams, InputSource, Network, NetworkMode, ResultPath};
use resources::Resources;

pub use pull::{PullConfig, ReadyImage};

use super::{
    Cancel, CappedOutput, ExecError, ExecutionDir, LimitKind, Limits, RunOutcome, write_exit_code,
};

/// Port the sidecar proxy listens on inside the job's network.
pub const PROXY_PORT: u16 = 3128;
const LABEL_MANAGED: &str = "skrei.managed";
const LABEL_OWNER: &str = "skrei.owner";
const LABEL_EXECUTION: &str = "skrei.execution";
/// How long the sidecar gets to start listening.
const SIDECAR_START: Duration = Duration::from_secs(15);

/// Node settings for the Docker engine.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// Names this node on its containers and networks, so that start-up
    /// removes only its own leftovers (several nodes may share an engine).
    pub owner: String,
    /// The executable the `http` sidecar runs as `skrei proxy`; the running
    /// executable when unset.
    pub sidecar_executable: Option<PathBuf>,
    /// R-NET-6: bytes per second in each direction for each `http` job.
    pub http_rate: u64,
    /// R-NET-7: control-plane addresses no job may reach through its proxy
    /// (this node's and its peers' API and libp2p addresses).
    pub deny: Vec<SocketAddr>,
    /// Special-purpose ranges the operator allows despite R-NET-8.
    pub allow_ranges: Vec<proxy::Cidr>,
    /// Fixed answers the sidecar gives for names instead of asking DNS (the
    /// addresses are still checked); for tests and private deployments.
    pub resolve: Vec<(String, IpAddr)>,
    /// Ports `CONNECT` may reach.
    pub connect_ports: Vec<u16>,
    /// Ports plain HTTP may reach.
    pub http_ports: Vec<u16>,
    /// Processes a task may have at once.
    pub pids_limit: i64,
    /// This node's own services by name (`API`, `libp2p`, `data`), named in
    /// the start-up warning when `full` jobs cannot be kept off the host.
    pub services: Vec<(String, SocketAddr)>,
    /// Whether the node accepts `full` jobs: then that warning is loud.
    pub accepts_full: bool,
    /// The nftables tool (`nft`) the node keeps jobs off the host with.
    pub nft: PathBuf,
    /// What the node pulls (`--pull-from`, `--max-image-size`).
    pub pull: PullConfig,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            owner: "node".into(),
            sidecar_executable: None,
            http_rate: 1_250_000,
            deny: Vec::new(),
            allow_ranges: Vec::new(),
            resolve: Vec::new(),
            connect_ports: vec![443],
            http_ports: vec![80],
            pids_limit: 512,
            services: Vec::new(),
            accepts_full: false,
            nft: PathBuf::from("nft"),
            pull: PullConfig::default(),
        }
    }
}

/// One Docker task, with everything the node prepared for it.
pub struct DockerTask<'a> {
    pub execution_id: &'a str,
    pub params: &'a DockerParams,
    /// The task's `Env`, under the engine's own variables.
    pub task_env: &'a BTreeMap<String, String>,
    pub inputs: &'a [InputSource],
    pub result_paths: &'a [ResultPath],
    pub network: &'a Network,
    pub dir: &'a ExecutionDir,
    pub limits: Limits,
    /// Control-plane addresses to refuse besides [`DockerConfig::deny`].
    pub deny: &'a [SocketAddr],
}

/// The local engine (`DOCKER_HOST` or the default socket), checked to answer.
async fn connect() -> Result<Docker, ExecError> {
    let docker = Docker::connect_with_local_defaults()
        .map_err(|e| ExecError::Unavailable(format!("cannot reach the Docker engine: {e}")))?
        .negotiate_version()
        .await
        .map_err(|e| ExecError::Unavailable(format!("cannot reach the Docker engine: {e}")))?;
    docker
        .ping()
        .await
        .map_err(|e| ExecError::Unavailable(format!("the Docker engine does not answer: {e}")))?;
    Ok(docker)
}

/// The image of the skrei executable `exe` on the local engine, built
/// (`FROM scratch`: the executable and its libraries, entrypoint `skrei`)
/// unless the engine has it; returns its tag. `docker run TAG node ...`
/// runs a node in a container; the `http` sidecar runs from it too.
pub async fn self_image(exe: &std::path::Path) -> Result<String, ExecError> {
    let docker = connect().await?;
    sidecar::ensure_image(&docker, exe)
        .await
        .map_err(ExecError::Unavailable)
}

/// The Docker engine. Create one per node (it checks the engine, removes
/// leftovers and prepares `http` isolation) and share it.
pub struct DockerExecutor {
    docker: Docker,
    config: DockerConfig,
    /// The sidecar image and the options that isolate an internal network,
    /// or why `http` jobs are refused here.
    http: Result<HttpSupport, String>,
    /// What keeps jobs' bridges off the host's addresses, or why nothing
    /// does here.
    guard: Result<Arc<HostGuard>, String>,
    /// Pulls in progress, shared by the jobs that wait for them.
    pulls: pull::Pulls,
}

#[derive(Debug, Clone)]
struct HttpSupport {
    sidecar_image: String,
    network_options: HashMap<String, String>,
}

impl DockerExecutor {
    /// Connects to the local engine (`DOCKER_HOST` or the default socket),
    /// negotiates the API version, removes this owner's leftovers, and sets
    /// up `http` support where the engine can isolate it.
    pub async fn new(config: DockerConfig) -> Result<DockerExecutor, ExecError> {
        let docker = connect().await?;
        let mut executor = DockerExecutor {
            docker,
            config,
            http: Err("not checked yet".into()),
            guard: Err("not installed yet".into()),
            pulls: pull::Pulls::default(),
        };
        let removed = executor.remove_orphans().await?;
        if removed > 0 {
            tracing::info!(
                removed,
                "removed containers and networks left by an earlier run"
            );
        }
        executor.guard = executor.prepare_guard().await;
        match &executor.guard {
            Ok(guard) => tracing::info!(
                table = guard.table(),
                "Docker jobs' networks are refused this host's addresses"
            ),
            Err(why) if executor.config.accepts_full => {
                tracing::warn!(%why, "{}", executor.full_exposure().unwrap_or_default());
            }
            Err(why) => tracing::info!(%why, "Docker jobs' networks cannot be kept off this host"),
        }
        executor.http = executor.prepare_http().await;
        if let Err(why) = &executor.http {
            tracing::warn!(%why, "Docker jobs with network http will be refused");
        }
        Ok(executor)
    }

    async fn prepare_http(&self) -> Result<HttpSupport, String> {
        let exe = match &self.config.sidecar_executable {
            Some(p) => p.clone(),
            None => std::env::current_exe()
                .map_err(|e| format!("cannot find the running executable: {e}"))?,
        };
        let sidecar_image = sidecar::ensure_image(&self.docker, &exe).await?;
        let dns_forwarding = isolation::engine_forwards_internal_dns(&self.docker).await?;
        let network_options = isolation::find_isolating_options(
            &self.docker,
            &self.labels("isolation-check"),
            &sidecar_image,
            dns_forwarding,
        )
        .await?;
        Ok(HttpSupport {
            sidecar_image,
            network_options,
        })
    }

    /// Whether `http` jobs run here, or why not.
    pub fn http_support(&self) -> Result<(), &str> {
        self.http.as_ref().map(|_| ()).map_err(String::as_str)
    }

    /// The images on this engine, as jobs may name them (`name:tag` and
    /// `name@digest`): jobs naming others are refused at bid time.
    pub async fn image_refs(&self) -> Result<std::collections::BTreeSet<String>, ExecError> {
        let images = self
            .docker
            .list_images(None::<bollard::query_parameters::ListImagesOptions>)
            .await
            .map_err(|e| ExecError::Unavailable(format!("listing the engine's images: {e}")))?;
        Ok(images
            .into_iter()
            .flat_map(|i| i.repo_tags.into_iter().chain(i.repo_digests))
            .filter(|r| r != "<none>:<none>" && r != "<none>@<none>")
            .collect())
    }

    /// The sidecar image this node built, when `http` is supported.
    pub fn sidecar_image(&self) -> Option<&str> {
        self.http.as_ref().ok().map(|h| h.sidecar_image.as_str())
    }

    fn labels(&self, execution_id: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_MANAGED.to_string(), "1".to_string()),
            (LABEL_OWNER.to_string(), self.config.owner.clone()),
            (LABEL_EXECUTION.to_string(), execution_id.to_string()),
        ])
    }

    /// Removes every container and network this owner created; run at
    /// start-up, when none of them can belong to a live execution.
    /// Returns how many were removed.
    pub async fn remove_orphans(&self) -> Result<usize, ExecError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("{LABEL_MANAGED}=1"),
                format!("{LABEL_OWNER}={}", self.config.owner),
            ],
        )]);
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
            .map_err(engine("listing leftover containers"))?;
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(engine("listing leftover networks"))?;
        let mut resources = Resources::new(self.docker.clone(), None);
        resources.containers = containers.into_iter().filter_map(|c| c.id).collect();
        resources.networks = networks.into_iter().filter_map(|n| n.id).collect();
        let count = resources.containers.len() + resources.networks.len();
        resources.remove().await;
        Ok(count)
    }

    /// Runs a task to its end, its timeout, a limit, or `cancel`.
    pub async fn run(&self, task: DockerTask<'_>, cancel: Cancel) -> Result<RunOutcome, ExecError> {
        if cancel.is_cancelled() {
            return Err(ExecError::Cancelled);
        }
        let http = match task.network.r#type {
            NetworkMode::Http => Some(self.http.clone().map_err(|why| {
                ExecError::Unavailable(format!(
                    "this node cannot isolate Docker jobs with network http ({why}); \
                     it refuses them rather than run them unisolated"
                ))
            })?),
            _ => None,
        };
        let image = &task.params.image;
        self.docker
            .inspect_image(image)
            .await
            .map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                } => ExecError::Missing(format!("image {image} is not present on this node")),
                e => ExecError::Unavailable(format!("cannot inspect image {image}: {e}")),
            })?;
        let prepared = prepare(&task)?;

        let mut resources = Resources::new(self.docker.clone(), self.guard.clone().ok());
        let result = self
            .run_prepared(&task, prepared, http, &mut resources, cancel)
            .await;
        resources.remove().await;
        let _ = std::fs::remove_dir_all(sidecar::proxy_dir(task.dir));
        result
    }

    async fn run_prepared(
        &self,
        task: &DockerTask<'_>,
        p: Prepared,
        http: Option<HttpSupport>,
        resources: &mut Resources,
        cancel: Cancel,
    ) -> Result<RunOutcome, ExecError> {
        let labels = self.labels(task.execution_id);
        let base = resource_name(task.execution_id);
        let mut env = p.env;
        let mut sidecar = None;
        let network_mode = match task.network.r#type {
            NetworkMode::None => "none".to_string(),
            NetworkMode::Full => {
                let name = format!("{base}-net");
                let id = self
                    .create_network(&name, false, HashMap::new(), &labels, resources)
                    .await?;
                // Without a guard the node runs `full` jobs as the operator
                // accepted them, having said at start-up what they reach.
                self.keep_off_host(&id, resources).await?;
                name
            }
            NetworkMode::Http => {
                let http = http.ok_or_else(|| {
                    ExecError::Unavailable("http support was not checked for this run".into())
                })?;
                let internal = format!("{base}-int");
                let id = self
                    .create_network(
                        &internal,
                        true,
                        http.network_options.clone(),
                        &labels,
                        resources,
                    )
                    .await?;
                // The bridge has no host address already (checked at
                // start-up); the guard is a second wall.
                self.keep_off_host(&id, resources).await?;
                if !task.network.domains.is_empty() {
                    let s = self
                        .start_sidecar(task, &http, &base, &internal, &labels, resources)
                        .await?;
                    let url = format!("http://{}:{PROXY_PORT}", s.ip);
                    for var in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
                        env.push(format!("{var}={url}"));
                    }
                    sidecar = Some(s);
                }
                internal
            }
        };

        let mut host_config = HostConfig {
            network_mode: Some(network_mode),
            mounts: Some(p.mounts),
            memory: i64::try_from(task.limits.memory_bytes).ok(),
            // Equal to memory: no swap, so the memory limit is the limit.
            memory_swap: i64::try_from(task.limits.memory_bytes).ok(),
            nano_cpus: task
                .limits
                .cpu_millis
                .and_then(|m| i64::try_from(m.saturating_mul(1_000_000)).ok()),
            pids_limit: Some(self.config.pids_limit),
            ..locked_down()
        };
        if task.network.r#type == NetworkMode::Http {
            isolation::confine(&mut host_config);
        }
        let body = ContainerCreateBody {
            image: Some(task.params.image.clone()),
            entrypoint: (!task.params.entrypoint.is_empty())
                .then(|| task.params.entrypoint.clone()),
            cmd: (!task.params.parameters.is_empty()).then(|| task.params.parameters.clone()),
            env: Some(env),
            working_dir: task.params.working_directory.clone(),
            labels: Some(labels.clone()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            open_stdin: Some(false),
            host_config: Some(host_config),
            ..Default::default()
        };
        let id = self
            .create_container(&format!("{base}-job"), body, resources)
            .await?;
        let pump = self.attach(&id, p.stdout.clone(), p.stderr.clone()).await?;

        let started = Instant::now();
        self.docker
            .start_container(&id, None)
            .await
            .map_err(|e| ExecError::Missing(format!("the container could not start: {e}")))?;
        let ended = {
            tokio::select! {
                () = self.exited(&id) => Ended::Exited,
                () = tokio::time::sleep(task.limits.timeout) => Ended::Timeout,
                () = cancel.cancelled() => Ended::Cancelled,
            }
        };
        if ended != Ended::Exited {
            self.kill(&id).await;
        }
        // The streams close when the container's last process exits.
        let _ = tokio::time::timeout(Duration::from_secs(10), pump).await;
        let duration = started.elapsed();
        if let Some(s) = sidecar {
            s.finish(self, &p.network_log).await?;
        }
        match ended {
            Ended::Timeout => return Err(ExecError::Timeout(task.limits.timeout)),
            Ended::Cancelled => return Err(ExecError::Cancelled),
            Ended::Exited => {}
        }
        let state = self
            .docker
            .inspect_container(&id, None)
            .await
            .map_err(engine("inspecting the finished container"))?
            .state
            .unwrap_or_default();
        if state.oom_killed == Some(true) {
            return Err(ExecError::Limit {
                kind: LimitKind::Memory,
                detail: format!("{} bytes", task.limits.memory_bytes),
            });
        }
        let exit_code = state
            .exit_code
            .and_then(|c| i32::try_from(c).ok())
            .unwrap_or(-1);
        write_exit_code(task.dir, exit_code)?;
        Ok(RunOutcome {
            exit_code,
            stdout_bytes: p.stdout.seen(),
            stderr_bytes: p.stderr.seen(),
            stdout_truncated: p.stdout.truncated(),
            stderr_truncated: p.stderr.truncated(),
            duration,
        })
    }
}

/// What every skrei container gets: no capabilities, no privilege gain,
/// no logs on the engine's disk (output is read through attach).
fn locked_down() -> HostConfig {
    HostConfig {
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".into()),
            config: None,
        }),
        ..Default::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Exited,
    Timeout,
    Cancelled,
}

/// What the container gets, decided before anything is created.
struct Prepared {
    env: Vec<String>,
    mounts: Vec<Mount>,
    stdout: CappedOutput,
    stderr: CappedOutput,
    network_log: PathBuf,
}

fn prepare(task: &DockerTask<'_>) -> Result<Prepared, ExecError> {
    let (stdout, stderr) = super::open_outputs(task.dir, &task.limits)?;

    let mut mounts = Vec::new();
    for input in task.inputs {
        let given = task.dir.input(&input.target);
        let host = std::fs::canonicalize(&given).map_err(ExecError::io(format!(
            "input at {} was not materialised",
            input.target
        )))?;
        let writable = task.dir.is_writable(&input.target);
        // A writable input is the operator's folder as checked when it was
        // materialised (its real path): if a part of it became a symlink
        // since (a job writing there at the same time), it would now lead
        // elsewhere, so nothing is mounted.
        if writable && host != given {
            return Err(ExecError::Io {
                context: format!(
                    "the writable input at {} ({}) changed since it was checked",
                    input.target,
                    given.display()
                ),
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        mounts.push(bind(host, &input.target, !writable));
    }
    for r in task.result_paths {
        let host = task.dir.output(&r.name);
        std::fs::create_dir_all(&host).map_err(ExecError::io(format!(
            "creating the result folder {}",
            r.name
        )))?;
        let host = std::fs::canonicalize(&host).map_err(ExecError::io(format!(
            "finding the result folder {}",
            r.name
        )))?;
        mounts.push(bind(host, &r.path, false));
    }

    let mut env: BTreeMap<String, String> = task.task_env.clone();
    for kv in &task.params.environment_variables {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        env.insert(k.to_string(), v.to_string());
    }
    if task.network.r#type == NetworkMode::Http {
        // The sidecar's address replaces whatever the job set.
        for var in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
            env.remove(var);
        }
    }
    Ok(Prepared {
        env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        mounts,
        stdout,
        stderr,
        network_log: task.dir.results().join("network.log"),
    })
}

fn bind(source: PathBuf, target: &str, read_only: bool) -> Mount {
    Mount {
        typ: Some(MountType::BIND),
        source: Some(source.to_string_lossy().into_owned()),
        target: Some(target.to_string()),
        read_only: Some(read_only),
        ..Default::default()
    }
}

/// `skrei-<id>-<n>`: a name Docker accepts, unique in this process, and
/// recognisable to an operator listing containers.
fn resource_name(execution_id: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let safe: String = execution_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(40)
        .collect();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("skrei-{safe}-{}-{n}", std::process::id())
}

fn engine(context: &'static str) -> impl FnOnce(bollard::errors::Error) -> ExecError {
    move |e| ExecError::Unavailable(format!("{context}: {e}"))
}
