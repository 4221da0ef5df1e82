//! Domains, hosts and allowlist sets (R-NET-4, R-NET-5).
//!
//! One grammar and one matching rule serve the job's `Domains`, a node's
//! `--allowlist` file, the egress proxy and the WASM executor, so that what a
//! user writes, what a node agrees to and what the proxy lets through can
//! never disagree.
//!
//! # Entries
//! A [`Domain`] is one normalised entry:
//! - `example.com` covers that host only;
//! - `.example.com` covers `example.com` and its subdomains at any depth,
//!   matched on label boundaries (`badexample.com` is not covered);
//! - `1.2.3.4` or `2001:db8::1` covers that address only.
//!
//! Normalisation (R-NET-5): lower case; exactly one trailing dot removed;
//! Unicode converted to punycode with UTS #46 (`bücher.de` becomes
//! `xn--bcher-kva.de`); IPv6 written bare or in brackets and printed in the
//! canonical form of RFC 5952; an IPv4-mapped IPv6 address becomes the IPv4
//! address it maps, because that is where a connection to it goes.
//! UTS #46 also maps look-alikes (`example。com` is `example.com`) and drops
//! invisible characters (soft hyphen, zero-width space): a component that
//! connects somewhere must therefore use the normalised [`Host`], never the
//! text it was parsed from.
//!
//! Anything else is an error that says what to write instead
//! ([`DomainError`]): whitespace (never trimmed silently, since a stray space
//! usually means two entries were run together), `*` wildcards, schemes,
//! user names, paths, ports, CIDR ranges, zone ids, empty labels, labels
//! longer than 63 octets or names longer than 253, characters outside
//! letters, digits and `-`, labels that start or end with `-`, and numeric
//! names that resolvers would read as an address.
//!
//! # Decisions
//! - **Letters, digits and hyphens only.** `_` is rejected: host names follow
//!   the LDH rule (RFC 952/1123), and `_` appears only in labels of service
//!   records (`_dmarc`, `_sip._tcp`), which are never HTTP hosts. The same
//!   parser reads the proxy's request hosts, so such a host is refused
//!   consistently rather than allowed by one component and not another.
//! - **No numeric top-level label.** `inet_aton`-style resolvers read
//!   `127.1`, `2130706433`, `0x7f.0.0.1` and `010.0.0.1` as addresses, so a
//!   name that looks like a domain could reach loopback or a private network.
//!   No top-level domain is numeric, so any name whose last label is all
//!   digits or `0x` plus hex digits is rejected, with the address resolvers
//!   would read when there is one. IPv4 is accepted only in dotted-quad form
//!   without leading zeros (`1.2.3.4.`, with its one trailing dot, is
//!   `1.2.3.4`). The rule is applied after IDNA mapping, so full-width digits
//!   cannot smuggle an address in.
//! - **Hyphens.** A label may not start or end with `-`; `--` inside a label
//!   is allowed (`r1---sn-abc.googlevideo.com` is a real host), except that
//!   an `xn--` label must be valid punycode.
//! - **Order.** A [`DomainSet`] is sorted by the bytes of the normalised text
//!   (plain string order: `.example.com` < `1.2.3.4` < `api.example.com`), the
//!   simplest order another implementation can reproduce. The order is part of
//!   a job's canonical encoding, hence of its id.
//! - **Fail closed.** A [`Host::Name`] built by hand that is not in normal
//!   form (upper case, trailing dot, a numeric last label...) matches no entry.
//!
//! # Example
//! ```
//! use protocol::domain::{Domain, DomainSet, Host};
//!
//! let set = DomainSet::parse([".Example.com", "api.example.com", "bücher.de."]).unwrap();
//! let entries: Vec<&str> = set.iter().map(Domain::as_str).collect();
//! assert_eq!(entries, [".example.com", "xn--bcher-kva.de"]);
//!
//! assert!(set.allows(&Host::parse("a.b.example.com").unwrap()));
//! assert!(!set.allows(&Host::parse("badexample.com").unwrap()));
//!
//! let err = Domain::parse("*.example.com").unwrap_err();
//! assert!(err.to_string().contains("write `.example.com`"));
//! ```

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use idna::AsciiDenyList;
use idna::uts46::{DnsLength, Hyphens, Uts46};

/// The longest name, in octets of its ASCII form without the trailing dot
/// (RFC 1035's 255 octets on the wire).
pub const MAX_NAME_LEN: usize = 253;

