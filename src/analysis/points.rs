//! A window's series as points: (seconds since the window's start, value), from every
//! sample or one per GC cycle.

use std::time::SystemTime;

use crate::analysis::observation::Sample;
use crate::analysis::window::Window;

/// Seconds since the window's start.
pub(crate) fn x_of(window: &Window, s: &Sample) -> f64 {
    x_at(window, s.at)
}

/// Seconds from the window's start to `at` (0 before it).
pub(crate) fn x_at(window: &Window, at: SystemTime) -> f64 {
    at.duration_since(window.start())
        .unwrap_or_default()
        .as_secs_f64()
}

pub(crate) fn points(window: &Window, get: impl Fn(&Sample) -> Option<u64>) -> Vec<(f64, f64)> {
    window
        .samples()
        .iter()
        .filter_map(|s| get(s).map(|v| (x_of(window, s), v as f64)))
        .collect()
}

/// The live heap as the runtime measured it: one point per GC cycle (the first sample
/// that saw each NumGC; every sample where NumGC is unknown). Between GCs the live
/// heap does not move, so repeated readings are one measurement, not many: counted
/// as many they would make a step look like a plateau (and a slope of zero).
pub(crate) fn per_gc(window: &Window, get: impl Fn(&Sample) -> Option<u64>) -> Vec<(f64, f64)> {
    let mut last_gc = None;
    window
        .samples()
        .iter()
        .filter_map(|s| {
            let v = get(s)?;
            if let Some(n) = s.num_gc {
                if last_gc == Some(n) {
                    return None;
                }
                last_gc = Some(n);
            }
            Some((x_of(window, s), v as f64))
        })
        .collect()
}

/// A series read at every heap profile, one point per change (the first reading of
/// each value): a profile reports the heap as of the last GC, so a value repeated
/// until the next GC is one measurement. Counted as many, a staircase's pairwise
/// slopes are mostly zero and Sen's slope reads a fraction of the growth (live: 36.5
/// MiB/h for a site growing 63.8 MiB/h, issue 21).
pub(crate) fn changes(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(points.len());
    for p in points {
        if out.last().is_none_or(|last| last.1 != p.1) {
            out.push(*p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_keep_the_first_reading_of_each_value() {
        let pts = [
            (0.0, 1.0),
            (15.0, 1.0),
            (30.0, 2.0),
            (45.0, 2.0),
            (60.0, 1.0),
        ];
        assert_eq!(changes(&pts), [(0.0, 1.0), (30.0, 2.0), (60.0, 1.0)]);
        assert!(changes(&[]).is_empty());
    }
}
