//! A job's inputs materialised for an execution (R-VOL-1).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use protocol::job::{CidSource, InlineSource, InputSource, LocalSource, Source, UrlSource};
use storage::download::{DownloadConfig, Downloader};
use storage::inputs::{InputErrorKind, Inputs, materialise};
use storage::store::{Store, StoreConfig};

use crate::fixtures::{assert_same_tree, awkward_tree};
use crate::http::{Server, routes};

fn input(source: Source, target: &str) -> InputSource {
    InputSource {
        source,
        target: target.into(),
        alias: None,
    }
}

fn local(path: &Path) -> Source {
    Source::Local(LocalSource {
        source_path: path.to_str().unwrap().into(),
        read_write: false,
    })
}

fn local_rw(path: &Path) -> Source {
    Source::Local(LocalSource {
        source_path: path.to_str().unwrap().into(),
        read_write: true,
    })
}

fn inline(data: &str) -> Source {
    Source::Inline(InlineSource { url: data.into() })
}

fn no_write_bits(path: &Path) {
    let mode = std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o222, 0, "{} is writable ({mode:o})", path.display());
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            no_write_bits(&e.unwrap().path());
        }
    }
}

/// Puts write bits back so the temporary directory can be removed.
fn writable(path: &Path) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    if meta.is_symlink() {
        return;
    }
    let mode = meta.permissions().mode();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o200)).unwrap();
    if meta.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            writable(&e.unwrap().path());
        }
    }
}

struct Node {
    provider: Store,
    store: Store,
    downloader: Downloader,
    allowed: Vec<PathBuf>,
    /// Where jobs may write (`--local-inputs DIR:rw`): `<tmp>/allowed/rw`.
    allowed_rw: Vec<PathBuf>,
    max_cid_bytes: u64,
    s3: Option<storage::s3::S3Client>,
}

impl Node {
    async fn new(tmp: &Path) -> Node {
        let allowed = tmp.join("allowed");
        std::fs::create_dir_all(&allowed).unwrap();
        Node {
            provider: Store::open(StoreConfig::new(tmp.join("provider")))
                .await
                .unwrap(),
            store: Store::open(StoreConfig::new(tmp.join("node")))
                .await
                .unwrap(),
            downloader: Downloader::new(DownloadConfig {
                // The test server lives on loopback.
                allow_private: true,
                ..DownloadConfig::default()
            })
            .unwrap(),
            allowed_rw: vec![allowed.join("rw")],
            allowed: vec![allowed],
            max_cid_bytes: 10 << 30,
            s3: None,
        }
    }

    async fn run(
        &self,
        exec: &Path,
        sources: &[InputSource],
    ) -> Result<Vec<storage::inputs::Materialised>, storage::inputs::InputError> {
        let providers = [self.provider.addr()];
        let inputs = Inputs {
            store: &self.store,
            providers: &providers,
            downloader: &self.downloader,
            allowed_local: &self.allowed,
            allowed_local_rw: &self.allowed_rw,
            s3: self.s3.as_ref(),
            max_cid_bytes: self.max_cid_bytes,
            on_fetched: None,
        };
        materialise(&inputs, exec, sources).await
    }

    async fn shutdown(self) {
        self.provider.shutdown().await;
        self.store.shutdown().await;
    }
}

