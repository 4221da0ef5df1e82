//! The job spec (R-JOB-1, R-JOB-2).
//!
//! A job file is YAML or JSON with Bacalhau's v1 field names, so that a user's
//! existing batch job files run unchanged where the features overlap:
//!
//! ```yaml
//! Type: batch
//! Count: 1
//! Tasks:
//!   - Name: main
//!     Engine:
//!       Type: docker
//!       Params:
//!         Image: ubuntu:24.04
//!         Parameters: [echo, hello]
//!     Network:
//!       Type: HTTP
//!       Domains: [.example.com]
//! ```
//!
//! Two readers share these types. [`JobSpec::parse`] reads what users write: keys
//! in any case (as Bacalhau does), Bacalhau's spellings of engine, source and
//! publisher types, and it reports every problem with the field's path and its
//! line and column. Serde (`Serialize`/`Deserialize`) is the strict canonical
//! form: the exact field names written by [`JobSpec::parse`]'s output, used on
//! the wire and in ids; anything decoded that way is checked again with
//! [`JobSpec::validate`]. Both readers apply the same rules from [`rules`].

pub mod constraint;
mod decode;
mod document;
pub mod flags;
pub mod quantity;
pub mod rules;
pub mod template;

use std::collections::BTreeMap;
use std::fmt;

use cid::Cid;
use serde::{Deserialize, Serialize};

use crate::domain::DomainSet;
pub use constraint::{Constraint, Operator};
pub use quantity::{ByteSize, MilliCpu};

/// Most tasks a job may run at once (`Count`).
pub const MAX_COUNT: u32 = 64;
/// Largest inline input, after decoding (they travel inside the announcement).
pub const MAX_INLINE_BYTES: usize = 256 * 1024;
/// Largest job file accepted by [`JobSpec::parse`].
pub const MAX_JOB_FILE_BYTES: usize = 2 * 1024 * 1024;
/// Where inputs appear when no target is given.
pub const DEFAULT_INPUT_TARGET: &str = "/inputs";
/// The output folder a job gets when it names none.
pub const DEFAULT_OUTPUT: (&str, &str) = ("outputs", "/outputs");
/// The WASI entry point used when a WASM job names none.
pub const DEFAULT_WASM_ENTRYPOINT: &str = "_start";

/// A job: what to run, on what data, with which network, how many times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct JobSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub r#type: JobType,
    /// How many nodes run the task (1..=[`MAX_COUNT`]).
    pub count: u32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// What a node's labels must satisfy for it to run the job (at most
    /// [`constraint::MAX_CONSTRAINTS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
    /// Exactly one task (as in Bacalhau v1 today).
    pub tasks: Vec<Task>,
}

/// The kind of job: skrei runs batch and ops jobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobType {
    /// Runs to completion on `Count` nodes.
    #[default]
    #[serde(rename = "batch")]
    Batch,
    /// Runs once on every node that accepts it and bids before its
    /// `QueueTimeout` (Bacalhau's `ops`); `Count` does not apply.
    #[serde(rename = "ops")]
    Ops,
}

impl JobType {
    /// The name job files use: `batch`, `ops`.
    pub fn name(self) -> &'static str {
        match self {
            JobType::Batch => "batch",
            JobType::Ops => "ops",
        }
    }
}

/// One unit of work: an engine, its data, its network and its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Task {
    pub name: String,
    pub engine: Engine,
    #[serde(default, skip_serializing_if = "Publisher::is_local")]
    pub publisher: Publisher,
    /// Environment variables for the task, merged under the engine's own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_sources: Vec<InputSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub result_paths: Vec<ResultPath>,
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    #[serde(default, skip_serializing_if = "Network::is_none")]
    pub network: Network,
    #[serde(default, skip_serializing_if = "Timeouts::is_empty")]
    pub timeouts: Timeouts,
}

/// The prefix of an `Env` value that reads a variable of the node that runs
/// the task (`env:NAME`), as in Bacalhau.
pub const NODE_ENV_PREFIX: &str = "env:";

