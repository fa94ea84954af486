//! Issue 14's "Done when", live and in real time: the example Go services under ONE
//! leakwatch with its default settings, the shipped rules unchanged in a real
//! Prometheus 2.42, Alertmanager with the shipped inhibitions, and a webhook receiver
//! inside the test.
//!
//! Nine services (Go 1.19 and 1.26), each in its own memory cgroup as in a container
//! (otherwise their cgroup usage would be the whole test's): `fast` leaks into a cgroup
//! v1 limit until the kernel OOM-kills it about 12 minutes in, and is not restarted;
//! `slow_heap`, `slow_goroutine` and `slow_conn` leak slowly beside a healthy sawtooth,
//! `sawtooth_heap` as slowly beside a sawtooth ten times what it leaks a minute;
//! `healthy`, `bursty`, `plateau` (a start-up cache that fills for 9 minutes, then
//! stays flat) and `ramp` (a start-up cache that loads 600 MiB into its 1 GiB limit in
//! two minutes, then holds: issue 21's page at every deploy) do not leak. The test's
//! own Prometheus, a real Go server nobody here wrote, is a target too. leakwatch's config names only the targets (`url` and a
//! `process` regex; the cgroup comes from the pid), a dump dir and the kernel log: no
//! interval, window or warm-up is overridden. Prometheus scrapes and evaluates every
//! 15 s with alerts/leakwatch-rules.yml as shipped, plus the rule people use today,
//! `predict_linear(usage[30m], 3600) > limit`, to compare with. Side by side, the
//! README's example runs as the README says: `go run . -addr 127.0.0.1:6060 -mode heap`
//! and a second leakwatch with no flags at all.
//!
//! Asserted, with the issue's thresholds (the services are sized to fit CI's time, the
//! thresholds are not): (a) `fast` is paged LeakwatchTimeToOOM (critical) at least 8
//! minutes before the kernel kills it; (b) a `pre_oom` heap dump of it was written before
//! the kill and counted; (c) after the kill its heap verdict turns `stale` and its leak
//! is never (again) suspected; (d) each slow leak is paged with its own alert within 20
//! minutes of leakwatch's start (`sawtooth_heap`: measured, not held; see
//! [`DEADLINE_NOT_HELD`]), and with no other leak alert; (e) the quiet services
//! never reach the webhook and never have a warning or critical alert firing; (f) every
//! rule evaluates without error; (g) after the kill, the only new page naming `fast` is
//! LeakwatchContainerOOMKilled (issue 21: one cause, one page); (h) the README's
//! example is suspected within the minutes the README states and never called
//! `no_leak`; (i) a slow leak's verdict, once suspected, does not clear and come back;
//! and (e) includes: the quiet services and Prometheus are never suspected, even
//! briefly; (j) fleet mode side by side (issue 22, [`crate::live_fleet`]): a fast leak
//! in a pod found by `leakwatch --discover` with no target configuration is paged
//! with its pod label before its OOM kill, and the kill is its own. Every check is run to the end and the
//! failures are reported together, after the closing table: time from each service's
//! start to its first page, next to the predict_linear rule's first firing.
//!
//! About 21 minutes. Needs root and a writable memory cgroup hierarchy (v1 here and in
//! CI); fails, never skips, without them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value as Json;

use crate::live_fleet::FleetPod;
use crate::stack::{GoService, Proc, Webhook, ops_config, prom_get, root, write_limit};
use crate::support::{
    Leakwatch, Metrics, TempCgroup, free_port, parse_leaked, toolchain, try_http_get,
};

/// The job name of the leakwatch scrape.
const JOB: &str = "leakwatch";
/// How long the scenario runs, from leakwatch's start: the slow leaks' deadline.
const RUN: Duration = Duration::from_secs(20 * 60);
/// (a): the critical time-to-OOM page comes at least this long before the kill.
const PAGE_BEFORE_KILL: Duration = Duration::from_secs(8 * 60);
/// (d): each slow leak is paged within this long of leakwatch's start.
const SLOW_PAGE_WITHIN: Duration = Duration::from_secs(20 * 60);
/// Slow leaks whose time to page is measured and printed but not held to
/// [`SLOW_PAGE_WITHIN`]: none. The leak beside a 10 MiB sawtooth, the last one here
/// (issue 21), is held since its allocation site's own readings stand for the whole
/// heap's shape and for its growth after the start-up grace.
const DEADLINE_NOT_HELD: &[&str] = &[];
/// (c): after the kill, leakwatch may still show the last verdict it computed while
/// the process lived, until its next scrape (every 15 s by default) finds it gone.
const STALE_GRACE: Duration = Duration::from_secs(45);
/// `fast`'s cgroup limit. The service leaks 1 x 256 KiB every 500 ms, each page written.
/// Measured on the 2-core development host (Go 1.26, v1 cgroup, no limit, 110 s): cgroup
/// usage grew 0.52 MiB/s, 1.0x the leak and not 2x: in a pure leak nothing is garbage,
/// so the heap never runs ahead of the live heap toward GOGC's goal. 384 MiB is reached
/// about 12.3 minutes after the start, so a page at 3-4 minutes (4 samples at 15 s, then
/// the critical alert's `for: 2m`) leaves the 8 minutes the issue asks for.
const FAST_LIMIT: u64 = 384 << 20;
/// `ramp`'s cgroup limit: its start-up cache stops at about 60% of it.
const RAMP_LIMIT: u64 = 1 << 30;
/// A real Go server nobody here wrote, watched as a target: the test's own Prometheus
/// (scraping itself every 5 s beside leakwatch). It must never be suspected.
const PROM_TARGET: &str = "prometheus";
/// The README's example: its leaky service and leakwatch with no flags, as the README
/// says (leakwatch's built-in target and listen address).
const README_TARGET: &str = "127.0.0.1:6060";
const README_LEAKWATCH: &str = "http://127.0.0.1:10760";
/// The comparison rule's name; it is not one of leakwatch's alerts.
const PREDICT_LINEAR: &str = "PredictLinearOOM";
const LEAK_KINDS: [&str; 3] = ["heap", "goroutine", "http_connections"];
/// The verdict alert of each leak kind.
const LEAK_ALERTS: [&str; 3] = [
    "LeakwatchHeapLeakSuspected",
    "LeakwatchGoroutineLeakSuspected",
    "LeakwatchHTTPConnectionLeakSuspected",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Killed by the kernel at its cgroup limit, paged LeakwatchTimeToOOM (critical)
    /// [`PAGE_BEFORE_KILL`] before.
    OomKill,
    /// Paged by this alert within [`SLOW_PAGE_WITHIN`], and by no other leak alert.
    Page(&'static str),
    /// Never paged; no warning or critical alert ever firing.
    Quiet,
}

struct Scenario {
    name: &'static str,
    go: &'static str,
    /// leaky-service flags (the harness adds `-addr`, the test `-pid-file`).
    args: &'static [&'static str],
    expect: Expect,
    /// The nominal leak, for the table.
    leak: &'static str,
    /// The memory limit of its cgroup (v1 limit and memory+swap limit), if any.
    limit: Option<u64>,
}

