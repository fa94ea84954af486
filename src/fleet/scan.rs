//! One look at this node's processes: which are Go programs with listening TCP
//! sockets, on which ports, and who they are (cgroup identity, pod view). A process
//! that is not Go is remembered by its pid and start time and not read again until it
//! restarts.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::gobuild::{GoBuild, read_go_build};
use super::identity::{CgroupIdentity, PodView, parse_cgroup_identity, read_pod_view};
use crate::config::Skip;
use crate::system::listener::{NetnsListeners, listening_sockets_in};

/// A process as one incarnation: a restart (same pid reused or not) is a new key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessKey {
    pub pid: u32,
    /// `starttime` of `/proc/PID/stat`, in clock ticks since boot.
    pub start_ticks: u64,
}

/// A Go process with its listening ports: the candidates for a target.
#[derive(Debug, Clone)]
pub struct GoProcess {
    pub key: ProcessKey,
    /// `/proc/PID/exe`'s target (the executable's path as the process's mount
    /// namespace names it).
    pub exe: String,
    pub build: GoBuild,
    /// `/proc/PID/cmdline` as read (NUL-separated), to compare with what its
    /// `/debug/pprof/cmdline` serves.
    pub cmdline: Vec<u8>,
    /// Its listening sockets as its own network namespace sees them, one per port,
    /// lowest first.
    pub listening: Vec<SocketAddr>,
    pub identity: CgroupIdentity,
    pub view: PodView,
}

/// What a scan remembers between looks.
#[derive(Debug, Default)]
pub struct Scanner {
    proc_root: PathBuf,
    /// Processes that are not Go (or whose executable cannot be read), until they end.
    skipped: HashMap<ProcessKey, Skip>,
    /// Go build info of the processes seen, read once per incarnation.
    go: HashMap<ProcessKey, GoBuild>,
}

impl Scanner {
    pub fn new(proc_root: &Path) -> Self {
        Scanner {
            proc_root: proc_root.to_path_buf(),
            ..Scanner::default()
        }
    }

    /// Every Go process (but leakwatch) with at least one listening TCP socket it holds,
    /// ordered by pid. Processes that vanish mid-scan are left out; the memory of
    /// processes that ended is dropped.
    pub fn scan(&mut self) -> Vec<GoProcess> {
        let own = std::process::id();
        let Ok(all) = procfs::process::all_processes_with_root(&self.proc_root) else {
            return Vec::new();
        };
        let mut alive = HashSet::new();
        let mut found = Vec::new();
        // Each network namespace's socket tables, read once this scan.
        let mut netns = NetnsListeners::new();
        for p in all.flatten() {
            let Ok(pid) = u32::try_from(p.pid()) else {
                continue;
            };
            let Ok(stat) = p.stat() else { continue };
            let key = ProcessKey {
                pid,
                start_ticks: stat.starttime,
            };
            alive.insert(key);
            // Kernel threads have no executable; leakwatch is not a target of itself.
            if pid == own || self.skipped.contains_key(&key) || stat.flags & PF_KTHREAD != 0 {
                continue;
            }
            let dir = self.proc_root.join(pid.to_string());
            let build = match self.go.get(&key) {
                Some(b) => b.clone(),
                None => match read_go_build(&dir.join("exe")) {
                    Ok(Some(b)) => {
                        self.go.insert(key, b.clone());
                        b
                    }
                    Ok(None) => {
                        self.skipped.insert(key, Skip::NotGo);
                        continue;
                    }
                    Err(_) => {
                        self.skipped.insert(key, Skip::Unreadable);
                        continue;
                    }
                },
            };
            let Ok(sockets) = listening_sockets_in(&self.proc_root, pid, &mut netns) else {
                continue;
            };
            if sockets.is_empty() {
                continue;
            }
            let exe = std::fs::read_link(dir.join("exe"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let cmdline = crate::files::read_capped(&dir.join("cmdline"), MAX_CMDLINE, "cmdline")
                .unwrap_or_default();
            let identity = std::fs::read_to_string(dir.join("cgroup"))
                .map(|t| parse_cgroup_identity(&t))
                .unwrap_or_else(|_| parse_cgroup_identity(""));
            let view = match identity.pod() {
                Some(pod) => read_pod_view(&self.proc_root, pid, &pod.uid),
                None => PodView::default(),
            };
            found.push(GoProcess {
                key,
                exe,
                build,
                cmdline,
                listening: sockets.iter().map(|s| s.local).collect(),
                identity,
                view,
            });
        }
        self.skipped.retain(|k, _| alive.contains(k));
        self.go.retain(|k, _| alive.contains(k));
        found.sort_by_key(|g| g.key);
        found
    }

    /// The processes skipped until they end, by why: every reason, in [`Skip::ALL`]
    /// order.
    pub fn skipped(&self) -> Vec<(Skip, usize)> {
        Skip::ALL
            .iter()
            .map(|&why| (why, self.skipped.values().filter(|s| **s == why).count()))
            .collect()
    }
}

/// `PF_KTHREAD` in `/proc/PID/stat`'s flags: a kernel thread.
const PF_KTHREAD: u32 = 0x0020_0000;
/// The most bytes of a command line read.
const MAX_CMDLINE: u64 = 64 << 10;

#[cfg(test)]
mod tests {
    use super::*;

    /// This test process is a Rust program: a scan skips it (and any non-Go process),
    /// and remembers the skip for the process's lifetime.
    #[test]
    fn non_go_processes_are_skipped_and_remembered() {
        let _listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = Scanner::new(Path::new("/proc"));
        let found = s.scan();
        assert!(found.iter().all(|g| g.key.pid != std::process::id()));
        assert!(
            found.iter().all(|g| g.build.version.starts_with("go")),
            "{found:?}"
        );
        let skipped = s.skipped.len();
        assert!(
            skipped > 0,
            "nothing skipped on a host full of non-Go processes"
        );
        let by_reason = s.skipped();
        assert_eq!(by_reason.iter().map(|(_, n)| n).sum::<usize>(), skipped);
        assert!(
            by_reason
                .iter()
                .any(|(why, n)| *why == Skip::NotGo && *n > 0)
        );
        s.scan();
        assert!(s.skipped.len() <= skipped + 8);
    }
}
