//! `GET /api/v1/node`: the node, its addresses, policy and peers.

use std::net::SocketAddr;

use multiaddr::{Multiaddr, PeerId};
use protocol::id::NodeId;
use protocol::job::NetworkMode;
use protocol::resources::Offer;
use serde::{Deserialize, Serialize};

use crate::address::DataAddr;

/// The node as `skrei node info` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub node_id: NodeId,
    /// Its libp2p listen addresses (without `/p2p/`; see
    /// [`NodeInfo::bootstrap_addrs`]).
    pub p2p_addrs: Vec<Multiaddr>,
    /// Whether peers can dial it directly, as AutoNAT found.
    #[serde(default)]
    pub reachability: Reachability,
    /// The addresses peers confirmed they can dial it at (with `/p2p/`):
    /// what it announces, with its relayed ones.
    #[serde(default)]
    pub external_addrs: Vec<Multiaddr>,
    /// Its addresses through relays, while it is behind NAT.
    #[serde(default)]
    pub relayed_addrs: Vec<Multiaddr>,
    /// Where its API listens.
    pub api_addr: SocketAddr,
    /// Where its blob store is reached (`skrei get --from` takes it).
    pub data_addr: DataAddr,
    /// The engines it offers (`wasm`, `docker`).
    pub engines: Vec<String>,
    /// Executions at once.
    pub capacity: u32,
    /// Executions running now.
    pub running: u32,
    /// What it offers one task at most (`--resources`), in job-file units.
    #[serde(default)]
    pub resources: Offer,
    /// What of that is free now (open bids and running executions hold
    /// the rest).
    #[serde(default)]
    pub resources_free: Offer,
    /// Its labels (`--label`), which jobs' Constraints are checked against.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Its link's download rate as it estimates it, bits per second
    /// (`--link`, then its fetches); none while unknown.
    #[serde(default)]
    pub link_down_bps: Option<u64>,
    /// ... and its upload rate.
    #[serde(default)]
    pub link_up_bps: Option<u64>,
    /// The registries it pulls missing images from (`--pull-from`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_from: Vec<String>,
    /// Bytes of the images it pulled and keeps, and the budget they are
    /// kept to (`--image-cache`).
    #[serde(default)]
    pub images_pulled_bytes: u64,
    #[serde(default)]
    pub image_cache_bytes: u64,
    /// The S3 endpoint and region its S3 inputs and `s3` publisher use
    /// (`--s3-endpoint`); none without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Endpoint>,
    /// The folders local inputs may come from (`--local-inputs`), and
    /// those jobs may write to (`DIR:rw`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_inputs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_inputs_rw: Vec<String>,
    /// The highest network mode it accepts: `none`, `http` or `full`.
    #[serde(with = "network_flag")]
    pub accept_network: NetworkMode,
    /// Its `--allowlist` file, if it has one.
    pub allowlist: Option<String>,
    /// The peers it keeps (a bounded number: connected and recently heard
    /// ones are kept).
    pub peers: Vec<Peer>,
    /// Addresses no job on this node may reach (R-NET-7): its own, and
    /// those its peers advertise where they were seen (capped).
    pub job_deny: Vec<SocketAddr>,
}

impl NodeInfo {
    /// The listen addresses as other nodes' `--bootstrap` takes them:
    /// ending in `/p2p/<node id>`.
    pub fn bootstrap_addrs(&self) -> Vec<Multiaddr> {
        let peer = PeerId::from_bytes(&self.node_id.to_peer_id_bytes());
        self.p2p_addrs
            .iter()
            .map(|addr| match &peer {
                Ok(peer) => addr.clone().with_p2p(*peer).unwrap_or_else(|same| same),
                Err(_) => addr.clone(),
            })
            .collect()
    }

    /// How many peers are connected now.
    pub fn connected_peers(&self) -> usize {
        self.peers.iter().filter(|p| p.connected).count()
    }

    /// The peer with this id, if the node keeps it.
    pub fn peer(&self, node_id: &NodeId) -> Option<&Peer> {
        self.peers.iter().find(|p| p.node_id == *node_id)
    }
}

/// Whether peers can dial a node directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    /// A dial-back to one of its addresses succeeded, or its operator
    /// announced an address.
    Public,
    /// Dial-backs failed: behind NAT or a firewall, reached through relays.
    Private,
    /// Not tested yet.
    #[default]
    Unknown,
}

impl std::str::FromStr for Reachability {
    type Err = String;

    fn from_str(s: &str) -> Result<Reachability, String> {
        match s {
            "public" => Ok(Reachability::Public),
            "private" => Ok(Reachability::Private),
            "unknown" => Ok(Reachability::Unknown),
            other => Err(format!("{other:?}: not public, private or unknown")),
        }
    }
}

