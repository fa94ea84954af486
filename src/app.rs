//! The running exporter: one [`run`] that starts a scrape loop per target, fleet mode's
//! discovery, the dump scheduler, the kernel-log follower and the HTTP server, and
//! reloads on SIGHUP.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::http;
use crate::http::address::ExternalUrl;
use crate::http::web::WebConfig;
use crate::kernel_log;
use crate::scrape::Fetcher;
use crate::state::{AppState, WriteAccess};
use crate::targets::Loops;

/// How [`run`] serves, beyond the config: all off by default (no reload file, plain
/// HTTP, no write endpoints).
#[derive(Debug, Default)]
pub struct RunOptions {
    /// The config file, so `SIGHUP` (and `POST /-/reload` with `write.lifecycle`) can
    /// re-read it; `None` with `--target` or the default target.
    pub config_path: Option<PathBuf>,
    /// The web config (`--web.config.file`): TLS, client certificates, basic auth.
    pub web: Option<WebConfig>,
    /// Which write endpoints are on.
    pub write: WriteAccess,
    /// `--collector.<name>` (true) / `--no-collector.<name>` (false), in order; they win
    /// over the config's `metrics:` at startup and on reload.
    pub collectors: Vec<(crate::config::Collector, bool)>,
    /// `--web.external-url`: every link and command the pages print, and
    /// `leakwatch_web_info`. Without it the pages use each request's `Host`, and
    /// `leakwatch_web_info` carries the listener's address unless that is a wildcard.
    pub external_url: Option<ExternalUrl>,
}

/// Runs the exporter on `listener` until `shutdown` completes: one scrape loop per
/// target, the kernel-log follower, the HTTP server, and reloads on SIGHUP.
pub async fn run(
    config: Config,
    options: RunOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    for w in &config.warnings {
        tracing::warn!("config: {w}");
    }
    let cancel = CancellationToken::new();
    let system = config.system.clone();
    let mut state = AppState::new(config)?;
    let loops = Arc::new(
        Loops::new(Fetcher::new()?, cancel.clone(), state.dumps.clone())
            .observed_by(state.metrics.clone()),
    );
    state.config_path = options.config_path;
    state.loops = Some(loops.clone());
    state.write_access = options.write;
    state.set_collector_flags(options.collectors);
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading the address of", "listener", e))?;
    let tls = options.web.as_ref().is_some_and(WebConfig::tls_enabled);
    if let Some(url) = options
        .external_url
        .clone()
        .or_else(|| ExternalUrl::of_listener(addr, tls))
    {
        state.metrics.set_external_url(url.exported());
    }
    let state = Arc::new(state);
    loops.sync(&state.targets());
    if state.config().discover.enabled {
        tokio::spawn(crate::fleet::runner::run(state.clone(), cancel.clone()));
    }
    tokio::spawn(state.dumps.clone().run(cancel.clone()));
    let kernel_reader = kernel_log::start(&system, state.targets.clone(), state.kernel.clone());
    spawn_sighup_reloader(state.clone(), cancel.clone());
    tracing::info!(%addr, "listening");
    let app = http::app(state.clone());
    // Read by the pages' `Instance` extractor before any request's `Host`.
    let app = match options.external_url {
        Some(url) => app.layer(axum::Extension(url)),
        None => app,
    };
    let cancel_http = cancel.clone();
    let server = http::web::serve(listener, app, options.web, async move {
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
