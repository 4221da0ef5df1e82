//! Why a job or one of its executions failed: a [`FailureCause`] that
//! programs group and act on, and a detail that people read.
//!
//! The cause travels with the failure everywhere: in a compute node's
//! [`Outcome::Failed`](crate::messages::Outcome::Failed), in the requester's
//! records and events (and so in the node's database and API), in simnet's
//! reports. Nothing downstream has to read the English of the detail to know
//! what happened, and the detail can be reworded without breaking anyone.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest failure detail: 4 KiB, as every free-text reason a message
/// carries (`messages::MAX_REASON_BYTES`).
pub const MAX_DETAIL_BYTES: usize = 4 << 10;

/// A failure: what kind it is, and what happened in words a user can act on.
///
/// Fields it does not know are ignored when it is read, so a failure from a
/// newer node (or a record a newer build wrote) still reads as its cause
/// and detail.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Failure {
    /// What kind of failure this is.
    pub cause: FailureCause,
    /// What happened, for people: at most [`MAX_DETAIL_BYTES`].
    pub detail: String,
}

impl Failure {
    /// A failure of `cause`, its detail cut to [`MAX_DETAIL_BYTES`] and
    /// stripped of control characters other than newlines.
    pub fn new(cause: FailureCause, detail: impl Into<String>) -> Failure {
        Failure {
            cause,
            detail: clean(detail.into()),
        }
    }
}

/// Reads a [`Failure`], or the bare reason text that records and events
/// held before causes existed, as [`FailureCause::Other`]. For the fields of
/// stored records (`#[serde(alias = "reason", deserialize_with = ...)]`);
/// wire messages take only a full failure.
pub fn failure_or_reason<'de, D: Deserializer<'de>>(d: D) -> Result<Failure, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Failure(Failure),
        Reason(String),
    }
    Ok(match Stored::deserialize(d)? {
        Stored::Failure(f) => f,
        Stored::Reason(reason) => Failure::new(FailureCause::Other, reason),
    })
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// Keeps a detail within what a message may carry.
fn clean(mut detail: String) -> String {
    if detail.len() > MAX_DETAIL_BYTES {
        let mut end = MAX_DETAIL_BYTES - 3;
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        detail.truncate(end);
        detail.push_str("...");
    }
    if detail.contains(|c: char| c.is_control() && c != '\n') {
        detail = detail.replace(|c: char| c.is_control() && c != '\n', " ");
    }
    detail
}

/// What kind of failure it is. The first group is reported by a compute node
/// about its attempt, the second decided by the requester about an attempt,
/// the third by the requester about the whole job.
///
/// On the wire and in JSON a cause is its `snake_case` name
/// (`input_timeout`). A cause this build does not know reads as
/// [`FailureCause::Other`] (the failure keeps its detail), so a result from
/// a newer node that added causes is not lost, nor is a record a newer build
/// wrote. Add causes with a protocol version (`messages::PROTOCOL_VERSION`):
/// a node of the same version sending a cause the receiver does not know is
/// refused, as its payload does not re-encode to what it sent.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureCause {
    /// An input (or a WASM job's module) could not be fetched, downloaded or
    /// placed: no provider served it, a download failed, it was over the
    /// node's budget, a local path is not allowed.
    InputUnavailable,
    /// The inputs were not in within the job's execution timeout.
    InputTimeout,
    /// The node cannot run the task: its engine is missing or refuses it,
    /// or the image or module is missing or unusable.
    EngineUnavailable,
    /// The task went over its memory or CPU limit.
    ResourceLimit,
    /// The task ran longer than its execution timeout.
    Timeout,
    /// The results could not be stored or published.
    PublishFailed,
    /// The execution was cancelled on the compute node.
    Cancelled,
    /// The compute node failed on its own side (its disk, its folders).
    NodeError,
    /// The compute node restarted while it ran the attempt.
    NodeRestarted,
    /// The compute node declined the award.
    Declined,
    /// The compute node did not answer within the execution timeout and its
    /// grace.
    NodeSilent,
    /// The compute node could not be reached: it disconnected and did not
    /// come back within the grace, or the award could not be delivered.
    NodeLost,
    /// No node accepts the job (every node that answered refused it).
    NoNodeAccepts,
    /// No node answered the job's announcements within its queue timeout.
    NoNodeAnswered,
    /// Some executions ran, but not `Count` of them completed, and no other
    /// node took the job within its queue timeout.
    QueueTimeout,
    /// Every attempt the job allows was used.
    AttemptsExhausted,
    /// Some nodes that took an ops job did not complete it.
    OpsIncomplete,
    /// The job did not finish within its total timeout.
    TotalTimeout,
    /// Anything else, records written before causes existed, and causes
    /// of a newer version that this one does not know.
    #[default]
    #[serde(other)]
    Other,
}

impl FailureCause {
    /// Every cause, in declaration order.
    pub const ALL: [FailureCause; 19] = [
        FailureCause::InputUnavailable,
        FailureCause::InputTimeout,
        FailureCause::EngineUnavailable,
        FailureCause::ResourceLimit,
        FailureCause::Timeout,
        FailureCause::PublishFailed,
        FailureCause::Cancelled,
        FailureCause::NodeError,
        FailureCause::NodeRestarted,
        FailureCause::Declined,
        FailureCause::NodeSilent,
        FailureCause::NodeLost,
        FailureCause::NoNodeAccepts,
        FailureCause::NoNodeAnswered,
        FailureCause::QueueTimeout,
        FailureCause::AttemptsExhausted,
        FailureCause::OpsIncomplete,
        FailureCause::TotalTimeout,
        FailureCause::Other,
    ];

