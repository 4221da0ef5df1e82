//! The engines, run for real (issue 5): one module per engine.

mod wasm;
