//! Test support for fleet mode: "pods" laid out as a kubelet does on a node (a
//! kubelet-shaped memory cgroup under the test's own v1 cgroup, a network, UTS and
//! mount namespace of its own), and which targets a `--discover` leakwatch watches.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{Metrics, free_port, try_http_get, wait_until};

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
    start_pod_with(
        bin,
        cg,
        pod,
        (bind, port),
        flags,
        log,
        &PodExtras::default(),
    )
}

/// What a kubelet gives a container besides its cgroup, namespaces and hostname, as
/// `src/fleet/identity.rs` reads it through `/proc/PID/root` and `/proc/PID/mountinfo`:
/// the service account's `namespace` file at
/// `/var/run/secrets/kubernetes.io/serviceaccount/namespace`, and the termination-message
/// file `<kubelet root>/pods/<pod uid>/containers/<container>/<random>` bind-mounted
/// into the container (a new `<random>` for each container the kubelet starts).
pub struct Kubelet<'a> {
    pub namespace: &'a str,
    pub pod_uid: &'a str,
    pub container: &'a str,
}

/// How a pod is started beyond what [`start_pod`] does.
#[derive(Default)]
pub struct PodExtras<'a> {
    pub kubelet: Option<Kubelet<'a>>,
    /// `setpriv` options the service is exec'd under once the pod is set up (e.g.
    /// `--bounding-set=-sys_ptrace`): capabilities the container runs without.
    pub setpriv: &'a [&'a str],
}

/// [`start_pod`] with `extras`. The kubelet's files live beside `log`
/// (`<log stem>.run`, bind-mounted on the pod's `/var/run`, and `<log stem>.kubelet`),
/// mounted in the pod's own mount namespace only. The termination-message file is
/// mounted at `/var/run/termination-log` rather than the kubelet's
/// `/dev/termination-log` (no file to mount on in the node's `/dev`): leakwatch reads the
/// mount's source, not where it is mounted.
pub fn start_pod_with(
    bin: &Path,
    cg: &PodCgroup,
    pod: &str,
    (bind, port): (&str, u16),
    flags: &str,
    log: &Path,
    extras: &PodExtras,
) -> Killed {
    // As the kubelet does: the pod's hostname, and its own /etc/hostname bind-mounted
    // (in a mount namespace of its own, so the host's file is untouched).
    let hostname_file = log.with_extension("hostname");
    let mut script = String::from(
        r#"echo $$ > "$1" && ip link set lo up && hostname "$2" && echo "$2" > "$5" && mount --bind "$5" /etc/hostname"#,
    );
    let mut cmd = Command::new("unshare");
    if let Some(k) = &extras.kubelet {
        let run = log.with_extension("run");
        let account = run.join("secrets/kubernetes.io/serviceaccount");
        std::fs::create_dir_all(&account).unwrap();
        std::fs::write(account.join("namespace"), k.namespace).unwrap();
        std::fs::write(run.join("termination-log"), "").unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let termination = log
            .with_extension("kubelet")
            .join("pods")
            .join(k.pod_uid)
            .join("containers")
            .join(k.container)
            .join(format!("{nanos:08x}"));
        std::fs::create_dir_all(termination.parent().unwrap()).unwrap();
        std::fs::write(&termination, "").unwrap();
        script.push_str(
            r#" && mount --bind "$LW_RUN" /var/run && mount --bind "$LW_TERMINATION" /var/run/termination-log"#,
        );
        cmd.env("LW_RUN", &run).env("LW_TERMINATION", &termination);
    }
    let setpriv = if extras.setpriv.is_empty() {
        String::new()
    } else {
        assert!(
            extras
                .setpriv
                .iter()
                .all(|a| !a.contains(char::is_whitespace))
        );
        format!("setpriv {} ", extras.setpriv.join(" "))
    };
    script.push_str(&format!(r#" && exec {setpriv}"$3" -addr "$4" $6"#));
    let child = cmd
        .args(["--net", "--uts", "--mount", "sh", "-c"])
        .arg(script)
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

/// A leaky-service in the test's own namespaces and cgroup, exec'd by `setpriv` with
/// `setpriv` options, listening on a free port of 127.0.0.1; returned once it listens.
pub fn start_service_under_setpriv(
    bin: &Path,
    setpriv: &[&str],
    flags: &[&str],
    log: &Path,
) -> Killed {
    let child = Command::new("setpriv")
        .args(setpriv)
        .arg(bin)
        .args(["-addr", "127.0.0.1:0"])
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(log).unwrap())
        .spawn()
        .expect("setpriv");
    let mut k = Killed(child);
    wait_until(Duration::from_secs(15), "the service to listen", || {
        if let Ok(Some(status)) = k.0.try_wait() {
            panic!(
                "setpriv {setpriv:?} {} exited with {status}: {}",
                bin.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains("serving pprof on http://")
            .then_some(())
    });
    k
}

/// A leakwatch exec'd by `setpriv` (capabilities are per process: the test cannot run
/// one child of its own without them otherwise), with `config_yaml` and `args`;
/// returned once ready, killed on drop.
pub struct SetprivLeakwatch {
    pub url: String,
    child: Killed,
    dir: tempfile::TempDir,
}

impl SetprivLeakwatch {
    pub fn start(setpriv: &[&str], config_yaml: &str, args: &[&str]) -> SetprivLeakwatch {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("leakwatch.yaml");
        std::fs::write(&config, config_yaml).unwrap();
        let url = format!("http://127.0.0.1:{}", free_port());
        let child = Command::new("setpriv")
            .args(setpriv)
            .arg(env!("CARGO_BIN_EXE_leakwatch"))
            .arg("--config")
            .arg(&config)
            .args(["--web.listen-address", url.trim_start_matches("http://")])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("setpriv leakwatch");
        let mut lw = SetprivLeakwatch {
            url,
            child: Killed(child),
            dir,
        };
        let ready = format!("{}/-/ready", lw.url);
        wait_until(Duration::from_secs(20), "leakwatch under setpriv", || {
            if let Ok(Some(status)) = lw.child.0.try_wait() {
                panic!(
                    "leakwatch under setpriv exited with {status}: {}",
                    lw.stderr()
                );
            }
            matches!(try_http_get(&ready), Ok((200, _))).then_some(())
        });
        lw
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn metrics(&self) -> Metrics {
        let (status, body) = try_http_get(&format!("{}/metrics", self.url))
            .unwrap_or_else(|e| panic!("GET {}/metrics: {e}", self.url));
        let text = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 200, "GET {}/metrics: {text}", self.url);
        Metrics::parse(&text).unwrap_or_else(|e| panic!("bad /metrics ({e}):\n{text}"))
    }
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
