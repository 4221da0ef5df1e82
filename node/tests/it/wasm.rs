//! The WASM engine under wasmtime with real WASI modules (written in WAT):
//! inputs readable and not writable, outputs collected, limits enforced
//! (R-VOL-1, R-VOL-2, R-NET-1, R-NET-10).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use protocol::job::{
    DEFAULT_WASM_ENTRYPOINT, InlineSource, InputSource, ModuleSource, Network, NetworkMode,
    ResultPath, Source, WasmParams,
};
use skrei_node::executor::wasm::{Cancel, TRAP_EXIT_CODE, WasmExecutor, WasmTask};
use skrei_node::executor::{ExecError, ExecutionDir, LimitKind, Limits};

const IMPORTS: &str = r#"
 (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
 (func $check (param i32) (if (local.get 0) (then (call $exit (i32.add (i32.const 10) (local.get 0))))))
"#;

fn module(body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        "(module {IMPORTS} (memory (export \"memory\") 2) {body})"
    ))
    .expect("valid WAT")
}

/// Reads /inputs/name.txt, writes "hello <name>" to /outputs/greeting.txt and stdout.
fn greeter() -> Vec<u8> {
    module(
        r#"
 (data (i32.const 100) "name.txt")
 (data (i32.const 120) "greeting.txt")
 (data (i32.const 200) "hello ")
 (func (export "_start") (local $in i32) (local $out i32) (local $n i32)
   (call $check (call $path_open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 8)
       (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 12)))
   (local.set $in (i32.load (i32.const 12)))
   (i32.store (i32.const 0) (i32.const 1024))
   (i32.store (i32.const 4) (i32.const 1024))
   (call $check (call $fd_read (local.get $in) (i32.const 0) (i32.const 1) (i32.const 8)))
   (local.set $n (i32.load (i32.const 8)))
   (call $check (call $path_open (i32.const 4) (i32.const 0) (i32.const 120) (i32.const 12)
       (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 12)))
   (local.set $out (i32.load (i32.const 12)))
   (i32.store (i32.const 16) (i32.const 200))
   (i32.store (i32.const 20) (i32.const 6))
   (i32.store (i32.const 24) (i32.const 1024))
   (i32.store (i32.const 28) (local.get $n))
   ;; One iovec per call: WASI may write only the first of several.
   (call $check (call $fd_write (local.get $out) (i32.const 16) (i32.const 1) (i32.const 8)))
   (call $check (call $fd_write (local.get $out) (i32.const 24) (i32.const 1) (i32.const 8)))
   (call $check (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 8)))
   (call $check (call $fd_write (i32.const 1) (i32.const 24) (i32.const 1) (i32.const 8))))
"#,
    )
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: ExecutionDir,
    params: WasmParams,
    inputs: Vec<InputSource>,
    outputs: Vec<ResultPath>,
    env: BTreeMap<String, String>,
    network: Network,
}

impl Fixture {
    /// An execution folder with /inputs/name.txt = "world" materialised
    /// read-only, and one output folder /outputs.
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ExecutionDir::new(tmp.path().join("exec"));
        let input = InputSource {
            source: Source::Inline(InlineSource {
                url: "data:text/plain;base64,d29ybGQ=".into(),
            }),
            target: "/inputs/name.txt".into(),
            alias: None,
        };
        let host = dir.input(&input.target);
        std::fs::create_dir_all(host.parent().unwrap()).unwrap();
        std::fs::write(&host, "world").unwrap();
        Fixture {
            _tmp: tmp,
            dir,
            params: WasmParams {
                entry_module: ModuleSource {
                    source: input.source.clone(),
                },
                entrypoint: DEFAULT_WASM_ENTRYPOINT.into(),
                parameters: vec![],
                environment_variables: BTreeMap::new(),
            },
            inputs: vec![input],
            outputs: vec![ResultPath {
                name: "outputs".into(),
                path: "/outputs".into(),
            }],
            env: BTreeMap::new(),
            network: Network::default(),
        }
    }

    fn task<'a>(&'a self, module: &'a [u8], limits: Limits) -> WasmTask<'a> {
        WasmTask {
            execution_id: "e1",
            module,
            params: &self.params,
            task_env: &self.env,
            inputs: &self.inputs,
            result_paths: &self.outputs,
            network: &self.network,
            dir: &self.dir,
            limits,
            deny: &[],
        }
    }

    fn result(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.results().join(name)).unwrap_or_default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(20),
        memory_bytes: 64 << 20,
        output_bytes: 1 << 20,
        cpu_millis: None,
        fuel: None,
    }
}

