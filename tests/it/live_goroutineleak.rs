//! Live tests of Go's `goroutineleak` profile against real leaky-service processes:
//! detection from the `/debug/pprof/` index (Go 1.27, Go 1.26 built with
//! `GOEXPERIMENT=goroutineleakprofile`, not plain 1.26 or 1.19), the leaked counts
//! against the service's own ground truth, the certain goroutine verdict naming the
//! leaking function, and detection again after the process behind the URL changes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::support::{
    GoToolchain, Leakwatch, LeakyService, Metrics, build_leaky_service, toolchain, wait_until,
};

/// Orphans (unreachable channels: the runtime proves them leaked) and workers (reachable
/// channels: blocked, not provably leaked) at the same rate, 40/s each.
const SERVICE: &[&str] = &[
    "-mode",
    "orphan,goroutine",
    "-interval",
    "50ms",
    "-per-tick",
    "2",
];

/// What Go 1.26 needs at build time to serve the profile.
const LEAKPROF_EXPERIMENT: &[(&str, &str)] = &[("GOEXPERIMENT", "goroutineleakprofile")];

/// The leaking function of orphan mode.
const ORPHAN_FN: &str = "main.waitOrphaned";

/// Fast scrapes and a short warmup; `overhead_budget: 0` keeps the intervals as
/// configured, so the profile is fetched every second.
fn config(targets: &[(&str, &str)]) -> String {
    let mut yaml = String::from(concat!(
        "defaults:\n",
        "  interval: 250ms\n",
        "  timeout: 5s\n",
        "  window: 20s\n",
        "  warmup: 4s\n",
        "  overhead_budget: 0\n",
        "  goroutineleak_interval: 1s\n",
        "system:\n",
        "  kernel_log: 'off'\n",
        // The by-function and budget series this file reads are off by default.
        "metrics:\n",
        "  collectors: {top_functions: true, budget: true}\n",
        "targets:\n",
    ));
    for (name, url) in targets {
        yaml.push_str(&format!("  - name: {name}\n    url: {url}\n"));
    }
    yaml
}

