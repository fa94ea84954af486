//! Finding a target's process (by pid, pid file or cmdline regex) and its memory cgroup
//! on cgroup v2, v1 and hybrid hosts, placed in the host's cgroup tree when leakwatch
//! runs in a cgroup namespace of its own.
//!
//! `/proc/PID/cgroup` prints a path relative to the *reader's* cgroup namespace. In a
//! container (containerd and CRI-O give each one a private cgroup namespace on cgroup v2)
//! another pod's process reads `0::/../../kubepods-burstable.slice/...`, which names
//! nothing under the host's cgroup mount (`system.cgroup_root`). So when leakwatch's
//! namespace is not PID 1's (with the host's PID namespace, the node's init), the file is
//! read on a thread of its own that has entered PID 1's cgroup namespace (`ns`), and
//! prints the path from the host's root. Without the privileges for that, a path that
//! cannot be placed is not used (said once at warn): no limit is better than a wrong one.

use std::path::{Path, PathBuf};

use regex::Regex;

use super::ns::{self, EnterStep, NsId, NsKind};
use crate::{Error, Result};

/// Which cgroup hierarchy the memory files come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CgroupVersion {
    V1,
    V2,
}

impl CgroupVersion {
    /// The `version` label of `leakwatch_cgroup_info`.
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        }
    }
}

/// Where a cgroup's memory files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLocation {
    pub version: CgroupVersion,
    /// The path inside the hierarchy, as `/proc/PID/cgroup` and the kernel OOM log print it.
    pub path: String,
    /// The directory holding `memory.current` (v2) or `memory.usage_in_bytes` (v1).
    pub dir: PathBuf,
}

/// How a target names its process; at most one of the three is normally set, and they
/// are tried in the order pid, pid_file, process.
#[derive(Debug, Clone, Default)]
pub struct ProcessSelector {
    pub pid: Option<u32>,
    pub pid_file: Option<PathBuf>,
    /// Matched against the cmdline with NUL separators turned into spaces (`pgrep -f`).
    pub process: Option<Regex>,
}

impl ProcessSelector {
    /// Whether the selector names a process at all.
    pub fn is_empty(&self) -> bool {
        self.pid.is_none() && self.pid_file.is_none() && self.process.is_none()
    }
}

/// The result of one discovery: the process (if it runs) and its memory cgroup (if any).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Discovered {
    pub pid: Option<u32>,
    pub cgroup: Option<CgroupLocation>,
}

/// The memory-relevant lines of `/proc/PID/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcCgroup {
    /// The path of the `0::PATH` line (the unified hierarchy).
    pub v2: Option<String>,
    /// The path of the v1 line whose controller list has `memory`.
    pub v1_memory: Option<String>,
}

/// Parses `/proc/PID/cgroup`: lines `ID:CONTROLLERS:PATH` (PATH may itself hold `:`).
pub fn parse_proc_cgroup(text: &str) -> Result<ProcCgroup> {
    const FORMAT: &str = "/proc/PID/cgroup";
    let mut out = ProcCgroup::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::malformed(
                FORMAT,
                i + 1,
                format!("expected ID:CONTROLLERS:PATH, got {line:?}"),
            ));
        };
        if id.parse::<u32>().is_err() {
            return Err(Error::malformed(
                FORMAT,
                i + 1,
                format!("hierarchy id {id:?} is not a number"),
            ));
        }
        if !path.starts_with('/') {
            return Err(Error::malformed(
                FORMAT,
                i + 1,
                format!("path {path:?} does not start with /"),
            ));
        }
        if id == "0" && controllers.is_empty() {
            out.v2 = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == "memory") {
            out.v1_memory = Some(path.to_string());
        }
    }
    Ok(out)
}

/// The part of a hierarchy path below the root, or `None` when it climbs above the
/// root (a `..` segment): `/proc/PID/cgroup` prints a process outside the reader's
/// cgroup namespace as `/../<...>`, which names no directory under the mount.
pub fn hierarchy_relative(path: &str) -> Option<&str> {
    let rel = path.trim_start_matches('/');
    (!rel.split('/').any(|seg| seg == "..")).then_some(rel)
}

