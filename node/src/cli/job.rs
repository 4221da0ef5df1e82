//! `skrei job ...`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use protocol::job::JobSpec;

use super::client::{self, ApiArgs, WaitArgs};
use super::{EXIT_INVALID, Output, print_job_errors};

#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// Check a job file (YAML or JSON) and print the normalised job as JSON.
    ///
    /// Exits 0 when the job is valid, 2 with every problem listed when not.
    Validate {
        /// The job file; `-` reads standard input.
        file: PathBuf,
        /// `json` prints errors as JSON on stdout too.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Submit a job file to the node and follow it.
    Run {
        /// The job file; `-` reads standard input.
        file: PathBuf,
        #[command(flatten)]
        wait: WaitArgs,
        /// `json` prints the job's final description as JSON.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List the jobs submitted to the node.
    List {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show a job: its state, executions, refusals and steps.
    Describe {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Print a finished job's stdout and stderr.
    Logs {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Write a job's results (stdout, stderr, exitCode, outputs, network.log).
    Get {
        id: String,
        /// Where to write them; must not exist yet. Default: job-<ID>.
        #[arg(short = 'o', long = "output-dir", value_name = "DIR")]
        output: Option<PathBuf>,
        /// Most bytes to write, per execution's results (refused before
        /// anything is written).
        #[arg(long, value_name = "SIZE", default_value = "10Gi")]
        max_size: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Cancel a job.
    Cancel {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub fn run(command: JobCommand) -> anyhow::Result<ExitCode> {
    match command {
        JobCommand::Validate { file, output } => {
            let text = read_job_file(&file)?;
            match JobSpec::parse(&text) {
                Ok(spec) => {
                    super::print_line(&spec.to_json_pretty());
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    print_job_errors(&file.display().to_string(), &errors, output);
                    Ok(ExitCode::from(EXIT_INVALID))
                }
            }
        }
        JobCommand::Run {
            file,
            wait,
            output,
            api,
        } => {
            let text = read_job_file(&file)?;
            // Checked here first: the errors point into the user's file.
            if let Err(errors) = JobSpec::parse(&text) {
                print_job_errors(&file.display().to_string(), &errors, Output::Text);
                return Ok(ExitCode::from(EXIT_INVALID));
            }
            client::submit_and_follow(&api, text, &wait, output)
        }
        JobCommand::List { output, api } => client::list(&api, output),
        JobCommand::Describe { id, output, api } => client::describe(&api, &id, output),
        JobCommand::Logs { id, api } => client::logs(&api, &id),
        JobCommand::Get {
            id,
            output,
            max_size,
            api,
        } => client::get_results(&api, &id, output, &max_size),
        JobCommand::Cancel { id, api } => client::cancel(&api, &id),
    }
}

/// Reads a job file (or stdin for `-`), refusing what is not text.
pub fn read_job_file(file: &PathBuf) -> anyhow::Result<String> {
    let bytes = if file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .context("reading the job from standard input")?;
        buf
    } else {
        std::fs::read(file).with_context(|| format!("reading job file {}", file.display()))?
    };
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not UTF-8 text (invalid byte at offset {}): job files are YAML or JSON",
            file.display(),
            e.utf8_error().valid_up_to()
        )
    })
}
