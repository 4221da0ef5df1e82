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
    crate::natlab::eventually(Duration::from_secs(20), "node info of B and C", || {
        let info = a.info();
        let heard = |id: &str| {
            info["peers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["node_id"] == id && p["info"].is_object())
        };
        (heard(&b_id) && heard(&c_id))
            .then_some(())
            .ok_or(format!("{:#}", info["peers"]))
    });
    let module = a.add(&files.module());
    let input = cid_input(&c.add(&files.name()));
    for round in 0..4 {
        let job = a.submit(&hello_job(&format!("local {round}"), &module, &input, ""));
        let done = a.wait(&job, Duration::from_secs(60));
        assert_eq!(done["state"], "completed", "{done:#}");
        assert_eq!(executions_on(&done), vec![c_id.clone()], "{done:#}");
    }
}
