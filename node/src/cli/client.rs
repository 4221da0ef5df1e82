//! Talking to a node's API: every client command (`job run|list|describe|
//! logs|get|cancel`, `docker run`, `wasm run`, `add`, `get`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use api::content::{ContentAnswer, FetchLine, FetchProgress};
use api::error::ErrorBody;
use api::jobs::{
    Cancelled, Changes, ExecutionState, JobList, JobState, JobStatus, Logs, ResultList, Submitted,
};
use clap::Args;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{EXIT_ERROR, Output, print_line};

/// The API a client command talks to.
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// The node's API, e.g. `http://127.0.0.1:1234`.
    #[arg(
        long = "api",
        env = "SKREI_API",
        default_value = "http://127.0.0.1:1234"
    )]
    pub url: String,
}

/// How a submitted job is followed.
#[derive(Args, Debug, Clone, Default)]
pub struct WaitArgs {
    /// Return at once, printing the job id, instead of waiting for the job to end.
    #[arg(long = "no-wait", overrides_with = "wait")]
    no_wait: bool,
    /// Wait for the job to end (the default; `--wait=false` is `--no-wait`);
    /// exit non-zero if it fails.
    #[arg(
        long = "wait",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true
    )]
    wait: Option<bool>,
    /// Stop waiting after this many seconds (the job goes on; exit non-zero).
    /// Default 600.
    #[arg(long = "wait-timeout-secs", value_name = "SECONDS")]
    wait_timeout_secs: Option<u64>,
    /// Print the job's output. skrei does not stream it live from the
    /// compute node yet: it is printed when the job ends, failed or not.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Print only the job id.
    #[arg(long)]
    id_only: bool,
}

impl WaitArgs {
    /// Whether to return at once.
    fn no_wait(&self) -> bool {
        self.no_wait || self.wait == Some(false)
    }

    fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.wait_timeout_secs.unwrap_or(600))
    }
}

/// A blocking-style client over an async runtime of its own.
pub struct Client {
    base: String,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    /// The node's API token, when one was found (see [`find_token`]).
    token: Option<String>,
}

/// The token for the API at `base`: `SKREI_API_TOKEN`, else the record of
/// the nodes this user started (R-SEC-1).
fn find_token(base: &str) -> anyhow::Result<Option<String>> {
    use skrei_node::api_token::{TOKEN_ENV, record};
    if let Ok(token) = std::env::var(TOKEN_ENV) {
        let token = token.trim();
        if !token.is_empty() {
            return Ok(Some(token.to_string()));
        }
    }
    let Ok(url) = reqwest::Url::parse(base) else {
        return Ok(None);
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Ok(None);
    };
    Ok(record::find(host, port)?)
}

impl Client {
    pub fn new(api: &ApiArgs) -> anyhow::Result<Client> {
        let base = api.url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--api {base}: give a URL such as http://127.0.0.1:1234");
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        let token = find_token(&base)?;
        Ok(Client {
            base,
            http,
            runtime,
            token,
        })
    }

