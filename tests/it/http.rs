//! The exporter end to end against loopback servers serving real fixture profiles or
//! misbehaving: the golden `/metrics` output, error reasons, and that a failing target
//! never takes `/metrics` down.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use leakwatch::config::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// A fake Go service serving one fixture capture folder.
async fn serve_capture(dir: &'static str) -> SocketAddr {
    async fn handler(
        State(dir): State<&'static str>,
        axum::extract::Path(profile): axum::extract::Path<String>,
        Query(q): Query<HashMap<String, String>>,
    ) -> Response {
        let debug = q.get("debug").map(String::as_str).unwrap_or("0");
        let file = match (profile.as_str(), debug) {
            ("heap", "1") => "heap_debug1.txt",
            ("heap", _) => "heap.pb.gz",
            ("goroutine", "1") => "goroutine_debug1.txt",
            ("goroutine", "2") => "goroutine_debug2.txt",
            ("goroutine", _) => "goroutine.pb.gz",
            _ => return (StatusCode::NOT_FOUND, "Unknown profile\n").into_response(),
        };
        let body = std::fs::read(fixture(&format!("{dir}/{file}"))).unwrap();
        Response::new(Body::from(body))
    }
    let app = Router::new()
        .route("/debug/pprof/{profile}", get(handler))
        .route(
            "/debug/vars",
            get(
                move || async move { std::fs::read(fixture(&format!("{dir}/vars.json"))).unwrap() },
            ),
        )
        .with_state(dir);
    spawn_server(app).await
}

async fn spawn_server(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// leakwatch running in-process; stops when dropped.
struct Exporter {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn start_exporter(yaml: &str) -> Exporter {
    let config = Config::from_yaml(yaml).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        leakwatch::run(
            config,
            leakwatch::RunOptions {
                write: leakwatch::WriteAccess::ALL,
                ..Default::default()
            },
            listener,
            async move {
                let _ = rx.await;
            },
        )
        .await
        .unwrap();
    });
    Exporter { addr, _stop: tx }
}

async fn get_text(addr: SocketAddr, path: &str) -> (u16, String) {
    let resp = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Polls `/metrics` until `pred` holds (or panics after 10 s with the last output).
async fn metrics_until(addr: SocketAddr, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, text) = get_text(addr, "/metrics").await;
        assert_eq!(status, 200);
        if pred(&text) {
            return text;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}; last /metrics:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Metrics whose values change from run to run.
const VOLATILE: &[&str] = &[
    "leakwatch_scrape_duration_seconds",
    "leakwatch_last_scrape_timestamp_seconds",
    "leakwatch_last_success_timestamp_seconds",
    "leakwatch_window_samples",
    "leakwatch_window_span_seconds",
    "leakwatch_effective_interval_seconds",
    "leakwatch_overhead_ratio",
    "leakwatch_config_last_reload_success_timestamp_seconds",
];

/// `text` with the target's port as `PORT` and leakwatch's own (in
/// `leakwatch_web_info`'s URL) as `LWPORT`, volatile values as `<volatile>`.
fn normalize(text: &str, port: u16, own: u16) -> String {
    text.lines()
        .map(|l| {
            let l = l
                .replace(&format!("127.0.0.1:{own}"), "127.0.0.1:LWPORT")
                .replace(&port.to_string(), "PORT");
            let name = l.split(['{', ' ']).next().unwrap_or("");
            if !l.starts_with('#') && VOLATILE.contains(&name) {
                let (series, _) = l.rsplit_once(' ').unwrap();
                format!("{series} <volatile>")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn check_golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/metrics")
        .join(name);
    if crate::support::update_golden() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing golden file {}; run with UPDATE_GOLDEN=1",
            path.display()
        )
    });
    if want != actual {
        let diff: Vec<String> = want
            .lines()
            .zip(actual.lines())
            .filter(|(a, b)| a != b)
            .take(10)
            .map(|(a, b)| format!("- {a}\n+ {b}"))
            .collect();
        panic!(
            "{} differs from the golden file (UPDATE_GOLDEN=1 regenerates it):\n{}\n(line counts {} vs {})",
            name,
            diff.join("\n"),
            want.lines().count(),
            actual.lines().count()
        );
    }
}

/// A target served from the go1.23 heap-leak capture, text formats: the whole
/// `/metrics` output is compared with the golden file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_metrics_for_a_fixture_target() {
    let target = serve_capture("go1.23/heap").await;
    let yaml = format!(
        "system:\n  kernel_log: off\ntargets:\n  - name: orders\n    url: http://{target}\n    interval: 1h\n    heap_format: text\n    goroutine_format: text\n    labels: {{team: payments}}\n"
    );
    let exporter = start_exporter(&yaml).await;
    let text = metrics_until(exporter.addr, "first scrape", |t| {
        t.contains("leakwatch_goroutines{") && t.contains("leakwatch_up{")
    })
    .await;
    assert!(text.contains("leakwatch_up{target=\"orders\",team=\"payments\"} 1"));
    // MemStats straight from the fixture's trailer.
    assert!(
        text.contains(
            "leakwatch_go_memstats_heap_alloc_bytes{target=\"orders\",team=\"payments\"} "
        )
    );
    check_golden(
        "fixture-go1.23-heap-text.prom",
        &normalize(&text, target.port(), exporter.addr.port()),
    );
}

