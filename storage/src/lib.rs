//! Content-addressed data volumes for skrei.
//!
//! This crate turns files and directories into CIDs (CIDv1, BLAKE3), moves them
//! between nodes over iroh-blobs, materialises a job's inputs (CID, URL, inline,
//! local path) as read-only files inside an execution folder, and publishes a
//! finished execution's results. See SPEC.md R-VOL-1..R-VOL-3 and R-P2P-4.
//!
//! Status: the crate is laid out by the foundation; the store, inputs and
//! publishers arrive with the data-volumes issue.
