//! Issue 15, findings 1, 4 and 5, against the real binary on loopback: write endpoints
//! off by default and refused cross-site, manual dumps throttled (429 + Retry-After),
//! baselines range-checked, `/probe` refusing userinfo and under a concurrency limit,
//! and no request of any kind (scrape, dump, probe, watch) following a redirect to
//! another host.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use tokio::net::TcpListener;

use crate::support::{Leakwatch, wait_until};

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// What a fake Go service saw.
#[derive(Debug, Default)]
struct Seen {
    requests: AtomicUsize,
    /// `GET /debug/pprof/heap` without a query: what a dump asks for.
    dump_requests: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A fake Go service on 127.0.0.1 serving the go1.23 protobuf profiles, each reply
/// held for `delay`; or, with `redirect_to`, answering every pprof request with a 302
/// to the same path and query on that address.
async fn fake_service(delay: Duration, redirect_to: Option<SocketAddr>) -> (SocketAddr, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let heap = Arc::new(std::fs::read(fixture("go1.23/heap/heap.pb.gz")).unwrap());
    let goroutine = Arc::new(std::fs::read(fixture("go1.23/heap/goroutine.pb.gz")).unwrap());
    let handler = move |State(seen): State<Arc<Seen>>, req: Request| {
        let (heap, goroutine) = (heap.clone(), goroutine.clone());
        async move {
            seen.requests.fetch_add(1, Ordering::SeqCst);
            let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            seen.in_flight.fetch_sub(1, Ordering::SeqCst);
            let path = req.uri().path().to_string();
            if path == "/debug/pprof/heap" && req.uri().query().is_none() {
                seen.dump_requests.fetch_add(1, Ordering::SeqCst);
            }
            if let Some(to) = redirect_to {
                let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
                return (
                    StatusCode::FOUND,
                    [(header::LOCATION, format!("http://{to}{pq}"))],
                )
                    .into_response();
            }
            let body = match path.as_str() {
                "/debug/pprof/heap" => heap.to_vec(),
                "/debug/pprof/goroutine" => goroutine.to_vec(),
                _ => return StatusCode::NOT_FOUND.into_response(),
            };
            ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
        }
    };
    let app = Router::new().fallback(handler).with_state(seen.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

/// A server on the second loopback address that counts every connection and answers
/// anything with a marked 200 (so a leak would also show in leakwatch's output).
async fn canary() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut sock, _)) = listener.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let body = "CANARY-REPLY";
                let _ = sock
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (addr, hits)
}

/// A config for one target `t` at `addr`, dumps under `dumps` (never on their own),
/// `extra` appended to the target.
/// Scrapes ask for `heap?debug=1` (`heap_format: text`), so a query-less
/// `/debug/pprof/heap` at the fake service is a dump and nothing else.
fn config(addr: SocketAddr, interval: &str, dumps: &Path, extra: &str) -> String {
    format!(
        "system:\n  kernel_log: 'off'\ndefaults:\n  interval: {interval}\n  heap_format: text\ntargets:\n  - name: t\n    url: http://{addr}\n    dumps:\n      dir: {}\n      heap_every: 'off'\n      goroutine_every: 'off'\n      on_suspect: false\n{extra}",
        dumps.display()
    )
}

async fn start(yaml: String, args: &'static [&'static str]) -> Leakwatch {
    tokio::task::spawn_blocking(move || Leakwatch::start_with_args(&yaml, args))
        .await
        .unwrap()
}

