//! Live: `gc: auto` on a real Go service whose heap grows with no GC at all (GOGC=off:
//! the live heap is never measured unless someone asks). leakwatch must ask for a GC
//! (`heap?gc=1`, counted by the runtime as a forced GC) when none ran for a while but
//! HeapAlloc grew, rate-limited; never with `gc: false`; and never, even by default,
//! to a service that GCs often on its own.

use std::time::Duration;

use crate::stack::GoService;
use crate::support::{Leakwatch, toolchain, try_http_get};

const LEAK: &[&str] = &[
    "-mode",
    "heap",
    "-interval",
    "200ms",
    "-per-tick",
    "1",
    "-size",
    "64KiB",
];

/// A healthy sawtooth at 6.4 MB/s: the runtime GCs several times a second.
const HEALTHY: &[&str] = &[
    "-mode",
    "healthy",
    "-interval",
    "20ms",
    "-per-tick",
    "4",
    "-size",
    "32KiB",
];

/// `gc` None: the key left out (the default, `auto`).
fn config(url: &str, gc: Option<&str>) -> String {
    // warmup 10s: "no GC for a while" is a fifth of the warm-up (2 s), and at most one
    // forced GC as often.
    let gc = gc.map_or(String::new(), |g| format!("    gc: {g}\n"));
    format!(
        "system:\n  kernel_log: 'off'\ndefaults:\n  interval: 500ms\n  window: 60s\n  warmup: 10s\n  overhead_budget: 0\ntargets:\n  - name: svc\n    url: {url}\n{gc}"
    )
}

fn memstat(url: &str, field: &str) -> u64 {
    let (status, body) = try_http_get(&format!("{url}/debug/vars")).expect("GET /debug/vars");
    assert_eq!(status, 200);
    let vars: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    vars["memstats"][field].as_u64().expect("memstats field")
}

#[test]
fn gc_auto_forces_a_gc_only_when_the_heap_grew_without_one() {
    let tc = toolchain("1.26");
    let dir = tempfile::tempdir().unwrap();
    // (service flags, GOGC, gc key, whether leakwatch must ask for GCs)
    let cases: [(&[&str], &str, Option<&str>, bool); 4] = [
        (LEAK, "off", Some("false"), false),
        (LEAK, "off", Some("auto"), true),
        (LEAK, "off", None, true),
        (HEALTHY, "100", None, false),
    ];
    for (flags, gogc, gc, want_forced) in cases {
        let svc = GoService::start(&tc, flags, &[("GOGC", gogc)], None, dir.path());
        let lw = Leakwatch::start(&config(&svc.url, gc));
        std::thread::sleep(Duration::from_secs(30));
        let forced = memstat(&svc.url, "NumForcedGC");
        let num_gc = memstat(&svc.url, "NumGC");
        drop(lw);
        let case = format!("{} GOGC={gogc} gc: {}", flags[1], gc.unwrap_or("(default)"));
        eprintln!("{case}: NumForcedGC {forced} of NumGC {num_gc} after 30 s");
        if want_forced {
            assert!(forced >= 1, "{case}: never asked for a GC ({num_gc} GCs)");
            // Rate-limited: at most one per 2 s (plus the first).
            assert!(forced <= 16, "{case}: asked {forced} times in 30 s");
        } else {
            assert_eq!(forced, 0, "{case}: forced {forced} of {num_gc} GCs");
        }
    }
}
