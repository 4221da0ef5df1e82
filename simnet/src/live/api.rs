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

/// A node's HTTP API (`http://127.0.0.1:PORT`), JSON in and out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    base: String,
}

impl Api {
    pub fn new(base: impl Into<String>) -> Api {
        Api { base: base.into() }
    }

    /// `http://127.0.0.1:PORT`, as `skrei` commands take it in `--api`.
    pub fn url(&self) -> &str {
        &self.base
    }

    pub fn get(&self, path: &str) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        let answer = attohttpc::get(&url)
            .proxy_settings(attohttpc::ProxySettings::builder().build())
            .timeout(Duration::from_secs(30))
            .send();
        answer_json("GET", url, answer)
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
        let answer = attohttpc::post(&url)
            .proxy_settings(attohttpc::ProxySettings::builder().build())
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
