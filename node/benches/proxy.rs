//! The egress proxy, measured side by side in one run: skrei's proxy vs a
//! direct connection vs squid vs tinyproxy (issues 3 and 18), with a real
//! client's row: `pip download` from a local package index.
//!
//! ```sh
//! cargo bench -p node --bench proxy            # full run, updates docs/BENCHMARKS.md
//! cargo bench -p node --bench proxy -- --quick # a short smoke run, prints only
//! ```
//!
//! Everything runs on loopback: an upstream HTTP server inside this process,
//! each proxy as its own process with the same allowlist (the upstream's
//! address only). squid and tinyproxy come from the system packages
//! (`apt-get install squid tinyproxy`); a missing one is reported and skipped.
//! Absolute figures on a shared 2-core machine are noisy, so the report gives
//! medians and ratios against the direct connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

mod support;
use support::{machine_line, today, write_section};

const MIB: u64 = 1 << 20;
/// The rate limit R-NET-6 asks for, in bytes per second.
const LIMIT: u64 = 1_250_000;

struct Settings {
    quick: bool,
    big_bytes: u64,
    big_runs: usize,
    small_secs: u64,
    small_conns: Vec<usize>,
    pip_runs: usize,
    limit_secs: u64,
    idle_tunnels: usize,
}

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let settings = if quick {
        Settings {
            quick,
            big_bytes: 32 * MIB,
            big_runs: 1,
            small_secs: 1,
            small_conns: vec![4],
            pip_runs: 1,
            limit_secs: 2,
            idle_tunnels: 100,
        }
    } else {
        Settings {
            quick,
            big_bytes: 256 * MIB,
            big_runs: 5,
            small_secs: 3,
            small_conns: vec![8, 32],
            pip_runs: 3,
            limit_secs: 10,
            idle_tunnels: 1000,
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(settings))
}

