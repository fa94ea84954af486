//! Config errors and warnings, as the user reads them: one golden line per field kind
//! naming the key (its full path), what was expected and the line (and column), the
//! same through `Config::from_yaml`, `leakwatch --config F --config.check`, startup
//! and a reload (`POST /-/reload`, `SIGHUP`), which keeps the old config.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use leakwatch::config::Config;

use crate::support::{Leakwatch, wait_until};

/// A target to put under `targets:` rows.
const T: &str = "targets:\n  - name: a\n    url: http://127.0.0.1:1\n";

/// (field kind, YAML, the error after `config: `)
fn error_table() -> Vec<(&'static str, String, &'static str)> {
    vec![
        (
            "duration",
            "defaults:\n  interval: 5\n".into(),
            "defaults.interval: invalid duration \"5\" (no unit), expected a duration such as 500ms, 15s, 5m or 1h30m at line 2 column 13",
        ),
        (
            "duration, unknown unit",
            format!("{T}    timeout: 5x\n"),
            "targets[0].timeout: invalid duration \"5x\" (unknown unit \"x\"), expected a duration such as 500ms, 15s, 5m or 1h30m at line 4 column 14",
        ),
        (
            "duration, negative",
            "discover:\n  rescan_interval: -5s\n".into(),
            "discover.rescan_interval: invalid duration \"-5s\" (negative), expected a duration such as 500ms, 15s, 5m or 1h30m at line 2 column 20",
        ),
        (
            "schedule (duration or off)",
            "defaults:\n  dumps:\n    heap_every: 5\n".into(),
            "defaults.dumps.heap_every: invalid duration \"5\" (no unit), expected a duration such as 30s, 5m or 1h, or off at line 3 column 17",
        ),
        (
            "schedule in a target",
            format!("{T}    dumps:\n      goroutine_every: never\n"),
            "targets[0].dumps.goroutine_every: invalid duration \"never\" (no number), expected a duration such as 30s, 5m or 1h, or off at line 5 column 24",
        ),
        (
            "duration below its minimum",
            "defaults:\n  interval: 15ms\n".into(),
            "defaults.interval: 15ms is shorter than the minimum of 100ms at line 2",
        ),
        (
            "goroutineleak interval below its minimum",
            format!("{T}    goroutineleak_interval: 500ms\n"),
            "targets[0].goroutineleak_interval: 500ms is shorter than the minimum of 1s at line 4",
        ),
        (
            "size",
            "defaults:\n  max_body_bytes: 64s\n".into(),
            "defaults.max_body_bytes: invalid size \"64s\", expected a size such as 64MiB, 512KiB, 1GB or a number of bytes at line 2 column 19",
        ),
        (
            "size, negative",
            format!("{T}    memory_limit: -5\n"),
            "targets[0].memory_limit: invalid size -5 (negative), expected a size such as 64MiB, 512KiB, 1GB or a number of bytes at line 4 column 19",
        ),
        (
            "size out of range",
            "defaults:\n  dumps:\n    retention: {max_bytes: 0}\n".into(),
            "defaults.dumps.retention.max_bytes: must be > 0 at line 3",
        ),
        (
            "enum",
            "defaults:\n  heap_format: txt\n".into(),
            "defaults.heap_format: unknown value `txt` (did you mean `text`?), expected `text` or `proto` at line 2 column 16",
        ),
        (
            "enum or boolean",
            format!("{T}    gc: maybe\n"),
            "targets[0].gc: invalid value: string \"maybe\", expected true, false or auto at line 4 column 9",
        ),
        (
            "boolean",
            "defaults:\n  dumps:\n    on_suspect: yes please\n".into(),
            "defaults.dumps.on_suspect: invalid type: string \"yes please\", expected true or false at line 3 column 17",
        ),
        (
            "number",
            "defaults:\n  overhead_budget: lots\n".into(),
            "defaults.overhead_budget: invalid type: string \"lots\", expected a number at line 2 column 20",
        ),
        (
            "number out of range",
            "defaults:\n  overhead_budget: 5\n".into(),
            "defaults.overhead_budget: 5 must be a finite number in 0..1 at line 2",
        ),
        (
            "whole number",
            "defaults:\n  signals:\n    top_n: x\n".into(),
            "defaults.signals.top_n: invalid type: string \"x\", expected a whole number at line 3 column 12",
        ),
        (
            "whole number, negative",
            format!("{T}    pid: -1\n"),
            "targets[0].pid: invalid type: integer `-1`, expected a whole number at line 4 column 10",
        ),
        (
            "URL",
            "targets:\n  - name: a\n    url: 'http://[::1'\n".into(),
            "targets[0].url: invalid URL \"http://[::1\" (invalid IPv6 address), expected an http or https URL such as http://127.0.0.1:6060 at line 3",
        ),
        (
            "URL scheme",
            "targets:\n  - name: a\n    url: ftp://x\n".into(),
            "targets[0].url: invalid URL \"ftp://x\" (scheme ftp), expected an http or https URL such as http://127.0.0.1:6060 at line 3",
        ),
        (
            "address",
            "listen: foo\n".into(),
            "listen: invalid address \"foo\", expected an IP address and port such as 127.0.0.1:10760 or [::]:10760 at line 1 column 9",
        ),
        (
            "regex",
            "probe:\n  allow: ['(']\n".into(),
            "probe.allow[0]: invalid regex \"(\" (unclosed group), expected a regular expression (Rust regex syntax) at line 2",
        ),
        (
            "regex in a target",
            format!("{T}    process: 'a['\n"),
            "targets[0].process: invalid regex \"a[\" (unclosed character class), expected a regular expression (Rust regex syntax) at line 4",
        ),
        (
            "regex in a discover rule",
            "discover:\n  deny: [{exe: '('}]\n".into(),
            "discover.deny[0].exe: invalid regex \"(\" (unclosed group), expected a regular expression (Rust regex syntax) at line 2",
        ),
        (
            "unknown key, misspelt",
            "defaults:\n  dumps:\n    heap_evry: 1m\n".into(),
            "defaults.dumps: unknown key `heap_evry` (did you mean `heap_every`?), expected one of `dir`, `heap_every`, `goroutine_every`, `on_suspect`, `cooldown`, `max_bytes`, `timeout`, `retention` at line 3 column 5",
        ),
        (
            "unknown key in a target",
            format!("{T}    intervl: 1s\n"),
            "targets[0]: unknown key `intervl` (did you mean `interval`?), expected one of `name`, `url`, `interval`, `timeout`, `max_body_bytes`, `window`, `warmup`, `startup_grace`, `heap_format`, `goroutine_format`, `gc`, `memory_limit`, `labels`, `pid`, `pid_file`, `process`, `cgroup`, `signals`, `overhead_budget`, `goroutineleak_interval`, `dumps`, `bearer_token_file`, `basic_auth`, `headers` at line 4 column 5",
        ),
        (
            "unknown key, a setting at the top level",
            "interval: 1s\n".into(),
            "unknown key `interval` (a setting: put it under `defaults:` or a target), expected one of `listen`, `probe`, `defaults`, `system`, `targets`, `discover`, `metrics` at line 1 column 1",
        ),
        (
            "unknown key, nothing near",
            "system:\n  bogus: 1\n".into(),
            "system: unknown key `bogus`, expected one of `proc_root`, `cgroup_root`, `kernel_log` at line 2 column 3",
        ),
        (
            "duplicate key",
            "defaults:\n  interval: 1s\n  interval: 2s\n".into(),
            "defaults: duplicate key `interval` at line 2 column 3",
        ),
        (
            "missing key",
            "targets:\n  - name: a\n".into(),
            "targets[0]: missing key `url` at line 2 column 5",
        ),
        (
            "list",
            "probe:\n  allow: 'http://x'\n".into(),
            "probe.allow: invalid type: string \"http://x\", expected a list at line 2 column 10",
        ),
        (
            "mapping",
            format!("{T}    labels: [team]\n"),
            "targets[0].labels: invalid type: sequence, expected a mapping (key: value) at line 4 column 13",
        ),
        (
            "section",
            "defaults:\n  dumps: 5\n".into(),
            "defaults.dumps: invalid type: integer `5`, expected a mapping (key: value) at line 2 column 10",
        ),
    ]
}

