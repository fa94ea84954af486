//! Fuzzes the `/debug/vars` (expvar JSON) MemStats parser.
#![no_main]

use leakwatch::pprof::memstats::parse_expvar;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = parse_expvar(data) {
        let _ = m.last_pause_ns();
        let _ = m.max_pause_ns();
    }
});
