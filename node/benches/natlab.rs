//! Across NAT (issue 14): job latency and a 64 MiB CID fetch between two
//! nodes behind two NATs, hole-punched (cone NAT) vs relayed (symmetric
//! NAT), beside one plain TCP stream over the same lab.
//!
//! The lab is the tests' ([`natlab`]: `tests/it/natlab/natlab.sh`, network
//! namespaces only, nothing leaves it): a public node (a libp2p relay and an
//! iroh relay, `--capacity 0`), A (`--capacity 0`) behind NAT A, B behind
//! NAT B. For each NAT kind:
//!
//! - **job latency**: A submits the reader job (a WASM module by CID, 4 KiB
//!   inline input) `--jobs` times, one after another; each runs on B and
//!   its result comes back to A. Latency is the requester's own
//!   timestamps, submit to `job_completed`. A warm-up job first opens the
//!   A-B connection, and under cone NAT the program waits until it is
//!   direct (hole-punched) before timing.
//! - **64 MiB fetch**: A adds 64 MiB of fresh noise; B writes it out with
//!   `skrei get CID --from <A's data address>` (its node fetches it over
//!   iroh), `--fetches` times with new content each time. The lab's
//!   counters say how many bytes entered B's LAN straight from NAT A
//!   (direct) or from the public node (relayed).
//!
//! The reference is one TCP stream of 64 MiB from A to the public node
//! (through NAT A), python3's sockets at both ends: what the lab's links
//! carry with no skrei in the way.
//!
//! ```text
//! cargo bench -p node --bench natlab                    # as root
//! cargo bench -p node --bench natlab -- --jobs 20 --fetches 5 --write
//! ```
//!
//! Needs what the NAT lab tests need: root, iproute2, iptables, python3.
//! `--write` puts the report in docs/BENCHMARKS.md (section `natlab`).

#[allow(dead_code)]
#[path = "../tests/it/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../tests/it/natlab/lab.rs"]
mod natlab;
#[path = "support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use harness::{executions_on, text};
use natlab::{
    BOOT_IP, Host, Lab, Nat, Nodes, add_reader, connections, eventually, inline_data, noise,
    reader_job, reader_output, start,
};

const MIB: usize = 1 << 20;
const FETCH_BYTES: usize = 64 * MIB;

struct Options {
    jobs: usize,
    fetches: usize,
    write: bool,
}

fn options() -> Result<Options> {
    let mut o = Options {
        jobs: 10,
        fetches: 3,
        write: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<usize> {
            args.next()
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{name} takes a number"))
        };
        match arg.as_str() {
            "--jobs" => o.jobs = number("--jobs")?.max(1),
            "--fetches" => o.fetches = number("--fetches")?.max(1),
            "--write" => o.write = true,
            // What `cargo bench` passes to every bench program.
            "--bench" => {}
            other => bail!("unknown option {other}; see the header of node/benches/natlab.rs"),
        }
    }
    Ok(o)
}

/// One fetch: its time and where its bytes entered B's LAN.
struct Fetch {
    secs: f64,
    direct_bytes: u64,
    relayed_bytes: u64,
}

/// One configuration: the NAT kind, and the public node's extra flags.
struct Setup {
    nat: Nat,
    label: &'static str,
    boot_flags: &'static [&'static str],
}

const SETUPS: [Setup; 3] = [
    Setup {
        nat: Nat::Cone,
        label: "cone",
        boot_flags: &[],
    },
    Setup {
        nat: Nat::Symmetric,
        label: "symmetric",
        boot_flags: &[],
    },
    // The iroh relay caps what it forwards to each client (100 Mbit/s by
    // default): this row shows the relay's own speed.
    Setup {
        nat: Nat::Symmetric,
        label: "symmetric, relay cap 1Gi/s",
        boot_flags: &["--iroh-relay-client-rate", "1Gi"],
    },
];