fn check(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leakwatch"))
        .arg("--config")
        .arg(path)
        .arg("--config.check")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run leakwatch --config.check")
}

/// Every field kind: the golden text from the library, and the same line from
/// `leakwatch --config F --config.check` (after the file's path), which fails.
#[test]
fn every_field_kind_names_its_key_line_and_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leakwatch.yaml");
    let mut wrong = Vec::new();
    for (kind, yaml, want) in error_table() {
        match Config::from_yaml(&yaml) {
            Ok(_) => wrong.push(format!("{kind}: accepted {yaml:?}")),
            Err(e) if e.to_string() != format!("config: {want}") => wrong.push(format!(
                "{kind}: {yaml:?}\n  got: {e}\n want: config: {want}"
            )),
            Err(_) => {}
        }
        std::fs::write(&path, &yaml).unwrap();
        let out = check(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = format!("Error: config: {}: {want}\n", path.display());
        if out.status.success() || !stderr.contains(&line) {
            wrong.push(format!(
                "{kind}: --config.check exited {} without {line:?}:\n{stderr}",
                out.status
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// (YAML, the warnings): valid but unreasonable values, each warned once, under the
/// key where it is written.
fn warning_table() -> Vec<(String, Vec<&'static str>)> {
    let dumps = "  dumps:\n    dir: /tmp/lw-dumps\n";
    vec![
        ("defaults:\n  interval: 1s\n".into(), vec![]),
        (
            format!("defaults:\n  interval: 500ms\n{T}  - name: b\n    url: http://127.0.0.1:2\n"),
            vec![
                "defaults.interval: 500ms is under 1s: every scrape costs the service a heap and a goroutine profile (fine for a test or a demo, not for production) at line 2",
            ],
        ),
        (
            format!("{T}    interval: 250ms\n"),
            vec![
                "targets[0].interval: 250ms is under 1s: every scrape costs the service a heap and a goroutine profile (fine for a test or a demo, not for production) at line 4",
            ],
        ),
        (
            format!("defaults:\n  interval: 5s\n{dumps}    heap_every: 2s\n"),
            vec![
                "defaults.dumps.heap_every: 2s is shorter than the scrape interval (5s): each dump costs the service a full profile, more often than leakwatch scrapes it at line 5",
            ],
        ),
        (
            format!("defaults:\n{dumps}    heap_every: 1m\n{T}    interval: 2m\n"),
            vec![
                "targets[0].dumps.heap_every: 1m is shorter than the scrape interval (2m) (from defaults.dumps.heap_every): each dump costs the service a full profile, more often than leakwatch scrapes it at line 6",
            ],
        ),
        (
            format!("defaults:\n  interval: 10m\n{dumps}"),
            vec![
                "defaults.dumps.heap_every: 5m is shorter than the scrape interval (10m) (the built-in period): each dump costs the service a full profile, more often than leakwatch scrapes it at line 3",
            ],
        ),
        // Dumps off: no period is too short.
        (
            "defaults:\n  interval: 5s\n  dumps: {heap_every: 2s}\n".into(),
            vec![],
        ),
    ]
}

/// Warnings from the library, and on `--config.check`'s stderr (which succeeds).
#[test]
fn unreasonable_values_are_warned_once_with_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leakwatch.yaml");
    for (yaml, want) in warning_table() {
        let c = Config::from_yaml(&yaml).unwrap_or_else(|e| panic!("{yaml:?}: {e}"));
        assert_eq!(c.warnings, want, "{yaml:?}");
        std::fs::write(&path, &yaml).unwrap();
        let out = check(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{yaml:?}: {stderr}");
        let printed: Vec<&str> = stderr
            .lines()
            .filter_map(|l| l.strip_prefix("warning: config: "))
            .collect();
        let want_printed: Vec<String> = want
            .iter()
            .map(|w| format!("{}: {w}", path.display()))
            .collect();
        assert_eq!(printed, want_printed, "{yaml:?}");
    }
}

/// `POST path` to leakwatch with an empty body: (status, body).
fn post(url: &str, path: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

fn sighup(lw: &Leakwatch) {
    let status = Command::new("kill")
        .args(["-HUP", &lw.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The same error at startup (leakwatch exits), on `POST /-/reload` (400, the body
/// says it) and on `SIGHUP` (logged); after a failed reload the old config keeps
/// serving. A warning is logged at startup, and on a reload only when it is new.
#[test]
fn startup_and_reload_show_the_same_error_and_warn_once() {
    let table = error_table();
    let golden = |kind: &str| -> (String, &'static str) {
        table
            .iter()
            .find(|(k, _, _)| *k == kind)
            .map(|(_, yaml, want)| (yaml.clone(), *want))
            .unwrap()
    };
    // Startup.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leakwatch.yaml");
    let (yaml, want) = golden("schedule (duration or off)");
    std::fs::write(&path, &yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_leakwatch"))
        .arg("--config")
        .arg(&path)
        .args(["--web.listen-address", "127.0.0.1:0"])
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("config: {}: {want}", path.display())),
        "{stderr}"
    );

    // A running leakwatch with a warning in its config.
    let good = format!("system:\n  kernel_log: 'off'\ndefaults:\n  interval: 500ms\n{T}");
    let lw = Leakwatch::start_with_args(&good, &["--web.enable-lifecycle"]);
    let file = lw.dir().join("leakwatch.yaml");
    let warning = "defaults.interval: 500ms is under 1s";
    let count = |what: &str| lw.stderr().matches(what).count();
    assert_eq!(count(warning), 1, "{}", lw.stderr());

    // POST /-/reload with a bad file: 400 with the golden line; the old config stays.
    let (yaml, want) = golden("size");
    std::fs::write(&file, format!("system:\n  kernel_log: 'off'\n{yaml}")).unwrap();
    let (status, body) = post(&lw.url, "/-/reload");
    assert_eq!(status, 400, "{body}");
    let shifted = want.replace("line 2", "line 4");
    assert_eq!(
        body,
        format!(
            "reload failed, keeping the old configuration: config: {}: {shifted}\n",
            file.display()
        )
    );
    let m = lw.metrics();
    assert_eq!(
        m.get("leakwatch_config_last_reload_successful", &[]),
        Some(0.0)
    );
    assert_eq!(m.get("leakwatch_targets", &[]), Some(1.0));

    // SIGHUP with another bad file: the same line in the log.
    let (yaml, want) = golden("unknown key in a target");
    std::fs::write(&file, &yaml).unwrap();
    sighup(&lw);
    let line = format!("config: {}: {want}", file.display());
    wait_until(Duration::from_secs(10), "the SIGHUP reload error", || {
        lw.stderr().contains(&line).then_some(())
    });
    assert_eq!(lw.metrics().get("leakwatch_targets", &[]), Some(1.0));

    // The good file again (same warning: not logged again), then one more target with
    // a new warning: logged once, however many reloads.
    std::fs::write(&file, &good).unwrap();
    assert_eq!(post(&lw.url, "/-/reload").0, 200);
    assert_eq!(count(warning), 1, "{}", lw.stderr());
    let more = format!("{good}  - name: b\n    url: http://127.0.0.1:2\n    interval: 200ms\n");
    std::fs::write(&file, &more).unwrap();
    for _ in 0..3 {
        assert_eq!(post(&lw.url, "/-/reload").0, 200);
    }
    let second = "targets[1].interval: 200ms is under 1s";
    assert_eq!(count(second), 1, "{}", lw.stderr());
    assert_eq!(count(warning), 1, "{}", lw.stderr());
    assert_eq!(lw.metrics().get("leakwatch_targets", &[]), Some(2.0));
}

/// The keys a section accepts, as its unknown-key error lists them.
fn keys_of(yaml_with_zzz: &str) -> Vec<String> {
    let err = Config::from_yaml(yaml_with_zzz).unwrap_err().to_string();
    let list = err.split("expected one of ").nth(1).expect("a key list");
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// `leakwatch --help` says what values look like, and the README's table of value
/// kinds names every key of `defaults:` and `dumps:` that takes a value.
#[test]
fn help_and_readme_say_what_each_value_looks_like() {
    let out = Command::new(env!("CARGO_BIN_EXE_leakwatch"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for form in [
        "500ms",
        "a unit is required",
        "off",
        "64MiB",
        "a number of bytes",
        "proto",
        "auto",
        "http(s)://",
        "IP:port",
        "regexes",
        "warnings",
    ] {
        assert!(help.contains(form), "--help lacks {form:?}:\n{help}");
    }

    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Configuration section");
    let table: String = section
        .lines()
        .filter(|l| l.starts_with("| "))
        .collect::<Vec<_>>()
        .join("\n");
    let mut missing = Vec::new();
    for key in keys_of("defaults:\n  zzz: 1\n") {
        if !["signals", "dumps"].contains(&key.as_str()) && !table.contains(&format!("`{key}`")) {
            missing.push(key);
        }
    }
    for key in keys_of("defaults:\n  dumps:\n    zzz: 1\n") {
        if !["dir", "retention"].contains(&key.as_str())
            && !table.contains(&format!("`dumps.{key}`"))
        {
            missing.push(format!("dumps.{key}"));
        }
    }
    assert!(missing.is_empty(), "README's value table lacks {missing:?}");
    for needle in [
        "**Refused**",
        "**Warned**",
        "under 1s",
        "shorter than the scrape interval",
        "keeps\nserving with the old configuration",
    ] {
        assert!(
            section.contains(needle),
            "README's Configuration lacks {needle:?}"
        );
    }
}
