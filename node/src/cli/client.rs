//! Talking to a node's API: every client command (`job run|list|describe|
//! logs|get|cancel`, `docker run`, `wasm run`, `add`, `get`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use serde_json::{Value, json};

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
    /// Wait for the job to end (the default); exit non-zero if it fails.
    #[arg(long = "wait")]
    wait: bool,
    /// Print only the job id.
    #[arg(long)]
    id_only: bool,
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

    fn call(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
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
            let body: Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("the node's answer ({status}) is not JSON"))?;
            if !status.is_success() {
                let message = body["error"].as_str().unwrap_or("no reason given");
                if status == reqwest::StatusCode::UNAUTHORIZED && no_token {
                    bail!(
                        "{message} (no token for {base} was found in SKREI_API_TOKEN nor among \
                         the nodes this user started)"
                    );
                }
                bail!("{message}");
            }
            Ok(body)
        })
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(self.request(reqwest::Method::GET, path))
    }

    pub fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(
            self.request(reqwest::Method::POST, path)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
    }

    pub fn submit(&self, job: String) -> anyhow::Result<String> {
        let answer = self.call(
            self.request(reqwest::Method::POST, "/api/v1/jobs")
                .header("content-type", "application/yaml")
                .body(job),
        )?;
        answer["job_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("the node answered without a job id"))
    }

    /// Waits for the job to end and its results to be here, showing progress
    /// on stderr when it is a terminal. Returns the final description.
    pub fn wait(&self, job_id: &str, show: bool) -> anyhow::Result<Value> {
        let mut seen = 0u64;
        let mut last_line = String::new();
        let tty = show && std::io::stderr().is_terminal();
        loop {
            let job = self.get(&format!("/api/v1/jobs/{job_id}"))?;
            let line = progress_line(&job);
            if show && line != last_line {
                if tty {
                    eprint!("\r\x1b[2K{line}");
                } else {
                    eprintln!("{line}");
                }
                last_line = line;
            }
            let state = job["state"].as_str().unwrap_or("");
            // Fetched, or refused (over the node's --max-result-size).
            let fetched = job["results"].as_array().is_some_and(|r| {
                !r.is_empty()
                    && r.iter()
                        .all(|r| r["fetched"] == true || r["refused"].is_string())
            });
            if matches!(state, "failed" | "cancelled") || (state == "completed" && fetched) {
                if tty {
                    eprintln!();
                }
                return Ok(job);
            }
            let changes = self.get(&format!("/api/v1/changes?after={seen}&timeout_ms=5000"))?;
            seen = changes["changes"].as_u64().unwrap_or(seen);
        }
    }
}

