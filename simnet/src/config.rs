//! What a simulated run is made of: the network's size and faults, the node
//! population and the job mix. [`SimConfig::new`] gives the defaults the
//! CLI starts from; [`SimConfig::from_toml`] reads a scenario file (see the
//! crate docs for its format).

use std::fmt;

/// Everything that defines a run, together with the seed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Nodes in the network.
    pub nodes: usize,
    /// Jobs submitted, each by a node drawn at random.
    pub jobs: usize,
    /// Seeds the run's one RNG.
    pub seed: u64,
    /// Jobs are submitted at uniformly drawn times in `[0, submit_window_ms]`;
    /// crashes happen in the same window.
    pub submit_window_ms: u64,
    /// Link model.
    pub link: LinkModel,
    /// Gossip model.
    pub gossip: GossipModel,
    /// Share of nodes that crash once during the submit window (then restart).
    pub churn: f64,
    /// Shortest and longest downtime of a crashed node.
    pub downtime_ms: (u64, u64),
    /// Partitions: two groups that cannot talk for a while.
    pub partitions: Vec<Partition>,
    /// Node population.
    pub population: Population,
    /// Job mix.
    pub mix: JobMix,
    /// Execution model.
    pub execution: ExecutionModel,
    /// Nodes that ignore their operator's policy: their compute side runs
    /// with `--accept-network=full` and no allowlist while the checker holds
    /// them to the policy they were given. Only for showing that the checker
    /// catches a broken node.
    pub faulty_nodes: Vec<usize>,
    /// Nodes whose blob client never finds a provider: every input they
    /// fetch fails for "no provider reachable", even when a holder is up
    /// and reachable. Only for showing that the checker catches a broken
    /// fetch.
    pub faulty_fetch_nodes: Vec<usize>,
    /// The run stops with an error after this many events (a run that does
    /// not settle).
    pub max_events: u64,
    /// A flood: node 0 submits this many times the network's slots in extra
    /// jobs (network `none`, no inputs) over the submit window, beside the
    /// mix. 0: none. The report gives the other requesters' jobs apart, to
    /// show what one requester's flood costs them (R-PLC-2).
    pub flood: f64,
}

impl Default for SimConfig {
    /// 100 nodes, 300 jobs, seed 1: the CLI's defaults.
    fn default() -> SimConfig {
        SimConfig::new(100, 300, 1)
    }
}

/// Why a scenario file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError(pub String);

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScenarioError {}

/// Most inputs a simulated job has (they mount at `/inputs/0`, ...).
pub const MAX_INPUTS_PER_JOB: u32 = 16;

/// Most replicas of an input besides the submitter's copy: a real node
/// keeps at most 16 providers per input (`protocol::messages::MAX_ADDRS`).
pub const MAX_REPLICAS: u32 = 15;

/// The bandwidth classes must be a distribution over positive rates.
fn validate_bandwidth(classes: &[BandwidthClass]) -> Result<(), ScenarioError> {
    let bad = |what: String| Err(ScenarioError(what));
    if classes.is_empty() {
        return bad("population.bandwidth: give at least one class, e.g. \
             { share = 1.0, up_mbps = 500, down_mbps = 500 }"
            .to_owned());
    }
    for (k, class) in classes.iter().enumerate() {
        if !(0.0..=1.0).contains(&class.share) {
            return bad(format!(
                "population.bandwidth[{k}].share is {}: write a share from 0 to 1",
                class.share
            ));
        }
        if class.up_mbps == 0 || class.down_mbps == 0 {
            return bad(format!(
                "population.bandwidth[{k}]: up_mbps and down_mbps are at least 1 (Mbit/s)"
            ));
        }
    }
    let total: f64 = classes.iter().map(|c| c.share).sum();
    if (total - 1.0).abs() > 1e-6 {
        return bad(format!(
            "population.bandwidth: the shares add up to {total}, not 1"
        ));
    }
    Ok(())
}

