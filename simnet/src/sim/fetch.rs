//! Executions that read CID inputs fetch them, one after another, before
//! they run (the model is in the crate docs, "Inputs and bandwidth").

use std::hash::{Hash, Hasher};

use protocol::failure::{Failure, FailureCause};
use protocol::id::{ExecutionId, JobId};
use protocol::messages::Outcome;

use super::{Event, Finished, Sim};
use crate::blobs::{self, INPUTS_TIMED_OUT, NO_PROVIDER};
use crate::check::{self, Violation};

/// An execution on its way through its inputs.
#[derive(Debug)]
pub(crate) struct Fetch {
    node: u32,
    incarnation: u32,
    /// The job, by its index in the plan.
    job: u32,
    job_id: JobId,
    execution_id: ExecutionId,
    /// The input to fetch next, by its place in the job.
    input: usize,
    /// Whether no provider of this input was reachable at the first look.
    retried: bool,
    /// The providers the job's announcement named: the submitter's store.
    announced: Vec<u32>,
    /// When the execution ends unless it is done: its start plus the job's
    /// `ExecutionTimeout`, which counts fetching the inputs (as on a node).
    deadline_ms: u64,
}

impl Fetch {
    /// Feeds the trace what identifies this step.
    pub(super) fn hash_into(&self, trace: &mut impl Hasher) {
        (self.node, self.job_id, self.execution_id.0).hash(trace);
        (self.input, self.retried).hash(trace);
    }
}

impl Sim {
    /// Starts an execution the compute side asked for: it runs at once if
    /// the job reads no CID input, else once its inputs are in.
    pub(super) fn start_execution(
        &mut self,
        i: usize,
        job_id: JobId,
        execution_id: ExecutionId,
        providers: &[String],
    ) -> Result<(), Violation> {
        let Some(&job) = self.job_index.get(&job_id) else {
            return Err(self.violation(format!("node {i} started a job nobody submitted")));
        };
        let deadline_ms = self.now + self.execution_timeout_ms();
        if self.jobs[job as usize].inputs.is_empty() {
            self.run_execution(i, job_id, execution_id, self.now, deadline_ms);
            return Ok(());
        }
        let announced = providers
            .iter()
            .filter_map(|p| blobs::node_of(p))
            .map(|p| p as u32)
            .collect();
        self.fetch_next(Fetch {
            node: i as u32,
            incarnation: self.incarnation[i],
            job,
            job_id,
            execution_id,
            input: 0,
            retried: false,
            announced,
            deadline_ms,
        })
    }

    /// The next step of a fetch, unless its node crashed since (the
    /// execution is lost, as a running one is).
    pub(super) fn on_fetch(&mut self, fetch: Fetch) -> Result<(), Violation> {
        let i = fetch.node as usize;
        if !self.up[i] || self.incarnation[i] != fetch.incarnation {
            return Ok(());
        }
        self.fetch_next(fetch)
    }

    /// Fetches the next input from its first reachable provider; with none
    /// reachable, looks once more after a drawn delay, then gives up.
    fn fetch_next(&mut self, mut fetch: Fetch) -> Result<(), Violation> {
        let i = fetch.node as usize;
        let input = &self.jobs[fetch.job as usize].inputs[fetch.input];
        let bytes = input.bytes;
        // As a real node asks: the announcement's providers, then those a
        // provider lookup finds.
        let providers: Vec<usize> = fetch
            .announced
            .iter()
            .chain(&input.replicas)
            .map(|&p| p as usize)
            .collect();
        let took = match self.first_reachable(i, &providers) {
            Some(p) if p == i => {
                self.inputs.local_reads += 1;
                0
            }
            Some(p) => self.transfer(p, i, bytes),
            None if !fetch.retried => {
                fetch.retried = true;
                let (lo, hi) = self.config.execution.fetch_retry_ms;
                let at = self.now + self.rng.range(lo, hi);
                if at > fetch.deadline_ms {
                    self.timed_out(fetch);
                } else {
                    self.push(at, Event::Fetch(Box::new(fetch)));
                }
                return Ok(());
            }
            None => return self.give_up(fetch),
        };
        fetch.input += 1;
        fetch.retried = false;
        let at = self.now + took;
        if at > fetch.deadline_ms {
            self.timed_out(fetch);
            return Ok(());
        }
        if fetch.input == self.jobs[fetch.job as usize].inputs.len() {
            let deadline_ms = fetch.deadline_ms;
            self.run_execution(i, fetch.job_id, fetch.execution_id, at, deadline_ms);
        } else {
            self.push(at, Event::Fetch(Box::new(fetch)));
        }
        Ok(())
    }

