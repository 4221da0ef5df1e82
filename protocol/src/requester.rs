//! The requester state machine: one per node, for every job its users
//! submitted (R-POL-3, R-POL-4, R-OPS-2).
//!
//! Sans-IO: the driver feeds it what happened ([`Requester::submit`],
//! [`Requester::handle`], [`Requester::cancel`], [`Requester::restore`],
//! [`Requester::handle_timeout`]) with the current time in milliseconds, and
//! carries out what it asks for ([`Requester::poll_output`]) and wakes it at
//! [`Requester::poll_timeout`]. It reads no clock and draws randomness only
//! from the seed in its [`RequesterConfig`].
//!
//! ```
//! use protocol::id::NodeKey;
//! use protocol::job::JobSpec;
//! use protocol::messages::Bid;
//! use protocol::requester::{Requester, RequesterConfig, RequesterInput, RequesterOutput, ToCompute};
//!
//! let me = NodeKey::from_secret_bytes([1; 32]).node_id();
//! let other = NodeKey::from_secret_bytes([2; 32]).node_id();
//! let mut requester = Requester::new(RequesterConfig::new(me, 42));
//!
//! let spec = JobSpec::parse(
//!     "type: batch\ncount: 1\ntasks:\n  - name: main\n    engine:\n      type: docker\n      \
//!      params:\n        image: busybox\n",
//! )?;
//! let job_id = requester.submit(0, spec, 1_700_000_000_000, vec![])?;
//! assert!(matches!(requester.poll_output(), Some(RequesterOutput::Publish(_))));
//!
//! // A verified bid arrives 12 ms later.
//! let bid = Bid { job_id, bidder: other, running_jobs: 0, held_bytes: 0, fetch_ms: None };
//! requester.handle(12, RequesterInput::Bid { from: other, bid });
//!
//! // The bid window closes at 300 ms and the bidder gets the award.
//! assert_eq!(requester.poll_timeout(), Some(300));
//! requester.handle_timeout(300);
//! let awarded = std::iter::from_fn(|| requester.poll_output()).find_map(|out| match out {
//!     RequesterOutput::Send { to, msg: ToCompute::Award(_) } => Some(to),
//!     _ => None,
//! });
//! assert_eq!(awarded, Some(other));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## One job
//! 1. **Announce.** [`Requester::submit`] names the job, publishes its
//!    [`Announce`] and opens a *bid window* ([`RequesterConfig::bid_window_ms`]).
//!    In a large network the announcement asks only a random draw of the
//!    nodes to answer, a few times the bids the job needs
//!    ([`RequesterConfig::draw_answers`]); each re-announcement draws
//!    more, until everyone.
//! 2. **Award.** When the window closes, the best `Count` bids win: fewest
//!    running jobs first, then the earliest bid (the closest node), then a
//!    draw from the seeded RNG (R-POL-4). Each winner gets an [`Award`] with
//!    a new [`ExecutionId`]. Bids that did not win, and bids arriving later,
//!    are kept as *spares*, at most [`RequesterConfig::max_spares`]; the
//!    others are released with a [`Cancel`] so their nodes' slots free up.
//! 3. **Re-award.** An execution that fails, is declined, or whose node stays
//!    silent past the job's execution timeout plus
//!    [`RequesterConfig::execution_grace_ms`] (that node gets a [`Cancel`])
//!    is replaced by the best spare still open
//!    ([`RequesterConfig::bid_ttl_ms`]), never a node that already had an
//!    attempt at the job. Without a spare the job re-announces (with
//!    doubling intervals) and awards the next bid as soon as it comes, for
//!    as long as its queue timeout allows: 10 s by default, or 10 minutes
//!    once a node said it is only busy ([`RefuseReason::is_passing`]) or
//!    bid: such a node bids when a slot frees up
//!    ([`RequesterConfig::backlog_timeout_ms`]).
//! 4. **End.** An ops job (`Type: ops`) differs: its announcement asks
//!    every node, every bid is awarded as it comes (up to
//!    [`RequesterConfig::max_bids_per_job`] nodes) until its queue timeout,
//!    a failed execution is not given to another node, and it ends once
//!    its queue timeout passed and every execution ended: completed if all
//!    completed, failed naming the nodes that did not. A batch job
//!    completes when `Count` executions completed (any
//!    other outstanding one is cancelled); it fails when its attempts
//!    ([`RequesterConfig::max_attempts`]) are used up, it waited for nodes
//!    longer than its queue timeout, or it ran past its spec's
//!    `TotalTimeout`, with a reason that explains why: the
//!    refusals and node infos grouped and counted (R-POL-3), never an opaque
//!    "not enough nodes".
//!
//! Messages that do not fit are ignored: from a sender other than the node
//! they name, about a job this node did not submit or that has ended, or
//! about an execution that is not the sender's or is no longer running.
//!
//! ## Invariants
//! - A job completes at most once, and never with more than `Count`
//!   completed executions.
//! - A node gets at most one award per job.
//! - Every job ends (completed, failed with a non-empty reason, or cancelled)
//!   once time passes its deadlines: each waiting state has a deadline.
//! - Same seed and same inputs, same outputs: all state is in ordered maps.
//!
//! They are property-tested with many nodes over a simulated network in
//! `testnet.rs`, beside focused tests in `requester/tests.rs`.
//!
//! ## Persistence
//! Each job's whole state is a [`JobRecord`], a plain serde struct: the
//! driver stores it after every [`RequesterEvent`] ([`Requester::job`]) and
//! gives it back to [`Requester::restore`] after a restart, so no job is
//! lost (R-OPS-2). Times in it are the driver's milliseconds, so the driver
//! should pass a clock that survives restarts (Unix time).

mod explain;
mod record;
#[cfg(test)]
mod tests;