/// `root` joined with a hierarchy path (which starts with `/` and must not replace
/// `root`); `None` for a path that climbs out of it ([`hierarchy_relative`]).
fn join_hierarchy(root: &Path, path: &str) -> Option<PathBuf> {
    match hierarchy_relative(path)? {
        "" => Some(root.to_path_buf()),
        rel => Some(root.join(rel)),
    }
}

/// Picks where the memory files of a process's cgroup are. On hybrid hosts the `0::`
/// line is present even though the memory controller lives in v1, so v2 counts only
/// when its `memory.current` exists (at the root or under `unified/`); otherwise the
/// v1 `memory` line wins. `None` when neither hierarchy accounts memory for the process
/// (e.g. a pure v2 host's root cgroup, which has no `memory.current`).
pub fn resolve_cgroup(pc: &ProcCgroup, cgroup_root: &Path) -> Option<CgroupLocation> {
    if let Some(path) = &pc.v2
        && let Some(loc) = v2_location(path, cgroup_root)
    {
        return Some(loc);
    }
    let path = pc.v1_memory.as_ref()?;
    Some(CgroupLocation {
        version: CgroupVersion::V1,
        path: path.clone(),
        dir: join_hierarchy(&cgroup_root.join("memory"), path)?,
    })
}

fn v2_location(path: &str, cgroup_root: &Path) -> Option<CgroupLocation> {
    [cgroup_root.to_path_buf(), cgroup_root.join("unified")]
        .into_iter()
        .filter_map(|base| join_hierarchy(&base, path))
        .find(|dir| dir.join("memory.current").is_file())
        .map(|dir| CgroupLocation {
            version: CgroupVersion::V2,
            path: path.to_string(),
            dir,
        })
}

/// A cgroup named in the config: v2 if its `memory.current` exists, else v1 if its
/// `memory.usage_in_bytes` exists, else an error naming the places looked at.
pub fn locate_cgroup(path: &str, cgroup_root: &Path) -> Result<CgroupLocation> {
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let (Some(v1), Some(shown)) = (
        join_hierarchy(&cgroup_root.join("memory"), &path),
        join_hierarchy(cgroup_root, &path),
    ) else {
        return Err(Error::BadFile {
            path: cgroup_root.to_path_buf(),
            reason: format!(
                "cgroup {path}: a `..` segment climbs out of the hierarchy; name the cgroup \
                 by its path from the hierarchy's root, as the host's /proc/PID/cgroup prints it"
            ),
        });
    };
    if let Some(loc) = v2_location(&path, cgroup_root) {
        return Ok(loc);
    }
    if v1.join("memory.usage_in_bytes").is_file() {
        return Ok(CgroupLocation {
            version: CgroupVersion::V1,
            path,
            dir: v1,
        });
    }
    Err(Error::BadFile {
        path: shown,
        reason: format!(
            "cgroup {path}: no memory.current (v2, also looked under unified/) and no \
             memory.usage_in_bytes under {} (v1); check the path and system.cgroup_root",
            v1.display()
        ),
    })
}

/// The inode of the initial cgroup namespace (`PROC_CGROUP_INIT_INO`, fixed by the kernel
/// since Linux 4.6): a process whose namespace has it is in the host's, even where PID 1's
/// namespace file cannot be read (a sandbox's init refusing ptrace access).
const INIT_CGROUP_NS_INO: u64 = 0xEFFF_FFFB;

/// Whose cgroup namespace leakwatch reads `/proc/PID/cgroup` in.
#[derive(Debug)]
enum CgroupView {
    /// Its own, which is the host's (PID 1's): the paths read are the host's.
    Own,
    /// The host's (PID 1's, this one), entered on a thread of its own: leakwatch runs in
    /// a cgroup namespace of its own (a container's).
    Host(NsId),
    /// Its own, not known to be the host's: a path climbing out of it (`/..`) cannot be
    /// placed; others are used as read.
    Unknown(Unplaced),
}