    /// The provider node `i` fetches from: itself if it holds the input
    /// (its own store is looked in first), else the first that is up and
    /// not cut off from it. A faulty-fetch node finds none.
    fn first_reachable(&self, i: usize, providers: &[usize]) -> Option<usize> {
        if self.faulty_fetch[i] {
            return None;
        }
        if providers.contains(&i) {
            return Some(i);
        }
        providers
            .iter()
            .copied()
            .find(|&p| self.up[p] && !self.net.separated(p, i, self.now))
    }

    /// One transfer from `from` to `to`: connecting and asking cost a link
    /// delay each, the bytes go at the slower of `from`'s upload and `to`'s
    /// download. Returns how long it takes.
    fn transfer(&mut self, from: usize, to: usize, bytes: u64) -> u64 {
        let connect = self.net.pair_delay(&mut self.rng, from, to);
        let request = self.net.pair_delay(&mut self.rng, from, to);
        let mbps = self.nodes[from]
            .bandwidth
            .up_mbps
            .min(self.nodes[to].bandwidth.down_mbps);
        let took = connect + request + blobs::transfer_ms(bytes, mbps);
        self.inputs.transfer(from, to, bytes, took);
        took
    }

    /// The inputs are not in by the deadline: the execution fails then,
    /// with the reason a node gives.
    fn timed_out(&mut self, fetch: Fetch) {
        let timeout_s = self.config.mix.execution_timeout_s;
        let at = fetch.deadline_ms.max(self.now);
        let detail = format!("the {INPUTS_TIMED_OUT} ({timeout_s} s)");
        self.fail(fetch, at, Failure::new(FailureCause::InputTimeout, detail));
    }

    /// Ends the execution at `at` with a failure.
    fn fail(&mut self, fetch: Fetch, at: u64, failure: Failure) {
        self.push(
            at,
            Event::Finished(Box::new(Finished {
                node: fetch.node,
                incarnation: fetch.incarnation,
                job_id: fetch.job_id,
                execution_id: fetch.execution_id,
                outcome: Outcome::Failed { failure },
            })),
        );
    }

    /// The execution fails for an input no provider serves: checked against
    /// who truly holds it and the network at this moment, then reported.
    fn give_up(&mut self, fetch: Fetch) -> Result<(), Violation> {
        let i = fetch.node as usize;
        let job = fetch.job as usize;
        let input = &self.jobs[job].inputs[fetch.input];
        let cid = input.cid.clone();
        let submitter = self.tracks[job].submitted.map(|(by, _)| by as usize);
        let holders: Vec<usize> = submitter
            .into_iter()
            .chain(input.replicas.iter().map(|&p| p as usize))
            .collect();
        check::check_unreachable(i, &cid, &holders, |p| {
            self.up[p] && !self.net.separated(p, i, self.now)
        })
        .map_err(|what| self.violation(format!("node {i} {what}")))?;
        let detail = format!("input CID {cid}: {NO_PROVIDER}");
        let failure = Failure::new(FailureCause::InputUnavailable, detail);
        self.fail(fetch, self.now, failure);
        Ok(())
    }
}
