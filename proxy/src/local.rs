//! The node's own addresses (R-SEC-3, R-NET-7).
//!
//! A job must not reach any service of the machine it runs on, nor make the
//! node fetch from one for it. Loopback and private addresses are refused by
//! the special-purpose table already; a host with a public address would
//! otherwise be reachable on it, by IP or by any name that resolves to it.
//! So every address of the host's interfaces is refused unless an
//! operator-allowed range covers it.
//!
//! Interfaces change while a node runs (DHCP, a VPN coming up, an operator
//! adding an address), so the view is re-read: at most once per
//! [`REFRESH`], when a decision needs it, through `getifaddrs` (one netlink
//! dump of the addresses, whatever the size of the routing table). One view
//! is shared by the whole process. A proxy that runs in a container of its
//! own (the Docker sidecar) sees the container's interfaces, not the host's:
//! the node passes the host's addresses in ([`OwnAddresses::with_extra`],
//! `skrei proxy --own-address`).

use std::collections::HashSet;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How stale the view of the host's interfaces may get.
pub const REFRESH: Duration = Duration::from_secs(1);

/// Every address configured on this host's interfaces, read now.
pub fn local_addresses() -> io::Result<Vec<IpAddr>> {
    let mut out: Vec<IpAddr> = if_addrs::get_if_addrs()?
        .into_iter()
        .map(|i| i.ip().to_canonical())
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// The process-wide view of this host's addresses.
struct HostView {
    cache: Mutex<Cached>,
}

struct Cached {
    ips: Arc<HashSet<IpAddr>>,
    read_at: Option<Instant>,
}

impl HostView {
    fn get() -> &'static HostView {
        static VIEW: OnceLock<HostView> = OnceLock::new();
        VIEW.get_or_init(|| HostView {
            cache: Mutex::new(Cached {
                ips: Arc::default(),
                read_at: None,
            }),
        })
    }

    /// The addresses, re-read when older than [`REFRESH`]. A failed read
    /// keeps the last good view (and is retried at the next refresh).
    fn current(&self) -> Arc<HashSet<IpAddr>> {
        let mut c = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = c.read_at.is_some_and(|t| t.elapsed() < REFRESH);
        if !fresh {
            match local_addresses() {
                Ok(ips) => c.ips = Arc::new(ips.into_iter().collect()),
                Err(e) => tracing::warn!(error = %e, "cannot list this host's addresses"),
            }
            c.read_at = Some(Instant::now());
        }
        c.ips.clone()
    }
}

/// The addresses a decision treats as the node's own: this host's
/// (re-read as they change), plus any given explicitly. Cheap to clone.
///
/// ```
/// use proxy::OwnAddresses;
/// let own = OwnAddresses::system().with_extra(["203.0.113.9".parse().unwrap()]);
/// assert!(own.contains("127.0.0.1".parse().unwrap()));
/// assert!(own.contains("203.0.113.9".parse().unwrap()));
/// ```
#[derive(Debug, Clone)]
pub struct OwnAddresses {
    host: bool,
    extra: Arc<[IpAddr]>,
}

impl Default for OwnAddresses {
    /// This host's addresses: the safe default.
    fn default() -> OwnAddresses {
        OwnAddresses::system()
    }
}

impl OwnAddresses {
    /// This host's addresses, as they are when asked (within [`REFRESH`]).
    pub fn system() -> OwnAddresses {
        OwnAddresses {
            host: true,
            extra: Arc::new([]),
        }
    }

    /// Exactly `ips`, never the host's (tests, and hosts whose addresses are
    /// known better elsewhere).
    pub fn fixed(ips: impl IntoIterator<Item = IpAddr>) -> OwnAddresses {
        OwnAddresses {
            host: false,
            extra: ips.into_iter().map(|ip| ip.to_canonical()).collect(),
        }
    }

    /// These addresses as well (the host's, for a proxy in a container).
    pub fn with_extra(self, ips: impl IntoIterator<Item = IpAddr>) -> OwnAddresses {
        let extra = self
            .extra
            .iter()
            .copied()
            .chain(ips.into_iter().map(|ip| ip.to_canonical()))
            .collect();
        OwnAddresses { extra, ..self }
    }

    /// Whether `ip` (in any form, IPv4-mapped included) is one of them.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.extra.contains(&ip) || (self.host && HostView::get().current().contains(&ip))
    }

    /// All of them now, sorted.
    pub fn snapshot(&self) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = self.extra.to_vec();
        if self.host {
            out.extend(HostView::get().current().iter().copied());
        }
        out.sort();
        out.dedup();
        out
    }

    /// Those the special-purpose table does not refuse already: what a
    /// proxy in another network namespace must be told about.
    pub fn public(&self) -> Vec<IpAddr> {
        self.snapshot()
            .into_iter()
            .filter(|ip| crate::ranges::classify(*ip).is_none())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_sec_3_this_host_has_loopback() {
        let all = local_addresses().unwrap();
        assert!(all.contains(&"127.0.0.1".parse().unwrap()), "{all:?}");
        assert!(OwnAddresses::system().contains("127.0.0.1".parse().unwrap()));
        assert!(OwnAddresses::system().contains("::ffff:127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn r_sec_3_fixed_and_extra() {
        let fixed = OwnAddresses::fixed(["::ffff:203.0.113.5".parse().unwrap()]);
        assert!(fixed.contains("203.0.113.5".parse().unwrap()));
        assert!(!fixed.contains("127.0.0.1".parse().unwrap()));
        let more = fixed.with_extra(["11.0.0.1".parse().unwrap()]);
        assert_eq!(
            more.snapshot(),
            [
                "11.0.0.1".parse::<IpAddr>().unwrap(),
                "203.0.113.5".parse().unwrap()
            ]
        );
        // 203.0.113.0/24 is documentation space: the table refuses it anyway.
        assert_eq!(more.public(), ["11.0.0.1".parse::<IpAddr>().unwrap()]);
    }
}
