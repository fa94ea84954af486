//! The registry of watched targets and their scrape loops: one record per target (its
//! state and its dump record), the list swapped as a whole on reload, and the loops
//! started and stopped to match it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio_util::sync::CancellationToken;

use super::state::{TargetState, TickObserver};
use crate::config::{Config, TargetConfig};
use crate::dump::{DumpManager, DumpRoster, DumpTarget, TargetDumps};
use crate::scrape::{self, Fetcher};

/// Upper bound on scrapes in flight at once, across all targets.
pub const MAX_CONCURRENT_SCRAPES: usize = 32;

/// One watched target: its state and its dump record, made and swapped together.
#[derive(Debug, Clone)]
struct Watched {
    state: Arc<TargetState>,
    dumps: Arc<TargetDumps>,
}

/// The targets being watched, one record each. Swapped as a whole on reload; the dump
/// manager finds each target's dump record here ([`DumpRoster`]).
#[derive(Debug, Default)]
pub struct Targets {
    list: RwLock<Watchlist>,
}

/// The records in config order and where each name is: the dump manager looks a target
/// up by name on every tick, and a scan of the list made that quadratic in the targets
/// (at 5,000, `memcmp` was 11% of leakwatch's samples).
#[derive(Debug, Default)]
struct Watchlist {
    list: Vec<Watched>,
    by_name: HashMap<String, usize>,
}

impl Watchlist {
    fn new(list: Vec<Watched>) -> Self {
        let mut by_name = HashMap::with_capacity(list.len());
        for (i, w) in list.iter().enumerate() {
            by_name.entry(w.dumps.name().to_string()).or_insert(i);
        }
        Watchlist { list, by_name }
    }
}

impl Targets {
    /// The registry of `config`'s targets; indexes their existing dumps and removes
    /// stale temporary files.
    pub fn new(config: &Config) -> Self {
        let list = build_targets(config)
            .into_iter()
            .zip(&config.targets)
            .map(|(state, tc)| Watched {
                state,
                dumps: Arc::new(TargetDumps::new(dump_target(tc))),
            })
            .collect();
        Targets {
            list: RwLock::new(Watchlist::new(list)),
        }
    }

    fn list(&self) -> std::sync::RwLockReadGuard<'_, Watchlist> {
        self.list.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> Vec<Arc<TargetState>> {
        self.list().list.iter().map(|w| w.state.clone()).collect()
    }

    /// Swaps in `config`'s targets (a reload) and returns their states. A target whose
    /// config is unchanged keeps its state and analysis window (unless the system
    /// settings changed); one keeping its name keeps its OOM-kill history (a restarted
    /// container fleet mode finds again under its name: its kills are its leak's
    /// evidence) and, with its dump directory, its dump record
    /// ([`TargetDumps::carry`]); others start afresh.
    pub fn reload(&self, config: &Config, system_changed: bool) -> Vec<Arc<TargetState>> {
        let previous = self.list().list.clone();
        let system = Arc::new(config.system.clone());
        let next: Vec<Watched> = config
            .targets
            .iter()
            .map(|tc| {
                let state = previous
                    .iter()
                    .find(|w| !system_changed && w.state.config == *tc)
                    .map(|w| w.state.clone())
                    .unwrap_or_else(|| {
                        let fresh = Arc::new(TargetState::new(tc.clone(), system.clone()));
                        if let Some(old) = previous.iter().find(|w| w.state.config.name == tc.name)
                        {
                            fresh.status().oom = old.state.status().oom.clone();
                        }
                        fresh
                    });
                let old = previous.iter().find(|w| w.dumps.name() == tc.name);
                let dumps = TargetDumps::carry(old.map(|w| &w.dumps), dump_target(tc));
                Watched { state, dumps }
            })
            .collect();
        let states = next.iter().map(|w| w.state.clone()).collect();
        *self.list.write().unwrap_or_else(|e| e.into_inner()) = Watchlist::new(next);
        states
    }
}

impl DumpRoster for Targets {
    fn dumps_of(&self, name: &str) -> Option<Arc<TargetDumps>> {
        let l = self.list();
        l.by_name.get(name).map(|&i| l.list[i].dumps.clone())
    }