/// The longest label, in octets of its ASCII form (RFC 1035).
pub const MAX_LABEL_LEN: usize = 63;

/// Inputs longer than this are refused before any work: no valid name comes
/// near it, and refusing early bounds the cost of hostile input.
const MAX_INPUT_LEN: usize = 4096;

/// Inputs are echoed in error messages; longer ones are cut so that one bad
/// entry cannot flood a log or a terminal.
const MAX_SHOWN_CHARS: usize = 80;

/// Why a domain entry or a host was rejected.
///
/// `Display` names the input and says what to write instead; where one exact
/// replacement exists, [`DomainError::suggestion`] gives it, and it always
/// parses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// The input is the empty string.
    #[error(
        "empty domain: write a host such as `example.com`, or `.example.com` for it and all its subdomains"
    )]
    Empty,

    /// The input contains whitespace; it is never trimmed silently.
    #[error("`{}` contains whitespace: write {}", show(.input), write_or(.suggestion, "one domain without spaces, e.g. `example.com`"))]
    Whitespace {
        /// The input as written.
        input: String,
        /// The normalised entry to write instead, when there is one.
        suggestion: Option<String>,
    },

    /// A `*` wildcard: a leading dot is how subdomains are covered.
    #[error("`{}`: wildcards are not supported: {}", show(.input), wildcard_fix(.suggestion))]
    Wildcard {
        /// The input as written.
        input: String,
        /// The normalised entry to write instead, when there is one.
        suggestion: Option<String>,
    },

    /// A URL (`https://...`) instead of a host.
    #[error("`{}` is a URL, not a domain: write the host only{}", show(.input), colon_or(.suggestion, ", e.g. `example.com` for `https://example.com/path`"))]
    HasScheme {
        /// The input as written.
        input: String,
        /// The normalised entry to write instead, when there is one.
        suggestion: Option<String>,
    },

    /// A user name (`user@host`).
    #[error("`{}` has a user name (`...@`), which is not part of a domain: write the host only{}", show(.input), colon_or(.suggestion, ", e.g. `example.com`"))]
    HasUserinfo {
        /// The input as written.
        input: String,
        /// The normalised entry to write instead, when there is one.
        suggestion: Option<String>,
    },

    /// A path, query or fragment (`/`, `\`, `?`, `#`).
    #[error("`{}` has a path, query or fragment, which is not part of a domain: write the host only{}", show(.input), colon_or(.suggestion, ", e.g. `example.com`"))]
    HasPath {
        /// The input as written.
        input: String,
        /// The normalised entry to write instead, when there is one.
        suggestion: Option<String>,
    },

    /// A CIDR range (`10.0.0.0/8`).
    #[error("`{}`: CIDR ranges are not allowed: list each address the job needs on its own, e.g. `{address}`", show(.input))]
    Cidr {
        /// The input as written.
        input: String,
        /// The address the range starts at, in canonical form, as an example.
        address: String,
    },

    /// A port (`host:80`, `[::1]:80`).
    #[error("`{}`: ports are not part of a domain: write {}", show(.input), write_or(.suggestion, "the host without `:PORT`"))]
    HasPort {
        /// The input as written.
        input: String,
        /// The normalised entry to write instead, when there is one.
        suggestion: Option<String>,
    },

    /// A leading dot on a host a job wants to reach (only entries take one).
    #[error("`{}`: a host name has no leading dot: write {}", show(.input), write_or(.suggestion, "the host itself, e.g. `example.com`"))]
    LeadingDot {
        /// The input as written.
        input: String,
        /// The normalised entry to write instead, when there is one.
        suggestion: Option<String>,
    },

    /// A leading dot before an IP address, which has no subdomains.
    #[error("`{}`: an IP address has no subdomains, so it takes no leading dot: write `{suggestion}`", show(.input))]
    IpWithSubdomains {
        /// The input as written.
        input: String,
        /// The address to write instead.
        suggestion: String,
    },

    /// An IPv6 zone id (`fe80::1%eth0`), which names an interface of one machine.
    #[error("`{}`: IPv6 zone ids (`%eth0`) name an interface of one machine and are not allowed: write {}", show(.input), write_or(.suggestion, "the address without `%ZONE`"))]
    ZoneId {
        /// The input as written.
        input: String,
        /// The normalised entry to write instead, when there is one.
        suggestion: Option<String>,
    },

    /// Contains `:` but is not an IPv6 address.
    #[error("`{}` is not a valid IPv6 address (only IPv6 addresses contain `:`): write an address such as `2001:db8::1`, or a domain without a port", show(.input))]
    InvalidIpv6 {
        /// The input as written.
        input: String,
    },

    /// An empty label: `..`, a lone `.`, or more than one trailing dot.
    #[error("`{}` has an empty label (`..`, a lone `.`, or more than one trailing dot): write {}", show(.input), write_or(.suggestion, "a domain such as `example.com`, or `.example.com` for it and all its subdomains"))]
    EmptyLabel {
        /// The input as written.
        input: String,
        /// The normalised entry to write instead, when there is one.
        suggestion: Option<String>,
    },

    /// A character outside letters, digits, `-` and `.`.
    #[error("`{}`: `{}` is not allowed in a domain{}: use letters, digits, `-` and `.` only, e.g. `api.example.com`", show(.input), .ch.escape_debug(), underscore_note(*.ch))]
    BadCharacter {
        /// The input as written.
        input: String,
        /// The first character that is not allowed.
        ch: char,
    },

    /// A label that starts or ends with `-`.
    #[error("`{}`: label `{}` starts or ends with `-`: write the label without the leading or trailing hyphen", show(.input), show(.label))]
    BadHyphen {
        /// The input as written.
        input: String,
        /// The offending label.
        label: String,
    },

    /// A label longer than [`MAX_LABEL_LEN`] octets (after punycode).
    #[error("`{}`: a label is {len} octets long, more than the 63 DNS allows: shorten it (or add the missing dot)", show(.input))]
    LabelTooLong {
        /// The input as written.
        input: String,
        /// The length in octets.
        len: usize,
    },

    /// A name longer than [`MAX_NAME_LEN`] octets (after punycode).
    #[error("`{}`: the name is {len} octets long, more than the 253 DNS allows: write a shorter name", show(.input))]
    NameTooLong {
        /// The input as written.
        input: String,
        /// The length in octets.
        len: usize,
    },

    /// Unicode that UTS #46 refuses, or an `xn--` label that is not valid punycode.
    #[error("`{}` is not a valid internationalised domain name (UTS #46; `xn--` labels must be valid punycode): check the spelling, or write the name's `xn--` form as its registrar shows it", show(.input))]
    Idna {
        /// The input as written.
        input: String,
    },

    /// A name whose last label is numeric: resolvers may read it as an address.
    #[error("`{}` {}", show(.input), numeric_fix(.address))]
    AmbiguousNumeric {
        /// The input as written.
        input: String,
        /// The address resolvers read it as, when they read one.
        address: Option<Ipv4Addr>,
    },
}

