//! Content through the API, as bytes (R-VOL-3, R-SEC-1).
//!
//! The client walks the user's files and writes them out itself, as the
//! user who runs it ([`storage::import`], [`storage::export`]); the node
//! only stores and serves blobs:
//!
//! - `POST /api/v1/blobs` (a file's bytes) stores them and answers the CID;
//! - `POST /api/v1/manifests` (a folder's DAG-CBOR manifest) stores it once
//!   every entry it lists is in the store;
//! - `POST /api/v1/provide` tells the network this node has a CID;
//! - `GET /api/v1/blobs/{cid}` streams a blob (a file, or a manifest) with
//!   its exact `Content-Length` (also for `HEAD`);
//! - `POST /api/v1/fetch` brings content from other nodes into the store,
//!   within a byte budget, with progress as JSON lines when asked.

use std::sync::Arc;

use ::api::content::{ContentAnswer, FetchLine, FetchProgress};
use ::api::error::ErrorBody;
use ::api::requests::{Fetch, Provide};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cid::Cid;
use futures::{SinkExt, StreamExt};
use storage::manifest::{MAX_MANIFEST_BYTES, Manifest};
use storage::store::{FetchError, Store, StoreError};
use tokio::sync::mpsc;

use super::extract::JsonBody;
use super::{ApiError, ApiResult, ApiState, ask, endpoint_addr};
use crate::daemon::core_driver::CoreCommand;

/// The budget of a fetch whose request names none: 10 GiB.
pub const DEFAULT_FETCH_BYTES: u64 = 10 << 30;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/blobs", post(add_blob))
        .route("/api/v1/blobs/{cid}", get(read_blob))
        .route(
            "/api/v1/manifests",
            post(add_manifest).layer(DefaultBodyLimit::max(MAX_MANIFEST_BYTES)),
        )
        .route("/api/v1/provide", post(provide))
        .route("/api/v1/fetch", post(fetch))
}

fn parse_cid(text: &str) -> Result<Cid, ApiError> {
    Ok(storage::cid::parse(text)
        .map_err(|e| ApiError::bad(format!("CID: {e}")))?
        .cid())
}

/// Streams the request body into the store as one blob.
async fn add_blob(State(state): State<ApiState>, body: Body) -> ApiResult<ContentAnswer> {
    // The store wants a `Sync` stream; the body is not: hand its chunks
    // over a channel while the store reads them.
    let (mut tx, rx) = futures::channel::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    let forward = async move {
        let mut chunks = body.into_data_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(std::io::Error::other);
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
    };
    let what = std::path::Path::new("the uploaded file");
    let ((), added) = tokio::join!(forward, state.store.add_stream(rx, what));
    let cid = added.map_err(|e| ApiError::bad(e.to_string()))?;
    Ok(Json(ContentAnswer { cid }))
}

/// Stores a folder's manifest once everything it lists is here.
async fn add_manifest(
    State(state): State<ApiState>,
    body: bytes::Bytes,
) -> ApiResult<ContentAnswer> {
    let manifest =
        Manifest::decode(&body).map_err(|e| ApiError::bad(format!("the manifest: {e}")))?;
    let what = std::path::Path::new("the uploaded folder");
    let cid = state
        .store
        .add_manifest(&manifest, what)
        .await
        .map_err(|e| ApiError::bad(e.to_string()))?;
    Ok(Json(ContentAnswer { cid }))
}

/// Says in the DHT that this node has a CID it holds completely.
async fn provide(
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<Provide>,
) -> ApiResult<ContentAnswer> {
    let cid = parse_cid(&body.cid)?;
    if !state.store.has(&cid).await.unwrap_or(false) {
        return Err(ApiError::not_found(format!(
            "{cid} is not (completely) on this node: add it first"
        )));
    }
    // Other nodes find it through the DHT; not being able to say so is no
    // reason to fail.
    let _ = state.commands.send(CoreCommand::Provide { cid }).await;
    Ok(Json(ContentAnswer { cid }))
}

/// One blob's bytes, streamed.
async fn read_blob(
    State(state): State<ApiState>,
    Path(cid): Path<String>,
) -> Result<Response, ApiError> {
    let cid = parse_cid(&cid)?;
    let (size, reader) = state.store.open_blob(&cid).await.map_err(|e| match e {
        StoreError::Missing { .. } => ApiError::not_found(format!(
            "{cid} is not on this node: fetch it first (skrei get fetches it)"
        )),
        other => ApiError::internal(other),
    })?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        reader,
        256 << 10,
    ));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        body,
    )
        .into_response())
}

/// Makes sure the content is in the store, fetching it from the named
/// providers, or from those the DHT knows (R-P2P-4).
async fn fetch(
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<Fetch>,
) -> Result<Response, ApiError> {
    let cid = parse_cid(&body.cid)?;
    let max_bytes = body.max_bytes.unwrap_or(DEFAULT_FETCH_BYTES);
    let mut providers = Vec::new();
    for p in &body.providers {
        providers.push(
            endpoint_addr(p)
                .map_err(|e| ApiError::bad(format!("`{p}` is not a provider address: {e}")))?,
        );
    }
    if state.store.has(&cid).await.unwrap_or(false) {
        return Ok(Json(ContentAnswer { cid }).into_response());
    }
    if providers.is_empty() {
        let found = ask(&state, |reply| CoreCommand::FindProviders { cid, reply }).await?;
        providers.extend(found.iter().filter_map(|p| serde_json::from_str(p).ok()));
        if providers.is_empty() {
            return Err(ApiError::not_found(format!(
                "{cid} is not on this node and no node in the network says it has it; \
                 name one that does with --from"
            )));
        }
    }
    if body.progress {
        return Ok(fetch_with_progress(
            state.store.clone(),
            cid,
            providers,
            max_bytes,
        ));
    }
    state
        .store
        .fetch(&cid, &providers, None, max_bytes)
        .await
        .map_err(fetch_error)?;
    Ok(Json(ContentAnswer { cid }).into_response())
}

/// One line of JSON text.
fn json_line(line: &FetchLine) -> String {
    let mut text = serde_json::to_string(line).unwrap_or_default();
    text.push('\n');
    text
}

fn fetch_error(e: FetchError) -> ApiError {
    let status = match e {
        FetchError::TooLarge { .. } => StatusCode::INSUFFICIENT_STORAGE,
        _ => StatusCode::BAD_GATEWAY,
    };
    ApiError(status, e.to_string())
}

/// Fetches `cid`, answering with one JSON line per progress report and a
/// last line with the result or the error (R-CLI-2).
fn fetch_with_progress(
    store: Arc<Store>,
    cid: Cid,
    providers: Vec<iroh::EndpointAddr>,
    max_bytes: u64,
) -> Response {
    let (lines, rx) = mpsc::channel::<String>(16);
    tokio::spawn(async move {
        let (progress, mut reports) = mpsc::channel(16);
        let fetch = store.fetch(&cid, &providers, Some(progress), max_bytes);
        tokio::pin!(fetch);
        let fetched = loop {
            tokio::select! {
                result = &mut fetch => break result,
                Some(p) = reports.recv() => {
                    let progress = FetchProgress { fetched: p.fetched + p.present, total: p.total };
                    let _ = lines.send(json_line(&FetchLine::Progress(progress))).await;
                }
            }
        };
        let last = match fetched {
            Err(e) => FetchLine::Failed(ErrorBody {
                error: e.to_string(),
            }),
            Ok(_) => FetchLine::Done(ContentAnswer { cid }),
        };
        let _ = lines.send(json_line(&last)).await;
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, std::convert::Infallible>(line), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response()
}
