//! `leakwatch watch` end to end: the real binary against the example service in heap
//! leak and healthy modes, an unreachable URL, the baseline file round trip, heap dumps,
//! and snapshots of the non-TTY and JSON output (golden files in tests/golden/watch/,
//! `UPDATE_GOLDEN=1` regenerates them).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;

use regex::Regex;

use crate::support::{LeakyService, free_port, toolchains};

const LEAK: &[&str] = &[
    "-mode",
    "heap",
    "-interval",
    "50ms",
    "-per-tick",
    "2",
    "-size",
    "32KiB",
];
const HEALTHY: &[&str] = &[
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
];
/// Fast settings: 25 samples, a verdict from 4 s on. `--startup-grace 0s`: the services
/// start just before the watch, and these tests judge the growth itself, not whether
/// it may be start-up (watch_few_gc_cycles_is_inconclusive_exit_2_not_no_leak covers the
/// defaults).
const FAST: &[&str] = &[
    "--for",
    "12s",
    "--every",
    "500ms",
    "--warmup",
    "4s",
    "--startup-grace",
    "0s",
];

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn watch(urls: &[&str], extra: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_leakwatch"))
        .arg("watch")
        .args(urls)
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run leakwatch watch");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn json_of(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        )
    })
}

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/watch")
        .join(name)
}

fn check_golden(name: &str, got: &str) {
    let path = golden_path(name);
    if crate::support::update_golden() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(got, want, "{name} differs (UPDATE_GOLDEN=1 regenerates)");
}

/// Volatile parts of the text output replaced by placeholders: the service address,
/// numbers and their units, which live-heap estimator scored best, whether monotonicity
/// was judged on every reading or on the floor (the lower envelope); per-sample lines
/// reduced to the first and the last; lists whose length depends on the runtime
/// (allocation sites beyond the top one, package shares, goroutine growth) cut to
/// their first entry.
fn normalize_text(text: &str, addr: &str) -> String {
    static BYTES: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"[+-]?\d+(\.\d+)? (B|KiB|MiB|GiB)\b").unwrap());
    static DURATION: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\b\d+(\.\d+)?(h\d+m|m\d+s|ms|h|m|s)\b").unwrap());
    static NUMBER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[+-]?\d+(\.\d+)?").unwrap());
    static SPACES: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(\S) {2,}").unwrap());
    static ESTIMATOR: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\((NextGC|heap profile|nextgc|heap_profile)\)").unwrap());
    static FLOOR: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r" \(of its floor: [^)]*\)").unwrap());
    let text = text
        .replace(&format!("http://{addr}/"), "URL")
        .replace(addr, "TARGET");
    let text = FLOOR.replace_all(&text, "");
    let mut out: Vec<String> = Vec::new();
    let mut sample_lines: Vec<String> = Vec::new();
    // Lines indented by 4 under a list header: keep the first (Some(1)) or none (Some(0)).
    let mut keep: Option<usize> = None;
    for line in text.lines() {
        let l = ESTIMATOR.replace_all(line, "(ESTIMATOR)");
        let l = BYTES.replace_all(&l, "BYTES");
        let l = DURATION.replace_all(&l, "DURATION");
        let l = NUMBER.replace_all(&l, "N");
        // Column padding depends on the width of the numbers it pads.
        let l = SPACES.replace_all(&l, "$1 ").into_owned();
        if l.starts_with("[N/N] ") {
            sample_lines.push(l);
            continue;
        }
        if !sample_lines.is_empty() {
            out.push(sample_lines.first().cloned().unwrap_or_default());
            out.push("...".to_string());
            out.push(sample_lines.last().cloned().unwrap_or_default());
            sample_lines.clear();
        }
        if l.starts_with("    ") {
            match keep {
                Some(0) => continue,
                Some(n) => keep = Some(n - 1),
                None => {}
            }
        } else {
            keep = None;
        }
        if l.starts_with("  top growing functions") {
            keep = Some(1);
        } else if l.starts_with("  goroutines:") {
            keep = Some(0);
        }
        if let Some(rest) = l.strip_prefix("  in-use by package: ") {
            let first = rest.split(',').next().unwrap_or_default();
            out.push(format!("  in-use by package: {first}, ..."));
            continue;
        }
        out.push(l);
    }
    out.join("\n") + "\n"
}

