//! The grammar, and the [`Host`] it reads: one parser reads both entries
//! and hosts, so the proxy and the policy can never normalise differently.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use idna::AsciiDenyList;
use idna::uts46::{DnsLength, Hyphens, Uts46};

use super::error::DomainError;

/// The longest name, in octets of its ASCII form without the trailing dot
/// (RFC 1035's 255 octets on the wire).
pub const MAX_NAME_LEN: usize = 253;

/// The longest label, in octets of its ASCII form (RFC 1035).
pub const MAX_LABEL_LEN: usize = 63;

/// Inputs longer than this are refused before any work: no valid name comes
/// near it, and refusing early bounds the cost of hostile input.
const MAX_INPUT_LEN: usize = 4096;

/// A host a job wants to reach: a normalised DNS name or an IP address.
///
/// Build it with [`Host::parse`]: it applies the normalisation of
/// [`Domain::parse`](super::Domain::parse) but never accepts a leading dot. A `Name` built by hand
/// that is not in that normal form matches no entry (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    /// A normalised name: lower-case ASCII (punycode), no trailing dot.
    Name(String),
    /// An address; IPv4-mapped IPv6 addresses are stored as IPv4.
    Ip(IpAddr),
}

impl Host {
    /// Parse and normalise a host, as found in a URL or a `CONNECT` target
    /// once the port is split off. `[2001:db8::1]` and `2001:db8::1` are both
    /// accepted.
    pub fn parse(input: &str) -> Result<Host, DomainError> {
        parse_core(input, Mode::Host).map(|p| p.host)
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Host {
        Host::Ip(ip.to_canonical())
    }
}

impl FromStr for Host {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Host, DomainError> {
        Host::parse(s)
    }
}

impl fmt::Display for Host {
    /// The name, or the address without brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl serde::Serialize for Host {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Host {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Host::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// An allowlist or job entry: a leading dot is allowed.
    Entry,
    /// A host to reach: no leading dot.
    Host,
}

pub(super) struct Parsed {
    pub(super) subtree: bool,
    pub(super) host: Host,
}

/// The replacement to offer for a rejected input: `candidate` normalised, or
/// what its own error suggests. Each candidate is shorter than the input it
/// came from, so this terminates, and by induction every suggestion parses.
fn suggest(candidate: &str, mode: Mode) -> Option<String> {
    match parse_core(candidate, mode) {
        Ok(Parsed { subtree, host }) => Some(if subtree {
            format!(".{host}")
        } else {
            host.to_string()
        }),
        Err(e) => e.suggestion().map(str::to_owned),
    }
}

pub(super) fn parse_core(input: &str, mode: Mode) -> Result<Parsed, DomainError> {
    use DomainError::*;
    let owned = || input.to_owned();

    if input.is_empty() {
        return Err(Empty);
    }
    if input.len() > MAX_INPUT_LEN {
        return Err(NameTooLong {
            input: owned(),
            len: input.len(),
        });
    }
    if input.chars().any(char::is_whitespace) {
        let trimmed = input.trim();
        let suggestion = if trimmed.is_empty() || trimmed.chars().any(char::is_whitespace) {
            None
        } else {
            suggest(trimmed, mode)
        };
        return Err(Whitespace {
            input: owned(),
            suggestion,
        });
    }

    // URL-shaped input first: it is the most recognisable mistake, and the
    // host inside it is the best suggestion.
    if let Some((_, after)) = input.split_once("://") {
        let authority = before_any(after, PATH_STARTS);
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        return Err(HasScheme {
            input: owned(),
            suggestion: suggest(host, mode),
        });
    }
    if let Some((_, host)) = before_any(input, PATH_STARTS).rsplit_once('@') {
        return Err(HasUserinfo {
            input: owned(),
            suggestion: suggest(host, mode),
        });
    }
    if let Some(pos) = input.find(PATH_STARTS) {
        let (host, rest) = input.split_at(pos);
        if let Some(bits) = rest.strip_prefix('/')
            && !bits.is_empty()
            && bits.bytes().all(|b| b.is_ascii_digit())
            && let Some(ip) = parse_ip_literal(host)
        {
            return Err(Cidr {
                input: owned(),
                address: ip.to_string(),
            });
        }
        return Err(HasPath {
            input: owned(),
            suggestion: suggest(host, mode),
        });
    }
    if input.contains('*') {
        let suggestion = match (mode, input.strip_prefix("*.")) {
            (Mode::Entry, Some(rest)) => {
                suggest(&format!(".{rest}"), mode).filter(|s| s.starts_with('.'))
            }
            _ => None,
        };
        return Err(Wildcard {
            input: owned(),
            suggestion,
        });
    }

    let (subtree, rest) = match input.strip_prefix('.') {
        None => (false, input),
        Some(rest) if mode == Mode::Entry => (true, rest),
        Some(_) => {
            return Err(LeadingDot {
                input: owned(),
                suggestion: suggest(input.trim_start_matches('.'), mode),
            });
        }
    };
    let dot = if subtree { "." } else { "" };
    let ip_entry = |ip: IpAddr| {
        let ip = ip.to_canonical();
        if subtree {
            Err(IpWithSubdomains {
                input: owned(),
                suggestion: ip.to_string(),
            })
        } else {
            Ok(Parsed {
                subtree: false,
                host: Host::Ip(ip),
            })
        }
    };

    // IPv6, bracketed or bare, and `host:port`.
    if let Some(bracketed) = rest.strip_prefix('[') {
        let Some((inner, after)) = bracketed.split_once(']') else {
            return Err(InvalidIpv6 { input: owned() });
        };
        let ip = parse_ipv6(inner, input)?;
        if after.is_empty() {
            return ip_entry(ip);
        }
        if is_port(after) {
            return Err(HasPort {
                input: owned(),
                suggestion: suggest(&ip.to_canonical().to_string(), mode),
            });
        }
        return Err(InvalidIpv6 { input: owned() });
    }
    if rest.contains(':') {
        if let Some((host, port)) = rest.split_once(':')
            && !port.contains(':')
            && (port.is_empty() || port.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(HasPort {
                input: owned(),
                suggestion: suggest(&format!("{dot}{host}"), mode),
            });
        }
        return ip_entry(parse_ipv6(rest, input)?);
    }

    // Names, and IPv4 in dotted-quad form. Exactly one trailing dot goes.
    let body = rest.strip_suffix('.').unwrap_or(rest);
    if body.is_empty() || body.split('.').any(str::is_empty) {
        let labels: Vec<&str> = body.split('.').filter(|l| !l.is_empty()).collect();
        let suggestion = if labels.is_empty() {
            None
        } else {
            suggest(&format!("{dot}{}", labels.join(".")), mode)
        };
        return Err(EmptyLabel {
            input: owned(),
            suggestion,
        });
    }
    // Rust's parser takes exactly four decimal parts without leading zeros:
    // the one form that means the same to every resolver.
    if let Ok(v4) = body.parse::<Ipv4Addr>() {
        return ip_entry(IpAddr::V4(v4));
    }
    if let Some(ch) = body
        .chars()
        .find(|c| c.is_ascii() && !is_ldh_or_dot(*c as u8))
    {
        return Err(BadCharacter { input: owned(), ch });
    }
    let needs_idna = !body.is_ascii()
        || body
            .split('.')
            .any(|l| l.len() >= 4 && l.as_bytes()[..4].eq_ignore_ascii_case(b"xn--"));
    let name = if needs_idna {
        // STD3 rules keep UTS #46 mappings from producing `/`, `:` and the
        // like from look-alike characters; hyphen positions and lengths are
        // checked below, with messages of our own.
        Uts46::new()
            .to_ascii(
                body.as_bytes(),
                AsciiDenyList::STD3,
                Hyphens::Allow,
                DnsLength::Ignore,
            )
            .map_err(|_| Idna { input: owned() })?
            .into_owned()
    } else {
        body.to_ascii_lowercase()
    };

    // Checked on the ASCII form, since mappings (a full-width dot, digits)
    // can change the labels.
    for label in name.split('.') {
        if label.is_empty() {
            return Err(EmptyLabel {
                input: owned(),
                suggestion: None,
            });
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(LabelTooLong {
                input: owned(),
                len: label.len(),
            });
        }
        if let Some(b) = label.bytes().find(|b| !is_ldh_or_dot(*b)) {
            return Err(BadCharacter {
                input: owned(),
                ch: char::from(b),
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(BadHyphen {
                input: owned(),
                label: label.to_owned(),
            });
        }
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameTooLong {
            input: owned(),
            len: name.len(),
        });
    }
    if name.rsplit('.').next().is_some_and(is_numeric_label) {
        return Err(AmbiguousNumeric {
            input: owned(),
            address: inet_aton(&name),
        });
    }
    Ok(Parsed {
        subtree,
        host: Host::Name(name),
    })
}

/// Where a URL's path, query or fragment begins (`\\` too, as browsers
/// read it as `/`).
const PATH_STARTS: &[char] = &['/', '\\', '?', '#'];

fn before_any<'a>(s: &'a str, stops: &[char]) -> &'a str {
    s.find(stops).map_or(s, |pos| &s[..pos])
}

