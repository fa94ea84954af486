//! What one scrape of a target gave the analysis window: the observation (MemStats,
//! heap profile, goroutine counts, container and process memory) and what the window
//! did with it.

use std::sync::Arc;
use std::time::SystemTime;

use crate::pprof::HeapProfile;
use crate::pprof::memstats::MemStats;

/// What one scrape of a target saw. Everything is optional: a failed endpoint leaves
/// its part out and the window keeps what it has.
#[derive(Debug, Clone)]
pub struct Observation {
    pub at: SystemTime,
    pub pid: Option<u32>,
    pub memstats: Option<MemStats>,
    pub heap: Option<Arc<HeapProfile>>,
    pub goroutines: Option<GoroutineObservation>,
    pub container: Option<ContainerObservation>,
    /// Resident set size of the process (`VmRSS`).
    pub rss: Option<u64>,
    /// `GOMEMLIMIT` of the process in bytes.
    pub gomemlimit: Option<u64>,
    /// `GOGC` of the process (-1 = off); 100 when unset.
    pub gogc: Option<i64>,
    /// When the process started (from `/proc`).
    pub process_start: Option<SystemTime>,
    /// The host's `MemAvailable` in bytes (from `/proc/meminfo`).
    pub host_available: Option<u64>,
}

impl Observation {
    /// An observation with nothing but a time (tests and callers fill in the rest).
    pub fn at(at: SystemTime) -> Self {
        Observation {
            at,
            pid: None,
            memstats: None,
            heap: None,
            goroutines: None,
            container: None,
            rss: None,
            gomemlimit: None,
            gogc: None,
            process_start: None,
            host_available: None,
        }
    }
}

/// The goroutine profile reduced to counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GoroutineObservation {
    pub total: u64,
    pub http_client_connections: u64,
    /// State -> count.
    pub by_state: Vec<(String, u64)>,
    /// Blocking site -> count.
    pub by_function: Vec<(String, u64)>,
}

/// The container's (cgroup's) memory as read this scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerObservation {
    pub usage: Option<u64>,
    pub working_set: Option<u64>,
    /// `None` when unlimited.
    pub limit: Option<u64>,
}

/// What [`Window::observe`] did with an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObserveOutcome {
    /// Added to the window (possibly replacing the newest sample, see the module doc).
    Appended,
    /// The process restarted (new PID, or a cumulative counter went down): the window
    /// was cleared and starts again with this observation.
    Restarted,
    /// Not later than the newest sample (a clock step back or a duplicate): dropped.
    Ignored,
}