/// The same capture with the defaults: heap records from the protobuf profile,
/// MemStats from expvar (`/debug/vars`), goroutines from the protobuf profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_metrics_for_a_fixture_target_proto_first() {
    let target = serve_capture("go1.23/heap").await;
    let yaml = format!(
        "system:\n  kernel_log: 'off'\ntargets:\n  - name: orders\n    url: http://{target}\n    interval: 1h\n"
    );
    let exporter = start_exporter(&yaml).await;
    let text = metrics_until(exporter.addr, "first scrape", |t| {
        t.contains("leakwatch_goroutines{") && t.contains("leakwatch_go_memstats_info{")
    })
    .await;
    assert!(text.contains("source=\"expvar\"} 1"), "{text}");
    check_golden(
        "fixture-go1.23-heap-proto.prom",
        &normalize(&text, target.port(), exporter.addr.port()),
    );
}

/// `--web.external-url` (here through `RunOptions`, as main passes it) wins over the
/// request's `Host`: the runbook's commands use it, and `/metrics` exports it as
/// `leakwatch_web_info` for the dashboards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_url_is_what_the_pages_print_and_web_info_exports() {
    const EXTERNAL: &str = "https://lw.example.com:8443";
    let target = serve_capture("go1.23/heap").await;
    let config = Config::from_yaml(&format!(
        "system:\n  kernel_log: 'off'\ntargets:\n  - name: orders\n    url: http://{target}\n    interval: 1h\n"
    ))
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, rx) = oneshot::channel::<()>();
    tokio::spawn(leakwatch::run(
        config,
        leakwatch::RunOptions {
            external_url: Some(leakwatch::http::address::ExternalUrl::parse(EXTERNAL).unwrap()),
            ..Default::default()
        },
        listener,
        async move {
            let _ = rx.await;
        },
    ));
    let text = metrics_until(addr, "leakwatch_web_info", |t| {
        t.contains("leakwatch_web_info")
    })
    .await;
    assert!(
        text.contains(&format!(
            "leakwatch_web_info{{external_url=\"{EXTERNAL}\"}} 1\n"
        )),
        "{text}"
    );
    let (status, runbook) = get_text(addr, "/runbook?target=orders").await;
    assert_eq!(status, 200);
    assert!(
        runbook.contains(&format!(
            "curl -s -X POST {EXTERNAL}/api/v1/targets/orders/baseline"
        )),
        "{runbook}"
    );
    assert!(!runbook.contains(&addr.to_string()), "{runbook}");
}

