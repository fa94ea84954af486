//! Fuzzes the protobuf profile decoder (gzip or raw) with a small decompression cap,
//! then reads the result both as a heap and as a goroutine profile.
#![no_main]

use leakwatch::pprof::proto::{decode, goroutine_profile, heap_profile};
use libfuzzer_sys::fuzz_target;

/// Small enough that a gzip bomb is cut off fast, big enough for the fixtures.
const MAX_DECOMPRESSED: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = decode(data, MAX_DECOMPRESSED) {
        if let Ok(h) = heap_profile(&p) {
            let _ = h.totals();
        }
        let _ = goroutine_profile(&p);
    }
});
