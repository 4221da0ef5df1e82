//! A job's inputs, materialised for one execution (R-VOL-1).
//!
//! Each [`InputSource`] becomes a file or directory at
//! `<exec>/inputs/<target>`: the execution folder mirrors the task's file
//! system under `inputs/`, so the executor mounts `<exec>/inputs/<target>` at
//! `<target>`, read-only. All inputs of a job are fetched concurrently and
//! all must succeed before the job starts; a failure names the input (its
//! index and description) and the cause.
//!
//! - **CID**: fetched from the given providers through the [`Store`], verified
//!   while streaming, then exported.
//! - **URL**: downloaded by [`Downloader`] into the target directory; its CID
//!   is recorded in the [`Materialised`] report so the run is reproducible.
//! - **inline**: the `data:` URL decoded by the job rules, written as a file.
//! - **local path**: copied, only from under directories the operator
//!   allowed; the path and every symlink inside it are resolved and must stay
//!   under an allowed directory.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use cid::Cid;
use futures::future::join_all;
use iroh::EndpointAddr;
use protocol::job::{InputSource, Source, rules};

use crate::allowed::{AllowedDirs, Outside};
use crate::cid as cids;
use crate::download::{DownloadError, Downloader};
use crate::manifest::check_name;
use crate::s3::{MAX_LISTED_OBJECTS, S3Client, S3Error};
use crate::store::{ExportError, FetchError, Store};

/// Symlinks followed inside one local input before it is refused.
const MAX_LOCAL_LINKS: usize = 64;

/// What the node lets inputs use.
pub struct Inputs<'a> {
    pub store: &'a Store,
    /// Nodes to fetch CIDs from.
    pub providers: &'a [EndpointAddr],
    pub downloader: &'a Downloader,
    /// Directories local-path inputs may come from (the operator's allowlist).
    pub allowed_local: &'a [PathBuf],
    /// Those a `ReadWrite` local input may name (`--local-inputs DIR:rw`):
    /// it is mounted as it is, not copied (R-VOL-4).
    pub allowed_local_rw: &'a [PathBuf],
    /// Most bytes one CID or S3 input may take, fetched and written out
    /// (R-SEC-5).
    pub max_cid_bytes: u64,
    /// The node's S3 endpoint, for S3 inputs; without one they fail.
    pub s3: Option<&'a S3Client>,
    /// Told of every CID input fetched from providers: the bytes received
    /// and how long the fetch took, so the node learns its link's rate.
    pub on_fetched: Option<&'a (dyn Fn(u64, std::time::Duration) + Sync)>,
}

impl std::fmt::Debug for Inputs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inputs")
            .field("store", &self.store)
            .field("providers", &self.providers)
            .field("downloader", &self.downloader)
            .field("allowed_local", &self.allowed_local)
            .field("allowed_local_rw", &self.allowed_local_rw)
            .field("max_cid_bytes", &self.max_cid_bytes)
            .field("s3", &self.s3.map(S3Client::endpoint))
            .field("on_fetched", &self.on_fetched.is_some())
            .finish()
    }
}

/// One input, in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Materialised {
    pub index: usize,
    /// The target inside the task (`/inputs/data`).
    pub target: String,
    /// What to mount there: `<exec>/inputs/<target>`, or for a writable
    /// input the operator's folder itself.
    pub host_path: PathBuf,
    /// A writable local input (R-VOL-4): `host_path` is the real path of a
    /// folder under one the operator lets jobs write to, mounted as it is.
    pub writable: bool,
    /// The CID of the input's bytes, where known: the CID given, or the CID
    /// of what a URL or inline input turned out to be.
    pub cid: Option<Cid>,
    /// For a URL input: the file written inside the target directory.
    pub file: Option<PathBuf>,
}

