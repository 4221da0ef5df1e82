//! Jobs end to end on real node processes (issue: the node, benchmark):
//!
//! - latency: a WASM hello job, submit -> results fetched back to the
//!   requester, on 3 `skrei node` processes, 200 jobs one after another;
//! - throughput: jobs per second with 10 node processes on loopback, jobs
//!   submitted to every node at once.
//!
//! `cargo bench -p node --bench devstack` (release build); writes its section
//! of docs/BENCHMARKS.md. Bacalhau's libp2p-era devstack is the comparison
//! (its published figures; it cannot be built here).
//!
//! Side by side with another build of skrei (an older commit, say):
//! `SKREI_BENCH_BASELINE=/path/to/skrei SKREI_BENCH_BASELINE_NAME=abc1234
//! cargo bench -p node --bench devstack` runs each measurement on both, one
//! after the other in one sitting, and records both and their ratio.
//! Throughput varies by ±10% from run to run on a 2-core machine:
//! `SKREI_BENCH_ROUNDS=N` runs it N times per build, alternating, and keeps
//! the medians. The nodes' CPU time per job (from `/proc`, over the
//! throughput run) is the steadier figure for comparing builds.
//!
//! `cargo bench -p node --bench devstack -- burst` measures only a burst
//! (issue 15, queueing): one user submits 1,000 WASM jobs that each take
//! 2 s (they sleep) as fast as the API takes them to one node of a 10-node
//! network (160 slots: 12.5 s of work at the least), and every job is
//! followed to its end. It records how many completed and how many
//! failed (with their reasons counted), the jobs per second from the first
//! submission to the last end, and submit -> end percentiles, in its own
//! section; with `SKREI_BENCH_BASELINE` beside the other build's.

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

const HELLO: &[u8] = include_bytes!("../../examples/wasm/hello.wasm");
const LATENCY_JOBS: usize = 200;
const THROUGHPUT_NODES: usize = 10;
const THROUGHPUT_JOBS: usize = 600;
const IN_FLIGHT_PER_NODE: usize = 8;
const BURST_JOBS: usize = 1000;
/// How long each job of a burst takes.
const BURST_JOB_MS: u64 = 2000;
/// Submissions in flight at once during a burst.
const BURST_SUBMITTERS: usize = 16;
/// A burst run gives up on jobs still not ended after this long.
const BURST_LIMIT: Duration = Duration::from_secs(900);

struct NodeProc {
    child: Child,
    api: String,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every node of a bench network gets this API token (R-SEC-1), written
/// into its data folder before it starts, so one client serves them all.
const TOKEN: &str = "5e1f0b3c0de5e1f0b3c0de5e1f0b3c0de5e1f0b3c0de5e1f0b3c0de5e1f0b3c0";

fn start(exe: &Path, dir: &Path, bootstrap: Option<&str>) -> Result<NodeProc> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let mut token = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(dir.join("api.token"))?;
    std::io::Write::write_all(&mut token, TOKEN.as_bytes())?;
    let mut cmd = Command::new(exe);
    cmd.args(["node", "--data-dir"])
        .arg(dir)
        .args(["--api", "127.0.0.1:0", "--node-info-interval", "1"])
        // A local testnet, as `skrei devstack` and `simnet up` run one: a
        // node on the defaults would listen on every interface at 4001.
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .args(["--capacity", "16"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(b) = bootstrap {
        cmd.args(["--bootstrap", b]);
    }
    let mut child = cmd.spawn().context("starting skrei node")?;
    let stdout = child.stdout.take().context("node stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let api = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(api) = line.strip_prefix("SKREI_API=") {
                    break api.to_string();
                }
            }
            _ => bail!("the node exited before printing SKREI_API"),
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok(NodeProc { child, api })
}

struct Api {
    http: reqwest::Client,
}

impl Api {
    fn new() -> Api {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {TOKEN}").parse().expect("a header value"),
        );
        Api {
            http: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .expect("an HTTP client"),
        }
    }

