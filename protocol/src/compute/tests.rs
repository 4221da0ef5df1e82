use super::*;
use crate::failure::{Failure, FailureCause};
use crate::job::NetworkMode::{self, Full, Http, None as NoNet};
use crate::messages::Announce;
use crate::testnet::{node, policy, result_cid, spec};

const ME: u8 = 1;
const REQ: u8 = 0;

fn compute(policy: AcceptancePolicy, capacity: u32) -> Compute {
    let mut config = ComputeConfig::new(node(ME), policy, ["docker"], 0);
    config.capacity = capacity;
    Compute::new(config)
}

fn announce_of(spec: JobSpec, at: u64) -> Announce {
    Announce::new(spec, node(REQ), at, vec!["provider".into()]).unwrap()
}

fn job(mode: NetworkMode, domains: &[&str]) -> Announce {
    announce_of(spec("docker", mode, domains, 1), 1)
}

fn drain(c: &mut Compute) -> Vec<ComputeOutput> {
    std::iter::from_fn(|| c.poll_output())
        .filter(|o| !matches!(o, ComputeOutput::Event { .. }))
        .collect()
}

fn sent(outputs: &[ComputeOutput]) -> Vec<ToRequester> {
    outputs
        .iter()
        .filter_map(|o| match o {
            ComputeOutput::Send { to, msg } => {
                assert_eq!(*to, node(REQ));
                Some(msg.clone())
            }
            _ => None,
        })
        .collect()
}

fn refusal(outputs: &[ComputeOutput]) -> RefuseReason {
    match sent(outputs).as_slice() {
        [ToRequester::Refuse(r)] => {
            assert_eq!(r.node, node(ME));
            r.reason.clone()
        }
        other => panic!("not one refusal: {other:?}"),
    }
}

fn award(c: &mut Compute, from: u8, a: &Announce, to: u8, e: u64) {
    c.handle(
        0,
        ComputeInput::Award {
            from: node(from),
            award: Award {
                job_id: a.job_id,
                execution_id: ExecutionId(e),
                node: node(to),
                partition: 0,
            },
        },
    );
}

fn declined(outputs: &[ComputeOutput]) -> String {
    match sent(outputs).as_slice() {
        [ToRequester::Decline(d)] => d.reason.clone(),
        other => panic!("not one decline: {other:?}"),
    }
}

fn started(outputs: &[ComputeOutput]) -> bool {
    outputs
        .iter()
        .any(|o| matches!(o, ComputeOutput::Start { .. }))
}

// R-POL-1..3: bid when the policy, the engine and a slot allow.
#[test]
fn r_pol_3_bids_when_everything_allows() {
    let mut c = compute(policy(Http, Some(&[".foo.com"])), 2);
    let a = job(Http, &["api.foo.com"]);
    c.handle(0, ComputeInput::announce(a.clone()));
    let out = drain(&mut c);
    assert_eq!(
        sent(&out),
        vec![ToRequester::Bid(Bid {
            job_id: a.job_id,
            bidder: node(ME),
            running_jobs: 0,
            held_bytes: 0,
            fetch_ms: None,
        })]
    );
    assert_eq!(c.open_bids(), 1);
    assert_eq!(c.poll_timeout(), Some(3_000));
}

// R-POL-1, R-POL-2: refusals say what the policy forbids.
#[test]
fn r_pol_1_refuses_what_the_policy_forbids() {
    let mut c = compute(policy(NoNet, None), 2);
    c.handle(0, ComputeInput::announce(job(Http, &["api.foo.com"])));
    assert_eq!(
        refusal(&drain(&mut c)),
        RefuseReason::NetworkNotAccepted {
            requested: Http,
            accepted: NoNet
        }
    );
    let mut c = compute(policy(Http, Some(&["example.org"])), 2);
    c.handle(0, ComputeInput::announce(job(Http, &["api.foo.com"])));
    assert_eq!(
        refusal(&drain(&mut c)).to_string(),
        "api.foo.com not in allowlist"
    );
    assert_eq!(c.open_bids(), 0);
}

// R-POL-3: the engine.
#[test]
fn r_pol_3_refuses_a_missing_engine() {
    let mut c = compute(policy(Full, None), 2);
    c.handle(
        0,
        ComputeInput::announce(announce_of(spec("wasm", NoNet, &[], 1), 1)),
    );
    assert_eq!(
        refusal(&drain(&mut c)),
        RefuseReason::EngineUnavailable {
            engine: "wasm".into()
        }
    );
}

// R-POL-3: capacity counts running executions and open bids.
#[test]
fn r_pol_3_refuses_when_full_and_bids_again_once_free() {
    let mut c = compute(policy(NoNet, None), 1);
    let first = job(NoNet, &[]);
    let second = announce_of(spec("docker", NoNet, &[], 1), 2);
    c.handle(0, ComputeInput::announce(first.clone()));
    drain(&mut c);
    c.handle(0, ComputeInput::announce(second.clone()));
    assert_eq!(
        refusal(&drain(&mut c)),
        RefuseReason::NoCapacity {
            running: 1,
            capacity: 1
        }
    );
    // The first bid expires: the slot is free, and the job refused for want
    // of it gets a bid at once, without waiting for a re-announcement.
    c.handle_timeout(3_000);
    assert!(matches!(
        sent(&drain(&mut c)).as_slice(),
        [ToRequester::Bid(b)] if b.job_id == second.job_id
    ));
    assert_eq!(c.open_bids(), 1);
    c.handle(3_001, ComputeInput::announce(second.clone()));
    assert!(drain(&mut c).is_empty(), "answered once");
}

// R-POL-3: no late bid for a job refused long ago, or one that no longer fits.
#[test]
fn late_bids_only_for_recent_jobs_that_still_fit() {
    let mut c = compute(policy(NoNet, None), 1);
    let first = job(NoNet, &[]);
    c.handle(0, ComputeInput::announce(first.clone()));
    c.handle(
        0,
        ComputeInput::announce(announce_of(spec("docker", NoNet, &[], 1), 2)),
    );
    drain(&mut c);
    // Freed 11 min later: the refused job is stale (its requester gave up
    // after 10 min).
    const STALE: u64 = 11 * 60 * 1000;
    c.handle(
        STALE,
        ComputeInput::Cancel {
            from: node(REQ),
            cancel: Cancel {
                job_id: first.job_id,
                reason: "released".into(),
            },
        },
    );
    assert!(sent(&drain(&mut c)).is_empty());
    assert_eq!(c.open_bids(), 0);
    // A job refused for capacity whose network the policy then forbids.
    c.handle(STALE + 1, ComputeInput::announce(first.clone()));
    c.handle(
        STALE + 2,
        ComputeInput::announce(announce_of(spec("docker", NoNet, &[], 1), 3)),
    );
    drain(&mut c);
    c.set_engines(["wasm".to_string()].into());
    c.handle_timeout(STALE + 10_000);
    assert!(
        sent(&drain(&mut c)).is_empty(),
        "the engine went away: no bid"
    );
}

