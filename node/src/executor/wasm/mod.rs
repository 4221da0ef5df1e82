//! The WebAssembly engine: WASI preview 1 modules and WASI 0.2 components
//! under wasmtime.
//!
//! A guest sees its inputs read-only and its result folders read-write at
//! the paths the job names, its arguments and environment, and nothing else:
//! no sockets, no host files, no clock beyond WASI's. Time is bounded by an
//! epoch deadline (a ticker thread advances the engine's epoch), memory by a
//! resource limiter, and CPU time by the task's CPU allowance
//! ([`Limits::cpu_allowance`]): each guest runs on a thread of its own, whose
//! CPU clock the epoch callback reads (and by fuel, when the node meters
//! it). Compiled modules and components are cached by the CID of their
//! bytes.
//!
//! Network (R-NET-10), told apart by the bytes (a core module or a
//! component):
//! - `none`: a core module gets WASI preview 1; a component gets WASI 0.2
//!   without wasi-http and without sockets, so a component importing
//!   `wasi:http/outgoing-handler` does not instantiate.
//! - `http`: components only (a core module has no HTTP interface to
//!   police). wasi-http is linked and every outgoing request goes through
//!   the egress proxy's decision, connector, rate limiter and audit record
//!   ([`egress`]); `network.log` in the results has one JSON line per request.
//!   WASI sockets stay closed.
//! - `full`: refused. In-process sockets would come from the node's own
//!   network namespace, where the node's API and other loopback services
//!   are (R-NET-2 promises a job never reaches those); `http` is the way out
//!   for WASM jobs, Docker jobs have `full`.

mod component;
mod egress;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cid::Cid;
use protocol::job::{InputSource, Network, NetworkMode, ResultPath, WasmParams};
use wasmtime::{Config, Engine, Linker, Module, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

pub use super::Cancel;
use super::{
    CappedOutput, ExecError, ExecutionDir, LimitKind, Limits, RunOutcome, write_exit_code,
};

/// How often the epoch advances: the granularity of timeouts and cancels.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Compiled modules kept in memory.
const CACHE_ENTRIES: usize = 64;
/// Exit code reported when the module traps (as a native program that aborts).
pub const TRAP_EXIT_CODE: i32 = 134;

/// One WASM task, with everything the node prepared for it.
pub struct WasmTask<'a> {
    /// Names the execution (the `job` of its `network.log` lines).
    pub execution_id: &'a str,
    /// The entry module's or component's bytes (fetched and verified by the
    /// node).
    pub module: &'a [u8],
    pub params: &'a WasmParams,
    /// The task's `Env`, under the engine's own variables.
    pub task_env: &'a BTreeMap<String, String>,
    pub inputs: &'a [InputSource],
    pub result_paths: &'a [ResultPath],
    pub network: &'a Network,
    pub dir: &'a ExecutionDir,
    pub limits: Limits,
    /// R-NET-7: control-plane addresses to refuse besides
    /// [`WasmNetwork::deny`].
    pub deny: &'a [SocketAddr],
}

/// Node settings for the outgoing HTTP of `http` WASM jobs (R-NET-10); the
/// same knobs as the Docker engine's sidecar proxy.
#[derive(Debug, Clone)]
pub struct WasmNetwork {
    /// R-NET-6: bytes per second in each direction for each `http` job.
    pub http_rate: u64,
    /// R-NET-7: control-plane addresses no job may reach (this node's and
    /// its peers' API and libp2p addresses). The host's own addresses are
    /// refused as well (R-SEC-3), unless `allow_ranges` covers them.
    pub deny: Vec<SocketAddr>,
    /// Special-purpose ranges the operator allows despite R-NET-8.
    pub allow_ranges: Vec<proxy::Cidr>,
    /// Fixed answers for names instead of asking DNS (the addresses are
    /// still checked); for tests and private deployments.
    pub resolve: Vec<(String, IpAddr)>,
    /// Ports `https` requests may reach (the sidecar's `CONNECT` ports).
    pub connect_ports: Vec<u16>,
    /// Ports plain `http` requests may reach.
    pub http_ports: Vec<u16>,
    /// Trusted for `https` besides the webpki roots (a private CA).
    pub extra_roots: Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>>,
    /// How long a connection to an upstream may take.
    pub connect_timeout: Duration,
}

