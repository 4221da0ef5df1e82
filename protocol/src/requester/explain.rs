//! Why a job failed, in words a user can act on (R-POL-3): refusals and
//! node infos grouped and counted, never an opaque "not enough nodes".

use std::collections::BTreeMap;

use super::{ExecutionState, JobRecord, KnownNode};
use crate::failure::{Failure, FailureCause};
use crate::id::NodeId;
use crate::job::NetworkMode;
use crate::policy::RefuseReason;
use crate::resources::{Held, Misfit};

/// At most this many groups are listed; the rest are counted together.
const MAX_GROUPS: usize = 8;
/// At most this many failed attempts are listed (the latest).
const MAX_FAILURES: usize = 5;

/// The text refusals are grouped by. Capacity refusals differ only in their
/// numbers, which would split one cause into many groups.
pub(super) fn summary(reason: &RefuseReason) -> String {
    match reason {
        RefuseReason::NoCapacity { .. } => "no free slot".to_owned(),
        RefuseReason::RequesterShare { .. } => {
            "its share of the slots taken while others' jobs wait".to_owned()
        }
        RefuseReason::ResourceBusy { resource, .. } => {
            format!("not enough {resource} free (held by running jobs)")
        }
        RefuseReason::InputsTooSlow {
            bytes, timeout_ms, ..
        } => format!(
            "its inputs ({}) would not arrive within its ExecutionTimeout ({})",
            crate::link::explain_bytes(*bytes),
            duration(*timeout_ms)
        ),
        other => other.to_string(),
    }
}

/// `10 s`, `300 ms`, `1.5 s`.
pub(super) fn duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{}.{} s", ms / 1000, (ms % 1000) / 100)
    }
}

/// The job waited longer than its queue timeout for nodes.
pub(super) fn queue_timeout(job: &JobRecord, known: &BTreeMap<NodeId, KnownNode>) -> Failure {
    let waited = duration(job.wait_limit_ms());
    if job.unsent {
        return Failure::new(
            FailureCause::NoNodeAnswered,
            format!(
                "the job's announcement never left this node within {waited}: a node sends \
                 its own announcements no faster than its peers take them (48 a second), and \
                 earlier ones were waiting; submit fewer jobs at once, or give them a longer \
                 QueueTimeout"
            ),
        );
    }
    let groups = render_groups(&groups(job, known));
    if job.executions.is_empty() && job.bids_received == 0 {
        let (cause, detail) = match (groups.is_empty(), job.announce.draw_ppm) {
            (true, None) => (
                FailureCause::NoNodeAnswered,
                format!("no node answered within {waited}; is this node connected to any peer?"),
            ),
            (true, Some(ppm)) => (
                FailureCause::NoNodeAnswered,
                format!(
                    "no node answered within {waited} ({} of the nodes asked); is this node \
                     connected to any peer?",
                    share(ppm)
                ),
            ),
            (false, None) => (
                FailureCause::NoNodeAccepts,
                format!("no node accepts this job: {groups}"),
            ),
            (false, Some(ppm)) => (
                FailureCause::NoNodeAccepts,
                format!(
                    "no drawn node accepts this job ({} of the nodes asked): {groups}",
                    share(ppm)
                ),
            ),
        };
        Failure::new(cause, detail)
    } else {
        let mut text = format!(
            "only {} of {} executions completed and no other node took the job within {waited}",
            job.completed(),
            job.count()
        );
        let failures = failures(job);
        if !failures.is_empty() {
            text.push_str(&format!("; attempts: {failures}"));
        }
        if !groups.is_empty() {
            text.push_str(&format!("; other nodes: {groups}"));
        }
        Failure::new(FailureCause::QueueTimeout, text)
    }
}

/// R-PLC-1: the job's inputs, held only by this node (as far as it
/// knows), would take longer to fetch from it than the job's
/// `ExecutionTimeout` at the fastest rate it serves at: no node that lacks
/// them can run the job. `None` when that is not so, or not known.
/// `default_timeout_ms` is the timeout of a job that sets none.
pub(super) fn inputs_out_of_reach(
    job: &JobRecord,
    known: &BTreeMap<NodeId, KnownNode>,
    default_timeout_ms: u64,
) -> Option<Failure> {
    let announce = &job.announce;
    let (bytes, bps) = (announce.input_bytes?, announce.source_bps?);
    let fetch_ms = crate::link::transfer_ms(bytes, bps);
    let timeout_ms = announce
        .spec
        .task()
        .timeouts
        .execution_ms_or(default_timeout_ms);
    if fetch_ms <= timeout_ms {
        return None;
    }
    let mut detail = format!(
        "no node holding its inputs is left to take the job, and fetching them ({}) from this node \
         would take at least {} at {}, the fastest it serves at, longer than the job's \
         ExecutionTimeout ({}): raise ExecutionTimeout, or add the inputs to a node with a \
         faster link and submit the job there",
        crate::link::explain_bytes(bytes),
        duration(fetch_ms),
        crate::link::explain_rate(bps),
        duration(timeout_ms),
    );
    let groups = render_groups(&groups(job, known));
    if !groups.is_empty() {
        detail.push_str(&format!("; nodes: {groups}"));
    }
    Some(Failure::new(FailureCause::NoNodeAccepts, detail))
}

