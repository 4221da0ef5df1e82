//! The discrete-event simulator.
//!
//! One queue of events ordered by (simulated time in ms, order pushed),
//! one seeded RNG ([`SimRng`]) for every random choice, and time that jumps
//! to the next event: an idle node costs nothing. Each node runs one
//! [`Node`], the object a real node runs, with the node's defaults, driven
//! as the real node drives it: inputs go to `handle`, `handle_timeout` runs
//! at `poll_timeout`, and `poll_output` is drained after every input. What
//! the daemon's driver learns from its connections, the simulation tells
//! it too: a crashed node's peers that awarded it work see it disconnect
//! (and reconnect when it restarts), so the disconnect grace re-awards its
//! jobs as on a real network.

mod fetch;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use protocol::compute::ToRequester;
use protocol::failure::{Failure, FailureCause};
use protocol::id::{ExecutionId, JobId, NodeId, RAW, blake3_cid};
use protocol::job::{JobSpec, NetworkMode};
use protocol::link::LinkRates;
use protocol::messages::{Announce, DirectMessage, Outcome};
use protocol::node::{Node, NodeConfig, NodeInput, NodeOutput, Outgoing};
use protocol::policy::{AcceptancePolicy, RefuseReason};
use protocol::requester::{ExecutionState, JobRecord, JobState, RequesterEvent, ToCompute};

use crate::blobs::{self, InputStats};
use crate::check::{self, Violation};
use crate::config::SimConfig;
use crate::net::{Network, Sizes, Traffic};
use crate::population::{self, JobPlan, NodePlan};
use crate::report::{JobOutcome, Report};
use crate::rng::SimRng;

/// Something that happens at a simulated time.
#[derive(Debug)]
enum Event {
    /// A user submits job `j` of the plan.
    Submit(u32),
    /// A gossiped announcement reaches a node's compute side.
    Announce { to: u32, announce: Arc<Announce> },
    /// A requester's direct message reaches a compute side (boxed, like
    /// every large payload, to keep queue entries small).
    ToCompute {
        to: u32,
        from: u32,
        msg: Box<ToCompute>,
    },
    /// A compute side's direct message reaches a requester.
    ToRequester {
        to: u32,
        from: u32,
        msg: Box<ToRequester>,
    },
    /// An execution ends (if the node has not crashed since it started).
    Finished(Box<Finished>),
    /// An execution looks for its next input's provider (again).
    Fetch(Box<fetch::Fetch>),
    /// A node's timers are due.
    Wake(u32),
    /// A node crashes: it drops everything until it restarts.
    Crash(u32),
    /// A crashed node starts again from what it persisted.
    Restart(u32),
    /// Node `to` sees its connection to `peer` close (or come back).
    Link { to: u32, peer: u32, up: bool },
    /// Node `to` learns that its message could not reach `peer`.
    Undelivered {
        to: u32,
        peer: u32,
        msg: Box<Outgoing>,
    },
}

/// How long a send to a node across a partition takes to fail: the
/// node's direct-message timeout.
const SEND_TIMEOUT_MS: u64 = 10_000;

/// How soon a crashed node's peers see its connections close: its
/// operating system resets them at once; the message takes a network hop.
const CRASH_NOTICE_MS: u64 = 50;

/// An execution's end, as the executor reports it.
#[derive(Debug)]
struct Finished {
    node: u32,
    incarnation: u32,
    job_id: JobId,
    execution_id: ExecutionId,
    outcome: Outcome,
}

/// BLAKE3 over the delivered events, buffered so that small writes stay
/// cheap.
struct Trace {
    hasher: blake3::Hasher,
    buf: Vec<u8>,
}

impl Trace {
    fn new() -> Trace {
        Trace {
            hasher: blake3::Hasher::new(),
            buf: Vec::with_capacity(1 << 16),
        }
    }

    fn digest(mut self) -> String {
        self.hasher.update(&self.buf);
        self.hasher.finalize().to_hex().to_string()
    }
}

impl Hasher for Trace {
    fn write(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= 1 << 16 {
            self.hasher.update(&self.buf);
            self.buf.clear();
        }
    }

    fn finish(&self) -> u64 {
        0
    }
}

/// Hashes node and job ids for lookups. Both are uniformly random bytes
/// (public keys, BLAKE3 digests), so folding them is enough; maps keyed by
/// them are never iterated, so their order cannot reach the run.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// What the simulator knows of one job, beside its requester.
#[derive(Debug, Clone, Default)]
struct JobTrack {
    /// The node it was submitted to, and its id, once submitted.
    submitted: Option<(u32, JobId)>,
    submitted_at_ms: u64,
    completions: u32,
    first_award_ms: Option<u64>,
    ended_at_ms: Option<u64>,
    outcome: Option<JobOutcome>,
}

