//! Each target's latest state: what the last scrape fetched and parsed, its errors,
//! and the series it contributes at `/metrics` time. Shared between the scrape loop
//! (writer) and the HTTP handlers (readers) behind a short-lived mutex.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::budget::{BudgetPolicy, EndpointBudget};

use crate::analysis::signals::{SignalConfig, Signals};
use crate::analysis::window::{
    ContainerObservation, GoroutineObservation, Observation, ObserveOutcome, Window, WindowConfig,
};
use crate::config::{GoroutineFormat, HeapFormat, SystemConfig, TargetConfig};
use crate::error::{Error, FetchReason};
use crate::metrics::Sink;
use crate::pprof::memstats::MemStats;
use crate::pprof::{GoroutineProfile, HeapProfile, HeapTotals};
use crate::scrape::Fetcher;
use crate::system::{CgroupLocation, CgroupMemory, ProcessMemory, ProcessSelector};

/// Endpoints leakwatch requests, as used in the `endpoint` label.
pub const ENDPOINT_HEAP: &str = "heap";
pub const ENDPOINT_MEMSTATS: &str = "memstats";
pub const ENDPOINT_GOROUTINE: &str = "goroutine";
pub const ENDPOINT_GOROUTINELEAK: &str = "goroutineleak";

/// Goroutines the Go runtime proved leaked (`goroutineleak` profile).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeakedGoroutines {
    pub total: u64,
    /// Leaking function -> count, largest first.
    pub by_function: Vec<(String, u64)>,
}

/// Each endpoint's schedule under the overhead budget, and what the target offers.
#[derive(Debug)]
struct Schedule {
    heap: EndpointBudget,
    memstats: EndpointBudget,
    goroutine: EndpointBudget,
    goroutineleak: EndpointBudget,
    policy: BudgetPolicy,
    /// `None`: detect on the next tick (first contact, after failures or a restart).
    memstats_source: Option<MemStatsSource>,
    expvar_failures: u32,
    goroutineleak_available: Option<bool>,
}

/// What one tick requests.
#[derive(Debug, Clone, Copy)]
struct Plan {
    detect_memstats: bool,
    detect_goroutineleak: bool,
    heap: bool,
    memstats: bool,
    goroutine: bool,
    goroutineleak: bool,
}

/// What the goroutine profile said, reduced to what metrics and the window need.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GoroutineSummary {
    pub total: u64,
    pub http_client_connections: u64,
    /// State name -> count, every state present (zeros included).
    pub by_state: Vec<(&'static str, u64)>,
    /// Blocking site (innermost non-runtime function) -> count.
    pub by_function: Vec<(String, u64)>,
}

impl GoroutineSummary {
    pub fn from_profile(p: &GoroutineProfile) -> Self {
        use crate::pprof::goroutine::{GoroutineState, state_from_stack};
        let mut states: BTreeMap<GoroutineState, u64> =
            GoroutineState::ALL.iter().map(|s| (*s, 0)).collect();
        let mut by_function: BTreeMap<String, u64> = BTreeMap::new();
        for r in &p.records {
            *states.entry(state_from_stack(&r.stack)).or_default() += r.count;
            let site = blocking_site(&r.stack).to_string();
            *by_function.entry(site).or_default() += r.count;
        }
        let mut by_function: Vec<(String, u64)> = by_function.into_iter().collect();
        by_function.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        GoroutineSummary {
            total: p.total,
            http_client_connections: crate::pprof::goroutine::http_client_connections(p),
            by_state: states.into_iter().map(|(s, n)| (s.as_str(), n)).collect(),
            by_function,
        }
    }
}

/// Packages whose frames are how a goroutine blocks, not where: the blocking site is
/// the first frame outside them (`main.waitForReply`, `net/http.(*persistConn).readLoop`).
/// `net.` matches package net only, not `net/http.`.
const BLOCKING_HELPERS: &[&str] = &[
    "runtime.",
    "internal/",
    "sync.",
    "time.",
    "net.",
    "bufio.",
    "io.",
    "os.",
    "syscall.",
];

