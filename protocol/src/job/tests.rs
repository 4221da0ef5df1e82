//! Job files: the examples, the bad files under `tests/bad-jobs/`, and the
//! properties of the reader (R-JOB-1, R-JOB-2).

use std::path::{Path, PathBuf};

use super::*;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn examples() -> Vec<PathBuf> {
    let dir = manifest_dir().join("../examples/jobs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "json"))
        .collect();
    files.sort();
    files
}

fn parse_file(path: &Path) -> Result<JobSpec, JobErrors> {
    JobSpec::parse(&std::fs::read_to_string(path).unwrap())
}

const MINIMAL: &str =
    "Tasks:\n  - Engine:\n      Type: docker\n      Params:\n        Image: busybox\n";

#[test]
fn every_example_parses_and_its_normalised_form_is_a_fixed_point() {
    // R-JOB-2: the examples cover each engine in each network mode.
    let mut seen = std::collections::BTreeSet::new();
    for path in examples() {
        let spec = parse_file(&path).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
        seen.insert((spec.task().engine.kind(), spec.task().network.r#type));
        let json = spec.to_json_pretty();
        let again = JobSpec::parse(&json).unwrap_or_else(|e| panic!("{json}\n{e}"));
        assert_eq!(again, spec, "{}", path.display());
        let strict: JobSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(strict, spec);
    }
    for engine in ["docker", "wasm"] {
        for mode in [NetworkMode::None, NetworkMode::Http, NetworkMode::Full] {
            assert!(
                seen.contains(&(engine, mode)),
                "no example for {engine} {mode}"
            );
        }
    }
}

#[test]
fn every_bad_job_fails_with_its_message_and_position() {
    // R-JOB-2: unknown fields and unsupported features are clear errors that
    // name the field and where it is.
    let dir = manifest_dir().join("tests/bad-jobs");
    let mut count = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{name}: no `# expect:` line"));
        let at = text
            .lines()
            .find_map(|l| l.strip_prefix("# at: "))
            .unwrap_or_else(|| panic!("{name}: no `# at:` line"));
        let (line, column) = at.split_once(':').unwrap();
        let want = Location {
            line: line.parse().unwrap(),
            column: column.parse().unwrap(),
        };
        count += 1;
        let errors = match JobSpec::parse(&text) {
            Ok(spec) => {
                failures.push(format!("{name}: parsed as {spec:?}"));
                continue;
            }
            Err(e) => e,
        };
        match errors.0.iter().find(|e| e.message.contains(expect)) {
            None => failures.push(format!(
                "{name}: no error contains {expect:?}; got:\n{errors}"
            )),
            Some(hit) if hit.location != Some(want) => {
                failures.push(format!("{name}: expected at {at}, got {hit}"))
            }
            Some(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(count >= 20, "only {count} bad job files");
}

#[test]
fn keys_match_in_any_case_as_bacalhau_does() {
    let upper = JobSpec::parse(MINIMAL).unwrap();
    let lower = JobSpec::parse(&MINIMAL.to_ascii_lowercase()).unwrap();
    let shouty = JobSpec::parse(
        "TASKS:\n  - ENGINE:\n      TYPE: DOCKER\n      PARAMS:\n        IMAGE: busybox\n",
    )
    .unwrap();
    assert_eq!(upper, lower);
    assert_eq!(upper, shouty);
}

#[test]
fn defaults_are_filled_in() {
    let spec = JobSpec::parse(MINIMAL).unwrap();
    assert_eq!(spec.count, 1);
    assert_eq!(spec.r#type, JobType::Batch);
    let task = spec.task();
    assert_eq!(task.name, "main");
    assert_eq!(task.network, Network::default());
    assert_eq!(task.publisher, Publisher::Local);
    assert!(task.result_paths.is_empty());
}

#[test]
fn bacalhau_fields_are_accepted() {
    let text = r#"
Name: compat
Namespace: default
Type: batch
Count: 1
Priority: 0
Constraints: []
Labels: {team: data}
Meta: {owner: me}
Tasks:
  - Name: main
    Engine:
      Type: docker
      Params:
        Image: ubuntu:24.04
        WorkingDirectory: /work/./x/
    InputSources:
      - Alias: data
        Target: /inputs/data
        Source:
          Type: localDirectory
          Params: {SourcePath: /srv/data, ReadWrite: false}
    Resources: {CPU: 0.5, Memory: 1gb, Disk: 10Gi, GPU: "0"}
    Timeouts: {ExecutionTimeout: 600, QueueTimeout: 0}
    Publisher: {Type: s3, Params: {Bucket: results, Key: "jobs/", Endpoint: "http://127.0.0.1:9000"}}
"#;
    let spec = JobSpec::parse(text).unwrap();
    let task = spec.task();
    assert_eq!(spec.labels["team"], "data");
    assert_eq!(task.input_sources[0].alias.as_deref(), Some("data"));
    assert_eq!(task.resources.cpu, Some(MilliCpu(500)));
    assert_eq!(task.resources.memory, Some(ByteSize(1_000_000_000)));
    assert_eq!(task.timeouts.execution_timeout, Some(600));
    assert_eq!(task.timeouts.queue_timeout, None, "0 means unset");
    let Engine::Docker(p) = &task.engine else {
        panic!()
    };
    assert_eq!(p.working_directory.as_deref(), Some("/work/x"));
}

#[test]
fn domains_are_normalised_on_submission() {
    // R-NET-5
    let text = format!(
        "{MINIMAL}    Network:\n      Type: http\n      Domains: [Example.COM., .example.com, api.example.com]\n"
    );
    let spec = JobSpec::parse(&text).unwrap();
    let domains: Vec<&str> = spec
        .task()
        .network
        .domains
        .iter()
        .map(|d| d.as_str())
        .collect();
    assert_eq!(domains, [".example.com"]);
}

#[test]
fn all_errors_are_reported_at_once_in_file_order() {
    let text = "Count: -1\nTasks:\n  - Engine:\n      Type: docker\n      Params:\n        Image: Busy Box\n    Netwrk: {}\n";
    let errors = JobSpec::parse(text).unwrap_err();
    assert_eq!(errors.0.len(), 3, "{errors}");
    let lines: Vec<usize> = errors.0.iter().map(|e| e.location.unwrap().line).collect();
    assert_eq!(lines, [1, 6, 7]);
    assert!(
        errors.0[2].message.contains("did you mean `Network`"),
        "{errors}"
    );
    assert_eq!(errors.0[2].path, "Tasks[0].Netwrk");
}

#[test]
fn oversized_files_are_refused_before_parsing() {
    let text = format!("Name: x\n#{}\n", "a".repeat(MAX_JOB_FILE_BYTES));
    let err = JobSpec::parse(&text).unwrap_err().to_string();
    assert!(err.contains("more than"), "{err}");
}

#[test]
fn inline_data_is_capped() {
    use base64::Engine as _;
    let big = base64::engine::general_purpose::STANDARD.encode(vec![0u8; MAX_INLINE_BYTES + 1]);
    let text = format!(
        "{MINIMAL}    InputSources:\n      - Source: {{Type: inline, Params: {{URL: \"data:;base64,{big}\"}}}}\n"
    );
    let err = JobSpec::parse(&text).unwrap_err().to_string();
    assert!(err.contains("skrei add"), "{err}");
}

#[test]
fn validate_rejects_what_the_wire_could_smuggle() {
    // Specs from the wire skip the file reader; validate applies the same rules.
    let mut spec = JobSpec::parse(MINIMAL).unwrap();
    spec.count = 0;
    spec.tasks[0].input_sources.push(InputSource {
        source: Source::Url(UrlSource {
            url: "file:///etc/passwd".into(),
        }),
        target: "/inputs/../etc".into(),
        alias: None,
    });
    spec.tasks[0].network.r#type = NetworkMode::Http;
    let errors = spec.validate().unwrap_err();
    let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"Count"), "{errors}");
    assert!(
        paths.contains(&"Tasks[0].InputSources[0].Source"),
        "{errors}"
    );
    assert!(
        paths.contains(&"Tasks[0].InputSources[0].Target"),
        "{errors}"
    );
    assert!(paths.contains(&"Tasks[0].Network"), "{errors}");
}

#[test]
fn strict_serde_rejects_unknown_and_non_canonical_fields() {
    let spec = JobSpec::parse(MINIMAL).unwrap();
    let mut value = serde_json::to_value(&spec).unwrap();
    value["Bogus"] = serde_json::json!(1);
    assert!(serde_json::from_value::<JobSpec>(value).is_err());
    let lower = serde_json::json!({"type": "batch", "count": 1, "tasks": []});
    assert!(serde_json::from_value::<JobSpec>(lower).is_err());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    const CIDS: &[&str] = &["bafkr4ibp24ziu6ssli6qpyzhiztphyz6mzhmy4a723x22xw3szebfl56le"];

    fn arb_text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 _.:/-]{0,12}"
    }

    fn arb_source() -> impl Strategy<Value = Source> {
        prop_oneof![
            Just(Source::Cid(CidSource {
                cid: CIDS[0].parse().unwrap()
            })),
            "[a-z]{1,8}".prop_map(|p| Source::Url(UrlSource {
                url: format!("https://data.example.com/{p}")
            })),
            Just(Source::Inline(InlineSource {
                url: "data:text/plain;base64,aGk=".into()
            })),
            ("[a-z]{1,8}", any::<bool>()).prop_map(|(p, read_write)| Source::Local(LocalSource {
                source_path: format!("/srv/{p}"),
                read_write,
            })),
        ]
    }

    fn arb_network() -> impl Strategy<Value = Network> {
        prop_oneof![
            Just(Network::default()),
            Just(Network {
                r#type: NetworkMode::Full,
                domains: DomainSet::default()
            }),
            proptest::collection::vec("\\.?[a-c]{1,2}\\.(com|org)", 1..4).prop_map(|d| Network {
                r#type: NetworkMode::Http,
                domains: DomainSet::parse(&d).unwrap()
            }),
        ]
    }

    prop_compose! {
        fn arb_job()(
            name in proptest::option::of(arb_text()),
            count in 1u32..=MAX_COUNT,
            docker in any::<bool>(),
            args in proptest::collection::vec(arb_text(), 0..3),
            env in proptest::collection::btree_map("[A-Z_]{1,6}", arb_text(), 0..3),
            sources in proptest::collection::vec(arb_source(), 0..3),
            module in arb_source(),
            network in arb_network(),
            cpu in proptest::option::of(1u64..4000),
            memory in proptest::option::of(1u64..(1 << 40)),
            timeout in proptest::option::of(1u64..=rules::MAX_TIMEOUT_SECS),
        ) -> JobSpec {
            let engine = if docker {
                Engine::Docker(DockerParams {
                    image: "busybox:1.36".into(),
                    entrypoint: vec![],
                    parameters: args,
                    environment_variables: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    working_directory: None,
                })
            } else {
                Engine::Wasm(WasmParams {
                    entry_module: ModuleSource { source: module },
                    entrypoint: DEFAULT_WASM_ENTRYPOINT.into(),
                    parameters: args,
                    environment_variables: env,
                })
            };
            JobSpec {
                name,
                namespace: None,
                r#type: JobType::Batch,
                count,
                labels: BTreeMap::new(),
                meta: BTreeMap::new(),
                constraints: Vec::new(),
                tasks: vec![Task {
                    name: "main".into(),
                    engine,
                    publisher: Publisher::Local,
                    env: BTreeMap::new(),
                    meta: BTreeMap::new(),
                    input_sources: sources
                        .into_iter()
                        .enumerate()
                        .map(|(i, source)| InputSource { source, target: format!("/inputs/{i}"), alias: None })
                        .collect(),
                    result_paths: vec![ResultPath { name: "outputs".into(), path: "/outputs".into() }],
                    resources: Resources { cpu: cpu.map(MilliCpu), memory: memory.map(ByteSize), disk: None },
                    network,
                    timeouts: Timeouts { execution_timeout: timeout, ..Timeouts::default() },
                }],
            }
        }
    }

    use std::collections::BTreeMap;

    proptest! {
        /// The normalised JSON of any valid job reads back as the same job,
        /// through the user-facing reader and the strict one alike.
        #[test]
        fn normalised_output_reads_back_identically(spec in arb_job()) {
            prop_assert_eq!(spec.validate(), Ok(()));
            let json = spec.to_json_pretty();
            prop_assert_eq!(&JobSpec::parse(&json).unwrap(), &spec);
            prop_assert_eq!(&serde_json::from_str::<JobSpec>(&json).unwrap(), &spec);
        }

        /// Junk never panics the reader; it is either a job or a list of errors.
        #[test]
        fn junk_never_panics(text in "\\PC{0,200}") {
            let _ = JobSpec::parse(&text);
        }

        /// Examples with one byte changed never panic the reader either.
        #[test]
        fn mutated_examples_never_panic(index in 0usize..6, at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let files = examples();
            let mut bytes = std::fs::read(&files[index % files.len()]).unwrap();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            if let Ok(text) = String::from_utf8(bytes) {
                let _ = JobSpec::parse(&text);
            }
        }
    }
}

#[test]
fn validate_names_meta_and_labels_apart() {
    let mut spec = JobSpec::parse(MINIMAL).unwrap();
    spec.meta.insert("note".into(), "bell\u{7}".into());
    spec.labels.insert("team".into(), "ok".into());
    let errors = spec.validate().unwrap_err();
    let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["Meta.note"], "{errors}");
}

#[test]
fn validate_checks_every_free_text_field_the_reader_checks() {
    let mut spec = JobSpec::parse(
        "Tasks:\n  - Engine: {Type: docker, Params: {Image: busybox}}\n    InputSources:\n      - {Source: {Type: urlDownload, Params: {URL: \"https://x.org/a\"}}, Target: /in}\n",
    )
    .unwrap();
    spec.namespace = Some("ns\u{0}".into());
    spec.tasks[0].meta.insert("k".into(), "\u{1b}[31m".into());
    spec.tasks[0].env.insert("A".into(), "nul\u{0}".into());
    spec.tasks[0].input_sources[0].alias = Some("a\u{7}".into());
    let errors = spec.validate().unwrap_err();
    let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "Namespace",
            "Tasks[0].Env.A",
            "Tasks[0].Meta.k",
            "Tasks[0].InputSources[0].Alias"
        ],
        "{errors}"
    );
}