/// A target that is down: `leakwatch_up 0`, a connect error, and `/metrics` keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_target_reports_up_zero() {
    // Bind then drop to get a port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let good = serve_capture("go1.19/heap").await;
    let yaml = format!(
        "defaults:\n  interval: 200ms\n  timeout: 2s\n  goroutine_format: text\ntargets:\n  - name: down\n    url: http://127.0.0.1:{port}\n  - name: good\n    url: http://{good}\n"
    );
    let exporter = start_exporter(&yaml).await;
    let text = metrics_until(exporter.addr, "both targets scraped", |t| {
        t.contains("leakwatch_up{target=\"down\"} 0")
            && t.contains("leakwatch_up{target=\"good\"} 1")
    })
    .await;
    assert!(
        text.contains(
            "leakwatch_scrape_errors_total{target=\"down\",endpoint=\"heap\",reason=\"connect\"}"
        ),
        "{text}"
    );
    assert!(!text.contains("leakwatch_scrape_errors_total{target=\"good\""));
    let (status, page) = get_text(exporter.addr, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("down") && page.contains("connect"), "{page}");
    assert_eq!(get_text(exporter.addr, "/-/healthy").await.0, 200);
    assert_eq!(get_text(exporter.addr, "/-/ready").await.0, 200);
}

/// Misbehaving targets, each with the error reason it must produce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_targets_get_clear_reasons() {
    let big = Arc::new(vec![b'x'; 2 * 1024 * 1024]);
    let app = Router::new()
        .route(
            "/notfound/debug/pprof/heap",
            get(|| async { (StatusCode::NOT_FOUND, "Unknown profile\n") }),
        )
        .route(
            "/garbage/debug/pprof/heap",
            get(|| async { "<html>this is not a heap profile</html>\n" }),
        )
        .route(
            "/huge/debug/pprof/heap",
            get(move || {
                let big = big.clone();
                async move { Body::from(big.as_ref().clone()) }
            }),
        )
        .route(
            "/slow/debug/pprof/heap",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "heap profile: 0: 0 [0: 0] @ heap/1048576\n"
            }),
        );
    let addr = spawn_server(app).await;
    let yaml = format!(
        "defaults:\n  interval: 300ms\n  timeout: 1s\n  max_body_bytes: 1MiB\n  goroutine_format: text\ntargets:\n  - {{name: notfound, url: 'http://{addr}/notfound'}}\n  - {{name: garbage, url: 'http://{addr}/garbage'}}\n  - {{name: huge, url: 'http://{addr}/huge'}}\n  - {{name: slow, url: 'http://{addr}/slow'}}\n"
    );
    let exporter = start_exporter(&yaml).await;
    let want = [
        ("notfound", "http_status"),
        ("garbage", "parse"),
        ("huge", "too_large"),
        ("slow", "timeout"),
    ];
    let text = metrics_until(exporter.addr, "every failure reason", |t| {
        want.iter().all(|(name, reason)| {
            t.contains(&format!(
                "leakwatch_scrape_errors_total{{target=\"{name}\",endpoint=\"heap\",reason=\"{reason}\"}}"
            ))
        })
    })
    .await;
    for (name, _) in want {
        assert!(
            text.contains(&format!("leakwatch_up{{target=\"{name}\"}} 0")),
            "{name}: {text}"
        );
    }
}

async fn start_exporter_with_file(path: &std::path::Path) -> Exporter {
    let config = Config::load(path).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let path = path.to_path_buf();
    tokio::spawn(async move {
        leakwatch::run(
            config,
            leakwatch::RunOptions {
                config_path: Some(path),
                write: leakwatch::WriteAccess::ALL,
                ..Default::default()
            },
            listener,
            async move {
                let _ = rx.await;
            },
        )
        .await
        .unwrap();
    });
    Exporter { addr, _stop: tx }
}

