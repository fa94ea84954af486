//! The exporter's shared state, read by the HTTP handlers and the loops: the target
//! registry, the config in force and its reload, the kernel-log status, the metrics
//! page and which write endpoints are on.

use std::sync::{Arc, RwLock};

use crate::config::{Collector, Config, ReloadStatus, TargetConfig};
use crate::dump::DumpManager;
use crate::error::{Error, Result};
use crate::kernel_log::KernelLogStatus;
use crate::metrics::TargetsCollector;
use crate::scrape::Fetcher;
use crate::targets::{Loops, TargetState, Targets};

/// Which write endpoints are on (`--web.enable-lifecycle`, `--web.enable-admin-api`);
/// both off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteAccess {
    /// `POST /-/reload` (SIGHUP reloads whatever this says).
    pub lifecycle: bool,
    /// `POST /api/v1/dump` and `POST /api/v1/targets/{name}/baseline`, and any other
    /// write route.
    pub admin_api: bool,
}

impl WriteAccess {
    /// Both on (tests, and operators who pass both flags).
    pub const ALL: WriteAccess = WriteAccess {
        lifecycle: true,
        admin_api: true,
    };
}

/// Upper bound on `/probe` requests fetching at once: their own permits, apart from
/// the scrape loops' [`crate::MAX_CONCURRENT_SCRAPES`], so probes of slow targets
/// never hold the permits configured targets need (before: 32 probes of a target
/// sending 1 byte/s held them all and no configured target was scraped for 21 s).
pub const MAX_CONCURRENT_PROBES: usize = 8;

/// State shared by the HTTP handlers and the scrape loops.
#[derive(Debug)]
pub struct AppState {
    pub targets: Arc<Targets>,
    pub kernel: Arc<KernelLogStatus>,
    /// The `/metrics` page: per-target blocks encoded once per tick (the loops tell it).
    pub metrics: Arc<TargetsCollector>,
    pub reload: Arc<ReloadStatus>,
    /// The config in force (probe allowlist and modules are read from it).
    pub config: RwLock<Arc<Config>>,
    /// Where the config came from, for reloads; `None` with `--target` or the default.
    pub config_path: Option<std::path::PathBuf>,
    /// Set by `app::run`; absent in states built for tests of the HTTP layer alone.
    pub loops: Option<Arc<Loops>>,
    /// Profile dumps of every target (targets without `dumps.dir` are off).
    pub dumps: Arc<DumpManager>,
    /// Which write endpoints are on (`--web.enable-lifecycle`, `--web.enable-admin-api`).
    pub write_access: WriteAccess,
    /// The permits of `/probe` ([`MAX_CONCURRENT_PROBES`]).
    pub probe_permits: Arc<tokio::sync::Semaphore>,
    /// The targets fleet mode found (`--discover`), watched beside the configured ones.
    discovered: RwLock<Vec<TargetConfig>>,
    /// `--collector.<name>` / `--no-collector.<name>`: over the config's `metrics:` at
    /// every load and reload.
    collector_flags: Vec<(Collector, bool)>,
}

impl AppState {
    /// State for `config`'s targets, with no scrape loops running.
    pub fn new(config: Config) -> Result<Self> {
        let targets = Arc::new(Targets::new(&config));
        let dumps = Arc::new(DumpManager::over(targets.clone(), Fetcher::new()?));
        let kernel = Arc::new(KernelLogStatus::default());
        let reload = Arc::new(ReloadStatus::default());
        let metrics = Arc::new(TargetsCollector::new(
            targets.clone(),
            kernel.clone(),
            reload.clone(),
            dumps.clone(),
        ));
        metrics.set_collectors(config.metrics.in_force(&[]));
        Ok(AppState {
            targets,
            kernel,
            metrics,
            reload,
            config: RwLock::new(Arc::new(config)),
            config_path: None,
            loops: None,
            dumps,
            write_access: WriteAccess::default(),
            probe_permits: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_PROBES)),
            discovered: RwLock::new(Vec::new()),
            collector_flags: Vec::new(),
        })
    }

    /// Sets the `--collector.*` flags, which win over the config's `metrics:` now and
    /// at every reload.
    pub fn set_collector_flags(&mut self, flags: Vec<(Collector, bool)>) {
        self.metrics
            .set_collectors(self.config().metrics.in_force(&flags));
        self.collector_flags = flags;
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the config file and applies it: parsed and validated first, swapped only
    /// on success (the old config stays on failure). Unchanged targets keep their
    /// state and analysis window; added ones start, removed ones stop.
    pub fn reload(&self) -> Result<usize> {
        let result = match &self.config_path {
            None => Err(Error::Config(
                "no --config file to reload (targets came from the command line)".to_string(),
            )),
            Some(path) => Config::load(path).map(|c| self.apply(c)),
        };
        let ok = result.is_ok();
        self.reload
            .last_ok
            .store(ok, std::sync::atomic::Ordering::Relaxed);
        match &result {
            Ok(n) => {
                *self
                    .reload
                    .last_success_unix
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = crate::units::unix_now_f64();
                tracing::info!(targets = n, "configuration reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "configuration reload failed; keeping the old configuration")
            }
        }
        result
    }

    /// Swaps in a validated config; returns the number of targets.
    fn apply(&self, new: Config) -> usize {
        let old = self.config();
        // Each warning once: those the running config already had were logged.
        for w in new.warnings.iter().filter(|w| !old.warnings.contains(w)) {
            tracing::warn!("config: {w}");
        }
        let system_changed = old.system != new.system;
        if old.system.kernel_log != new.system.kernel_log {
            tracing::warn!("system.kernel_log changes take effect on restart");
        }
        let next = self
            .targets
            .reload(&self.with_discovered(&new), system_changed);
        let n = next.len();
        if let Some(loops) = &self.loops {
            loops.sync(&next);
        }
        self.metrics
            .set_collectors(new.metrics.in_force(&self.collector_flags));
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
        n
    }

    /// `config` with the discovered targets after its own (a configured name wins).
    fn with_discovered(&self, config: &Config) -> Config {
        let found = self.discovered.read().unwrap_or_else(|e| e.into_inner());
        let mut all = config.clone();
        all.targets.extend(
            found
                .iter()
                .filter(|d| !config.targets.iter().any(|t| t.name == d.name))
                .cloned(),
        );
        all
    }

    /// Swaps in the targets fleet mode found: unchanged ones keep their state, new
    /// ones start, gone ones stop. A no-op when nothing changed.
    pub fn set_discovered(&self, found: Vec<TargetConfig>) {
        {
            let mut d = self.discovered.write().unwrap_or_else(|e| e.into_inner());
            if *d == found {
                return;
            }
            *d = found;
        }
        let next = self
            .targets
            .reload(&self.with_discovered(&self.config()), false);
        if let Some(loops) = &self.loops {
            loops.sync(&next);
        }
    }

    pub fn targets(&self) -> Vec<Arc<TargetState>> {
        self.targets.snapshot()
    }
}
