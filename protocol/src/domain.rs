//! Domains, hosts and allowlist sets (R-NET-4, R-NET-5).
//!

//! below is the contract other modules build against.

use std::fmt;
use std::net::IpAddr;

/// Why a domain entry or host was rejected; `Display` says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// Placeholder until the real rules land.
    #[error("invalid domain `{input}`: {reason}")]
    Invalid { input: String, reason: String },
}

/// A host a job wants to reach: a normalised DNS name or an IP address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    pub fn parse(input: &str) -> Result<Host, DomainError> {
        if let Ok(ip) = input.parse() {
            return Ok(Host::Ip(ip));
        }
        Ok(Host::Name(input.trim_end_matches('.').to_ascii_lowercase()))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// One normalised allowlist entry: `example.com`, `.example.com` or an IP.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Domain(String);

impl Domain {
    pub fn parse(input: &str) -> Result<Domain, DomainError> {
        if input.is_empty() || input.contains(['/', ':', '*', ' ']) {
            return Err(DomainError::Invalid {
                input: input.into(),
                reason: "stub".into(),
            });
        }
        Ok(Domain(input.trim_end_matches('.').to_ascii_lowercase()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn covers(&self, other: &Domain) -> bool {
        self == other
    }
    pub fn allows(&self, host: &Host) -> bool {
        self.0 == host.to_string()
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Domain {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Domain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Domain::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A set of entries with duplicates and covered entries removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct DomainSet(Vec<Domain>);

/// An entry of a list that failed to parse, with its position in the list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {index} (`{input}`): {error}")]
pub struct DomainSetError {
    pub index: usize,
    pub input: String,
    pub error: DomainError,
}

impl DomainSet {
    pub fn parse<I, S>(entries: I) -> Result<DomainSet, Vec<DomainSetError>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Vec::new();
        let mut errs = Vec::new();
        for (index, e) in entries.into_iter().enumerate() {
            match Domain::parse(e.as_ref()) {
                Ok(d) => out.push(d),
                Err(error) => errs.push(DomainSetError {
                    index,
                    input: e.as_ref().into(),
                    error,
                }),
            }
        }
        if errs.is_empty() {
            out.sort();
            out.dedup();
            Ok(DomainSet(out))
        } else {
            Err(errs)
        }
    }
    pub fn from_domains(domains: impl IntoIterator<Item = Domain>) -> DomainSet {
        let mut v: Vec<Domain> = domains.into_iter().collect();
        v.sort();
        v.dedup();
        DomainSet(v)
    }
    pub fn allows(&self, host: &Host) -> bool {
        self.0.iter().any(|d| d.allows(host))
    }
    pub fn uncovered<'a>(&self, job: &'a DomainSet) -> Vec<&'a Domain> {
        job.0
            .iter()
            .filter(|j| !self.0.iter().any(|n| n.covers(j)))
            .collect()
    }
    pub fn iter(&self) -> impl Iterator<Item = &Domain> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
