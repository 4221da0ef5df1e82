//! The answers of the job endpoints:
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /api/v1/jobs` (a job file) | [`Submitted`] |
//! | `GET /api/v1/jobs?limit=N` | [`JobList`] |
//! | `GET /api/v1/jobs/{id}` | [`JobStatus`] |
//! | `POST /api/v1/jobs/{id}/cancel` | [`Cancelled`] |
//! | `GET /api/v1/jobs/{id}/logs` | [`Logs`] |
//! | `GET /api/v1/jobs/{id}/results` | [`ResultList`] |
//! | `GET /api/v1/changes?after=N&timeout_ms=T` | [`Changes`] |
//!
//! A failure is the protocol's [`Failure`] wherever one appears
//! ([`JobState::Failed`], [`ExecutionState::Failed`],
//! [`Event::ExecutionFailed`], [`Event::JobFailed`]): `{"cause": NAME,
//! "detail": TEXT}`, so tools group failures by cause and people read the
//! detail.

mod record;

use cid::Cid;
use protocol::failure::Failure;
use protocol::id::{ExecutionId, JobId, NodeId};
use protocol::job::NetworkMode;
use protocol::requester::JobRecord;
use serde::{Deserialize, Serialize};

use crate::address::DataAddr;
use crate::node::network_flag;
pub use record::{Announcement, Event, Execution, ExecutionState, JobDetail, JobEvent};

/// A job was accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    pub job_id: JobId,
}

/// The node's jobs, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobList {
    pub jobs: Vec<JobSummary>,
}

/// A job in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    pub job_id: JobId,
    /// The job file's `Name`.
    pub name: Option<String>,
    /// `docker` or `wasm`.
    pub engine: String,
    /// The job's network mode: `none`, `http` or `full`.
    #[serde(with = "network_flag")]
    pub network: NetworkMode,
    /// `"state"`, and `"failure"` when it failed.
    #[serde(flatten)]
    pub state: JobState,
    pub submitted_at_ms: u64,
    /// Executions awarded so far.
    pub executions: usize,
}

impl From<&JobRecord> for JobSummary {
    fn from(record: &JobRecord) -> JobSummary {
        let spec = &record.announce.spec;
        JobSummary {
            job_id: record.job_id(),
            name: spec.name.clone(),
            engine: spec.task().engine.kind().to_owned(),
            network: spec.task().network.r#type,
            state: (&record.state).into(),
            submitted_at_ms: record.announce.submitted_at_ms,
            executions: record.executions.len(),
        }
    }
}

/// Where a job is. In JSON a `"state"` name (`bidding`, `running`,
/// `completed`, `failed`, `cancelled`), with the `"failure"` of a failed
/// job.
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
        failure: Failure,
    },
    /// The user cancelled it.
    Cancelled,
}

impl JobState {
    /// The state's name, as the JSON has it.
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

impl From<&protocol::requester::JobState> for JobState {
    fn from(state: &protocol::requester::JobState) -> JobState {
        use protocol::requester::JobState as S;
        match state {
            S::Bidding => JobState::Bidding,
            S::Running => JobState::Running,
            S::Completed => JobState::Completed,
            S::Failed { failure } => JobState::Failed {
                failure: failure.clone(),
            },
            S::Cancelled => JobState::Cancelled,
        }
    }
}

/// One job, everything the node knows of it (`skrei job describe`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    pub job_id: JobId,
    /// `"state"`, and `"failure"` when it failed.
    #[serde(flatten)]
    pub state: JobState,
    /// The requester's record of the job.
    pub job: JobDetail,
    /// The results compute nodes reported, one per completed execution.
    pub results: Vec<JobResult>,
    /// Its steps, oldest first.
    pub events: Vec<JobEvent>,
}

impl JobStatus {
    /// Whether every result is in the node's store (and there is one).
    pub fn results_fetched(&self) -> bool {
        !self.results.is_empty() && self.results.iter().all(|r| r.fetched)
    }

