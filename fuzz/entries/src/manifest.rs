//! Directory manifests as they arrive from another node (R-VOL-2):
//! `storage::manifest::Manifest::decode`.

use std::path::{Component, Path};

use storage::manifest::{Manifest, check_name};

/// Bytes fetched as a directory (target `manifest`): `Manifest::decode`,
/// then what the node does with a decoded manifest (its total size, each
/// entry's content).
///
/// Invariants: every accepted name is one normal path component, so joining
/// it to a folder cannot leave the folder; every entry's CID is fetchable
/// content of its mode; the manifest re-encodes to bytes that decode to it.
pub fn manifest(data: &[u8]) {
    let Ok(manifest) = Manifest::decode(data) else {
        return;
    };
    let _ = manifest.size();
    for (name, entry) in &manifest.entries {
        assert!(
            check_name(name).is_ok(),
            "decode accepted the name {name:?}"
        );
        let mut parts = Path::new(name).components();
        assert!(
            matches!(parts.next(), Some(Component::Normal(_))) && parts.next().is_none(),
            "the name {name:?} is not one path component"
        );
        entry
            .content()
            .unwrap_or_else(|e| panic!("decode accepted the entry {name:?}: {e}"));
    }
    let bytes = manifest.encode();
    assert_eq!(
        Manifest::decode(&bytes).as_ref(),
        Ok(&manifest),
        "a decoded manifest re-encodes to bytes that decode differently"
    );
}
