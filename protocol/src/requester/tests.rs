use super::*;
use crate::job::NetworkMode::{Full, Http, None as NoNet};
use crate::testnet::{node, result_cid, spec};

const ME: u8 = 0;

fn requester(seed: u64) -> Requester {
    Requester::new(RequesterConfig::new(node(ME), seed))
}

fn drain(r: &mut Requester) -> Vec<RequesterOutput> {
    std::iter::from_fn(|| r.poll_output()).collect()
}

fn awards(outputs: &[RequesterOutput]) -> Vec<(NodeId, ExecutionId)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            RequesterOutput::Send {
                to,
                msg: ToCompute::Award(a),
            } => {
                assert_eq!(a.node, *to);
                Some((a.node, a.execution_id))
            }
            _ => None,
        })
        .collect()
}

fn cancels(outputs: &[RequesterOutput]) -> Vec<NodeId> {
    outputs
        .iter()
        .filter_map(|o| match o {
            RequesterOutput::Send {
                to,
                msg: ToCompute::Cancel(_),
            } => Some(*to),
            _ => None,
        })
        .collect()
}

fn publishes(outputs: &[RequesterOutput]) -> usize {
    outputs
        .iter()
        .filter(|o| matches!(o, RequesterOutput::Publish(_)))
        .count()
}

fn events(outputs: &[RequesterOutput]) -> Vec<RequesterEvent> {
    outputs
        .iter()
        .filter_map(|o| match o {
            RequesterOutput::Event { event, .. } => Some(event.clone()),
            _ => None,
        })
        .collect()
}

fn bid(r: &mut Requester, now: u64, job_id: JobId, n: u8, running_jobs: u32) {
    bid_fetching(r, now, job_id, n, running_jobs, None);
}

/// A node with `slots` slots, all taken.
fn busy(slots: u32) -> RefuseReason {
    RefuseReason::NoCapacity {
        running: slots,
        capacity: slots,
    }
}

fn refuse(r: &mut Requester, job_id: JobId, n: u8, reason: RefuseReason) {
    r.handle(
        0,
        RequesterInput::Refuse {
            from: node(n),
            refuse: Refuse {
                job_id,
                node: node(n),
                reason,
            },
        },
    );
}

fn result(r: &mut Requester, now: u64, job_id: JobId, from: u8, n: u8, e: u64, ok: bool) {
    let outcome = if ok {
        Outcome::Completed {
            result_cid: result_cid(n),
            exit_code: 0,
        }
    } else {
        Outcome::Failed {
            failure: Failure::new(FailureCause::EngineUnavailable, "image not found"),
        }
    };
    r.handle(
        now,
        RequesterInput::Result {
            from: node(from),
            result: ResultMsg {
                job_id,
                execution_id: ExecutionId(e),
                node: node(n),
                outcome,
                providers: vec![],
            },
        },
    );
}

fn decline(r: &mut Requester, now: u64, job_id: JobId, n: u8, e: u64) {
    r.handle(
        now,
        RequesterInput::Decline {
            from: node(n),
            decline: Decline {
                job_id,
                execution_id: ExecutionId(e),
                node: node(n),
                reason: "allowlist changed".into(),
            },
        },
    );
}

fn submit(r: &mut Requester, count: u32) -> JobId {
    let id = r
        .submit(0, spec("docker", NoNet, &[], count), 1_000, vec![])
        .unwrap();
    let out = drain(r);
    assert_eq!(publishes(&out), 1);
    assert_eq!(events(&out), vec![RequesterEvent::Announced]);
    id
}

fn state(r: &Requester, id: JobId) -> JobState {
    r.job(&id).unwrap().state.clone()
}

/// The job's failure; its detail is what most tests read.
fn failed(r: &Requester, id: JobId) -> Failure {
    match state(r, id) {
        JobState::Failed { failure } => failure,
        other => panic!("not failed: {other:?}"),
    }
}

fn failure(r: &Requester, id: JobId) -> String {
    failed(r, id).detail
}

// R-POL-4: fewest running jobs first, then the earliest bid.
#[test]
fn r_pol_4_awards_fewest_running_then_earliest() {
    let mut r = requester(1);
    let id = submit(&mut r, 2);
    assert_eq!(r.poll_timeout(), Some(300));
    bid(&mut r, 10, id, 1, 3);
    bid(&mut r, 50, id, 2, 0);
    bid(&mut r, 20, id, 3, 0);
    bid(&mut r, 5, id, 4, 1);
    assert!(
        awards(&drain(&mut r)).is_empty(),
        "nothing before the window closes"
    );
    r.handle_timeout(299);
    assert!(awards(&drain(&mut r)).is_empty());
    r.handle_timeout(300);
    let out = drain(&mut r);
    assert_eq!(
        awards(&out),
        vec![(node(3), ExecutionId(0)), (node(2), ExecutionId(1))]
    );
    assert_eq!(state(&r, id), JobState::Running);
    // The others are spares, best first.
    let spares: Vec<NodeId> = r.job(&id).unwrap().bids.iter().map(|b| b.node).collect();
    assert_eq!(spares, vec![node(4), node(1)]);
}

// R-POL-4: equal bids are drawn at random, from the seed.
#[test]
fn r_pol_4_ties_are_broken_by_the_seed() {
    let winner = |seed: u64| {
        let mut r = requester(seed);
        let id = submit(&mut r, 1);
        for n in 1..=6 {
            bid(&mut r, 7, id, n, 0);
        }
        r.handle_timeout(300);
        awards(&drain(&mut r))[0].0
    };
    let winners: BTreeSet<NodeId> = (0..16).map(winner).collect();
    assert!(winners.len() > 1, "the seed never changed the winner");
    for seed in 0..16 {
        assert_eq!(winner(seed), winner(seed), "seed {seed}");
    }
}

#[test]
fn bids_from_impostors_and_repeats_are_ignored() {
    let mut r = requester(1);
    let id = submit(&mut r, 1);
    // Signed by node 2, naming node 1.
    r.handle(
        5,
        RequesterInput::Bid {
            from: node(2),
            bid: Bid {
                job_id: id,
                bidder: node(1),
                running_jobs: 0,
                held_bytes: 0,
                fetch_ms: None,
            },
        },
    );
    assert!(drain(&mut r).is_empty());
    bid(&mut r, 5, id, 2, 0);
    bid(&mut r, 6, id, 2, 0);
    let record = r.job(&id).unwrap();
    assert_eq!(record.bids.len(), 1);
    assert_eq!(record.bids[0].received_at_ms, 6, "a repeated bid refreshes");
    assert_eq!(record.bids_received, 1);
}

// A spare older than the bid TTL is not awarded: its node would decline,
// wasting an attempt. The job re-announces and the node bids again.
#[test]
fn stale_spares_are_not_awarded() {
    let mut r = requester(1);
    let id = submit(&mut r, 1);
    bid(&mut r, 1, id, 1, 0);
    bid(&mut r, 2, id, 2, 0);
    r.handle_timeout(300);
    drain(&mut r);
    result(&mut r, 2_502, id, 1, 1, 0, false);
    let out = drain(&mut r);
    assert!(awards(&out).is_empty());
    assert!(r.job(&id).unwrap().bids.is_empty());
    r.handle_timeout(2_802);
    assert_eq!(publishes(&drain(&mut r)), 1);
    bid(&mut r, 2_810, id, 2, 0);
    assert_eq!(awards(&drain(&mut r)), vec![(node(2), ExecutionId(1))]);
}

