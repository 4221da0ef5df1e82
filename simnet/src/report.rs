//! What a run measured, as text for people and JSON for tools.

use std::collections::BTreeMap;
use std::fmt;

use protocol::failure::{Failure, FailureCause};

use crate::blobs::InputStats;
use crate::config::SimConfig;
use crate::net::Traffic;

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum JobOutcome {
    /// `Count` executions completed.
    Completed,
    /// It failed, for this reason.
    Failed {
        /// The requester's explanation.
        failure: Failure,
        /// The cause of its last failed attempt, if any attempt failed: what
        /// went wrong on the nodes when the job gave up.
        last_attempt: Option<FailureCause>,
    },
    /// Its user cancelled it.
    Cancelled,
}

/// Percentiles of a sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

impl Percentiles {
    /// Nearest-rank percentiles of a sorted sample.
    pub(crate) fn of(sorted: &[u64]) -> Percentiles {
        let at = |q: f64| -> u64 {
            if sorted.is_empty() {
                return 0;
            }
            let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            sorted[rank - 1]
        };
        Percentiles {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: sorted.last().copied().unwrap_or(0),
        }
    }
}

/// Mean and largest of a per-node or per-job figure.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct MeanMax {
    /// Mean.
    pub mean: f64,
    /// Largest.
    pub max: u64,
}

impl MeanMax {
    fn of(values: impl Iterator<Item = u64>) -> MeanMax {
        let (mut n, mut sum, mut max) = (0u64, 0u128, 0u64);
        for v in values {
            n += 1;
            sum += u128::from(v);
            max = max.max(v);
        }
        MeanMax {
            mean: if n == 0 { 0.0 } else { sum as f64 / n as f64 },
            max,
        }
    }
}

/// A run's figures.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    /// The run's configuration, seed included.
    pub config: SimConfig,
    /// Events delivered.
    pub events: u64,
    /// Simulated time at the last event, in ms.
    pub simulated_ms: u64,
    /// BLAKE3 of every delivered event, in order (hex): equal for equal
    /// seeds and configurations.
    pub trace_hash: String,
    /// Jobs that completed.
    pub completed: u64,
    /// Jobs that failed.
    pub failed: u64,
    /// Jobs cancelled.
    pub cancelled: u64,
    /// `completed / jobs`.
    pub success_rate: f64,
    /// Submit to completed, simulated, for completed jobs.
    pub latency_ms: Percentiles,
    /// Submit to the first award (announcement, bid window, award),
    /// simulated, for jobs that got one.
    pub award_latency_ms: Percentiles,
    /// Failed jobs by their cause.
    pub failures_by_cause: BTreeMap<FailureCause, u64>,
    /// Failed jobs that had failed attempts, by the cause of the last one.
    pub failures_by_last_attempt: BTreeMap<FailureCause, u64>,
    /// Messages each node sent and received (gossip duplicates counted).
    pub messages_per_node: MeanMax,
    /// Bytes each node sent and received.
    pub bytes_per_node: MeanMax,
    /// Mean messages per node divided by jobs.
    pub messages_per_node_per_job: f64,
    /// Gossip receptions in all (D per reached node and announcement, one
    /// more for each of the publisher's peers).
    pub gossip_receptions: u64,
    /// Bids each job received.
    pub bids_per_job: MeanMax,
    /// Executions that failed, by cause, counted as their nodes reported
    /// them: `input_unavailable` (an input no holder served),
    /// `input_timeout`, `timeout` (the run), `other` (a simulated failure).
    pub execution_failures_by_cause: BTreeMap<FailureCause, u64>,
    /// The executions' input fetches.
    pub inputs: InputFigures,
    /// Completed jobs' latencies, sorted (for plots).
    #[serde(skip)]
    pub latencies_ms: Vec<u64>,
    /// Messages per node, by node (for plots).
    #[serde(skip)]
    pub node_messages: Vec<u64>,
    /// One failure detail per cause, as an example.
    pub failure_examples: BTreeMap<FailureCause, String>,
    /// The jobs of the requesters other than node 0 (the flooder, with a
    /// flood), and the flood's own.
    pub by_requester: RequesterFigures,
    /// Jobs whose inputs some node that would run them can have in time,
    /// and the others.
    pub reach: ReachFigures,
}

/// Jobs by whether the network can finish them at all (R-PLC-1), judged
/// from the plan: a job with CID inputs cannot be finished when fetching
/// them from their submitter, at its upload rate, takes longer than the
/// `ExecutionTimeout`, and fewer nodes than its `Count` hold them all and
/// accept the job. Churn may still stop a job judged finishable.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ReachFigures {
    /// Jobs the network can finish.
    pub can_finish: u64,
    /// ... of which completed.
    pub can_finish_completed: u64,
    /// Jobs it cannot.
    pub cannot_finish: u64,
    /// ... of which failed saying their inputs are out of reach, with the
    /// input size and the fetch time.
    pub cannot_finish_explained: u64,
    /// Submit to failed, simulated, for those.
    pub cannot_finish_fail_ms: Percentiles,
}

