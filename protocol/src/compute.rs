//! The compute state machine: one per node, deciding and running jobs for
//! requesters, this node included (R-POL-1..4).
//!
//! Sans-IO like [`crate::requester`]: the driver feeds it announcements,
//! awards, cancellations and finished executions with the current time in
//! milliseconds ([`Compute::handle`], [`Compute::handle_timeout`]), carries
//! out [`Compute::poll_output`] (send a message, start or stop an
//! execution) and wakes it at [`Compute::poll_timeout`].
//!
//! ```
//! use protocol::compute::{Compute, ComputeConfig, ComputeInput, ComputeOutput, ToRequester};
//! use protocol::id::{ExecutionId, NodeKey};
//! use protocol::job::JobSpec;
//! use protocol::messages::{Announce, Award};
//! use protocol::policy::AcceptancePolicy;
//!
//! let me = NodeKey::from_secret_bytes([2; 32]).node_id();
//! let requester = NodeKey::from_secret_bytes([1; 32]).node_id();
//! // Accepts `none` jobs only (the default policy), runs Docker.
//! let mut compute = Compute::new(ComputeConfig::new(me, AcceptancePolicy::default(), ["docker"], 7));
//!
//! let spec = JobSpec::parse(
//!     "type: batch\ncount: 1\ntasks:\n  - name: main\n    engine:\n      type: docker\n      \
//!      params:\n        image: busybox\n",
//! )?;
//! let announce = Announce::new(spec, requester, 1_700_000_000_000, vec![])?;
//! let job_id = announce.job_id;
//! compute.handle(0, ComputeInput::announce(announce));
//! assert!(matches!(
//!     compute.poll_output(),
//!     Some(ComputeOutput::Send { msg: ToRequester::Bid(_), .. })
//! ));
//!
//! let award = Award { job_id, execution_id: ExecutionId(0), node: me, partition: 0 };
//! compute.handle(20, ComputeInput::Award { from: requester, award });
//! let started = std::iter::from_fn(|| compute.poll_output())
//!     .any(|out| matches!(out, ComputeOutput::Start { .. }));
//! assert!(started);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Rules
//! - **Draw.** An announcement that does not draw this node
//!   ([`Announce::draws`]: the requester asks only a share of the network)
//!   is ignored: no answer, nothing remembered, so a wider re-announcement
//!   is decided afresh.
//! - **Announcement.** The node bids when its [`AcceptancePolicy`] allows
//!   the job's network (mode and allowlist), it has the job's engine (and
//!   image), every Constraint of the job holds of the node's labels
//!   ([`RefuseReason::ConstraintNotMet`]), the job's local inputs and `dir`
//!   publisher lie in folders the
//!   operator listed (R-SEC-2), what the task asks of CPU, memory and disk
//!   fits what the node offers beside what its bids and executions hold
//!   (R-PLC-1, [`crate::resources`]), and a slot is free (running
//!   executions plus open bids below its capacity); otherwise it refuses,
//!   saying why ([`RefuseReason`]). A bid stays open for
//!   [`ComputeConfig::bid_ttl_ms`] and holds a slot and the task's
//!   resources meanwhile.
//! - **Inputs.** When the announcement gives the job's input size
//!   ([`Announce::input_bytes`]), the node estimates how long fetching the
//!   bytes it does not hold would take, at the slower of its own download
//!   rate and the rate the requester serves at ([`crate::link`]), and
//!   refuses a job it could not fetch within the job's `ExecutionTimeout`
//!   ([`RefuseReason::InputsTooSlow`], lasting, R-PLC-1). Its bid says what
//!   it holds and its estimate, for the requester's pick (R-POL-4). A node
//!   that holds all of a job's inputs answers even when the draw does not
//!   ask it: it is where the job runs best.
//! - **Fair shares.** While another requester's job waits here for a slot,
//!   a requester whose jobs hold their share of the slots
//!   ([`ComputeConfig::requester_share_percent`], at least one) gets no
//!   more ([`RefuseReason::RequesterShare`], R-PLC-2); a slot that frees up
//!   goes to the oldest waiting job whose requester is within its share. An
//!   announcement is answered once: a repeat gets no answer, unless the
//!   node refused or its bid expired and it would now bid (a slot freed up,
//!   the policy changed).
//! - **Award.** Taken only from the job's requester, for this node, against
//!   an open bid. The policy, engine and capacity are checked again, as they
//!   are *now* (the allowlist may have been reloaded since the bid): if the
//!   job may still run, [`ComputeOutput::Start`]; otherwise a [`Decline`]
//!   saying why, so the requester re-awards at once. An award without an
//!   open bid (expired, never made) is declined too.
//! - **Cancel.** Taken only from the job's requester: a running execution is
//!   stopped ([`ComputeOutput::Stop`]), an open bid dropped and its slot
//!   freed (a requester releases bids it will not need); a later
//!   re-announcement of the job is decided again.
//! - **Finished.** The result goes to the requester; the slot and the
//!   task's resources are freed.
//!
//! ## Invariant
//! A [`ComputeOutput::Start`] is only ever emitted when the policy, the
//! engines, the capacity and the free resources at that moment allow the
//! job. Property-tested
//! with many nodes, random hot reloads of the policy and random schedules in
//! `testnet.rs`; the rules one by one in `compute/tests.rs`.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::id::{ExecutionId, JobId, NodeId};
use crate::job::{JobSpec, Resources};
use crate::link::{LinkRates, Transfer};
use crate::messages::{
    Announce, Award, Bid, Cancel, Decline, Outcome, Progress, Refuse, ResultMsg, Step,
};
use crate::policy::{AcceptancePolicy, Decision, RefuseReason};
use crate::resources::{Held, Misfit};