impl Task {
    /// The node's variables the task's `Env` reads (`env:NAME` values).
    pub fn node_env_reads(&self) -> impl Iterator<Item = &str> {
        self.env
            .values()
            .filter_map(|v| v.strip_prefix(NODE_ENV_PREFIX))
    }
}

/// The engine that runs a task (R-JOB-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "Type", content = "Params", deny_unknown_fields)]
pub enum Engine {
    #[serde(rename = "docker")]
    Docker(DockerParams),
    #[serde(rename = "wasm")]
    Wasm(WasmParams),
}

impl Engine {
    /// The engine's name as nodes advertise it: `docker` or `wasm`.
    pub fn kind(&self) -> &'static str {
        match self {
            Engine::Docker(_) => "docker",
            Engine::Wasm(_) => "wasm",
        }
    }
}

/// A container run by the Docker engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DockerParams {
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<String>,
    /// `KEY=value` strings, as Bacalhau writes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment_variables: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
}

/// A WebAssembly module run by the WASM engine (WASI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct WasmParams {
    /// Where the module comes from. The node loads it; it is not mounted.
    pub entry_module: ModuleSource,
    /// The exported function to call ([`DEFAULT_WASM_ENTRYPOINT`] by default).
    pub entrypoint: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment_variables: BTreeMap<String, String>,
}

/// The source of a WASM entry module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ModuleSource {
    pub source: Source,
}

/// An input made available to the task, read-only, at `target` (R-VOL-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct InputSource {
    pub source: Source,
    /// Absolute path inside the task, normalised (no `..`, no trailing `/`).
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// Where an input's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "Type", content = "Params", deny_unknown_fields)]
pub enum Source {
    /// Content by CID, fetched from peers and verified while streaming.
    /// Bacalhau files write this type as `ipfs`.
    #[serde(rename = "cid")]
    Cid(CidSource),
    /// An HTTP(S) URL the node downloads before the job starts.
    #[serde(rename = "urlDownload")]
    Url(UrlSource),
    /// Small data carried in the spec as an RFC 2397 `data:` URL (base64).
    #[serde(rename = "inline")]
    Inline(InlineSource),
    /// A path on the compute node, only under directories its operator allows.
    #[serde(rename = "localDirectory")]
    Local(LocalSource),
    /// Objects in a bucket of the compute node's own S3 endpoint, read with
    /// its operator's credentials (issue 17).
    #[serde(rename = "s3")]
    S3(S3Source),
}

impl Source {
    /// A short human description: `cid bafk...`, `url https://...`, ...
    pub fn describe(&self) -> String {
        match self {
            Source::Cid(s) => format!("cid {}", s.cid),
            Source::Url(s) => format!("url {}", s.url),
            Source::Inline(s) => format!("inline data ({} characters)", s.url.len()),
            Source::Local(s) if s.read_write => {
                format!("local path {} (writable)", s.source_path)
            }
            Source::Local(s) => format!("local path {}", s.source_path),
            Source::S3(s) => format!("s3://{}/{}", s.bucket, s.key),
        }
    }
}

/// Parameters of a CID input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CidSource {
    #[serde(rename = "CID", with = "crate::id::cid_string")]
    pub cid: Cid,
}

/// Parameters of a URL input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlSource {
    /// An absolute `http` or `https` URL (checked by [`rules::check_url`]).
    #[serde(rename = "URL")]
    pub url: String,
}

/// Parameters of an inline input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InlineSource {
    /// A `data:` URL (checked by [`rules::check_data_url`]).
    #[serde(rename = "URL")]
    pub url: String,
}

/// Parameters of a local-path input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct LocalSource {
    /// Absolute path on the compute node.
    pub source_path: String,
    /// The task may write to it (R-VOL-4's one exception to read-only
    /// inputs): mounted as it is, only from folders the node's operator
    /// lists as writable (`--local-inputs DIR:rw`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_write: bool,
}

