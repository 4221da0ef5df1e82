//! The network layer end to end: real libp2p swarms on 127.0.0.1 TCP, no
//! mDNS. Every test is bounded by [`TEST_TIMEOUT`] so nothing hangs.

use std::future::Future;
use std::time::Duration;

use libp2p::Multiaddr;
use protocol::id::{NodeId, NodeKey, Signed};
use protocol::job::{JobSpec, NetworkMode};
use protocol::messages::{
    Announce, Bid, Direct, DirectMessage, Gossip, GossipMessage, MAX_GOSSIP_BYTES, Message,
    NodeInfo, SignedGossip,
};
use skrei_node::p2p::{
    JOBS_TOPIC, NODES_TOPIC, P2p, P2pConfig, P2pError, P2pEvent, P2pHandle, Rejection,
};
use tokio::sync::mpsc::Receiver;

mod rate;
mod versions;

const TEST_TIMEOUT: Duration = Duration::from_secs(60);
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

const JOB: &str = "\
Name: hello
Type: batch
Count: 1
Tasks:
  - Name: main
    Engine:
      Type: docker
      Params:
        Image: busybox:1.36
        Parameters: [echo, hello]
";

// ---------------------------------------------------------------- harness

struct Node {
    key: NodeKey,
    p2p: P2pHandle,
    events: Receiver<P2pEvent>,
}

impl Node {
    fn id(&self) -> NodeId {
        self.key.node_id()
    }

    /// Waits for the first event matching `pred`, dropping the others.
    async fn expect(&mut self, what: &str, mut pred: impl FnMut(&P2pEvent) -> bool) -> P2pEvent {
        let wait = async {
            loop {
                match self.events.recv().await {
                    Some(event) if pred(&event) => return event,
                    Some(_) => {}
                    None => panic!("event stream closed while waiting for {what}"),
                }
            }
        };
        tokio::time::timeout(EVENT_TIMEOUT, wait)
            .await
            .unwrap_or_else(|_| panic!("{}: no {what} within {EVENT_TIMEOUT:?}", self.id()))
    }

    /// Waits until `others` are all among this node's connected peers.
    async fn connected_to(&self, others: &[NodeId]) {
        eventually(&format!("{} connected to {others:?}", self.id()), || {
            let peers = self.p2p.peers();
            others.iter().all(|o| peers.contains(o))
        })
        .await;
    }

    /// Publishes, retrying while no peer has subscribed yet.
    async fn publish(&self, gossip: &Gossip) {
        retry_while_unsubscribed(|| self.p2p.publish(gossip)).await;
    }
}

