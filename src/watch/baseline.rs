//! The baseline file of `leakwatch watch --baseline-file`: the live heap a run settles
//! at (its peak and floor after GC), saved on a first run and compared on the next.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::analysis::window::Window;
use crate::dump::write_atomically;

/// What `--baseline-file` did for one target: saved its settled live heap, or compared
/// it with the saved one.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BaselineComparison {
    pub file: String,
    /// `saved` (the file did not exist) or `compared`.
    pub action: &'static str,
    /// The saved and the current peak live heap (see [`settled_live_heap`]).
    pub baseline_bytes: u64,
    pub final_bytes: u64,
    pub ratio: Option<f64>,
    /// The saved and the current floor (the smallest live heap after GC over the same
    /// span); `None` for a baseline file written before floors were saved.
    pub baseline_floor_bytes: Option<u64>,
    pub final_floor_bytes: Option<u64>,
    pub floor_ratio: Option<f64>,
    pub tolerance: f64,
    /// `false` only when the peak and the floor both rose beyond the tolerance (see
    /// [`compare_settled`]).
    pub within_tolerance: Option<bool>,
}

/// The live heap a run settles at, as a baseline is saved and compared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settled {
    /// The largest live heap after GC over the last half of the run.
    pub peak: u64,
    /// The smallest live heap after GC over the same span.
    pub floor: u64,
}

/// The live heap a baseline is saved as and compared with: the peak and the floor of
/// the live heap (after GC) over the last half of the run, from NextGC when MemStats
/// are available (exact) else from the heap profile (sampled, so noisier). Not the last
/// value: the live heap measured at one GC of a healthy service with a sawtooth lands
/// anywhere between its troughs and peaks. Both ends, because either alone is a draw
/// from that spread (a small heap's rare GC at the top of its cycle moves the peak by
/// the whole sawtooth), while memory that is retained raises both; for a leak the peak
/// is the latest value anyway.
pub fn settled_live_heap(window: &Window) -> Option<Settled> {
    let samples = window.samples();
    let newest = samples.back()?;
    let half_start = window.start() + window.span() / 2;
    let pick = |get: fn(&crate::analysis::window::Sample) -> Option<u64>| {
        let values: Vec<u64> = samples
            .iter()
            .filter(|s| s.at >= half_start || std::ptr::eq(*s, newest))
            .filter_map(get)
            .collect();
        Some((*values.iter().max()?, *values.iter().min()?))
    };
    let (peak, floor) = pick(|s| s.nextgc_live).or_else(|| pick(|s| s.profile_inuse))?;
    Some(Settled { peak, floor })
}

/// Compares a run's settled live heap with a saved one: `(peak ratio, floor ratio,
/// within)`. Outside the tolerance only when the peak rose beyond it and so did the
/// floor (when the baseline has one): retained memory lifts the whole band, while a
/// peak alone that moved is the sawtooth landing elsewhere at the GCs that were read.
pub fn compare_settled(
    baseline: (u64, Option<u64>),
    now: (u64, Option<u64>),
    tolerance: f64,
) -> (Option<f64>, Option<f64>, Option<bool>) {
    let ratio_of = |now: u64, then: u64| (then > 0).then(|| now as f64 / then as f64);
    let rose = |now: u64, then: u64| match ratio_of(now, then) {
        Some(r) => r > 1.0 + tolerance,
        None => now > 0,
    };
    let ratio = ratio_of(now.0, baseline.0);
    let floors = baseline.1.zip(now.1);
    let floor_ratio = floors.and_then(|(then, now)| ratio_of(now, then));
    let missed = rose(now.0, baseline.0) && floors.is_none_or(|(then, now)| rose(now, then));
    (ratio, floor_ratio, Some(!missed))
}

/// One target's saved live heap.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BaselineEntry {
    pub url: String,
    /// The peak live heap after GC over the last half of the run.
    pub live_heap_bytes: u64,
    /// The floor over the same span (absent in files from before floors were saved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_heap_floor_bytes: Option<u64>,
    /// RFC 3339-like UTC time (`YYYYMMDDTHHMMSSZ`) the baseline was taken.
    pub time: String,
    pub unix_seconds: u64,
}

