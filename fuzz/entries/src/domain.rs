//! Domains, hosts, domain sets and allowlist files (R-NET-4, R-NET-5,
//! R-POL-2): `protocol::domain` and `protocol::policy::Allowlist`.

use protocol::domain::{Domain, DomainSet, Host};
use protocol::policy::{Allowlist, AllowlistError};
use proxy::target::parse_authority;

/// Text read as every kind of domain input (target `domain`): each line as
/// a `Domain` entry, as a `Host` and as a proxy target authority
/// (`host[:port]`, proxy/src/target.rs: the same grammar with a port), all
/// lines as a `DomainSet` (a job's `Domains`) and the whole text as an
/// allowlist file.
///
/// Invariants: normalising is idempotent and printing parses back; an entry
/// allows the host it names; every suggestion an error offers parses (the
/// `DomainError::suggestion` contract); a set is sorted and minimised, and
/// minimising changes no decision; an allowlist written back in normal form
/// reads as the same allowlist, with the same digest; every bad allowlist
/// line is reported with its line number, in order; an entry that covers
/// another allows every host the other allows (R-POL-2); a parsed authority
/// prints as one that parses back to it.
pub fn domain(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines: Vec<&str> = text.split('\n').collect();
    for line in &lines {
        entry(line);
        host(line);
        authority(line);
    }
    covers(&lines);
    set(&lines);
    allowlist(text);
}

fn entry(input: &str) {
    let d = match Domain::parse(input) {
        Ok(d) => d,
        Err(e) => {
            let _ = e.to_string();
            if let Some(s) = e.suggestion()
                && let Err(again) = Domain::parse(s)
            {
                panic!("suggestion {s:?} for the entry {input:?} does not parse: {again}");
            }
            return;
        }
    };
    assert_eq!(
        Domain::parse(d.as_str()).as_ref(),
        Ok(&d),
        "normalising {input:?} twice changes it"
    );
    assert_eq!(d.to_string(), d.as_str());
    assert!(d.covers(&d), "{d} does not cover itself");
    let json = serde_json::to_string(&d).expect("a domain serialises");
    assert_eq!(
        serde_json::from_str::<Domain>(&json).ok().as_ref(),
        Some(&d)
    );
    match (d.ip(), d.name()) {
        (Some(ip), _) => assert!(d.allows(&Host::from(ip)), "{d} does not allow its address"),
        (None, Some(name)) => {
            let host = Host::parse(name)
                .unwrap_or_else(|e| panic!("the name of the entry {d} is no host: {e}"));
            assert!(d.allows(&host), "{d} does not allow {host}");
            if let Ok(sub) = Host::parse(&format!("a.{name}")) {
                assert_eq!(d.allows(&sub), d.includes_subdomains(), "{d} and {sub}");
            }
        }
        (None, None) => panic!("{d} is neither a name nor an address"),
    }
}

fn host(input: &str) {
    let h = match Host::parse(input) {
        Ok(h) => h,
        Err(e) => {
            let _ = e.to_string();
            if let Some(s) = e.suggestion()
                && let Err(again) = Host::parse(s)
            {
                panic!("suggestion {s:?} for the host {input:?} does not parse: {again}");
            }
            return;
        }
    };
    let printed = h.to_string();
    assert_eq!(
        Host::parse(&printed).as_ref(),
        Ok(&h),
        "{input:?} prints as {printed:?}, which reads back differently"
    );
    let d = Domain::parse(&printed)
        .unwrap_or_else(|e| panic!("the host {printed:?} is not an entry: {e}"));
    assert!(d.allows(&h), "the entry {d} does not allow its own host");
}

