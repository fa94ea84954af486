//! The registry of watched targets and their scrape loops: the list swapped as a whole
//! on reload, and the loops started and stopped to match it.

use std::sync::{Arc, RwLock};

use tokio_util::sync::CancellationToken;

use super::state::TargetState;
use crate::config::Config;
use crate::dump::DumpManager;
use crate::scrape::{self, Fetcher};

/// Upper bound on scrapes in flight at once, across all targets.
pub const MAX_CONCURRENT_SCRAPES: usize = 32;

/// The targets being watched. Swapped as a whole on reload.
#[derive(Debug, Default)]
pub struct Targets {
    list: RwLock<Vec<Arc<TargetState>>>,
}

impl Targets {
    /// The registry of `config`'s targets.
    pub fn new(config: &Config) -> Self {
        Targets {
            list: RwLock::new(build_targets(config)),
        }
    }

    pub fn snapshot(&self) -> Vec<Arc<TargetState>> {
        self.list.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, new: Vec<Arc<TargetState>>) {
        *self.list.write().unwrap_or_else(|e| e.into_inner()) = new;
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

/// The running scrape loops, one per target, so a reload can start and stop them.
#[derive(Debug)]
pub struct Loops {
    fetcher: Fetcher,
    permits: Arc<tokio::sync::Semaphore>,
    root: CancellationToken,
    running: std::sync::Mutex<Vec<(Arc<TargetState>, CancellationToken)>>,
    dumps: Arc<DumpManager>,
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
        }
    }

    /// The client and the scrape permits the loops share (probes use them too).
    pub fn fetcher_and_permits(&self) -> (Fetcher, Arc<tokio::sync::Semaphore>) {
        (self.fetcher.clone(), self.permits.clone())
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
            ));
            running.push((t.clone(), token));
        }
    }
}