    fn all_dumps(&self) -> Vec<Arc<TargetDumps>> {
        self.list().list.iter().map(|w| w.dumps.clone()).collect()
    }
}

/// Builds the target states of a config.
pub fn build_targets(config: &Config) -> Vec<Arc<TargetState>> {
    let system = Arc::new(config.system.clone());
    config
        .targets
        .iter()
        .map(|t| Arc::new(TargetState::new(t.clone(), system.clone())))
        .collect()
}

/// What the dump manager needs to know about a target.
fn dump_target(t: &TargetConfig) -> DumpTarget {
    DumpTarget::new(t.name.clone(), t.url.clone(), t.dumps.clone())
        .with_auth(t.auth.clone())
        .with_overhead_budget(t.overhead_budget)
}

/// The running scrape loops, one per target, so a reload can start and stop them.
#[derive(Debug)]
pub struct Loops {
    fetcher: Fetcher,
    permits: Arc<tokio::sync::Semaphore>,
    root: CancellationToken,
    running: std::sync::Mutex<Vec<(Arc<TargetState>, CancellationToken)>>,
    dumps: Arc<DumpManager>,
    observer: Option<Arc<dyn TickObserver>>,
}

impl Loops {
    /// Loops under `root` (cancelled on shutdown) that dump through `dumps`.
    pub fn new(fetcher: Fetcher, root: CancellationToken, dumps: Arc<DumpManager>) -> Self {
        Loops {
            fetcher,
            permits: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_SCRAPES)),
            root,
            running: std::sync::Mutex::new(Vec::new()),
            dumps,
            observer: None,
        }
    }

    /// The same loops, telling `observer` at the end of every tick.
    pub fn observed_by(mut self, observer: Arc<dyn TickObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The client the loops share (probes use it too, under their own permits).
    pub fn fetcher(&self) -> Fetcher {
        self.fetcher.clone()
    }

    /// Makes the running loops match `targets`: loops of targets no longer present
    /// (by identity) are stopped, new ones started.
    pub fn sync(&self, targets: &[Arc<TargetState>]) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|(t, token)| {
            let keep = targets.iter().any(|n| Arc::ptr_eq(n, t));
            if !keep {
                tracing::info!(target_name = %t.config.name, "stopped watching target");
                token.cancel();
            }
            keep
        });
        for t in targets {
            if running.iter().any(|(r, _)| Arc::ptr_eq(r, t)) {
                continue;
            }
            tracing::info!(target_name = %t.config.name, url = %scrape::redact_url(t.config.url.as_str()), interval = ?t.config.interval, "watching target");
            let token = self.root.child_token();
            tokio::spawn(super::tick::run(
                t.clone(),
                self.fetcher.clone(),
                self.permits.clone(),
                token.clone(),
                Some(self.dumps.clone()),
                self.observer.clone(),
            ));
            running.push((t.clone(), token));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(targets: &[(&str, &str)]) -> Config {
        let mut yaml = String::from("system:\n  kernel_log: 'off'\ntargets:\n");
        for (name, url) in targets {
            yaml.push_str(&format!("  - name: {name}\n    url: {url}\n"));
        }
        Config::from_yaml(&yaml).unwrap()
    }

    /// A target that keeps its name across a reload keeps its OOM-kill history, even
    /// when the rest of its config changed (fleet mode's restarted container: a new
    /// pid, a new forwarder port); a new name starts with none.
    #[test]
    fn oom_kill_history_follows_the_name() {
        let targets = Targets::new(&config(&[
            ("a", "http://127.0.0.1:1"),
            ("b", "http://127.0.0.1:2"),
        ]));
        for t in targets.snapshot() {
            t.record_oom_kill(1_800_000_000.0, None);
        }
        let next = targets.reload(
            &config(&[("a", "http://127.0.0.1:3"), ("c", "http://127.0.0.1:2")]),
            false,
        );
        let kills: Vec<(String, u64)> = next
            .iter()
            .map(|t| (t.config.name.clone(), t.status().oom.kills))
            .collect();
        assert_eq!(kills, [("a".to_string(), 1), ("c".to_string(), 0)]);
    }
}