// R-VOL-1: every kind of input at once, fetched concurrently, appears
// read-only at its target with its CID recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_materialises_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::new(tmp.path()).await;
    let server = Server::start(routes).await;
    let tree = tmp.path().join("tree");
    awkward_tree(&tree, None);
    let tree_cid = node.provider.add_path(&tree).await.unwrap();
    let shared = node.allowed[0].join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("config.toml"), b"x = 1\n").unwrap();

    let sources = [
        input(Source::Cid(CidSource { cid: tree_cid }), "/inputs/tree"),
        input(
            Source::Url(UrlSource {
                url: server.url("/data/hello.txt"),
            }),
            "/inputs/web",
        ),
        input(
            inline("data:text/plain;base64,aGVsbG8="),
            "/inputs/note.txt",
        ),
        input(local(&shared), "/data/shared"),
    ];
    let exec = tmp.path().join("exec");
    let done = node.run(&exec, &sources).await.unwrap();
    assert_eq!(done.len(), 4);
    let at = |t: &str| exec.join("inputs").join(t);
    assert_eq!(done[0].host_path, at("inputs/tree"));
    assert_same_tree(&tree, &done[0].host_path);
    assert_eq!(done[0].cid, Some(tree_cid));
    assert_eq!(done[1].file, Some(at("inputs/web/hello.txt")));
    assert_eq!(
        std::fs::read(at("inputs/web/hello.txt")).unwrap(),
        b"hello\n"
    );
    assert_eq!(
        done[1].cid,
        Some(storage::cid::file_cid(blake3::hash(b"hello\n").into()))
    );
    assert_eq!(std::fs::read(at("inputs/note.txt")).unwrap(), b"hello");
    assert_eq!(
        done[2].cid,
        Some(storage::cid::file_cid(blake3::hash(b"hello").into()))
    );
    assert_same_tree(&shared, &at("data/shared"));
    for m in &done {
        no_write_bits(&m.host_path);
    }
    // Executables stay executable.
    let exe = at("inputs/tree/a/run.sh");
    assert_eq!(
        std::fs::metadata(exe).unwrap().permissions().mode() & 0o777,
        0o555
    );
    writable(&exec);
    node.shutdown().await;
}

// R-VOL-1: a failure names the input (index and description) and the cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_name_the_input() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::new(tmp.path()).await;
    let server = Server::start(routes).await;
    let missing = server.url("/missing");
    let sources = [
        input(inline("data:text/plain;base64,aGk="), "/inputs/a"),
        input(
            Source::Url(UrlSource {
                url: missing.clone(),
            }),
            "/inputs/b",
        ),
    ];
    let err = node
        .run(&tmp.path().join("e1"), &sources)
        .await
        .unwrap_err();
    assert_eq!(err.index, 1);
    let msg = err.to_string();
    assert!(msg.contains(&missing) && msg.contains("404"), "{msg}");

    let bad = [input(inline("data:text/plain,not-base64"), "/inputs/a")];
    let err = node.run(&tmp.path().join("e2"), &bad).await.unwrap_err();
    assert!(matches!(err.cause, InputErrorKind::Inline(_)), "{err}");

    // A CID nobody serves: the fetch fails and says which CID.
    let absent = storage::cid::file_cid(blake3::hash(b"nobody has this").into());
    let cid_input = [input(Source::Cid(CidSource { cid: absent }), "/inputs/x")];
    let err = node
        .run(&tmp.path().join("e3"), &cid_input)
        .await
        .unwrap_err();
    assert!(matches!(err.cause, InputErrorKind::Fetch(_)), "{err}");
    assert!(err.to_string().contains(&absent.to_string()), "{err}");

    // Two inputs for one target.
    let twice = [
        input(inline("data:text/plain;base64,aGk="), "/inputs/same"),
        input(inline("data:text/plain;base64,aGk="), "/inputs/same"),
    ];
    let err = node.run(&tmp.path().join("e4"), &twice).await.unwrap_err();
    assert!(
        matches!(err.cause, InputErrorKind::TargetOverlaps { other: 0 }),
        "{err}"
    );
    let nested = [
        input(inline("data:text/plain;base64,aGk="), "/inputs/dir/file"),
        input(inline("data:text/plain;base64,aGk="), "/inputs/dir"),
    ];
    let err = node.run(&tmp.path().join("e6"), &nested).await.unwrap_err();
    assert!(
        matches!(err.cause, InputErrorKind::TargetOverlaps { other: 0 }),
        "{err}"
    );
    assert!(
        !tmp.path().join("e6/inputs/inputs").exists(),
        "nothing fetched"
    );

    for target in ["relative", "/inputs/../../etc", "/"] {
        let t = [input(inline("data:text/plain;base64,aGk="), target)];
        let err = node.run(&tmp.path().join("e5"), &t).await.unwrap_err();
        assert!(
            matches!(err.cause, InputErrorKind::Target(_)),
            "{target}: {err}"
        );
    }
    writable(tmp.path());
    node.shutdown().await;
}

