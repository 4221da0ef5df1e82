//! Who may use the API (R-SEC-1, R-NET-7), checked before any handler runs.
//!
//! In order, a request is refused when:
//! 1. it carries `X-Skrei-Job` (the egress proxies add it to everything a
//!    job sends): a job never starts or controls jobs;
//! 2. its source is neither loopback nor a range given with `--api-allow`;
//! 3. its `Host` is not one of the node's own (an IP literal that is
//!    loopback, the listening address or an `--api-allow` address, or
//!    `localhost`): 421. A page that rebinds its own name to 127.0.0.1
//!    still sends that name, so DNS rebinding ends here;
//! 4. it has an `Origin` other than the API's own exact origin, or
//!    `Sec-Fetch-Site` says another site sent it;
//! 5. it is a `POST` without a content type, or with one a page may send
//!    without a CORS preflight (`text/plain`, forms): 415;
//! 6. it lacks the node's token (`Authorization: Bearer TOKEN`): 401.
//!    `GET /metrics` alone is answered without it (docs/SECURITY.md says
//!    why).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::api_token::{ApiToken, TOKEN_ENV, TOKEN_FILE};

/// The header the egress proxy adds to every request a job makes.
pub const JOB_HEADER: &str = "x-skrei-job";

/// What the gate checks requests against.
#[derive(Clone, Debug)]
pub struct Gate {
    pub token: ApiToken,
    /// Where the API listens.
    pub listen: SocketAddr,
    /// Sources (and `Host` addresses) besides loopback (`--api-allow`).
    pub allow: Arc<[protocol::address::Cidr]>,
}

impl Gate {
    fn allowed_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_loopback() || self.allow.iter().any(|c| c.contains(ip))
    }

    /// Whether `Host` names this node rather than someone's domain.
    fn own_host(&self, host: &str) -> bool {
        let name = match host.rsplit_once(':') {
            // `[::1]:1234`, `127.0.0.1:1234`, `localhost:1234`
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        if name.eq_ignore_ascii_case("localhost") {
            return true;
        }
        let literal = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        let Ok(ip) = literal.parse::<IpAddr>() else {
            return false;
        };
        let listen = self.listen.ip().to_canonical();
        // An IP literal is the page's own origin, not a rebinding: on an
        // API listening on all interfaces any of the node's addresses is
        // its own.
        self.allowed_ip(ip) || ip.to_canonical() == listen || listen.is_unspecified()
    }
}

fn refuse(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError(status, message.into())
}

/// The gate, as axum middleware.
pub async fn check(
    State(gate): State<Gate>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    match decide(
        &gate,
        peer,
        request.method(),
        request.uri().path(),
        request.headers(),
    ) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            let unauthorized = refusal.0 == StatusCode::UNAUTHORIZED;
            let mut response = refusal.into_response();
            if unauthorized {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
            }
            response
        }
    }
}

fn decide(
    gate: &Gate,
    peer: SocketAddr,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if headers.contains_key(JOB_HEADER) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "requests from jobs are refused: a job cannot start or control jobs",
        ));
    }
    if !gate.allowed_ip(peer.ip()) {
        // The API is for clients on this machine (and the operator's own
        // `--api-allow` sources); a job network's address is not one.
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!(
                "requests from {} are refused: use the API from this machine, or start the \
                 node with --api-allow for this source",
                peer.ip()
            ),
        ));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !gate.own_host(host) {
        return Err(refuse(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this is the API of a skrei node, not of `{}`: call it by its address ({}) or \
                 localhost",
                host.chars().take(100).collect::<String>(),
                gate.listen
            ),
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let own = format!("http://{host}");
        let same = origin.to_str().is_ok_and(|o| o.eq_ignore_ascii_case(&own));
        if !same {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "requests from web pages of other origins are refused",
            ));
        }
    }
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "requests from web pages of other sites are refused",
        ));
    }
    if method == Method::POST {
        let media = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        match media.as_deref() {
            None | Some("") => {
                return Err(refuse(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "a POST needs a Content-Type: application/json, application/yaml or \
                     application/octet-stream",
                ));
            }
            Some("text/plain" | "application/x-www-form-urlencoded" | "multipart/form-data") => {
                return Err(refuse(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "this content type is refused (web pages can send it to any site): use \
                     application/json, application/yaml or application/octet-stream",
                ));
            }
            Some(_) => {}
        }
    }
    if method == Method::GET && path == "/metrics" {
        return Ok(());
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if gate.token.matches(token) => Ok(()),
        Some(_) => Err(unauthorized("the API token is wrong")),
        None => Err(unauthorized("the API needs the node's token")),
    }
}