/// How a [`Compute`] node behaves. [`ComputeConfig::new`] gives the
/// defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputeConfig {
    /// This node: the bidder named in its bids.
    pub node: NodeId,
    /// What it accepts (`--accept-network`, `--allowlist`).
    pub policy: AcceptancePolicy,
    /// The engines it runs (`docker`, `wasm`).
    pub engines: BTreeSet<String>,
    /// How many executions it runs at once (open bids count too). Default 4.
    pub capacity: u32,
    /// What it offers its executions (`--resources`): a task is bid on
    /// only if what it asks fits beside what open bids and running
    /// executions hold (R-PLC-1). A kind left unset is not checked.
    /// Default: all unset.
    pub resources: Resources,
    /// The share of the slots, in percent, one requester may hold while
    /// other requesters' jobs wait for a slot here (R-PLC-2): at least one
    /// slot. Default 25; 100 turns the rule off.
    pub requester_share_percent: u32,
    /// How long a bid stays open for an award. Default 3 s: ten times the
    /// requester's default bid window.
    pub bid_ttl_ms: u64,
    /// Answered jobs remembered, so repeated announcements are not answered
    /// again. Default 65,536.
    pub max_remembered: usize,
    /// The Docker images on this node (`name:tag`, and `name@digest`
    /// references), when the driver knows them: Docker jobs naming another
    /// image are refused unless [`ComputeConfig::pull`] allows pulling it.
    /// `None` (the default): not checked.
    pub local_images: Option<BTreeSet<String>>,
    /// The registries the node pulls missing images from (`--pull-from`).
    /// Default: none.
    pub pull: crate::image::PullPolicy,
    /// Folders local-path inputs may come from (absolute paths); jobs
    /// reading other local paths are refused
    /// ([`RefuseReason::LocalInputNotAllowed`]). Default: none. The node
    /// checks again, symlinks resolved, when it materialises the input.
    pub local_inputs: Vec<String>,
    /// Those of [`ComputeConfig::local_inputs`] jobs may also write to
    /// (`--local-inputs DIR:rw`): a `ReadWrite` local input elsewhere is
    /// refused ([`RefuseReason::LocalInputNotWritable`]). Default: none.
    pub local_inputs_rw: Vec<String>,
    /// Folders `dir` publishers may write under (absolute paths, the
    /// operator's `--publish-dir`); jobs publishing elsewhere are refused
    /// ([`RefuseReason::PublishDirNotAllowed`]), and with none listed every
    /// `dir` publisher is (R-SEC-2). Default: none. The node checks again,
    /// symlinks resolved, when it publishes.
    pub publish_dirs: Vec<String>,
    /// Where this node serves the results it publishes (its store's
    /// addresses), named in every [`ResultMsg`]. Default: none.
    pub result_providers: Vec<String>,
    /// The node's labels (`--label`), which jobs' Constraints are checked
    /// against. Default: none.
    pub labels: BTreeMap<String, String>,
    /// The node's S3 endpoint and region (`--s3-endpoint`), which S3
    /// inputs and the `s3` publisher use; without one, such jobs are
    /// refused at bid time instead of failing after they ran, and so is a
    /// job naming another endpoint or region. Default: none.
    pub s3: Option<S3Offer>,
    /// The node's environment variables jobs may read with `env:NAME` in
    /// their `Env` (`--allow-env`): names, or prefixes ending in `*`.
    /// Default: none.
    pub allowed_env: Vec<String>,
    /// The `ExecutionTimeout` of a job that sets none, as the node's
    /// executors apply it: the fetch of its inputs counts in it. Default
    /// 10 min.
    pub execution_timeout_ms: u64,
    /// What the operator says the node's link does, bits per second
    /// (`--link`): the start of its rate estimates. Default: unknown.
    pub link: LinkRates,
    /// Seeds the node's random choices. The rules above make none yet; the
    /// seed is here so that a simulation seeds every machine the same way.
    pub seed: u64,
}

/// The S3 endpoint a node reads inputs from and publishes to, with its
/// operator's credentials (which stay on the node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Offer {
    pub endpoint: String,
    pub region: String,
}

impl S3Offer {
    /// Why a node without S3 refuses.
    pub const NONE: &'static str =
        "it has no S3 endpoint (its operator sets one with --s3-endpoint)";

    /// Whether a job naming `endpoint` and `region` (each optional) can be
    /// served here: the node uses its own endpoint only, so a job cannot
    /// point the operator's credentials at a server of its choosing. The
    /// one rule: bid time here, fetch and publish time in `storage`.
    pub fn mismatch(&self, endpoint: Option<&str>, region: Option<&str>) -> Option<S3Mismatch> {
        if endpoint.is_some_and(|e| e.trim_end_matches('/') != self.endpoint.trim_end_matches('/'))
        {
            return Some(S3Mismatch::Endpoint);
        }
        if region.is_some_and(|r| r != self.region) {
            return Some(S3Mismatch::Region);
        }
        None
    }

    /// [`S3Offer::mismatch`], said as a refusal's reason.
    pub fn serves(&self, endpoint: Option<&str>, region: Option<&str>) -> Result<(), String> {
        match self.mismatch(endpoint, region) {
            None => Ok(()),
            Some(S3Mismatch::Endpoint) => Err(format!(
                "the job names endpoint {}, and the node uses only its own ({}): leave \
                 Endpoint out",
                endpoint.unwrap_or_default().escape_debug(),
                self.endpoint
            )),
            Some(S3Mismatch::Region) => Err(format!(
                "the job names region {}, and the node's S3 is in {}",
                region.unwrap_or_default().escape_debug(),
                self.region
            )),
        }
    }
}

/// What a job names that a node's S3 does not serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Mismatch {
    /// Another endpoint.
    Endpoint,
    /// Another region.
    Region,
}

