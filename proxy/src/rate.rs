//! The per-job rate limit (R-NET-6): one token bucket per direction, shared
//! by all of the job's connections.
//!
//! Exact integer arithmetic: credit is counted in units of 10⁻⁹ byte, and
//! one nanosecond at `rate` bytes/s earns exactly `rate` units, so no
//! fraction of a token is ever lost to rounding. The bucket holds at most
//! [`DEFAULT_BURST`] worth of credit, so a connection that was idle cannot
//! send more than that in one go.
//!
//! A sender asks for `n` bytes; the bucket charges them at once (credit may
//! go negative) and the sender waits until the credit is back to zero before
//! it sends. Later senders see the debt and wait behind it, so many
//! connections share one budget in arrival order. Over any interval of
//! length `t` starting from a full bucket, at most `burst + rate·t` bytes
//! are released. Time is tokio's, so tests run on paused time.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The largest burst: 50 ms worth of the rate.
pub const DEFAULT_BURST: Duration = Duration::from_millis(50);

/// Credit units per byte.
const UNIT: i128 = 1_000_000_000;

#[derive(Debug)]
struct Bucket {
    rate: i128,
    capacity: i128,
    credit: i128,
    last: Instant,
}

/// A shared token bucket; clones share the budget. `0` bytes/s is unlimited.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    bucket: Option<Arc<Mutex<Bucket>>>,
}

impl RateLimiter {
    /// `bytes_per_sec` with a burst of [`DEFAULT_BURST`]; 0 is unlimited.
    pub fn new(bytes_per_sec: u64) -> RateLimiter {
        RateLimiter::with_burst(bytes_per_sec, DEFAULT_BURST)
    }

    /// `bytes_per_sec` with a burst of `burst` worth of the rate (at least one byte).
    pub fn with_burst(bytes_per_sec: u64, burst: Duration) -> RateLimiter {
        if bytes_per_sec == 0 {
            return RateLimiter::unlimited();
        }
        let rate = i128::from(bytes_per_sec);
        let capacity = (rate * burst.as_nanos() as i128).max(UNIT);
        RateLimiter {
            bucket: Some(Arc::new(Mutex::new(Bucket {
                rate,
                capacity,
                credit: capacity,
                last: Instant::now(),
            }))),
        }
    }

    /// No limit.
    pub fn unlimited() -> RateLimiter {
        RateLimiter { bucket: None }
    }

    /// Whether this limiter limits at all.
    pub fn is_limited(&self) -> bool {
        self.bucket.is_some()
    }

    /// The largest chunk a sender should ask for at once: the burst size,
    /// capped at 16 KiB, so that one large write is released smoothly.
    pub fn chunk(&self) -> usize {
        const MAX: usize = 16 * 1024;
        match &self.bucket {
            None => MAX,
            Some(b) => {
                let cap = b.lock().unwrap_or_else(PoisonError::into_inner).capacity / UNIT;
                usize::try_from(cap).unwrap_or(MAX).clamp(1, MAX)
            }
        }
    }

    /// Wait until `n` bytes may be sent.
    pub async fn acquire(&self, n: usize) {
        if let Some(wait) = self.charge(n) {
            tokio::time::sleep(wait).await;
        }
    }

    /// Charge `n` bytes now and return how long to wait before sending them.
    pub(crate) fn charge(&self, n: usize) -> Option<Duration> {
        let bucket = self.bucket.as_ref()?;
        let mut b = bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(b.last).as_nanos() as i128;
        b.last = now;
        b.credit = (b.credit + elapsed * b.rate).min(b.capacity);
        b.credit -= n as i128 * UNIT;
        if b.credit >= 0 {
            return None;
        }
        // Round up: waking early would release bytes before their credit.
        let debt = -b.credit;
        let nanos = (debt + b.rate - 1) / b.rate;
        Some(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Send `total` bytes in `chunk`-sized pieces; returns the time taken.
    async fn send(l: &RateLimiter, total: usize, chunk: usize) -> Duration {
        let start = Instant::now();
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk);
            l.acquire(n).await;
            left -= n;
        }
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn r_net_6_bytes_over_time_are_exact() {
        // 1,250,000 B/s, burst 62,500 B: 1,312,500 bytes take exactly 1 s.
        let l = RateLimiter::new(1_250_000);
        assert_eq!(l.chunk(), 16 * 1024);
        let t = send(&l, 1_312_500, 1000).await;
        assert_eq!(t, Duration::from_secs(1));
        // The bucket is now empty: another 1,250,000 take exactly one more second.
        let t = send(&l, 1_250_000, 1000).await;
        assert_eq!(t, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn r_net_6_fractional_tokens_are_kept() {
        // 3 B/s: each byte is worth 333,333,333.3 ns. Rounding each wait up
        // and losing the fraction would drift; keeping it, 300 bytes after
        // the burst take 100 s to within one nanosecond.
        let l = RateLimiter::with_burst(3, Duration::ZERO);
        // The minimum capacity is one byte.
        l.acquire(1).await;
        let t = send(&l, 300, 1).await;
        let diff = t.as_nanos().abs_diff(100_000_000_000);
        assert!(diff <= 1, "{t:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn r_net_6_burst_after_idle_is_capped() {
        let l = RateLimiter::new(1_000_000);
        // Drain the burst (50 ms worth = 50,000 bytes), then sit idle an hour.
        assert_eq!(send(&l, 50_000, 50_000).await, Duration::ZERO);
        tokio::time::advance(Duration::from_secs(3600)).await;
        // Only 50,000 bytes go at once; the next 1,000 wait for their credit
        // (1 ms: tokio's timer has millisecond resolution, and the credit
        // earned while oversleeping is kept, so it evens out).
        assert_eq!(send(&l, 50_000, 10_000).await, Duration::ZERO);
        assert_eq!(send(&l, 1000, 1000).await, Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn r_net_6_one_large_write() {
        // One 2,050,000-byte request at 1 MB/s: 50,000 from the burst, the
        // rest at the rate: exactly 2 s.
        let l = RateLimiter::new(1_000_000);
        assert_eq!(send(&l, 2_050_000, 2_050_000).await, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn r_net_6_many_connections_share_one_budget() {
        let l = RateLimiter::new(1_000_000);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let l = l.clone();
            // 32 × 100,000 bytes = 3,200,000 bytes, 50,000 of them from the burst.
            tasks.push(tokio::spawn(async move { send(&l, 100_000, 4096).await }));
        }
        let mut longest = Duration::ZERO;
        for t in tasks {
            longest = longest.max(t.await.unwrap());
        }
        assert_eq!(longest, Duration::from_millis(3150));
        assert_eq!(start.elapsed(), Duration::from_millis(3150));
    }

    #[tokio::test(start_paused = true)]
    async fn r_net_6_zero_is_unlimited() {
        let l = RateLimiter::new(0);
        assert!(!l.is_limited());
        assert_eq!(send(&l, 1 << 30, 1 << 20).await, Duration::ZERO);
    }
}