/// An output folder of the task, published with its results (R-VOL-2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ResultPath {
    /// The folder's name in the results (`outputs`).
    pub name: String,
    /// Absolute path inside the task (`/outputs`).
    pub path: String,
}

/// Where results go once the task ends (R-VOL-2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "Type", content = "Params", deny_unknown_fields)]
pub enum Publisher {
    /// Kept in the compute node's blob store and fetched by CID (the default).
    #[default]
    #[serde(rename = "local")]
    Local,
    /// Copied into a directory on the compute node.
    #[serde(rename = "dir")]
    Dir(DirPublisher),
    /// Uploaded to an S3-compatible bucket configured on the compute node.
    #[serde(rename = "s3")]
    S3(S3Publisher),
}

impl Publisher {
    fn is_local(&self) -> bool {
        *self == Publisher::Local
    }
}

/// Parameters of an S3 input. A `Key` ending in `/` or `*` (or none) is a
/// prefix: every object under it lands at its path below the prefix; any
/// other key is one object, at its last name. Either way inside `Target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct S3Source {
    pub bucket: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// For a prefix: only objects whose key matches this regular
    /// expression (anywhere in the key, as Bacalhau's `Filter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Only the node's own endpoint is used; another one is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Only the node's own region is used; another one is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl S3Source {
    /// The prefix listed, for a prefix key; `None` for one object.
    pub fn prefix(&self) -> Option<&str> {
        if self.key.is_empty() || self.key.ends_with('/') {
            Some(&self.key)
        } else {
            self.key.strip_suffix('*')
        }
    }
}

/// Parameters of the `dir` publisher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DirPublisher {
    pub path: String,
}

/// Parameters of the `s3` publisher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct S3Publisher {
    pub bucket: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// What the task needs from the node. Unset means the node's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(rename = "CPU", default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<MilliCpu>,
    #[serde(rename = "Memory", default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    #[serde(rename = "Disk", default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<ByteSize>,
}

impl Resources {
    fn is_empty(&self) -> bool {
        *self == Resources::default()
    }
}

/// The task's network (R-NET-1..R-NET-3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Network {
    pub r#type: NetworkMode,
    /// The only hosts an `HTTP` task may reach; empty for the other modes.
    #[serde(default, skip_serializing_if = "DomainSet::is_empty")]
    pub domains: DomainSet,
}

impl Network {
    fn is_none(&self) -> bool {
        *self == Network::default()
    }
}

/// Time limits, in seconds. Unset means the node's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Timeouts {
    /// Longest the task may run once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_timeout: Option<u64>,
    /// Longest the job may wait for a node to take it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_timeout: Option<u64>,
    /// Longest from submission to the end, retries included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_timeout: Option<u64>,
}

impl Timeouts {
    fn is_empty(&self) -> bool {
        *self == Timeouts::default()
    }

    /// The execution timeout in ms: the task's, or `default_ms` when it
    /// sets none (or 0).
    pub fn execution_ms_or(&self, default_ms: u64) -> u64 {
        self.execution_timeout
            .filter(|s| *s > 0)
            .map_or(default_ms, |s| s.saturating_mul(1000))
    }
}

/// A job's network mode (R-NET-1..R-NET-3), also what a node accepts (R-POL-1).
/// Ordered: `None < Http < Full`, and a node accepting a mode accepts every
/// lower one.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum NetworkMode {
    /// No network but loopback (the default).
    #[default]
    None,
    /// HTTP and HTTPS to the job's domains only, through the egress proxy.
    #[serde(rename = "HTTP")]
    Http,
    /// Unfiltered networking of any protocol.
    Full,
}

impl NetworkMode {
    /// The lower-case name used by flags: `none`, `http`, `full`.
    pub fn as_flag(self) -> &'static str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Http => "http",
            NetworkMode::Full => "full",
        }
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_flag())
    }
}

