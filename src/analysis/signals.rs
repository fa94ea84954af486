//! Leak signals derived from one target's [`Window`]: slopes, the live heap and its
//! monotonicity, alloc/free ratios, concentration by package, culprit growth by
//! allocation site and blocking site, GC headroom and pauses, time-to-OOM (`oom.rs`),
//! the baseline, and the verdict. [`compute`] is pure and returns values only; their
//! series are emitted by `metrics::emit`.

use serde::Deserialize;

use crate::analysis::culprit::{
    culprit, growth_top_n, package_shares, site_growth, sustained_growth_top_n,
};
use std::sync::Arc;

use crate::analysis::kinds::{ByKind, LeakKind, Series};
use crate::analysis::observation::{LiveSource, Sample};
use crate::analysis::oom::{LimitSource, UsageSource, memory_limit, memory_usage, time_to_oom};
use crate::analysis::points::{changes, per_gc, points, x_at, x_of};
use crate::analysis::sites::SiteSnapshot;
use crate::analysis::slope::{Fit, quantile, theil_sen};
use crate::analysis::thresholds::Thresholds;
use crate::analysis::trend::{TimeToLimit, Trend, since};
use crate::analysis::verdict::{
    Estimate, Evidence, Grace, KindEvidence, SiteReadings, Verdict, judge,
};
use crate::analysis::window::{Baseline, Window};

/// Signal settings: label cardinality, the fallback memory limit and the verdict's
/// thresholds. Unknown keys are rejected; missing keys take the defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalConfig {
    /// Series per top-N family (package share, heap growth, goroutine growth), plus `other`.
    pub top_n: usize,
    /// Limit for time-to-OOM when neither a cgroup limit nor GOMEMLIMIT is known.
    pub memory_limit_bytes: Option<u64>,
    pub thresholds: Thresholds,
}

impl Default for SignalConfig {
    fn default() -> Self {
        SignalConfig {
            top_n: 5,
            memory_limit_bytes: None,
            thresholds: Thresholds::default(),
        }
    }
}

/// The live heap a target shows everywhere: the newest sample's, with the estimate it
/// came from ([`Signals::live_heap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveHeap {
    pub bytes: u64,
    pub source: LiveSource,
}

impl std::fmt::Display for LiveHeap {
    /// `48.0 MiB (heap profile)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({})",
            crate::units::fmt_bytes(self.bytes as f64),
            self.source.words()
        )
    }
}

/// Every signal of one target at one time.
#[derive(Debug, Clone)]
pub struct Signals {
    pub window_samples: usize,
    pub window_span_seconds: f64,
    pub warm: bool,
    /// Slopes only (no monotonicity or halves): these feed no verdict criterion but
    /// the runtime's corroboration and their own series.
    pub heap_alloc: Option<Fit>,
    pub next_gc: Option<Fit>,
    /// The live heap by the estimator of the newest sample (see [`Window::live_series`]).
    pub live: Option<Trend>,
    pub live_source: Option<LiveSource>,
    pub live_bytes: Option<u64>,
    /// Live-heap trend of each estimator, for the verdict.
    pub live_profile: Option<Trend>,
    pub live_nextgc: Option<Trend>,
    pub alloc_free_bytes_ratio: Option<f64>,
    pub alloc_free_objects_ratio: Option<f64>,
    pub heap_objects: Option<Fit>,
    pub heap_inuse_alloc_ratio: Option<f64>,
    /// In-use share by package: top N, then `other`.
    pub inuse_share: Vec<(String, f64)>,
    pub top_package: Option<(String, f64)>,
    /// In-use growth across the window by allocation site: top N, then `other`.
    pub heap_growth: Vec<(String, i64)>,
    /// The goroutine count's trend.
    pub goroutines: Option<Trend>,
    /// Goroutine count growth by blocking site: top N, then `other`.
    pub goroutine_growth: Vec<(String, i64)>,
    pub gc_headroom_bytes: Option<f64>,
    pub gc_pause_p99_seconds: Option<f64>,
    pub gc_pause_max_seconds: Option<f64>,
    pub memory_limit: Option<(LimitSource, u64)>,
    pub memory_usage: Option<(UsageSource, u64)>,
    /// The usage's time to the memory limit (rate in bytes per second).
    pub time_to_oom: Option<TimeToLimit>,
    pub baseline: Option<Baseline>,
    pub baseline_ratio: Option<f64>,
    /// GC cycles inside the window (None without MemStats).
    pub gc_cycles: Option<u64>,
    pub verdict: Verdict,
}

impl Signals {
    /// The one live-heap figure every view shows: the newest sample's, named by its
    /// estimate (the one [`Signals::live`] trends).
    pub fn live_heap(&self) -> Option<LiveHeap> {
        Some(LiveHeap {
            bytes: self.live_bytes?,
            source: self.live_source?,
        })
    }
}

/// GC cycles that completed in each half of the window (from NumGC), `None` without
/// two MemStats readings in each half.
fn gc_cycles_by_half(window: &Window) -> Option<(u64, u64)> {
    let gcs: Vec<(f64, u64)> = window
        .samples()
        .iter()
        .filter_map(|s| Some((x_of(window, s), s.num_gc?)))
        .collect();
    let (first, last) = (gcs.first()?, gcs.last()?);
    let mid = first.0 + (last.0 - first.0) / 2.0;
    let at_mid = gcs.iter().rev().find(|g| g.0 <= mid)?;
    if at_mid.0 == first.0 || at_mid.0 == last.0 {
        return None;
    }
    Some((
        at_mid.1.saturating_sub(first.1),
        last.1.saturating_sub(at_mid.1),
    ))
}

fn trend(window: &Window, get: impl Fn(&Sample) -> Option<u64>) -> Option<Trend> {
    Trend::of(&points(window, get))
}

/// A slope alone, with the same 3-point minimum as [`Trend::of`].
fn fit(window: &Window, get: impl Fn(&Sample) -> Option<u64>) -> Option<Fit> {
    let pts = points(window, get);
    if pts.len() < 3 {
        return None;
    }
    theil_sen(&pts)
}

/// Growth of `get(new) / get(old)` between the first and last samples that have both.
fn growth_ratio(
    window: &Window,
    num: impl Fn(&Sample) -> Option<u64>,
    den: impl Fn(&Sample) -> Option<u64>,
) -> Option<f64> {
    let both = |s: &Sample| Some((num(s)?, den(s)?));
    let first = window.samples().iter().find_map(both)?;
    let last = window.samples().iter().rev().find_map(both)?;
    let dn = last.0.checked_sub(first.0)?;
    let dd = last.1.checked_sub(first.1)?;
    if dd == 0 {
        return None;
    }
    Some(dn as f64 / dd as f64)
}
/// GC cycles by which the heap profile lags the heap it describes.
const PROFILE_LAG_GC_CYCLES: u64 = 2;

/// The data after the start-up grace the recent-growth test needs, as a share of the
/// warm-up (2 minutes with the default 5-minute warm-up).
const RECENT_FRACTION_OF_WARMUP: f64 = 0.4;

