//! The task that owns the swarm: it carries out the handles' commands, turns
//! swarm events into [`P2pEvent`]s, and validates everything peers send
//! before it reaches the application or is forwarded.

mod messages;
mod nat;

use messages::Sending;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use libp2p::gossipsub::IdentTopic;
use libp2p::request_response::OutboundRequestId;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, kad, mdns, ping};
use protocol::id::NodeId;
use tokio::sync::{mpsc, oneshot};

pub use nat::Reachability;

use super::behaviour::{Behaviour, BehaviourEvent, KAD_PROTOCOL};
use super::limits::Limits;
use super::validate::{node_id, peer_id};
use super::{P2pError, P2pEvent};

type Reply<T> = oneshot::Sender<Result<T, P2pError>>;

/// A request from a [`super::P2pHandle`]; each carries the channel its
/// answer comes back on.
pub(super) enum SwarmCommand {
    Publish {
        topic: String,
        bytes: Vec<u8>,
        reply: Reply<()>,
    },
    Send {
        to: NodeId,
        bytes: Vec<u8>,
        reply: Reply<()>,
    },
    Dial {
        addr: Multiaddr,
        reply: Reply<()>,
    },
    StartProviding {
        key: Vec<u8>,
        reply: Reply<()>,
    },
    GetProviders {
        key: Vec<u8>,
        reply: Reply<Vec<NodeId>>,
    },
    PeerScore {
        node: NodeId,
        reply: oneshot::Sender<Option<f64>>,
    },
    AddPeerAddrs {
        node: NodeId,
        addrs: Vec<Multiaddr>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// What the handles can read without asking the task.
#[derive(Default)]
pub(super) struct Shared {
    pub listen_addrs: Vec<Multiaddr>,
    pub peers: BTreeSet<NodeId>,
    pub reachability: Reachability,
    /// Confirmed, announceable, not relayed; with `/p2p/<id>`.
    pub external_addrs: Vec<Multiaddr>,
    pub relayed_addrs: Vec<Multiaddr>,
    /// Every open connection: its peer and remote address.
    pub connections: HashMap<ConnectionId, (NodeId, Multiaddr)>,
}

pub(super) struct SwarmDriver {
    pub swarm: Swarm<Behaviour>,
    pub events: mpsc::Sender<P2pEvent>,
    pub shared: Arc<Mutex<Shared>>,
    /// Direct messages awaiting their acknowledgement, by request id.
    sends: HashMap<OutboundRequestId, Sending>,
    providing: HashMap<kad::QueryId, Reply<()>>,
    finding: HashMap<kad::QueryId, (BTreeSet<NodeId>, Reply<Vec<NodeId>>)>,
    /// Rejected direct messages per connected peer: see [`SwarmDriver::strike`].
    strikes: HashMap<PeerId, u32>,
    limits: Limits,
    /// The `--bootstrap` addresses, dialled again whenever no peer is
    /// connected (see [`SwarmDriver::rejoin`]).
    pub bootstrap: Vec<Multiaddr>,
    /// How long a connection may go without a pong (`None`: no limit).
    pub silent_after: Option<std::time::Duration>,
    /// When each connection last answered a ping (or opened): see
    /// [`SwarmDriver::close_silent`]. Peers without ping are not in it.
    last_pong: HashMap<ConnectionId, std::time::Instant>,
    /// When [`SwarmDriver::close_silent`] last ran.
    last_liveness_check: std::time::Instant,
    /// Every listen address is loopback: a local testnet (see
    /// [`super::P2pConfig::loopback_only`]).
    pub loopback_only: bool,
    /// `--announce` addresses.
    pub announce: Vec<Multiaddr>,
    /// `--private-network` ranges: this node's addresses there are
    /// announced.
    pub private_networks: Vec<protocol::address::Cidr>,
    /// Global listen addresses count as confirmed (`--relay-server`).
    pub public_listen: bool,
    nat: nat::Nat,
    /// The address each connection this node dialled reached.
    connected_at: HashMap<ConnectionId, Multiaddr>,
}

/// How often connections are checked for silence.
const LIVENESS_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// How often a node with no connected peer tries to rejoin the network.
const REJOIN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

impl SwarmDriver {
    pub fn new(
        swarm: Swarm<Behaviour>,
        events: mpsc::Sender<P2pEvent>,
        shared: Arc<Mutex<Shared>>,
        limits: Limits,
    ) -> SwarmDriver {
        SwarmDriver {
            swarm,
            events,
            shared,
            sends: HashMap::new(),
            providing: HashMap::new(),
            finding: HashMap::new(),
            strikes: HashMap::new(),
            limits,
            bootstrap: Vec::new(),
            silent_after: None,
            last_pong: HashMap::new(),
            last_liveness_check: std::time::Instant::now(),
            loopback_only: false,
            announce: Vec::new(),
            private_networks: Vec::new(),
            public_listen: false,
            nat: nat::Nat::default(),
            connected_at: HashMap::new(),
        }
    }

    /// Closes the connections silent for [`SwarmDriver::silent_after`].
    fn close_silent(&mut self) {
        let Some(silent_after) = self.silent_after else {
            return;
        };
        let now = std::time::Instant::now();
        let since_last = now.duration_since(self.last_liveness_check);
        self.last_liveness_check = now;
        if since_last > LIVENESS_CHECK * 3 {
            // This task itself was held up (a suspended process, a starved
            // machine): the pongs may be waiting in its queue. Judge from
            // now on instead of closing every connection.
            for at in self.last_pong.values_mut() {
                *at = now;
            }
            return;
        }
        let silent: Vec<ConnectionId> = self
            .last_pong
            .iter()
            .filter(|(_, at)| now.duration_since(**at) > silent_after)
            .map(|(id, _)| *id)
            .collect();
        for id in silent {
            tracing::debug!(connection = %id, "no pong for {silent_after:?}: closing the connection");
            self.last_pong.remove(&id);
            self.swarm.close_connection(id);
        }
    }

    /// Dials the bootstrap peers and walks the DHT from the peers it knows.
    /// Run at start, and again whenever every connection is gone (a network
    /// partition, a suspended laptop): libp2p would otherwise wait for
    /// Kademlia's next periodic bootstrap, minutes away, to reconnect.
    pub fn rejoin(&mut self) {
        for addr in &self.bootstrap {
            // A bootstrap peer that is down now may be up later: a failed
            // dial is logged, not fatal.
            if let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::warn!(%addr, %e, "cannot dial bootstrap peer");
            }
        }
        if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
            // Fails only when no peer is known at all: nothing to walk.
            let _ = kad.bootstrap();
        }
    }