// Issue 17: Bacalhau's files leave fields unset with empty strings, and
// name networks `Default` and `bridge`; these read as Bacalhau reads them.
#[test]
fn bacalhau_blank_fields_and_network_names_are_accepted() {
    let docker = |extra: &str, network: &str| {
        format!(
            "Type: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      Type: docker\n      \
             Params:\n        Image: busybox\n        WorkingDirectory: \"\"\n{extra}    \
             Network:\n      Type: {network}\n"
        )
    };
    let spec = JobSpec::parse(&docker("    Publisher: {Type: \"\"}\n", "bridge")).unwrap();
    let task = spec.task();
    assert_eq!(task.publisher, Publisher::Local);
    assert_eq!(task.network.r#type, NetworkMode::Full);
    let Engine::Docker(p) = &task.engine else {
        panic!()
    };
    assert_eq!(p.working_directory, None);
    let spec = JobSpec::parse(&docker(
        "    Publisher: {Type: \"\", Params: {}}\n",
        "Default",
    ))
    .unwrap();
    assert_eq!(spec.task().network.r#type, NetworkMode::None);
    assert_eq!(spec.task().publisher, Publisher::Local);
    // An empty Type with parameters is no "unset": it is refused.
    let errors = JobSpec::parse(&docker(
        "    Publisher: {Type: \"\", Params: {Bucket: b}}\n",
        "None",
    ))
    .unwrap_err();
    assert!(
        errors.to_string().contains("is not a publisher"),
        "{errors}"
    );
    // The WASM entry module's empty Target and Alias.
    let wasm = "Type: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      Type: wasm\n      \
                Params:\n        EntryModule:\n          Alias: \"\"\n          Target: \"\"\n          \
                Source:\n            Type: urlDownload\n            Params:\n              \
                URL: https://m.example.com/m.wasm\n";
    JobSpec::parse(wasm).unwrap();
    let named = wasm.replace("Target: \"\"", "Target: /module");
    let errors = JobSpec::parse(&named).unwrap_err();
    assert!(errors.to_string().contains("remove Target"), "{errors}");
}

// Issue 17: result names as Bacalhau takes them (any non-blank text) become
// folder names of their own, never paths; booleans may be quoted; the S3
// publisher's `plain` encoding is what skrei does, other encodings are
// refused by name.
// Issue 17: Bacalhau's S3 inputs: `s3` (bucket, key or prefix, region,
// endpoint) and `s3PreSigned` (an https URL; its SourceSpec only says what
// it was signed for).
#[test]
fn bacalhau_s3_and_presigned_inputs_are_read() {
    let job = |source: &str| {
        format!(
            "Type: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      Type: docker\n      \
             Params:\n        Image: busybox\n    InputSources:\n      - Source:\n          \
             {source}\n        Target: /data\n"
        )
    };
    let spec = JobSpec::parse(&job(
        "Type: s3\n          Params: {Bucket: my-bucket, Key: 'sets/2024/*', Region: eu-west-1, Endpoint: ''}",
    ))
    .unwrap();
    let Source::S3(s3) = &spec.task().input_sources[0].source else {
        panic!("{spec:?}")
    };
    assert_eq!(s3.prefix(), Some("sets/2024/"));
    assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
    assert_eq!(s3.endpoint, None);
    let one = S3Source {
        key: "sets/a.csv".into(),
        ..s3.clone()
    };
    assert_eq!(one.prefix(), None);
    let spec = JobSpec::parse(&job(
        "Type: s3PreSigned\n          Params:\n            PreSignedURL: \
         'https://objects.example.com/my-bucket/a.csv?X-Amz-Signature=abc'\n            \
         SourceSpec: {Bucket: my-bucket, Key: a.csv}",
    ))
    .unwrap();
    assert!(matches!(
        &spec.task().input_sources[0].source,
        Source::Url(u) if u.url.ends_with("/a.csv?X-Amz-Signature=abc")
    ));
    let errors = JobSpec::parse(&job(
        "Type: s3\n          Params: {Bucket: my-bucket, VersionID: '3'}",
    ))
    .unwrap_err();
    assert!(
        errors
            .to_string()
            .contains("VersionID is not supported for S3 inputs"),
        "{errors}"
    );
    let spec = JobSpec::parse(&job(
        "Type: s3\n          Params: {Bucket: logs, Key: 'app/', Filter: '.*\\.log$'}",
    ))
    .unwrap();
    let Source::S3(s3) = &spec.task().input_sources[0].source else {
        panic!("{spec:?}")
    };
    assert_eq!(s3.filter.as_deref(), Some(".*\\.log$"));
    let errors = JobSpec::parse(&job(
        "Type: s3\n          Params: {Bucket: logs, Key: 'a/../other-bucket/x'}",
    ))
    .unwrap_err();
    assert!(errors.to_string().contains("has `.` or `..`"), "{errors}");
    let errors = JobSpec::parse(&job(
        "Type: s3\n          Params: {Bucket: logs, Filter: '(unclosed'}",
    ))
    .unwrap_err();
    assert!(
        errors.to_string().contains("is not a regular expression"),
        "{errors}"
    );
}

// Issue 17: Bacalhau's local publisher ignores its Params; files that give
// `TargetPath` are read, with a notice that it is ignored.
#[test]
fn local_publisher_params_are_ignored_with_a_notice() {
    let (spec, notices) = JobSpec::parse_with_notices(
        "Type: batch\nTasks:\n  - Name: main\n    Engine:\n      Type: docker\n      Params:\n        \
         Image: busybox\n    Publisher:\n      Type: local\n      Params:\n        TargetPath: /out\n",
    )
    .unwrap();
    assert_eq!(spec.task().publisher, Publisher::Local);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].message.contains("takes no Params"),
        "{notices:?}"
    );
}

