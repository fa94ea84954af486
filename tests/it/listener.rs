//! A loopback target that names no process or cgroup: leakwatch finds the process
//! listening on its port, adopts it only when its command line is the one the target's
//! `/debug/pprof/cmdline` reports, and reads its memory (process series, cgroup, and
//! so time to OOM); a forwarder in front of the service is never taken for it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::support::{Leakwatch, LeakyService, toolchains, wait_until};

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
        "defaults:\n  interval: 1s\nsystem:\n  kernel_log: 'off'\ntargets:\n  \
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