impl ComputeConfig {
    /// The defaults for `node` running `engines`, with `policy` and `seed`.
    pub fn new(
        node: NodeId,
        policy: AcceptancePolicy,
        engines: impl IntoIterator<Item = impl Into<String>>,
        seed: u64,
    ) -> ComputeConfig {
        ComputeConfig {
            node,
            policy,
            engines: engines.into_iter().map(Into::into).collect(),
            capacity: 4,
            resources: Resources::default(),
            requester_share_percent: 25,
            bid_ttl_ms: 3_000,
            max_remembered: 65_536,
            result_providers: Vec::new(),
            local_images: None,
            pull: crate::image::PullPolicy::default(),
            local_inputs: Vec::new(),
            local_inputs_rw: Vec::new(),
            publish_dirs: Vec::new(),
            labels: BTreeMap::new(),
            s3: None,
            allowed_env: Vec::new(),
            execution_timeout_ms: DEFAULT_EXECUTION_TIMEOUT_MS,
            link: LinkRates::default(),
            seed,
        }
    }
}

/// The `ExecutionTimeout` of a job that sets none: 10 min.
pub const DEFAULT_EXECUTION_TIMEOUT_MS: u64 = 10 * 60 * 1000;

/// What happened, for the compute node to act on ([`Compute::handle`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComputeInput {
    /// A verified job announcement (its signer is its requester).
    Announce {
        /// The announcement.
        announce: Announce,
        /// Bytes of the job's CID inputs the node already holds, as its
        /// driver found in its store.
        held_bytes: u64,
    },
    /// The node finished moving blobs: a sample for its rate estimates.
    Transferred(Transfer),
    /// A verified award, and its signer.
    Award {
        /// The signer.
        from: NodeId,
        /// The award.
        award: Award,
    },
    /// A verified cancellation, and its signer.
    Cancel {
        /// The signer.
        from: NodeId,
        /// The cancellation.
        cancel: Cancel,
    },
    /// An execution this node started has ended (or was stopped).
    ExecutionFinished {
        /// The job.
        job_id: JobId,
        /// The execution, from [`ComputeOutput::Start`].
        execution_id: ExecutionId,
        /// What came of it.
        outcome: Outcome,
    },
    /// An execution this node runs has reached a step its requester is
    /// told of (issue 16).
    ExecutionStep {
        /// The job.
        job_id: JobId,
        /// The execution, from [`ComputeOutput::Start`].
        execution_id: ExecutionId,
        /// Where it is.
        step: Step,
    },
}

/// A direct message for a requester; the driver signs and sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToRequester {
    /// "I will run it".
    Bid(Bid),
    /// "I will not, because".
    Refuse(Refuse),
    /// "I will not run the award after all, because".
    Decline(Decline),
    /// "This is how it ended".
    Result(ResultMsg),
    /// "This is where it is".
    Progress(Progress),
}

/// What the compute node asks the driver to do ([`Compute::poll_output`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComputeOutput {
    /// Sign and send `msg` to `to`.
    Send {
        /// The requester.
        to: NodeId,
        /// The message.
        msg: ToRequester,
    },
    /// Fetch the inputs and run the job; report with
    /// [`ComputeInput::ExecutionFinished`].
    Start {
        /// The job.
        job_id: JobId,
        /// The execution, to echo.
        execution_id: ExecutionId,
        /// The job.
        spec: JobSpec,
        /// Where its CID inputs can be fetched.
        providers: Vec<String>,
        /// Which of the job's `Count` parts it runs, from 0.
        partition: u32,
    },
    /// Stop the execution (its requester cancelled it). Report it with
    /// [`ComputeInput::ExecutionFinished`] or not: either is fine.
    Stop {
        /// The job.
        job_id: JobId,
        /// The execution.
        execution_id: ExecutionId,
    },
    /// Something happened, for logs and metrics.
    Event {
        /// The job.
        job_id: JobId,
        /// What happened.
        event: ComputeEvent,
    },
}

/// A step in a job's life on a compute node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComputeEvent {
    /// The node bid.
    BidSent,
    /// The node refused.
    Refused {
        /// Why.
        reason: RefuseReason,
    },
    /// The bid was not awarded in time.
    BidExpired,
    /// An award was declined.
    Declined {
        /// The execution.
        execution_id: ExecutionId,
        /// Why.
        reason: String,
    },
    /// An execution started.
    Started {
        /// The execution.
        execution_id: ExecutionId,
    },
    /// An execution was stopped by its requester.
    Stopped {
        /// The execution.
        execution_id: ExecutionId,
    },
    /// An open bid was withdrawn by its requester's cancellation.
    BidCancelled,
    /// An execution ended and its result was sent.
    Finished {
        /// The execution.
        execution_id: ExecutionId,
    },
}

/// What open bids and running executions hold, in total and in slots by
/// the requester they serve.
#[derive(Debug, Default)]
struct Holds {
    resources: Held,
    slots_by_requester: BTreeMap<NodeId, u32>,
}

impl Holds {
    fn take(&mut self, requester: NodeId, asked: &Resources) {
        self.resources.take(asked);
        *self.slots_by_requester.entry(requester).or_default() += 1;
    }

    fn give_back(&mut self, requester: NodeId, asked: &Resources) {
        self.resources.give_back(asked);
        if let Some(slots) = self.slots_by_requester.get_mut(&requester) {
            *slots = slots.saturating_sub(1);
            if *slots == 0 {
                self.slots_by_requester.remove(&requester);
            }
        }
    }

    fn slots(&self, requester: &NodeId) -> u32 {
        self.slots_by_requester.get(requester).copied().unwrap_or(0)
    }
}

