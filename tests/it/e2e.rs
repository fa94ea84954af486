//! End to end, every process real and on 127.0.0.1: the example Go services ->
//! leakwatch -> Prometheus (the shipped rules, `for:` shortened) -> Alertmanager -> a
//! webhook receiver inside the test; then every PromQL expression of the rules and the
//! dashboards run against that Prometheus.
//!
//! The point is what unit tests cannot show: that the page an operator gets for a heap
//! leak really carries the target, that a healthy sawtooth service stays quiet under the
//! same rules, and that every dashboard panel has data when fed by a real leakwatch
//! (the metric-name cross-check against `METRICS` lives in ops.rs, not here).
//!
//! Time is compressed by one factor: leakwatch's window is 40 s instead of the 30 min
//! the rules are written for (scrapes every 500 ms, 8 s warmup), and every non-zero
//! `for:` of the rules copy shrinks by the same factor (30m -> 40s, 15m -> 20s). The
//! `for:` durations are part of what keeps a sawtooth's slope noise from paging:
//! shrinking them more than the window (scripts/ops-config's flat `--for 15s`) made the
//! healthy service page LeakwatchLiveHeapGrowingFast at once; scaled, it stayed pending
//! up to 38 of 40 s, which is why that alert now also requires a monotonic live heap.
//! On failure the healthy target's slope, window and monotonicity are printed. Prometheus
//! scrapes and evaluates every second. Range windows in the rules are left as shipped: a fresh
//! Prometheus evaluates `increase(x[30m])` over the data it has, which is what matters
//! for "does it parse, does it return data". The processes, the webhook receiver and
//! the Prometheus API helpers live in stack.rs, shared with live_defaults.rs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value as Json;
use serde_norway::Value as Yaml;

use crate::stack::{
    GoService, Proc, Webhook, has_data, ops_config, prom_get, prom_query, root, url_encode,
    write_limit,
};
use crate::support::{
    Leakwatch, LeakyService, TempCgroup, free_port, toolchain, toolchains, wait_until,
};
use leakwatch::config::Collector;
use leakwatch::metrics::{METRICS, exposed_name};

const HEAP: &str = "e2e_heap";
const HEALTHY: &str = "e2e_healthy";
/// A target nobody listens for: the only way to get scrape-error series.
const DOWN: &str = "e2e_down";
/// The job name scripts/ops-config gives the leakwatch scrape.
const JOB: &str = "leakwatch";
/// leakwatch's `--web.external-url` here: a name that is not the address it listens
/// on, so a link carrying it can only have come from the flag.
const EXTERNAL_URL: &str = "http://leakwatch-e2e.example:10760";
/// The dashboards' `lw_fallback` textbox, for instances exporting no URL.
const FALLBACK_URL: &str = "http://fallback.example:1";
/// leakwatch's analysis window here, and the one the shipped rules assume (the
/// default): their ratio compresses every `for:`.
const WINDOW: Duration = Duration::from_secs(40);
const SHIPPED_WINDOW: Duration = Duration::from_secs(30 * 60);
const WARMUP: Duration = Duration::from_secs(8);
const HEAP_ALERT: &str = "LeakwatchHeapLeakSuspected";
/// Alerts that mean "this service leaks": none may fire for the healthy target.
const LEAK_ALERTS: &[&str] = &[
    "LeakwatchHeapLeakSuspected",
    "LeakwatchGoroutineLeakSuspected",
    "LeakwatchHTTPConnectionLeakSuspected",
    "LeakwatchLiveHeapGrowingFast",
    "LeakwatchAllocFreeImbalance",
    "LeakwatchHeapConcentratedInOnePackage",
    "LeakwatchGoroutinesProvenLeaked",
];
/// Memory limit of the heap service's cgroup, and its GOMEMLIMIT (so both the cgroup
/// and the Go runtime limit panels have data, and time-to-OOM has a limit to aim at).
const CGROUP_LIMIT: u64 = 1 << 30;
const GOMEMLIMIT: &str = "768MiB";

// -------------------------------------------------------------------------------------
// Prometheus' alerts
// -------------------------------------------------------------------------------------

/// What Prometheus' alerts said about the healthy target's leak alerts, polled over
/// the test: which fired, and the longest stretch each was pending (how close it came).
#[derive(Default)]
struct QuietWatch {
    fired: BTreeSet<String>,
    pending_since: BTreeMap<String, Instant>,
    longest_pending: BTreeMap<String, Duration>,
}