    async fn get(&self, url: &str) -> Result<Value> {
        let r = self.http.get(url).send().await?;
        Ok(serde_json::from_slice(&r.bytes().await?)?)
    }
    async fn post(&self, url: &str, body: String) -> Result<Value> {
        let r = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = serde_json::from_slice(&r.bytes().await?)?;
        if !status.is_success() {
            bail!("{url}: {v}");
        }
        Ok(v)
    }

    async fn add(&self, api: &str, path: &Path) -> Result<String> {
        let r = self
            .http
            .post(format!("{api}/api/v1/blobs"))
            .header("content-type", "application/octet-stream")
            .body(std::fs::read(path)?)
            .send()
            .await?;
        let v: Value = serde_json::from_slice(&r.bytes().await?)?;
        let cid = v["cid"].as_str().context("cid")?.to_string();
        self.post(
            &format!("{api}/api/v1/provide"),
            json!({ "cid": cid }).to_string(),
        )
        .await?;
        Ok(cid)
    }

    /// Submits and waits until the results are in the requester's store.
    async fn run(&self, api: &str, job: String) -> Result<Duration> {
        let started = Instant::now();
        let v = self.post(&format!("{api}/api/v1/jobs"), job).await?;
        let id = v["job_id"].as_str().context("job id")?.to_string();
        let mut seen = 0;
        loop {
            let job = self.get(&format!("{api}/api/v1/jobs/{id}")).await?;
            match job["state"].as_str() {
                Some("completed")
                    if job["results"]
                        .as_array()
                        .is_some_and(|r| r.iter().all(|r| r["fetched"] == true)) =>
                {
                    return Ok(started.elapsed());
                }
                Some("failed" | "cancelled") => bail!("job {id} ended: {}", job["failure"]),
                _ => {}
            }
            let c = self
                .get(&format!(
                    "{api}/api/v1/changes?after={seen}&timeout_ms=2000"
                ))
                .await?;
            seen = c["changes"].as_u64().unwrap_or(seen);
        }
    }
}

