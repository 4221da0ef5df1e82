//! Running a WASI 0.2 component as a command (`wasi:cli/run`), with
//! wasi-http behind the job's policy in `http` mode (R-NET-10).
//!
//! Components run asynchronously, each on a thread with a runtime of its
//! own (so its thread's CPU clock is its CPU use), so a guest waiting in the
//! host (an HTTP response, a clock) is stopped by the timeout or a cancel as
//! surely as one spinning in WASM, which the epoch deadline stops.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use protocol::job::NetworkMode;
use proxy::{CappedLog, DenySet, Gate, Policy, StaticResolver, SystemResolver};
use wasmtime::Store;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::p2::bindings::Command;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{Error, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use super::egress::{Egress, tls_config};
use super::{
    Cancel, CappedOutput, ExecError, Limits, MemoryLimiter, RunOutcome, Stops, WasmExecutor,
    WasmTask, arm, failed, prepare, write_exit_code,
};

struct ComponentState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    hooks: Box<dyn WasiHttpHooks>,
    limiter: MemoryLimiter,
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: self.hooks.as_mut(),
        }
    }
}

/// The hooks of a job without network. wasi-http is not even linked then;
/// this only makes sure that, were it ever reached, nothing goes out.
struct NoNetwork;

impl WasiHttpHooks for NoNetwork {
    fn send_request(
        &mut self,
        _request: hyper::http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        hyper::http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), Error>> + Send>,
                    ),
                    Error,
                >,
            > + Send,
    > {
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}

pub(super) async fn run(
    executor: &WasmExecutor,
    task: WasmTask<'_>,
    cancel: Cancel,
) -> Result<RunOutcome, ExecError> {
    let started = Instant::now();
    let http = task.network.r#type == NetworkMode::Http;
    let (_, component) = executor.compile_component(task.module)?;
    let p = prepare(&task)?;
    let limits = task.limits;
    let deadline = started + limits.timeout;

    let mut wasi = WasiCtxBuilder::new();
    wasi.args(&p.args)
        .envs(&p.env)
        .stdout(p.stdout.clone())
        .stderr(p.stderr.clone())
        // No socket of its own in any mode: wasi-http is the only way out.
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    super::preopen(&mut wasi, &p.preopens)?;

    let mut gate = None;
    let mut audit = None;
    let hooks: Box<dyn WasiHttpHooks> = if http {
        let (egress, g, log) = egress(executor, &task, deadline)?;
        gate = Some(g);
        audit = Some(log);
        Box::new(egress)
    } else {
        Box::new(NoNetwork)
    };
    let state = ComponentState {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        http: WasiHttpCtx::new(),
        hooks,
        limiter: MemoryLimiter {
            max_bytes: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
            hit: false,
        },
    };
    // The guest runs on a thread of its own, with its own runtime: its
    // thread's CPU clock is then its own use (the CPU allowance), and its
    // HTTP connections are driven there too.
    let guest = Guest {
        engine: executor.engine.clone(),
        component,
        state,
        meter_fuel: executor.meter_fuel,
        limits,
        deadline,
        http,
        cancel: cancel.clone(),
        stderr: p.stderr.clone(),
        gate,
    };
    let (done, exit_code) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("wasm-component".into())
        .spawn(move || {
            let result = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(guest.run()),
                Err(e) => Err(ExecError::io("starting the component's runtime")(e)),
            };
            let _ = done.send(result);
        })
        .map_err(ExecError::io("starting the component's thread"))?;
    let exit_code = exit_code
        .await
        .map_err(|_| ExecError::Unavailable("the WASM component's thread failed".into()))??;
    if let Some(log) = audit {
        let summary = log
            .finish(&task.dir.results().join("network.log"))
            .map_err(ExecError::io("writing network.log"))?;
        let _ = std::fs::remove_dir(task.dir.root().join("egress"));
        if summary.dropped > 0 {
            tracing::info!(
                dropped = summary.dropped,
                kept = summary.kept,
                "network.log reached its cap; the earliest records were dropped"
            );
        }
    }
    write_exit_code(task.dir, exit_code)?;
    Ok(RunOutcome {
        exit_code,
        stdout_bytes: p.stdout.seen(),
        stderr_bytes: p.stderr.seen(),
        stdout_truncated: p.stdout.truncated(),
        stderr_truncated: p.stderr.truncated(),
        duration: started.elapsed(),
    })
}

/// A component run, moved onto its own thread.
struct Guest {
    engine: wasmtime::Engine,
    component: wasmtime::component::Component,
    state: ComponentState,
    meter_fuel: bool,
    limits: Limits,
    deadline: Instant,
    http: bool,
    cancel: Cancel,
    stderr: CappedOutput,
    gate: Option<Gate>,
}

