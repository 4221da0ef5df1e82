//! The direct messages between a requester and one compute node.

use cid::Cid;
use serde::{Deserialize, Serialize};

use super::{
    ENVELOPE_OVERHEAD, MAX_ADDR_BYTES, MAX_ADDRS, MAX_DIRECT_BYTES, MAX_REASON_BYTES, Message,
    MessageError, bounds,
};
use crate::failure::Failure;
use crate::id::{BLAKE3, DAG_CBOR, ExecutionId, JobId, NodeId, RAW, SignedKind};
use crate::policy::RefuseReason;

/// Payload limit of every direct message.
const MAX_DIRECT_PAYLOAD: usize = MAX_DIRECT_BYTES - ENVELOPE_OVERHEAD;

/// Compute -> requester: "my policy allows this job and I will run it".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bid {
    /// The job bid on.
    pub job_id: JobId,
    /// The bidding node (the signer).
    pub bidder: NodeId,
    /// How many jobs the bidder runs now, so the requester can prefer idle nodes.
    pub running_jobs: u32,
    /// Bytes of the job's inputs the bidder already holds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub held_bytes: u64,
    /// How long the bidder expects fetching the rest to take, in ms, where
    /// it can tell (the job's input size and its link rate are known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_ms: Option<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Compute -> requester: "I will not run this job", and why, so the
/// requester can tell its user why nobody runs it.
///
/// The reason's size is bounded by the direct message limit (a refusal may
/// list every domain of the job the node does not allow).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refuse {
    /// The job refused.
    pub job_id: JobId,
    /// The refusing node (the signer).
    pub node: NodeId,
    /// Why, in terms of the node's policy.
    pub reason: RefuseReason,
}

/// Requester -> compute: "run this job; this is attempt `execution_id`".
///
/// Signed by the job's requester; the compute node checks that the signer
/// is the requester of the announcement it bid on, and that `node` is itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Award {
    /// The job awarded.
    pub job_id: JobId,
    /// Names this attempt; the result and any decline echo it.
    pub execution_id: ExecutionId,
    /// The node awarded (the receiver).
    pub node: NodeId,
    /// Which of the job's `Count` parts this attempt is, from 0: its task
    /// sees it as `BACALHAU_PARTITION_INDEX` (issue 17). A re-award takes
    /// the part of the attempt it replaces.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub partition: u32,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// Compute -> requester: "I will not run the attempt you awarded me after
/// all" (it filled up, or its policy changed), so the requester re-awards
/// at once instead of waiting for a timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decline {
    /// The job.
    pub job_id: JobId,
    /// The attempt declined, from its [`Award`].
    pub execution_id: ExecutionId,
    /// The declining node (the signer).
    pub node: NodeId,
    /// Why, for people: at most [`MAX_REASON_BYTES`].
    pub reason: String,
}

/// Compute -> requester: where an awarded attempt is, before it ends
/// (issue 16): the requester shows it in the job's steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The job.
    pub job_id: JobId,
    /// The attempt, from its [`Award`].
    pub execution_id: ExecutionId,
    /// The node running it (the signer).
    pub node: NodeId,
    /// Where it is.
    pub step: Step,
}

/// A step of a running attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Step {
    /// The node is pulling the job's image from its registry.
    PullingImage {
        /// The image, as the job names it.
        image: String,
    },
    /// The inputs and the image are in; the task runs.
    Running {
        /// The image that runs, pinned to its digest
        /// (`registry/name@sha256:...`), or its engine id for an image no
        /// registry served; none for WASM.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
    },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::PullingImage { image } => write!(f, "pulling image {}", image.escape_debug()),
            Step::Running { image: Some(image) } => {
                write!(f, "running {}", image.escape_debug())
            }
            Step::Running { image: None } => f.write_str("running"),
        }
    }
}

/// Compute -> requester: how an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultMsg {
    /// The job.
    pub job_id: JobId,
    /// The attempt, from its [`Award`].
    pub execution_id: ExecutionId,
    /// The node that ran it (the signer).
    pub node: NodeId,
    /// What came of it.
    pub outcome: Outcome,
    /// Where the results can be fetched (iroh addresses, as in
    /// [`crate::messages::Announce::providers`]); at most [`MAX_ADDRS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The task ran to its end (whatever its exit code) and its results were
    /// stored.
    Completed {
        /// The results directory (stdout, stderr, exitCode, outputs): a
        /// CIDv1 with a BLAKE3 hash, raw or DAG-CBOR, fetchable with iroh.
        #[serde(with = "crate::id::cid_string")]
        result_cid: Cid,
        /// The task's exit code.
        exit_code: i32,
    },
    /// The attempt failed before producing results (inputs unavailable,
    /// engine error, timeout).
    Failed {
        /// Why: its cause, and a detail of at most [`MAX_REASON_BYTES`].
        failure: Failure,
    },
}

/// Requester -> compute: "stop working on this job".
///
/// Signed by the job's requester; the compute node checks the signer is the
/// requester of the job it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    /// The job to stop.
    pub job_id: JobId,
    /// Why, for people: at most [`MAX_REASON_BYTES`].
    pub reason: String,
}

impl SignedKind for Bid {
    const KIND: &'static str = "bid";
}
impl SignedKind for Refuse {
    const KIND: &'static str = "refuse";
}
impl SignedKind for Award {
    const KIND: &'static str = "award";
}
impl SignedKind for Decline {
    const KIND: &'static str = "decline";
}
impl SignedKind for ResultMsg {
    const KIND: &'static str = "result";
}
impl SignedKind for Cancel {
    const KIND: &'static str = "cancel";
}
impl SignedKind for Progress {
    const KIND: &'static str = "progress";
}

