//! The invariant checker: safety after every event, liveness at the end.
//!
//! It trusts none of the machines it checks: policies, engines and
//! capacities come from the run's own [`NodePlan`]s (what each operator
//! configured), not from the compute state machines, so a node that
//! ignores its policy is caught. Likewise who holds an input comes from the
//! run's plan (its submitter and drawn replicas), and whether a holder is
//! up and reachable from the simulator's own state, not from the fetch
//! that gave up ([`check_unreachable`]).

use std::collections::BTreeMap;
use std::fmt;

use protocol::failure::{Failure, FailureCause};
use protocol::job::JobSpec;
use protocol::policy::{Decision, RefuseReason};

use crate::population::NodePlan;

/// A broken invariant: what, where in the run, and how to get there again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// The run's seed.
    pub seed: u64,
    /// Index of the event after which the invariant broke (events counted
    /// from 0 in delivery order); for a liveness violation, the number of
    /// events in the run.
    pub event_index: u64,
    /// Simulated time of that event, in ms.
    pub time_ms: u64,
    /// What broke.
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant violated at event {} (t = {} ms), seed {}: {}",
            self.event_index, self.time_ms, self.seed, self.what
        )
    }
}

impl std::error::Error for Violation {}

/// What the network's nodes would say about a job, by the policies and
/// engines their operators set: refusal text -> how many nodes.
pub fn refusals_by_text(nodes: &[NodePlan], spec: &JobSpec) -> BTreeMap<String, u32> {
    let task = spec.task();
    let engine = task.engine.kind();
    let mut counts = BTreeMap::new();
    for node in nodes {
        let text = match node
            .policy
            .decide(task.network.r#type, &task.network.domains)
        {
            Decision::Refuse(reason) => reason.to_string(),
            Decision::Bid if !node.engines.contains(engine) => RefuseReason::EngineUnavailable {
                engine: engine.to_owned(),
            }
            .to_string(),
            Decision::Bid => continue,
        };
        *counts.entry(text).or_insert(0) += 1;
    }
    counts
}

/// Whether a start of `spec` on `node` is allowed, or why not.
pub fn check_start(node: &NodePlan, spec: &JobSpec, running: u32) -> Result<(), String> {
    let task = spec.task();
    if let Decision::Refuse(reason) = node
        .policy
        .decide(task.network.r#type, &task.network.domains)
    {
        return Err(format!(
            "started a job (network={}, domains [{}]) that its policy forbids: {reason}",
            task.network.r#type,
            domains(spec)
        ));
    }
    let engine = task.engine.kind();
    if !node.engines.contains(engine) {
        return Err(format!("started a {engine} job without the engine"));
    }
    if running > node.capacity {
        return Err(format!(
            "runs {running} executions with {} slots",
            node.capacity
        ));
    }
    Ok(())
}

/// Whether a refusal `node` sent about `spec` is true of it, with
/// `taken` slots in use when it refused.
pub fn check_refusal(
    node: &NodePlan,
    spec: &JobSpec,
    reason: &RefuseReason,
    taken: u32,
) -> Result<(), String> {
    let task = spec.task();
    let policy = &node.policy;
    let ok = match reason {
        RefuseReason::NetworkNotAccepted {
            requested,
            accepted,
        } => {
            *requested == task.network.r#type
                && *accepted == policy.accept()
                && requested > accepted
        }
        RefuseReason::DomainsNotAllowed { domains } => policy.allowlist().is_some_and(|allow| {
            !domains.is_empty()
                && domains.iter().all(|d| {
                    task.network.domains.iter().any(|j| j == d) && !allow.domains().covers(d)
                })
        }),
        RefuseReason::EmptyAllowlist => policy.allowlist().is_some_and(|a| a.is_empty()),
        RefuseReason::EngineUnavailable { engine } => {
            engine == task.engine.kind() && !node.engines.contains(engine)
        }
        RefuseReason::NoCapacity { running, capacity } => {
            *capacity == node.capacity && *running >= *capacity && *running == taken
        }
        // R-PLC-2: the requester's jobs hold at least its share, which is
        // the default 25% of the slots (at least one), and no more slots
        // than the node has are in use.
        RefuseReason::RequesterShare { held, share } => {
            *share == (node.capacity / 4).max(1) && *held >= *share && *held <= taken
        }
        // Simulated nodes have every image.
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "refused a job (network={}, domains [{}], engine {}) saying \"{reason}\", which is not true of it",
            task.network.r#type,
            domains(spec),
            task.engine.kind()
        ))
    }
}