impl Guest {
    /// Runs the command to its exit code, or its timeout, a limit or a
    /// cancel; on the guest's own thread.
    async fn run(self) -> Result<i32, ExecError> {
        let Guest {
            engine,
            component,
            state,
            meter_fuel,
            limits,
            deadline,
            http,
            cancel,
            stderr,
            gate,
        } = self;
        let mut store = Store::new(&engine, state);
        store.limiter(|s| &mut s.limiter);
        // Yielding to the runtime each tick, so the timeout and the cancel
        // below are polled.
        let cpu_hit = arm(&mut store, meter_fuel, limits, deadline, &cancel, true)?;

        let mut linker: Linker<ComponentState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| ExecError::Unavailable(format!("linking WASI: {e}")))?;
        if http {
            wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
                .map_err(|e| ExecError::Unavailable(format!("linking wasi-http: {e}")))?;
        }
        let command = Command::instantiate_async(&mut store, &component, &linker)
            .await
            .map_err(|e| {
                ExecError::Missing(format!(
                    "the component cannot be instantiated as a command (it may import something \
                     other than WASI 0.2{}, or not export wasi:cli/run): {e:#}",
                    if http {
                        " and wasi:http/outgoing-handler"
                    } else {
                        "; wasi:http needs network http"
                    }
                ))
            })?;

        let result = {
            let run = command.wasi_cli_run().call_run(&mut store);
            tokio::select! {
                r = run => Some(r),
                () = cancel.cancelled() => None,
                () = tokio::time::sleep_until(deadline.into()) => None,
            }
        };
        let exit_code = match result {
            None if cancel.is_cancelled() => return Err(ExecError::Cancelled),
            None => return Err(ExecError::Timeout(limits.timeout)),
            Some(Ok(Ok(()))) => 0,
            Some(Ok(Err(()))) => 1,
            Some(Err(e)) => {
                let stops = Stops {
                    memory: store.data().limiter.hit,
                    cpu: cpu_hit.load(Ordering::Relaxed),
                };
                failed(e, stops, limits, &cancel, &stderr)?
            }
        };
        // Dropping the store closes the guest's connections, which writes
        // their audit lines, on this runtime: wait for them.
        drop(store);
        if let Some(gate) = gate {
            gate.settled(std::time::Duration::from_secs(5)).await;
        }
        Ok(exit_code)
    }
}

/// The job's egress: a gate with the proxy's policy over the job's domains,
/// the node's deny set plus this execution's, the host's own addresses as
/// the policy reads them (R-SEC-3), the job's rate each way, audit lines
/// into a log capped at the task's output limit (R-SEC-4), which becomes
/// `<dir>/results/network.log` when the run ends.
fn egress(
    executor: &WasmExecutor,
    task: &WasmTask<'_>,
    deadline: Instant,
) -> Result<(Egress, Gate, Arc<CappedLog>), ExecError> {
    let net = &executor.network;
    let deny = DenySet::new();
    for addr in net.deny.iter().chain(task.deny) {
        deny.insert_socket(*addr);
    }
    let mut resolver = StaticResolver::new().with_fallback(Arc::new(SystemResolver));
    for (name, ip) in &net.resolve {
        resolver.insert(name.clone(), *ip);
    }
    let policy = Policy::new(
        task.network.domains.clone(),
        deny,
        net.allow_ranges.clone(),
        Arc::new(resolver),
        // One resolution per request, bounded like the connection.
        net.connect_timeout,
    )
    .with_ports(net.http_ports.clone(), net.connect_ports.clone());
    // Beside the results, not in them: only the finished log is published.
    let work = task.dir.root().join("egress");
    std::fs::create_dir_all(&work).map_err(ExecError::io("creating the egress folder"))?;
    let log = Arc::new(
        CappedLog::create(&work, task.limits.output_bytes)
            .map_err(ExecError::io("creating the audit log"))?,
    );
    let tls = tls_config(&net.extra_roots)
        .map_err(|e| ExecError::Unavailable(format!("TLS roots: {e}")))?;
    let gate = Gate::builder(task.execution_id, policy)
        .rates(net.http_rate, net.http_rate)
        .audit(log.clone())
        .build()
        .map_err(|e| ExecError::Unavailable(format!("execution id: {e}")))?;
    let egress = Egress::new(
        gate.clone(),
        Arc::new(tls),
        net.connect_timeout,
        deadline.into(),
    );
    Ok((egress, gate, log))
}
