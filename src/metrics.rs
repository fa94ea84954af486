//! Every metric leakwatch exposes, in one table (name, type, labels, help), and the
//! scrape-time collector that turns current target state into those series.
//!
//! Metrics are built fresh on each `/metrics` request from each target's latest state
//! (the client_rust `Collector` pattern): a removed target's series disappear, and a
//! failed read only leaves out its own series. Modules that own a piece of state push
//! [`Sample`]s into a [`Sink`] by metric name; the collector groups them by family in
//! table order and checks every name against [`METRICS`].
//!
//! Counter names in the table have no `_total`: the text encoder appends it.

use std::borrow::Cow;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

/// One metric family: its name (without `_total` for counters), type, the labels it
/// carries beyond the per-target ones (`target` + configured labels), and its help.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
    /// Whether the series carries the per-target labels.
    pub per_target: bool,
}

const fn g(name: &'static str, labels: &'static [&'static str], help: &'static str) -> MetricDef {
    MetricDef {
        name,
        kind: Kind::Gauge,
        labels,
        help,
        per_target: true,
    }
}

const fn c(name: &'static str, labels: &'static [&'static str], help: &'static str) -> MetricDef {
    MetricDef {
        name,
        kind: Kind::Counter,
        labels,
        help,
        per_target: true,
    }
}

const fn global(mut def: MetricDef) -> MetricDef {
    def.per_target = false;
    def
}

/// Every metric leakwatch can expose. The README's metrics reference is checked
/// against this table by a test (`tests/it/docs.rs`).
pub const METRICS: &[MetricDef] = &[
    // --- exporter and scrape health -------------------------------------------------
    global(g(
        "leakwatch_build_info",
        &["version"],
        "Always 1; the version of leakwatch.",
    )),
    g(
        "leakwatch_up",
        &[],
        "1 if the last scrape of the target's heap profile succeeded, else 0.",
    ),
    g(
        "leakwatch_scrape_duration_seconds",
        &["endpoint"],
        "Duration of the last request to each pprof endpoint of the target.",
    ),
    c(
        "leakwatch_scrape_errors",
        &["endpoint", "reason"],
        "Failed requests to the target, by endpoint and reason (connect, timeout, http_status, too_large, parse, redirect, body).",
    ),
    g(
        "leakwatch_last_scrape_timestamp_seconds",
        &[],
        "Unix time of the last completed scrape of the target, successful or not.",
    ),
    g(
        "leakwatch_last_success_timestamp_seconds",
        &[],
        "Unix time of the last successful heap scrape of the target.",
    ),
    // --- runtime.MemStats, named after client_golang's go_memstats_* ---------------------
    g(
        "leakwatch_go_memstats_alloc_bytes",
        &[],
        "MemStats.Alloc: bytes of allocated heap objects.",
    ),
    c(
        "leakwatch_go_memstats_alloc_bytes",
        &[],
        "MemStats.TotalAlloc: cumulative bytes allocated for heap objects.",
    ),
    g(
        "leakwatch_go_memstats_sys_bytes",
        &[],
        "MemStats.Sys: bytes of memory obtained from the OS.",
    ),
    c(
        "leakwatch_go_memstats_lookups",
        &[],
        "MemStats.Lookups: pointer lookups performed by the runtime.",
    ),
    c(
        "leakwatch_go_memstats_mallocs",
        &[],
        "MemStats.Mallocs: cumulative count of heap objects allocated.",
    ),
    c(
        "leakwatch_go_memstats_frees",
        &[],
        "MemStats.Frees: cumulative count of heap objects freed.",
    ),
    g(
        "leakwatch_go_memstats_heap_alloc_bytes",
        &[],
        "MemStats.HeapAlloc: bytes of allocated heap objects.",
    ),
    g(
        "leakwatch_go_memstats_heap_sys_bytes",
        &[],
        "MemStats.HeapSys: bytes of heap memory obtained from the OS.",
    ),
    g(
        "leakwatch_go_memstats_heap_idle_bytes",
        &[],
        "MemStats.HeapIdle: bytes in idle (unused) spans.",
    ),
    g(
        "leakwatch_go_memstats_heap_inuse_bytes",
        &[],
        "MemStats.HeapInuse: bytes in in-use spans.",
    ),
    g(
        "leakwatch_go_memstats_heap_released_bytes",
        &[],
        "MemStats.HeapReleased: bytes of physical memory returned to the OS.",
    ),
    g(
        "leakwatch_go_memstats_heap_objects",
        &[],
        "MemStats.HeapObjects: number of allocated heap objects.",
    ),
    g(
        "leakwatch_go_memstats_stack_inuse_bytes",
        &[],
        "MemStats.StackInuse: bytes in stack spans.",
    ),
    g(
        "leakwatch_go_memstats_stack_sys_bytes",
        &[],
        "MemStats.StackSys: bytes of stack memory obtained from the OS.",
    ),
    g(
        "leakwatch_go_memstats_mspan_inuse_bytes",
        &[],
        "MemStats.MSpanInuse: bytes of allocated mspan structures.",
    ),
    g(
        "leakwatch_go_memstats_mspan_sys_bytes",
        &[],
        "MemStats.MSpanSys: bytes obtained from the OS for mspan structures.",
    ),
    g(
        "leakwatch_go_memstats_mcache_inuse_bytes",
        &[],
        "MemStats.MCacheInuse: bytes of allocated mcache structures.",
    ),
    g(
        "leakwatch_go_memstats_mcache_sys_bytes",
        &[],
        "MemStats.MCacheSys: bytes obtained from the OS for mcache structures.",
    ),
    g(
        "leakwatch_go_memstats_buck_hash_sys_bytes",
        &[],
        "MemStats.BuckHashSys: bytes of memory in profiling bucket hash tables.",
    ),
    g(
        "leakwatch_go_memstats_gc_sys_bytes",
        &[],
        "MemStats.GCSys: bytes of memory in garbage collection metadata.",
    ),
    g(
        "leakwatch_go_memstats_other_sys_bytes",
        &[],
        "MemStats.OtherSys: bytes of miscellaneous off-heap runtime allocations.",
    ),
    g(
        "leakwatch_go_memstats_next_gc_bytes",
        &[],
        "MemStats.NextGC: target heap size of the next GC cycle.",
    ),
    g(
        "leakwatch_go_memstats_last_gc_time_seconds",
        &[],
        "MemStats.LastGC: Unix time the last GC finished (0 if none).",
    ),
    c(
        "leakwatch_go_memstats_gc_cycles",
        &[],
        "MemStats.NumGC: completed GC cycles.",
    ),
    c(
        "leakwatch_go_memstats_forced_gc_cycles",
        &[],
        "MemStats.NumForcedGC: GC cycles forced by the application calling runtime.GC.",
    ),
    g(
        "leakwatch_go_memstats_gc_cpu_fraction",
        &[],
        "MemStats.GCCPUFraction: fraction of CPU time used by the GC since the program started (0..1).",
    ),
    g(
        "leakwatch_go_memstats_max_rss_bytes",
        &[],
        "MemStats.MaxRSS: maximum resident set size of the process (getrusage).",
    ),
    g(
        "leakwatch_go_memstats_last_gc_pause_seconds",
        &[],
        "Duration of the most recent GC stop-the-world pause (PauseNs[(NumGC+255)%256]).",
    ),
    g(
        "leakwatch_go_memstats_max_gc_pause_seconds",
        &[],
        "Longest GC pause among the last 256 (the PauseNs ring).",
    ),
    g(
        "leakwatch_go_memstats_info",
        &["source"],
        "Always 1; source says where the MemStats came from (heap_debug1 or expvar).",
    ),
    // --- heap profile totals (estimated, scaled as pprof does) ------------------------
    g(
        "leakwatch_heap_profile_inuse_bytes",
        &[],
        "Estimated in-use bytes in the heap profile (as of the last completed GC).",
    ),
    g(
        "leakwatch_heap_profile_inuse_objects",
        &[],
        "Estimated in-use objects in the heap profile.",
    ),
    g(
        "leakwatch_heap_profile_alloc_bytes",
        &[],
        "Estimated bytes allocated since start in the heap profile.",
    ),
    g(
        "leakwatch_heap_profile_alloc_objects",
        &[],
        "Estimated objects allocated since start in the heap profile.",
    ),
    g(
        "leakwatch_heap_profile_sampling_period_bytes",
        &[],
        "runtime.MemProfileRate: average bytes between sampled allocations (0 = profiling off).",
    ),
    g(
        "leakwatch_heap_profile_records",
        &[],
        "Number of distinct allocation stacks in the heap profile.",
    ),
    // --- goroutines ---------------------------------------------------------------------
    g(
        "leakwatch_goroutines",
        &[],
        "Number of goroutines (goroutine profile total).",
    ),
    g(
        "leakwatch_goroutines_by_state",
        &["state"],
        "Goroutines by what they are blocked on, classified from their stacks.",
    ),
    g(
        "leakwatch_http_client_connections",
        &[],
        "Goroutines in net/http.(*persistConn).readLoop: open HTTP client connections.",
    ),
    g(
        "leakwatch_goroutine_growth",
        &["function"],
        "Growth of goroutine count over the window by blocking site (top N plus other).",
    ),
    g(
        "leakwatch_goroutine_slope_per_second",
        &[],
        "Robust slope of the goroutine count over the window.",
    ),
    g(
        "leakwatch_goroutines_leaked",
        &[],
        "Goroutines the Go runtime proved leaked (goroutineleak profile total).",
    ),
    g(
        "leakwatch_goroutines_leaked_by_function",
        &["function"],
        "Leaked goroutines by function (top N plus other).",
    ),
    g(
        "leakwatch_goroutineleak_profile_available",
        &[],
        "1 if the target serves /debug/pprof/goroutineleak, else 0.",
    ),
    // --- container (cgroup v1/v2) memory -----------------------------------------------
    g(
        "leakwatch_cgroup_info",
        &["version", "path"],
        "Always 1; the cgroup the target's process runs in and its hierarchy version.",
    ),
    g(
        "leakwatch_cgroup_memory_usage_bytes",
        &[],
        "cgroup memory usage (v2 memory.current, v1 memory.usage_in_bytes).",
    ),
    g(
        "leakwatch_cgroup_memory_limit_bytes",
        &[],
        "cgroup memory limit (v2 memory.max, v1 memory.limit_in_bytes); absent when unlimited.",
    ),
    g(
        "leakwatch_cgroup_memory_high_bytes",
        &[],
        "cgroup v2 memory.high throttling threshold; absent when unlimited.",
    ),
    g(
        "leakwatch_cgroup_memory_peak_bytes",
        &[],
        "cgroup peak memory usage (v2 memory.peak, v1 memory.max_usage_in_bytes).",
    ),
    g(
        "leakwatch_cgroup_memory_working_set_bytes",
        &[],
        "cgroup working set: usage minus inactive file pages, as kubelet and cAdvisor compute it.",
    ),
    g(
        "leakwatch_cgroup_memory_swap_usage_bytes",
        &[],
        "cgroup swap usage (v2 memory.swap.current, v1 memsw.usage - usage).",
    ),
    g(
        "leakwatch_cgroup_memory_stat_bytes",
        &["field"],
        "memory.stat fields measured in bytes.",
    ),
    c(
        "leakwatch_cgroup_memory_stat_events",
        &["field"],
        "memory.stat fields that count events (page faults, reclaim, ...).",
    ),
    c(
        "leakwatch_cgroup_memory_events",
        &["event"],
        "cgroup memory events (v2 memory.events; v1 oom_kill from memory.oom_control and failcnt).",
    ),
    c(
        "leakwatch_cgroup_memory_pressure_stall_seconds",
        &["kind"],
        "Memory pressure stall time (PSI total, kind some or full).",
    ),
    g(
        "leakwatch_cgroup_memory_pressure_avg10_ratio",
        &["kind"],
        "Memory pressure over the last 10 seconds (PSI avg10 / 100).",
    ),
    g(
        "leakwatch_cgroup_scrape_success",
        &[],
        "1 if the target's cgroup files were read, else 0.",
    ),
    // --- process (/proc) -----------------------------------------------------------------
    g(
        "leakwatch_process_resident_memory_bytes",
        &[],
        "Resident set size of the target's process (VmRSS).",
    ),
    g(
        "leakwatch_process_virtual_memory_bytes",
        &[],
        "Virtual memory size of the target's process (VmSize).",
    ),
    g(
        "leakwatch_process_resident_memory_peak_bytes",
        &[],
        "Peak resident set size of the target's process (VmHWM).",
    ),
    g(
        "leakwatch_process_threads",
        &[],
        "OS threads of the target's process.",
    ),
    g(
        "leakwatch_process_open_fds",
        &[],
        "Open file descriptors of the target's process.",
    ),
    g(
        "leakwatch_process_non_go_resident_bytes",
        &[],
        "Estimate of resident memory outside the Go runtime's accounting: RSS - (Sys - HeapReleased), clamped at 0 (cgo, mmap, ...).",
    ),
    g(
        "leakwatch_process_pid",
        &[],
        "PID of the target's process as last found.",
    ),
    g(
        "leakwatch_process_gomemlimit_bytes",
        &[],
        "GOMEMLIMIT from the process environment, in bytes.",
    ),
    g(
        "leakwatch_process_gogc",
        &[],
        "GOGC from the process environment (-1 for off).",
    ),
    g(
        "leakwatch_process_gomemlimit_exceeds_cgroup_limit",
        &[],
        "1 if GOMEMLIMIT is above the cgroup memory limit (the GC will not save the process), else 0.",
    ),
    g(
        "leakwatch_process_scrape_success",
        &[],
        "1 if the target's /proc files were read, else 0.",
    ),
    // --- kernel OOM kills ---------------------------------------------------------------
    c(
        "leakwatch_oom_kills",
        &[],
        "OOM kills of the target's process seen in the kernel log.",
    ),
    g(
        "leakwatch_last_oom_kill_timestamp_seconds",
        &[],
        "Unix time of the last OOM kill of the target's process seen in the kernel log.",
    ),
    g(
        "leakwatch_last_oom_kill_anon_rss_bytes",
        &[],
        "Anonymous RSS of the target's process when it was OOM-killed.",
    ),
    global(c(
        "leakwatch_host_oom_kills",
        &[],
        "OOM kills in the kernel log that match no target.",
    )),
    global(g(
        "leakwatch_kernel_log_readable",
        &["source"],
        "1 if the kernel log (/dev/kmsg or the configured file) can be read, else 0.",
    )),
    // --- leak signals ------------------------------------------------------------------
    g(
        "leakwatch_window_samples",
        &[],
        "Samples in the target's analysis window.",
    ),
    g(
        "leakwatch_window_span_seconds",
        &[],
        "Time covered by the target's analysis window.",
    ),
    g(
        "leakwatch_heap_alloc_slope_bytes_per_second",
        &[],
        "Robust (Theil-Sen) slope of HeapAlloc over the window.",
    ),
    g(
        "leakwatch_heap_live_bytes",
        &[],
        "Live heap after the last GC (heap profile in-use bytes, else NextGC / (1+GOGC/100)).",
    ),
    g(
        "leakwatch_heap_live_slope_bytes_per_second",
        &[],
        "Robust slope of the live heap after GC over the window: flat for a sawtooth, positive for a leak.",
    ),
    g(
        "leakwatch_heap_growth_monotonicity",
        &[],
        "How one-way the live heap grew over the window, 0..1 (1 = never went down).",
    ),
    g(
        "leakwatch_alloc_free_bytes_ratio",
        &[],
        "Growth of TotalAlloc over growth of freed bytes (TotalAlloc - HeapAlloc) across the window.",
    ),
    g(
        "leakwatch_alloc_free_objects_ratio",
        &[],
        "Growth of Mallocs over growth of Frees across the window.",
    ),
    g(
        "leakwatch_heap_objects_slope_per_second",
        &[],
        "Robust slope of live heap objects (HeapObjects) over the window.",
    ),
    g(
        "leakwatch_heap_inuse_alloc_ratio",
        &[],
        "In-use bytes over allocated bytes in the heap profile (retention).",
    ),
    g(
        "leakwatch_heap_inuse_share",
        &["package"],
        "Share of in-use heap bytes by allocating package (top N plus other), 0..1.",
    ),
    g(
        "leakwatch_heap_top_package_share",
        &["package"],
        "Share of in-use heap bytes held by the top allocating package, 0..1.",
    ),
    g(
        "leakwatch_heap_growth_bytes",
        &["function"],
        "Growth of estimated in-use bytes over the window by allocation site (top N plus other).",
    ),
    g(
        "leakwatch_gc_headroom_bytes",
        &[],
        "NextGC minus HeapAlloc: bytes until the next GC starts.",
    ),
    g(
        "leakwatch_gc_pause_p99_seconds",
        &[],
        "99th percentile of GC pauses in the window (from PauseNs).",
    ),
    g(
        "leakwatch_gc_pause_max_seconds",
        &[],
        "Longest GC pause in the window (from PauseNs).",
    ),
    g(
        "leakwatch_memory_limit_bytes",
        &["source"],
        "The memory limit used for time-to-OOM (cgroup, gomemlimit or config).",
    ),
    g(
        "leakwatch_memory_usage_bytes",
        &["source"],
        "The memory usage used for time-to-OOM (working_set, rss or go_sys).",
    ),
    g(
        "leakwatch_time_to_oom_seconds",
        &[],
        "Estimated seconds until usage reaches the limit at the current growth rate; absent while warming up or not growing.",
    ),
    g(
        "leakwatch_leak_suspected",
        &["kind"],
        "1 if a leak of this kind (heap, goroutine, http_connections) is suspected, else 0.",
    ),
    g(
        "leakwatch_leak_score",
        &["kind"],
        "Confidence that a leak of this kind is under way, 0..1.",
    ),
    g(
        "leakwatch_heap_baseline_bytes",
        &[],
        "Baseline of the live heap (taken once the window is stable, or set by the API).",
    ),
    g(
        "leakwatch_heap_baseline_ratio",
        &[],
        "Live heap over its baseline: a fix is confirmed when this is back within 1.1.",
    ),
    // --- dumps -------------------------------------------------------------------------
    c(
        "leakwatch_pprof_dump",
        &["profile_type", "result", "reason"],
        "Profile dumps written (or failed), by profile type, result (success, failure) and reason (schedule, suspect, manual, baseline).",
    ),
    c(
        "leakwatch_pprof_dump_bytes",
        &["profile_type"],
        "Bytes of profile dumps written.",
    ),
    g(
        "leakwatch_pprof_dump_last_success_timestamp_seconds",
        &["profile_type"],
        "Unix time of the last successful dump per profile type.",
    ),
    // --- overhead budget ---------------------------------------------------------------
    g(
        "leakwatch_effective_interval_seconds",
        &["endpoint"],
        "Interval actually used per endpoint after the overhead budget stretched it.",
    ),
    g(
        "leakwatch_overhead_ratio",
        &["endpoint"],
        "Estimated share of one CPU core of the service spent serving leakwatch, per endpoint.",
    ),
    g(
        "leakwatch_overhead_budget_ratio",
        &[],
        "The overhead budget in force (doubles for a while when a leak is suspected).",
    ),
    // --- /probe (one-shot, no target labels) --------------------------------------------
    global(g(
        "leakwatch_probe_success",
        &[],
        "1 if the probe's heap profile was fetched and parsed, else 0.",
    )),
    global(g(
        "leakwatch_probe_duration_seconds",
        &[],
        "How long the probe took.",
    )),
    // --- config ------------------------------------------------------------------------
    global(g(
        "leakwatch_config_last_reload_successful",
        &[],
        "1 if the last configuration reload succeeded, else 0.",
    )),
    global(g(
        "leakwatch_config_last_reload_success_timestamp_seconds",
        &[],
        "Unix time of the last successful configuration reload.",
    )),
    global(g("leakwatch_targets", &[], "Number of configured targets.")),
];

/// Looks a metric family up by name and kind (a gauge and a counter may share a base name).
pub fn lookup(name: &str, kind: Kind) -> Option<&'static MetricDef> {
    METRICS.iter().find(|d| d.name == name && d.kind == kind)
}

/// The name a family is exposed under (`_total` appended to counters).
pub fn exposed_name(def: &MetricDef) -> Cow<'static, str> {
    match def.kind {
        Kind::Gauge => Cow::Borrowed(def.name),
        Kind::Counter => Cow::Owned(format!("{}_total", def.name)),
    }
}

