//! A job's state on its requester, as the driver persists it (R-OPS-2) and
//! `skrei job describe` shows it.

use std::collections::BTreeMap;

use cid::Cid;
use serde::{Deserialize, Serialize};

use crate::failure::{Failure, failure_or_reason};
use crate::id::{ExecutionId, JobId, NodeId};
use crate::messages::Announce;
use crate::policy::RefuseReason;

/// Where a job is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for bids: no execution is running or done.
    Bidding,
    /// At least one execution is running or done.
    Running,
    /// `Count` executions completed.
    Completed,
    /// The job failed.
    Failed {
        /// Why, explained (R-POL-3).
        #[serde(alias = "reason", deserialize_with = "failure_or_reason")]
        failure: Failure,
    },
    /// The user cancelled it.
    Cancelled,
}

impl JobState {
    /// The state's name, as in JSON: `bidding`, `running`, `completed`,
    /// `failed`, `cancelled`.
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Bidding => "bidding",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed { .. } => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job has ended.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed { .. } | JobState::Cancelled
        )
    }
}

/// One attempt at a job on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// Names the attempt; numbered from 0 within the job.
    pub execution_id: ExecutionId,
    /// The node awarded.
    pub node: NodeId,
    /// When it was awarded.
    pub awarded_at_ms: u64,
    /// When the node counts as silent if it has not answered.
    pub deadline_ms: u64,
    /// How it stands.
    pub state: ExecutionState,
    /// Which of the job's `Count` parts it runs, from 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub partition: u32,
    /// The last step its node reported (issue 16): pulling the image, or
    /// running it at its digest. Kept once the execution ends, so the job
    /// says what ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<crate::messages::Step>,
}

/// Where an execution is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ExecutionState {
    /// Awarded; no answer yet.
    Awarded,
    /// It ran and its results are stored.
    Completed {
        /// The results.
        #[serde(with = "crate::id::cid_string")]
        result_cid: Cid,
        /// The task's exit code.
        exit_code: i32,
    },
    /// It failed, was declined, or its node went silent.
    Failed {
        /// Why.
        #[serde(alias = "reason", deserialize_with = "failure_or_reason")]
        failure: Failure,
    },
    /// The requester cancelled it (the job ended otherwise).
    Cancelled,
}

/// A bid kept for the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidRecord {
    /// The bidder.
    pub node: NodeId,
    /// Jobs it said it runs.
    pub running_jobs: u32,
    /// When the bid arrived.
    pub received_at_ms: u64,
    /// Drawn from the seeded RNG when the bid arrived: breaks ties.
    pub tiebreak: u64,
    /// How long the bidder expects to take fetching the job's inputs, ms,
    /// where it said.
    #[serde(default)]
    pub fetch_ms: Option<u64>,
    /// Bytes of the job's inputs the bidder holds.
    #[serde(default)]
    pub held_bytes: u64,
}

impl BidRecord {
    /// Lower is better (R-POL-4, weighed by data locality and link speed):
    /// the expected fetch in whole seconds (unknown counts as none), so a
    /// few milliseconds do not outweigh the rest; then the most input
    /// bytes held, so data already in place is used; then the fewest
    /// running jobs.
    pub(super) fn rank(&self) -> (u64, std::cmp::Reverse<u64>, u32, u64, u64, NodeId) {
        (
            self.fetch_ms.unwrap_or(0) / 1000,
            std::cmp::Reverse(self.held_bytes),
            self.running_jobs,
            self.received_at_ms,
            self.tiebreak,
            self.node,
        )
    }
}

/// A job's timers, as absolute times in ms.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTimers {
    /// Set while the first bids are collected: award when it passes.
    pub collect_until_ms: Option<u64>,
    /// Set while the job waits for nodes: re-announce then.
    pub reannounce_at_ms: Option<u64>,
    /// The interval before the next re-announcement.
    pub reannounce_interval_ms: u64,
    /// Since when the job has been waiting for nodes (its queue timeout
    /// runs from here).
    pub waiting_since_ms: Option<u64>,
}

/// Everything the requester knows about one job: what the driver persists
/// and `skrei job describe` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job as announced.
    pub announce: Announce,
    /// Where it is.
    pub state: JobState,
    /// Every award, in order.
    pub executions: Vec<ExecutionRecord>,
    /// Spare bids, best first (nodes never awarded for this job).
    pub bids: Vec<BidRecord>,
    /// Refusals, by node (at most [`super::RequesterConfig::max_refusals_per_job`]).
    pub refusals: BTreeMap<NodeId, RefuseReason>,
    /// Refusals beyond those, counted by reason text.
    pub more_refusals: BTreeMap<String, u32>,
    /// How many bids arrived in all.
    pub bids_received: u32,
    /// The job's queue timeout, resolved from its spec or the config: how
    /// long it waits while no node could take it.
    pub queue_timeout_ms: u64,
    /// How long it waits while nodes that could run it are busy (its spec's
    /// queue timeout, or the config's backlog timeout); 0 in records from
    /// before it existed (then `queue_timeout_ms` holds).
    #[serde(default)]
    pub backlog_timeout_ms: u64,
    /// Refusals that said the node was only busy
    /// ([`crate::policy::RefuseReason::is_passing`]), counted also beyond
    /// those kept one by one.
    #[serde(default)]
    pub busy_refusals: u32,
    /// Set while no announcement of the job has left this node yet (its
    /// node's outbox sends what its peers take, and a burst waits there).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsent: bool,
    /// The job's execution timeout plus grace.
    pub silence_after_ms: u64,
    /// Awards allowed in all.
    pub max_attempts: u32,
    /// When the job fails if it has not ended, from its spec's
    /// `TotalTimeout` (retries included); none if it sets none.
    #[serde(default)]
    pub ends_by_ms: Option<u64>,
    /// Its timers.
    pub timers: JobTimers,
}

