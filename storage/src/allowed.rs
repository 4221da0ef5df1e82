//! The folders a node's operator lets peers' jobs use (R-SEC-2): where
//! local-path inputs may come from (`--local-inputs`) and where `dir`
//! publishers may write (`--publish-dir`). One rule for both:
//!
//! - the path a job names must be absolute and may not contain `..` (a path
//!   that climbs is a mistake or an attack, so it is refused rather than
//!   resolved);
//! - it is resolved, symlinks included, and the real path must lie under
//!   the real path of one of the folders;
//! - a folder that does not exist (yet) allows nothing.
//!
//! Checked when the path is used, not only when the job is bid on: the
//! compute state machine's bid-time check sees only the text.

use std::io;
use std::path::{Component, Path, PathBuf};

/// The operator's folders, resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedDirs {
    roots: Vec<PathBuf>,
}

/// Why a path was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Outside {
    /// Not absolute, or with `..`, or its real path is under no folder.
    #[error("{path} is not under a folder this node's operator allows")]
    NotAllowed {
        /// The path as the job named it, or where a symlink led.
        path: String,
    },
    /// It could not be resolved (it does not exist, a loop...).
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl AllowedDirs {
    /// Resolves the operator's folders (blocking: it reads the file system).
    pub fn resolve(dirs: &[PathBuf]) -> AllowedDirs {
        AllowedDirs {
            roots: dirs
                .iter()
                .filter_map(|d| std::fs::canonicalize(d).ok())
                .collect(),
        }
    }

    /// Whether a real (already resolved) path lies under a folder.
    pub fn contains(&self, real: &Path) -> bool {
        self.roots.iter().any(|r| real.starts_with(r))
    }

    /// The real path of `path`, if it is under a folder (blocking).
    pub fn real_path(&self, path: &Path) -> Result<PathBuf, Outside> {
        let not_allowed = || Outside::NotAllowed {
            path: path.display().to_string(),
        };
        if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
            return Err(not_allowed());
        }
        let real = std::fs::canonicalize(path).map_err(|source| Outside::Io {
            path: path.to_owned(),
            source,
        })?;
        if !self.contains(&real) {
            return Err(not_allowed());
        }
        Ok(real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_sec_2_paths_resolve_under_the_folders_or_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let allowed = tmp.path().join("allowed");
        let other = tmp.path().join("other");
        std::fs::create_dir_all(allowed.join("sub")).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::os::unix::fs::symlink(&other, allowed.join("escape")).unwrap();
        let dirs = AllowedDirs::resolve(&[allowed.clone(), tmp.path().join("missing")]);
        let real = std::fs::canonicalize(&allowed).unwrap();
        assert_eq!(dirs.real_path(&allowed).unwrap(), real);
        assert_eq!(
            dirs.real_path(&allowed.join("sub")).unwrap(),
            real.join("sub")
        );
        for refused in [
            other.clone(),
            allowed.join("escape"),
            allowed.join("sub/../../other"),
            PathBuf::from("relative"),
        ] {
            assert!(
                matches!(dirs.real_path(&refused), Err(Outside::NotAllowed { .. })),
                "{}",
                refused.display()
            );
        }
        assert!(matches!(
            dirs.real_path(&allowed.join("nope")),
            Err(Outside::Io { .. })
        ));
        assert!(AllowedDirs::resolve(&[]).real_path(&allowed).is_err());
    }
}
