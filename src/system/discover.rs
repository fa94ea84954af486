//! Finding a target's process (by pid, pid file or cmdline regex) and its memory cgroup
//! on cgroup v2, v1 and hybrid hosts.

use std::path::{Path, PathBuf};

use regex::Regex;

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

/// `root` joined with a hierarchy path (which starts with `/` and must not replace `root`).
fn join_hierarchy(root: &Path, path: &str) -> PathBuf {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
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
    pc.v1_memory.as_ref().map(|path| CgroupLocation {
        version: CgroupVersion::V1,
        path: path.clone(),
        dir: join_hierarchy(&cgroup_root.join("memory"), path),
    })
}

fn v2_location(path: &str, cgroup_root: &Path) -> Option<CgroupLocation> {
    [cgroup_root.to_path_buf(), cgroup_root.join("unified")]
        .into_iter()
        .map(|base| join_hierarchy(&base, path))
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
    if let Some(loc) = v2_location(&path, cgroup_root) {
        return Ok(loc);
    }
    let v1 = join_hierarchy(&cgroup_root.join("memory"), &path);
    if v1.join("memory.usage_in_bytes").is_file() {
        return Ok(CgroupLocation {
            version: CgroupVersion::V1,
            path,
            dir: v1,
        });
    }
    Err(Error::BadFile {
        path: join_hierarchy(cgroup_root, &path),
        reason: format!(
            "cgroup {path}: no memory.current (v2, also looked under unified/) and no \
             memory.usage_in_bytes under {} (v1); check the path and system.cgroup_root",
            v1.display()
        ),
    })
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
        (None, Some(pid)) => {
            let file = proc_root.join(pid.to_string()).join("cgroup");
            match std::fs::read_to_string(&file) {
                Ok(text) => {
                    let pc = parse_proc_cgroup(&text).map_err(|e| Error::BadFile {
                        path: file.clone(),
                        reason: e.to_string(),
                    })?;
                    resolve_cgroup(&pc, cgroup_root)
                }
                // The process exited between finding it and reading its cgroup.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(Error::io("reading", file, e)),
            }
        }
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
    fn pid_files() {
        assert_eq!(parse_pid_file(" 1234\n").unwrap(), 1234);
        for bad in ["", "0", "-5", "12 13", "abc"] {
            assert!(parse_pid_file(bad).is_err(), "{bad:?}");
        }
    }
}
