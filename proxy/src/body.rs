//! Forwarded bodies: pumped through the job's rate limiter and counted for
//! the audit record, with a small bounded buffer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Frame};
use tokio::sync::mpsc;

use crate::audit::Entry;
use crate::rate::RateLimiter;

/// The body type of every response the proxy sends.
pub type ProxyBody = BoxBody<Bytes, io::Error>;

/// A body with nothing but `text`.
pub(crate) fn full(text: impl Into<Bytes>) -> ProxyBody {
    http_body_util::Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub(crate) fn empty() -> ProxyBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// Which way bytes go, for counting.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Direction {
    Up,
    Down,
}

/// The receiving end of a pumped body.
struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

/// Pump `body` through `limiter` into a new body. Trailers are dropped (they
/// are hop-by-hop in practice and rarely supported by clients anyway).
pub(crate) fn pump<B>(body: B, limiter: RateLimiter, entry: Arc<Entry>, dir: Direction) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let chunk = limiter.chunk();
    tokio::spawn(async move {
        let mut body = std::pin::pin!(body);
        loop {
            let frame = tokio::select! {
                f = body.frame() => f,
                () = tx.closed() => return,
            };
            match frame {
                None => return,
                Some(Err(e)) => {
                    let _ = tx.send(Err(io::Error::other(e))).await;
                    return;
                }
                Some(Ok(frame)) => {
                    let Ok(mut data) = frame.into_data() else {
                        continue;
                    };
                    while !data.is_empty() {
                        let piece = data.split_to(chunk.min(data.len()));
                        let n = piece.len();
                        limiter.acquire(n).await;
                        if tx.send(Ok(piece)).await.is_err() {
                            return;
                        }
                        let counter = match dir {
                            Direction::Up => &entry.up,
                            Direction::Down => &entry.down,
                        };
                        counter.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
        }
    });
    ChannelBody { rx }.boxed()
}
