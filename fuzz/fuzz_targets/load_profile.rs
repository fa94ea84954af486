//! Fuzzes `leakwatch diff`/`top`'s profile loader (gzip or not, proto or debug=1 text)
//! with a small decompression cap, and the diff of the profile against itself.
#![no_main]

use leakwatch::analysis::diff::{TopOptions, diff, top};
use leakwatch::pprof::load::load_profile;
use libfuzzer_sys::fuzz_target;

const MAX_BYTES: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = load_profile(data, MAX_BYTES) {
        let opts = TopOptions::default();
        let _ = top(&p, &opts);
        let _ = diff(&p, &p, &opts);
    }
});
