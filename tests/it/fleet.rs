//! Fleet mode, live (issue 22): `leakwatch --discover` with no target configuration on
//! a node laid out like a kubelet's. Two "pods", each a leaky-service in a network
//! namespace of its own (`unshare --net --uts --mount`: its `lo` up, its hostname and
//! bind-mounted `/etc/hostname` the pod's name; traffic stays on its loopback) and in a memory cgroup shaped like a kubelet's
//! (`kubepods/burstable/pod<uid>/<container id>` under the test's own v1 cgroup, with a
//! limit): one bound to its namespace's `127.0.0.1`, one to `0.0.0.0`. Beside them, in
//! the test's namespace: a Go service with pprof, a Go program with a port but no pprof,
//! a Go port forwarder to the pprof service, and a non-Go listener (this test).
//!
//! Asserted: within one rescan leakwatch watches exactly our Go services with pprof
//! (other processes of the host may be found too; none of ours beyond those), each pod
//! with its pod labels and its cgroup's limit; a pod whose process exits leaves; its
//! restart (a new process in the same pod) continues the same target name; a third pod
//! leaking fast into its limit is OOM-killed by the kernel, the kill is attributed to
//! its target, and its restart continues the target with the kill in its history.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::pods::{Killed, PodCgroup, start_pod, watched};
use crate::support::{
    Leakwatch, LeakyService, build_leaky_service, build_test_program, free_port, toolchain,
    wait_until,
};

const RESCAN: Duration = Duration::from_secs(2);

/// The squatter test program in `role`, listening on 127.0.0.1 (its port from its log).
fn start_squatter(bin: &Path, role: &str, to: &str, log: &Path) -> (Killed, u16) {
    let child = Command::new(bin)
        .env("SQUAT_ROLE", role)
        .env("SQUAT_NETWORK", "tcp")
        .env("SQUAT_ADDR", "127.0.0.1:0")
        .env("SQUAT_TO", to)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(log).unwrap())
        .spawn()
        .expect("squatter");
    let k = Killed(child);
    let port = wait_until(Duration::from_secs(15), "the squatter's port", || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let addr = text
            .split(" on ")
            .nth(1)
            .or_else(|| text.split(" forwarding ").nth(1))?;
        addr.split_whitespace()
            .next()?
            .rsplit(':')
            .next()?
            .parse()
            .ok()
    });
    (k, port)
}

