//! The node's network layer: a libp2p swarm run as a task, behind a
//! cloneable [`P2pHandle`] and a bounded stream of [`P2pEvent`]s.
//!
//! - **Transports** ([`transport`]): TCP (noise, yamux) and QUIC, DNS
//!   names resolved before the dial guard decides on the address, and
//!   circuits through relays.
//! - **Reachability**: AutoNAT v2 tests the addresses peers see this node
//!   at; confirmed ones are its external addresses, the only ones it
//!   announces (with `--announce` ones and relayed ones). Behind NAT it
//!   reserves a circuit on a relay among its peers (`--relay-server`
//!   nodes) and DCUtR upgrades relayed connections to direct ones.
//! - **Identity**: the node's ed25519 key, so every libp2p `PeerId` prints
//!   as the skrei `NodeId` of the same node.
//! - **Discovery**: Kademlia (`/skrei/kad/1`, bootstrapped from
//!   `--bootstrap` addresses, also the content-provider index), identify,
//!   and mDNS on LANs when enabled.
//! - **Gossip** (R-P2P-2): gossipsub on `skrei/jobs/1` (announcements) and
//!   `skrei/nodes/1` (node info), every message signed by its libp2p author
//!   and, in strict mode, never forwarded before the application accepted it.
//! - **Direct messages** (R-P2P-2): request-response on `/skrei/direct/1`,
//!   one encoded `Direct` per request answered by an acknowledgement.
//! - **Validation** (R-P2P-3): see [`validate`]; a rejected gossip message
//!   penalises the peer that sent it through gossipsub's peer score; a
//!   rejected direct message is answered with the reason, dropped, and
//!   counted against the sender's score as well.
//!
//! - **Rate limits** (R-SEC-5): each peer may send so many announcements,
//!   node infos and direct messages a second ([`protocol::rate`]), checked
//!   before anything is decoded; the excess is dropped (gossip not
//!   forwarded, direct messages answered "busy") and counted, and a peer
//!   flooding far past its rate is penalised like a sender of bad messages.
//!
//! The swarm task never blocks on the application: when the event channel
//! is full, gossip is dropped with a warning and direct messages are
//! answered "busy" (the sender sees [`P2pError::Busy`] and may retry).
//!
//! ```no_run
//! # async fn demo(announce: protocol::messages::Gossip) -> Result<(), skrei_node::p2p::P2pError> {
//! use skrei_node::p2p::{P2p, P2pConfig, P2pEvent};
//!
//! let config = P2pConfig::new([7; 32]).listen("/ip4/0.0.0.0/tcp/4001".parse().unwrap());
//! let (p2p, mut events) = P2p::start(config).await?;
//! println!("bootstrap others with {:?}", p2p.listen_addrs());
//! p2p.publish(&announce).await?;
//! while let Some(event) = events.recv().await {
//!     if let P2pEvent::Gossip { from, message } = event {
//!         println!("{from}: {message:?}");
//!     }
//! }
//! # Ok(()) }
//! ```

mod behaviour;
mod codec;
mod config;
mod error;
mod limits;
mod swarm_driver;
pub mod transport;
pub mod validate;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, SwarmBuilder, noise, yamux};
use prometheus_client::registry::Registry;
use protocol::id::{NodeId, NodeKey};
use protocol::messages::{Direct, DirectMessage, Gossip, GossipMessage};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

pub use codec::{DIRECT_PROTOCOL, MAX_ACK_REASON_BYTES};
pub use config::{ConnectionCaps, P2pConfig, RelayLimits};
pub use error::P2pError;
pub use validate::{JOBS_TOPIC, NODES_TOPIC, Rejection};

use behaviour::Behaviour;
pub use swarm_driver::Reachability;
use swarm_driver::{Shared, SwarmCommand, SwarmDriver};

/// How long [`P2p::start`] waits for its listeners to report an address.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections with no protocol using them are closed after this long.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);

