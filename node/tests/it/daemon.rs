//! Nodes for real: `skrei devstack`, `skrei node` processes, the API
//! (R-CLI-1, R-OPS-2, R-POL-1..3, R-NET-7).

use std::path::Path;
use std::process::Command;

fn skrei() -> Command {
    Command::new(env!("CARGO_BIN_EXE_skrei"))
}

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