async fn post(addr: SocketAddr, path: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn series_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

/// Reload: a valid new config adds a target and keeps the unchanged one's state (its
/// window keeps growing); an invalid one is refused and the old config stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_only_valid_configs_and_keeps_windows() {
    let a = serve_capture("go1.23/heap").await;
    let b = serve_capture("go1.26/heap").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leakwatch.yaml");
    let one = format!(
        "system:\n  kernel_log: 'off'\ndefaults:\n  interval: 100ms\ntargets:\n  - name: a\n    url: http://{a}\n"
    );
    std::fs::write(&path, &one).unwrap();
    let exporter = start_exporter_with_file(&path).await;
    let text = metrics_until(exporter.addr, "a few samples of a", |t| {
        series_value(t, "leakwatch_window_samples{target=\"a\"}").is_some_and(|n| n >= 3.0)
    })
    .await;
    let samples_before = series_value(&text, "leakwatch_window_samples{target=\"a\"}").unwrap();
    assert_eq!(
        series_value(&text, "leakwatch_config_last_reload_successful"),
        Some(1.0)
    );

    // Add target b.
    std::fs::write(&path, format!("{one}  - name: b\n    url: http://{b}\n")).unwrap();
    let (status, body) = post(exporter.addr, "/-/reload").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "reloaded: 2 target(s)\n");
    let text = metrics_until(exporter.addr, "target b scraped", |t| {
        t.contains("leakwatch_up{target=\"b\"} 1")
    })
    .await;
    let samples_after = series_value(&text, "leakwatch_window_samples{target=\"a\"}").unwrap();
    assert!(
        samples_after >= samples_before,
        "a's window was reset by the reload: {samples_before} -> {samples_after}"
    );
    assert_eq!(series_value(&text, "leakwatch_targets"), Some(2.0));

    // An invalid config: 400 naming the key, the old config stays.
    std::fs::write(&path, format!("{one}  - name: a\n    url: http://{b}\n")).unwrap();
    let (status, body) = post(exporter.addr, "/-/reload").await;
    assert_eq!(status, 400);
    assert!(
        body.contains("targets[1].name: duplicate target name \"a\""),
        "{body}"
    );
    let (_, text) = get_text(exporter.addr, "/metrics").await;
    assert_eq!(
        series_value(&text, "leakwatch_config_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(series_value(&text, "leakwatch_targets"), Some(2.0));

    // Remove b: its series disappear.
    std::fs::write(&path, &one).unwrap();
    assert_eq!(post(exporter.addr, "/-/reload").await.0, 200);
    let text = metrics_until(exporter.addr, "b gone", |t| !t.contains("target=\"b\"")).await;
    assert_eq!(
        series_value(&text, "leakwatch_config_last_reload_successful"),
        Some(1.0)
    );
}

/// `/probe`: configured URLs and `probe.allow` matches are probed with a fresh registry;
/// anything else is 403 (no open proxy); a probe has no window series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_is_restricted_to_configured_and_allowed_targets() {
    let configured = serve_capture("go1.23/heap").await;
    let allowed = serve_capture("go1.26/heap").await;
    let other = serve_capture("go1.19/heap").await;
    let yaml = format!(
        "system:\n  kernel_log: 'off'\nprobe:\n  allow: ['http://127\\.0\\.0\\.1:{}/?']\n  modules:\n    quick: {{timeout: 2s, heap_format: text}}\ntargets:\n  - name: c\n    url: http://{configured}\n    interval: 1h\n",
        allowed.port()
    );
    let exporter = start_exporter(&yaml).await;
    for (url, module) in [
        (format!("http://{configured}/"), ""),
        (format!("http://{allowed}"), "&module=quick"),
    ] {
        let (status, text) = get_text(exporter.addr, &format!("/probe?target={url}{module}")).await;
        assert_eq!(status, 200, "{url}: {text}");
        assert_eq!(
            series_value(&text, "leakwatch_probe_success"),
            Some(1.0),
            "{text}"
        );
        assert!(series_value(&text, "leakwatch_probe_duration_seconds").is_some());
        assert!(
            text.contains("leakwatch_go_memstats_heap_alloc_bytes "),
            "{text}"
        );
        assert!(text.contains("leakwatch_goroutines "), "{text}");
        assert!(!text.contains("leakwatch_window_samples"), "{text}");
        assert!(!text.contains("leakwatch_leak_suspected"), "{text}");
        assert!(
            !text.contains("target=\""),
            "probe series carry no target label: {text}"
        );
    }
    let (status, body) = get_text(exporter.addr, &format!("/probe?target=http://{other}/")).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = get_text(
        exporter.addr,
        "/probe?target=http://169.254.169.254/latest/",
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = get_text(exporter.addr, "/probe").await;
    assert_eq!(status, 400);
    let (status, body) = get_text(
        exporter.addr,
        &format!("/probe?target=http://{configured}/&module=nope"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("unknown probe module \"nope\""), "{body}");
}

/// `POST /api/v1/targets/{name}/baseline` sets the baseline the fix is verified against.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_can_be_set_through_the_api() {
    let target = serve_capture("go1.23/heap").await;
    let yaml = format!(
        "system:\n  kernel_log: 'off'\nmetrics:\n  collectors: {{signals_detail: true}}\ntargets:\n  - name: t\n    url: http://{target}\n    interval: 100ms\n"
    );
    let exporter = start_exporter(&yaml).await;
    metrics_until(exporter.addr, "live heap", |t| {
        t.contains("leakwatch_heap_live_bytes{")
    })
    .await;
    let (status, body) = post(exporter.addr, "/api/v1/targets/t/baseline?bytes=2683359").await;
    assert_eq!(status, 200, "{body}");
    let text = metrics_until(exporter.addr, "baseline ratio", |t| {
        t.contains("leakwatch_heap_baseline_ratio{")
    })
    .await;
    assert_eq!(
        series_value(&text, "leakwatch_heap_baseline_bytes{target=\"t\"}"),
        Some(2683359.0)
    );
    // The fixture's live heap is 5366719 bytes: twice the baseline.
    let ratio = series_value(&text, "leakwatch_heap_baseline_ratio{target=\"t\"}").unwrap();
    assert!((ratio - 2.0).abs() < 0.01, "{ratio}");
    assert_eq!(
        post(exporter.addr, "/api/v1/targets/nope/baseline").await.0,
        404
    );
    // Without ?bytes, the current live heap becomes the baseline.
    let (status, body) = post(exporter.addr, "/api/v1/targets/t/baseline").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"baseline_bytes\":5366719"), "{body}");
}

