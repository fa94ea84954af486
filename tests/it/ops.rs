//! The operations bundle: alert and recording rules (promtool check + unit tests),
//! Grafana dashboards, the runbook, the docker-compose stack and the configs that
//! scripts/ops-config generates for the demo and end-to-end tests.
//!
//! The cross-checks are what make the bundle safe to refactor against: every metric
//! name in the rules, rule tests, dashboards and runbook must exist in
//! `leakwatch::metrics::METRICS` (with `_total` exactly on counters), so renaming a
//! metric fails here instead of silently blanking a panel or an alert.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use leakwatch::metrics::{Kind, METRICS};
use regex::Regex;
use serde_json::Value as Json;
use serde_norway::Value as Yaml;

use crate::stack::Proc;
use crate::support::{free_port, try_http_get};

/// Where the shipped rules' `runbook_url`s point: the runbook leakwatch serves itself.
const RUNBOOK_BASE: &str = "http://127.0.0.1:10760/runbook#";
const INSTALL_HINT: &str = "run `sudo scripts/install-test-deps` (Debian prometheus, prometheus-alertmanager, docker-compose)";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Files directly in `dir` (relative to the repo root) ending in `ext`, sorted.
fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("list {dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(ext))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no *{ext} in {dir}");
    out
}

/// Runs a tool from the repo root; panics with its output unless it succeeds.
fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}; {INSTALL_HINT}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{program} {} failed ({}):\n{text}",
        args.join(" "),
        out.status
    );
    text
}

fn yaml(text: &str, what: &str) -> Yaml {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn str_of<'a>(v: &'a Yaml, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Yaml::as_str)
}

