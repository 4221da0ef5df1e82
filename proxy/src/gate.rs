//! The egress gate: a job's one way out, shared by the proxy server and the
//! WASM executor (R-NET-3..R-NET-10, R-SEC-3, R-SEC-4).
//!
//! A [`Gate`] belongs to one job. Its caller parses a request's target with
//! the one parser ([`parse_authority`](crate::target::parse_authority)) and
//! opens the request's audit record ([`Gate::record`]); the gate then, in
//! this order and nowhere else:
//! 1. **decides** ([`Policy::check`]): the port, the deny set by name, the
//!    job's domains, one resolution (none for an IP literal and none for a
//!    name outside the domains), every resolved address against the deny
//!    set, the special-purpose table and the node's own addresses;
//! 2. **records** the verdict: a refusal with its reason and address, an
//!    `allow` before any connection is tried;
//! 3. **connects** to an address from the checked list only, through its
//!    [`Connector`], which is handed the `SocketAddr` itself: no second
//!    lookup, so DNS rebinding has nothing to act on;
//! 4. **meters** the job's bytes through the job's limiters, one per
//!    direction and shared by all its connections, into the record's counts;
//! 5. **audits**: the record is written once its last holder lets go, when
//!    the connection has closed; [`Gate::settled`] waits for every record
//!    of the job, so a run's log is complete when the run ends.
//!
//! Upstream requests carry the job's own `X-Skrei-Job`
//! ([`Gate::set_job_header`]), never the job's value (R-NET-7).
//!
//! Where the bytes are metered is the one difference between the engines.
//! WASM egress has no connection of the job's to meter, so it asks
//! [`Gate::open`] for a [`Connection`] metered on the world side (TLS
//! included). The proxy meters its client connection instead, from the
//! first byte of the request head, so that refused and malformed requests
//! are paced and counted too; it uses the gate's crate-private `connect`
//! (steps 1 to 3) for the upstream, which it must not meter a second time.
//!
//! # Example
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use protocol::domain::DomainSet;
//! use proxy::{DenySet, Gate, Meter, MemorySink, OpenError, Policy, Scheme, StaticResolver, Verdict};
//! use proxy::target::parse_authority;
//!
//! let policy = Policy::new(
//!     DomainSet::parse([".example.com"]).unwrap(),
//!     DenySet::new(),
//!     Vec::new(),
//!     Arc::new(StaticResolver::new()),
//!     Duration::from_secs(5),
//! );
//! let audit = MemorySink::new();
//! let gate = Gate::builder("job-1", policy).audit(Arc::new(audit.clone())).build().unwrap();
//!
//! let record = gate.record(Meter::new());
//! let target = parse_authority("evil.test", Some(443)).unwrap();
//! let refused = gate.open(record, &target, Scheme::Https, Duration::from_secs(5)).await;
//! assert!(matches!(refused, Err(OpenError::Denied(_))));
//! gate.settled(Duration::from_secs(1)).await;
//! assert_eq!(audit.records()[0].decision, Verdict::Deny);
//! # });
//! ```

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::header::{HeaderMap, HeaderValue};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::audit::{AuditSink, Entry, Recorder, Verdict, WriterSink};
use crate::config::{DEFAULT_RATE, JOB_HEADER};
use crate::decide::{Checked, Denial, Policy, Scheme};
use crate::meter::{Meter, Metered};
use crate::rate::RateLimiter;
use crate::target::Target;
use crate::upstream::{Connector, TcpConnector, connect_first};

/// The job id cannot be sent upstream as `X-Skrei-Job`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job id `{0}` cannot be sent as a header value (visible ASCII only)")]
pub struct BadJobId(pub String);

/// Why the gate opened no connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The policy refused the target; nothing was connected.
    #[error(transparent)]
    Denied(#[from] Denial),
    /// The target was allowed, but no checked address could be connected.
    #[error("{0}")]
    Unreachable(String),
}

/// Builds a [`Gate`] from a job and its policy.
pub struct GateBuilder {
    job: String,
    policy: Policy,
    connector: Arc<dyn Connector>,
    audit: Option<Arc<dyn AuditSink>>,
    rate_up: u64,
    rate_down: u64,
}

impl GateBuilder {
    /// Open connections with `connector` (default: plain TCP).
    pub fn connector(mut self, connector: Arc<dyn Connector>) -> Self {
        self.connector = connector;
        self
    }

    /// Write audit records to `sink` (default: JSON lines on stderr).
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// Bytes per second from the job (`up`) and to it (`down`); 0 is
    /// unlimited. Default: [`DEFAULT_RATE`] each way (R-NET-6).
    pub fn rates(mut self, up: u64, down: u64) -> Self {
        self.rate_up = up;
        self.rate_down = down;
        self
    }

    /// The gate.
    pub fn build(self) -> Result<Gate, BadJobId> {
        let job_header =
            HeaderValue::from_str(&self.job).map_err(|_| BadJobId(self.job.clone()))?;
        let sink = self
            .audit
            .unwrap_or_else(|| Arc::new(WriterSink::new(io::stderr())));
        Ok(Gate {
            inner: Arc::new(Shared {
                job_header,
                policy: self.policy,
                connector: self.connector,
                records: Recorder::new(sink, self.job),
                up: RateLimiter::new(self.rate_up),
                down: RateLimiter::new(self.rate_down),
            }),
        })
    }
}

