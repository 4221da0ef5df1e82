//! The egress proxy for jobs in `http` network mode.
//!
//! A job in `http` mode reaches the world only through one of these proxies:
//! plain HTTP by absolute URI and HTTPS by `CONNECT`, to the job's domains only
//! (decided by [`protocol::domain`]), on resolved addresses that are neither
//! special-purpose nor part of skrei's control plane, rate limited per job and
//! audited request by request. See SPEC.md R-NET-3..R-NET-9.
//!
//! Status: the crate is laid out by the foundation; the proxy itself arrives
//! with the egress-proxy issue.
