//! leakwatch's own HTTP surface (axum) and the only place that writes HTML: `app()`
//! and its routes (`/metrics`, `/-/healthy`, `/-/ready`, `/-/reload`, `/probe`, the
//! baseline API) here; the landing page, the report page, the dumps pages and API,
//! and TLS/basic auth (the web config file) in the submodules. Handlers only read
//! state; they never scrape (except `/probe`, a fresh one-off scrape under the scrape
//! concurrency limit).
//!
//! Writes are off by default, as in Prometheus: `POST /-/reload` needs
//! `--web.enable-lifecycle`, the dump and baseline APIs `--web.enable-admin-api`
//! ([`WriteAccess`]), and every write, when on, is refused from a cross-site page
//! ([`guard_writes`]).

pub mod auth;
pub mod charts;
pub mod dumps;
pub mod html;
pub mod landing;
pub mod report;
pub mod runbook;
pub mod server;
pub mod tls;
pub mod web;

pub use html::html_escape;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;
pub use crate::state::WriteAccess;

/// Content type of the Prometheus text exposition format 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Largest baseline accepted by the baseline API (1 TiB): a Go heap above it is not a
/// baseline but a typo, and `u64::MAX` would read as "fix confirmed" forever.
pub const MAX_BASELINE_BYTES: u64 = 1 << 40;

/// All routes, over shared state, behind [`guard_writes`]. Tests call this with
/// `tower::ServiceExt::oneshot`.
pub fn app(state: Arc<AppState>) -> Router {
    let access = state.write_access;
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
        .merge(runbook::routes())
        .merge(dumps::routes(state.dumps.clone()))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(access, guard_writes))
}

/// In front of every route: reads pass; a write (any method but GET, HEAD, OPTIONS)
/// needs its flag (403 naming it) and must not come from another site's page (403).
/// `POST /-/reload` is lifecycle, every other write admin.
pub async fn guard_writes(State(access): State<WriteAccess>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let (allowed, flag, what) = if req.uri().path() == "/-/reload" {
        (
            access.lifecycle,
            "--web.enable-lifecycle",
            "the lifecycle API",
        )
    } else {
        (access.admin_api, "--web.enable-admin-api", "the admin API")
    };
    if !allowed {
        return (
            StatusCode::FORBIDDEN,
            format!("{what} is off: start leakwatch with {flag} to allow this request\n"),
        )
            .into_response();
    }
    let authority = req.uri().authority().map(|a| a.as_str().to_string());
    if let Err(why) = same_origin(req.headers(), authority.as_deref()) {
        tracing::warn!(path = %req.uri().path(), %why, "cross-site write refused");
        return (
            StatusCode::FORBIDDEN,
            format!("cross-site request refused: {why}\n"),
        )
            .into_response();
    }
    next.run(req).await
}

/// Whether a write comes from leakwatch's own origin or from no browser page at all,
/// the rule of Go's `http.CrossOriginProtection`: browsers send `Sec-Fetch-Site`
/// (only `same-origin` and `none`, a typed address, pass); older ones send `Origin`,
/// which must name the `Host` asked for; requests with neither (curl, scripts,
/// promtool) are not from a page and pass.
pub fn same_origin(headers: &HeaderMap, authority: Option<&str>) -> Result<(), String> {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("?"));
    if let Some(site) = text("sec-fetch-site") {
        return match site {
            "same-origin" | "none" => Ok(()),
            other => Err(format!("Sec-Fetch-Site: {other}")),
        };
    }
    let Some(origin) = text("origin") else {
        return Ok(());
    };
    let host = text("host").or(authority).unwrap_or_default();
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match origin_host {
        Some(o) if !host.is_empty() && o.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(format!("Origin {origin:?} is not this server ({host:?})")),
    }
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
    // The scrape loops' client and their in-flight limit: probes queue with scrapes
    // (up to the module's timeout) instead of multiplying the load on services.
    let (fetcher, permits) = match &state.loops {
        Some(l) => {
            let (fetcher, permits) = l.fetcher_and_permits();
            (fetcher, Some(permits))
        }
        None => match crate::scrape::Fetcher::new() {
            Ok(f) => (f, None),
            Err(e) => {
                return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response();
            }
        },
    };
    let _permit = match permits {
        None => None,
        Some(p) => match tokio::time::timeout(tc.timeout, p.acquire_owned()).await {
            Ok(Ok(permit)) => Some(permit),
            _ => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many scrapes in flight; try again later\n",
                )
                    .into_response();
            }
        },
    };
    // One shot of a remote-style target: no looking for a local process behind it.
    let target =
        crate::targets::TargetState::new(tc, Arc::new(config.system.clone())).without_listener();
    let started = std::time::Instant::now();
    target.scrape_once(&fetcher).await;
    drop(_permit);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_from_other_sites_are_told_apart() {
        for (headers, ok) in [
            (vec![], true),
            (vec![("sec-fetch-site", "same-origin")], true),
            (vec![("sec-fetch-site", "none")], true),
            (vec![("sec-fetch-site", "same-site")], false),
            (vec![("sec-fetch-site", "cross-site")], false),
            // Sec-Fetch-Site decides when present (a browser sent both).
            (
                vec![
                    ("sec-fetch-site", "cross-site"),
                    ("origin", "http://lw:10760"),
                ],
                false,
            ),
            (vec![("origin", "http://lw:10760")], true),
            (vec![("origin", "https://LW:10760")], true),
            (vec![("origin", "http://lw:10761")], false),
            (vec![("origin", "http://evil.example")], false),
            (vec![("origin", "null")], false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, "lw:10760".parse().unwrap());
            for (k, v) in &headers {
                h.insert(*k, v.parse().unwrap());
            }
            assert_eq!(same_origin(&h, None).is_ok(), ok, "{headers:?}");
        }
        // HTTP/2: no Host header, the authority of the request instead.
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, "https://lw:10760".parse().unwrap());
        assert!(same_origin(&h, Some("lw:10760")).is_ok());
        assert!(same_origin(&h, None).is_err());
    }

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