impl SimConfig {
    /// Reads a scenario file (TOML, the format in the crate docs): every
    /// key is optional and defaults to [`SimConfig::default`]'s; an unknown
    /// key or a value out of range is an error that names it.
    pub fn from_toml(text: &str) -> Result<SimConfig, ScenarioError> {
        let config: SimConfig =
            toml::from_str(text).map_err(|e| ScenarioError(e.to_string().trim().to_owned()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks that every share is a probability, every range is ordered and
    /// the network has a node: what a scenario file could get wrong.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |what: String| Err(ScenarioError(what));
        if self.nodes == 0 {
            return bad("nodes: a network needs at least 1 node".to_owned());
        }
        if !(0.0..=100.0).contains(&self.flood) {
            return bad(format!(
                "flood is {}: write how many times the network's slots node 0 submits, \
                 from 0 to 100",
                self.flood
            ));
        }
        let p = &self.population;
        let m = &self.mix;
        let shares = [
            ("churn", self.churn),
            ("link.loss", self.link.loss),
            ("population.http_share", p.http_share),
            ("population.full_share", p.full_share),
            ("population.allowlist_share", p.allowlist_share),
            ("population.docker_only_share", p.docker_only_share),
            ("population.wasm_only_share", p.wasm_only_share),
            (
                "population.http_share + full_share",
                p.http_share + p.full_share,
            ),
            (
                "population.docker_only_share + wasm_only_share",
                p.docker_only_share + p.wasm_only_share,
            ),
            ("mix.http_share", m.http_share),
            ("mix.full_share", m.full_share),
            ("mix.wasm_share", m.wasm_share),
            ("mix.http_share + full_share", m.http_share + m.full_share),
            ("mix.input_share", m.input_share),
            ("execution.failure", self.execution.failure),
        ];
        for (name, share) in shares {
            if !(0.0..=1.0).contains(&share) {
                return bad(format!("{name} is {share}: write a share from 0 to 1"));
            }
        }
        let ranges = [
            ("downtime_ms", self.downtime_ms),
            ("execution.run_ms", self.execution.run_ms),
            (
                "population.capacity",
                (u64::from(p.capacity.0), u64::from(p.capacity.1)),
            ),
            (
                "mix.inputs_per_job",
                (u64::from(m.inputs_per_job.0), u64::from(m.inputs_per_job.1)),
            ),
            ("mix.input_bytes", m.input_bytes),
            ("execution.fetch_retry_ms", self.execution.fetch_retry_ms),
        ];
        for (name, (lo, hi)) in ranges {
            if lo > hi {
                return bad(format!(
                    "{name} is [{lo}, {hi}]: write [LOW, HIGH], LOW <= HIGH"
                ));
            }
        }
        if p.capacity.0 == 0 {
            return bad("population.capacity: every node has at least 1 slot".to_owned());
        }
        if m.max_count == 0 {
            return bad("mix.max_count: a job runs at least once".to_owned());
        }
        if m.inputs_per_job.0 == 0 || m.inputs_per_job.1 > MAX_INPUTS_PER_JOB {
            return bad(format!(
                "mix.inputs_per_job: a job with inputs has 1 to {MAX_INPUTS_PER_JOB} of them"
            ));
        }
        if m.input_bytes.0 == 0 {
            return bad("mix.input_bytes: an input holds at least 1 byte".to_owned());
        }
        if m.replicas > MAX_REPLICAS {
            return bad(format!(
                "mix.replicas is {}: at most {MAX_REPLICAS} (a node names at most 16 providers \
                 of an input, the submitter one of them)",
                m.replicas
            ));
        }
        validate_bandwidth(&p.bandwidth)?;
        for (k, part) in self.partitions.iter().enumerate() {
            if !(0.0..=1.0).contains(&part.share) || part.until_ms <= part.from_ms {
                return bad(format!(
                    "partitions[{k}]: share from 0 to 1 and from_ms < until_ms, e.g. \
                     {{ share = 0.3, from_ms = 10000, until_ms = 40000 }}"
                ));
            }
        }
        for (name, nodes) in [
            ("faulty_nodes", &self.faulty_nodes),
            ("faulty_fetch_nodes", &self.faulty_fetch_nodes),
        ] {
            if let Some(f) = nodes.iter().find(|f| **f >= self.nodes) {
                return bad(format!(
                    "{name}: node {f} does not exist in a network of {} nodes",
                    self.nodes
                ));
            }
        }
        Ok(())
    }

    /// A run of `nodes` nodes and `jobs` jobs with `seed`, and defaults for
    /// everything else.
    pub fn new(nodes: usize, jobs: usize, seed: u64) -> SimConfig {
        SimConfig {
            nodes,
            jobs,
            seed,
            submit_window_ms: 60_000,
            link: LinkModel::default(),
            gossip: GossipModel::default(),
            churn: 0.0,
            downtime_ms: (5_000, 30_000),
            partitions: Vec::new(),
            population: Population::default(),
            mix: JobMix::default(),
            execution: ExecutionModel::default(),
            faulty_nodes: Vec::new(),
            faulty_fetch_nodes: Vec::new(),
            max_events: 2_000_000_000,
            flood: 0.0,
        }
    }
}

/// One link's behaviour, drawn per message.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkModel {
    /// Fixed one-way delay.
    pub base_ms: u64,
    /// Uniform extra delay in `[0, jitter_ms]`.
    pub jitter_ms: u64,
    /// Probability that a message (or one gossip hop) is lost.
    pub loss: f64,
    /// Nodes are spread over this many regions (node `i` in region
    /// `i % regions`): the pair classes. 1: all pairs alike.
    pub regions: u32,
    /// Extra one-way delay between nodes of different regions.
    pub cross_region_ms: u64,
}

impl Default for LinkModel {
    fn default() -> LinkModel {
        LinkModel {
            base_ms: 50,
            jitter_ms: 25,
            loss: 0.0,
            regions: 1,
            cross_region_ms: 0,
        }
    }
}

/// gossipsub, as a fan-out model (see the crate docs), calibrated against
/// real swarms (docs/BENCHMARKS.md, "Gossip dissemination";
/// node/benches/gossip.rs).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GossipModel {
    /// Mesh degree D: peers each node forwards to, and about the copies
    /// each node receives (gossipsub's D is 6; measured on 50-300 node
    /// swarms: mesh sizes 6.5-6.7 on average, 5-11, and 5.96-7.3 copies
    /// received per node per announcement, D plus the publisher's share).
    pub mesh_degree: u32,
    /// Peers the publisher sends its own message to: gossipsub's flood
    /// publishing (on by default) sends to every connected peer, not only
    /// the mesh. Capped at N-1, at least D. Measured: the publisher sent
    /// 49, 99 and 51 copies at 50, 100 and 300 nodes (connected peers
    /// 49, 98.8 and 52.7 on average, Kademlia-discovered).
    pub publish_peers: u32,
}

