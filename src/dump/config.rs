//! Dump settings: the `dumps:` block of the config file (`defaults.dumps`, overridden
//! per target), with its defaults and validation.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::profile::ProfileType;
use crate::error::{Error, Result};
use crate::units::{ByteSize, de_duration, de_every, de_some_duration, de_some_every};

/// Dump settings of one target (`defaults.dumps` overridden by `targets[].dumps`).
///
/// ```yaml
/// dumps:
///   dir: /var/lib/leakwatch/dumps   # absent = dumps off
///   heap_every: 5m                  # "off" (or 0s) = no scheduled heap dumps
///   goroutine_every: 30m
///   on_suspect: true                # baseline at first contact + pair on suspicion
///   cooldown: 10m                   # at most one suspect pair, one pre_oom pair per cooldown
///   max_bytes: 100MiB               # one dump; bigger is aborted while streaming
///   timeout: 30s                    # one dump request, body included
///   retention: {max_files: 50, max_bytes: 1GiB}   # per target, profile type and pool
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DumpConfig {
    /// Root of the dump tree; each target writes under `<dir>/<target>/`. None = off.
    pub dir: Option<PathBuf>,
    /// Period of scheduled heap dumps; None = no scheduled heap dumps.
    #[serde(deserialize_with = "de_every")]
    pub heap_every: Option<Duration>,
    /// Period of scheduled goroutine dumps; None = no scheduled goroutine dumps.
    #[serde(deserialize_with = "de_every")]
    pub goroutine_every: Option<Duration>,
    /// Take a baseline heap dump at first contact and a fresh pair when a leak is suspected.
    pub on_suspect: bool,
    /// Minimum time between two suspect dumps of a target, and between two `pre_oom`
    /// pairs (also between two manual dumps of one profile).
    #[serde(deserialize_with = "de_duration")]
    pub cooldown: Duration,
    /// Largest dump accepted; a bigger body is abandoned while streaming.
    pub max_bytes: ByteSize,
    /// Time one dump request may take, body included.
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
    pub retention: Retention,
}

impl Default for DumpConfig {
    fn default() -> Self {
        DumpConfig {
            dir: None,
            heap_every: Some(Duration::from_secs(5 * 60)),
            goroutine_every: Some(Duration::from_secs(30 * 60)),
            on_suspect: true,
            cooldown: Duration::from_secs(10 * 60),
            max_bytes: ByteSize::mib(100),
            timeout: Duration::from_secs(30),
            retention: Retention::default(),
        }
    }
}

/// How many dumps are kept, per target and per profile type.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    pub max_files: usize,
    pub max_bytes: ByteSize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_files: 50,
            max_bytes: ByteSize::gib(1),
        }
    }
}

/// A target's `dumps:` block: every key optional, unset keys come from `defaults.dumps`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DumpOverrides {
    #[serde(default)]
    pub dir: Option<PathBuf>,
    #[serde(default, deserialize_with = "de_some_every")]
    pub heap_every: Option<Option<Duration>>,
    #[serde(default, deserialize_with = "de_some_every")]
    pub goroutine_every: Option<Option<Duration>>,
    #[serde(default)]
    pub on_suspect: Option<bool>,
    #[serde(default, deserialize_with = "de_some_duration")]
    pub cooldown: Option<Duration>,
    #[serde(default)]
    pub max_bytes: Option<ByteSize>,
    #[serde(default, deserialize_with = "de_some_duration")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub retention: Option<RetentionOverrides>,
}

/// A target's `dumps.retention:` block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionOverrides {
    #[serde(default)]
    pub max_files: Option<usize>,
    #[serde(default)]
    pub max_bytes: Option<ByteSize>,
}

impl DumpOverrides {
    /// The target's settings: its own keys over `base` (the resolved defaults).
    pub fn apply(&self, base: &DumpConfig) -> DumpConfig {
        let r = self.retention.unwrap_or_default();
        DumpConfig {
            dir: self.dir.clone().or_else(|| base.dir.clone()),
            heap_every: self.heap_every.unwrap_or(base.heap_every),
            goroutine_every: self.goroutine_every.unwrap_or(base.goroutine_every),
            on_suspect: self.on_suspect.unwrap_or(base.on_suspect),
            cooldown: self.cooldown.unwrap_or(base.cooldown),
            max_bytes: self.max_bytes.unwrap_or(base.max_bytes),
            timeout: self.timeout.unwrap_or(base.timeout),
            retention: Retention {
                max_files: r.max_files.unwrap_or(base.retention.max_files),
                max_bytes: r.max_bytes.unwrap_or(base.retention.max_bytes),
            },
        }
    }

