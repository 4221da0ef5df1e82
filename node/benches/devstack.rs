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

fn start(dir: &Path, bootstrap: Option<&str>) -> Result<NodeProc> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let mut token = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(dir.join("api.token"))?;
    std::io::Write::write_all(&mut token, TOKEN.as_bytes())?;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skrei"));
    cmd.args(["node", "--data-dir"])
        .arg(dir)
        .args(["--api", "127.0.0.1:0", "--node-info-interval", "1"])
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
                Some("failed" | "cancelled") => bail!("job {id} ended: {}", job["reason"]),
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

async fn network(root: &Path, n: usize) -> Result<Vec<NodeProc>> {
    let first = start(&root.join("node-0"), None)?;
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
        nodes.push(start(&root.join(format!("node-{i}")), Some(&boot))?);
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

async fn latency(root: &Path) -> Result<(Duration, Duration, Duration)> {
    let nodes = network(&root.join("latency"), 3).await?;
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

async fn throughput(root: &Path) -> Result<(f64, Duration)> {
    let nodes = network(&root.join("throughput"), THROUGHPUT_NODES).await?;
    let api = std::sync::Arc::new(Api::new());
    let (module, input) = inputs(&api, &nodes[0], root).await?;
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
    times.sort();
    Ok((
        times.len() as f64 / wall.as_secs_f64(),
        percentile(&times, 0.5),
    ))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let root = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (p50, p99, max) = runtime.block_on(latency(root.path()))?;
    println!("latency: p50 {} p99 {} max {}", ms(p50), ms(p99), ms(max));
    let (rate, tp_p50) = runtime.block_on(throughput(root.path()))?;
    println!("throughput: {rate:.1} jobs/s (p50 {})", ms(tp_p50));

    let body = format!(
        "## Jobs end to end on node processes\n\n\
         `cargo bench -p node --bench devstack`, {date}, {machine}. A WASM hello job \
         (module and input by CID on another node), from `POST /api/v1/jobs` to the results \
         fetched back into the requester's store, on real `skrei node` processes on loopback.\n\n\
         | | skrei | Bacalhau devstack (libp2p era, published) | goal |\n\
         | --- | --- | --- | --- |\n\
         | latency, 3 nodes, {LATENCY_JOBS} jobs one by one: p50 | {p50} | ~1.3 s | < 100 ms |\n\
         | latency p99 / max | {p99} / {max} | | |\n\
         | throughput, {THROUGHPUT_NODES} nodes, {inflight} jobs in flight | {rate:.1} jobs/s (p50 {tp}) | ~0.75 jobs/s | >= 50 jobs/s |\n",
        date = support::today(),
        machine = support::machine_line(),
        p50 = ms(p50),
        p99 = ms(p99),
        max = ms(max),
        inflight = THROUGHPUT_NODES * IN_FLIGHT_PER_NODE,
        tp = ms(tp_p50),
    );
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/BENCHMARKS.md");
    support::write_section(&path, "devstack", &body)?;
    Ok(())
}