pub use record::{BidRecord, ExecutionRecord, ExecutionState, JobRecord, JobState, JobTimers};

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use cid::Cid;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::failure::{Failure, FailureCause};
use crate::id::{EncodeError, ExecutionId, JobId, NodeId};
use crate::job::{JobErrors, JobSpec, NetworkMode};
use crate::messages::{
    Announce, Award, Bid, Cancel, DRAW_ALL_PPM, Decline, MessageError, NodeInfo, Outcome, Progress,
    Refuse, ResultMsg,
};
use crate::policy::RefuseReason;

/// How a [`Requester`] behaves. [`RequesterConfig::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequesterConfig {
    /// This node: the requester named in its announcements.
    pub node: NodeId,
    /// How long bids are collected after the first announcement before the
    /// best are awarded. Default 300 ms: nodes on a LAN answer in a few ms.
    pub bid_window_ms: u64,
    /// Longest a job waits for a node that could run it when its spec sets
    /// no `QueueTimeout`: while no node has bid on it or refused it only
    /// for being busy. Default 10 s, so a job nobody can run fails fast.
    pub queue_timeout_ms: u64,
    /// Longest a job waits when its spec sets no `QueueTimeout` and nodes
    /// that could run it are busy: one of them bid, or refused only for
    /// want of a free slot or resource or for its requester's share (a
    /// passing refusal, [`RefuseReason::is_passing`]). Such a job is queued
    /// through a backlog: those nodes bid when a slot frees up. Default 10
    /// min.
    pub backlog_timeout_ms: u64,
    /// Longest re-announcement interval: while a job waits, it re-announces
    /// after one bid window, then after twice as long, and so on up to this.
    /// Default 2 s.
    pub max_reannounce_ms: u64,
    /// Longest re-announcement interval of a job queued behind busy nodes
    /// (see [`RequesterConfig::backlog_timeout_ms`]): those nodes remember
    /// it and bid when they can, so re-announcing is only for nodes that
    /// forgot it or joined since, and a backlog of thousands of jobs does
    /// not flood the network. Default 10 s.
    pub max_backlog_reannounce_ms: u64,
    /// Execution timeout assumed when the spec sets no `ExecutionTimeout`.
    /// Default 10 min.
    pub execution_timeout_ms: u64,
    /// Added to the execution timeout before an awarded node that sent
    /// nothing counts as silent (input fetching, publishing, clock drift).
    /// Default 30 s.
    pub execution_grace_ms: u64,
    /// How long a bid is taken to stay open at its node. Older spares are
    /// not awarded (the node would decline): the job re-announces and the
    /// node bids again. Keep it below the compute nodes'
    /// [`crate::compute::ComputeConfig::bid_ttl_ms`] by a network delay.
    /// Default 2.5 s.
    pub bid_ttl_ms: u64,
    /// Awards per job, first ones included, before the job fails. A job
    /// always gets at least `Count`. Default 5.
    pub max_attempts: u32,
    /// Bids kept per job (the best ones). Default 128.
    pub max_bids_per_job: usize,
    /// Spare bids kept once a job has its awards, for quick re-awards; the
    /// others are released at once (their nodes get a [`Cancel`]). Default 2.
    pub max_spares: usize,
    /// Refusals remembered one by one per job; beyond that they are only
    /// counted by reason. Default 256.
    pub max_refusals_per_job: usize,
    /// Node infos remembered (to explain refusals); later nodes are ignored
    /// until [`Requester::forget_node`]. Default 1024.
    pub max_known_nodes: usize,
    /// Answers (bids and refusals) a job's first announcement asks for,
    /// per execution of its `Count`, once the network's size is known
    /// ([`Requester::set_network_size`], or the node infos heard): the
    /// announcement draws about that many nodes at random
    /// ([`Announce::draw_ppm`]) instead of asking every node, so a job's
    /// bid traffic, and the slots its open bids hold, do not grow with the
    /// network. A re-announcement draws [`DRAW_WIDENING`] times as many as
    /// the one before, until it asks every node, so a job that few nodes
    /// can take still hears from all of them; only the first
    /// re-announcement of a wait for a replacement keeps the draw, when
    /// enough nodes of it bid before and were not tried (their bids merely
    /// expired). 0: always ask every node.
    /// Default 24.
    pub draw_answers: u32,
    /// Seeds the RNG that breaks ties between equal bids.
    pub seed: u64,
}

/// [`RequesterConfig::backlog_timeout_ms`] by default: 10 minutes.
pub const DEFAULT_BACKLOG_TIMEOUT_MS: u64 = 10 * 60 * 1000;

/// How much wider each re-announcement's draw is than the last
/// ([`RequesterConfig::draw_answers`]).
pub const DRAW_WIDENING: u32 = 4;

impl RequesterConfig {
    /// The defaults for `node`, with `seed`.
    pub fn new(node: NodeId, seed: u64) -> RequesterConfig {
        RequesterConfig {
            node,
            bid_window_ms: 300,
            queue_timeout_ms: 10_000,
            backlog_timeout_ms: DEFAULT_BACKLOG_TIMEOUT_MS,
            max_reannounce_ms: 2_000,
            max_backlog_reannounce_ms: 10_000,
            execution_timeout_ms: 10 * 60 * 1000,
            execution_grace_ms: 30_000,
            bid_ttl_ms: 2_500,
            max_attempts: 5,
            max_bids_per_job: 128,
            max_spares: 2,
            max_refusals_per_job: 256,
            max_known_nodes: 1024,
            draw_answers: 24,
            seed,
        }
    }
}

/// What happened, for the requester to act on ([`Requester::handle`]).
///
/// Each message has already been verified by the driver; `from` is its
/// authenticated signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequesterInput {
    /// A compute node bids.
    Bid {
        /// The signer.
        from: NodeId,
        /// The bid.
        bid: Bid,
    },
    /// A compute node refuses.
    Refuse {
        /// The signer.
        from: NodeId,
        /// The refusal.
        refuse: Refuse,
    },
    /// An awarded node will not run its award after all.
    Decline {
        /// The signer.
        from: NodeId,
        /// The decline.
        decline: Decline,
    },
    /// An awarded node reports where its execution is.
    Progress {
        /// The signer.
        from: NodeId,
        /// The progress.
        progress: Progress,
    },
    /// An awarded node reports how its execution ended.
    Result {
        /// The signer.
        from: NodeId,
        /// The result.
        result: ResultMsg,
    },
    /// A node's gossiped description of itself.
    NodeInfo {
        /// The signer.
        from: NodeId,
        /// The node info.
        info: NodeInfo,
    },
}

