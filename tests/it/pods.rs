//! Test support for fleet mode: "pods" laid out as a kubelet does on a node (a
//! kubelet-shaped memory cgroup under the test's own v1 cgroup, a network, UTS and
//! mount namespace of its own), and which targets a `--discover` leakwatch watches.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{Metrics, wait_until};

/// A kubelet-shaped cgroup `kubepods/burstable/pod<uid>/<id>` under the test's own
/// memory cgroup, removed (deepest first) on drop.
pub struct PodCgroup {
    dirs: Vec<PathBuf>,
    pub id: String,
}

impl PodCgroup {
    pub fn create(uid: &str, id: &str, limit: u64) -> PodCgroup {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let parent = own
            .lines()
            .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
            .expect("a v1 memory cgroup (this test needs the hybrid host CI has)");
        let mut dir = PathBuf::from("/sys/fs/cgroup/memory").join(parent.trim_start_matches('/'));
        let mut dirs = Vec::new();
        for part in ["kubepods", "burstable", &format!("pod{uid}"), id] {
            dir = dir.join(part);
            if !dir.exists() {
                std::fs::create_dir(&dir)
                    .unwrap_or_else(|e| panic!("cannot create cgroup {}: {e}", dir.display()));
                dirs.push(dir.clone());
            }
        }
        std::fs::write(dir.join("memory.limit_in_bytes"), limit.to_string()).unwrap();
        // No swapping around the limit: the kernel kills at it.
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            std::fs::write(&memsw, limit.to_string()).unwrap();
        }
        PodCgroup {
            dirs,
            id: id.to_string(),
        }
    }

    pub fn procs(&self) -> PathBuf {
        self.dirs.last().unwrap().join("cgroup.procs")
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        for d in self.dirs.iter().rev() {
            // Its processes are gone by now (killed and reaped first); a moment for the
            // kernel to let go of the cgroup.
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// A process killed and reaped on drop.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A leaky-service in a pod: its own network and UTS namespaces (hostname `pod`), its
/// pod cgroup from its first instruction, listening on `bind:port` inside.
pub fn start_pod(
    bin: &Path,
    cg: &PodCgroup,
    pod: &str,
    (bind, port): (&str, u16),
    flags: &str,
    log: &Path,
) -> Killed {
    // As the kubelet does: the pod's hostname, and its own /etc/hostname bind-mounted
    // (in a mount namespace of its own, so the host's file is untouched).
    let hostname_file = log.with_extension("hostname");
    let child = Command::new("unshare")
        .args(["--net", "--uts", "--mount", "sh", "-c"])
        .arg(
            r#"echo $$ > "$1" && ip link set lo up && hostname "$2" && echo "$2" > "$5" && mount --bind "$5" /etc/hostname && exec "$3" -addr "$4" $6"#,
        )
        .arg("sh")
        .arg(cg.procs())
        .arg(pod)
        .arg(bin)
        .arg(format!("{bind}:{port}"))
        .arg(&hostname_file)
        .arg(flags)
        .env("HOSTNAME", pod)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(log).unwrap())
        .spawn()
        .expect("unshare");
    let mut k = Killed(child);
    wait_until(
        Duration::from_secs(15),
        "the pod's service to listen",
        || {
            if let Ok(Some(status)) = k.0.try_wait() {
                panic!(
                    "pod {pod} exited with {status}: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .contains("serving pprof on http://")
                .then_some(())
        },
    );
    k
}

/// target -> (pid, labels of its `leakwatch_up` series).
pub fn watched(m: &Metrics) -> BTreeMap<String, (u32, BTreeMap<String, String>)> {
    let pids: BTreeMap<String, u32> = m
        .series("leakwatch_process_pid")
        .into_iter()
        .filter_map(|(l, v)| Some((l.get("target")?.clone(), v as u32)))
        .collect();
    m.series("leakwatch_up")
        .into_iter()
        .filter_map(|(l, _)| {
            let t = l.get("target")?.clone();
            Some((t.clone(), (*pids.get(&t)?, l)))
        })
        .collect()
}
