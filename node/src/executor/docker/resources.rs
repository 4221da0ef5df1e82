//! The containers and networks of one run, and their removal.

use std::sync::Arc;

use bollard::Docker;
use bollard::query_parameters::RemoveContainerOptions;

use super::firewall::HostGuard;

/// Containers and networks of one run, removed when it ends: by
/// [`Resources::remove`], or in the background if the run's future is
/// dropped first. The bridges the guard refuses the host leave its set
/// after their networks are gone, never before.
pub(super) struct Resources {
    docker: Docker,
    guard: Option<Arc<HostGuard>>,
    pub(super) containers: Vec<String>,
    pub(super) networks: Vec<String>,
    pub(super) guarded: Vec<String>,
}

impl Resources {
    pub(super) fn new(docker: Docker, guard: Option<Arc<HostGuard>>) -> Resources {
        Resources {
            docker,
            guard,
            containers: Vec::new(),
            networks: Vec::new(),
            guarded: Vec::new(),
        }
    }

    pub(super) async fn remove(&mut self) {
        remove_all(
            &self.docker,
            std::mem::take(&mut self.containers),
            std::mem::take(&mut self.networks),
        )
        .await;
        unguard(self.guard.as_deref(), std::mem::take(&mut self.guarded)).await;
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        if self.containers.is_empty() && self.networks.is_empty() && self.guarded.is_empty() {
            return;
        }
        let containers = std::mem::take(&mut self.containers);
        let networks = std::mem::take(&mut self.networks);
        let guarded = std::mem::take(&mut self.guarded);
        let docker = self.docker.clone();
        let guard = self.guard.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                remove_all(&docker, containers, networks).await;
                unguard(guard.as_deref(), guarded).await;
            });
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

async fn unguard(guard: Option<&HostGuard>, bridges: Vec<String>) {
    let Some(guard) = guard else {
        return;
    };
    for bridge in bridges {
        guard.remove(&bridge).await;
    }
}
