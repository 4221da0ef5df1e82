//! What the node knows of its peers: whether each is connected, its latest
//! node info, and the addresses it was seen using (R-SEC-5, R-NET-7).
//!
//! Keys are free to make, so nothing here grows with what peers send:
//! - at most [`MAX_PEERS`] peers are kept; a new one beyond that evicts the
//!   peer heard from least recently, disconnected peers first (and only a
//!   connected newcomer may evict a connected peer), so the peers this node
//!   works with stay;
//! - a node info replaces the one kept only when its `seq` is higher: an
//!   older or equal one, replayed, changes nothing;
//! - a peer's advertised addresses enter the set jobs may never reach
//!   ([`Peers::deny_set`]) only at an IP the peer was seen using on a
//!   connection, or, for a peer on this host (seen on loopback), at an IP
//!   of this host: a peer cannot get another host's `IP:443` blocked for
//!   every `http` job. At most [`MAX_DENY_PER_PEER`] entries a peer and
//!   [`MAX_DENY`] in all, connected and recent peers first.
//!
//! Pure apart from the "is this IP one of this host's" question, which the
//! caller answers (see [`is_local_ip`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use protocol::id::NodeId;
use protocol::messages::NodeInfo;

/// Peers kept at once (and node infos, which the requester keeps as well).
pub(crate) const MAX_PEERS: usize = 1_024;
/// Entries one peer may put in the deny set.
pub(crate) const MAX_DENY_PER_PEER: usize = 16;
/// Entries all peers together may put in the deny set (it travels as the
/// sidecar's arguments).
pub(crate) const MAX_DENY: usize = 4_096;
/// Connection addresses kept per peer, the most recent.
const MAX_SEEN_IPS: usize = 8;

/// One peer.
#[derive(Debug, Clone, Default)]
pub(crate) struct Peer {
    pub connected: bool,
    /// Its latest node info (highest `seq`).
    pub info: Option<NodeInfo>,
    /// IPs it was seen using on connections, oldest first.
    seen: Vec<IpAddr>,
    /// When it was last heard from (a counter: its place in [`Peers::order`]).
    stamp: u64,
}

/// The peers; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Peers {
    max: usize,
    peers: BTreeMap<NodeId, Peer>,
    /// Eviction order: disconnected before connected, then least recently
    /// heard first.
    order: BTreeSet<(bool, u64, NodeId)>,
    next_stamp: u64,
}

impl Peers {
    pub fn new(max: usize) -> Peers {
        Peers {
            max: max.max(1),
            peers: BTreeMap::new(),
            order: BTreeSet::new(),
            next_stamp: 0,
        }
    }

    #[cfg(test)]
    pub fn get(&self, node: &NodeId) -> Option<&Peer> {
        self.peers.get(node)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &Peer)> {
        self.peers.iter()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// A connection to `node` opened, from or to `remote`. Returns the peers
    /// evicted to make room.
    pub fn connected(&mut self, node: NodeId, remote: Option<IpAddr>) -> Vec<NodeId> {
        // A connected peer always finds room.
        let evicted = self.touch(node, true).unwrap_or_default();
        self.update(&node, |peer| {
            peer.connected = true;
            if let Some(ip) = remote {
                peer.seen.retain(|seen| *seen != ip);
                peer.seen.push(ip);
                if peer.seen.len() > MAX_SEEN_IPS {
                    peer.seen.remove(0);
                }
            }
        });
        evicted
    }

    /// The last connection to `node` closed.
    pub fn disconnected(&mut self, node: &NodeId) {
        self.update(node, |peer| peer.connected = false);
    }

    /// A verified node info signed by `from`. `None` when it changes
    /// nothing (another node's info, a `seq` not above the one kept:
    /// replayed, or a new peer while every place is a connected peer's);
    /// otherwise the peers evicted to make room.
    pub fn node_info(&mut self, from: NodeId, info: &NodeInfo) -> Option<Vec<NodeId>> {
        if info.node != from {
            return None;
        }
        if let Some(kept) = self.peers.get(&from).and_then(|p| p.info.as_ref())
            && kept.seq >= info.seq
        {
            return None;
        }
        let connected = self.peers.get(&from).is_some_and(|p| p.connected);
        let evicted = self.touch(from, connected)?;
        self.update(&from, |peer| peer.info = Some(info.clone()));
        Some(evicted)
    }

    /// Peers' API and libp2p addresses no job may reach (R-NET-7), scoped
    /// as the module docs say; `is_local` tells whether an IP is one of
    /// this host's.
    pub fn deny_set(&self, is_local: impl Fn(IpAddr) -> bool) -> Vec<SocketAddr> {
        let mut by_priority: Vec<&Peer> =
            self.peers.values().filter(|p| p.info.is_some()).collect();
        by_priority.sort_by_key(|p| std::cmp::Reverse((p.connected, p.stamp)));
        let mut out = BTreeSet::new();
        for peer in by_priority {
            let Some(info) = &peer.info else { continue };
            let on_this_host = peer.seen.iter().any(IpAddr::is_loopback);
            let advertised = info
                .api_addrs
                .iter()
                .filter_map(|a| a.parse::<SocketAddr>().ok())
                .chain(
                    info.p2p_addrs
                        .iter()
                        .filter_map(|a| a.parse::<libp2p::Multiaddr>().ok())
                        .filter_map(|a| super::socket_addr(&a)),
                );
            let mut taken = 0;
            for addr in advertised {
                if taken == MAX_DENY_PER_PEER || out.len() == MAX_DENY {
                    break;
                }
                let ip = canonical(addr.ip());
                let seen = peer.seen.iter().any(|s| canonical(*s) == ip);
                if (seen || (on_this_host && is_local(ip))) && out.insert(addr) {
                    taken += 1;
                }
            }
        }
        out.into_iter().collect()
    }

    /// Makes room for `node` (if new) and marks it heard from now. A peer
    /// that is not connected never pushes out a connected one: `None`, and
    /// nothing changes, when only connected peers could make room.
    fn touch(&mut self, node: NodeId, connected: bool) -> Option<Vec<NodeId>> {
        let mut evicted = Vec::new();
        if !self.peers.contains_key(&node) {
            while self.peers.len() >= self.max {
                let &(victim_connected, _, victim) = self.order.first()?;
                if victim_connected && !connected {
                    return None;
                }
                self.order.pop_first();
                self.peers.remove(&victim);
                evicted.push(victim);
            }
            self.peers.insert(node, Peer::default());
            self.order.insert((false, 0, node));
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.update(&node, |peer| peer.stamp = stamp);
        Some(evicted)
    }

    /// Changes a peer, keeping the eviction order in step.
    fn update(&mut self, node: &NodeId, change: impl FnOnce(&mut Peer)) {
        let Some(peer) = self.peers.get_mut(node) else {
            return;
        };
        self.order.remove(&(peer.connected, peer.stamp, *node));
        change(peer);
        self.order.insert((peer.connected, peer.stamp, *node));
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is an address of one of this host's interfaces: only those
/// can be bound.
pub(crate) fn is_local_ip(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

#[cfg(test)]
mod tests;
