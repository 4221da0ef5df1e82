//! Content transfer between two stores in two processes (R-P2P-4, R-VOL-3).

use std::path::{Path, PathBuf};
use std::time::Duration;

use storage::store::{FetchError, Progress, Store, StoreConfig};
use tokio::sync::mpsc;

use crate::fixtures::{assert_same_tree, awkward_tree, file_hash, random_file, tree_size};
use crate::provider::Provider;

const MB: usize = 1024 * 1024;

async fn local_store(dir: &Path) -> Store {
    let mut config = StoreConfig::new(dir);
    // A killed provider shows as silence: give up on it quickly.
    config.stall_timeout = Duration::from_secs(2);
    Store::open(config).await.unwrap()
}

// R-P2P-4, R-VOL-3: a file and a nested directory (empty files and dirs,
// Unicode names, an executable, 100 MB) added in one process arrive
// byte-identical in another, by CID alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_and_tree_between_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    awkward_tree(&tree, Some(100 * MB));
    let single = tmp.path().join("single.txt");
    std::fs::write(&single, b"one file\n").unwrap();

    let provider = Provider::start(
        &tmp.path().join("provider"),
        &[single.clone(), tree.clone()],
    );
    let (file_cid, dir_cid) = (provider.cids[0], provider.cids[1]);
    assert!(file_cid.to_string().starts_with("bafkr4i"), "{file_cid}");
    assert!(dir_cid.to_string().starts_with("bafyr4i"), "{dir_cid}");

    let store = local_store(&tmp.path().join("fetcher")).await;
    assert!(!store.has(&dir_cid).await.unwrap());
    let (tx, mut rx) = mpsc::channel(64);
    let watcher = tokio::spawn(async move {
        let mut last = None;
        while let Some(p) = rx.recv().await {
            last = Some(p);
        }
        last
    });
    let report = store
        .fetch(
            &dir_cid,
            std::slice::from_ref(&provider.addr),
            Some(tx),
            u64::MAX,
        )
        .await
        .unwrap();
    let last: Progress = watcher.await.unwrap().expect("progress events");
    let tree_bytes = tree_size(&tree);
    assert_eq!(last.total, Some(tree_bytes));
    assert!(last.fetched >= tree_bytes, "{last:?}");
    assert_eq!(
        last.fetched, report.bytes_fetched,
        "the last event is the final count"
    );
    assert_eq!(report.bytes_present, 0);
    assert!(store.has(&dir_cid).await.unwrap());

    store
        .fetch(
            &file_cid,
            std::slice::from_ref(&provider.addr),
            None,
            u64::MAX,
        )
        .await
        .unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    store
        .export(&dir_cid, &out.join("tree"), u64::MAX)
        .await
        .unwrap();
    store
        .export(&file_cid, &out.join("single.txt"), u64::MAX)
        .await
        .unwrap();
    assert_same_tree(&tree, &out.join("tree"));
    assert_same_tree(&single, &out.join("single.txt"));

    // Fetching again moves nothing: everything is present.
    let again = store
        .fetch(
            &dir_cid,
            std::slice::from_ref(&provider.addr),
            None,
            u64::MAX,
        )
        .await
        .unwrap();
    assert_eq!(again.bytes_fetched, 0);
    assert_eq!(
        again.bytes_present,
        report.bytes_present + report.bytes_fetched
    );

    // Content complete in the store needs no provider.
    let local = store.fetch(&dir_cid, &[], None, u64::MAX).await.unwrap();
    assert_eq!(local.bytes_fetched, 0);

    // Exports never overwrite.
    assert!(
        store
            .export(&file_cid, &out.join("single.txt"), u64::MAX)
            .await
            .is_err()
    );
    provider.stop();
    store.shutdown().await;
}

/// Flips bytes in the stored data of every blob of at least `min` bytes
/// under a (stopped) provider's directory.
fn corrupt_blobs(dir: &Path, min: u64) -> usize {
    let mut n = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "data")
                && std::fs::metadata(&p).unwrap().len() >= min
            {
                let mut bytes = std::fs::read(&p).unwrap();
                let mid = bytes.len() / 2;
                for b in &mut bytes[mid..mid + 1024] {
                    *b ^= 0xff;
                }
                std::fs::write(&p, bytes).unwrap();
                n += 1;
            }
        }
    }
    n
}

