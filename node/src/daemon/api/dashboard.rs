//! The dashboard: pages the node serves on its API address (issue 19),
//! their assets embedded in the binary, and the sessions that let a
//! browser use the API without ever holding the token.
//!
//! A browser logs in with a URL that `skrei dashboard` asks for with the
//! token: it carries a one-time code, exchanged at `/ui/login` for a
//! session cookie (HttpOnly, so page scripts never see it; SameSite=Strict;
//! named after the port, as cookies do not tell ports apart). The cookie
//! alone is not enough to change anything, because every page of
//! 127.0.0.1, on any port, is the same site to a browser: a change also
//! needs the API's exact origin and the session's secret in
//! [`SESSION_HEADER`], which only the dashboard's own page is given
//! (`api::gate::Gate::decide_session`). Without a session the pages show
//! how to log in and no data.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use api::dashboard::{HostVerdict, LoginCode};
use api::gate::SESSION_HEADER;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::ApiState;

/// How long a login code may wait to be used.
const CODE_LIFETIME: Duration = Duration::from_secs(120);
/// How long a session lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The most codes and sessions kept at once: the oldest go first.
const MAX_KEPT: usize = 32;

const INDEX: &str = include_str!("dashboard/index.html");
const LOGIN: &str = include_str!("dashboard/login.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/style.css");

/// One browser's session.
#[derive(Clone)]
struct Session {
    secret: String,
    expires: Instant,
}

/// The node's login codes and sessions, in memory: a restart logs every
/// browser out.
#[derive(Default)]
pub struct Sessions {
    codes: Mutex<HashMap<String, Instant>>,
    sessions: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes as hex.
fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Keeps `map` under [`MAX_KEPT`] entries, dropping expired ones first and
/// then those that expire soonest.
fn bound<V>(map: &mut HashMap<String, V>, expiry: impl Fn(&V) -> Instant) {
    let now = Instant::now();
    map.retain(|_, v| expiry(v) > now);
    while map.len() >= MAX_KEPT {
        let Some(oldest) = map
            .iter()
            .min_by_key(|(_, v)| expiry(v))
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        map.remove(&oldest);
    }
}

impl Sessions {
    /// A new one-time login code.
    pub fn new_code(&self) -> Result<String, getrandom::Error> {
        let code = random_hex()?;
        let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
        bound(&mut codes, |expires| *expires);
        codes.insert(code.clone(), Instant::now() + CODE_LIFETIME);
        Ok(code)
    }

    /// Uses up `code`: a new session's id, if the code was good.
    fn redeem(&self, code: &str) -> Option<String> {
        let expires = self
            .codes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(code)?;
        if expires <= Instant::now() {
            return None;
        }
        let (id, secret) = (random_hex().ok()?, random_hex().ok()?);
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        bound(&mut sessions, |s| s.expires);
        sessions.insert(
            id.clone(),
            Session {
                secret,
                expires: Instant::now() + SESSION_LIFETIME,
            },
        );
        Some(id)
    }

    /// The secret of the live session `id`.
    fn secret(&self, id: &str) -> Option<String> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let session = sessions.get(id)?;
        (session.expires > Instant::now()).then(|| session.secret.clone())
    }

    /// The secret of the session whose cookie `headers` carry, for the
    /// API listening on `port`.
    pub fn of_request(&self, headers: &HeaderMap, port: u16) -> Option<String> {
        let name = cookie_name(port);
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, id)| self.secret(id))
    }
}

/// The session cookie's name on the API at `port`.
fn cookie_name(port: u16) -> String {
    format!("skrei_session_{port}")
}

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    code: String,
}

/// `POST /api/v1/dashboard/login`: a one-time login URL (token only: a
/// session cannot make more sessions).
pub(super) async fn new_login(
    State(state): State<ApiState>,
    auth: Option<axum::Extension<super::gate::BySession>>,
) -> Result<axum::Json<LoginCode>, super::ApiError> {
    if auth.is_some() {
        return Err(super::ApiError(
            StatusCode::FORBIDDEN,
            "a dashboard session cannot make login codes: run `skrei dashboard`".into(),
        ));
    }
    let code = state
        .sessions
        .new_code()
        .map_err(super::ApiError::internal)?;
    Ok(axum::Json(LoginCode {
        path: format!("/ui/login?code={code}"),
    }))
}

