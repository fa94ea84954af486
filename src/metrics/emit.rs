//! Every emitter: the code that turns the values of parsers, readers, analysis and a
//! target's state into series. Adding a metric means a row in [`super::table`] and a
//! line here; `pprof/`, `system/` and `analysis/` only return values.
//!
//! Each emitter is a plain function taking values; the [`Emit`] and [`EmitProcess`]
//! traits give the same functions method syntax (`memstats.push_samples(&mut sink)`).

use std::time::Instant;

use super::def::Kind;
use super::sink::Sink;
use crate::analysis::signals::Signals;
use crate::analysis::trend::Trend;
use crate::analysis::verdict::VerdictState;
use crate::dump::{DumpManager, DumpStats, ProfileType};
use crate::pprof::memstats::MemStats;
use crate::system::{CgroupMemory, ProcessMemory, StatKind};
use crate::targets::{Status, TargetState, TickMark};

/// Values that emit their series into a [`Sink`].
pub trait Emit {
    fn push_samples(&self, out: &mut Sink);
}

/// A process reading emits with two values from elsewhere (see [`process`]).
pub trait EmitProcess {
    fn push_samples(
        &self,
        out: &mut Sink,
        go_sys_minus_released: Option<u64>,
        cgroup_limit: Option<u64>,
    );
}

impl Emit for MemStats {
    fn push_samples(&self, out: &mut Sink) {
        memstats(self, out);
    }
}

impl Emit for CgroupMemory {
    fn push_samples(&self, out: &mut Sink) {
        cgroup(self, out);
    }
}

impl Emit for Signals {
    fn push_samples(&self, out: &mut Sink) {
        signals(self, out);
    }
}

impl Emit for TargetState {
    fn push_samples(&self, out: &mut Sink) {
        target(self, out);
    }
}

impl EmitProcess for ProcessMemory {
    fn push_samples(
        &self,
        out: &mut Sink,
        go_sys_minus_released: Option<u64>,
        cgroup_limit: Option<u64>,
    ) {
        process(self, out, go_sys_minus_released, cgroup_limit);
    }
}

// --- runtime.MemStats --------------------------------------------------------------

/// Pushes every `leakwatch_go_memstats_*` series (except `_info`, which says where the
/// stats came from and belongs to the caller) for the fields present.
/// Times and pauses are converted to seconds.
pub fn memstats(m: &MemStats, out: &mut Sink) {
    for (name, kind, get) in MEMSTATS_SERIES {
        if let Some(v) = get(m) {
            match kind {
                Kind::Gauge => out.gauge(name, v),
                Kind::Counter => out.counter(name, v),
            }
        }
    }
    if let Some(ns) = m.last_gc {
        out.gauge(
            "leakwatch_go_memstats_last_gc_time_seconds",
            ns_to_seconds(ns),
        );
    }
    if let Some(f) = m.gc_cpu_fraction {
        out.gauge("leakwatch_go_memstats_gc_cpu_fraction", f);
    }
    if let Some(ns) = m.last_pause_ns() {
        out.gauge(
            "leakwatch_go_memstats_last_gc_pause_seconds",
            ns_to_seconds(ns),
        );
    }
    if let Some(ns) = m.max_pause_ns() {
        out.gauge(
            "leakwatch_go_memstats_max_gc_pause_seconds",
            ns_to_seconds(ns),
        );
    }
}

fn ns_to_seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

type Getter = fn(&MemStats) -> Option<u64>;

