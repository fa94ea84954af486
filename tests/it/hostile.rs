//! Hostile targets and hostile inputs: bodies that never end or trickle a byte a
//! second, a gzip bomb, a 100,000-frame stack, a million records, invalid UTF-8, a
//! redirect loop and a redirect to another host. Each must end in a clear error
//! metric and log line, must not delay a healthy target scraped by the same exporter,
//! and must leave leakwatch's peak memory bounded. Also replays every input in
//! tests/regressions/ (crashes found by scripts/fuzz) through every parser.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{Leakwatch, Metrics};

const MIB: u64 = 1024 * 1024;
/// `max_body_bytes` of every target but `million` (also the decompression cap).
const MAX_BODY: u64 = 8 * MIB;
/// `max_body_bytes` that lets the `million` body (~23 MB) in.
const MAX_BODY_MILLION: u64 = 32 * MIB;
/// The healthy target's (and every target's) interval.
const INTERVAL: Duration = Duration::from_secs(1);
/// Frames of the `deep_stack` record.
const DEEP_FRAMES: usize = 100_000;
/// Records of the `million` profile.
const MILLION: usize = 1_000_000;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn read_fixture(rel: &str) -> Vec<u8> {
    std::fs::read(fixture(rel)).unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

/// What the misbehaving server sends, built once before it starts.
struct Bodies {
    /// Healthy capture folder (go1.26/heap), by file name.
    healthy: BTreeMap<&'static str, Vec<u8>>,
    gzip_bomb: Vec<u8>,
    deep_stack: Vec<u8>,
    million: Vec<u8>,
    bad_utf8_heap: Vec<u8>,
    bad_utf8_goroutine: Vec<u8>,
}

/// Deflate cannot beat ~1032:1, so "inflates to GBs" needs about a MiB of gzip: the
/// same 4 MiB-of-zeros member (about 4 KiB) repeated 256 times, which Go-style
/// multi-member readers inflate to 1 GiB. The body (about 1 MiB) is under the body
/// cap, so only the decompression cap can stop it.
fn gzip_bomb() -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![0u8; 4 * MIB as usize]).unwrap();
    let member = enc.finish().unwrap();
    member.repeat(256)
}

/// One heap record whose stack has `DEEP_FRAMES` distinct symbolized frames.
fn deep_stack() -> Vec<u8> {
    let mut s = String::with_capacity(6 * MIB as usize);
    s.push_str("heap profile: 1: 1048576 [1: 1048576] @ heap/1048576\n1: 1048576 [1: 1048576] @");
    for i in 0..DEEP_FRAMES {
        s.push_str(&format!(" {:#x}", 0x400000 + i));
    }
    s.push('\n');
    for i in 0..DEEP_FRAMES {
        s.push_str(&format!(
            "#\t{:#x}\tmain.deep{i}+0x1\t/src/deep.go:{}\n",
            0x400000 + i,
            i + 1
        ));
    }
    s.into_bytes()
}

/// `text` with every `needle` made invalid UTF-8 (a 0xff 0xfe pair inside the name).
fn corrupt(text: &[u8], needle: &str) -> Vec<u8> {
    let (head, tail) = needle.split_at(needle.len() / 2);
    let mut bad = head.as_bytes().to_vec();
    bad.extend_from_slice(&[0xff, 0xfe]);
    bad.extend_from_slice(tail.as_bytes());
    let mut out = Vec::with_capacity(text.len() + 64);
    let mut rest = text;
    let mut replaced = 0;
    while let Some(at) = rest
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
    {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(&bad);
        rest = &rest[at + needle.len()..];
        replaced += 1;
    }
    out.extend_from_slice(rest);
    assert!(replaced > 0, "{needle} not in the fixture");
    out
}

