//! The acceptance policy (R-POL-1, R-POL-2).

use super::*;
use crate::job::NetworkMode::{Full, Http, None as NoNet};

fn set(entries: &[&str]) -> DomainSet {
    DomainSet::parse(entries).unwrap()
}

fn allowlist(text: &str) -> Allowlist {
    Allowlist::parse(text, "allow.txt").unwrap()
}

// R-POL-1: `--accept-network` values, in any case; anything else names the valid ones.
#[test]
fn r_pol_1_parse_accept_network() {
    for (input, want) in [
        ("none", NoNet),
        ("http", Http),
        ("full", Full),
        ("HTTP", Http),
        ("Full", Full),
    ] {
        assert_eq!(parse_accept_network(input), Ok(want), "{input}");
    }
    for input in ["", "https", " http", "all", "tcp"] {
        let e = parse_accept_network(input).unwrap_err();
        assert!(
            e.to_string().contains("write `none`, `http` or `full`"),
            "{e}"
        );
    }
}

// R-POL-1: the matrix of accepted mode x job mode, without an allowlist.
#[test]
fn r_pol_1_matrix() {
    let domains = set(&["api.example.com"]);
    let rows = [
        (NoNet, NoNet, true),
        (NoNet, Http, false),
        (NoNet, Full, false),
        (Http, NoNet, true),
        (Http, Http, true),
        (Http, Full, false),
        (Full, NoNet, true),
        (Full, Http, true),
        (Full, Full, true),
    ];
    for (accept, job, bid) in rows {
        let policy = AcceptancePolicy::new(accept, None);
        let decision = policy.decide(job, &domains);
        if bid {
            assert_eq!(decision, Decision::Bid, "accept={accept} job={job}");
        } else {
            assert_eq!(
                decision,
                Decision::Refuse(RefuseReason::NetworkNotAccepted {
                    requested: job,
                    accepted: accept
                }),
                "accept={accept} job={job}"
            );
        }
    }
    assert_eq!(AcceptancePolicy::default().accept(), NoNet);
}

// R-POL-1: the refusal says what was asked and what the node takes.
#[test]
fn r_pol_1_refusal_text() {
    let policy = AcceptancePolicy::new(NoNet, None);
    let Decision::Refuse(reason) = policy.decide(Http, &DomainSet::default()) else {
        panic!("a none-only node must refuse http");
    };
    assert_eq!(
        reason.to_string(),
        "network=http not accepted (this node accepts none)"
    );
    let policy = AcceptancePolicy::new(Http, None);
    let Decision::Refuse(reason) = policy.decide(Full, &DomainSet::default()) else {
        panic!("an http node must refuse full");
    };
    assert_eq!(
        reason.to_string(),
        "network=full not accepted (this node accepts none and http)"
    );
}

// R-POL-2: the coverage examples of SPEC.md, through the policy.
#[test]
fn r_pol_2_spec_examples() {
    let dot = AcceptancePolicy::new(Http, Some(allowlist(".example.com\n")));
    for job in [
        "api.example.com",
        ".api.example.com",
        "example.com",
        ".example.com",
    ] {
        assert_eq!(dot.decide(Http, &set(&[job])), Decision::Bid, "{job}");
    }
    let exact = AcceptancePolicy::new(Http, Some(allowlist("example.com\n")));
    assert_eq!(exact.decide(Http, &set(&["example.com"])), Decision::Bid);
    for job in ["api.example.com", ".example.com", ".api.example.com"] {
        assert!(!exact.decide(Http, &set(&[job])).is_bid(), "{job}");
    }
    // Label boundaries: `.example.com` does not cover `badexample.com`.
    assert!(!dot.decide(Http, &set(&["badexample.com"])).is_bid());
}

// R-POL-2: every job domain must be covered; the refusal lists the ones that are not.
#[test]
fn r_pol_2_every_domain_must_be_covered() {
    let policy = AcceptancePolicy::new(Full, Some(allowlist(".example.com\nfoo.org\n")));
    let job = set(&["api.example.com", "foo.org", "b.com", "a.com"]);
    assert_eq!(
        policy.decide(Http, &job),
        Decision::Refuse(RefuseReason::DomainsNotAllowed {
            domains: vec![
                Domain::parse("a.com").unwrap(),
                Domain::parse("b.com").unwrap()
            ],
        })
    );
    let Decision::Refuse(reason) = policy.decide(Http, &set(&["api.foo.com"])) else {
        panic!("api.foo.com is not covered by foo.org");
    };
    assert_eq!(reason.to_string(), "api.foo.com not in allowlist");
    let Decision::Refuse(reason) = policy.decide(Http, &job) else {
        panic!()
    };
    assert_eq!(reason.to_string(), "a.com, b.com not in allowlist");
}

