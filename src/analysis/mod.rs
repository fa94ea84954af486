//! Per-target window of samples, robust slopes and trend tests, leak signals, verdict
//! and heap diff: values only, no metric names, no HTML.

pub mod after_grace;
pub mod criteria;
pub mod culprit;
pub mod culprit_site;
pub mod diff;
pub mod evidence;
pub mod headline;
pub mod kinds;
pub mod observation;
pub mod oom;
pub mod points;
pub mod signals;
pub mod sites;
pub mod slope;
pub mod thresholds;
pub mod trend;
pub mod verdict;
pub mod window;

#[cfg(test)]
pub(crate) mod sim;