impl std::fmt::Display for Reachability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reachability::Public => "public",
            Reachability::Private => "private",
            Reachability::Unknown => "unknown",
        })
    }
}

/// A node's S3 endpoint: where its S3 inputs and `s3` publisher go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Endpoint {
    pub endpoint: String,
    pub region: String,
}

/// A peer as the node knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub node_id: NodeId,
    pub connected: bool,
    /// The remote address of each open connection to it: a relayed one
    /// has a `/p2p-circuit` hop; a direct one after hole punching has none.
    #[serde(default)]
    pub connections: Vec<Multiaddr>,
    /// Its latest node info, once one arrived.
    pub info: Option<PeerInfo>,
}

/// What a peer last said of itself (its gossiped node info), with its
/// addresses as values. Addresses that do not parse are left out: a peer
/// may send anything, and one bad entry should not hide the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub node: NodeId,
    pub engines: Vec<String>,
    pub capacity: u32,
    pub running: u32,
    /// What it offers one task at most, as it gossips it.
    #[serde(default, skip_serializing_if = "Offer::is_empty")]
    pub resources: Offer,
    /// As the peer gossips it (`None`, `HTTP`, `Full`).
    pub accept_network: NetworkMode,
    /// A digest of its allowlist, when it accepts `http` jobs: equal
    /// digests, equal allowlists.
    pub allowlist_digest: Option<[u8; 32]>,
    pub api_addrs: Vec<SocketAddr>,
    pub p2p_addrs: Vec<Multiaddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_addrs: Vec<DataAddr>,
    /// The iroh relays it runs, as it gossips them (used only when it is a
    /// bootstrap peer of this node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relay_urls: Vec<String>,
    /// Grows with each of the peer's node infos: the highest one is kept.
    pub seq: u64,
}

impl From<&protocol::messages::NodeInfo> for PeerInfo {
    fn from(info: &protocol::messages::NodeInfo) -> PeerInfo {
        PeerInfo {
            node: info.node,
            engines: info.engines.clone(),
            capacity: info.capacity,
            running: info.running,
            accept_network: info.accept_network,
            allowlist_digest: info.allowlist_digest,
            api_addrs: info
                .api_addrs
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect(),
            p2p_addrs: info
                .p2p_addrs
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect(),
            data_addrs: DataAddr::parse_all(&info.data_addrs),
            relay_urls: info.relay_urls.clone(),
            resources: info.resources,
            seq: info.seq,
        }
    }
}