/// Why a process's cgroup paths could not be read as the host's cgroup namespace prints
/// them; each says the privilege missing.
#[derive(Debug)]
pub enum Unplaced {
    /// PID 1's `ns/cgroup` could not be read, so leakwatch cannot tell whether its own
    /// cgroup namespace is the host's.
    InitNamespace {
        file: PathBuf,
        source: std::io::Error,
    },
    /// Entering PID 1's cgroup namespace (opening its `ns/cgroup`, `setns`) failed.
    Enter {
        step: EnterStep,
        source: std::io::Error,
    },
    /// No thread to enter it on.
    Thread(std::io::Error),
}

impl std::fmt::Display for Unplaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::io::ErrorKind::PermissionDenied;
        match self {
            Unplaced::InitNamespace { file, source } => {
                let hint = match source.kind() {
                    PermissionDenied => " (needs CAP_SYS_PTRACE)",
                    _ => "",
                };
                write!(
                    f,
                    "cannot tell whether leakwatch's cgroup namespace is the host's: reading {}: {source}{hint}",
                    file.display()
                )
            }
            Unplaced::Enter { step, source } => {
                let hint = match (step, source.kind()) {
                    (EnterStep::Open, PermissionDenied) => " (needs CAP_SYS_PTRACE)",
                    (EnterStep::Enter, PermissionDenied) => " (needs CAP_SYS_ADMIN)",
                    _ => "",
                };
                let what = match step {
                    EnterStep::Open => "opening PID 1's ns/cgroup",
                    EnterStep::Changed => "checking PID 1's namespace",
                    EnterStep::Enter => "setns",
                };
                write!(
                    f,
                    "cannot enter the host's cgroup namespace (PID 1's): {what}: {source}{hint}"
                )
            }
            Unplaced::Thread(source) => write!(
                f,
                "cannot start a thread to enter the host's cgroup namespace: {source}"
            ),
        }
    }
}

fn cgroup_view(proc_root: &Path) -> CgroupView {
    let own_file = ns::ns_file(Path::new("/proc"), None, NsKind::Cgroup);
    let Ok(own) = ns::ns_id(&own_file) else {
        return CgroupView::Own; // a kernel without cgroup namespaces: one view for all
    };
    let init_file = ns::ns_file(proc_root, Some(1), NsKind::Cgroup);
    match ns::ns_id(&init_file) {
        Ok(init) if init == own => CgroupView::Own,
        Ok(init) => CgroupView::Host(init),
        // A fixture tree as `system.proc_root`: nothing to enter.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => CgroupView::Own,
        Err(_) if own.ino == INIT_CGROUP_NS_INO => CgroupView::Own,
        Err(source) => CgroupView::Unknown(Unplaced::InitNamespace {
            file: init_file,
            source,
        }),
    }
}

/// Reads `file` on a new thread that has entered the cgroup namespace `init` (PID 1's).
/// The outer error: the namespace could not be entered; the inner: reading the file.
fn read_in_host_view(
    proc_root: &Path,
    init: NsId,
    pid: u32,
    file: &Path,
) -> std::result::Result<std::io::Result<String>, Unplaced> {
    let init_file = ns::ns_file(proc_root, Some(1), NsKind::Cgroup);
    let file = file.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    ns::on_own_thread(format!("cgroupns-{pid}"), move || {
        let read = ns::enter(&init_file, NsKind::Cgroup, Some(init))
            .map(|()| std::fs::read_to_string(&file));
        let _ = tx.send(read);
    })
    .map_err(Unplaced::Thread)?;
    match rx.recv() {
        Ok(read) => read.map_err(|(step, source)| Unplaced::Enter { step, source }),
        Err(_) => Err(Unplaced::Thread(std::io::Error::other(
            "the thread ended without an answer",
        ))),
    }
}

/// Says once per run that cgroup paths cannot be placed, and what is missing.
fn warn_unplaced(pid: u32, path: &str, why: &Unplaced) {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        tracing::warn!(
            pid,
            path,
            reason = %why,
            "a process's cgroup cannot be placed in the host's cgroup tree (leakwatch runs in a cgroup \
             namespace of its own): its container's memory limit, working set, memory.events and OOM \
             kills are not read for such processes (said once)"
        );
    });
}

