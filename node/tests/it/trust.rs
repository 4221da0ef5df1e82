//! The API's trust boundaries on real `skrei node` processes, tried as an
//! attacker would (R-SEC-1, R-SEC-5): web pages, other local users, paths
//! named in requests, byte budgets.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::harness::*;

fn job_count(node: &NodeProc) -> usize {
    let list = json(&cli(&node.api, &["job", "list", "--output", "json"]));
    list["jobs"].as_array().map_or(0, Vec::len)
}

/// `host:port` of the node's API.
fn authority(node: &NodeProc) -> String {
    node.api.trim_start_matches("http://").to_string()
}

/// A request as a browser would send it: `Host` and whatever headers the
/// page can make it add, and no token (a page does not have it).
fn browser(
    node: &NodeProc,
    request_line: &str,
    host: &str,
    headers: &str,
    body: &str,
) -> (u16, String) {
    raw_http(
        &node.api,
        &format!(
            "{request_line}\r\nHost: {host}\r\n{headers}Content-Length: {}\r\nConnection: \
             close\r\n\r\n{body}",
            body.len()
        ),
    )
}

// R-SEC-1: what a web page in a local browser can send (a simple
// cross-site POST, the same through DNS rebinding, requests without the
// token) creates nothing and reads nothing.
#[test]
fn r_sec_1_a_web_page_cannot_drive_the_api() {
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dirs.path().join("a"), &[]);
    let module = node.add(&files.module());
    let input = cid_input(&node.add(&files.name()));
    let job = hello_job("from a page", &module, &input, "");
    let own = authority(&node);

    // A cross-site form/fetch POST: text/plain, no preflight.
    let (status, body) = browser(
        &node,
        "POST /api/v1/jobs HTTP/1.1",
        &own,
        "Origin: https://evil.example\r\nContent-Type: text/plain\r\n",
        &job,
    );
    assert!(status == 403 || status == 415, "{status} {body}");
    // The same with the token (were it leaked) and a page's origin: still no.
    let (status, body) = raw_http(
        &node.api,
        &format!(
            "POST /api/v1/jobs HTTP/1.1\r\nHost: {own}\r\nAuthorization: Bearer {}\r\n\
             Origin: https://evil.example\r\nContent-Type: application/yaml\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{job}",
            node.token,
            job.len()
        ),
    );
    assert_eq!(status, 403, "{body}");
    // DNS rebinding: the page's own name, now pointing at 127.0.0.1.
    let rebound = format!("rebind.evil.example:{}", own.rsplit(':').next().unwrap());
    for (line, headers, body) in [
        ("GET /api/v1/node HTTP/1.1", "", ""),
        ("GET /api/v1/jobs HTTP/1.1", "", ""),
        (
            "POST /api/v1/jobs HTTP/1.1",
            "Content-Type: application/yaml\r\n",
            job.as_str(),
        ),
    ] {
        let (status, answer) = browser(&node, line, &rebound, headers, body);
        assert_eq!(status, 421, "{line}: {answer}");
        // ...and with the token as well: the Host alone is refused.
        let (status, answer) = raw_http(
            &node.api,
            &format!(
                "{line}\r\nHost: {rebound}\r\nAuthorization: Bearer {}\r\n{headers}\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                node.token,
                body.len()
            ),
        );
        assert_eq!(status, 421, "{line}: {answer}");
    }
    // No token, no answer.
    let (status, body) = browser(
        &node,
        "POST /api/v1/jobs HTTP/1.1",
        &own,
        "Content-Type: application/yaml\r\n",
        &job,
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("SKREI_API_TOKEN"), "{body}");
    let (status, _) = browser(&node, "GET /api/v1/jobs HTTP/1.1", &own, "", "");
    assert_eq!(status, 401);
    assert_eq!(job_count(&node), 0, "no job was created");
}

// R-SEC-1, R-SEC-2: the node opens no path a request names. The endpoints
// that did (`add` of a path, `get` into a folder) are gone, and a request
// naming a folder writes nothing there, token or not.
#[test]
fn r_sec_1_no_request_makes_the_node_read_or_write_a_path() {
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dirs.path().join("a"), &[]);
    let cid = node.add(&files.name());
    let home = dirs.path().join("home");
    let keys = home.join(".ssh/authorized_keys");
    let secret = dirs.path().join("secret");
    std::fs::write(&secret, "root only\n").unwrap();
    for (path, body) in [
        ("/api/v1/add", serde_json::json!({ "path": secret })),
        (
            "/api/v1/get",
            serde_json::json!({ "cid": cid, "dir": keys }),
        ),
        ("/api/v1/jobs/x/get", serde_json::json!({ "dir": keys })),
        (
            "/api/v1/fetch",
            serde_json::json!({ "cid": cid, "dir": keys }),
        ),
    ] {
        let body = body.to_string();
        let (status, answer) = node.raw(&format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ));
        assert!(status >= 400, "{path}: {status} {answer}");
    }
    assert!(
        !home.exists(),
        "nothing was written under {}",
        home.display()
    );
}

