//! Running a task in an engine (R-NET-1..R-NET-3, R-NET-10).
//!
//! An execution works in one folder on the node:
//!
//! ```text
//! <dir>/inputs/<target>    inputs, materialised read-only before the run
//! <dir>/results/stdout     captured output (capped, truncation recorded)
//! <dir>/results/stderr
//! <dir>/results/exitCode
//! <dir>/results/<name>/    one writable folder per result path
//! <dir>/results/network.log  proxy decisions, for `http` jobs
//! ```
//!
//! `<dir>/results` is what gets published. Every engine reports the same
//! [`RunOutcome`] and the same [`ExecError`] kinds, and the node runs a task
//! in either through one call, [`run`].

pub mod docker;
mod output;
pub mod wasm;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use protocol::job::{Engine, Task};

pub use docker::{DockerConfig, DockerExecutor};
pub use output::CappedOutput;
pub use wasm::{WasmExecutor, WasmNetwork};

/// The engines a node offers; an engine left out is refused as unavailable.
#[derive(Default)]
pub struct Engines {
    pub wasm: Option<WasmExecutor>,
    pub docker: Option<DockerExecutor>,
}

/// One execution of a task, with everything the node prepared for it.
pub struct Execution<'a> {
    /// Names the execution on this node (labels, container and network
    /// names); unique among the node's running executions.
    pub id: &'a str,
    pub task: &'a Task,
    /// Inputs already materialised under `<dir>/inputs/<target>`.
    pub dir: &'a ExecutionDir,
    pub limits: Limits,
    /// The entry module's bytes for a WASM task (fetched and verified by
    /// the node); unused for Docker.
    pub wasm_module: Option<&'a [u8]>,
    /// R-NET-7: control-plane addresses learned at run time (peers' API and
    /// libp2p addresses, from gossip), refused on top of the engine's own.
    pub deny: &'a [std::net::SocketAddr],
}

/// Runs one execution in the engine its task names, to its end, its
/// timeout, a limit or `cancel`, writing `<dir>/results`.
///
/// ```no_run
/// # async fn f(engines: &skrei_node::executor::Engines, task: &protocol::job::Task) {
/// use skrei_node::executor::{self, Cancel, Execution, ExecutionDir, Limits};
/// let dir = ExecutionDir::new("/var/lib/skrei/executions/e1");
/// let outcome = executor::run(
///     engines,
///     Execution {
///         id: "e1",
///         task,
///         dir: &dir,
///         limits: Limits::default(),
///         wasm_module: None,
///         deny: &[],
///     },
///     Cancel::default(),
/// )
/// .await;
/// # }
/// ```
pub async fn run(
    engines: &Engines,
    execution: Execution<'_>,
    cancel: Cancel,
) -> Result<RunOutcome, ExecError> {
    let task = execution.task;
    match &task.engine {
        Engine::Docker(params) => {
            let docker = engines.docker.as_ref().ok_or_else(|| {
                ExecError::Unavailable("this node does not run Docker jobs".into())
            })?;
            docker
                .run(
                    docker::DockerTask {
                        execution_id: execution.id,
                        params,
                        task_env: &task.env,
                        inputs: &task.input_sources,
                        result_paths: &task.result_paths,
                        network: &task.network,
                        dir: execution.dir,
                        limits: execution.limits,
                        deny: execution.deny,
                    },
                    cancel,
                )
                .await
        }
        Engine::Wasm(params) => {
            let wasm = engines
                .wasm
                .as_ref()
                .ok_or_else(|| ExecError::Unavailable("this node does not run WASM jobs".into()))?;
            let module = execution.wasm_module.ok_or_else(|| {
                ExecError::Missing("the entry module was not fetched for this execution".into())
            })?;
            wasm.run(
                wasm::WasmTask {
                    execution_id: execution.id,
                    module,
                    params,
                    task_env: &task.env,
                    inputs: &task.input_sources,
                    result_paths: &task.result_paths,
                    network: &task.network,
                    dir: execution.dir,
                    limits: execution.limits,
                    deny: execution.deny,
                },
                cancel,
            )
            .await
        }
    }
}

/// A request to stop an execution; cheap to clone and share.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<CancelState>);

#[derive(Debug, Default)]
struct CancelState {
    cancelled: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Cancel {
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }
    /// Resolves once [`Cancel::cancel`] has been called.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Register before checking, so a cancel in between is not missed.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// Limits applied to one execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time the task may run.
    pub timeout: Duration,
    /// Memory the task may use, in bytes.
    pub memory_bytes: u64,
    /// Bytes of stdout and of stderr kept; the rest is counted and dropped.
    pub output_bytes: u64,
    /// CPU the task may use, in thousandths of a core: Docker throttles the
    /// container to it; a WASM guest (one thread) may use that share of its
    /// timeout as CPU time ([`Limits::cpu_allowance`]) and is stopped past it.
    pub cpu_millis: Option<u64>,
    /// WASM only: instructions budget (wasmtime fuel), when the node meters CPU.
    pub fuel: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(600),
            // What a node's offer counts such a task as holding.
            memory_bytes: protocol::resources::DEFAULT_TASK_MEMORY,
            output_bytes: 16 << 20,
            cpu_millis: None,
            fuel: None,
        }
    }
}

