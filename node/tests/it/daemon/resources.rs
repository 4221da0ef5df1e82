//! Placement by resources (issue 15, R-PLC-1): a node offers what it has
//! (`--resources`), bids only on tasks that fit what is free of it, and
//! its refusals say which resource.

use std::time::Duration;

use crate::harness::{Files, NodeProc, cid_input, executions_on, hello_job, refusers, skrei, text};

/// Lines under the task asking for `memory`.
fn asking_memory(memory: &str) -> String {
    format!("    Resources:\n      Memory: {memory}\n")
}

#[test]
fn r_plc_1_a_job_goes_only_to_a_node_with_the_memory_and_says_so_when_none_has() {
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let small = NodeProc::start(
        &dirs.path().join("small"),
        &["--resources", "cpu=1,memory=512Mi"],
    );
    let big = NodeProc::start(
        &dirs.path().join("big"),
        &[
            "--bootstrap",
            &small.bootstrap(),
            "--resources",
            "cpu=2,memory=8Gi",
        ],
    );
    let (small_id, big_id) = (small.id(), big.id());

    // Each shows its offer, and what is free of it.
    let info = small.info();
    assert_eq!(info["resources"]["CPU"], "1", "{info:#}");
    assert_eq!(info["resources"]["Memory"], "512Mi", "{info:#}");
    assert_eq!(info["resources_free"]["Memory"], "512Mi", "{info:#}");
    // ... and gossips it: the small node learns the big one's.
    crate::natlab::eventually(Duration::from_secs(20), "the big node's offer", || {
        let info = small.info();
        let heard = info["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["node_id"] == big_id.as_str())
            .map(|p| p["info"]["resources"]["Memory"].clone());
        (heard == Some("8Gi".into()))
            .then_some(())
            .ok_or(format!("{:#}", info["peers"]))
    });

    let module = small.add(&files.module());
    let input = cid_input(&small.add(&files.name()));

    // 1Gi: only the big node may run it; the small one refuses and says why.
    for round in 0..3 {
        let job = small.submit(&hello_job(
            &format!("one gig {round}"),
            &module,
            &input,
            &asking_memory("1Gi"),
        ));
        let done = small.wait(&job, Duration::from_secs(60));
        assert_eq!(done["state"], "completed", "{done:#}");
        assert_eq!(executions_on(&done), vec![big_id.clone()], "{done:#}");
        assert_eq!(refusers(&done), vec![small_id.clone()], "{done:#}");
        let why = &done["job"]["refusals"][&small_id];
        assert_eq!(
            (
                &why["kind"],
                &why["resource"],
                &why["requested"],
                &why["offered"]
            ),
            (
                &"resource_too_large".into(),
                &"memory".into(),
                &(1u64 << 30).into(),
                &(512u64 << 20).into()
            ),
            "{why}"
        );
    }

    // 100Gi: no node has it, and the failure names memory for both.
    let job = small.submit(&hello_job("huge", &module, &input, &asking_memory("100Gi")));
    let ended = small.wait(&job, Duration::from_secs(60));
    assert_eq!(ended["state"], "failed", "{ended:#}");
    assert_eq!(ended["failure"]["cause"], "no_node_accepts", "{ended:#}");
    let detail = ended["failure"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("1 node: memory 100Gi > 512Mi")
            && detail.contains("1 node: memory 100Gi > 8Gi"),
        "{detail}"
    );
}

// Issue 15 (R-PLC-1), live: a WASM job asking for 50m of CPU over a 20 s
// timeout may use 1 s of CPU time; one that spins is stopped there, and
// the job's failure says so.
#[test]
fn r_plc_1_a_wasm_job_spinning_past_its_cpu_allowance_is_stopped_with_that_reason() {
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dirs.path().join("node"), &[]);
    let spin = wat::parse_str(
        r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#,
    )
    .unwrap();
    std::fs::write(files.path("spin.wasm"), spin).unwrap();
    let module = node.add(&files.path("spin.wasm"));
    let job = node.submit(&format!(
        "Name: spin\nType: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      \
         Type: wasm\n      Params:\n        EntryModule:\n          Source:\n            \
         Type: ipfs\n            Params:\n              CID: {module}\n    Resources:\n      \
         CPU: 50m\n    Timeouts:\n      ExecutionTimeout: 20\n      QueueTimeout: 3\n"
    ));
    let started = std::time::Instant::now();
    let ended = node.wait(&job, Duration::from_secs(60));
    assert_eq!(ended["state"], "failed", "{ended:#}");
    let executions = ended["job"]["executions"].as_array().unwrap();
    assert_eq!(executions.len(), 1, "{ended:#}");
    let failure = &executions[0]["state"]["failure"];
    assert_eq!(failure["cause"], "resource_limit", "{ended:#}");
    let detail = failure["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("CPU limit") && detail.contains("s of CPU time: cpu 50m"),
        "{detail}"
    );
    // Stopped at its allowance, not at its 20 s timeout (the job then
    // waits 3 s for another node, and there is none).
    assert!(
        started.elapsed() < Duration::from_secs(18),
        "{:?}",
        started.elapsed()
    );
}

