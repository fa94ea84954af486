//! Profile dumps: the binary heap and goroutine profiles saved to disk as evidence
//! for the fix — on a schedule, as a `baseline` + `suspect` pair when a leak is
//! suspected (ready for `go tool pprof -base`), or on request — written atomically,
//! pruned by retention, counted in metrics and served under `/dumps/` (by
//! `http::dumps`). This module owns the manager: per-target state, taking one dump,
//! listing and resolving files; [`config`] the settings, [`schedule`] when dumps are
//! taken, [`store`] names, index, retention and atomic writes (shared with
//! `leakwatch watch`).
//!
//! Layout: `<dir>/<target>/<profile>-<UTC time>-<reason>[-<n>].pb.gz`, e.g.
//! `dumps/orders/heap-20261126T093015Z-schedule.pb.gz`. `-<n>` (n >= 2) marks the
//! n-th dump of one profile within the same second, so names sort by age. The file is
//! exactly what the service served at `/debug/pprof/heap` or `/debug/pprof/goroutine`
//! (a gzipped protobuf; Go sends no `Content-Encoding`, so nothing is decoded).
//!
//! Retention applies per target and profile type: at most `max_files` files and
//! `max_bytes` bytes, oldest pruned first. Never pruned: the base and the fresh file
//! of the target's latest suspect pair, and this run's first-contact baseline. Manual
//! dumps (`POST /api/v1/dump`) are a pool of their own under the same limits, so
//! requests from outside can never push scheduled or suspect dumps out.
//!
//! Manual dumps are throttled like the rest of leakwatch's load on the service: one
//! per profile per `cooldown`, stretched to `request time / overhead_budget` when
//! the dump is expensive ([`manual`]: [`DumpManager::dump_manual`] says how long to wait).
//!
//! Dumps are fetched with [`crate::scrape::Fetcher`]'s streamed GET (same credentials,
//! same-origin redirects and size cap as scrapes), straight to disk.

pub mod config;
pub mod manual;
pub mod schedule;
pub mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

pub use config::{DumpConfig, DumpOverrides, Retention, RetentionOverrides};
pub use manual::ManualRefusal;
pub use schedule::SHUTDOWN_GRACE;
pub use store::{
    DumpFile, ProfileType, Reason, file_name, parse_file_name, plan_prune, write_atomically,
};

use crate::error::{Error, Result};
use crate::scrape::Fetcher;
use crate::units::unix_now;
use store::{IndexedFile, remove_files, safe_dir_name, scan_dir, write_dump};

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
    /// The target's overhead budget (share of one core; 0 = none), which manual dumps
    /// respect on top of the cooldown.
    pub overhead_budget: f64,
}

impl DumpTarget {
    pub fn new(name: impl Into<String>, url: reqwest::Url, config: DumpConfig) -> Self {
        DumpTarget {
            name: name.into(),
            url,
            config,
            auth: crate::scrape::RequestAuth::default(),
            overhead_budget: 0.0,
        }
    }

    /// With the target's overhead budget (a share of one core; 0 = none).
    pub fn with_overhead_budget(mut self, budget: f64) -> Self {
        self.overhead_budget = budget;
        self
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
    /// Earliest next manual dump per profile (cooldown and overhead budget).
    manual_not_before: [Option<Instant>; 2],
    baseline_done: bool,
    baseline_retry_at: Option<Instant>,
    run_baseline: Option<String>,
    suspected: bool,
    last_suspect_attempt: Option<Instant>,
    /// A pre-OOM episode is under way (its dumps were taken); ends when memory is
    /// relieved.
    pre_oom_episode: bool,
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
                    reasons.push(Reason::PreOom);
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
            manual_not_before: [None, None],
            baseline_done: false,
            baseline_retry_at: None,
            run_baseline: None,
            suspected: false,
            last_suspect_attempt: None,
            pre_oom_episode: false,
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

    /// Drops pruned files from the index and returns their paths to delete. Manual
    /// dumps and the others are separate pools: a `reason` prunes only its own.
    fn prune(&mut self, profile: ProfileType, reason: Reason) -> Vec<PathBuf> {
        let pinned = self.pinned();
        let manual = reason == Reason::Manual;
        let files: Vec<&DumpFile> = self
            .files
            .iter()
            .map(|f| &f.file)
            .filter(|f| f.profile == profile && (f.reason == Reason::Manual) == manual)
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

/// All profile dumps of the exporter: one per process, shared as `Arc`, internally
/// synchronized (a std mutex held only for bookkeeping, never across I/O).
#[derive(Debug)]
pub struct DumpManager {
    fetcher: Fetcher,
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
        Ok(Self::with_fetcher(targets, Fetcher::new()?))
    }

    /// [`new`](Self::new) over a given client (the scrapers' one, shared).
    pub fn with_fetcher(targets: Vec<DumpTarget>, fetcher: Fetcher) -> Self {
        let entries = targets
            .into_iter()
            .map(|t| (t.name.clone(), Entry::new(t)))
            .collect();
        DumpManager {
            fetcher,
            entries: Mutex::new(entries),
        }
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
        let time = unix_now();
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
            &self.fetcher,
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
                        to_delete = e.prune(profile, reason);
                    }
                    Ok(Some(file))
                }
                Err(err) => {
                    let error = auth.scrub_secrets(&err.to_string());
                    tracing::warn!(target_name = %target, profile = profile.as_str(), reason = reason.as_str(), url = %redacted, %error, "profile dump failed");
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

    /// `text` with the target's known secrets replaced: for error texts shown to a
    /// client of the dumps API.
    pub fn scrub(&self, target: &str, text: &str) -> String {
        let auth = self.lock().get(target).map(|e| e.target.auth.clone());
        auth.map_or_else(|| text.to_string(), |a| a.scrub_secrets(text))
    }

    /// The values behind one target's dump series; None when the target is unknown
    /// or has dumps off.
    pub fn stats(&self, target: &str) -> Option<DumpStats> {
        let entries = self.lock();
        let e = entries.get(target)?;
        e.dir.as_ref()?;
        Some(DumpStats {
            counts: e.counts.clone(),
            bytes: e.bytes,
            last_success: e.last_success,
        })
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
// Metrics: the values behind the dump series (emitted by metrics/emit.rs)
// ---------------------------------------------------------------------------------

/// The values behind one target's dump series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DumpStats {
    /// Dumps attempted per (profile, success, reason); the series possible under the
    /// target's config start at 0.
    pub counts: BTreeMap<(ProfileType, bool, Reason), u64>,
    /// Bytes written per profile (indexed like [`ProfileType::ALL`]).
    pub bytes: [u64; 2],
    /// When the last dump of each profile succeeded.
    pub last_success: [Option<SystemTime>; 2],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/var/d/t/heap.pb.gz"), "/var/d/t/heap.pb.gz");
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
