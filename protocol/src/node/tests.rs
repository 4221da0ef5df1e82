//! The node-level rules, one by one; the whole network runs in
//! `testnet.rs`'s property tests.

use super::*;
use crate::failure::FailureCause;
use crate::job::NetworkMode;
use crate::messages::{Award, Bid};
use crate::testnet::{node, policy, result_cid, spec};

/// Node `i` with capacity `capacity`, running WASM and Docker jobs.
fn make(i: u8, capacity: u32) -> Node {
    let mut config = NodeConfig::new(
        node(i),
        policy(NetworkMode::None, None),
        ["wasm".to_string(), "docker".to_string()],
        7,
    );
    config.compute.capacity = capacity;
    Node::new(config)
}

fn drain(n: &mut Node) -> Vec<NodeOutput> {
    std::iter::from_fn(|| n.poll_output()).collect()
}

/// Runs timers up to `until`, collecting outputs.
fn run_until(n: &mut Node, until: u64) -> Vec<NodeOutput> {
    let mut out = drain(n);
    while let Some(at) = n.poll_timeout().filter(|at| *at <= until) {
        n.handle_timeout(at);
        out.extend(drain(n));
    }
    out
}

fn job_events(out: &[NodeOutput]) -> Vec<&RequesterEvent> {
    out.iter()
        .filter_map(|o| match o {
            NodeOutput::JobEvent { event, .. } => Some(event),
            _ => None,
        })
        .collect()
}

/// Submits a job on `a` and has node 2 bid on it; returns its id and the
/// award `a` sends.
fn awarded_to_peer(a: &mut Node) -> (JobId, Award) {
    let job = a
        .submit(0, spec("wasm", NetworkMode::None, &[], 1), 0, vec![])
        .unwrap();
    let bid = Bid {
        job_id: job,
        bidder: node(2),
        running_jobs: 0,
        held_bytes: 0,
        fetch_ms: None,
    };
    a.handle(
        10,
        NodeInput::Direct {
            from: node(2),
            message: DirectMessage::Bid(bid),
        },
    );
    let out = run_until(a, 1_000);
    let award = out
        .iter()
        .find_map(|o| match o {
            NodeOutput::ToCompute {
                to,
                msg: ToCompute::Award(award),
            } if *to == node(2) => Some(award.clone()),
            _ => None,
        })
        .expect("the bidder was awarded");
    (job, award)
}

#[test]
fn a_nodes_own_job_goes_round_inside_it() {
    let mut a = make(1, 1);
    let job = a
        .submit(0, spec("wasm", NetworkMode::None, &[], 1), 0, vec![])
        .unwrap();
    let out = run_until(&mut a, 1_000);
    // Announced to the network, bid on and awarded inside, started here.
    assert!(out.iter().any(|o| matches!(o, NodeOutput::Publish(_))));
    assert!(
        !out.iter().any(|o| matches!(
            o,
            NodeOutput::ToCompute { .. } | NodeOutput::ToRequester { .. }
        )),
        "nothing between its two halves leaves the node: {out:?}"
    );
    let (job_id, execution_id) = out
        .iter()
        .find_map(|o| match o {
            NodeOutput::Start {
                job_id,
                execution_id,
                ..
            } => Some((*job_id, *execution_id)),
            _ => None,
        })
        .expect("the job started here");
    assert_eq!(job_id, job);
    a.handle(
        2_000,
        NodeInput::ExecutionFinished {
            job_id,
            execution_id,
            outcome: Outcome::Completed {
                result_cid: result_cid(1),
                exit_code: 0,
            },
        },
    );
    let out = drain(&mut a);
    assert!(
        out.iter().any(|o| matches!(
            o,
            NodeOutput::ResultAccepted { node: n, .. } if *n == node(1)
        )),
        "{out:?}"
    );
    assert!(job_events(&out).contains(&&RequesterEvent::JobCompleted));
}

#[test]
fn an_awarded_node_that_stays_away_fails_its_execution_after_the_grace() {
    let mut a = make(1, 0);
    let (job, award) = awarded_to_peer(&mut a);
    a.handle(2_000, NodeInput::Disconnected(node(2)));
    let grace = a.config().disconnect_grace_ms;
    let before = run_until(&mut a, 2_000 + grace - 1);
    assert!(
        !job_events(&before)
            .iter()
            .any(|e| matches!(e, RequesterEvent::ExecutionFailed { .. })),
        "failed before the grace ran out: {before:?}"
    );
    let after = run_until(&mut a, 2_000 + grace);
    let failed = job_events(&after).into_iter().find_map(|e| match e {
        RequesterEvent::ExecutionFailed {
            node: n,
            execution_id,
            failure,
        } => Some((*n, *execution_id, failure.clone())),
        _ => None,
    });
    let (n, execution_id, failure) = failed.expect("the execution failed");
    assert_eq!((n, execution_id), (node(2), award.execution_id));
    assert_eq!(failure.cause, FailureCause::NodeLost);
    assert!(failure.detail.contains("disconnected"), "{failure:?}");
    assert!(matches!(
        a.job(&job).unwrap().executions[0].state,
        ExecutionState::Failed { .. }
    ));
}