/// One job's way out. Cheap to clone; clones share the limiters and the
/// record count.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Shared>,
}

struct Shared {
    /// The value of `X-Skrei-Job` on every upstream request.
    job_header: HeaderValue,
    policy: Policy,
    connector: Arc<dyn Connector>,
    records: Recorder,
    up: RateLimiter,
    down: RateLimiter,
}

impl Gate {
    /// Start building the gate of `job`, deciding with `policy`.
    pub fn builder(job: impl Into<String>, policy: Policy) -> GateBuilder {
        GateBuilder {
            job: job.into(),
            policy,
            connector: Arc::new(TcpConnector),
            audit: None,
            rate_up: DEFAULT_RATE,
            rate_down: DEFAULT_RATE,
        }
    }

    /// The job this gate serves.
    pub fn job(&self) -> &str {
        self.inner.records.job()
    }

    /// The decision this gate applies.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The job's limiters (up, down), shared by all its connections.
    pub fn limiters(&self) -> (&RateLimiter, &RateLimiter) {
        (&self.inner.up, &self.inner.down)
    }

    /// Opens the audit record of one request or tunnel, timed from now,
    /// `deny` until the gate allows it, with the byte counts of `meter`.
    /// It is written when the last holder drops it.
    pub fn record(&self, meter: Arc<Meter>) -> Arc<Entry> {
        self.inner.records.open(meter)
    }

    /// Waits until every record this gate opened is written, or `timeout`.
    pub async fn settled(&self, timeout: Duration) {
        self.inner.records.settled(timeout).await;
    }

    /// Sets `X-Skrei-Job` to this job, replacing every value the job sent
    /// (R-NET-7), so that a skrei service can tell a job's request from a
    /// local user's.
    pub fn set_job_header(&self, headers: &mut HeaderMap) {
        headers.insert(JOB_HEADER, self.inner.job_header.clone());
    }

    /// Decides on `target`, connects to a checked address and meters the
    /// connection on the world side (what is written is `up`), into
    /// `record`, which the connection holds until it is dropped.
    ///
    /// For an engine with no connection of the job's own to meter (WASM
    /// egress): every byte it moves, TLS included, passes here.
    pub async fn open(
        &self,
        record: Arc<Entry>,
        target: &Target,
        scheme: Scheme,
        connect_timeout: Duration,
    ) -> Result<Connection, OpenError> {
        let (stream, peer) = self
            .connect(&record, target, scheme, connect_timeout)
            .await?;
        let (up, down) = self.limiters();
        Ok(Connection {
            stream: Metered::world_side(stream, up.clone(), down.clone(), record.meter()),
            peer,
            _record: record,
        })
    }

    /// Steps 1 to 3 of the module docs: decide, record, connect to a
    /// checked address. The caller meters the bytes on the job's side
    /// ([`Gate::job_side`]); crate-private, so that no caller outside can
    /// reach the world unmetered.
    pub(crate) async fn connect(
        &self,
        record: &Entry,
        target: &Target,
        scheme: Scheme,
        connect_timeout: Duration,
    ) -> Result<(TcpStream, SocketAddr), OpenError> {
        let checked = self.decide(record, target, scheme).await?;
        self.connect_checked(record, &checked, connect_timeout)
            .await
    }

    /// Steps 1 and 2: decide on `target` and record the verdict. Every
    /// request is decided on its own, whatever its connection carried
    /// before; only the returned [`Checked`] opens or picks an upstream.
    pub(crate) async fn decide(
        &self,
        record: &Entry,
        target: &Target,
        scheme: Scheme,
    ) -> Result<Checked, OpenError> {
        record.set_target(target);
        match self.inner.policy.check(target, scheme).await {
            Ok(checked) => {
                record.update(|r| r.decision = Verdict::Allow);
                Ok(checked)
            }
            Err(denial) => {
                record.update(|r| {
                    r.ip = denial.ip();
                    r.reason = Some(denial.to_string());
                });
                Err(denial.into())
            }
        }
    }

    /// Step 3: connect to an address `checked` holds, recorded in `record`.
    pub(crate) async fn connect_checked(
        &self,
        record: &Entry,
        checked: &Checked,
        connect_timeout: Duration,
    ) -> Result<(TcpStream, SocketAddr), OpenError> {
        let (stream, addr) = connect_first(self.inner.connector.as_ref(), checked, connect_timeout)
            .await
            .map_err(|e| {
                record.update(|r| r.reason = Some(e.clone()));
                OpenError::Unreachable(e)
            })?;
        record.update(|r| r.ip = Some(addr.ip()));
        Ok((stream, addr))
    }

    /// Meters the job's side of a connection (the proxy's client
    /// connection): what is read from it is `up`, what is written `down`.
    pub(crate) fn job_side<S>(&self, stream: S, meter: Arc<Meter>) -> Metered<S> {
        let (up, down) = self.limiters();
        Metered::job_side(stream, up.clone(), down.clone(), meter)
    }
}

/// A connection opened by [`Gate::open`]: to a checked address, its bytes
/// paced by the job's limiters and counted into its audit record, which is
/// written once the connection is dropped.
pub struct Connection {
    stream: Metered<TcpStream>,
    peer: SocketAddr,
    _record: Arc<Entry>,
}

impl Connection {
    /// The checked address it is connected to.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