/// Distinct heap-profile in-use values in the window from which the profile alone
/// decides the heap verdict (below it, NextGC is judged too).
const MIN_PROFILE_CHANGES: usize = 8;

/// Derives every signal from the window. Pure: the same window gives the same signals.
pub fn compute(window: &Window, cfg: &SignalConfig) -> Signals {
    let warm = window.is_warm();
    let newest = window.newest();
    let live = LiveReadings::of(window);
    let live_source = newest.and_then(LiveSource::of);
    let live_bytes = newest.and_then(Sample::live_heap);
    let heap_alloc = fit(window, |s| s.heap_alloc);
    let next_gc = fit(window, |s| s.next_gc);
    let sites = Sites::of(window, cfg.top_n);
    let mut count_trends = count_trends(window);
    let (gc_pause_p99_seconds, gc_pause_max_seconds) = gc_pauses(window);
    let memory_limit = memory_limit(window, cfg.memory_limit_bytes);
    let memory_usage = memory_usage(window, memory_limit);
    let time_to_oom = time_to_oom(window, memory_limit, memory_usage, &cfg.thresholds);
    let baseline = window.baseline();
    let baseline_ratio = match (baseline, live_bytes) {
        (Some(b), Some(l)) if b.bytes > 0 => Some(l as f64 / b.bytes as f64),
        _ => None,
    };
    let evidence = evidence(window, &live, &count_trends, &sites, heap_alloc, next_gc);
    let verdict = judge(&evidence, &cfg.thresholds);
    let goroutines = count_trends[LeakKind::Goroutine].take();
    let Sites {
        heap_growth,
        inuse_share,
        top_package,
        goroutine_growth,
    } = sites;
    Signals {
        window_samples: window.len(),
        window_span_seconds: window.span().as_secs_f64(),
        warm,
        alloc_free_bytes_ratio: growth_ratio(
            window,
            |s| s.total_alloc,
            |s| Some(s.total_alloc?.saturating_sub(s.heap_alloc?)),
        ),
        alloc_free_objects_ratio: growth_ratio(window, |s| s.mallocs, |s| s.frees),
        heap_objects: fit(window, |s| s.heap_objects),
        heap_inuse_alloc_ratio: newest.and_then(|s| match (s.profile_inuse, s.profile_alloc) {
            (Some(i), Some(a)) if a > 0 => Some(i as f64 / a as f64),
            _ => None,
        }),
        gc_headroom_bytes: newest.and_then(|s| Some(s.next_gc? as f64 - s.heap_alloc? as f64)),
        heap_alloc,
        next_gc,
        live: live_source.and_then(|src| live.trend(src).cloned()),
        live_source,
        live_bytes,
        live_profile: live.profile_trend,
        live_nextgc: live.nextgc_trend,
        inuse_share,
        top_package,
        heap_growth,
        goroutines,
        goroutine_growth,
        gc_pause_p99_seconds,
        gc_pause_max_seconds,
        memory_limit,
        memory_usage,
        time_to_oom,
        baseline,
        baseline_ratio,
        gc_cycles: window.gc_cycles(),
        verdict,
    }
}

/// The live heap's two estimators, one reading per GC each (see [`per_gc`]), and their
/// trends: the window's trends and the points after the start-up grace are both
/// taken from these readings.
struct LiveReadings {
    profile: Vec<(f64, f64)>,
    nextgc: Vec<(f64, f64)>,
    profile_trend: Option<Trend>,
    nextgc_trend: Option<Trend>,
}

impl LiveReadings {
    fn of(window: &Window) -> Self {
        let profile = per_gc(window, |s| LiveSource::HeapProfile.get(s));
        let nextgc = per_gc(window, |s| LiveSource::NextGc.get(s));
        LiveReadings {
            profile_trend: Trend::of(&profile),
            nextgc_trend: Trend::of(&nextgc),
            profile,
            nextgc,
        }
    }

    fn trend(&self, source: LiveSource) -> Option<&Trend> {
        match source {
            LiveSource::HeapProfile => self.profile_trend.as_ref(),
            LiveSource::NextGc => self.nextgc_trend.as_ref(),
        }
    }

    /// The estimators the verdict judges. The heap profile is the live heap itself (as
    /// of the last GC) and is judged alone once it has changed often enough to show a
    /// trend; NextGC / (1 + GOGC/100) is a second, noisier estimate (the pacer's
    /// target) that stands in while the profile is rarely refreshed (few GCs, or
    /// profiling off). Judging both and keeping the stronger would give noise two
    /// chances to look like growth.
    fn judged(&self, window: &Window) -> Vec<LiveSource> {
        let profile_changes = {
            let mut v: Vec<u64> = window
                .samples()
                .iter()
                .filter_map(|s| s.profile_inuse)
                .collect();
            v.sort_unstable();
            v.dedup();
            v.len()
        };
        let mut judged = Vec::new();
        if self.profile_trend.is_some() {
            judged.push(LiveSource::HeapProfile);
        }
        if self.nextgc_trend.is_some()
            && (profile_changes < MIN_PROFILE_CHANGES || self.profile_trend.is_none())
        {
            judged.push(LiveSource::NextGc);
        }
        judged
    }

    /// The judged estimates, each with its readings after the start-up grace (the heap
    /// profile's from [`profile_from_x`] on).
    fn estimates(&self, window: &Window, grace: &Grace) -> Vec<Estimate<'_>> {
        self.judged(window)
            .into_iter()
            .filter_map(|source| {
                let (readings, from) = match source {
                    LiveSource::HeapProfile => (&self.profile, profile_from_x(window, grace)),
                    LiveSource::NextGc => (&self.nextgc, grace.end_x),
                };
                Some(Estimate {
                    source: Some(source),
                    trend: self.trend(source)?,
                    recent: since(readings, from),
                })
            })
            .collect()
    }
}

/// Growth by site across the window: heap in-use bytes by allocation site (with the
/// shares by package) and goroutine counts by blocking site, top N then `other`.
struct Sites {
    heap_growth: Vec<(String, i64)>,
    inuse_share: Vec<(String, f64)>,
    top_package: Option<(String, f64)>,
    goroutine_growth: Vec<(String, i64)>,
}

impl Sites {
    fn of(window: &Window, top_n: usize) -> Self {
        let (heap_growth, inuse_share, top_package) = match window.heap_sites() {
            Some((old, new)) => {
                let shares = package_shares(new, top_n);
                let top = shares.first().filter(|(p, _)| p != "other").cloned();
                let snaps: Vec<&SiteSnapshot> = window.heap_site_snapshots().collect();
                (sustained_growth_top_n(old, new, &snaps, top_n), shares, top)
            }
            None => (Vec::new(), Vec::new(), None),
        };
        let goroutine_growth = window
            .goroutine_sites()
            .map(|(old, new)| growth_top_n(old, new, top_n, site_growth))
            .unwrap_or_default();
        Sites {
            heap_growth,
            inuse_share,
            top_package,
            goroutine_growth,
        }
    }

