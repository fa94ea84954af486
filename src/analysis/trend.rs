//! The trend of one series over the window ([`Trend`]: robust slope, monotonicity,
//! halves, level) and the tests that weigh it: the Mann-Kendall test for a one-way
//! trend (paired with Sen's slope from [`crate::analysis::slope`]), and time to a limit
//! from a slope whose confidence interval excludes zero.
//!
//! Why these and not a fixed warm-up: the question "is this series growing?" has an
//! answer as soon as the data can tell, and not before. Mann-Kendall turns the same
//! pair counts as the monotonicity score (Goodman-Kruskal gamma) into a significance
//! that grows with the number of samples: twelve samples that all go up are evidence,
//! three are not. Ties (a live heap that only moves at a GC) are corrected for, so a
//! series that is flat most of the time is not read as a trend.

use crate::analysis::slope::{Fit, gamma, median, theil_sen};

/// A robust trend of one series over the window (`x` = seconds since window start).
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    pub fit: Fit,
    /// Goodman-Kruskal gamma of value against time, clamped at 0: 1 = never went down.
    pub monotonicity: f64,
    /// The same of the series' lower envelope ([`floor_monotonicity`]), when the
    /// window holds enough of it.
    pub floor_monotonicity: Option<f64>,
    /// Theil-Sen slopes of the first and the second half of the window.
    pub first_half_slope: Option<f64>,
    pub second_half_slope: Option<f64>,
    /// Median value over the window.
    pub level: f64,
    pub latest: f64,
    pub span_seconds: f64,
}

impl Trend {
    /// `None` with fewer than 3 points or no time between them.
    pub fn of(points: &[(f64, f64)]) -> Option<Trend> {
        if points.len() < 3 {
            return None;
        }
        let fit = theil_sen(points)?;
        let first_x = points.first()?.0;
        let last = points.last()?;
        let span = last.0 - first_x;
        let mid = first_x + span / 2.0;
        // Each half reaches one point across the middle: a series read once per GC
        // may have no point near it, and the growth from the last reading before the
        // middle to the first after it belongs to both halves.
        let split = points.partition_point(|p| p.0 <= mid);
        let first = &points[..(split + 1).min(points.len())];
        let second = &points[split.saturating_sub(1)..];
        let mut values: Vec<f64> = points.iter().map(|p| p.1).collect();
        Some(Trend {
            fit,
            monotonicity: gamma(points).unwrap_or(0.0).max(0.0),
            floor_monotonicity: floor_monotonicity(points),
            first_half_slope: theil_sen(first).map(|f| f.slope),
            second_half_slope: theil_sen(second).map(|f| f.slope),
            level: median(&mut values)?,
            latest: last.1,
            span_seconds: span,
        })
    }
}

impl Trend {
    /// How one-way the growth is, as the verdict judges it: the readings' own
    /// monotonicity or their lower envelope's, whichever is higher.
    pub fn one_way(&self) -> f64 {
        self.monotonicity
            .max(self.floor_monotonicity.unwrap_or(0.0))
    }
}

/// Stretches of equal time the span is cut into for the lower envelope.
pub const FLOOR_BLOCKS: usize = 16;
/// Fewest stretches holding a reading for the envelope to be judged.
pub const FLOOR_MIN_BLOCKS: usize = 12;

