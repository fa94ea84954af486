//! Live: `gc: auto` on a real Go service whose heap grows with no GC at all (GOGC=off:
//! the live heap is never measured unless someone asks). leakwatch must ask for a GC
//! (`heap?gc=1`, counted by the runtime as a forced GC) when none ran for a while but
//! HeapAlloc grew, rate-limited; and never with `gc: false`, the default.

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

fn config(url: &str, gc: &str) -> String {
    // warmup 10s: "no GC for a while" is half the warm-up (5 s), one forced GC per
    // warm-up at most (10 s).
    format!(
        "system:\n  kernel_log: 'off'\ndefaults:\n  interval: 500ms\n  window: 60s\n  warmup: 10s\n  overhead_budget: 0\ntargets:\n  - name: svc\n    url: {url}\n    gc: {gc}\n"
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
    for (gc, want_forced) in [("false", false), ("auto", true)] {
        let svc = GoService::start(&tc, LEAK, &[("GOGC", "off")], None, dir.path());
        let lw = Leakwatch::start(&config(&svc.url, gc));
        std::thread::sleep(Duration::from_secs(30));
        let forced = memstat(&svc.url, "NumForcedGC");
        let num_gc = memstat(&svc.url, "NumGC");
        drop(lw);
        eprintln!("gc: {gc}: NumForcedGC {forced} of NumGC {num_gc} after 30 s");
        if want_forced {
            assert!(forced >= 1, "gc: auto never asked for a GC ({num_gc} GCs)");
            // Rate-limited: at most one per 10 s warm-up (plus the first).
            assert!(forced <= 4, "gc: auto asked {forced} times in 30 s");
        } else {
            assert_eq!(forced, 0, "gc: false forced {forced} GCs");
        }
    }
}
