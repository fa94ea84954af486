//! Heap top/diff against `go tool pprof -top [-base]` run on the same fixture
//! files, golden renders, and the text-vs-proto heap cross-check.

use std::path::{Path, PathBuf};
use std::process::Command;

use leakwatch::analysis::diff::{SampleType, TopOptions, TopReport, diff, growth_by_function, top};
use leakwatch::pprof::load::load_profile;
use leakwatch::pprof::{HeapProfile, Name, proto};

const MAX: u64 = 64 << 20;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn load(rel: &str) -> HeapProfile {
    let bytes = std::fs::read(fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    load_profile(&bytes, MAX).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The lines of `go tool pprof -top` from the `Showing nodes` line on.
fn pprof_top(args: &[&str], file: &Path, base: Option<&Path>) -> Vec<String> {
    // pprof's output is compared to the letter: use the current Go (1.26), not
    // whatever `go` is first on PATH (Debian's is 1.19).
    let go = std::env::var("GO")
        .map(PathBuf::from)
        .unwrap_or_else(|_| crate::support::toolchain("1.26").go);
    pprof_top_with(&go, args, file, base)
}

fn pprof_top_with(go: &Path, args: &[&str], file: &Path, base: Option<&Path>) -> Vec<String> {
    let mut cmd = Command::new(go);
    cmd.args(["tool", "pprof", "-top"]).args(args);
    if let Some(b) = base {
        cmd.arg("-base").arg(b);
    }
    cmd.arg(file);
    // pprof must not try to symbolize or fetch anything.
    cmd.env("PPROF_TMPDIR", std::env::temp_dir())
        .env("PPROF_BINARY_PATH", "/nonexistent");
    let out = cmd
        .output()
        .expect("`go` (Go 1.26) must be on PATH, or set GO=/path/to/go");
    assert!(
        out.status.success(),
        "go tool pprof {args:?} {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .skip_while(|l| !l.starts_with("Showing nodes"))
        .map(|l| {
            // We do not know which frames were inlined (see diff.rs).
            l.trim_end_matches(" (partial-inline)")
                .trim_end_matches(" (inline)")
                .to_string()
        })
        .collect()
}

/// Our render from the same `Showing nodes` line on.
fn ours(r: &TopReport) -> Vec<String> {
    r.render()
        .lines()
        .skip_while(|l| !l.starts_with("Showing nodes"))
        .map(str::to_string)
        .collect()
}

fn args_for(opts: &TopOptions) -> Vec<String> {
    let mut a = vec![format!("-sample_index={}", opts.sample)];
    if opts.top > 0 {
        a.push(format!("-nodecount={}", opts.top));
    }
    if opts.cum {
        a.push("-cum".into());
    }
    a
}

fn option_sets() -> Vec<TopOptions> {
    let mut v = Vec::new();
    for sample in SampleType::ALL {
        v.push(TopOptions {
            sample,
            ..TopOptions::default()
        });
    }
    v.push(TopOptions {
        sample: SampleType::InuseSpace,
        top: 5,
        cum: true,
        min_delta: None,
        ignore: None,
    });
    v.push(TopOptions {
        sample: SampleType::AllocObjects,
        top: 3,
        cum: false,
        min_delta: None,
        ignore: None,
    });
    v
}

/// Every line pprof prints from `Showing nodes` on (totals, dropped nodes, each
/// row's flat/cum at pprof's precision, percentages, function, order) is ours.
#[test]
fn top_matches_go_tool_pprof() {
    for rel in [
        "go1.23/heap/heap.pb.gz",
        "go1.23/callsites/heap.pb.gz",
        "go1.26/healthy/heap.pb.gz",
        "go1.19/httpclient/heap.pb.gz",
        "go1.26-trimpath/combined/heap.pb.gz",
    ] {
        let p = load(rel);
        for opts in option_sets() {
            let args = args_for(&opts);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let want = pprof_top(&args, &fixture(rel), None);
            let got = ours(&top(&p, &opts));
            assert_eq!(got, want, "{rel} {args:?}");
        }
    }
}

#[test]
fn diff_matches_go_tool_pprof_base() {
    // Same binary, different runs (pprof merges by address; we by function stack).
    let pairs = [
        ("go1.23/closure/heap.pb.gz", "go1.23/heap/heap.pb.gz"),
        ("go1.23/healthy/heap.pb.gz", "go1.23/callsites/heap.pb.gz"),
        ("go1.26/heap/heap.pb.gz", "go1.26/closure/heap.pb.gz"),
    ];
    for (base_rel, new_rel) in pairs {
        let (base, new) = (load(base_rel), load(new_rel));
        for opts in option_sets() {
            let args = args_for(&opts);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let want = pprof_top(&args, &fixture(new_rel), Some(&fixture(base_rel)));
            let got = ours(&diff(&base, &new, &opts));
            assert_eq!(got, want, "{base_rel} -> {new_rel} {args:?}");
        }
    }
}

/// `diff` of the debug=1 texts (scaled estimates) names the same leader as the protos.
#[test]
fn text_diff_names_the_same_leader_as_proto_diff() {
    for v in ["go1.23", "go1.26"] {
        let opts = TopOptions::default();
        let proto_r = diff(
            &load(&format!("{v}/closure/heap.pb.gz")),
            &load(&format!("{v}/heap/heap.pb.gz")),
            &opts,
        );
        let text_r = diff(
            &load(&format!("{v}/closure/heap_debug1.txt")),
            &load(&format!("{v}/heap/heap_debug1.txt")),
            &opts,
        );
        assert_eq!(proto_r.rows[0].function, text_r.rows[0].function, "{v}");
        assert_eq!(proto_r.rows[1].function, text_r.rows[1].function, "{v}");
        let g_proto = growth_by_function(
            &load(&format!("{v}/closure/heap.pb.gz")),
            &load(&format!("{v}/heap/heap.pb.gz")),
            SampleType::InuseSpace,
        );
        let g_text = growth_by_function(
            &load(&format!("{v}/closure/heap_debug1.txt")),
            &load(&format!("{v}/heap/heap_debug1.txt")),
            SampleType::InuseSpace,
        );
        assert_eq!(g_proto[0].0, "main.newSession", "{v}");
        assert_eq!(g_text[0].0, "main.newSession", "{v}");
        assert_eq!(
            g_proto.last().unwrap().0,
            "main.registerCallback",
            "{v}: the closure leak is gone in the new run"
        );
    }
    // A growing series of one process: t01 -> t06, text only.
    let g = growth_by_function(
        &load("series/go1.26-heap/t01_heap_debug1.txt"),
        &load("series/go1.26-heap/t06_heap_debug1.txt"),
        SampleType::InuseSpace,
    );
    assert_eq!(g[0].0, "main.newSession");
    assert!(g[0].1 > 0);
}

/// heap_debug1.txt and heap.pb.gz were fetched 0.1 s apart: the text's scaled
/// estimate of the leak site equals what Go wrote into the proto within 1%.
#[test]
fn text_estimate_matches_proto_for_the_leak_site() {
    for v in ["go1.23", "go1.26"] {
        let site = |p: &HeapProfile| -> u64 {
            p.samples
                .iter()
                .filter(|s| p.stack(s).leaf() == Some(Name::Func("main.newSession")))
                .map(|s| s.inuse_bytes)
                .sum()
        };
        let from_text = site(&load(&format!("{v}/heap/heap_debug1.txt")));
        let from_proto = site(&load(&format!("{v}/heap/heap.pb.gz")));
        assert!(from_proto > 1_000_000, "{v}: {from_proto}");
        let rel = (from_text as f64 - from_proto as f64).abs() / from_proto as f64;
        assert!(rel < 0.01, "{v}: text {from_text} proto {from_proto}");
    }
    // The figure FORMATS.md quotes for go1.23: 218 objects, 5366719 bytes.
    let p = load("go1.23/heap/heap.pb.gz");
    let t = p.totals();
    assert_eq!((t.inuse_objects, t.inuse_bytes), (218, 5366719));
    assert_eq!(p.sampling_period, 524288);
}

#[test]
fn proto_heap_totals() {
    // (file, inuse_objects, inuse_bytes, alloc_objects, alloc_bytes, samples), from `go tool pprof -raw`.
    let cases: &[(&str, u64, u64, u64, u64, usize)] = &[
        ("go1.19/heap/heap.pb.gz", 8032, 6415543, 8032, 6415543, 3),
        ("go1.23/heap/heap.pb.gz", 218, 5366719, 218, 5366719, 1),
        ("go1.26/heap/heap.pb.gz", 1244, 4281231, 1244, 4281231, 2),
        (
            "go1.23/callsites/heap.pb.gz",
            1240,
            2251816,
            1240,
            2251816,
            1312,
        ),
        (
            "go1.26-trimpath/combined/heap.pb.gz",
            12171,
            4256231,
            12171,
            4256231,
            9,
        ),
        ("go1.23/blocked/heap.pb.gz", 0, 0, 0, 0, 0),
    ];
    for &(rel, io, ib, ao, ab, n) in cases {
        let bytes = std::fs::read(fixture(rel)).unwrap();
        let p = proto::heap_profile(&proto::decode(&bytes, MAX).unwrap()).unwrap();
        let t = p.totals();
        assert_eq!(
            (
                t.inuse_objects,
                t.inuse_bytes,
                t.alloc_objects,
                t.alloc_bytes,
                p.samples.len()
            ),
            (io, ib, ao, ab, n),
            "{rel}"
        );
    }
}

#[test]
fn golden_renders() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/diff");
    let update = crate::support::update_golden();
    let mut cases: Vec<(String, String)> = Vec::new();
    for sample in SampleType::ALL {
        let opts = TopOptions {
            sample,
            ..TopOptions::default()
        };
        cases.push((
            format!("top_go1.23_callsites_{sample}.txt"),
            top(&load("go1.23/callsites/heap.pb.gz"), &opts).render(),
        ));
        cases.push((
            format!("diff_go1.23_closure_to_heap_{sample}.txt"),
            diff(
                &load("go1.23/closure/heap.pb.gz"),
                &load("go1.23/heap/heap.pb.gz"),
                &opts,
            )
            .render(),
        ));
    }
    cases.push((
        "diff_series_go1.26-heap_t01_to_t06_text.txt".into(),
        diff(
            &load("series/go1.26-heap/t01_heap_debug1.txt"),
            &load("series/go1.26-heap/t06_heap_debug1.txt"),
            &TopOptions {
                top: 10,
                ..TopOptions::default()
            },
        )
        .render(),
    ));
    for (name, got) in cases {
        let path = dir.join(&name);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
        assert_eq!(got, want, "{name} (UPDATE_GOLDEN=1 regenerates)");
    }
}

#[test]
fn load_profile_detects_the_format() {
    // gzipped text (callsites) and plain text give the same kind of profile as the proto.
    let text_gz = load("go1.23/callsites/heap_debug1.txt.gz");
    assert!(text_gz.samples.len() > 1000, "{}", text_gz.samples.len());
    assert_eq!(text_gz.sampling_period, 1);
    let err = load_profile(b"<html>nope</html>", MAX).unwrap_err();
    assert!(err.to_string().contains("protobuf"), "{err}");
    let bomb = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&vec![b'h'; 4 << 20]).unwrap();
        e.finish().unwrap()
    };
    let err = load_profile(&bomb, 1 << 20).unwrap_err();
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
}