/// The integer series, in `metrics::METRICS` order. Cumulative totals (TotalAlloc,
/// Mallocs, Frees, Lookups, NumGC, NumForcedGC) are counters; levels are gauges.
const MEMSTATS_SERIES: &[(&str, Kind, Getter)] = &[
    ("leakwatch_go_memstats_alloc_bytes", Kind::Gauge, |m| {
        m.alloc
    }),
    ("leakwatch_go_memstats_alloc_bytes", Kind::Counter, |m| {
        m.total_alloc
    }),
    ("leakwatch_go_memstats_sys_bytes", Kind::Gauge, |m| m.sys),
    ("leakwatch_go_memstats_lookups", Kind::Counter, |m| {
        m.lookups
    }),
    ("leakwatch_go_memstats_mallocs", Kind::Counter, |m| {
        m.mallocs
    }),
    ("leakwatch_go_memstats_frees", Kind::Counter, |m| m.frees),
    ("leakwatch_go_memstats_heap_alloc_bytes", Kind::Gauge, |m| {
        m.heap_alloc
    }),
    ("leakwatch_go_memstats_heap_sys_bytes", Kind::Gauge, |m| {
        m.heap_sys
    }),
    ("leakwatch_go_memstats_heap_idle_bytes", Kind::Gauge, |m| {
        m.heap_idle
    }),
    ("leakwatch_go_memstats_heap_inuse_bytes", Kind::Gauge, |m| {
        m.heap_inuse
    }),
    (
        "leakwatch_go_memstats_heap_released_bytes",
        Kind::Gauge,
        |m| m.heap_released,
    ),
    ("leakwatch_go_memstats_heap_objects", Kind::Gauge, |m| {
        m.heap_objects
    }),
    (
        "leakwatch_go_memstats_stack_inuse_bytes",
        Kind::Gauge,
        |m| m.stack_inuse,
    ),
    ("leakwatch_go_memstats_stack_sys_bytes", Kind::Gauge, |m| {
        m.stack_sys
    }),
    (
        "leakwatch_go_memstats_mspan_inuse_bytes",
        Kind::Gauge,
        |m| m.mspan_inuse,
    ),
    ("leakwatch_go_memstats_mspan_sys_bytes", Kind::Gauge, |m| {
        m.mspan_sys
    }),
    (
        "leakwatch_go_memstats_mcache_inuse_bytes",
        Kind::Gauge,
        |m| m.mcache_inuse,
    ),
    ("leakwatch_go_memstats_mcache_sys_bytes", Kind::Gauge, |m| {
        m.mcache_sys
    }),
    (
        "leakwatch_go_memstats_buck_hash_sys_bytes",
        Kind::Gauge,
        |m| m.buck_hash_sys,
    ),
    ("leakwatch_go_memstats_gc_sys_bytes", Kind::Gauge, |m| {
        m.gc_sys
    }),
    ("leakwatch_go_memstats_other_sys_bytes", Kind::Gauge, |m| {
        m.other_sys
    }),
    ("leakwatch_go_memstats_next_gc_bytes", Kind::Gauge, |m| {
        m.next_gc
    }),
    ("leakwatch_go_memstats_gc_cycles", Kind::Counter, |m| {
        m.num_gc
    }),
    (
        "leakwatch_go_memstats_forced_gc_cycles",
        Kind::Counter,
        |m| m.num_forced_gc,
    ),
    ("leakwatch_go_memstats_max_rss_bytes", Kind::Gauge, |m| {
        m.max_rss
    }),
];

// --- cgroup and /proc --------------------------------------------------------------

