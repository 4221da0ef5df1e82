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
//! the peer that sent it, but [`MessageError::Newer`].
//!
//! ## Versions
//! Every message carries its sender's [`PROTOCOL_VERSION`] (on the wire
//! `{"m": {"<Kind>": <signed envelope>}, "v": <version>}`; see `version.rs`).
//! A message of this build's version or older must be exactly what this
//! build would write. From a newer node, fields this build does not know
//! are ignored (its signature still covers them: the payload stays the
//! bytes signed) and what it cannot read at all (a new kind, a new enum
//! value, a new job field), or its rules refuse, is [`MessageError::Newer`]:
//! dropped, not forwarded, never held against the peer. Where dropping
//! would lose what matters to a job, unknown values read as a catch-all
//! instead: a [`FailureCause`](crate::failure::FailureCause) as `other`
//! (the result and its detail kept), a
//! [`RefuseReason`](crate::policy::RefuseReason) as `unknown` (the refusal
//! still counts in the requester's explanation). A new network mode makes a
//! node info unreadable (it only feeds explanations) and a new outcome a
//! result (the requester then re-awards as if the node were silent).
//!
//! ```
//! use protocol::id::{JobId, NodeKey};
//! use protocol::messages::{Bid, Direct, DirectMessage, Message};
//! # let job_id: JobId = "bafyr4ibqircjzxxtlmpihl2tvww3el3gfnrox45fcjj33ss6ztir7aonpi".parse()?;
//!
//! let compute = NodeKey::from_secret_bytes([2; 32]);
//! let bid = Bid { job_id, bidder: compute.node_id(), running_jobs: 0, held_bytes: 0, fetch_ms: None };
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
mod version;

use serde::{Deserialize, Serialize};

use crate::id::{
    DecodeError, EncodeError, JobId, NodeId, NodeKey, Signed, SignedKind, VerifyError,
};
use crate::job::JobErrors;

pub use announce::{Announce, DRAW_ALL_PPM, draw_ticket};
pub use direct::{Award, Bid, Cancel, Decline, Outcome, Progress, Refuse, ResultMsg, Step};
pub use node_info::NodeInfo;

/// The version of the wire messages this build writes, carried by every
/// [`Gossip`] and [`Direct`] message. Raise it with any change an older node
/// cannot read exactly: a new message kind, field or enum value (a new
/// field must be optional, `#[serde(default, skip_serializing_if = ...)]`,
/// so that messages from older nodes still decode to what they wrote). An
/// older node ignores the fields it does not know in a newer node's
/// message and drops, unpunished, a message it cannot read at all.
/// 2: announcements state input sizes and rates, bids what they hold,
/// jobs carry Constraints, refusals say inputs are too slow or a
/// Constraint is unmet (issues 15 and 17).
/// 3: progress messages (pulling the image, running it at its digest),
/// refusals for registries not pulled from (issue 16).
pub const PROTOCOL_VERSION: u32 = 3;

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

/// Bytes a [`Signed`] envelope, the [`Gossip`]/[`Direct`] variant tag and
/// the protocol version add around a payload, at most: the signer's id (52
/// characters), the 64-byte signature, field names and CBOR heads take
/// about 180. A payload of its kind's `MAX_BYTES` therefore always fits its
/// transport's limit.
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

    /// Verifies a received message of this build's [`PROTOCOL_VERSION`]:
    /// its signature (within [`Message::MAX_BYTES`]), its canonical
    /// encoding, its fields, and that its author is its signer.
    fn verify(signed: &Signed<Self>) -> Result<Self, MessageError> {
        Self::verify_from(signed, PROTOCOL_VERSION)
    }

    /// Verifies a message its sender wrote at protocol `version`. Up to
    /// [`PROTOCOL_VERSION`], as [`Message::verify`]: the payload must be
    /// exactly what this build writes for it. From a newer version, fields
    /// this build does not know are ignored ([`Signed::verify_ignoring_unknown`]:
    /// the signature still covers them), and a payload it cannot read, or
    /// that its rules ([`Message::check`]) refuse, is [`MessageError::Newer`].
    /// The signature, the sizes, the encoding and the author are checked
    /// alike for every version.
    fn verify_from(signed: &Signed<Self>, version: u32) -> Result<Self, MessageError> {
        let message = if version > PROTOCOL_VERSION {
            signed.verify_ignoring_unknown(Self::MAX_BYTES)
        } else {
            signed.verify(Self::MAX_BYTES)
        }
        .map_err(|e| MessageError::from(e).at_version(version))?;
        if let Some(author) = message.author()
            && author != signed.signer()
        {
            return Err(MessageError::SignerMismatch {
                kind: Self::KIND,
                author: *author,
                signer: *signed.signer(),
            });
        }
        message.check().map_err(|e| e.at_version(version))?;
        Ok(message)
    }
}

