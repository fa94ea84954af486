//! Profile dumps: the binary heap and goroutine profiles saved to disk as evidence
//! for the fix — on a schedule, as a `baseline` + `suspect` pair when a leak is
//! suspected (ready for `go tool pprof -base`), or on request — written atomically,
//! pruned by retention, counted in metrics and served under `/dumps/`.
//!
//! Layout: `<dir>/<target>/<profile>-<UTC time>-<reason>[-<n>].pb.gz`, e.g.
//! `dumps/orders/heap-20261126T093015Z-schedule.pb.gz`. `-<n>` (n >= 2) marks the
//! n-th dump of one profile within the same second, so names sort by age. The file is
//! exactly what the service served at `/debug/pprof/heap` or `/debug/pprof/goroutine`
//! (a gzipped protobuf; Go sends no `Content-Encoding`, so nothing is decoded).
//!
//! A dump is streamed into `.tmp-*` in the same directory, checked (gzip magic while
//! streaming, then a full CRC-checked decompression), fsynced, renamed and the
//! directory fsynced: a crash, timeout, size overrun or broken connection never
//! leaves a partial file under a dump name. Temporary files are removed on failure
//! (also when the dumping task is cancelled) and stale ones at start.
//!
//! Retention applies per target and profile type: at most `max_files` files and
//! `max_bytes` bytes, oldest pruned first. Never pruned: the base and the fresh file
//! of the target's latest suspect pair, and this run's first-contact baseline.
//!
//! This module has its own small streaming GET (reqwest, per-request timeout, size cap
//! checked while streaming) rather than the one in [`crate::scrape`]: the scraper
//! buffers bodies in memory to parse them, dumps go straight to disk.

use std::collections::{BTreeMap, HashMap};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use bytesize::ByteSize;
use futures_util::StreamExt;
use regex::Regex;

use crate::units::{
    de_duration, de_every, de_some_duration, de_some_every, format_utc, parse_utc, unix_secs,
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, FetchReason, Result};
use crate::metrics::Sink;

/// How long to wait before retrying a failed first-contact baseline dump.
const BASELINE_RETRY: Duration = Duration::from_secs(30);
/// A dump must decompress to at most this many bytes to pass validation (a gzip bomb
/// would otherwise keep a core busy; real heap profiles are a few MiB uncompressed).
const MAX_DECOMPRESSED: u64 = 1 << 30;
/// How long [`DumpManager::run`] lets dumps in flight finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Bounds of the scheduler's sleep in [`DumpManager::run`].
const MIN_SLEEP: Duration = Duration::from_millis(10);
const MAX_SLEEP: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------

/// Dump settings of one target (`defaults.dumps` overridden by `targets[].dumps`).
///
/// ```yaml
/// dumps:
///   dir: /var/lib/leakwatch/dumps   # absent = dumps off
///   heap_every: 5m                  # "off" (or 0s) = no scheduled heap dumps
///   goroutine_every: 30m
///   on_suspect: true                # baseline at first contact + pair on suspicion
///   cooldown: 10m                   # at most one suspect pair per cooldown
///   max_bytes: 100MiB               # one dump; bigger is aborted while streaming
///   timeout: 30s                    # one dump request, body included
///   retention: {max_files: 50, max_bytes: 1GiB}   # per target and profile type
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DumpConfig {
    /// Root of the dump tree; each target writes under `<dir>/<target>/`. None = off.
    pub dir: Option<PathBuf>,
    /// Period of scheduled heap dumps; None = no scheduled heap dumps.
    #[serde(deserialize_with = "de_every")]
    pub heap_every: Option<Duration>,
    /// Period of scheduled goroutine dumps; None = no scheduled goroutine dumps.
    #[serde(deserialize_with = "de_every")]
    pub goroutine_every: Option<Duration>,
    /// Take a baseline heap dump at first contact and a fresh pair when a leak is suspected.
    pub on_suspect: bool,
    /// Minimum time between two suspect dumps of a target.
    #[serde(deserialize_with = "de_duration")]
    pub cooldown: Duration,
    /// Largest dump accepted; a bigger body is abandoned while streaming.
    pub max_bytes: ByteSize,
    /// Time one dump request may take, body included.
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
    pub retention: Retention,
}

impl Default for DumpConfig {
    fn default() -> Self {
        DumpConfig {
            dir: None,
            heap_every: Some(Duration::from_secs(5 * 60)),
            goroutine_every: Some(Duration::from_secs(30 * 60)),
            on_suspect: true,
            cooldown: Duration::from_secs(10 * 60),
            max_bytes: ByteSize::mib(100),
            timeout: Duration::from_secs(30),
            retention: Retention::default(),
        }
    }
}

/// How many dumps are kept, per target and per profile type.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    pub max_files: usize,
    pub max_bytes: ByteSize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_files: 50,
            max_bytes: ByteSize::gib(1),
        }
    }
}

/// A target's `dumps:` block: every key optional, unset keys come from `defaults.dumps`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DumpOverrides {
    #[serde(default)]
    pub dir: Option<PathBuf>,
    #[serde(default, deserialize_with = "de_some_every")]
    pub heap_every: Option<Option<Duration>>,
    #[serde(default, deserialize_with = "de_some_every")]
    pub goroutine_every: Option<Option<Duration>>,
    #[serde(default)]
    pub on_suspect: Option<bool>,
    #[serde(default, deserialize_with = "de_some_duration")]
    pub cooldown: Option<Duration>,
    #[serde(default)]
    pub max_bytes: Option<ByteSize>,
    #[serde(default, deserialize_with = "de_some_duration")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub retention: Option<RetentionOverrides>,
}

