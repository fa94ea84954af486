//! The heap verdict's evidence on its culprit sites alone, for a young process: a
//! leaking allocation site's sampled bytes only rise ([`one_way`]), free of whatever
//! else was live at each GC, so its readings may stand for the whole heap's shape
//! ([`culprit_shape`]) and for its growth after the start-up grace
//! ([`culprit_goes_on`]) where the whole heap's readings are too noisy to tell.

use crate::analysis::criteria::{Assessment, Unit, assess};
use crate::analysis::slope::theil_sen;
use crate::analysis::thresholds::{Floors, Thresholds};
use crate::analysis::trend::{Trend, mann_kendall};
use crate::units::{fmt_bytes, fmt_duration};

/// A site's name and its readings (window seconds, bytes).
pub type SiteReadings = (std::sync::Arc<str>, Vec<(f64, f64)>);

/// The share of the window's growth rate the culprit alone must carry, over the
/// window and after the start-up grace, for its readings to speak for the whole
/// heap's: the growth must be essentially this one site's. A process whose growth is
/// spread over many sites (Prometheus's TSDB head in its first half hour: chunks,
/// series, postings, a chunk file's buffer) is judged on the whole heap alone.
const CULPRIT_SHARE: f64 = 2.0 / 3.0;

/// Readings of the culprit after the grace its test needs, one per GC ([`changes`]
/// drops the repeats): Mann-Kendall's z reaches 2.2 on five rising readings
/// (one-sided p 0.014), and a one-way series of five may not drop at all.
///
/// [`changes`]: crate::analysis::points::changes
const MIN_CULPRIT_READINGS: usize = 5;

/// A leaking site's sampled in-use bytes only rise: its objects stay, and which of
/// them the profile sampled was decided when they were allocated. A site that drops by
/// more than [`ONE_WAY_DROP`] of its level, or drops at all in more than one step of
/// eight (a freed slice backing array the profile happened to sample), is not read
/// as a leak on its own: buffers freed and refilled rise and fall.
fn one_way(points: &[(f64, f64)]) -> bool {
    let mut drops = 0;
    for w in points.windows(2) {
        let (before, after) = (w[0].1, w[1].1);
        if after < before {
            if before - after > ONE_WAY_DROP * before {
                return false;
            }
            drops += 1;
        }
    }
    drops * 8 < points.len()
}

/// The largest drop of a one-way site, as a share of its level.
const ONE_WAY_DROP: f64 = 0.05;

/// The share of its own rate over the window a culprit must keep after the start-up
/// grace to be "going on": a leak keeps its rate, a cache that filled falls to none.
const GOES_ON_SHARE: f64 = 0.5;

/// The recent-growth test on the culprits alone, for a heap whose own readings after
/// the grace do not show growth (not significant yet, or even looking stopped: a few
/// readings at falling sawtooth phases). A culprit speaks for the heap when over the
/// window it carried at least [`CULPRIT_SHARE`] of the heap's growth (its readings in
/// `window`, the heap's rate `window_per_hour`), and after the grace (`recent`, the
/// same sites in the same order) it goes on one way ([`one_way`], Mann-Kendall upward,
/// Sen's slope over the floors and at least [`GOES_ON_SHARE`] of its own rate over the
/// window). Both comparisons are of like spans: the site's window rate with the heap's,
/// its rate after the grace with its own before. A leak beside a sawtooth is judged here
/// in minutes instead of the many the noisy whole-heap readings need; a cache that
/// filled and stopped has a flat culprit after the grace. The reason when it does;
/// `None` otherwise.
pub(crate) fn culprit_goes_on(
    (window, recent): (&[SiteReadings], &[SiteReadings]),
    floors: Floors,
    window_per_hour: f64,
    level: f64,
) -> Option<String> {
    window
        .iter()
        .zip(recent)
        .find_map(|((name, whole), (_, recent))| {
            if recent.len() < MIN_CULPRIT_READINGS || !one_way(recent) {
                return None;
            }
            let site_per_hour = theil_sen(whole)?.slope * 3600.0;
            let mk = mann_kendall(recent)?;
            let per_hour = theil_sen(recent)?.slope * 3600.0;
            let goes_on = mk.upward()
                && site_per_hour >= CULPRIT_SHARE * window_per_hour
                && per_hour >= floors.per_hour
                && per_hour / level >= floors.relative_per_hour
                && per_hour >= GOES_ON_SHARE * site_per_hour;
            goes_on.then(|| {
                format!(
                    "still growing after the start-up grace: its top growing site {name} grew \
                     {}/h over {} readings (Mann-Kendall z {:.1}; {}/h over the window, where \
                     the heap grew {}/h), while the whole heap's readings beside it are too \
                     noisy to tell yet",
                    fmt_bytes(per_hour),
                    recent.len(),
                    mk.z,
                    fmt_bytes(site_per_hour),
                    fmt_bytes(window_per_hour)
                )
            })
        })
}

