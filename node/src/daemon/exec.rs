//! One execution on this node: inputs in, engine run, results published
//! into the store (R-VOL-1..3). Ends in the [`Outcome`] the compute state
//! machine reports to the requester.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use iroh::EndpointAddr;
use protocol::failure::{Failure, FailureCause};
use protocol::id::{ExecutionId, JobId, NodeId};
use protocol::job::{Engine, InputSource, JobSpec, NetworkMode, Source};
use protocol::messages::{Outcome, Step};
use storage::download::Downloader;
use storage::inputs::{InputErrorKind, Inputs, materialise};
use storage::store::Store;

use crate::executor::{self, Cancel, Engines, Execution, ExecutionDir, Limits};

/// What every execution on this node shares.
pub(super) struct ExecContext {
    pub data_dir: PathBuf,
    pub store: Arc<Store>,
    pub downloader: Downloader,
    pub engines: Engines,
    pub local_inputs: Vec<PathBuf>,
    /// Those jobs may write to (`--local-inputs DIR:rw`, R-VOL-4).
    pub local_inputs_rw: Vec<PathBuf>,
    /// The node's S3 endpoint (`--s3-endpoint`), for S3 inputs and the
    /// `s3` publisher.
    pub s3: Option<storage::s3::S3Client>,
    /// Most bytes one CID input may take (`--max-input-size`).
    pub max_input_size: u64,
    /// Folders `dir` publishers may write under (R-SEC-2).
    pub publish_dirs: Vec<PathBuf>,
    /// The images this node pulled, kept within `--image-cache`.
    pub images: super::images::ImageCache,
    /// Variables of the node's environment jobs may read (`--allow-env`).
    pub allowed_env: Vec<String>,
    /// Told of every CID input fetched: bytes and time, for the node's
    /// link rate estimate (R-PLC-1).
    pub on_fetched: Box<dyn Fn(u64, Duration) + Send + Sync>,
    /// Bytes this node's jobs moved through their egress (both ways, as
    /// their network.log counts them), for the dashboard's charts.
    pub egress_bytes: std::sync::atomic::AtomicU64,
}

/// One attempt this node runs, and where it tells its requester of its
/// steps.
pub(super) struct Attempt<'a> {
    pub job_id: JobId,
    pub execution_id: ExecutionId,
    /// This node.
    pub node: NodeId,
    /// Which of the job's `Count` parts it runs.
    pub partition: u32,
    pub report: &'a (dyn Fn(Step) + Send + Sync),
}

/// Replaces the task's `env:NAME` values with the node's variables, which
/// its operator allows (checked at bid time too, R-POL-3).
fn read_node_env(
    allowed: &[String],
    env: &mut std::collections::BTreeMap<String, String>,
) -> Result<(), Failure> {
    for (key, value) in env.iter_mut() {
        let Some(name) = value.strip_prefix(protocol::job::NODE_ENV_PREFIX) else {
            continue;
        };
        if !protocol::compute::env_allowed(allowed, name) {
            return Err(Failure::new(
                FailureCause::EngineUnavailable,
                format!("Env {key} reads the node's variable {name}, which jobs may not read here"),
            ));
        }
        *value = std::env::var(name).map_err(|_| {
            Failure::new(
                FailureCause::NodeError,
                format!(
                    "Env {key} reads the node's variable {name}, which is not set on this node"
                ),
            )
        })?;
    }
    Ok(())
}

