//! Drawing the nodes and the jobs of a run from its [`SimConfig`].

use std::collections::BTreeSet;
use std::sync::Arc;

use protocol::domain::DomainSet;
use protocol::id::{NodeId, NodeKey, RAW, blake3_cid};
use protocol::job::{JobSpec, NetworkMode};
use protocol::policy::{AcceptancePolicy, Allowlist};

use crate::blobs::{Bandwidth, InputPlan, draw_size};
use crate::config::{JobMix, SimConfig};
use crate::rng::SimRng;

/// The domains jobs name and allowlists cover. Small on purpose, so that
/// allowlists and jobs overlap often but not always.
pub const DOMAIN_UNIVERSE: [&str; 8] = [
    "api.example.com",
    "data.example.org",
    "pypi.org",
    "files.pythonhosted.org",
    "github.com",
    "huggingface.co",
    "cdn.foo.net",
    "registry.npmjs.org",
];

/// Allowlist entries, some covering subdomains, drawn for `http` nodes.
const ALLOWLIST_ENTRIES: [&str; 8] = [
    ".example.com",
    "data.example.org",
    "pypi.org",
    "files.pythonhosted.org",
    "github.com",
    ".huggingface.co",
    "cdn.foo.net",
    "registry.npmjs.org",
];

/// One simulated node as its operator configured it.
#[derive(Debug, Clone)]
pub struct NodePlan {
    /// Its identity.
    pub id: NodeId,
    /// The policy its operator set: what the checker holds it to.
    pub policy: AcceptancePolicy,
    /// The engines it runs.
    pub engines: BTreeSet<String>,
    /// Its slots.
    pub capacity: u32,
    /// Its link, for blob transfers.
    pub bandwidth: Bandwidth,
}

/// One job to submit.
#[derive(Debug, Clone)]
pub struct JobPlan {
    /// When it is submitted.
    pub at_ms: u64,
    /// The node it is submitted to (redrawn if that node is down then).
    pub by: usize,
    /// The job.
    pub spec: Arc<JobSpec>,
    /// Its CID inputs, in the job's order (empty for most jobs).
    pub inputs: Vec<InputPlan>,
    /// One of the flood's jobs ([`SimConfig::flood`]).
    pub flood: bool,
}

/// The node ids of a run: node `i`'s key is derived from `i` alone, so ids
/// do not depend on the seed.
pub fn node_key(i: usize) -> NodeKey {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&(i as u64).to_le_bytes());
    secret[31] = 0x5e;
    NodeKey::from_secret_bytes(secret)
}

/// Draws the node population.
pub fn draw_nodes(config: &SimConfig, rng: &mut SimRng) -> Vec<NodePlan> {
    let p = &config.population;
    (0..config.nodes)
        .map(|i| {
            let roll = rng.unit();
            let accept = if roll < p.full_share {
                NetworkMode::Full
            } else if roll < p.full_share + p.http_share {
                NetworkMode::Http
            } else {
                NetworkMode::None
            };
            let allowlist =
                (accept == NetworkMode::Http && rng.chance(p.allowlist_share)).then(|| {
                    let n = rng.range(1, 4) as usize;
                    let entries = pick(rng, &ALLOWLIST_ENTRIES, n);
                    Allowlist::new(
                        DomainSet::parse(entries).expect("the universe's entries are valid"),
                        "simnet",
                    )
                });
            let roll = rng.unit();
            let engines: &[&str] = if roll < p.docker_only_share {
                &["docker"]
            } else if roll < p.docker_only_share + p.wasm_only_share {
                &["wasm"]
            } else {
                &["docker", "wasm"]
            };
            NodePlan {
                id: node_key(i).node_id(),
                policy: AcceptancePolicy::new(accept, allowlist),
                engines: engines.iter().map(|e| (*e).to_owned()).collect(),
                capacity: rng.range(u64::from(p.capacity.0), u64::from(p.capacity.1)) as u32,
                bandwidth: Bandwidth::draw(rng, &p.bandwidth),
            }
        })
        .collect()
}

