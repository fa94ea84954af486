//! leakwatch: a Prometheus exporter that catches memory leaks in Go services
//! before the OOM killer does.
//!
//! Data flows one way: **targets → fetch → parse → analyse → metrics / dumps / status**.
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | strict YAML config, defaults, validation; composes the section types of its users |
//! | [`scrape`] | the one HTTP client: auth, same-origin redirects, timeouts, size caps, streaming |
//! | [`target`] | one target: its state, its loop and tick (fetch → parse → read system → analyse) |
//! | [`budget`] | the overhead budget: per-endpoint intervals stretched to cap the service's cost |
//! | [`pprof`] | pure parsers of Go's pprof text and protobuf formats; loading profile files |
//! | [`system`] | cgroup v1/v2 memory files, `/proc`, kernel OOM-kill log: readers and parsers |
//! | [`analysis`] | the per-target window, slopes and trend tests, leak signals, verdict, heap diff |
//! | [`metrics`] | the only place with metric names: the table, every emitter, the collector |
//! | [`dump`] | profile dumps: schedule, triggers, and the store (names, retention, atomic writes) |
//! | [`http`] | the only place with HTML: routes, pages, dumps API, TLS and basic auth |
//! | [`rules`] | the shipped Prometheus rule file, rendered with an install's runbook and dashboard links |
//! | [`watch`] | `leakwatch watch`: the terminal view on the same targets and verdict |
//! | [`kernel_log`] | follows the kernel log and attributes OOM kills to targets |
//! | [`secrets`] | a target's known secret values, scrubbed from every error text shown |
//! | [`units`] | durations, sizes, UTC stamps and the clock: the one parser and formatter |
//! | [`error`] | the one error enum |
#![forbid(unsafe_code)]

pub mod analysis;
pub mod budget;
pub mod config;
pub mod dump;
pub mod error;
pub mod http;
pub mod kernel_log;
pub mod metrics;
pub mod pprof;
pub mod rules;
pub mod scrape;
pub mod secrets;
pub mod system;
pub mod target;
pub mod units;
pub mod watch;

use std::future::Future;
use std::sync::{Arc, RwLock};

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::{Error, Result};

use crate::config::Config;
use crate::metrics::TargetsCollector;
use crate::target::TargetState;

/// Upper bound on scrapes in flight at once, across all targets.
pub const MAX_CONCURRENT_SCRAPES: usize = 32;

/// The targets being watched. Swapped as a whole on reload.
#[derive(Debug, Default)]
pub struct Targets {
    list: RwLock<Vec<Arc<TargetState>>>,
}

impl Targets {
    pub fn snapshot(&self) -> Vec<Arc<TargetState>> {
        self.list.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, new: Vec<Arc<TargetState>>) {
        *self.list.write().unwrap_or_else(|e| e.into_inner()) = new;
    }
}

/// The kernel-log follower's health and the kills it could not attribute.
#[derive(Debug, Default)]
pub struct KernelLogStatus {
    /// (source path, readable) once the follower has tried to open the log.
    pub readable: std::sync::Mutex<Option<(String, bool)>>,
    pub host_kills: std::sync::atomic::AtomicU64,
}

/// Outcome of the last configuration reload.
#[derive(Debug)]
pub struct ReloadStatus {
    pub last_ok: std::sync::atomic::AtomicBool,
    pub last_success_unix: std::sync::Mutex<f64>,
}

impl Default for ReloadStatus {
    fn default() -> Self {
        ReloadStatus {
            last_ok: std::sync::atomic::AtomicBool::new(true),
            last_success_unix: std::sync::Mutex::new(crate::units::unix_now_f64()),
        }
    }
}

/// The running scrape loops, one per target, so a reload can start and stop them.
#[derive(Debug)]
pub struct Loops {
    fetcher: scrape::Fetcher,
    permits: Arc<tokio::sync::Semaphore>,
    root: CancellationToken,
    running: std::sync::Mutex<Vec<(Arc<TargetState>, CancellationToken)>>,
    dumps: std::sync::OnceLock<Arc<dump::DumpManager>>,
}

/// State shared by the HTTP handlers and the scrape loops.
#[derive(Debug)]
pub struct AppState {
    pub targets: Arc<Targets>,
    pub kernel: Arc<KernelLogStatus>,
    pub registry: Registry,
    pub reload: Arc<ReloadStatus>,
    /// The config in force (probe allowlist and modules are read from it).
    pub config: RwLock<Arc<Config>>,
    /// Where the config came from, for reloads; `None` with `--target` or the default.
    pub config_path: Option<std::path::PathBuf>,
    /// Set by [`run`]; absent in states built for tests of the HTTP layer alone.
    pub loops: Option<Arc<Loops>>,
    /// Profile dumps of every target (targets without `dumps.dir` are off).
    pub dumps: Arc<dump::DumpManager>,
    /// Which write endpoints are on (`--web.enable-lifecycle`, `--web.enable-admin-api`).
    pub write_access: http::WriteAccess,
}

