//! Per-peer rate limits in the network layer (R-SEC-5, R-P2P-3): a flood is
//! cut to the sender's rate before it is decoded, forwarded or queued for
//! the application, counted, and a peer flooding far past its rate pays
//! for it in its score; other peers' messages still get through.

use std::time::{Duration, Instant};

use futures::StreamExt;
use protocol::rate::{ANNOUNCE_RATE, DIRECT_RATE};

use super::*;

/// `skrei_p2p_rate_limited_total{kind="KIND"}` in a node's metrics.
fn rate_limited(node: &Node, kind: &str) -> u64 {
    let text = node.p2p.gossip_metrics();
    let prefix = format!("skrei_p2p_rate_limited_total{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_sec_5_an_announcement_flood_is_cut_to_its_rate_and_others_get_through() {
    bounded(async {
        // F floods B; C, also B's neighbour, announces one job afterwards.
        let mut b = start(51, |c| c.kademlia(false)).await;
        let f = start(52, |c| c.kademlia(false).bootstrap(addr(&b))).await;
        let c = start(53, |c| c.kademlia(false).bootstrap(addr(&b))).await;
        b.connected_to(&[f.id(), c.id()]).await;
        settle().await;

        const FLOOD: u64 = 600;
        let started = Instant::now();
        f.publish(&signed_announce(&f.key, 0)).await;
        for n in 1..FLOOD {
            f.p2p
                .publish(&signed_announce(&f.key, n))
                .await
                .expect("published");
        }
        let took = started.elapsed();
        let job = announce(&c.key, 1);
        c.publish(&Gossip::from(job.sign(&c.key).unwrap())).await;
        // What B took from F until C's announcement came: at most a burst
        // and the rate over the flood.
        let mut taken = 0u64;
        let mut flooding = false;
        b.expect("C's announcement", |event| {
            match event {
                P2pEvent::Gossip { from, .. } if *from == f.id() => taken += 1,
                P2pEvent::Rejected {
                    from,
                    reason: Rejection::RateLimited { signer, .. },
                } if *from == f.id() && *signer == f.id() => flooding = true,
                _ => {}
            }
            is_announce_from(event, c.id(), &job)
        })
        .await;
        let most = u64::from(ANNOUNCE_RATE.burst)
            + (took.as_millis() as u64 + 1_000) * u64::from(ANNOUNCE_RATE.per_second) / 1_000;
        assert!(
            taken >= u64::from(ANNOUNCE_RATE.burst) && taken <= most,
            "B took {taken} of {FLOOD} announcements in {took:?} (at most {most})"
        );
        assert!(flooding, "the flood was reported");
        // Counted (until F's score graylisted it: then B reads nothing of
        // F's at all).
        let dropped = rate_limited(&b, "announce");
        assert!(dropped > 0 && taken + dropped <= FLOOD, "{dropped} dropped");
        // Far past its rate: counted against F's score.
        let score = b
            .p2p
            .peer_score(f.id())
            .await
            .unwrap()
            .expect("F is scored");
        assert!(score < 0.0, "F's score after its flood: {score}");
        let score = b
            .p2p
            .peer_score(c.id())
            .await
            .unwrap()
            .expect("C is scored");
        assert!(score >= 0.0, "C's score: {score}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_sec_5_a_direct_message_flood_is_answered_busy_then_penalised() {
    bounded(async {
        // A's application reads nothing during the flood: its queue must
        // not be what refuses B.
        let mut a = start(54, |mut c| {
            c.event_buffer = 4_096;
            c.kademlia(false)
        })
        .await;
        let b = start(55, |c| c.kademlia(false).bootstrap(addr(&a))).await;
        let c = start(56, |c| c.kademlia(false).bootstrap(addr(&a))).await;
        a.connected_to(&[b.id(), c.id()]).await;

        let job_id = announce(&a.key, 1).job_id;
        let bid = |key: &NodeKey, n: u32| {
            let bid = Bid {
                job_id,
                bidder: key.node_id(),
                running_jobs: n,
                held_bytes: 0,
                fetch_ms: None,
            };
            Direct::from(bid.sign(key).unwrap())
        };
        let sends = (0..600).map(|n| {
            let p2p = b.p2p.clone();
            let direct = bid(&b.key, n);
            let to = a.id();
            async move { p2p.send(to, &direct).await }
        });
        let started = Instant::now();
        // A few at a time: yamux caps the streams open at once.
        let answers: Vec<Result<(), P2pError>> = futures::stream::iter(sends)
            .buffer_unordered(32)
            .collect()
            .await;
        let took = started.elapsed();
        let accepted = answers.iter().filter(|r| r.is_ok()).count();
        let busy = answers
            .iter()
            .filter(|r| matches!(r, Err(P2pError::Busy { .. })))
            .count();
        let refused = answers
            .iter()
            .filter(
                |r| matches!(r, Err(P2pError::Rejected { reason, .. }) if reason.contains("rate")),
            )
            .count();
        assert_eq!(
            accepted + busy + refused,
            600,
            "{accepted} accepted, {busy} busy, {refused} refused"
        );
        let most = DIRECT_RATE.burst as usize
            + (took.as_millis() as usize + 1_000) * DIRECT_RATE.per_second as usize / 1_000;
        assert!(
            accepted >= DIRECT_RATE.burst as usize && accepted <= most,
            "{accepted} accepted in {took:?} (at most {most})"
        );
        assert!(busy > 0 && refused > 0, "{busy} busy, {refused} refused");
        assert_eq!(rate_limited(&a, "direct"), (busy + refused) as u64);
        let score = a
            .p2p
            .peer_score(b.id())
            .await
            .unwrap()
            .expect("B is scored");
        assert!(score < -80.0, "B is graylisted after its flood: {score}");

        // C's bid still arrives, at once.
        let started = Instant::now();
        c.p2p
            .send(a.id(), &bid(&c.key, 0))
            .await
            .expect("C's bid is taken");
        assert!(started.elapsed() < Duration::from_secs(2));
        a.expect(
            "C's bid",
            |e| matches!(e, P2pEvent::Direct { from, .. } if *from == c.id()),
        )
        .await;
    })
    .await;
}
