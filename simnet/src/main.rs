//! `simnet`: run simulated skrei testnets from the command line.
//!
//! ```text
//! simnet run --nodes 100 --jobs 300 --seed 7 --churn 0.1 --partition 0.3@10000-40000
//! simnet sweep --seeds 1..100 --nodes 50 --jobs 100 --churn 0.1
//! simnet run --scenario simnet/scenarios/ci.toml --report r.json --plot p.svg
//! simnet up --nodes 5 --policies policies.toml     # real nodes; Ctrl-C stops them
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use simnet::config::Partition;
use simnet::live::{LiveNet, LiveOptions, default_skrei};
use simnet::{SimConfig, Violation};

#[derive(Parser)]
#[command(
    name = "simnet",
    about = "Simulated skrei testnets: seeded, reproducible, checked."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one simulation and print its report.
    Run {
        #[command(flatten)]
        scenario: Scenario,
        /// The seed every random choice is drawn from [default: the
        /// scenario file's, else 1].
        #[arg(long)]
        seed: Option<u64>,
        /// Also write the report as JSON here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Also draw the latency CDF and messages per node as SVG here.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Run many seeds on every core and list the failing ones.
    Sweep {
        #[command(flatten)]
        scenario: Scenario,
        /// Seeds to run, `A..B` (B excluded) or `A..=B`.
        #[arg(long, default_value = "1..100")]
        seeds: String,
        /// Worker threads (default: the machine's cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Start real `skrei node` processes on loopback, print their APIs
    /// (`SKREI_API=http://...` and `SKREI_API_TOKEN=...`, node 0 first) and
    /// run until Ctrl-C.
    Up(Up),
}

#[derive(Args)]
struct Up {
    /// How many nodes.
    #[arg(long, value_parser = at_least_one)]
    nodes: usize,
    /// Each node's acceptance policy: a TOML file of `[[share]]` and
    /// `[[node]]` entries (the format is in the simnet crate docs, module
    /// `live::policies`). Without it every node accepts network `none`.
    #[arg(long, value_name = "FILE")]
    policies: Option<PathBuf>,
    /// The `skrei` binary [default: $SKREI_BIN, else the `skrei` beside
    /// this program].
    #[arg(long, value_name = "PATH")]
    skrei: Option<PathBuf>,
    /// Folder for the nodes' data and logs, kept at the end [default: a new
    /// temporary folder, removed at the end].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Run each node in a Docker container of its own, all on one Docker
    /// network made for the testnet: `docker network disconnect NETWORK
    /// CONTAINER` cuts a node off, `docker network connect` heals it.
    #[arg(long)]
    docker: bool,
}

/// The scenario: a file, and flags that override it (or the defaults).
#[derive(Args, Clone)]
struct Scenario {
    /// A scenario file (TOML; the format is in the simnet crate docs, an
    /// example in simnet/scenarios/). Flags given as well override it.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Nodes in the network, at least 1 [default: 100].
    #[arg(long, value_parser = at_least_one)]
    nodes: Option<usize>,
    /// Jobs submitted [default: 300].
    #[arg(long)]
    jobs: Option<usize>,
    /// Share of nodes that crash once (and restart) during the run [default: 0].
    #[arg(long)]
    churn: Option<f64>,
    /// A partition, SHARE@FROM_MS-UNTIL_MS (repeatable; replaces the file's).
    #[arg(long, value_parser = Partition::parse)]
    partition: Vec<Partition>,
    /// One-way link latency in ms; jitter adds up to half of it [default: 50].
    #[arg(long)]
    latency: Option<u64>,
    /// Probability that a message (or one gossip hop) is lost [default: 0].
    #[arg(long)]
    loss: Option<f64>,
    /// Regions the nodes are spread over (pair classes of links) [default: 1].
    #[arg(long)]
    regions: Option<u32>,
    /// Extra one-way latency in ms between nodes of different regions [default: 0].
    #[arg(long)]
    cross_region_ms: Option<u64>,
    /// Share of nodes started with --accept-network=http [default: 0.3].
    #[arg(long)]
    http_share: Option<f64>,
    /// Share of nodes started with --accept-network=full [default: 0.1].
    #[arg(long)]
    full_share: Option<f64>,
    /// Share of jobs in network mode http [default: 0.3].
    #[arg(long)]
    http_jobs: Option<f64>,
    /// Share of jobs in network mode full [default: 0.05].
    #[arg(long)]
    full_jobs: Option<f64>,
    /// Jobs are submitted over this many ms [default: 60000].
    #[arg(long)]
    window: Option<u64>,
    /// Probability that an execution fails [default: 0.05].
    #[arg(long)]
    exec_failure: Option<f64>,
    /// Share of jobs that read 1-3 CID inputs, held by the node they are
    /// submitted to [default: 0.5].
    #[arg(long, value_name = "P")]
    input_share: Option<f64>,
    /// Copies of each input on other nodes, drawn at random [default: 0].
    #[arg(long, value_name = "K")]
    replicas: Option<u32>,
    /// Node 0 floods: it submits this many times the network's slots in
    /// extra jobs over the window; the report gives the other requesters'
    /// jobs apart [default: 0].
    #[arg(long, value_name = "X")]
    flood: Option<f64>,
    /// Nodes that ignore their policy (shows that the checker catches them).
    #[arg(long, value_delimiter = ',')]
    faulty: Vec<usize>,
    /// Nodes whose fetches never find a provider (shows that the checker
    /// catches them).
    #[arg(long, value_delimiter = ',')]
    faulty_fetch: Vec<usize>,
}

impl Scenario {
    /// The scenario file's configuration, or the defaults.
    fn base(&self) -> Result<SimConfig, String> {
        let Some(path) = &self.scenario else {
            return Ok(SimConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("could not read the scenario {}: {e}", path.display()))?;
        SimConfig::from_toml(&text).map_err(|e| format!("scenario {}: {e}", path.display()))
    }

    /// `base` with the flags given applied, and `seed` if given.
    fn config(&self, base: &SimConfig, seed: Option<u64>) -> Result<SimConfig, String> {
        let mut c = base.clone();
        if let Some(seed) = seed {
            c.seed = seed;
        }
        if let Some(v) = self.nodes {
            c.nodes = v;
        }
        if let Some(v) = self.jobs {
            c.jobs = v;
        }
        if let Some(v) = self.churn {
            c.churn = v;
        }
        if !self.partition.is_empty() {
            c.partitions = self.partition.clone();
        }
        if let Some(v) = self.latency {
            c.link.base_ms = v;
            c.link.jitter_ms = v / 2;
        }
        if let Some(v) = self.loss {
            c.link.loss = v;
        }
        if let Some(v) = self.regions {
            c.link.regions = v.max(1);
        }
        if let Some(v) = self.cross_region_ms {
            c.link.cross_region_ms = v;
        }
        if let Some(v) = self.http_share {
            c.population.http_share = v;
        }
        if let Some(v) = self.full_share {
            c.population.full_share = v;
        }
        if let Some(v) = self.http_jobs {
            c.mix.http_share = v;
        }
        if let Some(v) = self.full_jobs {
            c.mix.full_share = v;
        }
        if let Some(v) = self.window {
            c.submit_window_ms = v;
        }
        if let Some(v) = self.exec_failure {
            c.execution.failure = v;
        }
        if let Some(v) = self.input_share {
            c.mix.input_share = v;
        }
        if let Some(v) = self.replicas {
            c.mix.replicas = v;
        }
        if let Some(v) = self.flood {
            c.flood = v;
        }
        if !self.faulty.is_empty() {
            c.faulty_nodes = self.faulty.clone();
        }
        if !self.faulty_fetch.is_empty() {
            c.faulty_fetch_nodes = self.faulty_fetch.clone();
        }
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    /// The arguments that reproduce this scenario, for `--seed` to follow.
    fn command(&self) -> String {
        let mut s = "simnet run".to_owned();
        if let Some(path) = &self.scenario {
            s.push_str(&format!(" --scenario {}", path.display()));
        }
        let list = |nodes: &[usize]| {
            (!nodes.is_empty()).then(|| {
                let f: Vec<String> = nodes.iter().map(ToString::to_string).collect();
                f.join(",")
            })
        };
        let flags: [(&str, Option<String>); 18] = [
            ("nodes", self.nodes.map(|v| v.to_string())),
            ("jobs", self.jobs.map(|v| v.to_string())),
            ("churn", self.churn.map(|v| v.to_string())),
            ("latency", self.latency.map(|v| v.to_string())),
            ("loss", self.loss.map(|v| v.to_string())),
            ("regions", self.regions.map(|v| v.to_string())),
            (
                "cross-region-ms",
                self.cross_region_ms.map(|v| v.to_string()),
            ),
            ("http-share", self.http_share.map(|v| v.to_string())),
            ("full-share", self.full_share.map(|v| v.to_string())),
            ("http-jobs", self.http_jobs.map(|v| v.to_string())),
            ("full-jobs", self.full_jobs.map(|v| v.to_string())),
            ("window", self.window.map(|v| v.to_string())),
            ("exec-failure", self.exec_failure.map(|v| v.to_string())),
            ("input-share", self.input_share.map(|v| v.to_string())),
            ("replicas", self.replicas.map(|v| v.to_string())),
            ("flood", self.flood.map(|v| v.to_string())),
            ("faulty", list(&self.faulty)),
            ("faulty-fetch", list(&self.faulty_fetch)),
        ];
        for (name, value) in flags {
            if let Some(value) = value {
                s.push_str(&format!(" --{name} {value}"));
            }
        }
        for p in &self.partition {
            s.push_str(&format!(" --partition {p}"));
        }
        s
    }
}

fn reproduce(scenario: &Scenario, v: &Violation) -> String {
    format!(
        "reproduce with: {} --seed {}   (violation at event {})",
        scenario.command(),
        v.seed,
        v.event_index
    )
}

fn parse_seeds(text: &str) -> Result<std::ops::Range<u64>, String> {
    let bad = || format!("`{text}` is not a seed range: write A..B or A..=B, e.g. 1..100");
    if let Some((a, b)) = text.split_once("..=") {
        let a: u64 = a.parse().map_err(|_| bad())?;
        let b: u64 = b.parse().map_err(|_| bad())?;
        return Ok(a..b.saturating_add(1));
    }
    let (a, b) = text.split_once("..").ok_or_else(bad)?;
    Ok(a.parse().map_err(|_| bad())?..b.parse().map_err(|_| bad())?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Up(up) => match run_up(up) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run {
            scenario,
            seed,
            report,
            plot,
        } => {
            let config = match scenario.base().and_then(|b| scenario.config(&b, seed)) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            match simnet::run(config) {
                Ok(r) => {
                    // A closed pipe (`| head`) is not an error worth a panic.
                    let _ = writeln!(std::io::stdout(), "{r}");
                    if let Some(path) = report {
                        let json = serde_json::to_string_pretty(&r).expect("a report encodes");
                        if let Err(e) = std::fs::write(&path, json) {
                            eprintln!("error: could not write {}: {e}", path.display());
                            return ExitCode::FAILURE;
                        }
                    }
                    if let Some(path) = plot
                        && let Err(e) = simnet::plot::write_svg(&r, &path)
                    {
                        eprintln!("error: could not write {}: {e}", path.display());
                        return ExitCode::FAILURE;
                    }
                    ExitCode::SUCCESS
                }
                Err(v) => {
                    eprintln!("error: {v}");
                    eprintln!("{}", reproduce(&scenario, &v));
                    ExitCode::FAILURE
                }
            }
        }
        Command::Sweep {
            scenario,
            seeds,
            threads,
        } => {
            let seeds = match parse_seeds(&seeds) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let base = match scenario.base().and_then(|b| scenario.config(&b, None)) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let threads = threads
                .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
                .unwrap_or(2)
                .max(1);
            let all: Vec<u64> = seeds.collect();
            let mut results: Vec<(u64, Result<simnet::Report, Violation>)> = Vec::new();
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let mine: Vec<u64> = all.iter().copied().skip(t).step_by(threads).collect();
                        let base = &base;
                        s.spawn(move || {
                            mine.into_iter()
                                .map(|seed| {
                                    let mut config = base.clone();
                                    config.seed = seed;
                                    (seed, simnet::run(config))
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                for h in handles {
                    results.extend(h.join().expect("a sweep worker panicked"));
                }
            });
            results.sort_by_key(|(seed, _)| *seed);
            let mut failures = 0;
            for (seed, result) in &results {
                match result {
                    Ok(r) => out(format!(
                        "seed {seed}: ok, success {:.1}%, p99 {} ms, trace {}",
                        r.success_rate * 100.0,
                        r.latency_ms.p99,
                        &r.trace_hash[..16]
                    )),
                    Err(v) => {
                        failures += 1;
                        out(format!("seed {seed}: FAILED: {v}"));
                        out(format!("  {}", reproduce(&scenario, v)));
                    }
                }
            }
            out(format!("{} seeds, {failures} failed", results.len()));
            if failures > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

/// `simnet up`: starts the network, waits for Ctrl-C or SIGTERM, stops it.
fn run_up(up: Up) -> Result<ExitCode, String> {
    let Some(skrei) = up.skrei.or_else(default_skrei) else {
        eprintln!(
            "error: no skrei binary beside simnet and SKREI_BIN is not set: build it with \
             `cargo build -p node --bin skrei`, or give --skrei PATH"
        );
        return Ok(ExitCode::from(2));
    };
    let mut options = LiveOptions::new(up.nodes, skrei);
    if let Some(path) = &up.policies {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("could not read {}: {e}", path.display()))?;
        match simnet::live::policies::parse(&text, up.nodes) {
            Ok(p) => options.policies = p,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return Ok(ExitCode::from(2));
            }
        }
    }
    options.data_dir = up.data_dir;
    options.docker = up.docker;
    // Listening before any node starts: a Ctrl-C while they start is then
    // seen once they are up, and never leaves them running without us (they
    // are in process groups of their own and do not get the terminal's
    // Ctrl-C).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| format!("starting the signal listener: {e}"))?;
    let signals = runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind| signal(kind).map_err(|e| format!("listening for signals: {e}"));
        Ok::<_, String>([
            listen(SignalKind::interrupt())?,
            listen(SignalKind::terminate())?,
            listen(SignalKind::hangup())?,
        ])
    })?;
    let net = LiveNet::start(options).map_err(|e| e.to_string())?;
    for api in net.apis() {
        out(format!("SKREI_API={}", api.url()));
        if let Some(token) = api.token() {
            out(format!("SKREI_API_TOKEN={token}"));
        }
    }
    let _ = std::io::stdout().flush();
    for i in 0..net.len() {
        let container = net
            .container(i)
            .map(|c| format!("  container {c}"))
            .unwrap_or_default();
        eprintln!(
            "node {i}: {}  policy {}  log {}{container}",
            net.node_id(i),
            net.policy(i).describe(),
            net.log(i).display()
        );
    }
    if let Some(network) = net.docker_network() {
        eprintln!("Docker network {network}");
    }
    eprintln!(
        "{} nodes running under {}; Ctrl-C stops them",
        net.len(),
        net.root().display()
    );
    let [mut int, mut term, mut hup] = signals;
    let signal = runtime.block_on(async {
        tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
            _ = hup.recv() => "SIGHUP",
        }
    });
    eprintln!("{signal}: stopping the nodes");
    net.shutdown();
    Ok(ExitCode::SUCCESS)
}

/// Prints a line; a closed pipe (`| head`) is not worth a panic.
fn out(line: String) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "`{text}` is not a node count: write a whole number of at least 1"
        )),
    }
}
