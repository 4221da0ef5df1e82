//! End-to-end tests of skrei across crates, with real components.
//!
//! The tests live in `it/` as one test binary (`it/main.rs`, one module per
//! area): every integration-test binary links the whole dependency tree, so
//! one binary keeps builds short on small machines.
