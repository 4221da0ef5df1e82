//! One job's proxy: the accept loop and the life of a client connection.
//!
//! A client connection carries requests strictly one at a time, each
//! decided on its own. For each, the head is read and checked (`head.rs`)
//! before hyper sees a byte of it; hyper is then handed exactly that
//! request's bytes (the head says where it ends: it has a length, or it is
//! the connection's last) and the handler decides. Bytes that follow, a
//! pipelined request included, wait for the next round and its own checks:
//! no request rides on another's head check, decision or upstream
//! connection (kept upstream connections are picked by each request's own
//! checked addresses, see `pool.rs`). A tunnel, a chunked request body,
//! HTTP/1.0 and `Connection: close` end the connection after their request.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::BytesMut;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::audit::{AuditSink, Verdict};
use crate::body::ProxyBody;
use crate::config::ProxyConfig;
use crate::decide::Policy;
use crate::exchange::Exchange;
use crate::gate::{BadJobId, Gate};
use crate::head::{HeadError, read_head, shown};
use crate::io::{Activity, Rewind, Tracked};
use crate::meter::Meter;
use crate::pool::Pool;
use crate::resolve::{Resolver, SystemResolver};
use crate::upstream::{Connector, TcpConnector};

/// The most of a request body hyper reads at once.
const BODY_BUFFER: usize = 256 * 1024;

/// Why a proxy could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The job id cannot be sent in an HTTP header.
    #[error("job id `{0}` cannot be sent as a header value (visible ASCII only)")]
    JobId(String),
    /// `max_connections` is 0.
    #[error("max_connections must be at least 1")]
    NoConnections,
}

/// Builds a [`Proxy`] from a config and its collaborators.
pub struct ProxyBuilder {
    config: ProxyConfig,
    resolver: Arc<dyn Resolver>,
    connector: Arc<dyn Connector>,
    audit: Option<Arc<dyn AuditSink>>,
    global: Option<Arc<Semaphore>>,
}

impl ProxyBuilder {
    /// Resolve names with `resolver` (default: the system resolver).
    pub fn resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolver = resolver;
        self
    }

    /// Open upstream connections with `connector` (default: plain TCP).
    pub fn connector(mut self, connector: Arc<dyn Connector>) -> Self {
        self.connector = connector;
        self
    }

    /// Write audit records to `sink` (default: JSON lines on stderr).
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// Share a limit on connections across all proxies of a process.
    pub fn global_limit(mut self, limit: Arc<Semaphore>) -> Self {
        self.global = Some(limit);
        self
    }

    /// The proxy.
    pub fn build(self) -> Result<Proxy, BuildError> {
        if self.config.limits.max_connections == 0 {
            return Err(BuildError::NoConnections);
        }
        let c = &self.config;
        let policy = Policy::new(
            c.domains.clone(),
            c.deny.clone(),
            c.allowed_ranges.clone(),
            self.resolver,
            c.limits.resolve_timeout,
        )
        .with_own_addresses(c.own_addresses.clone())
        .with_ports(c.http_ports.clone(), c.connect_ports.clone());
        let mut gate = Gate::builder(c.job_id.clone(), policy)
            .connector(self.connector)
            .rates(c.rate_up, c.rate_down);
        if let Some(sink) = self.audit {
            gate = gate.audit(sink);
        }
        let gate = gate.build().map_err(|BadJobId(id)| BuildError::JobId(id))?;
        Ok(Proxy {
            inner: Arc::new(Inner {
                job_conns: Arc::new(Semaphore::new(c.limits.max_connections)),
                pool: Arc::new(Pool::new(c.limits.max_connections)),
                gate,
                global: self.global,
                config: self.config,
                stop: tokio::sync::watch::Sender::new(false),
            }),
        })
    }
}