/// A target's `dumps.retention:` block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionOverrides {
    #[serde(default)]
    pub max_files: Option<usize>,
    #[serde(default)]
    pub max_bytes: Option<ByteSize>,
}

impl DumpOverrides {
    /// The target's settings: its own keys over `base` (the resolved defaults).
    pub fn apply(&self, base: &DumpConfig) -> DumpConfig {
        let r = self.retention.unwrap_or_default();
        DumpConfig {
            dir: self.dir.clone().or_else(|| base.dir.clone()),
            heap_every: self.heap_every.unwrap_or(base.heap_every),
            goroutine_every: self.goroutine_every.unwrap_or(base.goroutine_every),
            on_suspect: self.on_suspect.unwrap_or(base.on_suspect),
            cooldown: self.cooldown.unwrap_or(base.cooldown),
            max_bytes: self.max_bytes.unwrap_or(base.max_bytes),
            timeout: self.timeout.unwrap_or(base.timeout),
            retention: Retention {
                max_files: r.max_files.unwrap_or(base.retention.max_files),
                max_bytes: r.max_bytes.unwrap_or(base.retention.max_bytes),
            },
        }
    }
}

impl DumpConfig {
    /// Checks values serde cannot; `key` is the config path for the message
    /// (`defaults.dumps`, `targets[2].dumps`).
    pub fn validate(&self, key: &str) -> Result<()> {
        if self.max_bytes.as_u64() == 0 {
            return Err(Error::Config(format!("{key}.max_bytes: must be > 0")));
        }
        if self.timeout.is_zero() {
            return Err(Error::Config(format!(
                "{key}.timeout: must be greater than 0"
            )));
        }
        if self.retention.max_files == 0 {
            return Err(Error::Config(format!(
                "{key}.retention.max_files: must be at least 1"
            )));
        }
        if self.retention.max_bytes.as_u64() == 0 {
            return Err(Error::Config(format!(
                "{key}.retention.max_bytes: must be > 0"
            )));
        }
        if let Some(dir) = &self.dir
            && dir.as_os_str().is_empty()
        {
            return Err(Error::Config(format!(
                "{key}.dir: must not be empty (leave it out to turn dumps off)"
            )));
        }
        Ok(())
    }

    /// The schedule period of a profile type.
    pub fn every(&self, profile: ProfileType) -> Option<Duration> {
        match profile {
            ProfileType::Heap => self.heap_every,
            ProfileType::Goroutine => self.goroutine_every,
        }
    }
}

// ---------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------

/// The profiles leakwatch dumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileType {
    Heap,
    Goroutine,
}

impl ProfileType {
    pub const ALL: [ProfileType; 2] = [ProfileType::Heap, ProfileType::Goroutine];