// R-POL-2: without `--allowlist`, http takes any domains; the allowlist never applies to full.
#[test]
fn r_pol_2_no_allowlist_and_full_jobs() {
    let any = set(&["anything.example", "1.2.3.4"]);
    assert_eq!(
        AcceptancePolicy::new(Http, None).decide(Http, &any),
        Decision::Bid
    );
    let listed = AcceptancePolicy::new(Full, Some(allowlist("example.com")));
    assert_eq!(listed.decide(Full, &any), Decision::Bid);
    assert_eq!(listed.decide(NoNet, &any), Decision::Bid);
    assert!(!listed.decide(Http, &any).is_bid());
}

// R-POL-2: an empty allowlist is valid and accepts no http job at all.
#[test]
fn r_pol_2_empty_allowlist_refuses_http() {
    for text in ["", "\n\n", "# nothing yet\n   \n  # still nothing\n"] {
        let list = allowlist(text);
        assert!(list.is_empty());
        let policy = AcceptancePolicy::new(Http, Some(list));
        for job in [set(&[]), set(&["example.com"])] {
            assert_eq!(
                policy.decide(Http, &job),
                Decision::Refuse(RefuseReason::EmptyAllowlist)
            );
        }
        assert_eq!(policy.decide(NoNet, &set(&[])), Decision::Bid);
    }
    assert_eq!(
        RefuseReason::EmptyAllowlist.to_string(),
        "network=http not accepted (this node's allowlist is empty)"
    );
}

// R-POL-2: comments, blank lines and surrounding whitespace in the file.
#[test]
fn r_pol_2_allowlist_syntax() {
    let text = "\u{feff}# APIs our jobs may call\n\
                \n\
                .example.com   # and every subdomain\n\
                \t api.example.com\r\n\
                Bücher.de.\n\
                #example.org\n\
                1.2.3.4 #trailing comment without a space after the hash\n";
    let list = allowlist(text);
    let entries: Vec<&str> = list.domains().iter().map(Domain::as_str).collect();
    assert_eq!(entries, [".example.com", "1.2.3.4", "xn--bcher-kva.de"]);
    assert_eq!(list.origin(), "allow.txt");
}

// R-POL-2: every bad line is reported, with origin, 1-based line number and a fix.
#[test]
fn r_pol_2_allowlist_reports_every_bad_line() {
    let text = "# header\n\
                good.com\n\
                *.foo.com\n\
                \n\
                example.com:8080   # the API\n\
                ok.org\n\
                https://x.org/y\n\
                two words.com\n\
                x.org#frag\n";
    let err = Allowlist::parse(text, "allow.txt").unwrap_err();
    let AllowlistError::BadEntries { origin, lines } = &err;
    assert_eq!(origin, "allow.txt");
    let found: Vec<(usize, &str)> = lines.iter().map(|l| (l.line, l.entry.as_str())).collect();
    assert_eq!(
        found,
        [
            (3, "*.foo.com"),
            (5, "example.com:8080"),
            (7, "https://x.org/y"),
            (8, "two words.com"),
            (9, "x.org#frag"),
        ]
    );
    let msg = err.to_string();
    let rendered: Vec<&str> = msg.lines().collect();
    assert_eq!(rendered.len(), 5, "{msg}");
    assert!(
        rendered[0].starts_with("allow.txt:3: `*.foo.com`:")
            && rendered[0].contains("write `.foo.com` to cover foo.com"),
        "{msg}"
    );
    assert!(
        rendered[1].starts_with("allow.txt:5: ") && rendered[1].contains("write `example.com`")
    );
    assert!(rendered[2].starts_with("allow.txt:7: ") && rendered[2].contains("`x.org`"));
    assert!(rendered[4].starts_with("allow.txt:9: ") && rendered[4].contains("`x.org`"));
}

// R-POL-2: the digest names the normalised set: stable, order- and noise-independent.
#[test]
fn r_pol_2_allowlist_digest() {
    let a = allowlist(".example.com\napi.example.com\nb.org\n");
    let b = Allowlist::parse(
        "# same set\nB.ORG.\n\n.Example.com # all of it\n",
        "other.txt",
    )
    .unwrap();
    assert_eq!(
        a.digest(),
        b.digest(),
        "order, case, comments and origin do not matter"
    );
    assert_eq!(a.digest(), *blake3::hash(b".example.com\nb.org").as_bytes());
    assert_eq!(
        a.digest_hex(),
        blake3::hash(b".example.com\nb.org").to_hex().as_str()
    );
    // Pinned, so a change of encoding is a deliberate one.
    assert_eq!(
        allowlist("").digest_hex(),
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    );
    assert_ne!(a.digest(), allowlist(".example.com\n").digest());
}