impl Bodies {
    fn build() -> Bodies {
        let dir = "go1.26/heap";
        let mut healthy = BTreeMap::new();
        for f in [
            "heap.pb.gz",
            "heap_debug1.txt",
            "goroutine.pb.gz",
            "goroutine_debug1.txt",
            "vars.json",
            "index.html",
        ] {
            healthy.insert(f, read_fixture(&format!("{dir}/{f}")));
        }
        Bodies {
            gzip_bomb: gzip_bomb(),
            deep_stack: deep_stack(),
            million: crate::support::frameless_heap_text(MILLION),
            bad_utf8_heap: corrupt(&healthy["heap_debug1.txt"], "main.newSession"),
            bad_utf8_goroutine: corrupt(
                &healthy["goroutine_debug1.txt"],
                "runtime/pprof.writeGoroutine",
            ),
            healthy,
        }
    }
}

/// A loopback server whose first path segment picks a behaviour:
/// `http://127.0.0.1:PORT/<mode>/debug/pprof/...`. A second listener on 127.0.0.2
/// (loopback, but another host) only counts connections: none may arrive.
struct HostileServer {
    addr: SocketAddr,
    other_host_connections: Arc<AtomicU64>,
    /// mode -> requests received.
    requests: Arc<Mutex<BTreeMap<String, u64>>>,
    /// mode -> body bytes written (how much the endless/trickle targets were sent).
    sent: Arc<Mutex<BTreeMap<String, u64>>>,
    _rt: tokio::runtime::Runtime,
}

struct Shared {
    bodies: Bodies,
    other_host: SocketAddr,
    requests: Arc<Mutex<BTreeMap<String, u64>>>,
    sent: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl HostileServer {
    fn start() -> HostileServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let bodies = Bodies::build();
        let requests = Arc::new(Mutex::new(BTreeMap::new()));
        let sent = Arc::new(Mutex::new(BTreeMap::new()));
        let other_host_connections = Arc::new(AtomicU64::new(0));
        let (main, other) = rt.block_on(async {
            let main = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let other = TcpListener::bind("127.0.0.2:0").await.unwrap();
            (main, other)
        });
        let addr = main.local_addr().unwrap();
        let other_host = other.local_addr().unwrap();
        let count = other_host_connections.clone();
        rt.spawn(async move {
            while let Ok((sock, _)) = other.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(sock);
            }
        });
        let shared = Arc::new(Shared {
            bodies,
            other_host,
            requests: requests.clone(),
            sent: sent.clone(),
        });
        rt.spawn(async move {
            while let Ok((sock, _)) = main.accept().await {
                tokio::spawn(handle(sock, shared.clone()));
            }
        });
        assert_eq!(other_host.ip().to_string(), "127.0.0.2");
        HostileServer {
            addr,
            other_host_connections,
            requests,
            sent,
            _rt: rt,
        }
    }

    fn url(&self, mode: &str) -> String {
        format!("http://{}/{mode}", self.addr)
    }
}

async fn respond(sock: &mut TcpStream, status: &str, extra: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    let _ = sock.write_all(head.as_bytes()).await;
    let _ = sock.write_all(body).await;
    let _ = sock.shutdown().await;
}