/// Where a job stands on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    /// Refused; a repeated announcement is decided again.
    Refused,
    /// Bid, holding a slot until the award or `expires_at_ms`.
    Bid {
        announce: Box<Announce>,
        expires_at_ms: u64,
    },
    /// The bid expired; a repeated announcement is decided again.
    Expired,
    /// Running.
    Running { execution_id: ExecutionId },
    /// Ran, was stopped, or its bid was cancelled: nothing more to do.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    requester: NodeId,
    slot: Slot,
    /// What the job's task asks for: held while it bids or runs.
    asked: Resources,
}

impl ComputeInput {
    /// An announcement of a job none of whose inputs the node holds.
    pub fn announce(announce: Announce) -> ComputeInput {
        ComputeInput::Announce {
            announce,
            held_bytes: 0,
        }
    }
}

/// The compute state machine. See the [module docs](self).
#[derive(Debug)]
pub struct Compute {
    config: ComputeConfig,
    jobs: BTreeMap<JobId, Entry>,
    /// Jobs in the order they were first answered, to forget the oldest.
    order: VecDeque<JobId>,
    /// Open bids by expiry.
    expiries: BTreeSet<(u64, JobId)>,
    running: u32,
    open_bids: u32,
    /// What open bids and running executions hold: of `config.resources`,
    /// and slots by requester.
    held: Holds,
    /// Jobs refused for want of a slot, oldest first: only jobs still
    /// refused here (a job leaves it when its slot changes), and refused
    /// recently (the oldest expire).
    waiting: Waiting,
    /// How fast the node's link moves blobs.
    link: LinkRates,
    outputs: VecDeque<ComputeOutput>,
}

/// Jobs remembered for a late bid once a slot frees up, at most: enough
/// for a burst of thousands of jobs across a few nodes.
const MAX_WAITING: usize = 4096;
/// ... and at most this many bytes of their announcements, so a peer's
/// large announcements cannot make the node hold more.
const MAX_WAITING_BYTES: usize = 16 << 20;
/// A job refused longer ago than this gets no late bid: its requester
/// waits that long by default while nodes are busy, then gives up.
const LATE_BID_WITHIN_MS: u64 = crate::requester::DEFAULT_BACKLOG_TIMEOUT_MS;

impl Compute {
    /// A compute node with nothing running.
    pub fn new(config: ComputeConfig) -> Compute {
        Compute {
            link: config.link.clone(),
            config,
            jobs: BTreeMap::new(),
            order: VecDeque::new(),
            expiries: BTreeSet::new(),
            running: 0,
            open_bids: 0,
            held: Holds::default(),
            waiting: Waiting::default(),
            outputs: VecDeque::new(),
        }
    }

    /// The node's link rates, as far as it knows them.
    pub fn link(&self) -> &LinkRates {
        &self.link
    }

    /// The configuration as it is now (policy, engines, capacity included).
    pub fn config(&self) -> &ComputeConfig {
        &self.config
    }

    /// Replaces where results are said to be fetched from (the node's data
    /// address changed: a relay was learnt, an external address found).
    pub fn set_result_providers(&mut self, providers: Vec<String>) {
        self.config.result_providers = providers;
    }

    /// The policy in force.
    pub fn policy(&self) -> &AcceptancePolicy {
        &self.config.policy
    }

    /// Executions running now.
    pub fn running(&self) -> u32 {
        self.running
    }

    /// Bids open now.
    pub fn open_bids(&self) -> u32 {
        self.open_bids
    }

    /// What is free of each resource the node offers: the offer less what
    /// open bids and running executions hold. Kinds not offered are `None`.
    pub fn free(&self) -> Resources {
        self.held.resources.free(&self.config.resources)
    }

    /// Replaces the policy (the allowlist file changed, SIGHUP). Open bids
    /// stay open; their awards are checked against the new policy.
    pub fn set_policy(&mut self, policy: AcceptancePolicy) {
        self.config.policy = policy;
    }

    /// Changes the number of slots. Running executions are not stopped.
    pub fn set_capacity(&mut self, capacity: u32) {
        self.config.capacity = capacity;
    }

    /// Changes the engines available (Docker went away or came back).
    pub fn set_engines(&mut self, engines: BTreeSet<String>) {
        self.config.engines = engines;
    }

    /// Whether this node would bid on a job now, or why not (policy,
    /// engine, capacity, in that order).
    pub fn decide(&self, spec: &JobSpec) -> Decision {
        self.decide_holding(spec, 0)
    }

