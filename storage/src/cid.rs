//! CIDs of skrei content: CIDv1 with a BLAKE3 multihash (R-VOL-3).
//!
//! A file is `raw` (`0x55`, prints `bafkr4i...`); a directory is the DAG-CBOR
//! manifest of its entries (`0x71`, prints `bafyr4i...`, see
//! [`crate::manifest`]). The 32-byte digest inside the CID is exactly the hash
//! iroh-blobs names and verifies the blob by, so a CID is all a node needs to
//! fetch and check content.
//!
//! ```
//! let cid = storage::cid::file_cid(blake3::hash(b"hello").into());
//! assert!(cid.to_string().starts_with("bafkr4i"));
//! let content = storage::cid::parse(&cid.to_string()).unwrap();
//! assert_eq!(content.kind, storage::cid::Kind::File);
//! ```

use cid::Cid;
use cid::multihash::Multihash;

/// The codes are the protocol's (job ids use the same CIDs): `raw` for a
/// file, `dag-cbor` for a directory manifest, BLAKE3 for the hash.
pub use protocol::id::{BLAKE3, DAG_CBOR, RAW};

/// What a CID names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A file: the blob is the file's bytes.
    File,
    /// A directory: the blob is a DAG-CBOR [`crate::manifest::Manifest`].
    Dir,
}

/// A parsed, fetchable CID: its kind and the BLAKE3 hash of its blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Content {
    pub kind: Kind,
    pub hash: [u8; 32],
}

impl Content {
    /// The CID that names this content.
    pub fn cid(&self) -> Cid {
        match self.kind {
            Kind::File => file_cid(self.hash),
            Kind::Dir => dir_cid(self.hash),
        }
    }

    /// The iroh-blobs hash of the blob.
    pub fn blob_hash(&self) -> iroh_blobs::Hash {
        iroh_blobs::Hash::from_bytes(self.hash)
    }
}

/// Why a CID cannot name content on this network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidError {
    #[error("`{input}` is not a CID: {reason}")]
    Syntax { input: String, reason: String },
    /// The protocol's rule for content CIDs ([`protocol::id::content_of`]).
    #[error(transparent)]
    Content(#[from] protocol::id::ContentCidError),
}

/// The CID of a file whose bytes hash to `hash`.
pub fn file_cid(hash: [u8; 32]) -> Cid {
    blake3_cid(RAW, hash)
}

/// The CID of a directory whose manifest bytes hash to `hash`.
pub fn dir_cid(hash: [u8; 32]) -> Cid {
    blake3_cid(DAG_CBOR, hash)
}

fn blake3_cid(codec: u64, hash: [u8; 32]) -> Cid {
    let mh = Multihash::<64>::wrap(BLAKE3, &hash).expect("32 bytes fit a 64-byte multihash");
    Cid::new_v1(codec, mh)
}

/// Parses a CID string (any valid CID) and checks that this network can fetch it.
pub fn parse(input: &str) -> Result<Content, CidError> {
    let trimmed = input.trim();
    let cid = Cid::try_from(trimmed).map_err(|e| CidError::Syntax {
        input: trimmed.chars().take(100).collect(),
        reason: e.to_string(),
    })?;
    content(&cid)
}

/// Checks that `cid` is a BLAKE3 CID of a file or directory.
pub fn content(cid: &Cid) -> Result<Content, CidError> {
    let (kind, hash) = protocol::id::content_of(cid)?;
    let kind = match kind {
        protocol::id::ContentKind::File => Kind::File,
        protocol::id::ContentKind::Dir => Kind::Dir,
    };
    Ok(Content { kind, hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    // R-VOL-3: the printed prefixes users see.
    #[test]
    fn prefixes() {
        let h: [u8; 32] = blake3::hash(b"x").into();
        assert!(file_cid(h).to_string().starts_with("bafkr4i"));
        assert!(dir_cid(h).to_string().starts_with("bafyr4i"));
    }

    // One CID scheme for the whole network: storage's CIDs of a digest are
    // the protocol's CIDs of the bytes.
    #[test]
    fn same_as_protocol() {
        let bytes = b"the same bytes";
        let h: [u8; 32] = blake3::hash(bytes).into();
        assert_eq!(file_cid(h), protocol::id::blake3_cid(RAW, bytes));
        assert_eq!(dir_cid(h), protocol::id::blake3_cid(DAG_CBOR, bytes));
    }

    #[test]
    fn round_trip() {
        let h: [u8; 32] = blake3::hash(b"hello").into();
        for cid in [file_cid(h), dir_cid(h)] {
            let c = parse(&format!(" {cid}\n")).unwrap();
            assert_eq!(c.hash, h);
            assert_eq!(c.cid(), cid);
        }
    }

    // R-VOL-3: IPFS CIDs parse but are refused with a message saying what to do.
    #[test]
    fn sha2_is_refused_clearly() {
        for ipfs in [
            "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
            "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
        ] {
            let err = parse(ipfs).unwrap_err();
            assert!(
                matches!(
                    err,
                    CidError::Content(protocol::id::ContentCidError::NotBlake3 { .. })
                ),
                "{err}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("sha2-256") && msg.contains("skrei add"),
                "{msg}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_junk_never_panics(s in "\\PC{0,80}") {
            let _ = parse(&s);
        }

        #[test]
        fn any_hash_round_trips(h in proptest::prelude::any::<[u8; 32]>()) {
            let c = parse(&file_cid(h).to_string()).unwrap();
            proptest::prop_assert_eq!((c.kind, c.hash), (Kind::File, h));
        }
    }

    #[test]
    fn junk_and_other_codecs() {
        assert!(matches!(parse("hello"), Err(CidError::Syntax { .. })));
        assert!(matches!(parse(""), Err(CidError::Syntax { .. })));
        let mh = Multihash::<64>::wrap(BLAKE3, &[0; 32]).unwrap();
        let dag_pb = Cid::new_v1(0x70, mh);
        assert!(matches!(
            parse(&dag_pb.to_string()),
            Err(CidError::Content(
                protocol::id::ContentCidError::Codec { .. }
            ))
        ));
        let short = Cid::new_v1(RAW, Multihash::<64>::wrap(BLAKE3, &[0; 16]).unwrap());
        assert!(matches!(
            parse(&short.to_string()),
            Err(CidError::Content(
                protocol::id::ContentCidError::DigestLength { .. }
            ))
        ));
    }
}