#[test]
fn a_node_that_refused_and_then_bids_is_not_counted_as_refusing() {
    let mut r = requester(1);
    let id = submit(&mut r, 1);
    refuse(&mut r, id, 1, busy(1));
    bid(&mut r, 5, id, 1, 0);
    assert!(r.job(&id).unwrap().refusals.is_empty());
}

// Issue 16: the awarded node's steps are recorded on its execution, and
// kept once it completes; steps from other nodes or for other attempts,
// and repeats, are ignored.
#[test]
fn progress_from_the_awarded_node_is_recorded_and_others_ignored() {
    let mut r = requester(1);
    let id = submit(&mut r, 1);
    bid(&mut r, 1, id, 1, 0);
    r.handle_timeout(1_000);
    assert_eq!(awards(&drain(&mut r)), vec![(node(1), ExecutionId(0))]);
    let step = |image: &str| crate::messages::Step::PullingImage {
        image: image.into(),
    };
    let progress = |r: &mut Requester, from: u8, signer: u8, e: u64, step| {
        r.handle(
            1_100,
            RequesterInput::Progress {
                from: node(from),
                progress: crate::messages::Progress {
                    job_id: id,
                    execution_id: ExecutionId(e),
                    node: node(signer),
                    step,
                },
            },
        );
        events(&drain(r))
    };
    // Another node, a forged signer, another attempt: nothing.
    assert!(progress(&mut r, 2, 2, 0, step("x:1")).is_empty());
    assert!(progress(&mut r, 2, 1, 0, step("x:1")).is_empty());
    assert!(progress(&mut r, 1, 1, 5, step("x:1")).is_empty());
    assert_eq!(r.job(&id).unwrap().executions[0].step, None);
    // The awarded node: recorded once.
    assert_eq!(progress(&mut r, 1, 1, 0, step("x:1")).len(), 1);
    assert!(progress(&mut r, 1, 1, 0, step("x:1")).is_empty());
    let ran = crate::messages::Step::Running {
        image: Some("x@sha256:ab".into()),
    };
    assert_eq!(progress(&mut r, 1, 1, 0, ran.clone()).len(), 1);
    result(&mut r, 1_200, id, 1, 1, 0, true);
    assert_eq!(state(&r, id), JobState::Completed);
    assert_eq!(r.job(&id).unwrap().executions[0].step, Some(ran));
}

// Issue 17: a Count-3 job's awards take parts 0, 1 and 2; the attempt that
// replaces a failed one takes its part, and a completed part is not run
// again.
#[test]
fn awards_take_the_parts_no_execution_runs() {
    let mut r = requester(1);
    let id = submit(&mut r, 3);
    for n in 1..=5 {
        bid(&mut r, 1, id, n, 0);
    }
    r.handle_timeout(1_000);
    let parts = |r: &Requester| -> Vec<(u64, u32)> {
        r.job(&id)
            .unwrap()
            .executions
            .iter()
            .map(|e| (e.execution_id.0, e.partition))
            .collect()
    };
    let sent: Vec<u32> = drain(&mut r)
        .into_iter()
        .filter_map(|o| match o {
            RequesterOutput::Send {
                msg: ToCompute::Award(a),
                ..
            } => Some(a.partition),
            _ => None,
        })
        .collect();
    assert_eq!(sent, vec![0, 1, 2]);
    assert_eq!(parts(&r), vec![(0, 0), (1, 1), (2, 2)]);
    let node_of = |r: &Requester, e: usize| {
        let n = r.job(&id).unwrap().executions[e].node;
        (1..=5u8).find(|&i| node(i) == n).unwrap()
    };
    let (first, second) = (node_of(&r, 0), node_of(&r, 1));
    result(&mut r, 1_100, id, first, first, 0, true);
    // Part 1's node fails: the next award runs part 1 again.
    result(&mut r, 1_200, id, second, second, 1, false);
    assert_eq!(parts(&r)[3], (3, 1), "{:?}", parts(&r));
}

// R-POL-4: a decline is re-awarded at once to the next best bidder.
#[test]
fn r_pol_4_reawards_on_decline() {
    let mut r = requester(1);
    let id = submit(&mut r, 1);
    bid(&mut r, 1, id, 1, 0);
    bid(&mut r, 2, id, 2, 0);
    r.handle_timeout(300);
    assert_eq!(awards(&drain(&mut r)), vec![(node(1), ExecutionId(0))]);
    decline(&mut r, 400, id, 1, 0);
    let out = drain(&mut r);
    assert_eq!(awards(&out), vec![(node(2), ExecutionId(1))]);
    assert!(matches!(
        &events(&out)[0],
        RequesterEvent::ExecutionFailed { node: n, failure, .. }
            if *n == node(1) && failure.cause == FailureCause::Declined
                && failure.detail.contains("allowlist changed")
    ));
    result(&mut r, 500, id, 2, 2, 1, true);
    assert_eq!(state(&r, id), JobState::Completed);
}

// R-POL-4: a failed execution is re-awarded.
#[test]
fn r_pol_4_reawards_on_failure() {
    let mut r = requester(1);
    let id = submit(&mut r, 1);
    bid(&mut r, 1, id, 1, 0);
    bid(&mut r, 2, id, 2, 0);
    r.handle_timeout(300);
    drain(&mut r);
    result(&mut r, 400, id, 1, 1, 0, false);
    assert_eq!(awards(&drain(&mut r)), vec![(node(2), ExecutionId(1))]);
    let record = r.job(&id).unwrap();
    assert_eq!(
        record.executions[0].state,
        ExecutionState::Failed {
            failure: Failure::new(FailureCause::EngineUnavailable, "image not found")
        }
    );
}

// R-POL-4, R-OPS-2: a node silent past its deadline is cancelled and replaced.
#[test]
fn r_pol_4_reawards_when_a_node_goes_silent() {
    let mut r = requester(1);
    let id = submit(&mut r, 1);
    bid(&mut r, 1, id, 1, 0);
    bid(&mut r, 2, id, 2, 0);
    r.handle_timeout(300);
    drain(&mut r);
    // Default execution timeout 10 min plus 30 s grace.
    let deadline = 300 + 600_000 + 30_000;
    assert_eq!(r.poll_timeout(), Some(deadline));
    r.handle_timeout(deadline - 1);
    assert!(drain(&mut r).is_empty());
    r.handle_timeout(deadline);
    let out = drain(&mut r);
    assert_eq!(cancels(&out), vec![node(1)]);
    // Node 2's bid is long closed: the job re-announces, and node 2 bids again.
    assert!(awards(&out).is_empty());
    r.handle_timeout(deadline + 300);
    assert_eq!(publishes(&drain(&mut r)), 1);
    bid(&mut r, deadline + 310, id, 2, 0);
    assert_eq!(awards(&drain(&mut r)), vec![(node(2), ExecutionId(1))]);
    // Its late result is stale now.
    result(&mut r, deadline + 1, id, 1, 1, 0, true);
    assert!(drain(&mut r).is_empty());
    assert_eq!(state(&r, id), JobState::Running);
}

