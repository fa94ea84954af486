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

use crate::support::{GoToolchain, Leakwatch, LeakyService, toolchains, wait_until};

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
    let (svc, _dumps, lw) = orders_leaking_with_dumps(&tc);
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
        m.get("leakwatch_heap_baseline_ratio", &[("target", "orders")])
            .is_some(),
        "{}",
        m.text
    );
    // Both files of the watch --baseline-file steps exist where the runbook says.
    assert!(work.path().join("orders-baseline.json").exists());
}

/// `s` with the five entities maud and pulldown-cmark write turned back into text.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The lines of every `<pre ...>` block of a page (a runbook block's `<code>` inside it
/// included), unescaped: what a reader copies.
fn pre_lines(page: &str) -> Vec<String> {
    let block = Regex::new(r"(?s)<pre[^>]*>(?:<code[^>]*>)?(.*?)(?:</code>)?</pre>").unwrap();
    block
        .captures_iter(page)
        .flat_map(|c| {
            unescape(&c[1])
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Inline `<code>` spans of the served runbook that are whole commands: a `curl`,
/// `leakwatch` or `go tool pprof` line with an address, a pipe, a redirect or a dump
/// file in it (a bare "`leakwatch diff`" is a mention).
fn inline_commands(page: &str) -> Vec<String> {
    let span = Regex::new(r"<code>((?:curl|leakwatch|go tool pprof) [^<]+)</code>").unwrap();
    span.captures_iter(page)
        .map(|c| unescape(&c[1]))
        .filter(|c| {
            c.contains("://") || c.contains(" | ") || c.contains(" > ") || c.contains(".pb.gz")
        })
        .collect()
}

/// Issue 25 item 2: every command leakwatch prints for a live suspected leak runs as
/// written, through `sh -c`, in a fresh directory on "another machine" (neither
/// leakwatch's working directory nor its dump directory, whose paths no command may
/// name): the report page's, the dumps page's, the dumps JSON's (`pairs[].command` and
/// `pprof_command`) and those of `/runbook?target=orders`, the runbook rendered for
/// this instance and target (reached from the verdict's link). Each exits 0 (`watch`:
/// an answer, 0..2) and shows what it is for: the diffs name the leak's site, the
/// downloads are gzipped profiles. Only two waits are shortened (`sleep 300` to 8 s,
/// `--for 10m`); the `pprof -http` UI is run as written and must serve its page.
#[test]
fn served_commands_run_as_written_from_another_directory() {
    let tc = toolchains().pop().expect("a toolchain");
    let (_svc, dumps, lw) = orders_leaking_with_dumps(&tc);
    let get = |path: &str| {
        let (status, body) = lw.get(path);
        assert_eq!(status, 200, "{path}");
        String::from_utf8(body).unwrap()
    };
    let json: serde_json::Value = wait_until(Duration::from_secs(90), "a dump pair", || {
        let (_, body) = lw.get("/dumps/orders/?format=json");
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        v["pairs"].as_array()?.first()?;
        Some(v)
    });
    let report = get("/targets/orders");
    // The verdict links to its runbook section, rendered for this target.
    let link = "/runbook?target=orders#leakwatchheapleaksuspected";
    assert!(
        report.contains(&format!("href=\"{link}\"")),
        "no runbook link in {report}"
    );
    let runbook = get("/runbook?target=orders");
    assert!(runbook.contains("id=\"leakwatchheapleaksuspected\""));
    let lw_host = lw.url.trim_start_matches("http://");
    let dumps_html = get("/dumps/orders/");
    let report_dumps = report
        .split("id=\"dumps\"")
        .nth(1)
        .expect("a dumps section");
    let pair = &json["pairs"][0];
    let sources: Vec<(&str, Vec<String>)> = vec![
        ("report page", pre_lines(report_dumps)),
        ("dumps page", pre_lines(&dumps_html)),
        (
            "dumps JSON",
            ["command", "pprof_command"]
                .iter()
                .map(|k| pair[k].as_str().unwrap().to_string())
                .collect(),
        ),
        ("/runbook?target=orders", {
            let mut c = pre_lines(&runbook);
            c.extend(inline_commands(&runbook));
            c
        }),
    ];

    let bin_dir = Path::new(env!("CARGO_BIN_EXE_leakwatch")).parent().unwrap();
    let path = format!(
        "{}:{}:{}",
        bin_dir.display(),
        tc.go.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dump_dir = dumps.path().display().to_string();
    let mut ran = BTreeMap::new();
    for (source, cmds) in &sources {
        assert!(cmds.len() >= 2, "{source}: {cmds:?}");
        // A fresh directory per page: what one page prints must run on its own.
        let work = tempfile::tempdir().unwrap();
        let mut n = 0;
        for cmd in cmds {
            // Written for this instance and target, never for the leakwatch host's disk.
            assert!(!cmd.contains(&dump_dir), "{source}: a host path in `{cmd}`");
            for placeholder in ["leakwatch:10760", "orders:6060", " BASE ", "PACKAGE"] {
                assert!(!cmd.contains(placeholder), "{source}: `{cmd}`");
            }
            let line = cmd.replace("sleep 300", "sleep 8").replace(
                "--for 10m",
                "--for 12s --every 1s --warmup 4s --startup-grace 0s",
            );
            if line.contains("pprof -http") {
                serves_pprof_ui(&line, work.path(), &path);
                n += 1;
                continue;
            }
            eprintln!("{source}: {line}");
            let out = Command::new("sh")
                .args(["-c", &line])
                .current_dir(work.path())
                .env("PATH", &path)
                .env("PPROF_TMPDIR", work.path())
                .output()
                .unwrap();
            let code = out.status.code().unwrap_or(-1);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let answered = if line.contains("leakwatch watch") {
                (0..=2).contains(&code)
            } else {
                code == 0
            };
            assert!(
                answered,
                "{source}: `{line}` exited {code}\nstdout:\n{stdout}\nstderr:\n{stderr}"
            );
            // What each shows: a diff or pprof ranking names the leak's site; a
            // download is a gzipped profile; anything else prints something.
            if line.contains("leakwatch diff") || line.contains("pprof -top -base") {
                assert!(
                    stdout.contains("main.newSession") || line.contains("| grep"),
                    "{source}: `{line}` does not name the leak:\n{stdout}\n{stderr}"
                );
            }
            if line.starts_with("curl -fsS -o ") {
                let file = line.split_whitespace().nth(3).unwrap();
                let bytes = std::fs::read(work.path().join(file)).unwrap();
                assert_eq!(&bytes[..2], b"\x1f\x8b", "{source}: `{line}`: not gzip");
            } else if !line.contains(" -o ") && !line.contains(" > ") && !line.starts_with("sleep")
            {
                assert!(
                    !stdout.trim().is_empty(),
                    "{source}: `{line}` printed nothing\nstderr:\n{stderr}"
                );
            }
            n += 1;
        }
        ran.insert(*source, n);
    }
    eprintln!("ran as written: {ran:?} (leakwatch at {lw_host})");
    assert!(ran["/runbook?target=orders"] >= 12, "{ran:?}");
}

/// Runs the runbook's `go tool pprof -http ADDR ...` as written (a web UI that runs
/// until stopped), asserts the UI answers at its address, then stops it.
fn serves_pprof_ui(line: &str, dir: &Path, path: &str) {
    use std::os::unix::process::CommandExt as _;
    let addr = Regex::new(r"-http (\S+)").unwrap().captures(line).unwrap()[1].to_string();
    let mut child = Command::new("sh")
        .args(["-c", line])
        .current_dir(dir)
        .env("PATH", path)
        .env("PPROF_TMPDIR", dir)
        .env("BROWSER", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = child.id();
    let served = wait_until(Duration::from_secs(60), "the pprof web UI", || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("`{line}` exited {status} before serving");
        }
        crate::support::try_http_get(&format!("http://{addr}/ui/top"))
            .ok()
            .filter(|(s, _)| *s == 200)
            .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
    });
    let _ = Command::new("kill")
        .args(["--", &format!("-{pgid}")])
        .status();
    let _ = child.wait();
    assert!(served.contains("newSession"), "{served}");
}

/// The target `orders`: a heap leak beside a sawtooth of garbage (so GCs keep measuring
/// the live heap), watched by a leakwatch with a short window that dumps on suspicion
/// into the returned directory.
///
/// The pair is at least the warm-up apart (the `baseline` dump at first contact, the
/// `suspect` one at the suspicion): 15 s of a 1.25 MiB/s leak, about 19 MiB, so the
/// runbook's `leakwatch diff ... --min-delta 5MB | grep PACKAGE` finds the leak's
/// package with room for the heap profile's sampling (a 5 s warm-up left about 6 MiB,
/// and the grep finds nothing, exit 1, whenever the sampled growth falls under 5 MB).
fn orders_leaking_with_dumps(tc: &GoToolchain) -> (LeakyService, tempfile::TempDir, Leakwatch) {
    let svc = LeakyService::start(tc, crate::support::LEAK_BESIDE_SAWTOOTH);
    let dumps = tempfile::tempdir().unwrap();
    let lw = Leakwatch::start_with_args(
        &format!(
            "system:\n  kernel_log: 'off'\ndefaults:\n  interval: 250ms\n  window: 30s\n  warmup: 15s\n  startup_grace: 0s\n  overhead_budget: 0\n  dumps:\n    dir: '{}'\n    heap_every: 'off'\n    goroutine_every: 'off'\n    on_suspect: true\n    cooldown: 1m\ntargets:\n  - name: orders\n    url: {}\n",
            dumps.path().display(),
            svc.url
        ),
        &["--web.enable-admin-api"],
    );
    (svc, dumps, lw)
}