fn seq<'a>(v: &'a Yaml, key: &str) -> &'a [Yaml] {
    v.get(key)
        .and_then(Yaml::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

// -------------------------------------------------------------------------------------
// Rules
// -------------------------------------------------------------------------------------

/// Every rule of every rules file in alerts/.
fn rules() -> Vec<Yaml> {
    let mut out = Vec::new();
    for f in files("alerts", ".yml") {
        let doc = yaml(
            &std::fs::read_to_string(&f).unwrap(),
            &f.display().to_string(),
        );
        for group in seq(&doc, "groups") {
            out.extend(seq(group, "rules").iter().cloned());
        }
    }
    out
}

fn recording_rule_names() -> BTreeSet<String> {
    rules()
        .iter()
        .filter_map(|r| str_of(r, "record").map(str::to_string))
        .collect()
}

fn alert_names() -> BTreeSet<String> {
    rules()
        .iter()
        .filter_map(|r| str_of(r, "alert").map(str::to_string))
        .collect()
}

#[test]
fn rules_pass_promtool_check_and_unit_tests() {
    let rule_files: Vec<String> = files("alerts", ".yml")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["check", "rules"];
    args.extend(rule_files.iter().map(String::as_str));
    let out = run_ok("promtool", &args);
    assert!(out.contains("SUCCESS"), "{out}");

    let test_files: Vec<String> = files("alerts/tests", ".yml")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["test", "rules"];
    args.extend(test_files.iter().map(String::as_str));
    let out = run_ok("promtool", &args);
    assert_eq!(
        out.matches("SUCCESS").count(),
        test_files.len(),
        "every test file passes:\n{out}"
    );
}

#[test]
fn every_alert_is_complete_and_links_to_its_runbook_section() {
    let rules = rules();
    let alerts: Vec<&Yaml> = rules.iter().filter(|r| r.get("alert").is_some()).collect();
    assert!(alerts.len() >= 13, "only {} alerts", alerts.len());
    let humanized = Regex::new(r"\{\{ \$value \| humanize[A-Za-z0-9]* \}\}").unwrap();
    for a in alerts {
        let name = str_of(a, "alert").unwrap();
        assert!(
            name.starts_with("Leakwatch"),
            "{name}: alerts are prefixed Leakwatch"
        );
        assert!(str_of(a, "for").is_some(), "{name}: no `for`");
        let labels = a
            .get("labels")
            .unwrap_or_else(|| panic!("{name}: no labels"));
        let severity = str_of(labels, "severity").unwrap_or_default();
        assert!(
            ["info", "warning", "critical"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        let ann = a
            .get("annotations")
            .unwrap_or_else(|| panic!("{name}: no annotations"));
        assert!(
            !str_of(ann, "summary").unwrap_or_default().is_empty(),
            "{name}: summary"
        );
        let desc = str_of(ann, "description").unwrap_or_default();
        let expr = str_of(a, "expr").unwrap();
        // The alerts on leakwatch itself select its `up` series (the one job selector,
        // set by `leakwatch rules --selector`) or its fleet mode's own series (about
        // the node's unwatched services, no target); every other alert is about a target.
        let on_leakwatch = expr.contains(&format!("up{{{}}}", leakwatch::rules::DEFAULT_SELECTOR))
            || expr.contains("leakwatch_discover_");
        assert!(
            on_leakwatch || desc.contains("{{ $labels.target }}"),
            "{name}: description lacks the target: {desc}"
        );
        assert!(
            humanized.is_match(desc),
            "{name}: description lacks a humanized $value: {desc}"
        );
        let url = str_of(ann, "runbook_url").unwrap_or_default();
        assert_eq!(
            url,
            format!("{RUNBOOK_BASE}{}", name.to_lowercase()),
            "{name}: runbook_url must point at the section named after the alert"
        );
        let without_up = expr.replace(&format!("up{{{}}}", leakwatch::rules::DEFAULT_SELECTOR), "");
        assert!(
            !without_up.contains("job="),
            "{name}: hard-coded job selector in {expr}"
        );
    }
}

/// Alert names with a test case where they fire, and with one where they must not.
fn tested_alerts() -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let (mut firing, mut quiet, mut exprs) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for f in files("alerts/tests", ".yml") {
        let doc = yaml(
            &std::fs::read_to_string(&f).unwrap(),
            &f.display().to_string(),
        );
        for case in seq(&doc, "tests") {
            for t in seq(case, "alert_rule_test") {
                let name = str_of(t, "alertname").unwrap().to_string();
                let exp = seq(t, "exp_alerts");
                if exp.is_empty() {
                    quiet.insert(name);
                } else {
                    for e in exp {
                        assert!(e.get("exp_labels").is_some(), "{name}: exp_labels");
                        let ann = e
                            .get("exp_annotations")
                            .unwrap_or_else(|| panic!("{name}: exp_annotations"));
                        assert!(
                            str_of(ann, "description").is_some(),
                            "{name}: description asserted"
                        );
                    }
                    firing.insert(name);
                }
            }
            for t in seq(case, "promql_expr_test") {
                exprs.insert(str_of(t, "expr").unwrap().to_string());
            }
        }
    }
    (firing, quiet, exprs)
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_test_and_every_recording_rule_a_test() {
    let (firing, quiet, exprs) = tested_alerts();
    for name in alert_names() {
        assert!(
            firing.contains(&name),
            "{name}: no test case where it fires"
        );
        assert!(
            quiet.contains(&name),
            "{name}: no test case where it must not fire"
        );
    }
    for record in recording_rule_names() {
        assert!(
            exprs.iter().any(|e| e.contains(&record)),
            "{record}: no promql_expr_test"
        );
    }
}

// -------------------------------------------------------------------------------------
// Runbook
// -------------------------------------------------------------------------------------

/// GitHub's anchor for a heading (the one `/runbook` gives its headings too).
use leakwatch::http::runbook::anchor as github_anchor;

fn runbook_anchors() -> BTreeSet<String> {
    read("docs/runbook.md")
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| github_anchor(l.trim_start_matches('#')))
        .collect()
}

#[test]
fn github_anchor_matches_githubs_slugs() {
    for (heading, anchor) in [
        (" LeakwatchTimeToOOM", "leakwatchtimetooom"),
        (" Verify the fix", "verify-the-fix"),
        (" What `leakwatch diff` shows!", "what-leakwatch-diff-shows"),
        (" snake_case-and-dash", "snake_case-and-dash"),
    ] {
        assert_eq!(github_anchor(heading), anchor);
    }
}

#[test]
fn runbook_has_a_section_for_every_runbook_url_and_its_links_resolve() {
    let anchors = runbook_anchors();
    for r in rules() {
        let Some(url) = r.get("annotations").and_then(|a| str_of(a, "runbook_url")) else {
            continue;
        };
        let anchor = url
            .strip_prefix(RUNBOOK_BASE)
            .unwrap_or_else(|| panic!("{url}: not under {RUNBOOK_BASE}"));
        assert!(
            anchors.contains(anchor),
            "docs/runbook.md has no section #{anchor}"
        );
    }
    let runbook = read("docs/runbook.md");
    for m in Regex::new(r"\]\(#([a-z0-9_-]+)\)")
        .unwrap()
        .captures_iter(&runbook)
    {
        assert!(
            anchors.contains(&m[1]),
            "runbook links to missing #{}",
            &m[1]
        );
    }
    // The routine the sections send readers to names the real commands.
    for needle in [
        "leakwatch diff BASE NEW --sample inuse_space --min-delta 5MB",
        "go tool pprof -top -base BASE NEW",
        "GET /dumps/",
        "leakwatch_heap_baseline_ratio",
        "within 1.1",
    ] {
        assert!(runbook.contains(needle), "runbook lacks {needle:?}");
    }
    for mode in ["`heap`", "`goroutine`", "`httpclient`", "`closure`"] {
        assert!(
            runbook.contains(mode),
            "runbook lacks the {mode} leak pattern"
        );
    }
}

/// `leakwatch rules` with no flags prints the shipped file: the two never drift.
#[test]
fn rules_command_prints_the_shipped_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_leakwatch"))
        .arg("rules")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout) == read("alerts/leakwatch-rules.yml"),
        "`leakwatch rules` differs from alerts/leakwatch-rules.yml"
    );
    // A bad flag is a clear error, not a broken file: a line break or ": " would end
    // the YAML value and start a key of its own, which promtool refuses.
    let bad = [
        ("--runbook-url", "wiki/runbook"),
        ("--runbook-url", "https://wiki.example/a: b"),
        ("--dashboard-url", "https://g.example/d\nfor: 0s"),
        ("--dashboard-url", "https://g.example/d?q=x: y"),
        ("--selector", "job=\"leakwatch\",\ninstance=\"x\""),
        ("--selector", "job=\"leak: watch\""),
    ];
    for (flag, value) in bad {
        let out = Command::new(env!("CARGO_BIN_EXE_leakwatch"))
            .args(["rules", flag, value])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {value:?} accepted");
        assert!(out.stdout.is_empty(), "{flag} {value:?}");
        assert!(err.contains(flag), "{flag} {value:?}: {err}");
    }
}