impl QuietWatch {
    fn poll(&mut self, prom_url: &str) {
        let now = Instant::now();
        let mut pending_now = BTreeSet::new();
        for (name, target, state) in prom_alerts(prom_url) {
            if target != HEALTHY || !LEAK_ALERTS.contains(&name.as_str()) {
                continue;
            }
            if state == "firing" {
                self.fired.insert(name);
            } else {
                let since = *self.pending_since.entry(name.clone()).or_insert(now);
                let longest = self.longest_pending.entry(name.clone()).or_default();
                *longest = (*longest).max(now - since);
                pending_now.insert(name);
            }
        }
        self.pending_since
            .retain(|name, _| pending_now.contains(name));
    }
}

/// The healthy target's live-heap signals over the test, one line per 2 s, for a
/// failure message.
fn healthy_trace(base: &str, since: Instant) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = now - since.elapsed().as_secs_f64();
    let series = |expr: &str| -> Vec<(f64, String)> {
        let resp = prom_get(
            base,
            &format!(
                "/api/v1/query_range?query={}&start={start:.3}&end={now:.3}&step=2",
                url_encode(expr)
            ),
        );
        resp["data"]["result"][0]["values"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|v| {
                (
                    v[0].as_f64().unwrap_or(0.0) - start,
                    v[1].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let sel = format!(r#"{{target="{HEALTHY}"}}"#);
    let ratio = series(&format!(
        "target:leakwatch_heap_live_slope_bytes_per_second:ratio_per_hour{sel}"
    ));
    let span = series(&format!("leakwatch_window_span_seconds{sel}"));
    let live = series(&format!("leakwatch_heap_live_bytes{sel}"));
    let mono = series(&format!("leakwatch_heap_growth_monotonicity{sel}"));
    let at = |s: &[(f64, String)], t: f64| {
        s.iter()
            .find(|(x, _)| (x - t).abs() < 0.5)
            .map_or("-".to_string(), |(_, v)| v.clone())
    };
    span.iter()
        .map(|(t, sp)| {
            format!(
                "{t:6.1}s {:>12} {sp:>6} {:>10} {:>8}",
                at(&ratio, *t),
                at(&live, *t),
                at(&mono, *t)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prometheus' active alerts: (alertname, target, state).
fn prom_alerts(base: &str) -> Vec<(String, String, String)> {
    let resp = prom_get(base, "/api/v1/alerts");
    assert_eq!(resp["status"], "success", "{resp}");
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
                s(&a["state"]),
            )
        })
        .collect()
}

// -------------------------------------------------------------------------------------
// The shipped expressions
// -------------------------------------------------------------------------------------

/// (rule name, expr) of every alerting and recording rule in the shipped rules file.
fn rule_exprs() -> Vec<(String, String)> {
    let path = root().join("alerts/leakwatch-rules.yml");
    let doc: Yaml = serde_norway::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    for group in doc["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule
                .get("alert")
                .or_else(|| rule.get("record"))
                .and_then(Yaml::as_str)
                .unwrap();
            out.push((name.to_string(), rule["expr"].as_str().unwrap().to_string()));
        }
    }
    out
}

/// One query of a dashboard: where it is and its PromQL with Grafana variables.
struct PanelQuery {
    dashboard: &'static str,
    panel: String,
    /// The panel's description: it names the collectors off by default it needs.
    description: String,
    expr: String,
}

/// The collectors off by default whose families `expr` queries.
fn optional_collectors(expr: &str) -> BTreeSet<Collector> {
    let token = Regex::new(r"[a-zA-Z_:][a-zA-Z0-9_:]*").unwrap();
    token
        .find_iter(expr)
        .filter_map(|t| {
            METRICS
                .iter()
                .find(|d| exposed_name(d) == t.as_str())?
                .collector
        })
        .filter(|c| !c.default_on())
        .collect()
}

/// The config's `metrics:` block with every collector on.
fn every_collector() -> String {
    let mut y = String::from("metrics:\n  collectors:\n");
    for c in Collector::ALL {
        y.push_str(&format!("    {}: true\n", c.name()));
    }
    y
}

/// Every panel target and every templating query of the shipped dashboards.
fn dashboard_queries() -> (Vec<PanelQuery>, Vec<PanelQuery>) {
    let (mut panels, mut variables) = (Vec::new(), Vec::new());
    for dashboard in ["leakwatch-target.json", "leakwatch-fleet.json"] {
        let path = root().join("dashboards").join(dashboard);
        let d: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for p in d["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                panels.push(PanelQuery {
                    dashboard,
                    panel: p["title"].as_str().unwrap_or_default().to_string(),
                    description: p["description"].as_str().unwrap_or_default().to_string(),
                    expr: t["expr"].as_str().unwrap().to_string(),
                });
            }
        }
        for v in d["templating"]["list"].as_array().unwrap() {
            if v["type"] == "query" {
                variables.push(PanelQuery {
                    dashboard,
                    panel: format!("${}", v["name"].as_str().unwrap()),
                    description: String::new(),
                    expr: v["query"].as_str().unwrap().to_string(),
                });
            }
        }
    }
    (panels, variables)
}

/// What Grafana would send for `expr` with `$target` set to `target` (a regex: the
/// dashboards use `=~"$target"`) and the job variable set to the real job. Panics on a
/// variable it does not know, so a new one cannot slip through unsubstituted.
fn substitute(expr: &str, target: &str) -> String {
    let out = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "5m")
        .replace("${job}", JOB)
        .replace("$job", JOB)
        .replace("${target}", target)
        .replace("$target", target)
        .replace("${lw_fallback}", FALLBACK_URL)
        .replace("$lw_fallback", FALLBACK_URL);
    assert!(!out.contains('$'), "unknown Grafana variable in {expr}");
    out
}

