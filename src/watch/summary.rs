//! What `leakwatch watch` finds: the per-target summary (text and JSON) and the exit
//! code.

use serde::Serialize;

use super::baseline::{BaselineComparison, Measured, save_or_compare, settled_live_heap};
use super::view::opt_rate;
use crate::analysis::headline::Headline;
use crate::analysis::kinds::{LeakKind, VerdictState};
use crate::analysis::observation::LiveSource;
use crate::printable::{printable, printable_line};
use crate::scrape::redact_url;
use crate::targets::TargetState;
use crate::units::{fmt_bytes, fmt_duration};

/// Exit codes: what a CI job branches on.
pub const EXIT_OK: i32 = 0;
pub const EXIT_LEAK: i32 = 1;
pub const EXIT_UNKNOWN: i32 = 2;

/// What the run found for one target, from its [`Headline`]: the `status` of the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A leak is suspected.
    LeakSuspected,
    /// Judged, no leak.
    Ok,
    /// Never scraped successfully.
    Unreachable,
    /// Scraped, but no verdict: warming up, undecided or stale (never "no leak").
    Inconclusive,
}

impl Outcome {
    /// The outcome of a target whose `successes` samples answered, read as `headline`.
    pub fn of(headline: &Headline, successes: usize) -> Outcome {
        match headline {
            _ if successes == 0 => Outcome::Unreachable,
            Headline::Suspected { .. } => Outcome::LeakSuspected,
            Headline::NoLeak => Outcome::Ok,
            _ => Outcome::Inconclusive,
        }
    }

    /// Whether the run gave a verdict (leak or not), so the kinds' verdicts are shown.
    pub fn judged(self) -> bool {
        matches!(self, Outcome::LeakSuspected | Outcome::Ok)
    }

    /// The headline of the text summary.
    pub fn words(self) -> &'static str {
        match self {
            Outcome::LeakSuspected => "LEAK SUSPECTED",
            Outcome::Ok => "no leak",
            Outcome::Unreachable => "UNREACHABLE",
            Outcome::Inconclusive => "INCONCLUSIVE",
        }
    }
}

fn kind_label<S: serde::Serializer>(k: &LeakKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(k.as_str())
}

fn state_label<S: serde::Serializer>(v: &VerdictState, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}

fn source_label<S: serde::Serializer>(v: &LiveSource, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}

