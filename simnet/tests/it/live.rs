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

use api::jobs::JobState;
use simnet::live::{Api, LiveNet, LiveOptions, default_skrei};

/// The example module: greets the name in /inputs/name.txt on stdout.
const HELLO_WASM: &[u8] = include_bytes!("../../../examples/wasm/hello.wasm");

/// Longest one job may take, from submission to its results fetched.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn skrei() -> PathBuf {
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
    api.add_file(path)
        .unwrap_or_else(|e| panic!("adding {}: {e}", path.display()))
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
    let mut last = None;
    while Instant::now() < deadline {
        match api.job(job_id) {
            Ok(job) => {
                assert!(
                    !matches!(job.state, JobState::Failed { .. } | JobState::Cancelled),
                    "job {job_id} {}: {job:#?}",
                    job.state.name()
                );
                if job.state == JobState::Completed && job.results_fetched() {
                    let logs = api.logs(job_id).expect("the logs of a completed job");
                    assert_eq!(logs.stdout, "hello skrei\n", "job {job_id}: {logs:#?}");
                    assert_eq!(logs.exit_code, 0, "job {job_id}: {logs:#?}");
                    return logs.node.to_string();
                }
                last = Some(job);
            }
            // The node answers a submission before its database has the
            // job: a moment of "no job" right after submitting is expected.
            Err(e) if e.status == Some(404) => {}
            Err(e) => panic!("job {job_id}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "job {job_id} not done within {} s; last seen: {last:#?}",
        JOB_TIMEOUT.as_secs()
    );
}

/// Nodes 0 and 1 only submit (`capacity = 0`); 2, 3 and 4 run the jobs,
/// and node 4 alone holds the module and its input.
const POLICIES: &str = "[[node]]\nindex = 0\ncapacity = 0\n[[node]]\nindex = 1\ncapacity = 0\n";

#[test]
fn five_live_nodes_run_jobs_through_any_node_and_survive_losing_one() {
    let started = Instant::now();
    let mut options = LiveOptions::new(5, skrei());
    options.policies = simnet::live::policies::parse(POLICIES, 5).unwrap();
    let mut net = LiveNet::start(options).expect("5 nodes start");
    eprintln!(
        "5 nodes up in {:?} under {}",
        started.elapsed(),
        net.root().display()
    );
    let submitters = [0, 1];
    let data = 4;
    let files = tempfile::tempdir().unwrap();
    let module_path = files.path().join("hello.wasm");
    std::fs::write(&module_path, HELLO_WASM).unwrap();
    let input_path = files.path().join("name.txt");
    std::fs::write(&input_path, "skrei\n").unwrap();
    let module = add(net.api(data), &module_path);
    let input = add(net.api(data), &input_path);
    let submit_round = |net: &LiveNet, round: usize| -> Vec<(usize, String)> {
        (0..4)
            .map(|n| {
                let i = submitters[n % submitters.len()];
                let job = hello_job(&format!("hello-{round}-{n}"), &module, &input);
                (i, net.api(i).submit(&job).expect("submitted"))
            })
            .collect()
    };

    // Round 1: four jobs at once, two through each submitter.
    let mut ran: BTreeMap<usize, usize> = BTreeMap::new();
    for (i, job_id) in submit_round(&net, 1) {
        let node = wait_done(net.api(i), &job_id);
        let at = net.index_of(&node).expect("ran on one of ours");
        assert!(
            at >= 2,
            "job {job_id} ran on node {at}, which has no capacity"
        );
        *ran.entry(at).or_default() += 1;
    }
    eprintln!("round 1 done at {:?}; ran on {ran:?}", started.elapsed());

    // Lose the node (other than the data's holder) that ran the most: a
    // crash, no goodbye to its peers.
    let victim = [2, 3]
        .into_iter()
        .max_by_key(|i| (ran.get(i).copied().unwrap_or(0), *i))
        .unwrap();
    net.kill(victim).unwrap();
    assert!(!net.is_running(victim));

    // Round 2: the same again; the two compute nodes left run everything.
    for (i, job_id) in submit_round(&net, 2) {
        let node = wait_done(net.api(i), &job_id);
        let at = net.index_of(&node).expect("ran on one of ours");
        assert!(
            at >= 2 && at != victim,
            "job {job_id} ran on node {at}; node {victim} is down and 0, 1 run nothing"
        );
    }
    eprintln!(
        "round 2 done at {:?} without node {victim}",
        started.elapsed()
    );

    // The lost node comes back with its data folder; jobs submitted through
    // it complete too.
    net.restart(victim).expect("the node restarts");
    let job = hello_job("hello-3", &module, &input);
    let job_id = net.api(victim).submit(&job).expect("submitted");
    wait_done(net.api(victim), &job_id);
    eprintln!("done in {:?}", started.elapsed());
    net.shutdown();
}

/// Starts `simnet up --nodes N` and reads its N `SKREI_API=` lines. The
/// child's stdout stays open (dropping it would close the pipe).
fn simnet_up(nodes: usize) -> (std::process::Child, Vec<Api>) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut up = Command::new(env!("CARGO_BIN_EXE_simnet"))
        .args(["up", "--nodes", &nodes.to_string(), "--skrei"])
        .arg(skrei())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("simnet runs");
    let stdout = up.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    // R-SEC-1: each node's token on the line after its address.
    let apis = (0..nodes)
        .map(|_| {
            let line = lines.next().expect("a line per node").unwrap();
            let url = line.strip_prefix("SKREI_API=").expect("SKREI_API=URL");
            let line = lines.next().expect("a token line per node").unwrap();
            let token = line
                .strip_prefix("SKREI_API_TOKEN=")
                .expect("SKREI_API_TOKEN=TOKEN");
            Api::new(url, Some(token.to_owned()))
        })
        .collect();
    // Keep reading so that simnet never writes to a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (up, apis)
}

/// `simnet up` itself: one `SKREI_API=` line per node, node 0 first, nodes
/// that answer and know each other, and all of them gone after SIGTERM.
#[test]
fn simnet_up_prints_each_api_and_stops_the_nodes_on_sigterm() {
    let (mut up, apis) = simnet_up(2);
    let first = apis[0].node_info().expect("node 0 answers");
    let second = apis[1].node_info().expect("node 1 answers");
    assert!(
        second.peer(&first.node_id).is_some(),
        "node 1 knows node 0: {second:#?}"
    );

    let pid = nix::unistd::Pid::from_raw(up.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = up.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "simnet up did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "simnet up: {status}");
    for api in &apis {
        assert!(api.node_info().is_err(), "{} still answers", api.url());
    }
}

/// A restarted node gets its old ports back when they are free, and other
/// ones when they are not; either way the network knows it again.
#[test]
fn a_restarted_node_takes_new_ports_when_its_old_ones_are_taken() {
    let mut net = LiveNet::start(LiveOptions::new(2, skrei())).expect("2 nodes start");
    let first_api = net.api(1).clone();

    net.stop(1).unwrap();
    net.restart(1).expect("restarts on its old ports");
    assert_eq!(net.api(1), &first_api, "the old API port was free");

    net.kill(1).unwrap();
    let port = first_api.url().trim_start_matches("http://");
    let _squatter = std::net::TcpListener::bind(port).expect("the old API port is free");
    net.restart(1).expect("restarts on other ports");
    assert_ne!(net.api(1), &first_api);
    let info = net.api(1).node_info().expect("answers on its new port");
    assert_eq!(
        info.node_id.to_string(),
        net.node_id(1),
        "same data folder, same key"
    );
    net.shutdown();
}

/// A `simnet up` killed outright (no chance to stop its nodes) leaves no
/// node running: each stops on its parent-death signal.
#[test]
fn nodes_stop_when_simnet_up_is_killed() {
    let (mut up, apis) = simnet_up(1);
    let api = &apis[0];
    api.node_info().expect("the node answers");

    up.kill().unwrap();
    up.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while api.node_info().is_ok() {
        assert!(
            Instant::now() < deadline,
            "{} still answers after simnet was killed",
            api.url()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