fn job(name: &str, module: &str, input: &str) -> String {
    format!(
        "Name: {name}\nType: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      \
         Type: wasm\n      Params:\n        EntryModule:\n          Source:\n            \
         Type: ipfs\n            Params:\n              CID: {module}\n    InputSources:\n      \
         - Source:\n          Type: ipfs\n          Params:\n            CID: {input}\n        \
         Target: /inputs/name.txt\n    ResultPaths:\n      - Name: outputs\n        Path: /outputs\n"
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn network(exe: &Path, root: &Path, n: usize) -> Result<Vec<NodeProc>> {
    let first = start(exe, &root.join("node-0"), None)?;
    let api = Api::new();
    let info = api.get(&format!("{}/api/v1/node", first.api)).await?;
    let boot = info["p2p_addrs"][0].as_str().context("addr")?.to_string();
    let boot = if boot.contains("/p2p/") {
        boot
    } else {
        format!("{boot}/p2p/{}", info["node_id"].as_str().unwrap_or(""))
    };
    let mut nodes = vec![first];
    for i in 1..n {
        nodes.push(start(exe, &root.join(format!("node-{i}")), Some(&boot))?);
    }
    // Until every node has heard every other's node info.
    let deadline = Instant::now() + Duration::from_secs(30);
    for node in &nodes {
        loop {
            let info = api.get(&format!("{}/api/v1/node", node.api)).await?;
            let heard = info["peers"]
                .as_array()
                .map_or(0, |p| p.iter().filter(|p| !p["info"].is_null()).count());
            if heard >= n - 1 || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(nodes)
}

async fn inputs(api: &Api, node: &NodeProc, dir: &Path) -> Result<(String, String)> {
    let module = dir.join("hello.wasm");
    std::fs::write(&module, HELLO)?;
    let name = dir.join("name.txt");
    std::fs::write(&name, "bench\n")?;
    Ok((
        api.add(&node.api, &module).await?,
        api.add(&node.api, &name).await?,
    ))
}

async fn latency(exe: &Path, root: &Path) -> Result<(Duration, Duration, Duration)> {
    let nodes = network(exe, &root.join("latency"), 3).await?;
    let api = Api::new();
    let (module, input) = inputs(&api, &nodes[2], root).await?;
    // One warm-up job (module compiled and cached where it runs).
    api.run(&nodes[0].api, job("warm-up", &module, &input))
        .await?;
    let mut times = Vec::with_capacity(LATENCY_JOBS);
    for i in 0..LATENCY_JOBS {
        times.push(
            api.run(&nodes[0].api, job(&format!("latency-{i}"), &module, &input))
                .await?,
        );
    }
    times.sort();
    Ok((
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        percentile(&times, 1.0),
    ))
}

/// CPU time (user + system) the processes have used so far, from
/// `/proc/PID/stat` (in USER_HZ ticks, 100 a second on Linux).
fn cpu_time(nodes: &[NodeProc]) -> Result<Duration> {
    let mut ticks = 0u64;
    for node in nodes {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", node.child.id()))?;
        // Fields after the command (which may hold spaces), from field 3.
        let rest = stat.rsplit_once(')').context("a /proc stat line")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        for i in [11, 12] {
            ticks += fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .context("utime/stime in /proc stat")?;
        }
    }
    Ok(Duration::from_millis(ticks * 10))
}

/// What one throughput run measured.
struct Throughput {
    rate: f64,
    p50: Duration,
    /// The nodes' CPU time over the run, per job.
    cpu_per_job: Duration,
}

async fn throughput(exe: &Path, root: &Path) -> Result<Throughput> {
    let nodes = network(exe, &root.join("throughput"), THROUGHPUT_NODES).await?;
    let api = std::sync::Arc::new(Api::new());
    let (module, input) = inputs(&api, &nodes[0], root).await?;
    let cpu_before = cpu_time(&nodes)?;
    let started = Instant::now();
    let per_worker = THROUGHPUT_JOBS / (THROUGHPUT_NODES * IN_FLIGHT_PER_NODE);
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for w in 0..IN_FLIGHT_PER_NODE {
            let api = api.clone();
            let url = node.api.clone();
            let (module, input) = (module.clone(), input.clone());
            tasks.push(tokio::spawn(async move {
                let mut times = Vec::new();
                for i in 0..per_worker {
                    let name = format!("tp-{n}-{w}-{i}");
                    times.push(api.run(&url, job(&name, &module, &input)).await?);
                }
                anyhow::Ok(times)
            }));
        }
    }
    let mut times = Vec::new();
    for t in tasks {
        times.extend(t.await??);
    }
    let wall = started.elapsed();
    let cpu = cpu_time(&nodes)?.saturating_sub(cpu_before);
    times.sort();
    Ok(Throughput {
        rate: times.len() as f64 / wall.as_secs_f64(),
        p50: percentile(&times, 0.5),
        cpu_per_job: cpu / times.len().max(1) as u32,
    })
}

/// What one burst run measured.
struct Burst {
    /// From the first submission to the last job's end.
    wall: Duration,
    /// How long the submissions took.
    submitted_in: Duration,
    completed: usize,
    /// Failure reasons (first line), counted.
    failed: std::collections::BTreeMap<String, usize>,
    /// Jobs not ended within [`BURST_LIMIT`].
    unfinished: usize,
    /// Submit -> completed, sorted.
    times: Vec<Duration>,
}

/// A WASI module that sleeps `ms` and exits.
fn sleeper(ms: u64) -> Vec<u8> {
    let nanos = ms * 1_000_000;
    // One clock subscription at 0 (monotonic, relative), its event at 64.
    wat::parse_str(format!(
        r#"(module
             (import "wasi_snapshot_preview1" "poll_oneoff"
               (func $poll (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (func (export "_start")
               (i32.store8 (i32.const 8) (i32.const 0))
               (i32.store (i32.const 16) (i32.const 1))
               (i64.store (i32.const 24) (i64.const {nanos}))
               (i64.store (i32.const 32) (i64.const 0))
               (i32.store16 (i32.const 40) (i32.const 0))
               (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))"#
    ))
    .expect("the sleeper's WAT")
}

async fn burst(exe: &Path, root: &Path) -> Result<Burst> {
    let nodes = network(exe, &root.join("burst"), THROUGHPUT_NODES).await?;
    let api = std::sync::Arc::new(Api::new());
    let (_, input) = inputs(&api, &nodes[1], root).await?;
    let sleeper_path = root.join("sleeper.wasm");
    std::fs::write(&sleeper_path, sleeper(BURST_JOB_MS))?;
    let module = api.add(&nodes[1].api, &sleeper_path).await?;
    // One warm-up job, so the module is not compiled by all at once.
    api.run(&nodes[0].api, job("warm-up", &module, &input))
        .await?;
    let url = nodes[0].api.clone();
    let started = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut submitters = Vec::new();
    for _ in 0..BURST_SUBMITTERS {
        let (api, url, next) = (api.clone(), url.clone(), next.clone());
        let (module, input) = (module.clone(), input.clone());
        submitters.push(tokio::spawn(async move {
            let mut submitted = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= BURST_JOBS {
                    return anyhow::Ok(submitted);
                }
                let v = api
                    .post(
                        &format!("{url}/api/v1/jobs"),
                        job(&format!("burst-{i}"), &module, &input),
                    )
                    .await?;
                let id = v["job_id"].as_str().context("job id")?.to_string();
                submitted.push((id, started.elapsed()));
            }
        }));
    }
    let mut submitted_at = std::collections::HashMap::new();
    for s in submitters {
        submitted_at.extend(s.await??);
    }
    let submitted_in = started.elapsed();
    // Follow every job to its end through the job list.
    let mut ended: std::collections::HashMap<String, (Duration, Option<String>)> =
        std::collections::HashMap::new();
    while ended.len() < submitted_at.len() && started.elapsed() < BURST_LIMIT {
        let list = api
            .get(&format!("{url}/api/v1/jobs?limit={}", BURST_JOBS * 2))
            .await?;
        let now = started.elapsed();
        for j in list["jobs"].as_array().context("a job list")? {
            let Some(id) = j["job_id"].as_str() else {
                continue;
            };
            if !submitted_at.contains_key(id) || ended.contains_key(id) {
                continue;
            }
            let outcome = match j["state"].as_str() {
                Some("completed") => None,
                Some("failed") => Some(format!(
                    "{}: {}",
                    j["failure"]["cause"].as_str().unwrap_or("?"),
                    j["failure"]["detail"]
                        .as_str()
                        .unwrap_or("?")
                        .lines()
                        .next()
                        .unwrap_or("")
                )),
                Some("cancelled") => Some("cancelled".into()),
                _ => continue,
            };
            ended.insert(id.to_string(), (now, outcome));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let wall = ended.values().map(|(t, _)| *t).max().unwrap_or_default();
    let mut failed = std::collections::BTreeMap::new();
    let mut times = Vec::new();
    for (id, (at, outcome)) in &ended {
        match outcome {
            None => times.push(at.saturating_sub(submitted_at[id])),
            Some(reason) => *failed.entry(reason.clone()).or_default() += 1,
        }
    }
    times.sort();
    Ok(Burst {
        wall,
        submitted_in,
        completed: times.len(),
        failed,
        unfinished: submitted_at.len() - ended.len(),
        times,
    })
}

impl Burst {
    /// Submit -> completed p50 and p99, shown.
    fn percentiles(&self) -> (String, String) {
        if self.times.is_empty() {
            return ("-".into(), "-".into());
        }
        (
            ms(percentile(&self.times, 0.5)),
            ms(percentile(&self.times, 0.99)),
        )
    }
}

fn burst_line(b: &Burst) -> String {
    let failed: usize = b.failed.values().sum();
    let (p50, p99) = b.percentiles();
    format!(
        "{} of {BURST_JOBS} completed, {failed} failed, {} unfinished; submitted in {:.1} s; \
         {:.1} jobs/s (completed / first submission to last end, {:.1} s); submit -> completed \
         p50 {p50}, p99 {p99}",
        b.completed,
        b.unfinished,
        b.submitted_in.as_secs_f64(),
        b.completed as f64 / b.wall.as_secs_f64().max(1e-9),
        b.wall.as_secs_f64(),
    )
}

fn burst_main(runtime: &tokio::runtime::Runtime, builds: &[&Path]) -> Result<()> {
    let mut runs = Vec::new();
    for exe in builds {
        let root = tempfile::tempdir()?;
        let b = runtime.block_on(burst(exe, root.path()))?;
        println!("{}: burst: {}", exe.display(), burst_line(&b));
        for (reason, n) in &b.failed {
            println!("  {n} failed: {reason}");
        }
        runs.push(b);
    }
    let name = std::env::var("SKREI_BENCH_BASELINE_NAME").unwrap_or_else(|_| "baseline".into());
    let mut body = format!(
        "## A burst of jobs (issue 15, queueing)\n\n\
         `cargo bench -p node --bench devstack -- burst`, {date}, {machine}. One user submits \
         {BURST_JOBS} WASM jobs that each sleep {BURST_JOB_MS} ms ({BURST_SUBMITTERS} \
         submissions in flight) to one node of \
         {THROUGHPUT_NODES} `skrei node` processes on loopback with 16 slots each ({slots} \
         slots), and every job is followed to its end.\n\n\
         | build | completed | failed | jobs/s | submit -> completed p50 / p99 |\n\
         | --- | --- | --- | --- | --- |\n",
        date = support::today(),
        machine = support::machine_line(),
        slots = THROUGHPUT_NODES * 16,
    );
    for (i, b) in runs.iter().enumerate() {
        let label = if i + 1 == runs.len() {
            "this build".to_string()
        } else {
            name.clone()
        };
        let failed: usize = b.failed.values().sum();
        let (p50, p99) = b.percentiles();
        body.push_str(&format!(
            "| {label} | {} of {BURST_JOBS} | {failed}{} | {:.1} | {p50} / {p99} |\n",
            b.completed,
            if b.unfinished > 0 {
                format!(" ({} unfinished)", b.unfinished)
            } else {
                String::new()
            },
            b.completed as f64 / b.wall.as_secs_f64().max(1e-9),
        ));
    }
    for (i, b) in runs.iter().enumerate() {
        if b.failed.is_empty() {
            continue;
        }
        let label = if i + 1 == runs.len() {
            "this build".to_string()
        } else {
            name.clone()
        };
        body.push_str(&format!("\nFailures on {label}:\n"));
        for (reason, n) in &b.failed {
            body.push_str(&format!("- {n}: {reason}\n"));
        }
    }
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/BENCHMARKS.md");
    support::write_section(&path, "burst", &body)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// One build's figures.
struct Figures {
    p50: Duration,
    p99: Duration,
    max: Duration,
    rate: f64,
    tp_p50: Duration,
    cpu_per_job: Duration,
}

/// The median of `v` (not empty).
fn median<T: Copy + PartialOrd>(v: &[T]) -> T {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    s[s.len() / 2]
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_skrei"));
    let baseline = std::env::var_os("SKREI_BENCH_BASELINE").map(PathBuf::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Each measurement on every build before the next measurement, so a
    // change in the machine's load falls on both.
    let builds: Vec<&Path> = baseline
        .iter()
        .map(PathBuf::as_path)
        .chain([ours.as_path()])
        .collect();
    if std::env::args().skip(1).any(|a| a == "burst") {
        return burst_main(&runtime, &builds);
    }
    let mut latencies = Vec::new();
    for exe in &builds {
        let root = tempfile::tempdir()?;
        let (p50, p99, max) = runtime.block_on(latency(exe, root.path()))?;
        println!(
            "{}: latency: p50 {} p99 {} max {}",
            exe.display(),
            ms(p50),
            ms(p99),
            ms(max)
        );
        latencies.push((p50, p99, max));
    }
    // Throughput is noisier (a few seconds of a CPU-bound network):
    // `SKREI_BENCH_ROUNDS` rounds, the builds alternating, medians kept.
    let rounds: usize = std::env::var("SKREI_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut runs: Vec<Vec<Throughput>> = builds.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (b, exe) in builds.iter().enumerate() {
            let root = tempfile::tempdir()?;
            let t = runtime.block_on(throughput(exe, root.path()))?;
            println!(
                "{}: throughput (round {}): {:.1} jobs/s (p50 {}), node CPU {} per job",
                exe.display(),
                round + 1,
                t.rate,
                ms(t.p50),
                ms(t.cpu_per_job)
            );
            runs[b].push(t);
        }
    }
    let mut figures = Vec::new();
    for ((p50, p99, max), runs) in latencies.into_iter().zip(runs) {
        let rates: Vec<f64> = runs.iter().map(|t| t.rate).collect();
        let p50s: Vec<Duration> = runs.iter().map(|t| t.p50).collect();
        let cpus: Vec<Duration> = runs.iter().map(|t| t.cpu_per_job).collect();
        figures.push(Figures {
            p50,
            p99,
            max,
            rate: median(&rates),
            tp_p50: median(&p50s),
            cpu_per_job: median(&cpus),
        });
    }
    let now = figures.last().context("our figures")?;
    let mut body = format!(
        "## Jobs end to end on node processes\n\n\
         `cargo bench -p node --bench devstack`, {date}, {machine}. A WASM hello job \
         (module and input by CID on another node), from `POST /api/v1/jobs` to the results \
         fetched back into the requester's store, on real `skrei node` processes on loopback.\n\n\
         | | skrei | Bacalhau devstack (libp2p era, published) | goal |\n\
         | --- | --- | --- | --- |\n\
         | latency, 3 nodes, {LATENCY_JOBS} jobs one by one: p50 | {p50} | ~1.3 s | < 100 ms |\n\
         | latency p99 / max | {p99} / {max} | | |\n\
         | throughput, {THROUGHPUT_NODES} nodes, {inflight} jobs in flight{rounds_note} | {rate:.1} jobs/s (p50 {tp}) | ~0.75 jobs/s | >= 50 jobs/s |\n\
         | node CPU per job (all nodes, user + system) | {cpu} | | |\n",
        date = support::today(),
        machine = support::machine_line(),
        p50 = ms(now.p50),
        p99 = ms(now.p99),
        max = ms(now.max),
        rate = now.rate,
        inflight = THROUGHPUT_NODES * IN_FLIGHT_PER_NODE,
        tp = ms(now.tp_p50),
        cpu = ms(now.cpu_per_job),
        rounds_note = if rounds > 1 {
            format!(" (median of {rounds} runs)")
        } else {
            String::new()
        },
    );
    if let [base, now] = &figures[..] {
        let name = std::env::var("SKREI_BENCH_BASELINE_NAME").unwrap_or_else(|_| "baseline".into());
        body.push_str(&format!(
            "\nSide by side in the same run with a build of {name} \
             (`SKREI_BENCH_BASELINE`), measured first:\n\n\
             | | {name} | this build | this / {name} |\n\
             | --- | --- | --- | --- |\n\
             | latency p50 | {b50} | {n50} | {r50:.2}x |\n\
             | latency p99 | {b99} | {n99} | {r99:.2}x |\n\
             | throughput | {brate:.1} jobs/s | {nrate:.1} jobs/s | {rrate:.2}x |\n\
             | node CPU per job | {bcpu} | {ncpu} | {rcpu:.2}x |\n",
            b50 = ms(base.p50),
            n50 = ms(now.p50),
            r50 = now.p50.as_secs_f64() / base.p50.as_secs_f64(),
            b99 = ms(base.p99),
            n99 = ms(now.p99),
            r99 = now.p99.as_secs_f64() / base.p99.as_secs_f64(),
            brate = base.rate,
            nrate = now.rate,
            rrate = now.rate / base.rate,
            bcpu = ms(base.cpu_per_job),
            ncpu = ms(now.cpu_per_job),
            rcpu = now.cpu_per_job.as_secs_f64() / base.cpu_per_job.as_secs_f64().max(1e-9),
        ));
    }
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/BENCHMARKS.md");
    support::write_section(&path, "devstack", &body)?;
    Ok(())
}
