//! Live evidence: a real leaking Go service, a real leakwatch with dumps on. A leak
//! suspicion must leave a baseline + fresh heap pair on disk, counted in
//! `leakwatch_pprof_dump_total`, listed by `/dumps/`, and `leakwatch diff` on that pair
//! must name the leaking function first.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::support::{Leakwatch, LeakyService, toolchains, wait_until};

fn find(dir: &std::path::Path, suffix: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("heap-") && n.ends_with(suffix))
        })
        .collect();
    found.sort();
    found.pop()
}

#[test]
fn a_suspicion_leaves_a_pair_that_names_the_culprit() {
    let tc = toolchains().pop().expect("a toolchain");
    let svc = LeakyService::start(
        &tc,
        &[
            "-mode",
            "heap",
            "-interval",
            "50ms",
            "-per-tick",
            "2",
            "-size",
            "32KiB",
        ],
    );
    let dumps = tempfile::tempdir().unwrap();
    let lw = Leakwatch::start(&format!(
        "system:\n  kernel_log: 'off'\ndefaults:\n  interval: 250ms\n  window: 20s\n  warmup: 5s\n  overhead_budget: 0\n  dumps:\n    dir: '{}'\n    heap_every: 'off'\n    goroutine_every: 'off'\n    on_suspect: true\n    cooldown: 1m\ntargets:\n  - name: svc\n    url: {}\n",
        dumps.path().display(),
        svc.url
    ));
    let dir = dumps.path().join("svc");
    let (base, fresh) = wait_until(Duration::from_secs(60), "a baseline + suspect pair", || {
        Some((
            find(&dir, "-baseline.pb.gz")?,
            find(&dir, "-suspect.pb.gz")?,
        ))
    });
    let m = lw.metrics();
    assert_eq!(
        m.get(
            "leakwatch_leak_suspected",
            &[("target", "svc"), ("kind", "heap")]
        ),
        Some(1.0),
        "{}",
        m.text
    );
    let suspect_ok = m
        .get(
            "leakwatch_pprof_dump_total",
            &[
                ("target", "svc"),
                ("profile_type", "heap"),
                ("result", "success"),
                ("reason", "suspect"),
            ],
        )
        .unwrap_or(0.0);
    assert!(suspect_ok >= 1.0, "{}", m.text);
    // Listed over HTTP, with the pair's file names.
    let (status, body) = lw.get("/dumps/?format=json");
    let listing = String::from_utf8_lossy(&body);
    assert_eq!(status, 200);
    for f in [&base, &fresh] {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(listing.contains(name), "{name} not in {listing}");
    }
    // No temporary file left behind.
    assert!(
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with(".tmp-")),
        "temporary file left in {}",
        dir.display()
    );
    // The diff of the pair names the leak first.
    let out = Command::new(env!("CARGO_BIN_EXE_leakwatch"))
        .arg("diff")
        .arg(&base)
        .arg(&fresh)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first_row = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .nth(1)
        .unwrap_or("");
    assert!(
        first_row.trim_end().ends_with("main.newSession"),
        "first row of leakwatch diff is {first_row:?}:\n{text}"
    );
}
