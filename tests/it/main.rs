//! End-to-end tests across crates; one module per area.

mod layering;