/// A direct message for a compute node; the driver signs and sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToCompute {
    /// Run the job.
    Award(Award),
    /// Stop the job.
    Cancel(Cancel),
}

/// What the requester asks the driver to do ([`Requester::poll_output`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequesterOutput {
    /// Sign and gossip this announcement.
    Publish(Announce),
    /// Sign and send `msg` to `to`.
    Send {
        /// The compute node.
        to: NodeId,
        /// The message.
        msg: ToCompute,
    },
    /// Something happened to a job: store [`Requester::job`] and tell
    /// whoever watches it.
    Event {
        /// The job.
        job_id: JobId,
        /// What happened.
        event: RequesterEvent,
    },
}

/// A step in a job's life, for persistence and progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RequesterEvent {
    /// The job was (re-)announced.
    Announced,
    /// A node bid.
    BidReceived {
        /// The bidder.
        node: NodeId,
    },
    /// A node refused.
    Refused {
        /// The node.
        node: NodeId,
        /// Why.
        reason: RefuseReason,
    },
    /// A node was awarded an execution.
    Awarded {
        /// The node.
        node: NodeId,
        /// The execution.
        execution_id: ExecutionId,
    },
    /// An awarded node said where its execution is (issue 16).
    Progress {
        /// The node.
        node: NodeId,
        /// The execution.
        execution_id: ExecutionId,
        /// Where it is.
        step: crate::messages::Step,
    },
    /// An execution failed, was declined or its node went silent.
    ExecutionFailed {
        /// The node.
        node: NodeId,
        /// The execution.
        execution_id: ExecutionId,
        /// Why.
        #[serde(
            alias = "reason",
            deserialize_with = "crate::failure::failure_or_reason"
        )]
        failure: Failure,
    },
    /// An execution completed.
    Completed {
        /// The node.
        node: NodeId,
        /// The execution.
        execution_id: ExecutionId,
        /// Its results.
        #[serde(with = "crate::id::cid_string")]
        result_cid: Cid,
        /// The task's exit code.
        exit_code: i32,
    },
    /// `Count` executions completed: the job is done.
    JobCompleted,
    /// The job failed.
    JobFailed {
        /// Why, explained (R-POL-3).
        #[serde(
            alias = "reason",
            deserialize_with = "crate::failure::failure_or_reason"
        )]
        failure: Failure,
    },
    /// The job was cancelled by its user.
    JobCancelled,
}

/// What a node knows of another from its [`NodeInfo`], to explain refusals.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KnownNode {
    seq: u64,
    engines: Vec<String>,
    accept_network: NetworkMode,
    has_allowlist: bool,
    full: bool,
    /// What it offers a task at most (R-PLC-1).
    offer: crate::job::Resources,
}

/// Where a job's CID inputs come from, and what the submitting node
/// knows of them ([`Requester::submit_with`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// Where the inputs can be fetched (see [`Announce::providers`]).
    pub providers: Vec<String>,
    /// Their size, summed, when this node holds them all.
    pub input_bytes: Option<u64>,
    /// The rate this node serves blobs at, bits per second, if known.
    pub source_bps: Option<u64>,
}

/// Why a job could not be submitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The job breaks the job rules.
    #[error("the job is invalid: {0}")]
    Invalid(JobErrors),
    /// The job could not be encoded to compute its id.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The announcement would not pass the network's checks (too large,
    /// too many providers).
    #[error("the job cannot be announced: {0}")]
    Message(#[from] MessageError),
    /// This node already has a job with this id (same spec, same time).
    #[error("job {0} was already submitted")]
    Duplicate(JobId),
}

/// Why a job could not be cancelled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CancelError {
    /// This node has no such job.
    #[error("no job {0} on this node: `skrei job list` shows the jobs it has")]
    UnknownJob(JobId),
    /// The job has already ended.
    #[error("job {0} has already ended ({1})")]
    AlreadyEnded(JobId, &'static str),
}

/// The requester state machine. See the [module docs](self).
#[derive(Debug)]
pub struct Requester {
    config: RequesterConfig,
    rng: ChaCha8Rng,
    jobs: BTreeMap<JobId, JobRecord>,
    /// Each job that has a deadline, by that deadline.
    timers: BTreeSet<(u64, JobId)>,
    /// The deadline under which each job sits in `timers`.
    timer_of: BTreeMap<JobId, u64>,
    known: BTreeMap<NodeId, KnownNode>,
    /// The driver's estimate of the network's size (0: unknown).
    network_size: u64,
    outputs: VecDeque<RequesterOutput>,
}

