//! A compute node's acceptance policy (R-POL-1, R-POL-2).
//!
//! A node's operator decides which network modes it runs
//! (`--accept-network`) and, for `http` jobs, which domains (`--allowlist`).
//! [`AcceptancePolicy::decide`] turns a job's network mode and domains into a
//! bid or a refusal whose [`RefuseReason`] travels back to the requester, so
//! a job nobody takes can be explained (R-POL-3).
//!
//! The rules:
//! - `none` jobs are always acceptable as far as the network goes.
//! - `http` jobs need `--accept-network=http` or `full`. With an allowlist,
//!   every domain of the job must be covered by it ([`DomainSet::uncovered`]);
//!   without one, any domains are taken.
//! - `full` jobs need `--accept-network=full`. The allowlist does not apply:
//!   `full` networking is unfiltered, so no domain list could describe what
//!   the job reaches, and an operator who accepts `full` has accepted that.
//!
//! ```
//! use protocol::domain::DomainSet;
//! use protocol::job::NetworkMode;
//! use protocol::policy::{AcceptancePolicy, Allowlist, Decision, parse_accept_network};
//!
//! let allowlist = Allowlist::parse("# APIs we trust\n.example.com\n", "allow.txt").unwrap();
//! let policy = AcceptancePolicy::new(parse_accept_network("http").unwrap(), Some(allowlist));
//!
//! let job = DomainSet::parse(["api.example.com"]).unwrap();
//! assert_eq!(policy.decide(NetworkMode::Http, &job), Decision::Bid);
//!
//! let job = DomainSet::parse(["api.foo.com"]).unwrap();
//! let Decision::Refuse(reason) = policy.decide(NetworkMode::Http, &job) else { panic!() };
//! assert_eq!(reason.to_string(), "api.foo.com not in allowlist");
//! ```

use std::fmt;

use crate::domain::{Domain, DomainError, DomainSet};
use crate::job::NetworkMode;
use crate::resources::{Misfit, ResourceKind};

/// Why a policy setting could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// `--accept-network` got something other than `none`, `http` or `full`.
    #[error("`{input}` is not a network mode: write `none`, `http` or `full`")]
    UnknownNetworkMode {
        /// The value as given.
        input: String,
    },
}

/// Read an `--accept-network` value: `none`, `http` or `full`, in any case.
pub fn parse_accept_network(s: &str) -> Result<NetworkMode, PolicyError> {
    [NetworkMode::None, NetworkMode::Http, NetworkMode::Full]
        .into_iter()
        .find(|mode| mode.as_flag().eq_ignore_ascii_case(s))
        .ok_or_else(|| PolicyError::UnknownNetworkMode {
            input: s.escape_debug().to_string(),
        })
}

/// A node's domain allowlist (R-POL-2): the entries of an `--allowlist`
/// file, normalised and minimised, and where they came from.
///
/// An empty allowlist (a file with no entries, only comments or nothing)
/// is valid and means that **no `http` job is accepted**: the operator has
/// named no domain a job may reach. To accept `http` jobs with any domains,
/// run without `--allowlist`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist {
    domains: DomainSet,
    origin: String,
}

/// One bad line of an allowlist file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowlistLine {
    /// Line number, counting from 1 as editors do.
    pub line: usize,
    /// The entry as written, without surrounding whitespace and comment.
    pub entry: String,
    /// Why it was rejected; its message says what to write instead.
    pub error: DomainError,
}

/// Why an allowlist could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AllowlistError {
    /// Some lines are not valid entries; all of them are listed, each as
    /// `ORIGIN:LINE: message`, so one edit can fix them all.
    #[error("{}", render_bad_lines(.origin, .lines))]
    BadEntries {
        /// Where the text came from, e.g. the file's path.
        origin: String,
        /// Every bad line, in file order.
        lines: Vec<AllowlistLine>,
    },
}

fn render_bad_lines(origin: &str, lines: &[AllowlistLine]) -> String {
    let rendered: Vec<String> = lines
        .iter()
        .map(|l| format!("{origin}:{}: {}", l.line, l.error))
        .collect();
    rendered.join("\n")
}

