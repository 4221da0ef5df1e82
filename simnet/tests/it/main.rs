//! simnet's tests: fixed-seed scenarios, determinism, and a checker that
//! can fail. Every failing run prints its seed and event index.

mod live;
mod live_docker;

use std::process::Command;

use protocol::failure::{Failure, FailureCause};
use simnet::config::Partition;
use simnet::{Report, SimConfig, Violation};

/// Runs a scenario; a violation fails the test with its seed and event.
fn run_ok(config: SimConfig) -> Report {
    let seed = config.seed;
    simnet::run(config).unwrap_or_else(|v| panic!("seed {seed}: {v}"))
}

/// The CI scenario, `simnet/scenarios/ci.toml`: 100 nodes, 300 jobs, 10%
/// of the nodes crash and restart, 1% message loss, and 30% of the network
/// is cut off from the rest from 10 s to 40 s.
fn ci_scenario(seed: u64) -> SimConfig {
    let mut c = SimConfig::from_toml(include_str!("../../scenarios/ci.toml"))
        .expect("the CI scenario file is valid");
    assert_eq!(
        (c.nodes, c.jobs, c.churn, c.link.loss),
        (100, 300, 0.1, 0.01)
    );
    assert_eq!(
        c.partitions,
        vec![Partition::parse("0.3@10000-40000").unwrap()]
    );
    c.seed = seed;
    c
}

/// R-SIM-1: the invariants hold after every event and at the end, under
/// churn, loss and a partition, and most jobs complete.
///
/// The threshold: over seeds 1..=100 of this scenario (`simnet sweep
/// --scenario simnet/scenarios/ci.toml --seeds 1..=100`) the success rate
/// ranged from 92.7% to 99.0%, mean 96.8%, once half the jobs read inputs
/// (before: 96.7% to 100%, mean 98.9%); seed 7, tested here, completes
/// 98.3%. The jobs that fail do so for true reasons: `http`
/// domains that no node's allowlist covers, `full` or WASM jobs with
/// `Count` 3 when few nodes qualify and some of those crashed, and inputs
/// too large to cross their submitter's link within the 60 s execution
/// timeout (plus 30 s grace), tried 5 times. 95% on seed 7 leaves room for
/// protocol tuning while still catching a broken award or re-award path,
/// which drops the rate far lower.
#[test]
fn ci_scenario_keeps_the_invariants_and_completes_most_jobs() {
    let seed = 7;
    let report = run_ok(ci_scenario(seed));
    eprintln!("{report}");
    assert_eq!(
        report.completed + report.failed + report.cancelled,
        300,
        "seed {seed}: every job ends"
    );
    assert!(
        report.success_rate >= 0.95,
        "seed {seed}: success rate {:.1}% below 95%",
        report.success_rate * 100.0
    );
    assert!(report.latency_ms.p50 > 0, "seed {seed}: latency measured");
    assert!(report.bids_per_job.mean >= 1.0, "seed {seed}: nodes bid");
    // Every failure is of a kind the requester explains.
    assert!(
        !report.failures_by_cause.contains_key(&FailureCause::Other),
        "seed {seed}: unexplained failures {:?}",
        report.failure_examples
    );
}

/// Where every node takes every job and nothing goes wrong, every job
/// completes. Half the jobs read inputs of up to 1 GiB each; their
/// timeout leaves room to fetch three of them at 50 Mbit/s (515 s).
#[test]
fn a_healthy_network_completes_every_job() {
    let seed = 3;
    let mut c = SimConfig::new(60, 200, seed);
    c.population.http_share = 0.0;
    c.population.full_share = 1.0;
    c.population.docker_only_share = 0.0;
    c.population.wasm_only_share = 0.0;
    c.execution.failure = 0.0;
    c.mix.execution_timeout_s = 600;
    let report = run_ok(c);
    assert_eq!(report.completed, 200, "seed {seed}: {report}");
    // Every submitter stays up and reachable: inputs always come.
    assert!(report.inputs.fetched > 50, "seed {seed}: {report}");
    assert_eq!(report.inputs.unreachable, 0, "seed {seed}: {report}");
}

