//! The limiter's rules one by one, then as properties over random schedules.

use proptest::prelude::*;

use super::*;

const RATE: Rate = Rate {
    burst: 4,
    per_second: 2,
};

#[test]
fn r_sec_5_a_burst_then_the_rate() {
    let mut l = PeerLimiter::new(RATE, 16);
    for _ in 0..4 {
        assert_eq!(l.check(0, &1), Verdict::Allow);
    }
    assert_eq!(l.check(0, &1), Verdict::Drop);
    // 2 a second: one every 500 ms.
    assert_eq!(l.check(499, &1), Verdict::Drop);
    assert_eq!(l.check(500, &1), Verdict::Allow);
    assert_eq!(l.check(500, &1), Verdict::Drop);
    assert_eq!(l.dropped(), 3);
    // A long silence refills up to the burst, no more.
    for _ in 0..4 {
        assert_eq!(l.check(1_000_000, &1), Verdict::Allow);
    }
    assert_eq!(l.check(1_000_000, &1), Verdict::Drop);
}

#[test]
fn r_sec_5_a_sustained_flood_is_told_apart_from_a_burst() {
    let mut l = PeerLimiter::new(RATE, 16);
    let verdicts: Vec<Verdict> = (0..20).map(|_| l.check(0, &1)).collect();
    // 4 allowed, then another burst's worth dropped quietly, then flood.
    assert!(verdicts[..4].iter().all(|v| *v == Verdict::Allow));
    assert!(verdicts[4..8].iter().all(|v| *v == Verdict::Drop));
    assert!(verdicts[8..].iter().all(|v| *v == Verdict::Flood));
    // Forgiven at the rate: after 10 s the peer is back to a full bucket
    // and no debt.
    assert_eq!(l.check(10_000, &1), Verdict::Allow);
    let again: Vec<Verdict> = (0..7).map(|_| l.check(10_000, &1)).collect();
    assert!(!again.contains(&Verdict::Flood), "{again:?}");
}

#[test]
fn r_sec_5_time_going_back_gives_nothing() {
    let mut l = PeerLimiter::new(RATE, 16);
    for _ in 0..4 {
        assert_eq!(l.check(10_000, &1), Verdict::Allow);
    }
    assert_eq!(l.check(5_000, &1), Verdict::Drop);
    assert_eq!(l.check(10_499, &1), Verdict::Drop);
    assert_eq!(l.check(10_500, &1), Verdict::Allow);
}

#[test]
fn r_sec_5_the_least_recently_heard_peer_is_forgotten() {
    let mut l = PeerLimiter::new(RATE, 3);
    for peer in [1, 2, 3] {
        for _ in 0..5 {
            l.check(0, &peer);
        }
    }
    // 1 is heard again: 2 is now the oldest.
    assert_eq!(l.check(0, &1), Verdict::Drop);
    assert_eq!(l.check(0, &4), Verdict::Allow);
    assert_eq!(l.len(), 3);
    // 1 and 3 are still limited; 2 was forgotten and starts full.
    assert_eq!(l.check(0, &1), Verdict::Drop);
    assert_eq!(l.check(0, &3), Verdict::Drop);
    assert_eq!(l.check(0, &2), Verdict::Allow);
    assert_eq!(l.len(), 3);
}

#[test]
fn r_sec_5_next_allowed_paces_a_sender() {
    let mut l = PeerLimiter::new(RATE, 16);
    assert_eq!(l.next_allowed_ms(0, &1), 0);
    for _ in 0..4 {
        l.check(0, &1);
    }
    assert_eq!(l.next_allowed_ms(0, &1), 500);
    assert_eq!(l.next_allowed_ms(200, &1), 500);
    assert_eq!(l.check(500, &1), Verdict::Allow);
    let mut frozen = PeerLimiter::new(
        Rate {
            burst: 1,
            per_second: 0,
        },
        1,
    );
    frozen.check(0, &1);
    assert_eq!(frozen.next_allowed_ms(0, &1), u64::MAX);
}

/// One message of a random schedule: who sends, how long after the last.
fn schedule() -> impl Strategy<Value = Vec<(u8, u16)>> {
    proptest::collection::vec((0u8..12, 0u16..400), 0..400)
}

proptest! {
    // R-SEC-5: over any window, a peer gets at most its burst plus its
    // rate times the window's length, whatever the others send; and the
    // limiter never keeps more peers than its bound.
    #[test]
    fn r_sec_5_no_peer_exceeds_burst_plus_rate(
        burst in 1u32..10,
        per_second in 0u32..20,
        max_peers in 1usize..8,
        steps in schedule(),
    ) {
        let rate = Rate { burst, per_second };
        let mut l = PeerLimiter::new(rate, max_peers);
        let mut now = 0u64;
        let mut allowed: Vec<(u8, u64)> = Vec::new();
        for (peer, gap) in steps {
            now += u64::from(gap);
            if l.check(now, &peer) == Verdict::Allow {
                allowed.push((peer, now));
            }
            prop_assert!(l.len() <= max_peers);
        }
        // Without eviction (enough room for every peer), the bound is exact.
        if max_peers >= 12 {
            for peer in 0..12u8 {
                let times: Vec<u64> = allowed.iter().filter(|(p, _)| *p == peer).map(|(_, t)| *t).collect();
                for (i, start) in times.iter().enumerate() {
                    for (j, end) in times.iter().enumerate().skip(i) {
                        let window_ms = end - start;
                        let most = u64::from(burst) + window_ms * u64::from(per_second) / 1_000;
                        prop_assert!((j - i + 1) as u64 <= most,
                            "peer {peer}: {} allowed in {window_ms} ms", j - i + 1);
                    }
                }
            }
        }
    }

    // R-SEC-5: a peer that keeps within its rate is never dropped, however
    // hard the others flood and however often they push it out of the
    // limiter (forgetting only gives it a full bucket).
    #[test]
    fn r_sec_5_a_peer_within_its_rate_is_never_starved(
        max_peers in 1usize..6,
        floods in proptest::collection::vec((1u8..50, 0u16..50), 1..300),
    ) {
        let rate = Rate { burst: 2, per_second: 10 };
        let mut l = PeerLimiter::new(rate, max_peers);
        let mut now = 0u64;
        let mut next_honest = 0u64;
        for (flooder, gap) in floods {
            now += u64::from(gap);
            let _ = l.check(now, &flooder);
            if now >= next_honest {
                // The honest peer (0) sends one message every 100 ms at most.
                prop_assert_eq!(l.check(now, &0), Verdict::Allow);
                next_honest = now + 100;
            }
        }
    }

    // Same schedule, same verdicts: nothing depends on anything but the
    // calls (sans-IO).
    #[test]
    fn r_sec_5_verdicts_are_deterministic(steps in schedule()) {
        let run = |steps: &[(u8, u16)]| {
            let mut l = PeerLimiter::new(RATE, 5);
            let mut now = 0u64;
            steps.iter().map(|(peer, gap)| {
                now += u64::from(*gap);
                l.check(now, peer)
            }).collect::<Vec<_>>()
        };
        prop_assert_eq!(run(&steps), run(&steps));
    }
}