impl Requester {
    /// A requester with no jobs.
    pub fn new(config: RequesterConfig) -> Requester {
        Requester {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            jobs: BTreeMap::new(),
            timers: BTreeSet::new(),
            timer_of: BTreeMap::new(),
            known: BTreeMap::new(),
            network_size: 0,
            outputs: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RequesterConfig {
        &self.config
    }

    /// Takes a job from a local user: names it, announces it and starts
    /// collecting bids. `submitted_at_ms` is part of the job id; `providers`
    /// say where its CID inputs can be fetched.
    pub fn submit(
        &mut self,
        now_ms: u64,
        spec: JobSpec,
        submitted_at_ms: u64,
        providers: Vec<String>,
    ) -> Result<JobId, SubmitError> {
        let sources = Sources {
            providers,
            ..Sources::default()
        };
        self.submit_with(now_ms, spec, submitted_at_ms, sources)
    }

    /// [`Requester::submit`], saying where the inputs come from and what
    /// this node knows of them.
    pub fn submit_with(
        &mut self,
        now_ms: u64,
        spec: JobSpec,
        submitted_at_ms: u64,
        sources: Sources,
    ) -> Result<JobId, SubmitError> {
        spec.validate().map_err(SubmitError::Invalid)?;
        let count = spec.count;
        let ops = spec.r#type == crate::job::JobType::Ops;
        let mut announce =
            Announce::new(spec, self.config.node, submitted_at_ms, sources.providers)?;
        // An ops job asks every node.
        announce.draw_ppm = if ops { None } else { self.first_draw(count) };
        announce.input_bytes = sources.input_bytes;
        announce.source_bps = sources.source_bps.filter(|b| *b > 0);
        crate::messages::Message::check(&announce)?;
        let job_id = announce.job_id;
        if self.jobs.contains_key(&job_id) {
            return Err(SubmitError::Duplicate(job_id));
        }
        let timeouts = announce.spec.task().timeouts;
        let secs = |s: u64| s.saturating_mul(1000);
        let spec_queue_timeout_ms = timeouts.queue_timeout.filter(|s| *s > 0).map(secs);
        let record = JobRecord {
            queue_timeout_ms: spec_queue_timeout_ms.unwrap_or(self.config.queue_timeout_ms),
            backlog_timeout_ms: spec_queue_timeout_ms.unwrap_or(self.config.backlog_timeout_ms),
            busy_refusals: 0,
            unsent: false,
            silence_after_ms: timeouts
                .execution_ms_or(self.config.execution_timeout_ms)
                .saturating_add(self.config.execution_grace_ms),
            // An ops job runs once on each node that bids, up to as many
            // nodes as a job keeps bids.
            max_attempts: if ops {
                u32::try_from(self.config.max_bids_per_job).unwrap_or(u32::MAX)
            } else {
                self.config.max_attempts.max(announce.spec.count)
            },
            ends_by_ms: timeouts
                .total_timeout
                .filter(|s| *s > 0)
                .map(|s| now_ms.saturating_add(secs(s))),
            announce,
            state: JobState::Bidding,
            executions: Vec::new(),
            bids: Vec::new(),
            refusals: BTreeMap::new(),
            more_refusals: BTreeMap::new(),
            bids_received: 0,
            timers: JobTimers {
                waiting_since_ms: Some(now_ms),
                ..JobTimers::default()
            },
        };
        self.jobs.insert(job_id, record);
        self.open_window(now_ms, job_id);
        self.reindex(job_id);
        Ok(job_id)
    }

    /// Takes a job back after a restart (R-OPS-2), as [`Requester::job`]
    /// gave it before. A job that had not ended resumes: it re-announces and
    /// collects bids for a window if it needs nodes, and keeps waiting for
    /// its running executions until their deadlines. A job this requester
    /// already has is replaced.
    pub fn restore(&mut self, now_ms: u64, record: JobRecord) {
        let job_id = record.job_id();
        let ended = record.state.is_terminal();
        self.jobs.insert(job_id, record);
        if !ended && self.jobs.get(&job_id).is_some_and(|j| j.needed() > 0) {
            self.open_window(now_ms, job_id);
        }
        self.reindex(job_id);
    }

    /// Feeds one input. Inputs that do not fit are ignored (see the
    /// [module docs](self)).
    pub fn handle(&mut self, now_ms: u64, input: RequesterInput) {
        match input {
            RequesterInput::Bid { from, bid } => self.on_bid(now_ms, from, bid),
            RequesterInput::Refuse { from, refuse } => self.on_refuse(now_ms, from, refuse),
            RequesterInput::Decline { from, decline } => self.on_decline(now_ms, from, decline),
            RequesterInput::Result { from, result } => self.on_result(now_ms, from, result),
            RequesterInput::Progress { from, progress } => self.on_progress(from, progress),
            RequesterInput::NodeInfo { from, info } => self.on_node_info(from, info),
        }
    }

    /// The user cancels a job: every running execution is cancelled and
    /// the job ends.
    pub fn cancel(&mut self, job_id: JobId, reason: &str) -> Result<(), CancelError> {
        let job = self
            .jobs
            .get(&job_id)
            .ok_or(CancelError::UnknownJob(job_id))?;
        if job.state.is_terminal() {
            return Err(CancelError::AlreadyEnded(job_id, job.state.name()));
        }
        let reason = truncate(&format!("cancelled by its user: {reason}"));
        self.cancel_active(job_id, &reason);
        if let Some(job) = self.jobs.get_mut(&job_id) {
            job.state = JobState::Cancelled;
            job.timers = JobTimers::default();
        }
        self.event(job_id, RequesterEvent::JobCancelled);
        self.reindex(job_id);
        Ok(())
    }

    /// Wakes the requester: acts on every deadline at or before `now_ms`.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        while let Some(&(at, job_id)) = self.timers.first() {
            if at > now_ms {
                break;
            }
            self.timers.pop_first();
            self.timer_of.remove(&job_id);
            self.on_deadlines(now_ms, job_id);
            self.reindex(job_id);
        }
    }

    /// The next thing for the driver to do, if any.
    pub fn poll_output(&mut self) -> Option<RequesterOutput> {
        self.outputs.pop_front()
    }

    /// When to call [`Requester::handle_timeout`] next, if anything waits.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// A job's record.
    pub fn job(&self, job_id: &JobId) -> Option<&JobRecord> {
        self.jobs.get(job_id)
    }

    /// Every job's record, by id.
    pub fn jobs(&self) -> impl Iterator<Item = &JobRecord> {
        self.jobs.values()
    }

    /// Drops an ended job's record (after the driver stored it). Returns
    /// it, or `None` if the job is unknown or has not ended.
    pub fn forget(&mut self, job_id: &JobId) -> Option<JobRecord> {
        if self.jobs.get(job_id)?.state.is_terminal() {
            self.jobs.remove(job_id)
        } else {
            None
        }
    }

