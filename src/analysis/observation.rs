//! What one scrape of a target gave the analysis window: the observation (MemStats,
//! heap profile, goroutine counts, container and process memory), what the window did
//! with it, and the scalars it kept (a [`Sample`], with the live heap's estimators).

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
    /// The heap profile was read right after a GC leakwatch asked for (`gc=1`): it
    /// describes the heap of that moment, not of up to two GC cycles earlier.
    pub heap_current: bool,
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
            heap_current: false,
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

/// The scalars kept from one observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at: SystemTime,
    pub heap_alloc: Option<u64>,
    pub next_gc: Option<u64>,
    pub heap_objects: Option<u64>,
    pub total_alloc: Option<u64>,
    pub mallocs: Option<u64>,
    pub frees: Option<u64>,
    pub num_gc: Option<u64>,
    /// `MemStats.Sys`.
    pub go_sys: Option<u64>,
    /// Heap profile in-use bytes (estimated; as of the last completed GC).
    pub profile_inuse: Option<u64>,
    /// Heap profile allocated bytes since start (cumulative: a drop means a restart).
    pub profile_alloc: Option<u64>,
    /// `profile_inuse` is of this moment: read right after a GC leakwatch asked for
    /// (else it may be up to two GC cycles old).
    pub profile_current: bool,
    /// `NextGC / (1 + GOGC/100)`: the live heap the last GC measured, from MemStats.
    pub nextgc_live: Option<u64>,
    pub goroutines: Option<u64>,
    pub http_client_connections: Option<u64>,
    pub working_set: Option<u64>,
    pub rss: Option<u64>,
    pub cgroup_limit: Option<u64>,
    pub gomemlimit: Option<u64>,
}

impl Sample {
    /// The live heap by the heap profile when present, else by NextGC.
    pub fn live_heap(&self) -> Option<u64> {
        self.profile_inuse.or(self.nextgc_live)
    }
}

/// Where the live heap came from: the two estimators of the heap that survived the
/// last GC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveSource {
    /// The heap profile's in-use bytes (as of the last completed GC).
    HeapProfile,
    /// `NextGC / (1 + GOGC/100)` from MemStats.
    NextGc,
}

impl LiveSource {
    /// The estimator a sample's live heap is read from: the heap profile when it has
    /// one, else NextGC; `None` with neither.
    pub fn of(s: &Sample) -> Option<LiveSource> {
        match (s.profile_inuse, s.nextgc_live) {
            (Some(_), _) => Some(LiveSource::HeapProfile),
            (None, Some(_)) => Some(LiveSource::NextGc),
            (None, None) => None,
        }
    }

    /// This estimator's reading in `s`.
    pub fn get(self, s: &Sample) -> Option<u64> {
        match self {
            LiveSource::HeapProfile => s.profile_inuse,
            LiveSource::NextGc => s.nextgc_live,
        }
    }

    /// The value in JSON: `heap_profile` or `nextgc`.
    pub fn as_str(self) -> &'static str {
        match self {
            LiveSource::HeapProfile => "heap_profile",
            LiveSource::NextGc => "nextgc",
        }
    }

    /// How people read it: `heap profile` or `NextGC` (a reason: "live heap (NextGC)").
    pub fn words(self) -> &'static str {
        match self {
            LiveSource::HeapProfile => "heap profile",
            LiveSource::NextGc => "NextGC",
        }
    }
}
