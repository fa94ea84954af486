//! A loopback target that names no process or cgroup: leakwatch finds the process
//! serving its own connection to the target's port, adopts it only when its command
//! line is the one the target's `/debug/pprof/cmdline` reports, and reads its memory
//! (process series, cgroup, and so time to OOM); a forwarder in front of the service,
//! a squatter with the service's command line listening on a similar address, and a
//! supervisor holding the listening socket are never taken for it.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    Leakwatch, LeakyService, build_leaky_service, build_test_program, free_port, toolchains,
    wait_until,
};

/// Relays every connection on a new loopback port to `to`, from this test process:
/// a port forwarder whose command line is not the service's.
fn forwarder(to: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(to) else {
                continue;
            };
            let pipe = |mut from: TcpStream, mut into: TcpStream| {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || into.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = into.shutdown(std::net::Shutdown::Write);
                });
            };
            pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
            pipe(server, client);
        }
    });
    addr
}

#[test]
fn loopback_target_process_found_by_its_port_and_a_forwarder_is_not() {
    let tc = &toolchains()[0];
    let svc = LeakyService::start(tc, &["-mode", "healthy"]);
    let fwd = forwarder(svc.addr);
    let cfg = format!(
        "defaults:\n  interval: 1s\nsystem:\n  kernel_log: 'off'\n\
         metrics:\n  collectors: {{process_detail: true}}\ntargets:\n  \
         - name: direct\n    url: {}\n  - name: forwarded\n    url: http://{fwd}\n",
        svc.url
    );
    let lw = Leakwatch::start(&cfg);
    let pid = wait_until(
        Duration::from_secs(30),
        "the direct target's process",
        || {
            lw.metrics()
                .get("leakwatch_process_pid", &[("target", "direct")])
        },
    );
    assert_eq!(pid, f64::from(svc.pid()), "the service's pid");
    let m = lw.metrics();
    let rss = m
        .get(
            "leakwatch_process_resident_memory_bytes",
            &[("target", "direct")],
        )
        .expect("the service's RSS");
    assert!(rss > 1e6, "RSS {rss}");
    // Its start time is known, so the start-up grace counts from the process's start.
    let started = m
        .get(
            "leakwatch_process_start_time_seconds",
            &[("target", "direct")],
        )
        .expect("start time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - started).abs() < 120.0,
        "started {started}, now {now}"
    );

    // The forwarded target is scraped through the relay, several times, and its
    // listener (this test process) is never adopted.
    wait_until(
        Duration::from_secs(30),
        "the forwarded target scraped",
        || {
            let m = lw.metrics();
            (m.get("leakwatch_up", &[("target", "forwarded")]) == Some(1.0)
                && m.get(
                    "leakwatch_go_memstats_heap_alloc_bytes",
                    &[("target", "forwarded")],
                )
                .is_some())
            .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    let m = lw.metrics();
    for name in [
        "leakwatch_process_pid",
        "leakwatch_process_resident_memory_bytes",
    ] {
        assert_eq!(m.get(name, &[("target", "forwarded")]), None, "{name}");
    }
    let log = lw.stderr();
    assert!(
        log.contains("does not run the target's command line"),
        "the forwarder is named in the log:\n{log}"
    );
}

/// tests/squatter running under the leaky-service's command line for `port` and `args`
/// (what `LeakyService::start_on_port` runs), so its `/proc/PID/cmdline` is the one the
/// real service's `/debug/pprof/cmdline` reports.
struct Squatter {
    child: Child,
    /// The process that serves (the supervisor's child for `supervise`).
    serving: u32,
    _dir: tempfile::TempDir,
}

impl Squatter {
    /// `role` "squat" (listen on `network`/`addr` and serve) or "supervise" (listen there,
    /// hand the socket to a child with the same command line, never accept).
    fn start(role: &str, network: &str, addr: &str, port: u16, args: &[&str]) -> Squatter {
        let tc = &toolchains()[0];
        let service = build_leaky_service(tc);
        let dir = tempfile::tempdir().unwrap();
        let log: PathBuf = dir.path().join("stderr.log");
        let child = Command::new(build_test_program(tc, "squatter"))
            .arg0(&service)
            .args(["-addr", &format!("127.0.0.1:{port}")])
            .args(args)
            .env("SQUAT_ROLE", role)
            .env("SQUAT_NETWORK", network)
            .env("SQUAT_ADDR", addr)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut squatter = Squatter {
            child,
            serving: 0,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        squatter.serving = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(pid) = text.lines().find_map(|l| {
                l.strip_prefix("squatter pid ")?
                    .split(' ')
                    .next()?
                    .parse()
                    .ok()
            }) {
                break pid;
            }
            assert!(
                Instant::now() < deadline && squatter.child.try_wait().unwrap().is_none(),
                "the squatter did not start serving:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        squatter
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Squatter {
    fn drop(&mut self) {
        // The supervisor's child dies with it (PR_SET_PDEATHSIG).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Leakwatch watching `url` as target "svc": the pid it adopts first.
fn adopted_pid(url: &str) -> (u32, Leakwatch) {
    let cfg = format!(
        "defaults:\n  interval: 1s\nsystem:\n  kernel_log: 'off'\ntargets:\n  \
         - name: svc\n    url: {url}\n"
    );
    let lw = Leakwatch::start(&cfg);
    let pid = wait_until(Duration::from_secs(30), "the target's process", || {
        lw.metrics()
            .get("leakwatch_process_pid", &[("target", "svc")])
    });
    (pid as u32, lw)
}

/// A process with the service's exact command line, started first and listening on
/// `[::]:P` with IPV6_V6ONLY, never serves `127.0.0.1:P`: the service is adopted.
#[test]
fn a_squatter_on_the_ipv6_wildcard_is_not_adopted() {
    let tc = &toolchains()[0];
    let port = free_port();
    let args = ["-mode", "healthy"];
    let squatter = Squatter::start("squat", "tcp6", &format!("[::]:{port}"), port, &args);
    let svc = LeakyService::start_on_port(tc, &args, port);
    let (pid, _lw) = adopted_pid(&svc.url);
    assert_eq!(
        pid,
        svc.pid(),
        "adopted {pid}: the service is {}, the squatter {}",
        svc.pid(),
        squatter.pid()
    );
}

/// The same on another loopback address: `localhost` resolves to 127.0.0.1 here, so a
/// squatter on `127.0.0.2:P` never serves the target `localhost:P`.
#[test]
fn a_squatter_on_another_loopback_address_is_not_adopted_for_localhost() {
    let tc = &toolchains()[0];
    let port = free_port();
    let args = ["-mode", "healthy"];
    let squatter = Squatter::start("squat", "tcp4", &format!("127.0.0.2:{port}"), port, &args);
    let svc = LeakyService::start_on_port(tc, &args, port);
    let (pid, _lw) = adopted_pid(&format!("http://localhost:{port}"));
    assert_eq!(
        pid,
        svc.pid(),
        "adopted {pid}: the service is {}, the squatter {}",
        svc.pid(),
        squatter.pid()
    );
}

/// A supervisor with the server's command line that holds the listening socket but
/// never accepts: the server it started, which serves leakwatch's connection, is adopted.
#[test]
fn a_supervisor_holding_the_listening_socket_is_not_adopted() {
    let port = free_port();
    let supervisor = Squatter::start("supervise", "tcp4", &format!("127.0.0.1:{port}"), port, &[]);
    assert_ne!(supervisor.serving, supervisor.pid());
    let (pid, _lw) = adopted_pid(&format!("http://127.0.0.1:{port}"));
    assert_eq!(
        pid,
        supervisor.serving,
        "adopted {pid}: the server is {}, its supervisor {}",
        supervisor.serving,
        supervisor.pid()
    );
}
