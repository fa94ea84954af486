//! The per-target analysis window: a bounded ring of compact samples (scalars only),
//! checkpoints of per-site heap bytes and per-function goroutine counts, the GC pauses
//! that ended inside the window, restart detection, and the live-heap baseline.
//!
//! # Memory per target
//!
//! The window never keeps whole profiles. Per target it holds at most:
//! - `max_samples` (default 240) [`Sample`]s of 304 bytes (scalars only). A sample
//!   closer than `span / (max_samples - 2)` to the previous retained one is kept only
//!   as the newest and *replaced* by the next arrival, so the ring spans the whole
//!   `span` at any scrape interval: at 15 s it holds all 121 samples of 30 minutes,
//!   at 1 s one sample every 7.6 s;
//! - [`CHECKPOINTS`] + 2 snapshots of in-use bytes per allocation site, and as many of
//!   goroutine counts per blocking site, each capped at `max_sites` (default 256) sites
//!   of 24 bytes plus an `other` total; a site's name is stored once and shared by
//!   every snapshot that has it;
//! - `max_pauses` (default 1024) GC pauses of 16 bytes;
//! - while the process's start-up grace ends inside the window, up to 3 tracked sites
//!   (the heap's recent culprits) with at most `max_samples` readings of 24 bytes each.
//!
//! Hard bound with the defaults: 73 KB of samples + 16 KB of pauses + 17 KB of tracked
//! site readings + 2 x 6 x 6 KB of snapshot entries + the distinct site names (about
//! 60 bytes each), roughly 200 KB.
//! Measured ([`Window::approx_bytes`], printed by `cargo bench --bench signals`): 89 KiB
//! for a full 30-minute window at 15 s with a 200-site heap profile.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::analysis::culprit::{culprit, sustained_growth_top_n};
use crate::analysis::sites::{Checkpoints, SiteSnapshot, TrackedSites, newest_is_temporary};
use crate::pprof::funcname::{allocation_site, default_alloc_helpers, stack_serves_profiles};
use crate::pprof::memstats::MemStats;
use crate::pprof::{HeapProfile, Name, Sym};
use crate::units::de_duration;

/// Snapshots of per-site data kept besides the newest: one every `span / CHECKPOINTS`,
/// so the oldest retained snapshot is never more than a quarter span (plus one scrape)
/// younger than the window's start.
pub const CHECKPOINTS: usize = 4;

/// `GOMEMLIMIT` when unset is `math.MaxInt64`; anything this large means "no limit".
const NO_GOMEMLIMIT: u64 = 1 << 62;

/// How much history a window keeps and when it counts as warmed up.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// History kept: samples older than the newest minus `span` are dropped.
    #[serde(deserialize_with = "de_duration")]
    pub span: Duration,
    /// Hard cap on samples (memory and the O(n²) cost of Theil-Sen).
    pub max_samples: usize,
    /// Hard cap on sites per per-site snapshot; smaller sites are summed into `other`.
    pub max_sites: usize,
    /// Hard cap on GC pauses remembered.
    pub max_pauses: usize,
    /// Minimum time covered after a (re)start before a leak verdict and the baseline
    /// (capped at two thirds of `span`): 5 minutes, enough samples and GC cycles for
    /// the trend tests to mean something. Time-to-OOM needs no warm-up.
    #[serde(deserialize_with = "de_duration")]
    pub warmup: Duration,
    /// How long after the process starts growth may still be start-up (caches
    /// filling): a leak verdict needs growth that goes on after it. Counted from the
    /// process's start time when `/proc` gives it (a process that has run for hours is
    /// past it at once), else from when leakwatch first saw the process. `None`: twice
    /// `warmup` (10 minutes by default).
    #[serde(default, deserialize_with = "crate::units::de_opt_duration")]
    pub startup_grace: Option<Duration>,
    /// Minimum samples before the window is warm (20 minutes at 15 s is 80).
    pub min_samples: usize,
    /// Function-name prefixes that allocate on behalf of their caller (see
    /// [`crate::pprof::funcname::DEFAULT_ALLOC_HELPERS`]).
    pub alloc_helpers: Vec<String>,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            span: Duration::from_secs(30 * 60),
            max_samples: 240,
            max_sites: 256,
            max_pauses: 1024,
            warmup: Duration::from_secs(5 * 60),
            startup_grace: None,
            min_samples: 8,
            alloc_helpers: default_alloc_helpers(),
        }
    }
}

