//! Range checks of configuration values: durations positive and bounded, sizes bounded,
//! ratios finite and within 0..1, warm-up at most the window. Each error names the key.
//!
//! The upper bounds are far above any sensible setting; they exist so that a typo
//! (`interval: 15000h`, `max_body_bytes: 18446744073709551615`) is refused at load
//! instead of turning into a silent never-scrape or an unbounded allocation. The lower
//! bounds of periods keep a typo (`interval: 1ns`, `heap_every: 1ms`, `cooldown: 0s`)
//! from turning into a loop hammering the service or the disk.
//!
//! Valid but unreasonable values are warnings, each named once where it is written:
//! a scrape interval under 1s (tests and demos use one; a service in production
//! should not pay a profile a second) and a dump period under the scrape interval
//! (dumps are full profiles, taken more often than leakwatch scrapes).

use std::time::Duration;

use crate::analysis::kinds::LeakKind;
use crate::analysis::signals::SignalConfig;
use crate::dump::DumpConfig;
use crate::error::{Error, Result};

use super::settings::TargetSettings;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;
const PIB: u64 = 1024 * 1024 * GIB;

/// Longest scrape interval, goroutineleak interval and dump period.
pub const MAX_INTERVAL: Duration = Duration::from_secs(DAY);
/// Shortest scrape interval (the overhead budget stretches it further when requests
/// are expensive).
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Scrape intervals under this are accepted with a warning.
pub const USUAL_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Shortest goroutineleak interval: each request runs a full GC in the service.
pub const MIN_GOROUTINELEAK_INTERVAL: Duration = Duration::from_secs(1);
/// Shortest dump period (`heap_every`, `goroutine_every`; `off` or 0s turn one off).
pub const MIN_DUMP_PERIOD: Duration = Duration::from_secs(1);
/// Shortest dump cooldown: the gap between two dumps taken off the schedule.
pub const MIN_COOLDOWN: Duration = Duration::from_secs(1);
/// Longest request timeout (scrapes and dumps).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(HOUR);
/// Longest analysis window, warm-up, start-up grace, budget boost and dump cooldown.
pub const MAX_SPAN: Duration = Duration::from_secs(7 * DAY);
/// Largest response body held in memory.
pub const MAX_BODY_BYTES: u64 = 2 * GIB;
/// Largest single dump (streamed to disk).
pub const MAX_DUMP_BYTES: u64 = 64 * GIB;
/// Largest memory limit or retention size.
pub const MAX_MEMORY_BYTES: u64 = PIB;
/// Most series per top-N family.
pub const MAX_TOP_N: usize = 100;

fn err(key: &str, msg: impl std::fmt::Display) -> Error {
    Error::Config(format!("{key}: {msg}"))
}

/// A duration greater than 0 and at most `max`.
pub fn duration(key: &str, d: Duration, max: Duration) -> Result<()> {
    if d.is_zero() {
        return Err(err(key, "must be greater than 0"));
    }
    if d > max {
        return Err(err(
            key,
            format_args!(
                "{} is longer than the limit of {}",
                crate::units::fmt_duration(d.as_secs_f64()),
                crate::units::fmt_duration(max.as_secs_f64())
            ),
        ));
    }
    Ok(())
}

/// A duration of at least `min` (which the error names) and at most `max`.
pub fn duration_at_least(key: &str, d: Duration, min: Duration, max: Duration) -> Result<()> {
    if d < min {
        return Err(err(
            key,
            format_args!(
                "{} is shorter than the minimum of {}",
                crate::units::fmt_duration_human(d),
                crate::units::fmt_duration_human(min)
            ),
        ));
    }
    duration(key, d, max)
}

/// A start-up grace: 0 (judge growth from the first sample, for processes known to be
/// past their start-up) up to `MAX_SPAN`.
fn grace(key: &str, d: Duration) -> Result<()> {
    if d.is_zero() {
        return Ok(());
    }
    duration(key, d, MAX_SPAN)
}

/// A size within `min..=max` bytes.
pub fn size(key: &str, bytes: u64, min: u64, max: u64) -> Result<()> {
    if bytes < min || bytes > max {
        return Err(err(
            key,
            format_args!(
                "{bytes} bytes is outside {}..{}",
                crate::units::fmt_size(min),
                crate::units::fmt_size(max)
            ),
        ));
    }
    Ok(())
}

/// A finite number within `min..=max` (NaN and infinities refused).
pub fn number(key: &str, v: f64, min: f64, max: f64) -> Result<()> {
    if !v.is_finite() || v < min || v > max {
        return Err(err(
            key,
            format_args!("{v} must be a finite number in {min}..{max}"),
        ));
    }
    Ok(())
}

/// A finite number that is 0 or more.
pub fn non_negative(key: &str, v: f64) -> Result<()> {
    if !v.is_finite() || v < 0.0 {
        return Err(err(key, format_args!("{v} must be a finite number >= 0")));
    }
    Ok(())
}

