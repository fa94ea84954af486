//! Pure parsers for what Go's `net/http/pprof` serves, and the format-independent
//! profile types the rest of leakwatch consumes.
//!
//! - [`heap`]: `heap?debug=1` / `allocs?debug=1` text (records + `# runtime.MemStats`),
//!   kept as records or merged into estimates while read; [`heap_lines`]: its line grammar;
//!   `heap_stream`: the reader that cuts a body, whole or arriving in chunks, into lines.
//! - [`memstats`]: the `runtime.MemStats` fields, from the text trailer or expvar JSON.
//! - [`goroutine`]: `goroutine?debug=1` (and `goroutineleak?debug=1`) text, `debug=2` tracebacks.
//! - [`proto`]: gzipped `perftools.profiles.Profile` protobuf (heap and goroutine);
//!   [`proto_heap`]: a heap profile decoded as it downloads, into interned stacks;
//!   `proto_fields`: the gunzip and top-level field cutter it reads through.
//! - [`funcname`]: Go symbol helpers (package of a function, runtime frames).
//! - [`stacks`]: the interned names and stacks of a heap profile.
//! - [`load`]: loading a profile in any form (gzipped or not, protobuf or text).
//! - `profile`: the format-independent profile types above, re-exported here.
//!
//! Nothing here does I/O (callers read the bytes); every parser accepts any bytes and never
//! panics. Values only: the series built from them are in `metrics::emit`.

pub mod funcname;
pub mod goroutine;
pub mod heap;
pub mod heap_lines;
mod heap_stream;
pub mod load;
pub mod memstats;
mod profile;
pub mod proto;
mod proto_fields;
pub mod proto_heap;
pub mod stacks;

pub use profile::{
    Frame, GoroutineProfile, GoroutineRecord, HeapProfile, HeapProfileBuilder, HeapSample,
    HeapTotals, HeapValues,
};
pub use stacks::{Name, Stack, StackRef, Stacks, StacksBuilder, Sym};
