//! leakwatch: a Prometheus exporter that catches memory leaks in Go services
//! before the OOM killer does.
//!
//! Data flows one way: **targets → fetch → parse → analyse → metrics / dumps / status**.
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | strict YAML config, flags, defaults, validation |
//! | [`scrape`] | the per-target schedule and the one HTTP client: timeouts, size caps |
//! | [`pprof`] | pure parsers of Go's pprof text and protobuf formats |
//! | [`system`] | cgroup v1/v2 memory files, `/proc`, kernel OOM-kill log |
//! | [`analysis`] | the per-target window, slopes, leak signals, verdict, heap diff |
//! | [`target`] | each target's latest state, shared between scraper and HTTP |
//! | [`budget`] | the overhead budget: per-endpoint intervals stretched to cap the service's cost |
//! | [`metrics`] | the table of every metric, and the scrape-time collector |
//! | [`http`] | axum routes: `/metrics`, `/`, `/-/healthy`, `/-/ready` |
//! | [`dump`] | profile dumps: schedule, suspicion pairs, atomic writes, retention, API |
//! | [`report`] | the report page of one target |
//! | [`watch`] | `leakwatch watch`: the terminal view on the same targets and verdict |
//! | [`web`] | TLS and basic auth for leakwatch's own endpoints (exporter-toolkit web config) |
//! | [`units`] | durations, sizes, UTC stamps and the clock: the one parser and formatter |
//! | [`error`] | the one error enum |
#![forbid(unsafe_code)]

pub mod analysis;
pub mod budget;
pub mod config;
pub mod dump;
pub mod error;
pub mod http;
pub mod metrics;
pub mod pprof;
pub mod scrape;
pub mod system;
pub mod target;
pub mod units;
pub mod watch;
pub use http::web;

use std::future::Future;
use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::{Error, Result};

use crate::config::Config;
use crate::metrics::{LabelledSamples, Sink};
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

/// Builds every series at scrape time from the targets' current state.
#[derive(Debug)]
struct TargetsCollector {
    targets: Arc<Targets>,
    kernel: Arc<KernelLogStatus>,
    reload: Arc<ReloadStatus>,
    dumps: Arc<dump::DumpManager>,
}

