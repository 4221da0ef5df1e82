//! The policy decision for one destination (R-NET-4, R-NET-7, R-NET-8).
//!
//! In order: the port against the ports this kind of request may reach
//! (plain HTTP: 80 unless the operator lists more; HTTPS: 443 unless the
//! operator lists more); the name against the deny set; the host against the job's
//! `DomainSet::allows`; resolution (once; an IP literal is not resolved);
//! then **every** resolved address against the deny set (`IP:port` and IP)
//! and the special-purpose table, unless an operator-allowed range covers
//! it. One bad address refuses the whole request: a name that resolves to a
//! public and a private address is someone's attempt at the private one.
//! The caller connects only to the returned addresses, which are exactly the
//! ones checked. A name outside the job's domains is never resolved, so the
//! proxy cannot be used to send DNS queries for arbitrary names.
//!
//! For the WASM executor (R-NET-10), the same decision in-process:
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use protocol::domain::DomainSet;
//! use proxy::{DenySet, Policy, Scheme, StaticResolver, target::parse_authority};
//!
//! let resolver = StaticResolver::new().with("api.example.com", "93.184.215.14".parse().unwrap());
//! let policy = Policy::new(
//!     DomainSet::parse([".example.com"]).unwrap(),
//!     DenySet::new(),
//!     Vec::new(),
//!     Arc::new(resolver),
//!     Duration::from_secs(5),
//! );
//! let target = parse_authority("api.example.com", Some(443)).unwrap();
//! let checked = policy.check(&target, Scheme::Https).await.unwrap();
//! assert_eq!(checked.addrs(), ["93.184.215.14:443".parse().unwrap()]);
//! # });
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use protocol::domain::{DomainSet, Host};

use crate::deny::DenySet;
use crate::local::OwnAddresses;
use crate::ranges::{Cidr, classify};
use crate::resolve::Resolver;
use crate::target::Target;

/// How a request reaches its destination, which decides the ports open
/// to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP (absolute-form requests; WASM `http://` requests).
    Http,
    /// HTTPS (`CONNECT` tunnels; WASM `https://` requests).
    Https,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Http => "plain HTTP",
            Scheme::Https => "HTTPS (CONNECT)",
        }
    }
}

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denial {
    /// The port is not open to this kind of request (R-NET-3).
    #[error("{} to port {port} is not allowed (allowed: {allowed})", scheme.name())]
    Port {
        /// How the request came.
        scheme: Scheme,
        /// The refused port.
        port: u16,
        /// The ports that are open, comma-separated.
        allowed: String,
    },
    /// The host is on the control-plane deny set by name.
    #[error("{0} is a skrei control-plane host (deny set)")]
    DeniedHost(String),
    /// The job's domains do not cover the host.
    #[error("{0} is not in the job's allowed domains")]
    NotAllowed(String),
    /// The name did not resolve.
    #[error("{0} did not resolve")]
    Unresolved(String),
    /// A resolved address is on the deny set.
    #[error("{host} resolves to {addr}, a skrei control-plane address (deny set)")]
    DeniedAddress {
        /// The host as requested (normalised).
        host: String,
        /// The refused address.
        addr: SocketAddr,
    },
    /// A resolved address is special-purpose and no allowed range covers it.
    #[error("{host} resolves to {ip}: {why} address")]
    SpecialAddress {
        /// The host as requested (normalised).
        host: String,
        /// The refused address.
        ip: IpAddr,
        /// Which special-purpose range.
        why: &'static str,
    },
    /// A resolved address is one of the node's own (R-SEC-3) and no
    /// allowed range covers it.
    #[error("{host} resolves to {ip}, an address of this node")]
    OwnAddress {
        /// The host as requested (normalised).
        host: String,
        /// The refused address.
        ip: IpAddr,
    },
}

impl Denial {
    /// The refused address, when the refusal is about one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Denial::DeniedAddress { addr, .. } => Some(addr.ip()),
            Denial::SpecialAddress { ip, .. } | Denial::OwnAddress { ip, .. } => Some(*ip),
            _ => None,
        }
    }
}

/// The addresses a destination may be connected to, all checked. Only
/// [`Policy::check`] makes one (the field is private).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked(Vec<SocketAddr>);

impl Checked {
    /// The checked addresses, in the resolver's order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.0
    }
}

