//! leakwatch's own HTTP surface (axum): `/metrics`, the landing page `/`,
//! `/-/healthy` and `/-/ready`. Handlers only read state; they never scrape.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

/// Content type of the Prometheus text exposition format 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// All routes, over shared state. Tests call this with `tower::ServiceExt::oneshot`.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(|| async { "Ready\n" }))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut body = String::with_capacity(64 * 1024);
    match prometheus_client::encoding::prometheus_text::encode(&mut body, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding metrics failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "encoding metrics failed\n").into_response()
        }
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn ago(t: Option<SystemTime>) -> String {
    match t.and_then(|t| SystemTime::now().duration_since(t).ok()) {
        Some(d) => format!("{:.1}s ago", d.as_secs_f64()),
        None => "never".to_string(),
    }
}

async fn landing(State(state): State<Arc<AppState>>) -> Html<String> {
    let mut page = String::new();
    page.push_str(concat!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>leakwatch</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}",
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}",
        ".down{color:#b00}.up{color:#070}.suspect{color:#b00;font-weight:bold}</style>",
        "</head><body><h1>leakwatch</h1>",
        "<p>Catches memory leaks in Go services before the OOM killer does. ",
        "<a href=\"/metrics\">Metrics</a></p>",
        "<table><tr><th>target</th><th>url</th><th>state</th><th>last scrape</th>",
        "<th>verdict</th><th>last error</th></tr>"
    ));
    for t in state.targets() {
        let st = t.status();
        let (class, word) = if st.up { ("up", "up") } else { ("down", "down") };
        let verdict = t.verdict_html(&st);
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{word}</td><td>{}</td><td>{verdict}</td><td>{}</td></tr>",
            html_escape(&t.config.name),
            html_escape(&crate::scrape::redact_url(t.config.url.as_str())),
            ago(st.last_scrape),
            html_escape(st.last_error.as_deref().unwrap_or("")),
        );
    }
    page.push_str("</table></body></html>\n");
    Html(page)
}
