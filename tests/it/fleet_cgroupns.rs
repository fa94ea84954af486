//! Fleet mode from a cgroup namespace of its own (issue 22, found in review): on a
//! cgroup v2 node containerd and CRI-O give every container a private cgroup namespace,
//! leakwatch's DaemonSet pod included, and another pod's `/proc/PID/cgroup` then reads
//! `/../<...>` from leakwatch. Its memory must still be found under the host's cgroup
//! mount.
//!
//! The test lays out a node the way the DaemonSet sees one: a PID namespace of its own
//! (`unshare --pid --mount-proc`) whose PID 1 (the node's init) stays in the test's
//! cgroup namespace, as a node's init is in the host's; inside it two pods with
//! kubelet-shaped v1 memory cgroups and limits (one in a network namespace of its own,
//! one on the node's network, as `hostNetwork` pods are); and leakwatch (`--discover`,
//! the host's PID namespace as `hostPID` gives it) moved into a child cgroup of its own
//! and then into a new cgroup namespace rooted there, deeper than the pods' parent, so
//! that it reads the pods' paths as `/../kubepods/...` (checked).
//!
//! Asserted: with CAP_SYS_ADMIN (the DaemonSet's) each pod's target has its cgroup's
//! limit as `leakwatch_memory_limit_bytes{source="cgroup"}` and a working set, and a
//! third pod's OOM kill is attributed to its target by its cgroup path; without
//! it, the hostNetwork pod is still watched with its identity but gets no cgroup limit
//! (no wrong one), and the log says once what is missing.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::pods::{Killed, PodCgroup, watched};
use crate::support::{
    Metrics, build_leaky_service, free_port, http_get, in_ci, toolchain, try_http_get, wait_until,
};

/// A PID namespace standing for a node: its PID 1 (`sleep`) in the test's cgroup
/// namespace. Dropping it kills that init, and the kernel every process inside.
struct Node {
    _init: Killed,
    pid: u32,
}

impl Node {
    fn start() -> Node {
        let unshare = Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", "--mount-proc"])
            .args(["sleep", "infinity"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare --pid");
        let outer = unshare.id();
        let init = Killed(unshare);
        let pid = wait_until(Duration::from_secs(10), "the node's init", || {
            let children =
                std::fs::read_to_string(format!("/proc/{outer}/task/{outer}/children")).ok()?;
            let pid: u32 = children.split_whitespace().next()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.trim() == "sleep").then_some(pid)
        });
        Node { _init: init, pid }
    }

    /// A command run inside the node (its PID and mount namespaces, so its `/proc`).
    fn command(&self) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["--target", &self.pid.to_string(), "--pid", "--mount", "--"]);
        c
    }
}