/// The decision for one job: shared by the proxy and the WASM executor.
#[derive(Clone)]
pub struct Policy {
    domains: DomainSet,
    deny: DenySet,
    allowed_ranges: Vec<Cidr>,
    own: OwnAddresses,
    http_ports: Vec<u16>,
    https_ports: Vec<u16>,
    resolver: Arc<dyn Resolver>,
    resolve_timeout: Duration,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("domains", &self.domains)
            .field("allowed_ranges", &self.allowed_ranges)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// A policy from its parts; the node's own addresses are this host's
    /// ([`OwnAddresses::system`]) unless [`Policy::with_own_addresses`]
    /// says otherwise, and the ports 80 for plain HTTP and 443 for HTTPS
    /// unless [`Policy::with_ports`] does.
    pub fn new(
        domains: DomainSet,
        deny: DenySet,
        allowed_ranges: Vec<Cidr>,
        resolver: Arc<dyn Resolver>,
        resolve_timeout: Duration,
    ) -> Policy {
        Policy {
            domains,
            deny,
            allowed_ranges,
            own: OwnAddresses::system(),
            http_ports: vec![80],
            https_ports: vec![443],
            resolver,
            resolve_timeout,
        }
    }

    /// The ports plain HTTP and HTTPS may reach.
    pub fn with_ports(mut self, http: Vec<u16>, https: Vec<u16>) -> Policy {
        self.http_ports = http;
        self.https_ports = https;
        self
    }

    /// Treat `own` as the node's own addresses.
    pub fn with_own_addresses(mut self, own: OwnAddresses) -> Policy {
        self.own = own;
        self
    }

