//! Profile dumps against loopback servers: scheduled dumps that `go tool pprof` opens,
//! every way a fetch can fail leaving no file behind, retention, the suspect pair and
//! its cooldown, the `pre_oom` pair under a target bouncing near its limit, and the
//! `/dumps/` API (downloads, listing, traversal refused) over real HTTP on a real
//! listener.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use leakwatch::dump::{
    DumpConfig, DumpFile, DumpList, DumpManager, DumpTarget, ProfileType, Reason, parse_file_name,
};
use leakwatch::metrics::Sink;
use leakwatch::units::ByteSize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn heap_fixture() -> Vec<u8> {
    std::fs::read(fixture("go1.23/heap/heap.pb.gz")).unwrap()
}

fn goroutine_fixture() -> Vec<u8> {
    std::fs::read(fixture("go1.23/heap/goroutine.pb.gz")).unwrap()
}

async fn spawn_server(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A fake Go service serving the go1.23 heap and goroutine protobuf profiles as Go
/// does: `application/octet-stream`, no Content-Encoding.
async fn serve_fixtures() -> SocketAddr {
    let octet =
        |b: Vec<u8>| ([(header::CONTENT_TYPE, "application/octet-stream")], b).into_response();
    let app = Router::new()
        .route(
            "/debug/pprof/heap",
            get(move || async move { octet(heap_fixture()) }),
        )
        .route(
            "/debug/pprof/goroutine",
            get(move || async move { octet(goroutine_fixture()) }),
        );
    spawn_server(app).await
}

/// A raw TCP server: reads a request head, writes `response`, then closes or (with
/// `stall`) keeps the connection open without another byte.
async fn raw_server(response: Vec<u8>, stall: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let response = response.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = sock.write_all(&response).await;
                let _ = sock.flush().await;
                if stall {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            });
        }
    });
    addr
}

fn url(addr: SocketAddr) -> reqwest::Url {
    reqwest::Url::parse(&format!("http://{addr}")).unwrap()
}

/// Settings for tests: nothing scheduled, no suspicion handling, unless changed.
fn config(dir: &Path, f: impl FnOnce(&mut DumpConfig)) -> DumpConfig {
    let mut c = DumpConfig {
        dir: Some(dir.to_path_buf()),
        heap_every: None,
        goroutine_every: None,
        on_suspect: false,
        timeout: Duration::from_secs(5),
        ..DumpConfig::default()
    };
    f(&mut c);
    c.validate("test").unwrap();
    c
}

fn manager(targets: Vec<DumpTarget>) -> Arc<DumpManager> {
    Arc::new(DumpManager::new(targets).unwrap())
}

/// Every file name in a target's dump directory, sorted (temporary files included).
fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// The value of one dump series of `target`, from `push_samples`.
fn series(m: &DumpManager, target: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let mut sink = Sink::new();
    leakwatch::metrics::emit::dumps(m, target, &mut sink);
    sink.samples
        .iter()
        .find(|s| s.def.name == name && s.labels == labels)
        .map(|s| s.value.as_f64())
}

fn dumps_total(m: &DumpManager, target: &str, p: &str, result: &str, reason: &str) -> f64 {
    series(m, target, "leakwatch_pprof_dump", &[p, result, reason]).unwrap_or(0.0)
}

/// A Go toolchain to run `go tool pprof` with: `go` on PATH (Go 1.26 here), else Debian's.
fn go_binary() -> PathBuf {
    let on_path = Command::new("go")
        .arg("version")
        .env("GOTOOLCHAIN", "local")
        .output()
        .is_ok_and(|o| o.status.success());
    if on_path {
        PathBuf::from("go")
    } else {
        PathBuf::from("/usr/lib/go-1.19/bin/go")
    }
}

