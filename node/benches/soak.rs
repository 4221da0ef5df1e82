//! Soak: many jobs on live node processes while nodes crash (issue 13,
//! "Prove it"; R-OPS-2: a restart loses no submitted job and no result, a
//! job whose compute node dies is re-awarded; R-SEC-5: memory stays
//! bounded).
//!
//! 10 `skrei node` processes on loopback (simnet's [`LiveNet`], as `simnet
//! up` starts them) run the README's devstack example job (the WASM hello
//! module and its input by CID, added on node 1), 5,000 of them paced over
//! 10 minutes, submitted round-robin to nodes 0-4. Every minute one node is
//! SIGKILLed and started again on the same data folder, ports and identity,
//! in rotation among nodes 2-9: nodes 0 and 1 are never killed and witness
//! memory over the whole run; restarted requesters (2-4) show whether a
//! restart loses anything.
//!
//! Checks (the program exits 1 if one fails): every job is accepted and
//! reaches an end state, none is cancelled, no job has more completed
//! executions or accepted results than its `Count`, every failure says
//! why (failures are grouped by reason), every completed job's results
//! reached its requester's store, every killed node came back, and the RSS
//! of every node never killed is within +10% from the first mark (a fifth
//! of the jobs submitted) to the last (all submitted). It prints latency
//! (submit -> job completed, the requester's own timestamps) p50/p90/p99,
//! jobs/s and where executions ran.
//!
//! ```text
//! cargo bench -p node --bench soak                      # 5,000 jobs, 10 min
//! cargo bench -p node --bench soak -- --jobs 300 --duration 120   # smoke
//! ```
//!
//! Options (or environment): `--jobs N` (`SOAK_JOBS`, 5000), `--duration
//! SECS` (`SOAK_DURATION`, 600), `--kill-every SECS` (60), `--down SECS`
//! (how long a killed node stays down, 5), `--drain SECS` (longest wait for
//! the last jobs, 900), `--linger SECS` (keep the nodes running and
//! sampling memory after the drain, 0; longer than the node's
//! retention (60 s) shows what forgetting ended jobs gives back), `--offload`
//! (nodes 0-4 start with `--capacity 0`, so every execution is remote: an
//! idle requester's own bid arrives first and wins, so at a light load the
//! killed compute nodes 5-9 would run nothing), `--write` (the report into
//! docs/BENCHMARKS.md, section `soak`).
//!
//! The nodes run `CARGO_BIN_EXE_skrei`: under `cargo bench`, the release
//! build cargo makes beside the bench (`target/release/skrei`). `SKREI_BIN`
//! overrides it, e.g. with `cargo build --release -p node --bin skrei`'s
//! binary under a debug build of this program. Node logs (`node-I.log`),
//! `rss.csv` (every minute and at the marks), `jobs.csv` and `report.md`
//! stay in the run folder printed at the start.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use simnet::live::{Api, LiveNet, LiveOptions, NodePolicy};

const HELLO: &[u8] = include_bytes!("../../examples/wasm/hello.wasm");
const NODES: usize = 10;
/// Nodes 0..REQUESTERS take the submissions.
const REQUESTERS: usize = 5;
/// Nodes 0..WITNESSES are never killed.
const WITNESSES: usize = 2;
/// The RSS goal: a node never killed grows less than this between the marks.
const RSS_GOAL: f64 = 0.10;
const POLL: Duration = Duration::from_secs(1);
const SAMPLE_EVERY: Duration = Duration::from_secs(60);
/// Node info as often as a node sends it by default: LiveNet's 1 s
/// (quick to learn of restarts) would be a busier network than a real one.
const NODE_INFO_INTERVAL_S: u64 = 30;

struct Settings {
    jobs: usize,
    duration: Duration,
    kill_every: Duration,
    down: Duration,
    drain: Duration,
    linger: Duration,
    /// Nodes 0-4 run nothing (`--capacity 0`): every execution is remote.
    offload: bool,
    write: bool,
    bin: PathBuf,
}

