//! What a node's network layer needs to start.

use std::time::Duration;

use libp2p::Multiaddr;

/// Configuration of [`super::P2p::start`].
///
/// ```
/// use skrei_node::p2p::P2pConfig;
/// let config = P2pConfig::new([7; 32]).listen("/ip4/127.0.0.1/tcp/0".parse()?);
/// assert!(!config.mdns);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct P2pConfig {
    /// The node key's ed25519 secret (`NodeKey::to_secret_bytes`): it becomes
    /// the libp2p identity, so the node's `PeerId` is its `NodeId`.
    pub secret: [u8; 32],
    /// Addresses to listen on (`/ip4/0.0.0.0/tcp/4001`, port 0 for any).
    pub listen: Vec<Multiaddr>,
    /// Peers to join through, each ending in `/p2p/<peer id>`.
    pub bootstrap: Vec<Multiaddr>,
    /// Find peers on the local network with mDNS.
    pub mdns: bool,
    /// Find peers through the Kademlia DHT and answer its queries. Off, the
    /// node talks only to the peers it dials and those that dial it (and has
    /// no provider records): for closed deployments and for tests that need
    /// a fixed topology.
    pub kademlia: bool,
    /// Capacity of the command channel from [`super::P2pHandle`]s to the swarm.
    pub command_buffer: usize,
    /// Capacity of the event channel to the application. When it is full,
    /// gossip is dropped (with a warning) and direct messages are answered
    /// "busy", so the sender can retry: the swarm never blocks on a slow reader.
    pub event_buffer: usize,
    /// How often each connection is pinged.
    pub ping_interval: Duration,
    /// A connection with no pong for this long is closed, so that jobs
    /// awarded to a peer cut off without a goodbye move on within seconds
    /// (a cut link stays silent rather than closed: TCP would take minutes,
    /// libp2p's own ping failure 20 s or more). `None`: only libp2p's.
    pub silent_after: Option<Duration>,
    /// A listen address whose port is taken is retried on a free port
    /// (with a warning) instead of failing the start.
    pub listen_fallback: bool,
    /// Addresses to announce as this node's own besides those AutoNAT
    /// confirms (`--announce`): a port forwarded by hand, a DNS name.
    pub announce: Vec<Multiaddr>,
    /// Private networks the operator declares its own: peers' addresses
    /// there are dialled, and this node's are announced.
    pub private_networks: Vec<protocol::address::Cidr>,
    /// Run a circuit relay v2 server with these limits (`--relay-server`).
    pub relay_server: Option<RelayLimits>,
    /// Ask the router for a port mapping (UPnP IGD).
    pub upnp: bool,
    /// Connection caps (R-SEC-5).
    pub connection_caps: ConnectionCaps,
}

/// What a relay server gives each circuit and how many it carries. skrei's
/// connections live long (a node stays connected to its peers, pinging every
/// 2 s, gossiping node info and jobs) where libp2p's defaults assume short
/// circuits for hole punching (2 minutes, 128 KiB): a circuit that ends
/// cuts a NATed node off until it reconnects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayLimits {
    /// Reservations held at once (one per NATed node using this relay).
    pub max_reservations: usize,
    /// Circuits at once, over all reservations.
    pub max_circuits: usize,
    /// Circuits at once to or from one peer.
    pub max_circuits_per_peer: usize,
    /// How long one circuit lasts before the relay closes it (the nodes
    /// then open a new one).
    pub max_circuit_duration: Duration,
    /// Bytes one circuit carries before the relay closes it.
    pub max_circuit_bytes: u64,
}

impl Default for RelayLimits {
    fn default() -> RelayLimits {
        RelayLimits {
            max_reservations: 512,
            max_circuits: 1024,
            max_circuits_per_peer: 16,
            max_circuit_duration: Duration::from_secs(60 * 60),
            max_circuit_bytes: 256 << 20,
        }
    }
}

impl RelayLimits {
    pub(super) fn config(&self) -> libp2p::relay::Config {
        libp2p::relay::Config {
            max_reservations: self.max_reservations,
            max_reservations_per_peer: 4,
            reservation_duration: Duration::from_secs(60 * 60),
            max_circuits: self.max_circuits,
            max_circuits_per_peer: self.max_circuits_per_peer,
            max_circuit_duration: self.max_circuit_duration,
            max_circuit_bytes: self.max_circuit_bytes,
            ..libp2p::relay::Config::default()
        }
    }
}

/// Most connections a node holds (R-SEC-5): a peer cannot make it spend
/// more than these on connections, however many identities it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCaps {
    /// Established connections in all.
    pub total: u32,
    /// Established connections to one peer.
    pub per_peer: u32,
    /// Connections being set up, each way.
    pub pending: u32,
}

impl Default for ConnectionCaps {
    fn default() -> ConnectionCaps {
        ConnectionCaps {
            total: 512,
            per_peer: 4,
            pending: 128,
        }
    }
}

impl P2pConfig {
    /// A configuration with no listen or bootstrap addresses, Kademlia on,
    /// mDNS off, and channels of 256 entries.
    pub fn new(secret: [u8; 32]) -> P2pConfig {
        P2pConfig {
            secret,
            listen: Vec::new(),
            bootstrap: Vec::new(),
            mdns: false,
            kademlia: true,
            command_buffer: 256,
            event_buffer: 256,
            ping_interval: Duration::from_secs(2),
            silent_after: Some(Duration::from_secs(10)),
            listen_fallback: false,
            announce: Vec::new(),
            private_networks: Vec::new(),
            relay_server: None,
            upnp: false,
            connection_caps: ConnectionCaps::default(),
        }
    }

    /// Whether every listen address is loopback: a local testnet, where
    /// loopback addresses are the ones to share and dial.
    pub fn loopback_only(&self) -> bool {
        super::transport::loopback_only(&self.listen)
    }

    /// Sets how often connections are pinged and after how long without a
    /// pong one is closed (see [`P2pConfig::silent_after`]).
    pub fn liveness(
        mut self,
        ping_interval: Duration,
        silent_after: Option<Duration>,
    ) -> P2pConfig {
        self.ping_interval = ping_interval;
        self.silent_after = silent_after;
        self
    }

    /// Adds a listen address.
    pub fn listen(mut self, addr: Multiaddr) -> P2pConfig {
        self.listen.push(addr);
        self
    }

    /// Adds a bootstrap peer address (ending in `/p2p/<peer id>`).
    pub fn bootstrap(mut self, addr: Multiaddr) -> P2pConfig {
        self.bootstrap.push(addr);
        self
    }

    /// Turns mDNS discovery on or off.
    pub fn mdns(mut self, on: bool) -> P2pConfig {
        self.mdns = on;
        self
    }

    /// Turns Kademlia on or off.
    pub fn kademlia(mut self, on: bool) -> P2pConfig {
        self.kademlia = on;
        self
    }
}

impl std::fmt::Debug for P2pConfig {
    // The secret stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2pConfig")
            .field("listen", &self.listen)
            .field("bootstrap", &self.bootstrap)
            .field("mdns", &self.mdns)
            .field("kademlia", &self.kademlia)
            .field("command_buffer", &self.command_buffer)
            .field("event_buffer", &self.event_buffer)
            .field("ping_interval", &self.ping_interval)
            .field("silent_after", &self.silent_after)
            .field("announce", &self.announce)
            .field("relay_server", &self.relay_server)
            .field("upnp", &self.upnp)
            .field("connection_caps", &self.connection_caps)
            .finish_non_exhaustive()
    }
}
