//! The node's HTTP API (JSON, under `/api/v1`), for the `skrei` client
//! commands on the same machine.
//!
//! It listens on loopback by default. [`gate`] decides who may use it: the
//! holder of the node's token, never a job (R-NET-7) nor a web page
//! (R-SEC-1).
//!
//! The node never opens a path a request names: it cannot tell which local
//! user calls it over TCP. Content moves through the API as bytes
//! ([`content`]): the client reads and writes the user's files as that user.

mod content;
pub mod dashboard;
mod extract;
pub mod gate;
pub mod history;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ::api::error::ErrorBody;
use ::api::jobs::{
    Cancelled, Changes, JobList, JobStatus, JobSummary, Logs, ResultList, ResultRef, Submitted,
};
use ::api::node::NodeInfo;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::id::JobId;
use protocol::job::JobSpec;
use protocol::requester::JobState;
use serde::Deserialize;
use storage::store::Store;
use tokio::sync::{mpsc, oneshot, watch};

use super::core_driver::CoreCommand;
use super::db::Db;
use extract::Query;

pub use gate::{Gate, JOB_HEADER};
pub use views::endpoint_addr;

/// Largest stdout or stderr `logs` answers with; bigger ones are read with
/// `skrei job get`.
const MAX_LOG_BYTES: u64 = 16 << 20;

/// Longest a client may wait in one `changes` call.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub commands: mpsc::Sender<CoreCommand>,
    pub db: Arc<Db>,
    pub store: Arc<Store>,
    pub changes: watch::Receiver<u64>,
    pub node_id: protocol::id::NodeId,
    /// For gossipsub's own counters on `/metrics`.
    pub p2p: crate::p2p::P2pHandle,
    /// The dashboard's login codes and sessions.
    pub sessions: Arc<dashboard::Sessions>,
    /// The node's acceptance policy, for the dashboard's domain check.
    pub policy: Arc<protocol::policy::AcceptancePolicy>,
    /// The port the API listens on (its session cookie is named after it).
    pub api_port: u16,
    /// The node's metrics over the last hours, for the dashboard's charts.
    pub history: Arc<history::History>,
}

/// An error as the API returns it: a status and an [`ErrorBody`].
#[derive(Debug)]
pub struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl ApiError {
    fn bad(message: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, message.into())
    }
    fn internal(message: impl std::fmt::Display) -> ApiError {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, message.to_string())
    }
    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError(StatusCode::NOT_FOUND, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

impl From<views::ViewError> for ApiError {
    fn from(e: views::ViewError) -> ApiError {
        ApiError::internal(e)
    }
}

/// An answer: one of the `api` crate's types, or an error.
type ApiResult<T> = Result<Json<T>, ApiError>;

/// Serves the API until `stop` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    gate: Gate,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(history::sample(state.clone(), stop.clone()));
    let app = router(state, gate);
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    if let Err(e) = server.await {
        tracing::error!("the API stopped: {e}");
    }
}

pub fn router(state: ApiState, gate: Gate) -> Router {
    Router::new()
        .route("/api/v1/node", get(node_info))
        .route("/api/v1/jobs", post(submit).get(list))
        .route("/api/v1/jobs/{id}", get(describe))
        .route("/api/v1/jobs/{id}/cancel", post(cancel))
        .route("/api/v1/jobs/{id}/logs", get(logs))
        .route("/api/v1/jobs/{id}/results", get(results))
        .route("/api/v1/jobs/{id}/files", get(result_files))
        .route("/api/v1/changes", get(changes))
        .merge(content::routes())
        .route("/metrics", get(metrics))
        .route("/api/v1/node/allows", get(dashboard::allows))
        .route("/api/v1/metrics/history", get(metric_history))
        .route("/api/v1/dashboard/login", post(dashboard::new_login))
        .route("/ui/", get(dashboard::index))
        .route("/ui/login", get(dashboard::login))
        .route("/ui/app.js", get(dashboard::script))
        .route("/ui/style.css", get(dashboard::style))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(gate::WithSessions {
                gate,
                sessions: state.sessions.clone(),
            }),
            gate::check_with_sessions,
        ))
        .with_state(state)
}

async fn ask<T>(
    state: &ApiState,
    make: impl FnOnce(oneshot::Sender<T>) -> CoreCommand,
) -> Result<T, ApiError> {
    let (tx, rx) = oneshot::channel();
    state
        .commands
        .send(make(tx))
        .await
        .map_err(|_| ApiError::internal("the node is shutting down"))?;
    rx.await
        .map_err(|_| ApiError::internal("the node is shutting down"))
}

fn job_id(text: &str) -> Result<JobId, ApiError> {
    text.parse()
        .map_err(|e| ApiError::bad(format!("`{text}` is not a job id: {e}")))
}

