//! Profile dumps: the binary heap and goroutine profiles saved to disk as evidence
//! for the fix — on a schedule, as a `baseline` + `suspect` pair when a leak is
//! suspected (ready for `go tool pprof -base`), as a `pre_oom` pair when memory is
//! about to run out, or on request — written atomically,
//! pruned by retention, counted in metrics and served under `/dumps/` (by
//! `http::dumps`). `manager` takes one dump, lists and resolves files, over the
//! per-target dump records of `record` (one per target, held by the target registry:
//! `roster`); [`config`] the settings, `profile` what a dump is of and why, [`schedule`]
//! when dumps are taken ([`pre_oom`] the pre-OOM trigger's decision, `throttle` the
//! gap after a dump off the schedule), [`store`] names, index, retention and atomic
//! writes (shared with `leakwatch watch`).
//!
//! Layout: `<dir>/<target>/<profile>-<UTC time>-<reason>[-<n>].pb.gz`, e.g.
//! `dumps/orders/heap-20261126T093015Z-schedule.pb.gz`. `-<n>` (n >= 2) marks the
//! n-th dump of one profile within the same second, so names sort by age. The file is
//! exactly what the service served at `/debug/pprof/heap` or `/debug/pprof/goroutine`
//! (a gzipped protobuf; Go sends no `Content-Encoding`, so nothing is decoded).
//!
//! Retention applies per target and profile type: at most `max_files` files and
//! `max_bytes` bytes, oldest pruned first. Never pruned: the base and the fresh file
//! of the target's latest suspect pair, and this run's first-contact baseline. Manual
//! dumps (`POST /api/v1/dump`) and `pre_oom` dumps are each a pool of their own under
//! the same limits ([`Pool`]), so requests from outside and a target bouncing near its
//! memory limit can never push scheduled, suspect or baseline dumps out.
//!
//! Manual dumps are throttled like the rest of leakwatch's load on the service: one
//! per profile per `cooldown`, stretched to `request time / overhead_budget` when
//! the dump is expensive ([`manual`]: [`DumpManager::dump_manual`] says how long to wait).
//!
//! `pre_oom` pairs: one per episode of memory about to run out (time to OOM under
//! 5 minutes, or usage at 90% of the limit or more), an episode ending only after
//! sustained relief (under 80% for 3 samples in a row spanning a minute or more), and
//! at most one pair per `cooldown`, stretched by the overhead budget like manual
//! dumps ([`pre_oom`]).
//!
//! Dumps are fetched with [`crate::scrape::Fetcher`]'s streamed GET (same credentials,
//! same-origin redirects and size cap as scrapes), straight to disk.

pub mod config;
mod manager;
pub mod manual;
pub mod pre_oom;
mod profile;
mod record;
mod roster;
pub mod schedule;
pub mod store;
mod throttle;

pub use config::{DumpConfig, DumpOverrides, Retention, RetentionOverrides};
pub use manager::{DumpManager, Refusal, shell_quote};
pub use manual::ManualRefusal;
pub use pre_oom::MemoryPressure;
pub use profile::{Pool, ProfileType, Reason};
pub use record::{DumpStats, DumpTarget, TargetDumps};
pub use roster::{DumpList, DumpRoster};
pub use schedule::SHUTDOWN_GRACE;
pub use store::{
    DumpFile, ensure_dump_dir, file_name, parse_file_name, plan_prune, write_atomically,
};