    /// [`Compute::decide`], where `held` slots are already this job's (its
    /// open bid), so they do not count against it.
    fn decide_holding(&self, spec: &JobSpec, held: u32) -> Decision {
        let task = spec.task();
        if let Decision::Refuse(reason) = self
            .config
            .policy
            .decide(task.network.r#type, &task.network.domains)
        {
            return Decision::Refuse(reason);
        }
        let engine = task.engine.kind();
        if !self.config.engines.contains(engine) {
            return Decision::Refuse(RefuseReason::EngineUnavailable {
                engine: engine.to_owned(),
            });
        }
        if let Some(unmet) = spec
            .constraints
            .iter()
            .find(|c| !c.holds(&self.config.labels))
        {
            return Decision::Refuse(RefuseReason::ConstraintNotMet {
                constraint: unmet.to_string(),
            });
        }
        if let Some(variable) = task
            .node_env_reads()
            .find(|name| !env_allowed(&self.config.allowed_env, name))
        {
            return Decision::Refuse(RefuseReason::EnvNotAllowed {
                variable: variable.to_owned(),
            });
        }
        if let (crate::job::Engine::Docker(params), Some(images)) =
            (&task.engine, &self.config.local_images)
            && !image_present(images, &params.image)
        {
            // Decoded specs carry valid references; anything else is not
            // pulled.
            let route = match crate::image::ImageRef::parse(&params.image) {
                Ok(image) => self.config.pull.route(&image).map(drop),
                Err(_) => Err(RefuseReason::ImageMissing {
                    image: params.image.clone(),
                }),
            };
            if let Err(reason) = route {
                return Decision::Refuse(reason);
            }
        }
        for input in &task.input_sources {
            let crate::job::Source::Local(local) = &input.source else {
                continue;
            };
            let under = |dirs: &[String]| dirs.iter().any(|d| path_under(&local.source_path, d));
            let path = || local.source_path.clone();
            if !under(&self.config.local_inputs) {
                return Decision::Refuse(RefuseReason::LocalInputNotAllowed { path: path() });
            }
            if local.read_write && !under(&self.config.local_inputs_rw) {
                return Decision::Refuse(RefuseReason::LocalInputNotWritable { path: path() });
            }
        }
        for input in &task.input_sources {
            if let crate::job::Source::S3(source) = &input.source {
                let what = || format!("S3 input {}", input.source.describe());
                let Some(offer) = &self.config.s3 else {
                    return Decision::Refuse(RefuseReason::S3Refused {
                        what: what(),
                        why: S3Offer::NONE.into(),
                    });
                };
                if let Err(why) = offer.serves(source.endpoint.as_deref(), source.region.as_deref())
                {
                    return Decision::Refuse(RefuseReason::S3Refused { what: what(), why });
                }
            }
        }
        if let crate::job::Publisher::S3(publisher) = &task.publisher {
            let Some(offer) = &self.config.s3 else {
                return Decision::Refuse(RefuseReason::PublisherUnavailable {
                    publisher: "s3".into(),
                });
            };
            if let Err(why) =
                offer.serves(publisher.endpoint.as_deref(), publisher.region.as_deref())
            {
                return Decision::Refuse(RefuseReason::S3Refused {
                    what: "publishing to S3".into(),
                    why,
                });
            }
        }
        if let crate::job::Publisher::Dir(dir) = &task.publisher
            && !self
                .config
                .publish_dirs
                .iter()
                .any(|allowed| path_under(&dir.path, allowed))
        {
            return Decision::Refuse(RefuseReason::PublishDirNotAllowed {
                path: dir.path.clone(),
            });
        }
        // A task that can never fit says so before a busy node says it is
        // busy: the first refusal is lasting, the others pass.
        let fit = self
            .held
            .resources
            .fit(&self.config.resources, &task.resources);
        if let Err(misfit @ Misfit::TooLarge { .. }) = fit {
            return Decision::Refuse(misfit.into());
        }
        let taken = (self.running + self.open_bids).saturating_sub(held);
        if taken >= self.config.capacity {
            return Decision::Refuse(RefuseReason::NoCapacity {
                running: taken,
                capacity: self.config.capacity,
            });
        }
        if let Err(misfit) = fit {
            return Decision::Refuse(misfit.into());
        }
        Decision::Bid
    }

    /// Sets the images on the node (see [`ComputeConfig::local_images`]).
    pub fn set_local_images(&mut self, images: Option<BTreeSet<String>>) {
        self.config.local_images = images;
    }

    /// Feeds one input.
    pub fn handle(&mut self, now_ms: u64, input: ComputeInput) {
        self.waiting.expire(now_ms);
        match input {
            ComputeInput::Announce {
                announce,
                held_bytes,
            } => self.on_announce(now_ms, announce, held_bytes),
            ComputeInput::Transferred(transfer) => self.link.record(transfer),
            ComputeInput::Award { from, award } => self.on_award(from, award),
            ComputeInput::Cancel { from, cancel } => self.on_cancel(from, cancel),
            ComputeInput::ExecutionFinished {
                job_id,
                execution_id,
                outcome,
            } => self.on_finished(job_id, execution_id, outcome),
            ComputeInput::ExecutionStep {
                job_id,
                execution_id,
                step,
            } => self.on_step(job_id, execution_id, step),
        }
        self.offer_free_slots(now_ms);
    }

    /// Wakes the node: expires bids whose time has passed.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        while let Some(&(at, job_id)) = self.expiries.first() {
            if at > now_ms {
                break;
            }
            self.expiries.pop_first();
            if let Some(entry) = self.jobs.get_mut(&job_id)
                && matches!(entry.slot, Slot::Bid { expires_at_ms, .. } if expires_at_ms == at)
            {
                entry.slot = Slot::Expired;
                self.open_bids -= 1;
                self.held.give_back(entry.requester, &entry.asked);
                self.event(job_id, ComputeEvent::BidExpired);
            }
        }
        self.offer_free_slots(now_ms);
    }

    /// The next thing for the driver to do, if any.
    pub fn poll_output(&mut self) -> Option<ComputeOutput> {
        self.outputs.pop_front()
    }

    /// When to call [`Compute::handle_timeout`] next, if a bid is open.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.expiries.first().map(|(at, _)| *at)
    }

    fn on_announce(&mut self, now_ms: u64, announce: Announce, held_bytes: u64) {
        if !announce.draws(&self.config.node) && !announce.all_held(held_bytes) {
            // Not drawn: other nodes answer. A wider re-announcement may
            // draw this one.
            return;
        }
        let job_id = announce.job_id;
        let requester = announce.requester;
        match self.jobs.get(&job_id).map(|e| &e.slot) {
            None => {}
            // Decided again: the answer may have changed.
            Some(Slot::Refused | Slot::Expired) => {}
            Some(Slot::Bid { .. } | Slot::Running { .. } | Slot::Done) => return,
        }
        let first = !self.jobs.contains_key(&job_id);
        let asked = announce.spec.task().resources;
        let decision = match self.decide(&announce.spec) {
            Decision::Bid => match self.over_share(&requester) {
                Some(reason) => Decision::Refuse(reason),
                None => Decision::Bid,
            },
            refused => refused,
        };
        // A job the node could never fetch in time is refused as such, not
        // as busy: that refusal lasts.
        let (decision, fetch) = match (decision, self.fetch_estimate(&announce, held_bytes)) {
            (Decision::Refuse(reason), _) if !reason.is_passing() => {
                (Decision::Refuse(reason), None)
            }
            (_, Err(too_slow)) => (Decision::Refuse(too_slow), None),
            (decision, Ok(fetch_ms)) => (decision, fetch_ms),
        };
        if let Decision::Refuse(reason) = &decision
            && reason.is_passing()
        {
            self.wait_for_slot(now_ms, &announce, held_bytes);
        }
        let slot = match decision {
            Decision::Bid => {
                // Refused here before, it waits no longer.
                self.waiting.remove_job(&job_id);
                self.open_bid(now_ms, announce, held_bytes, fetch)
            }
            Decision::Refuse(reason) => {
                if !first {
                    // Answered once already, and the answer stands.
                    return;
                }
                self.send(
                    requester,
                    ToRequester::Refuse(Refuse {
                        job_id,
                        node: self.config.node,
                        reason: reason.clone(),
                    }),
                );
                self.event(job_id, ComputeEvent::Refused { reason });
                Slot::Refused
            }
        };
        self.jobs.insert(
            job_id,
            Entry {
                requester,
                slot,
                asked,
            },
        );
        if first {
            self.order.push_back(job_id);
            self.forget_old();
        }
    }

    fn on_award(&mut self, from: NodeId, award: Award) {
        if award.node != self.config.node {
            return;
        }
        let job_id = award.job_id;
        let execution_id = award.execution_id;
        let Some(entry) = self.jobs.get(&job_id) else {
            self.decline(from, &award, "this node has no open bid for the job".into());
            return;
        };
        if entry.requester != from {
            // Only the job's requester awards it.
            return;
        }
        match &entry.slot {
            Slot::Bid { .. } => {}
            Slot::Running {
                execution_id: running,
            } if *running == execution_id => return,
            Slot::Expired => {
                let ttl = crate::requester::explain_duration(self.config.bid_ttl_ms);
                let reason = format!("the bid expired: bids stay open for {ttl}");
                self.decline(from, &award, reason);
                return;
            }
            _ => {
                self.decline(from, &award, "this node has no open bid for the job".into());
                return;
            }
        }
        // The bid's own slot is this job's: it does not count against it.
        let Some(announce) = self.take_bid(job_id) else {
            return;
        };
        match self.decide_holding(&announce.spec, 0) {
            Decision::Bid => {
                self.running += 1;
                self.held
                    .take(announce.requester, &announce.spec.task().resources);
                self.set_slot(job_id, Slot::Running { execution_id });
                self.outputs.push_back(ComputeOutput::Start {
                    job_id,
                    execution_id,
                    spec: announce.spec,
                    providers: announce.providers,
                    partition: award.partition,
                });
                self.event(job_id, ComputeEvent::Started { execution_id });
            }
            Decision::Refuse(reason) => {
                self.set_slot(job_id, Slot::Refused);
                self.decline(from, &award, format!("no longer accepted: {reason}"));
            }
        }
    }

    fn on_cancel(&mut self, from: NodeId, cancel: Cancel) {
        let job_id = cancel.job_id;
        let Some(entry) = self.jobs.get(&job_id) else {
            return;
        };
        if entry.requester != from {
            return;
        }
        let asked = entry.asked;
        match entry.slot {
            Slot::Running { execution_id } => {
                self.running -= 1;
                self.held.give_back(from, &asked);
                self.set_slot(job_id, Slot::Done);
                self.outputs.push_back(ComputeOutput::Stop {
                    job_id,
                    execution_id,
                });
                self.event(job_id, ComputeEvent::Stopped { execution_id });
            }
            Slot::Bid { .. } => {
                // Released (another node took the job) or the job was
                // cancelled: the slot is free. Like an expired bid, a later
                // re-announcement of the job is decided again.
                self.release_bid(job_id);
                self.set_slot(job_id, Slot::Expired);
                self.event(job_id, ComputeEvent::BidCancelled);
            }
            Slot::Refused | Slot::Expired => {
                self.set_slot(job_id, Slot::Done);
                self.waiting.remove_job(&job_id);
            }
            Slot::Done => {}
        }
    }

    fn on_finished(&mut self, job_id: JobId, execution_id: ExecutionId, outcome: Outcome) {
        let Some(entry) = self.jobs.get(&job_id) else {
            return;
        };
        if entry.slot != (Slot::Running { execution_id }) {
            return;
        }
        let requester = entry.requester;
        let asked = entry.asked;
        self.running -= 1;
        self.held.give_back(requester, &asked);
        self.set_slot(job_id, Slot::Done);
        self.send(
            requester,
            ToRequester::Result(ResultMsg {
                job_id,
                execution_id,
                node: self.config.node,
                outcome,
                providers: self.config.result_providers.clone(),
            }),
        );
        self.event(job_id, ComputeEvent::Finished { execution_id });
    }

    /// Tells the requester where a running execution is.
    fn on_step(&mut self, job_id: JobId, execution_id: ExecutionId, step: Step) {
        let Some(entry) = self.jobs.get(&job_id) else {
            return;
        };
        if entry.slot != (Slot::Running { execution_id }) {
            return;
        }
        let requester = entry.requester;
        self.send(
            requester,
            ToRequester::Progress(Progress {
                job_id,
                execution_id,
                node: self.config.node,
                step,
            }),
        );
    }

    /// Closes the job's open bid, freeing its slot, and gives back what
    /// was bid on. The job's slot is left [`Slot::Done`] for the caller to
    /// set.
    fn take_bid(&mut self, job_id: JobId) -> Option<Box<Announce>> {
        let entry = self.jobs.get_mut(&job_id)?;
        match std::mem::replace(&mut entry.slot, Slot::Done) {
            Slot::Bid {
                announce,
                expires_at_ms,
            } => {
                self.expiries.remove(&(expires_at_ms, job_id));
                self.open_bids -= 1;
                self.held.give_back(entry.requester, &entry.asked);
                Some(announce)
            }
            other => {
                entry.slot = other;
                None
            }
        }
    }

    /// Frees the slot of the job's open bid.
    /// R-PLC-1: how long fetching the job's inputs this node lacks would
    /// take, in ms (`None`: the size or the rate is unknown), or the
    /// refusal when that is longer than the job's `ExecutionTimeout`.
    fn fetch_estimate(
        &self,
        announce: &Announce,
        held_bytes: u64,
    ) -> Result<Option<u64>, RefuseReason> {
        let Some(total) = announce.input_bytes else {
            return Ok(None);
        };
        let bytes = total.saturating_sub(held_bytes);
        if bytes == 0 {
            return Ok(Some(0));
        }
        let Some(bps) = [self.link.down.bps(), announce.source_bps]
            .into_iter()
            .flatten()
            .min()
        else {
            return Ok(None);
        };
        let fetch_ms = crate::link::transfer_ms(bytes, bps);
        let timeout_ms = announce
            .spec
            .task()
            .timeouts
            .execution_ms_or(self.config.execution_timeout_ms);
        if fetch_ms > timeout_ms {
            return Err(RefuseReason::InputsTooSlow {
                bytes,
                bps,
                fetch_ms,
                timeout_ms,
            });
        }
        Ok(Some(fetch_ms))
    }

    /// Bids on `announce`, holding a slot until the award or the bid's TTL.
    fn open_bid(
        &mut self,
        now_ms: u64,
        announce: Announce,
        held_bytes: u64,
        fetch_ms: Option<u64>,
    ) -> Slot {
        let job_id = announce.job_id;
        let expires_at_ms = now_ms.saturating_add(self.config.bid_ttl_ms);
        self.expiries.insert((expires_at_ms, job_id));
        self.open_bids += 1;
        self.held
            .take(announce.requester, &announce.spec.task().resources);
        self.send(
            announce.requester,
            ToRequester::Bid(Bid {
                job_id,
                bidder: self.config.node,
                running_jobs: self.running,
                held_bytes,
                fetch_ms,
            }),
        );
        self.event(job_id, ComputeEvent::BidSent);
        Slot::Bid {
            announce: Box::new(announce),
            expires_at_ms,
        }
    }

    /// Remembers a job refused for want of a slot, to bid on it when one
    /// frees up ([`Compute::offer_free_slots`]).
    fn wait_for_slot(&mut self, now_ms: u64, announce: &Announce, held_bytes: u64) {
        self.waiting.push(now_ms, announce, held_bytes);
    }

    /// A slot is free and jobs were refused for want of one: bid on the
    /// oldest that still may run here, instead of leaving the slot idle until
    /// its requester re-announces (R-POL-3: the refusal said "no free slot";
    /// a requester takes a later bid from a node that refused).
    fn offer_free_slots(&mut self, now_ms: u64) {
        if self.waiting.is_empty() || self.running + self.open_bids >= self.config.capacity {
            return;
        }
        // Whether each requester is over its share, found once per call
        // and again after each bid (which changes the holds).
        let mut over: BTreeMap<NodeId, bool> = BTreeMap::new();
        let mut i = 0;
        // Until the slots are full: what is left waits for the next one.
        while i < self.waiting.len() && self.running + self.open_bids < self.config.capacity {
            let waiting = self.waiting.get(i);
            let (announce, held_bytes) = (&waiting.announce, waiting.held_bytes);
            let (job_id, requester) = (announce.job_id, announce.requester);
            let stale = !matches!(self.jobs.get(&job_id), Some(e) if e.slot == Slot::Refused)
                || now_ms.saturating_sub(waiting.refused_at_ms) > LATE_BID_WITHIN_MS;
            if stale {
                self.waiting.remove(i);
                continue;
            }
            // The rates may have been learnt since; a job the node can no
            // longer fetch in time is left to others.
            let Ok(fetch_ms) = self.fetch_estimate(announce, held_bytes) else {
                self.waiting.remove(i);
                continue;
            };
            let decision = self.decide(&announce.spec);
            let over_share = matches!(decision, Decision::Bid)
                && *over
                    .entry(requester)
                    .or_insert_with(|| self.over_share(&requester).is_some());
            match decision {
                // Oldest first, except a requester over its share while
                // others wait (R-PLC-2).
                Decision::Bid if !over_share => {
                    if let Some(announce) = self.waiting.remove(i) {
                        let slot = self.open_bid(now_ms, *announce, held_bytes, fetch_ms);
                        self.set_slot(job_id, slot);
                        over.clear();
                    }
                }
                Decision::Bid => i += 1,
                // Still busy (no slot, or a resource held): it waits on.
                Decision::Refuse(reason) if reason.is_passing() => i += 1,
                Decision::Refuse(_) => {
                    self.waiting.remove(i);
                }
            }
        }
    }

    /// R-PLC-2: why `requester` gets no more slots now, if it holds its
    /// share of them while another requester's job waits here for one.
    fn over_share(&self, requester: &NodeId) -> Option<RefuseReason> {
        let percent = self.config.requester_share_percent;
        if percent >= 100 {
            return None;
        }
        let share = (u64::from(self.config.capacity) * u64::from(percent) / 100).max(1);
        let share = u32::try_from(share).unwrap_or(u32::MAX);
        let held = self.held.slots(requester);
        if held < share {
            return None;
        }
        let others_wait = self.waiting.others_than(requester);
        others_wait.then_some(RefuseReason::RequesterShare { held, share })
    }

    fn release_bid(&mut self, job_id: JobId) {
        if let Some(Entry {
            slot: Slot::Bid { expires_at_ms, .. },
            asked,
            requester,
        }) = self.jobs.get(&job_id)
        {
            self.expiries.remove(&(*expires_at_ms, job_id));
            self.open_bids -= 1;
            self.held.give_back(*requester, asked);
        }
    }

    fn set_slot(&mut self, job_id: JobId, slot: Slot) {
        if let Some(entry) = self.jobs.get_mut(&job_id) {
            entry.slot = slot;
        }
    }

    fn decline(&mut self, to: NodeId, award: &Award, reason: String) {
        self.event(
            award.job_id,
            ComputeEvent::Declined {
                execution_id: award.execution_id,
                reason: reason.clone(),
            },
        );
        self.send(
            to,
            ToRequester::Decline(Decline {
                job_id: award.job_id,
                execution_id: award.execution_id,
                node: self.config.node,
                reason,
            }),
        );
    }

    /// Forgets the oldest answered jobs beyond [`ComputeConfig::max_remembered`];
    /// open bids and running executions are kept.
    fn forget_old(&mut self) {
        let mut kept = 0;
        while self.order.len() > self.config.max_remembered && kept < self.order.len() {
            let Some(job_id) = self.order.pop_front() else {
                break;
            };
            match self.jobs.get(&job_id).map(|e| &e.slot) {
                Some(Slot::Bid { .. } | Slot::Running { .. }) => {
                    self.order.push_back(job_id);
                    kept += 1;
                }
                _ => {
                    self.jobs.remove(&job_id);
                    self.waiting.remove_job(&job_id);
                }
            }
        }
    }

    fn send(&mut self, to: NodeId, msg: ToRequester) {
        self.outputs.push_back(ComputeOutput::Send { to, msg });
    }

    fn event(&mut self, job_id: JobId, event: ComputeEvent) {
        self.outputs
            .push_back(ComputeOutput::Event { job_id, event });
    }
}

