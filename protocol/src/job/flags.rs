//! Jobs from command-line flags (`skrei docker run`, `skrei wasm run`), with
//! Bacalhau's flag spellings. The binary reads files and turns them into
//! values; everything here is pure, and the result passes the same rules as
//! a job file.

use std::collections::BTreeMap;

use super::rules;
use super::{
    ByteSize, CidSource, DEFAULT_INPUT_TARGET, DEFAULT_OUTPUT, DEFAULT_WASM_ENTRYPOINT,
    DirPublisher, DockerParams, Engine, InlineSource, InputSource, JobError, JobErrors, JobSpec,
    JobType, LocalSource, MilliCpu, ModuleSource, Network, NetworkMode, Publisher, Resources,
    ResultPath, S3Publisher, S3Source, Source, Task, Timeouts, UrlSource, WasmParams,
};
use crate::domain::DomainSet;

/// The engine part of a run command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineFlags {
    /// `skrei docker run [--entrypoint E]... [-w DIR] IMAGE [-- CMD...]`
    Docker {
        image: String,
        entrypoint: Vec<String>,
        args: Vec<String>,
        workdir: Option<String>,
    },
    /// `skrei wasm run [--entry-point F] MODULE [-- ARGS...]`; the binary has
    /// already turned MODULE into a source (see [`module_source`]).
    Wasm {
        module: Source,
        entrypoint: Option<String>,
        args: Vec<String>,
    },
}

/// Everything a run command says about a job, as typed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunFlags {
    pub name: Option<String>,
    pub count: Option<u32>,
    /// `--network none|http|full`
    pub network: Option<String>,
    /// `--domain D`, repeatable
    pub domains: Vec<String>,
    /// `-i/--input`: `CID`, `CID:/target`, `ipfs://CID[:/target]`, an
    /// http(s) URL, `file:///path[:/target]`, `s3://bucket/key` (a key
    /// ending in `/` or `*` is a prefix), or `src=...,dst=/target[,opt=region=R]`
    pub inputs: Vec<String>,
    /// `-o/--output NAME:/path`; `outputs:/outputs` when none is given
    pub outputs: Vec<String>,
    /// `-p/--publisher local | dir:PATH | s3://bucket/prefix`
    pub publisher: Option<String>,
    /// `-e/--env NAME=value`, repeatable
    pub env: Vec<String>,
    /// `-l/--labels key=value`, repeatable
    pub labels: Vec<String>,
    /// `-s/--constraints SELECTOR`, repeatable: which nodes' labels may
    /// run it (`region=eu,gpu`)
    pub constraints: Vec<String>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub disk: Option<String>,
    /// `--timeout SECONDS`
    pub timeout: Option<u64>,
    /// `--queue-timeout SECONDS`: how long the job may wait for a node
    pub queue_timeout: Option<u64>,
    /// `--target any|all` (Bacalhau's): `all` makes an ops job, run once
    /// on every node that accepts it; `any` (the default) a batch job.
    pub target: Option<String>,
    /// `--namespace NAME`
    pub namespace: Option<String>,
    /// `--task-name NAME` (`main` by default)
    pub task_name: Option<String>,
}

