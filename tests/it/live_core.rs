//! Live: the example Go service built with each toolchain (Go 1.19 and Go 1.26), run on
//! 127.0.0.1, watched by the real leakwatch binary. leakwatch's MemStats are checked
//! against the service's own `/debug/vars` read just before and just after the scrape
//! they came from; its goroutine count against the service's `runtime.NumGoroutine()`.

use std::time::Duration;

use crate::support::{Leakwatch, LeakyService, Metrics, toolchains, wait_until};

fn config(url: &str) -> String {
    format!(
        "defaults:\n  interval: 300ms\n  timeout: 5s\n  overhead_budget: 0\n\
         metrics:\n  collectors: {{memstats_detail: true, goroutine_states: true}}\n\
         targets:\n  - name: svc\n    url: {url}\n    heap_format: text\n"
    )
}

/// Waits for a scrape that *started* after `t0` (its end is more than a second past
/// `t0` and it took well under a second) and returns the metrics page.
/// The service's own MemStats fields and goroutine count, lowest and highest over the
/// reads taken while leakwatch scraped it.
#[derive(Default)]
struct Span(std::collections::BTreeMap<String, (f64, f64)>);

impl Span {
    fn read(&mut self, svc: &LeakyService, fields: &[&str]) {
        let vars = svc.vars()["memstats"].clone();
        let goroutines = svc.leaked()["goroutines"] as f64;
        let values = fields
            .iter()
            .map(|f| (f.to_string(), vars[*f].as_f64()))
            .chain([("goroutines".to_string(), Some(goroutines))]);
        for (f, v) in values {
            let v = v.unwrap_or_else(|| panic!("/debug/vars has no {f}"));
            let e = self.0.entry(f).or_insert((v, v));
            *e = (e.0.min(v), e.1.max(v));
        }
    }

    fn get(&self, f: &str) -> (f64, f64) {
        self.0[f]
    }
}

/// Metrics from a tick that began after the first read of the service, read while
/// reading the service again and again: the second tick to finish analysing after that
/// read began after it (the first may have been running), and its values are shown
/// whole (a tick's requests, then its analysis, then its metrics).
fn metrics_spanned(
    lw: &Leakwatch,
    svc: &LeakyService,
    fields: &[&str],
    span: &mut Span,
) -> Metrics {
    let samples = |m: &Metrics| m.get("leakwatch_window_samples", &[("target", "svc")]);
    span.read(svc, fields);
    let s0 = samples(&lw.metrics()).unwrap_or(0.0);
    let m = wait_until(
        Duration::from_secs(20),
        "a tick begun after the first read",
        || {
            span.read(svc, fields);
            let m = lw.metrics();
            (samples(&m)? >= s0 + 2.0).then_some(m)
        },
    );
    span.read(svc, fields);
    m
}

/// Cumulative MemStats counters: the scrape happened within the reads, so its value
/// lies within theirs. Gauges move both ways: within 25% of the range the reads span,
/// or a floor in the gauge's own unit (1 MiB of a size, 1,000 objects of a count: a byte
/// floor on a count could never fail).
#[test]
fn memstats_match_the_service_own_expvar() {
    for tc in toolchains() {
        let svc = LeakyService::start(
            &tc,
            &[
                "-mode",
                "heap,goroutine",
                "-interval",
                "50ms",
                "-per-tick",
                "2",
                "-size",
                "16384",
            ],
        );
        let lw = Leakwatch::start(&config(&svc.url));
        wait_until(Duration::from_secs(20), "leakwatch_up 1", || {
            (lw.metrics().get("leakwatch_up", &[("target", "svc")]) == Some(1.0)).then_some(())
        });

        const COUNTERS: [(&str, &str); 4] = [
            ("leakwatch_go_memstats_alloc_bytes_total", "TotalAlloc"),
            ("leakwatch_go_memstats_mallocs_total", "Mallocs"),
            ("leakwatch_go_memstats_frees_total", "Frees"),
            ("leakwatch_go_memstats_gc_cycles_total", "NumGC"),
        ];
        const MIB: f64 = 1024.0 * 1024.0;
        const OBJECTS: f64 = 1000.0;
        const GAUGES: [(&str, &str, f64); 8] = [
            ("leakwatch_go_memstats_heap_alloc_bytes", "HeapAlloc", MIB),
            ("leakwatch_go_memstats_alloc_bytes", "Alloc", MIB),
            ("leakwatch_go_memstats_sys_bytes", "Sys", MIB),
            ("leakwatch_go_memstats_heap_sys_bytes", "HeapSys", MIB),
            ("leakwatch_go_memstats_heap_inuse_bytes", "HeapInuse", MIB),
            ("leakwatch_go_memstats_heap_objects", "HeapObjects", OBJECTS),
            ("leakwatch_go_memstats_next_gc_bytes", "NextGC", MIB),
            ("leakwatch_go_memstats_stack_inuse_bytes", "StackInuse", MIB),
        ];
        let fields: Vec<&str> = COUNTERS
            .iter()
            .map(|c| c.1)
            .chain(GAUGES.iter().map(|g| g.1))
            .collect();
        let mut span = Span::default();
        let m = metrics_spanned(&lw, &svc, &fields, &mut span);
        let v = |name: &str| {
            m.get(name, &[("target", "svc")])
                .unwrap_or_else(|| panic!("go{}: no {name} in\n{}", tc.version, m.text))
        };
        for (metric, f) in COUNTERS {
            let ((lo, hi), got) = (span.get(f), v(metric));
            assert!(
                lo <= got && got <= hi,
                "go{}: {metric} = {got} is not within /debug/vars {f} {lo}..{hi}",
                tc.version
            );
        }
        for (metric, f, floor) in GAUGES {
            let ((lo, hi), got) = (span.get(f), v(metric));
            let slack = (hi * 0.25).max(floor);
            assert!(
                got >= lo - slack && got <= hi + slack,
                "go{}: {metric} = {got}, /debug/vars {f} {lo}..{hi}",
                tc.version
            );
        }
        // Goroutines: the leak adds 2 per 50 ms; the service's own HTTP handlers add a few.
        let g = v("leakwatch_goroutines");
        let (goroutines_before, goroutines_after) = span.get("goroutines");
        assert!(
            g >= goroutines_before - 3.0 && g <= goroutines_after + 3.0,
            "go{}: leakwatch_goroutines {g}, service said {goroutines_before}..{goroutines_after}",
            tc.version
        );
        let waiting = m
            .get(
                "leakwatch_goroutines_by_state",
                &[("target", "svc"), ("state", "chan_receive")],
            )
            .unwrap();
        assert!(
            waiting >= goroutines_before - 10.0,
            "go{}: {waiting} goroutines in chan_receive, expected about {goroutines_before}",
            tc.version
        );
        assert_eq!(v("leakwatch_up"), 1.0);
    }
}