/// The warm-up fits in the window (the verdict needs the window to cover it).
pub fn warmup_fits(key: &str, warmup: Duration, window: Duration) -> Result<()> {
    duration(key, warmup, MAX_SPAN)?;
    if warmup > window {
        return Err(err(
            key,
            format_args!(
                "{} is longer than the window ({}): the verdict would never leave warm-up",
                crate::units::fmt_duration(warmup.as_secs_f64()),
                crate::units::fmt_duration(window.as_secs_f64())
            ),
        ));
    }
    Ok(())
}

/// Leak-signal settings: label count bounded, every threshold finite and in range.
pub fn signals(key: &str, s: &SignalConfig) -> Result<()> {
    if s.top_n > MAX_TOP_N {
        return Err(err(
            &format!("{key}.top_n"),
            format_args!("{} is over the limit of {MAX_TOP_N}", s.top_n),
        ));
    }
    if let Some(b) = s.memory_limit_bytes {
        size(
            &format!("{key}.memory_limit_bytes"),
            b,
            MIB,
            MAX_MEMORY_BYTES,
        )?;
    }
    let t = &s.thresholds;
    let k = |name: &str| format!("{key}.thresholds.{name}");
    // Each kind's floors, under the keys its row of the kind table names.
    let floors = LeakKind::ALL.map(|kind| (kind.spec().floor_keys, (kind.spec().floors)(t)));
    for ([key, _], f) in floors {
        non_negative(&k(key), f.per_hour)?;
    }
    non_negative(
        &k("usage_min_growth_bytes_per_hour"),
        t.usage_min_growth_bytes_per_hour,
    )?;
    let ratios = floors
        .iter()
        .map(|([_, key], f)| (*key, f.relative_per_hour))
        .chain([("min_half_slope_fraction", t.min_half_slope_fraction)]);
    for (name, v) in ratios {
        number(&k(name), v, 0.0, 1.0)?;
    }
    // Goodman-Kruskal gamma.
    number(&k("min_monotonicity"), t.min_monotonicity, -1.0, 1.0)?;
    if t.min_gc_cycles > 10_000 {
        return Err(err(
            &k("min_gc_cycles"),
            format_args!("{} is over the limit of 10000", t.min_gc_cycles),
        ));
    }
    Ok(())
}

/// Dump settings beyond `DumpConfig::validate`: bounded periods, timeout and sizes.
pub fn dumps(key: &str, d: &DumpConfig) -> Result<()> {
    if let Some(every) = d.heap_every {
        duration_at_least(
            &format!("{key}.heap_every"),
            every,
            MIN_DUMP_PERIOD,
            MAX_SPAN,
        )?;
    }
    if let Some(every) = d.goroutine_every {
        duration_at_least(
            &format!("{key}.goroutine_every"),
            every,
            MIN_DUMP_PERIOD,
            MAX_SPAN,
        )?;
    }
    duration_at_least(
        &format!("{key}.cooldown"),
        d.cooldown,
        MIN_COOLDOWN,
        MAX_SPAN,
    )?;
    duration(&format!("{key}.timeout"), d.timeout, MAX_TIMEOUT)?;
    size(
        &format!("{key}.max_bytes"),
        d.max_bytes.as_u64(),
        1,
        MAX_DUMP_BYTES,
    )?;
    size(
        &format!("{key}.retention.max_bytes"),
        d.retention.max_bytes.as_u64(),
        1,
        MAX_MEMORY_BYTES,
    )?;
    if d.retention.max_files > 1_000_000 {
        return Err(err(
            &format!("{key}.retention.max_files"),
            format_args!("{} is over the limit of 1000000", d.retention.max_files),
        ));
    }
    Ok(())
}

/// Which section a settings check is for.
pub(super) enum Scope<'a> {
    /// `defaults:` or a `/probe` module: its values over the built-in ones.
    Defaults,
    /// A target: its values over `defaults` (as written), over the built-in ones.
    Target { defaults: &'a TargetSettings },
}

