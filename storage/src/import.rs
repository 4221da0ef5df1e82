//! Adding a file or folder tree (R-VOL-3 `skrei add`).
//!
//! The same walk serves the node, which adds from its own file system
//! (`skrei add --data-dir`, results), and the `skrei` client, which reads
//! the user's files as that user and streams them to the node through its
//! API (R-SEC-1): a [`Sink`] stores blobs and manifests, [`add`] walks the
//! tree with every rule in one place:
//!
//! - symbolic links and special files are refused, not followed;
//! - names must be UTF-8 single path components ([`check_name`]);
//! - a file reached again through a hard link is stored and sent once.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;

use cid::Cid;

use crate::cid::{self as cids, Kind};
use crate::manifest::{Entry, Manifest, Mode, check_name};
use crate::store::{AddError, Store};

/// Where [`add`] puts what it reads.
pub trait Sink: Sync {
    /// Stores one regular file's bytes (`size` as the walk saw it) and
    /// returns its `raw` CID.
    fn add_file(
        &self,
        path: &Path,
        size: u64,
    ) -> impl Future<Output = Result<Cid, AddError>> + Send;

    /// Stores a folder's manifest, whose entries are all stored already,
    /// and returns its `dag-cbor` CID.
    fn add_manifest(
        &self,
        manifest: &Manifest,
        path: &Path,
    ) -> impl Future<Output = Result<Cid, AddError>> + Send;
}

impl Sink for Store {
    async fn add_file(&self, path: &Path, size: u64) -> Result<Cid, AddError> {
        let hash = self.import_file(path, size).await?;
        Ok(cids::file_cid(*hash.as_bytes()))
    }

    async fn add_manifest(&self, manifest: &Manifest, path: &Path) -> Result<Cid, AddError> {
        self.store_manifest(manifest, path).await
    }
}

impl Store {
    /// Adds a file or a directory tree, streaming each file into the store,
    /// and returns its CID. See [`crate::import`] for the rules.
    pub async fn add_path(&self, path: &Path) -> Result<Cid, AddError> {
        let cid = crate::import::add(self, path).await?;
        self.sync(path).await?;
        Ok(cid)
    }
}

/// Adds the file or folder at `path` to `sink` and returns its CID.
pub async fn add<S: Sink>(sink: &S, path: &Path) -> Result<Cid, AddError> {
    let path = std::path::absolute(path).map_err(|source| AddError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut links = HashMap::new();
    Ok(add_any(sink, &path, &mut links).await?.cid)
}

/// Files already added in this walk, by (device, inode).
type Links = HashMap<(u64, u64), Entry>;

async fn add_any<S: Sink>(sink: &S, path: &Path, links: &mut Links) -> Result<Entry, AddError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let read = |source| AddError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = tokio::fs::symlink_metadata(path).await.map_err(read)?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Err(AddError::Symlink {
            path: path.to_owned(),
        });
    }
    if ft.is_file() {
        let key = (meta.dev(), meta.ino());
        if let Some(entry) = links.get(&key) {
            return Ok(entry.clone());
        }
        let cid = sink.add_file(path, meta.len()).await?;
        let mode = if meta.permissions().mode() & 0o111 != 0 {
            Mode::Executable
        } else {
            Mode::File
        };
        let entry = Entry {
            cid,
            size: meta.len(),
            mode,
        };
        if meta.nlink() > 1 {
            links.insert(key, entry.clone());
        }
        return Ok(entry);
    }
    if !ft.is_dir() {
        return Err(AddError::Special {
            path: path.to_owned(),
        });
    }
    let mut manifest = Manifest::default();
    let mut dir = tokio::fs::read_dir(path).await.map_err(read)?;
    while let Some(item) = dir.next_entry().await.map_err(read)? {
        let child = item.path();
        let name = item.file_name().into_string().map_err(|_| AddError::Name {
            path: child.clone(),
            reason: "not UTF-8".into(),
        })?;
        check_name(&name).map_err(|e| AddError::Name {
            path: child.clone(),
            reason: e.to_string(),
        })?;
        let entry = Box::pin(add_any(sink, &child, links)).await?;
        manifest.entries.insert(name, entry);
    }
    let size = manifest.size();
    let cid = sink.add_manifest(&manifest, path).await?;
    debug_assert_eq!(
        crate::cid::content(&cid).map(|c| c.kind).ok(),
        Some(Kind::Dir)
    );
    Ok(Entry {
        cid,
        size,
        mode: Mode::Dir,
    })
}