impl Settings {
    fn parse() -> Result<Settings> {
        let env_or = |name: &str, default: u64| -> Result<u64> {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .with_context(|| format!("{name}={v}: not a number")),
                Err(_) => Ok(default),
            }
        };
        let mut jobs = env_or("SOAK_JOBS", 5000)?;
        let mut duration = env_or("SOAK_DURATION", 600)?;
        let (mut kill_every, mut down, mut drain, mut linger) = (60, 5, 900, 0);
        let (mut write, mut offload) = (false, false);
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (arg.clone(), None),
            };
            let target = match name.as_str() {
                "--bench" => continue,
                "--write" => {
                    write = true;
                    continue;
                }
                "--offload" => {
                    offload = true;
                    continue;
                }
                "--jobs" => &mut jobs,
                "--duration" => &mut duration,
                "--kill-every" => &mut kill_every,
                "--down" => &mut down,
                "--drain" => &mut drain,
                "--linger" => &mut linger,
                other => bail!(
                    "unknown option {other}: use --jobs N --duration SECS --kill-every SECS \
                     --down SECS --drain SECS --linger SECS --offload --write"
                ),
            };
            let value = inline
                .or_else(|| args.next())
                .with_context(|| format!("{name} needs a value"))?;
            *target = value
                .parse()
                .with_context(|| format!("{name} {value}: not a number"))?;
        }
        if jobs < 5 || duration == 0 || kill_every == 0 {
            bail!("give at least 5 jobs, and a duration and kill interval above 0");
        }
        Ok(Settings {
            jobs: jobs as usize,
            duration: Duration::from_secs(duration),
            kill_every: Duration::from_secs(kill_every),
            down: Duration::from_secs(down),
            drain: Duration::from_secs(drain),
            linger: Duration::from_secs(linger),
            offload,
            write,
            bin: std::env::var_os("SKREI_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_skrei"))),
        })
    }

    /// The command that runs this soak again.
    fn command(&self) -> String {
        let mut command = format!(
            "cargo bench -p node --bench soak -- --jobs {} --duration {}",
            self.jobs,
            self.duration.as_secs()
        );
        for (flag, value, default) in [
            ("--kill-every", self.kill_every, 60),
            ("--down", self.down, 5),
            ("--drain", self.drain, 900),
            ("--linger", self.linger, 0),
        ] {
            if value.as_secs() != default {
                let _ = write!(command, " {flag} {}", value.as_secs());
            }
        }
        if self.offload {
            command.push_str(" --offload");
        }
        command
    }

    /// The first memory mark: a fifth of the jobs (1,000 of 5,000).
    fn first_mark(&self) -> usize {
        self.jobs / 5
    }
}

/// What the threads share about one node.
struct NodeView {
    /// A restart on other ports (someone took the old ones) changes it.
    api: Mutex<Api>,
    /// Its data folder: finds its process.
    dir: PathBuf,
    node_id: String,
    up: AtomicBool,
    /// SIGKILLs so far.
    kills: AtomicU32,
}

impl NodeView {
    fn api(&self) -> Api {
        self.api.lock().expect("api lock").clone()
    }

    fn memory(&self) -> Option<Memory> {
        if !self.up.load(Ordering::SeqCst) {
            return None;
        }
        Memory::of(pid_of(&self.dir)?)
    }
}

/// The `skrei node` process running on data folder `dir`, found by its
/// command line (`LiveNet` keeps its children to itself).
fn pid_of(dir: &Path) -> Option<u32> {
    let want = dir.as_os_str().as_bytes();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            (args.get(1) == Some(&&b"node"[..])
                && args
                    .windows(2)
                    .any(|w| w[0] == b"--data-dir" && w[1] == want))
            .then_some(pid)
        })
}

/// A process's resident memory, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Memory {
    /// `VmRSS`, KiB.
    rss_kib: u64,
    /// `RssAnon` (heap and other private memory), KiB.
    anon_kib: u64,
}

impl Memory {
    fn of(pid: u32) -> Option<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status.lines().find_map(|l| {
                l.strip_prefix(name)?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()
            })
        };
        Some(Memory {
            rss_kib: field("VmRSS:")?,
            anon_kib: field("RssAnon:")?,
        })
    }
}

/// A job's state as its requester last described it.
#[derive(Clone, Debug)]
struct Described {
    state: String,
    /// A failed job's cause (`no_node_accepts`, ...), as typed by the node.
    cause: Option<String>,
    reason: Option<String>,
    count: u64,
    completed_executions: usize,
    accepted_results: usize,
    fetched: bool,
    attempts: usize,
    /// The node of each execution, in award order.
    ran_on: Vec<String>,
    /// When each execution was awarded (the requester's clock, Unix ms).
    awarded_at_ms: Vec<Option<u64>>,
    submitted_at_ms: Option<u64>,
    ended_at_ms: Option<u64>,
}

