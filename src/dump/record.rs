//! One target's dump record: what the manager knows of a target ([`DumpTarget`]) and
//! its state ([`TargetDumps`]: the index of its directory, schedule, suspect pair and
//! counters), carried over a reload when its dump directory stays; and the values
//! behind its series ([`DumpStats`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use super::config::DumpConfig;
use super::pre_oom::PreOomTrigger;
use super::profile::{ProfileType, Reason};
use super::store::{DumpFile, IndexedFile, plan_prune, safe_dir_name, scan_dir};

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

    pub(super) fn endpoint(&self, profile: ProfileType) -> String {
        format!(
            "{}{}",
            self.url.as_str().trim_end_matches('/'),
            profile.path()
        )
    }

    /// `<dir>/<name>`, or None when dumps are off or the name cannot be a directory.
    pub(super) fn target_dir(&self) -> Option<PathBuf> {
        let dir = self.config.dir.as_ref()?;
        safe_dir_name(&self.name).then(|| dir.join(&self.name))
    }
}

/// One target's dump state: its settings, the index of its directory, its schedule,
/// suspect pair and counters. Behind [`TargetDumps`]' mutex.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) target: DumpTarget,
    pub(super) dir: Option<PathBuf>,
    pub(super) files: Vec<IndexedFile>,
    /// One dump per profile at a time (manual requests queue, schedules skip).
    pub(super) slots: [Arc<tokio::sync::Mutex<()>>; 2],
    /// Next scheduled dump per profile; None until first contact.
    pub(super) next_due: [Option<Instant>; 2],
    /// Earliest next manual dump per profile (cooldown and overhead budget).
    pub(super) manual_not_before: [Option<Instant>; 2],
    pub(super) baseline_done: bool,
    pub(super) baseline_retry_at: Option<Instant>,
    pub(super) run_baseline: Option<String>,
    pub(super) suspected: bool,
    pub(super) last_suspect_attempt: Option<Instant>,
    /// The pre-OOM trigger: episode, relief and cooldown.
    pub(super) pre_oom: PreOomTrigger,
    /// Base candidate pinned while a suspect dump is in flight.
    pub(super) pending_base: Option<String>,
    pub(super) pair: Option<(String, String)>,
    /// (second, seq) of the last name given per profile, pruned or not.
    pub(super) last_seq: [Option<(u64, u32)>; 2],
    pub(super) counts: BTreeMap<(ProfileType, bool, Reason), u64>,
    pub(super) bytes: [u64; 2],
    pub(super) last_success: [Option<SystemTime>; 2],
}

