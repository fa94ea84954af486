//! The pre-OOM trigger's decision: when a heap and a goroutine dump with reason
//! `pre_oom` are due because a target's memory is about to run out, so the profile
//! from just before an OOM kill exists. [`PreOomTrigger`] takes values and says yes or
//! no; the manager's `on_memory` (`schedule.rs`) feeds it each scrape's pressure and
//! takes the dumps.
//!
//! The rule, per target:
//! - **One pair per episode.** An episode starts with the first sample under pressure
//!   (time to OOM under 5 minutes, or usage at 90% of the limit or more) and ends only
//!   after **sustained relief**: usage under 80% of the limit (and no short time to
//!   OOM) for at least [`RELIEF_SAMPLES`] samples in a row spanning at least
//!   [`RELIEF_TIME`]. One low sample between two high ones is not relief: a target
//!   bouncing between 95% and 50% of its limit is one episode, not one per bounce.
//! - **The cooldown and the overhead budget.** A new episode's pair waits until
//!   `dumps.cooldown` has passed since the last pair started, or longer when that pair
//!   was expensive: `time the pair took / overhead_budget` (as manual dumps). An
//!   episode that starts within the wait gets its pair when the wait ends, if memory is
//!   still about to run out.
//! - **Their own retention.** `pre_oom` dumps are a retention pool of their own
//!   ([`Pool::PreOom`](super::profile::Pool)): they never push scheduled, suspect or
//!   baseline dumps out.

use std::time::{Duration, Instant};

use super::throttle::dump_gap;

/// A target's memory as the pre-OOM trigger sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryPressure {
    /// Time to OOM under the threshold, or usage at or over 90% of the limit.
    AboutToRunOut,
    /// Neither, but not clearly relieved either (hysteresis), or not known.
    Unchanged,
    /// Usage under 80% of the limit and no short time to OOM, or no process.
    Relieved,
}

/// Relieved samples in a row that end an episode (with [`RELIEF_TIME`]).
pub const RELIEF_SAMPLES: u32 = 3;
/// The least time from the first to the last of the relieved samples that end an
/// episode (with [`RELIEF_SAMPLES`]).
pub const RELIEF_TIME: Duration = Duration::from_secs(60);

/// One target's pre-OOM trigger state: whether an episode is under way, the relief
/// seen since, and when the next pair may start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreOomTrigger {
    /// An episode is under way (its pair was taken); ends after sustained relief.
    episode: bool,
    /// The first of the relieved samples in a row, and how many there were.
    relief: Option<(Instant, u32)>,
    /// No pair before this: the cooldown, stretched by the overhead budget.
    not_before: Option<Instant>,
}

impl PreOomTrigger {
    /// Records one sample of `pressure` at `now`; true when a pair is due now (then
    /// the episode has started and the cooldown runs from `now`).
    pub fn observe(&mut self, pressure: MemoryPressure, now: Instant, cooldown: Duration) -> bool {
        match pressure {
            MemoryPressure::Relieved => {
                let (since, n) = self.relief.get_or_insert((now, 0));
                *n = n.saturating_add(1);
                if *n >= RELIEF_SAMPLES && now.saturating_duration_since(*since) >= RELIEF_TIME {
                    self.episode = false;
                }
                false
            }
            MemoryPressure::Unchanged => {
                self.relief = None;
                false
            }
            MemoryPressure::AboutToRunOut => {
                self.relief = None;
                if self.episode || self.not_before.is_some_and(|t| now < t) {
                    return false;
                }
                self.episode = true;
                self.not_before = Some(now + cooldown);
                true
            }
        }
    }

