//! The network models: link delay and loss, gossip fan-out, partitions and
//! message sizes. See the crate docs for their assumptions.

use protocol::compute::ToRequester;
use protocol::failure::{Failure, FailureCause};
use protocol::id::{ExecutionId, JobId, to_canonical};
use protocol::messages::{Announce, Award, Bid, Cancel, Decline, Outcome, Refuse, ResultMsg};
use protocol::policy::RefuseReason;
use protocol::requester::ToCompute;

use crate::config::{GossipModel, LinkModel, Partition};
use crate::rng::SimRng;

/// Bytes a signed envelope adds around a payload: the signer's id, a
/// 64-byte signature, field names and CBOR heads (protocol's
/// `ENVELOPE_OVERHEAD` is the bound, 256; this is the typical size).
pub const ENVELOPE_BYTES: u64 = 170;

/// Messages and bytes a node sent and received.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Traffic {
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
}

/// The network as the simulator sees it.
#[derive(Debug, Clone)]
pub struct Network {
    link: LinkModel,
    degree: u32,
    /// Copies the publisher sends: flood publishing.
    flood: u32,
    /// `cumulative[h-1]`: probability that a receiver is at most `h` hops
    /// from the publisher.
    cumulative: Vec<f64>,
    /// `reach[h-1]`: probability that at least one of a receiver's D copies
    /// survives `h` lossy hops.
    reach: Vec<f64>,
    partitions: Vec<(usize, u64, u64)>,
    sizes: Sizes,
}

impl Network {
    /// The models for a network of `nodes` nodes.
    pub fn new(
        nodes: usize,
        link: &LinkModel,
        gossip: &GossipModel,
        partitions: &[Partition],
    ) -> Network {
        let degree = gossip.mesh_degree.max(2);
        let others = nodes.saturating_sub(1).max(1) as u64;
        let flood = gossip.publish_peers.max(degree).min(others as u32);
        // Receivers per hop: the publisher floods to its connected peers,
        // then each new receiver forwards to its D mesh peers but the one it
        // heard from. Flood publishing is measured (the publisher sent a
        // copy to each connected peer: docs/BENCHMARKS.md, "Gossip
        // dissemination"); the hop counts after it are not, only the times
        // (CPU-bound on one machine). Most nodes are still at the last hop.
        let mut counts = vec![u64::from(flood)];
        let mut reached = u64::from(flood);
        while reached < others {
            let frontier = *counts.last().unwrap_or(&1);
            let next = (frontier * u64::from(degree - 1)).clamp(1, others - reached);
            counts.push(next);
            reached += next;
        }
        let hops = counts.len();
        let mut acc = 0;
        let cumulative = counts
            .iter()
            .map(|c| {
                acc += c;
                acc as f64 / others as f64
            })
            .collect();
        let reach = (1..=hops)
            .map(|h| {
                let path = (1.0 - link.loss).powi(h as i32);
                1.0 - (1.0 - path).powi(degree as i32)
            })
            .collect();
        Network {
            link: link.clone(),
            degree,
            flood,
            cumulative,
            reach,
            partitions: partitions
                .iter()
                .map(|p| {
                    (
                        ((nodes as f64) * p.share).round() as usize,
                        p.from_ms,
                        p.until_ms,
                    )
                })
                .collect(),
            sizes: Sizes::calibrate(),
        }
    }

    /// Copies of a gossip message each node receives (and forwards): D.
    pub fn degree(&self) -> u32 {
        self.degree
    }

    /// Copies the publisher sends (flood publishing); each lands on a
    /// receiver one hop away, one more copy on top of its D.
    pub fn publish_copies(&self) -> u32 {
        self.flood
    }

    /// Whether a partition separates `a` and `b` at `now`.
    pub fn separated(&self, a: usize, b: usize, now: u64) -> bool {
        self.partitions
            .iter()
            .any(|&(split, from, until)| from <= now && now < until && (a < split) != (b < split))
    }

    /// One link's delay, drawn.
    pub fn link_delay(&self, rng: &mut SimRng) -> u64 {
        self.link.base_ms + rng.below(self.link.jitter_ms + 1)
    }

    /// Whether `a` and `b` are in different regions.
    pub fn cross_region(&self, a: usize, b: usize) -> bool {
        let r = self.link.regions.max(1) as usize;
        r > 1 && a % r != b % r
    }

    /// A direct message's fate from `a` to `b`: `None` if lost, else its
    /// delay.
    pub fn direct(&self, rng: &mut SimRng, a: usize, b: usize) -> Option<u64> {
        if rng.chance(self.link.loss) {
            return None;
        }
        Some(self.pair_delay(rng, a, b))
    }

    /// One link delay between `a` and `b`, drawn: the region crossing
    /// included, loss not.
    pub fn pair_delay(&self, rng: &mut SimRng, a: usize, b: usize) -> u64 {
        let cross = if self.cross_region(a, b) {
            self.link.cross_region_ms
        } else {
            0
        };
        self.link_delay(rng) + cross
    }