/// Builds and checks the job the flags describe.
pub fn build(engine: EngineFlags, flags: &RunFlags) -> Result<JobSpec, JobErrors> {
    let mut errors = Vec::new();
    let mut fail = |flag: &str, message: String| {
        errors.push(JobError {
            path: flag.to_string(),
            location: None,
            message,
        })
    };

    let mode = match flags
        .network
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("none") => NetworkMode::None,
        Some("http") => NetworkMode::Http,
        Some("full") => NetworkMode::Full,
        Some(other) => {
            fail(
                "--network",
                format!("`{other}` is not a network mode: write none, http or full"),
            );
            NetworkMode::None
        }
    };
    let domains = match DomainSet::parse(&flags.domains) {
        Ok(set) => set,
        Err(errs) => {
            for e in errs {
                fail("--domain", e.error.to_string());
            }
            DomainSet::default()
        }
    };
    let mut inputs = Vec::new();
    for spec in &flags.inputs {
        match parse_input(spec) {
            Ok(input) => inputs.push(input),
            Err(m) => fail("--input", m),
        }
    }
    let mut result_paths = Vec::new();
    let outputs: Vec<String> = if flags.outputs.is_empty() {
        vec![format!("{}:{}", DEFAULT_OUTPUT.0, DEFAULT_OUTPUT.1)]
    } else {
        flags.outputs.clone()
    };
    for spec in &outputs {
        match parse_output(spec) {
            Ok(r) => result_paths.push(r),
            Err(m) => fail("--output", m),
        }
    }
    let publisher = match flags.publisher.as_deref() {
        None => Publisher::Local,
        Some(p) => parse_publisher(p).unwrap_or_else(|m| {
            fail("--publisher", m);
            Publisher::Local
        }),
    };
    let mut env_pairs = Vec::new();
    for pair in &flags.env {
        match rules::check_env_pair(pair) {
            Ok(_) => env_pairs.push(pair.clone()),
            Err(m) => fail("--env", m),
        }
    }
    let mut labels = BTreeMap::new();
    for pair in &flags.labels {
        match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                labels.insert(k.to_string(), v.to_string());
            }
            _ => fail("--labels", format!("`{pair}`: write labels as `key=value`")),
        }
    }
    let mut constraints = Vec::new();
    for selector in &flags.constraints {
        match super::constraint::parse_selector(selector) {
            Ok(mut c) => constraints.append(&mut c),
            Err(m) => fail("--constraints", m),
        }
    }
    let mut resources = Resources::default();
    if let Some(c) = &flags.cpu {
        match c.parse::<MilliCpu>() {
            Ok(c) => resources.cpu = Some(c),
            Err(e) => fail("--cpu", e.to_string()),
        }
    }
    for (flag, value, slot) in [
        ("--memory", &flags.memory, &mut resources.memory),
        ("--disk", &flags.disk, &mut resources.disk),
    ] {
        if let Some(v) = value {
            match v.parse::<ByteSize>() {
                Ok(b) => *slot = Some(b),
                Err(e) => fail(flag, e.to_string()),
            }
        }
    }

    let engine = match engine {
        EngineFlags::Docker {
            image,
            entrypoint,
            args,
            workdir,
        } => {
            let working_directory = match workdir {
                None => None,
                Some(w) => match rules::check_absolute_path(&w) {
                    Ok(n) => Some(n),
                    Err(m) => {
                        fail("--workdir", m);
                        None
                    }
                },
            };
            Engine::Docker(DockerParams {
                image,
                entrypoint,
                parameters: args,
                environment_variables: env_pairs,
                working_directory,
            })
        }
        EngineFlags::Wasm {
            module,
            entrypoint,
            args,
        } => Engine::Wasm(WasmParams {
            entry_module: ModuleSource { source: module },
            entrypoint: entrypoint.unwrap_or_else(|| DEFAULT_WASM_ENTRYPOINT.to_string()),
            parameters: args,
            environment_variables: env_pairs
                .iter()
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }),
    };

    let r#type = match flags.target.as_deref() {
        None | Some("any") => JobType::Batch,
        Some("all") if flags.count.is_some_and(|c| c != 1) => {
            fail(
                "--count",
                "--target all runs once on every node that accepts the job: leave --count out"
                    .into(),
            );
            JobType::Ops
        }
        Some("all") => JobType::Ops,
        Some(other) => {
            fail(
                "--target",
                format!(
                    "`{other}` is not a target: write `any` (Count nodes) or `all` (every node \
                     that accepts the job)"
                ),
            );
            JobType::Batch
        }
    };
    if !errors.is_empty() {
        return Err(JobErrors(errors));
    }
    let spec = JobSpec {
        name: flags.name.clone(),
        namespace: flags.namespace.clone(),
        r#type,
        count: flags.count.unwrap_or(1),
        labels,
        meta: BTreeMap::new(),
        constraints,
        tasks: vec![Task {
            name: flags.task_name.clone().unwrap_or_else(|| "main".into()),
            engine,
            publisher,
            env: BTreeMap::new(),
            meta: BTreeMap::new(),
            input_sources: inputs,
            result_paths,
            resources,
            network: Network {
                r#type: mode,
                domains,
            },
            timeouts: Timeouts {
                execution_timeout: flags.timeout.filter(|t| *t > 0),
                queue_timeout: flags.queue_timeout.filter(|t| *t > 0),
                ..Timeouts::default()
            },
        }],
    };
    // Flag names read better than field paths in these messages.
    spec.validate().map_err(|JobErrors(errs)| {
        JobErrors(
            errs.into_iter()
                .map(|mut e| {
                    e.path = flag_for(&e.path).to_string();
                    e
                })
                .collect(),
        )
    })?;
    Ok(spec)
}

