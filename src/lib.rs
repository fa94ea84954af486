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
//! | [`metrics`] | the table of every metric, and the scrape-time collector |
//! | [`http`] | axum routes: `/metrics`, `/`, `/-/healthy`, `/-/ready` |
//! | [`error`] | the one error enum |
#![forbid(unsafe_code)]

pub mod analysis;
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

/// State shared by the HTTP handlers and the scrape loops.
#[derive(Debug)]
pub struct AppState {
    pub targets: Arc<Targets>,
    pub registry: Registry,
}

impl AppState {
    pub fn new(targets: Vec<Arc<TargetState>>) -> Self {
        let targets = Arc::new(Targets {
            list: RwLock::new(targets),
        });
        let mut registry = Registry::default();
        registry.register_collector(Box::new(TargetsCollector {
            targets: targets.clone(),
        }));
        AppState { targets, registry }
    }

    pub fn targets(&self) -> Vec<Arc<TargetState>> {
        self.targets.snapshot()
    }
}

/// Builds every series at scrape time from the targets' current state.
#[derive(Debug)]
struct TargetsCollector {
    targets: Arc<Targets>,
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
    while loops.join_next().await.is_some() {}
    result
}
