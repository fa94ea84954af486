//! The dump store: file names (`<profile>-<UTC time>-<reason>[-<n>].pb.gz`, also
//! `leakwatch watch`'s `baseline`/`final` ones), the index of a target's directory,
//! retention, and atomic writes (a streamed dump, or bytes in memory).
//!
//! A dump is streamed into `.tmp-*` in the same directory, checked (gzip magic while
//! streaming, then a full CRC-checked decompression), fsynced, renamed and the
//! directory fsynced: a crash, timeout, size overrun or broken connection never
//! leaves a partial file under a dump name. Temporary files are removed on failure
//! (also when the dumping task is cancelled) and stale ones at start.
//!
//! Dumps hold a service's memory contents: files are 0600, directories made 0700, and
//! a target's directory that is a symbolic link is refused, never followed to write,
//! index or delete (leakwatch often runs as root; `dumps.dir` may be writable by others).

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::config::Retention;
use super::profile::{ProfileType, Reason};
use crate::error::{Error, FetchReason, Result};
use crate::scrape::{Fetcher, RequestAuth};
use crate::units::{format_utc, parse_utc};

/// A dump must decompress to at most this many bytes to pass validation (a gzip bomb
/// would otherwise keep a core busy; real heap profiles are a few MiB uncompressed).
const MAX_DECOMPRESSED: u64 = 1 << 30;

// ---------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------

/// One dump on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpFile {
    /// File name, e.g. `heap-20261126T093015Z-schedule.pb.gz`.
    pub name: String,
    pub target: String,
    pub profile: ProfileType,
    pub reason: Reason,
    /// Unix seconds (UTC) when the profile was requested, from the name.
    pub time: u64,
    /// 1, or n >= 2 for the n-th dump of one profile in the same second.
    pub seq: u32,
    pub size: u64,
    /// Where it is on disk (`<dir>/<target>/<name>`).
    #[serde(skip)]
    pub path: PathBuf,
}

impl DumpFile {
    /// Order of age: time, then the same-second counter.
    pub(super) fn age_key(&self) -> (u64, u32, &str) {
        (self.time, self.seq, &self.name)
    }
}

static FILE_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(heap|goroutine)-([0-9]{8}T[0-9]{6}Z)-(schedule|suspect|manual|baseline|final|pre_oom)(?:-([0-9]{1,6}))?\.pb\.gz$",
    )
    .expect("valid regex")
});

/// The file name of a dump (`seq` 1 gives no suffix).
pub fn file_name(profile: ProfileType, time: u64, reason: Reason, seq: u32) -> String {
    let suffix = if seq > 1 {
        format!("-{seq}")
    } else {
        String::new()
    };
    format!(
        "{}-{}-{}{suffix}.pb.gz",
        profile.as_str(),
        format_utc(time),
        reason.as_str()
    )
}

/// Reads a dump file name back: (profile, unix time, reason, seq). None for anything
/// else, which is how the HTTP layer refuses `..`, `/`, hidden and temporary files.
pub fn parse_file_name(name: &str) -> Option<(ProfileType, u64, Reason, u32)> {
    let c = FILE_NAME.captures(name)?;
    let profile = ProfileType::parse(c.get(1)?.as_str())?;
    let time = parse_utc(c.get(2)?.as_str())?;
    let reason = Reason::parse(c.get(3)?.as_str())?;
    let seq = match c.get(4) {
        None => 1,
        Some(m) => {
            let n: u32 = m.as_str().parse().ok()?;
            // "-1" and "-02" would be second spellings of an existing name.
            if n < 2 || m.as_str().starts_with('0') {
                return None;
            }
            n
        }
    };
    Some((profile, time, reason, seq))
}

/// Whether a target name is usable as a directory name under the dump root. The config
/// allows `[A-Za-z0-9_.:-]+`, which includes `.` and `..`.
pub(super) fn safe_dir_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0'])
}

// ---------------------------------------------------------------------------------
// Retention and the index
// ---------------------------------------------------------------------------------