// R-VOL-1: local paths only from allowed directories; neither `..` nor a
// symlink (to the input or inside it) gets out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_paths_cannot_escape() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::new(tmp.path()).await;
    let allowed = node.allowed[0].clone();
    let secret_dir = tmp.path().join("secret");
    std::fs::create_dir(&secret_dir).unwrap();
    let secret = secret_dir.join("key");
    std::fs::write(&secret, b"do not read").unwrap();
    // A sibling whose name starts like the allowed one.
    let sibling = tmp.path().join("allowed-not");
    std::fs::create_dir(&sibling).unwrap();
    std::fs::write(sibling.join("f"), b"no").unwrap();

    std::os::unix::fs::symlink(&secret, allowed.join("link-out")).unwrap();
    let leaky = allowed.join("leaky");
    std::fs::create_dir(&leaky).unwrap();
    std::fs::write(leaky.join("fine.txt"), b"fine").unwrap();
    std::os::unix::fs::symlink(&secret_dir, leaky.join("escape")).unwrap();
    let ok = allowed.join("ok");
    std::fs::create_dir(&ok).unwrap();
    std::fs::write(ok.join("real.txt"), b"real").unwrap();
    std::os::unix::fs::symlink(ok.join("real.txt"), ok.join("alias.txt")).unwrap();

    let refused = [
        secret.clone(),
        allowed.join("../secret/key"),
        allowed.join("link-out"),
        leaky.clone(),
        sibling.join("f"),
        PathBuf::from("relative/path"),
    ];
    for (i, path) in refused.iter().enumerate() {
        let exec = tmp.path().join(format!("exec{i}"));
        let err = node
            .run(&exec, &[input(local(path), "/inputs/x")])
            .await
            .unwrap_err();
        assert!(
            matches!(err.cause, InputErrorKind::NotAllowed { .. }),
            "{}: {err}",
            path.display()
        );
        assert!(err.to_string().contains("local path"), "{err}");
    }
    // A symlink loop is cut off, not followed forever.
    let looped = allowed.join("loop");
    std::fs::create_dir(&looped).unwrap();
    std::os::unix::fs::symlink(&looped, looped.join("again")).unwrap();
    let err = node
        .run(
            &tmp.path().join("exec-loop"),
            &[input(local(&looped), "/inputs/l")],
        )
        .await
        .unwrap_err();
    assert!(matches!(err.cause, InputErrorKind::Links { .. }), "{err}");

    // A symlink that stays inside the allowed directory is followed.
    let exec = tmp.path().join("exec-ok");
    let done = node
        .run(&exec, &[input(local(&ok), "/inputs/ok")])
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(done[0].host_path.join("alias.txt")).unwrap(),
        b"real"
    );
    writable(tmp.path());
    node.shutdown().await;
}

// R-VOL-4: a writable local input is the operator's folder itself, left
// as it is; only folders listed as writable may be named, neither `..` nor
// a symlink gets out, and a read-only folder is not made writable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writable_local_inputs_are_the_folder_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::new(tmp.path()).await;
    let allowed = node.allowed[0].clone();
    let rw = node.allowed_rw[0].clone();
    let work = rw.join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("state"), b"1").unwrap();
    std::fs::create_dir(allowed.join("readonly")).unwrap();
    std::os::unix::fs::symlink(allowed.join("readonly"), rw.join("link-out")).unwrap();

    let exec = tmp.path().join("exec-rw");
    let done = node
        .run(
            &exec,
            &[
                input(local_rw(&work), "/work"),
                input(inline("data:text/plain;base64,eA=="), "/inputs/x"),
            ],
        )
        .await
        .unwrap();
    assert!(done[0].writable);
    assert_eq!(done[0].host_path, std::fs::canonicalize(&work).unwrap());
    // Left writable and unmoved; nothing of it in the execution folder.
    let mode = std::fs::metadata(&work).unwrap().permissions().mode();
    assert_ne!(mode & 0o200, 0, "{mode:o}");
    std::fs::write(done[0].host_path.join("state"), b"2").unwrap();
    assert!(!exec.join("inputs/work").exists());
    assert!(!done[1].writable);
    no_write_bits(&done[1].host_path);

    for (i, path) in [
        allowed.join("readonly"),
        rw.join("link-out"),
        rw.join("../readonly"),
        PathBuf::from("relative"),
    ]
    .iter()
    .enumerate()
    {
        let err = node
            .run(
                &tmp.path().join(format!("exec-no{i}")),
                &[input(local_rw(path), "/work")],
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err.cause, InputErrorKind::NotWritable { .. }),
            "{}: {err}",
            path.display()
        );
        assert!(err.to_string().contains("--local-inputs DIR:rw"), "{err}");
    }
    let err = node
        .run(
            &tmp.path().join("exec-file"),
            &[input(local_rw(&work.join("state")), "/work")],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err.cause, InputErrorKind::WritableNotFolder { .. }),
        "{err}"
    );
    writable(tmp.path());
    node.shutdown().await;
}

