//! Directory manifests: a directory is the DAG-CBOR map of its entries' names
//! to their CIDs, sizes and modes (R-VOL-2, R-VOL-3).
//!
//! The encoding is canonical (serde_ipld_dagcbor: sorted keys, one form per
//! value), so a tree has exactly one manifest and one CID. Child CIDs are
//! tag-42 links, so IPLD tools can walk the tree.
//!
//! A manifest arrives from the network, so [`Manifest::decode`] treats it as
//! hostile: every name must be a single path component (no `/`, `.`, `..`,
//! NUL, nor empty) and every child CID a BLAKE3 CID whose codec matches its
//! mode. `get` and input materialisation can then join names to a target
//! directory without escaping it.

use std::collections::BTreeMap;

use cid::Cid;
use serde::{Deserialize, Serialize};

use crate::cid::{self as cids, Content, Kind};

/// Largest manifest accepted from the network (about 100,000 entries).
pub const MAX_MANIFEST_BYTES: usize = 16 * 1024 * 1024;
/// Longest entry name, in bytes (the common file-system limit).
pub const MAX_NAME_BYTES: usize = 255;

/// One directory: entries by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub entries: BTreeMap<String, Entry>,
}

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// A `raw` CID for a file, a `dag-cbor` CID for a directory.
    pub cid: Cid,
    /// Bytes of the file, or the total of the files under the directory.
    pub size: u64,
    pub mode: Mode,
}

/// What an entry is; the executable bit is the only permission kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    #[serde(rename = "file")]
    File,
    #[serde(rename = "exec")]
    Executable,
    #[serde(rename = "dir")]
    Dir,
}

impl Mode {
    fn kind(self) -> Kind {
        match self {
            Mode::File | Mode::Executable => Kind::File,
            Mode::Dir => Kind::Dir,
        }
    }
}

/// Why bytes are not a valid manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("manifest is {0} bytes, more than the {MAX_MANIFEST_BYTES} accepted")]
    TooLarge(usize),
    #[error("manifest is not canonical DAG-CBOR: {0}")]
    Encoding(String),
    #[error("manifest entry name {name:?} is refused: {reason}")]
    Name { name: String, reason: &'static str },
    #[error("manifest entry {name:?}: {reason}")]
    Entry { name: String, reason: String },
}

/// Checks that `name` is one safe path component.
pub fn check_name(name: &str) -> Result<(), ManifestError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name == "." || name == ".." {
        "`.` and `..` would leave the directory"
    } else if name.contains('/') {
        "contains `/`"
    } else if name.contains('\0') {
        "contains NUL"
    } else if name.len() > MAX_NAME_BYTES {
        "longer than 255 bytes"
    } else {
        return Ok(());
    };
    Err(ManifestError::Name {
        name: name.chars().take(80).collect(),
        reason,
    })
}

impl Manifest {
    /// The canonical DAG-CBOR bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_ipld_dagcbor::to_vec(self).expect("a manifest always encodes")
    }

    /// Decodes and validates a manifest from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        let manifest: Manifest = serde_ipld_dagcbor::from_slice(bytes)
            .map_err(|e| ManifestError::Encoding(e.to_string()))?;
        for (name, entry) in &manifest.entries {
            check_name(name)?;
            let content = entry.content().map_err(|e| ManifestError::Entry {
                name: name.clone(),
                reason: e.to_string(),
            })?;
            if content.kind != entry.mode.kind() {
                return Err(ManifestError::Entry {
                    name: name.clone(),
                    reason: format!("mode {:?} does not match CID {}", entry.mode, entry.cid),
                });
            }
        }
        Ok(manifest)
    }

    /// Total bytes of the files under this directory, as the entries claim
    /// them. Saturates at `u64::MAX`: a manifest from the network may claim
    /// any sizes, and their sum must not overflow (a panic in debug builds).
    pub fn size(&self) -> u64 {
        self.entries
            .values()
            .fold(0u64, |total, e| total.saturating_add(e.size))
    }
}

