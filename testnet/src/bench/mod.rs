//! Benchmarks against real node processes, each beside a baseline measured in the same run.

pub mod converge;
pub mod echo;
pub mod exchange;

use std::time::Duration;

/// Latency percentiles of a sample, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}
