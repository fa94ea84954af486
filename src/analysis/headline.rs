//! The headline of a target: the one decision of what its state reads as (no data yet,
//! leak suspected, stale, warming up, undecided, no leak), made here from its signals
//! and its window, and rendered by every view (the landing page, the report page,
//! `leakwatch watch`'s lines, summary and JSON). Values and words only, no HTML.
//!
//! The order of the rule is the verdict's doc read from the top: a suspected leak is
//! never hidden (a proof from the runtime or an OOM kill can come before the window is
//! warm); a stale verdict is no verdict; a kind that cannot be judged yet
//! ([`Verdict::undecided`]) never reads as "no leak".

use super::kinds::{LeakKind, Verdict, VerdictState};
use super::signals::Signals;
use super::window::Window;
use crate::units::fmt_duration;

/// What a target's state reads as, decided once by [`Headline::decide`].
#[derive(Debug, Clone, PartialEq)]
pub enum Headline {
    /// Nothing measured yet: never scraped successfully, or an empty window.
    NoData,
    /// At least one kind is suspected; the kinds, in table order.
    Suspected { kinds: Vec<LeakKind> },
    /// The target is down or its process is gone: no verdict from old samples.
    Stale { reason: String },
    /// The window does not hold enough yet for any verdict.
    WarmingUp {
        covered_seconds: f64,
        needed_seconds: f64,
        samples: usize,
        min_samples: usize,
    },
    /// Warm, but a kind cannot be judged yet (growth within the start-up grace, a heap
    /// that grew between too few GC cycles): never "no leak".
    Undecided {
        kind: LeakKind,
        /// [`VerdictState::WarmingUp`] or [`VerdictState::Inconclusive`].
        state: VerdictState,
        reason: Option<String>,
    },
    /// Every kind judged, none suspected.
    NoLeak,
}

impl Headline {
    /// The one rule: from the target's latest signals (`None` before its first
    /// analysis), whether it ever answered, and its window.
    pub fn decide(signals: Option<&Signals>, answered: bool, window: &Window) -> Headline {
        let Some(sig) = signals.filter(|s| answered && s.window_samples > 0) else {
            return Headline::NoData;
        };
        Headline::of_verdict(&sig.verdict, sig, window)
    }

    fn of_verdict(verdict: &Verdict, sig: &Signals, window: &Window) -> Headline {
        let kinds: Vec<LeakKind> = verdict
            .kinds()
            .iter()
            .filter(|k| k.suspected)
            .map(|k| k.kind)
            .collect();
        if !kinds.is_empty() {
            return Headline::Suspected { kinds };
        }
        if let Some(k) = verdict
            .kinds()
            .iter()
            .find(|k| k.state == VerdictState::Stale)
        {
            return Headline::Stale {
                reason: k.reasons.join("; "),
            };
        }
        if !sig.warm {
            return Headline::WarmingUp {
                covered_seconds: sig.window_span_seconds,
                needed_seconds: window.warmup().as_secs_f64(),
                samples: sig.window_samples,
                min_samples: window.config().min_samples,
            };
        }
        match verdict.undecided() {
            Some(k) => Headline::Undecided {
                kind: k.kind,
                state: k.state,
                reason: k.reasons.first().cloned(),
            },
            None => Headline::NoLeak,
        }
    }

    /// Whether the headline is a verdict (leak suspected or not), not a "cannot tell".
    pub fn judged(&self) -> bool {
        matches!(self, Headline::Suspected { .. } | Headline::NoLeak)
    }

