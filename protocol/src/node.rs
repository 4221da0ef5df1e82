//! One node: its [`Requester`] and its [`Compute`], the messages between
//! them, and the rules that belong to neither alone.
//!
//! The daemon, simnet and the property tests all run this object, with the
//! same defaults ([`NodeConfig::new`]), so what a simulation measures is
//! what ships. Like the two machines it owns (and quinn-proto's `Endpoint`)
//! it is sans-IO: inputs come in with the time (`handle`,
//! `handle_timeout`), outputs are polled (`poll_output`), and
//! `poll_timeout` says when to come back. It signs nothing and sends
//! nothing: [`NodeOutput`]s name what to sign, send, start and store.
//!
//! What it adds to the two machines:
//! - **Loopback.** A node's own announcements, and the messages between its
//!   requester and its compute side, never leave it: they go round inside
//!   (gossipsub does not deliver a node's own messages back).
//! - **Disconnect grace.** An awarded node that disconnects and stays away
//!   [`NodeConfig::disconnect_grace_ms`] has failed its execution: the job is
//!   re-awarded now, not after the execution timeout.
//! - **Undeliverable awards** fail their execution as `node_lost` (it is
//!   re-awarded at once); **undeliverable results**
//!   are offered again, backing off, for [`NodeConfig::result_retry_ms`]
//!   (their requester may be restarting).
//! - **Results' providers.** The blob-store addresses a compute node names
//!   in its result are kept only for an execution this node awarded to it
//!   (ids are free to make up) and handed out with the completed result
//!   ([`NodeOutput::ResultAccepted`]), for the driver to fetch it.
//! - **Node info timing**: every [`NodeConfig::node_info_interval_ms`], and
//!   soon after a new connection (a burst of them gives one message).
//! - **Network size**, for the requester's draw: what the driver estimates
//!   ([`NodeInput::NetworkSize`]), else the node infos heard.
//! - **Retention.** Ended jobs are forgotten
//!   [`NodeConfig::retention_ms`] after they end: their records live in the
//!   driver's database, and memory stays flat however many jobs pass.

use std::collections::{BTreeMap, VecDeque};

use cid::Cid;

use crate::compute::{
    Compute, ComputeConfig, ComputeEvent, ComputeInput, ComputeOutput, ToRequester,
};
use crate::failure::{Failure, FailureCause};
use crate::id::{ExecutionId, JobId, NodeId};
use crate::job::JobSpec;
use crate::link::Transfer;
use crate::messages::{Announce, DirectMessage, NodeInfo, Outcome, ResultMsg};
use crate::policy::AcceptancePolicy;
use crate::rate::{ANNOUNCE_RATE, MAX_OUTBOX, Pacer};
use crate::requester::{
    CancelError, ExecutionState, JobRecord, Requester, RequesterConfig, RequesterEvent,
    RequesterInput, RequesterOutput, Sources, SubmitError, ToCompute,
};

/// How a [`Node`] behaves: its two machines' settings and its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub requester: RequesterConfig,
    pub compute: ComputeConfig,
    /// An awarded node that disconnected and stays away this long has
    /// failed its execution. Default 3 s.
    pub disconnect_grace_ms: u64,
    /// Node info goes out this often. Default 30 s; 0: never (a network
    /// model that does not gossip node info).
    pub node_info_interval_ms: u64,
    /// ... and this soon after a peer connects. Default 300 ms.
    pub node_info_after_connect_ms: u64,
    /// How long a result that could not be delivered is offered again.
    /// Default 2 min.
    pub result_retry_ms: u64,
    /// After a restart, an awarded node this node has not connected to
    /// within this long has failed its execution: it may have died while
    /// this node was down, which no disconnection will tell. Default 30 s.
    pub restart_grace_ms: u64,
    /// Ended jobs are kept in memory this long, then forgotten (the
    /// driver's database keeps them). Long enough for the answers still
    /// under way when a job ends to meet its record and be dropped as late;
    /// short, because a busy requester ends many jobs a minute and memory
    /// holds all it has not forgotten. Default 60 s; `None`: kept (a
    /// simulation that reads every record at the end).
    pub retention_ms: Option<u64>,
}