#[test]
fn reads_inputs_writes_outputs_and_captures_stdout() {
    // R-VOL-1, R-VOL-2
    let f = Fixture::new();
    let exec = WasmExecutor::new(false).unwrap();
    let wasm = greeter();
    let out = runtime()
        .block_on(exec.run(f.task(&wasm, limits()), Cancel::default()))
        .unwrap();
    assert_eq!(out.exit_code, 0);
    assert_eq!(f.result("stdout"), "hello world");
    assert_eq!(f.result("outputs/greeting.txt"), "hello world");
    assert_eq!(f.result("exitCode"), "0");
    assert_eq!(out.stdout_bytes, 11);
    assert!(!out.stdout_truncated);
}

#[test]
fn inputs_are_read_only() {
    // R-VOL-1: path_open with create+write on the inputs preopen must fail.
    let f = Fixture::new();
    let exec = WasmExecutor::new(false).unwrap();
    let wasm = module(
        r#"
 (data (i32.const 100) "new.txt")
 (func (export "_start")
   (call $check (call $path_open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 7)
       (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 12))))
"#,
    );
    let out = runtime()
        .block_on(exec.run(f.task(&wasm, limits()), Cancel::default()))
        .unwrap();
    assert!(
        out.exit_code > 10,
        "the write was allowed (exit {})",
        out.exit_code
    );
    assert!(!f.dir.input("/inputs/new.txt").exists());
}