/// Something the network layer tells the node.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum P2pEvent {
    /// A verified gossip message, published and signed by `from`.
    Gossip {
        /// Its signer, who is also its gossipsub author.
        from: NodeId,
        /// The message.
        message: GossipMessage,
    },
    /// A verified direct message, sent and signed by `from`.
    Direct {
        /// Its signer, who is also the peer that sent it.
        from: NodeId,
        /// The message.
        message: DirectMessage,
    },
    /// A connection to `peer` opened (each one; the first after
    /// [`P2pEvent::PeerConnected`]): `remote` is the address it was dialled
    /// at or came from, an address the peer was seen using, unlike those
    /// it advertises.
    Connection {
        /// The peer.
        peer: NodeId,
        /// Its address on this connection.
        remote: Multiaddr,
    },
    /// The first connection to a peer opened.
    PeerConnected(NodeId),
    /// The last connection to a peer closed.
    PeerDisconnected(NodeId),
    /// A message from `from` was refused, counted against `from`'s peer
    /// score and (for gossip) not forwarded. For metrics and tests.
    /// Messages merely over their sender's rate are dropped without this
    /// event (they are counted in `skrei_p2p_rate_limited_total`, see
    /// [`P2pHandle::gossip_metrics`]); a peer flooding far past it gets
    /// [`Rejection::RateLimited`].
    Rejected {
        /// The peer that sent it to us (for gossip: the neighbour that
        /// delivered it, whose score pays).
        from: NodeId,
        /// Why.
        reason: Rejection,
    },
}

/// Starts the network layer.
pub struct P2p;