/// The settings a section sets itself (`own`), each in its range: `key` names the
/// section (`defaults`, `targets[2]`, `probe.modules.fast`). An inherited value was
/// checked where it was set; the warm-up is checked against the window it ends up with.
/// Warnings about valid but unreasonable values go to `warnings`, each under the key
/// written in this section (a target inheriting the value is not warned again).
pub(super) fn settings(
    key: &str,
    own: &TargetSettings,
    scope: Scope,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let k = |name: &str| format!("{key}.{name}");
    let builtin = TargetSettings::builtin();
    let is_target = matches!(scope, Scope::Target { .. });
    let inherited = match scope {
        Scope::Defaults => builtin.clone(),
        Scope::Target { defaults } => defaults.clone().or(builtin.clone()),
    };
    let merged = own.clone().or(inherited);
    if let Some(d) = own.interval {
        duration_at_least(&k("interval"), d, MIN_INTERVAL, MAX_INTERVAL)?;
        if d < USUAL_MIN_INTERVAL {
            warnings.push(format!(
                "{}: {} is under {}: every scrape costs the service a heap and a goroutine profile (fine for a test or a demo, not for production)",
                k("interval"),
                human(d),
                human(USUAL_MIN_INTERVAL)
            ));
        }
    }
    if let Some(d) = own.timeout {
        duration(&k("timeout"), d, MAX_TIMEOUT)?;
    }
    if let Some(b) = own.max_body_bytes {
        if is_target && b.as_u64() == 0 {
            return Err(err(&k("max_body_bytes"), "must be > 0"));
        }
        size(&k("max_body_bytes"), b.as_u64(), 1, MAX_BODY_BYTES)?;
    }
    if let Some(d) = own.window {
        duration(&k("window"), d, MAX_SPAN)?;
    }
    // A warm-up set anywhere must fit the window; the built-in one is capped by the
    // analysis instead (a short test window needs no warm-up key), and so is a
    // `defaults.warmup` that only repeats it.
    let not_builtin = |w: &Duration| Some(*w) != builtin.warmup;
    let (own_warmup, defaults_warmup) = match scope {
        Scope::Defaults => (own.warmup.filter(not_builtin), None),
        Scope::Target { defaults } => (own.warmup, defaults.warmup.filter(not_builtin)),
    };
    if let (Some(warmup), Some(window)) = (own_warmup.or(defaults_warmup), merged.window) {
        let from = if own_warmup.is_some() {
            ""
        } else {
            " (from defaults.warmup)"
        };
        warmup_fits(&k("warmup"), warmup, window).map_err(|e| suffix(e, from))?;
    }
    if let Some(g) = own.startup_grace {
        grace(&k("startup_grace"), g)?;
    }
    if let Some(m) = own.memory_limit {
        size(&k("memory_limit"), m.as_u64(), MIB, MAX_MEMORY_BYTES)?;
    }
    if let Some(s) = &own.signals {
        signals(&k("signals"), s)?;
    }
    if let Some(b) = own.overhead_budget {
        if !is_target {
            number(&k("overhead_budget"), b, 0.0, 1.0)?;
        } else if !b.is_finite() || !(0.0..=1.0).contains(&b) {
            return Err(err(
                &k("overhead_budget"),
                format_args!("{b} must be a share of one core, 0..1 (0 = off)"),
            ));
        }
    }
    if let Some(b) = own.budget_boost {
        number(&k("budget_boost"), b, 1.0, 100.0)?;
    }
    if let Some(d) = own.budget_boost_for {
        duration(&k("budget_boost_for"), d, MAX_SPAN)?;
    }
    if let Some(n) = own.memstats_text_every
        && !(1..=1000).contains(&n)
    {
        return Err(err(
            &k("memstats_text_every"),
            format_args!("{n} must be in 1..1000"),
        ));
    }
    if let Some(d) = own.goroutineleak_interval {
        duration_at_least(
            &k("goroutineleak_interval"),
            d,
            MIN_GOROUTINELEAK_INTERVAL,
            MAX_INTERVAL,
        )?;
    }
    if own.dumps.is_some() {
        let d = merged.dump_config();
        d.validate(&k("dumps"))?;
        dumps(&k("dumps"), &d)?;
    }
    if own.dumps.is_some() || own.interval.is_some() {
        let defaults = match scope {
            Scope::Defaults => None,
            Scope::Target { defaults } => Some(defaults),
        };
        dumps_under_interval(key, own, defaults, &merged, warnings);
    }
    Ok(())
}

/// A dump period shorter than the scrape interval, when dumps are on: a warning under
/// the period's key, saying where an inherited value was set.
fn dumps_under_interval(
    key: &str,
    own: &TargetSettings,
    defaults: Option<&TargetSettings>,
    merged: &TargetSettings,
    warnings: &mut Vec<String>,
) {
    let d = merged.dump_config();
    let Some(interval) = merged.interval else {
        return;
    };
    if d.dir.is_none() {
        return;
    }
    type Pick = fn(&crate::dump::DumpOverrides) -> Option<Option<Duration>>;
    let periods: [(&str, Option<Duration>, Pick); 2] = [
        ("heap_every", d.heap_every, |o| o.heap_every),
        ("goroutine_every", d.goroutine_every, |o| o.goroutine_every),
    ];
    for (name, every, pick) in periods {
        let Some(every) = every.filter(|e| *e < interval) else {
            continue;
        };
        let set_here = own.dumps.as_ref().and_then(pick).is_some();
        let set_in_defaults = defaults
            .and_then(|s| s.dumps.as_ref())
            .and_then(pick)
            .is_some();
        let from = match (set_here, set_in_defaults) {
            (true, _) => String::new(),
            (false, true) => format!(" (from defaults.dumps.{name})"),
            (false, false) => " (the built-in period)".to_string(),
        };
        warnings.push(format!(
            "{key}.dumps.{name}: {} is shorter than the scrape interval ({}){from}: each dump costs the service a full profile, more often than leakwatch scrapes it",
            human(every),
            human(interval)
        ));
    }
}

fn human(d: Duration) -> String {
    crate::units::fmt_duration_human(d)
}

/// Appends a note to a config error's message.
fn suffix(e: Error, note: &str) -> Error {
    match e {
        Error::Config(msg) if !note.is_empty() => Error::Config(format!("{msg}{note}")),
        other => other,
    }
}