/// An input that could not be materialised.
#[derive(Debug, thiserror::Error)]
#[error("input {index} ({description}): {cause}")]
pub struct InputError {
    pub index: usize,
    pub description: String,
    pub cause: InputErrorKind,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputErrorKind {
    #[error("target {0:?} is not an absolute path without `..`")]
    Target(String),
    #[error("target overlaps input {other}'s target; each input needs its own")]
    TargetOverlaps { other: usize },
    #[error("target already exists in the execution folder")]
    TargetTaken,
    #[error(transparent)]
    Fetch(Box<FetchError>),
    #[error(transparent)]
    Export(Box<ExportError>),
    #[error(transparent)]
    Download(Box<DownloadError>),
    #[error("{0}")]
    Inline(String),
    #[error("{path} is not under a directory this node allows for local inputs")]
    NotAllowed { path: String },
    #[error(
        "{path} is not under a directory this node lets jobs write to \
         (its operator lists them with --local-inputs DIR:rw)"
    )]
    NotWritable { path: String },
    #[error("{path}: a writable local input must be a folder (ReadWrite: false reads a file)")]
    WritableNotFolder { path: String },
    #[error("this node has no S3 endpoint (its operator sets one with --s3-endpoint)")]
    S3Unconfigured,
    #[error("object key {key:?} cannot name a file inside the target (empty or `..` parts)")]
    S3Name { key: String },
    #[error("{0}")]
    S3Filter(String),
    #[error(transparent)]
    S3(Box<S3Error>),
    #[error("{path}: more than {MAX_LOCAL_LINKS} symlinks followed (a loop?)")]
    Links { path: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl From<FetchError> for InputErrorKind {
    fn from(e: FetchError) -> Self {
        InputErrorKind::Fetch(Box::new(e))
    }
}

impl From<ExportError> for InputErrorKind {
    fn from(e: ExportError) -> Self {
        InputErrorKind::Export(Box::new(e))
    }
}

impl From<S3Error> for InputErrorKind {
    fn from(e: S3Error) -> Self {
        InputErrorKind::S3(Box::new(e))
    }
}

impl From<DownloadError> for InputErrorKind {
    fn from(e: DownloadError) -> Self {
        InputErrorKind::Download(Box::new(e))
    }
}

/// Materialises every input under `<exec>/inputs/`, concurrently, then makes
/// them read-only. Returns one report per input, in the job's order; on
/// failure, the first failing input's error (the others are left in place
/// for the caller to remove with the execution folder).
pub async fn materialise(
    inputs: &Inputs<'_>,
    exec: &Path,
    sources: &[InputSource],
) -> Result<Vec<Materialised>, InputError> {
    // Each input creates the folders above its target, `inputs/` included.
    let root = exec.join("inputs");
    check_targets(&root, sources)?;
    let results = join_all(
        sources
            .iter()
            .enumerate()
            .map(|(index, input)| one(inputs, &root, index, input)),
    )
    .await;
    let mut done = Vec::with_capacity(results.len());
    for (index, result) in results.into_iter().enumerate() {
        let wrap = |cause| InputError {
            index,
            description: sources[index].source.describe(),
            cause,
        };
        let m = result.map_err(wrap)?;
        if m.writable {
            // The operator's own folder: its modes are theirs.
            done.push(m);
            continue;
        }
        let path = m.host_path.clone();
        tokio::task::spawn_blocking(move || read_only(&path))
            .await
            .expect("chmod task does not panic")
            .map_err(|(path, source)| wrap(InputErrorKind::Io { path, source }))?;
        done.push(m);
    }
    Ok(done)
}

async fn one(
    inputs: &Inputs<'_>,
    root: &Path,
    index: usize,
    input: &InputSource,
) -> Result<Materialised, InputErrorKind> {
    let host_path = host_path(root, &input.target)?;
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| InputErrorKind::Io { path, source }
    };
    let mut m = Materialised {
        index,
        target: input.target.clone(),
        host_path: host_path.clone(),
        cid: None,
        file: None,
        writable: false,
    };
    if let Source::Local(s) = &input.source
        && s.read_write
    {
        let allowed = inputs.allowed_local_rw.to_vec();
        let source = PathBuf::from(&s.source_path);
        m.host_path = tokio::task::spawn_blocking(move || writable_local(&allowed, &source))
            .await
            .expect("resolve task does not panic")?;
        m.writable = true;
        return Ok(m);
    }
    // URL inputs share a target directory (Bacalhau puts each file inside
    // it); every other input owns its target.
    if !matches!(input.source, Source::Url(_)) {
        if tokio::fs::symlink_metadata(&host_path).await.is_ok() {
            return Err(InputErrorKind::TargetTaken);
        }
        if let Some(parent) = host_path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(io_err(parent))?;
        }
    }
    match &input.source {
        Source::Cid(s) => {
            let max = inputs.max_cid_bytes;
            let started = std::time::Instant::now();
            let report = inputs
                .store
                .fetch(&s.cid, inputs.providers, None, max)
                .await?;
            if let Some(on_fetched) = inputs.on_fetched
                && report.bytes_fetched > 0
            {
                on_fetched(report.bytes_fetched, started.elapsed());
            }
            inputs.store.export(&s.cid, &host_path, max).await?;
            m.cid = Some(s.cid);
        }
        Source::Url(s) => {
            tokio::fs::create_dir_all(&host_path)
                .await
                .map_err(io_err(&host_path))?;
            let got = inputs.downloader.download(&s.url, &host_path).await?;
            m.cid = Some(got.cid);
            m.file = Some(got.path);
        }
        Source::Inline(s) => {
            let bytes = rules::check_data_url(&s.url).map_err(InputErrorKind::Inline)?;
            m.cid = Some(cids::file_cid(blake3::hash(&bytes).into()));
            write_new(&host_path, &bytes)
                .await
                .map_err(io_err(&host_path))?;
        }
        Source::S3(s) => {
            let client = inputs.s3.ok_or(InputErrorKind::S3Unconfigured)?;
            fetch_s3(client, s, &host_path, inputs.max_cid_bytes).await?;
        }
        Source::Local(s) => {
            let allowed = inputs.allowed_local.to_vec();
            let source = PathBuf::from(&s.source_path);
            let dest = host_path.clone();
            tokio::task::spawn_blocking(move || copy_local(&allowed, &source, &dest))
                .await
                .expect("copy task does not panic")?;
        }
    }
    Ok(m)
}

