//! A tiny deterministic network for testing the requester and compute state
//! machines together, and the helpers their unit tests share.
//!
//! Every node runs a [`Node`], the object the daemon and simnet run, with
//! the same defaults ([`NodeConfig::new`]) but for shorter timeouts. Messages travel
//! through one event queue ordered by (time, sequence) with delays, losses
//! and silent nodes drawn from the test's random schedule; executions end
//! after a drawn time, completed or failed, or never (a node that hangs).
//! The invariants of the crate docs are checked on every output and at the
//! end.

use crate::failure::{Failure, FailureCause};
use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use crate::compute::{Compute, ComputeConfig, ComputeInput, ComputeOutput, ToRequester};
use crate::domain::DomainSet;
use crate::id::{DAG_CBOR, ExecutionId, JobId, NodeId, NodeKey, blake3_cid};
use crate::job::{ByteSize, JobSpec, NetworkMode};
use crate::messages::DirectMessage;
use crate::messages::Outcome;
use crate::node::{Node, NodeConfig, NodeInput, NodeOutput};
use crate::policy::{AcceptancePolicy, Allowlist, Decision};
use crate::requester::{
    JobState, Requester, RequesterConfig, RequesterEvent, RequesterInput, RequesterOutput,
    ToCompute,
};

/// The node id of test node `i`.
pub(crate) fn node(i: u8) -> NodeId {
    NodeKey::from_secret_bytes([i.wrapping_add(1); 32]).node_id()
}

/// A valid job: `engine` (`docker` or `wasm`), network `mode` with
/// `domains`, run `count` times.
pub(crate) fn spec(engine: &str, mode: NetworkMode, domains: &[&str], count: u32) -> JobSpec {
    let engine = match engine {
        "wasm" => "type: wasm\n      params:\n        entryModule:\n          source:\n            \
                   type: urlDownload\n            params:\n              url: https://m.example.com/m.wasm"
            .to_owned(),
        _ => "type: docker\n      params:\n        image: busybox".to_owned(),
    };
    let network = match mode {
        NetworkMode::None => String::new(),
        NetworkMode::Http => format!(
            "\n    network:\n      type: HTTP\n      domains: [{}]",
            domains.join(", ")
        ),
        NetworkMode::Full => "\n    network:\n      type: Full".to_owned(),
    };
    let text = format!(
        "type: batch\ncount: {count}\ntasks:\n  - name: main\n    engine:\n      {engine}{network}\n"
    );
    JobSpec::parse(&text).unwrap_or_else(|e| panic!("{text}\n{e}"))
}

/// A policy: accept up to `mode`, with an allowlist if `allow` is given.
pub(crate) fn policy(mode: NetworkMode, allow: Option<&[&str]>) -> AcceptancePolicy {
    AcceptancePolicy::new(
        mode,
        allow.map(|a| Allowlist::new(DomainSet::parse(a.iter().copied()).unwrap(), "test")),
    )
}

/// A result directory's CID.
pub(crate) fn result_cid(n: u8) -> cid::Cid {
    blake3_cid(DAG_CBOR, &[n])
}

// --- the simulated network ----------------------------------------------

