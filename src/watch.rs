//! `leakwatch watch URL...`: watches Go services for a bounded time from a terminal or
//! a CI job, with the exporter's own scraping, window and signals (one
//! [`TargetState`] per URL, [`TargetState::scrape_once`] on a tick), then prints a
//! summary per target and exits 0 (no leak), 1 (leak suspected, or the live heap not
//! back within tolerance of a saved baseline) or 2 (could not judge: unreachable at
//! every sample, or too little data for a verdict).

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::analysis::window::Window;
use crate::config::{Config, TargetConfig};
use crate::scrape::{Fetcher, redact_url};
use crate::target::{Status, TargetState};
use crate::units::{fmt_bytes, fmt_duration};

/// Exit codes: what a CI job branches on.
pub const EXIT_OK: i32 = 0;
pub const EXIT_LEAK: i32 = 1;
pub const EXIT_UNKNOWN: i32 = 2;

fn parse_tolerance(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if !(0.0..10.0).contains(&v) {
        return Err(format!("{v} must be a fraction such as 0.10 (10%)"));
    }
    Ok(v)
}

/// Flags of `leakwatch watch`.
#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// Base URLs of Go services serving /debug/pprof/ (e.g. http://127.0.0.1:6060).
    #[arg(required = true, value_name = "URL")]
    pub urls: Vec<String>,
    /// How long to watch.
    #[arg(long = "for", value_name = "DURATION", default_value = "10m", value_parser = crate::units::parse_nonzero_duration)]
    pub duration: Duration,
    /// Time between samples.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::units::parse_nonzero_duration)]
    pub every: Duration,
    /// Time watched before a verdict is given [default: a third of --for].
    #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_nonzero_duration)]
    pub warmup: Option<Duration>,
    /// Time one request may take.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::units::parse_nonzero_duration)]
    pub timeout: Duration,
    /// Saves the final live heap here when the file does not exist; compares against it
    /// when it does (exit 1 when not back within --tolerance).
    #[arg(long, value_name = "FILE")]
    pub baseline_file: Option<PathBuf>,
    /// Allowed excess of the live heap over the baseline, as a fraction.
    #[arg(long, value_name = "FRACTION", default_value = "0.10", value_parser = parse_tolerance)]
    pub tolerance: f64,
    /// Keeps the first and last heap profile of each target under DIR/<target>/ and
    /// prints the `leakwatch diff` command comparing them.
    #[arg(long, value_name = "DIR")]
    pub dump_dir: Option<PathBuf>,
    /// One JSON document on stdout at the end instead of text.
    #[arg(long)]
    pub json: bool,
    /// Share of one core the service may spend serving leakwatch (0 = off: sample at
    /// exactly --every, which is what a bounded watch asks for).
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    pub overhead_budget: f64,
}

// ---------------------------------------------------------------------------------
// What is shown per sample
// ---------------------------------------------------------------------------------

/// One target at one sample: the line of the live view.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub up: bool,
    pub live_heap: Option<u64>,
    pub heap_alloc: Option<u64>,
    /// Live-heap slope, bytes per hour.
    pub slope_per_hour: Option<f64>,
    pub goroutines: Option<u64>,
    pub verdict: String,
    pub error: Option<String>,
}

/// The verdict in a few words: `no data`, `warming up (4s of 8s)`, `ok`,
/// `LEAK SUSPECTED (heap, goroutine)`.
pub fn verdict_word(st: &Status) -> String {
    let Some(sig) = &st.signals else {
        return "no data".to_string();
    };
    if sig.window_samples == 0 || st.last_success.is_none() {
        return "no data".to_string();
    }
    if !sig.warm {
        let warmup = st.window.warmup().as_secs_f64();
        if sig.window_span_seconds < warmup {
            return format!(
                "warming up ({} of {})",
                fmt_duration(sig.window_span_seconds),
                fmt_duration(warmup)
            );
        }
        return format!(
            "warming up ({} of {} samples)",
            sig.window_samples,
            st.window.config().min_samples
        );
    }
    let kinds: Vec<&str> = sig
        .verdict
        .kinds()
        .iter()
        .filter(|k| k.suspected)
        .map(|k| k.kind.as_str())
        .collect();
    if kinds.is_empty() {
        "ok".to_string()
    } else {
        format!("LEAK SUSPECTED ({})", kinds.join(", "))
    }
}