impl Entry {
    pub(super) fn new(target: DumpTarget) -> Self {
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
            pre_oom: PreOomTrigger::default(),
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

    pub(super) fn find(&self, name: &str) -> Option<&DumpFile> {
        self.files.iter().map(|f| &f.file).find(|f| f.name == name)
    }

    /// The heap dump a fresh one is compared against: the oldest of this run (from
    /// before the growth for this process), else the oldest kept on disk.
    pub(super) fn base_candidate(&self) -> Option<DumpFile> {
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

    /// Drops pruned files from the index and returns their paths to delete. Each
    /// retention pool ([`Reason::pool`]) is pruned on its own: a `reason` prunes only
    /// its pool, so manual and `pre_oom` dumps never push the evidence out.
    pub(super) fn prune(&mut self, profile: ProfileType, reason: Reason) -> Vec<PathBuf> {
        let pinned = self.pinned();
        let pool = reason.pool();
        let files: Vec<&DumpFile> = self
            .files
            .iter()
            .map(|f| &f.file)
            .filter(|f| f.profile == profile && f.reason.pool() == pool)
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

/// One target's dump record, shared as `Arc` by the list that holds it (the target
/// registry, one record per target) and the dumps in flight; internally synchronized
/// (a std mutex held only for bookkeeping, never across I/O).
#[derive(Debug)]
pub struct TargetDumps {
    name: String,
    entry: Mutex<Entry>,
}

impl TargetDumps {
    /// A fresh record for `target`: indexes the dumps already in its directory and
    /// removes stale temporary files.
    pub fn new(target: DumpTarget) -> Self {
        TargetDumps {
            name: target.name.clone(),
            entry: Mutex::new(Entry::new(target)),
        }
    }

    /// The record of `target` after a reload: `old` (the record of a target of the same
    /// name) carried over when its dump directory stays, keeping its index, schedule,
    /// pair and counters under the new settings (the schedule restarts when a period
    /// changed); else a fresh one.
    pub fn carry(old: Option<&Arc<TargetDumps>>, target: DumpTarget) -> Arc<TargetDumps> {
        if let Some(old) = old.filter(|o| o.name == target.name) {
            let mut e = old.lock();
            if e.dir == target.target_dir() {
                if e.target.config.every(ProfileType::Heap)
                    != target.config.every(ProfileType::Heap)
                    || e.target.config.every(ProfileType::Goroutine)
                        != target.config.every(ProfileType::Goroutine)
                {
                    e.next_due = [None, None];
                }
                e.target = target;
                drop(e);
                return old.clone();
            }
        }
        Arc::new(TargetDumps::new(target))
    }

    /// The target's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Entry> {
        self.entry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

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
    use crate::dump::config::DumpConfig;

    fn file(profile: ProfileType, time: u64, reason: Reason) -> IndexedFile {
        let name = crate::dump::store::file_name(profile, time, reason, 1);
        IndexedFile {
            file: DumpFile {
                path: PathBuf::from("/nonexistent").join(&name),
                name,
                target: "svc".into(),
                profile,
                reason,
                time,
                seq: 1,
                size: 1000,
            },
            this_run: true,
        }
    }

    /// Issue 23: a target bouncing near its limit made a `pre_oom` pair every other
    /// scrape, and each pushed the oldest scheduled dump out. Each pool is pruned on its
    /// own: `pre_oom` and manual dumps never delete scheduled, suspect or baseline ones,
    /// nor these theirs.
    #[test]
    fn each_retention_pool_prunes_only_its_own_files() {
        use ProfileType::{Goroutine, Heap};
        use Reason::{Baseline, Manual, PreOom, Schedule, Suspect};
        let mut config = DumpConfig::default();
        config.retention.max_files = 3;
        let url = reqwest::Url::parse("http://127.0.0.1:1").unwrap();
        let mut e = Entry::new(DumpTarget::new("svc", url, config));
        assert!(e.dir.is_none(), "no directory: nothing read or written");
        let evidence = [
            (Heap, 100, Baseline),
            (Heap, 200, Schedule),
            (Heap, 300, Suspect),
        ];
        for (p, t, r) in evidence {
            e.files.push(file(p, t, r));
        }
        let names = |e: &Entry, pool: crate::dump::Pool| -> Vec<u64> {
            let mut v: Vec<u64> = e
                .files
                .iter()
                .filter(|f| f.file.profile == Heap && f.file.reason.pool() == pool)
                .map(|f| f.file.time)
                .collect();
            v.sort();
            v
        };
        // Eight pre_oom heap dumps, each followed by its prune, as the manager does.
        let mut deleted = Vec::new();
        for t in 0..8 {
            e.files.push(file(Heap, 1000 + t, PreOom));
            e.files.push(file(Goroutine, 1000 + t, PreOom));
            deleted.extend(e.prune(Heap, PreOom));
            deleted.extend(e.prune(Goroutine, PreOom));
        }
        assert_eq!(deleted.len(), 10, "{deleted:?}");
        assert!(
            deleted
                .iter()
                .all(|p| p.to_string_lossy().contains("-pre_oom")),
            "{deleted:?}"
        );
        assert_eq!(names(&e, crate::dump::Pool::Evidence), vec![100, 200, 300]);
        assert_eq!(names(&e, crate::dump::Pool::PreOom), vec![1005, 1006, 1007]);
        // Manual dumps: a pool of their own too.
        for t in 0..4 {
            e.files.push(file(Heap, 2000 + t, Manual));
            let gone = e.prune(Heap, Manual);
            assert!(gone.iter().all(|p| p.to_string_lossy().contains("-manual")));
        }
        assert_eq!(names(&e, crate::dump::Pool::Manual), vec![2001, 2002, 2003]);
        // A scheduled dump over the limit prunes the oldest evidence only.
        e.files.push(file(Heap, 3000, Schedule));
        let gone = e.prune(Heap, Schedule);
        assert_eq!(gone.len(), 1);
        assert!(
            gone[0].to_string_lossy().contains("T000140Z-baseline"),
            "{gone:?}"
        );
        assert_eq!(names(&e, crate::dump::Pool::PreOom), vec![1005, 1006, 1007]);
        assert_eq!(names(&e, crate::dump::Pool::Manual), vec![2001, 2002, 2003]);
    }
}
