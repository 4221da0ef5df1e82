//! `skrei docker run` and `skrei wasm run`: a job from flags.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use protocol::job::flags::{self, EngineFlags, RunFlags};

use super::client::{self, ApiArgs, WaitArgs};
use super::{EXIT_INVALID, Output, print_job_errors};

#[derive(Subcommand, Debug)]
// Parsed once per run: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum DockerCommand {
    /// Run a container: `skrei docker run [flags] IMAGE [-- CMD...]`.
    Run {
        #[command(flatten)]
        job: JobFlags,
        /// Override the image's entrypoint: its words, comma-separated or
        /// repeated (`--entrypoint /bin/sh,-c`), as Bacalhau reads them.
        #[arg(long, value_name = "WORDS", value_delimiter = ',')]
        entrypoint: Vec<String>,
        /// Working directory inside the container.
        #[arg(short = 'w', long, value_name = "DIR")]
        workdir: Option<String>,
        /// The image, e.g. `ubuntu:24.04`.
        image: String,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Print the tag of this skrei's own Docker image, building it first if
    /// the engine lacks it: `docker run TAG node ...` runs a node in a
    /// container (`simnet up --docker` does).
    Image,
}

#[derive(Subcommand, Debug)]
pub enum WasmCommand {
    /// Run a WebAssembly (WASI) module: `skrei wasm run [flags] MODULE [-- ARGS...]`.
    Run {
        #[command(flatten)]
        job: JobFlags,
        /// The exported function to call.
        #[arg(long = "entry-point", value_name = "NAME")]
        entry_point: Option<String>,
        /// A local `.wasm` file (sent inline when small), a CID, or an http(s) URL.
        module: String,
        /// Arguments given to the module.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Flags both run commands share (Bacalhau's names).
#[derive(Args, Debug)]
pub struct JobFlags {
    /// Network for the job: none, http (only --domain hosts, via a proxy) or full.
    #[arg(long, value_name = "MODE")]
    network: Option<String>,
    /// A domain the job may reach in http mode; `.example.com` covers subdomains.
    #[arg(long = "domain", value_name = "DOMAIN")]
    domains: Vec<String>,
    /// An input: CID, CID:/target, http(s) URL, file:///path, s3://bucket/key
    /// (a key ending in / or * is a prefix), or src=...,dst=/target.
    #[arg(short = 'i', long = "input", value_name = "SOURCE")]
    inputs: Vec<String>,
    /// An output folder, NAME:/path (default outputs:/outputs).
    #[arg(short = 'o', long = "output", value_name = "NAME:PATH")]
    outputs: Vec<String>,
    /// Where results go: local (default), dir:PATH or s3://bucket/prefix.
    #[arg(short = 'p', long, value_name = "PUBLISHER")]
    publisher: Option<String>,
    /// An environment variable, NAME=value.
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// A label, key=value.
    #[arg(short = 'l', long = "labels", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Which nodes may run the job, by their labels (`--label` on the
    /// node): `region=eu`, `tier>2`, `zone in (a, b)`, `gpu`, `!spot`,
    /// comma-separated or repeated.
    #[arg(short = 's', long = "constraints", value_name = "SELECTOR")]
    constraints: Vec<String>,
    /// CPU: cores (`0.5`) or millicores (`500m`).
    #[arg(long)]
    cpu: Option<String>,
    /// Memory, e.g. `512Mi`.
    #[arg(long)]
    memory: Option<String>,
    /// Disk, e.g. `10Gi`.
    #[arg(long)]
    disk: Option<String>,
    /// Execution timeout in seconds.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u64>,
    /// Seconds the job may wait for a node to take it (QueueTimeout).
    #[arg(long, value_name = "SECONDS")]
    queue_timeout: Option<u64>,
    /// The job's namespace (`default` when unset).
    #[arg(long)]
    namespace: Option<String>,
    /// The task's name (`main` when unset).
    #[arg(long)]
    task_name: Option<String>,
    /// How many nodes run the job.
    #[arg(long)]
    count: Option<u32>,
    /// `any` (default): Count nodes run the job; `all`: every node that
    /// accepts it runs it once (an ops job).
    #[arg(long, value_name = "any|all")]
    target: Option<String>,
    /// A name for the job.
    #[arg(long)]
    name: Option<String>,
    /// Print the normalised job as JSON instead of submitting it.
    #[arg(long)]
    dry_run: bool,
    /// `json` prints errors as JSON.
    #[arg(long = "format", value_enum, default_value_t)]
    format: Output,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    api: ApiArgs,
}

impl JobFlags {
    fn to_run_flags(&self) -> RunFlags {
        RunFlags {
            name: self.name.clone(),
            count: self.count,
            network: self.network.clone(),
            domains: self.domains.clone(),
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
            publisher: self.publisher.clone(),
            env: self.env.clone(),
            labels: self.labels.clone(),
            constraints: self.constraints.clone(),
            cpu: self.cpu.clone(),
            memory: self.memory.clone(),
            disk: self.disk.clone(),
            timeout: self.timeout,
            queue_timeout: self.queue_timeout,
            target: self.target.clone(),
            namespace: self.namespace.clone(),
            task_name: self.task_name.clone(),
        }
    }
}

pub fn docker(command: DockerCommand) -> anyhow::Result<ExitCode> {
    let (job, entrypoint, workdir, image, command) = match command {
        DockerCommand::Run {
            job,
            entrypoint,
            workdir,
            image,
            command,
        } => (job, entrypoint, workdir, image, command),
        DockerCommand::Image => return self_image(),
    };
    let engine = EngineFlags::Docker {
        image,
        entrypoint,
        args: command,
        workdir,
    };
    submit(engine, &job)
}

pub fn wasm(command: WasmCommand) -> anyhow::Result<ExitCode> {
    let WasmCommand::Run {
        job,
        entry_point,
        module,
        args,
    } = command;
    let path = Path::new(&module);
    let local = if path.is_file() {
        Some(std::fs::read(path).with_context(|| format!("reading module {module}"))?)
    } else {
        None
    };
    let source = match flags::module_source(&module, local.as_deref()) {
        Ok(s) => s,
        Err(message) => {
            eprintln!("error: MODULE: {message}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let engine = EngineFlags::Wasm {
        module: source,
        entrypoint: entry_point,
        args,
    };
    submit(engine, &job)
}

fn submit(engine: EngineFlags, job: &JobFlags) -> anyhow::Result<ExitCode> {
    let spec = match flags::build(engine, &job.to_run_flags()) {
        Ok(spec) => spec,
        Err(errors) => {
            print_job_errors("the job is not valid", &errors, job.format);
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    if job.dry_run {
        super::print_line(&spec.to_json_pretty());
        return Ok(ExitCode::SUCCESS);
    }
    client::submit_and_follow(&job.api, spec.to_json_pretty(), &job.wait, job.format)
}

/// `skrei docker image`: builds (if needed) and prints this executable's image.
fn self_image() -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("finding the running executable")?;
    let runtime = super::node::runtime()?;
    let tag = runtime
        .block_on(skrei_node::executor::docker::self_image(&exe))
        .map_err(|e| {
            anyhow::anyhow!("{e}; start a Docker engine, or run nodes without --docker")
        })?;
    println!("{tag}");
    Ok(ExitCode::SUCCESS)
}