fn s3(bucket: &str, key: &str) -> Source {
    Source::S3(protocol::job::S3Source {
        bucket: bucket.into(),
        key: key.into(),
        filter: None,
        endpoint: None,
        region: None,
    })
}

// Issue 17: S3 inputs from the node's endpoint (moto): one object lands at
// its last name, a prefix brings every object at its path below it; keys
// that would climb out of the target, other endpoints and regions, and
// inputs over the byte budget are refused, and nothing of them is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_inputs_come_from_the_nodes_endpoint() {
    let Some(moto) = testkit::moto::Moto::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut node = Node::new(tmp.path()).await;
    moto.create_bucket("data");
    moto.put("data", "sets/a.csv", b"1,2\n");
    moto.put("data", "sets/deep/b.csv", b"3,4\n");
    moto.put("data", "sets/deep/", b"");
    moto.put("data", "other/c.csv", b"no");
    moto.put("data", "big/blob", &[7u8; 4096]);

    let exec = tmp.path().join("exec-none");
    let err = node
        .run(&exec, &[input(s3("data", "sets/a.csv"), "/inputs/one")])
        .await
        .unwrap_err();
    assert!(matches!(err.cause, InputErrorKind::S3Unconfigured), "{err}");
    assert!(err.to_string().contains("--s3-endpoint"), "{err}");

    node.s3 = Some(
        storage::s3::S3Client::new(storage::s3::S3Config {
            endpoint: moto.endpoint.clone(),
            region: "us-east-1".into(),
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            session_token: None,
        })
        .unwrap(),
    );
    let exec = tmp.path().join("exec-s3");
    let done = node
        .run(
            &exec,
            &[
                input(s3("data", "sets/a.csv"), "/inputs/one"),
                input(s3("data", "sets/"), "/inputs/all"),
                input(s3("data", "sets/dee*"), "/inputs/star"),
                input(
                    Source::S3(protocol::job::S3Source {
                        filter: Some(r"\.csv$".into()),
                        ..s3_params("data", "")
                    }),
                    "/inputs/csv",
                ),
            ],
        )
        .await
        .unwrap();
    let read = |m: &storage::inputs::Materialised, rel: &str| {
        std::fs::read_to_string(m.host_path.join(rel)).unwrap()
    };
    assert_eq!(read(&done[0], "a.csv"), "1,2\n");
    assert_eq!(read(&done[1], "a.csv"), "1,2\n");
    assert_eq!(read(&done[1], "deep/b.csv"), "3,4\n");
    assert!(!done[1].host_path.join("c.csv").exists());
    assert_eq!(read(&done[2], "p/b.csv"), "3,4\n");
    // Filter: every .csv under the bucket, nothing else.
    assert_eq!(read(&done[3], "sets/a.csv"), "1,2\n");
    assert_eq!(read(&done[3], "other/c.csv"), "no");
    assert!(!done[3].host_path.join("big").exists());
    no_write_bits(&done[1].host_path);

    let (err, _) = refused(&node, tmp.path(), s3("data", "sets/../other/c.csv")).await;
    assert!(err.to_string().contains("cannot be used"), "{err}");
    let (err, _) = refused(
        &node,
        tmp.path(),
        Source::S3(protocol::job::S3Source {
            endpoint: Some("http://169.254.169.254".into()),
            ..s3_params("data", "sets/a.csv")
        }),
    )
    .await;
    assert!(err.to_string().contains("leave the endpoint out"), "{err}");
    let (err, _) = refused(
        &node,
        tmp.path(),
        Source::S3(protocol::job::S3Source {
            region: Some("eu-west-1".into()),
            ..s3_params("data", "sets/a.csv")
        }),
    )
    .await;
    assert!(
        matches!(&err.cause, InputErrorKind::S3(e) if matches!(**e, storage::s3::S3Error::RegionNotServed { .. })),
        "{err}"
    );
    let (err, _) = refused(&node, tmp.path(), s3("data", "missing.csv")).await;
    assert!(err.to_string().contains("404"), "{err}");

    node.max_cid_bytes = 1000;
    let (err, exec) = refused(&node, tmp.path(), s3("data", "big/blob")).await;
    assert!(
        err.to_string().contains("larger than the 1000 bytes"),
        "{err}"
    );
    assert!(!exec.join("inputs/inputs/x/blob").exists(), "removed");
    writable(tmp.path());
    node.shutdown().await;
}

