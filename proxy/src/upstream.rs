//! Connecting to an upstream: only to addresses the policy checked.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use hyper::StatusCode;

use crate::audit::{Entry, Verdict};
use crate::decide::{Checked, Scheme};
use crate::resolve::BoxFuture;
use crate::server::{Inner, Refusal};
use crate::target::Target;

/// Opens TCP connections to checked addresses. The proxy never connects any
/// other way; tests inject a connector that records where it was asked to go.
pub trait Connector: Send + Sync + 'static {
    /// Connect to exactly `addr`.
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<TcpStream>>;
}

/// Plain TCP. Never consults proxy environment variables: it only ever
/// sees a socket address.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<TcpStream>> {
        Box::pin(TcpStream::connect(addr))
    }
}

/// At most this many addresses are tried, so that a name with hundreds of
/// records cannot hold a connection for hundreds of connect timeouts.
const MAX_TRIES: usize = 4;

/// Try the checked addresses in order; the first that connects wins.
///
/// It takes a [`Checked`], which only `Policy::check` can make: the type
/// system keeps every upstream connection behind the decision. The WASM
/// executor connects its wasi-http requests through here too (R-NET-10).
pub async fn connect_first(
    connector: &dyn Connector,
    checked: &Checked,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), String> {
    let mut last = String::from("no address");
    for &addr in checked.addrs().iter().take(MAX_TRIES) {
        match tokio::time::timeout(timeout, connector.connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok((s, addr));
            }
            Ok(Err(e)) => last = format!("connecting to {addr} failed: {e}"),
            Err(_) => last = format!("connecting to {addr} timed out"),
        }
    }
    Err(last)
}

/// The one path from a request's target to an upstream socket, shared by
/// plain HTTP and CONNECT: decide (port, deny set, domains, one resolution,
/// address table, own addresses), record the verdict, connect to an address
/// that passed.
pub(crate) async fn open_checked(
    inner: &Inner,
    target: &Target,
    scheme: Scheme,
    entry: &Entry,
) -> Result<TcpStream, Refusal> {
    let checked = inner.policy.check(target, scheme).await.map_err(|d| {
        entry.update(|r| r.ip = d.ip());
        Refusal::forbidden(d.to_string())
    })?;
    entry.update(|r| r.decision = Verdict::Allow);
    let timeout = inner.config.limits.connect_timeout;
    let (stream, addr) = connect_first(inner.connector.as_ref(), &checked, timeout)
        .await
        .map_err(|e| Refusal::new(StatusCode::BAD_GATEWAY, e))?;
    entry.update(|r| r.ip = Some(addr.ip()));
    Ok(stream)
}
