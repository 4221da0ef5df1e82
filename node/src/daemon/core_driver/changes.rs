//! What the node watches for changes: its allowlist file (R-POL-2) and its
//! Docker engine's images (R-POL-3).

use std::time::{Duration, SystemTime};

use super::super::config::load_policy;
use super::{CoreDriver, Internal, now_ms};

/// How often the list of local Docker images is refreshed.
const IMAGES_EVERY: Duration = Duration::from_secs(5);

impl CoreDriver {
    /// Keeps the compute machine's list of local Docker images current
    /// (R-POL-3: bid only with the image at hand). The first list is taken
    /// before any announcement is answered.
    pub(super) async fn watch_images(&mut self) {
        let exec = self.exec.clone();
        let Some(docker) = exec.engines.docker.as_ref() else {
            return;
        };
        match docker.image_refs().await {
            Ok(images) => self.core.set_local_images(Some(images)),
            Err(e) => tracing::warn!("{e}"),
        }
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let Some(docker) = exec.engines.docker.as_ref() else {
                return;
            };
            loop {
                tokio::select! {
                    // The driver stopped: let go of the engines and the store.
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(IMAGES_EVERY) => {}
                }
                match docker.image_refs().await {
                    Ok(images) => {
                        if tx.send(Internal::Images(images)).is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!("{e}"),
                }
            }
        });
    }

    /// Re-reads the allowlist when its file changed (or on SIGHUP), keeping
    /// the old policy when the new file is wrong (R-POL-2).
    pub(super) fn check_allowlist(&mut self, forced: bool) {
        let Some(path) = self.config.allowlist.clone() else {
            return;
        };
        let now = stamp(&path);
        if !forced && now == self.allowlist_stamp {
            return;
        }
        self.allowlist_stamp = now;
        match load_policy(self.config.accept_network, Some(&path)) {
            Ok(policy) => {
                if &policy != self.core.compute().policy() {
                    tracing::info!(allowlist = %path.display(), "allowlist reloaded");
                    self.core.set_policy(now_ms(), policy);
                }
            }
            Err(e) => tracing::error!("keeping the previous allowlist: {e}"),
        }
    }
}

pub(super) fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}
