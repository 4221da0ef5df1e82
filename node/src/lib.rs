//! The skrei node as a library: the parts of the `skrei` binary that touch
//! the world (engines, and later the p2p swarm, storage and the API), so the
//! binary and the end-to-end tests share one implementation.

pub mod executor;
