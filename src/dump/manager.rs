//! The dump manager: taking one dump (name, fetch, index, retention), listing and
//! resolving files, and the values behind the dump series, over the per-target dump
//! records its [`DumpRoster`] keeps. When dumps are taken is in `schedule.rs`, the
//! throttle of manual dumps in `manual.rs`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use super::profile::{ProfileType, Reason};
use super::record::{DumpStats, DumpTarget, Entry, TargetDumps};
use super::roster::{DumpList, DumpRoster};
use super::store::{DumpFile, IndexedFile, file_name, parse_file_name, remove_files, write_dump};
use crate::error::{Error, Result};
use crate::scrape::Fetcher;
use crate::units::unix_now;

/// All profile dumps of the exporter: one per process, shared as `Arc`, working over
/// the targets' dump records where its [`DumpRoster`] keeps them (each record
/// synchronized on its own, a std mutex held only for bookkeeping, never across I/O).
#[derive(Debug)]
pub struct DumpManager {
    fetcher: Fetcher,
    roster: Arc<dyn DumpRoster>,
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
    /// A manager over its own [`DumpList`] of `targets`; indexes existing dumps and
    /// removes stale temp files.
    pub fn new(targets: Vec<DumpTarget>) -> Result<Self> {
        Ok(Self::with_fetcher(targets, Fetcher::new()?))
    }

    /// [`new`](Self::new) over a given client (the scrapers' one, shared).
    pub fn with_fetcher(targets: Vec<DumpTarget>, fetcher: Fetcher) -> Self {
        Self::over(Arc::new(DumpList::new(targets)), fetcher)
    }

    /// A manager over the records `roster` keeps (the target registry, in the
    /// exporter), fetching with `fetcher`.
    pub fn over(roster: Arc<dyn DumpRoster>, fetcher: Fetcher) -> Self {
        DumpManager { fetcher, roster }
    }

    /// The record of `target` now (a reload may replace it between two looks).
    pub(super) fn record(&self, target: &str) -> Option<Arc<TargetDumps>> {
        self.roster.dumps_of(target)
    }

    /// Every target's record, by target name.
    pub(super) fn records(&self) -> Vec<Arc<TargetDumps>> {
        let mut all = self.roster.all_dumps();
        all.sort_by(|a, b| a.name().cmp(b.name()));
        all
    }

    /// `f` on the state of `target`'s record, if it is watched.
    pub(super) fn with_entry<R>(&self, target: &str, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        self.record(target).map(|r| f(&mut r.lock()))
    }

    /// Whether `target` is known.
    pub fn has_target(&self, target: &str) -> bool {
        self.record(target).is_some()
    }

    /// Whether `target` is known and has dumps on (a `dir`).
    pub fn enabled(&self, target: &str) -> bool {
        self.with_entry(target, |e| e.dir.is_some())
            .unwrap_or(false)
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
    pub(super) async fn dump(
        &self,
        target: &str,
        profile: ProfileType,
        reason: Reason,
        wait: bool,
    ) -> Result<Option<DumpFile>> {
        let (url, dir, cfg, slot, auth) = {
            let record = self
                .record(target)
                .ok_or_else(|| Error::Config(format!("unknown target {target:?}")))?;
            let e = record.lock();
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
            let record = self.record(target);
            let entry = record.as_ref().map(|r| r.lock());
            let taken = |n: &str| {
                entry.as_deref().is_some_and(|e| e.find(n).is_some()) || dir.join(n).exists()
            };
            // The n-th dump of a profile within one second gets seq n, whatever its
            // reason, so names keep the order dumps were taken in (even after pruning).
            let mut seq = entry
                .as_deref()
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
        self.with_entry(target, |e| e.last_seq[profile.index()] = Some((time, seq)));
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
            let record = self.record(target);
            let mut guard = record.as_ref().map(|r| r.lock());
            // The record may have been replaced by a reload meanwhile.
            let entry = guard
                .as_deref_mut()
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
        let mut out = Vec::new();
        for record in self.records() {
            if target.is_some_and(|t| t != record.name()) {
                continue;
            }
            let e = record.lock();
            let mut files: Vec<DumpFile> = e.files.iter().map(|f| f.file.clone()).collect();
            files.sort_by(|a, b| b.age_key().cmp(&a.age_key()));
            out.extend(files);
        }
        out
    }

    /// The latest suspect pair of a target: (base from before the growth, fresh).
    pub fn pair_for(&self, target: &str) -> Option<(DumpFile, DumpFile)> {
        self.with_entry(target, |e| {
            let (a, b) = e.pair.as_ref()?;
            Some((e.find(a)?.clone(), e.find(b)?.clone()))
        })?
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
        let auth = self.with_entry(target, |e| e.target.auth.clone());
        auth.map_or_else(|| text.to_string(), |a| a.scrub_secrets(text))
    }

    /// The values behind one target's dump series; None when the target is unknown
    /// or has dumps off.
    pub fn stats(&self, target: &str) -> Option<DumpStats> {
        self.with_entry(target, |e| {
            e.dir.as_ref()?;
            Some(DumpStats {
                counts: e.counts.clone(),
                bytes: e.bytes,
                last_success: e.last_success,
            })
        })?
    }

    /// [`DumpManager::stats`] of every target with dumps on, by name, in one pass (one
    /// look-up per target would walk the roster once per target).
    pub fn all_stats(&self) -> std::collections::HashMap<String, DumpStats> {
        self.roster
            .all_dumps()
            .into_iter()
            .filter_map(|r| {
                let e = r.lock();
                e.dir.as_ref()?;
                let stats = DumpStats {
                    counts: e.counts.clone(),
                    bytes: e.bytes,
                    last_success: e.last_success,
                };
                Some((r.name().to_string(), stats))
            })
            .collect()
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
        let dir = self
            .with_entry(target, |e| e.dir.clone())
            .flatten()
            .ok_or(Refusal::NotFound)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/var/d/t/heap.pb.gz"), "/var/d/t/heap.pb.gz");
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
