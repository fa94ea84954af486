//! The landing page `/`: every target with its state, last scrape, verdict and last
//! error, linking to its report.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use maud::{Markup, html};

use super::html::{ago, live_heap, target_link, verdict_cell};
use super::layout::{Width, page};
use crate::state::AppState;

/// The landing route.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/", get(landing))
}

async fn landing(State(state): State<Arc<AppState>>) -> Markup {
    let targets = state.targets();
    page(
        "leakwatch",
        Width::Wide,
        html! {
            h1 { "leakwatch" }
            p { "Catches memory leaks in Go services before the OOM killer does." }
            // Narrow screens: one card per target, the verdict right under its name.
            table class="cards" {
                tr {
                    th { "target" } th { "verdict" } th { "live heap" } th { "state" }
                    th { "last scrape" } th { "url" } th { "last error" }
                }
                @for t in &targets {
                    @let st = t.status();
                    tr {
                        td { (target_link(&t.config.name)) }
                        td { (verdict_cell(&st)) }
                        td { (live_heap(&st)) }
                        @if st.up { td class="up" { "up" } } @else { td class="down" { "down" } }
                        td { (ago(st.last_scrape)) }
                        td { (crate::scrape::redact_url(t.config.url.as_str())) }
                        td { (st.last_error.as_deref().unwrap_or("")) }
                    }
                }
            }
        },
    )
}