impl Default for GossipModel {
    fn default() -> GossipModel {
        GossipModel {
            mesh_degree: 6,
            publish_peers: 50,
        }
    }
}

/// Between `from_ms` and `until_ms`, nodes `[0, split)` and `[split, N)`
/// cannot exchange messages.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// Share of the nodes in the first group (nodes `0..share*N`).
    pub share: f64,
    /// When the partition starts.
    pub from_ms: u64,
    /// When it heals.
    pub until_ms: u64,
}

impl Partition {
    /// Reads `SHARE@FROM-UNTIL`, times in ms: `0.3@10000-40000` cuts the
    /// first 30% of the nodes off from the rest from 10 s to 40 s.
    pub fn parse(text: &str) -> Result<Partition, String> {
        let bad = || {
            format!(
                "`{text}` is not a partition: write SHARE@FROM_MS-UNTIL_MS, e.g. 0.3@10000-40000"
            )
        };
        let (share, times) = text.split_once('@').ok_or_else(bad)?;
        let (from, until) = times.split_once('-').ok_or_else(bad)?;
        let share: f64 = share.trim().parse().map_err(|_| bad())?;
        let from_ms: u64 = from.trim().parse().map_err(|_| bad())?;
        let until_ms: u64 = until.trim().parse().map_err(|_| bad())?;
        if !(0.0..=1.0).contains(&share) || until_ms <= from_ms {
            return Err(bad());
        }
        Ok(Partition {
            share,
            from_ms,
            until_ms,
        })
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}-{}", self.share, self.from_ms, self.until_ms)
    }
}

/// Who the nodes are.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Population {
    /// Share of nodes started with `--accept-network=http`.
    pub http_share: f64,
    /// Share of nodes started with `--accept-network=full`.
    pub full_share: f64,
    /// Of the `http` nodes, the share that has an allowlist (drawn from the
    /// domain universe); the others take any domains.
    pub allowlist_share: f64,
    /// Share of nodes that run only Docker, only WASM; the rest run both.
    pub docker_only_share: f64,
    /// See `docker_only_share`.
    pub wasm_only_share: f64,
    /// Slots per node, drawn uniformly in this range.
    pub capacity: (u32, u32),
    /// The nodes' links to the internet: each node falls in one class, with
    /// the class's share as probability.
    pub bandwidth: Vec<BandwidthClass>,
}

impl Default for Population {
    fn default() -> Population {
        Population {
            http_share: 0.3,
            full_share: 0.1,
            allowlist_share: 0.7,
            docker_only_share: 0.3,
            wasm_only_share: 0.1,
            capacity: (1, 4),
            bandwidth: BandwidthClass::defaults(),
        }
    }
}

/// A kind of link a node may have, and how common it is.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BandwidthClass {
    /// Share of the nodes in this class.
    pub share: f64,
    /// Upload rate, Mbit/s.
    pub up_mbps: u64,
    /// Download rate, Mbit/s.
    pub down_mbps: u64,
}

impl BandwidthClass {
    /// 30% at 50 Mbit/s (a home or small-office line), 50% at 500 Mbit/s
    /// (fibre, a cloud VM's usual share), 20% at 5 Gbit/s (servers in a
    /// data centre). Symmetric: nodes that offer compute are assumed to sit
    /// on symmetric lines; write an asymmetric class for ADSL or cable.
    /// An assumption, not a measurement.
    pub fn defaults() -> Vec<BandwidthClass> {
        [(0.3, 50), (0.5, 500), (0.2, 5_000)]
            .into_iter()
            .map(|(share, mbps)| BandwidthClass {
                share,
                up_mbps: mbps,
                down_mbps: mbps,
            })
            .collect()
    }
}

