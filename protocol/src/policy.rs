//! A compute node's acceptance policy (R-POL-1, R-POL-2).
//!
//! TEMPORARY (wt-idmsg): only the `RefuseReason` contract that
//! `messages::Refuse` carries, so this worktree compiles. The domain/policy
//! work replaces this file at merge.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::Domain;
use crate::job::NetworkMode;

/// Why a compute node will not run a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RefuseReason {
    /// The job's network mode is above what the node accepts.
    NetworkNotAccepted {
        requested: NetworkMode,
        accepted: NetworkMode,
    },
    /// The job's domains are not covered by the node's allowlist.
    DomainsNotAllowed { domains: Vec<Domain> },
}

impl fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefuseReason::NetworkNotAccepted {
                requested,
                accepted,
            } => write!(f, "network {requested} requested, node accepts {accepted}"),
            RefuseReason::DomainsNotAllowed { domains } => {
                f.write_str("domains not allowed:")?;
                for d in domains {
                    write!(f, " {d}")?;
                }
                Ok(())
            }
        }
    }
}