impl Described {
    fn from(v: &Value) -> Described {
        let record = &v["job"];
        let executions = record["executions"].as_array().cloned().unwrap_or_default();
        let results = v["results"].as_array().cloned().unwrap_or_default();
        let mut accepted: Vec<u64> = results
            .iter()
            .filter_map(|r| r["execution_id"].as_u64())
            .collect();
        accepted.sort_unstable();
        accepted.dedup();
        let ended_at_ms = v["events"].as_array().and_then(|events| {
            events.iter().find_map(|e| {
                matches!(
                    e["event"]["event"].as_str(),
                    Some("job_completed" | "job_failed" | "job_cancelled")
                )
                .then(|| e["at_ms"].as_u64())
                .flatten()
            })
        });
        Described {
            state: v["state"].as_str().unwrap_or("unknown").to_string(),
            cause: v["failure"]["cause"].as_str().map(str::to_string),
            reason: v["failure"]["detail"].as_str().map(str::to_string),
            count: record["announce"]["spec"]["Count"].as_u64().unwrap_or(0),
            completed_executions: executions
                .iter()
                .filter(|e| e["state"]["state"] == "completed")
                .count(),
            accepted_results: accepted.len(),
            fetched: !results.is_empty() && results.iter().all(|r| r["fetched"] == true),
            attempts: executions.len(),
            ran_on: executions
                .iter()
                .filter_map(|e| e["node"].as_str().map(str::to_string))
                .collect(),
            awarded_at_ms: executions
                .iter()
                .filter(|e| e["node"].is_string())
                .map(|e| e["awarded_at_ms"].as_u64())
                .collect(),
            submitted_at_ms: record["announce"]["submitted_at_ms"].as_u64(),
            ended_at_ms,
        }
    }

    fn ended(&self) -> bool {
        matches!(self.state.as_str(), "completed" | "failed" | "cancelled")
    }

    /// Nothing more will change that the checks read.
    fn settled(&self) -> bool {
        self.ended() && (self.state != "completed" || self.fetched)
    }

    fn latency_ms(&self) -> Option<u64> {
        Some(self.ended_at_ms?.saturating_sub(self.submitted_at_ms?))
    }
}

struct Job {
    seq: usize,
    node: usize,
    job_id: String,
    /// Why the last attempt to describe the job failed (not found, no
    /// answer), if it did.
    last_error: Option<String>,
    described: Option<Described>,
}

impl Job {
    fn settled(&self) -> bool {
        self.described.as_ref().is_some_and(Described::settled)
    }
}

/// Everything the run's threads share.
struct Run {
    settings: Settings,
    dir: PathBuf,
    started: Instant,
    /// `started` as Unix ms, to place the nodes' timestamps in the run.
    started_unix_ms: u64,
    views: Vec<NodeView>,
    jobs: Mutex<Vec<Job>>,
    submitted: AtomicUsize,
    submit_failures: Mutex<Vec<(usize, String)>>,
    /// Submissions that went to the next requester because the first was
    /// down or did not answer.
    redirected: AtomicUsize,
    /// (mark name, memory of each node) at the marks.
    marks: Mutex<Vec<(String, Vec<Option<Memory>>)>>,
    /// (node, seconds into the run) of every restart.
    restarts: Mutex<Vec<(usize, u64)>>,
    restart_failures: Mutex<Vec<String>>,
    csv: Mutex<std::fs::File>,
    /// Tells the tracker and the sampler to stop.
    done: AtomicBool,
}

impl Run {
    fn secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    fn ended(&self) -> usize {
        let jobs = self.jobs.lock().expect("jobs lock");
        jobs.iter()
            .filter(|j| j.described.as_ref().is_some_and(Described::ended))
            .count()
    }

    /// One row of `rss.csv`; returns the memory it read.
    fn sample(&self, event: &str) -> Vec<Option<Memory>> {
        let memory: Vec<Option<Memory>> = self.views.iter().map(NodeView::memory).collect();
        let mut row = format!(
            "{},{event},{},{}",
            self.secs(),
            self.submitted.load(Ordering::SeqCst),
            self.ended()
        );
        for m in &memory {
            match m {
                Some(m) => write!(row, ",{},{}", m.rss_kib, m.anon_kib),
                None => write!(row, ",,"),
            }
            .expect("writing to a String");
        }
        let mut csv = self.csv.lock().expect("csv lock");
        let _ = writeln!(csv, "{row}");
        memory
    }

    fn mark(&self, name: String) {
        let memory = self.sample(&name);
        self.marks.lock().expect("marks lock").push((name, memory));
    }

