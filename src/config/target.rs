//! One fully resolved target: its own keys checked, its settings merged over
//! `defaults:` and the built-in values.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use crate::analysis::signals::SignalConfig;
use crate::error::{Error, Result};

use super::file::RawTarget;
use super::formats::{GcMode, GoroutineFormat, HeapFormat};
use super::ranges::{self, Scope};
use super::settings::TargetSettings;

/// One fully resolved target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    pub name: String,
    /// Base URL; profiles are requested under `<url>/debug/pprof/`.
    pub url: reqwest::Url,
    pub interval: Duration,
    pub timeout: Duration,
    pub max_body_bytes: u64,
    pub window: Duration,
    pub warmup: Duration,
    pub startup_grace: Option<Duration>,
    pub heap_format: HeapFormat,
    pub goroutine_format: GoroutineFormat,
    pub gc: GcMode,
    pub memory_limit: Option<u64>,
    /// Extra labels on every series of this target (after `target`).
    pub labels: BTreeMap<String, String>,
    pub pid: Option<u32>,
    pub pid_file: Option<PathBuf>,
    pub process: Option<String>,
    pub cgroup: Option<String>,
    pub signals: SignalConfig,
    pub overhead_budget: f64,
    pub budget_boost: f64,
    pub budget_boost_for: Duration,
    pub memstats_text_every: u32,
    pub goroutineleak_interval: Duration,
    pub dumps: crate::dump::DumpConfig,
    /// Credentials and headers for requests to the target.
    pub auth: crate::scrape::RequestAuth,
}

static TARGET_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_.:-]+$").expect("valid regex"));
static LABEL_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z_][a-zA-Z0-9_]*$").expect("valid regex"));

/// Label names leakwatch's own series use; a configured label may not shadow them.
const RESERVED_LABELS: &[&str] = &[
    "target",
    "endpoint",
    "reason",
    "state",
    "function",
    "package",
    "kind",
    "field",
    "event",
    "source",
    "profile_type",
    "result",
    "version",
    "path",
    "job",
    "instance",
];

impl TargetConfig {
    /// Checks `targets[i]` (`key`; `seen`: the names before it) and merges its settings
    /// over `defaults` (as written, already checked) and the built-in values.
    pub(super) fn resolve(
        key: &str,
        t: RawTarget,
        defaults: &TargetSettings,
        seen: &mut HashSet<String>,
        warnings: &mut Vec<String>,
    ) -> Result<Self> {
        if !TARGET_NAME.is_match(&t.name) || t.name.starts_with('.') {
            return Err(Error::Config(format!(
                "{key}.name: {:?} must match [A-Za-z0-9_.:-]+ and not start with '.'",
                t.name
            )));
        }
        if !seen.insert(t.name.clone()) {
            return Err(Error::Config(format!(
                "{key}.name: duplicate target name {:?}",
                t.name
            )));
        }
        let url = parse_url(&t.url, &format!("{key}.url"))?;
        ranges::settings(key, &t.settings, Scope::Target { defaults }, warnings)?;
        for k in t.labels.keys() {
            if !LABEL_NAME.is_match(k) || k.starts_with("__") {
                return Err(Error::Config(format!(
                    "{key}.labels: {k:?} is not a valid Prometheus label name"
                )));
            }
            if RESERVED_LABELS.contains(&k.as_str()) {
                return Err(Error::Config(format!(
                    "{key}.labels: {k:?} is reserved for leakwatch's own labels"
                )));
            }
        }
        let selectors = [t.pid.is_some(), t.pid_file.is_some(), t.process.is_some()];
        if selectors.iter().filter(|b| **b).count() > 1 {
            return Err(Error::Config(format!(
                "{key}: give at most one of pid, pid_file, process"
            )));
        }
        if let Some(p) = &t.process {
            super::errors::regex(&format!("{key}.process"), p, false)?;
        }
        t.auth.validate(key)?;
        let s = t
            .settings
            .or(defaults.clone())
            .or(TargetSettings::builtin());
        let dumps = s.dump_config();
        let TargetSettings {
            interval: Some(interval),
            timeout: Some(timeout),
            max_body_bytes: Some(max_body_bytes),
            window: Some(window),
            warmup: Some(warmup),
            startup_grace,
            heap_format: Some(heap_format),
            goroutine_format: Some(goroutine_format),
            gc: Some(gc),
            memory_limit,
            signals: Some(signals),
            overhead_budget: Some(overhead_budget),
            budget_boost: Some(budget_boost),
            budget_boost_for: Some(budget_boost_for),
            memstats_text_every: Some(memstats_text_every),
            goroutineleak_interval: Some(goroutineleak_interval),
            dumps: _,
        } = s
        else {
            return Err(Error::Config(format!(
                "{key}: a setting has no built-in value"
            )));
        };
        Ok(TargetConfig {
            name: t.name,
            url,
            interval,
            timeout,
            max_body_bytes: max_body_bytes.as_u64(),
            window,
            warmup,
            startup_grace,
            heap_format,
            goroutine_format,
            gc,
            memory_limit: memory_limit.map(|b| b.as_u64()),
            labels: t.labels,
            pid: t.pid,
            pid_file: t.pid_file,
            process: t.process,
            cgroup: t.cgroup,
            signals,
            overhead_budget,
            budget_boost,
            budget_boost_for,
            memstats_text_every,
            goroutineleak_interval,
            dumps,
            auth: t.auth,
        })
    }

    /// The secret values requests to this target carry (see the `secrets` module).
    pub fn known_secrets(&self) -> Vec<String> {
        self.auth.known_secrets()
    }

    /// `text` with this target's secrets replaced (see the `secrets` module).
    pub fn scrub_secrets(&self, text: &str) -> String {
        self.auth.scrub_secrets(text)
    }

    /// URL of a path under the target's base URL (keeps a base path prefix if any).
    pub fn endpoint(&self, path_and_query: &str) -> String {
        let base = self.url.as_str().trim_end_matches('/');
        format!("{base}{path_and_query}")
    }

    /// Whether this target names a local process or cgroup to read memory from.
    pub fn watches_system(&self) -> bool {
        self.pid.is_some()
            || self.pid_file.is_some()
            || self.process.is_some()
            || self.cgroup.is_some()
    }

    /// `target` then the configured labels, as label pairs.
    pub fn label_pairs(&self) -> Vec<(String, String)> {
        let mut v = vec![("target".to_string(), self.name.clone())];
        v.extend(self.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        v
    }
}

/// What a target URL looks like, for error messages.
const URL_EXPECTED: &str = "an http or https URL such as http://127.0.0.1:6060";

/// An http(s) URL with a host; `key` names it in the error.
pub(super) fn parse_url(s: &str, key: &str) -> Result<reqwest::Url> {
    let bad = |why: &dyn std::fmt::Display| {
        Error::Config(format!(
            "{key}: invalid URL {s:?} ({why}), expected {URL_EXPECTED}"
        ))
    };
    let url = reqwest::Url::parse(s).map_err(|e| bad(&e))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(bad(&format_args!("scheme {}", url.scheme())));
    }
    if url.host_str().is_none() {
        return Err(bad(&"no host"));
    }
    Ok(url)
}
