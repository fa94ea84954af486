//! A fake fleet of Go services for scale tests: one process on one loopback port serving
//! N virtual services under `/t0000/`, `/t0001/`, ..., each replaying real `net/http/pprof`
//! captures from `tests/fixtures`, and counting every request it serves.
//!
//! ```text
//! cargo run --release --example fake-fleet -- --targets 1000 --listen 127.0.0.1:0
//! ```
//!
//! Target `i` (URL `http://127.0.0.1:PORT/tNNNN`) replays capture `i % captures` (the
//! go1.19/go1.23/go1.26 folders, plus go1.26 with the `goroutineleak` profile), so the
//! fleet mixes Go versions, leak modes and profile sizes (go1.23/callsites is the big one).
//! Every `--no-expvar-every`-th target has no `/debug/vars` (many services never import
//! expvar), so leakwatch takes MemStats from `heap?debug=1` for those, as it would in
//! production. `GET /stats` (outside every target) returns the request counters as JSON.
//!
//! The first line on stdout is `fake-fleet listening on http://ADDR ...`, so scripts can
//! bind port 0 and read the port back.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;

/// One capture folder, held in memory as the bytes a Go service would send.
#[derive(Debug, Clone)]
pub struct Capture {
    /// Folder under tests/fixtures, e.g. `go1.23/callsites`.
    pub name: String,
    pub heap_pb: Bytes,
    pub heap_text: Bytes,
    pub heap_text_gc1: Option<Bytes>,
    pub goroutine_pb: Bytes,
    pub goroutine_text: Bytes,
    pub goroutine_text2: Option<Bytes>,
    pub allocs_text: Option<Bytes>,
    pub goroutineleak_text: Option<Bytes>,
    pub vars: Bytes,
    pub index: Bytes,
}

/// Kinds of request counted by the fleet (the index into [`Counters::by_endpoint`]).
const ENDPOINTS: &[&str] = &[
    "vars",
    "index",
    "heap_proto",
    "heap_text",
    "goroutine_proto",
    "goroutine_text",
    "goroutineleak",
    "allocs",
];

/// Request counters, read by `GET /stats`.
#[derive(Debug)]
pub struct Counters {
    pub total: AtomicU64,
    pub not_found: AtomicU64,
    pub by_endpoint: Vec<AtomicU64>,
    /// Protobuf heap requests per target: one per scrape of that target with the
    /// default `heap_format: proto` (text heap requests also fetch MemStats, so they
    /// are not counted here).
    pub heap_proto_by_target: Vec<AtomicU64>,
}

/// The fleet: captures, how targets map to them, and counters.
#[derive(Debug)]
pub struct Fleet {
    pub captures: Vec<Capture>,
    pub targets: usize,
    /// Every n-th target has no expvar (0 = all have it).
    pub no_expvar_every: usize,
    /// Added before every response, to mimic a service's time to build a profile.
    pub delay: Duration,
    pub counters: Counters,
}

impl Fleet {
    pub fn new(
        captures: Vec<Capture>,
        targets: usize,
        no_expvar_every: usize,
        delay: Duration,
    ) -> Self {
        Fleet {
            captures,
            targets,
            no_expvar_every,
            delay,
            counters: Counters {
                total: AtomicU64::new(0),
                not_found: AtomicU64::new(0),
                by_endpoint: ENDPOINTS.iter().map(|_| AtomicU64::new(0)).collect(),
                heap_proto_by_target: (0..targets).map(|_| AtomicU64::new(0)).collect(),
            },
        }
    }

    /// Base URL path of target `i`, e.g. `/t0042`.
    pub fn prefix(i: usize) -> String {
        format!("/t{i:04}")
    }

    /// The capture target `i` replays.
    pub fn capture_of(&self, i: usize) -> &Capture {
        &self.captures[i % self.captures.len()]
    }

    /// Whether target `i` serves `/debug/vars`.
    pub fn has_expvar(&self, i: usize) -> bool {
        self.no_expvar_every == 0 || i % self.no_expvar_every != self.no_expvar_every - 1
    }