impl Limits {
    /// The CPU time a task may use in all, when it asks for CPU: its share
    /// of a core over its whole timeout. A node counts the task as holding
    /// `cpu_millis` of its offer for as long as it runs; this is what keeps
    /// a WASM guest to that on average.
    pub fn cpu_allowance(&self) -> Option<Duration> {
        let millis = self.cpu_millis?;
        let nanos = self.timeout.as_nanos().saturating_mul(u128::from(millis)) / 1000;
        Some(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }

    /// The limits for `task`: what its `Resources` and `Timeouts` ask for,
    /// the node's `defaults` for what they leave unset. Whether the node
    /// can give that much is for its bidding policy, not decided here.
    pub fn for_task(task: &Task, defaults: Limits) -> Limits {
        Limits {
            timeout: task
                .timeouts
                .execution_timeout
                .filter(|s| *s > 0)
                .map_or(defaults.timeout, Duration::from_secs),
            memory_bytes: task.resources.memory.map_or(defaults.memory_bytes, |m| m.0),
            cpu_millis: task.resources.cpu.map(|c| c.0).or(defaults.cpu_millis),
            ..defaults
        }
    }
}

/// The folder of one execution (see the module docs for its layout).
#[derive(Debug, Clone)]
pub struct ExecutionDir {
    root: PathBuf,
    /// Inputs mounted as they are and writable (R-VOL-4's exception): the
    /// target inside the task, and the folder on the host, already checked
    /// against the operator's writable folders.
    writable: Vec<(String, PathBuf)>,
}

impl ExecutionDir {
    pub fn new(root: impl Into<PathBuf>) -> ExecutionDir {
        ExecutionDir {
            root: root.into(),
            writable: Vec::new(),
        }
    }
    /// This folder, with `host` mounted writable at `target`.
    pub fn with_writable(mut self, target: &str, host: PathBuf) -> ExecutionDir {
        self.writable.push((target.to_owned(), host));
        self
    }
    /// Whether the input at `target` is writable (see [`ExecutionDir::with_writable`]).
    pub fn is_writable(&self, target: &str) -> bool {
        self.writable.iter().any(|(t, _)| t == target)
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Where the input mounted at `target` (an absolute path inside the
    /// task) lives on the host.
    pub fn input(&self, target: &str) -> PathBuf {
        if let Some((_, host)) = self.writable.iter().find(|(t, _)| t == target) {
            return host.clone();
        }
        self.root
            .join("inputs")
            .join(target.trim_start_matches('/'))
    }
    /// The folder that gets published.
    pub fn results(&self) -> PathBuf {
        self.root.join("results")
    }
    /// The host folder behind the result path named `name`.
    pub fn output(&self, name: &str) -> PathBuf {
        self.results().join(name)
    }
}

/// How a task ended when it ran to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    pub exit_code: i32,
    /// Bytes the task wrote to stdout, including any that were dropped.
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    /// The output cap was hit and the rest was dropped (recorded in stderr).
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub duration: Duration,
}

/// A limit an execution ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Memory,
    Cpu,
}

/// Why an execution did not run to its end. The same kinds for every engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The module or image is missing or unusable.
    #[error("{0}")]
    Missing(String),
    /// The task went over a limit.
    #[error("the task went over its {} limit ({detail})", match .kind { LimitKind::Memory => "memory", LimitKind::Cpu => "CPU" })]
    Limit { kind: LimitKind, detail: String },
    /// The task ran longer than its timeout.
    #[error("the task ran longer than its timeout of {0:?}")]
    Timeout(Duration),
    /// The execution was cancelled.
    #[error("the execution was cancelled")]
    Cancelled,
    /// The engine cannot run this task here.
    #[error("engine unavailable: {0}")]
    Unavailable(String),
    /// Preparing or collecting the execution folder failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl ExecError {
    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ExecError {
        let context = context.into();
        move |source| ExecError::Io { context, source }
    }
}

/// Creates the results folder and the capped `stdout` and `stderr` every
/// engine writes.
fn open_outputs(
    dir: &ExecutionDir,
    limits: &Limits,
) -> Result<(CappedOutput, CappedOutput), ExecError> {
    let results = dir.results();
    std::fs::create_dir_all(&results).map_err(ExecError::io("creating the results folder"))?;
    let stdout = CappedOutput::create(&results.join("stdout"), limits.output_bytes)
        .map_err(ExecError::io("creating stdout"))?;
    let stderr = CappedOutput::create(&results.join("stderr"), limits.output_bytes)
        .map_err(ExecError::io("creating stderr"))?;
    Ok((stdout, stderr))
}

/// Writes `exitCode` the way results carry it (the number, no newline).
pub fn write_exit_code(dir: &ExecutionDir, code: i32) -> Result<(), ExecError> {
    std::fs::write(dir.results().join("exitCode"), code.to_string())
        .map_err(ExecError::io("writing exitCode"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cancel_wakes_waiters_and_later_callers() {
        let cancel = Cancel::default();
        let waiter = tokio::spawn({
            let c = cancel.clone();
            async move { c.cancelled().await }
        });
        tokio::task::yield_now().await;
        assert!(!cancel.is_cancelled());
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter wakes")
            .unwrap();
        // A caller arriving after the cancel returns at once.
        tokio::time::timeout(Duration::from_secs(5), cancel.cancelled())
            .await
            .expect("already cancelled");
    }
}