#[test]
fn exit_codes_and_traps_are_results() {
    let f = Fixture::new();
    let exec = WasmExecutor::new(false).unwrap();
    let rt = runtime();
    let exit3 = module(r#"(func (export "_start") (call $exit (i32.const 3)))"#);
    let out = rt
        .block_on(exec.run(f.task(&exit3, limits()), Cancel::default()))
        .unwrap();
    assert_eq!(out.exit_code, 3);
    assert_eq!(f.result("exitCode"), "3");

    let trap = module(r#"(func (export "_start") unreachable)"#);
    let out = rt
        .block_on(exec.run(f.task(&trap, limits()), Cancel::default()))
        .unwrap();
    assert_eq!(out.exit_code, TRAP_EXIT_CODE);
    assert!(
        f.result("stderr").contains("trapped"),
        "{}",
        f.result("stderr")
    );
}

#[test]
fn an_endless_loop_times_out() {
    let f = Fixture::new();
    let exec = WasmExecutor::new(false).unwrap();
    let spin = module(r#"(func (export "_start") (loop $l (br $l)))"#);
    let limits = Limits {
        timeout: Duration::from_millis(300),
        ..limits()
    };
    let start = Instant::now();
    let err = runtime()
        .block_on(exec.run(f.task(&spin, limits), Cancel::default()))
        .unwrap_err();
    assert!(matches!(err, ExecError::Timeout(_)), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn cancel_stops_a_running_module() {
    let f = Fixture::new();
    let exec = WasmExecutor::new(false).unwrap();
    let spin = module(r#"(func (export "_start") (loop $l (br $l)))"#);
    let cancel = Cancel::default();
    let c = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        c.cancel();
    });
    let err = runtime()
        .block_on(exec.run(f.task(&spin, limits()), cancel))
        .unwrap_err();
    assert!(matches!(err, ExecError::Cancelled), "{err}");
}

#[test]
fn a_memory_hog_hits_the_memory_limit() {
    let f = Fixture::new();
    let exec = WasmExecutor::new(false).unwrap();
    let hog = module(r#"(func (export "_start") (drop (memory.grow (i32.const 30000))))"#);
    let err = runtime()
        .block_on(exec.run(f.task(&hog, limits()), Cancel::default()))
        .unwrap_err();
    assert!(
        matches!(
            err,
            ExecError::Limit {
                kind: LimitKind::Memory,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn fuel_bounds_cpu_when_metered() {
    let f = Fixture::new();
    let exec = WasmExecutor::new(true).unwrap();
    let spin = module(r#"(func (export "_start") (loop $l (br $l)))"#);
    let limits = Limits {
        fuel: Some(1_000_000),
        ..limits()
    };
    let err = runtime()
        .block_on(exec.run(f.task(&spin, limits), Cancel::default()))
        .unwrap_err();
    assert!(
        matches!(
            err,
            ExecError::Limit {
                kind: LimitKind::Cpu,
                ..
            }
        ),
        "{err}"
    );
}

/// A WASI 0.2 command (component) whose `run` spins forever.
fn spinning_component() -> Vec<u8> {
    crate::wasm_http::componentize(
        "spin",
        r#"(module
             (memory (export "memory") 1)
             (func (export "wasi:cli/run@0.2.12#run") (result i32)
               (loop $l (br $l))
               (i32.const 0)))"#,
    )
}

/// Runs `guest` with `cpu_millis` of a core over `timeout`.
fn spin_with_cpu(
    guest: &[u8],
    cpu_millis: Option<u64>,
    timeout: Duration,
) -> (ExecError, Duration) {
    let f = Fixture::new();
    let exec = WasmExecutor::new(false).unwrap();
    let limits = Limits {
        timeout,
        cpu_millis,
        ..limits()
    };
    let start = Instant::now();
    let err = runtime()
        .block_on(exec.run(f.task(guest, limits), Cancel::default()))
        .unwrap_err();
    (err, start.elapsed())
}

// Issue 15 (R-PLC-1): what a node gives a WASM task of CPU it enforces. A
// task asking for 50m over a 20 s timeout may use 1 s of CPU time; a guest
// that spins is stopped there, with that reason, long before its timeout.
#[test]
fn r_plc_1_a_module_spinning_past_its_cpu_allowance_is_stopped() {
    let spin = module(r#"(func (export "_start") (loop $l (br $l)))"#);
    let (err, took) = spin_with_cpu(&spin, Some(50), Duration::from_secs(20));
    assert!(
        matches!(&err, ExecError::Limit { kind: LimitKind::Cpu, detail } if detail.contains("1.00 s of CPU time")),
        "{err}"
    );
    assert!(err.to_string().contains("CPU limit"), "{err}");
    assert!(
        took >= Duration::from_secs(1),
        "stopped after {took:?}, before its allowance"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    // A whole core over the timeout: the timeout comes first.
    let (err, _) = spin_with_cpu(&spin, Some(1000), Duration::from_millis(500));
    assert!(matches!(err, ExecError::Timeout(_)), "{err}");
}

#[test]
fn r_plc_1_a_component_spinning_past_its_cpu_allowance_is_stopped() {
    let spin = spinning_component();
    let (err, took) = spin_with_cpu(&spin, Some(50), Duration::from_secs(20));
    assert!(
        matches!(&err, ExecError::Limit { kind: LimitKind::Cpu, detail } if detail.contains("1.00 s of CPU time")),
        "{err}"
    );
    assert!(
        took >= Duration::from_secs(1),
        "stopped after {took:?}, before its allowance"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    let (err, _) = spin_with_cpu(&spin, None, Duration::from_millis(500));
    assert!(matches!(err, ExecError::Timeout(_)), "{err}");
}

#[test]
fn stdout_over_the_cap_is_truncated_not_a_trap() {
    // 64 MiB written in 64 KiB writes, 1 MiB kept.
    let f = Fixture::new();
    let exec = WasmExecutor::new(false).unwrap();
    let chatty = module(
        r#"
 (func (export "_start") (local $i i32)
   (i32.store (i32.const 0) (i32.const 65536))
   (i32.store (i32.const 4) (i32.const 65536))
   (loop $l
     (call $check (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
     (local.set $i (i32.add (local.get $i) (i32.const 1)))
     (br_if $l (i32.lt_u (local.get $i) (i32.const 1024)))))
"#,
    );
    let out = runtime()
        .block_on(exec.run(f.task(&chatty, limits()), Cancel::default()))
        .unwrap();
    assert_eq!(out.exit_code, 0);
    assert!(out.stdout_truncated);
    assert_eq!(out.stdout_bytes, 64 << 20);
    let kept = std::fs::metadata(f.dir.results().join("stdout"))
        .unwrap()
        .len();
    assert_eq!(kept, 1 << 20);
}

#[test]
fn networked_wasm_jobs_are_refused_not_run_unfiltered() {
    // R-NET-10: core modules have no wasi-http to police.
    let f = Fixture::new();
    let exec = WasmExecutor::new(false).unwrap();
    let wasm = greeter();
    let mut task = f.task(&wasm, limits());
    let http = Network {
        r#type: NetworkMode::Http,
        domains: protocol::domain::DomainSet::parse(["example.com"]).unwrap(),
    };
    task.network = &http;
    let err = runtime()
        .block_on(exec.run(task, Cancel::default()))
        .unwrap_err();
    assert!(matches!(err, ExecError::Unavailable(_)), "{err}");
    assert!(!f.dir.results().join("stdout").exists());
}

#[test]
fn bad_modules_are_reported() {
    let f = Fixture::new();
    let exec = WasmExecutor::new(false).unwrap();
    let rt = runtime();
    let err = rt
        .block_on(exec.run(f.task(b"not wasm", limits()), Cancel::default()))
        .unwrap_err();
    assert!(err.to_string().contains("not valid WebAssembly"), "{err}");
    let no_start = wat::parse_str("(module)").unwrap();
    let err = rt
        .block_on(exec.run(f.task(&no_start, limits()), Cancel::default()))
        .unwrap_err();
    assert!(err.to_string().contains("`_start`"), "{err}");
}

#[test]
fn compiled_modules_are_cached_by_cid() {
    let exec = WasmExecutor::new(false).unwrap();
    let wasm = greeter();
    let (a, _) = exec.compile(&wasm).unwrap();
    let start = Instant::now();
    let (b, _) = exec.compile(&wasm).unwrap();
    assert_eq!(a, b);
    assert!(a.to_string().starts_with("bafkr4i"));
    assert!(start.elapsed() < Duration::from_millis(50));
}