    /// The pair that started at `started` took `took`: the next one waits for the
    /// cooldown, or for `took / budget` when that is longer.
    pub fn finished(&mut self, started: Instant, took: Duration, cooldown: Duration, budget: f64) {
        let next = started + dump_gap(cooldown, took, budget);
        self.not_before = Some(self.not_before.map_or(next, |t| t.max(next)));
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryPressure::{AboutToRunOut as High, Relieved as Low, Unchanged as Mid};
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(600);

    /// Runs `samples` (one every `every`) through a fresh trigger: the sample indices
    /// at which a pair was due.
    fn fired(samples: &[MemoryPressure], every: Duration) -> Vec<usize> {
        let t0 = Instant::now();
        let mut trigger = PreOomTrigger::default();
        let mut out = Vec::new();
        for (i, p) in samples.iter().enumerate() {
            if trigger.observe(*p, t0 + every * i as u32, COOLDOWN) {
                out.push(i);
            }
        }
        out
    }

    /// `n` samples alternating between `a` and `b`.
    fn alternating(a: MemoryPressure, b: MemoryPressure, n: usize) -> Vec<MemoryPressure> {
        (0..n).map(|i| if i % 2 == 0 { a } else { b }).collect()
    }

    #[test]
    fn usage_bouncing_between_95_and_50_percent_dumps_once_per_cooldown() {
        let s = Duration::from_secs;
        // Issue 23: 95% / 50% of the limit one sample to the next (before: a pair at
        // every high sample, 8 pairs in 30 s).
        for every in [s(1), s(2), s(15), s(60)] {
            // Two hours of samples: one pair; a single low sample never ends the
            // episode, whatever the interval.
            let n = (7200 / every.as_secs()) as usize;
            assert_eq!(
                fired(&alternating(High, Low, n), every),
                vec![0],
                "{every:?}"
            );
            assert_eq!(
                fired(&alternating(Low, High, n), every),
                vec![1],
                "{every:?}"
            );
        }
    }

    #[test]
    fn episodes_end_only_after_sustained_relief_and_obey_the_cooldown() {
        let s = Duration::from_secs;
        let low = |n: usize| vec![Low; n];
        let cat = |parts: &[Vec<MemoryPressure>]| parts.concat();
        for (what, samples, every, want) in [
            (
                "two low samples (30 s) are not relief",
                cat(&[vec![High], low(2), vec![High]]),
                s(15),
                vec![0],
            ),
            (
                "a minute of low samples at 1 s ends the episode; cooldown still runs",
                cat(&[vec![High], low(61), vec![High]]),
                s(1),
                vec![0],
            ),
            (
                "relief then pressure after the cooldown: a second pair",
                cat(&[vec![High], low(700), vec![High]]),
                s(1),
                vec![0, 701],
            ),
            (
                "3 samples over 60 s at 30 s: relief; next pair once the cooldown is over",
                cat(&[vec![High], low(3), vec![High; 30]]),
                s(30),
                vec![0, 20],
            ),
            (
                "59 s of low samples at 1 s are not relief, however often",
                cat(&[
                    vec![High],
                    [low(59), vec![Mid]].concat().repeat(120),
                    vec![High],
                ]),
                s(1),
                vec![0],
            ),
            (
                "2 low samples a minute apart are not relief, however often",
                cat(&[vec![High], [Low, Low, Mid].repeat(20), vec![High]]),
                s(60),
                vec![0],
            ),
            (
                "80-90% (hysteresis) breaks a run of relief",
                cat(&[vec![High], alternating(Low, Mid, 1000), vec![High]]),
                s(1),
                vec![0],
            ),
            ("never under pressure: nothing", low(100), s(1), vec![]),
            (
                "pressure from the first sample: at once",
                vec![High],
                s(1),
                vec![0],
            ),
        ] {
            assert_eq!(fired(&samples, every), want, "{what}");
        }
    }

    #[test]
    fn an_expensive_pair_stretches_the_wait_to_the_overhead_budget() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // A pair at t0 that took `took` under a 1% budget, cooldown 10 s; then a
        // sustained relief and pressure from 150 s on: when the next pair is due.
        let next = |took: Option<Duration>| {
            let mut trigger = PreOomTrigger::default();
            assert!(trigger.observe(High, t0, s(10)));
            if let Some(took) = took {
                trigger.finished(t0, took, s(10), 0.01);
            }
            (1..1000u64).find(|&i| {
                let p = if i < 150 { Low } else { High };
                trigger.observe(p, t0 + s(i), s(10))
            })
        };
        assert_eq!(next(None), Some(150));
        assert_eq!(next(Some(Duration::from_millis(50))), Some(150));
        // 2 s for the pair: 200 s until the next one, not 10 s.
        assert_eq!(next(Some(s(2))), Some(200));
    }
}