/// A live-heap figure and where it came from.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LiveHeapSummary {
    /// `heap_profile` or `nextgc`.
    #[serde(serialize_with = "source_label")]
    pub source: LiveSource,
    pub first_bytes: u64,
    pub last_bytes: u64,
    pub growth_bytes: i64,
    pub slope_bytes_per_hour: Option<f64>,
    /// Goodman-Kruskal gamma: 1 = never went down.
    pub monotonicity: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Growth {
    pub function: String,
    pub growth: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GoroutineSummary {
    pub first: Option<u64>,
    pub last: u64,
    pub slope_per_hour: Option<f64>,
    /// State -> count, from the last sample.
    pub by_state: std::collections::BTreeMap<String, u64>,
    pub top_growing: Vec<Growth>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KindSummary {
    #[serde(serialize_with = "kind_label")]
    pub kind: LeakKind,
    pub suspected: bool,
    /// The verdict's state (`suspected`, `no_leak`, `inconclusive`, ...).
    #[serde(serialize_with = "state_label")]
    pub state: VerdictState,
    pub score: f64,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DumpPair {
    pub baseline: Option<String>,
    #[serde(rename = "final")]
    pub final_: Option<String>,
    pub diff_command: Option<String>,
    pub errors: Vec<String>,
}

/// Everything the run found about one target.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TargetSummary {
    pub name: String,
    pub url: String,
    /// `leak_suspected`, `ok`, `unreachable` or `inconclusive`, from `headline`.
    pub status: Outcome,
    pub samples: usize,
    pub successful_samples: usize,
    pub error: Option<String>,
    pub window_seconds: f64,
    pub live_heap: Option<LiveHeapSummary>,
    /// Live heap at the end of the run as used for the baseline: the peak and the floor
    /// over its last half (see [`settled_live_heap`]).
    pub final_live_heap_bytes: Option<u64>,
    pub final_live_heap_floor_bytes: Option<u64>,
    pub heap_alloc_slope_bytes_per_hour: Option<f64>,
    pub alloc_free_bytes_ratio: Option<f64>,
    pub alloc_free_objects_ratio: Option<f64>,
    pub top_growing_functions: Vec<Growth>,
    pub inuse_share_by_package: Vec<(String, f64)>,
    pub goroutines: Option<GoroutineSummary>,
    pub time_to_oom_seconds: Option<f64>,
    pub verdict: Vec<KindSummary>,
    pub baseline: Option<BaselineComparison>,
    pub dumps: Option<DumpPair>,
    /// Plain sentences: why the status is what it is beyond the verdict.
    pub notes: Vec<String>,
}

/// The JSON document of `--json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub leakwatch_version: &'static str,
    pub duration_seconds: f64,
    pub every_seconds: f64,
    pub warmup_seconds: f64,
    pub interrupted: bool,
    pub exit_code: i32,
    pub targets: Vec<TargetSummary>,
}

pub(super) fn summarize(t: &TargetState, successes: usize, samples: usize) -> TargetSummary {
    let st = t.status();
    let sig = st.signals.as_ref();
    let live_series = st.window.live_series();
    let live_heap = match (live_series.first(), live_series.last(), sig) {
        (Some(first), Some(last), Some(sig)) => Some(LiveHeapSummary {
            source: sig
                .live_heap()
                .map_or(LiveSource::HeapProfile, |l| l.source),
            first_bytes: first.1,
            last_bytes: last.1,
            growth_bytes: i64::try_from(last.1)
                .unwrap_or(i64::MAX)
                .saturating_sub(i64::try_from(first.1).unwrap_or(i64::MAX)),
            slope_bytes_per_hour: sig.live.as_ref().map(|t| t.fit.slope * 3600.0),
            monotonicity: sig.live.as_ref().map(|t| t.one_way()),
        }),
        _ => None,
    };
    let positive = |g: &[(String, i64)]| -> Vec<Growth> {
        g.iter()
            .filter(|(f, n)| f != "other" && *n > 0)
            .map(|(f, n)| Growth {
                function: f.clone(),
                growth: *n,
            })
            .collect()
    };
    let goroutines = st.goroutines.as_ref().map(|g| GoroutineSummary {
        first: st.window.samples().iter().find_map(|s| s.goroutines),
        last: g.total,
        slope_per_hour: sig
            .and_then(|s| s.goroutines.as_ref())
            .map(|t| t.fit.slope * 3600.0),
        by_state: g
            .by_state
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect(),
        top_growing: sig
            .map(|s| positive(&s.goroutine_growth))
            .unwrap_or_default(),
    });
    let verdict: Vec<KindSummary> = sig
        .map(|s| {
            s.verdict
                .kinds()
                .iter()
                .map(|k| KindSummary {
                    kind: k.kind,
                    suspected: k.suspected,
                    state: k.state,
                    score: k.score,
                    reasons: k.reasons.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let headline = st.headline();
    let status = Outcome::of(&headline, successes);
    let mut notes = Vec::new();
    match (&headline, status) {
        (_, Outcome::Unreachable) => notes.push(format!(
            "could not scrape {} at any of {samples} samples: {}",
            redact_url(t.config.url.as_str()),
            st.last_error.as_deref().unwrap_or("no response")
        )),
        (_, Outcome::LeakSuspected | Outcome::Ok) => {}
        (Headline::Stale { reason }, _) => notes.push(format!("no verdict: {reason}")),
        // Never "no leak" without evidence: a heap that grew between too few GCs, or
        // growth still inside the process's start-up grace, cannot be judged yet.
        (Headline::Undecided { kind, reason, .. }, _) => notes.push(format!(
            "no verdict for {}: {}",
            kind.as_str(),
            reason.as_deref().unwrap_or("the evidence cannot tell")
        )),
        _ => notes.push(format!(
            "no verdict: a verdict needs {} covered and {} samples; the window holds {} samples over {} ({successes} of {samples} scrapes succeeded); watch longer, sample more often or lower --warmup",
            fmt_duration(st.window.warmup().as_secs_f64()),
            st.window.config().min_samples,
            st.window.len(),
            fmt_duration(st.window.span().as_secs_f64()),
        )),
    }
    let settled = settled_live_heap(&st.window);
    TargetSummary {
        name: t.config.name.clone(),
        url: redact_url(t.config.url.as_str()),
        status,
        samples,
        successful_samples: successes,
        error: st.last_error.clone().filter(|_| !st.up),
        window_seconds: st.window.span().as_secs_f64(),
        live_heap,
        final_live_heap_bytes: settled.map(|s| s.peak),
        final_live_heap_floor_bytes: settled.map(|s| s.floor),
        heap_alloc_slope_bytes_per_hour: sig.and_then(|s| s.heap_alloc).map(|f| f.slope * 3600.0),
        alloc_free_bytes_ratio: sig.and_then(|s| s.alloc_free_bytes_ratio),
        alloc_free_objects_ratio: sig.and_then(|s| s.alloc_free_objects_ratio),
        top_growing_functions: sig.map(|s| positive(&s.heap_growth)).unwrap_or_default(),
        inuse_share_by_package: sig
            .map(|s| {
                s.inuse_share
                    .iter()
                    .filter(|(_, v)| *v > 0.0)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default(),
        goroutines,
        time_to_oom_seconds: sig
            .and_then(|s| s.time_to_oom)
            .map(|t| t.seconds)
            .filter(|s| s.is_finite()),
        verdict,
        baseline: None,
        dumps: None,
        notes,
    }
}

fn fmt_ratio(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |r| format!("{r:.2}"))
}

/// `text` wrapped to `width` columns at word boundaries, for a terminal: each long
/// line continues under its own indentation plus two spaces, so a reason or a
/// function name never breaks mid-word.
pub fn wrap_lines(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    for line in text.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        let more = format!("{indent}  ");
        let opts = textwrap::Options::new(width.max(40))
            .subsequent_indent(&more)
            .break_words(false);
        for part in textwrap::wrap(line, opts) {
            out.push_str(&part);
            out.push('\n');
        }
    }
    out
}

/// The text summary of one target: what the target sent (notes, errors, function,
/// package and state names) escaped, each on its line.
pub fn render_summary(s: &TargetSummary) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "== {} ({}): {}\n",
        s.name,
        s.url,
        s.status.words()
    ));
    out.push_str(&format!(
        "  samples: {} of {} succeeded over {}\n",
        s.successful_samples,
        s.samples,
        fmt_duration(s.window_seconds)
    ));
    for n in &s.notes {
        out.push_str(&format!("  note: {}\n", printable_line(n)));
    }
    if let Some(l) = &s.live_heap {
        out.push_str(&format!(
            "  live heap ({}): {} -> {} ({}{}), slope {}, monotonicity {}\n",
            l.source.words(),
            fmt_bytes(l.first_bytes as f64),
            fmt_bytes(l.last_bytes as f64),
            if l.growth_bytes >= 0 { "+" } else { "" },
            fmt_bytes(l.growth_bytes as f64),
            opt_rate(l.slope_bytes_per_hour),
            fmt_ratio(l.monotonicity)
        ));
    }
    if s.successful_samples > 0 {
        out.push_str(&format!(
            "  HeapAlloc slope {}; alloc/free ratio: bytes {}, objects {}\n",
            opt_rate(s.heap_alloc_slope_bytes_per_hour),
            fmt_ratio(s.alloc_free_bytes_ratio),
            fmt_ratio(s.alloc_free_objects_ratio)
        ));
    }
    if !s.top_growing_functions.is_empty() {
        out.push_str("  top growing functions (in-use bytes):\n");
        for g in &s.top_growing_functions {
            out.push_str(&format!(
                "    +{:<12} {}\n",
                fmt_bytes(g.growth as f64),
                printable_line(&g.function)
            ));
        }
    }
    if !s.inuse_share_by_package.is_empty() {
        let shares: Vec<String> = s
            .inuse_share_by_package
            .iter()
            .map(|(p, v)| format!("{} {:.0}%", printable_line(p), v * 100.0))
            .collect();
        out.push_str(&format!("  in-use by package: {}\n", shares.join(", ")));
    }
    if let Some(g) = &s.goroutines {
        let states: Vec<String> = g
            .by_state
            .iter()
            .map(|(k, v)| format!("{}={v}", printable_line(k)))
            .collect();
        out.push_str(&format!(
            "  goroutines: {} -> {} ({}/h); states: {}\n",
            g.first.map_or("-".to_string(), |f| f.to_string()),
            g.last,
            g.slope_per_hour
                .map_or("-".to_string(), |r| format!("{r:+.0}")),
            states.join(" ")
        ));
        for f in &g.top_growing {
            out.push_str(&format!(
                "    +{:<6} {}\n",
                f.growth,
                printable_line(&f.function)
            ));
        }
    }
    if let Some(t) = s.time_to_oom_seconds {
        out.push_str(&format!("  time to OOM: {}\n", fmt_duration(t)));
    }
    for k in s.verdict.iter().filter(|_| s.status.judged()) {
        out.push_str(&format!(
            "  verdict {}: {} (score {:.2})\n",
            k.kind.as_str(),
            k.state.words(),
            k.score
        ));
        // Why: the heap's verdict always says what it rests on (a "no leak" as plainly
        // as a suspicion); the other kinds when they are not a plain "no leak".
        let why = k.kind == LeakKind::Heap || k.state != VerdictState::NoLeak;
        for r in k.reasons.iter().filter(|_| why) {
            out.push_str(&format!("    - {}\n", printable_line(r)));
        }
    }
    if let Some(b) = &s.baseline {
        match b.action {
            "saved" => out.push_str(&format!(
                "  baseline saved to {}: live heap peak {}{}\n",
                b.file,
                fmt_bytes(b.final_bytes as f64),
                b.final_floor_bytes
                    .map(|f| format!(", floor {}", fmt_bytes(f as f64)))
                    .unwrap_or_default()
            )),
            _ => {
                let floor = match (b.baseline_floor_bytes, b.final_floor_bytes) {
                    (Some(then), Some(now)) => format!(
                        ", floor {} -> {} (ratio {})",
                        fmt_bytes(then as f64),
                        fmt_bytes(now as f64),
                        fmt_ratio(b.floor_ratio)
                    ),
                    _ => String::new(),
                };
                let within = b.within_tolerance == Some(true);
                // Why a peak above the tolerance is still "within": the floor is back.
                let why = if within && b.ratio.is_some_and(|r| r > 1.0 + b.tolerance) {
                    ": the peak moved but the floor after GC is back, so nothing is retained"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "  baseline {}: live heap peak {} -> now {}, ratio {}{floor} ({} tolerance {:.0}%{why})\n",
                    b.file,
                    fmt_bytes(b.baseline_bytes as f64),
                    fmt_bytes(b.final_bytes as f64),
                    fmt_ratio(b.ratio),
                    if within { "within" } else { "NOT within" },
                    b.tolerance * 100.0
                ));
            }
        }
    }
    if let Some(d) = &s.dumps {
        if let Some(b) = &d.baseline {
            out.push_str(&format!("  heap dump (first sample): {b}\n"));
        }
        if let Some(f) = &d.final_ {
            out.push_str(&format!("  heap dump (last sample):  {f}\n"));
        }
        for e in &d.errors {
            out.push_str(&format!("  heap dump failed: {}\n", printable_line(e)));
        }
        if let Some(c) = &d.diff_command {
            out.push_str(&format!("  compare them: {c}\n"));
        }
    }
    printable(&out).into_owned()
}

/// Saves or compares `--baseline-file` for every target (see [`save_or_compare`]).
pub fn apply_baseline(
    file: &std::path::Path,
    tolerance: f64,
    targets: &mut [TargetSummary],
) -> Result<(), String> {
    let mut measured: Vec<Measured<'_>> = targets
        .iter_mut()
        .map(|t| Measured {
            url: &t.url,
            final_live_heap_bytes: t.final_live_heap_bytes,
            final_live_heap_floor_bytes: t.final_live_heap_floor_bytes,
            baseline: &mut t.baseline,
        })
        .collect();
    save_or_compare(file, tolerance, &mut measured)
}

/// The exit code of a run: 1 when any target leaks (or misses its baseline), else 2
/// when any target could not be judged, else 0.
pub fn exit_code(targets: &[TargetSummary]) -> i32 {
    let missed_baseline = |t: &TargetSummary| {
        t.baseline
            .as_ref()
            .is_some_and(|b| b.within_tolerance == Some(false))
    };
    if targets
        .iter()
        .any(|t| t.status == Outcome::LeakSuspected || missed_baseline(t))
    {
        EXIT_LEAK
    } else if targets
        .iter()
        .any(|t| matches!(t.status, Outcome::Unreachable | Outcome::Inconclusive))
    {
        EXIT_UNKNOWN
    } else {
        EXIT_OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_words_whole_and_indents_continuations() {
        let text = "  verdict heap: LEAK SUSPECTED (score 1.00)\n    - live heap (heap profile): 71.2 MiB over 2m (2.1 GiB/h, +5920.6%/h of 36.1 MiB); monotonicity 0.99\nresult: leak suspected (exit 1)\n";
        let out = wrap_lines(text, 60);
        for line in out.lines() {
            assert!(line.chars().count() <= 60, "{line:?}");
        }
        // Nothing lost, no word split: the words are the same.
        let words = |t: &str| t.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(words(&out), words(text));
        assert!(
            out.contains("\n      "),
            "a continuation is indented: {out}"
        );
        // Short lines are untouched.
        assert_eq!(wrap_lines("result: ok\n", 60), "result: ok\n");
    }

    #[test]
    fn exit_codes_follow_the_worst_target() {
        let base = TargetSummary {
            name: "a".into(),
            url: "http://127.0.0.1:1".into(),
            status: Outcome::Ok,
            samples: 3,
            successful_samples: 3,
            error: None,
            window_seconds: 1.0,
            live_heap: None,
            final_live_heap_bytes: Some(100),
            final_live_heap_floor_bytes: Some(50),
            heap_alloc_slope_bytes_per_hour: None,
            alloc_free_bytes_ratio: None,
            alloc_free_objects_ratio: None,
            top_growing_functions: vec![],
            inuse_share_by_package: vec![],
            goroutines: None,
            time_to_oom_seconds: None,
            verdict: vec![],
            baseline: None,
            dumps: None,
            notes: vec![],
        };
        let with = |status: Outcome| TargetSummary {
            status,
            ..base.clone()
        };
        use Outcome::*;
        let cases: &[(&[Outcome], i32)] = &[
            (&[Ok], 0),
            (&[Ok, Ok], 0),
            (&[LeakSuspected], 1),
            (&[Unreachable], 2),
            (&[Inconclusive, Ok], 2),
            (&[Unreachable, LeakSuspected], 1),
        ];
        for (statuses, want) in cases {
            let ts: Vec<TargetSummary> = statuses.iter().map(|s| with(*s)).collect();
            assert_eq!(exit_code(&ts), *want, "{statuses:?}");
        }
        let mut missed = with(Ok);
        missed.baseline = Some(BaselineComparison {
            file: "f".into(),
            action: "compared",
            baseline_bytes: 100,
            final_bytes: 120,
            ratio: Some(1.2),
            baseline_floor_bytes: Some(50),
            final_floor_bytes: Some(60),
            floor_ratio: Some(1.2),
            tolerance: 0.1,
            within_tolerance: Some(false),
        });
        assert_eq!(exit_code(&[missed]), 1);
    }
}
