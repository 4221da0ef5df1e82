//! Job files as Bacalhau users write them (issue 17), run end to end.

use std::time::Duration;

use crate::harness::{Files, NodeProc, cid_input, cli, text};

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