    /// The site that grew most for a kind: an allocation site for the heap, a blocking
    /// site for goroutines; connections have no sites of their own.
    fn culprit(&self, kind: LeakKind) -> Option<(&str, i64)> {
        match kind {
            LeakKind::Heap => culprit(&self.heap_growth),
            LeakKind::Goroutine => culprit(&self.goroutine_growth),
            LeakKind::HttpConnections => None,
        }
    }
}

/// The trend of each kind read from one series ([`Series::Count`]); `None` for the
/// live heap, judged on its estimators ([`LiveReadings`]).
fn count_trends(window: &Window) -> ByKind<Option<Trend>> {
    ByKind::from_fn(|kind| match kind.spec().series {
        Series::Count(get) => trend(window, get),
        Series::LiveHeap => None,
    })
}

/// The 99th percentile and the longest of the GC pauses that ended in the window.
fn gc_pauses(window: &Window) -> (Option<f64>, Option<f64>) {
    let mut pauses: Vec<f64> = window.pauses_ns().map(|ns| ns as f64 / 1e9).collect();
    let max = pauses.iter().copied().reduce(f64::max);
    (quantile(&mut pauses, 0.99), max)
}

/// The start-up grace in window seconds (see [`Grace`]).
fn grace(window: &Window) -> Grace {
    let end_x = window.grace_end().map_or(f64::NEG_INFINITY, |g| {
        match g.duration_since(window.start()) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        }
    });
    Grace {
        end_x,
        newest_x: window.newest().map_or(0.0, |s| x_of(window, s)),
        needed_seconds: window.warmup().as_secs_f64() * RECENT_FRACTION_OF_WARMUP,
        grace_seconds: window.startup_grace().as_secs_f64(),
    }
}

/// Where the heap profile's points after the grace start. The profile publishes what
/// happened up to two GC cycles earlier: right after the grace it can still show
/// growth that stopped before it (a cache that filled just in time). Its points count
/// from the second GC after the grace on, or from the first profile after the grace
/// read right after a GC leakwatch asked for (`gc: auto`), which is of its moment:
/// whichever comes first.
fn profile_from_x(window: &Window, grace: &Grace) -> f64 {
    if grace.end_x <= 0.0 {
        return grace.end_x;
    }
    let after_grace = || {
        window
            .samples()
            .iter()
            .filter(|s| x_of(window, s) >= grace.end_x)
    };
    let lagged = match after_grace().find_map(|s| s.num_gc) {
        Some(b) => after_grace()
            .find(|s| s.num_gc.is_some_and(|n| n >= b + PROFILE_LAG_GC_CYCLES))
            .map_or(f64::INFINITY, |s| x_of(window, s)),
        None => grace.end_x,
    };
    after_grace()
        .find(|s| s.profile_current)
        .map_or(lagged, |s| x_of(window, s).min(lagged))
}

/// The heap's recent culprits' in-use bytes at each heap profile that changed them
/// ([`changes`]: one reading per GC), over the window and after the start-up grace
/// (from [`profile_from_x`], as the whole profile's), most recently named first; both
/// empty when the grace is older than the window.
fn culprit_readings(window: &Window, grace: &Grace) -> (Vec<SiteReadings>, Vec<SiteReadings>) {
    if grace.end_x <= 0.0 {
        return (Vec::new(), Vec::new());
    }
    let from = profile_from_x(window, grace);
    window
        .tracked_sites()
        .sites
        .iter()
        .map(|t| {
            let read: Vec<(f64, f64)> = t
                .points
                .iter()
                .map(|(at, b)| (x_at(window, *at), *b as f64))
                .collect();
            let points = changes(&read);
            let recent = since(&points, from);
            ((Arc::clone(&t.name), points), (Arc::clone(&t.name), recent))
        })
        .unzip()
}

/// GC cycles in the points from `from_x` on: unknown (no check) unless MemStats were
/// read at least twice there.
fn gc_cycles_since(window: &Window, from_x: f64) -> Option<u64> {
    let recent = since(&points(window, |s| s.num_gc), from_x);
    match (recent.first(), recent.last()) {
        (Some(a), Some(b)) if recent.len() >= 2 => Some((b.1 - a.1).max(0.0) as u64),
        _ => None,
    }
}

