//! One job's proxy: the accept loop and the life of a client connection.
//!
//! Each client connection carries exactly one request (or one tunnel): the
//! head is read and checked (`head.rs`), hyper parses it again and the
//! handler decides; then the connection closes. Not keeping client
//! connections alive costs a TCP handshake on the loopback or bridge hop, and
//! removes a class of attacks: a pipelined second request can never ride on
//! a connection, an upstream connection or a decision made for the first.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::BytesMut;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
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
use crate::resolve::{Resolver, SystemResolver};
use crate::upstream::{Connector, TcpConnector};

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
        let meter = Meter::new();
        let Some(permits) = self.permits() else {
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
        let activity = Activity::new();
        let mut stream = Tracked::new(stream, activity.clone());
        let mut buf = BytesMut::new();
        let head = read_head(
            &mut stream,
            &mut buf,
            limits.max_header_bytes,
            limits.max_headers,
            limits.header_read_timeout,
        )
        .await;
        // R-SEC-4: the head is read at once (its timeout measures the
        // client, not the rate), then charged like any other bytes of the
        // job, accepted or not, before anything is done with it.
        meter.add_up(buf.len() as u64);
        match head {
            Ok(()) => {}
            Err(HeadError::Closed) => {
                // Nothing to answer: the debt is left for the job's next bytes.
                let _ = up.charge(buf.len());
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
                if self.paced(up.acquire(buf.len())).await {
                    let _ = tokio::time::timeout(
                        limits.header_read_timeout,
                        self.answer(&mut stream, &meter, r.status, &r.reason),
                    )
                    .await;
                }
                return;
            }
        }
        if !self.paced(up.acquire(buf.len())).await {
            return;
        }
        // Waiting for the rate is not the client being idle.
        activity.touch();
        let handled = Arc::new(AtomicBool::new(false));
        let entry_slot = Arc::new(Mutex::new(None));
        let exchange = Exchange {
            gate: gate.clone(),
            activity: activity.clone(),
            idle_timeout: limits.idle_timeout,
            connect_timeout: limits.connect_timeout,
            stop: inner.stop.subscribe(),
            handled: handled.clone(),
            _permits: Arc::new(permits),
            meter: meter.clone(),
            entry: entry_slot.clone(),
        };
        // Everything after the head passes through the job's limiters.
        let stream = gate.job_side(stream, meter.clone());
        let io = TokioIo::new(Rewind::new(buf.freeze(), stream));
        let this = self.clone();
        let service = service_fn(move |req| {
            let this = this.clone();
            let exchange = exchange.clone();
            async move { Ok::<_, Infallible>(this.handle(req, exchange).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .keep_alive(false)
            // `printf ... | nc` and friends shut their write side after the
            // request: still answer them (the idle timeout bounds the wait).
            .half_close(true)
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes.max(8192) + 8192)
            .max_headers(limits.max_headers)
            .serve_connection(io, service)
            .with_upgrades();
        let ended = tokio::select! {
            r = conn => match r {
                Ok(()) => None,
                Err(e) => Some(format!("malformed request: {e}")),
            },
            () = activity.idle(limits.idle_timeout) => Some("idle timeout".to_owned()),
            () = inner.stopped() => Some("proxy shut down".to_owned()),
        };
        if let Some(reason) = ended {
            tracing::debug!(%peer, %reason, "client connection ended");
            if !handled.load(Ordering::Acquire) {
                let entry = gate.record(meter);
                entry.update(|r| {
                    r.status = Some(400);
                    r.reason = Some(reason);
                });
            }
        }
        // The exchange is over (a tunnel holds its own reference): the
        // record can be written with its final counts.
        drop(
            entry_slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
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