#[test]
fn the_spec_timeouts_set_the_deadlines() {
    let mut r = requester(1);
    let mut s = spec("docker", NoNet, &[], 1);
    s.tasks[0].timeouts.execution_timeout = Some(60);
    s.tasks[0].timeouts.queue_timeout = Some(2);
    let id = r.submit(0, s, 0, vec![]).unwrap();
    let record = r.job(&id).unwrap();
    assert_eq!(record.silence_after_ms, 60_000 + 30_000);
    assert_eq!(record.queue_timeout_ms, 2_000);
}

// R-POL-4: a node gets one attempt per job, whatever it bids later.
#[test]
fn r_pol_4_never_the_same_node_twice() {
    let mut r = requester(1);
    let id = submit(&mut r, 1);
    bid(&mut r, 1, id, 1, 0);
    r.handle_timeout(300);
    drain(&mut r);
    decline(&mut r, 400, id, 1, 0);
    let out = drain(&mut r);
    assert!(awards(&out).is_empty());
    // No spare: it waits, and re-announces after a bid window.
    assert_eq!(state(&r, id), JobState::Bidding);
    r.handle_timeout(700);
    assert_eq!(publishes(&drain(&mut r)), 1);
    bid(&mut r, 710, id, 1, 0);
    assert!(awards(&drain(&mut r)).is_empty(), "node 1 had its attempt");
    // A new bidder after the first window is awarded at once.
    bid(&mut r, 720, id, 3, 5);
    assert_eq!(awards(&drain(&mut r)), vec![(node(3), ExecutionId(1))]);
}

#[test]
fn late_bids_are_spares() {
    let mut r = requester(1);
    let id = submit(&mut r, 1);
    bid(&mut r, 1, id, 1, 0);
    r.handle_timeout(300);
    drain(&mut r);
    bid(&mut r, 350, id, 2, 0);
    assert!(awards(&drain(&mut r)).is_empty());
    result(&mut r, 400, id, 1, 1, 0, false);
    assert_eq!(awards(&drain(&mut r)), vec![(node(2), ExecutionId(1))]);
}

#[test]
fn reannouncements_back_off() {
    let mut r = requester(1);
    let id = submit(&mut r, 1);
    let mut at = Vec::new();
    while let Some(t) = r.poll_timeout() {
        r.handle_timeout(t);
        if publishes(&drain(&mut r)) > 0 {
            at.push(t);
        }
    }
    assert_eq!(at, vec![600, 1200, 2400, 4400, 6400, 8400]);
    assert!(matches!(state(&r, id), JobState::Failed { .. }));
}