/// Checks the node groups a failure reason states ("3 nodes: network=http
/// not accepted ...") against the network: each policy or engine group
/// must count no more nodes than truly refuse for that reason. Busy nodes
/// (slots, resources, a requester's share) and silence are moments, not
/// properties, and are not checked here (each such refusal was checked
/// when it was sent).
pub fn check_failure_reason(
    nodes: &[NodePlan],
    spec: &JobSpec,
    failure: &Failure,
) -> Result<(), String> {
    let reason = failure.detail.as_str();
    if reason.trim().is_empty() {
        return Err("a job failed without a reason".to_owned());
    }
    // A job fails for a reason of the job's own, never an attempt's.
    if !matches!(
        failure.cause,
        FailureCause::NoNodeAccepts
            | FailureCause::NoNodeAnswered
            | FailureCause::QueueTimeout
            | FailureCause::AttemptsExhausted
            | FailureCause::TotalTimeout
    ) {
        return Err(format!("a job failed with the cause {}", failure.cause));
    }
    let groups = if let Some(rest) = reason.strip_prefix("no node accepts this job: ") {
        rest
    } else if let Some(rest) = reason.strip_prefix("no drawn node accepts this job (") {
        // "(2.4% of the nodes asked): GROUPS"
        rest.split_once("): ").map_or("", |(_, groups)| groups)
    } else if let Some((_, rest)) = reason.rsplit_once("; other nodes: ") {
        rest
    } else if let Some((_, rest)) = reason.rsplit_once("; nodes: ") {
        rest
    } else {
        return Ok(());
    };
    let mut actual: Option<BTreeMap<String, u32>> = None;
    for group in groups.split("; ") {
        let Some((count, text)) = group.split_once(' ') else {
            continue;
        };
        let Ok(count) = count.parse::<u32>() else {
            continue;
        };
        let Some(text) = text
            .strip_prefix("nodes: ")
            .or_else(|| text.strip_prefix("node: "))
        else {
            continue;
        };
        // Busy nodes (passing refusals) and silence are moments.
        let moment = text == "no free slot"
            || text == "its share of the slots taken while others' jobs wait"
            || (text.starts_with("not enough ") && text.ends_with(" free (held by running jobs)"));
        // Inputs too slow to fetch depend on the links, not the policies:
        // each such refusal was checked against them when it was sent.
        let links = text.starts_with("its inputs (");
        if moment || links || text.starts_with("did not answer") || text.ends_with("...") {
            continue;
        }
        let actual = actual.get_or_insert_with(|| refusals_by_text(nodes, spec));
        let truly = actual.get(text).copied().unwrap_or(0);
        if truly < count {
            return Err(format!(
                "a job failed saying \"{count} node(s): {text}\", but only {truly} node(s) of the network refuse it for that reason (full reason: {reason})"
            ));
        }
    }
    Ok(())
}

/// Whether node `node` may give up on input `cid` saying no provider is
/// reachable: it holds no copy itself, and every node in `holders` (the
/// submitter and the replicas, as drawn) is down or cut off from it at this
/// moment, by `reachable`, the simulator's own view of the network.
pub fn check_unreachable(
    node: usize,
    cid: &str,
    holders: &[usize],
    reachable: impl Fn(usize) -> bool,
) -> Result<(), String> {
    let claim = format!("gave up on input {cid} saying no provider is reachable");
    if holders.contains(&node) {
        return Err(format!("{claim}, but it holds the input itself"));
    }
    match holders.iter().find(|&&p| reachable(p)) {
        Some(p) => Err(format!(
            "{claim}, but node {p} holds it and is up and reachable"
        )),
        None => Ok(()),
    }
}

fn domains(spec: &JobSpec) -> String {
    spec.task()
        .network
        .domains
        .iter()
        .map(|d| d.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_provider_reachable_must_be_true() {
        let cid = "bafkr4i...";
        let holders = [3, 7];
        // Both down or cut off: true.
        assert_eq!(check_unreachable(1, cid, &holders, |_| false), Ok(()));
        // One up and reachable: false, and the message names it.
        let err = check_unreachable(1, cid, &holders, |p| p == 7).unwrap_err();
        assert!(err.contains("node 7 holds it"), "{err}");
        // The node holds a copy itself: false, whatever the others do.
        let err = check_unreachable(3, cid, &holders, |_| false).unwrap_err();
        assert!(err.contains("holds the input itself"), "{err}");
    }
}