/// `skrei node FLAG VALUE` must exit with an error naming the flag and
/// saying `says`, creating no data folder.
fn refused(flag: &str, value: &str, says: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = skrei()
        .args(["node", "--data-dir", data.to_str().unwrap()])
        .args(["--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .args([flag, value])
        .output()
        .unwrap();
    let said = text(&out.stderr);
    assert!(!out.status.success(), "{flag} {value} was taken");
    assert!(
        said.contains(flag) && said.contains(says),
        "{flag} {value}: {said}"
    );
    assert!(!data.exists(), "{flag} {value} created {}", data.display());
}

#[test]
fn r_plc_1_a_bad_resources_flag_is_refused_with_what_to_write() {
    for (value, says) in [
        ("gpu=1", "the kinds are cpu, memory and disk"),
        ("memory=lots", "512Mi"),
        ("cpu", "cpu=4,memory=8Gi"),
        ("disk=lots", "512Mi"),
    ] {
        refused("--resources", value, says);
    }
}

#[test]
fn r_plc_2_a_bad_requester_share_is_refused_with_what_to_write() {
    refused("--requester-share", "0", "from 1 to 100");
    refused("--requester-share", "101", "from 1 to 100");
    refused("--requester-share", "half", "invalid");
}

#[test]
fn r_plc_1_a_bad_link_flag_is_refused_with_what_to_write() {
    refused("--link", "100Mbit", "down=RATE,up=RATE");
    refused("--link", "down=fast", "100Mbit");
    refused("--link", "sideways=1Mbit", "the directions are down and up");
}

// Issue 15 (R-PLC-1), live: a node offering 1Mi of disk refuses a task
// asking for more, and holds a task to the disk it asked for: its inputs
// may not take more (the fetch stops there, and the failure says so).
#[test]
fn r_plc_1_a_tasks_inputs_are_held_to_the_disk_it_asked_for() {
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dirs.path().join("node"), &["--resources", "disk=1Mi"]);
    let info = node.info();
    assert_eq!(info["resources"]["Disk"], "1Mi", "{info:#}");
    let module = node.add(&files.module());
    let small = cid_input(&node.add(&files.name()));
    let asking_disk = |disk: &str| format!("    Resources:\n      Disk: {disk}\n");

    // Within its disk: it runs.
    let job = node.submit(&hello_job("fits", &module, &small, &asking_disk("512Ki")));
    let done = node.wait(&job, Duration::from_secs(60));
    assert_eq!(done["state"], "completed", "{done:#}");

    // More than the node offers: refused, saying so.
    let job = node.submit(&hello_job("too big", &module, &small, &asking_disk("2Mi")));
    let ended = node.wait(&job, Duration::from_secs(60));
    assert_eq!(ended["failure"]["cause"], "no_node_accepts", "{ended:#}");
    let detail = ended["failure"]["detail"].as_str().unwrap();
    assert!(detail.contains("1 node: disk 2Mi > 1Mi"), "{detail}");

    // A 1 MiB input for a task that asked for 512Ki: stopped there.
    let big = files.path("big.bin");
    std::fs::write(&big, vec![1u8; 1 << 20]).unwrap();
    let big = cid_input(&node.add(&big));
    let job = node.submit(&hello_job("over", &module, &big, &asking_disk("512Ki")));
    let ended = node.wait(&job, Duration::from_secs(60));
    assert_eq!(ended["state"], "failed", "{ended:#}");
    let failure = &ended["job"]["executions"][0]["state"]["failure"];
    assert_eq!(failure["cause"], "resource_limit", "{ended:#}");
    let detail = failure["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("the disk the task asked for (512 KiB)"),
        "{detail}"
    );
}

#[test]
fn a_bad_label_is_refused_with_what_to_write() {
    refused("--label", "region", "KEY=VALUE");
    refused("--label", "x y=1", "not a label key");
}