fn set(lines: &[&str]) {
    let set = match DomainSet::parse(lines) {
        Ok(set) => set,
        Err(errors) => {
            assert!(!errors.is_empty());
            for pair in errors.windows(2) {
                assert!(pair[0].index < pair[1].index, "errors out of order");
            }
            for e in &errors {
                assert_eq!(e.input, lines[e.index]);
                assert!(Domain::parse(&e.input).is_err());
            }
            return;
        }
    };
    let entries: Vec<Domain> = lines.iter().map(|l| Domain::parse(l).unwrap()).collect();
    let kept: Vec<&Domain> = set.iter().collect();
    for pair in kept.windows(2) {
        assert!(
            pair[0].as_str() < pair[1].as_str(),
            "set not sorted: {set:?}"
        );
    }
    // Pairwise, on a bounded prefix: long inputs would make this quadratic.
    for (i, a) in kept.iter().take(64).enumerate() {
        for (j, b) in kept.iter().take(64).enumerate() {
            assert!(i == j || !a.covers(b), "set not minimised: {a} covers {b}");
        }
    }
    for d in &entries {
        assert!(set.covers(d), "the set lost {d}");
    }
    assert!(set.uncovered(&set).is_empty());
    // Minimising changes no decision: probe the names and their neighbours.
    for d in &entries {
        for h in probes(d) {
            let by_entries = entries.iter().any(|e| e.allows(&h));
            assert_eq!(
                set.allows(&h),
                by_entries,
                "{h}: the set and its entries disagree"
            );
        }
    }
    assert_eq!(
        DomainSet::parse(set.iter().map(Domain::as_str)).as_ref(),
        Ok(&set),
        "a set written back reads differently"
    );
}

fn allowlist(text: &str) {
    match Allowlist::parse(text, "fuzz.txt") {
        Ok(list) => {
            let written: Vec<&str> = list.domains().iter().map(Domain::as_str).collect();
            let again = Allowlist::parse(&written.join("\n"), "again.txt")
                .unwrap_or_else(|e| panic!("an allowlist written back is refused: {e}"));
            assert_eq!(again.domains(), list.domains());
            assert_eq!(again.digest(), list.digest());
        }
        Err(AllowlistError::BadEntries { lines, .. }) => {
            assert!(!lines.is_empty());
            let count = text.lines().count();
            for pair in lines.windows(2) {
                assert!(pair[0].line < pair[1].line, "bad lines out of order");
            }
            for bad in &lines {
                assert!(
                    bad.line >= 1 && bad.line <= count,
                    "line {} of {count}",
                    bad.line
                );
                assert!(Domain::parse(&bad.entry).is_err());
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fn authority(input: &str) {
    for default_port in [None, Some(80)] {
        if let Ok(target) = parse_authority(input, default_port) {
            let printed = target.to_string();
            assert_eq!(
                parse_authority(&printed, None).as_ref(),
                Ok(&target),
                "the authority {input:?} prints as {printed:?}, which reads back differently"
            );
        }
    }
}

/// Hosts near an entry: its address, its name, a subdomain and the parent.
fn probes(d: &Domain) -> Vec<Host> {
    let mut texts: Vec<String> = Vec::new();
    if let Some(ip) = d.ip() {
        texts.push(ip.to_string());
    }
    if let Some(name) = d.name() {
        texts.push(name.to_owned());
        texts.push(format!("a.{name}"));
        if let Some((_, parent)) = name.split_once('.') {
            texts.push(parent.to_owned());
        }
    }
    texts.iter().filter_map(|t| Host::parse(t).ok()).collect()
}

/// `covers` means what R-POL-2 needs: a node entry that covers a job entry
/// allows every host the job entry allows.
fn covers(lines: &[&str]) {
    let entries: Vec<Domain> = lines
        .iter()
        .take(16)
        .filter_map(|l| Domain::parse(l).ok())
        .collect();
    for a in &entries {
        for b in &entries {
            if a.covers(b) {
                for h in probes(b) {
                    assert!(!b.allows(&h) || a.allows(&h), "{a} covers {b} but not {h}");
                }
            }
        }
    }
}