/// Whether `image` (as a job names it) is among `images`: a reference
/// without a tag or digest means `:latest`, as Docker reads it.
fn image_present(images: &BTreeSet<String>, image: &str) -> bool {
    if images.contains(image) {
        return true;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    !last.contains(':') && !image.contains('@') && images.contains(&format!("{image}:latest"))
}

/// Whether the node's variable `name` is among `allowed` (names, or
/// prefixes ending in `*`).
pub fn env_allowed(allowed: &[String], name: &str) -> bool {
    allowed.iter().any(|a| match a.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => a == name,
    })
}

/// Whether `path` is `dir` or inside it, comparing whole path segments.
fn path_under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/') && !rest.split('/').any(|s| s == ".."))
}

/// Jobs a node refused for want of a slot, oldest first, to bid on when
/// one frees up; bounded in number and in bytes. Indexed by job and
/// counted by requester, so a flood of one requester's jobs costs each
/// decision a lookup, not a scan.
#[derive(Debug, Default)]
struct Waiting {
    entries: VecDeque<WaitingJob>,
    /// The entries' announcements' encoded sizes, summed.
    bytes: usize,
    /// The entries' jobs.
    ids: BTreeSet<JobId>,
    /// How many entries each requester has.
    by_requester: BTreeMap<NodeId, u32>,
}