/// Which files of one target and profile to delete so that at most `r.max_files` and
/// `r.max_bytes` remain: oldest first, never a pinned one. `files` in any order.
pub fn plan_prune<'a>(files: &[&'a DumpFile], pinned: &[&str], r: &Retention) -> Vec<&'a DumpFile> {
    let mut sorted: Vec<&DumpFile> = files.to_vec();
    sorted.sort_by(|a, b| a.age_key().cmp(&b.age_key()));
    let mut count = sorted.len();
    let mut bytes: u64 = sorted.iter().map(|f| f.size).fold(0, u64::saturating_add);
    let mut out = Vec::new();
    for f in sorted {
        if count <= r.max_files && bytes <= r.max_bytes.as_u64() {
            break;
        }
        if pinned.contains(&f.name.as_str()) {
            continue;
        }
        count -= 1;
        bytes = bytes.saturating_sub(f.size);
        out.push(f);
    }
    out
}

/// One file of a target's directory in the manager's index.
#[derive(Debug)]
pub(super) struct IndexedFile {
    pub(super) file: DumpFile,
    /// Written by this process (preferred as the base of a pair).
    pub(super) this_run: bool,
}

/// Mode of dump files and of the directories leakwatch makes for them.
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

fn symlinked(dir: &Path) -> Error {
    Error::BadFile {
        path: dir.to_path_buf(),
        reason: "is a symbolic link: leakwatch does not follow it to write or delete dumps \
                 (remove it; dumps.dir itself may be a link)"
            .to_string(),
    }
}

/// Makes a target's dump directory (0700, parents too) when missing; refuses one that
/// is a symbolic link or not a directory.
pub fn ensure_dump_dir(dir: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)
                .map_err(|e| Error::io("creating dump directory", dir, e))?;
            // Made by us, or planted in between: look again.
            std::fs::symlink_metadata(dir)
        }
        other => other,
    }
    .map_err(|e| Error::io("reading", dir, e))?;
    if meta.file_type().is_symlink() {
        Err(symlinked(dir))
    } else if !meta.is_dir() {
        Err(Error::BadFile {
            path: dir.to_path_buf(),
            reason: "is not a directory: cannot hold dumps".to_string(),
        })
    } else {
        Ok(())
    }
}

/// Indexes the dumps already in a target's directory and removes stale temporary
/// files left by a crash. Symlinks and unknown names are neither indexed nor touched,
/// nor is anything in a directory that is itself a symbolic link.
pub(super) fn scan_dir(dir: &Path, target: &str) -> Vec<IndexedFile> {
    if is_symlink(dir) {
        tracing::error!(target_name = %target, error = %symlinked(dir), "dump directory refused");
        return Vec::new();
    }
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "reading the dump directory failed");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for de in rd.flatten() {
        let Some(name) = de.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let path = de.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if name.starts_with(".tmp-") {
            if meta.is_file() {
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "removed a stale temporary dump file")
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "removing a stale temporary dump file failed")
                    }
                }
            }
            continue;
        }
        if !meta.is_file() {
            continue;
        }
        if let Some((profile, time, reason, seq)) = parse_file_name(&name) {
            out.push(IndexedFile {
                file: DumpFile {
                    name,
                    target: target.to_string(),
                    profile,
                    reason,
                    time,
                    seq,
                    size: meta.len(),
                    path,
                },
                this_run: false,
            });
        }
    }
    out.sort_by(|a, b| a.file.age_key().cmp(&b.file.age_key()));
    out
}

