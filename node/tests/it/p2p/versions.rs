//! Protocol evolution in the network layer (issue 14, R-P2P-3): messages
//! from a node of a newer protocol version are read for what this node
//! knows, or dropped unread, and never count against the sender; the same
//! bytes from a node claiming this node's version are malformed and
//! penalised, as garbage is.

use std::collections::BTreeMap;

use protocol::id::to_canonical;
use protocol::messages::PROTOCOL_VERSION;
use serde::Serialize;

use super::*;

const NEWER: u32 = PROTOCOL_VERSION + 1;

/// `{"m": <message>, "v": <version>}`: a message as a node of `version`
/// sends it.
fn at_version<M: Serialize>(version: u32, message: &M) -> Vec<u8> {
    #[derive(Serialize)]
    struct Versioned<'a, M> {
        v: u32,
        m: &'a M,
    }
    to_canonical(&Versioned {
        v: version,
        m: message,
    })
    .unwrap()
}

fn node_info(node: &Node, seq: u64) -> NodeInfo {
    NodeInfo {
        node: node.id(),
        engines: vec!["wasm".into()],
        capacity: 2,
        running: 0,
        accept_network: NetworkMode::None,
        allowlist_digest: Some([7; 32]),
        api_addrs: vec!["127.0.0.1:1234".into()],
        p2p_addrs: vec![],
        data_addrs: vec![],
        relay_urls: vec![],
        resources: Default::default(),
        seq,
    }
}

/// `info` as a newer version writes it, with a field this one does not
/// know, signed by `key` and sent at `version`.
fn with_unknown_field(version: u32, key: &NodeKey, info: &NodeInfo) -> Vec<u8> {
    #[derive(Serialize)]
    struct NewerNodeInfo<'a> {
        #[serde(flatten)]
        info: &'a NodeInfo,
        gpus: Vec<String>,
    }
    let payload = to_canonical(&NewerNodeInfo {
        info,
        gpus: vec!["h100".into()],
    })
    .unwrap();
    let signed = SignedGossip::from(Signed::<NodeInfo>::sign_payload(key, payload));
    at_version(version, &signed)
}

/// A message of a kind no version of this node knows, well signed by `key`.
fn unknown_kind(version: u32, key: &NodeKey) -> Vec<u8> {
    let envelope = Signed::<Bid>::sign_payload(key, vec![0xa0]);
    at_version(version, &BTreeMap::from([("Offer", envelope)]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_nodes_are_read_or_ignored_never_penalised() {
    bounded(async {
        // N runs a newer version, G claims B's version but sends what B
        // cannot read; both meet only B.
        let mut b = start(71, |c| c.kademlia(false)).await;
        let n = start(72, |c| c.kademlia(false).bootstrap(addr(&b))).await;
        let g = start(73, |c| c.kademlia(false).bootstrap(addr(&b))).await;
        b.connected_to(&[n.id(), g.id()]).await;
        settle().await;

        // Five node infos with a field B does not know: each verifies, the
        // field ignored.
        for seq in 1..=5 {
            let info = node_info(&n, seq);
            let bytes = with_unknown_field(NEWER, &n.key, &info);
            retry_while_unsubscribed(|| n.p2p.publish_raw_for_tests(NODES_TOPIC, bytes.clone()))
                .await;
            let event = b
                .expect("N's node info", |e| {
                    matches!(e, P2pEvent::Gossip { .. } | P2pEvent::Rejected { .. })
                })
                .await;
            assert!(
                matches!(&event, P2pEvent::Gossip { from, message: GossipMessage::NodeInfo(got) }
                    if *from == n.id() && *got == info),
                "{event:?}"
            );
        }

        // Kinds B does not know at all: dropped, on both transports,
        // without a word against N. The direct one is answered with why.
        for _ in 0..5 {
            retry_while_unsubscribed(|| {
                n.p2p
                    .publish_raw_for_tests(JOBS_TOPIC, unknown_kind(NEWER, &n.key))
            })
            .await;
            let err = n
                .p2p
                .send_raw_for_tests(b.id(), unknown_kind(NEWER, &n.key))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, P2pError::Rejected { reason, .. }
                    if reason.contains(&format!("protocol version {NEWER}"))),
                "{err}"
            );
        }
        // N's next announcement is the next thing B hears of it: nothing
        // was rejected in between.
        let job = announce(&n.key, 1);
        n.publish(&Gossip::from(job.sign(&n.key).unwrap())).await;
        let event = b
            .expect("N's announcement", |e| {
                matches!(e, P2pEvent::Gossip { .. } | P2pEvent::Rejected { .. })
            })
            .await;
        assert!(is_announce_from(&event, n.id(), &job), "{event:?}");
        let score = b
            .p2p
            .peer_score(n.id())
            .await
            .unwrap()
            .expect("N is scored");
        assert!(
            score >= 0.0,
            "N's score after ten unreadable messages: {score}"
        );

        // The same bytes from G, which claims B's version: malformed,
        // counted against G.
        let cases = [
            unknown_kind(PROTOCOL_VERSION, &g.key),
            with_unknown_field(PROTOCOL_VERSION, &g.key, &node_info(&g, 1)),
            b"\x00\xffnot cbor".to_vec(),
        ];
        for bytes in cases {
            retry_while_unsubscribed(|| g.p2p.publish_raw_for_tests(NODES_TOPIC, bytes.clone()))
                .await;
            let event = b
                .expect("G's rejection", |e| {
                    matches!(e, P2pEvent::Gossip { .. } | P2pEvent::Rejected { .. })
                })
                .await;
            assert!(
                matches!(&event, P2pEvent::Rejected { from, reason }
                    if *from == g.id() && reason.penalises()),
                "{event:?}"
            );
        }
        let err = g
            .p2p
            .send_raw_for_tests(b.id(), unknown_kind(PROTOCOL_VERSION, &g.key))
            .await
            .unwrap_err();
        assert!(matches!(err, P2pError::Rejected { .. }), "{err}");
        let score = b
            .p2p
            .peer_score(g.id())
            .await
            .unwrap()
            .expect("G is scored");
        assert!(
            score < -80.0,
            "G is graylisted after four rejections: {score}"
        );
    })
    .await;
}
