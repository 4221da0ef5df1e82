//! Byte budgets on fetch and export (R-SEC-5), and exports that leave
//! nothing half-written.

use std::path::Path;

use storage::store::{ExportError, FetchError, Store, StoreConfig};

use crate::fixtures::random_file;
use crate::provider::Provider;

const KIB: u64 = 1024;

/// A folder of `links` hard links to one file of `size` bytes.
fn hard_links(root: &Path, links: usize, size: usize) {
    std::fs::create_dir_all(root).unwrap();
    let first = root.join("link-0");
    random_file(&first, size, 3);
    for i in 1..links {
        std::fs::hard_link(&first, root.join(format!("link-{i}"))).unwrap();
    }
}

/// Entries of `dir` whose names start with `.`: partial exports.
fn hidden(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

// R-SEC-5: 300 hard links to one file are stored once, but would be
// written 300 times: an export over its budget is refused before anything
// is written, and one within it writes every path.
#[tokio::test]
async fn r_sec_5_an_export_over_its_budget_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("links");
    hard_links(&tree, 300, 64 * KIB as usize);
    let store = Store::open(StoreConfig::new(tmp.path().join("store")))
        .await
        .unwrap();
    let cid = store.add_path(&tree).await.unwrap();
    // Stored once: the blob store holds one copy of the bytes.
    let manifest = store.manifest_of(&cid).await.unwrap();
    let blobs: std::collections::BTreeSet<_> = manifest.entries.values().map(|e| e.cid).collect();
    assert_eq!(blobs.len(), 1);

    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let target = out.join("tree");
    let budget = 100 * 64 * KIB;
    let err = store.export(&cid, &target, budget).await.unwrap_err();
    match err {
        ExportError::TooLarge { bytes, max, .. } => {
            assert_eq!(bytes, 300 * 64 * KIB);
            assert_eq!(max, budget);
        }
        other => panic!("expected TooLarge, got {other}"),
    }
    assert!(!target.exists());
    assert!(hidden(&out).is_empty(), "{:?}", hidden(&out));

    let report = store.export(&cid, &target, 300 * 64 * KIB).await.unwrap();
    assert_eq!(report.bytes, 300 * 64 * KIB);
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 300);
    assert!(hidden(&out).is_empty());
    store.shutdown().await;
}

/// A store whose second file write fails, as a disk filling up would.
struct FailingSecondWrite {
    store: Store,
    writes: std::sync::atomic::AtomicUsize,
}

impl storage::export::Source for FailingSecondWrite {
    async fn manifest(
        &self,
        content: storage::cid::Content,
    ) -> Result<storage::manifest::Manifest, storage::store::StoreError> {
        storage::export::Source::manifest(&self.store, content).await
    }

    async fn file_size(
        &self,
        content: storage::cid::Content,
    ) -> Result<u64, storage::store::StoreError> {
        storage::export::Source::file_size(&self.store, content).await
    }

    async fn write_file(
        &self,
        content: storage::cid::Content,
        target: &Path,
        executable: bool,
    ) -> Result<u64, ExportError> {
        let n = self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n == 1 {
            return Err(ExportError::Io {
                cid: content.cid(),
                target: target.to_owned(),
                source: std::io::Error::other("no space left (simulated)"),
            });
        }
        storage::export::Source::write_file(&self.store, content, target, executable).await
    }
}

// An export that fails half-way (the second of three files) leaves
// neither the target nor a partial tree behind.
#[tokio::test]
async fn an_export_that_fails_half_way_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    std::fs::create_dir_all(source.join("a")).unwrap();
    for (name, text) in [("a/one.txt", "one"), ("b.txt", "two"), ("c.txt", "three")] {
        std::fs::write(source.join(name), text).unwrap();
    }
    let store = Store::open(StoreConfig::new(tmp.path().join("store")))
        .await
        .unwrap();
    let cid = store.add_path(&source).await.unwrap();
    let failing = FailingSecondWrite {
        store,
        writes: 0.into(),
    };
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let target = out.join("tree");
    let err = storage::export::export(&failing, &cid, &target, u64::MAX)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("simulated"), "{err}");
    assert!(!target.exists());
    assert!(hidden(&out).is_empty(), "{:?}", hidden(&out));
    // The same export with nothing failing writes the whole tree.
    storage::export::export(&failing.store, &cid, &target, u64::MAX)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(target.join("c.txt")).unwrap(),
        "three"
    );
    failing.store.shutdown().await;
}

// R-SEC-5: a fetch stops once the content passes its budget, with that
// reason; the same fetch within its budget completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_sec_5_a_fetch_over_its_budget_stops_with_that_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.bin");
    random_file(&big, 4 << 20, 9);
    let provider = Provider::start(&tmp.path().join("provider"), std::slice::from_ref(&big));
    let cid = provider.cids[0];
    let store = Store::open(StoreConfig::new(tmp.path().join("store")))
        .await
        .unwrap();
    let err = store
        .fetch(&cid, std::slice::from_ref(&provider.addr), None, 1 << 20)
        .await
        .unwrap_err();
    match &err {
        FetchError::TooLarge { max, .. } => assert_eq!(*max, 1 << 20),
        other => panic!("expected TooLarge, got {other}"),
    }
    assert!(err.to_string().contains("budget of 1048576 bytes"), "{err}");
    assert!(!store.has(&cid).await.unwrap());
    let report = store
        .fetch(&cid, std::slice::from_ref(&provider.addr), None, 4 << 20)
        .await
        .unwrap();
    assert_eq!(report.bytes_fetched, 4 << 20);
    store.shutdown().await;
}
