//! From a [`Node`] tree to a [`JobSpec`], the way Bacalhau reads job files:
//! keys match in any case, engine/source/publisher types accept Bacalhau's
//! spellings, `null` means "not set". Every problem is collected with its
//! path and position, so a user fixes a file in one pass.

use std::collections::BTreeMap;

use super::constraint::{self, Constraint, Operator};
use super::document::{Node, Value, is_null};
use super::rules;
use super::{
    ByteSize, CidSource, DEFAULT_INPUT_TARGET, DEFAULT_WASM_ENTRYPOINT, DirPublisher, DockerParams,
    Engine, InlineSource, InputSource, JobError, JobErrors, JobSpec, JobType, LocalSource,
    MilliCpu, ModuleSource, Network, NetworkMode, Publisher, Resources, ResultPath, S3Publisher,
    S3Source, Source, Task, Timeouts, UrlSource, WasmParams,
};
use crate::domain::DomainSet;

/// Reads a whole job.
pub(crate) fn job(root: &Node) -> Result<(JobSpec, Vec<JobError>), JobErrors> {
    let mut d = Decoder::default();
    let spec = d.job(root);
    match spec {
        Some(spec) if d.errors.is_empty() => {
            // The decoder applied every rule as it went; this re-check guards
            // against the two readers drifting apart.
            spec.validate()?;
            Ok((spec, d.notices))
        }
        _ => {
            d.errors.sort_by_key(|e| e.location);
            Err(JobErrors(d.errors))
        }
    }
}

/// Fields of the job itself that Bacalhau's own output carries but a
/// submission must not (the network assigns them).
const ASSIGNED_FIELDS: &[&str] = &[
    "ID",
    "State",
    "Version",
    "Revision",
    "CreateTime",
    "ModifyTime",
];

#[derive(Default)]
struct Decoder {
    errors: Vec<JobError>,
    /// Fields accepted but not used, to tell the user of.
    notices: Vec<JobError>,
    /// A WASM `EntryModule` given as a path (Bacalhau's current form): it
    /// names one of the task's inputs, resolved once they are read.
    module_path: Option<ModulePath>,
}

/// An `EntryModule: /app/main.wasm`, where it was written.
struct ModulePath {
    path: String,
    field: String,
    node: Node,
}

/// The entries of one mapping, matched to a struct's fields.
struct Fields<'a> {
    values: Vec<(&'static str, &'a Node)>,
}

impl<'a> Fields<'a> {
    /// The value of `name`, or None when absent or `null`.
    fn get(&self, name: &str) -> Option<&'a Node> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .filter(|v| !matches!(&v.value, Value::Scalar { text, quoted: false } if is_null(text)))
    }
}

/// Whether a field holds an empty string, which Bacalhau's job files use
/// for "not set" (`WorkingDirectory: ""`, `Publisher: {Type: ""}`).
fn is_blank(node: &Node) -> bool {
    matches!(&node.value, Value::Scalar { text, .. } if text.is_empty())
}

