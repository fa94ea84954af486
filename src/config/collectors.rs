//! The switches of the per-target series (`metrics: collectors:` in the config,
//! `--collector.<name>` / `--no-collector.<name>` on the command line): the
//! collectors, their defaults and what each holds, and the set in force.
//!
//! The lean default keeps what the shipped rules, dashboards' core panels, the report
//! and landing pages need (about 50 series for a target with a process and a cgroup);
//! the detail families are off until asked for. Which metric family belongs to which
//! collector is a column of the metric table (`metrics::METRICS`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// A group of per-target metric families switched on or off together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collector {
    Scrape,
    Signals,
    Goroutines,
    Memstats,
    Process,
    Cgroup,
    Oom,
    Dumps,
    SignalsDetail,
    VerdictStates,
    TopFunctions,
    GoroutineStates,
    MemstatsDetail,
    HeapProfile,
    ProcessDetail,
    CgroupDetail,
    Budget,
}

/// (collector, name, on by default, what it holds).
const TABLE: &[(Collector, &str, bool, &str)] = &[
    (
        Collector::Scrape,
        "scrape",
        true,
        "up, scrape durations and errors, last scrape times",
    ),
    (
        Collector::Signals,
        "signals",
        true,
        "leak verdicts and scores, live heap and its slope, time to OOM and its inputs",
    ),
    (
        Collector::Goroutines,
        "goroutines",
        true,
        "goroutine count, HTTP client connections, proven-leaked goroutines",
    ),
    (
        Collector::Memstats,
        "memstats",
        true,
        "HeapAlloc, TotalAlloc, Sys, NextGC, GC cycles",
    ),
    (
        Collector::Process,
        "process",
        true,
        "RSS, pid, threads, open fds, GOGC and GOMEMLIMIT",
    ),
    (
        Collector::Cgroup,
        "cgroup",
        true,
        "container usage, working set, limits, memory.events",
    ),
    (Collector::Oom, "oom", true, "OOM kills from the kernel log"),
    (Collector::Dumps, "dumps", true, "profile dumps written"),
    (
        Collector::SignalsDetail,
        "signals_detail",
        false,
        "secondary slopes and ratios, in-use share by package, GC headroom and pauses, baseline bytes",
    ),
    (
        Collector::VerdictStates,
        "verdict_states",
        false,
        "leak_verdict: one series per kind and state (18)",
    ),
    (
        Collector::TopFunctions,
        "top_functions",
        false,
        "heap and goroutine growth, leaked goroutines, by function (top N plus other)",
    ),
    (
        Collector::GoroutineStates,
        "goroutine_states",
        false,
        "goroutines by what they are blocked on (10)",
    ),
    (
        Collector::MemstatsDetail,
        "memstats_detail",
        false,
        "the rest of runtime.MemStats (24)",
    ),
    (
        Collector::HeapProfile,
        "heap_profile",
        false,
        "heap profile totals, sampling rate and records",
    ),
    (
        Collector::ProcessDetail,
        "process_detail",
        false,
        "virtual memory, peak RSS, start time",
    ),
    (
        Collector::CgroupDetail,
        "cgroup_detail",
        false,
        "memory.stat breakdown, pressure (PSI), peak, swap, cgroup path",
    ),
    (
        Collector::Budget,
        "budget",
        false,
        "the overhead budget's internals: effective intervals, cost ratios",
    ),
];

impl Collector {
    /// Every collector, defaults on first.
    pub const ALL: [Collector; 17] = [
        Collector::Scrape,
        Collector::Signals,
        Collector::Goroutines,
        Collector::Memstats,
        Collector::Process,
        Collector::Cgroup,
        Collector::Oom,
        Collector::Dumps,
        Collector::SignalsDetail,
        Collector::VerdictStates,
        Collector::TopFunctions,
        Collector::GoroutineStates,
        Collector::MemstatsDetail,
        Collector::HeapProfile,
        Collector::ProcessDetail,
        Collector::CgroupDetail,
        Collector::Budget,
    ];

    fn row(self) -> &'static (Collector, &'static str, bool, &'static str) {
        TABLE
            .iter()
            .find(|r| r.0 == self)
            .expect("every collector has a row")
    }

    /// Its name in the config and the flags (`--collector.<name>`).
    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// Whether it is on when neither the config nor a flag says.
    pub fn default_on(self) -> bool {
        self.row().2
    }

    /// What it holds, for `--help` and the README.
    pub fn help(self) -> &'static str {
        self.row().3
    }

    pub fn from_name(name: &str) -> Option<Collector> {
        Collector::ALL.into_iter().find(|c| c.name() == name)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// The set of collectors in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Collectors(u32);

impl Collectors {
    /// Every collector on.
    pub const ALL: Collectors = Collectors(u32::MAX);

    /// Whether `c` is on.
    pub fn contains(self, c: Collector) -> bool {
        self.0 & c.bit() != 0
    }

    /// The defaults with `switches` applied in order (a later one wins).
    pub fn with(switches: impl IntoIterator<Item = (Collector, bool)>) -> Collectors {
        let mut set = Collector::ALL
            .into_iter()
            .filter(|c| c.default_on())
            .fold(0, |s, c| s | c.bit());
        for (c, on) in switches {
            if on {
                set |= c.bit();
            } else {
                set &= !c.bit();
            }
        }
        Collectors(set)
    }
}

impl Default for Collectors {
    fn default() -> Self {
        Collectors::with([])
    }
}

/// The `metrics:` section: `collectors: {name: true|false}` (unknown names refused).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub collectors: BTreeMap<Collector, bool>,
}

impl MetricsConfig {
    /// The config's switches, then `flags` over them (a flag wins).
    pub fn in_force(&self, flags: &[(Collector, bool)]) -> Collectors {
        Collectors::with(
            self.collectors
                .iter()
                .map(|(c, on)| (*c, *on))
                .chain(flags.iter().copied()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_collector_has_one_row_and_a_unique_name() {
        assert_eq!(TABLE.len(), Collector::ALL.len());
        for c in Collector::ALL {
            assert_eq!(Collector::from_name(c.name()), Some(c));
            let yaml = format!("collectors: {{{}: false}}", c.name());
            let m: MetricsConfig = serde_norway::from_str(&yaml).unwrap();
            assert!(!m.in_force(&[]).contains(c), "{}", c.name());
        }
    }

    #[test]
    fn switches_config_then_flags() {
        use Collector::*;
        // (config, flags, collector, on)
        type Case<'a> = (&'a str, &'a [(Collector, bool)], Collector, bool);
        let cases: &[Case] = &[
            ("{}", &[], Scrape, true),
            ("{}", &[], MemstatsDetail, false),
            (
                "collectors: {memstats_detail: true}",
                &[],
                MemstatsDetail,
                true,
            ),
            ("collectors: {memstats: false}", &[], Memstats, false),
            ("collectors: {memstats: false}", &[], Signals, true),
            (
                "collectors: {memstats_detail: true}",
                &[(MemstatsDetail, false)],
                MemstatsDetail,
                false,
            ),
            (
                "collectors: {budget: false}",
                &[(Budget, true)],
                Budget,
                true,
            ),
            ("{}", &[(Budget, true), (Budget, false)], Budget, false),
        ];
        for (yaml, flags, c, want) in cases {
            let m: MetricsConfig = serde_norway::from_str(yaml).unwrap();
            assert_eq!(
                m.in_force(flags).contains(*c),
                *want,
                "{yaml} {flags:?} {c:?}"
            );
        }
        assert!(Collectors::ALL.contains(Budget));
    }
}
