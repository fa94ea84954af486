//! The no-Docker demo (`scripts/demo`) as a reader runs it: the leaky example service
//! and a healthy one, leakwatch, Prometheus with the shipped rules, Alertmanager and a
//! webhook. The leak must page (a firing warning or critical alert at the webhook), the
//! healthy service must not, and the page must leave a report page and dumps behind.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::support::{build_leaky_service, toolchains};

#[test]
fn demo_pages_the_leak_and_never_the_healthy_service() {
    let tc = toolchains().pop().expect("a toolchain");
    let service = build_leaky_service(&tc);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let go_dir = tc.go.parent().unwrap();
    let path = format!(
        "{}:{}",
        go_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let started = Instant::now();
    // The binaries this test run built (the demo's own build is a release build: minutes).
    let out = Command::new("timeout")
        .args(["400", "scripts/demo", "--no-build", "--until-page", "300"])
        .current_dir(root)
        .env("PATH", path)
        .env("LEAKWATCH_BIN", env!("CARGO_BIN_EXE_leakwatch"))
        .env("LEAKY_SERVICE_BIN", &service)
        .output()
        .expect("run scripts/demo");
    let took = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/demo --until-page 300: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let paged = stderr
        .lines()
        .find(|l| l.contains("paged after"))
        .unwrap_or_else(|| panic!("no 'paged after' line:\n{stderr}"));
    assert!(paged.contains("leaky-heap="), "{paged}");
    assert!(!paged.contains("healthy="), "{paged}");
    // The webhook printed the page, and the run pointed at the evidence.
    assert!(stdout.contains("ALERT firing"), "{stdout}");
    assert!(stderr.contains("/targets/leaky-heap"), "{stderr}");
    let dumps = stderr
        .lines()
        .find(|l| l.contains("dumps:") && l.contains("files"))
        .unwrap_or_else(|| panic!("no dumps line:\n{stderr}"));
    eprintln!("demo: {paged} ({took:.0} s in all); {dumps}");
}
