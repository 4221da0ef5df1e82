//! Per-peer rate limits (R-SEC-5, R-P2P-3): how many messages of one kind a
//! node takes from each peer, so that one peer's flood neither starves other
//! peers' messages nor grows the node's memory.
//!
//! A [`PeerLimiter`] keeps one token bucket per peer: a peer may send
//! [`Rate::burst`] messages at once and [`Rate::per_second`] after that; a
//! message that finds the bucket empty is dropped. Peers' buckets are
//! independent, so a peer that keeps within its rate is never dropped,
//! whatever the others send. At most `max_peers` buckets are kept: a new
//! peer beyond that evicts the peer heard from least recently, whose next
//! message then finds a full bucket again (forgetting only ever lets a peer
//! send more, never less, so eviction cannot be used to silence anyone).
//!
//! A dropped message is a [`Verdict::Drop`]; a peer that goes on sending far
//! past its rate (more than another burst's worth of dropped messages,
//! forgiven at the same rate as tokens come back) gets [`Verdict::Flood`],
//! which the network layer counts against it. A node that paces what it
//! sends by the same [`Rate`] is never dropped by a peer that uses it.
//!
//! Sans-IO like the state machines: time comes in as milliseconds, no clock
//! is read, and the maps are ordered, so a schedule of calls gives one
//! sequence of verdicts.
//!
//! ```
//! use protocol::rate::{PeerLimiter, Rate, Verdict};
//!
//! let mut limiter = PeerLimiter::new(Rate { burst: 2, per_second: 1 }, 1024);
//! assert_eq!(limiter.check(0, &"a"), Verdict::Allow);
//! assert_eq!(limiter.check(0, &"a"), Verdict::Allow);
//! assert_eq!(limiter.check(0, &"a"), Verdict::Drop);
//! // Another peer has its own bucket.
//! assert_eq!(limiter.check(0, &"b"), Verdict::Allow);
//! // A second later, one more token.
//! assert_eq!(limiter.check(1_000, &"a"), Verdict::Allow);
//! assert_eq!(limiter.dropped(), 1);
//! ```

use std::collections::BTreeMap;

mod pace;
pub use pace::Pacer;

/// Thousandths of a message: whole messages cost [`UNIT`], and a rate of
/// `n` per second refills `n` units a millisecond, so integer arithmetic
/// loses nothing.
const UNIT: u64 = 1_000;

/// How many messages a peer may send: `burst` at once, then `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Messages a peer that was quiet may send at once (at least 1 is taken).
    pub burst: u32,
    /// Messages a second after the burst.
    pub per_second: u32,
}

/// Job announcements taken from one requester (gossip, per signer). Well
/// above what a busy requester sends most of the time (the devstack
/// throughput benchmark announces about 7 a second per node), and enough
/// for a user's batch of a thousand jobs to reach a network's slots in
/// about 20 s (a node paces its own announcements to this), yet a flood of
/// thousands a second is cut to this.
pub const ANNOUNCE_RATE: Rate = Rate {
    burst: 64,
    per_second: 48,
};

/// A node's own announcements waiting to be sent at [`ANNOUNCE_RATE`]
/// ([`Pacer`]), at most.
pub const MAX_OUTBOX: usize = 4_096;

/// Node infos taken from one node (gossip, per signer): a node sends one
/// every few seconds, and one 300 ms after new connections (at most about
/// three a second while connections keep opening, under this rate).
pub const NODE_INFO_RATE: Rate = Rate {
    burst: 8,
    per_second: 4,
};

/// Direct messages taken from one peer (bids, refusals, awards, results,
/// cancellations): one or two for each job the two nodes share.
pub const DIRECT_RATE: Rate = Rate {
    burst: 128,
    per_second: 64,
};

/// Peers whose buckets are kept at once, per kind of message.
pub const MAX_LIMITED_PEERS: usize = 4_096;

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the peer's rate: take it.
    Allow,
    /// Over the peer's rate: drop it.
    Drop,
    /// Over the peer's rate by more than another burst: drop it and count
    /// it against the peer.
    Flood,
}

