//! Canonical encoding, content ids, job ids, node keys and signed envelopes
//! (R-JOB-3, R-P2P-3).
//!
//! Everything a node signs or names by hash goes through one encoding:
//! DAG-CBOR as written by [`to_canonical`], which gives each value exactly one
//! byte string (map keys sorted, shortest integer forms, definite lengths).
//! [`from_canonical`] accepts nothing else, so an id or a signature always
//! names one byte string and one value. [`from_canonical_ignoring_unknown`]
//! holds input from a newer protocol version to the same encoding rules,
//! but reads only the fields this build knows.
//!
//! - [`blake3_cid`]: CIDv1 with a BLAKE3 multihash, the form iroh-blobs can
//!   fetch (`bafkr4i...` for raw bytes, `bafyr4i...` for DAG-CBOR).
//! - [`JobId`]: the CID of a job's spec, requester and submission time.
//! - [`NodeId`] / [`NodeKey`]: a node's ed25519 identity, printed the way
//!   libp2p prints the node's `PeerId`.
//! - [`Signed`]: an envelope holding a value's canonical bytes and its
//!   signer's signature, bound to the kind of message ([`SignedKind`]).
//!
//! ```
//! use protocol::id::{NodeKey, Signed, SignedKind};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Hello { text: String }
//! impl SignedKind for Hello { const KIND: &'static str = "hello"; }
//!
//! // Keys come from the caller: this crate never draws randomness itself.
//! let key = NodeKey::from_secret_bytes([7; 32]);
//! let signed = Signed::sign(&key, &Hello { text: "hi".into() })?;
//! assert_eq!(signed.signer(), &key.node_id());
//! assert_eq!(signed.verify(1024)?, Hello { text: "hi".into() });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod canonical;
mod content_id;
mod job_id;
mod node;
mod signed;

pub(crate) use canonical::decode;
pub use canonical::{
    DecodeError, EncodeError, from_canonical, from_canonical_ignoring_unknown, to_canonical,
};
pub use content_id::{BLAKE3, ContentCidError, ContentKind, DAG_CBOR, RAW, blake3_cid, content_of};
pub use job_id::{ExecutionId, JobId, JobIdError};
pub use node::{NodeId, NodeIdError, NodeKey};
pub use signed::{Signed, SignedKind, VerifyError};

/// Serde adapter that writes a CID as its string form (`bafk...`), so job
/// files, JSON output and canonical encodings all carry the same text.
///
/// Use it with `#[serde(with = "crate::id::cid_string")]` on a [`cid::Cid`]
/// field. Any CID the `cid` crate parses is accepted; callers that need a
/// particular codec or hash check it themselves.
pub mod cid_string {
    use cid::Cid;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the CID's default string form (base32 for CIDv1).
    pub fn serialize<S: Serializer>(cid: &Cid, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&cid.to_string())
    }

    /// Reads a CID from its string form.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Cid, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