async fn start(secret: u8, configure: impl FnOnce(P2pConfig) -> P2pConfig) -> Node {
    let key = NodeKey::from_secret_bytes([secret; 32]);
    let config = P2pConfig::new(key.to_secret_bytes())
        .listen("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .mdns(false);
    let (p2p, events) = P2p::start(configure(config)).await.expect("start p2p");
    assert_eq!(p2p.node_id(), key.node_id());
    Node { key, p2p, events }
}

fn addr(node: &Node) -> Multiaddr {
    node.p2p.listen_addrs()[0].clone()
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let wait = async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(EVENT_TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| panic!("not {what} within {EVENT_TIMEOUT:?}"));
}

async fn retry_while_unsubscribed<F: Future<Output = Result<(), P2pError>>>(
    mut publish: impl FnMut() -> F,
) {
    let wait = async {
        loop {
            match publish().await {
                Ok(()) => return,
                Err(e @ P2pError::NoSubscribers { .. }) => {
                    assert!(e.is_retryable());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("publish failed: {e}"),
            }
        }
    };
    tokio::time::timeout(EVENT_TIMEOUT, wait)
        .await
        .expect("a peer subscribed in time");
}

/// Gossipsub needs a heartbeat or two after a connection to exchange
/// subscriptions and graft meshes.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test finished within its time limit");
}

fn announce(key: &NodeKey, at_ms: u64) -> Announce {
    let spec = JobSpec::parse(JOB).expect("test job parses");
    Announce::new(spec, key.node_id(), at_ms, vec![]).unwrap()
}

fn signed_announce(key: &NodeKey, at_ms: u64) -> Gossip {
    Gossip::from(announce(key, at_ms).sign(key).unwrap())
}

fn is_announce_from(event: &P2pEvent, from: NodeId, job: &Announce) -> bool {
    matches!(event, P2pEvent::Gossip { from: f, message: GossipMessage::Announce(a) }
        if *f == from && a == job)
}

// ---------------------------------------------------------------- tests

/// Whether a rejection is the one a case expects.
type IsExpected = fn(&Rejection) -> bool;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kademlia_joins_a_chain_and_gossip_reaches_everyone() {
    bounded(async {
        let mut a = start(1, |c| c).await;
        for addr in a.p2p.listen_addrs() {
            assert!(
                addr.to_string().ends_with(&format!("/p2p/{}", a.id())),
                "{addr}"
            );
        }
        // Alone: publishing fails, retryably.
        let err = a
            .p2p
            .publish(&signed_announce(&a.key, 1))
            .await
            .unwrap_err();
        assert!(
            matches!(err, P2pError::NoSubscribers { topic: JOBS_TOPIC }),
            "{err}"
        );
        assert!(err.is_retryable());

        let mut b = start(2, |c| c.bootstrap(addr(&a))).await;
        let mut c = start(3, |c| c.bootstrap(addr(&b))).await;
        // C knows only B and B only A: the DHT introduces A and C.
        a.connected_to(&[b.id(), c.id()]).await;
        c.connected_to(&[a.id(), b.id()]).await;
        a.expect(
            "C connected",
            |e| matches!(e, P2pEvent::PeerConnected(n) if *n == c.id()),
        )
        .await;
        settle().await;

        let job = announce(&a.key, 2);
        a.publish(&Gossip::from(job.sign(&a.key).unwrap())).await;
        for node in [&mut b, &mut c] {
            node.expect("A's announce", |e| is_announce_from(e, a.id(), &job))
                .await;
        }

        // Node info travels on its own topic.
        let info = NodeInfo {
            node: c.id(),
            engines: vec!["wasm".into()],
            capacity: 2,
            running: 0,
            accept_network: NetworkMode::None,
            allowlist_digest: None,
            api_addrs: vec!["127.0.0.1:1234".into()],
            p2p_addrs: c.p2p.listen_addrs().iter().map(|a| a.to_string()).collect(),
            data_addrs: vec![],
            relay_urls: vec![],
            resources: Default::default(),
            seq: 1,
        };
        c.publish(&Gossip::from(info.sign(&c.key).unwrap())).await;
        for node in [&mut a, &mut b] {
            node.expect("C's node info", |e| {
                matches!(e, P2pEvent::Gossip { from, message: GossipMessage::NodeInfo(got) }
                    if *from == c.id() && *got == info)
            })
            .await;
        }

        // The DHT also indexes content providers.
        let cid = b"a content id";
        a.p2p.start_providing(cid).await.expect("providing");
        let providers = c.p2p.get_providers(cid).await.expect("providers");
        assert_eq!(providers, vec![a.id()]);

        a.p2p.shutdown().await;
        assert!(a.p2p.peers().is_empty() && a.p2p.listen_addrs().is_empty());
        b.expect(
            "A's disconnection",
            |e| matches!(e, P2pEvent::PeerDisconnected(n) if *n == a.id()),
        )
        .await;
        assert!(matches!(
            a.p2p.publish(&signed_announce(&a.key, 3)).await,
            Err(P2pError::Shutdown)
        ));
        b.p2p.shutdown().await;
        c.p2p.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_messages_arrive_only_from_their_signer() {
    bounded(async {
        let mut a = start(11, |c| c).await;
        let b = start(12, |c| c.bootstrap(addr(&a))).await;
        b.connected_to(&[a.id()]).await;

        let job_id = announce(&a.key, 1).job_id;
        let bid = Bid {
            job_id,
            bidder: b.id(),
            running_jobs: 3,
            held_bytes: 0,
            fetch_ms: None,
        };
        b.p2p
            .send(a.id(), &Direct::from(bid.sign(&b.key).unwrap()))
            .await
            .expect("A acknowledges the bid");
        a.expect("B's bid", |e| {
            matches!(e, P2pEvent::Direct { from, message: DirectMessage::Bid(got) }
                if *from == b.id() && *got == bid)
        })
        .await;

        // A bid signed by X but sent by B: refused, and never delivered.
        let x = NodeKey::from_secret_bytes([13; 32]);
        let forged = Bid {
            job_id,
            bidder: x.node_id(),
            running_jobs: 0,
            held_bytes: 0,
            fetch_ms: None,
        };
        let err = b
            .p2p
            .send(a.id(), &Direct::from(forged.sign(&x).unwrap()))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, P2pError::Rejected { peer, .. } if *peer == a.id()),
            "{err}"
        );
        let rejected = a
            .expect("a rejection", |e| matches!(e, P2pEvent::Rejected { .. }))
            .await;
        let P2pEvent::Rejected { from, reason } = rejected else {
            unreachable!()
        };
        assert_eq!(from, b.id());
        assert!(
            matches!(reason, Rejection::NotFromSigner { signer, .. } if signer == x.node_id())
        );

        // Garbage is refused too, and the link keeps working.
        let err = b.p2p.send_raw_for_tests(a.id(), b"junk".to_vec()).await.unwrap_err();
        assert!(matches!(err, P2pError::Rejected { .. }), "{err}");
        let again = Bid {
            running_jobs: 4,
            held_bytes: 0,
            fetch_ms: None,
            ..bid
        };
        b.p2p
            .send(a.id(), &Direct::from(again.sign(&b.key).unwrap()))
            .await
            .expect("A still acknowledges");
        let next = a
            .expect("the next delivery", |e| matches!(e, P2pEvent::Direct { .. }))
            .await;
        assert!(
            matches!(&next, P2pEvent::Direct { message: DirectMessage::Bid(got), .. } if *got == again),
            "the forged bid was delivered: {next:?}"
        );

        // Two strikes count against B's score, as rejected gossip would.
        let score = a.p2p.peer_score(b.id()).await.unwrap().expect("B is scored");
        assert!(score < -30.0, "B's score after two rejections: {score}");

        // An unreachable peer is named in the error.
        let nobody = NodeKey::from_secret_bytes([14; 32]).node_id();
        let err = b
            .p2p
            .send(nobody, &Direct::from(again.sign(&b.key).unwrap()))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, P2pError::SendFailed { peer, .. } if *peer == nobody),
            "{err}"
        );
        assert!(err.to_string().contains(&nobody.to_string()), "{err}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_gossip_is_rejected_penalised_and_not_forwarded() {
    bounded(async {
        // A - B - {M, R}: the misbehaving M and R run no DHT, so they meet
        // only B, and A could hear them only if B forwarded their messages.
        let mut a = start(21, |c| c).await;
        let mut b = start(22, |c| c.bootstrap(addr(&a))).await;
        let m = start(23, |c| c.kademlia(false).bootstrap(addr(&b))).await;
        let r = start(24, |c| c.kademlia(false).bootstrap(addr(&b))).await;
        b.connected_to(&[a.id(), m.id(), r.id()]).await;
        settle().await;
        assert!(!a.p2p.peers().contains(&m.id()));
        assert!(!a.p2p.peers().contains(&r.id()));

        let bad_signature = {
            let SignedGossip::Announce(signed) = signed_announce(&m.key, 1).into_signed() else {
                unreachable!()
            };
            let (signer, payload, mut signature) = signed.into_parts();
            signature[7] ^= 0x40;
            Gossip::from(Signed::<Announce>::from_parts(signer, payload, signature))
                .encode()
                .unwrap()
        };
        let mut oversized = signed_announce(&m.key, 1).encode().unwrap();
        oversized.resize(MAX_GOSSIP_BYTES + 1, 0);
        let cases: [(&str, Vec<u8>, IsExpected); 3] = [
            ("bad signature", bad_signature, |r| {
                matches!(r, Rejection::Invalid(_))
            }),
            ("oversized", oversized, |r| {
                matches!(r, Rejection::Oversized { .. })
            }),
            ("garbage", b"\x00\xffnot cbor".to_vec(), |r| {
                matches!(r, Rejection::Malformed(_))
            }),
        ];
        for (what, bytes, expected) in cases {
            retry_while_unsubscribed(|| m.p2p.publish_raw_for_tests(JOBS_TOPIC, bytes.clone()))
                .await;
            let event = b
                .expect(what, |e| {
                    matches!(e, P2pEvent::Rejected { .. } | P2pEvent::Gossip { .. })
                })
                .await;
            let P2pEvent::Rejected { from, reason } = event else {
                panic!("{what} was delivered: {event:?}");
            };
            assert_eq!(from, m.id(), "{what}");
            assert!(expected(&reason), "{what}: {reason:?}");
        }
        // Three strikes: M is graylisted, even its valid messages are ignored.
        let score = b.p2p.peer_score(m.id()).await.unwrap().expect("M is scored");
        assert!(score < -80.0, "M's score after three rejections: {score}");
        m.publish(&signed_announce(&m.key, 2)).await;

        // R replays A's genuine announcement under its own name.
        let replayed = signed_announce(&a.key, 3).encode().unwrap();
        retry_while_unsubscribed(|| r.p2p.publish_raw_for_tests(JOBS_TOPIC, replayed.clone()))
            .await;
        let event = b
            .expect("the replay", |e| {
                matches!(e, P2pEvent::Rejected { .. } | P2pEvent::Gossip { .. })
            })
            .await;
        assert!(
            matches!(&event, P2pEvent::Rejected { from, reason: Rejection::NotFromSigner { signer, .. } }
                if *from == r.id() && *signer == a.id()),
            "{event:?}"
        );
        let score = b.p2p.peer_score(r.id()).await.unwrap().expect("R is scored");
        assert!(score < 0.0, "R's score after a rejection: {score}");

        // B still works: A's next announcement arrives, and nothing of M's
        // before it.
        let job = announce(&a.key, 4);
        a.publish(&Gossip::from(job.sign(&a.key).unwrap())).await;
        let heard = b
            .expect("A's announce", |e| matches!(e, P2pEvent::Gossip { .. }))
            .await;
        assert!(is_announce_from(&heard, a.id(), &job), "{heard:?}");

        // Nothing of M's or R's reached A.
        settle().await;
        while let Ok(event) = a.events.try_recv() {
            assert!(
                !matches!(event, P2pEvent::Gossip { .. } | P2pEvent::Rejected { .. }),
                "A heard M or R through B: {event:?}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_event_queue_answers_busy_and_never_blocks() {
    bounded(async {
        // A's application reads nothing yet: one event fills its queue.
        let mut a = start(31, |mut c| {
            c.event_buffer = 1;
            c
        })
        .await;
        let b = start(32, |c| c.bootstrap(addr(&a))).await;
        b.connected_to(&[a.id()]).await;
        eventually("A queued B's connection", || a.events.len() == 1).await;

        let bid = Bid {
            job_id: announce(&a.key, 1).job_id,
            bidder: b.id(),
            running_jobs: 0,
            held_bytes: 0,
            fetch_ms: None,
        };
        let direct = Direct::from(bid.sign(&b.key).unwrap());
        let err = b.p2p.send(a.id(), &direct).await.unwrap_err();
        assert!(
            matches!(&err, P2pError::Busy { peer } if *peer == a.id()),
            "{err}"
        );
        assert!(err.is_retryable());

        // Once A reads, B's retry is delivered.
        a.expect("B's connection", |e| {
            matches!(e, P2pEvent::PeerConnected(_))
        })
        .await;
        b.p2p
            .send(a.id(), &direct)
            .await
            .expect("delivered on retry");
        a.expect(
            "B's bid",
            |e| matches!(e, P2pEvent::Direct { from, .. } if *from == b.id()),
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_addresses_must_name_their_peer() {
    bounded(async {
        let key = NodeKey::from_secret_bytes([41; 32]);
        let config = P2pConfig::new(key.to_secret_bytes())
            .bootstrap("/ip4/127.0.0.1/tcp/4001".parse().unwrap());
        let err = P2p::start(config).await.unwrap_err();
        assert!(matches!(err, P2pError::BootstrapAddr { .. }), "{err}");
        assert!(err.to_string().contains("/p2p/<peer id>"), "{err}");
    })
    .await;
}