/// Everything the verdict looks at: each kind's trends with their points after the
/// start-up grace and its culprit, and the heap's GC and runtime evidence.
fn evidence<'a>(
    window: &Window,
    live: &'a LiveReadings,
    count_trends: &'a ByKind<Option<Trend>>,
    sites: &'a Sites,
    heap_alloc: Option<Fit>,
    next_gc: Option<Fit>,
) -> Evidence<'a> {
    let grace = grace(window);
    let (mut culprit_window, mut culprit_recent) = culprit_readings(window, &grace);
    let kinds = ByKind::from_fn(|kind| KindEvidence {
        estimates: match kind.spec().series {
            Series::LiveHeap => live.estimates(window, &grace),
            Series::Count(get) => count_trends[kind]
                .iter()
                .map(|trend| Estimate {
                    source: None,
                    trend,
                    recent: since(&points(window, get), grace.end_x),
                })
                .collect(),
        },
        culprit: sites.culprit(kind),
        culprit_window: match kind {
            LeakKind::Heap => std::mem::take(&mut culprit_window),
            LeakKind::Goroutine | LeakKind::HttpConnections => Vec::new(),
        },
        culprit_recent: match kind {
            LeakKind::Heap => std::mem::take(&mut culprit_recent),
            LeakKind::Goroutine | LeakKind::HttpConnections => Vec::new(),
        },
    });
    Evidence {
        warm: window.is_warm(),
        span_seconds: window.span().as_secs_f64(),
        warmup_seconds: window.warmup().as_secs_f64(),
        kinds,
        gc_cycles: window.gc_cycles(),
        gc_cycles_by_half: gc_cycles_by_half(window),
        heap_alloc_grew: heap_alloc.is_some_and(|f| f.low > 0.0),
        gc_cycles_recent: gc_cycles_since(window, grace.end_x),
        heap_alloc_recent: since(&points(window, |s| s.heap_alloc), grace.end_x),
        next_gc_slope: next_gc.map(|f| f.slope),
        heap_alloc_slope: heap_alloc.map(|f| f.slope),
        grace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::kinds::LeakKind;
    use crate::analysis::sim::*;
    use crate::analysis::verdict::VerdictState;
    use crate::analysis::window::{Observation, ObserveOutcome, WindowConfig};
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    #[test]
    fn heap_scenarios() {
        struct Case {
            name: &'static str,
            sim: Sim,
            /// Suspected at the end of the run.
            at_end: bool,
            /// Never suspected at any time once warm.
            never: bool,
        }
        let cases = vec![
            Case {
                name: "healthy sawtooth (HeapAlloc 50..100 MiB, flat live heap)",
                sim: Sim::default(),
                at_end: false,
                never: true,
            },
            Case {
                name: "steady leak 20 MiB/h",
                sim: Sim {
                    live: linear(50.0 * MIB, 20.0 * MIB),
                    ..Sim::default()
                },
                at_end: true,
                never: false,
            },
            Case {
                // 5 MiB over the 30-minute window under a 100 MiB sawtooth: the live heap
                // still climbs after each GC.
                name: "slow leak 10 MiB/h under a 100 MiB sawtooth",
                sim: Sim {
                    live: linear(100.0 * MIB, 10.0 * MIB),
                    base: 100.0 * MIB,
                    alloc_rate: 20.0 * MIB,
                    ..Sim::default()
                },
                at_end: true,
                never: false,
            },
            Case {
                name: "step up by 20 MiB at minute 16",
                sim: Sim {
                    live: Box::new(|t| if t < 960.0 { 50.0 * MIB } else { 70.0 * MIB }),
                    ..Sim::default()
                },
                at_end: false,
                never: true,
            },
            Case {
                name: "cache warms 20 -> 60 MiB over 8 minutes then plateaus",
                sim: Sim {
                    live: Box::new(|t| 20.0 * MIB + 40.0 * MIB * (t / 480.0).min(1.0)),
                    base: 20.0 * MIB,
                    ..Sim::default()
                },
                at_end: false,
                never: true,
            },
            Case {
                // Prometheus 2.42 in live_defaults: its heap grows while it creates its
                // series, then a 4 MiB buffer for its first head-chunk file lands just
                // after the 10-minute grace, and its small heap is read through a
                // profile whose pooled 0.9 MiB gzip writers come and go.
                name: "start-up growth, a 4 MiB step just after the grace, noisy flat heap",
                sim: Sim {
                    live: Box::new(|t| {
                        10.0 * MIB
                            + 5.0 * MIB * (t / 420.0).min(1.0)
                            + if t >= 640.0 { 4.0 * MIB } else { 0.0 }
                            + 1.5 * MIB * noise(t as u64 / 20)
                    }),
                    base: 10.0 * MIB,
                    alloc_rate: 2.0 * MIB,
                    ..Sim::default()
                },
                at_end: false,
                never: true,
            },
            Case {
                name: "bursty traffic: +30 MiB live for 40 s every 3 minutes",
                sim: Sim {
                    live: Box::new(|t| {
                        let burst = (t as u64 % 180) < 40;
                        50.0 * MIB + if burst { 30.0 * MIB } else { 0.0 }
                    }),
                    alloc_rate: 4.0 * MIB,
                    ..Sim::default()
                },
                at_end: false,
                never: true,
            },
            Case {
                name: "restart at minute 25 of a healthy service",
                sim: Sim {
                    restart_at: Some(1500),
                    ..Sim::default()
                },
                at_end: false,
                never: true,
            },
        ];
        let wcfg = WindowConfig::default();
        let scfg = SignalConfig::default();
        for c in cases {
            let r = run(&c.sim, 45 * 60, 15, &wcfg, &scfg);
            let heap = &r.last.verdict.get(LeakKind::Heap);
            assert_eq!(heap.suspected, c.at_end, "{}: {heap:#?}", c.name);
            assert_eq!(
                heap.score >= 0.5,
                heap.suspected,
                "{}: score {}",
                c.name,
                heap.score
            );
            if c.never {
                let fired: Vec<u64> = r
                    .verdicts
                    .iter()
                    .filter(|v| v.1[LeakKind::Heap])
                    .map(|v| v.0)
                    .collect();
                assert!(
                    fired.is_empty(),
                    "{}: suspected at seconds {fired:?}",
                    c.name
                );
            }
            if c.at_end {
                // The process's age is unknown here: first suspected once the window
                // reaches past the 10-minute start-up grace by the 2 minutes the
                // recent-growth test needs, well before the old fixed 20 minutes.
                let first = r.verdicts.iter().find(|v| v.1[LeakKind::Heap]).map(|v| v.0);
                // (The slow leak under a 10x sawtooth needs a minute more of data.)
                assert!(
                    first.is_some_and(|f| (720..=960).contains(&f)),
                    "{}: first suspected at {first:?}",
                    c.name
                );
                assert!(
                    heap.reasons
                        .iter()
                        .any(|r| r.contains("top growth: main.newSession")),
                    "{}: {:?}",
                    c.name,
                    heap.reasons
                );
                // The stronger of the two live-heap estimators is clearly one-way.
                let mono = [&r.last.live_profile, &r.last.live_nextgc]
                    .iter()
                    .filter_map(|t| t.as_ref().map(|t| t.monotonicity))
                    .fold(0.0, f64::max);
                assert!(mono > 0.8, "{}: monotonicity {mono}", c.name);
            }
        }
    }

    #[test]
    fn restart_starts_a_new_window_without_a_spike() {
        // A leaking service restarts at minute 25: counters reset and the pid changes.
        let sim = Sim {
            live: linear(50.0 * MIB, 20.0 * MIB),
            restart_at: Some(1500),
            ..Sim::default()
        };
        let r = run(
            &sim,
            30 * 60,
            15,
            &WindowConfig::default(),
            &SignalConfig::default(),
        );
        let restarts: Vec<usize> = r
            .outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| **o == ObserveOutcome::Restarted)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(restarts, vec![100], "observation 100 is second 1500");
        assert_eq!(r.window.len(), 21);
        assert_eq!(r.window.start(), at(1500));
        // Five minutes of the new process: not judged on the old one's samples.
        assert_eq!(r.last.window_span_seconds, 300.0);
        assert!(!r.last.verdict.get(LeakKind::Heap).suspected);
        assert!(r.last.time_to_oom.is_none());
        // After the restart the heap starts from scratch: HeapAlloc's slope is that of
        // the new process, not a fall of ~70 MiB.
        let slope = r.last.heap_alloc.unwrap().slope;
        assert!(slope > -5.0 * MIB / 60.0, "slope {slope}");
    }

    #[test]
    fn too_few_samples_no_slope_no_time_to_oom() {
        let w = two_early_samples();
        let s = compute(&w, &SignalConfig::default());
        assert_eq!(s.window_samples, 2);
        assert!(s.heap_alloc.is_none() && s.live.is_none() && s.next_gc.is_none());
        assert!(s.time_to_oom.is_none());
        assert!(!s.warm);
        assert_eq!(s.live_bytes, Some(20_000_000));
        assert_eq!(s.memory_limit, Some((LimitSource::Gomemlimit, 1 << 30)));
        assert_eq!(s.memory_usage, Some((UsageSource::Rss, 60_000_000)));
        assert_eq!(s.gc_headroom_bytes, Some(20_000_000.0));
        for k in s.verdict.kinds() {
            assert!(!k.suspected);
            assert_eq!(k.score, 0.0);
            assert!(
                k.reasons[0].starts_with("warming up: the window covers 15s of the 5m"),
                "{:?}",
                k.reasons
            );
        }
    }

    #[test]
    fn time_to_oom_on_a_linear_series() {
        struct Case {
            name: &'static str,
            rss: Box<dyn Fn(f64) -> f64>,
            limit: Option<u64>,
            want: Option<f64>,
        }
        let gib = 1024.0 * MIB;
        let cases = [
            Case {
                // 100 MiB + 1 MiB/min: at minute 40 usage is 140 MiB; 884 MiB left at
                // 1 MiB/min is 53,040 s.
                name: "working set grows 1 MiB/min to a 1 GiB cgroup limit",
                rss: linear(100.0 * MIB, 60.0 * MIB),
                limit: Some(gib as u64),
                want: Some((1024.0 - 140.0) * 60.0),
            },
            Case {
                name: "flat usage: not growing, no series",
                rss: Box::new(|_| 300.0 * MIB),
                limit: Some(gib as u64),
                want: None,
            },
            Case {
                name: "growth below the 2 MiB/h floor",
                rss: linear(100.0 * MIB, 1.0 * MIB),
                limit: Some(gib as u64),
                want: None,
            },
            Case {
                name: "no limit known",
                rss: linear(100.0 * MIB, 60.0 * MIB),
                limit: None,
                want: None,
            },
            Case {
                name: "already over the limit",
                rss: linear(100.0 * MIB, 60.0 * MIB),
                limit: Some(120 * 1024 * 1024),
                want: Some(0.0),
            },
        ];
        for c in cases {
            let sim = Sim {
                rss: c.rss,
                limit: c.limit,
                ..Sim::default()
            };
            let r = run(
                &sim,
                40 * 60,
                15,
                &WindowConfig::default(),
                &SignalConfig::default(),
            );
            let got = r.last.time_to_oom.map(|t| t.seconds);
            match (got, c.want) {
                (None, None) => {}
                (Some(g), Some(w)) => {
                    assert!((g - w).abs() <= w * 0.01, "{}: {g} want {w}", c.name);
                    let t = r.last.time_to_oom.unwrap();
                    assert!(
                        t.earliest_seconds <= g && g <= t.latest_seconds,
                        "{}: {t:?}",
                        c.name
                    );
                }
                _ => panic!("{}: got {got:?} want {:?}", c.name, c.want),
            }
            if c.limit.is_some() {
                assert_eq!(r.last.memory_limit.map(|l| l.0), Some(LimitSource::Cgroup));
            }
            assert_eq!(
                r.last.memory_usage.map(|u| u.0),
                Some(UsageSource::WorkingSet)
            );
        }
    }

    /// (name, goroutines at second t, goroutine leak expected, connection leak expected)
    type CountCase = (&'static str, Box<dyn Fn(f64) -> f64>, bool, bool);

    #[test]
    fn goroutine_and_connection_scenarios() {
        let cases: Vec<CountCase> = vec![
            ("steady 40 goroutines", Box::new(|_| 40.0), false, false),
            // 4 leaked goroutines a minute, one in four an HTTP connection: 60/h.
            ("leak 240 goroutines/h", linear(40.0, 240.0), true, true),
            (
                "bursts of 400 goroutines for 30 s every 2 minutes",
                Box::new(|t| if (t as u64 % 120) < 30 { 440.0 } else { 40.0 }),
                false,
                false,
            ),
            (
                "pool warms to 200 over 5 minutes, then flat",
                Box::new(|t| 40.0 + 160.0 * (t / 300.0).min(1.0)),
                false,
                false,
            ),
            (
                // Growth after the grace that is one step, then requests coming and
                // going: the readings after the grace rise, but not one way through
                // both halves, nor by much more than their scatter.
                "warms for 8 minutes, a pool of 40 started at minute 10.5, noisy",
                Box::new(|t| {
                    40.0 + 60.0 * (t / 480.0).min(1.0)
                        + if t >= 630.0 { 40.0 } else { 0.0 }
                        + (6.0 * noise(t as u64 / 15)).round()
                }),
                false,
                false,
            ),
        ];
        for (name, g, want_g, want_http) in cases {
            let sim = Sim {
                goroutines: g,
                ..Sim::default()
            };
            let r = run(
                &sim,
                45 * 60,
                15,
                &WindowConfig::default(),
                &SignalConfig::default(),
            );
            let v = &r.last.verdict;
            assert_eq!(
                v.get(LeakKind::Goroutine).suspected,
                want_g,
                "{name}: {:?}",
                v.get(LeakKind::Goroutine)
            );
            assert_eq!(
                v.get(LeakKind::HttpConnections).suspected,
                want_http,
                "{name}: {:?}",
                v.get(LeakKind::HttpConnections)
            );
            assert!(!v.get(LeakKind::Heap).suspected, "{name}");
            if want_g {
                assert!(
                    v.get(LeakKind::Goroutine)
                        .reasons
                        .iter()
                        .any(|r| r.starts_with("top growth: main.waitForReply +")),
                    "{name}: {:?}",
                    v.get(LeakKind::Goroutine).reasons
                );
                let (f, grown) = &r.last.goroutine_growth[0];
                assert_eq!(f, "main.waitForReply");
                // 4 a minute over the 30-minute window, give or take one interval.
                assert!((116..=124).contains(grown), "{name}: {grown}");
            } else {
                let fired: Vec<u64> = r
                    .verdicts
                    .iter()
                    .filter(|v| v.1[LeakKind::Goroutine] || v.1[LeakKind::HttpConnections])
                    .map(|v| v.0)
                    .collect();
                assert!(fired.is_empty(), "{name}: suspected at {fired:?}");
            }
        }
    }

    #[test]
    fn concentration_and_growth() {
        let r = leaking_45_minutes();
        let s = &r.last;
        // Shares by package of the allocation site (helpers skipped: runtime.makeslice
        // and encoding/json.Marshal allocate on behalf of github.com/acme/api.render).
        let pkgs: Vec<&str> = s.inuse_share.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(pkgs, ["github.com/acme/api", "main", "other"]);
        let sum: f64 = s.inuse_share.iter().map(|(_, v)| v).sum();
        assert!((sum - 1.0).abs() < 1e-9, "{sum}");
        let live = s.live_bytes.unwrap() as f64;
        let main_share = s.inuse_share[1].1;
        // At minute 45 the leak holds about 15 MiB of a 65 MiB live heap.
        assert!(
            (main_share * live - 15.0 * MIB).abs() < 1.5 * MIB,
            "{main_share}"
        );
        assert_eq!(
            s.top_package.as_ref().map(|p| p.0.as_str()),
            Some("github.com/acme/api")
        );
        // Growth by site: main.newSession grew by about 10 MiB over the window.
        let (f, g) = &s.heap_growth[0];
        assert_eq!(f, "main.newSession");
        assert!((*g as f64 - 10.0 * MIB).abs() < 2.0 * MIB, "{g}");
        assert_eq!(s.heap_growth.last().unwrap().0, "other");
        // Alloc/free: a leak allocates more than it frees.
        let ratio = s.alloc_free_bytes_ratio.unwrap();
        assert!(ratio > 1.0 && ratio < 1.01, "{ratio}");
        let pauses = (
            s.gc_pause_p99_seconds.unwrap(),
            s.gc_pause_max_seconds.unwrap(),
        );
        assert_eq!(pauses, (0.00055, 0.00055));
    }

    /// The recorded series of a real Go service: `go1.26-heap` leaks, `go1.19-healthy`
    /// is a sawtooth. Six snapshots one second apart, so the warm-up is shortened.
    #[test]
    fn fixture_series_heap_verdict() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/series");
        let wcfg = WindowConfig {
            span: Duration::from_secs(60),
            warmup: Duration::from_secs(4),
            min_samples: 5,
            // Five seconds of captures: the classic criteria, no start-up grace.
            startup_grace: Some(Duration::ZERO),
            ..WindowConfig::default()
        };
        for (series, want) in [("go1.26-heap", true), ("go1.19-healthy", false)] {
            let times = std::fs::read_to_string(dir.join(series).join("times.txt")).unwrap();
            let mut w = Window::new(&wcfg);
            for line in times.lines() {
                let (tag, ts) = line.split_once(' ').unwrap();
                let at: SystemTime = crate::units::parse_rfc3339(ts).unwrap();
                let body =
                    std::fs::read(dir.join(series).join(format!("{tag}_heap_debug1.txt"))).unwrap();
                let text = crate::pprof::heap::parse_heap_text(&body).unwrap();
                let obs = Observation {
                    pid: Some(1),
                    memstats: text.memstats.clone(),
                    heap: Some(Arc::new(text.estimate().unwrap())),
                    ..Observation::at(at)
                };
                assert_eq!(w.observe(obs), ObserveOutcome::Appended, "{series} {tag}");
            }
            // With the defaults, a leaking heap seen across two GCs is inconclusive:
            // the live heap is measured only at a GC.
            let s = compute(&w, &SignalConfig::default());
            if want {
                assert_eq!(s.gc_cycles, Some(2), "{series}");
                assert_eq!(
                    s.verdict.get(LeakKind::Heap).state,
                    VerdictState::Inconclusive,
                    "{series}"
                );
            }
            // Asked to judge on two GCs, the classic criteria decide.
            let mut cfg = SignalConfig::default();
            cfg.thresholds.min_gc_cycles = 2;
            let s = compute(&w, &cfg);
            assert_eq!(s.window_samples, 6);
            let heap = &s.verdict.get(LeakKind::Heap);
            assert_eq!(heap.suspected, want, "{series}: {heap:#?}");
            if want {
                // NextGC went 4194304 -> 7284186 -> 13734026 over the five seconds.
                let nextgc = s.live_nextgc.as_ref().unwrap();
                assert_eq!(nextgc.monotonicity, 1.0);
                assert_eq!(s.heap_growth[0].0, "main.newSession");
            }
        }
    }

    #[test]
    fn configs_deserialize_strictly() {
        let s: SignalConfig = serde_norway::from_str(
            "top_n: 3\nmemory_limit_bytes: 1073741824\nthresholds: {min_monotonicity: 0.7}",
        )
        .unwrap();
        assert_eq!((s.top_n, s.memory_limit_bytes), (3, Some(1 << 30)));
        assert_eq!(s.thresholds.min_monotonicity, 0.7);
        assert_eq!(s.thresholds.min_half_slope_fraction, 0.25);
        let w: WindowConfig = serde_norway::from_str("span: 10m\nwarmup: 90s").unwrap();
        assert_eq!(
            (w.span, w.warmup),
            (Duration::from_secs(600), Duration::from_secs(90))
        );
        assert_eq!(w.max_samples, 240);
        for bad in ["top_m: 3", "thresholds: {min_mono: 1}", "span: 10 parsecs"] {
            let e1 = serde_norway::from_str::<SignalConfig>(bad).map(|_| ());
            let e2 = serde_norway::from_str::<WindowConfig>(bad).map(|_| ());
            assert!(e1.is_err() && e2.is_err(), "{bad}: {e1:?} {e2:?}");
        }
    }

    #[test]
    fn evidence_instead_of_a_fixed_warm_up() {
        let wcfg = WindowConfig::default();
        let scfg = SignalConfig::default();
        let first = |r: &Run| r.verdicts.iter().find(|v| v.1[LeakKind::Heap]).map(|v| v.0);
        // A cache that fills for (up to) 10 minutes and stops is never a leak.
        for fill in [480.0, 600.0] {
            let sim = Sim {
                live: Box::new(move |t| 20.0 * MIB + 40.0 * MIB * (t / fill).min(1.0)),
                base: 20.0 * MIB,
                ..Sim::default()
            };
            let r = run(&sim, 30 * 60, 15, &wcfg, &scfg);
            assert_eq!(first(&r), None, "cache filling for {fill}s");
            let h = &r.last.verdict.get(LeakKind::Heap);
            assert_eq!(h.state, VerdictState::NoLeak, "{h:#?}");
        }
        // The same leak in a process that has run for two hours is suspected as soon
        // as the 5-minute warm-up is covered: it is past its start-up.
        let leak = |started_before| Sim {
            live: linear(50.0 * MIB, 20.0 * MIB),
            started_before,
            ..Sim::default()
        };
        let r = run(&leak(Some(7200)), 20 * 60, 15, &wcfg, &scfg);
        assert!(
            first(&r).is_some_and(|f| f <= 360),
            "old process: first suspected at {:?}",
            first(&r)
        );
        // A process that started with leakwatch waits for the grace, then is suspected.
        let r = run(&leak(Some(0)), 20 * 60, 15, &wcfg, &scfg);
        assert!(
            first(&r).is_some_and(|f| (720..=900).contains(&f)),
            "young process: first suspected at {:?}",
            first(&r)
        );
        // Within the grace the growing heap is "warming up", never "no leak".
        let r = run(&leak(Some(0)), 9 * 60, 15, &wcfg, &scfg);
        let h = &r.last.verdict.get(LeakKind::Heap);
        assert_eq!(h.state, VerdictState::WarmingUp, "{h:#?}");
        assert!(h.reasons[0].contains("start-up grace"), "{:?}", h.reasons);
    }

    #[test]
    fn a_growing_heap_with_too_few_gc_cycles_is_inconclusive() {
        // Leaking with no garbage: HeapAlloc only grows, NextGC (2 x 50 MiB) is never
        // reached, no GC runs, and the live heap reads flat: that says nothing.
        let sim = Sim {
            live: linear(50.0 * MIB, 20.0 * MIB),
            alloc_rate: 0.0,
            started_before: Some(7200),
            ..Sim::default()
        };
        let r = run(
            &sim,
            20 * 60,
            15,
            &WindowConfig::default(),
            &SignalConfig::default(),
        );
        assert!(
            r.last.gc_cycles.is_some_and(|n| n < 5),
            "{:?}",
            r.last.gc_cycles
        );
        let h = &r.last.verdict.get(LeakKind::Heap);
        assert_eq!(h.state, VerdictState::Inconclusive, "{h:#?}");
        assert!(!h.suspected);
        assert!(h.reasons[0].contains("GC cycle"), "{:?}", h.reasons);
    }

    /// The README's example leak (a pure leak: every GC doubles the heap goal, so GCs
    /// grow rarer) watched every 5 s: the live heap moves in a few steps. Whatever the
    /// window holds, a growing heap read at a few GCs is never "no leak".
    #[test]
    fn a_leak_read_at_few_gcs_is_never_no_leak() {
        let sim = Sim {
            live: linear(4.0 * MIB, 1.28 * MIB * 3600.0),
            base: 4.0 * MIB,
            alloc_rate: 0.0,
            started_before: Some(0),
            ..Sim::default()
        };
        for grace in [Some(Duration::ZERO), None] {
            let wcfg = WindowConfig {
                warmup: Duration::from_secs(40),
                startup_grace: grace,
                ..WindowConfig::default()
            };
            for secs in (60..=300).step_by(5) {
                let r = run(&sim, secs, 5, &wcfg, &SignalConfig::default());
                let h = &r.last.verdict.get(LeakKind::Heap);
                assert_ne!(
                    h.state,
                    VerdictState::NoLeak,
                    "grace {grace:?}, {secs} s, GC cycles {:?}: {h:#?}",
                    r.last.gc_cycles
                );
            }
        }
    }

    /// A young service (started with the run) on an 8 MiB base whose live heap is
    /// `live` beside the sawtooth `saw`, the two scenarios of issue 21's leak beside a
    /// sawtooth: the leak at 59 MB/h ([`leak_beside`]) and a cache that fills for 9
    /// minutes and holds ([`cache_beside`]).
    fn young_beside(live: Box<dyn Fn(f64) -> f64>, saw: impl Fn(f64) -> f64 + 'static) -> Sim {
        Sim {
            live,
            base: 8.0 * MIB,
            saw: Box::new(saw),
            alloc_rate: 0.6 * MIB,
            started_before: Some(0),
            ..Sim::default()
        }
    }

    fn leak_beside(saw: impl Fn(f64) -> f64 + 'static) -> Sim {
        young_beside(linear(8.0 * MIB, 59e6), saw)
    }

    /// 7.5 MiB a minute for 9 minutes, then held.
    fn cache_beside(saw: impl Fn(f64) -> f64 + 'static) -> Sim {
        young_beside(
            Box::new(|t: f64| 8.0 * MIB + 7.5 * MIB * (t.min(540.0) / 60.0)),
            saw,
        )
    }

    /// A slow leak (59 MB/h) beside a sawtooth ten times what it leaks a minute, in a
    /// process that started with leakwatch: the whole heap read at each GC carries the
    /// sawtooth's phase, so its growth after the 10-minute grace takes many minutes to
    /// be significant; the leaking site's own bytes only rise, and decide within the
    /// 2 minutes of data the recent-growth test needs (plus a GC's lag). A cache that
    /// fills beside the same sawtooth and stops before the grace ends is never
    /// suspected, its site flat after the grace.
    #[test]
    fn a_leak_beside_a_sawtooth_is_judged_on_its_site_after_the_grace() {
        let saw = |t: f64| 10.0 * MIB * ((t % 16.0) / 16.0);
        let leak = leak_beside(saw);
        let cache = cache_beside(saw);
        let (wcfg, scfg) = (WindowConfig::default(), SignalConfig::default());
        let first = |r: &crate::analysis::sim::Run| {
            r.verdicts
                .iter()
                .find(|(_, v)| v[LeakKind::Heap])
                .map(|(sec, _)| *sec)
        };
        let r = run(&leak, 20 * 60, 15, &wcfg, &scfg);
        let at = first(&r);
        assert!(
            at.is_some_and(|s| s <= 14 * 60),
            "suspected at {at:?} s: {:#?}",
            r.last.verdict.get(LeakKind::Heap)
        );
        let h = r.last.verdict.get(LeakKind::Heap);
        assert!(h.suspected, "{h:#?}");
        let r = run(&cache, 25 * 60, 15, &wcfg, &scfg);
        assert_eq!(first(&r), None, "{:#?}", r.last.verdict.get(LeakKind::Heap));
        assert_ne!(
            r.last.verdict.get(LeakKind::Heap).state,
            VerdictState::Suspected
        );
    }

    /// A slow leak beside a sawtooth twice the window's growth, read at each GC at a
    /// random phase: the whole heap's readings are not one-way for most of the run
    /// (monotonicity under 0.6), while the leaking site's own readings only rise, so
    /// its shape stands for the heap's. A cache filling for 9 minutes beside the same
    /// sawtooth is never suspected: its site is flat in the window's second half.
    #[test]
    fn a_leak_beside_a_random_sawtooth_is_one_way_on_its_site() {
        let (wcfg, scfg) = (WindowConfig::default(), SignalConfig::default());
        let mut by_site = 0;
        for seed in 0..6u64 {
            let saw = move |t: f64| 20.0 * MIB * (0.5 + 0.5 * noise(t as u64 / 4 + seed * 1000));
            let leak = leak_beside(saw);
            let r = run(&leak, 20 * 60, 15, &wcfg, &scfg);
            let at = r
                .verdicts
                .iter()
                .find(|(_, v)| v[LeakKind::Heap])
                .map(|(sec, _)| *sec);
            let h = r.last.verdict.get(LeakKind::Heap);
            assert!(
                at.is_some_and(|s| s <= 17 * 60) && h.suspected,
                "seed {seed}: suspected at {at:?} s: {h:#?}"
            );
            if h.reasons
                .iter()
                .any(|r| r.contains("one-way on its top growing site instead: main.newSession"))
            {
                by_site += 1;
            }
            let cache = cache_beside(saw);
            let r = run(&cache, 25 * 60, 15, &wcfg, &scfg);
            assert!(
                r.verdicts.iter().all(|(_, v)| !v[LeakKind::Heap]),
                "seed {seed}: the cache was suspected: {:#?}",
                r.last.verdict.get(LeakKind::Heap)
            );
        }
        // Without the site's shape none of these is suspected within 20 minutes (the
        // whole heap's monotonicity stays at 0.55-0.59).
        assert!(by_site >= 4, "the site's shape decided {by_site} of 6");
    }

    /// After the start-up grace, the heap profile's readings count from the second GC
    /// (a profile can be two GC cycles old), or from the first profile read right after
    /// a GC leakwatch asked for, which is of its moment.
    #[test]
    fn readings_after_the_grace_start_at_the_first_current_profile() {
        // Grace 60 s from the process's start; a scrape every 15 s; the service's own
        // GC at 30 s and 120 s, leakwatch's at 90 s (case: which samples are current,
        // where the readings after the grace start).
        let gcs_by = |sec: u64| [30, 90, 120].iter().filter(|g| **g <= sec).count() as u64;
        let cases: [(&str, &[u64], f64); 3] = [
            ("none current: the second GC after the grace", &[], 120.0),
            ("the forced GC at 90 s", &[90], 90.0),
            ("current before the grace does not count", &[45], 120.0),
        ];
        for (case, current, want) in cases {
            let wcfg = WindowConfig {
                warmup: Duration::from_secs(60),
                startup_grace: Some(Duration::from_secs(60)),
                ..WindowConfig::default()
            };
            let mut window = Window::new(&wcfg);
            for sec in (0..=150).step_by(15) {
                let heap = crate::pprof::HeapProfile::from_samples(
                    1,
                    [(
                        &["main.leak"][..],
                        crate::pprof::HeapValues {
                            inuse_bytes: (10 + sec) << 20,
                            inuse_objects: 1,
                            alloc_bytes: (10 + sec) << 20,
                            alloc_objects: 1,
                        },
                    )],
                )
                .unwrap();
                window.observe(Observation {
                    pid: Some(7),
                    process_start: Some(at(0)),
                    memstats: Some(crate::pprof::memstats::MemStats {
                        num_gc: Some(gcs_by(sec)),
                        heap_alloc: Some((20 + sec) << 20),
                        ..crate::pprof::memstats::MemStats::default()
                    }),
                    heap: Some(Arc::new(heap)),
                    heap_current: current.contains(&sec),
                    ..Observation::at(at(sec))
                });
            }
            let g = grace(&window);
            assert_eq!(g.end_x, 60.0, "{case}");
            assert_eq!(profile_from_x(&window, &g), want, "{case}");
        }
    }

    /// No limit anywhere: the host's memory, against the process's own RSS. The working
    /// set of an unlimited cgroup the process shares (a login session, a CI job) grows
    /// with the other processes in it and says nothing about this one.
    #[test]
    fn host_limit_is_measured_with_the_process_rss_not_a_shared_cgroup() {
        use crate::analysis::window::ContainerObservation;
        // (RSS growth per minute, working-set growth per minute, time to OOM expected)
        let cases = [(0.0, 200.0 * MIB, false), (60.0 * MIB, 0.0, true)];
        for (rss_per_min, ws_per_min, want) in cases {
            let mut window = Window::new(&WindowConfig::default());
            for k in 0..40u64 {
                let m = k as f64 / 4.0;
                window.observe(Observation {
                    pid: Some(42),
                    container: Some(ContainerObservation {
                        usage: None,
                        working_set: Some((2048.0 * MIB + ws_per_min * m) as u64),
                        limit: None,
                    }),
                    rss: Some((100.0 * MIB + rss_per_min * m) as u64),
                    host_available: Some(8 << 30),
                    ..Observation::at(at(k * 15))
                });
            }
            let s = compute(&window, &SignalConfig::default());
            assert_eq!(s.memory_limit.map(|l| l.0), Some(LimitSource::Host));
            assert_eq!(s.memory_usage.map(|u| u.0), Some(UsageSource::Rss));
            assert_eq!(
                s.time_to_oom.is_some(),
                want,
                "RSS +{rss_per_min}/min, working set +{ws_per_min}/min: {:?}",
                s.time_to_oom
            );
        }
    }

    #[test]
    fn time_to_oom_from_the_first_minutes() {
        // 80 MiB/min from 300 MiB into a 1 GiB limit: killed after ~9 minutes. The
        // estimate exists from the sixth sample, long before any leak verdict.
        let sim = Sim {
            rss: linear(300.0 * MIB, 80.0 * 60.0 * MIB),
            limit: Some(1 << 30),
            ..Sim::default()
        };
        let r = run(
            &sim,
            75,
            15,
            &WindowConfig::default(),
            &SignalConfig::default(),
        );
        assert!(!r.last.warm);
        let t = r.last.time_to_oom.expect("time to OOM after 6 samples");
        let want = (1024.0 - 400.0) / 80.0 * 60.0;
        assert!((t.seconds - want).abs() < 0.1 * want, "{t:?} want {want}");
        assert_eq!(r.last.memory_limit, Some((LimitSource::Cgroup, 1 << 30)));
    }

    #[test]
    fn stale_and_explained_verdicts() {
        use crate::analysis::verdict::{Estimate, KindVerdict, explain_by_connections};
        let kv = |k, st| {
            KindVerdict::new(
                k,
                st,
                if st == VerdictState::Suspected {
                    0.8
                } else {
                    0.1
                },
                vec!["r".into()],
            )
        };
        use crate::analysis::verdict::Evidence;
        // Per hour: 180 connections, 360 goroutines (two each), and the live heap.
        let line = |per_hour: f64| {
            Trend::of(
                &(0..20)
                    .map(|i| (i as f64 * 60.0, 1000.0 + per_hour * i as f64 / 60.0))
                    .collect::<Vec<_>>(),
            )
            .unwrap()
        };
        let (conns, goroutines) = (line(180.0), line(360.0));
        let small_heap = line(180.0 * 20_000.0);
        let big_heap = line(500.0 * MIB);
        let suspected_all = || Verdict::from_fn(|k| kv(k, VerdictState::Suspected));
        let one = |trend| KindEvidence {
            estimates: vec![Estimate {
                source: None,
                trend,
                recent: Vec::new(),
            }],
            culprit: None,
            culprit_window: Vec::new(),
            culprit_recent: Vec::new(),
        };
        let heap = |trend| KindEvidence {
            estimates: vec![Estimate {
                source: Some(LiveSource::HeapProfile),
                trend,
                recent: Vec::new(),
            }],
            culprit: None,
            culprit_window: Vec::new(),
            culprit_recent: Vec::new(),
        };
        // Goroutines and a few KiB per connection: both explained, said once.
        let mut v = suspected_all();
        let mut ev = Evidence::default();
        ev.kinds[LeakKind::Goroutine] = one(&goroutines);
        ev.kinds[LeakKind::HttpConnections] = one(&conns);
        ev.kinds[LeakKind::Heap] = heap(&small_heap);
        explain_by_connections(&mut v, &ev);
        for k in [v.get(LeakKind::Goroutine), v.get(LeakKind::Heap)] {
            assert_eq!(k.state, VerdictState::Explained, "{k:#?}");
            assert!(!k.suspected);
            assert_eq!(k.explained_by, Some(LeakKind::HttpConnections));
            assert!(k.reasons[0].contains("HTTP client connection leak"));
        }
        assert!(v.get(LeakKind::HttpConnections).suspected);
        // 500 MiB/h of heap is far more than 180 connections hold: a leak of its own.
        let mut v = suspected_all();
        ev.kinds[LeakKind::Heap] = heap(&big_heap);
        explain_by_connections(&mut v, &ev);
        assert_eq!(v.get(LeakKind::Heap).state, VerdictState::Suspected);
        assert_eq!(v.get(LeakKind::Goroutine).state, VerdictState::Explained);
        // Without a connection leak nothing is explained away.
        let mut w = Verdict::from_fn(|k| match k {
            LeakKind::HttpConnections => kv(k, VerdictState::NoLeak),
            LeakKind::Heap | LeakKind::Goroutine => kv(k, VerdictState::Suspected),
        });
        explain_by_connections(&mut w, &ev);
        assert_eq!(w.get(LeakKind::Goroutine).explained_by, None);
        w.mark_stale("stale: the process is gone");
        for k in w.kinds() {
            assert_eq!(k.state, VerdictState::Stale);
            assert!(!k.suspected);
            assert_eq!(k.score, 0.0);
        }
    }
}