/// Jobs of requesters other than node 0 apart from node 0's and the flood's
/// ([`SimConfig::flood`]): what one requester's flood costs the others.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RequesterFigures {
    /// Jobs submitted by other nodes than node 0.
    pub others_jobs: u64,
    /// ... of which completed.
    pub others_completed: u64,
    /// Their submit -> completed latency, simulated.
    pub others_latency_ms: Percentiles,
    /// The flood's jobs.
    pub flood_jobs: u64,
    /// ... of which completed.
    pub flood_completed: u64,
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: &SimConfig,
        mut latencies: Vec<u64>,
        mut award_latencies: Vec<u64>,
        outcomes: &[JobOutcome],
        traffic: &[Traffic],
        bids: Vec<u64>,
        events: u64,
        simulated_ms: u64,
        gossip_receptions: u64,
        inputs: &InputStats,
        execution_failures: &BTreeMap<FailureCause, u64>,
        trace_hash: String,
        by_requester: RequesterFigures,
        reach: ReachFigures,
    ) -> Report {
        latencies.sort_unstable();
        award_latencies.sort_unstable();
        let mut failures_by_cause = BTreeMap::new();
        let mut failures_by_last_attempt = BTreeMap::new();
        let mut failure_examples = BTreeMap::new();
        let (mut completed, mut failed, mut cancelled) = (0, 0, 0);
        for outcome in outcomes {
            match outcome {
                JobOutcome::Completed => completed += 1,
                JobOutcome::Cancelled => cancelled += 1,
                JobOutcome::Failed {
                    failure,
                    last_attempt,
                } => {
                    failed += 1;
                    *failures_by_cause.entry(failure.cause).or_insert(0) += 1;
                    if let Some(cause) = last_attempt {
                        *failures_by_last_attempt.entry(*cause).or_insert(0) += 1;
                    }
                    failure_examples
                        .entry(failure.cause)
                        .or_insert_with(|| failure.detail.clone());
                }
            }
        }
        let messages_per_node = MeanMax::of(traffic.iter().map(|t| t.messages));
        let jobs = outcomes.len().max(1) as f64;
        Report {
            config: config.clone(),
            events,
            simulated_ms,
            trace_hash,
            completed,
            failed,
            cancelled,
            success_rate: completed as f64 / jobs,
            latency_ms: Percentiles::of(&latencies),
            award_latency_ms: Percentiles::of(&award_latencies),
            failures_by_cause,
            failures_by_last_attempt,
            messages_per_node,
            bytes_per_node: MeanMax::of(traffic.iter().map(|t| t.bytes)),
            messages_per_node_per_job: messages_per_node.mean / jobs,
            gossip_receptions,
            bids_per_job: MeanMax::of(bids.into_iter()),
            execution_failures_by_cause: execution_failures.clone(),
            inputs: InputFigures::new(inputs, execution_failures),
            latencies_ms: latencies,
            node_messages: traffic.iter().map(|t| t.messages).collect(),
            failure_examples,
            by_requester,
            reach,
        }
    }
}

/// What the executions' input fetches came to.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct InputFigures {
    /// Inputs fetched from another node.
    pub fetched: u64,
    /// Inputs the executing node held already (it was their submitter or
    /// a replica).
    pub read_locally: u64,
    /// Executions that gave up on an input: no provider reachable.
    pub unreachable: u64,
    /// One fetch from another node, from connecting to the last byte,
    /// simulated.
    pub fetch_ms: Percentiles,
    /// Input bytes moved between nodes in all, each transfer once.
    pub bytes_total: u64,
    /// Input bytes each node sent and received (most nodes move none).
    pub bytes_per_node: Percentiles,
}

