//! Joining a network from behind NAT (issue 14): the lab
//! ([`lab`], shared with `benches/natlab.rs`) and the tests in it.

mod lab;
pub(crate) use lab::*;

mod defaults;
mod join;