/// Readings of a culprit over the window its shape test needs.
const MIN_CULPRIT_WINDOW_READINGS: usize = 8;

/// The share of the window's span a culprit's readings must cover for its shape to
/// speak for the whole heap's.
const CULPRIT_COVER: f64 = 0.5;

/// The whole heap's shape (one-way, sustained) read on its culprits instead, for a
/// live heap fast enough but whose readings are not one-way or sustained: a slow leak
/// beside a sawtooth ten times its step reads, at each GC, as the leak plus whatever
/// the sawtooth held at that moment, and its monotonicity can stay under 0.6 for a
/// quarter of an hour. A culprit's own sampled bytes carry no sawtooth. It stands for
/// the heap when its readings cover at least [`CULPRIT_COVER`] of the window's span,
/// are [`one_way`], rise by Mann-Kendall, and pass every growth criterion on their own
/// (floors, monotonicity, both halves) at a rate of at least [`CULPRIT_SHARE`] of the
/// whole heap's. A cache that filled early has a flat second half; a sawtooth or
/// buffer site falls. The growth after the start-up grace is still judged after this.
/// The reason when it does; `None` otherwise.
pub(crate) fn culprit_shape(
    culprits: &[SiteReadings],
    floors: Floors,
    th: &Thresholds,
    window: &Assessment,
) -> Option<String> {
    culprits.iter().find_map(|(name, points)| {
        if points.len() < MIN_CULPRIT_WINDOW_READINGS || !one_way(points) {
            return None;
        }
        let covered = points.last()?.0 - points.first()?.0;
        if covered < CULPRIT_COVER * window.span_seconds {
            return None;
        }
        let site = assess(&Trend::of(points)?, Unit::Bytes, floors, th);
        let mk = mann_kendall(points)?;
        let stands = site.failures.is_empty()
            && mk.upward()
            && site.per_hour >= CULPRIT_SHARE * window.per_hour;
        stands.then(|| {
            format!(
                "one-way on its top growing site instead: {name} grew {}/h over {} \
                 readings in {} (monotonicity {:.2}, Mann-Kendall z {:.1}) while the \
                 whole heap's readings carry what else was live at each GC",
                fmt_bytes(site.per_hour),
                points.len(),
                fmt_duration(covered),
                site.monotonicity,
                mk.z
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::kinds::LeakKind;

    #[test]
    fn a_culprit_is_one_way_when_it_never_drops_far_or_often() {
        let pts = |ys: &[f64]| -> Vec<(f64, f64)> {
            ys.iter()
                .enumerate()
                .map(|(i, y)| (i as f64 * 15.0, *y))
                .collect()
        };
        let cases: &[(&str, &[f64], bool)] = &[
            ("rising", &[10.0, 11.0, 12.0, 13.0, 14.0, 15.0], true),
            (
                "rising with ties",
                &[10.0, 10.0, 11.0, 11.0, 12.0, 12.0],
                true,
            ),
            (
                "one 3% drop in nine steps (a sampled backing array freed)",
                &[10.0, 11.0, 12.0, 11.64, 12.5, 13.0, 13.5, 14.0, 14.5, 15.0],
                true,
            ),
            (
                "one 20% drop (a buffer freed)",
                &[10.0, 11.0, 12.0, 9.6, 12.5, 13.0],
                false,
            ),
            (
                "small drops in two of seven steps",
                &[10.0, 11.0, 10.9, 11.5, 11.4, 12.0, 12.5, 13.0],
                false,
            ),
        ];
        for (name, ys, want) in cases {
            assert_eq!(one_way(&pts(ys)), *want, "{name}");
        }
    }

    /// After the grace a culprit speaks for the heap when it carried two thirds of the
    /// heap's growth over the window and keeps half its own rate, one way.
    #[test]
    fn a_culprit_goes_on_when_it_keeps_its_own_rate_after_the_grace() {
        const MIB: f64 = 1024.0 * 1024.0;
        let th = Thresholds::default();
        let floors = (LeakKind::Heap.spec().floors)(&th);
        // Readings once a minute over 16 minutes; the grace ends at 10.
        type Points = Vec<(f64, f64)>;
        let series = |f: &dyn Fn(f64) -> f64| -> (Points, Points) {
            let whole: Vec<(f64, f64)> = (0..=16)
                .map(|m| (m as f64 * 60.0, f(m as f64 * 60.0)))
                .collect();
            let recent = whole.iter().copied().filter(|p| p.0 >= 600.0).collect();
            (whole, recent)
        };
        let heap_per_hour = 60.0 * MIB;
        type Case = (&'static str, Box<dyn Fn(f64) -> f64>, bool);
        let cases: [Case; 4] = [
            (
                "a leak at the heap's rate",
                Box::new(|x| MIB * x / 60.0),
                true,
            ),
            (
                "a cache that filled by 9 minutes",
                Box::new(|x| MIB * x.min(540.0) / 60.0),
                false,
            ),
            (
                "a third of the heap's growth",
                Box::new(|x| 20.0 * MIB * x / 3600.0),
                false,
            ),
            (
                "slowed to a fifth of its rate after 10 minutes",
                Box::new(|x| MIB * x.min(600.0) / 60.0 + 0.2 * MIB * (x - 600.0).max(0.0) / 60.0),
                false,
            ),
        ];
        for (name, f, want) in cases {
            let (whole, recent) = series(&*f);
            let name_of = || std::sync::Arc::<str>::from("main.site");
            let got = culprit_goes_on(
                (&[(name_of(), whole)], &[(name_of(), recent)]),
                floors,
                heap_per_hour,
                20.0 * MIB,
            );
            assert_eq!(got.is_some(), want, "{name}: {got:?}");
        }
    }

    /// A culprit stands for the whole heap's shape only when its own readings cover
    /// half the window, rise one way through both halves and carry two thirds of its
    /// growth.
    #[test]
    fn a_culprit_stands_for_the_heap_shape_only_when_it_rises_one_way_throughout() {
        const MIB: f64 = 1024.0 * 1024.0;
        let th = Thresholds::default();
        let floors = (LeakKind::Heap.spec().floors)(&th);
        let line = |from: f64, f: &dyn Fn(f64) -> f64| -> Vec<(f64, f64)> {
            (0..=60)
                .map(|i| i as f64 * 15.0)
                .filter(|x| *x >= from)
                .map(|x| (x, f(x)))
                .collect()
        };
        // The whole heap: 60 MiB/h over 15 minutes.
        let heap_trend = Trend::of(&line(0.0, &|x| 20.0 * MIB + MIB * x / 60.0)).unwrap();
        let heap = assess(&heap_trend, Unit::Bytes, floors, &th);
        type Case = (&'static str, Vec<(f64, f64)>, bool);
        let cases: [Case; 6] = [
            ("a leak's site", line(0.0, &|x| MIB * x / 60.0), true),
            (
                "named late: covers a third of the window",
                line(600.0, &|x| MIB * x / 60.0),
                false,
            ),
            (
                "a sawtooth site",
                line(0.0, &|x| 10.0 * MIB * ((x % 120.0) / 120.0)),
                false,
            ),
            (
                "a cache that filled in five minutes",
                line(0.0, &|x| 3.0 * MIB * x.min(300.0) / 60.0),
                false,
            ),
            (
                "one-way but half of the heap's growth",
                line(0.0, &|x| 10.0 * MIB + 30.0 * MIB * x / 3600.0),
                false,
            ),
            (
                "one-way but a fifteenth of the heap's growth",
                line(0.0, &|x| 10.0 * MIB + 4.0 * MIB * x / 3600.0),
                false,
            ),
        ];
        for (name, points, want) in cases {
            let culprits = [(std::sync::Arc::from("main.site"), points)];
            let got = culprit_shape(&culprits, floors, &th, &heap);
            assert_eq!(got.is_some(), want, "{name}: {got:?}");
        }
    }
}
