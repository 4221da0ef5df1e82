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
//!   `PATH/<cid>` when there is no job id), only when PATH, symlinks
//!   resolved, lies under a folder the node's operator lists
//!   (`--publish-dir`, R-SEC-2; the rule of [`crate::allowed`]). The job
//!   comes from a peer: without the list it would choose where the node
//!   writes.
//! - `s3`: every file of the tree is uploaded to the node's configured
//!   S3-compatible endpoint, at `<key prefix>/<job id or cid>/<path>`
//!   ([`crate::s3`]); empty directories have no S3 form and are left out.

use std::path::{Path, PathBuf};

use cid::Cid;
use protocol::job::Publisher;

use crate::allowed::{AllowedDirs, Outside};
use crate::manifest::check_name;
use crate::s3::{S3Client, S3Error};
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
    /// For `s3`: `s3://bucket/prefix/` the files were uploaded under.
    pub url: Option<String>,
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
    #[error(
        "cannot publish to {path}: it is not under a folder this node's operator lists with \
         --publish-dir"
    )]
    DirNotAllowed { path: PathBuf },
    #[error("this node has no S3 endpoint configured; use the `local` or `dir` publisher")]
    S3Unconfigured,
    #[error("cannot publish to S3: {0}")]
    S3(#[from] S3Error),
}

/// Stores `results` (a folder laid out as above) and publishes it. `dirs`:
/// the folders `dir` publishers may write under (the operator's
/// `--publish-dir`); with none, `dir` publishers are refused.
pub async fn publish(
    store: &Store,
    results: &Path,
    publisher: &Publisher,
    job_id: Option<&str>,
    s3: Option<&S3Client>,
    dirs: &[PathBuf],
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
    let s3 = match publisher {
        Publisher::S3(p) => {
            let client = s3.ok_or(PublishError::S3Unconfigured)?;
            client.check_job(p.endpoint.as_deref(), p.region.as_deref())?;
            Some((client, p))
        }
        _ => None,
    };
    // Refused before anything is stored or written.
    let dir_base = match publisher {
        Publisher::Dir(d) => Some(allowed_base(PathBuf::from(&d.path), dirs.to_vec()).await?),
        _ => None,
    };
    if let Some(id) = job_id {
        check_name(id).map_err(|_| PublishError::JobId(id.to_string()))?;
    }
    let cid = store.add_path(results).await?;
    let name = job_id.map_or_else(|| cid.to_string(), str::to_string);
    let mut published = Published {
        cid,
        path: None,
        url: None,
    };
    match publisher {
        Publisher::Dir(_) => {
            let base = dir_base.expect("checked above");
            let target = base.join(name);
            // The results are the node's own, just made: no budget beyond
            // the disk.
            store.export(&cid, &target, u64::MAX).await?;
            published.path = Some(target);
        }
        Publisher::S3(_) => {
            let (client, p) = s3.expect("checked above");
            let mut prefix = p.key.trim_start_matches('/').to_string();
            if !prefix.is_empty() && !prefix.ends_with('/') {
                prefix.push('/');
            }
            prefix.push_str(&name);
            prefix.push('/');
            client.upload_tree(&p.bucket, &prefix, results).await?;
            published.url = Some(format!("s3://{}/{prefix}", p.bucket));
        }
        Publisher::Local => {}
    }
    Ok(published)
}

/// The real path of a `dir` publisher's folder, if the operator allows it.
async fn allowed_base(path: PathBuf, dirs: Vec<PathBuf>) -> Result<PathBuf, PublishError> {
    let checked = path.clone();
    let resolved = tokio::task::spawn_blocking(move || {
        let real = AllowedDirs::resolve(&dirs).real_path(&checked)?;
        if std::fs::metadata(&real).is_ok_and(|m| m.is_dir()) {
            Ok(real)
        } else {
            Err(Outside::Io {
                path: checked,
                source: std::io::ErrorKind::NotADirectory.into(),
            })
        }
    })
    .await;
    match resolved {
        Ok(Ok(real)) => Ok(real),
        Ok(Err(Outside::Io { .. })) => Err(PublishError::DirMissing { path }),
        // Refused, or the runtime is shutting down: write nothing.
        _ => Err(PublishError::DirNotAllowed { path }),
    }
}