/// Metrics of dashboard panels that cannot have data in this setup, with the reason.
fn exemptions(
    cgroup: Option<&TempCgroup>,
    kernel_log: bool,
    dumps: bool,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match cgroup {
        None => {
            for m in [
                "leakwatch_cgroup_memory_usage_bytes",
                "leakwatch_cgroup_memory_working_set_bytes",
                "leakwatch_cgroup_memory_limit_bytes",
                "leakwatch_cgroup_memory_high_bytes",
                "leakwatch_cgroup_memory_events_total",
                "leakwatch_cgroup_memory_pressure_avg10_ratio",
                "leakwatch_cgroup_memory_pressure_stall_seconds_total",
                "leakwatch_last_oom_kill_timestamp_seconds",
                "leakwatch_last_oom_kill_anon_rss_bytes",
                "leakwatch_cgroup_memory_peak_bytes",
                "leakwatch_cgroup_memory_swap_usage_bytes",
                "leakwatch_cgroup_memory_stat_bytes",
                "leakwatch_cgroup_memory_stat_events_total",
                "leakwatch_cgroup_info",
                "leakwatch_cgroup_scrape_success",
                "leakwatch_process_gomemlimit_exceeds_cgroup_limit",
            ] {
                out.push((
                    m,
                    "no memory cgroup could be created (needs root)".to_string(),
                ));
            }
        }
        Some(cg) if cg.version == 1 => {
            out.push((
                "leakwatch_cgroup_memory_high_bytes",
                "cgroup v1 has no memory.high".to_string(),
            ));
            for m in [
                "leakwatch_cgroup_memory_pressure_avg10_ratio",
                "leakwatch_cgroup_memory_pressure_stall_seconds_total",
            ] {
                out.push((
                    m,
                    "cgroup v1 has no per-cgroup memory.pressure (PSI)".to_string(),
                ));
            }
        }
        Some(_) => {}
    }
    if !kernel_log {
        out.push((
            "leakwatch_kernel_log_readable",
            "/dev/kmsg is not readable: kernel_log is off, leakwatch exports no kernel-log series"
                .to_string(),
        ));
    }
    if !kernel_log && cgroup.is_some() {
        for m in [
            "leakwatch_last_oom_kill_timestamp_seconds",
            "leakwatch_last_oom_kill_anon_rss_bytes",
        ] {
            out.push((
                m,
                "/dev/kmsg is not readable: no kernel OOM reports".to_string(),
            ));
        }
    }
    if !dumps {
        for m in [
            "leakwatch_pprof_dump_total",
            "leakwatch_pprof_dump:failure_ratio30m",
            "leakwatch_pprof_dump_bytes_total",
            "leakwatch_pprof_dump_last_success_timestamp_seconds",
        ] {
            out.push((
                m,
                "the config has no `dumps` key yet: leakwatch writes no dumps".to_string(),
            ));
        }
    }
    out
}

/// Whether leakwatch's config accepts a `dumps` section (the dump writer exists; it is
/// wired into the config separately).
fn dumps_configurable() -> bool {
    leakwatch::config::Config::from_yaml("defaults:\n  dumps:\n    dir: /nonexistent\n").is_ok()
}