    pub fn as_str(self) -> &'static str {
        match self {
            ProfileType::Heap => "heap",
            ProfileType::Goroutine => "goroutine",
        }
    }

    /// The endpoint serving the binary profile.
    pub fn path(self) -> &'static str {
        match self {
            ProfileType::Heap => "/debug/pprof/heap",
            ProfileType::Goroutine => "/debug/pprof/goroutine",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ProfileType::ALL.into_iter().find(|p| p.as_str() == s)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a dump was taken (the `reason` label and the last part of the file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    Schedule,
    Suspect,
    Manual,
    Baseline,
}

impl Reason {
    pub const ALL: [Reason; 4] = [
        Reason::Schedule,
        Reason::Suspect,
        Reason::Manual,
        Reason::Baseline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Schedule => "schedule",
            Reason::Suspect => "suspect",
            Reason::Manual => "manual",
            Reason::Baseline => "baseline",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

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
    fn age_key(&self) -> (u64, u32, &str) {
        (self.time, self.seq, &self.name)
    }
}

static FILE_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(heap|goroutine)-([0-9]{8}T[0-9]{6}Z)-(schedule|suspect|manual|baseline)(?:-([0-9]{1,6}))?\.pb\.gz$",
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
fn safe_dir_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0'])
}

// ---------------------------------------------------------------------------------
// Retention (pure)
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

// ---------------------------------------------------------------------------------
// Writing one dump
// ---------------------------------------------------------------------------------

/// A temporary file removed when dropped unless disarmed: failures, timeouts and
/// cancelled tasks all leave nothing behind.
struct TempFile {
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

fn fetch_error(url: &str, reason: FetchReason, detail: impl Into<String>) -> Error {
    crate::scrape::fetch_error(url, reason, detail.into())
}

/// GETs `url` and streams the body into `file`, failing as soon as it passes
/// `max_bytes` or does not start with the gzip magic. Returns the byte count.
async fn stream_body(
    client: &reqwest::Client,
    url: &str,
    auth: &crate::scrape::RequestAuth,
    file: &mut tokio::fs::File,
    tmp: &Path,
    max_bytes: u64,
) -> Result<u64> {
    let resp = crate::scrape::send_checked(client, url, auth, max_bytes).await?;
    let mut written: u64 = 0;
    let mut head: Vec<u8> = Vec::with_capacity(2);
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| crate::scrape::classify(url, &e))?;
        written = written.saturating_add(chunk.len() as u64);
        if written > max_bytes {
            return Err(fetch_error(
                url,
                FetchReason::TooLarge,
                format!("body is over the {max_bytes}-byte dump limit"),
            ));
        }
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
    let mut dec =
        flate2::read::GzDecoder::new(std::io::BufReader::new(f)).take(MAX_DECOMPRESSED + 1);
    let n = std::io::copy(&mut dec, &mut std::io::sink())
        .map_err(|e| not_gzip(format!("truncated or corrupt gzip stream: {e}")))?;
    if n > MAX_DECOMPRESSED {
        return Err(not_gzip(format!(
            "decompresses to more than {MAX_DECOMPRESSED} bytes"
        )));
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing directory", dir, e))
}

/// Fetches `url` into `<dir>/<name>` atomically. Returns the size written.
async fn write_dump(
    client: &reqwest::Client,
    url: &str,
    auth: &crate::scrape::RequestAuth,
    dir: &Path,
    name: &str,
    max_bytes: u64,
    timeout: Duration,
) -> Result<u64> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| Error::io("creating dump directory", dir, e))?;
    let tmp = dir.join(format!(".tmp-{name}-{:08x}", fastrand::u32(..)));
    let mut guard = TempFile {
        path: Some(tmp.clone()),
    };
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .await
        .map_err(|e| Error::io("creating", &tmp, e))?;
    let size = match tokio::time::timeout(
        timeout,
        stream_body(client, url, auth, &mut file, &tmp, max_bytes),
    )
    .await
    {
        Ok(r) => r?,
        Err(_) => {
            return Err(fetch_error(
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

// ---------------------------------------------------------------------------------
// The manager
// ---------------------------------------------------------------------------------

/// What the manager needs to know about a target.
#[derive(Debug, Clone, PartialEq)]
pub struct DumpTarget {
    pub name: String,
    /// Base URL; profiles are requested under `<url>/debug/pprof/`.
    pub url: reqwest::Url,
    pub config: DumpConfig,
    /// The target's credentials and headers, as for scrapes.
    pub auth: crate::scrape::RequestAuth,
}

impl DumpTarget {
    pub fn new(name: impl Into<String>, url: reqwest::Url, config: DumpConfig) -> Self {
        DumpTarget {
            name: name.into(),
            url,
            config,
            auth: crate::scrape::RequestAuth::default(),
        }
    }

    /// With the target's credentials and headers.
    pub fn with_auth(mut self, auth: crate::scrape::RequestAuth) -> Self {
        self.auth = auth;
        self
    }

    fn endpoint(&self, profile: ProfileType) -> String {
        format!(
            "{}{}",
            self.url.as_str().trim_end_matches('/'),
            profile.path()
        )
    }

    /// `<dir>/<name>`, or None when dumps are off or the name cannot be a directory.
    fn target_dir(&self) -> Option<PathBuf> {
        let dir = self.config.dir.as_ref()?;
        safe_dir_name(&self.name).then(|| dir.join(&self.name))
    }
}

#[derive(Debug)]
struct IndexedFile {
    file: DumpFile,
    /// Written by this process (preferred as the base of a pair).
    this_run: bool,
}

/// Per-target state.
#[derive(Debug)]
struct Entry {
    target: DumpTarget,
    dir: Option<PathBuf>,
    files: Vec<IndexedFile>,
    /// One dump per profile at a time (manual requests queue, schedules skip).
    slots: [Arc<tokio::sync::Mutex<()>>; 2],
    /// Next scheduled dump per profile; None until first contact.
    next_due: [Option<Instant>; 2],
    baseline_done: bool,
    baseline_retry_at: Option<Instant>,
    run_baseline: Option<String>,
    suspected: bool,
    last_suspect_attempt: Option<Instant>,
    /// Base candidate pinned while a suspect dump is in flight.
    pending_base: Option<String>,
    pair: Option<(String, String)>,
    /// (second, seq) of the last name given per profile, pruned or not.
    last_seq: [Option<(u64, u32)>; 2],
    counts: BTreeMap<(ProfileType, bool, Reason), u64>,
    bytes: [u64; 2],
    last_success: [Option<SystemTime>; 2],
}

impl Entry {
    fn new(target: DumpTarget) -> Self {
        let dir = target.target_dir();
        if target.config.dir.is_some() && dir.is_none() {
            tracing::error!(target_name = %target.name, "target name cannot be a dump directory name; dumps are off for it");
        }
        let files = dir
            .as_deref()
            .map(|d| scan_dir(d, &target.name))
            .unwrap_or_default();
        let mut counts = BTreeMap::new();
        if dir.is_some() {
            // Series that can happen under this config start at 0, so rate() works
            // from the first failure on.
            for p in ProfileType::ALL {
                for ok in [true, false] {
                    let mut reasons = vec![Reason::Manual];
                    if target.config.every(p).is_some() {
                        reasons.push(Reason::Schedule);
                    }
                    if target.config.on_suspect {
                        reasons.push(Reason::Suspect);
                        if p == ProfileType::Heap {
                            reasons.push(Reason::Baseline);
                        }
                    }
                    for r in reasons {
                        counts.insert((p, ok, r), 0);
                    }
                }
            }
        }
        Entry {
            target,
            dir,
            files,
            slots: [
                Arc::new(tokio::sync::Mutex::new(())),
                Arc::new(tokio::sync::Mutex::new(())),
            ],
            next_due: [None, None],
            baseline_done: false,
            baseline_retry_at: None,
            run_baseline: None,
            suspected: false,
            last_suspect_attempt: None,
            pending_base: None,
            pair: None,
            last_seq: [None, None],
            counts,
            bytes: [0, 0],
            last_success: [None, None],
        }
    }

    fn pinned(&self) -> Vec<&str> {
        let mut v = Vec::new();
        if let Some((a, b)) = &self.pair {
            v.push(a.as_str());
            v.push(b.as_str());
        }
        v.extend(self.pending_base.as_deref());
        v.extend(self.run_baseline.as_deref());
        v
    }

    fn find(&self, name: &str) -> Option<&DumpFile> {
        self.files.iter().map(|f| &f.file).find(|f| f.name == name)
    }

    /// The heap dump a fresh one is compared against: the oldest of this run (from
    /// before the growth for this process), else the oldest kept on disk.
    fn base_candidate(&self) -> Option<DumpFile> {
        let heaps = || {
            self.files
                .iter()
                .filter(|f| f.file.profile == ProfileType::Heap)
        };
        heaps()
            .filter(|f| f.this_run)
            .min_by(|a, b| a.file.age_key().cmp(&b.file.age_key()))
            .or_else(|| heaps().min_by(|a, b| a.file.age_key().cmp(&b.file.age_key())))
            .map(|f| f.file.clone())
    }

    /// Drops pruned files from the index and returns their paths to delete.
    fn prune(&mut self, profile: ProfileType) -> Vec<PathBuf> {
        let pinned = self.pinned();
        let files: Vec<&DumpFile> = self
            .files
            .iter()
            .map(|f| &f.file)
            .filter(|f| f.profile == profile)
            .collect();
        let doomed: Vec<String> = plan_prune(&files, &pinned, &self.target.config.retention)
            .into_iter()
            .map(|f| f.name.clone())
            .collect();
        let mut paths = Vec::new();
        self.files.retain(|f| {
            if doomed.contains(&f.file.name) {
                paths.push(f.file.path.clone());
                false
            } else {
                true
            }
        });
        paths
    }
}

/// Indexes the dumps already in a target's directory and removes stale temporary
/// files left by a crash. Symlinks and unknown names are neither indexed nor touched.
fn scan_dir(dir: &Path, target: &str) -> Vec<IndexedFile> {
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

fn remove_files(paths: Vec<PathBuf>, target: &str) {
    for p in paths {
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

/// All profile dumps of the exporter: one per process, shared as `Arc`, internally
/// synchronized (a std mutex held only for bookkeeping, never across I/O).
#[derive(Debug)]
pub struct DumpManager {
    client: reqwest::Client,
    entries: Mutex<BTreeMap<String, Entry>>,
}

/// Why a download request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a dump name, unknown target, dumps off, or no such file.
    NotFound,
    /// A symlink, not a regular file, or outside the dump directory.
    Forbidden,
}

impl DumpManager {
    /// A manager for `targets`; indexes existing dumps and removes stale temp files.
    pub fn new(targets: Vec<DumpTarget>) -> Result<Self> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("leakwatch/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::limited(3))
            .pool_max_idle_per_host(1)
            .build()
            .map_err(|e| Error::Config(format!("building the dump HTTP client: {e}")))?;
        let entries = targets
            .into_iter()
            .map(|t| (t.name.clone(), Entry::new(t)))
            .collect();
        Ok(DumpManager {
            client,
            entries: Mutex::new(entries),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Swaps the target set (config reload). A target keeping its name and dump
    /// directory keeps its index, schedule, pair and counters; others start afresh.
    pub fn set_targets(&self, targets: Vec<DumpTarget>) {
        let mut old = std::mem::take(&mut *self.lock());
        let mut new = BTreeMap::new();
        for t in targets {
            let entry = match old.remove(&t.name) {
                Some(mut e) if e.dir == t.target_dir() => {
                    if e.target.config.every(ProfileType::Heap) != t.config.every(ProfileType::Heap)
                        || e.target.config.every(ProfileType::Goroutine)
                            != t.config.every(ProfileType::Goroutine)
                    {
                        e.next_due = [None, None];
                    }
                    e.target = t.clone();
                    e
                }
                _ => Entry::new(t.clone()),
            };
            new.insert(t.name, entry);
        }
        *self.lock() = new;
    }

    /// Whether `target` is known.
    pub fn has_target(&self, target: &str) -> bool {
        self.lock().contains_key(target)
    }

    /// Whether `target` is known and has dumps on (a `dir`).
    pub fn enabled(&self, target: &str) -> bool {
        self.lock().get(target).is_some_and(|e| e.dir.is_some())
    }

    /// Runs what is due for `target` at `now`: the first-contact baseline (when
    /// `on_suspect`) and scheduled dumps. The first scheduled dump of a profile comes
    /// one period after first contact. Failures are counted and logged, not returned.
    pub async fn tick(&self, target: &str, now: Instant) {
        let jobs = self.plan(target, now);
        self.execute(target, jobs).await;
    }

    /// What is due for `target` at `now`; advances its schedule as if it had run.
    fn plan(&self, target: &str, now: Instant) -> Vec<(ProfileType, Reason)> {
        let mut entries = self.lock();
        let Some(e) = entries.get_mut(target) else {
            return Vec::new();
        };
        if e.dir.is_none() {
            return Vec::new();
        }
        let mut jobs = Vec::new();
        if e.target.config.on_suspect
            && !e.baseline_done
            && e.baseline_retry_at.is_none_or(|t| t <= now)
        {
            e.baseline_retry_at = Some(now + BASELINE_RETRY);
            jobs.push((ProfileType::Heap, Reason::Baseline));
        }
        for p in ProfileType::ALL {
            let Some(every) = e.target.config.every(p) else {
                continue;
            };
            let slot = &mut e.next_due[p.index()];
            match *slot {
                None => *slot = Some(now + every),
                Some(due) if due <= now => {
                    // Keep the cadence; after a long stall start again from now
                    // instead of catching up with a burst.
                    let mut next = due + every;
                    if next <= now {
                        next = now + every;
                    }
                    *slot = Some(next);
                    jobs.push((p, Reason::Schedule));
                }
                Some(_) => {}
            }
        }
        jobs
    }

    async fn execute(&self, target: &str, jobs: Vec<(ProfileType, Reason)>) {
        for (profile, reason) in jobs {
            // A scheduled dump is skipped while another of its profile runs.
            let wait = reason != Reason::Schedule;
            let _ = self.dump(target, profile, reason, wait).await;
        }
    }

    /// When the next scheduled dump or baseline retry of any target falls due.
    fn next_wakeup(&self) -> Option<Instant> {
        let entries = self.lock();
        let mut next: Option<Instant> = None;
        for e in entries.values().filter(|e| e.dir.is_some()) {
            let mut times: Vec<Instant> = e.next_due.iter().flatten().copied().collect();
            if e.target.config.on_suspect && !e.baseline_done {
                times.extend(e.baseline_retry_at);
            }
            for t in times {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        next
    }

    /// Runs every target's schedule until `shutdown`: an alternative to calling
    /// [`tick`](Self::tick) from the scrape loops that never delays a scrape (each
    /// target's dumps run in their own task). At shutdown, dumps in flight get
    /// [`SHUTDOWN_GRACE`] to finish, then are cancelled (temporary files removed).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            let now = Instant::now();
            let names: Vec<String> = self.lock().keys().cloned().collect();
            for name in names {
                let jobs = self.plan(&name, now);
                if !jobs.is_empty() {
                    let me = self.clone();
                    tasks.spawn(async move { me.execute(&name, jobs).await });
                }
            }
            let wait = self
                .next_wakeup()
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(MAX_SLEEP)
                .clamp(MIN_SLEEP, MAX_SLEEP);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => break,
            }
            while tasks.try_join_next().is_some() {}
        }
        // Let dumps in flight finish (and be indexed) for a moment, then cancel.
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tasks.shutdown().await;
        }
    }

    /// Takes one dump now (waiting for a dump of the same profile already running).
    pub async fn dump_now(
        &self,
        target: &str,
        profile: ProfileType,
        reason: Reason,
    ) -> Result<DumpFile> {
        match self.dump(target, profile, reason, true).await? {
            Some(f) => Ok(f),
            // Only a non-waiting dump can be skipped.
            None => Err(Error::Config(format!(
                "a {} dump of target {target:?} is already running",
                profile.as_str()
            ))),
        }
    }

    /// One dump: `Ok(None)` when `wait` is false and a dump of the same profile is
    /// already running.
    async fn dump(
        &self,
        target: &str,
        profile: ProfileType,
        reason: Reason,
        wait: bool,
    ) -> Result<Option<DumpFile>> {
        let (url, dir, cfg, slot, auth) = {
            let entries = self.lock();
            let e = entries
                .get(target)
                .ok_or_else(|| Error::Config(format!("unknown target {target:?}")))?;
            let dir = e.dir.clone().ok_or_else(|| {
                Error::Config(format!(
                    "dumps are off for target {target:?}: set dumps.dir"
                ))
            })?;
            (
                e.target.endpoint(profile),
                dir,
                e.target.config.clone(),
                e.slots[profile.index()].clone(),
                e.target.auth.clone(),
            )
        };
        let _running = if wait {
            slot.lock_owned().await
        } else {
            match slot.try_lock_owned() {
                Ok(g) => g,
                Err(_) => {
                    tracing::debug!(target_name = %target, profile = profile.as_str(), "dump already running; skipping this one");
                    return Ok(None);
                }
            }
        };
        let time = unix_secs(SystemTime::now());
        let name = {
            let entries = self.lock();
            let taken = |n: &str| {
                entries.get(target).is_some_and(|e| e.find(n).is_some()) || dir.join(n).exists()
            };
            // The n-th dump of a profile within one second gets seq n, whatever its
            // reason, so names keep the order dumps were taken in (even after pruning).
            let mut seq = entries
                .get(target)
                .map(|e| {
                    e.files
                        .iter()
                        .map(|f| &f.file)
                        .filter(|f| f.profile == profile && f.time == time)
                        .map(|f| f.seq)
                        .chain(
                            e.last_seq[profile.index()]
                                .filter(|l| l.0 == time)
                                .map(|l| l.1),
                        )
                        .max()
                        .map_or(1, |m| m.saturating_add(1))
                })
                .unwrap_or(1);
            let mut name = file_name(profile, time, reason, seq);
            while taken(&name) {
                seq += 1;
                name = file_name(profile, time, reason, seq);
            }
            (name, seq)
        };
        let (name, seq) = name;
        if let Some(e) = self.lock().get_mut(target) {
            e.last_seq[profile.index()] = Some((time, seq));
        }
        let result = write_dump(
            &self.client,
            &url,
            &auth,
            &dir,
            &name,
            cfg.max_bytes.as_u64(),
            cfg.timeout,
        )
        .await;
        let redacted = crate::scrape::redact_url(&url);
        let mut to_delete = Vec::new();
        let out = {
            let mut entries = self.lock();
            // The entry may have been replaced by a reload meanwhile.
            let entry = entries
                .get_mut(target)
                .filter(|e| e.dir.as_ref() == Some(&dir));
            match result {
                Ok(size) => {
                    let file = DumpFile {
                        name: name.clone(),
                        target: target.to_string(),
                        profile,
                        reason,
                        time,
                        seq,
                        size,
                        path: dir.join(&name),
                    };
                    tracing::info!(target_name = %target, profile = profile.as_str(), reason = reason.as_str(), file = %file.path.display(), bytes = size, "profile dump written");
                    if let Some(e) = entry {
                        *e.counts.entry((profile, true, reason)).or_default() += 1;
                        e.bytes[profile.index()] = e.bytes[profile.index()].saturating_add(size);
                        e.last_success[profile.index()] = Some(SystemTime::now());
                        if reason == Reason::Baseline {
                            e.baseline_done = true;
                            e.run_baseline = Some(name.clone());
                        }
                        e.files.push(IndexedFile {
                            file: file.clone(),
                            this_run: true,
                        });
                        to_delete = e.prune(profile);
                    }
                    Ok(Some(file))
                }
                Err(err) => {
                    tracing::warn!(target_name = %target, profile = profile.as_str(), reason = reason.as_str(), url = %redacted, error = %err, "profile dump failed");
                    if let Some(e) = entry {
                        *e.counts.entry((profile, false, reason)).or_default() += 1;
                    }
                    Err(err)
                }
            }
        };
        remove_files(to_delete, target);
        out
    }

    /// Records the target's latest verdict (the lead calls this after each scrape).
    /// While suspected and `on_suspect` is set, at most once per `cooldown`, a fresh
    /// `suspect` heap dump (plus a goroutine one) is taken in the background and paired
    /// with the base (see [`pair_for`](Self::pair_for)).
    pub fn on_verdict(self: &Arc<Self>, target: &str, suspected: bool) {
        if !self.suspect_due(target, suspected) {
            return;
        }
        let me = self.clone();
        let target = target.to_string();
        tokio::spawn(async move { me.take_pair(&target).await });
    }

    /// [`on_verdict`](Self::on_verdict), awaited: returns the new pair, if one was made.
    pub async fn handle_verdict(
        &self,
        target: &str,
        suspected: bool,
    ) -> Option<(DumpFile, DumpFile)> {
        if !self.suspect_due(target, suspected) {
            return None;
        }
        self.take_pair(target).await
    }

    /// Updates the verdict and claims the cooldown if a suspect dump is due.
    fn suspect_due(&self, target: &str, suspected: bool) -> bool {
        let mut entries = self.lock();
        let Some(e) = entries.get_mut(target) else {
            return false;
        };
        let rising = suspected && !e.suspected;
        e.suspected = suspected;
        if !suspected || !e.target.config.on_suspect || e.dir.is_none() {
            return false;
        }
        if let Some(t) = e.last_suspect_attempt
            && t.elapsed() < e.target.config.cooldown
        {
            return false;
        }
        if rising {
            tracing::warn!(target_name = %target, "leak suspected: dumping profiles for comparison");
        }
        e.last_suspect_attempt = Some(Instant::now());
        true
    }

    async fn take_pair(&self, target: &str) -> Option<(DumpFile, DumpFile)> {
        let base = {
            let mut entries = self.lock();
            let e = entries.get_mut(target)?;
            let base = e.base_candidate();
            e.pending_base = base.as_ref().map(|b| b.name.clone());
            base
        };
        let fresh = self
            .dump(target, ProfileType::Heap, Reason::Suspect, true)
            .await;
        let _ = self
            .dump(target, ProfileType::Goroutine, Reason::Suspect, true)
            .await;
        let mut entries = self.lock();
        let e = entries.get_mut(target)?;
        e.pending_base = None;
        let fresh = fresh.ok().flatten()?;
        let Some(base) = base.filter(|b| e.find(&b.name).is_some()) else {
            tracing::warn!(target_name = %target, file = %fresh.name, "no earlier heap dump to compare the suspect dump with; the next suspect dump will pair with this one");
            return None;
        };
        tracing::info!(target_name = %target, base = %base.path.display(), new = %fresh.path.display(), "dump pair ready: go tool pprof -base BASE NEW");
        e.pair = Some((base.name.clone(), fresh.name.clone()));
        Some((base, fresh))
    }

    /// The dumps of one target (or all), newest first within each target.
    pub fn list(&self, target: Option<&str>) -> Vec<DumpFile> {
        let entries = self.lock();
        let mut out = Vec::new();
        for (name, e) in entries.iter() {
            if target.is_some_and(|t| t != name) {
                continue;
            }
            let mut files: Vec<DumpFile> = e.files.iter().map(|f| f.file.clone()).collect();
            files.sort_by(|a, b| b.age_key().cmp(&a.age_key()));
            out.extend(files);
        }
        out
    }

    /// The latest suspect pair of a target: (base from before the growth, fresh).
    pub fn pair_for(&self, target: &str) -> Option<(DumpFile, DumpFile)> {
        let entries = self.lock();
        let e = entries.get(target)?;
        let (a, b) = e.pair.as_ref()?;
        Some((e.find(a)?.clone(), e.find(b)?.clone()))
    }

    /// The command line comparing the latest pair of a target.
    pub fn diff_command(&self, target: &str) -> Option<String> {
        let (base, new) = self.pair_for(target)?;
        Some(format!(
            "go tool pprof -base {} {}",
            shell_quote(&base.path.to_string_lossy()),
            shell_quote(&new.path.to_string_lossy())
        ))
    }

    /// The dump series of one target.
    pub fn push_samples(&self, target: &str, out: &mut Sink) {
        let entries = self.lock();
        let Some(e) = entries.get(target) else {
            return;
        };
        if e.dir.is_none() {
            return;
        }
        for ((p, ok, r), n) in &e.counts {
            let result = if *ok { "success" } else { "failure" };
            out.counter_with(
                "leakwatch_pprof_dump",
                &[p.as_str(), result, r.as_str()],
                *n,
            );
        }
        for p in ProfileType::ALL {
            out.counter_with(
                "leakwatch_pprof_dump_bytes",
                &[p.as_str()],
                e.bytes[p.index()],
            );
            if let Some(t) = e.last_success[p.index()] {
                let secs = t
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                out.gauge_with(
                    "leakwatch_pprof_dump_last_success_timestamp_seconds",
                    &[p.as_str()],
                    secs,
                );
            }
        }
    }

    /// The path of a dump to serve, after every check: the name must be a dump name
    /// (no `..`, `/`, hidden or temporary files), the target known with dumps on, the
    /// target directory and the file real (not symlinks), and the canonical path
    /// inside the canonical target directory.
    pub fn resolve_download(
        &self,
        target: &str,
        file: &str,
    ) -> std::result::Result<(PathBuf, std::fs::Metadata), Refusal> {
        if parse_file_name(file).is_none() {
            return Err(Refusal::NotFound);
        }
        let dir = {
            let entries = self.lock();
            entries
                .get(target)
                .and_then(|e| e.dir.clone())
                .ok_or(Refusal::NotFound)?
        };
        let not_found_or = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Refusal::NotFound
            } else {
                Refusal::Forbidden
            }
        };
        let dir_meta = std::fs::symlink_metadata(&dir).map_err(not_found_or)?;
        if !dir_meta.is_dir() {
            return Err(Refusal::Forbidden);
        }
        let path = dir.join(file);
        let meta = std::fs::symlink_metadata(&path).map_err(not_found_or)?;
        if !meta.is_file() {
            return Err(Refusal::Forbidden);
        }
        let canon_dir = std::fs::canonicalize(&dir).map_err(not_found_or)?;
        let canon = std::fs::canonicalize(&path).map_err(not_found_or)?;
        if canon.parent() != Some(canon_dir.as_path()) {
            return Err(Refusal::Forbidden);
        }
        Ok((canon, meta))
    }
}

/// Quotes a path for a POSIX shell when it needs it (the pasteable `leakwatch diff`
/// commands of the dumps API, the report page and `leakwatch watch`).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:+=,@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

// ---------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------

/// The dump routes over their own state, mergeable into any router:
/// `POST /api/v1/dump?target=NAME&profile=heap|goroutine`, `GET /dumps/` (HTML, or
/// JSON with `Accept: application/json` or `?format=json`), `GET /dumps/<target>/`
/// and `GET /dumps/<target>/<file>` (download).
pub fn routes<S: Clone + Send + Sync + 'static>(manager: Arc<DumpManager>) -> Router<S> {
    Router::new()
        .route("/api/v1/dump", post(api_dump))
        .route("/dumps", get(|| async { Redirect::permanent("/dumps/") }))
        .route("/dumps/", get(list_all))
        .route("/dumps/{target}/", get(list_target))
        .route("/dumps/{target}/{file}", get(download))
        .with_state(manager)
}

fn json_error(status: StatusCode, msg: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": msg.into() })),
    )
        .into_response()
}

#[derive(Serialize)]
struct FileView<'a> {
    #[serde(flatten)]
    file: &'a DumpFile,
    time_utc: String,
    url: String,
}

fn view(f: &DumpFile) -> FileView<'_> {
    FileView {
        file: f,
        time_utc: format_utc(f.time),
        url: format!("/dumps/{}/{}", f.target, f.name),
    }
}

async fn api_dump(
    State(m): State<Arc<DumpManager>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(target) = q.get("target") else {
        return json_error(StatusCode::BAD_REQUEST, "missing ?target=NAME");
    };
    let profile = match q.get("profile").map(String::as_str) {
        None => ProfileType::Heap,
        Some(s) => match ProfileType::parse(s) {
            Some(p) => p,
            None => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    format!("profile must be heap or goroutine, not {s:?}"),
                );
            }
        },
    };
    if !m.has_target(target) {
        return json_error(StatusCode::NOT_FOUND, format!("unknown target {target:?}"));
    }
    if !m.enabled(target) {
        return json_error(
            StatusCode::CONFLICT,
            format!("dumps are off for target {target:?}: set dumps.dir"),
        );
    }
    match m.dump_now(target, profile, Reason::Manual).await {
        Ok(f) => (StatusCode::CREATED, axum::Json(view(&f))).into_response(),
        Err(e) => {
            let status = match &e {
                Error::Fetch {
                    reason: FetchReason::Timeout,
                    ..
                } => StatusCode::GATEWAY_TIMEOUT,
                Error::Fetch { .. } | Error::NotFormat { .. } => StatusCode::BAD_GATEWAY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            json_error(status, e.to_string())
        }
    }
}

fn wants_json(headers: &HeaderMap, q: &HashMap<String, String>) -> bool {
    if let Some(f) = q.get("format") {
        return f == "json";
    }
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
}

async fn list_all(
    State(m): State<Arc<DumpManager>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    listing(&m, None, &headers, &q)
}

async fn list_target(
    State(m): State<Arc<DumpManager>>,
    UrlPath(target): UrlPath<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !m.has_target(&target) {
        return (StatusCode::NOT_FOUND, "unknown target\n").into_response();
    }
    listing(&m, Some(&target), &headers, &q)
}

fn listing(
    m: &DumpManager,
    target: Option<&str>,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Response {
    let files = m.list(target);
    let mut targets: Vec<String> = files.iter().map(|f| f.target.clone()).collect();
    targets.dedup();
    let pairs: Vec<serde_json::Value> = targets
        .iter()
        .filter_map(|t| {
            let (base, new) = m.pair_for(t)?;
            Some(serde_json::json!({
                "target": t,
                "base": base.name,
                "new": new.name,
                "command": m.diff_command(t),
            }))
        })
        .collect();
    if wants_json(headers, q) {
        let views: Vec<FileView<'_>> = files.iter().map(view).collect();
        return axum::Json(serde_json::json!({ "dumps": views, "pairs": pairs })).into_response();
    }
    use std::fmt::Write as _;
    let esc = crate::http::html_escape;
    let mut page = String::from(concat!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>leakwatch dumps</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}",
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>",
        "<h1>Profile dumps</h1><p><a href=\"/\">leakwatch</a> · <a href=\"/dumps/?format=json\">JSON</a></p>",
    ));
    for p in &pairs {
        let t = p["target"].as_str().unwrap_or_default();
        let cmd = p["command"].as_str().unwrap_or_default();
        let _ = write!(
            page,
            "<p>Leak suspected on <b>{}</b>; compare: <code>{}</code></p>",
            esc(t),
            esc(cmd)
        );
    }
    page.push_str("<table><tr><th>target</th><th>file</th><th>profile</th><th>reason</th><th>time (UTC)</th><th>bytes</th></tr>");
    for f in &files {
        let _ = write!(
            page,
            "<tr><td>{t}</td><td><a href=\"/dumps/{t}/{n}\">{n}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            f.profile.as_str(),
            f.reason.as_str(),
            format_utc(f.time),
            f.size,
            t = esc(&f.target),
            n = esc(&f.name),
        );
    }
    if files.is_empty() {
        page.push_str("<tr><td colspan=\"6\">no dumps yet</td></tr>");
    }
    page.push_str("</table></body></html>\n");
    Html(page).into_response()
}