/// A service that goes away: `leakwatch_up` drops to 0 with a connect error while
/// `/metrics` keeps answering; it comes back when the service does.
#[test]
fn target_down_then_back() {
    let tc = &toolchains()[0];
    let svc = LeakyService::start(tc, &["-mode", "healthy"]);
    let url = svc.url.clone();
    let port = svc.addr.port();
    let lw = Leakwatch::start(&config(&url));
    wait_until(Duration::from_secs(20), "up 1", || {
        (lw.metrics().get("leakwatch_up", &[("target", "svc")]) == Some(1.0)).then_some(())
    });
    drop(svc);
    let m = wait_until(Duration::from_secs(20), "up 0", || {
        let m = lw.metrics();
        (m.get("leakwatch_up", &[("target", "svc")]) == Some(0.0)).then_some(m)
    });
    assert!(
        m.get(
            "leakwatch_scrape_errors_total",
            &[
                ("target", "svc"),
                ("endpoint", "heap"),
                ("reason", "connect")
            ]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{}",
        m.text
    );
    // No stale MemStats: a series is current or absent.
    assert!(
        !m.has("leakwatch_go_memstats_heap_alloc_bytes"),
        "{}",
        m.text
    );
    let errors_while_down = m
        .get(
            "leakwatch_scrape_errors_total",
            &[
                ("target", "svc"),
                ("endpoint", "heap"),
                ("reason", "connect"),
            ],
        )
        .unwrap_or(0.0);

    // Back: the same service on the same address. leakwatch picks it up again without
    // a restart or reload, and its series come back.
    let svc = LeakyService::start_on_port(tc, &["-mode", "healthy"], port);
    assert_eq!(svc.url, url, "the service came back elsewhere");
    let m = wait_until(Duration::from_secs(20), "up 1 again", || {
        let m = lw.metrics();
        (m.get("leakwatch_up", &[("target", "svc")]) == Some(1.0)
            && m.has("leakwatch_go_memstats_heap_alloc_bytes"))
        .then_some(m)
    });
    let heap_alloc = m
        .get(
            "leakwatch_go_memstats_heap_alloc_bytes",
            &[("target", "svc")],
        )
        .unwrap_or(0.0);
    let own = svc.memstat("HeapAlloc") as f64;
    assert!(
        heap_alloc > 0.0 && heap_alloc < own * 4.0 + 16.0 * 1024.0 * 1024.0,
        "HeapAlloc {heap_alloc} after the restart, the service says {own}"
    );
    // Errors are counted, never reset, and stop growing once the service is back.
    let errors = |m: &crate::support::Metrics| {
        m.get(
            "leakwatch_scrape_errors_total",
            &[
                ("target", "svc"),
                ("endpoint", "heap"),
                ("reason", "connect"),
            ],
        )
        .unwrap_or(0.0)
    };
    let back = errors(&m);
    assert!(back >= errors_while_down, "{back} < {errors_while_down}");
    std::thread::sleep(Duration::from_secs(1));
    let later = lw.metrics();
    assert_eq!(
        errors(&later),
        back,
        "connect errors while the service is up"
    );
    assert_eq!(later.get("leakwatch_up", &[("target", "svc")]), Some(1.0));
    drop(svc);
}