// R-P2P-4: a provider whose stored bytes were corrupted on disk does not
// get them past the hash (iroh-blobs checks on the sending side too: it
// resets the stream); the fetch fails with it alone, and moves on to an
// honest provider when there is one. The receiver's own check is the
// next test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_provider_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("data.bin");
    random_file(&file, 4 * MB, 3);

    let bad_dir = tmp.path().join("bad");
    let first = Provider::start(&bad_dir, std::slice::from_ref(&file));
    let cid = first.cids[0];
    first.stop();
    assert_eq!(corrupt_blobs(&bad_dir, MB as u64), 1);
    let bad = Provider::start(&bad_dir, &[]);
    let good = Provider::start(&tmp.path().join("good"), std::slice::from_ref(&file));
    assert_eq!(good.cids[0], cid);

    let store = local_store(&tmp.path().join("fetcher")).await;
    let err = store
        .fetch(&cid, std::slice::from_ref(&bad.addr), None, u64::MAX)
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::AllProvidersFailed { ref failures, .. } if failures.len() == 1),
        "{err}"
    );
    assert!(!store.has(&cid).await.unwrap());

    let report = store
        .fetch(&cid, &[bad.addr.clone(), good.addr.clone()], None, u64::MAX)
        .await
        .unwrap();
    assert!(report.bytes_fetched > 0);
    let out = tmp.path().join("out.bin");
    store.export(&cid, &out, u64::MAX).await.unwrap();
    assert_eq!(file_hash(&out), file_hash(&file));
    bad.stop();
    good.stop();
    store.shutdown().await;
}

/// A provider that answers every request with the valid bao encoding of
/// one other blob: its own bytes hash correctly, just not to what was asked.
#[derive(Debug, Clone)]
struct Liar {
    store: iroh_blobs::store::fs::FsStore,
    fake: iroh_blobs::Hash,
}

impl iroh::protocol::ProtocolHandler for Liar {
    async fn accept(
        &self,
        conn: iroh::endpoint::Connection,
    ) -> Result<(), iroh::protocol::AcceptError> {
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            let _request = recv.read_to_end(64 * 1024).await;
            let forged = self
                .store
                .blobs()
                .export_bao(self.fake, iroh_blobs::protocol::ChunkRanges::all())
                .bao_to_vec()
                .await
                .expect("the liar has its fake blob");
            let _ = send.write_all(&forged).await;
            let _ = send.finish();
        }
        Ok(())
    }
}

// R-P2P-4: a provider that lies consistently (it sends another blob's
// well-formed encoding in answer to a request) is caught by the receiver's
// verification while streaming; nothing of the lie is kept, and the honest
// provider (another process) completes the fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_provider_is_caught_by_the_receiver() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real.bin");
    random_file(&real, 16 * MB + 5, 11);
    let mut fake_bytes = std::fs::read(&real).unwrap();
    for b in &mut fake_bytes[8 * MB..8 * MB + 4096] {
        *b ^= 0x5a;
    }

    let liar_store = iroh_blobs::store::fs::FsStore::load(tmp.path().join("liar"))
        .await
        .unwrap();
    let fake = liar_store
        .add_bytes(fake_bytes)
        .with_tag()
        .await
        .unwrap()
        .hash;
    let endpoint = iroh::Endpoint::builder(iroh::endpoint::presets::Minimal)
        .clear_ip_transports()
        .bind_addr("127.0.0.1:0")
        .unwrap()
        .bind()
        .await
        .unwrap();
    let liar_addr =
        iroh::EndpointAddr::new(endpoint.id()).with_ip_addr(endpoint.bound_sockets()[0]);
    let router = iroh::protocol::Router::builder(endpoint)
        .accept(
            iroh_blobs::ALPN,
            Liar {
                store: liar_store.clone(),
                fake,
            },
        )
        .spawn();
    let honest = Provider::start(&tmp.path().join("honest"), std::slice::from_ref(&real));
    let cid = honest.cids[0];

    let store = local_store(&tmp.path().join("fetcher")).await;
    let err = store
        .fetch(&cid, std::slice::from_ref(&liar_addr), None, u64::MAX)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, FetchError::AllProvidersFailed { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("hash mismatch"),
        "the receiver must catch it: {msg}"
    );
    assert!(!store.has(&cid).await.unwrap());
    let report = store
        .fetch(
            &cid,
            &[liar_addr.clone(), honest.addr.clone()],
            None,
            u64::MAX,
        )
        .await
        .unwrap();
    assert_eq!(
        report.bytes_present, 0,
        "nothing of the lie was kept: {report:?}"
    );
    let out = tmp.path().join("out.bin");
    store.export(&cid, &out, u64::MAX).await.unwrap();
    assert_eq!(file_hash(&out), file_hash(&real));
    honest.stop();
    store.shutdown().await;
    router.shutdown().await.unwrap();
}

