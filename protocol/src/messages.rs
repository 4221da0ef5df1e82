//! The wire messages and their size limits (R-P2P-2, R-P2P-3).
//!
//! Two transports carry them:
//! - **gossip** (gossipsub), for what every node should hear: [`Announce`]
//!   (a new job, from its requester) and [`NodeInfo`] (a node's engines,
//!   capacity and policy, repeated periodically). On the wire: [`Gossip`].
//! - **direct** (request-response, between two nodes), for everything about
//!   one job and one node: [`Bid`] or [`Refuse`] (compute -> requester),
//!   [`Award`] (requester -> compute), [`Decline`] (compute -> requester: an
//!   award it will not run after all), [`ResultMsg`] (compute -> requester)
//!   and [`Cancel`] (requester -> compute). On the wire: [`Direct`].
//!
//! Every message travels signed ([`Signed`]) by the node that wrote it, and
//! the signature is bound to the message's kind. A receiver decodes the
//! bytes with [`Gossip::decode`] / [`Direct::decode`] (refusing oversized
//! input before parsing it) and then calls `verify`, which checks the
//! signature, decodes the payload canonically, checks every bound below and
//! that the node the message names as its author is its signer. Only then
//! may the message be acted on or forwarded; a node counts any error against
//! the peer that sent it.
//!
//! ```
//! use protocol::id::{JobId, NodeKey};
//! use protocol::messages::{Bid, Direct, DirectMessage, Message};
//! # let job_id: JobId = "bafyr4ibqircjzxxtlmpihl2tvww3el3gfnrox45fcjj33ss6ztir7aonpi".parse()?;
//!
//! let compute = NodeKey::from_secret_bytes([2; 32]);
//! let bid = Bid { job_id, bidder: compute.node_id(), running_jobs: 0 };
//! let bytes = Direct::from(bid.sign(&compute)?).encode()?;
//!
//! // The requester's side.
//! let direct = Direct::decode(&bytes)?;
//! match direct.verify()? {
//!     DirectMessage::Bid(b) => assert_eq!(b.bidder, *direct.signer()),
//!     other => panic!("not a bid: {other:?}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Limits
//! Sizes are bounded twice: the whole encoded message by its transport's
//! limit ([`MAX_GOSSIP_BYTES`], [`MAX_DIRECT_BYTES`]), checked before
//! decoding; and each signed payload by its kind's [`Message::MAX_BYTES`],
//! checked before its signature. Counts and lengths of every list and
//! string inside are bounded by the `MAX_*` constants here, so what a peer
//! can make a node store or print stays small.

mod announce;
mod bounds;
mod direct;
mod node_info;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::id::{
    DecodeError, EncodeError, JobId, NodeId, NodeKey, Signed, SignedKind, VerifyError,
    from_canonical, to_canonical,
};
use crate::job::JobErrors;

pub use announce::{Announce, DRAW_ALL_PPM, draw_ticket};
pub use direct::{Award, Bid, Cancel, Decline, Outcome, Refuse, ResultMsg};
pub use node_info::NodeInfo;

/// Largest encoded [`Gossip`] message: 1 MiB. An announcement carries its
/// job, inline inputs included (each up to 256 KiB decoded, about 342 KiB as
/// base64); a job too large for this is refused at submission and should
/// move its data to a CID input. gossipsub's own `max_transmit_size` (64 KiB
/// by default) must be raised to at least this.
pub const MAX_GOSSIP_BYTES: usize = 1 << 20;

/// Largest encoded [`Direct`] message: 128 KiB. The largest direct message
/// is a [`Refuse`] that lists every domain of a job the node does not allow
/// (up to 256 domains of up to 253 bytes: about 65 KB).
pub const MAX_DIRECT_BYTES: usize = 128 << 10;

/// Largest signed [`NodeInfo`] payload: 16 KiB, ample for a few engines and
/// addresses. It is gossiped by every node every few seconds, so it stays
/// small.
pub const MAX_NODE_INFO_BYTES: usize = 16 << 10;

/// Bytes a [`Signed`] envelope and the [`Gossip`]/[`Direct`] variant tag add
/// around a payload, at most: the signer's id (52 characters), the 64-byte
/// signature, field names and CBOR heads take about 170. A payload of its
/// kind's `MAX_BYTES` therefore always fits its transport's limit.
pub const ENVELOPE_OVERHEAD: usize = 256;

/// Longest free-text reason (a decline, a failure, a cancellation): 4 KiB,
/// enough for an error message and a hint, small enough to log.
pub const MAX_REASON_BYTES: usize = 4 << 10;

/// Most addresses in one list ([`Announce::providers`],
/// [`NodeInfo::api_addrs`], [`NodeInfo::p2p_addrs`]).
pub const MAX_ADDRS: usize = 16;

/// Longest single address: 1 KiB, room for a serialised iroh endpoint
/// address with several direct socket addresses, or a long multiaddr.
pub const MAX_ADDR_BYTES: usize = 1 << 10;

/// Most engines a node may advertise.
pub const MAX_ENGINES: usize = 16;