async fn request(
    method: reqwest::Method,
    url: String,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut r = reqwest::Client::new().request(method, url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    (status, h, resp.text().await.unwrap())
}

async fn post(lw: &Leakwatch, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let (s, _, b) = request(reqwest::Method::POST, format!("{}{path}", lw.url), headers).await;
    (s, b)
}

/// Finding 5: without flags every write endpoint is 403 and names the flag (before:
/// 200/201 to anyone); with them they work, but never from another site's page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_endpoints_are_off_by_default_and_refused_cross_site() {
    let (svc, seen) = fake_service(Duration::ZERO, None).await;
    let tmp = tempfile::tempdir().unwrap();
    let yaml = config(svc, "1h", tmp.path(), "");
    let writes = [
        ("/-/reload", "--web.enable-lifecycle"),
        ("/api/v1/dump?target=t", "--web.enable-admin-api"),
        (
            "/api/v1/targets/t/baseline?bytes=1000",
            "--web.enable-admin-api",
        ),
    ];

    let lw = start(yaml.clone(), &[]).await;
    for (path, flag) in writes {
        let (status, body) = post(&lw, path, &[]).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.contains(flag), "{path}: {body}");
    }
    assert_eq!(seen.dump_requests.load(Ordering::SeqCst), 0);
    // Reads stay open.
    assert_eq!(lw.get("/metrics").0, 200);
    drop(lw);

    let lw = start(yaml, &["--web.enable-lifecycle", "--web.enable-admin-api"]).await;
    let own = lw.url.clone();
    for (path, _) in writes {
        for headers in [
            vec![("Origin", "http://evil.example")],
            vec![("Origin", "null")],
            vec![("Sec-Fetch-Site", "cross-site")],
            vec![("Sec-Fetch-Site", "same-site"), ("Origin", own.as_str())],
        ] {
            let (status, body) = post(&lw, path, &headers).await;
            assert_eq!(status, 403, "{path} {headers:?}: {body}");
            assert!(body.contains("cross-site request refused"), "{body}");
        }
    }
    assert_eq!(seen.dump_requests.load(Ordering::SeqCst), 0);
    // Same origin, a typed address, or no browser at all: allowed.
    let (status, body) = post(&lw, "/-/reload", &[("Origin", own.as_str())]).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&lw, "/-/reload", &[("Sec-Fetch-Site", "same-origin")]).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&lw, "/api/v1/targets/t/baseline?bytes=1000", &[]).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&lw, "/api/v1/dump?target=t", &[("Sec-Fetch-Site", "none")]).await;
    assert_eq!(status, 201, "{body}");
}

/// Issue 23, finding 8c: DNS rebinding. evil.example's page, its name rebound to
/// 127.0.0.1, is same-origin with itself: the browser sends `Host: evil.example:PORT`
/// with a matching `Origin` and `Sec-Fetch-Site: same-origin`. Refused (before: 200);
/// the same page reached by address, and curl with any Host, still pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebound_dns_name_cannot_write() {
    let (svc, seen) = fake_service(Duration::ZERO, None).await;
    let tmp = tempfile::tempdir().unwrap();
    let lw = start(
        config(svc, "1h", tmp.path(), ""),
        &["--web.enable-lifecycle", "--web.enable-admin-api"],
    )
    .await;
    let port = lw.url.rsplit(':').next().unwrap().to_string();
    let evil_host = format!("evil.example:{port}");
    let evil_origin = format!("http://{evil_host}");
    for path in ["/-/reload", "/api/v1/dump?target=t"] {
        for headers in [
            vec![
                ("Host", evil_host.as_str()),
                ("Origin", evil_origin.as_str()),
                ("Sec-Fetch-Site", "same-origin"),
            ],
            vec![
                ("Host", evil_host.as_str()),
                ("Origin", evil_origin.as_str()),
            ],
        ] {
            let (status, body) = post(&lw, path, &headers).await;
            assert_eq!(status, 403, "{path} {headers:?}: {body}");
            assert!(body.contains("rebound"), "{body}");
        }
    }
    assert_eq!(seen.dump_requests.load(Ordering::SeqCst), 0);
    let own = lw.url.clone();
    let local = format!("localhost:{port}");
    let local_origin = format!("http://{local}");
    for headers in [
        vec![("Origin", own.as_str()), ("Sec-Fetch-Site", "same-origin")],
        vec![("Host", local.as_str()), ("Origin", local_origin.as_str())],
        vec![("Host", evil_host.as_str())],
    ] {
        let (status, body) = post(&lw, "/-/reload", &headers).await;
        assert_eq!(status, 200, "{headers:?}: {body}");
    }
}

