//! Results of an execution, stored and published (R-VOL-2).
//!
//! The results folder of an execution holds `stdout`, `stderr`, `exitCode`,
//! one directory per output and, for `http` jobs, `network.log`. It is added
//! to the store as one directory, so its CID names the whole result, and then
//! handed to the job's publisher:
//!
//! - `local` (the default): nothing more; the store serves the CID over iroh
//!   and the requester or `skrei get` fetches it.
//! - `dir:PATH`: the tree is also written to `PATH/<job id>` (or
//!   `PATH/<cid>` when there is no job id).
//! - `s3`: not implemented yet; refused with a clear error.

use std::path::{Path, PathBuf};

use cid::Cid;
use protocol::job::Publisher;

use crate::manifest::check_name;
use crate::store::{AddError, ExportError, Store};

/// Files every results folder has.
pub const REQUIRED: [&str; 3] = ["stdout", "stderr", "exitCode"];

/// Where a result went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The directory CID of the whole result, always in the node's store.
    pub cid: Cid,
    /// For `dir`: the folder the tree was written to.
    pub path: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    #[error("results folder {dir} has no `{file}`")]
    Incomplete { dir: PathBuf, file: &'static str },
    #[error("cannot store results: {0}")]
    Add(#[from] AddError),
    #[error("job id {0:?} cannot name a folder")]
    JobId(String),
    #[error("cannot publish to a directory: {0}")]
    Dir(#[from] ExportError),
    #[error("cannot publish to a directory: {path} does not exist or is not a directory")]
    DirMissing { path: PathBuf },
    #[error("the s3 publisher is not supported by this node yet; use `local` or `dir`")]
    S3Unsupported,
}

/// Stores `results` (a folder laid out as above) and publishes it.
pub async fn publish(
    store: &Store,
    results: &Path,
    publisher: &Publisher,
    job_id: Option<&str>,
) -> Result<Published, PublishError> {
    for file in REQUIRED {
        if !tokio::fs::metadata(results.join(file))
            .await
            .is_ok_and(|m| m.is_file())
        {
            return Err(PublishError::Incomplete {
                dir: results.to_owned(),
                file,
            });
        }
    }
    if matches!(publisher, Publisher::S3(_)) {
        return Err(PublishError::S3Unsupported);
    }
    let cid = store.add_path(results).await?;
    let path = match publisher {
        Publisher::Dir(d) => {
            let base = PathBuf::from(&d.path);
            if !tokio::fs::metadata(&base).await.is_ok_and(|m| m.is_dir()) {
                return Err(PublishError::DirMissing { path: base });
            }
            let name = match job_id {
                Some(id) => {
                    check_name(id).map_err(|_| PublishError::JobId(id.to_string()))?;
                    id.to_string()
                }
                None => cid.to_string(),
            };
            let target = base.join(name);
            store.export(&cid, &target).await?;
            Some(target)
        }
        _ => None,
    };
    Ok(Published { cid, path })
}