/// What every task sees of its job, under Bacalhau's names and skrei's
/// (issue 17): `BACALHAU_JOB_ID`, `SKREI_JOB_ID`, ... They win over the
/// job's own `Env` of the same names.
fn job_env(attempt: &Attempt<'_>, spec: &JobSpec) -> Vec<(String, String)> {
    let job_id = attempt.job_id.to_string();
    let values = [
        ("JOB_ID", job_id.clone()),
        ("EXECUTION_ID", format!("{job_id}-{}", attempt.execution_id)),
        ("NODE_ID", attempt.node.to_string()),
        (
            "JOB_NAME",
            spec.name.clone().unwrap_or_else(|| job_id.clone()),
        ),
        (
            "JOB_NAMESPACE",
            spec.namespace.clone().unwrap_or_else(|| "default".into()),
        ),
        ("JOB_TYPE", spec.r#type.name().into()),
        ("PARTITION_INDEX", attempt.partition.to_string()),
        ("PARTITION_COUNT", spec.count.to_string()),
    ];
    values
        .into_iter()
        .flat_map(|(name, value)| {
            [
                (format!("BACALHAU_{name}"), value.clone()),
                (format!("SKREI_{name}"), value),
            ]
        })
        .collect()
}

/// Runs one execution to its end; never fails, reports why instead.
pub(super) async fn run(
    ctx: Arc<ExecContext>,
    attempt: Attempt<'_>,
    spec: JobSpec,
    providers: Vec<String>,
    deny: Vec<SocketAddr>,
    cancel: Cancel,
) -> Outcome {
    let mut spec = spec;
    let env = job_env(&attempt, &spec);
    let read = match spec.tasks.first_mut() {
        Some(task) => {
            let read = read_node_env(&ctx.allowed_env, &mut task.env);
            task.env.extend(env);
            read
        }
        None => Ok(()),
    };
    if let Err(failure) = read {
        return Outcome::Failed { failure };
    }
    let Attempt {
        job_id,
        execution_id,
        report,
        ..
    } = attempt;
    let root = ctx
        .data_dir
        .join("executions")
        .join(format!("{job_id}.{execution_id}"));
    let outcome = match run_in(
        &ctx,
        &root,
        (&job_id, execution_id, report),
        &spec,
        &providers,
        &deny,
        cancel,
    )
    .await
    {
        Ok(outcome) => outcome,
        Err(failure) => Outcome::Failed { failure },
    };
    // Inputs were made read-only; give them back before removing the folder.
    let _ = storage::inputs::unlock(&root).await;
    if let Err(e) = tokio::fs::remove_dir_all(&root).await {
        tracing::warn!(%job_id, dir = %root.display(), "cannot remove execution folder: {e}");
    }
    outcome
}

async fn run_in(
    ctx: &ExecContext,
    root: &std::path::Path,
    (job_id, execution_id, report): (&JobId, ExecutionId, &(dyn Fn(Step) + Send + Sync)),
    spec: &JobSpec,
    providers: &[String],
    deny: &[SocketAddr],
    cancel: Cancel,
) -> Result<Outcome, Failure> {
    let node_error = |what: &str, e: std::io::Error| {
        Failure::new(
            FailureCause::NodeError,
            format!("{what} {}: {e}", root.display()),
        )
    };
    if tokio::fs::metadata(root).await.is_ok() {
        let _ = storage::inputs::unlock(root).await;
        tokio::fs::remove_dir_all(root)
            .await
            .map_err(|e| node_error("cannot clear", e))?;
    }
    tokio::fs::create_dir_all(root.join("results"))
        .await
        .map_err(|e| node_error("cannot create", e))?;
    // This node's own store is looked in first anyway; iroh refuses to
    // dial itself, which would count as a failed provider.
    let me = ctx.store.addr().id;
    let providers: Vec<EndpointAddr> = providers
        .iter()
        .filter_map(|p| serde_json::from_str::<EndpointAddr>(p).ok())
        .filter(|a| a.id != me)
        .collect();
    let task = spec.task();
    // R-PLC-1: a task asking for disk holds its inputs and results to it;
    // each CID input stops being fetched at the smaller budget.
    let disk = task.resources.disk.map(|d| d.0);
    let inputs = Inputs {
        store: &ctx.store,
        providers: &providers,
        downloader: &ctx.downloader,
        allowed_local: &ctx.local_inputs,
        allowed_local_rw: &ctx.local_inputs_rw,
        s3: ctx.s3.as_ref(),
        max_cid_bytes: disk.map_or(ctx.max_input_size, |d| d.min(ctx.max_input_size)),
        on_fetched: Some(&*ctx.on_fetched),
    };
    let limits = Limits::for_task(task, Limits::default());
    // The requester expects an answer within ExecutionTimeout (and a grace)
    // of the award: the timeout covers fetching the inputs as well as the
    // run, so a slow fetch ends in a reason, not in silence.
    // A Docker image the node lacks is pulled meanwhile (issue 16): the
    // timeout covers the pull too.
    let started = std::time::Instant::now();
    let image_in = std::sync::atomic::AtomicBool::new(false);
    let image = async {
        let ready = match (&task.engine, ctx.engines.docker.as_ref()) {
            (Engine::Docker(params), Some(docker)) => {
                let pulling = || {
                    report(Step::PullingImage {
                        image: params.image.clone(),
                    })
                };
                Some(
                    ctx.images
                        .ready(docker, &params.image, &pulling)
                        .await
                        .map_err(exec_failure)?,
                )
            }
            _ => None,
        };
        image_in.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok::<_, Failure>(ready)
    };
    let ((module, writable), image) = tokio::select! {
        prepared = async { tokio::try_join!(prepare_with_retries(&inputs, root, spec, disk), image) } => prepared?,
        () = cancel.cancelled() => return Err(exec_failure(executor::ExecError::Cancelled)),
        () = tokio::time::sleep(limits.timeout) => {
            return Err(match &task.engine {
                Engine::Docker(params) if !image_in.load(std::sync::atomic::Ordering::Relaxed) => {
                    pull_timed_out(&params.image, limits.timeout)
                }
                _ => inputs_timed_out(limits.timeout),
            });
        }
    };
    // The image that runs, pinned: the requester records it (issue 16).
    let ran = image
        .as_ref()
        .map(|(ready, _)| ready.pinned.clone().unwrap_or_else(|| ready.id.clone()));
    report(Step::Running { image: ran });
    if let Some(disk) = disk {
        check_disk(disk, root, &["inputs", "module"], "inputs").await?;
    }
    // What is left of the timeout is the run's.
    let left = limits.timeout.saturating_sub(started.elapsed());
    if left.is_zero() {
        return Err(inputs_timed_out(limits.timeout));
    }
    let limits = Limits {
        timeout: left,
        ..limits
    };
    let dir = writable
        .into_iter()
        .fold(ExecutionDir::new(root), |dir, (target, host)| {
            dir.with_writable(&target, host)
        });
    // Unique on this node: it names containers and networks, and it is the
    // job in every network.log line (R-NET-9).
    let id = format!("{job_id}-{execution_id}");
    let execution = Execution {
        id: &id,
        task,
        dir: &dir,
        limits,
        wasm_module: module.as_deref(),
        deny,
    };
    let outcome = executor::run(&ctx.engines, execution, cancel)
        .await
        .map_err(exec_failure)?;
    if task.network.r#type == NetworkMode::None {
        // `none` jobs made no requests; an empty log says so plainly.
        let _ = tokio::fs::write(dir.results().join("network.log"), b"").await;
    } else if let Ok(log) = tokio::fs::read_to_string(dir.results().join("network.log")).await {
        // The log is capped (R-SEC-4), so this read is bounded.
        ctx.egress_bytes
            .fetch_add(egress_bytes(&log), std::sync::atomic::Ordering::Relaxed);
    }
    if let Some(disk) = disk {
        // Checked before the results enter the store.
        check_disk(
            disk,
            root,
            &["inputs", "module", "results"],
            "inputs and results",
        )
        .await?;
    }
    let published = storage::publish::publish(
        &ctx.store,
        &dir.results(),
        &task.publisher,
        Some(&job_id.to_string()),
        ctx.s3.as_ref(),
        &ctx.publish_dirs,
    )
    .await
    .map_err(|e| {
        Failure::new(
            FailureCause::PublishFailed,
            format!("publishing results: {e}"),
        )
    })?;
    Ok(Outcome::Completed {
        result_cid: published.cid,
        exit_code: outcome.exit_code,
    })
}