impl DomainError {
    /// The input that was rejected (`None` for [`DomainError::Empty`]).
    pub fn input(&self) -> Option<&str> {
        use DomainError::*;
        match self {
            Empty => None,
            Whitespace { input, .. }
            | Wildcard { input, .. }
            | HasScheme { input, .. }
            | HasUserinfo { input, .. }
            | HasPath { input, .. }
            | Cidr { input, .. }
            | HasPort { input, .. }
            | LeadingDot { input, .. }
            | IpWithSubdomains { input, .. }
            | ZoneId { input, .. }
            | InvalidIpv6 { input }
            | EmptyLabel { input, .. }
            | BadCharacter { input, .. }
            | BadHyphen { input, .. }
            | LabelTooLong { input, .. }
            | NameTooLong { input, .. }
            | Idna { input }
            | AmbiguousNumeric { input, .. } => Some(input),
        }
    }

    /// The one entry to write instead, when there is one (a CLI can offer
    /// it). It is already normalised and always parses the same way the
    /// rejected input was parsed (as a [`Domain`] or as a [`Host`]).
    pub fn suggestion(&self) -> Option<&str> {
        use DomainError::*;
        match self {
            Whitespace { suggestion, .. }
            | Wildcard { suggestion, .. }
            | HasScheme { suggestion, .. }
            | HasUserinfo { suggestion, .. }
            | HasPath { suggestion, .. }
            | HasPort { suggestion, .. }
            | LeadingDot { suggestion, .. }
            | ZoneId { suggestion, .. }
            | EmptyLabel { suggestion, .. } => suggestion.as_deref(),
            IpWithSubdomains { suggestion, .. } => Some(suggestion),
            // Not `AmbiguousNumeric`: `010.0.0.1` reads as 8.0.0.1, but its
            // writer may have meant 10.0.0.1, so no replacement is offered
            // as exact; the message shows the address as an example.
            _ => None,
        }
    }
}

