//! Starting inputs for each target, from the repository's own examples and
//! pinned encodings: the job examples and bad jobs, the golden wire
//! messages, and hand-written domains, manifests and request heads.
//! `fuzz/run.sh` writes them into a target's corpus before fuzzing
//! (`cargo run -p fuzz-entries --example seeds`), and the replay test runs
//! them too, so the invariants are also checked on inputs that are accepted.

use std::path::{Path, PathBuf};

use protocol::id::{NodeKey, to_canonical};
use protocol::job::JobSpec;
use protocol::messages::{Announce, Gossip, Message, PROTOCOL_VERSION};
use storage::cid::{dir_cid, file_cid};
use storage::manifest::{Entry, Manifest, Mode};

/// A seed: a file name and its bytes.
pub type Seed = (String, Vec<u8>);

/// The seeds of the target `name` (none for an unknown target).
pub fn seeds(name: &str) -> Vec<Seed> {
    match name {
        "job_yaml" => job_yaml(),
        "job_json" => job_json(),
        "job_wire" => job_wire(),
        "gossip" => with_newer(
            golden_envelopes(&["announce", "node_info"])
                .into_iter()
                .chain(example_announces())
                .collect(),
        ),
        "direct" => with_newer(golden_envelopes(&[
            "bid", "refuse", "award", "decline", "result", "cancel",
        ])),
        "signed" => signed(),
        "domain" => text_seeds(DOMAINS),
        "manifest" => manifests(),
        "proxy_head" => text_seeds(HEADS),
        "api_request" => text_seeds(crate::api_request::SEEDS),
        _ => Vec::new(),
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The files of `dir` whose names end with one of `exts`, sorted.
fn files(dir: &str, exts: &[&str]) -> Vec<(String, Vec<u8>)> {
    let dir = repo().join(dir);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| exts.iter().any(|x| p.to_string_lossy().ends_with(x)))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("a readable file"))
        })
        .collect();
    out.sort();
    out
}

/// The example jobs, parsed.
fn example_specs() -> Vec<(String, JobSpec)> {
    files("examples/jobs", &[".yaml", ".json"])
        .into_iter()
        .map(|(name, bytes)| {
            let text = String::from_utf8(bytes).expect("examples are UTF-8");
            let spec = JobSpec::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, spec)
        })
        .collect()
}

fn job_yaml() -> Vec<Seed> {
    let examples = files("examples/jobs", &[".yaml"]);
    let bad = files("protocol/tests/bad-jobs", &[".yaml"]);
    examples
        .into_iter()
        .chain(bad.into_iter().map(|(n, b)| (format!("bad-{n}"), b)))
        .collect()
}

fn job_json() -> Vec<Seed> {
    let mut out = files("examples/jobs", &[".json"]);
    for (name, spec) in example_specs() {
        out.push((
            format!("{name}.pretty.json"),
            spec.to_json_pretty().into_bytes(),
        ));
        let compact = serde_json::to_vec(&spec).expect("a job serialises");
        out.push((format!("{name}.compact.json"), compact));
    }
    out
}

fn job_wire() -> Vec<Seed> {
    example_specs()
        .into_iter()
        .map(|(name, spec)| (format!("{name}.cbor"), to_canonical(&spec).unwrap()))
        .collect()
}

/// The requester's key in the golden messages; the compute node's is `[2; 32]`.
const REQUESTER_KEY: u8 = 1;
const COMPUTE_KEY: u8 = 2;

/// Every example job, announced and signed by the golden requester.
fn announcements() -> Vec<(String, Announce)> {
    let requester = NodeKey::from_secret_bytes([REQUESTER_KEY; 32]).node_id();
    example_specs()
        .into_iter()
        .map(|(name, spec)| {
            let a = Announce::new(
                spec,
                requester,
                1_700_000_000_000,
                vec!["provider-1".into()],
            )
            .expect("an example announces");
            (name, a)
        })
        .collect()
}

fn example_announces() -> Vec<Seed> {
    let key = NodeKey::from_secret_bytes([REQUESTER_KEY; 32]);
    announcements()
        .into_iter()
        .map(|(name, a)| {
            let bytes = Gossip::from(a.sign(&key).unwrap()).encode().unwrap();
            (format!("announce-{name}"), bytes)
        })
        .collect()
}

