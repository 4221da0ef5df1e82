//! Reachability: which of this node's addresses peers can dial (AutoNAT v2,
//! UPnP, `--announce`), relay reservations while it has none, and hole
//! punching (DCUtR) over relayed connections.
//!
//! Honest addresses: a confirmed address is kept only if it is global (or
//! the node runs on loopback only, or the operator announced it), so a
//! LAN peer's dial-back never makes a private address part of what the
//! node tells the wide network.

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId, autonat, dcutr, relay, upnp};

use super::SwarmDriver;
use crate::p2p::transport::ip_of;

/// Relays a node behind NAT keeps reservations on at once.
const MAX_RELAYS: usize = 2;

/// Whether peers can dial this node directly: the API's type, since node
/// info shows it as it is.
pub use api::node::Reachability;

/// What the driver keeps about reachability.
#[derive(Default)]
pub(in crate::p2p) struct Nat {
    /// Relays this node listens through, by relay peer.
    relays: std::collections::HashMap<PeerId, ListenerId>,
}

fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// Where a connection's peer is, as an address that shows the path: an
/// inbound circuit's remote address is only `/p2p/<peer>`, so it is
/// written as the relay's circuit address followed by the peer.
pub(super) fn remote_addr(endpoint: &libp2p::core::ConnectedPoint, peer: PeerId) -> Multiaddr {
    match endpoint {
        libp2p::core::ConnectedPoint::Listener { local_addr, .. } if is_relayed(local_addr) => {
            let mut path: Multiaddr = local_addr
                .iter()
                .take_while(|p| !matches!(p, Protocol::P2pCircuit))
                .collect();
            path.push(Protocol::P2pCircuit);
            path.push(Protocol::P2p(peer));
            path
        }
        other => other.get_remote_address().clone(),
    }
}

impl SwarmDriver {
    /// Whether `addr` may be announced as this node's: relayed, global, or
    /// allowed as the module docs say.
    fn announceable(&self, addr: &Multiaddr) -> bool {
        if is_relayed(addr) || self.loopback_only || self.announce.contains(addr) {
            return true;
        }
        match ip_of(addr) {
            Some(ip) => {
                protocol::address::classify(ip).is_none()
                    || self.private_networks.iter().any(|n| n.contains(ip))
            }
            // A DNS name the operator did not announce: not ours to claim.
            None => false,
        }
    }

    pub(super) fn external_confirmed(&mut self, address: Multiaddr) {
        if !self.announceable(&address) {
            tracing::debug!(%address, "confirmed but not global: not announced");
            self.swarm.remove_external_address(&address);
            return;
        }
        tracing::info!(%address, "external address confirmed");
        self.refresh_addresses();
    }

    pub(super) fn external_expired(&mut self, address: &Multiaddr) {
        tracing::debug!(%address, "external address expired");
        self.refresh_addresses();
    }

    /// Copies the swarm's external addresses to what handles read, and
    /// settles reachability and relay reservations from them.
    pub(in crate::p2p) fn refresh_addresses(&mut self) {
        let me = *self.swarm.local_peer_id();
        let with_id = |a: &Multiaddr| a.clone().with_p2p(me).unwrap_or_else(|a| a);
        let (relayed, direct): (Vec<Multiaddr>, Vec<Multiaddr>) = self
            .swarm
            .external_addresses()
            .filter(|a| self.announceable(a))
            .map(with_id)
            .partition(is_relayed);
        let public = !self.announce.is_empty()
            || direct
                .iter()
                .any(|a| ip_of(a).is_some_and(|ip| protocol::address::classify(ip).is_none()));
        {
            let mut shared = self.shared();
            shared.external_addrs = direct;
            shared.relayed_addrs = relayed;
            if public {
                shared.reachability = Reachability::Public;
            }
        }
        if public {
            // Dialable directly: circuits through relays only cost them.
            for (relay, listener) in std::mem::take(&mut self.nat.relays) {
                tracing::info!(%relay, "reachable directly: leaving the relay");
                self.swarm.remove_listener(listener);
            }
        }
    }

    pub(super) fn autonat(&mut self, event: autonat::v2::client::Event) {
        let autonat::v2::client::Event {
            tested_addr,
            server,
            result,
            ..
        } = event;
        match result {
            Ok(()) => tracing::debug!(%tested_addr, %server, "dial-back succeeded"),
            Err(e) => {
                tracing::debug!(%tested_addr, %server, %e, "dial-back failed");
                let mut shared = self.shared();
                if shared.reachability == Reachability::Unknown && shared.external_addrs.is_empty()
                {
                    shared.reachability = Reachability::Private;
                }
            }
        }
    }

    /// A peer that offers the relay (hop) protocol: reserve a circuit on it
    /// unless this node is reachable directly or has enough relays.
    pub(super) fn relay_candidate(&mut self, relay: PeerId, seen_at: &[Multiaddr]) {
        if self.shared().reachability == Reachability::Public
            || self.nat.relays.len() >= MAX_RELAYS
            || self.nat.relays.contains_key(&relay)
        {
            return;
        }
        // Through an address this node reached it at directly.
        let Some(addr) = seen_at.iter().find(|a| !is_relayed(a)) else {
            return;
        };
        let circuit = addr
            .clone()
            .with_p2p(relay)
            .unwrap_or_else(|a| a)
            .with(Protocol::P2pCircuit);
        match self.swarm.listen_on(circuit.clone()) {
            Ok(listener) => {
                tracing::info!(%circuit, "reserving a circuit on the relay");
                self.nat.relays.insert(relay, listener);
            }
            Err(e) => tracing::debug!(%circuit, %e, "cannot listen through the relay"),
        }
    }

    /// The relay's connection closed: its reservation went with it.
    pub(super) fn relay_gone(&mut self, peer: &PeerId) {
        if let Some(listener) = self.nat.relays.remove(peer) {
            self.swarm.remove_listener(listener);
        }
    }

    pub(super) fn relay_client(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted { relay_peer_id, .. } => {
                tracing::info!(relay = %relay_peer_id, "relay reservation accepted");
            }
            other => tracing::debug!(?other, "relay client"),
        }
    }

    pub(super) fn dcutr(&mut self, event: dcutr::Event) {
        let peer = event.remote_peer_id;
        match event.result {
            Ok(direct) => {
                tracing::info!(%peer, "hole punched: direct connection");
                // The circuit has done its job: traffic moves to the direct
                // connection, and the relay's capacity goes to others.
                let relayed: Vec<ConnectionId> = self
                    .shared()
                    .connections
                    .iter()
                    .filter(|(id, (node, addr))| {
                        **id != direct
                            && crate::p2p::validate::peer_id(node) == peer
                            && is_relayed(addr)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for id in relayed {
                    self.swarm.close_connection(id);
                }
            }
            Err(e) => tracing::debug!(%peer, %e, "hole punching failed"),
        }
    }

    pub(super) fn upnp(&mut self, event: upnp::Event) {
        match event {
            upnp::Event::NewExternalAddr { external_addr, .. } => {
                tracing::info!(%external_addr, "UPnP port mapping");
            }
            upnp::Event::GatewayNotFound => tracing::info!("UPnP: no gateway found"),
            upnp::Event::NonRoutableGateway => {
                tracing::info!("UPnP: the gateway is not on the public network")
            }
            upnp::Event::ExpiredExternalAddr { external_addr, .. } => {
                tracing::debug!(%external_addr, "UPnP mapping expired");
            }
        }
    }
}