#[test]
fn a_node_that_comes_back_in_time_keeps_its_execution() {
    let mut a = make(1, 0);
    let (job, _) = awarded_to_peer(&mut a);
    a.handle(2_000, NodeInput::Disconnected(node(2)));
    a.handle(3_000, NodeInput::Connected(node(2)));
    let out = run_until(&mut a, 10_000);
    assert!(
        !job_events(&out)
            .iter()
            .any(|e| matches!(e, RequesterEvent::ExecutionFailed { .. })),
        "{out:?}"
    );
    assert_eq!(
        a.job(&job).unwrap().executions[0].state,
        ExecutionState::Awarded
    );
}

#[test]
fn an_undeliverable_award_counts_as_declined() {
    let mut a = make(1, 0);
    let (_, award) = awarded_to_peer(&mut a);
    a.handle(
        1_500,
        NodeInput::Undelivered {
            to: node(2),
            msg: Outgoing::ToCompute(ToCompute::Award(award.clone())),
            error: "no route".into(),
        },
    );
    let out = drain(&mut a);
    let failure = job_events(&out)
        .into_iter()
        .find_map(|e| match e {
            RequesterEvent::ExecutionFailed { failure, .. } => Some(failure.clone()),
            _ => None,
        })
        .expect("the execution failed");
    assert_eq!(failure.cause, FailureCause::NodeLost);
    assert!(
        failure.detail.contains("could not be delivered: no route"),
        "{failure:?}"
    );
}

#[test]
fn providers_are_kept_only_for_executions_this_node_awarded() {
    let mut a = make(1, 0);
    let (job, award) = awarded_to_peer(&mut a);
    // A stranger reports a result for the same execution: not its own.
    let forged = ResultMsg {
        job_id: job,
        execution_id: award.execution_id,
        node: node(3),
        outcome: Outcome::Completed {
            result_cid: result_cid(3),
            exit_code: 0,
        },
        providers: vec!["forged".into()],
    };
    a.handle(
        2_000,
        NodeInput::Direct {
            from: node(3),
            message: DirectMessage::Result(forged),
        },
    );
    assert!(a.result_providers.is_empty());
    let real = ResultMsg {
        job_id: job,
        execution_id: award.execution_id,
        node: node(2),
        outcome: Outcome::Completed {
            result_cid: result_cid(2),
            exit_code: 0,
        },
        providers: vec!["real".into()],
    };
    a.handle(
        2_100,
        NodeInput::Direct {
            from: node(2),
            message: DirectMessage::Result(real),
        },
    );
    let out = drain(&mut a);
    let providers = out
        .iter()
        .find_map(|o| match o {
            NodeOutput::ResultAccepted { providers, .. } => Some(providers.clone()),
            _ => None,
        })
        .expect("accepted");
    assert_eq!(providers, vec!["real".to_string()]);
    assert!(a.result_providers.is_empty(), "nothing kept once taken");
}

#[test]
fn ended_jobs_are_forgotten_after_the_retention_window() {
    let mut a = make(1, 0);
    let job = a
        .submit(0, spec("wasm", NetworkMode::None, &[], 1), 0, vec![])
        .unwrap();
    a.cancel(100, job, "not needed").unwrap();
    let out = drain(&mut a);
    assert!(job_events(&out).contains(&&RequesterEvent::JobCancelled));
    let retention = a.config().retention_ms.expect("the default forgets");
    run_until(&mut a, 100 + retention - 1);
    assert!(a.job(&job).is_some(), "kept within the window");
    run_until(&mut a, 100 + retention);
    assert!(a.job(&job).is_none(), "forgotten after it");
    assert_eq!(a.requester().jobs().count(), 0);
}

#[test]
fn node_info_goes_out_soon_after_a_connection_then_on_its_interval() {
    let mut a = make(1, 1);
    a.handle(1_000, NodeInput::Connected(node(2)));
    let infos = |out: &[NodeOutput]| {
        out.iter()
            .filter(|o| matches!(o, NodeOutput::NodeInfoDue))
            .count()
    };
    assert_eq!(infos(&run_until(&mut a, 1_299)), 0);
    assert_eq!(infos(&run_until(&mut a, 1_300)), 1);
    // A burst of connections gives one message.
    a.handle(2_000, NodeInput::Connected(node(3)));
    a.handle(2_100, NodeInput::Connected(node(4)));
    assert_eq!(infos(&run_until(&mut a, 2_400)), 1);
    let interval = a.config().node_info_interval_ms;
    assert_eq!(infos(&run_until(&mut a, 2_300 + interval - 1)), 0);
    assert_eq!(infos(&run_until(&mut a, 2_300 + interval)), 1);
}

