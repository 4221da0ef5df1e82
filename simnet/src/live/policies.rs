//! The acceptance policy of each node of a live testnet, from a TOML file
//! (`simnet up --policies FILE`).
//!
//! ```toml
//! # A share of the nodes, counted from the last node down, so node 0 (the
//! # bootstrap node) keeps the default unless it is named. Shares are taken
//! # in file order; each is rounded to whole nodes.
//! [[share]]
//! share = 0.4
//! accept-network = "http"
//! allowlist = [".example.com", "api.example.org"]
//!
//! # One node by index; wins over the shares.
//! [[node]]
//! index = 1
//! accept-network = "full"
//!
//! # A node that submits jobs but runs none (`--capacity 0`), and one that
//! # offers only Docker (`--engines docker`). Both keys fit [[share]] too.
//! [[node]]
//! index = 0
//! capacity = 0
//! [[node]]
//! index = 2
//! engines = ["docker"]
//! ```
//!
//! Every key but `index` and `share` is optional: left out, the node keeps
//! its own default (`--accept-network none`, engines `wasm`, capacity 4).
//! An allowlist becomes a file passed with `--allowlist`; its entries are
//! checked here with the node's own parser, so a bad domain is refused
//! before any node starts.

use protocol::job::NetworkMode;
use protocol::policy::{Allowlist, parse_accept_network};
use serde::Deserialize;

/// What one node accepts: `--accept-network`, `--allowlist`, `--engines`
/// and `--capacity`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePolicy {
    pub accept_network: NetworkMode,
    /// The allowlist's entries, one per line of the file the node reads;
    /// `None` runs the node without `--allowlist`.
    pub allowlist: Option<Vec<String>>,
    /// `None`: the node's default (wasm).
    pub engines: Option<Vec<String>>,
    /// Executions at once; `None`: the node's default.
    pub capacity: Option<u32>,
}

impl NodePolicy {
    /// `none`, `http [.example.com, api.example.org]`, `full, engines docker, capacity 0`.
    pub fn describe(&self) -> String {
        let mut s = self.accept_network.to_string();
        if let Some(list) = &self.allowlist {
            s.push_str(&format!(" [{}]", list.join(", ")));
        }
        if let Some(engines) = &self.engines {
            s.push_str(&format!(", engines {}", engines.join(",")));
        }
        if let Some(capacity) = self.capacity {
            s.push_str(&format!(", capacity {capacity}"));
        }
        s
    }
}

/// Why a policies file was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum PoliciesError {
    #[error("{0}")]
    Toml(String),
    #[error("{what}: accept-network `{mode}`: {reason}")]
    Mode {
        what: String,
        mode: String,
        reason: String,
    },
    #[error(
        "{what}: an allowlist limits `http` jobs, which accept-network none refuses: add \
         accept-network = \"http\""
    )]
    AllowlistWithoutHttp { what: String },
    #[error("{what}: the allowlist is not valid:\n{reason}")]
    Allowlist { what: String, reason: String },
    #[error("{what}: engine `{engine}`: the engines are wasm and docker")]
    Engine { what: String, engine: String },
    #[error("[[node]] index {index}: the network has nodes 0 to {last}")]
    NoSuchNode { index: usize, last: usize },
    #[error("[[share]] share = {share}: give a share from 0 to 1")]
    BadShare { share: f64 },
    #[error("the shares add up to {total}, more than 1")]
    SharesOverOne { total: f64 },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    share: Vec<ShareEntry>,
    #[serde(default)]
    node: Vec<NodeEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ShareEntry {
    share: f64,
    accept_network: Option<String>,
    allowlist: Option<Vec<String>>,
    engines: Option<Vec<String>>,
    capacity: Option<u32>,
}

// The same keys as `ShareEntry`'s, spelled out rather than flattened: serde
// loses unknown-key errors and line numbers through `flatten`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct NodeEntry {
    index: usize,
    accept_network: Option<String>,
    allowlist: Option<Vec<String>>,
    engines: Option<Vec<String>>,
    capacity: Option<u32>,
}

/// A node's settings as an entry gives them.
struct PolicyEntry {
    accept_network: Option<String>,
    allowlist: Option<Vec<String>>,
    engines: Option<Vec<String>>,
    capacity: Option<u32>,
}

