//! `simnet`: run simulated skrei testnets from the command line.
//!
//! ```text
//! simnet run --nodes 100 --jobs 300 --seed 7 --churn 0.1 --partition 0.3@10000-40000
//! simnet sweep --seeds 1..100 --nodes 50 --jobs 100 --churn 0.1
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use simnet::config::Partition;
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
        /// The seed every random choice is drawn from.
        #[arg(long, default_value_t = 1)]
        seed: u64,
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
}

/// The scenario flags shared by `run` and `sweep`.
#[derive(Args, Clone)]
struct Scenario {
    /// Nodes in the network (at least 1).
    #[arg(long, default_value_t = 100, value_parser = at_least_one)]
    nodes: usize,
    /// Jobs submitted.
    #[arg(long, default_value_t = 300)]
    jobs: usize,
    /// Share of nodes that crash once (and restart) during the run.
    #[arg(long, default_value_t = 0.0)]
    churn: f64,
    /// A partition, SHARE@FROM_MS-UNTIL_MS (repeatable).
    #[arg(long, value_parser = Partition::parse)]
    partition: Vec<Partition>,
    /// One-way link latency in ms (jitter adds up to half of it).
    #[arg(long, default_value_t = 50)]
    latency: u64,
    /// Probability that a message (or one gossip hop) is lost.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Regions the nodes are spread over (pair classes of links).
    #[arg(long, default_value_t = 1)]
    regions: u32,
    /// Extra one-way latency in ms between nodes of different regions.
    #[arg(long, default_value_t = 0)]
    cross_region_ms: u64,
    /// Share of nodes started with --accept-network=http.
    #[arg(long, default_value_t = 0.3)]
    http_share: f64,
    /// Share of nodes started with --accept-network=full.
    #[arg(long, default_value_t = 0.1)]
    full_share: f64,
    /// Share of jobs in network mode http.
    #[arg(long, default_value_t = 0.3)]
    http_jobs: f64,
    /// Share of jobs in network mode full.
    #[arg(long, default_value_t = 0.05)]
    full_jobs: f64,
    /// Jobs are submitted over this many ms.
    #[arg(long, default_value_t = 60_000)]
    window: u64,
    /// Probability that an execution fails.
    #[arg(long, default_value_t = 0.05)]
    exec_failure: f64,
    /// Nodes that ignore their policy (shows that the checker catches them).
    #[arg(long, value_delimiter = ',')]
    faulty: Vec<usize>,
}

impl Scenario {
    fn config(&self, seed: u64) -> SimConfig {
        let mut c = SimConfig::new(self.nodes, self.jobs, seed);
        c.churn = self.churn;
        c.partitions = self.partition.clone();
        c.link.base_ms = self.latency;
        c.link.jitter_ms = self.latency / 2;
        c.link.loss = self.loss;
        c.link.regions = self.regions.max(1);
        c.link.cross_region_ms = self.cross_region_ms;
        c.population.http_share = self.http_share;
        c.population.full_share = self.full_share;
        c.mix.http_share = self.http_jobs;
        c.mix.full_share = self.full_jobs;
        c.submit_window_ms = self.window;
        c.execution.failure = self.exec_failure;
        c.faulty_nodes = self.faulty.clone();
        c
    }

    /// The flags that reproduce this scenario, for `--seed` to follow.
    fn command(&self) -> String {
        let mut s = format!(
            "simnet run --nodes {} --jobs {} --churn {} --latency {} --loss {} --http-share {} \
             --full-share {} --http-jobs {} --full-jobs {} --window {} --exec-failure {} \
             --regions {} --cross-region-ms {}",
            self.nodes,
            self.jobs,
            self.churn,
            self.latency,
            self.loss,
            self.http_share,
            self.full_share,
            self.http_jobs,
            self.full_jobs,
            self.window,
            self.exec_failure,
            self.regions,
            self.cross_region_ms
        );
        for p in &self.partition {
            s.push_str(&format!(" --partition {p}"));
        }
        if !self.faulty.is_empty() {
            let f: Vec<String> = self.faulty.iter().map(ToString::to_string).collect();
            s.push_str(&format!(" --faulty {}", f.join(",")));
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
        Command::Run {
            scenario,
            seed,
            report,
            plot,
        } => match simnet::run(scenario.config(seed)) {
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
                    && let Err(e) = std::fs::write(&path, simnet::plot::svg(&r))
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
        },
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
                        let scenario = &scenario;
                        s.spawn(move || {
                            mine.into_iter()
                                .map(|seed| (seed, simnet::run(scenario.config(seed))))
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