    /// Whether someone waiting for the job can stop: it failed or was
    /// cancelled, or it completed and each result is in the node's store
    /// or will not be (refused: over `--max-result-size`).
    pub fn settled(&self) -> bool {
        match self.state {
            JobState::Failed { .. } | JobState::Cancelled => true,
            JobState::Completed => {
                !self.results.is_empty()
                    && self
                        .results
                        .iter()
                        .all(|r| r.fetched || r.refused.is_some())
            }
            JobState::Bidding | JobState::Running => false,
        }
    }
}

/// A result a compute node reported for one of the node's jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    pub job_id: JobId,
    pub execution_id: ExecutionId,
    /// The compute node.
    pub node: NodeId,
    #[serde(with = "protocol::id::cid_string")]
    pub result_cid: Cid,
    pub exit_code: i32,
    /// Where the results can be fetched from.
    pub providers: Vec<DataAddr>,
    /// The results are in this node's store.
    pub fetched: bool,
    /// Why this node will not fetch them (over `--max-result-size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// The first result's stdout and stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logs {
    pub job_id: JobId,
    pub execution_id: ExecutionId,
    pub node: NodeId,
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The job's `network.log` (one JSON record per request of an `http`
    /// job), when its results hold one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_log: Option<String>,
}

/// A job's results in the node's store, for the client to write out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultList {
    pub job_id: JobId,
    pub results: Vec<ResultRef>,
}

/// One execution's results: a tree in the node's store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultRef {
    pub execution_id: ExecutionId,
    pub node: NodeId,
    #[serde(with = "protocol::id::cid_string")]
    pub cid: Cid,
    pub exit_code: i32,
}

/// A job was cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancelled {
    pub job_id: JobId,
    pub cancelled: bool,
}