impl P2p {
    /// Builds the swarm, binds the listen addresses (returning once each has
    /// an address), dials the bootstrap peers and spawns the swarm task on
    /// the current tokio runtime.
    pub async fn start(
        config: P2pConfig,
    ) -> Result<(P2pHandle, mpsc::Receiver<P2pEvent>), P2pError> {
        let node_id = NodeKey::from_secret_bytes(config.secret).node_id();
        let keypair = Keypair::ed25519_from_bytes(config.secret)
            .map_err(|e| P2pError::Identity(e.to_string()))?;
        let peer_id = keypair.public().to_peer_id();
        if validate::peer_id(&node_id) != peer_id {
            return Err(P2pError::IdentityMismatch {
                node_id,
                peer_id: peer_id.to_string(),
            });
        }

        let loopback_only = config.loopback_only();
        let behaviour_config = behaviour::BehaviourConfig {
            kademlia: config.kademlia,
            // On loopback or a LAN found by mDNS no address is ever
            // confirmed from outside; a public relay is reachable by
            // definition.
            kad_always_server: loopback_only || config.mdns || config.relay_server.is_some(),
            mdns: config.mdns,
            ping_interval: config.ping_interval,
            share_listen_addrs: loopback_only,
            relay_server: config.relay_server,
            upnp: config.upnp,
            connection_limits: config.connection_caps,
        };
        let policy = std::sync::Arc::new(transport::DialPolicy {
            local: loopback_only,
            lan: config.mdns,
            named: config
                .bootstrap
                .iter()
                .chain(&config.announce)
                .filter_map(transport::ip_of)
                .map(|ip| ip.to_canonical())
                .collect(),
            networks: config.private_networks.clone(),
        });
        let mut metrics = Registry::default();
        let rate_limited = limits::RateLimited::default();
        metrics.register(
            "skrei_p2p_rate_limited",
            "Messages from peers dropped over their per-peer rate (R-SEC-5), by kind",
            rate_limited.clone(),
        );
        let transport = transport::build(&keypair, policy)
            .map_err(|e| P2pError::Setup(format!("noise: {e}")))?;
        let swarm = SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_other_transport(|_| transport)
            .map_err(|e| P2pError::Setup(e.to_string()))?
            .with_dns()
            .map_err(|e| P2pError::Setup(format!("DNS resolver: {e}")))?
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| P2pError::Setup(e.to_string()))?
            .with_behaviour(|key, relay| {
                let gossipsub_metrics = metrics.sub_registry_with_prefix("gossipsub");
                Behaviour::new(key, relay, behaviour_config, gossipsub_metrics)
                    .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
            })
            .map_err(|e| P2pError::Setup(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
            .build();

        let (events_tx, events) = mpsc::channel(config.event_buffer.max(1));
        let (commands_tx, commands) = mpsc::channel(config.command_buffer.max(1));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let limits = limits::Limits::new(rate_limited);
        let mut driver = SwarmDriver::new(swarm, events_tx, shared.clone(), limits);
        driver.silent_after = config.silent_after;
        driver.loopback_only = loopback_only;
        driver.announce = config.announce.clone();
        driver.private_networks = config.private_networks.clone();
        driver.public_listen = config.relay_server.is_some();
        for addr in &config.announce {
            driver.swarm.add_external_address(addr.clone());
        }
        driver.refresh_addresses();

        listen(&mut driver, &config.listen, config.listen_fallback).await?;
        bootstrap(&mut driver, &config.bootstrap)?;

        tokio::spawn(
            driver
                .run(commands)
                .instrument(tracing::info_span!("p2p", node = %node_id)),
        );
        let handle = P2pHandle {
            node_id,
            commands: commands_tx,
            shared,
            metrics: Arc::new(metrics),
        };
        Ok((handle, events))
    }
}

async fn listen(
    driver: &mut SwarmDriver,
    addrs: &[Multiaddr],
    fallback: bool,
) -> Result<(), P2pError> {
    use futures::StreamExt;
    use libp2p::swarm::SwarmEvent;

    let mut pending = std::collections::HashMap::new();
    for addr in addrs {
        // libp2p's TCP listeners set SO_REUSEPORT (for hole punching), so
        // a second node would share a taken port rather than fail: probe
        // with a plain socket first.
        let taken = if fallback { in_use(addr) } else { None };
        let attempt = match taken {
            Some(e) => Err(e),
            None => driver
                .swarm
                .listen_on(addr.clone())
                .map_err(|e| e.to_string()),
        };
        let id = match attempt {
            Ok(id) => id,
            Err(e) if fallback => {
                let any_port = with_port_zero(addr);
                tracing::warn!(%addr, %e, "cannot listen there: listening on another port");
                eprintln!("cannot listen on {addr} ({e}): listening on another free port");
                driver
                    .swarm
                    .listen_on(any_port.clone())
                    .map_err(|e| P2pError::Listen {
                        addr: any_port,
                        cause: e.to_string(),
                    })?
            }
            Err(cause) => {
                return Err(P2pError::Listen {
                    addr: addr.clone(),
                    cause,
                });
            }
        };
        pending.insert(id, addr.clone());
    }
    let wait = async {
        while !pending.is_empty() {
            let event = driver.swarm.select_next_some().await;
            match &event {
                SwarmEvent::NewListenAddr { listener_id, .. } => {
                    pending.remove(listener_id);
                }
                SwarmEvent::ListenerClosed {
                    listener_id,
                    reason: Err(e),
                    ..
                }
                | SwarmEvent::ListenerError {
                    listener_id,
                    error: e,
                } => {
                    if let Some(addr) = pending.remove(listener_id) {
                        return Err(P2pError::Listen {
                            addr,
                            cause: e.to_string(),
                        });
                    }
                }
                _ => {}
            }
            driver.event(event);
        }
        Ok(())
    };
    tokio::time::timeout(LISTEN_TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| {
            Err(P2pError::Setup(format!(
                "no listen address within {LISTEN_TIMEOUT:?}"
            )))
        })?;
    // A listener on 0.0.0.0 reports one interface's address at a time;
    // TCP dials reuse the listen port (so that NATs keep it, for hole
    // punching) only from an interface already reported. Take the rest
    // before the first dial.
    for _ in 0..64 {
        match tokio::time::timeout(LISTEN_SETTLE, driver.swarm.select_next_some()).await {
            Ok(event) => driver.event(event),
            Err(_) => break,
        }
    }
    Ok(())
}

/// How long [`listen`] waits for more listen addresses after the first.
const LISTEN_SETTLE: Duration = Duration::from_millis(50);

/// Why `addr`'s IP and TCP or UDP port cannot be bound now, if so.
fn in_use(addr: &Multiaddr) -> Option<String> {
    let ip = transport::ip_of(addr)?;
    let bound = match addr.iter().nth(1)? {
        Protocol::Tcp(port) => std::net::TcpListener::bind((ip, port)).map(drop),
        Protocol::Udp(port) => std::net::UdpSocket::bind((ip, port)).map(drop),
        _ => return None,
    };
    bound.err().map(|e| e.to_string())
}

/// `addr` with its TCP or UDP port set to 0 (any free one).
fn with_port_zero(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .map(|p| match p {
            Protocol::Tcp(_) => Protocol::Tcp(0),
            Protocol::Udp(_) => Protocol::Udp(0),
            other => other,
        })
        .collect()
}

fn bootstrap(driver: &mut SwarmDriver, addrs: &[Multiaddr]) -> Result<(), P2pError> {
    for addr in addrs {
        let Some(Protocol::P2p(peer)) = addr.iter().last() else {
            return Err(P2pError::BootstrapAddr { addr: addr.clone() });
        };
        if let Some(kad) = driver.swarm.behaviour_mut().kad.as_mut() {
            kad.add_address(&peer, addr.clone());
        }
    }
    driver.bootstrap = addrs.to_vec();
    if !addrs.is_empty() {
        driver.rejoin();
    }
    Ok(())
}

/// A cheap, cloneable handle on the running network layer.
#[derive(Clone)]
pub struct P2pHandle {
    node_id: NodeId,
    commands: mpsc::Sender<SwarmCommand>,
    shared: Arc<Mutex<Shared>>,
    /// gossipsub's own counters; the swarm task updates them through the
    /// shared atomics the registry holds.
    metrics: Arc<Registry>,
}

impl P2pHandle {
    /// This node's id (= its libp2p peer id).
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The addresses the node listens on, each ending in `/p2p/<peer id>`,
    /// usable as another node's `--bootstrap`.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.shared().listen_addrs.clone()
    }