/// The bytes both ways of a network.log's records (lines that are not
/// records, such as the cap's notice, count nothing).
fn egress_bytes(log: &str) -> u64 {
    log.lines()
        .filter_map(|line| serde_json::from_str::<proxy::AuditRecord>(line).ok())
        .map(|r| r.bytes_up.saturating_add(r.bytes_down))
        .fold(0u64, u64::saturating_add)
}

fn inputs_timed_out(timeout: Duration) -> Failure {
    let detail = format!(
        "the inputs were not in within the job's ExecutionTimeout ({} s), which counts \
         fetching them: raise ExecutionTimeout for large inputs or slow providers",
        timeout.as_secs()
    );
    Failure::new(FailureCause::InputTimeout, detail)
}

fn pull_timed_out(image: &str, timeout: Duration) -> Failure {
    let detail = format!(
        "pulling image {image} did not finish within the job's ExecutionTimeout ({} s), which \
         counts the pull: raise ExecutionTimeout, or run it where the image is already present",
        timeout.as_secs()
    );
    Failure::new(FailureCause::InputTimeout, detail)
}

/// An engine's error as a failure: the same causes for every engine.
fn exec_failure(e: executor::ExecError) -> Failure {
    use executor::ExecError;
    let cause = match &e {
        ExecError::Missing(_) | ExecError::Unavailable(_) => FailureCause::EngineUnavailable,
        ExecError::Limit { .. } => FailureCause::ResourceLimit,
        ExecError::Timeout(_) => FailureCause::Timeout,
        ExecError::Cancelled => FailureCause::Cancelled,
        ExecError::Io { .. } => FailureCause::NodeError,
    };
    Failure::new(cause, e.to_string())
}