/// Goodman-Kruskal gamma (clamped at 0) of the series' lower envelope: the lowest
/// reading of each of [`FLOOR_BLOCKS`] equal stretches of the span, at its time.
/// `None` when fewer than [`FLOOR_MIN_BLOCKS`] stretches hold a reading.
///
/// Why: a live heap read at each GC is what the leak holds plus what is live at that
/// moment (a batch, a request's buffers): a leak of 1 MiB a minute beside a 10 MiB
/// sawtooth of live data reads as noise ten times its step, and the readings' own
/// monotonicity stays under 0.4 for a quarter of an hour (measured: 0.28 at 8 minutes,
/// issue 21). The lowest reading of each stretch drops the transient part, so the
/// leak's floor rises one way while a healthy service's floor stays level. Sixteen
/// stretches keep noise honest: the gamma of 16 unrelated values reaches 0.6 with a
/// probability of about 0.1%, and the verdict's other criteria (the slope's floors,
/// both halves, growth after the start-up grace) must hold as well.
pub fn floor_monotonicity(points: &[(f64, f64)]) -> Option<f64> {
    let (first, last) = (points.first()?.0, points.last()?.0);
    let span = last - first;
    if span.is_nan() || span <= 0.0 || points.len() < FLOOR_MIN_BLOCKS {
        return None;
    }
    let mut floor: Vec<Option<(f64, f64)>> = vec![None; FLOOR_BLOCKS];
    for &(x, y) in points {
        if !x.is_finite() || !y.is_finite() {
            continue;
        }
        let i = (((x - first) / span) * FLOOR_BLOCKS as f64) as usize;
        let slot = &mut floor[i.min(FLOOR_BLOCKS - 1)];
        if slot.is_none_or(|(_, low)| y < low) {
            *slot = Some((x, y));
        }
    }
    let envelope: Vec<(f64, f64)> = floor.into_iter().flatten().collect();
    if envelope.len() < FLOOR_MIN_BLOCKS {
        return None;
    }
    Some(gamma(&envelope).unwrap_or(0.0).max(0.0))
}

/// One-sided 95% quantile of the standard normal: an upward trend is significant at
/// `z >= Z_95_ONE_SIDED` (p < 0.05).
pub const Z_95_ONE_SIDED: f64 = 1.644_854;

/// The Mann-Kendall statistic of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannKendall {
    pub n: usize,
    /// Pairs that went up minus pairs that went down.
    pub s: f64,
    /// Variance of `s` under "no trend", corrected for ties.
    pub var: f64,
    /// Continuity-corrected normal score: positive for an upward trend.
    pub z: f64,
}

impl MannKendall {
    /// An upward trend at the one-sided 5% level.
    pub fn upward(&self) -> bool {
        self.z >= Z_95_ONE_SIDED
    }
}

/// Mann-Kendall over `(x, y)` points in any order. `None` with fewer than 4 points,
/// any non-finite coordinate, or no variance (every value tied).
pub fn mann_kendall(points: &[(f64, f64)]) -> Option<MannKendall> {
    let n = points.len();
    if n < 4 || points.iter().any(|(x, y)| !x.is_finite() || !y.is_finite()) {
        return None;
    }
    let mut s = 0i64;
    for (i, &(xi, yi)) in points.iter().enumerate() {
        for &(xj, yj) in &points[i + 1..] {
            let dx = xj - xi;
            let dy = yj - yi;
            if dx == 0.0 || dy == 0.0 {
                continue;
            }
            s += if (dx > 0.0) == (dy > 0.0) { 1 } else { -1 };
        }
    }
    // Tie groups in y: sum of t(t-1)(2t+5) over groups of t equal values.
    let mut ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    ys.sort_unstable_by(f64::total_cmp);
    let mut ties = 0.0;
    let mut run = 1usize;
    for i in 1..=ys.len() {
        if i < ys.len() && ys[i] == ys[i - 1] {
            run += 1;
        } else {
            if run > 1 {
                let t = run as f64;
                ties += t * (t - 1.0) * (2.0 * t + 5.0);
            }
            run = 1;
        }
    }
    let nf = n as f64;
    let var = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - ties) / 18.0;
    if var <= 0.0 {
        return None;
    }
    let sf = s as f64;
    let z = if sf > 0.0 {
        (sf - 1.0) / var.sqrt()
    } else if sf < 0.0 {
        (sf + 1.0) / var.sqrt()
    } else {
        0.0
    };
    Some(MannKendall { n, s: sf, var, z })
}

/// The points at or after `from_x`.
pub fn since(points: &[(f64, f64)], from_x: f64) -> Vec<(f64, f64)> {
    points.iter().copied().filter(|p| p.0 >= from_x).collect()
}

/// Which part of the series a time-to-limit estimate was fitted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Every point held.
    Whole,
    /// The most recent half of the time held: growth that accelerates (a heap whose
    /// GC goal doubles, traffic that ramps) is faster there than over the whole.
    Recent,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Whole => "window",
            Basis::Recent => "recent",
        }
    }
}

