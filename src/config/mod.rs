//! Configuration: the strict YAML file, the defaults every target inherits, and
//! validation at load time. Errors name the key (and, from the YAML parser, the line).
//!
//! Defaults live in one place ([`Defaults::default`]); a target's own keys override
//! them; [`Config::load`] / [`Config::from_yaml`] return a fully resolved [`Config`].

mod formats;
mod ranges;
mod reload;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use bytesize::ByteSize;
use regex::Regex;
use serde::Deserialize;

use crate::analysis::signals::SignalConfig;
use crate::error::{Error, Result};
use crate::units::{de_duration, de_opt_duration};

/// The default target: the pprof convention (`import _ "net/http/pprof"` examples listen on 6060).
pub const DEFAULT_TARGET_URL: &str = "http://127.0.0.1:6060";
/// leakwatch's own default listen address. 9100-9999 is fully allocated on the
/// Prometheus default-port wiki, so leakwatch takes a port outside it.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:10760";

pub use formats::{GcMode, GoroutineFormat, HeapFormat};
pub use reload::ReloadStatus;

/// Settings every target inherits unless it sets its own.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Time between scrapes of a target.
    #[serde(deserialize_with = "de_duration")]
    pub interval: Duration,
    /// Time one request may take before it counts as a `timeout` error.
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// Largest response body read from a target; a bigger one is a `too_large` error.
    pub max_body_bytes: ByteSize,
    /// How much history each target's analysis window keeps.
    #[serde(deserialize_with = "de_duration")]
    pub window: Duration,
    /// Time a (re)started target is watched before a leak verdict is given (capped at
    /// two thirds of `window`); time-to-OOM needs none. See README "Leak signals".
    #[serde(deserialize_with = "de_duration")]
    pub warmup: Duration,
    /// Growth in a process's first `startup_grace` may be start-up (caches filling): a
    /// leak verdict needs growth that goes on after it. Default: twice `warmup`.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub startup_grace: Option<Duration>,
    pub heap_format: HeapFormat,
    pub goroutine_format: GoroutineFormat,
    /// Ask the service to run a GC before the heap profile (`gc=1`): `false` (never:
    /// it perturbs the service), `true` (always) or `auto` (only when no GC ran for a
    /// while but HeapAlloc grew, at most once per 5 minutes).
    pub gc: GcMode,
    /// Memory limit for time-to-OOM when neither a cgroup limit nor GOMEMLIMIT is known.
    pub memory_limit: Option<ByteSize>,
    /// Leak-signal settings: top-N label counts and verdict thresholds.
    pub signals: SignalConfig,
    /// Share of one CPU core of the service that serving leakwatch may cost (0 = no
    /// budget). Each endpoint's interval is stretched to stay within it.
    pub overhead_budget: f64,
    /// While a leak is first suspected the budget is multiplied by this...
    pub budget_boost: f64,
    /// ...for this long.
    #[serde(deserialize_with = "de_duration")]
    pub budget_boost_for: Duration,
    /// MemStats from `heap?debug=1` (when the service has no expvar) are fetched this
    /// many times less often than the heap records.
    pub memstats_text_every: u32,
    /// Interval of the `goroutineleak` profile (each request runs a full GC in the service).
    #[serde(deserialize_with = "de_duration")]
    pub goroutineleak_interval: Duration,
    /// Profile dumps (evidence for the fix); off until `dir` is set.
    pub dumps: crate::dump::DumpConfig,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
            max_body_bytes: ByteSize::mib(64),
            window: Duration::from_secs(30 * 60),
            warmup: Duration::from_secs(5 * 60),
            startup_grace: None,
            heap_format: HeapFormat::Proto,
            goroutine_format: GoroutineFormat::Proto,
            gc: GcMode::Off,
            memory_limit: None,
            signals: SignalConfig::default(),
            overhead_budget: 0.01,
            budget_boost: 2.0,
            budget_boost_for: Duration::from_secs(30 * 60),
            memstats_text_every: 4,
            goroutineleak_interval: Duration::from_secs(5 * 60),
            dumps: crate::dump::DumpConfig::default(),
        }
    }
}

