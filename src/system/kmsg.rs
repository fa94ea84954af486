//! The kernel's OOM-kill reports: parsing `/dev/kmsg` records and `dmesg` lines,
//! merging the two lines of one kill, a follower thread, and attribution to targets.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, LazyLock, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use regex::Regex;

/// One kernel log line with what its prefix told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelLine {
    /// `/dev/kmsg` sequence number.
    pub seq: Option<u64>,
    /// Microseconds since boot (CLOCK_MONOTONIC), from either prefix.
    pub monotonic_usec: Option<u64>,
    pub message: String,
}

/// `/dev/kmsg` prefix: `PRI,SEQ,USEC,FLAGS[,...];`.
static KMSG_PREFIX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\d+),(\d+),(\d+),[^;]*;").expect("static regex"));
/// `dmesg` prefix: `[  SECONDS.MICROS] `.
static DMESG_PREFIX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\[\s*(\d+)\.(\d{1,9})\]\s?").expect("static regex"));
/// The kill itself, with the victim's sizes (older kernels lack `shmem-rss`).
static KILLED_WITH_SIZES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"Killed process (\d+) \((.*)\) total-vm:(\d+)kB, anon-rss:(\d+)kB, file-rss:(\d+)kB(?:, shmem-rss:(\d+)kB)?",
    )
    .expect("static regex")
});
/// The kill without sizes (a shape no kernel since 4.x prints, kept as a fallback).
static KILLED_BARE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"Killed process (\d+) \(([^)]*)\)").expect("static regex"));

/// Splits one `/dev/kmsg` record or one `dmesg` line into prefix fields and message.
/// A kmsg record's continuation lines (` KEY=value` dictionary) and empty input give
/// `None`; a line with neither prefix is kept whole (e.g. `journalctl -k` output).
pub fn parse_kmsg_record(line: &str) -> Option<KernelLine> {
    let first = line.lines().next()?;
    if first.trim().is_empty() || first.starts_with(' ') {
        return None;
    }
    if let Some(c) = KMSG_PREFIX.captures(first) {
        let end = c.get(0).map_or(0, |m| m.end());
        return Some(KernelLine {
            seq: c.get(2).and_then(|m| m.as_str().parse().ok()),
            monotonic_usec: c.get(3).and_then(|m| m.as_str().parse().ok()),
            message: first.get(end..).unwrap_or_default().to_string(),
        });
    }
    if let Some(c) = DMESG_PREFIX.captures(first) {
        let end = c.get(0).map_or(0, |m| m.end());
        let secs: Option<u64> = c.get(1).and_then(|m| m.as_str().parse().ok());
        let frac = c.get(2).map_or("", |m| m.as_str());
        // Scale the fraction to microseconds whatever its number of digits.
        let micros = format!("{frac:0<6}")
            .get(..6)
            .and_then(|s| s.parse::<u64>().ok());
        let usec = secs
            .zip(micros)
            .and_then(|(s, us)| s.checked_mul(1_000_000)?.checked_add(us));
        return Some(KernelLine {
            seq: None,
            monotonic_usec: usec,
            message: first.get(end..).unwrap_or_default().to_string(),
        });
    }
    Some(KernelLine {
        seq: None,
        monotonic_usec: None,
        message: first.to_string(),
    })
}

/// The `oom-kill:` summary line: which task the OOM killer chose, and in which memcg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomSelected {
    pub constraint: Option<String>,
    pub oom_memcg: Option<String>,
    pub task_memcg: Option<String>,
    pub task: String,
    pub pid: u32,
    pub uid: Option<u32>,
}

/// The `... Killed process PID (name) total-vm:...kB, anon-rss:...kB, ...` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomKilled {
    pub pid: u32,
    pub task: String,
    pub total_vm_kb: Option<u64>,
    pub anon_rss_kb: Option<u64>,
    pub file_rss_kb: Option<u64>,
    pub shmem_rss_kb: Option<u64>,
}

/// One of the two lines the kernel logs per OOM kill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OomEvent {
    Selected(OomSelected),
    Killed(OomKilled),
}