/// Issue 15 (R-PLC-2): node 0 submits 5 times the network's slots on top
/// of the mix. The invariants hold (busy refusals, the requester's share
/// among them, are checked as they are sent), the flood's jobs are counted
/// apart, and the other requesters' jobs complete about as they do without
/// the flood.
#[test]
fn a_flood_from_one_requester_leaves_the_others_their_share() {
    let seed = 7;
    let config = |flood: f64| {
        let mut c = SimConfig::new(20, 60, seed);
        c.mix.input_share = 0.0;
        c.submit_window_ms = 20_000;
        c.flood = flood;
        c
    };
    let calm = run_ok(config(0.0));
    let flooded = run_ok(config(5.0));
    eprintln!("{flooded}");
    let slots = flooded.by_requester.flood_jobs as f64 / 5.0;
    assert!(slots >= 20.0, "seed {seed}: {slots} slots");
    assert_eq!(calm.by_requester.flood_jobs, 0);
    let (c, f) = (&calm.by_requester, &flooded.by_requester);
    assert_eq!(
        c.others_jobs, f.others_jobs,
        "the same jobs beside the flood"
    );
    assert!(
        f.others_completed + 2 >= c.others_completed,
        "seed {seed}: others completed {} with the flood, {} without",
        f.others_completed,
        c.others_completed
    );
    assert!(
        f.others_latency_ms.p99 <= 2 * c.others_latency_ms.p99,
        "seed {seed}: others' p99 {} ms with the flood, {} ms without",
        f.others_latency_ms.p99,
        c.others_latency_ms.p99
    );
    // The flood ran as far as the slots allowed, and no further.
    assert!(f.flood_completed > 0 && f.flood_completed < f.flood_jobs);
}

/// R-SIM-1 (a seeded, reproducible schedule): the same seed gives the same
/// trace; another seed another one.
#[test]
fn same_seed_same_trace_hash() {
    let a = run_ok(ci_scenario(11));
    let b = run_ok(ci_scenario(11));
    assert_eq!(a.trace_hash, b.trace_hash, "seed 11 replays");
    assert_eq!(a.events, b.events);
    assert_eq!(a.latency_ms, b.latency_ms);
    let c = run_ok(ci_scenario(12));
    assert_ne!(a.trace_hash, c.trace_hash, "seeds 11 and 12 differ");
}

/// R-SIM-1, R-POL-1/2: a node that ignores its policy (its compute side
/// bids on and starts anything) is caught, with the seed and the event index, and the same
/// seed catches it at the same event again.
#[test]
fn a_node_ignoring_its_policy_is_caught() {
    let seed = 5;
    let mut c = SimConfig::new(50, 100, seed);
    c.faulty_nodes = (0..10).collect();
    let v: Violation = simnet::run(c.clone()).expect_err("the faulty nodes start forbidden jobs");
    assert_eq!(v.seed, seed);
    assert!(v.event_index > 0);
    assert!(v.what.contains("policy forbids"), "{v}");
    let again = simnet::run(c).expect_err("the same seed fails the same way");
    assert_eq!(again, v);
}

/// Issue 7 (blob availability): a node whose fetches claim no provider is
/// reachable while the submitter is up and reachable is caught, with the
/// seed and the event index, and the same seed catches it again.
#[test]
fn a_broken_fetch_is_caught() {
    let seed = 5;
    let mut c = SimConfig::new(50, 100, seed);
    c.mix.input_share = 1.0;
    c.faulty_fetch_nodes = (0..10).collect();
    let v: Violation = simnet::run(c.clone()).expect_err("the faulty nodes give up on inputs");
    assert_eq!(v.seed, seed);
    assert!(v.event_index > 0);
    assert!(
        v.what.contains("saying no provider is reachable, but"),
        "{v}"
    );
    assert_eq!(simnet::run(c).expect_err("again"), v);
}

