//! The images this node pulled for jobs, kept within `--image-cache`
//! (issue 16).
//!
//! Every image the node pulls is recorded in its database with when a job
//! last used it. After each pull the least recently used are removed from
//! the engine until the recorded ones fit the budget again, skipping those
//! a job is about to run or running. Images the node did not pull (there
//! before, or pulled by the operator) are never recorded, so never removed.
//! Sizes are summed per image, so layers images share count twice: the
//! budget errs on the side of removing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::executor::docker::ReadyImage;
use crate::executor::{DockerExecutor, ExecError};

use super::db::{Db, PulledImage};

/// The pulled images and the budget they are kept to.
pub(super) struct ImageCache {
    db: Arc<Db>,
    budget: u64,
    /// References and engine ids of the images jobs on this node are
    /// readying or running, with how many jobs hold each.
    held: Mutex<HashMap<String, usize>>,
}

/// An image held for one execution, by the reference the job names and,
/// once known, its engine id (another reference may name the same image):
/// not pruned while it lives.
pub(super) struct Held<'a> {
    cache: &'a ImageCache,
    keys: Vec<String>,
}

impl Held<'_> {
    fn hold(&mut self, key: &str) {
        *self.cache.held().entry(key.to_owned()).or_default() += 1;
        self.keys.push(key.to_owned());
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut held = self.cache.held();
        for key in &self.keys {
            if let Some(n) = held.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    held.remove(key);
                }
            }
        }
    }
}

impl ImageCache {
    pub(super) fn new(db: Arc<Db>, budget: u64) -> ImageCache {
        ImageCache {
            db,
            budget,
            held: Mutex::new(HashMap::new()),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `image` in the engine for one execution (pulled when missing and
    /// allowed, `pulling` called first), held until the returned guard
    /// drops; then the budget is enforced on the others.
    pub(super) async fn ready(
        &self,
        docker: &DockerExecutor,
        image: &str,
        pulling: &(dyn Fn() + Sync),
    ) -> Result<(ReadyImage, Held<'_>), ExecError> {
        let mut hold = Held {
            cache: self,
            keys: Vec::new(),
        };
        hold.hold(image);
        let ready = docker.ready_image(image, pulling).await?;
        hold.hold(&ready.id);
        let now = super::core_driver::now_ms();
        let recorded = if ready.pulled {
            self.db.image_pulled(&PulledImage {
                reference: image.to_owned(),
                image_id: ready.id.clone(),
                bytes: ready.bytes,
                last_used_ms: now,
            })
        } else {
            self.db.image_used(&ready.id, now)
        };
        if let Err(e) = recorded {
            tracing::warn!(image, "cannot record the image's use: {e}");
        }
        if ready.pulled {
            self.prune(docker).await;
        }
        Ok((ready, hold))
    }

    /// Removes the least recently used pulled images not held until the
    /// rest fit the budget.
    async fn prune(&self, docker: &DockerExecutor) {
        let images = match self.db.pulled_images() {
            Ok(images) => images,
            Err(e) => {
                tracing::warn!("cannot list the pulled images: {e}");
                return;
            }
        };
        let mut total: u64 = images.iter().map(|i| i.bytes).sum();
        for image in images {
            if total <= self.budget {
                break;
            }
            let held = {
                let held = self.held();
                held.contains_key(&image.reference) || held.contains_key(&image.image_id)
            };
            if held {
                continue;
            }
            if docker.remove_image(&image.reference).await {
                tracing::info!(
                    image = %image.reference,
                    bytes = image.bytes,
                    "removed a pulled image above --image-cache"
                );
                if let Err(e) = self.db.image_removed(&image.reference) {
                    tracing::warn!(image = %image.reference, "cannot forget the image: {e}");
                }
                total = total.saturating_sub(image.bytes);
            }
        }
    }
}