/// Finding 5: baseline values outside 1 byte .. 1 TiB are refused (before:
/// `u64::MAX` was taken and read as "fix confirmed").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_values_are_range_checked() {
    let (svc, _) = fake_service(Duration::ZERO, None).await;
    let tmp = tempfile::tempdir().unwrap();
    let lw = start(
        config(svc, "1h", tmp.path(), ""),
        &["--web.enable-admin-api"],
    )
    .await;
    for bytes in ["18446744073709551615", "0", "1099511627777"] {
        let (status, body) = post(
            &lw,
            &format!("/api/v1/targets/t/baseline?bytes={bytes}"),
            &[],
        )
        .await;
        assert_eq!(status, 400, "{bytes}: {body}");
        assert!(body.contains("out of range"), "{body}");
    }
    for bytes in ["1", "2683359", "1099511627776"] {
        let (status, body) = post(
            &lw,
            &format!("/api/v1/targets/t/baseline?bytes={bytes}"),
            &[],
        )
        .await;
        assert_eq!(status, 200, "{bytes}: {body}");
        assert!(
            body.contains(&format!("\"baseline_bytes\":{bytes}")),
            "{body}"
        );
    }
}

/// Finding 5: a burst of manual dumps costs the service one heap request per cooldown
/// (before: 20 requests, 20 dumps); the others get 429 with `Retry-After`. With no
/// cooldown, the overhead budget spaces them by `request time / budget`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_dumps_go_through_cooldown_and_overhead_budget() {
    let (svc, seen) = fake_service(Duration::ZERO, None).await;
    let tmp = tempfile::tempdir().unwrap();
    let lw = start(
        config(svc, "1h", tmp.path(), "      cooldown: 30s\n"),
        &["--web.enable-admin-api"],
    )
    .await;
    let base = lw.url.clone();
    let burst: Vec<_> = (0..20)
        .map(|_| {
            let url = format!("{base}/api/v1/dump?target=t");
            tokio::spawn(async move { request(reqwest::Method::POST, url, &[]).await })
        })
        .collect();
    let mut created = 0;
    for r in burst {
        let (status, headers, body) = r.await.unwrap();
        match status {
            201 => created += 1,
            429 => {
                let wait: u64 = headers[header::RETRY_AFTER]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=30).contains(&wait), "Retry-After {wait}");
                assert!(body.contains("cooldown"), "{body}");
            }
            s => panic!("{s}: {body}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(seen.dump_requests.load(Ordering::SeqCst), 1);
    // The goroutine profile has its own slot.
    assert_eq!(
        post(&lw, "/api/v1/dump?target=t&profile=goroutine", &[])
            .await
            .0,
        201
    );
    drop(lw);

    // The shortest cooldown (1 s), a 1% budget and a 300 ms dump: the next one in
    // about 30 s.
    let (slow, seen) = fake_service(Duration::from_millis(300), None).await;
    let tmp = tempfile::tempdir().unwrap();
    let lw = start(
        config(slow, "1h", tmp.path(), "      cooldown: 1s\n")
            .replace("    dumps:\n", "    overhead_budget: 0.01\n    dumps:\n"),
        &["--web.enable-admin-api"],
    )
    .await;
    assert_eq!(post(&lw, "/api/v1/dump?target=t", &[]).await.0, 201);
    let (status, headers, body) = request(
        reqwest::Method::POST,
        format!("{}/api/v1/dump?target=t", lw.url),
        &[],
    )
    .await;
    assert_eq!(status, 429, "{body}");
    let wait: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((20..=3600).contains(&wait), "Retry-After {wait}");
    assert_eq!(seen.dump_requests.load(Ordering::SeqCst), 1);
}

async fn probe(lw: &Leakwatch, target: &str) -> (u16, String) {
    let url = reqwest::Url::parse_with_params(&format!("{}/probe", lw.url), &[("target", target)])
        .unwrap();
    let (s, _, b) = request(reqwest::Method::GET, url.to_string(), &[]).await;
    (s, b)
}