fn is_port(after_bracket: &str) -> bool {
    after_bracket
        .strip_prefix(':')
        .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_ldh_or_dot(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.'
}

/// All digits, or `0x` and hex digits: a label resolvers read as a number.
fn is_numeric_label(label: &str) -> bool {
    let hex = label
        .strip_prefix("0x")
        .or_else(|| label.strip_prefix("0X"));
    match hex {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// An IPv6 address without brackets; zone ids are refused.
fn parse_ipv6(text: &str, input: &str) -> Result<IpAddr, DomainError> {
    if let Some((addr, _zone)) = text.split_once('%') {
        return Err(DomainError::ZoneId {
            input: input.to_owned(),
            suggestion: addr.parse::<Ipv6Addr>().ok().map(|ip| {
                let ip = IpAddr::V6(ip).to_canonical();
                ip.to_string()
            }),
        });
    }
    text.parse::<Ipv6Addr>()
        .map(IpAddr::V6)
        .map_err(|_| DomainError::InvalidIpv6 {
            input: input.to_owned(),
        })
}

/// An address as written before a CIDR suffix: dotted-quad, bare or
/// bracketed IPv6.
fn parse_ip_literal(text: &str) -> Option<IpAddr> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// What a BSD `inet_aton` makes of a name: one to four parts, each decimal,
/// octal (leading `0`) or hex (`0x`), the last filling the remaining bytes.
/// Used only to tell the user which address an ambiguous name means.
pub(super) fn inet_aton(name: &str) -> Option<Ipv4Addr> {
    let parts = name
        .split('.')
        .map(parse_c_number)
        .collect::<Option<Vec<u32>>>()?;
    let (&last, init) = parts.split_last()?;
    if init.len() > 3 {
        return None;
    }
    let mut addr: u32 = 0;
    for (i, &part) in init.iter().enumerate() {
        if part > 255 {
            return None;
        }
        addr |= part << (24 - 8 * i);
    }
    if last > u32::MAX >> (8 * init.len()) {
        return None;
    }
    Some(Ipv4Addr::from(addr | last))
}

fn parse_c_number(part: &str) -> Option<u32> {
    let (digits, radix) = if let Some(hex) = part.strip_prefix("0x") {
        if hex.is_empty() {
            return Some(0);
        }
        (hex, 16)
    } else if part.len() > 1 && part.starts_with('0') {
        (&part[1..], 8)
    } else {
        (part, 10)
    };
    // `from_str_radix` accepts a sign; a resolver does not.
    if digits.is_empty() || !digits.bytes().all(|b| (b as char).is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

/// A name exactly as [`Host::parse`] would produce it.
pub(super) fn is_normal_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        && !name.rsplit('.').next().is_some_and(is_numeric_label)
}