/// Pushes the `leakwatch_cgroup_*` series, including `scrape_success 1` (the
/// caller pushes `leakwatch_cgroup_scrape_success 0` when the read failed).
pub fn cgroup(c: &CgroupMemory, out: &mut Sink) {
    out.gauge_with(
        "leakwatch_cgroup_info",
        &[c.version.as_str(), &c.path],
        1u64,
    );
    out.gauge("leakwatch_cgroup_memory_usage_bytes", c.usage);
    if let Some(v) = c.limit {
        out.gauge("leakwatch_cgroup_memory_limit_bytes", v);
    }
    if let Some(v) = c.high {
        out.gauge("leakwatch_cgroup_memory_high_bytes", v);
    }
    if let Some(v) = c.peak {
        out.gauge("leakwatch_cgroup_memory_peak_bytes", v);
    }
    out.gauge("leakwatch_cgroup_memory_working_set_bytes", c.working_set());
    if let Some(v) = c.swap_usage {
        out.gauge("leakwatch_cgroup_memory_swap_usage_bytes", v);
    }
    for (field, v, kind) in c.exported_stat() {
        match kind {
            StatKind::Bytes => out.gauge_with("leakwatch_cgroup_memory_stat_bytes", &[field], v),
            StatKind::Events => {
                out.counter_with("leakwatch_cgroup_memory_stat_events", &[field], v)
            }
            StatKind::Limit => {}
        }
    }
    for (event, v) in &c.events {
        out.counter_with("leakwatch_cgroup_memory_events", &[event], *v);
    }
    if let Some(p) = &c.pressure {
        let lines = [("some", Some(p.some)), ("full", p.full)];
        for (kind, line) in lines {
            if let Some(l) = line {
                out.counter_with(
                    "leakwatch_cgroup_memory_pressure_stall_seconds",
                    &[kind],
                    l.total_usec as f64 / 1e6,
                );
                out.gauge_with(
                    "leakwatch_cgroup_memory_pressure_avg10_ratio",
                    &[kind],
                    l.avg10 / 100.0,
                );
            }
        }
    }
    out.gauge("leakwatch_cgroup_scrape_success", 1u64);
}

/// Pushes the `leakwatch_process_*` series, including `scrape_success 1` (the caller
/// pushes `leakwatch_process_scrape_success 0` when the read failed).
pub fn process(
    p: &ProcessMemory,
    out: &mut Sink,
    go_sys_minus_released: Option<u64>,
    cgroup_limit: Option<u64>,
) {
    out.gauge("leakwatch_process_resident_memory_bytes", p.rss);
    out.gauge("leakwatch_process_virtual_memory_bytes", p.vms);
    out.gauge("leakwatch_process_resident_memory_peak_bytes", p.hwm);
    out.gauge("leakwatch_process_threads", p.threads);
    out.gauge("leakwatch_process_open_fds", p.open_fds);
    out.gauge("leakwatch_process_pid", u64::from(p.pid));
    if let Some(t) = p.start_time {
        out.gauge(
            "leakwatch_process_start_time_seconds",
            crate::units::unix_secs_f64(t),
        );
    }
    if let Some(go) = go_sys_minus_released {
        out.gauge(
            "leakwatch_process_non_go_resident_bytes",
            p.non_go_resident(go),
        );
    }
    if let Some(v) = p.gomemlimit {
        out.gauge("leakwatch_process_gomemlimit_bytes", v);
    }
    if let Some(v) = p.gogc {
        out.gauge("leakwatch_process_gogc", v as f64);
    }
    if let (Some(gml), Some(limit)) = (p.gomemlimit, cgroup_limit) {
        out.gauge(
            "leakwatch_process_gomemlimit_exceeds_cgroup_limit",
            gml > limit,
        );
    }
    out.gauge("leakwatch_process_scrape_success", 1u64);
}

// --- leak signals ------------------------------------------------------------------

/// The series that need no history (a one-shot `/probe`): live heap, retention,
/// in-use share by package, GC headroom, memory usage and limit.
pub fn signals_point_in_time(s: &Signals, out: &mut Sink) {
    if let Some(b) = s.live_bytes {
        out.gauge("leakwatch_heap_live_bytes", b);
    }
    if let Some(r) = s.heap_inuse_alloc_ratio {
        out.gauge("leakwatch_heap_inuse_alloc_ratio", r);
    }
    if let Some(h) = s.gc_headroom_bytes {
        out.gauge("leakwatch_gc_headroom_bytes", h);
    }
    for (pkg, share) in &s.inuse_share {
        out.gauge_with("leakwatch_heap_inuse_share", &[pkg], *share);
    }
    if let Some((pkg, share)) = &s.top_package {
        out.gauge_with("leakwatch_heap_top_package_share", &[pkg], *share);
    }
    if let Some((src, v)) = s.memory_limit {
        out.gauge_with("leakwatch_memory_limit_bytes", &[src.as_str()], v);
    }
    if let Some((src, v)) = s.memory_usage {
        out.gauge_with("leakwatch_memory_usage_bytes", &[src.as_str()], v);
    }
}

