//! The growth criteria of a leak verdict measured on one trend: fast enough, one-way,
//! sustained, each scored 0..1 (0.5 at its threshold), and the sentence that says so.

use crate::analysis::thresholds::{Floors, Thresholds};
use crate::analysis::trend::Trend;
use crate::units::{fmt_bytes, fmt_duration};

#[derive(Debug, Clone)]
pub(crate) struct Assessment {
    pub(crate) per_hour: f64,
    pub(crate) relative_per_hour: f64,
    pub(crate) level: f64,
    pub(crate) growth: f64,
    pub(crate) span_seconds: f64,
    pub(crate) monotonicity: f64,
    /// Whether `monotonicity` is the lower envelope's (higher than the readings' own).
    pub(crate) envelope: bool,
    pub(crate) half_fraction: f64,
    pub(crate) score: f64,
    /// Each criterion's score, in the order of [`Criterion`].
    parts: [f64; 4],
    /// One sentence per failed criterion; empty when every criterion holds.
    pub(crate) failures: Vec<(Criterion, String)>,
}

/// The growth criteria, in the order of [`Assessment`]'s parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Criterion {
    Rate,
    RelativeRate,
    OneWay,
    Sustained,
}

impl Criterion {
    /// One-way and sustained: the series' shape, as opposed to its speed.
    pub(crate) fn is_shape(self) -> bool {
        matches!(self, Criterion::OneWay | Criterion::Sustained)
    }
}

impl Assessment {
    /// The failed criteria's sentences.
    pub(crate) fn failure_lines(&self) -> impl Iterator<Item = String> + '_ {
        self.failures.iter().map(|(_, why)| why.clone())
    }

    /// Only the shape failed: the growth is fast enough but not one-way or not
    /// sustained.
    pub(crate) fn only_shape_failed(&self) -> bool {
        !self.failures.is_empty() && self.failures.iter().all(|(c, _)| c.is_shape())
    }

    /// The shape criteria were met on other evidence (the culprit site's own series):
    /// their failures go, and they count as at their thresholds in the score.
    pub(crate) fn shape_met_elsewhere(&mut self) {
        self.failures.retain(|(c, _)| !c.is_shape());
        for c in [Criterion::OneWay, Criterion::Sustained] {
            self.parts[c as usize] = self.parts[c as usize].max(0.5);
        }
        self.score = self.parts.iter().copied().fold(1.0, f64::min);
    }
}

/// Maps `v` to 0..1: 0.5 at `threshold`, linear from 0 below, 1 at `full` and above.
pub(crate) fn ramp(v: f64, threshold: f64, full: f64) -> f64 {
    if !v.is_finite() {
        return 0.0;
    }
    if v >= threshold {
        if full <= threshold {
            return 1.0;
        }
        return (0.5 + 0.5 * (v - threshold) / (full - threshold)).min(1.0);
    }
    if threshold <= 0.0 {
        return 0.0;
    }
    0.5 * v.max(0.0) / threshold
}

pub(crate) fn assess(t: &Trend, unit: Unit, floors: Floors, th: &Thresholds) -> Assessment {
    let (min_abs, min_rel) = (floors.per_hour, floors.relative_per_hour);
    let per_hour = t.fit.slope * 3600.0;
    let level = t.level.max(1.0);
    let relative_per_hour = per_hour / level;
    let half_fraction = match (t.first_half_slope, t.second_half_slope) {
        (Some(a), Some(b)) if t.fit.slope > 0.0 => a.min(b) / t.fit.slope,
        _ => 0.0,
    };
    let mono = t.one_way();
    let parts = [
        ramp(per_hour, min_abs, 4.0 * min_abs),
        ramp(relative_per_hour, min_rel, 4.0 * min_rel),
        ramp(mono, th.min_monotonicity, 0.9_f64.max(th.min_monotonicity)),
        ramp(
            half_fraction,
            th.min_half_slope_fraction,
            0.75_f64.max(th.min_half_slope_fraction),
        ),
    ];
    let score = parts.iter().copied().fold(1.0, f64::min);
    let fmt = |v: f64| unit.fmt(v);
    let mut failures = Vec::new();
    if per_hour < min_abs {
        failures.push((
            Criterion::Rate,
            format!(
                "growth {}/h is below the {}/h floor",
                fmt(per_hour),
                fmt(min_abs)
            ),
        ));
    }
    if relative_per_hour < min_rel {
        failures.push((
            Criterion::RelativeRate,
            format!(
                "relative growth {:+.1}%/h is below the {:.1}%/h floor",
                relative_per_hour * 100.0,
                min_rel * 100.0
            ),
        ));
    }
    if mono < th.min_monotonicity {
        failures.push((
            Criterion::OneWay,
            format!(
                "not one-way: monotonicity {mono:.2} is below {:.2}",
                th.min_monotonicity
            ),
        ));
    }
    if half_fraction < th.min_half_slope_fraction {
        failures.push((
            Criterion::Sustained,
            "not sustained: one half of the window did not grow (plateau, step or burst)"
                .to_string(),
        ));
    }
    Assessment {
        per_hour,
        relative_per_hour,
        level,
        growth: t.fit.slope * t.span_seconds,
        span_seconds: t.span_seconds,
        monotonicity: mono,
        envelope: t.floor_monotonicity.is_some_and(|f| f > t.monotonicity),
        half_fraction,
        score,
        parts,
        failures,
    }
}

/// How a kind's values read: bytes, or a count of what (`+120 goroutines`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Count(&'static str),
}

impl Unit {
    /// A value in this unit, bare: `1.5 MiB` or `12.0`.
    pub(crate) fn fmt(self, v: f64) -> String {
        match self {
            Unit::Bytes => fmt_bytes(v),
            Unit::Count(_) => format!("{v:.1}"),
        }
    }
}

pub(crate) fn describe(what: &str, unit: Unit, a: &Assessment) -> String {
    let (growth, rate, level) = match unit {
        Unit::Bytes => (
            fmt_bytes(a.growth),
            fmt_bytes(a.per_hour),
            fmt_bytes(a.level),
        ),
        Unit::Count(u) => (
            format!("{:+.0} {u}", a.growth),
            format!("{:+.1}", a.per_hour),
            format!("{:.0}", a.level),
        ),
    };
    format!(
        "{what}: {growth} over {} ({rate}/h, {:+.1}%/h of {level}); monotonicity {:.2}{}; \
         weaker half grew at {:.0}% of the window's rate",
        fmt_duration(a.span_seconds),
        a.relative_per_hour * 100.0,
        a.monotonicity,
        if a.envelope {
            " (of its floor: the lowest reading in each sixteenth of the window)"
        } else {
            ""
        },
        a.half_fraction.max(0.0) * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_is_half_at_threshold() {
        let cases = [
            (0.0, 1.0, 4.0, 0.0),
            (-3.0, 1.0, 4.0, 0.0),
            (0.5, 1.0, 4.0, 0.25),
            (1.0, 1.0, 4.0, 0.5),
            (2.5, 1.0, 4.0, 0.75),
            (4.0, 1.0, 4.0, 1.0),
            (40.0, 1.0, 4.0, 1.0),
            (f64::NAN, 1.0, 4.0, 0.0),
            // A threshold of 0 (criterion switched off) passes at 0.
            (0.0, 0.0, 0.75, 0.5),
            (-0.1, 0.0, 0.75, 0.0),
        ];
        for (v, th, full, want) in cases {
            assert_eq!(ramp(v, th, full), want, "ramp({v}, {th}, {full})");
        }
    }
}
