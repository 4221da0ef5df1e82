//! The job spec (R-JOB-1, R-JOB-2). STUB: the job model lands next.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A job's network mode (R-NET-1..R-NET-3), also what a node accepts (R-POL-1).
/// Ordered: `None < Http < Full`, and a node accepting a mode accepts every
/// lower one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NetworkMode {
    /// No network but loopback (the default).
    #[default]
    None,
    /// HTTP and HTTPS to the job's domains only, through the egress proxy.
    #[serde(rename = "HTTP")]
    Http,
    /// Unfiltered networking of any protocol.
    Full,
}

impl NetworkMode {
    /// The lower-case name used by flags: `none`, `http`, `full`.
    pub fn as_flag(self) -> &'static str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Http => "http",
            NetworkMode::Full => "full",
        }
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_flag())
    }
}
