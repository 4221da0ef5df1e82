//! A live network of real `skrei node` processes (`simnet up`, issue 7
//! item 5): WASM jobs submitted through different nodes run end to end,
//! and still do after a node is lost and when it comes back.
//!
//! It runs the `skrei` binary. `cargo test --workspace` builds it into
//! `target/debug/` (the node package has integration tests, so cargo builds
//! its binary); `SKREI_BIN` names another one. When neither is there, the
//! test builds it itself with `cargo build -p node --bin skrei`. Under
//! `cargo test -p simnet` alone, a `skrei` built earlier is used as it is:
//! rebuild it after changing `node/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use simnet::live::{Api, LiveNet, LiveOptions, default_skrei};

/// The example module: greets the name in /inputs/name.txt on stdout.
const HELLO_WASM: &[u8] = include_bytes!("../../../examples/wasm/hello.wasm");

/// Longest one job may take, from submission to its results fetched.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

fn skrei() -> PathBuf {
    if let Some(path) = default_skrei() {
        return path;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", "node", "--bin", "skrei"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("running cargo build -p node --bin skrei");
    assert!(
        status.success(),
        "cargo build -p node --bin skrei: {status}"
    );
    default_skrei().expect("cargo built skrei beside the test's folder")
}

fn add(api: &Api, path: &Path) -> String {
    let answer = api
        .post("/api/v1/add", &json!({ "path": path }))
        .unwrap_or_else(|e| panic!("adding {}: {e}", path.display()));
    answer["cid"]
        .as_str()
        .expect("add answers a CID")
        .to_owned()
}

/// The job `skrei devstack --example` runs: the module and its input by CID.
fn hello_job(name: &str, module: &str, input: &str) -> String {
    format!(
        "Name: {name}\nType: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      \
         Type: wasm\n      Params:\n        EntryModule:\n          Source:\n            \
         Type: ipfs\n            Params:\n              CID: {module}\n    InputSources:\n      \
         - Source:\n          Type: ipfs\n          Params:\n            CID: {input}\n        \
         Target: /inputs/name.txt\n    ResultPaths:\n      - Name: outputs\n        Path: /outputs\n"
    )
}

/// Waits until the job completed and its results are fetched back to the
/// node it was submitted on; returns where it ran (a peer id).
fn wait_done(api: &Api, job_id: &str) -> String {
    let deadline = Instant::now() + JOB_TIMEOUT;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        match api.get(&format!("/api/v1/jobs/{job_id}")) {
            Ok(job) => {
                let state = job["state"].as_str().unwrap_or_default();
                assert!(
                    !matches!(state, "failed" | "cancelled"),
                    "job {job_id} {state}: {job:#}"
                );
                let fetched = job["results"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["fetched"] == true));
                if state == "completed" && fetched {
                    let logs = api
                        .get(&format!("/api/v1/jobs/{job_id}/logs"))
                        .expect("the logs of a completed job");
                    assert_eq!(logs["stdout"], "hello skrei\n", "job {job_id}: {logs:#}");
                    assert_eq!(logs["exit_code"], 0, "job {job_id}: {logs:#}");
                    return logs["node"]
                        .as_str()
                        .expect("logs name the node")
                        .to_owned();
                }
                last = job;
            }
            // The node answers a submission before its database has the
            // job: a moment of "no job" right after submitting is expected.
            Err(e) if e.status == Some(404) => {}
            Err(e) => panic!("job {job_id}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "job {job_id} not done within {} s; last seen: {last:#}",
        JOB_TIMEOUT.as_secs()
    );
}

#[test]
fn five_live_nodes_run_jobs_through_any_node_and_survive_losing_one() {
    let started = Instant::now();
    let mut net = LiveNet::start(LiveOptions::new(5, skrei())).expect("5 nodes start");
    eprintln!(
        "5 nodes up in {:?} under {}",
        started.elapsed(),
        net.root().display()
    );

    // The module and its input are on node 4 only: every other node that
    // runs a job fetches them by CID.
    let data = 4;
    let files = tempfile::tempdir().unwrap();
    let module_path = files.path().join("hello.wasm");
    std::fs::write(&module_path, HELLO_WASM).unwrap();
    let input_path = files.path().join("name.txt");
    std::fs::write(&input_path, "skrei\n").unwrap();
    let module = add(net.api(data), &module_path);
    let input = add(net.api(data), &input_path);

    // Round 1: one job through each of nodes 0 to 3, all at once.
    let round1: Vec<(usize, String)> = (0..4)
        .map(|i| {
            let job = hello_job(&format!("hello-1-{i}"), &module, &input);
            (i, net.api(i).submit(&job).expect("submitted"))
        })
        .collect();
    let mut ran: BTreeMap<usize, usize> = BTreeMap::new();
    for (i, job_id) in &round1 {
        let node = wait_done(net.api(*i), job_id);
        let at = net.index_of(&node).expect("ran on one of ours");
        *ran.entry(at).or_default() += 1;
    }
    eprintln!("round 1 done at {:?}; ran on {ran:?}", started.elapsed());

    // Lose a node that is neither round 2's first submitter nor the data's
    // holder, preferring one that ran jobs: a crash, no goodbye.
    let victim = (1..4)
        .max_by_key(|i| (ran.get(i).copied().unwrap_or(0), *i))
        .unwrap();
    net.kill(victim).unwrap();
    assert!(!net.is_running(victim));

    // Round 2: a job through each surviving node; all complete elsewhere.
    let survivors: Vec<usize> = (0..5).filter(|&i| i != victim).collect();
    let round2: Vec<(usize, String)> = survivors
        .iter()
        .map(|&i| {
            let job = hello_job(&format!("hello-2-{i}"), &module, &input);
            (i, net.api(i).submit(&job).expect("submitted"))
        })
        .collect();
    for (i, job_id) in &round2 {
        let node = wait_done(net.api(*i), job_id);
        assert_ne!(
            net.index_of(&node),
            Some(victim),
            "job {job_id} ran on the killed node {victim}"
        );
    }
    eprintln!(
        "round 2 done at {:?} without node {victim}",
        started.elapsed()
    );

    // The lost node comes back with its data folder and takes jobs again.
    net.restart(victim).expect("the node restarts");
    let job = hello_job("hello-3", &module, &input);
    let job_id = net.api(victim).submit(&job).expect("submitted");
    wait_done(net.api(victim), &job_id);
    eprintln!("done in {:?}", started.elapsed());
    net.shutdown();
}
