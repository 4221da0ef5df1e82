//! A job announcement (gossip, signed by the requester).

use serde::{Deserialize, Serialize};

use super::{
    ENVELOPE_OVERHEAD, MAX_ADDR_BYTES, MAX_ADDRS, MAX_GOSSIP_BYTES, Message, MessageError, bounds,
};
use crate::id::{EncodeError, JobId, NodeId, SignedKind};
use crate::job::JobSpec;

/// "Here is a new job": the job, its id, who asks and from when, and where
/// its CID inputs can be fetched.
///
/// A receiver trusts none of it until [`Message::verify`] has checked that
/// the requester signed it, that `job_id` is the id of `spec`, `requester`
/// and `submitted_at_ms` (R-JOB-3), and that the spec follows the job rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announce {
    /// [`JobId::compute`] of the three fields below.
    pub job_id: JobId,
    /// The job.
    pub spec: JobSpec,
    /// The node that submitted the job, and signs this announcement.
    pub requester: NodeId,
    /// When the requester accepted the job, in ms since the Unix epoch.
    pub submitted_at_ms: u64,
    /// Where the job's CID inputs can be fetched from, as opaque strings
    /// (serialised iroh endpoint addresses, to be typed when storage lands).
    /// Not part of the job id: a re-announcement may name more providers.
    /// At most [`MAX_ADDRS`] of at most [`MAX_ADDR_BYTES`] each.
    pub providers: Vec<String>,
}

impl Announce {
    /// The announcement of `spec`, computing its job id.
    pub fn new(
        spec: JobSpec,
        requester: NodeId,
        submitted_at_ms: u64,
        providers: Vec<String>,
    ) -> Result<Announce, EncodeError> {
        Ok(Announce {
            job_id: JobId::compute(&spec, &requester, submitted_at_ms)?,
            spec,
            requester,
            submitted_at_ms,
            providers,
        })
    }
}

impl SignedKind for Announce {
    const KIND: &'static str = "announce";
}

impl Message for Announce {
    const MAX_BYTES: usize = MAX_GOSSIP_BYTES - ENVELOPE_OVERHEAD;
    const NAME: &'static str = "job announcement";

    fn author(&self) -> Option<&NodeId> {
        Some(&self.requester)
    }

    fn check(&self) -> Result<(), MessageError> {
        bounds::tokens("providers", &self.providers, MAX_ADDRS, MAX_ADDR_BYTES)?;
        let computed = JobId::compute(&self.spec, &self.requester, self.submitted_at_ms)?;
        if computed != self.job_id {
            return Err(MessageError::JobIdMismatch {
                claimed: self.job_id,
                computed,
            });
        }
        self.spec.validate().map_err(MessageError::InvalidSpec)
    }
}