/// Draws the jobs, sorted by submission time.
pub fn draw_jobs(config: &SimConfig, nodes: &[NodePlan], rng: &mut SimRng) -> Vec<JobPlan> {
    let m = &config.mix;
    let mut jobs: Vec<JobPlan> = (0..config.jobs)
        .map(|j| {
            let at_ms = rng.range(0, config.submit_window_ms);
            let by = rng.index(config.nodes.max(1));
            let roll = rng.unit();
            let (mode, domains) = if roll < m.full_share {
                (NetworkMode::Full, Vec::new())
            } else if roll < m.full_share + m.http_share {
                let n = rng.range(1, 2) as usize;
                (NetworkMode::Http, pick(rng, &DOMAIN_UNIVERSE, n))
            } else {
                (NetworkMode::None, Vec::new())
            };
            let wasm = rng.chance(m.wasm_share);
            let count = rng.range(1, u64::from(m.max_count.max(1))) as u32;
            let inputs = draw_inputs(m, rng, j, by, config.nodes);
            let spec = job_spec(
                j,
                wasm,
                mode,
                &domains,
                count,
                (m.execution_timeout_s, m.queue_timeout_s),
                &inputs,
            );
            JobPlan {
                at_ms,
                by,
                spec: Arc::new(spec),
                inputs,
                flood: false,
            }
        })
        .collect();
    jobs.extend(draw_flood(config, nodes, rng));
    jobs.sort_by_key(|j| j.at_ms);
    jobs
}

/// The flood's jobs ([`SimConfig::flood`]): node 0 submits that many times
/// the network's slots, one-execution jobs without network or inputs, over
/// the submit window.
fn draw_flood(config: &SimConfig, nodes: &[NodePlan], rng: &mut SimRng) -> Vec<JobPlan> {
    let slots: u64 = nodes.iter().map(|n| u64::from(n.capacity)).sum();
    let count = (config.flood * slots as f64).round() as usize;
    let m = &config.mix;
    (0..count)
        .map(|k| {
            let at_ms = rng.range(0, config.submit_window_ms);
            let wasm = rng.chance(m.wasm_share);
            let spec = job_spec(
                config.jobs + k,
                wasm,
                NetworkMode::None,
                &[],
                1,
                (m.execution_timeout_s, m.queue_timeout_s),
                &[],
            );
            JobPlan {
                at_ms,
                by: 0,
                spec: Arc::new(spec),
                inputs: Vec::new(),
                flood: true,
            }
        })
        .collect()
}

/// Job `j`'s CID inputs, if it has any: sizes log-uniform, replicas on
/// distinct nodes other than `by` (the node it is submitted to).
fn draw_inputs(m: &JobMix, rng: &mut SimRng, j: usize, by: usize, nodes: usize) -> Vec<InputPlan> {
    if !rng.chance(m.input_share) {
        return Vec::new();
    }
    let (lo, hi) = m.inputs_per_job;
    let n = rng.range(u64::from(lo), u64::from(hi));
    (0..n)
        .map(|k| {
            let bytes = draw_size(rng, m.input_bytes);
            // Unique per run (job, input) and different across seeds.
            let mut content = [0u8; 24];
            content[..8].copy_from_slice(&(j as u64).to_le_bytes());
            content[8..16].copy_from_slice(&k.to_le_bytes());
            content[16..].copy_from_slice(&rng.u64().to_le_bytes());
            let replicas = (m.replicas as usize).min(nodes.saturating_sub(1));
            let mut holders: Vec<u32> = Vec::with_capacity(replicas);
            while holders.len() < replicas {
                let node = rng.index(nodes) as u32;
                if node as usize != by && !holders.contains(&node) {
                    holders.push(node);
                }
            }
            InputPlan {
                cid: blake3_cid(RAW, &content).to_string(),
                bytes,
                replicas: holders,
            }
        })
        .collect()
}

/// `n` distinct entries of `from`, in `from`'s order.
fn pick<'a>(rng: &mut SimRng, from: &[&'a str], n: usize) -> Vec<&'a str> {
    let mut chosen: Vec<usize> = Vec::with_capacity(n);
    while chosen.len() < n.min(from.len()) {
        let i = rng.index(from.len());
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    chosen.sort_unstable();
    chosen.into_iter().map(|i| from[i]).collect()
}