/// `go tool pprof -top ARGS...`: its stdout, asserting it succeeded.
fn pprof_top(go: &Path, args: &[&Path]) -> String {
    let out = Command::new(go)
        .args(["tool", "pprof", "-top"])
        .args(args)
        .env("GOTOOLCHAIN", "local")
        .env_remove("GOROOT")
        .output()
        .unwrap_or_else(|e| panic!("running {} tool pprof: {e}", go.display()));
    assert!(
        out.status.success(),
        "go tool pprof -top {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_dumps_appear_at_the_configured_rate_and_open_in_pprof() {
    let addr = serve_fixtures().await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), |c| {
        c.heap_every = Some(Duration::from_millis(200))
    });
    let m = manager(vec![DumpTarget::new("svc", url(addr), cfg)]);
    let cancel = CancellationToken::new();
    let runner = tokio::spawn(m.clone().run(cancel.clone()));
    // First contact at ~0, dumps due at 200, 400, 600, 800, 1000 ms.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    cancel.cancel();
    runner.await.unwrap();
    let stopped = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();

    let files = m.list(Some("svc"));
    assert!(
        (4..=6).contains(&files.len()),
        "expected ~5 dumps in 1.1s at 200ms, got {}: {files:?}",
        files.len()
    );
    let on_disk = dir_names(&tmp.path().join("svc"));
    assert_eq!(on_disk.len(), files.len(), "{on_disk:?}");
    assert!(on_disk.iter().all(|n| !n.starts_with(".tmp-")));
    let fixture = heap_fixture();
    let go = go_binary();
    for f in &files {
        assert_eq!(f.profile, ProfileType::Heap);
        assert_eq!(f.reason, Reason::Schedule);
        assert_eq!(f.size, 513);
        assert!(on_disk.contains(&f.name), "{} not on disk", f.name);
        assert_eq!(
            parse_file_name(&f.name).map(|p| (p.0, p.2)),
            Some((ProfileType::Heap, Reason::Schedule))
        );
        // Byte for byte what the service served.
        assert_eq!(std::fs::read(&f.path).unwrap(), fixture);
        let top = pprof_top(&go, &[&f.path]);
        assert!(top.contains("main.newSession"), "{top}");
        assert!(top.contains("Type: inuse_space"), "{top}");
    }
    let n = files.len() as f64;
    assert_eq!(dumps_total(&m, "svc", "heap", "success", "schedule"), n);
    assert_eq!(dumps_total(&m, "svc", "heap", "failure", "schedule"), 0.0);
    assert_eq!(
        series(&m, "svc", "leakwatch_pprof_dump_bytes", &["heap"]),
        Some(513.0 * n)
    );
    assert_eq!(
        series(&m, "svc", "leakwatch_pprof_dump_bytes", &["goroutine"]),
        Some(0.0)
    );
    let last = series(
        &m,
        "svc",
        "leakwatch_pprof_dump_last_success_timestamp_seconds",
        &["heap"],
    )
    .unwrap();
    // The last dump was due at ~1000ms, the runner stopped at ~1100ms.
    assert!(
        last <= stopped && stopped - last < 1.0,
        "last success {last}, stopped at {stopped}"
    );
    // goroutine is not scheduled: no timestamp.
    assert_eq!(
        series(
            &m,
            "svc",
            "leakwatch_pprof_dump_last_success_timestamp_seconds",
            &["goroutine"]
        ),
        None
    );
}