/// The file: one entry (one URL watched) or a list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum BaselineFile {
    One(BaselineEntry),
    Many(Vec<BaselineEntry>),
}

impl BaselineFile {
    pub fn entries(&self) -> Vec<&BaselineEntry> {
        match self {
            BaselineFile::One(e) => vec![e],
            BaselineFile::Many(v) => v.iter().collect(),
        }
    }
}

/// One target of a run as its baseline sees it: its URL, its settled live heap (see
/// [`settled_live_heap`]) and where the comparison goes.
pub struct Measured<'a> {
    pub url: &'a str,
    pub final_live_heap_bytes: Option<u64>,
    pub final_live_heap_floor_bytes: Option<u64>,
    pub baseline: &'a mut Option<BaselineComparison>,
}

/// Saves or compares the baseline for every target; errors are printed on stderr and
/// make the run inconclusive for that target.
pub fn save_or_compare(
    file: &Path,
    tolerance: f64,
    targets: &mut [Measured<'_>],
) -> Result<(), String> {
    let shown = file.display().to_string();
    if !file.exists() {
        let now = crate::units::unix_now();
        let mut entries = Vec::new();
        for t in targets.iter_mut() {
            let Some(bytes) = t.final_live_heap_bytes else {
                return Err(format!(
                    "not saving the baseline {shown}: no live heap measured for {}",
                    t.url
                ));
            };
            entries.push(BaselineEntry {
                url: t.url.to_string(),
                live_heap_bytes: bytes,
                live_heap_floor_bytes: t.final_live_heap_floor_bytes,
                time: crate::units::format_utc(now),
                unix_seconds: now,
            });
            *t.baseline = Some(BaselineComparison {
                file: shown.clone(),
                action: "saved",
                baseline_bytes: bytes,
                final_bytes: bytes,
                ratio: None,
                baseline_floor_bytes: t.final_live_heap_floor_bytes,
                final_floor_bytes: t.final_live_heap_floor_bytes,
                floor_ratio: None,
                tolerance,
                within_tolerance: None,
            });
        }
        let doc = if entries.len() == 1 {
            BaselineFile::One(entries.remove(0))
        } else {
            BaselineFile::Many(entries)
        };
        let mut text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        text.push('\n');
        write_atomically(file, text.as_bytes())
            .map_err(|e| format!("writing the baseline {shown}: {e}"))?;
        return Ok(());
    }
    let text = crate::files::read_config_text(file)
        .map_err(|e| format!("reading the baseline {shown}: {e}"))?;
    let doc: BaselineFile = serde_json::from_str(&text).map_err(|e| {
        format!("the baseline {shown} is not a leakwatch baseline file (JSON with url, live_heap_bytes, time): {e}")
    })?;
    for t in targets.iter_mut() {
        let Some(entry) = doc.entries().into_iter().find(|e| e.url == t.url) else {
            return Err(format!("the baseline {shown} has no entry for {}", t.url));
        };
        let Some(now) = t.final_live_heap_bytes else {
            return Err(format!(
                "no live heap measured for {} to compare with {shown}",
                t.url
            ));
        };
        let (ratio, floor_ratio, within) = compare_settled(
            (entry.live_heap_bytes, entry.live_heap_floor_bytes),
            (now, t.final_live_heap_floor_bytes),
            tolerance,
        );
        *t.baseline = Some(BaselineComparison {
            file: shown.clone(),
            action: "compared",
            baseline_bytes: entry.live_heap_bytes,
            final_bytes: now,
            ratio,
            baseline_floor_bytes: entry.live_heap_floor_bytes,
            final_floor_bytes: t.final_live_heap_floor_bytes,
            floor_ratio,
            tolerance,
            within_tolerance: within,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::summary::{
        Outcome, TargetSummary, apply_baseline, exit_code, render_summary,
    };

    #[test]
    fn baseline_save_then_compare() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/base.json");
        let mk = |peak: u64, floor: u64| TargetSummary {
            name: "a".into(),
            url: "http://127.0.0.1:1/".into(),
            status: Outcome::Ok,
            samples: 3,
            successful_samples: 3,
            error: None,
            window_seconds: 1.0,
            live_heap: None,
            final_live_heap_bytes: Some(peak),
            final_live_heap_floor_bytes: Some(floor),
            heap_alloc_slope_bytes_per_hour: None,
            alloc_free_bytes_ratio: None,
            alloc_free_objects_ratio: None,
            top_growing_functions: vec![],
            inuse_share_by_package: vec![],
            goroutines: None,
            time_to_oom_seconds: None,
            verdict: vec![],
            baseline: None,
            dumps: None,
            notes: vec![],
        };
        let mut first = [mk(1000, 400)];
        apply_baseline(&file, 0.1, &mut first).unwrap();
        assert_eq!(first[0].baseline.as_ref().unwrap().action, "saved");
        let saved: BaselineFile =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let e = saved.entries()[0].clone();
        assert_eq!(
            (e.url.as_str(), e.live_heap_bytes, e.live_heap_floor_bytes),
            ("http://127.0.0.1:1/", 1000, Some(400))
        );
        // (peak, floor) now against (1000, 400) saved.
        let cases = [
            ((1100, 400), true, 0),  // the peak at the tolerance
            ((1101, 441), false, 1), // both beyond: retained
            ((1101, 440), true, 0),  // the peak moved, the floor is back
            ((3000, 400), true, 0),  // a sawtooth caught at its top
            ((500, 900), true, 0),   // the peak is back
        ];
        for ((peak, floor), within, code) in cases {
            let mut t = [mk(peak, floor)];
            apply_baseline(&file, 0.1, &mut t).unwrap();
            let b = t[0].baseline.as_ref().unwrap();
            assert_eq!(b.action, "compared");
            assert_eq!(b.within_tolerance, Some(within), "{peak} {floor}");
            assert_eq!(b.ratio, Some(peak as f64 / 1000.0));
            assert_eq!(b.floor_ratio, Some(floor as f64 / 400.0));
            assert_eq!(exit_code(&t), code);
            let text = render_summary(&t[0]);
            assert!(text.contains("floor 400 B -> "), "{text}");
            if within && peak > 1100 {
                assert!(text.contains("the floor after GC is back"), "{text}");
            }
        }
        // A file from before floors were saved: the peak alone decides.
        std::fs::write(
            &file,
            r#"{"url":"http://127.0.0.1:1/","live_heap_bytes":1000,"time":"20260101T000000Z","unix_seconds":1}"#,
        )
        .unwrap();
        for (peak, within) in [(1100, true), (1101, false)] {
            let mut t = [mk(peak, 0)];
            apply_baseline(&file, 0.1, &mut t).unwrap();
            let b = t[0].baseline.as_ref().unwrap();
            assert_eq!((b.within_tolerance, b.floor_ratio), (Some(within), None));
        }
        // A zero baseline: within only at zero.
        assert_eq!(
            compare_settled((0, Some(0)), (0, Some(0)), 0.1).2,
            Some(true)
        );
        assert_eq!(
            compare_settled((0, Some(0)), (1, Some(1)), 0.1).2,
            Some(false)
        );
        let mut other = [TargetSummary {
            url: "http://127.0.0.1:2/".into(),
            ..mk(5, 5)
        }];
        let err = apply_baseline(&file, 0.1, &mut other).unwrap_err();
        assert!(err.contains("no entry for http://127.0.0.1:2/"), "{err}");
        std::fs::write(&file, "not json").unwrap();
        let err = apply_baseline(&file, 0.1, &mut [mk(5, 5)]).unwrap_err();
        assert!(err.contains("not a leakwatch baseline file"), "{err}");
    }
}