/// Downloads an S3 input into the folder `dir`: one object at its last
/// name, or every object under a prefix at its path below it, within
/// `budget` bytes in all. Keys come from the job and the listing from the
/// server: each part of a path must be a plain name.
async fn fetch_s3(
    client: &S3Client,
    source: &protocol::job::S3Source,
    dir: &Path,
    budget: u64,
) -> Result<(), InputErrorKind> {
    client.check_job(source.endpoint.as_deref(), source.region.as_deref())?;
    let filter = match &source.filter {
        Some(f) => Some(protocol::job::rules::s3_filter(f).map_err(InputErrorKind::S3Filter)?),
        None => None,
    };
    let objects: Vec<(String, String)> = match source.prefix() {
        Some(prefix) => client
            .list(&source.bucket, prefix, MAX_LISTED_OBJECTS)
            .await?
            .into_iter()
            // Zero-byte `folder/` markers some tools write hold nothing.
            .filter(|o| !o.key.ends_with('/'))
            .filter(|o| filter.as_ref().is_none_or(|f| f.is_match(&o.key)))
            .map(|o| {
                // A server listing a key outside the prefix gets no path
                // for it: an empty one is refused below.
                let rel = match o.key.strip_prefix(prefix) {
                    // The prefix is the whole key (`data*` lists `data`).
                    Some("") => o.key.rsplit('/').next().unwrap_or_default(),
                    Some(rel) => rel,
                    None => "",
                }
                .to_owned();
                (o.key, rel)
            })
            .collect(),
        None => {
            let name = source.key.rsplit('/').next().unwrap_or_default().to_owned();
            vec![(source.key.clone(), name)]
        }
    };
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| InputErrorKind::Io {
            path: dir.to_owned(),
            source: e,
        })?;
    let mut left = budget;
    for (key, rel) in objects {
        if rel.split('/').any(|part| check_name(part).is_err()) {
            return Err(InputErrorKind::S3Name { key });
        }
        let dest = dir.join(&rel);
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| InputErrorKind::Io {
                    path: parent.to_owned(),
                    source: e,
                })?;
        }
        left -= client.download(&source.bucket, &key, &dest, left).await?;
    }
    Ok(())
}

