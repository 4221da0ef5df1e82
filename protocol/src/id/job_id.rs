//! Job ids (R-JOB-3) and execution ids.

use std::fmt;
use std::str::FromStr;

use cid::{Cid, Version};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::canonical::{EncodeError, to_canonical};
use super::content_id::{BLAKE3, DAG_CBOR, cid_of_digest};
use super::node::NodeId;
use crate::job::JobSpec;

/// A job's id: the CIDv1 (DAG-CBOR, BLAKE3) of the canonical encoding of
/// its spec, its requester and its submission time (R-JOB-3).
///
/// The id names exactly one job, and nobody can announce another job under
/// it: a receiver recomputes it from the announcement. It prints, parses and
/// serialises as the CID string, `bafyr4i...`.
///
/// ```
/// use protocol::id::JobId;
/// let id: JobId = "bafyr4ibqircjzxxtlmpihl2tvww3el3gfnrox45fcjj33ss6ztir7aonpi".parse()?;
/// assert_eq!(id.to_string(), "bafyr4ibqircjzxxtlmpihl2tvww3el3gfnrox45fcjj33ss6ztir7aonpi");
/// # Ok::<(), protocol::id::JobIdError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId {
    /// The BLAKE3 digest: everything else in the CID is fixed, so the id is
    /// 32 bytes (cheap to copy, hash and use as a map key).
    digest: [u8; 32],
}

/// What a job id is computed from, in this field order and encoding. Changing
/// it changes every job id.
#[derive(Serialize)]
struct JobIdentity<'a> {
    spec: &'a JobSpec,
    requester: &'a NodeId,
    submitted_at_ms: u64,
}

/// Why text is not a job id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobIdError {
    /// Not a CID at all.
    #[error("`{input}` is not a job id: {reason}")]
    NotACid {
        /// The rejected text (shortened).
        input: String,
        /// What the CID parser reported.
        reason: String,
    },
    /// A CID, but not of the kind job ids are.
    #[error(
        "`{input}` is a CID but not a job id: job ids are CIDv1 of DAG-CBOR hashed with \
         BLAKE3 (they start with `bafyr4i`), this one is {found}"
    )]
    WrongKind {
        /// The rejected text.
        input: String,
        /// What kind of CID it is instead.
        found: String,
    },
}

impl JobId {
    /// The id of the job `spec` submitted by `requester` at `submitted_at_ms`
    /// (milliseconds since the Unix epoch, read by the caller).
    pub fn compute(
        spec: &JobSpec,
        requester: &NodeId,
        submitted_at_ms: u64,
    ) -> Result<JobId, EncodeError> {
        let bytes = to_canonical(&JobIdentity {
            spec,
            requester,
            submitted_at_ms,
        })?;
        Ok(JobId {
            digest: *blake3::hash(&bytes).as_bytes(),
        })
    }

    /// The BLAKE3 digest the id is made of.
    pub(crate) fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The id as a CID.
    pub fn cid(&self) -> Cid {
        cid_of_digest(DAG_CBOR, &self.digest)
    }

    /// A job id from a CID, if it is of the job-id kind (see [`FromStr`]).
    pub fn from_cid(cid: Cid) -> Result<JobId, JobIdError> {
        let hash = cid.hash();
        let problem = if cid.version() != Version::V1 {
            Some("a CIDv0".to_string())
        } else if cid.codec() != DAG_CBOR {
            Some(format!("of codec 0x{:x}", cid.codec()))
        } else if hash.code() != BLAKE3 || hash.size() != 32 {
            Some(format!(
                "hashed with multihash 0x{:x} ({} bytes)",
                hash.code(),
                hash.size()
            ))
        } else {
            None
        };
        match problem {
            Some(found) => Err(JobIdError::WrongKind {
                input: cid.to_string(),
                found,
            }),
            None => Ok(JobId {
                digest: hash
                    .digest()
                    .try_into()
                    .expect("a 32-byte BLAKE3 digest, checked above"),
            }),
        }
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.cid(), f)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({})", self.cid())
    }
}

impl FromStr for JobId {
    type Err = JobIdError;

    /// Parses a CID string and checks it is a CIDv1 of DAG-CBOR with a 32-byte
    /// BLAKE3 hash. Any multibase the `cid` crate reads is accepted here; the
    /// canonical wire decoding accepts only the `bafy...` form this type
    /// writes.
    fn from_str(s: &str) -> Result<JobId, JobIdError> {
        let cid: Cid = s.parse().map_err(|e: cid::Error| JobIdError::NotACid {
            input: s.chars().take(100).collect(),
            reason: e.to_string(),
        })?;
        JobId::from_cid(cid)
    }
}