/// Issue 7 (blob availability): when the only node holding an input, its
/// submitter, crashes or is cut off while an execution fetches it, the
/// execution fails saying so, and the checker finds every such failure
/// true of the network at that moment. Copies on 3 more nodes make it
/// rare (over seeds 1-4: 15 such failures without replicas, 2 with).
#[test]
fn inputs_without_a_reachable_provider_fail_and_replicas_help() {
    let unreachable = |replicas| -> u64 {
        (1..=4)
            .map(|seed| {
                let mut c = SimConfig::new(100, 300, seed);
                c.churn = 0.5;
                c.mix.input_share = 1.0;
                c.mix.replicas = replicas;
                c.partitions = vec![Partition::parse("0.5@20000-50000").unwrap()];
                let r = run_ok(c);
                assert_eq!(
                    r.execution_failures_by_cause
                        .get(&FailureCause::InputUnavailable)
                        .copied()
                        .unwrap_or(0),
                    r.inputs.unreachable,
                    "seed {seed}"
                );
                r.inputs.unreachable
            })
            .sum()
    };
    let (alone, copied) = (unreachable(0), unreachable(3));
    assert!(alone >= 5, "seeds 1-4: {alone} without replicas");
    assert!(
        copied * 2 < alone,
        "seeds 1-4: {copied} with 3 replicas vs {alone} without"
    );
}

/// Every job reads one input of `bytes`; every node's link is `up` and
/// `down` Mbit/s.
fn one_input_each(mut c: SimConfig, bytes: u64, up: u64, down: u64) -> SimConfig {
    c.mix.input_share = 1.0;
    c.mix.inputs_per_job = (1, 1);
    c.mix.input_bytes = (bytes, bytes);
    c.population.bandwidth = vec![simnet::config::BandwidthClass {
        share: 1.0,
        up_mbps: up,
        down_mbps: down,
    }];
    c
}

/// Issue 7 (transfer time by size and bandwidth): a fetch takes two link
/// delays and the size over the slower of the provider's upload and the
/// receiver's download, and every byte is counted.
#[test]
fn input_fetches_take_size_over_bandwidth() {
    let seed = 8;
    // 8 Mbit/s up (1 MB/s), 80 down: the upload sets the pace.
    let r = run_ok(one_input_each(
        SimConfig::new(40, 60, seed),
        1_000_000,
        8,
        80,
    ));
    let i = &r.inputs;
    assert!(i.fetched >= 40, "seed {seed}: {r}");
    // 1,000 ms of bytes plus two link delays of 50-75 ms.
    assert!(
        i.fetch_ms.p50 >= 1_100 && i.fetch_ms.max <= 1_150,
        "seed {seed}: {:?}",
        i.fetch_ms
    );
    assert_eq!(i.bytes_total, i.fetched * 1_000_000, "seed {seed}");
    assert!(i.bytes_per_node.max >= 1_000_000, "seed {seed}");
}

/// R-PLC-1: inputs that no node could fetch within the job's
/// `ExecutionTimeout` (100 MB from a submitter serving at 8 Mbit/s: 100 s,
/// over 60 s) are not tried five times over: nodes refuse them saying so,
/// the job runs where its input is when that node takes it, and every
/// other such job fails within 5 s of its submission with the input's size
/// and the best fetch time.
#[test]
fn r_plc_1_inputs_no_node_can_fetch_in_time_fail_at_once_with_the_numbers() {
    let seed = 5;
    let r = run_ok(one_input_each(
        SimConfig::new(30, 20, seed),
        100_000_000,
        8,
        8,
    ));
    let reach = &r.reach;
    assert!(reach.cannot_finish >= 10, "seed {seed}: {r}");
    assert_eq!(
        reach.cannot_finish_explained, reach.cannot_finish,
        "seed {seed}: {r}"
    );
    assert!(reach.cannot_finish_fail_ms.max < 5_000, "seed {seed}: {r}");
    assert!(reach.can_finish >= 1, "seed {seed}: {r}");
    assert_eq!(
        reach.can_finish_completed, reach.can_finish,
        "seed {seed}: {r}"
    );
    // No attempt was wasted on a fetch that could not finish.
    assert_eq!(
        r.execution_failures_by_cause
            .get(&FailureCause::InputTimeout),
        None,
        "seed {seed}: {r}"
    );
    let example = &r.failure_examples[&FailureCause::NoNodeAccepts];
    assert!(
        example.contains("fetching them (95 MiB)") && example.contains("100 s at 8 Mbit/s"),
        "seed {seed}: {example}"
    );
}

