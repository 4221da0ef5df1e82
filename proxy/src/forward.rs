//! Plain HTTP by absolute URI (R-NET-3), to port 80 unless the operator
//! opens more: checked, then forwarded to exactly the checked address. Redirects go back to the client, never followed.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;

use crate::audit::Entry;
use crate::body::{ProxyBody, boxed, empty};
use crate::decide::{Checked, Scheme};
use crate::exchange::{Exchange, Refusal};
use crate::io::{Activity, Tracked};
use crate::pool::Sender;
use crate::target::{Target, parse_authority};

/// Headers that describe one hop, never forwarded either way (RFC 9110 §7.6.1),
/// besides every `Proxy-*` header and those named by `Connection`.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Remove hop-by-hop and `Proxy-*` headers (and, upstream-bound, `Host` and
/// any client-sent job header).
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(*n);
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for n in proxy {
        headers.remove(n);
    }
}

/// The request's `Host` header must name the same host and port as the
/// target; HTTP/1.1 requires one.
pub(crate) fn check_host_header(
    headers: &HeaderMap,
    version: Version,
    target: &Target,
    default_port: u16,
) -> Result<(), Refusal> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let Some(value) = hosts.next() else {
        if version == Version::HTTP_11 {
            return Err(Refusal::bad("missing Host header"));
        }
        return Ok(());
    };
    if hosts.next().is_some() {
        return Err(Refusal::bad("more than one Host header"));
    }
    let text = value
        .to_str()
        .map_err(|_| Refusal::bad("non-ASCII Host header"))?;
    let host = parse_authority(text, Some(default_port))
        .map_err(|e| Refusal::bad(format!("bad Host header: {e}")))?;
    if host != *target {
        return Err(Refusal::bad(format!(
            "Host header `{host}` does not match the request target `{target}`"
        )));
    }
    Ok(())
}

/// The target of an absolute-form `http://` request.
fn target_of(uri: &Uri) -> Result<Target, Refusal> {
    match uri.scheme_str() {
        Some("http") => {}
        Some(_) => {
            return Err(Refusal::bad(
                "only http:// URIs are proxied; use CONNECT for https",
            ));
        }
        None => {
            return Err(Refusal::bad(
                "not an absolute URI: send requests to this proxy as `GET http://host/path`",
            ));
        }
    }
    let authority = uri
        .authority()
        .ok_or_else(|| Refusal::bad("absolute URI without a host"))?;
    parse_authority(authority.as_str(), Some(80))
        .map_err(|e| Refusal::bad(format!("bad request target: {e}")))
}

pub(crate) async fn handle(
    req: Request<hyper::body::Incoming>,
    entry: Arc<Entry>,
    exchange: Exchange,
) -> Result<Response<ProxyBody>, Refusal> {
    if req.method() == hyper::Method::TRACE {
        return Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "TRACE is not proxied",
        ));
    }
    let target = target_of(req.uri())?;
    entry.set_target(&target);
    check_host_header(req.headers(), req.version(), &target, 80)?;
    let gate = &exchange.gate;
    // Decided on its own, whatever this client connection or a kept
    // upstream connection carried before.
    let checked = gate.decide(&entry, &target, Scheme::Http).await?;
    let kept = exchange.pool.take(&checked);
    let reused = kept.is_some();
    let (mut sender, mut addr) = match kept {
        Some(kept) => kept,
        None => open(&exchange, &entry, &checked).await?,
    };
    entry.update(|r| r.ip = Some(addr.ip()));

    let (parts, body) = req.into_parts();
    // Origin form; the target's path is shared, not copied.
    let uri = match parts.uri.into_parts().path_and_query {
        Some(p) if p.as_str().starts_with('/') => Uri::from(p),
        Some(p) if p.as_str().starts_with('?') => format!("/{}", p.as_str())
            .parse()
            .map_err(|_| Refusal::bad("bad request path"))?,
        _ => Uri::from_static("/"),
    };
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    headers.remove(header::HOST);
    let host_value = if target.port == 80 {
        host_text(&target)
    } else {
        format!("{}:{}", host_text(&target), target.port)
    };
    headers.insert(
        header::HOST,
        HeaderValue::from_str(&host_value).map_err(|_| Refusal::bad("bad host"))?,
    );
    gate.set_job_header(&mut headers);

    let body = if hyper::body::Body::is_end_stream(&body) {
        empty()
    } else {
        boxed(body)
    };
    let mut up = Request::new(body);
    *up.method_mut() = parts.method;
    *up.uri_mut() = uri;
    *up.version_mut() = Version::HTTP_11;
    *up.headers_mut() = headers;

    let resp = match sender.try_send_request(up).await {
        Ok(resp) => resp,
        Err(mut e) => match e.take_message() {
            // The kept connection closed before the request went out: it
            // goes on a new one to the same checked addresses.
            Some(up) if reused => {
                (sender, addr) = open(&exchange, &entry, &checked).await?;
                entry.update(|r| r.ip = Some(addr.ip()));
                sender.send_request(up).await.map_err(upstream_failed)?
            }
            _ => return Err(upstream_failed(e.into_error())),
        },
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        return Err(Refusal::new(
            StatusCode::BAD_GATEWAY,
            "upstream tried to switch protocols",
        ));
    }
    // Ready again once this response has been read to its end.
    exchange.pool.put(addr, sender);
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, boxed(body)))
}

fn upstream_failed(e: hyper::Error) -> Refusal {
    Refusal::new(StatusCode::BAD_GATEWAY, format!("upstream: {e}"))
}

/// A new upstream connection to a checked address, served by a task of its
/// own until it is idle for the idle timeout, closed, or the proxy stops.
async fn open(
    exchange: &Exchange,
    entry: &Entry,
    checked: &Checked,
) -> Result<(Sender, SocketAddr), Refusal> {
    let (stream, addr) = exchange
        .gate
        .connect_checked(entry, checked, exchange.connect_timeout)
        .await?;
    // The connection outlives the client connection that opened it: it has
    // its own idle clock.
    let activity = Activity::new();
    let io = TokioIo::new(Tracked::new(stream, activity.clone()));
    let (sender, conn) = hyper::client::conn::http1::handshake::<_, ProxyBody>(io)
        .await
        .map_err(|e| Refusal::new(StatusCode::BAD_GATEWAY, format!("upstream handshake: {e}")))?;
    let idle = exchange.idle_timeout;
    let mut stop = exchange.stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = conn => {}
            () = activity.idle(idle) => {}
            _ = stop.wait_for(|stopped| *stopped) => {}
        }
    });
    Ok((sender, addr))
}

/// The host as it goes into a `Host` header (IPv6 in brackets).
fn host_text(target: &Target) -> String {
    match target.host {
        protocol::domain::Host::Ip(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
        ref h => h.to_string(),
    }
}
