//! Connecting to an upstream: only to addresses the policy checked, and
//! only through the [`Gate`](crate::gate::Gate).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::decide::Checked;
use crate::resolve::BoxFuture;

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
pub(crate) const MAX_TRIES: usize = 4;

/// Try the checked addresses in order; the first that connects wins.
///
/// It takes a [`Checked`], which only `Policy::check` can make: the type
/// system keeps every upstream connection behind the decision. The gate is
/// its one caller, for the proxy and WASM egress alike (R-NET-10).
pub(crate) async fn connect_first(
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
