//! Per-peer rate limits in the swarm task (R-SEC-5): the limiters of
//! [`protocol::rate`] for each kind of message, and the counter of what
//! they dropped.

use libp2p::PeerId;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use protocol::rate::{
    ANNOUNCE_RATE, DIRECT_RATE, MAX_LIMITED_PEERS, NODE_INFO_RATE, PeerLimiter, Rate, Verdict,
};

use super::validate::{self, JOBS_TOPIC, NODES_TOPIC, node_id};

/// Messages dropped over their sender's rate, by kind
/// (`skrei_p2p_rate_limited_total{kind="announce"}`).
pub(super) type RateLimited = Family<Vec<(String, String)>, Counter>;

/// What a rate limit is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Announce,
    NodeInfo,
    Direct,
}

impl Kind {
    pub fn of_topic(topic: &str) -> Option<Kind> {
        match topic {
            JOBS_TOPIC => Some(Kind::Announce),
            NODES_TOPIC => Some(Kind::NodeInfo),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Announce => "announce",
            Kind::NodeInfo => "node_info",
            Kind::Direct => "direct",
        }
    }

    pub fn what(self) -> &'static str {
        match self {
            Kind::Announce => "job announcements",
            Kind::NodeInfo => "node infos",
            Kind::Direct => "direct messages",
        }
    }
}

/// Per-peer rate limits (R-SEC-5, [`protocol::rate`]), checked before a
/// message is decoded, handed to the application or forwarded: a peer's
/// flood neither propagates nor fills the bounded event queue that every
/// other peer's messages share. Gossip is limited per author (the signer),
/// direct messages per sender.
pub(super) struct Limits {
    announce: PeerLimiter<PeerId>,
    node_info: PeerLimiter<PeerId>,
    direct: PeerLimiter<PeerId>,
    /// The limiters' clock starts here (they take milliseconds).
    epoch: std::time::Instant,
    dropped: RateLimited,
}

impl Limits {
    pub fn new(dropped: RateLimited) -> Limits {
        Limits {
            announce: PeerLimiter::new(ANNOUNCE_RATE, MAX_LIMITED_PEERS),
            node_info: PeerLimiter::new(NODE_INFO_RATE, MAX_LIMITED_PEERS),
            direct: PeerLimiter::new(DIRECT_RATE, MAX_LIMITED_PEERS),
            epoch: std::time::Instant::now(),
            dropped,
        }
    }

    fn limiter(&mut self, kind: Kind) -> &mut PeerLimiter<PeerId> {
        match kind {
            Kind::Announce => &mut self.announce,
            Kind::NodeInfo => &mut self.node_info,
            Kind::Direct => &mut self.direct,
        }
    }

    /// Counts one message of `kind` from `peer`; a drop is counted in the
    /// metric too.
    pub fn check(&mut self, kind: Kind, peer: &PeerId) -> Verdict {
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        let verdict = self.limiter(kind).check(now_ms, peer);
        if verdict != Verdict::Allow {
            self.dropped
                .get_or_create(&vec![("kind".to_owned(), kind.label().to_owned())])
                .inc();
        }
        verdict
    }

    /// The rejection for a peer flooding `kind` (None for a peer that is
    /// not a node: it is only dropped).
    pub fn rejection(&mut self, kind: Kind, peer: &PeerId) -> Option<validate::Rejection> {
        let Rate { burst, per_second } = self.limiter(kind).rate();
        Some(validate::Rejection::RateLimited {
            signer: node_id(peer).ok()?,
            kind: kind.what(),
            burst,
            per_second,
        })
    }
}