impl Allowlist {
    /// Parse an allowlist file's text (R-POL-2): one entry per line, in the
    /// syntax of [`Domain::parse`].
    ///
    /// The file is edited by people, so it is read leniently where that is
    /// unambiguous: blank lines are skipped, whitespace around an entry is
    /// trimmed, `#` starts a comment at the start of a line or after
    /// whitespace (`example.com # our API`), and a leading byte-order mark is
    /// ignored. `example.com#x`, with no space, is an entry with a fragment
    /// and is rejected. Every bad line is reported, not just the first.
    ///
    /// `origin` names the text in messages (`allow.txt:3: ...`).
    pub fn parse(text: &str, origin: &str) -> Result<Allowlist, AllowlistError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut domains = Vec::new();
        let mut bad = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let entry = strip_comment(raw).trim();
            if entry.is_empty() {
                continue;
            }
            match Domain::parse(entry) {
                Ok(d) => domains.push(d),
                Err(error) => bad.push(AllowlistLine {
                    line: index + 1,
                    entry: entry.to_owned(),
                    error,
                }),
            }
        }
        if !bad.is_empty() {
            return Err(AllowlistError::BadEntries {
                origin: origin.to_owned(),
                lines: bad,
            });
        }
        Ok(Allowlist::new(DomainSet::from_domains(domains), origin))
    }

    /// An allowlist from entries already parsed (a config file's list, a
    /// test).
    pub fn new(domains: DomainSet, origin: impl Into<String>) -> Allowlist {
        Allowlist {
            domains,
            origin: origin.into(),
        }
    }

    /// The entries, minimised and sorted.
    pub fn domains(&self) -> &DomainSet {
        &self.domains
    }

    /// Where the entries came from, e.g. the file's path.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether the allowlist has no entry, and so accepts no `http` job.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// BLAKE3 of the normalised entries in set order, joined by `\n` (no
    /// trailing newline). Nodes advertise it so a requester can tell which
    /// allowlist a node runs; comments, blank lines, order, case and
    /// redundant entries do not change it. The origin is not part of it.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        for (i, d) in self.domains.iter().enumerate() {
            if i > 0 {
                hasher.update(b"\n");
            }
            hasher.update(d.as_str().as_bytes());
        }
        *hasher.finalize().as_bytes()
    }

    /// [`Allowlist::digest`] as 64 lower-case hex digits.
    pub fn digest_hex(&self) -> String {
        blake3::Hash::from_bytes(self.digest()).to_hex().to_string()
    }
}

/// The line without its comment: `#` at the start or after whitespace.
fn strip_comment(line: &str) -> &str {
    let mut prev_is_space = true;
    for (i, c) in line.char_indices() {
        if c == '#' && prev_is_space {
            return &line[..i];
        }
        prev_is_space = c.is_whitespace();
    }
    line
}

/// What a compute node accepts, as far as networking goes (R-POL-1, R-POL-2).
///
/// The default accepts only `none` jobs, as a node started without
/// `--accept-network` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptancePolicy {
    accept: NetworkMode,
    allowlist: Option<Allowlist>,
}

/// The outcome of [`AcceptancePolicy::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The policy allows the job: bid (if engine and capacity allow too).
    Bid,
    /// The policy forbids the job, for this reason.
    Refuse(RefuseReason),
}

impl Decision {
    /// Whether the decision is [`Decision::Bid`].
    pub fn is_bid(&self) -> bool {
        matches!(self, Decision::Bid)
    }
}

impl AcceptancePolicy {
    /// A policy accepting network modes up to `accept` (`full` includes
    /// `http`), with `allowlist` limiting the domains of `http` jobs (`None`:
    /// any domains).
    pub fn new(accept: NetworkMode, allowlist: Option<Allowlist>) -> AcceptancePolicy {
        AcceptancePolicy { accept, allowlist }
    }

    /// The highest network mode accepted.
    pub fn accept(&self) -> NetworkMode {
        self.accept
    }

    /// The allowlist for `http` jobs, if the node has one.
    pub fn allowlist(&self) -> Option<&Allowlist> {
        self.allowlist.as_ref()
    }

