//! The containers and networks of one run, and their removal.

use bollard::Docker;
use bollard::query_parameters::RemoveContainerOptions;

/// Containers and networks of one run, removed when it ends: by
/// [`Resources::remove`], or in the background if the run's future is
/// dropped first.
pub(super) struct Resources {
    docker: Docker,
    pub(super) containers: Vec<String>,
    pub(super) networks: Vec<String>,
}

impl Resources {
    pub(super) fn new(docker: Docker) -> Resources {
        Resources {
            docker,
            containers: Vec::new(),
            networks: Vec::new(),
        }
    }

    pub(super) async fn remove(&mut self) {
        remove_all(
            &self.docker,
            std::mem::take(&mut self.containers),
            std::mem::take(&mut self.networks),
        )
        .await;
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        if self.containers.is_empty() && self.networks.is_empty() {
            return;
        }
        let containers = std::mem::take(&mut self.containers);
        let networks = std::mem::take(&mut self.networks);
        let docker = self.docker.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { remove_all(&docker, containers, networks).await });
        }
    }
}

async fn remove_all(docker: &Docker, containers: Vec<String>, networks: Vec<String>) {
    for id in containers.iter().rev() {
        if let Err(e) = docker
            .remove_container(
                id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    link: false,
                }),
            )
            .await
        {
            tracing::warn!(container = %id, error = %e, "cannot remove a job container");
        }
    }
    for id in networks.iter().rev() {
        if let Err(e) = docker.remove_network(id).await {
            tracing::warn!(network = %id, error = %e, "cannot remove a job network");
        }
    }
}