/// The failure-reason check is not vacuous: a reason claiming more nodes
/// refuse for a policy reason than truly do is caught.
#[test]
fn a_false_failure_reason_is_caught() {
    let sim = simnet::Sim::new(SimConfig::new(20, 1, 1));
    let nodes = sim.nodes();
    let spec = protocol::job::JobSpec::parse(
        "type: batch\ncount: 1\ntasks:\n  - name: main\n    engine:\n      type: docker\n      \
         params:\n        image: busybox\n    network:\n      type: Full\n",
    )
    .unwrap();
    let truly = simnet::check::refusals_by_text(nodes, &spec);
    let (text, n) = truly.iter().next().expect("some node refuses full jobs");
    let accepts = |detail: String| Failure::new(FailureCause::NoNodeAccepts, detail);
    let honest = accepts(format!("no node accepts this job: {n} nodes: {text}"));
    assert_eq!(
        simnet::check::check_failure_reason(nodes, &spec, &honest),
        Ok(())
    );
    let inflated = accepts(format!("no node accepts this job: {} nodes: {text}", n + 1));
    assert!(simnet::check::check_failure_reason(nodes, &spec, &inflated).is_err());
    let invented = accepts("no node accepts this job: 1 node: engine=gpu not available".into());
    assert!(simnet::check::check_failure_reason(nodes, &spec, &invented).is_err());
    assert!(simnet::check::check_failure_reason(nodes, &spec, &accepts(" ".into())).is_err());
    // An attempt's cause is not a job's.
    let attempt = Failure::new(FailureCause::Timeout, honest.detail.clone());
    assert!(simnet::check::check_failure_reason(nodes, &spec, &attempt).is_err());
}

