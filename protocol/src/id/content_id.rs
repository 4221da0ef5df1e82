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
