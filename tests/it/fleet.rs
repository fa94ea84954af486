//! Fleet mode, live (issue 22): `leakwatch --discover` with no target configuration on
//! a node laid out like a kubelet's. Two "pods", each a leaky-service in a network
//! namespace of its own (`unshare --net --uts --mount`: its `lo` up, its hostname and
//! bind-mounted `/etc/hostname` the pod's name; traffic stays on its loopback) and in a memory cgroup shaped like a kubelet's
//! (`kubepods/burstable/pod<uid>/<container id>` under the test's own v1 cgroup, with a
//! limit): one bound to its namespace's `127.0.0.1`, one to `0.0.0.0`. Beside them, in
//! the test's namespace: a Go service with pprof, a Go program with a port but no pprof,
//! a Go port forwarder to the pprof service, and a non-Go listener (this test).
//!
//! Asserted: within one rescan (and a second's slack) leakwatch watches exactly our Go
//! services with pprof (other processes of the host may be found too; none of ours
//! beyond those), shows the refused ones on `/metrics` and asks the one without pprof
//! once; each pod with its pod labels, its cgroup's limit, working set and
//! memory events; the pod given what a kubelet gives a container (its service account's
//! namespace file, its termination-message mount) as `namespace_pod_container` with
//! every identity label. A second leakwatch without CAP_SYS_PTRACE and CAP_SYS_ADMIN
//! watches a service of its own network namespace that holds no capability it lacks,
//! and neither the pod it sees (its listener not reached) nor the processes holding
//! more capabilities. A pod whose process exits leaves; its next container (a new
//! container ID in the same pod) continues the same target name; a third pod leaking
//! fast into its limit is OOM-killed by the kernel, the kill is attributed to its
//! target, and its next container continues the target with the kill in its history.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::pods::{
    Killed, Kubelet, PodCgroup, PodExtras, SetprivLeakwatch, start_pod, start_pod_with,
    start_service_under_setpriv, watched,
};
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

/// Slack over one rescan for the first scan to find everything: measured 0.8-0.9 s at
/// `rescan_interval: 2s` (the scan itself, then a pprof check per new Go listener).
const FIRST_SCAN_SLACK: Duration = Duration::from_secs(1);

/// What a container runs without in the privilege-less part: as root, but neither
/// `CAP_SYS_PTRACE` nor `CAP_SYS_ADMIN` (README, fleet mode, "Privileges").
const NO_PTRACE_NO_ADMIN: [&str; 2] = ["--inh-caps=-all", "--bounding-set=-sys_ptrace,-sys_admin"];

