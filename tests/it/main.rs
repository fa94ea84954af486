//! The one integration-test binary: a module per area.

mod support;

mod diff;
mod dumps;
mod goroutine;
mod heap;
mod http;
mod live_core;
mod live_oom;
mod ops;
mod system;
