//! The endpoints leakwatch requests of a target, as named in the `endpoint` label,
//! and where its MemStats came from.

/// `/debug/pprof/heap`.
pub const ENDPOINT_HEAP: &str = "heap";
/// The MemStats read (`heap?debug=1` trailer or expvar), when the heap comes as proto.
pub const ENDPOINT_MEMSTATS: &str = "memstats";
/// `/debug/pprof/goroutine`.
pub const ENDPOINT_GOROUTINE: &str = "goroutine";
/// `/debug/pprof/goroutineleak` (Go 1.26).
pub const ENDPOINT_GOROUTINELEAK: &str = "goroutineleak";

/// Where the MemStats came from (the `source` label of `leakwatch_go_memstats_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemStatsSource {
    HeapDebug1,
    Expvar,
}

impl MemStatsSource {
    pub fn as_str(self) -> &'static str {
        match self {
            MemStatsSource::HeapDebug1 => "heap_debug1",
            MemStatsSource::Expvar => "expvar",
        }
    }
}