/// Finding 4: with a loose `probe.allow`, a target with userinfo (or a query hiding an
/// `@`) is refused before anything is fetched (before: fetched from 127.0.0.2 with the
/// userinfo sent as basic auth); the allowlist sees the parsed URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_refuses_userinfo_and_matches_the_parsed_url() {
    let (svc, seen) = fake_service(Duration::ZERO, None).await;
    let (canary, hits) = canary().await;
    let tmp = tempfile::tempdir().unwrap();
    let port = svc.port();
    let yaml = format!(
        "probe:\n  allow: ['http://127\\.0\\.0\\.1:{port}.*']\n{}",
        config(svc, "1h", tmp.path(), "")
    );
    let lw = start(yaml, &[]).await;
    for bad in [
        format!("http://127.0.0.1:{port}@{canary}/"),
        format!("http://127.0.0.1:{port}:x@{canary}/"),
        format!("http://127.0.0.1:{port}/?@{canary}/"),
        format!("http://127.0.0.1:{port}/#@{canary}/"),
    ] {
        let (status, body) = probe(&lw, &bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    // Neither a host nor a port the pattern does not allow.
    let (status, _) = probe(&lw, &format!("http://{canary}/")).await;
    assert_eq!(status, 403);
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the canary was contacted");
    let before = seen.requests.load(Ordering::SeqCst);
    let (status, body) = probe(&lw, &format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("leakwatch_probe_success 1"), "{body}");
    assert!(seen.requests.load(Ordering::SeqCst) > before);
}

/// Finding 5: 100 probes at once never put more requests in flight than the probes'
/// own limit (before: all 100 at once), plus the configured target's own scrape
/// (issue 23, finding 3: probes no longer take the scrape permits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_have_their_own_concurrency_limit() {
    let (svc, seen) = fake_service(Duration::from_millis(100), None).await;
    let tmp = tempfile::tempdir().unwrap();
    let lw = start(config(svc, "1h", tmp.path(), ""), &[]).await;
    let target = format!("http://{svc}/");
    let url = reqwest::Url::parse_with_params(&format!("{}/probe", lw.url), &[("target", &target)])
        .unwrap()
        .to_string();
    let all: Vec<_> = (0..100)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { request(reqwest::Method::GET, url, &[]).await.0 })
        })
        .collect();
    let mut ok = 0;
    for p in all {
        match p.await.unwrap() {
            200 => ok += 1,
            503 => {}
            s => panic!("probe answered {s}"),
        }
    }
    let max = seen.max_in_flight.load(Ordering::SeqCst);
    assert!(
        max <= leakwatch::MAX_CONCURRENT_PROBES + 1,
        "{max} requests in flight at once"
    );
    assert!(
        ok >= 2 * leakwatch::MAX_CONCURRENT_PROBES,
        "only {ok} probes answered"
    );
}

/// Finding 1: a target whose pprof endpoints answer with a 302 to another host gets
/// leakwatch nowhere: scrapes, a manual dump, a probe and `leakwatch watch` all stop at
/// the redirect; the canary on 127.0.0.2 receives no connection, and its reply (or the
/// configured header) appears nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_to_another_host_reach_nobody() {
    let (canary, hits) = canary().await;
    let (svc, seen) = fake_service(Duration::ZERO, Some(canary)).await;
    let tmp = tempfile::tempdir().unwrap();
    let yaml = config(
        svc,
        "200ms",
        tmp.path(),
        "    headers:\n      X-Api-Key: k-secret-15\n",
    );
    let lw = start(yaml, &["--web.enable-admin-api"]).await;
    let lw = tokio::task::spawn_blocking(move || {
        wait_until(
            Duration::from_secs(20),
            "scrapes of the redirecting target",
            || (seen.requests.load(Ordering::SeqCst) >= 6).then_some(()),
        );
        lw
    })
    .await
    .unwrap();

    let (status, body) = post(&lw, "/api/v1/dump?target=t", &[]).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("redirect"), "{body}");
    let (status, body) = probe(&lw, &format!("http://{svc}")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("leakwatch_probe_success 0"), "{body}");
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_leakwatch"))
            .args([
                "watch",
                &format!("http://{svc}"),
                "--for",
                "1s",
                "--every",
                "200ms",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    let watch_out = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let (_, page) = lw.get("/");
    let (_, metrics) = lw.get("/metrics");
    let (_, dumps) = lw.get("/dumps/?format=json");
    let everything = [
        String::from_utf8_lossy(&page).into_owned(),
        String::from_utf8_lossy(&metrics).into_owned(),
        String::from_utf8_lossy(&dumps).into_owned(),
        watch_out,
        lw.stderr(),
        body,
    ]
    .join("\n");
    assert!(!everything.contains("CANARY-REPLY"), "{everything}");
    assert!(!everything.contains("k-secret-15"), "{everything}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the other host was contacted; leakwatch said:\n{everything}"
    );
    let files: Vec<_> = std::fs::read_dir(tmp.path().join("t"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(files.is_empty(), "{files:?}");
}
