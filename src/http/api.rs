//! The machine endpoints: `/metrics`, `POST /-/reload`, the baseline API and `/probe`
//! (a fresh one-off scrape under the probes' own concurrency limit and one deadline);
//! the two metrics pages answer gzip or zstd when the client's `Accept-Encoding`
//! offers it ([`compression`]).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::state::AppState;

/// Content type of the Prometheus text exposition format 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Largest baseline accepted by the baseline API (1 TiB): a Go heap above it is not a
/// baseline but a typo, and `u64::MAX` would read as "fix confirmed" forever.
pub const MAX_BASELINE_BYTES: u64 = 1 << 40;

/// The machine routes; `/metrics` and `/probe` behind [`compression`].
pub fn routes() -> Router<Arc<AppState>> {
    let pages = Router::new()
        .route("/metrics", get(metrics))
        .route("/probe", get(probe))
        .layer(compression());
    Router::new()
        .merge(pages)
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(|| async { "Ready\n" }))
        .route("/-/reload", post(reload))
        .route("/api/v1/targets/{name}/baseline", post(set_baseline))
}

/// Compression of the metrics pages, negotiated from `Accept-Encoding` (tower-http):
/// zstd or gzip, whichever the client gives the higher q-value (Prometheus 3 offers
/// both, 2.x gzip only); `q=0` refuses one; identity when nothing offered is
/// acceptable. Bodies under 32 bytes go plain. The body is compressed as it is
/// written, so a slow reader still moves bytes and the idle timeout of
/// [`super::server`] holds as for a plain answer. The fastest level of each: gzip's
/// default level took 90-110 ms for the 6.6 MB page of 1,000 targets (its plain
/// render ~12 ms), and Prometheus asks for gzip on every scrape.
pub fn compression() -> tower_http::compression::CompressionLayer {
    tower_http::compression::CompressionLayer::new()
        .quality(tower_http::CompressionLevel::Fastest)
        .gzip(true)
        .zstd(true)
        .no_br()
        .no_deflate()
}

/// `GET /metrics`: the targets' blocks, each encoded once per tick, concatenated.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let body = state.metrics.render();
    ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], body).into_response()
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
    if let Some(b) = q.bytes.filter(|b| !(1..=MAX_BASELINE_BYTES).contains(b)) {
        return (
            StatusCode::BAD_REQUEST,
            format!("bytes={b} is out of range: a baseline is 1 byte .. 1 TiB ({MAX_BASELINE_BYTES} bytes)\n"),
        )
            .into_response();
    }
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

/// A probe target is `scheme://host[:port]/path` and nothing else: userinfo would be
/// sent as credentials to whatever host follows the `@` (and fools a loose
/// `probe.allow` regex), a query or fragment would be glued into the pprof paths.
/// With those refused, the allowlist sees exactly what is fetched: the parsed URL,
/// never the raw string.
fn probe_url_shape(url: &reqwest::Url) -> Result<(), &'static str> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err("target must not carry userinfo (user:password@)");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("target must be scheme://host:port/path, without a query or fragment");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("target must name a host");
    }
    Ok(())
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
    if let Err(why) = probe_url_shape(&url) {
        return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
    }
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
    // One deadline for the whole probe, the wait for a permit included: a probe
    // answers within its module's timeout whatever the target does.
    let deadline = tokio::time::Instant::now() + tc.timeout;
    let fetcher = match &state.loops {
        Some(l) => l.fetcher(),
        None => match crate::scrape::Fetcher::new() {
            Ok(f) => f,
            Err(e) => {
                return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response();
            }
        },
    };
    // Probes' own permits, not the scrape loops': a slow probe target delays only
    // other probes, never the configured targets.
    let permit = tokio::time::timeout_at(deadline, state.probe_permits.clone().acquire_owned());
    let Ok(Ok(_permit)) = permit.await else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many probes in flight; try again later\n",
        )
            .into_response();
    };
    // One shot of a remote-style target: no looking for a local process behind it.
    let target = crate::targets::TargetState::new(tc, Arc::new(config.system.clone()))
        .without_listener()
        .with_deadline(deadline);
    let started = std::time::Instant::now();
    target.scrape_once(&fetcher).await;
    drop(_permit);
    let took = started.elapsed().as_secs_f64();
    let mut sink = crate::metrics::Sink::with(state.metrics.collectors());
    crate::metrics::emit::probe(&target, took, &mut sink);
    let block = crate::metrics::Block::encode(&crate::metrics::LabelledSamples {
        target_labels: Vec::new(),
        samples: sink.samples,
    });
    let body = crate::metrics::render(&[&block]);
    ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_targets_are_scheme_host_port_path_only() {
        for (url, ok) in [
            ("http://127.0.0.1:18001/", true),
            ("https://svc.example/base/", true),
            ("http://127.0.0.1:18001@127.0.0.2:18002/", false),
            ("http://u:p@127.0.0.1:18001/", false),
            ("http://:p@127.0.0.1:18001/", false),
            ("http://127.0.0.1:18001/?x=@127.0.0.2", false),
            ("http://127.0.0.1:18001/#@127.0.0.2", false),
        ] {
            let u = reqwest::Url::parse(url).unwrap();
            assert_eq!(probe_url_shape(&u).is_ok(), ok, "{url}");
        }
    }
}
