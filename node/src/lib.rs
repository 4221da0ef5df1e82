//! The skrei node as a library: the parts of the `skrei` binary that touch
//! the world (the p2p swarm and the engines today; storage, the driver and
//! the API as they land), so the binary and the integration tests in
//! `tests/` use the same code.

pub mod api_token;
pub mod daemon;
pub mod executor;
pub mod p2p;
