//! HTTPS by `CONNECT host:port` (R-NET-3): authority form only, allowed
//! ports only, checked like plain HTTP, tunnelled to exactly the checked
//! address. The tunnel's client side is the metered client connection, so
//! its payload is paced and counted there.

use std::sync::Arc;

use hyper::upgrade::Upgraded;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::audit::Entry;
use crate::body::{ProxyBody, empty};
use crate::decide::Scheme;
use crate::exchange::{Exchange, Refusal};
use crate::forward::check_host_header;
use crate::io::{Rewind, Tracked};
use crate::meter::Metered;
use crate::target::parse_authority;

pub(crate) async fn handle(
    req: Request<hyper::body::Incoming>,
    entry: Arc<Entry>,
    exchange: Exchange,
) -> Result<Response<ProxyBody>, Refusal> {
    let uri = req.uri();
    // hyper hands over odd targets (absolute form, paths): only
    // `host:port` is a CONNECT target.
    if uri.scheme().is_some() || uri.path_and_query().is_some() {
        return Err(Refusal::bad("CONNECT target must be `host:port`"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| Refusal::bad("CONNECT target must be `host:port`"))?;
    let target = parse_authority(authority.as_str(), None)
        .map_err(|e| Refusal::bad(format!("bad CONNECT target: {e}")))?;
    entry.set_target(&target);
    if req.headers().contains_key(hyper::header::HOST) {
        check_host_header(req.headers(), req.version(), &target, target.port)?;
    }
    let (stream, _) = exchange
        .gate
        .connect(&entry, &target, Scheme::Https, exchange.connect_timeout)
        .await?;
    let idle = exchange.idle_timeout;
    let mut stop = exchange.stop.clone();
    tokio::spawn(async move {
        let client = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                entry.update(|r| r.reason = Some(format!("upgrade failed: {e}")));
                return;
            }
        };
        let tunnel = tunnel(client, stream, &exchange);
        tokio::select! {
            () = tunnel => {}
            () = exchange.activity.clone().idle(idle) => {
                entry.update(|r| r.reason = Some("tunnel idle timeout".into()));
            }
            _ = stop.wait_for(|stopped| *stopped) => {
                entry.update(|r| r.reason = Some("proxy shut down".into()));
            }
        }
        drop(exchange);
    });
    Ok(Response::new(empty()))
}

/// The client connection as the server hands it to hyper, when it is a TCP
/// socket.
type ClientIo = TokioIo<Rewind<Metered<Tracked<TcpStream>>>>;

/// Moves a tunnel's bytes both ways until both ends are done: spliced
/// between the two sockets where it can (Linux, a TCP client), else
/// copied through buffers; metered on the client side either way.
async fn tunnel(client: Upgraded, upstream: TcpStream, exchange: &Exchange) {
    #[cfg(target_os = "linux")]
    let client = match client.downcast::<ClientIo>() {
        Ok(parts) => {
            // Bytes the client sent after its CONNECT head, read (and
            // metered) before the tunnel opened: hyper's, then the rest of
            // the head reader's.
            let (prefix, metered) = parts.io.into_inner().into_parts();
            let client = metered.into_inner().into_inner();
            let mut upstream = upstream;
            for early in [parts.read_buf, prefix] {
                if !early.is_empty() && upstream.write_all(&early).await.is_err() {
                    return;
                }
            }
            let (up, down) = exchange.gate.limiters();
            let (meter, activity) = (&exchange.meter, &exchange.activity);
            let way = |from, to, limiter, up| crate::splice::Way {
                from,
                to,
                limiter,
                up,
                meter,
                activity,
            };
            let _ = tokio::join!(
                crate::splice::run(way(&client, &upstream, up, true)),
                crate::splice::run(way(&upstream, &client, down, false)),
            );
            return;
        }
        Err(client) => client,
    };
    let (cr, cw) = tokio::io::split(TokioIo::new(client));
    let (ur, uw) = tokio::io::split(Tracked::new(upstream, exchange.activity.clone()));
    tokio::join!(copy(cr, uw), copy(ur, cw));
}

/// What an idle tunnel holds per direction: a tunnel's first bytes (a TLS
/// hello) fit, and a thousand idle tunnels cost little.
const SMALL_BUFFER: usize = 4 * 1024;

/// What a busy direction moves per read: few system calls per megabyte.
const LARGE_BUFFER: usize = 256 * 1024;

/// Copy one direction until EOF, then pass the EOF on. The buffer starts
/// small and grows to [`LARGE_BUFFER`] once a read fills it, so only
/// tunnels that carry bulk data hold large buffers.
async fn copy<R, W>(mut r: R, mut w: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; SMALL_BUFFER];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
        if n == buf.len() && buf.len() < LARGE_BUFFER {
            buf = vec![0u8; LARGE_BUFFER];
        }
    }
    let _ = w.shutdown().await;
}