impl InputFigures {
    fn new(stats: &InputStats, execution_failures: &BTreeMap<FailureCause, u64>) -> InputFigures {
        let mut fetch_ms = stats.fetch_ms.clone();
        fetch_ms.sort_unstable();
        let mut per_node = stats.bytes_per_node.clone();
        per_node.sort_unstable();
        InputFigures {
            fetched: fetch_ms.len() as u64,
            read_locally: stats.local_reads,
            unreachable: execution_failures
                .get(&FailureCause::InputUnavailable)
                .copied()
                .unwrap_or(0),
            fetch_ms: Percentiles::of(&fetch_ms),
            bytes_total: stats.bytes_total,
            bytes_per_node: Percentiles::of(&per_node),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let jobs = c.jobs;
        writeln!(
            f,
            "simnet: {} nodes, {} jobs, seed {}, churn {}, loss {}, links {}+{} ms ({} regions, +{} ms across), partitions [{}]",
            c.nodes,
            jobs,
            c.seed,
            c.churn,
            c.link.loss,
            c.link.base_ms,
            c.link.jitter_ms,
            c.link.regions,
            c.link.cross_region_ms,
            c.partitions
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(
            f,
            "  events {}, simulated {:.1} s, trace {}",
            self.events,
            self.simulated_ms as f64 / 1000.0,
            &self.trace_hash[..16]
        )?;
        writeln!(
            f,
            "  jobs: {} completed, {} failed, {} cancelled; success rate {:.1}%",
            self.completed,
            self.failed,
            self.cancelled,
            self.success_rate * 100.0
        )?;
        let l = self.latency_ms;
        writeln!(
            f,
            "  latency submit -> completed (simulated): p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
            l.p50, l.p90, l.p99, l.max
        )?;
        let a = self.award_latency_ms;
        writeln!(
            f,
            "  latency submit -> first award (simulated): p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
            a.p50, a.p90, a.p99, a.max
        )?;
        let r = &self.by_requester;
        let o = r.others_latency_ms;
        writeln!(
            f,
            "  jobs of requesters other than node 0: {} of {} completed; latency p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
            r.others_completed, r.others_jobs, o.p50, o.p90, o.p99, o.max
        )?;
        if r.flood_jobs > 0 {
            writeln!(
                f,
                "  flood (node 0, {}x the network's slots): {} of {} completed",
                self.config.flood, r.flood_completed, r.flood_jobs
            )?;
        }
        let reach = &self.reach;
        if reach.cannot_finish > 0 {
            let share = reach.can_finish_completed as f64 / reach.can_finish.max(1) as f64;
            let t = reach.cannot_finish_fail_ms;
            writeln!(
                f,
                "  jobs the network can finish: {} of {} completed ({:.1}%); jobs it cannot (inputs out of reach): {}, of which {} failed saying so, after p50 {} ms, p99 {} ms, max {} ms",
                reach.can_finish_completed,
                reach.can_finish,
                share * 100.0,
                reach.cannot_finish,
                reach.cannot_finish_explained,
                t.p50,
                t.p99,
                t.max
            )?;
        }
        for (cause, n) in &self.failures_by_cause {
            writeln!(f, "  failed, {cause}: {n}")?;
            if let Some(example) = self.failure_examples.get(cause) {
                let short: String = example.chars().take(160).collect();
                writeln!(f, "    e.g. {short}")?;
            }
        }
        writeln!(
            f,
            "  messages per node: mean {:.0}, max {} ({:.1} per node per job); bytes per node: mean {:.0}, max {}",
            self.messages_per_node.mean,
            self.messages_per_node.max,
            self.messages_per_node_per_job,
            self.bytes_per_node.mean,
            self.bytes_per_node.max
        )?;
        writeln!(
            f,
            "  bids per job: mean {:.1}, max {}",
            self.bids_per_job.mean, self.bids_per_job.max
        )?;
        if !self.failures_by_last_attempt.is_empty() {
            let causes: Vec<String> = self
                .failures_by_last_attempt
                .iter()
                .map(|(cause, n)| format!("{cause}: {n}"))
                .collect();
            writeln!(
                f,
                "  failed jobs by their last attempt: {}",
                causes.join(", ")
            )?;
        }
        let kinds: Vec<String> = self
            .execution_failures_by_cause
            .iter()
            .map(|(cause, n)| format!("{cause}: {n}"))
            .collect();
        writeln!(
            f,
            "  executions failed: {}",
            if kinds.is_empty() {
                "none".to_owned()
            } else {
                kinds.join(", ")
            }
        )?;
        write!(f, "{}", self.inputs)
    }
}

impl fmt::Display for InputFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.fetch_ms;
        let b = self.bytes_per_node;
        write!(
            f,
            "  inputs: {} fetched, {} read locally, {} executions found no provider; \
             fetch (simulated) p50 {} ms, p90 {} ms, p99 {} ms, max {} ms; \
             {} moved, per node p50 {}, max {}",
            self.fetched,
            self.read_locally,
            self.unreachable,
            t.p50,
            t.p90,
            t.p99,
            t.max,
            bytes(self.bytes_total),
            bytes(b.p50),
            bytes(b.max)
        )
    }
}

/// `512 B`, `3.2 MB`, `1.4 GB`: decimal units.
fn bytes(n: u64) -> String {
    let units = [(1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")];
    units
        .iter()
        .find(|(size, _)| n as f64 >= *size)
        .map_or(format!("{n} B"), |(size, unit)| {
            format!("{:.1} {unit}", n as f64 / size)
        })
}