/// Longest engine name (`docker`, `wasm`, ...).
pub const MAX_ENGINE_NAME_BYTES: usize = 32;

// The limits fit together.
const _: () = {
    // A failure's detail is a reason like any other.
    assert!(crate::failure::MAX_DETAIL_BYTES == MAX_REASON_BYTES);
    // A node info fits a gossip message.
    assert!(MAX_NODE_INFO_BYTES + ENVELOPE_OVERHEAD <= MAX_GOSSIP_BYTES);
    // The largest refusal fits a direct message: every domain a job may
    // list, each as long as a DNS name can be (253) with its CBOR head, plus
    // the rest of the message.
    assert!(
        crate::job::rules::MAX_DOMAINS * (253 + 3) + 512 <= MAX_DIRECT_BYTES - ENVELOPE_OVERHEAD
    );
};

/// A signed wire message, with its size limit and its own checks.
///
/// `sign` and `verify` apply the same checks, so a node never sends what
/// its peers would reject.
pub trait Message: SignedKind + Sized {
    /// Largest canonical payload accepted for this kind.
    const MAX_BYTES: usize;
    /// What the message is, in the user's words ("bid", "job announcement").
    const NAME: &'static str;

    /// The node this message says wrote it, if it names one (the bidder of a
    /// bid, the requester of an announcement): it must be the signer.
    /// Awards and cancellations name none: they come from the job's
    /// requester, which only the receiver's state knows.
    fn author(&self) -> Option<&NodeId>;

    /// Checks the bounds and rules of the message's fields (not its signer).
    fn check(&self) -> Result<(), MessageError>;

    /// Checks the message and signs it with `key`.
    fn sign(&self, key: &NodeKey) -> Result<Signed<Self>, MessageError> {
        self.check()?;
        if let Some(author) = self.author()
            && *author != key.node_id()
        {
            return Err(MessageError::SignerMismatch {
                kind: Self::KIND,
                author: *author,
                signer: key.node_id(),
            });
        }
        let signed = Signed::sign(key, self)?;
        if signed.payload().len() > Self::MAX_BYTES {
            return Err(EncodeError::TooLarge {
                what: Self::NAME,
                len: signed.payload().len(),
                max: Self::MAX_BYTES,
            }
            .into());
        }
        Ok(signed)
    }

    /// Verifies a received message: its signature (within
    /// [`Message::MAX_BYTES`]), its canonical encoding, its fields, and that
    /// its author is its signer.
    fn verify(signed: &Signed<Self>) -> Result<Self, MessageError> {
        let message = signed.verify(Self::MAX_BYTES)?;
        if let Some(author) = message.author()
            && author != signed.signer()
        {
            return Err(MessageError::SignerMismatch {
                kind: Self::KIND,
                author: *author,
                signer: *signed.signer(),
            });
        }
        message.check()?;
        Ok(message)
    }
}

/// Why a message was refused. Every variant means "drop it and count it
/// against the peer that sent it".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The bytes are not a message (too large, not canonical CBOR, ...).
    #[error("malformed message: {0}")]
    Decode(#[from] DecodeError),
    /// The signature or the signed payload is bad.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The message could not be encoded (when signing).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A text field is longer than allowed.
    #[error("{field} is {len} bytes long, more than the {max} allowed")]
    TooLong {
        /// The field, e.g. `providers[2]`.
        field: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A list has more entries than allowed.
    #[error("{field} has {count} entries, more than the {max} allowed")]
    TooMany {
        /// The field.
        field: String,
        /// How many entries it has.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A field holds a character that has no business in it (control
    /// characters could rewrite a terminal that shows the text).
    #[error("{field} contains the character {found:?}, which is not allowed there")]
    BadCharacter {
        /// The field.
        field: String,
        /// The first offending character.
        found: char,
    },
    /// A field that must not be empty is.
    #[error("{field} is empty")]
    Empty {
        /// The field.
        field: String,
    },
    /// A field's value breaks a rule other than the above.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The message names another node as its author than the one that
    /// signed it.
    #[error("the {kind} says it is from {author} but was signed by {signer}")]
    SignerMismatch {
        /// The message kind.
        kind: &'static str,
        /// The node the message names.
        author: NodeId,
        /// The node that signed it.
        signer: NodeId,
    },
    /// An announcement's job id is not the id of the job it carries.
    #[error(
        "the announced job id {claimed} is not the id of the job announced with it ({computed})"
    )]
    JobIdMismatch {
        /// The id in the announcement.
        claimed: JobId,
        /// The id computed from its spec, requester and time.
        computed: JobId,
    },
    /// An announced job breaks the job rules.
    #[error("the announced job is invalid: {0}")]
    InvalidSpec(JobErrors),
}

/// A message on a gossip topic: a signed [`Announce`] or [`NodeInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Gossip {
    /// A new job, signed by its requester.
    Announce(Signed<Announce>),
    /// A node's description of itself.
    NodeInfo(Signed<NodeInfo>),
}

/// A verified gossip message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GossipMessage {
    /// See [`Announce`].
    Announce(Announce),
    /// See [`NodeInfo`].
    NodeInfo(NodeInfo),
}

