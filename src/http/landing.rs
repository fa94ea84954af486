//! The landing page `/`: every target with its verdict (each kind linked to its runbook
//! section), live heap and time to OOM with their sources, state, last scrape and last
//! error, linking to its report. On a phone, one card per target, each value beside
//! its label.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use maud::{Markup, html};

use super::html::{
    TIME_TO_OOM_ANCHOR, ago, labelled, live_heap, runbook_link, target_link, time_to_oom,
    verdict_cell, words,
};
use super::layout::{Width, page};
use crate::state::AppState;

/// The landing route.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/", get(landing))
}

/// The columns, in order: their headers are the cards' labels on a phone.
const COLUMNS: [&str; 8] = [
    "target",
    "verdict",
    "live heap",
    "time to OOM",
    "state",
    "last scrape",
    "url",
    "last error",
];

/// One cell of column `col`.
fn cell(col: usize, class: Option<&str>, value: Markup) -> Markup {
    labelled(COLUMNS[col], class, value)
}

async fn landing(State(state): State<Arc<AppState>>) -> Markup {
    let targets = state.targets();
    page(
        "leakwatch",
        Width::Wide,
        html! {
            h1 { "leakwatch" }
            p { "Catches memory leaks in Go services before the OOM killer does." }
            div class="scroll" {
                table class="cards" id="targets" {
                    tr { @for c in COLUMNS { th { (c) } } }
                    @for t in &targets {
                        @let st = t.status();
                        @let name = &t.config.name;
                        @let (oom, oom_src, tone) = time_to_oom(&st);
                        tr {
                            (cell(0, None, target_link(name)))
                            (cell(1, None, verdict_cell(name, &st)))
                            (cell(2, None, live_heap(&st)))
                            (cell(3, None, html! {
                                a class=(tone.class()) href=(runbook_link(name, TIME_TO_OOM_ANCHOR)) { (oom) }
                                @if !oom_src.is_empty() { " " span class="src" { "(" (oom_src) ")" } }
                            }))
                            @if st.up {
                                (cell(4, Some("up"), html! { "up" }))
                            } @else {
                                (cell(4, Some("down"), html! { "down" }))
                            }
                            (cell(5, None, html! { (ago(st.last_scrape)) }))
                            (cell(6, None, html! { span class="w" { (crate::scrape::redact_url(t.config.url.as_str())) } }))
                            (cell(7, None, html! { (words(st.last_error.as_deref().unwrap_or(""))) }))
                        }
                    }
                }
            }
        },
    )
}