struct Inner {
    config: ProxyConfig,
    gate: Gate,
    job_conns: Arc<Semaphore>,
    /// Kept upstream connections, this job's only.
    pool: Arc<Pool>,
    global: Option<Arc<Semaphore>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Inner {
    /// Completes once [`Proxy::shutdown`] has been called.
    async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        // An error means the sender is gone, which cannot happen while
        // `self` is alive; treat it as stopped all the same.
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

/// One job's egress proxy. Cheap to clone; clones share limits and budgets.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

impl Proxy {
    /// Start building a proxy for `config`.
    pub fn builder(config: ProxyConfig) -> ProxyBuilder {
        ProxyBuilder {
            config,
            resolver: Arc::new(SystemResolver),
            connector: Arc::new(TcpConnector),
            audit: None,
            global: None,
        }
    }

    /// The job's egress gate: the decision, the connections, the limiters
    /// and the audit records of every request this proxy serves.
    pub fn gate(&self) -> &Gate {
        &self.inner.gate
    }

    /// Stop: the accept loop returns and every connection and tunnel of
    /// this proxy is closed (the job has ended). Idempotent.
    pub fn shutdown(&self) {
        self.inner.stop.send_replace(true);
        self.inner.pool.clear();
    }

    /// Accept and serve clients until the task is dropped.
    ///
    /// The listener's own address joins the deny set (unless it is a
    /// wildcard address), so that no request can loop through the proxy.
    pub async fn serve(self, listener: TcpListener) {
        if let Ok(own) = listener.local_addr()
            && !own.ip().is_unspecified()
        {
            self.inner.config.deny.insert_socket(own);
        }
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = self.inner.stopped() => return,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let this = self.clone();
                    tokio::spawn(async move { this.serve_connection(stream, peer).await });
                }
                Err(e) => {
                    // Out of descriptors and the like: back off, never spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn permits(&self) -> Option<(Option<OwnedSemaphorePermit>, OwnedSemaphorePermit)> {
        let global = match &self.inner.global {
            Some(g) => Some(g.clone().try_acquire_owned().ok()?),
            None => None,
        };
        let job = self.inner.job_conns.clone().try_acquire_owned().ok()?;
        Some((global, job))
    }

    /// Serve one client connection.
    pub async fn serve_connection(&self, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        self.serve_stream(stream, peer).await;
    }

    /// Serve one client connection over any byte stream: everything
    /// [`Proxy::serve_connection`] does once the TCP socket is set up. The
    /// fuzz targets (`fuzz/` at the repository root) drive whole requests
    /// through it in memory, with a [`Connector`] that records where the
    /// proxy would connect.
    pub async fn serve_stream<S>(&self, stream: S, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let inner = &self.inner;
        let gate = &inner.gate;
        let (up, _) = gate.limiters();
        let limits = &inner.config.limits;
        let Some(permits) = self.permits() else {
            let meter = Meter::new();
            let entry = gate.record(meter.clone());
            entry.update(|r| {
                r.status = Some(503);
                r.reason = Some("too many connections".into());
            });
            let mut stream = stream;
            self.answer(&mut stream, &meter, 503, "too many connections")
                .await;
            return;
        };
        let permits = Arc::new(permits);
        let activity = Activity::new();
        // Everything after a head passes through the job's limiters; heads
        // are read beneath them and charged by hand (see below).
        let mut io = gate.job_side(Tracked::new(stream, activity.clone()), Meter::new());
        // Bytes read and not yet served: the next request's first bytes,
        // read with the one before and already charged to the limiter.
        let mut buf = BytesMut::new();
        let mut first = true;
        loop {
            let meter = Meter::new();
            io.set_meter(meter.clone());
            let carried = buf.len();
            meter.add_up(carried as u64);
            if !first && buf.is_empty() {
                // Between requests the client may stay quiet for the idle
                // timeout; then its head must arrive within the head timeout.
                let more = tokio::select! {
                    r = io.get_mut().read_buf(&mut buf) => matches!(r, Ok(n) if n > 0),
                    () = tokio::time::sleep(limits.idle_timeout) => false,
                    () = inner.stopped() => false,
                };
                if !more {
                    return;
                }
            }
            first = false;
            let head = read_head(
                io.get_mut(),
                &mut buf,
                limits.max_header_bytes,
                limits.max_headers,
                limits.header_read_timeout,
            )
            .await;
            // R-SEC-4: the head is read at once (its timeout measures the
            // client, not the rate), then charged like any other bytes of
            // the job, accepted or not, before anything is done with it.
            let fresh = buf.len() - carried;
            meter.add_up(fresh as u64);
            let head = match head {
                Ok(head) => head,
                Err(HeadError::Closed) => {
                    // Nothing to answer: the debt is left for the job's next bytes.
                    let _ = up.charge(fresh);
                    return;
                }
                Err(HeadError::Rejected(r)) => {
                    let entry = gate.record(meter.clone());
                    entry.update(|rec| {
                        rec.method = r.method.clone();
                        rec.host = r.target.clone();
                        rec.status = Some(r.status);
                        rec.reason = Some(r.reason.clone());
                    });
                    tracing::debug!(%peer, reason = %r.reason, "request head refused");
                    if self.paced(up.acquire(fresh)).await {
                        let _ = tokio::time::timeout(
                            limits.header_read_timeout,
                            self.answer(io.get_mut(), &meter, r.status, &r.reason),
                        )
                        .await;
                    }
                    return;
                }
            };
            if !self.paced(up.acquire(fresh)).await {
                return;
            }
            // Waiting for the rate is not the client being idle.
            activity.touch();
            let exchange = Exchange {
                gate: gate.clone(),
                activity: activity.clone(),
                idle_timeout: limits.idle_timeout,
                connect_timeout: limits.connect_timeout,
                stop: inner.stop.subscribe(),
                handled: Arc::new(AtomicBool::new(false)),
                _permits: permits.clone(),
                meter,
                pool: inner.pool.clone(),
                entry: Arc::new(Mutex::new(None)),
            };
            match head.body {
                Some(body) if !head.last => {
                    // Exactly this request's bytes go to hyper; what
                    // follows is the next request's, checked like this one.
                    let end = (head.len as u64).saturating_add(body);
                    let this = if buf.len() as u64 > end {
                        buf.split_to(end as usize)
                    } else {
                        buf.split()
                    };
                    exchange.meter.hand_back_up(buf.len() as u64);
                    let more = end - this.len() as u64;
                    match self
                        .serve_request(Rewind::bounded(this.freeze(), io, more), &exchange, peer)
                        .await
                    {
                        Some(back) => io = back,
                        None => return,
                    }
                }
                _ => {
                    let io = Rewind::new(buf.split().freeze(), io);
                    self.serve_last(io, exchange, peer).await;
                    return;
                }
            }
        }
    }

    /// Serves one request whose end its head tells, on a connection that
    /// may carry more; the stream back when it may.
    async fn serve_request<S>(
        &self,
        io: Rewind<S>,
        exchange: &Exchange,
        peer: SocketAddr,
    ) -> Option<S>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let limits = &self.inner.config.limits;
        let conn = self
            .http1()
            // hyper reads the end of the bounded stream once the request
            // has been read: that is the end of this request, not the
            // client leaving.
            .half_close(true)
            .serve_connection(TokioIo::new(io), service(self.clone(), exchange.clone()))
            .without_shutdown();
        let ended = tokio::select! {
            r = conn => r.map_err(|e| format!("malformed request: {e}")),
            () = exchange.activity.clone().idle(limits.idle_timeout) => Err("idle timeout".to_owned()),
            () = self.inner.stopped() => Err("proxy shut down".to_owned()),
        };
        let back = match ended {
            Ok(parts) => {
                let io = parts.io.into_inner();
                // Kept alive only when hyper read exactly this request and
                // answered it.
                (io.exhausted()
                    && parts.read_buf.is_empty()
                    && exchange.handled.load(Ordering::Acquire))
                .then(|| io.into_inner())
            }
            Err(reason) => {
                self.ended(exchange, peer, reason);
                None
            }
        };
        exchange.finish();
        back
    }

    /// Serves a connection's last request: a tunnel, a chunked body (whose
    /// end only hyper's decoding tells) or a client that closes after it.
    async fn serve_last<S>(&self, io: Rewind<S>, exchange: Exchange, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let limits = &self.inner.config.limits;
        let conn = self
            .http1()
            .keep_alive(false)
            // `printf ... | nc` and friends shut their write side after the
            // request: still answer them (the idle timeout bounds the wait).
            .half_close(true)
            .serve_connection(TokioIo::new(io), service(self.clone(), exchange.clone()))
            .with_upgrades();
        let ended = tokio::select! {
            r = conn => match r {
                Ok(()) => None,
                Err(e) => Some(format!("malformed request: {e}")),
            },
            () = exchange.activity.clone().idle(limits.idle_timeout) => Some("idle timeout".to_owned()),
            () = self.inner.stopped() => Some("proxy shut down".to_owned()),
        };
        if let Some(reason) = ended {
            self.ended(&exchange, peer, reason);
        }
        // The exchange is over (a tunnel holds its own reference).
        exchange.finish();
    }

    /// hyper's HTTP/1 server as every request is served.
    fn http1(&self) -> hyper::server::conn::http1::Builder {
        let limits = &self.inner.config.limits;
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            // The whole head was read, under its timeout, before hyper
            // runs (`head.rs`): no timer of hyper's per request.
            .header_read_timeout(None)
            // Heads are limited before hyper sees them (`head.rs`); this
            // bounds what hyper buffers of a body, and lets bulk uploads
            // move in large reads.
            .max_buf_size(BODY_BUFFER.max(limits.max_header_bytes + 8192))
            .max_headers(limits.max_headers);
        builder
    }

    /// A connection ended early: on record when no handler saw its request
    /// (hyper's parser refused it).
    fn ended(&self, exchange: &Exchange, peer: SocketAddr, reason: String) {
        tracing::debug!(%peer, %reason, "client connection ended");
        if !exchange.handled.load(Ordering::Acquire) {
            let entry = exchange.gate.record(exchange.meter.clone());
            entry.update(|r| {
                r.status = Some(400);
                r.reason = Some(reason);
            });
        }
    }

    /// Waits for the rate limiter (`wait`) unless the proxy shuts down
    /// first; whether to go on.
    async fn paced(&self, wait: impl std::future::Future<Output = ()>) -> bool {
        tokio::select! {
            () = wait => true,
            () = self.inner.stopped() => false,
        }
    }

    /// Writes an answer of the proxy's own before hyper runs, paced and
    /// counted like any bytes to the job.
    async fn answer<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        stream: &mut W,
        meter: &Meter,
        status: u16,
        reason: &str,
    ) {
        let bytes = raw_response(status, reason);
        meter.add_down(bytes.len() as u64);
        let (_, down) = self.inner.gate.limiters();
        if self.paced(down.acquire(bytes.len())).await {
            let _ = stream.write_all(&bytes).await;
        }
    }

