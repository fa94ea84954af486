//! One target's record: its config, its latest state (what the last tick fetched,
//! parsed, read and analysed) and the accessors shared by the HTTP handlers, the
//! kernel-log follower and the metrics collector. State sits behind a short-lived
//! mutex: the loop writes, readers copy out.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use super::endpoint::MemStatsSource;
use super::goroutines::GoroutineSummary;
use super::schedule::{BudgetView, Plan, Schedule};
use crate::analysis::headline::Headline;
use crate::analysis::signals::{SignalConfig, Signals};
use crate::analysis::window::{Window, WindowConfig};
use crate::config::{SystemConfig, TargetConfig};
use crate::dump::MemoryPressure;
use crate::error::FetchReason;
use crate::pprof::memstats::MemStats;
use crate::pprof::{HeapProfile, HeapTotals};
use crate::system::{CgroupLocation, CgroupMemory, Listener, ProcessMemory, ProcessSelector};

/// Time to OOM under which memory is "about to run out" and the pre-OOM dumps are
/// taken (as is usage at 90% of the limit).
pub const PRE_OOM_TIME: Duration = Duration::from_secs(5 * 60);

/// Goroutines the Go runtime proved leaked (`goroutineleak` profile).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeakedGoroutines {
    pub total: u64,
    /// Leaking function -> count, largest first.
    pub by_function: Vec<(String, u64)>,
}

/// What the last read of the target's process and cgroup found.
#[derive(Debug, Default)]
pub struct SystemStatus {
    pub pid: Option<u32>,
    pub location: Option<CgroupLocation>,
    /// `None` when the target names no process or cgroup.
    pub cgroup: Option<std::result::Result<CgroupMemory, String>>,
    pub process: Option<std::result::Result<ProcessMemory, String>>,
    /// When a loopback target's process was last looked for (or checked again).
    pub listener_checked: Option<std::time::Instant>,
}

/// OOM kills of this target seen in the kernel log.
#[derive(Debug, Default, Clone)]
pub struct OomStatus {
    pub kills: u64,
    pub last_unix_seconds: Option<f64>,
    pub last_anon_rss_bytes: Option<u64>,
    /// Unix times of kills that came after one-way growth (usage confidently heading
    /// for the limit, or a live heap growing one way): evidence of a leak that outlives
    /// the process it killed.
    pub after_growth: Vec<f64>,
}

/// The mutable part of a target, replaced piece by piece by each scrape.
#[derive(Debug)]
pub struct Status {
    pub up: bool,
    pub scrapes: u64,
    pub last_scrape: Option<SystemTime>,
    pub last_success: Option<SystemTime>,
    pub last_error: Option<String>,
    /// endpoint -> seconds of the last request.
    pub durations: BTreeMap<&'static str, f64>,
    /// (endpoint, reason) -> count since start.
    pub errors: BTreeMap<(&'static str, FetchReason), u64>,
    pub memstats: Option<(MemStats, MemStatsSource)>,
    pub heap: Option<Arc<HeapProfile>>,
    /// `heap` was read right after a GC leakwatch asked for (`gc=1`).
    pub heap_current: bool,
    pub heap_totals: Option<HeapTotals>,
    pub goroutines: Option<GoroutineSummary>,
    pub system: SystemStatus,
    pub oom: OomStatus,
    pub window: Window,
    pub signals: Option<Signals>,
    pub goroutineleak_available: Option<bool>,
    pub leaked: Option<LeakedGoroutines>,
    /// The first leaked count seen since the process (re)started.
    pub leaked_first: Option<u64>,
}

impl Status {
    /// What the target's state reads as, in every view ([`Headline::decide`]).
    pub fn headline(&self) -> Headline {
        Headline::decide(
            self.signals.as_ref(),
            self.last_success.is_some(),
            &self.window,
        )
    }

