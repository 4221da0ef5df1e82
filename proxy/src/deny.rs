//! The control-plane deny set (R-NET-7).
//!
//! Addresses no job may reach whatever its allowlist says: the node's API and
//! libp2p addresses, every peer's advertised addresses. (The host's own
//! addresses are [`crate::local::OwnAddresses`], which an operator's
//! allowed range can open; nothing opens an entry here.) The node updates the set at runtime (gossip brings new peers)
//! through any clone of the handle; every proxy holding a clone sees the
//! change on its next decision.
//!
//! Entries are an `IP:port` (one service), a whole IP (every port) or a name
//! (refused before any resolution, whatever it resolves to). Addresses are
//! canonicalised, so `::ffff:10.0.0.1` and `10.0.0.1` are one entry.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};

use protocol::domain::Host;

#[derive(Debug, Default)]
struct Entries {
    sockets: HashSet<SocketAddr>,
    ips: HashSet<IpAddr>,
    names: HashSet<String>,
}

/// A shared, runtime-updatable set of destinations no job may reach.
#[derive(Debug, Clone, Default)]
pub struct DenySet {
    inner: Arc<RwLock<Entries>>,
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

impl DenySet {
    /// An empty set.
    pub fn new() -> DenySet {
        DenySet::default()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        // A panic while holding the lock cannot leave the sets half-updated
        // (each update is one insert or remove), so the data stays usable.
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuse one service: this address on this port.
    pub fn insert_socket(&self, addr: SocketAddr) {
        self.write().sockets.insert(canonical(addr));
    }

    /// Stop refusing one service.
    pub fn remove_socket(&self, addr: SocketAddr) {
        self.write().sockets.remove(&canonical(addr));
    }

    /// Refuse every port of an address.
    pub fn insert_ip(&self, ip: IpAddr) {
        self.write().ips.insert(ip.to_canonical());
    }

    /// Stop refusing an address.
    pub fn remove_ip(&self, ip: IpAddr) {
        self.write().ips.remove(&ip.to_canonical());
    }

    /// Refuse a host by name (an address host is the same as [`DenySet::insert_ip`]).
    pub fn insert_host(&self, host: &Host) {
        match host {
            Host::Ip(ip) => self.insert_ip(*ip),
            Host::Name(n) => {
                self.write().names.insert(n.clone());
            }
        }
    }

    /// Replace every `IP:port` entry at once (a fresh view of the peers).
    pub fn replace_sockets(&self, addrs: impl IntoIterator<Item = SocketAddr>) {
        let new: HashSet<SocketAddr> = addrs.into_iter().map(canonical).collect();
        self.write().sockets = new;
    }

    /// Whether the name itself is refused.
    pub fn denies_host(&self, host: &Host) -> bool {
        match host {
            Host::Ip(ip) => self.read().ips.contains(&ip.to_canonical()),
            Host::Name(n) => self.read().names.contains(n),
        }
    }

    /// Whether a resolved destination is refused (by `IP:port` or by IP).
    pub fn denies(&self, addr: SocketAddr) -> bool {
        let addr = canonical(addr);
        let entries = self.read();
        entries.sockets.contains(&addr) || entries.ips.contains(&addr.ip())
    }

    /// Number of entries of all kinds.
    pub fn len(&self) -> usize {
        let e = self.read();
        e.sockets.len() + e.ips.len() + e.names.len()
    }

    /// Whether the set has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_net_7_socket_ip_and_name_entries() {
        let d = DenySet::new();
        let clone = d.clone();
        d.insert_socket("10.0.0.1:4001".parse().unwrap());
        assert!(clone.denies("10.0.0.1:4001".parse().unwrap()));
        assert!(clone.denies("[::ffff:10.0.0.1]:4001".parse().unwrap()));
        assert!(!clone.denies("10.0.0.1:4002".parse().unwrap()));
        d.insert_ip("::ffff:10.0.0.2".parse().unwrap());
        assert!(clone.denies("10.0.0.2:1".parse().unwrap()));
        d.insert_host(&Host::parse("Node.Example.").unwrap());
        assert!(clone.denies_host(&Host::parse("node.example").unwrap()));
        assert!(!clone.denies_host(&Host::parse("other.example").unwrap()));
        d.remove_socket("10.0.0.1:4001".parse().unwrap());
        assert!(!clone.denies("10.0.0.1:4001".parse().unwrap()));
        d.replace_sockets(["1.2.3.4:80".parse().unwrap()]);
        assert!(clone.denies("1.2.3.4:80".parse().unwrap()));
        assert_eq!(clone.len(), 3);
    }
}
