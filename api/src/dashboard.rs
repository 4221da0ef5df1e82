//! The dashboard's answers: `/api/v1/dashboard/login` (for `skrei
//! dashboard`) and `/api/v1/node/allows` (the dashboard's domain check).

use serde::{Deserialize, Serialize};

/// Where to send a browser to log it in to the dashboard, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginCode {
    /// The path and query (`/ui/login?code=...`) on the node's API.
    pub path: String,
}

/// Whether the node would accept an `http` job that reaches `host`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostVerdict {
    /// The host, normalised.
    pub host: String,
    pub allowed: bool,
    /// Why, in words: the allowlist that covers it, or what refuses it.
    pub reason: String,
}

/// The node's own metrics over the last hours (`/api/v1/metrics/history`),
/// sampled at a fixed interval and kept to a bounded number of samples, so
/// that a page opened later still shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricHistory {
    /// Time between samples, in milliseconds.
    pub interval_ms: u64,
    /// Oldest first.
    pub samples: Vec<MetricSample>,
}

/// One sample of the node's metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricSample {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// Jobs submitted to this node, by state.
    pub jobs: std::collections::BTreeMap<String, u64>,
    /// Executions running on this node.
    pub running: u32,
    /// Peers connected.
    pub peers: u32,
    /// Bids this node has received for its jobs, as its records hold them.
    #[serde(default)]
    pub bids_received: u64,
    /// Bytes the jobs this node ran moved through their egress (both
    /// ways, as their network.log counts them), since it started.
    #[serde(default)]
    pub egress_bytes: u64,
}

/// The files of a job's first fetched result (`/api/v1/jobs/{id}/files`),
/// each readable at `/api/v1/blobs/{cid}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultFiles {
    pub files: Vec<ResultFile>,
    /// Whether the listing stopped at its bound before the last file.
    #[serde(default)]
    pub truncated: bool,
}

/// One file of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultFile {
    /// Its path in the result, `/`-separated.
    pub path: String,
    /// Its CID as text.
    pub cid: String,
    pub size: u64,
}