    /// Whether peers can dial this node directly, as AutoNAT found.
    pub fn reachability(&self) -> Reachability {
        self.shared().reachability
    }

    /// The addresses this node confirmed peers can dial it at (AutoNAT,
    /// UPnP, `--announce`; on a loopback-only node, its listen addresses),
    /// each ending in `/p2p/<peer id>`.
    pub fn external_addrs(&self) -> Vec<Multiaddr> {
        self.shared().external_addrs.clone()
    }

    /// Its addresses through relays (`.../p2p/<relay>/p2p-circuit/p2p/<id>`).
    pub fn relayed_addrs(&self) -> Vec<Multiaddr> {
        self.shared().relayed_addrs.clone()
    }

    /// What the node tells the network it can be reached at: its external
    /// and relayed addresses, never a private address it merely listens on.
    pub fn announced_addrs(&self) -> Vec<Multiaddr> {
        let shared = self.shared();
        let mut addrs = shared.external_addrs.clone();
        addrs.extend(shared.relayed_addrs.iter().cloned());
        addrs
    }

    /// Remembers addresses `node` announced (its gossiped node info), so
    /// that a direct message to it can dial them. Addresses naming another
    /// peer are dropped; dials still go through the dial guard.
    /// Dropped when the swarm task is behind: the next node info brings
    /// them again.
    pub fn add_peer_addrs(&self, node: NodeId, addrs: Vec<Multiaddr>) {
        let _ = self
            .commands
            .try_send(SwarmCommand::AddPeerAddrs { node, addrs });
    }

    /// The remote address of each open connection to `node`.
    pub fn connections(&self, node: &NodeId) -> Vec<Multiaddr> {
        self.shared()
            .connections
            .values()
            .filter(|(peer, _)| peer == node)
            .map(|(_, addr)| addr.clone())
            .collect()
    }

    /// The peers the node is connected to now.
    pub fn peers(&self) -> Vec<NodeId> {
        self.shared().peers.iter().copied().collect()
    }