/// The target watching `pid`, with its labels.
fn target_of(
    w: &BTreeMap<String, (u32, BTreeMap<String, String>)>,
    pid: u32,
) -> Option<(String, BTreeMap<String, String>)> {
    w.iter()
        .find(|(_, (p, _))| *p == pid)
        .map(|(name, (_, labels))| (name.clone(), labels.clone()))
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

    // Two pods: a port free on the host, so nothing answers it there. Pod a has what a
    // kubelet gives a container (its namespace's service account file, its
    // termination-message mount); pod b runs without CAP_SYS_PTRACE and CAP_SYS_ADMIN,
    // as containers do, for the privilege-less leakwatch below.
    let tag = std::process::id();
    let uid_a = format!("8c0e2f6a-1b2c-4d3e-9f00-{tag:012}");
    let uid_b = format!("8c0e2f6a-1b2c-4d3e-9f01-{tag:012}");
    let cid = |n: u8| format!("{:0>64}", format!("{n}{tag:x}"));
    let cg_a = PodCgroup::create(&uid_a, &cid(1), 256 << 20);
    let cg_b = PodCgroup::create(&uid_b, &cid(2), 192 << 20);
    let port = free_port();
    let slow = "-mode heap -interval 200ms -size 64KiB";
    let kubelet_a = || PodExtras {
        kubelet: Some(Kubelet {
            namespace: "shop",
            pod_uid: &uid_a,
            container: "server",
        }),
        setpriv: &[],
    };
    let mut pod_a = Some(start_pod_with(
        &leaky,
        &cg_a,
        "orders-5d8f7",
        ("127.0.0.1", port),
        slow,
        &log("pod-a"),
        &kubelet_a(),
    ));
    let pod_b = start_pod_with(
        &leaky,
        &cg_b,
        "carts-66b9c",
        ("0.0.0.0", port),
        slow,
        &log("pod-b"),
        &PodExtras {
            kubelet: None,
            setpriv: &NO_PTRACE_NO_ADMIN,
        },
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
    let pid_b = pod_b.0.id();
    let ours = [
        ("host service", host_svc.pid(), true),
        ("pod a", pid_a, true),
        ("pod b", pid_b, true),
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
    let found_in = started.elapsed();
    eprintln!(
        "fleet: found in {:.2}s (rescan {RESCAN:?}): {found:#?}",
        found_in.as_secs_f64(),
    );
    // The first scan runs at start: everything is found within one rescan.
    assert!(
        found_in <= RESCAN + FIRST_SCAN_SLACK,
        "found in {found_in:?}, over one rescan ({RESCAN:?}) and {FIRST_SCAN_SLACK:?}"
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

    // The refusals on /metrics: the Go program without pprof and the forwarder among
    // the refused ports, non-Go processes (this test) among the skipped. The program
    // without pprof is asked once: no request of a later rescan reaches it (its log
    // has a line per request).
    let m = lw.metrics();
    let get = |m: &crate::support::Metrics, name: &str, reason: &str| {
        let labels: &[(&str, &str)] = if reason.is_empty() {
            &[]
        } else {
            &[("reason", reason)]
        };
        m.get(name, labels)
            .unwrap_or_else(|| panic!("no {name}{{reason={reason:?}}}:\n{}", m.text))
    };
    for reason in ["no_pprof", "cmdline_mismatch"] {
        let n = get(&m, "leakwatch_discover_refused_ports", reason);
        assert!(n >= 1.0, "{reason}: {n}");
    }
    assert_eq!(
        get(&m, "leakwatch_discover_refused_ports", "max_targets"),
        0.0
    );
    assert!(get(&m, "leakwatch_discover_skipped_processes", "not_go") >= 1.0);
    assert!(get(&m, "leakwatch_discover_targets", "") >= 3.0);
    assert!(get(&m, "leakwatch_discover_go_processes", "") >= 5.0);
    let asked = || {
        std::fs::read_to_string(log("plain"))
            .unwrap()
            .matches("plain request GET /debug/pprof/cmdline")
            .count()
    };
    let (asked_first, rescans) = (asked(), get(&m, "leakwatch_discover_rescans_total", ""));
    assert!(
        asked_first >= 1,
        "the Go program without pprof was never asked"
    );
    wait_until(RESCAN * 6, "three more rescans", || {
        (get(&lw.metrics(), "leakwatch_discover_rescans_total", "") >= rescans + 3.0).then_some(())
    });
    assert_eq!(asked(), asked_first, "asked again by a later rescan");

    // Each pod with its identity, its cgroup's limit, working set and memory events.
    // Pod a, with the kubelet's files, is named `namespace_pod_container`; pod b, with
    // none of them, only by what its cgroup and hostname tell.
    let name_a = "shop_orders-5d8f7_server";
    for (pid, uid, cg, pod, kube, limit) in [
        (
            pid_a,
            &uid_a,
            &cg_a,
            "orders-5d8f7",
            Some(("shop", "server")),
            256u64 << 20,
        ),
        (pid_b, &uid_b, &cg_b, "carts-66b9c", None, 192 << 20),
    ] {
        let (name, labels) = target_of(&found, pid).unwrap();
        if !labels.contains_key("pod") || (kube.is_some() && name != name_a) {
            eprintln!(
                "{}",
                lw.stderr()
                    .lines()
                    .filter(|l| l.contains("identity") || l.contains(&pid.to_string()))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        let label = |k: &str| labels.get(k).map(String::as_str);
        assert_eq!(label("pod_uid"), Some(uid.as_str()), "{name}: {labels:?}");
        assert_eq!(
            label("container_id"),
            Some(cg.id.as_str()),
            "{name}: {labels:?}"
        );
        assert_eq!(label("pod"), Some(pod), "{name}: {labels:?}");
        assert_eq!(label("namespace"), kube.map(|k| k.0), "{name}: {labels:?}");
        assert_eq!(label("container"), kube.map(|k| k.1), "{name}: {labels:?}");
        match kube {
            Some(_) => assert_eq!(name, name_a, "{labels:?}"),
            None => assert_eq!(name, format!("{uid}:{port}"), "{labels:?}"),
        }
        let on = |m: &crate::support::Metrics, series: &str, extra: &[(&str, &str)]| {
            let mut want = vec![("target", name.as_str())];
            want.extend_from_slice(extra);
            m.get(series, &want)
        };
        let (got, m) = wait_until(Duration::from_secs(10), "the pod's cgroup series", || {
            let m = lw.metrics();
            let limit = m
                .series("leakwatch_memory_limit_bytes")
                .into_iter()
                .find(|(l, _)| l.get("target") == Some(&name))
                .map(|(l, v)| (l.get("source").cloned(), v as u64))?;
            on(&m, "leakwatch_cgroup_memory_working_set_bytes", &[])?;
            Some((limit, m))
        });
        assert_eq!(got, (Some("cgroup".into()), limit), "{name}");
        assert_eq!(
            on(&m, "leakwatch_cgroup_memory_limit_bytes", &[]),
            Some(limit as f64),
            "{name}"
        );
        // A Go service leaking slowly: megabytes, well under its limit.
        let ws = on(&m, "leakwatch_cgroup_memory_working_set_bytes", &[]).unwrap();
        assert!(
            ws > f64::from(1 << 20) && ws < limit as f64 / 2.0,
            "{name}: working set {ws}"
        );
        // v1 memory.events: the OOM kills in memory.oom_control and the limit hits.
        let events: Vec<(String, f64)> = m
            .series("leakwatch_cgroup_memory_events_total")
            .into_iter()
            .filter(|(l, _)| l.get("target") == Some(&name))
            .filter_map(|(l, v)| Some((l.get("event")?.clone(), v)))
            .collect();
        assert!(
            events.contains(&("oom_kill".to_string(), 0.0)),
            "{name}: memory events {events:?}"
        );
        assert!(
            events.iter().any(|(e, _)| e == "failcnt"),
            "{name}: memory events {events:?}"
        );
        assert_eq!(on(&m, "leakwatch_up", &[]), Some(1.0), "{name}");
        eprintln!("fleet: {name}: working set {ws} bytes, memory events {events:?}");
    }

    // Without CAP_SYS_PTRACE and CAP_SYS_ADMIN (README, fleet mode, "Privileges"): a
    // second leakwatch, as root without the two, finds and watches a service of its own
    // network namespace that holds no capability it lacks; a pod's process it may read
    // (pod b) is seen, but its listener is not reached; a process holding capabilities
    // it lacks (the host service, pod a: root with this test's capabilities, which hold
    // CAP_SYS_ADMIN since the first leakwatch reached the pods) is not read at all.
    let svc_less = start_service_under_setpriv(
        &leaky,
        &NO_PTRACE_NO_ADMIN,
        &["-mode", "healthy"],
        &log("host-less"),
    );
    let pid_less = svc_less.0.id();
    let less = SetprivLeakwatch::start(
        &NO_PTRACE_NO_ADMIN,
        "system:\n  kernel_log: 'off'\ndiscover:\n  rescan_interval: 2s\ndefaults:\n  interval: 1s\n",
        &["--discover", "--log.level", "info,leakwatch::fleet=debug"],
    );
    let less_started = Instant::now();
    let not_reached = format!("pid={pid_b} ");
    let (w_less, line) = wait_until(
        RESCAN * 5,
        "the privilege-less leakwatch's first scan",
        || {
            let w = watched(&less.metrics());
            target_of(&w, pid_less)?;
            let log = less.stderr();
            let line = log
                .lines()
                .find(|l| l.contains("cannot reach a listener") && l.contains(&not_reached))?
                .to_string();
            Some((w, line))
        },
    );
    eprintln!(
        "fleet: without CAP_SYS_PTRACE and CAP_SYS_ADMIN, after {:.2}s: watched {w_less:#?}; pod b: {line}",
        less_started.elapsed().as_secs_f64()
    );
    assert!(line.contains("CAP_SYS_ADMIN"), "{line}");
    // The same on its /metrics: pod b's port refused as unreachable, the processes it
    // may not read skipped as unreadable.
    wait_until(
        RESCAN * 3,
        "the refusals on the privilege-less /metrics",
        || {
            let m = less.metrics();
            let n = |name: &str, reason: &str| m.get(name, &[("reason", reason)]).unwrap_or(0.0);
            (n("leakwatch_discover_refused_ports", "unreachable") >= 1.0
                && n("leakwatch_discover_skipped_processes", "unreadable") >= 1.0)
                .then_some(())
        },
    );
    for (what, pid) in [
        ("host service (every capability)", host_svc.pid()),
        ("pod a (every capability)", pid_a),
        ("pod b (not reached)", pid_b),
    ] {
        assert!(
            target_of(&w_less, pid).is_none(),
            "{what} (pid {pid}) watched without the privileges: {w_less:#?}"
        );
    }
    let (name_less, _) = target_of(&w_less, pid_less).unwrap();
    assert_eq!(
        less.metrics()
            .get("leakwatch_up", &[("target", &name_less)]),
        Some(1.0),
        "{name_less}"
    );
    drop(less);
    drop(svc_less);

    // Pod a's container exits: its target leaves within a rescan. The kubelet starts a
    // new one in the same pod: a new container ID (a new cgroup beside the old one),
    // a new termination-message file, a new network namespace here; it continues the
    // same target name, with the new container ID as its label.
    drop(pod_a.take());
    wait_until(RESCAN * 5, "the ended pod's target to leave", || {
        (!watched(&lw.metrics()).contains_key(name_a)).then_some(())
    });
    let cg_a2 = PodCgroup::create(&uid_a, &cid(4), 256 << 20);
    let again = start_pod_with(
        &leaky,
        &cg_a2,
        "orders-5d8f7",
        ("127.0.0.1", port),
        slow,
        &log("pod-a2"),
        &kubelet_a(),
    );
    let pid_again = again.0.id();
    let w = wait_until(RESCAN * 5, "the restarted pod's target", || {
        let w = watched(&lw.metrics());
        w.values().any(|(p, _)| *p == pid_again).then_some(w)
    });
    let (name_again, labels) = target_of(&w, pid_again).unwrap();
    assert_eq!(
        name_again, name_a,
        "a restarted container is a new target: {w:#?}"
    );
    assert_eq!(labels.get("container_id"), Some(&cg_a2.id), "{labels:?}");
    assert_eq!(labels.get("pod_uid"), Some(&uid_a), "{labels:?}");
    drop(again);

    // A fast leak in a third pod: the kernel OOM-kills it at its limit; the kill is
    // attributed to its target, and the pod's next container (as the kubelet starts
    // it: a new container ID, here with the leak fixed) continues the target with the
    // kill in its history.
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
        // Its target's name while it lives, when a scan sees it before the kill.
        let mut first_name = None;
        let status = wait_until(
            Duration::from_secs(60),
            "the kernel's OOM kill of pod c",
            || {
                if first_name.is_none() {
                    first_name = target_of(&watched(&lw.metrics()), pid_c).map(|(n, _)| n);
                }
                pod_c.0.try_wait().ok().flatten()
            },
        );
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "pod c was not OOM-killed: {status:?}"
        );
        let cg_c2 = PodCgroup::create(&uid_c, &cid(5), 48 << 20);
        let restarted = start_pod(
            &leaky,
            &cg_c2,
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
                let (name, labels) = target_of(&w, pid_c2)?;
                assert_eq!(labels.get("pod_uid"), Some(&uid_c), "{labels:?}");
                assert_eq!(labels.get("container_id"), Some(&cg_c2.id), "{labels:?}");
                let kills = m.get("leakwatch_oom_kills_total", &[("target", &name)])?;
                (kills >= 1.0).then_some((name, kills))
            });
        eprintln!(
            "fleet: pod c (pid {pid_c}, target {first_name:?}) OOM-killed; its next container (pid {pid_c2}, a new container ID) continues {name_c} with {kills} kill(s)"
        );
        assert_eq!(name_c, format!("{uid_c}:{port}"));
        if let Some(first) = first_name {
            assert_eq!(first, name_c, "the restarted container is a new target");
        }
        drop(restarted);
    } else {
        assert!(
            !crate::support::in_ci(),
            "CI must read /dev/kmsg for the OOM-kill check"
        );
    }
    drop(lw);
}

/// `discover.max_targets` live: with a cap of 1 and two Go services with pprof, one is
/// watched and the other is counted on `/metrics` as refused for the cap (and logged),
/// not watched. (Which one is adopted when room frees is a unit test:
/// `fleet::admission`.)
#[test]
fn discover_over_max_targets_is_counted_not_watched() {
    let tc = toolchain("1.26");
    let _a = LeakyService::start(&tc, &["-mode", "healthy"]);
    let _b = LeakyService::start(&tc, &["-mode", "healthy"]);
    let lw = Leakwatch::start_with_args(
        "system:\n  kernel_log: 'off'\ndiscover:\n  rescan_interval: 2s\n  max_targets: 1\ndefaults:\n  interval: 1s\n",
        &["--discover"],
    );
    let m = wait_until(RESCAN * 5, "a rescan and a scrape", || {
        let m = lw.metrics();
        (m.get("leakwatch_discover_rescans_total", &[])? >= 1.0 && !watched(&m).is_empty())
            .then_some(m)
    });
    assert_eq!(m.get("leakwatch_discover_targets", &[]), Some(1.0));
    let over = m
        .get(
            "leakwatch_discover_refused_ports",
            &[("reason", "max_targets")],
        )
        .unwrap();
    assert!(over >= 1.0, "{}", m.text);
    assert_eq!(watched(&m).len(), 1, "{:#?}", watched(&m));
    assert!(
        lw.stderr().contains("discover.max_targets reached"),
        "{}",
        lw.stderr()
    );
}
