//! The leak verdict: from a window's trends to `leak_suspected{kind}` (0/1),
//! `leak_score{kind}` (0..1) and human-readable reasons, for kind = heap, goroutine,
//! http_connections. The thresholds are configurable ([`Thresholds`]).
//!
//! # The decision rule
//!
//! A **heap** leak is suspected when all of these hold:
//!
//! 1. **The window holds evidence**: it covers at least `warmup` (default 5 minutes,
//!    at most two thirds of the window) with at least `min_samples` samples, and, when
//!    HeapAlloc grew, at least `min_gc_cycles` (default 5) GC cycles: the live heap is
//!    measured only at a GC, so a window with one or two GCs is **inconclusive**, never
//!    "no leak". The live heap is read once per GC cycle (readings between two GCs are
//!    one measurement), and a growing live heap whose shape test (below) fails with
//!    fewer than `min_gc_cycles / 2` GC cycles in a half of the window is inconclusive
//!    too: a step between two rare GCs looks like a plateau. A process restart empties
//!    the window, so a restart never looks like growth.
//! 2. **The live heap grows.** The live heap is the heap that survived the last GC: the
//!    heap profile's in-use bytes, and independently `NextGC / (1 + GOGC/100)` from
//!    MemStats. The profile decides once it has taken at least 8 distinct values in the
//!    window (it is refreshed at every GC); until then both are judged and the stronger
//!    is taken (a rarely refreshed profile would hide a leak). (`HeapAlloc` itself is a
//!    sawtooth between GCs and is never judged directly.) On that series:
//!    - **fast enough**: its robust (Theil-Sen) slope is at least
//!      `heap_min_growth_bytes_per_hour` (default 2 MiB/h) *and* at least
//!      `heap_min_relative_growth_per_hour` (default 5%/h) of its median level;
//!    - **one-way**: its monotonicity is at least `min_monotonicity` (default 0.6).
//!      Monotonicity is the Goodman-Kruskal gamma of the live heap against time: of all
//!      pairs of samples (earlier, later) whose live heap differs, the share that went
//!      up minus the share that went down (0.6 = at least 80% went up). Pairs with an
//!      unchanged heap (no GC in between) are ignored, so a staircase scores 1, and
//!      noise scores about 0 whatever its amplitude;
//!    - **sustained**: the first and the second half of the window each grow, with a
//!      slope of at least `min_half_slope_fraction` (default 0.25) of the whole
//!      window's. A cache that warmed up and then plateaued, or a single step up (a
//!      config reload), fails this: one half is flat.
//!
//!    While the process's start-up grace ends inside the window, the two shape
//!    criteria may hold on the heap's culprit site instead ([`culprit_shape`]): a slow
//!    leak beside a sawtooth of live data reads, at each GC, as the leak plus the
//!    sawtooth's phase, while the leaking site's own sampled bytes only rise.
//! 3. **The runtime agrees**: the slope of `NextGC` over the window is positive, or
//!    that of `HeapAlloc` is (skipped when MemStats are not available).
//! 4. **It goes on after start-up**: growth in a process's first `startup_grace`
//!    (default twice `warmup`, 10 minutes) may be caches filling. The points after the
//!    grace must show an upward trend by the Mann-Kendall test (one-sided 5%) with a
//!    Sen slope above the same floors, pass the shape criteria of rule 2 on their own
//!    (a step just after the grace is not growth that goes on) and grow by at least
//!    three times their scatter around Sen's line (noise that happens to trend up for
//!    a few readings is not; see `after_grace`); until the window reaches far enough past the
//!    grace the state is **warming up**, with fewer than 4 live-heap readings after
//!    it (a heap profile counts from the second GC after it) **inconclusive**,
//!    growth that confidently stopped (its slope's 95% upper bound under the floor or
//!    a quarter of the window's rate) is **no leak**, and growth not yet significant
//!    nor stopped is **inconclusive**. Where the whole heap's readings after the grace
//!    do not show growth, the culprit's own readings after it may
//!    ([`culprit_goes_on`]): one-way and rising, they outweigh a few noisy whole-heap
//!    readings that look stopped. The
//!    grace counts from the process's start time (`/proc`), so a process that has run
//!    for hours is judged as soon as rule 1 holds.
//!
//! A **goroutine** leak and an **http_connections** leak (goroutines in
//! `net/http.(*persistConn).readLoop`: HTTP client connections never closed) are
//! suspected on rules 1, 2 and 4 applied to the goroutine count and the connection
//! count, with their own floors (default 60 goroutines/h and 5%/h; 30 connections/h
//! and 5%/h). Bursty traffic raises and lowers these counts: it is not one-way and
//! not sustained, so it does not fire.
//!
//! **Hysteresis** ([`hold`]): once suspected, a kind clears only when its score falls
//! below 0.3 (it is set at 0.5), so a leak whose criteria hover around their
//! thresholds does not flip on every scrape.
//!
//! **Score**: each criterion maps to 0..1, exactly 0.5 at its threshold, linear below,
//! reaching 1 at four times the growth floors, monotonicity 0.9 and half fraction
//! 0.75. The score is the smallest of them (0 while warming up or when the runtime
//! disagrees), so `leak_score >= 0.5` exactly when `leak_suspected` is 1, and the
//! score says how clear the case is.
//!
//! # Why these defaults
//!
//! - 2 MiB/h: below it, a whole day of growth is under 50 MiB, rarely what kills a
//!   service; above heap-profile jitter for small services.
//! - 5%/h: a heap growing 5% an hour doubles in about 14 hours, well within a day's
//!   on-call; slower relative growth on a big heap is caught by the absolute floor
//!   only once it matters in bytes, and by time-to-OOM.
//! - gamma 0.6: pure noise over 120 samples scores 0 ± 0.1; a steady leak, even one
//!   an order of magnitude smaller than the GC sawtooth, scores above 0.8 because
//!   the live heap (after GC) has no sawtooth.
//! - half fraction 0.25: a constant-rate leak has both halves at about 1.0; a
//!   plateau or step has one half at about 0. 0.25 tolerates a leak whose rate
//!   varies fourfold between the halves.
//! - 60 goroutines/h: one leaked goroutine a minute (each at least 2-8 KiB of stack
//!   plus what it references) is about 1,500 a day; 30 connections/h: each leaked
//!   connection also holds two goroutines, two buffers (8 KiB) and a file descriptor.

