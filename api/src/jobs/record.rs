//! The requester's record of a job and its steps, as the API shows them:
//! the shape of `protocol::requester::JobRecord` and `RequesterEvent`, with
//! addresses as values.

use std::collections::BTreeMap;

use cid::Cid;
use protocol::failure::Failure;
use protocol::id::{ExecutionId, JobId, NodeId};
use protocol::job::JobSpec;
use protocol::messages::{Announce, Step};
use protocol::policy::RefuseReason;
use protocol::requester::{BidRecord, ExecutionRecord, JobRecord, JobTimers, RequesterEvent};
use serde::{Deserialize, Serialize};

use super::JobState;
use crate::address::DataAddr;

/// Everything the requester keeps of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDetail {
    /// The job as announced.
    pub announce: Announcement,
    pub state: JobState,
    /// Every award, in order.
    pub executions: Vec<Execution>,
    /// Spare bids, best first (nodes never awarded for this job).
    pub bids: Vec<BidRecord>,
    /// Refusals, by node (a bounded number).
    pub refusals: BTreeMap<NodeId, RefuseReason>,
    /// Refusals beyond those, counted by reason text.
    pub more_refusals: BTreeMap<String, u32>,
    /// How many bids arrived in all.
    pub bids_received: u32,
    /// The job's queue timeout, resolved from its spec or the node's config:
    /// how long it waits while no node could take it.
    pub queue_timeout_ms: u64,
    /// How long it waits while nodes that could run it are busy.
    #[serde(default)]
    pub backlog_timeout_ms: u64,
    /// Refusals that said the node was only busy.
    #[serde(default)]
    pub busy_refusals: u32,
    /// Set while no announcement of the job has left the node yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsent: bool,
    /// The job's execution timeout plus grace.
    pub silence_after_ms: u64,
    /// Awards allowed in all.
    pub max_attempts: u32,
    /// When the job fails if it has not ended (its `TotalTimeout`).
    #[serde(default)]
    pub ends_by_ms: Option<u64>,
    pub timers: JobTimers,
}

impl From<&JobRecord> for JobDetail {
    fn from(record: &JobRecord) -> JobDetail {
        JobDetail {
            announce: (&record.announce).into(),
            state: (&record.state).into(),
            executions: record.executions.iter().map(Execution::from).collect(),
            bids: record.bids.clone(),
            refusals: record.refusals.clone(),
            more_refusals: record.more_refusals.clone(),
            bids_received: record.bids_received,
            queue_timeout_ms: record.queue_timeout_ms,
            backlog_timeout_ms: record.backlog_timeout_ms,
            busy_refusals: record.busy_refusals,
            unsent: record.unsent,
            silence_after_ms: record.silence_after_ms,
            max_attempts: record.max_attempts,
            ends_by_ms: record.ends_by_ms,
            timers: record.timers.clone(),
        }
    }
}

/// A job's announcement: the job and who submitted it when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub job_id: JobId,
    pub spec: JobSpec,
    /// The node that submitted the job.
    pub requester: NodeId,
    /// When it accepted the job, in ms since the Unix epoch.
    pub submitted_at_ms: u64,
    /// Where the job's CID inputs can be fetched from.
    pub providers: Vec<DataAddr>,
    /// Which share of the network is asked to answer, in parts per
    /// million; none: every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draw_ppm: Option<u32>,
    /// The CID inputs' bytes, summed, when the requester holds them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_bytes: Option<u64>,
    /// The rate, bits per second, the requester serves blobs at, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_bps: Option<u64>,
}

impl From<&Announce> for Announcement {
    fn from(announce: &Announce) -> Announcement {
        Announcement {
            job_id: announce.job_id,
            spec: announce.spec.clone(),
            requester: announce.requester,
            submitted_at_ms: announce.submitted_at_ms,
            providers: DataAddr::parse_all(&announce.providers),
            draw_ppm: announce.draw_ppm,
            input_bytes: announce.input_bytes,
            source_bps: announce.source_bps,
        }
    }
}

/// One attempt at a job on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    /// Numbered from 0 within the job.
    pub execution_id: ExecutionId,
    /// The node awarded.
    pub node: NodeId,
    pub awarded_at_ms: u64,
    /// When the node counts as silent if it has not answered.
    pub deadline_ms: u64,
    pub state: ExecutionState,
    /// Which of the job's `Count` parts it runs, from 0 (absent for 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub partition: u32,
    /// The last step the node reported: pulling the image, or running it
    /// at its digest (kept once the execution ends: what ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Step>,
}

