//! The metric table: every family leakwatch exposes (name, type, labels, help), in
//! exposition order. Adding a metric starts here; its emitter goes in `emit.rs`.

use super::def::{Kind, MetricDef, c, g, global};
use crate::config::Collector::*;

/// Every metric leakwatch can expose. The README's metrics reference is checked
/// against this table by a test (`tests/it/docs.rs`). A `static`, not a `const`: the
/// encoder finds a def's family by its address in this one table. Each per-target
/// family names the collector that switches it (`.of(...)`).
// Unformatted only so each family's collector stays on its closing line.
#[rustfmt::skip]
pub static METRICS: &[MetricDef] = &[
    // --- exporter and scrape health -------------------------------------------------
    global(g(
        "leakwatch_build_info",
        &["version"],
        "Always 1; the version of leakwatch.",
    )),
    global(g(
        "leakwatch_web_info",
        &["external_url"],
        "Always 1; the URL this leakwatch is reached at, for the dashboards' links: --web.external-url, else the listen address unless it is a wildcard (then no series).",
    )),
    g(
        "leakwatch_up",
        &[],
        "1 if the last scrape of the target's heap profile succeeded, else 0.",
    ).of(Scrape),
    g(
        "leakwatch_scrape_duration_seconds",
        &["endpoint"],
        "Duration of the last request to each pprof endpoint of the target.",
    ).of(Scrape),
    c(
        "leakwatch_scrape_errors",
        &["endpoint", "reason"],
        "Failed requests to the target, by endpoint and reason (connect, timeout, http_status, too_large, parse, redirect, body).",
    ).of(Scrape),
    g(
        "leakwatch_last_scrape_timestamp_seconds",
        &[],
        "Unix time of the last completed scrape of the target, successful or not.",
    ).of(Scrape),
    g(
        "leakwatch_last_success_timestamp_seconds",
        &[],
        "Unix time of the last successful heap scrape of the target.",
    ).of(Scrape),
    // --- runtime.MemStats, named after client_golang's go_memstats_* ---------------------
    g(
        "leakwatch_go_memstats_alloc_bytes",
        &[],
        "MemStats.Alloc: bytes of allocated heap objects.",
    ).of(MemstatsDetail),
    c(
        "leakwatch_go_memstats_alloc_bytes",
        &[],
        "MemStats.TotalAlloc: cumulative bytes allocated for heap objects.",
    ).of(Memstats),
    g(
        "leakwatch_go_memstats_sys_bytes",
        &[],
        "MemStats.Sys: bytes of memory obtained from the OS.",
    ).of(Memstats),
    c(
        "leakwatch_go_memstats_lookups",
        &[],
        "MemStats.Lookups: pointer lookups performed by the runtime.",
    ).of(MemstatsDetail),
    c(
        "leakwatch_go_memstats_mallocs",
        &[],
        "MemStats.Mallocs: cumulative count of heap objects allocated.",
    ).of(MemstatsDetail),
    c(
        "leakwatch_go_memstats_frees",
        &[],
        "MemStats.Frees: cumulative count of heap objects freed.",
    ).of(MemstatsDetail),
    g(
        "leakwatch_go_memstats_heap_alloc_bytes",
        &[],
        "MemStats.HeapAlloc: bytes of allocated heap objects.",
    ).of(Memstats),
    g(
        "leakwatch_go_memstats_heap_sys_bytes",
        &[],
        "MemStats.HeapSys: bytes of heap memory obtained from the OS.",
    ).of(MemstatsDetail),
    g(
        "leakwatch_go_memstats_heap_idle_bytes",
        &[],
        "MemStats.HeapIdle: bytes in idle (unused) spans.",
    ).of(MemstatsDetail),
    g(
        "leakwatch_go_memstats_heap_inuse_bytes",
        &[],
        "MemStats.HeapInuse: bytes in in-use spans.",
    ).of(MemstatsDetail),
    g(
        "leakwatch_go_memstats_heap_released_bytes",
        &[],
        "MemStats.HeapReleased: bytes of physical memory returned to the OS.",
    ).of(MemstatsDetail),
    g(
        "leakwatch_go_memstats_heap_objects",
        &[],
        "MemStats.HeapObjects: number of allocated heap objects.",
    ).of(MemstatsDetail),
    g(
        "leakwatch_go_memstats_stack_inuse_bytes",
        &[],
        "MemStats.StackInuse: bytes in stack spans.",
    ).of(MemstatsDetail),
    g(
        "leakwatch_go_memstats_stack_sys_bytes",
        &[],
        "MemStats.StackSys: bytes of stack memory obtained from the OS.",
    ).of(MemstatsDetail),
    g(
        "leakwatch_go_memstats_mspan_inuse_bytes",
        &[],
        "MemStats.MSpanInuse: bytes of allocated mspan structures.",
    ).of(MemstatsDetail),
    g(
        "leakwatch_go_memstats_mspan_sys_bytes",
        &[],
        "MemStats.MSpanSys: bytes obtained from the OS for mspan structures.",
    ).of(MemstatsDetail),
    g(
        "leakwatch_go_memstats_mcache_inuse_bytes",
        &[],
        "MemStats.MCacheInuse: bytes of allocated mcache structures.",
    ).of(MemstatsDetail),
    g(
        "leakwatch_go_memstats_mcache_sys_bytes",
        &[],
        "MemStats.MCacheSys: bytes obtained from the OS for mcache structures.",
    ).of(MemstatsDetail),
    g(
        "leakwatch_go_memstats_buck_hash_sys_bytes",
        &[],
        "MemStats.BuckHashSys: bytes of memory in profiling bucket hash tables.",
    ).of(MemstatsDetail),
    g(
        "leakwatch_go_memstats_gc_sys_bytes",
        &[],
        "MemStats.GCSys: bytes of memory in garbage collection metadata.",
    ).of(MemstatsDetail),
    g(
        "leakwatch_go_memstats_other_sys_bytes",
        &[],
        "MemStats.OtherSys: bytes of miscellaneous off-heap runtime allocations.",
    ).of(MemstatsDetail),
    g(
        "leakwatch_go_memstats_next_gc_bytes",
        &[],
        "MemStats.NextGC: target heap size of the next GC cycle.",
    ).of(Memstats),
    g(
        "leakwatch_go_memstats_last_gc_time_seconds",
        &[],
        "MemStats.LastGC: Unix time the last GC finished (0 if none).",
    ).of(MemstatsDetail),
    c(
        "leakwatch_go_memstats_gc_cycles",
        &[],
        "MemStats.NumGC: completed GC cycles.",
    ).of(Memstats),
    c(
        "leakwatch_go_memstats_forced_gc_cycles",
        &[],
        "MemStats.NumForcedGC: GC cycles forced by the application calling runtime.GC.",
    ).of(MemstatsDetail),
    g(
        "leakwatch_go_memstats_gc_cpu_fraction",
        &[],
        "MemStats.GCCPUFraction: fraction of CPU time used by the GC since the program started (0..1).",
    ).of(MemstatsDetail),
    g(
        "leakwatch_go_memstats_max_rss_bytes",
        &[],
        "MemStats.MaxRSS: maximum resident set size of the process (getrusage).",
    ).of(MemstatsDetail),
    g(
        "leakwatch_go_memstats_last_gc_pause_seconds",
        &[],
        "Duration of the most recent GC stop-the-world pause (PauseNs[(NumGC+255)%256]).",
    ).of(MemstatsDetail),
    g(
        "leakwatch_go_memstats_max_gc_pause_seconds",
        &[],
        "Longest GC pause among the last 256 (the PauseNs ring).",
    ).of(MemstatsDetail),
    g(
        "leakwatch_go_memstats_info",
        &["source"],
        "Always 1; source says where the MemStats came from (heap_debug1 or expvar).",
    ).of(Memstats),
    // --- heap profile totals (estimated, scaled as pprof does) ------------------------
    g(
        "leakwatch_heap_profile_inuse_bytes",
        &[],
        "Estimated in-use bytes in the heap profile (as of the last completed GC).",
    ).of(HeapProfile),
    g(
        "leakwatch_heap_profile_inuse_objects",
        &[],
        "Estimated in-use objects in the heap profile.",
    ).of(HeapProfile),
    g(
        "leakwatch_heap_profile_alloc_bytes",
        &[],
        "Estimated bytes allocated since start in the heap profile.",
    ).of(HeapProfile),
    g(
        "leakwatch_heap_profile_alloc_objects",
        &[],
        "Estimated objects allocated since start in the heap profile.",
    ).of(HeapProfile),
    g(
        "leakwatch_heap_profile_sampling_period_bytes",
        &[],
        "runtime.MemProfileRate: average bytes between sampled allocations (0 = profiling off).",
    ).of(HeapProfile),
    g(
        "leakwatch_heap_profile_records",
        &[],
        "Number of distinct allocation stacks in the heap profile.",
    ).of(HeapProfile),
    // --- goroutines ---------------------------------------------------------------------
    g(
        "leakwatch_goroutines",
        &[],
        "Number of goroutines (goroutine profile total).",
    ).of(Goroutines),
    g(
        "leakwatch_goroutines_by_state",
        &["state"],
        "Goroutines by what they are blocked on, classified from their stacks.",
    ).of(GoroutineStates),
    g(
        "leakwatch_http_client_connections",
        &[],
        "Goroutines in net/http.(*persistConn).readLoop: open HTTP client connections.",
    ).of(Goroutines),
    g(
        "leakwatch_goroutine_growth",
        &["function"],
        "Growth of goroutine count over the window by blocking site (top N plus other).",
    ).of(TopFunctions),
    g(
        "leakwatch_goroutine_slope_per_second",
        &[],
        "Robust slope of the goroutine count over the window.",
    ).of(Signals),
    g(
        "leakwatch_goroutines_leaked",
        &[],
        "Goroutines the Go runtime proved leaked (goroutineleak profile total).",
    ).of(Goroutines),
    g(
        "leakwatch_goroutines_leaked_by_function",
        &["function"],
        "Leaked goroutines by function (top N plus other).",
    ).of(TopFunctions),
    g(
        "leakwatch_goroutineleak_profile_available",
        &[],
        "1 if the target serves /debug/pprof/goroutineleak, else 0.",
    ).of(Goroutines),
    // --- container (cgroup v1/v2) memory -----------------------------------------------
    g(
        "leakwatch_cgroup_info",
        &["version", "path"],
        "Always 1; the cgroup the target's process runs in and its hierarchy version.",
    ).of(CgroupDetail),
    g(
        "leakwatch_cgroup_memory_usage_bytes",
        &[],
        "cgroup memory usage (v2 memory.current, v1 memory.usage_in_bytes).",
    ).of(Cgroup),
    g(
        "leakwatch_cgroup_memory_limit_bytes",
        &[],
        "cgroup memory limit (v2 memory.max, v1 memory.limit_in_bytes); absent when unlimited.",
    ).of(Cgroup),
    g(
        "leakwatch_cgroup_memory_high_bytes",
        &[],
        "cgroup v2 memory.high throttling threshold; absent when unlimited.",
    ).of(Cgroup),
    g(
        "leakwatch_cgroup_memory_peak_bytes",
        &[],
        "cgroup peak memory usage (v2 memory.peak, v1 memory.max_usage_in_bytes).",
    ).of(CgroupDetail),
    g(
        "leakwatch_cgroup_memory_working_set_bytes",
        &[],
        "cgroup working set: usage minus inactive file pages, as kubelet and cAdvisor compute it.",
    ).of(Cgroup),
    g(
        "leakwatch_cgroup_memory_swap_usage_bytes",
        &[],
        "cgroup swap usage (v2 memory.swap.current, v1 memsw.usage - usage).",
    ).of(CgroupDetail),
    g(
        "leakwatch_cgroup_memory_stat_bytes",
        &["field"],
        "memory.stat fields measured in bytes.",
    ).of(CgroupDetail),
    c(
        "leakwatch_cgroup_memory_stat_events",
        &["field"],
        "memory.stat fields that count events (page faults, reclaim, ...).",
    ).of(CgroupDetail),
    c(
        "leakwatch_cgroup_memory_events",
        &["event"],
        "cgroup memory events (v2 memory.events; v1 oom_kill from memory.oom_control and failcnt).",
    ).of(Cgroup),
    c(
        "leakwatch_cgroup_memory_pressure_stall_seconds",
        &["kind"],
        "Memory pressure stall time (PSI total, kind some or full).",
    ).of(CgroupDetail),
    g(
        "leakwatch_cgroup_memory_pressure_avg10_ratio",
        &["kind"],
        "Memory pressure over the last 10 seconds (PSI avg10 / 100).",
    ).of(CgroupDetail),
    g(
        "leakwatch_cgroup_scrape_success",
        &[],
        "1 if the target's cgroup files were read, else 0.",
    ).of(Cgroup),
    // --- process (/proc) -----------------------------------------------------------------
    g(
        "leakwatch_process_resident_memory_bytes",
        &[],
        "Resident set size of the target's process (VmRSS).",
    ).of(Process),
    g(
        "leakwatch_process_virtual_memory_bytes",
        &[],
        "Virtual memory size of the target's process (VmSize).",
    ).of(ProcessDetail),
    g(
        "leakwatch_process_resident_memory_peak_bytes",
        &[],
        "Peak resident set size of the target's process (VmHWM).",
    ).of(ProcessDetail),
    g(
        "leakwatch_process_threads",
        &[],
        "OS threads of the target's process.",
    ).of(Process),
    g(
        "leakwatch_process_open_fds",
        &[],
        "Open file descriptors of the target's process.",
    ).of(Process),
    g(
        "leakwatch_process_start_time_seconds",
        &[],
        "Start time of the target's process since the Unix epoch (/proc/PID/stat); growth in its first minutes may be start-up.",
    ).of(ProcessDetail),
    g(
        "leakwatch_process_non_go_resident_bytes",
        &[],
        "Estimate of resident memory outside the Go runtime's accounting: RSS - (Sys - HeapReleased), clamped at 0 (cgo, mmap, ...).",
    ).of(Process),
    g(
        "leakwatch_process_pid",
        &[],
        "PID of the target's process as last found.",
    ).of(Process),
    g(
        "leakwatch_process_gomemlimit_bytes",
        &[],
        "GOMEMLIMIT from the process environment, in bytes.",
    ).of(Process),
    g(
        "leakwatch_process_gogc",
        &[],
        "GOGC from the process environment (-1 for off).",
    ).of(Process),
    g(
        "leakwatch_process_gomemlimit_exceeds_cgroup_limit",
        &[],
        "1 if GOMEMLIMIT is above the cgroup memory limit (the GC will not save the process), else 0.",
    ).of(Process),
    g(
        "leakwatch_process_scrape_success",
        &[],
        "1 if the target's /proc files were read, else 0.",
    ).of(Process),
    // --- kernel OOM kills ---------------------------------------------------------------
    c(
        "leakwatch_oom_kills",
        &[],
        "OOM kills of the target's process seen in the kernel log.",
    ).of(Oom),
    g(
        "leakwatch_last_oom_kill_timestamp_seconds",
        &[],
        "Unix time of the last OOM kill of the target's process seen in the kernel log.",
    ).of(Oom),
    g(
        "leakwatch_last_oom_kill_anon_rss_bytes",
        &[],
        "Anonymous RSS of the target's process when it was OOM-killed.",
    ).of(Oom),
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
    ).of(Signals),
    g(
        "leakwatch_window_span_seconds",
        &[],
        "Time covered by the target's analysis window.",
    ).of(Signals),
    g(
        "leakwatch_heap_alloc_slope_bytes_per_second",
        &[],
        "Robust (Theil-Sen) slope of HeapAlloc over the window.",
    ).of(SignalsDetail),
    g(
        "leakwatch_heap_live_bytes",
        &[],
        "Live heap after the last GC (heap profile in-use bytes, else NextGC / (1+GOGC/100)).",
    ).of(Signals),
    g(
        "leakwatch_heap_live_slope_bytes_per_second",
        &[],
        "Robust slope of the live heap after GC over the window: flat for a sawtooth, positive for a leak.",
    ).of(Signals),
    g(
        "leakwatch_heap_growth_monotonicity",
        &[],
        "How one-way the live heap grew over the window, 0..1 (1 = never went down): of the readings or of their floor (lowest per sixteenth of the window), the higher.",
    ).of(Signals),
    g(
        "leakwatch_alloc_free_bytes_ratio",
        &[],
        "Growth of TotalAlloc over growth of freed bytes (TotalAlloc - HeapAlloc) across the window.",
    ).of(Signals),
    g(
        "leakwatch_alloc_free_objects_ratio",
        &[],
        "Growth of Mallocs over growth of Frees across the window.",
    ).of(SignalsDetail),
    g(
        "leakwatch_heap_objects_slope_per_second",
        &[],
        "Robust slope of live heap objects (HeapObjects) over the window.",
    ).of(SignalsDetail),
    g(
        "leakwatch_heap_inuse_alloc_ratio",
        &[],
        "In-use bytes over allocated bytes in the heap profile (retention).",
    ).of(SignalsDetail),
    g(
        "leakwatch_heap_inuse_share",
        &["package"],
        "Share of in-use heap bytes by allocating package (top N plus other), 0..1.",
    ).of(SignalsDetail),
    g(
        "leakwatch_heap_top_package_share",
        &["package"],
        "Share of in-use heap bytes held by the top allocating package, 0..1.",
    ).of(Signals),
    g(
        "leakwatch_heap_growth_bytes",
        &["function"],
        "Growth of estimated in-use bytes over the window by allocation site (top N plus other).",
    ).of(TopFunctions),
    g(
        "leakwatch_gc_headroom_bytes",
        &[],
        "NextGC minus HeapAlloc: bytes until the next GC starts.",
    ).of(SignalsDetail),
    g(
        "leakwatch_gc_pause_p99_seconds",
        &[],
        "99th percentile of GC pauses in the window (from PauseNs).",
    ).of(SignalsDetail),
    g(
        "leakwatch_gc_pause_max_seconds",
        &[],
        "Longest GC pause in the window (from PauseNs).",
    ).of(SignalsDetail),
    g(
        "leakwatch_memory_limit_bytes",
        &["source"],
        "The memory limit used for time-to-OOM: cgroup, gomemlimit, config, or host (MemAvailable plus the process's usage, when nothing else limits it).",
    ).of(Signals),
    g(
        "leakwatch_memory_usage_bytes",
        &["source"],
        "The memory usage used for time-to-OOM (working_set, rss or go_sys).",
    ).of(Signals),
    g(
        "leakwatch_time_to_oom_seconds",
        &[],
        "Estimated seconds until usage reaches the limit at the current growth rate, from 6 samples (75 s at 15 s); absent while usage is not confidently growing (the 95% interval of its slope reaches 0) and once growth stops (the newest 3 samples rose by less than a quarter of the trend).",
    ).of(Signals),
    g(
        "leakwatch_leak_suspected",
        &["kind"],
        "1 if a leak of this kind (heap, goroutine, http_connections) is suspected, else 0.",
    ).of(Signals),
    g(
        "leakwatch_leak_verdict",
        &["kind", "state"],
        "1 for the verdict's current state (suspected, no_leak, inconclusive, warming_up, stale, explained), 0 for the others.",
    ).of(VerdictStates),
    g(
        "leakwatch_window_gc_cycles",
        &[],
        "GC cycles that completed inside the analysis window (the live heap is measured only at a GC).",
    ).of(SignalsDetail),
    g(
        "leakwatch_leak_score",
        &["kind"],
        "Confidence that a leak of this kind is under way, 0..1.",
    ).of(Signals),
    g(
        "leakwatch_heap_baseline_bytes",
        &[],
        "Baseline of the live heap (taken once the window is stable, or set by the API).",
    ).of(SignalsDetail),
    g(
        "leakwatch_heap_baseline_ratio",
        &[],
        "Live heap over its baseline: a fix is confirmed when this is back within 1.1.",
    ).of(Signals),
    // --- dumps -------------------------------------------------------------------------
    c(
        "leakwatch_pprof_dump",
        &["profile_type", "result", "reason"],
        "Profile dumps written (or failed), by profile type, result (success, failure) and reason (schedule, suspect, manual, baseline).",
    ).of(Dumps),
    c(
        "leakwatch_pprof_dump_bytes",
        &["profile_type"],
        "Bytes of profile dumps written.",
    ).of(Dumps),
    g(
        "leakwatch_pprof_dump_last_success_timestamp_seconds",
        &["profile_type"],
        "Unix time of the last successful dump per profile type.",
    ).of(Dumps),
    // --- overhead budget ---------------------------------------------------------------
    g(
        "leakwatch_effective_interval_seconds",
        &["endpoint"],
        "Interval actually used per endpoint after the overhead budget stretched it.",
    ).of(Budget),
    g(
        "leakwatch_overhead_ratio",
        &["endpoint"],
        "Estimated share of one CPU core of the service spent serving leakwatch, per endpoint.",
    ).of(Budget),
    g(
        "leakwatch_overhead_budget_ratio",
        &[],
        "The overhead budget in force (doubles for a while when a leak is suspected).",
    ).of(Budget),
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
    // --- fleet mode (--discover only) -----------------------------------------------------
    global(g(
        "leakwatch_discover_targets",
        &[],
        "Process ports fleet mode watches now (discovered targets, ended ones still listed excluded).",
    )),
    global(g("leakwatch_discover_go_processes", &[], "Go processes with a listening TCP socket at the last rescan.")),
    global(g(
        "leakwatch_discover_skipped_processes",
        &["reason"],
        "Processes looked at once and skipped until they restart, by reason: not_go (no Go build info) or unreadable (the executable cannot be read: no ptrace access to the process, or a broken ELF file).",
    )),
    global(g(
        "leakwatch_discover_refused_ports",
        &["reason"],
        "Listening ports of Go processes not watched at the last rescan, by reason: max_targets (over discover.max_targets, asked when room frees up), max_ports_per_process (past a process's first discover.max_ports_per_process ports), denied (allow/deny rules), unreachable (its network namespace cannot be entered), no_pprof (no 200 from /debug/pprof/cmdline), cmdline_mismatch (pprof of another command line: a forwarder). The last four are asked once, not again until the process restarts.",
    )),
    global(c("leakwatch_discover_rescans", &[], "Rescans of the node's processes completed.")),
    global(g(
        "leakwatch_discover_rescan_duration_seconds",
        &[],
        "Duration of the last rescan: the /proc walk and the pprof checks of new ports.",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::def::exposed_name;
    use std::collections::HashSet;

    #[test]
    fn the_verdict_help_names_every_leak_kind() {
        // The README's reference repeats it (readme.rs).
        use crate::analysis::kinds::LeakKind;
        let labels: Vec<&str> = LeakKind::ALL.iter().map(|k| k.as_str()).collect();
        let listed = format!("({})", labels.join(", "));
        let d = lookup("leakwatch_leak_suspected", Kind::Gauge).unwrap();
        assert!(d.help.contains(&listed), "{}", d.help);
    }

    #[test]
    fn every_per_target_family_has_a_collector() {
        for d in METRICS {
            let probe = d.name.starts_with("leakwatch_probe_");
            assert_eq!(
                d.collector.is_some(),
                d.per_target && !probe,
                "{}: per-target families name their collector, the others none",
                d.name
            );
        }
    }

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