impl Collector for TargetsCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> std::result::Result<(), std::fmt::Error> {
        let targets = self.targets.snapshot();
        let mut groups = Vec::with_capacity(targets.len() + 1);
        let mut global = Sink::new();
        global.gauge_with("leakwatch_build_info", &[env!("CARGO_PKG_VERSION")], 1u64);
        global.gauge("leakwatch_targets", targets.len() as u64);
        global.gauge(
            "leakwatch_config_last_reload_successful",
            self.reload
                .last_ok
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        global.gauge(
            "leakwatch_config_last_reload_success_timestamp_seconds",
            *self
                .reload
                .last_success_unix
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        if let Some((source, ok)) = self
            .kernel
            .readable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            global.gauge_with("leakwatch_kernel_log_readable", &[&source], ok);
            global.counter(
                "leakwatch_host_oom_kills",
                self.kernel
                    .host_kills
                    .load(std::sync::atomic::Ordering::Relaxed),
            );
        }
        groups.push(LabelledSamples {
            target_labels: Vec::new(),
            samples: global.samples,
        });
        for t in &targets {
            let mut sink = Sink::new();
            t.push_samples(&mut sink);
            self.dumps.push_samples(&t.config.name, &mut sink);
            groups.push(LabelledSamples {
                target_labels: t.config.label_pairs(),
                samples: sink.samples,
            });
        }
        metrics::encode_groups(&groups, encoder)
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
            tokio::spawn(scrape::run_target(
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

/// [`run`] with the config file's path, so `SIGHUP` and `POST /-/reload` can re-read it.
pub async fn run_with(
    config: Config,
    config_path: Option<std::path::PathBuf>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    run_full(config, config_path, None, listener, shutdown).await
}

/// [`run_with`] behind the web config (`--web.config.file`): TLS, client
/// certificates, basic auth; plain HTTP with `None`.
pub async fn run_full(
    config: Config,
    config_path: Option<std::path::PathBuf>,
    web: Option<web::WebConfig>,
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
    let state = Arc::new(state);
    let _ = loops.dumps.set(state.dumps.clone());
    loops.sync(&state.targets());
    tokio::spawn(state.dumps.clone().run(cancel.clone()));
    let kernel_reader = start_kernel_log(&kernel_log, state.clone());
    spawn_sighup_reloader(state.clone(), cancel.clone());
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading the address of", "listener", e))?;
    tracing::info!(%addr, "listening");
    let app = http::app(state.clone());
    let cancel_http = cancel.clone();
    let server = web::serve(listener, app, web, async move {
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

/// Starts following the kernel log for OOM kills (unless `off`): a std thread reads it,
/// another attributes each kill to the target whose cgroup or pid matches, or counts
/// it host-wide.
fn start_kernel_log(source: &str, state: Arc<AppState>) -> Option<Arc<system::KernelLogReader>> {
    use system::{KernelLogOptions, KernelLogSource};
    if source == "off" {
        return None;
    }
    let kind = if source.starts_with("/dev/") {
        KernelLogSource::Kmsg(source.into())
    } else {
        KernelLogSource::File(source.into())
    };
    let is_kmsg = matches!(kind, KernelLogSource::Kmsg(_));
    let (tx, rx) = std::sync::mpsc::channel::<system::OomKill>();
    let reader = match system::spawn_kernel_log_reader(kind, KernelLogOptions::default(), tx) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            tracing::warn!(source, error = %e, "cannot start the kernel log reader");
            *state
                .kernel
                .readable
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some((source.to_string(), false));
            return None;
        }
    };
    let source = source.to_string();
    let health = state.kernel.clone();
    let watcher = reader.clone();
    std::thread::Builder::new()
        .name("leakwatch-oom".into())
        .spawn(move || {
            loop {
                // Refresh the health gauge at least every second.
                let next = rx.recv_timeout(std::time::Duration::from_secs(1));
                if let Some(ok) = watcher.readable() {
                    *health.readable.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((source.clone(), ok));
                }
                match next {
                    Ok(kill) => attribute_kill(&state, &kill, is_kmsg),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
        })
        .ok()?;
    Some(reader)
}

/// When the machine booted: now minus `/proc/uptime`.
fn boot_time() -> Option<std::time::SystemTime> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let up: f64 = text.split_whitespace().next()?.parse().ok()?;
    std::time::SystemTime::now().checked_sub(std::time::Duration::from_secs_f64(up))
}

fn attribute_kill(state: &AppState, kill: &system::OomKill, is_kmsg: bool) {
    let targets = state.targets();
    let ids: Vec<(String, Option<u32>, Option<String>)> = targets
        .iter()
        .map(|t| {
            let (pid, cg) = t.oom_identity();
            (t.config.name.clone(), pid, cg)
        })
        .collect();
    let refs: Vec<(&str, Option<u32>, Option<&str>)> = ids
        .iter()
        .map(|(n, p, c)| (n.as_str(), *p, c.as_deref()))
        .collect();
    let now = std::time::SystemTime::now();
    // /dev/kmsg times are since boot; a replayed file's are from another boot.
    let when = match (is_kmsg, kill.monotonic_usec, boot_time()) {
        (true, Some(us), Some(boot)) => boot + std::time::Duration::from_micros(us),
        _ => now,
    };
    let unix = when
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    match system::attribute(kill, &refs) {
        Some(name) => {
            tracing::warn!(target_name = name, pid = kill.pid, task = %kill.task, memcg = ?kill.task_memcg, anon_rss_bytes = ?kill.anon_rss_bytes, "OOM kill of a watched process");
            if let Some(t) = targets.iter().find(|t| t.config.name == name) {
                t.record_oom_kill(unix, kill.anon_rss_bytes);
            }
        }
        None => {
            tracing::info!(pid = kill.pid, task = %kill.task, memcg = ?kill.task_memcg, "OOM kill of a process no target watches");
            state
                .kernel
                .host_kills
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