/// Credentials: bearer token and basic auth read from files, custom headers; a missing
/// file is a `credentials` error; secrets appear in no log line, metric or page, and
/// `user:password@` in a URL is redacted.
#[test]
fn credentials_are_sent_and_never_shown() {
    const TOKEN: &str = "s3cr3t-token-8d1f";
    const PASSWORD: &str = "pa55-9c0e";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = rt.block_on(async {
        async fn guarded(
            axum::extract::Path((kind, profile)): axum::extract::Path<(String, String)>,
            headers: axum::http::HeaderMap,
        ) -> Response {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let ok = match kind.as_str() {
                "bearer" => auth == format!("Bearer {TOKEN}"),
                // base64("ops:pa55-9c0e")
                "basic" => auth == "Basic b3BzOnBhNTUtOWMwZQ==",
                "header" => headers.get("x-scope").and_then(|v| v.to_str().ok()) == Some("orders"),
                _ => false,
            };
            if !ok {
                return (StatusCode::UNAUTHORIZED, "no\n").into_response();
            }
            let file = match profile.as_str() {
                "heap" => "heap.pb.gz",
                "goroutine" => "goroutine.pb.gz",
                _ => return (StatusCode::NOT_FOUND, "Unknown profile\n").into_response(),
            };
            Response::new(Body::from(
                std::fs::read(fixture(&format!("go1.23/heap/{file}"))).unwrap(),
            ))
        }
        spawn_server(Router::new().route("/{kind}/debug/pprof/{profile}", get(guarded))).await
    });
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let pw = dir.path().join("password");
    std::fs::write(&pw, PASSWORD).unwrap();
    let yaml = format!(
        "system:\n  kernel_log: 'off'\ndefaults:\n  interval: 200ms\n  overhead_budget: 0\ntargets:\n\
         \x20 - {{name: bearer, url: 'http://{addr}/bearer', bearer_token_file: '{}'}}\n\
         \x20 - {{name: basic, url: 'http://{addr}/basic', basic_auth: {{username: ops, password_file: '{}'}}}}\n\
         \x20 - {{name: header, url: 'http://{addr}/header', headers: {{X-Scope: orders}}}}\n\
         \x20 - {{name: nofile, url: 'http://{addr}/bearer', bearer_token_file: '{}/missing'}}\n\
         \x20 - {{name: inurl, url: 'http://ops:{PASSWORD}@{addr}/basic'}}\n",
        token.display(),
        pw.display(),
        dir.path().display()
    );
    let lw = crate::support::Leakwatch::start(&yaml);
    let m = crate::support::wait_until(Duration::from_secs(20), "all targets scraped", || {
        let m = lw.metrics();
        ["bearer", "basic", "header", "inurl", "nofile"]
            .iter()
            .all(|t| m.get("leakwatch_up", &[("target", t)]).is_some())
            .then_some(m)
    });
    for t in ["bearer", "basic", "header", "inurl"] {
        assert_eq!(
            m.get("leakwatch_up", &[("target", t)]),
            Some(1.0),
            "{t}:\n{}",
            m.text
        );
    }
    assert_eq!(m.get("leakwatch_up", &[("target", "nofile")]), Some(0.0));
    assert!(
        m.get(
            "leakwatch_scrape_errors_total",
            &[
                ("target", "nofile"),
                ("endpoint", "heap"),
                ("reason", "credentials")
            ]
        )
        .is_some(),
        "{}",
        m.text
    );
    let page = String::from_utf8_lossy(&lw.get("/").1).into_owned();
    let logs = lw.stderr();
    for secret in [TOKEN, PASSWORD, "b3BzOnBhNTUtOWMwZQ"] {
        assert!(!m.text.contains(secret), "secret in /metrics");
        assert!(!page.contains(secret), "secret on the landing page");
        assert!(!logs.contains(secret), "secret in the log:\n{logs}");
    }
    assert!(page.contains(&format!("http://{addr}/basic")), "{page}");
    assert!(
        logs.contains("credentials"),
        "no log line for the missing token file:\n{logs}"
    );
}