use crate::analysis::after_grace::{after_grace, too_few_gcs_after_grace};
use crate::analysis::criteria::{assess, describe};
use crate::analysis::culprit_site::culprit_shape;
use crate::analysis::kinds::Series;
use crate::analysis::thresholds::Thresholds;
use crate::units::{fmt_bytes, fmt_duration};

pub use crate::analysis::evidence::{Estimate, Evidence, Grace, KindEvidence, SiteReadings};
pub use crate::analysis::kinds::{KindVerdict, LeakKind, Verdict, VerdictState};

/// Applies the decision rule.
pub fn judge(ev: &Evidence<'_>, th: &Thresholds) -> Verdict {
    let mut v = judge_each(ev, th);
    explain_by_connections(&mut v, ev);
    v
}

/// One cause, one page: every leaked HTTP client connection holds two goroutines
/// (`persistConn.readLoop` and `writeLoop`) and its buffers, so a connection leak also
/// grows the goroutine count and the heap. Those verdicts stay (they are true) but
/// name the connection leak as their cause; the shipped Alertmanager config inhibits
/// their alerts while the connection alert fires.
pub fn explain_by_connections(v: &mut Verdict, ev: &Evidence<'_>) {
    if !v.get(LeakKind::HttpConnections).suspected {
        return;
    }
    // The fastest estimate (the live heap has up to two).
    let per_hour = |kind: LeakKind| {
        ev.kinds[kind]
            .estimates
            .iter()
            .map(Estimate::per_hour)
            .reduce(f64::max)
            .unwrap_or(0.0)
    };
    let connections = per_hour(LeakKind::HttpConnections);
    let goroutines = per_hour(LeakKind::Goroutine);
    let heap = per_hour(LeakKind::Heap);
    let checks = [
        (
            LeakKind::Goroutine,
            goroutines <= GOROUTINES_PER_CONNECTION * connections,
            format!(
                "explained by the HTTP client connection leak: {goroutines:+.0} goroutines/h is \
                 what {connections:+.0} connections/h hold (two or three goroutines each)"
            ),
        ),
        (
            LeakKind::Heap,
            heap <= BYTES_PER_CONNECTION * connections,
            format!(
                "explained by the HTTP client connection leak: {}/h of live heap is what \
                 {connections:+.0} connections/h hold (their buffers)",
                fmt_bytes(heap)
            ),
        ),
    ];
    for (kind, explained, why) in checks {
        let k = v.get_mut(kind);
        if k.suspected && explained {
            k.suspected = false;
            k.state = VerdictState::Explained;
            k.explained_by = Some(LeakKind::HttpConnections);
            k.score = k.score.min(0.49);
            k.reasons.insert(0, why);
        }
    }
}

/// Below this score a suspected kind clears (see [`hold`]); it is set at 0.5.
pub const CLEAR_BELOW_SCORE: f64 = 0.3;