/// Time until a growing series reaches a limit (time-to-OOM is the usage's time to
/// the memory limit: its rate in bytes per second).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeToLimit {
    pub seconds: f64,
    /// At the upper bound of the slope's 95% interval.
    pub earliest_seconds: f64,
    /// At the lower bound of the slope's 95% interval.
    pub latest_seconds: f64,
    pub rate_per_second: f64,
    pub basis: Basis,
    pub fit: Fit,
}

/// Fewest points a time-to-limit is fitted on: 6 (75 s at the default 15 s). With 4 the
/// 95% interval is the range of the pairwise slopes, enough to say "growing", but a
/// start-up cache that loads 600 MiB into a 1 GiB limit in two minutes was then
/// exported from its 50th second, and its critical page (`for: 2m`) came within
/// seconds of the edge test ending it; two more points give that ramp 30 s of margin
/// and a leak's page comes 30 s later.
pub const MIN_POINTS_TO_LIMIT: usize = 6;

/// The edge: the newest points that say whether growth goes on, at least
/// [`EDGE_POINTS`] of them, widened until they span [`EDGE_MIN_SECONDS`].
pub const EDGE_POINTS: usize = 3;
pub const EDGE_MIN_SECONDS: f64 = 20.0;
/// Growth has stopped when the edge rose by less than this share of what the fit
/// predicts over the edge's span.
pub const EDGE_STOP_SHARE: f64 = 0.25;

/// Whether growth that `fit` describes has stopped at the newest points: over the edge
/// (the last [`EDGE_POINTS`] points, or more until they span [`EDGE_MIN_SECONDS`]) the
/// series rose by less than [`EDGE_STOP_SHARE`] of the fit's rise over the same span.
/// The rise is the highest later point over the edge's first, so a single upward blip
/// counts as growth going on: the test errs toward keeping a time to the limit.
///
/// Why an edge and not the recent half: a start-up cache that filled in two minutes
/// and then held keeps a confident positive slope over any part of the window that
/// still holds its ramp, for as long as the window does (23 minutes were measured);
/// two flat intervals after the ramp are enough to say it stopped.
pub fn growth_stopped(points: &[(f64, f64)], fit: &Fit) -> bool {
    if fit.slope <= 0.0 || points.len() < EDGE_POINTS {
        return fit.slope <= 0.0;
    }
    let mut sorted = points.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let last_x = sorted[sorted.len() - 1].0;
    let mut start = sorted.len() - EDGE_POINTS;
    while start > 0 && last_x - sorted[start].0 < EDGE_MIN_SECONDS {
        start -= 1;
    }
    let edge = &sorted[start..];
    let first = edge[0];
    let span = last_x - first.0;
    if span <= 0.0 {
        return false;
    }
    let rise = edge[1..]
        .iter()
        .map(|p| p.1)
        .fold(f64::NEG_INFINITY, f64::max)
        - first.1;
    rise < EDGE_STOP_SHARE * fit.slope * span
}