/// `SIGHUP` reloads the config file like `POST /-/reload`.
#[test]
fn sighup_reloads_the_config() {
    let one = "system:\n  kernel_log: 'off'\ntargets:\n  - {name: a, url: 'http://127.0.0.1:1'}\n";
    let lw = crate::support::Leakwatch::start(one);
    let m = lw.metrics();
    assert_eq!(m.get("leakwatch_targets", &[]), Some(1.0));
    std::fs::write(
        lw.dir().join("leakwatch.yaml"),
        format!("{one}  - {{name: b, url: 'http://127.0.0.1:2'}}\n"),
    )
    .unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &lw.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    crate::support::wait_until(Duration::from_secs(10), "two targets after SIGHUP", || {
        (lw.metrics().get("leakwatch_targets", &[]) == Some(2.0)).then_some(())
    });
    // A broken file: the reload fails, the two targets stay.
    std::fs::write(lw.dir().join("leakwatch.yaml"), "targets: [").unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &lw.pid().to_string()])
        .status()
        .unwrap();
    let m = crate::support::wait_until(Duration::from_secs(10), "a failed reload", || {
        let m = lw.metrics();
        (m.get("leakwatch_config_last_reload_successful", &[]) == Some(0.0)).then_some(m)
    });
    assert_eq!(m.get("leakwatch_targets", &[]), Some(2.0));
    assert!(
        lw.stderr().contains("configuration reload failed"),
        "{}",
        lw.stderr()
    );
}