/// Where leakwatch reads host files (changeable so it can run as a sidecar with the
/// host's `/proc` and `/sys/fs/cgroup` mounted elsewhere, and so tests use fixtures).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SystemConfig {
    pub proc_root: PathBuf,
    pub cgroup_root: PathBuf,
    /// `/dev/kmsg`, a file of dmesg-style lines, or `off`.
    pub kernel_log: String,
}

impl Default for SystemConfig {
    fn default() -> Self {
        SystemConfig {
            proc_root: PathBuf::from("/proc"),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            kernel_log: "/dev/kmsg".to_string(),
        }
    }
}

/// A target as written in the file: every key but `name` and `url` optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: String,
    url: String,
    #[serde(default, deserialize_with = "de_opt_duration")]
    interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    timeout: Option<Duration>,
    #[serde(default)]
    max_body_bytes: Option<ByteSize>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    window: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    warmup: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    startup_grace: Option<Duration>,
    #[serde(default)]
    heap_format: Option<HeapFormat>,
    #[serde(default)]
    goroutine_format: Option<GoroutineFormat>,
    #[serde(default)]
    gc: Option<GcMode>,
    #[serde(default)]
    memory_limit: Option<ByteSize>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    pid: Option<u32>,
    #[serde(default)]
    pid_file: Option<PathBuf>,
    #[serde(default)]
    process: Option<String>,
    #[serde(default)]
    cgroup: Option<String>,
    #[serde(default)]
    signals: Option<SignalConfig>,
    #[serde(default)]
    overhead_budget: Option<f64>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    goroutineleak_interval: Option<Duration>,
    #[serde(default)]
    dumps: Option<crate::dump::DumpOverrides>,
    #[serde(default)]
    bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    basic_auth: Option<crate::scrape::BasicCredentials>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// `/probe` settings: which URLs may be probed beyond the configured targets, and named
/// modules of request settings.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Regexes a probed URL must match in full (configured targets' URLs are always allowed).
    pub allow: Vec<String>,
    /// Module name -> request settings (`?module=NAME`; `default` when omitted).
    pub modules: BTreeMap<String, ProbeModule>,
}

/// Request settings of a `/probe` module; unset keys take `defaults`.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeModule {
    #[serde(deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
    pub max_body_bytes: Option<ByteSize>,
    pub heap_format: Option<HeapFormat>,
    pub goroutine_format: Option<GoroutineFormat>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    listen: Option<SocketAddr>,
    #[serde(default)]
    probe: ProbeConfig,
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    system: SystemConfig,
    #[serde(default)]
    targets: Vec<RawTarget>,
}

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

impl TargetConfig {
    /// The secret values requests to this target carry (see [`crate::secrets`]).
    pub fn known_secrets(&self) -> Vec<String> {
        self.auth.known_secrets()
    }

    /// `text` with this target's secrets replaced (see [`crate::secrets`]).
    pub fn scrub_secrets(&self, text: &str) -> String {
        self.auth.scrub_secrets(text)
    }
}

impl TargetConfig {
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

/// The whole resolved configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: Option<SocketAddr>,
    pub system: SystemConfig,
    pub targets: Vec<TargetConfig>,
    pub defaults: Defaults,
    pub probe: ProbeConfig,
    /// Compiled `probe.allow`, anchored.
    pub probe_allow: Vec<RegexEq>,
}

/// A compiled regex that compares by its source (so configs can be compared).
#[derive(Debug, Clone)]
pub struct RegexEq(pub Regex);

