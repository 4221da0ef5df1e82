//! What a request handler ([`forward`](crate::forward) for plain HTTP,
//! [`connect`](crate::connect) for `CONNECT`) is given by its client
//! connection, and the answer it gives when it refuses.
//!
//! The server makes an [`Exchange`] per request (a kept-alive client
//! connection carries several, one at a time) and calls a handler with it; the handlers reach the world only through its gate.
//! Neither the server nor a handler imports the other's internals.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, watch};

use crate::audit::Entry;
use crate::body::{ProxyBody, full};
use crate::gate::{Gate, OpenError};
use crate::io::Activity;
use crate::meter::Meter;
use crate::pool::Pool;

/// One request or tunnel of a client connection, as its handler sees it.
#[derive(Clone)]
pub(crate) struct Exchange {
    /// The job's gate: the only way to an upstream.
    pub(crate) gate: Gate,
    /// When bytes last moved on the client connection or its tunnel (kept
    /// upstream connections have clocks of their own).
    pub(crate) activity: Arc<Activity>,
    /// A connection or tunnel quiet for this long is closed.
    pub(crate) idle_timeout: Duration,
    /// Time to connect to an upstream.
    pub(crate) connect_timeout: Duration,
    /// Becomes `true` when the proxy shuts down (the job has ended).
    pub(crate) stop: watch::Receiver<bool>,
    /// Set once hyper hands a request to the handler; a connection that
    /// ends without it was refused by hyper's parser and is audited by the
    /// server.
    pub(crate) handled: Arc<AtomicBool>,
    /// Held by the tunnel too, so a tunnel counts against the limits.
    pub(crate) _permits: Arc<(Option<OwnedSemaphorePermit>, OwnedSemaphorePermit)>,
    /// The connection's byte counts (its metered stream counts into it).
    pub(crate) meter: Arc<Meter>,
    /// The job's kept upstream connections (plain HTTP).
    pub(crate) pool: Arc<Pool>,
    /// The request's audit entry, held until the connection has ended so
    /// that its record has every byte written to the client.
    pub(crate) entry: Arc<Mutex<Option<Arc<Entry>>>>,
}

impl Exchange {
    /// The request is over (a tunnel holds its own clone): its record is
    /// written with its final counts once no one else holds it.
    pub(crate) fn finish(&self) {
        drop(
            self.entry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
    }
}

/// A request the proxy answers itself: refused or failed.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) reason: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, reason: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
        }
    }

    pub(crate) fn bad(reason: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, reason)
    }

    /// The answer sent to the client.
    pub(crate) fn response(&self) -> Response<ProxyBody> {
        let mut resp = Response::new(full(format!("skrei proxy: {}\n", self.reason)));
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    }
}

impl From<OpenError> for Refusal {
    /// A policy refusal is the client's `403`; an allowed upstream that
    /// cannot be reached is a `502`.
    fn from(e: OpenError) -> Refusal {
        let status = match e {
            OpenError::Denied(_) => StatusCode::FORBIDDEN,
            OpenError::Unreachable(_) => StatusCode::BAD_GATEWAY,
        };
        Refusal::new(status, e.to_string())
    }
}
