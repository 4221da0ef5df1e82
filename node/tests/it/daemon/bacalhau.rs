//! Job files as Bacalhau users write them (issue 17), run end to end.

use std::time::Duration;

use crate::harness::{Files, NodeProc, cid_input, cli, executions_on, hello_job, text};

// Issue 17: Bacalhau's current WASM form names the module by the path an
// input mounts it at (`EntryModule: /inputs/main.wasm`; in /inputs beside
// name.txt, as the example module opens its first folder as /inputs), with
// the blank fields, result name and network name Bacalhau's files carry;
// the job runs and says hello.
#[test]
fn a_wasm_job_naming_its_module_by_an_inputs_path_runs() {
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dirs.path().join("node"), &[]);
    let module = node.add(&files.module());
    let name = cid_input(&node.add(&files.name()));
    let job = node.submit(&format!(
        "Name: bacalhau-wasm\nType: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      \
         Type: wasm\n      Params:\n        EntryModule: /inputs/main.wasm\n        \
         EnvironmentVariables: null\n        Parameters: null\n    InputSources:\n      \
         - Target: /inputs/main.wasm\n        Alias: \"\"\n        Source:\n          Type: ipfs\n          \
         Params:\n            CID: {module}\n{name}    ResultPaths:\n      - Name: /outputs\n        \
         Path: /outputs\n    Publisher: {{Type: \"\"}}\n    Network:\n      Type: Default\n"
    ));
    let ended = node.wait(&job, Duration::from_secs(60));
    assert_eq!(ended["state"], "completed", "{ended:#}");
    let out_dir = dirs.path().join("results");
    let out = cli(
        &node.api,
        &["job", "get", &job, "-o", out_dir.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let read = |p: &str| std::fs::read_to_string(out_dir.join(p)).unwrap();
    assert_eq!(
        read("stdout"),
        "hello skrei\n",
        "stderr: {}; exit {}",
        read("stderr"),
        read("exitCode")
    );
    assert_eq!(read("outputs/greeting.txt"), "hello skrei\n");
}

// Issue 17: nodes carry labels (`--label`) and a job's Constraints choose
// among them: region=us runs on the us node only; a Constraint no node
// meets fails the job, naming it for each node.
#[test]
fn constraints_choose_nodes_by_their_labels() {
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let eu = NodeProc::start(&dirs.path().join("eu"), &["--label", "region=eu"]);
    let us = NodeProc::start(
        &dirs.path().join("us"),
        &[
            "--bootstrap",
            &eu.bootstrap(),
            "--label",
            "region=us",
            "--label",
            "tier=2",
        ],
    );
    let info = us.info();
    assert_eq!(info["labels"]["region"], "us", "{info:#}");
    eu.hears(&[&us.id()]);
    let module = eu.add(&files.module());
    let input = cid_input(&eu.add(&files.name()));
    let constrained = |name: &str, constraints: &str| {
        format!(
            "Constraints:\n{constraints}{}",
            hello_job(name, &module, &input, "")
        )
    };
    for round in 0..2 {
        let job = eu.submit(&constrained(
            &format!("to us {round}"),
            "  - {Key: region, Operator: \"=\", Values: [us]}\n  - {Key: tier, Operator: gt, Values: [\"1\"]}\n",
        ));
        let done = eu.wait(&job, Duration::from_secs(60));
        assert_eq!(done["state"], "completed", "{done:#}");
        assert_eq!(executions_on(&done), vec![us.id()], "{done:#}");
    }
    let job = eu.submit(&constrained(
        "nowhere",
        "  - {Key: zone, Operator: exists}\n",
    ));
    let ended = eu.wait(&job, Duration::from_secs(60));
    assert_eq!(ended["state"], "failed", "{ended:#}");
    let detail = ended["failure"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("2 nodes: its constraint `zone exists` does not hold here"),
        "{detail}"
    );
}

// Issue 17: an ops job runs once on every node that meets its
// Constraints and bids before its QueueTimeout (Count does not apply): two
// workers of three nodes each run it, each node's result is kept, and
// the job completes once both have.
#[test]
fn an_ops_job_runs_once_on_every_matching_node() {
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let a = NodeProc::start(&dirs.path().join("a"), &["--label", "role=worker"]);
    let others: Vec<NodeProc> = [("b", "worker"), ("c", "other")]
        .iter()
        .map(|(n, role)| {
            NodeProc::start(
                &dirs.path().join(n),
                &[
                    "--bootstrap",
                    &a.bootstrap(),
                    "--label",
                    &format!("role={role}"),
                ],
            )
        })
        .collect();
    let ids: Vec<String> = others.iter().map(NodeProc::id).collect();
    a.hears(&ids.iter().map(String::as_str).collect::<Vec<_>>());
    let module = a.add(&files.module());
    let input = cid_input(&a.add(&files.name()));
    let job = format!(
        "Constraints:\n  - {{Key: role, Operator: \"=\", Values: [worker]}}\n{}",
        hello_job("everywhere", &module, &input, "")
    )
    .replace("Type: batch\nCount: 1", "Type: ops\nCount: 5");
    let id = a.submit(&job);
    let ended = a.wait(&id, Duration::from_secs(60));
    assert_eq!(ended["state"], "completed", "{ended:#}");
    let mut ran = executions_on(&ended);
    ran.sort();
    let mut workers = vec![a.id(), others[0].id()];
    workers.sort();
    assert_eq!(ran, workers, "once on each worker, never on c: {ended:#}");
    let out = dirs.path().join("results");
    let got = cli(&a.api, &["job", "get", &id, "-o", out.to_str().unwrap()]);
    assert!(got.status.success(), "{}", text(&got.stderr));
    for e in ["e0", "e1"] {
        assert_eq!(
            std::fs::read_to_string(out.join(e).join("stdout")).unwrap(),
            "hello skrei\n"
        );
    }
}

// Issue 17: every task sees Bacalhau's variables (and skrei's): a Count-3
// job's three tasks, on three nodes, see parts 0, 1 and 2 of 3, the job's
// id and name, and the node that runs them.
#[test]
fn a_count_3_jobs_tasks_see_partitions_0_1_2() {
    let Some(image) = crate::docker::probe_image_blocking() else {
        return;
    };
    let dirs = tempfile::tempdir().unwrap();
    let a = NodeProc::start(&dirs.path().join("a"), &["--engines", "docker"]);
    if !a.info()["engines"].to_string().contains("docker") {
        assert!(
            !crate::docker::require_docker(),
            "no Docker engine on the node"
        );
        return;
    }
    let others: Vec<NodeProc> = ["b", "c"]
        .iter()
        .map(|n| {
            NodeProc::start(
                &dirs.path().join(n),
                &["--engines", "docker", "--bootstrap", &a.bootstrap()],
            )
        })
        .collect();
    let ids: Vec<String> = others.iter().map(NodeProc::id).collect();
    a.hears(&ids.iter().map(String::as_str).collect::<Vec<_>>());
    let job = a.submit(&format!(
        "Name: parts\nType: batch\nCount: 3\nTasks:\n  - Name: main\n    Engine:\n      Type: docker\n      \
         Params:\n        Image: {image}\n        Entrypoint: [/bin/sh, -c]\n        Parameters:\n          \
         - echo $BACALHAU_PARTITION_INDEX/$BACALHAU_PARTITION_COUNT $SKREI_PARTITION_INDEX \
         $BACALHAU_JOB_NAME $BACALHAU_JOB_TYPE $BACALHAU_JOB_NAMESPACE $BACALHAU_JOB_ID $BACALHAU_NODE_ID\n"
    ));
    let ended = a.wait(&job, Duration::from_secs(120));
    assert_eq!(ended["state"], "completed", "{ended:#}");
    let out = dirs.path().join("results");
    let got = cli(&a.api, &["job", "get", &job, "-o", out.to_str().unwrap()]);
    assert!(got.status.success(), "{}", text(&got.stderr));
    let mut seen: Vec<(String, String)> = ended["job"]["executions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["state"]["state"] == "completed")
        .map(|e| {
            let n = format!("e{}", e["execution_id"].as_u64().unwrap());
            let line = std::fs::read_to_string(out.join(n).join("stdout")).unwrap();
            (line, e["node"].as_str().unwrap().to_owned())
        })
        .collect();
    seen.sort();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for (part, (line, node)) in seen.iter().enumerate() {
        assert_eq!(
            line,
            &format!("{part}/3 {part} parts batch default {job} {node}\n"),
            "{seen:?}"
        );
    }
}

// Issue 17: `env:NAME` in a task's Env reads the node's variable only where
// its operator allows it (`--allow-env`); elsewhere the job is refused,
// saying which variable, and the value never reaches the task.
#[test]
fn env_values_read_the_nodes_variables_only_where_allowed() {
    let Some(image) = crate::docker::probe_image_blocking() else {
        return;
    };
    let dirs = tempfile::tempdir().unwrap();
    let job = |name: &str| {
        format!(
            "Name: {name}\nType: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      Type: docker\n      \
             Params:\n        Image: {image}\n        Entrypoint: [/bin/sh, -c, 'echo \"$TOKEN\"']\n    \
             Env:\n      TOKEN: env:SKREI_TEST_NODE_TOKEN\n    Timeouts:\n      QueueTimeout: 2\n"
        )
    };
    let env = vec![(
        "SKREI_TEST_NODE_TOKEN".to_string(),
        "from-the-node".to_string(),
    )];
    for allowed in [false, true] {
        let mut args = vec!["--engines", "docker"];
        if allowed {
            args.extend(["--allow-env", "SKREI_TEST_NODE_*"]);
        }
        let spawn = crate::harness::Spawn {
            env: env.clone(),
            ..Default::default()
        };
        let node = NodeProc::start_with(&dirs.path().join(format!("node-{allowed}")), &args, spawn);
        if !node.info()["engines"].to_string().contains("docker") {
            assert!(
                !crate::docker::require_docker(),
                "no Docker engine on the node"
            );
            return;
        }
        let id = node.submit(&job(&format!("env {allowed}")));
        let ended = node.wait(&id, Duration::from_secs(60));
        if allowed {
            assert_eq!(ended["state"], "completed", "{ended:#}");
            let logs = cli(&node.api, &["job", "logs", &id]);
            assert_eq!(text(&logs.stdout), "from-the-node\n");
        } else {
            assert_eq!(ended["state"], "failed", "{ended:#}");
            assert!(executions_on(&ended).is_empty(), "it never ran");
            let detail = ended["failure"]["detail"].as_str().unwrap();
            assert!(
                detail.contains("reads the node's variable SKREI_TEST_NODE_TOKEN"),
                "{detail}"
            );
        }
    }
}

// Issue 17, R-VOL-4: a `ReadWrite` local input is the operator's folder,
// mounted writable, where they list it with `--local-inputs DIR:rw`: what
// the task writes is there on the host afterwards. A read-only local input
// cannot be written, and asking to write a folder the operator lists
// read-only is refused at bid time, naming the path.
#[test]
fn writable_local_inputs_only_where_the_operator_allows_writing() {
    let Some(image) = crate::docker::probe_image_blocking() else {
        return;
    };
    let dirs = tempfile::tempdir().unwrap();
    let rw = dirs.path().join("work");
    let ro = dirs.path().join("reference");
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::write(rw.join("count"), "1\n").unwrap();
    std::fs::write(ro.join("count"), "1\n").unwrap();
    let (rw_s, ro_s) = (rw.to_str().unwrap(), ro.to_str().unwrap());
    let node = NodeProc::start(
        &dirs.path().join("node"),
        &[
            "--engines",
            "docker",
            "--local-inputs",
            &format!("{rw_s}:rw"),
            "--local-inputs",
            ro_s,
        ],
    );
    if !node.info()["engines"].to_string().contains("docker") {
        assert!(
            !crate::docker::require_docker(),
            "no Docker engine on the node"
        );
        return;
    }
    let info = node.info();
    assert_eq!(
        info["local_inputs_rw"],
        serde_json::json!([rw_s]),
        "{info:#}"
    );
    assert_eq!(
        info["local_inputs"],
        serde_json::json!([rw_s, ro_s]),
        "{info:#}"
    );
    let job = |name: &str, path: &str, read_write: bool| {
        format!(
            "Name: {name}\nType: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      Type: docker\n      \
             Params:\n        Image: {image}\n        Entrypoint: [/bin/sh, -c, 'echo 2 > /data/count && cat /data/count']\n    \
             InputSources:\n      - Target: /data\n        Source:\n          Type: localDirectory\n          \
             Params:\n            SourcePath: {path}\n            ReadWrite: {read_write}\n    \
             Timeouts:\n      QueueTimeout: 2\n"
        )
    };

    let id = node.submit(&job("writes", rw_s, true));
    let ended = node.wait(&id, Duration::from_secs(60));
    assert_eq!(ended["state"], "completed", "{ended:#}");
    assert_eq!(text(&cli(&node.api, &["job", "logs", &id]).stdout), "2\n");
    assert_eq!(std::fs::read_to_string(rw.join("count")).unwrap(), "2\n");

    // Read-only: the write fails inside the task, the host file is as it was.
    let id = node.submit(&job("reads", ro_s, false));
    let ended = node.wait(&id, Duration::from_secs(60));
    assert_eq!(std::fs::read_to_string(ro.join("count")).unwrap(), "1\n");
    let out = dirs.path().join("reads");
    assert!(
        cli(&node.api, &["job", "get", &id, "-o", out.to_str().unwrap()])
            .status
            .success(),
        "{ended:#}"
    );
    assert_ne!(
        std::fs::read_to_string(out.join("exitCode"))
            .unwrap()
            .trim(),
        "0",
        "{ended:#}"
    );
    // Mounted read-only, not merely without write bits.
    let stderr = std::fs::read_to_string(out.join("stderr")).unwrap();
    assert!(stderr.contains("Read-only file system"), "{stderr}");

    let id = node.submit(&job("refused", ro_s, true));
    let ended = node.wait(&id, Duration::from_secs(60));
    assert_eq!(ended["state"], "failed", "{ended:#}");
    assert!(executions_on(&ended).is_empty(), "it never ran");
    let detail = ended["failure"]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("writing to local path {ro_s} not allowed")),
        "{detail}"
    );
    assert_eq!(std::fs::read_to_string(ro.join("count")).unwrap(), "1\n");
}

