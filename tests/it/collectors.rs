//! The collectors of per-target series on a live target (a real Go service in a memory
//! cgroup with a limit, its process read through `pid:`): the lean default stays about
//! 50 series, each collector's flag and config switch add or remove exactly its
//! families, and the README's "series per target by collector" table matches what a
//! target with a process and a cgroup really exports.

use std::collections::BTreeMap;
use std::time::Duration;

use leakwatch::config::Collector;
use leakwatch::metrics::{METRICS, exposed_name};

use crate::stack::write_limit;
use crate::support::{Leakwatch, LeakyService, Metrics, TempCgroup, toolchains, wait_until};

/// Most series a target with a process and a cgroup has by default.
const LEAN_MAX: usize = 55;

/// The collector of an exposed series name (`None`: no collector, always exported).
fn collector_of(series: &str) -> Option<Collector> {
    METRICS
        .iter()
        .find(|d| exposed_name(d) == series)
        .unwrap_or_else(|| panic!("{series} is not in METRICS"))
        .collector
}

/// Series of target `t` by collector.
fn by_collector(m: &Metrics, t: &str) -> BTreeMap<Collector, usize> {
    let mut out = BTreeMap::new();
    for (name, labels, _) in &m.samples {
        if labels.get("target").map(String::as_str) == Some(t)
            && let Some(c) = collector_of(name)
        {
            *out.entry(c).or_default() += 1;
        }
    }
    out
}

/// The README's "series per target by collector" rows: (collector, default on, series).
fn readme_rows() -> Vec<(String, bool, usize)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let b = readme
        .find("<!-- collectors:begin -->")
        .expect("collectors table");
    let e = readme
        .find("<!-- collectors:end -->")
        .expect("collectors table end");
    readme[b..e]
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((
                name.to_string(),
                *cells.get(2)? == "on",
                cells.get(3)?.parse().ok()?,
            ))
        })
        .collect()
}

fn every_collector_yaml() -> String {
    let mut y = String::from("metrics:\n  collectors:\n");
    for c in Collector::ALL {
        y.push_str(&format!("    {}: true\n", c.name()));
    }
    y
}

#[test]
fn the_lean_default_and_each_collector_on_a_live_target() {
    let Some(cg) = TempCgroup::create_or_skip("leakwatch-collectors") else {
        return;
    };
    write_limit(&cg, 1 << 30);
    let svc = LeakyService::start_in_cgroup(
        &toolchains()[0],
        &["-mode", "heap", "-interval", "50ms"],
        &cg.procs(),
    );
    let base = format!(
        "defaults:\n  interval: 500ms\n  window: 6s\n  warmup: 2s\nsystem:\n  kernel_log: 'off'\n\
         targets:\n  - name: t\n    url: {}\n    pid: {}\n",
        svc.url,
        svc.pid()
    );
    // Lean; everything (the config) but budget (a flag wins); lean plus budget (a flag).
    let lean = Leakwatch::start(&base);
    let all = Leakwatch::start_with_args(
        &format!("{base}{}", every_collector_yaml()),
        &["--no-collector.budget"],
    );
    let plus = Leakwatch::start_with_args(&base, &["--collector.budget"]);
    // Until the window is full: the slopes, growth by function and time to OOM exist.
    wait_until(
        Duration::from_secs(60),
        "a full window on every instance",
        || {
            [&lean, &all, &plus]
                .iter()
                .all(|lw| {
                    lw.metrics()
                        .get(
                            "leakwatch_heap_live_slope_bytes_per_second",
                            &[("target", "t")],
                        )
                        .is_some()
                        && lw
                            .metrics()
                            .get("leakwatch_cgroup_memory_usage_bytes", &[])
                            .is_some()
                })
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let (m_lean, m_all, m_plus) = (lean.metrics(), all.metrics(), plus.metrics());
    let (c_lean, c_all, c_plus) = (
        by_collector(&m_lean, "t"),
        by_collector(&m_all, "t"),
        by_collector(&m_plus, "t"),
    );
    let total: usize = c_lean.values().sum();
    eprintln!("lean default: {total} series per target: {c_lean:?}");
    eprintln!(
        "every collector: {} series: {c_all:?}",
        c_all.values().sum::<usize>()
    );
    assert!(
        (30..=LEAN_MAX).contains(&total),
        "{total} series by default: {c_lean:?}"
    );
    for c in Collector::ALL {
        let (n_lean, n_all, n_plus) = (
            c_lean.get(&c).copied().unwrap_or(0),
            c_all.get(&c).copied().unwrap_or(0),
            c_plus.get(&c).copied().unwrap_or(0),
        );
        assert_eq!(
            n_lean > 0,
            c.default_on() && c != Collector::Dumps,
            "{c:?} lean: {n_lean}"
        );
        if c == Collector::Budget {
            assert_eq!(n_all, 0, "--no-collector.budget wins over the config");
            assert!(n_plus > 0, "--collector.budget turns it on");
        } else {
            // No dumps configured: that collector has nothing to show.
            assert_eq!(
                n_all > 0,
                c != Collector::Dumps,
                "{c:?} with everything on: {n_all}"
            );
            assert_eq!(
                n_plus > 0,
                n_lean > 0,
                "{c:?}: --collector.budget changed it"
            );
        }
    }

    // The README's table: every collector, its default, and its series here (within a
    // quarter or two series: the host's cgroup files and the service's timing vary).
    let rows = readme_rows();
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let want: Vec<&str> = Collector::ALL.iter().map(|c| c.name()).collect();
    assert_eq!(names, want, "README collectors table rows");
    for (name, on, series) in &rows {
        let c = Collector::from_name(name).unwrap();
        assert_eq!(*on, c.default_on(), "README default of {name}");
        let live = match c {
            Collector::Budget => c_plus.get(&c),
            _ => c_all.get(&c),
        }
        .copied()
        .unwrap_or(0);
        let slack = (*series / 4).max(2);
        assert!(
            live.abs_diff(*series) <= slack,
            "README says {name} is {series} series per target, a live target has {live}"
        );
    }

    // A reload that switches a collector on re-encodes the blocks at once.
    lean.reload_with(&format!(
        "{base}metrics:\n  collectors:\n    goroutine_states: true\n"
    ));
    wait_until(
        Duration::from_secs(20),
        "goroutines_by_state after the reload",
        || {
            by_collector(&lean.metrics(), "t")
                .get(&Collector::GoroutineStates)
                .map(|_| ())
        },
    );
}