// Issue 15 (queueing through a burst): a node remembers thousands of jobs
// it refused for want of a slot, the oldest first, and bids on them in
// that order as slots free, minutes later.
#[test]
fn a_backlog_is_bid_on_oldest_first_as_slots_free() {
    let mut c = compute(policy(NoNet, None), 1);
    let first = job(NoNet, &[]);
    c.handle(0, ComputeInput::announce(first.clone()));
    drain(&mut c);
    let backlog: Vec<Announce> = (0..MAX_WAITING as u64 + 10)
        .map(|i| announce_of(spec("docker", NoNet, &[], 1), 10 + i))
        .collect();
    for (i, a) in backlog.iter().enumerate() {
        c.handle(i as u64, ComputeInput::announce(a.clone()));
    }
    drain(&mut c);
    assert_eq!(c.waiting.len(), MAX_WAITING, "bounded");
    // Five minutes on, slots free one by one: the oldest waiting jobs get
    // the late bids, in order.
    let mut now = 5 * 60 * 1000;
    let mut bid_on = Vec::new();
    let mut current = first.clone();
    for _ in 0..3 {
        c.handle(
            now,
            ComputeInput::Cancel {
                from: node(REQ),
                cancel: Cancel {
                    job_id: current.job_id,
                    reason: "released".into(),
                },
            },
        );
        let bids: Vec<JobId> = sent(&drain(&mut c))
            .into_iter()
            .filter_map(|m| match m {
                ToRequester::Bid(b) => Some(b.job_id),
                _ => None,
            })
            .collect();
        assert_eq!(bids.len(), 1, "one slot, one late bid");
        bid_on.push(bids[0]);
        current = backlog
            .iter()
            .find(|a| a.job_id == bids[0])
            .unwrap()
            .clone();
        now += 1;
    }
    let oldest: Vec<JobId> = backlog.iter().take(3).map(|a| a.job_id).collect();
    assert_eq!(bid_on, oldest);
    // A job beyond the list is decided again when it is re-announced.
    let last = backlog.last().unwrap();
    c.handle(now, ComputeInput::announce(last.clone()));
    assert!(drain(&mut c).is_empty(), "no slot yet, and answered once");
    assert_eq!(c.waiting.len(), MAX_WAITING - 3 + 1);
}

// R-SEC-5: the jobs a node remembers for late bids are bounded in bytes
// too: a peer's large announcements cannot make it hold more than 16 MiB.
#[test]
fn the_backlog_is_bounded_in_bytes() {
    let mut c = compute(policy(NoNet, None), 1);
    c.handle(0, ComputeInput::announce(job(NoNet, &[])));
    let big = |at: u64| {
        let mut s = spec("docker", NoNet, &[], 1);
        s.tasks[0].env.insert("PAD".into(), "x".repeat(512 << 10));
        announce_of(s, at)
    };
    for at in 0..40 {
        c.handle(at, ComputeInput::announce(big(10 + at)));
    }
    let refusals = drain(&mut c).len();
    assert_eq!(refusals, 41, "one bid and 40 refusals");
    assert!(c.waiting.bytes <= MAX_WAITING_BYTES, "{}", c.waiting.bytes);
    assert!(
        (28..=32).contains(&c.waiting.len()),
        "{} of 40 half-MiB announcements kept",
        c.waiting.len()
    );
}

#[test]
fn an_announcement_is_answered_once() {
    let mut c = compute(policy(NoNet, None), 2);
    let a = job(NoNet, &[]);
    c.handle(0, ComputeInput::announce(a.clone()));
    assert_eq!(sent(&drain(&mut c)).len(), 1);
    c.handle(1, ComputeInput::announce(a.clone()));
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.open_bids(), 1);
    let r = job(Http, &["api.foo.com"]);
    c.handle(2, ComputeInput::announce(r.clone()));
    assert_eq!(sent(&drain(&mut c)).len(), 1);
    c.handle(3, ComputeInput::announce(r));
    assert!(drain(&mut c).is_empty(), "the refusal stands");
}

#[test]
fn an_award_against_an_open_bid_starts_the_job() {
    let mut c = compute(policy(NoNet, None), 1);
    let a = job(NoNet, &[]);
    c.handle(0, ComputeInput::announce(a.clone()));
    drain(&mut c);
    award(&mut c, REQ, &a, ME, 4);
    let out = drain(&mut c);
    assert_eq!(
        out,
        vec![ComputeOutput::Start {
            job_id: a.job_id,
            execution_id: ExecutionId(4),
            spec: a.spec.clone(),
            providers: vec!["provider".into()],
            partition: 0,
        }]
    );
    assert_eq!((c.running(), c.open_bids()), (1, 0));
    assert_eq!(c.poll_timeout(), None);
    // A repeated award of the same execution is ignored.
    award(&mut c, REQ, &a, ME, 4);
    assert!(drain(&mut c).is_empty());
}

#[test]
fn awards_from_others_or_for_others_are_ignored() {
    let mut c = compute(policy(NoNet, None), 1);
    let a = job(NoNet, &[]);
    c.handle(0, ComputeInput::announce(a.clone()));
    drain(&mut c);
    award(&mut c, 5, &a, ME, 0);
    award(&mut c, REQ, &a, 5, 0);
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.open_bids(), 1);
}

#[test]
fn an_award_without_an_open_bid_is_declined() {
    let mut c = compute(policy(NoNet, None), 1);
    let a = job(NoNet, &[]);
    award(&mut c, REQ, &a, ME, 0);
    assert_eq!(
        declined(&drain(&mut c)),
        "this node has no open bid for the job"
    );
    c.handle(0, ComputeInput::announce(a.clone()));
    drain(&mut c);
    c.handle_timeout(3_000);
    award(&mut c, REQ, &a, ME, 0);
    let out = drain(&mut c);
    assert!(!started(&out));
    assert_eq!(declined(&out), "the bid expired: bids stay open for 3 s");
}