// R-POL-3: refusal reasons travel between nodes; unknown future reasons still decode.
#[test]
fn r_pol_3_refuse_reason_encoding() {
    let reasons = [
        RefuseReason::NetworkNotAccepted {
            requested: Http,
            accepted: NoNet,
        },
        RefuseReason::DomainsNotAllowed {
            domains: vec![Domain::parse("api.foo.com").unwrap()],
        },
        RefuseReason::EmptyAllowlist,
        RefuseReason::EngineUnavailable {
            engine: "wasm".into(),
        },
        RefuseReason::NoCapacity {
            running: 4,
            capacity: 4,
        },
        RefuseReason::PublishDirNotAllowed {
            path: "/srv/out".into(),
        },
        RefuseReason::Unknown,
    ];
    let golden = [
        r#"{"kind":"network_not_accepted","requested":"HTTP","accepted":"None"}"#,
        r#"{"kind":"domains_not_allowed","domains":["api.foo.com"]}"#,
        r#"{"kind":"empty_allowlist"}"#,
        r#"{"kind":"engine_unavailable","engine":"wasm"}"#,
        r#"{"kind":"no_capacity","running":4,"capacity":4}"#,
        r#"{"kind":"publish_dir_not_allowed","path":"/srv/out"}"#,
        r#"{"kind":"unknown"}"#,
    ];
    for (reason, json) in reasons.iter().zip(golden) {
        assert_eq!(serde_json::to_string(reason).unwrap(), json);
        assert_eq!(&serde_json::from_str::<RefuseReason>(json).unwrap(), reason);
        let cbor = serde_ipld_dagcbor::to_vec(reason).unwrap();
        assert_eq!(
            &serde_ipld_dagcbor::from_slice::<RefuseReason>(&cbor).unwrap(),
            reason
        );
    }
    let future: RefuseReason = serde_json::from_str(r#"{"kind":"no_gpu","needed":2}"#).unwrap();
    assert_eq!(future, RefuseReason::Unknown);
    // Domains in a refusal are parsed like any input from outside.
    assert!(
        serde_json::from_str::<RefuseReason>(r#"{"kind":"domains_not_allowed","domains":["*.x"]}"#)
            .is_err()
    );
}

// R-POL-3: engine and capacity refusals say what is missing.
#[test]
fn r_pol_3_engine_and_capacity_texts() {
    assert_eq!(
        RefuseReason::EngineUnavailable {
            engine: "wasm".into()
        }
        .to_string(),
        "engine=wasm not available"
    );
    assert_eq!(
        RefuseReason::NoCapacity {
            running: 2,
            capacity: 2
        }
        .to_string(),
        "no free slot (2 of 2 taken)"
    );
}

// R-POL-3: a long list of domains is cut in the text, not in the data.
#[test]
fn r_pol_3_long_domain_lists_are_summarised() {
    let domains: Vec<Domain> = (0..8)
        .map(|i| Domain::parse(&format!("d{i}.com")).unwrap())
        .collect();
    let reason = RefuseReason::DomainsNotAllowed { domains };
    assert_eq!(
        reason.to_string(),
        "d0.com, d1.com, d2.com, d3.com, d4.com and 3 more not in allowlist"
    );
}

// R-POL-3: the DAG-CBOR encoding of a refusal is pinned (canonical key order).
#[test]
fn r_pol_3_refuse_reason_golden_cbor() {
    let reason = RefuseReason::NetworkNotAccepted {
        requested: Full,
        accepted: Http,
    };
    let bytes = serde_ipld_dagcbor::to_vec(&reason).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    // {"kind": "network_not_accepted", "accepted": "HTTP", "requested": "Full"}
    assert_eq!(
        hex,
        "a3646b696e64746e6574776f726b5f6e6f745f61636365707465646861636365707465646448545450697265717565737465646446756c6c"
    );
    assert_eq!(
        serde_ipld_dagcbor::from_slice::<RefuseReason>(&bytes).unwrap(),
        reason
    );
}

proptest::proptest! {
    // R-P2P-3: decoding junk into a refusal never panics.
    #[test]
    fn r_pol_3_refuse_reason_junk_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
        let _ = serde_ipld_dagcbor::from_slice::<RefuseReason>(&bytes);
        let _ = serde_json::from_slice::<RefuseReason>(&bytes);
    }

    // R-POL-2: allowlist text of any shape gives a list or errors, never a panic,
    // and every reported line number points at that entry.
    #[test]
    fn r_pol_2_allowlist_junk_never_panics(text in "([a-z.*:/# \t]{0,12}\n){0,6}") {
        if let Err(AllowlistError::BadEntries { lines, .. }) = Allowlist::parse(&text, "f") {
            let all: Vec<&str> = text.lines().collect();
            for bad in lines {
                proptest::prop_assert!(all[bad.line - 1].contains(&bad.entry));
            }
        }
    }
}