    /// Whether a job with network `mode` and `domains` may run here.
    pub fn decide(&self, mode: NetworkMode, domains: &DomainSet) -> Decision {
        if mode > self.accept {
            return Decision::Refuse(RefuseReason::NetworkNotAccepted {
                requested: mode,
                accepted: self.accept,
            });
        }
        match (mode, &self.allowlist) {
            (NetworkMode::Http, Some(allowlist)) if allowlist.is_empty() => {
                Decision::Refuse(RefuseReason::EmptyAllowlist)
            }
            (NetworkMode::Http, Some(allowlist)) => {
                let uncovered = allowlist.domains().uncovered(domains);
                if uncovered.is_empty() {
                    Decision::Bid
                } else {
                    Decision::Refuse(RefuseReason::DomainsNotAllowed {
                        domains: uncovered.into_iter().cloned().collect(),
                    })
                }
            }
            // `none` needs nothing; `http` without an allowlist takes any
            // domains; `full` is unfiltered, so an allowlist says nothing
            // about it.
            _ => Decision::Bid,
        }
    }
}

/// Why a node refused a job. It travels in refusal messages and is shown to
/// the user, grouped by its text (`2 nodes: network=http not accepted`).
///
/// Encoded as a map with a `kind` tag. A reason added by a newer version
/// decodes as [`RefuseReason::Unknown`] instead of failing, so nodes of
/// different versions still explain refusals to each other.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RefuseReason {
    /// The job's network mode is above what the node accepts (R-POL-1).
    NetworkNotAccepted {
        /// The job's mode.
        requested: NetworkMode,
        /// The highest mode the node accepts.
        accepted: NetworkMode,
    },
    /// The job names domains the node's allowlist does not cover (R-POL-2).
    DomainsNotAllowed {
        /// The job's entries that no allowlist entry covers, in set order.
        domains: Vec<Domain>,
    },
    /// The node has an empty allowlist, so it takes no `http` job (R-POL-2).
    EmptyAllowlist,
    /// The node does not run the job's engine (R-POL-3).
    EngineUnavailable {
        /// The engine the job needs (`docker`, `wasm`).
        engine: String,
    },
    /// Every slot of the node is taken by running jobs and open bids
    /// (R-POL-3).
    NoCapacity {
        /// Jobs running and bids open on the node.
        running: u32,
        /// How many it takes at once.
        capacity: u32,
    },
    /// The job's Docker image is not on the node, and the node pulls from
    /// no registry (R-POL-3).
    ImageMissing {
        /// The image the job names.
        image: String,
    },
    /// The job's Docker image is not on the node, and its registry is not
    /// one the node pulls from (`--pull-from`; R-POL-3).
    RegistryNotAllowed {
        /// The image the job names.
        image: String,
        /// Its registry (`docker.io`, `ghcr.io`, `host:port`).
        registry: String,
    },
    /// The job's image names a registry at an address the node does not
    /// dial for a job's sake (special-purpose, its own) and its operator
    /// did not name (R-SEC-3).
    RegistryAddressRefused {
        /// The image the job names.
        image: String,
        /// Its registry.
        registry: String,
        /// What the address is.
        why: String,
    },
    /// The job reads a local path outside the folders the node's operator
    /// allows for local inputs (R-POL-3).
    LocalInputNotAllowed {
        /// The path the job names.
        path: String,
    },
    /// The job writes to a local path (`ReadWrite`) outside the folders
    /// the node's operator lists as writable (`--local-inputs DIR:rw`;
    /// R-VOL-4).
    LocalInputNotWritable {
        /// The path the job names.
        path: String,
    },
    /// The job's `dir` publisher names a folder outside those the node's
    /// operator lists for publishing (`--publish-dir`), or the node lists
    /// none (R-SEC-2, R-POL-3).
    PublishDirNotAllowed {
        /// The folder the job names.
        path: String,
    },
    /// The task asks for more of a resource than the node offers at all
    /// (`--resources`; R-PLC-1). Amounts are millicores or bytes.
    ResourceTooLarge {
        /// The resource.
        resource: ResourceKind,
        /// What the task asks for.
        requested: u64,
        /// All the node offers.
        offered: u64,
    },
    /// The node offers enough of a resource, but its open bids and running
    /// executions hold the rest now (R-PLC-1); like a full node, it may
    /// bid later.
    ResourceBusy {
        /// The resource.
        resource: ResourceKind,
        /// What the task asks for.
        requested: u64,
        /// What is free now.
        free: u64,
    },
    /// The job's requester holds its share of the node's slots while other
    /// requesters' jobs wait for one (R-PLC-2); like a full node, it may
    /// bid later.
    RequesterShare {
        /// Slots the requester's jobs hold (open bids and executions).
        held: u32,
        /// The most it may hold while others wait.
        share: u32,
    },
    /// The node could not fetch the job's inputs within its
    /// `ExecutionTimeout`, at the rate it expects (R-PLC-1).
    InputsTooSlow {
        /// The input bytes the node would have to fetch (those it lacks).
        bytes: u64,
        /// The rate it expects, bits per second: the slower of its own
        /// download rate and the rate the requester serves at.
        bps: u64,
        /// How long that would take, ms.
        fetch_ms: u64,
        /// The job's `ExecutionTimeout`, ms, which the fetch counts in.
        timeout_ms: u64,
    },
    /// A Constraint of the job does not hold of the node's labels
    /// (`--label`; issue 17).
    ConstraintNotMet {
        /// The Constraint, as [`crate::job::Constraint`] shows it.
        constraint: String,
    },
    /// The job's publisher is one the node cannot publish to: `s3` on a
    /// node with no S3 endpoint (issue 17).
    PublisherUnavailable {
        /// The publisher's type (`s3`).
        publisher: String,
    },
    /// The job reads or publishes to S3 where this node cannot: it has no
    /// S3 endpoint, or the job names another endpoint or region (issue 17).
    S3Refused {
        /// What needs S3: `S3 input s3://...` or `publishing to S3`.
        what: String,
        /// Why the node does not offer it.
        why: String,
    },
    /// The task's `Env` reads a variable of the node (`env:NAME`) its
    /// operator does not allow jobs to read (`--allow-env`; issue 17).
    EnvNotAllowed {
        /// The node's variable the job names.
        variable: String,
    },
    /// A reason from a newer version of skrei that this one cannot read.
    #[serde(other)]
    Unknown,
}