// R-POL-2: the allowlist is reloaded between bid and award: the award is
// declined, saying why.
#[test]
fn r_pol_2_a_reloaded_policy_declines_the_award() {
    let mut c = compute(policy(Http, Some(&[".foo.com"])), 1);
    let a = job(Http, &["api.foo.com"]);
    c.handle(0, ComputeInput::announce(a.clone()));
    drain(&mut c);
    c.set_policy(policy(Http, Some(&["example.org"])));
    award(&mut c, REQ, &a, ME, 0);
    let out = drain(&mut c);
    assert!(!started(&out));
    assert_eq!(
        declined(&out),
        "no longer accepted: api.foo.com not in allowlist"
    );
    assert_eq!((c.running(), c.open_bids()), (0, 0));
}

#[test]
fn a_lowered_capacity_or_lost_engine_declines_the_award() {
    let mut c = compute(policy(NoNet, None), 2);
    let a = job(NoNet, &[]);
    let b = announce_of(spec("docker", NoNet, &[], 1), 2);
    c.handle(0, ComputeInput::announce(a.clone()));
    c.handle(0, ComputeInput::announce(b.clone()));
    drain(&mut c);
    award(&mut c, REQ, &a, ME, 0);
    assert!(started(&drain(&mut c)));
    c.set_capacity(1);
    award(&mut c, REQ, &b, ME, 0);
    assert_eq!(
        declined(&drain(&mut c)),
        "no longer accepted: no free slot (1 of 1 taken)"
    );
    let d = announce_of(spec("docker", NoNet, &[], 1), 3);
    c.set_capacity(3);
    c.handle(0, ComputeInput::announce(d.clone()));
    drain(&mut c);
    c.set_engines(BTreeSet::new());
    award(&mut c, REQ, &d, ME, 0);
    assert_eq!(
        declined(&drain(&mut c)),
        "no longer accepted: engine=docker not available"
    );
}

#[test]
fn cancel_stops_only_for_the_requester() {
    let mut c = compute(policy(NoNet, None), 1);
    let a = job(NoNet, &[]);
    c.handle(0, ComputeInput::announce(a.clone()));
    award(&mut c, REQ, &a, ME, 2);
    drain(&mut c);
    let cancel = Cancel {
        job_id: a.job_id,
        reason: "stop".into(),
    };
    c.handle(
        1,
        ComputeInput::Cancel {
            from: node(5),
            cancel: cancel.clone(),
        },
    );
    assert!(drain(&mut c).is_empty());
    c.handle(
        1,
        ComputeInput::Cancel {
            from: node(REQ),
            cancel,
        },
    );
    assert_eq!(
        drain(&mut c),
        vec![ComputeOutput::Stop {
            job_id: a.job_id,
            execution_id: ExecutionId(2)
        }]
    );
    assert_eq!(c.running(), 0);
    // The stopped execution's end sends nothing.
    c.handle(
        2,
        ComputeInput::ExecutionFinished {
            job_id: a.job_id,
            execution_id: ExecutionId(2),
            outcome: Outcome::Failed {
                failure: Failure::new(FailureCause::Cancelled, "killed"),
            },
        },
    );
    assert!(drain(&mut c).is_empty());
}

#[test]
fn cancel_withdraws_an_open_bid() {
    let mut c = compute(policy(NoNet, None), 1);
    let a = job(NoNet, &[]);
    c.handle(0, ComputeInput::announce(a.clone()));
    drain(&mut c);
    c.handle(
        1,
        ComputeInput::Cancel {
            from: node(REQ),
            cancel: Cancel {
                job_id: a.job_id,
                reason: "done elsewhere".into(),
            },
        },
    );
    assert_eq!(c.open_bids(), 0);
    assert_eq!(c.poll_timeout(), None);
    award(&mut c, REQ, &a, ME, 0);
    assert!(!started(&drain(&mut c)));
}

#[test]
fn a_finished_execution_reports_and_frees_its_slot() {
    let mut c = compute(policy(NoNet, None), 1);
    let a = job(NoNet, &[]);
    c.handle(0, ComputeInput::announce(a.clone()));
    award(&mut c, REQ, &a, ME, 0);
    drain(&mut c);
    let finished = |e| ComputeInput::ExecutionFinished {
        job_id: a.job_id,
        execution_id: ExecutionId(e),
        outcome: Outcome::Completed {
            result_cid: result_cid(1),
            exit_code: 3,
        },
    };
    // Not this execution: ignored.
    c.handle(5, finished(9));
    assert!(drain(&mut c).is_empty());
    c.handle(5, finished(0));
    assert_eq!(
        sent(&drain(&mut c)),
        vec![ToRequester::Result(ResultMsg {
            job_id: a.job_id,
            execution_id: ExecutionId(0),
            node: node(ME),
            outcome: Outcome::Completed {
                result_cid: result_cid(1),
                exit_code: 3
            },
            providers: vec![],
        })]
    );
    assert_eq!(c.running(), 0);
    c.handle(6, finished(0));
    assert!(drain(&mut c).is_empty(), "reported once");
}

// A node is its own requester: the same rules hold.
#[test]
fn a_node_runs_its_own_jobs() {
    let mut config = ComputeConfig::new(node(REQ), policy(NoNet, None), ["docker"], 0);
    config.capacity = 1;
    let mut c = Compute::new(config);
    let a = job(NoNet, &[]);
    c.handle(0, ComputeInput::announce(a.clone()));
    award(&mut c, REQ, &a, REQ, 0);
    let out: Vec<ComputeOutput> = std::iter::from_fn(|| c.poll_output()).collect();
    assert!(started(&out));
}

#[test]
fn old_answers_are_forgotten_but_not_open_bids() {
    let mut config = ComputeConfig::new(node(ME), policy(NoNet, None), ["docker"], 0);
    config.max_remembered = 2;
    config.capacity = 1;
    let mut c = Compute::new(config);
    let open = announce_of(spec("docker", NoNet, &[], 1), 100);
    c.handle(0, ComputeInput::announce(open.clone()));
    for at in 0..5 {
        c.handle(0, ComputeInput::announce(job(Full, &[]).clone()));
        c.handle(
            0,
            ComputeInput::announce(announce_of(spec("docker", Full, &[], 1), at)),
        );
    }
    drain(&mut c);
    assert!(c.jobs.len() <= 2);
    award(&mut c, REQ, &open, ME, 0);
    assert!(started(&drain(&mut c)));
}

