//! Fuzzes the kernel-log parsers: `/dev/kmsg` records and `dmesg` lines, the OOM
//! messages, and the merging of summary and `Killed process` lines into kills.
#![no_main]

use leakwatch::system::kmsg::{parse_kmsg_record, parse_oom, parse_oom_log};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        let _ = parse_kmsg_record(line);
        let _ = parse_oom(line);
    }
    let _ = parse_oom_log(&text);
});