    /// The label values of the suspected kinds (empty unless [`Headline::Suspected`]).
    pub fn suspected_kinds(&self) -> Vec<&'static str> {
        match self {
            Headline::Suspected { kinds } => kinds.iter().map(|k| k.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    /// How far the warm-up is: `4s of 5m`, or `3 of 8 samples` once the time is covered.
    fn progress(covered: f64, needed: f64, samples: usize, min_samples: usize) -> String {
        if covered < needed {
            format!("{} of {}", fmt_duration(covered), fmt_duration(needed))
        } else {
            format!("{samples} of {min_samples} samples")
        }
    }

    /// In a few words, for a line or a table cell: `LEAK SUSPECTED (heap, goroutine)`,
    /// `warming up (4s of 5m)`, `inconclusive (heap)`, `stale`, `no leak`, `no data yet`.
    pub fn line(&self) -> String {
        match self {
            Headline::NoData => "no data yet".into(),
            Headline::Suspected { .. } => {
                format!("LEAK SUSPECTED ({})", self.suspected_kinds().join(", "))
            }
            Headline::Stale { .. } => VerdictState::Stale.words().into(),
            Headline::WarmingUp {
                covered_seconds,
                needed_seconds,
                samples,
                min_samples,
            } => format!(
                "warming up ({})",
                Self::progress(*covered_seconds, *needed_seconds, *samples, *min_samples)
            ),
            Headline::Undecided { kind, state, .. } => {
                format!("{} ({})", state.words(), kind.as_str())
            }
            Headline::NoLeak => VerdictState::NoLeak.words().into(),
        }
    }

    /// As a sentence, for the report's verdict box: `LEAK SUSPECTED: heap`,
    /// `warming up: 4s of 5m covered`, `inconclusive (heap): <why>`, the stale reason,
    /// `no leak suspected`, `no data yet`.
    pub fn sentence(&self) -> String {
        match self {
            Headline::Suspected { .. } => {
                format!("LEAK SUSPECTED: {}", self.suspected_kinds().join(", "))
            }
            Headline::Stale { reason } => reason.clone(),
            Headline::WarmingUp {
                covered_seconds,
                needed_seconds,
                samples,
                min_samples,
            } => format!(
                "warming up: {} covered",
                Self::progress(*covered_seconds, *needed_seconds, *samples, *min_samples)
            ),
            Headline::Undecided {
                kind,
                state,
                reason,
            } => format!(
                "{} ({}): {}",
                state.words(),
                kind.as_str(),
                reason.as_deref().map_or("", |r| plain_reason(*state, r))
            ),
            Headline::NoLeak => "no leak suspected".into(),
            Headline::NoData => self.line(),
        }
    }
}

/// A kind's reason without the state its line already names: under "inconclusive
/// (heap)", "inconclusive: only 1 GC cycle ran" reads "only 1 GC cycle ran".
pub fn plain_reason(state: VerdictState, reason: &str) -> &str {
    reason
        .strip_prefix(state.words())
        .and_then(|r| r.strip_prefix(": "))
        .unwrap_or(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::kinds::KindVerdict;

    /// A verdict with `states` in [`LeakKind::ALL`] order.
    fn verdict(states: [VerdictState; LeakKind::COUNT]) -> Verdict {
        let mut states = states.into_iter();
        Verdict::from_fn(|kind| {
            let state = states.next().expect("one state per kind");
            KindVerdict::new(kind, state, 0.0, vec![format!("why {state:?}")])
        })
    }

    #[test]
    fn the_state_is_said_once() {
        let h = Headline::Undecided {
            kind: LeakKind::Heap,
            state: VerdictState::Inconclusive,
            reason: Some("inconclusive: only 1 GC cycle(s) ran in the window".into()),
        };
        assert_eq!(
            h.sentence(),
            "inconclusive (heap): only 1 GC cycle(s) ran in the window"
        );
        // Another state's word is not taken for this one's.
        assert_eq!(
            plain_reason(VerdictState::WarmingUp, "inconclusive: x"),
            "inconclusive: x"
        );
    }

    #[test]
    fn one_rule_for_every_view() {
        use VerdictState::*;
        let window = Window::new(&crate::analysis::window::WindowConfig::with_span(
            std::time::Duration::from_secs(600),
        ));
        let sig = crate::analysis::signals::compute(&window, &Default::default());
        // (warm, states, line, sentence)
        let cases = [
            (
                true,
                [Suspected, NoLeak, Suspected],
                "LEAK SUSPECTED (heap, http_connections)",
                "LEAK SUSPECTED: heap, http_connections",
            ),
            // A proof while warming up is not hidden behind the warm-up.
            (
                false,
                [NoLeak, Suspected, WarmingUp],
                "LEAK SUSPECTED (goroutine)",
                "LEAK SUSPECTED: goroutine",
            ),
            (true, [Stale, Stale, Stale], "stale", "why Stale"),
            (
                true,
                [Inconclusive, NoLeak, NoLeak],
                "inconclusive (heap)",
                "inconclusive (heap): why Inconclusive",
            ),
            (
                true,
                [NoLeak, WarmingUp, NoLeak],
                "warming up (goroutine)",
                "warming up (goroutine): why WarmingUp",
            ),
            (
                true,
                [NoLeak, NoLeak, Explained],
                "no leak",
                "no leak suspected",
            ),
        ];
        for (warm, states, line, sentence) in cases {
            let s = Signals {
                warm,
                window_samples: 3,
                verdict: verdict(states),
                ..sig.clone()
            };
            let h = Headline::decide(Some(&s), true, &window);
            assert_eq!(h.line(), line, "{states:?}");
            assert_eq!(h.sentence(), sentence, "{states:?}");
            assert_eq!(h.judged(), line.starts_with("LEAK") || line == "no leak");
        }
        let cold = Signals {
            warm: false,
            window_samples: 2,
            window_span_seconds: 4.0,
            verdict: verdict([WarmingUp; 3]),
            ..sig.clone()
        };
        let h = Headline::decide(Some(&cold), true, &window);
        assert_eq!(h.line(), "warming up (4s of 5m)");
        assert_eq!(h.sentence(), "warming up: 4s of 5m covered");
        let covered = Signals {
            window_span_seconds: 400.0,
            ..cold.clone()
        };
        assert_eq!(
            Headline::decide(Some(&covered), true, &window).line(),
            "warming up (2 of 8 samples)"
        );
        assert_eq!(Headline::decide(None, true, &window), Headline::NoData);
        assert_eq!(
            Headline::decide(Some(&cold), false, &window).line(),
            "no data yet"
        );
    }
}
