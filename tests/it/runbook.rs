//! The runbook's commands, run as written against a real leakwatch watching a real
//! leaking Go service named `orders`: every command of its `sh` blocks, and every
//! inline `curl`/`leakwatch` command. Only what the runbook says to substitute is
//! substituted (the hosts `leakwatch:10760` and `orders:6060`, the placeholders for
//! dump files), and waits are shortened (`sleep 300`, `--for 10m`). Commands for other
//! systems (`systemctl`, `kubectl`, `docker`) and the blocking `pprof -http` server are
//! not run, and each one left out is named in the output.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use regex::Regex;

use crate::support::{Leakwatch, LeakyService, toolchains, wait_until};

/// The runbook's commands in order: (section heading, command line).
fn commands(markdown: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut in_sh = false;
    let inline = Regex::new(r"`((?:curl|leakwatch) [^`]+)`").unwrap();
    for line in markdown.lines() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix("## ") {
            section = h.to_string();
        }
        if t.starts_with("```") {
            in_sh = !in_sh && t == "```sh";
            continue;
        }
        if in_sh {
            if !t.is_empty() {
                out.push((section.clone(), t.to_string()));
            }
            continue;
        }
        // Inline: a command with an address, a pipe or a redirect ("`leakwatch diff`"
        // alone is a mention).
        for m in inline.captures_iter(line) {
            let c = &m[1];
            if c.contains("://") || c.contains(" | ") || c.contains(" > ") {
                out.push((section.clone(), c.to_string()));
            }
        }
    }
    out
}

/// Why a command is not run here, if it is not.
fn not_run(cmd: &str) -> Option<&'static str> {
    let first = cmd.split_whitespace().next().unwrap_or_default();
    match first {
        "systemctl" | "kubectl" | "docker" => Some("another system's command"),
        _ if cmd.contains("pprof -http") => Some("starts a web UI that runs until stopped"),
        _ => None,
    }
}

#[test]
fn runbook_commands_run_as_written() {
    let markdown =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/runbook.md"))
            .unwrap();
    let cmds = commands(&markdown);
    assert!(
        cmds.len() >= 10,
        "only {} commands found: {cmds:?}",
        cmds.len()
    );

    let tc = toolchains().pop().expect("a toolchain");
    // A heap leak beside a sawtooth of garbage, so GCs keep measuring the live heap.
    let svc = LeakyService::start(
        &tc,
        &[
            "-mode",
            "heap,healthy",
            "-interval",
            "20ms",
            "-per-tick",
            "4",
            "-size",
            "32KiB",
            "-sawtooth",
            "25",
            "-leak-every",
            "5",
        ],
    );
    let dumps = tempfile::tempdir().unwrap();
    let lw = Leakwatch::start_with_args(
        &format!(
            "system:\n  kernel_log: 'off'\ndefaults:\n  interval: 250ms\n  window: 20s\n  warmup: 5s\n  startup_grace: 0s\n  overhead_budget: 0\n  dumps:\n    dir: '{}'\n    heap_every: 'off'\n    goroutine_every: 'off'\n    on_suspect: true\n    cooldown: 1m\ntargets:\n  - name: orders\n    url: {}\n",
            dumps.path().display(),
            svc.url
        ),
        &["--web.enable-admin-api"],
    );
    // The routine starts from a suspicion: wait for the baseline + suspect pair.
    let pair = wait_until(Duration::from_secs(90), "a dump pair for orders", || {
        let (_, body) = lw.get("/dumps/orders/?format=json");
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let p = v["pairs"].as_array()?.first()?.clone();
        Some((
            p["base"].as_str()?.to_string(),
            p["new"].as_str()?.to_string(),
        ))
    });

    let lw_host = lw.url.trim_start_matches("http://").to_string();
    let svc_host = svc.addr.to_string();
    let work = tempfile::tempdir().unwrap();
    // What the reader substitutes, and the files the routine downloads under the names
    // the runbook gives them.
    let subst: BTreeMap<&str, String> = [
        ("leakwatch:10760", lw_host.clone()),
        ("orders:6060", svc_host.clone()),
    ]
    .into();
    let placeholders = [
        (
            Regex::new(r"\bNEW-NAME\b").unwrap(),
            "leakwatch".to_string(),
        ),
        (Regex::new(r"/NAME\b").unwrap(), format!("/{}", pair.0)),
        (Regex::new(r"\bBASE\b").unwrap(), pair.0.clone()),
        (Regex::new(r"\bNEW\b").unwrap(), pair.1.clone()),
        (Regex::new(r"\bPACKAGE\b").unwrap(), "main".to_string()),
        (Regex::new(r"\bsleep 300\b").unwrap(), "sleep 2".to_string()),
        (
            Regex::new(r"--for 10m\b").unwrap(),
            "--for 12s --every 1s --warmup 4s --startup-grace 0s".to_string(),
        ),
    ];
    for name in [&pair.0, &pair.1] {
        let (status, body) = lw.get(&format!("/dumps/orders/{name}"));
        assert_eq!(status, 200);
        std::fs::write(work.path().join(name), body).unwrap();
    }
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_leakwatch")).parent().unwrap();
    let go_dir = tc.go.parent().unwrap();
    let path = format!(
        "{}:{}:{}",
        bin_dir.display(),
        go_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let (mut ran, mut skipped) = (0, Vec::new());
    for (section, cmd) in &cmds {
        if let Some(why) = not_run(cmd) {
            skipped.push(format!("[{section}] {cmd}: {why}"));
            continue;
        }
        let mut line = cmd.clone();
        for (from, to) in &subst {
            line = line.replace(from, to);
        }
        for (re, to) in &placeholders {
            line = re.replace_all(&line, to.as_str()).into_owned();
        }
        let out = Command::new("bash")
            .args(["-c", &line])
            .current_dir(work.path())
            .env("PATH", &path)
            .output()
            .unwrap();
        let code = out.status.code().unwrap_or(-1);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // `watch` answers with its verdict: 0, 1 or 2 are all answers.
        let ok = if line.contains("leakwatch watch") {
            (0..=2).contains(&code)
        } else {
            code == 0
        };
        assert!(
            ok,
            "[{section}] `{cmd}` (run as `{line}`) exited {code}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert!(
            !stdout.trim().is_empty()
                || line.contains('>')
                || line.contains(" -o ")
                || line.contains(" -sO ")
                || line.starts_with("sleep"),
            "[{section}] `{cmd}` printed nothing\nstderr:\n{stderr}"
        );
        ran += 1;
    }
    eprintln!(
        "runbook: ran {ran} commands; not run:\n{}",
        skipped.join("\n")
    );
    assert!(ran >= 10, "only {ran} commands ran");
    // The routine's diff named the leak, and the baseline reset took.
    let diff = Command::new(bin_dir.join("leakwatch"))
        .args(["diff", &pair.0, &pair.1, "--sample", "inuse_space"])
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&diff.stdout).contains("main.newSession"),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    let m = lw.metrics();
    assert!(
        m.get("leakwatch_heap_baseline_bytes", &[("target", "orders")])
            .is_some(),
        "{}",
        m.text
    );
    // Both files of the watch --baseline-file steps exist where the runbook says.
    assert!(work.path().join("orders-baseline.json").exists());
}