impl WindowConfig {
    /// The default config with another span (the `window` key of the target config).
    pub fn with_span(span: Duration) -> Self {
        WindowConfig {
            span,
            ..WindowConfig::default()
        }
    }
}

pub use crate::analysis::observation::{
    ContainerObservation, GoroutineObservation, LiveSource, Observation, ObserveOutcome, Sample,
};

/// Where the heap baseline came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaselineSource {
    /// Taken automatically once the window was stable after a (re)start.
    Auto,
    /// Set through the API; survives restarts.
    Manual,
}

/// The live heap a fix is verified against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Baseline {
    pub bytes: u64,
    pub at: SystemTime,
    pub source: BaselineSource,
}

/// One target's window. See the module doc for what it keeps and its memory bound.
#[derive(Debug, Clone)]
pub struct Window {
    cfg: WindowConfig,
    samples: VecDeque<Sample>,
    heap_sites: Checkpoints,
    goroutine_sites: Checkpoints,
    /// The heap's recent culprits and their bytes at each heap profile, kept while the
    /// start-up grace ends inside the window (the recent-growth test reads them after
    /// the grace).
    tracked_sites: TrackedSites,
    /// (PauseEnd Unix ns, PauseNs) of pauses that ended inside the window, oldest first.
    pauses: VecDeque<(u64, u64)>,
    last_pause_end: u64,
    pid: Option<u32>,
    baseline: Option<Baseline>,
    restarts: u64,
    /// When the current process started, if `/proc` said.
    process_start: Option<SystemTime>,
    /// When this window first saw the current process.
    first_seen: Option<SystemTime>,
    /// The host's `MemAvailable` at the newest observation.
    host_available: Option<u64>,
}

/// Whether a cumulative counter went down between two samples.
fn dropped(old: Option<u64>, new: Option<u64>) -> bool {
    matches!((old, new), (Some(o), Some(n)) if n < o)
}

impl Window {
    pub fn new(cfg: &WindowConfig) -> Self {
        let mut cfg = cfg.clone();
        cfg.max_samples = cfg.max_samples.max(3);
        Window {
            cfg,
            samples: VecDeque::new(),
            heap_sites: Checkpoints::default(),
            goroutine_sites: Checkpoints::default(),
            tracked_sites: TrackedSites::default(),
            pauses: VecDeque::new(),
            last_pause_end: 0,
            pid: None,
            baseline: None,
            restarts: 0,
            process_start: None,
            first_seen: None,
            host_available: None,
        }
    }

    pub fn config(&self) -> &WindowConfig {
        &self.cfg
    }

    /// Adds one scrape's observation. A restart clears the window first, so no slope
    /// ever spans two processes.
    pub fn observe(&mut self, obs: Observation) -> ObserveOutcome {
        if self.samples.back().is_some_and(|last| obs.at <= last.at) {
            return ObserveOutcome::Ignored;
        }
        let sample = self.sample_of(&obs);
        let restarted = self.is_restart(&obs, &sample);
        if restarted {
            self.samples.clear();
            self.heap_sites = Checkpoints::default();
            self.goroutine_sites = Checkpoints::default();
            self.tracked_sites.clear();
            self.pauses.clear();
            self.last_pause_end = 0;
            self.restarts += 1;
            self.process_start = None;
            self.first_seen = None;
            if self
                .baseline
                .is_some_and(|b| b.source == BaselineSource::Auto)
            {
                self.baseline = None;
            }
        }
        if obs.pid.is_some() {
            self.pid = obs.pid;
        }
        if obs.process_start.is_some() {
            self.process_start = obs.process_start;
        }
        self.first_seen.get_or_insert(obs.at);
        self.host_available = obs.host_available;
        self.push_sample(sample);
        let start = self.start();
        let spacing = self.cfg.span / CHECKPOINTS as u32;
        if let Some(heap) = &obs.heap {
            let snap = self.heap_snapshot(obs.at, heap);
            self.heap_sites.push(snap, spacing);
        }
        if let Some(g) = &obs.goroutines {
            let values: HashMap<&str, u64> = g.by_function.iter().fold(
                HashMap::with_capacity(g.by_function.len()),
                |mut m, (f, n)| {
                    let e = m.entry(f.as_str()).or_insert(0u64);
                    *e = e.saturating_add(*n);
                    m
                },
            );
            let snap = SiteSnapshot::build(
                obs.at,
                values.into_iter().collect(),
                |f| f,
                self.cfg.max_sites,
                self.goroutine_sites.previous_names(),
            );
            self.goroutine_sites.push(snap, spacing);
        }
        self.heap_sites.evict_before(start);
        self.goroutine_sites.evict_before(start);
        if obs.heap.is_some() {
            self.track_culprit(start);
        }
        if let Some(ms) = &obs.memstats {
            self.record_pauses(ms);
        }
        self.take_auto_baseline();
        if restarted {
            ObserveOutcome::Restarted
        } else {
            ObserveOutcome::Appended
        }
    }