/// A network mode as flags write it (`none`, `http`, `full`), the API's
/// form since its first version.
pub(crate) mod network_flag {
    use protocol::job::NetworkMode;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(mode: &NetworkMode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(mode.as_flag())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NetworkMode, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        protocol::policy::parse_accept_network(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{DATA_ADDR, node_id, round_trips};

    fn gossiped(p2p: &[&str], api: &[&str], data: &[&str]) -> protocol::messages::NodeInfo {
        protocol::messages::NodeInfo {
            node: node_id(2),
            engines: vec!["wasm".into()],
            capacity: 2,
            running: 1,
            accept_network: NetworkMode::Http,
            allowlist_digest: Some([9; 32]),
            api_addrs: api.iter().map(|a| a.to_string()).collect(),
            p2p_addrs: p2p.iter().map(|a| a.to_string()).collect(),
            data_addrs: data.iter().map(|a| a.to_string()).collect(),
            relay_urls: vec![],
            resources: Default::default(),
            seq: 12,
        }
    }

    fn info() -> NodeInfo {
        let peer = gossiped(
            &["/ip4/127.0.0.1/tcp/4002"],
            &["127.0.0.1:1235"],
            &[DATA_ADDR],
        );
        NodeInfo {
            node_id: node_id(1),
            p2p_addrs: vec!["/ip4/127.0.0.1/tcp/4001".parse().unwrap()],
            api_addr: "127.0.0.1:1234".parse().unwrap(),
            reachability: Reachability::Private,
            external_addrs: Vec::new(),
            relayed_addrs: Vec::new(),
            data_addr: DATA_ADDR.parse().unwrap(),
            engines: vec!["wasm".into(), "docker".into()],
            capacity: 4,
            running: 0,
            resources: Offer {
                cpu: Some(protocol::job::MilliCpu(1500)),
                memory: Some(protocol::job::ByteSize(8 << 30)),
                disk: None,
            },
            resources_free: Offer {
                cpu: Some(protocol::job::MilliCpu(500)),
                memory: Some(protocol::job::ByteSize(6 << 30)),
                disk: None,
            },
            labels: [("region".to_string(), "eu".to_string())].into(),
            link_down_bps: Some(100_000_000),
            link_up_bps: None,
            pull_from: vec!["docker.io".into()],
            images_pulled_bytes: 1 << 20,
            image_cache_bytes: 20 << 30,
            s3: Some(S3Endpoint {
                endpoint: "http://127.0.0.1:9000".into(),
                region: "us-east-1".into(),
            }),
            local_inputs: vec!["/srv/data".into(), "/srv/work".into()],
            local_inputs_rw: vec!["/srv/work".into()],
            accept_network: NetworkMode::None,
            allowlist: Some("/etc/skrei/allow.txt".into()),
            peers: vec![
                Peer {
                    node_id: node_id(2),
                    connected: true,
                    connections: Vec::new(),
                    info: Some(PeerInfo::from(&peer)),
                },
                Peer {
                    node_id: node_id(3),
                    connected: false,
                    connections: Vec::new(),
                    info: None,
                },
            ],
            job_deny: vec!["127.0.0.1:1234".parse().unwrap()],
        }
    }

    #[test]
    fn node_info_round_trips_and_reads_with_unknown_fields() {
        let json = round_trips(
            &info(),
            &["", "/data_addr", "/peers/0", "/peers/0/info", "/peers/1"],
        );
        // The wire: addresses as text, the blob store's address as an
        // object (not a string holding JSON), modes as before.
        assert_eq!(json["p2p_addrs"][0], "/ip4/127.0.0.1/tcp/4001");
        assert_eq!(json["api_addr"], "127.0.0.1:1234");
        assert_eq!(json["job_deny"][0], "127.0.0.1:1234");
        assert_eq!(json["data_addr"]["addrs"][0]["Ip"], "127.0.0.1:4001");
        assert_eq!(json["accept_network"], "none");
        assert_eq!(json["peers"][0]["node_id"], node_id(2).to_string());
        let peer = &json["peers"][0]["info"];
        assert_eq!(peer["accept_network"], "HTTP");
        assert_eq!(peer["data_addrs"][0]["id"], json["data_addr"]["id"]);
        assert_eq!(peer["seq"], 12);
        assert!(json["peers"][1]["info"].is_null());
    }

    #[test]
    fn a_peers_info_keeps_the_gossiped_shape_and_drops_addresses_that_do_not_parse() {
        let good = gossiped(&["/ip4/10.0.0.1/tcp/1"], &["10.0.0.1:2"], &[DATA_ADDR]);
        // Besides the addresses, the same JSON as the gossiped message.
        let mut expected = serde_json::to_value(&good).unwrap();
        expected["data_addrs"] =
            serde_json::json!([serde_json::from_str::<serde_json::Value>(DATA_ADDR).unwrap()]);
        assert_eq!(
            serde_json::to_value(PeerInfo::from(&good)).unwrap(),
            expected
        );

        let bad = gossiped(
            &["not a multiaddr", "/ip4/10.0.0.1/tcp/1"],
            &["10.0.0.1", "10.0.0.1:2"],
            &["{}", DATA_ADDR],
        );
        let view = PeerInfo::from(&bad);
        assert_eq!(
            view.p2p_addrs,
            ["/ip4/10.0.0.1/tcp/1".parse::<Multiaddr>().unwrap()]
        );
        assert_eq!(
            view.api_addrs,
            ["10.0.0.1:2".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(view.data_addrs, [DATA_ADDR.parse::<DataAddr>().unwrap()]);
    }

    #[test]
    fn bootstrap_addresses_end_in_the_node_id_once() {
        let mut info = info();
        let id = info.node_id;
        let with_id: Multiaddr = format!("/ip4/127.0.0.1/tcp/4003/p2p/{id}").parse().unwrap();
        info.p2p_addrs.push(with_id.clone());
        assert_eq!(
            info.bootstrap_addrs(),
            [
                format!("/ip4/127.0.0.1/tcp/4001/p2p/{id}")
                    .parse::<Multiaddr>()
                    .unwrap(),
                with_id
            ]
        );
        assert_eq!(info.connected_peers(), 1);
        assert!(info.peer(&node_id(3)).is_some_and(|p| !p.connected));
        assert!(info.peer(&node_id(4)).is_none());
    }

    #[test]
    fn an_unknown_network_mode_is_refused() {
        let mut json = serde_json::to_value(info()).unwrap();
        json["accept_network"] = "sometimes".into();
        assert!(serde_json::from_value::<NodeInfo>(json).is_err());
    }
}
