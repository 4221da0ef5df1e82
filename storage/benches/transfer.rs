//! Adding and moving data by CID, side by side with the tools that bound it
//! (issue 4's benchmark): `Store::add_path` vs `cp` (the copy limit) and
//! `b3sum` (the hashing limit); a fetch between two stores over loopback vs a
//! plain TCP copy of the same bytes with 128 KiB buffers (`socat -b 131072`).
//!
//! ```sh
//! cargo bench -p storage --bench transfer            # 1 GiB, updates docs/BENCHMARKS.md
//! cargo bench -p storage --bench transfer -- --quick # 128 MiB, prints only
//! ```
//! Needs `cp`, `b3sum` and `socat` (system packages). Runs are interleaved
//! and medians of three are reported, with ratios to the limits.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use storage::store::{Store, StoreConfig};

#[path = "../../node/benches/support/mod.rs"]
mod support;
use support::{machine_line, today, write_section};

const MIB: u64 = 1 << 20;

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let size = if quick { 128 * MIB } else { 1024 * MIB };
    let runs = 3;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = std::env::temp_dir().join(format!("skrei-transfer-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = rt.block_on(run(&dir, size, runs));
    let _ = std::fs::remove_dir_all(&dir);
    let report = result?;
    println!("{report}");
    if !quick {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/BENCHMARKS.md");
        write_section(&path, "storage", &report)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

async fn run(dir: &Path, size: u64, runs: usize) -> Result<String> {
    let src = dir.join("data.bin");
    write_data(&src, size)?;

    let (mut add, mut cp, mut b3) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let target = dir.join(format!("copy{i}"));
        cp.push(timed_cmd(Command::new("cp").arg(&src).arg(&target))?);
        std::fs::remove_file(&target)?;
        b3.push(timed_cmd(Command::new("b3sum").arg(&src))?);
        let store = Store::open(StoreConfig::new(dir.join(format!("add{i}")))).await?;
        let t = Instant::now();
        store.add_path(&src).await?;
        add.push(t.elapsed());
        store.shutdown().await;
        let _ = std::fs::remove_dir_all(dir.join(format!("add{i}")));
    }

    let provider = Store::open(StoreConfig::new(dir.join("provider"))).await?;
    let cid = provider.add_path(&src).await?;
    let (mut fetch, mut tcp) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let store = Store::open(StoreConfig::new(dir.join(format!("fetch{i}")))).await?;
        let t = Instant::now();
        store
            .fetch(&cid, &[provider.addr()], None, u64::MAX)
            .await?;
        fetch.push(t.elapsed());
        store.shutdown().await;
        let _ = std::fs::remove_dir_all(dir.join(format!("fetch{i}")));
        tcp.push(socat_copy(&src, &dir.join(format!("tcp{i}")))?);
        let _ = std::fs::remove_file(dir.join(format!("tcp{i}")));
    }
    provider.shutdown().await;

    let mb = |d: Duration| size as f64 / d.as_secs_f64() / 1e6;
    let (add, cp, b3, fetch, tcp) = (
        median(add),
        median(cp),
        median(b3),
        median(fetch),
        median(tcp),
    );
    Ok(format!(
        "Measured {} on {}, {} MiB, median of {runs}, interleaved; command: \
         `cargo bench -p storage --bench transfer`.\n\n\
         | operation | MB/s | vs its limit |\n| --- | --- | --- |\n\
         | `cp` (copy limit) | {:.0} | 1.00x |\n\
         | `b3sum` (hashing limit) | {:.0} | — |\n\
         | `Store::add_path` (skrei add) | {:.0} | {:.2}x of cp, {:.2}x of b3sum |\n\
         | TCP copy, `socat -b 131072` (transfer limit) | {:.0} | 1.00x |\n\
         | `Store::fetch` between two stores (iroh, loopback) | {:.0} | {:.2}x of TCP |\n",
        today(),
        machine_line(),
        size / MIB,
        mb(cp),
        mb(b3),
        mb(add),
        mb(add) / mb(cp),
        mb(add) / mb(b3),
        mb(tcp),
        mb(fetch),
        mb(fetch) / mb(tcp),
    ))
}

/// Incompressible-looking bytes (xorshift), written in 1 MiB blocks.
fn write_data(path: &Path, size: u64) -> Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; MIB as usize];
    for _ in 0..size / MIB {
        for chunk in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&block)?;
    }
    f.flush()?;
    Ok(())
}

fn timed_cmd(cmd: &mut Command) -> Result<Duration> {
    let t = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .status()
        .context("running a comparison tool")?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(t.elapsed())
}

/// The same bytes over a plain TCP connection on loopback, written to disk
/// on the other side, with 128 KiB buffers.
fn socat_copy(src: &Path, dst: &Path) -> Result<Duration> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut receiver = Command::new("socat")
        .args(["-b", "131072", "-u"])
        .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr"))
        .arg(format!("CREATE:{}", dst.display()))
        .spawn()
        .context("starting socat (apt-get install socat)")?;
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let sent = Command::new("socat")
        .args(["-b", "131072", "-u"])
        .arg(format!("FILE:{}", src.display()))
        .arg(format!("TCP:127.0.0.1:{port}"))
        .status()?;
    let received = receiver.wait()?;
    let elapsed = t.elapsed();
    if !sent.success() || !received.success() {
        bail!("socat copy failed");
    }
    Ok(elapsed)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}