    /// The network layer's counters in the OpenMetrics text format:
    /// `skrei_p2p_rate_limited_total{kind}` (messages dropped over their
    /// sender's rate: `announce`, `node_info`, `direct`), and gossipsub's
    /// own, names prefixed `gossipsub_`: messages and bytes received per topic before and after
    /// duplicate filtering (`topic_msg_recv_counts_unfiltered` and
    /// `topic_msg_recv_counts`), sent, published, mesh sizes, IHAVE/IWANT
    /// traffic. Topics are labelled by their name. For the node's metrics
    /// and for measuring gossip overhead (node/benches/gossip.rs).
    pub fn gossip_metrics(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.metrics);
        text
    }

    /// Publishes a gossip message on its kind's topic. Fails with
    /// [`P2pError::NoSubscribers`] (retryable) until some peer has
    /// subscribed to the topic. The node does not hear its own messages
    /// back: it acts on what it publishes itself.
    pub async fn publish(&self, gossip: &Gossip) -> Result<(), P2pError> {
        let bytes = gossip.encode()?;
        self.publish_bytes(validate::topic_of(gossip), bytes).await
    }

    /// Publishes arbitrary bytes on any topic, bypassing encoding and the
    /// size limit: for tests that play a misbehaving peer. Not for use by
    /// the node.
    #[doc(hidden)]
    pub async fn publish_raw_for_tests(&self, topic: &str, bytes: Vec<u8>) -> Result<(), P2pError> {
        self.publish_bytes(topic, bytes).await
    }

    async fn publish_bytes(&self, topic: &str, bytes: Vec<u8>) -> Result<(), P2pError> {
        self.ask(|reply| SwarmCommand::Publish {
            topic: topic.to_owned(),
            bytes,
            reply,
        })
        .await?
    }

    /// Sends a direct message to `to` (dialling it if needed: connected,
    /// known to the DHT, or found by mDNS) and returns once it acknowledged
    /// it. The error names the peer and the cause.
    pub async fn send(&self, to: NodeId, direct: &Direct) -> Result<(), P2pError> {
        let bytes = direct.encode()?;
        self.send_raw(to, bytes).await
    }

    /// Sends arbitrary bytes as a direct message: for tests that play a
    /// misbehaving peer. Not for use by the node.
    #[doc(hidden)]
    pub async fn send_raw_for_tests(&self, to: NodeId, bytes: Vec<u8>) -> Result<(), P2pError> {
        self.send_raw(to, bytes).await
    }

    async fn send_raw(&self, to: NodeId, bytes: Vec<u8>) -> Result<(), P2pError> {
        self.ask(|reply| SwarmCommand::Send { to, bytes, reply })
            .await?
    }

    /// Dials an address (one ending in `/p2p/<peer id>` is checked to reach
    /// that peer). Returns once the dial started; [`P2pEvent::PeerConnected`]
    /// tells when it succeeded.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), P2pError> {
        self.ask(|reply| SwarmCommand::Dial { addr, reply }).await?
    }

    /// Announces in the DHT that this node provides `key` (a content CID's
    /// bytes); returns once the record reached the closest peers.
    pub async fn start_providing(&self, key: impl AsRef<[u8]>) -> Result<(), P2pError> {
        let key = key.as_ref().to_vec();
        self.ask(|reply| SwarmCommand::StartProviding { key, reply })
            .await?
    }

    /// The nodes the DHT names as providers of `key`.
    pub async fn get_providers(&self, key: impl AsRef<[u8]>) -> Result<Vec<NodeId>, P2pError> {
        let key = key.as_ref().to_vec();
        self.ask(|reply| SwarmCommand::GetProviders { key, reply })
            .await?
    }

    /// The gossipsub score this node gives `node` (None if unknown): for
    /// metrics and tests.
    pub async fn peer_score(&self, node: NodeId) -> Result<Option<f64>, P2pError> {
        self.ask(|reply| SwarmCommand::PeerScore { node, reply })
            .await
    }

    /// Stops the swarm task, closing every connection; returns once it has
    /// stopped taking commands. Other handles then get [`P2pError::Shutdown`].
    pub async fn shutdown(&self) {
        let _ = self.ask(|reply| SwarmCommand::Shutdown { reply }).await;
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> SwarmCommand,
    ) -> Result<T, P2pError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| P2pError::Shutdown)?;
        answer.await.map_err(|_| P2pError::Shutdown)
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for P2pHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2pHandle")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}
