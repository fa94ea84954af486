//! leakwatch: a Prometheus exporter that catches memory leaks in Go services
//! before the OOM killer does.
//!
//! Data flows one way: **targets → fetch → parse → analyse → metrics / dumps / status**.
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | strict YAML config, flags, defaults, validation |
//! | [`scrape`] | the per-target schedule and the one HTTP client: timeouts, size caps |
//! | [`pprof`] | pure parsers of Go's pprof text and protobuf formats |
//! | [`system`] | cgroup v1/v2 memory files, `/proc`, kernel OOM-kill log |
//! | [`analysis`] | the per-target window, slopes, leak signals, verdict, heap diff |
//! | [`target`] | each target's latest state, shared between scraper and HTTP |
//! | [`metrics`] | the table of every metric, and the scrape-time collector |
//! | [`http`] | axum routes: `/metrics`, `/`, `/-/healthy`, `/-/ready` |
//! | [`error`] | the one error enum |
#![forbid(unsafe_code)]

pub mod analysis;
pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod pprof;
pub mod scrape;
pub mod system;
pub mod target;

pub use error::{Error, Result};