/// What a test node knows and does, drawn by proptest.
#[derive(Debug, Clone)]
struct NodePlan {
    accept: NetworkMode,
    allowlist: Option<Vec<&'static str>>,
    engines: Vec<&'static str>,
    capacity: u32,
    /// The memory it offers (`--resources memory=`), in bytes.
    memory: Option<u64>,
    /// From this time on the node drops everything (it died or hangs).
    silent_from: Option<u64>,
    /// At this time its policy is replaced by `accept` `reload_to`.
    reload: Option<(u64, NetworkMode, Option<Vec<&'static str>>)>,
}

#[derive(Debug, Clone)]
struct JobPlan {
    at: u64,
    by: usize,
    engine: &'static str,
    mode: NetworkMode,
    domains: Vec<&'static str>,
    count: u32,
    /// The memory its task asks for, in bytes.
    memory: Option<u64>,
    cancel_at: Option<u64>,
}

#[derive(Debug, Clone)]
struct Plan {
    nodes: Vec<NodePlan>,
    jobs: Vec<JobPlan>,
    seed: u64,
    loss_percent: u8,
    max_delay: u64,
    /// Per execution draw: how long it runs, whether it fails, whether it
    /// hangs (never reports).
    run_ms: Vec<(u64, bool, bool)>,
    /// Every requester's queue timeout.
    queue_timeout_ms: u64,
}

#[derive(Debug, Clone)]
enum Delivery {
    /// An input for node `.0`: a message from the network, or an
    /// execution's end.
    Input(usize, Box<NodeInput>),
    Submit(usize),
    Cancel(usize, usize),
    Reload(usize),
    Wake,
}

struct Sim {
    plan: Plan,
    ids: Vec<NodeId>,
    nodes: Vec<Node>,
    queue: BTreeMap<(u64, u64), Delivery>,
    seq: u64,
    rng: u64,
    now: u64,
    run_draw: usize,
    job_ids: BTreeMap<usize, (usize, JobId)>,
    /// Everything that came out, in order: the determinism check.
    trace: Vec<String>,
    completed_events: BTreeMap<JobId, u32>,
    ended: BTreeSet<JobId>,
    /// Nodes whose policy was reloaded: the harness's own record, so the
    /// check does not trust the machine it checks.
    reloaded: BTreeSet<usize>,
    /// The memory each execution started holds (node, job, execution),
    /// until it reports or is stopped: the harness's own record.
    running_memory: BTreeMap<(usize, JobId, ExecutionId), u64>,
}

impl Sim {
    fn new(plan: Plan) -> Sim {
        let ids: Vec<NodeId> = (0..plan.nodes.len()).map(|i| node(i as u8)).collect();
        let mut nodes = Vec::new();
        for (i, n) in plan.nodes.iter().enumerate() {
            let mut config = NodeConfig::new(
                ids[i],
                policy(n.accept, n.allowlist.as_deref()),
                n.engines.iter().map(|e| e.to_string()),
                plan.seed ^ i as u64,
            );
            let rc = &mut config.requester;
            rc.queue_timeout_ms = plan.queue_timeout_ms;
            // Jobs queued behind busy nodes wait longer (issue 15).
            rc.backlog_timeout_ms = plan.queue_timeout_ms.saturating_mul(4);
            rc.execution_timeout_ms = 2_000;
            rc.execution_grace_ms = 500;
            rc.max_attempts = 4;
            rc.bid_ttl_ms = 800;
            config.compute.capacity = n.capacity;
            config.compute.resources.memory = n.memory.map(ByteSize);
            config.compute.bid_ttl_ms = 1_000;
            // The end-of-run checks read every job's record; node info
            // is not modelled (and would keep the run going forever).
            config.retention_ms = None;
            config.node_info_interval_ms = 0;
            nodes.push(Node::new(config));
        }
        let mut sim = Sim {
            rng: plan.seed | 1,
            plan,
            ids,
            nodes,
            queue: BTreeMap::new(),
            seq: 0,
            now: 0,
            run_draw: 0,
            job_ids: BTreeMap::new(),
            trace: Vec::new(),
            completed_events: BTreeMap::new(),
            ended: BTreeSet::new(),
            reloaded: BTreeSet::new(),
            running_memory: BTreeMap::new(),
        };
        for (j, job) in sim.plan.jobs.clone().iter().enumerate() {
            sim.push(job.at, Delivery::Submit(j));
            if let Some(at) = job.cancel_at {
                sim.push(job.at + at, Delivery::Cancel(job.by, j));
            }
        }
        for (i, n) in sim.plan.nodes.clone().iter().enumerate() {
            if let Some((at, ..)) = n.reload {
                sim.push(at, Delivery::Reload(i));
            }
        }
        sim
    }

    /// xorshift: the network's own randomness, from the plan's seed.
    fn draw(&mut self, below: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % below.max(1)
    }

