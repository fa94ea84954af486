//! The thresholds of the leak verdict's decision rule (the `signals.thresholds` config
//! section): each leak kind's growth floors, the shape criteria shared by every kind,
//! and the GC cycles the live heap needs. Why these defaults: the verdict's module doc.

use serde::Deserialize;

/// Thresholds of the decision rule (see the verdict's module doc). Unknown keys are
/// rejected; missing keys take the defaults. A kind's floors are read through its row
/// of the kind table (`KindSpec::floors` in `analysis/kinds.rs`), which names their keys.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    pub heap_min_growth_bytes_per_hour: f64,
    pub heap_min_relative_growth_per_hour: f64,
    pub goroutine_min_growth_per_hour: f64,
    pub goroutine_min_relative_growth_per_hour: f64,
    pub http_connections_min_growth_per_hour: f64,
    pub http_connections_min_relative_growth_per_hour: f64,
    /// Minimum monotonicity (Goodman-Kruskal gamma, -1..1) of a growing series.
    pub min_monotonicity: f64,
    /// Minimum slope of each half of the window relative to the whole window's.
    pub min_half_slope_fraction: f64,
    /// Usage growth below this is "not growing": no time-to-OOM.
    pub usage_min_growth_bytes_per_hour: f64,
    /// GC cycles the window must hold, while HeapAlloc grew, before the heap verdict
    /// is more than "inconclusive": the live heap is only measured at a GC.
    pub min_gc_cycles: u64,
}

const MIB: f64 = 1024.0 * 1024.0;

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            heap_min_growth_bytes_per_hour: 2.0 * MIB,
            heap_min_relative_growth_per_hour: 0.05,
            goroutine_min_growth_per_hour: 60.0,
            goroutine_min_relative_growth_per_hour: 0.05,
            http_connections_min_growth_per_hour: 30.0,
            http_connections_min_relative_growth_per_hour: 0.05,
            min_monotonicity: 0.6,
            min_half_slope_fraction: 0.25,
            usage_min_growth_bytes_per_hour: 2.0 * MIB,
            min_gc_cycles: 5,
        }
    }
}

/// A kind's two growth floors: a series grows fast enough when its slope reaches both.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Floors {
    /// Growth per hour, in the kind's unit (bytes, goroutines, connections).
    pub per_hour: f64,
    /// Growth per hour relative to the series' median level (0.05 = 5%/h).
    pub relative_per_hour: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_deserialize_strictly() {
        let t: Thresholds = serde_norway::from_str("min_monotonicity: 0.7").unwrap();
        assert_eq!(t.min_monotonicity, 0.7);
        assert_eq!(t.heap_min_growth_bytes_per_hour, 2.0 * MIB);
        let err = serde_norway::from_str::<Thresholds>("min_monotonicty: 0.7").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}