async fn run(s: Settings) -> Result<()> {
    let workdir = tempdir()?;
    let upstream = Upstream::start(pip_index(&workdir)?).await?;
    let up = upstream.addr;
    let mut contestants = vec![Contestant::direct()];
    contestants.push(Contestant::skrei(&workdir, up, 0)?);
    for start in [Contestant::squid, Contestant::tinyproxy] {
        match start(&workdir, up) {
            Ok(c) => contestants.push(c),
            Err(e) => eprintln!("skipping: {e:#}"),
        }
    }
    for c in &contestants {
        c.wait_ready().await?;
    }
    let mut report = String::new();
    let machine = machine_line();
    report.push_str(&format!(
        "Measured {} on {machine}, all on loopback; command: `cargo bench -p node --bench proxy`.\n\n",
        today()
    ));

    // (a) Large transfers, rate limit off.
    report.push_str(&format!(
        "### (a) Large transfer, rate limit off ({} MiB, median of {})\n\n\
         | path | plain HTTP (MB/s) | vs direct | CONNECT tunnel (MB/s) | vs direct | proxy CPU, plain (s/GiB) | proxy CPU, CONNECT (s/GiB) |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
        s.big_bytes / MIB,
        s.big_runs
    ));
    let mut plain: Vec<Vec<f64>> = vec![Vec::new(); contestants.len()];
    let mut tunnel: Vec<Vec<f64>> = vec![Vec::new(); contestants.len()];
    // The proxy process's CPU time over all its transfers: on two cores
    // shared by client, upstream and proxy, what the proxy spends per byte
    // is what it takes from the others.
    let mut cpu = vec![[0.0f64; 2]; contestants.len()];
    let used = |c: &Contestant| c.pid().and_then(|p| cpu_secs(p).ok()).unwrap_or(0.0);
    for _ in 0..s.big_runs {
        // Interleaved, so drift on the machine hits every contestant alike.
        for (i, c) in contestants.iter().enumerate() {
            let before = used(c);
            plain[i].push(throughput(c, up, s.big_bytes, false).await?);
            let between = used(c);
            cpu[i][0] += between - before;
            if c.proxy.is_some() {
                tunnel[i].push(throughput(c, up, s.big_bytes, true).await?);
                cpu[i][1] += used(c) - between;
            }
        }
    }
    let moved_gib = (s.big_bytes * s.big_runs as u64) as f64 / (1u64 << 30) as f64;
    let direct_plain = median(&plain[0]);
    for (i, c) in contestants.iter().enumerate() {
        let p = median(&plain[i]);
        let (t, tr) = if tunnel[i].is_empty() {
            ("—".to_string(), "—".to_string())
        } else {
            let t = median(&tunnel[i]);
            (format!("{t:.0}"), format!("{:.2}x", t / direct_plain))
        };
        let (cp, ct) = if c.proxy.is_some() {
            (
                format!("{:.2}", cpu[i][0] / moved_gib),
                format!("{:.2}", cpu[i][1] / moved_gib),
            )
        } else {
            ("—".to_string(), "—".to_string())
        };
        report.push_str(&format!(
            "| {} | {p:.0} | {:.2}x | {t} | {tr} | {cp} | {ct} |\n",
            c.name,
            p / direct_plain
        ));
    }

    // (b) Small requests: rate and latency.
    report.push_str(&format!(
        "\n### (b) Small requests (keep-alive connections, {} s each, two rounds)\n\n\
         | path | connections | requests/s | vs direct | vs squid | p50 latency (µs) | p99 latency (µs) | added p50 (µs) |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        s.small_secs
    ));
    for &conns in &s.small_conns {
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); contestants.len()];
        let mut lats: Vec<Vec<u64>> = vec![Vec::new(); contestants.len()];
        for round in 0..2 {
            let order: Vec<usize> = if round == 0 {
                (0..contestants.len()).collect()
            } else {
                (0..contestants.len()).rev().collect()
            };
            for i in order {
                let (rate, mut l) =
                    small_requests(&contestants[i], up, conns, s.small_secs).await?;
                rates[i].push(rate);
                lats[i].append(&mut l);
            }
        }
        let direct_rate = median(&rates[0]);
        let squid_rate = contestants
            .iter()
            .position(|c| c.name == "squid")
            .map(|i| median(&rates[i]));
        let direct_p50 = percentile(&mut lats[0].clone(), 50.0);
        for (i, c) in contestants.iter().enumerate() {
            let rate = median(&rates[i]);
            let p50 = percentile(&mut lats[i], 50.0);
            let p99 = percentile(&mut lats[i], 99.0);
            let vs_squid = squid_rate.map_or("—".to_string(), |q| format!("{:.2}x", rate / q));
            report.push_str(&format!(
                "| {} | {conns} | {rate:.0} | {:.2}x | {vs_squid} | {p50} | {p99} | {} |\n",
                c.name,
                rate / direct_rate,
                p50.saturating_sub(direct_p50)
            ));
        }
    }

    // (e) A real client: pip downloading small packages from a local index.
    report.push_str(&format!(
        "\n### (e) `pip download` of {PIP_PACKAGES} small packages from a local index (median of {})\n\n\
         | path | seconds | vs direct | vs squid |\n| --- | --- | --- | --- |\n",
        s.pip_runs
    ));
    let mut pip: Vec<Vec<f64>> = vec![Vec::new(); contestants.len()];
    for _ in 0..s.pip_runs {
        for (i, c) in contestants.iter().enumerate() {
            match pip_download(c, up, &workdir) {
                Ok(secs) => pip[i].push(secs),
                Err(e) => eprintln!("pip through {}: {e:#}", c.name),
            }
        }
    }
    let direct_pip = median(&pip[0]);
    let squid_pip = contestants
        .iter()
        .position(|c| c.name == "squid")
        .map(|i| median(&pip[i]));
    for (i, c) in contestants.iter().enumerate() {
        if pip[i].is_empty() {
            report.push_str(&format!("| {} | failed | | |\n", c.name));
            continue;
        }
        let secs = median(&pip[i]);
        let vs_squid = squid_pip.map_or("—".to_string(), |q| format!("{:.2}x", secs / q));
        report.push_str(&format!(
            "| {} | {secs:.2} | {:.2}x | {vs_squid} |\n",
            c.name,
            secs / direct_pip
        ));
    }

    // (d) Memory with idle tunnels, in fresh processes: memory a busy run
    // freed would otherwise be handed to the tunnels unseen.
    drop(contestants);
    let mut fresh = vec![Contestant::skrei(&workdir, up, 0)?];
    for start in [Contestant::squid, Contestant::tinyproxy] {
        if let Ok(c) = start(&workdir, up) {
            fresh.push(c);
        }
    }
    for c in &fresh {
        c.wait_ready().await?;
        // One request first, so that start-up allocations are in "before".
        c.connect(up, false).await?.request("/bytes/2", 0).await?;
    }
    report.push_str(&format!(
        "\n### (d) Memory with {} idle CONNECT tunnels (fresh processes)\n\n\
         | proxy | RSS before (MiB) | RSS with tunnels (MiB) | per tunnel (KiB) |\n\
         | --- | --- | --- | --- |\n",
        s.idle_tunnels
    ));
    for c in &fresh {
        match idle_memory(c, up, s.idle_tunnels).await {
            Ok((before, after)) => report.push_str(&format!(
                "| {} | {:.1} | {:.1} | {:.1} |\n",
                c.name,
                before as f64 / 1024.0,
                after as f64 / 1024.0,
                (after.saturating_sub(before)) as f64 / s.idle_tunnels as f64
            )),
            Err(e) => report.push_str(&format!("| {} | failed: {e:#} | | |\n", c.name)),
        }
    }
    drop(fresh);

    // (c) The limiter at 10 Mbit/s.
    let limited = Contestant::skrei(&workdir, up, LIMIT)?;
    limited.wait_ready().await?;
    report.push_str(&format!(
        "\n### (c) skrei's rate limit at 10 Mbit/s ({LIMIT} B/s), {} s per cell\n\n\
         | direction | connections | achieved (B/s) | vs target |\n| --- | --- | --- | --- |\n",
        s.limit_secs
    ));
    for upload in [false, true] {
        for conns in [1usize, 32] {
            let rate = limited_rate(&limited, up, conns, upload, s.limit_secs).await?;
            report.push_str(&format!(
                "| {} | {conns} | {rate:.0} | {:+.2}% |\n",
                if upload { "upload" } else { "download" },
                (rate / LIMIT as f64 - 1.0) * 100.0
            ));
        }
    }
    drop(limited);

    println!("{report}");
    if !s.quick {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/BENCHMARKS.md");
        write_section(&path, "proxy", &report)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// One way to reach the upstream: directly, or through a proxy process.
struct Contestant {
    name: &'static str,
    proxy: Option<SocketAddr>,
    child: Option<Child>,
}

impl Drop for Contestant {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Contestant {
    fn direct() -> Contestant {
        Contestant {
            name: "direct",
            proxy: None,
            child: None,
        }
    }

    fn skrei(dir: &Path, upstream: SocketAddr, rate: u64) -> Result<Contestant> {
        let addr = free_addr()?;
        let child = Command::new(env!("CARGO_BIN_EXE_skrei"))
            .args(["proxy", "--listen", &addr.to_string()])
            .args(["--allow", &upstream.ip().to_string()])
            .args(["--allow-range", "127.0.0.0/8"])
            .args(["--connect-ports", &upstream.port().to_string()])
            .args(["--http-ports", &upstream.port().to_string()])
            .args(["--rate", &rate.to_string()])
            // As squid and tinyproxy are configured: room for the idle-tunnel test.
            .args(["--max-connections", "4096"])
            .args([
                "--audit",
                &dir.join("skrei-audit.log").display().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting skrei proxy")?;
        Ok(Contestant {
            name: "skrei",
            proxy: Some(addr),
            child: Some(child),
        })
    }

    fn squid(dir: &Path, upstream: SocketAddr) -> Result<Contestant> {
        let addr = free_addr()?;
        let d = dir.join("squid");
        std::fs::create_dir_all(&d)?;
        // squid drops privileges to its own user: let it write its files.
        Command::new("chmod").arg("777").arg(&d).status()?;
        let conf = d.join("squid.conf");
        std::fs::write(
            &conf,
            format!(
                "http_port {addr}\n\
                 acl allowed dst {ip}/32\n\
                 acl bench_port port {port}\n\
                 acl CONNECT method CONNECT\n\
                 http_access deny CONNECT !bench_port\n\
                 http_access allow allowed\n\
                 http_access deny all\n\
                 cache deny all\n\
                 access_log none\n\
                 cache_log {log}\n\
                 pid_filename {pid}\n\
                 coredump_dir {dir}\n\
                 max_filedescriptors 8192\n\
                 shutdown_lifetime 0 seconds\n",
                ip = upstream.ip(),
                port = upstream.port(),
                log = d.join("cache.log").display(),
                pid = d.join("squid.pid").display(),
                dir = d.display(),
            ),
        )?;
        let child = Command::new("squid")
            .args(["-N", "-f"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting squid (apt-get install squid)")?;
        Ok(Contestant {
            name: "squid",
            proxy: Some(addr),
            child: Some(child),
        })
    }

    fn tinyproxy(dir: &Path, upstream: SocketAddr) -> Result<Contestant> {
        let addr = free_addr()?;
        let d = dir.join("tinyproxy");
        std::fs::create_dir_all(&d)?;
        Command::new("chmod").arg("777").arg(&d).status()?;
        let filter = d.join("filter");
        std::fs::write(
            &filter,
            format!("^{}$\n", upstream.ip().to_string().replace('.', "\\.")),
        )?;
        let conf = d.join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Listen {ip}\nPort {port}\nTimeout 600\nMaxClients 4096\nAllow 127.0.0.1\n\
                 ConnectPort {up_port}\nFilter \"{filter}\"\nFilterType ere\n\
                 FilterDefaultDeny Yes\nLogLevel Critical\nDisableViaHeader Yes\n",
                ip = addr.ip(),
                port = addr.port(),
                up_port = upstream.port(),
                filter = filter.display(),
            ),
        )?;
        let child = Command::new("tinyproxy")
            .args(["-d", "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting tinyproxy (apt-get install tinyproxy)")?;
        Ok(Contestant {
            name: "tinyproxy",
            proxy: Some(addr),
            child: Some(child),
        })
    }

    async fn wait_ready(&self) -> Result<()> {
        let Some(addr) = self.proxy else {
            return Ok(());
        };
        for _ in 0..200 {
            if TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("{} did not listen on {addr} within 10 s", self.name)
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A connection that reaches the upstream: direct, through a CONNECT
    /// tunnel, or to the proxy for absolute-form requests.
    async fn connect(&self, upstream: SocketAddr, tunnel: bool) -> Result<Conn> {
        match self.proxy {
            None => Conn::open(upstream, None).await,
            Some(proxy) if tunnel => {
                let mut conn = Conn::open(proxy, None).await?;
                conn.tunnel(upstream).await?;
                Ok(conn)
            }
            Some(proxy) => Conn::open(proxy, Some(upstream)).await,
        }
    }
}

/// An HTTP/1.1 client connection with just what the benchmark needs.
struct Conn {
    stream: BufReader<TcpStream>,
    /// Where the connection goes, to reopen it after `Connection: close`.
    addr: SocketAddr,
    /// Set when requests go to a proxy in absolute form.
    absolute: Option<SocketAddr>,
    /// The server said it closes after this response; the next request
    /// pays for a new connection (as a real client would).
    closed: bool,
    /// Responses read on this connection.
    served: u32,
}

/// The server closed the connection before answering.
#[derive(Debug)]
struct ClosedIdle;

impl std::fmt::Display for ClosedIdle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the server closed the connection before answering")
    }
}

impl std::error::Error for ClosedIdle {}

impl Conn {
    async fn open(addr: SocketAddr, absolute: Option<SocketAddr>) -> Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream: BufReader::with_capacity(256 << 10, stream),
            addr,
            absolute,
            closed: false,
            served: 0,
        })
    }

    async fn tunnel(&mut self, to: SocketAddr) -> Result<()> {
        let req = format!("CONNECT {to} HTTP/1.1\r\nHost: {to}\r\n\r\n");
        self.stream.get_mut().write_all(req.as_bytes()).await?;
        let (status, _) = self.read_head().await?;
        if status != 200 {
            bail!("CONNECT answered {status}");
        }
        // What follows is the tunnel, whatever the proxy said about closing
        // its HTTP side.
        self.closed = false;
        Ok(())
    }

    /// Sends one request (with `upload` bytes of body) and reads the whole
    /// response; returns the body length. A reused connection the server
    /// closed while idle is reopened once, as HTTP clients do.
    async fn request(&mut self, path: &str, upload: u64) -> Result<u64> {
        if self.closed {
            *self = Conn::open(self.addr, self.absolute).await?;
        }
        match self.exchange(path, upload).await {
            Err(e) if self.served > 0 && e.is::<ClosedIdle>() => {
                *self = Conn::open(self.addr, self.absolute).await?;
                self.exchange(path, upload).await
            }
            other => other,
        }
    }

    async fn exchange(&mut self, path: &str, upload: u64) -> Result<u64> {
        // The Host header names the upstream, port included, as the target does.
        let (target, host) = match self.absolute {
            Some(up) => (format!("http://{up}{path}"), up),
            None => (path.to_string(), self.addr),
        };
        let method = if upload > 0 { "POST" } else { "GET" };
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {upload}\r\n\r\n"
        );
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes()).await?;
        let chunk = vec![0u8; 64 << 10];
        let mut left = upload;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            stream.write_all(&chunk[..n]).await?;
            left -= n as u64;
        }
        let (status, len) = self.read_head().await?;
        if status != 200 {
            bail!("{path} answered {status}");
        }
        let len = len.context("response without Content-Length")?;
        let mut left = len;
        let mut buf = vec![0u8; 256 << 10];
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = self.stream.read(&mut buf[..want]).await?;
            if n == 0 {
                bail!("connection closed with {left} bytes to go");
            }
            left -= n as u64;
        }
        self.served += 1;
        Ok(len)
    }

    async fn read_head(&mut self) -> Result<(u16, Option<u64>)> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err(ClosedIdle.into());
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut len = None;
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                bail!("connection closed in the response head");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().ok();
                } else if k.eq_ignore_ascii_case("connection")
                    && v.trim().eq_ignore_ascii_case("close")
                {
                    self.closed = true;
                }
            }
        }
        Ok((status, len))
    }
}