/// The memory-relevant lines of `/proc/PID/cgroup` under `proc_root`, with paths from
/// the host's cgroup root where leakwatch can read them so ([`CgroupView`]); a path that
/// cannot be placed is left out (and said once at warn). `None` when the process is gone.
pub fn read_proc_cgroup(proc_root: &Path, pid: u32) -> Result<Option<ProcCgroup>> {
    let file = proc_root.join(pid.to_string()).join("cgroup");
    let parse = |text: &str| {
        parse_proc_cgroup(text).map_err(|e| Error::BadFile {
            path: file.clone(),
            reason: e.to_string(),
        })
    };
    let read = |r: std::io::Result<String>| match r {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", file.clone(), e)),
    };
    let Some(text) = read(std::fs::read_to_string(&file))? else {
        return Ok(None);
    };
    let pc = parse(&text)?;
    // The path to show in the warning: one climbing out of the namespace, else any.
    let shown = [&pc.v1_memory, &pc.v2]
        .into_iter()
        .filter_map(|p| p.as_deref())
        .max_by_key(|p| hierarchy_relative(p).is_none());
    match cgroup_view(proc_root) {
        CgroupView::Own => Ok(Some(pc)),
        CgroupView::Unknown(why) => {
            if let Some(out) = shown.filter(|p| hierarchy_relative(p).is_none()) {
                warn_unplaced(pid, out, &why);
            }
            Ok(Some(pc))
        }
        CgroupView::Host(init) => match read_in_host_view(proc_root, init, pid, &file) {
            Ok(r) => read(r)?.map(|t| parse(&t)).transpose(),
            Err(why) => {
                // Every path read is relative to leakwatch's own namespace root, whose
                // place in the host's tree is unknown: none can be placed.
                if let Some(p) = shown {
                    warn_unplaced(pid, p, &why);
                }
                Ok(Some(ProcCgroup::default()))
            }
        },
    }
}

/// Parses a pid file: one positive integer, surrounding whitespace allowed.
pub fn parse_pid_file(text: &str) -> Result<u32> {
    let t = text.trim();
    match t.parse::<u32>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(Error::malformed(
            "pid file",
            1,
            format!("expected a positive process id, got {t:?}"),
        )),
    }
}

/// Whether `pid` is a live (not zombie) process under `proc_root`. Cheap: one `stat`
/// read, so callers re-run [`discover`] only when their process is gone.
pub fn pid_alive(proc_root: &Path, pid: u32) -> bool {
    let dir = proc_root.join(pid.to_string());
    match procfs::process::Process::new_with_root(dir.clone()) {
        // A fixture tree may have no `stat`; its directory existing is all it can say.
        Ok(p) => p.is_alive() || (!dir.join("stat").exists() && dir.is_dir()),
        Err(_) => false,
    }
}