fn policy(what: &str, entry: PolicyEntry) -> Result<NodePolicy, PoliciesError> {
    let PolicyEntry {
        accept_network,
        allowlist,
        engines,
        capacity,
    } = entry;
    let mode = accept_network.as_deref().unwrap_or("none");
    let accept_network = parse_accept_network(mode).map_err(|e| PoliciesError::Mode {
        what: what.to_owned(),
        mode: mode.to_owned(),
        reason: e.to_string(),
    })?;
    for engine in engines.iter().flatten() {
        if !matches!(engine.as_str(), "wasm" | "docker") {
            return Err(PoliciesError::Engine {
                what: what.to_owned(),
                engine: engine.clone(),
            });
        }
    }
    if let Some(list) = &allowlist {
        if accept_network == NetworkMode::None {
            return Err(PoliciesError::AllowlistWithoutHttp {
                what: what.to_owned(),
            });
        }
        Allowlist::parse(&list.join("\n"), "allowlist").map_err(|e| PoliciesError::Allowlist {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
    }
    Ok(NodePolicy {
        accept_network,
        allowlist,
        engines,
        capacity,
    })
}

/// Each of `nodes` nodes' policy, from a policies file's text.
///
/// ```
/// use simnet::live::policies::parse;
///
/// let text = "[[share]]\nshare = 0.4\naccept-network = \"http\"\nallowlist = [\".example.com\"]\n\
///             [[node]]\nindex = 0\naccept-network = \"full\"\n";
/// let p = parse(text, 5).unwrap();
/// let modes: Vec<String> = p.iter().map(|p| p.accept_network.to_string()).collect();
/// assert_eq!(modes, ["full", "none", "none", "http", "http"]);
/// assert!(parse("[[node]]\nindex = 5\naccept-network = \"http\"\n", 5).is_err());
/// ```
pub fn parse(text: &str, nodes: usize) -> Result<Vec<NodePolicy>, PoliciesError> {
    let file: File = toml::from_str(text).map_err(|e| PoliciesError::Toml(e.to_string()))?;
    let mut out = vec![NodePolicy::default(); nodes];
    let mut total = 0.0;
    let mut next = nodes; // shares fill from the last node down
    for (i, entry) in file.share.into_iter().enumerate() {
        if !(0.0..=1.0).contains(&entry.share) {
            return Err(PoliciesError::BadShare { share: entry.share });
        }
        total += entry.share;
        if total > 1.0 + 1e-9 {
            return Err(PoliciesError::SharesOverOne { total });
        }
        let entry_policy = PolicyEntry {
            accept_network: entry.accept_network,
            allowlist: entry.allowlist,
            engines: entry.engines,
            capacity: entry.capacity,
        };
        let p = policy(&format!("[[share]] #{}", i + 1), entry_policy)?;
        let count = ((entry.share * nodes as f64).round() as usize).min(next);
        for slot in &mut out[next - count..next] {
            *slot = p.clone();
        }
        next -= count;
    }
    for entry in file.node {
        if entry.index >= nodes {
            return Err(PoliciesError::NoSuchNode {
                index: entry.index,
                last: nodes.saturating_sub(1),
            });
        }
        let entry_policy = PolicyEntry {
            accept_network: entry.accept_network,
            allowlist: entry.allowlist,
            engines: entry.engines,
            capacity: entry.capacity,
        };
        out[entry.index] = policy(&format!("[[node]] index {}", entry.index), entry_policy)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_file_entries_means_every_node_refuses_network() {
        let p = parse("", 3).unwrap();
        assert_eq!(p, vec![NodePolicy::default(); 3]);
    }

    #[test]
    fn shares_fill_from_the_last_node_in_file_order() {
        let text = "[[share]]\nshare = 0.25\naccept-network = \"full\"\n\
                    [[share]]\nshare = 0.5\naccept-network = \"http\"\n";
        let p = parse(text, 8).unwrap();
        let modes: Vec<String> = p.iter().map(|p| p.accept_network.to_string()).collect();
        assert_eq!(
            modes,
            [
                "none", "none", "http", "http", "http", "http", "full", "full"
            ]
        );
    }

    #[test]
    fn engines_and_capacity_are_optional_per_node() {
        let text = "[[node]]\nindex = 0\ncapacity = 0\n\
                    [[node]]\nindex = 1\nengines = [\"docker\"]\n";
        let p = parse(text, 3).unwrap();
        assert_eq!(p[0].capacity, Some(0));
        assert_eq!(p[0].accept_network, NetworkMode::None);
        assert_eq!(p[1].engines, Some(vec!["docker".to_owned()]));
        assert_eq!(p[2], NodePolicy::default());
        assert_eq!(p[1].describe(), "none, engines docker");
    }

    #[test]
    fn the_example_file_is_valid() {
        let p = parse(include_str!("../../scenarios/live-policies.toml"), 5).unwrap();
        let described: Vec<String> = p.iter().map(NodePolicy::describe).collect();
        assert_eq!(
            described,
            [
                "none, capacity 0",
                "full",
                "none",
                "http [.example.com, api.example.org]",
                "http [.example.com, api.example.org]",
            ]
        );
    }

    #[test]
    fn bad_files_are_refused_with_what_is_wrong() {
        let cases = [
            ("[[node]]\nindex = 0\naccept-network = \"ftp\"\n", "ftp"),
            (
                "[[node]]\nindex = 0\naccept-network = \"none\"\nallowlist = [\"a.org\"]\n",
                "accept-network none refuses",
            ),
            (
                "[[node]]\nindex = 0\naccept-network = \"http\"\nallowlist = [\"http://a.org/x\"]\n",
                "not valid",
            ),
            ("[[node]]\nindex = 3\naccept-network = \"http\"\n", "0 to 2"),
            (
                "[[share]]\nshare = 1.5\naccept-network = \"http\"\n",
                "0 to 1",
            ),
            (
                "[[share]]\nshare = 0.6\naccept-network = \"http\"\n\
                 [[share]]\nshare = 0.6\naccept-network = \"full\"\n",
                "more than 1",
            ),
            ("[[nodes]]\nindex = 0\n", "nodes"),
            ("[[node]]\nindex = 0\nengines = [\"qemu\"]\n", "qemu"),
            ("[[node]]\nindex = 0\ncapacity = -1\n", "capacity"),
            (
                "[[node]]\nindex = 0\nacept-network = \"http\"\n",
                "acept-network",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text, 3).expect_err(text).to_string();
            assert!(e.contains(want), "{text:?}: {e:?} should say {want:?}");
        }
    }
}
