//! The `heap?debug=1` / `allocs?debug=1` text parser, MemStats (text trailer and expvar),
//! pprof's scaling, against every captured fixture; no-panic checks on truncated and
//! corrupted bodies; the golden rendering of one estimate.

use std::io::Read;
use std::path::{Path, PathBuf};

use leakwatch::Error;
use leakwatch::metrics::emit::Emit;
use leakwatch::metrics::{Kind, METRICS, Sink};
use leakwatch::pprof::funcname;
use leakwatch::pprof::heap::{
    HeapEstimateReader, HeapText, parse_heap_estimate, parse_heap_text, scale_sample,
};
use leakwatch::pprof::memstats::{MemStats, parse_expvar};
use leakwatch::pprof::{HeapProfile, Name};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fixture's bytes, gunzipped when its name ends in `.gz` (the callsites captures).
fn read_fixture(rel: &str) -> Vec<u8> {
    let path = fixtures().join(rel);
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if rel.ends_with(".gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("gunzip {rel}: {e}"));
        out
    } else {
        raw
    }
}

fn parse_fixture(rel: &str) -> HeapText {
    parse_heap_text(&read_fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every file under `dir` (relative to the fixtures root) whose name passes `keep`.
fn walk(dir: &Path, keep: &dyn Fn(&str) -> bool, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, keep, out);
        } else if keep(p.file_name().unwrap().to_str().unwrap()) {
            let rel = p
                .strip_prefix(fixtures())
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            out.push(rel);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Order {
    /// Go <= 1.22: in-use bytes descending.
    Desc,
    /// Go >= 1.23: in-use bytes ascending.
    Asc,
    /// Fewer than two distinct in-use byte values: order says nothing.
    Any,
}

struct Case {
    path: &'static str,
    records: usize,
    /// inuse objects, inuse bytes, alloc objects, alloc bytes, N of heap/N.
    header: [u64; 5],
    order: Order,
    alloc: u64,
    heap_alloc: u64,
    num_gc: u64,
    max_rss: u64,
}

/// Read off each file: record count, header line, and the MemStats lines.
#[rustfmt::skip]
const CASES: &[Case] = &[
    Case { path: "cgroup-v2-vm/kernel-6.1/s1_early/leakyapp/heap_debug1.txt", records: 1, header: [14, 1835008, 14, 1835009, 1048576], order: Order::Any, alloc: 15873032, heap_alloc: 15873032, num_gc: 3, max_rss: 25292800 },
    Case { path: "cgroup-v2-vm/kernel-6.1/s1_early/steady/heap_debug1.txt", records: 1, header: [6, 393216, 6, 393217, 1048576], order: Order::Any, alloc: 12713184, heap_alloc: 12713184, num_gc: 2, max_rss: 20459520 },
    Case { path: "cgroup-v2-vm/kernel-6.1/s2_growing/leakyapp/heap_debug1.txt", records: 1, header: [36, 4718592, 36, 4718593, 1048576], order: Order::Any, alloc: 38982408, heap_alloc: 38982408, num_gc: 4, max_rss: 48361472 },
    Case { path: "cgroup-v2-vm/kernel-6.1/s2_growing/steady/heap_debug1.txt", records: 1, header: [4, 262144, 49, 3211264, 1048576], order: Order::Any, alloc: 6417496, heap_alloc: 6417496, num_gc: 6, max_rss: 23322624 },
    Case { path: "cgroup-v2-vm/kernel-6.1/s3_over_high/leakyapp/heap_debug1.txt", records: 1, header: [36, 4718592, 36, 4718593, 1048576], order: Order::Any, alloc: 49116520, heap_alloc: 49116520, num_gc: 4, max_rss: 58847232 },
    Case { path: "cgroup-v2-vm/kernel-6.1/s3_over_high/steady/heap_debug1.txt", records: 1, header: [8, 524288, 64, 4194304, 1048576], order: Order::Any, alloc: 2088968, heap_alloc: 2088968, num_gc: 8, max_rss: 23322624 },
    Case { path: "cgroup-v2-vm/kernel-6.1/s4_after_oom_kill/steady/heap_debug1.txt", records: 1, header: [9, 589824, 271, 17760256, 1048576], order: Order::Any, alloc: 10746640, heap_alloc: 10746640, num_gc: 36, max_rss: 25231360 },
    Case { path: "cgroup-v2-vm/kernel-6.12/s1_early/leakyapp/heap_debug1.txt", records: 1, header: [12, 1572864, 12, 1572865, 1048576], order: Order::Any, alloc: 15873040, heap_alloc: 15873040, num_gc: 3, max_rss: 25378816 },
    Case { path: "cgroup-v2-vm/kernel-6.12/s1_early/steady/heap_debug1.txt", records: 1, header: [8, 524288, 8, 524289, 1048576], order: Order::Any, alloc: 13105968, heap_alloc: 13105968, num_gc: 2, max_rss: 21045248 },
    Case { path: "cgroup-v2-vm/kernel-6.12/s2_growing/leakyapp/heap_debug1.txt", records: 1, header: [29, 3801088, 29, 3801089, 1048576], order: Order::Any, alloc: 39507280, heap_alloc: 39507280, num_gc: 4, max_rss: 48685056 },
    Case { path: "cgroup-v2-vm/kernel-6.12/s2_growing/steady/heap_debug1.txt", records: 1, header: [0, 0, 41, 2686976, 1048576], order: Order::Any, alloc: 6807176, heap_alloc: 6807176, num_gc: 6, max_rss: 23404544 },
    Case { path: "cgroup-v2-vm/kernel-6.12/s3_over_high/leakyapp/heap_debug1.txt", records: 1, header: [29, 3801088, 29, 3801089, 1048576], order: Order::Any, alloc: 49117120, heap_alloc: 49117120, num_gc: 4, max_rss: 59203584 },
    Case { path: "cgroup-v2-vm/kernel-6.12/s3_over_high/steady/heap_debug1.txt", records: 1, header: [15, 983040, 56, 3670016, 1048576], order: Order::Any, alloc: 9559536, heap_alloc: 9559536, num_gc: 8, max_rss: 23404544 },
    Case { path: "cgroup-v2-vm/kernel-6.12/s4_timeout_no_oom/leakyapp/heap_debug1.txt", records: 1, header: [47, 6160384, 47, 6160385, 1048576], order: Order::Any, alloc: 61704736, heap_alloc: 61704736, num_gc: 5, max_rss: 71409664 },
    Case { path: "cgroup-v2-vm/kernel-6.12/s4_timeout_no_oom/steady/heap_debug1.txt", records: 1, header: [15, 983040, 583, 38207488, 1048576], order: Order::Any, alloc: 11532608, heap_alloc: 11532608, num_gc: 68, max_rss: 23441408 },
    Case { path: "edge-cases/heap_debug1_memprofilerate0_go1.23.txt", records: 0, header: [0, 0, 0, 1, 0], order: Order::Any, alloc: 2708680, heap_alloc: 2708680, num_gc: 0, max_rss: 10850304 },
    Case { path: "go1.19/blocked/allocs_debug1.txt", records: 8, header: [3, 1792, 3, 1792, 1048576], order: Order::Desc, alloc: 1696664, heap_alloc: 1696664, num_gc: 0, max_rss: 8749056 },
    Case { path: "go1.19/blocked/heap_debug1.txt", records: 3, header: [3, 1792, 3, 1792, 1048576], order: Order::Desc, alloc: 365952, heap_alloc: 365952, num_gc: 0, max_rss: 8093696 },
    Case { path: "go1.19/blocked/heap_debug1_gc1.txt", records: 10, header: [2, 512, 10, 1985168, 1048576], order: Order::Desc, alloc: 244288, heap_alloc: 244288, num_gc: 2, max_rss: 10059776 },
    Case { path: "go1.19/closure/allocs_debug1.txt", records: 5, header: [9, 1638816, 10, 1638848, 1048576], order: Order::Desc, alloc: 26518592, heap_alloc: 26518592, num_gc: 3, max_rss: 34529280 },
    Case { path: "go1.19/closure/heap_debug1.txt", records: 3, header: [9, 1638816, 10, 1638848, 1048576], order: Order::Desc, alloc: 24793440, heap_alloc: 24793440, num_gc: 3, max_rss: 33480704 },
    Case { path: "go1.19/closure/heap_debug1_gc1.txt", records: 8, header: [38, 7578016, 44, 10478016, 1048576], order: Order::Desc, alloc: 25624280, heap_alloc: 25624280, num_gc: 5, max_rss: 35708928 },
    Case { path: "go1.19/goroutine/allocs_debug1.txt", records: 6, header: [4, 68672, 4, 68672, 1048576], order: Order::Desc, alloc: 1945344, heap_alloc: 1945344, num_gc: 0, max_rss: 9584640 },
    Case { path: "go1.19/goroutine/heap_debug1.txt", records: 4, header: [4, 68672, 4, 68672, 1048576], order: Order::Desc, alloc: 591856, heap_alloc: 591856, num_gc: 0, max_rss: 8929280 },
    Case { path: "go1.19/goroutine/heap_debug1_gc1.txt", records: 8, header: [2, 3104, 8, 958272, 1048576], order: Order::Desc, alloc: 449880, heap_alloc: 449880, num_gc: 2, max_rss: 11288576 },
    Case { path: "go1.19/healthy/allocs_debug1.txt", records: 5, header: [9, 246688, 12, 369568, 1048576], order: Order::Desc, alloc: 2246624, heap_alloc: 2246624, num_gc: 3, max_rss: 14602240 },
    Case { path: "go1.19/healthy/heap_debug1.txt", records: 3, header: [9, 246688, 12, 369568, 1048576], order: Order::Desc, alloc: 815568, heap_alloc: 815568, num_gc: 3, max_rss: 14602240 },
    Case { path: "go1.19/healthy/heap_debug1_gc1.txt", records: 10, header: [5, 82848, 28, 3842976, 1048576], order: Order::Desc, alloc: 1076088, heap_alloc: 1076088, num_gc: 5, max_rss: 14602240 },
    Case { path: "go1.19/heap/allocs_debug1.txt", records: 4, header: [12, 246256, 12, 246256, 1048576], order: Order::Desc, alloc: 5969976, heap_alloc: 5969976, num_gc: 1, max_rss: 13258752 },
    Case { path: "go1.19/heap/heap_debug1.txt", records: 3, header: [12, 246256, 12, 246256, 1048576], order: Order::Desc, alloc: 4665936, heap_alloc: 4665936, num_gc: 1, max_rss: 12541952 },
    Case { path: "go1.19/heap/heap_debug1_gc1.txt", records: 8, header: [13, 250352, 17, 2691568, 1048576], order: Order::Desc, alloc: 4747832, heap_alloc: 4747832, num_gc: 3, max_rss: 15224832 },
    Case { path: "go1.19/httpclient/allocs_debug1.txt", records: 7, header: [7, 13296, 7, 13296, 1048576], order: Order::Desc, alloc: 3348112, heap_alloc: 3348112, num_gc: 0, max_rss: 11350016 },
    Case { path: "go1.19/httpclient/heap_debug1.txt", records: 6, header: [7, 13296, 7, 13296, 1048576], order: Order::Desc, alloc: 2022056, heap_alloc: 2022056, num_gc: 0, max_rss: 10825728 },
    Case { path: "go1.19/httpclient/heap_debug1_gc1.txt", records: 11, header: [7, 13296, 12, 2455024, 1048576], order: Order::Desc, alloc: 1567376, heap_alloc: 1567376, num_gc: 2, max_rss: 13578240 },
    Case { path: "go1.23/blocked/allocs_debug1.txt", records: 3, header: [3, 991232, 3, 991233, 1048576], order: Order::Asc, alloc: 1521200, heap_alloc: 1521200, num_gc: 0, max_rss: 9248768 },
    Case { path: "go1.23/blocked/heap_debug1.txt", records: 0, header: [0, 0, 0, 1, 1048576], order: Order::Any, alloc: 261912, heap_alloc: 261912, num_gc: 0, max_rss: 8724480 },
    Case { path: "go1.23/blocked/heap_debug1_gc1.txt", records: 5, header: [0, 0, 5, 2301952, 1048576], order: Order::Any, alloc: 192448, heap_alloc: 192448, num_gc: 2, max_rss: 10690560 },
    Case { path: "go1.23/callsites/allocs_debug1.txt.gz", records: 1460, header: [1550, 1566104, 62292, 3605504, 2], order: Order::Asc, alloc: 3299480, heap_alloc: 3299480, num_gc: 2, max_rss: 16560128 },
    Case { path: "go1.23/callsites/heap_debug1.txt.gz", records: 1216, header: [1240, 2251816, 1240, 2251817, 2], order: Order::Asc, alloc: 2389728, heap_alloc: 2389728, num_gc: 0, max_rss: 14462976 },
    Case { path: "go1.23/callsites/heap_debug1_gc1.txt.gz", records: 1843, header: [1048, 1504640, 146935, 9916840, 2], order: Order::Asc, alloc: 1612280, heap_alloc: 1612280, num_gc: 4, max_rss: 17346560 },
    Case { path: "go1.23/closure/allocs_debug1.txt", records: 3, header: [10, 2048000, 10, 2048001, 1048576], order: Order::Asc, alloc: 26028288, heap_alloc: 26028288, num_gc: 3, max_rss: 34140160 },
    Case { path: "go1.23/closure/heap_debug1.txt", records: 2, header: [10, 2048000, 10, 2048001, 1048576], order: Order::Asc, alloc: 24747440, heap_alloc: 24747440, num_gc: 3, max_rss: 33353728 },
    Case { path: "go1.23/closure/heap_debug1_gc1.txt", records: 6, header: [45, 9216000, 50, 11257088, 1048576], order: Order::Asc, alloc: 25168120, heap_alloc: 25168120, num_gc: 5, max_rss: 35975168 },
    Case { path: "go1.23/goroutine/allocs_debug1.txt", records: 1, header: [1, 663552, 1, 663553, 1048576], order: Order::Any, alloc: 1766128, heap_alloc: 1766128, num_gc: 0, max_rss: 9859072 },
    Case { path: "go1.23/goroutine/heap_debug1.txt", records: 0, header: [0, 0, 0, 1, 1048576], order: Order::Any, alloc: 502720, heap_alloc: 502720, num_gc: 0, max_rss: 9334784 },
    Case { path: "go1.23/goroutine/heap_debug1_gc1.txt", records: 3, header: [0, 0, 3, 1589248, 1048576], order: Order::Any, alloc: 414320, heap_alloc: 414320, num_gc: 2, max_rss: 11694080 },
    Case { path: "go1.23/healthy/allocs_debug1.txt", records: 4, header: [2, 81920, 12, 516096, 1048576], order: Order::Asc, alloc: 2194448, heap_alloc: 2194448, num_gc: 3, max_rss: 13377536 },
    Case { path: "go1.23/healthy/heap_debug1.txt", records: 2, header: [2, 81920, 12, 516096, 1048576], order: Order::Asc, alloc: 780000, heap_alloc: 780000, num_gc: 3, max_rss: 13107200 },
    Case { path: "go1.23/healthy/heap_debug1_gc1.txt", records: 7, header: [1, 40960, 19, 3237888, 1048576], order: Order::Asc, alloc: 908968, heap_alloc: 908968, num_gc: 5, max_rss: 14295040 },
    Case { path: "go1.23/heap/allocs_debug1.txt", records: 3, header: [10, 245760, 10, 245761, 1048576], order: Order::Asc, alloc: 5964168, heap_alloc: 5964168, num_gc: 1, max_rss: 13799424 },
    Case { path: "go1.23/heap/heap_debug1.txt", records: 1, header: [10, 245760, 10, 245761, 1048576], order: Order::Any, alloc: 4624144, heap_alloc: 4624144, num_gc: 1, max_rss: 13144064 },
    Case { path: "go1.23/heap/heap_debug1_gc1.txt", records: 6, header: [10, 245760, 15, 3145728, 1048576], order: Order::Asc, alloc: 4770712, heap_alloc: 4770712, num_gc: 3, max_rss: 15634432 },
    Case { path: "go1.23/httpclient/allocs_debug1.txt", records: 4, header: [3, 8256, 3, 8257, 1048576], order: Order::Asc, alloc: 3271000, heap_alloc: 3271000, num_gc: 0, max_rss: 11898880 },
    Case { path: "go1.23/httpclient/heap_debug1.txt", records: 3, header: [3, 8256, 3, 8257, 1048576], order: Order::Asc, alloc: 1980168, heap_alloc: 1980168, num_gc: 0, max_rss: 11505664 },
    Case { path: "go1.23/httpclient/heap_debug1_gc1.txt", records: 6, header: [3, 8256, 6, 737472, 1048576], order: Order::Asc, alloc: 1592224, heap_alloc: 1592224, num_gc: 2, max_rss: 14172160 },
    Case { path: "go1.23/long-blocked/heap_debug1.txt", records: 7, header: [3, 12288, 8, 1609728, 1048576], order: Order::Asc, alloc: 2065376, heap_alloc: 2065376, num_gc: 4, max_rss: 12685312 },
    Case { path: "go1.26-leakprof/blocked/heap_debug1.txt", records: 3, header: [1, 480, 2, 1049056, 1048576], order: Order::Asc, alloc: 1467776, heap_alloc: 1467776, num_gc: 3, max_rss: 11497472 },
    Case { path: "go1.26-leakprof/goroutine/heap_debug1.txt", records: 6, header: [2, 2528, 4, 1056480, 1048576], order: Order::Asc, alloc: 1653392, heap_alloc: 1653392, num_gc: 3, max_rss: 12103680 },
    Case { path: "go1.26-trimpath/combined/allocs_debug1.txt", records: 10, header: [8, 123056, 8, 123057, 1048576], order: Order::Asc, alloc: 9982936, heap_alloc: 9982936, num_gc: 2, max_rss: 22044672 },
    Case { path: "go1.26-trimpath/combined/heap_debug1.txt", records: 9, header: [8, 123056, 8, 123057, 1048576], order: Order::Asc, alloc: 8679824, heap_alloc: 8679824, num_gc: 2, max_rss: 21651456 },
    Case { path: "go1.26-trimpath/combined/heap_debug1_gc1.txt", records: 13, header: [19, 270848, 24, 2648896, 1048576], order: Order::Asc, alloc: 8675416, heap_alloc: 8675416, num_gc: 4, max_rss: 24203264 },
    Case { path: "go1.26/blocked/allocs_debug1.txt", records: 3, header: [1, 112, 1, 113, 1048576], order: Order::Asc, alloc: 1582744, heap_alloc: 1582744, num_gc: 0, max_rss: 9940992 },
    Case { path: "go1.26/blocked/heap_debug1.txt", records: 1, header: [1, 112, 1, 113, 1048576], order: Order::Any, alloc: 315392, heap_alloc: 315392, num_gc: 0, max_rss: 9547776 },
    Case { path: "go1.26/blocked/heap_debug1_gc1.txt", records: 5, header: [1, 112, 5, 1975280, 1048576], order: Order::Asc, alloc: 246248, heap_alloc: 246248, num_gc: 2, max_rss: 11575296 },
    Case { path: "go1.26/closure/allocs_debug1.txt", records: 4, header: [11, 2048480, 11, 2048481, 1048576], order: Order::Asc, alloc: 26472656, heap_alloc: 26472656, num_gc: 3, max_rss: 35278848 },
    Case { path: "go1.26/closure/heap_debug1.txt", records: 2, header: [11, 2048480, 11, 2048481, 1048576], order: Order::Asc, alloc: 24778856, heap_alloc: 24778856, num_gc: 3, max_rss: 34222080 },
    Case { path: "go1.26/closure/heap_debug1_gc1.txt", records: 6, header: [41, 8192480, 45, 10306016, 1048576], order: Order::Asc, alloc: 25618720, heap_alloc: 25618720, num_gc: 5, max_rss: 37113856 },
    Case { path: "go1.26/goroutine/allocs_debug1.txt", records: 3, header: [2, 960, 2, 961, 1048576], order: Order::Asc, alloc: 1825840, heap_alloc: 1825840, num_gc: 0, max_rss: 10964992 },
    Case { path: "go1.26/goroutine/heap_debug1.txt", records: 2, header: [2, 960, 2, 961, 1048576], order: Order::Asc, alloc: 531304, heap_alloc: 531304, num_gc: 0, max_rss: 10440704 },
    Case { path: "go1.26/goroutine/heap_debug1_gc1.txt", records: 8, header: [2, 960, 9, 2114736, 1048576], order: Order::Asc, alloc: 438248, heap_alloc: 438248, num_gc: 2, max_rss: 12468224 },
    Case { path: "go1.26/healthy/allocs_debug1.txt", records: 3, header: [1, 112, 12, 450672, 1048576], order: Order::Asc, alloc: 2218632, heap_alloc: 2218632, num_gc: 3, max_rss: 15851520 },
    Case { path: "go1.26/healthy/heap_debug1.txt", records: 2, header: [1, 112, 12, 450672, 1048576], order: Order::Asc, alloc: 813488, heap_alloc: 813488, num_gc: 3, max_rss: 15851520 },
    Case { path: "go1.26/healthy/heap_debug1_gc1.txt", records: 5, header: [2, 41072, 21, 2474096, 1048576], order: Order::Asc, alloc: 1068864, heap_alloc: 1068864, num_gc: 5, max_rss: 15851520 },
    Case { path: "go1.26/heap/allocs_debug1.txt", records: 4, header: [8, 172512, 8, 172513, 1048576], order: Order::Asc, alloc: 5935856, heap_alloc: 5935856, num_gc: 1, max_rss: 14557184 },
    Case { path: "go1.26/heap/heap_debug1.txt", records: 2, header: [8, 172512, 8, 172513, 1048576], order: Order::Asc, alloc: 4657568, heap_alloc: 4657568, num_gc: 1, max_rss: 14163968 },
    Case { path: "go1.26/heap/heap_debug1_gc1.txt", records: 7, header: [9, 197088, 14, 2837984, 1048576], order: Order::Asc, alloc: 4746240, heap_alloc: 4746240, num_gc: 3, max_rss: 16453632 },
    Case { path: "go1.26/httpclient/allocs_debug1.txt", records: 5, header: [5, 13008, 5, 13009, 1048576], order: Order::Asc, alloc: 3369288, heap_alloc: 3369288, num_gc: 0, max_rss: 12931072 },
    Case { path: "go1.26/httpclient/heap_debug1.txt", records: 4, header: [5, 13008, 5, 13009, 1048576], order: Order::Asc, alloc: 2082728, heap_alloc: 2082728, num_gc: 0, max_rss: 12537856 },
    Case { path: "go1.26/httpclient/heap_debug1_gc1.txt", records: 8, header: [4, 12768, 9, 2126544, 1048576], order: Order::Asc, alloc: 1659680, heap_alloc: 1659680, num_gc: 2, max_rss: 15421440 },
    Case { path: "go1.26/long-blocked/heap_debug1.txt", records: 5, header: [1, 112, 4, 1589360, 1048576], order: Order::Asc, alloc: 2614576, heap_alloc: 2614576, num_gc: 3, max_rss: 11870208 },
    Case { path: "series/go1.19-healthy/t01_heap_debug1.txt", records: 4, header: [3, 1792, 3, 1792, 1048576], order: Order::Desc, alloc: 1638728, heap_alloc: 1638728, num_gc: 0, max_rss: 9121792 },
    Case { path: "series/go1.19-healthy/t02_heap_debug1.txt", records: 5, header: [3, 1792, 3, 1792, 1048576], order: Order::Desc, alloc: 3009944, heap_alloc: 3009944, num_gc: 0, max_rss: 10756096 },
    Case { path: "series/go1.19-healthy/t03_heap_debug1.txt", records: 5, header: [3, 1792, 3, 1792, 1048576], order: Order::Desc, alloc: 1567456, heap_alloc: 1567456, num_gc: 1, max_rss: 12591104 },
    Case { path: "series/go1.19-healthy/t04_heap_debug1.txt", records: 5, header: [3, 1792, 3, 1792, 1048576], order: Order::Desc, alloc: 2947096, heap_alloc: 2947096, num_gc: 1, max_rss: 12591104 },
    Case { path: "series/go1.19-healthy/t05_heap_debug1.txt", records: 5, header: [3, 33280, 7, 116480, 1048576], order: Order::Desc, alloc: 1630528, heap_alloc: 1630528, num_gc: 2, max_rss: 12722176 },
    Case { path: "series/go1.19-healthy/t06_heap_debug1.txt", records: 5, header: [5, 98816, 15, 378624, 1048576], order: Order::Desc, alloc: 317920, heap_alloc: 317920, num_gc: 3, max_rss: 12722176 },
    Case { path: "series/go1.26-heap/t01_heap_debug1.txt", records: 3, header: [4, 131168, 4, 131169, 1048576], order: Order::Asc, alloc: 1574280, heap_alloc: 1574280, num_gc: 0, max_rss: 10805248 },
    Case { path: "series/go1.26-heap/t02_heap_debug1.txt", records: 3, header: [4, 131168, 4, 131169, 1048576], order: Order::Asc, alloc: 2945072, heap_alloc: 2945072, num_gc: 0, max_rss: 12509184 },
    Case { path: "series/go1.26-heap/t03_heap_debug1.txt", records: 3, header: [4, 131168, 4, 131169, 1048576], order: Order::Asc, alloc: 4206600, heap_alloc: 4206600, num_gc: 1, max_rss: 14344192 },
    Case { path: "series/go1.26-heap/t04_heap_debug1.txt", records: 3, header: [4, 131168, 4, 131169, 1048576], order: Order::Asc, alloc: 5569208, heap_alloc: 5569208, num_gc: 1, max_rss: 15785984 },
    Case { path: "series/go1.26-heap/t05_heap_debug1.txt", records: 3, header: [6, 163936, 7, 229472, 1048576], order: Order::Asc, alloc: 6899008, heap_alloc: 6899008, num_gc: 2, max_rss: 17096704 },
    Case { path: "series/go1.26-heap/t06_heap_debug1.txt", records: 4, header: [6, 163936, 7, 229472, 1048576], order: Order::Asc, alloc: 8266040, heap_alloc: 8266040, num_gc: 2, max_rss: 18407424 },
];

#[test]
fn table_covers_every_heap_text_fixture() {
    let mut on_disk = Vec::new();
    walk(
        &fixtures(),
        &|name| {
            (name.contains("heap_debug1") || name.contains("allocs_debug1"))
                && (name.ends_with(".txt") || name.ends_with(".txt.gz"))
        },
        &mut on_disk,
    );
    let mut in_table: Vec<String> = CASES.iter().map(|c| c.path.to_string()).collect();
    in_table.sort();
    on_disk.sort();
    assert_eq!(in_table, on_disk);
    assert_eq!(on_disk.len(), 92);
}

/// What a scrape does (the body parsed as it downloads, in whatever pieces the network
/// delivers) gives what parsing the whole body gives, on every real capture: cut into
/// pieces of 1 byte to 64 KiB, and at every newline.
#[test]
fn every_fixture_parsed_in_pieces_as_it_downloads_equals_the_whole() {
    for c in CASES {
        let body = read_fixture(c.path);
        let whole = parse_heap_estimate(&body).unwrap_or_else(|e| panic!("{}: {e}", c.path));
        assert_eq!(
            Ok(&whole.profile),
            parse_fixture(c.path)
                .estimate()
                .as_ref()
                .map_err(|e| e.to_string()),
            "{}",
            c.path
        );
        let at_newlines: Vec<&[u8]> = body.split_inclusive(|b| *b == b'\n').collect();
        let cuts: Vec<(String, Vec<&[u8]>)> = [1, 7, 4096, 65536]
            .into_iter()
            .map(|n| (format!("pieces of {n}"), body.chunks(n).collect()))
            .chain([("at newlines".to_string(), at_newlines)])
            .collect();
        for (how, pieces) in cuts {
            let mut reader = HeapEstimateReader::new();
            for piece in pieces {
                reader
                    .feed(piece)
                    .unwrap_or_else(|e| panic!("{} {how}: {e}", c.path));
            }
            let got = reader
                .finish()
                .unwrap_or_else(|e| panic!("{} {how}: {e}", c.path));
            assert_eq!(got, whole, "{} {how}", c.path);
        }
    }
}

#[test]
fn every_fixture_parses_to_its_values() {
    for c in CASES {
        let h = parse_fixture(c.path);
        let p = c.path;
        let hd = h.header;
        assert_eq!(
            [
                hd.inuse_objects,
                hd.inuse_bytes,
                hd.alloc_objects,
                hd.alloc_bytes,
                hd.rate
            ],
            c.header,
            "{p}"
        );
        assert_eq!(hd.sampling_period(), c.header[4] / 2, "{p}");
        assert_eq!(h.records.len(), c.records, "{p}");

        // The header is the sum of the records, except Go >= 1.21's +1 on alloc bytes
        // when they equal in-use bytes; 1.19 never adds it.
        let sum = |f: fn(&leakwatch::pprof::heap::HeapRecord) -> u64| {
            h.records.iter().map(f).sum::<u64>()
        };
        assert_eq!(sum(|r| r.inuse_objects), hd.inuse_objects, "{p}");
        assert_eq!(sum(|r| r.inuse_bytes), hd.inuse_bytes, "{p}");
        assert_eq!(sum(|r| r.alloc_objects), hd.alloc_objects, "{p}");
        let extra = hd.alloc_bytes - sum(|r| r.alloc_bytes);
        if p.contains("go1.19") {
            assert_eq!(extra, 0, "{p}");
        } else {
            assert_eq!(
                extra,
                u64::from(hd.alloc_bytes == hd.inuse_bytes + 1),
                "{p}"
            );
        }

        let inuse: Vec<u64> = h.records.iter().map(|r| r.inuse_bytes).collect();
        match c.order {
            Order::Desc => assert!(inuse.windows(2).all(|w| w[0] >= w[1]), "{p}: {inuse:?}"),
            Order::Asc => assert!(inuse.windows(2).all(|w| w[0] <= w[1]), "{p}: {inuse:?}"),
            Order::Any => assert!(inuse.windows(2).all(|w| w[0] == w[1]), "{p}: {inuse:?}"),
        }
        let go119 = p.contains("go1.19");
        if c.order != Order::Any {
            assert_eq!(c.order == Order::Desc, go119, "{p}: order vs version");
        }

        for r in &h.records {
            assert!(!r.addrs.is_empty(), "{p}");
            assert!(!r.frames.is_empty(), "{p}");
            for f in &r.frames {
                assert!(
                    f.function.is_some() && f.file.is_some() && f.line.is_some(),
                    "{p}: {f:?}"
                );
            }
        }

        let ms = h
            .memstats
            .as_ref()
            .unwrap_or_else(|| panic!("{p}: no MemStats"));
        assert_eq!(ms.alloc, Some(c.alloc), "{p}");
        assert_eq!(ms.heap_alloc, Some(c.heap_alloc), "{p}");
        assert_eq!(ms.num_gc, Some(c.num_gc), "{p}");
        assert_eq!(ms.max_rss, Some(c.max_rss), "{p}");
        assert_eq!(ms.pause_ns.len(), 256, "{p}");
        assert_eq!(ms.pause_end.len(), 256, "{p}");
        // Every one of the 27 text lines was read.
        assert!(all_fields_present(ms), "{p}: {ms:?}");
        // Pauses are recorded per GC: as many non-zero end times as GCs (up to 256).
        let used = ms.pause_end.iter().filter(|&&t| t != 0).count() as u64;
        assert_eq!(used, c.num_gc.min(256), "{p}");
        assert_eq!(ms.last_pause_ns().is_some(), c.num_gc > 0, "{p}");
    }
}

fn all_fields_present(m: &MemStats) -> bool {
    [
        m.alloc,
        m.total_alloc,
        m.sys,
        m.lookups,
        m.mallocs,
        m.frees,
        m.heap_alloc,
        m.heap_sys,
        m.heap_idle,
        m.heap_inuse,
        m.heap_released,
        m.heap_objects,
        m.stack_inuse,
        m.stack_sys,
        m.mspan_inuse,
        m.mspan_sys,
        m.mcache_inuse,
        m.mcache_sys,
        m.buck_hash_sys,
        m.gc_sys,
        m.other_sys,
        m.next_gc,
        m.last_gc,
        m.num_gc,
        m.num_forced_gc,
        m.max_rss,
    ]
    .iter()
    .all(Option::is_some)
        && m.gc_cpu_fraction.is_some()
        && m.debug_gc.is_some()
}

/// One full MemStats block, every field as printed in go1.23/heap/heap_debug1.txt.
#[test]
fn memstats_trailer_fields() {
    let ms = parse_fixture("go1.23/heap/heap_debug1.txt")
        .memstats
        .unwrap();
    let mut want = MemStats {
        alloc: Some(4624144),
        total_alloc: Some(4710304),
        sys: Some(12342536),
        lookups: Some(0),
        mallocs: Some(1610),
        frees: Some(236),
        heap_alloc: Some(4624144),
        heap_sys: Some(8060928),
        heap_idle: Some(2719744),
        heap_inuse: Some(5341184),
        heap_released: Some(2662400),
        heap_objects: Some(1374),
        stack_inuse: Some(327680),
        stack_sys: Some(327680),
        mspan_inuse: Some(54400),
        mspan_sys: Some(65280),
        mcache_inuse: Some(2400),
        mcache_sys: Some(15600),
        buck_hash_sys: Some(1443268),
        gc_sys: Some(1839968),
        other_sys: Some(589812),
        next_gc: Some(6694976),
        last_gc: Some(1795681654403447416),
        num_gc: Some(1),
        num_forced_gc: Some(0),
        gc_cpu_fraction: Some(6.353448922953855e-05),
        debug_gc: Some(false),
        max_rss: Some(13144064),
        pause_ns: vec![0; 256],
        pause_end: vec![0; 256],
    };
    want.pause_ns[0] = 49443;
    want.pause_end[0] = 1795681654403447416;
    assert_eq!(ms, want);
    assert_eq!(ms.last_pause_ns(), Some(49443));
    assert_eq!(ms.max_pause_ns(), Some(49443));
}

/// The allocation site of each leak mode, with its file and line, from the raw records.
#[test]
fn leaking_records_and_frames() {
    // (fixture, leaf function, raw inuse objects, raw inuse bytes, file, line, caller)
    let cases = [
        (
            "go1.19/heap/heap_debug1.txt",
            "main.newSession",
            10,
            245760,
            "/home/gopher/src/leakyapp/main.go",
            96,
            "main.cacheSession",
        ),
        (
            "go1.23/heap/heap_debug1.txt",
            "main.newSession",
            10,
            245760,
            "/home/gopher/src/leakyapp/main.go",
            96,
            "main.cacheSession",
        ),
        (
            "go1.26/heap/heap_debug1.txt",
            "main.newSession",
            7,
            172032,
            "/home/gopher/src/leakyapp/main.go",
            96,
            "main.cacheSession",
        ),
        (
            "series/go1.26-heap/t06_heap_debug1.txt",
            "main.newSession",
            5,
            163840,
            "/home/gopher/src/leakyapp/main.go",
            96,
            "main.cacheSession",
        ),
        (
            "cgroup-v2-vm/kernel-6.1/s2_growing/leakyapp/heap_debug1.txt",
            "main.newSession",
            36,
            4718592,
            "/home/gopher/src/leakyapp/main.go",
            96,
            "main.cacheSession",
        ),
        (
            "go1.19/closure/heap_debug1.txt",
            "main.registerCallback",
            8,
            1638400,
            "/home/gopher/src/leakyapp/main.go",
            205,
            "main.closureLeakLoop",
        ),
        (
            "go1.23/closure/heap_debug1.txt",
            "main.registerCallback",
            10,
            2048000,
            "/home/gopher/src/leakyapp/main.go",
            205,
            "main.closureLeakLoop",
        ),
        (
            "go1.26/closure/heap_debug1.txt",
            "main.registerCallback",
            10,
            2048000,
            "/home/gopher/src/leakyapp/main.go",
            205,
            "main.closureLeakLoop",
        ),
        // -trimpath: module-relative paths.
        (
            "go1.26-trimpath/combined/heap_debug1.txt",
            "main.registerCallback",
            4,
            81920,
            "leakyapp/main.go",
            205,
            "main.closureLeakLoop",
        ),
    ];
    for (path, func, objects, bytes, file, line, caller) in cases {
        let h = parse_fixture(path);
        let r = h
            .records
            .iter()
            .filter(|r| r.frames[0].function.as_deref() == Some(func))
            .max_by_key(|r| r.inuse_bytes)
            .unwrap_or_else(|| panic!("{path}: no {func} record"));
        assert_eq!((r.inuse_objects, r.inuse_bytes), (objects, bytes), "{path}");
        assert_eq!(r.frames[0].file.as_deref(), Some(file), "{path}");
        assert_eq!(r.frames[0].line, Some(line), "{path}");
        assert_eq!(r.frames[1].function.as_deref(), Some(caller), "{path}");
        // The frame PC is the return PC minus one of some `@` address.
        assert!(r.addrs.contains(&(r.frames[0].pc + 1)), "{path}");
    }

    // Exact frames of one record, tabwriter padding and all.
    let h = parse_fixture("go1.26-trimpath/combined/heap_debug1.txt");
    let r = h
        .records
        .iter()
        .find(|r| {
            r.frames
                .iter()
                .any(|f| f.function.as_deref() == Some("main.fetchInventory"))
        })
        .unwrap();
    let fetch = r
        .frames
        .iter()
        .find(|f| f.function.as_deref() == Some("main.fetchInventory"))
        .unwrap();
    assert_eq!(
        (fetch.pc, fetch.file.as_deref(), fetch.line),
        (0x6c7fbb, Some("leakyapp/main.go"), Some(163))
    );
    // A connection's buffer: bufio allocates it, net/http owns it.
    let r = h
        .records
        .iter()
        .find(|r| r.frames[0].function.as_deref() == Some("bufio.NewWriterSize"))
        .unwrap();
    let dial = &r.frames[1];
    assert_eq!(
        dial.function.as_deref(),
        Some("net/http.(*Transport).dialConn")
    );
    assert_eq!(
        (dial.pc, dial.file.as_deref(), dial.line),
        (0x67cba5, Some("net/http/transport.go"), Some(1992))
    );
    let stack: Vec<String> = r
        .frames
        .iter()
        .map(|f| f.function.clone().unwrap())
        .collect();
    let names = stack.iter().map(|f| Name::from_text(f));
    let site = funcname::allocation_site(names, &funcname::default_alloc_helpers())
        .map(|i| stack[i].as_str());
    assert_eq!(site, Some("net/http.(*Transport).dialConn"));
    assert_eq!(funcname::package_of(site.unwrap()), "net/http");
    // No frame of a trimpath build has an absolute path.
    for r in &h.records {
        for f in &r.frames {
            assert!(!f.file.as_deref().unwrap().starts_with('/'), "{f:?}");
        }
    }
}

/// FORMATS.md's estimate check, and the same on go1.26/heap, whose numbers
/// `go tool pprof -raw go1.26/heap/heap.pb.gz` prints for the same records
/// (152 objects / 3756703 bytes, and 1092 / 524528 for the runtime.malg record).
#[test]
fn estimate_matches_pprof() {
    let cases: &[(&str, &str, [u64; 4])] = &[
        (
            "go1.23/heap/heap_debug1.txt",
            "main.newSession",
            [218, 5366719, 218, 5366719],
        ),
        (
            "go1.26/heap/heap_debug1.txt",
            "main.newSession",
            [152, 3756703, 152, 3756703],
        ),
        (
            "go1.26/heap/heap_debug1.txt",
            "runtime.mallocgc",
            [1092, 524528, 1092, 524528],
        ),
        // Two records with the same function names (the session struct and its buffer,
        // both at main.go:96) are one sample: (1: 80) -> 6554/524328, (2: 40960) -> 52/1069189.
        (
            "go1.26-trimpath/combined/heap_debug1.txt",
            "main.newSession",
            [6606, 1593517, 6606, 1593517],
        ),
        // -memprofilerate 1 (heap/2): every allocation was recorded, nothing to scale.
        (
            "go1.23/callsites/heap_debug1.txt.gz",
            "main.csLeaf",
            [0, 0, 0, 0],
        ),
    ];
    for &(path, leaf, want) in cases {
        let h = parse_fixture(path);
        let est = h.estimate().unwrap();
        assert_eq!(est.sampling_period, h.header.sampling_period(), "{path}");
        let matching: Vec<_> = est
            .samples
            .iter()
            .filter(|s| est.stack(s).leaf().map(|n| n.to_string()).as_deref() == Some(leaf))
            .collect();
        if path.contains("callsites") {
            // Unscaled: the estimate sums equal the raw sums.
            let raw: u64 = h.records.iter().map(|r| r.inuse_bytes).sum();
            assert_eq!(est.totals().inuse_bytes, raw, "{path}");
            assert_eq!(est.totals().inuse_objects, h.header.inuse_objects, "{path}");
            assert!(matching.len() > 100, "{path}: {}", matching.len());
            continue;
        }
        assert_eq!(matching.len(), 1, "{path}");
        let s = matching[0];
        assert_eq!(
            [
                s.inuse_objects,
                s.inuse_bytes,
                s.alloc_objects,
                s.alloc_bytes
            ],
            want,
            "{path}"
        );
    }
    assert_eq!(scale_sample(7, 172032, 524288), (152, 3756703));

    // heap/0 (profiling off): nothing to scale, period 0.
    let h = parse_fixture("edge-cases/heap_debug1_memprofilerate0_go1.23.txt");
    assert_eq!(h.header.rate, 0);
    assert_eq!(h.estimate().unwrap(), HeapProfile::default());
}

#[test]
fn estimate_stacks_are_function_names_leaf_first() {
    let est = parse_fixture("go1.23/heap/heap_debug1.txt")
        .estimate()
        .unwrap();
    assert_eq!(est.samples.len(), 1);
    assert_eq!(
        est.stack(&est.samples[0]).to_strings(),
        ["main.newSession", "main.cacheSession", "main.heapLeakLoop"]
    );

    // The same body with the runtime unable to symbolize: PC-only frame lines.
    let text = String::from_utf8(read_fixture("go1.23/heap/heap_debug1.txt")).unwrap();
    let stripped: String = text
        .lines()
        .map(|l| match l.strip_prefix("#\t0x") {
            Some(rest) => format!("#\t0x{}\n", rest.split('\t').next().unwrap()),
            None => format!("{l}\n"),
        })
        .collect();
    let h = parse_heap_text(stripped.as_bytes()).unwrap();
    assert_eq!(h.records[0].frames.len(), 3);
    assert_eq!(h.records[0].frames[0].function, None);
    assert_eq!(h.records[0].frames[0].file, None);
    let est = h.estimate().unwrap();
    assert_eq!(
        est.stack(&est.samples[0]).to_strings(),
        ["0x6e3aea", "0x6e3c1b", "0x6e3dec"]
    );
    assert_eq!(
        h.memstats,
        parse_fixture("go1.23/heap/heap_debug1.txt").memstats
    );
}

#[test]
fn empty_and_profiling_off() {
    // No records at all: the header is followed by the MemStats block.
    for path in [
        "go1.23/blocked/heap_debug1.txt",
        "go1.23/goroutine/heap_debug1.txt",
        "edge-cases/heap_debug1_memprofilerate0_go1.23.txt",
    ] {
        let h = parse_fixture(path);
        assert!(h.records.is_empty(), "{path}");
        assert_eq!(
            (h.header.inuse_bytes, h.header.alloc_bytes),
            (0, 1),
            "{path}"
        );
        assert!(h.memstats.is_some(), "{path}");
        assert!(h.estimate().unwrap().samples.is_empty(), "{path}");
    }
    // Just a header line.
    let h = parse_heap_text(b"heap profile: 0: 0 [0: 0] @ heap/1048576\n").unwrap();
    assert!(h.records.is_empty());
    assert_eq!(h.memstats, None);
}

#[test]
fn body_ending_before_memstats() {
    let body = read_fixture("go1.26/heap/heap_debug1.txt");
    let full = parse_heap_text(&body).unwrap();
    let text = String::from_utf8(body).unwrap();
    let cut = text.find("# runtime.MemStats").unwrap();
    let h = parse_heap_text(&text.as_bytes()[..cut]).unwrap();
    assert_eq!(h.memstats, None);
    assert_eq!(h.records, full.records);
    assert_eq!(h.header, full.header);
    // Cut after a whole MemStats line: the fields read so far, the rest None.
    let upto_num_gc = text.find("# NumForcedGC").unwrap();
    let m = parse_heap_text(&text.as_bytes()[..upto_num_gc])
        .unwrap()
        .memstats
        .unwrap();
    assert_eq!(m.num_gc, Some(1));
    assert_eq!(m.num_forced_gc, None);
    assert_eq!(m.max_rss, None);
}

#[test]
fn invalid_utf8_is_read_lossily() {
    let mut body = read_fixture("go1.23/heap/heap_debug1.txt");
    let at = body.windows(10).position(|w| w == b"newSession").unwrap();
    body[at + 3] = 0xff;
    let h = parse_heap_text(&body).unwrap();
    assert_eq!(
        h.records[0].frames[0].function.as_deref(),
        Some("main.new\u{fffd}ession")
    );
    assert_eq!(h.memstats.unwrap().alloc, Some(4624144));
}

#[test]
fn not_this_format() {
    let cases = [
        "edge-cases/unknown_profile_go1.23.txt",
        "edge-cases/heap_seconds_bad_go1.23.txt",
        "edge-cases/heap_seconds_debug1_go1.23.txt",
        "go1.23/heap/index.html",
        "go1.23/heap/heap.pb.gz",
        "go1.23/heap/goroutine_debug1.txt",
        "go1.23/heap/vars.json",
    ];
    for path in cases {
        match parse_heap_text(&std::fs::read(fixtures().join(path)).unwrap()) {
            Err(Error::NotFormat { .. }) => {}
            other => panic!("{path}: {other:?}"),
        }
    }
    let err = parse_heap_text(b"Unknown profile\n").unwrap_err();
    assert!(err.to_string().contains("Unknown profile"), "{err}");
}

/// A broken line is reported with its 1-based line number.
#[test]
fn malformed_lines() {
    let text = String::from_utf8(read_fixture("go1.19/heap/heap_debug1.txt")).unwrap();
    let lines: Vec<&str> = text.split('\n').collect();
    let line_of = |prefix: &str| lines.iter().position(|l| l.starts_with(prefix)).unwrap() + 1;
    // (line to replace, replacement)
    let cases = [
        (2, "10: 245760 [10: 2457x60] @ 0x6b718b 0x6b72e5"),
        (2, "10: 245760 [10: 245760] @ 0x6b718b 0xzz"),
        (2, "10: 99999999999999999999 [10: 245760] @ 0x6b718b"),
        (3, "#\t0x6b718a\tmain.newSession"),
        (
            4,
            "main.cacheSession+0x24\t/home/gopher/src/leakyapp/main.go:103",
        ),
        (line_of("# NumGC"), "# NumGC = many"),
        (line_of("# PauseNs"), "# PauseNs = [1 2 3"),
        (line_of("# Stack"), "# Stack = 1 2"),
        (line_of("# MaxRSS"), "MaxRSS: 1"),
        (line_of("# Alloc"), "oops"),
    ];
    for (n, replacement) in cases {
        let mut broken = lines.clone();
        broken[n - 1] = replacement;
        match parse_heap_text(broken.join("\n").as_bytes()) {
            Err(Error::Malformed { line, .. }) => assert_eq!(line, n, "{replacement}"),
            other => panic!("{replacement}: {other:?}"),
        }
    }
    // A frame line after the blank line that ends a record.
    let orphan = "heap profile: 1: 8 [1: 8] @ heap/2\n1: 8 [1: 8] @ 0x1\n#\t0x0\tmain.f+0x0\tm.go:1\n\n#\t0x0\n";
    match parse_heap_text(orphan.as_bytes()) {
        Err(Error::Malformed {
            line: 5, reason, ..
        }) => assert!(reason.contains("outside a record"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

/// expvar's memstats are read field by field; compared with the JSON read generically.
#[test]
fn expvar_vars_json() {
    let mut paths = Vec::new();
    walk(&fixtures(), &|name| name == "vars.json", &mut paths);
    assert_eq!(paths.len(), 20);
    for path in &paths {
        let body = std::fs::read(fixtures().join(path)).unwrap();
        let ms = parse_expvar(&body).unwrap_or_else(|e| panic!("{path}: {e}"));
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let j = &json["memstats"];
        let u = |k: &str| Some(j[k].as_u64().unwrap_or_else(|| panic!("{path}: {k}")));
        let got = [
            ms.alloc,
            ms.total_alloc,
            ms.sys,
            ms.lookups,
            ms.mallocs,
            ms.frees,
            ms.heap_alloc,
            ms.heap_sys,
            ms.heap_idle,
            ms.heap_inuse,
            ms.heap_released,
            ms.heap_objects,
            ms.stack_inuse,
            ms.stack_sys,
            ms.mspan_inuse,
            ms.mspan_sys,
            ms.mcache_inuse,
            ms.mcache_sys,
            ms.buck_hash_sys,
            ms.gc_sys,
            ms.other_sys,
            ms.next_gc,
            ms.last_gc,
            ms.num_gc,
            ms.num_forced_gc,
        ];
        let keys = [
            "Alloc",
            "TotalAlloc",
            "Sys",
            "Lookups",
            "Mallocs",
            "Frees",
            "HeapAlloc",
            "HeapSys",
            "HeapIdle",
            "HeapInuse",
            "HeapReleased",
            "HeapObjects",
            "StackInuse",
            "StackSys",
            "MSpanInuse",
            "MSpanSys",
            "MCacheInuse",
            "MCacheSys",
            "BuckHashSys",
            "GCSys",
            "OtherSys",
            "NextGC",
            "LastGC",
            "NumGC",
            "NumForcedGC",
        ];
        for (k, v) in keys.iter().zip(got) {
            assert_eq!(v, u(k), "{path}: {k}");
        }
        assert_eq!(ms.gc_cpu_fraction, j["GCCPUFraction"].as_f64(), "{path}");
        assert_eq!(ms.debug_gc, j["DebugGC"].as_bool(), "{path}");
        let list = |k: &str| {
            j[k].as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(ms.pause_ns, list("PauseNs"), "{path}");
        assert_eq!(ms.pause_end, list("PauseEnd"), "{path}");
        assert_eq!(ms.pause_ns.len(), 256, "{path}");
        // expvar has no MaxRSS line.
        assert_eq!(ms.max_rss, None, "{path}");
    }
    // Concrete values of one capture, read off the file.
    let ms =
        parse_expvar(&std::fs::read(fixtures().join("go1.23/heap/vars.json")).unwrap()).unwrap();
    assert_eq!(ms.alloc, Some(7010024));
    assert_eq!(ms.heap_alloc, Some(7010024));
    assert_eq!(ms.total_alloc, Some(8413656));
    assert_eq!(ms.next_gc, Some(11677312));
    assert_eq!(ms.last_gc, Some(1795681655381768138));
    assert_eq!(ms.stack_inuse, Some(327680));
}

#[test]
fn expvar_not_format() {
    for path in [
        "go1.23/heap/heap_debug1.txt",
        "edge-cases/unknown_profile_go1.23.txt",
        "go1.23/heap/index.html",
    ] {
        match parse_expvar(&std::fs::read(fixtures().join(path)).unwrap()) {
            Err(Error::NotFormat { .. }) => {}
            other => panic!("{path}: {other:?}"),
        }
    }
}

/// push_samples emits every leakwatch_go_memstats_* family except `_info`.
#[test]
fn memstats_series() {
    let ms = parse_fixture("go1.23/heap/heap_debug1.txt")
        .memstats
        .unwrap();
    let mut sink = Sink::new();
    ms.push_samples(&mut sink);
    let mut want: Vec<(&str, Kind)> = METRICS
        .iter()
        .filter(|d| {
            d.name.starts_with("leakwatch_go_memstats_") && d.name != "leakwatch_go_memstats_info"
        })
        .map(|d| (d.name, d.kind))
        .collect();
    let mut got: Vec<(&str, Kind)> = sink
        .samples
        .iter()
        .map(|s| (s.def.name, s.def.kind))
        .collect();
    fn key(x: &(&'static str, Kind)) -> (&'static str, bool) {
        (x.0, x.1 == Kind::Counter)
    }
    want.sort_by_key(key);
    got.sort_by_key(key);
    assert_eq!(got, want);
    let value = |name: &str, kind: Kind| {
        sink.samples
            .iter()
            .find(|s| s.def.name == name && s.def.kind == kind)
            .unwrap()
            .value
            .as_f64()
    };
    assert_eq!(
        value("leakwatch_go_memstats_alloc_bytes", Kind::Gauge),
        4624144.0
    );
    assert_eq!(
        value("leakwatch_go_memstats_alloc_bytes", Kind::Counter),
        4710304.0
    );
    assert_eq!(
        value("leakwatch_go_memstats_mallocs", Kind::Counter),
        1610.0
    );
    assert_eq!(value("leakwatch_go_memstats_gc_cycles", Kind::Counter), 1.0);
    assert_eq!(
        value("leakwatch_go_memstats_stack_sys_bytes", Kind::Gauge),
        327680.0
    );
    assert_eq!(
        value("leakwatch_go_memstats_max_rss_bytes", Kind::Gauge),
        13144064.0
    );
    assert!(
        (value("leakwatch_go_memstats_last_gc_time_seconds", Kind::Gauge) - 1_795_681_654.403_447)
            .abs()
            < 1e-5
    );
    assert!(
        (value("leakwatch_go_memstats_last_gc_pause_seconds", Kind::Gauge) - 49443e-9).abs()
            < 1e-15
    );
    assert!(
        (value("leakwatch_go_memstats_max_gc_pause_seconds", Kind::Gauge) - 49443e-9).abs() < 1e-15
    );
    assert_eq!(
        value("leakwatch_go_memstats_gc_cpu_fraction", Kind::Gauge),
        6.353448922953855e-05
    );

    // From expvar: no MaxRSS series; before any GC no last-pause series.
    let ms = parse_expvar(&std::fs::read(fixtures().join("go1.23/goroutine/vars.json")).unwrap())
        .unwrap();
    let mut sink = Sink::new();
    ms.push_samples(&mut sink);
    let names: Vec<&str> = sink.samples.iter().map(|s| s.def.name).collect();
    assert!(!names.contains(&"leakwatch_go_memstats_max_rss_bytes"));
    assert_eq!(
        names.len(),
        want.len() - 1 - usize::from(ms.num_gc == Some(0))
    );
}

/// Deterministic xorshift64: the same mutations on every run.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Every prefix of a small body (and strided prefixes of big ones) and thousands of random
/// byte mutations go through both parsers: each returns Ok or Err, never panics.
#[test]
fn truncation_and_corruption_never_panic() {
    // (fixture, stride of truncation offsets)
    let bodies = [
        ("go1.23/heap/heap_debug1.txt", 1),
        ("go1.26-trimpath/combined/heap_debug1.txt", 5),
        ("go1.19/httpclient/heap_debug1_gc1.txt", 31),
        ("go1.23/callsites/heap_debug1.txt.gz", 150_001),
        ("go1.23/heap/vars.json", 1),
    ];
    let mut ok = 0usize;
    let mut err = 0usize;
    let mut count = |r: bool| if r { ok += 1 } else { err += 1 };
    for (path, stride) in bodies {
        let body = read_fixture(path);
        for end in (0..=body.len()).step_by(stride) {
            count(parse_heap_text(&body[..end]).is_ok());
            count(parse_expvar(&body[..end]).is_ok());
        }
    }
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    // Bytes that matter to the grammar, plus invalid UTF-8.
    let interesting = b"\n\t #:@[]+x0123456789abcdef/.{}\",\xff\xc3";
    for (path, rounds) in [
        ("go1.23/heap/heap_debug1.txt", 1200),
        ("go1.26-trimpath/combined/heap_debug1.txt", 800),
        ("go1.19/heap/heap_debug1.txt", 400),
        ("go1.23/heap/vars.json", 600),
    ] {
        let body = read_fixture(path);
        for _ in 0..rounds {
            let mut m = body.clone();
            for _ in 0..=rng.below(4) {
                let at = rng.below(m.len());
                match rng.below(3) {
                    0 => m[at] = interesting[rng.below(interesting.len())],
                    1 => m[at] = rng.next() as u8,
                    _ => {
                        m.remove(at);
                    }
                }
            }
            count(parse_heap_text(&m).is_ok());
            count(parse_expvar(&m).is_ok());
        }
    }
    // Both outcomes happened: the inputs really exercised the error paths.
    assert!(ok > 1000 && err > 1000, "ok {ok} err {err}");
}

/// The estimate rendered as text, one sample per line.
fn render_estimate(p: &HeapProfile) -> String {
    let mut out = format!(
        "sampling_period_bytes {}\nsamples {}\n",
        p.sampling_period,
        p.samples.len()
    );
    out.push_str("# inuse_objects inuse_bytes alloc_objects alloc_bytes stack(leaf first)\n");
    for s in &p.samples {
        out.push_str(&format!(
            "{} {} {} {} {}\n",
            s.inuse_objects,
            s.inuse_bytes,
            s.alloc_objects,
            s.alloc_bytes,
            p.stack(s).to_strings().join(";")
        ));
    }
    let t = p.totals();
    out.push_str(&format!(
        "totals {} {} {} {}\n",
        t.inuse_objects, t.inuse_bytes, t.alloc_objects, t.alloc_bytes
    ));
    out
}

/// Golden file; regenerate with `UPDATE_GOLDEN=1 cargo test --test it heap::golden`.
#[test]
fn golden_estimate() {
    let cases = [
        ("go1.23/heap/heap_debug1.txt", "go1.23-heap-estimate.txt"),
        (
            "go1.26-trimpath/combined/heap_debug1.txt",
            "go1.26-trimpath-combined-estimate.txt",
        ),
    ];
    for (fixture, golden) in cases {
        let got = render_estimate(&parse_fixture(fixture).estimate().unwrap());
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/heap")
            .join(golden);
        if crate::support::update_golden() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
        assert_eq!(
            got, want,
            "{golden} differs; UPDATE_GOLDEN=1 regenerates it"
        );
    }
}