// Bounded bids per job: a node the announcement does not draw stays silent
// and remembers nothing, so a wider re-announcement that draws it is
// answered.
#[test]
fn a_node_not_drawn_stays_silent_until_a_wider_draw() {
    let mut c = compute(AcceptancePolicy::default(), 1);
    let mut a = job(NoNet, &[]);
    let ticket = crate::messages::draw_ticket(&a.job_id, &node(ME));
    a.draw_ppm = Some(ticket);
    assert!(!a.draws(&node(ME)));
    c.handle(0, ComputeInput::announce(a.clone()));
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.open_bids(), 0);
    // Not drawn, not bid: an award is declined.
    award(&mut c, REQ, &a, ME, 0);
    assert!(declined(&drain(&mut c)).contains("no open bid"));
    a.draw_ppm = Some(ticket + 1);
    assert!(a.draws(&node(ME)));
    c.handle(10, ComputeInput::announce(a.clone()));
    assert!(matches!(
        sent(&drain(&mut c)).as_slice(),
        [ToRequester::Bid(_)]
    ));
    a.draw_ppm = None;
    assert!(a.draws(&node(ME)));
}

// A refusal is drawn too: only drawn nodes say why not (R-POL-3 explains
// from what the drawn nodes said).
#[test]
fn r_pol_3_only_drawn_nodes_refuse() {
    let mut c = compute(AcceptancePolicy::default(), 1);
    let mut a = job(Full, &[]);
    let ticket = crate::messages::draw_ticket(&a.job_id, &node(ME));
    a.draw_ppm = Some(ticket);
    c.handle(0, ComputeInput::announce(a.clone()));
    assert!(drain(&mut c).is_empty());
    a.draw_ppm = Some(ticket + 1);
    c.handle(0, ComputeInput::announce(a));
    assert!(matches!(
        refusal(&drain(&mut c)),
        RefuseReason::NetworkNotAccepted { .. }
    ));
}

// R-POL-3: the image, where the node knows its images and pulls from no registry.
#[test]
fn r_pol_3_refuses_a_docker_image_the_node_does_not_have() {
    let mut c = compute(policy(Full, None), 2);
    c.set_local_images(Some(["alpine:3.20".to_string()].into()));
    c.handle(0, ComputeInput::announce(job(NoNet, &[])));
    assert_eq!(
        refusal(&drain(&mut c)),
        RefuseReason::ImageMissing {
            image: "busybox".into()
        }
    );
    assert_eq!(c.open_bids(), 0);

    // `busybox` means `busybox:latest`; a later image list lets it bid.
    c.set_local_images(Some(["busybox:latest".to_string()].into()));
    c.handle(1, ComputeInput::announce(job(NoNet, &[])));
    assert!(matches!(sent(&drain(&mut c))[..], [ToRequester::Bid(_)]));

    // Unknown images (no list): not checked.
    let mut c = compute(policy(Full, None), 2);
    c.handle(0, ComputeInput::announce(job(NoNet, &[])));
    assert!(matches!(sent(&drain(&mut c))[..], [ToRequester::Bid(_)]));
}

// R-POL-3, R-SEC-3 (issue 16): a missing image is bid on when the node
// pulls from its registry, and refused, saying why, when it does not.
#[test]
fn r_pol_3_a_missing_image_is_bid_on_where_the_node_pulls_from_its_registry() {
    let mut c = compute(policy(Full, None), 2);
    c.set_local_images(Some(BTreeSet::new()));
    c.config.pull = crate::image::PullPolicy::parse(["127.0.0.1:5000"]).unwrap();
    c.handle(0, ComputeInput::announce(job(NoNet, &[])));
    assert_eq!(
        refusal(&drain(&mut c)),
        RefuseReason::RegistryNotAllowed {
            image: "busybox".into(),
            registry: "docker.io".into()
        }
    );
    c.config.pull = crate::image::PullPolicy::parse(["docker.io"]).unwrap();
    c.handle(1, ComputeInput::announce(job(NoNet, &[])));
    assert!(matches!(sent(&drain(&mut c))[..], [ToRequester::Bid(_)]));
}

#[test]
fn image_names_match_as_docker_reads_them() {
    let images: BTreeSet<String> = [
        "busybox:latest",
        "registry.local:5000/team/app:latest",
        "x@sha256:ab",
    ]
    .map(String::from)
    .into();
    assert!(image_present(&images, "busybox"));
    assert!(image_present(&images, "busybox:latest"));
    assert!(!image_present(&images, "busybox:1.36"));
    assert!(image_present(&images, "registry.local:5000/team/app"));
    assert!(!image_present(&images, "registry.local:5000/team"));
    assert!(image_present(&images, "x@sha256:ab"));
    assert!(!image_present(&images, "y@sha256:ab"));
}

// R-POL-3: local-path inputs only from the folders the operator allows.
#[test]
fn r_pol_3_refuses_local_inputs_outside_the_allowed_folders() {
    let local = |path: &str| {
        let text = format!(
            "type: batch\ncount: 1\ntasks:\n  - name: main\n    engine:\n      type: docker\n      \
             params:\n        image: busybox\n    inputSources:\n      - source:\n          \
             type: localDirectory\n          params:\n            sourcePath: {path}\n        \
             target: /inputs\n"
        );
        announce_of(JobSpec::parse(&text).unwrap(), 1)
    };
    let mut c = compute(policy(NoNet, None), 4);
    c.handle(0, ComputeInput::announce(local("/data/set")));
    assert_eq!(
        refusal(&drain(&mut c)),
        RefuseReason::LocalInputNotAllowed {
            path: "/data/set".into()
        },
        "no folder allowed by default"
    );
    let mut config = ComputeConfig::new(node(ME), policy(NoNet, None), ["docker"], 0);
    config.local_inputs = vec!["/data/".into()];
    let mut c = Compute::new(config);
    c.handle(0, ComputeInput::announce(local("/data/set")));
    assert!(matches!(sent(&drain(&mut c))[..], [ToRequester::Bid(_)]));
    c.handle(0, ComputeInput::announce(local("/database")));
    assert!(matches!(
        refusal(&drain(&mut c)),
        RefuseReason::LocalInputNotAllowed { .. }
    ));
    assert!(!path_under("/data/../etc", "/data"));
    assert!(path_under("/data", "/data/"));
}