    /// Tells how many nodes the network has, as the driver estimates it
    /// (peers it has heard of); 0: unknown. New jobs draw
    /// [`RequesterConfig::draw_answers`] of them to answer their first
    /// announcement. Without an estimate, the node infos heard count; with
    /// neither, every node is asked. An estimate too low only asks more
    /// nodes than needed.
    pub fn set_network_size(&mut self, nodes: u64) {
        self.network_size = nodes;
    }

    /// Drops what is known of a node (it left the network).
    pub fn forget_node(&mut self, node: &NodeId) {
        self.known.remove(node);
    }

    // --- inputs ---------------------------------------------------------

    fn on_bid(&mut self, now_ms: u64, from: NodeId, bid: Bid) {
        if from != bid.bidder {
            return;
        }
        let max_bids = self.config.max_bids_per_job;
        // Every bid holds a slot on its node until its TTL: a bid this
        // requester will never award is released at once, or a node that
        // bids late (after a restart, or on an announcement it queued) sits
        // on slots for jobs that are already placed elsewhere.
        let Some(job) = self.live_job(&bid.job_id) else {
            let reason = match self.jobs.get(&bid.job_id) {
                Some(job) => format!("the job has ended ({})", job.state.name()),
                None => "this node has no open job with that id".to_owned(),
            };
            self.release_bid(from, bid.job_id, reason);
            return;
        };
        if job.tried(&from) {
            let reason = "your node already had an attempt at the job".to_owned();
            self.release_bid(from, bid.job_id, reason);
            return;
        }
        // A repeated bid (the node's earlier one expired and it bid again on
        // a re-announcement) replaces the earlier one: it is fresh again.
        let repeated = match job.bids.iter().position(|b| b.node == from) {
            Some(at) => {
                job.bids.remove(at);
                true
            }
            None => false,
        };
        if !repeated {
            job.bids_received = job.bids_received.saturating_add(1);
        }
        // It takes the job after all (a slot freed up, its policy changed).
        job.refusals.remove(&from);
        let record = BidRecord {
            node: from,
            running_jobs: bid.running_jobs,
            received_at_ms: now_ms,
            tiebreak: self.rng.next_u64(),
            fetch_ms: bid.fetch_ms,
            held_bytes: bid.held_bytes,
        };
        let Some(job) = self.jobs.get_mut(&bid.job_id) else {
            return;
        };
        let at = job.bids.partition_point(|b| b.rank() < record.rank());
        if at >= max_bids {
            let reason = format!("the job has {max_bids} better bids");
            self.release_bid(from, bid.job_id, reason);
            return;
        }
        job.bids.insert(at, record);
        job.bids.truncate(max_bids);
        if !repeated {
            self.event(bid.job_id, RequesterEvent::BidReceived { node: from });
        }
        self.refill(now_ms, bid.job_id);
        self.reindex(bid.job_id);
        self.close_window_if_all_answered(now_ms, bid.job_id);
    }

    fn on_refuse(&mut self, now_ms: u64, from: NodeId, refuse: Refuse) {
        if from != refuse.node {
            return;
        }
        let max = self.config.max_refusals_per_job;
        let Some(job) = self.live_job(&refuse.job_id) else {
            return;
        };
        if job.refusals.contains_key(&from) {
            return;
        }
        if refuse.reason.is_passing() {
            job.busy_refusals = job.busy_refusals.saturating_add(1);
        }
        if job.refusals.len() < max {
            job.refusals.insert(from, refuse.reason.clone());
        } else {
            let count = job
                .more_refusals
                .entry(explain::summary(&refuse.reason))
                .or_default();
            *count = count.saturating_add(1);
        }
        self.event(
            refuse.job_id,
            RequesterEvent::Refused {
                node: from,
                reason: refuse.reason,
            },
        );
        self.close_window_if_all_answered(now_ms, refuse.job_id);
    }

    /// Awards at once, without waiting for the bid window to close, when
    /// every node this requester knows of (from node info) that the job's
    /// draw asks has answered: no better bid can come from a known node.
    /// Nodes it has not heard of yet may still bid; they become spares.
    fn close_window_if_all_answered(&mut self, now_ms: u64, job_id: JobId) {
        let Some(job) = self.jobs.get(&job_id).filter(|j| !j.state.is_terminal()) else {
            return;
        };
        if job.timers.collect_until_ms.is_none() || self.known.is_empty() {
            return;
        }
        let answered = |n: &NodeId| {
            job.refusals.contains_key(n) || job.bids.iter().any(|b| b.node == *n) || job.tried(n)
        };
        let waiting = self
            .known
            .keys()
            .any(|n| job.announce.draws(n) && !answered(n));
        if waiting || job.bids.is_empty() {
            return;
        }
        if let Some(job) = self.jobs.get_mut(&job_id) {
            job.timers.collect_until_ms = None;
        }
        self.refill(now_ms, job_id);
        self.reindex(job_id);
    }

    fn on_decline(&mut self, now_ms: u64, from: NodeId, decline: Decline) {
        if from != decline.node {
            return;
        }
        let failure = Failure::new(
            FailureCause::Declined,
            format!("declined the award: {}", decline.reason),
        );
        self.fail_execution(now_ms, decline.job_id, decline.execution_id, from, failure);
    }

    /// Records the step an awarded execution reports; others are ignored.
    fn on_progress(&mut self, from: NodeId, progress: Progress) {
        if from != progress.node {
            return;
        }
        let job_id = progress.job_id;
        let Some(job) = self.live_job(&job_id) else {
            return;
        };
        let Some(execution) = job.executions.iter_mut().find(|e| {
            e.execution_id == progress.execution_id
                && e.node == from
                && e.state == ExecutionState::Awarded
        }) else {
            return;
        };
        if execution.step.as_ref() == Some(&progress.step) {
            return;
        }
        execution.step = Some(progress.step.clone());
        self.event(
            job_id,
            RequesterEvent::Progress {
                node: from,
                execution_id: progress.execution_id,
                step: progress.step,
            },
        );
    }