#[derive(Debug, Clone)]
struct Bucket {
    /// Units available now (at `at_ms`).
    tokens: u64,
    /// Units of dropped messages not yet forgiven.
    excess: u64,
    /// When `tokens` and `excess` were last brought up to date.
    at_ms: u64,
    /// Its key in [`PeerLimiter::recency`].
    stamp: u64,
}

/// Token buckets for at most `max_peers` peers; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct PeerLimiter<K> {
    rate: Rate,
    max_peers: usize,
    buckets: BTreeMap<K, Bucket>,
    /// Peers by when they were last heard (a counter, not a time: ties and
    /// a clock that goes back change nothing), oldest first.
    recency: BTreeMap<u64, K>,
    next_stamp: u64,
    dropped: u64,
}

impl<K: Ord + Clone> PeerLimiter<K> {
    /// A limiter taking `rate` from each peer and keeping at most
    /// `max_peers` buckets (at least one).
    pub fn new(rate: Rate, max_peers: usize) -> PeerLimiter<K> {
        PeerLimiter {
            rate,
            max_peers: max_peers.max(1),
            buckets: BTreeMap::new(),
            recency: BTreeMap::new(),
            next_stamp: 0,
            dropped: 0,
        }
    }

    /// The rate taken from each peer.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Counts one message from `peer` at `now_ms` and says whether to take
    /// it. Time may stand still or go back (it is then taken as not having
    /// moved).
    pub fn check(&mut self, now_ms: u64, peer: &K) -> Verdict {
        let capacity = self.capacity();
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        match self.buckets.get(peer) {
            Some(bucket) => {
                self.recency.remove(&bucket.stamp);
            }
            None => {
                if self.buckets.len() >= self.max_peers
                    && let Some((_, oldest)) = self.recency.pop_first()
                {
                    self.buckets.remove(&oldest);
                }
            }
        }
        let bucket = self.buckets.entry(peer.clone()).or_insert(Bucket {
            tokens: capacity,
            excess: 0,
            at_ms: now_ms,
            stamp,
        });
        bucket.stamp = stamp;
        self.recency.insert(stamp, peer.clone());
        let refill = now_ms
            .saturating_sub(bucket.at_ms)
            .saturating_mul(u64::from(self.rate.per_second));
        bucket.at_ms = bucket.at_ms.max(now_ms);
        bucket.tokens = bucket.tokens.saturating_add(refill).min(capacity);
        bucket.excess = bucket.excess.saturating_sub(refill);
        if bucket.tokens >= UNIT {
            bucket.tokens -= UNIT;
            return Verdict::Allow;
        }
        self.dropped += 1;
        bucket.excess = bucket.excess.saturating_add(UNIT);
        if bucket.excess > capacity {
            Verdict::Flood
        } else {
            Verdict::Drop
        }
    }

    /// When `peer`'s next message would be taken (`now_ms` if at once):
    /// for a node pacing what it sends.
    pub fn next_allowed_ms(&self, now_ms: u64, peer: &K) -> u64 {
        let Some(bucket) = self.buckets.get(peer) else {
            return now_ms;
        };
        let elapsed = now_ms.saturating_sub(bucket.at_ms);
        let tokens = bucket
            .tokens
            .saturating_add(elapsed.saturating_mul(u64::from(self.rate.per_second)));
        if tokens >= UNIT {
            return now_ms;
        }
        match u64::from(self.rate.per_second) {
            // Never refilled: only forgetting the peer would let it send.
            0 => u64::MAX,
            per_ms => now_ms + (UNIT - tokens).div_ceil(per_ms),
        }
    }

    /// Messages dropped so far (both verdicts), for metrics.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Peers with a bucket now (at most `max_peers`).
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no peer has a bucket.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    fn capacity(&self) -> u64 {
        u64::from(self.rate.burst.max(1)) * UNIT
    }
}

#[cfg(test)]
mod tests;
