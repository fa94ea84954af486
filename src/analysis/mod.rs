//! Per-target window of samples, robust slopes, leak signals, verdict and heap diff.

pub mod slope;
