//! The `skrei` command line, run as a user would (R-CLI-1, R-CLI-2).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn skrei(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skrei"))
        .args(args)
        .output()
        .expect("run skrei")
}

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
        .display()
        .to_string()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", text(&out.stdout)))
}

fn write(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, content).unwrap();
    p
}

#[test]
fn validate_prints_the_normalised_job() {
    // R-JOB-2
    let out = skrei(&["job", "validate", &repo("examples/jobs/docker-http.yaml")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let job = json(&out);
    assert_eq!(job["Tasks"][0]["Network"]["Type"], "HTTP");
    assert_eq!(
        job["Tasks"][0]["Network"]["Domains"],
        serde_json::json!([".example.com", "api.example.org"])
    );
}

#[test]
fn validate_names_the_field_line_and_fix_and_exits_2() {
    let out = skrei(&[
        "job",
        "validate",
        &repo("protocol/tests/bad-jobs/unknown-field.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("Tasks[0].Engine.Params.Imgae (line 9, column 9)"),
        "{err}"
    );
    assert!(err.contains("did you mean `Image`?"), "{err}");
    assert!(out.stdout.is_empty());
}

// Issue 17: job files as templates, filled as `bacalhau job run` fills
// them: `--template-vars`, `--template-envs`; other constructs, missing
// values and unfilled templates are errors with their place; `--no-template`
// takes the file as written.
#[test]
fn templates_are_filled_before_the_job_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let job = write(
        &dir,
        "t.yaml",
        b"Type: batch\nCount: {{ .count }}\nTasks:\n  - Name: main\n    Engine:\n      Type: docker\n      \
          Params:\n        Image: \"{{.image}}\"\n        Entrypoint: [echo, \"{{.word}}\"]\n",
    );
    let job = job.to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_skrei"))
        .args(["job", "validate", job, "--template-vars", "count=2"])
        .args([
            "--template-vars",
            "image=busybox:1.37.0",
            "--template-envs",
            "^SKREI_TEST_T_",
        ])
        .env("SKREI_TEST_T_X", "unused")
        .env("word", "not matched by the pattern")
        .output()
        .unwrap();
    // `word` has no value: the pattern matches no variable of that name.
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("line 9, column 29"), "{err}");
    assert!(err.contains("--template-vars word=VALUE"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_skrei"))
        .args(["job", "validate", job, "--template-vars", "count=2"])
        .args([
            "--template-vars",
            "image=busybox:1.37.0",
            "--template-envs",
            "^word$",
        ])
        .env("word", "hello")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rendered = json(&out);
    assert_eq!(rendered["Count"], 2);
    assert_eq!(
        rendered["Tasks"][0]["Engine"]["Params"]["Image"],
        "busybox:1.37.0"
    );
    assert_eq!(
        rendered["Tasks"][0]["Engine"]["Params"]["Entrypoint"],
        serde_json::json!(["echo", "hello"])
    );

    // No values: the file is a template, said where and how to fill it.
    let out = skrei(&["job", "validate", job]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("this job file is a template"), "{err}");
    assert!(err.contains("line 2, column 8"), "{err}");
    assert!(err.contains("--template-vars count=VALUE"), "{err}");
    assert!(err.contains("--no-template"), "{err}");

    // A construct beyond substitution is named.
    let piped = write(
        &dir,
        "p.yaml",
        b"Type: batch\nName: \"{{ .name | upper }}\"\n",
    );
    let out = skrei(&[
        "job",
        "validate",
        piped.to_str().unwrap(),
        "--template-vars",
        "name=x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("a pipeline (`|`)"),
        "{}",
        text(&out.stderr)
    );

    // --no-template: braces in a string are the job's own.
    let literal = write(
        &dir,
        "l.yaml",
        b"Type: batch\nTasks:\n  - Name: main\n    Engine:\n      Type: docker\n      Params:\n        \
          Image: busybox\n        Entrypoint: [echo, \"{{.Id}}\"]\n",
    );
    let out = skrei(&[
        "job",
        "validate",
        literal.to_str().unwrap(),
        "--no-template",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        json(&out)["Tasks"][0]["Engine"]["Params"]["Entrypoint"][1],
        "{{.Id}}"
    );
}

// Issue 17: a Priority is accepted, and the user is told it is not used.
#[test]
fn validate_notes_an_unused_priority() {
    let dir = tempfile::tempdir().unwrap();
    let job = write(
        &dir,
        "p.yaml",
        b"Type: batch\nPriority: 10\nTasks:\n  - Name: main\n    Engine: {Type: docker, Params: {Image: busybox}}\n",
    );
    let out = skrei(&["job", "validate", job.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("notice:"), "{err}");
    assert!(
        err.contains("Priority 10 is accepted and not used"),
        "{err}"
    );
    assert!(json(&out).get("Priority").is_none());
}

#[test]
fn validate_errors_as_json() {
    let out = skrei(&[
        "job",
        "validate",
        "--output",
        "json",
        &repo("protocol/tests/bad-jobs/bad-domain-port.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert_eq!(v["errors"][0]["path"], "Tasks[0].Network.Domains[0]");
    assert_eq!(v["errors"][0]["line"], 12);
}

#[test]
fn validate_reads_stdin_and_refuses_binary_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let bin = write(&dir, "job.yaml", b"Name: \xff\xfe\n");
    let out = skrei(&["job", "validate", bin.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not UTF-8"),
        "{}",
        text(&out.stderr)
    );

    let out = skrei(&["job", "validate", "/nonexistent/job.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("reading job file /nonexistent/job.yaml"));

    let mut child = Command::new(env!("CARGO_BIN_EXE_skrei"))
        .args(["job", "validate", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"Tasks\": [{\"Engine\": {\"Type\": \"docker\", \"Params\": {\"Image\": \"busybox\"}}}]}")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        json(&out)["Tasks"][0]["Engine"]["Params"]["Image"],
        "busybox"
    );
}

#[test]
fn docker_run_dry_run_builds_the_job_from_flags() {
    // R-CLI-1: Bacalhau's flags; the job equals the one a file describes.
    let out = skrei(&[
        "docker",
        "run",
        "--dry-run",
        "--network",
        "http",
        "--domain",
        "API.Example.com.",
        "--domain",
        ".example.com",
        "-i",
        "src=https://example.com/data.csv,dst=/inputs/data.csv",
        "-e",
        "A=1",
        "busybox:1.36",
        "--",
        "wc",
        "-l",
        "/inputs/data.csv",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let job = json(&out);
    let task = &job["Tasks"][0];
    assert_eq!(
        task["Network"]["Domains"],
        serde_json::json!([".example.com"])
    );
    assert_eq!(
        task["Engine"]["Params"]["Parameters"],
        serde_json::json!(["wc", "-l", "/inputs/data.csv"])
    );
    assert_eq!(task["ResultPaths"][0]["Path"], "/outputs");
    assert_eq!(
        task["InputSources"][0]["Source"]["Params"]["URL"],
        "https://example.com/data.csv"
    );
}

// Issue 17: Bacalhau's flag habits: --entrypoint split on commas,
// --namespace, --task-name, --queue-timeout; -i with dst= after a URL.
#[test]
fn docker_run_reads_bacalhaus_flag_habits() {
    let out = skrei(&[
        "docker",
        "run",
        "--dry-run",
        "--entrypoint",
        "/bin/sh,-c",
        "--namespace",
        "team",
        "--task-name",
        "crunch",
        "--queue-timeout",
        "30",
        "-i",
        "https://example.com/data.csv,dst=/data/data.csv",
        "busybox:1.37.0",
        "--",
        "wc -l /data/data.csv",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let job = json(&out);
    let task = &job["Tasks"][0];
    assert_eq!(
        task["Engine"]["Params"]["Entrypoint"],
        serde_json::json!(["/bin/sh", "-c"])
    );
    assert_eq!(job["Namespace"], "team");
    assert_eq!(task["Name"], "crunch");
    assert_eq!(task["Timeouts"]["QueueTimeout"], 30);
    assert_eq!(task["InputSources"][0]["Target"], "/data/data.csv");
    assert_eq!(
        task["InputSources"][0]["Source"]["Params"]["URL"],
        "https://example.com/data.csv"
    );
    let out = skrei(&[
        "docker",
        "run",
        "--dry-run",
        "-i",
        "src=s3://bucket/sets/*,dst=/data,opt=region=eu-west-1",
        "busybox",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let source = &json(&out)["Tasks"][0]["InputSources"][0]["Source"];
    assert_eq!(source["Type"], "s3");
    assert_eq!(
        source["Params"],
        serde_json::json!({"Bucket": "bucket", "Key": "sets/*", "Region": "eu-west-1"})
    );
    let out = skrei(&["docker", "run", "--dry-run", "--target", "all", "busybox"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(json(&out)["Type"], "ops");
    let out = skrei(&[
        "docker",
        "run",
        "--dry-run",
        "-i",
        "s3://Bad_Bucket/key",
        "busybox",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is not an S3 bucket name"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn docker_run_reports_every_bad_flag() {
    let out = skrei(&[
        "docker",
        "run",
        "--dry-run",
        "--network",
        "http",
        "--domain",
        "*.example.com",
        "--domain",
        "example.com:8080",
        "-p",
        "ipfs",
        "busybox",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("--domain: "), "{err}");
    assert!(err.contains("`.example.com`"), "{err}");
    assert!(err.contains("ports are not part of a domain"), "{err}");
    assert!(
        err.contains("--publisher: the ipfs publisher is not supported"),
        "{err}"
    );
}

#[test]
fn run_without_a_node_says_what_to_do() {
    // Port 9 (discard) on loopback: nothing listens there in a test sandbox.
    let out = skrei(&["docker", "run", "--api", "http://127.0.0.1:9", "busybox"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot reach the node at http://127.0.0.1:9"),
        "{err}"
    );
    assert!(err.contains("skrei node"), "{err}");
}

#[test]
fn wasm_run_sends_a_small_local_module_inline() {
    let dir = tempfile::tempdir().unwrap();
    let module = write(&dir, "hello.wasm", b"\0asm\x01\0\0\0");
    let out = skrei(&[
        "wasm",
        "run",
        "--dry-run",
        module.to_str().unwrap(),
        "--",
        "world",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let job = json(&out);
    let params = &job["Tasks"][0]["Engine"]["Params"];
    assert_eq!(params["EntryModule"]["Source"]["Type"], "inline");
    assert_eq!(
        params["EntryModule"]["Source"]["Params"]["URL"],
        "data:application/wasm;base64,AGFzbQEAAAA="
    );
    assert_eq!(params["Entrypoint"], "_start");
    assert_eq!(params["Parameters"], serde_json::json!(["world"]));

    let out = skrei(&["wasm", "run", "--dry-run", "no-such-module.wasm"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("neither a CID nor a URL"));
}

#[test]
fn policy_check_bids_or_refuses_with_the_reason() {
    // R-POL-1, R-POL-2
    let dir = tempfile::tempdir().unwrap();
    let narrow = write(&dir, "narrow.txt", b"# our partners\n.example.com\n");
    let job = repo("examples/jobs/docker-http.yaml"); // .example.com + api.example.org

    let out = skrei(&["policy", "check", &job]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).starts_with("refuse: "),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).contains("http"), "{}", text(&out.stdout));

    let out = skrei(&["policy", "check", "--accept-network", "http", &job]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "bid\n");

    let out = skrei(&[
        "policy",
        "check",
        "--accept-network",
        "http",
        "--allowlist",
        narrow.to_str().unwrap(),
        &job,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("api.example.org"),
        "{}",
        text(&out.stdout)
    );

    let both = write(
        &dir,
        "both.txt",
        b".example.com\napi.example.org # partner\n",
    );
    let out = skrei(&[
        "policy",
        "check",
        "--accept-network",
        "http",
        "--allowlist",
        both.to_str().unwrap(),
        &job,
    ]);
    assert_eq!(text(&out.stdout), "bid\n", "{}", text(&out.stderr));
}

#[test]
fn policy_check_rejects_bad_allowlists_and_modes_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        &dir,
        "allow.txt",
        b"ok.example.com\n\n*.example.com\nhttps://x.org/\n",
    );
    let job = repo("examples/jobs/docker-http.yaml");
    let out = skrei(&[
        "policy",
        "check",
        "--accept-network",
        "http",
        "--allowlist",
        bad.to_str().unwrap(),
        &job,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("allow.txt:3"), "{err}");
    assert!(err.contains("allow.txt:4"), "{err}");

    let out = skrei(&["policy", "check", "--accept-network", "sometimes", &job]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--accept-network"));
}

#[test]
fn add_prints_a_cid_and_get_writes_the_same_bytes_back() {
    // R-VOL-3
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("a.txt"), "alpha").unwrap();
    std::fs::write(tree.join("sub/b.bin"), [0u8, 1, 2, 255]).unwrap();
    let data_arg = data.to_str().unwrap();

    let out = skrei(&[
        "add",
        "--data-dir",
        data_arg,
        "--output",
        "json",
        tree.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cid = json(&out)["cid"].as_str().unwrap().to_string();
    assert!(cid.starts_with("bafyr4i"), "{cid}");

    let copy = dir.path().join("copy");
    let out = skrei(&[
        "get",
        &cid,
        "--data-dir",
        data_arg,
        "-o",
        copy.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(copy.join("a.txt")).unwrap(),
        "alpha"
    );
    assert_eq!(
        std::fs::read(copy.join("sub/b.bin")).unwrap(),
        [0u8, 1, 2, 255]
    );

    // Writing over an existing folder, a CID from IPFS, a missing path, a bad
    // provider address: clear errors, nothing written.
    let out = skrei(&[
        "get",
        &cid,
        "--data-dir",
        data_arg,
        "-o",
        copy.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let out = skrei(&[
        "get",
        "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
        "--data-dir",
        data_arg,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("skrei add"),
        "{}",
        text(&out.stderr)
    );
    let out = skrei(&["add", "--data-dir", data_arg, "/nonexistent/path"]);
    assert_eq!(out.status.code(), Some(2));
    let out = skrei(&["get", &cid, "--data-dir", data_arg, "--from", "not json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--from"));
}

#[test]
fn node_settings_are_checked_before_anything_starts() {
    // R-OPS-1: the config file's keys are the flags' names; mistakes name
    // the key or flag and what to write.
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        &dir,
        "node.toml",
        b"accept-network = \"http\"\nallow-list = \"x\"\n",
    );
    let out = skrei(&["node", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("allow-list"),
        "{}",
        text(&out.stderr)
    );

    let out = skrei(&[
        "node",
        "--allowlist",
        "/dev/null",
        "--data-dir",
        "/nonexistent/x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("add --accept-network=http"),
        "{}",
        text(&out.stderr)
    );

    let out = skrei(&["node", "--accept-network", "sometimes"]);
    assert_eq!(out.status.code(), Some(2));
    let out = skrei(&["node", "--api", "localhost"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("HOST:PORT"),
        "{}",
        text(&out.stderr)
    );
    // --api-allow takes an address or a CIDR range, host bits clear.
    for (bad, says) in [
        ("gateway", "is not a CIDR range"),
        ("172.18.0.1/16", "write `172.18.0.0/16`"),
    ] {
        let out = skrei(&["node", "--api-allow", bad, "--data-dir", "/nonexistent/x"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("--api-allow") && text(&out.stderr).contains(says),
            "{}",
            text(&out.stderr)
        );
    }
    // --s3-endpoint needs the operator's credentials, found at start.
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_skrei"))
        .args(["node", "--s3-endpoint", "http://127.0.0.1:9", "--data-dir"])
        .arg(home.path().join("data"))
        .env("HOME", home.path())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no S3 credentials: set AWS_ACCESS_KEY_ID"),
        "{}",
        text(&out.stderr)
    );
    let out = skrei(&["devstack", "--nodes", "2", "--policy", "5=http"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("node 5 does not exist"),
        "{}",
        text(&out.stderr)
    );
}