    /// Whether bootstrap peers are named by id and none is connected.
    fn bootstrap_peers_gone(&self) -> bool {
        let mut named = self.bootstrap.iter().filter_map(|a| {
            a.iter().find_map(|p| match p {
                libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
                _ => None,
            })
        });
        let mut any = false;
        let gone = named.all(|peer| {
            any = true;
            !self.swarm.is_connected(&peer)
        });
        any && gone
    }

    /// Runs until a shutdown command, or until every handle is gone.
    pub async fn run(mut self, mut commands: mpsc::Receiver<SwarmCommand>) {
        let mut rejoin = tokio::time::interval_at(
            tokio::time::Instant::now() + REJOIN_INTERVAL,
            REJOIN_INTERVAL,
        );
        rejoin.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut liveness = tokio::time::interval(LIVENESS_CHECK);
        liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stopped = loop {
            tokio::select! {
                _ = liveness.tick() => self.close_silent(),
                _ = rejoin.tick() => {
                    if self.swarm.connected_peers().next().is_none() {
                        tracing::debug!("no peer connected: rejoining");
                        self.rejoin();
                    } else if self.bootstrap_peers_gone() {
                        // Connected to peers (a direct connection between
                        // two NATed nodes) but to no bootstrap peer: a
                        // restarted relay would be left without its
                        // NATed nodes, and they without a relay.
                        tracing::debug!("no bootstrap peer connected: dialling them again");
                        self.rejoin();
                    }
                }
                command = commands.recv() => match command {
                    Some(SwarmCommand::Shutdown { reply }) => break Some(reply),
                    Some(command) => self.command(command),
                    None => break None,
                },
                event = self.swarm.select_next_some() => self.event(event),
            }
        };
        // Dropping the swarm closes every connection and listener; only
        // then is the shutdown complete.
        drop(self.swarm);
        {
            let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            shared.listen_addrs.clear();
            shared.peers.clear();
        }
        tracing::debug!("p2p task stopped");
        if let Some(reply) = stopped {
            let _ = reply.send(());
        }
    }