    fn new(window: Window) -> Self {
        Status {
            up: false,
            scrapes: 0,
            last_scrape: None,
            last_success: None,
            last_error: None,
            durations: BTreeMap::new(),
            errors: BTreeMap::new(),
            memstats: None,
            heap: None,
            heap_current: false,
            heap_totals: None,
            goroutines: None,
            system: SystemStatus::default(),
            oom: OomStatus::default(),
            window,
            signals: None,
            goroutineleak_available: None,
            leaked: None,
            leaked_first: None,
        }
    }
}

/// One configured target: its config and its latest state.
#[derive(Debug)]
pub struct TargetState {
    pub config: TargetConfig,
    pub system: Arc<SystemConfig>,
    /// The signal settings in force (the target's `memory_limit` folded in).
    pub signal_config: SignalConfig,
    pub(super) selector: ProcessSelector,
    /// A loopback target that names no process or cgroup: where its process listens.
    pub(super) listener: Option<Listener>,
    status: Mutex<Status>,
    schedule: Mutex<Schedule>,
    /// Moves each time the state changed as a whole (a tick ended, an OOM kill or a
    /// baseline was recorded): the metrics collector encodes a target's series again
    /// only then.
    generation: AtomicU64,
    /// A tick is under way: the status holds some of its pieces and not yet the rest.
    in_tick: AtomicBool,
    /// A probe's one deadline for all its requests ([`TargetState::with_deadline`]).
    deadline: Option<tokio::time::Instant>,
}

impl TargetState {
    pub fn new(config: TargetConfig, system: Arc<SystemConfig>) -> Self {
        let window = Window::new(&WindowConfig {
            warmup: config.warmup,
            startup_grace: config.startup_grace,
            ..WindowConfig::with_span(config.window)
        });
        let mut signal_config = config.signals.clone();
        if config.memory_limit.is_some() {
            signal_config.memory_limit_bytes = config.memory_limit;
        }
        let selector = ProcessSelector {
            pid: config.pid,
            pid_file: config.pid_file.clone(),
            // Validated at config load.
            process: config
                .process
                .as_deref()
                .and_then(|p| regex::Regex::new(p).ok()),
        };
        let schedule = Schedule::new(&config);
        let listener = if config.watches_system() {
            None
        } else {
            Listener::of_url(&config.url)
        };
        TargetState {
            config,
            system,
            signal_config,
            selector,
            listener,
            status: Mutex::new(Status::new(window)),
            schedule: Mutex::new(schedule),
            generation: AtomicU64::new(0),
            in_tick: AtomicBool::new(false),
            deadline: None,
        }
    }

    /// The same target, never looking for the process serving its port (a
    /// one-shot probe).
    pub fn without_listener(mut self) -> Self {
        self.listener = None;
        self
    }

    /// The same target with one deadline for every request of its ticks (a probe:
    /// before, each of its up to 5 sequential requests had the whole timeout, so a
    /// target sending 1 byte/s held a probe for 5 timeouts).
    pub fn with_deadline(mut self, at: tokio::time::Instant) -> Self {
        self.deadline = Some(at);
        self
    }

    /// The time the next request may take: the target's timeout, or less when a
    /// deadline comes first (none left: zero, so the request fails at once).
    pub(super) fn request_timeout(&self) -> Duration {
        match self.deadline {
            None => self.config.timeout,
            Some(at) => self
                .config
                .timeout
                .min(at.saturating_duration_since(tokio::time::Instant::now())),
        }
    }

    /// Locks the status (never poisoned for long: a panic in a holder is a bug, and we
    /// keep serving the last state rather than failing every later scrape).
    pub fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state's generation (see [`TickMark`]); read it under the status lock to
    /// pair it with what the status holds.
    pub fn tick_mark(&self) -> TickMark {
        TickMark {
            generation: self.generation.load(Ordering::SeqCst),
            whole: !self.in_tick.load(Ordering::SeqCst),
        }
    }

    /// Marks a tick under way until the guard drops; then, under the status lock, the
    /// state is whole again and its generation moves. The tick's first act (tests use
    /// it to stand half-way through one).
    pub fn begin_tick(&self) -> TickGuard<'_> {
        self.in_tick.store(true, Ordering::SeqCst);
        TickGuard(self)
    }

