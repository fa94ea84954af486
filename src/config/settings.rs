//! The settings a target takes from its own keys, else from `defaults:`, else from the
//! built-in values: one struct of optional fields for all three, merged once.
//!
//! Adding a setting: a field here (the key, its type and how it is read), its built-in
//! value in [`TargetSettings::builtin`], its range check in `ranges.rs`, and the key in
//! the per-target list of `file.rs` unless only `defaults:` may set it.

use std::time::Duration;

use serde::Deserialize;

use crate::analysis::signals::SignalConfig;
use crate::analysis::window::WindowConfig;
use crate::dump::{DumpConfig, DumpOverrides};
use crate::units::{ByteSize, de_opt_duration};

use super::formats::{GcMode, GoroutineFormat, HeapFormat};

/// Per-target settings as one section of the file writes them: every key optional
/// (absent or `null` = inherited). `defaults:` is read as one directly; a target and a
/// `/probe` module read the keys they allow into one (see `section.rs`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "struct Defaults")]
pub struct TargetSettings {
    /// Time between scrapes of a target.
    #[serde(deserialize_with = "de_opt_duration")]
    pub interval: Option<Duration>,
    /// Time one request may take before it counts as a `timeout` error.
    #[serde(deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
    /// Largest response body read from a target; a bigger one is a `too_large` error.
    pub max_body_bytes: Option<ByteSize>,
    /// How much history each target's analysis window keeps.
    #[serde(deserialize_with = "de_opt_duration")]
    pub window: Option<Duration>,
    /// Time a (re)started target is watched before a leak verdict is given (capped at
    /// two thirds of `window`); time-to-OOM needs none. See README "Leak signals".
    #[serde(deserialize_with = "de_opt_duration")]
    pub warmup: Option<Duration>,
    /// Growth in a process's first `startup_grace` may be start-up (caches filling): a
    /// leak verdict needs growth that goes on after it. Default: twice `warmup`.
    #[serde(deserialize_with = "de_opt_duration")]
    pub startup_grace: Option<Duration>,
    pub heap_format: Option<HeapFormat>,
    pub goroutine_format: Option<GoroutineFormat>,
    /// Ask the service to run a GC before the heap profile (`gc=1`): `auto` (the
    /// default: only when no GC ran for 30 s but HeapAlloc grew, at most once every
    /// 30 s), `true` (always) or `false` (never).
    pub gc: Option<GcMode>,
    /// Memory limit for time-to-OOM when neither a cgroup limit nor GOMEMLIMIT is known.
    pub memory_limit: Option<ByteSize>,
    /// Leak-signal settings: top-N label counts and verdict thresholds (a target's
    /// block replaces the default one whole).
    pub signals: Option<SignalConfig>,
    /// Share of one CPU core of the service that serving leakwatch may cost (0 = no
    /// budget). Each endpoint's interval is stretched to stay within it.
    pub overhead_budget: Option<f64>,
    /// While a leak is first suspected the budget is multiplied by this...
    pub budget_boost: Option<f64>,
    /// ...for this long.
    #[serde(deserialize_with = "de_opt_duration")]
    pub budget_boost_for: Option<Duration>,
    /// MemStats from `heap?debug=1` (when the service has no expvar) are fetched this
    /// many times less often than the heap records.
    pub memstats_text_every: Option<u32>,
    /// Interval of the `goroutineleak` profile (each request runs a full GC in the service).
    #[serde(deserialize_with = "de_opt_duration")]
    pub goroutineleak_interval: Option<Duration>,
    /// Profile dumps (evidence for the fix); off until `dir` is set. A target's keys
    /// override the default ones key by key.
    pub dumps: Option<DumpOverrides>,
}

/// The keys of `defaults:` (every field of [`TargetSettings`]), as the file writes them.
pub(super) const KEYS: &[&str] = &[
    "interval",
    "timeout",
    "max_body_bytes",
    "window",
    "warmup",
    "startup_grace",
    "heap_format",
    "goroutine_format",
    "gc",
    "memory_limit",
    "signals",
    "overhead_budget",
    "budget_boost",
    "budget_boost_for",
    "memstats_text_every",
    "goroutineleak_interval",
    "dumps",
];

impl TargetSettings {
    /// The built-in values, used where neither a target nor `defaults:` sets a key. The
    /// window's length and warm-up are the analysis window's own defaults.
    pub fn builtin() -> TargetSettings {
        let window = WindowConfig::default();
        TargetSettings {
            interval: Some(Duration::from_secs(15)),
            timeout: Some(Duration::from_secs(10)),
            max_body_bytes: Some(ByteSize::mib(64)),
            window: Some(window.span),
            warmup: Some(window.warmup),
            startup_grace: None,
            heap_format: Some(HeapFormat::default()),
            goroutine_format: Some(GoroutineFormat::default()),
            gc: Some(GcMode::default()),
            memory_limit: None,
            signals: Some(SignalConfig::default()),
            overhead_budget: Some(0.01),
            budget_boost: Some(2.0),
            budget_boost_for: Some(Duration::from_secs(30 * 60)),
            memstats_text_every: Some(4),
            goroutineleak_interval: Some(Duration::from_secs(5 * 60)),
            dumps: None,
        }
    }

    /// These settings, with `base`'s where these set none (`dumps` merged key by key).
    pub fn or(self, base: TargetSettings) -> TargetSettings {
        TargetSettings {
            interval: self.interval.or(base.interval),
            timeout: self.timeout.or(base.timeout),
            max_body_bytes: self.max_body_bytes.or(base.max_body_bytes),
            window: self.window.or(base.window),
            warmup: self.warmup.or(base.warmup),
            startup_grace: self.startup_grace.or(base.startup_grace),
            heap_format: self.heap_format.or(base.heap_format),
            goroutine_format: self.goroutine_format.or(base.goroutine_format),
            gc: self.gc.or(base.gc),
            memory_limit: self.memory_limit.or(base.memory_limit),
            signals: self.signals.or(base.signals),
            overhead_budget: self.overhead_budget.or(base.overhead_budget),
            budget_boost: self.budget_boost.or(base.budget_boost),
            budget_boost_for: self.budget_boost_for.or(base.budget_boost_for),
            memstats_text_every: self.memstats_text_every.or(base.memstats_text_every),
            goroutineleak_interval: self.goroutineleak_interval.or(base.goroutineleak_interval),
            dumps: match (self.dumps, base.dumps) {
                (Some(top), Some(base)) => Some(top.or(&base)),
                (top, base) => top.or(base),
            },
        }
    }

    /// The dump settings these resolve to (the built-in ones under any keys set).
    pub fn dump_config(&self) -> DumpConfig {
        self.dumps
            .clone()
            .unwrap_or_default()
            .apply(&DumpConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `KEYS` is exactly the keys the derived reader accepts, in its order.
    #[test]
    fn keys_are_the_fields() {
        let err = serde_norway::from_str::<TargetSettings>("zzz: 1\n")
            .unwrap_err()
            .to_string();
        let listed: Vec<&str> = err.split('`').skip(3).step_by(2).collect();
        assert_eq!(listed, KEYS, "{err}");
    }
}