/// A copy of the `skrei` binary that any user may run (the build folder
/// may be private to its owner).
fn public_skrei(dir: &Path) -> std::path::PathBuf {
    let copy = dir.join("skrei");
    std::fs::copy(env!("CARGO_BIN_EXE_skrei"), &copy).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

// R-SEC-1: another local user (`nobody`) cannot have the node read a
// file only its owner may read: the client reads it as the user who runs
// it, and that user has no token either.
#[test]
fn r_sec_1_another_local_user_cannot_read_a_private_file_through_the_node() {
    if !is_root() {
        // Switching to another user needs root; CI runs as root.
        assert!(
            std::env::var_os("SKREI_REQUIRE_DOCKER").is_none(),
            "this test needs root in CI"
        );
        return;
    }
    let dirs = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dirs.path().join("a"), &[]);
    let private = dirs.path().join("private.txt");
    std::fs::write(&private, "root only\n").unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    let bin = tempfile::tempdir().unwrap();
    let skrei = public_skrei(bin.path());
    let as_nobody = |token: Option<&str>| {
        let mut command = std::process::Command::new("setpriv");
        command
            .args(["--reuid", "nobody", "--regid", "nogroup", "--clear-groups"])
            .arg(&skrei)
            .args(["add", private.to_str().unwrap(), "--api", &node.api])
            .env("HOME", "/nonexistent")
            .env_remove("SKREI_API_TOKEN");
        if let Some(token) = token {
            command.env("SKREI_API_TOKEN", token);
        }
        command.output().unwrap()
    };
    // Without the token: refused.
    let out = as_nobody(None);
    assert!(!out.status.success());
    // Even holding the token (were it leaked), the file is read as nobody.
    let out = as_nobody(Some(&node.token));
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
    // The node has no such content: it never read the file.
    let out = skrei_add_local(&dirs.path().join("scratch"), &private);
    let cid = text(&out.stdout).trim().to_string();
    let (status, _) = node.raw(&format!(
        "GET /api/v1/blobs/{cid} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(status, 404);
}

/// `skrei add --data-dir`: the CID of a file, computed on a store of its own.
fn skrei_add_local(store: &Path, file: &Path) -> std::process::Output {
    let out = skrei()
        .args(["add", "--data-dir"])
        .arg(store)
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    out
}

// R-SEC-1: what `get` and `job get` write is the user's, made with the
// user's umask (the node used to write 0644 files as itself).
#[test]
fn r_sec_1_get_and_job_get_write_with_the_users_umask() {
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dirs.path().join("a"), &[]);
    let module = node.add(&files.module());
    let input = cid_input(&node.add(&files.name()));
    let job = node.submit(&hello_job("umask", &module, &input, ""));
    let ended = node.wait(&job, Duration::from_secs(60));
    assert_eq!(ended["state"], "completed", "{ended:#}");
    let cid = node.add(&files.name());
    let got = dirs.path().join("got.txt");
    let results = dirs.path().join("results");
    let with_umask = |args: String| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("umask 077; exec \"$0\" {args} --api {}", node.api))
            .arg(env!("CARGO_BIN_EXE_skrei"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{args}: {}", text(&out.stderr));
    };
    with_umask(format!("get {cid} -o {}", got.display()));
    with_umask(format!("job get {job} -o {}", results.display()));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "skrei\n");
    assert_eq!(mode(&got), 0o600);
    assert_eq!(mode(&results), 0o700);
    assert_eq!(mode(&results.join("stdout")), 0o600);
    assert_eq!(mode(&results.join("outputs/greeting.txt")), 0o600);
}

