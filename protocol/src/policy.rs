//! A compute node's acceptance policy (R-POL-1, R-POL-2).
//!
//! STUB: replaced by the foundation's domain/policy work.
