//! The target of a request: `host[:port]` from a request line or `Host`
//! header, parsed once, with one parser.
//!
//! The authority text is split into host and port here; the host goes
//! through `protocol::domain::Host::parse` (the same grammar as the job's
//! domains) and everything after is decided on the normalised [`Host`],
//! never on the text.

use std::fmt;

use protocol::domain::{DomainError, Host};

/// A destination: a normalised host and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The normalised host.
    pub host: Host,
    /// The port.
    pub port: u16,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host {
            Host::Ip(std::net::IpAddr::V6(v6)) => write!(f, "[{v6}]:{}", self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// Why an authority was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// `user@host`: userinfo in a proxy target is how `allowed.com@evil.com`
    /// tricks work, so it is refused outright.
    #[error("userinfo (`...@`) in the target authority is not allowed")]
    Userinfo,
    /// No port where one is required, an empty port, or a port that is not
    /// a number from 1 to 65535.
    #[error("bad or missing port in `{0}`")]
    Port(String),
    /// Bytes outside printable ASCII.
    #[error("non-ASCII or control characters in the target")]
    NotAscii,
    /// The host does not parse.
    #[error("bad host: {0}")]
    Host(#[from] DomainError),
}

/// Parse `host`, `host:port`, `[v6]` or `[v6]:port`. Without a port,
/// `default_port` is used; `None` means the port is required (`CONNECT`).
pub fn parse_authority(text: &str, default_port: Option<u16>) -> Result<Target, TargetError> {
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TargetError::NotAscii);
    }
    if text.contains('@') {
        return Err(TargetError::Userinfo);
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return Err(TargetError::Host(Host::parse(text).err().unwrap_or(
                DomainError::InvalidIpv6 {
                    input: text.to_owned(),
                },
            )));
        };
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| TargetError::Port(text.to_owned()))?,
            ),
        };
        (&text[..end + 2], port)
    } else {
        match text.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                // Unbracketed IPv6: no port can be told apart from it.
                (text, None)
            }
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    let port = match port {
        Some(p) => parse_port(p).ok_or_else(|| TargetError::Port(text.to_owned()))?,
        None => default_port.ok_or_else(|| TargetError::Port(text.to_owned()))?,
    };
    let host = Host::parse(host)?;
    Ok(Target { host, port })
}

/// Decimal digits only, 1..=65535, at most five digits (no sign, no hex).
fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse::<u16>().ok().filter(|&n| n != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        let t = parse_authority("Allowed.TEST.:8080", Some(80)).unwrap();
        assert_eq!(t.to_string(), "allowed.test:8080");
        let t = parse_authority("allowed.test", Some(80)).unwrap();
        assert_eq!(t.port, 80);
        let t = parse_authority("[::1]:443", None).unwrap();
        assert_eq!(t.to_string(), "[::1]:443");
        let t = parse_authority("[::ffff:127.0.0.1]:443", None).unwrap();
        assert_eq!(t.to_string(), "127.0.0.1:443");
        assert_eq!(
            parse_authority("a.test", None),
            Err(TargetError::Port("a.test".into()))
        );
        for bad in [
            "a.test:",
            "a.test:0",
            "a.test:65536",
            "a.test:+443",
            "a.test:0x1bb",
            "a.test:443:443",
            "[::1]443",
            "::1:443",
        ] {
            assert!(parse_authority(bad, None).is_err(), "{bad}");
        }
        assert_eq!(
            parse_authority("a.test:443@b.test:443", None),
            Err(TargetError::Userinfo)
        );
        assert!(matches!(
            parse_authority("2130706433:80", None),
            Err(TargetError::Host(DomainError::AmbiguousNumeric { .. }))
        ));
        assert_eq!(
            parse_authority("bü.test:80", None),
            Err(TargetError::NotAscii)
        );
    }

    proptest::proptest! {
        #[test]
        fn junk_authorities_never_panic(text: String) {
            let _ = parse_authority(&text, None);
            let _ = parse_authority(&text, Some(80));
        }

        #[test]
        fn parsed_targets_print_and_parse_back(text in "[a-z0-9.:\\[\\]-]{0,40}") {
            if let Ok(t) = parse_authority(&text, Some(80)) {
                proptest::prop_assert_eq!(parse_authority(&t.to_string(), None), Ok(t));
            }
        }
    }
}
