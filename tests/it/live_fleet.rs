//! live_defaults' fleet pod (issue 22): a fast leak in a "pod" laid out as a kubelet
//! does (its own network, UTS and mount namespaces, its pprof bound to the pod's
//! `127.0.0.1`, a kubelet-shaped memory cgroup with a limit), found by a second
//! leakwatch run with `--discover` and no target configuration (defaults, an allow rule
//! for the pod's name, a dump dir, the kernel log), scraped by live_defaults' Prometheus
//! with the shipped rules. It runs side by side with the other scenarios.
//!
//! Checked: the pod is discovered with its pod labels and its cgroup's limit; it is
//! paged (with its `pod` label) before the kernel's OOM kill, with a `pre_oom` heap
//! dump before it and a report page that names it; the kill is attributed to
//! its discovered target and paged as LeakwatchContainerOOMKilled; and the config-driven
//! leakwatch, whose services run in the cgroup above the pod's, gives the kill to none
//! of its targets.

use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::pods::{Killed, PodCgroup, start_pod, watched};
use crate::stack::Webhook;
use crate::support::{Leakwatch, Metrics, free_port};

/// The pod's name (its hostname): a Deployment's pod.
pub const POD: &str = "checkout-6f9d4b7c5-x2k8q";
/// The pod's limit: the fast leak (256 KiB every 500 ms, about 31 MiB of usage a
/// minute) reaches it about 10 minutes after its start.
const LIMIT: u64 = 320 << 20;
/// The leak: `fast`'s.
const FLAGS: &str = "-mode heap -interval 500ms -per-tick 1 -size 256KiB";
/// Leak alerts and the time-to-OOM page: any of them pages the pod.
const PAGES: [&str; 4] = [
    "LeakwatchTimeToOOM",
    "LeakwatchHeapLeakSuspected",
    "LeakwatchGoroutineLeakSuspected",
    "LeakwatchHTTPConnectionLeakSuspected",
];

type Check = (String, Result<String, String>);

pub struct FleetPod {
    pod: Killed,
    cg: PodCgroup,
    uid: String,
    pub started: Instant,
    pub lw: Leakwatch,
    /// The discovered target: (name, labels of its `leakwatch_up`), and when first seen.
    found: Option<(String, std::collections::BTreeMap<String, String>, Instant)>,
    /// The limit leakwatch reports for it: (source, bytes).
    limit: Option<(String, f64)>,
    /// When and how the pod's process ended, and its cgroup's own OOM-kill count.
    kill: Option<(Instant, ExitStatus, Option<u64>)>,
    /// Its `leakwatch_oom_kills_total` after the kill, and when first >= 1.
    attributed: Option<(f64, Instant)>,
    /// Dumps written for it: `leakwatch_pprof_dump_total` by reason (heap, success).
    pre_oom_dumps: Option<f64>,
    /// When a `pre_oom` heap dump was first counted.
    pre_oom_at: Option<Instant>,
    /// Its report page (`/targets/NAME`) read while the pod ran: status, heap verdict.
    report: Option<(u16, Option<String>, bool)>,
}

impl FleetPod {
    /// Starts the pod (cgroup first, then the process in it) and a `--discover`
    /// leakwatch writing its dumps under `dir`.
    pub fn start(leaky: &Path, dir: &Path, kernel_log: bool) -> FleetPod {
        let tag = std::process::id();
        let uid = format!("5f2c9a1e-7b3d-4c8e-a1f0-{tag:012}");
        let cg = PodCgroup::create(&uid, &format!("{:0>64}", format!("c0ffee{tag:x}")), LIMIT);
        let started = Instant::now();
        let pod = start_pod(
            leaky,
            &cg,
            POD,
            ("127.0.0.1", free_port()),
            FLAGS,
            &dir.join("fleet-pod.log"),
        );
        let mut config = format!(
            "defaults:\n  dumps:\n    dir: {:?}\ndiscover:\n  allow:\n    - pod: \"checkout-.*\"\n",
            dir.join("fleet-dumps")
        );
        if kernel_log {
            config.push_str("system:\n  kernel_log: /dev/kmsg\n");
        }
        let lw = Leakwatch::start_with_args(&config, &["--discover"]);
        FleetPod {
            pod,
            cg,
            uid,
            started,
            lw,
            found: None,
            limit: None,
            kill: None,
            attributed: None,
            pre_oom_dumps: None,
            pre_oom_at: None,
            report: None,
        }
    }

    /// The scrape job for live_defaults' Prometheus (its rules are the shipped ones).
    pub fn scrape_job(&self) -> String {
        format!(
            "  - job_name: leakwatch-fleet\n    static_configs:\n      - targets: [{:?}]\n",
            self.lw.url.trim_start_matches("http://")
        )
    }

    pub fn target(&self) -> Option<&str> {
        self.found.as_ref().map(|(n, _, _)| n.as_str())
    }

