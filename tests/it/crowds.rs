//! Issue 23, findings 3, 5 and 6, against the real binary on loopback: crowds that
//! used to take the exporter's own work or its `/metrics` away. Slow probes must not
//! starve the configured targets' scrapes, trickling connections must not hold every
//! slot of the connection cap, and wrong passwords must not lock out a client whose
//! good credentials are cached.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::support::Leakwatch;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

async fn start(yaml: String, args: Vec<String>) -> Leakwatch {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Leakwatch::start_with_args(&yaml, &args)
    })
    .await
    .unwrap()
}

/// A fast fake Go service on 127.0.0.1 (a text heap profile, 404 for the rest) that
/// records when each request arrived.
async fn fast_service() -> (SocketAddr, Arc<Mutex<Vec<Instant>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let heap = Arc::new(std::fs::read(fixture("go1.23/heap/heap_debug1.txt")).unwrap());
    let handler = move |State(seen): State<Arc<Mutex<Vec<Instant>>>>, req: Request| {
        let heap = heap.clone();
        async move {
            seen.lock().unwrap().push(Instant::now());
            if req.uri().path() == "/debug/pprof/heap" {
                ([(header::CONTENT_TYPE, "text/plain")], heap.to_vec()).into_response()
            } else {
                StatusCode::NOT_FOUND.into_response()
            }
        }
    };
    let app = Router::new().fallback(handler).with_state(seen.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

/// A target that reads the request and then sends its answer at 1 byte/s.
async fn one_byte_per_second_service() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
                for b in answer.iter().chain(std::iter::repeat(&b'x')) {
                    if sock.write_all(&[*b]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
    });
    addr
}

/// The largest gap between consecutive instants of `times` within `[from, to]`, the
/// edges of the span included.
fn largest_gap(times: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut inside: Vec<Instant> = times
        .iter()
        .copied()
        .filter(|t| *t >= from && *t <= to)
        .collect();
    inside.sort();
    let mut points = vec![from];
    points.extend(inside);
    points.push(to);
    points
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

/// Finding 3: 40 probes at a time of an allowed target that answers at 1 byte/s
/// (default module: 10 s timeout) while a configured target is scraped every second.
/// Before, probes took the scrape permits, each for up to 5 sequential timeouts, and
/// the configured target went unscraped for the whole flood (gap 14 s of 14 s);
/// now probes have their own permits and one deadline, and its scrapes keep their
/// interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_probes_do_not_delay_configured_targets() {
    let (fast, seen) = fast_service().await;
    let slow = one_byte_per_second_service().await;
    let yaml = format!(
        "system:\n  kernel_log: 'off'\nprobe:\n  allow: ['http://127\\.0\\.0\\.1:{}/?']\ndefaults:\n  heap_format: text\ntargets:\n  - name: fast\n    url: http://{fast}\n    interval: 1s\n",
        slow.port()
    );
    let lw = start(yaml, Vec::new()).await;
    // Scraped at its interval before the flood.
    let settle = Instant::now();
    while seen.lock().unwrap().len() < 3 {
        assert!(settle.elapsed() < Duration::from_secs(20), "never scraped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let probe = reqwest::Url::parse_with_params(
        &format!("{}/probe", lw.url),
        &[("target", format!("http://{slow}/"))],
    )
    .unwrap()
    .to_string();
    let flood_for = Duration::from_secs(14);
    let started = Instant::now();
    let answers = Arc::new(Mutex::new(Vec::new()));
    let probers: Vec<_> = (0..40)
        .map(|_| {
            let (probe, answers) = (probe.clone(), answers.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                while started.elapsed() < flood_for {
                    let status = match client.get(&probe).send().await {
                        Ok(r) => r.status().as_u16(),
                        Err(_) => 0,
                    };
                    answers.lock().unwrap().push((status, started.elapsed()));
                }
            })
        })
        .collect();
    tokio::time::sleep(flood_for).await;
    let ended = Instant::now();
    // From the moment the probes are surely in: the first second is the flood arriving.
    let gap = largest_gap(
        &seen.lock().unwrap(),
        started + Duration::from_secs(1),
        ended,
    );
    for p in probers {
        p.abort();
    }
    let answers = answers.lock().unwrap().clone();
    eprintln!(
        "largest gap between the configured target's requests under 40 slow probes: {gap:?}; \
         probe answers (status, at): {answers:?}"
    );
    assert!(
        gap < Duration::from_secs(4),
        "the configured target (interval 1s) went {gap:?} without a request under 40 slow probes"
    );
    // Each probe gave up at its one deadline (10 s), not after 5 sequential timeouts.
    assert!(
        answers
            .iter()
            .any(|(s, at)| *s == 200 && *at < Duration::from_secs(13)),
        "no probe answered within its deadline: {answers:?}"
    );
    let (_, metrics) = lw.get("/metrics");
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("leakwatch_up{target=\"fast\""),
        "{metrics}"
    );
}