fn unauthorized(what: &str) -> ApiError {
    refuse(
        StatusCode::UNAUTHORIZED,
        format!(
            "{what}: run skrei as the user who started the node, or set {TOKEN_ENV} to the \
             contents of {TOKEN_FILE} in the node's data folder"
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::body::Body;
    use axum::extract::connect_info::MockConnectInfo;
    use axum::http::{Request, StatusCode};
    use axum::routing::{get, post};
    use axum::{Router, middleware};
    use protocol::address::Cidr;
    use tower::ServiceExt;

    use super::{Gate, JOB_HEADER, check};
    use crate::api_token::ApiToken;

    struct Setup {
        gate: Gate,
        _dir: tempfile::TempDir,
    }

    fn setup(listen: &str, allow: &[&str]) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let token = ApiToken::load_or_create(dir.path()).unwrap();
        Setup {
            gate: Gate {
                token,
                listen: listen.parse().unwrap(),
                allow: allow.iter().map(|c| Cidr::parse(c).unwrap()).collect(),
            },
            _dir: dir,
        }
    }

    async fn send(gate: &Gate, from: &str, request: axum::http::request::Builder) -> StatusCode {
        let from: SocketAddr = from.parse().unwrap();
        let app = Router::new()
            .route("/api/v1/node", get(|| async { "ok" }))
            .route("/api/v1/jobs", post(|| async { "ok" }))
            .route("/metrics", get(|| async { "ok" }))
            .layer(middleware::from_fn_with_state(gate.clone(), check))
            .layer(MockConnectInfo(from));
        app.oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    }

    fn authed(gate: &Gate, method: &str, uri: &str, host: &str) -> axum::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("host", host)
            .header("authorization", format!("Bearer {}", gate.token.as_str()))
    }

    #[tokio::test]
    async fn r_net_7_only_loopback_and_allowed_sources_reach_the_api() {
        let s = setup("127.0.0.1:1234", &[]);
        let get = |host: &str| authed(&s.gate, "GET", "/api/v1/node", host);
        let ok = StatusCode::OK;
        assert_eq!(
            send(&s.gate, "127.0.0.1:5000", get("127.0.0.1:1234")).await,
            ok
        );
        assert_eq!(send(&s.gate, "[::1]:5000", get("[::1]:1234")).await, ok);
        assert_eq!(
            send(&s.gate, "[::ffff:127.0.0.1]:5000", get("localhost:1234")).await,
            ok
        );
        // A job network's address, or any other, is refused by default...
        for from in ["172.17.0.2:5000", "10.1.2.3:5000", "[fd00::2]:5000"] {
            assert_eq!(
                send(&s.gate, from, get("127.0.0.1:1234")).await,
                StatusCode::FORBIDDEN
            );
        }
        // ...and answered only when the operator allows exactly it.
        let s = setup("0.0.0.0:1234", &["172.18.0.1", "10.9.0.0/16"]);
        let get = |host: &str| authed(&s.gate, "GET", "/api/v1/node", host);
        assert_eq!(
            send(&s.gate, "172.18.0.1:5000", get("172.18.0.3:1234")).await,
            ok
        );
        assert_eq!(
            send(&s.gate, "10.9.3.4:5000", get("10.9.0.1:1234")).await,
            ok
        );
        assert_eq!(
            send(&s.gate, "172.18.0.2:5000", get("172.18.0.3:1234")).await,
            StatusCode::FORBIDDEN
        );
        // What a job sends is refused from anywhere, allowed or not.
        for from in ["172.18.0.1:5000", "127.0.0.1:5000"] {
            let request = get("127.0.0.1:1234").header(JOB_HEADER, "j1");
            assert_eq!(send(&s.gate, from, request).await, StatusCode::FORBIDDEN);
        }
    }

    #[tokio::test]
    async fn r_sec_1_a_request_without_the_token_is_refused() {
        let s = setup("127.0.0.1:1234", &[]);
        let bare = Request::get("/api/v1/node").header("host", "127.0.0.1:1234");
        assert_eq!(
            send(&s.gate, "127.0.0.1:5000", bare).await,
            StatusCode::UNAUTHORIZED
        );
        let wrong = Request::get("/api/v1/node")
            .header("host", "127.0.0.1:1234")
            .header("authorization", format!("Bearer {}", "0".repeat(64)));
        assert_eq!(
            send(&s.gate, "127.0.0.1:5000", wrong).await,
            StatusCode::UNAUTHORIZED
        );
        let basic = Request::get("/api/v1/node")
            .header("host", "127.0.0.1:1234")
            .header("authorization", format!("Basic {}", s.gate.token.as_str()));
        assert_eq!(
            send(&s.gate, "127.0.0.1:5000", basic).await,
            StatusCode::UNAUTHORIZED
        );
        // Metrics alone are open on loopback (docs/SECURITY.md), but not a
        // POST to them nor any other path.
        let metrics = Request::get("/metrics").header("host", "127.0.0.1:1234");
        assert_eq!(
            send(&s.gate, "127.0.0.1:5000", metrics).await,
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn r_sec_1_dns_rebinding_hosts_are_refused() {
        let s = setup("127.0.0.1:1234", &[]);
        for host in [
            "rebind.evil.example:1234",
            "evil.example",
            "127.0.0.1.evil.example:1234",
            "localhost.evil.example:1234",
            "",
        ] {
            let request = authed(&s.gate, "GET", "/api/v1/node", host);
            assert_eq!(
                send(&s.gate, "127.0.0.1:5000", request).await,
                StatusCode::MISDIRECTED_REQUEST,
                "Host {host:?}"
            );
        }
        // A foreign IP literal is not this node's address either.
        let request = authed(&s.gate, "GET", "/api/v1/node", "192.0.2.7:1234");
        assert_eq!(
            send(&s.gate, "127.0.0.1:5000", request).await,
            StatusCode::MISDIRECTED_REQUEST
        );
    }

    #[tokio::test]
    async fn r_sec_1_cross_site_requests_are_refused() {
        let s = setup("127.0.0.1:1234", &[]);
        let post = |content_type: &str| {
            authed(&s.gate, "POST", "/api/v1/jobs", "127.0.0.1:1234")
                .header("content-type", content_type)
        };
        for simple in [
            "text/plain",
            "text/plain; charset=utf-8",
            "Application/X-WWW-Form-Urlencoded",
            "multipart/form-data; boundary=x",
            "",
        ] {
            assert_eq!(
                send(&s.gate, "127.0.0.1:5000", post(simple)).await,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{simple:?}"
            );
        }
        let no_type = authed(&s.gate, "POST", "/api/v1/jobs", "127.0.0.1:1234");
        assert_eq!(
            send(&s.gate, "127.0.0.1:5000", no_type).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        // The CLI's bodies pass.
        for ok in [
            "application/yaml",
            "application/json",
            "application/octet-stream",
        ] {
            assert_eq!(
                send(&s.gate, "127.0.0.1:5000", post(ok)).await,
                StatusCode::OK
            );
        }
        // Another origin is refused, even with everything else right; the
        // API's own origin is not.
        for origin in ["https://evil.example", "null", "http://127.0.0.1:1235"] {
            let request = post("application/json").header("origin", origin);
            assert_eq!(
                send(&s.gate, "127.0.0.1:5000", request).await,
                StatusCode::FORBIDDEN,
                "{origin}"
            );
        }
        let own = post("application/json").header("origin", "http://127.0.0.1:1234");
        assert_eq!(send(&s.gate, "127.0.0.1:5000", own).await, StatusCode::OK);
        let cross = post("application/json").header("sec-fetch-site", "cross-site");
        assert_eq!(
            send(&s.gate, "127.0.0.1:5000", cross).await,
            StatusCode::FORBIDDEN
        );
    }
}