/// A body that never ends: the gzip magic, then zeros forever.
fn endless_gzip_body() -> Response {
    let head = futures_util::stream::once(async {
        Ok::<_, Infallible>(Bytes::from_static(&[0x1f, 0x8b, 8, 0]))
    });
    let rest = futures_util::stream::repeat_with(|| Ok(Bytes::from(vec![0u8; 16 * 1024])));
    let body = Body::from_stream(futures_util::StreamExt::chain(head, rest));
    ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_dumps_are_counted_and_leave_no_file() {
    let gz = heap_fixture();
    let half = gz[..gz.len() / 2].to_vec();

    // Misbehaving services, each with what the error must say.
    let mut cases: Vec<(&str, SocketAddr, &str)> = Vec::new();
    let app = Router::new().route(
        "/debug/pprof/heap",
        get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "profile failed\n") }),
    );
    cases.push(("http 500", spawn_server(app).await, "http_status: HTTP 500"));
    let app = Router::new().route(
        "/debug/pprof/heap",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            "late"
        }),
    );
    cases.push(("no answer", spawn_server(app).await, "timeout"));
    let mut stalled = b"HTTP/1.1 200 OK\r\nContent-Length: 513\r\n\r\n".to_vec();
    stalled.extend_from_slice(&half);
    cases.push((
        "stalls mid-body",
        raw_server(stalled, true).await,
        "timeout",
    ));
    cases.push((
        "over max_bytes (Content-Length)",
        serve_fixtures().await,
        "too_large",
    ));
    let app = Router::new().route("/debug/pprof/heap", get(|| async { endless_gzip_body() }));
    cases.push(("endless body", spawn_server(app).await, "too_large"));
    let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    chunked.extend_from_slice(format!("{:x}\r\n", gz.len()).as_bytes());
    chunked.extend_from_slice(&half);
    cases.push(("closes mid-chunk", raw_server(chunked, false).await, "body"));
    let mut short = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", gz.len()).into_bytes();
    short.extend_from_slice(&half);
    cases.push((
        "closes before Content-Length",
        raw_server(short, false).await,
        "body",
    ));
    // No length and Connection: close: the body "ends" cleanly after half the gzip
    // stream, only the gzip check can tell.
    let mut eof = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
    eof.extend_from_slice(&half);
    cases.push((
        "truncated gzip, clean close",
        raw_server(eof, false).await,
        "truncated or corrupt gzip stream",
    ));
    let app = Router::new().route(
        "/debug/pprof/heap",
        get(|| async { "<html>404 page not found</html>" }),
    );
    cases.push((
        "not gzip",
        spawn_server(app).await,
        "not the gzip magic 1f 8b",
    ));

    let tmp = tempfile::tempdir().unwrap();
    let targets: Vec<DumpTarget> = cases
        .iter()
        .enumerate()
        .map(|(i, (what, addr, _))| {
            let cfg = config(tmp.path(), |c| {
                c.timeout = Duration::from_millis(500);
                if what.starts_with("over max_bytes") {
                    c.max_bytes = ByteSize::b(100);
                }
                if *what == "endless body" {
                    c.max_bytes = ByteSize::kib(64);
                }
            });
            DumpTarget::new(format!("t{i}"), url(*addr), cfg)
        })
        .collect();
    let m = manager(targets);
    for (i, (what, _, want)) in cases.iter().enumerate() {
        let name = format!("t{i}");
        let started = Instant::now();
        let err = m
            .dump_now(&name, ProfileType::Heap, Reason::Manual)
            .await
            .expect_err(what)
            .to_string();
        let took = started.elapsed();
        assert!(err.contains(want), "{what}: {err}");
        // Timeouts and the size cap cut the request short; nothing waits for the body.
        assert!(took < Duration::from_secs(3), "{what}: took {took:?}");
        assert_eq!(
            dumps_total(&m, &name, "heap", "failure", "manual"),
            1.0,
            "{what}"
        );
        assert_eq!(
            dumps_total(&m, &name, "heap", "success", "manual"),
            0.0,
            "{what}"
        );
        assert_eq!(
            series(&m, &name, "leakwatch_pprof_dump_bytes", &["heap"]),
            Some(0.0)
        );
        // Neither a dump nor a temporary file.
        assert_eq!(
            dir_names(&tmp.path().join(&name)),
            Vec::<String>::new(),
            "{what}"
        );
        assert!(m.list(Some(&name)).is_empty(), "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_temp_files_are_removed_and_old_dumps_indexed_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let tdir = tmp.path().join("svc");
    std::fs::create_dir_all(&tdir).unwrap();
    let gz = heap_fixture();
    std::fs::write(
        tdir.join(".tmp-heap-20260101T000000Z-schedule.pb.gz-1234abcd"),
        &gz[..100],
    )
    .unwrap();
    std::fs::write(tdir.join("heap-20260101T000000Z-schedule.pb.gz"), &gz).unwrap();
    std::fs::write(tdir.join("notes.txt"), "kept").unwrap();
    let cfg = config(tmp.path(), |_| {});
    let m = manager(vec![DumpTarget::new(
        "svc",
        url("127.0.0.1:9".parse().unwrap()),
        cfg,
    )]);
    assert_eq!(
        dir_names(&tdir),
        ["heap-20260101T000000Z-schedule.pb.gz", "notes.txt"]
    );
    let files = m.list(None);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].name, "heap-20260101T000000Z-schedule.pb.gz");
    assert_eq!(files[0].time, 1_767_225_600);
    assert_eq!(files[0].size, 513);
}

/// Issue 23, finding 8d: `<dumps.dir>/<target>` planted as a symbolic link is refused:
/// nothing where it points is indexed, pruned, removed or written (before: the stale
/// `.tmp-*` file there was deleted at start, the dump written there and the older
/// dumps there pruned, with 0644 modes). An ordinary directory is made 0700 and its
/// dumps are 0600.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_target_directory_is_refused_and_dumps_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let addr = serve_fixtures().await;
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    plant(&victim, "heap-20260101T000000Z-schedule.pb.gz");
    plant(&victim, "heap-20260101T000100Z-schedule.pb.gz");
    std::fs::write(victim.join(".tmp-precious"), "kept").unwrap();
    let root = tmp.path().join("dumps");
    std::fs::create_dir(&root).unwrap();
    std::os::unix::fs::symlink(&victim, root.join("svc")).unwrap();
    let before = dir_names(&victim);
    assert_eq!(before.len(), 3);

    let cfg = config(&root, |c| c.retention.max_files = 1);
    let m = manager(vec![
        DumpTarget::new("svc", url(addr), cfg.clone()),
        DumpTarget::new("ok", url(addr), cfg),
    ]);
    assert!(
        m.list(Some("svc")).is_empty(),
        "nothing indexed through the link"
    );
    let err = m
        .dump_now("svc", ProfileType::Heap, Reason::Manual)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(
        dir_names(&victim),
        before,
        "nothing written or removed there"
    );

    let f = m
        .dump_now("ok", ProfileType::Heap, Reason::Manual)
        .await
        .unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root.join("ok")), 0o700);
    assert_eq!(mode(&f.path), 0o600);
}

