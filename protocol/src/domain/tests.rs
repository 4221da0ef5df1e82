//! The domain grammar and matching rule, as tables (R-NET-4, R-NET-5), and
//! their properties.

use super::*;
use proptest::prelude::*;

/// What parsing one input must give.
enum Want {
    /// Accepted, with this normalised text.
    Norm(&'static str),
    /// Rejected with this kind of error, whose message contains the hint.
    Fail(&'static str, &'static str),
}
use Want::{Fail, Norm};

struct Case {
    req: &'static str,
    input: String,
    want: Want,
}

fn case(req: &'static str, input: impl Into<String>, want: Want) -> Case {
    Case {
        req,
        input: input.into(),
        want,
    }
}

/// The variant's name, so rows can name the error they expect.
fn kind(e: &DomainError) -> &'static str {
    use DomainError::*;
    match e {
        Empty => "Empty",
        Whitespace { .. } => "Whitespace",
        Wildcard { .. } => "Wildcard",
        HasScheme { .. } => "HasScheme",
        HasUserinfo { .. } => "HasUserinfo",
        HasPath { .. } => "HasPath",
        Cidr { .. } => "Cidr",
        HasPort { .. } => "HasPort",
        LeadingDot { .. } => "LeadingDot",
        IpWithSubdomains { .. } => "IpWithSubdomains",
        ZoneId { .. } => "ZoneId",
        InvalidIpv6 { .. } => "InvalidIpv6",
        EmptyLabel { .. } => "EmptyLabel",
        BadCharacter { .. } => "BadCharacter",
        BadHyphen { .. } => "BadHyphen",
        LabelTooLong { .. } => "LabelTooLong",
        NameTooLong { .. } => "NameTooLong",
        Idna { .. } => "Idna",
        AmbiguousNumeric { .. } => "AmbiguousNumeric",
    }
}

