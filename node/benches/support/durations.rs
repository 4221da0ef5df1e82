//! Percentiles of timed runs, for the benchmarks that time runs one by one
//! (`#[path = "support/durations.rs"] mod durations;`).

use std::time::Duration;

/// The `p`th percentile of `v` (sorted in place), nearest rank.
pub fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    v[((p / 100.0) * (v.len() - 1) as f64).round() as usize]
}

/// `d` in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