/// Recognises the two OOM-kill lines in a kernel message; anything else is `None`.
pub fn parse_oom(message: &str) -> Option<OomEvent> {
    if let Some(idx) = message.find("oom-kill:") {
        return parse_selected(message.get(idx + "oom-kill:".len()..)?).map(OomEvent::Selected);
    }
    let c = KILLED_WITH_SIZES
        .captures(message)
        .or_else(|| KILLED_BARE.captures(message))?;
    let num = |i: usize| c.get(i).and_then(|m| m.as_str().parse::<u64>().ok());
    Some(OomEvent::Killed(OomKilled {
        pid: c.get(1)?.as_str().parse().ok()?,
        task: c.get(2)?.as_str().to_string(),
        total_vm_kb: num(3),
        anon_rss_kb: num(4),
        file_rss_kb: num(5),
        shmem_rss_kb: num(6),
    }))
}

/// `constraint=...,nodemask=...,cpuset=...,mems_allowed=...,oom_memcg=...,task_memcg=...,
/// task=...,pid=...,uid=...`. Values may hold commas (`mems_allowed=0,2`, odd cgroup
/// names), so a piece without `=` continues the previous value.
fn parse_selected(rest: &str) -> Option<OomSelected> {
    let mut fields: Vec<(&str, String)> = Vec::new();
    for piece in rest.trim().split(',') {
        match piece.split_once('=') {
            Some((k, v))
                if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                fields.push((k, v.to_string()));
            }
            _ => {
                let (_, last) = fields.last_mut()?;
                last.push(',');
                last.push_str(piece);
            }
        }
    }
    let get = |key: &str| {
        fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    };
    Some(OomSelected {
        constraint: get("constraint"),
        oom_memcg: get("oom_memcg"),
        task_memcg: get("task_memcg"),
        task: get("task")?,
        pid: get("pid")?.parse().ok()?,
        uid: get("uid").and_then(|u| u.parse().ok()),
    })
}

/// One OOM kill, from the two lines merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomKill {
    pub pid: u32,
    pub task: String,
    /// The victim's memory cgroup (v2 path, or v1 memory-hierarchy path).
    pub task_memcg: Option<String>,
    /// The cgroup whose limit was hit (an ancestor of, or equal to, `task_memcg`).
    pub oom_memcg: Option<String>,
    pub anon_rss_bytes: Option<u64>,
    /// When the kernel logged the kill, in microseconds since boot.
    pub monotonic_usec: Option<u64>,
}

/// Joins each `oom-kill:` line with the `Killed process` line that follows it. A kill is
/// emitted on its `Killed process` line; a summary line that is never followed by one
/// (superseded by the next summary, or flushed at the end) still counts as a kill.
#[derive(Debug, Default)]
pub struct OomMerger {
    pending: Option<(OomSelected, Option<u64>)>,
}

impl OomMerger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one kernel line; returns the kills it completes (zero, one or two).
    pub fn push(&mut self, line: &KernelLine) -> Vec<OomKill> {
        let mut out = Vec::new();
        match parse_oom(&line.message) {
            None => {}
            Some(OomEvent::Selected(sel)) => {
                out.extend(self.flush());
                self.pending = Some((sel, line.monotonic_usec));
            }
            Some(OomEvent::Killed(k)) => {
                let sel = match self.pending.take() {
                    Some((sel, _)) if sel.pid == k.pid => Some(sel),
                    Some(other) => {
                        self.pending = Some(other);
                        out.extend(self.flush());
                        None
                    }
                    None => None,
                };
                out.push(OomKill {
                    pid: k.pid,
                    task: k.task,
                    task_memcg: sel.as_ref().and_then(|s| s.task_memcg.clone()),
                    oom_memcg: sel.and_then(|s| s.oom_memcg),
                    anon_rss_bytes: k.anon_rss_kb.map(|kb| kb.saturating_mul(1024)),
                    monotonic_usec: line.monotonic_usec,
                });
            }
        }
        out
    }

    /// A summary line still waiting for its `Killed process` line, as a kill.
    pub fn flush(&mut self) -> Option<OomKill> {
        let (sel, usec) = self.pending.take()?;
        Some(OomKill {
            pid: sel.pid,
            task: sel.task,
            task_memcg: sel.task_memcg,
            oom_memcg: sel.oom_memcg,
            anon_rss_bytes: None,
            monotonic_usec: usec,
        })
    }
}

