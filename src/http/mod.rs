//! leakwatch's own HTTP surface (axum) and the only place that writes HTML: `app()`
//! and its routes (`/metrics`, `/-/healthy`, `/-/ready`, `/-/reload`, `/probe`, the
//! baseline API) here; the landing page, the report page, the dumps pages and API,
//! and TLS/basic auth (the web config file) in the submodules. Handlers only read
//! state; they never scrape (except `/probe`, a fresh one-off scrape).

pub mod auth;
pub mod charts;
pub mod dumps;
pub mod html;
pub mod landing;
pub mod report;
pub mod server;
pub mod tls;
pub mod web;

pub use html::html_escape;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

/// Content type of the Prometheus text exposition format 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// All routes, over shared state. Tests call this with `tower::ServiceExt::oneshot`.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(landing::page))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(|| async { "Ready\n" }))
        .route("/-/reload", axum::routing::post(reload))
        .route("/probe", get(probe))
        .route(
            "/api/v1/targets/{name}/baseline",
            axum::routing::post(set_baseline),
        )
        .merge(report::routes())
        .merge(dumps::routes(state.dumps.clone()))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut body = String::with_capacity(64 * 1024);
    match prometheus_client::encoding::prometheus_text::encode(&mut body, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding metrics failed\n",
            )
                .into_response()
        }
    }
}

/// `POST /-/reload`: re-read the config file; the old config stays on failure.
async fn reload(State(state): State<Arc<AppState>>) -> Response {
    let s = state.clone();
    match tokio::task::spawn_blocking(move || s.reload()).await {
        Ok(Ok(n)) => (StatusCode::OK, format!("reloaded: {n} target(s)\n")).into_response(),
        Ok(Err(e)) => (
            StatusCode::BAD_REQUEST,
            format!("reload failed, keeping the old configuration: {e}\n"),
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "reload panicked\n").into_response(),
    }
}

#[derive(Debug, serde::Deserialize)]
struct BaselineQuery {
    /// Bytes; absent = the current live heap.
    bytes: Option<u64>,
}

/// `POST /api/v1/targets/{name}/baseline[?bytes=N]`: set the live-heap baseline a fix
/// is verified against (`leakwatch_heap_baseline_ratio`).
async fn set_baseline(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<BaselineQuery>,
) -> Response {
    let Some(t) = state.targets().into_iter().find(|t| t.config.name == name) else {
        return (StatusCode::NOT_FOUND, format!("unknown target {name:?}\n")).into_response();
    };
    match t.set_baseline(q.bytes) {
        Some(b) => {
            axum::Json(serde_json::json!({"target": name, "baseline_bytes": b})).into_response()
        }
        None => (
            StatusCode::CONFLICT,
            "no live heap known yet for this target: pass ?bytes=N or wait for a scrape\n",
        )
            .into_response(),
    }
}

#[derive(Debug, serde::Deserialize)]
struct ProbeQuery {
    target: Option<String>,
    module: Option<String>,
}

/// `GET /probe?target=URL&module=NAME`: one fresh scrape of a Go service, returned as
/// its own metrics page (the blackbox_exporter pattern, a new registry per request), so
/// Prometheus service discovery can drive leakwatch. Only configured targets' URLs and
/// `probe.allow` patterns may be probed: everything else is 403 (no open proxy). A
/// probe has no history, so it exposes the point-in-time series (MemStats, heap totals,
/// in-use share, goroutines and states, HTTP connections) but no slopes, verdicts or
/// time-to-OOM: those need a configured target's window.
async fn probe(
    State(state): State<Arc<AppState>>,
    axum::extract::Query(q): axum::extract::Query<ProbeQuery>,
) -> Response {
    let Some(raw) = q.target else {
        return (StatusCode::BAD_REQUEST, "target parameter is missing\n").into_response();
    };
    let url = match reqwest::Url::parse(&raw) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => u,
        _ => {
            return (StatusCode::BAD_REQUEST, "target must be an http(s) URL\n").into_response();
        }
    };
    let config = state.config();
    if !config.probe_allowed(&url) {
        tracing::warn!(target_url = %crate::scrape::redact_url(url.as_str()), "probe refused: not a configured target nor allowed by probe.allow");
        return (
            StatusCode::FORBIDDEN,
            "target not allowed: configure it as a target or match probe.allow\n",
        )
            .into_response();
    }
    let module = q.module.unwrap_or_else(|| "default".to_string());
    let tc = match config.probe_target(url, &module) {
        Ok(t) => t,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let fetcher = match crate::scrape::Fetcher::new() {
        Ok(f) => f,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    };
    let target = crate::target::TargetState::new(tc, Arc::new(config.system.clone()));
    let started = std::time::Instant::now();
    target.scrape_once(&fetcher).await;
    let took = started.elapsed().as_secs_f64();
    let mut sink = crate::metrics::Sink::new();
    crate::metrics::emit::probe(&target, &mut sink);
    let success = target.status().up;
    sink.gauge("leakwatch_probe_success", success);
    sink.gauge("leakwatch_probe_duration_seconds", took);
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(crate::metrics::OneShot(vec![
        crate::metrics::LabelledSamples {
            target_labels: Vec::new(),
            samples: sink.samples,
        },
    ])));
    let mut body = String::new();
    match prometheus_client::encoding::prometheus_text::encode(&mut body, &registry) {
        Ok(()) => ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], body).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n").into_response(),
    }
}
