//! Robust trend statistics over `(seconds, value)` points: the Theil-Sen slope with
//! its distribution-free confidence interval, and the Goodman-Kruskal gamma (how one-way
//! a series moves).
//!
//! Why Theil-Sen rather than least squares: a Go heap is a sawtooth, traffic is
//! bursty and a single GC can halve `HeapAlloc`. The median of pairwise slopes
//! ignores up to ~29% of arbitrarily bad points, where one outlier can swing a
//! least-squares fit. It costs O(n²) pairs: 7,140 for the default 120-sample
//! window, a few microseconds.

/// The 97.5% quantile of the standard normal: the confidence interval is 95%.
const Z_95: f64 = 1.959_964;

/// A Theil-Sen fit. `low..=high` is the 95% confidence interval of the slope
/// (Sen 1968, from the ranks of the pairwise slopes; ties in the values are not
/// corrected for, which makes the interval slightly conservative).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// Median of pairwise slopes, value units per second.
    pub slope: f64,
    /// Median of `y - slope * x`: the fitted value at `x = 0`.
    pub intercept: f64,
    pub low: f64,
    pub high: f64,
    /// Points used.
    pub n: usize,
}

impl Fit {
    /// The fitted value at `x`.
    pub fn at(&self, x: f64) -> f64 {
        self.intercept + self.slope * x
    }
}

/// Theil-Sen fit of `points` (`x` in seconds). `None` with fewer than two distinct
/// `x` or any non-finite coordinate.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<Fit> {
    if points.iter().any(|(x, y)| !x.is_finite() || !y.is_finite()) {
        return None;
    }
    let n = points.len();
    let mut slopes = Vec::with_capacity(n.saturating_mul(n.saturating_sub(1)) / 2);
    for (i, &(xi, yi)) in points.iter().enumerate() {
        for &(xj, yj) in points.iter().skip(i + 1) {
            let dx = xj - xi;
            if dx != 0.0 {
                slopes.push((yj - yi) / dx);
            }
        }
    }
    if slopes.is_empty() {
        return None;
    }
    let slope = median(&mut slopes)?;
    // Confidence interval: ranks (N ∓ z·sqrt(Var S)) / 2 of the sorted slopes,
    // Var S = n(n-1)(2n+5)/18 under no trend beyond the fitted one.
    let nf = n as f64;
    let big_n = slopes.len();
    let c = Z_95 * (nf * (nf - 1.0) * (2.0 * nf + 5.0) / 18.0).sqrt();
    let last = big_n - 1;
    let lo_rank = (((big_n as f64 - c) / 2.0).floor().max(0.0) as usize).min(last);
    let hi_rank = (((big_n as f64 + c) / 2.0).ceil().max(0.0) as usize).min(last);
    let low = *slopes.select_nth_unstable_by(lo_rank, f64::total_cmp).1;
    let high = *slopes.select_nth_unstable_by(hi_rank, f64::total_cmp).1;
    let mut residuals: Vec<f64> = points.iter().map(|(x, y)| y - slope * x).collect();
    let intercept = median(&mut residuals)?;
    Some(Fit {
        slope,
        intercept,
        low,
        high,
        n,
    })
}

/// Goodman-Kruskal gamma between `x` and `y`: over every pair of points whose `x`
/// and `y` both differ, (pairs that went up - pairs that went down) / (both).
/// +1 when `y` never goes down as `x` grows, -1 when it never goes up, about 0 for
/// noise. It is Kendall's tau with tied pairs left out rather than diluting the
/// result, so a staircase (a live heap that only changes at GCs) that only steps up
/// still scores 1. `None` when no pair differs in both coordinates.
pub fn gamma(points: &[(f64, f64)]) -> Option<f64> {
    let mut concordant: u64 = 0;
    let mut discordant: u64 = 0;
    for (i, &(xi, yi)) in points.iter().enumerate() {
        for &(xj, yj) in points.iter().skip(i + 1) {
            let dx = xj - xi;
            let dy = yj - yi;
            if dx == 0.0 || dy == 0.0 || !dx.is_finite() || !dy.is_finite() {
                continue;
            }
            if (dx > 0.0) == (dy > 0.0) {
                concordant += 1;
            } else {
                discordant += 1;
            }
        }
    }
    let both = concordant + discordant;
    if both == 0 {
        return None;
    }
    Some((concordant as f64 - discordant as f64) / both as f64)
}

