//! The libp2p protocols a node runs, and how each is configured.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::gossipsub::{
    self, IdentTopic, MessageAuthenticity, PeerScoreParams, PeerScoreThresholds, TopicScoreParams,
    ValidationMode,
};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, autonat, connection_limits, dcutr, identify, kad, mdns, ping, relay, upnp,
};
use prometheus_client::registry::Registry;
use protocol::messages::MAX_GOSSIP_BYTES;

use super::codec::{DIRECT_PROTOCOL, DirectCodec};
use super::validate::{JOBS_TOPIC, NODES_TOPIC};

/// Name of skrei's Kademlia DHT: skrei nodes form their own DHT rather
/// than joining the public IPFS one.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/skrei/kad/1");

/// What identify announces as the protocol version; peers of another
/// version still connect, identify only informs.
const IDENTIFY_PROTOCOL: &str = "/skrei/1";

/// What identify announces as the agent: skrei and its version, so an
/// operator can tell which nodes of a network run what.
fn agent_version() -> String {
    format!("skrei/{}", env!("CARGO_PKG_VERSION"))
}

/// Room for gossipsub's own framing around a message (author, sequence
/// number, signature, key, topic, protobuf heads): a few hundred bytes, with
/// a wide margin. A message over `MAX_GOSSIP_BYTES` but within this margin
/// still arrives, so the application (not the framing) refuses it and the
/// sender is penalised.
const GOSSIP_FRAMING: usize = 64 << 10;

/// How long a direct message waits for its acknowledgement.
pub const DIRECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a pong may take; a late one is a failed ping. The interval and
/// what silence closes a connection are in [`super::P2pConfig`].
const PING_TIMEOUT: Duration = Duration::from_secs(4);

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// First, so that connections over the limits are denied before any
    /// other protocol sees them.
    pub limits: connection_limits::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub gossipsub: gossipsub::Behaviour,
    pub direct: request_response::Behaviour<DirectCodec>,
    /// Tests this node's candidate addresses with peers' help: confirmed
    /// ones become its external addresses.
    pub autonat: autonat::v2::client::Behaviour,
    /// Tests other nodes' addresses for them (dials guarded like any other).
    pub autonat_server: autonat::v2::server::Behaviour,
    /// Circuit relay v2 server (`--relay-server`).
    pub relay_server: Toggle<relay::Behaviour>,
    /// Reservations on relays and circuits through them.
    pub relay: relay::client::Behaviour,
    /// Upgrades a relayed connection to a direct one (hole punching).
    pub dcutr: dcutr::Behaviour,
    /// Port mapping on the home router (`--upnp`).
    pub upnp: Toggle<upnp::tokio::Behaviour>,
}

/// What [`Behaviour::new`] needs besides the key.
pub struct BehaviourConfig {
    pub kademlia: bool,
    /// Kademlia answers queries from the start: on loopback or a LAN no
    /// external address is ever confirmed, and a DHT of clients finds
    /// nobody. Otherwise its mode follows reachability.
    pub kad_always_server: bool,
    pub mdns: bool,
    pub ping_interval: Duration,
    /// Share listen addresses through identify: only on loopback-only
    /// nodes, where they are the only addresses there are. Elsewhere
    /// peers learn only confirmed external and relayed addresses.
    pub share_listen_addrs: bool,
    pub relay_server: Option<super::RelayLimits>,
    pub upnp: bool,
    pub connection_limits: super::ConnectionCaps,
}

