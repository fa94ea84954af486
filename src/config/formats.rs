//! The per-target request choices of the config file: which heap and goroutine
//! endpoints feed the analysis, and whether leakwatch asks the service for a GC.

use serde::Deserialize;

/// Which heap endpoint feeds the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HeapFormat {
    /// `heap?debug=1`: records and the MemStats trailer in one (costly on big profiles).
    Text,
    /// `/debug/pprof/heap`: gzipped protobuf, already scaled and symbolized; about 20x
    /// cheaper for the service to produce than the text.
    #[default]
    Proto,
}

/// Whether leakwatch asks the service for a GC before a heap profile (`heap?gc=1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GcMode {
    /// Never (`gc: false`): only the service's own GCs measure the live heap.
    Off,
    /// Before every heap profile (`gc: true`).
    Always,
    /// The default: only when no GC ran for 30 s while HeapAlloc grew, at most once
    /// every 30 s. The live heap is measured only at a GC, and a leaking heap makes its
    /// own GCs ever rarer (GOGC doubles the goal as the live heap doubles): without
    /// this, a leak gets a verdict only when its GCs happen to fall right. A profile
    /// read right after such a GC is of its moment (not up to two GC cycles old), so
    /// the growth after the start-up grace is judged from the first one. A service
    /// that GCs at least every 30 s on its own (any service under load) is never
    /// asked. Cost: at most one GC cycle every 30 s (stop-the-world pauses well under a
    /// millisecond, CPU in proportion to the live heap), timed with the heap request
    /// and so charged to the overhead budget, which stretches the heap interval of a
    /// service whose GC is costly.
    #[default]
    Auto,
}

impl std::str::FromStr for GcMode {
    type Err = String;

    /// `auto`, `true` or `false` (also `off`), as in the config file.
    fn from_str(v: &str) -> std::result::Result<GcMode, String> {
        match v {
            "auto" => Ok(GcMode::Auto),
            "true" => Ok(GcMode::Always),
            "false" | "off" => Ok(GcMode::Off),
            _ => Err(format!("{v:?}: expected auto, true or false")),
        }
    }
}

struct GcModeVisitor;

impl serde::de::Visitor<'_> for GcModeVisitor {
    type Value = GcMode;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("true, false or auto")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> std::result::Result<GcMode, E> {
        Ok(if v { GcMode::Always } else { GcMode::Off })
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<GcMode, E> {
        v.parse()
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(v), &self))
    }
}

impl<'de> Deserialize<'de> for GcMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(GcModeVisitor)
    }
}

/// Which goroutine endpoint feeds counts and states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GoroutineFormat {
    /// `/debug/pprof/goroutine` protobuf: keeps runtime frames, so states are exact.
    #[default]
    Proto,
    /// `goroutine?debug=1` text: runtime frames are hidden, states are coarser.
    Text,
}