/// Runs each closure in its own thread, re-raising the first panic.
fn in_parallel<T: Send>(jobs: Vec<Box<dyn FnOnce() -> T + Send + '_>>) -> Vec<T> {
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs.into_iter().map(|j| s.spawn(j)).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Polls `f` every 100 ms until it returns Some, or None after `timeout` (for asserts
/// that explain what leakwatch did instead of a bare timeout).
fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The series of `name` belonging to `target`, as "labels value" lines.
fn target_series(m: &Metrics, name: &str, target: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    m.series(name)
        .into_iter()
        .filter(|(l, _)| l.get("target").map(String::as_str) == Some(target))
        .collect()
}

/// Every goroutineleak-related line of `target` in the exposition, for messages.
fn leak_lines(m: &Metrics, target: &str) -> String {
    m.text
        .lines()
        .filter(|l| {
            !l.starts_with('#')
                && l.contains(&format!("target=\"{target}\""))
                && (l.contains("goroutineleak")
                    || l.contains("goroutines_leaked")
                    || l.contains("leakwatch_up")
                    || l.contains("kind=\"goroutine\""))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn available(m: &Metrics, target: &str) -> Option<f64> {
    m.get(
        "leakwatch_goroutineleak_profile_available",
        &[("target", target)],
    )
}

fn leaked(m: &Metrics, target: &str) -> Option<f64> {
    m.get("leakwatch_goroutines_leaked", &[("target", target)])
}

/// Errors counted for the goroutineleak endpoint, any reason.
fn goroutineleak_errors(m: &Metrics, target: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    target_series(m, "leakwatch_scrape_errors_total", target)
        .into_iter()
        .filter(|(l, _)| l.get("endpoint").map(String::as_str) == Some("goroutineleak"))
        .collect()
}

/// The numbers in "the Go runtime proved N goroutines leaked (up from F), most in
/// FUNC (K)" of a page: (N, F, K).
fn proof_reason(page: &str, func: &str) -> Option<(u64, u64, u64)> {
    let rest = page.split("the Go runtime proved ").nth(1)?;
    let (n, rest) = rest.split_once(" goroutines leaked (up from ")?;
    let (first, rest) = rest.split_once("), most in ")?;
    let k = rest
        .strip_prefix(func)?
        .strip_prefix(" (")?
        .split(')')
        .next()?;
    Some((n.parse().ok()?, first.parse().ok()?, k.parse().ok()?))
}

/// What one proving target measured, for the report.
struct Measured {
    what: String,
    orphans_before: u64,
    leaked: u64,
    orphans_after: u64,
    workers: u64,
    goroutines_total: f64,
    by_orphan_fn: f64,
    reason: (u64, u64, u64),
}

/// Everything test 1 asserts for one target serving the profile.
fn assert_proves_orphans(lw: &Leakwatch, svc: &LeakyService, name: &str, what: &str) -> Measured {
    let t = [("target", name)];
    let first = wait_until(Duration::from_secs(10), "a first leaked count", || {
        let m = lw.metrics();
        leaked(&m, name).filter(|&l| l > 0.0).map(|l| (l, m))
    });
    let (first_leaked, m) = first;
    assert_eq!(
        available(&m, name),
        Some(1.0),
        "{what}:\n{}",
        leak_lines(&m, name)
    );

    // Ground truth: the service's orphan count read before and after a leakwatch reading
    // whose profile was taken after the first read. The workers started meanwhile would
    // double it if they were counted.
    wait_until(Duration::from_secs(10), "60 orphans", || {
        Some(()).filter(|_| svc.leaked_count("orphan") >= 60)
    });
    let orphans_before = svc.leaked_count("orphan");
    let workers = svc.leaked_count("goroutine");
    let m = poll(Duration::from_secs(10), || {
        let m = lw.metrics();
        leaked(&m, name)
            .filter(|&l| l >= orphans_before as f64 && l > first_leaked)
            .map(|_| m)
    })
    .unwrap_or_else(|| {
        let m = lw.metrics();
        panic!(
            "{what}: leaked never reached the {orphans_before} orphans the service had started:\n{}",
            leak_lines(&m, name)
        )
    });
    let orphans_after = svc.leaked_count("orphan");
    let leaked_now = leaked(&m, name).unwrap();
    assert!(
        leaked_now > first_leaked,
        "{what}: leaked did not grow: {first_leaked} -> {leaked_now}"
    );
    assert!(
        leaked_now <= orphans_after as f64,
        "{what}: leakwatch says {leaked_now} leaked but the service only ever started \
         {orphans_after} orphans (and {workers} reachable workers, which must not count)"
    );
    // The goroutine profile (a newer reading) has orphans and workers: about double.
    let goroutines_total = m.get("leakwatch_goroutines", &t).unwrap_or(0.0);
    assert!(
        goroutines_total >= 1.5 * leaked_now,
        "{what}: {goroutines_total} goroutines in all vs {leaked_now} leaked"
    );

    // Nearly all (in practice: all) in the orphan function; the series add up.
    let by_fn = target_series(&m, "leakwatch_goroutines_leaked_by_function", name);
    let by_orphan_fn = by_fn
        .iter()
        .find(|(l, _)| l.get("function").map(String::as_str) == Some(ORPHAN_FN))
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("{what}: no {ORPHAN_FN} series:\n{}", leak_lines(&m, name)));
    let sum: f64 = by_fn.iter().map(|(_, v)| v).sum();
    assert_eq!(sum, leaked_now, "{what}:\n{}", leak_lines(&m, name));
    assert!(
        by_orphan_fn >= 0.95 * leaked_now,
        "{what}: {by_orphan_fn} of {leaked_now} in {ORPHAN_FN}:\n{}",
        leak_lines(&m, name)
    );
    assert!(
        goroutineleak_errors(&m, name).is_empty(),
        "{what}:\n{}",
        leak_lines(&m, name)
    );

    // The runtime's proof makes the goroutine verdict certain, naming the function.
    let score = [("target", name), ("kind", "goroutine")];
    poll(Duration::from_secs(15), || {
        Some(()).filter(|_| lw.metrics().get("leakwatch_leak_score", &score) == Some(1.0))
    })
    .unwrap_or_else(|| {
        let m = lw.metrics();
        panic!(
            "{what}: goroutine leak score never reached 1:\n{}",
            leak_lines(&m, name)
        )
    });
    let page_of = |path: &str| String::from_utf8_lossy(&lw.get(path).1).into_owned();
    let report_path = format!("/targets/{name}");
    let reason = poll(Duration::from_secs(10), || {
        proof_reason(&page_of(&report_path), ORPHAN_FN)
    })
    .unwrap_or_else(|| {
        panic!(
            "{what}: {report_path} never named {ORPHAN_FN} in the proof:\n{}",
            page_of(&report_path)
        )
    });
    let (proved, from, in_fn) = reason;
    assert!(proved > from, "{what}: {reason:?}");
    assert!(in_fn as f64 >= 0.95 * proved as f64, "{what}: {reason:?}");
    let landing = page_of("/");
    assert!(
        landing.contains("the Go runtime proved ")
            && landing.contains(&format!("most in {ORPHAN_FN} (")),
        "{what}: landing page lacks the proof:\n{landing}"
    );
    Measured {
        what: what.to_string(),
        orphans_before,
        leaked: leaked_now as u64,
        orphans_after,
        workers,
        goroutines_total,
        by_orphan_fn,
        reason,
    }
}

#[test]
fn live_goroutineleak_proves_orphans_on_go127_and_go126_experiment() {
    let go127 = toolchain("1.27");
    let go126 = toolchain("1.26");
    // Build both first (a cold GOEXPERIMENT build recompiles the standard library), so
    // the two services start together.
    crate::support::build_leaky_service(&go127);
    crate::support::build_leaky_service_with_env(&go126, LEAKPROF_EXPERIMENT);
    let mut svcs = in_parallel(vec![
        Box::new(|| LeakyService::start(&go127, SERVICE)),
        Box::new(|| LeakyService::start_with_build_env(&go126, LEAKPROF_EXPERIMENT, SERVICE)),
    ]);
    let exp = svcs.pop().unwrap();
    let plain = svcs.pop().unwrap();
    let lw = Leakwatch::start(&config(&[("go127", &plain.url), ("go126x", &exp.url)]));
    let measured = in_parallel(vec![
        Box::new(|| assert_proves_orphans(&lw, &plain, "go127", "Go 1.27")),
        Box::new(|| {
            assert_proves_orphans(
                &lw,
                &exp,
                "go126x",
                "Go 1.26 GOEXPERIMENT=goroutineleakprofile",
            )
        }),
    ]);
    for m in measured {
        eprintln!(
            "{}: leaked {} (of which {} in {ORPHAN_FN}) vs orphans started {}..{}; \
             {} reachable workers not counted; {} goroutines in all; page: proved {} \
             (up from {}), {} in {ORPHAN_FN}",
            m.what,
            m.leaked,
            m.by_orphan_fn,
            m.orphans_before,
            m.orphans_after,
            m.workers,
            m.goroutines_total,
            m.reason.0,
            m.reason.1,
            m.reason.2
        );
    }
}

/// Leakwatch settles on "not available" for a target: availability 0, with its
/// goroutine profile read (so the target itself is fine).
fn assert_not_available(lw: &Leakwatch, svc: &LeakyService, name: &str, tc: &GoToolchain) {
    let what = format!("Go {} ({name})", tc.version);
    // The service itself has no such profile: the ground truth.
    let (status, _) = svc.get("/debug/pprof/goroutineleak?debug=1");
    assert_eq!(status, 404, "{what}");
    let t = [("target", name)];
    let settled = poll(Duration::from_secs(10), || {
        let m = lw.metrics();
        (available(&m, name) == Some(0.0)
            && m.get("leakwatch_up", &t) == Some(1.0)
            && m.get("leakwatch_goroutines", &t).is_some())
        .then_some(())
    });
    assert!(
        settled.is_some(),
        "{what}: availability never settled at 0:\n{}",
        leak_lines(&lw.metrics(), name)
    );
}

#[test]
fn live_goroutineleak_unavailable_on_go119_and_plain_go126() {
    let go119 = toolchain("1.19");
    let go126 = toolchain("1.26");
    let mut svcs = in_parallel(vec![
        Box::new(|| LeakyService::start(&go119, SERVICE)),
        Box::new(|| LeakyService::start(&go126, SERVICE)),
    ]);
    let plain126 = svcs.pop().unwrap();
    let old = svcs.pop().unwrap();
    let lw = Leakwatch::start(&config(&[("go119", &old.url), ("go126", &plain126.url)]));
    in_parallel(vec![
        Box::new(|| assert_not_available(&lw, &old, "go119", &go119)),
        Box::new(|| assert_not_available(&lw, &plain126, "go126", &go126)),
    ]);
    // More than two goroutineleak intervals: had leakwatch asked for the profile anyway,
    // its errors or series would show by now.
    std::thread::sleep(Duration::from_millis(2500));
    let m = lw.metrics();
    for name in ["go119", "go126"] {
        assert_eq!(available(&m, name), Some(0.0), "{name}");
        for series in [
            "leakwatch_goroutines_leaked",
            "leakwatch_goroutines_leaked_by_function",
        ] {
            assert!(
                target_series(&m, series, name).is_empty(),
                "{name} has {series}:\n{}",
                leak_lines(&m, name)
            );
        }
        assert!(
            goroutineleak_errors(&m, name).is_empty(),
            "{name}:\n{}",
            leak_lines(&m, name)
        );
        // Only the endpoints it uses are scheduled.
        assert!(
            !target_series(&m, "leakwatch_effective_interval_seconds", name)
                .iter()
                .any(|(l, _)| l.get("endpoint").map(String::as_str) == Some("goroutineleak")),
            "{name}:\n{}",
            m.text
        );
    }
}

#[test]
fn live_goroutineleak_detected_again_after_restart() {
    let go127 = toolchain("1.27");
    let go119 = toolchain("1.19");
    // Built up front: the swap at the same port should take as little time as possible.
    let (_, _) = (build_leaky_service(&go127), build_leaky_service(&go119));
    let svc = LeakyService::start(&go127, SERVICE);
    let port = svc.addr.port();
    let name = "svc";
    let lw = Leakwatch::start(&config(&[(name, &svc.url)]));
    let before = wait_until(
        Duration::from_secs(10),
        "leaked goroutines on Go 1.27",
        || {
            let m = lw.metrics();
            leaked(&m, name)
                .filter(|&l| l >= 20.0 && available(&m, name) == Some(1.0))
                .map(|l| (l, m))
        },
    );
    assert!(
        target_series(&before.1, "leakwatch_goroutines_leaked_by_function", name)
            .iter()
            .any(|(l, v)| l.get("function").map(String::as_str) == Some(ORPHAN_FN) && *v > 0.0)
    );

    // Go 1.27 -> Go 1.19 at the same URL.
    drop(svc);
    let old = LeakyService::start_on_port(&go119, SERVICE, port);
    let swapped = Instant::now();
    let redetected = poll(Duration::from_secs(10), || {
        let m = lw.metrics();
        (available(&m, name) == Some(0.0) && leaked(&m, name).is_none()).then_some(m)
    });
    let m = lw.metrics();
    assert!(
        redetected.is_some(),
        "after Go 1.27 -> Go 1.19 on port {port} ({:.1}s ago) leakwatch still shows:\n{}\n\
         restart logged: {}",
        swapped.elapsed().as_secs_f64(),
        leak_lines(&m, name),
        lw.stderr().contains("process restarted"),
    );
    assert!(
        target_series(&m, "leakwatch_goroutines_leaked_by_function", name).is_empty(),
        "{}",
        leak_lines(&m, name)
    );
    eprintln!(
        "Go 1.27 -> 1.19: availability 0 and leaked series gone after {:.1}s",
        swapped.elapsed().as_secs_f64()
    );

    // And back: Go 1.19 -> Go 1.27. The count is the new process's, not the old one's.
    drop(old);
    let svc = LeakyService::start_on_port(&go127, SERVICE, port);
    let swapped = Instant::now();
    let again = poll(Duration::from_secs(10), || {
        let m = lw.metrics();
        (available(&m, name) == Some(1.0))
            .then(|| leaked(&m, name))
            .flatten()
            .filter(|&l| l > 0.0)
    });
    let orphans = svc.leaked_count("orphan");
    let again = again.unwrap_or_else(|| {
        panic!(
            "after Go 1.19 -> Go 1.27 ({:.1}s ago) leakwatch shows:\n{}",
            swapped.elapsed().as_secs_f64(),
            leak_lines(&lw.metrics(), name)
        )
    });
    assert!(
        again <= orphans as f64,
        "leaked {again} > {orphans} orphans of the new process"
    );
    eprintln!(
        "Go 1.19 -> 1.27: leaked {again} (new process has {orphans} orphans) after {:.1}s; \
         first process had {}",
        swapped.elapsed().as_secs_f64(),
        before.0
    );
}