impl NodeConfig {
    /// The one set of defaults, for node `me` with `policy` and `engines`.
    pub fn new(
        me: NodeId,
        policy: AcceptancePolicy,
        engines: impl IntoIterator<Item = String>,
        seed: u64,
    ) -> NodeConfig {
        let mut requester = RequesterConfig::new(me, seed);
        // Every spare bid holds a slot on its node for the bid's TTL; on a
        // busy network that idles more slots than a quick re-announcement
        // (awarded as soon as the known nodes answer) costs on a failure.
        requester.max_spares = 0;
        NodeConfig {
            requester,
            compute: ComputeConfig::new(me, policy, engines, seed.rotate_left(17)),
            disconnect_grace_ms: 3_000,
            restart_grace_ms: 30_000,
            result_retry_ms: 120_000,
            node_info_interval_ms: 30_000,
            node_info_after_connect_ms: 300,
            retention_ms: Some(60_000),
        }
    }
}

/// What happened, for the node to act on. Messages have been verified by
/// the driver; `from` is their signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeInput {
    /// A job announcement heard over gossip.
    Announce {
        /// The announcement.
        announce: Announce,
        /// Bytes of the job's CID inputs this node's store holds.
        held_bytes: u64,
    },
    /// The node finished fetching or serving blobs: a sample for its link
    /// rate estimates ([`crate::link`]).
    Transferred(Transfer),
    /// A node info heard over gossip.
    NodeInfo { from: NodeId, info: NodeInfo },
    /// A direct message.
    Direct {
        from: NodeId,
        message: DirectMessage,
    },
    /// A peer connected.
    Connected(NodeId),
    /// A peer disconnected.
    Disconnected(NodeId),
    /// An execution this node started has ended (or was stopped).
    ExecutionFinished {
        job_id: JobId,
        execution_id: ExecutionId,
        outcome: Outcome,
    },
    /// An execution this node runs reached a step its requester is told
    /// of (pulling the image, running).
    ExecutionStep {
        job_id: JobId,
        execution_id: ExecutionId,
        step: crate::messages::Step,
    },
    /// A message to `to` could not be delivered: an award's execution
    /// fails as `node_lost` (and is re-awarded), a result is offered again
    /// later.
    Undelivered {
        to: NodeId,
        msg: Outgoing,
        error: String,
    },
    /// The driver's estimate of the network's size (0: unknown).
    NetworkSize(u64),
    /// The driver let go of what it knew of a peer.
    ForgetNode(NodeId),
}

impl NodeInput {
    /// An announcement of a job none of whose inputs this node holds.
    pub fn announce(announce: Announce) -> NodeInput {
        NodeInput::Announce {
            announce,
            held_bytes: 0,
        }
    }
}

/// A message this node sends to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    ToCompute(ToCompute),
    ToRequester(ToRequester),
}

/// What the node asks its driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeOutput {
    /// Sign and gossip an announcement of this node's.
    Publish(Announce),
    /// Sign and send a message of this node's requester.
    ToCompute { to: NodeId, msg: ToCompute },
    /// Sign and send a message of this node's compute side. `attempt` is
    /// 0 the first time, then counts the offers of an undelivered result.
    ToRequester {
        to: NodeId,
        msg: ToRequester,
        attempt: u32,
    },
    /// Fetch the inputs and run the job; report with
    /// [`NodeInput::ExecutionFinished`].
    Start {
        job_id: JobId,
        execution_id: ExecutionId,
        spec: JobSpec,
        providers: Vec<String>,
        /// Which of the job's `Count` parts it runs, from 0.
        partition: u32,
    },
    /// Stop the execution (its requester cancelled it).
    Stop {
        job_id: JobId,
        execution_id: ExecutionId,
    },
    /// A job of this node's changed: store its record
    /// ([`Node::job`]) with the event.
    JobEvent {
        job_id: JobId,
        event: RequesterEvent,
    },
    /// An execution of this node's job completed: record the result and
    /// fetch it from `providers`.
    ResultAccepted {
        job_id: JobId,
        execution_id: ExecutionId,
        node: NodeId,
        result_cid: Cid,
        exit_code: i32,
        providers: Vec<String>,
    },
    /// Something happened on the compute side, for logs and metrics.
    ComputeEvent { job_id: JobId, event: ComputeEvent },
    /// Time to gossip this node's info.
    NodeInfoDue,
}

