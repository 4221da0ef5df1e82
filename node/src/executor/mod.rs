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
//! [`RunOutcome`] and the same [`ExecError`] kinds.

mod output;
pub mod wasm;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use output::CappedOutput;

/// Limits applied to one execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time the task may run.
    pub timeout: Duration,
    /// Memory the task may use, in bytes.
    pub memory_bytes: u64,
    /// Bytes of stdout and of stderr kept; the rest is counted and dropped.
    pub output_bytes: u64,
    /// WASM only: instructions budget (wasmtime fuel), when the node meters CPU.
    pub fuel: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(600),
            memory_bytes: 512 << 20,
            output_bytes: 16 << 20,
            fuel: None,
        }
    }
}

/// The folder of one execution (see the module docs for its layout).
#[derive(Debug, Clone)]
pub struct ExecutionDir {
    root: PathBuf,
}

impl ExecutionDir {
    pub fn new(root: impl Into<PathBuf>) -> ExecutionDir {
        ExecutionDir { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Where the input mounted at `target` (an absolute path inside the
    /// task) lives on the host.
    pub fn input(&self, target: &str) -> PathBuf {
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

/// Writes `exitCode` the way results carry it (the number, no newline).
pub fn write_exit_code(dir: &ExecutionDir, code: i32) -> Result<(), ExecError> {
    std::fs::write(dir.results().join("exitCode"), code.to_string())
        .map_err(ExecError::io("writing exitCode"))
}