    /// Every 5 s: what the fleet leakwatch says, and whether the pod still runs.
    pub fn poll(&mut self) {
        let now = Instant::now();
        if self.kill.is_none()
            && let Ok(Some(status)) = self.pod.0.try_wait()
        {
            let kills =
                std::fs::read_to_string(self.cg.procs().with_file_name("memory.oom_control"))
                    .ok()
                    .and_then(|t| {
                        t.lines()
                            .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
                    });
            eprintln!(
                "live_defaults: fleet pod ended {:.2} min after its start: {status:?} (cgroup oom_kill {kills:?})",
                (now - self.started).as_secs_f64() / 60.0
            );
            self.kill = Some((now, status, kills));
        }
        let m = self.lw.metrics();
        let pid = self.pod.0.id();
        if self.found.is_none()
            && let Some((name, (_, labels))) = watched(&m).into_iter().find(|(_, (p, _))| *p == pid)
        {
            eprintln!(
                "live_defaults: fleet pod discovered as {name} {:.1}s after its start: {labels:?}",
                (now - self.started).as_secs_f64()
            );
            self.found = Some((name, labels, now));
        }
        let Some(name) = self.target().map(str::to_string) else {
            return;
        };
        if let Some((l, v)) = m
            .series("leakwatch_memory_limit_bytes")
            .into_iter()
            .find(|(l, _)| l.get("target") == Some(&name))
        {
            self.limit = Some((l.get("source").cloned().unwrap_or_default(), v));
        }
        let kills = m.get("leakwatch_oom_kills_total", &[("target", &name)]);
        if let Some(k) = kills.filter(|k| *k >= 1.0)
            && self.attributed.is_none()
        {
            self.attributed = Some((k, now));
        }
        let dumps = m.get(
            "leakwatch_pprof_dump_total",
            &[
                ("target", &name),
                ("profile_type", "heap"),
                ("reason", "pre_oom"),
                ("result", "success"),
            ],
        );
        if dumps.is_some() {
            self.pre_oom_dumps = dumps;
        }
        if dumps.is_some_and(|d| d >= 1.0) && self.pre_oom_at.is_none() {
            self.pre_oom_at = Some(now);
        }
        // The report page, while the pod runs: its last reading before the kill.
        if self.kill.is_none() {
            let (status, body) = self.lw.get(&format!("/targets/{name}"));
            let page = String::from_utf8_lossy(&body).into_owned();
            let heap = crate::live_defaults::report_state(&page, "heap");
            self.report = Some((status, heap, page.contains(POD)));
        }
    }