/// The median (mean of the two middle values for an even count); reorders `v`.
pub fn median(v: &mut [f64]) -> Option<f64> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let mid = n / 2;
    let upper = *v.select_nth_unstable_by(mid, f64::total_cmp).1;
    if n % 2 == 1 {
        return Some(upper);
    }
    // After select_nth, everything left of `mid` is <= upper: its max is the lower middle.
    let lower = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((lower + upper) / 2.0)
}

/// The scatter of `points` around `fit`: 1.4826 times the median absolute residual (the
/// standard deviation for normal noise, robust to a few outliers). `None` when empty.
pub fn residual_scale(points: &[(f64, f64)], fit: &Fit) -> Option<f64> {
    let mut residuals: Vec<f64> = points.iter().map(|p| (p.1 - fit.at(p.0)).abs()).collect();
    median(&mut residuals).map(|m| 1.4826 * m)
}

/// The `q` quantile (0..=1) by the nearest-rank method; reorders `v`.
pub fn quantile(v: &mut [f64], q: f64) -> Option<f64> {
    let n = v.len();
    if n == 0 || !q.is_finite() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * n as f64).ceil() as usize;
    let idx = rank.saturating_sub(1).min(n - 1);
    Some(*v.select_nth_unstable_by(idx, f64::total_cmp).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize, f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| (i as f64 * 15.0, f(i as f64 * 15.0)))
            .collect()
    }

    #[test]
    fn residual_scale_is_the_scatter_around_the_line() {
        type Case = (&'static str, Vec<(f64, f64)>, f64, f64);
        let cases: Vec<Case> = vec![
            ("a clean line", series(20, |x| 5.0 + 2.0 * x), 0.0, 1e-9),
            // Alternating +-1 around a line: every residual is 1, scale 1.4826.
            (
                "+-1 around a line",
                series(20, |x| {
                    x + if ((x / 15.0) as u64).is_multiple_of(2) {
                        1.0
                    } else {
                        -1.0
                    }
                }),
                1.3,
                1.6,
            ),
            // One outlier of 1000 among clean points does not move it.
            (
                "one outlier",
                series(21, |x| if x == 150.0 { 1000.0 } else { 3.0 * x }),
                0.0,
                1e-9,
            ),
        ];
        for (name, pts, lo, hi) in cases {
            let fit = theil_sen(&pts).unwrap();
            let s = residual_scale(&pts, &fit).unwrap();
            assert!((lo..=hi).contains(&s), "{name}: {s}");
        }
        let fit = theil_sen(&series(3, |x| x)).unwrap();
        assert_eq!(residual_scale(&[], &fit), None);
    }

    /// Deterministic pseudo-noise in -1..1 (a fixed LCG: tests must not flake).
    fn noise(i: usize) -> f64 {
        let x = (i as u64)
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 33) as f64 / (1u64 << 31) as f64) - 1.0
    }

    #[test]
    fn theil_sen_table() {
        struct Case {
            name: &'static str,
            points: Vec<(f64, f64)>,
            slope: Option<f64>,
            tolerance: f64,
        }
        let cases = [
            Case {
                name: "exact line",
                points: series(120, |x| 1000.0 + 2.5 * x),
                slope: Some(2.5),
                tolerance: 1e-12,
            },
            Case {
                name: "line with 20% huge outliers",
                points: series(100, |x| {
                    let i = (x / 15.0) as usize;
                    if i % 10 < 2 { 1e9 } else { 10.0 * x }
                }),
                slope: Some(10.0),
                tolerance: 1e-9,
            },
            Case {
                name: "noisy line",
                points: (0..120)
                    .map(|i| (i as f64 * 15.0, 5.0 * i as f64 * 15.0 + 500.0 * noise(i)))
                    .collect(),
                slope: Some(5.0),
                tolerance: 0.5,
            },
            Case {
                name: "flat",
                points: series(50, |_| 7.0),
                slope: Some(0.0),
                tolerance: 0.0,
            },
            Case {
                name: "one point",
                points: vec![(0.0, 1.0)],
                slope: None,
                tolerance: 0.0,
            },
            Case {
                name: "same x only",
                points: vec![(3.0, 1.0), (3.0, 2.0)],
                slope: None,
                tolerance: 0.0,
            },
            Case {
                name: "nan",
                points: vec![(0.0, 1.0), (1.0, f64::NAN)],
                slope: None,
                tolerance: 0.0,
            },
            Case {
                name: "empty",
                points: vec![],
                slope: None,
                tolerance: 0.0,
            },
        ];
        for c in cases {
            let fit = theil_sen(&c.points);
            match (fit, c.slope) {
                (None, None) => {}
                (Some(f), Some(want)) => {
                    assert!(
                        (f.slope - want).abs() <= c.tolerance,
                        "{}: slope {} want {}",
                        c.name,
                        f.slope,
                        want
                    );
                    assert!(
                        f.low <= f.slope && f.slope <= f.high,
                        "{}: CI {f:?}",
                        c.name
                    );
                }
                (got, want) => panic!("{}: got {got:?}, want {want:?}", c.name),
            }
        }
    }

    #[test]
    fn confidence_interval_narrows_with_less_noise() {
        let wide: Vec<_> = (0..60)
            .map(|i| (i as f64, i as f64 + 20.0 * noise(i)))
            .collect();
        let narrow: Vec<_> = (0..60)
            .map(|i| (i as f64, i as f64 + 0.2 * noise(i)))
            .collect();
        let w = theil_sen(&wide).unwrap();
        let n = theil_sen(&narrow).unwrap();
        assert!(w.high - w.low > 10.0 * (n.high - n.low), "{w:?} vs {n:?}");
        assert!(n.low <= 1.0 && 1.0 <= n.high, "{n:?}");
        let line = theil_sen(&series(30, |x| 3.0 * x)).unwrap();
        assert_eq!((line.low, line.high), (3.0, 3.0));
        assert!((line.at(10.0) - 30.0).abs() < 1e-9);
    }

    type GammaCase = (&'static str, Vec<(f64, f64)>, Option<f64>);

    #[test]
    fn gamma_table() {
        let cases: [GammaCase; 6] = [
            ("rising", series(20, |x| x * x), Some(1.0)),
            ("falling", series(20, |x| -x), Some(-1.0)),
            // A staircase: values repeat between steps but never go down.
            ("staircase", series(20, |x| (x / 60.0).floor()), Some(1.0)),
            ("flat", series(20, |_| 1.0), None),
            ("one point", vec![(0.0, 0.0)], None),
            // 1,3,2,4: pairs (1,3)+ (1,2)+ (1,4)+ (3,2)- (3,4)+ (2,4)+ -> (5-1)/6
            // (a step up with one tie: 1,1,2 -> both pairs up -> 1, see staircase)
            (
                "small",
                vec![(0.0, 1.0), (1.0, 3.0), (2.0, 2.0), (3.0, 4.0)],
                Some(4.0 / 6.0),
            ),
        ];
        for (name, points, want) in cases {
            let got = gamma(&points);
            match (got, want) {
                (None, None) => {}
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-12, "{name}: {g} want {w}"),
                _ => panic!("{name}: got {got:?} want {want:?}"),
            }
        }
    }

    #[test]
    fn median_and_quantile() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.99), Some(99.0));
        assert_eq!(quantile(&mut v, 1.0), Some(100.0));
        assert_eq!(quantile(&mut v, 0.0), Some(1.0));
        assert_eq!(quantile(&mut [], 0.5), None);
    }
}
