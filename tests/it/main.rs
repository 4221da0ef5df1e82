//! End-to-end tests across crates; one module per area.

mod fuzz_corpora;
mod layering;
