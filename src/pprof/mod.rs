//! Pure parsers for what Go's `net/http/pprof` serves, and the format-independent
//! profile types the rest of leakwatch consumes.
//!
//! - [`heap`]: `heap?debug=1` / `allocs?debug=1` text (records + `# runtime.MemStats`),
//!   kept as records or merged into estimates while read; [`heap_lines`]: its line grammar.
//! - [`memstats`]: the `runtime.MemStats` fields, from the text trailer or expvar JSON.
//! - [`goroutine`]: `goroutine?debug=1` (and `goroutineleak?debug=1`) text, `debug=2` tracebacks.
//! - [`proto`]: gzipped `perftools.profiles.Profile` protobuf (heap and goroutine).
//! - [`funcname`]: Go symbol helpers (package of a function, runtime frames).
//! - [`load`]: loading a profile in any form (gzip detection with a size cap, protobuf or text).
//!
//! Nothing here does I/O (callers read the bytes); every parser accepts any bytes and never
//! panics. Values only: the series built from them are in `metrics::emit`.

pub mod funcname;
pub mod goroutine;
pub mod heap;
pub mod heap_lines;
pub mod load;
pub mod memstats;
pub mod proto;

/// One stack frame as printed by the Go runtime (`#\t0xPC\tFUNC+0xOFF\tFILE:LINE`).
/// `function`, `file` and `line` are absent for a PC with no symbol.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    pub pc: u64,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// A heap profile with **estimated** (scaled) values, whatever format it came from:
/// the text's raw samples are scaled the way pprof does, the proto is already scaled.
/// This is the type analysis, diff and metrics use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeapProfile {
    /// Bytes between samples (`runtime.MemProfileRate`; `@ heap/N` is 2x this). 0 = profiling off.
    pub sampling_period: u64,
    pub samples: Vec<HeapSample>,
}

/// One allocation site (a distinct stack) with estimated totals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeapSample {
    /// Function names, leaf (allocation site) first. Unsymbolized PCs appear as `0x...`.
    pub stack: Vec<String>,
    pub inuse_objects: u64,
    pub inuse_bytes: u64,
    pub alloc_objects: u64,
    pub alloc_bytes: u64,
}

/// Sums over every sample of a [`HeapProfile`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapTotals {
    pub inuse_objects: u64,
    pub inuse_bytes: u64,
    pub alloc_objects: u64,
    pub alloc_bytes: u64,
}

impl HeapProfile {
    pub fn totals(&self) -> HeapTotals {
        let mut t = HeapTotals::default();
        for s in &self.samples {
            t.inuse_objects = t.inuse_objects.saturating_add(s.inuse_objects);
            t.inuse_bytes = t.inuse_bytes.saturating_add(s.inuse_bytes);
            t.alloc_objects = t.alloc_objects.saturating_add(s.alloc_objects);
            t.alloc_bytes = t.alloc_bytes.saturating_add(s.alloc_bytes);
        }
        t
    }
}

/// A goroutine profile, format-independent: one record per distinct (stack, labels).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GoroutineProfile {
    /// The `total N` of the header (text) or the sum of counts (proto).
    pub total: u64,
    pub records: Vec<GoroutineRecord>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GoroutineRecord {
    pub count: u64,
    /// Function names, innermost first. The text form hides leading `runtime.*`
    /// frames (e.g. `runtime.chanrecv1`); the proto form keeps them.
    pub stack: Vec<String>,
    /// pprof labels (`# labels: {...}`), in the order printed.
    pub labels: Vec<(String, String)>,
}
