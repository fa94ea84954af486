//! What a target adds to the window's verdict: the runtime's proof of leaked
//! goroutines, OOM kills after growth (evidence that outlives the process), no verdict
//! from stale samples; and one log line per verdict change.

use super::state::Status;
use crate::analysis::kinds::LeakKind;
use crate::analysis::signals::Signals;
use crate::analysis::verdict::VerdictState;

/// Folds the runtime's proof into the goroutine verdict: a non-zero leaked count that
/// grew since the process started makes the goroutine leak certain (score 1), with
/// the leaking function as the culprit.
pub(super) fn fold_goroutineleak(signals: &mut Signals, st: &Status) {
    let (Some(l), Some(first)) = (&st.leaked, st.leaked_first) else {
        return;
    };
    if l.total == 0 || l.total <= first {
        return;
    }
    let culprit = l
        .by_function
        .first()
        .map(|(f, n)| format!("{f} ({n})"))
        .unwrap_or_default();
    signals
        .verdict
        .get_mut(LeakKind::Goroutine)
        .certain(format!(
            "the Go runtime proved {} goroutines leaked (up from {first}), most in {culprit}",
            l.total
        ));
}

/// One info line per kind whose verdict state changed, with its evidence in one line,
/// so the log tells when and why a target turned suspected (or back).
pub(super) fn log_verdict_changes(target: &str, old: Option<&Signals>, new: &Signals) {
    for k in new.verdict.kinds() {
        let before = old.map(|o| o.verdict.get(k.kind).state);
        if before == Some(k.state) || (before.is_none() && k.state == VerdictState::WarmingUp) {
            continue;
        }
        tracing::info!(
            target_name = target,
            kind = k.kind.as_str(),
            from = before.map_or("none", |s| s.as_str()),
            to = k.state.as_str(),
            score = format!("{:.2}", k.score),
            evidence = k.reasons.join("; "),
            "verdict changed"
        );
    }
}

/// No verdict and no time-to-OOM from old samples while the target is down or its
/// process is gone; the reason says which.
pub(super) fn stale_reason(st: &Status, watches_process: bool) -> Option<String> {
    if watches_process && matches!(&st.system.process, Some(Err(_))) {
        return Some("stale: the process is gone; no verdict from its old samples".into());
    }
    if !st.up && st.scrapes > 0 {
        return Some(
            "stale: the target is down (its heap profile cannot be read); no verdict from old \
             samples"
                .into(),
        );
    }
    None
}

/// An OOM kill after one-way growth is itself evidence, and it outlives the process:
/// two such kills within one window span, or one followed by renewed growth of the
/// restarted process, make the heap leak certain, across the restart.
pub(super) fn fold_oom_kills(signals: &mut Signals, st: &Status, now_unix: f64, span_seconds: f64) {
    let growing_again = signals.time_to_oom.is_some();
    if let Some(why) =
        oom_kill_evidence(&st.oom.after_growth, growing_again, now_unix, span_seconds)
        && !signals.verdict.get(LeakKind::Heap).suspected
    {
        signals.verdict.get_mut(LeakKind::Heap).certain(why);
    }
}

/// The reason an OOM-kill history makes a heap leak certain, if it does: two kills
/// after growth within `span_seconds` of now, or one followed by renewed growth.
pub(super) fn oom_kill_evidence(
    after_growth: &[f64],
    growing_again: bool,
    now_unix: f64,
    span_seconds: f64,
) -> Option<String> {
    let recent: Vec<f64> = after_growth
        .iter()
        .copied()
        .filter(|t| now_unix - t <= span_seconds)
        .collect();
    match recent.len() {
        0 => None,
        1 if growing_again => Some(format!(
            "OOM-killed {} ago after one-way growth, and growing toward the limit again since \
             the restart",
            crate::units::fmt_duration(now_unix - recent[0])
        )),
        1 => None,
        n => Some(format!(
            "OOM-killed {n} times in the last {}, each after one-way growth",
            crate::units::fmt_duration(span_seconds)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kills_after_growth_are_evidence_across_restarts() {
        let span = 1800.0;
        let now = 10_000.0;
        // (kills after growth, growing again, want a reason containing)
        let cases: [(&[f64], bool, Option<&str>); 6] = [
            (&[], true, None),
            (&[9_000.0], false, None),
            (&[9_000.0], true, Some("growing toward the limit again")),
            (
                &[8_500.0, 9_500.0],
                false,
                Some("OOM-killed 2 times in the last 30m"),
            ),
            // The first kill left the window: one kill, not growing again.
            (&[1_000.0, 9_500.0], false, None),
            (&[1_000.0, 2_000.0], true, None),
        ];
        for (kills, again, want) in cases {
            let got = oom_kill_evidence(kills, again, now, span);
            match want {
                None => assert_eq!(got, None, "{kills:?} {again}"),
                Some(w) => assert!(
                    got.as_deref().is_some_and(|g| g.contains(w)),
                    "{kills:?} {again}: {got:?}"
                ),
            }
        }
    }
}
