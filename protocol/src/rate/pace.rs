//! A node's own gossip, sent no faster than its peers take it: they
//! drop what passes a peer's rate ([`super`]) and count a flood
//! against it, so a node whose user submits a hundred jobs at once queues
//! the announcements instead of being penalised for them. A job announced
//! again while its earlier announcement still waits takes that one's place
//! (the newer asks more nodes), so a backlog of waiting jobs re-announcing
//! does not crowd out the first announcements of newer ones.

use std::collections::{BTreeSet, VecDeque};

use super::{PeerLimiter, Rate, Verdict};

/// Messages waiting to go out, oldest first, each under a key (its job);
/// past `max` the oldest is dropped (an announcement's job is announced
/// again if it hears no bid).
#[derive(Debug)]
pub struct Pacer<K, T> {
    limiter: PeerLimiter<()>,
    queue: VecDeque<(K, T)>,
    queued: BTreeSet<K>,
    max: usize,
}

impl<K: Ord + Clone, T> Pacer<K, T> {
    /// Paces at `rate`'s sustained rate with half its burst, leaving
    /// receivers room for messages that arrive closer together than they
    /// were sent.
    pub fn new(rate: Rate, max: usize) -> Pacer<K, T> {
        let rate = Rate {
            burst: (rate.burst / 2).max(1),
            per_second: rate.per_second,
        };
        Pacer {
            limiter: PeerLimiter::new(rate, 1),
            queue: VecDeque::new(),
            queued: BTreeSet::new(),
            max: max.max(1),
        }
    }

    /// Queues `item` to be sent; if one under `key` waits already, `item`
    /// replaces it in its place. With `max` waiting, the oldest is dropped
    /// to make room, and returned (its job is announced again if it hears
    /// no bid).
    pub fn push(&mut self, key: K, item: T) -> Option<K> {
        if self.queued.contains(&key) {
            if let Some(waiting) = self.queue.iter_mut().find(|(k, _)| *k == key) {
                waiting.1 = item;
            }
            return None;
        }
        let mut dropped = None;
        if self.queue.len() >= self.max
            && let Some((oldest, _)) = self.queue.pop_front()
        {
            self.queued.remove(&oldest);
            dropped = Some(oldest);
        }
        self.queued.insert(key.clone());
        self.queue.push_back((key, item));
        dropped
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// What may be sent at `now_ms`, in order.
    pub fn due(&mut self, now_ms: u64) -> Vec<T> {
        let mut out = Vec::new();
        while !self.queue.is_empty()
            && self.limiter.next_allowed_ms(now_ms, &()) <= now_ms
            && self.limiter.check(now_ms, &()) == Verdict::Allow
        {
            if let Some((key, item)) = self.queue.pop_front() {
                self.queued.remove(&key);
                out.push(item);
            }
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
            pacer.push(n, n);
        }
        assert_eq!(pacer.due(0), (0..4).collect::<Vec<_>>());
        assert_eq!(pacer.next_ms(0), Some(250));
        assert!(pacer.due(249).is_empty());
        assert_eq!(pacer.due(250), vec![4]);
        // A peer limiting at the full rate never drops any of it.
        let mut peer = PeerLimiter::new(rate, 1);
        let mut pacer = Pacer::new(rate, 1_000);
        for n in 0..500 {
            pacer.push(n, n);
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
            pacer.push(n, n);
        }
        assert_eq!(pacer.due(0), vec![3, 4]);
    }

    // Issue 15 (a burst of jobs): a job re-announced while its announcement
    // waits takes that one's place; the queue holds each job once.
    #[test]
    fn a_repeated_announcement_replaces_the_waiting_one_in_place() {
        let rate = Rate {
            burst: 2,
            per_second: 1,
        };
        let mut pacer = Pacer::new(rate, 100);
        for job in 0..5 {
            pacer.push(job, (job, "first"));
        }
        assert_eq!(pacer.due(0), vec![(0, "first")]);
        // Jobs 0 and 3 are announced again: 0 is queued anew (its first one
        // went out), 3 replaces its waiting one.
        pacer.push(0, (0, "again"));
        pacer.push(3, (3, "again"));
        assert_eq!(pacer.len(), 5);
        let mut sent = Vec::new();
        for now in (0..10_000).step_by(100) {
            sent.extend(pacer.due(now));
        }
        assert_eq!(
            sent,
            vec![
                (1, "first"),
                (2, "first"),
                (3, "again"),
                (4, "first"),
                (0, "again")
            ]
        );
    }
}
