//! Fuzzes the `goroutine?debug=1` / `goroutineleak?debug=1` parser and the summaries
//! leakwatch derives from it (states, HTTP client connections).
#![no_main]

use leakwatch::pprof::goroutine::{count_by_state, http_client_connections, parse_goroutine_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = parse_goroutine_text(data) {
        let profile = text.to_profile();
        let _ = count_by_state(&profile);
        let _ = http_client_connections(&profile);
    }
});