/// One series value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(u64::from(v))
    }
}

impl Value {
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Int(v) => v as f64,
            Value::Float(v) => v,
        }
    }
}

/// One series: family (by index into [`METRICS`]), its own label values (in the order of
/// the def's `labels`) and value. Per-target labels are added by the collector.
#[derive(Debug, Clone)]
pub struct Sample {
    pub def: &'static MetricDef,
    pub labels: Vec<String>,
    pub value: Value,
}

/// Where modules push their series. Unknown names are a programming error: they panic
/// in debug builds (and so in tests) and are dropped in release builds.
#[derive(Debug, Default)]
pub struct Sink {
    pub samples: Vec<Sample>,
}

impl Sink {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, name: &str, kind: Kind, labels: &[&str], value: Value) {
        let Some(def) = lookup(name, kind) else {
            debug_assert!(false, "metric {name} ({kind:?}) is not in metrics::METRICS");
            return;
        };
        debug_assert_eq!(
            def.labels.len(),
            labels.len(),
            "metric {name}: label values do not match {:?}",
            def.labels
        );
        if let Value::Float(f) = value
            && !f.is_finite()
        {
            return;
        }
        self.samples.push(Sample {
            def,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            value,
        });
    }

    /// A gauge with no labels of its own.
    pub fn gauge(&mut self, name: &str, value: impl Into<Value>) {
        self.push(name, Kind::Gauge, &[], value.into());
    }

    /// A gauge with label values in the order of its def.
    pub fn gauge_with(&mut self, name: &str, labels: &[&str], value: impl Into<Value>) {
        self.push(name, Kind::Gauge, labels, value.into());
    }

    /// A counter (name without `_total`).
    pub fn counter(&mut self, name: &str, value: impl Into<Value>) {
        self.push(name, Kind::Counter, &[], value.into());
    }

    /// A counter with label values in the order of its def.
    pub fn counter_with(&mut self, name: &str, labels: &[&str], value: impl Into<Value>) {
        self.push(name, Kind::Counter, labels, value.into());
    }
}