/// A target that echoes the credentials it refused in its 401 reply (finding 7): the
/// last error shown on the landing and report pages and logged carries none of them,
/// not even the start of one cut off where leakwatch truncates the reply, nor one
/// echoed JSON-escaped (as Go writes it) or percent-encoded (issue 23, finding 8b).
#[test]
fn a_target_echoing_refused_credentials_shows_none_of_them() {
    const TOKEN: &str = "tok-5e1f-echoed-9a7b";
    const PASSWORD: &str = "pw-echoed-3c4d";
    // base64("ops:pw-echoed-3c4d"), what the Basic Authorization header carries.
    const BASIC: &str = "b3BzOnB3LWVjaG9lZC0zYzRk";
    const API_KEY: &str = "key-echoed-77e2";
    // A token whose encodings differ from it; "sesame" is found in no page but as it.
    const ENCODED: &str = "open/sesame+42<&\"z";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = rt.block_on(async {
        async fn echo(
            axum::extract::Path((kind, _profile)): axum::extract::Path<(String, String)>,
            headers: axum::http::HeaderMap,
        ) -> Response {
            let h = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            let auth = h("authorization");
            let echoed = match kind.as_str() {
                // Go's encoding/json: `<`, `>`, `&` as \u003c..., and `/` escaped too.
                "json" => format!(
                    "{{\"error\":\"refused\",\"authorization\":{}}}\n",
                    serde_json::to_string(&auth)
                        .unwrap()
                        .replace('<', "\\u003c")
                        .replace('&', "\\u0026")
                        .replace('/', "\\/")
                ),
                "url" => format!(
                    "refused: retry at /login?next=%2F&auth={}\n",
                    auth.bytes()
                        .map(|b| if b.is_ascii_alphanumeric() {
                            (b as char).to_string()
                        } else {
                            format!("%{b:02x}")
                        })
                        .collect::<String>()
                ),
                _ => format!(
                    "refused Authorization: {auth}; X-Api-Key: {}\n",
                    h("x-api-key")
                ),
            };
            // "cut": padded so leakwatch's 200-byte cut falls inside the token.
            let body = if kind == "cut" {
                format!("{}{echoed}", "x".repeat(160))
            } else {
                echoed
            };
            (StatusCode::UNAUTHORIZED, body).into_response()
        }
        spawn_server(Router::new().route("/{kind}/debug/pprof/{profile}", get(echo))).await
    });
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let encoded = dir.path().join("encoded");
    std::fs::write(&encoded, ENCODED).unwrap();
    let pw = dir.path().join("password");
    std::fs::write(&pw, PASSWORD).unwrap();
    let yaml = format!(
        "system:\n  kernel_log: 'off'\ndefaults:\n  interval: 200ms\n  overhead_budget: 0\ntargets:\n\
         \x20 - {{name: bearer, url: 'http://{addr}/bearer', bearer_token_file: '{t}', headers: {{X-Api-Key: {API_KEY}}}}}\n\
         \x20 - {{name: basic, url: 'http://{addr}/basic', basic_auth: {{username: ops, password_file: '{p}'}}}}\n\
         \x20 - {{name: cut, url: 'http://{addr}/cut', bearer_token_file: '{t}'}}\n\
         \x20 - {{name: json, url: 'http://{addr}/json', bearer_token_file: '{e}'}}\n\
         \x20 - {{name: url, url: 'http://{addr}/url', bearer_token_file: '{e}'}}\n",
        t = token.display(),
        e = encoded.display(),
        p = pw.display(),
    );
    let lw = crate::support::Leakwatch::start(&yaml);
    crate::support::wait_until(Duration::from_secs(20), "every target failed", || {
        let m = lw.metrics();
        ["bearer", "basic", "cut", "json", "url"]
            .iter()
            .all(|t| m.get("leakwatch_up", &[("target", t)]) == Some(0.0))
            .then_some(())
    });
    let mut shown = vec![(
        "/".to_string(),
        String::from_utf8_lossy(&lw.get("/").1).into_owned(),
    )];
    for t in ["bearer", "basic", "cut", "json", "url"] {
        let path = format!("/targets/{t}");
        let page = String::from_utf8_lossy(&lw.get(&path).1).into_owned();
        shown.push((path, page));
    }
    shown.push(("the log".to_string(), lw.stderr()));
    // The errors are there (so the check below can fail), without the secrets.
    // Read as text: the pages wrap a word a browser would break inside (a URL, a
    // `<redacted>`) in a span of its own.
    let tags = regex::Regex::new("<[^>]*>").unwrap();
    let text_of = |html: &str| tags.replace_all(html, "").into_owned();
    let landing = &text_of(&shown[0].1);
    assert!(landing.contains("HTTP 401"), "{landing}");
    assert!(
        landing.contains("refused Authorization: Bearer"),
        "{landing}"
    );
    assert!(landing.contains("redacted"), "{landing}");
    assert!(landing.contains("retry at /login"), "{landing}");
    let logs = &shown.last().unwrap().1;
    assert!(logs.contains("scrape failed"), "{logs}");
    let mut leaks = Vec::new();
    for (place, text) in &shown {
        // The start of the token catches a cut-off copy too.
        for secret in [&TOKEN[..8], PASSWORD, BASIC, API_KEY, "sesame"] {
            if text.contains(secret) || text_of(text).contains(secret) {
                leaks.push(format!("{secret:?} in {place}"));
            }
        }
    }
    assert!(leaks.is_empty(), "{leaks:?}\n{landing}");
}

