//! Docker hello-world through skrei's executor against the same container
//! started by `docker run --rm` directly. Issue 5's goal: the executor's
//! overhead within 1.2x of `docker run`. The image (`FROM scratch` +
//! busybox-static) is built here: no registry is involved.
//!
//! ```sh
//! cargo bench -p node --bench docker            # updates docs/BENCHMARKS.md
//! cargo bench -p node --bench docker -- --quick # prints only
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::query_parameters::BuildImageOptions;
use futures::StreamExt;
use protocol::job::{DockerParams, Network};
use skrei_node::executor::docker::DockerTask;
use skrei_node::executor::{Cancel, DockerConfig, DockerExecutor, ExecutionDir, Limits};

#[path = "support/durations.rs"]
mod durations;
mod support;
use durations::{ms, pct};
use support::{machine_line, today, write_section};

const IMAGE: &str = "skrei-bench-hello:1";

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 3 } else { 20 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let docker = match rt.block_on(connect()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("skipping the Docker benchmark: Docker is unreachable ({e:#})");
            return Ok(());
        }
    };
    rt.block_on(build_image(&docker))?;
    let exec = rt.block_on(DockerExecutor::new(DockerConfig {
        owner: format!("bench-{}", std::process::id()),
        sidecar_executable: Some(env!("CARGO_BIN_EXE_skrei").into()),
        ..DockerConfig::default()
    }))?;
    let params = DockerParams {
        image: IMAGE.into(),
        entrypoint: vec![],
        parameters: vec!["/bin/busybox".into(), "echo".into(), "hello".into()],
        environment_variables: vec![],
        working_directory: None,
    };
    let env = BTreeMap::new();
    let network = Network::default();
    let tmp = std::env::temp_dir().join(format!("skrei-docker-bench-{}", std::process::id()));

    let mut ours = Vec::new();
    let mut direct = Vec::new();
    for i in 0..runs {
        // Interleaved so machine noise hits both alike.
        let dir = ExecutionDir::new(tmp.join(format!("r{i}")));
        let task = DockerTask {
            execution_id: "bench",
            params: &params,
            task_env: &env,
            inputs: &[],
            result_paths: &[],
            network: &network,
            dir: &dir,
            limits: Limits::default(),
            deny: &[],
        };
        let t = Instant::now();
        let outcome = rt.block_on(exec.run(task, Cancel::default()))?;
        ours.push(t.elapsed());
        if outcome.exit_code != 0 {
            bail!("the executor's hello exited {}", outcome.exit_code);
        }

        let t = Instant::now();
        let out = Command::new("docker")
            .args(["run", "--rm", "--network", "none", IMAGE])
            .args(&params.parameters)
            .output()
            .context("running `docker run`")?;
        direct.push(t.elapsed());
        if !out.status.success() || out.stdout != b"hello\n" {
            bail!(
                "docker run failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);

    let (o50, o90) = (pct(&mut ours, 50.0), pct(&mut ours, 90.0));
    let (d50, d90) = (pct(&mut direct, 50.0), pct(&mut direct, 90.0));
    let report = format!(
        "Measured {} on {}, {runs} runs each, interleaved, network none; command: \
         `cargo bench -p node --bench docker`{}.\n\n\
         | path | p50 (ms) | p90 (ms) | p50 vs docker run |\n| --- | --- | --- | --- |\n\
         | skrei executor (create, attach, start, wait, inspect, remove) | {:.0} | {:.0} | {:.2}x |\n\
         | `docker run --rm` (CLI) | {:.0} | {:.0} | 1.00x |\n",
        today(),
        machine_line(),
        if cfg!(debug_assertions) {
            " (this run: a dev build of the bench, run directly)"
        } else {
            ""
        },
        ms(o50),
        ms(o90),
        ms(o50) / ms(d50),
        ms(d50),
        ms(d90),
    );
    println!("{report}");
    if !quick {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/BENCHMARKS.md");
        write_section(&path, "docker", &report)?;
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

/// `FROM scratch` + busybox-static, unless the engine has it already.
async fn build_image(docker: &Docker) -> Result<()> {
    if docker.inspect_image(IMAGE).await.is_ok() {
        return Ok(());
    }
    let busybox = std::fs::read("/usr/bin/busybox")
        .or_else(|_| std::fs::read("/bin/busybox"))
        .context("busybox-static is needed (apt-get install busybox-static)")?;
    let mut tar = tar::Builder::new(Vec::new());
    for (path, bytes, mode) in [
        (
            "Dockerfile",
            &b"FROM scratch\nCOPY busybox /bin/busybox\n"[..],
            0o644,
        ),
        ("busybox", &busybox[..], 0o755),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(mode);
        tar.append_data(&mut header, path, bytes)?;
    }
    let options = BuildImageOptions {
        t: Some(IMAGE.into()),
        rm: true,
        ..Default::default()
    };
    let context = tar.into_inner()?;
    let mut build = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(step) = build.next().await {
        if let Some(e) = step?.error_detail {
            bail!("building {IMAGE}: {}", e.message.unwrap_or_default());
        }
    }
    Ok(())
}