// R-VOL-4, R-POL-3: a `ReadWrite` local input only from the folders the
// operator lets jobs write to; reading the same folder stays allowed.
#[test]
fn r_vol_4_refuses_writing_outside_the_writable_folders() {
    let local = |path: &str, read_write: bool| {
        let text = format!(
            "type: batch\ncount: 1\ntasks:\n  - name: main\n    engine:\n      type: docker\n      \
             params:\n        image: busybox\n    inputSources:\n      - source:\n          \
             type: localDirectory\n          params:\n            sourcePath: {path}\n            \
             readWrite: {read_write}\n        target: /inputs\n"
        );
        announce_of(JobSpec::parse(&text).unwrap(), 1)
    };
    let mut config = ComputeConfig::new(node(ME), policy(NoNet, None), ["docker"], 0);
    config.local_inputs = vec!["/data".into(), "/scratch".into()];
    config.local_inputs_rw = vec!["/scratch".into()];
    let mut c = Compute::new(config);
    c.handle(0, ComputeInput::announce(local("/data/set", true)));
    assert_eq!(
        refusal(&drain(&mut c)),
        RefuseReason::LocalInputNotWritable {
            path: "/data/set".into()
        }
    );
    assert!(
        RefuseReason::LocalInputNotWritable { path: "/d".into() }
            .to_string()
            .contains("--local-inputs DIR:rw")
    );
    c.handle(0, ComputeInput::announce(local("/data/set", false)));
    assert!(matches!(sent(&drain(&mut c))[..], [ToRequester::Bid(_)]));
    c.handle(0, ComputeInput::announce(local("/scratch/run", true)));
    assert!(matches!(sent(&drain(&mut c))[..], [ToRequester::Bid(_)]));
}

// R-SEC-2, R-POL-3: a `dir` publisher only into the folders the operator
// lists (`--publish-dir`); without any, every `dir` publisher is refused,
// with the reason.
#[test]
fn r_sec_2_refuses_dir_publishers_outside_the_listed_folders() {
    let publishing = |path: &str, at: u64| {
        let text = format!(
            "type: batch\ncount: 1\ntasks:\n  - name: main\n    engine:\n      type: docker\n      \
             params:\n        image: busybox\n    publisher:\n      type: dir\n      params:\n        \
             path: {path}\n"
        );
        announce_of(JobSpec::parse(&text).unwrap(), at)
    };
    let mut c = compute(policy(NoNet, None), 4);
    c.handle(0, ComputeInput::announce(publishing("/srv/out", 1)));
    let reason = refusal(&drain(&mut c));
    assert_eq!(
        reason,
        RefuseReason::PublishDirNotAllowed {
            path: "/srv/out".into()
        },
        "no folder allowed by default"
    );
    assert!(reason.to_string().contains("--publish-dir"), "{reason}");
    let mut config = ComputeConfig::new(node(ME), policy(NoNet, None), ["docker"], 0);
    config.publish_dirs = vec!["/srv/out".into()];
    let mut c = Compute::new(config);
    c.handle(0, ComputeInput::announce(publishing("/srv/out", 1)));
    assert!(matches!(sent(&drain(&mut c))[..], [ToRequester::Bid(_)]));
    c.handle(0, ComputeInput::announce(publishing("/srv/out/team", 2)));
    assert!(matches!(sent(&drain(&mut c))[..], [ToRequester::Bid(_)]));
    for outside in ["/srv/outside", "/srv", "/etc"] {
        c.handle(0, ComputeInput::announce(publishing(outside, 3)));
        assert_eq!(
            refusal(&drain(&mut c)),
            RefuseReason::PublishDirNotAllowed {
                path: outside.into()
            }
        );
    }
}

/// A Docker job asking `memory` bytes and `cpu` millicores.
fn asking(cpu: Option<u64>, memory: Option<u64>, at: u64) -> Announce {
    let mut spec = spec("docker", NoNet, &[], 1);
    spec.tasks[0].resources = crate::job::Resources {
        cpu: cpu.map(crate::job::MilliCpu),
        memory: memory.map(crate::job::ByteSize),
        disk: None,
    };
    announce_of(spec, at)
}

const GI: u64 = 1 << 30;

// R-PLC-1: a node bids only on tasks that fit what it has free, and its
// refusals say which resource: for good when the task asks more than the
// node has at all, for now when bids and executions hold the rest.
#[test]
fn r_plc_1_bids_only_on_tasks_that_fit_its_free_resources() {
    let mut c = compute(policy(NoNet, None), 4);
    let mut config = c.config().clone();
    config.resources = crate::job::Resources {
        cpu: Some(crate::job::MilliCpu(2000)),
        memory: Some(crate::job::ByteSize(8 * GI)),
        disk: None,
    };
    c = Compute::new(config);

    let huge = asking(None, Some(100 * GI), 1);
    c.handle(0, ComputeInput::announce(huge.clone()));
    let reason = refusal(&drain(&mut c));
    assert_eq!(
        reason,
        RefuseReason::ResourceTooLarge {
            resource: crate::resources::ResourceKind::Memory,
            requested: 100 * GI,
            offered: 8 * GI
        }
    );
    assert_eq!(reason.to_string(), "memory 100Gi > 8Gi");
    assert!(!reason.is_passing());

    let big = asking(Some(1000), Some(6 * GI), 2);
    c.handle(0, ComputeInput::announce(big.clone()));
    assert!(matches!(
        sent(&drain(&mut c)).as_slice(),
        [ToRequester::Bid(_)]
    ));
    // The open bid holds 6Gi: a 4Gi task waits, a 1Gi one fits.
    let second = asking(None, Some(4 * GI), 3);
    c.handle(1, ComputeInput::announce(second.clone()));
    let reason = refusal(&drain(&mut c));
    assert_eq!(
        reason,
        RefuseReason::ResourceBusy {
            resource: crate::resources::ResourceKind::Memory,
            requested: 4 * GI,
            free: 2 * GI
        }
    );
    assert!(reason.is_passing());
    let small = asking(Some(500), Some(GI), 4);
    c.handle(1, ComputeInput::announce(small.clone()));
    assert!(matches!(
        sent(&drain(&mut c)).as_slice(),
        [ToRequester::Bid(_)]
    ));

    // The big bid is awarded and runs: it still holds its memory.
    award(&mut c, REQ, &big, ME, 7);
    assert!(started(&drain(&mut c)));
    c.handle(2, ComputeInput::announce(second.clone()));
    assert!(drain(&mut c).is_empty(), "answered once");
    // It finishes: its memory is free, and the waiting task gets a late bid.
    c.handle(
        100,
        ComputeInput::ExecutionFinished {
            job_id: big.job_id,
            execution_id: ExecutionId(7),
            outcome: Outcome::Completed {
                result_cid: result_cid(1),
                exit_code: 0,
            },
        },
    );
    let out = sent(&drain(&mut c));
    assert!(
        out.iter()
            .any(|m| matches!(m, ToRequester::Bid(b) if b.job_id == second.job_id)),
        "a late bid for the task that waited for memory: {out:?}"
    );
    // A task asking nothing holds the default memory, which is free.
    c.handle(101, ComputeInput::announce(asking(None, None, 5)));
    assert!(matches!(
        sent(&drain(&mut c)).as_slice(),
        [ToRequester::Bid(_)]
    ));
}