// Results that are not the sender's, for other executions or after the end
// are ignored.
#[test]
fn stale_and_forged_results_are_ignored() {
    let mut r = requester(1);
    let id = submit(&mut r, 1);
    bid(&mut r, 1, id, 1, 0);
    bid(&mut r, 2, id, 2, 0);
    r.handle_timeout(300);
    drain(&mut r);
    // Node 2 forges node 1's result; node 2 reports an execution it does
    // not have; node 1 reports an execution id it was never given.
    result(&mut r, 310, id, 2, 1, 0, true);
    result(&mut r, 311, id, 2, 2, 0, true);
    result(&mut r, 312, id, 1, 1, 7, true);
    // A job nobody submitted here.
    let other = JobId::compute(&spec("wasm", NoNet, &[], 1), &node(9), 1).unwrap();
    result(&mut r, 313, other, 1, 1, 0, true);
    assert!(drain(&mut r).is_empty());
    assert_eq!(state(&r, id), JobState::Running);
    result(&mut r, 320, id, 1, 1, 0, true);
    let out = drain(&mut r);
    assert_eq!(
        events(&out),
        vec![
            RequesterEvent::Completed {
                node: node(1),
                execution_id: ExecutionId(0),
                result_cid: result_cid(1),
                exit_code: 0
            },
            RequesterEvent::JobCompleted
        ]
    );
    // Once done, nothing more happens, but a late bid is released.
    result(&mut r, 330, id, 1, 1, 0, true);
    decline(&mut r, 332, id, 1, 0);
    assert!(drain(&mut r).is_empty());
    bid(&mut r, 331, id, 5, 0);
    let out = drain(&mut r);
    assert_eq!(cancels(&out), vec![node(5)]);
    assert_eq!(out.len(), 1);
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn a_job_completes_once_with_count_executions() {
    let mut r = requester(1);
    let id = submit(&mut r, 2);
    for n in 1..=3 {
        bid(&mut r, u64::from(n), id, n, 0);
    }
    r.handle_timeout(300);
    assert_eq!(awards(&drain(&mut r)).len(), 2);
    result(&mut r, 400, id, 1, 1, 0, true);
    let out = drain(&mut r);
    assert!(!events(&out).contains(&RequesterEvent::JobCompleted));
    assert_eq!(state(&r, id), JobState::Running);
    result(&mut r, 410, id, 2, 2, 1, true);
    let out = drain(&mut r);
    assert_eq!(
        events(&out)
            .iter()
            .filter(|e| **e == RequesterEvent::JobCompleted)
            .count(),
        1
    );
    assert_eq!(r.job(&id).unwrap().completed(), 2);
}

#[test]
fn attempts_run_out() {
    let mut config = RequesterConfig::new(node(ME), 1);
    config.max_attempts = 2;
    let mut r = Requester::new(config);
    let id = submit(&mut r, 1);
    for n in 1..=3 {
        bid(&mut r, u64::from(n), id, n, 0);
    }
    r.handle_timeout(300);
    drain(&mut r);
    result(&mut r, 400, id, 1, 1, 0, false);
    drain(&mut r);
    decline(&mut r, 500, id, 2, 1);
    let out = drain(&mut r);
    assert!(awards(&out).is_empty());
    let reason = failure(&r, id);
    assert!(
        reason.starts_with("gave up after 2 attempts (0 of 1 completed): "),
        "{reason}"
    );
    assert!(reason.contains("image not found"), "{reason}");
    assert!(
        reason.contains("declined the award: allowlist changed"),
        "{reason}"
    );
    assert_eq!(r.poll_timeout(), None);
}

// R-POL-3: nobody bids; the refusals are grouped and counted.
#[test]
fn r_pol_3_failure_lists_refusals_grouped_and_counted() {
    let mut r = requester(1);
    let id = r
        .submit(0, spec("docker", Http, &["api.foo.com"], 1), 0, vec![])
        .unwrap();
    drain(&mut r);
    let http_refused = RefuseReason::NetworkNotAccepted {
        requested: Http,
        accepted: NoNet,
    };
    refuse(&mut r, id, 1, http_refused.clone());
    refuse(&mut r, id, 2, http_refused.clone());
    refuse(&mut r, id, 2, http_refused);
    refuse(
        &mut r,
        id,
        3,
        RefuseReason::DomainsNotAllowed {
            domains: vec![crate::domain::Domain::parse("api.foo.com").unwrap()],
        },
    );
    r.handle_timeout(10_000);
    assert_eq!(
        failure(&r, id),
        "no node accepts this job: 2 nodes: network=http not accepted (this node accepts \
         none); 1 node: api.foo.com not in allowlist"
    );
    assert_eq!(r.job(&id).unwrap().refusals.len(), 3);
}

// R-POL-3: capacity refusals group together whatever their numbers.
#[test]
fn r_pol_3_busy_nodes_group_together() {
    let mut r = requester(1);
    let id = submit(&mut r, 1);
    for (n, running) in [(1, 2), (2, 4)] {
        refuse(
            &mut r,
            id,
            n,
            RefuseReason::NoCapacity {
                running,
                capacity: running,
            },
        );
    }
    refuse(
        &mut r,
        id,
        3,
        RefuseReason::EngineUnavailable {
            engine: "docker".into(),
        },
    );
    // Busy nodes could run it: it is queued past the 10 s queue timeout.
    r.handle_timeout(10_000);
    assert_eq!(state(&r, id), JobState::Bidding);
    r.handle_timeout(DEFAULT_BACKLOG_TIMEOUT_MS);
    assert_eq!(
        failure(&r, id),
        "no node accepts this job: 2 nodes: no free slot; 1 node: engine=docker not available"
    );
}

// Issue 15 (queueing through a burst): a job that every node refused only
// for want of a free slot stays queued for minutes, and takes the bid a
// node sends when a slot frees up.
#[test]
fn a_job_refused_by_busy_nodes_is_queued_until_a_slot_frees() {
    let mut r = requester(1);
    let id = submit(&mut r, 1);
    for n in [1, 2] {
        refuse(&mut r, id, n, busy(16));
    }
    let mut publishes_seen = 0;
    let mut t = 0;
    while let Some(next) = r.poll_timeout().filter(|t| *t <= 120_000) {
        t = next;
        r.handle_timeout(t);
        publishes_seen += publishes(&drain(&mut r));
    }
    assert_eq!(state(&r, id), JobState::Bidding, "still queued at {t} ms");
    // Re-announced, but at most every 10 s once the wait is long.
    assert!(
        (10..=20).contains(&publishes_seen),
        "{publishes_seen} re-announcements in 2 min"
    );
    bid(&mut r, 120_500, id, 2, 16);
    assert_eq!(awards(&drain(&mut r)), vec![(node(2), ExecutionId(0))]);
}

// ...while a job no node could run fails after the queue timeout.
#[test]
fn a_job_only_refused_for_lasting_reasons_fails_at_the_queue_timeout() {
    let mut r = requester(1);
    let id = submit(&mut r, 1);
    let refused = RefuseReason::EngineUnavailable {
        engine: "docker".into(),
    };
    refuse(&mut r, id, 1, refused);
    r.handle_timeout(9_999);
    assert_eq!(state(&r, id), JobState::Bidding);
    r.handle_timeout(10_000);
    assert_eq!(failed(&r, id).cause, FailureCause::NoNodeAccepts);
    assert!(
        failure(&r, id).contains("engine=docker"),
        "{}",
        failure(&r, id)
    );
}

// A job's own QueueTimeout caps its wait behind busy nodes too.
#[test]
fn the_spec_queue_timeout_caps_the_wait_behind_busy_nodes() {
    let mut r = requester(1);
    let mut s = spec("docker", NoNet, &[], 1);
    s.tasks[0].timeouts.queue_timeout = Some(30);
    let id = r.submit(0, s, 1_000, vec![]).unwrap();
    drain(&mut r);
    refuse(&mut r, id, 1, busy(1));
    r.handle_timeout(29_999);
    assert_eq!(state(&r, id), JobState::Bidding);
    r.handle_timeout(30_000);
    assert!(
        failure(&r, id).contains("within 30 s") || failure(&r, id).contains("no free slot"),
        "{}",
        failure(&r, id)
    );
}

// R-POL-3: nodes that said nothing are explained by their node info.
#[test]
fn r_pol_3_node_infos_explain_silent_nodes() {
    let mut r = requester(1);
    let info = |n: u8, accept, engines: &[&str]| NodeInfo {
        node: node(n),
        engines: engines.iter().map(|e| e.to_string()).collect(),
        capacity: 4,
        running: 0,
        accept_network: accept,
        allowlist_digest: None,
        api_addrs: vec![],
        p2p_addrs: vec![],
        data_addrs: vec![],
        relay_urls: vec![],
        resources: Default::default(),
        seq: 1,
    };
    for (n, accept, engines) in [
        (1, NoNet, &["docker"][..]),
        (2, NoNet, &["docker"][..]),
        (3, Full, &["wasm"][..]),
        (4, Full, &["docker"][..]),
    ] {
        r.handle(
            0,
            RequesterInput::NodeInfo {
                from: node(n),
                info: info(n, accept, engines),
            },
        );
    }
    // A node info signed by another node is ignored.
    r.handle(
        0,
        RequesterInput::NodeInfo {
            from: node(6),
            info: info(5, NoNet, &["docker"]),
        },
    );
    let id = r
        .submit(0, spec("docker", Full, &[], 1), 0, vec![])
        .unwrap();
    r.handle_timeout(10_000);
    assert_eq!(
        failure(&r, id),
        "no node accepts this job: 2 nodes: network=full not accepted (this node accepts \
         none); 1 node: did not answer; 1 node: engine=docker not available"
    );
}

// R-POL-3: alone, the requester says so.
#[test]
fn r_pol_3_no_answer_and_no_peer() {
    let mut r = requester(1);
    let id = submit(&mut r, 1);
    r.handle_timeout(9_999);
    assert_eq!(state(&r, id), JobState::Bidding);
    r.handle_timeout(10_000);
    assert_eq!(
        failure(&r, id),
        "no node answered within 10 s; is this node connected to any peer?"
    );
    assert_eq!(failed(&r, id).cause, FailureCause::NoNodeAnswered);
    let out = drain(&mut r);
    assert!(events(&out).contains(&RequesterEvent::JobFailed {
        failure: failed(&r, id)
    }));
}

#[test]
fn queue_timeout_after_failures_lists_the_attempts() {
    let mut r = requester(1);
    let id = submit(&mut r, 1);
    bid(&mut r, 1, id, 1, 0);
    r.handle_timeout(300);
    result(&mut r, 400, id, 1, 1, 0, false);
    refuse(&mut r, id, 2, RefuseReason::EmptyAllowlist);
    // The queue timeout runs from when the job started waiting again.
    r.handle_timeout(10_399);
    assert_eq!(state(&r, id), JobState::Bidding);
    r.handle_timeout(10_400);
    let reason = failure(&r, id);
    assert!(
        reason.starts_with(
            "only 0 of 1 executions completed and no other node took the job within 10 s; \
             attempts: "
        ),
        "{reason}"
    );
    assert!(reason.ends_with(
        "image not found; other nodes: 1 node: network=http not accepted (this node's \
         allowlist is empty)"
    ));
}

#[test]
fn the_user_cancels() {
    let mut r = requester(1);
    let id = submit(&mut r, 2);
    bid(&mut r, 1, id, 1, 0);
    bid(&mut r, 2, id, 2, 0);
    r.handle_timeout(300);
    drain(&mut r);
    result(&mut r, 400, id, 1, 1, 0, true);
    drain(&mut r);
    r.cancel(id, "not needed").unwrap();
    let out = drain(&mut r);
    assert_eq!(cancels(&out), vec![node(2)]);
    assert_eq!(events(&out), vec![RequesterEvent::JobCancelled]);
    assert_eq!(state(&r, id), JobState::Cancelled);
    assert_eq!(r.poll_timeout(), None);
    assert_eq!(
        r.cancel(id, "again"),
        Err(CancelError::AlreadyEnded(id, "cancelled"))
    );
    let other = JobId::compute(&spec("wasm", NoNet, &[], 1), &node(9), 1).unwrap();
    assert_eq!(r.cancel(other, "x"), Err(CancelError::UnknownJob(other)));
}

#[test]
fn submit_refuses_duplicates_and_invalid_jobs() {
    let mut r = requester(1);
    let s = spec("docker", NoNet, &[], 1);
    let id = r.submit(0, s.clone(), 5, vec![]).unwrap();
    assert_eq!(
        r.submit(0, s.clone(), 5, vec![]),
        Err(SubmitError::Duplicate(id))
    );
    let mut bad = s.clone();
    bad.count = 0;
    assert!(matches!(
        r.submit(0, bad, 6, vec![]),
        Err(SubmitError::Invalid(_))
    ));
    let too_many = vec!["addr".to_string(); crate::messages::MAX_ADDRS + 1];
    assert!(matches!(
        r.submit(0, s, 7, too_many),
        Err(SubmitError::Message(_))
    ));
}

// R-OPS-2: a restarted requester resumes from the persisted record.
#[test]
fn r_ops_2_restore_resumes_a_running_job() {
    let mut r = requester(1);
    let id = submit(&mut r, 2);
    bid(&mut r, 1, id, 1, 0);
    r.handle_timeout(300);
    drain(&mut r);
    // The driver stores the record as JSON; the node restarts.
    let stored = serde_json::to_string(r.job(&id).unwrap()).unwrap();
    let record: JobRecord = serde_json::from_str(&stored).unwrap();
    assert_eq!(&record, r.job(&id).unwrap());
    let cbor = crate::id::to_canonical(&record).unwrap();
    assert_eq!(
        crate::id::from_canonical::<JobRecord>(&cbor, 1 << 20).unwrap(),
        record
    );
    let mut r = requester(2);
    r.restore(5_000, record);
    let out = drain(&mut r);
    // It still needs a node: it announces and collects bids again.
    assert_eq!(publishes(&out), 1);
    bid(&mut r, 5_010, id, 2, 0);
    bid(&mut r, 5_011, id, 1, 0);
    r.handle_timeout(5_300);
    assert_eq!(
        awards(&drain(&mut r)),
        vec![(node(2), ExecutionId(1))],
        "node 1 already runs it"
    );
    // The execution from before the restart still counts.
    result(&mut r, 6_000, id, 1, 1, 0, true);
    result(&mut r, 6_001, id, 2, 2, 1, true);
    assert_eq!(state(&r, id), JobState::Completed);
}

#[test]
fn r_ops_2_restore_keeps_ended_jobs_quiet() {
    let mut r = requester(1);
    let id = submit(&mut r, 1);
    r.handle_timeout(10_000);
    let record = r.job(&id).unwrap().clone();
    let mut r = requester(1);
    r.restore(20_000, record);
    assert!(drain(&mut r).is_empty());
    assert_eq!(r.poll_timeout(), None);
    assert!(r.forget(&id).is_some());
    assert!(r.job(&id).is_none());
}

#[test]
fn a_restored_job_still_times_out() {
    let mut r = requester(1);
    let id = submit(&mut r, 1);
    let record = r.job(&id).unwrap().clone();
    let mut r = requester(1);
    r.restore(4_000, record);
    drain(&mut r);
    // The queue timeout still runs from the submission.
    r.handle_timeout(9_999);
    assert_eq!(state(&r, id), JobState::Bidding);
    r.handle_timeout(10_000);
    assert!(matches!(state(&r, id), JobState::Failed { .. }));
}

#[test]
fn durations_read_naturally() {
    assert_eq!(explain::duration(300), "300 ms");
    assert_eq!(explain::duration(10_000), "10 s");
    assert_eq!(explain::duration(1_500), "1.5 s");
}

#[test]
fn events_are_plain_serde_for_the_store() {
    let events = [
        RequesterEvent::Announced,
        RequesterEvent::Completed {
            node: node(1),
            execution_id: ExecutionId(2),
            result_cid: result_cid(1),
            exit_code: 0,
        },
        RequesterEvent::JobFailed {
            failure: Failure::new(FailureCause::TotalTimeout, "why"),
        },
    ];
    for event in events {
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            serde_json::from_str::<RequesterEvent>(&json).unwrap(),
            event
        );
    }
    assert_eq!(
        serde_json::to_string(&RequesterEvent::Announced).unwrap(),
        r#"{"event":"announced"}"#
    );
}