/// Emits every leak-signal series (a missing signal emits nothing).
pub fn signals(s: &Signals, out: &mut Sink) {
    out.gauge("leakwatch_window_samples", s.window_samples as u64);
    out.gauge("leakwatch_window_span_seconds", s.window_span_seconds);
    let slope = |t: &Option<Trend>| t.as_ref().map(|t| t.fit.slope);
    let mut opt = |name: &str, v: Option<f64>| {
        if let Some(v) = v {
            out.gauge(name, v);
        }
    };
    opt(
        "leakwatch_heap_alloc_slope_bytes_per_second",
        s.heap_alloc.map(|f| f.slope),
    );
    opt("leakwatch_heap_live_bytes", s.live_bytes.map(|b| b as f64));
    opt("leakwatch_heap_live_slope_bytes_per_second", slope(&s.live));
    opt(
        "leakwatch_heap_growth_monotonicity",
        s.live.as_ref().map(|t| t.one_way()),
    );
    opt("leakwatch_alloc_free_bytes_ratio", s.alloc_free_bytes_ratio);
    opt(
        "leakwatch_alloc_free_objects_ratio",
        s.alloc_free_objects_ratio,
    );
    opt(
        "leakwatch_heap_objects_slope_per_second",
        s.heap_objects.map(|f| f.slope),
    );
    opt("leakwatch_heap_inuse_alloc_ratio", s.heap_inuse_alloc_ratio);
    opt("leakwatch_goroutine_slope_per_second", slope(&s.goroutines));
    opt("leakwatch_gc_headroom_bytes", s.gc_headroom_bytes);
    opt("leakwatch_gc_pause_p99_seconds", s.gc_pause_p99_seconds);
    opt("leakwatch_gc_pause_max_seconds", s.gc_pause_max_seconds);
    opt(
        "leakwatch_time_to_oom_seconds",
        s.time_to_oom.map(|t| t.seconds).filter(|s| s.is_finite()),
    );
    opt(
        "leakwatch_heap_baseline_bytes",
        s.baseline.map(|b| b.bytes as f64),
    );
    opt("leakwatch_heap_baseline_ratio", s.baseline_ratio);
    for (pkg, share) in &s.inuse_share {
        out.gauge_with("leakwatch_heap_inuse_share", &[pkg], *share);
    }
    if let Some((pkg, share)) = &s.top_package {
        out.gauge_with("leakwatch_heap_top_package_share", &[pkg], *share);
    }
    for (f, g) in &s.heap_growth {
        out.gauge_with("leakwatch_heap_growth_bytes", &[f], *g as f64);
    }
    for (f, g) in &s.goroutine_growth {
        out.gauge_with("leakwatch_goroutine_growth", &[f], *g as f64);
    }
    if let Some((src, v)) = s.memory_limit {
        out.gauge_with("leakwatch_memory_limit_bytes", &[src.as_str()], v);
    }
    if let Some((src, v)) = s.memory_usage {
        out.gauge_with("leakwatch_memory_usage_bytes", &[src.as_str()], v);
    }
    for k in s.verdict.kinds() {
        out.gauge_with("leakwatch_leak_suspected", &[k.kind.as_str()], k.suspected);
        out.gauge_with("leakwatch_leak_score", &[k.kind.as_str()], k.score);
        for state in VerdictState::ALL {
            out.gauge_with(
                "leakwatch_leak_verdict",
                &[k.kind.as_str(), state.as_str()],
                k.state == state,
            );
        }
    }
    if let Some(n) = s.gc_cycles {
        out.gauge("leakwatch_window_gc_cycles", n);
    }
}

// --- one target --------------------------------------------------------------------

/// The target's series, from its current state.
pub fn target(t: &TargetState, out: &mut Sink) {
    let st = t.status();
    target_inner(t, &st, out, true);
}

