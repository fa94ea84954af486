//! Fuzzes the `heap?debug=1` text parser and everything leakwatch does with its
//! result: estimates, totals, and the `top` report over the estimated profile.
#![no_main]

use leakwatch::analysis::diff::{TopOptions, top};
use leakwatch::pprof::heap::parse_heap_text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = parse_heap_text(data) {
        let profile = text.estimate();
        let _ = profile.totals();
        let _ = top(&profile, &TopOptions::default());
        if let Some(m) = &text.memstats {
            let _ = m.last_pause_ns();
            let _ = m.max_pause_ns();
        }
    }
});
