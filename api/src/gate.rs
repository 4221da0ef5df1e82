//! Who may use the API (R-SEC-1, R-NET-7), decided before any handler runs.
//!
//! In order, a request is refused when:
//! 1. it carries `X-Skrei-Job` (the egress proxies add it to everything a
//!    job sends): a job never starts or controls jobs;
//! 2. its source is neither loopback nor a range given with `--api-allow`;
//! 3. its `Host` is not one of the node's own (an IP literal that is
//!    loopback, the listening address or an `--api-allow` address, any
//!    address when the API listens on all of them, or `localhost`): 421. A
//!    page that rebinds its own name to 127.0.0.1 still sends that name, so
//!    DNS rebinding ends here;
//! 4. it has an `Origin` other than the API's own exact origin, or
//!    `Sec-Fetch-Site` says another site sent it;
//! 5. it is a `POST` without a content type, or with one a page may send
//!    without a CORS preflight (`text/plain`, forms): 415;
//! 6. it lacks the node's token (`Authorization: Bearer TOKEN`): 401.
//!    `GET /metrics` and the dashboard's pages (`GET /ui/...`) are answered
//!    without it (docs/SECURITY.md says why). A dashboard page's session
//!    stands in for the token only through [`Gate::decide_session`], which
//!    also wants the session's secret on every change.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, Method, StatusCode, header};
use protocol::address::Cidr;

/// The header a dashboard page sends its session's secret in, with every
/// request that changes anything.
pub const SESSION_HEADER: &str = "x-skrei-session";
/// Paths of the dashboard's pages and assets: answered without the token
/// (they hold no data without a session, see the node's dashboard).
pub const UI_PREFIX: &str = "/ui/";

/// The header the egress proxy adds to every request a job makes.
pub const JOB_HEADER: &str = "x-skrei-job";
/// The environment variable clients read the node's token from.
pub const TOKEN_ENV: &str = "SKREI_API_TOKEN";
/// The token's file in a node's data folder.
pub const TOKEN_FILE: &str = "api.token";

/// What requests are checked against.
#[derive(Clone)]
pub struct Gate {
    /// The node's API token.
    pub token: String,
    /// Where the API listens.
    pub listen: SocketAddr,
    /// Sources (and `Host` addresses) besides loopback (`--api-allow`).
    pub allow: Vec<Cidr>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("listen", &self.listen)
            .field("allow", &self.allow)
            .finish_non_exhaustive()
    }
}

/// Why a request was refused: the status to answer and a message that
/// says what to do instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
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

    /// Whether `presented` is the token, in time that does not depend on
    /// where they differ.
    fn token_matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.token.as_bytes().ct_eq(presented.as_bytes()).into()
    }

    /// The gate's verdict on one request.
    pub fn decide(
        &self,
        peer: SocketAddr,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<(), Refusal> {
        self.check_origin(peer, method, headers)?;
        if method == Method::GET && (path == "/metrics" || path.starts_with(UI_PREFIX)) {
            return Ok(());
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(token) if self.token_matches(token) => Ok(()),
            Some(_) => Err(unauthorized("the API token is wrong")),
            None => Err(unauthorized("the API needs the node's token")),
        }
    }

    /// The verdict on a request of a dashboard page whose session cookie
    /// the node found valid, `secret` being that session's: every rule of
    /// [`Gate::decide`] but the token, and for anything but `GET` and
    /// `HEAD`, the API's exact origin in `Origin` and the secret in
    /// [`SESSION_HEADER`]. The cookie alone proves little: browsers send
    /// it to every port of 127.0.0.1, whose pages count as the same site.
    pub fn decide_session(
        &self,
        peer: SocketAddr,
        method: &Method,
        headers: &HeaderMap,
        secret: &str,
    ) -> Result<(), Refusal> {
        self.check_origin(peer, method, headers)?;
        if method == Method::GET || method == Method::HEAD {
            return Ok(());
        }
        if !headers.contains_key(header::ORIGIN) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "a dashboard request that changes anything needs its page's Origin",
            ));
        }
        let presented = headers
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        use subtle::ConstantTimeEq;
        if bool::from(secret.as_bytes().ct_eq(presented.as_bytes())) && !secret.is_empty() {
            Ok(())
        } else {
            Err(refuse(
                StatusCode::FORBIDDEN,
                "this request lacks the dashboard session's secret: reload the dashboard",
            ))
        }
    }

    /// Rules 1 to 5: the request's source, host, origin and content type.
    fn check_origin(
        &self,
        peer: SocketAddr,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<(), Refusal> {
        if headers.contains_key(JOB_HEADER) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "requests from jobs are refused: a job cannot start or control jobs",
            ));
        }
        if !self.allowed_ip(peer.ip()) {
            // The API is for clients on this machine (and the operator's
            // own `--api-allow` sources); a job network's address is not one.
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
        if !self.own_host(host) {
            return Err(refuse(
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "this is the API of a skrei node, not of `{}`: call it by its address ({}) \
                     or localhost",
                    host.chars().take(100).collect::<String>(),
                    self.listen
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
                Some(
                    "text/plain" | "application/x-www-form-urlencoded" | "multipart/form-data",
                ) => {
                    return Err(refuse(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "this content type is refused (web pages can send it to any site): use \
                         application/json, application/yaml or application/octet-stream",
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

fn unauthorized(what: &str) -> Refusal {
    refuse(
        StatusCode::UNAUTHORIZED,
        format!(
            "{what}: run skrei as the user who started the node, or set {TOKEN_ENV} to the \
             contents of {TOKEN_FILE} in the node's data folder"
        ),
    )
}