#[test]
fn bacalhau_result_names_quoted_booleans_and_s3_encoding_are_read() {
    use crate::job::rules::result_folder_name;
    assert_eq!(result_folder_name("outputs"), "outputs");
    assert_eq!(result_folder_name("/outputs"), "outputs");
    assert_eq!(result_folder_name("/data/out/"), "data_out");
    assert_eq!(result_folder_name("../../etc"), "etc");
    assert_eq!(result_folder_name("my results"), "my_results");
    assert_eq!(result_folder_name("/"), "");
    let job = |results: &str, rw: &str, publisher: &str| {
        format!(
            "Type: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      Type: docker\n      \
             Params:\n        Image: busybox\n    InputSources:\n      - Source:\n          \
             Type: localDirectory\n          Params:\n            SourcePath: /data\n            \
             ReadWrite: {rw}\n        Target: /inputs\n    ResultPaths:\n      - Name: {results}\n        \
             Path: /outputs\n    Publisher: {publisher}\n"
        )
    };
    let spec = JobSpec::parse(&job(
        "/outputs",
        "\"false\"",
        "{Type: s3, Params: {Bucket: results, Encoding: plain}}",
    ))
    .unwrap();
    assert_eq!(spec.task().result_paths[0].name, "outputs");
    // Blank, or reserved once made a folder name: refused, at the name.
    for bad in ["\"\"", "/stdout"] {
        let errors = JobSpec::parse(&job(bad, "false", "{Type: local}")).unwrap_err();
        assert!(
            errors.to_string().contains("ResultPaths[0].Name"),
            "{bad}: {errors}"
        );
    }
    let errors = JobSpec::parse(&job(
        "outputs",
        "false",
        "{Type: s3, Params: {Bucket: results, Encoding: gzip}}",
    ))
    .unwrap_err();
    assert!(
        errors
            .to_string()
            .contains("the `gzip` encoding is not offered"),
        "{errors}"
    );
    let errors = JobSpec::parse(&job("outputs", "\"maybe\"", "{Type: local}")).unwrap_err();
    assert!(
        errors.to_string().contains("expected true or false"),
        "{errors}"
    );
}