/// The services. The slow leaks run beside a healthy sawtooth of the same service
/// (1 x 64 KiB every 100 ms, dropped every 20 ticks: 640 KiB/s of garbage, up to
/// 1.25 MiB live), and leak on every Nth tick. Measured on the loaded 2-core host, a
/// 100 ms Go ticker delivered ~88% of its ticks (8.8/s), so the real rates are a little
/// under the nominal ones; the table prints what each service really leaked.
const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "fast",
        go: "1.26",
        args: &[
            "-mode",
            "heap",
            "-interval",
            "500ms",
            "-per-tick",
            "1",
            "-size",
            "256KiB",
        ],
        expect: Expect::OomKill,
        leak: "heap 30 MiB/min into 384 MiB",
        limit: Some(FAST_LIMIT),
    },
    Scenario {
        name: "slow_heap",
        go: "1.19",
        // 64 KiB every 40 ticks of 100 ms: 16.4 KB/s, 59 MB/h nominal.
        args: &[
            "-mode",
            "heap,healthy",
            "-interval",
            "100ms",
            "-per-tick",
            "1",
            "-size",
            "64KiB",
            "-sawtooth",
            "20",
            "-leak-every",
            "40",
        ],
        expect: Expect::Page("LeakwatchHeapLeakSuspected"),
        leak: "heap 59 MB/h + sawtooth",
        limit: None,
    },
    Scenario {
        name: "sawtooth_heap",
        go: "1.26",
        // The same 59 MB/h (about 1 MiB a minute) beside a sawtooth ten times that:
        // 160 x 64 KiB = 10 MiB live at its peak, dropped every 160 ticks (16 s).
        args: &[
            "-mode",
            "heap,healthy",
            "-interval",
            "100ms",
            "-per-tick",
            "1",
            "-size",
            "64KiB",
            "-sawtooth",
            "160",
            "-leak-every",
            "40",
        ],
        expect: Expect::Page("LeakwatchHeapLeakSuspected"),
        leak: "heap 59 MB/h + 10 MiB sawtooth",
        limit: None,
    },
    Scenario {
        name: "slow_goroutine",
        go: "1.26",
        // One goroutine every 200 ticks of 100 ms: 3/min nominal.
        args: &[
            "-mode",
            "goroutine,healthy",
            "-interval",
            "100ms",
            "-per-tick",
            "1",
            "-size",
            "64KiB",
            "-sawtooth",
            "20",
            "-leak-every",
            "200",
        ],
        expect: Expect::Page("LeakwatchGoroutineLeakSuspected"),
        leak: "3 goroutines/min + sawtooth",
        limit: None,
    },
    Scenario {
        name: "slow_conn",
        go: "1.19",
        // One unclosed response body (connection) every 200 ticks: 3/min nominal,
        // each holding 3 goroutines (client readLoop/writeLoop, server conn).
        args: &[
            "-mode",
            "httpclient,healthy",
            "-interval",
            "100ms",
            "-per-tick",
            "1",
            "-size",
            "64KiB",
            "-sawtooth",
            "20",
            "-leak-every",
            "200",
        ],
        expect: Expect::Page("LeakwatchHTTPConnectionLeakSuspected"),
        leak: "3 connections/min + sawtooth",
        limit: None,
    },
    Scenario {
        name: "healthy",
        go: "1.26",
        // 4 x 32 KiB every 20 ms, dropped every 25 ticks: 6.4 MB/s, up to 3.2 MiB live.
        args: &[
            "-mode",
            "healthy",
            "-interval",
            "20ms",
            "-per-tick",
            "4",
            "-size",
            "32KiB",
            "-sawtooth",
            "25",
        ],
        expect: Expect::Quiet,
        leak: "none: sawtooth",
        limit: None,
    },
    Scenario {
        name: "bursty",
        go: "1.19",
        // Every 2 s a burst of 3 ticks x 16 x 64 KiB (3 MiB), nothing kept.
        args: &[
            "-mode",
            "bursty",
            "-interval",
            "50ms",
            "-per-tick",
            "2",
            "-size",
            "64KiB",
            "-sawtooth",
            "40",
        ],
        expect: Expect::Quiet,
        leak: "none: bursts",
        limit: None,
    },
    Scenario {
        name: "plateau",
        go: "1.26",
        // 540 entries of 128 KiB, one a second: 67.5 MiB over 9 minutes, then flat.
        args: &[
            "-mode",
            "plateau",
            "-interval",
            "1s",
            "-per-tick",
            "1",
            "-size",
            "128KiB",
            "-plateau-items",
            "540",
        ],
        expect: Expect::Quiet,
        leak: "cache 7.5 MiB/min for 9 min",
        limit: None,
    },
    Scenario {
        name: "ramp",
        go: "1.26",
        // Issue 21's deploy page: a start-up cache that loads 600 MiB into its 1 GiB
        // limit in its first two minutes (1200 entries of 512 KiB, ten a second) and
        // holds. Growth toward the limit that stops is not a time-to-OOM page.
        args: &[
            "-mode",
            "plateau",
            "-interval",
            "100ms",
            "-per-tick",
            "1",
            "-size",
            "512KiB",
            "-plateau-items",
            "1200",
        ],
        expect: Expect::Quiet,
        leak: "start-up 600 MiB in 2 min of 1 GiB",
        limit: Some(RAMP_LIMIT),
    },
];

/// One running scenario.
struct Running {
    sc: &'static Scenario,
    svc: GoService,
    started: Instant,
    cgroup: TempCgroup,
}

/// When and how `fast` ended.
struct Kill {
    at: Instant,
    unix: SystemTime,
    status: ExitStatus,
    /// The cgroup's own count of OOM kills (v1 memory.oom_control, v2 memory.events).
    oom_kills: Option<u64>,
}

/// One reading of `fast` (every 5 s), for failure messages and the measured growth.
struct FastSample {
    at: Instant,
    /// Ground truth: the cgroup's usage, read by the test.
    usage: Option<u64>,
    /// What leakwatch says.
    tto: Option<f64>,
    lw_usage: Option<(String, f64)>,
    lw_limit: Option<(String, f64)>,
    verdict: Option<String>,
}

/// Everything the test saw over the run.
#[derive(Default)]
struct Seen {
    /// (target, kind) -> when `leakwatch_leak_suspected` was first 1.
    suspected: BTreeMap<(String, String), Instant>,
    /// (target, kind) -> (episodes of `leak_suspected` 1, whether it is 1 now): a
    /// suspicion that clears and comes back is a flicker.
    episodes: BTreeMap<(String, String), (u32, bool)>,
    /// The README example's heap verdict state over the run, from its own leakwatch.
    readme: Vec<(Instant, Option<String>)>,
    /// At each change of that state, the reason the report page gave.
    readme_reasons: Vec<String>,
    /// (alertname, target, severity) -> when Prometheus first showed it firing.
    firing: BTreeMap<(String, String, String), Instant>,
    /// ... and pending: since when (now), and the longest pending stretch.
    pending_since: BTreeMap<(String, String, String), Instant>,
    longest_pending: BTreeMap<(String, String, String), Duration>,
    fast: Vec<FastSample>,
    /// Largest `leakwatch_pprof_dump_total{target="fast",profile_type="heap",
    /// reason="pre_oom",result="success"}` seen, and when it was first >= 1.
    pre_oom_count: Option<f64>,
    pre_oom_first: Option<Instant>,
    /// The first reading of `leak_verdict{target="fast",kind="heap",state="stale"} 1`
    /// after the kill.
    stale_at: Option<Instant>,
    /// Whether the previous reading of fast's heap `leak_suspected` was 1.
    fast_suspected_before: bool,
    /// Readings of fast's heap `leak_suspected` = 1 after the kill that break (c).
    suspected_after_kill: Vec<String>,
    /// Each service's `/leaked` over the run (every 15 s), for the measured rates.
    leaked: BTreeMap<&'static str, Vec<LeakedCounts>>,
}

/// Kills a whole process group (`kill -KILL -- -PGID`) on drop.
struct KillGroup(u32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .status();
    }
}

/// The README's promise for its own example leak: "suspected within N minutes".
fn readme_promise() -> Duration {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let re = regex::Regex::new(r"(?s)example leak of.*?is suspected within (\d+) minutes").unwrap();
    let caps = re
        .captures(&readme)
        .expect("README.md states when its example leak is suspected: 'example leak ... is suspected within N minutes'");
    Duration::from_secs(caps[1].parse::<u64>().unwrap() * 60)
}

