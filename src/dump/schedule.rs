//! When dumps are taken: each target's schedule and first-contact baseline, the
//! scheduler task, the suspect trigger that makes a `baseline` + `suspect` pair when a
//! leak is suspected, and the `pre_oom` pair when memory is about to run out (its
//! decision is `PreOomTrigger`, in `pre_oom.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::manager::DumpManager;
use super::pre_oom::MemoryPressure;
use super::profile::{ProfileType, Reason};
use super::store::DumpFile;

/// How long to wait before retrying a failed first-contact baseline dump.
const BASELINE_RETRY: Duration = Duration::from_secs(30);
/// How long [`DumpManager::run`] lets dumps in flight finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Bounds of the scheduler's sleep in [`DumpManager::run`].
const MIN_SLEEP: Duration = Duration::from_millis(10);
const MAX_SLEEP: Duration = Duration::from_secs(1);

impl DumpManager {
    /// Runs what is due for `target` at `now`: the first-contact baseline (when
    /// `on_suspect`) and scheduled dumps. The first scheduled dump of a profile comes
    /// one period after first contact. Failures are counted and logged, not returned.
    pub async fn tick(&self, target: &str, now: Instant) {
        let jobs = self.plan(target, now);
        self.execute(target, jobs).await;
    }

    /// What is due for `target` at `now`; advances its schedule as if it had run.
    fn plan(&self, target: &str, now: Instant) -> Vec<(ProfileType, Reason)> {
        let Some(record) = self.record(target) else {
            return Vec::new();
        };
        let mut e = record.lock();
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
        let mut next: Option<Instant> = None;
        for record in self.records() {
            let e = record.lock();
            if e.dir.is_none() {
                continue;
            }
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
            let names: Vec<String> = self
                .records()
                .iter()
                .map(|r| r.name().to_string())
                .collect();
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

    /// Records the target's memory pressure (the lead calls this after each scrape)
    /// and, when its pre-OOM trigger says so (once per episode, cooldown and overhead
    /// budget: [`PreOomTrigger`](super::pre_oom::PreOomTrigger)), takes a heap and a
    /// goroutine dump with reason `pre_oom` in the background.
    pub fn on_memory(self: &Arc<Self>, target: &str, pressure: MemoryPressure) {
        if !self.pre_oom_due(target, pressure, Instant::now()) {
            return;
        }
        tracing::warn!(target_name = %target, "memory about to run out: dumping heap and goroutine profiles (pre_oom)");
        let me = self.clone();
        let target = target.to_string();
        tokio::spawn(async move {
            let started = Instant::now();
            for p in ProfileType::ALL {
                let _ = me.dump(&target, p, Reason::PreOom, true).await;
            }
            let took = started.elapsed();
            me.with_entry(&target, |e| {
                let cfg = &e.target.config;
                let (cooldown, budget) = (cfg.cooldown, e.target.overhead_budget);
                e.pre_oom.finished(started, took, cooldown, budget);
            });
        });
    }

    /// Feeds the target's trigger; true when its pair is due now.
    fn pre_oom_due(&self, target: &str, pressure: MemoryPressure, now: Instant) -> bool {
        self.with_entry(target, |e| {
            e.dir.is_some() && e.pre_oom.observe(pressure, now, e.target.config.cooldown)
        })
        .unwrap_or(false)
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
        let Some(record) = self.record(target) else {
            return false;
        };
        let mut e = record.lock();
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
            let record = self.record(target)?;
            let mut e = record.lock();
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
        let record = self.record(target)?;
        let mut e = record.lock();
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
}
