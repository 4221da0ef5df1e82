//! Nodes for real: `skrei devstack`, `skrei node` processes, the API
//! (R-CLI-1, R-OPS-2, R-POL-1..3, R-NET-7).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

// Tests of single trust boundaries, using the harness.
mod bacalhau;
mod gossip;
mod locality;
mod publish_dir;
mod pull;
mod resources;

#[test]
fn example_module_matches_its_source() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/wasm");
    let compiled = wat::parse_file(root.join("hello.wat")).expect("hello.wat compiles");
    if std::env::var_os("SKREI_BLESS").is_some() {
        std::fs::write(root.join("hello.wasm"), &compiled).unwrap();
    }
    let committed = std::fs::read(root.join("hello.wasm")).unwrap();
    assert!(
        committed == compiled,
        "examples/wasm/hello.wasm is not hello.wat compiled: rerun with SKREI_BLESS=1"
    );
}

#[test]
fn devstack_example_runs_a_wasm_job_across_nodes() {
    // The README's main command: module and input added by CID on the last
    // node, the job submitted on the first, the result fetched back.
    let out = skrei()
        .args(["devstack", "--nodes", "3", "--example"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(
        stdout.matches("SKREI_API=http://127.0.0.1:").count(),
        3,
        "{stdout}"
    );
    assert!(
        stdout.ends_with("hello skrei\n"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("-> done"), "{stderr}");
}

// ------------------------------------------------------------ tests

#[test]
fn policies_decide_where_networked_jobs_run_and_allowlists_reload() {
    // R-POL-1, R-POL-2, R-POL-3: none / http+allowlist / full.
    let files = Files::new();
    let allowlist = files.path("allow.txt");
    std::fs::write(&allowlist, "# this node's domains\n.allowed.test\n").unwrap();
    let dirs = tempfile::tempdir().unwrap();
    let none = NodeProc::start(&dirs.path().join("none"), &[]);
    let boot = none.bootstrap();
    let http = NodeProc::start(
        &dirs.path().join("http"),
        &[
            "--bootstrap",
            &boot,
            "--accept-network",
            "http",
            "--allowlist",
            allowlist.to_str().unwrap(),
        ],
    );
    let full = NodeProc::start(
        &dirs.path().join("full"),
        &["--bootstrap", &boot, "--accept-network", "full"],
    );
    let (none_id, http_id, full_id) = (none.id(), http.id(), full.id());
    let module = none.add(&files.module());
    let input = cid_input(&none.add(&files.name()));

    // A `none` job runs wherever it is awarded.
    let job = none.submit(&hello_job("plain", &module, &input, ""));
    let done = none.wait(&job, Duration::from_secs(60));
    assert_eq!(done["state"], "completed", "{done:#}");

    // An allowed domain: only the http and full nodes may run it.
    let job = none.submit(&hello_job(
        "allowed",
        &module,
        &input,
        &http_network(&["api.allowed.test"]),
    ));
    let ended = none.wait(&job, Duration::from_secs(60));
    let ran = executions_on(&ended);
    assert!(!ran.is_empty(), "{ended:#}");
    assert!(
        ran.iter().all(|n| *n == http_id || *n == full_id),
        "{ran:?}"
    );
    assert!(refusers(&ended).contains(&none_id), "{ended:#}");

    // A domain outside the allowlist: only the full node.
    let job = none.submit(&hello_job(
        "foreign",
        &module,
        &input,
        &http_network(&["evil.test"]),
    ));
    let ended = none.wait(&job, Duration::from_secs(60));
    let ran = executions_on(&ended);
    assert!(
        !ran.is_empty() && ran.iter().all(|n| *n == full_id),
        "{ended:#}"
    );
    let why = ended["job"]["refusals"][&http_id].to_string();
    assert!(why.contains("evil.test"), "the http node's refusal: {why}");

    // The allowlist file changes: the http node takes evil.test now, no restart.
    std::fs::write(&allowlist, ".allowed.test\nevil.test\n").unwrap();
    std::thread::sleep(Duration::from_millis(2_500));
    let job = none.submit(&hello_job(
        "foreign again",
        &module,
        &input,
        &http_network(&["evil.test"]),
    ));
    let ended = none.wait(&job, Duration::from_secs(60));
    assert!(
        !refusers(&ended).contains(&http_id),
        "still refused after the reload: {ended:#}"
    );
    assert!(
        executions_on(&ended).contains(&http_id)
            || ended["job"]["bids_received"].as_u64() >= Some(2),
        "{ended:#}"
    );
}

#[test]
fn a_default_policy_network_explains_why_no_node_takes_a_networked_job() {
    // R-POL-1, R-POL-3: never an opaque "not enough nodes".
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let a = NodeProc::start(&dirs.path().join("a"), &[]);
    let _b = NodeProc::start(&dirs.path().join("b"), &["--bootstrap", &a.bootstrap()]);
    let module = a.add(&files.module());
    let input = cid_input(&a.add(&files.name()));
    std::thread::sleep(Duration::from_millis(1_500));
    let job = a.submit(&hello_job(
        "needs http",
        &module,
        &input,
        &http_network(&["api.foo.test"]),
    ));
    let ended = a.wait(&job, Duration::from_secs(30));
    assert_eq!(ended["state"], "failed", "{ended:#}");
    assert_eq!(ended["failure"]["cause"], "no_node_accepts", "{ended:#}");
    let reason = ended["failure"]["detail"].as_str().unwrap();
    assert!(reason.contains("2 nodes"), "{reason}");
    assert!(reason.contains("http"), "{reason}");

    // `--wait` exits non-zero and prints the reason.
    let out = skrei()
        .args(["job", "run", "--api", &a.api, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            let job = hello_job(
                "needs http 2",
                &module,
                &input,
                &http_network(&["api.foo.test"]),
            );
            c.stdin.take().unwrap().write_all(job.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(said.contains("2 nodes"), "{said}");
    assert!(said.contains("failed (no_node_accepts)"), "{said}");
    // `job list` groups the node's failures by cause under its table.
    let list = cli(&a.api, &["job", "list"]);
    assert!(list.status.success());
    let listed = text(&list.stdout);
    assert!(
        listed.lines().last() == Some("failed: 2 (no_node_accepts 2)"),
        "{listed}"
    );
}

#[test]
fn cid_inputs_travel_to_the_compute_node_and_results_come_back() {
    // R-VOL-1..3, R-P2P-4: added on A (which runs no WASM), run on B.
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let a = NodeProc::start(&dirs.path().join("a"), &["--capacity", "0"]);
    let b = NodeProc::start(&dirs.path().join("b"), &["--bootstrap", &a.bootstrap()]);
    let module = a.add(&files.module());
    let input = cid_input(&a.add(&files.name()));
    let job = a.submit(&hello_job("cross", &module, &input, ""));
    let ended = a.wait(&job, Duration::from_secs(60));
    assert_eq!(ended["state"], "completed", "{ended:#}");
    assert_eq!(executions_on(&ended), vec![b.id()]);

    let out_dir = dirs.path().join("results");
    let out = cli(
        &a.api,
        &["job", "get", &job, "-o", out_dir.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let read = |p: &str| std::fs::read_to_string(out_dir.join(p)).unwrap();
    assert_eq!(read("stdout"), "hello skrei\n");
    assert_eq!(read("stderr"), "");
    assert_eq!(read("exitCode"), "0");
    assert_eq!(read("outputs/greeting.txt"), "hello skrei\n");
    assert_eq!(read("network.log"), "");

    let logs = cli(&a.api, &["job", "logs", &job]);
    assert_eq!(text(&logs.stdout), "hello skrei\n");
    let list = json(&cli(&a.api, &["job", "list", "--output", "json"]));
    assert_eq!(list["jobs"][0]["job_id"], job.as_str());
    assert_eq!(list["jobs"][0]["state"], "completed");

    // `skrei get` on B of content only A has: found through the DHT.
    let only_on_a = files.path("only-a.txt");
    std::fs::write(&only_on_a, "from A\n").unwrap();
    let cid = a.add(&only_on_a);
    let copy = dirs.path().join("copy.txt");
    let out = cli(&b.api, &["get", &cid, "-o", copy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), "from A\n");
    // `--from` takes A's blob store address as `node info` shows it, a
    // JSON object: through B's API, and into a store with no node.
    let data_addr = a.info()["data_addr"].clone();
    assert!(data_addr["addrs"].is_array(), "{data_addr}");
    let from = data_addr.to_string();
    let named = files.path("named.txt");
    std::fs::write(&named, "named provider\n").unwrap();
    let cid = a.add(&named);
    let via_b = dirs.path().join("via-b.txt");
    let out = cli(
        &b.api,
        &["get", &cid, "--from", &from, "-o", via_b.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&via_b).unwrap(), "named provider\n");
    let offline = dirs.path().join("offline.txt");
    let out = skrei()
        .args(["get", &cid, "--from", &from, "-o"])
        .arg(&offline)
        .arg("--data-dir")
        .arg(dirs.path().join("no-node"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&offline).unwrap(),
        "named provider\n"
    );
    // With progress (what `skrei get` asks for on a terminal): JSON lines,
    // the last one the result.
    let big = files.path("big.bin");
    std::fs::write(&big, vec![7u8; 3 << 20]).unwrap();
    let cid = a.add(&big);
    let target = dirs.path().join("big-copy");
    let body = serde_json::json!({ "cid": cid, "progress": true }).to_string();
    let (status, lines) = b.raw(&format!(
        "POST /api/v1/fetch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!(status, 200, "{lines}");
    assert!(lines.contains("\"fetched\":"), "{lines}");
    assert!(lines.contains(&format!("\"cid\":\"{cid}\"")), "{lines}");
    // Fetched into B's store; the client writes it out.
    let out = cli(&b.api, &["get", &cid, "-o", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&target).unwrap().len(), 3 << 20);
    let nowhere = files.path("nowhere.txt");
    std::fs::write(&nowhere, "never added\n").unwrap();
    let unknown = {
        // The CID of content no node has: add it on a throwaway store.
        let out = skrei()
            .args(["add", "--data-dir"])
            .arg(dirs.path().join("scratch"))
            .arg(&nowhere)
            .output()
            .unwrap();
        text(&out.stdout).trim().to_string()
    };
    let out = cli(
        &b.api,
        &[
            "get",
            &unknown,
            "-o",
            dirs.path().join("x").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no node in the network says it has it"),
        "{}",
        text(&out.stderr)
    );

    // The result is in A's store now: it outlives B.
    drop(b);
    let again = dirs.path().join("again");
    let out = cli(&a.api, &["job", "get", &job, "-o", again.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// An HTTP server on loopback serving `name.txt`, holding every request
/// until released: a job whose input comes from it is running (fetching its
/// input) for as long as the test wants.
struct HeldServer {
    url: String,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    released: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HeldServer {
    fn start() -> HeldServer {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let released = Arc::new(AtomicBool::new(false));
        let (count, open) = (requests.clone(), released.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (count, open) = (count.clone(), open.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf);
                    count.fetch_add(1, Ordering::SeqCst);
                    while !open.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nskrei\n",
                    );
                });
            }
        });
        HeldServer {
            url: format!("http://{addr}/name.txt"),
            requests,
            released,
        }
    }

    /// Waits until a node is fetching from it.
    fn wait_for_request(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.requests.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "no node fetched the input");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn release(&self) {
        self.released
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_job_whose_compute_node_dies_is_reawarded_and_completes_once() {
    // R-OPS-2, R-POL-4.
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let server = HeldServer::start();
    let url = server.url.clone();
    let requester = NodeProc::start(&dirs.path().join("r"), &["--capacity", "0"]);
    let boot = requester.bootstrap();
    let mut computes = [
        NodeProc::start(
            &dirs.path().join("c1"),
            &["--bootstrap", &boot, "--allow-private-downloads"],
        ),
        NodeProc::start(
            &dirs.path().join("c2"),
            &["--bootstrap", &boot, "--allow-private-downloads"],
        ),
    ];
    let ids = [computes[0].id(), computes[1].id()];
    let module = requester.add(&files.module());
    let job = requester.submit(&hello_job("survivor", &module, &url_input(&url), ""));
    // The awarded node is fetching the input: it is mid-job.
    server.wait_for_request();
    let awarded = requester.describe(&job);
    let first = executions_on(&awarded)[0].clone();
    let victim = ids
        .iter()
        .position(|id| *id == first)
        .expect("awarded to a compute node");
    computes[victim].kill();
    server.release();

    let ended = requester.wait(&job, Duration::from_secs(60));
    assert_eq!(ended["state"], "completed", "{ended:#}");
    let ran = executions_on(&ended);
    assert_eq!(
        ran,
        vec![ids[victim].clone(), ids[1 - victim].clone()],
        "{ended:#}"
    );
    let states: Vec<&str> = ended["job"]["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["failed", "completed"]);
    assert_eq!(
        ended["results"].as_array().unwrap().len(),
        1,
        "completed once"
    );
}

#[test]
fn a_restarted_requester_loses_no_job_and_no_result() {
    // R-OPS-2: killed while its job runs elsewhere, restarted on its data.
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let server = HeldServer::start();
    let url = server.url.clone();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let mut requester = NodeProc::start(
        &dirs.path().join("r"),
        &["--capacity", "0", "--listen", &listen],
    );
    let compute = NodeProc::start(
        &dirs.path().join("c"),
        &[
            "--bootstrap",
            &requester.bootstrap(),
            "--allow-private-downloads",
        ],
    );
    let module = requester.add(&files.module());
    let job = requester.submit(&hello_job("persistent", &module, &url_input(&url), ""));
    // The compute node is running the job (fetching its input) when the
    // requester dies; it finishes while the requester is away or back.
    server.wait_for_request();
    requester.restart();
    server.release();
    let ended = requester.wait(&job, Duration::from_secs(60));
    assert_eq!(ended["state"], "completed", "{ended:#}");
    assert_eq!(
        executions_on(&ended),
        vec![compute.id()],
        "not re-run: {ended:#}"
    );
    let logs = cli(&requester.api, &["job", "logs", &job]);
    assert_eq!(text(&logs.stdout), "hello skrei\n");
    // Ended jobs leave the node's memory (at a restart, or a while after
    // they end) but not its database: cancelling one still says how it
    // ended, not that the node never had it.
    requester.restart();
    let cancel = cli(&requester.api, &["job", "cancel", &job]);
    assert!(!cancel.status.success());
    let said = text(&cancel.stderr);
    assert!(said.contains("already ended (completed)"), "{said}");
}

#[test]
fn junk_gossip_bad_api_requests_and_requests_from_jobs_change_nothing() {
    // R-P2P-3, R-NET-7, SPEC section 6.
    use protocol::id::{NodeKey, Signed};
    use protocol::job::JobSpec;
    use protocol::messages::{Announce, Gossip, MAX_GOSSIP_BYTES, Message};
    use skrei_node::p2p::{JOBS_TOPIC, P2p, P2pConfig};

    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dirs.path().join("a"), &[]);
    let node_id: protocol::id::NodeId = node.id().parse().unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let key = NodeKey::from_secret_bytes([77; 32]);
        let config = P2pConfig::new(key.to_secret_bytes())
            .listen("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .bootstrap(node.bootstrap().parse().unwrap());
        let (attacker, _events) = P2p::start(config).await.unwrap();
        let spec = JobSpec::parse(&hello_job(
            "x",
            "bafkr4ifrc5jppcr65avpqrkdorsyvkymybph6crtj3r2fmolpay4dtkbdi",
            &cid_input("bafkr4ifrc5jppcr65avpqrkdorsyvkymybph6crtj3r2fmolpay4dtkbdi"),
            "",
        ))
        .unwrap();
        let announce = Announce::new(spec, key.node_id(), 1, vec![]).unwrap();
        let (signer, payload, mut signature) = announce.sign(&key).unwrap().into_parts();
        signature[3] ^= 1;
        let bad_signature =
            Gossip::from(Signed::<Announce>::from_parts(signer, payload, signature))
                .encode()
                .unwrap();
        let mut oversized = Gossip::from(announce.sign(&key).unwrap()).encode().unwrap();
        oversized.resize(MAX_GOSSIP_BYTES + 1, 0);
        let junk = [bad_signature, oversized, b"\x00\xffnot cbor".to_vec()];
        let deadline = Instant::now() + Duration::from_secs(20);
        for bytes in junk {
            // Until the node's subscription reached us.
            while attacker
                .publish_raw_for_tests(JOBS_TOPIC, bytes.clone())
                .await
                .is_err()
            {
                assert!(Instant::now() < deadline, "the node never subscribed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let _ = attacker
            .send_raw_for_tests(node_id, b"garbage".to_vec())
            .await;
        attacker.shutdown().await;
    });

    // Requests from jobs, and bad requests, are refused with a reason.
    let (status, body) = node.raw(
        "GET /api/v1/node HTTP/1.1\r\nHost: x\r\nX-Skrei-Job: j1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("requests from jobs are refused"), "{body}");
    let junk_job = "not: [a job";
    let (status, body) = node.raw(&format!(
        "POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/yaml\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{junk_job}",
        junk_job.len()
    ));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("the job is not valid"), "{body}");
    let (status, body) =
        node.raw("GET /api/v1/jobs/not-a-job HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 400, "{body}");
    // A provider is an address object, not a string holding one; like every
    // refusal, the reason comes as `{"error": ...}`.
    let quoted = r#"{"cid":"bafkr4i","providers":["{\"id\":\"x\"}"]}"#;
    let (status, body) = node.raw(&format!(
        "POST /api/v1/fetch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{quoted}",
        quoted.len()
    ));
    assert_eq!(status, 422, "{body}");
    let error: api::error::ErrorBody = serde_json::from_str(&body).expect(&body);
    assert!(error.error.contains("providers"), "{body}");
    let (status, body) =
        node.raw("GET /api/v1/jobs?limit=many HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 400, "{body}");
    assert!(
        serde_json::from_str::<api::error::ErrorBody>(&body).is_ok(),
        "{body}"
    );
    let list = json(&cli(&node.api, &["job", "list", "--output", "json"]));
    assert_eq!(
        list["jobs"].as_array().map(Vec::len),
        Some(0),
        "nothing was created: {list}"
    );

    // The node still works.
    let module = node.add(&files.module());
    let input = cid_input(&node.add(&files.name()));
    let job = node.submit(&hello_job("after junk", &module, &input, ""));
    let ended = node.wait(&job, Duration::from_secs(30));
    assert_eq!(ended["state"], "completed", "{ended:#}");
    let (status, metrics) =
        node.raw("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("skrei_jobs{state=\"completed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gossipsub"),
        "gossipsub's counters: {metrics}"
    );
    assert_eq!(metrics.matches("# EOF").count(), 1, "{metrics}");
}

#[test]
fn a_docker_http_job_reaches_only_its_domains_and_never_the_control_plane() {
    // R-NET-3, R-NET-7, R-NET-9 through a node: the job's proxy sidecar lets
    // an allowed domain through, refuses another, and refuses a peer's
    // libp2p port even though the job lists its address.
    use super::docker::{BANNER, docker0, engine, probe_image, test_server};
    use std::net::{IpAddr, Ipv4Addr};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some((image, gw, server)) = runtime.block_on(async {
        let docker = engine().await?;
        let image = probe_image(&docker).await;
        let gw = docker0(&docker).await;
        let server = test_server(IpAddr::V4(Ipv4Addr::UNSPECIFIED)).await;
        Some((image, gw, server))
    }) else {
        return;
    };
    let dirs = tempfile::tempdir().unwrap();
    // The requester listens on every interface: its libp2p port is on the
    // Docker bridge's address too, which node info tells the compute node.
    let requester = NodeProc::start(
        &dirs.path().join("r"),
        &["--capacity", "0", "--listen", "/ip4/0.0.0.0/tcp/0"],
    );
    let p2p_port = requester.bootstrap().split('/').nth(4).unwrap().to_string();
    let port = server.port().to_string();
    let compute = NodeProc::start(
        &dirs.path().join("c"),
        &[
            "--bootstrap",
            &requester.bootstrap(),
            "--engines",
            "docker",
            "--accept-network",
            "http",
            "--proxy-resolve",
            &format!("allowed.test={gw}"),
            "--proxy-allow-range",
            &format!("{gw}/32"),
            "--proxy-connect-ports",
            &port,
            "--proxy-http-ports",
            &port,
        ],
    );
    let info = compute.info();
    if !info["engines"].to_string().contains("docker") {
        assert!(
            !super::docker::require_docker(),
            "the node has no Docker engine: {info}"
        );
        return;
    }
    std::thread::sleep(Duration::from_millis(1_500));
    let job = format!(
        "Name: docker http\nType: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      \
         Type: docker\n      Params:\n        Image: {image}\n        Entrypoint: [/probe]\n        \
         Parameters: [http, \"http://allowed.test:{port}/\", \",\", http, \"http://denied.test:{port}/\", \
         \",\", http, \"http://{gw}:{p2p_port}/\", \",\", tcp, \"{gw}\", \"{port}\"]\n    \
         Network:\n      Type: http\n      Domains: [allowed.test, \"{gw}\"]\n    \
         Timeouts:\n      QueueTimeout: 10\n"
    );
    let id = requester.submit(&job);
    let ended = requester.wait(&id, Duration::from_secs(120));
    assert_eq!(ended["state"], "completed", "{ended:#}");
    assert_eq!(executions_on(&ended), vec![compute.id()]);
    let out = dirs.path().join("results");
    let got = cli(
        &requester.api,
        &["job", "get", &id, "-o", out.to_str().unwrap()],
    );
    assert!(got.status.success(), "{}", text(&got.stderr));
    let stdout = std::fs::read_to_string(out.join("stdout")).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[0].starts_with("http 200") && lines[0].ends_with(BANNER),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("http 403"),
        "a domain not allowed: {stdout}"
    );
    assert!(
        lines[2].starts_with("http 403"),
        "a peer's libp2p port: {stdout}"
    );
    assert!(
        lines[3].starts_with("tcp fail"),
        "no direct route: {stdout}"
    );
    let log = std::fs::read_to_string(out.join("network.log")).unwrap();
    assert!(
        log.contains("allowed.test") && log.contains("denied.test"),
        "{log}"
    );
    assert!(
        log.contains(&p2p_port),
        "the refused control-plane port is logged: {log}"
    );
}

#[test]
fn a_full_docker_job_cannot_reach_its_own_nodes_api_or_libp2p_port() {
    // R-NET-2, R-NET-7, R-SEC-3 through a node: its API and libp2p listen
    // on all interfaces, and a `full` job it runs dials both through its
    // gateway, Docker's bridge address and the host's LAN address: every
    // attempt is refused (on main each one connected).
    use super::docker::{docker0, engine, lan_address, probe_image};

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some((image, gw)) = runtime.block_on(async {
        let docker = engine().await?;
        Some((probe_image(&docker).await, docker0(&docker).await))
    }) else {
        return;
    };
    let dirs = tempfile::tempdir().unwrap();
    let data = dirs.path().join("n");
    let args = [
        "node",
        "--data-dir",
        data.to_str().unwrap(),
        "--api",
        "0.0.0.0:0",
        "--listen",
        "/ip4/0.0.0.0/tcp/0",
        "--engines",
        "docker",
        "--accept-network",
        "full",
    ];
    let node = NodeProc::spawn(args.iter().map(|a| a.to_string()).collect());
    if !node.info()["engines"].to_string().contains("docker") {
        assert!(
            !super::docker::require_docker(),
            "no Docker engine on the node"
        );
        return;
    }
    let api = node.api.rsplit(':').next().unwrap().to_string();
    let p2p = node.bootstrap().split('/').nth(4).unwrap().to_string();
    let mut targets = vec![format!("gw {api}"), format!("gw {p2p}")];
    let mut hosts = vec![gw.to_string()];
    hosts.extend(
        lan_address()
            .filter(|a| !a.is_loopback())
            .map(|a| a.to_string()),
    );
    for host in &hosts {
        targets.push(format!("tcp {host} {api}"));
        targets.push(format!("tcp {host} {p2p}"));
    }
    let words: Vec<String> = targets
        .join(" , ")
        .split_whitespace()
        .map(|w| format!("\"{w}\""))
        .collect();
    let job = format!(
        "Type: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      Type: docker\n      \
         Params:\n        Image: {image}\n        Entrypoint: [/probe]\n        \
         Parameters: [{}]\n    Network:\n      Type: full\n    \
         Timeouts:\n      QueueTimeout: 10\n",
        words.join(", ")
    );
    let id = node.submit(&job);
    let ended = node.wait(&id, Duration::from_secs(120));
    assert_eq!(ended["state"], "completed", "{ended:#}");
    let logs = cli(&node.api, &["job", "logs", &id]);
    let stdout = text(&logs.stdout);
    eprintln!("{stdout}");
    assert_eq!(stdout.lines().count(), targets.len(), "{stdout}");
    for l in stdout.lines() {
        // "no banner" would mean it connected: the node answered.
        assert!(l.contains("Connection refused"), "{stdout}");
    }
    // Stopped cleanly, the node takes its firewall table with it.
    let mut node = node;
    let pid = node.child.id();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the node did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    let tables = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    let tables = text(&tables.stdout);
    assert!(!tables.contains(&format!("_{pid}_")), "{tables}");
}

#[test]
fn docker_jobs_go_only_to_nodes_that_have_the_image() {
    // R-POL-3: without --pull-from, a node without the image refuses at once
    // and the job fails saying so, instead of bidding and failing later.
    let Some(image) = super::docker::probe_image_blocking() else {
        return;
    };
    let dirs = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dirs.path().join("a"), &["--engines", "docker"]);
    if !node.info()["engines"].to_string().contains("docker") {
        assert!(
            !super::docker::require_docker(),
            "no Docker engine on the node"
        );
        return;
    }
    let job = |image: &str| {
        format!(
            "Type: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      Type: docker\n      \
             Params:\n        Image: {image}\n        Entrypoint: [/bin/echo, hi]\n    \
             Timeouts:\n      QueueTimeout: 2\n"
        )
    };
    let missing = node.submit(&job("skrei-no-such-image:1"));
    let ended = node.wait(&missing, Duration::from_secs(30));
    assert_eq!(ended["state"], "failed", "{ended:#}");
    assert!(executions_on(&ended).is_empty(), "it never ran: {ended:#}");
    assert_eq!(ended["failure"]["cause"], "no_node_accepts", "{ended:#}");
    let reason = ended["failure"]["detail"].as_str().unwrap();
    assert!(
        reason.contains("image skrei-no-such-image:1 not on the node"),
        "{reason}"
    );

    let present = node.submit(&job(&image));
    let ended = node.wait(&present, Duration::from_secs(60));
    assert_eq!(ended["state"], "completed", "{ended:#}");
    let logs = cli(&node.api, &["job", "logs", &present]);
    assert_eq!(text(&logs.stdout), "hi\n");
}

#[test]
fn a_wasm_http_job_through_a_node_reaches_its_domain_and_is_logged() {
    // R-NET-10 through a node: the component's request goes through the
    // node's egress rules (names, allowed ranges from its flags) into
    // network.log.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
            );
        }
    });
    let files = Files::new();
    let component = files.path("probe.wasm");
    std::fs::write(&component, super::wasm_http::probe()).unwrap();
    let dirs = tempfile::tempdir().unwrap();
    let node = NodeProc::start(
        &dirs.path().join("a"),
        &[
            "--accept-network",
            "http",
            "--proxy-resolve",
            "allowed.test=127.0.0.1",
            "--proxy-allow-range",
            "127.0.0.1/32",
            "--proxy-http-ports",
            &port.to_string(),
        ],
    );
    let module = node.add(&component);
    let job = |name: &str, host: &str| {
        format!(
            "Name: {name}\nType: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      \
             Type: wasm\n      Params:\n        EntryModule:\n          Source:\n            \
             Type: ipfs\n            Params:\n              CID: {module}\n        \
             Parameters: [http, \"{host}:{port}\", /hello]\n    Network:\n      Type: http\n      \
             Domains: [allowed.test]\n    Timeouts:\n      QueueTimeout: 5\n"
        )
    };
    let allowed = node.submit(&job("allowed", "allowed.test"));
    let ended = node.wait(&allowed, Duration::from_secs(60));
    assert_eq!(ended["state"], "completed", "{ended:#}");
    let out = dirs.path().join("allowed");
    let got = cli(
        &node.api,
        &["job", "get", &allowed, "-o", out.to_str().unwrap()],
    );
    assert!(got.status.success(), "{}", text(&got.stderr));
    let stdout = std::fs::read_to_string(out.join("stdout")).unwrap();
    assert!(
        stdout.starts_with("status 200") && stdout.contains("hello"),
        "{stdout}"
    );
    let log = std::fs::read_to_string(out.join("network.log")).unwrap();
    assert!(
        log.contains("\"host\":\"allowed.test\"") && log.contains("\"allow\""),
        "{log}"
    );

    // A name the job did not list: refused, logged, no connection.
    let other = node.submit(&job("other", "other.test"));
    let ended = node.wait(&other, Duration::from_secs(60));
    let out = dirs.path().join("other");
    let got = cli(
        &node.api,
        &["job", "get", &other, "-o", out.to_str().unwrap()],
    );
    assert!(got.status.success(), "{ended:#}");
    let stdout = std::fs::read_to_string(out.join("stdout")).unwrap();
    assert!(stdout.starts_with("error"), "{stdout}");
    let log = std::fs::read_to_string(out.join("network.log")).unwrap();
    assert!(
        log.contains("other.test") && log.contains("\"deny\""),
        "{log}"
    );
}

#[test]
fn an_input_that_never_arrives_fails_the_execution_within_its_timeout() {
    // The requester waits ExecutionTimeout plus a grace from the award: the
    // node's own timeout covers fetching inputs, so the job ends with the
    // reason rather than with the node's silence.
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let server = HeldServer::start();
    let node = NodeProc::start(&dirs.path().join("n"), &["--allow-private-downloads"]);
    let module = node.add(&files.module());
    let job = hello_job("held input", &module, &url_input(&server.url), "").replace(
        "QueueTimeout: 3\n",
        "QueueTimeout: 3\n      ExecutionTimeout: 2\n",
    );
    let started = Instant::now();
    let job_id = node.submit(&job);
    server.wait_for_request();
    let ended = node.wait(&job_id, Duration::from_secs(60));
    assert_eq!(ended["state"], "failed", "{ended:#}");
    let failures: Vec<&str> = ended["job"]["executions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["state"]["failure"]["detail"].as_str())
        .collect();
    assert!(!failures.is_empty(), "{ended:#}");
    for e in ended["job"]["executions"].as_array().unwrap() {
        // R-POL-3: typed, so tools need not read the words.
        assert_eq!(e["state"]["failure"]["cause"], "input_timeout", "{ended:#}");
    }
    for reason in &failures {
        assert!(
            reason.contains("ExecutionTimeout (2 s)"),
            "each attempt ends on the timeout: {ended:#}"
        );
    }
    // Well before the requester's own deadline (2 s + 30 s grace) per attempt.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    server.release();
}
