//! The egress proxy for jobs in `http` network mode (R-NET-3..R-NET-9).
//!
//! A job in `http` mode reaches the world only through one of these proxies:
//! it is the security boundary between a job and everything else. One
//! [`Proxy`] serves one job; a process may run many on different listeners.
//!
//! # Security model
//! The job is the attacker. It controls every byte of every request, the
//! names it asks for and (through DNS it may control) what those names
//! resolve to. The proxy must ensure that the job reaches only its allowed
//! domains, only over HTTP or HTTPS, never an address of the node, the skrei
//! network or any private or special-purpose range, at no more than the
//! job's rate, and that every attempt is on record.
//!
//! # One gate for both engines
//! Steps 3, 4, 6 and 7 below are one object, the job's [`Gate`] ([`gate`]):
//! the proxy server passes each request through it, and so does the WASM
//! executor for each wasi-http request of an `http` job, in process
//! (R-NET-10). Both engines therefore decide with the same [`Policy`],
//! connect only to the addresses it checked, pace the job's bytes with the
//! same pair of limiters and write the same audit records. They differ only
//! in where the bytes are metered (see [`gate`]).
//!
//! For every request on a client connection, one at a time (see [`server`]):
//! 1. **Head** (`head.rs`): read under a timeout and a size limit, refused
//!    when the framing is ambiguous (`Content-Length` with
//!    `Transfer-Encoding`, repeated framing headers, two `Host` headers,
//!    non-ASCII target or host, `Upgrade`), before hyper can reinterpret it.
//! 2. **Target** ([`target`]): plain HTTP only in absolute form
//!    (`GET http://host[:port]/path`) to an allowed port (80 by default),
//!    HTTPS only as `CONNECT host:port` to an allowed port (443 by default). The authority is split once and its
//!    host parsed by `protocol::domain::Host::parse`, the grammar of the
//!    job's domains: numeric forms resolvers would read as addresses
//!    (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`) are refused, userinfo
//!    (`allowed.com@evil.com`) is refused, and a `Host` header that names
//!    another host or port than the target is refused.
//! 3. **Decision** ([`decide`], through the [`Gate`]): the port (plain HTTP and HTTPS each have
//!    their list), then the normalised host against the control-plane
//!    [`DenySet`] by name, then the job's domains (`DomainSet::allows`, the
//!    one matching rule), then one resolution (none for an IP literal), then
//!    every resolved address against the deny set (`IP:port` and IP), the
//!    special-purpose table ([`ranges::classify`]) and the node's own
//!    addresses ([`OwnAddresses`], re-read as interfaces change), the last
//!    two unless an operator-allowed range covers the address. One bad
//!    address refuses the request. Names outside the job's domains are
//!    never resolved (no DNS queries on the job's behalf for arbitrary
//!    names).
//! 4. **Connection** ([`Gate`], [`upstream`]): only to an address from that
//!    checked list, after the `allow` is on record, through a [`Connector`]
//!    that is given the `SocketAddr` itself: no second lookup, so DNS
//!    rebinding has nothing to act on, and no proxy environment variable is
//!    ever consulted.
//! 5. **Forwarding**: the request goes upstream in origin form with the
//!    normalised `Host`; hop-by-hop and `Proxy-*` headers removed both ways, a
//!    client's `X-Skrei-Job` replaced with the real job id
//!    ([`Gate::set_job_header`]), redirects
//!    returned to the client and never followed.
//! 6. **Rate and counts** ([`meter`]): the whole client connection passes
//!    through the gate's [`RateLimiter`]s, shared by all the job's
//!    connections, and is counted, heads
//!    included both ways (the head that is read before any decision is
//!    charged as soon as it is complete), so no byte the job moves escapes
//!    the limit or the record.
//! 7. **Audit** ([`audit`]): one JSON record per request or tunnel, opened
//!    by the gate ([`Gate::record`]) and written when its connection ends,
//!    with the decision, the reason and the byte counts. A job's log is
//!    capped ([`capped`]): past the cap the oldest records go and the log
//!    says how many.
//!
//! The control-plane deny set is filled by the node (its API and libp2p
//! addresses, every peer's advertised addresses); a proxy adds its own
//! listening address. The node's own addresses are this host's interfaces'
//! by default; a proxy in a container of its own is given the host's too.
//!
//! A client connection is kept alive between plain-HTTP requests, and each
//! request goes through every step above on its own: a pipelined or later
//! request never rides on an earlier one's head check, decision or
//! upstream connection. Upstream connections are kept per job, keyed by
//! the checked address (`pool.rs`): a request reuses one only to an address
//! its own decision allowed. A tunnel, a chunked request body, HTTP/1.0 and
//! `Connection: close` end the client connection. Every wait is bounded (header read, idle, connect, resolve
//! timeouts), as are the connections per job and in total, the head size and
//! the buffered body bytes per connection. [`Proxy::shutdown`] closes every
//! connection and tunnel of a job that has ended.
//!
//! Refusals by policy are `403` with a one-line plain-text reason; malformed
//! requests are `400` (`408`, `431` for slow and oversized heads, `503` over
//! the connection limits); upstream failures are `502`.
//!
//! # Example
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use protocol::domain::DomainSet;
//! use proxy::{Proxy, ProxyConfig};
//!
//! let domains = DomainSet::parse([".example.com"]).map_err(|e| format!("{e:?}"))?;
//! let proxy = Proxy::builder(ProxyConfig::new("job-1", domains)).build()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! tokio::spawn(proxy.serve(listener));
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod audit;
mod body;
pub mod capped;
pub mod config;
mod connect;
pub mod decide;
pub mod deny;
mod exchange;
mod forward;
pub mod gate;
mod head;
mod io;
pub mod local;
pub mod meter;
mod pool;
pub mod ranges;
pub mod rate;
pub mod resolve;
pub mod server;
#[cfg(target_os = "linux")]
mod splice;
pub mod target;
pub mod upstream;

pub use audit::{AuditRecord, AuditSink, MemorySink, Verdict, WriterSink};
pub use capped::{CappedLog, Dropped};
pub use config::{DEFAULT_RATE, JOB_HEADER, Limits, ProxyConfig};
pub use decide::{Checked, Denial, Policy, Scheme};
pub use deny::DenySet;
pub use gate::{BadJobId, Connection, Gate, GateBuilder, OpenError};
pub use local::{OwnAddresses, local_addresses};
pub use meter::{Meter, Metered};
pub use ranges::{Cidr, CidrError, classify};
pub use rate::RateLimiter;
pub use resolve::{ResolveError, Resolver, StaticResolver, SystemResolver};
pub use server::{BuildError, Proxy, ProxyBuilder};
pub use target::{Target, TargetError};
pub use upstream::{Connector, TcpConnector};