impl Serialize for JobId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::cid_string::serialize(&self.cid(), s)
    }
}

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JobId, D::Error> {
        let cid = super::cid_string::deserialize(d)?;
        JobId::from_cid(cid).map_err(serde::de::Error::custom)
    }
}

/// Names one attempt to run a job on one node: the requester numbers its
/// awards, and every message about that attempt (result, decline) echoes
/// the number, so a late answer to an earlier award is recognised as such.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ExecutionId(pub u64);

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{}", self.0)
    }
}

#[cfg(test)]
mod tests {

    use proptest::prelude::*;

    use super::*;
    use crate::id::{NodeKey, RAW, from_canonical};

    pub(crate) fn spec(image: &str) -> JobSpec {
        crate::job::test_support::echo_job(image)
    }

    fn requester(seed: u8) -> NodeId {
        NodeKey::from_secret_bytes([seed; 32]).node_id()
    }

    #[test]
    fn pinned_and_prints_bafyr4i() {
        let id = JobId::compute(&spec("ubuntu:24.04"), &requester(1), 1_700_000_000_000).unwrap();
        let text = id.to_string();
        assert!(text.starts_with("bafyr4i"), "{text}");
        // Pins the identity encoding: changing it changes every job id.
        assert_eq!(
            text,
            "bafyr4ibqircjzxxtlmpihl2tvww3el3gfnrox45fcjj33ss6ztir7aonpi"
        );
        assert_eq!(text.parse::<JobId>().unwrap(), id);
    }

    #[test]
    fn changes_with_each_input_and_only_then() {
        let base = JobId::compute(&spec("ubuntu:24.04"), &requester(1), 1000).unwrap();
        assert_eq!(
            JobId::compute(&spec("ubuntu:24.04"), &requester(1), 1000).unwrap(),
            base
        );
        assert_ne!(
            JobId::compute(&spec("ubuntu:22.04"), &requester(1), 1000).unwrap(),
            base
        );
        assert_ne!(
            JobId::compute(&spec("ubuntu:24.04"), &requester(2), 1000).unwrap(),
            base
        );
        assert_ne!(
            JobId::compute(&spec("ubuntu:24.04"), &requester(1), 1001).unwrap(),
            base
        );
    }

    #[test]
    fn rejects_other_cids() {
        let raw = crate::id::blake3_cid(RAW, b"x").to_string();
        let same = crate::id::blake3_cid(DAG_CBOR, b"x");
        assert_eq!(JobId::from_cid(same).unwrap().cid(), same);
        assert!(matches!(
            raw.parse::<JobId>(),
            Err(JobIdError::WrongKind { .. })
        ));
        // CIDv0 (sha2-256, dag-pb).
        let v0 = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";
        let err = v0.parse::<JobId>().unwrap_err();
        assert!(err.to_string().contains("bafyr4i"), "{err}");
        // DAG-CBOR with sha2-256.
        let sha256 = cid::multihash::Multihash::wrap(0x12, &[7; 32]).unwrap();
        let sha = Cid::new_v1(DAG_CBOR, sha256).to_string();
        assert!(sha.starts_with("bafyrei"), "{sha}");
        assert!(matches!(
            sha.parse::<JobId>(),
            Err(JobIdError::WrongKind { .. })
        ));
        assert!(matches!(
            "hello".parse::<JobId>(),
            Err(JobIdError::NotACid { .. })
        ));
    }

    #[test]
    fn wire_form_is_the_string_and_canonical() {
        let id = JobId::compute(&spec("ubuntu:24.04"), &requester(1), 5).unwrap();
        let bytes = to_canonical(&id).unwrap();
        assert_eq!(from_canonical::<JobId>(&bytes, 200).unwrap(), id);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{id}\""));
        // The same CID in base58 parses, but is not the canonical wire form.
        let z = id
            .cid()
            .to_string_of_base(cid::multibase::Base::Base58Btc)
            .unwrap();
        assert_eq!(z.parse::<JobId>().unwrap(), id);
        let z_bytes = to_canonical(&z).unwrap();
        assert!(from_canonical::<JobId>(&z_bytes, 200).is_err());
    }

    proptest! {
        #[test]
        fn text_round_trip(at in any::<u64>(), seed in any::<u8>(), image in "[a-z]{1,20}") {
            let id = JobId::compute(&spec(&image), &requester(seed), at).unwrap();
            prop_assert_eq!(id.to_string().parse::<JobId>().unwrap(), id);
        }

        #[test]
        fn junk_never_panics(text in "\\PC{0,80}", bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = text.parse::<JobId>();
            let _ = from_canonical::<JobId>(&bytes, 200);
        }
    }
}