/// Every OOM kill in a block of `dmesg` lines or kmsg records.
pub fn parse_oom_log(text: &str) -> Vec<OomKill> {
    let mut m = OomMerger::new();
    let mut out: Vec<OomKill> = text
        .lines()
        .filter_map(parse_kmsg_record)
        .flat_map(|l| m.push(&l))
        .collect();
    out.extend(m.flush());
    out
}

fn norm(path: &str) -> &str {
    let t = path.trim_end_matches('/');
    if t.is_empty() { "/" } else { t }
}

/// Which target a kill belongs to. Targets are `(name, pid, cgroup path)`. In order:
/// the victim's memcg equals a target's cgroup; the victim's pid is a target's pid; the
/// victim's memcg is inside the cgroup of a target whose process is not known (the
/// deepest such target: a target watched by its cgroup alone, such as a pod's). The
/// root cgroup `/` never matches by path: everything is inside it.
///
/// A target whose pid is known owns only kills of that pid or of its own cgroup: a kill
/// in a cgroup below it is another process's (a pod or a unit nested under the cgroup a
/// service runs in, as on a v1 host where processes and child cgroups share a node),
/// and giving it to the service would page an OOM kill that never touched it.
pub fn attribute<'a>(
    kill: &OomKill,
    targets: &[(&'a str, Option<u32>, Option<&str>)],
) -> Option<&'a str> {
    let memcg = kill.task_memcg.as_deref().map(norm);
    if let Some(m) = memcg
        && m != "/"
        && let Some((name, _, _)) = targets.iter().find(|(_, _, cg)| cg.map(norm) == Some(m))
    {
        return Some(name);
    }
    if let Some((name, _, _)) = targets.iter().find(|(_, pid, _)| *pid == Some(kill.pid)) {
        return Some(name);
    }
    let m = memcg?;
    targets
        .iter()
        .filter(|(_, pid, _)| pid.is_none())
        .filter_map(|(name, _, cg)| {
            let cg = norm((*cg)?);
            let inside = cg != "/" && m.strip_prefix(cg).is_some_and(|rest| rest.starts_with('/'));
            inside.then_some((cg.len(), *name))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, name)| name)
}

/// Where kernel log lines come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelLogSource {
    /// `/dev/kmsg`: one record per `read()`.
    Kmsg(PathBuf),
    /// A file of `dmesg`-style (or kmsg-style) lines, followed like `tail -f`.
    File(PathBuf),
}

impl KernelLogSource {
    pub fn path(&self) -> &Path {
        match self {
            KernelLogSource::Kmsg(p) | KernelLogSource::File(p) => p,
        }
    }
}

/// How the follower starts and paces itself.
#[derive(Debug, Clone, Copy)]
pub struct KernelLogOptions {
    /// Read what is already there (tests, replays) instead of only new lines.
    pub from_start: bool,
    /// How often a file is checked for new lines at its end.
    pub poll_interval: Duration,
    /// How long to wait before reopening a log that could not be read.
    pub retry_interval: Duration,
}

impl Default for KernelLogOptions {
    fn default() -> Self {
        Self {
            from_start: false,
            poll_interval: Duration::from_millis(250),
            retry_interval: Duration::from_secs(10),
        }
    }
}

// `Shared::state`: 0 (the default) = not tried yet.
const READABLE: u8 = 1;
const UNREADABLE: u8 = 2;

#[derive(Debug, Default)]
struct Shared {
    state: AtomicU8,
    error: Mutex<Option<String>>,
    stop: AtomicBool,
}

impl Shared {
    fn set_readable(&self, source: &Path) {
        if self.state.swap(READABLE, Ordering::SeqCst) == UNREADABLE {
            tracing::info!(source = %source.display(), "kernel log readable again");
        }
        if let Ok(mut e) = self.error.lock() {
            *e = None;
        }
    }

    /// Records the failure; logs only on the transition, so a log that stays
    /// unreadable is reported once.
    fn set_unreadable(&self, source: &Path, error: String) {
        if self.state.swap(UNREADABLE, Ordering::SeqCst) != UNREADABLE {
            tracing::warn!(source = %source.display(), %error, "kernel log not readable: OOM kills will not be seen");
        }
        if let Ok(mut e) = self.error.lock() {
            *e = Some(error);
        }
    }
}

/// The follower thread's handle: its health for `leakwatch_kernel_log_readable`.
#[derive(Debug)]
pub struct KernelLogReader {
    shared: Arc<Shared>,
    source: KernelLogSource,
    handle: Option<JoinHandle<()>>,
}