/// A result offered again until it is taken or its time is up.
#[derive(Debug, Clone)]
struct Resend {
    to: NodeId,
    result: ResultMsg,
    until_ms: u64,
    next_ms: u64,
    backoff_ms: u64,
    attempt: u32,
}

/// One node's sans-IO core.
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    requester: Requester,
    compute: Compute,
    out: VecDeque<NodeOutput>,
    /// Peers gone, and when their awarded executions count as failed.
    gone: BTreeMap<NodeId, u64>,
    /// Providers named by results of executions this node awarded.
    result_providers: BTreeMap<(JobId, ExecutionId), Vec<String>>,
    /// Ended jobs, by when they are forgotten.
    retire: BTreeMap<(u64, JobId), ()>,
    /// Results to offer again, by execution.
    resend: BTreeMap<(JobId, ExecutionId), Resend>,
    next_info_ms: Option<u64>,
    /// This node's own announcements, sent no faster than its peers take
    /// them ([`crate::rate::ANNOUNCE_RATE`]).
    outbox: Pacer<JobId, Announce>,
    /// The time of the latest input, for [`Node::poll_timeout`].
    now_ms: u64,
}

impl Node {
    pub fn new(config: NodeConfig) -> Node {
        Node {
            requester: Requester::new(config.requester.clone()),
            compute: Compute::new(config.compute.clone()),
            config,
            out: VecDeque::new(),
            gone: BTreeMap::new(),
            result_providers: BTreeMap::new(),
            retire: BTreeMap::new(),
            resend: BTreeMap::new(),
            next_info_ms: None,
            outbox: Pacer::new(ANNOUNCE_RATE, MAX_OUTBOX),
            now_ms: 0,
        }
    }