#[test]
fn discover_watches_exactly_the_go_services_with_pprof() {
    let tc = toolchain("1.26");
    let leaky = build_leaky_service(&tc);
    let squatter = build_test_program(&tc, "squatter");
    let dir = tempfile::tempdir().unwrap();
    let log = |n: &str| dir.path().join(format!("{n}.log"));

    // In the test's namespace.
    let host_svc = LeakyService::start(&tc, &["-mode", "healthy"]);
    let (plain, plain_port) = start_squatter(&squatter, "plain", "", &log("plain"));
    let (fwd, fwd_port) = start_squatter(
        &squatter,
        "forward",
        &host_svc.addr.to_string(),
        &log("fwd"),
    );
    let non_go = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // The forwarder does reach the service's pprof: only its command line tells.
    let through =
        crate::support::try_http_get(&format!("http://127.0.0.1:{fwd_port}/debug/pprof/cmdline"));
    assert!(matches!(through, Ok((200, _))), "{through:?}");

    // Two pods: a port free on the host, so nothing answers it there.
    let tag = std::process::id();
    let uid_a = format!("8c0e2f6a-1b2c-4d3e-9f00-{tag:012}");
    let uid_b = format!("8c0e2f6a-1b2c-4d3e-9f01-{tag:012}");
    let cid = |n: u8| format!("{:0>64}", format!("{n}{tag:x}"));
    let cg_a = PodCgroup::create(&uid_a, &cid(1), 256 << 20);
    let cg_b = PodCgroup::create(&uid_b, &cid(2), 192 << 20);
    let port = free_port();
    let slow = "-mode heap -interval 200ms -size 64KiB";
    let mut pod_a = Some(start_pod(
        &leaky,
        &cg_a,
        "orders-5d8f7",
        ("127.0.0.1", port),
        slow,
        &log("pod-a"),
    ));
    let _pod_b = start_pod(
        &leaky,
        &cg_b,
        "carts-66b9c",
        ("0.0.0.0", port),
        slow,
        &log("pod-b"),
    );
    assert!(
        crate::support::try_http_get(&format!("http://127.0.0.1:{port}/debug/pprof/cmdline"))
            .is_err(),
        "the pods' port answers on the host's loopback"
    );

    let lw = Leakwatch::start_with_args(
        "system:\n  kernel_log: /dev/kmsg\ndiscover:\n  rescan_interval: 2s\ndefaults:\n  interval: 1s\n",
        &["--discover"],
    );
    let started = Instant::now();
    let pid_a = pod_a.as_ref().unwrap().0.id();
    let ours = [
        ("host service", host_svc.pid(), true),
        ("pod a", pid_a, true),
        ("pod b", _pod_b.0.id(), true),
        ("Go without pprof", plain.0.id(), false),
        ("Go port forwarder", fwd.0.id(), false),
        ("non-Go listener (this test)", std::process::id(), false),
    ];
    let found = wait_until(RESCAN * 5, "the three Go services with pprof", || {
        let w = watched(&lw.metrics());
        ours.iter()
            .filter(|(_, _, want)| *want)
            .all(|(_, pid, _)| w.values().any(|(p, _)| p == pid))
            .then_some(w)
    });
    eprintln!(
        "fleet: found in {:.1}s: {:#?}",
        started.elapsed().as_secs_f64(),
        found
    );
    for (what, pid, want) in ours {
        let n = found.values().filter(|(p, _)| *p == pid).count();
        assert_eq!(
            n,
            usize::from(want),
            "{what} (pid {pid}) watched {n} time(s): {found:#?}"
        );
    }
    let _ = (plain_port, &non_go);

    // Each pod with its identity and its cgroup's limit.
    let m = lw.metrics();
    for (pid, uid, cg, pod, limit) in [
        (pid_a, &uid_a, &cg_a, "orders-5d8f7", 256u64 << 20),
        (_pod_b.0.id(), &uid_b, &cg_b, "carts-66b9c", 192 << 20),
    ] {
        let (name, (_, labels)) = found.iter().find(|(_, (p, _))| *p == pid).unwrap();
        if labels.get("pod").is_none() {
            eprintln!(
                "{}",
                lw.stderr()
                    .lines()
                    .filter(|l| l.contains("identity") || l.contains(&pid.to_string()))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        assert_eq!(labels.get("pod_uid"), Some(uid), "{name}: {labels:?}");
        assert_eq!(
            labels.get("container_id"),
            Some(&cg.id),
            "{name}: {labels:?}"
        );
        assert_eq!(
            labels.get("pod").map(String::as_str),
            Some(pod),
            "{name}: {labels:?}"
        );
        let got = wait_until(Duration::from_secs(10), "the pod's memory limit", || {
            lw.metrics()
                .series("leakwatch_memory_limit_bytes")
                .into_iter()
                .find(|(l, _)| l.get("target") == Some(name))
                .map(|(l, v)| (l.get("source").cloned(), v as u64))
        });
        assert_eq!(got, (Some("cgroup".into()), limit), "{name}");
        assert_eq!(
            m.get("leakwatch_up", &[("target", name)]),
            Some(1.0),
            "{name}"
        );
    }

    // Pod a's process exits: its target leaves within a rescan; a new process in the
    // same pod (same cgroup, a new network namespace as after a container restart)
    // continues the same target name.
    let name_a = found
        .iter()
        .find(|(_, (p, _))| *p == pid_a)
        .unwrap()
        .0
        .clone();
    drop(pod_a.take());
    wait_until(RESCAN * 5, "the ended pod's target to leave", || {
        (!watched(&lw.metrics()).contains_key(&name_a)).then_some(())
    });
    let again = start_pod(
        &leaky,
        &cg_a,
        "orders-5d8f7",
        ("127.0.0.1", port),
        slow,
        &log("pod-a2"),
    );
    let pid_again = again.0.id();
    let w = wait_until(RESCAN * 5, "the restarted pod's target", || {
        let w = watched(&lw.metrics());
        w.values().any(|(p, _)| *p == pid_again).then_some(w)
    });
    let name_again = w.iter().find(|(_, (p, _))| *p == pid_again).unwrap().0;
    assert_eq!(
        *name_again, name_a,
        "a restarted container is a new target: {w:#?}"
    );
    drop(again);

    // A fast leak in a third pod: the kernel OOM-kills it at its limit; the kill is
    // attributed to its target, and the pod restarted (as the kubelet does, here with
    // the leak fixed) continues the target with the kill in its history.
    if File::open("/dev/kmsg").is_ok() {
        let uid_c = format!("8c0e2f6a-1b2c-4d3e-9f02-{tag:012}");
        let cg_c = PodCgroup::create(&uid_c, &cid(3), 48 << 20);
        let fast = "-mode heap -interval 20ms -size 256KiB";
        let mut pod_c = start_pod(
            &leaky,
            &cg_c,
            "search-7c4d2",
            ("127.0.0.1", port),
            fast,
            &log("pod-c"),
        );
        let pid_c = pod_c.0.id();
        let status = wait_until(
            Duration::from_secs(60),
            "the kernel's OOM kill of pod c",
            || pod_c.0.try_wait().ok().flatten(),
        );
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "pod c was not OOM-killed: {status:?}"
        );
        let restarted = start_pod(
            &leaky,
            &cg_c,
            "search-7c4d2",
            ("127.0.0.1", port),
            "-mode healthy",
            &log("pod-c2"),
        );
        let pid_c2 = restarted.0.id();
        let (name_c, kills) =
            wait_until(RESCAN * 10, "pod c's kill on its restarted target", || {
                let m = lw.metrics();
                let w = watched(&m);
                let (name, (_, labels)) = w.iter().find(|(_, (p, _))| *p == pid_c2)?;
                assert_eq!(labels.get("pod_uid"), Some(&uid_c), "{labels:?}");
                let kills = m.get("leakwatch_oom_kills_total", &[("target", name)])?;
                (kills >= 1.0).then(|| (name.clone(), kills))
            });
        eprintln!(
            "fleet: pod c (pid {pid_c}) OOM-killed; its restart (pid {pid_c2}) continues {name_c} with {kills} kill(s)"
        );
        drop(restarted);
    } else {
        assert!(
            !crate::support::in_ci(),
            "CI must read /dev/kmsg for the OOM-kill check"
        );
    }
    drop(lw);
}
