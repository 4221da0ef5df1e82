//! Writing content out to the file system (R-VOL-2 `job get`, R-VOL-3 `get`).
//!
//! The same walk serves the node, which writes inputs and published results
//! from its own store, and the `skrei` client, which reads blobs through the
//! node's API and writes them as the user who runs it (R-SEC-1): a
//! [`Source`] gives manifests, exact blob sizes and blob bytes, and
//! [`export`] does the rest, with every rule in one place:
//!
//! - the whole tree is measured first, per path as it will be written (a
//!   blob listed 300 times, or a subtree listed many times over, counts each
//!   time), from the blobs' own sizes rather than what a manifest claims; a
//!   tree over the byte budget or over [`MAX_ENTRIES`] is refused before
//!   anything is written (R-SEC-5);
//! - names come from validated manifests and directories nest at most
//!   [`MAX_DEPTH`] deep, so nothing is written outside the target;
//! - everything is written into a hidden sibling of the target and moved
//!   into place at the end, so a failure leaves no half-written tree;
//! - files and folders are created with the writer's umask (the executable
//!   bit is the one permission a manifest carries).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cid::Cid;

use crate::cid::{self as cids, Content, Kind};
use crate::manifest::{Manifest, Mode};
use crate::store::{ExportError, MAX_DEPTH, MAX_ENTRIES, Store, StoreError};

/// Where [`export`] reads content from.
pub trait Source: Sync {
    /// A directory's manifest, decoded and validated.
    fn manifest(
        &self,
        content: Content,
    ) -> impl Future<Output = Result<Manifest, StoreError>> + Send;

    /// A file blob's exact size, as the store verified it.
    fn file_size(&self, content: Content) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Creates `target` (which does not exist) holding the file blob's
    /// bytes, with permissions `0o666` (`0o777` when `executable`) less the
    /// umask; returns the bytes written, which must be the blob's size.
    fn write_file(
        &self,
        content: Content,
        target: &Path,
        executable: bool,
    ) -> impl Future<Output = Result<u64, ExportError>> + Send;
}

impl Source for Store {
    async fn manifest(&self, content: Content) -> Result<Manifest, StoreError> {
        Store::manifest(self, content, 0).await
    }

    async fn file_size(&self, content: Content) -> Result<u64, StoreError> {
        self.complete_size(content).await
    }

    async fn write_file(
        &self,
        content: Content,
        target: &Path,
        executable: bool,
    ) -> Result<u64, ExportError> {
        let cid = content.cid();
        let size = self.complete_size(content).await?;
        let io_err = |source| ExportError::Io {
            cid,
            target: target.to_owned(),
            source,
        };
        // iroh-blobs writes the file itself (a copy, or a reflink where
        // the file system has them), created with the process's umask.
        self.blobs
            .blobs()
            .export(content.blob_hash(), target)
            .finish()
            .await
            .map_err(|e| io_err(io::Error::other(format!("{e:#}"))))?;
        if executable {
            make_executable(target).await.map_err(io_err)?;
        }
        Ok(size)
    }
}

impl Store {
    /// Writes the content to `target`, which must not exist (its parent
    /// must): a file for a file CID, a directory tree for a directory CID,
    /// refusing content that would take more than `max_bytes` on disk. See
    /// [`crate::export`] for the rules.
    pub async fn export(
        &self,
        cid: &Cid,
        target: &Path,
        max_bytes: u64,
    ) -> Result<ExportReport, ExportError> {
        export(self, cid, target, max_bytes).await
    }
}

/// What an [`export`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportReport {
    /// Files and folders written.
    pub entries: u64,
    /// Bytes of the files written.
    pub bytes: u64,
}

/// The size of a tree as it would be written, before writing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TreeSize {
    /// Files and folders, counted per path (saturating).
    pub entries: u64,
    /// Bytes of the files, counted per path (saturating).
    pub bytes: u64,
}

/// Writes `cid` to `target`, which must not exist (its parent must): a file
/// for a file CID, a folder tree for a directory CID. Refuses, before
/// writing anything, content that would take more than `max_bytes` on disk.
pub async fn export<S: Source>(
    source: &S,
    cid: &Cid,
    target: &Path,
    max_bytes: u64,
) -> Result<ExportReport, ExportError> {
    let content = cids::content(cid).map_err(StoreError::from)?;
    let io_err = |target: &Path| {
        let target = target.to_owned();
        move |source| ExportError::Io {
            cid: *cid,
            target,
            source,
        }
    };
    let target = std::path::absolute(target).map_err(io_err(target))?;
    if tokio::fs::symlink_metadata(&target).await.is_ok() {
        return Err(ExportError::Exists {
            cid: *cid,
            target: target.clone(),
        });
    }
    let mut plan = Plan::default();
    let size = plan.measure(source, content, 0).await?;
    if size.entries > MAX_ENTRIES {
        return Err(StoreError::TooManyEntries { cid: *cid }.into());
    }
    if size.bytes > max_bytes {
        return Err(ExportError::TooLarge {
            cid: *cid,
            bytes: size.bytes,
            max: max_bytes,
        });
    }

    let partial = partial_path(&target).ok_or_else(|| {
        io_err(&target)(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the target has no folder name",
        ))
    })?;
    let mut report = ExportReport::default();
    let written = plan
        .write(source, content, false, &partial, &mut report, size)
        .await;
    let moved = match written {
        Ok(()) => move_into_place(&partial, &target, content.kind)
            .await
            .map_err(|source| match source.kind() {
                io::ErrorKind::AlreadyExists => ExportError::Exists {
                    cid: *cid,
                    target: target.clone(),
                },
                _ => io_err(&target)(source),
            }),
        Err(e) => Err(e),
    };
    if let Err(e) = moved {
        remove_partial(&partial).await;
        return Err(e);
    }
    Ok(report)
}

