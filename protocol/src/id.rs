//! Canonical encoding, CIDs, job ids and signed envelopes (R-JOB-3).
//!
//! STUB: replaced by the foundation's id/messages work.

/// Serde adapter that writes a CID as its string form (`bafk...`), so job
/// files, JSON output and canonical encodings all carry the same text.
pub mod cid_string {
    use cid::Cid;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(cid: &Cid, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&cid.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Cid, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