impl Gossip {
    /// Reads a gossip message; input over [`MAX_GOSSIP_BYTES`] is refused
    /// unread. Nothing is verified yet: call [`Gossip::verify`].
    pub fn decode(bytes: &[u8]) -> Result<Gossip, MessageError> {
        Ok(from_canonical(bytes, MAX_GOSSIP_BYTES)?)
    }

    /// The canonical bytes to publish.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        encode_within(self, "gossip message", MAX_GOSSIP_BYTES)
    }

    /// The node that signed it; authenticated once [`Gossip::verify`] succeeded.
    pub fn signer(&self) -> &NodeId {
        match self {
            Gossip::Announce(s) => s.signer(),
            Gossip::NodeInfo(s) => s.signer(),
        }
    }

    /// Verifies the message ([`Message::verify`]) and returns its content.
    pub fn verify(&self) -> Result<GossipMessage, MessageError> {
        Ok(match self {
            Gossip::Announce(s) => GossipMessage::Announce(Announce::verify(s)?),
            Gossip::NodeInfo(s) => GossipMessage::NodeInfo(NodeInfo::verify(s)?),
        })
    }
}

/// A request sent directly to one node: a signed bid, refusal, award,
/// decline, result or cancellation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Direct {
    /// Compute -> requester: "I will run it".
    Bid(Signed<Bid>),
    /// Compute -> requester: "I will not run it, because".
    Refuse(Signed<Refuse>),
    /// Requester -> compute: "run it".
    Award(Signed<Award>),
    /// Compute -> requester: "I cannot run it after all".
    Decline(Signed<Decline>),
    /// Compute -> requester: how a run ended.
    Result(Signed<ResultMsg>),
    /// Requester -> compute: "stop".
    Cancel(Signed<Cancel>),
}

/// A verified direct message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirectMessage {
    /// See [`Bid`].
    Bid(Bid),
    /// See [`Refuse`].
    Refuse(Refuse),
    /// See [`Award`]; the receiver checks the signer is the job's requester.
    Award(Award),
    /// See [`Decline`].
    Decline(Decline),
    /// See [`ResultMsg`].
    Result(ResultMsg),
    /// See [`Cancel`]; the receiver checks the signer is the job's requester.
    Cancel(Cancel),
}

impl Direct {
    /// Reads a direct message; input over [`MAX_DIRECT_BYTES`] is refused
    /// unread. Nothing is verified yet: call [`Direct::verify`].
    pub fn decode(bytes: &[u8]) -> Result<Direct, MessageError> {
        Ok(from_canonical(bytes, MAX_DIRECT_BYTES)?)
    }

    /// The canonical bytes to send.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        encode_within(self, "direct message", MAX_DIRECT_BYTES)
    }

    /// The node that signed it; authenticated once [`Direct::verify`]
    /// succeeded. For awards and cancellations, the receiver compares it with
    /// the job's requester.
    pub fn signer(&self) -> &NodeId {
        match self {
            Direct::Bid(s) => s.signer(),
            Direct::Refuse(s) => s.signer(),
            Direct::Award(s) => s.signer(),
            Direct::Decline(s) => s.signer(),
            Direct::Result(s) => s.signer(),
            Direct::Cancel(s) => s.signer(),
        }
    }

    /// Verifies the message ([`Message::verify`]) and returns its content.
    pub fn verify(&self) -> Result<DirectMessage, MessageError> {
        Ok(match self {
            Direct::Bid(s) => DirectMessage::Bid(Bid::verify(s)?),
            Direct::Refuse(s) => DirectMessage::Refuse(Refuse::verify(s)?),
            Direct::Award(s) => DirectMessage::Award(Award::verify(s)?),
            Direct::Decline(s) => DirectMessage::Decline(Decline::verify(s)?),
            Direct::Result(s) => DirectMessage::Result(ResultMsg::verify(s)?),
            Direct::Cancel(s) => DirectMessage::Cancel(Cancel::verify(s)?),
        })
    }
}

macro_rules! wrap {
    ($outer:ident :: $variant:ident ($t:ty)) => {
        impl From<Signed<$t>> for $outer {
            fn from(s: Signed<$t>) -> $outer {
                $outer::$variant(s)
            }
        }
    };
}
wrap!(Gossip::Announce(Announce));
wrap!(Gossip::NodeInfo(NodeInfo));
wrap!(Direct::Bid(Bid));
wrap!(Direct::Refuse(Refuse));
wrap!(Direct::Award(Award));
wrap!(Direct::Decline(Decline));
wrap!(Direct::Result(ResultMsg));
wrap!(Direct::Cancel(Cancel));

fn encode_within<T: Serialize>(
    value: &T,
    what: &'static str,
    max: usize,
) -> Result<Vec<u8>, EncodeError> {
    let bytes = to_canonical(value)?;
    if bytes.len() > max {
        return Err(EncodeError::TooLarge {
            what,
            len: bytes.len(),
            max,
        });
    }
    Ok(bytes)
}