/// `announced -> 2 bids -> running on 12D3... -> done`, from a description.
fn progress_line(job: &Value) -> String {
    let mut steps = vec!["announced".to_string()];
    let record = &job["job"];
    let bids = record["bids_received"].as_u64().unwrap_or(0);
    if bids > 0 {
        steps.push(format!("{bids} bid{}", if bids == 1 { "" } else { "s" }));
    }
    if let Some(executions) = record["executions"].as_array() {
        for e in executions {
            let node = e["node"].as_str().unwrap_or("?");
            let short = &node[node.len().saturating_sub(6)..];
            match e["state"]["state"].as_str() {
                Some("awarded") => steps.push(format!("running on …{short}")),
                Some("completed") => steps.push(format!("ran on …{short}")),
                Some("failed") => steps.push(format!("failed on …{short}")),
                _ => {}
            }
        }
    }
    match job["state"].as_str() {
        Some("completed") => {
            let fetched = job["results"]
                .as_array()
                .is_some_and(|r| r.iter().all(|r| r["fetched"] == true));
            steps.push(if fetched { "done" } else { "fetching results" }.into());
        }
        Some("failed") => steps.push("failed".into()),
        Some("cancelled") => steps.push("cancelled".into()),
        _ => {}
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
    if wait.no_wait {
        print_line(&job_id);
        return Ok(ExitCode::SUCCESS);
    }
    if wait.id_only {
        print_line(&job_id);
    } else if output == Output::Text {
        eprintln!("job {job_id}");
    }
    let show = !wait.id_only && output == Output::Text;
    let job = client.wait(&job_id, show)?;
    let ok = job["state"] == "completed";
    match output {
        Output::Json => print_line(&serde_json::to_string_pretty(&job)?),
        Output::Text if wait.id_only => {}
        Output::Text if ok => {
            let logs = client.get(&format!("/api/v1/jobs/{job_id}/logs"))?;
            print!("{}", logs["stdout"].as_str().unwrap_or(""));
            let stderr = logs["stderr"].as_str().unwrap_or("");
            if !stderr.is_empty() {
                eprint!("{stderr}");
            }
            eprintln!(
                "exit code {}; results: skrei job get {job_id}",
                logs["exit_code"]
            );
        }
        Output::Text => {}
    }
    if ok {
        Ok(ExitCode::SUCCESS)
    } else {
        let reason = job["reason"].as_str().unwrap_or("the job was cancelled");
        eprintln!(
            "error: job {job_id} {}: {reason}",
            job["state"].as_str().unwrap_or("ended")
        );
        Ok(ExitCode::from(EXIT_ERROR))
    }
}

pub fn list(api: &ApiArgs, output: Output) -> anyhow::Result<ExitCode> {
    let client = Client::new(api)?;
    let jobs = client.get("/api/v1/jobs")?;
    match output {
        Output::Json => print_line(&serde_json::to_string_pretty(&jobs)?),
        Output::Text => {
            print_line(&format!(
                "{:<62} {:<6} {:<5} {:<10} NAME",
                "JOB", "ENGINE", "NET", "STATE"
            ));
            for job in jobs["jobs"].as_array().into_iter().flatten() {
                print_line(&format!(
                    "{:<62} {:<6} {:<5} {:<10} {}",
                    job["job_id"].as_str().unwrap_or(""),
                    job["engine"].as_str().unwrap_or(""),
                    job["network"].as_str().unwrap_or(""),
                    job["state"].as_str().unwrap_or(""),
                    job["name"].as_str().unwrap_or(""),
                ));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn describe(api: &ApiArgs, id: &str, output: Output) -> anyhow::Result<ExitCode> {
    let client = Client::new(api)?;
    let job = client.get(&format!("/api/v1/jobs/{id}"))?;
    match output {
        Output::Json => print_line(&serde_json::to_string_pretty(&job)?),
        Output::Text => {
            print_line(&format!("job:    {}", job["job_id"].as_str().unwrap_or("")));
            print_line(&format!("state:  {}", job["state"].as_str().unwrap_or("")));
            if let Some(reason) = job["reason"].as_str() {
                print_line(&format!("reason: {reason}"));
            }
            print_line(&format!("steps:  {}", progress_line(&job)));
            for e in job["job"]["executions"].as_array().into_iter().flatten() {
                print_line(&format!(
                    "execution {} on {}: {}",
                    e["execution_id"],
                    e["node"].as_str().unwrap_or(""),
                    e["state"]["state"].as_str().unwrap_or("")
                ));
            }
            for (node, reason) in job["job"]["refusals"].as_object().into_iter().flatten() {
                print_line(&format!("refused by {node}: {reason}"));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn logs(api: &ApiArgs, id: &str) -> anyhow::Result<ExitCode> {
    let client = Client::new(api)?;
    let logs = client.get(&format!("/api/v1/jobs/{id}/logs"))?;
    print!("{}", logs["stdout"].as_str().unwrap_or(""));
    eprint!("{}", logs["stderr"].as_str().unwrap_or(""));
    Ok(ExitCode::SUCCESS)
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
    let max = match super::node::parse_size("--max-size", max_size) {
        Ok(max) => max,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(super::EXIT_INVALID));
        }
    };
    let client = Client::new(api)?;
    let dir = absolute(&dir.unwrap_or_else(|| PathBuf::from(format!("job-{id}"))))?;
    if std::fs::symlink_metadata(&dir).is_ok() {
        bail!(
            "{} already exists: give a new folder with -o",
            dir.display()
        );
    }
    let answer = client.get(&format!("/api/v1/jobs/{id}/results"))?;
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    if results.len() > 1 {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    } else if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    for r in &results {
        let cid: cid::Cid = r["cid"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .context("the node listed a result without a CID")?;
        let target = if results.len() == 1 {
            dir.clone()
        } else {
            dir.join(r["execution_id"].to_string())
        };
        client.export(&cid, &target, max)?;
        eprintln!(
            "wrote {} (execution {} on {}, exit code {})",
            target.display(),
            r["execution_id"],
            r["node"].as_str().unwrap_or(""),
            r["exit_code"]
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

pub fn cancel(api: &ApiArgs, id: &str) -> anyhow::Result<ExitCode> {
    let client = Client::new(api)?;
    client.post(&format!("/api/v1/jobs/{id}/cancel"), json!({}))?;
    eprintln!("cancelled {id}");
    Ok(ExitCode::SUCCESS)
}

pub fn add(api: &ApiArgs, path: &Path, output: Output) -> anyhow::Result<ExitCode> {
    let client = Client::new(api)?;
    let cid = client
        .add(path)
        .with_context(|| format!("adding {}", path.display()))?
        .to_string();
    match output {
        Output::Text => print_line(&cid),
        Output::Json => print_line(&json!({ "cid": cid }).to_string()),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn get_content(
    api: &ApiArgs,
    cid: &str,
    dir: &Path,
    providers: &[String],
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
    let body = serde_json::to_value(&body)?;
    if tty {
        client.fetch_with_progress(body)?;
    } else {
        client.post("/api/v1/fetch", body)?;
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
    fn fetch_with_progress(&self, body: Value) -> anyhow::Result<()> {
        use futures::StreamExt;
        let request = self
            .request(reqwest::Method::POST, "/api/v1/fetch")
            .header("content-type", "application/json")
            .body(body.to_string());
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
                let answer: Value = serde_json::from_slice(&response.bytes().await?)
                    .with_context(|| format!("the node's answer ({status}) is not JSON"))?;
                if !status.is_success() {
                    bail!("{}", answer["error"].as_str().unwrap_or("no reason given"));
                }
                return Ok(());
            }
            let mut stream = response.bytes_stream();
            let mut pending = Vec::new();
            while let Some(chunk) = stream.next().await {
                pending.extend_from_slice(&chunk?);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let Ok(v) = serde_json::from_slice::<Value>(&line) else {
                        continue;
                    };
                    if let Some(error) = v["error"].as_str() {
                        eprintln!();
                        bail!("{error}");
                    }
                    if v.get("cid").is_some() {
                        eprintln!();
                        return Ok(());
                    }
                    let mb = |n: u64| n as f64 / 1e6;
                    let fetched = v["fetched"].as_u64().unwrap_or(0);
                    match v["total"].as_u64() {
                        Some(total) if total > 0 => eprint!(
                            "\r\x1b[2Kfetched {:.1} of {:.1} MB ({:.0}%)",
                            mb(fetched),
                            mb(total),
                            100.0 * fetched as f64 / total as f64
                        ),
                        _ => eprint!("\r\x1b[2Kfetched {:.1} MB", mb(fetched)),
                    }
                }
            }
            bail!("the node stopped answering before the content was written")
        })
    }
}
