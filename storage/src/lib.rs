//! Content-addressed data volumes for skrei (SPEC R-VOL-1..R-VOL-3, R-P2P-4).
//!
//! Data moves between skrei nodes by content address. A file is named by a
//! CIDv1 of codec `raw` whose multihash is the file's BLAKE3 hash
//! (`bafkr4i...`); a directory by the CID of a canonical DAG-CBOR manifest
//! listing its entries (`bafyr4i...`). BLAKE3 is the hash iroh-blobs verifies
//! while streaming, so a CID is all a node needs to fetch content from any
//! peer that has it and to know it got the right bytes.
//!
//! The modules, in the order data flows through them:
//!
//! - [`cid`]: CIDs to and from BLAKE3 hashes; refuses, with a message
//!   saying what to do, CIDs this network cannot fetch (IPFS's sha2-256).
//! - [`manifest`]: directory manifests; decoding treats the bytes as
//!   hostile (entry names are single safe path components).
//! - [`store`]: the node's iroh-blobs file store, served over an iroh
//!   endpoint that needs no relay or internet: add files and trees, check
//!   presence, fetch from several providers with verification, resumption
//!   and progress (a directory's files concurrently), export to the file
//!   system.
//! - [`import`] and [`export`]: the one walk that adds a tree (from the
//!   node's disk or, through the node's API, from a user's) and the one
//!   that writes a tree out, with its budgets, for every caller.
//! - [`download`]: bounded, retrying HTTP(S) downloads of URL inputs.
//! - [`inputs`]: a job's inputs (CID, URL, inline, local path) materialised
//!   read-only in an execution folder, concurrently.
//! - [`publish`]: an execution's results stored as one directory CID and
//!   handed to the job's publisher (`local`, `dir`, `s3`).
//! - [`s3`]: the few S3 calls the `s3` publisher needs (SigV4-signed PUTs
//!   to the operator's endpoint).
//!
//! A typical round trip between two nodes:
//!
//! ```no_run
//! # async fn demo(provider: &storage::store::Store, me: &storage::store::Store)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! let cid = provider.add_path("results".as_ref()).await?;
//! // `provider.addr()` travels to the other node, e.g. in gossip.
//! // Both ends bound what the content may cost them: here 1 GiB.
//! let report = me.fetch(&cid, &[provider.addr()], None, 1 << 30).await?;
//! me.export(&cid, "copy-of-results".as_ref(), 1 << 30).await?;
//! # let _ = report; Ok(()) }
//! ```

pub mod address;
pub mod cid;
pub mod download;
pub mod export;
mod fetch;
pub mod import;
pub mod inputs;
pub mod manifest;
pub mod publish;
pub mod s3;
pub mod store;