async fn throughput(c: &Contestant, up: SocketAddr, bytes: u64, tunnel: bool) -> Result<f64> {
    let mut conn = c.connect(up, tunnel).await.with_context(|| c.name)?;
    let start = Instant::now();
    let got = conn
        .request(&format!("/bytes/{bytes}"), 0)
        .await
        .with_context(|| format!("{} (tunnel: {tunnel})", c.name))?;
    let secs = start.elapsed().as_secs_f64();
    Ok(got as f64 / secs / 1e6)
}

async fn small_requests(
    c: &Contestant,
    up: SocketAddr,
    conns: usize,
    secs: u64,
) -> Result<(f64, Vec<u64>)> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let mut conn = c.connect(up, false).await?;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                conn.request("/bytes/2", 0).await?;
                lat.push(t.elapsed().as_micros() as u64);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.append(&mut t.await??);
    }
    Ok((all.len() as f64 / secs as f64, all))
}

/// Packages in the local index of (e).
const PIP_PACKAGES: usize = 50;

/// The package names of the local index.
fn pip_names() -> Vec<String> {
    (0..PIP_PACKAGES)
        .map(|i| format!("skreibench{i}"))
        .collect()
}

/// Small wheels (a module of a few KiB each) and PEP 503 index pages, by
/// the path the upstream serves them at. Built with Python's `zipfile`, as
/// pip itself reads them.
fn pip_index(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let wheels = dir.join("wheels");
    std::fs::create_dir_all(&wheels)?;
    let script = r##"
import sys, zipfile, hashlib, base64
out, names = sys.argv[1], sys.argv[2:]
for n in names:
    dist = f"{n}-1.0.dist-info"
    files = {
        f"{n}/__init__.py": ("# " + n + "\n") + ("x = 1\n" * 600),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {n}\nVersion: 1.0\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: skrei-bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(text.encode())}\n"
    record += f"{dist}/RECORD,,\n"
    files[f"{dist}/RECORD"] = record
    with zipfile.ZipFile(f"{out}/{n}-1.0-py3-none-any.whl", "w", zipfile.ZIP_DEFLATED) as z:
        for path, text in files.items():
            z.writestr(path, text)
"##;
    let status = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&wheels)
        .args(pip_names())
        .status()
        .context("python3 (for the wheels of the pip row)")?;
    if !status.success() {
        bail!("building the wheels failed");
    }
    let mut files = Vec::new();
    let mut root = String::from("<!DOCTYPE html><html><body>\n");
    for n in pip_names() {
        let wheel = format!("{n}-1.0-py3-none-any.whl");
        let bytes = std::fs::read(wheels.join(&wheel))?;
        files.push((
            format!("/simple/{n}/"),
            format!(
                "<!DOCTYPE html><html><body>\n<a href=\"/files/{wheel}\">{wheel}</a>\n</body></html>\n"
            )
            .into_bytes(),
        ));
        files.push((format!("/files/{wheel}"), bytes));
        root.push_str(&format!("<a href=\"/simple/{n}/\">{n}</a>\n"));
    }
    root.push_str("</body></html>\n");
    files.push(("/simple/".to_string(), root.into_bytes()));
    Ok(files)
}

