//! Content-addressed data volumes for skrei (SPEC R-VOL-1..R-VOL-3, R-P2P-4).
pub mod cid;
pub mod download;
pub mod inputs;
pub mod manifest;
pub mod publish;
pub mod store;
