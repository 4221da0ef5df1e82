//! The node's HTTP API (JSON, under `/api/v1`), for the `skrei` client
//! commands on the same machine.
//!
//! It listens on loopback by default, and refuses any request carrying an
//! `X-Skrei-Job` header (set by the egress proxy on what jobs send) or
//! coming from a job network: a job must never start another job (R-NET-7).
//!
//! Paths in requests (`add`, `get`) are read and written by the node
//! itself: the API serves clients that share the node's file system.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::id::JobId;
use protocol::job::JobSpec;
use protocol::requester::JobState;
use serde::Deserialize;
use serde_json::{Value, json};
use storage::store::Store;
use tokio::sync::{mpsc, oneshot, watch};

use super::db::Db;
use super::driver::Command;

/// The header the egress proxy adds to every request a job makes.
pub const JOB_HEADER: &str = "x-skrei-job";

/// Longest a client may wait in one `changes` call.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub commands: mpsc::Sender<Command>,
    pub db: Arc<Db>,
    pub store: Arc<Store>,
    pub changes: watch::Receiver<u64>,
    pub node_id: protocol::id::NodeId,
    /// For gossipsub's own counters on `/metrics`.
    pub p2p: crate::p2p::P2pHandle,
    /// Sources besides loopback the API answers (`--api-allow`).
    pub allow: Arc<[protocol::address::Cidr]>,
}

/// An error as the API returns it: a status and `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

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
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// Serves the API until `stop` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    mut stop: watch::Receiver<bool>,
) {
    let app = router(state);
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

pub fn router(state: ApiState) -> Router {
    let allow = state.allow.clone();
    Router::new()
        .route("/api/v1/node", get(node_info))
        .route("/api/v1/jobs", post(submit).get(list))
        .route("/api/v1/jobs/{id}", get(describe))
        .route("/api/v1/jobs/{id}/cancel", post(cancel))
        .route("/api/v1/jobs/{id}/logs", get(logs))
        .route("/api/v1/jobs/{id}/get", post(get_results))
        .route("/api/v1/changes", get(changes))
        .route("/api/v1/add", post(add))
        .route("/api/v1/get", post(get_content))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(allow, refuse_jobs))
        .with_state(state)
}

/// R-NET-7: nothing a job sends may reach the API.
async fn refuse_jobs(
    State(allow): State<Arc<[protocol::address::Cidr]>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if request.headers().contains_key(JOB_HEADER) {
        return ApiError(
            StatusCode::FORBIDDEN,
            "requests from jobs are refused: a job cannot start or control jobs".into(),
        )
        .into_response();
    }
    if !peer.ip().to_canonical().is_loopback() && !allow.iter().any(|c| c.contains(peer.ip())) {
        // The API is for clients on this machine (and the operator's own
        // `--api-allow` sources); a job network's address is not one.
        return ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "requests from {} are refused: use the API from this machine, or start the \
                 node with --api-allow for this source",
                peer.ip()
            ),
        )
        .into_response();
    }
    next.run(request).await
}