    /// A change made whole under the status lock (`_st` proves it is held).
    fn changed(&self, _st: &MutexGuard<'_, Status>) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn schedule(&self) -> MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What is due now.
    pub(super) fn plan(&self, now: Instant) -> Plan {
        self.schedule().plan(self.config.heap_format, now)
    }

    /// Records the cost of a request to `endpoint` and reschedules it under the budget.
    pub(super) fn charge(&self, endpoint: &'static str, started: Instant, took: Duration) {
        self.schedule()
            .charge(&self.config.name, endpoint, started, took);
    }

    /// The budget's state now, for its series.
    pub fn budget_view(&self, now: Instant) -> BudgetView {
        self.schedule().budget_view(self.config.heap_format, now)
    }

    /// Time to wait before the next scrape, given how long this one took.
    pub fn next_delay(&self, took: Duration) -> Duration {
        self.config.interval.saturating_sub(took)
    }

    /// Whether any kind of leak is suspected now.
    pub fn leak_suspected(&self) -> bool {
        self.status()
            .signals
            .as_ref()
            .is_some_and(|s| s.verdict.any_suspected())
    }

    /// Whether memory is about to run out (for the pre-OOM dumps): time to OOM under
    /// [`PRE_OOM_TIME`], or usage at or over 90% of the limit; relieved under 80% with
    /// no short time to OOM.
    pub fn memory_pressure(&self) -> MemoryPressure {
        let st = self.status();
        let Some(s) = &st.signals else {
            return MemoryPressure::Unchanged;
        };
        let share = match (s.memory_usage, s.memory_limit) {
            (Some((_, u)), Some((_, l))) if l > 0 => Some(u as f64 / l as f64),
            _ => None,
        };
        let short = s
            .time_to_oom
            .is_some_and(|t| t.seconds < PRE_OOM_TIME.as_secs_f64());
        if short || share.is_some_and(|r| r >= 0.9) {
            MemoryPressure::AboutToRunOut
        } else if share.is_none_or(|r| r < 0.8) {
            MemoryPressure::Relieved
        } else {
            MemoryPressure::Unchanged
        }
    }

    /// Records an OOM kill of this target's process seen in the kernel log.
    pub fn record_oom_kill(&self, unix_seconds: f64, anon_rss_bytes: Option<u64>) {
        let mut st = self.status();
        self.changed(&st);
        st.oom.kills += 1;
        st.oom.last_unix_seconds = Some(unix_seconds);
        st.oom.last_anon_rss_bytes = anon_rss_bytes;
        let grew = st.signals.as_ref().is_some_and(|s| {
            s.time_to_oom.is_some()
                || s.live
                    .as_ref()
                    .is_some_and(|t| t.fit.slope > 0.0 && t.one_way() >= 0.6)
        });
        if grew {
            st.oom.after_growth.push(unix_seconds);
            // Only the last few matter (kills within one window span).
            let n = st.oom.after_growth.len();
            if n > 16 {
                st.oom.after_growth.drain(..n - 16);
            }
        }
    }

    /// Current pid and cgroup path, for attributing kernel OOM kills.
    pub fn oom_identity(&self) -> (Option<u32>, Option<String>) {
        let st = self.status();
        (
            st.system.pid,
            st.system
                .location
                .as_ref()
                .map(|l| l.path.clone())
                .or_else(|| self.config.cgroup.clone()),
        )
    }

    /// Sets the live-heap baseline (`None`: the current live heap).
    pub fn set_baseline(&self, bytes: Option<u64>) -> Option<u64> {
        let mut st = self.status();
        let bytes = bytes.or_else(|| st.window.newest().and_then(|s| s.live_heap()))?;
        st.window.set_baseline(Some(bytes), SystemTime::now());
        self.changed(&st);
        st.window.baseline().map(|b| b.bytes)
    }
}

/// Where a target's state stands, read under its status lock: its generation, and
/// whether it is whole (no tick half-way through writing it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickMark {
    pub generation: u64,
    pub whole: bool,
}

/// A tick under way ([`TargetState::begin_tick`]); dropped at its end, or when the
/// loop is cancelled half-way.
pub struct TickGuard<'a>(&'a TargetState);

impl Drop for TickGuard<'_> {
    fn drop(&mut self) {
        let st = self.0.status();
        self.0.in_tick.store(false, Ordering::SeqCst);
        self.0.changed(&st);
    }
}

/// Told when a target's tick has ended, its state whole: the metrics collector
/// encodes the target's series there, once per tick, so `/metrics` only concatenates.
pub trait TickObserver: Send + Sync + std::fmt::Debug {
    fn tick_done(&self, target: &Arc<TargetState>);
}
