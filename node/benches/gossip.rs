//! Gossip dissemination on real libp2p gossipsub swarms, beside simnet's
//! model of it (issue 7, item 2: the calibration).
//!
//! For each size N: N [`P2p`] swarms in this process on 127.0.0.1 TCP,
//! Kademlia on, mDNS off; node `i` bootstraps from up to 3 random nodes
//! before it. After the mesh settles, K signed announcements are published
//! one at a time from random nodes, and every node records when it got each
//! one. Measured per announcement: the share of the other nodes reached,
//! the time until 50 %, 90 % and 100 % of them had it (p50 and p99 over
//! announcements), and per node the gossip messages and bytes received
//! (duplicates included) and sent, from gossipsub's own counters
//! ([`P2pHandle::gossip_metrics`]); and each node's mesh size on the jobs
//! topic. The same N through simnet's gossip model ([`simnet::net::Network`])
//! gives its reach, hop counts and per-node copies.
//!
//! ```text
//! cargo bench -p node --bench gossip                 # 50, 100, 300 nodes, 20 announcements
//! cargo bench -p node --bench gossip -- --nodes 50,100 --announcements 10 --write
//! ```
//!
//! `--write` puts the table in docs/BENCHMARKS.md (section `gossip`);
//! simnet/bench/calibrate.sh runs this and the simnet CLI together.

#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use libp2p::Multiaddr;
use protocol::id::{JobId, NodeKey};
use protocol::job::JobSpec;
use protocol::messages::{Announce, Gossip, GossipMessage, Message};
use simnet::config::{GossipModel, LinkModel};
use simnet::net::Network;
use simnet::rng::SimRng;
use skrei_node::p2p::{JOBS_TOPIC, P2p, P2pConfig, P2pError, P2pEvent, P2pHandle};
use support::{machine_line, today, write_section};

const JOB: &str = "\
Name: calibrate
Type: batch
Count: 1
Tasks:
  - Name: main
    Engine:
      Type: docker
      Params:
        Image: busybox:1.36
        Parameters: [echo, hello]
";

/// Bootstrap peers per node, drawn among the nodes started before it.
const BOOTSTRAP_PEERS: usize = 3;
/// How long an announcement may take to reach everyone before the next.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(10);
/// Quiet time after each announcement, so IHAVE/IWANT repair (heartbeat
/// 500 ms) lands in that announcement's counters.
const AFTER_ANNOUNCE: Duration = Duration::from_millis(1500);