/// The JSON document's shape: every key, numbers as 0, strings as "" except the
/// categorical ones, arrays as their first element (the verdict list in full).
fn json_shape(v: &serde_json::Value, key: &str) -> serde_json::Value {
    use serde_json::Value;
    const KEEP: &[&str] = &["status", "kind", "source", "action", "function"];
    match v {
        Value::Number(_) => Value::from(0),
        Value::String(s) if KEEP.contains(&key) => Value::String(s.clone()),
        Value::String(_) => Value::String(String::new()),
        Value::Array(a) if key == "verdict" => {
            Value::Array(a.iter().map(|e| json_shape(e, "")).collect())
        }
        Value::Array(a) if key == "top_growing_functions" || key == "targets" => {
            Value::Array(a.iter().take(1).map(|e| json_shape(e, "")).collect())
        }
        Value::Array(_) => Value::String("<array>".into()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), json_shape(v, k)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[test]
fn watch_heap_leak_exits_1_naming_new_session() {
    // Every toolchain in parallel: the verdict must not depend on the Go version.
    std::thread::scope(|s| {
        for tc in toolchains() {
            s.spawn(move || {
                let svc = LeakyService::start(&tc, LEAK);
                let dumps = tempfile::tempdir().unwrap();
                let mut args = FAST.to_vec();
                args.extend(["--json", "--dump-dir"]);
                let dir = dumps.path().to_str().unwrap().to_string();
                args.push(&dir);
                let run = watch(&[&svc.url], &args);
                assert_eq!(
                    run.code, 1,
                    "Go {}: {}\n{}",
                    tc.version, run.stdout, run.stderr
                );
                let doc = json_of(&run);
                assert_eq!(doc["exit_code"], 1);
                let t = &doc["targets"][0];
                assert_eq!(t["status"], "leak_suspected", "{t:#}");
                assert_eq!(t["samples"], 25);
                assert_eq!(t["successful_samples"], 25);
                assert_eq!(
                    t["top_growing_functions"][0]["function"], "main.newSession",
                    "Go {}: {t:#}",
                    tc.version
                );
                // 40 sessions of 32 KiB a second for 12 s: well over 5 MiB grew.
                let grew = t["top_growing_functions"][0]["growth"].as_i64().unwrap();
                assert!(grew > 5 << 20, "Go {}: grew {grew}", tc.version);
                let heap = &t["verdict"][0];
                assert_eq!(
                    (heap["kind"].as_str(), heap["suspected"].as_bool()),
                    (Some("heap"), Some(true))
                );
                assert!(heap["score"].as_f64().unwrap() >= 0.5);
                assert!(
                    heap["reasons"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|r| r.as_str().unwrap().contains("top growth: main.newSession")),
                    "{heap:#}"
                );
                assert!(
                    t["live_heap"]["growth_bytes"].as_i64().unwrap() > 4 << 20,
                    "{t:#}"
                );
                // The dump pair: gzip files under DIR/<target>/ and a diff command that works.
                let d = &t["dumps"];
                let base = PathBuf::from(d["baseline"].as_str().unwrap());
                let fin = PathBuf::from(d["final"].as_str().unwrap());
                let name = base.file_name().unwrap().to_str().unwrap();
                assert!(
                    name.starts_with("heap-") && name.ends_with("-baseline.pb.gz"),
                    "{name}"
                );
                assert!(fin.to_str().unwrap().ends_with("-final.pb.gz"));
                assert_eq!(
                    base.parent(),
                    Some(dumps.path().join(svc.addr.to_string()).as_path())
                );
                for f in [&base, &fin] {
                    let bytes = std::fs::read(f).unwrap();
                    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "{}", f.display());
                }
                let no_temp = std::fs::read_dir(base.parent().unwrap())
                    .unwrap()
                    .all(|e| !e.unwrap().file_name().to_string_lossy().starts_with(".tmp"));
                assert!(no_temp);
                let cmd = d["diff_command"].as_str().unwrap();
                assert_eq!(
                    cmd,
                    format!("leakwatch diff {} {}", base.display(), fin.display())
                );
                let diff = Command::new(env!("CARGO_BIN_EXE_leakwatch"))
                    .args(["diff"])
                    .arg(&base)
                    .arg(&fin)
                    .output()
                    .unwrap();
                let diff_out = String::from_utf8_lossy(&diff.stdout);
                assert!(
                    diff.status.success() && diff_out.contains("main.newSession"),
                    "{diff_out}"
                );
            });
        }
    });
}

#[test]
fn watch_healthy_service_exits_0() {
    let tc = &toolchains()[0];
    let svc = LeakyService::start(tc, HEALTHY);
    let mut args = FAST.to_vec();
    args.push("--json");
    let run = watch(&[&svc.url], &args);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let t = &json_of(&run)["targets"][0];
    assert_eq!(t["status"], "ok");
    assert!(
        t["verdict"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["suspected"] == false)
    );
    // It allocated a lot and freed about as much.
    let ratio = t["alloc_free_bytes_ratio"].as_f64().unwrap();
    assert!((0.9..1.1).contains(&ratio), "alloc/free {ratio}");
}

#[test]
fn watch_unreachable_url_exits_2_naming_it() {
    // A port that was just free: nothing listens there.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let run = watch(&[&url], &["--for", "1s", "--every", "500ms"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let msg = run
        .stderr
        .lines()
        .find(|l| l.starts_with("leakwatch watch: could not scrape"))
        .unwrap_or_else(|| panic!("no clear message on stderr:\n{}", run.stderr));
    assert!(msg.contains(&format!("http://127.0.0.1:{port}/")), "{msg}");
    assert!(msg.contains("at any of 3 samples"), "{msg}");
    assert!(
        msg.to_lowercase().contains("connect"),
        "names the error: {msg}"
    );
    assert!(run.stdout.contains("UNREACHABLE"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("result: could not judge every target (exit 2)")
    );
}

#[test]
fn watch_baseline_saved_then_compared() {
    let tc = &toolchains()[0];
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("baseline.json");
    let f = file.to_str().unwrap();
    let healthy = LeakyService::start_on_port(tc, HEALTHY, port);
    let mut args = FAST.to_vec();
    args.extend(["--json", "--baseline-file", f]);
    // No file yet: saved.
    let run = watch(&[&healthy.url], &args);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved["url"], format!("http://127.0.0.1:{port}/"));
    let base = saved["live_heap_bytes"].as_u64().unwrap();
    // 4 x 32 KiB every 20 ms, dropped every 25 ticks: at most about 3.2 MiB of batch live.
    assert!((1 << 20..16 << 20).contains(&base), "baseline {base}");
    assert!(saved["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(json_of(&run)["targets"][0]["baseline"]["action"], "saved");
    // The same healthy service again: back within 10%.
    let run = watch(&[&healthy.url], &args);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let b = &json_of(&run)["targets"][0]["baseline"];
    assert_eq!(b["action"], "compared");
    assert_eq!(b["baseline_bytes"].as_u64(), Some(base));
    assert_eq!(b["within_tolerance"], true, "{b:#}");
    drop(healthy);
    // A leaking build at the same address: not back within 10%, exit 1, the ratio printed.
    let leaking = LeakyService::start_on_port(tc, LEAK, port);
    let text_args: Vec<&str> = FAST.iter().copied().chain(["--baseline-file", f]).collect();
    let run = watch(&[&leaking.url], &text_args);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("baseline ") && l.contains("ratio"))
        .unwrap_or_else(|| panic!("no baseline line:\n{}", run.stdout));
    assert!(line.contains("NOT within tolerance 10%"), "{line}");
    let ratio: f64 = line
        .split("ratio ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.trim_end_matches(',').parse().ok())
        .unwrap();
    assert!(ratio > 1.5, "{line}");
    assert!(line.contains(", floor "), "{line}");
}

#[test]
fn watch_output_snapshots() {
    let tc = &toolchains()[0];
    let svc = LeakyService::start(tc, LEAK);
    let addr = svc.addr.to_string();
    let url = svc.url.as_str();
    let mut json_args = FAST.to_vec();
    json_args.push("--json");
    let (text, json) = std::thread::scope(|s| {
        let text = s.spawn(|| watch(&[url], FAST));
        let json = s.spawn(|| watch(&[url], &json_args));
        (text.join().unwrap(), json.join().unwrap())
    });
    assert_eq!(text.code, 1, "{}\n{}", text.stdout, text.stderr);
    assert_eq!(json.code, 1, "{}\n{}", json.stdout, json.stderr);
    // Non-TTY: one line per target per sample.
    let samples = text.stdout.lines().filter(|l| l.starts_with('[')).count();
    assert_eq!(samples, 25, "{}", text.stdout);
    check_golden("leak.txt", &normalize_text(&text.stdout, &addr));
    let shape = json_shape(&json_of(&json), "");
    check_golden(
        "leak.json",
        &(serde_json::to_string_pretty(&shape).unwrap() + "\n"),
    );
}

/// The README's example leak ("From alert to culprit", step 1): the service's flags
/// after `-addr`, read from the README so the test runs what a reader runs.
fn readme_example_leak() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let re = Regex::new(r"go run \. -addr 127\.0\.0\.1:6060 (-mode heap -[^)&\n]*)").unwrap();
    let caps = re.captures(&readme).unwrap_or_else(|| {
        panic!("no `go run . -addr 127.0.0.1:6060 -mode heap -...` in README.md")
    });
    caps[1].split_whitespace().map(String::from).collect()
}

/// The issue-14 case: the README's example leak watched for 2 minutes every 5 s, with a
/// one-minute start-up grace and no GC asked of the service (`--gc false`; by default
/// watch asks for one when none ran for a while). The live heap only moves at a GC and a growing heap makes
/// GCs rarer (each doubles the next goal), so the minute after the grace holds only a
/// GC or two: the live heap looks like a step or a plateau. That is no evidence of "no
/// leak": the run must say inconclusive, with the reason, and exit 2 (it printed "no
/// leak found" and exited 0).
#[test]
fn watch_few_gc_cycles_is_inconclusive_exit_2_not_no_leak() {
    let tc = &toolchains()[0];
    let flags = readme_example_leak();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let svc = LeakyService::start(tc, &flags);
    let gcs_before = svc.memstat("NumGC");
    let run = watch(
        &[&svc.url],
        &[
            "--for",
            "2m",
            "--every",
            "5s",
            "--startup-grace",
            "1m",
            "--gc",
            "false",
        ],
    );
    let gcs = svc.memstat("NumGC") - gcs_before;
    let context = format!(
        "Go {}, service flags {flags:?}, {gcs} GC cycles during the watch; exit {}\nstdout:\n{}\nstderr:\n{}",
        tc.version, run.code, run.stdout, run.stderr
    );
    assert_ne!(run.code, 0, "a few-GC window judged \"no leak\": {context}");
    assert_eq!(run.code, 2, "{context}");
    let summary: Vec<&str> = run.stdout.lines().filter(|l| !l.starts_with('[')).collect();
    assert!(
        summary
            .iter()
            .any(|l| l.to_lowercase().contains("inconclusive")),
        "the summary does not say inconclusive: {context}"
    );
    let gc_reason = Regex::new(r"(?i)\bgc( cycles?|s)?\b|garbage collection").unwrap();
    assert!(
        summary.iter().any(|l| gc_reason.is_match(l)),
        "the summary gives no reason about GC cycles: {context}"
    );
    assert!(
        !run.stdout.contains("no leak found")
            && !summary
                .iter()
                .any(|l| l.starts_with("== ") && l.to_lowercase().contains("no leak")),
        "{context}"
    );
    assert!(run.stdout.contains("(exit 2)"), "{context}");
    eprintln!(
        "watch few-GC: {gcs} GC cycles in 2 min; summary:\n{}",
        summary.join("\n")
    );
}

/// Issue 21's soak check: `watch URL --for 45s --every 1s` with the defaults on the
/// README's example leak started just before fails the check (exit 1) and names the
/// leaking function. With a start-up grace by default it ended INCONCLUSIVE (exit 2:
/// "3 GC cycle(s) since the start-up grace gave 2 live-heap reading(s)").
#[test]
fn watch_soak_check_on_a_fresh_leak_exits_1_with_the_defaults() {
    let tc = &toolchains()[0];
    let flags = readme_example_leak();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let svc = LeakyService::start(tc, &flags);
    let run = watch(&[&svc.url], &["--for", "45s", "--every", "1s"]);
    let context = format!(
        "Go {}, flags {flags:?}; exit {}\nstdout:\n{}\nstderr:\n{}",
        tc.version, run.code, run.stdout, run.stderr
    );
    assert_eq!(run.code, 1, "{context}");
    assert!(run.stdout.contains("LEAK SUSPECTED"), "{context}");
    assert!(run.stdout.contains("main.newSession"), "{context}");
}