/// Why a message was refused. Every variant but [`MessageError::Newer`]
/// means "drop it and count it against the peer that sent it".
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
    /// The message was sent at a newer protocol version than this build's,
    /// and holds a kind, field or value this build cannot read, or breaks
    /// one of its rules (which the newer version may have relaxed): drop
    /// it, but do not count it against the peer. A bad signature, an
    /// oversized or non-canonical message, or an author that is not the
    /// signer is never this: those mean the same in every version.
    #[error(
        "a message of protocol version {version} (this node speaks {PROTOCOL_VERSION}) \
         that this node cannot accept: {error}"
    )]
    Newer {
        /// The version the sender claims.
        version: u32,
        /// What this build found wrong with it.
        error: Box<MessageError>,
    },
}

impl MessageError {
    /// This error, for a message sent at `version`: [`MessageError::Newer`]
    /// if the version is newer than this build's and a newer version may
    /// have made the message valid.
    fn at_version(self, version: u32) -> MessageError {
        let may_be_valid_there = matches!(
            &self,
            // What it holds, this build cannot read...
            MessageError::Decode(DecodeError::Unreadable { .. })
                | MessageError::Verify(VerifyError::Payload {
                    error: DecodeError::Unreadable { .. },
                    ..
                })
                // ... or its rules refuse.
                | MessageError::TooLong { .. }
                | MessageError::TooMany { .. }
                | MessageError::BadCharacter { .. }
                | MessageError::Empty { .. }
                | MessageError::Invalid { .. }
                | MessageError::JobIdMismatch { .. }
                | MessageError::InvalidSpec(_)
        );
        if version > PROTOCOL_VERSION && may_be_valid_there {
            MessageError::Newer {
                version,
                error: Box::new(self),
            }
        } else {
            self
        }
    }
}

/// A message on a gossip topic, as it travels: a signed [`Announce`] or
/// [`NodeInfo`] and the protocol version of its sender.
///
/// Built from a signed message with `From`, at this build's
/// [`PROTOCOL_VERSION`], or read with [`Gossip::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gossip {
    version: u32,
    signed: SignedGossip,
}

/// The signed message a [`Gossip`] carries, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignedGossip {
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
    /// unread. Nothing is verified yet: call [`Gossip::verify`]. A message
    /// of a newer protocol version whose kind this build does not know is
    /// [`MessageError::Newer`].
    pub fn decode(bytes: &[u8]) -> Result<Gossip, MessageError> {
        let (version, signed) = version::decode(bytes, MAX_GOSSIP_BYTES)?;
        Ok(Gossip { version, signed })
    }

    /// The canonical bytes to publish.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        version::encode(
            self.version,
            &self.signed,
            "gossip message",
            MAX_GOSSIP_BYTES,
        )
    }

    /// The protocol version its sender wrote it at.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The signed message it carries.
    pub fn signed(&self) -> &SignedGossip {
        &self.signed
    }

    /// The signed message it carries.
    pub fn into_signed(self) -> SignedGossip {
        self.signed
    }

    /// The node that signed it; authenticated once [`Gossip::verify`] succeeded.
    pub fn signer(&self) -> &NodeId {
        match &self.signed {
            SignedGossip::Announce(s) => s.signer(),
            SignedGossip::NodeInfo(s) => s.signer(),
        }
    }

    /// Verifies the message ([`Message::verify_from`] at its version) and
    /// returns its content.
    pub fn verify(&self) -> Result<GossipMessage, MessageError> {
        let v = self.version;
        Ok(match &self.signed {
            SignedGossip::Announce(s) => GossipMessage::Announce(Announce::verify_from(s, v)?),
            SignedGossip::NodeInfo(s) => GossipMessage::NodeInfo(NodeInfo::verify_from(s, v)?),
        })
    }
}

impl From<SignedGossip> for Gossip {
    /// The message, sent at this build's [`PROTOCOL_VERSION`].
    fn from(signed: SignedGossip) -> Gossip {
        Gossip {
            version: PROTOCOL_VERSION,
            signed,
        }
    }
}

