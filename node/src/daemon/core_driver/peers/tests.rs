//! The peer table fed what the network layer would hand it: node infos
//! signed, encoded and verified as gossip (R-SEC-5, R-NET-7, R-P2P-3).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use protocol::id::{NodeId, NodeKey};
use protocol::job::NetworkMode;
use protocol::messages::{Gossip, GossipMessage, Message, NodeInfo};

use super::*;
use crate::p2p::validate::{self, NODES_TOPIC};

fn key(n: u32) -> NodeKey {
    let mut secret = [7u8; 32];
    secret[..4].copy_from_slice(&n.to_le_bytes());
    NodeKey::from_secret_bytes(secret)
}

fn info(key: &NodeKey, seq: u64, api: &[&str], p2p: &[&str]) -> NodeInfo {
    NodeInfo {
        node: key.node_id(),
        engines: vec!["wasm".into()],
        capacity: 4,
        running: 0,
        accept_network: NetworkMode::None,
        allowlist_digest: None,
        api_addrs: api.iter().map(|a| a.to_string()).collect(),
        p2p_addrs: p2p.iter().map(|a| a.to_string()).collect(),
        data_addrs: vec![format!("data-{seq}")],
        relay_urls: vec![],
        resources: Default::default(),
        seq,
    }
}

/// As it arrives: signed, encoded, then decoded and verified by the network
/// layer's validation, which names the signer.
fn received(key: &NodeKey, info: &NodeInfo) -> (NodeId, NodeInfo) {
    let bytes = Gossip::from(info.sign(key).unwrap()).encode().unwrap();
    let source = validate::peer_id(&key.node_id());
    match validate::gossip(NODES_TOPIC, Some(&source), &bytes).unwrap() {
        (from, GossipMessage::NodeInfo(info)) => (from, info),
        other => panic!("not a node info: {other:?}"),
    }
}

fn never_local(_: IpAddr) -> bool {
    false
}

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[test]
fn r_sec_5_many_signers_keep_the_table_bounded_and_connected_peers_in() {
    let mut peers = Peers::new(MAX_PEERS);
    // Ten peers this node is connected to, heard from first.
    for n in 0..10 {
        let k = key(n);
        peers.connected(k.node_id(), Some(LOOPBACK));
        let (from, i) = received(&k, &info(&k, 1, &[], &[]));
        assert_eq!(peers.node_info(from, &i), Some(vec![]));
    }
    // Then node infos from thousands of new signers (keys are free).
    let mut evicted = Vec::new();
    for n in 10..(MAX_PEERS as u32 * 3) {
        let k = key(n);
        let (from, i) = received(&k, &info(&k, 1, &[], &[]));
        evicted.extend(peers.node_info(from, &i).expect("a new signer finds room"));
        assert!(peers.len() <= MAX_PEERS);
    }
    assert_eq!(peers.len(), MAX_PEERS);
    assert_eq!(evicted.len(), MAX_PEERS * 3 - 10 - MAX_PEERS + 10);
    for n in 0..10 {
        let peer = peers.get(&key(n).node_id()).expect("connected peers stay");
        assert!(peer.connected && peer.info.is_some());
    }
    // Of the others, the most recently heard stay.
    let newest = key(MAX_PEERS as u32 * 3 - 1).node_id();
    assert!(peers.get(&newest).is_some());
    assert!(peers.get(&key(10).node_id()).is_none());
    assert!(evicted.contains(&key(10).node_id()));
}

#[test]
fn r_sec_5_a_table_of_connected_peers_takes_no_unconnected_newcomer() {
    let mut peers = Peers::new(3);
    for n in 0..3 {
        peers.connected(key(n).node_id(), None);
    }
    let k = key(9);
    let (from, i) = received(&k, &info(&k, 1, &[], &[]));
    assert_eq!(peers.node_info(from, &i), None);
    assert_eq!(peers.len(), 3);
    // A connected newcomer pushes out the least recently heard.
    peers.disconnected(&key(1).node_id());
    assert_eq!(
        peers.connected(key(9).node_id(), None),
        vec![key(1).node_id()]
    );
    assert_eq!(
        peers.connected(key(10).node_id(), None),
        vec![key(0).node_id()]
    );
}

#[test]
fn r_sec_5_replayed_node_infos_change_nothing() {
    let mut peers = Peers::new(MAX_PEERS);
    let k = key(1);
    let (from, newer) = received(&k, &info(&k, 20, &["127.0.0.1:2000"], &[]));
    let (_, older) = received(&k, &info(&k, 10, &["127.0.0.1:1000"], &[]));
    let (_, same_seq) = received(&k, &info(&k, 20, &["127.0.0.1:3000"], &[]));
    peers.connected(from, Some(LOOPBACK));
    assert!(peers.node_info(from, &newer).is_some());
    let deny = peers.deny_set(never_local);
    for replay in [&older, &same_seq, &newer] {
        assert_eq!(peers.node_info(from, replay), None);
        assert_eq!(peers.get(&from).unwrap().info.as_ref(), Some(&newer));
        assert_eq!(peers.deny_set(never_local), deny);
    }
    assert_eq!(deny, vec!["127.0.0.1:2000".parse().unwrap()]);
    // A node info about another node, even validly signed, is not taken.
    let other = key(2);
    assert_eq!(peers.node_info(other.node_id(), &newer), None);
}