async fn ask<T>(
    state: &ApiState,
    make: impl FnOnce(oneshot::Sender<T>) -> Command,
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

async fn node_info(State(state): State<ApiState>) -> ApiResult {
    let view = ask(&state, |reply| Command::Info { reply }).await?;
    Ok(Json(
        serde_json::to_value(view).map_err(ApiError::internal)?,
    ))
}

async fn submit(State(state): State<ApiState>, body: String) -> ApiResult {
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
    let spec = Box::new(spec);
    let job_id = ask(&state, |reply| Command::Submit { spec, reply })
        .await?
        .map_err(ApiError::bad)?;
    Ok(Json(json!({ "job_id": job_id.to_string() })))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

fn state_name(state: &JobState) -> &'static str {
    match state {
        JobState::Bidding => "bidding",
        JobState::Running => "running",
        JobState::Completed => "completed",
        JobState::Failed { .. } => "failed",
        JobState::Cancelled => "cancelled",
    }
}

async fn list(State(state): State<ApiState>, Query(q): Query<ListQuery>) -> ApiResult {
    let limit = q.limit.unwrap_or(100).min(10_000);
    let jobs = state.db.jobs(limit).map_err(ApiError::internal)?;
    let jobs: Vec<Value> = jobs
        .iter()
        .map(|r| {
            json!({
                "job_id": r.job_id().to_string(),
                "name": r.announce.spec.name,
                "engine": r.announce.spec.task().engine.kind(),
                "network": r.announce.spec.task().network.r#type.to_string(),
                "state": state_name(&r.state),
                "submitted_at_ms": r.announce.submitted_at_ms,
                "executions": r.executions.len(),
            })
        })
        .collect();
    Ok(Json(json!({ "jobs": jobs })))
}

async fn describe(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    let id = job_id(&id)?;
    let record = state
        .db
        .job(&id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no job {id} on this node")))?;
    let results = state.db.results(&id).map_err(ApiError::internal)?;
    let events = state.db.events(&id).map_err(ApiError::internal)?;
    let reason = match &record.state {
        JobState::Failed { reason } => Some(reason.clone()),
        _ => None,
    };
    Ok(Json(json!({
        "job_id": id.to_string(),
        "state": state_name(&record.state),
        "reason": reason,
        "job": record,
        "results": results,
        "events": events,
    })))
}

async fn cancel(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    let job_id = job_id(&id)?;
    ask(&state, |reply| Command::Cancel { job_id, reply })
        .await?
        .map_err(ApiError::bad)?;
    Ok(Json(
        json!({ "job_id": job_id.to_string(), "cancelled": true }),
    ))
}

#[derive(Deserialize)]
struct ChangesQuery {
    after: Option<u64>,
    timeout_ms: Option<u64>,
}

/// Long poll: returns once something changed after `after` (or at the timeout).
async fn changes(State(state): State<ApiState>, Query(q): Query<ChangesQuery>) -> ApiResult {
    let mut rx = state.changes.clone();
    let after = q.after.unwrap_or(0);
    let wait = Duration::from_millis(q.timeout_ms.unwrap_or(10_000)).min(MAX_WAIT);
    let _ = tokio::time::timeout(wait, rx.wait_for(|n| *n > after)).await;
    let now = *rx.borrow();
    Ok(Json(json!({ "changes": now })))
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
                JobState::Failed { reason } => format!("job {id} failed: {reason}"),
                other => format!(
                    "job {id} has no results yet (it is {}); wait for it with `skrei job describe`",
                    state_name(other)
                ),
            },
        ));
    }
    let fetched: Vec<_> = results.into_iter().filter(|r| r.fetched).collect();
    if fetched.is_empty() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("the results of job {id} are still being fetched; try again shortly"),
        ));
    }
    Ok(fetched)
}