    fn push(&mut self, at: u64, d: Delivery) {
        self.seq += 1;
        self.queue.insert((at, self.seq), d);
    }

    fn silent(&self, i: usize) -> bool {
        self.plan.nodes[i]
            .silent_from
            .is_some_and(|t| self.now >= t)
    }

    /// Sends over the network: maybe lost, else delayed.
    fn transmit(&mut self, from: usize, d: Delivery) {
        if self.silent(from) || self.draw(100) < u64::from(self.plan.loss_percent) {
            return;
        }
        let delay = 1 + self.draw(self.plan.max_delay);
        self.push(self.now + delay, d);
    }

    fn index(&self, id: &NodeId) -> usize {
        self.ids.iter().position(|n| n == id).expect("a test node")
    }

    fn run(mut self) -> Sim {
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 200_000, "the simulation does not settle");
            // Wake the machines whose deadlines come first.
            let next_timer = self.nodes.iter().filter_map(Node::poll_timeout).min();
            let next_event = self.queue.keys().next().map(|k| k.0);
            let now = match (next_timer, next_event) {
                (None, None) => break,
                (Some(t), Some(e)) if t < e => {
                    self.push(t, Delivery::Wake);
                    continue;
                }
                (Some(t), None) => {
                    self.push(t, Delivery::Wake);
                    continue;
                }
                (_, Some(e)) => e,
            };
            let (_, delivery) = self.queue.pop_first().expect("an event");
            self.now = now;
            self.deliver(delivery);
            for i in 0..self.ids.len() {
                self.nodes[i].handle_timeout(self.now);
                self.drain(i);
            }
        }
        self
    }

    fn deliver(&mut self, d: Delivery) {
        match d {
            Delivery::Wake => {}
            Delivery::Submit(j) => {
                let job = self.plan.jobs[j].clone();
                let mut spec = spec(job.engine, job.mode, &job.domains, job.count);
                spec.tasks[0].resources.memory = job.memory.map(ByteSize);
                let id = self.nodes[job.by]
                    .submit(self.now, spec, self.now, vec![])
                    .expect("a valid job");
                self.job_ids.insert(j, (job.by, id));
                self.drain(job.by);
            }
            Delivery::Cancel(i, j) => {
                if let Some((_, id)) = self.job_ids.get(&j).copied() {
                    let _ = self.nodes[i].cancel(self.now, id, "test");
                    self.drain(i);
                }
            }
            Delivery::Reload(i) => {
                let (_, mode, allow) = self.plan.nodes[i].reload.clone().expect("a reload");
                self.nodes[i].set_policy(self.now, policy(mode, allow.as_deref()));
                self.reloaded.insert(i);
            }
            Delivery::Input(i, input) => {
                if !self.silent(i) {
                    if let NodeInput::ExecutionFinished {
                        job_id,
                        execution_id,
                        ..
                    } = &*input
                    {
                        self.running_memory.remove(&(i, *job_id, *execution_id));
                    }
                    self.nodes[i].handle(self.now, *input);
                    self.drain(i);
                }
            }
        }
    }

    fn drain(&mut self, i: usize) {
        let from = self.ids[i];
        while let Some(out) = self.nodes[i].poll_output() {
            self.trace.push(format!("{} n{i} {out:?}", self.now));
            self.check_output(i, &out);
            match out {
                NodeOutput::Publish(announce) => {
                    // Its own compute side has it already.
                    for to in (0..self.ids.len()).filter(|to| *to != i) {
                        let input = NodeInput::announce(announce.clone());
                        self.transmit(i, Delivery::Input(to, Box::new(input)));
                    }
                }
                NodeOutput::ToCompute { to, msg } => {
                    let to = self.index(&to);
                    let message = match msg {
                        ToCompute::Award(award) => DirectMessage::Award(award),
                        ToCompute::Cancel(cancel) => DirectMessage::Cancel(cancel),
                    };
                    let input = NodeInput::Direct { from, message };
                    self.transmit(i, Delivery::Input(to, Box::new(input)));
                }
                NodeOutput::ToRequester { to, msg, .. } => {
                    let to = self.index(&to);
                    let message = match msg {
                        ToRequester::Bid(bid) => DirectMessage::Bid(bid),
                        ToRequester::Refuse(refuse) => DirectMessage::Refuse(refuse),
                        ToRequester::Decline(decline) => DirectMessage::Decline(decline),
                        ToRequester::Result(result) => DirectMessage::Result(result),
                        ToRequester::Progress(progress) => DirectMessage::Progress(progress),
                    };
                    let input = NodeInput::Direct { from, message };
                    self.transmit(i, Delivery::Input(to, Box::new(input)));
                }
                NodeOutput::Start {
                    job_id,
                    execution_id,
                    spec,
                    ..
                } => {
                    let memory = spec
                        .task()
                        .resources
                        .memory
                        .map_or(crate::resources::DEFAULT_TASK_MEMORY, |m| m.0);
                    self.running_memory
                        .insert((i, job_id, execution_id), memory);
                    self.check_start(i, &spec);
                    self.schedule_run(i, job_id, execution_id);
                }
                NodeOutput::Stop {
                    job_id,
                    execution_id,
                } => {
                    self.running_memory.remove(&(i, job_id, execution_id));
                }
                NodeOutput::JobEvent { .. }
                | NodeOutput::ResultAccepted { .. }
                | NodeOutput::ComputeEvent { .. }
                | NodeOutput::NodeInfoDue => {}
            }
        }
    }

    fn schedule_run(&mut self, i: usize, job_id: JobId, execution_id: ExecutionId) {
        let draws = &self.plan.run_ms;
        let (ms, fails, hangs) = draws[self.run_draw % draws.len()];
        self.run_draw += 1;
        if hangs {
            return;
        }
        let outcome = if fails {
            Outcome::Failed {
                failure: Failure::new(FailureCause::EngineUnavailable, "exit: boom"),
            }
        } else {
            Outcome::Completed {
                result_cid: result_cid(i as u8),
                exit_code: 0,
            }
        };
        self.push(
            self.now + ms,
            Delivery::Input(
                i,
                Box::new(NodeInput::ExecutionFinished {
                    job_id,
                    execution_id,
                    outcome,
                }),
            ),
        );
    }

    /// Invariant 1: a Start only where the policy in force allows the job.
    fn check_start(&self, i: usize, spec: &JobSpec) {
        let n = &self.plan.nodes[i];
        let (mode, allow) = if self.reloaded.contains(&i) {
            let (_, mode, allow) = n.reload.clone().expect("a reload");
            (mode, allow)
        } else {
            (n.accept, n.allowlist.clone())
        };
        let task = spec.task();
        assert_eq!(
            policy(mode, allow.as_deref()).decide(task.network.r#type, &task.network.domains),
            Decision::Bid,
            "node {i} started a job its policy forbids at {}",
            self.now
        );
        assert!(n.engines.contains(&task.engine.kind()), "no such engine");
        assert!(
            self.nodes[i].compute().running() <= n.capacity,
            "over capacity"
        );
        // R-PLC-1: what runs never holds more memory than the node offers.
        if let Some(offered) = n.memory {
            let held: u64 = self
                .running_memory
                .iter()
                .filter(|((node, ..), _)| *node == i)
                .map(|(_, m)| m)
                .sum();
            assert!(
                held <= offered,
                "node {i} runs tasks holding {held} bytes of memory, offers {offered}, at {}",
                self.now
            );
        }
    }

    /// Invariant 2: at most `Count` completions, one JobCompleted, nothing
    /// after the end.
    fn check_output(&mut self, _i: usize, out: &NodeOutput) {
        let NodeOutput::JobEvent { job_id, event } = out else {
            return;
        };
        assert!(
            !self.ended.contains(job_id),
            "event {event:?} after job {job_id} ended"
        );
        match event {
            RequesterEvent::Completed { .. } => {
                *self.completed_events.entry(*job_id).or_default() += 1;
            }
            RequesterEvent::JobCompleted
            | RequesterEvent::JobCancelled
            | RequesterEvent::JobFailed { .. } => {
                self.ended.insert(*job_id);
            }
            _ => {}
        }
        if let RequesterEvent::JobFailed { failure } = event {
            assert!(
                !failure.detail.trim().is_empty(),
                "a failure without a reason"
            );
            assert_ne!(failure.cause, FailureCause::Other, "an untyped failure");
        }
    }

    /// Invariants 2 and 3, at the end.
    fn check_end(&self) {
        for (j, (by, id)) in &self.job_ids {
            let record = self.nodes[*by].job(id).expect("the job is kept");
            let count = self.plan.jobs[*j].count;
            let nodes: BTreeSet<NodeId> = record.executions.iter().map(|e| e.node).collect();
            assert_eq!(nodes.len(), record.executions.len(), "a node awarded twice");
            let completed = self.completed_events.get(id).copied().unwrap_or(0);
            assert!(completed <= count, "{completed} completions of {count}");
            match &record.state {
                JobState::Completed => assert_eq!(completed, count),
                JobState::Failed { failure } => assert!(!failure.detail.is_empty()),
                JobState::Cancelled => {}
                other => panic!("job {id} did not end: {other:?}"),
            }
            assert!(self.ended.contains(id));
        }
    }
}