/// Live: two heap protos of a leaking leaky-service a few seconds apart; our
/// diff equals `go tool pprof -top -base` of the same two files.
#[test]
fn live_diff_matches_go_tool_pprof_base() {
    let tc = crate::support::toolchain("1.26");
    let svc = crate::support::LeakyService::start(
        &tc,
        &[
            "-mode",
            "heap",
            "-interval",
            "20ms",
            "-per-tick",
            "4",
            "-size",
            "32768",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let fetch = |name: &str| -> PathBuf {
        // gc=1 makes the profile current rather than as of the last GC.
        let (status, body) = svc.get("/debug/pprof/heap?gc=1");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let path = dir.path().join(name);
        std::fs::write(&path, &body).unwrap();
        path
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    let base_path = fetch("base.pb.gz");
    std::thread::sleep(std::time::Duration::from_secs(3));
    let new_path = fetch("new.pb.gz");
    let base = load_profile(&std::fs::read(&base_path).unwrap(), MAX).unwrap();
    let new = load_profile(&std::fs::read(&new_path).unwrap(), MAX).unwrap();
    for opts in option_sets() {
        let args = args_for(&opts);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let want = pprof_top_with(&tc.go, &args, &new_path, Some(&base_path));
        let r = diff(&base, &new, &opts);
        assert_eq!(ours(&r), want, "live {args:?}");
    }
    let growth = growth_by_function(&base, &new, SampleType::InuseSpace);
    assert_eq!(growth[0].0, "main.newSession", "{growth:?}");
    // ~150 ticks x 4 items x 32 KiB in 3 s: megabytes, whatever the sampling.
    assert!(growth[0].1 > 4 << 20, "{growth:?}");
}

/// The service pays for being watched: every profile it serves allocates gzip buffers
/// (`compress/flate.NewWriter` under `net/http/pprof`), which rank high in an
/// `alloc_space` top. `leakwatch top` keeps pprof's table and names those rows in a note
/// on stderr; `--ignore` with the regex the note gives leaves them out exactly as
/// `go tool pprof -ignore` does, and the leak is then the top row.
#[test]
fn live_top_names_the_cost_of_serving_profiles() {
    let tc = crate::support::toolchain("1.26");
    let svc = crate::support::LeakyService::start(
        &tc,
        &[
            "-mode",
            "heap",
            "-interval",
            "100ms",
            "-per-tick",
            "1",
            "-size",
            "65536",
        ],
    );
    // Polled like a watcher at a short interval: 40 profiles, each gzipped by the
    // service (Go's MemProfileRate samples one allocation per 512 KiB on average, so
    // many responses are needed for their buffers to be sampled at all).
    // The leak (64 KiB every 100 ms) runs meanwhile: ~4 s, ~2.5 MiB.
    for _ in 0..40 {
        let (status, _) = svc.get("/debug/pprof/heap");
        assert_eq!(status, 200);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("heap.pb.gz");
    let (status, body) = svc.get("/debug/pprof/heap");
    assert_eq!(status, 200);
    std::fs::write(&path, &body).unwrap();
    let p = load_profile(&body, MAX).unwrap();
    let all = top(
        &p,
        &TopOptions {
            sample: SampleType::AllocSpace,
            ..TopOptions::default()
        },
    );
    let serving = all.serving_rows();
    assert!(
        serving
            .iter()
            .any(|(f, _)| f.starts_with("compress/flate.")),
        "no gzip row named as the cost of serving profiles: {serving:?}\n{}",
        all.render()
    );
    assert!(all.serving_total > 0 && all.serving_total <= all.total);
    let re = leakwatch::pprof::funcname::PROFILE_SERVING_REGEX;
    let ignored = top(
        &p,
        &TopOptions {
            sample: SampleType::AllocSpace,
            ignore: Some(leakwatch::analysis::diff::Ignore(
                regex::Regex::new(re).unwrap(),
            )),
            ..TopOptions::default()
        },
    );
    let want = pprof_top_with(
        &tc.go,
        &["-sample_index=alloc_space", "-ignore", re],
        &path,
        None,
    );
    assert_eq!(ours(&ignored), want, "--ignore vs go tool pprof -ignore");
    assert!(ignored.serving_rows().is_empty() && ignored.serving_total == 0);
    assert!(ignored.serving_note().is_none());
    assert!(
        ignored
            .rows
            .iter()
            .all(|r| !r.function.starts_with("compress/")),
        "{}",
        ignored.render()
    );
    assert!(
        ignored.rows.iter().any(|r| r.function == "main.newSession"),
        "{}",
        ignored.render()
    );
    // The binary as a user runs it: pprof's table on stdout, the note on stderr naming
    // the rows and the flag, and the flag as the note writes it.
    let out = Command::new(env!("CARGO_BIN_EXE_leakwatch"))
        .args(["top", "--sample", "alloc_space"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert!(
        stdout.starts_with("Type: alloc_space") && !stdout.contains("note:"),
        "{stdout}"
    );
    assert!(
        stderr.starts_with("note: ") && stderr.contains("compress/flate."),
        "{stderr}"
    );
    let flag = format!("--ignore '{re}'");
    assert!(stderr.contains(&flag), "{stderr}");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} top --sample alloc_space {flag} {}",
            env!("CARGO_BIN_EXE_leakwatch"),
            path.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("compress/flate"));
}

/// Proto-first and text must give the same signals on the same capture: the in-use
/// share by package (through the real window and signal code) and the growth by
/// function between two captures of the same binary.
#[test]
fn signals_agree_between_text_and_proto_on_the_same_capture() {
    use leakwatch::analysis::signals::{SignalConfig, compute};
    use leakwatch::analysis::window::{Observation, Window, WindowConfig};
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    let shares = |p: HeapProfile| {
        let mut w = Window::new(&WindowConfig::with_span(Duration::from_secs(60)));
        let mut obs = Observation::at(SystemTime::now());
        obs.heap = Some(Arc::new(p));
        w.observe(obs);
        compute(&w, &SignalConfig::default()).inuse_share
    };
    for dir in [
        "go1.19/heap",
        "go1.23/heap",
        "go1.26/heap",
        "go1.23/closure",
        "go1.26/closure",
        "go1.26-trimpath/combined",
    ] {
        let text = shares(load(&format!("{dir}/heap_debug1.txt")));
        let proto = shares(load(&format!("{dir}/heap.pb.gz")));
        assert!(!text.is_empty(), "{dir}: no shares");
        // The same top package, and every package's share within 3 points (the two
        // responses were fetched ~0.1 s apart from a leaking process).
        assert_eq!(text[0].0, proto[0].0, "{dir}: {text:?} vs {proto:?}");
        for (pkg, t) in &text {
            let p = proto
                .iter()
                .find(|(q, _)| q == pkg)
                .map(|(_, v)| *v)
                .unwrap_or(0.0);
            assert!(
                (t - p).abs() < 0.03,
                "{dir}: {pkg} text {t:.3} proto {p:.3}"
            );
        }
    }
    for v in ["go1.23", "go1.26"] {
        let text = growth_by_function(
            &load(&format!("{v}/closure/heap_debug1.txt")),
            &load(&format!("{v}/heap/heap_debug1.txt")),
            SampleType::InuseSpace,
        );
        let proto = growth_by_function(
            &load(&format!("{v}/closure/heap.pb.gz")),
            &load(&format!("{v}/heap/heap.pb.gz")),
            SampleType::InuseSpace,
        );
        assert_eq!(text[0].0, proto[0].0, "{v}: {text:?} vs {proto:?}");
        let (t, p) = (text[0].1 as f64, proto[0].1 as f64);
        assert!((t - p).abs() / p.abs() < 0.05, "{v}: growth {t} vs {p}");
    }
}