/// Seconds for one `pip download` of every package through `c` (pip keeps
/// its connections alive).
fn pip_download(c: &Contestant, up: SocketAddr, workdir: &Path) -> Result<f64> {
    let dest = workdir.join(format!("pip-{}", c.name));
    let _ = std::fs::remove_dir_all(&dest);
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "pip", "download", "--no-deps", "--no-cache-dir", "-q"])
        .args(["--disable-pip-version-check", "--no-input"])
        .args(["--index-url", &format!("http://{up}/simple/")])
        .args(["--trusted-host", &up.ip().to_string()])
        .arg("-d")
        .arg(&dest)
        .args(pip_names())
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("PIP_INDEX_URL")
        .stdout(Stdio::null());
    if let Some(proxy) = c.proxy {
        cmd.args(["--proxy", &format!("http://{proxy}")]);
    }
    let start = Instant::now();
    let out = cmd.output().context("python3 -m pip")?;
    let secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("pip failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let got = std::fs::read_dir(&dest)?.count();
    if got != PIP_PACKAGES {
        bail!("pip downloaded {got} of {PIP_PACKAGES} packages");
    }
    Ok(secs)
}

async fn limited_rate(
    c: &Contestant,
    up: SocketAddr,
    conns: usize,
    upload: bool,
    secs: u64,
) -> Result<f64> {
    // Enough bytes for `secs` at the limit, shared by the connections.
    let total = LIMIT * secs;
    let each = total / conns as u64;
    let mut streams = Vec::new();
    for _ in 0..conns {
        streams.push(c.connect(up, false).await?);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut conn in streams {
        tasks.push(tokio::spawn(async move {
            if upload {
                conn.request("/bytes/0", each).await
            } else {
                conn.request(&format!("/bytes/{each}"), 0).await
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((each * conns as u64) as f64 / start.elapsed().as_secs_f64())
}

async fn idle_memory(c: &Contestant, up: SocketAddr, n: usize) -> Result<(u64, u64)> {
    let pid = c.pid().context("no process")?;
    let before = rss_kib(pid)?;
    let mut open = Vec::with_capacity(n);
    for _ in 0..n {
        open.push(c.connect(up, true).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid)?;
    drop(open);
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok((before, after))
}

/// CPU time (user and system) a process has used so far, in seconds.
fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces, in parentheses).
    let rest = stat.rsplit_once(')').context("bad stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5): 12 and 13 here.
    let ticks: u64 = fields.get(11).context("no utime")?.parse::<u64>()?
        + fields.get(12).context("no stime")?.parse::<u64>()?;
    // The kernel's USER_HZ, 100 on Linux.
    Ok(ticks as f64 / 100.0)
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

/// A minimal keep-alive HTTP/1.1 server: `/bytes/N` answers N bytes, and
/// request bodies are read and dropped.
struct Upstream {
    addr: SocketAddr,
}

impl Upstream {
    async fn start(files: Vec<(String, Vec<u8>)>) -> Result<Upstream> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let zeros: Arc<[u8]> = vec![0u8; 256 << 10].into();
        let files: Arc<HashMap<String, Vec<u8>>> = Arc::new(files.into_iter().collect());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let zeros = zeros.clone();
                let files = files.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, zeros, files).await;
                });
            }
        });
        Ok(Upstream { addr })
    }
}