// Issue 17: CLI habits around a job's end: `--wait=false` returns the id at
// once, `--wait-timeout-secs` gives up waiting (the job goes on), and
// `job get -o` writes into an existing folder (`-o .` too) beside what it
// holds, refusing names it already has.
#[test]
fn waiting_and_getting_results_as_bacalhau_users_do() {
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dirs.path().join("node"), &[]);
    let module = node.add(&files.module());
    let input = cid_input(&node.add(&files.name()));
    let job_file = dirs.path().join("job.yaml");
    std::fs::write(&job_file, hello_job("habits", &module, &input, "")).unwrap();
    let job_file = job_file.to_str().unwrap();

    let out = node.cli(&["job", "run", job_file, "--wait=false"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_owned();
    assert!(id.starts_with("bafyr4i"), "only the id: {id}");
    let ended = node.wait(&id, Duration::from_secs(60));
    assert_eq!(ended["state"], "completed", "{ended:#}");

    // Into an existing empty folder.
    let empty = dirs.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = node.cli(&["job", "get", &id, "-o", empty.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(empty.join("stdout")).unwrap(),
        "hello skrei\n"
    );
    // `-o .` in a folder holding other things: written beside them.
    let here = dirs.path().join("here");
    std::fs::create_dir(&here).unwrap();
    std::fs::write(here.join("notes.txt"), "mine").unwrap();
    let out = crate::harness::skrei()
        .args(["job", "get", &id, "-o", ".", "--api", &node.api])
        .current_dir(&here)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(here.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::read_to_string(here.join("outputs/greeting.txt")).unwrap(),
        "hello skrei\n"
    );
    // Again: every name is there already; nothing is overwritten.
    let out = crate::harness::skrei()
        .args(["job", "get", &id, "-o", ".", "--api", &node.api])
        .current_dir(&here)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already holds"),
        "{}",
        text(&out.stderr)
    );
    let left: Vec<_> = std::fs::read_dir(&here)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".skrei-get"))
        .collect();
    assert!(left.is_empty(), "no staging folder left: {left:?}");

    // A job no node takes, waited for 1 s: the wait ends, the job does not.
    let stuck = hello_job("stuck", &module, &input, "").replace("Count: 1", "Count: 2");
    std::fs::write(dirs.path().join("stuck.yaml"), stuck).unwrap();
    let started = std::time::Instant::now();
    let out = node.cli(&[
        "job",
        "run",
        dirs.path().join("stuck.yaml").to_str().unwrap(),
        "--wait-timeout-secs",
        "1",
    ]);
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = text(&out.stderr);
    assert!(err.contains("has not ended after 1 s"), "{err}");
}