    fn command(&mut self, command: SwarmCommand) {
        let behaviour = self.swarm.behaviour_mut();
        match command {
            SwarmCommand::Publish {
                topic,
                bytes,
                reply,
            } => {
                let result = behaviour
                    .gossipsub
                    .publish(IdentTopic::new(topic.clone()), bytes)
                    .map(|_| ())
                    .map_err(|e| P2pError::publishing(&topic, e));
                let _ = reply.send(result);
            }
            SwarmCommand::Send { to, bytes, reply } => {
                let id = behaviour.direct.send_request(&peer_id(&to), bytes.clone());
                self.sends.insert(
                    id,
                    Sending {
                        to,
                        reply,
                        bytes,
                        resent: false,
                    },
                );
            }
            SwarmCommand::Dial { addr, reply } => {
                let result = self.swarm.dial(addr.clone()).map_err(|e| P2pError::Dial {
                    addr,
                    cause: e.to_string(),
                });
                let _ = reply.send(result);
            }
            SwarmCommand::StartProviding { key, reply } => match behaviour.kad.as_mut() {
                Some(kad) => match kad.start_providing(kad::RecordKey::new(&key)) {
                    Ok(query) => {
                        self.providing.insert(query, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(P2pError::dht("start_providing", e)));
                    }
                },
                None => {
                    let _ = reply.send(Err(P2pError::dht("start_providing", "Kademlia is off")));
                }
            },
            SwarmCommand::GetProviders { key, reply } => match behaviour.kad.as_mut() {
                Some(kad) => {
                    let query = kad.get_providers(kad::RecordKey::new(&key));
                    self.finding.insert(query, (BTreeSet::new(), reply));
                }
                None => {
                    let _ = reply.send(Err(P2pError::dht("get_providers", "Kademlia is off")));
                }
            },
            SwarmCommand::PeerScore { node, reply } => {
                let _ = reply.send(behaviour.gossipsub.peer_score(&peer_id(&node)));
            }
            SwarmCommand::AddPeerAddrs { node, addrs } => {
                let peer = peer_id(&node);
                for addr in addrs {
                    // Only addresses of the peer that announced them.
                    let addr = match addr.iter().last() {
                        Some(libp2p::multiaddr::Protocol::P2p(id)) if id == peer => addr,
                        Some(libp2p::multiaddr::Protocol::P2p(_)) => continue,
                        _ => addr.with_p2p(peer).unwrap_or_else(|a| a),
                    };
                    self.swarm.add_peer_address(peer, addr);
                }
            }
            // `run` stops on it before calling this.
            SwarmCommand::Shutdown { reply } => {
                let _ = reply.send(());
            }
        }
    }