/// Time until `latest` reaches `limit` at the rate of `points`, or `None` while the
/// series is not confidently growing by at least `min_rate_per_second` (the 95%
/// interval of the slope must exclude 0), or once that growth has stopped at the
/// newest points ([`growth_stopped`]). Both the whole series and its recent half
/// are fitted; the faster confident fit wins, so a leak that speeds up is not judged
/// by its slow start. A series already at or over the limit gives 0.
pub fn time_to_limit(
    points: &[(f64, f64)],
    latest: f64,
    limit: f64,
    min_rate_per_second: f64,
) -> Option<TimeToLimit> {
    if points.len() < MIN_POINTS_TO_LIMIT || !latest.is_finite() || !limit.is_finite() {
        return None;
    }
    let confident = |f: &Fit| f.low > 0.0 && f.slope > 0.0 && f.slope >= min_rate_per_second;
    let whole = theil_sen(points).filter(confident);
    let first_x = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let last_x = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let recent_pts = since(points, last_x - (last_x - first_x) / 2.0);
    let recent = (recent_pts.len() >= MIN_POINTS_TO_LIMIT && recent_pts.len() < points.len())
        .then(|| theil_sen(&recent_pts))
        .flatten()
        .filter(confident);
    let (basis, fit) = match (whole, recent) {
        (Some(w), Some(r)) if r.slope > w.slope => (Basis::Recent, r),
        (Some(w), _) => (Basis::Whole, w),
        (None, Some(r)) => (Basis::Recent, r),
        (None, None) => return None,
    };
    if growth_stopped(points, &fit) {
        return None;
    }
    let room = (limit - latest).max(0.0);
    let at = |rate: f64| {
        if rate > 0.0 {
            room / rate
        } else {
            f64::INFINITY
        }
    };
    Some(TimeToLimit {
        seconds: at(fit.slope),
        earliest_seconds: at(fit.high),
        latest_seconds: at(fit.low),
        rate_per_second: fit.slope,
        basis,
        fit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize, f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| (i as f64 * 15.0, f(i as f64 * 15.0)))
            .collect()
    }

    /// Deterministic noise in -1..1.
    fn noise(i: f64) -> f64 {
        ((i * 12.9898).sin() * 43_758.547).fract()
    }

    #[test]
    fn mann_kendall_table() {
        // (name, points, upward?)
        type Case = (&'static str, Vec<(f64, f64)>, bool);
        let cases: Vec<Case> = vec![
            ("strictly rising, 12 points", series(12, |x| x), true),
            // p = 1/24 for 4 points that all go up; one step down is not enough.
            ("strictly rising, 4 points", series(4, |x| x), true),
            (
                "4 points, one step down",
                vec![(0.0, 1.0), (1.0, 3.0), (2.0, 2.0), (3.0, 4.0)],
                false,
            ),
            ("falling", series(12, |x| -x), false),
            ("noise", series(40, noise), false),
            (
                "slow rise under 5x noise",
                series(80, |x| x / 100.0 + 5.0 * noise(x) * 0.1),
                true,
            ),
            // A live heap that moves only at a GC: steps every 4 samples.
            ("staircase", series(24, |x| (x / 60.0).floor()), true),
            // A cache that stopped: two steps then 10 ties.
            (
                "two steps then flat",
                vec![(0.0, 1.0), (15.0, 2.0)]
                    .into_iter()
                    .chain((2..12).map(|i| (i as f64 * 15.0, 3.0)))
                    .collect(),
                true,
            ),
        ];
        for (name, pts, want) in cases {
            let got = mann_kendall(&pts).is_some_and(|m| m.upward());
            assert_eq!(got, want, "{name}: {:?}", mann_kendall(&pts));
        }
        assert_eq!(mann_kendall(&series(10, |_| 7.0)), None, "all tied");
        assert_eq!(mann_kendall(&series(3, |x| x)), None);
        assert_eq!(
            mann_kendall(&[(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0), (3.0, 4.0)]),
            None
        );
    }

    #[test]
    fn mann_kendall_matches_the_textbook_variance() {
        // n = 10, no ties: Var S = 10*9*25/18 = 125; S = 45 for a strict rise.
        let m = mann_kendall(&series(10, |x| x)).unwrap();
        assert_eq!(m.s, 45.0);
        assert!((m.var - 125.0).abs() < 1e-9);
        assert!((m.z - 44.0 / 125f64.sqrt()).abs() < 1e-9);
        // One tie group of 3 removes 3*2*11/18 from the variance.
        let mut pts = series(10, |x| x);
        pts[1].1 = 0.0;
        pts[2].1 = 0.0;
        let m = mann_kendall(&pts).unwrap();
        assert!((m.var - (125.0 - 66.0 / 18.0)).abs() < 1e-9);
    }

    #[test]
    fn time_to_limit_table() {
        let mib = 1024.0 * 1024.0;
        // 80 MiB/min from 300 MiB towards 1 GiB: 6 samples (75 s) are enough.
        let fast = series(6, |x| 300.0 * mib + 80.0 * mib * x / 60.0);
        let latest = fast.last().unwrap().1;
        let t = time_to_limit(&fast, latest, 1024.0 * mib, 0.0).unwrap();
        let want = (1024.0 * mib - latest) / (80.0 * mib / 60.0);
        assert!((t.seconds - want).abs() < 1.0, "{t:?} want {want}");
        assert!(t.earliest_seconds <= t.seconds && t.seconds <= t.latest_seconds);

        // Too few points, a flat series, a falling one, noise: no estimate.
        assert_eq!(time_to_limit(&fast[..3], latest, 1024.0 * mib, 0.0), None);
        let flat = series(20, |_| 500.0 * mib);
        assert_eq!(time_to_limit(&flat, 500.0 * mib, 1024.0 * mib, 0.0), None);
        let falling = series(20, |x| 900.0 * mib - x * 1000.0);
        assert_eq!(
            time_to_limit(&falling, 800.0 * mib, 1024.0 * mib, 0.0),
            None
        );
        let noisy = series(40, |x| 500.0 * mib + 50.0 * mib * noise(x));
        assert_eq!(time_to_limit(&noisy, 500.0 * mib, 1024.0 * mib, 0.0), None);

        // Growth below the floor is "not growing".
        let slow = series(20, |x| 100.0 * mib + x);
        assert_eq!(time_to_limit(&slow, 100.0 * mib, 1024.0 * mib, 10.0), None);

        // Accelerating growth (a GC goal that doubles): the recent half is faster and wins.
        let accel = series(40, |x| 100.0 * mib + (x / 60.0).powi(2) * 4.0 * mib);
        let latest = accel.last().unwrap().1;
        let t = time_to_limit(&accel, latest, 1024.0 * mib, 0.0).unwrap();
        assert_eq!(t.basis, Basis::Recent);
        let whole = theil_sen(&accel).unwrap();
        assert!(t.rate_per_second > whole.slope);

        // At or over the limit: 0.
        let t = time_to_limit(&fast, 2048.0 * mib, 1024.0 * mib, 0.0).unwrap();
        assert_eq!(t.seconds, 0.0);
    }

    /// Issue 21's deploy page: a start-up cache that loads 600 MiB into a 1 GiB limit in
    /// its first two minutes and holds. Sampled every 15 s, with a little noise.
    fn ramp_then_hold(n: usize) -> Vec<(f64, f64)> {
        let mib = 1024.0 * 1024.0;
        series(n, |x| {
            let level = if x < 120.0 {
                50.0 + 550.0 * x / 120.0
            } else {
                600.0
            };
            (level + 2.0 * noise(x)) * mib
        })
    }

    #[test]
    fn time_to_limit_ends_when_growth_stops() {
        let mib = 1024.0 * 1024.0;
        let limit = 1024.0 * mib;
        let at = |pts: &[(f64, f64)]| time_to_limit(pts, pts.last().unwrap().1, limit, 0.0);
        // (samples held, a time to the limit expected?). Sample 8 is the ramp's end
        // (120 s); the whole window's slope stays confident for long after it.
        let cases = [
            (5, false),
            (6, true),
            (8, true),
            (9, true),
            // Two flat intervals after the ramp: 30 s after growth stopped.
            (11, false),
            (20, false),
            (60, false),
        ];
        let ramp = ramp_then_hold(120);
        for (n, want) in cases {
            let pts = &ramp[..n];
            if (6..=20).contains(&n) {
                assert!(
                    theil_sen(pts).unwrap().low > 0.0,
                    "{n}: the fit alone still says growing"
                );
            }
            assert_eq!(at(pts).is_some(), want, "ramp, {n} samples: {:?}", at(pts));
        }
        // Half an hour on, the recent half is noise alone: a fit of noise can be
        // "confident" by chance (5% of the time at 95%), but it is far from a page.
        if let Some(t) = at(&ramp) {
            assert!(t.seconds > 86_400.0, "{t:?}");
        }
        // A leak that goes on (30 MiB/min, noise under 2 MiB) keeps its estimate at
        // every sample, as does one that grows by a step every other sample.
        let leak = series(60, |x| (50.0 + 30.0 * x / 60.0 + 2.0 * noise(x)) * mib);
        let steps = series(60, |x| (50.0 + 15.0 * (x / 30.0).floor()) * mib);
        for n in MIN_POINTS_TO_LIMIT..=60 {
            assert!(at(&leak[..n]).is_some(), "leak, {n} samples");
            // (With fewer than 8 samples the steps' own fit is not confident yet.)
            assert!(n < 8 || at(&steps[..n]).is_some(), "steps, {n} samples");
        }
        // The edge test on its own: widened to 20 s, and a blip up counts as growth.
        let fit = theil_sen(&leak).unwrap();
        assert!(!growth_stopped(&leak, &fit));
        let mut blip = series(20, |_| 600.0 * mib);
        blip[19].1 += 100.0 * mib;
        assert!(!growth_stopped(&blip, &fit));
        assert!(growth_stopped(&series(20, |_| 600.0 * mib), &fit));
    }
}

#[cfg(test)]
mod floor_tests {
    use super::*;
    use crate::analysis::sim::noise;

    const MIB: f64 = 1024.0 * 1024.0;

    /// `n` readings every `every` seconds: `leak` bytes a minute plus a live part
    /// uniform in 0..`live` (where in its sawtooth each GC caught the service).
    fn readings(n: u64, every: f64, leak: f64, live: f64, seed: u64) -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| {
                let x = i as f64 * every;
                let transient = (noise(seed * 10_007 + i) + 1.0) / 2.0 * live;
                (x, 20.0 * MIB + leak * x / 60.0 + transient)
            })
            .collect()
    }

    #[test]
    fn floor_sees_a_leak_under_a_sawtooth_of_live_data() {
        // live_defaults' sawtooth_heap: 1 MiB/min beside 10 MiB of live data, a GC
        // every 15 s, 200 windows each. (case, minutes, readings' own monotonicity
        // passes 0.6 in at most this share, the floor's in at least this share)
        let cases = [
            ("10 minutes in", 10, 0.10, 0.60),
            ("12 minutes in", 12, 0.30, 0.90),
            ("14 minutes in", 14, 0.80, 0.97),
        ];
        for (case, minutes, raw_at_most, floor_at_least) in cases {
            let (mut raw, mut floor) = (0, 0);
            for seed in 0..200 {
                let t = Trend::of(&readings(minutes * 4, 15.0, MIB, 10.0 * MIB, seed)).unwrap();
                raw += usize::from(t.monotonicity >= 0.6);
                let f = t.floor_monotonicity.unwrap();
                floor += usize::from(f >= 0.6);
                assert_eq!(t.one_way(), f.max(t.monotonicity), "{case}");
            }
            let share = |n: usize| n as f64 / 200.0;
            eprintln!("{case}: raw {raw}/200, floor {floor}/200");
            assert!(share(raw) <= raw_at_most, "{case}: raw passes {raw}/200");
            assert!(
                share(floor) >= floor_at_least,
                "{case}: floor passes {floor}/200"
            );
        }
        // A clean leak: both see it.
        let t = Trend::of(&readings(40, 15.0, MIB, 0.0, 3)).unwrap();
        assert_eq!((t.monotonicity, t.floor_monotonicity), (1.0, Some(1.0)));
    }

    #[test]
    fn floor_of_noise_rarely_looks_one_way() {
        // A healthy service: the same live sawtooth, no leak, 2,000 windows.
        let windows = 2000;
        let mut one_way = 0;
        for seed in 0..windows {
            let pts = readings(60, 20.0, 0.0, 10.0 * MIB, 100 + seed);
            if floor_monotonicity(&pts).unwrap() >= 0.6 {
                one_way += 1;
            }
        }
        // About 0.1% expected (gamma of 16 unrelated values).
        eprintln!("noise: {one_way} of {windows} windows one-way");
        assert!(
            one_way * 1000 <= windows * 5,
            "{one_way} of {windows} windows"
        );
    }

    #[test]
    fn floor_needs_enough_stretches() {
        assert_eq!(floor_monotonicity(&readings(11, 20.0, MIB, 0.0, 1)), None);
        // Readings bunched in a few stretches (few GCs): no envelope.
        let mut pts = readings(20, 1.0, MIB, 0.0, 1);
        pts.push((600.0, 30.0 * MIB));
        assert_eq!(floor_monotonicity(&pts), None);
        assert_eq!(floor_monotonicity(&[]), None);
        let flat = vec![(0.0, 1.0); 20];
        assert_eq!(floor_monotonicity(&flat), None);
    }
}
