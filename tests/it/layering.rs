//! The dependency rules of DESIGN.md: `protocol` is pure (no I/O crate), and
//! dependencies point one way.

use std::path::Path;

/// Crates `protocol` may depend on: encodings, hashing, parsing, errors.
/// Anything that does I/O (tokio, libp2p, hyper, bollard, wasmtime, iroh,
/// reqwest, rusqlite...) belongs in `node`, `storage` or `proxy`.
const PURE: &[&str] = &[
    "serde",
    "serde_json",
    "serde_ipld_dagcbor",
    "ipld-core",
    "serde_bytes",
    "cid",
    "multihash",
    "blake3",
    "ed25519-dalek",
    "yaml-rust2",
    "idna",
    "data-url",
    "url",
    "thiserror",
    "strsim",
    "base64",
    "rand_core",
    "rand_chacha",
    // S3 input filters (linear-time regular expressions, size-bounded).
    "regex",
    // Docker image references, parsed by the distribution spec's grammar:
    // only its `distribution` types, which read strings and do no I/O.
    "oci-spec",
];

fn dependencies(manifest: &str, table: &str) -> Vec<String> {
    let mut in_table = false;
    let mut deps = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_table = line == format!("[{table}]");
            continue;
        }
        if in_table
            && !line.is_empty()
            && !line.starts_with('#')
            && let Some((name, _)) = line.split_once(['=', '.'])
        {
            deps.push(name.trim().to_string());
        }
    }
    deps
}

fn manifest(krate: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("Cargo.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn protocol_depends_on_no_io_crate() {
    let deps = dependencies(&manifest("protocol"), "dependencies");
    assert!(!deps.is_empty(), "could not read protocol's dependencies");
    let impure: Vec<&String> = deps
        .iter()
        .filter(|d| !PURE.contains(&d.as_str()))
        .collect();
    assert!(
        impure.is_empty(),
        "protocol must stay free of I/O; move these to node/storage/proxy, or add a pure \
         crate to PURE with a reason: {impure:?}"
    );
}

/// The API seam is plain types and rules too: besides what `protocol` may
/// use, `http`'s types (no client or server), constant-time comparison, and
/// libp2p's address type on its own (`multiaddr`: parsing and printing).
#[test]
fn the_api_seam_does_no_io() {
    let deps = dependencies(&manifest("api"), "dependencies");
    assert!(!deps.is_empty(), "could not read api's dependencies");
    let impure: Vec<&String> = deps
        .iter()
        .filter(|d| {
            !PURE.contains(&d.as_str())
                && !["protocol", "http", "subtle", "multiaddr"].contains(&d.as_str())
        })
        .collect();
    assert!(impure.is_empty(), "api must stay free of I/O: {impure:?}");
}

#[test]
fn our_crates_point_one_way() {
    // protocol depends on none of ours; api and proxy only on protocol;
    // simnet on protocol and api (its live testnets run the `skrei` binary
    // and talk to its HTTP API, never link the node); storage on protocol and proxy, whose view
    // of the node's own addresses URL downloads refuse too (R-SEC-3: one
    // place for that rule).
    let ours = ["protocol", "api", "storage", "proxy", "node", "simnet"];
    let of = |k: &str| -> Vec<String> {
        dependencies(&manifest(k), "dependencies")
            .into_iter()
            .filter(|d| ours.contains(&d.as_str()))
            .collect()
    };
    assert!(of("protocol").is_empty());
    assert!(
        of("api").iter().all(|d| d == "protocol"),
        "api depends on {:?}",
        of("api")
    );
    assert!(
        of("proxy").iter().all(|d| d == "protocol"),
        "proxy depends on {:?}",
        of("proxy")
    );
    // simnet's live client speaks the API's types.
    assert!(
        of("simnet").iter().all(|d| d == "protocol" || d == "api"),
        "simnet depends on {:?}",
        of("simnet")
    );
    assert!(
        of("storage")
            .iter()
            .all(|d| d == "protocol" || d == "proxy"),
        "storage depends on {:?}",
        of("storage")
    );
}