fn arb_mode() -> impl Strategy<Value = NetworkMode> {
    prop_oneof![
        Just(NetworkMode::None),
        Just(NetworkMode::Http),
        Just(NetworkMode::Full)
    ]
}

const DOMAINS: [&str; 3] = ["api.foo.com", "x.example.com", "example.org"];

fn arb_domains() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::sample::subsequence(DOMAINS.to_vec(), 1..=2)
}

fn arb_allowlist() -> impl Strategy<Value = Option<Vec<&'static str>>> {
    prop_oneof![
        Just(None),
        proptest::sample::subsequence(vec![".foo.com", ".example.com", "example.org"], 0..=2)
            .prop_map(Some),
    ]
}

fn arb_node() -> impl Strategy<Value = NodePlan> {
    (
        arb_mode(),
        arb_allowlist(),
        prop_oneof![
            Just(vec!["docker"]),
            Just(vec!["wasm"]),
            Just(vec!["docker", "wasm"])
        ],
        1u32..3,
        proptest::option::of(1u64..=4),
        proptest::option::weighted(0.2, 0u64..4_000),
        proptest::option::weighted(0.3, (0u64..4_000, arb_mode(), arb_allowlist())),
    )
        .prop_map(
            |(accept, allowlist, engines, capacity, memory, silent_from, reload)| NodePlan {
                accept,
                allowlist,
                engines,
                capacity,
                memory: memory.map(|gi| gi << 30),
                silent_from,
                reload,
            },
        )
}

