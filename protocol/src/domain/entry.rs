//! [`Domain`]: one entry of a job's domains or a node's allowlist, as the
//! grammar normalised it, and what it covers.

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::error::DomainError;
use super::grammar::{Host, Mode, Parsed, is_normal_name, parse_core};

/// One normalised entry: `example.com`, `.example.com` or an IP address.
///
/// Ordered by its text (see the module docs); equal entries have equal text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Domain {
    pub(super) text: String,
    pub(super) kind: Kind,
}

/// What an entry covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    /// `example.com`: that host only.
    Exact,
    /// `.example.com`: it and all its subdomains.
    Subtree,
    /// An address: that address only.
    Ip(IpAddr),
}

impl Domain {
    /// Parse and normalise one entry (R-NET-5).
    ///
    /// ```
    /// use protocol::domain::Domain;
    /// assert_eq!(Domain::parse("Bücher.DE.").unwrap().as_str(), "xn--bcher-kva.de");
    /// assert_eq!(Domain::parse("[::ffff:1.2.3.4]").unwrap().as_str(), "1.2.3.4");
    /// let err = Domain::parse("example.com:8080").unwrap_err();
    /// assert!(err.to_string().contains("ports are not part of a domain: write `example.com`"));
    /// ```
    pub fn parse(input: &str) -> Result<Domain, DomainError> {
        let Parsed { subtree, host } = parse_core(input, Mode::Entry)?;
        Ok(match host {
            Host::Ip(ip) => Domain {
                text: ip.to_string(),
                kind: Kind::Ip(ip),
            },
            Host::Name(name) if subtree => Domain {
                text: format!(".{name}"),
                kind: Kind::Subtree,
            },
            Host::Name(name) => Domain {
                text: name,
                kind: Kind::Exact,
            },
        })
    }

    /// The normalised text, as written in job files and allowlists.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the entry has a leading dot, covering the name and all its
    /// subdomains.
    pub fn includes_subdomains(&self) -> bool {
        self.kind == Kind::Subtree
    }

    /// The name without its leading dot, or `None` for an address.
    pub fn name(&self) -> Option<&str> {
        match self.kind {
            Kind::Exact => Some(&self.text),
            Kind::Subtree => Some(&self.text[1..]),
            Kind::Ip(_) => None,
        }
    }

    /// The address, for an IP entry.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.kind {
            Kind::Ip(ip) => Some(ip),
            _ => None,
        }
    }

    /// Whether a node entry `self` covers a job entry `other` (R-POL-2):
    /// every host `other` allows, `self` allows too.
    ///
    /// `.example.com` covers `example.com`, `.example.com`,
    /// `api.example.com` and `.api.example.com`; `example.com` covers only
    /// `example.com`; an address covers only the same address.
    pub fn covers(&self, other: &Domain) -> bool {
        match (self.kind, other.kind) {
            (Kind::Ip(a), Kind::Ip(b)) => a == b,
            (Kind::Exact, Kind::Exact) => self.text == other.text,
            (Kind::Subtree, Kind::Exact | Kind::Subtree) => {
                is_within(other.name_part(), self.name_part())
            }
            _ => false,
        }
    }

    /// Whether this entry lets a job reach `host` (R-NET-4). For a set, use
    /// [`DomainSet::allows`](super::DomainSet::allows).
    pub fn allows(&self, host: &Host) -> bool {
        match (self.kind, host) {
            (Kind::Ip(a), Host::Ip(b)) => a == b.to_canonical(),
            (Kind::Exact, Host::Name(n)) => is_normal_name(n) && *n == self.text,
            (Kind::Subtree, Host::Name(n)) => is_normal_name(n) && is_within(n, self.name_part()),
            _ => false,
        }
    }

    pub(super) fn name_part(&self) -> &str {
        self.name().unwrap_or("")
    }
}

/// `name` is `base` or a subdomain of it, on a label boundary.
fn is_within(name: &str, base: &str) -> bool {
    name == base
        || name
            .strip_suffix(base)
            .is_some_and(|prefix| prefix.ends_with('.'))
}

impl From<IpAddr> for Domain {
    fn from(ip: IpAddr) -> Domain {
        let ip = ip.to_canonical();
        Domain {
            text: ip.to_string(),
            kind: Kind::Ip(ip),
        }
    }
}

impl FromStr for Domain {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Domain, DomainError> {
        Domain::parse(s)
    }
}

impl PartialOrd for Domain {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Domain {
    fn cmp(&self, other: &Self) -> Ordering {
        // The kind follows from the text, so this agrees with `Eq`.
        self.text.cmp(&other.text)
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for Domain {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Domain {
    /// Through [`Domain::parse`]: input from outside is normalised, never trusted.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Domain::parse(&s).map_err(serde::de::Error::custom)
    }
}