    /// Decide whether `target` may be reached by `scheme` and where exactly.
    pub async fn check(&self, target: &Target, scheme: Scheme) -> Result<Checked, Denial> {
        let ports = match scheme {
            Scheme::Http => &self.http_ports,
            Scheme::Https => &self.https_ports,
        };
        if !ports.contains(&target.port) {
            let allowed: Vec<String> = ports.iter().map(u16::to_string).collect();
            return Err(Denial::Port {
                scheme,
                port: target.port,
                allowed: allowed.join(", "),
            });
        }
        let host = &target.host;
        let name = host.to_string();
        if self.deny.denies_host(host) {
            return Err(Denial::DeniedHost(name));
        }
        if !self.domains.allows(host) {
            return Err(Denial::NotAllowed(name));
        }
        let ips = match host {
            Host::Ip(ip) => vec![*ip],
            Host::Name(n) => {
                match tokio::time::timeout(self.resolve_timeout, self.resolver.resolve(n)).await {
                    Ok(Ok(ips)) if !ips.is_empty() => ips,
                    Ok(Ok(_)) | Ok(Err(_)) | Err(_) => return Err(Denial::Unresolved(name)),
                }
            }
        };
        let mut addrs = Vec::with_capacity(ips.len());
        for ip in ips {
            let ip = ip.to_canonical();
            let addr = SocketAddr::new(ip, target.port);
            if self.deny.denies(addr) {
                return Err(Denial::DeniedAddress { host: name, addr });
            }
            let allowed = self.allowed_ranges.iter().any(|r| r.contains(ip));
            if let Some(why) = classify(ip)
                && !allowed
            {
                return Err(Denial::SpecialAddress {
                    host: name,
                    ip,
                    why,
                });
            }
            if !allowed && self.own.contains(ip) {
                return Err(Denial::OwnAddress { host: name, ip });
            }
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        Ok(Checked(addrs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::StaticResolver;

    fn policy(domains: &[&str], ranges: &[&str], resolver: StaticResolver) -> (Policy, DenySet) {
        let deny = DenySet::new();
        let p = Policy::new(
            DomainSet::parse(domains.iter().copied()).unwrap(),
            deny.clone(),
            ranges.iter().map(|r| Cidr::parse(r).unwrap()).collect(),
            Arc::new(resolver),
            Duration::from_secs(1),
        )
        .with_ports(vec![80, 443], vec![443]);
        (p, deny)
    }

    impl Policy {
        async fn check_http(&self, target: &Target) -> Result<Checked, Denial> {
            self.check(target, Scheme::Http).await
        }
    }

    fn t(host: &str, port: u16) -> Target {
        Target {
            host: Host::parse(host).unwrap(),
            port,
        }
    }

    #[tokio::test]
    async fn r_net_8_every_address_is_checked() {
        let r = StaticResolver::new()
            .with("pub.test", "1.1.1.1".parse().unwrap())
            .with("mixed.test", "1.1.1.1".parse().unwrap())
            .with("mixed.test", "10.0.0.1".parse().unwrap())
            .with("meta.test", "169.254.169.254".parse().unwrap())
            .with("mapped.test", "::ffff:127.0.0.1".parse().unwrap());
        let (p, deny) = policy(&[".test", "127.0.0.1"], &[], r);
        assert_eq!(
            p.check_http(&t("pub.test", 80)).await.unwrap().addrs(),
            ["1.1.1.1:80".parse().unwrap()]
        );
        assert!(matches!(
            p.check_http(&t("mixed.test", 80)).await,
            Err(Denial::SpecialAddress { why, .. }) if why.contains("private")
        ));
        assert!(matches!(
            p.check_http(&t("meta.test", 80)).await,
            Err(Denial::SpecialAddress { why, .. }) if why.contains("metadata")
        ));
        assert!(matches!(
            p.check_http(&t("mapped.test", 80)).await,
            Err(Denial::SpecialAddress {
                why: "loopback",
                ..
            })
        ));
        assert!(matches!(
            p.check_http(&t("127.0.0.1", 80)).await,
            Err(Denial::SpecialAddress {
                why: "loopback",
                ..
            })
        ));
        assert!(matches!(
            p.check_http(&t("other.example", 80)).await,
            Err(Denial::NotAllowed(_))
        ));
        assert!(matches!(
            p.check_http(&t("nx.test", 80)).await,
            Err(Denial::Unresolved(_))
        ));
        deny.insert_socket("1.1.1.1:443".parse().unwrap());
        assert!(p.check_http(&t("pub.test", 80)).await.is_ok());
        assert!(matches!(
            p.check_http(&t("pub.test", 443)).await,
            Err(Denial::DeniedAddress { .. })
        ));
        deny.insert_host(&Host::parse("pub.test").unwrap());
        assert!(matches!(
            p.check_http(&t("pub.test", 80)).await,
            Err(Denial::DeniedHost(_))
        ));
    }

    #[tokio::test]
    async fn r_net_8_allowed_range_exempts_only_its_addresses() {
        let r = StaticResolver::new()
            .with("lo.test", "127.0.0.1".parse().unwrap())
            .with("lo2.test", "127.0.0.2".parse().unwrap());
        let (p, deny) = policy(&[".test"], &["127.0.0.1/32"], r);
        assert!(p.check_http(&t("lo.test", 80)).await.is_ok());
        assert!(p.check_http(&t("lo2.test", 80)).await.is_err());
        // The deny set wins over an allowed range.
        deny.insert_ip("127.0.0.1".parse().unwrap());
        assert!(matches!(
            p.check_http(&t("lo.test", 80)).await,
            Err(Denial::DeniedAddress { .. })
        ));
    }

    #[tokio::test]
    async fn r_sec_3_own_addresses_are_refused_unless_a_range_allows_them() {
        // 11.0.0.0/8 is public to the table; here it stands for the node's own.
        let r = StaticResolver::new()
            .with("own.test", "11.0.0.7".parse().unwrap())
            .with("mapped.test", "::ffff:11.0.0.7".parse().unwrap())
            .with("other.test", "11.0.0.8".parse().unwrap());
        let own = OwnAddresses::fixed(["11.0.0.7".parse().unwrap()]);
        let (p, _) = policy(&[".test", "11.0.0.7"], &[], r.clone());
        let p = p.with_own_addresses(own.clone());
        for host in ["own.test", "mapped.test", "11.0.0.7"] {
            assert!(
                matches!(
                    p.check_http(&t(host, 80)).await,
                    Err(Denial::OwnAddress { ip, .. }) if ip == "11.0.0.7".parse::<IpAddr>().unwrap()
                ),
                "{host}"
            );
        }
        assert!(p.check_http(&t("other.test", 80)).await.is_ok());
        let (p, _) = policy(&[".test"], &["11.0.0.0/29"], r);
        let p = p.with_own_addresses(own);
        assert!(p.check_http(&t("own.test", 80)).await.is_ok());
    }

    #[tokio::test]
    async fn r_net_3_ports_per_scheme() {
        let r = StaticResolver::new().with("pub.test", "1.1.1.1".parse().unwrap());
        let (p, _) = policy(&[".test"], &[], r);
        let p = p.with_ports(vec![80, 8080], vec![443]);
        assert!(p.check(&t("pub.test", 8080), Scheme::Http).await.is_ok());
        assert!(p.check(&t("pub.test", 443), Scheme::Https).await.is_ok());
        let refused = p.check(&t("pub.test", 6379), Scheme::Http).await;
        assert!(
            matches!(
                &refused,
                Err(Denial::Port {
                    port: 6379,
                    scheme: Scheme::Http,
                    ..
                })
            ),
            "{refused:?}"
        );
        assert_eq!(
            refused.unwrap_err().to_string(),
            "plain HTTP to port 6379 is not allowed (allowed: 80, 8080)"
        );
        assert!(p.check(&t("pub.test", 8080), Scheme::Https).await.is_err());
        // No name outside the open ports is even looked at.
        assert!(matches!(
            p.check(&t("other.example", 6379), Scheme::Http).await,
            Err(Denial::Port { .. })
        ));
    }
}