/// `(name, payload, envelope)` of every golden message.
fn golden() -> Vec<(String, Vec<u8>, Vec<u8>)> {
    files("protocol/src/messages/golden", &[".hex"])
        .into_iter()
        .map(|(name, text)| {
            let text = String::from_utf8(text).unwrap();
            let field = |key: &str| {
                let hex = text
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .unwrap_or_else(|| panic!("{name}: no {key}"));
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect::<Vec<u8>>()
            };
            let stem = name.trim_end_matches(".hex").to_owned();
            (stem, field("payload "), field("envelope "))
        })
        .collect()
}

fn golden_envelopes(kinds: &[&str]) -> Vec<Seed> {
    golden()
        .into_iter()
        .filter(|(name, ..)| kinds.iter().any(|k| name.starts_with(k)))
        .map(|(name, _, envelope)| (name, envelope))
        .collect()
}

/// `messages`, and each again as sent by a node of the next protocol
/// version, so that the fuzzers start on the path that reads newer nodes'
/// messages too.
fn with_newer(messages: Vec<Seed>) -> Vec<Seed> {
    let newer: Vec<Seed> = messages
        .iter()
        .map(|(name, bytes)| {
            // `{"m": ..., "v": <version>}`: the version is the last byte.
            let mut bytes = bytes.clone();
            let version = bytes.last_mut().expect("a message");
            assert_eq!(u32::from(*version), PROTOCOL_VERSION, "{name}");
            *version += 1;
            (format!("{name}-newer"), bytes)
        })
        .collect();
    messages.into_iter().chain(newer).collect()
}

/// The `signed` target's kind byte and key byte of a golden message.
fn kind_and_key(name: &str) -> (u8, u8) {
    const KINDS: &[(&str, u8, u8)] = &[
        ("announce", 0, REQUESTER_KEY),
        ("node_info", 1, COMPUTE_KEY),
        ("bid", 2, COMPUTE_KEY),
        ("refuse", 3, COMPUTE_KEY),
        ("award", 4, REQUESTER_KEY),
        ("decline", 5, COMPUTE_KEY),
        ("result", 6, COMPUTE_KEY),
        ("cancel", 7, REQUESTER_KEY),
        ("progress", 8, COMPUTE_KEY),
    ];
    KINDS
        .iter()
        .find(|(k, ..)| name.starts_with(k))
        .map(|&(_, kind, key)| (kind, key))
        .unwrap_or_else(|| panic!("golden message {name} of no known kind"))
}

fn signed() -> Vec<Seed> {
    let mut out: Vec<Seed> = golden()
        .into_iter()
        .map(|(name, payload, _)| {
            let (kind, key) = kind_and_key(&name);
            (name, [vec![kind, key], payload].concat())
        })
        .collect();
    for (name, a) in announcements() {
        let payload = to_canonical(&a).unwrap();
        out.push((
            format!("announce-{name}"),
            [vec![0, REQUESTER_KEY], payload].concat(),
        ));
    }
    out
}

fn text_seeds(texts: &[(&str, &str)]) -> Vec<Seed> {
    texts
        .iter()
        .map(|(name, text)| ((*name).to_owned(), text.as_bytes().to_vec()))
        .collect()
}

const DOMAINS: &[(&str, &str)] = &[
    (
        "allowlist",
        "\u{feff}# APIs we trust\n.example.com\napi.example.com # ours\n\n  1.2.3.4\t\n[2001:db8::1]\nbücher.de.\n",
    ),
    (
        "refused-forms",
        "*.example.com\nhttps://example.com/path\nuser@example.com\nexample.com:8080\n10.0.0.0/8\nfe80::1%eth0\n.1.2.3.4\nexample..com\nexample.com#x\n",
    ),
    (
        "numeric-and-idna",
        "0x7f.1\n2130706433\n127.1\n010.0.0.1\n::ffff:1.2.3.4\nEXAMPLE.COM.\nexample\u{3002}com\nxn--bcher-kva.de\nxn--zz.de\n-bad.com\nr1---sn-abc.video.test\n_dmarc.example.com\nexa\u{ad}mple.com\n",
    ),
    (
        "nested",
        ".a.test\n.b.a.test\nc.b.a.test\nb.a.test\n.test\n",
    ),
    ("one", "example.com"),
];

