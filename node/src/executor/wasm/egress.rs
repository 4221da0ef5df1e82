//! Outgoing wasi-http requests of an `http` WASM job (R-NET-10): the
//! wasi-http side of the job's egress [`Gate`].
//!
//! Every request a component sends goes through [`Egress::send_request`].
//! The authority is parsed by the proxy's one parser, then the gate does
//! what it does for the proxy: decides (deny set by name, the job's
//! `DomainSet::allows`, one resolution, every address against the deny set,
//! the special-purpose table and the node's own addresses), connects to a
//! checked address only, paces the connection with the job's limiters (one
//! per direction, shared by all its requests) and writes its record to
//! `network.log` in the proxy's format when the connection closes; the
//! executor waits for [`Gate::settled`] before the results are published.
//! Like the proxy, the gate replaces any `X-Skrei-Job` header with the real
//! execution id, so the node API (which refuses requests carrying it,
//! R-NET-7) and any other skrei service can tell a job's request from a
//! local user's.
//!
//! What stays here is the glue: the wasi-http hooks, TLS for `https`
//! (on the gate's metered connection, so TLS bytes count too), the request
//! in origin form, the guest's timeouts, and a refusal answered as
//! `HTTP-request-denied`, never a connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::http::{self, uri::Scheme};
use hyper_util::rt::TokioIo;
use protocol::domain::Host;
use proxy::{Gate, Meter, OpenError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_rustls::rustls::{self, pki_types::ServerName};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// A boxed future, as the wasi-http hook hands them around.
type HookFuture<T> = Box<dyn Future<Output = Result<T, Error>> + Send>;

/// The job's egress, shared by all its requests.
pub(crate) struct Egress {
    inner: Arc<Shared>,
}

struct Shared {
    gate: Gate,
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    /// The job's end: no wait on its behalf goes past it.
    deadline: Instant,
}

impl Egress {
    /// Requests through `gate`; `https` verified with `tls`; no wait past
    /// `deadline`, and no connect longer than `connect_timeout`.
    pub(crate) fn new(
        gate: Gate,
        tls: Arc<rustls::ClientConfig>,
        connect_timeout: Duration,
        deadline: Instant,
    ) -> Egress {
        Egress {
            inner: Arc::new(Shared {
                gate,
                tls,
                connect_timeout,
                deadline,
            }),
        }
    }
}

/// TLS for `https` requests: the webpki roots plus `extra` (a private CA,
/// or a test's own).
pub(crate) fn tls_config(
    extra: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    for cert in extra {
        roots.add(cert.clone())?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

impl WasiHttpHooks for Egress {
    fn is_supported_scheme(&mut self, scheme: &Scheme) -> bool {
        // R-NET-3: HTTP and HTTPS only.
        *scheme == Scheme::HTTP || *scheme == Scheme::HTTPS
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, HookFuture<()>), Error>> + Send>
    {
        drop(fut);
        let inner = self.inner.clone();
        Box::new(async move { inner.send(request, options).await })
    }
}

impl Shared {
    /// Time left before the job's deadline, capping `wanted`.
    fn bounded(&self, wanted: Option<Duration>, default: Duration) -> Duration {
        let left = self.deadline.saturating_duration_since(Instant::now());
        wanted.unwrap_or(default).min(left)
    }

    async fn send(
        self: Arc<Self>,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<(http::Response<WasiBody>, HookFuture<()>), Error> {
        let gate = &self.gate;
        let entry = gate.record(Meter::new());
        entry.update(|r| r.method = request.method().to_string());
        let uri = request.uri().clone();
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            other => {
                let other = other.unwrap_or("").to_owned();
                entry.update(|r| r.reason = Some(format!("scheme `{other}` is not http or https")));
                return Err(Error::HttpRequestDenied);
            }
        };
        let Some(authority) = uri.authority() else {
            entry.update(|r| r.reason = Some("no authority in the request".into()));
            return Err(Error::HttpRequestUriInvalid);
        };
        entry.update(|r| r.host = authority.as_str().to_owned());
        let target =
            proxy::target::parse_authority(authority.as_str(), Some(if tls { 443 } else { 80 }))
                .map_err(|e| {
                    entry.update(|r| r.reason = Some(e.to_string()));
                    Error::HttpRequestDenied
                })?;
        let scheme = if tls {
            proxy::Scheme::Https
        } else {
            proxy::Scheme::Http
        };
        let opts = options.unwrap_or_default();
        let connect_timeout = self.bounded(opts.connect_timeout, self.connect_timeout);
        // The connection holds the record from here: it is written when
        // hyper drops the connection.
        let stream = gate
            .open(entry.clone(), &target, scheme, connect_timeout)
            .await
            .map_err(|e| match e {
                OpenError::Denied(_) => Error::HttpRequestDenied,
                _ => Error::ConnectionRefused,
            })?;

        let io: Box<dyn Io> = if tls {
            let name = match &target.host {
                Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
                Host::Name(n) => ServerName::try_from(n.clone()).map_err(|e| {
                    entry.update(|r| r.reason = Some(format!("TLS server name: {e}")));
                    Error::TlsProtocolError
                })?,
            };
            let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
            let tls = tokio::time::timeout(connect_timeout, connector.connect(name, stream))
                .await
                .map_err(|_| Error::ConnectionTimeout)?
                .map_err(|e| {
                    entry.update(|r| r.reason = Some(format!("TLS: {e}")));
                    Error::TlsCertificateError
                })?;
            Box::new(tls)
        } else {
            Box::new(stream)
        };
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake::<_, WasiBody>(TokioIo::new(io))
            .await
            .map_err(Error::from)?;

        // R-NET-7: the guest's own value never goes out. On HTTPS too:
        // in process the request is seen before TLS, unlike the sidecar's
        // tunnels, so a skrei API behind TLS is told as well.
        gate.set_job_header(request.headers_mut());
        // Origin form upstream, as the proxy forwards; the Host header was
        // set by wasi-http from the same authority.
        *request.uri_mut() = http::Uri::builder()
            .path_and_query(uri.path_and_query().map_or("/", |p| p.as_str()))
            .build()
            .map_err(|_| Error::HttpRequestUriInvalid)?;
        let first_byte = self.bounded(opts.first_byte_timeout, Duration::from_secs(600));
        let mut conn = Box::pin(conn);
        let send = tokio::time::timeout(first_byte, sender.send_request(request));
        tokio::pin!(send);
        // Drive the connection while waiting for the response head.
        let mut conn_done = false;
        let response = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = send.as_mut().poll(cx) {
                return Poll::Ready(
                    r.map_err(|_| Error::ConnectionReadTimeout)?
                        .map_err(Error::from),
                );
            }
            if !conn_done {
                match conn.as_mut().poll(cx) {
                    Poll::Ready(Ok(())) => conn_done = true,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(Error::from(e))),
                    Poll::Pending => {}
                }
            }
            Poll::Pending
        })
        .await
        .inspect_err(|e| {
            let e = format!("{e:?}");
            entry.update(|r| r.reason = Some(e));
        })?;
        entry.update(|r| r.status = Some(response.status().as_u16()));
        let between = self.bounded(opts.between_bytes_timeout, Duration::from_secs(600));
        let response = response
            .map(|body| BodyExt::boxed_unsync(body.map_err(Error::from).with_timeout(between)));
        let io: HookFuture<()> = Box::new(async move {
            if conn_done {
                return Ok(());
            }
            conn.await.map_err(Error::from)
        });
        Ok((response, io))
    }
}

/// What hyper is given: plain TCP or TLS over it, both metered.
trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A body that fails when no frame arrives for `timeout`.
trait WithTimeout: Sized {
    fn with_timeout(self, timeout: Duration) -> Idle<Self>;
}

impl<B> WithTimeout for B {
    fn with_timeout(self, timeout: Duration) -> Idle<B> {
        Idle {
            body: self,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

struct Idle<B> {
    body: B,
    timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl<B> hyper::body::Body for Idle<B>
where
    B: hyper::body::Body<Data = Bytes, Error = Error> + Unpin,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(r) => {
                let deadline = Instant::now() + this.timeout;
                this.sleep.as_mut().reset(deadline);
                Poll::Ready(r)
            }
            Poll::Pending => {
                ready!(this.sleep.as_mut().poll(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}
