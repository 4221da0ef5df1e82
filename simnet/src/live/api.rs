//! A node's HTTP API as a live testnet's tests and `simnet up` use it: a
//! blocking JSON client for loopback, with no TLS and no async runtime.

use std::time::Duration;

use serde_json::Value;

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

/// A node's HTTP API (`http://127.0.0.1:PORT`), JSON in and out, with the
/// node's token (R-SEC-1).
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

    pub fn get(&self, path: &str) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        let answer = self
            .authorize(attohttpc::get(&url))
            .timeout(Duration::from_secs(30))
            .send();
        answer_json("GET", url, answer)
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
        let answer = answer_json("POST", url.clone(), answer)?;
        let cid = answer["cid"].as_str().unwrap_or_default().to_owned();
        let provide = api::requests::Provide { cid: cid.clone() };
        let provide = serde_json::to_value(&provide).map_err(|e| ApiError {
            method: "POST",
            url: url.clone(),
            status: None,
            message: e.to_string(),
        })?;
        self.post("/api/v1/provide", &provide)?;
        Ok(cid)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.post_text(path, "application/json", body.to_string())
    }

    /// Submits a job file (YAML or JSON); returns the job id.
    pub fn submit(&self, job: &str) -> Result<String, ApiError> {
        let answer = self.post_text("/api/v1/jobs", "application/yaml", job.to_owned())?;
        answer["job_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ApiError {
                method: "POST",
                url: format!("{}/api/v1/jobs", self.base),
                status: None,
                message: format!("an answer without a job id: {answer}"),
            })
    }

    fn post_text(&self, path: &str, kind: &str, body: String) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        let answer = self
            .authorize(attohttpc::post(&url))
            .timeout(Duration::from_secs(120))
            .header("content-type", kind)
            .text(body)
            .send();
        answer_json("POST", url, answer)
    }
}

fn answer_json(
    method: &'static str,
    url: String,
    answer: attohttpc::Result<attohttpc::Response>,
) -> Result<Value, ApiError> {
    let fail = |status, message: String| ApiError {
        method,
        url: url.clone(),
        status,
        message,
    };
    let response = answer.map_err(|e| fail(None, format!("no answer: {e}")))?;
    let status = response.status();
    let text = response
        .text()
        .map_err(|e| fail(Some(status.as_u16()), format!("reading the answer: {e}")))?;
    let body: Value = serde_json::from_str(&text).map_err(|_| {
        fail(
            Some(status.as_u16()),
            format!("an answer that is not JSON: {text}"),
        )
    })?;
    if !status.is_success() {
        let message = body["error"].as_str().unwrap_or("no reason given");
        return Err(fail(Some(status.as_u16()), format!("{status}: {message}")));
    }
    Ok(body)
}
