//! `skrei job ...`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
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
        #[command(flatten)]
        template: TemplateArgs,
    },
    /// Submit a job file to the node and follow it.
    Run {
        /// The job file; `-` reads standard input.
        file: PathBuf,
        #[command(flatten)]
        template: TemplateArgs,
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
        /// Where to write them: a new folder, or an existing one they go
        /// into beside what it holds (`-o .`; a name it already has is
        /// refused). Default: job-<ID>.
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

/// Job files as templates, as `bacalhau job run` fills them (issue 17).
#[derive(Args, Debug, Clone, Default)]
pub struct TemplateArgs {
    /// A value for the job file's `{{.NAME}}` placeholders, `NAME=VALUE`
    /// (repeatable). Only plain substitution is supported.
    #[arg(long = "template-vars", value_name = "NAME=VALUE")]
    vars: Vec<String>,
    /// Environment variables whose names match this pattern fill the
    /// placeholders too (`--template-vars` wins), e.g. `'^JOB_'`.
    #[arg(long = "template-envs", value_name = "REGEX")]
    envs: Option<String>,
    /// Take the job file as written, `{{` and all.
    #[arg(long, conflicts_with_all = ["vars", "envs"])]
    no_template: bool,
}

impl TemplateArgs {
    /// The file rendered, or its problems (with their place in the file).
    fn render(&self, text: String) -> anyhow::Result<Result<String, protocol::job::JobErrors>> {
        use protocol::job::template;
        if self.no_template || template::first_placeholder(&text).is_none() {
            return Ok(Ok(text));
        }
        let mut values = std::collections::BTreeMap::new();
        if let Some(pattern) = &self.envs {
            let pattern = regex::Regex::new(pattern)
                .map_err(|e| anyhow::anyhow!("--template-envs {pattern}: {e}"))?;
            for (name, value) in std::env::vars() {
                if pattern.is_match(&name) {
                    values.insert(name, value);
                }
            }
        }
        for pair in &self.vars {
            let (name, value) = pair
                .split_once('=')
                .filter(|(n, _)| protocol::job::rules::check_env_name(n).is_ok())
                .ok_or_else(|| {
                    anyhow::anyhow!("--template-vars {pair}: write NAME=VALUE, NAME a plain name")
                })?;
            values.insert(name.to_owned(), value.to_owned());
        }
        let given = !values.is_empty();
        Ok(template::render(&text, &values).map_err(|mut e| {
            if !given {
                e.message = format!(
                    "this job file is a template: {} (or --no-template to take it as written)",
                    e.message
                );
            }
            e.into()
        }))
    }
}

pub fn run(command: JobCommand) -> anyhow::Result<ExitCode> {
    match command {
        JobCommand::Validate {
            file,
            output,
            template,
        } => {
            let text = match template.render(read_job_file(&file)?)? {
                Ok(text) => text,
                Err(errors) => {
                    print_job_errors(&file.display().to_string(), &errors, output);
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
            };
            match parse_noting(&file, &text) {
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
            template,
            wait,
            output,
            api,
        } => {
            let text = match template.render(read_job_file(&file)?)? {
                Ok(text) => text,
                Err(errors) => {
                    print_job_errors(&file.display().to_string(), &errors, Output::Text);
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
            };
            // Checked here first: the errors point into the user's file.
            if let Err(errors) = parse_noting(&file, &text) {
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

/// Parses a job file, telling the user on stderr of what it says that
/// skrei reads but does not use.
fn parse_noting(file: &std::path::Path, text: &str) -> Result<JobSpec, protocol::job::JobErrors> {
    let (spec, notices) = JobSpec::parse_with_notices(text)?;
    for notice in notices {
        eprintln!("notice: {}: {notice}", file.display());
    }
    Ok(spec)
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
