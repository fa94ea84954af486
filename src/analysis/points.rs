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