    fn on_result(&mut self, now_ms: u64, from: NodeId, result: ResultMsg) {
        if from != result.node {
            return;
        }
        match result.outcome {
            Outcome::Failed { failure } => {
                self.fail_execution(now_ms, result.job_id, result.execution_id, from, failure);
            }
            Outcome::Completed {
                result_cid,
                exit_code,
            } => {
                let job_id = result.job_id;
                let Some(job) = self.live_job(&job_id) else {
                    return;
                };
                let Some(execution) = job.executions.iter_mut().find(|e| {
                    e.execution_id == result.execution_id
                        && e.node == from
                        && e.state == ExecutionState::Awarded
                }) else {
                    return;
                };
                execution.state = ExecutionState::Completed {
                    result_cid,
                    exit_code,
                };
                let ops = job.is_ops();
                let done = !ops && job.completed() >= job.count() as usize;
                self.event(
                    job_id,
                    RequesterEvent::Completed {
                        node: from,
                        execution_id: result.execution_id,
                        result_cid,
                        exit_code,
                    },
                );
                if ops {
                    self.finish_ops_if_done(job_id);
                } else if done {
                    self.cancel_active(job_id, "the job completed on other nodes");
                    if let Some(job) = self.jobs.get_mut(&job_id) {
                        job.state = JobState::Completed;
                        job.timers = JobTimers::default();
                    }
                    self.event(job_id, RequesterEvent::JobCompleted);
                } else {
                    self.update_state(job_id);
                }
                self.reindex(job_id);
            }
        }
    }

    fn on_node_info(&mut self, from: NodeId, info: NodeInfo) {
        if from != info.node {
            return;
        }
        if let Some(known) = self.known.get(&from)
            && known.seq >= info.seq
        {
            return;
        }
        if !self.known.contains_key(&from) && self.known.len() >= self.config.max_known_nodes {
            return;
        }
        self.known.insert(
            from,
            KnownNode {
                seq: info.seq,
                engines: info.engines,
                accept_network: info.accept_network,
                has_allowlist: info.allowlist_digest.is_some(),
                full: info.running >= info.capacity,
                offer: info.resources.into(),
            },
        );
    }

    // --- the rules ------------------------------------------------------

    /// The share of the network a new job's first announcement asks, in
    /// parts per million; `None`: everyone.
    fn first_draw(&self, count: u32) -> Option<u32> {
        let nodes = self.network_size.max(self.known.len() as u64);
        let wanted = u64::from(self.config.draw_answers).saturating_mul(u64::from(count.max(1)));
        if wanted == 0 || nodes == 0 {
            return None;
        }
        let ppm = wanted
            .saturating_mul(u64::from(DRAW_ALL_PPM))
            .div_ceil(nodes);
        u32::try_from(ppm).ok().filter(|p| *p < DRAW_ALL_PPM)
    }

    /// Tells `node` that its bid on the job will not be awarded, so the
    /// slot the bid holds frees up now rather than at the bid's TTL.
    fn release_bid(&mut self, node: NodeId, job_id: JobId, why: String) {
        self.outputs.push_back(RequesterOutput::Send {
            to: node,
            msg: ToCompute::Cancel(Cancel {
                job_id,
                reason: format!("{why}; your bid is released"),
            }),
        });
    }

    /// The first announcement of `job_id` waits in its node's outbox
    /// ([`crate::node::Node`] paces what it sends): until it leaves, a
    /// failure says so rather than blaming the nodes.
    pub fn announcement_waiting(&mut self, job_id: &JobId) {
        if let Some(job) = self.jobs.get_mut(job_id) {
            job.unsent = true;
        }
    }

    /// An announcement of `job_id` left this node.
    pub fn announcement_sent(&mut self, job_id: &JobId) {
        if let Some(job) = self.jobs.get_mut(job_id) {
            job.unsent = false;
        }
    }

    /// The job, if it exists and has not ended.
    fn live_job(&mut self, job_id: &JobId) -> Option<&mut JobRecord> {
        self.jobs.get_mut(job_id).filter(|j| !j.state.is_terminal())
    }

    /// Announces the job and collects bids for one window.
    fn open_window(&mut self, now_ms: u64, job_id: JobId) {
        let window = self.config.bid_window_ms;
        let Some(job) = self.live_job(&job_id) else {
            return;
        };
        job.timers.collect_until_ms = Some(now_ms.saturating_add(window));
        job.timers.waiting_since_ms.get_or_insert(now_ms);
        job.timers.reannounce_at_ms = None;
        job.timers.reannounce_interval_ms = window.max(1);
        let announce = job.announce.clone();
        self.outputs.push_back(RequesterOutput::Publish(announce));
        self.event(job_id, RequesterEvent::Announced);
    }