/// A group of samples that share per-target labels (`target` + configured labels).
#[derive(Debug, Clone, Default)]
pub struct LabelledSamples {
    pub target_labels: Vec<(String, String)>,
    pub samples: Vec<Sample>,
}

/// Encodes groups of samples as metric families in [`METRICS`] order: one descriptor
/// per family, every series of every group under it.
pub fn encode_groups(
    groups: &[LabelledSamples],
    mut encoder: DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    // Family position in METRICS -> [(group index, sample index)]. Every def a Sink
    // holds comes from METRICS, so its position is its address offset in the table.
    let base = METRICS.as_ptr() as usize;
    let size = std::mem::size_of::<MetricDef>();
    let mut by_family: Vec<Vec<(u32, u32)>> = vec![Vec::new(); METRICS.len()];
    for (gi, group) in groups.iter().enumerate() {
        for (si, s) in group.samples.iter().enumerate() {
            let pos = (s.def as *const MetricDef as usize).wrapping_sub(base) / size;
            if let Some(bucket) = by_family.get_mut(pos) {
                bucket.push((gi as u32, si as u32));
            }
        }
    }
    let mut labels: Vec<(&str, &str)> = Vec::with_capacity(8);
    for (def, entries) in METRICS.iter().zip(&by_family) {
        if entries.is_empty() {
            continue;
        }
        let metric_type = match def.kind {
            Kind::Gauge => MetricType::Gauge,
            Kind::Counter => MetricType::Counter,
        };
        let mut family = encoder.encode_descriptor(def.name, def.help, None, metric_type)?;
        for &(gi, si) in entries {
            let group = &groups[gi as usize];
            let s = &group.samples[si as usize];
            labels.clear();
            if def.per_target {
                labels.extend(
                    group
                        .target_labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                );
            }
            labels.extend(
                def.labels
                    .iter()
                    .copied()
                    .zip(s.labels.iter().map(String::as_str)),
            );
            let metric = ConstValue {
                kind: def.kind,
                value: s.value,
            };
            metric.encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

/// A collector of samples fixed at construction (one `/probe` response).
#[derive(Debug)]
pub struct OneShot(pub Vec<LabelledSamples>);

impl prometheus_client::collector::Collector for OneShot {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_groups(&self.0, encoder)
    }
}

#[derive(Debug)]
struct ConstValue {
    kind: Kind,
    value: Value,
}

impl EncodeMetric for ConstValue {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        match (self.kind, self.value) {
            (Kind::Gauge, Value::Int(v)) => encoder.encode_gauge(&v),
            (Kind::Gauge, Value::Float(v)) => encoder.encode_gauge(&v),
            (Kind::Counter, Value::Int(v)) => {
                encoder.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&v, None)
            }
            (Kind::Counter, Value::Float(v)) => {
                encoder.encode_counter::<prometheus_client::encoding::NoLabelSet, _, f64>(&v, None)
            }
        }
    }

    fn metric_type(&self) -> MetricType {
        match self.kind {
            Kind::Gauge => MetricType::Gauge,
            Kind::Counter => MetricType::Counter,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_follow_conventions_and_are_unique() {
        let mut seen = HashSet::new();
        let re = regex::Regex::new(r"^leakwatch_[a-z0-9_]+$").unwrap();
        for d in METRICS {
            assert!(re.is_match(d.name), "{}", d.name);
            assert!(
                seen.insert(exposed_name(d)),
                "duplicate exposed name {}",
                exposed_name(d)
            );
            assert!(
                !d.name.ends_with("_total"),
                "{}: encoder adds _total",
                d.name
            );
            assert!(!d.help.is_empty());
            assert!(
                !d.name.contains("percent"),
                "{}: ratios are 0..1, not percent",
                d.name
            );
            for l in d.labels {
                assert_ne!(*l, "target", "{}: target is a per-target label", d.name);
            }
        }
    }
}

/// The README's metrics reference: one Markdown table row per family, in table order.
/// `README.md` holds this between `<!-- metrics:begin -->` and `<!-- metrics:end -->`;
/// a test keeps them equal (`UPDATE_GOLDEN=1` rewrites the README section).
pub fn markdown_reference() -> String {
    let mut out = String::from("| metric | type | labels | help |\n|---|---|---|---|\n");
    for d in METRICS {
        let mut labels: Vec<&str> = Vec::new();
        if d.per_target {
            labels.push("target, ...");
        }
        labels.extend(d.labels.iter().copied());
        let kind = match d.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            exposed_name(d),
            kind,
            labels.join(", "),
            d.help.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod readme_tests {
    const BEGIN: &str = "<!-- metrics:begin -->\n";
    const END: &str = "<!-- metrics:end -->";

    #[test]
    fn readme_metrics_reference_matches_the_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
        let readme = std::fs::read_to_string(&path).expect("README.md");
        let (Some(b), Some(e)) = (readme.find(BEGIN), readme.find(END)) else {
            panic!("README.md has no {BEGIN:?} ... {END:?} section");
        };
        let current = &readme[b + BEGIN.len()..e];
        let want = super::markdown_reference();
        if current != want {
            if std::env::var_os("UPDATE_GOLDEN").is_some() {
                let updated = format!("{}{}{}", &readme[..b + BEGIN.len()], want, &readme[e..]);
                std::fs::write(&path, updated).unwrap();
                return;
            }
            panic!(
                "README metrics reference is stale: run UPDATE_GOLDEN=1 cargo test --lib readme"
            );
        }
    }
}