/// One read of a service's `/leaked`: when, and the count per mode.
type LeakedCounts = (Instant, BTreeMap<String, u64>);

fn minutes(d: Duration) -> f64 {
    d.as_secs_f64() / 60.0
}

fn mib(b: f64) -> f64 {
    b / f64::from(1u32 << 20)
}

/// The sum of every series of `name` whose labels include `labels` (None: no series).
fn value(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = m
        .series(name)
        .into_iter()
        .filter(|(l, _)| {
            labels
                .iter()
                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| v)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// The value and the `source` label of a target's series of `name` (one per target).
fn with_source(m: &Metrics, name: &str, target: &str) -> Option<(String, f64)> {
    m.series(name)
        .into_iter()
        .find(|(l, _)| l.get("target").map(String::as_str) == Some(target))
        .map(|(l, v)| (l.get("source").cloned().unwrap_or_default(), v))
}

/// The state of `leakwatch_leak_verdict{target,kind}` that is 1, if the metric exists.
fn verdict_state(m: &Metrics, target: &str, kind: &str) -> Option<String> {
    m.series("leakwatch_leak_verdict")
        .into_iter()
        .find(|(l, v)| {
            *v == 1.0
                && l.get("target").map(String::as_str) == Some(target)
                && l.get("kind").map(String::as_str) == Some(kind)
        })
        .and_then(|(l, _)| l.get("state").cloned())
}

/// `oom_kill N` of the cgroup (v1 memory.oom_control, v2 memory.events).
fn cgroup_oom_kills(cg: &TempCgroup) -> Option<u64> {
    let file = if cg.version == 2 {
        "memory.events"
    } else {
        "memory.oom_control"
    };
    std::fs::read_to_string(cg.dir.join(file))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
}

/// Sets a cgroup's limit; on v1 the memory+swap limit too, so swap (none here, maybe on
/// another host) cannot absorb the leak.
fn limit_cgroup(cg: &TempCgroup, limit: u64) {
    write_limit(cg, limit);
    let memsw = cg.dir.join("memory.memsw.limit_in_bytes");
    if cg.version == 1 && memsw.exists() {
        std::fs::write(&memsw, limit.to_string())
            .unwrap_or_else(|e| panic!("{}: {e}", memsw.display()));
    }
}

/// Writes the Alertmanager config: the shipped deploy/alertmanager/alertmanager.yml
/// (its inhibitions: one cause, one page; its routes: info alerts go nowhere) sending to
/// the webhook, with fast grouping.
fn alertmanager_config(out: &Path, webhook: &str) {
    ops_config(&[
        "alertmanager",
        "--out",
        &out.to_string_lossy(),
        "--webhook",
        webhook,
        "--group-wait",
        "1s",
        "--group-interval",
        "2s",
    ]);
}

/// The comparison rule: Prometheus' own linear prediction of leakwatch's usage series
/// against its limit series (the same pair leakwatch's time-to-OOM uses), one hour
/// ahead over 30 minutes of data, firing at once.
fn predict_linear_rules() -> String {
    format!(
        r#"groups:
  - name: comparison
    rules:
      - alert: {PREDICT_LINEAR}
        expr: predict_linear(leakwatch_memory_usage_bytes[30m], 3600) > ignoring (source) leakwatch_memory_limit_bytes
        for: 0m
        labels:
          severity: critical
        annotations:
          summary: Memory usage predicted to reach the limit within an hour.
"#
    )
}

/// Prometheus' active alerts: (alertname, target, severity, state).
fn prom_alerts(base: &str) -> Vec<(String, String, String, String)> {
    let resp = prom_get(base, "/api/v1/alerts");
    resp["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let s = |v: &Json| v.as_str().unwrap_or_default().to_string();
            (
                s(&a["labels"]["alertname"]),
                s(&a["labels"]["target"]),
                s(&a["labels"]["severity"]),
                s(&a["state"]),
            )
        })
        .collect()
}

/// Rules whose last evaluation failed: "group/name: error".
fn rule_errors(base: &str) -> Vec<String> {
    let resp = prom_get(base, "/api/v1/rules");
    let mut out = Vec::new();
    for g in resp["data"]["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        for r in g["rules"].as_array().cloned().unwrap_or_default() {
            if r["health"] != "ok" {
                out.push(format!(
                    "{}/{}: {} {}",
                    g["name"].as_str().unwrap_or_default(),
                    r["name"].as_str().unwrap_or_default(),
                    r["health"],
                    r["lastError"]
                ));
            }
        }
    }
    out
}

/// The webhook's firing alerts for `target`: (arrival, alertname, severity), in order.
fn pages(webhook: &Webhook, target: &str) -> Vec<(Instant, String, String)> {
    let mut out: Vec<_> = webhook
        .alerts()
        .into_iter()
        .filter(|(_, a)| a["status"] == "firing" && a["labels"]["target"] == target)
        .map(|(at, a)| {
            let s = |k: &str| a["labels"][k].as_str().unwrap_or_default().to_string();
            (at, s("alertname"), s("severity"))
        })
        .collect();
    out.sort_by_key(|(at, _, _)| *at);
    out
}

impl Seen {
    fn poll_leakwatch(&mut self, lw: &Leakwatch, fast_cg: &TempCgroup, kill: Option<&Kill>) {
        let now = Instant::now();
        let m = lw.metrics();
        for name in SCENARIOS.iter().map(|sc| sc.name).chain([PROM_TARGET]) {
            for kind in LEAK_KINDS {
                let labels = [("target", name), ("kind", kind)];
                let on = value(&m, "leakwatch_leak_suspected", &labels) == Some(1.0);
                let key = (name.to_string(), kind.to_string());
                if on {
                    self.suspected.entry(key.clone()).or_insert(now);
                }
                let e = self.episodes.entry(key).or_insert((0, false));
                if on && !e.1 {
                    e.0 += 1;
                }
                e.1 = on;
            }
        }
        let dumps = value(
            &m,
            "leakwatch_pprof_dump_total",
            &[
                ("target", "fast"),
                ("profile_type", "heap"),
                ("reason", "pre_oom"),
                ("result", "success"),
            ],
        );
        if let Some(n) = dumps {
            self.pre_oom_count = Some(self.pre_oom_count.unwrap_or(0.0).max(n));
            if n >= 1.0 && self.pre_oom_first.is_none() {
                self.pre_oom_first = Some(now);
            }
        }
        let suspected = value(
            &m,
            "leakwatch_leak_suspected",
            &[("target", "fast"), ("kind", "heap")],
        ) == Some(1.0);
        if let Some(k) = kill {
            let stale = [("target", "fast"), ("kind", "heap"), ("state", "stale")];
            if value(&m, "leakwatch_leak_verdict", &stale) == Some(1.0) && self.stale_at.is_none() {
                self.stale_at = Some(now);
            }
            let since = now - k.at;
            if suspected && (since > STALE_GRACE || !self.fast_suspected_before) {
                self.suspected_after_kill.push(format!(
                    "{:.1} min after the kill (verdict state {:?})",
                    minutes(since),
                    verdict_state(&m, "fast", "heap")
                ));
            }
        }
        self.fast_suspected_before = suspected;
        self.fast.push(FastSample {
            at: now,
            usage: fast_cg.memory_usage(),
            tto: value(&m, "leakwatch_time_to_oom_seconds", &[("target", "fast")]),
            lw_usage: with_source(&m, "leakwatch_memory_usage_bytes", "fast"),
            lw_limit: with_source(&m, "leakwatch_memory_limit_bytes", "fast"),
            verdict: verdict_state(&m, "fast", "heap"),
        });
    }

