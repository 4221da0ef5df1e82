//! Upstream connections kept alive for one job's plain-HTTP requests.
//!
//! A pool belongs to one [`Proxy`](crate::Proxy), so one job's connections
//! never carry another job's requests. It is keyed by the address the
//! policy checked: a request reuses a connection only to an address its
//! own decision allowed ([`Pool::take`] takes a [`Checked`]), so a kept
//! connection can never stand in for a decision. Connections are put back
//! as soon as their response head has arrived and are handed out again
//! only once hyper reports them ready, that is when that response has been
//! read to its end.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

use hyper::client::conn::http1::SendRequest;

use crate::body::ProxyBody;
use crate::decide::Checked;
use crate::upstream::MAX_TRIES;

/// One upstream connection's request side.
pub(crate) type Sender = SendRequest<ProxyBody>;

/// Kept upstream connections by checked address.
pub(crate) struct Pool {
    kept: Mutex<HashMap<SocketAddr, Vec<Sender>>>,
    /// The most connections kept in all (the job's connection limit).
    max: usize,
}

impl Pool {
    pub(crate) fn new(max: usize) -> Pool {
        Pool {
            kept: Mutex::new(HashMap::new()),
            max,
        }
    }

    /// A ready connection to one of the addresses `checked` allows, tried
    /// in the order a new connection would try them.
    pub(crate) fn take(&self, checked: &Checked) -> Option<(Sender, SocketAddr)> {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        for addr in checked.addrs().iter().take(MAX_TRIES) {
            let Some(senders) = kept.get_mut(addr) else {
                continue;
            };
            senders.retain(|s| !s.is_closed());
            if let Some(i) = senders.iter().position(Sender::is_ready) {
                return Some((senders.swap_remove(i), *addr));
            }
        }
        None
    }

    /// Keeps `sender` for later requests to `addr`; dropped (and its
    /// connection closed once idle) when the pool is full.
    pub(crate) fn put(&self, addr: SocketAddr, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let mut total: usize = kept.values().map(Vec::len).sum();
        if total >= self.max {
            // Make room from connections that have closed meanwhile.
            kept.retain(|_, senders| {
                senders.retain(|s| !s.is_closed());
                !senders.is_empty()
            });
            total = kept.values().map(Vec::len).sum();
            if total >= self.max {
                return;
            }
        }
        kept.entry(addr).or_default().push(sender);
    }

    /// Closes every kept connection (the job has ended).
    pub(crate) fn clear(&self) {
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