    /// This node.
    pub fn me(&self) -> NodeId {
        self.config.requester.node
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The requester side, to read.
    pub fn requester(&self) -> &Requester {
        &self.requester
    }

    /// The compute side, to read.
    pub fn compute(&self) -> &Compute {
        &self.compute
    }

    /// A job of this node's, while it is in memory.
    pub fn job(&self, job_id: &JobId) -> Option<&JobRecord> {
        self.requester.job(job_id)
    }

    /// Replaces where this node's results are said to be fetched from.
    pub fn set_result_providers(&mut self, providers: Vec<String>) {
        self.compute.set_result_providers(providers);
    }

    /// Replaces the acceptance policy (an allowlist reloaded); node info
    /// goes out at once to say so.
    pub fn set_policy(&mut self, now_ms: u64, policy: AcceptancePolicy) {
        self.compute.set_policy(policy);
        if self.config.node_info_interval_ms > 0 {
            self.next_info_ms = Some(now_ms);
        }
    }

    /// The Docker images at hand (`None`: unknown).
    pub fn set_local_images(&mut self, images: Option<std::collections::BTreeSet<String>>) {
        self.compute.set_local_images(images);
    }

    /// Takes back a job this node had before it stopped. Executions it had
    /// awarded to itself died with it (its compute side starts empty):
    /// they fail now, so the job is re-awarded instead of waiting out its
    /// execution timeout. Nodes it had awarded work to must connect within
    /// [`NodeConfig::restart_grace_ms`], or their executions fail too.
    pub fn restore(&mut self, now_ms: u64, record: JobRecord) {
        let me = self.me();
        let job_id = record.job_id();
        if !record.state.is_terminal() {
            let deadline = now_ms.saturating_add(self.config.restart_grace_ms);
            for e in &record.executions {
                if e.node != me && e.state == ExecutionState::Awarded {
                    self.gone.entry(e.node).or_insert(deadline);
                }
            }
        }
        let lost: Vec<ExecutionId> = if record.state.is_terminal() {
            Vec::new()
        } else {
            record
                .executions
                .iter()
                .filter(|e| e.node == me && e.state == ExecutionState::Awarded)
                .map(|e| e.execution_id)
                .collect()
        };
        self.requester.restore(now_ms, record);
        for execution_id in lost {
            let result = ResultMsg {
                job_id,
                execution_id,
                node: me,
                outcome: Outcome::Failed {
                    failure: Failure::new(
                        FailureCause::NodeRestarted,
                        "this node restarted while it ran the job",
                    ),
                },
                providers: Vec::new(),
            };
            self.requester
                .handle(now_ms, RequesterInput::Result { from: me, result });
        }
        self.route(now_ms);
    }

    /// A job from this node's user; its id, or why it is refused.
    pub fn submit(
        &mut self,
        now_ms: u64,
        spec: JobSpec,
        submitted_at_ms: u64,
        providers: Vec<String>,
    ) -> Result<JobId, SubmitError> {
        self.submit_holding(now_ms, spec, submitted_at_ms, providers, None)
    }

    /// [`Node::submit`] of a job whose CID inputs this node's store holds,
    /// `input_bytes` of them (`None`: not all, or it does not know): the
    /// announcement says so, with the rate this node serves at, so compute
    /// nodes can tell whether they would fetch the inputs in time
    /// (R-PLC-1).
    pub fn submit_holding(
        &mut self,
        now_ms: u64,
        spec: JobSpec,
        submitted_at_ms: u64,
        providers: Vec<String>,
        input_bytes: Option<u64>,
    ) -> Result<JobId, SubmitError> {
        let sources = Sources {
            providers,
            input_bytes,
            source_bps: self.compute.link().up.bps(),
        };
        let id = self
            .requester
            .submit_with(now_ms, spec, submitted_at_ms, sources)?;
        self.requester.announcement_waiting(&id);
        self.route(now_ms);
        Ok(id)
    }

    /// Cancels a job of this node's.
    pub fn cancel(&mut self, now_ms: u64, job_id: JobId, reason: &str) -> Result<(), CancelError> {
        self.requester.cancel(job_id, reason)?;
        self.route(now_ms);
        Ok(())
    }

    pub fn handle(&mut self, now_ms: u64, input: NodeInput) {
        self.arm_node_info(now_ms);
        match input {
            NodeInput::Announce {
                announce,
                held_bytes,
            } => {
                self.compute.handle(
                    now_ms,
                    ComputeInput::Announce {
                        announce,
                        held_bytes,
                    },
                );
            }
            NodeInput::Transferred(transfer) => {
                self.compute
                    .handle(now_ms, ComputeInput::Transferred(transfer));
            }
            NodeInput::NodeInfo { from, info } => {
                self.requester
                    .handle(now_ms, RequesterInput::NodeInfo { from, info });
            }
            NodeInput::Direct { from, message } => self.on_direct(now_ms, from, message),
            NodeInput::Connected(peer) => {
                self.gone.remove(&peer);
                if self.config.node_info_interval_ms > 0 {
                    let soon = now_ms.saturating_add(self.config.node_info_after_connect_ms);
                    self.next_info_ms = Some(self.next_info_ms.map_or(soon, |at| at.min(soon)));
                }
            }
            NodeInput::Disconnected(peer) => {
                self.gone
                    .insert(peer, now_ms.saturating_add(self.config.disconnect_grace_ms));
            }
            NodeInput::ExecutionFinished {
                job_id,
                execution_id,
                outcome,
            } => {
                self.compute.handle(
                    now_ms,
                    ComputeInput::ExecutionFinished {
                        job_id,
                        execution_id,
                        outcome,
                    },
                );
            }
            NodeInput::ExecutionStep {
                job_id,
                execution_id,
                step,
            } => {
                self.compute.handle(
                    now_ms,
                    ComputeInput::ExecutionStep {
                        job_id,
                        execution_id,
                        step,
                    },
                );
            }
            NodeInput::Undelivered { to, msg, error } => match msg {
                Outgoing::ToCompute(ToCompute::Award(award)) => {
                    // As if the node had said so: its attempt is lost.
                    let result = ResultMsg {
                        job_id: award.job_id,
                        execution_id: award.execution_id,
                        node: to,
                        outcome: Outcome::Failed {
                            failure: Failure::new(
                                FailureCause::NodeLost,
                                format!("the award could not be delivered: {error}"),
                            ),
                        },
                        providers: Vec::new(),
                    };
                    self.requester
                        .handle(now_ms, RequesterInput::Result { from: to, result });
                }
                Outgoing::ToRequester(ToRequester::Result(result)) => {
                    self.offer_again(now_ms, to, result);
                }
                // A bid, refusal, decline or cancellation is not worth
                // more: the other side's timers cover its loss.
                _ => {}
            },
            NodeInput::NetworkSize(nodes) => self.requester.set_network_size(nodes),
            NodeInput::ForgetNode(node) => self.requester.forget_node(&node),
        }
        self.route(now_ms);
    }

    /// Runs whatever is due by `now_ms`.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.arm_node_info(now_ms);
        self.requester.handle_timeout(now_ms);
        self.compute.handle_timeout(now_ms);
        self.fail_gone_nodes(now_ms);
        let due: Vec<(JobId, ExecutionId)> = self
            .resend
            .iter()
            .filter(|(_, r)| r.next_ms <= now_ms)
            .map(|(k, _)| *k)
            .collect();
        // Offers whose time is up are dropped, delivered or not.
        self.resend.retain(|_, r| r.until_ms > now_ms);
        for key in due {
            if let Some(r) = self.resend.get_mut(&key) {
                r.attempt += 1;
                // Held until the driver says it failed again.
                r.next_ms = u64::MAX;
                self.out.push_back(NodeOutput::ToRequester {
                    to: r.to,
                    msg: ToRequester::Result(r.result.clone()),
                    attempt: r.attempt,
                });
            }
        }
        if self.next_info_ms.is_some_and(|at| at <= now_ms) {
            self.next_info_ms = Some(now_ms.saturating_add(self.config.node_info_interval_ms));
            self.out.push_back(NodeOutput::NodeInfoDue);
        }
        while let Some(entry) = self.retire.first_entry() {
            let (at, job_id) = *entry.key();
            if at > now_ms {
                break;
            }
            entry.remove();
            self.requester.forget(&job_id);
            self.result_providers.retain(|(j, _), _| *j != job_id);
        }
        self.route(now_ms);
    }