/// Hysteresis: a kind suspected at the previous evaluation stays suspected while its
/// new verdict says "no leak" or "inconclusive" with a score of at least
/// [`CLEAR_BELOW_SCORE`]. Setting needs every criterion at its threshold (score 0.5);
/// clearing needs one criterion clearly short of it (a slope at 60% of its floor,
/// monotonicity 0.36 where 0.6 is needed), so a leak whose criteria hover around their
/// thresholds does not flip on every scrape. A restart (warming up), a stale target or
/// an explained kind is never held, and a held kind keeps the score at 0.5 and says so.
pub fn hold(v: &mut Verdict, previous: Option<&Verdict>) {
    let Some(previous) = previous else { return };
    for kind in LeakKind::ALL {
        let k = v.get_mut(kind);
        let contrary = matches!(k.state, VerdictState::NoLeak | VerdictState::Inconclusive);
        if previous.get(kind).suspected && contrary && k.score >= CLEAR_BELOW_SCORE {
            k.reasons.insert(
                0,
                format!(
                    "still suspected: the evidence weakened (score {:.2}) but a suspected leak \
                     clears only below {CLEAR_BELOW_SCORE}",
                    k.score
                ),
            );
            k.score = 0.5;
            k.suspected = true;
            k.state = VerdictState::Suspected;
        }
    }
}

/// Goroutines one leaked HTTP client connection holds: `readLoop` and `writeLoop`, and
/// the server's connection goroutine when the server is the same process (a loopback
/// call, common in sidecars and tests), with room for a request goroutine blocked on it.
const GOROUTINES_PER_CONNECTION: f64 = 3.5;
/// Live heap one leaked connection holds: its bufio reader and writer (4 KiB each),
/// TLS state and the response; a generous bound.
const BYTES_PER_CONNECTION: f64 = 64.0 * 1024.0;

fn judge_each(ev: &Evidence<'_>, th: &Thresholds) -> Verdict {
    Verdict::from_fn(|kind| match kind.spec().series {
        Series::LiveHeap => judge_live_heap(kind, ev, th),
        Series::Count(_) => judge_count(kind, ev, th),
    })
}

fn cold(kind: LeakKind, ev: &Evidence<'_>) -> KindVerdict {
    KindVerdict::new(
        kind,
        VerdictState::WarmingUp,
        0.0,
        vec![format!(
            "warming up: the window covers {} of the {} needed",
            fmt_duration(ev.span_seconds),
            fmt_duration(ev.warmup_seconds)
        )],
    )
}

/// The live heap's rule: GC cycles enough to measure it, the strongest estimator's
/// growth, the runtime's corroboration, then growth after the start-up grace.
fn judge_live_heap(kind: LeakKind, ev: &Evidence<'_>, th: &Thresholds) -> KindVerdict {
    let spec = kind.spec();
    let floors = (spec.floors)(th);
    if !ev.warm {
        return cold(kind, ev);
    }
    if let Some(n) = ev.gc_cycles
        && n < th.min_gc_cycles
        && ev.heap_alloc_grew
    {
        return KindVerdict::new(
            kind,
            VerdictState::Inconclusive,
            0.0,
            vec![format!(
                "inconclusive: HeapAlloc grew but only {n} GC cycle(s) ran in the window ({} \
                 needed); the live heap is measured only at a GC, so flat readings say \
                 nothing (`gc: auto`, the default, asks the service for a GC after a minute without one)",
                th.min_gc_cycles
            )],
        );
    }
    let best = ev.kinds[kind]
        .estimates
        .iter()
        .map(|e| (e, assess(e.trend, spec.unit, floors, th)))
        .max_by(|a, b| a.1.score.total_cmp(&b.1.score));
    let Some((best, mut a)) = best else {
        let why = match ev.gc_cycles {
            // A trend needs three readings of the live heap, one per GC.
            Some(n) => format!(
                "inconclusive: only {n} GC cycle(s) ran in the window; the live heap is \
                 measured only at a GC and a trend needs 3 readings"
            ),
            None => "no live-heap data (neither a heap profile nor MemStats)".into(),
        };
        return KindVerdict::new(kind, VerdictState::Inconclusive, 0.0, vec![why]);
    };
    let what = match best.source {
        Some(source) => format!("{} ({})", spec.name, source.words()),
        None => spec.name.to_string(),
    };
    let mut reasons = vec![describe(&what, spec.unit, &a)];
    if a.only_shape_failed()
        && let Some(why) = culprit_shape(&ev.kinds[kind].culprit_window, floors, th, &a)
    {
        reasons.extend(a.failure_lines());
        a.shape_met_elsewhere();
        reasons.push(why);
    }
    // The live heap grew, but a failed shape test (one-way, both halves) rests on the GC
    // readings: with too few in a half, a step between two GCs looks like a plateau.
    let grew = a.per_hour >= floors.per_hour && a.relative_per_hour >= floors.relative_per_hour;
    // GC cycles each half needs: half of `min_gc_cycles` (2 with the defaults).
    let per_half = (th.min_gc_cycles / 2).max(1);
    if grew
        && !a.failures.is_empty()
        && let Some((first, second)) = ev.gc_cycles_by_half
        && first.min(second) < per_half
    {
        reasons.insert(
            0,
            format!(
                "inconclusive: the live heap grew, but only {first} and {second} GC cycles \
                 measured it in the two halves of the window ({per_half} each needed); between GCs the live heap is not measured, so its shape cannot be \
                 judged (watch longer; `gc: false` never asks the service for a GC)"
            ),
        );
        return KindVerdict::new(kind, VerdictState::Inconclusive, a.score.min(0.49), reasons);
    }
    let corroborated = match (ev.next_gc_slope, ev.heap_alloc_slope) {
        (None, None) => true,
        (n, h) => n.is_some_and(|s| s > 0.0) || h.is_some_and(|s| s > 0.0),
    };
    let mut score = a.score;
    let mut suspected = a.failures.is_empty();
    if !corroborated {
        score = 0.0;
        suspected = false;
        reasons.push("not confirmed by the runtime: neither NextGC nor HeapAlloc trends up".into());
    }
    reasons.extend(a.failure_lines());
    if let Some((f, g)) = ev.kinds[kind].culprit
        && g > 0
        && suspected
    {
        reasons.push(format!("top growth: {f} +{}", fmt_bytes(g as f64)));
    }
    if !suspected {
        return KindVerdict::new(kind, VerdictState::NoLeak, score, reasons);
    }
    let recent = best.recent.as_slice();
    if let Some((state, why)) = too_few_gcs_after_grace(ev, recent, floors) {
        reasons.insert(0, why);
        return KindVerdict::new(kind, state, score.min(0.49), reasons);
    }
    after_grace(kind, (ev, th), recent, (floors, a.per_hour), score, reasons)
}

