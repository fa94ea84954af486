//! The one integration-test binary: a module per area.

mod support;

mod diff;
mod dumps;
mod e2e;
mod goroutine;
mod heap;
mod http;
mod live_core;
mod live_signals;
mod live_oom;
mod ops;
mod report;
mod system;
mod watch;
