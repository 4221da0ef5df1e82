//! WASM execution start-up through skrei's executor: a hello-world WASI
//! module, cold (compile + run) and warm (compiled module cached by CID),
//! against instantiating the same precompiled module with bare wasmtime
//! (the floor). Issue 5's goal: warm start under 5 ms.
//!
//! ```sh
//! cargo bench -p node --bench wasm            # updates docs/BENCHMARKS.md
//! cargo bench -p node --bench wasm -- --quick # prints only
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use protocol::job::{
    DEFAULT_WASM_ENTRYPOINT, InlineSource, ModuleSource, Network, Source, WasmParams,
};
use skrei_node::executor::wasm::{Cancel, WasmExecutor, WasmTask};
use skrei_node::executor::{ExecutionDir, Limits};

#[path = "support/durations.rs"]
mod durations;
mod support;
use durations::{ms, pct};
use support::{machine_line, today, write_section};

const HELLO: &str = r#"(module
 (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
 (memory (export "memory") 1)
 (data (i32.const 16) "hello, world\n")
 (func (export "_start")
   (i32.store (i32.const 0) (i32.const 16))
   (i32.store (i32.const 4) (i32.const 13))
   (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 20 } else { 200 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let wasm = wat::parse_str(HELLO)?;
    let tmp = std::env::temp_dir().join(format!("skrei-wasm-bench-{}", std::process::id()));
    let params = WasmParams {
        entry_module: ModuleSource {
            source: Source::Inline(InlineSource {
                url: "data:application/wasm;base64,".into(),
            }),
        },
        entrypoint: DEFAULT_WASM_ENTRYPOINT.into(),
        parameters: vec![],
        environment_variables: BTreeMap::new(),
    };
    let env = BTreeMap::new();
    let limits = Limits {
        timeout: Duration::from_secs(10),
        ..Limits::default()
    };

    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut bare = Vec::new();
    let warm_exec = WasmExecutor::new(false)?;
    warm_exec.compile(&wasm)?;
    let engine = wasmtime::Engine::default();
    let module = wasmtime::Module::new(&engine, &wasm)?;
    for i in 0..runs {
        // Interleaved so machine noise hits all three alike.
        let dir = ExecutionDir::new(tmp.join(format!("c{i}")));
        let exec = WasmExecutor::new(false)?;
        let t = Instant::now();
        rt.block_on(exec.run(task(&wasm, &params, &env, &dir, limits), Cancel::default()))?;
        cold.push(t.elapsed());

        let dir = ExecutionDir::new(tmp.join(format!("w{i}")));
        let t = Instant::now();
        rt.block_on(warm_exec.run(task(&wasm, &params, &env, &dir, limits), Cancel::default()))?;
        warm.push(t.elapsed());

        let t = Instant::now();
        bare_run(&engine, &module)?;
        bare.push(t.elapsed());
    }
    let _ = std::fs::remove_dir_all(&tmp);

    let (c50, c99) = (pct(&mut cold, 50.0), pct(&mut cold, 99.0));
    let (w50, w99) = (pct(&mut warm, 50.0), pct(&mut warm, 99.0));
    let (b50, b99) = (pct(&mut bare, 50.0), pct(&mut bare, 99.0));
    let report = format!(
        "Measured {} on {}, {runs} runs each, interleaved; command: \
         `cargo bench -p node --bench wasm`.\n\n\
         | path | p50 (ms) | p99 (ms) | p50 vs bare |\n| --- | --- | --- | --- |\n\
         | skrei executor, cold (compile + run) | {:.2} | {:.2} | {:.1}x |\n\
         | skrei executor, warm (cached module) | {:.2} | {:.2} | {:.1}x |\n\
         | bare wasmtime instantiate + call (no files, no WASI dirs) | {:.2} | {:.2} | 1.0x |\n",
        today(),
        machine_line(),
        ms(c50),
        ms(c99),
        ms(c50) / ms(b50),
        ms(w50),
        ms(w99),
        ms(w50) / ms(b50),
        ms(b50),
        ms(b99),
    );
    println!("{report}");
    if !quick {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/BENCHMARKS.md");
        write_section(&path, "wasm", &report)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn task<'a>(
    wasm: &'a [u8],
    params: &'a WasmParams,
    env: &'a BTreeMap<String, String>,
    dir: &'a ExecutionDir,
    limits: Limits,
) -> WasmTask<'a> {
    static NO_NETWORK: std::sync::LazyLock<Network> = std::sync::LazyLock::new(Network::default);
    WasmTask {
        execution_id: "bench",
        module: wasm,
        params,
        task_env: env,
        inputs: &[],
        result_paths: &[],
        network: &NO_NETWORK,
        dir,
        limits,
        deny: &[],
    }
}

/// The floor: instantiate a precompiled module with WASI to a memory pipe.
fn bare_run(engine: &wasmtime::Engine, module: &wasmtime::Module) -> Result<()> {
    let mut linker: wasmtime::Linker<wasmtime_wasi::p1::WasiP1Ctx> = wasmtime::Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s| s)?;
    let out = wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(1 << 16);
    let ctx = wasmtime_wasi::WasiCtxBuilder::new().stdout(out).build_p1();
    let mut store = wasmtime::Store::new(engine, ctx);
    let instance = linker.instantiate(&mut store, module)?;
    instance
        .get_typed_func::<(), ()>(&mut store, "_start")?
        .call(&mut store, ())?;
    Ok(())
}
