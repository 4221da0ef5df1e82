//! `skrei policy check`: would a node with this policy take this job?

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use protocol::job::JobSpec;
use protocol::policy::{AcceptancePolicy, Allowlist, Decision, parse_accept_network};

use super::{EXIT_INVALID, Output, print_job_errors};

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Print `bid` (exit 0) or `refuse: REASON` (exit 1) for a job under the
    /// given node policy, so an operator can test an allowlist first.
    Check {
        /// What the node accepts: none, http or full (as `skrei node --accept-network`).
        #[arg(long = "accept-network", value_name = "MODE", default_value = "none")]
        accept_network: String,
        /// The node's allowlist file (as `skrei node --allowlist`).
        #[arg(long, value_name = "FILE")]
        allowlist: Option<PathBuf>,
        /// The job file.
        job: PathBuf,
    },
}

pub fn run(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    let PolicyCommand::Check {
        accept_network,
        allowlist,
        job,
    } = command;
    let accept = match parse_accept_network(&accept_network) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: --accept-network: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let allowlist = match allowlist {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading allowlist {}", path.display()))?;
            match Allowlist::parse(&text, &path.display().to_string()) {
                Ok(a) => Some(a),
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
            }
        }
    };
    let text = super::job::read_job_file(&job)?;
    let spec = match JobSpec::parse(&text) {
        Ok(spec) => spec,
        Err(errors) => {
            print_job_errors(&job.display().to_string(), &errors, Output::Text);
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let policy = AcceptancePolicy::new(accept, allowlist);
    let network = &spec.task().network;
    match policy.decide(network.r#type, &network.domains) {
        Decision::Bid => {
            super::print_line("bid");
            Ok(ExitCode::SUCCESS)
        }
        Decision::Refuse(reason) => {
            super::print_line(&format!("refuse: {reason}"));
            Ok(ExitCode::from(1))
        }
    }
}