/// R-PLC-1: fails the execution when what it holds under `root`'s `dirs`
/// passes the task's disk.
async fn check_disk(disk: u64, root: &Path, dirs: &[&str], what: &str) -> Result<(), Failure> {
    let paths: Vec<PathBuf> = dirs.iter().map(|d| root.join(d)).collect();
    let used =
        tokio::task::spawn_blocking(move || paths.iter().map(|p| tree_bytes(p)).sum::<u64>())
            .await
            .unwrap_or(u64::MAX);
    if used <= disk {
        return Ok(());
    }
    Err(Failure::new(
        FailureCause::ResourceLimit,
        format!(
            "the task's {what} take {}, more than the disk it asked for ({}): ask for more \
             disk (Resources.Disk) or read and write less",
            protocol::link::explain_bytes(used),
            protocol::link::explain_bytes(disk)
        ),
    ))
}

/// Bytes of the files under `path` (symlinks not followed, counted as
/// nothing); 0 when it does not exist.
fn tree_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| tree_bytes(&entry.path()))
        .fold(0u64, u64::saturating_add)
}

/// Whether an input failed for passing its byte budget.
fn over_budget(kind: &InputErrorKind) -> bool {
    match kind {
        InputErrorKind::Fetch(e) => matches!(**e, storage::store::FetchError::TooLarge { .. }),
        InputErrorKind::Export(e) => matches!(**e, storage::store::ExportError::TooLarge { .. }),
        _ => false,
    }
}

/// Attempts at fetching a job's inputs when a provider fails on the way
/// (it may be restarting); other input errors are final at once.
const INPUT_ATTEMPTS: u32 = 4;

/// Materialises the inputs and, for WASM, reads the module. Returns the
/// module and the writable inputs: their targets and the operator's
/// folders to mount there (R-VOL-4).
async fn prepare_with_retries(
    inputs: &Inputs<'_>,
    root: &std::path::Path,
    spec: &JobSpec,
    disk: Option<u64>,
) -> Result<(Option<Vec<u8>>, Vec<(String, PathBuf)>), Failure> {
    let task = spec.task();
    let mut wait = Duration::from_millis(500);
    for attempt in 1.. {
        let inputs_done = materialise(inputs, root, &task.input_sources).await;
        let result = match (inputs_done, &task.engine) {
            // Over the task's own disk: a limit it asked for, not a fault.
            (Err(e), _) if over_budget(&e.cause) && disk == Some(inputs.max_cid_bytes) => {
                return Err(Failure::new(
                    FailureCause::ResourceLimit,
                    format!(
                        "inputs: {e}: the disk the task asked for ({}); ask for more disk \
                         (Resources.Disk)",
                        protocol::link::explain_bytes(inputs.max_cid_bytes)
                    ),
                ));
            }
            (Err(e), _) => Err((
                matches!(e.cause, InputErrorKind::Fetch(_)),
                format!("inputs: {e}"),
            )),
            (Ok(done), engine) => {
                let writable = done
                    .into_iter()
                    .filter(|m| m.writable)
                    .map(|m| (m.target, m.host_path))
                    .collect();
                match engine {
                    Engine::Wasm(params) => load_module(inputs, root, &params.entry_module.source)
                        .await
                        .map(|module| (Some(module), writable)),
                    Engine::Docker(_) => Ok((None, writable)),
                }
            }
        };
        match result {
            Ok(prepared) => return Ok(prepared),
            Err((true, reason)) if attempt < INPUT_ATTEMPTS => {
                tracing::info!("retrying the inputs in {wait:?}: {reason}");
                let _ = storage::inputs::unlock(root).await;
                for sub in ["inputs", "module"] {
                    let _ = tokio::fs::remove_dir_all(root.join(sub)).await;
                }
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err((_, reason)) => return Err(Failure::new(FailureCause::InputUnavailable, reason)),
        }
    }
    unreachable!("the loop returns")
}

/// Fetches a WASM job's module (from any source an input may use) and reads it.
async fn load_module(
    inputs: &Inputs<'_>,
    root: &std::path::Path,
    source: &protocol::job::Source,
) -> Result<Vec<u8>, (bool, String)> {
    let module_dir = root.join("module");
    // The module is only read: a ReadWrite local module is copied like any.
    let mut source = source.clone();
    if let Source::Local(local) = &mut source {
        local.read_write = false;
    }
    let input = InputSource {
        source,
        target: "/module".into(),
        alias: None,
    };
    let placed = materialise(inputs, &module_dir, std::slice::from_ref(&input))
        .await
        .map_err(|e| {
            let retry = matches!(e.cause, InputErrorKind::Fetch(_));
            (retry, format!("the WASM module: {e}"))
        })?;
    let placed = placed
        .into_iter()
        .next()
        .ok_or_else(|| (false, "the WASM module: nothing was fetched".to_string()))?;
    let path = placed.file.unwrap_or(placed.host_path);
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| (false, format!("the WASM module ({}): {e}", path.display())))?;
    let _ = storage::inputs::unlock(&module_dir).await;
    let _ = tokio::fs::remove_dir_all(&module_dir).await;
    Ok(bytes)
}