    /// These keys over `base`'s (a target's block over the `defaults:` one).
    pub fn or(&self, base: &DumpOverrides) -> DumpOverrides {
        DumpOverrides {
            dir: self.dir.clone().or_else(|| base.dir.clone()),
            heap_every: self.heap_every.or(base.heap_every),
            goroutine_every: self.goroutine_every.or(base.goroutine_every),
            on_suspect: self.on_suspect.or(base.on_suspect),
            cooldown: self.cooldown.or(base.cooldown),
            max_bytes: self.max_bytes.or(base.max_bytes),
            timeout: self.timeout.or(base.timeout),
            retention: match (self.retention, base.retention) {
                (Some(top), Some(base)) => Some(RetentionOverrides {
                    max_files: top.max_files.or(base.max_files),
                    max_bytes: top.max_bytes.or(base.max_bytes),
                }),
                (top, base) => top.or(base),
            },
        }
    }
}

impl DumpConfig {
    /// Checks values serde cannot; `key` is the config path for the message
    /// (`defaults.dumps`, `targets[2].dumps`).
    pub fn validate(&self, key: &str) -> Result<()> {
        if self.max_bytes.as_u64() == 0 {
            return Err(Error::Config(format!("{key}.max_bytes: must be > 0")));
        }
        if self.timeout.is_zero() {
            return Err(Error::Config(format!(
                "{key}.timeout: must be greater than 0"
            )));
        }
        if self.retention.max_files == 0 {
            return Err(Error::Config(format!(
                "{key}.retention.max_files: must be at least 1"
            )));
        }
        if self.retention.max_bytes.as_u64() == 0 {
            return Err(Error::Config(format!(
                "{key}.retention.max_bytes: must be > 0"
            )));
        }
        if let Some(dir) = &self.dir
            && dir.as_os_str().is_empty()
        {
            return Err(Error::Config(format!(
                "{key}.dir: must not be empty (leave it out to turn dumps off)"
            )));
        }
        Ok(())
    }

    /// The schedule period of a profile type.
    pub fn every(&self, profile: ProfileType) -> Option<Duration> {
        match profile {
            ProfileType::Heap => self.heap_every,
            ProfileType::Goroutine => self.goroutine_every,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_overrides_and_errors() {
        let d: DumpConfig = serde_norway::from_str("dir: /var/dumps\nheap_every: 1m\n").unwrap();
        assert_eq!(d.dir, Some(PathBuf::from("/var/dumps")));
        assert_eq!(d.heap_every, Some(Duration::from_secs(60)));
        assert_eq!(d.goroutine_every, Some(Duration::from_secs(1800)));
        assert_eq!(d.cooldown, Duration::from_secs(600));
        assert_eq!(d.max_bytes.as_u64(), 100 * 1024 * 1024);
        assert_eq!(d.retention.max_files, 50);
        assert_eq!(d.retention.max_bytes.as_u64(), 1024 * 1024 * 1024);
        assert!(d.on_suspect);

        let o: DumpOverrides = serde_norway::from_str(
            "goroutine_every: off\nmax_bytes: 1MiB\nretention: {max_files: 3}\n",
        )
        .unwrap();
        let t = o.apply(&d);
        assert_eq!(t.dir, d.dir);
        assert_eq!(t.heap_every, Some(Duration::from_secs(60)));
        assert_eq!(t.goroutine_every, None);
        assert_eq!(t.max_bytes.as_u64(), 1024 * 1024);
        assert_eq!(t.retention.max_files, 3);
        assert_eq!(t.retention.max_bytes, d.retention.max_bytes);

        let cases: &[(&str, &str)] = &[
            ("heap_evry: 1m\n", "unknown field `heap_evry`"),
            ("heap_every: soon\n", "invalid duration \"soon\""),
            ("retention: {max_file: 1}\n", "unknown field `max_file`"),
        ];
        for (yaml, want) in cases {
            let err = serde_norway::from_str::<DumpConfig>(yaml)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{yaml:?}: {err}");
        }
        let bad = |f: fn(&mut DumpConfig)| {
            let mut c = DumpConfig::default();
            f(&mut c);
            c.validate("defaults.dumps").unwrap_err().to_string()
        };
        assert_eq!(
            bad(|c| c.max_bytes = ByteSize::b(0)),
            "config: defaults.dumps.max_bytes: must be > 0"
        );
        assert_eq!(
            bad(|c| c.retention.max_files = 0),
            "config: defaults.dumps.retention.max_files: must be at least 1"
        );
        assert_eq!(
            bad(|c| c.timeout = Duration::ZERO),
            "config: defaults.dumps.timeout: must be greater than 0"
        );
        DumpConfig::default().validate("x").unwrap();
    }
}