fn row_of(t: &TargetState) -> Row {
    let st = t.status();
    let sig = st.signals.as_ref();
    Row {
        name: t.config.name.clone(),
        up: st.up,
        live_heap: sig.and_then(|s| s.live_bytes),
        heap_alloc: st.window.newest().and_then(|s| s.heap_alloc),
        slope_per_hour: sig
            .and_then(|s| s.live.as_ref())
            .map(|t| t.fit.slope * 3600.0),
        goroutines: st.goroutines.as_ref().map(|g| g.total),
        verdict: verdict_word(&st),
        error: if st.up { None } else { st.last_error.clone() },
    }
}

fn opt_bytes(v: Option<u64>) -> String {
    v.map_or("-".to_string(), |b| fmt_bytes(b as f64))
}

fn opt_rate(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |r| {
        let s = fmt_bytes(r);
        if r >= 0.0 {
            format!("+{s}/h")
        } else {
            format!("{s}/h")
        }
    })
}

/// The non-TTY line of one target at one sample.
pub fn render_line(sample: usize, total: usize, elapsed: Duration, r: &Row) -> String {
    let mut line = format!(
        "[{sample}/{total}] t={:.1}s {} ",
        elapsed.as_secs_f64(),
        r.name
    );
    if r.up {
        line.push_str(&format!(
            "live_heap={} heap_alloc={} slope={} goroutines={} verdict={}",
            opt_bytes(r.live_heap),
            opt_bytes(r.heap_alloc),
            opt_rate(r.slope_per_hour),
            r.goroutines.map_or("-".to_string(), |g| g.to_string()),
            r.verdict
        ));
    } else {
        line.push_str(&format!(
            "DOWN error={} verdict={}",
            r.error.as_deref().unwrap_or("no response yet"),
            r.verdict
        ));
    }
    line
}

