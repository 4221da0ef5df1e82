//! Simulated skrei testnets.
//!
//! `simnet` drives the very same requester and compute state machines that a
//! real node runs (from [`protocol`]) with a simulated network and clock, all
//! randomness drawn from one seed, so thousands of nodes run on one machine and
//! any run replays exactly. See SPEC.md R-SIM-1.

pub mod check;
pub mod config;
pub mod net;
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
pub mod plot;
