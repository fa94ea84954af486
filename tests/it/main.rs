//! The one integration-test binary: a module per area.

mod stack;
mod support;

mod architecture;
mod cli;
mod crowds;
mod demo;
mod diff;
mod docs;
mod dumps;
mod e2e;
mod escapes;
mod fleet;
mod fleet_gobuild;
mod fleet_netns;
mod goroutine;
mod heap;
mod hostile;
mod http;
mod input;
mod k8s;
mod listener;
mod live_core;
mod live_defaults;
mod live_evidence;
mod live_gc_auto;
mod live_goroutineleak;
mod live_oom;
mod live_signals;
mod ops;
mod report;
mod runbook;
mod system;
mod watch;
mod web;
mod writes;
