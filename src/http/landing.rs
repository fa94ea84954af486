//! The landing page `/`: every target with its state, last scrape, verdict and last
//! error, linking to its report.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::response::Html;

use super::html::{html_escape, verdict_html};
use super::report::target_link;
use crate::state::AppState;

fn ago(t: Option<SystemTime>) -> String {
    match t.and_then(|t| SystemTime::now().duration_since(t).ok()) {
        Some(d) => format!("{:.1}s ago", d.as_secs_f64()),
        None => "never".to_string(),
    }
}

pub(super) async fn page(State(state): State<Arc<AppState>>) -> Html<String> {
    let mut page = String::new();
    page.push_str(concat!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>leakwatch</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}",
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top;",
        "overflow-wrap:anywhere}",
        ".down{color:#b00}.up{color:#070}.suspect{color:#b00;font-weight:bold}.ok{color:#070}",
        // Narrow screens: one card per target, the verdict right under its name.
        "@media (max-width:700px){body{margin:0.8em}table,tbody,tr,td{display:block}",
        "tr:first-child{display:none}tr{border:1px solid #ccc;margin-bottom:0.8em}",
        "td{border:none;padding:2px 6px}td:empty{display:none}}</style>",
        "</head><body><h1>leakwatch</h1>",
        "<p>Catches memory leaks in Go services before the OOM killer does. ",
        "<a href=\"/metrics\">Metrics</a> · <a href=\"/dumps/\">Dumps</a> · ",
        "<a href=\"/runbook\">Runbook</a></p>",
        "<table><tr><th>target</th><th>verdict</th><th>live heap</th><th>state</th><th>last scrape</th>",
        "<th>url</th><th>last error</th></tr>"
    ));
    for t in state.targets() {
        let st = t.status();
        let (class, word) = if st.up {
            ("up", "up")
        } else {
            ("down", "down")
        };
        let verdict = verdict_html(&st);
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{verdict}</td><td>{}</td><td class=\"{class}\">{word}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            target_link(&t.config.name),
            st.signals
                .as_ref()
                .and_then(|s| s.live_heap())
                .map(|l| html_escape(&l.to_string()))
                .unwrap_or_default(),
            ago(st.last_scrape),
            html_escape(&crate::scrape::redact_url(t.config.url.as_str())),
            html_escape(st.last_error.as_deref().unwrap_or("")),
        );
    }
    page.push_str("</table></body></html>\n");
    Html(page)
}
