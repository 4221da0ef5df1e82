//! A node's HTTP API as a live testnet's tests and `simnet up` use it: a
//! blocking client for loopback, with no TLS and no async runtime, that
//! speaks the `api` crate's types.

use std::time::Duration;

use api::content::ContentAnswer;
use api::error::ErrorBody;
use api::jobs::{JobStatus, Logs, Submitted};
use api::node::NodeInfo;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A node's API refused or failed a request.
#[derive(Debug, thiserror::Error)]
#[error("{method} {url}: {message}")]
pub struct ApiError {
    pub method: &'static str,
    pub url: String,
    /// The HTTP status, when the node answered.
    pub status: Option<u16>,
    /// The node's `error` field, or why there was no answer.
    pub message: String,
}

/// A node's HTTP API (`http://127.0.0.1:PORT`), with the node's token
/// (R-SEC-1).
#[derive(Clone, PartialEq, Eq)]
pub struct Api {
    base: String,
    token: Option<String>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("base", &self.base).finish()
    }
}

impl Api {
    /// The API at `base`, called with `token` (the node's `api.token`).
    pub fn new(base: impl Into<String>, token: Option<String>) -> Api {
        Api {
            base: base.into(),
            token,
        }
    }

    /// `http://127.0.0.1:PORT`, as `skrei` commands take it in `--api`.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The node's API token, as `SKREI_API_TOKEN` takes it.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    fn authorize(&self, request: attohttpc::RequestBuilder) -> attohttpc::RequestBuilder {
        let request = request.proxy_settings(attohttpc::ProxySettings::builder().build());
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// `GET path`, its answer read as `T`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let url = format!("{}{path}", self.base);
        let answer = self
            .authorize(attohttpc::get(&url))
            .timeout(Duration::from_secs(30))
            .send();
        read_answer("GET", url, answer)
    }

    /// `GET /api/v1/node`.
    pub fn node_info(&self) -> Result<NodeInfo, ApiError> {
        self.get("/api/v1/node")
    }

    /// `GET /api/v1/jobs/{id}`.
    pub fn job(&self, job_id: &str) -> Result<JobStatus, ApiError> {
        self.get(&format!("/api/v1/jobs/{job_id}"))
    }

    /// `GET /api/v1/jobs/{id}/logs`.
    pub fn logs(&self, job_id: &str) -> Result<Logs, ApiError> {
        self.get(&format!("/api/v1/jobs/{job_id}/logs"))
    }

    /// Adds one file's bytes to the node's store and has the node say so
    /// in the DHT; returns its CID.
    pub fn add_file(&self, path: &std::path::Path) -> Result<String, ApiError> {
        let url = format!("{}/api/v1/blobs", self.base);
        let bytes = std::fs::read(path).map_err(|e| ApiError {
            method: "POST",
            url: url.clone(),
            status: None,
            message: format!("reading {}: {e}", path.display()),
        })?;
        let answer = self
            .authorize(attohttpc::post(&url))
            .timeout(Duration::from_secs(120))
            .header("content-type", "application/octet-stream")
            .bytes(bytes)
            .send();
        let added: ContentAnswer = read_answer("POST", url, answer)?;
        let cid = added.cid.to_string();
        let provide = api::requests::Provide { cid: cid.clone() };
        let _: ContentAnswer = self.post("/api/v1/provide", &provide)?;
        Ok(cid)
    }

    /// `POST path` with a JSON body, its answer read as `T`.
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let body = serde_json::to_string(body).map_err(|e| ApiError {
            method: "POST",
            url: format!("{}{path}", self.base),
            status: None,
            message: format!("encoding the body: {e}"),
        })?;
        self.post_text(path, "application/json", body)
    }

    /// Submits a job file (YAML or JSON); returns the job id.
    pub fn submit(&self, job: &str) -> Result<String, ApiError> {
        let answer: Submitted =
            self.post_text("/api/v1/jobs", "application/yaml", job.to_owned())?;
        Ok(answer.job_id.to_string())
    }

    fn post_text<T: DeserializeOwned>(
        &self,
        path: &str,
        kind: &str,
        body: String,
    ) -> Result<T, ApiError> {
        let url = format!("{}{path}", self.base);
        let answer = self
            .authorize(attohttpc::post(&url))
            .timeout(Duration::from_secs(120))
            .header("content-type", kind)
            .text(body)
            .send();
        read_answer("POST", url, answer)
    }
}

/// The answer as `T`, or the node's error.
fn read_answer<T: DeserializeOwned>(
    method: &'static str,
    url: String,
    answer: attohttpc::Result<attohttpc::Response>,
) -> Result<T, ApiError> {
    let fail = |status, message: String| ApiError {
        method,
        url: url.clone(),
        status,
        message,
    };
    let response = answer.map_err(|e| fail(None, format!("no answer: {e}")))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .map_err(|e| fail(Some(status.as_u16()), format!("reading the answer: {e}")))?;
    if !status.is_success() {
        let message = ErrorBody::message_of(&bytes).unwrap_or_else(|| "no reason given".into());
        return Err(fail(Some(status.as_u16()), format!("{status}: {message}")));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        fail(
            Some(status.as_u16()),
            format!(
                "an answer that does not read ({e}): {}",
                String::from_utf8_lossy(&bytes)
            ),
        )
    })
}