/// Echo an input safely: control characters escaped, long inputs cut.
fn show(input: &str) -> String {
    let mut out: String = input
        .chars()
        .take(MAX_SHOWN_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if input.chars().nth(MAX_SHOWN_CHARS).is_some() {
        out.push('…');
    }
    out
}

fn write_or(suggestion: &Option<String>, otherwise: &str) -> String {
    match suggestion {
        Some(s) => format!("`{s}`"),
        None => otherwise.to_owned(),
    }
}

fn colon_or(suggestion: &Option<String>, otherwise: &str) -> String {
    match suggestion {
        Some(s) => format!(": `{s}`"),
        None => otherwise.to_owned(),
    }
}

fn wildcard_fix(suggestion: &Option<String>) -> String {
    match suggestion.as_deref().and_then(|s| s.strip_prefix('.')) {
        Some(base) => format!("write `.{base}` to cover {base} and all its subdomains"),
        None => {
            "write `.example.com` to cover example.com and all its subdomains, or list each host"
                .to_owned()
        }
    }
}

fn underscore_note(ch: char) -> &'static str {
    if ch == '_' {
        " (host names are letters, digits and hyphens; `_` only appears in service records)"
    } else {
        ""
    }
}

fn numeric_fix(address: &Option<Ipv4Addr>) -> String {
    match address {
        Some(a) => format!(
            "is a numeric form that resolvers read as the IPv4 address {a} (they merge parts and \
             read a leading `0` as octal, `0x` as hex): write the address in dotted-quad form, e.g. `{a}`"
        ),
        None => {
            "ends in a numeric label, which no top-level domain is and which resolvers may read \
                 as an address: write an IPv4 address in dotted-quad form, e.g. `127.0.0.1`, or a \
                 name whose last label has a letter"
                .to_owned()
        }
    }
}

/// A host a job wants to reach: a normalised DNS name or an IP address.
///
/// Build it with [`Host::parse`]: it applies the normalisation of
/// [`Domain::parse`] but never accepts a leading dot. A `Name` built by hand
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