const HEADS: &[(&str, &str)] = &[
    (
        "get",
        "GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
    ),
    (
        "get-port-query",
        "GET http://api.allowed.test:8080/p?q=1 HTTP/1.1\r\nHost: api.allowed.test:8080\r\nUser-Agent: x\r\n\r\n",
    ),
    (
        "connect",
        "CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n",
    ),
    ("connect-v6", "CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n"),
    (
        "connect-mixed",
        "CONNECT mixed.allowed.test:443 HTTP/1.1\r\n\r\n",
    ),
    (
        "connect-range",
        "CONNECT range.allowed.test:8443 HTTP/1.1\r\n\r\n",
    ),
    (
        "connect-port",
        "CONNECT api.allowed.test:22 HTTP/1.1\r\n\r\n",
    ),
    (
        "loopback",
        "GET http://127.0.0.1/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ),
    (
        "mapped",
        "GET http://[::ffff:127.0.0.1]/ HTTP/1.1\r\nHost: [::ffff:127.0.0.1]\r\n\r\n",
    ),
    (
        "numeric",
        "GET http://2130706433/ HTTP/1.1\r\nHost: 2130706433\r\n\r\n",
    ),
    (
        "userinfo",
        "GET http://allowed.test@other.test/ HTTP/1.1\r\nHost: other.test\r\n\r\n",
    ),
    (
        "post",
        "POST http://api.allowed.test/ HTTP/1.1\r\nHost: api.allowed.test\r\nContent-Length: 5\r\n\r\nhello",
    ),
    (
        "chunked",
        "POST http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "smuggle",
        "POST http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "deny-socket",
        "GET http://1.2.3.4:8080/ HTTP/1.1\r\nHost: 1.2.3.4:8080\r\n\r\n",
    ),
    (
        "deny-host",
        "GET http://control.allowed.test/ HTTP/1.1\r\nHost: control.allowed.test\r\n\r\n",
    ),
    (
        "deny-ip",
        "GET http://denied.allowed.test/ HTTP/1.1\r\nHost: denied.allowed.test\r\n\r\n",
    ),
    (
        "origin-form",
        "GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
    ),
    (
        "https",
        "GET https://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
    ),
    (
        "trace",
        "TRACE http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
    ),
    (
        "http10",
        "GET http://private.allowed.test/ HTTP/1.0\r\n\r\n",
    ),
    (
        "host-mismatch",
        "GET http://allowed.test/ HTTP/1.1\r\nHost: other.test\r\n\r\n",
    ),
    (
        "upgrade",
        "GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    ),
    (
        "idna",
        "GET http://xn--bcher-kva.allowed.test/ HTTP/1.1\r\nHost: XN--BCHER-KVA.allowed.test.\r\n\r\n",
    ),
    (
        "pipelined",
        "GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\nGET http://loop.allowed.test/ HTTP/1.1\r\nHost: loop.allowed.test\r\n\r\n",
    ),
];

fn manifests() -> Vec<Seed> {
    let entry = |cid, size, mode| Entry { cid, size, mode };
    let mut one = Manifest::default();
    one.entries
        .insert("a".into(), entry(file_cid([1; 32]), 0, Mode::File));
    let mut mixed = Manifest::default();
    mixed
        .entries
        .insert("b.txt".into(), entry(file_cid([2; 32]), 2, Mode::File));
    mixed.entries.insert(
        "run.sh".into(),
        entry(file_cid([3; 32]), 40, Mode::Executable),
    );
    mixed
        .entries
        .insert("sub".into(), entry(dir_cid([4; 32]), 1 << 40, Mode::Dir));
    mixed
        .entries
        .insert("ünï 😀".into(), entry(file_cid([5; 32]), 7, Mode::File));
    vec![
        ("empty".to_owned(), Manifest::default().encode()),
        ("one".to_owned(), one.encode()),
        ("mixed".to_owned(), mixed.encode()),
    ]
}