/// A valid job file for the mix, parsed as a user's would be.
fn job_spec(
    j: usize,
    wasm: bool,
    mode: NetworkMode,
    domains: &[&str],
    count: u32,
    (execution_timeout_s, queue_timeout_s): (u64, u64),
    inputs: &[InputPlan],
) -> JobSpec {
    let engine = if wasm {
        "type: wasm\n      params:\n        entryModule:\n          source:\n            \
         type: urlDownload\n            params:\n              url: https://m.example.com/m.wasm"
    } else {
        "type: docker\n      params:\n        image: busybox"
    };
    let network = match mode {
        NetworkMode::None => String::new(),
        NetworkMode::Http => format!(
            "\n    network:\n      type: HTTP\n      domains: [{}]",
            domains.join(", ")
        ),
        NetworkMode::Full => "\n    network:\n      type: Full".to_owned(),
    };
    let mut sources = String::new();
    if !inputs.is_empty() {
        sources.push_str("\n    inputSources:");
        for (k, input) in inputs.iter().enumerate() {
            sources.push_str(&format!(
                "\n      - source: {{type: cid, params: {{CID: {}}}}}\n        target: /inputs/{k}",
                input.cid
            ));
        }
    }
    let text = format!(
        "name: sim-{j}\ntype: batch\ncount: {count}\ntasks:\n  - name: main\n    engine:\n      \
         {engine}{network}{sources}\n    timeouts:\n      executionTimeout: {execution_timeout_s}\n      \
         queueTimeout: {queue_timeout_s}\n"
    );
    JobSpec::parse(&text).unwrap_or_else(|e| panic!("simnet writes valid jobs:\n{text}\n{e}"))
}

#[cfg(test)]
mod tests {
    use protocol::compute::{Compute, ComputeConfig};
    use protocol::job::Source;

    use super::*;

    fn config_with_inputs(seed: u64) -> SimConfig {
        let mut c = SimConfig::new(50, 200, seed);
        c.mix.input_share = 0.5;
        c.mix.replicas = 2;
        c
    }

    /// Jobs with inputs name each as a CID input source, in order, with
    /// replicas on other nodes than the submitter's.
    #[test]
    fn jobs_name_their_inputs_as_cid_sources() {
        let c = config_with_inputs(1);
        let mut rng = SimRng::new(c.seed);
        let nodes = draw_nodes(&c, &mut rng);
        let jobs = draw_jobs(&c, &nodes, &mut rng);
        let with = jobs.iter().filter(|j| !j.inputs.is_empty()).count();
        assert!(
            (70..=130).contains(&with),
            "seed 1: {with} of 200 with inputs"
        );
        for job in &jobs {
            let sources = &job.spec.task().input_sources;
            assert_eq!(sources.len(), job.inputs.len());
            assert!(job.inputs.len() <= 3);
            for (k, (source, input)) in sources.iter().zip(&job.inputs).enumerate() {
                let Source::Cid(s) = &source.source else {
                    panic!("seed 1: input {k} is not a CID: {source:?}");
                };
                assert_eq!(s.cid.to_string(), input.cid);
                assert_eq!(source.target, format!("/inputs/{k}"));
                assert!((1 << 10..=1 << 30).contains(&input.bytes));
                assert_eq!(input.replicas.len(), 2);
                assert!(!input.replicas.contains(&(job.by as u32)));
                assert_ne!(input.replicas[0], input.replicas[1]);
            }
        }
    }

    /// CID inputs change no node's answer: the compute side refuses only
    /// local-path inputs it does not allow, never CIDs (it fetches them
    /// once it runs the job).
    #[test]
    fn inputs_do_not_change_what_nodes_decide() {
        let c = config_with_inputs(2);
        let mut rng = SimRng::new(c.seed);
        let nodes = draw_nodes(&c, &mut rng);
        let jobs = draw_jobs(&c, &nodes, &mut rng);
        let computes: Vec<Compute> = nodes
            .iter()
            .map(|n| {
                let mut config =
                    ComputeConfig::new(n.id, n.policy.clone(), n.engines.iter().cloned(), 0);
                config.capacity = n.capacity;
                Compute::new(config)
            })
            .collect();
        for job in jobs.iter().filter(|j| !j.inputs.is_empty()) {
            let mut bare = JobSpec::clone(&job.spec);
            bare.tasks[0].input_sources.clear();
            for compute in &computes {
                assert_eq!(compute.decide(&job.spec), compute.decide(&bare), "seed 2");
            }
        }
    }
}