/// Every entry form a user may write, and what becomes of it. The hint is
/// the part of the message that says what to write instead.
#[rustfmt::skip] // one row per line reads as a table
fn domain_cases() -> Vec<Case> {
    let l63 = "a".repeat(63);
    let l64 = "a".repeat(64);
    // 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 octets.
    let n253 = format!("{l63}.{l63}.{l63}.{}", "b".repeat(61));
    let n254 = format!("{l63}.{l63}.{l63}.{}", "b".repeat(62));
    // The leading dot is not part of a name's 253 octets.
    let dotted253 = format!(".{}abc", "x.".repeat(125));
    let dotted254 = format!(".{}abcd", "x.".repeat(125));
    vec![
        // Case, trailing dots.
        case("R-NET-5", "example.com",          Norm("example.com")),
        case("R-NET-5", "EXAMPLE.Com",          Norm("example.com")),
        case("R-NET-5", "example.com.",         Norm("example.com")),
        case("R-NET-5", ".Example.COM.",        Norm(".example.com")),
        case("R-NET-5", "example.com..",        Fail("EmptyLabel", "write `example.com`")),
        case("R-NET-5", "localhost",            Norm("localhost")),
        case("R-NET-5", "3com.com",             Norm("3com.com")),
        case("R-NET-5", "1.example.com",        Norm("1.example.com")),
        case("R-NET-5", "a-b.example.com",      Norm("a-b.example.com")),
        case("R-NET-5", "ab--cd.com",           Norm("ab--cd.com")),
        // IDNA (UTS #46).
        case("R-NET-5", "bücher.de",            Norm("xn--bcher-kva.de")),
        case("R-NET-5", "BÜCHER.DE",            Norm("xn--bcher-kva.de")),
        case("R-NET-5", ".Bücher.de",           Norm(".xn--bcher-kva.de")),
        case("R-NET-5", "xn--bcher-kva.de",     Norm("xn--bcher-kva.de")),
        case("R-NET-5", "XN--BCHER-KVA.DE.",    Norm("xn--bcher-kva.de")),
        case("R-NET-5", "münchen.de",           Norm("xn--mnchen-3ya.de")),
        case("R-NET-5", "пример.рф",            Norm("xn--e1afmkfd.xn--p1ai")),
        case("R-NET-5", "faß.de",               Norm("xn--fa-hia.de")),
        case("R-NET-5", "example。com",         Norm("example.com")),
        case("R-NET-5", "xn--zz.com",           Fail("Idna", "valid punycode")),
        case("R-NET-5", "⒈.com",                Fail("Idna", "`xn--` form")),
        case("R-NET-5", "ü".repeat(70) + ".de", Fail("LabelTooLong", "63")),
        // Labels and lengths, counted on the ASCII form.
        case("R-NET-5", format!("{l63}.com"),   Norm(leak(format!("{l63}.com")))),
        case("R-NET-5", format!("{l64}.com"),   Fail("LabelTooLong", "64 octets")),
        case("R-NET-5", n253.clone(),           Norm(leak(n253))),
        case("R-NET-5", n254,                   Fail("NameTooLong", "253")),
        case("R-NET-4", dotted253.clone(),      Norm(leak(dotted253))),
        case("R-NET-4", dotted254,              Fail("NameTooLong", "254 octets")),
        case("R-NET-5", "a".repeat(5000),       Fail("NameTooLong", "shorter name")),
        case("R-NET-5", "-a.com",               Fail("BadHyphen", "label `-a`")),
        case("R-NET-5", "a-.com",               Fail("BadHyphen", "without the leading or trailing hyphen")),
        case("R-NET-5", "api.-x.com",           Fail("BadHyphen", "label `-x`")),
        case("R-NET-5", "a_b.com",              Fail("BadCharacter", "`_`")),
        case("R-NET-5", "exa!mple.com",         Fail("BadCharacter", "`!`")),
        case("R-NET-5", "a\u{0}b.com",          Fail("BadCharacter", "letters, digits")),
        case("R-NET-5", "a%2eb.com",            Fail("BadCharacter", "`%`")),
        // Empty labels and lone dots.
        case("R-NET-5", "",                     Fail("Empty", "`.example.com`")),
        case("R-NET-4", ".",                    Fail("EmptyLabel", "`.example.com`")),
        case("R-NET-4", "..",                   Fail("EmptyLabel", "`.example.com`")),
        case("R-NET-4", "..x.com",              Fail("EmptyLabel", "write `.x.com`")),
        case("R-NET-5", "x..y.com",             Fail("EmptyLabel", "write `x.y.com`")),
        case("R-NET-4", ".example..com",        Fail("EmptyLabel", "write `.example.com`")),
        // Whitespace is refused, never trimmed.
        case("R-NET-5", " example.com",         Fail("Whitespace", "write `example.com`")),
        case("R-NET-5", "example.com\t",        Fail("Whitespace", "write `example.com`")),
        case("R-NET-5", "exa mple.com",         Fail("Whitespace", "without spaces")),
        case("R-NET-5", "a.com b.com",          Fail("Whitespace", "without spaces")),
        // Wildcards.
        case("R-NET-5", "*.example.com",        Fail("Wildcard", "write `.example.com` to cover example.com and all its subdomains")),
        case("R-NET-5", "*.Bücher.de",          Fail("Wildcard", "write `.xn--bcher-kva.de` to cover xn--bcher-kva.de")),
        case("R-NET-5", "*",                    Fail("Wildcard", "write `.example.com`")),
        case("R-NET-5", "*example.com",         Fail("Wildcard", "write `.example.com`")),
        case("R-NET-5", "api.*.example.com",    Fail("Wildcard", "list each host")),
        // Ports, schemes, paths, user names.
        case("R-NET-5", "example.com:8080",     Fail("HasPort", "ports are not part of a domain: write `example.com`")),
        case("R-NET-5", ".example.com:443",     Fail("HasPort", "write `.example.com`")),
        case("R-NET-5", "example.com:",         Fail("HasPort", "write `example.com`")),
        case("R-NET-5", "1.2.3.4:80",           Fail("HasPort", "write `1.2.3.4`")),
        case("R-NET-5", "[::1]:80",             Fail("HasPort", "write `::1`")),
        case("R-NET-5", "https://x.org/y",      Fail("HasScheme", "write the host only: `x.org`")),
        case("R-NET-5", "http://u:p@Example.org:80/", Fail("HasScheme", "write the host only: `example.org`")),
        case("R-NET-5", "ftp://x.org",          Fail("HasScheme", "`x.org`")),
        case("R-NET-5", "x.org/y",              Fail("HasPath", "write the host only: `x.org`")),
        case("R-NET-5", "x.org/",               Fail("HasPath", "`x.org`")),
        case("R-NET-5", "x.org?q=1",            Fail("HasPath", "`x.org`")),
        case("R-NET-5", "x.org#top",            Fail("HasPath", "`x.org`")),
        case("R-NET-5", "x.org\\y",             Fail("HasPath", "`x.org`")),
        case("R-NET-5", "user@x.org",           Fail("HasUserinfo", "write the host only: `x.org`")),
        case("R-NET-5", "x.org@evil.com",       Fail("HasUserinfo", "`evil.com`")),
        // CIDR ranges.
        case("R-NET-5", "10.0.0.0/8",           Fail("Cidr", "CIDR ranges are not allowed: list each address")),
        case("R-NET-5", "2001:db8::/32",        Fail("Cidr", "CIDR ranges are not allowed")),
        case("R-NET-5", "[2001:db8::]/32",      Fail("Cidr", "e.g. `2001:db8::`")),
        // IPv4 literals, exact entries only.
        case("R-NET-5", "1.2.3.4",              Norm("1.2.3.4")),
        case("R-NET-5", "1.2.3.4.",             Norm("1.2.3.4")),
        case("R-NET-5", "255.255.255.255",      Norm("255.255.255.255")),
        case("R-NET-4", ".1.2.3.4",             Fail("IpWithSubdomains", "write `1.2.3.4`")),
        // Numeric forms that resolvers turn into addresses.
        case("R-NET-5", "127.1",                Fail("AmbiguousNumeric", "dotted-quad form, e.g. `127.0.0.1`")),
        case("R-NET-5", "2130706433",           Fail("AmbiguousNumeric", "e.g. `127.0.0.1`")),
        case("R-NET-5", "0x7f.0.0.1",           Fail("AmbiguousNumeric", "e.g. `127.0.0.1`")),
        case("R-NET-5", "0X7F000001",           Fail("AmbiguousNumeric", "e.g. `127.0.0.1`")),
        case("R-NET-5", "0177.0.0.1",           Fail("AmbiguousNumeric", "e.g. `127.0.0.1`")),
        case("R-NET-5", "010.0.0.1",            Fail("AmbiguousNumeric", "address 8.0.0.1")),
        case("R-NET-5", "1.2.3",                Fail("AmbiguousNumeric", "e.g. `1.2.0.3`")),
        case("R-NET-5", "0",                    Fail("AmbiguousNumeric", "e.g. `0.0.0.0`")),
        case("R-NET-5", "256.1.1.1",            Fail("AmbiguousNumeric", "dotted-quad form, e.g. `127.0.0.1`")),
        case("R-NET-5", "1.2.3.4.5",            Fail("AmbiguousNumeric", "top-level domain")),
        case("R-NET-5", "example.123",          Fail("AmbiguousNumeric", "top-level domain")),
        case("R-NET-5", "example.0x1f",         Fail("AmbiguousNumeric", "top-level domain")),
        case("R-NET-5", ".127.1",               Fail("AmbiguousNumeric", "e.g. `127.0.0.1`")),
        case("R-NET-5", "１２７.０.０.１",      Fail("AmbiguousNumeric", "e.g. `127.0.0.1`")),
        case("R-NET-5", "example.c0m",          Norm("example.c0m")),
        // IPv6 literals, bare or bracketed, canonical form.
        case("R-NET-5", "2001:db8::1",          Norm("2001:db8::1")),
        case("R-NET-5", "[2001:db8::1]",        Norm("2001:db8::1")),
        case("R-NET-5", "2001:DB8:0:0:0:0:0:1", Norm("2001:db8::1")),
        case("R-NET-5", "[::1]",                Norm("::1")),
        case("R-NET-5", "::ffff:1.2.3.4",       Norm("1.2.3.4")),
        case("R-NET-5", "[::ffff:7f00:1]",      Norm("127.0.0.1")),
        case("R-NET-5", "fe80::1%eth0",         Fail("ZoneId", "write `fe80::1`")),
        case("R-NET-5", "[fe80::1%25eth0]",     Fail("ZoneId", "write `fe80::1`")),
        case("R-NET-4", ".2001:db8::1",         Fail("IpWithSubdomains", "write `2001:db8::1`")),
        case("R-NET-4", ".[::1]",               Fail("IpWithSubdomains", "write `::1`")),
        case("R-NET-5", "2001:db8::g",          Fail("InvalidIpv6", "`2001:db8::1`")),
        case("R-NET-5", "[::1",                 Fail("InvalidIpv6", "`2001:db8::1`")),
        case("R-NET-5", "[::1]x",               Fail("InvalidIpv6", "`2001:db8::1`")),
        case("R-NET-5", "a:b:c",                Fail("InvalidIpv6", "without a port")),
    ]
}

