//! The API's gate as axum middleware: [`api::gate::Gate::decide`] holds
//! the rules (R-SEC-1, R-NET-7); this answers its refusals.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
pub use api::gate::{Gate, JOB_HEADER};

/// Marks a request the gate let in on a dashboard session, not the token.
#[derive(Debug, Clone, Copy)]
pub struct BySession;

/// The gate and the dashboard's sessions.
pub struct WithSessions {
    pub gate: Gate,
    pub sessions: std::sync::Arc<super::dashboard::Sessions>,
}

/// The gate, as axum middleware.
pub async fn check(
    State(gate): State<std::sync::Arc<Gate>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let verdict = gate.decide(
        peer,
        request.method(),
        request.uri().path(),
        request.headers(),
    );
    answer(verdict, request, next).await
}

/// The gate with dashboard sessions: a request without a token whose
/// session cookie is live is decided by `Gate::decide_session`.
pub async fn check_with_sessions(
    State(with): State<std::sync::Arc<WithSessions>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let gate = &with.gate;
    let session = if request.headers().contains_key(header::AUTHORIZATION) {
        None
    } else {
        with.sessions
            .of_request(request.headers(), gate.listen.port())
    };
    let verdict = match session {
        Some(secret) => {
            let verdict = gate.decide_session(peer, request.method(), request.headers(), &secret);
            request.extensions_mut().insert(BySession);
            verdict
        }
        None => gate.decide(
            peer,
            request.method(),
            request.uri().path(),
            request.headers(),
        ),
    };
    answer(verdict, request, next).await
}

async fn answer(verdict: Result<(), api::gate::Refusal>, request: Request, next: Next) -> Response {
    match verdict {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            let unauthorized = refusal.status == StatusCode::UNAUTHORIZED;
            let mut response = ApiError(refusal.status, refusal.message).into_response();
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

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
        gate: Arc<Gate>,
        _dir: tempfile::TempDir,
    }

    fn setup(listen: &str, allow: &[&str]) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let token = ApiToken::load_or_create(dir.path()).unwrap();
        Setup {
            gate: Arc::new(Gate {
                token: token.as_str().to_owned(),
                listen: listen.parse().unwrap(),
                allow: allow.iter().map(|c| Cidr::parse(c).unwrap()).collect(),
            }),
            _dir: dir,
        }
    }

    async fn send(
        gate: &Arc<Gate>,
        from: &str,
        request: axum::http::request::Builder,
    ) -> StatusCode {
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
            .header("authorization", format!("Bearer {}", gate.token))
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
            .header("authorization", format!("Basic {}", s.gate.token));
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
