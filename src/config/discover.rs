//! The `discover:` section: fleet mode's switch, rescan interval, cap on discovered
//! targets and the allow/deny rules that pick which Go processes are watched; and
//! what fleet mode reports of its last rescan under them ([`DiscoverReport`], for
//! `/metrics`, as [`super::ReloadStatus`] is for reloads).

use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::units::de_duration;

/// Fleet mode (`--discover`): every Go process on this node that serves
/// `net/http/pprof` becomes a target, with `defaults:` as its settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoverConfig {
    /// Whether fleet mode is on (`--discover` turns it on too).
    pub enabled: bool,
    /// Time between scans of `/proc` for new and gone processes.
    #[serde(deserialize_with = "de_duration")]
    pub rescan_interval: Duration,
    /// Most discovered targets watched at once; more are logged and counted
    /// ([`Refusal::MaxTargets`]), not watched.
    pub max_targets: usize,
    /// Most listening ports of one process asked for pprof.
    pub max_ports_per_process: usize,
    /// A process is watched when it matches one of these (none: every process)...
    pub allow: Vec<DiscoverRule>,
    /// ...and none of these.
    pub deny: Vec<DiscoverRule>,
}

impl Default for DiscoverConfig {
    fn default() -> Self {
        DiscoverConfig {
            enabled: false,
            rescan_interval: Duration::from_secs(30),
            max_targets: 200,
            max_ports_per_process: 8,
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }
}

/// One allow or deny rule: every key given must match (regexes match in full).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoverRule {
    /// Kubernetes namespace of the process's pod.
    pub namespace: Option<String>,
    /// Pod name.
    pub pod: Option<String>,
    /// Container name.
    pub container: Option<String>,
    /// The executable's path (`/proc/PID/exe`).
    pub exe: Option<String>,
    /// The listening port.
    pub port: Option<u16>,
}

/// What a rule is matched against: a discovered process and one of its ports.
#[derive(Debug, Clone, Copy, Default)]
pub struct Candidate<'a> {
    pub namespace: Option<&'a str>,
    pub pod: Option<&'a str>,
    pub container: Option<&'a str>,
    pub exe: &'a str,
    pub port: u16,
}

/// A rule with its regexes compiled (anchored).
#[derive(Debug, Clone)]
struct CompiledRule {
    namespace: Option<Regex>,
    pod: Option<Regex>,
    container: Option<Regex>,
    exe: Option<Regex>,
    port: Option<u16>,
}

impl CompiledRule {
    fn matches(&self, c: &Candidate<'_>) -> bool {
        let field = |re: &Option<Regex>, v: Option<&str>| {
            re.as_ref()
                .is_none_or(|re| v.is_some_and(|v| re.is_match(v)))
        };
        field(&self.namespace, c.namespace)
            && field(&self.pod, c.pod)
            && field(&self.container, c.container)
            && field(&self.exe, Some(c.exe))
            && self.port.is_none_or(|p| p == c.port)
    }
}

/// The allow and deny rules, compiled.
#[derive(Debug, Clone)]
pub struct DiscoverFilter {
    allow: Vec<CompiledRule>,
    deny: Vec<CompiledRule>,
}

impl DiscoverFilter {
    /// Whether `c` is watched: allowed (or no allow rules) and not denied.
    pub fn admits(&self, c: &Candidate<'_>) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|r| r.matches(c)))
            && !self.deny.iter().any(|r| r.matches(c))
    }
}

impl DiscoverConfig {
    /// Checks the values and compiles the rules; errors name the key.
    pub fn filter(&self) -> Result<DiscoverFilter> {
        super::ranges::duration_at_least(
            "discover.rescan_interval",
            self.rescan_interval,
            Duration::from_secs(1),
            super::ranges::MAX_INTERVAL,
        )?;
        for (key, n) in [
            ("max_targets", self.max_targets),
            ("max_ports_per_process", self.max_ports_per_process),
        ] {
            if n == 0 {
                return Err(Error::Config(format!("discover.{key}: must be at least 1")));
            }
        }
        let compile = |list: &[DiscoverRule], key: &str| -> Result<Vec<CompiledRule>> {
            list.iter()
                .enumerate()
                .map(|(i, r)| {
                    let re = |field: &str, v: &Option<String>| -> Result<Option<Regex>> {
                        v.as_ref()
                            .map(|p| {
                                super::errors::regex(
                                    &format!("discover.{key}[{i}].{field}"),
                                    p,
                                    true,
                                )
                            })
                            .transpose()
                    };
                    Ok(CompiledRule {
                        namespace: re("namespace", &r.namespace)?,
                        pod: re("pod", &r.pod)?,
                        container: re("container", &r.container)?,
                        exe: re("exe", &r.exe)?,
                        port: r.port,
                    })
                })
                .collect()
        };
        Ok(DiscoverFilter {
            allow: compile(&self.allow, "allow")?,
            deny: compile(&self.deny, "deny")?,
        })
    }
}

/// Why a listening port of a Go process is not watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Refusal {
    /// Over `max_targets`: asked again every rescan, adopted when room frees up.
    MaxTargets,
    /// Past the process's first `max_ports_per_process` ports: never asked.
    MaxPortsPerProcess,
    /// Not allowed by `allow`, or matched by `deny`.
    Denied,
    /// Its network namespace could not be entered (or read).
    Unreachable,
    /// `/debug/pprof/cmdline` did not answer 200: not HTTP, no pprof, or too slow.
    NoPprof,
    /// Serves pprof for another command line: a port forwarder or proxy.
    CmdlineMismatch,
}