impl From<&ExecutionRecord> for Execution {
    fn from(record: &ExecutionRecord) -> Execution {
        use protocol::requester::ExecutionState as S;
        Execution {
            execution_id: record.execution_id,
            node: record.node,
            awarded_at_ms: record.awarded_at_ms,
            deadline_ms: record.deadline_ms,
            state: match &record.state {
                S::Awarded => ExecutionState::Awarded,
                S::Completed {
                    result_cid,
                    exit_code,
                } => ExecutionState::Completed {
                    result_cid: *result_cid,
                    exit_code: *exit_code,
                },
                S::Failed { failure } => ExecutionState::Failed {
                    failure: failure.clone(),
                },
                S::Cancelled => ExecutionState::Cancelled,
            },
            partition: record.partition,
            step: record.step.clone(),
        }
    }
}

/// Where an execution is: `{"state": NAME, ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ExecutionState {
    /// Awarded; no answer yet.
    Awarded,
    /// It ran and its results are stored.
    Completed {
        #[serde(with = "protocol::id::cid_string")]
        result_cid: Cid,
        exit_code: i32,
    },
    /// It failed, was declined, or its node went silent.
    Failed {
        /// Why.
        failure: Failure,
    },
    /// The requester cancelled it (the job ended otherwise).
    Cancelled,
}

impl ExecutionState {
    /// The state's name, as the JSON has it.
    pub fn name(&self) -> &'static str {
        match self {
            ExecutionState::Awarded => "awarded",
            ExecutionState::Completed { .. } => "completed",
            ExecutionState::Failed { .. } => "failed",
            ExecutionState::Cancelled => "cancelled",
        }
    }
}

/// A step of a job, when it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEvent {
    pub at_ms: u64,
    pub event: Event,
}

/// What happened: `{"event": NAME, ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The job was (re-)announced.
    Announced,
    /// A node bid.
    BidReceived { node: NodeId },
    /// A node refused.
    Refused { node: NodeId, reason: RefuseReason },
    /// A node was awarded an execution.
    Awarded {
        node: NodeId,
        execution_id: ExecutionId,
    },
    /// A node said where its execution is.
    Progress {
        node: NodeId,
        execution_id: ExecutionId,
        step: Step,
    },
    /// An execution failed, was declined or its node went silent.
    ExecutionFailed {
        node: NodeId,
        execution_id: ExecutionId,
        /// Why.
        failure: Failure,
    },
    /// An execution completed.
    Completed {
        node: NodeId,
        execution_id: ExecutionId,
        #[serde(with = "protocol::id::cid_string")]
        result_cid: Cid,
        exit_code: i32,
    },
    /// `Count` executions completed: the job is done.
    JobCompleted,
    /// The job failed.
    JobFailed {
        /// Why, explained (R-POL-3).
        failure: Failure,
    },
    /// The job was cancelled by its user.
    JobCancelled,
}

impl From<&RequesterEvent> for Event {
    fn from(event: &RequesterEvent) -> Event {
        use RequesterEvent as E;
        match event {
            E::Announced => Event::Announced,
            E::BidReceived { node } => Event::BidReceived { node: *node },
            E::Refused { node, reason } => Event::Refused {
                node: *node,
                reason: reason.clone(),
            },
            E::Awarded { node, execution_id } => Event::Awarded {
                node: *node,
                execution_id: *execution_id,
            },
            E::Progress {
                node,
                execution_id,
                step,
            } => Event::Progress {
                node: *node,
                execution_id: *execution_id,
                step: step.clone(),
            },
            E::ExecutionFailed {
                node,
                execution_id,
                failure,
            } => Event::ExecutionFailed {
                node: *node,
                execution_id: *execution_id,
                failure: failure.clone(),
            },
            E::Completed {
                node,
                execution_id,
                result_cid,
                exit_code,
            } => Event::Completed {
                node: *node,
                execution_id: *execution_id,
                result_cid: *result_cid,
                exit_code: *exit_code,
            },
            E::JobCompleted => Event::JobCompleted,
            E::JobFailed { failure } => Event::JobFailed {
                failure: failure.clone(),
            },
            E::JobCancelled => Event::JobCancelled,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