/// A request sent directly to one node, as it travels: a signed bid,
/// refusal, award, decline, result or cancellation, and the protocol
/// version of its sender.
///
/// Built from a signed message with `From`, at this build's
/// [`PROTOCOL_VERSION`], or read with [`Direct::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Direct {
    version: u32,
    signed: SignedDirect,
}

/// The signed message a [`Direct`] carries, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignedDirect {
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
    /// Compute -> requester: where a run is (protocol version 3).
    Progress(Signed<Progress>),
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
    /// See [`Progress`].
    Progress(Progress),
}

impl Direct {
    /// Reads a direct message; input over [`MAX_DIRECT_BYTES`] is refused
    /// unread. Nothing is verified yet: call [`Direct::verify`]. A message
    /// of a newer protocol version whose kind this build does not know is
    /// [`MessageError::Newer`].
    pub fn decode(bytes: &[u8]) -> Result<Direct, MessageError> {
        let (version, signed) = version::decode(bytes, MAX_DIRECT_BYTES)?;
        Ok(Direct { version, signed })
    }

    /// The canonical bytes to send.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        version::encode(
            self.version,
            &self.signed,
            "direct message",
            MAX_DIRECT_BYTES,
        )
    }

    /// The protocol version its sender wrote it at.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The signed message it carries.
    pub fn signed(&self) -> &SignedDirect {
        &self.signed
    }

    /// The signed message it carries.
    pub fn into_signed(self) -> SignedDirect {
        self.signed
    }

    /// The node that signed it; authenticated once [`Direct::verify`]
    /// succeeded. For awards and cancellations, the receiver compares it with
    /// the job's requester.
    pub fn signer(&self) -> &NodeId {
        match &self.signed {
            SignedDirect::Bid(s) => s.signer(),
            SignedDirect::Refuse(s) => s.signer(),
            SignedDirect::Award(s) => s.signer(),
            SignedDirect::Decline(s) => s.signer(),
            SignedDirect::Result(s) => s.signer(),
            SignedDirect::Cancel(s) => s.signer(),
            SignedDirect::Progress(s) => s.signer(),
        }
    }

    /// Verifies the message ([`Message::verify_from`] at its version) and
    /// returns its content.
    pub fn verify(&self) -> Result<DirectMessage, MessageError> {
        let v = self.version;
        Ok(match &self.signed {
            SignedDirect::Bid(s) => DirectMessage::Bid(Bid::verify_from(s, v)?),
            SignedDirect::Refuse(s) => DirectMessage::Refuse(Refuse::verify_from(s, v)?),
            SignedDirect::Award(s) => DirectMessage::Award(Award::verify_from(s, v)?),
            SignedDirect::Decline(s) => DirectMessage::Decline(Decline::verify_from(s, v)?),
            SignedDirect::Result(s) => DirectMessage::Result(ResultMsg::verify_from(s, v)?),
            SignedDirect::Cancel(s) => DirectMessage::Cancel(Cancel::verify_from(s, v)?),
            SignedDirect::Progress(s) => DirectMessage::Progress(Progress::verify_from(s, v)?),
        })
    }
}

impl From<SignedDirect> for Direct {
    /// The message, sent at this build's [`PROTOCOL_VERSION`].
    fn from(signed: SignedDirect) -> Direct {
        Direct {
            version: PROTOCOL_VERSION,
            signed,
        }
    }
}

/// `Gossip::from(signed_announce)`, `Direct::from(signed_bid)`, ...: the
/// message sent at this build's [`PROTOCOL_VERSION`].
macro_rules! wrap {
    ($outer:ident, $kinds:ident :: $variant:ident ($t:ty)) => {
        impl From<Signed<$t>> for $kinds {
            fn from(s: Signed<$t>) -> $kinds {
                $kinds::$variant(s)
            }
        }
        impl From<Signed<$t>> for $outer {
            fn from(s: Signed<$t>) -> $outer {
                $outer::from($kinds::$variant(s))
            }
        }
    };
}
wrap!(Gossip, SignedGossip::Announce(Announce));
wrap!(Gossip, SignedGossip::NodeInfo(NodeInfo));
wrap!(Direct, SignedDirect::Bid(Bid));
wrap!(Direct, SignedDirect::Refuse(Refuse));
wrap!(Direct, SignedDirect::Award(Award));
wrap!(Direct, SignedDirect::Decline(Decline));
wrap!(Direct, SignedDirect::Result(ResultMsg));
wrap!(Direct, SignedDirect::Cancel(Cancel));
wrap!(Direct, SignedDirect::Progress(Progress));
