//! Results stored as one directory CID and published (R-VOL-2).

use std::path::Path;

use protocol::job::{DirPublisher, Publisher, S3Publisher};
use storage::publish::{PublishError, publish};
use storage::store::{Store, StoreConfig};

use crate::fixtures::assert_same_tree;

fn results(dir: &Path) {
    std::fs::create_dir_all(dir.join("outputs/nested")).unwrap();
    std::fs::write(dir.join("stdout"), b"hello\n").unwrap();
    std::fs::write(dir.join("stderr"), b"").unwrap();
    std::fs::write(dir.join("exitCode"), b"0").unwrap();
    std::fs::write(dir.join("network.log"), b"{\"allowed\":true}\n").unwrap();
    std::fs::write(dir.join("outputs/nested/result.csv"), b"a,b\n1,2\n").unwrap();
}

// R-VOL-2: `local` keeps the result in the store under one directory CID
// that lists stdout, stderr, exitCode, network.log and the outputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_publisher_keeps_one_cid() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path().join("node")))
        .await
        .unwrap();
    let dir = tmp.path().join("results");
    results(&dir);
    let published = publish(&store, &dir, &Publisher::Local, Some("j-1"))
        .await
        .unwrap();
    assert!(published.cid.to_string().starts_with("bafyr4i"));
    assert_eq!(published.path, None);
    assert!(store.has(&published.cid).await.unwrap());
    let manifest = store.manifest_of(&published.cid).await.unwrap();
    let names: Vec<_> = manifest.entries.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["exitCode", "network.log", "outputs", "stderr", "stdout"]
    );
    // `skrei job get` writes the same layout back.
    let got = tmp.path().join("got");
    store.export(&published.cid, &got).await.unwrap();
    assert_same_tree(&dir, &got);
    store.shutdown().await;
}

// R-VOL-2: `dir:PATH` writes the tree to PATH/<job id>, next to the CID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dir_publisher_writes_the_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path().join("node")))
        .await
        .unwrap();
    let dir = tmp.path().join("results");
    results(&dir);
    let out = tmp.path().join("published");
    std::fs::create_dir(&out).unwrap();
    let publisher = Publisher::Dir(DirPublisher {
        path: out.to_str().unwrap().into(),
    });
    let published = publish(&store, &dir, &publisher, Some("j-2"))
        .await
        .unwrap();
    assert_eq!(published.path.as_deref(), Some(out.join("j-2").as_path()));
    assert_same_tree(&dir, &out.join("j-2"));
    // Without a job id the CID names the folder.
    let by_cid = publish(&store, &dir, &publisher, None).await.unwrap();
    assert_eq!(by_cid.cid, published.cid);
    assert_same_tree(&dir, &out.join(published.cid.to_string()));
    // Never overwrites, never leaves PATH.
    assert!(matches!(
        publish(&store, &dir, &publisher, Some("j-2")).await,
        Err(PublishError::Dir(_))
    ));
    assert!(matches!(
        publish(&store, &dir, &publisher, Some("../escape")).await,
        Err(PublishError::JobId(_))
    ));
    store.shutdown().await;
}

// R-VOL-2: incomplete results and publishers this node cannot serve are
// clear errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path().join("node")))
        .await
        .unwrap();
    let dir = tmp.path().join("results");
    results(&dir);
    std::fs::remove_file(dir.join("exitCode")).unwrap();
    let err = publish(&store, &dir, &Publisher::Local, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exitCode"), "{err}");
    std::fs::write(dir.join("exitCode"), b"1").unwrap();
    let missing = Publisher::Dir(DirPublisher {
        path: tmp.path().join("nope").to_str().unwrap().into(),
    });
    assert!(matches!(
        publish(&store, &dir, &missing, None).await,
        Err(PublishError::DirMissing { .. })
    ));
    let s3 = Publisher::S3(S3Publisher {
        bucket: "b".into(),
        key: String::new(),
        endpoint: None,
        region: None,
    });
    assert!(matches!(
        publish(&store, &dir, &s3, None).await,
        Err(PublishError::S3Unsupported)
    ));
    store.shutdown().await;
}