    /// A request to the API, carrying the token.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.content().request(method, path)
    }

    /// The API as a source and sink of content.
    fn content(&self) -> super::content::ApiContent<'_> {
        super::content::ApiContent {
            base: &self.base,
            http: &self.http,
            token: self.token.as_deref(),
        }
    }

    /// Sends a request and reads its answer as `T`, or its error.
    fn call<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> anyhow::Result<T> {
        let base = &self.base;
        let no_token = self.token.is_none();
        self.runtime.block_on(async {
            let response = request.send().await.map_err(|e| {
                anyhow!(
                    "cannot reach the node at {base}: {e}; start one with `skrei node` (or \
                     `skrei devstack`) and point --api or SKREI_API at it"
                )
            })?;
            let status = response.status();
            let bytes = response
                .bytes()
                .await
                .with_context(|| format!("reading the node's answer ({status})"))?;
            if !status.is_success() {
                let message = ErrorBody::message_of(&bytes)
                    .unwrap_or_else(|| format!("the node answered {status} with no reason"));
                if status == reqwest::StatusCode::UNAUTHORIZED && no_token {
                    bail!(
                        "{message} (no token for {base} was found in SKREI_API_TOKEN nor among \
                         the nodes this user started)"
                    );
                }
                bail!("{message}");
            }
            serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "the node's answer ({status}) is not what this skrei reads: {}",
                    super::content::excerpt(&bytes)
                )
            })
        })
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(self.request(reqwest::Method::GET, path))
    }

    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.call(
            self.request(reqwest::Method::POST, path)
                .header("content-type", "application/json")
                .body(serde_json::to_vec(body)?),
        )
    }

    pub fn submit(&self, job: String) -> anyhow::Result<String> {
        let answer: Submitted = self.call(
            self.request(reqwest::Method::POST, "/api/v1/jobs")
                .header("content-type", "application/yaml")
                .body(job),
        )?;
        Ok(answer.job_id.to_string())
    }

    /// Waits for the job to end and its results to be here, showing progress
    /// on stderr when it is a terminal. Returns the final description.
    /// Gives up after `timeout`: `None` then.
    pub fn wait_until(
        &self,
        job_id: &str,
        show: bool,
        timeout: std::time::Duration,
    ) -> anyhow::Result<Option<JobStatus>> {
        let deadline = std::time::Instant::now().checked_add(timeout);
        let mut seen = 0u64;
        let mut last_line = String::new();
        // On a terminal one line, redrawn; elsewhere a line per change.
        let bar = (show && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        loop {
            let job: JobStatus = self.get(&format!("/api/v1/jobs/{job_id}"))?;
            let line = progress_line(&job);
            if show && line != last_line {
                match &bar {
                    Some(bar) => bar.set_message(line.clone()),
                    None => eprintln!("{line}"),
                }
                last_line = line;
            }
            if job.settled() {
                if let Some(bar) = &bar {
                    bar.finish();
                }
                return Ok(Some(job));
            }
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                if let Some(bar) = &bar {
                    bar.abandon();
                }
                return Ok(None);
            }
            let poll_ms = left.map_or(5000, |l| l.as_millis().clamp(1, 5000));
            let changes: Changes = self.get(&format!(
                "/api/v1/changes?after={seen}&timeout_ms={poll_ms}"
            ))?;
            seen = changes.changes;
        }
    }
}

/// `announced -> 2 bids -> running on 12D3... -> done`, from a description.
fn progress_line(job: &JobStatus) -> String {
    let mut steps = vec!["announced".to_string()];
    let bids = job.job.bids_received;
    if bids > 0 {
        steps.push(format!("{bids} bid{}", if bids == 1 { "" } else { "s" }));
    }
    for e in &job.job.executions {
        let node = e.node.to_string();
        let short = &node[node.len().saturating_sub(6)..];
        match e.state {
            ExecutionState::Awarded => match &e.step {
                Some(step @ protocol::messages::Step::PullingImage { .. }) => {
                    steps.push(format!("{step} on …{short}"))
                }
                _ => steps.push(format!("running on …{short}")),
            },
            ExecutionState::Completed { .. } => steps.push(format!("ran on …{short}")),
            ExecutionState::Failed { .. } => steps.push(format!("failed on …{short}")),
            ExecutionState::Cancelled => {}
        }
    }
    match job.state {
        JobState::Completed => {
            let fetched = job.results.iter().all(|r| r.fetched);
            steps.push(if fetched { "done" } else { "fetching results" }.into());
        }
        JobState::Failed { .. } => steps.push("failed".into()),
        JobState::Cancelled => steps.push("cancelled".into()),
        JobState::Bidding | JobState::Running => {}
    }
    steps.join(" -> ")
}

