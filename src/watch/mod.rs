//! `leakwatch watch URL...`: watches Go services for a bounded time from a terminal or
//! a CI job, with the exporter's own scraping, window and signals (one
//! [`TargetState`] per URL, [`TargetState::scrape_once`] on a tick), then prints a
//! summary per target and exits 0 (no leak), 1 (leak suspected, or the live heap not
//! back within tolerance of a saved baseline) or 2 (could not judge: unreachable at
//! every sample, too little data, or inconclusive: e.g. the heap grew between too few GC
//! cycles; never 0 without evidence).

mod baseline;
mod summary;
mod view;

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use baseline::{
    BaselineComparison, BaselineEntry, BaselineFile, Settled, compare_settled, settled_live_heap,
};
pub use summary::{
    DumpPair, EXIT_LEAK, EXIT_OK, EXIT_UNKNOWN, GoroutineSummary, Growth, KindSummary,
    LiveHeapSummary, Outcome, Report, TargetSummary, exit_code, render_summary,
};
pub use view::{Row, render_line};

use crate::config::{Config, TargetConfig};
use crate::dump::{ProfileType, Reason, ensure_dump_dir, file_name, write_atomically};
use crate::scrape::{Fetcher, redact_url};
use summary::{apply_baseline, summarize};
use view::{redraw, render_screen, row_of};

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
    /// Time between samples [default: 30s, or --for / 16 (at least 1s) when that is
    /// shorter, so a verdict's 8 samples fit well inside --for].
    #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_nonzero_duration)]
    pub every: Option<Duration>,
    /// Time watched before a verdict is given [default: a third of --for].
    #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_nonzero_duration)]
    pub warmup: Option<Duration>,
    /// Growth in a service's first DURATION may be start-up (caches filling): a leak
    /// verdict then needs growth that goes on after it, counted from when watch first
    /// sees the service. Set it when the service starts with the watch and fills caches
    /// [default: 0s: a watch starts after the service is up, and a soak check of a
    /// minute must fail on a clear leak].
    #[arg(long = "startup-grace", value_name = "DURATION", value_parser = crate::units::parse_duration)]
    pub startup_grace: Option<Duration>,
    /// Whether to ask the service for a GC before a heap profile: auto (when no GC
    /// ran for a fifth of the warm-up while HeapAlloc grew, at most as often; the live
    /// heap is measured only at a GC), true (always) or false (never).
    #[arg(long, value_name = "WHEN", default_value = "auto")]
    pub gc: crate::config::GcMode,
    /// Time one request may take.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::units::parse_nonzero_duration)]
    pub timeout: Duration,
    /// Saves the settled live heap (its peak and floor after GC over the run's last
    /// half) here when the file does not exist; compares against it when it does (exit
    /// 1 when the peak and the floor both rose beyond --tolerance: memory retained).
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
/// `<dir>/<target>/heap-<UTC time>-<reason>.pb.gz` (`baseline` or `final`), named and
/// written by the dump store.
async fn dump_heap(
    fetcher: &Fetcher,
    cfg: &TargetConfig,
    dir: &Path,
    reason: Reason,
) -> Result<PathBuf, String> {
    let url = cfg.endpoint(ProfileType::Heap.path());
    let got = fetcher
        .get(&url, cfg.timeout, cfg.max_body_bytes)
        .await
        .map_err(|e| e.to_string())?;
    if !got.body.starts_with(&[0x1f, 0x8b]) {
        return Err(format!("{}: not a gzipped pprof profile", redact_url(&url)));
    }
    let name = file_name(ProfileType::Heap, crate::units::unix_now(), reason, 1);
    let target_dir = dir.join(dir_name(&cfg.name));
    let path = target_dir.join(name);
    let body = got.body;
    let p = path.clone();
    tokio::task::spawn_blocking(move || {
        ensure_dump_dir(&target_dir).map_err(|e| e.to_string())?;
        write_atomically(&p, &body).map_err(|e| format!("writing {}: {e}", p.display()))
    })
    .await
    .map_err(|e| e.to_string())??;
    Ok(path)
}

// ---------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------

/// Samples a verdict needs (the window's default `min_samples`).
fn verdict_samples() -> usize {
    crate::analysis::window::WindowConfig::default().min_samples
}

impl WatchArgs {
    /// Time between samples: `--every`, else 30 s, or `--for` over twice the samples a
    /// verdict needs when that is shorter (at least 1 s).
    pub fn every(&self) -> Duration {
        self.every.unwrap_or_else(|| {
            let fit = self.duration / (2 * verdict_samples() as u32);
            fit.clamp(Duration::from_secs(1), Duration::from_secs(30))
        })
    }

    /// Samples the watch takes: one at the start, then one every [`Self::every`].
    pub fn samples(&self) -> usize {
        usize::try_from(self.duration.as_nanos() / self.every().as_nanos().max(1))
            .unwrap_or(usize::MAX - 1)
            .saturating_add(1)
    }