/// A count's rule: its growth criteria, then growth after the start-up grace.
fn judge_count(kind: LeakKind, ev: &Evidence<'_>, th: &Thresholds) -> KindVerdict {
    if !ev.warm {
        return cold(kind, ev);
    }
    let spec = kind.spec();
    let floors = (spec.floors)(th);
    let evidence = &ev.kinds[kind];
    let Some(e) = evidence.estimates.first() else {
        return KindVerdict::new(
            kind,
            VerdictState::Inconclusive,
            0.0,
            vec!["no goroutine profile data".into()],
        );
    };
    let a = assess(e.trend, spec.unit, floors, th);
    let mut reasons = vec![describe(spec.name, spec.unit, &a)];
    reasons.extend(a.failure_lines());
    if let Some((f, g)) = evidence.culprit
        && g > 0
        && a.failures.is_empty()
    {
        reasons.push(format!("top growth: {f} +{g}"));
    }
    if !a.failures.is_empty() {
        return KindVerdict::new(kind, VerdictState::NoLeak, a.score, reasons);
    }
    after_grace(
        kind,
        (ev, th),
        &e.recent,
        (floors, a.per_hour),
        a.score,
        reasons,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(state: VerdictState, score: f64) -> Verdict {
        Verdict::from_fn(|kind| KindVerdict::new(kind, state, score, vec!["why".into()]))
    }

    #[test]
    fn a_suspected_kind_clears_only_on_clearly_contrary_evidence() {
        use VerdictState::*;
        // (previous, new state, new score, held as suspected)
        let cases = [
            (Some(Suspected), NoLeak, 0.45, true),
            (Some(Suspected), Inconclusive, 0.3, true),
            (Some(Suspected), NoLeak, 0.29, false),
            (Some(Suspected), Inconclusive, 0.0, false),
            // A restart, a stale target or an explained kind is never held.
            (Some(Suspected), WarmingUp, 0.45, false),
            (Some(Suspected), Stale, 0.45, false),
            (Some(Suspected), Explained, 0.45, false),
            // Setting needs the full rule: nothing is held without a suspicion.
            (Some(NoLeak), NoLeak, 0.45, false),
            (None, NoLeak, 0.45, false),
        ];
        for (previous, state, score, held) in cases {
            let before = previous.map(|p| all(p, if p == Suspected { 0.7 } else { 0.4 }));
            let mut v = all(state, score);
            hold(&mut v, before.as_ref());
            for k in v.kinds() {
                let case = format!("{previous:?} -> {state:?} {score}: {k:?}");
                assert_eq!(k.suspected, held, "{case}");
                if held {
                    assert_eq!(k.state, Suspected, "{case}");
                    assert_eq!(k.score, 0.5, "{case}");
                    assert!(k.reasons[0].contains("still suspected"), "{case}");
                } else {
                    assert_eq!((k.state, k.score), (state, score), "{case}");
                }
            }
        }
    }
}