/// Copies the fixture into `<dir>/<name>` as if an earlier run had dumped it.
fn plant(dir: &Path, name: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), heap_fixture()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_oldest_first_and_manual_dumps_never_push_out_the_others() {
    let addr = serve_fixtures().await;
    let tmp = tempfile::tempdir().unwrap();
    let tdir = tmp.path().join("svc");
    // An earlier run left two heap dumps.
    plant(&tdir, "heap-20260101T000000Z-schedule.pb.gz");
    plant(&tdir, "heap-20260101T000100Z-schedule.pb.gz");
    let cfg = config(tmp.path(), |c| {
        c.on_suspect = true;
        c.retention.max_files = 3;
    });
    let m = manager(vec![DumpTarget::new("svc", url(addr), cfg)]);

    // No dump of this run yet: the base is the oldest kept.
    let (base, new) = m.handle_verdict("svc", true).await.expect("a pair");
    assert_eq!(base.name, "heap-20260101T000000Z-schedule.pb.gz");
    assert_eq!(new.reason, Reason::Suspect);
    // Three heap files now (2 old + suspect) = the limit. Four manual dumps: they are
    // a pool of their own (three kept, the oldest pruned), and none of the scheduled
    // or suspect dumps goes (before: each manual dump pushed out the oldest unpinned
    // file, the 00:01 scheduled dump first).
    let mut manual = Vec::new();
    for _ in 0..4 {
        manual.push(
            m.dump_now("svc", ProfileType::Heap, Reason::Manual)
                .await
                .unwrap()
                .name,
        );
    }
    let heaps: Vec<String> = dir_names(&tdir)
        .into_iter()
        .filter(|n| n.starts_with("heap-"))
        .collect();
    let mut want = vec![
        base.name.clone(),
        "heap-20260101T000100Z-schedule.pb.gz".to_string(),
        new.name.clone(),
        manual[1].clone(),
        manual[2].clone(),
        manual[3].clone(),
    ];
    want.sort();
    assert_eq!(heaps, want);
    assert_eq!(m.pair_for("svc"), Some((base.clone(), new.clone())));
    // Goroutine dumps have their own retention: the suspect one is there.
    let gor: Vec<String> = dir_names(&tdir)
        .into_iter()
        .filter(|n| n.starts_with("goroutine-"))
        .collect();
    assert_eq!(gor.len(), 1, "{gor:?}");
    assert!(gor[0].ends_with("-suspect.pb.gz"));
}