// Issue 17: the shape of Bacalhau's own testdata/jobs/wasm.yaml (its module
// inline, blank Alias and Target, null lists) is read.
#[test]
fn bacalhaus_own_wasm_job_file_shape_is_read() {
    let text = "name: Wasm Job\ntype: batch\ncount: 1\ntasks:\n  - name: main\n    engine:\n      \
                type: wasm\n      params:\n        EntryModule:\n          Alias: \"\"\n          \
                Source:\n            Params:\n              URL: |-\n                \
                data:application/wasm;base64,AGFzbQEAAAA=\n            Type: inline\n          \
                Target: \"\"\n        Entrypoint: _start\n        EnvironmentVariables: null\n        \
                ImportModules: []\n        Parameters: null\n";
    let spec = JobSpec::parse(text).unwrap_or_else(|e| panic!("{e}"));
    let Engine::Wasm(p) = &spec.task().engine else {
        panic!()
    };
    assert_eq!(p.entrypoint, "_start");
    assert!(matches!(p.entry_module.source, Source::Inline(_)));
}

// Issue 17: Bacalhau's current WASM form names the module by its path among
// the task's inputs; skrei reads it from that input (a CID, inline data or
// a local file mounted there, or a file in a local folder), and says how
// to write it otherwise.
#[test]
fn a_wasm_entry_module_named_by_an_inputs_path_is_read_from_that_input() {
    let job = |module: &str, inputs: &str| {
        format!(
            "Type: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      Type: wasm\n      \
             Params:\n        EntryModule: {module}\n    InputSources:\n{inputs}"
        )
    };
    let cid = "bafkr4ibp24ziu6ssli6qpyzhiztphyz6mzhmy4a723x22xw3szebfl56le";
    let file = format!(
        "      - Target: /app/main.wasm\n        Source:\n          Type: ipfs\n          \
         Params:\n            CID: {cid}\n"
    );
    let spec = JobSpec::parse(&job("/app/main.wasm", &file)).unwrap_or_else(|e| panic!("{e}"));
    let Engine::Wasm(p) = &spec.task().engine else {
        panic!()
    };
    assert!(matches!(&p.entry_module.source, Source::Cid(c) if c.cid.to_string() == cid));
    assert_eq!(
        spec.task().input_sources.len(),
        1,
        "the input stays mounted"
    );
    let folder = "      - Target: /app\n        Source:\n          Type: localDirectory\n          \
                  Params:\n            SourcePath: /srv/wasm/\n";
    let spec = JobSpec::parse(&job("/app/bin/main.wasm", folder)).unwrap_or_else(|e| panic!("{e}"));
    let Engine::Wasm(p) = &spec.task().engine else {
        panic!()
    };
    assert_eq!(
        p.entry_module.source,
        Source::Local(LocalSource {
            source_path: "/srv/wasm/bin/main.wasm".into(),
            read_write: false,
        })
    );
    // Not among the inputs, or inside a folder only the fetch reveals:
    // refused at the EntryModule, saying what to write.
    let errors = JobSpec::parse(&job("/other.wasm", &file)).unwrap_err();
    let said = errors.to_string();
    assert!(
        said.contains("EntryModule") && said.contains("is not among the task's inputs"),
        "{said}"
    );
    let dir = format!(
        "      - Target: /app\n        Source:\n          Type: ipfs\n          Params:\n            \
         CID: {cid}\n"
    );
    let said = JobSpec::parse(&job("/app/main.wasm", &dir))
        .unwrap_err()
        .to_string();
    assert!(said.contains("give EntryModule as"), "{said}");
    let said = JobSpec::parse(&job("relative.wasm", &file))
        .unwrap_err()
        .to_string();
    assert!(said.contains("EntryModule"), "{said}");
}