/// Long expected values are built at run time; tests may leak them.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

// R-NET-4, R-NET-5: the whole table, one failure report listing every bad row.
#[test]
fn r_net_5_domain_table() {
    let cases = domain_cases();
    assert!(cases.len() >= 60, "the table must cover at least 60 cases");
    let mut failures = Vec::new();
    for c in &cases {
        let got = Domain::parse(&c.input);
        let ok = match (&c.want, &got) {
            (Norm(want), Ok(d)) => d.as_str() == *want,
            (Fail(want_kind, hint), Err(e)) => {
                let msg = e.to_string();
                kind(e) == *want_kind && msg.contains(hint)
            }
            _ => false,
        };
        if !ok {
            let want = match &c.want {
                Norm(n) => format!("Ok({n})"),
                Fail(k, h) => format!("{k} containing {h:?}"),
            };
            failures.push(format!("{} {:?}: want {want}, got {got:?}", c.req, c.input));
        }
        // Whatever an error suggests must itself be a normalised entry.
        if let Err(e) = &got
            && let Some(s) = e.suggestion()
        {
            let again = Domain::parse(s).map(|d| d.to_string());
            if again.as_deref() != Ok(s) {
                failures.push(format!("{:?}: suggestion {s:?} gives {again:?}", c.input));
            }
        }
        // Every message names the input it rejects.
        if let Err(e) = &got
            && !c.input.is_empty()
            && !e.to_string().contains(&show(&c.input))
        {
            failures.push(format!(
                "{:?}: message does not name the input: {e}",
                c.input
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// R-NET-4: which hosts an entry lets a job reach.
#[test]
fn r_net_4_host_table() {
    let rows: &[(&str, &str, &str, bool)] = &[
        ("R-NET-4", ".example.com", "example.com", true),
        ("R-NET-4", ".example.com", "api.example.com", true),
        ("R-NET-4", ".example.com", "a.b.example.com", true),
        ("R-NET-4", ".example.com", "EXAMPLE.COM.", true),
        ("R-NET-4", ".example.com", "badexample.com", false),
        ("R-NET-4", ".example.com", "example.com.evil.org", false),
        ("R-NET-4", ".example.com", "com", false),
        ("R-NET-4", ".example.com", "example.org", false),
        ("R-NET-4", ".a.example.com", "x.a.example.com", true),
        ("R-NET-4", ".a.example.com", "example.com", false),
        ("R-NET-4", ".a.example.com", "b.example.com", false),
        ("R-NET-4", "example.com", "example.com", true),
        ("R-NET-4", "example.com", "Example.Com.", true),
        ("R-NET-4", "example.com", "api.example.com", false),
        ("R-NET-4", "example.com", "example.org", false),
        ("R-NET-5", ".bücher.de", "www.xn--bcher-kva.de", true),
        ("R-NET-5", "xn--bcher-kva.de", "Bücher.de", true),
        ("R-NET-5", "1.2.3.4", "1.2.3.4", true),
        ("R-NET-5", "1.2.3.4", "::ffff:1.2.3.4", true),
        ("R-NET-5", "1.2.3.4", "[::ffff:1.2.3.4]", true),
        ("R-NET-5", "1.2.3.4", "1.2.3.5", false),
        ("R-NET-5", "::ffff:1.2.3.4", "1.2.3.4", true),
        ("R-NET-5", "::1", "[::1]", true),
        ("R-NET-5", "::1", "0:0:0:0:0:0:0:1", true),
        ("R-NET-5", "::1", "127.0.0.1", false),
        ("R-NET-5", "2001:db8::1", "2001:db8::2", false),
        ("R-NET-4", ".example.com", "1.2.3.4", false),
        ("R-NET-4", "1.2.3.4", "example.com", false),
    ];
    for (req, entry, host, want) in rows {
        let d = Domain::parse(entry).unwrap();
        let h = Host::parse(host).unwrap();
        assert_eq!(d.allows(&h), *want, "{req}: {entry} allows {host}");
        let set = DomainSet::from_domains([d]);
        assert_eq!(set.allows(&h), *want, "{req}: {{{entry}}} allows {host}");
    }
}

// R-NET-4: a host cannot take a leading dot; errors say what to write.
#[test]
fn r_net_4_hosts_parse_like_entries_without_leading_dot() {
    assert_eq!(
        Host::parse("API.Example.com.").unwrap(),
        Host::Name("api.example.com".into())
    );
    assert_eq!(
        Host::parse("[::ffff:10.0.0.1]").unwrap(),
        Host::Ip("10.0.0.1".parse().unwrap())
    );
    assert_eq!(
        Host::parse("2001:db8::1").unwrap().to_string(),
        "2001:db8::1"
    );
    let e = Host::parse(".example.com").unwrap_err();
    assert_eq!(kind(&e), "LeadingDot");
    assert_eq!(e.suggestion(), Some("example.com"));
    // The proxy refuses numeric tricks by name, before any resolver sees them.
    for trick in ["127.1", "2130706433", "0x7f.0.0.1", "010.0.0.1"] {
        let e = Host::parse(trick).unwrap_err();
        assert_eq!(kind(&e), "AmbiguousNumeric", "{trick}");
    }
    let e = Host::parse("*.example.com").unwrap_err();
    assert_eq!(e.suggestion(), None, "hosts get no leading-dot suggestion");
}

// R-NET-4: a hand-built host that is not in normal form matches nothing.
#[test]
fn r_net_4_unnormalised_hosts_fail_closed() {
    let set = DomainSet::parse([".example.com", "example.org", "1.2.3.4"]).unwrap();
    for name in [
        "EXAMPLE.org",
        "example.org.",
        "x.example.com\0",
        "1.2.3.4",
        "..example.com",
        "",
        "a_b.example.com",
    ] {
        let host = Host::Name(name.into());
        assert!(!set.allows(&host), "{name:?}");
        assert!(!set.iter().any(|d| d.allows(&host)), "{name:?}");
    }
    // An address built by hand in IPv4-mapped form is canonicalised.
    let mapped = Host::Ip("::ffff:1.2.3.4".parse().unwrap());
    assert!(set.allows(&mapped));
    assert!(Domain::parse("1.2.3.4").unwrap().allows(&mapped));
}

// R-POL-2 (the examples of SPEC.md) and R-NET-4: which job entries a node entry covers.
#[test]
fn r_pol_2_covers_table() {
    let rows: &[(&str, &str, bool)] = &[
        (".example.com", "example.com", true),
        (".example.com", ".example.com", true),
        (".example.com", "api.example.com", true),
        (".example.com", ".api.example.com", true),
        (".example.com", "a.b.example.com", true),
        (".example.com", "badexample.com", false),
        (".example.com", ".badexample.com", false),
        (".example.com", "example.org", false),
        (".example.com", "1.2.3.4", false),
        ("example.com", "example.com", true),
        ("example.com", ".example.com", false),
        ("example.com", "api.example.com", false),
        ("api.example.com", ".api.example.com", false),
        (".api.example.com", ".example.com", false),
        (".api.example.com", "example.com", false),
        ("1.2.3.4", "1.2.3.4", true),
        ("1.2.3.4", "::ffff:1.2.3.4", true),
        ("1.2.3.4", "1.2.3.5", false),
        ("::1", "[::1]", true),
    ];
    for (node, job, want) in rows {
        let n = Domain::parse(node).unwrap();
        let j = Domain::parse(job).unwrap();
        assert_eq!(n.covers(&j), *want, "R-POL-2: {node} covers {job}");
        assert_eq!(
            DomainSet::from_domains([n]).covers(&j),
            *want,
            "R-POL-2: {{{node}}} covers {job}"
        );
    }
}

// R-NET-5: duplicates and covered entries go; the order is byte order.
#[test]
fn r_net_5_minimisation_table() {
    let rows: &[(&[&str], &[&str])] = &[
        (
            &[".example.com", "api.example.com", "example.com"],
            &[".example.com"],
        ),
        (
            &[".a.example.com", ".example.com", "x.a.example.com"],
            &[".example.com"],
        ),
        (&["b.com", "a.com", "b.com", "B.COM."], &["a.com", "b.com"]),
        (
            &["example.com", ".api.example.com"],
            &[".api.example.com", "example.com"],
        ),
        (
            &["badexample.com", ".example.com"],
            &[".example.com", "badexample.com"],
        ),
        (
            &["1.2.3.4", "::ffff:1.2.3.4", "[::ffff:1.2.3.4]"],
            &["1.2.3.4"],
        ),
        (
            &["api.other.com", "2001:db8::1", "1.2.3.4", ".example.com"],
            &[".example.com", "1.2.3.4", "2001:db8::1", "api.other.com"],
        ),
        (&["bücher.de", ".xn--bcher-kva.de"], &[".xn--bcher-kva.de"]),
        (&[], &[]),
    ];
    for (input, want) in rows {
        let set = DomainSet::parse(*input).unwrap();
        let got: Vec<&str> = set.iter().map(Domain::as_str).collect();
        assert_eq!(&got, want, "R-NET-5: {input:?}");
        assert_eq!(set.len(), want.len());
        assert_eq!(set.is_empty(), want.is_empty());
    }
}

// R-NET-5: every bad entry is reported, with its position and text.
#[test]
fn r_net_5_set_parse_reports_every_bad_entry() {
    let errors = DomainSet::parse(["ok.com", "*.x.com", "y.com:80", "fine.org", ""]).unwrap_err();
    let found: Vec<(usize, &str, &str)> = errors
        .iter()
        .map(|e| (e.index, e.input.as_str(), kind(&e.error)))
        .collect();
    assert_eq!(
        found,
        [
            (1, "*.x.com", "Wildcard"),
            (2, "y.com:80", "HasPort"),
            (4, "", "Empty")
        ]
    );
    assert!(errors[0].to_string().starts_with("entry 1: `*.x.com`"));
}

// R-POL-2: the job entries an allowlist leaves uncovered, in job order.
#[test]
fn r_pol_2_uncovered() {
    let node = DomainSet::parse([".example.com", "foo.org"]).unwrap();
    let job = DomainSet::parse([
        "api.example.com",
        "foo.org",
        "bar.org",
        ".foo.org",
        "example.com",
    ])
    .unwrap();
    let missing: Vec<&str> = node
        .uncovered(&job)
        .into_iter()
        .map(Domain::as_str)
        .collect();
    assert_eq!(missing, [".foo.org", "bar.org"]);
    assert!(node.uncovered(&DomainSet::default()).is_empty());
}

// R-NET-5: serde goes through the parser, so input from outside is normalised.
#[test]
fn r_net_5_serde_normalises() {
    let set: DomainSet = serde_json::from_str(r#"["API.example.com", ".Example.com."]"#).unwrap();
    assert_eq!(serde_json::to_string(&set).unwrap(), r#"[".example.com"]"#);
    let d: Domain = serde_json::from_str(r#""Bücher.de""#).unwrap();
    assert_eq!(serde_json::to_string(&d).unwrap(), r#""xn--bcher-kva.de""#);
    let err = serde_json::from_str::<DomainSet>(r#"["*.a.com", "ok.com", "b.com:1"]"#).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("entry 0: `*.a.com`") && msg.contains("entry 2: `b.com:1`"),
        "{msg}"
    );
    assert!(serde_json::from_str::<Domain>(r#""127.1""#).is_err());
    let h: Host = serde_json::from_str(r#""[::ffff:1.2.3.4]""#).unwrap();
    assert_eq!(serde_json::to_string(&h).unwrap(), r#""1.2.3.4""#);
}

// R-NET-5: messages echo inputs safely (escaped, cut when long).
#[test]
fn r_net_5_messages_echo_input_safely() {
    let e = Domain::parse("a\u{1b}[31mb.com").unwrap_err();
    assert!(!e.to_string().contains('\u{1b}'), "{e}");
    let e = Domain::parse(&format!("{}_", "a".repeat(300))).unwrap_err();
    assert!(e.to_string().len() < 400, "{e}");
    assert!(e.to_string().contains('…'));
}

// R-NET-5: what `inet_aton` reads, to tell users which address they wrote.
#[test]
fn r_net_5_inet_aton_forms() {
    let rows: &[(&str, Option<&str>)] = &[
        ("127.0.0.1", Some("127.0.0.1")),
        ("127.1", Some("127.0.0.1")),
        ("127.0.1", Some("127.0.0.1")),
        ("2130706433", Some("127.0.0.1")),
        ("0x7f.1", Some("127.0.0.1")),
        ("0177.1", Some("127.0.0.1")),
        ("0x", Some("0.0.0.0")),
        ("4294967295", Some("255.255.255.255")),
        ("4294967296", None),
        ("256.1", None),
        ("1.2.3.256", None),
        ("1.2.3.4.5", None),
        ("08.1.1.1", None),
        ("0x+1.1", None),
        ("+1.1", None),
        ("a.1", None),
    ];
    for (input, want) in rows {
        assert_eq!(
            inet_aton(input).map(|a| a.to_string()).as_deref(),
            *want,
            "{input}"
        );
    }
}

// ---------------------------------------------------------------------------
// Properties. A small label alphabet makes equal names, parents and children
// common, so coverage and minimisation are really exercised.

const LABELS: &[&str] = &["a", "b", "ab", "x-y", "0", "bücher", "xn--bcher-kva", "A"];
const IPS: &[&str] = &[
    "1.2.3.4",
    "::ffff:1.2.3.4",
    "[::1]",
    "::1",
    "10.0.0.1",
    "2001:db8::1",
];

fn name_strategy(max_labels: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(LABELS), 1..=max_labels).prop_map(|l| l.join("."))
}

/// Entry text as a user might write it: any case, leading and trailing dots.
fn entry_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (any::<bool>(), name_strategy(3), any::<bool>()).prop_map(|(lead, name, trail)| {
            format!("{}{name}{}", if lead { "." } else { "" }, if trail { "." } else { "" })
        }),
        1 => prop::sample::select(IPS).prop_map(str::to_owned),
    ]
}

fn domain() -> impl Strategy<Value = Domain> {
    entry_text().prop_filter_map("valid entries only", |t| Domain::parse(&t).ok())
}

fn host() -> impl Strategy<Value = Host> {
    prop_oneof![
        4 => name_strategy(4),
        1 => prop::sample::select(IPS).prop_map(str::to_owned),
    ]
    .prop_filter_map("valid hosts only", |t| Host::parse(&t).ok())
}

/// Up to two labels to put in front of a name, to make a subdomain of it.
fn prefix() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(LABELS), 0..=2)
        .prop_map(|l| l.iter().map(|l| format!("{l}.")).collect())
}

/// Three entries where each is the same as, or below, the one before: random
/// triples almost never form such chains.
fn chain() -> impl Strategy<Value = (Domain, Domain, Domain)> {
    (name_strategy(2), prefix(), prefix(), any::<[bool; 3]>()).prop_filter_map(
        "valid entries only",
        |(base, p1, p2, dots)| {
            let dot = |d: bool| if d { "." } else { "" };
            let a = Domain::parse(&format!("{}{base}", dot(dots[0]))).ok()?;
            let b = Domain::parse(&format!("{}{p1}{base}", dot(dots[1]))).ok()?;
            let c = Domain::parse(&format!("{}{p2}{p1}{base}", dot(dots[2]))).ok()?;
            Some((a, b, c))
        },
    )
}

/// Hosts below the given entries (so that some are allowed), and others.
fn hosts_near(entries: &[Domain], prefixes: &[String], others: Vec<Host>) -> Vec<Host> {
    let near = entries.iter().zip(prefixes).filter_map(|(d, p)| {
        let base = d.name().map_or_else(|| d.to_string(), str::to_owned);
        Host::parse(&format!("{p}{base}")).ok()
    });
    near.chain(others).collect()
}

/// Junk shaped like the mistakes users make, plus arbitrary text.
fn junk() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9.:/@*\\[\\]%_#?\\\\ -]{0,24}",
        "\\PC{0,16}",
        "(https?://)?(\\*\\.|\\.)?[a-zü]{1,3}(\\.[a-z0-9]{1,3}){0,3}\\.?(:[0-9]{0,3})?(/[a-z]*)?",
    ]
}

proptest! {
    // R-NET-5: normalisation is idempotent, for entries and hosts.
    #[test]
    fn r_net_5_normalisation_is_idempotent(text in prop_oneof![entry_text(), junk()]) {
        if let Ok(d) = Domain::parse(&text) {
            prop_assert_eq!(Domain::parse(d.as_str()), Ok(d.clone()));
            prop_assert_eq!(Domain::parse(&d.to_string()), Ok(d));
        }
        if let Ok(h) = Host::parse(&text) {
            prop_assert_eq!(Host::parse(&h.to_string()), Ok(h));
        }
    }

    // R-NET-5: junk never panics, and every suggestion parses to itself.
    #[test]
    fn r_net_5_junk_gets_errors_and_valid_suggestions(text in junk()) {
        if let Err(e) = Domain::parse(&text) {
            prop_assert!(!e.to_string().is_empty());
            if let Some(s) = e.suggestion() {
                let again = Domain::parse(s).map(|d| d.to_string());
                prop_assert_eq!(again.as_deref(), Ok(s));
            }
        }
        if let Err(e) = Host::parse(&text)
            && let Some(s) = e.suggestion()
        {
            let again = Host::parse(s).map(|h| h.to_string());
            prop_assert_eq!(again.as_deref(), Ok(s));
        }
    }

    // R-NET-4: coverage is transitive.
    #[test]
    fn r_net_4_coverage_is_transitive(
        (a, b, c) in prop_oneof![chain(), (domain(), domain(), domain())],
    ) {
        if a.covers(&b) && b.covers(&c) {
            prop_assert!(a.covers(&c), "{} covers {} covers {}", a, b, c);
        }
    }

    // R-NET-4: coverage respects label boundaries and means "allows at least as much".
    #[test]
    fn r_net_4_coverage_respects_labels(
        (a, b, _) in prop_oneof![chain(), (domain(), domain(), domain())],
        p in prefix(),
        h in host(),
    ) {
        let hosts = hosts_near(std::slice::from_ref(&b), &[p], vec![h]);
        prop_assert!(a.covers(&a));
        if a.covers(&b) {
            match (a.name(), b.name()) {
                (Some(an), Some(bn)) => {
                    let within = bn == an || bn.ends_with(&format!(".{}", an));
                    prop_assert!(within, "{} is not {} or below it", bn, an);
                }
                (None, None) => prop_assert_eq!(a.ip(), b.ip()),
                _ => prop_assert!(false, "a name entry and an address never cover each other"),
            }
            for h in &hosts {
                if b.allows(h) {
                    prop_assert!(a.allows(h), "{} covers {} but not host {}", a, b, h);
                }
            }
        }
    }

    // R-NET-4: the matching rule, stated independently.
    #[test]
    fn r_net_4_allows_matches_definition(d in domain(), p in prefix(), other in host()) {
        for h in hosts_near(std::slice::from_ref(&d), &[p], vec![other]) {
        let want = match (&h, d.name(), d.ip()) {
            (Host::Name(n), Some(base), _) if d.includes_subdomains() => {
                n == base || n.ends_with(&format!(".{base}"))
            }
            (Host::Name(n), Some(base), _) => n == base,
            (Host::Ip(ip), None, Some(entry)) => *ip == entry,
            _ => false,
        };
        prop_assert_eq!(d.allows(&h), want, "{} allows {}", d, h);
        }
    }

    // R-NET-5: minimisation never changes which hosts are allowed, and the
    // set's fast lookups agree with the entries'.
    #[test]
    fn r_net_5_minimisation_keeps_allowed_hosts(
        raw in prop::collection::vec(domain(), 0..8),
        prefixes in prop::collection::vec(prefix(), 8),
        others in prop::collection::vec(host(), 1..8),
        probes in prop::collection::vec(domain(), 1..8),
    ) {
        let set = DomainSet::from_domains(raw.clone());
        let hosts = hosts_near(&raw, &prefixes, others);
        for h in &hosts {
            prop_assert_eq!(set.allows(h), raw.iter().any(|d| d.allows(h)), "host {}", h);
        }
        for p in &probes {
            prop_assert_eq!(set.covers(p), raw.iter().any(|d| d.covers(p)), "entry {}", p);
        }
        let entries: Vec<&Domain> = set.iter().collect();
        for pair in entries.windows(2) {
            prop_assert!(pair[0].as_str() < pair[1].as_str(), "sorted, no duplicates");
        }
        for a in &entries {
            for b in &entries {
                prop_assert!(a == b || !a.covers(b), "{} covers {}", a, b);
            }
        }
        // Minimising twice changes nothing, whatever the input order.
        let mut reversed = raw.clone();
        reversed.reverse();
        prop_assert_eq!(DomainSet::from_domains(reversed), set.clone());
        prop_assert_eq!(DomainSet::from_domains(set.iter().cloned()), set);
    }

    // R-NET-5: a set survives a JSON round trip unchanged.
    #[test]
    fn r_net_5_set_serde_round_trip(raw in prop::collection::vec(domain(), 0..8)) {
        let set = DomainSet::from_domains(raw);
        let json = serde_json::to_string(&set).unwrap();
        let back: DomainSet = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, set);
    }
}