    fn on_deadlines(&mut self, now_ms: u64, job_id: JobId) {
        let window = self.config.bid_window_ms.max(1);
        let Some(job) = self.jobs.get(&job_id).filter(|j| !j.state.is_terminal()) else {
            return;
        };
        if job.ends_by_ms.is_some_and(|t| t <= now_ms) {
            let failure = explain::total_timeout(job, &self.known);
            self.fail_job(job_id, failure);
            return;
        }
        let Some(job) = self.live_job(&job_id) else {
            return;
        };
        // Silent nodes first: they free places that spares can take.
        let silent: Vec<(ExecutionId, NodeId)> = job
            .executions
            .iter()
            .filter(|e| e.state == ExecutionState::Awarded && e.deadline_ms <= now_ms)
            .map(|e| (e.execution_id, e.node))
            .collect();
        let silence = explain::duration(job.silence_after_ms);
        for (execution_id, node) in silent {
            self.outputs.push_back(RequesterOutput::Send {
                to: node,
                msg: ToCompute::Cancel(Cancel {
                    job_id,
                    reason: format!(
                        "no result within {silence}: the job was given to another node"
                    ),
                }),
            });
            let failure = Failure::new(
                FailureCause::NodeSilent,
                format!("no answer from the node within {silence}"),
            );
            self.fail_execution(now_ms, job_id, execution_id, node, failure);
        }
        let Some(job) = self.live_job(&job_id) else {
            return;
        };
        if job.timers.collect_until_ms.is_some_and(|t| t <= now_ms) {
            job.timers.collect_until_ms = None;
            self.refill(now_ms, job_id);
        }
        let Some(job) = self
            .jobs
            .get_mut(&job_id)
            .filter(|j| !j.state.is_terminal())
        else {
            return;
        };
        if let Some(since) = job.timers.waiting_since_ms
            && since.saturating_add(job.wait_limit_ms()) <= now_ms
            && job.is_ops()
            && !job.executions.is_empty()
        {
            // The nodes that bid in time have it: wait for them to finish.
            job.timers.waiting_since_ms = None;
            job.timers.reannounce_at_ms = None;
            let late: Vec<NodeId> = job.bids.drain(..).map(|b| b.node).collect();
            for node in late {
                let reason = "the ops job stopped taking nodes at its queue timeout".to_owned();
                self.release_bid(node, job_id, reason);
            }
            self.finish_ops_if_done(job_id);
            return;
        }
        if let Some(since) = job.timers.waiting_since_ms
            && since.saturating_add(job.wait_limit_ms()) <= now_ms
        {
            let failure = explain::queue_timeout(job, &self.known);
            self.fail_job(job_id, failure);
            return;
        }
        // When the inputs cannot leave this node in time, only nodes that
        // hold them bid or say they are busy (the others refuse for good);
        // fewer of them left than the job still needs: it can never
        // complete. (Past the cap on remembered refusals some went
        // uncounted: wait.)
        if job.timers.reannounce_at_ms.is_some_and(|t| t <= now_ms)
            && !job.is_ops()
            && job.untried_willing_nodes() < job.needed()
            && job.refusals.len() < self.config.max_refusals_per_job
            && let Some(failure) =
                explain::inputs_out_of_reach(job, &self.known, self.config.execution_timeout_ms)
        {
            self.fail_job(job_id, failure);
            return;
        }
        if job.timers.reannounce_at_ms.is_some_and(|t| t <= now_ms) {
            // The first re-announcement of a wait draws the same nodes when
            // enough of them bid before and were not tried: their bids only
            // expired (they bid again). Otherwise the nodes drawn so far
            // were not enough: ask more.
            let first_of_wait = job.timers.reannounce_interval_ms <= window;
            let untried_bidders = (job.bids_received as usize).saturating_sub(job.executions.len());
            if !(first_of_wait && untried_bidders >= job.needed()) {
                job.announce.draw_ppm = job.announce.draw_ppm.and_then(|ppm| {
                    let wider = u64::from(ppm.max(1)) * u64::from(DRAW_WIDENING);
                    u32::try_from(wider).ok().filter(|p| *p < DRAW_ALL_PPM)
                });
            }
            let max_interval = if job.queued_behind_busy_nodes() {
                self.config
                    .max_backlog_reannounce_ms
                    .max(self.config.max_reannounce_ms)
            } else {
                self.config.max_reannounce_ms
            };
            let interval = job
                .timers
                .reannounce_interval_ms
                .saturating_mul(2)
                .min(max_interval)
                .max(1);
            job.timers.reannounce_interval_ms = interval;
            job.timers.reannounce_at_ms = Some(now_ms.saturating_add(interval));
            let announce = job.announce.clone();
            self.outputs.push_back(RequesterOutput::Publish(announce));
            self.event(job_id, RequesterEvent::Announced);
        }
    }

    /// Marks an awarded execution failed (if `node` is its node and it is
    /// still awarded) and finds a replacement.
    fn fail_execution(
        &mut self,
        now_ms: u64,
        job_id: JobId,
        execution_id: ExecutionId,
        node: NodeId,
        failure: Failure,
    ) {
        let Some(job) = self.live_job(&job_id) else {
            return;
        };
        let Some(execution) = job.executions.iter_mut().find(|e| {
            e.execution_id == execution_id && e.node == node && e.state == ExecutionState::Awarded
        }) else {
            return;
        };
        execution.state = ExecutionState::Failed {
            failure: failure.clone(),
        };
        self.event(
            job_id,
            RequesterEvent::ExecutionFailed {
                node,
                execution_id,
                failure,
            },
        );
        self.refill(now_ms, job_id);
        self.reindex(job_id);
    }

    /// Awards spares until the job has `Count` executions running or done;
    /// when spares run out, waits for more (re-announcing) or fails.
    fn refill(&mut self, now_ms: u64, job_id: JobId) {
        let window = self.config.bid_window_ms.max(1);
        let bid_ttl = self.config.bid_ttl_ms;
        let max_spares = self.config.max_spares;
        let Some(job) = self.live_job(&job_id) else {
            return;
        };
        if job.timers.collect_until_ms.is_some() {
            // Still collecting the first bids: award when the window closes.
            return;
        }
        // A bid its node no longer holds open would only be declined, and
        // use up an attempt: drop it. The node bids again when the job is
        // re-announced.
        job.bids
            .retain(|b| b.received_at_ms.saturating_add(bid_ttl) > now_ms);
        if job.is_ops() {
            self.refill_ops(now_ms, job_id);
            return;
        }
        let mut awards = Vec::new();
        while job.needed() > 0
            && (job.executions.len() as u64) < u64::from(job.max_attempts)
            && !job.bids.is_empty()
        {
            let bid = job.bids.remove(0);
            let partition = job.free_partitions().next().unwrap_or(0);
            let execution_id = job.add_execution(bid.node, now_ms, partition);
            awards.push((bid.node, execution_id, partition));
        }
        let needed = job.needed();
        let exhausted = (job.executions.len() as u64) >= u64::from(job.max_attempts);
        if needed == 0 {
            job.timers.waiting_since_ms = None;
            job.timers.reannounce_at_ms = None;
        } else if !exhausted {
            job.timers.waiting_since_ms.get_or_insert(now_ms);
            if job.timers.reannounce_at_ms.is_none() {
                job.timers.reannounce_interval_ms = window;
                job.timers.reannounce_at_ms = Some(now_ms.saturating_add(window));
            }
        }
        // Every bid holds a slot on its node until it expires: once the job
        // has its awards, spares beyond a few are let go, so nodes can bid
        // on other jobs (with every node bidding on every job, held slots
        // would cap a network's throughput at capacity / bid TTL).
        let released = if needed == 0 && job.bids.len() > max_spares {
            job.bids.split_off(max_spares)
        } else {
            Vec::new()
        };
        for bid in released {
            let reason = "another node took the job".to_owned();
            self.release_bid(bid.node, job_id, reason);
        }
        for (node, execution_id, partition) in awards {
            self.send_award(job_id, node, execution_id, partition);
        }
        if needed > 0
            && exhausted
            && let Some(job) = self.jobs.get(&job_id)
        {
            let failure = explain::attempts_exhausted(job);
            self.fail_job(job_id, failure);
            return;
        }
        self.update_state(job_id);
    }