struct Args {
    sizes: Vec<usize>,
    announcements: usize,
    settle: Duration,
    seed: u64,
    write: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        sizes: vec![50, 100, 300],
        announcements: 20,
        settle: Duration::from_secs(20),
        seed: 1,
        write: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--nodes" => {
                a.sizes = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--announcements" => a.announcements = value()?.parse()?,
            "--settle" => a.settle = Duration::from_secs(value()?.parse()?),
            "--seed" => a.seed = value()?.parse()?,
            "--write" => a.write = true,
            // cargo bench passes --bench
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

/// When each node got each announcement.
type Arrivals = Arc<Mutex<HashMap<JobId, Vec<Instant>>>>;

struct Swarm {
    key: NodeKey,
    p2p: P2pHandle,
}

/// One size's figures.
#[derive(Debug, Default)]
struct Real {
    nodes: usize,
    published: usize,
    reach_mean: f64,
    reach_min: f64,
    t50: (f64, f64),
    t90: (f64, f64),
    t100: (f64, f64),
    fully_reached: usize,
    recv_msgs: f64,
    recv_dup_msgs: f64,
    recv_bytes: f64,
    sent_msgs: f64,
    mesh_mean: f64,
    mesh_range: (f64, f64),
    peers_mean: f64,
    /// Copies the publisher itself sent (flood publish: every connected
    /// peer, not only its mesh).
    publisher_sent: f64,
    setup_s: f64,
}

#[derive(Debug)]
struct Sim {
    reach: f64,
    hops: (u32, u32, u32),
    /// Copies each node receives per announcement: D, one more for the
    /// publisher's peers.
    copies: f64,
    /// Copies the publisher sends.
    publisher: u32,
}

fn main() -> Result<()> {
    let args = args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    for &n in &args.sizes {
        eprintln!("gossip: {n} nodes");
        let real = rt.block_on(measure(n, &args))?;
        let sim = simulate(n, args.seed);
        eprintln!("{real:?}\n{sim:?}");
        rows.push((real, sim));
    }
    let body = report(&args, &rows);
    println!("{body}");
    if args.write {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/BENCHMARKS.md");
        write_section(&path, "gossip", &body)?;
    }
    Ok(())
}

async fn measure(n: usize, args: &Args) -> Result<Real> {
    let started = Instant::now();
    let mut rng = SimRng::new(args.seed ^ n as u64);
    let arrivals: Arrivals = Arc::default();
    let mut swarms: Vec<Swarm> = Vec::with_capacity(n);
    let mut addrs: Vec<Multiaddr> = Vec::with_capacity(n);
    for i in 0..n {
        let mut secret = [0u8; 32];
        secret[..8].copy_from_slice(&(args.seed.wrapping_mul(1_000_003) + i as u64).to_le_bytes());
        secret[8] = 0x5c;
        let key = NodeKey::from_secret_bytes(secret);
        // Hundreds of swarms share 2 cores here: a node's 2 s pings and its
        // 10 s silence limit would close connections the overloaded process
        // is merely slow on. libp2p's own ping pace, and no limit, keep the
        // measurement about gossip (as it was before nodes had the limit).
        let mut config = P2pConfig::new(key.to_secret_bytes())
            .listen("/ip4/127.0.0.1/tcp/0".parse()?)
            .mdns(false)
            .liveness(Duration::from_secs(15), None);
        config.event_buffer = 4096;
        for _ in 0..BOOTSTRAP_PEERS.min(i) {
            config = config.bootstrap(addrs[rng.below(i as u64) as usize].clone());
        }
        let (p2p, events) = P2p::start(config).await?;
        addrs.push(
            p2p.listen_addrs()
                .first()
                .context("no listen address")?
                .clone(),
        );
        tokio::spawn(record(events, Arc::clone(&arrivals)));
        swarms.push(Swarm { key, p2p });
    }
    // Let Kademlia fill the routing tables and gossipsub build its meshes.
    tokio::time::sleep(args.settle).await;
    let setup_s = started.elapsed().as_secs_f64();
    let peers_mean = swarms.iter().map(|s| s.p2p.peers().len()).sum::<usize>() as f64 / n as f64;

    let before: Vec<Counters> = swarms.iter().map(|s| counters(&s.p2p)).collect();
    let spec = JobSpec::parse(JOB)?;
    let mut reaches = Vec::new();
    let mut publisher_sent = 0.0;
    let (mut t50, mut t90, mut t100) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..args.announcements {
        let from = &swarms[rng.below(n as u64) as usize];
        let announce = Announce::new(spec.clone(), from.key.node_id(), k as u64, vec![])?;
        let id = announce.job_id;
        let gossip = Gossip::from(announce.sign(&from.key)?);
        let sent_before = counters(&from.p2p).sent;
        let t0 = Instant::now();
        loop {
            match from.p2p.publish(&gossip).await {
                Err(P2pError::NoSubscribers { .. }) if t0.elapsed() < ANNOUNCE_TIMEOUT => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => break other?,
            }
        }
        let others = n - 1;
        while t0.elapsed() < ANNOUNCE_TIMEOUT && got(&arrivals, &id).len() < others {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(AFTER_ANNOUNCE).await;
        publisher_sent += counters(&from.p2p).sent - sent_before;
        let mut times: Vec<f64> = got(&arrivals, &id)
            .iter()
            .map(|t| t.saturating_duration_since(t0).as_secs_f64() * 1e3)
            .collect();
        times.sort_by(f64::total_cmp);
        reaches.push(times.len() as f64 / others as f64);
        let at = |share: f64| {
            let need = ((others as f64) * share).ceil() as usize;
            times.get(need.max(1) - 1).copied()
        };
        t50.extend(at(0.5));
        t90.extend(at(0.9));
        t100.extend(at(1.0));
    }
    let after: Vec<Counters> = swarms.iter().map(|s| counters(&s.p2p)).collect();
    let k = args.announcements.max(1) as f64;
    let per_node = |f: fn(&Counters) -> f64| {
        before
            .iter()
            .zip(&after)
            .map(|(b, a)| f(a) - f(b))
            .sum::<f64>()
            / (n as f64 * k)
    };
    let meshes: Vec<f64> = after.iter().map(|c| c.mesh).collect();
    let real = Real {
        nodes: n,
        published: args.announcements,
        reach_mean: reaches.iter().sum::<f64>() / k,
        reach_min: reaches.iter().copied().fold(1.0, f64::min),
        fully_reached: t100.len(),
        t50: p50_p99(&mut t50),
        t90: p50_p99(&mut t90),
        t100: p50_p99(&mut t100),
        recv_msgs: per_node(|c| c.recv_unfiltered),
        recv_dup_msgs: per_node(|c| c.recv_unfiltered - c.recv),
        recv_bytes: per_node(|c| c.recv_bytes_unfiltered),
        sent_msgs: per_node(|c| c.sent),
        mesh_mean: meshes.iter().sum::<f64>() / n as f64,
        mesh_range: (
            meshes.iter().copied().fold(f64::MAX, f64::min),
            meshes.iter().copied().fold(0.0, f64::max),
        ),
        peers_mean,
        publisher_sent: publisher_sent / k,
        setup_s,
    };
    for s in &swarms {
        s.p2p.shutdown().await;
    }
    Ok(real)
}

async fn record(mut events: tokio::sync::mpsc::Receiver<P2pEvent>, arrivals: Arrivals) {
    while let Some(event) = events.recv().await {
        if let P2pEvent::Gossip {
            message: GossipMessage::Announce(a),
            ..
        } = event
        {
            let now = Instant::now();
            let mut map = arrivals.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(a.job_id).or_default().push(now);
        }
    }
}

fn got(arrivals: &Arrivals, id: &JobId) -> Vec<Instant> {
    let map = arrivals.lock().unwrap_or_else(|p| p.into_inner());
    map.get(id).cloned().unwrap_or_default()
}

/// One node's gossipsub counters on the jobs topic.
#[derive(Debug, Default)]
struct Counters {
    recv: f64,
    recv_unfiltered: f64,
    recv_bytes_unfiltered: f64,
    sent: f64,
    mesh: f64,
}

fn counters(p2p: &P2pHandle) -> Counters {
    let text = p2p.gossip_metrics();
    // Summed over the label sets of the topic (the mesh size comes in two:
    // peers with and without partial-message support).
    let value = |name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
            .filter(|l| l.contains(JOBS_TOPIC))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    Counters {
        recv: value("gossipsub_topic_msg_recv_counts_total"),
        recv_unfiltered: value("gossipsub_topic_msg_recv_counts_unfiltered_total"),
        recv_bytes_unfiltered: value("gossipsub_topic_msg_recv_bytes_unfiltered_total"),
        sent: value("gossipsub_topic_msg_sent_counts_total"),
        mesh: value("gossipsub_mesh_peer_counts"),
    }
}

fn p50_p99(values: &mut [f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    values.sort_by(f64::total_cmp);
    let at =
        |q: f64| values[((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1];
    (at(0.5), at(0.99))
}

/// simnet's model at `n` nodes, no loss.
fn simulate(n: usize, seed: u64) -> Sim {
    let link = LinkModel {
        base_ms: 1,
        jitter_ms: 0,
        ..LinkModel::default()
    };
    let gossip = GossipModel::default();
    let net = Network::new(n, &link, &gossip, &[]);
    let mut rng = SimRng::new(seed);
    let mut hops: Vec<u32> = (1..n)
        .filter_map(|j| net.gossip(&mut rng, 0, j).map(|d| d.hops))
        .collect();
    let reach = hops.len() as f64 / (n - 1).max(1) as f64;
    hops.sort_unstable();
    let at = |q: f64| hops[((hops.len() as f64 * q).ceil() as usize).clamp(1, hops.len()) - 1];
    Sim {
        reach,
        hops: (at(0.5), at(0.9), at(1.0)),
        copies: f64::from(net.degree()) + f64::from(net.publish_copies()) / (n - 1).max(1) as f64,
        publisher: net.publish_copies(),
    }
}

fn report(args: &Args, rows: &[(Real, Sim)]) -> String {
    let mut s = format!(
        "Gossip dissemination: real libp2p gossipsub swarms vs simnet's model \
         (`cargo bench -p node --bench gossip`; {}, {}; the machine was shared with \
         other work, so times are upper bounds). All swarms in one process on \
         127.0.0.1 TCP, Kademlia on, each node bootstrapped from {BOOTSTRAP_PEERS} random \
         earlier nodes, {} s to settle, then {} announcements one at a time from random \
         nodes. Times from publish to the 50/90/100 % receiver, p50 / p99 over \
         announcements; messages and bytes are gossipsub's own counters on `{JOBS_TOPIC}` \
         per node per announcement (receptions include duplicates). simnet: its gossip \
         model at the same N, hops of the first copy.\n\n",
        machine_line(),
        today(),
        args.settle.as_secs(),
        args.announcements,
    );
    s.push_str(
        "| nodes | reached (mean, min) | to 50 % | to 90 % | to 100 % (p50 / p99) | \
         received per node (dup.) | bytes received per node | sent per node | mesh size \
         (mean, min-max) | connected peers | publisher sent | simnet: reached | simnet: hops to 50/90/100 % | \
         simnet: received per node | simnet: publisher sent |\n",
    );
    s.push_str("|---".repeat(15).as_str());
    s.push_str("|\n");
    for (r, m) in rows {
        s.push_str(&format!(
            "| {} | {:.1} %, {:.1} % | {:.0} / {:.0} ms | {:.0} / {:.0} ms | {:.0} / {:.0} ms ({} of {}) \
             | {:.2} ({:.2}) | {:.0} B | {:.2} | {:.1}, {:.0}-{:.0} | {:.1} | {:.1} | {:.1} % | {} / {} / {} | {:.2} | {} |\n",
            r.nodes,
            r.reach_mean * 100.0,
            r.reach_min * 100.0,
            r.t50.0,
            r.t50.1,
            r.t90.0,
            r.t90.1,
            r.t100.0,
            r.t100.1,
            r.fully_reached,
            r.published,
            r.recv_msgs,
            r.recv_dup_msgs,
            r.recv_bytes,
            r.sent_msgs,
            r.mesh_mean,
            r.mesh_range.0,
            r.mesh_range.1,
            r.peers_mean,
            r.publisher_sent,
            m.reach * 100.0,
            m.hops.0,
            m.hops.1,
            m.hops.2,
            m.copies,
            m.publisher,
        ));
    }
    s.push_str(&format!(
        "\nSet-up time (start, bootstrap, settle): {}.",
        rows.iter()
            .map(|(r, _)| format!("{:.0} s at {}", r.setup_s, r.nodes))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    s
}