async fn handle(mut sock: TcpStream, s: Arc<Shared>) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut tmp).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
        if buf.len() > 64 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (mode, rest) = match target.trim_start_matches('/').split_once('/') {
        Some((m, r)) => (m.to_string(), format!("/{r}")),
        None => (target.trim_start_matches('/').to_string(), "/".to_string()),
    };
    *s.requests.lock().unwrap().entry(mode.clone()).or_default() += 1;
    let (path, query) = rest.split_once('?').unwrap_or((rest.as_str(), ""));
    let debug1 = query.split('&').any(|kv| kv == "debug=1");
    let is_heap = path == "/debug/pprof/heap";
    let not_found = b"Unknown profile\n".as_slice();
    match mode.as_str() {
        "healthy" => {
            let file = match (path, debug1) {
                ("/debug/pprof/heap", true) => "heap_debug1.txt",
                ("/debug/pprof/heap", false) => "heap.pb.gz",
                ("/debug/pprof/goroutine", true) => "goroutine_debug1.txt",
                ("/debug/pprof/goroutine", false) => "goroutine.pb.gz",
                ("/debug/vars", _) => "vars.json",
                ("/debug/pprof/", _) => "index.html",
                _ => return respond(&mut sock, "404 Not Found", "", not_found).await,
            };
            respond(&mut sock, "200 OK", "", &s.bodies.healthy[file]).await
        }
        // Chunked, 64 KiB chunks as fast as the socket takes them, forever.
        "endless" if is_heap => {
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await;
            let chunk = {
                let mut c = b"10000\r\n".to_vec();
                c.extend(std::iter::repeat_n(b'x', 0x10000));
                c.extend_from_slice(b"\r\n");
                c
            };
            while sock.write_all(&chunk).await.is_ok() {
                *s.sent.lock().unwrap().entry(mode.clone()).or_default() += 0x10000;
            }
        }
        // Promises 100,000 bytes, sends one a second.
        "trickle" if is_heap => {
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                .await;
            for _ in 0..100_000 {
                if sock.write_all(b"h").await.is_err() {
                    break;
                }
                *s.sent.lock().unwrap().entry(mode.clone()).or_default() += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        "gzip_bomb" if is_heap => respond(&mut sock, "200 OK", "", &s.bodies.gzip_bomb).await,
        "deep_stack" if is_heap => respond(&mut sock, "200 OK", "", &s.bodies.deep_stack).await,
        "million" if is_heap => respond(&mut sock, "200 OK", "", &s.bodies.million).await,
        "invalid_utf8" if is_heap && debug1 => {
            respond(&mut sock, "200 OK", "", &s.bodies.bad_utf8_heap).await
        }
        "invalid_utf8" if path == "/debug/pprof/goroutine" && debug1 => {
            respond(&mut sock, "200 OK", "", &s.bodies.bad_utf8_goroutine).await
        }
        // Back to itself.
        "redirect_loop" if is_heap => {
            let loc = format!("Location: {target}\r\n");
            respond(&mut sock, "302 Found", &loc, b"").await
        }
        // Always somewhere new on the same host: heap, heapx, heapxx, ...
        "redirect_chain" if path.starts_with("/debug/pprof/heap") => {
            let loc = format!("Location: /redirect_chain{path}x\r\n");
            respond(&mut sock, "302 Found", &loc, b"").await
        }
        "other_host" if is_heap => {
            let loc = format!("Location: http://{}/debug/pprof/heap\r\n", s.other_host);
            respond(&mut sock, "302 Found", &loc, b"").await
        }
        _ => respond(&mut sock, "404 Not Found", "", not_found).await,
    }
}

/// Peak resident memory (VmHWM) of a process, in bytes.
fn vm_hwm(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

fn errors(m: &Metrics, target: &str, endpoint: &str) -> BTreeMap<String, f64> {
    m.series("leakwatch_scrape_errors_total")
        .into_iter()
        .filter(|(l, _)| {
            l.get("target").map(String::as_str) == Some(target)
                && l.get("endpoint").map(String::as_str) == Some(endpoint)
        })
        .filter(|(_, v)| *v > 0.0)
        .map(|(l, v)| (l["reason"].clone(), v))
        .collect()
}

/// (target, heap_format, what the heap endpoint may fail with; empty = must succeed)
const CASES: &[(&str, &str, &[&str])] = &[
    ("endless", "proto", &["too_large", "timeout"]),
    ("trickle", "proto", &["timeout"]),
    ("gzip_bomb", "proto", &["too_large", "parse"]),
    ("deep_stack", "text", &[]),
    // Over the default cap: refused from its Content-Length. Within a bigger cap it
    // must parse: see million_records_within_the_cap_do_not_stall_the_exporter.
    ("million", "text", &["too_large"]),
    ("invalid_utf8", "text", &[]),
    ("redirect_loop", "proto", &["redirect"]),
    ("redirect_chain", "proto", &["redirect"]),
    ("other_host", "proto", &["redirect"]),
];

/// `LEAKWATCH_HOSTILE_ONLY=endless,trickle` runs only those cases (to see which one
/// hurts when the test fails).
fn only(name: &str) -> bool {
    match std::env::var("LEAKWATCH_HOSTILE_ONLY") {
        Ok(list) if !list.is_empty() => list.split(',').any(|n| n.trim() == name),
        _ => true,
    }
}

fn cases(million_cap: u64) -> Vec<(&'static str, &'static str, &'static [&'static str])> {
    CASES
        .iter()
        .copied()
        .filter(|(name, _, _)| only(name))
        .map(|(name, format, reasons)| match name {
            "million" if million_cap > 24 * MIB => (name, format, &[][..]),
            _ => (name, format, reasons),
        })
        .collect()
}

/// Records a failed check (and prints it) instead of stopping at the first one, so a
/// run reports every limit that does not hold.
macro_rules! check {
    ($fails:ident, $cond:expr, $($fmt:tt)*) => {{
        let ok: bool = $cond;
        if !ok {
            let msg = format!($($fmt)*);
            eprintln!("FAIL: {msg}");
            $fails.push(msg);
        }
    }};
}

#[test]
fn hostile_targets_fail_cleanly_without_delaying_others_in_bounded_memory() {
    hostile_run(MAX_BODY);
}

/// A million records is 23 MB of text: under a 32 MiB cap it is fetched and parsed.
/// It is parsed as it downloads, on the blocking pool (a few seconds in a debug build),
/// so while it runs the healthy target keeps its interval and `/metrics` stays fast;
/// the run watches 45 s so the million target comes up.
#[test]
fn million_records_within_the_cap_do_not_stall_the_exporter() {
    hostile_run(MAX_BODY_MILLION);
}

/// Runs every hostile case (or those in LEAKWATCH_HOSTILE_ONLY) and a healthy target on
/// one leakwatch binary, then checks every limit; `million_cap` is the
/// `max_body_bytes` of the `million` target.
fn hostile_run(million_cap: u64) {
    let cases = cases(million_cap);
    let server = HostileServer::start();
    let mut yaml = format!(
        "defaults:\n  interval: 1s\n  timeout: 2s\n  max_body_bytes: {MAX_BODY}\n  overhead_budget: 0\n\
         system:\n  kernel_log: 'off'\n\
         metrics:\n  collectors: {{heap_profile: true}}\n\
         targets:\n  - name: healthy\n    url: {}\n",
        server.url("healthy")
    );
    for &(name, format, _) in &cases {
        yaml.push_str(&format!(
            "  - name: {name}\n    url: {}\n    heap_format: {format}\n",
            server.url(name)
        ));
        if name == "invalid_utf8" {
            yaml.push_str("    goroutine_format: text\n");
        }
        if name == "million" {
            yaml.push_str(&format!("    max_body_bytes: {million_cap}\n"));
        }
    }
    let lw = Leakwatch::start(&yaml);
    let baseline_hwm = vm_hwm(lw.pid());

    // Watch the healthy target's scrape timestamps while the hostile ones misbehave.
    // A million records takes ~21 s to parse in a debug build (off the async workers):
    // watch long enough for it to come up.
    let watch = if million_cap > MAX_BODY {
        Duration::from_secs(45)
    } else {
        Duration::from_secs(14)
    };
    let start = Instant::now();
    let mut stamps: Vec<f64> = Vec::new();
    let mut metrics_latency = Duration::ZERO;
    let mut m = lw.metrics();
    while start.elapsed() < watch {
        let t = Instant::now();
        m = lw.metrics();
        metrics_latency = metrics_latency.max(t.elapsed());
        if let Some(v) = m.get(
            "leakwatch_last_scrape_timestamp_seconds",
            &[("target", "healthy")],
        ) && stamps.last() != Some(&v)
        {
            stamps.push(v);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let hwm = vm_hwm(lw.pid());
    let stderr = lw.stderr();
    let mut fails: Vec<String> = Vec::new();

    // 1. The healthy target kept its interval.
    let gaps: Vec<f64> = stamps.windows(2).map(|w| w[1] - w[0]).collect();
    let max_gap = gaps.iter().cloned().fold(0.0, f64::max);
    eprintln!(
        "healthy: {} scrapes in {watch:?}, gaps (s): {:?}, max {max_gap:.3}; slowest /metrics {metrics_latency:?}",
        stamps.len(),
        gaps.iter()
            .map(|g| (g * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>()
    );
    check!(
        fails,
        stamps.len() >= 10,
        "healthy target scraped only {} times in {watch:?}",
        stamps.len()
    );
    check!(
        fails,
        // A hung target would show as gaps of its 2 s timeout or more; the slack is for
        // a loaded CI machine (the deep_stack parse alone costs ~0.5 s of a worker).
        max_gap < INTERVAL.as_secs_f64() + 1.5,
        "healthy target delayed: gap of {max_gap:.3}s at a {INTERVAL:?} interval"
    );
    check!(
        fails,
        metrics_latency < Duration::from_millis(1500),
        "GET /metrics took {metrics_latency:?}"
    );
    check!(
        fails,
        m.get("leakwatch_up", &[("target", "healthy")]) == Some(1.0),
        "healthy target down"
    );
    let healthy_errors = errors(&m, "healthy", "heap");
    check!(
        fails,
        healthy_errors.is_empty(),
        "healthy target had errors: {healthy_errors:?}"
    );

    // 2. Each hostile target: the right reason, a log line, and it keeps being retried.
    for &(name, _, reasons) in &cases {
        let got = errors(&m, name, "heap");
        let up = m.get("leakwatch_up", &[("target", name)]);
        eprintln!("{name}: up={up:?} heap errors={got:?}");
        if reasons.is_empty() {
            check!(
                fails,
                up == Some(1.0) && got.is_empty(),
                "{name} should parse within limits: up {up:?}, errors {got:?}"
            );
            continue;
        }
        check!(fails, up == Some(0.0), "{name}: up {up:?}");
        check!(fails, !got.is_empty(), "{name}: no heap error counted");
        for reason in got.keys() {
            check!(
                fails,
                reasons.contains(&reason.as_str()),
                "{name}: reason {reason}, want one of {reasons:?}"
            );
        }
        let line = stderr
            .lines()
            .find(|l| l.contains("scrape failed") && l.contains(&format!("target_name={name}")));
        match line {
            Some(line) => {
                eprintln!("  log: {line}");
                check!(
                    fails,
                    reasons.iter().any(|r| line.contains(r)) || name == "gzip_bomb",
                    "{name}: log line does not say why: {line}"
                );
            }
            None => check!(fails, false, "no 'scrape failed' log line for {name}"),
        }
    }
    let sent = server.sent.lock().unwrap().clone();
    let requests = server.requests.lock().unwrap().clone();
    eprintln!("bytes sent: {sent:?}; requests: {requests:?}");
    // Timeouts and caps cut the requests short, and the loops try again.
    if only("endless") {
        let e = errors(&m, "endless", "heap").values().sum::<f64>();
        check!(fails, e >= 3.0, "endless: only {e} failed scrapes");
        // The endless body is abandoned at the cap, give or take the socket buffers.
        let reqs = requests.get("endless").copied().unwrap_or(0).max(1);
        let per_request = sent.get("endless").copied().unwrap_or(0) / reqs;
        check!(
            fails,
            per_request < MAX_BODY + 8 * MIB,
            "endless: {per_request} bytes sent per request with a {MAX_BODY}-byte cap"
        );
    }
    if only("trickle") {
        let t = errors(&m, "trickle", "heap").values().sum::<f64>();
        check!(fails, t >= 2.0, "trickle: only {t} failed scrapes");
        // The trickle never got past its timeout (2 s at a byte a second): at most 3
        // bytes read per request, plus one the server writes before it sees the close.
        let reqs = requests.get("trickle").copied().unwrap_or(0);
        let bytes = sent.get("trickle").copied().unwrap_or(0);
        check!(
            fails,
            bytes <= 4 * reqs,
            "trickle: {bytes} bytes sent in {reqs} requests"
        );
    }

    // 3. The lossy and the strict parser on invalid UTF-8.
    if only("invalid_utf8") {
        // Same records as the healthy capture's heap_debug1.txt, only renamed.
        let want =
            leakwatch::pprof::heap::parse_heap_text(&read_fixture("go1.26/heap/heap_debug1.txt"))
                .unwrap()
                .estimate()
                .unwrap()
                .totals()
                .inuse_bytes as f64;
        let got = m.get(
            "leakwatch_heap_profile_inuse_bytes",
            &[("target", "invalid_utf8")],
        );
        check!(
            fails,
            got == Some(want),
            "invalid_utf8 heap: inuse {got:?}, want the fixture's {want}"
        );
        let g = errors(&m, "invalid_utf8", "goroutine");
        check!(
            fails,
            g.keys().map(String::as_str).collect::<Vec<_>>() == ["parse"],
            "goroutine text is strict UTF-8, want parse errors: {g:?}"
        );
    }

    // 4. The giant inputs parsed into the right shape.
    let parsed = cases.iter().filter(|(_, _, reasons)| reasons.is_empty());
    for &(name, _, _) in parsed {
        let want = match name {
            "deep_stack" => 1.0,
            "million" => MILLION as f64,
            _ => continue,
        };
        {
            let got = m.get("leakwatch_heap_profile_records", &[("target", name)]);
            check!(
                fails,
                got == Some(want),
                "{name}: {got:?} records, want {want}"
            );
        }
    }

    // 5. Never a connection to another host, even loopback.
    let other = server.other_host_connections.load(Ordering::SeqCst);
    check!(fails, other == 0, "{other} connections to 127.0.0.2");
    if only("other_host") {
        check!(
            fails,
            stderr.contains("another host"),
            "no log of the refused redirect"
        );
    }

    // 6. Memory stayed bounded. Each target fetches one endpoint at a time, so at most
    // one body per target is in flight (10 targets < MAX_CONCURRENT_SCRAPES). A body
    // Vec grows by doubling when no Content-Length is sent: up to 2x its cap; a gzip
    // body adds the decompressed copy (cap + 1, doubling again: 2x). The million
    // frameless records (23 MB, text) are parsed as they download into interned
    // stacks, ~3x the body at the peak with the analysis after it (tests/it/input.rs
    // measures it alone). The whole run peaked at 496 MiB with a `String` per frame,
    // ~170 MiB since.
    let hostile_targets = cases.len() as u64;
    let bound = 64 * MIB // runtime, client, fixtures, metrics
        + hostile_targets * 4 * MAX_BODY // body + decompression, 2x growth each
        + 4 * million_cap; // the million records: body, samples, frames, index
    eprintln!(
        "VmHWM: {} MiB at start, {} MiB after the hostile run; bound {} MiB",
        baseline_hwm / MIB,
        hwm / MIB,
        bound / MIB
    );
    check!(fails, hwm < bound, "VmHWM {hwm} over the bound {bound}");
    assert!(
        fails.is_empty(),
        "{} failed checks:\n{}\nleakwatch stderr:\n{stderr}",
        fails.len(),
        fails.join("\n")
    );
}

/// Every parser the fuzz targets cover, run over one input as the fuzz targets do.
/// Returns how many of them accepted it (for the report; any panic fails the test).
fn every_parser(data: &[u8]) -> usize {
    use leakwatch::analysis::diff::{TopOptions, diff, top};
    use leakwatch::pprof::goroutine::{
        count_by_state, count_tracebacks_by_state, parse_goroutine_text, parse_goroutine_traceback,
    };
    use leakwatch::pprof::load::load_profile;
    use leakwatch::pprof::{heap, memstats, proto};
    use leakwatch::system::{cgroup, discover, kmsg, proc};

    let mut ok = 0;
    let mut count = |accepted: bool| ok += usize::from(accepted);
    if let Ok(t) = heap::parse_heap_text(data) {
        if let Ok(p) = t.estimate() {
            let _ = top(&p, &TopOptions::default());
        }
        count(true);
    }
    if let Ok(t) = parse_goroutine_text(data) {
        let _ = count_by_state(&t.to_profile());
        count(true);
    }
    if let Ok(t) = parse_goroutine_traceback(data) {
        let _ = count_tracebacks_by_state(&t);
        count(true);
    }
    if let Ok(p) = proto::decode(data, MIB) {
        count(proto::heap_profile(&p).is_ok());
        count(proto::goroutine_profile(&p).is_ok());
    }
    count(leakwatch::pprof::proto_heap::decode_heap_profile(data, MIB).is_ok());
    count(memstats::parse_expvar(data).is_ok());
    if let Ok(p) = load_profile(data, MIB) {
        let _ = diff(&p, &p, &TopOptions::default());
        count(true);
    }
    let text = String::from_utf8_lossy(data);
    count(cgroup::parse_flat_keyed("memory.stat", &text).is_ok());
    count(cgroup::parse_pressure(&text).is_ok());
    count(cgroup::parse_max_file("memory.max", &text).is_ok());
    count(cgroup::parse_u64_file("memory.current", &text).is_ok());
    count(cgroup::parse_v1_limit(&text).is_ok());
    count(cgroup::parse_v1_oom_control(&text).is_ok());
    count(discover::parse_proc_cgroup(&text).is_ok());
    count(discover::parse_pid_file(&text).is_ok());
    count(proc::parse_status(&text).is_ok());
    count(proc::parse_gomemlimit(&text).is_ok());
    let _ = proc::parse_gogc(&text);
    for line in text.lines() {
        let _ = kmsg::parse_kmsg_record(line);
        let _ = kmsg::parse_oom(line);
    }
    count(!kmsg::parse_oom_log(&text).is_empty());
    ok
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Fuzz targets (and `config`) a file in tests/regressions/ may be named after.
const REGRESSION_KINDS: &[&str] = &[
    "heap_text",
    "goroutine_text",
    "goroutine_traceback",
    "proto",
    "expvar",
    "system_files",
    "kmsg",
    "load_profile",
    "config",
];

/// What a regression input must still do, beyond not panicking any parser.
fn check_regression(name: &str, data: &[u8]) -> Result<(), String> {
    use leakwatch::pprof::heap;
    let heap_records = || heap::parse_heap_text(data).map_err(|e| e.to_string());
    match name {
        "load_profile-gzip-bomb-multimember.gz" => {
            let err = leakwatch::pprof::load::load_profile(data, MIB)
                .err()
                .ok_or("the bomb was accepted")?
                .to_string();
            err.contains("exceeds the limit")
                .then_some(())
                .ok_or(format!("refused without naming the cap: {err}"))
        }
        "heap_text-deep-stack.txt" => {
            let t = heap_records()?;
            let frames = t.records.first().map_or(0, |r| r.frames.len());
            (t.records.len() == 1 && frames == 2000)
                .then_some(())
                .ok_or(format!("{} records, {frames} frames", t.records.len()))
        }
        "heap_text-dense-records.txt" => {
            let n = heap_records()?.records.len();
            (n == 4000).then_some(()).ok_or(format!("{n} records"))
        }
        "heap_text-bad-utf8.txt" => {
            let t = heap_records()?;
            let bad = t
                .records
                .iter()
                .flat_map(|r| &r.frames)
                .filter_map(|f| f.function.as_deref())
                .any(|f| f == "main.ne\u{fffd}\u{fffd}wSession");
            bad.then_some(())
                .ok_or("the invalid bytes were not replaced".to_string())
        }
        n if n.starts_with("config-") => {
            let text = String::from_utf8_lossy(data);
            match leakwatch::config::Config::from_yaml(&text) {
                Ok(_) => Err("accepted".to_string()),
                Err(e) if e.to_string().contains(" at line ") => Ok(()),
                Err(e) => Err(format!("refused without a line: {e}")),
            }
        }
        _ => Ok(()),
    }
}

/// Inputs scripts/fuzz found and the hostile inputs of issue 15 (tests/regressions/)
/// never panic any parser and still get the answer their fix gave them (a hostile
/// config is refused with its key and line); the fuzz seeds (fuzz/seeds/) are still
/// accepted by exactly the parsers they seed.
#[test]
fn regressions_and_seeds_through_every_parser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let regressions: Vec<PathBuf> = files_in(&root.join("tests/regressions"))
        .into_iter()
        .filter(|f| f.extension().is_none_or(|e| e != "md"))
        .collect();
    // Each hostile input found is kept: the folder holding only its README means
    // nothing is replayed.
    assert!(
        regressions.len() >= 10,
        "tests/regressions/ holds {} inputs",
        regressions.len()
    );
    let mut wrong = Vec::new();
    for f in &regressions {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let kind = name.split_once('-').map_or("", |(k, _)| k);
        if !REGRESSION_KINDS.contains(&kind) {
            wrong.push(format!(
                "{name}: name it <target>-<what>, target one of {REGRESSION_KINDS:?}"
            ));
            continue;
        }
        let data = std::fs::read(f).unwrap();
        let accepted = every_parser(&data);
        eprintln!("{name}: accepted by {accepted} parsers");
        if let Err(why) = check_regression(&name, &data) {
            wrong.push(format!("{name}: {why}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // (seed folder, how many parsers accept each seed): the proto seed is gzipped zeros,
    // which no parser may accept; the others seed at least one parser.
    for (dir, accepted_by) in [
        ("kmsg", 1..=usize::MAX),
        ("proto", 0..=0),
        ("system_files", 1..=usize::MAX),
    ] {
        let files = files_in(&root.join("fuzz/seeds").join(dir));
        assert!(!files.is_empty(), "no seeds in fuzz/seeds/{dir}");
        for f in files {
            let data = std::fs::read(&f).unwrap();
            let accepted = every_parser(&data);
            assert!(
                accepted_by.contains(&accepted),
                "{}: accepted by {accepted}, want {accepted_by:?}",
                f.display()
            );
        }
    }
}

/// The hostile bodies of the exporter test, straight through the parsers: exact
/// shapes, and the decompression cap cuts the bomb at the cap.
#[test]
fn hostile_bodies_through_the_parsers() {
    use leakwatch::pprof::{heap, proto};

    let t = heap::parse_heap_text(&deep_stack()).unwrap();
    assert_eq!(t.records.len(), 1);
    assert_eq!(t.records[0].frames.len(), DEEP_FRAMES);
    assert_eq!(t.records[0].addrs.len(), DEEP_FRAMES);
    let p = t.estimate().unwrap();
    let stack = p.stack(&p.samples[0]);
    assert_eq!(stack.len(), DEEP_FRAMES);
    assert_eq!(
        stack.names().last().unwrap().to_string(),
        format!("main.deep{}", DEEP_FRAMES - 1)
    );

    let bomb = gzip_bomb();
    assert!(
        bomb.len() < 2 * MIB as usize,
        "bomb is {} bytes",
        bomb.len()
    );
    let started = Instant::now();
    let err = proto::decode(&bomb, MAX_BODY).unwrap_err().to_string();
    assert!(err.contains("exceeds the limit"), "{err}");
    eprintln!(
        "gzip bomb ({} bytes -> 1 GiB) refused in {:?}",
        bomb.len(),
        started.elapsed()
    );
    let err = leakwatch::pprof::load::load_profile(&bomb, MAX_BODY)
        .unwrap_err()
        .to_string();
    assert!(err.contains("exceeds the limit"), "{err}");
    // Decoded as it is gunzipped: zeros are no protobuf, refused at the first byte.
    let err = leakwatch::pprof::proto_heap::decode_heap_profile(&bomb, MAX_BODY)
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid tag value: 0"), "{err}");

    let bad = corrupt(
        &read_fixture("go1.26/heap/heap_debug1.txt"),
        "main.newSession",
    );
    let t = heap::parse_heap_text(&bad).unwrap();
    let names: Vec<&str> = t
        .records
        .iter()
        .flat_map(|r| &r.frames)
        .filter_map(|f| f.function.as_deref())
        .filter(|f| f.contains('\u{fffd}'))
        .collect();
    assert!(
        names.contains(&"main.ne\u{fffd}\u{fffd}wSession"),
        "{names:?}"
    );
}