#[derive(Debug)]
struct WaitingJob {
    refused_at_ms: u64,
    bytes: usize,
    announce: Box<Announce>,
    /// The job's input bytes the node holds.
    held_bytes: u64,
}

impl Waiting {
    /// Remembers `announce` unless it is remembered already or the list is
    /// full. The oldest are kept: a job not remembered is decided again
    /// when its requester re-announces it.
    fn push(&mut self, now_ms: u64, announce: &Announce, held_bytes: u64) {
        if self.ids.contains(&announce.job_id) {
            return;
        }
        let bytes = crate::id::to_canonical(announce).map_or(MAX_WAITING_BYTES, |b| b.len());
        if self.entries.len() >= MAX_WAITING || self.bytes.saturating_add(bytes) > MAX_WAITING_BYTES
        {
            return;
        }
        self.bytes += bytes;
        self.ids.insert(announce.job_id);
        *self.by_requester.entry(announce.requester).or_default() += 1;
        self.entries.push_back(WaitingJob {
            refused_at_ms: now_ms,
            bytes,
            announce: Box::new(announce.clone()),
            held_bytes,
        });
    }

    /// Forgets the jobs refused longer ago than [`LATE_BID_WITHIN_MS`]:
    /// the oldest come first.
    fn expire(&mut self, now_ms: u64) {
        while self
            .entries
            .front()
            .is_some_and(|w| now_ms.saturating_sub(w.refused_at_ms) > LATE_BID_WITHIN_MS)
        {
            self.remove(0);
        }
    }

    /// Forgets `job_id`, if remembered.
    fn remove_job(&mut self, job_id: &JobId) {
        if self.ids.contains(job_id)
            && let Some(i) = self
                .entries
                .iter()
                .position(|w| w.announce.job_id == *job_id)
        {
            self.remove(i);
        }
    }

    fn remove(&mut self, i: usize) -> Option<Box<Announce>> {
        let w = self.entries.remove(i)?;
        self.bytes -= w.bytes;
        self.ids.remove(&w.announce.job_id);
        if let Some(n) = self.by_requester.get_mut(&w.announce.requester) {
            *n -= 1;
            if *n == 0 {
                self.by_requester.remove(&w.announce.requester);
            }
        }
        Some(w.announce)
    }

    fn get(&self, i: usize) -> &WaitingJob {
        &self.entries[i]
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a requester other than `requester` has entries.
    fn others_than(&self, requester: &NodeId) -> bool {
        self.by_requester.keys().any(|r| r != requester)
    }
}