    /// A gossip message's fate at receiver `b` of publisher `a`: `None` if
    /// every copy was lost, else the first copy's hops and delay (hops ×
    /// link delay). With regions, each hop goes to a peer in another region with
    /// probability `(R-1)/R` (mesh peers are drawn regardless of region),
    /// and a path between regions crosses at least once.
    pub fn gossip(&self, rng: &mut SimRng, a: usize, b: usize) -> Option<GossipDelivery> {
        let roll = rng.unit();
        let hops = self
            .cumulative
            .iter()
            .position(|c| roll < *c)
            .unwrap_or(self.cumulative.len() - 1);
        if self.link.loss > 0.0 && !rng.chance(self.reach[hops]) {
            return None;
        }
        let mut delay: u64 = (0..=hops).map(|_| self.link_delay(rng)).sum();
        let regions = self.link.regions.max(1);
        if regions > 1 {
            let p = f64::from(regions - 1) / f64::from(regions);
            let mut crossings = (0..=hops).filter(|_| rng.chance(p)).count() as u64;
            if crossings == 0 && self.cross_region(a, b) {
                crossings = 1;
            }
            delay += crossings * self.link.cross_region_ms;
        }
        Some(GossipDelivery {
            hops: hops as u32 + 1,
            delay_ms: delay,
        })
    }

    /// The message sizes.
    pub fn sizes(&self) -> &Sizes {
        &self.sizes
    }
}

/// How the first copy of a gossip message reached a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GossipDelivery {
    /// Hops from the publisher: 1 for the publisher's own peers.
    pub hops: u32,
    /// Simulated delay from publication.
    pub delay_ms: u64,
}

/// Encoded sizes of the messages, as signed on the wire (estimated: the
/// fixed part of each kind is measured once by encoding a sample, and the
/// free text it carries is added).
#[derive(Debug, Clone)]
pub struct Sizes {
    bid: u64,
    refuse: u64,
    award: u64,
    decline: u64,
    cancel: u64,
    completed: u64,
    failed: u64,
}

impl Sizes {
    fn calibrate() -> Sizes {
        let job_id = JobId::from_cid(protocol::id::blake3_cid(protocol::id::DAG_CBOR, b"sample"))
            .expect("a DAG-CBOR BLAKE3 CID is a job id");
        let node = crate::population::node_key(0).node_id();
        let execution_id = ExecutionId(1);
        let len = |bytes: Result<Vec<u8>, _>| -> u64 {
            bytes.map(|b: Vec<u8>| b.len() as u64).unwrap_or(256) + ENVELOPE_BYTES
        };
        let outcome = |outcome| ResultMsg {
            job_id,
            execution_id,
            node,
            outcome,
            // A real node names its blob store: one iroh address, ~120 bytes.
            providers: vec!["x".repeat(120)],
        };
        Sizes {
            bid: len(to_canonical(&Bid {
                job_id,
                bidder: node,
                running_jobs: 1,
                held_bytes: 0,
                fetch_ms: None,
            })),
            refuse: len(to_canonical(&Refuse {
                job_id,
                node,
                reason: RefuseReason::EmptyAllowlist,
            })),
            award: len(to_canonical(&Award {
                job_id,
                execution_id,
                node,
                partition: 0,
            })),
            decline: len(to_canonical(&Decline {
                job_id,
                execution_id,
                node,
                reason: String::new(),
            })),
            cancel: len(to_canonical(&Cancel {
                job_id,
                reason: String::new(),
            })),
            completed: len(to_canonical(&outcome(Outcome::Completed {
                result_cid: protocol::id::blake3_cid(protocol::id::RAW, b"r"),
                exit_code: 0,
            }))),
            failed: len(to_canonical(&outcome(Outcome::Failed {
                failure: Failure::new(FailureCause::Other, ""),
            }))),
        }
    }

    /// An announcement, signed.
    pub fn announce(announce: &Announce) -> u64 {
        to_canonical(announce).map_or(4096, |b| b.len() as u64) + ENVELOPE_BYTES
    }

    /// A compute node's message to a requester.
    pub fn to_requester(&self, msg: &ToRequester) -> u64 {
        match msg {
            ToRequester::Bid(_) => self.bid,
            ToRequester::Refuse(r) => self.refuse + reason_bytes(&r.reason),
            ToRequester::Decline(d) => self.decline + d.reason.len() as u64,
            ToRequester::Result(r) => match &r.outcome {
                Outcome::Completed { .. } => self.completed,
                Outcome::Failed { failure } => self.failed + failure.detail.len() as u64,
            },
            // Simulated executions report no steps; a real one's is about
            // an award's size and its image reference.
            ToRequester::Progress(p) => self.award + p.step.to_string().len() as u64,
        }
    }

    /// A requester's message to a compute node.
    pub fn to_compute(&self, msg: &ToCompute) -> u64 {
        match msg {
            ToCompute::Award(_) => self.award,
            ToCompute::Cancel(c) => self.cancel + c.reason.len() as u64,
        }
    }
}

/// Extra bytes of a refusal's reason over the sample's.
fn reason_bytes(reason: &RefuseReason) -> u64 {
    match reason {
        RefuseReason::DomainsNotAllowed { domains } => {
            domains
                .iter()
                .map(|d| d.as_str().len() as u64 + 2)
                .sum::<u64>()
                + 16
        }
        RefuseReason::NetworkNotAccepted { .. } => 30,
        RefuseReason::EngineUnavailable { engine } => engine.len() as u64 + 16,
        RefuseReason::NoCapacity { .. } => 20,
        _ => 0,
    }
}