pub(super) fn remove_files(paths: Vec<PathBuf>, target: &str) {
    for p in paths {
        if p.parent().is_some_and(is_symlink) {
            tracing::error!(target_name = %target, file = %p.display(), "not pruned: its directory became a symbolic link");
            continue;
        }
        match std::fs::remove_file(&p) {
            Ok(()) => {
                tracing::info!(target_name = %target, file = %p.display(), "pruned dump (retention)")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(target_name = %target, file = %p.display(), error = %e, "pruning dump failed")
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Atomic writes
// ---------------------------------------------------------------------------------

/// A temporary file removed when dropped unless disarmed: failures, timeouts and
/// cancelled tasks all leave nothing behind.
pub(super) struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    fn disarm(&mut self) {
        self.path = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.path.take()
            && let Err(e) = std::fs::remove_file(&p)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %p.display(), error = %e, "removing a temporary dump file failed");
        }
    }
}

/// GETs `url` and streams the body into `file`, failing as soon as it passes
/// `max_bytes` or does not start with the gzip magic. Returns the byte count.
async fn stream_body(
    fetcher: &Fetcher,
    url: &str,
    auth: &RequestAuth,
    file: &mut tokio::fs::File,
    tmp: &Path,
    max_bytes: u64,
) -> Result<u64> {
    let mut resp = fetcher.get_streamed(url, max_bytes, auth).await?;
    let mut written: u64 = 0;
    let mut head: Vec<u8> = Vec::with_capacity(2);
    while let Some(chunk) = resp.chunk().await? {
        written = written.saturating_add(chunk.len() as u64);
        if head.len() < 2 {
            let need = 2 - head.len();
            head.extend(chunk.iter().take(need));
            if head.len() == 2 && head != [0x1f, 0x8b] {
                return Err(not_gzip(format!(
                    "body starts with {:02x} {:02x}, not the gzip magic 1f 8b (is this a pprof endpoint?)",
                    head[0], head[1]
                )));
            }
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| Error::io("writing", tmp, e))?;
    }
    if head.len() < 2 {
        return Err(not_gzip(format!("body is only {written} bytes")));
    }
    Ok(written)
}

fn not_gzip(reason: String) -> Error {
    Error::NotFormat {
        format: "gzip-compressed pprof profile",
        reason,
    }
}

/// Decompresses the whole file (checking the gzip CRC and length) without keeping it.
fn verify_gzip(path: &Path) -> Result<()> {
    let f = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    use crate::files::{Gunzip, gunzip_capped_into};
    match gunzip_capped_into(
        std::io::BufReader::new(f),
        MAX_DECOMPRESSED,
        &mut std::io::sink(),
    ) {
        Ok(_) => Ok(()),
        Err(Gunzip::Io(e)) => Err(not_gzip(format!("truncated or corrupt gzip stream: {e}"))),
        Err(Gunzip::OverCap) => Err(not_gzip(format!(
            "decompresses to more than {MAX_DECOMPRESSED} bytes"
        ))),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing directory", dir, e))
}

/// A fresh temporary name next to `name` in `dir`; `.tmp-*` files are never indexed
/// and are removed at start.
fn temp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".tmp-{name}-{:08x}", fastrand::u32(..)))
}

