//! Counting and pacing every byte a job moves (R-SEC-4, R-NET-6, R-NET-9).
//!
//! The rate limit and the audit's byte counts are applied to a whole
//! stream, not to the parts of a request a handler happens to forward: the
//! request and response heads, bodies, `CONNECT` heads and tunnel payload
//! all pass through one [`Metered`] stream, so no part of an exchange can
//! bypass the job's limiters or go unrecorded. The proxy meters its client
//! connection, the job's side ([`Metered::job_side`]); WASM egress meters
//! its upstream connection ([`Metered::world_side`]), TLS included.
//!
//! A read or write of `n` bytes is charged to the limiter after it
//! happened, and the next read or write in that direction first waits out
//! the debt; each operation moves at most one limiter chunk, so the debt
//! of the last one, never waited out, stays small. Over time the stream
//! moves no more than the rate (plus the limiter's burst).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::rate::RateLimiter;

/// Bytes moved each way by one request or tunnel; shared by its streams
/// and its audit record.
#[derive(Debug, Default)]
pub struct Meter {
    up: AtomicU64,
    down: AtomicU64,
}

impl Meter {
    /// Nothing counted yet.
    pub fn new() -> Arc<Meter> {
        Arc::default()
    }

    /// Bytes from the job towards the world so far.
    pub fn up(&self) -> u64 {
        self.up.load(Ordering::Relaxed)
    }

    /// Bytes from the world towards the job so far.
    pub fn down(&self) -> u64 {
        self.down.load(Ordering::Relaxed)
    }

    /// Counts `n` bytes from the job.
    pub fn add_up(&self, n: u64) {
        self.up.fetch_add(n, Ordering::Relaxed);
    }

    /// Takes back `n` bytes counted up that belong to the next request
    /// (read with this one's head, handed over with the stream).
    pub(crate) fn hand_back_up(&self, n: u64) {
        self.up.fetch_sub(n.min(self.up()), Ordering::Relaxed);
    }

    /// Counts `n` bytes to the job.
    pub fn add_down(&self, n: u64) {
        self.down.fetch_add(n, Ordering::Relaxed);
    }
}

/// One direction of a metered stream.
struct Way {
    limiter: RateLimiter,
    /// Whether this way's bytes count as `up` (from the job).
    up: bool,
    wait: Option<Pin<Box<Sleep>>>,
}

impl Way {
    fn new(limiter: RateLimiter, up: bool) -> Way {
        Way {
            limiter,
            up,
            wait: None,
        }
    }

    /// Waits out the debt of the last operation.
    fn pay(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(w) = &mut self.wait {
            ready!(w.as_mut().poll(cx));
            self.wait = None;
        }
        Poll::Ready(())
    }

    /// The most one operation may move (`wanted` when unlimited).
    fn chunk(&self, wanted: usize) -> usize {
        if self.limiter.is_limited() {
            wanted.min(self.limiter.chunk())
        } else {
            wanted
        }
    }

    /// Counts and charges `n` bytes that just moved.
    fn moved(&mut self, n: usize, meter: &Meter) {
        if n == 0 {
            return;
        }
        if self.up {
            meter.add_up(n as u64);
        } else {
            meter.add_down(n as u64);
        }
        if let Some(wait) = self.limiter.charge(n) {
            self.wait = Some(Box::pin(tokio::time::sleep(wait)));
        }
    }
}

/// A stream whose bytes are counted into a [`Meter`] and paced by the
/// job's limiters.
pub struct Metered<S> {
    inner: S,
    read: Way,
    write: Way,
    meter: Arc<Meter>,
}

impl<S> Metered<S> {
    /// A stream to the job (the proxy's client connection): what is read
    /// is `up`, what is written is `down`.
    pub fn job_side(inner: S, up: RateLimiter, down: RateLimiter, meter: Arc<Meter>) -> Metered<S> {
        Metered {
            inner,
            read: Way::new(up, true),
            write: Way::new(down, false),
            meter,
        }
    }

    /// A stream to the world (WASM egress's upstream connection): what is
    /// written is `up`, what is read is `down`.
    pub fn world_side(
        inner: S,
        up: RateLimiter,
        down: RateLimiter,
        meter: Arc<Meter>,
    ) -> Metered<S> {
        Metered {
            inner,
            read: Way::new(down, false),
            write: Way::new(up, true),
            meter,
        }
    }
}

impl<S> Metered<S> {
    /// The stream beneath: for bytes read before they are metered (request
    /// heads, charged by their reader as soon as they are complete).
    pub(crate) fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The stream beneath, for a caller that meters it by hand from now on
    /// (a spliced tunnel).
    pub(crate) fn into_inner(self) -> S {
        self.inner
    }

    /// Counts from now on into `meter` (the next request on a kept-alive
    /// connection); the limiters' debts carry over.
    pub(crate) fn set_meter(&mut self, meter: Arc<Meter>) {
        self.meter = meter;
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.read.pay(cx));
        let chunk = this.read.chunk(buf.remaining());
        let n = if chunk < buf.remaining() {
            // A smaller read than the caller offers, without `unsafe`: read
            // into a bounce buffer (a chunk is at most 16 KiB).
            let mut bounce = [0u8; 16 * 1024];
            let mut small = ReadBuf::new(&mut bounce[..chunk]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut small))?;
            buf.put_slice(small.filled());
            small.filled().len()
        } else {
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            buf.filled().len() - before
        };
        this.read.moved(n, &this.meter);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.write.pay(cx));
        let chunk = this.write.chunk(buf.len());
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..chunk]))?;
        this.write.moved(n, &this.meter);
        Poll::Ready(Ok(n))
    }

    /// Gathered writes (hyper's, for a head and body chunks without
    /// copying them together) when the way out is not limited; a limited
    /// way writes one chunk at a time.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.write.limiter.is_limited() {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return Pin::new(this).poll_write(cx, first);
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        this.write.moved(n, &this.meter);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        !self.write.limiter.is_limited() && self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn r_sec_4_both_ways_are_counted_and_paced() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let meter = Meter::new();
        // 10,000 B/s with a 500-byte burst each way.
        let mut s = Metered::job_side(
            a,
            RateLimiter::new(10_000),
            RateLimiter::new(10_000),
            meter.clone(),
        );
        b.write_all(&[1u8; 20_500]).await.unwrap();
        let start = Instant::now();
        let mut got = vec![0u8; 20_500];
        s.read_exact(&mut got).await.unwrap();
        // The last read's debt is not waited out: at least 1.95 s, at most 2 s.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1_950) && took <= Duration::from_secs(2),
            "{took:?}"
        );
        assert_eq!((meter.up(), meter.down()), (20_500, 0));
        let start = Instant::now();
        s.write_all(&[2u8; 10_500]).await.unwrap();
        let took = start.elapsed();
        assert!(took <= Duration::from_secs(1), "{took:?}");
        assert!(took >= Duration::from_millis(950), "{took:?}");
        assert_eq!(meter.down(), 10_500);
        let mut back = vec![0u8; 10_500];
        b.read_exact(&mut back).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn world_side_counts_writes_up() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let meter = Meter::new();
        let mut s = Metered::world_side(
            a,
            RateLimiter::unlimited(),
            RateLimiter::unlimited(),
            meter.clone(),
        );
        s.write_all(b"request").await.unwrap();
        b.write_all(b"response!").await.unwrap();
        let mut got = [0u8; 9];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!((meter.up(), meter.down()), (7, 9));
    }
}