/// Every process under `proc_root` but leakwatch itself, with its PID. Processes that
/// vanish while listed are skipped, as are their later reads by the callers.
pub(crate) fn other_processes(
    proc_root: &Path,
) -> Result<impl Iterator<Item = (u32, procfs::process::Process)>> {
    let own = std::process::id();
    let iter = procfs::process::all_processes_with_root(proc_root).map_err(|e| Error::Io {
        action: "listing processes in",
        path: proc_root.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(iter.flatten().filter_map(move |p| {
        let pid = u32::try_from(p.pid()).ok()?;
        (pid != own).then_some((pid, p))
    }))
}

/// The lowest PID whose cmdline (NUL-separated args joined with spaces) matches `re`,
/// never leakwatch's own. The lowest is the oldest, usually the parent of any forked
/// workers that share its cmdline.
pub fn find_process(proc_root: &Path, re: &Regex) -> Result<Option<u32>> {
    let mut best: Option<u32> = None;
    for (pid, p) in other_processes(proc_root)? {
        if best.is_some_and(|b| b <= pid) {
            continue;
        }
        // Processes vanish between listing and reading: that is not an error.
        let Ok(args) = p.cmdline() else { continue };
        if args.is_empty() {
            continue; // kernel threads and zombies
        }
        if re.is_match(&args.join(" ")) {
            best = Some(pid);
        }
    }
    Ok(best)
}

/// Finds the target's process and memory cgroup. A configured `cgroup` wins over the
/// process's own; a process that is not running gives `pid: None` (not an error), so the
/// caller can retry on its next tick after a restart.
pub fn discover(
    sel: &ProcessSelector,
    cgroup: Option<&str>,
    proc_root: &Path,
    cgroup_root: &Path,
) -> Result<Discovered> {
    let pid = find_pid(sel, proc_root)?;
    let cgroup = match (cgroup, pid) {
        (Some(path), _) => Some(locate_cgroup(path, cgroup_root)?),
        (None, Some(pid)) => match read_proc_cgroup(proc_root, pid)? {
            Some(pc) => resolve_cgroup(&pc, cgroup_root),
            // The process exited between finding it and reading its cgroup.
            None => None,
        },
        (None, None) => None,
    };
    Ok(Discovered { pid, cgroup })
}

fn find_pid(sel: &ProcessSelector, proc_root: &Path) -> Result<Option<u32>> {
    if let Some(pid) = sel.pid {
        return Ok(pid_alive(proc_root, pid).then_some(pid));
    }
    if let Some(file) = &sel.pid_file {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            // No pid file: the service is stopped or restarting.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading pid file", file.clone(), e)),
        };
        let pid = parse_pid_file(&text).map_err(|e| Error::BadFile {
            path: file.clone(),
            reason: e.to_string(),
        })?;
        return Ok(pid_alive(proc_root, pid).then_some(pid));
    }
    if let Some(re) = &sel.process {
        return find_process(proc_root, re);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_cgroup_lines() {
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            (
                "0::/system.slice/leakyapp.service\n",
                Some("/system.slice/leakyapp.service"),
                None,
            ),
            (
                "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n",
                Some("/"),
                Some("/process_api/abc"),
            ),
            ("5:cpu,memory:/a:b\n", None, Some("/a:b")),
            ("", None, None),
        ];
        for (text, v2, v1) in cases {
            let pc = parse_proc_cgroup(text).unwrap();
            assert_eq!(pc.v2.as_deref(), *v2, "{text:?}");
            assert_eq!(pc.v1_memory.as_deref(), *v1, "{text:?}");
        }
    }

    #[test]
    fn proc_cgroup_errors_name_the_line() {
        let cases = [
            ("0::/\nbogus\n", "line 2"),
            ("x:memory:/\n", "not a number"),
            ("4:memory:relative\n", "does not start with /"),
        ];
        for (text, want) in cases {
            let err = parse_proc_cgroup(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn hierarchy_paths_never_climb_out() {
        let cases: &[(&str, Option<&str>)] = &[
            ("/", Some("")),
            (
                "/system.slice/leakyapp.service",
                Some("system.slice/leakyapp.service"),
            ),
            (
                "/kubepods/burstable/pod8c0e/0123abcd",
                Some("kubepods/burstable/pod8c0e/0123abcd"),
            ),
            ("/a..b/..c", Some("a..b/..c")),
            // containerd and CRI-O on cgroup v2: another pod's process, read in
            // leakwatch's own container's cgroup namespace.
            (
                "/../../kubepods-burstable.slice/kubepods-burstable-pod8c0e.slice/cri-containerd-0123.scope",
                None,
            ),
            ("/..", None),
            ("/../kubepods/burstable/pod8c0e/0123abcd", None),
            ("/kubepods/../../etc", None),
        ];
        for (path, want) in cases {
            assert_eq!(hierarchy_relative(path), *want, "{path:?}");
        }
    }

    /// A v1 memory hierarchy with one kubelet-shaped container cgroup.
    fn v1_tree() -> (tempfile::TempDir, &'static str) {
        let root = tempfile::tempdir().unwrap();
        let path = "/kubepods/burstable/pod8c0e/0123abcd";
        let dir = root.path().join("memory").join(&path[1..]);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("memory.usage_in_bytes"), "4096\n").unwrap();
        (root, path)
    }

    #[test]
    fn paths_out_of_the_namespace_are_not_joined() {
        let (root, path) = v1_tree();
        let host = ProcCgroup {
            v2: Some("/".into()),
            v1_memory: Some(path.into()),
        };
        let loc = resolve_cgroup(&host, root.path()).unwrap();
        assert_eq!(loc.dir, root.path().join("memory").join(&path[1..]));
        // The same process read from a cgroup namespace one level below its pod's
        // parent: no location at all, never the hierarchy's root or a sibling.
        for nested in ["/../kubepods/burstable/pod8c0e/0123abcd", "/.."] {
            let pc = ProcCgroup {
                v2: Some("/../..".into()),
                v1_memory: Some(nested.into()),
            };
            assert_eq!(resolve_cgroup(&pc, root.path()), None, "{nested}");
        }
        let err = locate_cgroup("/../kubepods", root.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("climbs out of the hierarchy"), "{err}");
        assert!(locate_cgroup(path, root.path()).is_ok());
    }

    #[test]
    fn a_fixture_proc_tree_is_read_as_is() {
        let (root, path) = v1_tree();
        let proc_root = tempfile::tempdir().unwrap();
        let dir = proc_root.path().join("4242");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cgroup"), format!("4:memory:{path}\n0::/\n")).unwrap();
        assert!(matches!(cgroup_view(proc_root.path()), CgroupView::Own));
        let pc = read_proc_cgroup(proc_root.path(), 4242).unwrap().unwrap();
        assert_eq!(pc.v1_memory.as_deref(), Some(path));
        assert_eq!(read_proc_cgroup(proc_root.path(), 4243).unwrap(), None);
        let sel = ProcessSelector {
            pid: Some(4242),
            ..ProcessSelector::default()
        };
        let d = discover(&sel, None, proc_root.path(), root.path()).unwrap();
        assert_eq!(d.cgroup.map(|c| c.path), Some(path.to_string()));
    }

    #[test]
    fn this_process_reads_its_own_cgroup() {
        // The tests run in the host's cgroup namespace (the initial one, or PID 1's).
        assert!(
            matches!(cgroup_view(Path::new("/proc")), CgroupView::Own),
            "{:?}",
            cgroup_view(Path::new("/proc"))
        );
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let pc = read_proc_cgroup(Path::new("/proc"), std::process::id())
            .unwrap()
            .unwrap();
        assert_eq!(pc, parse_proc_cgroup(&own).unwrap());
    }

    #[test]
    fn unplaced_says_what_is_missing() {
        use std::io::{Error as IoError, ErrorKind};
        let denied = || IoError::from(ErrorKind::PermissionDenied);
        let cases = [
            (
                Unplaced::InitNamespace {
                    file: "/proc/1/ns/cgroup".into(),
                    source: denied(),
                },
                "reading /proc/1/ns/cgroup: permission denied (needs CAP_SYS_PTRACE)",
            ),
            (
                Unplaced::Enter {
                    step: EnterStep::Open,
                    source: denied(),
                },
                "opening PID 1's ns/cgroup: permission denied (needs CAP_SYS_PTRACE)",
            ),
            (
                Unplaced::Enter {
                    step: EnterStep::Enter,
                    source: IoError::from(nix::errno::Errno::EPERM),
                },
                "setns: Operation not permitted (os error 1) (needs CAP_SYS_ADMIN)",
            ),
            (
                Unplaced::Thread(IoError::other("no threads")),
                "cannot start a thread",
            ),
        ];
        for (why, want) in cases {
            let text = why.to_string();
            assert!(text.contains(want), "{text}");
        }
    }

    #[test]
    fn pid_files() {
        assert_eq!(parse_pid_file(" 1234\n").unwrap(), 1234);
        for bad in ["", "0", "-5", "12 13", "abc"] {
            assert!(parse_pid_file(bad).is_err(), "{bad:?}");
        }
    }
}