/// What `c` sent, to whom.
fn sent_to(c: &mut Compute) -> Vec<(NodeId, ToRequester)> {
    std::iter::from_fn(|| c.poll_output())
        .filter_map(|o| match o {
            ComputeOutput::Send { to, msg } => Some((to, msg)),
            _ => None,
        })
        .collect()
}

fn finished(c: &mut Compute, at: u64, a: &Announce, e: u64) {
    c.handle(
        at,
        ComputeInput::ExecutionFinished {
            job_id: a.job_id,
            execution_id: ExecutionId(e),
            outcome: Outcome::Completed {
                result_cid: result_cid(1),
                exit_code: 0,
            },
        },
    );
}

// R-PLC-2: while another requester's job waits for a slot, a requester
// holding its share (25% of 4 slots: 1) gets no more; freed slots go to
// the others first, and back to it once nobody else waits.
#[test]
fn r_plc_2_a_requester_over_its_share_waits_while_others_do() {
    let (a, b) = (node(REQ), node(2));
    let by = |requester: NodeId, n: u64| {
        Announce::new(spec("docker", NoNet, &[], 1), requester, n, vec![]).unwrap()
    };
    let mut config = compute(policy(NoNet, None), 4).config().clone();
    assert_eq!(config.requester_share_percent, 25);
    config.resources.memory = Some(crate::job::ByteSize(4 * GI));
    let mut c = Compute::new(config);
    let mine: Vec<Announce> = (1..=4).map(|n| by(a, n)).collect();
    for (e, job) in mine.iter().enumerate() {
        c.handle(0, ComputeInput::announce(job.clone()));
        award(&mut c, REQ, job, ME, e as u64);
    }
    assert_eq!(c.running(), 4, "nobody else waited: A took every slot");
    sent_to(&mut c);
    // A's fifth job, then two of B's, are refused for want of a slot.
    let a5 = by(a, 5);
    let (b1, b2) = (by(b, 6), by(b, 7));
    for job in [&a5, &b1, &b2] {
        c.handle(1, ComputeInput::announce(job.clone()));
    }
    sent_to(&mut c);
    // A slot frees: A's job is older, but A holds 3 while B waits.
    finished(&mut c, 2, &mine[0], 0);
    let bids: Vec<JobId> = sent_to(&mut c)
        .into_iter()
        .filter_map(|(to, m)| match m {
            ToRequester::Bid(bid) => Some((to, bid.job_id)),
            _ => None,
        })
        .map(|(to, job)| {
            assert_eq!(to, b, "the bid goes to B");
            job
        })
        .collect();
    assert_eq!(bids, vec![b1.job_id]);
    // B's bid is cancelled (it went elsewhere); one of A's ends: B's
    // second job gets the slot, still not A's.
    c.handle(
        3,
        ComputeInput::Cancel {
            from: b,
            cancel: Cancel {
                job_id: b1.job_id,
                reason: "released".into(),
            },
        },
    );
    let out = sent_to(&mut c);
    assert!(
        matches!(out.as_slice(), [(to, ToRequester::Bid(bid))] if *to == b && bid.job_id == b2.job_id),
        "{out:?}"
    );
    // A new job of A's, with B's no longer waiting and a slot free, is
    // refused only while someone else waits: here nobody does.
    finished(&mut c, 4, &mine[1], 1);
    let bids: Vec<(NodeId, JobId)> = sent_to(&mut c)
        .into_iter()
        .filter_map(|(to, m)| match m {
            ToRequester::Bid(bid) => Some((to, bid.job_id)),
            _ => None,
        })
        .collect();
    assert_eq!(
        bids,
        vec![(a, a5.job_id)],
        "nobody else waits: A's waiting job gets the slot"
    );
    // B's next job waits for memory (4Gi; the running tasks hold 512Mi
    // each). A slot frees, which it cannot use: A's new job is refused
    // for its share all the same, since B waits.
    let mut big = spec("docker", NoNet, &[], 1);
    big.tasks[0].resources.memory = Some(crate::job::ByteSize(4 * GI));
    let b3 = Announce::new(big, b, 8, vec![]).unwrap();
    c.handle(5, ComputeInput::announce(b3));
    sent_to(&mut c);
    finished(&mut c, 6, &mine[2], 2);
    assert!(
        sent_to(&mut c)
            .iter()
            .all(|(_, m)| !matches!(m, ToRequester::Bid(_)))
    );
    c.handle(7, ComputeInput::announce(by(a, 9)));
    let out = sent_to(&mut c);
    assert!(
        matches!(
            out.as_slice(),
            [(_, ToRequester::Refuse(r))]
                if r.reason == RefuseReason::RequesterShare { held: 2, share: 1 }
        ),
        "{out:?}"
    );
}

/// An announcement of a job with `input_bytes` of inputs served at
/// `source_bps`, and an `ExecutionTimeout` of 60 s.
fn with_inputs(at: u64, input_bytes: u64, source_bps: Option<u64>) -> Announce {
    let mut s = spec("docker", NoNet, &[], 1);
    s.tasks[0].timeouts.execution_timeout = Some(60);
    let mut a = announce_of(s, at);
    a.input_bytes = Some(input_bytes);
    a.source_bps = source_bps;
    a
}