    fn count(&self, endpoint: &str) {
        if let Some(k) = ENDPOINTS.iter().position(|e| *e == endpoint) {
            self.counters.by_endpoint[k].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters as JSON.
    pub fn stats(&self) -> serde_json::Value {
        let c = &self.counters;
        let by_endpoint: BTreeMap<&str, u64> = ENDPOINTS
            .iter()
            .zip(&c.by_endpoint)
            .map(|(e, n)| (*e, n.load(Ordering::Relaxed)))
            .collect();
        serde_json::json!({
            "targets": self.targets,
            "captures": self.captures.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            "requests_total": c.total.load(Ordering::Relaxed),
            "not_found": c.not_found.load(Ordering::Relaxed),
            "by_endpoint": by_endpoint,
            "heap_proto_by_target": c.heap_proto_by_target.iter().map(|n| n.load(Ordering::Relaxed)).collect::<Vec<_>>(),
        })
    }
}

/// Reads `dir/name`, or gunzips `dir/name.gz` (big captures are stored compressed).
fn read_plain(dir: &Path, name: &str) -> std::io::Result<Bytes> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(b) => Ok(Bytes::from(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let gz = std::fs::read(dir.join(format!("{name}.gz")))?;
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(gz.as_slice()).read_to_end(&mut out)?;
            Ok(Bytes::from(out))
        }
        Err(e) => Err(e),
    }
}

fn read_opt(dir: &Path, name: &str) -> Option<Bytes> {
    read_plain(dir, name).ok()
}

impl Capture {
    /// A full capture folder (heap and goroutine in both formats, expvar, index), or
    /// `None` when the folder lacks one of them.
    fn load(root: &Path, name: &str) -> Option<Capture> {
        let dir = root.join(name);
        Some(Capture {
            name: name.to_string(),
            heap_pb: read_opt(&dir, "heap.pb.gz")?,
            heap_text: read_opt(&dir, "heap_debug1.txt")?,
            heap_text_gc1: read_opt(&dir, "heap_debug1_gc1.txt"),
            goroutine_pb: read_opt(&dir, "goroutine.pb.gz")?,
            goroutine_text: read_opt(&dir, "goroutine_debug1.txt")?,
            goroutine_text2: read_opt(&dir, "goroutine_debug2.txt"),
            allocs_text: read_opt(&dir, "allocs_debug1.txt"),
            goroutineleak_text: read_opt(&dir, "goroutineleak_debug1.txt"),
            vars: read_opt(&dir, "vars.json")?,
            index: read_opt(&dir, "index.html")?,
        })
    }
}

/// Every usable capture under `root` (tests/fixtures), in a stable order.
///
/// The go1.26-leakprof folders were captured without protobuf profiles or expvar, so
/// they are laid over the go1.26 capture of the same mode: the index (which lists
/// `goroutineleak`), the goroutineleak profile and the text profiles come from the
/// leakprof build, the rest from plain go1.26.
pub fn load_captures(root: &Path) -> std::io::Result<Vec<Capture>> {
    let mut out = Vec::new();
    for version in ["go1.19", "go1.23", "go1.26", "go1.26-trimpath"] {
        let mut modes: Vec<String> = std::fs::read_dir(root.join(version))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        modes.sort();
        for mode in modes {
            if let Some(c) = Capture::load(root, &format!("{version}/{mode}")) {
                out.push(c);
            }
        }
    }
    for mode in ["blocked", "goroutine"] {
        let overlay = root.join("go1.26-leakprof").join(mode);
        let Some(base) = out.iter().find(|c| c.name == format!("go1.26/{mode}")) else {
            continue;
        };
        let mut c = base.clone();
        c.name = format!("go1.26-leakprof/{mode}");
        c.index = read_plain(&overlay, "index.html")?;
        c.goroutineleak_text = Some(read_plain(&overlay, "goroutineleak_debug1.txt")?);
        c.goroutine_text = read_plain(&overlay, "goroutine_debug1.txt")?;
        c.heap_text = read_plain(&overlay, "heap_debug1.txt")?;
        c.heap_text_gc1 = None;
        out.push(c);
    }
    if out.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no capture folders under {}", root.display()),
        ));
    }
    Ok(out)
}

/// The fleet's routes: `/stats`, and everything under `/tNNNN/`.
pub fn router(fleet: Arc<Fleet>) -> Router {
    Router::new()
        .route("/stats", get(stats))
        .fallback(serve)
        .with_state(fleet)
}

async fn stats(State(fleet): State<Arc<Fleet>>) -> Response {
    axum::Json(fleet.stats()).into_response()
}

const TEXT: &str = "text/plain; charset=utf-8";
const BINARY: &str = "application/octet-stream";

