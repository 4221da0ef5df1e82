//! What this node says of itself: its signed node info, its view for the
//! API (`skrei node info`), and the control plane no job may reach.

use std::net::SocketAddr;

use protocol::messages::{Gossip, Message, NodeInfo};
use serde::Serialize;

use super::peers::is_local_ip;
use super::{CoreDriver, now_ms};

/// The node as the API shows it (`skrei node info`).
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub node_id: String,
    pub p2p_addrs: Vec<String>,
    /// `public`, `private` or `unknown` (AutoNAT).
    pub reachability: String,
    /// Confirmed external addresses, and addresses through relays.
    pub external_addrs: Vec<String>,
    pub relayed_addrs: Vec<String>,
    pub api_addr: String,
    pub data_addr: String,
    pub engines: Vec<String>,
    pub capacity: u32,
    pub running: u32,
    pub resources: protocol::resources::Offer,
    pub resources_free: protocol::resources::Offer,
    /// The node's labels (`--label`).
    pub labels: std::collections::BTreeMap<String, String>,
    /// The link's rates as the node estimates them, bits per second.
    pub link_down_bps: Option<u64>,
    pub link_up_bps: Option<u64>,
    /// `--pull-from`, and the pulled images against `--image-cache`.
    pub pull_from: Vec<String>,
    pub images_pulled_bytes: u64,
    /// Bytes this node's jobs moved through their egress since it started.
    pub egress_bytes: u64,
    pub image_cache_bytes: u64,
    /// `--s3-endpoint` and its region.
    pub s3: Option<(String, String)>,
    /// `--local-inputs`, and those of them marked `:rw`.
    pub local_inputs: Vec<String>,
    pub local_inputs_rw: Vec<String>,
    pub accept_network: String,
    pub allowlist: Option<String>,
    /// At most `MAX_PEERS`, connected and recently heard ones kept.
    pub peers: Vec<PeerView>,
    /// Addresses no job on this node may reach (R-NET-7): its own, and
    /// those its peers advertise where they were seen (capped).
    pub job_deny: Vec<String>,
}

/// A peer as this node knows it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    pub node_id: String,
    pub connected: bool,
    /// The remote address of each open connection to it.
    pub connections: Vec<String>,
    pub info: Option<NodeInfo>,
}

impl CoreDriver {
    pub(super) fn node_info(&mut self) -> NodeInfo {
        self.info_seq += 1;
        self.refresh_data_addr();
        let compute = self.core.compute();
        let policy = compute.policy();
        NodeInfo {
            node: self.me,
            engines: self.config.engines.clone(),
            capacity: compute.config().capacity,
            running: compute.running(),
            resources: compute.config().resources.into(),
            accept_network: policy.accept(),
            allowlist_digest: policy.allowlist().map(|a| a.digest()),
            // The API listens on loopback: only peers on this host (a
            // local testnet) need it for their deny sets (R-NET-7), and
            // private addresses are not told to the wide network.
            api_addrs: if self.config.loopback_only() {
                vec![self.api_addr.to_string()]
            } else {
                Vec::new()
            },
            // Honest addresses: confirmed external and relayed ones only.
            p2p_addrs: self
                .p2p
                .announced_addrs()
                .iter()
                .map(|a| a.to_string())
                .collect(),
            data_addrs: vec![self.data_addr.clone()],
            relay_urls: self
                .config
                .iroh_relay_server
                .iter()
                .map(|r| r.url.to_string())
                .collect(),
            seq: now_ms().max(self.info_seq),
        }
    }

    pub(super) fn publish_node_info(&mut self) {
        let info = self.node_info();
        match info.sign(&self.key) {
            Ok(signed) => {
                let p2p = self.p2p.clone();
                tokio::spawn(async move {
                    if let Err(e) = p2p.publish(&Gossip::from(signed)).await {
                        tracing::debug!("node info not published: {e}");
                    }
                });
            }
            Err(e) => tracing::error!("signing node info: {e}"),
        }
    }

    /// R-NET-7: every API and libp2p address of this node and of the
    /// peers it heard from, which no job may reach.
    pub(super) fn control_plane(&self) -> Vec<SocketAddr> {
        let mut addrs = vec![self.api_addr];
        addrs.extend(self.p2p.listen_addrs().iter().filter_map(socket_addr));
        // Only where each peer was seen: see `peers`.
        addrs.extend(self.peers.deny_set(is_local_ip));
        addrs.sort();
        addrs.dedup();
        addrs
    }

    pub(super) fn view(&self) -> NodeView {
        let compute = self.core.compute();
        let policy = compute.policy();
        NodeView {
            node_id: self.me.to_string(),
            p2p_addrs: self
                .p2p
                .listen_addrs()
                .iter()
                .map(|a| a.to_string())
                .collect(),
            reachability: self.p2p.reachability().to_string(),
            external_addrs: self
                .p2p
                .external_addrs()
                .iter()
                .map(|a| a.to_string())
                .collect(),
            relayed_addrs: self
                .p2p
                .relayed_addrs()
                .iter()
                .map(|a| a.to_string())
                .collect(),
            api_addr: self.api_addr.to_string(),
            data_addr: self.data_addr.clone(),
            engines: self.config.engines.clone(),
            capacity: compute.config().capacity,
            running: compute.running(),
            resources: compute.config().resources.into(),
            resources_free: compute.free().into(),
            labels: compute.config().labels.clone(),
            link_down_bps: compute.link().down.bps(),
            link_up_bps: compute.link().up.bps(),
            pull_from: compute
                .config()
                .pull
                .registries()
                .iter()
                .map(ToString::to_string)
                .collect(),
            egress_bytes: self
                .exec
                .egress_bytes
                .load(std::sync::atomic::Ordering::Relaxed),
            images_pulled_bytes: self
                .db
                .pulled_images()
                .map_or(0, |images| images.iter().map(|i| i.bytes).sum()),
            image_cache_bytes: self.config.image_cache,
            s3: self
                .config
                .s3
                .as_ref()
                .map(|s3| (s3.endpoint.clone(), s3.region.clone())),
            local_inputs: compute.config().local_inputs.clone(),
            local_inputs_rw: compute.config().local_inputs_rw.clone(),
            accept_network: policy.accept().to_string(),
            allowlist: self
                .config
                .allowlist
                .as_ref()
                .map(|p| p.display().to_string()),
            peers: self
                .peers
                .iter()
                .map(|(id, peer)| PeerView {
                    node_id: id.to_string(),
                    connected: peer.connected,
                    connections: self
                        .p2p
                        .connections(id)
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                    info: peer.info.clone(),
                })
                .collect(),
            job_deny: self
                .control_plane()
                .iter()
                .map(ToString::to_string)
                .collect(),
        }
    }
}

/// The IP and TCP/UDP port of a multiaddr such as `/ip4/1.2.3.4/tcp/4001/p2p/...`.
pub(in crate::daemon) fn socket_addr(addr: &libp2p::Multiaddr) -> Option<SocketAddr> {
    use libp2p::multiaddr::Protocol;
    let mut ip = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(port) | Protocol::Udp(port) => {
                return ip.map(|ip| SocketAddr::new(ip, port));
            }
            _ => {}
        }
    }
    None
}
