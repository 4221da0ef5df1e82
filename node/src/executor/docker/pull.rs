//! Pulling the images jobs name from the registries the operator allows
//! (issue 16; R-POL-3, R-SEC-3, R-SEC-5).
//!
//! The engine dials the registry itself, outside any proxy: under
//! `--pull-from '*'` the registry's host must resolve only to ordinary
//! public addresses that are not the node's own, as for a URL input (the
//! rule is [`storage::address::refused`]); a registry the operator names is
//! dialled as named. Credentials come only from the operator's Docker
//! configuration. Jobs needing the same image share one pull, which stops
//! when no job waits for it any more (the engine cancels a pull whose
//! request goes away). An image over `--max-image-size` stops the pull as
//! soon as its layers say so, and is removed if it got in anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bollard::auth::DockerCredentials;
use bollard::query_parameters::{CreateImageOptions, RemoveImageOptions};
use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt, Shared, WeakShared};
use protocol::image::{ImageRef, Pull, PullPolicy};

use super::DockerExecutor;
use crate::executor::ExecError;

/// What a node pulls (`--pull-from`, `--max-image-size`).
#[derive(Debug, Clone)]
pub struct PullConfig {
    /// The registries missing images are pulled from; none by default.
    pub policy: PullPolicy,
    /// Most bytes one image may take, as its layers download and once in
    /// the engine.
    pub max_image_size: u64,
}

impl Default for PullConfig {
    fn default() -> Self {
        PullConfig {
            policy: PullPolicy::default(),
            max_image_size: 10 << 30,
        }
    }
}

/// An image in the engine, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyImage {
    /// The engine's id (`sha256:...`).
    pub id: String,
    /// The reference pinned to the digest the registry served
    /// (`registry/name@sha256:...`), when the image came from a registry.
    pub pinned: Option<String>,
    /// Bytes it takes in the engine.
    pub bytes: u64,
    /// Whether this call pulled it (it was not in the engine).
    pub pulled: bool,
}

/// Pulls in progress, by full reference; weak, so a pull no job waits for
/// any more is dropped, and its request with it.
pub(super) type Pulls =
    Arc<Mutex<HashMap<String, WeakShared<BoxFuture<'static, Result<(), String>>>>>>;

impl DockerExecutor {
    /// The image `image` (as the job names it), pulled first when the
    /// engine lacks it and the node's `--pull-from` allows its registry
    /// (`pulling` is called as the pull starts or is joined).
    pub async fn ready_image(
        &self,
        image: &str,
        pulling: &(dyn Fn() + Sync),
    ) -> Result<ReadyImage, ExecError> {
        if let Some(ready) = self.inspect_ready(image, false).await? {
            return Ok(ready);
        }
        let reference = ImageRef::parse(image).map_err(ExecError::Missing)?;
        let route = self
            .config
            .pull
            .policy
            .route(&reference)
            .map_err(|reason| ExecError::Missing(reason.to_string()))?;
        if let Pull::Public { host } = &route {
            check_registry_host(host, reference.registry()).await?;
        }
        pulling();
        self.shared_pull(&reference)
            .await
            .map_err(ExecError::Missing)?;
        let ready = self.inspect_ready(image, true).await?.ok_or_else(|| {
            ExecError::Missing(format!("image {image} was pulled but is not in the engine"))
        })?;
        let max = self.config.pull.max_image_size;
        if ready.bytes > max {
            self.remove_image(image).await;
            return Err(ExecError::Missing(too_large(image, ready.bytes, max)));
        }
        Ok(ready)
    }

    /// Removes the reference `image` from the engine (the image itself when
    /// it was its last name); an image a container uses stays. Whether it
    /// is gone.
    pub async fn remove_image(&self, image: &str) -> bool {
        match self
            .docker
            .remove_image(image, None::<RemoveImageOptions>, None)
            .await
        {
            Ok(_) => true,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => true,
            Err(e) => {
                tracing::debug!(image, "image kept: {e}");
                false
            }
        }
    }

    /// The engine's view of `image`, or `None` when it lacks it.
    async fn inspect_ready(
        &self,
        image: &str,
        pulled: bool,
    ) -> Result<Option<ReadyImage>, ExecError> {
        match self.docker.inspect_image(image).await {
            Ok(info) => {
                let written = ImageRef::parse(image).ok();
                let pinned = info.repo_digests.unwrap_or_default().into_iter().find(|d| {
                    let Ok(digest) = ImageRef::parse(d) else {
                        return false;
                    };
                    written.as_ref().is_none_or(|w| {
                        w.registry() == digest.registry() && w.repository() == digest.repository()
                    })
                });
                Ok(Some(ReadyImage {
                    id: info.id.unwrap_or_default(),
                    pinned,
                    bytes: info.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    pulled,
                }))
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(ExecError::Unavailable(format!(
                "cannot inspect image {image}: {e}"
            ))),
        }
    }

    /// Joins the pull of `reference` in progress, or starts one.
    async fn shared_pull(&self, reference: &ImageRef) -> Result<(), String> {
        let key = reference.full();
        let pull = {
            let mut pulls = self.pulls.lock().unwrap_or_else(|e| e.into_inner());
            pulls.retain(|_, weak| weak.upgrade().is_some());
            match pulls.get(&key).and_then(WeakShared::upgrade) {
                Some(pull) => pull,
                None => {
                    let pull: Shared<BoxFuture<'static, Result<(), String>>> = pull_image(
                        self.docker.clone(),
                        reference.clone(),
                        self.config.pull.max_image_size,
                    )
                    .boxed()
                    .shared();
                    if let Some(weak) = pull.downgrade() {
                        pulls.insert(key, weak);
                    }
                    pull
                }
            }
        };
        pull.await
    }
}