impl AppState {
    /// State for `config`'s targets, with no scrape loops running.
    pub fn new(config: Config) -> Result<Self> {
        let targets = Arc::new(Targets {
            list: RwLock::new(build_targets(&config)),
        });
        let dumps = Arc::new(dump::DumpManager::new(dump_targets(&config))?);
        let kernel = Arc::new(KernelLogStatus::default());
        let reload = Arc::new(ReloadStatus::default());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(TargetsCollector {
            targets: targets.clone(),
            kernel: kernel.clone(),
            reload: reload.clone(),
            dumps: dumps.clone(),
        }));
        Ok(AppState {
            targets,
            kernel,
            registry,
            reload,
            config: RwLock::new(Arc::new(config)),
            config_path: None,
            loops: None,
            dumps,
            write_access: http::WriteAccess::default(),
        })
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
        let system_changed = old.system != new.system;
        if old.system.kernel_log != new.system.kernel_log {
            tracing::warn!("system.kernel_log changes take effect on restart");
        }
        let previous = self.targets.snapshot();
        let system = Arc::new(new.system.clone());
        let mut next = Vec::with_capacity(new.targets.len());
        for tc in &new.targets {
            let kept = previous
                .iter()
                .find(|t| !system_changed && t.config == *tc)
                .cloned();
            next.push(
                kept.unwrap_or_else(|| Arc::new(TargetState::new(tc.clone(), system.clone()))),
            );
        }
        let n = next.len();
        self.dumps.set_targets(dump_targets(&new));
        if let Some(loops) = &self.loops {
            loops.sync(&next);
        }
        self.targets.replace(next);
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
        n
    }

    pub fn targets(&self) -> Vec<Arc<TargetState>> {
        self.targets.snapshot()
    }
}

/// The dump settings of every target of a config.
fn dump_targets(config: &Config) -> Vec<dump::DumpTarget> {
    config
        .targets
        .iter()
        .map(|t| {
            dump::DumpTarget::new(t.name.clone(), t.url.clone(), t.dumps.clone())
                .with_auth(t.auth.clone())
                .with_overhead_budget(t.overhead_budget)
        })
        .collect()
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

impl Loops {
    /// Makes the running loops match `targets`: loops of targets no longer present
    /// (by identity) are stopped, new ones started.
    fn sync(&self, targets: &[Arc<TargetState>]) {
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
            tokio::spawn(target::run(
                t.clone(),
                self.fetcher.clone(),
                self.permits.clone(),
                token.clone(),
                self.dumps.get().cloned(),
            ));
            running.push((t.clone(), token));
        }
    }
}

/// Runs the exporter on `listener` until `shutdown` completes: one scrape loop per
/// target, the kernel-log follower, the HTTP server, and reloads on SIGHUP.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    run_with(config, None, listener, shutdown).await
}

/// [`run`] with the config file's path, so `SIGHUP` (and `POST /-/reload` with
/// [`run_full`]'s write access) can re-read it.
pub async fn run_with(
    config: Config,
    config_path: Option<std::path::PathBuf>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    run_full(
        config,
        config_path,
        None,
        http::WriteAccess::default(),
        listener,
        shutdown,
    )
    .await
}

/// [`run_with`] behind the web config (`--web.config.file`): TLS, client
/// certificates, basic auth; plain HTTP with `None`. `write` says which write
/// endpoints are on (both off in [`run`] and [`run_with`]).
pub async fn run_full(
    config: Config,
    config_path: Option<std::path::PathBuf>,
    web: Option<http::web::WebConfig>,
    write: http::WriteAccess,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let cancel = CancellationToken::new();
    let loops = Arc::new(Loops {
        fetcher: scrape::Fetcher::new()?,
        permits: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_SCRAPES)),
        root: cancel.clone(),
        running: std::sync::Mutex::new(Vec::new()),
        dumps: std::sync::OnceLock::new(),
    });
    let kernel_log = config.system.kernel_log.clone();
    let mut state = AppState::new(config)?;
    state.config_path = config_path;
    state.loops = Some(loops.clone());
    state.write_access = write;
    let state = Arc::new(state);
    let _ = loops.dumps.set(state.dumps.clone());
    loops.sync(&state.targets());
    tokio::spawn(state.dumps.clone().run(cancel.clone()));
    let kernel_reader = kernel_log::start(&kernel_log, state.clone());
    spawn_sighup_reloader(state.clone(), cancel.clone());
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading the address of", "listener", e))?;
    tracing::info!(%addr, "listening");
    let app = http::app(state.clone());
    let cancel_http = cancel.clone();
    let server = http::web::serve(listener, app, web, async move {
        shutdown.await;
        cancel_http.cancel();
    });
    let result = server
        .await
        .map_err(|e| Error::io("serving on", addr.to_string(), e));
    cancel.cancel();
    if let Some(r) = kernel_reader {
        r.stop();
    }
    result
}

fn spawn_sighup_reloader(state: Arc<AppState>, cancel: CancellationToken) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: reload with POST /-/reload");
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let s = state.clone();
                    let _ = tokio::task::spawn_blocking(move || s.reload()).await;
                }
                _ = cancel.cancelled() => return,
            }
        }
    });
}
