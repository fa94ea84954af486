//! Fuzzes every parser of a cgroup or /proc file: the input is read as the kernel
//! file would be (lossy UTF-8, like a `read_to_string` that succeeded) and handed to
//! each parser in turn.
#![no_main]

use leakwatch::system::cgroup::{
    parse_flat_keyed, parse_max_file, parse_pressure, parse_u64_file, parse_v1_limit,
    parse_v1_oom_control,
};
use leakwatch::system::discover::{parse_pid_file, parse_proc_cgroup};
use leakwatch::system::proc::{parse_gogc, parse_gomemlimit, parse_status};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    let _ = parse_flat_keyed("memory.stat", text);
    let _ = parse_pressure(text);
    let _ = parse_max_file("memory.max", text);
    let _ = parse_u64_file("memory.current", text);
    let _ = parse_v1_limit(text);
    let _ = parse_v1_oom_control(text);
    let _ = parse_proc_cgroup(text);
    let _ = parse_pid_file(text);
    let _ = parse_status(text);
    let _ = parse_gomemlimit(text);
    let _ = parse_gogc(text);
});
