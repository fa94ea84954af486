//! What the leak verdict looks at, prepared by `signals::compute` from a window: each
//! kind's estimates and culprits, the runtime's corroboration, and where the
//! process's start-up grace ends.

use crate::analysis::kinds::ByKind;
use crate::analysis::observation::LiveSource;
use crate::analysis::trend::Trend;

pub use crate::analysis::culprit_site::SiteReadings;

/// Everything the rule looks at, prepared by `signals::compute`.
#[derive(Debug, Clone, Default)]
pub struct Evidence<'a> {
    pub warm: bool,
    /// Window span and the warm-up it needs, for the "warming up" reason.
    pub span_seconds: f64,
    pub warmup_seconds: f64,
    /// What each kind is judged on.
    pub kinds: ByKind<KindEvidence<'a>>,
    pub next_gc_slope: Option<f64>,
    pub heap_alloc_slope: Option<f64>,
    /// The start-up grace and the points after it (see [`Grace`]).
    pub grace: Grace,
    /// GC cycles in the window (None without MemStats), and whether HeapAlloc grew.
    pub gc_cycles: Option<u64>,
    /// GC cycles in the first and second half of the window (None without MemStats):
    /// the live heap's shape (one-way, both halves growing) needs readings in each.
    pub gc_cycles_by_half: Option<(u64, u64)>,
    pub heap_alloc_grew: bool,
    /// GC cycles since the start-up grace ended (None without MemStats), and HeapAlloc
    /// after it: the recent-growth test of the live heap needs GCs to measure it.
    pub gc_cycles_recent: Option<u64>,
    pub heap_alloc_recent: Vec<(f64, f64)>,
}

/// What one kind is judged on.
#[derive(Debug, Clone, Default)]
pub struct KindEvidence<'a> {
    /// The trends of its series: one for a count, one per live-heap estimator judged
    /// (the strongest decides); none without data.
    pub estimates: Vec<Estimate<'a>>,
    /// Top growth by site (allocation site, blocking site), largest first.
    pub culprit: Option<(&'a str, i64)>,
    /// The recent culprits' own readings over the window (the heap's allocation
    /// sites at each heap profile since each was first named, most recently named
    /// first; empty for the other kinds and once the grace is older than the window).
    pub culprit_window: Vec<SiteReadings>,
    /// The same readings after the start-up grace.
    pub culprit_recent: Vec<SiteReadings>,
}

/// One estimate of a kind's series.
#[derive(Debug, Clone)]
pub struct Estimate<'a> {
    /// The live-heap estimator it comes from; `None` for a series read directly.
    pub source: Option<LiveSource>,
    pub trend: &'a Trend,
    /// Its points after the start-up grace, for the recent-growth test.
    pub recent: Vec<(f64, f64)>,
}

impl Estimate<'_> {
    pub(crate) fn per_hour(&self) -> f64 {
        self.trend.fit.slope * 3600.0
    }
}

/// Where the start-up grace ends, in window seconds (`x` of the trends).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Grace {
    /// `x` at which the grace ends (negative: before the window, the process is old).
    pub end_x: f64,
    /// `x` of the newest sample.
    pub newest_x: f64,
    /// Seconds of data after the grace the recent-growth test needs.
    pub needed_seconds: f64,
    /// The grace itself, for the reasons.
    pub grace_seconds: f64,
}

impl Grace {
    /// The window reaches far enough past the grace for the recent-growth test.
    pub(crate) fn over(&self) -> bool {
        self.newest_x - self.end_x.max(0.0) >= self.needed_seconds || self.end_x <= 0.0
    }
}