    /// Hands one request to its handler, with its audit record.
    async fn handle(
        &self,
        req: Request<hyper::body::Incoming>,
        exchange: Exchange,
    ) -> Response<ProxyBody> {
        exchange.handled.store(true, Ordering::Release);
        let entry = exchange.gate.record(exchange.meter.clone());
        *exchange
            .entry
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(entry.clone());
        entry.update(|r| {
            r.method = shown(req.method().as_str());
            r.host = shown(&req.uri().to_string());
        });
        let result = if req.method() == Method::CONNECT {
            crate::connect::handle(req, entry.clone(), exchange).await
        } else {
            crate::forward::handle(req, entry.clone(), exchange).await
        };
        match result {
            Ok(resp) => {
                entry.update(|r| r.status = Some(resp.status().as_u16()));
                resp
            }
            Err(refusal) => {
                entry.update(|r| {
                    // A 5xx after the policy allowed the request (the
                    // upstream failed) stays an `allow` with its reason.
                    if refusal.status.is_client_error() {
                        r.decision = Verdict::Deny;
                    }
                    r.status = Some(refusal.status.as_u16());
                    r.reason = Some(refusal.reason.clone());
                });
                refusal.response()
            }
        }
    }
}

/// The service hyper calls with the request.
fn service(
    proxy: Proxy,
    exchange: Exchange,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response<ProxyBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send,
> {
    service_fn(move |req| {
        let proxy = proxy.clone();
        let exchange = exchange.clone();
        async move { Ok::<_, Infallible>(proxy.handle(req, exchange).await) }
    })
}

/// A whole response written by hand, for refusals before hyper runs.
fn raw_response(status: u16, reason: &str) -> Vec<u8> {
    let phrase = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let body = format!("skrei proxy: {reason}\n");
    format!(
        "HTTP/1.1 {status} {phrase}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