    pub fn poll_output(&mut self) -> Option<NodeOutput> {
        self.out.pop_front()
    }

    /// When [`Node::handle_timeout`] should run next.
    pub fn poll_timeout(&self) -> Option<u64> {
        [
            self.requester.poll_timeout(),
            self.compute.poll_timeout(),
            self.gone.values().min().copied(),
            self.resend
                .values()
                .map(|r| r.next_ms.min(r.until_ms))
                .min(),
            self.next_info_ms,
            self.retire.keys().next().map(|(at, _)| *at),
            self.outbox.next_ms(self.now_ms),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Schedules an undelivered result's next offer, backing off from
    /// 250 ms to 5 s, until [`NodeConfig::result_retry_ms`] after the first.
    fn offer_again(&mut self, now_ms: u64, to: NodeId, result: ResultMsg) {
        let key = (result.job_id, result.execution_id);
        let until = now_ms.saturating_add(self.config.result_retry_ms);
        let r = self.resend.entry(key).or_insert(Resend {
            to,
            result,
            until_ms: until,
            next_ms: now_ms,
            backoff_ms: 125,
            attempt: 0,
        });
        r.backoff_ms = (r.backoff_ms * 2).min(5_000);
        let next = now_ms.saturating_add(r.backoff_ms);
        if next > r.until_ms {
            self.resend.remove(&key);
        } else {
            r.next_ms = next;
        }
    }

    /// A result was taken: no more offers.
    pub fn delivered(&mut self, job_id: JobId, execution_id: ExecutionId) {
        self.resend.remove(&(job_id, execution_id));
    }

    /// The first input sets the node-info clock going.
    fn arm_node_info(&mut self, now_ms: u64) {
        if self.next_info_ms.is_none() && self.config.node_info_interval_ms > 0 {
            self.next_info_ms = Some(now_ms.saturating_add(self.config.node_info_after_connect_ms));
        }
    }

    fn on_direct(&mut self, now_ms: u64, from: NodeId, message: DirectMessage) {
        let input = match message {
            DirectMessage::Bid(bid) => RequesterInput::Bid { from, bid },
            DirectMessage::Refuse(refuse) => RequesterInput::Refuse { from, refuse },
            DirectMessage::Decline(decline) => RequesterInput::Decline { from, decline },
            DirectMessage::Progress(progress) => RequesterInput::Progress { from, progress },
            DirectMessage::Result(result) => {
                self.keep_providers(from, &result);
                RequesterInput::Result { from, result }
            }
            DirectMessage::Award(award) => {
                self.compute
                    .handle(now_ms, ComputeInput::Award { from, award });
                return;
            }
            DirectMessage::Cancel(cancel) => {
                self.compute
                    .handle(now_ms, ComputeInput::Cancel { from, cancel });
                return;
            }
        };
        self.requester.handle(now_ms, input);
    }

    /// Keeps a result's providers only for an execution this node awarded
    /// to its sender: job and execution ids are free to make (R-SEC-5).
    fn keep_providers(&mut self, from: NodeId, result: &ResultMsg) {
        let awarded = self.requester.job(&result.job_id).is_some_and(|job| {
            !job.state.is_terminal()
                && job
                    .executions
                    .iter()
                    .any(|e| e.execution_id == result.execution_id && e.node == from)
        });
        if awarded && matches!(result.outcome, Outcome::Completed { .. }) {
            self.result_providers.insert(
                (result.job_id, result.execution_id),
                result.providers.clone(),
            );
        }
    }

    /// Executions awarded to nodes that left and did not come back fail,
    /// so their jobs are re-awarded.
    fn fail_gone_nodes(&mut self, now_ms: u64) {
        let expired: Vec<NodeId> = self
            .gone
            .iter()
            .filter(|(_, at)| **at <= now_ms)
            .map(|(n, _)| *n)
            .collect();
        for node in expired {
            self.gone.remove(&node);
            let lost: Vec<(JobId, ExecutionId)> = self
                .requester
                .jobs()
                .filter(|j| !j.state.is_terminal())
                .flat_map(|j| {
                    j.executions
                        .iter()
                        .filter(|e| e.node == node && e.state == ExecutionState::Awarded)
                        .map(move |e| (j.job_id(), e.execution_id))
                })
                .collect();
            for (job_id, execution_id) in lost {
                let result = ResultMsg {
                    job_id,
                    execution_id,
                    node,
                    outcome: Outcome::Failed {
                        failure: Failure::new(
                            FailureCause::NodeLost,
                            format!(
                                "the node disconnected and did not come back within {} s",
                                self.config.disconnect_grace_ms / 1000
                            ),
                        ),
                    },
                    providers: Vec::new(),
                };
                self.requester
                    .handle(now_ms, RequesterInput::Result { from: node, result });
            }
        }
    }

    /// Carries the machines' outputs: what stays inside goes round again,
    /// the rest is queued for the driver.
    fn route(&mut self, now_ms: u64) {
        let me = self.me();
        loop {
            let mut progressed = false;
            while let Some(out) = self.requester.poll_output() {
                progressed = true;
                match out {
                    RequesterOutput::Publish(announce) => {
                        // The requester states an input size only for
                        // inputs its own store holds.
                        let held_bytes = announce.input_bytes.unwrap_or(0);
                        let input = ComputeInput::Announce {
                            announce: announce.clone(),
                            held_bytes,
                        };
                        self.compute.handle(now_ms, input);
                        // Past the outbox's bound the oldest waiting one
                        // goes: its job is announced again if no bid comes.
                        let _ = self.outbox.push(announce.job_id, announce);
                    }
                    RequesterOutput::Send { to, msg } if to == me => {
                        let input = match msg {
                            ToCompute::Award(award) => ComputeInput::Award { from: me, award },
                            ToCompute::Cancel(cancel) => ComputeInput::Cancel { from: me, cancel },
                        };
                        self.compute.handle(now_ms, input);
                    }
                    RequesterOutput::Send { to, msg } => {
                        self.out.push_back(NodeOutput::ToCompute { to, msg });
                    }
                    RequesterOutput::Event { job_id, event } => {
                        self.on_job_event(now_ms, job_id, event)
                    }
                }
            }
            while let Some(out) = self.compute.poll_output() {
                progressed = true;
                match out {
                    ComputeOutput::Send { to, msg } if to == me => {
                        let input = match msg {
                            ToRequester::Bid(bid) => RequesterInput::Bid { from: me, bid },
                            ToRequester::Refuse(refuse) => {
                                RequesterInput::Refuse { from: me, refuse }
                            }
                            ToRequester::Decline(decline) => {
                                RequesterInput::Decline { from: me, decline }
                            }
                            ToRequester::Progress(progress) => {
                                RequesterInput::Progress { from: me, progress }
                            }
                            ToRequester::Result(result) => {
                                self.keep_providers(me, &result);
                                RequesterInput::Result { from: me, result }
                            }
                        };
                        self.requester.handle(now_ms, input);
                    }
                    ComputeOutput::Send { to, msg } => {
                        self.out.push_back(NodeOutput::ToRequester {
                            to,
                            msg,
                            attempt: 0,
                        });
                    }
                    ComputeOutput::Start {
                        job_id,
                        execution_id,
                        spec,
                        providers,
                        partition,
                    } => self.out.push_back(NodeOutput::Start {
                        job_id,
                        execution_id,
                        spec,
                        providers,
                        partition,
                    }),
                    ComputeOutput::Stop {
                        job_id,
                        execution_id,
                    } => self.out.push_back(NodeOutput::Stop {
                        job_id,
                        execution_id,
                    }),
                    ComputeOutput::Event { job_id, event } => {
                        self.out
                            .push_back(NodeOutput::ComputeEvent { job_id, event });
                    }
                }
            }
            if !progressed {
                break;
            }
        }
        self.now_ms = now_ms;
        for announce in self.outbox.due(now_ms) {
            self.requester.announcement_sent(&announce.job_id);
            self.out.push_back(NodeOutput::Publish(announce));
        }
    }

    fn on_job_event(&mut self, now_ms: u64, job_id: JobId, event: RequesterEvent) {
        if let RequesterEvent::Completed {
            node,
            execution_id,
            result_cid,
            exit_code,
        } = &event
        {
            let providers = self
                .result_providers
                .remove(&(job_id, *execution_id))
                .unwrap_or_default();
            self.out.push_back(NodeOutput::ResultAccepted {
                job_id,
                execution_id: *execution_id,
                node: *node,
                result_cid: *result_cid,
                exit_code: *exit_code,
                providers,
            });
        }
        let ended = matches!(
            event,
            RequesterEvent::JobCompleted
                | RequesterEvent::JobFailed { .. }
                | RequesterEvent::JobCancelled
        );
        self.out.push_back(NodeOutput::JobEvent { job_id, event });
        if ended {
            self.result_providers.retain(|(j, _), _| *j != job_id);
            if let Some(retention) = self.config.retention_ms {
                self.retire
                    .insert((now_ms.saturating_add(retention), job_id), ());
            }
        }
    }
}

#[cfg(test)]
mod tests;