/// The function a goroutine is blocked in, for `leakwatch_goroutine_growth{function}`.
pub fn blocking_site(stack: &[String]) -> &str {
    stack
        .iter()
        .find(|f| !BLOCKING_HELPERS.iter().any(|h| f.starts_with(h)))
        .or(stack.first())
        .map(String::as_str)
        .unwrap_or("unknown")
}

/// Where the MemStats came from (the `source` label of `leakwatch_go_memstats_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemStatsSource {
    HeapDebug1,
    Expvar,
}

impl MemStatsSource {
    pub fn as_str(self) -> &'static str {
        match self {
            MemStatsSource::HeapDebug1 => "heap_debug1",
            MemStatsSource::Expvar => "expvar",
        }
    }
}

/// What the last read of the target's process and cgroup found.
#[derive(Debug, Default)]
pub struct SystemStatus {
    pub pid: Option<u32>,
    pub location: Option<CgroupLocation>,
    /// `None` when the target names no process or cgroup.
    pub cgroup: Option<std::result::Result<CgroupMemory, String>>,
    pub process: Option<std::result::Result<ProcessMemory, String>>,
}

/// OOM kills of this target seen in the kernel log.
#[derive(Debug, Default, Clone, Copy)]
pub struct OomStatus {
    pub kills: u64,
    pub last_unix_seconds: Option<f64>,
    pub last_anon_rss_bytes: Option<u64>,
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
    selector: ProcessSelector,
    status: Mutex<Status>,
    schedule: Mutex<Schedule>,
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl TargetState {
    pub fn new(config: TargetConfig, system: Arc<SystemConfig>) -> Self {
        let window = Window::new(&WindowConfig {
            warmup: config.warmup,
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
        let schedule = Schedule {
            heap: EndpointBudget::new(config.interval),
            memstats: EndpointBudget::new(config.interval),
            goroutine: EndpointBudget::new(config.interval),
            goroutineleak: EndpointBudget::new(config.goroutineleak_interval.max(config.interval)),
            policy: BudgetPolicy::new(
                config.overhead_budget,
                config.budget_boost,
                config.budget_boost_for,
            ),
            memstats_source: None,
            expvar_failures: 0,
            goroutineleak_available: None,
        };
        TargetState {
            config,
            system,
            signal_config,
            selector,
            status: Mutex::new(Status::new(window)),
            schedule: Mutex::new(schedule),
        }
    }

    /// Locks the status (never poisoned for long: a panic in a holder is a bug, and we
    /// keep serving the last state rather than failing every later scrape).
    pub fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Time to wait before the next scrape, given how long this one took.
    pub fn next_delay(&self, took: Duration) -> Duration {
        self.config.interval.saturating_sub(took)
    }

    /// Counts a failed request and drops what that endpoint had reported: a series is
    /// either current or absent, never silently stale.
    fn record_error(&self, endpoint: &'static str, err: &Error) {
        tracing::warn!(target_name = %self.config.name, endpoint, error = %err, "scrape failed");
        let mut st = self.status();
        *st.errors.entry((endpoint, err.reason())).or_default() += 1;
        st.last_error = Some(format!("{endpoint}: {err}"));
        match endpoint {
            ENDPOINT_HEAP => {
                st.memstats = None;
                st.heap = None;
                st.heap_totals = None;
            }
            ENDPOINT_GOROUTINE => st.goroutines = None,
            ENDPOINT_MEMSTATS => st.memstats = None,
            ENDPOINT_GOROUTINELEAK => st.leaked = None,
            _ => {}
        }
    }

    /// One tick of the target's loop: every endpoint that is due under the overhead
    /// budget is requested, then the system files are read and the window and signals
    /// updated. Errors are recorded, never returned: a failing target only changes its
    /// own series.
    pub async fn scrape_once(&self, fetcher: &Fetcher) {
        let plan = self.plan(Instant::now());
        if plan.detect_memstats {
            self.detect_memstats_source(fetcher).await;
        }
        if plan.detect_goroutineleak {
            self.detect_goroutineleak(fetcher).await;
        }
        let plan = self.plan(Instant::now());
        let mut heap_ok = None;
        if plan.heap {
            heap_ok = Some(self.scrape_heap(fetcher).await);
        }
        if plan.memstats {
            self.scrape_memstats(fetcher).await;
        }
        if plan.goroutine {
            self.scrape_goroutines(fetcher).await;
        }
        if plan.goroutineleak {
            self.scrape_goroutineleak(fetcher).await;
        }
        if self.config.watches_system() {
            self.read_system().await;
        }
        let now = SystemTime::now();
        // The window is updated on a copy, outside the status lock (and, for a huge heap
        // profile, off the async workers): `/metrics` and the other targets must not wait
        // for it. Readers keep seeing the previous window meanwhile.
        let (obs, window) = {
            let mut st = self.status();
            st.scrapes += 1;
            if let Some(ok) = heap_ok {
                st.up = ok;
                if ok {
                    st.last_success = Some(now);
                }
            }
            st.last_scrape = Some(now);
            (observation(&st, now), st.window.clone())
        };
        let cfg = self.signal_config.clone();
        let big = obs
            .heap
            .as_ref()
            .is_some_and(|h| h.samples.len() > BIG_RECORDS);
        let analysed = off_thread(big, move || {
            let mut window = window;
            let outcome = window.observe(obs);
            let signals = crate::analysis::signals::compute(&window, &cfg);
            Ok((outcome, window, signals))
        })
        .await;
        let Ok((outcome, window, mut signals)) = analysed else {
            tracing::error!(target_name = %self.config.name, "analysis task failed");
            return;
        };
        let mut st = self.status();
        st.window = window;
        if outcome == ObserveOutcome::Restarted {
            tracing::info!(target_name = %self.config.name, "process restarted: analysis window starts again");
            st.leaked_first = None;
            st.leaked = None;
            st.goroutineleak_available = None;
            st.durations.remove(ENDPOINT_GOROUTINELEAK);
            let mut sched = self.schedule();
            sched.goroutineleak_available = None;
            sched.memstats_source = None;
        }
        fold_goroutineleak(&mut signals, &st);
        let suspected = signals.verdict.any_suspected();
        st.signals = Some(signals);
        drop(st);
        self.schedule().policy.on_verdict(suspected, Instant::now());
    }

    fn schedule(&self) -> MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What is due now.
    fn plan(&self, now: Instant) -> Plan {
        let s = self.schedule();
        let text_heap = self.config.heap_format == HeapFormat::Text;
        Plan {
            detect_memstats: !text_heap && s.memstats_source.is_none(),
            detect_goroutineleak: s.goroutineleak_available.is_none(),
            heap: s.heap.due(now),
            memstats: !text_heap && s.memstats_source.is_some() && s.memstats.due(now),
            goroutine: s.goroutine.due(now),
            goroutineleak: s.goroutineleak_available == Some(true) && s.goroutineleak.due(now),
        }
    }

    /// Records the cost of a request to `endpoint` and reschedules it under the budget.
    fn charge(&self, endpoint: &'static str, started: Instant, took: Duration) {
        let mut s = self.schedule();
        let budget = s.policy.current(started);
        let boosted = s.policy.boosted(started);
        let slot = match endpoint {
            ENDPOINT_HEAP => &mut s.heap,
            ENDPOINT_MEMSTATS => &mut s.memstats,
            ENDPOINT_GOROUTINE => &mut s.goroutine,
            ENDPOINT_GOROUTINELEAK => &mut s.goroutineleak,
            _ => return,
        };
        if let Some(new) = slot.record(started, took, budget) {
            let configured = slot.configured_interval();
            tracing::info!(
                target_name = %self.config.name,
                endpoint,
                request_seconds = took.as_secs_f64(),
                budget,
                boosted,
                effective_interval = ?new,
                ?configured,
                "overhead budget: interval adapted"
            );
        }
    }

    /// Asks `/debug/vars` whether the service exposes expvar's `memstats` (the cheapest
    /// MemStats); without it MemStats come from `heap?debug=1` at a lower rate.
    async fn detect_memstats_source(&self, fetcher: &Fetcher) {
        let source = match self.request(fetcher, "/debug/vars").await {
            Ok(f) if crate::pprof::memstats::parse_expvar(&f.body).is_ok() => {
                MemStatsSource::Expvar
            }
            _ => MemStatsSource::HeapDebug1,
        };
        let interval = match source {
            MemStatsSource::Expvar => self.config.interval,
            MemStatsSource::HeapDebug1 => self.config.interval * self.config.memstats_text_every,
        };
        tracing::info!(target_name = %self.config.name, source = source.as_str(), ?interval, "MemStats source detected");
        let mut s = self.schedule();
        s.memstats_source = Some(source);
        s.expvar_failures = 0;
        s.memstats = EndpointBudget::new(interval);
    }

    /// Whether the `/debug/pprof/` index lists `goroutineleak` (Go 1.27, or 1.26 built
    /// with `GOEXPERIMENT=goroutineleakprofile`). The index is cheap; the profile is not.
    async fn detect_goroutineleak(&self, fetcher: &Fetcher) {
        let available = match self.request(fetcher, "/debug/pprof/").await {
            Ok(f) => Some(String::from_utf8_lossy(&f.body).contains("goroutineleak")),
            // Unreachable: ask again next tick.
            Err(_) => None,
        };
        if let Some(a) = available {
            tracing::info!(target_name = %self.config.name, available = a, "goroutineleak profile detection");
            self.schedule().goroutineleak_available = Some(a);
            let mut st = self.status();
            st.goroutineleak_available = Some(a);
            if !a {
                st.leaked = None;
                st.leaked_first = None;
                st.durations.remove(ENDPOINT_GOROUTINELEAK);
            }
        }
    }

    /// One GET of a path under the target, with its timeout, size cap and credentials.
    async fn request(
        &self,
        fetcher: &Fetcher,
        path: &str,
    ) -> crate::error::Result<crate::scrape::Fetched> {
        let url = self.config.endpoint(path);
        fetcher
            .get_with(
                &url,
                self.config.timeout,
                self.config.max_body_bytes,
                &self.config.auth,
            )
            .await
    }

    async fn fetch(
        &self,
        fetcher: &Fetcher,
        endpoint: &'static str,
        path: &str,
    ) -> Option<Vec<u8>> {
        let started = Instant::now();
        let result = self.request(fetcher, path).await;
        self.charge(endpoint, started, started.elapsed());
        match result {
            Ok(f) => {
                self.status()
                    .durations
                    .insert(endpoint, f.elapsed.as_secs_f64());
                Some(f.body)
            }
            Err(e) => {
                self.record_error(endpoint, &e);
                None
            }
        }
    }

    async fn scrape_heap(&self, fetcher: &Fetcher) -> bool {
        let gc = if self.config.gc { "&gc=1" } else { "" };
        match self.config.heap_format {
            HeapFormat::Text => {
                let path = format!("/debug/pprof/heap?debug=1{gc}");
                let Some(body) = self.fetch(fetcher, ENDPOINT_HEAP, &path).await else {
                    return false;
                };
                let parsed = off_thread(body.len() > BIG_BODY, move || {
                    crate::pprof::heap::parse_heap_text(&body).map(|t| (t.estimate(), t.memstats))
                })
                .await;
                match parsed {
                    Ok((profile, memstats)) => {
                        let mut st = self.status();
                        st.heap_totals = Some(profile.totals());
                        st.heap = Some(Arc::new(profile));
                        st.memstats = memstats.map(|m| (m, MemStatsSource::HeapDebug1));
                        true
                    }
                    Err(e) => {
                        self.record_error(ENDPOINT_HEAP, &e);
                        false
                    }
                }
            }
            HeapFormat::Proto => {
                let path = if self.config.gc {
                    "/debug/pprof/heap?gc=1"
                } else {
                    "/debug/pprof/heap"
                };
                let Some(body) = self.fetch(fetcher, ENDPOINT_HEAP, path).await else {
                    return false;
                };
                let max = self.config.max_body_bytes;
                let parsed = off_thread(body.len() > BIG_BODY, move || {
                    crate::pprof::proto::decode(&body, max)
                        .and_then(|p| crate::pprof::proto::heap_profile(&p))
                })
                .await;
                match parsed {
                    Ok(profile) => {
                        let mut st = self.status();
                        st.heap_totals = Some(profile.totals());
                        st.heap = Some(Arc::new(profile));
                        true
                    }
                    Err(e) => {
                        self.record_error(ENDPOINT_HEAP, &e);
                        false
                    }
                }
            }
        }
    }

    /// MemStats alone (heap records come from the protobuf profile).
    async fn scrape_memstats(&self, fetcher: &Fetcher) {
        let source = self.schedule().memstats_source;
        let parsed = match source {
            Some(MemStatsSource::Expvar) => {
                let Some(body) = self.fetch(fetcher, ENDPOINT_MEMSTATS, "/debug/vars").await else {
                    let mut s = self.schedule();
                    s.expvar_failures += 1;
                    if s.expvar_failures >= 3 {
                        s.memstats_source = None;
                    }
                    return;
                };
                crate::pprof::memstats::parse_expvar(&body)
            }
            Some(MemStatsSource::HeapDebug1) => {
                let Some(body) = self
                    .fetch(fetcher, ENDPOINT_MEMSTATS, "/debug/pprof/heap?debug=1")
                    .await
                else {
                    return;
                };
                off_thread(body.len() > BIG_BODY, move || {
                    crate::pprof::heap::parse_heap_text(&body).and_then(|t| {
                        t.memstats.ok_or_else(|| Error::NotFormat {
                            format: "heap?debug=1",
                            reason: "no # runtime.MemStats trailer".to_string(),
                        })
                    })
                })
                .await
            }
            None => return,
        };
        match (parsed, source) {
            (Ok(m), Some(src)) => {
                self.schedule().expvar_failures = 0;
                self.status().memstats = Some((m, src));
            }
            (Err(e), _) => self.record_error(ENDPOINT_MEMSTATS, &e),
            _ => {}
        }
    }

    async fn scrape_goroutineleak(&self, fetcher: &Fetcher) {
        let Some(body) = self
            .fetch(
                fetcher,
                ENDPOINT_GOROUTINELEAK,
                "/debug/pprof/goroutineleak?debug=1",
            )
            .await
        else {
            return;
        };
        match off_thread(body.len() > BIG_BODY, move || {
            crate::pprof::goroutine::parse_goroutine_text(&body).map(|t| t.to_profile())
        })
        .await
        {
            Ok(p) => {
                let mut by_function: BTreeMap<String, u64> = BTreeMap::new();
                for r in &p.records {
                    *by_function
                        .entry(blocking_site(&r.stack).to_string())
                        .or_default() += r.count;
                }
                let mut by_function: Vec<(String, u64)> = by_function.into_iter().collect();
                by_function.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let mut st = self.status();
                if st.leaked_first.is_none() {
                    st.leaked_first = Some(p.total);
                }
                st.leaked = Some(LeakedGoroutines {
                    total: p.total,
                    by_function,
                });
            }
            Err(e) => self.record_error(ENDPOINT_GOROUTINELEAK, &e),
        }
    }

    /// Finds the process and cgroup again when needed (first time, process gone, or a
    /// pid file that may have changed), then reads their memory files. File reads are
    /// small but blocking, so they run on the blocking pool.
    async fn read_system(&self) {
        let (prev_pid, prev_loc) = {
            let st = self.status();
            (st.system.pid, st.system.location.clone())
        };
        let selector = self.selector.clone();
        let cgroup = self.config.cgroup.clone();
        let sys = self.system.clone();
        let name = self.config.name.clone();
        let read = tokio::task::spawn_blocking(move || {
            read_system_blocking(
                &name,
                &selector,
                cgroup.as_deref(),
                &sys,
                prev_pid,
                prev_loc,
            )
        })
        .await;
        match read {
            Ok(system) => self.status().system = system,
            Err(e) => {
                tracing::error!(target_name = %self.config.name, error = %e, "reading system files panicked")
            }
        }
    }

    /// Whether any kind of leak is suspected now.
    pub fn leak_suspected(&self) -> bool {
        self.status()
            .signals
            .as_ref()
            .is_some_and(|s| s.verdict.any_suspected())
    }

    /// Records an OOM kill of this target's process seen in the kernel log.
    pub fn record_oom_kill(&self, unix_seconds: f64, anon_rss_bytes: Option<u64>) {
        let mut st = self.status();
        st.oom.kills += 1;
        st.oom.last_unix_seconds = Some(unix_seconds);
        st.oom.last_anon_rss_bytes = anon_rss_bytes;
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
        st.window.baseline().map(|b| b.bytes)
    }

    async fn scrape_goroutines(&self, fetcher: &Fetcher) {
        let parsed = match self.config.goroutine_format {
            GoroutineFormat::Text => {
                let Some(body) = self
                    .fetch(
                        fetcher,
                        ENDPOINT_GOROUTINE,
                        "/debug/pprof/goroutine?debug=1",
                    )
                    .await
                else {
                    return;
                };
                off_thread(body.len() > BIG_BODY, move || {
                    crate::pprof::goroutine::parse_goroutine_text(&body).map(|t| t.to_profile())
                })
                .await
            }
            GoroutineFormat::Proto => {
                let Some(body) = self
                    .fetch(fetcher, ENDPOINT_GOROUTINE, "/debug/pprof/goroutine")
                    .await
                else {
                    return;
                };
                let max = self.config.max_body_bytes;
                off_thread(body.len() > BIG_BODY, move || {
                    crate::pprof::proto::decode(&body, max)
                        .and_then(|p| crate::pprof::proto::goroutine_profile(&p))
                })
                .await
            }
        };
        let summary = match parsed {
            Ok(p) => {
                off_thread(p.records.len() > BIG_RECORDS, move || {
                    Ok(GoroutineSummary::from_profile(&p))
                })
                .await
            }
            Err(e) => Err(e),
        };
        match summary {
            Ok(g) => self.status().goroutines = Some(g),
            Err(e) => self.record_error(ENDPOINT_GOROUTINE, &e),
        }
    }

    /// The series of a one-shot `/probe`: point-in-time values only (a single sample has
    /// no slope, verdict or time-to-OOM), and no per-target labels.
    pub fn push_probe_samples(&self, out: &mut Sink) {
        self.push_samples_inner(out, false);
    }

    /// The target's series, from its current state.
    pub fn push_samples(&self, out: &mut Sink) {
        self.push_samples_inner(out, true);
    }

    fn push_samples_inner(&self, out: &mut Sink, with_history: bool) {
        let st = self.status();
        if st.scrapes == 0 {
            // Not scraped yet (first scrapes are jittered): no up=0 false alarm.
            return;
        }
        out.gauge("leakwatch_up", st.up);
        for (endpoint, secs) in &st.durations {
            out.gauge_with("leakwatch_scrape_duration_seconds", &[endpoint], *secs);
        }
        // Every (endpoint, reason) pair that ever failed keeps its counter.
        for ((endpoint, reason), n) in &st.errors {
            out.counter_with("leakwatch_scrape_errors", &[endpoint, reason.as_str()], *n);
        }
        if let Some(t) = st.last_scrape {
            out.gauge("leakwatch_last_scrape_timestamp_seconds", unix_seconds(t));
        }
        if let Some(t) = st.last_success {
            out.gauge("leakwatch_last_success_timestamp_seconds", unix_seconds(t));
        }
        if let Some((m, source)) = &st.memstats {
            out.gauge_with("leakwatch_go_memstats_info", &[source.as_str()], 1u64);
            m.push_samples(out);
        }
        if let (Some(t), Some(h)) = (&st.heap_totals, &st.heap) {
            out.gauge("leakwatch_heap_profile_inuse_bytes", t.inuse_bytes);
            out.gauge("leakwatch_heap_profile_inuse_objects", t.inuse_objects);
            out.gauge("leakwatch_heap_profile_alloc_bytes", t.alloc_bytes);
            out.gauge("leakwatch_heap_profile_alloc_objects", t.alloc_objects);
            out.gauge(
                "leakwatch_heap_profile_sampling_period_bytes",
                h.sampling_period,
            );
            out.gauge("leakwatch_heap_profile_records", h.samples.len() as u64);
        }
        let go_sys_minus_released = st
            .memstats
            .as_ref()
            .and_then(|(m, _)| Some(m.sys?.saturating_sub(m.heap_released.unwrap_or(0))));
        let mut cgroup_limit = None;
        match &st.system.cgroup {
            Some(Ok(c)) => {
                c.push_samples(out);
                cgroup_limit = c.limit;
            }
            Some(Err(_)) => out.gauge("leakwatch_cgroup_scrape_success", 0u64),
            None => {}
        }
        match &st.system.process {
            Some(Ok(p)) => p.push_samples(out, go_sys_minus_released, cgroup_limit),
            Some(Err(_)) => out.gauge("leakwatch_process_scrape_success", 0u64),
            None => {}
        }
        if self.config.watches_system() {
            out.counter("leakwatch_oom_kills", st.oom.kills);
            if let Some(t) = st.oom.last_unix_seconds {
                out.gauge("leakwatch_last_oom_kill_timestamp_seconds", t);
            }
            if let Some(b) = st.oom.last_anon_rss_bytes {
                out.gauge("leakwatch_last_oom_kill_anon_rss_bytes", b);
            }
        }
        if let Some(sig) = &st.signals {
            if with_history {
                sig.push_samples(out);
            } else {
                sig.push_point_in_time_samples(out);
            }
        }
        if let Some(a) = st.goroutineleak_available {
            out.gauge("leakwatch_goroutineleak_profile_available", a);
        }
        if let Some(l) = &st.leaked {
            out.gauge("leakwatch_goroutines_leaked", l.total);
            let top_n = self.signal_config.top_n;
            for (f, n) in l.by_function.iter().take(top_n) {
                out.gauge_with("leakwatch_goroutines_leaked_by_function", &[f], *n);
            }
            let rest: u64 = l.by_function.iter().skip(top_n).map(|(_, n)| n).sum();
            out.gauge_with("leakwatch_goroutines_leaked_by_function", &["other"], rest);
        }
        drop(st);
        if with_history {
            self.push_budget_samples(out);
        }
        let st = self.status();
        if let Some(g) = &st.goroutines {
            out.gauge("leakwatch_goroutines", g.total);
            out.gauge(
                "leakwatch_http_client_connections",
                g.http_client_connections,
            );
            for (state, n) in &g.by_state {
                out.gauge_with("leakwatch_goroutines_by_state", &[state], *n);
            }
        }
    }
}

impl TargetState {
    /// The overhead budget's series: budget in force, effective intervals, cost ratios.
    fn push_budget_samples(&self, out: &mut Sink) {
        let sched = self.schedule();
        let now = Instant::now();
        out.gauge("leakwatch_overhead_budget_ratio", sched.policy.current(now));
        let mut endpoints = vec![
            (ENDPOINT_HEAP, &sched.heap),
            (ENDPOINT_GOROUTINE, &sched.goroutine),
        ];
        if sched.memstats_source.is_some() && self.config.heap_format == HeapFormat::Proto {
            endpoints.push((ENDPOINT_MEMSTATS, &sched.memstats));
        }
        if sched.goroutineleak_available == Some(true) {
            endpoints.push((ENDPOINT_GOROUTINELEAK, &sched.goroutineleak));
        }
        for (name, b) in endpoints {
            out.gauge_with(
                "leakwatch_effective_interval_seconds",
                &[name],
                b.effective_interval().as_secs_f64(),
            );
            if let Some(r) = b.overhead_ratio() {
                out.gauge_with("leakwatch_overhead_ratio", &[name], r);
            }
        }
    }
}

/// The observation the window gets from one scrape's state.
fn observation(st: &Status, at: SystemTime) -> Observation {
    let mut obs = Observation::at(at);
    obs.pid = st.system.pid;
    obs.memstats = st.memstats.as_ref().map(|(m, _)| m.clone());
    obs.heap = st.heap.clone();
    obs.goroutines = st.goroutines.as_ref().map(|g| GoroutineObservation {
        total: g.total,
        http_client_connections: g.http_client_connections,
        by_state: g
            .by_state
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect(),
        by_function: g.by_function.clone(),
    });
    if let Some(Ok(c)) = &st.system.cgroup {
        obs.container = Some(ContainerObservation {
            usage: Some(c.usage),
            working_set: Some(c.working_set()),
            limit: c.limit,
        });
    }
    if let Some(Ok(p)) = &st.system.process {
        obs.rss = Some(p.rss);
        obs.gomemlimit = p.gomemlimit;
        obs.gogc = p.gogc;
    }
    obs
}

/// Discovery (when needed) and reads of the cgroup and `/proc` files.
fn read_system_blocking(
    name: &str,
    selector: &ProcessSelector,
    cgroup: Option<&str>,
    sys: &SystemConfig,
    prev_pid: Option<u32>,
    prev_loc: Option<CgroupLocation>,
) -> SystemStatus {
    let still_there = prev_pid.is_some_and(|p| crate::system::pid_alive(&sys.proc_root, p))
        && selector.pid_file.is_none()
        && (prev_loc.is_some() || cgroup.is_none());
    let (pid, location) = if still_there {
        (prev_pid, prev_loc)
    } else {
        match crate::system::discover(selector, cgroup, &sys.proc_root, &sys.cgroup_root) {
            Ok(d) => {
                if d.pid != prev_pid && d.pid.is_some() {
                    tracing::info!(target_name = name, pid = ?d.pid, cgroup = ?d.cgroup.as_ref().map(|c| &c.path), "found the target's process");
                }
                (d.pid, d.cgroup)
            }
            Err(e) => {
                tracing::warn!(target_name = name, error = %e, "finding the target's process failed");
                return SystemStatus {
                    cgroup: Some(Err(e.to_string())),
                    process: (!selector.is_empty()).then(|| Err(e.to_string())),
                    ..SystemStatus::default()
                };
            }
        }
    };
    let cgroup_read = location.as_ref().map(|loc| {
        crate::system::read_cgroup_memory(loc).map_err(|e| {
            tracing::debug!(target_name = name, error = %e, "reading cgroup memory failed");
            e.to_string()
        })
    });
    let process_read = if selector.is_empty() {
        None
    } else {
        Some(match pid {
            Some(p) => crate::system::read_process(&sys.proc_root, p).map_err(|e| e.to_string()),
            None => Err("process not running".to_string()),
        })
    };
    SystemStatus {
        pid,
        location,
        cgroup: cgroup_read,
        process: process_read,
    }
}

/// Folds the runtime's proof into the goroutine verdict: a non-zero leaked count that
/// grew since the process started makes the goroutine leak certain (score 1), with
/// the leaking function as the culprit.
fn fold_goroutineleak(signals: &mut Signals, st: &Status) {
    let (Some(l), Some(first)) = (&st.leaked, st.leaked_first) else {
        return;
    };
    if l.total == 0 || l.total <= first {
        return;
    }
    let g = &mut signals.verdict.goroutine;
    g.score = 1.0;
    g.suspected = true;
    let culprit = l
        .by_function
        .first()
        .map(|(f, n)| format!("{f} ({n})"))
        .unwrap_or_default();
    g.reasons.insert(
        0,
        format!(
            "the Go runtime proved {} goroutines leaked (up from {first}), most in {culprit}",
            l.total
        ),
    );
}

/// Bodies and profiles above these sizes are parsed and analysed on the blocking pool.
const BIG_BODY: usize = 1 << 20;
const BIG_RECORDS: usize = 20_000;

/// Runs a parser on the blocking pool when the input is big: a big profile (megabytes of text, a million
/// records) must not stall the async workers that scrape the other targets and serve
/// `/metrics`.
async fn off_thread<T: Send + 'static>(
    big: bool,
    f: impl FnOnce() -> crate::error::Result<T> + Send + 'static,
) -> crate::error::Result<T> {
    if !big {
        // Typical profiles parse in well under a millisecond: not worth a thread hop,
        // and the few blocking threads stay free for the big ones.
        return f();
    }
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Error::NotFormat {
            format: "profile",
            reason: format!("parser task failed: {e}"),
        })
    })
}