    /// Sleeps `how_long`, or less if the run is done; returns whether it is.
    fn sleep(&self, how_long: Duration) -> bool {
        let until = Instant::now() + how_long;
        while !self.done.load(Ordering::SeqCst) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            std::thread::sleep(left.min(Duration::from_millis(200)));
        }
        true
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn job_yaml(name: &str, module: &str, input: &str) -> String {
    // The README's devstack example job (`skrei devstack --example`).
    format!(
        "Name: {name}\nType: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      \
         Type: wasm\n      Params:\n        EntryModule:\n          Source:\n            \
         Type: ipfs\n            Params:\n              CID: {module}\n    InputSources:\n      \
         - Source:\n          Type: ipfs\n          Params:\n            CID: {input}\n        \
         Target: /inputs/name.txt\n    ResultPaths:\n      - Name: outputs\n        Path: /outputs\n"
    )
}

/// Submits the jobs on schedule, round-robin over the requesters; a
/// requester that is down or does not answer passes the job to the next.
fn submit_all(run: &Run, module: &str, input: &str) {
    let total = run.settings.jobs;
    let t0 = Instant::now();
    for seq in 0..total {
        let due = t0 + run.settings.duration.mul_f64(seq as f64 / total as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let job = job_yaml(&format!("soak-{seq}"), module, input);
        let mut errors = Vec::new();
        for step in 0..REQUESTERS {
            let node = (seq + step) % REQUESTERS;
            let view = &run.views[node];
            if !view.up.load(Ordering::SeqCst) {
                errors.push(format!("node {node} down"));
                continue;
            }
            match view.api().submit(&job) {
                Ok(job_id) => {
                    run.jobs.lock().expect("jobs lock").push(Job {
                        seq,
                        node,
                        job_id,
                        last_error: None,
                        described: None,
                    });
                    errors.clear();
                    if step > 0 {
                        run.redirected.fetch_add(1, Ordering::SeqCst);
                    }
                    break;
                }
                Err(e) => errors.push(format!("node {node}: {e}")),
            }
        }
        if !errors.is_empty() {
            run.submit_failures
                .lock()
                .expect("failures lock")
                .push((seq, errors.join("; ")));
        }
        let submitted = run.submitted.fetch_add(1, Ordering::SeqCst) + 1;
        if submitted == run.settings.first_mark() || submitted == total {
            run.mark(format!("after {submitted} jobs"));
        }
    }
}

/// Describes every job that has not settled yet on its requester, each
/// second, until the run is done.
fn track(run: &Run) {
    while !run.sleep(POLL) {
        let open: Vec<(usize, usize, String)> = {
            let jobs = run.jobs.lock().expect("jobs lock");
            jobs.iter()
                .enumerate()
                .filter(|(_, j)| !j.settled())
                .map(|(i, j)| (i, j.node, j.job_id.clone()))
                .collect()
        };
        for (i, node, job_id) in open {
            let view = &run.views[node];
            if !view.up.load(Ordering::SeqCst) {
                continue;
            }
            let answer = view.api().get(&format!("/api/v1/jobs/{job_id}"));
            let mut jobs = run.jobs.lock().expect("jobs lock");
            match answer {
                Ok(v) => {
                    jobs[i].described = Some(Described::from(&v));
                    jobs[i].last_error = None;
                }
                Err(e) => jobs[i].last_error = Some(e.to_string()),
            }
        }
    }
}

/// A row in `rss.csv` every minute, and a progress line, until the run is
/// done.
fn sample_every_minute(run: &Run) {
    while !run.sleep(SAMPLE_EVERY) {
        let memory = run.sample("minute");
        let rss: Vec<String> = memory
            .iter()
            .map(|m| m.map_or("down".into(), |m| mib(m.rss_kib)))
            .collect();
        println!(
            "[{:>4} s] submitted {}, ended {}; RSS MiB by node: {}",
            run.secs(),
            run.submitted.load(Ordering::SeqCst),
            run.ended(),
            rss.join(" ")
        );
    }
}

/// Kills one node every `kill_every`, in rotation among those that are not
/// witnesses, while the submissions last; each comes back after `down`.
/// Runs on the main thread, which started the nodes: they stop with the
/// thread that started them (`--parent-pid`).
fn crash_nodes(run: &Run, net: &mut LiveNet) {
    let t0 = Instant::now();
    for round in 1.. {
        let due = t0 + run.settings.kill_every * round;
        if due >= t0 + run.settings.duration {
            return;
        }
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let i = WITNESSES + (round as usize - 1) % (NODES - WITNESSES);
        let view = &run.views[i];
        view.up.store(false, Ordering::SeqCst);
        if let Err(e) = net.kill(i) {
            run.restart_failures
                .lock()
                .expect("lock")
                .push(format!("killing node {i}: {e}"));
            continue;
        }
        view.kills.fetch_add(1, Ordering::SeqCst);
        println!("[{:>4} s] node {i} SIGKILLed", run.secs());
        std::thread::sleep(run.settings.down);
        let restarted = net.restart(i);
        if net.is_running(i) {
            *view.api.lock().expect("api lock") = net.api(i).clone();
            view.up.store(true, Ordering::SeqCst);
        }
        match restarted {
            Ok(()) => {
                run.restarts.lock().expect("lock").push((i, run.secs()));
                println!("[{:>4} s] node {i} restarted", run.secs());
            }
            Err(e) => {
                println!("[{:>4} s] node {i} restart: {e}", run.secs());
                run.restart_failures
                    .lock()
                    .expect("lock")
                    .push(format!("restarting node {i}: {e}"));
            }
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The report, and whether every check passed.
fn report(run: &Run) -> (String, bool) {
    let s = &run.settings;
    let jobs = run.jobs.lock().expect("jobs lock");
    let mut out = String::new();
    let mut ok = true;
    let mut check = |out: &mut String, passed: bool, text: String| {
        ok &= passed;
        let _ = writeln!(out, "- [{}] {text}", if passed { "pass" } else { "FAIL" });
    };

    let _ = writeln!(
        out,
        "{NODES} `skrei node` processes, {} jobs over {} s submitted round-robin to nodes 0-{}, \
         one node SIGKILLed every {} s (rotation over nodes {WITNESSES}-{}; nodes 0-{} never \
         killed: clean RSS witnesses) and restarted {} s later on the same data folder, ports \
         and identity.{}\n",
        s.jobs,
        s.duration.as_secs(),
        REQUESTERS - 1,
        s.kill_every.as_secs(),
        NODES - 1,
        WITNESSES - 1,
        s.down.as_secs(),
        if s.offload {
            format!(
                " `--offload`: nodes 0-{} run no job (`--capacity 0`).",
                REQUESTERS - 1
            )
        } else {
            String::new()
        },
    );
    let _ = writeln!(out, "Checks:\n");

    // Submissions.
    let failures = run.submit_failures.lock().expect("lock");
    check(
        &mut out,
        failures.is_empty(),
        format!(
            "every job was accepted by a requester: {} of {} ({} passed on because the first \
             choice was down or did not answer)",
            jobs.len(),
            s.jobs,
            run.redirected.load(Ordering::SeqCst)
        ),
    );
    for (seq, why) in failures.iter().take(10) {
        let _ = writeln!(out, "  - job {seq} not submitted: {why}");
    }

    // Lost jobs.
    let not_ended: Vec<&Job> = jobs
        .iter()
        .filter(|j| !j.described.as_ref().is_some_and(Described::ended))
        .collect();
    check(
        &mut out,
        not_ended.is_empty(),
        format!(
            "no job lost: {} of {} reached an end state ({} did not)",
            jobs.len() - not_ended.len(),
            jobs.len(),
            not_ended.len()
        ),
    );
    for j in not_ended.iter().take(30) {
        let last = match (&j.described, &j.last_error) {
            (_, Some(e)) => e.clone(),
            (Some(d), None) => d.state.clone(),
            (None, None) => "never described".into(),
        };
        let _ = writeln!(
            out,
            "  - job {} ({}) on node {}: {last}",
            j.seq, j.job_id, j.node
        );
    }

    let described: Vec<(&Job, &Described)> = jobs
        .iter()
        .filter_map(|j| Some((j, j.described.as_ref()?)))
        .collect();
    let cancelled = described
        .iter()
        .filter(|(_, d)| d.state == "cancelled")
        .count();
    check(
        &mut out,
        cancelled == 0,
        format!("no job cancelled (the bench cancels none): {cancelled}"),
    );

    // Count.
    let over: Vec<_> = described
        .iter()
        .filter(|(_, d)| {
            d.count == 0
                || d.completed_executions as u64 > d.count
                || d.accepted_results as u64 > d.count
        })
        .collect();
    check(
        &mut out,
        over.is_empty(),
        format!(
            "no job has more completed executions or accepted results than its Count: {} do",
            over.len()
        ),
    );
    for (j, d) in over.iter().take(10) {
        let _ = writeln!(
            out,
            "  - job {} on node {}: Count {}, {} completed, {} results",
            j.job_id, j.node, d.count, d.completed_executions, d.accepted_results
        );
    }

    // Failures.
    let failed: Vec<&(&Job, &Described)> = described
        .iter()
        .filter(|(_, d)| d.state == "failed")
        .collect();
    let unexplained = failed
        .iter()
        .filter(|(_, d)| {
            d.cause.is_none() || d.reason.as_deref().is_none_or(|r| r.trim().is_empty())
        })
        .count();
    check(
        &mut out,
        unexplained == 0,
        format!(
            "every failure explained: {} failed, {unexplained} without a cause and a reason",
            failed.len()
        ),
    );
    let mut by_reason: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (_, d) in &failed {
        let reason = d.reason.clone().unwrap_or_default();
        // Grouped by the node's typed cause, never by the words.
        let cause = d.cause.clone().unwrap_or_else(|| "(no cause)".into());
        let entry = by_reason.entry(cause).or_insert((0, reason));
        entry.0 += 1;
    }
    let mut by_reason: Vec<_> = by_reason.into_iter().collect();
    by_reason.sort_by_key(|r| std::cmp::Reverse(r.1.0));
    for (key, (n, example)) in &by_reason {
        let _ = writeln!(
            out,
            "  - {n} x `{key}` (e.g. \"{}\")",
            example.lines().next().unwrap_or("")
        );
    }

    // Results fetched.
    let completed: Vec<&(&Job, &Described)> = described
        .iter()
        .filter(|(_, d)| d.state == "completed")
        .collect();
    let unfetched: Vec<_> = completed.iter().filter(|(_, d)| !d.fetched).collect();
    check(
        &mut out,
        unfetched.is_empty(),
        format!(
            "every completed job's results are in its requester's store: {} of {} are not",
            unfetched.len(),
            completed.len()
        ),
    );
    for (j, _) in unfetched.iter().take(10) {
        let _ = writeln!(out, "  - job {} ({}) on node {}", j.seq, j.job_id, j.node);
    }

    // Restarts.
    let restart_failures = run.restart_failures.lock().expect("lock");
    let restarts = run.restarts.lock().expect("lock");
    check(
        &mut out,
        restart_failures.is_empty(),
        format!(
            "every killed node came back: {} restarts, {} failures",
            restarts.len(),
            restart_failures.len()
        ),
    );
    for f in restart_failures.iter() {
        let _ = writeln!(out, "  - {f}");
    }

    // Memory.
    let (rss_table, rss_ok, rss_text) = memory_report(run);
    check(&mut out, rss_ok, rss_text);

    // Figures.
    let mut latencies: Vec<u64> = completed
        .iter()
        .filter_map(|(_, d)| d.latency_ms())
        .collect();
    latencies.sort_unstable();
    let span_ms = described
        .iter()
        .filter_map(|(_, d)| d.ended_at_ms)
        .max()
        .zip(
            described
                .iter()
                .filter_map(|(_, d)| d.submitted_at_ms)
                .min(),
        )
        .map_or(0, |(end, start)| end.saturating_sub(start));
    let attempts: usize = described.iter().map(|(_, d)| d.attempts).sum();
    let _ = writeln!(
        out,
        "\nFigures: {} completed, {} failed; latency submit -> completed p50 {} ms, p90 {} ms, \
         p99 {} ms, max {} ms; {:.2} jobs/s completed (first submission to last end, {:.0} s); \
         {:.3} executions per ended job.\n",
        completed.len(),
        failed.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
        completed.len() as f64 / (span_ms.max(1) as f64 / 1000.0),
        span_ms as f64 / 1000.0,
        attempts as f64 / described.len().max(1) as f64,
    );
    let _ = writeln!(out, "{}\n", placement(run, &described));
    if let Some(line) = awards_after_restarts(run, &restarts, &described) {
        let _ = writeln!(out, "{line}\n");
    }
    let _ = writeln!(out, "RSS (VmRSS) by node:\n\n{rss_table}");
    if !restarts.is_empty() {
        let list: Vec<String> = restarts
            .iter()
            .map(|(n, t)| format!("node {n} at {t} s"))
            .collect();
        let _ = writeln!(out, "Restarts: {}.\n", list.join(", "));
    }
    (out, ok)
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How many executions each restarted node was awarded in the interval
/// after its restart, beside the median of the other compute nodes in the
/// same interval: a restarted node that takes no work back (its slots held
/// by bids on jobs placed while it was down) shows here.
/// `restarts`: (node, seconds into the run), as `run.restarts` holds them
/// (the caller holds its lock).
fn awards_after_restarts(
    run: &Run,
    restarts: &[(usize, u64)],
    described: &[(&Job, &Described)],
) -> Option<String> {
    if restarts.is_empty() {
        return None;
    }
    let window_ms = u64::try_from(run.settings.kill_every.as_millis()).unwrap_or(u64::MAX);
    let first_compute = if run.settings.offload { REQUESTERS } else { 0 };
    let mut lines = Vec::new();
    for &(restarted, secs) in restarts {
        let from = run.started_unix_ms + secs * 1000;
        let until = from.saturating_add(window_ms);
        let mut by_node = [0usize; NODES];
        for (_, d) in described {
            for (node_id, at) in d.ran_on.iter().zip(&d.awarded_at_ms) {
                if !at.is_some_and(|at| (from..until).contains(&at)) {
                    continue;
                }
                if let Some(i) = run.views.iter().position(|v| &v.node_id == node_id) {
                    by_node[i] += 1;
                }
            }
        }
        let mut others: Vec<usize> = (first_compute..NODES)
            .filter(|i| *i != restarted)
            .map(|i| by_node[i])
            .collect();
        others.sort_unstable();
        let median = others.get(others.len() / 2).copied().unwrap_or(0);
        lines.push(format!(
            "node {restarted} at {secs} s: {} (others' median {median})",
            by_node[restarted]
        ));
    }
    Some(format!(
        "Executions awarded in the {} s after each restart: {}.",
        run.settings.kill_every.as_secs(),
        lines.join("; ")
    ))
}

/// Where executions ran: a count by node, and how many on the job's own
/// requester (the requester's own bid arrives first, and R-POL-4 breaks
/// ties by arrival).
fn placement(run: &Run, described: &[(&Job, &Described)]) -> String {
    let mut by_node = [0usize; NODES];
    let (mut local, mut total) = (0usize, 0usize);
    for (job, d) in described {
        for node_id in &d.ran_on {
            total += 1;
            if let Some(i) = run.views.iter().position(|v| &v.node_id == node_id) {
                by_node[i] += 1;
                local += usize::from(i == job.node);
            }
        }
    }
    let counts: Vec<String> = by_node
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{i}: {n}"))
        .collect();
    format!(
        "Executions by node: {}; {local} of {total} ran on the job's own requester.",
        counts.join(", ")
    )
}

/// The RSS table (every node at every mark, restarted nodes flagged) and
/// the verdict on the never-restarted ones between the first two marks.
fn memory_report(run: &Run) -> (String, bool, String) {
    let marks = run.marks.lock().expect("marks lock");
    let pct = |c: f64| format!("{:+.1}%", c * 100.0);
    let mut table = String::from("| node | role | killed and restarted |");
    for (name, _) in marks.iter() {
        let _ = write!(table, " {name} |");
    }
    table.push_str(" change, first two marks |\n| --- | --- | --- |");
    table.push_str(&" --- |".repeat(marks.len() + 1));
    table.push('\n');
    let mut passed = true;
    let mut figures = Vec::new();
    for (i, view) in run.views.iter().enumerate() {
        let at = |m: usize| marks.get(m).and_then(|m| m.1[i]);
        let change = at(0)
            .zip(at(1))
            .map(|(a, b)| b.rss_kib as f64 / a.rss_kib as f64 - 1.0);
        let kills = view.kills.load(Ordering::SeqCst);
        if kills == 0 {
            passed &= change.is_some_and(|c| c <= RSS_GOAL);
            figures.push(format!(
                "node {i} {} -> {} MiB ({})",
                at(0).map_or("?".into(), |m| mib(m.rss_kib)),
                at(1).map_or("?".into(), |m| mib(m.rss_kib)),
                change.map_or("?".into(), pct)
            ));
        }
        let side = if i >= REQUESTERS {
            "compute"
        } else if run.settings.offload {
            "requester only"
        } else {
            "requester + compute"
        };
        let fate = if i < WITNESSES {
            "never killed"
        } else {
            "in the kill rotation"
        };
        let role = format!("{side}, {fate}");
        let flag = if kills > 0 { "**restarted** " } else { "" };
        let _ = write!(table, "| {i} | {role} | {flag}{kills} |");
        for m in 0..marks.len() {
            let cell = at(m).map_or("down".into(), |m| format!("{} MiB", mib(m.rss_kib)));
            let _ = write!(table, " {cell} |");
        }
        let _ = writeln!(table, " {} |", change.map_or("-".into(), pct));
    }
    let name = |m: usize| marks.get(m).map_or("?", |m| m.0.as_str());
    let text = format!(
        "RSS of the never-restarted nodes within +{:.0}% from {} to {}: {}",
        RSS_GOAL * 100.0,
        name(0),
        name(1),
        figures.join(", ")
    );
    (table, passed && !figures.is_empty(), text)
}

fn write_jobs_csv(run: &Run) -> Result<()> {
    let jobs = run.jobs.lock().expect("jobs lock");
    let mut csv = String::from("seq,node,job_id,state,latency_ms,executions,reason\n");
    for j in jobs.iter() {
        let d = j.described.as_ref();
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},\"{}\"",
            j.seq,
            j.node,
            j.job_id,
            d.map_or("not ended", |d| d.state.as_str()),
            d.and_then(Described::latency_ms)
                .map_or(String::new(), |l| l.to_string()),
            d.map_or(0, |d| d.attempts),
            d.and_then(|d| d.reason.as_deref())
                .unwrap_or("")
                .replace('"', "'")
                .replace('\n', " "),
        );
    }
    std::fs::write(run.dir.join("jobs.csv"), csv)?;
    Ok(())
}

/// Starts the network and adds the job's module and input on node 1 (never
/// killed); returns the network, its nodes' views and the two CIDs.
fn start(settings: &Settings, dir: &Path) -> Result<(LiveNet, Vec<NodeView>, String, String)> {
    let mut options = LiveOptions::new(NODES, &settings.bin);
    options.data_dir = Some(dir.to_path_buf());
    options.node_info_interval_s = NODE_INFO_INTERVAL_S;
    if settings.offload {
        let run_nothing = NodePolicy {
            capacity: Some(0),
            ..NodePolicy::default()
        };
        options.policies = vec![run_nothing; REQUESTERS];
    }
    let net = LiveNet::start(options).context("starting the nodes")?;
    let views = (0..NODES)
        .map(|i| NodeView {
            api: Mutex::new(net.api(i).clone()),
            dir: dir.join(format!("node-{i}")),
            node_id: net.node_id(i).to_string(),
            up: AtomicBool::new(true),
            kills: AtomicU32::new(0),
        })
        .collect();
    let module = dir.join("hello.wasm");
    std::fs::write(&module, HELLO)?;
    let input = dir.join("name.txt");
    std::fs::write(&input, "soak\n")?;
    let module = net.api(1).add_file(&module)?;
    let input = net.api(1).add_file(&input)?;
    Ok((net, views, module, input))
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let settings = Settings::parse()?;
    let dir = std::env::temp_dir().join(format!(
        "skrei-soak-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
    ));
    std::fs::create_dir_all(&dir)?;
    println!("run folder: {}", dir.display());
    println!("nodes: {}", settings.bin.display());
    println!(
        "nodes 0-{} are never killed: they are the clean RSS witnesses",
        WITNESSES - 1
    );
    let (mut net, views, module, input) = start(&settings, &dir)?;
    let mut csv = std::fs::File::create(dir.join("rss.csv"))?;
    let mut header = String::from("elapsed_s,event,submitted,ended");
    for i in 0..NODES {
        write!(header, ",node{i}_rss_kib,node{i}_anon_kib")?;
    }
    writeln!(csv, "{header}")?;
    let run = Run {
        settings,
        dir,
        started: Instant::now(),
        started_unix_ms: unix_ms(),
        views,
        jobs: Mutex::new(Vec::new()),
        submitted: AtomicUsize::new(0),
        submit_failures: Mutex::new(Vec::new()),
        redirected: AtomicUsize::new(0),
        marks: Mutex::new(Vec::new()),
        restarts: Mutex::new(Vec::new()),
        restart_failures: Mutex::new(Vec::new()),
        csv: Mutex::new(csv),
        done: AtomicBool::new(false),
    };
    run.sample("start");
    println!(
        "network up; submitting {} jobs over {} s",
        run.settings.jobs,
        run.settings.duration.as_secs()
    );
    std::thread::scope(|threads| {
        let submitter = threads.spawn(|| submit_all(&run, &module, &input));
        threads.spawn(|| track(&run));
        threads.spawn(|| sample_every_minute(&run));
        crash_nodes(&run, &mut net);
        let _ = submitter.join();
        println!(
            "[{:>4} s] all jobs submitted; waiting for them to end",
            run.secs()
        );
        let drain_until = Instant::now() + run.settings.drain;
        loop {
            let open = run
                .jobs
                .lock()
                .expect("jobs lock")
                .iter()
                .filter(|j| !j.settled())
                .count();
            if open == 0 || Instant::now() > drain_until {
                println!(
                    "[{:>4} s] {open} jobs open at the end of the wait",
                    run.secs()
                );
                break;
            }
            std::thread::sleep(POLL);
        }
        run.mark("after the drain".into());
        if !run.settings.linger.is_zero() {
            println!(
                "lingering {} s, memory sampled every minute",
                run.settings.linger.as_secs()
            );
            std::thread::sleep(run.settings.linger);
            run.mark(format!("{} s later", run.settings.linger.as_secs()));
        }
        run.done.store(true, Ordering::SeqCst);
    });
    write_jobs_csv(&run)?;
    let (body, ok) = report(&run);
    let heading = format!(
        "Measured {} on {} (shared with other work); nodes: `{}`; command: `{}`.\n",
        support::today(),
        support::machine_line(),
        run.settings.bin.display(),
        run.settings.command(),
    );
    let text = format!("{heading}\n{body}");
    println!("\n{text}");
    std::fs::write(run.dir.join("report.md"), &text)?;
    if run.settings.write {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/BENCHMARKS.md");
        support::write_section(&path, "soak", text.trim_end())?;
    }
    println!("run folder: {}", run.dir.display());
    net.shutdown();
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
