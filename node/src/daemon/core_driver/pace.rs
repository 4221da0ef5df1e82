//! This node's own gossip, sent no faster than its peers take it: they
//! drop what passes a peer's rate ([`protocol::rate`]) and count a flood
//! against it, so a node whose user submits a hundred jobs at once queues
//! the announcements instead of being penalised for them.

use std::collections::VecDeque;

use protocol::rate::{PeerLimiter, Rate, Verdict};

/// Messages waiting to go out, oldest first; past `max` the oldest is
/// dropped (an announcement's job is announced again if it hears no bid).
#[derive(Debug)]
pub(super) struct Pacer<T> {
    limiter: PeerLimiter<()>,
    queue: VecDeque<T>,
    max: usize,
}

impl<T> Pacer<T> {
    /// Paces at `rate`'s sustained rate with half its burst, leaving
    /// receivers room for messages that arrive closer together than they
    /// were sent.
    pub fn new(rate: Rate, max: usize) -> Pacer<T> {
        let rate = Rate {
            burst: (rate.burst / 2).max(1),
            per_second: rate.per_second,
        };
        Pacer {
            limiter: PeerLimiter::new(rate, 1),
            queue: VecDeque::new(),
            max: max.max(1),
        }
    }

    /// Queues `item` to be sent.
    pub fn push(&mut self, item: T) {
        if self.queue.len() >= self.max {
            self.queue.pop_front();
            tracing::warn!(
                max = self.max,
                "too many messages waiting to be sent: the oldest dropped"
            );
        }
        self.queue.push_back(item);
    }

    /// What may be sent at `now_ms`, in order.
    pub fn due(&mut self, now_ms: u64) -> Vec<T> {
        let mut out = Vec::new();
        while !self.queue.is_empty()
            && self.limiter.next_allowed_ms(now_ms, &()) <= now_ms
            && self.limiter.check(now_ms, &()) == Verdict::Allow
        {
            out.extend(self.queue.pop_front());
        }
        out
    }

    /// When something waiting may be sent next.
    pub fn next_ms(&self, now_ms: u64) -> Option<u64> {
        (!self.queue.is_empty()).then(|| self.limiter.next_allowed_ms(now_ms, &()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // R-SEC-5: what a node sends stays within what its peers take.
    #[test]
    fn r_sec_5_own_messages_keep_within_the_peers_rate() {
        let rate = Rate {
            burst: 8,
            per_second: 4,
        };
        let mut pacer = Pacer::new(rate, 100);
        for n in 0..20 {
            pacer.push(n);
        }
        assert_eq!(pacer.due(0), (0..4).collect::<Vec<_>>());
        assert_eq!(pacer.next_ms(0), Some(250));
        assert!(pacer.due(249).is_empty());
        assert_eq!(pacer.due(250), vec![4]);
        // A peer limiting at the full rate never drops any of it.
        let mut peer = PeerLimiter::new(rate, 1);
        let mut pacer = Pacer::new(rate, 1_000);
        for n in 0..500 {
            pacer.push(n);
        }
        let mut sent = 0;
        for now in (0..200_000).step_by(7) {
            for _ in pacer.due(now) {
                assert_eq!(peer.check(now, &()), Verdict::Allow);
                sent += 1;
            }
        }
        assert_eq!(sent, 500);
        // Bounded: the oldest go first.
        let mut pacer = Pacer::new(rate, 2);
        for n in 0..5 {
            pacer.push(n);
        }
        assert_eq!(pacer.due(0), vec![3, 4]);
    }
}