    fn sample_of(&self, obs: &Observation) -> Sample {
        let ms = obs.memstats.as_ref();
        let f = |get: fn(&MemStats) -> Option<u64>| ms.and_then(get);
        let totals = obs.heap.as_ref().map(|h| h.totals());
        let gogc = obs.gogc.unwrap_or(100);
        let next_gc = f(|m| m.next_gc);
        // NextGC = live * (1 + GOGC/100) at the end of each GC (above the 4 MiB floor).
        let nextgc_live = match next_gc {
            Some(n) if gogc >= 0 => Some((n as f64 / (1.0 + gogc as f64 / 100.0)) as u64),
            _ => None,
        };
        Sample {
            at: obs.at,
            heap_alloc: f(|m| m.heap_alloc),
            next_gc,
            heap_objects: f(|m| m.heap_objects),
            total_alloc: f(|m| m.total_alloc),
            mallocs: f(|m| m.mallocs),
            frees: f(|m| m.frees),
            num_gc: f(|m| m.num_gc),
            go_sys: f(|m| m.sys),
            profile_inuse: totals.map(|t| t.inuse_bytes),
            profile_alloc: totals.map(|t| t.alloc_bytes),
            profile_current: obs.heap_current && totals.is_some(),
            nextgc_live,
            goroutines: obs.goroutines.as_ref().map(|g| g.total),
            http_client_connections: obs.goroutines.as_ref().map(|g| g.http_client_connections),
            working_set: obs.container.and_then(|c| c.working_set),
            rss: obs.rss,
            cgroup_limit: obs.container.and_then(|c| c.limit),
            gomemlimit: obs.gomemlimit.filter(|&l| l > 0 && l < NO_GOMEMLIMIT),
        }
    }

    /// A new PID, or any cumulative counter lower than in the newest sample that has it.
    fn is_restart(&self, obs: &Observation, new: &Sample) -> bool {
        if matches!((self.pid, obs.pid), (Some(a), Some(b)) if a != b) {
            return true;
        }
        let last_with = |get: fn(&Sample) -> Option<u64>| self.samples.iter().rev().find_map(get);
        let counters: [fn(&Sample) -> Option<u64>; 5] = [
            |s| s.total_alloc,
            |s| s.mallocs,
            |s| s.frees,
            |s| s.num_gc,
            |s| s.profile_alloc,
        ];
        counters
            .iter()
            .any(|get| dropped(last_with(*get), get(new)))
    }

    fn push_sample(&mut self, sample: Sample) {
        // Retained samples are at least `spacing` apart, plus the newest: at most
        // span / spacing + 2 = max_samples.
        let slots = u32::try_from(self.cfg.max_samples - 2)
            .unwrap_or(u32::MAX)
            .max(1);
        let spacing = self.cfg.span / slots;
        if newest_is_temporary(self.samples.iter().rev().map(|s| s.at), spacing) {
            self.samples.pop_back();
        }
        self.samples.push_back(sample);
        let start = sample.at.checked_sub(self.cfg.span).unwrap_or(UNIX_EPOCH);
        while self.samples.front().is_some_and(|s| s.at < start) {
            self.samples.pop_front();
        }
        while self.samples.len() > self.cfg.max_samples {
            self.samples.pop_front();
        }
    }