// Issue 17: a node without an S3 endpoint refuses the `s3` publisher and
// S3 inputs when asked, instead of running the job and failing to publish.
#[test]
fn s3_is_refused_before_anything_runs_on_a_node_without_it() {
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dirs.path().join("node"), &[]);
    let module = node.add(&files.module());
    let input = cid_input(&node.add(&files.name()));
    let job = hello_job("to s3", &module, &input, "").replace(
        "    ResultPaths:",
        "    Publisher:\n      Type: s3\n      Params: {Bucket: results, Key: jobs}\n    ResultPaths:",
    );
    let id = node.submit(&job);
    let ended = node.wait(&id, Duration::from_secs(60));
    assert_eq!(ended["state"], "failed", "{ended:#}");
    assert!(executions_on(&ended).is_empty(), "it never ran: {ended:#}");
    assert_eq!(ended["failure"]["cause"], "no_node_accepts", "{ended:#}");
    let detail = ended["failure"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("publishing to s3 not available"),
        "{detail}"
    );
    let id = node.submit(&hello_job("from s3", &module, S3_NAME_INPUT, ""));
    let ended = node.wait(&id, Duration::from_secs(60));
    assert_eq!(ended["state"], "failed", "{ended:#}");
    let detail = ended["failure"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("S3 input s3://names/people/name.txt not available on the node")
            && detail.contains("--s3-endpoint"),
        "{detail}"
    );
}

