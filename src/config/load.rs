//! The whole configuration: read from a file, from `--target` URLs or the built-in
//! default, resolved (every target's settings merged and checked), and sharded.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use regex::Regex;

use crate::error::{Error, Result};

use super::collectors::MetricsConfig;
use super::discover::DiscoverConfig;
use super::file::{ProbeConfig, RawConfig, RawTarget, SystemConfig};
use super::ranges::{self, Scope};
use super::settings::TargetSettings;
use super::target::{TargetConfig, parse_url};

/// The default target: the pprof convention (`import _ "net/http/pprof"` examples listen on 6060).
pub const DEFAULT_TARGET_URL: &str = "http://127.0.0.1:6060";
/// leakwatch's own default listen address. 9100-9999 is fully allocated on the
/// Prometheus default-port wiki, so leakwatch takes a port outside it.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:10760";

/// The whole resolved configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: Option<SocketAddr>,
    pub system: SystemConfig,
    pub targets: Vec<TargetConfig>,
    /// The `defaults:` section as written (unset keys take the built-in values).
    pub defaults: TargetSettings,
    pub probe: ProbeConfig,
    /// Compiled `probe.allow`, anchored.
    pub probe_allow: Vec<RegexEq>,
    /// Fleet mode (`discover:`; `--discover` turns it on).
    pub discover: DiscoverConfig,
    /// `metrics:`: which collectors of per-target series are on.
    pub metrics: MetricsConfig,
    /// Valid but unreasonable values, each naming its key (and line): logged once when
    /// the config is loaded (a reload logs only the new ones), printed by
    /// `--config.check`.
    pub warnings: Vec<String>,
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
            Some(m) => m.settings.clone(),
            None if module == "default" => TargetSettings::default(),
            None => return Err(Error::Config(format!("unknown probe module {module:?}"))),
        };
        let raw = RawTarget {
            name: "probe".to_string(),
            url: url.to_string(),
            // One shot: no budget, no goroutineleak (it costs the service a full GC).
            settings: TargetSettings {
                overhead_budget: Some(0.0),
                ..m
            },
            ..RawTarget::default()
        };
        self.resolve_one(raw)
    }

    /// The target config of a process fleet mode found: `defaults:` as its settings,
    /// its pid (so its cgroup and `/proc` are read), and its identity as labels.
    pub fn discovered_target(
        &self,
        name: &str,
        url: &reqwest::Url,
        pid: u32,
        labels: &[(&str, &str)],
    ) -> Result<TargetConfig> {
        let raw = RawTarget {
            name: name.to_string(),
            url: url.to_string(),
            pid: Some(pid),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..RawTarget::default()
        };
        self.resolve_one(raw)
    }

    /// One target outside the file (a probe, a discovered process), resolved with this
    /// config's `defaults:` and `system:` like the file's own.
    fn resolve_one(&self, raw: RawTarget) -> Result<TargetConfig> {
        let name = raw.name.clone();
        let cfg = RawConfig {
            defaults: self.defaults.clone(),
            system: self.system.clone(),
            targets: vec![raw],
            ..RawConfig::default()
        }
        .resolve()?;
        cfg.targets
            .into_iter()
            .next()
            .ok_or_else(|| Error::Config(format!("target {name:?}")))
    }

    /// Reads and validates a config file: errors and warnings start with its path.
    pub fn load(path: &Path) -> Result<Config> {
        let text = crate::files::read_config_text(path)?;
        let in_file = |msg: &str| format!("{}: {msg}", path.display());
        match Config::from_yaml(&text) {
            Ok(mut c) => {
                c.warnings = c.warnings.iter().map(|w| in_file(w)).collect();
                Ok(c)
            }
            Err(Error::Config(msg)) => Err(Error::Config(in_file(&msg))),
            Err(other) => Err(other),
        }
    }

    /// Parses and validates YAML text. An error names the key (its full path), what
    /// was expected and its line (and column, where the YAML reader knows it).
    pub fn from_yaml(text: &str) -> Result<Config> {
        let raw: RawConfig = if text.trim().is_empty() {
            serde_norway::from_str("{}")
        } else {
            serde_norway::from_str(text)
        }
        .map_err(|e| Error::Config(super::errors::parse_error(&e)))?;
        let mut config = raw.resolve().map_err(|e| match e {
            Error::Config(msg) => Error::Config(crate::error::with_line(text, msg)),
            other => other,
        })?;
        config.warnings = std::mem::take(&mut config.warnings)
            .into_iter()
            .map(|w| crate::error::with_line(text, w))
            .collect();
        Ok(config)
    }

    /// A config with the given target URLs (from `--target`), named after host:port.
    pub fn from_urls(urls: &[String]) -> Result<Config> {
        let mut targets = Vec::new();
        for u in urls {
            let url = parse_url(u, "--target")?;
            let name = match (url.host_str(), url.port_or_known_default()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_string(),
                _ => u.clone(),
            };
            let name = name.replace(['[', ']'], "");
            targets.push(RawTarget {
                name,
                url: u.clone(),
                ..RawTarget::default()
            });
        }
        RawConfig {
            targets,
            ..RawConfig::default()
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

impl RawConfig {
    fn resolve(self) -> Result<Config> {
        let mut warnings = Vec::new();
        ranges::settings("defaults", &self.defaults, Scope::Defaults, &mut warnings)?;
        let mut seen = HashSet::new();
        let mut targets = Vec::with_capacity(self.targets.len());
        for (i, t) in self.targets.into_iter().enumerate() {
            let key = format!("targets[{i}]");
            targets.push(TargetConfig::resolve(
                &key,
                t,
                &self.defaults,
                &mut seen,
                &mut warnings,
            )?);
        }
        for (name, m) in &self.probe.modules {
            ranges::settings(
                &format!("probe.modules.{name}"),
                &m.settings,
                Scope::Defaults,
                &mut warnings,
            )?;
        }
        let mut probe_allow = Vec::new();
        for (i, p) in self.probe.allow.iter().enumerate() {
            let re = super::errors::regex(&format!("probe.allow[{i}]"), p, true)?;
            probe_allow.push(RegexEq(re));
        }
        self.discover.filter()?;
        Ok(Config {
            discover: self.discover,
            metrics: self.metrics,
            listen: self.listen,
            system: self.system,
            targets,
            defaults: self.defaults,
            probe: self.probe,
            probe_allow,
            warnings,
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
    use std::time::Duration;

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
                "metrics:\n  collectors:\n    memstats_detail: true\n    memstat: false\n",
                "config: metrics.collectors: unknown value `memstat` (did you mean `memstats`?), expected one of `scrape`, `signals`, `goroutines`, `memstats`, `process`, `cgroup`, `oom`, `dumps`, `signals_detail`, `verdict_states`, `top_functions`, `goroutine_states`, `memstats_detail`, `heap_profile`, `process_detail`, `cgroup_detail`, `budget` at line 4 column 5",
            ),
            (
                "metrics:\n  collector: {}\n",
                "config: metrics: unknown key `collector` (did you mean `collectors`?), expected `collectors` at line 2 column 3",
            ),
            (
                "metrics:\n  collectors: {budget: maybe}\n",
                "config: metrics.collectors.budget: invalid type: string \"maybe\", expected true or false at line 2 column 24",
            ),
            (
                "targets:\n  - name: a\n    url: http://x\n    intervl: 1s\n",
                "config: targets[0]: unknown key `intervl` (did you mean `interval`?), expected one of `name`, `url`, `interval`, `timeout`, `max_body_bytes`, `window`, `warmup`, `startup_grace`, `heap_format`, `goroutine_format`, `gc`, `memory_limit`, `labels`, `pid`, `pid_file`, `process`, `cgroup`, `signals`, `overhead_budget`, `goroutineleak_interval`, `dumps`, `bearer_token_file`, `basic_auth`, `headers` at line 4 column 5",
            ),
            (
                "targets:\n  - name: a\n    url: http://x\n    interval: soon\n",
                "config: targets[0].interval: invalid duration \"soon\" (no number), expected a duration such as 500ms, 15s, 5m or 1h30m at line 4 column 15",
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
                "config: targets[0].url: invalid URL \"ftp://x\" (scheme ftp), expected an http or https URL such as http://127.0.0.1:6060 at line 3",
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
                "config: targets[0].process: invalid regex \"(\" (unclosed group), expected a regular expression (Rust regex syntax) at line 4",
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
                "config: defaults.interval: 0s is shorter than the minimum of 100ms at line 2",
            ),
            (
                "bogus: 1\n",
                "config: unknown key `bogus`, expected one of `listen`, `probe`, `defaults`, `system`, `targets`, `discover`, `metrics` at line 1 column 1",
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
                "defaults:\n  interval: 1ns\n".into(),
                "config: defaults.interval: 1ns is shorter than the minimum of 100ms at line 2",
            ),
            (
                format!("{t}    goroutineleak_interval: 10ms\n"),
                "config: targets[0].goroutineleak_interval: 10ms is shorter than the minimum of 1s at line 4",
            ),
            (
                format!("{t}    dumps:\n      dir: /tmp/x\n      heap_every: 1ms\n"),
                "config: targets[0].dumps.heap_every: 1ms is shorter than the minimum of 1s at line 6",
            ),
            (
                "defaults:\n  dumps:\n    goroutine_every: 500ms\n".into(),
                "config: defaults.dumps.goroutine_every: 500ms is shorter than the minimum of 1s at line 3",
            ),
            (
                format!("{t}    dumps: {{cooldown: 0s}}\n"),
                "config: targets[0].dumps.cooldown: 0s is shorter than the minimum of 1s at line 4",
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