// R-P2P-4: a transfer cut half way (provider killed) resumes from what
// arrived: the second fetch asks only for the missing bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_transfer_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("big.bin");
    let size = 100 * MB;
    random_file(&file, size, 9);
    let provider_dir = tmp.path().join("provider");
    let mut provider = Provider::start(&provider_dir, std::slice::from_ref(&file));
    let cid = provider.cids[0];

    let store = local_store(&tmp.path().join("fetcher")).await;
    let (tx, mut rx) = mpsc::channel(64);
    let cut_at = 20 * MB as u64;
    let addr = provider.addr.clone();
    let (first, killed_at) = tokio::join!(
        store.fetch(&cid, std::slice::from_ref(&addr), Some(tx), u64::MAX),
        async {
            let mut killed_at = None;
            while let Some(p) = rx.recv().await {
                assert_eq!(p.total, Some(size as u64));
                if killed_at.is_none() && p.fetched >= cut_at {
                    provider.kill();
                    killed_at = Some(p.fetched);
                }
            }
            killed_at
        }
    );
    let killed_at = killed_at.expect("the transfer got past the cut point");
    assert!(first.is_err(), "the first fetch must fail: {first:?}");
    assert!(!store.has(&cid).await.unwrap());

    // Same data directory, same key: the provider comes back on a new port.
    let provider = Provider::start(&provider_dir, &[]);
    let second = store
        .fetch(&cid, std::slice::from_ref(&provider.addr), None, u64::MAX)
        .await
        .unwrap();
    eprintln!("cut at {killed_at} bytes; resumed: {second:?}");
    assert!(
        second.bytes_present >= killed_at / 2,
        "kept {} of the {killed_at} bytes received before the cut",
        second.bytes_present
    );
    assert!(
        second.bytes_fetched <= size as u64 - second.bytes_present + 64 * 1024,
        "re-downloaded present bytes: {second:?}"
    );
    let out = tmp.path().join("out.bin");
    store.export(&cid, &out, u64::MAX).await.unwrap();
    assert_eq!(file_hash(&out), file_hash(&file));
    provider.stop();
    store.shutdown().await;
}

// R-VOL-2, R-P2P-4: a directory CID whose "manifest" is hostile (names
// that climb out of the target, or a blob too large to be a manifest) is
// refused before anything is written, and the huge one before it is
// downloaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_manifests_are_refused() {
    use storage::manifest::{Entry, Manifest, Mode};
    use storage::store::StoreError;

    let tmp = tempfile::tempdir().unwrap();
    let provider = Store::open(StoreConfig::new(tmp.path().join("provider")))
        .await
        .unwrap();
    let store = local_store(&tmp.path().join("fetcher")).await;

    // Canonical DAG-CBOR with a `..` entry, as a malicious node would build it.
    let mut evil = Manifest::default();
    evil.entries.insert(
        "..".into(),
        Entry {
            cid: storage::cid::file_cid(blake3::hash(b"x").into()),
            size: 1,
            mode: Mode::File,
        },
    );
    let evil_file = tmp.path().join("evil.cbor");
    std::fs::write(&evil_file, evil.encode()).unwrap();
    let raw = provider.add_path(&evil_file).await.unwrap();
    let as_dir = storage::cid::dir_cid(storage::cid::content(&raw).unwrap().hash);
    let err = store
        .fetch(&as_dir, &[provider.addr()], None, u64::MAX)
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Content(StoreError::Manifest { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("\"..\""), "{err}");
    let out = tmp.path().join("out");
    assert!(store.export(&as_dir, &out, u64::MAX).await.is_err());
    assert!(!out.exists());

    let huge = tmp.path().join("huge.bin");
    random_file(&huge, 17 * MB, 5);
    let raw = provider.add_path(&huge).await.unwrap();
    let as_dir = storage::cid::dir_cid(storage::cid::content(&raw).unwrap().hash);
    let err = store
        .fetch(&as_dir, &[provider.addr()], None, u64::MAX)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("more than"), "{err}");
    let report = store
        .fetch(&raw, &[provider.addr()], None, u64::MAX)
        .await
        .unwrap();
    assert_eq!(
        report.bytes_present, 0,
        "the manifest check downloaded nothing"
    );
    // The fetcher first: closing its connections to a live provider is quick.
    store.shutdown().await;
    provider.shutdown().await;
}

// R-CLI-2 (progress for `skrei get`), R-P2P-4: a single file's progress
// carries its size as the total; an unknown CID fails naming it, and no
// providers at all is an error, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_progress_and_missing_content() {
    let tmp = tempfile::tempdir().unwrap();
    let provider = Store::open(StoreConfig::new(tmp.path().join("provider")))
        .await
        .unwrap();
    let store = local_store(&tmp.path().join("fetcher")).await;
    let file = tmp.path().join("f.bin");
    random_file(&file, 2 * MB, 1);
    let cid = provider.add_path(&file).await.unwrap();
    let (tx, mut rx) = mpsc::channel(1024);
    store
        .fetch(&cid, &[provider.addr()], Some(tx), u64::MAX)
        .await
        .unwrap();
    let mut last = None;
    while let Some(p) = rx.recv().await {
        assert_eq!(p.total, Some(2 * MB as u64));
        last = Some(p);
    }
    assert_eq!(last.unwrap().fetched, 2 * MB as u64);

    let absent = storage::cid::file_cid(blake3::hash(b"absent").into());
    let err = store
        .fetch(&absent, &[provider.addr()], None, u64::MAX)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&absent.to_string()), "{err}");
    assert!(matches!(
        store.fetch(&absent, &[], None, u64::MAX).await,
        Err(FetchError::NoProviders { .. })
    ));
    // The fetcher first: closing its connections to a live provider is quick.
    store.shutdown().await;
    provider.shutdown().await;
}