async fn logs(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    let id = job_id(&id)?;
    let results = fetched_result(&state, &id)?;
    let first = &results[0];
    let cid = first.result_cid.parse().map_err(ApiError::internal)?;
    let tmp = scratch_dir()?;
    let target = tmp.join("r");
    state
        .store
        .export(&cid, &target)
        .await
        .map_err(ApiError::internal)?;
    let read = |name: &str| {
        std::fs::read(target.join(name))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let out = json!({
        "job_id": id.to_string(),
        "execution_id": first.execution_id,
        "node": first.node,
        "exit_code": first.exit_code,
        "stdout": read("stdout"),
        "stderr": read("stderr"),
    });
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(Json(out))
}

/// A new folder for an export that is read and removed at once.
fn scratch_dir() -> Result<PathBuf, ApiError> {
    let dir = std::env::temp_dir().join(format!(
        "skrei-api-{}-{}",
        std::process::id(),
        NEXT_TMP.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
    Ok(dir)
}

static NEXT_TMP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[derive(Deserialize)]
struct GetBody {
    /// Where to write; must not exist yet. Absolute.
    dir: PathBuf,
}

fn absolute_new(dir: &std::path::Path) -> Result<(), ApiError> {
    if !dir.is_absolute() {
        return Err(ApiError::bad(format!(
            "{} is not an absolute path",
            dir.display()
        )));
    }
    if dir.exists() {
        return Err(ApiError::bad(format!(
            "{} already exists: give a new folder",
            dir.display()
        )));
    }
    Ok(())
}

/// Writes a job's results: `dir` itself for one execution, `dir/<n>` for more.
async fn get_results(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<GetBody>,
) -> ApiResult {
    let id = job_id(&id)?;
    absolute_new(&body.dir)?;
    let results = fetched_result(&state, &id)?;
    let mut written = Vec::new();
    for r in &results {
        let cid = r.result_cid.parse().map_err(ApiError::internal)?;
        let target = if results.len() == 1 {
            body.dir.clone()
        } else {
            body.dir.join(r.execution_id.to_string())
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(ApiError::internal)?;
        }
        state
            .store
            .export(&cid, &target)
            .await
            .map_err(ApiError::internal)?;
        written.push(json!({
            "execution_id": r.execution_id,
            "node": r.node,
            "cid": r.result_cid,
            "exit_code": r.exit_code,
            "path": target,
        }));
    }
    Ok(Json(json!({ "results": written })))
}

#[derive(Deserialize)]
struct AddBody {
    path: PathBuf,
}

async fn add(State(state): State<ApiState>, Json(body): Json<AddBody>) -> ApiResult {
    if !body.path.is_absolute() || !body.path.exists() {
        return Err(ApiError::bad(format!(
            "{} is not an absolute path to a file or folder",
            body.path.display()
        )));
    }
    let cid = state
        .store
        .add_path(&body.path)
        .await
        .map_err(|e| ApiError::bad(format!("adding {}: {e}", body.path.display())))?;
    // Other nodes find it through the DHT; not being able to say so is no
    // reason to fail the add.
    let _ = state.commands.send(Command::Provide { cid }).await;
    Ok(Json(json!({ "cid": cid.to_string() })))
}

#[derive(Deserialize)]
struct GetContentBody {
    cid: String,
    dir: PathBuf,
    /// Providers' iroh addresses (JSON strings) to fetch from when needed.
    #[serde(default)]
    providers: Vec<String>,
    /// Answer with JSON lines: progress (`{"fetched":..,"total":..}`) while
    /// fetching, then the result (`{"cid":..}`) or `{"error":..}`.
    #[serde(default)]
    progress: bool,
}

async fn get_content(
    State(state): State<ApiState>,
    Json(body): Json<GetContentBody>,
) -> Result<Response, ApiError> {
    let cid = storage::cid::parse(&body.cid)
        .map_err(|e| ApiError::bad(format!("CID: {e}")))?
        .cid();
    absolute_new(&body.dir)?;
    let mut providers = Vec::new();
    for p in &body.providers {
        providers.push(
            serde_json::from_str(p)
                .map_err(|e| ApiError::bad(format!("`{p}` is not a provider address: {e}")))?,
        );
    }
    let here = state.store.has(&cid).await.unwrap_or(false);
    if !here && providers.is_empty() {
        // No provider named: ask the DHT who has it (R-P2P-4).
        let found = ask(&state, |reply| Command::FindProviders { cid, reply }).await?;
        for p in found {
            if let Ok(addr) = serde_json::from_str(&p) {
                providers.push(addr);
            }
        }
        if providers.is_empty() {
            return Err(ApiError::not_found(format!(
                "{cid} is not on this node and no node in the network says it has it; \
                 name one that does with --from"
            )));
        }
    }
    if !here && body.progress {
        return Ok(fetch_with_progress(
            state.store.clone(),
            cid,
            providers,
            body.dir,
        ));
    }
    if !here {
        state
            .store
            .fetch(&cid, &providers, None)
            .await
            .map_err(|e| ApiError(StatusCode::BAD_GATEWAY, format!("fetching {cid}: {e}")))?;
    }
    state.store.export(&cid, &body.dir).await.map_err(|e| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("{cid}: {e}; name a node that has it with --from"),
        )
    })?;
    Ok(Json(json!({ "cid": cid.to_string(), "path": body.dir })).into_response())
}

/// Fetches and exports `cid`, answering with one JSON line per progress
/// report and a last line with the result or the error (R-CLI-2).
fn fetch_with_progress(
    store: Arc<Store>,
    cid: cid::Cid,
    providers: Vec<iroh::EndpointAddr>,
    dir: PathBuf,
) -> Response {
    let (lines, rx) = mpsc::channel::<String>(16);
    tokio::spawn(async move {
        let (progress, mut reports) = mpsc::channel(16);
        let fetch = store.fetch(&cid, &providers, Some(progress));
        tokio::pin!(fetch);
        let fetched = loop {
            tokio::select! {
                result = &mut fetch => break result,
                Some(p) = reports.recv() => {
                    let line = json!({ "fetched": p.fetched + p.present, "total": p.total });
                    let _ = lines.send(format!("{line}\n")).await;
                }
            }
        };
        let last = match fetched {
            Err(e) => json!({ "error": format!("fetching {cid}: {e}") }),
            Ok(_) => match store.export(&cid, &dir).await {
                Ok(()) => json!({ "cid": cid.to_string(), "path": dir }),
                Err(e) => json!({ "error": format!("{cid}: {e}") }),
            },
        };
        let _ = lines.send(format!("{last}\n")).await;
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, std::convert::Infallible>(line), rx))
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

async fn metrics(State(state): State<ApiState>) -> Result<String, ApiError> {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::registry::Registry;

    let view = ask(&state, |reply| Command::Info { reply }).await?;
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
    let mut text = String::new();
    encode(&mut text, &registry).map_err(ApiError::internal)?;
    // One exposition: ours without its end marker, then gossipsub's
    // (libp2p's names, `skrei/jobs/1` and `skrei/nodes/1` topics).
    if let Some(ours) = text.strip_suffix("# EOF\n") {
        text = format!("{ours}{}", state.p2p.gossip_metrics());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use axum::body::Body;
    use axum::extract::connect_info::MockConnectInfo;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use axum::{Router, middleware};
    use protocol::address::Cidr;
    use tower::ServiceExt;

    use super::{JOB_HEADER, refuse_jobs};

    /// The API's gate in front of a route that answers 200.
    async fn status(allow: &[&str], from: &str, job_header: bool) -> StatusCode {
        let allow: Arc<[Cidr]> = allow.iter().map(|c| Cidr::parse(c).unwrap()).collect();
        let from: SocketAddr = from.parse().unwrap();
        let app = Router::new()
            .route("/api/v1/node", get(|| async { "ok" }))
            .layer(middleware::from_fn_with_state(allow, refuse_jobs))
            .layer(MockConnectInfo(from));
        let mut request = Request::get("/api/v1/node");
        if job_header {
            request = request.header(JOB_HEADER, "j1");
        }
        app.oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn r_net_7_only_loopback_and_allowed_sources_reach_the_api() {
        assert_eq!(status(&[], "127.0.0.1:5000", false).await, StatusCode::OK);
        assert_eq!(status(&[], "[::1]:5000", false).await, StatusCode::OK);
        assert_eq!(
            status(&[], "[::ffff:127.0.0.1]:5000", false).await,
            StatusCode::OK
        );
        // A job network's address, or any other, is refused by default...
        for from in ["172.17.0.2:5000", "10.1.2.3:5000", "[fd00::2]:5000"] {
            assert_eq!(status(&[], from, false).await, StatusCode::FORBIDDEN);
        }
        // ...and answered only when the operator allows exactly it.
        let allow = ["172.18.0.1", "10.9.0.0/16"];
        assert_eq!(
            status(&allow, "172.18.0.1:5000", false).await,
            StatusCode::OK
        );
        assert_eq!(status(&allow, "10.9.3.4:5000", false).await, StatusCode::OK);
        assert_eq!(
            status(&allow, "172.18.0.2:5000", false).await,
            StatusCode::FORBIDDEN
        );
        // What a job sends is refused from anywhere, allowed or not.
        assert_eq!(
            status(&allow, "172.18.0.1:5000", true).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(&[], "127.0.0.1:5000", true).await,
            StatusCode::FORBIDDEN
        );
    }
}
