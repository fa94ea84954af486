//! leakwatch: a Prometheus exporter that catches memory leaks in Go services
//! before the OOM killer does.
//!
//! Data flows one way: **targets → fetch → parse → analyse → metrics / dumps / status**.
//!
//! | module | owns |
//! |---|---|
//! | [`app`] | the running exporter: one `run` with its options (loops, dump scheduler, kernel log, server, SIGHUP) |
//! | [`state`] | the shared state of handlers and loops: target registry, config in force and reload |
//! | [`config`] | strict YAML config, defaults, validation; composes the section types of its users |
//! | [`scrape`] | the one HTTP client: auth, same-origin redirects, timeouts, size caps, streaming |
//! | [`targets`] | one target: its state, its loop and tick (fetch → parse → read system → analyse); the registry and loops |
//! | [`fleet`] | fleet mode (`--discover`): every Go service with pprof on this node and its pod identity |
//! | [`budget`] | the overhead budget: per-endpoint intervals stretched to cap the service's cost |
//! | [`pprof`] | pure parsers of Go's pprof text and protobuf formats; loading profile files |
//! | [`system`] | cgroup v1/v2 memory files, `/proc`, kernel OOM-kill log: readers and parsers |
//! | [`analysis`] | the per-target window, slopes and trend tests, leak signals, verdict, heap diff |
//! | [`metrics`] | the only place with metric names: the table, every emitter, the collector |
//! | [`dump`] | profile dumps: schedule, triggers, and the store (names, retention, atomic writes) |
//! | [`http`] | the only place with HTML: routes, pages, dumps API, TLS and basic auth |
//! | [`rules`] | the shipped Prometheus rule file, rendered with an install's runbook and dashboard links |
//! | [`watch`] | `leakwatch watch`: the terminal view on the same targets and verdict |
//! | [`kernel_log`] | follows the kernel log and attributes OOM kills to targets |
//! | [`secrets`] | a target's known secret values, scrubbed from every error text shown |
//! | [`printable`] | text a target or a profile controls, control characters escaped for a terminal or a log |
//! | [`files`] | capped reads and gzip of every file or stream a user hands in (a leaf) |
//! | [`units`] | durations, sizes, UTC stamps and the clock: the one parser and formatter |
//! | [`error`] | the one error enum |
#![forbid(unsafe_code)]

pub mod analysis;
pub mod app;
pub mod budget;
pub mod config;
pub mod dump;
pub mod error;
pub mod files;
pub mod fleet;
pub mod http;
pub mod kernel_log;
pub mod metrics;
pub mod pprof;
pub mod printable;
pub mod rules;
pub mod scrape;
pub mod secrets;
pub mod state;
pub mod system;
pub mod targets;
pub mod units;
pub mod watch;

pub use app::{RunOptions, run};
pub use error::{Error, Result};
pub use state::{AppState, MAX_CONCURRENT_PROBES, WriteAccess};
pub use targets::MAX_CONCURRENT_SCRAPES;
