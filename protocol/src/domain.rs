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
//! # Parts
//! One matcher, in four files: the grammar (`grammar.rs`: the one parser,
//! and the [`Host`] it reads), the entries it makes (`entry.rs`:
//! [`Domain`]), the sets and the matching rule (`set.rs`: [`DomainSet`]),
//! and the errors that say what to write instead (`error.rs`:
//! [`DomainError`]). Only the grammar makes values, so every path into
//! a decision goes through it.
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

mod entry;
mod error;
mod grammar;
mod set;

pub use entry::Domain;
pub use error::DomainError;
pub use grammar::{Host, MAX_LABEL_LEN, MAX_NAME_LEN};
pub use set::{DomainSet, DomainSetError};

#[cfg(test)]
use error::show;
#[cfg(test)]
use grammar::inet_aton;

#[cfg(test)]
mod tests;