fn flag_for(path: &str) -> &'static str {
    let p = path.trim_start_matches("Tasks[0].");
    match () {
        _ if p.starts_with("Network") => "--network/--domain",
        _ if p.starts_with("InputSources") => "--input",
        _ if p.starts_with("ResultPaths") => "--output",
        _ if p.starts_with("Publisher") => "--publisher",
        _ if p.starts_with("Timeouts.QueueTimeout") => "--queue-timeout",
        _ if p.starts_with("Timeouts") => "--timeout",
        _ if p == "Namespace" => "--namespace",
        _ if p == "Name" && path.starts_with("Tasks[0]") => "--task-name",
        _ if p == "Count" => "--count",
        _ if p.starts_with("Engine.Params.Image") => "IMAGE",
        _ if p.starts_with("Engine.Params.EntryModule") => "MODULE",
        _ if p.starts_with("Engine.Params.Entrypoint") => "--entry-point",
        _ if p.starts_with("Engine.Params.Environment") => "--env",
        _ if p.starts_with("Engine.Params.WorkingDirectory") => "--workdir",
        _ if p.starts_with("Labels") => "--labels",
        _ if p.starts_with("Constraints") => "--constraints",
        _ if p == "Tasks[0]" => "--input/--output",
        _ => "the job",
    }
}

/// Reads one `-i/--input` value, in Bacalhau's forms: `CID`, `CID:/target`,
/// `ipfs://CID`, an http(s) URL, `file:///path[:/target]`, and key=value
/// lists: `src=SOURCE,dst=/target[,opt=KEY=VALUE]...` or `SOURCE,dst=/target`.
pub fn parse_input(spec: &str) -> Result<InputSource, String> {
    let listed = ["src=", "dst=", "opt="].iter().any(|k| spec.starts_with(k))
        || [",dst=", ",opt=", ",src="].iter().any(|k| spec.contains(k));
    if listed {
        return parse_input_list(spec);
    }
    if spec.starts_with("http://") || spec.starts_with("https://") {
        // A URL's own colons (ports) make `URL:/target` ambiguous: use
        // `URL,dst=/target`.
        return Ok(InputSource {
            source: parse_source(spec)?,
            target: DEFAULT_INPUT_TARGET.into(),
            alias: None,
        });
    }
    let (src, target) = match spec.rsplit_once(":/") {
        // `file:///x` and `ipfs://CID` contain `:/` too: a scheme's `://`
        // is no target.
        Some((s, t))
            if !s.is_empty()
                && !s.ends_with(':')
                && !s.ends_with("file")
                && !t.starts_with('/') =>
        {
            (s, format!("/{t}"))
        }
        _ => (spec, DEFAULT_INPUT_TARGET.to_string()),
    };
    Ok(InputSource {
        source: parse_source(src)?,
        target: rules::check_absolute_path(&target)?,
        alias: None,
    })
}