impl Message for Bid {
    const MAX_BYTES: usize = MAX_DIRECT_PAYLOAD;
    const NAME: &'static str = "bid";

    fn author(&self) -> Option<&NodeId> {
        Some(&self.bidder)
    }

    fn check(&self) -> Result<(), MessageError> {
        Ok(())
    }
}

impl Message for Refuse {
    const MAX_BYTES: usize = MAX_DIRECT_PAYLOAD;
    const NAME: &'static str = "refusal";

    fn author(&self) -> Option<&NodeId> {
        Some(&self.node)
    }

    fn check(&self) -> Result<(), MessageError> {
        // The reason's parts (network modes, domains) are checked by their
        // own types when decoded; its size by MAX_BYTES; free text here.
        match &self.reason {
            RefuseReason::ImageMissing { image } => {
                bounds::text("reason.image", image, MAX_REASON_BYTES)
            }
            RefuseReason::RegistryNotAllowed { image, registry } => {
                bounds::text("reason.image", image, MAX_REASON_BYTES)?;
                bounds::text("reason.registry", registry, MAX_REASON_BYTES)
            }
            RefuseReason::RegistryAddressRefused {
                image,
                registry,
                why,
            } => {
                bounds::text("reason.image", image, MAX_REASON_BYTES)?;
                bounds::text("reason.registry", registry, MAX_REASON_BYTES)?;
                bounds::text("reason.why", why, MAX_REASON_BYTES)
            }
            RefuseReason::LocalInputNotAllowed { path }
            | RefuseReason::LocalInputNotWritable { path } => {
                bounds::text("reason.path", path, MAX_REASON_BYTES)
            }
            RefuseReason::S3Refused { what, why } => {
                bounds::text("reason.what", what, MAX_REASON_BYTES)?;
                bounds::text("reason.why", why, MAX_REASON_BYTES)
            }
            RefuseReason::PublisherUnavailable { publisher } => {
                bounds::text("reason.publisher", publisher, MAX_REASON_BYTES)
            }
            RefuseReason::EnvNotAllowed { variable } => {
                bounds::text("reason.variable", variable, MAX_REASON_BYTES)
            }
            _ => Ok(()),
        }
    }
}

impl Message for Award {
    const MAX_BYTES: usize = MAX_DIRECT_PAYLOAD;
    const NAME: &'static str = "award";

    fn author(&self) -> Option<&NodeId> {
        None
    }

    fn check(&self) -> Result<(), MessageError> {
        Ok(())
    }
}

impl Message for Decline {
    const MAX_BYTES: usize = MAX_DIRECT_PAYLOAD;
    const NAME: &'static str = "decline";

    fn author(&self) -> Option<&NodeId> {
        Some(&self.node)
    }

    fn check(&self) -> Result<(), MessageError> {
        bounds::text("reason", &self.reason, MAX_REASON_BYTES)
    }
}

impl Message for Progress {
    const MAX_BYTES: usize = MAX_DIRECT_PAYLOAD;
    const NAME: &'static str = "progress";

    fn author(&self) -> Option<&NodeId> {
        Some(&self.node)
    }

    fn check(&self) -> Result<(), MessageError> {
        match &self.step {
            Step::PullingImage { image } | Step::Running { image: Some(image) } => {
                bounds::text("step.image", image, MAX_REASON_BYTES)
            }
            Step::Running { image: None } => Ok(()),
        }
    }
}

impl Message for ResultMsg {
    const MAX_BYTES: usize = MAX_DIRECT_PAYLOAD;
    const NAME: &'static str = "result";

    fn author(&self) -> Option<&NodeId> {
        Some(&self.node)
    }

    fn check(&self) -> Result<(), MessageError> {
        bounds::tokens("providers", &self.providers, MAX_ADDRS, MAX_ADDR_BYTES)?;
        match &self.outcome {
            Outcome::Completed { result_cid, .. } => check_result_cid(result_cid),
            Outcome::Failed { failure } => {
                bounds::text("outcome.failure.detail", &failure.detail, MAX_REASON_BYTES)
            }
        }
    }
}

impl Message for Cancel {
    const MAX_BYTES: usize = MAX_DIRECT_PAYLOAD;
    const NAME: &'static str = "cancellation";

    fn author(&self) -> Option<&NodeId> {
        None
    }

    fn check(&self) -> Result<(), MessageError> {
        bounds::text("reason", &self.reason, MAX_REASON_BYTES)
    }
}

/// Results are fetched over iroh, which verifies BLAKE3: any other CID
/// could not be fetched.
fn check_result_cid(cid: &Cid) -> Result<(), MessageError> {
    let hash = cid.hash();
    let fetchable = cid.version() == cid::Version::V1
        && (cid.codec() == RAW || cid.codec() == DAG_CBOR)
        && hash.code() == BLAKE3
        && hash.size() == 32;
    if fetchable {
        Ok(())
    } else {
        Err(MessageError::Invalid {
            field: "outcome.result_cid".into(),
            reason: format!(
                "{cid} is not a CIDv1 of raw or DAG-CBOR data hashed with BLAKE3 \
                 (`bafkr4i...` or `bafyr4i...`)"
            ),
        })
    }
}
