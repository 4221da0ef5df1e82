//! Placement by data locality (issue 15, R-PLC-1, R-POL-4): a node holding
//! a job's input says so in its bid, and the requester picks it.

use std::time::Duration;

use crate::harness::{Files, NodeProc, cid_input, executions_on, hello_job};

// Issue 15, live: three nodes; the input is added on C only and the job is
// submitted on A. A (whose own bid always arrives first) and B would have
// to fetch the input; C holds it, bids saying so, and runs the job, every
// time.
#[test]
fn r_plc_1_a_job_whose_input_is_on_one_node_runs_there() {
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let a = NodeProc::start(&dirs.path().join("a"), &[]);
    let b = NodeProc::start(&dirs.path().join("b"), &["--bootstrap", &a.bootstrap()]);
    let c = NodeProc::start(&dirs.path().join("c"), &["--bootstrap", &a.bootstrap()]);
    let (b_id, c_id) = (b.id(), c.id());
    // A hears of both before the job, so it waits for their answers.
    a.hears(&[&b_id, &c_id]);
    let module = a.add(&files.module());
    let input = cid_input(&c.add(&files.name()));
    for round in 0..4 {
        let job = a.submit(&hello_job(&format!("local {round}"), &module, &input, ""));
        let done = a.wait(&job, Duration::from_secs(60));
        assert_eq!(done["state"], "completed", "{done:#}");
        assert_eq!(executions_on(&done), vec![c_id.clone()], "{done:#}");
    }
}

// Issue 15, live: A holds a 4 MiB input and says its link uploads at
// 8 Mbit/s (`--link`); it cannot run the job itself (too little memory).
// B would have to fetch the input: 4.2 s at 8 Mbit/s, over the job's 2 s
// ExecutionTimeout, so B refuses saying so, and A fails the job at once,
// with the numbers, instead of trying B and waiting for its queue timeout.
#[test]
fn r_plc_1_a_job_whose_input_cannot_arrive_in_time_fails_at_once_with_the_numbers() {
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let a = NodeProc::start(
        &dirs.path().join("a"),
        &["--link", "up=8Mbit", "--resources", "memory=512Mi"],
    );
    let b = NodeProc::start(&dirs.path().join("b"), &["--bootstrap", &a.bootstrap()]);
    let b_id = b.id();
    let info = a.info();
    assert_eq!(info["link_up_bps"], 8_000_000, "{info:#}");
    a.hears(&[&b_id]);
    let module = a.add(&files.module());
    let big = files.path("big.bin");
    std::fs::write(&big, vec![7u8; 4 << 20]).unwrap();
    let input = cid_input(&a.add(&big));
    let job = format!(
        "Name: far\nType: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      \
         Type: wasm\n      Params:\n        EntryModule:\n          Source:\n            \
         Type: ipfs\n            Params:\n              CID: {module}\n    InputSources:\n\
         {input}    Resources:\n      Memory: 1Gi\n    Timeouts:\n      ExecutionTimeout: 2\n      \
         QueueTimeout: 30\n"
    );
    let started = std::time::Instant::now();
    let id = a.submit(&job);
    let ended = a.wait(&id, Duration::from_secs(60));
    assert_eq!(ended["state"], "failed", "{ended:#}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}: not at once",
        started.elapsed()
    );
    assert_eq!(
        ended["job"]["announce"]["input_bytes"],
        4 << 20,
        "{ended:#}"
    );
    assert_eq!(
        ended["job"]["executions"],
        serde_json::json!([]),
        "{ended:#}"
    );
    let why = &ended["job"]["refusals"][&b_id];
    assert_eq!(
        (&why["kind"], &why["bytes"], &why["bps"], &why["timeout_ms"]),
        (
            &"inputs_too_slow".into(),
            &(4u64 << 20).into(),
            &8_000_000.into(),
            &2_000.into()
        ),
        "{why}"
    );
    assert_eq!(ended["failure"]["cause"], "no_node_accepts", "{ended:#}");
    let detail = ended["failure"]["detail"].as_str().unwrap();
    assert!(
        detail.contains(
            "fetching them (4.0 MiB) from this node would take at least 4.1 s at 8 Mbit/s"
        ) && detail.contains("1 node: memory 1Gi > 512Mi")
            && detail.contains("1 node: its inputs (4.0 MiB) would not arrive within"),
        "{detail}"
    );
}
