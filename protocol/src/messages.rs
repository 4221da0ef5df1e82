//! Wire messages and their size limits (R-P2P-2, R-P2P-3).
//!
//! STUB: replaced by the foundation's id/messages work.
