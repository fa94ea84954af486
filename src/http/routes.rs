//! Every route of leakwatch's HTTP surface, over shared state and behind
//! [`guard_writes`]: each page or API file offers its `routes()`, merged here. Adding a
//! page: its file (filling [`super::layout::page`]) and one line below.

use std::sync::Arc;

use axum::Router;

use super::guard::guard_writes;
use super::{api, dumps, landing, report, runbook};
use crate::state::AppState;

/// All routes, over shared state, behind [`guard_writes`]. Tests call this with
/// `tower::ServiceExt::oneshot`.
pub fn app(state: Arc<AppState>) -> Router {
    let access = state.write_access;
    Router::new()
        .merge(landing::routes())
        .merge(api::routes())
        .merge(report::routes())
        .merge(runbook::routes())
        .merge(dumps::routes(state.dumps.clone()))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(access, guard_writes))
}
