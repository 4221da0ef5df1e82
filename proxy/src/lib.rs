//! The egress proxy for jobs in `http` network mode (R-NET-3..R-NET-9).
//!
//! A job in `http` mode reaches the world only through one of these proxies;
//! it is the security boundary of the system.

#![forbid(unsafe_code)]

pub mod audit;
pub mod config;
pub mod decide;
pub mod deny;
pub mod ranges;
pub mod rate;
pub mod resolve;
pub mod target;
