//! Which addresses the node may download URL inputs from (R-VOL-1, §6).
//!
//! A job names the URL, but the node makes the request: without a guard a
//! job could have the node read its own loopback services, the cloud
//! metadata endpoint or the operator's private network, and receive the
//! answer as an input. So, unless the operator allows private addresses,
//! downloads go only to globally routable addresses that are not the
//! node's own (R-SEC-3: a service listening only on the node's public
//! address is the node's, not the world's), decided on the resolved IP
//! (names are resolved by [`GuardedResolver`], and the client connects to
//! exactly the addresses it returns), on IP-literal hosts and on every
//! redirect. The node's own addresses are the egress proxy's view of them
//! ([`proxy::OwnAddresses`], re-read as the interfaces change).
//!
//! `allow_private` (the operator's one range option for downloads) lifts
//! the guard altogether: it opens the node's loopback services, so its own
//! public address is no more sensitive than they are.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use proxy::OwnAddresses;

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} is {why} ({ip}); the node downloads only from public addresses not its own")]
pub struct Blocked {
    pub host: String,
    pub ip: IpAddr,
    pub why: Why,
}

/// Which rule refused an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Why {
    /// A special-purpose range of [`protocol::address::classify`].
    Special(&'static str),
    /// One of the node's own addresses (R-SEC-3).
    Own,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Special(range) => write!(f, "a special-purpose address: {range}"),
            Why::Own => f.write_str("an address of this node"),
        }
    }
}

/// Why `ip` is not a public address, if it is not: the same table the
/// egress proxy decides with ([`protocol::address::classify`]).
pub fn special(ip: IpAddr) -> Option<&'static str> {
    protocol::address::classify(ip)
}

/// Why the node will not download from `ip`, if it will not.
pub fn refused(ip: IpAddr) -> Option<Why> {
    if let Some(range) = special(ip) {
        return Some(Why::Special(range));
    }
    OwnAddresses::system().contains(ip).then_some(Why::Own)
}

/// Checks a URL's host when it is an IP literal (names go through the
/// resolver instead).
pub fn check_literal(url: &url::Url) -> Result<(), Blocked> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        _ => return Ok(()),
    };
    match refused(ip) {
        Some(why) => Err(Blocked {
            host: url.host_str().unwrap_or_default().to_string(),
            ip,
            why,
        }),
        None => Ok(()),
    }
}

/// A resolver that drops every non-public address of a name and every
/// address of the node's own, and fails when none is left.
#[derive(Debug, Clone, Default)]
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut first_blocked = None;
            let public: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| match refused(a.ip()) {
                    None => true,
                    Some(why) => {
                        first_blocked.get_or_insert(Blocked {
                            host: host.clone(),
                            ip: a.ip(),
                            why,
                        });
                        false
                    }
                })
                .collect();
            match (public.is_empty(), first_blocked) {
                (true, Some(blocked)) => Err(Box::new(blocked) as Box<_>),
                _ => Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

impl GuardedResolver {
    pub fn shared() -> Arc<Self> {
        Arc::new(GuardedResolver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_addresses() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
        ] {
            assert!(special(s.parse().unwrap()).is_some(), "{s}");
        }
        for s in [
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(special(s.parse().unwrap()), None, "{s}");
        }
    }

    #[test]
    fn literals() {
        let url = |s: &str| url::Url::parse(s).unwrap();
        assert!(check_literal(&url("http://127.0.0.1:8080/x")).is_err());
        assert!(check_literal(&url("http://[::1]/x")).is_err());
        // The url crate reads numeric hosts like browsers do.
        assert!(check_literal(&url("http://2130706433/x")).is_err());
        assert!(check_literal(&url("http://0x7f.1/x")).is_err());
        assert!(check_literal(&url("http://1.1.1.1/x")).is_ok());
        assert!(check_literal(&url("http://example.com/x")).is_ok());
    }
}
