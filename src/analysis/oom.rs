//! Time to OOM: the limit a target's memory is measured against, the usage that limit
//! caps, and how long the usage's growth takes to reach it.
//!
//! # Method and error
//!
//! `leakwatch_time_to_oom_seconds = (limit - usage) / rate`, where
//! - `limit` is the cgroup memory limit, else `GOMEMLIMIT`, else the configured
//!   `memory_limit` (exposed as `leakwatch_memory_limit_bytes{source}`);
//! - `usage` is the newest cgroup working set, else the process RSS, else Go's
//!   `MemStats.Sys` (`leakwatch_memory_usage_bytes{source}`);
//! - `rate` is the Theil-Sen slope of that usage over the window.
//!
//! It assumes the growth stays linear. No series before 6 samples, while usage is
//! "not growing" (a slope below `usage_min_growth_bytes_per_hour` or a 95% confidence
//! interval of the slope that reaches 0), or once growth has stopped at the newest
//! samples ([`crate::analysis::trend::growth_stopped`]). The error comes from the
//! slope: with its 95% interval `[low, high]` the time lies in
//! `[(limit - usage) / high, (limit - usage) / low]` ([`TimeToLimit::earliest_seconds`],
//! [`TimeToLimit::latest_seconds`]). A leak that accelerates reaches the limit sooner;
//! `GOMEMLIMIT` makes the GC work harder near the limit, which slows RSS growth at
//! the cost of CPU, so the estimate is late rather than early in that case.

use crate::analysis::observation::Sample;
use crate::analysis::points::points;
use crate::analysis::thresholds::Thresholds;
use crate::analysis::trend::{TimeToLimit, time_to_limit};
use crate::analysis::window::Window;

/// The usage measured against the host's memory when nothing else limits the process,
/// in order of preference: its own RSS first, since a cgroup with no limit is often
/// shared (a login session, a CI job) and its working set moves with the others.
const HOST_USAGE: &[UsageSource] = &[UsageSource::Rss, UsageSource::WorkingSet];

/// Which limit time-to-OOM uses (the `source` label of `leakwatch_memory_limit_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSource {
    Cgroup,
    Gomemlimit,
    Config,
    /// No limit was set: the host's `MemAvailable` plus the process's own usage, the
    /// memory the kernel's OOM killer lets it reach (only for a process on this host).
    Host,
}

impl LimitSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitSource::Cgroup => "cgroup",
            LimitSource::Gomemlimit => "gomemlimit",
            LimitSource::Config => "config",
            LimitSource::Host => "host",
        }
    }
}

/// Which usage time-to-OOM uses (the `source` label of `leakwatch_memory_usage_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageSource {
    WorkingSet,
    Rss,
    GoSys,
}

impl UsageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageSource::WorkingSet => "working_set",
            UsageSource::Rss => "rss",
            UsageSource::GoSys => "go_sys",
        }
    }

    fn get(self, s: &Sample) -> Option<u64> {
        match self {
            UsageSource::WorkingSet => s.working_set,
            UsageSource::Rss => s.rss,
            UsageSource::GoSys => s.go_sys,
        }
    }
}

/// The limit time-to-OOM measures against: the newest sample's cgroup limit, else its
/// GOMEMLIMIT, else the configured limit, else the host's memory.
pub(crate) fn memory_limit(window: &Window, configured: Option<u64>) -> Option<(LimitSource, u64)> {
    let s = window.newest()?;
    s.cgroup_limit
        .map(|l| (LimitSource::Cgroup, l))
        .or(s.gomemlimit.map(|l| (LimitSource::Gomemlimit, l)))
        .or(configured.map(|l| (LimitSource::Config, l)))
        .or_else(|| {
            // Only a process on this host (RSS or working set read here) is limited
            // by this host's memory; Go's Sys of a remote target is not.
            let usage = HOST_USAGE.iter().find_map(|src| src.get(s))?;
            let available = window.host_available()?;
            Some((LimitSource::Host, available.saturating_add(usage)))
        })
}

/// The usage measured against a limit is what that limit caps: a cgroup's limit its
/// working set; GOMEMLIMIT (one process's Go runtime) that process's RSS or Go's Sys,
/// never the working set of a cgroup the process may share with other processes. The
/// host's memory (no limit anywhere): see [`HOST_USAGE`].
pub(crate) fn memory_usage(
    window: &Window,
    limit: Option<(LimitSource, u64)>,
) -> Option<(UsageSource, u64)> {
    let candidates: &[UsageSource] = match limit.map(|l| l.0) {
        Some(LimitSource::Gomemlimit) => &[UsageSource::Rss, UsageSource::GoSys],
        Some(LimitSource::Host) => HOST_USAGE,
        Some(LimitSource::Cgroup | LimitSource::Config) | None => &[
            UsageSource::WorkingSet,
            UsageSource::Rss,
            UsageSource::GoSys,
        ],
    };
    let s = window.newest()?;
    candidates.iter().find_map(|&src| Some((src, src.get(s)?)))
}

/// Time to OOM from the first minutes: no leak warm-up (a start-up cache heading for
/// the limit kills the service just the same), only a slope whose 95% interval
/// excludes 0 over at least [`crate::analysis::trend::MIN_POINTS_TO_LIMIT`] samples;
/// the recent half of the window wins when it grows faster (growth that accelerates,
/// such as a heap whose GC goal doubles). See [`time_to_limit`].
pub(crate) fn time_to_oom(
    window: &Window,
    limit: Option<(LimitSource, u64)>,
    usage: Option<(UsageSource, u64)>,
    th: &Thresholds,
) -> Option<TimeToLimit> {
    let (Some((_, limit)), Some((src, usage))) = (limit, usage) else {
        return None;
    };
    let pts = points(window, |s| src.get(s));
    time_to_limit(
        &pts,
        usage as f64,
        limit as f64,
        th.usage_min_growth_bytes_per_hour / 3600.0,
    )
}