    /// The checks, given the webhook and the config-driven leakwatch's last metrics.
    pub fn checks(&self, webhook: &Webhook, main: &Metrics, main_killed: &[&str]) -> Vec<Check> {
        let min = |d: Duration| d.as_secs_f64() / 60.0;
        let mut out: Vec<Check> = Vec::new();
        let Some((name, labels, found_at)) = &self.found else {
            out.push((
                "(j) the fleet pod is discovered by leakwatch --discover".into(),
                Err(format!(
                    "never; leakwatch --discover's log:\n{}",
                    tail(&self.lw.stderr(), 30)
                )),
            ));
            return out;
        };
        out.push((
            "(j) the fleet pod is discovered with its pod labels and its cgroup's limit".into(),
            {
                let want = [
                    ("pod", POD.to_string()),
                    ("pod_uid", self.uid.clone()),
                    ("container_id", self.cg.id.clone()),
                ];
                let wrong: Vec<String> = want
                    .iter()
                    .filter(|(k, v)| labels.get(*k) != Some(v))
                    .map(|(k, v)| format!("{k}: {:?}, want {v:?}", labels.get(*k)))
                    .collect();
                let limit_ok = self
                    .limit
                    .as_ref()
                    .is_some_and(|(s, v)| s == "cgroup" && *v as u64 == LIMIT);
                if wrong.is_empty() && limit_ok {
                    Ok(format!(
                        "{name} at {:.1} s after the pod's start, limit {:?}",
                        (*found_at - self.started).as_secs_f64(),
                        self.limit
                    ))
                } else {
                    Err(format!(
                        "{wrong:?}; limit {:?}; labels {labels:?}",
                        self.limit
                    ))
                }
            },
        ));
        let pages: Vec<(Instant, String, String, String)> = {
            let mut v: Vec<_> = webhook
                .alerts()
                .into_iter()
                .filter(|(_, a)| a["status"] == "firing" && a["labels"]["target"] == name.as_str())
                .map(|(at, a)| {
                    let s = |k: &str| a["labels"][k].as_str().unwrap_or_default().to_string();
                    (at, s("alertname"), s("severity"), s("pod"))
                })
                .collect();
            v.sort_by_key(|p| p.0);
            v
        };
        let all: Vec<String> = pages
            .iter()
            .map(|(at, a, s, p)| format!("{a}/{s} pod={p:?} at {:.1} min", min(*at - self.started)))
            .collect();
        let killed = self.kill.as_ref().filter(|(_, status, kills)| {
            std::os::unix::process::ExitStatusExt::signal(status) == Some(9)
                && kills.unwrap_or(0) >= 1
        });
        out.push((
            "(j) the fleet pod is OOM-killed by the kernel within the run (the scenario itself)"
                .into(),
            match (&self.kill, killed) {
                (_, Some((at, _, k))) => Ok(format!(
                    "at {:.2} min, cgroup oom_kill {k:?}",
                    min(*at - self.started)
                )),
                (Some((_, st, k)), None) => {
                    Err(format!("ended with {st:?}, cgroup oom_kill {k:?}"))
                }
                (None, _) => Err("still running at the end: recalibrate its LIMIT".into()),
            },
        ));
        let page = pages
            .iter()
            .find(|(_, a, s, p)| {
                PAGES.contains(&a.as_str()) && (s == "critical" || s == "warning") && p == POD
            })
            .map(|p| p.0);
        out.push((
            "(j) the fleet pod is paged (with its pod label) before its OOM kill".into(),
            match (page, killed) {
                (Some(p), Some((at, _, _))) if p < *at => Ok(format!(
                    "paged at {:.2} min, {:.2} min before the kill; pages {all:?}",
                    min(p - self.started),
                    min(*at - p)
                )),
                _ => Err(format!("pages {all:?}")),
            },
        ));
        out.push((
            "(j) the fleet pod's kill is attributed to its discovered target and paged".into(),
            {
                let oom_page = pages
                    .iter()
                    .find(|(_, a, _, _)| a == "LeakwatchContainerOOMKilled")
                    .map(|p| p.0);
                match (self.attributed, oom_page) {
                    (Some((k, at)), Some(p)) => Ok(format!(
                        "leakwatch_oom_kills_total {k} at {:.2} min; LeakwatchContainerOOMKilled at {:.2} min",
                        min(at - self.started),
                        min(p - self.started)
                    )),
                    (a, p) => Err(format!(
                        "oom_kills_total {a:?}, LeakwatchContainerOOMKilled {:?}; pages {all:?}",
                        p.map(|p| min(p - self.started))
                    )),
                }
            },
        ));
        out.push((
            "(j) the fleet pod got a pre_oom heap dump before its kill".into(),
            match (self.pre_oom_at, killed) {
                (Some(d), Some((at, _, _))) if d < *at => Ok(format!(
                    "{:?} dump(s), the first counted {:.2} min before the kill",
                    self.pre_oom_dumps,
                    min(*at - d)
                )),
                (d, _) => Err(format!(
                    "pre_oom dumps {:?}, first counted at {:?} min",
                    self.pre_oom_dumps,
                    d.map(|d| min(d - self.started))
                )),
            },
        ));
        out.push((
            "(j) the fleet pod's report page is served, names its pod and judges its heap".into(),
            match &self.report {
                Some((200, Some(heap), true)) => {
                    Ok(format!("last read before the kill: heap {heap}"))
                }
                other => Err(format!("(status, heap state, names the pod): {other:?}")),
            },
        ));
        // The config-driven leakwatch's services run in the cgroup above the pod's:
        // the pod's kill is not theirs.
        let wrongly: Vec<String> = main
            .series("leakwatch_oom_kills_total")
            .into_iter()
            .filter(|(l, v)| {
                *v > 0.0
                    && !l
                        .get("target")
                        .is_some_and(|t| main_killed.contains(&t.as_str()))
            })
            .map(|(l, v)| format!("{:?}: {v}", l.get("target")))
            .collect();
        out.push((
            "(j) the pod's kill is given to no target of the config-driven leakwatch".into(),
            if wrongly.is_empty() {
                Ok(format!(
                    "none; its host OOM kills: {:?}",
                    main.get("leakwatch_host_oom_kills_total", &[])
                ))
            } else {
                Err(format!("{wrongly:?}"))
            },
        ));
        out
    }

    /// The closing table's row.
    pub fn row(&self, webhook: &Webhook) -> String {
        let min = |d: Duration| format!("{:.1}", d.as_secs_f64() / 60.0);
        let first = self
            .target()
            .and_then(|t| {
                webhook
                    .alerts()
                    .into_iter()
                    .filter(|(_, a)| a["status"] == "firing" && a["labels"]["target"] == t)
                    .min_by_key(|(at, _)| *at)
            })
            .map_or("none".into(), |(at, a)| {
                format!(
                    "{}/{} {}",
                    a["labels"]["alertname"].as_str().unwrap_or_default(),
                    a["labels"]["severity"].as_str().unwrap_or_default(),
                    min(at - self.started)
                )
            });
        let dumps = format!("pre_oom dumps {:?}", self.pre_oom_dumps);
        let kill = self
            .kill
            .as_ref()
            .map_or("none".into(), |(at, _, _)| min(*at - self.started));
        let how = format!("(--discover as {:?})", self.target());
        format!(
            "{:<15} {:<5} {:<30} {dumps:<18} {first:<54} {kill:<6} {:<8} {how}",
            "fleet pod", "1.26", "heap 30 MiB/min into 320 MiB", "-"
        )
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