/// The node's change counter: it grows with every step of any job. A
/// client long-polls with `after` set to the last value it saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    pub changes: u64,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use protocol::failure::FailureCause;
    use protocol::messages::Announce;
    use protocol::policy::RefuseReason;
    use protocol::requester::{self as req, BidRecord, ExecutionRecord, JobTimers, RequesterEvent};

    use super::*;
    use crate::testing::{DATA_ADDR, cid, node_id, round_trips};

    const JOB: &str = "Name: hello\nType: batch\nCount: 2\nTasks:\n  - Name: main\n    Engine:\n      \
        Type: wasm\n      Params:\n        EntryModule:\n          Source:\n            \
        Type: ipfs\n            Params:\n              \
        CID: bafkr4ibp24ziu6ssli6qpyzhiztphyz6mzhmy4a723x22xw3szebfl56le\n";

    fn job_id() -> JobId {
        "bafyr4ibqircjzxxtlmpihl2tvww3el3gfnrox45fcjj33ss6ztir7aonpi"
            .parse()
            .unwrap()
    }

    fn record(state: req::JobState) -> JobRecord {
        let execution = |n: u64, node: u8, state: req::ExecutionState| ExecutionRecord {
            execution_id: ExecutionId(n),
            node: node_id(node),
            awarded_at_ms: 100 + n,
            deadline_ms: 900 + n,
            state,
            partition: 0,
            step: None,
        };
        JobRecord {
            announce: Announce {
                job_id: job_id(),
                spec: protocol::job::JobSpec::parse(JOB).unwrap(),
                requester: node_id(1),
                submitted_at_ms: 7,
                providers: vec![DATA_ADDR.into()],
                draw_ppm: Some(500_000),
                input_bytes: Some(1 << 20),
                source_bps: Some(100_000_000),
            },
            state,
            executions: vec![
                execution(
                    0,
                    2,
                    req::ExecutionState::Failed {
                        failure: Failure::new(FailureCause::NodeSilent, "node went silent"),
                    },
                ),
                execution(
                    1,
                    3,
                    req::ExecutionState::Completed {
                        result_cid: cid(b"results"),
                        exit_code: 0,
                    },
                ),
                execution(2, 4, req::ExecutionState::Awarded),
                execution(3, 5, req::ExecutionState::Cancelled),
            ],
            bids: vec![BidRecord {
                node: node_id(6),
                running_jobs: 1,
                received_at_ms: 50,
                tiebreak: 3,
                fetch_ms: Some(1_200),
                held_bytes: 4096,
            }],
            refusals: BTreeMap::from([(node_id(7), RefuseReason::EmptyAllowlist)]),
            more_refusals: BTreeMap::from([("no capacity".to_string(), 2)]),
            bids_received: 4,
            queue_timeout_ms: 3_000,
            backlog_timeout_ms: 600_000,
            busy_refusals: 1,
            unsent: false,
            silence_after_ms: 60_000,
            max_attempts: 6,
            ends_by_ms: None,
            timers: JobTimers {
                reannounce_interval_ms: 1_000,
                ..JobTimers::default()
            },
        }
    }

    fn events() -> Vec<RequesterEvent> {
        let (node, execution_id) = (node_id(2), ExecutionId(1));
        vec![
            RequesterEvent::Announced,
            RequesterEvent::BidReceived { node },
            RequesterEvent::Refused {
                node,
                reason: RefuseReason::EngineUnavailable {
                    engine: "docker".into(),
                },
            },
            RequesterEvent::Awarded { node, execution_id },
            RequesterEvent::ExecutionFailed {
                node,
                execution_id,
                failure: Failure::new(FailureCause::Declined, "declined"),
            },
            RequesterEvent::Completed {
                node,
                execution_id,
                result_cid: cid(b"r"),
                exit_code: 3,
            },
            RequesterEvent::JobCompleted,
            RequesterEvent::JobFailed {
                failure: Failure::new(FailureCause::NoNodeAnswered, "no node bid"),
            },
            RequesterEvent::JobCancelled,
        ]
    }

    fn result(fetched: bool, refused: Option<&str>) -> JobResult {
        JobResult {
            job_id: job_id(),
            execution_id: ExecutionId(1),
            node: node_id(3),
            result_cid: cid(b"results"),
            exit_code: 0,
            providers: vec![DATA_ADDR.parse().unwrap()],
            fetched,
            refused: refused.map(str::to_owned),
        }
    }

    fn status(state: req::JobState, results: Vec<JobResult>) -> JobStatus {
        let record = record(state);
        JobStatus {
            job_id: record.job_id(),
            state: (&record.state).into(),
            job: (&record).into(),
            results,
            events: events()
                .iter()
                .enumerate()
                .map(|(i, e)| JobEvent {
                    at_ms: i as u64,
                    event: e.into(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_job_status_round_trips_and_reads_with_unknown_fields() {
        let failed = req::JobState::Failed {
            failure: Failure::new(FailureCause::NoNodeAnswered, "no node bid"),
        };
        let status = status(
            failed,
            vec![result(true, None), result(false, Some("too big"))],
        );
        let json = round_trips(
            &status,
            &[
                "",
                "/job",
                "/job/executions/0",
                "/job/executions/0/state",
                "/job/bids/0",
                "/job/timers",
                "/job/announce",
                "/job/announce/providers/0",
                "/results/0",
                "/events/0",
                "/events/5/event",
            ],
        );
        // The state and its failure at the top, typed (issue 13).
        assert_eq!(json["state"], "failed");
        assert_eq!(json["failure"]["cause"], "no_node_answered");
        assert_eq!(json["failure"]["detail"], "no node bid");
        assert_eq!(json["job"]["state"]["failure"]["detail"], "no node bid");
        assert_eq!(json["job"]["executions"][0]["state"]["state"], "failed");
        assert_eq!(
            json["job"]["refusals"][node_id(7).to_string()]["kind"],
            "empty_allowlist"
        );
        assert_eq!(
            json["results"][0]["providers"][0]["addrs"][0]["Ip"],
            "127.0.0.1:4001"
        );
        assert!(json["results"][0].get("refused").is_none());
        assert_eq!(json["results"][1]["refused"], "too big");

        let running = super::tests::status(req::JobState::Running, vec![]);
        let json = round_trips(&running, &[""]);
        assert_eq!(json["state"], "running");
        assert!(json.get("failure").is_none(), "{json}");
    }

    #[test]
    fn the_record_and_events_keep_the_protocols_json_but_for_addresses() {
        let record = record(req::JobState::Completed);
        let mut expected = serde_json::to_value(&record).unwrap();
        expected["announce"]["providers"] =
            serde_json::json!([serde_json::from_str::<serde_json::Value>(DATA_ADDR).unwrap()]);
        assert_eq!(
            serde_json::to_value(JobDetail::from(&record)).unwrap(),
            expected
        );
        for event in events() {
            assert_eq!(
                serde_json::to_value(Event::from(&event)).unwrap(),
                serde_json::to_value(&event).unwrap()
            );
        }
        for state in [
            req::JobState::Bidding,
            req::JobState::Running,
            req::JobState::Completed,
            req::JobState::Failed {
                failure: Failure::new(FailureCause::Other, "r"),
            },
            req::JobState::Cancelled,
        ] {
            let ours = JobState::from(&state);
            assert_eq!(
                serde_json::to_value(&ours).unwrap(),
                serde_json::to_value(&state).unwrap()
            );
            assert_eq!(serde_json::to_value(&ours).unwrap()["state"], ours.name());
            assert_eq!(ours.is_terminal(), state.is_terminal());
        }
    }

    #[test]
    fn a_job_has_settled_once_its_results_are_here_or_refused() {
        let completed = |results| super::tests::status(req::JobState::Completed, results);
        assert!(
            !completed(vec![]).settled(),
            "completed, results not yet reported"
        );
        assert!(!completed(vec![result(false, None)]).settled());
        assert!(completed(vec![result(true, None), result(false, Some("too big"))]).settled());
        assert!(!completed(vec![result(true, None), result(false, Some("x"))]).results_fetched());
        assert!(completed(vec![result(true, None)]).results_fetched());
        assert!(!super::tests::status(req::JobState::Running, vec![result(true, None)]).settled());
        assert!(super::tests::status(req::JobState::Cancelled, vec![]).settled());
    }

    #[test]
    fn the_small_answers_round_trip_and_read_with_unknown_fields() {
        let record = record(req::JobState::Bidding);
        let summary = JobSummary::from(&record);
        let json = round_trips(
            &JobList {
                jobs: vec![summary],
            },
            &["", "/jobs/0"],
        );
        assert_eq!(
            json["jobs"][0],
            serde_json::json!({
                "job_id": job_id().to_string(),
                "name": "hello",
                "engine": "wasm",
                "network": "none",
                "state": "bidding",
                "submitted_at_ms": 7,
                "executions": 4,
            })
        );
        let json = round_trips(&Submitted { job_id: job_id() }, &[""]);
        assert_eq!(json["job_id"], job_id().to_string());
        round_trips(
            &Cancelled {
                job_id: job_id(),
                cancelled: true,
            },
            &[""],
        );
        round_trips(&Changes { changes: 42 }, &[""]);
        let logs = Logs {
            job_id: job_id(),
            execution_id: ExecutionId(1),
            node: node_id(3),
            exit_code: 0,
            stdout: "hello skrei\n".into(),
            stderr: String::new(),
            network_log: None,
        };
        let json = round_trips(&logs, &[""]);
        assert_eq!(json["execution_id"], 1);
        let list = ResultList {
            job_id: job_id(),
            results: vec![ResultRef {
                execution_id: ExecutionId(1),
                node: node_id(3),
                cid: cid(b"results"),
                exit_code: 0,
            }],
        };
        let json = round_trips(&list, &["", "/results/0"]);
        assert_eq!(json["results"][0]["cid"], cid(b"results").to_string());
    }
}
