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
