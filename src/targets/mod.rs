//! One target: its config and latest state (`state`: what the last tick fetched,
//! parsed, read and analysed, and the accessors shared by the HTTP handlers, the
//! kernel-log follower and the metrics collector), the endpoints it is asked for
//! (`endpoint`), the loop and its tick (fetch -> parse -> read system -> analyse) in
//! `tick`, the overhead-budget schedule in `schedule`, the goroutine reduction in
//! `goroutines`, the process and cgroup reads in `system`, the verdict's folding and
//! logging in `verdict`; and the registry of watched targets with their loops
//! (`registry`).

mod endpoint;
mod goroutines;
mod registry;
mod schedule;
mod state;
mod system;
mod tick;
mod verdict;

pub use endpoint::{
    ENDPOINT_GOROUTINE, ENDPOINT_GOROUTINELEAK, ENDPOINT_HEAP, ENDPOINT_MEMSTATS, MemStatsSource,
};
pub use goroutines::{GoroutineSummary, blocking_site};
pub use registry::{Loops, MAX_CONCURRENT_SCRAPES, Targets, build_targets};
pub use schedule::BudgetView;
pub use state::{
    LeakedGoroutines, OomStatus, PRE_OOM_TIME, Status, SystemStatus, TargetState, TickGuard,
    TickMark, TickObserver,
};
pub use tick::run;