/// Submits a job (file text or normalised JSON) and follows it as `wait` says.
pub fn submit_and_follow(
    api: &ApiArgs,
    job: String,
    wait: &WaitArgs,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let client = Client::new(api)?;
    let job_id = client.submit(job)?;
    if wait.no_wait() {
        print_line(&job_id);
        return Ok(ExitCode::SUCCESS);
    }
    if wait.id_only {
        print_line(&job_id);
    } else if output == Output::Text {
        eprintln!("job {job_id}");
    }
    let show = !wait.id_only && output == Output::Text;
    let Some(job) = client.wait_until(&job_id, show, wait.timeout())? else {
        eprintln!(
            "error: job {job_id} has not ended after {} s (--wait-timeout-secs); it goes on: \
             follow it with `skrei job describe {job_id}`",
            wait.timeout().as_secs()
        );
        return Ok(ExitCode::from(EXIT_ERROR));
    };
    let ok = job.state == JobState::Completed;
    match output {
        Output::Json => print_line(&serde_json::to_string_pretty(&job)?),
        Output::Text if wait.id_only => {}
        Output::Text if ok || (wait.follow && job.results.iter().any(|r| r.fetched)) => {
            let logs: Logs = client.get(&format!("/api/v1/jobs/{job_id}/logs"))?;
            print!("{}", logs.stdout);
            if !logs.stderr.is_empty() {
                eprint!("{}", logs.stderr);
            }
            eprintln!(
                "exit code {}; results: skrei job get {job_id}",
                logs.exit_code
            );
        }
        Output::Text => {}
    }
    match &job.state {
        JobState::Completed => Ok(ExitCode::SUCCESS),
        other => {
            match other {
                JobState::Failed { failure } => eprintln!(
                    "error: job {job_id} failed ({}): {}",
                    failure.cause, failure.detail
                ),
                _ => eprintln!(
                    "error: job {job_id} {}: the job was cancelled",
                    other.name()
                ),
            }
            Ok(ExitCode::from(EXIT_ERROR))
        }
    }
}