/// The CLI prints how to reproduce a violation, and a report otherwise.
#[test]
fn cli_prints_the_report_and_how_to_reproduce() {
    let bin = env!("CARGO_BIN_EXE_simnet");
    let dir = std::env::temp_dir().join(format!("simnet-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("report.json");
    let svg = dir.join("plot.svg");
    let out = Command::new(bin)
        .args([
            "run", "--nodes", "30", "--jobs", "40", "--seed", "9", "--churn", "0.1",
        ])
        .args(["--partition", "0.5@2000-8000", "--report"])
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("success rate"), "{stdout}");
    assert!(stdout.contains("p99"), "{stdout}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["config"]["seed"], 9);
    assert!(report["latency_ms"]["p99"].as_u64().is_some());
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));

    let out = Command::new(bin)
        .args([
            "run",
            "--nodes",
            "30",
            "--jobs",
            "40",
            "--seed",
            "4",
            "--faulty",
            "0,1,2,3,4,5",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("reproduce with: simnet run"), "{stderr}");
    assert!(stderr.contains("--faulty 0,1,2,3,4,5 --seed 4"), "{stderr}");
    assert!(stderr.contains("violation at event"), "{stderr}");

    let out = Command::new(bin)
        .args(["run", "--nodes", "30", "--jobs", "40", "--seed", "4"])
        .args(["--input-share", "1", "--faulty-fetch", "0,1,2,3,4,5"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no provider is reachable"), "{stderr}");
    assert!(
        stderr.contains("--input-share 1 --faulty-fetch 0,1,2,3,4,5 --seed 4"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sweep` runs every seed and lists the failing ones.
#[test]
fn sweep_lists_failing_seeds() {
    let bin = env!("CARGO_BIN_EXE_simnet");
    let out = Command::new(bin)
        .args(["sweep", "--seeds", "1..=4", "--nodes", "20", "--jobs", "20"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("4 seeds, 0 failed"), "{stdout}");
    let out = Command::new(bin)
        .args([
            "sweep",
            "--seeds",
            "1..=4",
            "--nodes",
            "20",
            "--jobs",
            "20",
            "--faulty",
            "0,1,2,3,4,5,6,7",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("FAILED"), "{stdout}");
    assert!(stdout.contains("reproduce with:"), "{stdout}");
}

#[test]
fn a_flood_out_of_range_is_refused_with_what_to_write() {
    for bad in [-1.0, 101.0, f64::NAN] {
        let mut c = SimConfig::new(10, 10, 1);
        c.flood = bad;
        let e = c.validate().expect_err("refused").to_string();
        assert!(
            e.contains("flood") && e.contains("from 0 to 100"),
            "{bad}: {e}"
        );
    }
    let e = SimConfig::from_toml("flood = -2.0")
        .expect_err("refused")
        .to_string();
    assert!(e.contains("flood"), "{e}");
    let status = Command::new(env!("CARGO_BIN_EXE_simnet"))
        .args(["run", "--nodes", "5", "--jobs", "5", "--flood", "500"])
        .output()
        .unwrap();
    assert!(!status.status.success());
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(stderr.contains("from 0 to 100"), "{stderr}");
}

#[test]
fn partitions_parse_and_refuse_nonsense() {
    let p = Partition::parse("0.3@10000-40000").unwrap();
    assert_eq!((p.share, p.from_ms, p.until_ms), (0.3, 10_000, 40_000));
    assert_eq!(p.to_string(), "0.3@10000-40000");
    for bad in ["0.3", "2@1-2", "0.3@5-1", "x@1-2", "0.5@1"] {
        assert!(Partition::parse(bad).is_err(), "{bad}");
    }
}

/// The gossip model: without loss everyone hears an announcement within
/// the hops flood publishing and the mesh need (1,000 nodes: 50 peers of
/// the publisher, then 250, then the other 699: 3 hops); with loss, about
/// the share the model promises.
#[test]
fn gossip_model_reaches_everyone_within_its_hops() {
    use simnet::config::{GossipModel, LinkModel};
    use simnet::net::Network;
    use simnet::rng::SimRng;

    let link = LinkModel {
        base_ms: 50,
        jitter_ms: 10,
        loss: 0.0,
        ..LinkModel::default()
    };
    let net = Network::new(1000, &link, &GossipModel::default(), &[]);
    assert_eq!((net.degree(), net.publish_copies()), (6, 50));
    let mut rng = SimRng::new(1);
    let deliveries: Vec<_> = (0..10_000)
        .map(|_| net.gossip(&mut rng, 0, 1).expect("no loss"))
        .collect();
    assert!(
        deliveries.iter().all(|d| (1..=3).contains(&d.hops)
            && (u64::from(d.hops) * 50..=u64::from(d.hops) * 60).contains(&d.delay_ms)),
        "seed 1"
    );
    // Most receivers are at the last hop (699 of 999), few next to the
    // publisher (50).
    let count = |h| deliveries.iter().filter(|d| d.hops == h).count();
    assert!(
        (6_600..=7_400).contains(&count(3)),
        "seed 1: {} at 3 hops",
        count(3)
    );
    assert!(
        (300..=700).contains(&count(1)),
        "seed 1: {} at 1 hop",
        count(1)
    );

    let lossy = LinkModel { loss: 0.3, ..link };
    let net = Network::new(1000, &lossy, &GossipModel::default(), &[]);
    let reached = (0..10_000)
        .filter(|_| net.gossip(&mut rng, 0, 1).is_some())
        .count();
    // At 3 hops a copy survives with 0.7^3 = 0.34; one of 6 copies with
    // 1 - 0.66^6 = 0.92. Nearer receivers do better: 0.94 in all.
    assert!(
        (9_100..=9_700).contains(&reached),
        "seed 1: {reached} of 10000 reached"
    );
    // A small network: the publisher's peers are everyone.
    let small = Network::new(20, &link, &GossipModel::default(), &[]);
    assert_eq!(small.publish_copies(), 19);
    assert!((0..100).all(|_| small.gossip(&mut rng, 0, 1).unwrap().hops == 1));
}

/// Gossip traffic per node per job does not grow with the network: every
/// node hears each announcement about D times and answers it once.
#[test]
fn traffic_per_node_per_job_is_bounded() {
    let small = run_ok(SimConfig::new(50, 60, 21));
    let large = run_ok(SimConfig::new(200, 60, 21));
    let (s, l) = (
        small.messages_per_node_per_job,
        large.messages_per_node_per_job,
    );
    assert!(s > 12.0, "seed 21: {s} messages per node per job");
    assert!(
        l < 1.25 * s,
        "seed 21: {l} per node per job at 200 nodes vs {s} at 50"
    );
}

/// Harsh small networks: most nodes crash, 30% of messages are lost, half
/// the network is cut off for a while and executions often fail. Jobs may
/// fail, but only with true reasons, and every one of them ends.
#[test]
fn harsh_networks_keep_the_invariants() {
    for seed in 1..=20 {
        let mut c = SimConfig::new(12, 30, seed);
        c.churn = 0.8;
        c.link.loss = 0.3;
        c.link.base_ms = 200;
        c.link.jitter_ms = 100;
        c.submit_window_ms = 20_000;
        c.execution.failure = 0.3;
        c.partitions = vec![Partition::parse("0.5@5000-20000").unwrap()];
        let report = run_ok(c);
        assert_eq!(
            report.completed + report.failed + report.cancelled,
            30,
            "seed {seed}"
        );
    }
}

/// Bounded bids per job (issue 7): the requester draws a few times the
/// bids it needs, so the bids a job gets and the time to its first award
/// do not grow with the network, and at 1,000 nodes a job is awarded
/// within a second (simulated, 50-75 ms links) at the 99th percentile.
/// Executions do not fail, and the jobs' timeout leaves room for their
/// inputs (a 60 s one does not for 1 GiB at 50 Mbit/s).
#[test]
fn bids_per_job_are_bounded_and_awards_come_within_a_second() {
    let mut thousand = SimConfig::new(1_000, 200, 31);
    thousand.execution.failure = 0.0;
    thousand.mix.execution_timeout_s = 600;
    let mut four_thousand = thousand.clone();
    four_thousand.nodes = 4_000;
    let (k1, k4) = (run_ok(thousand), run_ok(four_thousand));
    let (b1, b4) = (k1.bids_per_job.mean, k4.bids_per_job.mean);
    assert!(b1 >= 3.0, "seed 31: {b1} bids per job at 1,000 nodes");
    assert!(
        b4 < 1.25 * b1,
        "seed 31: {b4} bids per job at 4,000 nodes vs {b1} at 1,000"
    );
    assert!(
        k1.award_latency_ms.p99 < 1_000,
        "seed 31: award p99 {} ms at 1,000 nodes",
        k1.award_latency_ms.p99
    );
    assert_eq!(k1.completed, 200, "seed 31: {k1}");
    assert_eq!(k4.completed, 200, "seed 31: {k4}");
}

/// R-SIM-1 (the report and its plot): `--scenario FILE` runs the file, a
/// flag given as well overrides it, and the JSON report holds the figures
/// the issue lists.
#[test]
fn cli_runs_a_scenario_file_with_overrides() {
    let bin = env!("CARGO_BIN_EXE_simnet");
    let dir = std::env::temp_dir().join(format!("simnet-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("s.toml");
    std::fs::write(
        &scenario,
        "nodes = 25\njobs = 30\nseed = 3\nchurn = 0.2\n\
         [[partitions]]\nshare = 0.5\nfrom_ms = 1000\nuntil_ms = 9000\n\
         [population]\nhttp_share = 0.5\n",
    )
    .unwrap();
    let json = dir.join("r.json");
    let svg = dir.join("p.svg");
    let out = Command::new(bin)
        .arg("run")
        .arg("--scenario")
        .arg(&scenario)
        .args(["--jobs", "20", "--input-share", "0.8", "--replicas", "2"])
        .arg("--report")
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(r["config"]["nodes"], 25, "from the file");
    assert_eq!(r["config"]["jobs"], 20, "the flag overrides the file");
    assert_eq!(r["config"]["seed"], 3);
    assert_eq!(r["config"]["population"]["http_share"], 0.5);
    assert_eq!(r["config"]["partitions"][0]["until_ms"], 9000);
    for field in ["p50", "p90", "p99"] {
        assert!(r["latency_ms"][field].is_u64(), "{field}");
        assert!(r["award_latency_ms"][field].is_u64(), "{field}");
    }
    for field in ["success_rate", "messages_per_node_per_job"] {
        assert!(r[field].is_f64(), "{field}");
    }
    for field in ["messages_per_node", "bytes_per_node", "bids_per_job"] {
        assert!(r[field]["mean"].is_f64(), "{field}");
    }
    assert!(r["failures_by_cause"].is_object());
    assert!(r["failures_by_last_attempt"].is_object());
    assert_eq!(r["config"]["mix"]["input_share"], 0.8);
    assert_eq!(r["config"]["mix"]["replicas"], 2);
    assert!(r["execution_failures_by_cause"].is_object());
    for field in ["p50", "p90", "p99"] {
        assert!(r["inputs"]["fetch_ms"][field].is_u64(), "{field}");
    }
    assert!(r["inputs"]["bytes_total"].as_u64().unwrap() > 0);
    assert!(r["inputs"]["bytes_per_node"]["max"].is_u64());
    for field in ["fetched", "read_locally", "unreachable"] {
        assert!(r["inputs"][field].is_u64(), "{field}");
    }
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.contains("latency CDF") && svg.contains("messages per node"));

    // A file with a mistake is refused, naming the key.
    std::fs::write(&scenario, "nodes = 25\n[mix]\nhttp_shar = 0.5\n").unwrap();
    let out = Command::new(bin)
        .arg("run")
        .arg("--scenario")
        .arg(&scenario)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("http_shar"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// simnet runs the node's own rules (issue 13): a job whose node crashes
/// mid-run is re-awarded once the crash is seen and the disconnect grace
/// (3 s) has passed, not after its execution timeout (10 min here).
/// Measured on this scenario: p90 latency 48.6 s with the grace, 643 s with
/// it skipped (`disconnect_grace_ms` set out of reach), so the test fails
/// if simnet stops running the rule. The slowest jobs still wait out the
/// timeout: a compute node that crashes while its requester is down too,
/// and restarts before the requester's restart grace ends, has lost the
/// execution without either side seeing a disconnection (nothing on the
/// wire says a node restarted).
#[test]
fn a_crashed_nodes_jobs_are_reawarded_after_the_disconnect_grace() {
    let seed = 5;
    let mut c = SimConfig::new(40, 150, seed);
    c.churn = 0.5;
    c.downtime_ms = (20_000, 60_000);
    c.mix.input_share = 0.0;
    c.mix.execution_timeout_s = 600;
    c.population.http_share = 0.0;
    c.population.full_share = 1.0;
    c.population.docker_only_share = 0.0;
    c.population.wasm_only_share = 0.0;
    c.execution.failure = 0.0;
    c.execution.run_ms = (5_000, 20_000);
    let report = run_ok(c);
    assert!(
        report.success_rate >= 0.85,
        "seed {seed}: success rate {:.1}%: {report}",
        report.success_rate * 100.0
    );
    assert!(
        report.latency_ms.p90 < 200_000,
        "seed {seed}: jobs waited for their execution timeout: {report}"
    );
}