async fn node_info(State(state): State<ApiState>) -> ApiResult<NodeInfo> {
    let view = ask(&state, |reply| CoreCommand::Info { reply }).await?;
    Ok(Json(views::node_info(&view)?))
}

async fn submit(State(state): State<ApiState>, body: String) -> ApiResult<Submitted> {
    // The spec is read as a job file (YAML or JSON), with the same errors.
    let spec = JobSpec::parse(&body).map_err(|errors| {
        ApiError::bad(format!(
            "the job is not valid: {}",
            errors
                .0
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    // The size of inputs this node holds goes into the announcement, so
    // nodes that would fetch them too slowly say so (R-PLC-1).
    let (held, all) = super::held_inputs::held_input_bytes(&state.store, &spec).await;
    let input_bytes = (all && super::held_inputs::reads_cids(&spec)).then_some(held);
    let spec = Box::new(spec);
    let job_id = ask(&state, |reply| CoreCommand::Submit {
        spec,
        input_bytes,
        reply,
    })
    .await?
    .map_err(ApiError::bad)?;
    Ok(Json(Submitted { job_id }))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

async fn list(State(state): State<ApiState>, Query(q): Query<ListQuery>) -> ApiResult<JobList> {
    let limit = q.limit.unwrap_or(100).min(10_000);
    let jobs = state.db.jobs(limit).map_err(ApiError::internal)?;
    Ok(Json(JobList {
        jobs: jobs.iter().map(JobSummary::from).collect(),
    }))
}

async fn describe(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<JobStatus> {
    let id = job_id(&id)?;
    let record = state
        .db
        .job(&id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no job {id} on this node")))?;
    let results = state.db.results(&id).map_err(ApiError::internal)?;
    let events = state.db.events(&id).map_err(ApiError::internal)?;
    Ok(Json(JobStatus {
        job_id: id,
        state: (&record.state).into(),
        job: (&record).into(),
        results: results
            .iter()
            .map(views::job_result)
            .collect::<Result<_, _>>()?,
        events: events
            .iter()
            .filter_map(|row| {
                // A row another version wrote costs that event, not the job.
                views::job_event(row)
                    .inspect_err(|e| tracing::warn!(job = %id, "describe: {e}"))
                    .ok()
            })
            .collect(),
    }))
}

async fn cancel(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Cancelled> {
    let job_id = job_id(&id)?;
    ask(&state, |reply| CoreCommand::Cancel { job_id, reply })
        .await?
        .map_err(ApiError::bad)?;
    Ok(Json(Cancelled {
        job_id,
        cancelled: true,
    }))
}

#[derive(Deserialize)]
struct ChangesQuery {
    after: Option<u64>,
    timeout_ms: Option<u64>,
}

/// Long poll: returns once something changed after `after` (or at the timeout).
async fn changes(
    State(state): State<ApiState>,
    Query(q): Query<ChangesQuery>,
) -> ApiResult<Changes> {
    let mut rx = state.changes.clone();
    let after = q.after.unwrap_or(0);
    let wait = Duration::from_millis(q.timeout_ms.unwrap_or(10_000)).min(MAX_WAIT);
    let _ = tokio::time::timeout(wait, rx.wait_for(|n| *n > after)).await;
    let now = *rx.borrow();
    Ok(Json(Changes { changes: now }))
}

/// The first fetched result of a job, or why there is none yet.
fn fetched_result(state: &ApiState, id: &JobId) -> Result<Vec<super::db::ResultRow>, ApiError> {
    let record = state
        .db
        .job(id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no job {id} on this node")))?;
    let results = state.db.results(id).map_err(ApiError::internal)?;
    if results.is_empty() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            match &record.state {
                JobState::Failed { failure } => format!("job {id} failed: {failure}"),
                other => format!(
                    "job {id} has no results yet (it is {}); wait for it with `skrei job describe`",
                    ::api::jobs::JobState::from(other).name()
                ),
            },
        ));
    }
    let refused = results.iter().find_map(|r| r.refused.clone());
    let fetched: Vec<_> = results.into_iter().filter(|r| r.fetched).collect();
    if let (true, Some(reason)) = (fetched.is_empty(), refused) {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("job {id} has no results here: {reason}"),
        ));
    }
    if fetched.is_empty() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("the results of job {id} are still being fetched; try again shortly"),
        ));
    }
    Ok(fetched)
}

/// The first result's stdout and stderr, read from its manifest alone (the
/// rest of the tree is not touched).
async fn logs(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Logs> {
    let id = job_id(&id)?;
    let results = fetched_result(&state, &id)?;
    let first = views::job_result(&results[0])?;
    let manifest = state
        .store
        .manifest_of(&first.result_cid)
        .await
        .map_err(ApiError::internal)?;
    let mut streams = [None, None, None];
    for (name, text) in ["stdout", "stderr", "network.log"]
        .into_iter()
        .zip(&mut streams)
    {
        let Some(entry) = manifest.entries.get(name) else {
            continue;
        };
        let bytes = match state.store.read_blob(&entry.cid, MAX_LOG_BYTES).await {
            Ok(bytes) => bytes,
            // The network log is extra: one too large to show leaves the
            // output readable (the job's results hold all of it).
            Err(storage::store::StoreError::TooLarge { .. }) if name == "network.log" => continue,
            Err(storage::store::StoreError::TooLarge { size, .. }) => {
                return Err(ApiError(
                    StatusCode::CONFLICT,
                    format!(
                        "the {name} of job {id} is {size} bytes, more than `logs` shows: write \
                         the results out with `skrei job get {id}`"
                    ),
                ));
            }
            Err(other) => return Err(ApiError::internal(other)),
        };
        *text = Some(String::from_utf8_lossy(&bytes).into_owned());
    }
    let [stdout, stderr, network_log] = streams;
    Ok(Json(Logs {
        job_id: id,
        execution_id: first.execution_id,
        node: first.node,
        exit_code: first.exit_code,
        stdout: stdout.unwrap_or_default(),
        stderr: stderr.unwrap_or_default(),
        network_log,
    }))
}

/// The most files `/files` lists, and the most folders it opens.
const MAX_LISTED: usize = 1_000;

/// The files of the job's first fetched result, for the dashboard's
/// download links (bounded: a result may hold any number of files).
async fn result_files(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<::api::dashboard::ResultFiles> {
    use storage::manifest::Mode;
    let id = job_id(&id)?;
    let results = fetched_result(&state, &id)?;
    let first = views::job_result(&results[0])?;
    let mut files = Vec::new();
    let mut folders = vec![(String::new(), first.result_cid)];
    let mut opened = 0;
    let mut truncated = false;
    while let Some((prefix, cid)) = folders.pop() {
        opened += 1;
        if opened > MAX_LISTED {
            truncated = true;
            break;
        }
        let manifest = state
            .store
            .manifest_of(&cid)
            .await
            .map_err(ApiError::internal)?;
        for (name, entry) in manifest.entries {
            let path = format!("{prefix}{name}");
            match entry.mode {
                Mode::Dir => folders.push((format!("{path}/"), entry.cid)),
                Mode::File | Mode::Executable => {
                    if files.len() >= MAX_LISTED {
                        truncated = true;
                        break;
                    }
                    files.push(::api::dashboard::ResultFile {
                        path,
                        cid: entry.cid.to_string(),
                        size: entry.size,
                    });
                }
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Json(::api::dashboard::ResultFiles { files, truncated }))
}

/// The job's fetched results, for the client to write out: one for each
/// execution that completed.
async fn results(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<ResultList> {
    let id = job_id(&id)?;
    let results = fetched_result(&state, &id)?;
    let results = results
        .iter()
        .map(|row| {
            let result = views::job_result(row)?;
            Ok(ResultRef {
                execution_id: result.execution_id,
                node: result.node,
                cid: result.result_cid,
                exit_code: result.exit_code,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(ResultList {
        job_id: id,
        results,
    }))
}

async fn metric_history(
    State(state): State<ApiState>,
) -> ApiResult<::api::dashboard::MetricHistory> {
    Ok(Json(state.history.snapshot()))
}

async fn metrics(State(state): State<ApiState>) -> Result<String, ApiError> {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::registry::Registry;

    let view = ask(&state, |reply| CoreCommand::Info { reply }).await?;
    let mut registry = Registry::with_prefix("skrei");
    let jobs = Family::<Vec<(String, String)>, Gauge>::default();
    registry.register(
        "jobs",
        "Jobs submitted to this node, by state",
        jobs.clone(),
    );
    for (name, count) in state.db.job_counts().map_err(ApiError::internal)? {
        jobs.get_or_create(&vec![("state".into(), name)])
            .set(count as i64);
    }
    let running = Gauge::<i64>::default();
    running.set(i64::from(view.running));
    registry.register(
        "executions_running",
        "Executions running on this node",
        running,
    );
    let peers = Gauge::<i64>::default();
    peers.set(view.peers.iter().filter(|p| p.connected).count() as i64);
    registry.register("peers_connected", "Peers connected", peers);
    let egress = Gauge::<i64>::default();
    egress.set(i64::try_from(view.egress_bytes).unwrap_or(i64::MAX));
    registry.register(
        "egress_bytes",
        "Bytes this node's jobs moved through their egress, both ways, since it started",
        egress,
    );
    let mut text = String::new();
    encode(&mut text, &registry).map_err(ApiError::internal)?;
    // One exposition: ours without its end marker, then gossipsub's
    // (libp2p's names, `skrei/jobs/1` and `skrei/nodes/1` topics).
    if let Some(ours) = text.strip_suffix("# EOF\n") {
        text = format!("{ours}{}", state.p2p.gossip_metrics());
    }
    Ok(text)
}