    pub fn event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match &event {
            SwarmEvent::ConnectionEstablished {
                connection_id,
                endpoint,
                ..
            } => {
                self.last_pong
                    .insert(*connection_id, std::time::Instant::now());
                if endpoint.is_dialer() {
                    self.connected_at
                        .insert(*connection_id, endpoint.get_remote_address().clone());
                }
            }
            SwarmEvent::ConnectionClosed { connection_id, .. } => {
                self.last_pong.remove(connection_id);
                self.connected_at.remove(connection_id);
                self.shared().connections.remove(connection_id);
            }
            _ => {}
        }
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.gossip(event),
            SwarmEvent::Behaviour(BehaviourEvent::Direct(event)) => self.direct(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(event)) => self.identify(event),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(event)) => self.ping(event),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => self.kad(event),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(event)) => self.mdns(event),
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(event)) => self.autonat(event),
            SwarmEvent::Behaviour(BehaviourEvent::Relay(event)) => self.relay_client(event),
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(event)) => self.dcutr(event),
            SwarmEvent::Behaviour(BehaviourEvent::Upnp(event)) => self.upnp(event),
            SwarmEvent::Behaviour(BehaviourEvent::RelayServer(event)) => {
                tracing::debug!(?event, "relay server");
            }
            SwarmEvent::Behaviour(BehaviourEvent::AutonatServer(event)) => {
                tracing::debug!(client = %event.client, addr = %event.tested_addr, ok = event.result.is_ok(), "tested a peer's address");
            }
            SwarmEvent::ExternalAddrConfirmed { address } => self.external_confirmed(address),
            SwarmEvent::ExternalAddrExpired { address } => self.external_expired(&address),
            SwarmEvent::NewListenAddr { address, .. } => {
                let global = super::transport::ip_of(&address)
                    .is_some_and(|ip| protocol::address::classify(ip).is_none());
                let declared = super::transport::ip_of(&address)
                    .is_some_and(|ip| self.private_networks.iter().any(|n| n.contains(ip)));
                if self.loopback_only || declared || (self.public_listen && global) {
                    // A local testnet's listen addresses are the ones its
                    // peers dial; a relay's operator says its global ones
                    // are reachable (AutoNAT v2 tests only over connections
                    // a node dialled, and peers dial a relay, not the
                    // other way round).
                    self.swarm.add_external_address(address.clone());
                    self.refresh_addresses();
                }
                let address = address
                    .with_p2p(*self.swarm.local_peer_id())
                    .unwrap_or_else(|a| a);
                tracing::info!(%address, "listening");
                self.shared().listen_addrs.push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                let address = address
                    .with_p2p(*self.swarm.local_peer_id())
                    .unwrap_or_else(|a| a);
                self.shared().listen_addrs.retain(|a| *a != address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                endpoint,
                connection_id,
                ..
            } => {
                if let Ok(node) = node_id(&peer_id) {
                    self.shared()
                        .connections
                        .insert(connection_id, (node, nat::remote_addr(&endpoint, peer_id)));
                    if num_established.get() == 1 {
                        tracing::debug!(peer = %node, "connected");
                        self.shared().peers.insert(node);
                        self.emit(P2pEvent::PeerConnected(node));
                    }
                    self.emit(P2pEvent::Connection {
                        peer: node,
                        remote: endpoint.get_remote_address().clone(),
                    });
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.strikes.remove(&peer_id);
                self.relay_gone(&peer_id);
                if let Ok(node) = node_id(&peer_id) {
                    tracing::debug!(peer = %node, "disconnected");
                    self.shared().peers.remove(&node);
                    self.emit(P2pEvent::PeerDisconnected(node));
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, %error, "dial failed");
            }
            _ => {}
        }
    }

    fn identify(&mut self, event: identify::Event) {
        let identify::Event::Received {
            peer_id,
            info,
            connection_id,
        } = event
        else {
            return;
        };
        tracing::debug!(peer = %peer_id, agent = %info.agent_version, observed = %info.observed_addr, listen = ?info.listen_addrs, protocols = ?info.protocols, "identified");
        if info.protocols.contains(&libp2p::relay::HOP_PROTOCOL_NAME) {
            let seen_at: Vec<Multiaddr> = self
                .connected_at
                .get(&connection_id)
                .cloned()
                .into_iter()
                .collect();
            self.relay_candidate(peer_id, &seen_at);
        }
        if info.protocols.contains(&KAD_PROTOCOL)
            && let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
        {
            // With hidden listen addresses (every node but loopback-only
            // ones), these are the peer's confirmed and relayed ones.
            for addr in info.listen_addrs {
                kad.add_address(&peer_id, addr);
            }
        }
    }

    /// Pongs keep a connection open: see [`SwarmDriver::silent_after`].
    fn ping(&mut self, event: ping::Event) {
        match event.result {
            Ok(_) => {
                if let Some(at) = self.last_pong.get_mut(&event.connection) {
                    *at = std::time::Instant::now();
                }
            }
            // A peer without ping (not a skrei node) is not silent for that.
            Err(ping::Failure::Unsupported) => {
                self.last_pong.remove(&event.connection);
            }
            // With no silence limit, failed pings are only reported.
            Err(e) if self.silent_after.is_none() => {
                tracing::debug!(peer = %event.peer, %e, "ping failed");
            }
            Err(e) => {
                tracing::debug!(peer = %event.peer, %e, "ping failed: closing the connection");
                self.last_pong.remove(&event.connection);
                self.swarm.close_connection(event.connection);
            }
        }
    }

    fn mdns(&mut self, event: mdns::Event) {
        if let mdns::Event::Discovered(found) = event {
            for (peer, addr) in found {
                if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                    kad.add_address(&peer, addr.clone());
                }
                if !self.swarm.is_connected(&peer) {
                    let _ = self.swarm.dial(addr);
                }
            }
        }
    }

    fn kad(&mut self, event: kad::Event) {
        let kad::Event::OutboundQueryProgressed {
            id, result, step, ..
        } = event
        else {
            return;
        };
        match result {
            kad::QueryResult::StartProviding(result) => {
                if let Some(reply) = self.providing.remove(&id) {
                    let _ = reply.send(
                        result
                            .map(|_| ())
                            .map_err(|e| P2pError::dht("start_providing", e)),
                    );
                }
            }
            kad::QueryResult::GetProviders(result) => {
                let Some((found, _)) = self.finding.get_mut(&id) else {
                    return;
                };
                if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = &result {
                    found.extend(providers.iter().filter_map(|p| node_id(p).ok()));
                }
                // The first providers found are enough to start fetching
                // from: no need to wait for the rest of the DHT walk.
                if found.is_empty() && !step.last && result.is_ok() {
                    return;
                }
                let Some((found, reply)) = self.finding.remove(&id) else {
                    return;
                };
                let _ = reply.send(match result {
                    Err(e) if found.is_empty() => Err(P2pError::dht("get_providers", e)),
                    _ => Ok(found.into_iter().collect()),
                });
                if !step.last
                    && let Some(mut query) = self
                        .swarm
                        .behaviour_mut()
                        .kad
                        .as_mut()
                        .and_then(|kad| kad.query_mut(&id))
                {
                    query.finish();
                }
            }
            kad::QueryResult::Bootstrap(Err(e)) => {
                tracing::debug!(%e, "DHT bootstrap failed");
            }
            _ => {}
        }
    }

    /// Hands an event to the application without ever blocking the swarm.
    fn emit(&self, event: P2pEvent) {
        if let Err(e) = self.events.try_send(event) {
            tracing::warn!(event = ?e.into_inner(),
                "event queue full or closed: event dropped");
        }
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        // Only this task writes, and it never panics while holding the lock.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}