/// GET `path` with `Accept-Encoding: accept` (none when empty): status,
/// `Content-Encoding` (empty when absent) and the body exactly as sent. This reqwest
/// has no decoders, so it neither offers an encoding nor undoes one.
async fn get_encoded(addr: SocketAddr, path: &str, accept: &str) -> (u16, String, Vec<u8>) {
    let mut req = reqwest::Client::new().get(format!("http://{addr}{path}"));
    if !accept.is_empty() {
        req = req.header("accept-encoding", accept);
    }
    let resp = req.send().await.unwrap();
    let encoding = resp
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let status = resp.status().as_u16();
    (status, encoding, resp.bytes().await.unwrap().to_vec())
}

fn decode(encoding: &str, body: &[u8]) -> String {
    use std::io::Read;
    let mut text = String::new();
    match encoding {
        "" => text = String::from_utf8(body.to_vec()).unwrap(),
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_string(&mut text)
                .unwrap();
        }
        "zstd" => text = String::from_utf8(zstd::decode_all(body).unwrap()).unwrap(),
        other => panic!("unexpected Content-Encoding {other:?}"),
    }
    text
}

/// Every series of a metrics page without its value: what stays put between two
/// requests while counters and timestamps move.
fn series_of(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| match l.starts_with('#') {
            true => l.to_string(),
            false => l.rsplit_once(' ').map_or(l, |(s, _)| s).to_string(),
        })
        .collect()
}

/// `/metrics` and `/probe` answer the encoding `Accept-Encoding` prefers (gzip, zstd,
/// q-values honoured, `q=0` refusing one), plain text when nothing acceptable is
/// offered, and the decoded page is the plain one; other routes stay plain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_probe_are_compressed_as_the_client_asks() {
    let svc = serve_capture("go1.26/heap").await;
    let exporter = start_exporter(&format!(
        "system:\n  kernel_log: 'off'\ntargets:\n  - name: c\n    url: http://{svc}\n    interval: 1h\n"
    ))
    .await;
    metrics_until(exporter.addr, "the first scrape", |t| {
        series_value(t, "leakwatch_up{target=\"c\"}") == Some(1.0)
    })
    .await;
    let probe = format!("/probe?target=http://{svc}/");
    for path in ["/metrics", probe.as_str()] {
        let (status, enc, plain) = get_encoded(exporter.addr, path, "").await;
        assert_eq!((status, enc.as_str()), (200, ""), "{path}");
        let plain = decode("", &plain);
        assert!(plain.contains("leakwatch_"), "{path}: {plain}");
        for (accept, want) in [
            ("gzip", "gzip"),
            ("zstd", "zstd"),
            ("gzip, zstd;q=0.9", "gzip"),
            ("gzip;q=0.5, zstd", "zstd"),
            ("zstd;q=0, gzip;q=0.1", "gzip"),
            ("gzip;q=0", ""),
            ("identity", ""),
            ("br, deflate", ""),
            ("", ""),
        ] {
            let (status, enc, body) = get_encoded(exporter.addr, path, accept).await;
            assert_eq!(
                (status, enc.as_str()),
                (200, want),
                "{path} with Accept-Encoding {accept:?}"
            );
            let text = decode(&enc, &body);
            assert_eq!(
                series_of(&text),
                series_of(&plain),
                "{path} with Accept-Encoding {accept:?}"
            );
            if !want.is_empty() {
                assert!(
                    body.len() * 3 < plain.len(),
                    "{path} {want}: {} of {}",
                    body.len(),
                    plain.len()
                );
            }
        }
    }
    for path in ["/-/healthy", "/"] {
        let (status, enc, _) = get_encoded(exporter.addr, path, "gzip, zstd").await;
        assert_eq!((status, enc.as_str()), (200, ""), "{path}");
    }
}