/// A simulated network: build with [`Sim::new`], run with [`Sim::run`].
pub struct Sim {
    config: SimConfig,
    rng: SimRng,
    net: Network,
    nodes: Vec<NodePlan>,
    ids: Vec<NodeId>,
    index: IdMap<NodeId, u32>,
    cores: Vec<Node>,
    up: Vec<bool>,
    incarnation: Vec<u32>,
    wake_at: Vec<Option<u64>>,
    /// What each crashed node persisted: its jobs' records.
    persisted: Vec<Vec<JobRecord>>,
    /// Every job's record as its requester last stored it (the daemon's
    /// database): the core forgets ended jobs after a while.
    records: IdMap<JobId, JobRecord>,
    /// The requesters that awarded work to each node, so that they see it
    /// go when it crashes...
    awarded_by: Vec<Vec<u32>>,
    /// ... and come back when it restarts.
    saw_crash: Vec<Vec<u32>>,
    faulty: Vec<bool>,
    /// Nodes whose fetches never find a provider (a test knob).
    faulty_fetch: Vec<bool>,
    /// The event queue: events by time, each time's in the order they were
    /// pushed. Many events share a millisecond (an announcement's
    /// receivers), so this orders by (time, sequence) at the cost of one
    /// map operation per distinct time.
    queue: BTreeMap<u64, VecDeque<Event>>,
    now: u64,
    events: u64,
    jobs: Vec<JobPlan>,
    tracks: Vec<JobTrack>,
    job_index: IdMap<JobId, u32>,
    traffic: Vec<Traffic>,
    gossip_receptions: u64,
    inputs: InputStats,
    /// Executions that ended in failure, by why (the executor's view).
    execution_failures: BTreeMap<FailureCause, u64>,
    trace: Trace,
    /// (node, time, count) of the latest wakes, to catch a timer that does
    /// not advance.
    last_wake: (u32, u64, u32),
}