/// Writes `bytes` to `path` (0600) through a temporary file in the same directory and
/// a rename, so a reader never sees half a file (`leakwatch watch`'s dumps and baseline
/// file; a dump's directory goes through [`ensure_dump_dir`] first).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    let tmp = temp_path(dir, &name);
    let mut guard = TempFile {
        path: Some(tmp.clone()),
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    guard.disarm();
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Fetches `url` into `<dir>/<name>` atomically. Returns the size written.
pub(super) async fn write_dump(
    fetcher: &Fetcher,
    url: &str,
    auth: &RequestAuth,
    dir: &Path,
    name: &str,
    max_bytes: u64,
    timeout: Duration,
) -> Result<u64> {
    ensure_dump_dir(dir)?;
    let tmp = temp_path(dir, name);
    let mut guard = TempFile {
        path: Some(tmp.clone()),
    };
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&tmp)
        .await
        .map_err(|e| Error::io("creating", &tmp, e))?;
    let size = match tokio::time::timeout(
        timeout,
        stream_body(fetcher, url, auth, &mut file, &tmp, max_bytes),
    )
    .await
    {
        Ok(r) => r?,
        Err(_) => {
            return Err(crate::scrape::fetch_error(
                url,
                FetchReason::Timeout,
                format!("no complete dump within {timeout:?}"),
            ));
        }
    };
    file.flush()
        .await
        .map_err(|e| Error::io("writing", &tmp, e))?;
    file.sync_all()
        .await
        .map_err(|e| Error::io("syncing", &tmp, e))?;
    drop(file);
    let final_path = dir.join(name);
    let dir_owned = dir.to_path_buf();
    let tmp_owned = tmp.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        verify_gzip(&tmp_owned)?;
        std::fs::rename(&tmp_owned, &final_path)
            .map_err(|e| Error::io("renaming into place", &final_path, e))?;
        sync_dir(&dir_owned)
    })
    .await
    .map_err(|e| Error::io("finishing", &tmp, std::io::Error::other(e.to_string())))??;
    guard.disarm();
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::ByteSize;

    #[test]
    fn dump_dirs_are_private_and_never_links() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tmp.path().join("root/svc");
        ensure_dump_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("heap-20260101T000000Z-final.pb.gz");
        write_atomically(&file, b"x").unwrap();
        assert_eq!(mode(&file), 0o600);
        let link = tmp.path().join("root/link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let e = ensure_dump_dir(&link).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(scan_dir(&link, "link").is_empty());
        assert_eq!(scan_dir(&dir, "svc").len(), 1);
        let e = ensure_dump_dir(&file).unwrap_err().to_string();
        assert!(e.contains("not a directory"), "{e}");
    }

    #[test]
    fn file_names_round_trip_and_refuse_the_rest() {
        let t = 1_795_685_415;
        let n = file_name(ProfileType::Heap, t, Reason::Schedule, 1);
        assert_eq!(n, "heap-20261126T093015Z-schedule.pb.gz");
        assert_eq!(
            parse_file_name(&n),
            Some((ProfileType::Heap, t, Reason::Schedule, 1))
        );
        let n = file_name(ProfileType::Goroutine, t, Reason::Baseline, 3);
        assert_eq!(n, "goroutine-20261126T093015Z-baseline-3.pb.gz");
        assert_eq!(
            parse_file_name(&n),
            Some((ProfileType::Goroutine, t, Reason::Baseline, 3))
        );
        for bad in [
            "..",
            "../heap-20261126T093015Z-schedule.pb.gz",
            "/etc/passwd",
            ".tmp-heap-20261126T093015Z-schedule.pb.gz-0badf00d",
            "heap-20261126T093015Z-schedule.pb.gz/..",
            "heap-20261126T093015Z-schedule-1.pb.gz",
            "heap-20261126T093015Z-schedule-02.pb.gz",
            "heap-20261126T093015Z-other.pb.gz",
            "allocs-20261126T093015Z-schedule.pb.gz",
            "heap-20261126T093015Z-schedule.pb.gz\n",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad:?}");
        }
    }

    fn df(name: &str, size: u64) -> DumpFile {
        let (profile, time, reason, seq) = parse_file_name(name).unwrap();
        DumpFile {
            name: name.to_string(),
            target: "t".to_string(),
            profile,
            reason,
            time,
            seq,
            size,
            path: PathBuf::from(name),
        }
    }

    #[test]
    fn prune_oldest_first_sparing_pinned() {
        let files = [
            df("heap-20260101T000003Z-schedule.pb.gz", 10),
            df("heap-20260101T000000Z-baseline.pb.gz", 10),
            df("heap-20260101T000001Z-schedule.pb.gz", 10),
            df("heap-20260101T000001Z-schedule-2.pb.gz", 10),
            df("heap-20260101T000002Z-schedule.pb.gz", 10),
        ];
        let refs: Vec<&DumpFile> = files.iter().collect();
        let names = |v: Vec<&DumpFile>| v.into_iter().map(|f| f.name.clone()).collect::<Vec<_>>();
        let r = |n, b| Retention {
            max_files: n,
            max_bytes: ByteSize::b(b),
        };
        // By count, oldest first (seq breaks the tie within a second).
        assert_eq!(
            names(plan_prune(&refs, &[], &r(3, 1000))),
            [
                "heap-20260101T000000Z-baseline.pb.gz",
                "heap-20260101T000001Z-schedule.pb.gz"
            ]
        );
        // The pinned baseline is skipped; the next oldest go instead.
        assert_eq!(
            names(plan_prune(
                &refs,
                &["heap-20260101T000000Z-baseline.pb.gz"],
                &r(3, 1000)
            )),
            [
                "heap-20260101T000001Z-schedule.pb.gz",
                "heap-20260101T000001Z-schedule-2.pb.gz"
            ]
        );
        // By bytes: 50 bytes kept to 25 -> three go.
        assert_eq!(plan_prune(&refs, &[], &r(50, 25)).len(), 3);
        // Within limits: nothing.
        assert!(plan_prune(&refs, &[], &r(5, 50)).is_empty());
        // Everything pinned: nothing can go.
        let all: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert!(plan_prune(&refs, &all, &r(1, 1)).is_empty());
    }

    #[test]
    fn unsafe_target_names_get_no_directory() {
        for (name, ok) in [
            ("orders", true),
            ("127.0.0.1:6060", true),
            ("..", false),
            (".", false),
            (".hidden", false),
        ] {
            assert_eq!(safe_dir_name(name), ok, "{name}");
        }
    }
}