/// Measures `cid` as [`export`] would write it, without writing anything.
pub async fn measure<S: Source>(source: &S, cid: &Cid) -> Result<TreeSize, StoreError> {
    let content = cids::content(cid)?;
    Plan::default().measure(source, content, 0).await
}

/// The manifests and sizes read while measuring, reused while writing.
#[derive(Default)]
struct Plan {
    manifests: HashMap<Content, Manifest>,
    sizes: HashMap<Content, TreeSize>,
}

impl Plan {
    async fn measure<S: Source>(
        &mut self,
        source: &S,
        content: Content,
        depth: usize,
    ) -> Result<TreeSize, StoreError> {
        if let Some(size) = self.sizes.get(&content) {
            return Ok(*size);
        }
        let size = match content.kind {
            Kind::File => TreeSize {
                entries: 1,
                bytes: source.file_size(content).await?,
            },
            Kind::Dir => {
                if depth > MAX_DEPTH {
                    return Err(StoreError::TooDeep { cid: content.cid() });
                }
                let manifest = source.manifest(content).await?;
                let mut size = TreeSize {
                    entries: 1,
                    bytes: 0,
                };
                for entry in manifest.entries.values() {
                    let child = entry.content()?;
                    let below = Box::pin(self.measure(source, child, depth + 1)).await?;
                    size.entries = size.entries.saturating_add(below.entries);
                    size.bytes = size.bytes.saturating_add(below.bytes);
                    // Stop early on a bomb: no need to walk all of it.
                    if size.entries > MAX_ENTRIES {
                        return Err(StoreError::TooManyEntries { cid: content.cid() });
                    }
                }
                self.manifests.insert(content, manifest);
                size
            }
        };
        self.sizes.insert(content, size);
        Ok(size)
    }

    /// Writes what [`Plan::measure`] measured; `planned` is the whole
    /// tree's size, which the bytes written may not exceed (a source whose
    /// blobs grew since they were measured is caught, not trusted).
    async fn write<S: Source>(
        &self,
        source: &S,
        content: Content,
        executable: bool,
        target: &Path,
        report: &mut ExportReport,
        planned: TreeSize,
    ) -> Result<(), ExportError> {
        let cid = content.cid();
        report.entries += 1;
        match content.kind {
            Kind::File => {
                let n = source.write_file(content, target, executable).await?;
                report.bytes = report.bytes.saturating_add(n);
                if report.bytes > planned.bytes {
                    return Err(StoreError::Store {
                        cid,
                        reason: "the content changed while it was written out".into(),
                    }
                    .into());
                }
            }
            Kind::Dir => {
                let manifest = self
                    .manifests
                    .get(&content)
                    .ok_or(StoreError::Missing { cid })?;
                tokio::fs::create_dir(target)
                    .await
                    .map_err(|source| ExportError::Io {
                        cid,
                        target: target.to_owned(),
                        source,
                    })?;
                for (name, entry) in &manifest.entries {
                    let child = entry.content().map_err(StoreError::from)?;
                    Box::pin(self.write(
                        source,
                        child,
                        entry.mode == Mode::Executable,
                        &target.join(name),
                        report,
                        planned,
                    ))
                    .await?;
                }
            }
        }
        Ok(())
    }
}

/// A hidden sibling of `target` that no other export uses.
fn partial_path(target: &Path) -> Option<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = target.file_name()?.to_string_lossy();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Some(target.with_file_name(format!(".{name}.partial-{}-{n}", std::process::id())))
}

/// Moves the finished export to `target`, never replacing anything there.
async fn move_into_place(partial: &Path, target: &Path, kind: Kind) -> io::Result<()> {
    match kind {
        // A hard link fails if the target appeared meanwhile.
        Kind::File => {
            tokio::fs::hard_link(partial, target).await?;
            tokio::fs::remove_file(partial).await
        }
        Kind::Dir => {
            // rename(2) would replace an empty folder made meanwhile: check
            // once more, as close to the rename as it gets.
            if tokio::fs::symlink_metadata(target).await.is_ok() {
                return Err(io::ErrorKind::AlreadyExists.into());
            }
            tokio::fs::rename(partial, target).await
        }
    }
}

async fn remove_partial(partial: &Path) {
    let removed = match tokio::fs::symlink_metadata(partial).await {
        Ok(meta) if meta.is_dir() => tokio::fs::remove_dir_all(partial).await,
        Ok(_) => tokio::fs::remove_file(partial).await,
        Err(_) => Ok(()),
    };
    if let Err(e) = removed {
        tracing::warn!(path = %partial.display(), "could not remove a partial export: {e}");
    }
}

/// Creates a new file for a blob's bytes, with the umask applied to
/// `0o666`, or `0o777` for an executable.
pub async fn create_file(target: &Path, executable: bool) -> io::Result<tokio::fs::File> {
    let mut options = tokio::fs::OpenOptions::new();
    options
        .write(true)
        .create_new(true)
        .mode(if executable { 0o777 } else { 0o666 });
    options.open(target).await
}

/// Adds the executable bits wherever the file is readable (what `chmod +x`
/// does under the usual umasks): for files an engine created with its own
/// mode.
pub async fn make_executable(target: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = tokio::fs::metadata(target).await?.permissions().mode();
    let with_x = mode | ((mode & 0o444) >> 2);
    tokio::fs::set_permissions(target, std::fs::Permissions::from_mode(with_x)).await
}
