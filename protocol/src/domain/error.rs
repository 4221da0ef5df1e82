//! Why a domain entry or a host was rejected: [`DomainError`], whose
//! messages name the input and say what to write instead.

use std::net::Ipv4Addr;

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

    /// A label longer than [`MAX_LABEL_LEN`](super::MAX_LABEL_LEN) octets (after punycode).
    #[error("`{}`: a label is {len} octets long, more than the 63 DNS allows: shorten it (or add the missing dot)", show(.input))]
    LabelTooLong {
        /// The input as written.
        input: String,
        /// The length in octets.
        len: usize,
    },

    /// A name longer than [`MAX_NAME_LEN`](super::MAX_NAME_LEN) octets (after punycode).
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
    /// rejected input was parsed (as a [`Domain`](super::Domain) or as a [`Host`](super::Host)).
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
pub(super) fn show(input: &str) -> String {
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