/// An S3 input of the name to greet, at /inputs/name.txt.
const S3_NAME_INPUT: &str = "      - Source:\n          Type: s3\n          Params:\n            \
     Bucket: names\n            Key: people/name.txt\n        Target: /inputs\n";

// Issue 17: with --s3-endpoint (moto) and the operator's AWS variables, a
// job reads its input from S3 and publishes its results there; the job's
// files name only bucket and key.
#[test]
fn a_job_reads_from_s3_and_publishes_to_it() {
    let Some(moto) = testkit::moto::Moto::start() else {
        return;
    };
    moto.create_bucket("names");
    moto.create_bucket("results");
    moto.put("names", "people/name.txt", b"bucket\n");
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let spawn = crate::harness::Spawn {
        env: [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into(),
        ..Default::default()
    };
    let node = NodeProc::start_with(
        &dirs.path().join("node"),
        &["--s3-endpoint", &moto.endpoint],
        spawn,
    );
    let info = node.info();
    assert_eq!(info["s3"]["endpoint"], moto.endpoint.as_str(), "{info:#}");
    assert_eq!(info["s3"]["region"], "us-east-1", "{info:#}");
    let module = node.add(&files.module());
    let job = hello_job("s3 both ways", &module, S3_NAME_INPUT, "").replace(
        "    ResultPaths:",
        "    Publisher:\n      Type: s3\n      Params: {Bucket: results, Key: jobs}\n    ResultPaths:",
    );
    let id = node.submit(&job);
    let ended = node.wait(&id, Duration::from_secs(60));
    assert_eq!(ended["state"], "completed", "{ended:#}");
    assert_eq!(
        text(&cli(&node.api, &["job", "logs", &id]).stdout),
        "hello bucket\n"
    );
    let client = storage::s3::S3Client::new(storage::s3::S3Config {
        endpoint: moto.endpoint.clone(),
        region: "us-east-1".into(),
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
        session_token: None,
    })
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let greeting = runtime
        .block_on(client.get_object("results", &format!("jobs/{id}/outputs/greeting.txt")))
        .unwrap();
    assert_eq!(greeting, b"hello bucket\n");
}