impl KernelLogReader {
    /// `None` until the first open was tried, then whether the log is being read.
    pub fn readable(&self) -> Option<bool> {
        match self.shared.state.load(Ordering::SeqCst) {
            READABLE => Some(true),
            UNREADABLE => Some(false),
            _ => None,
        }
    }

    /// Why the log is not readable, while it is not.
    pub fn last_error(&self) -> Option<String> {
        self.shared.error.lock().ok().and_then(|e| e.clone())
    }

    pub fn source(&self) -> &KernelLogSource {
        &self.source
    }

    /// Asks the thread to end. A file follower ends within one poll interval; a
    /// `/dev/kmsg` reader blocked in `read()` ends after the next kernel message.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }

    /// Whether the thread has ended (stopped, or its receiver was dropped).
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

/// Starts a std thread that follows the kernel log and sends each OOM kill on `tx`.
/// It ends when `tx`'s receiver is dropped or [`KernelLogReader::stop`] is called; it
/// never ends on read errors (it marks the log unreadable and retries).
pub fn spawn_kernel_log_reader(
    source: KernelLogSource,
    opts: KernelLogOptions,
    tx: Sender<OomKill>,
) -> std::io::Result<KernelLogReader> {
    let shared = Arc::new(Shared::default());
    let (s, src) = (shared.clone(), source.clone());
    let handle = std::thread::Builder::new()
        .name("leakwatch-kmsg".into())
        .spawn(move || match src {
            KernelLogSource::Kmsg(path) => follow_kmsg(&path, opts, &s, &tx),
            KernelLogSource::File(path) => follow_file(&path, opts, &s, &tx),
        })?;
    Ok(KernelLogReader {
        shared,
        source,
        handle: Some(handle),
    })
}

/// Feeds one line; `false` when the receiver is gone and the thread should end.
fn deliver(line: &str, merger: &mut OomMerger, tx: &Sender<OomKill>) -> bool {
    let Some(kl) = parse_kmsg_record(line) else {
        return true;
    };
    merger.push(&kl).into_iter().all(|k| tx.send(k).is_ok())
}

fn sleep_unless_stopped(shared: &Shared, d: Duration) -> bool {
    let step = Duration::from_millis(50);
    let mut left = d;
    while !left.is_zero() {
        if shared.stop.load(Ordering::SeqCst) {
            return false;
        }
        let s = left.min(step);
        std::thread::sleep(s);
        left = left.saturating_sub(s);
    }
    !shared.stop.load(Ordering::SeqCst)
}

fn follow_kmsg(path: &Path, opts: KernelLogOptions, shared: &Shared, tx: &Sender<OomKill>) {
    let mut merger = OomMerger::new();
    // A record is at most CONSOLE_EXT_LOG_MAX (8 KiB); a smaller buffer gets EINVAL.
    let mut buf = vec![0u8; 16 * 1024];
    let mut first_open = true;
    while !shared.stop.load(Ordering::SeqCst) {
        let opened = File::open(path).and_then(|mut f| {
            // Only kills from now on count; a reopen after an error also starts at the
            // end so no kill is delivered twice.
            if !(first_open && opts.from_start) {
                f.seek(SeekFrom::End(0))?;
            }
            Ok(f)
        });
        first_open = false;
        let mut f = match opened {
            Ok(f) => f,
            Err(e) => {
                shared.set_unreadable(path, format!("opening {}: {e}", path.display()));
                if !sleep_unless_stopped(shared, opts.retry_interval) {
                    return;
                }
                continue;
            }
        };
        shared.set_readable(path);
        loop {
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            match f.read(&mut buf) {
                Ok(0) => {
                    // Not /dev/kmsg after all (a plain file): poll like a file.
                    if !sleep_unless_stopped(shared, opts.poll_interval) {
                        return;
                    }
                }
                Ok(n) => {
                    let rec = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
                    if !deliver(&rec, &mut merger, tx) {
                        return;
                    }
                }
                // The ring buffer overwrote records we had not read yet: the next read
                // returns the oldest one still there.
                Err(e) if e.kind() == ErrorKind::BrokenPipe => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    shared.set_unreadable(path, format!("reading {}: {e}", path.display()));
                    if !sleep_unless_stopped(shared, opts.retry_interval) {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

fn follow_file(path: &Path, opts: KernelLogOptions, shared: &Shared, tx: &Sender<OomKill>) {
    use std::os::unix::fs::MetadataExt;
    let mut merger = OomMerger::new();
    let mut first_open = true;
    let mut buf = vec![0u8; 64 * 1024];
    while !shared.stop.load(Ordering::SeqCst) {
        // Only the first open may start at the end: a file that appears later, or a
        // rotated one, was written after we started, so all of it is new.
        let at_end = first_open && !opts.from_start;
        first_open = false;
        let opened = File::open(path).and_then(|mut f| {
            let ino = f.metadata()?.ino();
            let pos = if at_end { f.seek(SeekFrom::End(0))? } else { 0 };
            Ok((f, ino, pos))
        });
        let (mut f, ino, mut pos) = match opened {
            Ok(v) => v,
            Err(e) => {
                shared.set_unreadable(path, format!("opening {}: {e}", path.display()));
                if !sleep_unless_stopped(shared, opts.retry_interval) {
                    return;
                }
                continue;
            }
        };
        shared.set_readable(path);
        let mut partial: Vec<u8> = Vec::new();
        loop {
            match f.read(&mut buf) {
                Ok(0) => {
                    // At the end: a rotated (new inode) or truncated file is reopened
                    // and read from its start.
                    let rotated = match std::fs::metadata(path) {
                        Ok(m) => m.ino() != ino || m.len() < pos,
                        Err(_) => false,
                    };
                    if rotated {
                        break;
                    }
                    if !sleep_unless_stopped(shared, opts.poll_interval) {
                        return;
                    }
                }
                Ok(n) => {
                    pos = pos.saturating_add(n as u64);
                    partial.extend_from_slice(buf.get(..n).unwrap_or_default());
                    // Whole lines only: a writer may be mid-line.
                    while let Some(nl) = partial.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = partial.drain(..=nl).collect();
                        if !deliver(&String::from_utf8_lossy(&line), &mut merger, tx) {
                            return;
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    shared.set_unreadable(path, format!("reading {}: {e}", path.display()));
                    if !sleep_unless_stopped(shared, opts.retry_interval) {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_prefixes() {
        type Want = Option<(Option<u64>, Option<u64>, &'static str)>;
        let cases: &[(&str, Want)] = &[
            (
                "6,1234,43591941,-;oom-kill:x\n SUBSYSTEM=memory\n",
                Some((Some(1234), Some(43591941), "oom-kill:x")),
            ),
            (
                "5,0,0,-,caller=T1;Linux version 6.18",
                Some((Some(0), Some(0), "Linux version 6.18")),
            ),
            (
                "[   43.591941] hello",
                Some((None, Some(43591941), "hello")),
            ),
            ("[43.5] half", Some((None, Some(43500000), "half"))),
            (
                "[12345678901.123456] big",
                Some((None, Some(12345678901123456), "big")),
            ),
            (" SUBSYSTEM=memory", None),
            ("", None),
            ("\n", None),
            ("plain message", Some((None, None, "plain message"))),
            // Truncated prefixes fall back to "no prefix", never panic.
            ("6,12", Some((None, None, "6,12"))),
            ("[  43.59", Some((None, None, "[  43.59"))),
        ];
        for (input, want) in cases {
            let got = parse_kmsg_record(input).map(|l| (l.seq, l.monotonic_usec, l.message));
            let want = want.map(|(s, u, m)| (s, u, m.to_string()));
            assert_eq!(got, want, "{input:?}");
        }
    }

    #[test]
    fn oom_lines() {
        let sel = "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,2,oom_memcg=/a,b,task_memcg=/a,b/c,task=leakyapp,pid=104,uid=0";
        let Some(OomEvent::Selected(s)) = parse_oom(sel) else {
            panic!("{sel}")
        };
        assert_eq!(s.oom_memcg.as_deref(), Some("/a,b"));
        assert_eq!(s.task_memcg.as_deref(), Some("/a,b/c"));
        assert_eq!((s.task.as_str(), s.pid, s.uid), ("leakyapp", 104, Some(0)));
        let killed = "Out of memory: Killed process 7 (we (ird)) total-vm:100kB, anon-rss:50kB, file-rss:1kB, shmem-rss:0kB, UID:0";
        let Some(OomEvent::Killed(k)) = parse_oom(killed) else {
            panic!("{killed}")
        };
        assert_eq!(
            (k.pid, k.task.as_str(), k.anon_rss_kb),
            (7, "we (ird)", Some(50))
        );
        let old = "Killed process 9 (x) total-vm:1kB, anon-rss:2kB, file-rss:3kB";
        let Some(OomEvent::Killed(k)) = parse_oom(old) else {
            panic!("{old}")
        };
        assert_eq!((k.anon_rss_kb, k.shmem_rss_kb), (Some(2), None));
        for not in [
            "oom_reaper: reaped process 104 (leakyapp), now anon-rss:0kB, file-rss:0kB, shmem-rss:5396kB",
            "oom-kill:constraint=CONSTRAINT_MEMCG,task=x",
            "oom-kill:pid=abc,task=x",
            "oom-kill:",
            "Killed process abc (x)",
            "leakyapp invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
        ] {
            assert_eq!(parse_oom(not), None, "{not}");
        }
    }

    #[test]
    fn merger_pairs_lines_by_pid() {
        let log = "\
[1.000000] oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/a,task_memcg=/a,task=x,pid=1,uid=0
[1.000100] Memory cgroup out of memory: Killed process 1 (x) total-vm:10kB, anon-rss:4kB, file-rss:0kB, shmem-rss:0kB
[2.000000] oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/b,task_memcg=/b,task=y,pid=2,uid=0
[3.000000] oom-kill:constraint=CONSTRAINT_NONE,oom_memcg=/,task_memcg=/c,task=z,pid=3,uid=0
[3.000100] Out of memory: Killed process 4 (w) total-vm:10kB, anon-rss:8kB, file-rss:0kB, shmem-rss:0kB
[4.000000] oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/d,task_memcg=/d,task=v,pid=5,uid=0
";
        let kills = parse_oom_log(log);
        let got: Vec<_> = kills
            .iter()
            .map(|k| {
                (
                    k.pid,
                    k.task_memcg.as_deref(),
                    k.anon_rss_bytes,
                    k.monotonic_usec,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (1, Some("/a"), Some(4096), Some(1_000_100)),
                (2, Some("/b"), None, Some(2_000_000)),
                (3, Some("/c"), None, Some(3_000_000)),
                (4, None, Some(8192), Some(3_000_100)),
                (5, Some("/d"), None, Some(4_000_000)),
            ]
        );
    }

    #[test]
    fn attribution_order() {
        let kill = |pid, memcg: Option<&str>| OomKill {
            pid,
            task: "t".into(),
            task_memcg: memcg.map(String::from),
            oom_memcg: None,
            anon_rss_bytes: None,
            monotonic_usec: None,
        };
        let targets: &[(&str, Option<u32>, Option<&str>)] = &[
            ("root", Some(1), Some("/")),
            ("svc", Some(10), Some("/system.slice/svc.service/")),
            ("parent", Some(20), Some("/system.slice")),
            ("nocg", Some(30), None),
            // Watched by its cgroup alone: a pod, whose containers are below it.
            ("pod", None, Some("/kubepods/burstable/podA")),
            ("session", Some(40), Some("/user.slice/session-1.scope")),
        ];
        let cases = [
            (kill(99, Some("/system.slice/svc.service")), Some("svc")),
            (kill(20, Some("/system.slice/svc.service")), Some("svc")),
            (kill(30, Some("/other")), Some("nocg")),
            // Below a target whose process is known: another process's kill.
            (kill(99, Some("/system.slice/svc.service/child")), None),
            (kill(99, Some("/system.slice/x.service")), None),
            (
                kill(99, Some("/user.slice/session-1.scope/kubepods/podB/c1")),
                None,
            ),
            // Its own pid, wherever the kernel put it.
            (
                kill(40, Some("/user.slice/session-1.scope/sub")),
                Some("session"),
            ),
            // Below a target watched by its cgroup alone: the pod's container.
            (kill(99, Some("/kubepods/burstable/podA/c1")), Some("pod")),
            (kill(99, Some("/kubepods/burstable/podAB/c1")), None),
            (kill(99, Some("/system.slicex")), None),
            (kill(99, Some("/")), None),
            (kill(1, Some("/")), Some("root")),
            (kill(99, None), None),
        ];
        for (k, want) in cases {
            assert_eq!(attribute(&k, targets), want, "{k:?}");
        }
    }
}