    /// The README example's own leakwatch (no flags: the lean default exports no
    /// per-state verdict series): its heap verdict state as its report page shows it,
    /// and at each change of state the first line there that gives the reason (for
    /// the failure message).
    fn poll_readme(&mut self) {
        let page = try_http_get(&format!("{README_LEAKWATCH}/targets/{README_TARGET}"))
            .ok()
            .map(|(_, body)| String::from_utf8_lossy(&body).into_owned());
        let state = page.as_deref().and_then(|p| report_state(p, "heap"));
        let changed = self.readme.last().is_none_or(|(_, last)| *last != state);
        if changed && let (Some(st), Some(p)) = (&state, &page) {
            let why = reason_line(p, st);
            self.readme_reasons
                .push(format!("{st}: {}", why.unwrap_or_default()));
        }
        self.readme.push((Instant::now(), state));
    }

    fn poll_prometheus(&mut self, prom_url: &str) {
        let now = Instant::now();
        let mut pending_now = BTreeSet::new();
        for (name, target, severity, state) in prom_alerts(prom_url) {
            let key = (name, target, severity);
            if state == "firing" {
                self.firing.entry(key).or_insert(now);
            } else {
                let since = *self.pending_since.entry(key.clone()).or_insert(now);
                let longest = self.longest_pending.entry(key.clone()).or_default();
                *longest = (*longest).max(now - since);
                pending_now.insert(key);
            }
        }
        self.pending_since.retain(|k, _| pending_now.contains(k));
    }

    fn poll_leaked(&mut self, running: &[Running]) {
        let now = Instant::now();
        for r in running {
            if let Ok((200, body)) = try_http_get(&format!("{}/leaked", r.svc.url)) {
                let counts = parse_leaked(&String::from_utf8_lossy(&body));
                self.leaked
                    .entry(r.sc.name)
                    .or_default()
                    .push((now, counts));
            }
        }
    }

    /// The first time Prometheus showed `alertname` firing for `target` (any severity).
    fn first_firing(&self, alertname: &str, target: &str) -> Option<Instant> {
        self.firing
            .iter()
            .filter(|((a, t, _), _)| a == alertname && t == target)
            .map(|(_, at)| *at)
            .min()
    }

    /// What a service really leaked, from its own `/leaked` (and, for `fast`, the
    /// growth of its cgroup usage).
    fn measured(&self, r: &Running) -> String {
        let series = self.leaked.get(r.sc.name).map(Vec::as_slice).unwrap_or(&[]);
        let last = series.last();
        let count = |mode: &str| -> Option<(f64, f64)> {
            let (at, c) = last?;
            Some((*c.get(mode)? as f64, minutes(*at - r.started)))
        };
        match r.sc.name {
            "fast" => {
                let pts: Vec<(f64, u64)> = self
                    .fast
                    .iter()
                    .filter_map(|s| Some((minutes(s.at - r.started), s.usage?)))
                    .filter(|(_, u)| *u > 0)
                    .collect();
                match (pts.first(), pts.iter().max_by_key(|(_, u)| *u)) {
                    (Some(&(t0, u0)), Some(&(t1, u1))) if t1 > t0 => format!(
                        "usage {:.1} MiB/min",
                        mib(u1 as f64 - u0 as f64) / (t1 - t0)
                    ),
                    _ => "?".into(),
                }
            }
            "slow_heap" | "sawtooth_heap" => count("heap").map_or("?".into(), |(n, m)| {
                format!("{:.0} MB/h", n * 65536.0 / 1e6 / (m / 60.0))
            }),
            "slow_goroutine" => {
                count("goroutine").map_or("?".into(), |(n, m)| format!("{:.2}/min", n / m))
            }
            "slow_conn" => {
                count("httpclient").map_or("?".into(), |(n, m)| format!("{:.2}/min", n / m))
            }
            "plateau" => {
                let full = series
                    .iter()
                    .find(|(_, c)| c.get("plateau") == Some(&540))
                    .map(|(at, _)| format!("full at {:.1} min", minutes(*at - r.started)));
                full.unwrap_or_else(|| format!("{:?} entries", count("plateau").map(|c| c.0)))
            }
            "ramp" => {
                let full = series
                    .iter()
                    .find(|(_, c)| c.get("plateau") == Some(&1200))
                    .map(|(at, _)| format!("full at {:.1} min", minutes(*at - r.started)));
                full.unwrap_or_else(|| format!("{:?} entries", count("plateau").map(|c| c.0)))
            }
            _ => "-".into(),
        }
    }

    fn progress(&self, t: Duration, running: &[Running], kill: Option<&Kill>) {
        let mut lines = vec![format!("live_defaults: t={:.1} min", minutes(t))];
        if let Some(s) = self.fast.last() {
            lines.push(format!(
                "  fast: cgroup usage {:.0} MiB of {} MiB; leakwatch usage {:?} limit {:?} \
                 tto {} verdict(heap) {:?}; pre_oom dumps {:?}{}",
                mib(s.usage.unwrap_or(0) as f64),
                FAST_LIMIT >> 20,
                s.lw_usage
                    .as_ref()
                    .map(|(src, v)| format!("{:.0}MiB/{src}", mib(*v))),
                s.lw_limit
                    .as_ref()
                    .map(|(src, v)| format!("{:.0}MiB/{src}", mib(*v))),
                s.tto.map_or("-".into(), |v| format!("{:.1} min", v / 60.0)),
                s.verdict,
                self.pre_oom_count,
                kill.map_or(String::new(), |k| format!(
                    "; KILLED {:.1} min ago",
                    minutes(k.at.elapsed())
                ))
            ));
        }
        for r in running {
            let suspected: Vec<&str> = LEAK_KINDS
                .iter()
                .filter(|k| {
                    self.suspected
                        .contains_key(&(r.sc.name.to_string(), k.to_string()))
                })
                .copied()
                .collect();
            let alerts: Vec<String> = self
                .pending_since
                .keys()
                .filter(|(_, t, _)| t == r.sc.name)
                .map(|(a, _, s)| format!("{a}/{s}:pending"))
                .chain(
                    self.firing
                        .keys()
                        .filter(|(_, t, _)| t == r.sc.name)
                        .map(|(a, _, s)| format!("{a}/{s}:fired")),
                )
                .collect();
            lines.push(format!(
                "  {:<15} ever suspected {suspected:?}; alerts {alerts:?}",
                r.sc.name
            ));
        }
        eprintln!("{}", lines.join("\n"));
    }
}

