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