/// The target's series with where its state stood ([`TickMark`]), read under the same
/// status lock: a block encoded from a state that is not whole mixes two ticks.
pub fn target_marked(t: &TargetState, out: &mut Sink) -> TickMark {
    let st = t.status();
    let mark = t.tick_mark();
    target_inner(t, &st, out, true);
    mark
}

/// The series of a one-shot `/probe` that took `seconds`: point-in-time values only (a
/// single sample has no slope, verdict or time-to-OOM), no per-target labels, and the
/// probe's own outcome.
pub fn probe(t: &TargetState, seconds: f64, out: &mut Sink) {
    let st = t.status();
    target_inner(t, &st, out, false);
    out.gauge("leakwatch_probe_success", st.up);
    out.gauge("leakwatch_probe_duration_seconds", seconds);
}

/// Every series of the target from one reading of its status (`st`, locked by the
/// caller; the budget's schedule lock is taken inside, status first as everywhere).
fn target_inner(t: &TargetState, st: &Status, out: &mut Sink, with_history: bool) {
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
    if let Some(at) = st.last_scrape {
        out.gauge(
            "leakwatch_last_scrape_timestamp_seconds",
            crate::units::unix_secs_f64(at),
        );
    }
    if let Some(at) = st.last_success {
        out.gauge(
            "leakwatch_last_success_timestamp_seconds",
            crate::units::unix_secs_f64(at),
        );
    }
    if let Some((m, source)) = &st.memstats {
        out.gauge_with("leakwatch_go_memstats_info", &[source.as_str()], 1u64);
        memstats(m, out);
    }
    if let (Some(totals), Some(h)) = (&st.heap_totals, &st.heap) {
        out.gauge("leakwatch_heap_profile_inuse_bytes", totals.inuse_bytes);
        out.gauge("leakwatch_heap_profile_inuse_objects", totals.inuse_objects);
        out.gauge("leakwatch_heap_profile_alloc_bytes", totals.alloc_bytes);
        out.gauge("leakwatch_heap_profile_alloc_objects", totals.alloc_objects);
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
            cgroup(c, out);
            cgroup_limit = c.limit;
        }
        Some(Err(_)) => out.gauge("leakwatch_cgroup_scrape_success", 0u64),
        None => {}
    }
    match &st.system.process {
        Some(Ok(p)) => process(p, out, go_sys_minus_released, cgroup_limit),
        Some(Err(_)) => out.gauge("leakwatch_process_scrape_success", 0u64),
        None => {}
    }
    if t.config.watches_system() || st.system.pid.is_some() {
        out.counter("leakwatch_oom_kills", st.oom.kills);
        if let Some(at) = st.oom.last_unix_seconds {
            out.gauge("leakwatch_last_oom_kill_timestamp_seconds", at);
        }
        if let Some(b) = st.oom.last_anon_rss_bytes {
            out.gauge("leakwatch_last_oom_kill_anon_rss_bytes", b);
        }
    }
    if let Some(sig) = &st.signals {
        if with_history {
            signals(sig, out);
        } else {
            signals_point_in_time(sig, out);
        }
    }
    if let Some(a) = st.goroutineleak_available {
        out.gauge("leakwatch_goroutineleak_profile_available", a);
    }
    if let Some(l) = &st.leaked {
        out.gauge("leakwatch_goroutines_leaked", l.total);
        let top_n = t.signal_config.top_n;
        for (f, n) in l.by_function.iter().take(top_n) {
            out.gauge_with("leakwatch_goroutines_leaked_by_function", &[f], *n);
        }
        let rest: u64 = l.by_function.iter().skip(top_n).map(|(_, n)| n).sum();
        out.gauge_with("leakwatch_goroutines_leaked_by_function", &["other"], rest);
    }
    if with_history {
        budget(t, out);
    }
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

/// The overhead budget's series: budget in force, effective intervals, cost ratios.
fn budget(t: &TargetState, out: &mut Sink) {
    let view = t.budget_view(Instant::now());
    out.gauge("leakwatch_overhead_budget_ratio", view.budget);
    for (name, effective, ratio) in view.endpoints {
        out.gauge_with(
            "leakwatch_effective_interval_seconds",
            &[name],
            effective.as_secs_f64(),
        );
        if let Some(r) = ratio {
            out.gauge_with("leakwatch_overhead_ratio", &[name], r);
        }
    }
}