impl Refusal {
    pub const ALL: [Refusal; 6] = [
        Refusal::MaxTargets,
        Refusal::MaxPortsPerProcess,
        Refusal::Denied,
        Refusal::Unreachable,
        Refusal::NoPprof,
        Refusal::CmdlineMismatch,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::MaxTargets => "max_targets",
            Refusal::MaxPortsPerProcess => "max_ports_per_process",
            Refusal::Denied => "denied",
            Refusal::Unreachable => "unreachable",
            Refusal::NoPprof => "no_pprof",
            Refusal::CmdlineMismatch => "cmdline_mismatch",
        }
    }

    /// Whether the refusal stands until the process ends (else it is decided again at
    /// every rescan: the caps depend on what else is watched and listening).
    pub fn remembered(self) -> bool {
        !matches!(self, Refusal::MaxTargets | Refusal::MaxPortsPerProcess)
    }
}

/// Why a process is skipped after one look, until it restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Skip {
    /// Its executable carries no Go build info.
    NotGo,
    /// Its executable cannot be read (no ptrace access to it) or is a broken ELF file.
    Unreadable,
}

impl Skip {
    pub const ALL: [Skip; 2] = [Skip::NotGo, Skip::Unreadable];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::NotGo => "not_go",
            Skip::Unreadable => "unreadable",
        }
    }
}

/// What fleet mode found at its last rescan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiscoverReport {
    /// Process ports watched now.
    pub targets: usize,
    /// Go processes with a listening TCP socket.
    pub go_processes: usize,
    /// Processes skipped, by why (each counted once).
    pub skipped: Vec<(Skip, usize)>,
    /// Listening ports of Go processes not watched, by why (each counted once).
    pub refused: Vec<(Refusal, usize)>,
    /// Rescans completed since start.
    pub rescans: u64,
    /// How long the last rescan took (the `/proc` walk and the new ports' checks).
    pub last_rescan_seconds: f64,
}

impl DiscoverReport {
    /// Ports refused for `why` at the last rescan.
    pub fn refused(&self, why: Refusal) -> usize {
        self.refused
            .iter()
            .find(|(r, _)| *r == why)
            .map_or(0, |(_, n)| *n)
    }

    /// Processes skipped for `why`.
    pub fn skipped(&self, why: Skip) -> usize {
        self.skipped
            .iter()
            .find(|(s, _)| *s == why)
            .map_or(0, |(_, n)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(yaml: &str) -> Result<DiscoverFilter> {
        let c: DiscoverConfig =
            serde_norway::from_str(yaml).map_err(|e| Error::Config(e.to_string()))?;
        c.filter()
    }

    #[test]
    fn rules_allow_and_deny() {
        let orders = Candidate {
            namespace: Some("payments"),
            pod: Some("orders-7d9f"),
            container: Some("orders"),
            exe: "/app/orders",
            port: 6060,
        };
        let bare = Candidate {
            exe: "/usr/bin/prometheus",
            port: 9090,
            ..Candidate::default()
        };
        // (rules, orders admitted, bare process admitted)
        let cases = [
            ("{}", true, true),
            ("allow: [{namespace: payments}]", true, false),
            ("allow: [{namespace: 'pay.*'}]", true, false),
            ("allow: [{namespace: pay}]", false, false),
            ("deny: [{namespace: kube-system}]", true, true),
            ("deny: [{port: 9090}]", true, false),
            ("deny: [{exe: '.*/prometheus'}]", true, false),
            ("allow: [{exe: '/app/.*', port: 6060}]", true, false),
            ("allow: [{exe: '/app/.*', port: 6061}]", false, false),
            ("allow: [{}]", true, true),
            (
                "{allow: [{namespace: payments}], deny: [{pod: 'orders-.*'}]}",
                false,
                false,
            ),
        ];
        for (yaml, want_orders, want_bare) in cases {
            let f = filter(yaml).unwrap();
            assert_eq!(f.admits(&orders), want_orders, "{yaml}: orders");
            assert_eq!(f.admits(&bare), want_bare, "{yaml}: bare");
        }
    }

    #[test]
    fn bad_values_are_errors_naming_the_key() {
        let cases = [
            ("rescan_interval: 10ms", "discover.rescan_interval"),
            ("max_targets: 0", "discover.max_targets"),
            ("deny: [{exe: '('}]", "discover.deny[0].exe: invalid regex"),
            (
                "allow: [{}, {pod: '['}]",
                "discover.allow[1].pod: invalid regex",
            ),
            ("allow: [{image: x}]", "unknown field `image`"),
            ("enable: true", "unknown field `enable`"),
        ];
        for (yaml, want) in cases {
            let err = filter(yaml).unwrap_err().to_string();
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }

    #[test]
    fn defaults_work_untouched() {
        let c = DiscoverConfig::default();
        assert!(!c.enabled);
        assert_eq!(c.rescan_interval, Duration::from_secs(30));
        assert!(c.filter().is_ok());
    }
}