#[test]
fn the_shipped_defaults_keep_no_spare_bids() {
    let config = NodeConfig::new(node(1), policy(NetworkMode::None, None), [], 1);
    assert_eq!(config.requester.max_spares, 0);
    assert_eq!(config.disconnect_grace_ms, 3_000);
}

#[test]
fn a_restarted_node_fails_what_it_had_awarded_itself() {
    let mut a = make(1, 1);
    let job = a
        .submit(0, spec("wasm", NetworkMode::None, &[], 1), 0, vec![])
        .unwrap();
    let out = run_until(&mut a, 1_000);
    assert!(out.iter().any(|o| matches!(o, NodeOutput::Start { .. })));
    // The node stops; a new one starts from the stored record.
    let record = a.job(&job).unwrap().clone();
    let mut again = make(1, 1);
    again.restore(5_000, record);
    let out = drain(&mut again);
    let failure = job_events(&out)
        .into_iter()
        .find_map(|e| match e {
            RequesterEvent::ExecutionFailed { failure, .. } => Some(failure.clone()),
            _ => None,
        })
        .expect("the lost execution failed at once");
    assert_eq!(failure.cause, FailureCause::NodeRestarted);
    assert!(failure.detail.contains("restarted"), "{failure:?}");
}

#[test]
fn after_a_restart_awarded_nodes_must_connect_within_the_grace() {
    let mut a = make(1, 0);
    let (job, _) = awarded_to_peer(&mut a);
    let record = a.job(&job).unwrap().clone();
    // Node 2 comes back: nothing fails.
    let mut again = make(1, 0);
    again.restore(5_000, record.clone());
    again.handle(6_000, NodeInput::Connected(node(2)));
    let out = run_until(&mut again, 60_000);
    assert!(
        !job_events(&out)
            .iter()
            .any(|e| matches!(e, RequesterEvent::ExecutionFailed { .. })),
        "{out:?}"
    );
    // Node 2 never shows up: its execution fails once the grace is over.
    let mut alone = make(1, 0);
    alone.restore(5_000, record);
    let grace = alone.config().restart_grace_ms;
    let before = run_until(&mut alone, 5_000 + grace - 1);
    assert!(
        !job_events(&before)
            .iter()
            .any(|e| matches!(e, RequesterEvent::ExecutionFailed { .. }))
    );
    let after = run_until(&mut alone, 5_000 + grace);
    assert!(
        job_events(&after)
            .iter()
            .any(|e| matches!(e, RequesterEvent::ExecutionFailed { node: n, .. } if *n == node(2))),
        "{after:?}"
    );
}

// R-SEC-5, issue 15: a node sends its own announcements no faster than its
// peers take them; a burst waits in its outbox, and a job whose QueueTimeout
// passes before its announcement left fails saying so, not blaming nodes.
#[test]
fn a_burst_of_announcements_is_paced_and_an_unsent_job_says_so() {
    let mut a = make(1, 0);
    let published = |out: &[NodeOutput]| {
        out.iter()
            .filter(|o| matches!(o, NodeOutput::Publish(_)))
            .count()
    };
    let mut jobs = Vec::new();
    let mut first = 0;
    for i in 0..200u64 {
        let mut s = spec("wasm", NetworkMode::None, &[], 1);
        s.tasks[0].timeouts.queue_timeout = Some(2);
        jobs.push(a.submit(0, s, i, vec![]).unwrap());
        first += published(&drain(&mut a));
    }
    let burst = (crate::rate::ANNOUNCE_RATE.burst / 2) as usize;
    assert_eq!(first, burst, "half the peers' burst at once");
    // One second later, about the rate more.
    let second = published(&run_until(&mut a, 1_000));
    let rate = crate::rate::ANNOUNCE_RATE.per_second as usize;
    assert!(
        (rate - 1..=rate + 1).contains(&second),
        "{second} in the next second"
    );
    // After the 2 s QueueTimeout: the last job never left this node.
    run_until(&mut a, 3_000);
    let last = a.job(jobs.last().unwrap()).unwrap();
    let crate::requester::JobState::Failed { failure } = &last.state else {
        panic!("{:?}", last.state)
    };
    assert_eq!(failure.cause, FailureCause::NoNodeAnswered);
    assert!(
        failure
            .detail
            .starts_with("the job's announcement never left this node"),
        "{failure}"
    );
    // The first one did leave: its failure is about the nodes.
    let crate::requester::JobState::Failed { failure } = &a.job(&jobs[0]).unwrap().state else {
        panic!()
    };
    assert!(!failure.detail.contains("never left"), "{failure}");
}