impl Behaviour {
    /// `metrics`: where gossipsub registers its counters (see
    /// [`super::P2pHandle::gossip_metrics`]).
    pub fn new(
        key: &Keypair,
        relay: relay::client::Behaviour,
        config: BehaviourConfig,
        metrics: &mut Registry,
    ) -> Result<Behaviour, String> {
        let BehaviourConfig {
            kademlia,
            kad_always_server: always_server,
            mdns,
            ping_interval,
            share_listen_addrs,
            relay_server,
            upnp,
            connection_limits: caps,
        } = config;
        let peer_id = key.public().to_peer_id();

        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), key.public())
                .with_agent_version(agent_version())
                .with_hide_listen_addrs(!share_listen_addrs)
                .with_push_listen_addr_updates(true),
        );

        // `None`: server once an external address is confirmed (AutoNAT,
        // a relay reservation does not count), client until then.
        let kad = kademlia.then(|| {
            let mut config = kad::Config::new(KAD_PROTOCOL);
            config.set_query_timeout(Duration::from_secs(30));
            let mut kad =
                kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), config);
            kad.set_mode(always_server.then_some(kad::Mode::Server));
            kad
        });

        let mdns = if mdns {
            Some(
                mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                    .map_err(|e| format!("mDNS: {e}"))?,
            )
        } else {
            None
        };

        let config = gossipsub::ConfigBuilder::default()
            .validation_mode(ValidationMode::Strict)
            // Nothing is forwarded until `validate::gossip` has accepted it.
            .validate_messages()
            .max_transmit_size(MAX_GOSSIP_BYTES + GOSSIP_FRAMING)
            .heartbeat_interval(Duration::from_millis(500))
            .build()
            .map_err(|e| format!("gossipsub config: {e}"))?;
        let mut gossipsub =
            gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), config)
                .map_err(|e| format!("gossipsub: {e}"))?
                .with_metrics(metrics, gossipsub::MetricsConfig::default());
        let (params, thresholds) = scoring();
        gossipsub
            .with_peer_score(params, thresholds)
            .map_err(|e| format!("gossipsub peer scoring: {e}"))?;
        for topic in [JOBS_TOPIC, NODES_TOPIC] {
            gossipsub
                .subscribe(&IdentTopic::new(topic))
                .map_err(|e| format!("subscribing to {topic}: {e}"))?;
        }

        let direct = request_response::Behaviour::with_codec(
            DirectCodec,
            [(DIRECT_PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(DIRECT_TIMEOUT),
        );

        let ping = ping::Behaviour::new(
            ping::Config::new()
                .with_interval(ping_interval)
                .with_timeout(PING_TIMEOUT),
        );
        let limits = connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established(Some(caps.total))
                .with_max_established_per_peer(Some(caps.per_peer))
                .with_max_pending_incoming(Some(caps.pending))
                .with_max_pending_outgoing(Some(caps.pending)),
        );
        let relay_server = relay_server.map(|l| relay::Behaviour::new(peer_id, l.config()));
        let upnp = upnp.then(upnp::tokio::Behaviour::default);
        Ok(Behaviour {
            limits,
            identify,
            ping,
            kad: kad.into(),
            mdns: mdns.into(),
            gossipsub,
            direct,
            autonat: autonat::v2::client::Behaviour::default(),
            autonat_server: autonat::v2::server::Behaviour::default(),
            relay_server: relay_server.into(),
            relay,
            dcutr: dcutr::Behaviour::new(peer_id),
            upnp: upnp.into(),
        })
    }
}

/// Peer scoring: only what a peer demonstrably did wrong counts.
///
/// - P4, invalid messages: each message the application rejects adds one to
///   the sender's counter for that topic, and the penalty is the counter
///   squared times -10. One bad message (-10) costs nothing yet; two (-40)
///   stop us gossiping to the peer (`gossip_threshold` -10); three (-90)
///   graylist it (`graylist_threshold` -80): its messages are ignored
///   unread. The counter decays by 1 % a second, so a peer that stops
///   recovers in minutes.
/// - P5, application-specific (weight 10): rejected direct messages, on the
///   same curve (see `Driver::strike`).
/// - No P3 (mesh delivery deficit): jobs are rare, and a quiet mesh must not
///   look like a failing one.
/// - IP colocation (P6): past 8 peers from one IP address, each costs
///   (n - 8)² × -5 (at 10, -20: no more gossip to them), so one machine cannot fill a node's mesh with
///   identities. Loopback is exempt: devstacks run many nodes on it.
fn scoring() -> (PeerScoreParams, PeerScoreThresholds) {
    let topic = TopicScoreParams {
        topic_weight: 1.0,
        // P1 and P2 reward time in mesh and first deliveries a little.
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 10.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: 0.99,
        ..TopicScoreParams::default()
    };
    let params = PeerScoreParams {
        topics: HashMap::from([
            (IdentTopic::new(JOBS_TOPIC).hash(), topic.clone()),
            (IdentTopic::new(NODES_TOPIC).hash(), topic),
        ]),
        app_specific_weight: 10.0,
        ip_colocation_factor_weight: -5.0,
        ip_colocation_factor_threshold: 8.0,
        ip_colocation_factor_whitelist: [
            std::net::IpAddr::from(std::net::Ipv4Addr::LOCALHOST),
            std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ]
        .into_iter()
        .collect(),
        ..PeerScoreParams::default()
    };
    let thresholds = PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        ..PeerScoreThresholds::default()
    };
    (params, thresholds)
}
