//! The seam between a skrei node's HTTP API and its clients, with no I/O.
//!
//! - [`gate`]: who may call the API at all (R-SEC-1, R-NET-7): the rules
//!   the node applies to every request before any handler runs, as one pure
//!   function of the request's source, method, path and headers.
//! - [`requests`]: the JSON bodies clients send, shared by the server (which
//!   decodes them, refusing unknown fields) and the clients (which encode
//!   them), so the two cannot drift apart.
//!
//! The node serves these over axum; `skrei`'s client and simnet's live
//! client speak them. Both decoders here take untrusted bytes and are
//! fuzzed (`fuzz/`, target `api_request`).

pub mod gate;
pub mod requests;
