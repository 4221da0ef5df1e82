//! Blobs: the CID inputs jobs read, the nodes that hold them, the nodes'
//! links, and how long a fetch takes. The model and its assumptions are in
//! the crate docs ("Inputs and bandwidth").

use crate::config::BandwidthClass;
use crate::rng::SimRng;

/// How an execution that gave up on an input says why, for people: `input
/// CID <cid>: no provider reachable` (its cause is `input_unavailable`).
pub const NO_PROVIDER: &str = "no provider reachable";

/// How a failed execution's reason says its inputs took longer than the
/// job's `ExecutionTimeout` (words of the node's own reason).
pub const INPUTS_TIMED_OUT: &str = "inputs were not in within the job's ExecutionTimeout";

/// A node's link to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bandwidth {
    /// Upload rate, Mbit/s: what it serves blobs at.
    pub up_mbps: u64,
    /// Download rate, Mbit/s: what it fetches blobs at.
    pub down_mbps: u64,
}

impl Bandwidth {
    /// Draws one node's class; `classes` is a validated distribution.
    pub fn draw(rng: &mut SimRng, classes: &[BandwidthClass]) -> Bandwidth {
        let roll = rng.unit();
        let mut below = 0.0;
        let class = classes
            .iter()
            .find(|c| {
                below += c.share;
                roll < below
            })
            // Shares that add up to a hair under 1 leave the top to the last.
            .or(classes.last());
        class.map_or(
            Bandwidth {
                up_mbps: 1,
                down_mbps: 1,
            },
            |c| Bandwidth {
                up_mbps: c.up_mbps.max(1),
                down_mbps: c.down_mbps.max(1),
            },
        )
    }
}

/// One CID input of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputPlan {
    /// Its CID, as the job file names it.
    pub cid: String,
    /// Its size.
    pub bytes: u64,
    /// Nodes holding a copy besides the one the job is submitted to: what a
    /// provider lookup would find.
    pub replicas: Vec<u32>,
}

const ADDRESS_PREFIX: &str = "simnet-blobs:";

/// How a node's blob store is named in announcements' provider lists (a
/// real node names its iroh endpoint there, about 120 bytes; this is about
/// 70).
pub fn address(node: usize, id: &protocol::id::NodeId) -> String {
    format!("{ADDRESS_PREFIX}{node}:{id}")
}

/// The node an [`address`] names; `None` for anything else.
pub fn node_of(address: &str) -> Option<usize> {
    let rest = address.strip_prefix(ADDRESS_PREFIX)?;
    let (node, _id) = rest.split_once(':')?;
    node.parse().ok()
}

/// Milliseconds to move `bytes` at `mbps` Mbit/s, rounded up.
pub fn transfer_ms(bytes: u64, mbps: u64) -> u64 {
    // bits / (bits per ms)
    bytes.saturating_mul(8).div_ceil(mbps.max(1) * 1_000)
}

/// A size drawn log-uniformly in `[lo, hi]`: each factor of 10 in the
/// range is as likely as any other.
pub fn draw_size(rng: &mut SimRng, (lo, hi): (u64, u64)) -> u64 {
    let lo = lo.max(1);
    if hi <= lo {
        return lo;
    }
    let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
    ((a + rng.unit() * (b - a)).exp().round() as u64).clamp(lo, hi)
}

/// What the run's input fetches came to.
#[derive(Debug, Clone, Default)]
pub(crate) struct InputStats {
    /// Each transfer between two nodes: connection, request and bytes.
    pub(crate) fetch_ms: Vec<u64>,
    /// Blob bytes each node sent and received.
    pub(crate) bytes_per_node: Vec<u64>,
    /// Blob bytes moved between nodes, each transfer once.
    pub(crate) bytes_total: u64,
    /// Inputs an executing node already held (it was the submitter or a
    /// replica): read from its own store.
    pub(crate) local_reads: u64,
}

impl InputStats {
    pub(crate) fn new(nodes: usize) -> InputStats {
        InputStats {
            bytes_per_node: vec![0; nodes],
            ..InputStats::default()
        }
    }

    /// Counts one transfer of `bytes` from `from` to `to` taking `ms`.
    pub(crate) fn transfer(&mut self, from: usize, to: usize, bytes: u64, ms: u64) {
        self.fetch_ms.push(ms);
        self.bytes_total = self.bytes_total.saturating_add(bytes);
        for node in [from, to] {
            let b = &mut self.bytes_per_node[node];
            *b = b.saturating_add(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_time_follows_size_and_rate() {
        // 1 GiB at 500 Mbit/s: 8.59e9 bits / 5e5 bits per ms.
        assert_eq!(transfer_ms(1 << 30, 500), 17_180);
        assert_eq!(transfer_ms(1_000_000, 8), 1_000);
        assert_eq!(transfer_ms(1, 5_000), 1, "rounded up");
        assert_eq!(transfer_ms(0, 50), 0);
    }

    #[test]
    fn addresses_name_their_node() {
        let id = crate::population::node_key(7).node_id();
        let a = address(7, &id);
        assert_eq!(node_of(&a), Some(7));
        assert!(a.len() < protocol::messages::MAX_ADDR_BYTES);
        assert_eq!(node_of("simnet-blobs:x:y"), None);
        assert_eq!(node_of(r#"{"id":"ab","addrs":[]}"#), None);
    }

    #[test]
    fn sizes_are_log_uniform_within_the_range() {
        let mut rng = SimRng::new(1);
        let range = (1 << 10, 1 << 30);
        let mut sizes: Vec<u64> = (0..10_000).map(|_| draw_size(&mut rng, range)).collect();
        assert!(sizes.iter().all(|s| (range.0..=range.1).contains(s)));
        sizes.sort_unstable();
        // The median of log-uniform is the geometric mean: 1 MiB.
        let median = sizes[sizes.len() / 2];
        assert!(
            (1 << 19..1 << 21).contains(&median),
            "seed 1: median {median}"
        );
        assert_eq!(draw_size(&mut rng, (5, 5)), 5);
    }

    #[test]
    fn bandwidth_classes_are_drawn_by_share() {
        let mut rng = SimRng::new(2);
        let classes = BandwidthClass::defaults();
        let drawn: Vec<Bandwidth> = (0..10_000)
            .map(|_| Bandwidth::draw(&mut rng, &classes))
            .collect();
        let share = |mbps| drawn.iter().filter(|b| b.up_mbps == mbps).count();
        assert!((2_800..3_200).contains(&share(50)), "seed 2");
        assert!((4_800..5_200).contains(&share(500)), "seed 2");
        assert!((1_800..2_200).contains(&share(5_000)), "seed 2");
        assert!(drawn.iter().all(|b| b.up_mbps == b.down_mbps));
    }
}
