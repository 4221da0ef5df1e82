//! The command line (R-CLI-1): one `skrei` binary, Bacalhau's flag names
//! where they exist.

mod client;
mod content;
mod dashboard;
mod data;
mod devstack;
mod job;
mod node;
mod policy;
mod proxy;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit status for bad input (a job file, flags, an allowlist).
pub const EXIT_INVALID: u8 = 2;
/// Exit status for failures that are not the input's fault.
pub const EXIT_ERROR: u8 = 1;

#[derive(Parser, Debug)]
#[command(
    name = "skrei",
    version,
    about = "A peer-to-peer compute network: run jobs in Docker or WebAssembly on nodes whose \
             policy allows them",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Work with job files.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Run a Docker job.
    #[command(subcommand)]
    Docker(run::DockerCommand),
    /// Run a WebAssembly job.
    #[command(subcommand)]
    Wasm(run::WasmCommand),
    /// Test a node's acceptance policy against a job before running the node.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Run the egress proxy on its own (for operators and tests).
    Proxy(proxy::ProxyArgs),
    /// Add a file or folder to the node's store and print its CID.
    Add(data::AddArgs),
    /// Write out content by CID, fetching it from the nodes that have it if needed.
    Get(data::GetArgs),
    /// Run a node (requester and compute node), or `skrei node info`.
    Node(Box<node::NodeArgs>),
    /// A local network of nodes in one process, for trying skrei out.
    Devstack(devstack::DevstackArgs),
    /// Open the node's web dashboard in a browser (or print a login link).
    Dashboard(dashboard::DashboardArgs),
}

/// How results are printed.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    #[default]
    Text,
    Json,
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Job(c) => job::run(c),
        Command::Docker(c) => run::docker(c),
        Command::Wasm(c) => run::wasm(c),
        Command::Policy(c) => policy::run(c),
        Command::Proxy(args) => proxy::run(args),
        Command::Add(args) => data::add(args),
        Command::Get(args) => data::get(args),
        Command::Node(args) => node::run(*args),
        Command::Devstack(args) => devstack::devstack(args),
        Command::Dashboard(args) => dashboard::run(args),
    }
}

/// Writes a line to stdout. A closed pipe (`skrei ... | head`) is the
/// reader's choice, not an error worth a panic.
pub fn print_line(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// Prints a job's problems to stderr, one per line, under a heading.
fn print_job_errors(heading: &str, errors: &protocol::job::JobErrors, output: Output) {
    match output {
        Output::Json => {
            let list: Vec<serde_json::Value> = errors
                .0
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "path": e.path,
                        "line": e.location.map(|l| l.line),
                        "column": e.location.map(|l| l.column),
                        "message": e.message,
                    })
                })
                .collect();
            print_line(
                &serde_json::to_string_pretty(&serde_json::json!({ "errors": list }))
                    .unwrap_or_default(),
            );
        }
        Output::Text => {
            let n = errors.0.len();
            eprintln!(
                "error: {heading}: {n} problem{}",
                if n == 1 { "" } else { "s" }
            );
            for e in &errors.0 {
                eprintln!("  {e}");
            }
        }
    }
}

/// A size flag (`10Gi`, `500MB`, bytes), for the error with the flag's name.
pub fn parse_size(flag: &str, text: &str) -> anyhow::Result<u64> {
    text.parse::<protocol::job::ByteSize>()
        .map(|s| s.0)
        .map_err(|e| anyhow::anyhow!("{flag} {text}: {e}"))
}