/// The CIDs a job reads (its inputs and, for WASM, its module): what the
/// node looks up providers for.
pub(super) fn content_inputs(spec: &JobSpec) -> Vec<cid::Cid> {
    let task = spec.task();
    let mut sources: Vec<&Source> = task.input_sources.iter().map(|i| &i.source).collect();
    if let Engine::Wasm(params) = &task.engine {
        sources.push(&params.entry_module.source);
    }
    sources
        .into_iter()
        .filter_map(|s| match s {
            Source::Cid(c) => Some(c.cid),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egress_bytes_sum_both_ways_of_every_record() {
        let record = |up: u64, down: u64| {
            serde_json::json!({
                "time_ms": 1, "job": "j", "method": "GET", "host": "a.test", "port": 80,
                "ip": null, "decision": "allow", "reason": null, "status": 200,
                "bytes_up": up, "bytes_down": down, "duration_ms": 1
            })
            .to_string()
        };
        let log = format!(
            "{}\n{}\n{{\"dropped\": 3}}\nnot json\n",
            record(10, 200),
            record(5, 0)
        );
        assert_eq!(egress_bytes(&log), 215);
        assert_eq!(egress_bytes(""), 0);
    }

    // R-PLC-1: what an execution holds on disk is its files' bytes, links
    // not followed; past the task's disk the execution fails, saying so.
    #[tokio::test]
    async fn r_plc_1_disk_counts_files_under_the_execution_and_not_links() {
        let root = tempfile::tempdir().unwrap();
        let inputs = root.path().join("inputs/a/b");
        std::fs::create_dir_all(&inputs).unwrap();
        std::fs::write(inputs.join("one"), vec![0u8; 3000]).unwrap();
        std::fs::write(root.path().join("inputs/two"), vec![0u8; 1000]).unwrap();
        std::fs::create_dir_all(root.path().join("results")).unwrap();
        std::fs::write(root.path().join("results/out"), vec![0u8; 500]).unwrap();
        // A link to something large outside counts as nothing.
        std::os::unix::fs::symlink("/usr", root.path().join("results/usr")).unwrap();
        assert_eq!(tree_bytes(&root.path().join("inputs")), 4000);
        assert_eq!(tree_bytes(&root.path().join("missing")), 0);
        let dirs = ["inputs", "module", "results"];
        assert!(check_disk(4500, root.path(), &dirs, "x").await.is_ok());
        let failure = check_disk(4499, root.path(), &dirs, "inputs and results")
            .await
            .unwrap_err();
        assert_eq!(failure.cause, FailureCause::ResourceLimit);
        assert!(
            failure
                .detail
                .starts_with("the task's inputs and results take 4.4 KiB, more than the disk"),
            "{}",
            failure.detail
        );
    }
}
