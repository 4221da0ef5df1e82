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
    /// Which nodes are asked to answer, in parts per million of the
    /// network: a node answers (bids or refuses) only if its
    /// [`draw_ticket`] for the job is below this; the others stay silent.
    /// `None`: every node answers. The requester draws a few times the
    /// bids it needs and widens the draw on every re-announcement, so a
    /// job's bid traffic does not grow with the network. Not part of the
    /// job id. At most [`DRAW_ALL_PPM`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draw_ppm: Option<u32>,
    /// The bytes of the job's CID inputs, summed, where the requester
    /// knows them all (it holds them). Compute nodes weigh what they would
    /// have to fetch against the job's `ExecutionTimeout` (R-PLC-1). Not
    /// part of the job id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_bytes: Option<u64>,
    /// The rate, bits per second, at which the requester serves blobs, as
    /// far as it knows: an input it holds arrives no faster from it. Not
    /// part of the job id; never 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_bps: Option<u64>,
}

/// [`Announce::draw_ppm`] that asks every node.
pub const DRAW_ALL_PPM: u32 = 1_000_000;

/// `node`'s ticket in the draws of `job_id`, uniform in `[0,
/// DRAW_ALL_PPM)`: from BLAKE3 of both ids, so every node and requester
/// computes the same ticket, a node's tickets for different jobs are
/// independent, and a wider draw of the same job keeps every node the
/// narrower one drew.
///
/// ```
/// use protocol::id::NodeKey;
/// use protocol::messages::{DRAW_ALL_PPM, draw_ticket};
/// # let job_id: protocol::id::JobId = "bafyr4ibqircjzxxtlmpihl2tvww3el3gfnrox45fcjj33ss6ztir7aonpi".parse()?;
/// let node = NodeKey::from_secret_bytes([2; 32]).node_id();
/// assert!(draw_ticket(&job_id, &node) < DRAW_ALL_PPM);
/// # Ok::<(), protocol::id::JobIdError>(())
/// ```
pub fn draw_ticket(job_id: &JobId, node: &NodeId) -> u32 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"skrei bid draw v1");
    hasher.update(job_id.digest());
    hasher.update(node.as_bytes());
    let mut word = [0u8; 8];
    word.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    // The modulo bias is below 2^-44.
    (u64::from_le_bytes(word) % u64::from(DRAW_ALL_PPM)) as u32
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
            draw_ppm: None,
            input_bytes: None,
            source_bps: None,
        })
    }

    /// Whether `node` is drawn to answer this announcement (see
    /// [`Announce::draw_ppm`]).
    pub fn draws(&self, node: &NodeId) -> bool {
        self.draw_ppm
            .is_none_or(|ppm| draw_ticket(&self.job_id, node) < ppm)
    }

    /// Whether a node holding `held_bytes` of the job's inputs holds them
    /// all: such a node answers whether or not the draw asks it, since it
    /// is where the job runs best.
    pub fn all_held(&self, held_bytes: u64) -> bool {
        self.input_bytes.is_some_and(|b| b > 0 && held_bytes >= b)
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
        if let Some(ppm) = self.draw_ppm
            && ppm > DRAW_ALL_PPM
        {
            return Err(MessageError::Invalid {
                field: "draw_ppm".to_owned(),
                reason: format!("{ppm} is more than the whole network ({DRAW_ALL_PPM})"),
            });
        }
        if self.source_bps == Some(0) {
            return Err(MessageError::Invalid {
                field: "source_bps".to_owned(),
                reason: "0 bits per second is no rate: leave it out when unknown".to_owned(),
            });
        }
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