// R-SEC-5: hard links are sent and stored once; writing them out counts
// every path against the budget, refused before anything is written.
#[test]
fn r_sec_5_get_has_a_byte_budget_and_hard_links_are_sent_once() {
    let dirs = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dirs.path().join("a"), &[]);
    let tree = dirs.path().join("links");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("link-0"), vec![1u8; 256 << 10]).unwrap();
    for i in 1..300 {
        std::fs::hard_link(tree.join("link-0"), tree.join(format!("link-{i}"))).unwrap();
    }
    let cid = node.add(&tree);
    // The node's blob store holds the file's bytes once.
    let blobs = dirs.path().join("a/blobs");
    let stored: u64 = walk_size(&blobs);
    assert!(stored < 4 << 20, "the store holds {stored} bytes");

    let target = dirs.path().join("copy");
    let out = cli(
        &node.api,
        &[
            "get",
            &cid,
            "-o",
            target.to_str().unwrap(),
            "--max-size",
            "10Mi",
        ],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("--max-size"), "{stderr}");
    assert!(stderr.contains("78643200 bytes"), "{stderr}");
    assert!(!target.exists());
    let hidden: Vec<_> = std::fs::read_dir(dirs.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
    let out = cli(&node.api, &["get", &cid, "-o", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 300);
}

fn walk_size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            walk_size(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

// R-SEC-5: a requester fetches results only up to its --max-result-size;
// bigger ones are refused with that reason (not fetched again and again),
// and `job get` says why.
#[test]
fn r_sec_5_results_over_the_requesters_budget_are_refused() {
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let a = NodeProc::start(
        &dirs.path().join("a"),
        &["--capacity", "0", "--max-result-size", "64"],
    );
    let b = NodeProc::start(&dirs.path().join("b"), &["--bootstrap", &a.bootstrap()]);
    let module = a.add(&files.module());
    let input = cid_input(&a.add(&files.name()));
    let job = a.submit(&hello_job("big results", &module, &input, ""));
    let ended = a.wait_for(&job, Duration::from_secs(60), "a refused result", |job| {
        job["results"][0]["refused"].is_string()
    });
    assert_eq!(ended["state"], "completed", "{ended:#}");
    let reason = ended["results"][0]["refused"].as_str().unwrap();
    assert!(reason.contains("--max-result-size"), "{reason}");
    let out = cli(
        &a.api,
        &[
            "job",
            "get",
            &job,
            "-o",
            dirs.path().join("r").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--max-result-size"),
        "{}",
        text(&out.stderr)
    );
    drop(b);
}

// R-SEC-5: a compute node fetches a CID input only up to its
// --max-input-size, and says so.
#[test]
fn r_sec_5_inputs_over_the_compute_nodes_budget_fail_with_that_reason() {
    let files = Files::new();
    let dirs = tempfile::tempdir().unwrap();
    let a = NodeProc::start(&dirs.path().join("a"), &["--capacity", "0"]);
    let b = NodeProc::start(
        &dirs.path().join("b"),
        &["--bootstrap", &a.bootstrap(), "--max-input-size", "1Ki"],
    );
    let big = files.path("big.txt");
    std::fs::write(&big, vec![b'x'; 8 << 10]).unwrap();
    let module = a.add(&files.module());
    let input = cid_input(&a.add(&big));
    let job = a.submit(&hello_job("big input", &module, &input, ""));
    let ended = a.wait(&job, Duration::from_secs(120));
    assert_eq!(ended["state"], "failed", "{ended:#}");
    let reason = ended["failure"]["detail"].as_str().unwrap_or_default();
    assert!(reason.contains("budget of 1024 bytes"), "{reason}");
    drop(b);
}

// R-SEC-1: the client sends a token it found in this user's record only to
// a socket of this user: another user who takes the port of a stopped node
// gets nothing.
#[test]
fn r_sec_1_a_recorded_token_is_not_sent_to_another_users_listener() {
    if !is_root() {
        assert!(
            std::env::var_os("SKREI_REQUIRE_DOCKER").is_none(),
            "this test needs root in CI"
        );
        return;
    }
    let dirs = tempfile::tempdir().unwrap();
    let state = dirs.path().join("state");
    // `nobody` listens on a loopback port and reports what it receives.
    let mut listener = std::process::Command::new("setpriv")
        .args(["--reuid", "nobody", "--regid", "nogroup", "--clear-groups"])
        .args([
            // The system's Python: one under root's home is not nobody's.
            "/usr/bin/python3",
            "-c",
            "import socket,sys\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen()\n\
             print(s.getsockname()[1],flush=True)\ns.settimeout(20)\n\
             try:\n  c,_=s.accept();c.settimeout(2);print(c.recv(4096),flush=True)\n\
             except Exception as e:\n  print('nothing',flush=True)\n",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(listener.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let port: u16 = line.trim().parse().unwrap();
    // This user's record says a node of ours was at that address.
    let token_file = dirs.path().join("api.token");
    std::fs::write(&token_file, "ab".repeat(32)).unwrap();
    let apis = state.join("apis");
    std::fs::create_dir_all(&apis).unwrap();
    std::fs::write(
        apis.join(format!("127_0_0_1_{port}")),
        serde_json::json!({ "api": format!("127.0.0.1:{port}"), "token_file": token_file })
            .to_string(),
    )
    .unwrap();
    let run = skrei()
        .args(["node", "info", "--api", &format!("http://127.0.0.1:{port}")])
        .env("SKREI_STATE_DIR", &state)
        .env_remove("SKREI_API_TOKEN")
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(
        text(&run.stderr).contains("is not this user's"),
        "{}",
        text(&run.stderr)
    );
    let _ = listener.kill();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut out, &mut rest);
    let _ = listener.wait();
    assert!(
        !rest.contains(&"ab".repeat(32)),
        "the token was sent: {rest}"
    );
}