fn s3_params(bucket: &str, key: &str) -> protocol::job::S3Source {
    let Source::S3(params) = s3(bucket, key) else {
        unreachable!()
    };
    params
}

/// An S3 endpoint that lists what it should not: a key outside the
/// prefix (with a character that is not one byte), and one that climbs.
fn hostile_listing(path: &str, _: u32) -> crate::http::Reply {
    let key = if path.contains("climb") {
        "climb/../../etc/passwd"
    } else {
        "\u{e9}toile"
    };
    crate::http::Reply::ok(
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Name>data</Name><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>\
             <Contents><Key>{key}</Key><Size>1</Size></Contents></ListBucketResult>"
        )
        .as_bytes(),
    )
}

// Issue 17: a listing is the server's word, not a path: a key outside the
// prefix or one that climbs is refused, with no panic and nothing written
// outside the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_listings_cannot_place_files_outside_the_target() {
    let tmp = tempfile::tempdir().unwrap();
    let mut node = Node::new(tmp.path()).await;
    let server = Server::start(hostile_listing).await;
    node.s3 = Some(
        storage::s3::S3Client::new(storage::s3::S3Config {
            endpoint: format!("http://{}", server.addr),
            region: "us-east-1".into(),
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
            session_token: None,
        })
        .unwrap(),
    );
    for prefix in ["a*", "climb/"] {
        let (err, exec) = refused(&node, tmp.path(), s3("data", prefix)).await;
        assert!(
            matches!(err.cause, InputErrorKind::S3Name { .. }),
            "{prefix}: {err}"
        );
        let target = exec.join("inputs/inputs/x");
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0, "{prefix}");
    }
    assert!(!tmp.path().join("etc").exists());
    writable(tmp.path());
    node.shutdown().await;
}

/// Materialises `source` alone in a new execution folder, which fails.
async fn refused(
    node: &Node,
    tmp: &Path,
    source: Source,
) -> (storage::inputs::InputError, PathBuf) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let exec = tmp.join(format!(
        "exec-refused-{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let err = node
        .run(&exec, &[input(source, "/inputs/x")])
        .await
        .unwrap_err();
    (err, exec)
}

// R-VOL-1: URL inputs may share a target directory, each file inside it;
// two that pick the same name cannot overwrite each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_inputs_share_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::new(tmp.path()).await;
    let server = Server::start(routes).await;
    let url = |p: &str| Source::Url(UrlSource { url: server.url(p) });
    let exec = tmp.path().join("exec");
    let done = node
        .run(
            &exec,
            &[
                input(url("/data/hello.txt"), "/inputs"),
                input(url("/gz/text"), "/inputs"),
            ],
        )
        .await
        .unwrap();
    let dir = exec.join("inputs/inputs");
    assert_eq!(done[0].file, Some(dir.join("hello.txt")));
    assert_eq!(done[1].file, Some(dir.join("text")));
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        2,
        "no partial files"
    );

    // `/redirect` ends at hello.txt too: one of the two fails, the file
    // that stays is whole.
    let exec = tmp.path().join("exec2");
    let err = node
        .run(
            &exec,
            &[
                input(url("/data/hello.txt"), "/inputs"),
                input(url("/redirect"), "/inputs"),
            ],
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already wrote"), "{err}");
    let dir = exec.join("inputs/inputs");
    assert_eq!(std::fs::read(dir.join("hello.txt")).unwrap(), b"hello\n");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no partial files"
    );
    writable(tmp.path());
    node.shutdown().await;
}
