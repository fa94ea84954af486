//! The throttle of dumps taken off the schedule (manual and `pre_oom`): the least gap
//! from the start of one to the start of the next, from the cooldown and the overhead
//! budget.

use std::time::Duration;

/// Time from the start of one dump (or pair) to the next one allowed: the cooldown, or
/// longer when the dump was expensive, so `took / gap` stays within `budget` (a share
/// of one core; 0 or not finite = none).
pub(super) fn dump_gap(cooldown: Duration, took: Duration, budget: f64) -> Duration {
    if budget > 0.0 && budget.is_finite() {
        let by_budget = (took.as_secs_f64() / budget).min(24.0 * 3600.0);
        cooldown.max(Duration::from_secs_f64(by_budget))
    } else {
        cooldown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gap_is_the_cooldown_or_the_budget_whichever_is_longer() {
        let s = Duration::from_secs;
        for (cooldown, took, budget, want) in [
            (s(600), s(1), 0.01, s(600)),
            (s(10), s(1), 0.01, s(100)),
            (s(0), Duration::from_millis(50), 0.01, s(5)),
            (s(0), s(1), 0.0, s(0)),
            (s(7), s(1), f64::NAN, s(7)),
            (s(0), s(1_000_000), 0.01, s(24 * 3600)),
        ] {
            assert_eq!(
                dump_gap(cooldown, took, budget),
                want,
                "{cooldown:?} {took:?} {budget}"
            );
        }
    }
}