/// `src=SOURCE,dst=/target,opt=KEY=VALUE` (a leading `src=` may be left
/// out). Parts are split at `,src=`, `,dst=` and `,opt=` only, so a URL's
/// own commas stay in it.
fn parse_input_list(spec: &str) -> Result<InputSource, String> {
    let mut cuts: Vec<usize> = [",src=", ",dst=", ",opt="]
        .iter()
        .flat_map(|k| spec.match_indices(k).map(|(at, _)| at))
        .collect();
    cuts.sort_unstable();
    let mut parts = Vec::new();
    let mut start = 0;
    for cut in cuts {
        parts.push(&spec[start..cut]);
        start = cut + 1;
    }
    parts.push(&spec[start..]);
    let (mut src, mut dst, mut options) = (None, None, Vec::new());
    for (n, part) in parts.into_iter().enumerate() {
        if let Some(v) = part.strip_prefix("src=") {
            src.replace(v)
                .map_or(Ok(()), |_| Err(format!("`{spec}`: src= is given twice")))?;
        } else if let Some(v) = part.strip_prefix("dst=") {
            dst.replace(v)
                .map_or(Ok(()), |_| Err(format!("`{spec}`: dst= is given twice")))?;
        } else if let Some(v) = part.strip_prefix("opt=") {
            options.push(v);
        } else if n == 0 {
            src = Some(part);
        }
    }
    let src = src.ok_or_else(|| format!("`{spec}`: name the source with src=SOURCE"))?;
    let mut source = parse_source(src)?;
    for option in options {
        let (key, value) = option.split_once('=').unwrap_or((option, ""));
        match (key, &mut source) {
            ("rw", Source::Local(local)) => {
                local.read_write = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("`{spec}`: write opt=rw=true or opt=rw=false")),
                }
            }
            ("region", Source::S3(s3)) if !value.is_empty() => s3.region = Some(value.into()),
            ("endpoint", Source::S3(s3)) if !value.is_empty() => {
                s3.endpoint = Some(value.into());
                rules::check_source(&source)?;
            }
            _ => {
                return Err(format!(
                    "`{spec}`: option `{key}` (opt={option}) is not supported for this source: \
                     leave it out"
                ));
            }
        }
    }
    let target = rules::check_absolute_path(dst.unwrap_or(DEFAULT_INPUT_TARGET))?;
    Ok(InputSource {
        source,
        target,
        alias: None,
    })
}

/// A source named on the command line: a CID, `ipfs://CID`, an http(s) URL,
/// `file:///path` (a local path on the compute node), `s3://bucket/key` (on
/// the compute node's S3 endpoint) or a `data:` URL.
pub fn parse_source(src: &str) -> Result<Source, String> {
    if src.starts_with("http://") || src.starts_with("https://") {
        return Ok(Source::Url(UrlSource {
            url: rules::check_url(src)?,
        }));
    }
    if src.starts_with("data:") {
        rules::check_data_url(src)?;
        return Ok(Source::Inline(InlineSource { url: src.into() }));
    }
    if let Some(path) = src.strip_prefix("file://") {
        let source = Source::Local(LocalSource {
            source_path: path.into(),
            read_write: false,
        });
        rules::check_source(&source)?;
        return Ok(source);
    }
    if let Some(rest) = src.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let source = Source::S3(S3Source {
            bucket: bucket.into(),
            key: key.into(),
            filter: None,
            endpoint: None,
            region: None,
        });
        rules::check_source(&source)?;
        return Ok(source);
    }
    let cid_text = src.strip_prefix("ipfs://").unwrap_or(src);
    match cid_text.parse() {
        Ok(cid) => Ok(Source::Cid(CidSource { cid })),
        Err(_) => Err(format!(
            "`{src}` is neither a CID nor a URL: give a CID (`skrei add` prints one), an \
             http(s) URL, file:///path (a path on the compute node), s3://bucket/key, or \
             src=...,dst=/target"
        )),
    }
}

