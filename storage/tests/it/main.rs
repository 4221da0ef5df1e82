//! End-to-end tests of the storage crate: real iroh stores in separate
//! processes, a real HTTP server on loopback, real files. Each test names the
//! requirement it checks. Nothing leaves the machine.

mod budget;
mod fixtures;
mod http;
mod inputs;
mod provider;
mod publish;
mod relays;
mod transfer;