/// A draw's share of the network, `2.5%`.
fn share(ppm: u32) -> String {
    format!("{}.{}%", ppm / 10_000, (ppm % 10_000) / 1_000)
}

/// The job ran past its total timeout.
pub(super) fn total_timeout(job: &JobRecord, known: &BTreeMap<NodeId, KnownNode>) -> Failure {
    let total = job.announce.spec.task().timeouts.total_timeout.unwrap_or(0);
    let mut text = format!(
        "the job did not finish within its total timeout of {} ({} of {} executions completed)",
        duration(total.saturating_mul(1000)),
        job.completed(),
        job.count()
    );
    let failures = failures(job);
    if !failures.is_empty() {
        text.push_str(&format!("; attempts: {failures}"));
    }
    if job.executions.is_empty() {
        let groups = render_groups(&groups(job, known));
        if !groups.is_empty() {
            text.push_str(&format!("; nodes: {groups}"));
        }
    }
    Failure::new(FailureCause::TotalTimeout, text)
}

/// Every attempt allowed was used.
pub(super) fn attempts_exhausted(job: &JobRecord) -> Failure {
    let detail = format!(
        "gave up after {} attempts ({} of {} completed): {}",
        job.executions.len(),
        job.completed(),
        job.count(),
        failures(job)
    );
    Failure::new(FailureCause::AttemptsExhausted, detail)
}

/// An ops job whose nodes did not all complete it.
pub(super) fn ops_incomplete(job: &JobRecord) -> Failure {
    let detail = format!(
        "{} of the {} nodes that took the ops job completed it: {}",
        job.completed(),
        job.executions.len(),
        failures(job)
    );
    Failure::new(FailureCause::OpsIncomplete, detail)
}

/// The latest failed attempts, `NODE: reason; ...`.
fn failures(job: &JobRecord) -> String {
    let failed: Vec<String> = job
        .executions
        .iter()
        .filter_map(|e| match &e.state {
            ExecutionState::Failed { failure } => Some(format!("{}: {failure}", e.node)),
            _ => None,
        })
        .collect();
    let skip = failed.len().saturating_sub(MAX_FAILURES);
    let mut text = failed[skip..].join("; ");
    if skip > 0 {
        text.push_str(&format!(" (and {skip} earlier)"));
    }
    text
}

/// Nodes by why they did not take the job, most common first: what they
/// said, or for nodes that said nothing, what their node info tells.
fn groups(job: &JobRecord, known: &BTreeMap<NodeId, KnownNode>) -> Vec<(u32, String)> {
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for reason in job.refusals.values() {
        *counts.entry(summary(reason)).or_default() += 1;
    }
    for (text, n) in &job.more_refusals {
        let count = counts.entry(text.clone()).or_default();
        *count = count.saturating_add(*n);
    }
    let task = job.announce.spec.task();
    let mode = task.network.r#type;
    let engine = task.engine.kind();
    for (node, info) in known {
        if job.refusals.contains_key(node)
            || job.tried(node)
            || job.bids.iter().any(|b| b.node == *node)
        {
            continue;
        }
        let text = if mode > info.accept_network {
            RefuseReason::NetworkNotAccepted {
                requested: mode,
                accepted: info.accept_network,
            }
            .to_string()
        } else if !info.engines.iter().any(|e| e == engine) {
            RefuseReason::EngineUnavailable {
                engine: engine.to_owned(),
            }
            .to_string()
        } else if let Err(misfit @ Misfit::TooLarge { .. }) =
            Held::default().fit(&info.offer, &task.resources)
        {
            RefuseReason::from(misfit).to_string()
        } else if info.full {
            "no free slot".to_owned()
        } else if mode == NetworkMode::Http && info.has_allowlist {
            "did not answer (it has an allowlist)".to_owned()
        } else {
            "did not answer".to_owned()
        };
        *counts.entry(text).or_default() += 1;
    }
    let mut groups: Vec<(u32, String)> = counts.into_iter().map(|(t, n)| (n, t)).collect();
    groups.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    groups
}

/// `2 nodes: X; 1 node: Y`.
fn render_groups(groups: &[(u32, String)]) -> String {
    let mut parts: Vec<String> = groups
        .iter()
        .take(MAX_GROUPS)
        .map(|(n, text)| format!("{n} node{}: {text}", if *n == 1 { "" } else { "s" }))
        .collect();
    let rest: u32 = groups.iter().skip(MAX_GROUPS).map(|(n, _)| *n).sum();
    if rest > 0 {
        parts.push(format!("{rest} more for other reasons"));
    }
    parts.join("; ")
}
