//! The per-target report page `/targets/{name}` in a real headless browser (Debian's
//! chromium): the verdict, the culprit and the SVG charts are in the rendered DOM, the
//! console is clean, and a screenshot is kept under target/test-artifacts/.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{Leakwatch, LeakyService, toolchains, wait_until};

const CHROMIUM: &str = "/usr/bin/chromium";

/// What one headless chromium run produced.
struct Browser {
    stdout: String,
    log: String,
}

/// Runs headless chromium on `url` with `mode` (`--dump-dom` or `--screenshot=PATH`),
/// in a fresh profile, with nothing but loopback traffic.
fn chromium(url: &str, mode: &str) -> Browser {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run `sudo scripts/install-test-deps` (installs Debian's chromium)"
    );
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .arg("120")
        .arg(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args([
            "--enable-logging=stderr",
            "--v=0",
            mode,
            "--window-size=1280,2000",
            url,
        ])
        .output()
        .expect("run chromium");
    let b = Browser {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        log: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        out.status.success(),
        "chromium {mode} {url}: {}\n{}",
        out.status,
        b.log
    );
    b
}

/// Console messages and uncaught errors in chromium's log.
fn console_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("CONSOLE(") || l.contains("Uncaught"))
        .collect()
}

/// Point counts of every `<polyline ... points="...">` in the DOM, by `data-series`.
fn polylines(dom: &str) -> Vec<(String, usize)> {
    dom.split("<polyline")
        .skip(1)
        .filter_map(|p| {
            let tag = p.split('>').next()?;
            let series = tag.split("data-series=\"").nth(1)?.split('"').next()?;
            let points = tag.split("points=\"").nth(1)?.split('"').next()?;
            Some((series.to_string(), points.split_whitespace().count()))
        })
        .collect()
}

#[test]
fn report_page_in_headless_chromium() {
    let tc = &toolchains()[0];
    let svc = LeakyService::start(
        tc,
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
    // `startup_grace: 0s`: the service starts with the test, and this test is about the
    // page (after a grace the heap's growth needs GCs the 40 s of the test may not hold).
    let lw = Leakwatch::start(&format!(
        "system:\n  kernel_log: \"off\"\ntargets:\n  - name: orders\n    url: {}\n    interval: 250ms\n    window: 20s\n    warmup: 5s\n    startup_grace: 0s\n    overhead_budget: 0\n",
        svc.url
    ));
    let page_url = format!("{}/targets/orders", lw.url);
    wait_until(Duration::from_secs(40), "heap leak suspected", || {
        let (status, body) = lw.get("/targets/orders");
        let body = String::from_utf8_lossy(&body).into_owned();
        (status == 200 && body.contains("LEAK SUSPECTED: heap")).then_some(())
    });
    // A few more samples so the charts have something to show.
    std::thread::sleep(Duration::from_secs(3));

    let dom = chromium(&page_url, "--dump-dom");
    assert!(
        console_errors(&dom.log).is_empty(),
        "{:?}",
        console_errors(&dom.log)
    );
    let html = &dom.stdout;
    assert!(html.contains("<h1>orders</h1>"), "{html}");
    assert!(html.contains("LEAK SUSPECTED: heap"), "{html}");
    assert!(html.contains("top growth: main.newSession"), "{html}");
    assert!(
        html.contains("<td><code>main.newSession</code></td>"),
        "culprit in the growth table: {html}"
    );
    assert!(html.contains("<code>main</code>"), "package share of main");
    assert!(html.contains("id=\"dumps\""), "dumps section");
    let lines = polylines(html);
    let count = |name: &str| {
        lines
            .iter()
            .find(|(s, _)| s == name)
            .map(|(_, n)| *n)
            .unwrap_or_else(|| panic!("no {name} polyline in {lines:?}"))
    };
    // 250 ms samples for at least 8 s: about 32 points, and never more than the cap.
    for series in ["HeapAlloc", "NextGC", "goroutines"] {
        let n = count(series);
        assert!((20..=300).contains(&n), "{series}: {n} points");
    }

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot: PathBuf = artifacts.join("report-orders.png");
    let _ = std::fs::remove_file(&shot);
    let run = chromium(&page_url, &format!("--screenshot={}", shot.display()));
    assert!(
        console_errors(&run.log).is_empty(),
        "{:?}",
        console_errors(&run.log)
    );
    let png =
        std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}\n{}", shot.display(), run.log));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 20_000, "screenshot is {} bytes", png.len());
    println!("report screenshot: {}", shot.display());

    // An unknown target is a clear 404.
    let (status, body) = lw.get("/targets/nope");
    assert_eq!(status, 404);
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("No target named nope") && body.contains("/targets/orders"),
        "{body}"
    );
}