// R-VOL-2, R-P2P-4: a "manifest bomb" (each level lists the next one 16
// times: 16^6 paths from 6 small blobs) costs one walk per distinct blob to
// fetch and check, and is refused before export writes anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_bombs_are_bounded() {
    use storage::manifest::{Entry, Manifest, Mode};
    use storage::store::{ExportError, StoreError};

    let tmp = tempfile::tempdir().unwrap();
    let provider = Store::open(StoreConfig::new(tmp.path().join("provider")))
        .await
        .unwrap();
    let store = local_store(&tmp.path().join("fetcher")).await;
    let leaf = tmp.path().join("leaf");
    std::fs::write(&leaf, b"x").unwrap();
    let mut cid = provider.add_path(&leaf).await.unwrap();
    let mut mode = Mode::File;
    for level in 0..6 {
        let mut m = Manifest::default();
        for i in 0..16 {
            m.entries
                .insert(format!("e{i}"), Entry { cid, size: 1, mode });
        }
        let file = tmp.path().join(format!("level{level}"));
        std::fs::write(&file, m.encode()).unwrap();
        let raw = provider.add_path(&file).await.unwrap();
        cid = storage::cid::dir_cid(storage::cid::content(&raw).unwrap().hash);
        mode = Mode::Dir;
    }
    let started = std::time::Instant::now();
    let report = store
        .fetch(&cid, &[provider.addr()], None, u64::MAX)
        .await
        .unwrap();
    assert_eq!(report.blobs, 7);
    assert!(store.has(&cid).await.unwrap());
    let out = tmp.path().join("out");
    let err = store.export(&cid, &out, u64::MAX).await.unwrap_err();
    assert!(
        matches!(err, ExportError::Content(StoreError::TooManyEntries { .. })),
        "{err}"
    );
    assert!(!out.exists());
    assert!(started.elapsed() < Duration::from_secs(10));
    // The fetcher first: closing its connections to a live provider is quick.
    store.shutdown().await;
    provider.shutdown().await;
}

// R-P2P-4: by default the store's address is a loopback socket and no
// relay; the node id survives a restart (its key lives in the data dir),
// and the address round-trips through JSON, as it does in gossip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_is_offline_and_stable() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path())).await.unwrap();
    let addr = store.addr();
    let ips: Vec<_> = addr.ip_addrs().collect();
    assert_eq!(ips.len(), 1, "{addr:?}");
    assert!(ips[0].ip().is_loopback() && ips[0].port() != 0, "{addr:?}");
    assert_eq!(addr.relay_urls().count(), 0);
    let json = serde_json::to_string(&addr).unwrap();
    assert_eq!(
        serde_json::from_str::<iroh::EndpointAddr>(&json).unwrap(),
        addr
    );
    store.shutdown().await;
    let again = Store::open(StoreConfig::new(tmp.path())).await.unwrap();
    assert_eq!(again.addr().id, addr.id);
    again.shutdown().await;
}

// R-P2P-4: an unreachable provider first in the list costs one connect
// timeout per fetch, not one per blob; the next provider serves the tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_provider_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let provider = Store::open(StoreConfig::new(tmp.path().join("provider")))
        .await
        .unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    for i in 0..40 {
        std::fs::write(tree.join(format!("{i}")), format!("file {i}")).unwrap();
    }
    let cid = provider.add_path(&tree).await.unwrap();
    let mut config = StoreConfig::new(tmp.path().join("fetcher"));
    config.connect_timeout = Duration::from_millis(500);
    let store = Store::open(config).await.unwrap();

    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead_port = closed.local_addr().unwrap();
    drop(closed);
    let dead =
        iroh::EndpointAddr::new(iroh::SecretKey::generate().public()).with_ip_addr(dead_port);

    let started = std::time::Instant::now();
    let report = store
        .fetch(&cid, &[dead, provider.addr()], None, u64::MAX)
        .await
        .unwrap();
    assert_eq!(report.blobs, 41);
    // 41 blobs at 500 ms each would be 20 s.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let out = tmp.path().join("out");
    store.export(&cid, &out, u64::MAX).await.unwrap();
    assert_same_tree(&tree, &out);
    // The fetcher first: closing its connections to a live provider is quick.
    store.shutdown().await;
    provider.shutdown().await;
}
