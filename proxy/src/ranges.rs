//! Special-purpose addresses (R-NET-8) and operator-allowed ranges: the
//! table lives in [`protocol::address`], shared with the node's URL
//! downloads, so that both refuse the same addresses.

pub use protocol::address::{Cidr, CidrError, classify};