/// What one setup measured.
struct Run {
    label: &'static str,
    latencies_ms: Vec<u64>,
    /// A's connections to B when the last job ended.
    path: Vec<String>,
    fetches: Vec<Fetch>,
    /// The reference: 64 MiB over one TCP stream A -> public node.
    tcp_secs: Vec<f64>,
}

fn main() -> Result<()> {
    let o = options()?;
    let mut runs = Vec::new();
    for setup in &SETUPS {
        eprintln!("--- {}", setup.label);
        runs.push(run(setup, &o)?);
    }
    let report = report(&runs, &o);
    println!("{report}");
    if o.write {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/BENCHMARKS.md");
        support::write_section(&path, "natlab", &report)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn run(setup: &Setup, o: &Options) -> Result<Run> {
    let nat = setup.nat;
    let lab = Lab::up(nat).context(
        "no NAT lab could be built (see above): run as root, with iproute2, iptables and python3",
    )?;
    let mut boot_flags = vec!["--capacity", "0"];
    boot_flags.extend(setup.boot_flags);
    let n = start(&lab, &boot_flags, false);
    let module = add_reader(&lab, &n.a);
    let small = noise(4096);
    let expected = reader_output(&small);
    let job = reader_job("across", &module, &[], &inline_data(&small));

    // Warm-up: the A-B connection opens (and, under cone NAT, is punched).
    let warm = one_job(&n, &job, &expected)?;
    eprintln!("warm-up job: {warm} ms");
    if nat == Nat::Cone {
        eventually(
            Duration::from_secs(20),
            "A's connections to B to be direct",
            || {
                let conns = connections(&n.a.info(), &n.b_id)?;
                if !conns.is_empty() && conns.iter().all(|c| !c.contains("/p2p-circuit")) {
                    Ok(())
                } else {
                    Err(format!("{conns:?}"))
                }
            },
        );
    }

    let mut latencies_ms = Vec::new();
    for i in 0..o.jobs {
        let ms = one_job(&n, &job, &expected)?;
        eprintln!("job {i}: {ms} ms");
        latencies_ms.push(ms);
    }
    let path = connections(&n.a.info(), &n.b_id).map_err(anyhow::Error::msg)?;
    match nat {
        Nat::Cone => ensure!(
            !path.is_empty() && path.iter().all(|c| !c.contains("/p2p-circuit")),
            "under cone NAT the A-B connection went back to the relay: {path:?}"
        ),
        Nat::Symmetric => ensure!(
            !path.is_empty() && path.iter().all(|c| c.contains("/p2p-circuit")),
            "under symmetric NAT A and B have a direct connection: {path:?}"
        ),
    }

    let from = serde_json::to_string(&n.a.info()["data_addr"])?;
    let mut fetches = Vec::new();
    for i in 0..o.fetches {
        let fetch = one_fetch(&lab, &n, &from, i)?;
        eprintln!(
            "fetch {i}: {:.2} s, {:.1} MiB direct, {:.1} MiB via the public node",
            fetch.secs,
            fetch.direct_bytes as f64 / MIB as f64,
            fetch.relayed_bytes as f64 / MIB as f64
        );
        fetches.push(fetch);
    }
    let mut tcp_secs = Vec::new();
    for _ in 0..o.fetches {
        let secs = tcp_stream(&lab)?;
        eprintln!("TCP stream: {secs:.2} s");
        tcp_secs.push(secs);
    }
    Ok(Run {
        label: setup.label,
        latencies_ms,
        path,
        fetches,
        tcp_secs,
    })
}

/// Runs the job from A; it must complete on B with the expected output.
/// Its latency from the requester's events.
fn one_job(n: &Nodes, job: &str, expected: &str) -> Result<u64> {
    let id = n.a.submit(job);
    let done = n.a.wait(&id, Duration::from_secs(120));
    ensure!(
        done["state"] == "completed",
        "the job did not complete: {done:#}"
    );
    ensure!(
        executions_on(&done) == vec![n.b_id.clone()],
        "the job ran elsewhere than on B: {done:#}"
    );
    let into = tempfile::tempdir()?;
    let out = n.a.cli(&[
        "job",
        "get",
        &id,
        "-o",
        into.path().join("r").to_str().unwrap(),
    ]);
    ensure!(out.status.success(), "job get: {}", text(&out.stderr));
    let stdout = std::fs::read_to_string(into.path().join("r/stdout"))?;
    ensure!(
        stdout == expected,
        "the job's output: {stdout:?}, expected {expected:?}"
    );
    latency_ms(&done).with_context(|| format!("no submit and completion times: {done:#}"))
}

fn latency_ms(job: &Value) -> Option<u64> {
    let submitted = job["job"]["announce"]["submitted_at_ms"].as_u64()?;
    let completed = job["events"].as_array()?.iter().find_map(|e| {
        (e["event"]["event"] == "job_completed")
            .then(|| e["at_ms"].as_u64())
            .flatten()
    })?;
    Some(completed.saturating_sub(submitted))
}

/// Bytes the lab counted entering B's LAN (direct from NAT A, from the
/// public node).
fn into_b(lab: &Lab) -> (u64, u64) {
    let c = lab.counters();
    let bytes = |name: &str| c.get(&("rtb".into(), name.into())).map_or(0, |v| v.1);
    (bytes("from-nat-a"), bytes("from-boot"))
}

/// A adds 64 MiB of new content; B writes it out by CID, fetched from A.
fn one_fetch(lab: &Lab, n: &Nodes, from: &str, round: usize) -> Result<Fetch> {
    let mut data = noise(FETCH_BYTES);
    data[..8].copy_from_slice(&(round as u64 + 1).to_le_bytes());
    let source = lab.dir().join(format!("fetch-{round}.bin"));
    std::fs::write(&source, &data)?;
    let cid = n.a.add(&source);
    let target = lab.dir().join(format!("fetched-{round}.bin"));
    let before = into_b(lab);
    let started = Instant::now();
    let out =
        n.b.cli(&["get", &cid, "-o", target.to_str().unwrap(), "--from", from]);
    let secs = started.elapsed().as_secs_f64();
    ensure!(
        out.status.success(),
        "skrei get on B: {}",
        text(&out.stderr)
    );
    let after = into_b(lab);
    ensure!(
        std::fs::read(&target)? == data,
        "B wrote other bytes than A added"
    );
    std::fs::remove_file(&target)?;
    std::fs::remove_file(&source)?;
    Ok(Fetch {
        secs,
        direct_bytes: after.0 - before.0,
        relayed_bytes: after.1 - before.1,
    })
}

/// The reference: 64 MiB over one TCP stream from A to the public node,
/// through NAT A; seconds from connect to the receiver's last byte.
fn tcp_stream(lab: &Lab) -> Result<f64> {
    const PORT: &str = "5001";
    let receiver = format!(
        "import socket\n\
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('{BOOT_IP}', {PORT})); s.listen(1); print('ready', flush=True)\n\
         c, _ = s.accept(); n = 0\n\
         while True:\n    b = c.recv(1 << 20)\n    if not b: break\n    n += len(b)\n\
         c.sendall(str(n).encode()); c.close()\n"
    );
    let sender = format!(
        "import socket, time\n\
         data = bytes({FETCH_BYTES}); t = time.monotonic()\n\
         s = socket.create_connection(('{BOOT_IP}', {PORT}))\n\
         s.sendall(data); s.shutdown(socket.SHUT_WR)\n\
         n = int(s.recv(64)); print(n, time.monotonic() - t)\n"
    );
    let mut rx = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.netns(Host::Boot),
            "python3",
            "-c",
            &receiver,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("python3 in the lab")?;
    // Wait for "ready" before connecting.
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(rx.stdout.as_mut().unwrap()),
        &mut ready,
    )?;
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.netns(Host::A),
            "python3",
            "-c",
            &sender,
        ])
        .output()?;
    let _ = rx.wait();
    ensure!(
        out.status.success(),
        "the TCP sender: {}",
        text(&out.stderr)
    );
    let said = text(&out.stdout);
    let mut words = said.split_whitespace();
    let received: usize = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
    ensure!(
        received == FETCH_BYTES,
        "the receiver got {received} bytes: {said}"
    );
    words
        .next()
        .and_then(|w| w.parse().ok())
        .context("the sender's time")
}