impl Entry {
    /// The entry's fetchable content.
    pub fn content(&self) -> Result<Content, cids::CidError> {
        cids::content(&self.cid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(bytes: &[u8]) -> Entry {
        Entry {
            cid: cids::file_cid(blake3::hash(bytes).into()),
            size: bytes.len() as u64,
            mode: Mode::File,
        }
    }

    fn sample() -> Manifest {
        let mut m = Manifest::default();
        m.entries.insert("b.txt".into(), file(b"bb"));
        m.entries.insert("a".into(), file(b""));
        m.entries.insert("ünï 😀".into(), file(b"u"));
        m
    }

    #[test]
    fn round_trip_and_canonical() {
        let m = sample();
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
        // Insertion order does not matter: one tree, one encoding.
        let mut again = Manifest::default();
        for (k, v) in m.entries.iter().rev() {
            again.entries.insert(k.clone(), v.clone());
        }
        assert_eq!(again.encode(), bytes);
        assert_eq!(m.size(), 3);
    }

    // Pins the encoding: changing it changes every directory CID.
    #[test]
    fn golden_bytes() {
        let mut m = Manifest::default();
        m.entries.insert("a".into(), file(b""));
        let hex: String = m.encode().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "a167656e7472696573a16161a363636964d82a58250001551e20af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262646d6f64656466696c656473697a6500"
        );
    }

    // Hostile manifests must not make `get` write outside its target (R-VOL-2).
    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "/etc",
            "a\0b",
            &"x".repeat(256),
        ] {
            let mut m = Manifest::default();
            m.entries.insert(bad.to_string(), file(b"x"));
            let err = Manifest::decode(&m.encode()).unwrap_err();
            assert!(matches!(err, ManifestError::Name { .. }), "{bad:?}: {err}");
        }
    }

    /// Found while writing the fuzz target `manifest` (fuzz/regressions/
    /// manifest/size-overflow): claimed sizes whose sum overflows made
    /// `size()`, which `fetch` calls on every fetched directory, panic.
    #[test]
    fn claimed_sizes_that_overflow_saturate() {
        let mut m = Manifest::default();
        let mut big = file(b"x");
        big.size = u64::MAX;
        m.entries.insert("a".into(), big);
        m.entries.insert("b".into(), file(b"y"));
        let decoded = Manifest::decode(&m.encode()).unwrap();
        assert_eq!(decoded.size(), u64::MAX);
    }

    #[test]
    fn mode_must_match_codec() {
        let mut m = Manifest::default();
        let mut e = file(b"x");
        e.mode = Mode::Dir;
        m.entries.insert("x".into(), e);
        assert!(matches!(
            Manifest::decode(&m.encode()),
            Err(ManifestError::Entry { .. })
        ));
    }

    fn arb_entry() -> impl proptest::strategy::Strategy<Value = Entry> {
        use proptest::prelude::*;
        (any::<[u8; 32]>(), any::<u64>(), 0..3u8).prop_map(|(h, size, m)| match m {
            0 => Entry {
                cid: cids::file_cid(h),
                size,
                mode: Mode::File,
            },
            1 => Entry {
                cid: cids::file_cid(h),
                size,
                mode: Mode::Executable,
            },
            _ => Entry {
                cid: cids::dir_cid(h),
                size,
                mode: Mode::Dir,
            },
        })
    }

    proptest::proptest! {
        #[test]
        fn valid_manifests_round_trip(
            entries in proptest::collection::btree_map("[^/\\x00]{1,40}", arb_entry(), 0..20)
        ) {
            let m = Manifest { entries: entries.into_iter().filter(|(k, _)| check_name(k).is_ok()).collect() };
            let bytes = m.encode();
            proptest::prop_assert_eq!(Manifest::decode(&bytes).unwrap(), m);
        }

        #[test]
        fn decoding_junk_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = Manifest::decode(&bytes);
        }

        #[test]
        fn accepted_names_are_one_component(name in "\\PC{0,20}") {
            if check_name(&name).is_ok() {
                let p = std::path::Path::new(&name);
                let mut parts = p.components();
                let first = parts.next();
                proptest::prop_assert!(matches!(first, Some(std::path::Component::Normal(_))));
                proptest::prop_assert!(parts.next().is_none());
            }
        }
    }

    #[test]
    fn junk_is_an_error() {
        for junk in [&b""[..], b"\xff", b"\xa1\x00\x00", b"hello"] {
            assert!(Manifest::decode(junk).is_err());
        }
    }
}
