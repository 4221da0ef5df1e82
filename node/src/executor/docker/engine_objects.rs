//! The engine objects of one run, through bollard: its networks and
//! containers (recorded in [`Resources`] so they are removed whatever
//! happens), the attach stream its output comes through, and the ends of a
//! container (it exited, or is killed).

use std::collections::HashMap;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, NetworkCreateRequest};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, KillContainerOptions,
};
use futures::StreamExt;

use super::resources::Resources;
use super::{DockerExecutor, engine};
use crate::executor::ExecError;
use crate::executor::output::CappedOutput;

impl DockerExecutor {
    pub(super) async fn create_network(
        &self,
        name: &str,
        internal: bool,
        options: HashMap<String, String>,
        labels: &HashMap<String, String>,
        resources: &mut Resources,
    ) -> Result<String, ExecError> {
        let created = self
            .docker
            .create_network(NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".into()),
                internal: Some(internal),
                // IPv4 only: jobs on internal networks get no IPv6 at all
                // (see `isolation`), the guard refuses the host either way.
                enable_ipv6: Some(false),
                options: Some(options),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await
            .map_err(engine("creating the job's network"))?;
        resources.networks.push(created.id.clone());
        Ok(created.id)
    }

    pub(super) async fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
        resources: &mut Resources,
    ) -> Result<String, ExecError> {
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.to_string()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| ExecError::Missing(format!("the container cannot be created: {e}")))?;
        resources.containers.push(created.id.clone());
        Ok(created.id)
    }

    /// Streams the container's stdout and stderr into capped files until
    /// the container ends. Attached before start, so nothing is missed.
    pub(super) async fn attach(
        &self,
        id: &str,
        stdout: CappedOutput,
        stderr: CappedOutput,
    ) -> Result<tokio::task::JoinHandle<()>, ExecError> {
        let attached = self
            .docker
            .attach_container(
                id,
                Some(AttachContainerOptions {
                    stream: true,
                    stdout: true,
                    stderr: true,
                    logs: false,
                    stdin: false,
                    detach_keys: None,
                }),
            )
            .await
            .map_err(engine("attaching to the container"))?;
        let mut output = attached.output;
        Ok(tokio::spawn(async move {
            while let Some(Ok(chunk)) = output.next().await {
                // A full disk loses output, not the run: the counts still
                // report what the task wrote.
                let _ = match chunk {
                    LogOutput::StdErr { message } => stderr.append(&message),
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        stdout.append(&message)
                    }
                    LogOutput::StdIn { .. } => Ok(()),
                };
            }
        }))
    }

    /// Resolves when the container has stopped. The wait request can end
    /// early (the client's request timeout, a dropped connection), so the
    /// container's state decides.
    pub(super) async fn exited(&self, id: &str) {
        loop {
            let _ = self.docker.wait_container(id, None).into_future().await;
            match self.docker.inspect_container(id, None).await {
                Ok(c) if c.state.as_ref().and_then(|s| s.running) == Some(true) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => return,
            }
        }
    }

    pub(super) async fn kill(&self, id: &str) {
        let _ = self
            .docker
            .kill_container(
                id,
                Some(KillContainerOptions {
                    signal: "SIGKILL".into(),
                }),
            )
            .await;
    }
}