/// The dump series of one target of a dump manager (nothing when it has no dumps).
pub fn dumps(m: &DumpManager, target: &str, out: &mut Sink) {
    if let Some(s) = m.stats(target) {
        dump_stats(&s, out);
    }
}

/// The dump series of one target.
pub fn dump_stats(s: &DumpStats, out: &mut Sink) {
    for ((p, ok, r), n) in &s.counts {
        let result = if *ok { "success" } else { "failure" };
        out.counter_with(
            "leakwatch_pprof_dump",
            &[p.as_str(), result, r.as_str()],
            *n,
        );
    }
    for (i, p) in ProfileType::ALL.into_iter().enumerate() {
        out.counter_with("leakwatch_pprof_dump_bytes", &[p.as_str()], s.bytes[i]);
        if let Some(t) = s.last_success[i] {
            let secs = crate::units::unix_secs_f64(t);
            out.gauge_with(
                "leakwatch_pprof_dump_last_success_timestamp_seconds",
                &[p.as_str()],
                secs,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::kinds::LeakKind;
    use crate::analysis::signals::{SignalConfig, compute};
    use crate::analysis::sim::{MIB, leaking_45_minutes, two_early_samples};

    #[test]
    fn too_few_samples_no_slope_no_time_to_oom() {
        let s = compute(&two_early_samples(), &SignalConfig::default());
        let mut sink = Sink::new();
        s.push_samples(&mut sink);
        let names: Vec<&str> = sink.samples.iter().map(|x| x.def.name).collect();
        assert!(!names.contains(&"leakwatch_time_to_oom_seconds"));
        assert!(!names.contains(&"leakwatch_heap_alloc_slope_bytes_per_second"));
        assert!(names.contains(&"leakwatch_heap_live_bytes"));
    }

    #[test]
    fn concentration_growth_and_emitted_series() {
        let r = leaking_45_minutes();
        let s = &r.last;
        let mut sink = Sink::new();
        s.push_samples(&mut sink);
        let get = |name: &str, label: &[&str]| {
            sink.samples
                .iter()
                .find(|x| x.def.name == name && x.labels == label)
                .map(|x| x.value.as_f64())
        };
        assert_eq!(get("leakwatch_leak_suspected", &["heap"]), Some(1.0));
        assert_eq!(get("leakwatch_leak_suspected", &["goroutine"]), Some(0.0));
        assert_eq!(
            get("leakwatch_leak_score", &["heap"]),
            Some(s.verdict.get(LeakKind::Heap).score)
        );
        assert_eq!(get("leakwatch_window_samples", &[]), Some(121.0));
        assert_eq!(get("leakwatch_window_span_seconds", &[]), Some(1800.0));
        assert_eq!(
            get("leakwatch_memory_limit_bytes", &["cgroup"]),
            Some(1073741824.0)
        );
        assert_eq!(
            get("leakwatch_memory_usage_bytes", &["working_set"]),
            Some(200.0 * MIB)
        );
        let slope = get("leakwatch_heap_live_slope_bytes_per_second", &[]).unwrap();
        assert!((slope * 3600.0 - 20.0 * MIB).abs() < 2.0 * MIB, "{slope}");
        assert!(get("leakwatch_heap_growth_bytes", &["main.newSession"]).is_some());
        assert!(get("leakwatch_heap_top_package_share", &["github.com/acme/api"]).is_some());
        assert!(get("leakwatch_heap_baseline_bytes", &[]).is_some());
        // The baseline was taken once the window was warm, at minute 5 (live about
        // 51.7 MiB): now at 65 MiB.
        let ratio = get("leakwatch_heap_baseline_ratio", &[]).unwrap();
        assert!(ratio > 1.2 && ratio < 1.32, "{ratio}");
    }
}