/// Turns `skrei wasm run MODULE`'s argument into a source. `local_file` is
/// the content of MODULE when it names a file on this machine (read by the
/// binary); small files travel inline, larger ones must be added first.
pub fn module_source(module: &str, local_file: Option<&[u8]>) -> Result<Source, String> {
    if let Some(bytes) = local_file {
        if bytes.len() > super::MAX_INLINE_BYTES {
            return Err(format!(
                "`{module}` is {} bytes, too large to send inline (limit {}): run \
                 `skrei add {module}` and pass the CID it prints",
                bytes.len(),
                super::MAX_INLINE_BYTES
            ));
        }
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        return Ok(Source::Inline(InlineSource {
            url: format!("data:application/wasm;base64,{encoded}"),
        }));
    }
    parse_source(module)
}

/// Reads one `-o/--output NAME:/path` value.
pub fn parse_output(spec: &str) -> Result<ResultPath, String> {
    let Some((name, path)) = spec.split_once(':') else {
        return Err(format!(
            "`{spec}`: write outputs as NAME:/path, e.g. `outputs:/outputs`"
        ));
    };
    rules::check_result_name(name)?;
    Ok(ResultPath {
        name: name.into(),
        path: rules::check_absolute_path(path)?,
    })
}

/// Reads `-p/--publisher`: `local`, `dir:PATH` or `s3://bucket/prefix`.
pub fn parse_publisher(spec: &str) -> Result<Publisher, String> {
    let publisher = if spec.eq_ignore_ascii_case("local") {
        Publisher::Local
    } else if let Some(path) = spec.strip_prefix("dir:") {
        Publisher::Dir(DirPublisher { path: path.into() })
    } else if let Some(rest) = spec.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        Publisher::S3(S3Publisher {
            bucket: bucket.into(),
            key: key.into(),
            endpoint: None,
            region: None,
        })
    } else if spec.eq_ignore_ascii_case("ipfs") {
        return Err(
            "the ipfs publisher is not supported: use `local` (results are content-addressed \
             and fetched by CID), `dir:PATH` or `s3://bucket/prefix`"
                .into(),
        );
    } else {
        return Err(format!(
            "`{spec}` is not a publisher: write `local`, `dir:PATH` or `s3://bucket/prefix`"
        ));
    };
    rules::check_publisher(&publisher)?;
    Ok(publisher)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "bafkr4ibp24ziu6ssli6qpyzhiztphyz6mzhmy4a723x22xw3szebfl56le";

    fn docker() -> EngineFlags {
        EngineFlags::Docker {
            image: "busybox".into(),
            entrypoint: vec![],
            args: vec!["echo".into(), "hi".into()],
            workdir: None,
        }
    }

    #[test]
    fn flags_build_the_same_job_a_file_would() {
        let flags = RunFlags {
            network: Some("HTTP".into()),
            domains: vec![".Example.com".into(), "api.example.com".into()],
            inputs: vec![
                format!("{CID}:/inputs/data"),
                "src=https://x.org/a.csv,dst=/inputs/a.csv".into(),
            ],
            env: vec!["A=1".into()],
            ..RunFlags::default()
        };
        let spec = build(docker(), &flags).unwrap();
        let file = format!(
            r#"
Tasks:
  - Engine:
      Type: docker
      Params: {{Image: busybox, Parameters: [echo, hi], EnvironmentVariables: ["A=1"]}}
    Network: {{Type: HTTP, Domains: [.example.com]}}
    InputSources:
      - {{Source: {{Type: ipfs, Params: {{CID: {CID}}}}}, Target: /inputs/data}}
      - {{Source: {{Type: urlDownload, Params: {{URL: "https://x.org/a.csv"}}}}, Target: /inputs/a.csv}}
    ResultPaths: [{{Name: outputs, Path: /outputs}}]
"#
        );
        assert_eq!(spec, JobSpec::parse(&file).unwrap());
    }

    #[test]
    fn input_forms() {
        let t = |s: &str| parse_input(s).map(|i| (i.source.describe(), i.target));
        assert_eq!(t(CID).unwrap(), (format!("cid {CID}"), "/inputs".into()));
        assert_eq!(
            t(&format!("ipfs://{CID}:/data")).unwrap(),
            (format!("cid {CID}"), "/data".into())
        );
        assert_eq!(
            t("https://x.org:8443/a?b=1").unwrap(),
            ("url https://x.org:8443/a?b=1".into(), "/inputs".into())
        );
        assert_eq!(
            t("src=https://x.org/a,dst=/in/a").unwrap(),
            ("url https://x.org/a".into(), "/in/a".into())
        );
        assert_eq!(
            t("file:///srv/data:/data").unwrap(),
            ("local path /srv/data".into(), "/data".into())
        );
        assert!(
            t("not-a-cid")
                .unwrap_err()
                .contains("neither a CID nor a URL")
        );
        assert!(t(&format!("{CID}:/a/../b")).unwrap_err().contains("`..`"));
    }

    // Issue 17: `-s/--constraints` as Bacalhau's CLI takes it.
    #[test]
    fn constraints_come_from_selectors() {
        let flags = RunFlags {
            constraints: vec!["region=eu,tier>2".into(), "gpu".into()],
            ..RunFlags::default()
        };
        let spec = build(docker(), &flags).unwrap();
        let shown: Vec<String> = spec.constraints.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["region=eu", "tier>2", "gpu exists"]);
        let flags = RunFlags {
            constraints: vec!["zone in a".into()],
            ..RunFlags::default()
        };
        let errors = build(docker(), &flags).unwrap_err();
        assert_eq!(errors.0[0].path, "--constraints", "{errors}");
    }

    #[test]
    fn bad_flags_name_the_flag() {
        let flags = RunFlags {
            network: Some("wifi".into()),
            domains: vec!["*.x.org".into()],
            publisher: Some("ipfs".into()),
            outputs: vec!["/outputs".into()],
            env: vec!["1A=b".into()],
            memory: Some("lots".into()),
            ..RunFlags::default()
        };
        let errors = build(docker(), &flags).unwrap_err();
        let flags: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            flags,
            [
                "--network",
                "--domain",
                "--output",
                "--publisher",
                "--env",
                "--memory"
            ],
            "{errors}"
        );
    }

    #[test]
    fn http_without_domains_is_refused_with_a_flag_hint() {
        let flags = RunFlags {
            network: Some("http".into()),
            ..RunFlags::default()
        };
        let errors = build(docker(), &flags).unwrap_err();
        assert_eq!(errors.0[0].path, "--network/--domain");
        assert!(errors.0[0].message.contains("Domains"), "{errors}");
    }

    #[test]
    fn wasm_modules_travel_inline_when_small() {
        let src = module_source("hello.wasm", Some(b"\0asm\x01\0\0\0")).unwrap();
        assert!(
            matches!(&src, Source::Inline(i) if i.url.starts_with("data:application/wasm;base64,"))
        );
        let big = vec![0u8; super::super::MAX_INLINE_BYTES + 1];
        assert!(
            module_source("big.wasm", Some(&big))
                .unwrap_err()
                .contains("skrei add")
        );
        assert!(matches!(module_source(CID, None).unwrap(), Source::Cid(_)));
    }

    #[test]
    fn publishers() {
        assert_eq!(parse_publisher("local").unwrap(), Publisher::Local);
        assert!(matches!(
            parse_publisher("dir:/srv/results").unwrap(),
            Publisher::Dir(_)
        ));
        let Publisher::S3(s3) = parse_publisher("s3://results/jobs/x").unwrap() else {
            panic!()
        };
        assert_eq!((s3.bucket.as_str(), s3.key.as_str()), ("results", "jobs/x"));
        assert!(parse_publisher("dir:relative").is_err());
        assert!(parse_publisher("s3://A").is_err());
    }

    // Issue 17: Bacalhau's -i forms: key=value lists (src, dst, opt), a URL
    // with `,dst=`, and S3 and options refused by name instead of landing in
    // the target.
    #[test]
    fn bacalhau_input_forms() {
        let t = |s: &str| parse_input(s).map(|i| (i.source.describe(), i.target));
        assert_eq!(
            t("https://example.com/a.csv?x=1,2,dst=/data/a.csv").unwrap(),
            (
                "url https://example.com/a.csv?x=1,2".to_string(),
                "/data/a.csv".to_string()
            )
        );
        assert_eq!(
            t(&format!("dst=/in,src=ipfs://{CID}")).unwrap().1,
            "/in".to_string()
        );
        assert_eq!(t(&format!("ipfs://{CID}")).unwrap().1, "/inputs");
        let err = t(&format!("src={CID},dst=/in,opt=region=us")).unwrap_err();
        assert!(err.contains("option `region`"), "{err}");
        let rw = parse_input("src=file:///data,dst=/in,opt=rw=true").unwrap();
        assert!(matches!(
            rw.source,
            Source::Local(LocalSource {
                read_write: true,
                ..
            })
        ));
        let err = t("src=file:///data,dst=/in,opt=rw=yes").unwrap_err();
        assert!(err.contains("opt=rw=true"), "{err}");
        let s3 = parse_input("src=s3://bucket/data/*,dst=/in,opt=region=eu-west-1").unwrap();
        assert_eq!(s3.target, "/in");
        let Source::S3(s3) = s3.source else {
            panic!("{s3:?}")
        };
        assert_eq!((s3.bucket.as_str(), s3.prefix()), ("bucket", Some("data/")));
        assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
        let err = t("s3://B/key").unwrap_err();
        assert!(err.contains("bucket name"), "{err}");
        let err = t("src=s3://bucket/k,opt=endpoint=ftp://x").unwrap_err();
        assert!(err.contains("Endpoint"), "{err}");
        assert!(t(&format!("src={CID},src={CID}")).is_err());
        assert!(t("dst=/in").unwrap_err().contains("src=SOURCE"));
    }

    // Issue 17: Bacalhau's --target all makes an ops job; a Count beside it
    // or another target is an error naming the flag.
    #[test]
    fn target_all_makes_an_ops_job() {
        let with = |target: &str, count: Option<u32>| RunFlags {
            target: Some(target.into()),
            count,
            ..RunFlags::default()
        };
        assert_eq!(
            build(docker(), &with("all", None)).unwrap().r#type,
            JobType::Ops
        );
        assert_eq!(
            build(docker(), &with("any", None)).unwrap().r#type,
            JobType::Batch
        );
        let err = build(docker(), &with("all", Some(3)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("leave --count out"), "{err}");
        let err = build(docker(), &with("some", None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`some` is not a target"), "{err}");
    }

    // Issue 17: --namespace, --task-name and --queue-timeout reach the job.
    #[test]
    fn namespace_task_name_and_queue_timeout_flags() {
        let flags = RunFlags {
            namespace: Some("team".into()),
            task_name: Some("crunch".into()),
            queue_timeout: Some(30),
            ..RunFlags::default()
        };
        let spec = build(docker(), &flags).unwrap();
        assert_eq!(spec.namespace.as_deref(), Some("team"));
        assert_eq!(spec.tasks[0].name, "crunch");
        assert_eq!(spec.tasks[0].timeouts.queue_timeout, Some(30));
    }
}
