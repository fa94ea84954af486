//! The verdict's last test for a young process: whether a kind's growth goes on after
//! the start-up grace (Mann-Kendall and Sen's slope on the readings after it, their
//! shape and their scatter, the culprit's own readings), and what too few of those
//! readings leave it at.

use crate::analysis::criteria::assess;
use crate::analysis::culprit_site::culprit_goes_on;
use crate::analysis::evidence::Evidence;
use crate::analysis::kinds::{KindVerdict, LeakKind, VerdictState};
use crate::analysis::slope::{residual_scale, theil_sen};
use crate::analysis::thresholds::{Floors, Thresholds};
use crate::analysis::trend::{Trend, mann_kendall};
use crate::units::fmt_duration;

/// GC cycles after the start-up grace the heap's recent-growth test needs.
const MIN_GC_CYCLES_AFTER_GRACE: u64 = 3;
/// Live-heap readings (one per GC) after the start-up grace the recent-growth test
/// needs: Mann-Kendall's minimum.
const MIN_GC_READINGS_AFTER_GRACE: u64 = 4;

/// The last step for a kind whose whole window passed every criterion: the growth
/// must go on after the start-up grace (a cache that fills and stops is not a leak),
/// tested with Mann-Kendall and Sen's slope on the points after it, which must also
/// grow one way through both halves and by [`GROWTH_OVER_SCATTER`] times their own
/// scatter (or, where they cannot, the culprit's readings: [`culprit_goes_on`]). "No leak" needs
/// the growth to have confidently stopped (the slope's 95% upper bound under the
/// floor, or under [`STOPPED_SHARE`] of the window's rate, `window_per_hour`); growth
/// that is not yet significant, as a slow leak beside a big sawtooth is for minutes,
/// is inconclusive.
pub(crate) fn after_grace(
    kind: LeakKind,
    (ev, th): (&Evidence<'_>, &Thresholds),
    recent: &[(f64, f64)],
    (floors, window_per_hour): (Floors, f64),
    score: f64,
    mut reasons: Vec<String>,
) -> KindVerdict {
    let g = ev.grace;
    if !g.over() {
        reasons.insert(
            0,
            format!(
                "growing, but within the start-up grace: growth in a process's first {} may be \
                 caches filling; judging the growth after it ({} of {} covered)",
                fmt_duration(g.grace_seconds),
                fmt_duration((g.newest_x - g.end_x).max(0.0)),
                fmt_duration(g.needed_seconds)
            ),
        );
        return KindVerdict::new(kind, VerdictState::WarmingUp, score.min(0.49), reasons);
    }
    let mk = mann_kendall(recent);
    let trend = Trend::of(recent);
    let fit = trend.as_ref().map(|t| t.fit);
    let mut values: Vec<f64> = recent.iter().map(|p| p.1).collect();
    let level = crate::analysis::slope::median(&mut values)
        .unwrap_or(1.0)
        .max(1.0);
    let per_hour = fit.map_or(0.0, |f| f.slope * 3600.0);
    // Too few points for Mann-Kendall: when the whole window follows the grace, the
    // window's own criteria (already met) decide; otherwise nothing can be said yet.
    if mk.is_none() && g.end_x > 0.0 {
        reasons.insert(
            0,
            format!(
                "inconclusive: {} reading(s) since the start-up grace ended, too few to \
                 tell whether the growth goes on; watch longer",
                recent.len()
            ),
        );
        return KindVerdict::new(kind, VerdictState::Inconclusive, score.min(0.49), reasons);
    }
    // Rising is not yet going on ([`not_going_on`]); when the whole window follows the
    // grace these are the window's own readings, whose shape already passed.
    let not_going_on = match &trend {
        Some(t) if g.end_x > 0.0 => not_going_on(kind, t, recent, (floors, th)),
        _ => Vec::new(),
    };
    let grows = mk.is_none_or(|m| m.upward())
        && per_hour >= floors.per_hour
        && per_hour / level >= floors.relative_per_hour;
    if grows && not_going_on.is_empty() {
        if g.end_x > 0.0 {
            reasons.push(format!(
                "still growing after the start-up grace: Mann-Kendall z {:.1} over {} points",
                mk.map_or(0.0, |m| m.z),
                recent.len()
            ));
        }
        return KindVerdict::new(kind, VerdictState::Suspected, score, reasons);
    }
    // A culprit whose own bytes go on rising one way after the grace outweighs the
    // whole heap's few noisy readings since, even when those look stopped: a sawtooth
    // read at falling phases can put Sen's upper bound under the floor for minutes.
    if g.end_x > 0.0
        && let Some(why) = culprit_goes_on(
            (
                &ev.kinds[kind].culprit_window,
                &ev.kinds[kind].culprit_recent,
            ),
            floors,
            window_per_hour,
            level,
        )
    {
        reasons.push(why);
        return KindVerdict::new(kind, VerdictState::Suspected, score, reasons);
    }
    let stopped =
        fit.is_some_and(|f| f.high * 3600.0 < floors.per_hour.max(STOPPED_SHARE * window_per_hour));
    if !stopped {
        let why = if grows {
            format!(
                "inconclusive: growing over the window, and the readings after the start-up \
                 grace rose, but not the way a leak goes on ({}): a step there, such as a \
                 buffer allocated once or a cache filled just after the grace, or noise; \
                 watch longer",
                not_going_on.join("; ")
            )
        } else {
            format!(
                "inconclusive: growing over the window, but the growth after the start-up \
                 grace is not significant yet (Mann-Kendall z {:.1} over {} points) nor \
                 clearly stopped; watch longer",
                mk.map_or(0.0, |m| m.z),
                recent.len()
            )
        };
        reasons.insert(0, why);
        return KindVerdict::new(kind, VerdictState::Inconclusive, score.min(0.49), reasons);
    }
    reasons.insert(
        0,
        format!(
            "growth did not go on after the start-up grace ({} since the process started): \
             start-up, such as a cache that filled, not a leak",
            fmt_duration(g.grace_seconds)
        ),
    );
    KindVerdict::new(kind, VerdictState::NoLeak, score.min(0.49), reasons)
}

/// Why the readings after the grace (`recent`, their trend `t`), though they may rise,
/// are not growth that goes on; empty when they are. They must grow the way the
/// window's had to, one way and through both halves: a step there (a buffer allocated
/// once, a cache filled just after the grace) is not. And their growth must stand out
/// of their own scatter around Sen's line: a leak's growth adds up with time while
/// noise does not, so Mann-Kendall's chance upturn of a few noisy readings (one
/// evaluation in twenty on pure noise, and a suspected kind is held) is not taken for
/// growth that goes on.
fn not_going_on(
    kind: LeakKind,
    t: &Trend,
    recent: &[(f64, f64)],
    (floors, th): (Floors, &Thresholds),
) -> Vec<String> {
    let unit = kind.spec().unit;
    let shape = assess(t, unit, floors, th)
        .failures
        .into_iter()
        .filter(|(c, _)| c.is_shape())
        .map(|(_, why)| why);
    let growth = t.fit.slope * t.span_seconds;
    let scatter = residual_scale(recent, &t.fit)
        .filter(|&scale| growth < GROWTH_OVER_SCATTER * scale)
        .map(|scale| {
            format!(
                "grew {} over {} readings, under {GROWTH_OVER_SCATTER} times their \
                 scatter ({})",
                unit.fmt(growth),
                recent.len(),
                unit.fmt(scale)
            )
        });
    shape.chain(scatter).collect()
}

/// How many times the scatter of the readings after the start-up grace (around their
/// Sen line) their growth must reach: under pure noise, a growth of three standard
/// deviations over eight readings comes about once in a hundred evaluations.
const GROWTH_OVER_SCATTER: f64 = 3.0;

/// Growth after the start-up grace has stopped when its slope's 95% upper bound is
/// under this share of the window's rate (or under the floor).
const STOPPED_SHARE: f64 = 0.25;

/// Past the grace the live heap is measured only at GCs: without enough of them the
/// points after it (`recent`, one reading per GC cycle) say nothing, and a heap
/// profile may still show growth that stopped a while ago (it reports the heap as of
/// an earlier GC; its points count from the second GC after the grace). The state
/// and reason then, unless the readings after the grace can be judged.
pub(crate) fn too_few_gcs_after_grace(
    ev: &Evidence<'_>,
    recent: &[(f64, f64)],
    floors: Floors,
) -> Option<(VerdictState, String)> {
    let readings = recent.len() as u64;
    let too_few = readings < MIN_GC_READINGS_AFTER_GRACE
        || ev
            .gc_cycles_recent
            .is_some_and(|n| n < MIN_GC_CYCLES_AFTER_GRACE);
    if !(ev.grace.end_x > 0.0 && ev.grace.over() && too_few) {
        return None;
    }
    let n = ev.gc_cycles_recent.unwrap_or(readings);
    // "No leak" only when HeapAlloc is confidently flat: every point tells it.
    let alloc_flat = ev.heap_alloc_recent.len() >= 4
        && theil_sen(&ev.heap_alloc_recent).is_some_and(|f| f.high * 3600.0 < floors.per_hour);
    Some(if !alloc_flat {
        (
            VerdictState::Inconclusive,
            format!(
                "inconclusive: {n} GC cycle(s) since the start-up grace gave {readings} \
                 live-heap reading(s) ({MIN_GC_READINGS_AFTER_GRACE} needed; a heap \
                 profile counts from the second GC after the grace) and HeapAlloc is not \
                 flat; watch longer (`gc: false` never asks the service for a GC)"
            ),
        )
    } else {
        (
            VerdictState::NoLeak,
            "no growth after the start-up grace: HeapAlloc is flat and no GC has run \
             since (start-up, such as a cache that filled)"
                .to_string(),
        )
    })
}
