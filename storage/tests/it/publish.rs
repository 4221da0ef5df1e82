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
    let published = publish(&store, &dir, &Publisher::Local, Some("j-1"), None)
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
    let published = publish(&store, &dir, &publisher, Some("j-2"), None)
        .await
        .unwrap();
    assert_eq!(published.path.as_deref(), Some(out.join("j-2").as_path()));
    assert_same_tree(&dir, &out.join("j-2"));
    // Without a job id the CID names the folder.
    let by_cid = publish(&store, &dir, &publisher, None, None).await.unwrap();
    assert_eq!(by_cid.cid, published.cid);
    assert_same_tree(&dir, &out.join(published.cid.to_string()));
    // Never overwrites, never leaves PATH.
    assert!(matches!(
        publish(&store, &dir, &publisher, Some("j-2"), None).await,
        Err(PublishError::Dir(_))
    ));
    assert!(matches!(
        publish(&store, &dir, &publisher, Some("../escape"), None).await,
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
    let err = publish(&store, &dir, &Publisher::Local, None, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exitCode"), "{err}");
    std::fs::write(dir.join("exitCode"), b"1").unwrap();
    let missing = Publisher::Dir(DirPublisher {
        path: tmp.path().join("nope").to_str().unwrap().into(),
    });
    assert!(matches!(
        publish(&store, &dir, &missing, None, None).await,
        Err(PublishError::DirMissing { .. })
    ));
    let s3 = Publisher::S3(S3Publisher {
        bucket: "b".into(),
        key: String::new(),
        endpoint: None,
        region: None,
    });
    assert!(matches!(
        publish(&store, &dir, &s3, None, None).await,
        Err(PublishError::S3Unconfigured)
    ));
    store.shutdown().await;
}

/// moto's S3 server on a loopback port, stopped on drop.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Moto {
    /// `None` when moto is not installed, unless `SKREI_REQUIRE_S3=1` (CI),
    /// where its absence fails the test.
    fn start() -> Option<Moto> {
        use std::io::BufRead;
        let spawned = std::process::Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", "0"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let required = std::env::var("SKREI_REQUIRE_S3").is_ok_and(|v| v == "1");
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) if !required => {
                eprintln!("skipping: cannot start moto ({e}); `pip install 'moto[server]'`");
                return None;
            }
            Err(e) => panic!("SKREI_REQUIRE_S3=1 but moto does not start: {e}"),
        };
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut endpoint = None;
        let mut lines = stderr.lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(i) = line.find("http://127.0.0.1:") {
                endpoint = Some(line[i..].trim().to_string());
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        match endpoint {
            Some(endpoint) => Some(Moto { child, endpoint }),
            None if !required => {
                eprintln!("skipping: moto did not start; `pip install 'moto[server]'`");
                let _ = child.kill();
                let _ = child.wait();
                None
            }
            None => panic!("SKREI_REQUIRE_S3=1 but moto did not start"),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// R-VOL-2: the s3 publisher uploads the result tree to the node's
// S3-compatible endpoint (moto on loopback), byte for byte; a job cannot
// redirect the node's credentials to another endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_publisher_round_trip() {
    let Some(moto) = Moto::start() else { return };
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
    })
    .unwrap();
    let publisher = Publisher::S3(S3Publisher {
        bucket: "results-bucket".into(),
        key: "runs".into(),
        endpoint: None,
        region: None,
    });
    let published = publish(&store, &dir, &publisher, Some("j-3"), Some(&client))
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
    let err = publish(&store, &dir, &hostile, Some("j-4"), Some(&client))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::S3(S3Error::EndpointNotAllowed { .. })),
        "{err}"
    );
    let missing_bucket = Publisher::S3(S3Publisher {
        bucket: "no-such-bucket".into(),
        key: String::new(),
        endpoint: None,
        region: None,
    });
    let err = publish(&store, &dir, &missing_bucket, Some("j-5"), Some(&client))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no-such-bucket"), "{err}");
    store.shutdown().await;
}
