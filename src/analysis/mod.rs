//! Per-target window of samples, robust slopes, leak signals, verdict and heap diff.

pub mod slope;
pub mod window;
pub mod signals;
pub mod verdict;
pub mod diff;