fn reply(content_type: &'static str, body: Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn not_found(fleet: &Fleet) -> Response {
    fleet.counters.not_found.fetch_add(1, Ordering::Relaxed);
    (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
}

/// `/tNNNN/rest` -> (N, rest), for N below the fleet size.
fn split_target(path: &str, targets: usize) -> Option<(usize, &str)> {
    let rest = path.strip_prefix("/t")?;
    let (digits, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let i: usize = digits.parse().ok()?;
    (i < targets).then_some((i, tail))
}

async fn serve(State(fleet): State<Arc<Fleet>>, uri: Uri) -> Response {
    fleet.counters.total.fetch_add(1, Ordering::Relaxed);
    let Some((i, rest)) = split_target(uri.path(), fleet.targets) else {
        return not_found(&fleet);
    };
    if !fleet.delay.is_zero() {
        tokio::time::sleep(fleet.delay).await;
    }
    let query = uri.query().unwrap_or("");
    let has = |kv: &str| query.split('&').any(|p| p == kv);
    let debug = if has("debug=1") {
        1
    } else if has("debug=2") {
        2
    } else {
        0
    };
    let c = fleet.capture_of(i);
    match (rest, debug) {
        ("/debug/vars", _) if fleet.has_expvar(i) => {
            fleet.count("vars");
            reply("application/json; charset=utf-8", c.vars.clone())
        }
        ("/debug/pprof/" | "/debug/pprof", _) => {
            fleet.count("index");
            reply("text/html; charset=utf-8", c.index.clone())
        }
        ("/debug/pprof/heap", 0) => {
            fleet.count("heap_proto");
            fleet.counters.heap_proto_by_target[i].fetch_add(1, Ordering::Relaxed);
            reply(BINARY, c.heap_pb.clone())
        }
        ("/debug/pprof/heap", _) => {
            fleet.count("heap_text");
            let body = match (&c.heap_text_gc1, has("gc=1")) {
                (Some(b), true) => b.clone(),
                _ => c.heap_text.clone(),
            };
            reply(TEXT, body)
        }
        ("/debug/pprof/goroutine", 0) => {
            fleet.count("goroutine_proto");
            reply(BINARY, c.goroutine_pb.clone())
        }
        ("/debug/pprof/goroutine", 1) => {
            fleet.count("goroutine_text");
            reply(TEXT, c.goroutine_text.clone())
        }
        ("/debug/pprof/goroutine", _) => match &c.goroutine_text2 {
            Some(b) => {
                fleet.count("goroutine_text");
                reply(TEXT, b.clone())
            }
            None => not_found(&fleet),
        },
        ("/debug/pprof/goroutineleak", _) => match &c.goroutineleak_text {
            Some(b) => {
                fleet.count("goroutineleak");
                reply(TEXT, b.clone())
            }
            None => not_found(&fleet),
        },
        ("/debug/pprof/allocs", 1) => match &c.allocs_text {
            Some(b) => {
                fleet.count("allocs");
                reply(TEXT, b.clone())
            }
            None => not_found(&fleet),
        },
        _ => not_found(&fleet),
    }
}

/// Binds `listen` and serves the fleet until the process is stopped.
pub async fn serve_fleet(
    fleet: Arc<Fleet>,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    axum::serve(listener, router(fleet)).await
}

#[derive(Debug, clap::Parser)]
#[command(
    name = "fake-fleet",
    about = "N fake Go services replaying real pprof captures"
)]
struct Args {
    /// Number of virtual services (`/t0000` ... ).
    #[arg(long, default_value_t = 1000)]
    targets: usize,
    /// Address to listen on (port 0 picks a free port, printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// The fixtures tree.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))]
    fixtures: PathBuf,
    /// Every N-th target has no /debug/vars (0 = every target has expvar).
    #[arg(long, default_value_t = 5)]
    no_expvar_every: usize,
    /// Milliseconds added before each response (a service's time to build a profile).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Worker threads of the runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    use anyhow::Context;
    use clap::Parser;
    use std::io::Write;
    let args = Args::parse();
    let captures = load_captures(&args.fixtures)
        .with_context(|| format!("loading captures from {}", args.fixtures.display()))?;
    let fleet = Arc::new(Fleet::new(
        captures,
        args.targets,
        args.no_expvar_every,
        Duration::from_millis(args.delay_ms),
    ));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let addr = listener.local_addr()?;
        let names: Vec<&str> = fleet.captures.iter().map(|c| c.name.as_str()).collect();
        println!(
            "fake-fleet listening on http://{addr} ({} targets /t0000../t{:04}, {} captures: {})",
            fleet.targets,
            fleet.targets.saturating_sub(1),
            names.len(),
            names.join(" ")
        );
        std::io::stdout().flush()?;
        serve_fleet(fleet, listener).await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn splits_target_prefixes() {
        assert_eq!(
            super::split_target("/t0042/debug/pprof/heap", 1000),
            Some((42, "/debug/pprof/heap"))
        );
        assert_eq!(super::split_target("/t0999", 1000), Some((999, "")));
        assert_eq!(super::split_target("/t1000/debug/vars", 1000), None);
        assert_eq!(super::split_target("/tx/debug/vars", 1000), None);
        assert_eq!(super::split_target("/stats", 1000), None);
    }
}