async fn serve(
    stream: TcpStream,
    zeros: Arc<[u8]>,
    files: Arc<HashMap<String, Vec<u8>>>,
) -> Result<()> {
    stream.set_nodelay(true)?;
    let mut stream = BufReader::with_capacity(256 << 10, stream);
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut body_len = 0u64;
        loop {
            line.clear();
            if stream.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                body_len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut sink = vec![0u8; 256 << 10];
        while body_len > 0 {
            let want = body_len.min(sink.len() as u64) as usize;
            let n = stream.read(&mut sink[..want]).await?;
            if n == 0 {
                return Ok(());
            }
            body_len -= n as u64;
        }
        if let Some(file) = files.get(&path) {
            let kind = if path.ends_with('/') {
                "text/html"
            } else {
                "application/octet-stream"
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
                file.len()
            );
            let out = stream.get_mut();
            out.write_all(head.as_bytes()).await?;
            out.write_all(file).await?;
            continue;
        } else if !path.starts_with("/bytes/") {
            let out = stream.get_mut();
            out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .await?;
            continue;
        }
        let n: u64 = path
            .rsplit('/')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
        let out = stream.get_mut();
        out.write_all(head.as_bytes()).await?;
        let mut left = n;
        while left > 0 {
            let k = left.min(zeros.len() as u64) as usize;
            out.write_all(&zeros[..k]).await?;
            left -= k as u64;
        }
    }
}

fn free_addr() -> Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

fn tempdir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("skrei-proxy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

fn percentile(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i]
}