fn arb_job(nodes: usize) -> impl Strategy<Value = JobPlan> {
    (
        0u64..2_000,
        0..nodes,
        prop_oneof![Just("docker"), Just("wasm")],
        arb_mode(),
        arb_domains(),
        1u32..=3,
        proptest::option::of(1u64..=3),
        proptest::option::weighted(0.1, 0u64..3_000),
    )
        .prop_map(
            |(at, by, engine, mode, domains, count, memory, cancel_at)| JobPlan {
                at,
                by,
                engine,
                mode,
                domains: if mode == NetworkMode::Http {
                    domains
                } else {
                    vec![]
                },
                count,
                memory: memory.map(|gi| gi << 30),
                cancel_at,
            },
        )
}

fn arb_plan() -> impl Strategy<Value = Plan> {
    (2usize..7).prop_flat_map(|n| {
        (
            proptest::collection::vec(arb_node(), n),
            proptest::collection::vec(arb_job(n), 1..6),
            any::<u64>(),
            0u8..15,
            1u64..200,
            proptest::collection::vec(
                (
                    1u64..1_500,
                    proptest::bool::weighted(0.2),
                    proptest::bool::weighted(0.1),
                ),
                1..8,
            ),
        )
            .prop_map(
                |(nodes, jobs, seed, loss_percent, max_delay, run_ms)| Plan {
                    nodes,
                    jobs,
                    seed,
                    loss_percent,
                    max_delay,
                    run_ms,
                    queue_timeout_ms: 3_000,
                },
            )
    })
}

