//! The seam between a skrei node's HTTP API and its clients, with no I/O:
//! every type that crosses it, so the server (which encodes answers) and
//! the clients, `skrei` and simnet's live testnets (which decode them),
//! cannot drift apart.
//!
//! - [`gate`]: who may call the API at all (R-SEC-1, R-NET-7): the rules
//!   the node applies to every request before any handler runs, as one pure
//!   function of the request's source, method, path and headers.
//! - [`requests`]: the JSON bodies clients send. The server refuses unknown
//!   fields in them.
//! - the answers, by endpoint: [`node`] (`/api/v1/node`), [`jobs`]
//!   (`/api/v1/jobs...`, `/api/v1/changes`), [`content`] (`/api/v1/blobs`,
//!   `/manifests`, `/provide`, `/fetch` and its progress lines), and
//!   [`error`], the body of every failure. Clients ignore fields they do
//!   not know, so a newer node's answers still read. `/metrics` is
//!   Prometheus text and has no type here.
//! - [`address`]: a blob store's address ([`address::DataAddr`]) as a
//!   value; libp2p addresses are [`multiaddr::Multiaddr`]s and socket
//!   addresses [`std::net::SocketAddr`]s, written as text.
//!
//! ```
//! use api::jobs::{JobState, JobSummary};
//! use protocol::failure::{Failure, FailureCause};
//!
//! // A list entry as the node sends it, with a field this version does not know.
//! let text = r#"{"job_id":"bafyr4ibqircjzxxtlmpihl2tvww3el3gfnrox45fcjj33ss6ztir7aonpi",
//!     "name":"hello","engine":"wasm","network":"none","state":"failed",
//!     "failure":{"cause":"no_node_answered","detail":"no node bid"},
//!     "submitted_at_ms":1,"executions":0,"priority":"new"}"#;
//! let job: JobSummary = serde_json::from_str(text)?;
//! let failure = Failure::new(FailureCause::NoNodeAnswered, "no node bid");
//! assert_eq!(job.state, JobState::Failed { failure });
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! The node serves these over axum. The gate and the request decoders take
//! untrusted bytes and are fuzzed (`fuzz/`, target `api_request`).

pub mod address;
pub mod content;
pub mod dashboard;
pub mod error;
pub mod gate;
pub mod jobs;
pub mod node;
pub mod requests;

/// What the answers' tests share: sample values, and the round trip every
/// answer type must survive.
#[cfg(test)]
pub(crate) mod testing {
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    /// A blob store address.
    pub const DATA_ADDR: &str = r#"{"id":"ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6","addrs":[{"Ip":"127.0.0.1:4001"}]}"#;

    pub fn node_id(seed: u8) -> protocol::id::NodeId {
        protocol::id::NodeKey::from_secret_bytes([seed; 32]).node_id()
    }

    pub fn cid(bytes: &[u8]) -> cid::Cid {
        protocol::id::blake3_cid(protocol::id::RAW, bytes)
    }

    /// Encodes `value`, decodes it back (it must be equal), then decodes it
    /// again with an unknown field added to the JSON objects at `pointers`
    /// (JSON pointers; `""` is the answer itself): a client must read a
    /// newer node's answers. Returns the JSON.
    pub fn round_trips<T>(value: &T, pointers: &[&str]) -> serde_json::Value
    where
        T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let json = serde_json::to_value(value).unwrap();
        let text = serde_json::to_string(value).unwrap();
        assert_eq!(&serde_json::from_str::<T>(&text).unwrap(), value, "{text}");
        let mut newer = json.clone();
        for pointer in pointers {
            let object = newer
                .pointer_mut(pointer)
                .and_then(serde_json::Value::as_object_mut)
                .unwrap_or_else(|| panic!("no object at {pointer:?} in {json}"));
            object.insert(
                "added_later".into(),
                serde_json::json!({ "by": "a newer node" }),
            );
        }
        let read: T = serde_json::from_value(newer.clone())
            .unwrap_or_else(|e| panic!("{e}: an answer with unknown fields: {newer}"));
        assert_eq!(&read, value);
        json
    }
}