impl From<Misfit> for RefuseReason {
    fn from(misfit: Misfit) -> RefuseReason {
        match misfit {
            Misfit::TooLarge {
                resource,
                requested,
                offered,
            } => RefuseReason::ResourceTooLarge {
                resource,
                requested,
                offered,
            },
            Misfit::Busy {
                resource,
                requested,
                free,
            } => RefuseReason::ResourceBusy {
                resource,
                requested,
                free,
            },
        }
    }
}

impl RefuseReason {
    /// Whether the refusal may soon stop holding: the node is busy (no free
    /// slot, a resource held by its running jobs, the requester's share of
    /// slots taken), not unwilling or unable.
    pub fn is_passing(&self) -> bool {
        matches!(
            self,
            RefuseReason::NoCapacity { .. }
                | RefuseReason::ResourceBusy { .. }
                | RefuseReason::RequesterShare { .. }
        )
    }
}

/// At most this many domains are named in a refusal's text; the rest are
/// counted, so one refusal cannot fill a screen.
const MAX_DOMAINS_SHOWN: usize = 5;

impl fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefuseReason::NetworkNotAccepted {
                requested,
                accepted,
            } => write!(
                f,
                "network={requested} not accepted (this node accepts {})",
                accepted_modes(*accepted)
            ),
            RefuseReason::DomainsNotAllowed { domains } => {
                let shown: Vec<&str> = domains
                    .iter()
                    .take(MAX_DOMAINS_SHOWN)
                    .map(Domain::as_str)
                    .collect();
                f.write_str(&shown.join(", "))?;
                if domains.len() > MAX_DOMAINS_SHOWN {
                    write!(f, " and {} more", domains.len() - MAX_DOMAINS_SHOWN)?;
                }
                f.write_str(" not in allowlist")
            }
            RefuseReason::EmptyAllowlist => {
                f.write_str("network=http not accepted (this node's allowlist is empty)")
            }
            RefuseReason::EngineUnavailable { engine } => {
                write!(f, "engine={} not available", engine.escape_debug())
            }
            RefuseReason::NoCapacity { running, capacity } => {
                write!(f, "no free slot ({running} of {capacity} taken)")
            }
            RefuseReason::ImageMissing { image } => write!(
                f,
                "image {} not on the node, and it pulls no images (its operator allows \
                 registries with --pull-from)",
                image.escape_debug()
            ),
            RefuseReason::RegistryNotAllowed { image, registry } => write!(
                f,
                "image {} not on the node, and it does not pull from {}",
                image.escape_debug(),
                registry.escape_debug()
            ),
            RefuseReason::RegistryAddressRefused {
                image,
                registry,
                why,
            } => write!(
                f,
                "image {}: registry {} is {}; a node pulls from such an address only when \
                 its operator names the registry",
                image.escape_debug(),
                registry.escape_debug(),
                why.escape_debug()
            ),
            RefuseReason::LocalInputNotAllowed { path } => {
                write!(
                    f,
                    "local path {} not allowed on the node",
                    path.escape_debug()
                )
            }
            RefuseReason::LocalInputNotWritable { path } => write!(
                f,
                "writing to local path {} not allowed on the node (its operator lists \
                 writable folders with --local-inputs DIR:rw)",
                path.escape_debug()
            ),
            RefuseReason::PublishDirNotAllowed { path } => {
                write!(
                    f,
                    "publishing to {} not allowed on the node (its operator lists the folders \
                     with --publish-dir)",
                    path.escape_debug()
                )
            }
            RefuseReason::ResourceTooLarge {
                resource,
                requested,
                offered,
            } => write!(
                f,
                "{resource} {} > {}",
                resource.show(*requested),
                resource.show(*offered)
            ),
            RefuseReason::ResourceBusy {
                resource,
                requested,
                free,
            } => write!(
                f,
                "{resource} {} asked, {} free (held by running jobs)",
                resource.show(*requested),
                resource.show(*free)
            ),
            RefuseReason::InputsTooSlow {
                bytes,
                bps,
                fetch_ms,
                timeout_ms,
            } => write!(
                f,
                "its inputs ({}) would take about {} to fetch at {}, longer than its \
                 ExecutionTimeout ({})",
                crate::link::explain_bytes(*bytes),
                crate::requester::explain_duration(*fetch_ms),
                crate::link::explain_rate(*bps),
                crate::requester::explain_duration(*timeout_ms),
            ),
            RefuseReason::ConstraintNotMet { constraint } => {
                write!(f, "its constraint `{constraint}` does not hold here")
            }
            RefuseReason::PublisherUnavailable { publisher } => write!(
                f,
                "publishing to {} not available on the node (it has no S3 endpoint; its \
                 operator sets one with --s3-endpoint): use the local or dir publisher",
                publisher.escape_debug()
            ),
            RefuseReason::S3Refused { what, why } => write!(
                f,
                "{} not available on the node: {}",
                what.escape_debug(),
                why.escape_debug()
            ),
            RefuseReason::EnvNotAllowed { variable } => write!(
                f,
                "its Env reads the node's variable {}, which jobs may not read here (its \
                 operator allows variables with --allow-env)",
                variable.escape_debug()
            ),
            RefuseReason::RequesterShare { held, share } => write!(
                f,
                "its requester holds {held} of the node's slots while others' jobs wait (its \
                 share: {share})"
            ),
            RefuseReason::Unknown => {
                f.write_str("refused for a reason this version of skrei does not know")
            }
        }
    }
}

fn accepted_modes(accepted: NetworkMode) -> &'static str {
    match accepted {
        NetworkMode::None => "none",
        NetworkMode::Http => "none and http",
        NetworkMode::Full => "none, http and full",
    }
}

#[cfg(test)]
mod tests;
