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

/// State shared by the HTTP handlers and the scrape loops.
#[derive(Debug)]
pub struct AppState {
    pub targets: Arc<Targets>,
    pub kernel: Arc<KernelLogStatus>,
    pub registry: Registry,
}

impl AppState {
    pub fn new(targets: Vec<Arc<TargetState>>) -> Self {
        let targets = Arc::new(Targets {
            list: RwLock::new(targets),
        });
        let kernel = Arc::new(KernelLogStatus::default());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(TargetsCollector {
            targets: targets.clone(),
            kernel: kernel.clone(),
        }));
        AppState {
            targets,
            kernel,
            registry,
        }
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
}

impl Collector for TargetsCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> std::result::Result<(), std::fmt::Error> {
        let targets = self.targets.snapshot();
        let mut groups = Vec::with_capacity(targets.len() + 1);
        let mut global = Sink::new();
        global.gauge_with(
            "leakwatch_build_info",
            &[env!("CARGO_PKG_VERSION")],
            1u64,
        );
        global.gauge("leakwatch_targets", targets.len() as u64);
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
            groups.push(LabelledSamples {
                target_labels: t.config.label_pairs(),
                samples: sink.samples,
            });
        }
        metrics::encode_groups(&groups, encoder)
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

/// Runs the exporter on `listener` until `shutdown` completes: one scrape loop per
/// target, and the HTTP server. Returns once both have stopped.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let fetcher = scrape::Fetcher::new()?;
    let state = Arc::new(AppState::new(build_targets(&config)));
    let cancel = CancellationToken::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_SCRAPES));
    let mut loops = tokio::task::JoinSet::new();
    for t in state.targets() {
        tracing::info!(target_name = %t.config.name, url = %scrape::redact_url(t.config.url.as_str()), interval = ?t.config.interval, "watching target");
        loops.spawn(scrape::run_target(
            t,
            fetcher.clone(),
            permits.clone(),
            cancel.clone(),
        ));
    }
    let kernel_reader = start_kernel_log(&config.system.kernel_log, state.clone());
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading the address of", "listener", e))?;
    tracing::info!(%addr, "listening");
    let app = http::app(state.clone());
    let cancel_http = cancel.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
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
    while loops.join_next().await.is_some() {}
    result
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
            *state.kernel.readable.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((source.to_string(), false));
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