/// Whether a typed field (`{Type, Params}`) gives an empty Type and
/// nothing else but empty Params: Bacalhau's way of leaving it unset.
/// Anything else is for the full reader to judge (and report once).
fn blank_typed(node: &Node) -> bool {
    let Value::Map(entries) = &node.value else {
        return false;
    };
    let key_is = |key: &Node, name: &str| matches!(&key.value, Value::Scalar { text, .. } if text.eq_ignore_ascii_case(name));
    let empty = |value: &Node| match &value.value {
        Value::Map(entries) => entries.is_empty(),
        Value::Scalar { text, quoted } => !quoted && is_null(text),
        Value::Seq(_) => false,
    };
    let blank_type = entries
        .iter()
        .any(|(k, v)| key_is(k, "Type") && is_blank(v));
    let rest_empty = entries
        .iter()
        .all(|(k, v)| key_is(k, "Type") || (key_is(k, "Params") && empty(v)));
    blank_type && rest_empty
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

impl Decoder {
    fn error(&mut self, path: &str, node: &Node, message: impl Into<String>) {
        self.errors.push(JobError {
            path: path.to_string(),
            location: Some(node.at),
            message: message.into(),
        });
    }

    /// Reports a rule's verdict; returns whether it passed.
    fn rule<T>(&mut self, path: &str, node: &Node, verdict: Result<T, String>) -> Option<T> {
        match verdict {
            Ok(v) => Some(v),
            Err(m) => {
                self.error(path, node, m);
                None
            }
        }
    }

    /// Matches a mapping's keys to `fields`, ignoring case. Unknown keys and
    /// keys given twice are errors.
    fn fields<'a>(
        &mut self,
        node: &'a Node,
        path: &str,
        fields: &[&'static str],
    ) -> Option<Fields<'a>> {
        let Value::Map(entries) = &node.value else {
            self.error(
                path,
                node,
                format!(
                    "expected a mapping with fields {}, found {}",
                    fields.join(", "),
                    node.kind()
                ),
            );
            return None;
        };
        let mut values: Vec<(&'static str, &'a Node)> = Vec::new();
        for (key, value) in entries {
            let Value::Scalar { text, .. } = &key.value else {
                continue;
            };
            match fields.iter().find(|f| f.eq_ignore_ascii_case(text)) {
                Some(field) => {
                    if values.iter().any(|(f, _)| f == field) {
                        self.error(
                            &join(path, field),
                            key,
                            format!("`{text}` is given twice (keys match in any case): keep one"),
                        );
                    } else {
                        values.push((field, value));
                    }
                }
                None => {
                    let message = unknown_field(text, fields);
                    self.error(&join(path, text), key, message);
                }
            }
        }
        Some(Fields { values })
    }

    /// A scalar read as text. Plain numbers and booleans are accepted as
    /// their text (`Parameters: [sleep, 5]`).
    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, quoted } if *quoted || !is_null(text) => Some(text.clone()),
            _ => {
                self.error(
                    path,
                    node,
                    format!("expected a text value, found {}", node.kind()),
                );
                None
            }
        }
    }

    /// A string that also passes [`rules::check_text`].
    fn text(&mut self, node: &Node, path: &str) -> Option<String> {
        let s = self.string(node, path)?;
        self.rule(path, node, rules::check_text(&s))?;
        Some(s)
    }

    fn seq<'a>(&mut self, node: &'a Node, path: &str, what: &str) -> Option<&'a [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            _ => {
                self.error(
                    path,
                    node,
                    format!("expected a list of {what}, found {}", node.kind()),
                );
                None
            }
        }
    }

    fn strings(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        let items = self.seq(node, path, "text values")?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.string(item, &format!("{path}[{i}]")) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A mapping of free-form keys (labels, env) to text, keys kept as written.
    fn string_map(&mut self, node: &Node, path: &str) -> Option<BTreeMap<String, String>> {
        let Value::Map(entries) = &node.value else {
            self.error(
                path,
                node,
                format!(
                    "expected a mapping of names to values, found {}",
                    node.kind()
                ),
            );
            return None;
        };
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (key, value) in entries {
            let Value::Scalar { text: k, .. } = &key.value else {
                continue;
            };
            let p = join(path, k);
            if out.contains_key(k) {
                self.error(&p, key, format!("`{k}` is given twice: keep one"));
                ok = false;
                continue;
            }
            match self.string(value, &p) {
                Some(v) => {
                    out.insert(k.clone(), v);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A non-negative whole number.
    fn uint(&mut self, node: &Node, path: &str, what: &str) -> Option<u64> {
        let parsed = match &node.value {
            Value::Scalar {
                text,
                quoted: false,
            } => text.parse::<u64>().ok(),
            _ => None,
        };
        if parsed.is_none() {
            let shown = match &node.value {
                Value::Scalar { text, .. } => format!("`{text}`"),
                _ => node.kind().to_string(),
            };
            self.error(
                path,
                node,
                format!("expected {what} as a whole number, found {shown}"),
            );
        }
        parsed
    }

    fn bool(&mut self, node: &Node, path: &str) -> Option<bool> {
        // Quoted too: Bacalhau converts `ReadWrite: "false"`.
        if let Value::Scalar { text, .. } = &node.value {
            match text.as_str() {
                "true" | "True" | "TRUE" => return Some(true),
                "false" | "False" | "FALSE" => return Some(false),
                _ => {}
            }
        }
        self.error(path, node, "expected true or false");
        None
    }

    fn job(&mut self, root: &Node) -> Option<JobSpec> {
        // Bacalhau's older job formats (APIVersion V1beta1/V1beta2) nest
        // everything under Spec: say so instead of "unknown field".
        if let Value::Map(entries) = &root.value
            && let Some((key, _)) = entries.iter().find(|(k, _)| {
                matches!(&k.value, Value::Scalar { text, .. }
                    if ["APIVersion", "Spec", "Job"].iter().any(|f| f.eq_ignore_ascii_case(text)))
            })
        {
            self.error(
                "",
                key,
                "this is Bacalhau's older job format (APIVersion V1beta1/V1beta2): write the \
                 v1 form, with Type, Count and Tasks at the top (`skrei job validate` shows \
                 what each field needs)",
            );
            return None;
        }
        let mut all: Vec<&'static str> = vec![
            "Name",
            "Namespace",
            "Type",
            "Count",
            "Priority",
            "Labels",
            "Meta",
            "Constraints",
            "Tasks",
        ];
        all.extend_from_slice(ASSIGNED_FIELDS);
        let f = self.fields(root, "", &all)?;
        for field in ASSIGNED_FIELDS {
            if let Some(n) = f.get(field) {
                self.error(
                    field,
                    n,
                    format!(
                        "{field} is assigned by the network when a job is submitted: remove it"
                    ),
                );
            }
        }
        let name = f.get("Name").and_then(|n| self.text(n, "Name"));
        let namespace = f.get("Namespace").and_then(|n| self.text(n, "Namespace"));
        let r#type = match f.get("Type") {
            None => Some(JobType::Batch),
            Some(n) => self.job_type(n),
        };
        let count = match f.get("Count") {
            None => Some(1),
            Some(n) => self.uint(n, "Count", "the number of nodes").and_then(|c| {
                self.rule("Count", n, rules::check_count(i128::from(c)))?;
                u32::try_from(c).ok()
            }),
        };
        if r#type == Some(JobType::Ops)
            && let Some(n) = f.get("Count")
            && count.is_some_and(|c| c != 1)
        {
            self.notices.push(JobError {
                path: "Count".into(),
                location: Some(n.at),
                message: "Count does not apply to ops jobs: they run once on every node that \
                          accepts them"
                    .into(),
            });
        }
        // An ops job is one part run on each node.
        let count = if r#type == Some(JobType::Ops) {
            count.map(|_| 1)
        } else {
            count
        };
        // Bacalhau's Priority orders its own queues; skrei's nodes take
        // waiting jobs first come, first served, with a share per
        // requester, so a priority is read and said to be unused.
        if let Some(n) = f.get("Priority") {
            let priority = match &n.value {
                Value::Scalar { text, .. } => text.trim().parse::<i64>().ok(),
                _ => None,
            };
            match priority {
                Some(0) => {}
                Some(p) => self.notices.push(JobError {
                    path: "Priority".into(),
                    location: Some(n.at),
                    message: format!(
                        "Priority {p} is accepted and not used: nodes take waiting jobs first \
                         come, first served, with a fair share per requester"
                    ),
                }),
                None => self.error(
                    "Priority",
                    n,
                    "expected the job's priority as a whole number, e.g. `Priority: 0`",
                ),
            }
        }
        let constraints = match f.get("Constraints") {
            None => Some(Vec::new()),
            Some(n) => self.constraints(n, "Constraints"),
        };
        let labels = self.optional_map(&f, "Labels", "");
        let meta = self.optional_map(&f, "Meta", "");
        let tasks = match f.get("Tasks") {
            None => {
                self.error(
                    "Tasks",
                    root,
                    "a job needs one task: add `Tasks: [{Name: main, Engine: ...}]`",
                );
                None
            }
            Some(n) => {
                let items = self.seq(n, "Tasks", "tasks")?;
                match self.rule("Tasks", n, rules::check_task_count(items.len())) {
                    Some(()) => self.task(&items[0], "Tasks[0]").map(|t| vec![t]),
                    None => None,
                }
            }
        };
        Some(JobSpec {
            name,
            namespace,
            r#type: r#type?,
            count: count?,
            labels: labels?,
            constraints: constraints?,
            meta: meta?,
            tasks: tasks?,
        })
    }

    fn optional_map(
        &mut self,
        f: &Fields,
        field: &str,
        path: &str,
    ) -> Option<BTreeMap<String, String>> {
        let p = join(path, field);
        match f.get(field) {
            None => Some(BTreeMap::new()),
            Some(n) => {
                let map = self.string_map(n, &p)?;
                let mut ok = true;
                for (k, v) in &map {
                    let entry = join(&p, k);
                    ok &= self.rule(&entry, n, rules::check_text(k)).is_some();
                    ok &= self.rule(&entry, n, rules::check_text(v)).is_some();
                }
                ok.then_some(map)
            }
        }
    }

    fn constraints(&mut self, node: &Node, path: &str) -> Option<Vec<Constraint>> {
        let items = self.seq(node, path, "constraints")?;
        if items.len() > constraint::MAX_CONSTRAINTS {
            self.error(
                path,
                node,
                format!(
                    "{} Constraints: at most {} are allowed",
                    items.len(),
                    constraint::MAX_CONSTRAINTS
                ),
            );
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            match self.constraint(item, &p) {
                Some(c) => out.push(c),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn constraint(&mut self, node: &Node, path: &str) -> Option<Constraint> {
        let f = self.fields(node, path, &["Key", "Operator", "Values"])?;
        let Some(key) = f.get("Key") else {
            self.error(
                &join(path, "Key"),
                node,
                "Key is missing: the label to compare",
            );
            return None;
        };
        let key = self.string(key, &join(path, "Key"))?;
        let Some(op_node) = f.get("Operator") else {
            self.error(
                &join(path, "Operator"),
                node,
                "Operator is missing: one of =, !=, exists, !, in, notin, gt, lt",
            );
            return None;
        };
        let op = self.string(op_node, &join(path, "Operator"))?;
        let Some(operator) = Operator::parse(&op) else {
            self.error(
                &join(path, "Operator"),
                op_node,
                format!("`{op}` is not an operator: write =, !=, exists, !, in, notin, gt or lt"),
            );
            return None;
        };
        let values = match f.get("Values") {
            None => Some(Vec::new()),
            Some(n) => self.strings(n, &join(path, "Values")),
        }?;
        let c = Constraint {
            key,
            operator,
            values,
        };
        self.rule(path, node, c.check())?;
        Some(c)
    }

    fn job_type(&mut self, n: &Node) -> Option<JobType> {
        let t = self.string(n, "Type")?;
        if t.eq_ignore_ascii_case("batch") {
            return Some(JobType::Batch);
        }
        if t.eq_ignore_ascii_case("ops") {
            return Some(JobType::Ops);
        }
        let message = if ["service", "daemon"]
            .iter()
            .any(|k| t.eq_ignore_ascii_case(k))
        {
            format!(
                "`{t}` jobs are not supported: skrei runs jobs that end; write `Type: batch` \
                 (on Count nodes) or `Type: ops` (once on every node that accepts it)"
            )
        } else {
            format!("`{t}` is not a job type: write `Type: batch` or `Type: ops`")
        };
        self.error("Type", n, message);
        None
    }

    fn task(&mut self, node: &Node, path: &str) -> Option<Task> {
        let f = self.fields(
            node,
            path,
            &[
                "Name",
                "Engine",
                "Publisher",
                "Env",
                "Meta",
                "InputSources",
                "ResultPaths",
                "Resources",
                "Network",
                "Timeouts",
            ],
        )?;
        let name = match f.get("Name") {
            None => Some("main".to_string()),
            Some(n) => self.text(n, &join(path, "Name")),
        };
        let engine = match f.get("Engine") {
            None => {
                self.error(
                    &join(path, "Engine"),
                    node,
                    "a task needs an Engine: `Engine: {Type: docker, Params: {Image: ...}}` \
                     or `Engine: {Type: wasm, Params: {EntryModule: ...}}`",
                );
                None
            }
            Some(n) => self.engine(n, &join(path, "Engine")),
        };
        let publisher = match f.get("Publisher") {
            None => Some(Publisher::Local),
            // `{Type: ""}`: none given, so the default.
            Some(n) if blank_typed(n) => Some(Publisher::Local),
            Some(n) => self.publisher(n, &join(path, "Publisher")),
        };
        let env = match f.get("Env") {
            None => Some(BTreeMap::new()),
            Some(n) => self.env_map(n, &join(path, "Env")),
        };
        let meta = self.optional_map(&f, "Meta", path);
        let inputs = match f.get("InputSources") {
            None => Some(Vec::new()),
            Some(n) => self.inputs(n, &join(path, "InputSources")),
        };
        let results = match f.get("ResultPaths") {
            None => Some(Vec::new()),
            Some(n) => self.result_paths(n, &join(path, "ResultPaths")),
        };
        let resources = match f.get("Resources") {
            None => Some(Resources::default()),
            Some(n) => self.resources(n, &join(path, "Resources")),
        };
        let network = match f.get("Network") {
            None => Some(Network::default()),
            Some(n) => self.network(n, &join(path, "Network")),
        };
        let timeouts = match f.get("Timeouts") {
            None => Some(Timeouts::default()),
            Some(n) => self.timeouts(n, &join(path, "Timeouts")),
        };
        let engine = match (engine, self.module_path.take(), &inputs) {
            (Some(Engine::Wasm(mut params)), Some(named), Some(inputs)) => {
                self.module_from_inputs(&named, inputs).map(|source| {
                    params.entry_module = ModuleSource { source };
                    Engine::Wasm(params)
                })
            }
            (engine, _, _) => engine,
        };
        let task = Task {
            name: name?,
            engine: engine?,
            publisher: publisher?,
            env: env?,
            meta: meta?,
            input_sources: inputs?,
            result_paths: results?,
            resources: resources?,
            network: network?,
            timeouts: timeouts?,
        };
        self.rule(path, node, rules::check_mounts(&task))?;
        Some(task)
    }

    /// The source of a WASM module named by its path among the task's
    /// inputs: the input mounted exactly there (a CID, inline data or a
    /// local file), or a file inside a local folder input. Anything else
    /// is an error saying how to name the module instead.
    fn module_from_inputs(&mut self, named: &ModulePath, inputs: &[InputSource]) -> Option<Source> {
        let path = named.path.as_str();
        let exact = inputs.iter().find(|i| i.target == path);
        let within = inputs.iter().find_map(|i| {
            let rest = path.strip_prefix(&i.target)?.strip_prefix('/')?;
            Some((i, rest))
        });
        let how = "give EntryModule as `{Source: {Type: ..., Params: ...}}`, or an input \
                   whose Target is the module's file";
        match (exact, within) {
            (Some(input), _) if !matches!(input.source, Source::Url(_)) => {
                Some(input.source.clone())
            }
            (None, Some((input, rest))) if matches!(input.source, Source::Local(_)) => {
                let Source::Local(local) = &input.source else {
                    return None;
                };
                let source = Source::Local(LocalSource {
                    source_path: format!("{}/{rest}", local.source_path.trim_end_matches('/')),
                    read_write: false,
                });
                self.rule(&named.field, &named.node, rules::check_source(&source))?;
                Some(source)
            }
            (Some(input), _) | (None, Some((input, _))) => {
                self.error(
                    &named.field,
                    &named.node,
                    format!(
                        "EntryModule `{path}` lies in input {} ({}), whose files the node \
                         names only when it fetches them: {how}",
                        input.target,
                        input.source.describe()
                    ),
                );
                None
            }
            (None, None) => {
                self.error(
                    &named.field,
                    &named.node,
                    format!("EntryModule `{path}` is not among the task's inputs: {how}"),
                );
                None
            }
        }
    }

    /// `Type` + `Params`, the shape Bacalhau gives engines, sources and publishers.
    fn typed<'a>(
        &mut self,
        node: &'a Node,
        path: &str,
    ) -> Option<(String, &'a Node, Option<&'a Node>)> {
        let f = self.fields(node, path, &["Type", "Params"])?;
        let Some(type_node) = f.get("Type") else {
            self.error(&join(path, "Type"), node, "Type is missing");
            return None;
        };
        let t = self.string(type_node, &join(path, "Type"))?;
        Some((t, type_node, f.get("Params")))
    }

    fn engine(&mut self, node: &Node, path: &str) -> Option<Engine> {
        let (t, type_node, params) = self.typed(node, path)?;
        let ppath = join(path, "Params");
        if !t.eq_ignore_ascii_case("docker") && !t.eq_ignore_ascii_case("wasm") {
            let message = if t.eq_ignore_ascii_case("noop") {
                "the noop engine (Bacalhau's engine for tests) is not offered: write `docker` \
                 or `wasm`"
                    .to_owned()
            } else {
                format!("`{t}` is not an engine skrei runs: write `docker` or `wasm`")
            };
            self.error(&join(path, "Type"), type_node, message);
            return None;
        }
        let Some(params) = params else {
            self.error(
                &ppath,
                node,
                "Params is missing: the engine needs its parameters",
            );
            return None;
        };
        if t.eq_ignore_ascii_case("docker") {
            self.docker(params, &ppath).map(Engine::Docker)
        } else {
            self.wasm(params, &ppath).map(Engine::Wasm)
        }
    }

    fn docker(&mut self, node: &Node, path: &str) -> Option<DockerParams> {
        let f = self.fields(
            node,
            path,
            &[
                "Image",
                "Entrypoint",
                "Parameters",
                "EnvironmentVariables",
                "WorkingDirectory",
            ],
        )?;
        let image = match f.get("Image") {
            None => {
                self.error(
                    &join(path, "Image"),
                    node,
                    "Image is missing: name one, e.g. `ubuntu:24.04`",
                );
                None
            }
            Some(n) => {
                let p = join(path, "Image");
                let s = self.string(n, &p)?;
                self.rule(&p, n, rules::check_image(&s)).map(|()| s)
            }
        };
        let entrypoint = self.optional_strings(&f, "Entrypoint", path);
        let parameters = self.optional_strings(&f, "Parameters", path);
        let env = match f.get("EnvironmentVariables") {
            None => Some(Vec::new()),
            Some(n) => self.docker_env(n, &join(path, "EnvironmentVariables")),
        };
        let working_directory = match f.get("WorkingDirectory") {
            None => Some(None),
            Some(n) if is_blank(n) => Some(None),
            Some(n) => {
                let p = join(path, "WorkingDirectory");
                let s = self.string(n, &p)?;
                self.rule(&p, n, rules::check_absolute_path(&s)).map(Some)
            }
        };
        Some(DockerParams {
            image: image?,
            entrypoint: entrypoint?,
            parameters: parameters?,
            environment_variables: env?,
            working_directory: working_directory?,
        })
    }

    fn optional_strings(&mut self, f: &Fields, field: &str, path: &str) -> Option<Vec<String>> {
        match f.get(field) {
            None => Some(Vec::new()),
            Some(n) => self.strings(n, &join(path, field)),
        }
    }

    /// Docker's `KEY=value` list (a mapping is accepted too and written as a list).
    fn docker_env(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        let pairs: Vec<String> = match &node.value {
            Value::Map(_) => self
                .env_map(node, path)?
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            _ => {
                let items = self.seq(node, path, "`NAME=value` strings")?;
                let mut out = Vec::new();
                let mut seen = BTreeMap::new();
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    let Some(s) = self.string(item, &p) else {
                        continue;
                    };
                    if let Some((k, _)) = self.rule(&p, item, rules::check_env_pair(&s))
                        && seen.insert(k.to_string(), ()).is_some()
                    {
                        self.error(&p, item, format!("`{k}` is set twice: keep one"));
                    }
                    out.push(s);
                }
                out
            }
        };
        Some(pairs)
    }

    /// A mapping of environment variable names to values.
    fn env_map(&mut self, node: &Node, path: &str) -> Option<BTreeMap<String, String>> {
        let map = self.string_map(node, path)?;
        let mut ok = true;
        for (k, v) in &map {
            let p = join(path, k);
            ok &= self.rule(&p, node, rules::check_env_name(k)).is_some();
            ok &= self.rule(&p, node, rules::check_env_value(v)).is_some();
        }
        ok.then_some(map)
    }

    fn wasm(&mut self, node: &Node, path: &str) -> Option<WasmParams> {
        let f = self.fields(
            node,
            path,
            &[
                "EntryModule",
                "Entrypoint",
                "Parameters",
                "EnvironmentVariables",
                "ImportModules",
            ],
        )?;
        let entry_module = match f.get("EntryModule") {
            None => {
                self.error(
                    &join(path, "EntryModule"),
                    node,
                    "EntryModule is missing: give the module's source, e.g. \
                     `EntryModule: {Source: {Type: ipfs, Params: {CID: bafk...}}}`",
                );
                None
            }
            Some(n) if matches!(&n.value, Value::Scalar { .. }) => {
                let p = join(path, "EntryModule");
                let module_path = self.string(n, &p)?;
                // Bacalhau reads a relative path from the task's root
                // (its own testdata names `wasm.main` for `/wasm.main`).
                let module_path = if module_path.starts_with('/') || module_path.trim().is_empty() {
                    module_path
                } else {
                    format!("/{module_path}")
                };
                let module_path = self.rule(&p, n, rules::check_absolute_path(&module_path))?;
                self.module_path = Some(ModulePath {
                    path: module_path,
                    field: p,
                    node: n.clone(),
                });
                // Stands in until the task's inputs are read (`task`
                // replaces it, or reports why it cannot).
                Some(ModuleSource {
                    source: Source::Local(LocalSource {
                        source_path: String::new(),
                        read_write: false,
                    }),
                })
            }
            Some(n) => self.module(n, &join(path, "EntryModule")),
        };
        let entrypoint = match f.get("Entrypoint") {
            None => Some(DEFAULT_WASM_ENTRYPOINT.to_string()),
            Some(n) => {
                let p = join(path, "Entrypoint");
                let s = self.string(n, &p)?;
                self.rule(&p, n, rules::check_wasm_entrypoint(&s))
                    .map(|()| s)
            }
        };
        let parameters = self.optional_strings(&f, "Parameters", path);
        let env = match f.get("EnvironmentVariables") {
            None => Some(BTreeMap::new()),
            Some(n) => self.env_map(n, &join(path, "EnvironmentVariables")),
        };
        if let Some(n) = f.get("ImportModules")
            && !matches!(&n.value, Value::Seq(items) if items.is_empty())
        {
            self.error(
                &join(path, "ImportModules"),
                n,
                "ImportModules is not supported: link the modules into one \
                     (e.g. with wasm-merge) and give it as EntryModule",
            );
        }
        Some(WasmParams {
            entry_module: entry_module?,
            entrypoint: entrypoint?,
            parameters: parameters?,
            environment_variables: env?,
        })
    }

    fn module(&mut self, node: &Node, path: &str) -> Option<ModuleSource> {
        let f = self.fields(node, path, &["Source", "Target", "Alias"])?;
        for field in ["Target", "Alias"] {
            if let Some(n) = f.get(field).filter(|n| !is_blank(n)) {
                self.error(
                    &join(path, field),
                    n,
                    format!(
                        "the entry module is loaded by the node, not mounted: remove {field} \
                         (list the file in InputSources too if the job reads it)"
                    ),
                );
            }
        }
        let Some(source) = f.get("Source") else {
            self.error(&join(path, "Source"), node, "Source is missing");
            return None;
        };
        let source = self.source(source, &join(path, "Source"))?;
        Some(ModuleSource { source })
    }

    fn inputs(&mut self, node: &Node, path: &str) -> Option<Vec<InputSource>> {
        let items = self.seq(node, path, "input sources")?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.input(item, &format!("{path}[{i}]")) {
                Some(input) => out.push(input),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn input(&mut self, node: &Node, path: &str) -> Option<InputSource> {
        let f = self.fields(node, path, &["Source", "Target", "Alias"])?;
        let source = match f.get("Source") {
            None => {
                self.error(
                    &join(path, "Source"),
                    node,
                    "Source is missing: say where the data comes from",
                );
                None
            }
            Some(n) => self.source(n, &join(path, "Source")),
        };
        let target = match f.get("Target") {
            None => Some(DEFAULT_INPUT_TARGET.to_string()),
            Some(n) => {
                let p = join(path, "Target");
                let s = self.string(n, &p)?;
                self.rule(&p, n, rules::check_absolute_path(&s))
            }
        };
        let alias = match f.get("Alias") {
            None => Some(None),
            Some(n) => self.text(n, &join(path, "Alias")).map(Some),
        };
        Some(InputSource {
            source: source?,
            target: target?,
            alias: alias?,
        })
    }

    fn source(&mut self, node: &Node, path: &str) -> Option<Source> {
        let (t, type_node, params) = self.typed(node, path)?;
        let ppath = join(path, "Params");
        let kind = t.to_ascii_lowercase();
        let fields: &[&'static str] = match kind.as_str() {
            "ipfs" | "cid" => &["CID"],
            "urldownload" | "url" => &["URL"],
            "inline" => &["URL"],
            "localdirectory" | "local" => &["SourcePath", "ReadWrite"],
            "s3" => &[
                "Bucket",
                "Key",
                "Filter",
                "Endpoint",
                "Region",
                "VersionID",
                "ChecksumSHA256",
                "Partition",
            ],
            // A presigned URL is an https URL: its SourceSpec only says
            // what it was signed for.
            "s3presigned" => &["PreSignedURL", "SourceSpec"],
            _ => {
                self.error(
                    &join(path, "Type"),
                    type_node,
                    format!(
                        "`{t}` is not an input type: write `ipfs` (a CID), `urlDownload`, \
                         `inline`, `localDirectory`, `s3` or `s3PreSigned`"
                    ),
                );
                return None;
            }
        };
        let Some(params) = params else {
            self.error(
                &ppath,
                node,
                format!("Params is missing: this source needs {}", fields[0]),
            );
            return None;
        };
        let f = self.fields(params, &ppath, fields)?;
        let required = |d: &mut Decoder, name: &str| -> Option<(String, &Node)> {
            let p = join(&ppath, name);
            match f.get(name) {
                None => {
                    d.error(&p, params, format!("{name} is missing"));
                    None
                }
                Some(n) => d.string(n, &p).map(|s| (s, n)),
            }
        };
        match kind.as_str() {
            "ipfs" | "cid" => {
                let (s, n) = required(self, "CID")?;
                match s.trim().parse() {
                    Ok(cid) => {
                        let p = join(&ppath, "CID");
                        self.rule(&p, n, rules::check_content_cid(&cid))?;
                        Some(Source::Cid(CidSource { cid }))
                    }
                    Err(e) => {
                        self.error(
                            &join(&ppath, "CID"),
                            n,
                            format!("`{s}` is not a CID ({e}): `skrei add` prints one, e.g. `bafkr4i...`"),
                        );
                        None
                    }
                }
            }
            "urldownload" | "url" => {
                let (s, n) = required(self, "URL")?;
                let url = self.rule(&join(&ppath, "URL"), n, rules::check_url(&s))?;
                Some(Source::Url(UrlSource { url }))
            }
            "inline" => {
                let (s, n) = required(self, "URL")?;
                self.rule(&join(&ppath, "URL"), n, rules::check_data_url(&s))?;
                Some(Source::Inline(InlineSource { url: s }))
            }
            "s3presigned" => {
                let (s, n) = required(self, "PreSignedURL")?;
                let url = self.rule(&join(&ppath, "PreSignedURL"), n, rules::check_url(&s))?;
                Some(Source::Url(UrlSource { url }))
            }
            "s3" => {
                let (bucket, _) = required(self, "Bucket")?;
                let get = |d: &mut Decoder, name: &str| match f.get(name) {
                    None => Some(None),
                    Some(n) => d.text(n, &join(&ppath, name)).map(Some),
                };
                for unsupported in ["VersionID", "ChecksumSHA256", "Partition"] {
                    if let Some(n) = f.get(unsupported)
                        && !matches!(&n.value, Value::Scalar { text, .. } if text.is_empty())
                    {
                        self.error(
                            &join(&ppath, unsupported),
                            n,
                            format!(
                                "{unsupported} is not supported for S3 inputs: the node reads \
                                 the objects' latest versions; leave it out"
                            ),
                        );
                        return None;
                    }
                }
                let source = Source::S3(S3Source {
                    bucket,
                    key: get(self, "Key")?.unwrap_or_default(),
                    filter: get(self, "Filter")?.filter(|f| !f.is_empty()),
                    endpoint: get(self, "Endpoint")?.filter(|e| !e.is_empty()),
                    region: get(self, "Region")?.filter(|r| !r.is_empty()),
                });
                self.rule(&ppath, params, rules::check_source(&source))?;
                Some(source)
            }
            _ => {
                let (s, n) = required(self, "SourcePath")?;
                let read_write = match f.get("ReadWrite") {
                    Some(rw) => self.bool(rw, &join(&ppath, "ReadWrite"))?,
                    None => false,
                };
                let source = Source::Local(LocalSource {
                    source_path: s,
                    read_write,
                });
                self.rule(&join(&ppath, "SourcePath"), n, rules::check_source(&source))?;
                Some(source)
            }
        }
    }

    fn result_paths(&mut self, node: &Node, path: &str) -> Option<Vec<ResultPath>> {
        let items = self.seq(node, path, "result paths")?;
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(f) = self.fields(item, &p, &["Name", "Path"]) else {
                ok = false;
                continue;
            };
            let name = match f.get("Name") {
                None => {
                    self.error(
                        &join(&p, "Name"),
                        item,
                        "Name is missing: e.g. `Name: outputs`",
                    );
                    None
                }
                Some(n) => {
                    // Bacalhau takes any non-blank name (`/outputs`): it
                    // becomes a folder name of its own, never a path.
                    let s = self
                        .string(n, &join(&p, "Name"))
                        .map(|s| rules::result_folder_name(&s));
                    s.and_then(|s| {
                        self.rule(&join(&p, "Name"), n, rules::check_result_name(&s))
                            .map(|()| s)
                    })
                }
            };
            let rpath = match f.get("Path") {
                None => {
                    self.error(
                        &join(&p, "Path"),
                        item,
                        "Path is missing: e.g. `Path: /outputs`",
                    );
                    None
                }
                Some(n) => {
                    let s = self.string(n, &join(&p, "Path"));
                    s.and_then(|s| self.rule(&join(&p, "Path"), n, rules::check_absolute_path(&s)))
                }
            };
            match (name, rpath) {
                (Some(name), Some(path)) => out.push(ResultPath { name, path }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn publisher(&mut self, node: &Node, path: &str) -> Option<Publisher> {
        let (t, type_node, params) = self.typed(node, path)?;
        let ppath = join(path, "Params");
        match t.to_ascii_lowercase().as_str() {
            "local" => {
                // Bacalhau's local publisher ignores its Params (files
                // carry `TargetPath`): said, not refused.
                if let Some(p) = params
                    && matches!(&p.value, Value::Map(entries) if !entries.is_empty())
                {
                    self.notices.push(JobError {
                        path: ppath.clone(),
                        location: Some(p.at),
                        message: "the local publisher takes no Params; these are ignored (results \
                                  stay on the node that ran the job, fetched with `skrei job get`)"
                            .into(),
                    });
                }
                Some(Publisher::Local)
            }
            "dir" => {
                let Some(p) = params else {
                    self.error(
                        &ppath,
                        node,
                        "Params is missing: the dir publisher needs Path",
                    );
                    return None;
                };
                let f = self.fields(p, &ppath, &["Path"])?;
                let Some(n) = f.get("Path") else {
                    self.error(&join(&ppath, "Path"), p, "Path is missing");
                    return None;
                };
                let publisher = Publisher::Dir(DirPublisher {
                    path: self.string(n, &join(&ppath, "Path"))?,
                });
                self.rule(&join(&ppath, "Path"), n, rules::check_publisher(&publisher))?;
                Some(publisher)
            }
            "s3" => {
                let Some(p) = params else {
                    self.error(
                        &ppath,
                        node,
                        "Params is missing: the s3 publisher needs Bucket",
                    );
                    return None;
                };
                let f = self.fields(
                    p,
                    &ppath,
                    &["Bucket", "Key", "Endpoint", "Region", "Encoding"],
                )?;
                if let Some(n) = f.get("Encoding") {
                    let e = self.string(n, &join(&ppath, "Encoding"))?;
                    if !e.eq_ignore_ascii_case("plain") && !e.is_empty() {
                        self.error(
                            &join(&ppath, "Encoding"),
                            n,
                            format!(
                                "the `{e}` encoding is not offered: results are uploaded file \
                                 by file, as `plain`; write `plain` or leave Encoding out"
                            ),
                        );
                        return None;
                    }
                }
                let Some(bucket) = f.get("Bucket") else {
                    self.error(&join(&ppath, "Bucket"), p, "Bucket is missing");
                    return None;
                };
                let get = |d: &mut Decoder, name: &str| match f.get(name) {
                    None => Some(None),
                    Some(n) => d.text(n, &join(&ppath, name)).map(Some),
                };
                let publisher = Publisher::S3(S3Publisher {
                    bucket: self.string(bucket, &join(&ppath, "Bucket"))?,
                    key: get(self, "Key")?.unwrap_or_default(),
                    endpoint: get(self, "Endpoint")?,
                    region: get(self, "Region")?,
                });
                self.rule(&ppath, p, rules::check_publisher(&publisher))?;
                Some(publisher)
            }
            "ipfs" => {
                self.error(
                    &join(path, "Type"),
                    type_node,
                    "the ipfs publisher is not supported: write `local` (results are \
                     content-addressed and fetched by CID) or `s3`",
                );
                None
            }
            _ => {
                self.error(
                    &join(path, "Type"),
                    type_node,
                    if ["noop", "s3managed"]
                        .iter()
                        .any(|b| t.eq_ignore_ascii_case(b))
                    {
                        format!(
                            "`{t}` is a Bacalhau publisher skrei does not offer: write `local` \
                             (the default: results stay on the node, fetched by CID), `dir` or \
                             `s3`"
                        )
                    } else {
                        format!("`{t}` is not a publisher: write `local`, `dir` or `s3`")
                    },
                );
                None
            }
        }
    }

    fn resources(&mut self, node: &Node, path: &str) -> Option<Resources> {
        let f = self.fields(node, path, &["CPU", "Memory", "Disk", "GPU"])?;
        if let Some(n) = f.get("GPU") {
            match &n.value {
                Value::Scalar { text, .. } if text == "0" || text.is_empty() => {}
                _ => self.error(
                    &join(path, "GPU"),
                    n,
                    "GPUs are not supported yet: remove GPU or set it to 0",
                ),
            }
        }
        let cpu = match f.get("CPU") {
            None => Some(None),
            Some(n) => {
                let p = join(path, "CPU");
                let s = self.string(n, &p)?;
                self.rule(&p, n, s.parse::<MilliCpu>().map_err(|e| e.to_string()))
                    .map(Some)
            }
        };
        let size = |d: &mut Decoder, name: &str| match f.get(name) {
            None => Some(None),
            Some(n) => {
                let p = join(path, name);
                let s = d.string(n, &p)?;
                d.rule(&p, n, s.parse::<ByteSize>().map_err(|e| e.to_string()))
                    .map(Some)
            }
        };
        let memory = size(self, "Memory");
        let disk = size(self, "Disk");
        Some(Resources {
            cpu: cpu?,
            memory: memory?,
            disk: disk?,
        })
    }

    fn network(&mut self, node: &Node, path: &str) -> Option<Network> {
        if let Value::Map(entries) = &node.value
            && let Some((key, _)) = entries.iter().find(|(k, _)| {
                matches!(&k.value, Value::Scalar { text, .. } if text.eq_ignore_ascii_case("Ports"))
            })
        {
            self.error(
                &join(path, "Ports"),
                key,
                "Ports are not offered: a job's network reaches out, nothing reaches in; \
                 remove Ports",
            );
            return None;
        }
        let f = self.fields(node, path, &["Type", "Domains"])?;
        let mode = match f.get("Type") {
            None => Some(NetworkMode::None),
            Some(n) => {
                let t = self.string(n, &join(path, "Type"))?;

                match t.to_ascii_lowercase().as_str() {
                    // Bacalhau's `Default` (and an empty Type) is no network.
                    "none" | "default" | "" => Some(NetworkMode::None),
                    "http" => Some(NetworkMode::Http),
                    // What Bacalhau calls a bridge is what Full gives: a
                    // network of the job's own, nothing of the host's.
                    "full" | "bridge" => Some(NetworkMode::Full),
                    "host" => {
                        self.error(
                            &join(path, "Type"),
                            n,
                            "Host networking is never offered (a job could reach the node's own \
                             services): write `Full` for unfiltered networking on its own bridge",
                        );
                        None
                    }
                    _ => {
                        self.error(
                            &join(path, "Type"),
                            n,
                            format!("`{t}` is not a network type: write `None`, `HTTP` or `Full`"),
                        );
                        None
                    }
                }
            }
        };
        let domains = match f.get("Domains") {
            None => Some(DomainSet::default()),
            Some(n) => {
                let p = join(path, "Domains");
                let entries = self.strings(n, &p)?;
                match DomainSet::parse(&entries) {
                    Ok(set) => Some(set),
                    Err(errors) => {
                        let items = match &n.value {
                            Value::Seq(items) => items.as_slice(),
                            _ => &[],
                        };
                        for e in errors {
                            let at = items.get(e.index).unwrap_or(n);
                            self.error(&format!("{p}[{}]", e.index), at, e.error.to_string());
                        }
                        None
                    }
                }
            }
        };
        let network = Network {
            r#type: mode?,
            domains: domains?,
        };
        self.rule(path, node, rules::check_network(&network))?;
        Some(network)
    }

    fn timeouts(&mut self, node: &Node, path: &str) -> Option<Timeouts> {
        let f = self.fields(
            node,
            path,
            &["ExecutionTimeout", "QueueTimeout", "TotalTimeout"],
        )?;
        let secs = |d: &mut Decoder, name: &str| match f.get(name) {
            None => Some(None),
            Some(n) => {
                let p = join(path, name);
                // Bacalhau reads 0 as "not set".
                match d.uint(n, &p, "seconds")? {
                    0 => Some(None),
                    s => d
                        .rule(&p, n, rules::check_timeout_secs(s))
                        .map(|()| Some(s)),
                }
            }
        };
        let execution = secs(self, "ExecutionTimeout");
        let queue = secs(self, "QueueTimeout");
        let total = secs(self, "TotalTimeout");
        Some(Timeouts {
            execution_timeout: execution?,
            queue_timeout: queue?,
            total_timeout: total?,
        })
    }
}

/// "unknown field" with the closest known field, when one is close.
fn unknown_field(key: &str, fields: &[&str]) -> String {
    let lower = key.to_ascii_lowercase();
    let closest = fields
        .iter()
        .map(|f| (strsim::levenshtein(&lower, &f.to_ascii_lowercase()), f))
        .min();
    let expected = if fields.is_empty() {
        "this mapping takes no fields".to_string()
    } else {
        format!("expected one of: {}", fields.join(", "))
    };
    match closest {
        Some((distance, f)) if distance <= 2 || (distance <= 3 && key.len() > 8) => {
            format!("unknown field `{key}`: did you mean `{f}`? ({expected})")
        }
        _ => format!("unknown field `{key}` ({expected})"),
    }
}