/// The shipped rules with every non-zero `for:` scaled by WINDOW / SHIPPED_WINDOW
/// (rounded up to a second), and the longest `for:` after scaling. Nothing else changes.
fn compressed_rules() -> (String, Duration) {
    let text = std::fs::read_to_string(root().join("alerts/leakwatch-rules.yml")).unwrap();
    let for_re = Regex::new(r"(?m)^(\s+for:\s*)(\d+)([smh])\s*$").unwrap();
    let mut longest = Duration::ZERO;
    let mut n = 0;
    let out = for_re.replace_all(&text, |c: &regex::Captures| {
        n += 1;
        let unit = match &c[3] {
            "s" => 1,
            "m" => 60,
            _ => 3600,
        };
        let secs: u64 = c[2].parse::<u64>().unwrap() * unit;
        let scaled =
            (secs as f64 * WINDOW.as_secs_f64() / SHIPPED_WINDOW.as_secs_f64()).ceil() as u64;
        longest = longest.max(Duration::from_secs(scaled));
        format!("{}{scaled}s", &c[1])
    });
    assert!(n >= 13, "only {n} `for:` in the rules");
    (out.into_owned(), longest)
}

/// A process that allocates until the OOM killer stops it, inside `cgroup`: a real
/// memcg OOM kill in the heap target's cgroup, so the OOM panels and the OOM alert have
/// something to show. Returns once the kernel has killed it.
fn oom_kill_in(cgroup: &TempCgroup, dir: &Path) {
    let mut hog = Proc::spawn(
        "oom-hog",
        Command::new("sh")
            .arg("-c")
            // `tail` keeps the never-ending "line" of /dev/zero in memory.
            .arg(r#"echo $$ > "$1" && exec tail /dev/zero"#)
            .arg("sh")
            .arg(cgroup.procs()),
        dir,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(Some(status)) = hog.child.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the memory hog was not OOM-killed within 30s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Killed by a signal (SIGKILL from the OOM killer), not an exit.
    assert_eq!(status.code(), None, "hog: {status}:\n{}", hog.tail());
}

#[test]
fn heap_leak_pages_the_webhook_and_every_rule_and_panel_query_works() {
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();

    // Declared first so it is removed last, after the processes in it are gone.
    let cgroup = TempCgroup::create_or_skip("leakwatch-e2e");
    if let Some(cg) = &cgroup {
        write_limit(cg, CGROUP_LIMIT);
    }
    let kernel_log = File::open("/dev/kmsg").is_ok();
    let dumps = dumps_configurable();

    let webhook = Webhook::start();

    // Alertmanager first, so Prometheus never has to retry a notification.
    ops_config(&[
        "alertmanager",
        "--out",
        &p("alertmanager.yml"),
        "--webhook",
        &webhook.url,
        "--group-wait",
        "1s",
        "--group-interval",
        "2s",
    ]);
    let am_addr = format!("127.0.0.1:{}", free_port());
    let mut alertmanager = Proc::spawn(
        "alertmanager",
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", p("alertmanager.yml")))
            .arg(format!("--storage.path={}", p("am-data")))
            .arg(format!("--web.listen-address={am_addr}"))
            // Empty: no gossip listener, nothing bound but the web port.
            .arg("--cluster.listen-address="),
        dir,
    );

    // The services. The heap one runs with Go 1.27, whose goroutineleak profile feeds
    // the "leaked goroutines" panels; its pid file path makes its cmdline unique for
    // leakwatch's `process:` regex (other tests run leaky-services at the same time).
    let pid_file = p("heap-service.pid");
    let leak_started = Instant::now();
    let heap = GoService::start(
        &toolchain("1.27"),
        &[
            "-mode",
            "heap",
            "-interval",
            "50ms",
            "-per-tick",
            "2",
            "-size",
            "32KiB",
            "-pid-file",
            &pid_file,
        ],
        &[("GOMEMLIMIT", GOMEMLIMIT)],
        cgroup.as_ref().map(|cg| cg.procs()).as_deref(),
        dir,
    );
    let healthy_started = Instant::now();
    let healthy = LeakyService::start(
        &toolchains()[0],
        &[
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
    );

    let dumps_yaml = if dumps {
        format!(
            "  dumps:\n    dir: {}\n    heap_every: 5s\n    goroutine_every: 5s\n    on_suspect: true\n",
            p("dumps")
        )
    } else {
        String::new()
    };
    let config = format!(
        "defaults:\n  interval: 500ms\n  timeout: 2s\n  window: {window}s\n  warmup: {warmup}s\n  goroutineleak_interval: 2s\n{dumps_yaml}\
         system:\n  kernel_log: {kernel}\n\
         targets:\n\
         \x20 - name: {HEAP}\n    url: {heap_url}\n    process: {process:?}\n\
         \x20 - name: {HEALTHY}\n    url: {healthy_url}\n\
         \x20 - name: {DOWN}\n    url: http://127.0.0.1:{down_port}\n",
        window = WINDOW.as_secs(),
        warmup = WARMUP.as_secs(),
        kernel = if kernel_log { "/dev/kmsg" } else { "off" },
        heap_url = heap.url,
        process = format!("leaky-service .*-pid-file {}$", regex::escape(&pid_file)),
        healthy_url = healthy.url,
        down_port = free_port(),
    );
    leakwatch::config::Config::from_yaml(&config)
        .unwrap_or_else(|e| panic!("the e2e leakwatch config is rejected: {e}\n{config}"));
    let lw = Leakwatch::start_with_args(&config, &["--web.external-url", EXTERNAL_URL]);
    let lw_addr = lw.url.trim_start_matches("http://").to_string();

    let (rules, longest_for) = compressed_rules();
    std::fs::write(p("rules.yml"), rules).unwrap();
    ops_config(&[
        "prometheus",
        "--out",
        &p("prometheus.yml"),
        "--leakwatch",
        &lw_addr,
        "--alertmanager",
        &am_addr,
        "--rules",
        &p("rules.yml"),
        "--job",
        JOB,
        "--scrape-interval",
        "1s",
        "--evaluation-interval",
        "1s",
    ]);
    let prom_url = format!("http://127.0.0.1:{}", free_port());
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
    alertmanager.wait_ready(
        &format!("http://{am_addr}/-/ready"),
        Duration::from_secs(20),
    );
    prometheus.wait_ready(&format!("{prom_url}/-/ready"), Duration::from_secs(30));

    // A real OOM kill in the heap target's cgroup, once leakwatch has found the cgroup
    // (kills are attributed by the victim's memcg) and Prometheus holds both kill
    // counters at 0: `increase()` cannot see a kill that happened before a counter's
    // first sample.
    if let Some(cg) = &cgroup {
        let before = format!(
            r#"count_over_time(leakwatch_oom_kills_total{{target="{HEAP}"}}[1m]) >= 2
                and on (target) count_over_time(leakwatch_cgroup_memory_events_total{{target="{HEAP}", event="oom_kill"}}[1m]) >= 2"#
        );
        wait_until(
            Duration::from_secs(30),
            "the kill counters of the heap target in Prometheus",
            || Some(()).filter(|_| has_data(&prom_query(&prom_url, &before))),
        );
        oom_kill_in(cg, dir);
    }

    // Wait for the page, watching Prometheus' alerts for the healthy target meanwhile.
    let mut healthy_watch = QuietWatch::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    let (paged_at, page) = loop {
        healthy_watch.poll(&prom_url);
        if let Some(hit) = webhook.first_firing(HEAP_ALERT, HEAP) {
            break hit;
        }
        assert!(
            Instant::now() < deadline,
            "no {HEAP_ALERT} for {HEAP} at the webhook within 120s; Prometheus alerts: {:?}\n\
             webhook got: {:?}\nleakwatch:\n{}",
            prom_alerts(&prom_url),
            webhook
                .alerts()
                .iter()
                .map(|(_, a)| &a["labels"])
                .collect::<Vec<_>>(),
            lw.metrics()
                .text
                .lines()
                .filter(|l| l.contains("leak_suspected") || l.contains("leakwatch_up"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let leak_to_page = paged_at.duration_since(leak_started);
    assert_eq!(page["labels"]["target"], HEAP, "{page}");
    assert_eq!(page["labels"]["severity"], "warning", "{page}");
    assert_eq!(page["labels"]["job"], JOB, "{page}");
    assert!(
        page["annotations"]["description"]
            .as_str()
            .unwrap_or_default()
            .contains(HEAP),
        "{page}"
    );
    assert!(
        page["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_default()
            .ends_with("#leakwatchheapleaksuspected"),
        "{page}"
    );
    eprintln!(
        "e2e: {HEAP_ALERT} for {HEAP} reached the webhook {:.1}s after the leak started",
        leak_to_page.as_secs_f64()
    );

    // The OOM kill pages too (`for: 0m`), for the heap target only.
    if cgroup.is_some() {
        wait_until(
            Duration::from_secs(20),
            "LeakwatchContainerOOMKilled at the webhook",
            || webhook.first_firing("LeakwatchContainerOOMKilled", HEAP),
        );
    }

    // Every rule expression parses and evaluates.
    let mut rule_results = Vec::new();
    for (name, expr) in rule_exprs() {
        let resp = prom_query(&prom_url, &expr);
        assert_eq!(resp["status"], "success", "rule {name}: {expr}\n{resp}");
        rule_results.push(format!(
            "{name}: {} series",
            resp["data"]["result"].as_array().map_or(0, Vec::len)
        ));
    }
    assert!(rule_results.len() >= 19, "{rule_results:?}");

    // The dashboards' variables list the job and the targets.
    let (panels, variables) = dashboard_queries();
    let label_values = Regex::new(r"^label_values\((.+),\s*([a-z_]+)\)$").unwrap();
    for v in variables
        .iter()
        .filter(|v| !v.expr.starts_with("query_result("))
    {
        let c = label_values.captures(&v.expr).unwrap_or_else(|| {
            panic!(
                "{} {}: not label_values(): {}",
                v.dashboard, v.panel, v.expr
            )
        });
        let resp = prom_query(&prom_url, &substitute(&c[1], ".*"));
        assert_eq!(
            resp["status"], "success",
            "{} {}: {resp}",
            v.dashboard, v.panel
        );
        let values: BTreeSet<&str> = resp["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["metric"][&c[2]].as_str())
            .collect();
        let want: &[&str] = if &c[2] == "job" {
            &[JOB]
        } else {
            &[HEAP, HEALTHY, DOWN]
        };
        for w in want {
            assert!(
                values.contains(w),
                "{} {}: {values:?} lacks {w}",
                v.dashboard,
                v.panel
            );
        }
    }

    dashboard_links_carry_the_external_url(&prom_url, &lw.url);

    // Every panel query parses and, with $target = the heap target, returns data --
    // except the queries about failures (only the unreachable target has those) and
    // the exemptions listed with their reason. First on the lean default, where a query
    // of a collector off by default may be empty if its panel says which flag it needs;
    // then with every collector on (a reload), where every query has data.
    let exempt = exemptions(cgroup.as_ref(), kernel_log, dumps);
    let target_for = |expr: &str| {
        if expr.contains("leakwatch_scrape_errors_total") {
            DOWN
        } else {
            HEAP
        }
    };
    for q in &panels {
        for c in optional_collectors(&q.expr) {
            let flag = format!("--collector.{}", c.name());
            assert!(
                q.description.contains(&flag),
                "{} panel {:?} queries the {} collector (off by default) and does not say {flag}",
                q.dashboard,
                q.panel,
                c.name()
            );
        }
    }
    let empty_queries = |lean: bool| {
        let check_deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut empty = Vec::new();
            let mut optional = 0;
            for q in &panels {
                let expr = substitute(&q.expr, target_for(&q.expr));
                let resp = prom_query(&prom_url, &expr);
                assert_eq!(
                    resp["status"], "success",
                    "{} panel {:?} does not parse: {expr}\n{resp}",
                    q.dashboard, q.panel
                );
                let reason = exempt.iter().find(|(m, _)| q.expr.contains(m));
                if has_data(&resp) || reason.is_some() {
                    continue;
                }
                if lean && !optional_collectors(&q.expr).is_empty() {
                    optional += 1;
                } else {
                    empty.push(format!("{} panel {:?}: {expr}", q.dashboard, q.panel));
                }
            }
            if empty.is_empty() || Instant::now() > check_deadline {
                return (empty, optional);
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    };
    let (empty, optional) = empty_queries(true);
    assert!(
        empty.is_empty(),
        "dashboard queries without data on the lean default:\n{}",
        empty.join("\n")
    );
    eprintln!(
        "e2e: lean default: {optional} of {} panel queries empty, each on a panel naming the collector it needs",
        panels.len()
    );
    lw.reload_with(&format!("{config}{}", every_collector()));
    let (empty, _) = empty_queries(false);
    assert!(
        empty.is_empty(),
        "dashboard queries without data with every collector on:\n{}",
        empty.join("\n")
    );
    for (metric, why) in &exempt {
        let n = panels.iter().filter(|q| q.expr.contains(metric)).count();
        eprintln!("e2e: exempt from 'has data' ({n} queries with {metric}): {why}");
    }

    // Over the same time the healthy service raised no leak alert, neither in
    // Prometheus nor at the webhook; "the same time" lasts until any alert could have
    // fired: the window filled (warmup, then the window) and the longest `for:` passed.
    let quiet_until = healthy_started + WARMUP + WINDOW + longest_for + Duration::from_secs(3);
    while Instant::now() < quiet_until {
        healthy_watch.poll(&prom_url);
        std::thread::sleep(Duration::from_millis(500));
    }
    healthy_watch.poll(&prom_url);
    assert!(
        healthy_watch.fired.is_empty(),
        "leak alerts fired for {HEALTHY}: {:?}; live-heap growth per hour, window span, live bytes, monotonicity (t since leak start):\n{}",
        healthy_watch.fired,
        healthy_trace(&prom_url, leak_started)
    );
    let paged: Vec<_> = webhook
        .alerts()
        .into_iter()
        .filter(|(_, a)| {
            a["labels"]["target"] == HEALTHY
                && LEAK_ALERTS.contains(&a["labels"]["alertname"].as_str().unwrap_or_default())
        })
        .map(|(_, a)| a["labels"].clone())
        .collect();
    assert!(paged.is_empty(), "{HEALTHY} was paged: {paged:?}");
    for (name, longest) in &healthy_watch.longest_pending {
        eprintln!(
            "e2e: {name} was pending for {HEALTHY} (never firing), at most {:.0}s in a row",
            longest.as_secs_f64()
        );
    }

    eprintln!(
        "e2e: {} rule expressions and {} panel queries checked; webhook got {:?}; whole test {:.1}s",
        rule_results.len(),
        panels.len(),
        webhook
            .alerts()
            .iter()
            .map(|(_, a)| format!(
                "{}/{}/{}",
                a["labels"]["alertname"].as_str().unwrap_or_default(),
                a["labels"]["target"].as_str().unwrap_or_default(),
                a["status"].as_str().unwrap_or_default()
            ))
            .collect::<BTreeSet<_>>(),
        started.elapsed().as_secs_f64()
    );
    drop(prometheus);
    drop(alertmanager);
    drop(lw);
    drop(healthy);
    drop(heap);
}

/// The dashboards' links go to the leakwatch watching the target, at its
/// `--web.external-url`: the target dashboard's `lw_url` variable (its
/// `query_result(...)` and regex, as Grafana runs them) resolves to it, every link
/// built on it reads `EXTERNAL_URL/...`, and each row of the fleet tables carries it as
/// `external_url` for its data links; a target no instance watches gets the fallback.
/// The resolved path is leakwatch's report page for the target, and leakwatch's own
/// runbook prints the same URL.
fn dashboard_links_carry_the_external_url(prom_url: &str, lw_url: &str) {
    let query_result = Regex::new(r"^query_result\((.+)\)$").unwrap();
    let lw_url_var = |dashboard: &str, target: &str| -> BTreeSet<String> {
        let d = dashboard_json(dashboard);
        let v = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "lw_url")
            .unwrap_or_else(|| panic!("{dashboard}: no lw_url variable"));
        let expr = v["query"].as_str().unwrap();
        let inner = &query_result
            .captures(expr)
            .unwrap_or_else(|| panic!("{dashboard} $lw_url: not query_result(): {expr}"))[1];
        // Grafana's `/re/`, applied to each result written as `name{labels} value`.
        let re = v["regex"].as_str().unwrap();
        let re = Regex::new(re.trim_start_matches('/').trim_end_matches('/')).unwrap();
        let resp = prom_query(prom_url, &substitute(inner, target));
        assert_eq!(resp["status"], "success", "{dashboard} $lw_url: {resp}");
        resp["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let labels: Vec<String> = s["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let text = format!("{{{}}}", labels.join(","));
                re.captures(&text)
                    .unwrap_or_else(|| panic!("{dashboard} $lw_url: {re} misses {text}"))[1]
                    .to_string()
            })
            .collect()
    };
    let just = |u: &str| BTreeSet::from([u.to_string()]);
    assert_eq!(
        lw_url_var("leakwatch-target.json", HEAP),
        just(EXTERNAL_URL)
    );
    assert_eq!(lw_url_var("leakwatch-fleet.json", ".+"), just(EXTERNAL_URL));
    assert_eq!(
        lw_url_var("leakwatch-target.json", "nobody-watches-this"),
        just(FALLBACK_URL)
    );

    // Every link of the target dashboard that uses ${lw_url}, as Grafana fills it in.
    let target = dashboard_json("leakwatch-target.json");
    let mut urls = BTreeSet::new();
    collect_link_urls(&target, &mut urls);
    let resolved: BTreeSet<String> = urls
        .iter()
        .filter(|u| u.contains("${lw_url}"))
        .map(|u| {
            u.replace("${lw_url}", EXTERNAL_URL)
                .replace("${target:percentencode}", HEAP)
                .replace("${target}", HEAP)
        })
        .collect();
    let report = format!("{EXTERNAL_URL}/targets/{HEAP}");
    assert!(resolved.contains(&report), "{resolved:?}");
    for u in &resolved {
        assert!(u.starts_with(EXTERNAL_URL), "{u}");
        assert!(!u.contains('$'), "an unresolved variable in {u}");
    }
    // The path is leakwatch's report page of the target.
    let (status, body) = crate::support::http_get(&format!(
        "{lw_url}{}",
        report.trim_start_matches(EXTERNAL_URL)
    ));
    assert_eq!(status, 200, "{report}");
    assert!(String::from_utf8_lossy(&body).contains(HEAP));

    // The fleet tables: every row carries its leakwatch's URL, read by the data link.
    let fleet = dashboard_json("leakwatch-fleet.json");
    let mut fleet_links = BTreeSet::new();
    collect_link_urls(&fleet, &mut fleet_links);
    let row_link = "${__data.fields.external_url}/targets/${__value.raw}";
    assert!(fleet_links.contains(row_link), "{fleet_links:?}");
    let mut tables = 0;
    for p in fleet["panels"].as_array().unwrap() {
        let exprs: Vec<&str> = crate::stack::panel_exprs(p)
            .into_iter()
            .filter(|e| e.contains("external_url"))
            .collect();
        tables += usize::from(!exprs.is_empty());
        for expr in exprs {
            let resp = prom_query(prom_url, &substitute(expr, ".+"));
            let rows = resp["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert!(
                !rows.is_empty(),
                "{}: no rows for {expr}\n{resp}",
                p["title"]
            );
            for r in rows {
                let m = &r["metric"];
                assert_eq!(
                    m["external_url"], EXTERNAL_URL,
                    "{}: {expr}\n{r}",
                    p["title"]
                );
                let t = m["target"].as_str().unwrap();
                let link = row_link
                    .replace(
                        "${__data.fields.external_url}",
                        m["external_url"].as_str().unwrap(),
                    )
                    .replace("${__value.raw}", t);
                assert_eq!(link, format!("{EXTERNAL_URL}/targets/{t}"));
            }
        }
    }
    assert!(
        tables >= 3,
        "fleet tables joined with the external URL: {tables}"
    );

    // leakwatch's own pages print the same URL, not the address the request came to.
    let (_, runbook) = crate::support::http_get(&format!("{lw_url}/runbook?target={HEAP}"));
    let runbook = String::from_utf8_lossy(&runbook);
    assert!(
        runbook.contains(&format!("{EXTERNAL_URL}/dumps/{HEAP}/")),
        "the runbook does not print {EXTERNAL_URL}"
    );
    assert!(!runbook.contains(lw_url), "the runbook prints {lw_url}");
    eprintln!("e2e: dashboard links and the runbook carry --web.external-url {EXTERNAL_URL}");
}

fn dashboard_json(name: &str) -> Json {
    let path = root().join("dashboards").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Every `url` of a link in `v`: under a `links` key (panel and dashboard links) or in
/// a field override `{"id": "links", "value": [...]}` (data links).
fn collect_link_urls(v: &Json, out: &mut BTreeSet<String>) {
    match v {
        Json::Object(m) => {
            let links = m.get("links").or_else(|| {
                m.get("value")
                    .filter(|_| m.get("id").and_then(Json::as_str) == Some("links"))
            });
            if let Some(a) = links.and_then(Json::as_array) {
                out.extend(a.iter().filter_map(|l| l["url"].as_str().map(String::from)));
            }
            m.values().for_each(|x| collect_link_urls(x, out));
        }
        Json::Array(a) => a.iter().for_each(|x| collect_link_urls(x, out)),
        _ => {}
    }
}