impl JobRecord {
    /// The job's id.
    pub fn job_id(&self) -> JobId {
        self.announce.job_id
    }

    pub(super) fn count(&self) -> u32 {
        self.announce.spec.count
    }

    /// Records an award to `node` of `partition`, with the deadline by
    /// which it must answer; returns its execution id.
    pub(super) fn add_execution(
        &mut self,
        node: NodeId,
        now_ms: u64,
        partition: u32,
    ) -> ExecutionId {
        let execution_id = ExecutionId(self.executions.len() as u64);
        self.executions.push(ExecutionRecord {
            execution_id,
            node,
            awarded_at_ms: now_ms,
            deadline_ms: now_ms.saturating_add(self.silence_after_ms),
            state: ExecutionState::Awarded,
            partition,
            step: None,
        });
        execution_id
    }

    /// An ops job: one execution on every node that bids before its queue
    /// timeout, instead of `Count`.
    pub fn is_ops(&self) -> bool {
        self.announce.spec.r#type == crate::job::JobType::Ops
    }

    /// An ops job still taking nodes (until its queue timeout).
    pub(super) fn taking_nodes(&self) -> bool {
        self.is_ops() && self.timers.waiting_since_ms.is_some()
    }

    pub(super) fn active(&self) -> usize {
        self.executions
            .iter()
            .filter(|e| e.state == ExecutionState::Awarded)
            .count()
    }

    /// How many executions completed.
    pub fn completed(&self) -> usize {
        self.executions
            .iter()
            .filter(|e| matches!(e.state, ExecutionState::Completed { .. }))
            .count()
    }

    /// The parts of the job no execution runs or ran, lowest first: what
    /// the next awards take.
    pub(super) fn free_partitions(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.count()).filter(|p| {
            !self.executions.iter().any(|e| {
                e.partition == *p
                    && matches!(
                        e.state,
                        ExecutionState::Awarded | ExecutionState::Completed { .. }
                    )
            })
        })
    }

    /// Executions the job still wants; an ops job wants one more node as
    /// long as it takes nodes.
    pub(super) fn needed(&self) -> usize {
        if self.is_ops() {
            return usize::from(self.taking_nodes());
        }
        (self.count() as usize).saturating_sub(self.active() + self.completed())
    }

    /// Whether a node that could run the job is known: one bid on it, or
    /// refused only for being busy. Such a job is queued through a backlog
    /// ([`JobRecord::backlog_timeout_ms`]).
    pub fn queued_behind_busy_nodes(&self) -> bool {
        self.busy_refusals > 0 || self.bids_received as usize > self.executions.len()
    }

    /// Nodes that may still take an attempt at the job: those that bid
    /// and were not given one, and those that refused it only for being
    /// busy.
    pub fn untried_willing_nodes(&self) -> usize {
        let bidders = (self.bids_received as usize).saturating_sub(self.executions.len());
        let busy = self
            .refusals
            .iter()
            .filter(|(node, reason)| reason.is_passing() && !self.tried(node))
            .count();
        bidders.saturating_add(busy)
    }

    /// How long the job may wait for nodes, from when it started waiting.
    pub fn wait_limit_ms(&self) -> u64 {
        // An ops job takes the nodes that bid within its queue timeout; it
        // does not wait behind busy ones.
        if self.queued_behind_busy_nodes() && !self.is_ops() {
            self.queue_timeout_ms.max(self.backlog_timeout_ms)
        } else {
            self.queue_timeout_ms
        }
    }

    pub(super) fn tried(&self, node: &NodeId) -> bool {
        self.executions.iter().any(|e| e.node == *node)
    }

    /// The earliest time this job must be woken.
    pub(super) fn next_deadline(&self) -> Option<u64> {
        if self.state.is_terminal() {
            return None;
        }
        let t = &self.timers;
        let executions = self
            .executions
            .iter()
            .filter(|e| e.state == ExecutionState::Awarded)
            .map(|e| e.deadline_ms);
        let queue = t
            .waiting_since_ms
            .map(|s| s.saturating_add(self.wait_limit_ms()));
        [
            t.collect_until_ms,
            t.reannounce_at_ms,
            queue,
            self.ends_by_ms,
        ]
        .into_iter()
        .flatten()
        .chain(executions)
        .min()
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