/// Where in a job file a value starts (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// One problem with a job: which field, where, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    /// The field's path, e.g. `Tasks[0].Network.Domains[1]`; empty for the root.
    pub path: String,
    /// Where the field is in the file, when the job came from a file.
    pub location: Option<Location>,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "the job"
        } else {
            &self.path
        };
        match self.location {
            Some(at) => write!(
                f,
                "{path} (line {}, column {}): {}",
                at.line, at.column, self.message
            ),
            None => write!(f, "{path}: {}", self.message),
        }
    }
}

/// Every problem found in a job, in file order. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct JobErrors(pub Vec<JobError>);

impl fmt::Display for JobErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl JobErrors {
    fn one(path: impl Into<String>, message: impl Into<String>) -> JobErrors {
        JobErrors(vec![JobError {
            path: path.into(),
            location: None,
            message: message.into(),
        }])
    }
}

impl JobSpec {
    /// Reads a job file (YAML or JSON) as users write it: keys in any case,
    /// Bacalhau's spellings, defaults filled in, domains normalised. Reports
    /// every problem at once, each with its path and position.
    pub fn parse(text: &str) -> Result<JobSpec, JobErrors> {
        JobSpec::parse_with_notices(text).map(|(spec, _)| spec)
    }

    /// [`JobSpec::parse`], with what the file says that skrei reads but
    /// does not use (e.g. a `Priority`), to tell the user of.
    pub fn parse_with_notices(text: &str) -> Result<(JobSpec, Vec<JobError>), JobErrors> {
        if text.len() > MAX_JOB_FILE_BYTES {
            return Err(JobErrors::one(
                "",
                format!(
                    "the job file is {} bytes, more than the {MAX_JOB_FILE_BYTES} allowed; \
                     put large data in an input (CID or URL) instead of inline",
                    text.len()
                ),
            ));
        }
        let doc = document::Node::parse(text)?;
        decode::job(&doc)
    }

    /// The single task (a valid job has exactly one).
    pub fn task(&self) -> &Task {
        &self.tasks[0]
    }

