//! Bounded reading of what users and targets hand leakwatch: `top`/`diff` on an endless
//! stream, a gzip bomb and a big junk file end in an error naming the cap, in bounded
//! memory (the real binary, its peak resident memory polled from /proc); and a
//! record-dense text heap profile from a loopback target is parsed in memory a small
//! multiple of its size and given back when the target goes.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{Leakwatch, frameless_heap_text, wait_until};

const MIB: u64 = 1024 * 1024;
/// `--max-input-bytes` when not given.
const DEFAULT_CAP: u64 = 256 * MIB;
/// Allocator slack over the cap (the buffer is the cap plus one byte).
const SLACK: u64 = 32 * MIB;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// A field of /proc/PID/status in bytes (`VmHWM`, `VmRSS`), `None` once it is gone.
fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line[field.len()..]
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// What one `leakwatch` CLI run did.
struct Run {
    code: Option<i32>,
    stderr: String,
    /// Highest VmHWM polled while it ran.
    peak: u64,
    /// Killed for crossing `limit`.
    killed: bool,
}

/// Runs `leakwatch ARGS`, polling its peak resident memory; past `limit` it is killed
/// (the unbounded readers of old grew to 24 GB before the OOM killer stepped in).
fn run_bounded(args: &[&str], limit: u64) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let err_path = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_leakwatch"))
        .args(args)
        // A backtrace on the error would map the debug info: measure the reading only.
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0;
    let mut killed = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(hwm) = status_bytes(pid, "VmHWM") {
            peak = peak.max(hwm);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if peak > limit || Instant::now() > deadline {
            killed = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Run {
        code: status.code(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        peak,
        killed,
    }
}

/// Peak memory of a `leakwatch top` that reads nothing: the binary itself (a debug
/// build maps over 100 MB of code and symbols).
fn baseline_peak() -> u64 {
    let run = run_bounded(&["top", "/dev/null"], u64::MAX);
    assert_eq!(run.code, Some(1), "top /dev/null: {}", run.stderr);
    run.peak
}

fn check_refused(what: &str, run: &Run, limit: u64, wants: &[&str]) {
    eprintln!(
        "{what}: exit {:?}, peak {} MiB (limit {} MiB), killed {}; stderr: {}",
        run.code,
        run.peak / MIB,
        limit / MIB,
        run.killed,
        run.stderr.trim()
    );
    assert!(
        !run.killed,
        "{what}: peak memory passed {} MiB and it was killed",
        limit / MIB
    );
    assert_eq!(run.code, Some(1), "{what}: {}", run.stderr);
    for w in wants {
        assert!(run.stderr.contains(w), "{what}: no {w:?} in {}", run.stderr);
    }
    assert!(run.peak <= limit, "{what}: peak {}", run.peak);
}

/// `leakwatch diff BASE /dev/zero` once grew until the OOM killer came (24 GB).
#[test]
fn endless_stream_is_refused_at_the_input_cap() {
    let base = fixture("go1.26/heap/heap.pb.gz");
    let base = base.to_str().unwrap();
    let limit = baseline_peak() + DEFAULT_CAP + SLACK;
    let run = run_bounded(&["diff", base, "/dev/zero"], limit);
    check_refused(
        "diff BASE /dev/zero",
        &run,
        limit,
        &[
            "/dev/zero",
            "over the input limit of 256.0 MiB",
            "--max-input-bytes",
        ],
    );
    // A smaller cap is a smaller peak.
    let limit = baseline_peak() + 16 * MIB + SLACK;
    let run = run_bounded(&["top", "/dev/zero", "--max-input-bytes", "16MiB"], limit);
    check_refused(
        "top /dev/zero --max-input-bytes 16MiB",
        &run,
        limit,
        &["over the input limit of 16.0 MiB"],
    );
}

/// 1 GiB of zeros in ~1 MiB of gzip: refused at the cap, not after inflating a GiB.
#[test]
fn gzip_bomb_is_refused_at_the_decompression_cap() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.pb.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![0u8; 4 * MIB as usize]).unwrap();
    std::fs::write(&bomb, enc.finish().unwrap().repeat(256)).unwrap();
    let limit = baseline_peak() + DEFAULT_CAP + SLACK;
    let run = run_bounded(&["top", bomb.to_str().unwrap()], limit);
    check_refused(
        "top bomb.pb.gz",
        &run,
        limit,
        &["exceeds the limit of 268435456 bytes", "--max-input-bytes"],
    );
}

