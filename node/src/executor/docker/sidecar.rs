//! The `http` job's proxy sidecar: `skrei proxy` in an image the node builds
//! from its own executable (no registry involved), `FROM scratch` with the
//! executable and the shared libraries `ldd` lists.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkConnectRequest};
use bollard::query_parameters::{AttachContainerOptions, BuildImageOptions};
use futures::StreamExt;
use protocol::domain::DomainSet;

use super::{
    CappedOutput, DockerConfig, DockerExecutor, DockerTask, ExecError, ExecutionDir, HttpSupport,
    PROXY_PORT, Resources, SIDECAR_START, engine, locked_down,
};

/// The label on images of skrei itself, for pruning old builds' images.
const SELF_IMAGE_LABEL: &str = "skrei.self-image";

/// Where the executable sits in the image.
const EXE_IN_IMAGE: &str = "/skrei";

/// The arguments of `skrei proxy` for one job; audit lines go to stdout,
/// which the executor collects into `network.log`. `own` are the host's
/// addresses: the sidecar's own interfaces are its container's, so the
/// host's must be named (R-SEC-3).
pub(super) fn proxy_args(
    config: &DockerConfig,
    job_id: &str,
    domains: &DomainSet,
    extra_deny: &[std::net::SocketAddr],
    own: &[IpAddr],
) -> Vec<String> {
    let mut args: Vec<String> = [
        "proxy",
        "--listen",
        &format!("0.0.0.0:{PROXY_PORT}"),
        "--job-id",
        job_id,
        "--rate",
        &config.http_rate.to_string(),
        "--audit",
        "/dev/stdout",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for d in domains.iter() {
        args.push("--allow".into());
        args.push(d.to_string());
    }
    for a in config.deny.iter().chain(extra_deny) {
        args.push("--deny".into());
        args.push(a.to_string());
    }
    for ip in own {
        args.push("--own-address".into());
        args.push(ip.to_string());
    }
    for r in &config.allow_ranges {
        args.push("--allow-range".into());
        args.push(r.to_string());
    }
    for (name, ip) in &config.resolve {
        args.push("--resolve".into());
        args.push(format!("{name}={ip}"));
    }
    for (flag, ports) in [
        ("--connect-ports", &config.connect_ports),
        ("--http-ports", &config.http_ports),
    ] {
        if !ports.is_empty() {
            args.push(flag.into());
            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
            args.push(ports.join(","));
        }
    }
    args
}

/// Builds the image of `exe` (its entrypoint: `skrei`; the sidecar runs
/// `skrei proxy` in it, `skrei docker image` offers it for running nodes)
/// unless this engine already has it; returns its tag. The tag follows the executable's size and modification
/// time, so a new build of the node gets a new image.
pub(super) async fn ensure_image(docker: &Docker, exe: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(exe)
        .map_err(|e| format!("cannot read the sidecar executable {}: {e}", exe.display()))?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    exe.hash(&mut h);
    meta.len().hash(&mut h);
    meta.modified().ok().hash(&mut h);
    let tag = format!("skrei:{:016x}", h.finish());
    prune_old_images(docker, &tag).await;
    if docker.inspect_image(&tag).await.is_ok() {
        return Ok(tag);
    }
    let exe = exe.to_path_buf();
    let context = tokio::task::spawn_blocking(move || build_context(&exe))
        .await
        .map_err(|e| format!("building the sidecar context failed: {e}"))??;
    let options = BuildImageOptions {
        t: Some(tag.clone()),
        rm: true,
        forcerm: true,
        labels: Some([(SELF_IMAGE_LABEL.to_string(), "1".to_string())].into()),
        ..Default::default()
    };
    let mut build = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(step) = build.next().await {
        let step = step.map_err(|e| format!("the engine cannot build the image of skrei: {e}"))?;
        if let Some(detail) = step.error_detail {
            return Err(format!(
                "the engine cannot build the image of skrei: {}",
                detail.message.unwrap_or_default()
            ));
        }
    }
    Ok(tag)
}

/// Images of skrei older than this, and not this node's, are removed at
/// start-up: each new build of skrei makes one (~180 MB). The age keeps a
/// node from removing the image another node on the engine just built.
const OLD_IMAGE: Duration = Duration::from_secs(3600);

/// Removes other builds' images of skrei no container uses (the engine
/// refuses to remove those) once they are [`OLD_IMAGE`] old.
async fn prune_old_images(docker: &Docker, keep: &str) {
    use bollard::query_parameters::{ListImagesOptions, RemoveImageOptions};
    let filters = HashMap::from([("label".to_string(), vec![format!("{SELF_IMAGE_LABEL}=1")])]);
    let Ok(images) = docker
        .list_images(Some(ListImagesOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .await
    else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    for image in images {
        if image.repo_tags.iter().any(|t| t == keep)
            || now - image.created < OLD_IMAGE.as_secs() as i64
        {
            continue;
        }
        let options = RemoveImageOptions {
            force: false,
            ..Default::default()
        };
        if let Err(e) = docker.remove_image(&image.id, Some(options), None).await {
            tracing::debug!(image = %image.id, "old image of skrei kept: {e}");
        }
    }
}

/// A tar build context: a Dockerfile and `rootfs/` holding the executable
/// and its shared libraries at the paths the dynamic loader looks in.
fn build_context(exe: &Path) -> Result<Vec<u8>, String> {
    let mut files: Vec<(PathBuf, String)> = vec![(exe.to_path_buf(), EXE_IN_IMAGE.into())];
    for lib in shared_libraries(exe)? {
        let in_image = lib.to_string_lossy().into_owned();
        files.push((lib, in_image));
    }
    let dockerfile =
        format!("FROM scratch\nCOPY rootfs/ /\nUSER 0:0\nENTRYPOINT [\"{EXE_IN_IMAGE}\"]\n");
    let mut tar = tar::Builder::new(Vec::new());
    append(&mut tar, "Dockerfile", dockerfile.as_bytes(), 0o644)?;
    for (host, in_image) in files {
        let bytes = std::fs::read(&host)
            .map_err(|e| format!("cannot read {} for the sidecar: {e}", host.display()))?;
        let path = format!("rootfs/{}", in_image.trim_start_matches('/'));
        append(&mut tar, &path, &bytes, 0o755)?;
    }
    tar.into_inner()
        .map_err(|e| format!("cannot write the sidecar context: {e}"))
}

fn append(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<(), String> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, path, bytes)
        .map_err(|e| format!("cannot add {path} to the sidecar context: {e}"))
}

/// The libraries (and the dynamic loader) `ldd` lists for `exe`; none for
/// a static executable.
fn shared_libraries(exe: &Path) -> Result<Vec<PathBuf>, String> {
    let out = std::process::Command::new("ldd")
        .arg(exe)
        .output()
        .map_err(|e| format!("cannot run ldd to find the sidecar's libraries: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if text.contains("not a dynamic executable")
            || String::from_utf8_lossy(&out.stderr).contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        return Err(format!(
            "ldd {} failed: {}",
            exe.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse_ldd(&text))
}

/// `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` and
/// `/lib64/ld-linux-x86-64.so.2 (0x...)` -> their paths; the vDSO has none.
fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, right)) => right.trim(),
                None => line.trim(),
            };
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

impl DockerExecutor {
    /// Starts the proxy of one `http` job on its own egress bridge and on
    /// the job's internal network, and waits until it listens.
    pub(super) async fn start_sidecar(
        &self,
        task: &DockerTask<'_>,
        http: &HttpSupport,
        base: &str,
        internal: &str,
        labels: &HashMap<String, String>,
        resources: &mut Resources,
    ) -> Result<Sidecar, ExecError> {
        let egress = format!("{base}-egress");
        self.create_network(&egress, false, HashMap::new(), labels, resources)
            .await?;
        // Read for each job, so a new job sees the host's interfaces as
        // they are now; the loopback and private ones need no mention (the
        // special-purpose table refuses them unless a range allows them,
        // and a range allows an own address too).
        let own = proxy::OwnAddresses::system().public();
        let args = proxy_args(
            &self.config,
            task.execution_id,
            &task.network.domains,
            task.deny,
            &own,
        );
        let body = ContainerCreateBody {
            image: Some(http.sidecar_image.clone()),
            cmd: Some(args),
            labels: Some(labels.clone()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some(egress.clone()),
                memory: Some(256 << 20),
                memory_swap: Some(256 << 20),
                pids_limit: Some(256),
                readonly_rootfs: Some(true),
                ..locked_down()
            }),
            ..Default::default()
        };
        let id = self
            .create_container(&format!("{base}-proxy"), body, resources)
            .await
            .map_err(|e| ExecError::Unavailable(format!("the proxy sidecar: {e}")))?;
        self.docker
            .connect_network(
                internal,
                NetworkConnectRequest {
                    container: id.clone(),
                    endpoint_config: Some(EndpointSettings::default()),
                },
            )
            .await
            .map_err(engine("attaching the proxy sidecar to the job's network"))?;
        let dir = proxy_dir(task.dir);
        std::fs::create_dir_all(&dir).map_err(ExecError::io("creating the proxy's folder"))?;
        // R-SEC-4: past the cap the most recent records are kept, and the
        // log says how many went.
        let audit = Arc::new(
            proxy::CappedLog::create(&dir, task.limits.output_bytes)
                .map_err(ExecError::io("creating the proxy's audit file"))?,
        );
        let log = CappedOutput::create(&dir.join("proxy-stderr"), 64 << 10)
            .map_err(ExecError::io("creating the proxy's log file"))?;
        let pump = self.attach_proxy(&id, audit.clone(), log).await?;
        self.docker
            .start_container(&id, None)
            .await
            .map_err(engine("starting the proxy sidecar"))?;
        let deadline = Instant::now() + SIDECAR_START;
        loop {
            let text = std::fs::read_to_string(dir.join("proxy-stderr")).unwrap_or_default();
            if text.contains("listening on") {
                break;
            }
            let state = self
                .docker
                .inspect_container(&id, None)
                .await
                .map_err(engine("inspecting the proxy sidecar"))?;
            let running = state.state.and_then(|s| s.running).unwrap_or(false);
            if !running || Instant::now() > deadline {
                return Err(ExecError::Unavailable(format!(
                    "the proxy sidecar did not start: {}",
                    text.trim()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ip = self
            .docker
            .inspect_container(&id, None)
            .await
            .map_err(engine("inspecting the proxy sidecar"))?
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(internal))
            .and_then(|e| e.ip_address)
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .ok_or_else(|| {
                ExecError::Unavailable(
                    "the proxy sidecar got no address on the job's network".into(),
                )
            })?;
        Ok(Sidecar {
            id,
            ip,
            pump,
            dir,
            audit,
        })
    }

    /// Streams the sidecar's audit lines (stdout) into `audit` and its log
    /// (stderr) into `log` until it ends. Attached before start, so nothing
    /// is missed.
    async fn attach_proxy(
        &self,
        id: &str,
        audit: Arc<proxy::CappedLog>,
        log: CappedOutput,
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
            .map_err(engine("attaching to the proxy sidecar"))?;
        let mut output = attached.output;
        Ok(tokio::spawn(async move {
            while let Some(Ok(chunk)) = output.next().await {
                match chunk {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        audit.push_bytes(&message)
                    }
                    // A full disk loses the proxy's own log, not the run.
                    LogOutput::StdErr { message } => {
                        let _ = log.append(&message);
                    }
                    LogOutput::StdIn { .. } => {}
                }
            }
        }))
    }
}

/// The running proxy of one `http` job.
pub(super) struct Sidecar {
    id: String,
    pub(super) ip: IpAddr,
    pump: tokio::task::JoinHandle<()>,
    /// Holds the audit and log files until they are collected.
    dir: PathBuf,
    audit: Arc<proxy::CappedLog>,
}

impl Sidecar {
    /// Stops the proxy and moves its audit lines into `network.log` (R-NET-9).
    pub(super) async fn finish(
        self,
        executor: &DockerExecutor,
        network_log: &Path,
    ) -> Result<(), ExecError> {
        executor.kill(&self.id).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.pump).await;
        let summary = self
            .audit
            .finish(network_log)
            .map_err(ExecError::io("writing network.log"))?;
        if summary.dropped > 0 {
            tracing::info!(
                dropped = summary.dropped,
                kept = summary.kept,
                "network.log reached its cap; the earliest records were dropped"
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

/// The sidecar's files, beside the published results, not in them.
pub(super) fn proxy_dir(dir: &ExecutionDir) -> PathBuf {
    dir.root().join("proxy")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f89)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f89)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f89)\n";
        assert_eq!(
            parse_ldd(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn proxy_arguments() {
        let config = DockerConfig {
            deny: vec!["10.0.0.5:4001".parse().unwrap()],
            resolve: vec![("a.test".into(), "172.17.0.1".parse().unwrap())],
            ..DockerConfig::default()
        };
        let domains = DomainSet::parse([".example.com"]).unwrap();
        let own = ["11.0.0.1".parse().unwrap()];
        let args = proxy_args(&config, "e1", &domains, &[], &own).join(" ");
        assert_eq!(
            args,
            "proxy --listen 0.0.0.0:3128 --job-id e1 --rate 1250000 --audit /dev/stdout \
             --allow .example.com --deny 10.0.0.5:4001 --own-address 11.0.0.1 \
             --resolve a.test=172.17.0.1 --connect-ports 443 --http-ports 80"
        );
    }
}
