//! Per-target window of samples, robust slopes, leak signals, verdict and heap diff.

pub mod diff;
pub mod signals;
pub mod sites;
pub mod slope;
pub mod verdict;
pub mod window;

#[cfg(test)]
pub(crate) mod sim;