// Issue 17: Constraints as Bacalhau's files write them are read (operators
// in any of their spellings, null Values); bad ones are refused where they
// are written, saying what to write.
#[test]
fn constraints_are_read_as_bacalhau_writes_them() {
    let job = |constraints: &str| {
        format!(
            "Type: batch\nCount: 1\nConstraints:\n{constraints}Tasks:\n  - Name: main\n    \
             Engine:\n      Type: docker\n      Params:\n        Image: busybox\n"
        )
    };
    let spec = JobSpec::parse(&job(
        "  - Key: region\n    Operator: \"==\"\n    Values: [eu]\n  - Key: gpu\n    \
         Operator: exists\n    Values: null\n  - {Key: tier, Operator: GT, Values: [\"2\"]}\n",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let shown: Vec<String> = spec.constraints.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["region=eu", "gpu exists", "tier>2"]);
    let errors = JobSpec::parse(&job(
        "  - Key: region\n    Operator: \"~\"\n    Values: [eu]\n",
    ))
    .unwrap_err();
    assert!(
        errors.to_string().contains("`~` is not an operator"),
        "{errors}"
    );
    assert_eq!(errors.0[0].path, "Constraints[0].Operator");
    let errors = JobSpec::parse(&job("  - Key: region\n    Operator: in\n")).unwrap_err();
    assert!(errors.to_string().contains("1 to 32 Values"), "{errors}");
    // An empty list and null are no Constraints.
    assert!(
        JobSpec::parse(&job("  []\n").replace("Constraints:\n  []", "Constraints: []")).is_ok()
    );
}

// Issue 17, section 3: what stays unsupported says so clearly, at the
// field, instead of passing validation and failing on every node or
// reading as an unknown field.
#[test]
fn what_skrei_does_not_offer_is_named() {
    let task = |engine: &str, extra: &str| {
        format!("Type: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine: {engine}\n{extra}")
    };
    let docker = "{Type: docker, Params: {Image: busybox}}";
    let cases = [
        (
            task("{Type: noop}", ""),
            "Tasks[0].Engine.Type",
            "the noop engine",
        ),
        (
            task(docker, "    Publisher: {Type: s3managed}\n"),
            "Tasks[0].Publisher.Type",
            "a Bacalhau publisher skrei does not offer",
        ),
        (
            task(docker, "    Publisher: {Type: noop}\n"),
            "Tasks[0].Publisher.Type",
            "a Bacalhau publisher skrei does not offer",
        ),
        (
            task(
                docker,
                "    Network: {Type: Full, Ports: [{Name: http, Target: 80}]}\n",
            ),
            "Tasks[0].Network.Ports",
            "Ports are not offered",
        ),
        (
            "APIVersion: V1beta2\nSpec: {Engine: Docker}\n".to_string(),
            "",
            "Bacalhau's older job format",
        ),
        (
            task(
                docker,
                "    InputSources:\n      - Target: /in\n        Source: {Type: ipfs, Params: \
                 {CID: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG}}\n",
            ),
            "Tasks[0].InputSources[0].Source.Params.CID",
            "uses the sha2-256 hash",
        ),
    ];
    for (text, path, says) in cases {
        let errors = JobSpec::parse(&text).unwrap_err();
        assert!(
            errors
                .0
                .iter()
                .any(|e| e.path == path && e.message.contains(says)),
            "{text}\n{errors}"
        );
    }
}

// Issue 17: Priority is read; a non-zero one is a notice (accepted, not
// used), a value that is no whole number an error at its place.
#[test]
fn priority_is_accepted_with_a_notice() {
    let job = |p: &str| {
        format!(
            "Type: batch\nPriority: {p}\nTasks:\n  - Name: main\n    Engine: {{Type: docker, Params: {{Image: busybox}}}}\n"
        )
    };
    let (_, notices) = JobSpec::parse_with_notices(&job("0")).unwrap();
    assert!(notices.is_empty());
    for p in ["50", "\"50\""] {
        let (spec, notices) = JobSpec::parse_with_notices(&job(p)).unwrap();
        assert_eq!(
            spec,
            JobSpec::parse(&job("0")).unwrap(),
            "not part of the job"
        );
        assert_eq!(notices.len(), 1, "{p}");
        assert!(
            notices[0]
                .message
                .contains("Priority 50 is accepted and not used")
        );
        assert_eq!(notices[0].location.map(|l| l.line), Some(2));
    }
    let err = JobSpec::parse(&job("high")).unwrap_err().to_string();
    assert!(err.contains("whole number"), "{err}");
}

// Issue 17: `Type: ops` is read (Count does not apply: a Count other than 1
// is a notice, and the job is one part run on each node); service and
// daemon jobs are refused naming their type.
#[test]
fn ops_jobs_are_read_and_service_jobs_refused_by_name() {
    let job = |t: &str, count: &str| {
        format!(
            "Type: {t}\n{count}Tasks:\n  - Name: main\n    Engine:\n      Type: docker\n      \
             Params:\n        Image: busybox\n"
        )
    };
    let (spec, notices) = JobSpec::parse_with_notices(&job("ops", "")).unwrap();
    assert_eq!((spec.r#type, spec.count), (JobType::Ops, 1));
    assert!(notices.is_empty(), "{notices:?}");
    let (spec, notices) = JobSpec::parse_with_notices(&job("ops", "Count: 3\n")).unwrap();
    assert_eq!(spec.count, 1);
    assert_eq!(notices.len(), 1);
    assert!(
        notices[0].message.contains("Count does not apply"),
        "{notices:?}"
    );
    for t in ["service", "daemon"] {
        let errors = JobSpec::parse(&job(t, "")).unwrap_err().to_string();
        assert!(
            errors.contains(&format!("`{t}` jobs are not supported")),
            "{errors}"
        );
    }
}

// Issue 17: Bacalhau's own testdata/jobs/wasm.yaml names its module
// relative to the task's root (`wasm.main` for the input at `/wasm.main`).
#[test]
fn a_relative_entry_module_is_read_from_the_tasks_root() {
    let spec = JobSpec::parse(
        "Type: batch\nTasks:\n  - Name: main\n    Engine:\n      Type: wasm\n      Params:\n        \
         EntryModule: wasm.main\n    InputSources:\n      - Target: /wasm.main\n        Source:\n          \
         Type: inline\n          Params:\n            URL: data:application/wasm;base64,AGFzbQEAAAA=\n",
    )
    .unwrap();
    let Engine::Wasm(params) = &spec.task().engine else {
        panic!("{spec:?}")
    };
    assert!(matches!(params.entry_module.source, Source::Inline(_)));
    let errors = JobSpec::parse(
        "Type: batch\nTasks:\n  - Name: main\n    Engine:\n      Type: wasm\n      Params:\n        \
         EntryModule: other.wasm\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        errors.contains("`/other.wasm` is not among the task's inputs"),
        "{errors}"
    );
}