impl PartialEq for RegexEq {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Config {
    /// Whether `/probe?target=url` is allowed: a configured target's URL, or a match
    /// of a `probe.allow` pattern. Everything else is refused (no open proxy).
    pub fn probe_allowed(&self, url: &reqwest::Url) -> bool {
        self.targets.iter().any(|t| t.url == *url)
            || self.probe_allow.iter().any(|r| r.0.is_match(url.as_str()))
    }

    /// The target config a probe of `url` with `module` uses.
    pub fn probe_target(&self, url: reqwest::Url, module: &str) -> Result<TargetConfig> {
        let m = match self.probe.modules.get(module) {
            Some(m) => m.clone(),
            None if module == "default" => ProbeModule::default(),
            None => return Err(Error::Config(format!("unknown probe module {module:?}"))),
        };
        let d = &self.defaults;
        let mut raw = RawTarget::from_url("probe".to_string(), url.to_string());
        raw.timeout = m.timeout;
        raw.max_body_bytes = m.max_body_bytes;
        raw.heap_format = m.heap_format;
        raw.goroutine_format = m.goroutine_format;
        // One shot: no budget, no goroutineleak (it costs the service a full GC).
        raw.overhead_budget = Some(0.0);
        let cfg = RawConfig {
            listen: None,
            probe: ProbeConfig::default(),
            defaults: d.clone(),
            system: self.system.clone(),
            targets: vec![raw],
        }
        .resolve()?;
        cfg.targets
            .into_iter()
            .next()
            .ok_or_else(|| Error::Config("probe target".to_string()))
    }
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

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = crate::files::read_config_text(path)?;
        Config::from_yaml(&text).map_err(|e| match e {
            Error::Config(msg) => Error::Config(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    /// Parses and validates YAML text.
    pub fn from_yaml(text: &str) -> Result<Config> {
        let raw: RawConfig = if text.trim().is_empty() {
            serde_norway::from_str("{}")
        } else {
            serde_norway::from_str(text)
        }
        .map_err(|e| Error::Config(e.to_string()))?;
        raw.resolve().map_err(|e| match e {
            Error::Config(msg) => Error::Config(crate::error::with_line(text, msg)),
            other => other,
        })
    }

    /// A config with the given target URLs (from `--target`), named after host:port.
    pub fn from_urls(urls: &[String]) -> Result<Config> {
        let defaults = Defaults::default();
        let mut targets = Vec::new();
        for u in urls {
            let url = parse_url(u, "--target")?;
            let name = match (url.host_str(), url.port_or_known_default()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_string(),
                _ => u.clone(),
            };
            let name = name.replace(['[', ']'], "");
            targets.push(RawTarget::from_url(name, u.clone()));
        }
        RawConfig {
            listen: None,
            probe: ProbeConfig::default(),
            defaults,
            system: SystemConfig::default(),
            targets,
        }
        .resolve()
    }

    /// Keeps only the targets of shard `index` of `count` (`--shard index/count`): a
    /// target belongs to the shard its name hashes to, exactly as Prometheus' `hashmod`
    /// relabelling computes it (MD5 of the value, its last 8 bytes as a big-endian
    /// integer, modulo `count`), so several replicas split a fleet without overlap and
    /// agree with a Prometheus that shards the same names.
    pub fn shard(mut self, index: u64, count: u64) -> Result<Config> {
        if count == 0 || index >= count {
            return Err(Error::Config(format!(
                "--shard {index}/{count}: need 0 <= index < count"
            )));
        }
        self.targets.retain(|t| hashmod(&t.name, count) == index);
        Ok(self)
    }

    /// The built-in default: one target at [`DEFAULT_TARGET_URL`].
    pub fn default_target() -> Config {
        Config::from_urls(&[DEFAULT_TARGET_URL.to_string()]).expect("default target is valid")
    }
}

impl RawTarget {
    fn from_url(name: String, url: String) -> Self {
        RawTarget {
            name,
            url,
            interval: None,
            timeout: None,
            max_body_bytes: None,
            window: None,
            warmup: None,
            startup_grace: None,
            heap_format: None,
            goroutine_format: None,
            gc: None,
            memory_limit: None,
            labels: BTreeMap::new(),
            pid: None,
            pid_file: None,
            process: None,
            cgroup: None,
            signals: None,
            overhead_budget: None,
            goroutineleak_interval: None,
            dumps: None,
            bearer_token_file: None,
            basic_auth: None,
            headers: BTreeMap::new(),
        }
    }
}

fn parse_url(s: &str, key: &str) -> Result<reqwest::Url> {
    let url = reqwest::Url::parse(s).map_err(|e| Error::Config(format!("{key}: {s:?}: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(Error::Config(format!(
            "{key}: {s:?}: scheme must be http or https"
        )));
    }
    if url.host_str().is_none() {
        return Err(Error::Config(format!("{key}: {s:?}: no host")));
    }
    Ok(url)
}

impl RawConfig {
    fn resolve(self) -> Result<Config> {
        let d = &self.defaults;
        ranges::defaults(d)?;
        let mut seen = std::collections::HashSet::new();
        let mut targets = Vec::with_capacity(self.targets.len());
        for (i, t) in self.targets.into_iter().enumerate() {
            let key = format!("targets[{i}]");
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
            let interval = t.interval.unwrap_or(d.interval);
            let timeout = t.timeout.unwrap_or(d.timeout);
            let window = t.window.unwrap_or(d.window);
            let warmup = t.warmup.unwrap_or(d.warmup);
            ranges::target(&key, &t, d)?;
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
                Regex::new(p)
                    .map_err(|e| Error::Config(format!("{key}.process: invalid regex: {e}")))?;
            }
            let budget = t.overhead_budget.unwrap_or(d.overhead_budget);
            if !budget.is_finite() || !(0.0..=1.0).contains(&budget) {
                return Err(Error::Config(format!(
                    "{key}.overhead_budget: {budget} must be a share of one core, 0..1 (0 = off)"
                )));
            }
            let auth = crate::scrape::RequestAuth {
                bearer_token_file: t.bearer_token_file.clone(),
                basic_auth: t.basic_auth.clone(),
                headers: t.headers.clone(),
            };
            auth.validate(&key)?;
            let dumps = t.dumps.clone().unwrap_or_default().apply(&d.dumps);
            dumps.validate(&format!("{key}.dumps"))?;
            ranges::dumps(&format!("{key}.dumps"), &dumps)?;
            let max_body = t.max_body_bytes.unwrap_or(d.max_body_bytes).as_u64();
            if max_body == 0 {
                return Err(Error::Config(format!("{key}.max_body_bytes: must be > 0")));
            }
            ranges::size(
                &format!("{key}.max_body_bytes"),
                max_body,
                1,
                ranges::MAX_BODY_BYTES,
            )?;
            targets.push(TargetConfig {
                name: t.name,
                url,
                interval,
                timeout,
                max_body_bytes: max_body,
                window,
                warmup,
                startup_grace: t.startup_grace.or(d.startup_grace),
                heap_format: t.heap_format.unwrap_or(d.heap_format),
                goroutine_format: t.goroutine_format.unwrap_or(d.goroutine_format),
                gc: t.gc.unwrap_or(d.gc),
                memory_limit: t.memory_limit.or(d.memory_limit).map(|b| b.as_u64()),
                labels: t.labels,
                pid: t.pid,
                pid_file: t.pid_file,
                process: t.process,
                cgroup: t.cgroup,
                signals: t.signals.unwrap_or_else(|| d.signals.clone()),
                overhead_budget: t.overhead_budget.unwrap_or(d.overhead_budget),
                budget_boost: d.budget_boost,
                budget_boost_for: d.budget_boost_for,
                memstats_text_every: d.memstats_text_every.max(1),
                goroutineleak_interval: t
                    .goroutineleak_interval
                    .unwrap_or(d.goroutineleak_interval),
                dumps,
                auth,
            });
        }
        ranges::probe(&self.probe)?;
        let mut probe_allow = Vec::new();
        for (i, p) in self.probe.allow.iter().enumerate() {
            let re = Regex::new(&format!("^(?:{p})$"))
                .map_err(|e| Error::Config(format!("probe.allow[{i}]: invalid regex: {e}")))?;
            probe_allow.push(RegexEq(re));
        }
        Ok(Config {
            listen: self.listen,
            system: self.system,
            targets,
            defaults: self.defaults,
            probe: self.probe,
            probe_allow,
        })
    }
}

/// Prometheus' `hashmod`: MD5 of `value`, last 8 bytes big-endian, modulo `modulus`.
pub fn hashmod(value: &str, modulus: u64) -> u64 {
    use md5::{Digest, Md5};
    let hash = Md5::digest(value.as_bytes());
    let mut last = [0u8; 8];
    last.copy_from_slice(&hash[8..16]);
    u64::from_be_bytes(last) % modulus.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_every_target() {
        let c = Config::from_yaml(
            "targets:\n  - name: a\n    url: http://127.0.0.1:6060\n  - name: b\n    url: http://127.0.0.1:6061/base/\n    interval: 1s\n    labels: {team: x}\n",
        )
        .unwrap();
        assert_eq!(c.targets.len(), 2);
        assert_eq!(c.targets[0].interval, Duration::from_secs(15));
        assert_eq!(c.targets[0].timeout, Duration::from_secs(10));
        assert_eq!(c.targets[0].max_body_bytes, 64 * 1024 * 1024);
        assert_eq!(c.targets[1].interval, Duration::from_secs(1));
        assert_eq!(
            c.targets[1].endpoint("/debug/pprof/heap?debug=1"),
            "http://127.0.0.1:6061/base/debug/pprof/heap?debug=1"
        );
        assert_eq!(
            c.targets[1].label_pairs(),
            vec![
                ("target".to_string(), "b".to_string()),
                ("team".to_string(), "x".to_string())
            ]
        );
    }

    #[test]
    fn default_target_is_pprof_convention() {
        let c = Config::default_target();
        assert_eq!(c.targets.len(), 1);
        assert_eq!(c.targets[0].name, "127.0.0.1:6060");
        assert_eq!(c.targets[0].url.as_str(), "http://127.0.0.1:6060/");
    }

    /// Each bad config and the exact error it gives: the key and the line.
    #[test]
    fn invalid_configs_name_the_key() {
        let cases: &[(&str, &str)] = &[
            (
                "targets:\n  - name: a\n    url: http://x\n    intervl: 1s\n",
                "config: targets[0]: unknown field `intervl`, expected one of `name`, `url`, `interval`, `timeout`, `max_body_bytes`, `window`, `warmup`, `startup_grace`, `heap_format`, `goroutine_format`, `gc`, `memory_limit`, `labels`, `pid`, `pid_file`, `process`, `cgroup`, `signals`, `overhead_budget`, `goroutineleak_interval`, `dumps`, `bearer_token_file`, `basic_auth`, `headers` at line 4 column 5",
            ),
            (
                "targets:\n  - name: a\n    url: http://x\n    interval: soon\n",
                "config: targets[0].interval: invalid duration \"soon\": expected number at 0 at line 4 column 15",
            ),
            (
                "targets:\n  - name: a\n    url: http://x\n    gc: maybe\n",
                "config: targets[0].gc: invalid value: string \"maybe\", expected true, false or auto at line 4 column 9",
            ),
            (
                "targets:\n  - name: 'a b'\n    url: http://x\n",
                "config: targets[0].name: \"a b\" must match [A-Za-z0-9_.:-]+ and not start with '.' at line 2",
            ),
            (
                "targets:\n  - name: a\n    url: http://x\n  - name: a\n    url: http://y\n",
                "config: targets[1].name: duplicate target name \"a\" at line 4",
            ),
            (
                "targets:\n  - name: a\n    url: ftp://x\n",
                "config: targets[0].url: \"ftp://x\": scheme must be http or https at line 3",
            ),
            (
                "targets:\n  - name: a\n    url: http://x\n    labels: {target: y}\n",
                "config: targets[0].labels: \"target\" is reserved for leakwatch's own labels at line 4",
            ),
            (
                "targets:\n  - name: a\n    url: http://x\n    pid: 1\n    process: x\n",
                "config: targets[0]: give at most one of pid, pid_file, process at line 2",
            ),
            (
                "targets:\n  - name: a\n    url: http://x\n    process: '('\n",
                "config: targets[0].process: invalid regex: regex parse error:\n    (\n    ^\nerror: unclosed group at line 4",
            ),
            (
                "targets:\n  - name: a\n    url: http://x\n    overhead_budget: 5\n",
                "config: targets[0].overhead_budget: 5 must be a share of one core, 0..1 (0 = off) at line 4",
            ),
            (
                "targets:\n  - name: a\n    url: http://x\n    headers: {\"bad header\": x}\n",
                "config: targets[0].headers: \"bad header\" is not a valid header name at line 4",
            ),
            (
                "defaults:\n  interval: 0s\n",
                "config: defaults.interval: must be greater than 0 at line 2",
            ),
            (
                "bogus: 1\n",
                "config: unknown field `bogus`, expected one of `listen`, `probe`, `defaults`, `system`, `targets`",
            ),
        ];
        for (yaml, want) in cases {
            let err = Config::from_yaml(yaml).unwrap_err().to_string();
            assert_eq!(&err, want, "for {yaml:?}");
        }
    }

    /// The same shard as Prometheus' hashmod, computed independently with Python's
    /// hashlib for a table of names.
    #[test]
    fn shards_agree_with_hashmod() {
        let names: Vec<String> = (0..64).map(|i| format!("svc-{i}.prod:6060")).collect();
        let script = "import hashlib,sys\nfor n in sys.stdin.read().split():\n    print(int.from_bytes(hashlib.md5(n.encode()).digest()[8:], 'big') % 5)";
        let mut child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(names.join("\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let want: Vec<u64> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        let got: Vec<u64> = names.iter().map(|n| hashmod(n, 5)).collect();
        assert_eq!(got, want);
        // Shards partition the targets.
        let yaml: String = std::iter::once("targets:\n".to_string())
            .chain(
                names
                    .iter()
                    .map(|n| format!("  - {{name: '{n}', url: 'http://127.0.0.1:1'}}\n")),
            )
            .collect();
        let all = Config::from_yaml(&yaml).unwrap();
        let mut seen = 0;
        for i in 0..5 {
            let s = all.clone().shard(i, 5).unwrap();
            assert!(s.targets.iter().all(|t| hashmod(&t.name, 5) == i));
            seen += s.targets.len();
        }
        assert_eq!(seen, names.len());
        assert!(all.clone().shard(5, 5).is_err());
    }

    /// Values out of range: each refused with its key and line (NaN, negative, ratios
    /// over 1, warm-up longer than the window, absurd durations and sizes).
    #[test]
    fn out_of_range_values_name_the_key_and_line() {
        let t = "targets:\n  - name: a\n    url: http://x\n";
        let cases: &[(String, &str)] = &[
            (
                "defaults:\n  signals:\n    thresholds:\n      min_monotonicity: .nan\n".into(),
                "config: defaults.signals.thresholds.min_monotonicity: NaN must be a finite number in -1..1 at line 4",
            ),
            (
                format!(
                    "{t}    signals:\n      thresholds: {{heap_min_growth_bytes_per_hour: -5}}\n"
                ),
                "config: targets[0].signals.thresholds.heap_min_growth_bytes_per_hour: -5 must be a finite number >= 0 at line 5",
            ),
            (
                format!("{t}    signals:\n      thresholds:\n        min_half_slope_fraction: 2\n"),
                "config: targets[0].signals.thresholds.min_half_slope_fraction: 2 must be a finite number in 0..1 at line 6",
            ),
            (
                format!("{t}    signals: {{top_n: 100000}}\n"),
                "config: targets[0].signals.top_n: 100000 is over the limit of 100 at line 4",
            ),
            (
                format!("{t}    window: 10m\n    warmup: 1h\n"),
                "config: targets[0].warmup: 1h is longer than the window (10m): the verdict would never leave warm-up at line 5",
            ),
            (
                format!("defaults:\n  warmup: 20m\n{t}    window: 10m\n"),
                "config: targets[0].warmup: 20m is longer than the window (10m): the verdict would never leave warm-up (from defaults.warmup) at line 4",
            ),
            (
                "defaults:\n  window: 1h\n  warmup: 2h\n".into(),
                "config: defaults.warmup: 2h is longer than the window (1h): the verdict would never leave warm-up at line 3",
            ),
            (
                "defaults:\n  interval: 100000h\n".into(),
                "config: defaults.interval: 100000h is longer than the limit of 24h at line 2",
            ),
            (
                format!("{t}    timeout: 1000h\n"),
                "config: targets[0].timeout: 1000h is longer than the limit of 1h at line 4",
            ),
            (
                format!("{t}    max_body_bytes: 18446744073709551615\n"),
                "config: targets[0].max_body_bytes: 18446744073709551615 bytes is outside 1 B..2.0 GiB at line 4",
            ),
            (
                format!("{t}    memory_limit: 0\n"),
                "config: targets[0].memory_limit: 0 bytes is outside 1.0 MiB..1.0 PiB at line 4",
            ),
            (
                "defaults:\n  overhead_budget: .nan\n".into(),
                "config: defaults.overhead_budget: NaN must be a finite number in 0..1 at line 2",
            ),
            (
                format!("{t}    overhead_budget: -.inf\n"),
                "config: targets[0].overhead_budget: -inf must be a share of one core, 0..1 (0 = off) at line 4",
            ),
            (
                "defaults:\n  budget_boost: 0\n".into(),
                "config: defaults.budget_boost: 0 must be a finite number in 1..100 at line 2",
            ),
            (
                "defaults:\n  memstats_text_every: 0\n".into(),
                "config: defaults.memstats_text_every: 0 must be in 1..1000 at line 2",
            ),
            (
                "defaults:\n  dumps:\n    dir: /tmp/x\n    timeout: 5000h\n".into(),
                "config: defaults.dumps.timeout: 5000h is longer than the limit of 1h at line 4",
            ),
            (
                format!("{t}    dumps:\n      retention: {{max_files: 99999999}}\n"),
                "config: targets[0].dumps.retention.max_files: 99999999 is over the limit of 1000000 at line 5",
            ),
            (
                "probe:\n  modules:\n    slow:\n      timeout: 2000h\n".into(),
                "config: probe.modules.slow.timeout: 2000h is longer than the limit of 1h at line 4",
            ),
        ];
        let mut wrong = Vec::new();
        for (yaml, want) in cases {
            match Config::from_yaml(yaml) {
                Ok(_) => wrong.push(format!("accepted {yaml:?}")),
                Err(e) if e.to_string() != *want => {
                    wrong.push(format!("for {yaml:?}\n got: {e}\nwant: {want}"))
                }
                Err(_) => {}
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        // In range: the defaults, and a short test window under the built-in warm-up.
        Config::from_yaml(&format!("{t}    window: 20s\n    interval: 100ms\n")).unwrap();
        Config::from_yaml("defaults:\n  window: 2h\n  warmup: 2h\n").unwrap();
    }

    #[test]
    fn yaml_errors_carry_the_line() {
        let err = Config::from_yaml("targets:\n  - name: a\n    url: http://x\n    gc: maybe\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 4"), "{err}");
    }
}