const MBIT: u64 = 1_000_000;

// R-PLC-1: a node that could not fetch the inputs within the job's
// ExecutionTimeout refuses, with the numbers, and that refusal lasts even
// when the node is also full.
#[test]
fn r_plc_1_refuses_inputs_it_could_not_fetch_in_time() {
    let mut config = ComputeConfig::new(node(ME), policy(NoNet, None), ["docker"], 0);
    config.capacity = 1;
    config.link = crate::link::LinkRates::declared(Some(1000 * MBIT), None);
    let mut c = Compute::new(config);
    // 1 GiB from a requester serving at 50 Mbit/s: 172 s > 60 s.
    c.handle(
        0,
        ComputeInput::announce(with_inputs(1, 1 << 30, Some(50 * MBIT))),
    );
    let reason = refusal(&drain(&mut c));
    assert_eq!(
        reason,
        RefuseReason::InputsTooSlow {
            bytes: 1 << 30,
            bps: 50 * MBIT,
            fetch_ms: 171_799,
            timeout_ms: 60_000,
        }
    );
    assert!(!reason.is_passing());
    assert_eq!(
        reason.to_string(),
        "its inputs (1.0 GiB) would take about 171.7 s to fetch at 50 Mbit/s, longer than its \
         ExecutionTimeout (60 s)"
    );
    // From a fast requester it fits (8.6 s at the node's 1 Gbit/s) and the
    // bid says how long it expects.
    c.handle(
        0,
        ComputeInput::announce(with_inputs(2, 1 << 30, Some(5000 * MBIT))),
    );
    match sent(&drain(&mut c)).as_slice() {
        [ToRequester::Bid(b)] => {
            assert_eq!((b.held_bytes, b.fetch_ms), (0, Some(8_590)));
        }
        other => panic!("not one bid: {other:?}"),
    }
    // Now full: a job it could never fetch in time is still refused as too
    // slow, not as busy (so its requester does not wait for this node).
    c.handle(0, ComputeInput::announce(with_inputs(3, 10 << 30, None)));
    assert!(matches!(
        refusal(&drain(&mut c)),
        RefuseReason::InputsTooSlow { bytes, .. } if bytes == 10 << 30
    ));
}

// R-PLC-1: with no rate known (nothing declared, nothing measured), the node
// cannot tell and bids; measured transfers teach it its rate.
#[test]
fn r_plc_1_measured_transfers_set_the_rate() {
    let mut c = compute(policy(NoNet, None), 4);
    c.handle(0, ComputeInput::announce(with_inputs(1, 1 << 30, None)));
    match sent(&drain(&mut c)).as_slice() {
        [ToRequester::Bid(b)] => assert_eq!(b.fetch_ms, None),
        other => panic!("not one bid: {other:?}"),
    }
    // 100 MiB in 20 s: 42 Mbit/s.
    c.handle(
        0,
        ComputeInput::Transferred(crate::link::Transfer {
            direction: crate::link::Direction::Down,
            bytes: 100 << 20,
            ms: 20_000,
        }),
    );
    assert_eq!(c.link().down.bps(), Some(41_943_040));
    c.handle(0, ComputeInput::announce(with_inputs(2, 1 << 30, None)));
    assert!(matches!(
        refusal(&drain(&mut c)),
        RefuseReason::InputsTooSlow {
            bps: 41_943_040,
            ..
        }
    ));
}

// R-PLC-1, R-POL-4: a node holding all of a job's inputs answers though the
// draw does not ask it, and its bid says it holds them; one holding part
// fetches only the rest.
#[test]
fn r_plc_1_a_node_holding_the_inputs_answers_outside_the_draw() {
    let mut c = compute(policy(NoNet, None), 4);
    let mut a = with_inputs(1, 1 << 30, Some(50 * MBIT));
    // A draw so narrow it asks nobody.
    a.draw_ppm = Some(0);
    c.handle(0, ComputeInput::announce(a.clone()));
    assert!(drain(&mut c).is_empty(), "not drawn, holds nothing");
    c.handle(
        0,
        ComputeInput::Announce {
            announce: a.clone(),
            held_bytes: 1 << 30,
        },
    );
    match sent(&drain(&mut c)).as_slice() {
        [ToRequester::Bid(b)] => assert_eq!((b.held_bytes, b.fetch_ms), (1 << 30, Some(0))),
        other => panic!("not one bid: {other:?}"),
    }
    // Holding all but 100 MiB: 16.8 s at 50 Mbit/s fits 60 s.
    let b = with_inputs(2, 1 << 30, Some(50 * MBIT));
    c.handle(
        0,
        ComputeInput::Announce {
            announce: b,
            held_bytes: (1 << 30) - (100 << 20),
        },
    );
    match sent(&drain(&mut c)).as_slice() {
        [ToRequester::Bid(b)] => assert_eq!(b.fetch_ms, Some(16_778)),
        other => panic!("not one bid: {other:?}"),
    }
}

// Issue 15 (a flood): a job leaves the late-bid list as soon as it is no
// longer refused here, so the list (and the share rule, which counts who
// waits) holds only jobs that wait.
#[test]
fn a_job_leaves_the_late_bid_list_when_it_no_longer_waits() {
    let mut c = compute(policy(NoNet, None), 1);
    let first = job(NoNet, &[]);
    let second = announce_of(spec("docker", NoNet, &[], 1), 2);
    let third = announce_of(spec("docker", NoNet, &[], 1), 3);
    c.handle(0, ComputeInput::announce(first.clone()));
    c.handle(0, ComputeInput::announce(second.clone()));
    c.handle(0, ComputeInput::announce(third.clone()));
    drain(&mut c);
    assert_eq!(c.waiting.len(), 2);
    // Cancelled by its requester: gone.
    let cancel = |a: &Announce| ComputeInput::Cancel {
        from: node(REQ),
        cancel: Cancel {
            job_id: a.job_id,
            reason: "cancelled".into(),
        },
    };
    c.handle(1, cancel(&second));
    assert_eq!(c.waiting.len(), 1);
    assert!(c.waiting.others_than(&node(7)), "the third still waits");
    // Bid on late when the slot frees: gone too.
    c.handle(2, cancel(&first));
    let bids = sent(&drain(&mut c));
    assert!(matches!(bids.as_slice(), [ToRequester::Bid(b)] if b.job_id == third.job_id));
    assert_eq!(c.waiting.len(), 0);
    assert!(!c.waiting.others_than(&node(7)), "nobody waits");
}

