//! The node's integration tests, one module per area, in one test binary:
//! each binary links the whole dependency tree (libp2p, wasmtime...), so one
//! keeps builds short on small machines.

mod browser;
mod cli;
mod daemon;
mod dashboard;
mod docker;
mod docker_egress;
mod docker_host;
mod harness;
mod natlab;
mod p2p;
mod trust;
mod wasm;
mod wasm_http;