/// Refuses targets that would collide before anything is fetched: two
/// inputs may share a target only when both are URLs (each file lands
/// inside the directory), and no target may lie inside another's.
fn check_targets(root: &Path, sources: &[InputSource]) -> Result<(), InputError> {
    let mut seen: Vec<(usize, PathBuf, bool)> = Vec::with_capacity(sources.len());
    for (index, input) in sources.iter().enumerate() {
        let wrap = |cause| InputError {
            index,
            description: input.source.describe(),
            cause,
        };
        let path = host_path(root, &input.target).map_err(wrap)?;
        let is_url = matches!(input.source, Source::Url(_));
        for (other, p, other_url) in &seen {
            let shared_url_dir = *p == path && is_url && *other_url;
            if !shared_url_dir && (p.starts_with(&path) || path.starts_with(p)) {
                return Err(wrap(InputErrorKind::TargetOverlaps { other: *other }));
            }
        }
        seen.push((index, path, is_url));
    }
    Ok(())
}

/// `<root>/<target>`, refusing targets that could leave `root`.
fn host_path(root: &Path, target: &str) -> Result<PathBuf, InputErrorKind> {
    let bad = || InputErrorKind::Target(target.to_string());
    let path = Path::new(target);
    if !path.is_absolute() || target.contains('\0') {
        return Err(bad());
    }
    let mut out = root.to_path_buf();
    let mut parts = 0;
    for c in path.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(p) => {
                out.push(p);
                parts += 1;
            }
            _ => return Err(bad()),
        }
    }
    if parts == 0 {
        return Err(bad());
    }
    Ok(out)
}

async fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await?;
    f.write_all(bytes).await?;
    f.flush().await
}

/// The real path of a writable local input: a folder under one the
/// operator lets jobs write to. Nothing is copied or changed.
fn writable_local(allowed: &[PathBuf], source: &Path) -> Result<PathBuf, InputErrorKind> {
    let dirs = AllowedDirs::resolve(allowed);
    let real = dirs.real_path(source).map_err(|e| match e {
        Outside::Io { path, source } => InputErrorKind::Io { path, source },
        _ => InputErrorKind::NotWritable {
            path: source.display().to_string(),
        },
    })?;
    let meta = std::fs::metadata(&real).map_err(|source| InputErrorKind::Io {
        path: real.clone(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(InputErrorKind::WritableNotFolder {
            path: source.display().to_string(),
        });
    }
    Ok(real)
}

/// Copies a local input after checking that it, and everything it links
/// to, lies under an allowed directory ([`crate::allowed`]).
fn copy_local(allowed: &[PathBuf], source: &Path, dest: &Path) -> Result<(), InputErrorKind> {
    let dirs = AllowedDirs::resolve(allowed);
    let real = dirs.real_path(source).map_err(|e| match e {
        Outside::Io { path, source } => InputErrorKind::Io { path, source },
        _ => InputErrorKind::NotAllowed {
            path: source.display().to_string(),
        },
    })?;
    let mut links = 0;
    copy_tree(&dirs, &real, dest, &mut links)
}

fn copy_tree(
    dirs: &AllowedDirs,
    real: &Path,
    dest: &Path,
    links: &mut usize,
) -> Result<(), InputErrorKind> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| InputErrorKind::Io { path, source }
    };
    let meta = std::fs::metadata(real).map_err(io_err(real))?;
    if meta.is_file() {
        std::fs::copy(real, dest).map_err(io_err(dest))?;
        return Ok(());
    }
    if !meta.is_dir() {
        return Err(InputErrorKind::Io {
            path: real.to_owned(),
            source: io::Error::other("not a regular file or directory"),
        });
    }
    std::fs::create_dir(dest).map_err(io_err(dest))?;
    let mut entries: Vec<_> = std::fs::read_dir(real)
        .map_err(io_err(real))?
        .collect::<Result<_, _>>()
        .map_err(io_err(real))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let ft = entry.file_type().map_err(io_err(&path))?;
        let child_real = if ft.is_symlink() {
            *links += 1;
            if *links > MAX_LOCAL_LINKS {
                return Err(InputErrorKind::Links {
                    path: path.display().to_string(),
                });
            }
            let target = std::fs::canonicalize(&path).map_err(io_err(&path))?;
            if !dirs.contains(&target) {
                return Err(InputErrorKind::NotAllowed {
                    path: format!("{} (a symlink to {})", path.display(), target.display()),
                });
            }
            target
        } else {
            path
        };
        copy_tree(dirs, &child_real, &dest.join(entry.file_name()), links)?;
    }
    Ok(())
}