/// One `GET /metrics` on a fresh connection within `timeout` (connecting included),
/// with `auth` (`Authorization` value) if any: the status, or why none came.
async fn get_metrics(
    addr: SocketAddr,
    timeout: Duration,
    auth: Option<&str>,
) -> Result<u16, String> {
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let attempt = async move {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let head =
            format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n");
        s.write_all(head.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        let answer = String::from_utf8_lossy(&answer);
        answer
            .get(9..12)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("not an HTTP answer: {:.100}", answer))
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

/// `n` connections to `addr` each sending one byte of a request head that never ends
/// every 0.9 s (so none is ever quiet for a second), reconnecting when the server
/// closes one. Abort the handles to stop them.
fn tricklers(addr: SocketAddr, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            tokio::spawn(async move {
                let head = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: ";
                loop {
                    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    for b in head.iter().chain(std::iter::repeat(&b'a')) {
                        if s.write_all(&[*b]).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(900)).await;
                    }
                }
            })
        })
        .collect()
}

/// Finding 5, the shape at a lower cap: 48 connections trickling a header byte
/// every 0.9 s against `--web.max-connections 32`. Before, they held every slot (the
/// table replaced only connections quiet for a second) and `/metrics` with a 5 s
/// timeout failed 6 times of 6; now a connection owing its request head for 2 s is
/// replaced first, and `/metrics` answers every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_connections_do_not_hold_the_connection_cap() {
    let yaml = "system:\n  kernel_log: 'off'\n".to_string();
    let lw = start(yaml, vec!["--web.max-connections".into(), "32".into()]).await;
    let addr: SocketAddr = lw.url.trim_start_matches("http://").parse().unwrap();
    let crowd = tricklers(addr, 48);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut answers = Vec::new();
    for _ in 0..6 {
        let asked = Instant::now();
        let got = get_metrics(addr, Duration::from_secs(5), None).await;
        answers.push((got, asked.elapsed()));
    }
    for t in crowd {
        t.abort();
    }
    let ok = answers.iter().filter(|(r, _)| *r == Ok(200)).count();
    eprintln!("/metrics under 48 trickling connections, cap 32: {ok} of 6 answered: {answers:?}");
    assert_eq!(ok, 6, "{answers:?}");
}

/// A child process killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Finding 6: with basic auth on (bcrypt cost 10) and `--web.max-connections 64`, 100
/// clients sending a wrong password as fast as they are answered. Before, their checks
/// queued on the bcrypt turn as requests in flight, held every slot, and a client whose
/// good credentials were cached got no answer at all; now at most 8 checks run or wait,
/// the rest are answered 429 at once, and the good client keeps getting 200s promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_do_not_lock_out_cached_credentials() {
    use base64::Engine as _;
    let hash = bcrypt::hash("good-Pass", 10).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: {hash}\n")).unwrap();
    let config = dir.path().join("leakwatch.yaml");
    std::fs::write(&config, "system:\n  kernel_log: 'off'\n").unwrap();
    let port = crate::support::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Not `Leakwatch::start`: its readiness check has no credentials.
    let mut child = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_leakwatch"))
            .arg("--config")
            .arg(&config)
            .args(["--web.listen-address", &addr.to_string()])
            .arg("--web.config.file")
            .arg(&web)
            .args(["--web.max-connections", "64"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let up = Instant::now();
    while get_metrics(addr, Duration::from_secs(2), None).await != Ok(401) {
        assert!(child.0.try_wait().unwrap().is_none(), "leakwatch exited");
        assert!(
            up.elapsed() < Duration::from_secs(20),
            "leakwatch never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let good = format!("Basic {}", b64("prometheus:good-Pass"));
    let bad = format!("Basic {}", b64("prometheus:wrong"));
    // The good credentials are checked once and cached.
    assert_eq!(
        get_metrics(addr, Duration::from_secs(20), Some(&good)).await,
        Ok(200)
    );

    let crowd: Vec<_> = (0..100)
        .map(|_| {
            let bad = bad.clone();
            tokio::spawn(async move {
                loop {
                    match get_metrics(addr, Duration::from_secs(60), Some(&bad)).await {
                        Ok(401) => {}
                        Ok(429) => tokio::time::sleep(Duration::from_millis(25)).await,
                        other => {
                            eprintln!("wrong password answered {other:?}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut answers = Vec::new();
    for _ in 0..7 {
        let asked = Instant::now();
        let got = get_metrics(addr, Duration::from_secs(5), Some(&good)).await;
        answers.push((got, asked.elapsed()));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for t in crowd {
        t.abort();
    }
    let ok = answers.iter().filter(|(r, _)| *r == Ok(200)).count();
    eprintln!("good credentials under 100 wrong-password clients: {ok} of 7: {answers:?}");
    assert_eq!(ok, 7, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|(_, took)| *took < Duration::from_secs(2)),
        "{answers:?}"
    );
}