impl Default for WasmNetwork {
    fn default() -> Self {
        WasmNetwork {
            http_rate: proxy::DEFAULT_RATE,
            deny: Vec::new(),
            allow_ranges: Vec::new(),
            resolve: Vec::new(),
            connect_ports: vec![443],
            http_ports: vec![80],
            extra_roots: Vec::new(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Whether `bytes` are a component rather than a core module: both start
/// with `\0asm`; the 16-bit layer after the version is 1 for components
/// (what `wasmparser::Parser::is_component` reads).
pub fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [1, 0]
}

/// The WASM engine. Create one per node and share it.
pub struct WasmExecutor {
    engine: Engine,
    meter_fuel: bool,
    cache: Mutex<ModuleCache>,
    components: Mutex<ComponentCache>,
    network: WasmNetwork,
    ticker: Option<std::thread::JoinHandle<()>>,
    stop_ticker: Arc<AtomicBool>,
}

#[derive(Default)]
struct ModuleCache {
    modules: BTreeMap<Cid, Module>,
    order: VecDeque<Cid>,
}

#[derive(Default)]
struct ComponentCache {
    components: BTreeMap<Cid, wasmtime::component::Component>,
    order: VecDeque<Cid>,
}

impl WasmExecutor {
    /// An engine; with `meter_fuel`, tasks can be given a CPU budget
    /// ([`Limits::fuel`]) at the cost of some speed.
    pub fn new(meter_fuel: bool) -> Result<WasmExecutor, ExecError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.consume_fuel(meter_fuel);
        let engine =
            Engine::new(&config).map_err(|e| ExecError::Unavailable(format!("wasmtime: {e}")))?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = stop_ticker.clone();
            std::thread::Builder::new()
                .name("wasm-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(ExecError::io("starting the WASM epoch ticker"))?
        };
        Ok(WasmExecutor {
            engine,
            meter_fuel,
            cache: Mutex::new(ModuleCache::default()),
            components: Mutex::new(ComponentCache::default()),
            network: WasmNetwork::default(),
            ticker: Some(ticker),
            stop_ticker,
        })
    }

    /// The same engine with `network` as its settings for `http` jobs.
    pub fn with_network(mut self, network: WasmNetwork) -> WasmExecutor {
        self.network = network;
        self
    }

    /// Compiles a component, or takes it from the cache (keyed like
    /// modules, by the CID of the bytes).
    pub fn compile_component(
        &self,
        bytes: &[u8],
    ) -> Result<(Cid, wasmtime::component::Component), ExecError> {
        let cid = protocol::id::blake3_cid(protocol::id::RAW, bytes);
        let lock = || self.components.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = lock().components.get(&cid) {
            return Ok((cid, c.clone()));
        }
        let component = wasmtime::component::Component::new(&self.engine, bytes)
            .map_err(|e| ExecError::Missing(format!("the entry component is not valid: {e}")))?;
        let mut cache = lock();
        if cache.components.insert(cid, component.clone()).is_none() {
            cache.order.push_back(cid);
            while cache.order.len() > CACHE_ENTRIES {
                if let Some(old) = cache.order.pop_front() {
                    cache.components.remove(&old);
                }
            }
        }
        Ok((cid, component))
    }

    /// Compiles a module, or takes it from the cache. Returns the CID of
    /// its bytes (raw, BLAKE3), which names it in the cache.
    pub fn compile(&self, bytes: &[u8]) -> Result<(Cid, Module), ExecError> {
        let cid = protocol::id::blake3_cid(protocol::id::RAW, bytes);
        if let Some(m) = self.lock_cache().modules.get(&cid) {
            return Ok((cid, m.clone()));
        }
        let module = Module::new(&self.engine, bytes).map_err(|e| {
            ExecError::Missing(format!("the entry module is not valid WebAssembly: {e}"))
        })?;
        let mut cache = self.lock_cache();
        if cache.modules.insert(cid, module.clone()).is_none() {
            cache.order.push_back(cid);
            while cache.order.len() > CACHE_ENTRIES {
                if let Some(old) = cache.order.pop_front() {
                    cache.modules.remove(&old);
                }
            }
        }
        Ok((cid, module))
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, ModuleCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a task to its end, its timeout, a limit, or `cancel`.
    pub async fn run(&self, task: WasmTask<'_>, cancel: Cancel) -> Result<RunOutcome, ExecError> {
        let component = is_component(task.module);
        match task.network.r#type {
            NetworkMode::None if component => return component::run(self, task, cancel).await,
            NetworkMode::None => {}
            NetworkMode::Http if component => return component::run(self, task, cancel).await,
            NetworkMode::Http => {
                // A core module has no HTTP interface to police; refusing
                // keeps the promise that `http` means "only these domains".
                return Err(ExecError::Unavailable(
                    "WASM jobs with network http need a WASI 0.2 component that imports \
                     wasi:http/outgoing-handler; this is a core module"
                        .into(),
                ));
            }
            other => {
                return Err(ExecError::Unavailable(format!(
                    "WASM jobs cannot have network {other}: use network http with the \
                     job's domains, or a Docker job"
                )));
            }
        }
        let (_, module) = self.compile(task.module)?;
        let prepared = prepare(&task)?;
        let engine = self.engine.clone();
        let meter_fuel = self.meter_fuel;
        let limits = task.limits;
        let entrypoint = task.params.entrypoint.clone();
        let dir = task.dir.clone();
        tokio::task::spawn_blocking(move || {
            run_blocking(
                &engine,
                &module,
                prepared,
                &entrypoint,
                limits,
                meter_fuel,
                &cancel,
                &dir,
            )
        })
        .await
        .map_err(|e| ExecError::Unavailable(format!("the WASM worker failed: {e}")))?
    }
}

impl Drop for WasmExecutor {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

/// What the guest gets, decided before the run.
struct Prepared {
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// (host dir, guest path, writable)
    preopens: Vec<(PathBuf, String, bool)>,
    stdout: CappedOutput,
    stderr: CappedOutput,
}

fn prepare(task: &WasmTask<'_>) -> Result<Prepared, ExecError> {
    let (stdout, stderr) = super::open_outputs(task.dir, &task.limits)?;

    let mut preopens = Vec::new();
    let mut seen = BTreeSet::new();
    for input in task.inputs {
        let host = task.dir.input(&input.target);
        let meta = std::fs::metadata(&host).map_err(ExecError::io(format!(
            "input at {} was not materialised",
            input.target
        )))?;
        // WASI opens directories only: a file input is reached through its
        // folder, which holds nothing but materialised inputs.
        let (host, guest) = if meta.is_dir() {
            (host, input.target.clone())
        } else {
            let parent = input.target.rsplit_once('/').map_or("/", |(p, _)| p);
            let guest = if parent.is_empty() { "/" } else { parent };
            (task.dir.input(guest), guest.to_string())
        };
        if seen.insert(guest.clone()) {
            // A writable local input is a folder of the operator's.
            let writable = meta.is_dir() && task.dir.is_writable(&input.target);
            preopens.push((host, guest, writable));
        }
    }
    for r in task.result_paths {
        let host = task.dir.output(&r.name);
        std::fs::create_dir_all(&host).map_err(ExecError::io(format!(
            "creating the result folder {}",
            r.name
        )))?;
        preopens.push((host, r.path.clone(), true));
    }

    let mut env: BTreeMap<String, String> = task.task_env.clone();
    env.extend(task.params.environment_variables.clone());
    let mut args = vec!["main.wasm".to_string()];
    args.extend(task.params.parameters.iter().cloned());
    Ok(Prepared {
        args,
        env: env.into_iter().collect(),
        preopens,
        stdout,
        stderr,
    })
}

struct GuestState {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
}

/// Stops a guest past its CPU allowance: the CPU time of the thread it runs
/// on, read at each epoch tick. The guest's thread runs nothing else (a
/// blocking thread for a module, a thread with its own runtime for a
/// component), so its clock is the guest's own use, with the host calls
/// made on it (a component's file reads and writes run on its runtime's
/// blocking threads and are not counted).
struct CpuMeter {
    allowance: Option<Duration>,
    started: Duration,
    hit: Arc<AtomicBool>,
}

impl CpuMeter {
    /// Starts counting on the calling thread, which must be the guest's.
    fn start(limits: &Limits) -> CpuMeter {
        CpuMeter {
            allowance: limits.cpu_allowance(),
            started: thread_cpu_time(),
            hit: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the guest has used more than its allowance (remembered).
    fn over(&self) -> bool {
        let Some(allowance) = self.allowance else {
            return false;
        };
        if thread_cpu_time().saturating_sub(self.started) > allowance {
            self.hit.store(true, Ordering::Relaxed);
        }
        self.hit.load(Ordering::Relaxed)
    }

    /// A flag that tells, after the run, whether the allowance stopped it.
    fn hit_flag(&self) -> Arc<AtomicBool> {
        self.hit.clone()
    }
}

/// The calling thread's CPU time (user and system).
fn thread_cpu_time() -> Duration {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

/// What stopped a guest early besides its own end.
#[derive(Debug, Clone, Copy, Default)]
struct Stops {
    memory: bool,
    cpu: bool,
}

/// Caps linear memory and remembers that the cap was hit, so the failure
/// is reported as a memory limit rather than a bare trap.
struct MemoryLimiter {
    max_bytes: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes reached",
                self.max_bytes
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// What a guest's failure means: its exit code (an exit, or a trap that is
/// the program's own result, told in its stderr), or a limit, timeout or
/// cancel.
fn failed(
    e: wasmtime::Error,
    stops: Stops,
    limits: Limits,
    cancel: &Cancel,
    stderr: &CappedOutput,
) -> Result<i32, ExecError> {
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        Ok(exit.0)
    } else if stops.memory {
        Err(ExecError::Limit {
            kind: LimitKind::Memory,
            detail: format!("{} bytes", limits.memory_bytes),
        })
    } else if matches!(e.downcast_ref::<Trap>(), Some(Trap::OutOfFuel)) {
        Err(ExecError::Limit {
            kind: LimitKind::Cpu,
            detail: format!("{} units of fuel", limits.fuel.unwrap_or(0)),
        })
    } else if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        Err(if cancel.is_cancelled() {
            ExecError::Cancelled
        } else if stops.cpu {
            cpu_limit(limits)
        } else {
            ExecError::Timeout(limits.timeout)
        })
    } else {
        // The program itself failed (unreachable, bad memory access...):
        // that is its result, told in its stderr.
        let _ = stderr.append(format!("\nskrei: the module trapped: {e:#}\n").as_bytes());
        Ok(TRAP_EXIT_CODE)
    }
}

/// Arms a guest's store: its fuel when the node meters it, and the epoch
/// callback that stops it at its deadline, a cancel or its CPU allowance,
/// and otherwise lets it go on (yielding to its runtime each tick when
/// `yield_each_tick`). Call it on the guest's own thread: the CPU clock
/// read is that thread's. Returns the flag that tells whether the
/// allowance stopped it.
fn arm<T: Send + 'static>(
    store: &mut Store<T>,
    meter_fuel: bool,
    limits: Limits,
    deadline: Instant,
    cancel: &Cancel,
    yield_each_tick: bool,
) -> Result<Arc<AtomicBool>, ExecError> {
    if meter_fuel {
        store
            .set_fuel(limits.fuel.unwrap_or(u64::MAX))
            .map_err(|e| ExecError::Unavailable(format!("fuel: {e}")))?;
    }
    let watch = cancel.clone();
    let meter = CpuMeter::start(&limits);
    let cpu_hit = meter.hit_flag();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(
            if watch.is_cancelled() || Instant::now() >= deadline || meter.over() {
                UpdateDeadline::Interrupt
            } else if yield_each_tick {
                UpdateDeadline::Yield(1)
            } else {
                UpdateDeadline::Continue(1)
            },
        )
    });
    Ok(cpu_hit)
}

/// The error of a guest stopped at its CPU allowance.
fn cpu_limit(limits: Limits) -> ExecError {
    let allowance = limits.cpu_allowance().unwrap_or_default();
    ExecError::Limit {
        kind: LimitKind::Cpu,
        detail: format!(
            "{:.2} s of CPU time: cpu {}m over the {:.1} s it may run",
            allowance.as_secs_f64(),
            limits.cpu_millis.unwrap_or(0),
            limits.timeout.as_secs_f64()
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn run_blocking(
    engine: &Engine,
    module: &Module,
    p: Prepared,
    entrypoint: &str,
    limits: Limits,
    meter_fuel: bool,
    cancel: &Cancel,
    dir: &ExecutionDir,
) -> Result<RunOutcome, ExecError> {
    let started = Instant::now();
    let mut wasi = WasiCtxBuilder::new();
    wasi.args(&p.args)
        .envs(&p.env)
        .stdout(p.stdout.clone())
        .stderr(p.stderr.clone())
        .allow_blocking_current_thread(true);
    preopen(&mut wasi, &p.preopens)?;
    let state = GuestState {
        wasi: wasi.build_p1(),
        limiter: MemoryLimiter {
            max_bytes: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
            hit: false,
        },
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    // This blocking thread is the guest's alone while it runs.
    let deadline = started + limits.timeout;
    let cpu_hit = arm(&mut store, meter_fuel, limits, deadline, cancel, false)?;

    let mut linker: Linker<GuestState> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s| &mut s.wasi)
        .map_err(|e| ExecError::Unavailable(format!("linking WASI: {e}")))?;
    let instance = linker.instantiate(&mut store, module).map_err(|e| {
        ExecError::Missing(format!(
            "the module cannot be instantiated (it may import something other than WASI \
             preview 1): {e}"
        ))
    })?;
    let func = instance
        .get_typed_func::<(), ()>(&mut store, entrypoint)
        .map_err(|_| {
            ExecError::Missing(format!(
                "the module exports no function `{entrypoint}` taking no arguments; WASI \
                 programs export `_start`"
            ))
        })?;

    let result = func.call(&mut store, ());
    let stops = Stops {
        memory: store.data().limiter.hit,
        cpu: cpu_hit.load(Ordering::Relaxed),
    };
    let exit_code = match result {
        Ok(()) => 0,
        Err(e) => failed(e, stops, limits, cancel, &p.stderr)?,
    };
    drop(store);
    write_exit_code(dir, exit_code)?;
    Ok(RunOutcome {
        exit_code,
        stdout_bytes: p.stdout.seen(),
        stderr_bytes: p.stderr.seen(),
        stdout_truncated: p.stdout.truncated(),
        stderr_truncated: p.stderr.truncated(),
        duration: started.elapsed(),
    })
}

/// Opens the task's folders for the guest: inputs read-only, result
/// folders read-write (both engines' WASI contexts).
fn preopen(
    wasi: &mut WasiCtxBuilder,
    preopens: &[(PathBuf, String, bool)],
) -> Result<(), ExecError> {
    for (host, guest, writable) in preopens {
        let perms = if *writable {
            FsPerms::ReadWrite
        } else {
            FsPerms::ReadOnly
        };
        wasi.preopened_dir(host, guest, perms).map_err(|e| {
            ExecError::Unavailable(format!("cannot open {} for the task: {e}", host.display()))
        })?;
    }
    Ok(())
}