/// Gives the owner write permission on everything under `<exec>/inputs`
/// again, so that the execution folder can be removed once the job is done
/// (a read-only directory's entries cannot be deleted by a non-root node).
pub async fn unlock(exec: &Path) -> io::Result<()> {
    let root = exec.join("inputs");
    tokio::task::spawn_blocking(move || {
        if std::fs::symlink_metadata(&root).is_err() {
            return Ok(());
        }
        owner_writable(&root)
    })
    .await
    .expect("chmod task does not panic")
}

fn owner_writable(path: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode() | 0o200;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            owner_writable(&entry?.path())?;
        }
    }
    Ok(())
}

/// Clears the write bits of a materialised input (executables keep `x`).
fn read_only(path: &Path) -> Result<(), (PathBuf, io::Error)> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| (path.to_owned(), e))?;
    if meta.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| (path.to_owned(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| (path.to_owned(), e))?;
            read_only(&entry.path())?;
        }
    }
    let mode = meta.permissions().mode() & !0o222;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| (path.to_owned(), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::job::InlineSource;

    fn inline(target: &str) -> InputSource {
        InputSource {
            source: Source::Inline(InlineSource {
                url: "data:text/plain;base64,aGk=".into(),
            }),
            target: target.into(),
            alias: None,
        }
    }

    fn url(target: &str) -> InputSource {
        InputSource {
            source: Source::Url(protocol::job::UrlSource {
                url: "http://127.0.0.1/x".into(),
            }),
            target: target.into(),
            alias: None,
        }
    }

    #[test]
    fn host_paths_stay_under_the_root() {
        let root = Path::new("/exec/inputs");
        assert_eq!(
            host_path(root, "/inputs/a b/c").unwrap(),
            Path::new("/exec/inputs/inputs/a b/c")
        );
        assert_eq!(
            host_path(root, "/inputs/./x").unwrap(),
            Path::new("/exec/inputs/inputs/x")
        );
        for bad in ["", "/", "rel", "/a/../b", "/..", "/a\0b"] {
            assert!(host_path(root, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn targets_may_not_overlap() {
        let root = Path::new("/e/inputs");
        assert!(check_targets(root, &[inline("/a"), inline("/b"), url("/c"), url("/c")]).is_ok());
        for pair in [
            [inline("/a"), inline("/a")],
            [inline("/a"), inline("/a/b")],
            [inline("/a/b"), url("/a")],
            [url("/a"), inline("/a")],
        ] {
            let err = check_targets(root, &pair).unwrap_err();
            assert_eq!(err.index, 1);
            assert!(matches!(
                err.cause,
                InputErrorKind::TargetOverlaps { other: 0 }
            ));
        }
        // Component-wise: `/ab` is not inside `/a`.
        assert!(check_targets(root, &[inline("/a"), inline("/ab")]).is_ok());
    }
}
