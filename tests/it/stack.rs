//! The live stack the end-to-end tests build on, every process real and on 127.0.0.1:
//! child processes with their output in a log file, the example Go service started by
//! hand (extra environment, a memory cgroup from its first instruction), an
//! Alertmanager webhook receiver inside the test, Prometheus' HTTP API, and
//! scripts/ops-config. Used by e2e.rs (compressed time) and live_defaults.rs (the
//! defaults, real time).

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::support::{GoToolchain, TempCgroup, build_leaky_service, try_http_get, wait_until};

/// The repository root (alerts/, deploy/, scripts/).
pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// -------------------------------------------------------------------------------------
// Processes
// -------------------------------------------------------------------------------------

/// A child process killed (and reaped) on drop, with its output in a log file.
pub(crate) struct Proc {
    pub(crate) name: &'static str,
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
}

impl Proc {
    pub(crate) fn spawn(name: &'static str, cmd: &mut Command, dir: &Path) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc { name, child, log }
    }

    /// The last lines of the process's output, for failure messages.
    pub(crate) fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits until `url` answers 200, failing with the log if the process exits.
    pub(crate) fn wait_ready(&mut self, url: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if matches!(try_http_get(url), Ok((200, _))) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status}:\n{}", self.name, self.tail());
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready at {url} within {timeout:?}:\n{}",
                self.name,
                self.tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example Go service started by hand rather than with `LeakyService::start`: with
/// extra environment (GOMEMLIMIT), a place in a memory cgroup from its first
/// instruction, and its output in `dir`. Its address comes from its log line, as in
/// the harness.
pub(crate) struct GoService {
    pub(crate) url: String,
    /// Kills the service on drop.
    pub(crate) proc: Proc,
}

impl GoService {
    /// A service whose log is `dir/heap-service.log`.
    pub(crate) fn start(
        tc: &GoToolchain,
        args: &[&str],
        env: &[(&str, &str)],
        cgroup_procs: Option<&Path>,
        dir: &Path,
    ) -> GoService {
        Self::start_named("heap-service", tc, args, env, cgroup_procs, dir)
    }

    /// A service whose log is `dir/NAME.log` (several services in one directory).
    pub(crate) fn start_named(
        name: &'static str,
        tc: &GoToolchain,
        args: &[&str],
        env: &[(&str, &str)],
        cgroup_procs: Option<&Path>,
        dir: &Path,
    ) -> GoService {
        let bin = build_leaky_service(tc);
        let mut cmd = match cgroup_procs {
            None => Command::new(&bin),
            Some(procs) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(r#"echo $$ > "$1" && shift && exec "$@""#)
                    .arg("sh")
                    .arg(procs)
                    .arg(&bin);
                c
            }
        };
        cmd.args(["-addr", "127.0.0.1:0"]).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut proc = Proc::spawn(name, &mut cmd, dir);
        let addr: SocketAddr =
            wait_until(Duration::from_secs(15), &format!("{name} address"), || {
                if let Ok(Some(status)) = proc.child.try_wait() {
                    panic!("{name} exited with {status}:\n{}", proc.tail());
                }
                let log = std::fs::read_to_string(&proc.log).unwrap_or_default();
                let rest = log.split("serving pprof on http://").nth(1)?;
                rest.split('/').next()?.parse().ok()
            });
        let url = format!("http://{addr}");
        proc.wait_ready(&format!("{url}/healthz"), Duration::from_secs(10));
        GoService { url, proc }
    }

    /// The exit status if the process has ended (reaped), else None.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.proc.child.try_wait().ok().flatten()
    }
}

// -------------------------------------------------------------------------------------
// The webhook receiver
// -------------------------------------------------------------------------------------

/// An Alertmanager webhook receiver on a std listener: every POSTed notification is
/// kept with the time it arrived. The thread stops when the receiver drops.
pub(crate) struct Webhook {
    pub(crate) url: String,
    received: Arc<Mutex<Vec<(Instant, Json)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Webhook {
    pub(crate) fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind webhook");
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (received, stop) = (Arc::clone(&received), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => match serve_notification(stream) {
                            Ok(json) => received.lock().unwrap().push((Instant::now(), json)),
                            Err(e) => eprintln!("webhook: {e}"),
                        },
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20))
                        }
                        Err(e) => eprintln!("webhook accept: {e}"),
                    }
                }
            })
        };
        Webhook {
            url: format!("http://{addr}/alerts"),
            received,
            stop,
            thread: Some(thread),
        }
    }

    /// Every alert of every notification so far, with its arrival time.
    pub(crate) fn alerts(&self) -> Vec<(Instant, Json)> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(at, n)| {
                n["alerts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |a| (*at, a))
            })
            .collect()
    }

    /// When the first notification of `alertname` firing for `target` arrived.
    pub(crate) fn first_firing(&self, alertname: &str, target: &str) -> Option<(Instant, Json)> {
        self.alerts().into_iter().find(|(_, a)| {
            a["status"] == "firing"
                && a["labels"]["alertname"] == alertname
                && a["labels"]["target"] == target
        })
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one HTTP/1.1 POST with a Content-Length body, answers 200, returns the JSON.
fn serve_notification(mut stream: TcpStream) -> Result<Json, String> {
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let (head_end, length) = loop {
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the headers ended".into());
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..i]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| format!("no Content-Length in {head:?}"))?;
            break (i + 4, length);
        }
    };
    while raw.len() < head_end + length {
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("body cut short".into());
        }
        raw.extend_from_slice(&buf[..n]);
    }
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let body = &raw[head_end..head_end + length];
    serde_json::from_slice(body)
        .map_err(|e| format!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

// -------------------------------------------------------------------------------------
// Prometheus API
// -------------------------------------------------------------------------------------

/// Percent-encodes a query parameter (everything but RFC 3986 unreserved characters).
pub(crate) fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GET `path` of the Prometheus HTTP API as JSON (also on 400/422, which carry the
/// parse error in the body).
pub(crate) fn prom_get(base: &str, path: &str) -> Json {
    let url = format!("{base}{path}");
    let (status, body) = try_http_get(&url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
    serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "GET {url}: {status}, not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    })
}

/// An instant query; the whole response (status, data or error).
pub(crate) fn prom_query(base: &str, expr: &str) -> Json {
    prom_get(base, &format!("/api/v1/query?query={}", url_encode(expr)))
}

/// Whether a successful query response holds data: a non-empty vector or matrix, or a
/// scalar/string.
pub(crate) fn has_data(resp: &Json) -> bool {
    match resp["data"]["resultType"].as_str() {
        Some("vector" | "matrix") => resp["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        Some("scalar" | "string") => true,
        _ => false,
    }
}
// -------------------------------------------------------------------------------------
// Configuration
// -------------------------------------------------------------------------------------

/// Runs `scripts/ops-config ARGS`, panicking with its output unless it succeeds.
pub(crate) fn ops_config(args: &[&str]) {
    let out = Command::new(root().join("scripts/ops-config"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/ops-config: {e}"));
    assert!(
        out.status.success(),
        "ops-config {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sets the memory limit of `cg` (v2 memory.max, v1 memory.limit_in_bytes).
pub(crate) fn write_limit(cg: &TempCgroup, bytes: u64) {
    let file = if cg.version == 2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    std::fs::write(cg.dir.join(file), bytes.to_string())
        .unwrap_or_else(|e| panic!("{}: {e}", cg.dir.join(file).display()));
}

/// The PromQL expressions of a Grafana panel's targets.
pub fn panel_exprs(panel: &Json) -> Vec<&str> {
    panel["targets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter_map(|t| t["expr"].as_str())
        .collect()
}
