//! Simulated skrei testnets (SPEC.md R-SIM-1).
//!
//! `simnet` drives the very same node core that a real node runs
//! ([`protocol::node::Node`], which owns its
//! [`protocol::requester::Requester`] and [`protocol::compute::Compute`]),
//! with the node's own defaults ([`protocol::node::NodeConfig::new`]), over a
//! simulated network and clock. All
//! randomness is drawn from one seed, so thousands of nodes run on one
//! machine and any run replays exactly.
//!
//! ```
//! use simnet::SimConfig;
//!
//! let mut config = SimConfig::new(20, 10, 42);
//! config.churn = 0.1;
//! let report = simnet::run(config.clone()).expect("the invariants hold");
//! assert_eq!(report.completed + report.failed + report.cancelled, 10);
//! // The same seed replays the same run, event for event.
//! assert_eq!(simnet::run(config).unwrap().trace_hash, report.trace_hash);
//! ```
//!
//! From the command line: `simnet run --nodes 100 --jobs 300 --seed 7
//! --churn 0.1 --partition 0.3@10000-40000 --input-share 0.5 --replicas 1
//! [--report r.json] [--plot p.svg]`,
//! or `simnet run --scenario FILE` with flags that override the file, and
//! `simnet sweep --seeds 1..100 ...` to run many seeds on every core.
//! `--report` writes the [`Report`] as JSON (latency percentiles, success
//! rate, failures by kind with an example each, messages and bytes per
//! node, bids per job, executions failed by kind, input fetch times and
//! bytes moved, the configuration and the trace hash); `--plot`
//! draws the latency CDF and messages per node as SVG ([`plot`]).
//!
//! # Scenario files
//! A scenario is a TOML file holding a [`SimConfig`]: top-level keys for
//! the run, a table per model. Every key is optional (left out, it keeps
//! [`SimConfig::default`]'s value); an unknown key or a share outside 0..1
//! is refused with its name ([`SimConfig::from_toml`]). Times are simulated
//! milliseconds, `[LOW, HIGH]` pairs are uniform ranges (`input_bytes`:
//! log-uniform). The CI scenario,
//! `simnet/scenarios/ci.toml`, shows every key with its meaning:
//!
//! ```toml
//! nodes = 100
//! jobs = 300
//! seed = 7                      # --seed overrides it
//! churn = 0.1                   # share of nodes that crash once, then restart
//! downtime_ms = [5_000, 30_000]
//! flood = 0.0                   # node 0 adds this many times the slots in jobs
//! [link]                        # base_ms, jitter_ms, loss, regions, cross_region_ms
//! loss = 0.01
//! [[partitions]]                # repeatable
//! share = 0.3                   # nodes [0, 30%) cut off from the rest
//! from_ms = 10_000
//! until_ms = 40_000
//! [population]                  # policies: http_share, full_share, allowlist_share;
//! http_share = 0.3              # engines: docker_only_share, wasm_only_share;
//! capacity = [1, 4]             # slots
//! [[population.bandwidth]]      # repeatable: share, up_mbps, down_mbps
//! share = 1.0
//! up_mbps = 500
//! down_mbps = 500
//! [mix]                         # jobs: http_share, full_share, wasm_share, max_count,
//! max_count = 3                 # execution_timeout_s, queue_timeout_s; inputs:
//! input_share = 0.5             # input_share, inputs_per_job, input_bytes, replicas
//! [execution]                   # run_ms, failure, fetch_retry_ms
//! run_ms = [500, 10_000]
//! failure = 0.05
//! ```
//!
//! ```
//! let ci = simnet::SimConfig::from_toml(include_str!("../scenarios/ci.toml")).unwrap();
//! assert_eq!((ci.nodes, ci.jobs, ci.seed), (100, 300, 7));
//! assert!(simnet::SimConfig::from_toml("nodez = 3").is_err());
//! ```
//!
//! # The simulator ([`sim`])
//! One queue of events ordered by (simulated time in ms, sequence number);
//! time jumps to the next event, so an idle node costs nothing. One ChaCha8
//! stream ([`rng::SimRng`]) seeded from [`SimConfig::seed`] draws the
//! population, the jobs, the faults and every delay, loss and execution, in
//! event order; the machines' own seeds are drawn from it too. No clock and
//! no OS randomness is read anywhere, and hash maps serve lookups only,
//! never iteration, so nothing else can leak into the order of events.
//!
//! Each node runs one requester and one compute side, driven as the node's
//! driver drives them: every input goes to `handle`, `handle_timeout` runs
//! at the earliest `poll_timeout` of the two (one wake event per node, the
//! earliest pending), and `poll_output` is drained after every input:
//! `Publish` becomes gossip deliveries (the node's own compute side gets its
//! announcement at once), `Send` a direct delivery after a link delay (to
//! itself: at once and never lost), `Start` an execution that fetches its
//! inputs ([`blobs`]), then ends after a drawn time with a drawn outcome,
//! fed back as `ExecutionFinished`.
//! [`Report::trace_hash`] is BLAKE3 over every delivered event (time, kind,
//! nodes, job and execution): the determinism test compares it.
//!
//! # The models and their assumptions
//! Defaults are in [`config`]; the CLI sets the main ones.
//!
//! - **Links** ([`config::LinkModel`]): every message's one-way delay is
//!   `base + U[0, jitter]` (CLI: `--latency MS`, jitter half of it), drawn
//!   per message; each message is lost independently with probability
//!   `loss`. Pair classes are regions (`--regions R --cross-region-ms MS`):
//!   node `i` is in region `i % R`, and a message between regions takes
//!   `MS` longer; loss and jitter are the same for every pair. Messages
//!   meet no bandwidth limit or queueing (they are small; blobs are
//!   modelled below), no connection set-up. Reordering happens only
//!   through jitter.
//! - **Gossip** ([`net::Network::gossip`]): gossipsub as a fan-out model,
//!   not a simulated mesh, calibrated against real libp2p gossipsub swarms
//!   of 50-300 nodes (node/benches/gossip.rs, simnet/bench/calibrate.sh;
//!   figures in docs/BENCHMARKS.md, "Gossip dissemination"). The publisher
//!   floods its message to its `F` connected peers (`publish_peers`, 50;
//!   gossipsub's flood publishing, measured 49-99), capped at `N-1`: they
//!   are one hop away. Every further hop multiplies the new receivers by
//!   `D-1` (mesh degree `D`, 6: each forwards to its mesh but the sender),
//!   until all `N-1` are reached; a receiver is at hop `h` with
//!   probability equal to hop `h`'s share of receivers (most nodes are
//!   far), and hears it after `h` link delays. With the defaults, 100 and
//!   300 nodes are within 2 hops, 1,000 within 3, 10,000 within 5 (the
//!   model before calibration, `D` per hop from the publisher on: 3, 4,
//!   4 and 6).
//!   Loss applies per hop, and a receiver has `D` independent copies coming
//!   in: it gets the announcement unless every copy is lost,
//!   `P = 1 - (1 - (1-loss)^h)^D`. Each reached node is counted `D`
//!   receptions (one more if it is one of the publisher's peers) and `D`
//!   forwards in the message and byte statistics (gossipsub's duplicates:
//!   measured 5.96-7.3 receptions per node per announcement, as the model
//!   gives), the publisher `F` sends. With regions, each
//!   hop crosses to another region with probability `(R-1)/R` (mesh peers
//!   are drawn regardless of region), at least once between regions. A node that is down
//!   or on the other side of a partition when the announcement is published
//!   does not get it (requesters re-announce). Every node is told
//!   the network's size ([`protocol::node::NodeInput::NetworkSize`]),
//!   so announcements draw the nodes that answer
//!   ([`protocol::messages::Announce::draw_ppm`]); a reached node that is
//!   not drawn is counted in the traffic but its delivery is skipped, since
//!   its compute side ignores it. Not measured on real swarms: the
//!   hop counts themselves (only the times to reach 50/90/100 %, which on
//!   one shared machine are CPU-bound) and loss.
//! - **Partitions** ([`config::Partition`], `--partition SHARE@FROM-UNTIL`):
//!   from `FROM` to `UNTIL` ms, nodes `[0, SHARE*N)` and the rest exchange
//!   no message. The rule is applied when a message is sent: one already
//!   in flight when the partition starts still arrives.
//! - **Crash and restart** (`--churn P`): each node crashes with
//!   probability `P`, once, at a uniform time within the submission window,
//!   and restarts after a downtime uniform in 5-30 s. A crashed node drops
//!   every delivery; its running executions are lost (their ends are never
//!   reported). The simulator keeps a job's record after every requester
//!   event (the database's part) and drains every output, so what it kept
//!   is what the node held: on restart the node is rebuilt and restores
//!   those [`protocol::requester::JobRecord`]s
//!   ([`protocol::node::Node::restore`]); the compute side starts empty.
//!   The nodes that had awarded work to a crashed node learn it 50 ms
//!   later (a link-down notice, as a closed connection tells a real node)
//!   and fail its executions once the node's disconnect grace has passed;
//!   a restarted node reconnects to them. Awards and results sent to a
//!   node that is down (or across a partition) come back to their sender
//!   as undelivered (after 50 ms, or 10 s across a partition), which the
//!   core turns into a re-award or a later resend, as on a real node.
//!   Nodes that are down take no submissions: a job goes to the next node
//!   that is up. All nodes are up again before the end, so liveness is
//!   checked on a healed network.
//! - **Executions** ([`config::ExecutionModel`]): once their inputs are in
//!   (below), run time uniform in 0.5-10 s; failure with probability 5%
//!   (`--exec-failure`), else success with a fake result CID
//!   ([`protocol::id::blake3_cid`] of drawn bytes). The result stays on the
//!   node (the jobs publish locally): no result bytes move, and none are
//!   counted. A stopped execution still reports its end (and goes on
//!   fetching); the compute side ignores it, as it may.
//! - **Inputs and bandwidth** ([`blobs`]): a share of jobs (`--input-share`,
//!   50%) reads 1-3 CID inputs, each of a size drawn log-uniformly in
//!   1 KiB-1 GiB (as many of 1-10 KiB as of 100 MiB-1 GiB; median 1 MiB),
//!   named as `cid` input sources in the job file with CIDs of drawn bytes.
//!   The compute side takes them as it takes any job: it refuses only
//!   local-path inputs, so bids and refusals are those of the same job
//!   without inputs. Each input is held by the node the job is submitted
//!   to (`skrei add`, then submit: the announcement names that node's blob
//!   store as provider, as a real node's does) and by `--replicas K` other
//!   nodes drawn at random (default 0; what a provider lookup finds). Each
//!   node's link is one of `population.bandwidth`'s classes: by default
//!   30% at 50 Mbit/s (home and small-office lines), 50% at 500 Mbit/s
//!   (fibre, a cloud VM's share) and 20% at 5 Gbit/s (data centres), the
//!   same up and down; an assumption, not a measurement. An execution
//!   fetches its inputs one after another (a real node fetches them
//!   concurrently, but they mostly come from the same provider and share
//!   its upload: one after another takes about as long, and needs no model
//!   of shared bandwidth). For each it asks, at the moment it gets to it,
//!   the announcement's providers, then the replicas: it reads its own
//!   copy at once if it holds one, else fetches from the first that is up
//!   and not across an active partition, in 2 link delays (connect,
//!   request) plus `size / min(provider up, receiver down)`. With none
//!   reachable it looks once more after a delay uniform in 3.5-43.5 s (a
//!   real node's 4 attempts with 10 s connect timeouts), then fails with
//!   `input CID <cid>: no provider reachable`. Transfers do not share
//!   links or queue: each gets its full rate however many run at once,
//!   and a provider that crashes or is cut off mid-transfer still
//!   finishes it; bytes are counted when a transfer starts. Fetched copies
//!   do not become providers. The job's `ExecutionTimeout` runs from the
//!   execution's start and counts the fetch, as on a real node: inputs not
//!   in by then fail the execution with `the inputs were not in within the
//!   job's ExecutionTimeout`, and a run that would end later fails at the
//!   timeout, both before the requester's own deadline (the timeout plus
//!   30 s of grace from the award). 1 GiB at 50 Mbit/s (172 s) does not
//!   fit the default 60 s.
//! - **Nodes** ([`config::Population`]): a share accepts `http`
//!   (`--http-share`, default 30%; 70% of them with an allowlist of 1-4
//!   entries drawn from [`population::DOMAIN_UNIVERSE`]'s entries, some
//!   covering subdomains), a share `full` (`--full-share`, 10%), the rest
//!   `none`; 30% run only Docker, 10% only WASM, the rest both; 1-4 slots.
//! - **Jobs** ([`config::JobMix`]): submitted at uniform times over the
//!   window (60 s) to uniformly drawn nodes; 30% `http` (`--http-jobs`)
//!   naming 1-2 domains of the universe, 5% `full` (`--full-jobs`), the
//!   rest `none`; 20% WASM; `Count` uniform in 1..=3; `ExecutionTimeout`
//!   60 s and `QueueTimeout` 30 s; CID inputs as above. Jobs are real job
//!   files, parsed and validated as a user's would be.
//! - **Message sizes** ([`net::Sizes`]): an announcement's canonical
//!   encoding plus a typical envelope (170 bytes); direct messages by kind,
//!   measured once on a sample, plus the free text they carry.
//!
//! Not modelled yet: `NodeInfo` gossip (requesters explain failures from
//! refusals alone), shared bandwidth and queueing of blob transfers, result
//! transfers, WASM modules fetched by URL, policy hot reloads, user
//! cancellations and per-pair loss. Real `skrei node` processes run in
//! live testnets instead ([`live`]).
//!
//! # Invariants ([`check`])
//! Checked against the policies, engines and capacities the operators
//! configured ([`population::NodePlan`]), never against the machines'
//! own view, so a node that ignores its policy is caught
//! ([`SimConfig::faulty_nodes`]). After every event:
//! 1. no `Start` on a node whose policy forbids the job at that moment, or
//!    without the engine, or beyond its slots;
//! 2. no job gets more than `Count` completed executions, `JobCompleted`
//!    comes once and with exactly `Count`, and nothing happens to a job
//!    after it ended;
//! 3. every refusal is true of the node that sends it (its policy, engine,
//!    or the slots taken at that moment), and every failure reason that
//!    groups nodes ("12 nodes: network=http not accepted ...") claims no
//!    more nodes than truly refuse the job for that reason;
//! 4. every failure has a non-empty reason;
//! 5. an execution that gives up on an input for "no provider reachable"
//!    does not hold it itself, and every node holding it (the submitter
//!    and the replicas, as drawn) is down or across a partition from it at
//!    that moment ([`SimConfig::faulty_fetch_nodes`] shows it is caught).
//!
//! At the end (liveness, after every fault healed): every job ended -
//! completed, failed or cancelled - and its requester's record agrees.
//! A violation stops the run with a [`Violation`] carrying the seed and the
//! event index; the CLI prints `reproduce with: simnet run ... --seed S`.
//!
//! # Live testnets ([`live`])
//! `simnet up --nodes N [--policies FILE]` runs the real thing instead: N
//! `skrei node` processes on loopback, bootstrapped from node 0, each with
//! the policy the file gives it ([`live::policies`]); it prints one
//! `SKREI_API=http://...` line per node (node 0 first), each followed by its
//! `SKREI_API_TOKEN=...` line, and stops them on
//! Ctrl-C. Tests drive the same network through [`live::LiveNet`].
//! `simnet up --docker` puts each node in a container of its own on a Docker
//! network made for the testnet, so that a node can be cut off and healed
//! (`docker network disconnect`/`connect`, or [`live::LiveNet::partition`]
//! and [`live::LiveNet::heal`]).

pub mod blobs;
pub mod check;
pub mod config;
pub mod live;
pub mod net;
pub mod plot;
pub mod population;
pub mod report;
pub mod rng;
pub mod sim;

pub use check::Violation;
pub use config::SimConfig;
pub use report::Report;
pub use sim::Sim;

/// Runs one simulation: draws everything from `config.seed`, runs it to the
/// end and checks the invariants.
pub fn run(config: SimConfig) -> Result<Report, Violation> {
    Sim::new(config).run()
}