/// Issue 23: `pre_oom` dumps are a retention pool of their own, like manual ones: a
/// target bouncing near its memory limit made a `pre_oom` pair every other scrape, and
/// they pushed the scheduled and suspect dumps out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_oom_dumps_never_push_out_scheduled_or_suspect_ones() {
    let addr = serve_fixtures().await;
    let tmp = tempfile::tempdir().unwrap();
    let tdir = tmp.path().join("svc");
    plant(&tdir, "heap-20260101T000000Z-schedule.pb.gz");
    plant(&tdir, "heap-20260101T000100Z-schedule.pb.gz");
    let cfg = config(tmp.path(), |c| {
        c.on_suspect = true;
        c.retention.max_files = 3;
    });
    let m = manager(vec![DumpTarget::new("svc", url(addr), cfg)]);
    let (base, new) = m.handle_verdict("svc", true).await.expect("a pair");
    let mut pre_oom = Vec::new();
    for _ in 0..5 {
        for p in ProfileType::ALL {
            let f = m.dump_now("svc", p, Reason::PreOom).await.unwrap();
            if p == ProfileType::Heap {
                pre_oom.push(f.name);
            }
        }
    }
    let heaps: Vec<String> = dir_names(&tdir)
        .into_iter()
        .filter(|n| n.starts_with("heap-"))
        .collect();
    let mut want = vec![
        base.name.clone(),
        "heap-20260101T000100Z-schedule.pb.gz".to_string(),
        new.name.clone(),
        pre_oom[2].clone(),
        pre_oom[3].clone(),
        pre_oom[4].clone(),
    ];
    want.sort();
    assert_eq!(heaps, want);
    assert_eq!(m.pair_for("svc"), Some((base, new)));
    let gor: Vec<String> = dir_names(&tdir)
        .into_iter()
        .filter(|n| n.starts_with("goroutine-"))
        .collect();
    assert_eq!(
        gor.iter().filter(|n| n.ends_with("-suspect.pb.gz")).count(),
        1,
        "{gor:?}"
    );
    assert_eq!(
        gor.iter().filter(|n| n.contains("-pre_oom")).count(),
        3,
        "{gor:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_schedule_keeps_this_runs_baseline_and_the_newest() {
    let addr = serve_fixtures().await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), |c| {
        c.on_suspect = true;
        c.heap_every = Some(Duration::from_millis(100));
        c.retention.max_files = 2;
    });
    let m = manager(vec![DumpTarget::new("svc", url(addr), cfg)]);
    let cancel = CancellationToken::new();
    let runner = tokio::spawn(m.clone().run(cancel.clone()));
    tokio::time::sleep(Duration::from_millis(800)).await;
    cancel.cancel();
    runner.await.unwrap();
    let scheduled = dumps_total(&m, "svc", "heap", "success", "schedule");
    assert!(scheduled >= 4.0, "{scheduled} scheduled dumps");
    assert_eq!(dumps_total(&m, "svc", "heap", "success", "baseline"), 1.0);
    let files = m.list(Some("svc"));
    assert_eq!(files.len(), 2, "{files:?}");
    // Newest first: the last scheduled dump, then the first-contact baseline.
    assert_eq!(files[0].reason, Reason::Schedule);
    assert_eq!(files[1].reason, Reason::Baseline);
    let on_disk = dir_names(&tmp.path().join("svc"));
    let listed: Vec<String> = files.iter().rev().map(|f| f.name.clone()).collect();
    assert_eq!(on_disk, listed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspicion_makes_a_baseline_and_fresh_pair_once_per_cooldown() {
    let addr = serve_fixtures().await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), |c| {
        c.on_suspect = true;
        c.cooldown = Duration::from_secs(600);
    });
    let m = manager(vec![DumpTarget::new("svc", url(addr), cfg.clone())]);
    // Before first contact nothing is suspected and no pair exists.
    assert_eq!(m.pair_for("svc"), None);
    // First contact: the baseline.
    m.tick("svc", Instant::now()).await;
    let files = m.list(Some("svc"));
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].reason, Reason::Baseline);
    // Not suspected: nothing happens.
    assert_eq!(m.handle_verdict("svc", false).await, None);
    let (base, new) = m.handle_verdict("svc", true).await.expect("pair");
    assert_eq!(base, files[0]);
    assert_eq!(new.reason, Reason::Suspect);
    assert_eq!(new.profile, ProfileType::Heap);
    assert!(new.time >= base.time);
    assert_eq!(m.pair_for("svc"), Some((base.clone(), new.clone())));
    // The pair is what `go tool pprof -base` takes.
    let go = go_binary();
    let out = Command::new(&go)
        .args(["tool", "pprof", "-top", "-base"])
        .arg(&base.path)
        .arg(&new.path)
        .env("GOTOOLCHAIN", "local")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Same profile both sides: the difference is zero.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("accounting for 0, 0% of 0 total"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let cmd = m.diff_command("svc").unwrap();
    assert_eq!(
        cmd,
        format!(
            "go tool pprof -base {} {}",
            base.path.display(),
            new.path.display()
        )
    );

    // Within the cooldown: still suspected, suspicion cleared and raised again — no
    // second pair.
    assert_eq!(m.handle_verdict("svc", true).await, None);
    assert_eq!(m.handle_verdict("svc", false).await, None);
    assert_eq!(m.handle_verdict("svc", true).await, None);
    assert_eq!(dumps_total(&m, "svc", "heap", "success", "suspect"), 1.0);
    assert_eq!(
        dumps_total(&m, "svc", "goroutine", "success", "suspect"),
        1.0
    );
    assert_eq!(dumps_total(&m, "svc", "heap", "success", "baseline"), 1.0);
    // baseline + suspect heap + suspect goroutine.
    assert_eq!(dir_names(&tmp.path().join("svc")).len(), 3);

    // on_verdict (what the scrape loop calls) runs in the background; a short
    // cooldown lets a second fresh dump pair with the same base.
    let tmp2 = tempfile::tempdir().unwrap();
    let mut cfg2 = cfg;
    cfg2.dir = Some(tmp2.path().to_path_buf());
    cfg2.cooldown = Duration::from_millis(1200);
    let m2 = manager(vec![DumpTarget::new("svc", url(addr), cfg2)]);
    m2.tick("svc", Instant::now()).await;
    for _ in 0..5 {
        m2.on_verdict("svc", true);
    }
    let first = wait_for(|| m2.pair_for("svc")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dumps_total(&m2, "svc", "heap", "success", "suspect"), 1.0);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    m2.on_verdict("svc", true);
    let second = wait_for(|| m2.pair_for("svc").filter(|p| p.1 != first.1)).await;
    assert_eq!(
        second.0, first.0,
        "the base stays the first-contact baseline"
    );
    assert_eq!(second.0.reason, Reason::Baseline);
    assert!(second.1.name != first.1.name);
    assert_eq!(dumps_total(&m2, "svc", "heap", "success", "suspect"), 2.0);
}

async fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The body of a response as JSON (reqwest's `json` feature is off).
async fn json(r: reqwest::Response) -> serde_json::Value {
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

/// Sends one raw request line (so nothing normalizes `..`) and returns (status, body).
async fn raw_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    sock.read_to_end(&mut resp).await.unwrap();
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
    (status, body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dumps_api_over_http() {
    let svc = serve_fixtures().await;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("dumps");
    let cfg = config(&root, |_| {});
    let off = DumpConfig {
        dir: None,
        ..cfg.clone()
    };
    let m = manager(vec![
        DumpTarget::new("t", url(svc), cfg.clone()),
        DumpTarget::new("u", url(svc), cfg),
        DumpTarget::new("off", url(svc), off),
    ]);
    let app: Router = Router::new().merge(leakwatch::http::dumps::routes(m.clone()));
    let addr = spawn_server(app).await;
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();

    // Manual dumps.
    let r = client
        .post(format!("{base}/api/v1/dump?target=t&profile=heap"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let j = json(r).await;
    let name = j["name"].as_str().unwrap().to_string();
    assert!(
        name.starts_with("heap-") && name.ends_with("-manual.pb.gz"),
        "{name}"
    );
    assert_eq!(j["target"], "t");
    assert_eq!(j["profile"], "heap");
    assert_eq!(j["reason"], "manual");
    assert_eq!(j["size"], 513);
    assert_eq!(j["url"], format!("/dumps/t/{name}"));
    assert!(root.join("t").join(&name).is_file());
    let r = client
        .post(format!("{base}/api/v1/dump?target=t&profile=goroutine"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let gname = json(r).await["name"].as_str().unwrap().to_string();
    assert!(gname.starts_with("goroutine-"), "{gname}");
    assert_eq!(dumps_total(&m, "t", "heap", "success", "manual"), 1.0);
    assert_eq!(dumps_total(&m, "t", "goroutine", "success", "manual"), 1.0);

    for (query, status, says) in [
        (
            "target=t&profile=cpu",
            400,
            "profile must be heap or goroutine",
        ),
        ("profile=heap", 400, "missing ?target"),
        ("target=nope&profile=heap", 404, "unknown target"),
        ("target=off&profile=heap", 409, "dumps are off"),
    ] {
        let r = client
            .post(format!("{base}/api/v1/dump?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{query}");
        let j = json(r).await;
        assert!(j["error"].as_str().unwrap().contains(says), "{query}: {j}");
    }

    // Download: the exact bytes.
    let r = client
        .get(format!("{base}/dumps/t/{name}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "application/octet-stream"
    );
    assert_eq!(r.bytes().await.unwrap().to_vec(), heap_fixture());

    // Listing: HTML by default, JSON on request.
    let html = client
        .get(format!("{base}/dumps/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!("<a href=\"/dumps/t/{name}\">{name}</a>")),
        "{html}"
    );
    assert!(html.contains("<td>513</td>"), "{html}");
    assert!(html.contains("<td>manual</td>"), "{html}");
    for req in [
        client
            .get(format!("{base}/dumps/"))
            .header(header::ACCEPT, "application/json"),
        client.get(format!("{base}/dumps/?format=json")),
    ] {
        let j = json(req.send().await.unwrap()).await;
        let dumps = j["dumps"].as_array().unwrap();
        assert_eq!(dumps.len(), 2, "{j}");
        let names: Vec<&str> = dumps.iter().map(|d| d["name"].as_str().unwrap()).collect();
        assert!(names.contains(&name.as_str()) && names.contains(&gname.as_str()));
        let h = dumps.iter().find(|d| d["name"] == name.as_str()).unwrap();
        assert_eq!(h["size"], 513);
        assert_eq!(h["reason"], "manual");
    }
    let (status, _) = raw_get(addr, "/dumps/nope/").await;
    assert_eq!(status, 404);

    // Traversal and everything else outside the dump tree: refused.
    let outside = tmp.path().join("secret.pb.gz");
    std::fs::write(&outside, "root:x:0:0:secret").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("t/heap-20260101T000000Z-manual.pb.gz"))
        .unwrap();
    std::os::unix::fs::symlink(
        "/etc/passwd",
        root.join("t/heap-20260101T000001Z-manual.pb.gz"),
    )
    .unwrap();
    // Target u's directory is itself a symlink to a directory outside.
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(
        elsewhere.join("heap-20260101T000000Z-manual.pb.gz"),
        "root:x:0:0",
    )
    .unwrap();
    std::os::unix::fs::symlink(&elsewhere, root.join("u")).unwrap();
    std::fs::write(
        root.join("t/.tmp-heap-20260101T000000Z-manual.pb.gz-00000001"),
        "root:x",
    )
    .unwrap();
    let attempts: &[(&str, u16)] = &[
        ("/dumps/../etc/passwd", 404),
        ("/dumps/t/../../etc/passwd", 404),
        ("/dumps/t/..%2f..%2fetc%2fpasswd", 404),
        ("/dumps/t/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 404),
        ("/dumps/%2e%2e/passwd", 404),
        ("/dumps/..%2f..%2fetc/passwd", 404),
        ("/dumps/t/%2fetc%2fpasswd", 404),
        ("/dumps//etc/passwd", 404),
        (
            "/dumps/t/.tmp-heap-20260101T000000Z-manual.pb.gz-00000001",
            404,
        ),
        ("/dumps/nope/heap-20260101T000000Z-manual.pb.gz", 404),
        ("/dumps/off/heap-20260101T000000Z-manual.pb.gz", 404),
        ("/dumps/t/heap-20261231T000000Z-manual.pb.gz", 404),
        ("/dumps/t/heap-20260101T000000Z-manual.pb.gz", 403),
        ("/dumps/t/heap-20260101T000001Z-manual.pb.gz", 403),
        ("/dumps/u/heap-20260101T000000Z-manual.pb.gz", 403),
    ];
    for (path, want) in attempts {
        let (status, body) = raw_get(addr, path).await;
        assert_eq!(status, *want, "{path}: {body}");
        assert!(!body.contains("root:"), "{path} leaked: {body}");
    }
    // The real dumps are still served.
    let (status, _) = raw_get(addr, &format!("/dumps/t/{gname}")).await;
    assert_eq!(status, 200);
}

/// Scheduled dumps of the real example service (`-mode heap`) open in `go tool pprof`
/// of the toolchain that built the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_scheduled_dumps_from_leaky_service_open_in_pprof() {
    use crate::support::{LeakyService, toolchains};
    for tc in toolchains() {
        let svc = {
            let tc = tc.clone();
            tokio::task::spawn_blocking(move || LeakyService::start(&tc, &["-mode", "heap"]))
                .await
                .unwrap()
        };
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path(), |c| {
            c.heap_every = Some(Duration::from_millis(300));
            c.goroutine_every = Some(Duration::from_millis(300));
        });
        let u = reqwest::Url::parse(&svc.url).unwrap();
        let m = manager(vec![DumpTarget::new("leaky", u, cfg)]);
        let cancel = CancellationToken::new();
        let runner = tokio::spawn(m.clone().run(cancel.clone()));
        tokio::time::sleep(Duration::from_millis(1000)).await;
        cancel.cancel();
        runner.await.unwrap();
        let files: Vec<DumpFile> = m.list(Some("leaky"));
        let heaps: Vec<&DumpFile> = files
            .iter()
            .filter(|f| f.profile == ProfileType::Heap)
            .collect();
        let gors: Vec<&DumpFile> = files
            .iter()
            .filter(|f| f.profile == ProfileType::Goroutine)
            .collect();
        assert!(heaps.len() >= 2, "Go {}: {files:?}", tc.version);
        assert!(gors.len() >= 2, "Go {}: {files:?}", tc.version);
        assert_eq!(dumps_total(&m, "leaky", "heap", "failure", "schedule"), 0.0);
        for f in heaps {
            let top = pprof_top(&tc.go, &[&f.path]);
            assert!(
                top.contains("Type: inuse_space"),
                "Go {}: {top}",
                tc.version
            );
            assert!(
                top.contains("Showing nodes accounting for"),
                "Go {}: {top}",
                tc.version
            );
        }
        for f in gors {
            let top = pprof_top(&tc.go, &[&f.path]);
            assert!(top.contains("Type: goroutine"), "Go {}: {top}", tc.version);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_dump_leaves_no_temporary_file() {
    let gz = heap_fixture();
    let mut stalled =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", gz.len()).into_bytes();
    stalled.extend_from_slice(&gz[..gz.len() / 2]);
    let addr = raw_server(stalled, true).await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), |c| c.timeout = Duration::from_secs(20));
    let m = manager(vec![DumpTarget::new("t", url(addr), cfg)]);
    let task = {
        let m = m.clone();
        tokio::spawn(async move { m.dump_now("t", ProfileType::Heap, Reason::Manual).await })
    };
    // Half the body is in the temporary file by now.
    let tdir = tmp.path().join("t");
    wait_for(|| {
        dir_names(&tdir)
            .iter()
            .any(|n| {
                n.starts_with(".tmp-heap-")
                    && std::fs::metadata(tdir.join(n)).is_ok_and(|md| md.len() > 0)
            })
            .then_some(())
    })
    .await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(dir_names(&tdir), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_state_of_targets_that_stay() {
    let addr = serve_fixtures().await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), |_| {});
    let a = DumpTarget::new("a", url(addr), cfg.clone());
    // The list a reload swaps (the target registry, in the exporter).
    let list = Arc::new(DumpList::new(vec![a.clone()]));
    let m = DumpManager::over(list.clone(), leakwatch::scrape::Fetcher::new().unwrap());
    let f = m
        .dump_now("a", ProfileType::Heap, Reason::Manual)
        .await
        .unwrap();
    list.set_targets(vec![a, DumpTarget::new("b", url(addr), cfg)]);
    assert_eq!(m.list(Some("a")), vec![f]);
    assert_eq!(dumps_total(&m, "a", "heap", "success", "manual"), 1.0);
    assert!(m.enabled("b"));
    assert_eq!(dumps_total(&m, "b", "heap", "success", "manual"), 0.0);
    // A removed target's series and listing go; its files stay on disk.
    list.set_targets(vec![]);
    assert!(!m.has_target("a"));
    let mut sink = Sink::new();
    leakwatch::metrics::emit::dumps(&m, "a", &mut sink);
    assert!(sink.samples.is_empty());
    assert!(m.list(None).is_empty());
    assert_eq!(dir_names(&tmp.path().join("a")).len(), 1);
}

/// A fake Go service whose `MemStats.Sys` (the `heap?debug=1` trailer) alternates
/// between 95% and 50% of `limit`, one scrape to the next, serving the go1.23 fixture
/// profiles otherwise (the protobuf ones for dumps).
async fn serve_alternating_sys(limit: u64) -> SocketAddr {
    use std::sync::atomic::{AtomicU64, Ordering};
    let text = std::fs::read_to_string(fixture("go1.23/heap/heap_debug1.txt")).unwrap();
    assert!(text.contains("\n# Sys = 12342536\n"));
    let scrapes = Arc::new(AtomicU64::new(0));
    let handler = move |axum::extract::Path(profile): axum::extract::Path<String>,
                        axum::extract::RawQuery(q): axum::extract::RawQuery| {
        let text = text.clone();
        let scrapes = scrapes.clone();
        async move {
            let debug = q.unwrap_or_default();
            let file = match (profile.as_str(), debug.as_str()) {
                ("heap", "debug=1") => {
                    let n = scrapes.fetch_add(1, Ordering::SeqCst);
                    let share = if n.is_multiple_of(2) { 95 } else { 50 };
                    let sys = format!("\n# Sys = {}\n", limit / 100 * share);
                    return text.replace("\n# Sys = 12342536\n", &sys).into_response();
                }
                ("heap", _) => "heap.pb.gz",
                ("goroutine", "debug=1") => "goroutine_debug1.txt",
                ("goroutine", _) => "goroutine.pb.gz",
                _ => return (StatusCode::NOT_FOUND, "Unknown profile\n").into_response(),
            };
            std::fs::read(fixture(&format!("go1.23/heap/{file}")))
                .unwrap()
                .into_response()
        }
    };
    spawn_server(Router::new().route("/debug/pprof/{profile}", get(handler))).await
}

/// The exporter (in-process) against [`serve_alternating_sys`] for `run`, with the
/// default `cooldown: 10m` and overhead budget: the dump files it wrote.
async fn dumps_under_alternating_sys(run: Duration) -> Vec<String> {
    let limit = 100_000_000;
    let target = serve_alternating_sys(limit).await;
    let tmp = tempfile::tempdir().unwrap();
    let yaml = format!(
        "system:\n  kernel_log: 'off'\ntargets:\n  - name: svc\n    url: http://{target}\n    interval: 1s\n    heap_format: text\n    goroutine_format: text\n    memory_limit: {limit}\n    dumps:\n      dir: {}\n      on_suspect: false\n",
        tmp.path().display()
    );
    let config = leakwatch::config::Config::from_yaml(&yaml).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let exporter = tokio::spawn(leakwatch::run(
        config,
        leakwatch::RunOptions::default(),
        listener,
        async move {
            let _ = rx.await;
        },
    ));
    tokio::time::sleep(run).await;
    let _ = tx.send(());
    exporter.await.unwrap().unwrap();
    dir_names(&tmp.path().join("svc"))
}

/// Issue 23, finding 2: usage alternating between 95% and 50% of the limit, one scrape
/// to the next, is one pre-OOM episode (one low sample is no relief), and a second one
/// would wait for the cooldown: one heap + goroutine `pre_oom` pair in all (before: a
/// pair at every high sample, 15 pairs in 30 s at `interval: 1s`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_oom_dumps_once_while_usage_alternates_around_the_limit() {
    let files = dumps_under_alternating_sys(Duration::from_secs(10)).await;
    let pre_oom: Vec<&String> = files.iter().filter(|n| n.contains("-pre_oom")).collect();
    assert_eq!(pre_oom.len(), 2, "{files:?}");
    assert!(pre_oom.iter().any(|n| n.starts_with("heap-")), "{files:?}");
    assert!(
        pre_oom.iter().any(|n| n.starts_with("goroutine-")),
        "{files:?}"
    );
}
