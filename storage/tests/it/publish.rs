//! Results stored as one directory CID and published (R-VOL-2).

use std::path::Path;

use protocol::job::{DirPublisher, Publisher, S3Publisher};
use storage::publish::{PublishError, publish};
use storage::s3::{S3Client, S3Config, S3Error};
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
    let published = publish(&store, &dir, &Publisher::Local, Some("j-1"), None, &[])
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
    store.export(&published.cid, &got, u64::MAX).await.unwrap();
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
    let allowed = [out.clone()];
    let published = publish(&store, &dir, &publisher, Some("j-2"), None, &allowed)
        .await
        .unwrap();
    assert_eq!(published.path.as_deref(), Some(out.join("j-2").as_path()));
    assert_same_tree(&dir, &out.join("j-2"));
    // Without a job id the CID names the folder.
    let by_cid = publish(&store, &dir, &publisher, None, None, &allowed)
        .await
        .unwrap();
    assert_eq!(by_cid.cid, published.cid);
    assert_same_tree(&dir, &out.join(published.cid.to_string()));
    // Never overwrites, never leaves PATH.
    assert!(matches!(
        publish(&store, &dir, &publisher, Some("j-2"), None, &allowed).await,
        Err(PublishError::Dir(_))
    ));
    assert!(matches!(
        publish(&store, &dir, &publisher, Some("../escape"), None, &allowed).await,
        Err(PublishError::JobId(_))
    ));
    store.shutdown().await;
}

// R-SEC-2: a `dir` publisher writes only under the folders the operator
// lists: elsewhere, through `..`, or through a symlink out of a listed
// folder, it is refused before anything is stored or written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_sec_2_dir_publisher_stays_in_the_listed_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path().join("node")))
        .await
        .unwrap();
    let dir = tmp.path().join("results");
    results(&dir);
    let listed = tmp.path().join("published");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(listed.join("team")).unwrap();
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, listed.join("link")).unwrap();
    let to = |path: &Path| {
        Publisher::Dir(DirPublisher {
            path: path.to_str().unwrap().into(),
        })
    };
    let allowed = [listed.clone()];
    for refused in [
        elsewhere.clone(),
        listed.join("link"),
        listed.join("team/../../elsewhere"),
    ] {
        let err = publish(&store, &dir, &to(&refused), Some("j-x"), None, &allowed)
            .await
            .unwrap_err();
        assert!(
            matches!(err, PublishError::DirNotAllowed { .. }),
            "{}: {err}",
            refused.display()
        );
        assert!(err.to_string().contains("--publish-dir"), "{err}");
    }
    // Without --publish-dir, no folder at all.
    assert!(matches!(
        publish(&store, &dir, &to(&listed), Some("j-x"), None, &[]).await,
        Err(PublishError::DirNotAllowed { .. })
    ));
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert!(!listed.join("j-x").exists());
    // A folder under a listed one is fine.
    let published = publish(
        &store,
        &dir,
        &to(&listed.join("team")),
        Some("j-y"),
        None,
        &allowed,
    )
    .await
    .unwrap();
    assert_same_tree(&dir, &listed.join("team/j-y"));
    assert!(published.path.unwrap().ends_with("team/j-y"));
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
    let err = publish(&store, &dir, &Publisher::Local, None, None, &[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exitCode"), "{err}");
    std::fs::write(dir.join("exitCode"), b"1").unwrap();
    let missing = Publisher::Dir(DirPublisher {
        path: tmp.path().join("nope").to_str().unwrap().into(),
    });
    assert!(matches!(
        publish(&store, &dir, &missing, None, None, &[tmp.path().into()]).await,
        Err(PublishError::DirMissing { .. })
    ));
    let s3 = Publisher::S3(S3Publisher {
        bucket: "b".into(),
        key: String::new(),
        endpoint: None,
        region: None,
    });
    assert!(matches!(
        publish(&store, &dir, &s3, None, None, &[]).await,
        Err(PublishError::S3Unconfigured)
    ));
    store.shutdown().await;
}

// R-VOL-2: the s3 publisher uploads the result tree to the node's
// S3-compatible endpoint (moto on loopback), byte for byte; a job cannot
// redirect the node's credentials to another endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_publisher_round_trip() {
    let Some(moto) = testkit::moto::Moto::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path().join("node")))
        .await
        .unwrap();
    let dir = tmp.path().join("results");
    results(&dir);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let bucket_url = format!("{}/results-bucket", moto.endpoint);
    let created = http.put(&bucket_url).send().await.unwrap();
    assert!(created.status().is_success(), "{created:?}");

    let client = S3Client::new(S3Config {
        endpoint: moto.endpoint.clone(),
        region: "us-east-1".into(),
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
        session_token: None,
    })
    .unwrap();
    let publisher = Publisher::S3(S3Publisher {
        bucket: "results-bucket".into(),
        key: "runs".into(),
        endpoint: None,
        region: None,
    });
    let published = publish(&store, &dir, &publisher, Some("j-3"), Some(&client), &[])
        .await
        .unwrap();
    assert_eq!(
        published.url.as_deref(),
        Some("s3://results-bucket/runs/j-3/")
    );
    assert!(store.has(&published.cid).await.unwrap());
    for rel in [
        "stdout",
        "stderr",
        "exitCode",
        "network.log",
        "outputs/nested/result.csv",
    ] {
        let got = client
            .get_object("results-bucket", &format!("runs/j-3/{rel}"))
            .await
            .unwrap();
        assert_eq!(got, std::fs::read(dir.join(rel)).unwrap(), "{rel}");
    }

    let hostile = Publisher::S3(S3Publisher {
        bucket: "results-bucket".into(),
        key: String::new(),
        endpoint: Some("http://169.254.169.254".into()),
        region: None,
    });
    let err = publish(&store, &dir, &hostile, Some("j-4"), Some(&client), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::S3(S3Error::EndpointNotAllowed { .. })),
        "{err}"
    );
    let other_region = Publisher::S3(S3Publisher {
        bucket: "results-bucket".into(),
        key: String::new(),
        endpoint: None,
        region: Some("eu-west-1".into()),
    });
    let err = publish(&store, &dir, &other_region, Some("j-4"), Some(&client), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::S3(S3Error::RegionNotServed { .. })),
        "{err}"
    );
    let missing_bucket = Publisher::S3(S3Publisher {
        bucket: "no-such-bucket".into(),
        key: String::new(),
        endpoint: None,
        region: None,
    });
    let err = publish(
        &store,
        &dir,
        &missing_bucket,
        Some("j-5"),
        Some(&client),
        &[],
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no-such-bucket"), "{err}");
    store.shutdown().await;
}
