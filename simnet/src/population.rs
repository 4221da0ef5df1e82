//! Drawing the nodes and the jobs of a run from its [`SimConfig`].

use std::collections::BTreeSet;
use std::sync::Arc;

use protocol::domain::DomainSet;
use protocol::id::{NodeId, NodeKey};
use protocol::job::{JobSpec, NetworkMode};
use protocol::policy::{AcceptancePolicy, Allowlist};

use crate::config::SimConfig;
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
            }
        })
        .collect()
}

/// Draws the jobs, sorted by submission time.
pub fn draw_jobs(config: &SimConfig, rng: &mut SimRng) -> Vec<JobPlan> {
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
            let spec = job_spec(
                j,
                wasm,
                mode,
                &domains,
                count,
                m.execution_timeout_s,
                m.queue_timeout_s,
            );
            JobPlan {
                at_ms,
                by,
                spec: Arc::new(spec),
            }
        })
        .collect();
    jobs.sort_by_key(|j| j.at_ms);
    jobs
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
    execution_timeout_s: u64,
    queue_timeout_s: u64,
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
    let text = format!(
        "name: sim-{j}\ntype: batch\ncount: {count}\ntasks:\n  - name: main\n    engine:\n      \
         {engine}{network}\n    timeouts:\n      executionTimeout: {execution_timeout_s}\n      \
         queueTimeout: {queue_timeout_s}\n"
    );
    JobSpec::parse(&text).unwrap_or_else(|e| panic!("simnet writes valid jobs:\n{text}\n{e}"))
}