    /// An ops job awards every open bid while it takes nodes (one
    /// execution per node, never re-awarded), and ends once it stopped
    /// taking nodes and every execution ended.
    fn refill_ops(&mut self, now_ms: u64, job_id: JobId) {
        let window = self.config.bid_window_ms.max(1);
        let Some(job) = self.live_job(&job_id) else {
            return;
        };
        let taking = job.taking_nodes();
        let mut awards = Vec::new();
        let mut released = Vec::new();
        for bid in std::mem::take(&mut job.bids) {
            if taking && (job.executions.len() as u64) < u64::from(job.max_attempts) {
                let execution_id = job.add_execution(bid.node, now_ms, 0);
                awards.push((bid.node, execution_id));
            } else {
                released.push(bid.node);
            }
        }
        // Nodes that join or free a slot later still hear of it.
        if taking && job.timers.reannounce_at_ms.is_none() {
            job.timers.reannounce_interval_ms = window;
            job.timers.reannounce_at_ms = Some(now_ms.saturating_add(window));
        }
        for node in released {
            let reason = "the ops job takes no more nodes".to_owned();
            self.release_bid(node, job_id, reason);
        }
        for (node, execution_id) in awards {
            self.send_award(job_id, node, execution_id, 0);
        }
        self.finish_ops_if_done(job_id);
    }

    fn send_award(
        &mut self,
        job_id: JobId,
        node: NodeId,
        execution_id: ExecutionId,
        partition: u32,
    ) {
        self.outputs.push_back(RequesterOutput::Send {
            to: node,
            msg: ToCompute::Award(Award {
                job_id,
                execution_id,
                node,
                partition,
            }),
        });
        self.event(job_id, RequesterEvent::Awarded { node, execution_id });
    }

    /// Ends an ops job that takes no more nodes and has no execution
    /// running: completed when every node completed it, failed otherwise.
    fn finish_ops_if_done(&mut self, job_id: JobId) {
        let Some(job) = self.live_job(&job_id) else {
            return;
        };
        if job.taking_nodes() || job.active() > 0 || job.executions.is_empty() {
            self.update_state(job_id);
            return;
        }
        if job.completed() == job.executions.len() {
            job.state = JobState::Completed;
            job.timers = JobTimers::default();
            self.event(job_id, RequesterEvent::JobCompleted);
        } else {
            let failure = explain::ops_incomplete(job);
            self.fail_job(job_id, failure);
        }
    }

    fn update_state(&mut self, job_id: JobId) {
        if let Some(job) = self.live_job(&job_id) {
            job.state = if job.active() + job.completed() > 0 {
                JobState::Running
            } else {
                JobState::Bidding
            };
        }
    }

    fn fail_job(&mut self, job_id: JobId, failure: Failure) {
        self.cancel_active(job_id, "the job failed");
        if let Some(job) = self.jobs.get_mut(&job_id) {
            job.state = JobState::Failed {
                failure: failure.clone(),
            };
            job.timers = JobTimers::default();
        }
        self.event(job_id, RequesterEvent::JobFailed { failure });
    }

    /// Cancels every awarded execution of the job.
    fn cancel_active(&mut self, job_id: JobId, reason: &str) {
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return;
        };
        for execution in &mut job.executions {
            if execution.state == ExecutionState::Awarded {
                execution.state = ExecutionState::Cancelled;
                self.outputs.push_back(RequesterOutput::Send {
                    to: execution.node,
                    msg: ToCompute::Cancel(Cancel {
                        job_id,
                        reason: reason.to_owned(),
                    }),
                });
            }
        }
    }

    fn event(&mut self, job_id: JobId, event: RequesterEvent) {
        self.outputs
            .push_back(RequesterOutput::Event { job_id, event });
    }

    /// Puts the job under its next deadline in the timer index.
    fn reindex(&mut self, job_id: JobId) {
        let next = self.jobs.get(&job_id).and_then(JobRecord::next_deadline);
        let old = self.timer_of.get(&job_id).copied();
        if old == next {
            return;
        }
        if let Some(old) = old {
            self.timers.remove(&(old, job_id));
            self.timer_of.remove(&job_id);
        }
        if let Some(next) = next {
            self.timers.insert((next, job_id));
            self.timer_of.insert(job_id, next);
        }
    }
}

/// `10 s`, `300 ms`: durations as reasons show them.
pub(crate) fn explain_duration(ms: u64) -> String {
    explain::duration(ms)
}

/// Keeps a reason within what a message may carry.
fn truncate(reason: &str) -> String {
    let max = crate::messages::MAX_REASON_BYTES;
    if reason.len() <= max {
        return reason.to_owned();
    }
    let mut end = max - 3;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &reason[..end])
}