/// What the jobs are.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobMix {
    /// Share of `http` jobs (1-2 domains from the universe).
    pub http_share: f64,
    /// Share of `full` jobs.
    pub full_share: f64,
    /// Share of WASM jobs; the rest are Docker.
    pub wasm_share: f64,
    /// `Count` is drawn uniformly in `1..=max_count`.
    pub max_count: u32,
    /// The jobs' `ExecutionTimeout`, in seconds.
    pub execution_timeout_s: u64,
    /// The jobs' `QueueTimeout`, in seconds.
    pub queue_timeout_s: u64,
    /// Share of jobs that read CID inputs (`skrei add`, then submit).
    pub input_share: f64,
    /// Inputs of such a job, drawn uniformly in this range.
    pub inputs_per_job: (u32, u32),
    /// An input's size in bytes, drawn log-uniformly in this range (as
    /// many inputs of 1-10 KiB as of 1-10 MiB).
    pub input_bytes: (u64, u64),
    /// Copies of each input on other nodes, drawn at random, besides the
    /// one on the node the job is submitted to (`skrei get` elsewhere).
    pub replicas: u32,
}

impl Default for JobMix {
    fn default() -> JobMix {
        JobMix {
            http_share: 0.3,
            full_share: 0.05,
            wasm_share: 0.2,
            max_count: 3,
            execution_timeout_s: 60,
            queue_timeout_s: 30,
            input_share: 0.5,
            inputs_per_job: (1, 3),
            input_bytes: (1 << 10, 1 << 30),
            replicas: 0,
        }
    }
}

/// How executions go.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutionModel {
    /// Run time, drawn uniformly in this range.
    pub run_ms: (u64, u64),
    /// Probability that an execution fails (once its inputs are in).
    pub failure: f64,
    /// When no holder of an input is reachable, the node looks once more
    /// after a delay drawn uniformly in this range, then gives up. A real
    /// node makes 4 attempts 0.5, 1 and 2 s apart, each waiting up to its
    /// 10 s connect timeout for a provider that is down or cut off: it
    /// gives up 3.5-43.5 s after the first.
    pub fetch_retry_ms: (u64, u64),
}

impl Default for ExecutionModel {
    fn default() -> ExecutionModel {
        ExecutionModel {
            run_ms: (500, 10_000),
            failure: 0.05,
            fetch_retry_ms: (3_500, 43_500),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_files_set_inputs_and_bandwidth() {
        let c = SimConfig::from_toml(
            "[mix]\ninput_share = 1.0\nreplicas = 2\ninput_bytes = [1000, 2000]\n\
             [[population.bandwidth]]\nshare = 0.25\nup_mbps = 10\ndown_mbps = 100\n\
             [[population.bandwidth]]\nshare = 0.75\nup_mbps = 1000\ndown_mbps = 1000\n",
        )
        .unwrap();
        assert_eq!((c.mix.input_share, c.mix.replicas), (1.0, 2));
        assert_eq!(c.mix.input_bytes, (1000, 2000));
        assert_eq!(c.population.bandwidth.len(), 2);
        assert_eq!(c.population.bandwidth[0].up_mbps, 10);
        // Left out, the defaults hold.
        let d = SimConfig::from_toml("nodes = 5").unwrap();
        assert_eq!(d.population.bandwidth, BandwidthClass::defaults());
        assert_eq!((d.mix.input_share, d.mix.replicas), (0.5, 0));
    }

    #[test]
    fn scenario_files_with_bad_inputs_or_bandwidth_are_refused() {
        for (text, names) in [
            ("[mix]\nreplicas = 16", "mix.replicas"),
            ("[mix]\ninput_share = 1.5", "mix.input_share"),
            ("[mix]\ninput_bytes = [10, 1]", "mix.input_bytes"),
            ("[mix]\ninputs_per_job = [0, 2]", "mix.inputs_per_job"),
            (
                "[execution]\nfetch_retry_ms = [9, 1]",
                "execution.fetch_retry_ms",
            ),
            ("nodes = 3\nfaulty_fetch_nodes = [3]", "faulty_fetch_nodes"),
            ("[population]\nbandwidth = []", "population.bandwidth"),
            (
                "[[population.bandwidth]]\nshare = 0.5\nup_mbps = 5\ndown_mbps = 5",
                "add up to 0.5",
            ),
            (
                "[[population.bandwidth]]\nshare = 1.0\nup_mbps = 0\ndown_mbps = 5",
                "population.bandwidth[0]",
            ),
        ] {
            let err = SimConfig::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(names), "{text}: {err}");
        }
    }
}