/// 50 MB of junk: read and refused as no profile in memory a small multiple of it, or
/// refused by its size alone under a smaller cap.
#[test]
fn big_junk_file_fails_cleanly_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.bin");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..50_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&junk, &bytes).unwrap();
    drop(bytes);
    let junk = junk.to_str().unwrap();
    let base = baseline_peak();
    let limit = base + 2 * 50 * MIB + SLACK;
    let run = run_bounded(&["top", junk], limit);
    check_refused("top junk.bin", &run, limit, &["reading the heap profile"]);

    let limit = base + SLACK;
    let run = run_bounded(&["top", junk, "--max-input-bytes", "32MiB"], limit);
    check_refused(
        "top junk.bin --max-input-bytes 32MiB",
        &run,
        limit,
        &[
            "the file (50000000 bytes) is over the input limit of 32.0 MiB",
            "--max-input-bytes",
        ],
    );
}

/// Config files are capped too: a config that is an endless stream is an error.
#[test]
fn config_file_is_read_with_a_cap() {
    let limit = baseline_peak() + 16 * MIB + SLACK;
    let run = run_bounded(&["--config", "/dev/zero", "--config.check"], limit);
    check_refused(
        "--config /dev/zero",
        &run,
        limit,
        &["over the input limit of 16.0 MiB"],
    );
}

// ---------------------------------------------------------------------------------
// A record-dense text profile from a target
// ---------------------------------------------------------------------------------

/// Records of the dense profile, as in the attack.
const DENSE_RECORDS: usize = 600_000;
/// Records of the frameless profile.
const FRAMELESS_RECORDS: usize = 1_000_000;

/// 600,000 one-frame records, each its own stack: ~40 MB, the densest a heap text
/// gets with symbolized frames (the attack's body was 39.5 MB).
fn dense_body() -> Vec<u8> {
    let mut s = String::with_capacity(42 * MIB as usize);
    s.push_str(&format!(
        "heap profile: {DENSE_RECORDS}: {} [{DENSE_RECORDS}: {}] @ heap/1048576\n",
        DENSE_RECORDS * 65536,
        DENSE_RECORDS * 65536
    ));
    for i in 0..DENSE_RECORDS {
        let pc = 0x400000 + i;
        s.push_str(&format!(
            "1: 65536 [1: 65536] @ {pc:#x}\n#\t{pc:#x}\tmain.f{i}+0x1\t/s/f.go:{}\n\n",
            i % 1000 + 1
        ));
    }
    s.into_bytes()
}

/// Serves `/small/...` (the go1.26 capture) and `/NAME/...` for each of `bodies`
/// as a heap profile on loopback (text, or gzipped protobuf).
fn serve_heaps(bodies: Vec<(&'static str, Arc<Vec<u8>>)>) -> String {
    let small: Arc<Vec<u8>> =
        Arc::new(std::fs::read(fixture("go1.26/heap/heap_debug1.txt")).unwrap());
    let mut all = vec![("small", small)];
    all.extend(bodies);
    let all = Arc::new(all);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for sock in listener.incoming().flatten() {
            let all = all.clone();
            std::thread::spawn(move || respond(sock, &all));
        }
    });
    url
}

fn respond(mut sock: TcpStream, bodies: &[(&str, Arc<Vec<u8>>)]) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    // Text at `heap?debug=1`, a protobuf (gzipped) at `heap`.
    let at = |name: &str, b: &[u8]| match b.starts_with(&[0x1f, 0x8b]) {
        true => format!("/{name}/debug/pprof/heap"),
        false => format!("/{name}/debug/pprof/heap?debug=1"),
    };
    let body: &[u8] = bodies
        .iter()
        .find(|(name, b)| path == at(name, b))
        .map_or(b"Unknown profile\n", |(_, b)| b.as_slice());
    let status = if body.starts_with(b"heap") || body.starts_with(&[0x1f, 0x8b]) {
        "200 OK"
    } else {
        "404 Not Found"
    };
    let _ = write!(
        sock,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = sock.write_all(body);
}

/// The `small` target, and `big` (served at `/big`) when given.
fn config(url: &str, big: Option<&str>) -> String {
    let mut y = format!(
        "defaults:\n  interval: 2s\n  timeout: 20s\n  heap_format: text\n  max_body_bytes: 64MiB\n  overhead_budget: 0\n\
         system:\n  kernel_log: 'off'\n\
         metrics:\n  collectors: {{heap_profile: true}}\n\
         targets:\n  - name: small\n    url: {url}/small\n"
    );
    if let Some(name) = big {
        // One scrape of it: the peak of one parse (a re-scrape also holds the previous
        // profile until the new one replaces it).
        y.push_str(&format!(
            "  - name: {name}\n    url: {url}/{name}\n    interval: 10m\n"
        ));
    }
    y
}