impl Sim {
    /// Draws the population, the jobs and the faults from `config.seed`.
    pub fn new(config: SimConfig) -> Sim {
        let mut rng = SimRng::new(config.seed);
        let nodes = population::draw_nodes(&config, &mut rng);
        let jobs = population::draw_jobs(&config, &nodes, &mut rng);
        let ids: Vec<NodeId> = nodes.iter().map(|n| n.id).collect();
        let index = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i as u32))
            .collect();
        let n = nodes.len();
        let faulty = flags(n, &config.faulty_nodes);
        let faulty_fetch = flags(n, &config.faulty_fetch_nodes);
        let net = Network::new(n, &config.link, &config.gossip, &config.partitions);
        let mut sim = Sim {
            cores: Vec::with_capacity(n),
            up: vec![true; n],
            incarnation: vec![0; n],
            wake_at: vec![None; n],
            persisted: vec![Vec::new(); n],
            records: IdMap::default(),
            awarded_by: vec![Vec::new(); n],
            saw_crash: vec![Vec::new(); n],
            faulty,
            faulty_fetch,
            queue: BTreeMap::new(),
            now: 0,
            events: 0,
            tracks: vec![JobTrack::default(); jobs.len()],
            job_index: IdMap::default(),
            traffic: vec![Traffic::default(); n],
            gossip_receptions: 0,
            inputs: InputStats::new(n),
            execution_failures: BTreeMap::new(),
            trace: Trace::new(),
            last_wake: (u32::MAX, 0, 0),
            config,
            rng,
            net,
            nodes,
            ids,
            index,
            jobs,
        };
        for i in 0..n {
            let core = sim.new_core(i);
            sim.cores.push(core);
        }
        for j in 0..sim.jobs.len() {
            let at = sim.jobs[j].at_ms;
            sim.push(at, Event::Submit(j as u32));
        }
        let window = sim.config.submit_window_ms;
        let (lo, hi) = sim.config.downtime_ms;
        for i in 0..n {
            if sim.rng.chance(sim.config.churn) {
                let at = sim.rng.range(0, window);
                let down = sim.rng.range(lo, hi);
                sim.push(at, Event::Crash(i as u32));
                sim.push(at + down.max(1), Event::Restart(i as u32));
            }
        }
        sim
    }

    /// Node `i`'s core with the node's own defaults.
    fn new_core(&mut self, i: usize) -> Node {
        let plan = &self.nodes[i];
        let policy = if self.faulty[i] {
            AcceptancePolicy::new(NetworkMode::Full, None)
        } else {
            plan.policy.clone()
        };
        let mut config = NodeConfig::new(
            plan.id,
            policy,
            plan.engines.iter().cloned(),
            self.rng.u64(),
        );
        config.compute.capacity = plan.capacity;
        // Its operator states its link (`--link`); what a real node then
        // measures never exceeds it here (a transfer goes at the slower
        // end's rate), so the estimate stays what was stated.
        let mbit = |mbps: u64| Some(mbps.saturating_mul(1_000_000));
        config.compute.link =
            LinkRates::declared(mbit(plan.bandwidth.down_mbps), mbit(plan.bandwidth.up_mbps));
        config.compute.execution_timeout_ms = self.execution_timeout_ms();
        // Node info gossip is not modelled; its one use here, the
        // network's size for the requester's draw, is given below.
        config.node_info_interval_ms = 0;
        let mut core = Node::new(config);
        // A real node estimates this from the peers it has heard of; the
        // simulation knows it.
        core.handle(self.now, NodeInput::NetworkSize(self.nodes.len() as u64));
        core
    }

    /// The nodes as drawn.
    pub fn nodes(&self) -> &[NodePlan] {
        &self.nodes
    }

    fn push(&mut self, at: u64, event: Event) {
        self.queue.entry(at).or_default().push_back(event);
    }

    fn pop(&mut self) -> Option<(u64, Event)> {
        let mut first = self.queue.first_entry()?;
        let at = *first.key();
        let event = first.get_mut().pop_front();
        if first.get().is_empty() {
            first.remove();
        }
        event.map(|e| (at, e))
    }

    fn violation(&self, what: String) -> Violation {
        Violation {
            seed: self.config.seed,
            event_index: self.events,
            time_ms: self.now,
            what,
        }
    }

    /// Runs until nothing is left to happen, checking the safety invariants
    /// after every event and liveness at the end.
    pub fn run(mut self) -> Result<Report, Violation> {
        // Every fault is over by then, and every job's deadlines are
        // minutes, not hours: a run still busy an hour later does not settle.
        let faults_end = self
            .config
            .partitions
            .iter()
            .map(|p| p.until_ms)
            .chain([self.config.submit_window_ms + self.config.downtime_ms.1])
            .max()
            .unwrap_or(0);
        let deadline = faults_end + 3_600_000;
        while let Some((at, event)) = self.pop() {
            if at > deadline {
                return Err(self.violation(format!(
                    "the run did not settle: events still pending an hour after the last fault ({} ms)",
                    faults_end
                )));
            }
            self.now = at;
            self.deliver(event)?;
            self.events += 1;
            if self.events >= self.config.max_events {
                return Err(self.violation(format!(
                    "the run did not settle within {} events",
                    self.config.max_events
                )));
            }
        }
        self.check_end()?;
        Ok(self.report())
    }

    fn deliver(&mut self, event: Event) -> Result<(), Violation> {
        self.now.hash(&mut self.trace);
        match event {
            Event::Submit(j) => {
                0u8.hash(&mut self.trace);
                j.hash(&mut self.trace);
                self.submit(j as usize)
            }
            Event::Announce { to, announce } => {
                1u8.hash(&mut self.trace);
                to.hash(&mut self.trace);
                announce.job_id.hash(&mut self.trace);
                if !self.up[to as usize] {
                    return Ok(());
                }
                let announce = Announce::clone(&announce);
                let held_bytes = self.held_bytes(&announce.job_id, to as usize);
                let input = NodeInput::Announce {
                    announce,
                    held_bytes,
                };
                self.cores[to as usize].handle(self.now, input);
                self.drain(to as usize)
            }
            Event::ToCompute { to, from, msg } => {
                2u8.hash(&mut self.trace);
                (to, from).hash(&mut self.trace);
                if !self.up[to as usize] {
                    return Ok(());
                }
                let from = self.ids[from as usize];
                let message = match *msg {
                    ToCompute::Award(award) => {
                        award.job_id.hash(&mut self.trace);
                        award.execution_id.0.hash(&mut self.trace);
                        DirectMessage::Award(award)
                    }
                    ToCompute::Cancel(cancel) => {
                        cancel.job_id.hash(&mut self.trace);
                        DirectMessage::Cancel(cancel)
                    }
                };
                self.cores[to as usize].handle(self.now, NodeInput::Direct { from, message });
                self.drain(to as usize)
            }
            Event::ToRequester { to, from, msg } => {
                3u8.hash(&mut self.trace);
                (to, from).hash(&mut self.trace);
                if !self.up[to as usize] {
                    return Ok(());
                }
                let from = self.ids[from as usize];
                let message = match *msg {
                    ToRequester::Bid(bid) => {
                        (0u8, bid.job_id).hash(&mut self.trace);
                        DirectMessage::Bid(bid)
                    }
                    ToRequester::Refuse(refuse) => {
                        (1u8, refuse.job_id).hash(&mut self.trace);
                        DirectMessage::Refuse(refuse)
                    }
                    ToRequester::Decline(decline) => {
                        (2u8, decline.job_id).hash(&mut self.trace);
                        DirectMessage::Decline(decline)
                    }
                    ToRequester::Result(result) => {
                        (3u8, result.job_id).hash(&mut self.trace);
                        DirectMessage::Result(result)
                    }
                    ToRequester::Progress(progress) => {
                        (4u8, progress.job_id).hash(&mut self.trace);
                        DirectMessage::Progress(progress)
                    }
                };
                self.cores[to as usize].handle(self.now, NodeInput::Direct { from, message });
                self.drain(to as usize)
            }
            Event::Finished(finished) => {
                let Finished {
                    node,
                    incarnation,
                    job_id,
                    execution_id,
                    outcome,
                } = *finished;
                4u8.hash(&mut self.trace);
                (node, job_id, execution_id.0).hash(&mut self.trace);
                let i = node as usize;
                if !self.up[i] || self.incarnation[i] != incarnation {
                    return Ok(());
                }
                if let Outcome::Failed { failure } = &outcome {
                    // Counted once reported: executions lost in a crash are not.
                    *self.execution_failures.entry(failure.cause).or_default() += 1;
                }
                self.cores[i].handle(
                    self.now,
                    NodeInput::ExecutionFinished {
                        job_id,
                        execution_id,
                        outcome,
                    },
                );
                self.drain(i)
            }
            Event::Fetch(fetch) => {
                8u8.hash(&mut self.trace);
                fetch.hash_into(&mut self.trace);
                self.on_fetch(*fetch)
            }
            Event::Wake(node) => {
                let i = node as usize;
                if self.wake_at[i] != Some(self.now) {
                    // Superseded by an earlier wake.
                    return Ok(());
                }
                5u8.hash(&mut self.trace);
                node.hash(&mut self.trace);
                self.wake_at[i] = None;
                if !self.up[i] {
                    return Ok(());
                }
                if self.last_wake.0 == node && self.last_wake.1 == self.now {
                    self.last_wake.2 += 1;
                    if self.last_wake.2 > 1_000 {
                        return Err(self.violation(format!(
                            "node {i}'s timers do not advance past {} ms",
                            self.now
                        )));
                    }
                } else {
                    self.last_wake = (node, self.now, 0);
                }
                self.cores[i].handle_timeout(self.now);
                self.drain(i)
            }
            Event::Crash(node) => {
                6u8.hash(&mut self.trace);
                node.hash(&mut self.trace);
                let i = node as usize;
                self.up[i] = false;
                self.incarnation[i] += 1;
                self.wake_at[i] = None;
                // The driver stores a job's record after every event, and
                // every output was drained: what it persisted is what it has.
                self.persisted[i] = self.cores[i].requester().jobs().cloned().collect();
                // Those that awarded it work see its connections close.
                let at = self.now + CRASH_NOTICE_MS;
                let peers = std::mem::take(&mut self.awarded_by[i]);
                for &to in &peers {
                    self.push(
                        at,
                        Event::Link {
                            to,
                            peer: node,
                            up: false,
                        },
                    );
                }
                self.saw_crash[i] = peers;
                Ok(())
            }
            Event::Restart(node) => {
                7u8.hash(&mut self.trace);
                node.hash(&mut self.trace);
                let i = node as usize;
                self.up[i] = true;
                self.cores[i] = self.new_core(i);
                let at = self.now + CRASH_NOTICE_MS;
                for record in std::mem::take(&mut self.persisted[i]) {
                    // It connects again to the nodes it awarded work to
                    // that are up and within reach.
                    for e in &record.executions {
                        let j = self.index[&e.node];
                        if j as usize != i
                            && self.up[j as usize]
                            && !self.net.separated(i, j as usize, self.now)
                        {
                            self.push(
                                at,
                                Event::Link {
                                    to: node,
                                    peer: j,
                                    up: true,
                                },
                            );
                        }
                    }
                    self.cores[i].restore(self.now, record);
                }
                let at = self.now + CRASH_NOTICE_MS;
                for to in std::mem::take(&mut self.saw_crash[i]) {
                    self.push(
                        at,
                        Event::Link {
                            to,
                            peer: node,
                            up: true,
                        },
                    );
                }
                self.drain(i)
            }
            Event::Undelivered { to, peer, msg } => {
                10u8.hash(&mut self.trace);
                (to, peer).hash(&mut self.trace);
                let i = to as usize;
                if !self.up[i] {
                    return Ok(());
                }
                let input = NodeInput::Undelivered {
                    to: self.ids[peer as usize],
                    msg: *msg,
                    error: "the node is unreachable".to_owned(),
                };
                self.cores[i].handle(self.now, input);
                self.drain(i)
            }
            Event::Link { to, peer, up } => {
                9u8.hash(&mut self.trace);
                (to, peer, up).hash(&mut self.trace);
                let i = to as usize;
                if !self.up[i] {
                    return Ok(());
                }
                let peer = self.ids[peer as usize];
                let input = if up {
                    NodeInput::Connected(peer)
                } else {
                    NodeInput::Disconnected(peer)
                };
                self.cores[i].handle(self.now, input);
                self.drain(i)
            }
        }
    }

    fn submit(&mut self, j: usize) -> Result<(), Violation> {
        let n = self.nodes.len();
        let Some(by) = (0..n)
            .map(|k| (self.jobs[j].by + k) % n)
            .find(|&i| self.up[i])
        else {
            // Every node is down: the user tries again in a second.
            let at = self.now + 1_000;
            self.push(at, Event::Submit(j as u32));
            return Ok(());
        };
        let spec = JobSpec::clone(&self.jobs[j].spec);
        // A real node names its blob store in every announcement: the
        // inputs `skrei add` put there are fetched from it.
        let providers = vec![blobs::address(by, &self.ids[by])];
        // The submitter holds the job's inputs: it says how large they are.
        let inputs = &self.jobs[j].inputs;
        let input_bytes = (!inputs.is_empty()).then(|| inputs.iter().map(|i| i.bytes).sum());
        let job_id = self.cores[by]
            .submit_holding(self.now, spec, self.now, providers, input_bytes)
            .map_err(|e| self.violation(format!("job {j} could not be submitted: {e}")))?;
        self.job_index.insert(job_id, j as u32);
        let track = &mut self.tracks[j];
        track.submitted = Some((by as u32, job_id));
        track.submitted_at_ms = self.now;
        self.drain(by)
    }

    /// Carries out everything node `i`'s core asks for, checking each.
    fn drain(&mut self, i: usize) -> Result<(), Violation> {
        while let Some(out) = self.cores[i].poll_output() {
            match out {
                // The core paces them to the rate its peers take.
                NodeOutput::Publish(announce) => self.publish(i, announce),
                NodeOutput::ToCompute { to, msg } => {
                    let size = self.net.sizes().to_compute(&msg);
                    let to = self.index[&to];
                    // A real node's send fails when no connection can be
                    // had: the core counts the award as declined.
                    if matches!(msg, ToCompute::Award(_))
                        && self.undeliverable(i, to, Outgoing::ToCompute(msg.clone()))
                    {
                        continue;
                    }
                    self.send(i, to as usize, size, |from| Event::ToCompute {
                        to,
                        from,
                        msg: Box::new(msg),
                    });
                }
                NodeOutput::ToRequester { to, msg, .. } => {
                    if let ToRequester::Refuse(refuse) = &msg {
                        self.check_refusal(i, refuse)?;
                    }
                    let size = self.net.sizes().to_requester(&msg);
                    let to = self.index[&to];
                    // A result that cannot be delivered is offered again
                    // by the core, as on a real node.
                    if matches!(msg, ToRequester::Result(_))
                        && self.undeliverable(i, to, Outgoing::ToRequester(msg.clone()))
                    {
                        continue;
                    }
                    self.send(i, to as usize, size, |from| Event::ToRequester {
                        to,
                        from,
                        msg: Box::new(msg),
                    });
                }
                NodeOutput::JobEvent { job_id, event } => {
                    if let Some(record) = self.cores[i].job(&job_id) {
                        self.records.insert(job_id, record.clone());
                    }
                    self.on_requester_event(i, job_id, event)?
                }
                NodeOutput::Start {
                    job_id,
                    execution_id,
                    spec,
                    providers,
                    ..
                } => {
                    let running = self.cores[i].compute().running();
                    check::check_start(&self.nodes[i], &spec, running)
                        .map_err(|what| self.violation(format!("node {i} {what}")))?;
                    self.start_execution(i, job_id, execution_id, &providers)?;
                }
                NodeOutput::Stop { .. }
                | NodeOutput::ResultAccepted { .. }
                | NodeOutput::ComputeEvent { .. }
                | NodeOutput::NodeInfoDue => {}
            }
        }
        self.schedule_wake(i);
        Ok(())
    }

    /// Whether `msg` from `i` cannot reach `to` now (down, or across a
    /// partition); if so its sender hears of it as a real node's send would
    /// fail: at once for a node that is down, after the direct-message
    /// timeout across a partition.
    fn undeliverable(&mut self, i: usize, to: u32, msg: Outgoing) -> bool {
        let after = if !self.up[to as usize] {
            CRASH_NOTICE_MS
        } else if self.net.separated(i, to as usize, self.now) {
            SEND_TIMEOUT_MS
        } else {
            return false;
        };
        let event = Event::Undelivered {
            to: i as u32,
            peer: to,
            msg: Box::new(msg),
        };
        self.push(self.now + after, event);
        true
    }

    fn schedule_wake(&mut self, i: usize) {
        let Some(next) = self.cores[i].poll_timeout() else {
            return;
        };
        let at = next.max(self.now);
        if self.wake_at[i].is_none_or(|w| at < w) {
            self.wake_at[i] = Some(at);
            self.push(at, Event::Wake(i as u32));
        }
    }

    /// Gossips an announcement (the publisher's own compute side has it
    /// already, from its core): every other node, if reachable, after its
    /// drawn hops.
    fn publish(&mut self, i: usize, announce: Announce) {
        let size = Sizes::announce(&announce);
        let d = u64::from(self.net.degree());
        let announce = Arc::new(announce);
        // The publisher floods its connected peers (see net.rs).
        let flood = u64::from(self.net.publish_copies());
        let t = &mut self.traffic[i];
        t.messages += flood;
        t.bytes += flood * size;
        for j in 0..self.nodes.len() {
            if j == i || !self.up[j] || self.net.separated(i, j, self.now) {
                continue;
            }
            let Some(delivery) = self.net.gossip(&mut self.rng, i, j) else {
                continue;
            };
            let delay = delivery.delay_ms;
            // Each reached node hears about D copies (one more from the
            // publisher when it is one of its peers) and forwards about D.
            let heard = d + u64::from(delivery.hops == 1);
            let t = &mut self.traffic[j];
            t.messages += heard + d;
            t.bytes += (heard + d) * size;
            self.gossip_receptions += heard;
            let holds_all = || {
                announce.input_bytes.is_some()
                    && announce.all_held(self.held_bytes(&announce.job_id, j))
            };
            if !announce.draws(&self.ids[j]) && !holds_all() {
                // Its compute side would ignore it (compute.rs, "Draw";
                // a node holding the inputs answers anyway): skip the
                // delivery, and the copy of the job it costs.
                continue;
            }
            let at = self.now + delay;
            self.push(
                at,
                Event::Announce {
                    to: j as u32,
                    announce: Arc::clone(&announce),
                },
            );
        }
    }

    /// A direct message from `i` to `to`: local delivery at once, else
    /// through the link model and the partitions.
    fn send(&mut self, i: usize, to: usize, size: u64, event: impl FnOnce(u32) -> Event) {
        if to == i {
            let event = event(i as u32);
            self.push(self.now, event);
            return;
        }
        self.traffic[i].messages += 1;
        self.traffic[i].bytes += size;
        if self.net.separated(i, to, self.now) {
            return;
        }
        let Some(delay) = self.net.direct(&mut self.rng, i, to) else {
            return;
        };
        self.traffic[to].messages += 1;
        self.traffic[to].bytes += size;
        let event = event(i as u32);
        self.push(self.now + delay, event);
    }

    /// An execution with its inputs in from `from_ms` on: runs for a drawn
    /// time, then completes or fails.
    /// Runs an execution from `from_ms`; it ends by `deadline_ms` (its
    /// start plus the job's `ExecutionTimeout`, which counts the inputs'
    /// fetch too) or fails there, as a real node's executor stops it.
    fn run_execution(
        &mut self,
        i: usize,
        job_id: JobId,
        execution_id: ExecutionId,
        from_ms: u64,
        deadline_ms: u64,
    ) {
        let (lo, hi) = self.config.execution.run_ms;
        let run = self.rng.range(lo, hi);
        let outcome = if from_ms + run > deadline_ms {
            Outcome::Failed {
                failure: Failure::new(
                    FailureCause::Timeout,
                    format!(
                        "the task ran longer than its timeout of {} s",
                        self.config.mix.execution_timeout_s
                    ),
                ),
            }
        } else if self.rng.chance(self.config.execution.failure) {
            Outcome::Failed {
                failure: Failure::new(FailureCause::Other, "a simulated failure"),
            }
        } else {
            let mut bytes = [0u8; 24];
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            bytes[8..16].copy_from_slice(&execution_id.0.to_le_bytes());
            bytes[16..].copy_from_slice(&self.rng.u64().to_le_bytes());
            Outcome::Completed {
                result_cid: blake3_cid(RAW, &bytes),
                exit_code: 0,
            }
        };
        let incarnation = self.incarnation[i];
        self.push(
            (from_ms + run).min(deadline_ms),
            Event::Finished(Box::new(Finished {
                node: i as u32,
                incarnation,
                job_id,
                execution_id,
                outcome,
            })),
        );
    }

    /// The job's `ExecutionTimeout`, in simulated ms.
    /// Bytes of the job's inputs node `i` holds: all of them for its
    /// submitter, those it has a replica of for the others.
    fn held_bytes(&self, job_id: &JobId, i: usize) -> u64 {
        let Some(&j) = self.job_index.get(job_id) else {
            return 0;
        };
        let track = &self.tracks[j as usize];
        let submitter = track.submitted.map(|(by, _)| by as usize);
        self.jobs[j as usize]
            .inputs
            .iter()
            .filter(|input| submitter == Some(i) || input.replicas.contains(&(i as u32)))
            .map(|input| input.bytes)
            .sum()
    }

    pub(super) fn execution_timeout_ms(&self) -> u64 {
        self.config.mix.execution_timeout_s.saturating_mul(1000)
    }

    fn check_refusal(
        &self,
        i: usize,
        refuse: &protocol::messages::Refuse,
    ) -> Result<(), Violation> {
        let Some(&j) = self.job_index.get(&refuse.job_id) else {
            return Err(self.violation(format!("node {i} refused a job nobody submitted")));
        };
        if let RefuseReason::InputsTooSlow {
            bytes,
            bps,
            fetch_ms,
            timeout_ms,
        } = refuse.reason
        {
            return self.check_inputs_too_slow(i, j as usize, bytes, bps, fetch_ms, timeout_ms);
        }
        let compute = self.cores[i].compute();
        let taken = compute.running() + compute.open_bids();
        check::check_refusal(
            &self.nodes[i],
            &self.jobs[j as usize].spec,
            &refuse.reason,
            taken,
        )
        .map_err(|what| self.violation(format!("node {i} {what}")))
    }

    /// R-PLC-1: a node refusing a job as too slow to fetch must be right
    /// about the bytes it lacks and the rate: the slower of its own link's
    /// download and its submitter's upload, which is what the fetch would
    /// go at.
    fn check_inputs_too_slow(
        &self,
        i: usize,
        j: usize,
        bytes: u64,
        bps: u64,
        fetch_ms: u64,
        timeout_ms: u64,
    ) -> Result<(), Violation> {
        let Some((by, job_id)) = self.tracks[j].submitted else {
            return Err(self.violation(format!("node {i} refused job {j} before it was submitted")));
        };
        let total: u64 = self.jobs[j].inputs.iter().map(|x| x.bytes).sum();
        let missing = total - self.held_bytes(&job_id, i);
        let rate_mbps = self.nodes[i]
            .bandwidth
            .down_mbps
            .min(self.nodes[by as usize].bandwidth.up_mbps);
        let truth = (
            missing,
            rate_mbps.saturating_mul(1_000_000),
            self.execution_timeout_ms(),
        );
        if (bytes, bps, timeout_ms) != truth
            || fetch_ms != protocol::link::transfer_ms(bytes, bps)
            || fetch_ms <= timeout_ms
        {
            return Err(self.violation(format!(
                "node {i} refused job {j} as too slow to fetch ({bytes} bytes at {bps} bit/s, \
                 {fetch_ms} ms > {timeout_ms} ms), but it lacks {} bytes at {} bit/s within {} ms",
                truth.0, truth.1, truth.2
            )));
        }
        Ok(())
    }

    fn on_requester_event(
        &mut self,
        i: usize,
        job_id: JobId,
        event: RequesterEvent,
    ) -> Result<(), Violation> {
        let Some(&j) = self.job_index.get(&job_id) else {
            return Err(self.violation(format!("node {i} reports on a job nobody submitted")));
        };
        let j = j as usize;
        if self.tracks[j].ended_at_ms.is_some() {
            return Err(
                self.violation(format!("job {j} ({job_id}) had ended, and then: {event:?}"))
            );
        }
        let count = self.jobs[j].spec.count;
        let outcome = match event {
            RequesterEvent::Completed { .. } => {
                self.tracks[j].completions += 1;
                if self.tracks[j].completions > count {
                    return Err(self.violation(format!(
                        "job {j} ({job_id}) has {} completed executions, more than its count {count}",
                        self.tracks[j].completions
                    )));
                }
                None
            }
            RequesterEvent::JobCompleted => {
                if self.tracks[j].completions != count {
                    return Err(self.violation(format!(
                        "job {j} ({job_id}) completed with {} of {count} executions",
                        self.tracks[j].completions
                    )));
                }
                Some(JobOutcome::Completed)
            }
            RequesterEvent::JobFailed { failure } => {
                check::check_failure_reason(&self.nodes, &self.jobs[j].spec, &failure)
                    .map_err(|what| self.violation(format!("job {j} ({job_id}): {what}")))?;
                let last_attempt = self.records.get(&job_id).and_then(|r| {
                    r.executions.iter().rev().find_map(|e| match &e.state {
                        ExecutionState::Failed { failure } => Some(failure.cause),
                        _ => None,
                    })
                });
                Some(JobOutcome::Failed {
                    failure,
                    last_attempt,
                })
            }
            RequesterEvent::JobCancelled => Some(JobOutcome::Cancelled),
            RequesterEvent::Awarded { node, .. } => {
                let now = self.now;
                self.tracks[j].first_award_ms.get_or_insert(now);
                // It will see the awarded node go if that one crashes.
                let on = self.index[&node] as usize;
                if on != i && !self.awarded_by[on].contains(&(i as u32)) {
                    self.awarded_by[on].push(i as u32);
                }
                None
            }
            _ => None,
        };
        if let Some(outcome) = outcome {
            let track = &mut self.tracks[j];
            track.ended_at_ms = Some(self.now);
            track.outcome = Some(outcome);
        }
        Ok(())
    }

    /// Liveness, once every fault has healed and nothing is left to happen:
    /// every job ended, and its requester agrees.
    fn check_end(&self) -> Result<(), Violation> {
        for (j, track) in self.tracks.iter().enumerate() {
            let Some((by, job_id)) = track.submitted else {
                return Err(self.violation(format!("job {j} was never submitted")));
            };
            let Some(record) = self.records.get(&job_id) else {
                return Err(self.violation(format!(
                    "job {j} ({job_id}) is unknown to its requester, node {by}"
                )));
            };
            let ended = match (&record.state, &track.outcome) {
                (JobState::Completed, Some(JobOutcome::Completed)) => true,
                (JobState::Failed { failure }, Some(JobOutcome::Failed { failure: f, .. })) => {
                    !failure.detail.is_empty() && failure == f
                }
                (JobState::Cancelled, Some(JobOutcome::Cancelled)) => true,
                _ => false,
            };
            if !ended {
                return Err(self.violation(format!(
                    "job {j} ({job_id}) did not end: its requester says {:?}, its events say {:?}",
                    record.state, track.outcome
                )));
            }
        }
        Ok(())
    }

    fn report(self) -> Report {
        let mut latencies = Vec::new();
        let mut award_latencies = Vec::new();
        let mut outcomes = Vec::with_capacity(self.tracks.len());
        let mut bids = Vec::with_capacity(self.tracks.len());
        let mut by_requester = crate::report::RequesterFigures::default();
        let mut others_latencies = Vec::new();
        let mut reach = crate::report::ReachFigures::default();
        let mut out_of_reach_fail_ms = Vec::new();
        for (plan, track) in self.jobs.iter().zip(&self.tracks) {
            let completed = matches!(track.outcome, Some(JobOutcome::Completed));
            if self.can_finish(plan, track) {
                reach.can_finish += 1;
                reach.can_finish_completed += u64::from(completed);
            } else {
                reach.cannot_finish += 1;
                if let (Some(JobOutcome::Failed { failure, .. }), Some(end)) =
                    (&track.outcome, track.ended_at_ms)
                    && failure.detail.starts_with(OUT_OF_REACH)
                {
                    reach.cannot_finish_explained += 1;
                    out_of_reach_fail_ms.push(end - track.submitted_at_ms);
                }
            }
            if plan.flood {
                by_requester.flood_jobs += 1;
                by_requester.flood_completed += u64::from(completed);
            } else if track.submitted.is_some_and(|(node, _)| node != 0) {
                by_requester.others_jobs += 1;
                by_requester.others_completed += u64::from(completed);
                if let (true, Some(end)) = (completed, track.ended_at_ms) {
                    others_latencies.push(end - track.submitted_at_ms);
                }
            }
            if let (Some(end), Some(JobOutcome::Completed)) = (track.ended_at_ms, &track.outcome) {
                latencies.push(end - track.submitted_at_ms);
            }
            if let Some(award) = track.first_award_ms {
                award_latencies.push(award - track.submitted_at_ms);
            }
            if let Some((_, job_id)) = track.submitted
                && let Some(record) = self.records.get(&job_id)
            {
                bids.push(u64::from(record.bids_received));
            }
            outcomes.push(track.outcome.clone().unwrap_or(JobOutcome::Cancelled));
        }
        others_latencies.sort_unstable();
        out_of_reach_fail_ms.sort_unstable();
        reach.cannot_finish_fail_ms = crate::report::Percentiles::of(&out_of_reach_fail_ms);
        by_requester.others_latency_ms = crate::report::Percentiles::of(&others_latencies);
        Report::new(
            &self.config,
            latencies,
            award_latencies,
            &outcomes,
            &self.traffic,
            bids,
            self.events,
            self.now,
            self.gossip_receptions,
            &self.inputs,
            &self.execution_failures,
            self.trace.digest(),
            by_requester,
            reach,
        )
    }

    /// Whether the network can finish the job at all (see
    /// [`crate::report::ReachFigures`]).
    fn can_finish(&self, plan: &JobPlan, track: &JobTrack) -> bool {
        let Some((by, _)) = track.submitted else {
            return true;
        };
        let by = by as usize;
        let total: u64 = plan.inputs.iter().map(|i| i.bytes).sum();
        let up = self.nodes[by].bandwidth.up_mbps.saturating_mul(1_000_000);
        if plan.inputs.is_empty()
            || protocol::link::transfer_ms(total, up) <= self.execution_timeout_ms()
        {
            return true;
        }
        let task = plan.spec.task();
        let holders = (0..self.nodes.len())
            .filter(|&n| n == by || plan.inputs.iter().all(|i| i.replicas.contains(&(n as u32))))
            .filter(|&n| {
                let node = &self.nodes[n];
                node.engines.contains(task.engine.kind())
                    && matches!(
                        node.policy
                            .decide(task.network.r#type, &task.network.domains),
                        protocol::policy::Decision::Bid
                    )
            })
            .count();
        holders >= plan.spec.count as usize
    }
}

/// How a requester's failure begins when no node can have the job's
/// inputs in time (R-PLC-1).
const OUT_OF_REACH: &str = "no node holding its inputs is left to take the job";

/// Flags for nodes `0..n`, set for those listed.
fn flags(n: usize, set: &[usize]) -> Vec<bool> {
    let mut flags = vec![false; n];
    for &i in set {
        if let Some(flag) = flags.get_mut(i) {
            *flag = true;
        }
    }
    flags
}
