//! `skrei job ...`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use protocol::job::JobSpec;

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