/// The TTY view: a progress bar, then a table of targets.
fn render_screen(
    elapsed: Duration,
    total: Duration,
    sample: usize,
    samples: usize,
    rows: &[Row],
) -> Vec<String> {
    const WIDTH: usize = 30;
    let frac = (elapsed.as_secs_f64() / total.as_secs_f64().max(1e-9)).clamp(0.0, 1.0);
    let filled = (frac * WIDTH as f64).round() as usize;
    let mut out = vec![format!(
        "leakwatch watch [{}{}] {} / {}  sample {sample}/{samples}",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        fmt_duration(elapsed.as_secs_f64()),
        fmt_duration(total.as_secs_f64()),
    )];
    out.push(format!(
        "  {:<24} {:>11} {:>11} {:>14} {:>10}  verdict",
        "target", "live heap", "HeapAlloc", "slope", "goroutines"
    ));
    for r in rows {
        if r.up || r.live_heap.is_some() {
            let (pre, post) = if r.verdict.starts_with("LEAK") {
                ("\x1b[1;31m", "\x1b[0m")
            } else {
                ("", "")
            };
            out.push(format!(
                "  {:<24} {:>11} {:>11} {:>14} {:>10}  {pre}{}{post}",
                r.name,
                opt_bytes(r.live_heap),
                opt_bytes(r.heap_alloc),
                opt_rate(r.slope_per_hour),
                r.goroutines.map_or("-".to_string(), |g| g.to_string()),
                r.verdict
            ));
        } else {
            out.push(format!(
                "  {:<24} \x1b[31mDOWN\x1b[0m {}",
                r.name,
                r.error.as_deref().unwrap_or("no response yet")
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// The summary (text and JSON)
// ---------------------------------------------------------------------------------

/// A live-heap figure and where it came from.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LiveHeapSummary {
    /// `heap_profile` or `nextgc`.
    pub source: &'static str,
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
    pub kind: &'static str,
    pub suspected: bool,
    pub score: f64,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BaselineComparison {
    pub file: String,
    /// `saved` (the file did not exist) or `compared`.
    pub action: &'static str,
    pub baseline_bytes: u64,
    pub final_bytes: u64,
    pub ratio: Option<f64>,
    pub tolerance: f64,
    pub within_tolerance: Option<bool>,
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
    /// `leak_suspected`, `ok`, `unreachable` or `inconclusive`.
    pub status: &'static str,
    pub samples: usize,
    pub successful_samples: usize,
    pub error: Option<String>,
    pub window_seconds: f64,
    pub live_heap: Option<LiveHeapSummary>,
    /// Live heap at the end of the run as used for the baseline (see [`settled_live_heap`]).
    pub final_live_heap_bytes: Option<u64>,
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

/// The live heap a baseline is saved as and compared with: the largest live heap
/// (after GC) over the last half of the run, from NextGC when MemStats are available
/// (exact) else from the heap profile (sampled, so noisier). The upper envelope and
/// not the last value: the live heap measured at one GC of a healthy service with a
/// sawtooth lands anywhere between its troughs and peaks, while the peak over many GC
/// cycles is stable; for a leak the peak is the latest value anyway.
pub fn settled_live_heap(window: &Window) -> Option<(u64, &'static str)> {
    let samples = window.samples();
    let newest = samples.back()?;
    let half_start = window.start() + window.span() / 2;
    let pick = |get: fn(&crate::analysis::window::Sample) -> Option<u64>| {
        samples
            .iter()
            .filter(|s| s.at >= half_start || std::ptr::eq(*s, newest))
            .filter_map(get)
            .max()
    };
    if let Some(v) = pick(|s| s.nextgc_live) {
        return Some((v, "nextgc"));
    }
    pick(|s| s.profile_inuse).map(|v| (v, "heap_profile"))
}

fn summarize(t: &TargetState, successes: usize, samples: usize) -> TargetSummary {
    let st = t.status();
    let sig = st.signals.as_ref();
    let live_series = st.window.live_series();
    let live_heap = match (live_series.first(), live_series.last(), sig) {
        (Some(first), Some(last), Some(sig)) => Some(LiveHeapSummary {
            source: match sig.live_source {
                Some(crate::analysis::signals::LiveSource::NextGc) => "nextgc",
                _ => "heap_profile",
            },
            first_bytes: first.1,
            last_bytes: last.1,
            growth_bytes: i64::try_from(last.1)
                .unwrap_or(i64::MAX)
                .saturating_sub(i64::try_from(first.1).unwrap_or(i64::MAX)),
            slope_bytes_per_hour: sig.live.as_ref().map(|t| t.fit.slope * 3600.0),
            monotonicity: sig.live.as_ref().map(|t| t.monotonicity),
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
                    kind: k.kind.as_str(),
                    suspected: k.suspected,
                    score: k.score,
                    reasons: k.reasons.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut notes = Vec::new();
    let status = if successes == 0 {
        notes.push(format!(
            "could not scrape {} at any of {samples} samples: {}",
            redact_url(t.config.url.as_str()),
            st.last_error.as_deref().unwrap_or("no response")
        ));
        "unreachable"
    } else if verdict.iter().any(|k| k.suspected) {
        "leak_suspected"
    } else if !sig.is_some_and(|s| s.warm) {
        notes.push(format!(
            "no verdict: a verdict needs {} covered and {} samples; the window holds {} samples over {} (reachable at {successes} of {samples} samples); watch longer, sample more often or lower --warmup",
            fmt_duration(st.window.warmup().as_secs_f64()),
            st.window.config().min_samples,
            st.window.len(),
            fmt_duration(st.window.span().as_secs_f64()),
        ));
        "inconclusive"
    } else {
        "ok"
    };
    TargetSummary {
        name: t.config.name.clone(),
        url: redact_url(t.config.url.as_str()),
        status,
        samples,
        successful_samples: successes,
        error: st.last_error.clone().filter(|_| !st.up),
        window_seconds: st.window.span().as_secs_f64(),
        live_heap,
        final_live_heap_bytes: settled_live_heap(&st.window).map(|(v, _)| v),
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

/// The text summary of one target.
pub fn render_summary(s: &TargetSummary) -> String {
    let mut out = String::new();
    let headline = match s.status {
        "leak_suspected" => "LEAK SUSPECTED",
        "ok" => "no leak",
        "unreachable" => "UNREACHABLE",
        _ => "INCONCLUSIVE",
    };
    out.push_str(&format!("== {} ({}): {headline}\n", s.name, s.url));
    out.push_str(&format!(
        "  samples: {} of {} succeeded over {}\n",
        s.successful_samples,
        s.samples,
        fmt_duration(s.window_seconds)
    ));
    for n in &s.notes {
        out.push_str(&format!("  note: {n}\n"));
    }
    if let Some(l) = &s.live_heap {
        out.push_str(&format!(
            "  live heap ({}): {} -> {} ({}{}), slope {}, monotonicity {}\n",
            l.source,
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
                g.function
            ));
        }
    }
    if !s.inuse_share_by_package.is_empty() {
        let shares: Vec<String> = s
            .inuse_share_by_package
            .iter()
            .map(|(p, v)| format!("{p} {:.0}%", v * 100.0))
            .collect();
        out.push_str(&format!("  in-use by package: {}\n", shares.join(", ")));
    }
    if let Some(g) = &s.goroutines {
        let states: Vec<String> = g.by_state.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!(
            "  goroutines: {} -> {} ({}/h); states: {}\n",
            g.first.map_or("-".to_string(), |f| f.to_string()),
            g.last,
            g.slope_per_hour
                .map_or("-".to_string(), |r| format!("{r:+.0}")),
            states.join(" ")
        ));
        for f in &g.top_growing {
            out.push_str(&format!("    +{:<6} {}\n", f.growth, f.function));
        }
    }
    if let Some(t) = s.time_to_oom_seconds {
        out.push_str(&format!("  time to OOM: {}\n", fmt_duration(t)));
    }
    let judged = s.status == "ok" || s.status == "leak_suspected";
    for k in s.verdict.iter().filter(|_| judged) {
        let word = if k.suspected { "LEAK SUSPECTED" } else { "ok" };
        out.push_str(&format!(
            "  verdict {}: {word} (score {:.2})\n",
            k.kind, k.score
        ));
        if k.suspected {
            for r in &k.reasons {
                out.push_str(&format!("    - {r}\n"));
            }
        }
    }
    if let Some(b) = &s.baseline {
        match b.action {
            "saved" => out.push_str(&format!(
                "  baseline saved to {}: live heap {}\n",
                b.file,
                fmt_bytes(b.final_bytes as f64)
            )),
            _ => out.push_str(&format!(
                "  baseline {}: {} -> now {}, ratio {} ({} tolerance {:.0}%)\n",
                b.file,
                fmt_bytes(b.baseline_bytes as f64),
                fmt_bytes(b.final_bytes as f64),
                fmt_ratio(b.ratio),
                if b.within_tolerance == Some(true) {
                    "within"
                } else {
                    "NOT within"
                },
                b.tolerance * 100.0
            )),
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
            out.push_str(&format!("  heap dump failed: {e}\n"));
        }
        if let Some(c) = &d.diff_command {
            out.push_str(&format!("  compare them: {c}\n"));
        }
    }
    out
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
        .any(|t| t.status == "leak_suspected" || missed_baseline(t))
    {
        EXIT_LEAK
    } else if targets
        .iter()
        .any(|t| t.status == "unreachable" || t.status == "inconclusive")
    {
        EXIT_UNKNOWN
    } else {
        EXIT_OK
    }
}

// ---------------------------------------------------------------------------------
// Baseline file
// ---------------------------------------------------------------------------------

/// One target's saved live heap.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BaselineEntry {
    pub url: String,
    pub live_heap_bytes: u64,
    /// RFC 3339-like UTC time (`YYYYMMDDTHHMMSSZ`) the baseline was taken.
    pub time: String,
    pub unix_seconds: u64,
}

/// The file: one entry (one URL watched) or a list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum BaselineFile {
    One(BaselineEntry),
    Many(Vec<BaselineEntry>),
}

impl BaselineFile {
    pub fn entries(&self) -> Vec<&BaselineEntry> {
        match self {
            BaselineFile::One(e) => vec![e],
            BaselineFile::Many(v) => v.iter().collect(),
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a
/// rename, so a reader never sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    let tmp = dir.join(format!(".tmp-{name}-{:08x}", fastrand::u32(..)));
    let result = (|| {
        let mut f = std::fs::File::create_new(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Saves or compares the baseline for every target; errors are printed on stderr and
/// make the run inconclusive for that target.
fn apply_baseline(
    file: &Path,
    tolerance: f64,
    targets: &mut [TargetSummary],
) -> Result<(), String> {
    let shown = file.display().to_string();
    if !file.exists() {
        let now = crate::units::unix_now();
        let mut entries = Vec::new();
        for t in targets.iter_mut() {
            let Some(bytes) = t.final_live_heap_bytes else {
                return Err(format!(
                    "not saving the baseline {shown}: no live heap measured for {}",
                    t.url
                ));
            };
            entries.push(BaselineEntry {
                url: t.url.clone(),
                live_heap_bytes: bytes,
                time: crate::units::format_utc(now),
                unix_seconds: now,
            });
            t.baseline = Some(BaselineComparison {
                file: shown.clone(),
                action: "saved",
                baseline_bytes: bytes,
                final_bytes: bytes,
                ratio: None,
                tolerance,
                within_tolerance: None,
            });
        }
        let doc = if entries.len() == 1 {
            BaselineFile::One(entries.remove(0))
        } else {
            BaselineFile::Many(entries)
        };
        let mut text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        text.push('\n');
        write_atomically(file, text.as_bytes())
            .map_err(|e| format!("writing the baseline {shown}: {e}"))?;
        return Ok(());
    }
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("reading the baseline {shown}: {e}"))?;
    let doc: BaselineFile = serde_json::from_str(&text).map_err(|e| {
        format!("the baseline {shown} is not a leakwatch baseline file (JSON with url, live_heap_bytes, time): {e}")
    })?;
    for t in targets.iter_mut() {
        let Some(entry) = doc.entries().into_iter().find(|e| e.url == t.url) else {
            return Err(format!("the baseline {shown} has no entry for {}", t.url));
        };
        let Some(now) = t.final_live_heap_bytes else {
            return Err(format!(
                "no live heap measured for {} to compare with {shown}",
                t.url
            ));
        };
        let ratio = (entry.live_heap_bytes > 0).then(|| now as f64 / entry.live_heap_bytes as f64);
        let within = ratio.map(|r| r <= 1.0 + tolerance);
        t.baseline = Some(BaselineComparison {
            file: shown.clone(),
            action: "compared",
            baseline_bytes: entry.live_heap_bytes,
            final_bytes: now,
            ratio,
            tolerance,
            within_tolerance: within.or(Some(now == 0)),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Heap dumps
// ---------------------------------------------------------------------------------

/// A target name as a directory name (`127.0.0.1:6060` stays; `/` and leading dots go).
fn dir_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c == '\0' {
                '_'
            } else {
                c
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() {
        "target".to_string()
    } else {
        s
    }
}

/// Fetches the target's `/debug/pprof/heap` (gzipped protobuf, kept as served) into
/// `<dir>/<target>/heap-<UTC time>-<which>.pb.gz`.
async fn dump_heap(
    fetcher: &Fetcher,
    cfg: &TargetConfig,
    dir: &Path,
    which: &str,
) -> Result<PathBuf, String> {
    let url = cfg.endpoint("/debug/pprof/heap");
    let got = fetcher
        .get(&url, cfg.timeout, cfg.max_body_bytes)
        .await
        .map_err(|e| e.to_string())?;
    if !got.body.starts_with(&[0x1f, 0x8b]) {
        return Err(format!("{}: not a gzipped pprof profile", redact_url(&url)));
    }
    let name = format!(
        "heap-{}-{which}.pb.gz",
        crate::units::format_utc(crate::units::unix_now())
    );
    let path = dir.join(dir_name(&cfg.name)).join(name);
    let body = got.body;
    let p = path.clone();
    tokio::task::spawn_blocking(move || write_atomically(&p, &body))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

// ---------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------

/// The target configs of a watch: the exporter's defaults with the watch's timing.
pub fn watch_config(args: &WatchArgs) -> crate::Result<Config> {
    let mut config = Config::from_urls(&args.urls)?;
    // A watch reads nothing from the host: only what the services serve.
    config.system.kernel_log = "off".to_string();
    let warmup = args.warmup.unwrap_or(args.duration / 3);
    for t in &mut config.targets {
        t.interval = args.every;
        t.timeout = args.timeout;
        // One sample of slack: the first sample must still be inside the window at the end.
        t.window = args.duration + args.every;
        t.warmup = warmup;
        t.overhead_budget = args.overhead_budget;
    }
    Ok(config)
}

/// Runs `leakwatch watch` and returns the process exit code.
pub fn run(args: WatchArgs) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("leakwatch watch: starting the async runtime: {e}");
            return EXIT_UNKNOWN;
        }
    };
    rt.block_on(run_async(args))
}

async fn run_async(args: WatchArgs) -> i32 {
    let config = match watch_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("leakwatch watch: {e}");
            return EXIT_UNKNOWN;
        }
    };
    let fetcher = match Fetcher::new() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("leakwatch watch: {e}");
            return EXIT_UNKNOWN;
        }
    };
    let targets = crate::build_targets(&config);
    let samples = usize::try_from(args.duration.as_nanos() / args.every.as_nanos().max(1))
        .unwrap_or(usize::MAX - 1)
        .saturating_add(1);
    let tty = std::io::stdout().is_terminal() && !args.json;
    let mut successes = vec![0usize; targets.len()];
    let mut dumps: Vec<Option<DumpPair>> = vec![None; targets.len()];
    let mut screen_lines = 0usize;
    let started = Instant::now();
    let tokio_start = tokio::time::Instant::now();
    let mut interrupted = false;
    let mut taken = 0usize;
    if !args.json && !tty {
        println!(
            "leakwatch watch: {} target(s), a sample every {} for {} ({samples} samples), verdict after {}",
            targets.len(),
            humantime::format_duration(args.every),
            humantime::format_duration(args.duration),
            humantime::format_duration(config.targets.first().map_or(Duration::ZERO, |t| t.warmup)),
        );
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    for i in 0..samples {
        let due = tokio_start
            + args
                .every
                .saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
        // Redraw the progress bar while waiting on a TTY.
        loop {
            let now = tokio::time::Instant::now();
            if now >= due {
                break;
            }
            let step = if tty {
                (due - now).min(Duration::from_millis(500))
            } else {
                due - now
            };
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                _ = &mut ctrl_c => { interrupted = true; break; }
            }
            if tty && taken > 0 {
                let rows: Vec<Row> = targets.iter().map(|t| row_of(t)).collect();
                redraw(
                    &mut screen_lines,
                    &render_screen(started.elapsed(), args.duration, taken, samples, &rows),
                );
            }
        }
        if interrupted {
            break;
        }
        let scrape_all = futures_util::future::join_all(targets.iter().map(|t| {
            let f = fetcher.clone();
            let t = Arc::clone(t);
            async move { t.scrape_once(&f).await }
        }));
        tokio::select! {
            _ = scrape_all => {}
            _ = &mut ctrl_c => { interrupted = true; break; }
        }
        taken = i + 1;
        for (k, t) in targets.iter().enumerate() {
            if t.status().up {
                successes[k] += 1;
            }
        }
        if let Some(dir) = &args.dump_dir {
            for (k, t) in targets.iter().enumerate() {
                let first_success = successes[k] == 1 && t.status().up;
                let entry = dumps[k].get_or_insert_with(|| DumpPair {
                    baseline: None,
                    final_: None,
                    diff_command: None,
                    errors: Vec::new(),
                });
                if first_success && entry.baseline.is_none() {
                    match dump_heap(&fetcher, &t.config, dir, "baseline").await {
                        Ok(p) => entry.baseline = Some(p.display().to_string()),
                        Err(e) => entry.errors.push(e),
                    }
                }
            }
        }
        let elapsed = started.elapsed();
        let rows: Vec<Row> = targets.iter().map(|t| row_of(t)).collect();
        if tty {
            redraw(
                &mut screen_lines,
                &render_screen(elapsed, args.duration, taken, samples, &rows),
            );
        } else if !args.json {
            for r in &rows {
                println!("{}", render_line(taken, samples, elapsed, r));
            }
        }
    }
    if let Some(dir) = &args.dump_dir {
        for (k, t) in targets.iter().enumerate() {
            let Some(entry) = dumps[k].as_mut() else {
                continue;
            };
            if successes[k] == 0 || entry.baseline.is_none() {
                continue;
            }
            match dump_heap(&fetcher, &t.config, dir, "final").await {
                Ok(p) => entry.final_ = Some(p.display().to_string()),
                Err(e) => entry.errors.push(e),
            }
            if let (Some(b), Some(f)) = (&entry.baseline, &entry.final_) {
                entry.diff_command = Some(format!(
                    "leakwatch diff {} {}",
                    crate::dump::shell_quote(b),
                    crate::dump::shell_quote(f)
                ));
            }
        }
    }
    let mut summaries: Vec<TargetSummary> = targets
        .iter()
        .enumerate()
        .map(|(k, t)| {
            let mut s = summarize(t, successes[k], taken);
            s.dumps = dumps[k].take();
            s
        })
        .collect();
    let mut baseline_error = None;
    if let Some(file) = &args.baseline_file
        && summaries.iter().all(|s| s.successful_samples > 0)
        && let Err(e) = apply_baseline(file, args.tolerance, &mut summaries)
    {
        baseline_error = Some(e);
    }
    let mut code = exit_code(&summaries);
    if baseline_error.is_some() && code == EXIT_OK {
        code = EXIT_UNKNOWN;
    }
    if interrupted && code == EXIT_OK {
        // Stopped early: "no leak" was not established for the time asked.
        code = EXIT_UNKNOWN;
    }
    if args.json {
        let report = Report {
            leakwatch_version: env!("CARGO_PKG_VERSION"),
            duration_seconds: args.duration.as_secs_f64(),
            every_seconds: args.every.as_secs_f64(),
            warmup_seconds: config
                .targets
                .first()
                .map_or(0.0, |t| t.warmup.as_secs_f64()),
            interrupted,
            exit_code: code,
            targets: summaries.clone(),
        };
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("leakwatch watch: encoding JSON: {e}"),
        }
    } else {
        println!();
        if interrupted {
            println!("interrupted after {taken} of {samples} samples");
        }
        for s in &summaries {
            print!("{}", render_summary(s));
        }
        let word = match code {
            EXIT_OK => "no leak found",
            EXIT_LEAK => "leak suspected",
            _ => "could not judge every target",
        };
        println!("result: {word} (exit {code})");
    }
    for s in &summaries {
        if s.status == "unreachable" {
            eprintln!(
                "leakwatch watch: {}",
                s.notes.first().map_or("", String::as_str)
            );
        }
    }
    if let Some(e) = baseline_error {
        eprintln!("leakwatch watch: {e}");
    }
    let _ = std::io::stdout().flush();
    code
}

/// Replaces the previous screen (`lines` tall) with `new`.
fn redraw(lines: &mut usize, new: &[String]) {
    let mut out = String::new();
    if *lines > 0 {
        out.push_str(&format!("\x1b[{}A\r\x1b[J", *lines));
    }
    for l in new {
        out.push_str(l);
        out.push('\n');
    }
    *lines = new.len();
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_worst_target() {
        let base = TargetSummary {
            name: "a".into(),
            url: "http://127.0.0.1:1".into(),
            status: "ok",
            samples: 3,
            successful_samples: 3,
            error: None,
            window_seconds: 1.0,
            live_heap: None,
            final_live_heap_bytes: Some(100),
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
        let with = |status: &'static str| TargetSummary {
            status,
            ..base.clone()
        };
        let cases: &[(&[&str], i32)] = &[
            (&["ok"], 0),
            (&["ok", "ok"], 0),
            (&["leak_suspected"], 1),
            (&["unreachable"], 2),
            (&["inconclusive", "ok"], 2),
            (&["unreachable", "leak_suspected"], 1),
        ];
        for (statuses, want) in cases {
            let ts: Vec<TargetSummary> = statuses.iter().map(|s| with(s)).collect();
            assert_eq!(exit_code(&ts), *want, "{statuses:?}");
        }
        let mut missed = with("ok");
        missed.baseline = Some(BaselineComparison {
            file: "f".into(),
            action: "compared",
            baseline_bytes: 100,
            final_bytes: 120,
            ratio: Some(1.2),
            tolerance: 0.1,
            within_tolerance: Some(false),
        });
        assert_eq!(exit_code(&[missed]), 1);
    }

    #[test]
    fn baseline_save_then_compare() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/base.json");
        let mk = |bytes: u64| TargetSummary {
            name: "a".into(),
            url: "http://127.0.0.1:1/".into(),
            status: "ok",
            samples: 3,
            successful_samples: 3,
            error: None,
            window_seconds: 1.0,
            live_heap: None,
            final_live_heap_bytes: Some(bytes),
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
        let mut first = [mk(1000)];
        apply_baseline(&file, 0.1, &mut first).unwrap();
        assert_eq!(first[0].baseline.as_ref().unwrap().action, "saved");
        let saved: BaselineFile =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let e = saved.entries()[0].clone();
        assert_eq!(
            (e.url.as_str(), e.live_heap_bytes),
            ("http://127.0.0.1:1/", 1000)
        );
        for (now, within, code) in [(1100, true, 0), (1101, false, 1), (500, true, 0)] {
            let mut t = [mk(now)];
            apply_baseline(&file, 0.1, &mut t).unwrap();
            let b = t[0].baseline.as_ref().unwrap();
            assert_eq!(b.action, "compared");
            assert_eq!(b.within_tolerance, Some(within), "{now}");
            assert_eq!(b.ratio, Some(now as f64 / 1000.0));
            assert_eq!(exit_code(&t), code);
        }
        let mut other = [TargetSummary {
            url: "http://127.0.0.1:2/".into(),
            ..mk(5)
        }];
        let err = apply_baseline(&file, 0.1, &mut other).unwrap_err();
        assert!(err.contains("no entry for http://127.0.0.1:2/"), "{err}");
        std::fs::write(&file, "not json").unwrap();
        let err = apply_baseline(&file, 0.1, &mut [mk(5)]).unwrap_err();
        assert!(err.contains("not a leakwatch baseline file"), "{err}");
    }

    #[test]
    fn shell_quoting_and_dir_names() {
        assert_eq!(
            crate::dump::shell_quote("/tmp/d/heap-x.pb.gz"),
            "/tmp/d/heap-x.pb.gz"
        );
        assert_eq!(crate::dump::shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(crate::dump::shell_quote("it's"), r"'it'\''s'");
        assert_eq!(dir_name("127.0.0.1:6060"), "127.0.0.1:6060");
        assert_eq!(dir_name(".."), "target");
        assert_eq!(dir_name("a/b"), "a_b");
    }

    #[test]
    fn non_tty_lines() {
        let r = Row {
            name: "127.0.0.1:6060".into(),
            up: true,
            live_heap: Some(3 * 1024 * 1024),
            heap_alloc: Some(4 * 1024 * 1024),
            slope_per_hour: Some(2.5 * 1024.0 * 1024.0),
            goroutines: Some(7),
            verdict: "ok".into(),
            error: None,
        };
        assert_eq!(
            render_line(3, 25, Duration::from_millis(1500), &r),
            "[3/25] t=1.5s 127.0.0.1:6060 live_heap=3.0 MiB heap_alloc=4.0 MiB slope=+2.5 MiB/h goroutines=7 verdict=ok"
        );
        let down = Row {
            up: false,
            error: Some("heap: connection refused".into()),
            verdict: "no data".into(),
            ..r
        };
        assert_eq!(
            render_line(1, 2, Duration::ZERO, &down),
            "[1/2] t=0.0s 127.0.0.1:6060 DOWN error=heap: connection refused verdict=no data"
        );
    }
}
