//! CIDv1 with a BLAKE3 multihash: the content ids of blobs, directories and
//! jobs.
//!
//! BLAKE3 because iroh-blobs verifies BLAKE3 while streaming: the CID of a
//! blob carries exactly the hash iroh needs to fetch it.

use cid::Cid;
use cid::multihash::Multihash;

/// Multicodec of raw bytes (a blob): its CIDs print as `bafkr4i...`.
pub const RAW: u64 = 0x55;
/// Multicodec of DAG-CBOR (a job, a directory manifest): its CIDs print as
/// `bafyr4i...`.
pub const DAG_CBOR: u64 = 0x71;
/// Multihash code of BLAKE3 with a 32-byte digest.
pub const BLAKE3: u64 = 0x1e;

/// The CIDv1 of `bytes` under `codec` ([`RAW`] or [`DAG_CBOR`]), hashed with
/// BLAKE3 (32-byte digest).
///
/// ```
/// use protocol::id::{blake3_cid, RAW};
/// let cid = blake3_cid(RAW, b"hello");
/// assert!(cid.to_string().starts_with("bafkr4i"));
/// ```
pub fn blake3_cid(codec: u64, bytes: &[u8]) -> Cid {
    cid_of_digest(codec, blake3::hash(bytes).as_bytes())
}

/// The CIDv1 under `codec` of content whose BLAKE3 digest is `digest`.
pub(crate) fn cid_of_digest(codec: u64, digest: &[u8; 32]) -> Cid {
    let hash =
        Multihash::wrap(BLAKE3, digest).expect("a 32-byte digest fits the 64-byte multihash");
    Cid::new_v1(codec, hash)
}

/// Multihash code of sha2-256, the hash of IPFS content.
const SHA2_256: u64 = 0x12;

/// What a content CID names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContentKind {
    /// A file: the blob is the file's bytes ([`RAW`]).
    File,
    /// A directory: the blob is its DAG-CBOR manifest ([`DAG_CBOR`]).
    Dir,
}

/// Why a CID names no content of this network. The one rule, for job files
/// and flags (`job::rules`) and for the store (`storage::cid`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentCidError {
    /// Not hashed with BLAKE3; IPFS's sha2-256 CIDs say so by name.
    #[error(
        "`{cid}` uses the {hash} hash: this network addresses content by BLAKE3 (bafkr4i... \
         for a file, bafyr4i... for a folder); {}",
        if *.ipfs { "sha2-256 CIDs (Qm..., bafybei...) are IPFS content: add the data with `skrei add` and use the CID it prints" } else { "add the data with `skrei add` and use the CID it prints" }
    )]
    NotBlake3 {
        /// The CID.
        cid: String,
        /// Its hash, named.
        hash: String,
        /// Whether it is IPFS's sha2-256.
        ipfs: bool,
    },
    /// A BLAKE3 digest of the wrong length.
    #[error("`{cid}` has a BLAKE3 digest of {len} bytes; BLAKE3 CIDs carry 32")]
    DigestLength {
        /// The CID.
        cid: String,
        /// Its digest's length.
        len: usize,
    },
    /// Neither a file nor a folder.
    #[error(
        "`{cid}` has codec {codec:#x}, neither a file (raw, 0x55) nor a folder (dag-cbor, \
         0x71): add the data with `skrei add` and use the CID it prints"
    )]
    Codec {
        /// The CID.
        cid: String,
        /// Its codec.
        codec: u64,
    },
}

/// What `cid` names, and its BLAKE3 digest, when it is content of this
/// network: a BLAKE3 CID of a file or a folder.
///
/// ```
/// use protocol::id::{blake3_cid, content_of, ContentKind, RAW};
/// let (kind, _) = content_of(&blake3_cid(RAW, b"hello")).unwrap();
/// assert_eq!(kind, ContentKind::File);
/// ```
pub fn content_of(cid: &Cid) -> Result<(ContentKind, [u8; 32]), ContentCidError> {
    let mh = cid.hash();
    if mh.code() != BLAKE3 {
        let hash = match mh.code() {
            SHA2_256 => "sha2-256".to_string(),
            other => format!("multihash {other:#x}"),
        };
        return Err(ContentCidError::NotBlake3 {
            cid: cid.to_string(),
            hash,
            ipfs: mh.code() == SHA2_256,
        });
    }
    let digest: [u8; 32] = mh
        .digest()
        .try_into()
        .map_err(|_| ContentCidError::DigestLength {
            cid: cid.to_string(),
            len: mh.digest().len(),
        })?;
    let kind = match cid.codec() {
        RAW => ContentKind::File,
        DAG_CBOR => ContentKind::Dir,
        codec => {
            return Err(ContentCidError::Codec {
                cid: cid.to_string(),
                codec,
            });
        }
    };
    Ok((kind, digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert!(blake3_cid(RAW, b"").to_string().starts_with("bafkr4i"));
        assert!(
            blake3_cid(DAG_CBOR, &[0xa0])
                .to_string()
                .starts_with("bafyr4i")
        );
    }

    #[test]
    fn known_value() {
        // BLAKE3("") = af1349b9...; the string was computed independently
        // (Python: "b" + base32(01 55 1e 20 || digest), lower case, unpadded).
        let cid = blake3_cid(RAW, b"");
        assert_eq!(cid.codec(), RAW);
        assert_eq!(cid.hash().code(), BLAKE3);
        assert_eq!(cid.hash().digest(), blake3::hash(b"").as_bytes().as_slice());
        assert_eq!(
            cid.to_string(),
            "bafkr4ifpcne3t5pzugtkaqcn5i3nzskjtpfslsnnyejlpte2spfoihzsmi"
        );
        assert_eq!(cid.to_string().parse::<Cid>().unwrap(), cid);
    }
}