/// `GET /ui/login?code=...`: the code for a session cookie, then the
/// dashboard.
pub(super) async fn login(
    State(state): State<ApiState>,
    Query(query): Query<LoginQuery>,
) -> Response {
    let Some(id) = state.sessions.redeem(&query.code) else {
        return (
            StatusCode::FORBIDDEN,
            Html(LOGIN.replace(
                "{{message}}",
                "This login link was used already or has expired.",
            )),
        )
            .into_response();
    };
    let cookie = format!(
        "{}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        cookie_name(state.api_port),
        SESSION_LIFETIME.as_secs()
    );
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/")]).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `GET /ui/`: the dashboard, with the session's secret for its scripts;
/// without a session, how to log in.
pub(super) async fn index(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    match state.sessions.of_request(&headers, state.api_port) {
        Some(secret) => {
            let page = INDEX
                .replace("{{secret}}", &secret)
                .replace("{{secret_header}}", SESSION_HEADER);
            no_store(Html(page).into_response())
        }
        None => no_store(
            (
                StatusCode::UNAUTHORIZED,
                Html(LOGIN.replace(
                    "{{message}}",
                    "Run <code>skrei dashboard</code> on the node's machine to log in.",
                )),
            )
                .into_response(),
        ),
    }
}

pub(super) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub(super) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// Pages with a secret in them are not kept by the browser's cache, and
/// no page may be framed by another site.
fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[derive(Deserialize)]
pub(super) struct AllowsQuery {
    host: String,
}

/// `GET /api/v1/node/allows?host=...`: the node's acceptance policy on one
/// host, decided by `DomainSet::allows`, the rule the proxy applies.
pub(super) async fn allows(
    State(state): State<ApiState>,
    Query(query): Query<AllowsQuery>,
) -> Result<axum::Json<HostVerdict>, super::ApiError> {
    use protocol::domain::Host;
    use protocol::job::NetworkMode;
    let host = Host::parse(query.host.trim())
        .map_err(|e| super::ApiError::bad(format!("`{}` is not a host: {e}", query.host)))?;
    let policy = &state.policy;
    let (allowed, reason) = match (policy.accept(), policy.allowlist()) {
        (NetworkMode::None, _) => (
            false,
            "this node accepts no networked jobs (--accept-network none)".to_owned(),
        ),
        (NetworkMode::Http, Some(list)) if list.domains().allows(&host) => {
            (true, format!("allowed by {}", list.origin()))
        }
        (NetworkMode::Http, Some(list)) => (false, format!("not in {}", list.origin())),
        (NetworkMode::Http, None) => (
            true,
            "this node accepts http jobs without an allowlist".to_owned(),
        ),
        (NetworkMode::Full, _) => (true, "this node accepts full network access".to_owned()),
    };
    Ok(axum::Json(HostVerdict {
        host: host.to_string(),
        allowed,
        reason,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie(name: &str, id: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {name}={id}")).unwrap(),
        );
        h
    }

    #[test]
    fn a_code_gives_one_session_once() {
        let s = Sessions::default();
        let code = s.new_code().unwrap();
        let id = s.redeem(&code).unwrap();
        assert!(s.redeem(&code).is_none(), "used twice");
        assert!(s.redeem("0".repeat(64).as_str()).is_none());
        let secret = s.of_request(&cookie("skrei_session_80", &id), 80).unwrap();
        assert_eq!(secret.len(), 64);
        // Another port's cookie is another node's.
        assert!(s.of_request(&cookie("skrei_session_81", &id), 80).is_none());
        assert!(s.of_request(&cookie("skrei_session_80", "x"), 80).is_none());
    }

    #[test]
    fn kept_codes_and_sessions_are_bounded() {
        let s = Sessions::default();
        let codes: Vec<String> = (0..100).map(|_| s.new_code().unwrap()).collect();
        assert!(s.codes.lock().unwrap().len() <= MAX_KEPT);
        assert!(s.redeem(&codes[99]).is_some());
        assert!(s.redeem(&codes[0]).is_none(), "the oldest went first");
    }
}
