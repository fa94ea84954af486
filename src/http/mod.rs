//! leakwatch's own HTTP surface (axum) and the only place that writes HTML: [`app`]
//! (every route, `routes.rs`); the machine endpoints (`/metrics`, `/-/healthy`,
//! `/-/ready`, `/-/reload`, `/probe`, the baseline API: `api.rs`); the pages, each
//! filling the one document shell (`layout.rs`) with fragments shared in `html.rs`:
//! the landing page, the report page and its charts, the dumps pages and API, the
//! runbook; and the server: TLS and basic auth from the web config file, the connection
//! loop. Handlers only read state; they never scrape (except `/probe`, a fresh one-off
//! scrape under the probes' own concurrency limit and one deadline).
//!
//! Writes are off by default, as in Prometheus: `POST /-/reload` needs
//! `--web.enable-lifecycle`, the dump and baseline APIs `--web.enable-admin-api`
//! ([`WriteAccess`]), and every write, when on, is refused from a cross-site page
//! ([`guard_writes`]).

pub mod address;
pub mod api;
pub mod auth;
pub mod charts;
pub mod commands;
pub mod dumps;
pub mod guard;
pub mod html;
pub mod landing;
pub mod layout;
pub mod report;
pub mod routes;
pub mod runbook;
pub mod server;
pub mod tls;
pub mod web;

pub use crate::state::WriteAccess;
pub use api::{MAX_BASELINE_BYTES, PROMETHEUS_TEXT};
pub use guard::{guard_writes, same_origin};
pub use routes::app;