    /// The cause's name, as on the wire and in JSON: `input_timeout`.
    pub fn name(self) -> &'static str {
        match self {
            FailureCause::InputUnavailable => "input_unavailable",
            FailureCause::InputTimeout => "input_timeout",
            FailureCause::EngineUnavailable => "engine_unavailable",
            FailureCause::ResourceLimit => "resource_limit",
            FailureCause::Timeout => "timeout",
            FailureCause::PublishFailed => "publish_failed",
            FailureCause::Cancelled => "cancelled",
            FailureCause::NodeError => "node_error",
            FailureCause::NodeRestarted => "node_restarted",
            FailureCause::Declined => "declined",
            FailureCause::NodeSilent => "node_silent",
            FailureCause::NodeLost => "node_lost",
            FailureCause::NoNodeAccepts => "no_node_accepts",
            FailureCause::NoNodeAnswered => "no_node_answered",
            FailureCause::QueueTimeout => "queue_timeout",
            FailureCause::AttemptsExhausted => "attempts_exhausted",
            FailureCause::OpsIncomplete => "ops_incomplete",
            FailureCause::TotalTimeout => "total_timeout",
            FailureCause::Other => "other",
        }
    }
}

impl fmt::Display for FailureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for FailureCause {
    type Err = UnknownCause;

    fn from_str(s: &str) -> Result<FailureCause, UnknownCause> {
        FailureCause::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownCause(s.to_owned()))
    }
}

/// A name that is not a [`FailureCause`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown failure cause {0:?}; known causes: {names}", names = known_names())]
pub struct UnknownCause(pub String);

fn known_names() -> String {
    FailureCause::ALL.map(FailureCause::name).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde_and_parse_back() {
        for cause in FailureCause::ALL {
            let json = serde_json::to_string(&cause).unwrap();
            assert_eq!(json, format!("\"{}\"", cause.name()));
            assert_eq!(cause.name().parse::<FailureCause>().unwrap(), cause);
        }
        let err = "bogus".parse::<FailureCause>().unwrap_err();
        assert!(err.to_string().contains("input_timeout"), "{err}");
    }

    #[derive(Debug, Deserialize)]
    struct Stored {
        #[serde(alias = "reason", deserialize_with = "failure_or_reason")]
        failure: Failure,
    }

    #[test]
    fn records_from_before_causes_read_as_other() {
        let old: Stored = serde_json::from_str(r#"{"reason":"it broke"}"#).unwrap();
        assert_eq!(old.failure, Failure::new(FailureCause::Other, "it broke"));
        let new = serde_json::to_value(Failure::new(FailureCause::Timeout, "slow")).unwrap();
        assert_eq!(
            new,
            serde_json::json!({"cause": "timeout", "detail": "slow"})
        );
        let stored: Stored = serde_json::from_value(serde_json::json!({"failure": new})).unwrap();
        assert_eq!(stored.failure.cause, FailureCause::Timeout);
        // A failure with a field of a newer build reads without it.
        let newer = serde_json::json!({"failure": {"cause": "timeout", "detail": "x", "y": 1}});
        let stored: Stored = serde_json::from_value(newer).unwrap();
        assert_eq!(stored.failure, Failure::new(FailureCause::Timeout, "x"));
        // A map that is no failure is refused, not read as text.
        let bad = serde_json::json!({"failure": {"cause": "timeout"}});
        assert!(serde_json::from_value::<Stored>(bad).is_err());
    }

    /// Issue 14: a cause added by a newer version reads as `other`, detail
    /// kept, in JSON (the API, the node's database) and in DAG-CBOR (the
    /// wire).
    #[test]
    fn unknown_causes_read_as_other() {
        let json = serde_json::json!({"cause": "quota_exceeded", "detail": "over quota"});
        let failure: Failure = serde_json::from_value(json).unwrap();
        assert_eq!(failure, Failure::new(FailureCause::Other, "over quota"));
        let cause: FailureCause = serde_json::from_str(r#""quota_exceeded""#).unwrap();
        assert_eq!(cause, FailureCause::Other);

        #[derive(Serialize)]
        struct Newer {
            cause: &'static str,
            detail: &'static str,
        }
        let cbor = serde_ipld_dagcbor::to_vec(&Newer {
            cause: "quota_exceeded",
            detail: "over quota",
        })
        .unwrap();
        let failure: Failure = serde_ipld_dagcbor::from_slice(&cbor).unwrap();
        assert_eq!(failure, Failure::new(FailureCause::Other, "over quota"));

        // Not a string at all is still an error, not `other`.
        assert!(serde_json::from_str::<FailureCause>("7").is_err());
        assert!(serde_json::from_str::<FailureCause>(r#"{"timeout": 1}"#).is_err());
        // Parsing a name (a CLI or API filter) still refuses unknown names.
        assert!("quota_exceeded".parse::<FailureCause>().is_err());
    }

    #[test]
    fn details_are_bounded_and_printable() {
        let long = "é".repeat(MAX_DETAIL_BYTES);
        let f = Failure::new(FailureCause::Other, long);
        assert!(f.detail.len() <= MAX_DETAIL_BYTES);
        assert!(f.detail.ends_with("..."));
        let f = Failure::new(FailureCause::Other, "a\u{1b}[31mb\nc");
        assert_eq!(f.detail, "a [31mb\nc");
    }
}
