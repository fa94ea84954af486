//! The config file's shape: its sections and the keys each accepts (unknown keys are
//! refused), before defaults are merged and values checked.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::MapAccess;

use super::section::{self, Section};
use super::settings::TargetSettings;

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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeModule {
    /// Only the request keys: `timeout`, `max_body_bytes`, `heap_format`, `goroutine_format`.
    pub settings: TargetSettings,
}

impl Section for ProbeModule {
    const NAME: &'static str = "ProbeModule";
    const KEYS: &'static [&'static str] = &[
        "timeout",
        "max_body_bytes",
        "heap_format",
        "goroutine_format",
    ];

    fn settings(&mut self) -> &mut TargetSettings {
        &mut self.settings
    }
}

impl<'de> Deserialize<'de> for ProbeModule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        section::deserialize(d)
    }
}

/// A target as written in the file: `name`, `url`, what identifies its process and how
/// to authenticate (its own keys), and the settings it does not inherit.
#[derive(Debug, Clone, Default)]
pub(super) struct RawTarget {
    pub name: String,
    pub url: String,
    pub settings: TargetSettings,
    pub labels: BTreeMap<String, String>,
    pub pid: Option<u32>,
    pub pid_file: Option<PathBuf>,
    pub process: Option<String>,
    pub cgroup: Option<String>,
    pub auth: crate::scrape::RequestAuth,
}

impl Section for RawTarget {
    const NAME: &'static str = "RawTarget";
    const KEYS: &'static [&'static str] = &[
        "name",
        "url",
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
        "labels",
        "pid",
        "pid_file",
        "process",
        "cgroup",
        "signals",
        "overhead_budget",
        "goroutineleak_interval",
        "dumps",
        "bearer_token_file",
        "basic_auth",
        "headers",
    ];
    const REQUIRED: &'static [&'static str] = &["name", "url"];

    fn settings(&mut self) -> &mut TargetSettings {
        &mut self.settings
    }

    fn read_own<'de, A: MapAccess<'de>>(
        &mut self,
        key: &'static str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        match key {
            "name" => self.name = map.next_value()?,
            "url" => self.url = map.next_value()?,
            "labels" => self.labels = map.next_value()?,
            "pid" => self.pid = map.next_value()?,
            "pid_file" => self.pid_file = map.next_value()?,
            "process" => self.process = map.next_value()?,
            "cgroup" => self.cgroup = map.next_value()?,
            "bearer_token_file" => self.auth.bearer_token_file = map.next_value()?,
            "basic_auth" => self.auth.basic_auth = map.next_value()?,
            "headers" => self.auth.headers = map.next_value()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl<'de> Deserialize<'de> for RawTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        section::deserialize(d)
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default, deserialize_with = "de_listen")]
    pub listen: Option<SocketAddr>,
    #[serde(default)]
    pub probe: ProbeConfig,
    #[serde(default)]
    pub defaults: TargetSettings,
    #[serde(default)]
    pub system: SystemConfig,
    #[serde(default)]
    pub targets: Vec<RawTarget>,
    #[serde(default)]
    pub discover: super::discover::DiscoverConfig,
    #[serde(default)]
    pub metrics: super::collectors::MetricsConfig,
}

/// `listen:` as an IP address and port, the error saying so.
fn de_listen<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    struct Listen;
    impl serde::de::Visitor<'_> for Listen {
        type Value = Option<SocketAddr>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(LISTEN_EXPECTED)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            v.parse().map(Some).map_err(|_| {
                E::custom(format!("invalid address {v:?}, expected {LISTEN_EXPECTED}"))
            })
        }
    }
    d.deserialize_any(Listen)
}

const LISTEN_EXPECTED: &str = "an IP address and port such as 127.0.0.1:10760 or [::]:10760";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key a section lists is read: as its own or as a setting.
    #[test]
    fn every_listed_key_is_read() {
        let mut yaml = String::new();
        for key in RawTarget::KEYS {
            let value = match *key {
                "name" => "a",
                "url" => "http://x",
                "labels" | "headers" => "{}",
                _ => "~",
            };
            yaml.push_str(&format!("{key}: {value}\n"));
        }
        let t: RawTarget = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(
            (t.name.as_str(), t.settings),
            ("a", TargetSettings::default())
        );
        let yaml: String = ProbeModule::KEYS
            .iter()
            .map(|k| format!("{k}: ~\n"))
            .collect();
        serde_norway::from_str::<ProbeModule>(&yaml).unwrap();
    }

    /// A section is as strict as a derived struct: each key once, the required ones
    /// present, a bad value at its own line.
    #[test]
    fn sections_are_strict() {
        let cases = [
            ("timeout: 1s\ntimeout: 2s\n", "duplicate field `timeout`"),
            (
                "heap_format: text\ninterval: 1s\n",
                "unknown field `interval`, expected one of `timeout`, `max_body_bytes`, `heap_format`, `goroutine_format` at line 2 column 1",
            ),
            (
                "max_body_bytes: 1MiB\ntimeout: soon\n",
                "timeout: invalid duration \"soon\" (no number), expected a duration such as 500ms, 15s, 5m or 1h30m at line 2 column 10",
            ),
            (
                "5",
                "invalid type: integer `5`, expected struct ProbeModule",
            ),
        ];
        for (yaml, want) in cases {
            let err = serde_norway::from_str::<ProbeModule>(yaml).unwrap_err();
            assert_eq!(err.to_string(), want, "{yaml:?}");
        }
        let m: ProbeModule = serde_norway::from_str("timeout: 1s\nheap_format: text\n").unwrap();
        assert_eq!(m.settings.timeout, Some(std::time::Duration::from_secs(1)));
        assert_eq!(
            m.settings.heap_format,
            Some(crate::config::HeapFormat::Text)
        );
        let err = serde_norway::from_str::<RawTarget>("name: a\n").unwrap_err();
        assert_eq!(err.to_string(), "missing field `url`");
    }
}