/// The test's own v1 memory cgroup directory (CI's hybrid host has one).
fn own_memory_cgroup() -> (String, PathBuf) {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let path = own
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        .expect("a v1 memory cgroup (this test needs the hybrid host CI has)");
    let dir = PathBuf::from("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'));
    (path, dir)
}

/// The first process listed in a `cgroup.procs` file (as the test's PID namespace
/// numbers it).
fn first_pid(procs: &Path) -> u32 {
    wait_until(Duration::from_secs(10), "a process in the cgroup", || {
        std::fs::read_to_string(procs)
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// A leaky-service (`-mode healthy` or `leak`'s flags) in `cg` inside the node, on
/// `127.0.0.1:port` of a network namespace of its own (`own_net`) or of the node's. Dropping it ends the nsenter it runs under;
/// the pod itself ends with the node.
fn start_pod(
    node: &Node,
    bin: &Path,
    cg: &PodCgroup,
    (own_net, leak): (bool, Option<&str>),
    port: u16,
    log: &Path,
) -> Killed {
    let script = if own_net {
        r#"echo $$ > "$1" && exec unshare --net sh -c 'ip link set lo up && exec "$0" -addr "127.0.0.1:$1" $2' "$2" "$3" "$4""#
    } else {
        r#"echo $$ > "$1" && exec "$2" -addr "127.0.0.1:$3" $4"#
    };
    let child = node
        .command()
        .args(["sh", "-c", script, "sh"])
        .arg(cg.procs())
        .arg(bin)
        .arg(port.to_string())
        .arg(leak.unwrap_or("-mode healthy"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(log).unwrap())
        .spawn()
        .expect("nsenter");
    let k = Killed(child);
    wait_until(
        Duration::from_secs(15),
        "the pod's service to listen",
        || {
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .contains("serving pprof on http://")
                .then_some(())
        },
    );
    k
}

/// `leakwatch --discover` inside the node, in a child memory cgroup of its own and a
/// cgroup namespace rooted there; without CAP_SYS_ADMIN when `drop_sys_admin`.
struct NsLeakwatch {
    url: String,
    dir: tempfile::TempDir,
    /// Its own host pid, from its cgroup.
    pid: u32,
    _proc: Killed,
    cgroup: PathBuf,
}

impl NsLeakwatch {
    fn start(node: &Node, name: &str, drop_sys_admin: bool, kernel_log: &str) -> NsLeakwatch {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("leakwatch.yaml");
        std::fs::write(
            &config,
            format!("system:\n  kernel_log: '{kernel_log}'\ndiscover:\n  rescan_interval: 1s\ndefaults:\n  interval: 1s\n"),
        )
        .unwrap();
        let cgroup = own_memory_cgroup()
            .1
            .join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir(&cgroup).unwrap();
        let port = free_port();
        let setpriv: &[&str] = if drop_sys_admin {
            &["setpriv", "--bounding-set", "-sys_admin"]
        } else {
            &[]
        };
        let child = node
            .command()
            .args(["sh", "-c", r#"echo $$ > "$1" && shift && exec "$@""#, "sh"])
            .arg(cgroup.join("cgroup.procs"))
            .args(["unshare", "--cgroup"])
            .args(setpriv)
            .arg(env!("CARGO_BIN_EXE_leakwatch"))
            .arg("--config")
            .arg(&config)
            .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
            .arg("--discover")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("nsenter");
        let proc = Killed(child);
        let url = format!("http://127.0.0.1:{port}");
        wait_until(Duration::from_secs(20), "leakwatch's /-/ready", || {
            matches!(try_http_get(&format!("{url}/-/ready")), Ok((200, _))).then_some(())
        });
        let pid = first_pid(&cgroup.join("cgroup.procs"));
        NsLeakwatch {
            url,
            dir,
            pid,
            _proc: proc,
            cgroup,
        }
    }

    fn metrics(&self) -> Metrics {
        let (status, body) = http_get(&format!("{}/metrics", self.url));
        let text = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 200, "{text}");
        Metrics::parse(&text).unwrap()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// `/proc/PID/cgroup` of `pid` as leakwatch's cgroup namespace prints it.
    fn cgroup_of(&self, pid: u32) -> String {
        let out = Command::new("nsenter")
            .args(["--target", &self.pid.to_string(), "--cgroup", "--"])
            .args(["cat", &format!("/proc/{pid}/cgroup")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for NsLeakwatch {
    fn drop(&mut self) {
        // Ends leakwatch (the nsenter it runs under waits for it), then its cgroup.
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .status();
        for _ in 0..50 {
            if std::fs::remove_dir(&self.cgroup).is_ok() || !self.cgroup.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The discovered target whose `pod_uid` label is `uid`, once watched.
fn target_of(lw: &NsLeakwatch, uid: &str) -> String {
    wait_until(Duration::from_secs(15), "the pod's target", || {
        watched(&lw.metrics())
            .into_iter()
            .find(|(_, (_, labels))| labels.get("pod_uid").map(String::as_str) == Some(uid))
            .map(|(name, _)| name)
    })
}

#[test]
fn discover_in_a_cgroup_namespace_of_its_own_reads_each_pods_cgroup() {
    let leaky = build_leaky_service(&toolchain("1.26"));
    let dir = tempfile::tempdir().unwrap();
    let tag = std::process::id();
    let uid_a = format!("5f1c2e3d-4b5a-4c6d-8e7f-{tag:012}");
    let uid_b = format!("5f1c2e3d-4b5a-4c6d-8e80-{tag:012}");
    let cid = |n: u8| format!("{:0>64}", format!("c{n}{tag:x}"));
    // Cgroups first: dropped last, after the node has taken every process down.
    let cg_a = PodCgroup::create(&uid_a, &cid(1), 256 << 20);
    let cg_b = PodCgroup::create(&uid_b, &cid(2), 192 << 20);
    let uid_c = format!("5f1c2e3d-4b5a-4c6d-8e81-{tag:012}");
    let cg_c = PodCgroup::create(&uid_c, &cid(3), 64 << 20);
    let node = Node::start();
    let _pod_a = start_pod(
        &node,
        &leaky,
        &cg_a,
        (true, None),
        free_port(),
        &dir.path().join("a.log"),
    );
    let _pod_b = start_pod(
        &node,
        &leaky,
        &cg_b,
        (false, None),
        free_port(),
        &dir.path().join("b.log"),
    );

    let kmsg = File::open("/dev/kmsg").is_ok();
    assert!(
        kmsg || !in_ci(),
        "CI must read /dev/kmsg for the OOM-kill check"
    );
    let kernel_log = if kmsg { "/dev/kmsg" } else { "off" };
    let lw = NsLeakwatch::start(&node, "leakwatch-cgns", false, kernel_log);
    // leakwatch sees the pods' cgroups outside its namespace: `/..`, as in a container.
    let (parent, _) = own_memory_cgroup();
    for (uid, cg) in [(&uid_a, &cg_a), (&uid_b, &cg_b)] {
        let seen = lw.cgroup_of(first_pid(&cg.procs()));
        let want = format!(":memory:/../kubepods/burstable/pod{uid}/{}", cg.id);
        assert!(seen.contains(&want), "{want} not in {seen}");
        let host =
            std::fs::read_to_string(format!("/proc/{}/cgroup", first_pid(&cg.procs()))).unwrap();
        assert!(
            host.contains(&format!(":memory:{parent}/kubepods/burstable/pod{uid}/")),
            "{host}"
        );
    }
    for (uid, limit) in [(&uid_a, 256u64 << 20), (&uid_b, 192 << 20)] {
        let name = target_of(&lw, uid);
        let (source, got, ws) = wait_until(
            Duration::from_secs(15),
            "the pod's cgroup limit and working set",
            || {
                let m = lw.metrics();
                let (l, v) = m
                    .series("leakwatch_memory_limit_bytes")
                    .into_iter()
                    .find(|(l, _)| l.get("target") == Some(&name))?;
                let ws = m.get(
                    "leakwatch_cgroup_memory_working_set_bytes",
                    &[("target", &name)],
                )?;
                Some((l.get("source").cloned(), v as u64, ws))
            },
        );
        eprintln!("fleet_cgroupns: {name}: limit {got} from {source:?}, working set {ws} bytes");
        assert_eq!((source.as_deref(), got), (Some("cgroup"), limit), "{name}");
        assert!(ws > 0.0, "{name}: working set {ws}");
    }
    // A pod leaking fast into its limit: the kernel's OOM report names its cgroup from
    // the host's root, and leakwatch, in its own PID namespace, knows the process by
    // another pid: only the cgroup path, placed in the host's tree, attributes the kill.
    if kmsg {
        let pod_c = start_pod(
            &node,
            &leaky,
            &cg_c,
            (true, Some("-mode heap -interval 20ms -size 128KiB")),
            free_port(),
            &dir.path().join("c.log"),
        );
        let kill = wait_until(
            Duration::from_secs(60),
            "pod c's OOM kill attributed",
            || {
                lw.stderr()
                    .lines()
                    .find(|l| l.contains("OOM kill of a watched process") && l.contains(&uid_c))
                    .map(str::to_string)
            },
        );
        eprintln!("fleet_cgroupns: {kill}");
        drop(pod_c);
    }
    assert!(!lw.stderr().contains("cannot be placed"), "{}", lw.stderr());
    drop(lw);

    // Without CAP_SYS_ADMIN: the host's cgroup namespace cannot be entered. The pod on
    // the node's network is still watched, with no cgroup limit rather than a wrong one.
    let lw = NsLeakwatch::start(&node, "leakwatch-cgns-nocap", true, "off");
    let name = target_of(&lw, &uid_b);
    wait_until(Duration::from_secs(15), "the warning", || {
        lw.stderr().contains("cannot be placed").then_some(())
    });
    // A few ticks later still no cgroup series for it.
    std::thread::sleep(Duration::from_secs(3));
    let m = lw.metrics();
    let limits: Vec<_> = m
        .series("leakwatch_memory_limit_bytes")
        .into_iter()
        .filter(|(l, _)| l.get("target") == Some(&name))
        .collect();
    assert!(
        limits
            .iter()
            .all(|(l, _)| l.get("source").map(String::as_str) != Some("cgroup")),
        "{limits:?}"
    );
    assert_eq!(
        m.get(
            "leakwatch_cgroup_memory_working_set_bytes",
            &[("target", &name)]
        ),
        None
    );
    let log = lw.stderr();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot be placed"))
        .collect();
    assert_eq!(warned.len(), 1, "{log}");
    assert!(
        warned[0].contains("setns") && warned[0].contains("needs CAP_SYS_ADMIN"),
        "{}",
        warned[0]
    );
    eprintln!("fleet_cgroupns: without CAP_SYS_ADMIN: {}", warned[0]);
    drop(lw);
}
