//! Pulling a job's image (issue 16) through skrei's executor against
//! `docker pull`, from Debian's `docker-registry` on loopback, with an image
//! built here (`FROM scratch`, busybox-static and 32 MiB of random bytes,
//! so every pull downloads). Also what a job pays when the image is
//! already there: one inspect, against `docker image inspect`.
//!
//! ```sh
//! cargo bench -p node --bench pull            # updates docs/BENCHMARKS.md
//! cargo bench -p node --bench pull -- --quick # prints only
//! ```

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::query_parameters::{BuildImageOptions, PushImageOptions, RemoveImageOptions};
use futures::StreamExt;
use skrei_node::executor::docker::PullConfig;
use skrei_node::executor::{DockerConfig, DockerExecutor};

#[path = "support/durations.rs"]
mod durations;
mod support;
use durations::{ms, pct};
use support::{machine_line, today, write_section};

const BLOB_BYTES: usize = 32 << 20;

struct Registry(Child);

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 3 } else { 15 };
    if !Path::new("/usr/bin/docker-registry").exists() {
        eprintln!("skipping the pull benchmark: docker-registry is not installed");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let docker = match rt.block_on(connect()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("skipping the pull benchmark: Docker is unreachable ({e:#})");
            return Ok(());
        }
    };
    let dir = tempfile::tempdir()?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )?;
    let _registry = Registry(
        Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting docker-registry")?,
    );
    let host = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("docker-registry did not listen");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let image = format!("{host}/skrei-bench-pull:1");
    rt.block_on(build_and_push(&docker, &image))?;

    let exec = rt.block_on(DockerExecutor::new(DockerConfig {
        owner: format!("bench-{}", std::process::id()),
        sidecar_executable: Some(env!("CARGO_BIN_EXE_skrei").into()),
        pull: PullConfig {
            policy: protocol::image::PullPolicy::parse([host.as_str()])
                .map_err(anyhow::Error::msg)?,
            ..PullConfig::default()
        },
        ..DockerConfig::default()
    }))?;
    let (mut ours, mut cli, mut present, mut inspect) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        // Interleaved so machine noise hits both alike.
        rt.block_on(remove(&docker, &image))?;
        let t = Instant::now();
        let ready = rt.block_on(exec.ready_image(&image, &|| {}))?;
        ours.push(t.elapsed());
        if !ready.pulled || ready.pinned.is_none() {
            bail!("the executor did not pull {image}: {ready:?}");
        }
        let t = Instant::now();
        rt.block_on(exec.ready_image(&image, &|| {}))?;
        present.push(t.elapsed());
        let t = Instant::now();
        let out = Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Id}}", &image])
            .output()?;
        inspect.push(t.elapsed());
        if !out.status.success() {
            bail!(
                "docker image inspect: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        rt.block_on(remove(&docker, &image))?;
        let t = Instant::now();
        let out = Command::new("docker")
            .args(["pull", "-q", &image])
            .output()?;
        cli.push(t.elapsed());
        if !out.status.success() {
            bail!("docker pull: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    rt.block_on(remove(&docker, &image))?;

    let row = |name: &str, v: &mut Vec<Duration>, base: Duration| {
        let (p50, p90) = (pct(v, 50.0), pct(v, 90.0));
        format!(
            "| {name} | {:.0} | {:.0} | {:.2}x |\n",
            ms(p50),
            ms(p90),
            ms(p50) / ms(base)
        )
    };
    let cli50 = pct(&mut cli, 50.0);
    let inspect50 = pct(&mut inspect, 50.0);
    let report = format!(
        "Measured {} on {}, {runs} runs each, interleaved; an image of {} MiB (one random \
         layer) from `docker-registry` on loopback, removed before each pull; command: \
         `cargo bench -p node --bench pull`{}.\n\n\
         | path | p50 (ms) | p90 (ms) | p50 vs the CLI |\n| --- | --- | --- | --- |\n{}{}{}{}",
        today(),
        machine_line(),
        BLOB_BYTES >> 20,
        if cfg!(debug_assertions) {
            " (this run: a dev build of the bench, run directly)"
        } else {
            ""
        },
        row(
            "skrei `ready_image`, image missing (inspect, pull, inspect)",
            &mut ours,
            cli50
        ),
        row("`docker pull` (CLI)", &mut cli, cli50),
        row(
            "skrei `ready_image`, image present (one inspect)",
            &mut present,
            inspect50
        ),
        row("`docker image inspect` (CLI)", &mut inspect, inspect50),
    );
    println!("{report}");
    if !quick {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/BENCHMARKS.md");
        write_section(&path, "pull", &report)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

async fn connect() -> Result<Docker> {
    let docker = Docker::connect_with_local_defaults()?
        .negotiate_version()
        .await?;
    docker.ping().await?;
    Ok(docker)
}

async fn remove(docker: &Docker, image: &str) -> Result<()> {
    match docker
        .remove_image(image, None::<RemoveImageOptions>, None)
        .await
    {
        Ok(_)
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `FROM scratch` + busybox-static + random bytes, pushed as `image` and
/// removed from the engine.
async fn build_and_push(docker: &Docker, image: &str) -> Result<()> {
    let busybox = std::fs::read("/usr/bin/busybox")
        .or_else(|_| std::fs::read("/bin/busybox"))
        .context("busybox-static is needed (apt-get install busybox-static)")?;
    let mut blob = vec![0u8; BLOB_BYTES];
    getrandom::fill(&mut blob).map_err(|e| anyhow::anyhow!("random bytes: {e}"))?;
    let mut tar = tar::Builder::new(Vec::new());
    for (path, bytes, mode) in [
        (
            "Dockerfile",
            &b"FROM scratch\nCOPY busybox /bin/busybox\nCOPY blob /blob\n"[..],
            0o644,
        ),
        ("busybox", &busybox[..], 0o755),
        ("blob", &blob[..], 0o644),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(mode);
        tar.append_data(&mut header, path, bytes)?;
    }
    let options = BuildImageOptions {
        t: Some(image.into()),
        rm: true,
        ..Default::default()
    };
    let context = tar.into_inner()?;
    let mut build = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(step) = build.next().await {
        if let Some(e) = step?.error_detail {
            bail!("building {image}: {}", e.message.unwrap_or_default());
        }
    }
    let (name, tag) = image.rsplit_once(':').context("a tag")?;
    let options = PushImageOptions {
        tag: Some(tag.into()),
        ..Default::default()
    };
    let mut push = docker.push_image(name, Some(options), None);
    while let Some(step) = push.next().await {
        if let Some(e) = step?.error_detail {
            bail!("pushing {image}: {}", e.message.unwrap_or_default());
        }
    }
    remove(docker, image).await
}