// Issue 17: a node bids only on jobs whose Constraints hold of its labels,
// and a refusal names the Constraint that does not.
#[test]
fn constraints_are_checked_against_the_nodes_labels() {
    let mut config = ComputeConfig::new(node(ME), policy(NoNet, None), ["docker"], 0);
    config.labels = [("region".to_string(), "eu".to_string())].into();
    let mut c = Compute::new(config);
    let with = |at: u64, constraints: Vec<crate::job::Constraint>| {
        let mut s = spec("docker", NoNet, &[], 1);
        s.constraints = constraints;
        announce_of(s, at)
    };
    let region = |op: &str, values: &[&str]| crate::job::Constraint {
        key: "region".into(),
        operator: crate::job::Operator::parse(op).unwrap(),
        values: values.iter().map(|v| v.to_string()).collect(),
    };
    c.handle(
        0,
        ComputeInput::announce(with(1, vec![region("=", &["us"])])),
    );
    assert_eq!(
        refusal(&drain(&mut c)).to_string(),
        "its constraint `region=us` does not hold here"
    );
    c.handle(
        0,
        ComputeInput::announce(with(2, vec![region("in", &["us", "eu"])])),
    );
    assert!(matches!(
        sent(&drain(&mut c)).as_slice(),
        [ToRequester::Bid(_)]
    ));
}

// Issue 17: a task's Env may read the node's variables (`env:NAME`) only
// where the operator allows them by name or prefix (`--allow-env`).
#[test]
fn env_reads_of_the_nodes_variables_need_the_operators_leave() {
    let with_env = |at: u64, value: &str| {
        let mut s = spec("docker", NoNet, &[], 1);
        s.tasks[0].env = [("TOKEN".to_string(), value.to_string())].into();
        announce_of(s, at)
    };
    let mut c = compute(policy(NoNet, None), 4);
    c.handle(0, ComputeInput::announce(with_env(1, "env:SECRET_TOKEN")));
    assert_eq!(
        refusal(&drain(&mut c)),
        RefuseReason::EnvNotAllowed {
            variable: "SECRET_TOKEN".into()
        }
    );
    // A literal value is the job's own.
    c.handle(0, ComputeInput::announce(with_env(2, "literal")));
    assert!(matches!(sent(&drain(&mut c))[..], [ToRequester::Bid(_)]));
    c.config.allowed_env = vec!["SECRET_*".into()];
    c.handle(0, ComputeInput::announce(with_env(3, "env:SECRET_TOKEN")));
    assert!(matches!(sent(&drain(&mut c))[..], [ToRequester::Bid(_)]));
    c.config.allowed_env = vec!["SECRET".into()];
    c.handle(0, ComputeInput::announce(with_env(4, "env:SECRET_TOKEN")));
    assert!(matches!(
        refusal(&drain(&mut c)),
        RefuseReason::EnvNotAllowed { .. }
    ));
}

// Issue 17: a node without an S3 endpoint refuses the `s3` publisher at bid
// time, instead of running the job and failing to publish it.
#[test]
fn the_s3_publisher_is_refused_where_the_node_has_no_endpoint() {
    let with_s3 = |at: u64| {
        let mut s = spec("docker", NoNet, &[], 1);
        s.tasks[0].publisher = crate::job::Publisher::S3(crate::job::S3Publisher {
            bucket: "results".into(),
            key: "jobs".into(),
            endpoint: None,
            region: None,
        });
        announce_of(s, at)
    };
    let mut c = compute(policy(NoNet, None), 4);
    c.handle(0, ComputeInput::announce(with_s3(1)));
    assert_eq!(
        refusal(&drain(&mut c)),
        RefuseReason::PublisherUnavailable {
            publisher: "s3".into()
        }
    );
    c.config.s3 = Some(S3Offer {
        endpoint: "http://127.0.0.1:9000/".into(),
        region: "us-east-1".into(),
    });
    c.handle(0, ComputeInput::announce(with_s3(2)));
    assert!(matches!(sent(&drain(&mut c))[..], [ToRequester::Bid(_)]));
}

// Issue 17: S3 inputs only on nodes with an S3 endpoint, and only from it:
// a job naming another endpoint (where the operator's credentials would
// go) or another region is refused at bid time, saying why.
#[test]
fn s3_inputs_need_the_nodes_own_endpoint() {
    let with_input = |endpoint: Option<&str>, region: Option<&str>, at: u64| {
        let mut s = spec("docker", NoNet, &[], 1);
        s.tasks[0].input_sources.push(crate::job::InputSource {
            source: crate::job::Source::S3(crate::job::S3Source {
                bucket: "data".into(),
                key: "set/".into(),
                filter: None,
                endpoint: endpoint.map(Into::into),
                region: region.map(Into::into),
            }),
            target: "/inputs".into(),
            alias: None,
        });
        announce_of(s, at)
    };
    let mut c = compute(policy(NoNet, None), 4);
    c.handle(0, ComputeInput::announce(with_input(None, None, 1)));
    let RefuseReason::S3Refused { what, why } = refusal(&drain(&mut c)) else {
        panic!("not an S3 refusal")
    };
    assert_eq!(what, "S3 input s3://data/set/");
    assert!(why.contains("--s3-endpoint"), "{why}");
    c.config.s3 = Some(S3Offer {
        endpoint: "http://127.0.0.1:9000".into(),
        region: "eu-west-1".into(),
    });
    for (at, endpoint, region, bids) in [
        (2, None, None, true),
        (3, Some("http://127.0.0.1:9000/"), Some("eu-west-1"), true),
        (4, Some("http://169.254.169.254"), None, false),
        (5, None, Some("us-east-1"), false),
    ] {
        c.handle(0, ComputeInput::announce(with_input(endpoint, region, at)));
        let out = drain(&mut c);
        if bids {
            assert!(matches!(sent(&out)[..], [ToRequester::Bid(_)]), "{at}");
        } else {
            let reason = refusal(&out).to_string();
            assert!(reason.contains(endpoint.or(region).unwrap()), "{reason}");
        }
    }
}
