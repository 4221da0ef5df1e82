//! What each fuzz target does with its bytes, in one place.
//!
//! Every function here takes one input and feeds it to a production entry
//! point the way the node does with bytes from outside, then checks the
//! invariants the code claims (round trips, normal forms, "never connects
//! to a refused address"): a panic is a finding. Two callers share them:
//! - the cargo-fuzz targets in `fuzz/fuzz_targets/` (nightly, libFuzzer), one
//!   line each;
//! - the replay test `tests/it/fuzz_corpora.rs` (stable, in `cargo test`),
//!   which runs every committed input of `fuzz/corpus/<target>/` and
//!   `fuzz/regressions/<target>/` and the [`seeds`] through the same
//!   functions. CI runs no fuzzer; it replays what the fuzzer found.
//!
//! [`TARGETS`] lists them; `fuzz/README.md` says how to run the fuzzer,
//! what each run measured, and how to add a target.

pub mod api_request;
pub mod domain;
pub mod job;
pub mod manifest;
pub mod proxy_head;
pub mod seeds;
pub mod wire;

/// One fuzz target: `fuzz/fuzz_targets/<name>.rs` calls `run`, its corpus is
/// `fuzz/corpus/<name>/`, its crash inputs `fuzz/regressions/<name>/`.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The target's name.
    pub name: &'static str,
    /// What the target does with one input; panics on a finding.
    pub run: fn(&[u8]),
}

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    Target {
        name: "job_yaml",
        run: job::job_text,
    },
    Target {
        name: "job_json",
        run: job::job_text,
    },
    Target {
        name: "job_wire",
        run: job::job_wire,
    },
    Target {
        name: "gossip",
        run: wire::gossip,
    },
    Target {
        name: "direct",
        run: wire::direct,
    },
    Target {
        name: "signed",
        run: wire::signed,
    },
    Target {
        name: "domain",
        run: domain::domain,
    },
    Target {
        name: "manifest",
        run: manifest::manifest,
    },
    Target {
        name: "proxy_head",
        run: proxy_head::proxy_head,
    },
    Target {
        name: "api_request",
        run: api_request::api_request,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Runs the target `name` on `data`: what each cargo-fuzz target does.
///
/// # Panics
/// On a finding, and when no target is called `name`.
pub fn run(name: &str, data: &[u8]) {
    let target = target(name).unwrap_or_else(|| panic!("no fuzz target called {name}"));
    (target.run)(data);
}