fn arb_healthy_plan() -> impl Strategy<Value = Plan> {
    (3usize..7).prop_flat_map(|n| {
        // 4 GiB each: every job fits alone on every node (they ask at
        // most 3 GiB), some only once others end.
        let node = (1u32..4).prop_map(|capacity| NodePlan {
            accept: NetworkMode::Full,
            allowlist: None,
            engines: vec!["docker", "wasm"],
            capacity,
            memory: Some(4 << 30),
            silent_from: None,
            reload: None,
        });
        let job = arb_job(n).prop_map(move |mut j| {
            j.count = j.count.min(3);
            j.cancel_at = None;
            j
        });
        (
            proptest::collection::vec(node, n),
            proptest::collection::vec(job, 1..6),
            any::<u64>(),
            1u64..50,
            proptest::collection::vec((1u64..1_000).prop_map(|ms| (ms, false, false)), 1..4),
        )
            .prop_map(|(nodes, jobs, seed, max_delay, run_ms)| Plan {
                nodes,
                jobs,
                seed,
                loss_percent: 0,
                max_delay,
                run_ms,
                queue_timeout_ms: 60_000,
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Invariants 1-3 under random schedules, losses, silences and reloads.
    #[test]
    fn invariants_hold_on_random_networks(plan in arb_plan()) {
        Sim::new(plan).run().check_end();
    }

    /// Liveness: where nodes answer, nothing is lost and every node takes
    /// every job, every job completes, whatever the schedule.
    #[test]
    fn a_healthy_network_completes_every_job_on_any_schedule(plan in arb_healthy_plan()) {
        let sim = Sim::new(plan).run();
        sim.check_end();
        for (by, id) in sim.job_ids.values() {
            let state = &sim.nodes[*by].job(id).unwrap().state;
            prop_assert_eq!(state, &JobState::Completed);
        }
    }

    /// Invariant 4: the same seed and inputs give the same outputs.
    #[test]
    fn same_seed_same_trace(plan in arb_plan()) {
        let a = Sim::new(plan.clone()).run().trace;
        let b = Sim::new(plan).run().trace;
        prop_assert_eq!(a, b);
    }
}

/// A network where every node takes `none` jobs: they all complete.
#[test]
fn a_healthy_network_completes_every_job() {
    let nodes = (0..5)
        .map(|_| NodePlan {
            accept: NetworkMode::None,
            allowlist: None,
            engines: vec!["docker", "wasm"],
            capacity: 2,
            memory: None,
            silent_from: None,
            reload: None,
        })
        .collect();
    let jobs = (0..6)
        .map(|j| JobPlan {
            at: j * 100,
            by: j as usize % 5,
            engine: "docker",
            mode: NetworkMode::None,
            domains: vec![],
            count: 1 + (j as u32 % 2),
            memory: None,
            cancel_at: None,
        })
        .collect();
    let sim = Sim::new(Plan {
        nodes,
        jobs,
        seed: 7,
        loss_percent: 0,
        max_delay: 20,
        run_ms: vec![(200, false, false), (500, false, false)],
        queue_timeout_ms: 3_000,
    })
    .run();
    sim.check_end();
    for (by, id) in sim.job_ids.values() {
        assert_eq!(sim.nodes[*by].job(id).unwrap().state, JobState::Completed);
    }
}

/// A network of one node and no jobs, for checking the checks.
fn lone_node(node: NodePlan) -> Sim {
    Sim::new(Plan {
        nodes: vec![node],
        jobs: vec![],
        seed: 1,
        loss_percent: 0,
        max_delay: 1,
        run_ms: vec![(1, false, false)],
        queue_timeout_ms: 1_000,
    })
}

/// The policy check is not vacuous: a start the policy forbids fails it.
#[test]
#[should_panic(expected = "started a job its policy forbids")]
fn the_policy_check_can_fail() {
    let sim = lone_node(NodePlan {
        accept: NetworkMode::Http,
        allowlist: Some(vec![".example.com"]),
        engines: vec!["docker"],
        capacity: 1,
        memory: None,
        silent_from: None,
        reload: None,
    });
    sim.check_start(0, &spec("docker", NetworkMode::Http, &["api.foo.com"], 1));
}

/// The memory check is not vacuous: starts holding more than the offer
/// fail it.
#[test]
#[should_panic(expected = "holding")]
fn the_memory_check_can_fail() {
    let mut sim = lone_node(NodePlan {
        accept: NetworkMode::None,
        allowlist: None,
        engines: vec!["docker"],
        capacity: 4,
        memory: Some(1 << 30),
        silent_from: None,
        reload: None,
    });
    let job = spec("docker", NetworkMode::None, &[], 1);
    let id = JobId::compute(&job, &node(0), 0).unwrap();
    for e in 0..3 {
        sim.running_memory
            .insert((0, id, ExecutionId(e)), 512 << 20);
    }
    sim.check_start(0, &job);
}

/// Thousands of nodes answer one requester: the requester keeps its best
/// bids only (bounded memory), awards the idlest, and every answer costs a
/// few map operations.
#[test]
fn a_crowd_of_bidders_stays_bounded() {
    let me = node(0);
    let mut requester = Requester::new(RequesterConfig::new(me, 3));
    let crowd: Vec<Compute> = (1..=2_000u32)
        .map(|i| {
            let id = NodeKey::from_secret_bytes({
                let mut secret = [0; 32];
                secret[..4].copy_from_slice(&i.to_le_bytes());
                secret[31] = 1;
                secret
            })
            .node_id();
            let accept = if i % 3 == 0 {
                NetworkMode::None
            } else {
                NetworkMode::Http
            };
            Compute::new(ComputeConfig::new(id, policy(accept, None), ["docker"], 0))
        })
        .collect();
    let mut crowd = crowd;
    let job = requester
        .submit(
            0,
            spec("docker", NetworkMode::Http, &["api.foo.com"], 2),
            0,
            vec![],
        )
        .unwrap();
    let Some(RequesterOutput::Publish(announce)) = requester.poll_output() else {
        panic!("no announcement");
    };
    for (i, compute) in crowd.iter_mut().enumerate() {
        // Node i answers at i/10 ms, claiming i % 7 running jobs.
        let now = i as u64 / 10;
        compute.handle(now, ComputeInput::announce(announce.clone()));
        while let Some(out) = compute.poll_output() {
            let from = compute.config().node;
            if let ComputeOutput::Send { msg, .. } = out {
                let input = match msg {
                    ToRequester::Bid(mut bid) => {
                        bid.running_jobs = (i % 7) as u32;
                        RequesterInput::Bid { from, bid }
                    }
                    ToRequester::Refuse(refuse) => RequesterInput::Refuse { from, refuse },
                    other => panic!("{other:?}"),
                };
                requester.handle(now, input);
            }
        }
    }
    requester.handle_timeout(300);
    let record = requester.job(&job).unwrap();
    assert_eq!(record.bids_received, 1_334);
    assert!(record.bids.len() <= requester.config().max_bids_per_job);
    assert!(record.refusals.len() <= requester.config().max_refusals_per_job);
    let refused: u32 = record.refusals.len() as u32 + record.more_refusals.values().sum::<u32>();
    assert_eq!(refused, 666);
    // The two awarded claimed no running job and answered first (at 0 ms,
    // in an order the seed drew).
    let awarded: BTreeSet<NodeId> = record.executions.iter().map(|e| e.node).collect();
    let expected: BTreeSet<NodeId> = [0usize, 7]
        .iter()
        .map(|i| crowd[*i].config().node)
        .collect();
    assert_eq!(awarded, expected);
}
