//! Linux namespaces of processes: which one a process is in (device and inode of its
//! `/proc/PID/ns/<kind>` file) and entering another one on an OS thread of its own.
//!
//! `setns` moves only the calling thread, and the move sticks to it: work in a foreign
//! namespace runs on a fresh thread that ends right after (never a pooled one, which
//! would carry the namespace into unrelated work). Fleet mode connects inside a pod's
//! network namespace this way (`fleet::netns`), and reads `/proc/PID/cgroup` as the
//! host's cgroup namespace renders it (`discover`).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};

/// The namespace types leakwatch enters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsKind {
    Net,
    Cgroup,
}

impl NsKind {
    /// The file under `/proc/PID/ns/`.
    pub fn file(self) -> &'static str {
        match self {
            NsKind::Net => "net",
            NsKind::Cgroup => "cgroup",
        }
    }

    fn flag(self) -> CloneFlags {
        match self {
            NsKind::Net => CloneFlags::CLONE_NEWNET,
            NsKind::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        }
    }
}

/// A namespace's identity: device and inode of its `ns/<kind>` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NsId {
    pub dev: u64,
    pub ino: u64,
}

/// `<proc_root>/PID/ns/<kind>`, or `<proc_root>/self/ns/<kind>` for `None` (leakwatch).
pub fn ns_file(proc_root: &Path, pid: Option<u32>, kind: NsKind) -> PathBuf {
    let who = pid.map_or_else(|| "self".to_string(), |p| p.to_string());
    proc_root.join(who).join("ns").join(kind.file())
}

/// The namespace `file` (an `ns/<kind>` link) stands for. Needs ptrace read access to
/// its process (`CAP_SYS_PTRACE`, or the same user with at least its capabilities).
pub fn ns_id(file: &Path) -> std::io::Result<NsId> {
    std::fs::metadata(file).map(|m| NsId {
        dev: m.dev(),
        ino: m.ino(),
    })
}

/// Which step of [`enter`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnterStep {
    /// Opening the `ns/<kind>` file.
    Open,
    /// It is no longer the namespace expected (the pid was reused).
    Changed,
    /// `setns` (needs `CAP_SYS_ADMIN`).
    Enter,
}

/// Moves the calling thread into the namespace `file` stands for, checking first that
/// it is still `expect` when given. Call it only on a thread of [`on_own_thread`].
pub fn enter(
    file: &Path,
    kind: NsKind,
    expect: Option<NsId>,
) -> Result<(), (EnterStep, std::io::Error)> {
    let f = File::open(file).map_err(|e| (EnterStep::Open, e))?;
    if let Some(want) = expect {
        let meta = f.metadata().map_err(|e| (EnterStep::Open, e))?;
        if (meta.dev(), meta.ino()) != (want.dev, want.ino) {
            return Err((
                EnterStep::Changed,
                std::io::Error::other(format!(
                    "namespace inode {} is now {}",
                    want.ino,
                    meta.ino()
                )),
            ));
        }
    }
    setns(&f, kind.flag()).map_err(|errno| (EnterStep::Enter, errno.into()))
}

/// Runs `f` on a new, named OS thread (never a pooled one: `setns` sticks to the thread).
pub fn on_own_thread(name: String, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new().name(name).spawn(f).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_identities() {
        let proc = Path::new("/proc");
        assert_eq!(
            ns_file(proc, Some(42), NsKind::Cgroup),
            Path::new("/proc/42/ns/cgroup")
        );
        assert_eq!(
            ns_file(proc, None, NsKind::Net),
            Path::new("/proc/self/ns/net")
        );
        let me = Some(std::process::id());
        for kind in [NsKind::Net, NsKind::Cgroup] {
            assert_eq!(
                ns_id(&ns_file(proc, None, kind)).unwrap(),
                ns_id(&ns_file(proc, me, kind)).unwrap(),
                "{kind:?}"
            );
        }
        // Above the kernel's pid_max limit (4194304): never a live pid.
        let gone = ns_file(proc, Some(4_194_305), NsKind::Cgroup);
        assert_eq!(
            ns_id(&gone).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
        let (step, e) = enter(&gone, NsKind::Cgroup, None).unwrap_err();
        assert_eq!(
            (step, e.kind()),
            (EnterStep::Open, std::io::ErrorKind::NotFound)
        );
    }

    #[test]
    fn entering_checks_the_namespace_is_the_one_expected() {
        let own = ns_file(Path::new("/proc"), None, NsKind::Cgroup);
        let id = ns_id(&own).unwrap();
        let other = NsId {
            ino: id.ino.wrapping_add(1),
            ..id
        };
        let (tx, rx) = std::sync::mpsc::channel();
        on_own_thread("ns-test".into(), move || {
            let _ = tx.send(enter(&own, NsKind::Cgroup, Some(other)));
        })
        .unwrap();
        let (step, _) = rx.recv().unwrap().unwrap_err();
        assert_eq!(step, EnterStep::Changed);
    }
}