#[test]
fn defaults_page_fast_leak_before_oom_and_slow_leaks_within_20_minutes() {
    let test_started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let kernel_log = File::open("/dev/kmsg").is_ok();

    // Built before anything starts, so the services start within a second of each other.
    for v in ["1.19", "1.26"] {
        crate::support::build_leaky_service(&toolchain(v));
    }

    let webhook = Webhook::start();
    alertmanager_config(&dir.join("alertmanager.yml"), &webhook.url);
    let am_addr = format!("127.0.0.1:{}", free_port());
    let mut alertmanager = Proc::spawn(
        "alertmanager",
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", p("alertmanager.yml")))
            .arg(format!("--storage.path={}", p("am-data")))
            .arg(format!("--web.listen-address={am_addr}"))
            .arg("--cluster.listen-address="),
        dir,
    );
    alertmanager.wait_ready(
        &format!("http://{am_addr}/-/ready"),
        Duration::from_secs(20),
    );

    // The services, each in its own memory cgroup from its first instruction; `fast`
    // first (the loop below reads it as running[0]).
    assert!(SCENARIOS[0].expect == Expect::OomKill);
    let mut running: Vec<Running> = Vec::new();
    for sc in SCENARIOS {
        let cgroup = TempCgroup::create(&format!("lw-defaults-{}", sc.name)).unwrap_or_else(|| {
            panic!(
                "this test needs root and a writable memory cgroup hierarchy (v1 at \
                 /sys/fs/cgroup/memory here and in CI) to give each service its own cgroup"
            )
        });
        if let Some(limit) = sc.limit {
            assert_eq!(cgroup.version, 1, "the limits are meant for a v1 cgroup");
            limit_cgroup(&cgroup, limit);
        }
        let pid_file = p(&format!("{}.pid", sc.name));
        let mut args = sc.args.to_vec();
        args.extend(["-pid-file", &pid_file]);
        let started = Instant::now();
        let svc = GoService::start_named(
            sc.name,
            &toolchain(sc.go),
            &args,
            &[],
            Some(&cgroup.procs()),
            dir,
        );
        running.push(Running {
            sc,
            svc,
            started,
            cgroup,
        });
    }

    // Fleet mode side by side: a fast leak in a pod, found by `leakwatch --discover`.
    let mut fleet = FleetPod::start(
        &crate::support::build_leaky_service(&toolchain("1.26")),
        dir,
        kernel_log,
    );

    // The README's example as the README says: `go run` in examples/leaky-service with
    // Debian's Go, and (below) leakwatch with no flags at all.
    // `go run` runs the service as its child, which outlives a killed `go run`: both
    // run in a process group of their own, killed whole at the end. The port must be
    // free, or the test would judge whatever holds it.
    assert!(
        std::net::TcpListener::bind(README_TARGET).is_ok(),
        "{README_TARGET} is taken: the README's example needs it"
    );
    let readme_started = Instant::now();
    let mut readme_service = Proc::spawn(
        "readme-service",
        Command::new(&toolchain("1.19").go)
            .args(["run", ".", "-addr", README_TARGET, "-mode", "heap"])
            .env("GOTOOLCHAIN", "local")
            .process_group(0)
            .current_dir(root().join("examples/leaky-service")),
        dir,
    );
    let _readme_group = KillGroup(readme_service.child.id());
    readme_service.wait_ready(
        &format!("http://{README_TARGET}/healthz"),
        Duration::from_secs(120),
    );

    // Prometheus's address, chosen now: it is a target too.
    let prom_url = format!("http://127.0.0.1:{}", free_port());

    // leakwatch: targets, a dump dir and the kernel log; everything else default.
    let mut config = format!("defaults:\n  dumps:\n    dir: {:?}\n", p("dumps"));
    if kernel_log {
        config.push_str("system:\n  kernel_log: /dev/kmsg\n");
    }
    // Every default but one collector: the verdict's states, which this test times.
    config.push_str("metrics:\n  collectors: {verdict_states: true}\n");
    config.push_str("targets:\n");
    for r in &running {
        let pid_file = p(&format!("{}.pid", r.sc.name));
        let process = format!("leaky-service .*-pid-file {}$", regex::escape(&pid_file));
        config.push_str(&format!(
            "  - name: {}\n    url: {}\n    process: {process:?}\n",
            r.sc.name, r.svc.url
        ));
    }
    config.push_str(&format!("  - name: {PROM_TARGET}\n    url: {prom_url}\n"));
    leakwatch::config::Config::from_yaml(&config)
        .unwrap_or_else(|e| panic!("the leakwatch config is rejected: {e}\n{config}"));
    let lw = Leakwatch::start(&config);
    let lw_started = Instant::now();
    let mut readme_lw = Proc::spawn(
        "readme-leakwatch",
        Command::new(env!("CARGO_BIN_EXE_leakwatch")).current_dir(dir),
        dir,
    );
    readme_lw.wait_ready(
        &format!("{README_LEAKWATCH}/-/ready"),
        Duration::from_secs(20),
    );
    eprintln!(
        "live_defaults: leakwatch started {:.1}s after the first service, config:\n{config}",
        (lw_started - running[0].started).as_secs_f64()
    );

    // Prometheus with the shipped rules file itself, plus the comparison rule.
    std::fs::write(p("predict-linear.yml"), predict_linear_rules()).unwrap();
    let shipped_rules = root().join("alerts/leakwatch-rules.yml");
    ops_config(&[
        "prometheus",
        "--out",
        &p("prometheus.yml"),
        "--leakwatch",
        lw.url.trim_start_matches("http://"),
        "--alertmanager",
        &am_addr,
        "--rules",
        &shipped_rules.to_string_lossy(),
        "--rules",
        &p("predict-linear.yml"),
        "--job",
        JOB,
        "--scrape-interval",
        "15s",
        "--evaluation-interval",
        "15s",
    ]);
    // Prometheus also scrapes itself every 5 s: steady work for a real Go server.
    let mut prom_yml = std::fs::read_to_string(p("prometheus.yml")).unwrap();
    prom_yml.push_str(&format!(
        "  - job_name: self\n    scrape_interval: 5s\n    static_configs:\n      - targets: [{:?}]\n",
        prom_url.trim_start_matches("http://")
    ));
    prom_yml.push_str(&fleet.scrape_job());
    std::fs::write(p("prometheus.yml"), prom_yml).unwrap();
    let prom_started = Instant::now();
    let mut prometheus = Proc::spawn(
        "prometheus",
        Command::new("prometheus")
            .arg(format!("--config.file={}", p("prometheus.yml")))
            .arg(format!("--storage.tsdb.path={}", p("prom-data")))
            .arg(format!(
                "--web.listen-address={}",
                prom_url.trim_start_matches("http://")
            )),
        dir,
    );
    prometheus.wait_ready(&format!("{prom_url}/-/ready"), Duration::from_secs(30));
    eprintln!(
        "live_defaults: all up {:.1}s after the test started (kernel log: {kernel_log}); \
         running {} min",
        test_started.elapsed().as_secs_f64(),
        minutes(RUN)
    );

    // Watch until the slow leaks' deadline: `fast` every 250 ms (the kill time),
    // leakwatch and Prometheus every 5 s, the services' own counts every 15 s.
    let mut seen = Seen::default();
    let mut kill: Option<Kill> = None;
    let every = |d: u64| Duration::from_secs(d);
    let (mut next_lw, mut next_prom, mut next_leaked, mut next_progress) = (
        Instant::now(),
        Instant::now(),
        Instant::now(),
        Instant::now() + every(60),
    );
    while lw_started.elapsed() < RUN {
        let now = Instant::now();
        if kill.is_none() {
            let fast = &mut running[0];
            if let Some(status) = fast.svc.exited() {
                let k = Kill {
                    at: now,
                    unix: SystemTime::now(),
                    status,
                    oom_kills: cgroup_oom_kills(&fast.cgroup),
                };
                eprintln!(
                    "live_defaults: fast ended {:.2} min after its start: {status:?} \
                     (cgroup oom_kill {:?})",
                    minutes(now - fast.started),
                    k.oom_kills
                );
                kill = Some(k);
            }
        }
        if now >= next_lw {
            seen.poll_leakwatch(&lw, &running[0].cgroup, kill.as_ref());
            seen.poll_readme();
            fleet.poll();
            next_lw = now + every(5);
        }
        if now >= next_prom {
            seen.poll_prometheus(&prom_url);
            next_prom = now + every(5);
        }
        if now >= next_leaked {
            seen.poll_leaked(&running);
            next_leaked = now + every(15);
        }
        if now >= next_progress {
            seen.progress(lw_started.elapsed(), &running, kill.as_ref());
            next_progress = now + every(60);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    seen.poll_leakwatch(&lw, &running[0].cgroup, kill.as_ref());
    seen.poll_prometheus(&prom_url);
    fleet.poll();
    let broken_rules = rule_errors(&prom_url);

    // ---------------------------------------------------------------------------------
    // The checks, each run to the end.
    // ---------------------------------------------------------------------------------
    let mut checks: Vec<(String, Result<String, String>)> = Vec::new();
    let fast = &running[0];

    // (a) the critical time-to-OOM page, 8 minutes before the kernel's kill.
    let fast_pages = pages(&webhook, "fast");
    let critical = fast_pages
        .iter()
        .find(|(_, a, s)| a == "LeakwatchTimeToOOM" && s == "critical")
        .map(|(at, _, _)| *at);
    let fast_trace = || {
        let mut out = String::new();
        let mut next = fast.started;
        for s in &seen.fast {
            if s.at >= next {
                out.push_str(&format!(
                    "\n    {:5.1} min: cgroup usage {:6.1} MiB, tto {:>9}, leakwatch usage {:?} limit {:?}, verdict {:?}",
                    minutes(s.at - fast.started),
                    mib(s.usage.unwrap_or(0) as f64),
                    s.tto.map_or("-".into(), |v| format!("{:.1} min", v / 60.0)),
                    s.lw_usage.as_ref().map(|(src, v)| format!("{:.0}MiB/{src}", mib(*v))),
                    s.lw_limit.as_ref().map(|(src, v)| format!("{:.0}MiB/{src}", mib(*v))),
                    s.verdict
                ));
                next = s.at + every(30);
            }
        }
        out
    };
    let killed_by_kernel = kill
        .as_ref()
        .is_some_and(|k| k.status.signal() == Some(9) && k.oom_kills.unwrap_or(0) >= 1);
    checks.push((
        "fast is OOM-killed by the kernel within the run (the scenario itself)".into(),
        match &kill {
            Some(k) if killed_by_kernel => Ok(format!(
                "SIGKILL at {:.2} min, cgroup oom_kill {:?}",
                minutes(k.at - fast.started),
                k.oom_kills
            )),
            Some(k) => Err(format!(
                "ended with {:?}, cgroup oom_kill {:?}; log:\n{}",
                k.status,
                k.oom_kills,
                fast.svc.proc.tail()
            )),
            None => Err(format!(
                "still running after {:.1} min: recalibrate FAST_LIMIT; trace:{}",
                minutes(fast.started.elapsed()),
                fast_trace()
            )),
        },
    ));
    checks.push((
        format!(
            "(a) LeakwatchTimeToOOM critical for fast at the webhook >= {:.0} min before the kill",
            minutes(PAGE_BEFORE_KILL)
        ),
        match (critical, &kill) {
            (Some(page), Some(k)) if page + PAGE_BEFORE_KILL <= k.at => Ok(format!(
                "paged at {:.2} min, {:.2} min before the kill",
                minutes(page - fast.started),
                minutes(k.at - page)
            )),
            (Some(page), Some(k)) => Err(format!(
                "paged at {:.2} min, only {:.2} min before the kill at {:.2} min; trace:{}",
                minutes(page - fast.started),
                minutes(k.at.saturating_duration_since(page)),
                minutes(k.at - fast.started),
                fast_trace()
            )),
            (Some(page), None) => Err(format!(
                "paged at {:.2} min, but no kill to compare with",
                minutes(page - fast.started)
            )),
            (None, _) => Err(format!(
                "never paged; fast's pages {:?}; Prometheus saw it firing at {:?} min; trace:{}",
                fast_pages
                    .iter()
                    .map(|(at, a, s)| format!("{a}/{s}@{:.1}", minutes(*at - fast.started)))
                    .collect::<Vec<_>>(),
                seen.first_firing("LeakwatchTimeToOOM", "fast")
                    .map(|at| format!("{:.2}", minutes(at - fast.started))),
                fast_trace()
            )),
        },
    ));

    // (b) the pre-OOM heap dump, written before the kill and counted.
    let fast_dumps: Vec<(String, SystemTime)> = std::fs::read_dir(dir.join("dumps/fast"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    Some((name, e.metadata().ok()?.modified().ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    let pre_oom: Vec<&(String, SystemTime)> = fast_dumps
        .iter()
        .filter(|(n, _)| n.starts_with("heap-") && n.contains("-pre_oom"))
        .collect();
    let before_kill = pre_oom
        .iter()
        .find(|(_, mtime)| kill.as_ref().is_some_and(|k| *mtime <= k.unix));
    checks.push((
        "(b) a heap dump with reason pre_oom for fast, written before the kill".into(),
        match (before_kill, &kill) {
            (Some((name, mtime)), Some(k)) => Ok(format!(
                "{name}, {:.1} s before the kill",
                k.unix
                    .duration_since(*mtime)
                    .unwrap_or_default()
                    .as_secs_f64()
            )),
            _ => Err(format!(
                "pre_oom heap dumps: {:?}; every dump of fast: {:?}",
                pre_oom.iter().map(|(n, _)| n).collect::<Vec<_>>(),
                fast_dumps.iter().map(|(n, _)| n).collect::<Vec<_>>()
            )),
        },
    ));
    checks.push((
        "(b) leakwatch_pprof_dump_total{target=\"fast\",profile_type=\"heap\",reason=\"pre_oom\",result=\"success\"} >= 1".into(),
        match seen.pre_oom_count {
            Some(n) if n >= 1.0 => Ok(format!(
                "{n} (first >= 1 at {} min)",
                seen.pre_oom_first
                    .map_or("?".into(), |at| format!("{:.2}", minutes(at - fast.started)))
            )),
            other => Err(format!("largest value seen: {other:?}")),
        },
    ));

    // (c) after the kill: a stale verdict, never a suspected leak.
    checks.push((
        "(c) leakwatch_leak_verdict{target=\"fast\",kind=\"heap\",state=\"stale\"} becomes 1 after the kill".into(),
        match (seen.stale_at, &kill) {
            (Some(at), Some(k)) => Ok(format!("{:.1} s after the kill", (at - k.at).as_secs_f64())),
            (None, Some(k)) => Err(format!(
                "not within the {:.1} min after the kill; last verdict state {:?}",
                minutes(k.at.elapsed()),
                seen.fast.last().and_then(|s| s.verdict.clone())
            )),
            (_, None) => Err("no kill".into()),
        },
    ));
    checks.push((
        "(c) leakwatch_leak_suspected{target=\"fast\",kind=\"heap\"} never turns 1 after the kill"
            .into(),
        match &kill {
            Some(k) if seen.suspected_after_kill.is_empty() => Ok(format!(
                "watched for {:.1} min after the kill",
                minutes(k.at.elapsed())
            )),
            Some(_) => Err(format!("it was 1 at: {:?}", seen.suspected_after_kill)),
            None => Err("no kill".into()),
        },
    ));

    // (g) one cause, one page: after the kill, the only new page naming fast is the
    // kill itself (not TargetDown, ScrapeErrors or dump failures of the dead target).
    let after_kill: BTreeSet<String> = match &kill {
        Some(k) => {
            let before: BTreeSet<&str> = fast_pages
                .iter()
                .filter(|(at, _, _)| *at < k.at)
                .map(|(_, a, _)| a.as_str())
                .collect();
            fast_pages
                .iter()
                .filter(|(at, a, _)| {
                    *at >= k.at && !before.contains(a.as_str()) && a != PREDICT_LINEAR
                })
                .map(|(_, a, _)| a.clone())
                .collect()
        }
        None => BTreeSet::new(),
    };
    let after_kill_names: Vec<&str> = after_kill.iter().map(String::as_str).collect();
    checks.push((
        "(g) after the kill, exactly one new page names fast: LeakwatchContainerOOMKilled".into(),
        match (&kill, after_kill_names.as_slice()) {
            (Some(_), ["LeakwatchContainerOOMKilled"]) => Ok("LeakwatchContainerOOMKilled".into()),
            (None, _) => Err("no kill".into()),
            (Some(k), _) => Err(format!(
                "new pages after the kill: {after_kill:?}; every page of fast: {:?}",
                fast_pages
                    .iter()
                    .map(|(at, a, s)| format!(
                        "{a}/{s}@{:+.1}min",
                        (at.saturating_duration_since(k.at).as_secs_f64()
                            - k.at.saturating_duration_since(*at).as_secs_f64())
                            / 60.0
                    ))
                    .collect::<Vec<_>>()
            )),
        },
    ));

    // (d) each slow leak paged with its own alert within 20 minutes.
    for r in &running {
        let Expect::Page(alert) = r.sc.expect else {
            continue;
        };
        let got = pages(&webhook, r.sc.name);
        let right = got
            .iter()
            .find(|(_, a, _)| a == alert)
            .map(|(at, _, _)| *at);
        let wrong: Vec<String> = got
            .iter()
            .filter(|(_, a, _)| a != alert && LEAK_ALERTS.contains(&a.as_str()))
            .map(|(at, a, _)| format!("{a} at {:.1} min", minutes(*at - r.started)))
            .collect();
        let held = !DEADLINE_NOT_HELD.contains(&r.sc.name);
        checks.push((
            format!(
                "(d) {} paged {alert} within {:.0} min of leakwatch's start{}",
                r.sc.name,
                minutes(SLOW_PAGE_WITHIN),
                if held { "" } else { " (measured, not held)" }
            ),
            match right {
                Some(at) if at <= lw_started + SLOW_PAGE_WITHIN => Ok(format!(
                    "at {:.2} min after leakwatch's start ({:.2} min after the leak's)",
                    minutes(at - lw_started),
                    minutes(at - r.started)
                )),
                Some(at) => Err(format!("only at {:.2} min", minutes(at - lw_started))),
                None => Err(format!(
                    "never; its pages {:?}; leakwatch suspected {:?}; Prometheus pending/firing {:?}",
                    got.iter().map(|(_, a, s)| format!("{a}/{s}")).collect::<Vec<_>>(),
                    LEAK_KINDS
                        .iter()
                        .filter_map(|k| seen
                            .suspected
                            .get(&(r.sc.name.to_string(), k.to_string()))
                            .map(|at| format!("{k}@{:.1}min", minutes(*at - lw_started))))
                        .collect::<Vec<_>>(),
                    seen.longest_pending
                        .iter()
                        .filter(|((_, t, _), _)| t == r.sc.name)
                        .map(|((a, _, s), d)| format!("{a}/{s} pending up to {:.1}min", minutes(*d)))
                        .chain(seen.firing.iter().filter(|((_, t, _), _)| t == r.sc.name).map(
                            |((a, _, s), at)| format!("{a}/{s} firing@{:.1}min", minutes(*at - lw_started))
                        ))
                        .collect::<Vec<_>>()
                )),
            }
            .or_else(|why| if held { Err(why) } else { Ok(format!("NOT HELD: {why}")) }),
        ));
        checks.push((
            format!(
                "(d) {} paged with no other leak alert (one cause, one page)",
                r.sc.name
            ),
            if wrong.is_empty() {
                Ok("none".into())
            } else {
                Err(format!("{wrong:?}"))
            },
        ));
    }

    // (e) the quiet services and Prometheus: nothing at the webhook, no warning or
    // critical alert firing, never suspected (a suspicion that clears at once is a
    // false alarm all the same).
    let quiet: Vec<(&str, Instant)> = running
        .iter()
        .filter(|r| r.sc.expect == Expect::Quiet)
        .map(|r| (r.sc.name, r.started))
        .chain([(PROM_TARGET, prom_started)])
        .collect();
    for &(name, started) in &quiet {
        let false_alarms: Vec<String> = LEAK_KINDS
            .iter()
            .filter_map(|k| {
                let key = (name.to_string(), k.to_string());
                let at = seen.suspected.get(&key)?;
                Some(format!(
                    "{k} first at {:.1} min, {} episode(s)",
                    minutes(*at - started),
                    seen.episodes.get(&key).map_or(0, |e| e.0)
                ))
            })
            .collect();
        checks.push((
            format!("(e) {name} is never suspected"),
            if false_alarms.is_empty() {
                Ok("never".into())
            } else {
                Err(format!("false alarm(s): {false_alarms:?}"))
            },
        ));
    }
    for &(name, started) in &quiet {
        let got: Vec<String> = pages(&webhook, name)
            .into_iter()
            .filter(|(_, a, _)| a != PREDICT_LINEAR)
            .map(|(at, a, s)| format!("{a}/{s} at {:.1} min", minutes(at - started)))
            .collect();
        checks.push((
            format!("(e) {} never reaches the webhook", name),
            if got.is_empty() {
                Ok("nothing".into())
            } else {
                Err(format!("{got:?}"))
            },
        ));
        let fired: Vec<String> = seen
            .firing
            .iter()
            .filter(|((a, t, s), _)| {
                t == name && a != PREDICT_LINEAR && (s == "warning" || s == "critical")
            })
            .map(|((a, _, s), at)| format!("{a}/{s} at {:.1} min", minutes(*at - started)))
            .collect();
        let closest: Vec<String> = seen
            .longest_pending
            .iter()
            .filter(|((_, t, _), _)| t == name)
            .map(|((a, _, s), d)| format!("{a}/{s} pending up to {:.1} min", minutes(*d)))
            .chain(
                seen.firing
                    .iter()
                    .filter(|((a, t, s), _)| t == name && (s == "info" || a == PREDICT_LINEAR))
                    .map(|((a, _, s), at)| {
                        format!("{a}/{s} fired at {:.1} min", minutes(*at - started))
                    }),
            )
            .collect();
        checks.push((
            format!(
                "(e) {} never has a warning/critical alert firing in Prometheus",
                name
            ),
            if fired.is_empty() {
                Ok(if closest.is_empty() {
                    "no alert at all".into()
                } else {
                    format!("closest: {closest:?}")
                })
            } else {
                Err(format!("{fired:?}"))
            },
        ));
    }

    // (i) no flicker: each slow leak's own kind, once suspected, stays suspected.
    for r in &running {
        let Expect::Page(alert) = r.sc.expect else {
            continue;
        };
        let kind = LEAK_KINDS[LEAK_ALERTS.iter().position(|a| *a == alert).unwrap()];
        let n = seen
            .episodes
            .get(&(r.sc.name.to_string(), kind.to_string()))
            .map_or(0, |e| e.0);
        checks.push((
            format!("(i) {}'s {kind} verdict does not flicker", r.sc.name),
            if n <= 1 {
                Ok(format!("{n} episode(s) of suspicion"))
            } else {
                Err(format!(
                    "suspected, cleared and suspected again: {n} episodes"
                ))
            },
        ));
    }

    // (h) the README's example, run as the README says, is suspected within the time
    // the README states, and never called "no leak" before.
    let readme_within = readme_promise();
    let first_readme = |state: &str| {
        seen.readme
            .iter()
            .find(|(_, s)| s.as_deref() == Some(state))
            .map(|(at, _)| *at)
    };
    let readme_trace: Vec<String> = {
        let mut out: Vec<String> = Vec::new();
        let mut last: Option<&Option<String>> = None;
        for (at, st) in &seen.readme {
            if last != Some(st) {
                out.push(format!(
                    "{:?} at {:.1} min",
                    st,
                    minutes(*at - readme_started)
                ));
                last = Some(st);
            }
        }
        out
    };
    checks.push((
        format!(
            "(h) the README's example leak is suspected within {:.0} minutes (README), with the defaults",
            minutes(readme_within)
        ),
        match first_readme("suspected") {
            Some(at) if at - readme_started <= readme_within => Ok(format!(
                "at {:.1} min; states {readme_trace:?}; reasons {:?}",
                minutes(at - readme_started),
                seen.readme_reasons
            )),
            _ => Err(format!(
                "states {readme_trace:?}; reasons {:?}",
                seen.readme_reasons
            )),
        },
    ));
    checks.push((
        "(h) the README's example leak is never called no_leak".into(),
        match first_readme("no_leak") {
            None => Ok("never".into()),
            Some(at) => Err(format!(
                "no_leak at {:.1} min; states {readme_trace:?}",
                minutes(at - readme_started)
            )),
        },
    ));

    // (j) the fleet pod: discovered, paged before its kill, the kill its own.
    checks.extend(fleet.checks(&webhook, &lw.metrics(), &["fast"]));

    // (f) every rule evaluates.
    checks.push((
        "(f) every rule (shipped and comparison) evaluates without error".into(),
        if broken_rules.is_empty() {
            Ok("all ok".into())
        } else {
            Err(format!("{broken_rules:?}"))
        },
    ));

    // ---------------------------------------------------------------------------------
    // The closing table: minutes from each service's start.
    // ---------------------------------------------------------------------------------
    let fmt_at = |at: Option<Instant>, from: Instant| {
        at.map_or("never".to_string(), |at| {
            format!("{:.1}", minutes(at.saturating_duration_since(from)))
        })
    };
    let mut table = vec![format!(
        "{:<15} {:<5} {:<30} {:<18} {:<54} {:<6} {:<8} {}",
        "scenario",
        "go",
        "leak (nominal)",
        "measured",
        "leak start -> first page (alert, min)",
        "kill",
        "predict",
        "leakwatch first suspected (min)"
    )];
    for r in &running {
        let first = pages(&webhook, r.sc.name)
            .into_iter()
            .find(|(_, a, _)| a != PREDICT_LINEAR)
            .map_or("none".to_string(), |(at, a, s)| {
                format!("{a}/{s} {:.1}", minutes(at - r.started))
            });
        let kill_at = match (&kill, r.sc.expect) {
            (Some(k), Expect::OomKill) => format!("{:.1}", minutes(k.at - r.started)),
            (None, Expect::OomKill) => "none".into(),
            _ => "-".into(),
        };
        let suspected: Vec<String> = LEAK_KINDS
            .iter()
            .filter_map(|k| {
                seen.suspected
                    .get(&(r.sc.name.to_string(), k.to_string()))
                    .map(|at| format!("{k} {:.1}", minutes(*at - r.started)))
            })
            .collect();
        table.push(format!(
            "{:<15} {:<5} {:<30} {:<18} {:<54} {:<6} {:<8} {}",
            r.sc.name,
            r.sc.go,
            r.sc.leak,
            seen.measured(r),
            first,
            kill_at,
            fmt_at(seen.first_firing(PREDICT_LINEAR, r.sc.name), r.started),
            if suspected.is_empty() {
                "never".into()
            } else {
                suspected.join(", ")
            }
        ));
    }
    for (name, started) in [(PROM_TARGET, prom_started), (README_TARGET, readme_started)] {
        let suspected = if name == README_TARGET {
            seen.readme
                .iter()
                .find(|(_, s)| s.as_deref() == Some("suspected"))
                .map_or("never".into(), |(at, _)| {
                    format!("heap {:.1}", minutes(*at - started))
                })
        } else {
            let v: Vec<String> = LEAK_KINDS
                .iter()
                .filter_map(|k| {
                    seen.suspected
                        .get(&(name.to_string(), k.to_string()))
                        .map(|at| format!("{k} {:.1}", minutes(*at - started)))
                })
                .collect();
            if v.is_empty() {
                "never".into()
            } else {
                v.join(", ")
            }
        };
        let first = pages(&webhook, name)
            .into_iter()
            .find(|(_, a, _)| a != PREDICT_LINEAR)
            .map_or("none".to_string(), |(at, a, s)| {
                format!("{a}/{s} {:.1}", minutes(at - started))
            });
        table.push(format!(
            "{:<15} {:<5} {:<30} {:<18} {:<54} {:<6} {:<8} {}",
            if name == README_TARGET {
                "readme"
            } else {
                name
            },
            if name == README_TARGET { "1.19" } else { "-" },
            if name == README_TARGET {
                "README: go run . -mode heap"
            } else {
                "none: real Prometheus 2.42"
            },
            "-",
            if name == README_TARGET {
                "(own leakwatch, no rules)".to_string()
            } else {
                first
            },
            "-",
            fmt_at(seen.first_firing(PREDICT_LINEAR, name), started),
            suspected
        ));
    }
    table.push(fleet.row(&webhook));
    let expected: Vec<String> = running
        .iter()
        .filter_map(|r| match r.sc.expect {
            Expect::Page(a) => Some(format!(
                "{}: {a} at {}",
                r.sc.name,
                fmt_at(
                    pages(&webhook, r.sc.name)
                        .iter()
                        .find(|(_, x, _)| x == a)
                        .map(|p| p.0),
                    r.started
                )
            )),
            Expect::OomKill => Some(format!(
                "fast: LeakwatchTimeToOOM/critical at {}",
                fmt_at(critical, r.started)
            )),
            Expect::Quiet => None,
        })
        .collect();
    eprintln!(
        "\nlive_defaults: closing table (minutes from each service's start; leakwatch started \
         {:.1} s after the first service; 'predict' = {PREDICT_LINEAR} first firing in Prometheus)\n{}\n\
         expected pages: {}\nfast's dumps: {:?}\n",
        (lw_started - running[0].started).as_secs_f64(),
        table.join("\n"),
        expected.join("; "),
        fast_dumps.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    let mut failed = Vec::new();
    for (what, result) in &checks {
        match result {
            Ok(how) => eprintln!("PASS {what}: {how}"),
            Err(why) => {
                eprintln!("FAIL {what}: {why}");
                failed.push(format!("{what}: {why}"));
            }
        }
    }
    eprintln!(
        "live_defaults: whole test {:.1} min",
        minutes(test_started.elapsed())
    );
    if !failed.is_empty() {
        let log = lw.stderr();
        let lines: Vec<&str> = log.lines().collect();
        eprintln!(
            "live_defaults: leakwatch's last log lines:\n{}",
            lines[lines.len().saturating_sub(30)..].join("\n")
        );
    }
    drop(prometheus);
    drop(alertmanager);
    drop(fleet);
    drop(lw);
    drop(running);
    assert!(
        failed.is_empty(),
        "{} of {} checks failed:\n- {}",
        failed.len(),
        checks.len(),
        failed.join("\n- ")
    );
}

/// The first line of a report page's text (tags stripped) that starts with the verdict
/// state's word ("inconclusive: ...", "warming up: ...", "growing, but ...").
fn reason_line(page: &str, state: &str) -> Option<String> {
    // One line per list item and cell; the words inside (wrapped in spans) kept whole.
    let breaks = regex::Regex::new(r"<(li|/li|td|/td|p|/p|tr|/tr)\b[^>]*>").unwrap();
    let tags = regex::Regex::new(r"<[^>]*>").unwrap();
    let text = breaks.replace_all(page, "\n");
    let text = tags.replace_all(&text, "");
    let word = match state {
        "warming_up" => "warming up",
        "no_leak" => "growth did not go on",
        other => other,
    };
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with(word) || (state == "warming_up" && l.starts_with("growing, but")))
        .map(|l| l.chars().take(300).collect())
}

/// A kind's verdict state on a report page (its row of the evidence table: the kind's
/// runbook link, then the state's words), as the metric's `state` label names it.
pub(crate) fn report_state(page: &str, kind: &str) -> Option<String> {
    use leakwatch::analysis::kinds::VerdictState;
    let row = regex::Regex::new(&format!(
        r#"(?s)>{kind}</a>.*?<span class="w">([^<]+)</span>"#
    ))
    .unwrap();
    let words = row.captures(page)?.get(1)?.as_str().trim().to_string();
    Some(
        VerdictState::ALL
            .iter()
            .find(|s| s.words() == words)
            .map_or(words, |s| s.as_str().to_string()),
    )
}