/// One pull through the engine, to its end or the first layer that puts
/// the image over `max` bytes.
async fn pull_image(docker: bollard::Docker, reference: ImageRef, max: u64) -> Result<(), String> {
    let image = reference.to_string();
    let credentials = credentials(reference.registry()).await;
    tracing::info!(%image, registry = reference.registry(), "pulling image");
    let options = CreateImageOptions {
        from_image: Some(image.clone()),
        ..Default::default()
    };
    let mut stream = docker.create_image(Some(options), None, credentials);
    // Compressed layer sizes, as the engine learns them: the image only
    // grows past them once unpacked.
    let mut layers: HashMap<String, u64> = HashMap::new();
    while let Some(step) = stream.next().await {
        let step = step.map_err(|e| pull_error(&reference, e))?;
        if let (Some(id), Some(total)) = (
            step.id.as_ref(),
            step.progress_detail.as_ref().and_then(|p| p.total),
        ) && total > 0
        {
            layers.insert(id.clone(), total as u64);
            let sum: u64 = layers.values().sum();
            if sum > max {
                return Err(too_large(&image, sum, max));
            }
        }
    }
    tracing::info!(%image, "pulled image");
    Ok(())
}

fn too_large(image: &str, bytes: u64, max: u64) -> String {
    format!(
        "image {image} takes more than {} ({} so far), over this node's --max-image-size; \
         use a smaller image or a node that allows larger ones",
        protocol::link::explain_bytes(max),
        protocol::link::explain_bytes(bytes)
    )
}

/// The engine's error, said in terms of the job's reference.
fn pull_error(reference: &ImageRef, e: bollard::errors::Error) -> String {
    let text = match e {
        bollard::errors::Error::DockerStreamError { error } => error,
        bollard::errors::Error::DockerResponseServerError { message, .. } => message,
        e => e.to_string(),
    };
    match reference.digest() {
        Some(digest) if text.contains("not found") || text.contains("manifest unknown") => format!(
            "pulling image {reference}: the registry {} has no image with digest {digest} \
             ({text}); check the digest the job pins",
            reference.registry()
        ),
        _ if text.contains("no basic auth credentials") || text.contains("unauthorized") => {
            format!(
                "pulling image {reference}: the registry {} asks for credentials this node does \
                 not have ({text}); its operator gives them in the Docker configuration of the \
                 user the node runs as (`docker login {}`)",
                reference.registry(),
                reference.registry()
            )
        }
        _ => format!("pulling image {reference}: {text}"),
    }
}

/// The operator's credentials for `registry`, from their Docker
/// configuration (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`,
/// and the helpers it names); anonymous when there are none. Never a job's.
async fn credentials(registry: &str) -> Option<DockerCredentials> {
    let server = if registry == "docker.io" {
        "https://index.docker.io/v1/".to_owned()
    } else {
        registry.to_owned()
    };
    let lookup = server.clone();
    let found = tokio::task::spawn_blocking(move || docker_credential::get_credential(&lookup))
        .await
        .ok()?;
    match found {
        Ok(docker_credential::DockerCredential::UsernamePassword(username, password)) => {
            Some(DockerCredentials {
                username: Some(username),
                password: Some(password),
                serveraddress: Some(server),
                ..Default::default()
            })
        }
        Ok(docker_credential::DockerCredential::IdentityToken(token)) => Some(DockerCredentials {
            identitytoken: Some(token),
            serveraddress: Some(server),
            ..Default::default()
        }),
        Err(e) => {
            tracing::debug!(registry, "pulling anonymously: {e}");
            None
        }
    }
}

/// R-SEC-3 under `*`: the registry's host must resolve only to ordinary
/// public addresses that are not this node's.
async fn check_registry_host(host: &str, registry: &str) -> Result<(), ExecError> {
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, 443))
        .await
        .map_err(|e| {
            ExecError::Missing(format!("registry {registry}: cannot resolve {host}: {e}"))
        })?
        .collect();
    for addr in &addrs {
        if let Some(why) = storage::address::refused(addr.ip()) {
            return Err(ExecError::Missing(format!(
                "registry {registry} resolves to {} ({why}); a node pulls from such an address \
                 only when its operator names the registry (--pull-from {registry})",
                addr.ip()
            )));
        }
    }
    if addrs.is_empty() {
        return Err(ExecError::Missing(format!(
            "registry {registry}: {host} has no address"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// R-SEC-3 under `*`: a registry name that resolves to this node's
    /// loopback is refused before the engine dials it.
    #[tokio::test]
    async fn a_registry_name_resolving_to_a_special_address_is_refused() {
        let err = check_registry_host("localhost", "localhost:5000")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("registry localhost:5000 resolves to"), "{err}");
        assert!(err.contains("--pull-from localhost:5000"), "{err}");
    }

    #[test]
    fn a_wrong_digest_and_missing_credentials_are_explained() {
        let pinned = ImageRef::parse(&format!("r.example/x@sha256:{}", "0".repeat(64))).unwrap();
        let e = bollard::errors::Error::DockerStreamError {
            error: "manifest for r.example/x@sha256:00 not found: manifest unknown".into(),
        };
        assert!(pull_error(&pinned, e).contains("has no image with digest sha256:0000"));
        let tagged = ImageRef::parse("r.example/x:1").unwrap();
        let e = bollard::errors::Error::DockerStreamError {
            error: "Head \"https://r.example/v2/x/manifests/1\": no basic auth credentials".into(),
        };
        assert!(pull_error(&tagged, e).contains("docker login r.example"));
    }
}
