//! Gossip abuse against a running node (R-SEC-5, R-P2P-3, R-NET-7): peers
//! played by bare network layers in this process, the node a `skrei node`
//! process.

use std::time::{Duration, Instant};

use protocol::id::{NodeId, NodeKey};
use protocol::job::{JobSpec, NetworkMode};
use protocol::messages::{Announce, DirectMessage, Gossip, Message, NodeInfo};
use serde_json::Value;
use skrei_node::p2p::{P2p, P2pConfig, P2pError, P2pEvent, P2pHandle};
use tokio::sync::mpsc::Receiver;

use crate::harness::{NodeProc, cid_input, hello_job};

/// A module CID for jobs that are only bid on, never run.
const SOME_CID: &str = "bafkr4ifrc5jppcr65avpqrkdorsyvkymybph6crtj3r2fmolpay4dtkbdi";

async fn peer(secret: u8, node: &NodeProc) -> (NodeKey, P2pHandle, Receiver<P2pEvent>) {
    let key = NodeKey::from_secret_bytes([secret; 32]);
    let config = P2pConfig::new(key.to_secret_bytes())
        .listen("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .kademlia(false)
        .bootstrap(node.bootstrap().parse().unwrap());
    let (p2p, events) = P2p::start(config).await.unwrap();
    (key, p2p, events)
}

/// Publishes, retrying until the node's subscription reached the peer.
async fn publish(p2p: &P2pHandle, gossip: &Gossip) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match p2p.publish(gossip).await {
            Ok(()) => return,
            Err(P2pError::NoSubscribers { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("publish: {e}"),
        }
    }
}

fn announce(key: &NodeKey, at_ms: u64) -> Announce {
    let spec = JobSpec::parse(&hello_job("x", SOME_CID, &cid_input(SOME_CID), "")).unwrap();
    Announce::new(spec, key.node_id(), at_ms, vec![]).unwrap()
}

#[test]
fn r_sec_5_one_peers_announcement_flood_does_not_starve_anothers() {
    // Room for what the flooder's rate lets through while its bids are
    // open (3 s), not for the flood: fair shares of slots between
    // requesters are another rule.
    let dirs = tempfile::tempdir().unwrap();
    let rate = protocol::rate::ANNOUNCE_RATE;
    let capacity = (rate.burst + 4 * rate.per_second).to_string();
    // Memory for every slot (each task holds the default 512 MiB): slots,
    // not memory, are what the flood would take.
    let node = NodeProc::start(
        &dirs.path().join("n"),
        &["--capacity", &capacity, "--resources", "memory=1Ti"],
    );
    let node_id: NodeId = node.id().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (flooder, f, _f_events) = peer(61, &node).await;
        let (honest, h, mut h_events) = peer(62, &node).await;
        publish(
            &f,
            &Gossip::from(announce(&flooder, 0).sign(&flooder).unwrap()),
        )
        .await;
        // Every announcement asks every node (no draw).
        for n in 1..1_000 {
            let gossip = Gossip::from(announce(&flooder, n).sign(&flooder).unwrap());
            f.publish(&gossip).await.unwrap();
        }
        let job = announce(&honest, 1);
        publish(&h, &Gossip::from(job.sign(&honest).unwrap())).await;
        let answer = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match h_events.recv().await {
                    Some(P2pEvent::Direct { from, message }) if from == node_id => {
                        break message;
                    }
                    Some(_) => {}
                    None => panic!("the honest peer stopped"),
                }
            }
        })
        .await
        .expect("the node answered the honest peer");
        assert!(
            matches!(&answer, DirectMessage::Bid(bid) if bid.job_id == job.job_id),
            "{answer:?}"
        );
        f.shutdown().await;
        h.shutdown().await;
    });
    // The flood was counted.
    let (status, metrics) =
        node.raw("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("skrei_p2p_rate_limited_total{kind=\"announce\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(dropped > 0, "{metrics}");
}

fn node_info(key: &NodeKey, seq: u64, api: &[String], p2p: &[String]) -> Gossip {
    let info = NodeInfo {
        node: key.node_id(),
        engines: vec!["wasm".into()],
        capacity: 1,
        running: 0,
        accept_network: NetworkMode::None,
        allowlist_digest: None,
        api_addrs: api.to_vec(),
        p2p_addrs: p2p.to_vec(),
        data_addrs: vec![],
        relay_urls: vec![],
        resources: Default::default(),
        seq,
    };
    Gossip::from(info.sign(key).unwrap())
}

/// The node's view of `peer` once `done` holds (JSON of `node info`).
fn wait_for_peer(node: &NodeProc, peer: &NodeId, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = node.info();
        let found = info["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["node_id"] == peer.to_string())
            .cloned();
        if found.is_some_and(|p| done(&p)) {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "no such view of {peer}: {info:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn deny(info: &Value) -> Vec<String> {
    info["job_deny"]
        .as_array()
        .expect("job_deny")
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn r_net_7_a_peers_foreign_addresses_stay_out_of_the_deny_set_and_replays_change_nothing() {
    let dirs = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dirs.path().join("n"), &[]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (key, p2p, mut events) = peer(63, &node).await;
        let id = key.node_id();
        let real = p2p.listen_addrs()[0].to_string();
        let real_port = real.split('/').nth(4).unwrap().to_string();
        // Its real libp2p address and a loopback API port (it connects
        // from loopback), and others' addresses: TEST-NET hosts' HTTPS.
        // Nothing ever connects to them: the deny set is a list.
        let api = vec!["127.0.0.1:4999".to_string(), "203.0.113.9:443".to_string()];
        let addrs = vec![real.clone(), "/ip4/192.0.2.1/tcp/443".to_string()];
        publish(&p2p, &node_info(&key, 10, &api, &addrs)).await;
        let info =
            tokio::task::block_in_place(|| wait_for_peer(&node, &id, |p| p["info"]["seq"] == 10));
        let denied = deny(&info);
        assert!(denied.contains(&"127.0.0.1:4999".to_string()), "{denied:?}");
        assert!(
            denied.contains(&format!("127.0.0.1:{real_port}")),
            "{denied:?}"
        );
        assert!(
            !denied.iter().any(|a| a.ends_with(":443")),
            "a peer blocked others' addresses for every job: {denied:?}"
        );

        // An older node info, replayed, changes nothing. The node answers
        // an announcement sent after it, so it has read the replay by then.
        let old_api = vec!["127.0.0.1:4998".to_string()];
        publish(&p2p, &node_info(&key, 5, &old_api, &addrs)).await;
        let job = announce(&key, 7);
        publish(&p2p, &Gossip::from(job.sign(&key).unwrap())).await;
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(event) = events.recv().await {
                if matches!(&event, P2pEvent::Direct { message: DirectMessage::Bid(b), .. }
                    if b.job_id == job.job_id)
                {
                    return;
                }
            }
        })
        .await
        .expect("the node answered the announcement");
        let info = tokio::task::block_in_place(|| node.info());
        let view = info["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["node_id"] == id.to_string())
            .unwrap();
        assert_eq!(view["info"]["seq"], 10, "the replay was taken: {view:#}");
        let denied = deny(&info);
        assert!(denied.contains(&"127.0.0.1:4999".to_string()), "{denied:?}");
        assert!(
            !denied.contains(&"127.0.0.1:4998".to_string()),
            "{denied:?}"
        );

        // A newer one is.
        let newer_api = vec!["127.0.0.1:4997".to_string()];
        publish(&p2p, &node_info(&key, 11, &newer_api, &addrs)).await;
        let info =
            tokio::task::block_in_place(|| wait_for_peer(&node, &id, |p| p["info"]["seq"] == 11));
        let denied = deny(&info);
        assert!(denied.contains(&"127.0.0.1:4997".to_string()), "{denied:?}");
        assert!(
            !denied.contains(&"127.0.0.1:4999".to_string()),
            "{denied:?}"
        );
        p2p.shutdown().await;
    });
}
