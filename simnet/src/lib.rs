//! Simulated skrei testnets.
//!
//! `simnet` drives the very same requester and compute state machines that a
//! real node runs (from [`protocol`]) with a simulated network and clock, all
//! randomness drawn from one seed, so thousands of nodes run on one machine and
//! any run replays exactly. See SPEC.md R-SIM-1.
//!
//! Status: the crate is laid out by the foundation; the simulator arrives with
//! the simnet issue, once the protocol state machines exist.