fn median<T: Copy + PartialOrd>(v: &[T]) -> T {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s[s.len() / 2]
}

fn report(runs: &[Run], o: &Options) -> String {
    let mut r = String::new();
    let _ = writeln!(
        r,
        "## Across NAT: hole-punched vs relayed (issue 14)\n\n\
         `cargo bench -p node --bench natlab -- --jobs {} --fetches {}` (as root), {}, {}.\n\
         The NAT lab of the tests (network namespaces; veth links, no added delay): A and B \
         behind two NATs, the public node a libp2p and iroh relay. Job: the reader module \
         by CID on a 4 KiB inline input, submitted on A, run on B, latency from A's own \
         timestamps (submit to completed), one job at a time. Fetch: `skrei get` on B of \
         64 MiB that A added, new content each time; \"direct\" and \"via the public node\" \
         are the bytes the lab counted entering B's LAN. TCP: one python3 stream of 64 MiB \
         A to the public node through NAT A, the links' own speed. The public node's iroh \
         relay forwards at most 100 Mbit/s to each client by default \
         (`--iroh-relay-client-rate`); the last row raises that cap.\n",
        o.jobs,
        o.fetches,
        support::today(),
        support::machine_line(),
    );
    let _ = writeln!(
        r,
        "| NAT | A-B connection | job latency p50 (ms) | min-max | 64 MiB fetch median (s) | MiB/s | MiB direct / via public node (all fetches) | TCP stream median (s) |\n\
         |---|---|---|---|---|---|---|---|"
    );
    for run in runs {
        let lat = median(&run.latencies_ms);
        let (lo, hi) = (
            run.latencies_ms.iter().min().copied().unwrap_or(0),
            run.latencies_ms.iter().max().copied().unwrap_or(0),
        );
        let secs: Vec<f64> = run.fetches.iter().map(|f| f.secs).collect();
        let fetch = median(&secs);
        let direct: u64 = run.fetches.iter().map(|f| f.direct_bytes).sum();
        let relayed: u64 = run.fetches.iter().map(|f| f.relayed_bytes).sum();
        let path = if run.path.iter().all(|c| c.contains("/p2p-circuit")) {
            "relayed"
        } else {
            "direct (hole-punched)"
        };
        let _ = writeln!(
            r,
            "| {} | {path} | {lat} | {lo}-{hi} | {fetch:.2} | {:.0} | {:.0} / {:.0} | {:.2} |",
            run.label,
            FETCH_BYTES as f64 / MIB as f64 / fetch,
            direct as f64 / MIB as f64,
            relayed as f64 / MIB as f64,
            median(&run.tcp_secs),
        );
    }
    if let [cone, symmetric, uncapped] = runs {
        let lat = median(&symmetric.latencies_ms) as f64 / median(&cone.latencies_ms).max(1) as f64;
        let secs = |run: &Run| median(&run.fetches.iter().map(|f| f.secs).collect::<Vec<_>>());
        let _ = writeln!(
            r,
            "\nRelayed / direct: job latency {lat:.2}x, 64 MiB fetch {:.2}x ({:.2}x with the \
             relay's cap raised). Direct fetch / TCP stream: {:.1}x.",
            secs(symmetric) / secs(cone),
            secs(uncapped) / secs(cone),
            secs(cone) / median(&cone.tcp_secs),
        );
    }
    r
}
