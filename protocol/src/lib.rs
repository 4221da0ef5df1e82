//! # skrei's protocol: the rules of the network, with no I/O
//!
//! skrei is a peer-to-peer compute network. Every node is both a **requester**
//! (it takes jobs from its local users and finds nodes to run them) and a
//! **compute node** (it bids on jobs its operator's policy allows, runs them in
//! Docker or WebAssembly, and publishes the results).
//!
//! ## Participants
//! - the **user**, who writes a job (a Bacalhau v1 job file or `skrei docker run`
//!   flags) and submits it to the node on their machine;
//! - the **requester**, that node: it names the job (its id is the CID of the
//!   job's canonical encoding, [`id`]), signs and announces it over gossip;
//! - **compute nodes**, every node that hears the announcement: each asks its
//!   [`policy::AcceptancePolicy`] whether it may run the job and answers the
//!   requester directly with a bid or a refusal that says why. In a large
//!   network only the nodes the announcement draws answer
//!   ([`messages::Announce::draw_ppm`]), a few times the bids the job needs;
//!   each re-announcement draws more, until everyone, so a job's bid traffic
//!   does not grow with the network.
//!
//! ## One job
//! 1. `Announce` (gossip, signed by the requester): the job spec and its id.
//! 2. `Bid` or `Refuse { reason }` (direct, compute -> requester).
//! 3. `Award` (direct, requester -> `Count` chosen bidders); re-awarded when a
//!    node fails, goes silent or declines.
//! 4. `Result` (direct, compute -> requester): the CID of the result directory.
//! 5. `Cancel` at any point (direct, requester -> awarded nodes).
//!
//! `NodeInfo` is gossiped periodically: engines, capacity, accepted network
//! mode and an allowlist digest, so a requester can explain why nobody bids.
//!
//! ## The two state machines
//! Each node runs one [`requester::Requester`] (the jobs its users submit)
//! and one [`compute::Compute`] (the jobs it runs for anyone, itself
//! included). Both are sans-IO: the driver (`node`, or `simnet`) feeds them
//! inputs with the current time in milliseconds (`handle(now, input)`),
//! takes their outputs (`poll_output()`: publish, send, start, stop,
//! events) and wakes them at `poll_timeout()`. Randomness comes from a seed
//! in their configs and every map is ordered, so one seed and one sequence
//! of inputs give one sequence of outputs.
//!
//! ```text
//!  requester                                    compute nodes
//!  submit ──► Publish(Announce) ═══ gossip ═══► decide(policy, engine, slots)
//!             collect bids for a window  ◄───── Bid (holds a slot for a TTL)
//!                                        ◄───── Refuse { reason }
//!  award the best Count ─────── Award ────────► decide again, as it is now
//!                                        ◄───── Decline { reason }  -> re-award
//!                                               Start ... ExecutionFinished
//!  Count completed -> JobCompleted ◄─── Result  (Failed -> re-award)
//!  silent past deadline ─────── Cancel ───────► Stop                -> re-award
//!  no bidder within the queue timeout -> JobFailed { refusals, grouped }
//! ```
//!
//! The invariants they keep, property-tested together over a simulated
//! network with random delays, losses, silent nodes and policy reloads:
//! 1. a job never starts on a node whose policy, at that moment, forbids it;
//! 2. a job completes at most once, with at most `Count` completed executions;
//! 3. every job ends (completed, failed with a reason that explains, or
//!    cancelled) once time passes its deadlines;
//! 4. the same seed and inputs give the same outputs.
//!
//! ## Goals
//! - A node never runs a job its operator's policy forbids, whatever the job
//!   or the network says ([`policy`]).
//! - Jobs in `http` mode reach only the domains they declared ([`domain`]),
//!   under one matching rule shared by policy, proxy and the WASM executor.
//! - Every input from outside is validated: bad input gets an error that names
//!   the field and says what to write instead, and changes nothing.
//!
//! ## Non-goals
//! - I/O of any kind: this crate reads no clock, opens no socket, spawns no
//!   task. The `node` crate drives these rules with real libp2p, Docker and
//!   wasmtime; `simnet` drives them with a simulated network and clock.
//!
//! ## Modules
//! - [`job`]: the job spec (Bacalhau v1 field names), parsing with precise
//!   errors, validation and normalisation.
//! - [`address`]: the special-purpose address table (R-NET-8).
//! - [`domain`]: domain entries, host matching and allowlist sets (R-NET-4/5).
//! - [`policy`]: a compute node's acceptance policy (R-POL-1/2).
//! - [`id`]: canonical DAG-CBOR, job ids as CIDs, signed envelopes (R-JOB-3).
//! - [`messages`]: the wire messages and their size limits (R-P2P-2/3).
//! - [`requester`]: the requester state machine (R-POL-3/4, R-OPS-2).
//! - [`compute`]: the compute state machine (R-POL-1..3).
//! - [`rate`]: per-peer rate limits on what peers send (R-SEC-5).
//! - [`resources`]: what a node offers executions and what each holds (R-PLC-1).

pub mod address;
pub mod compute;
pub mod domain;
pub mod failure;
pub mod id;
pub mod image;
pub mod job;
pub mod link;
pub mod messages;
pub mod node;
pub mod policy;
pub mod rate;
pub mod requester;
pub mod resources;
#[cfg(test)]
mod testnet;