    /// Why these timings cannot give a verdict, said at the start (not after --for).
    pub fn too_few_samples(&self) -> Option<String> {
        let (n, need) = (self.samples(), verdict_samples());
        (n < need).then(|| {
            format!(
                "--every {} over --for {} takes {n} samples and a verdict needs {need}: \
                 expect 'could not judge' (exit 2); sample every {} or less",
                crate::units::fmt_duration_human(self.every()),
                crate::units::fmt_duration_human(self.duration),
                crate::units::fmt_duration_human(self.duration / need as u32),
            )
        })
    }
}

/// The target configs of a watch: the exporter's defaults with the watch's timing.
pub fn watch_config(args: &WatchArgs) -> crate::Result<Config> {
    let mut config = Config::from_urls(&args.urls)?;
    // A watch reads nothing from the host: only what the services serve.
    config.system.kernel_log = "off".to_string();
    let warmup = args.warmup.unwrap_or(args.duration / 3);
    for t in &mut config.targets {
        t.interval = args.every();
        t.timeout = args.timeout;
        // One sample of slack: the first sample must still be inside the window at the end.
        t.window = args.duration + args.every();
        t.warmup = warmup;
        t.startup_grace = Some(args.startup_grace.unwrap_or(Duration::ZERO));
        t.overhead_budget = args.overhead_budget;
        t.gc = args.gc;
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
    let targets = crate::targets::build_targets(&config);
    let samples = args.samples();
    if let Some(why) = args.too_few_samples() {
        eprintln!("leakwatch watch: {why}");
    }
    // A verdict needs the warm-up covered and the samples held, whichever comes later.
    let verdict_after = config
        .targets
        .first()
        .map_or(Duration::ZERO, |t| t.warmup)
        .max(args.every() * (verdict_samples() as u32 - 1));
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
            crate::units::fmt_duration_human(args.every()),
            crate::units::fmt_duration_human(args.duration),
            crate::units::fmt_duration_human(verdict_after),
        );
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    for i in 0..samples {
        let due = tokio_start
            + args
                .every()
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
                    match dump_heap(&fetcher, &t.config, dir, Reason::Baseline).await {
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
            match dump_heap(&fetcher, &t.config, dir, Reason::Final).await {
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
            every_seconds: args.every().as_secs_f64(),
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
        // On a terminal the summary wraps at its width, between words.
        let width = tty.then(textwrap::termwidth);
        for s in &summaries {
            match width {
                Some(w) => print!("{}", summary::wrap_lines(&render_summary(s), w)),
                None => print!("{}", render_summary(s)),
            }
        }
        let word = match code {
            EXIT_OK => "no leak found",
            EXIT_LEAK => "leak suspected",
            _ => "could not judge every target",
        };
        println!("result: {word} (exit {code})");
    }
    for s in &summaries {
        if s.status == Outcome::Unreachable {
            eprintln!(
                "leakwatch watch: {}",
                crate::printable::printable_line(s.notes.first().map_or("", String::as_str))
            );
        }
    }
    if let Some(e) = baseline_error {
        eprintln!("leakwatch watch: {e}");
    }
    let _ = std::io::stdout().flush();
    code
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn args(extra: &[&str]) -> WatchArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            watch: WatchArgs,
        }
        let mut argv = vec!["watch", "http://127.0.0.1:6060"];
        argv.extend(extra);
        <Cli as clap::Parser>::parse_from(argv).watch
    }

    #[test]
    fn every_defaults_to_fit_a_verdict_into_for() {
        // (flags, every in ms, samples, said at the start?)
        let cases: [(&[&str], u64, usize, bool); 6] = [
            (&[], 30_000, 21, false),
            (&["--for", "2m"], 7_500, 17, false),
            (&["--for", "45s"], 2_812, 17, false),
            (&["--for", "5s"], 1_000, 6, true),
            (&["--for", "2m", "--every", "30s"], 30_000, 5, true),
            (&["--for", "45s", "--every", "1s"], 1_000, 46, false),
        ];
        for (flags, every_ms, samples, warned) in cases {
            let a = args(flags);
            assert_eq!(a.every().as_millis() as u64, every_ms, "{flags:?}");
            assert_eq!(a.samples(), samples, "{flags:?}");
            assert_eq!(a.too_few_samples().is_some(), warned, "{flags:?}");
        }
        let why = args(&["--for", "2m", "--every", "30s"])
            .too_few_samples()
            .unwrap();
        assert!(
            why.contains("5 samples") && why.contains("needs 8"),
            "{why}"
        );
    }

    #[test]
    fn a_watch_has_no_start_up_grace_unless_asked() {
        let c = watch_config(&args(&[])).unwrap();
        assert_eq!(c.targets[0].startup_grace, Some(Duration::ZERO));
        let c = watch_config(&args(&["--startup-grace", "10m"])).unwrap();
        assert_eq!(c.targets[0].startup_grace, Some(Duration::from_secs(600)));
    }
}