fn reload(lw: &Leakwatch, path: &Path, yaml: &str) {
    std::fs::write(path, yaml).unwrap();
    let ok = Command::new("kill")
        .args(["-HUP", &lw.pid().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// The attack's 600,000-record text (39.5 MB) peaked at ~600 MB (15x) and left RSS at
/// ~450 MB after the target was removed; a million frameless records (23 MB) peaked at
/// 7.8x. Parsed as they download into interned stacks (the body never held whole), the
/// peak stays within ~3x the body whatever the record density, and is given back.
#[test]
fn record_dense_text_profile_is_parsed_in_bounded_memory_and_given_back() {
    // (target, body, records, largest peak over the body)
    let cases: [(&str, Arc<Vec<u8>>, usize, f64); 2] = [
        ("dense", Arc::new(dense_body()), DENSE_RECORDS, 2.5),
        // Per 23-byte record: a 40-byte sample, an 8-byte frame, a 10-byte index slot
        // while parsing, then 16 bytes to sum its site: ~3x is the floor of this layout.
        (
            "frameless",
            Arc::new(frameless_heap_text(FRAMELESS_RECORDS)),
            FRAMELESS_RECORDS,
            3.5,
        ),
    ];
    let url = serve_heaps(cases.iter().map(|c| (c.0, c.1.clone())).collect());
    let lw = Leakwatch::start(&config(&url, None));
    let cfg = lw.dir().join("leakwatch.yaml");
    let pid = lw.pid();
    wait_until(Duration::from_secs(20), "the small target scraped", || {
        lw.metrics()
            .get("leakwatch_heap_profile_records", &[("target", "small")])
    });
    let mut fails = Vec::new();
    for (name, body, want_records, max_peak) in &cases {
        let body_len = body.len() as u64;
        std::thread::sleep(Duration::from_secs(3));
        // The peak of this case alone: reset the high-water mark (Linux >= 4.0).
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
        let hwm_before = status_bytes(pid, "VmHWM").unwrap();
        let rss_before = status_bytes(pid, "VmRSS").unwrap();

        reload(&lw, &cfg, &config(&url, Some(name)));
        let started = Instant::now();
        let records = wait_until(Duration::from_secs(120), "the big profile parsed", || {
            lw.metrics()
                .get("leakwatch_heap_profile_records", &[("target", name)])
        });
        let parse_time = started.elapsed();
        std::thread::sleep(Duration::from_secs(3));
        let hwm = status_bytes(pid, "VmHWM").unwrap();
        let rss_with = status_bytes(pid, "VmRSS").unwrap();

        reload(&lw, &cfg, &config(&url, None));
        wait_until(Duration::from_secs(30), "the big target removed", || {
            lw.metrics()
                .get("leakwatch_heap_profile_records", &[("target", name)])
                .is_none()
                .then_some(())
        });
        std::thread::sleep(Duration::from_secs(5));
        let rss_after = status_bytes(pid, "VmRSS").unwrap();

        let peak = hwm.saturating_sub(rss_before.min(hwm_before));
        let kept = rss_after.saturating_sub(rss_before);
        let ratio = peak as f64 / body_len as f64;
        eprintln!(
            "{name}: {want_records} records, {:.1} MB body, parsed in {parse_time:?}; RSS before {} MiB, \
             VmHWM {} -> {} MiB (+{ratio:.2}x the body), RSS with the target {} MiB, after it was removed {} MiB (+{:.2}x)",
            body_len as f64 / 1e6,
            rss_before / MIB,
            hwm_before / MIB,
            hwm / MIB,
            rss_with / MIB,
            rss_after / MIB,
            kept as f64 / body_len as f64,
        );
        if records != *want_records as f64 {
            fails.push(format!("{name}: {records} records, want {want_records}"));
        }
        if ratio >= *max_peak {
            fails.push(format!(
                "{name}: peak grew by {} MiB for a {} MiB body ({ratio:.2}x, over {max_peak}x)",
                peak / MIB,
                body_len / MIB
            ));
        }
        if kept >= 3 * body_len / 2 {
            fails.push(format!(
                "{name}: RSS still {} MiB above the start after the target was removed",
                kept / MIB
            ));
        }
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

/// Issue 23's protobuf heap profile: 300,000 records, 54.7 MB once gunzipped.
const PROTO_RECORDS: u64 = 300_000;

/// The exporter's RSS growth while `run` runs (VmHWM reset first), and what is still
/// resident 5 s after `undo`: (RSS before, peak, kept).
fn rss_of(pid: u32, run: impl FnOnce(), undo: impl FnOnce()) -> (u64, u64, u64) {
    std::thread::sleep(Duration::from_secs(3));
    // The peak of this case alone: reset the high-water mark (Linux >= 4.0).
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let hwm_before = status_bytes(pid, "VmHWM").unwrap();
    let rss_before = status_bytes(pid, "VmRSS").unwrap();
    run();
    let hwm = status_bytes(pid, "VmHWM").unwrap();
    undo();
    std::thread::sleep(Duration::from_secs(5));
    let rss_after = status_bytes(pid, "VmRSS").unwrap();
    (
        rss_before,
        hwm.saturating_sub(rss_before.min(hwm_before)),
        rss_after.saturating_sub(rss_before),
    )
}

/// The attack's protobuf heap profile (6.1 MB gzipped, 54 MB raw, 300k records) raised
/// the peak RSS by ~390 MB through one `/probe` and left 450 MB resident; as a target,
/// 333 MB peak and 153 MB kept. Decoded as it downloads into compact tables, then
/// interned stacks, it peaks within 3x its raw size, and under a tenth of it stays.
#[test]
fn record_dense_proto_profile_is_decoded_in_bounded_memory_and_given_back() {
    use leakwatch::pprof::proto::synthetic_heap_profile;
    use prost::Message;
    let raw = synthetic_heap_profile(PROTO_RECORDS).encode_to_vec();
    let raw_len = raw.len() as u64;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    let body = Arc::new(gz.finish().unwrap());
    drop(raw);
    let url = serve_heaps(vec![("pb", body.clone())]);
    let allow = format!(
        "probe:\n  allow: ['{}/pb']\n  modules:\n    pb: {{timeout: 60s, heap_format: proto}}\n",
        url.replace('.', "\\.")
    );
    let with = |target: bool| {
        let mut y = config(&url, None);
        if target {
            y.push_str(&format!(
                "  - name: pb\n    url: {url}/pb\n    interval: 10m\n    heap_format: proto\n"
            ));
        }
        y + &allow
    };
    let lw = Leakwatch::start(&with(false));
    let cfg = lw.dir().join("leakwatch.yaml");
    let pid = lw.pid();
    wait_until(Duration::from_secs(20), "the small target scraped", || {
        lw.metrics()
            .get("leakwatch_heap_profile_records", &[("target", "small")])
    });
    let records = |lw: &Leakwatch| {
        lw.metrics()
            .get("leakwatch_heap_profile_records", &[("target", "pb")])
    };
    let mut fails = Vec::new();
    let mut check = |what: &str, (before, peak, kept): (u64, u64, u64)| {
        let (p, k) = (peak as f64 / raw_len as f64, kept as f64 / raw_len as f64);
        eprintln!(
            "{what}: {PROTO_RECORDS} records, {:.1} MB ({:.1} MB gzipped); RSS before {} MiB, \
             peak +{} MiB (+{p:.2}x the raw body), kept +{} MiB (+{k:.3}x)",
            raw_len as f64 / 1e6,
            body.len() as f64 / 1e6,
            before / MIB,
            peak / MIB,
            kept / MIB,
        );
        if p > 3.0 {
            fails.push(format!("{what}: peak +{p:.2}x the raw body, over 3x"));
        }
        if k >= 0.1 {
            fails.push(format!(
                "{what}: +{k:.3}x the raw body kept, a tenth or more"
            ));
        }
    };

    // The probe first: the peak of a fresh exporter, as in the attack.
    let probe = rss_of(
        pid,
        || {
            let (status, page) = lw.get(&format!("/probe?target={url}/pb&module=pb"));
            let page = String::from_utf8_lossy(&page);
            assert_eq!(status, 200, "{page}");
            assert!(
                page.contains(&format!("leakwatch_heap_profile_records {PROTO_RECORDS}")),
                "{page}"
            );
        },
        || {},
    );
    check("probe", probe);

    let configured = rss_of(
        pid,
        || {
            reload(&lw, &cfg, &with(true));
            let n = wait_until(Duration::from_secs(120), "the profile decoded", || {
                records(&lw)
            });
            assert_eq!(n, PROTO_RECORDS as f64);
        },
        || {
            reload(&lw, &cfg, &with(false));
            wait_until(Duration::from_secs(30), "the target removed", || {
                records(&lw).is_none().then_some(())
            });
        },
    );
    check("configured target", configured);
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}