pub fn list(api: &ApiArgs, output: Output) -> anyhow::Result<ExitCode> {
    let client = Client::new(api)?;
    let list: JobList = client.get("/api/v1/jobs")?;
    match output {
        Output::Json => print_line(&serde_json::to_string_pretty(&list)?),
        Output::Text => {
            print_line(&format!(
                "{:<62} {:<6} {:<5} {:<10} NAME",
                "JOB", "ENGINE", "NET", "STATE"
            ));
            // Failures grouped by cause, most common first, under the table.
            let mut causes = std::collections::BTreeMap::<_, u64>::new();
            for job in &list.jobs {
                print_line(&format!(
                    "{:<62} {:<6} {:<5} {:<10} {}",
                    job.job_id.to_string(),
                    job.engine,
                    job.network.as_flag(),
                    job.state.name(),
                    job.name.as_deref().unwrap_or(""),
                ));
                if let JobState::Failed { failure } = &job.state {
                    *causes.entry(failure.cause).or_default() += 1;
                }
            }
            if !causes.is_empty() {
                let mut causes: Vec<_> = causes.into_iter().collect();
                causes.sort_by_key(|(cause, n)| (std::cmp::Reverse(*n), *cause));
                let total: u64 = causes.iter().map(|(_, n)| n).sum();
                let parts: Vec<String> = causes
                    .iter()
                    .map(|(cause, n)| format!("{cause} {n}"))
                    .collect();
                print_line(&format!("failed: {total} ({})", parts.join(", ")));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn describe(api: &ApiArgs, id: &str, output: Output) -> anyhow::Result<ExitCode> {
    let client = Client::new(api)?;
    let job: JobStatus = client.get(&format!("/api/v1/jobs/{id}"))?;
    match output {
        Output::Json => print_line(&serde_json::to_string_pretty(&job)?),
        Output::Text => {
            print_line(&format!("job:    {}", job.job_id));
            print_line(&format!("state:  {}", job.state.name()));
            if let JobState::Failed { failure } = &job.state {
                print_line(&format!("cause:  {}", failure.cause));
                print_line(&format!("reason: {}", failure.detail));
            }
            print_line(&format!("steps:  {}", progress_line(&job)));
            for e in &job.job.executions {
                let state = match &e.state {
                    ExecutionState::Failed { failure } => {
                        format!("failed ({}): {}", failure.cause, failure.detail)
                    }
                    other => other.name().to_owned(),
                };
                // The last step says what ran (`running IMAGE@sha256:...`).
                let step = e.step.as_ref().map_or(String::new(), |s| format!(" ({s})"));
                print_line(&format!(
                    "execution {} on {}: {state}{step}",
                    e.execution_id, e.node
                ));
            }
            for (node, reason) in &job.job.refusals {
                print_line(&format!(
                    "refused by {node}: {}",
                    serde_json::to_string(reason)?
                ));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn logs(api: &ApiArgs, id: &str) -> anyhow::Result<ExitCode> {
    let client = Client::new(api)?;
    let logs: Logs = client.get(&format!("/api/v1/jobs/{id}/logs"))?;
    print!("{}", logs.stdout);
    eprint!("{}", logs.stderr);
    Ok(ExitCode::SUCCESS)
}

/// Exports `cid`'s folder into the existing folder `dir`: written beside
/// it first, then moved in entry by entry, and refused, with nothing
/// moved, when `dir` already holds one of its names.
fn export_into(client: &Client, cid: &cid::Cid, dir: &Path, max: u64) -> anyhow::Result<()> {
    let staging = dir.join(format!(".skrei-get-{}", std::process::id()));
    client.export(cid, &staging, max)?;
    let moved = (|| {
        let names: Vec<std::ffi::OsString> = std::fs::read_dir(&staging)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        let clashes: Vec<String> = names
            .iter()
            .filter(|n| std::fs::symlink_metadata(dir.join(n)).is_ok())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        if !clashes.is_empty() {
            bail!(
                "{} already holds {}: give an empty folder with -o",
                dir.display(),
                clashes.join(", ")
            );
        }
        for name in &names {
            std::fs::rename(staging.join(name), dir.join(name))?;
        }
        anyhow::Ok(())
    })();
    let _ = std::fs::remove_dir_all(&staging);
    moved.with_context(|| format!("writing the results into {}", dir.display()))
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

/// Writes a job's results here: `dir` itself for one execution, `dir/<n>`
/// for each of several.
pub fn get_results(
    api: &ApiArgs,
    id: &str,
    dir: Option<PathBuf>,
    max_size: &str,
) -> anyhow::Result<ExitCode> {
    let max = match super::parse_size("--max-size", max_size) {
        Ok(max) => max,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(super::EXIT_INVALID));
        }
    };
    let client = Client::new(api)?;
    let dir = absolute(&dir.unwrap_or_else(|| PathBuf::from(format!("job-{id}"))))?;
    // An existing folder (`-o .` among them) takes the results beside what
    // it holds, never over it; anything else that exists is refused.
    let existing = match std::fs::symlink_metadata(&dir) {
        Err(_) => false,
        Ok(meta) if meta.is_dir() => true,
        Ok(_) => bail!(
            "{} already exists and is not a folder: give a folder with -o",
            dir.display()
        ),
    };
    let answer: ResultList = client.get(&format!("/api/v1/jobs/{id}/results"))?;
    let results = answer.results;
    if results.len() > 1 {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    } else if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    for r in &results {
        let target = if results.len() == 1 {
            dir.clone()
        } else {
            dir.join(r.execution_id.to_string())
        };
        if existing && target == dir {
            export_into(&client, &r.cid, &dir, max)?;
        } else {
            client.export(&r.cid, &target, max)?;
        }
        eprintln!(
            "wrote {} (execution {} on {}, exit code {})",
            target.display(),
            r.execution_id,
            r.node,
            r.exit_code
        );
    }
    Ok(ExitCode::SUCCESS)
}

impl Client {
    /// Writes content the node has to `target`, as this user.
    fn export(&self, cid: &cid::Cid, target: &Path, max: u64) -> anyhow::Result<()> {
        self.runtime
            .block_on(storage::export::export(&self.content(), cid, target, max))
            .map_err(|e| match e {
                storage::store::ExportError::TooLarge { .. } => {
                    anyhow!("{e}; raise the budget with --max-size")
                }
                other => anyhow!(other),
            })?;
        Ok(())
    }

    /// Adds the user's file or folder to the node, read here, as this user.
    pub fn add(&self, path: &Path) -> anyhow::Result<cid::Cid> {
        let content = self.content();
        self.runtime.block_on(async {
            let cid = storage::import::add(&content, path).await?;
            content.provide(&cid).await.map_err(|e| anyhow!(e))?;
            anyhow::Ok(cid)
        })
    }
}

/// `{}`: a POST without parameters.
#[derive(Serialize)]
struct EmptyBody {}

pub fn cancel(api: &ApiArgs, id: &str) -> anyhow::Result<ExitCode> {
    let client = Client::new(api)?;
    let _: Cancelled = client.post(&format!("/api/v1/jobs/{id}/cancel"), &EmptyBody {})?;
    eprintln!("cancelled {id}");
    Ok(ExitCode::SUCCESS)
}

pub fn add(api: &ApiArgs, path: &Path, output: Output) -> anyhow::Result<ExitCode> {
    let client = Client::new(api)?;
    let cid = client
        .add(path)
        .with_context(|| format!("adding {}", path.display()))?;
    match output {
        Output::Text => print_line(&cid.to_string()),
        Output::Json => print_line(&serde_json::to_string(&ContentAnswer { cid })?),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn get_content(
    api: &ApiArgs,
    cid: &str,
    dir: &Path,
    providers: &[api::address::DataAddr],
    max: u64,
) -> anyhow::Result<ExitCode> {
    let client = Client::new(api)?;
    let dir = absolute(dir)?;
    if std::fs::symlink_metadata(&dir).is_ok() {
        bail!("{} already exists: give a new path with -o", dir.display());
    }
    let tty = std::io::stderr().is_terminal();
    let body = api::requests::Fetch {
        cid: cid.to_owned(),
        providers: providers.to_vec(),
        progress: tty,
        max_bytes: Some(max),
    };
    if tty {
        client.fetch_with_progress(&body)?;
    } else {
        let _: ContentAnswer = client.post("/api/v1/fetch", &body)?;
    }
    let cid: cid::Cid = storage::cid::parse(cid)?.cid();
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    client.export(&cid, &dir, max)?;
    eprintln!("wrote {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

impl Client {
    /// `POST /api/v1/fetch` with progress: draws `fetched X of Y MB` on
    /// stderr from the node's JSON lines until the last one (the result or
    /// error).
    fn fetch_with_progress(&self, body: &api::requests::Fetch) -> anyhow::Result<()> {
        use futures::StreamExt;
        let request = self
            .request(reqwest::Method::POST, "/api/v1/fetch")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body)?);
        self.runtime.block_on(async {
            let response = request
                .send()
                .await
                .with_context(|| format!("cannot reach the node at {}", self.base))?;
            let streamed = response
                .headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"application/x-ndjson"));
            if !streamed {
                // Content already here, or a refusal: one JSON answer.
                let status = response.status();
                let bytes = response.bytes().await?;
                if !status.is_success() {
                    let message = ErrorBody::message_of(&bytes)
                        .unwrap_or_else(|| format!("the node answered {status} with no reason"));
                    bail!("{message}");
                }
                return Ok(());
            }
            let mut stream = response.bytes_stream();
            let mut pending = Vec::new();
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "fetched {bytes} of {total_bytes} ({percent}%, {bytes_per_sec})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            while let Some(chunk) = stream.next().await {
                pending.extend_from_slice(&chunk?);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let Ok(line) = serde_json::from_slice::<FetchLine>(&line) else {
                        continue;
                    };
                    match line {
                        FetchLine::Failed(e) => {
                            bar.abandon();
                            bail!("{}", e.error);
                        }
                        FetchLine::Done(_) => {
                            bar.finish();
                            return Ok(());
                        }
                        FetchLine::Progress(FetchProgress { fetched, total }) => {
                            match total.filter(|t| *t > 0) {
                                Some(total) => bar.set_length(total),
                                None => bar.set_style(
                                    indicatif::ProgressStyle::with_template(
                                        "fetched {bytes} ({bytes_per_sec})",
                                    )
                                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                                ),
                            }
                            bar.set_position(fetched);
                        }
                    }
                }
            }
            bail!("the node stopped answering before the content was written")
        })
    }
}
