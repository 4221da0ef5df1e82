//! CONNECT tunnels between two TCP sockets moved by `splice(2)`: the
//! payload goes from one socket to a pipe and on to the other inside the
//! kernel, never copied into the proxy.
//!
//! The payload is still the job's: every move is counted into the tunnel's
//! [`Meter`] and charged to the job's limiter in its direction, and the
//! next move in that direction first waits out the debt, exactly as
//! [`Metered`](crate::meter::Metered) paces a stream; a limited direction
//! moves at most one limiter chunk at a time. Linux only; elsewhere, and
//! for streams that are not TCP sockets, tunnels copy through a buffer.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::io::Activity;
use crate::meter::Meter;
use crate::rate::RateLimiter;

/// The most one splice moves, and what the pipe is asked to hold.
const PIPE_BYTES: usize = 256 * 1024;

/// One direction of a tunnel: who reads, who writes, how it is counted.
pub(crate) struct Way<'a> {
    pub(crate) from: &'a TcpStream,
    pub(crate) to: &'a TcpStream,
    pub(crate) limiter: &'a RateLimiter,
    /// Whether this way's bytes come from the job (`up`).
    pub(crate) up: bool,
    pub(crate) meter: &'a Arc<Meter>,
    pub(crate) activity: &'a Arc<Activity>,
}

/// A pipe for one direction, non-blocking both ends.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = rustix::pipe::pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
    // A larger pipe moves more per system call; the default (64 KiB) is
    // kept if the system refuses.
    let _ = rustix::pipe::fcntl_setpipe_size(&w, PIPE_BYTES);
    Ok((r, w))
}

/// Moves one direction until its end or an error, then passes the end on.
pub(crate) async fn run(way: Way<'_>) -> io::Result<()> {
    let moved = move_all(&way).await;
    let _ = rustix::net::shutdown(way.to, rustix::net::Shutdown::Write);
    moved
}

async fn move_all(way: &Way<'_>) -> io::Result<()> {
    // The pipe is made when the first bytes arrive: an idle tunnel holds
    // none. Without one (out of descriptors), bytes go through a buffer.
    way.from.readable().await?;
    match pipe() {
        Ok((pipe_r, pipe_w)) => splice_all(way, &pipe_r, &pipe_w).await,
        Err(e) => {
            tracing::debug!(error = %e, "no pipe for a tunnel: copying instead");
            copy_all(way).await
        }
    }
}

/// The most one move takes: one limiter chunk when the way is limited.
fn most(way: &Way<'_>, unlimited: usize) -> usize {
    if way.limiter.is_limited() {
        way.limiter.chunk().min(unlimited)
    } else {
        unlimited
    }
}

/// Counts `n` bytes that moved, and waits out their debt.
async fn moved(way: &Way<'_>, n: usize) {
    way.activity.touch();
    if way.up {
        way.meter.add_up(n as u64);
    } else {
        way.meter.add_down(n as u64);
    }
    if let Some(wait) = way.limiter.charge(n) {
        tokio::time::sleep(wait).await;
    }
}

async fn splice_all(way: &Way<'_>, pipe_r: &OwnedFd, pipe_w: &OwnedFd) -> io::Result<()> {
    let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
    let most = most(way, PIPE_BYTES);
    loop {
        way.from.readable().await?;
        let n = match way.from.try_io(Interest::READABLE, || {
            rustix::pipe::splice(way.from, None, pipe_w, None, most, flags).map_err(Into::into)
        }) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        let mut left = n;
        while left > 0 {
            way.to.writable().await?;
            match way.to.try_io(Interest::WRITABLE, || {
                rustix::pipe::splice(pipe_r, None, way.to, None, left, flags).map_err(Into::into)
            }) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => left -= k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        moved(way, n).await;
    }
}

async fn copy_all(way: &Way<'_>) -> io::Result<()> {
    let mut buf = vec![0u8; most(way, 64 * 1024)];
    loop {
        way.from.readable().await?;
        let n = match way.from.try_read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        let mut sent = 0;
        while sent < n {
            way.to.writable().await?;
            match way.to.try_write(&buf[sent..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => sent += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        moved(way, n).await;
    }
}