// Databases written before failures had causes still load: a bare reason
// reads as cause `other`, in job states, execution states and events.
#[test]
fn stored_failures_without_a_cause_still_load() {
    let old = Failure::new(FailureCause::Other, "it broke");
    let job: JobState = serde_json::from_str(r#"{"state":"failed","reason":"it broke"}"#).unwrap();
    assert_eq!(
        job,
        JobState::Failed {
            failure: old.clone()
        }
    );
    let execution: ExecutionState =
        serde_json::from_str(r#"{"state":"failed","reason":"it broke"}"#).unwrap();
    assert_eq!(
        execution,
        ExecutionState::Failed {
            failure: old.clone()
        }
    );
    let event: RequesterEvent =
        serde_json::from_str(r#"{"event":"job_failed","reason":"it broke"}"#).unwrap();
    assert_eq!(event, RequesterEvent::JobFailed { failure: old });
    // Today's form names the cause.
    let now = JobState::Failed {
        failure: Failure::new(FailureCause::TotalTimeout, "late"),
    };
    let json = serde_json::to_string(&now).unwrap();
    assert_eq!(
        json,
        r#"{"state":"failed","failure":{"cause":"total_timeout","detail":"late"}}"#
    );
    assert_eq!(serde_json::from_str::<JobState>(&json).unwrap(), now);
}

// R-OPS-2: a job stored before the backlog timeout existed loads, and
// waits as long as it did then (its queue timeout), busy nodes or not.
#[test]
fn records_from_before_the_backlog_timeout_still_load() {
    let mut r = requester(1);
    let id = submit(&mut r, 1);
    refuse(&mut r, id, 1, busy(1));
    let mut stored = serde_json::to_value(r.job(&id).unwrap()).unwrap();
    let fields = stored.as_object_mut().unwrap();
    assert!(fields.remove("backlog_timeout_ms").is_some());
    assert!(fields.remove("busy_refusals").is_some());
    let old: JobRecord = serde_json::from_value(stored).unwrap();
    assert_eq!((old.backlog_timeout_ms, old.busy_refusals), (0, 0));
    assert_eq!(old.wait_limit_ms(), 10_000);
    let mut restarted = requester(1);
    restarted.restore(5_000, old);
    restarted.handle_timeout(10_000);
    assert!(matches!(state(&restarted, id), JobState::Failed { .. }));
}

// R-POL-3: a node whose info says it is full is explained as busy.
#[test]
fn r_pol_3_full_nodes_are_explained_as_busy() {
    let mut r = requester(1);
    r.handle(
        0,
        RequesterInput::NodeInfo {
            from: node(1),
            info: NodeInfo {
                node: node(1),
                engines: vec!["docker".into()],
                capacity: 2,
                running: 2,
                accept_network: NoNet,
                allowlist_digest: None,
                api_addrs: vec![],
                p2p_addrs: vec![],
                data_addrs: vec![],
                relay_urls: vec![],
                resources: Default::default(),
                seq: 3,
            },
        },
    );
    let id = submit(&mut r, 1);
    r.handle_timeout(10_000);
    assert_eq!(
        failure(&r, id),
        "no node accepts this job: 1 node: no free slot"
    );
}

// The spec's total timeout bounds the whole job, retries included.
#[test]
fn the_total_timeout_ends_a_running_job() {
    let mut r = requester(1);
    let mut s = spec("docker", NoNet, &[], 1);
    s.tasks[0].timeouts.total_timeout = Some(5);
    let id = r.submit(100, s, 0, vec![]).unwrap();
    drain(&mut r);
    bid(&mut r, 101, id, 1, 0);
    r.handle_timeout(400);
    drain(&mut r);
    r.handle_timeout(5_099);
    assert_eq!(state(&r, id), JobState::Running);
    r.handle_timeout(5_100);
    let out = drain(&mut r);
    assert_eq!(cancels(&out), vec![node(1)]);
    assert_eq!(
        failure(&r, id),
        "the job did not finish within its total timeout of 5 s (0 of 1 executions completed)"
    );
}

/// The draws each (re-)announcement of a job asks for, in order.
fn draws_until_the_end(r: &mut Requester) -> Vec<Option<u32>> {
    let mut draws = Vec::new();
    loop {
        for out in drain(r) {
            if let RequesterOutput::Publish(a) = out {
                draws.push(a.draw_ppm);
            }
        }
        let Some(t) = r.poll_timeout() else {
            return draws;
        };
        r.handle_timeout(t);
    }
}

// Bounded bids per job (issue 7, R-SIM-1 at scale): in a network of known
// size the first announcement draws `draw_answers` nodes per execution, and
// every re-announcement four times as many, until it asks everyone.
#[test]
fn a_known_network_is_drawn_from_and_the_draw_widens() {
    let mut r = requester(1);
    r.set_network_size(100_000);
    r.submit(0, spec("docker", NoNet, &[], 2), 1_000, vec![])
        .unwrap();
    // 24 answers per execution, 2 executions, of 100,000 nodes: 480 ppm.
    assert_eq!(
        draws_until_the_end(&mut r),
        vec![
            Some(480),
            Some(1_920),
            Some(7_680),
            Some(30_720),
            Some(122_880),
            Some(491_520),
            None
        ]
    );
}

// Small or unknown networks are asked whole, as before draws existed.
#[test]
fn small_or_unknown_networks_are_asked_whole() {
    let mut r = requester(1);
    let id = r
        .submit(0, spec("docker", NoNet, &[], 1), 1_000, vec![])
        .unwrap();
    assert_eq!(r.job(&id).unwrap().announce.draw_ppm, None);
    r.set_network_size(20);
    let id = r
        .submit(0, spec("docker", NoNet, &[], 1), 2_000, vec![])
        .unwrap();
    assert_eq!(r.job(&id).unwrap().announce.draw_ppm, None);
    let mut config = RequesterConfig::new(node(ME), 1);
    config.draw_answers = 0;
    let mut r = Requester::new(config);
    r.set_network_size(1_000_000);
    let id = r
        .submit(0, spec("docker", NoNet, &[], 1), 1_000, vec![])
        .unwrap();
    assert_eq!(r.job(&id).unwrap().announce.draw_ppm, None);
}

// R-POL-3: a job that timed out while only part of the network was asked
// says so, instead of claiming that no node at all accepts it.
#[test]
fn r_pol_3_a_partial_draw_is_named_in_the_failure() {
    let mut config = RequesterConfig::new(node(ME), 1);
    config.queue_timeout_ms = 700;
    let mut r = Requester::new(config);
    r.set_network_size(1_000_000);
    let id = r
        .submit(0, spec("docker", Full, &[], 1), 1_000, vec![])
        .unwrap();
    refuse(
        &mut r,
        id,
        3,
        RefuseReason::NetworkNotAccepted {
            requested: Full,
            accepted: NoNet,
        },
    );
    draws_until_the_end(&mut r);
    let reason = failure(&r, id);
    assert!(
        reason.starts_with("no drawn node accepts this job (0.0% of the nodes asked): 1 node: "),
        "{reason}"
    );
}

// R-POL-4: once every known node has answered, the best bid wins at once;
// the window only waits for nodes that have not answered.
#[test]
fn r_pol_4_awards_early_when_every_known_node_answered() {
    let mut r = requester(1);
    for n in [1, 2] {
        let info = NodeInfo {
            node: node(n),
            engines: vec!["docker".into()],
            capacity: 4,
            running: 0,
            accept_network: NoNet,
            allowlist_digest: None,
            api_addrs: vec![],
            p2p_addrs: vec![],
            data_addrs: vec![],
            relay_urls: vec![],
            resources: Default::default(),
            seq: 1,
        };
        r.handle(
            0,
            RequesterInput::NodeInfo {
                from: node(n),
                info,
            },
        );
    }
    let id = r
        .submit(0, spec("docker", NoNet, &[], 1), 0, vec![])
        .unwrap();
    drain(&mut r);
    bid(&mut r, 5, id, 1, 3);
    assert!(
        awards(&drain(&mut r)).is_empty(),
        "node 2 has not answered yet"
    );
    bid(&mut r, 8, id, 2, 0);
    assert_eq!(
        awards(&drain(&mut r))
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        vec![node(2)],
        "awarded at 8 ms, to the node running fewer jobs, not at the window's end"
    );

    // A node that never sent node info does not hold the window, but one
    // that is known and silent does, until the window closes.
    let id = r
        .submit(10, spec("docker", NoNet, &[], 2), 1, vec![])
        .unwrap();
    drain(&mut r);
    bid(&mut r, 12, id, 1, 0);
    assert!(
        awards(&drain(&mut r)).is_empty(),
        "node 2 is known and has not answered"
    );
    r.handle_timeout(10 + r.config().bid_window_ms);
    assert!(!awards(&drain(&mut r)).is_empty(), "the window closed");
}

// R-POL-4: spares beyond `max_spares` are released, freeing their nodes' slots.
#[test]
fn r_pol_4_releases_spare_bids_beyond_the_few_it_keeps() {
    let mut r = requester(1);
    let id = r
        .submit(0, spec("docker", NoNet, &[], 1), 0, vec![])
        .unwrap();
    drain(&mut r);
    for n in 1..=5 {
        bid(&mut r, 1, id, n, u32::from(n));
    }
    drain(&mut r);
    r.handle_timeout(r.config().bid_window_ms);
    let out = drain(&mut r);
    assert_eq!(awards(&out).len(), 1);
    let mut released = cancels(&out);
    released.sort();
    assert_eq!(
        released,
        vec![node(4), node(5)],
        "the two worst of four spares"
    );
    assert_eq!(r.job(&id).unwrap().bids.len(), 2);
    // A late bid is released at once.
    bid(&mut r, 2, id, 6, 9);
    assert_eq!(cancels(&drain(&mut r)), vec![node(6)]);
}

// R-POL-4: every bid holds a slot on its node; a bid this requester will
// never award (the job ended, is unknown, or the node already had its
// attempt) is released at once, not left to its TTL. A restarted node
// bidding on jobs placed while it was away otherwise sits on its slots.
#[test]
fn r_pol_4_releases_bids_it_will_never_award() {
    let mut r = requester(1);
    let id = submit(&mut r, 1);
    bid(&mut r, 1, id, 1, 0);
    r.handle_timeout(r.config().bid_window_ms);
    assert_eq!(awards(&drain(&mut r)), vec![(node(1), ExecutionId(0))]);
    // Node 1 declines its award: it already had its attempt.
    decline(&mut r, 10, id, 1, 0);
    drain(&mut r);
    bid(&mut r, 11, id, 1, 0);
    let out = drain(&mut r);
    assert_eq!(cancels(&out), vec![node(1)], "a tried node's bid");
    assert!(awards(&out).is_empty());
    // Node 2 takes it and completes.
    bid(&mut r, 12, id, 2, 0);
    assert_eq!(awards(&drain(&mut r)), vec![(node(2), ExecutionId(1))]);
    result(&mut r, 20, id, 2, 2, 1, true);
    drain(&mut r);
    assert_eq!(state(&r, id), JobState::Completed);
    bid(&mut r, 21, id, 3, 0);
    assert_eq!(cancels(&drain(&mut r)), vec![node(3)], "an ended job");
    let unknown = JobId::compute(&spec("wasm", NoNet, &[], 1), &node(9), 1).unwrap();
    bid(&mut r, 22, unknown, 4, 0);
    assert_eq!(cancels(&drain(&mut r)), vec![node(4)], "an unknown job");
    // A forged bid (sent for another bidder) is not answered.
    r.handle(
        23,
        RequesterInput::Bid {
            from: node(5),
            bid: Bid {
                job_id: unknown,
                bidder: node(6),
                running_jobs: 0,
                held_bytes: 0,
                fetch_ms: None,
            },
        },
    );
    assert!(cancels(&drain(&mut r)).is_empty());
}

// A bid beyond the job's `max_bids_per_job` best is released too.
#[test]
fn r_pol_4_releases_bids_beyond_the_cap() {
    let mut config = RequesterConfig::new(node(ME), 1);
    config.max_bids_per_job = 2;
    let mut r = Requester::new(config);
    let id = submit(&mut r, 1);
    bid(&mut r, 1, id, 1, 0);
    bid(&mut r, 2, id, 2, 0);
    drain(&mut r);
    bid(&mut r, 3, id, 3, 5);
    assert_eq!(cancels(&drain(&mut r)), vec![node(3)]);
    assert_eq!(r.job(&id).unwrap().bids.len(), 2);
}

/// A job with 1 GiB of inputs this node holds and serves at `source_bps`,
/// and an `ExecutionTimeout` of 60 s.
fn submit_with_inputs(r: &mut Requester, at: u64, source_bps: u64) -> JobId {
    let mut s = spec("docker", NoNet, &[], 1);
    s.tasks[0].timeouts.execution_timeout = Some(60);
    let sources = Sources {
        providers: vec!["here".into()],
        input_bytes: Some(1 << 30),
        source_bps: Some(source_bps),
    };
    let id = r.submit_with(at, s, at, sources).unwrap();
    let announced = drain(r).into_iter().find_map(|o| match o {
        RequesterOutput::Publish(a) if a.job_id == id => Some(a),
        _ => None,
    });
    let announced = announced.expect("announced");
    assert_eq!(
        (announced.input_bytes, announced.source_bps),
        (Some(1 << 30), Some(source_bps))
    );
    id
}

fn bid_fetching(
    r: &mut Requester,
    now: u64,
    job_id: JobId,
    n: u8,
    running_jobs: u32,
    fetch_ms: Option<u64>,
) {
    r.handle(
        now,
        RequesterInput::Bid {
            from: node(n),
            bid: Bid {
                job_id,
                bidder: node(n),
                running_jobs,
                held_bytes: 0,
                fetch_ms,
            },
        },
    );
}

// R-POL-4 with data locality (R-PLC-1): a node that holds the inputs, or
// fetches them seconds sooner, wins over a less loaded one; within the same
// second, the load decides.
#[test]
fn r_pol_4_prefers_data_held_then_the_faster_fetch_then_load() {
    let mut r = requester(1);
    let id = submit_with_inputs(&mut r, 0, 5_000_000_000);
    bid_fetching(&mut r, 1, id, 1, 0, Some(8_600));
    bid_fetching(&mut r, 2, id, 2, 3, Some(0));
    bid_fetching(&mut r, 3, id, 3, 0, Some(1_700));
    bid_fetching(&mut r, 4, id, 4, 1, Some(1_100));
    r.handle_timeout(300);
    assert_eq!(awards(&drain(&mut r)), vec![(node(2), ExecutionId(0))]);
    let spares: Vec<NodeId> = r.job(&id).unwrap().bids.iter().map(|b| b.node).collect();
    assert_eq!(spares[..2], [node(3), node(4)]);
}

// R-PLC-1: a job whose inputs no node holding them takes, and that would
// take longer than its ExecutionTimeout to fetch from the requester, fails
// at once with the numbers, not after its queue timeout.
#[test]
fn r_plc_1_inputs_out_of_reach_fail_at_once_with_the_numbers() {
    let mut r = requester(1);
    let id = submit_with_inputs(&mut r, 0, 50_000_000);
    let too_slow = RefuseReason::InputsTooSlow {
        bytes: 1 << 30,
        bps: 50_000_000,
        fetch_ms: 171_799,
        timeout_ms: 60_000,
    };
    refuse(&mut r, id, 1, too_slow.clone());
    refuse(&mut r, id, 2, too_slow);
    let mut now = 0;
    while !state(&r, id).is_terminal() && now < 10_000 {
        now = r.poll_timeout().unwrap();
        r.handle_timeout(now);
    }
    assert!(now < 5_000, "failed after {now} ms");
    let failure = failed(&r, id);
    assert_eq!(failure.cause, FailureCause::NoNodeAccepts);
    assert_eq!(
        failure.detail,
        "no node holding its inputs is left to take the job, and fetching them (1.0 GiB) from this node \
         would take at least 171.7 s at 50 Mbit/s, the fastest it serves at, longer than the \
         job's ExecutionTimeout (60 s): raise ExecutionTimeout, or add the inputs to a node with \
         a faster link and submit the job there; nodes: 2 nodes: its inputs (1.0 GiB) would not \
         arrive within its ExecutionTimeout (60 s)"
    );
}

// R-PLC-1: ... but a busy node may be one that holds them: the job waits.
#[test]
fn r_plc_1_inputs_out_of_reach_wait_while_a_node_is_busy() {
    let mut r = requester(1);
    let id = submit_with_inputs(&mut r, 0, 50_000_000);
    refuse(&mut r, id, 1, busy(4));
    for now in (300..20_000).step_by(300) {
        r.handle_timeout(now);
    }
    assert!(!state(&r, id).is_terminal(), "{:?}", state(&r, id));
    // A fast source leaves it to the nodes too.
    let id = submit_with_inputs(&mut r, 20_000, 5_000_000_000);
    for now in (20_000..25_000).step_by(300) {
        r.handle_timeout(now);
    }
    assert!(!state(&r, id).is_terminal());
}

// R-PLC-1: with inputs that cannot leave the requester in time, only
// holders can run the job; a Count of 2 with one holder can never
// complete, and fails once that holder has its attempt, not at the queue
// timeout.
#[test]
fn r_plc_1_fewer_holders_than_the_count_fail_at_once() {
    let mut r = requester(1);
    let mut s = spec("docker", NoNet, &[], 2);
    s.tasks[0].timeouts.execution_timeout = Some(60);
    let sources = Sources {
        providers: vec!["here".into()],
        input_bytes: Some(1 << 30),
        source_bps: Some(50_000_000),
    };
    let id = r.submit_with(0, s, 0, sources).unwrap();
    drain(&mut r);
    bid_fetching(&mut r, 10, id, 1, 0, Some(0));
    r.handle_timeout(300);
    assert_eq!(awards(&drain(&mut r)), vec![(node(1), ExecutionId(0))]);
    let mut now = 300;
    while !state(&r, id).is_terminal() && now < 10_000 {
        now = r.poll_timeout().unwrap();
        r.handle_timeout(now);
    }
    assert!(now < 2_000, "failed after {now} ms");
    assert!(
        failure(&r, id).starts_with("no node holding its inputs is left to take the job"),
        "{}",
        failure(&r, id)
    );
}

fn submit_ops(r: &mut Requester, queue_timeout_s: u64) -> JobId {
    let mut s = spec("docker", NoNet, &[], 1);
    s.r#type = crate::job::JobType::Ops;
    s.tasks[0].timeouts.queue_timeout = Some(queue_timeout_s);
    let id = r.submit(0, s, 1_000, vec![]).unwrap();
    let out = drain(r);
    let announced: Vec<&Announce> = out
        .iter()
        .filter_map(|o| match o {
            RequesterOutput::Publish(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(announced.len(), 1);
    assert_eq!(announced[0].draw_ppm, None, "an ops job asks every node");
    id
}

// Issue 17: an ops job runs once on every node that bids before its queue
// timeout, Count aside: bids in the window and after it are all awarded,
// a failed node's run is not given to another, a bid after the queue
// timeout is released, and the job fails naming the node that failed.
#[test]
fn ops_jobs_run_once_on_every_node_that_bids_in_time() {
    let mut r = requester(3);
    r.set_network_size(1000);
    let id = submit_ops(&mut r, 5);
    for n in 1..=3 {
        bid(&mut r, 10, id, n, 0);
    }
    r.handle_timeout(300);
    let out = drain(&mut r);
    let awarded = awards(&out);
    assert_eq!(awarded.len(), 3, "every bidder, not Count (1)");
    assert!(cancels(&out).is_empty());
    // A late bidder within the queue timeout is awarded at once.
    bid(&mut r, 2_000, id, 4, 0);
    let out = drain(&mut r);
    assert_eq!(awards(&out), vec![(node(4), ExecutionId(3))]);
    // Three complete, one fails: not re-awarded, even with a bid waiting.
    for (to, e) in &awarded {
        let n = (1..=3).find(|i| node(*i) == *to).unwrap();
        result(&mut r, 2_100, id, n, n, e.0, true);
    }
    assert_eq!(state(&r, id), JobState::Running, "still taking nodes");
    result(&mut r, 2_200, id, 4, 4, 3, false);
    bid(&mut r, 2_300, id, 4, 0);
    assert!(awards(&drain(&mut r)).is_empty(), "node 4 had its attempt");
    r.handle_timeout(5_000);
    drain(&mut r);
    bid(&mut r, 5_100, id, 5, 0);
    let out = drain(&mut r);
    assert!(awards(&out).is_empty());
    let JobState::Failed { failure } = state(&r, id) else {
        panic!("{:?}", state(&r, id))
    };
    assert_eq!(failure.cause, FailureCause::OpsIncomplete);
    assert!(
        failure
            .detail
            .starts_with("3 of the 4 nodes that took the ops job completed it")
            && failure.detail.contains(&node(4).to_string()),
        "{failure}"
    );
}

// Issue 17: an ops job whose nodes all complete ends when its queue
// timeout closes; one no node bids on fails with the queue timeout's
// explanation.
#[test]
fn ops_jobs_complete_when_every_node_did_and_fail_when_none_bid() {
    let mut r = requester(4);
    let id = submit_ops(&mut r, 2);
    bid(&mut r, 10, id, 1, 0);
    bid(&mut r, 20, id, 2, 0);
    r.handle_timeout(300);
    let awarded = awards(&drain(&mut r));
    let index = |n: &NodeId| (1..=2).find(|i| node(*i) == *n).unwrap();
    let (first, second) = (awarded[0], awarded[1]);
    result(
        &mut r,
        500,
        id,
        index(&first.0),
        index(&first.0),
        first.1.0,
        true,
    );
    assert_eq!(state(&r, id), JobState::Running);
    // Past the queue timeout it waits for the node still running, and
    // takes no new one.
    r.handle_timeout(2_000);
    drain(&mut r);
    assert_eq!(state(&r, id), JobState::Running);
    bid(&mut r, 2_100, id, 3, 0);
    let out = drain(&mut r);
    assert!(awards(&out).is_empty());
    assert_eq!(cancels(&out), vec![node(3)], "its bid is released");
    let i = index(&second.0);
    result(&mut r, 2_200, id, i, i, second.1.0, true);
    assert!(events(&drain(&mut r)).contains(&RequesterEvent::JobCompleted));
    assert_eq!(state(&r, id), JobState::Completed);
    assert_eq!(r.job(&id).unwrap().completed(), 2);

    let mut r = requester(5);
    let id = submit_ops(&mut r, 2);
    refuse(
        &mut r,
        id,
        1,
        RefuseReason::EngineUnavailable {
            engine: "docker".into(),
        },
    );
    r.handle_timeout(2_000);
    let JobState::Failed { failure } = state(&r, id) else {
        panic!("{:?}", state(&r, id))
    };
    assert_eq!(failure.cause, FailureCause::NoNodeAccepts, "{failure}");
}
