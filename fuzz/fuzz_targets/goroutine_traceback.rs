//! Fuzzes the `goroutine?debug=2` traceback parser and the state counts over it.
#![no_main]

use leakwatch::pprof::goroutine::{count_tracebacks_by_state, parse_goroutine_traceback};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tb) = parse_goroutine_traceback(data) {
        let _ = count_tracebacks_by_state(&tb);
    }
});