async fn download(
    State(m): State<Arc<DumpManager>>,
    UrlPath((target, file)): UrlPath<(String, String)>,
) -> Response {
    let checked = {
        let m = m.clone();
        let (target, file) = (target.clone(), file.clone());
        tokio::task::spawn_blocking(move || m.resolve_download(&target, &file)).await
    };
    let (path, meta) = match checked {
        Ok(Ok(v)) => v,
        Ok(Err(Refusal::NotFound)) => {
            return (StatusCode::NOT_FOUND, "no such dump\n").into_response();
        }
        Ok(Err(Refusal::Forbidden)) => return (StatusCode::FORBIDDEN, "refused\n").into_response(),
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response(),
    };
    let f = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) => return (StatusCode::NOT_FOUND, "no such dump\n").into_response(),
    };
    // The file opened must be the one checked (a swap in between is refused).
    {
        use std::os::unix::fs::MetadataExt as _;
        match f.metadata().await {
            Ok(now) if now.dev() == meta.dev() && now.ino() == meta.ino() && now.is_file() => {}
            _ => return (StatusCode::FORBIDDEN, "refused\n").into_response(),
        }
    }
    let stream = futures_util::stream::unfold(f, |mut f| async move {
        use tokio::io::AsyncReadExt as _;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, meta.len().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn config_defaults_overrides_and_errors() {
        let d: DumpConfig = serde_norway::from_str("dir: /var/dumps\nheap_every: 1m\n").unwrap();
        assert_eq!(d.dir, Some(PathBuf::from("/var/dumps")));
        assert_eq!(d.heap_every, Some(Duration::from_secs(60)));
        assert_eq!(d.goroutine_every, Some(Duration::from_secs(1800)));
        assert_eq!(d.cooldown, Duration::from_secs(600));
        assert_eq!(d.max_bytes.as_u64(), 100 * 1024 * 1024);
        assert_eq!(d.retention.max_files, 50);
        assert_eq!(d.retention.max_bytes.as_u64(), 1024 * 1024 * 1024);
        assert!(d.on_suspect);

        let o: DumpOverrides = serde_norway::from_str(
            "goroutine_every: off\nmax_bytes: 1MiB\nretention: {max_files: 3}\n",
        )
        .unwrap();
        let t = o.apply(&d);
        assert_eq!(t.dir, d.dir);
        assert_eq!(t.heap_every, Some(Duration::from_secs(60)));
        assert_eq!(t.goroutine_every, None);
        assert_eq!(t.max_bytes.as_u64(), 1024 * 1024);
        assert_eq!(t.retention.max_files, 3);
        assert_eq!(t.retention.max_bytes, d.retention.max_bytes);

        let cases: &[(&str, &str)] = &[
            ("heap_evry: 1m\n", "unknown field `heap_evry`"),
            ("heap_every: soon\n", "invalid duration \"soon\""),
            ("retention: {max_file: 1}\n", "unknown field `max_file`"),
        ];
        for (yaml, want) in cases {
            let err = serde_norway::from_str::<DumpConfig>(yaml)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{yaml:?}: {err}");
        }
        let bad = |f: fn(&mut DumpConfig)| {
            let mut c = DumpConfig::default();
            f(&mut c);
            c.validate("defaults.dumps").unwrap_err().to_string()
        };
        assert_eq!(
            bad(|c| c.max_bytes = ByteSize::b(0)),
            "config: defaults.dumps.max_bytes: must be > 0"
        );
        assert_eq!(
            bad(|c| c.retention.max_files = 0),
            "config: defaults.dumps.retention.max_files: must be at least 1"
        );
        assert_eq!(
            bad(|c| c.timeout = Duration::ZERO),
            "config: defaults.dumps.timeout: must be greater than 0"
        );
        DumpConfig::default().validate("x").unwrap();
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

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/var/d/t/heap.pb.gz"), "/var/d/t/heap.pb.gz");
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