/// One normalised entry: `example.com`, `.example.com` or an IP address.
///
/// Ordered by its text (see the module docs); equal entries have equal text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Domain {
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
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
    /// [`DomainSet::allows`].
    pub fn allows(&self, host: &Host) -> bool {
        match (self.kind, host) {
            (Kind::Ip(a), Host::Ip(b)) => a == b.to_canonical(),
            (Kind::Exact, Host::Name(n)) => is_normal_name(n) && *n == self.text,
            (Kind::Subtree, Host::Name(n)) => is_normal_name(n) && is_within(n, self.name_part()),
            _ => false,
        }
    }

    fn name_part(&self) -> &str {
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

/// A set of entries, minimised and sorted: no duplicates, no entry covered by
/// another, in the byte order of the normalised text.
///
/// Two sets that allow the same hosts through the same entries are equal,
/// whatever order and redundancy they were written with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DomainSet(Vec<Domain>);

/// An entry of a list that failed to parse, with its position in the list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {index}: {error}")]
pub struct DomainSetError {
    /// Position in the list, counting from 0 like the list in a job file.
    pub index: usize,
    /// The entry as written.
    pub input: String,
    /// Why it was rejected.
    pub error: DomainError,
}

impl DomainSet {
    /// Parse, normalise and minimise a list of entries, reporting every bad
    /// entry rather than the first.
    pub fn parse<I, S>(entries: I) -> Result<DomainSet, Vec<DomainSetError>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut domains = Vec::new();
        let mut errors = Vec::new();
        for (index, entry) in entries.into_iter().enumerate() {
            let input = entry.as_ref();
            match Domain::parse(input) {
                Ok(d) => domains.push(d),
                Err(error) => errors.push(DomainSetError {
                    index,
                    input: input.to_owned(),
                    error,
                }),
            }
        }
        if errors.is_empty() {
            Ok(DomainSet::from_domains(domains))
        } else {
            Err(errors)
        }
    }

    /// Minimise and sort already parsed entries.
    pub fn from_domains(domains: impl IntoIterator<Item = Domain>) -> DomainSet {
        let mut all: Vec<Domain> = domains.into_iter().collect();
        all.sort();
        all.dedup();
        let subtrees: HashSet<&str> = all
            .iter()
            .filter(|d| d.includes_subdomains())
            .map(Domain::name_part)
            .collect();
        // An entry goes if some *other* entry covers it. Only leading-dot
        // entries cover others, so walking the entry's suffixes finds them
        // in O(labels) instead of comparing every pair.
        let covered_by_other = |d: &Domain| match d.kind {
            Kind::Ip(_) => false,
            Kind::Exact => suffixes(&d.text).any(|s| subtrees.contains(s)),
            Kind::Subtree => suffixes(d.name_part())
                .skip(1)
                .any(|s| subtrees.contains(s)),
        };
        let kept = all
            .iter()
            .filter(|d| !covered_by_other(d))
            .cloned()
            .collect();
        DomainSet(kept)
    }

    /// Whether `host` is allowed by this set (R-NET-4).
    ///
    /// THE matching rule: the acceptance policy, the egress proxy and the
    /// WASM executor all call this, so they cannot disagree.
    pub fn allows(&self, host: &Host) -> bool {
        match host {
            Host::Ip(ip) => self.has(&ip.to_canonical().to_string()),
            Host::Name(n) => is_normal_name(n) && (self.has(n) || self.has_subtree_over(n)),
        }
    }

    /// Whether some entry of this set covers `entry` (see [`Domain::covers`]).
    pub fn covers(&self, entry: &Domain) -> bool {
        match entry.kind {
            Kind::Ip(_) => self.has(&entry.text),
            Kind::Exact => self.has(&entry.text) || self.has_subtree_over(&entry.text),
            Kind::Subtree => self.has_subtree_over(entry.name_part()),
        }
    }

    /// The entries of `job` that no entry of this set covers, in `job`'s
    /// order: empty when a node with this allowlist may take the job (R-POL-2).
    pub fn uncovered<'a>(&self, job: &'a DomainSet) -> Vec<&'a Domain> {
        job.0.iter().filter(|d| !self.covers(d)).collect()
    }

    /// The entries, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Domain> {
        self.0.iter()
    }

    /// The number of entries after minimisation.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set has no entry (and so allows no host).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// An entry with exactly this text is in the set.
    fn has(&self, text: &str) -> bool {
        self.0
            .binary_search_by(|d| d.text.as_str().cmp(text))
            .is_ok()
    }

    /// A leading-dot entry `.S` is in the set for `name` or one of its
    /// parent domains `S`.
    fn has_subtree_over(&self, name: &str) -> bool {
        suffixes(name).any(|s| {
            // Compare with `.{s}` without building it.
            let dotted = || std::iter::once(&b'.').chain(s.as_bytes());
            self.0
                .binary_search_by(|d| d.text.as_bytes().iter().cmp(dotted()))
                .is_ok()
        })
    }
}

/// `a.b.c`, `b.c`, `c`: a name and its parents, on label boundaries.
fn suffixes(name: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(name), |s| s.split_once('.').map(|(_, rest)| rest))
}

impl FromIterator<Domain> for DomainSet {
    fn from_iter<I: IntoIterator<Item = Domain>>(iter: I) -> Self {
        DomainSet::from_domains(iter)
    }
}

impl<'a> IntoIterator for &'a DomainSet {
    type Item = &'a Domain;
    type IntoIter = std::slice::Iter<'a, Domain>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl serde::Serialize for DomainSet {
    /// A list of normalised strings.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for DomainSet {
    /// Through [`DomainSet::parse`]: normalised and minimised, with every bad
    /// entry reported.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entries = Vec::<String>::deserialize(d)?;
        DomainSet::parse(&entries).map_err(|errors| {
            let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
            serde::de::Error::custom(all.join("; "))
        })
    }
}

// ---------------------------------------------------------------------------
// The parser. One function reads both entries and hosts, so the proxy and the
// policy can never normalise differently.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// An allowlist or job entry: a leading dot is allowed.
    Entry,
    /// A host to reach: no leading dot.
    Host,
}

struct Parsed {
    subtree: bool,
    host: Host,
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

fn parse_core(input: &str, mode: Mode) -> Result<Parsed, DomainError> {
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
fn inet_aton(name: &str) -> Option<Ipv4Addr> {
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
fn is_normal_name(name: &str) -> bool {
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

#[cfg(test)]
mod tests;