    /// Checks the rules that types cannot express (for specs decoded from the
    /// wire or built in code); [`JobSpec::parse`] applies the same rules.
    pub fn validate(&self) -> Result<(), JobErrors> {
        let mut errors = Vec::new();
        let mut check = |path: String, r: Result<(), String>| {
            if let Err(message) = r {
                errors.push(JobError {
                    path,
                    location: None,
                    message,
                });
            }
        };
        for (field, text) in [("Name", &self.name), ("Namespace", &self.namespace)] {
            if let Some(text) = text {
                check(field.into(), rules::check_text(text));
            }
        }
        check("Count".into(), rules::check_count(i128::from(self.count)));
        for (field, map) in [("Labels", &self.labels), ("Meta", &self.meta)] {
            for (k, v) in map {
                check(format!("{field}.{k}"), rules::check_text(k));
                check(format!("{field}.{k}"), rules::check_text(v));
            }
        }
        if self.constraints.len() > constraint::MAX_CONSTRAINTS {
            check(
                "Constraints".into(),
                Err(format!(
                    "{} Constraints: at most {} are allowed",
                    self.constraints.len(),
                    constraint::MAX_CONSTRAINTS
                )),
            );
        }
        for (i, c) in self.constraints.iter().enumerate() {
            check(format!("Constraints[{i}]"), c.check());
        }
        if self.tasks.len() != 1 {
            check("Tasks".into(), rules::check_task_count(self.tasks.len()));
            return Err(JobErrors(errors));
        }
        let task = &self.tasks[0];
        let t = "Tasks[0]";
        check(format!("{t}.Name"), rules::check_text(&task.name));
        match &task.engine {
            Engine::Docker(p) => {
                check(
                    format!("{t}.Engine.Params.Image"),
                    rules::check_image(&p.image),
                );
                for (i, e) in p.environment_variables.iter().enumerate() {
                    check(
                        format!("{t}.Engine.Params.EnvironmentVariables[{i}]"),
                        rules::check_env_pair(e).map(|_| ()),
                    );
                }
                if let Some(w) = &p.working_directory {
                    check(
                        format!("{t}.Engine.Params.WorkingDirectory"),
                        rules::check_absolute_path(w)
                            .and_then(|n| rules::require_normalised(w, &n)),
                    );
                }
            }
            Engine::Wasm(p) => {
                check(
                    format!("{t}.Engine.Params.EntryModule.Source"),
                    rules::check_source(&p.entry_module.source),
                );
                check(
                    format!("{t}.Engine.Params.Entrypoint"),
                    rules::check_wasm_entrypoint(&p.entrypoint),
                );
                for k in p.environment_variables.keys() {
                    check(
                        format!("{t}.Engine.Params.EnvironmentVariables.{k}"),
                        rules::check_env_name(k),
                    );
                }
            }
        }
        for (k, v) in &task.env {
            check(format!("{t}.Env.{k}"), rules::check_env_name(k));
            check(format!("{t}.Env.{k}"), rules::check_env_value(v));
        }
        for (k, v) in &task.meta {
            check(format!("{t}.Meta.{k}"), rules::check_text(k));
            check(format!("{t}.Meta.{k}"), rules::check_text(v));
        }
        for (i, input) in task.input_sources.iter().enumerate() {
            let p = format!("{t}.InputSources[{i}]");
            check(format!("{p}.Source"), rules::check_source(&input.source));
            if let Some(alias) = &input.alias {
                check(format!("{p}.Alias"), rules::check_text(alias));
            }
            check(
                format!("{p}.Target"),
                rules::check_absolute_path(&input.target)
                    .and_then(|n| rules::require_normalised(&input.target, &n)),
            );
        }
        for (i, r) in task.result_paths.iter().enumerate() {
            let p = format!("{t}.ResultPaths[{i}]");
            check(format!("{p}.Name"), rules::check_result_name(&r.name));
            check(
                format!("{p}.Path"),
                rules::check_absolute_path(&r.path)
                    .and_then(|n| rules::require_normalised(&r.path, &n)),
            );
        }
        check(t.to_string(), rules::check_mounts(task));
        check(
            format!("{t}.Publisher"),
            rules::check_publisher(&task.publisher),
        );
        check(format!("{t}.Network"), rules::check_network(&task.network));
        check(
            format!("{t}.Timeouts"),
            rules::check_timeouts(&task.timeouts),
        );
        if errors.is_empty() {
            Ok(())
        } else {
            Err(JobErrors(errors))
        }
    }

    /// The normalised job as pretty JSON, in the canonical field names (itself
    /// a valid job file).
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a JobSpec always serialises to JSON")
    }
}

#[cfg(test)]
mod tests;

/// Jobs for other modules' tests: a named docker job, everything else default.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub(crate) fn docker_job(
        image: &str,
        parameters: Vec<String>,
        environment_variables: Vec<String>,
        network: Network,
    ) -> JobSpec {
        JobSpec {
            name: Some("hello".into()),
            namespace: None,
            r#type: JobType::Batch,
            count: 1,
            labels: BTreeMap::new(),
            meta: BTreeMap::new(),
            constraints: Vec::new(),
            tasks: vec![Task {
                name: "main".into(),
                engine: Engine::Docker(DockerParams {
                    image: image.into(),
                    entrypoint: vec![],
                    parameters,
                    environment_variables,
                    working_directory: None,
                }),
                publisher: Publisher::Local,
                env: BTreeMap::new(),
                meta: BTreeMap::new(),
                input_sources: vec![],
                result_paths: vec![],
                resources: Resources::default(),
                network,
                timeouts: Timeouts::default(),
            }],
        }
    }

    /// `docker_job` running `echo hello` with no network.
    pub(crate) fn echo_job(image: &str) -> JobSpec {
        docker_job(
            image,
            vec!["echo".into(), "hello".into()],
            vec![],
            Network::default(),
        )
    }
}
