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
    /// Never (the default): a forced GC perturbs the service.
    #[default]
    Off,
    /// Before every heap profile (`gc: true`).
    Always,
    /// Only when no GC ran for 2 minutes while HeapAlloc grew, so the live heap would
    /// be a guess: at most once per 5 minutes. Cost: one GC cycle of the service
    /// (stop-the-world pauses well under a millisecond, CPU in proportion to its live
    /// heap), charged to the overhead budget with the heap request.
    Auto,
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
        match v {
            "auto" => Ok(GcMode::Auto),
            "true" => Ok(GcMode::Always),
            "false" | "off" => Ok(GcMode::Off),
            _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
        }
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