#[test]
fn r_net_7_only_addresses_a_peer_was_seen_using_are_denied() {
    let mut peers = Peers::new(MAX_PEERS);
    let k = key(1);
    let seen: IpAddr = "198.51.100.7".parse().unwrap();
    peers.connected(k.node_id(), Some(seen));
    let (from, i) = received(
        &k,
        &info(
            &k,
            1,
            // Its API on loopback (its own loopback, not ours), a foreign
            // host's HTTPS port, and its real address.
            &["127.0.0.1:1234", "203.0.113.9:443", "198.51.100.7:1234"],
            &[
                "/ip4/198.51.100.7/tcp/4001",
                "/ip4/192.0.2.1/tcp/443",
                "/ip6/::ffff:198.51.100.7/tcp/4002",
            ],
        ),
    );
    peers.node_info(from, &i);
    let deny = peers.deny_set(|_| true);
    let want: Vec<SocketAddr> = [
        "198.51.100.7:1234",
        "198.51.100.7:4001",
        "[::ffff:198.51.100.7]:4002",
    ]
    .iter()
    .map(|a| a.parse().unwrap())
    .collect();
    assert_eq!(deny, want);

    // A peer on this host (seen on loopback) may name this host's other
    // addresses, e.g. a bridge's, but still no foreign one.
    let local = key(2);
    peers.connected(local.node_id(), Some(LOOPBACK));
    let (from, i) = received(
        &local,
        &info(
            &local,
            1,
            &["127.0.0.1:1235"],
            &["/ip4/172.17.0.1/tcp/4003", "/ip4/203.0.113.9/tcp/443"],
        ),
    );
    peers.node_info(from, &i);
    let bridge: IpAddr = "172.17.0.1".parse().unwrap();
    let deny = peers.deny_set(|ip| ip == bridge || ip.is_loopback());
    assert!(deny.contains(&"127.0.0.1:1235".parse().unwrap()));
    assert!(deny.contains(&"172.17.0.1:4003".parse().unwrap()));
    assert!(
        !deny
            .iter()
            .any(|a| a.ip() == "203.0.113.9".parse::<IpAddr>().unwrap())
    );

    // A peer never connected puts nothing in.
    let far = key(3);
    let (from, i) = received(&far, &info(&far, 1, &["203.0.113.10:443"], &[]));
    peers.node_info(from, &i);
    let deny = peers.deny_set(|ip| ip == bridge || ip.is_loopback());
    assert!(!deny.iter().any(|a| a.port() == 443), "{deny:?}");
}

#[test]
fn r_sec_5_the_deny_set_is_capped_per_peer_and_in_all() {
    let mut peers = Peers::new(MAX_PEERS);
    let addrs: Vec<String> = (0..16).map(|p| format!("127.0.0.1:{}", 1000 + p)).collect();
    let multi: Vec<String> = (0..16)
        .map(|p| format!("/ip4/127.0.0.1/tcp/{}", 2000 + p))
        .collect();
    let addrs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let multi: Vec<&str> = multi.iter().map(String::as_str).collect();
    let k = key(1);
    peers.connected(k.node_id(), Some(LOOPBACK));
    let (from, i) = received(&k, &info(&k, 1, &addrs, &multi));
    peers.node_info(from, &i);
    assert_eq!(peers.deny_set(never_local).len(), MAX_DENY_PER_PEER);

    // Many peers, each with its own addresses: MAX_DENY in all.
    let mut peers = Peers::new(MAX_PEERS);
    for n in 0..(MAX_DENY / MAX_DENY_PER_PEER + 10) as u32 {
        let k = key(n);
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
        peers.connected(k.node_id(), Some(ip));
        let api: Vec<String> = (0..16)
            .map(|p| SocketAddr::new(ip, 1000 + p).to_string())
            .collect();
        let api: Vec<&str> = api.iter().map(String::as_str).collect();
        let (from, i) = received(&k, &info(&k, 1, &api, &[]));
        peers.node_info(from, &i);
    }
    assert_eq!(peers.deny_set(never_local).len(), MAX_DENY);
}

#[test]
fn r_net_7_is_local_ip_knows_this_hosts_addresses() {
    assert!(is_local_ip(LOOPBACK));
    // TEST-NET-3: on no interface of a test machine.
    assert!(!is_local_ip("203.0.113.77".parse().unwrap()));
}