    /// In-use bytes per allocation site. Sites are summed by their frame in the profile's
    /// table (a word, sorted and merged in place: a profile of a million distinct stacks
    /// costs 16 MB here, no name is copied) and only the kept sites are named.
    fn heap_snapshot(&self, at: SystemTime, heap: &HeapProfile) -> SiteSnapshot {
        // (site, bytes): 16 bytes a sample.
        let mut values: Vec<(Sym, u64)> = Vec::with_capacity(heap.samples.len());
        values.extend(heap.samples.iter().filter_map(|s| {
            let stack = heap.stack(s);
            // Serving a profile (to leakwatch, among others) is the cost of being
            // watched, not the service's growth: left out of the culprit rankings.
            if s.inuse_bytes == 0 || stack_serves_profiles(stack.names()) {
                return None;
            }
            let site = allocation_site(stack.names(), &self.cfg.alloc_helpers)
                .and_then(|i| stack.syms().get(i).copied());
            Some((site.unwrap_or(Sym::NONE), s.inuse_bytes))
        }));
        values.sort_unstable_by_key(|(site, _)| site.as_u64());
        values.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = kept.1.saturating_add(later.1);
            }
            same
        });
        // A stack with no frame at all (a record with no PCs) is named "unknown".
        let name = |site: Sym| match site {
            Sym::NONE => Name::Func("unknown"),
            s => heap.stacks.name(s),
        };
        SiteSnapshot::build(
            at,
            values,
            name,
            self.cfg.max_sites,
            self.heap_sites.previous_names(),
        )
    }

    /// Follows the heap's culprits (as the signals name them: the top *sustained*
    /// grower across the checkpoints) in the newest snapshot while the start-up grace
    /// ends inside the window; drops them once the grace is older than the window.
    fn track_culprit(&mut self, start: SystemTime) {
        if self.grace_end().is_none_or(|g| g <= start) {
            self.tracked_sites.clear();
            return;
        }
        let snapshots = &self.heap_sites.snapshots;
        let (Some(old), Some(new)) = (snapshots.front(), snapshots.back()) else {
            return;
        };
        let snaps: Vec<&SiteSnapshot> = snapshots.iter().collect();
        let top = sustained_growth_top_n(old, new, &snaps, 1);
        let name = culprit(&top).map(|(n, _)| n);
        self.tracked_sites
            .follow(name, new, start, self.cfg.max_samples);
    }

    fn record_pauses(&mut self, ms: &MemStats) {
        let mut new: Vec<(u64, u64)> = ms
            .pause_end
            .iter()
            .zip(ms.pause_ns.iter())
            .filter(|(end, _)| **end != 0 && **end > self.last_pause_end)
            .map(|(end, ns)| (*end, *ns))
            .collect();
        new.sort_unstable();
        if let Some(&(end, _)) = new.last() {
            self.last_pause_end = end;
        }
        self.pauses.extend(new);
        let start_ns = crate::units::unix_ns(self.start());
        while self.pauses.front().is_some_and(|(end, _)| *end < start_ns) {
            self.pauses.pop_front();
        }
        while self.pauses.len() > self.cfg.max_pauses {
            self.pauses.pop_front();
        }
    }

    /// "Stable" (for the automatic baseline): the window is warm (see [`Window::is_warm`])
    /// and, when NumGC is known, at least two GC cycles completed inside it, so the
    /// live heap has been measured after GC more than once since the start. The
    /// baseline is then the median live heap over the window.
    fn take_auto_baseline(&mut self) {
        if self.baseline.is_some() || !self.is_warm() {
            return;
        }
        let gcs = match (
            self.samples.iter().find_map(|s| s.num_gc),
            self.samples.iter().rev().find_map(|s| s.num_gc),
        ) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        if gcs.is_some_and(|g| g < 2) {
            return;
        }
        let mut live: Vec<f64> = self
            .live_series()
            .into_iter()
            .map(|(_, v)| v as f64)
            .collect();
        if let (Some(m), Some(last)) = (crate::analysis::slope::median(&mut live), self.newest()) {
            self.baseline = Some(Baseline {
                bytes: m as u64,
                at: last.at,
                source: BaselineSource::Auto,
            });
        }
    }

    /// The live-heap series: heap-profile in-use bytes when the newest sample has a
    /// profile, else NextGC-derived; only samples that have the chosen estimator, so
    /// two estimators are never mixed in one series.
    pub fn live_series(&self) -> Vec<(SystemTime, u64)> {
        let source = self
            .newest()
            .and_then(LiveSource::of)
            .unwrap_or(LiveSource::NextGc);
        self.samples
            .iter()
            .filter_map(|s| source.get(s).map(|v| (s.at, v)))
            .collect()
    }

    /// Sets (or with `None` clears) the baseline by hand; a manual baseline survives
    /// restarts. Clearing lets the next stable window take an automatic one.
    pub fn set_baseline(&mut self, bytes: Option<u64>, at: SystemTime) {
        self.baseline = bytes.map(|bytes| Baseline {
            bytes,
            at,
            source: BaselineSource::Manual,
        });
    }

    pub fn baseline(&self) -> Option<Baseline> {
        self.baseline
    }

    /// Samples in the window.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Time from the oldest to the newest sample.
    pub fn span(&self) -> Duration {
        match (self.samples.front(), self.samples.back()) {
            (Some(a), Some(b)) => b.at.duration_since(a.at).unwrap_or_default(),
            _ => Duration::ZERO,
        }
    }

    /// The warm-up in force: `warmup`, at most two thirds of `span` (so a short
    /// window still warms up).
    pub fn warmup(&self) -> Duration {
        self.cfg.warmup.min(self.cfg.span.saturating_mul(2) / 3)
    }

    /// The start-up grace in force (see [`WindowConfig::startup_grace`]).
    pub fn startup_grace(&self) -> Duration {
        self.cfg
            .startup_grace
            .unwrap_or_else(|| self.warmup().saturating_mul(2))
    }

    /// When growth stops counting as start-up: the process's start (else when this
    /// window first saw it) plus [`Window::startup_grace`].
    pub fn grace_end(&self) -> Option<SystemTime> {
        self.process_start
            .or(self.first_seen)?
            .checked_add(self.startup_grace())
    }

    /// When the current process started, if `/proc` said.
    pub fn process_start(&self) -> Option<SystemTime> {
        self.process_start
    }

    /// The host's `MemAvailable` at the newest observation.
    pub fn host_available(&self) -> Option<u64> {
        self.host_available
    }

    /// GC cycles that completed inside the window (NumGC newest - oldest), when the
    /// window has MemStats.
    pub fn gc_cycles(&self) -> Option<u64> {
        let first = self.samples.iter().find_map(|s| s.num_gc)?;
        let last = self.samples.iter().rev().find_map(|s| s.num_gc)?;
        Some(last.saturating_sub(first))
    }

    /// Warm: at least [`Window::warmup`] covered and `min_samples` samples held.
    pub fn is_warm(&self) -> bool {
        self.span() >= self.warmup() && self.len() >= self.cfg.min_samples.max(2)
    }

    /// The oldest sample's time (the window's start).
    pub fn start(&self) -> SystemTime {
        self.samples.front().map_or(UNIX_EPOCH, |s| s.at)
    }

    pub fn samples(&self) -> &VecDeque<Sample> {
        &self.samples
    }

    pub fn newest(&self) -> Option<&Sample> {
        self.samples.back()
    }

    /// The oldest and the newest per-site heap snapshot (equal when there is one).
    pub fn heap_sites(&self) -> Option<(&SiteSnapshot, &SiteSnapshot)> {
        Some((
            self.heap_sites.snapshots.front()?,
            self.heap_sites.snapshots.back()?,
        ))
    }

    /// The heap's recent culprits and their bytes at each heap profile, while the
    /// start-up grace ends inside the window.
    pub fn tracked_sites(&self) -> &TrackedSites {
        &self.tracked_sites
    }

    /// Every per-site heap snapshot kept (checkpoints, oldest first, then the newest).
    pub fn heap_site_snapshots(&self) -> impl ExactSizeIterator<Item = &SiteSnapshot> {
        self.heap_sites.snapshots.iter()
    }

    /// The oldest and the newest per-function goroutine snapshot.
    pub fn goroutine_sites(&self) -> Option<(&SiteSnapshot, &SiteSnapshot)> {
        Some((
            self.goroutine_sites.snapshots.front()?,
            self.goroutine_sites.snapshots.back()?,
        ))
    }

    /// GC pause durations (ns) of pauses that ended inside the window.
    pub fn pauses_ns(&self) -> impl Iterator<Item = u64> + '_ {
        self.pauses.iter().map(|(_, ns)| *ns)
    }

    /// Restarts seen since this window was created.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Approximate heap bytes held by this window.
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.samples.capacity() * std::mem::size_of::<Sample>()
            + self.heap_sites.approx_bytes()
            + self.goroutine_sites.approx_bytes()
            + self.tracked_sites.approx_bytes()
            + self.pauses.capacity() * std::mem::size_of::<(u64, u64)>()
            + self
                .cfg
                .alloc_helpers
                .iter()
                .map(|h| h.capacity() + std::mem::size_of::<String>())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    #[test]
    fn profile_serving_allocations_are_not_ranked() {
        let mut w = Window::new(&WindowConfig::default());
        let values = |b: u64| HeapValues {
            inuse_bytes: b,
            inuse_objects: 1,
            alloc_bytes: b,
            alloc_objects: 1,
        };
        let samples = [
            (
                &[
                    "compress/flate.NewWriter",
                    "compress/gzip.(*Writer).Write",
                    "runtime/pprof.(*profileBuilder).flush",
                    "net/http/pprof.handler.ServeHTTP",
                ][..],
                values(900_000),
            ),
            (&["main.newSession", "main.main"][..], values(1000)),
        ];
        let heap = Arc::new(HeapProfile::from_samples(524288, samples).unwrap());
        let mut o = obs(0, Some(1), None);
        o.heap = Some(heap);
        w.observe(o);
        let (_, newest) = w.heap_sites().unwrap();
        assert_eq!(newest.get("main.newSession"), Some(1000));
        assert_eq!(newest.total(), 1000, "{newest:?}");
    }

    use super::*;
    use crate::pprof::HeapValues;

    fn t(sec: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + sec)
    }

    fn ms(total_alloc: u64, heap_alloc: u64, num_gc: u64) -> MemStats {
        MemStats {
            total_alloc: Some(total_alloc),
            heap_alloc: Some(heap_alloc),
            mallocs: Some(total_alloc / 64),
            frees: Some((total_alloc - heap_alloc) / 64),
            num_gc: Some(num_gc),
            next_gc: Some(2 * heap_alloc),
            ..MemStats::default()
        }
    }

    fn obs(sec: u64, pid: Option<u32>, m: Option<MemStats>) -> Observation {
        Observation {
            pid,
            memstats: m,
            ..Observation::at(t(sec))
        }
    }

    fn profile(sites: &[(&str, u64)]) -> Arc<HeapProfile> {
        let samples = sites.iter().map(|(f, b)| {
            let values = HeapValues {
                inuse_bytes: *b,
                inuse_objects: 1,
                alloc_bytes: *b,
                alloc_objects: 1,
            };
            (["runtime.mallocgc", f, "main.main"], values)
        });
        Arc::new(HeapProfile::from_samples(524288, samples).unwrap())
    }

    #[test]
    fn restarts_start_a_new_window() {
        struct Case {
            name: &'static str,
            second: Observation,
            want: ObserveOutcome,
            len_after: usize,
        }
        let cases = [
            Case {
                name: "counters grow, same pid",
                second: obs(15, Some(7), Some(ms(2000, 600, 3))),
                want: ObserveOutcome::Appended,
                len_after: 2,
            },
            Case {
                name: "TotalAlloc and NumGC drop, same pid (pid namespace reuse)",
                second: obs(15, Some(7), Some(ms(100, 90, 0))),
                want: ObserveOutcome::Restarted,
                len_after: 1,
            },
            Case {
                name: "new pid, counters still larger",
                second: obs(15, Some(8), Some(ms(5000, 600, 9))),
                want: ObserveOutcome::Restarted,
                len_after: 1,
            },
            Case {
                name: "pid unknown this time, counters grow",
                second: obs(15, None, Some(ms(2000, 600, 3))),
                want: ObserveOutcome::Appended,
                len_after: 2,
            },
            Case {
                name: "no memstats this time: nothing to compare, kept",
                second: obs(15, Some(7), None),
                want: ObserveOutcome::Appended,
                len_after: 2,
            },
            Case {
                name: "same time again",
                second: obs(0, Some(7), Some(ms(2000, 600, 3))),
                want: ObserveOutcome::Ignored,
                len_after: 1,
            },
            Case {
                name: "clock stepped back",
                second: Observation {
                    at: t(0) - Duration::from_secs(5),
                    ..obs(0, Some(7), None)
                },
                want: ObserveOutcome::Ignored,
                len_after: 1,
            },
        ];
        for c in cases {
            let mut w = Window::new(&WindowConfig::default());
            assert_eq!(
                w.observe(obs(0, Some(7), Some(ms(1000, 500, 2)))),
                ObserveOutcome::Appended
            );
            assert_eq!(w.observe(c.second), c.want, "{}", c.name);
            assert_eq!(w.len(), c.len_after, "{}", c.name);
            assert_eq!(
                w.restarts(),
                u64::from(c.want == ObserveOutcome::Restarted),
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn heap_profile_alloc_drop_is_a_restart() {
        let mut w = Window::new(&WindowConfig::default());
        let with_heap = |sec, bytes| Observation {
            heap: Some(profile(&[("main.f", bytes)])),
            ..Observation::at(t(sec))
        };
        assert_eq!(w.observe(with_heap(0, 5000)), ObserveOutcome::Appended);
        assert_eq!(w.observe(with_heap(15, 6000)), ObserveOutcome::Appended);
        assert_eq!(w.observe(with_heap(30, 100)), ObserveOutcome::Restarted);
        assert_eq!(w.len(), 1);
        let (old, new) = w.heap_sites().unwrap();
        assert_eq!(
            (old.get("main.f"), new.get("main.f")),
            (Some(100), Some(100))
        );
    }

    #[test]
    fn window_is_bounded_in_time_and_count() {
        let cfg = WindowConfig {
            span: Duration::from_secs(600),
            max_samples: 20,
            ..WindowConfig::default()
        };
        let mut w = Window::new(&cfg);
        // One sample a second for 30 minutes: 1,800 observations.
        for sec in 0..1800 {
            w.observe(obs(sec, Some(1), Some(ms(1000 + sec * 10, 500, sec / 10))));
        }
        // Retained samples are >= 600 / 18 s apart: 18 of them cover the span.
        assert!(w.len() <= 20, "len {}", w.len());
        assert!(w.len() >= 17, "len {}", w.len());
        assert!(w.span() <= Duration::from_secs(600), "{:?}", w.span());
        assert!(w.span() >= Duration::from_secs(560), "{:?}", w.span());
        // The newest observation is always the newest sample.
        assert_eq!(w.newest().unwrap().at, t(1799));
        assert_eq!(w.newest().unwrap().total_alloc, Some(1000 + 1799 * 10));
    }

    #[test]
    fn site_checkpoints_anchor_near_the_window_start() {
        let cfg = WindowConfig {
            span: Duration::from_secs(1800),
            ..WindowConfig::default()
        };
        let mut w = Window::new(&cfg);
        for i in 0..=240u64 {
            let sec = i * 15;
            w.observe(Observation {
                heap: Some(profile(&[
                    ("main.leak", 1000 * i + 1),
                    ("main.steady", 5000),
                ])),
                ..Observation::at(t(sec))
            });
        }
        let (old, new) = w.heap_sites().unwrap();
        let start = w.start();
        assert_eq!(new.at, t(3600));
        // The anchor lies inside the window, at most a quarter span after its start.
        assert!(old.at >= start, "anchor before window start");
        let lag = old.at.duration_since(start).unwrap();
        assert!(lag <= Duration::from_secs(450 + 15), "anchor lag {lag:?}");
        assert_eq!(new.get("main.leak"), Some(240_001));
        assert_eq!(new.get("main.steady"), Some(5000));
        assert!(w.heap_sites.snapshots.len() <= CHECKPOINTS + 2);
        // Site names are shared between snapshots, not copied.
        let a = old
            .entries
            .iter()
            .find(|(n, _)| n.as_ref() == "main.leak")
            .unwrap();
        let b = new
            .entries
            .iter()
            .find(|(n, _)| n.as_ref() == "main.leak")
            .unwrap();
        assert!(Arc::ptr_eq(&a.0, &b.0));
    }

    #[test]
    fn sites_beyond_the_cap_go_to_other() {
        let cfg = WindowConfig {
            max_sites: 2,
            ..WindowConfig::default()
        };
        let mut w = Window::new(&cfg);
        w.observe(Observation {
            heap: Some(profile(&[
                ("main.a", 300),
                ("main.b", 200),
                ("main.c", 100),
                ("main.d", 50),
            ])),
            ..Observation::at(t(0))
        });
        let (_, snap) = w.heap_sites().unwrap();
        assert_eq!(snap.entries.len(), 2);
        assert_eq!(
            (snap.get("main.a"), snap.get("main.b")),
            (Some(300), Some(200))
        );
        assert_eq!(snap.other, 150);
        assert_eq!(snap.total(), 650);
    }

    #[test]
    fn pauses_inside_the_window_only() {
        let mut w = Window::new(&WindowConfig::default());
        let ns = |sec: u64| (1_800_000_000 + sec) * 1_000_000_000;
        let mut m = ms(1000, 500, 3);
        // Ring slots: one pause before the window's first sample, two inside, unused zeros.
        m.pause_end = vec![ns(0) - 1, ns(0) + 5, 0, 0];
        m.pause_ns = vec![9_000_000, 1_000, 0, 0];
        w.observe(Observation {
            memstats: Some(m.clone()),
            ..Observation::at(t(10))
        });
        // The window starts at t(10): the pause that ended at t(0)+5ns is before it.
        assert_eq!(w.pauses_ns().count(), 0);
        m.num_gc = Some(5);
        m.pause_end = vec![ns(0) - 1, ns(0) + 5, ns(12), ns(20)];
        m.pause_ns = vec![9_000_000, 1_000, 2_000, 3_000];
        w.observe(Observation {
            memstats: Some(m.clone()),
            ..Observation::at(t(25))
        });
        assert_eq!(w.pauses_ns().collect::<Vec<_>>(), vec![2_000, 3_000]);
        // Seen pauses are not counted twice.
        w.observe(Observation {
            memstats: Some(m),
            ..Observation::at(t(40))
        });
        assert_eq!(w.pauses_ns().count(), 2);
    }

    #[test]
    fn baseline_auto_after_stable_manual_survives_restart() {
        let cfg = WindowConfig {
            warmup: Duration::from_secs(60),
            min_samples: 4,
            ..WindowConfig::default()
        };
        let mut w = Window::new(&cfg);
        let live = [100u64, 120, 110, 130, 115, 125, 118];
        for (i, l) in live.iter().enumerate() {
            let i = i as u64;
            let m = MemStats {
                next_gc: Some(2 * l),
                num_gc: Some(i / 2),
                total_alloc: Some(1000 * (i + 1)),
                ..MemStats::default()
            };
            w.observe(Observation {
                pid: Some(1),
                memstats: Some(m),
                ..Observation::at(t(i * 15))
            });
            // Warm from 60 s (i = 4) but only 2 GCs in the window from i = 4 (num_gc 0 -> 2).
            if i < 4 {
                assert_eq!(w.baseline(), None, "sample {i}");
            }
        }
        // Taken at i = 4: median of 100,120,110,130,115 = 115.
        let b = w.baseline().unwrap();
        assert_eq!(
            (b.bytes, b.source, b.at),
            (115, BaselineSource::Auto, t(60))
        );
        // A restart drops the automatic baseline ...
        w.observe(obs(200, Some(2), None));
        assert_eq!(w.baseline(), None);
        // ... but not a manual one.
        w.set_baseline(Some(4242), t(201));
        w.observe(obs(215, Some(3), None));
        assert_eq!(
            w.baseline().map(|b| (b.bytes, b.source)),
            Some((4242, BaselineSource::Manual))
        );
    }

    #[test]
    fn extreme_configs_do_not_panic() {
        let cfgs = [
            WindowConfig {
                span: Duration::MAX,
                max_samples: usize::MAX,
                max_sites: 0,
                max_pauses: 0,
                warmup: Duration::MAX,
                startup_grace: Some(Duration::MAX),
                min_samples: usize::MAX,
                alloc_helpers: Vec::new(),
            },
            WindowConfig {
                span: Duration::ZERO,
                max_samples: 0,
                ..WindowConfig::default()
            },
        ];
        for cfg in cfgs {
            let mut w = Window::new(&cfg);
            for sec in 0..5 {
                let mut o = obs(sec, Some(1), Some(ms(1000 + sec, 10, sec)));
                o.heap = Some(profile(&[("main.f", 10 * sec + 1)]));
                w.observe(o);
            }
            assert!(!w.is_empty());
            assert!(!w.is_warm() || cfg.span == Duration::ZERO);
            let _ = crate::analysis::signals::compute(&w, &Default::default());
        }
    }

    #[test]
    fn sample_size_matches_the_documented_bound() {
        // The module doc's memory figures assume this size (Linux, 64-bit).
        assert!(
            std::mem::size_of::<Sample>() <= 304,
            "{}",
            std::mem::size_of::<Sample>()
        );
    }

    #[test]
    fn gogc_and_gomemlimit() {
        let cases = [
            (None, Some(200), Some(100)),
            (Some(100), Some(200), Some(100)),
            (Some(50), Some(300), Some(200)),
            (Some(-1), Some(300), None),
            (None, None, None),
        ];
        for (gogc, next_gc, want) in cases {
            let mut w = Window::new(&WindowConfig::default());
            w.observe(Observation {
                gogc,
                memstats: Some(MemStats {
                    next_gc,
                    ..MemStats::default()
                }),
                gomemlimit: Some(i64::MAX as u64),
                ..Observation::at(t(0))
            });
            let s = w.newest().unwrap();
            assert_eq!(s.nextgc_live, want, "gogc {gogc:?} next_gc {next_gc:?}");
            assert_eq!(s.gomemlimit, None, "math.MaxInt64 means no limit");
        }
    }
}