/// Rules rendered for another install (runbook, dashboard, selector) still pass
/// `promtool check rules` and every unit test, with the tests' expected links moved
/// the same way.
#[test]
fn rules_with_custom_urls_pass_promtool() {
    let runbook = "https://wiki.example.com/ops/leakwatch-runbook";
    let dashboard = "https://grafana.example.com/d/leakwatch-target";
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_leakwatch"))
        .args([
            "rules",
            "--runbook-url",
            runbook,
            "--dashboard-url",
            dashboard,
        ])
        .args(["--selector", r#"job="leakwatch", instance!="""#])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8(out.stdout).unwrap();
    assert!(!rendered.contains(RUNBOOK_BASE));
    assert!(rendered.contains(r#"absent(up{job="leakwatch", instance!=""})"#));
    std::fs::write(dir.path().join("leakwatch-rules.yml"), &rendered).unwrap();
    // The other rule files (leakwatch-kube.yml) as shipped: the tests load them too.
    for f in files("alerts", ".yml") {
        if f.file_name().unwrap() != "leakwatch-rules.yml" {
            std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
        }
    }
    let mut test_files = Vec::new();
    for f in files("alerts/tests", ".yml") {
        let mut text = String::new();
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            match line.split_once("runbook_url: ") {
                Some((indent, url)) if indent.trim().is_empty() => {
                    let anchor = url
                        .strip_prefix(RUNBOOK_BASE)
                        .expect("shipped runbook link");
                    text.push_str(&format!("{indent}runbook_url: {runbook}#{anchor}\n"));
                    text.push_str(&format!("{indent}dashboard_url: {dashboard}\n"));
                }
                _ => {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        let name = dir.path().join("tests").join(f.file_name().unwrap());
        std::fs::write(&name, text).unwrap();
        test_files.push(name.to_string_lossy().into_owned());
    }
    let rules_path = dir.path().join("leakwatch-rules.yml");
    let out = run_ok(
        "promtool",
        &["check", "rules", rules_path.to_str().unwrap()],
    );
    assert!(out.contains("SUCCESS"), "{out}");
    let mut args = vec!["test", "rules"];
    args.extend(test_files.iter().map(String::as_str));
    let out = run_ok("promtool", &args);
    assert_eq!(out.matches("SUCCESS").count(), test_files.len(), "{out}");
}

/// leakwatch serves the runbook at /runbook, with an anchor for every `runbook_url`:
/// the shipped links resolve on a default install.
#[test]
fn runbook_is_served_with_every_alert_anchor() {
    let lw = crate::support::Leakwatch::start(
        "system:\n  kernel_log: 'off'\ntargets:\n  - name: orders\n    url: http://127.0.0.1:9/\n",
    );
    let (status, body) = lw.get("/runbook");
    assert_eq!(status, 200);
    let page = String::from_utf8(body).unwrap();
    for r in rules() {
        let Some(url) = r.get("annotations").and_then(|a| str_of(a, "runbook_url")) else {
            continue;
        };
        let anchor = url.strip_prefix(RUNBOOK_BASE).unwrap();
        assert!(
            page.contains(&format!(" id=\"{anchor}\"")),
            "/runbook has no id=\"{anchor}\""
        );
    }
    assert!(
        page.contains("<meta name=\"viewport\""),
        "usable on a phone"
    );
    assert!(
        page.contains("leakwatch diff BASE NEW"),
        "the routine is on the page"
    );
}

// -------------------------------------------------------------------------------------
// Metric names
// -------------------------------------------------------------------------------------

/// Why `token` (a name found in PromQL or docs) is not a metric leakwatch exposes, or
/// None if it is. A name with colons is a recording rule: it must be defined, and its
/// metric part must be in the table (either kind; rule names drop `_total`).
fn unknown_metric(token: &str, records: &BTreeSet<String>) -> Option<String> {
    if token.contains(':') {
        if !records.contains(token) {
            return Some(format!("{token}: not a recording rule in alerts/"));
        }
        let metric = token.split(':').nth(1).unwrap_or_default();
        return (!METRICS.iter().any(|d| d.name == metric))
            .then(|| format!("{token}: {metric} is not in METRICS"));
    }
    let (name, kind) = match token.strip_suffix("_total") {
        Some(base) => (base, Kind::Counter),
        None => (token, Kind::Gauge),
    };
    if METRICS.iter().any(|d| d.name == name && d.kind == kind) {
        return None;
    }
    let other_kind = METRICS.iter().any(|d| d.name == name);
    Some(match kind {
        Kind::Gauge if other_kind => format!("{token}: a counter, exposed as {token}_total"),
        Kind::Counter if other_kind => format!("{token}: a gauge, exposed without _total"),
        _ => format!("{token}: not in METRICS"),
    })
}

fn metric_tokens(text: &str) -> BTreeSet<String> {
    Regex::new(r"[A-Za-z0-9_:]*leakwatch_[a-z0-9_]+[A-Za-z0-9_:]*")
        .unwrap()
        .find_iter(text)
        .map(|m| m.as_str().trim_end_matches(':').to_string())
        .collect()
}

#[test]
fn metric_name_check_tells_kinds_and_rule_names_apart() {
    let records: BTreeSet<String> =
        ["target:leakwatch_pprof_dump:failure_ratio30m".to_string()].into();
    // (token, None if it is exposed, else the reason given)
    let cases: &[(&str, Option<&str>)] = &[
        ("leakwatch_up", None),
        (
            "leakwatch_up_total",
            Some("a gauge, exposed without _total"),
        ),
        (
            "leakwatch_heap_live_bytes_total",
            Some("a gauge, exposed without _total"),
        ),
        ("leakwatch_pprof_dump_total", None),
        (
            "leakwatch_pprof_dump",
            Some("a counter, exposed as leakwatch_pprof_dump_total"),
        ),
        ("leakwatch_go_memstats_alloc_bytes", None),
        ("leakwatch_go_memstats_alloc_bytes_total", None),
        ("leakwatch_no_such_metric", Some("not in METRICS")),
        ("target:leakwatch_pprof_dump:failure_ratio30m", None),
        (
            "target:leakwatch_pprof_dump:undefined",
            Some("not a recording rule"),
        ),
        (
            "target:leakwatch_nope:failure_ratio30m",
            Some("not a recording rule"),
        ),
    ];
    for (token, want) in cases {
        let got = unknown_metric(token, &records);
        match want {
            None => assert_eq!(got, None, "{token}"),
            Some(reason) => assert!(
                got.as_deref().is_some_and(|g| g.contains(reason)),
                "{token}: got {got:?}, want {reason:?}"
            ),
        }
    }
    assert_eq!(
        metric_tokens(r#"rate(leakwatch_pprof_dump_total{x="y"}[5m]) / target:leakwatch_up:max"#),
        ["leakwatch_pprof_dump_total", "target:leakwatch_up:max"]
            .map(String::from)
            .into()
    );
}

#[test]
fn every_metric_name_in_rules_dashboards_and_runbook_exists() {
    let records = recording_rule_names();
    let mut sources: Vec<PathBuf> = files("alerts", ".yml");
    sources.extend(files("alerts/tests", ".yml"));
    sources.extend(files("dashboards", ".json"));
    sources.push(root().join("docs/runbook.md"));
    let mut problems = Vec::new();
    let mut seen = 0;
    for f in &sources {
        let text = std::fs::read_to_string(f).unwrap();
        for token in metric_tokens(&text) {
            seen += 1;
            if let Some(why) = unknown_metric(&token, &records) {
                problems.push(format!(
                    "{}: {why}",
                    f.strip_prefix(root()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        seen > 100,
        "found only {seen} metric names: is the scan broken?"
    );
    assert!(
        problems.is_empty(),
        "unknown metric names:\n{}",
        problems.join("\n")
    );
}

// -------------------------------------------------------------------------------------
// Dashboards
// -------------------------------------------------------------------------------------

fn dashboard(name: &str) -> Json {
    let text = read(&format!("dashboards/{name}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("dashboards/{name}: {e}"))
}

/// Every `uid` in the JSON with where it is; only the dashboard's own top-level uid
/// and datasource references to `${datasource}` are allowed.
fn datasource_uid_problems(v: &Json, path: &str, out: &mut Vec<String>) {
    match v {
        Json::Object(m) => {
            for (k, child) in m {
                let p = format!("{path}.{k}");
                if k == "uid" && !path.is_empty() && child != "${datasource}" {
                    out.push(format!("{p} = {child}"));
                }
                if k == "datasource" {
                    match child {
                        Json::String(s) if s != "${datasource}" => out.push(format!("{p} = {s}")),
                        Json::Object(ds)
                            if ds.get("uid").and_then(Json::as_str) != Some("${datasource}") =>
                        {
                            out.push(format!("{p} = {child}"))
                        }
                        _ => {}
                    }
                }
                datasource_uid_problems(child, &p, out);
            }
        }
        Json::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                datasource_uid_problems(child, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn datasource_uid_check_flags_fixed_uids() {
    let cases = [
        (
            r#"{"uid": "dash", "panels": [{"datasource": {"type": "prometheus", "uid": "${datasource}"}}]}"#,
            0,
        ),
        (
            r#"{"uid": "dash", "panels": [{"datasource": {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}}]}"#,
            2,
        ),
        (
            r#"{"panels": [{"targets": [{"datasource": "Prometheus"}]}]}"#,
            1,
        ),
        (
            r#"{"templating": {"list": [{"datasource": {"uid": "${datasource}"}, "current": {"uid": "abc"}}]}}"#,
            1,
        ),
    ];
    for (json, problems) in cases {
        let mut out = Vec::new();
        datasource_uid_problems(&serde_json::from_str(json).unwrap(), "", &mut out);
        assert_eq!(out.len(), problems, "{json}: {out:?}");
    }
}

#[test]
fn dockerfile_sources_skip_other_stages_and_flags() {
    let text = "FROM x AS b\nCOPY --chown=1:1 Cargo.toml Cargo.lock ./\nCOPY --from=b /out/bin /bin\nADD src ./src\nRUN cp a b\n";
    assert_eq!(
        dockerfile_sources(text),
        ["Cargo.toml", "Cargo.lock", "src"]
    );
}

fn panels(d: &Json) -> Vec<&Json> {
    d["panels"].as_array().unwrap().iter().collect()
}

fn exprs(d: &Json) -> Vec<String> {
    let mut out = Vec::new();
    for p in panels(d) {
        for t in p["targets"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            out.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if v["type"] == "query" {
            out.push(v["query"].as_str().unwrap().to_string());
        }
    }
    out
}

#[test]
fn dashboards_are_grafana_json_with_a_datasource_variable_and_no_uids() {
    for name in ["leakwatch-target.json", "leakwatch-fleet.json"] {
        let d = dashboard(name);
        assert!(
            d["schemaVersion"].as_u64().unwrap() >= 39,
            "{name}: schemaVersion"
        );
        assert!(
            d["uid"].as_str().unwrap().starts_with("leakwatch-"),
            "{name}: uid"
        );
        assert!(
            d.get("__inputs").is_none(),
            "{name}: __inputs would ask for a UID on import"
        );

        let mut problems = Vec::new();
        datasource_uid_problems(&d, "", &mut problems);
        assert!(
            problems.is_empty(),
            "{name}: datasource UIDs:\n{}",
            problems.join("\n")
        );

        let vars: BTreeMap<&str, &Json> = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["name"].as_str().unwrap(), v))
            .collect();
        assert_eq!(vars["datasource"]["type"], "datasource");
        assert_eq!(vars["datasource"]["query"], "prometheus");
        assert_eq!(vars["job"]["query"], "label_values(leakwatch_up, job)");
        assert_eq!(
            vars["target"]["query"],
            r#"label_values(leakwatch_up{job=~"$job"}, target)"#
        );

        let mut ids = BTreeSet::new();
        for p in panels(&d) {
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "{name}: duplicate panel id"
            );
            let g = &p["gridPos"];
            assert!(
                g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24,
                "{name}: {} off the grid",
                p["title"]
            );
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{name}: {}",
                p["title"]
            );
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{name}: {} has no query", p["title"]);
            for t in targets {
                let expr = t["expr"].as_str().unwrap();
                // Per-target queries select by the variables, never a fixed job.
                assert!(!expr.contains("job=\""), "{name}: hard-coded job in {expr}");
                assert!(
                    expr.contains("$job") || expr.contains("vector("),
                    "{name}: {expr} ignores $job"
                );
            }
        }
    }
}

#[test]
fn target_dashboard_has_every_row_and_fleet_ranks_targets() {
    let d = dashboard("leakwatch-target.json");
    let rows: Vec<&str> = panels(&d)
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            "Verdict and time to OOM",
            "Heap",
            "GC",
            "Allocation vs free",
            "In-use by package",
            "Growth by function",
            "Goroutines and HTTP connections",
            "Container memory",
            "Process",
            "Memory events and pressure",
            "OOM kills",
            "Dumps",
            "Exporter health",
        ]
    );
    let all = exprs(&d).join("\n");
    for metric in [
        "leakwatch_leak_suspected",
        "leakwatch_time_to_oom_seconds",
        "leakwatch_go_memstats_heap_alloc_bytes",
        "leakwatch_heap_live_slope_bytes_per_second",
        "leakwatch_go_memstats_frees_total",
        "leakwatch_heap_inuse_share",
        "leakwatch_heap_growth_bytes",
        "leakwatch_goroutines_by_state",
        "leakwatch_http_client_connections",
        "leakwatch_cgroup_memory_working_set_bytes",
        "leakwatch_cgroup_memory_limit_bytes",
        "leakwatch_cgroup_memory_pressure_avg10_ratio",
        "leakwatch_oom_kills_total",
        "leakwatch_pprof_dump_total",
        "leakwatch_scrape_duration_seconds",
        "leakwatch_scrape_errors_total",
    ] {
        assert!(
            all.contains(metric),
            "target dashboard does not show {metric}"
        );
    }

    let f = dashboard("leakwatch-fleet.json");
    let tables: BTreeMap<&str, &Json> = panels(&f)
        .into_iter()
        .filter(|p| p["type"] == "table")
        .map(|p| (p["title"].as_str().unwrap(), p))
        .collect();
    let slope = tables["Targets by live-heap slope"];
    assert!(
        slope["targets"][0]["expr"]
            .as_str()
            .unwrap()
            .trim_start_matches('(')
            .starts_with("target:leakwatch_heap_live_slope_bytes_per_second:max{")
    );
    assert_eq!(slope["options"]["sortBy"][0]["desc"], true);
    let oom = tables["Targets by time to OOM"];
    assert!(
        oom["targets"][0]["expr"]
            .as_str()
            .unwrap()
            .trim_start_matches('(')
            .starts_with("target:leakwatch_time_to_oom_seconds:min{")
    );
    assert_eq!(
        oom["options"]["sortBy"][0]["desc"], false,
        "soonest OOM first"
    );
}

/// A panel reading a recording rule says so: its description names the rule and the
/// shipped file recording it, and its "no data" text says to load that file, so an
/// empty panel on a Prometheus without the rules reads as a missing rule, not a bug.
#[test]
fn panels_reading_recording_rules_name_the_rule_file() {
    let record = Regex::new(r"(?m)^\s*- record:\s*(\S+)").unwrap();
    let mut rules: BTreeMap<String, String> = BTreeMap::new();
    for f in files("alerts", ".yml") {
        let rel = f
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for c in record.captures_iter(&std::fs::read_to_string(&f).unwrap()) {
            rules.insert(c[1].to_string(), rel.clone());
        }
    }
    let mut checked = 0;
    for name in ["leakwatch-target.json", "leakwatch-fleet.json"] {
        for p in panels(&dashboard(name)) {
            let exprs = crate::stack::panel_exprs(p);
            let title = p["title"].as_str().unwrap_or_default();
            for (rule, file) in &rules {
                if !exprs.iter().any(|e| e.contains(rule.as_str())) {
                    continue;
                }
                checked += 1;
                let description = p["description"].as_str().unwrap_or_default();
                assert!(
                    description.contains(rule.as_str()) && description.contains(file.as_str()),
                    "{name} {title:?} reads {rule} but its description does not name it and {file}: {description}"
                );
                let no_value = p["fieldConfig"]["defaults"]["noValue"]
                    .as_str()
                    .unwrap_or_default();
                assert!(
                    no_value.contains(file.as_str()),
                    "{name} {title:?} reads {rule}; its no-data text does not name {file}: {no_value:?}"
                );
            }
        }
    }
    assert!(checked >= 6, "only {checked} panel/rule pairs");
}

/// Dashboard PromQL with Grafana's variables substituted, checked by promtool as
/// recording rules: a typo in a panel query fails here, not in front of an operator.
#[test]
fn dashboard_queries_are_valid_promql() {
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    let mut n = 0;
    for name in ["leakwatch-target.json", "leakwatch-fleet.json"] {
        for e in exprs(&dashboard(name)) {
            if e.starts_with("label_values(") {
                continue;
            }
            // Grafana's `query_result(EXPR)` runs EXPR as an instant query.
            let e = match e.strip_prefix("query_result(") {
                Some(inner) => inner.strip_suffix(')').unwrap_or(inner).to_string(),
                None => e,
            };
            let e = e
                .replace("$lw_fallback", "http://127.0.0.1:10760")
                .replace("$__rate_interval", "1m")
                .replace("$__range", "1h")
                .replace("$job", ".+")
                .replace("$target", ".+");
            n += 1;
            rules.push_str(&format!(
                "      - record: dashboard_query_{n}\n        expr: {}\n",
                serde_json::to_string(&e).unwrap()
            ));
        }
    }
    assert!(n > 60, "only {n} dashboard queries");
    let file = dir.path().join("dashboards.yml");
    std::fs::write(&file, rules).unwrap();
    let out = run_ok("promtool", &["check", "rules", file.to_str().unwrap()]);
    assert!(out.contains(&format!("SUCCESS: {n} rules found")), "{out}");
}

#[test]
fn dashboards_are_what_the_generator_writes() {
    run_ok("python3", &["scripts/gen-dashboards.py", "--check"]);
}

// -------------------------------------------------------------------------------------
// docker-compose stack and deploy configs
// -------------------------------------------------------------------------------------

/// Source paths of the COPY/ADD instructions of a Dockerfile (not `--from` stages).
fn dockerfile_sources(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((instr, rest)) = words.split_first() else {
            continue;
        };
        if !["COPY", "ADD"].contains(instr) || rest.iter().any(|w| w.starts_with("--from")) {
            continue;
        }
        let args: Vec<&str> = rest
            .iter()
            .copied()
            .filter(|w| !w.starts_with("--"))
            .collect();
        if let Some((_dest, srcs)) = args.split_last() {
            out.extend(srcs.iter().map(|s| s.to_string()));
        }
    }
    out
}

#[test]
fn compose_file_is_valid_and_everything_it_builds_or_mounts_exists() {
    run_ok(
        "docker-compose",
        &["-f", "docker-compose.yml", "config", "--quiet"],
    );

    let compose = yaml(&read("docker-compose.yml"), "docker-compose.yml");
    let services = compose.get("services").and_then(Yaml::as_mapping).unwrap();
    let names: BTreeSet<&str> = services.keys().filter_map(Yaml::as_str).collect();
    assert_eq!(
        names,
        [
            "alertmanager",
            "grafana",
            "healthy-service",
            "leakwatch",
            "leaky-service",
            "prometheus"
        ]
        .into()
    );
    let mut checked = 0;
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        if let Some(build) = svc.get("build") {
            let context = root().join(str_of(build, "context").unwrap());
            let dockerfile = context.join(str_of(build, "dockerfile").unwrap());
            assert!(
                dockerfile.is_file(),
                "{name}: {} missing",
                dockerfile.display()
            );
            for src in dockerfile_sources(&std::fs::read_to_string(&dockerfile).unwrap()) {
                assert!(
                    context.join(&src).exists(),
                    "{name}: {} copies missing {src}",
                    dockerfile.display()
                );
                checked += 1;
            }
        }
        for v in seq(svc, "volumes") {
            let spec = v.as_str().unwrap();
            let src = spec.split(':').next().unwrap();
            if src.starts_with('.') {
                assert!(root().join(src).exists(), "{name}: mounts missing {src}");
                checked += 1;
            }
        }
        for p in seq(svc, "ports") {
            assert!(
                p.as_str().unwrap().starts_with("127.0.0.1:"),
                "{name}: port {p:?} not on loopback"
            );
        }
    }
    assert!(checked >= 10, "only {checked} paths checked");

    let leaky = &services[&Yaml::from("leaky-service")];
    let cmd: Vec<&str> = seq(leaky, "command")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(cmd, ["-addr", "0.0.0.0:6060", "-mode", "heap"]);
    let lw_docker = read("deploy/leakwatch.Dockerfile");
    for needle in [
        "FROM rust:1-bookworm AS builder",
        "FROM debian:bookworm-slim",
        "USER leakwatch",
        "EXPOSE 10760",
    ] {
        assert!(
            lw_docker.contains(needle),
            "leakwatch.Dockerfile lacks {needle}"
        );
    }
}

/// Copies `src` to `dest` as a build context would: recursively, leaving out what the
/// Dockerfile's `.dockerignore` leaves out (`target`, `.git`, `*.profraw`).
fn copy_context(src: &Path, dest: &Path) {
    let name = src.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name == "target" || name == ".git" || name.ends_with(".profraw") {
        return;
    }
    if src.is_dir() {
        std::fs::create_dir_all(dest).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let e = e.unwrap();
            copy_context(&e.path(), &dest.join(e.file_name()));
        }
    } else {
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(src, dest).unwrap();
    }
}

/// The release path without a Rust toolchain is the container image: its builder stage
/// must compile from exactly what it copies (a file the crate includes at compile time,
/// such as `docs/runbook.md` for `/runbook` or `alerts/leakwatch-rules.yml` for
/// `leakwatch rules`, once was not copied, and `docker build` failed). No Docker engine
/// runs here, so the stage's COPY lines are replayed into a directory and the crate is
/// checked there with the lock file (`--locked`, as the RUN line builds it); the
/// runtime stage runs the binary the builder made with the command the image gives it.
#[test]
fn container_image_builds_from_what_its_dockerfile_copies() {
    let text = read("deploy/leakwatch.Dockerfile");
    let builder: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("FROM "))
        .skip(1)
        .take_while(|l| !l.starts_with("FROM "))
        .collect();
    let ignore = read("deploy/leakwatch.Dockerfile.dockerignore");
    for line in ["target", ".git"] {
        assert!(
            ignore.lines().any(|l| l == line),
            ".dockerignore lacks {line}"
        );
    }
    let ctx = tempfile::tempdir().unwrap();
    let mut copied = Vec::new();
    for line in &builder {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() != Some(&"COPY") {
            continue;
        }
        let (dest, srcs) = words[1..].split_last().unwrap();
        for src in srcs {
            let to = if dest.ends_with('/') {
                ctx.path().join(dest).join(src)
            } else {
                ctx.path().join(dest)
            };
            copy_context(&root().join(src), &to);
            copied.push(src.to_string());
        }
    }
    assert!(copied.contains(&"Cargo.lock".to_string()), "{copied:?}");
    let run = builder
        .iter()
        .find(|l| l.starts_with("RUN "))
        .expect("a RUN line in the builder stage");
    assert!(
        run.contains("cargo build --release --locked --bin leakwatch"),
        "{run}"
    );
    // The same compile without codegen, sharing this repo's target dir (the lint step
    // checked the dependencies already): what fails here fails `docker build`.
    let out = Command::new("cargo")
        .args(["check", "--locked", "--offline", "--bin", "leakwatch"])
        .current_dir(ctx.path())
        .env("CARGO_TARGET_DIR", root().join("target"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the image's builder stage cannot compile from what it copies ({copied:?}):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The runtime stage: the binary where ENTRYPOINT runs it, started with CMD.
    assert!(
        text.contains("COPY --from=builder /src/target/release/leakwatch /usr/local/bin/leakwatch")
    );
    assert!(text.contains(r#"ENTRYPOINT ["/usr/local/bin/leakwatch"]"#));
    let cmd_line = text
        .lines()
        .find(|l| l.starts_with("CMD "))
        .expect("a CMD line");
    let cmd: Vec<String> = serde_json::from_str(cmd_line.trim_start_matches("CMD ")).unwrap();
    assert_eq!(cmd[..2], ["--config", "/etc/leakwatch/leakwatch.yml"]);
    // docker-compose mounts deploy/leakwatch/leakwatch.yml there.
    let mut args = cmd.clone();
    args[1] = root()
        .join("deploy/leakwatch/leakwatch.yml")
        .display()
        .to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_leakwatch"))
        .args(&args)
        .arg("--config.check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "leakwatch {args:?} --config.check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn deploy_configs_are_accepted_by_prometheus_alertmanager_and_leakwatch() {
    run_ok(
        "promtool",
        &["check", "config", "deploy/prometheus/prometheus.yml"],
    );
    run_ok(
        "amtool",
        &["check-config", "deploy/alertmanager/alertmanager.yml"],
    );

    let cfg = leakwatch::config::Config::from_yaml(&read("deploy/leakwatch/leakwatch.yml"))
        .unwrap_or_else(|e| panic!("deploy/leakwatch/leakwatch.yml: {e}"));
    // The leak and a healthy service, each with the limit its container has (leakwatch
    // cannot read another container's cgroup): time to OOM pages before the kill.
    let urls: Vec<&str> = cfg.targets.iter().map(|t| t.url.as_str()).collect();
    assert_eq!(
        urls,
        ["http://leaky-service:6060/", "http://healthy-service:6060/"]
    );
    assert!(
        cfg.targets
            .iter()
            .all(|t| t.memory_limit == Some(512 * 1024 * 1024)),
        "memory_limit = the services' mem_limit (512m)"
    );

    for f in files("deploy/grafana/provisioning/datasources", ".yml") {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            !text.contains("uid:"),
            "{}: a fixed UID defeats ${{datasource}}",
            f.display()
        );
        assert!(text.contains("url: http://prometheus:9090"));
    }
}

/// What scripts/demo (and the end-to-end test) runs: the generated configs must be
/// accepted by the real tools, with every non-zero `for:` shortened.
#[test]
fn ops_config_generates_configs_the_real_tools_accept() {
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
    let ops = root().join("scripts/ops-config");
    let ops = ops.to_str().unwrap();

    run_ok(ops, &["rules", "--out", &p("rules.yml"), "--for", "7s"]);
    let rules = std::fs::read_to_string(p("rules.yml")).unwrap();
    let fors: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("for: "))
        .collect();
    assert_eq!(
        fors.len(),
        alert_names().len() + 1,
        "LeakwatchTimeToOOM has two rules"
    );
    assert!(fors.iter().all(|f| *f == "7s" || *f == "0m"), "{fors:?}");
    run_ok("promtool", &["check", "rules", &p("rules.yml")]);

    run_ok(
        ops,
        &[
            "prometheus",
            "--out",
            &p("prometheus.yml"),
            "--leakwatch",
            "127.0.0.1:10760",
            "--alertmanager",
            "127.0.0.1:9093",
            "--rules",
            &p("rules.yml"),
        ],
    );
    let out = run_ok("promtool", &["check", "config", &p("prometheus.yml")]);
    assert!(out.contains("SUCCESS: 1 rule files found"), "{out}");

    run_ok(
        ops,
        &[
            "alertmanager",
            "--out",
            &p("alertmanager.yml"),
            "--webhook",
            "http://127.0.0.1:9/",
        ],
    );
    run_ok("amtool", &["check-config", &p("alertmanager.yml")]);

    run_ok(
        ops,
        &[
            "leakwatch",
            "--out",
            &p("leakwatch.yml"),
            "--target",
            "leaky=http://127.0.0.1:6060",
            "--pid",
            "4242",
            "--label",
            "team=demo",
            "--listen",
            "127.0.0.1:10761",
        ],
    );
    let cfg =
        leakwatch::config::Config::from_yaml(&std::fs::read_to_string(p("leakwatch.yml")).unwrap())
            .unwrap_or_else(|e| panic!("generated leakwatch.yml: {e}"));
    let t = &cfg.targets[0];
    assert_eq!((t.name.as_str(), t.pid), ("leaky", Some(4242)));
    assert_eq!(t.interval, std::time::Duration::from_secs(1));
    assert_eq!(t.labels.get("team").map(String::as_str), Some("demo"));

    run_ok("bash", &["-n", "scripts/demo"]);
}

/// `ops-config alertmanager` (the demo, the end-to-end and live tests) writes the shipped
/// Alertmanager config with the receiver's URL filled in, and changes the grouping
/// timers only when asked: the routes and inhibitions those runs exercise are the
/// ones shipped, and the two cannot drift.
#[test]
fn ops_config_alertmanager_is_the_shipped_config_with_the_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alertmanager.yml");
    let out_s = out.to_str().unwrap();
    let ops = root().join("scripts/ops-config");
    let webhook = "http://127.0.0.1:9/hook";
    let generate = |extra: &[&str]| -> Yaml {
        let mut args = vec!["alertmanager", "--out", out_s, "--webhook", webhook];
        args.extend(extra);
        run_ok(ops.to_str().unwrap(), &args);
        run_ok("amtool", &["check-config", out_s]);
        yaml(&std::fs::read_to_string(&out).unwrap(), out_s)
    };

    let mut want = yaml(
        &read("deploy/alertmanager/alertmanager.yml"),
        "deploy/alertmanager/alertmanager.yml",
    );
    let mut urls = 0;
    for r in want["receivers"].as_sequence_mut().expect("receivers") {
        for w in r
            .get_mut("webhook_configs")
            .and_then(Yaml::as_sequence_mut)
            .map(Vec::as_mut_slice)
            .unwrap_or_default()
        {
            w["url"] = Yaml::from(webhook);
            urls += 1;
        }
    }
    assert_eq!(urls, 1, "the shipped config has one URL to fill in");
    assert_eq!(generate(&[]), want, "the shipped config, but for the URL");

    want["route"]["group_wait"] = Yaml::from("1s");
    want["route"]["group_interval"] = Yaml::from("2s");
    want["route"]["repeat_interval"] = Yaml::from("1h");
    assert_eq!(
        generate(&[
            "--group-wait",
            "1s",
            "--group-interval",
            "2s",
            "--repeat-interval",
            "1h"
        ]),
        want,
        "the timers, and nothing else"
    );
}

/// The shipped inhibitions in a real Alertmanager: an OOM-killed target pages once (the
/// kill), its outage alerts are inhibited; another target's outage still pages, its
/// scrape errors inhibited by its TargetDown. Every alert an inhibition names exists.
#[test]
fn shipped_alertmanager_pages_an_oom_kill_once() {
    let shipped = read("deploy/alertmanager/alertmanager.yml");
    let named: BTreeSet<String> = Regex::new(r"Leakwatch[A-Za-z]+")
        .unwrap()
        .find_iter(&shipped)
        .map(|m| m.as_str().to_string())
        .collect();
    let alerts = alert_names();
    let missing: Vec<&String> = named.difference(&alerts).collect();
    assert!(
        missing.is_empty(),
        "inhibitions name no such alert: {missing:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
    let ops = root().join("scripts/ops-config");
    run_ok(
        ops.to_str().unwrap(),
        &[
            "alertmanager",
            "--out",
            &p("alertmanager.yml"),
            "--webhook",
            "http://127.0.0.1:9/",
        ],
    );
    let url = format!("http://127.0.0.1:{}", free_port());
    // An empty --cluster.listen-address turns off clustering (it would bind 0.0.0.0:9094).
    let mut am = Proc::spawn(
        "alertmanager",
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", p("alertmanager.yml")))
            .arg(format!("--storage.path={}", p("data")))
            .arg(format!("--web.listen-address={}", &url["http://".len()..]))
            .arg("--cluster.listen-address="),
        dir.path(),
    );
    am.wait_ready(
        &format!("{url}/-/ready"),
        std::time::Duration::from_secs(30),
    );

    // (alertname, target, extra label): what the rules send for the two targets.
    let sent = [
        ("LeakwatchContainerOOMKilled", "orders", "severity=critical"),
        ("LeakwatchTargetDown", "orders", "severity=warning"),
        ("LeakwatchScrapeErrors", "orders", "endpoint=heap"),
        ("LeakwatchPprofDumpFailures", "orders", "profile_type=heap"),
        ("LeakwatchTargetDown", "billing", "severity=warning"),
        ("LeakwatchScrapeErrors", "billing", "endpoint=heap"),
    ];
    for (name, target, extra) in sent {
        let mut args = vec![
            format!("--alertmanager.url={url}"),
            "alert".into(),
            "add".into(),
            format!("alertname={name}"),
            format!("target={target}"),
            "job=leakwatch".into(),
            extra.into(),
        ];
        if !extra.starts_with("severity=") {
            args.push("severity=warning".into());
        }
        run_ok(
            "amtool",
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    let want: BTreeMap<(String, String), String> = [
        ("LeakwatchContainerOOMKilled", "orders", "active"),
        ("LeakwatchTargetDown", "orders", "suppressed"),
        ("LeakwatchScrapeErrors", "orders", "suppressed"),
        ("LeakwatchPprofDumpFailures", "orders", "suppressed"),
        ("LeakwatchTargetDown", "billing", "active"),
        ("LeakwatchScrapeErrors", "billing", "suppressed"),
    ]
    .into_iter()
    .map(|(a, t, s)| ((a.to_string(), t.to_string()), s.to_string()))
    .collect();
    // Alertmanager works inhibitions out as alerts are listed (new ones may still read
    // `unprocessed`): poll until the listing settles.
    let mut got = BTreeMap::new();
    for _ in 0..50 {
        let (status, body) = try_http_get(&format!("{url}/api/v2/alerts")).unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let list: Json = serde_json::from_slice(&body).unwrap();
        got = list
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let s = |v: &Json| v.as_str().unwrap_or_default().to_string();
                let key = (s(&a["labels"]["alertname"]), s(&a["labels"]["target"]));
                (key, s(&a["status"]["state"]))
            })
            .collect();
        if got == want {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(got, want, "alertmanager log:\n{}", am.tail());
}

/// Every rule test file fixes the group order, recording rules first: promtool picks
/// the order at random otherwise (prometheus/prometheus#5241), and an alert reading a
/// recording rule of the same step then fails about 1 run in 8.
#[test]
fn every_rule_test_evaluates_recording_rules_first() {
    let rules: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts/leakwatch-rules.yml"),
        )
        .unwrap(),
    )
    .unwrap();
    let groups: Vec<String> = rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect();
    let recording: Vec<&String> = rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .zip(&groups)
        .filter(|(g, _)| {
            g["rules"]
                .as_sequence()
                .is_some_and(|r| r.iter().any(|r| r.get("record").is_some()))
        })
        .map(|(_, n)| n)
        .collect();
    assert!(!recording.is_empty(), "no recording group in {groups:?}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts/tests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut wrong = Vec::new();
    for f in files {
        let doc: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let order: Vec<&str> = doc["group_eval_order"]
            .as_sequence()
            .map(|s| s.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        let complete = groups.iter().all(|g| order.contains(&g.as_str()));
        let first = recording.iter().all(|r| {
            let at = order.iter().position(|o| o == r);
            let alerts = groups
                .iter()
                .filter(|g| !recording.contains(g))
                .filter_map(|g| order.iter().position(|o| o == g))
                .min();
            matches!((at, alerts), (Some(a), Some(b)) if a < b)
        });
        if !complete || !first {
            wrong.push(format!("{}: group_eval_order {order:?}", f.display()));
        }
    }
    assert!(
        wrong.is_empty(),
        "want every group of {groups:?}, recording first:\n{}",
        wrong.join("\n")
    );
}
