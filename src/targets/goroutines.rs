//! The goroutine profile reduced to what metrics and the window need: counts by state
//! and by blocking site.

use std::collections::BTreeMap;

use crate::pprof::GoroutineProfile;

/// What the goroutine profile said, reduced to what metrics and the window need.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GoroutineSummary {
    pub total: u64,
    pub http_client_connections: u64,
    /// State name -> count, every state present (zeros included).
    pub by_state: Vec<(&'static str, u64)>,
    /// Blocking site (innermost non-runtime function) -> count.
    pub by_function: Vec<(String, u64)>,
}

impl GoroutineSummary {
    pub fn from_profile(p: &GoroutineProfile) -> Self {
        use crate::pprof::goroutine::{GoroutineState, state_from_stack};
        let mut states: BTreeMap<GoroutineState, u64> =
            GoroutineState::ALL.iter().map(|s| (*s, 0)).collect();
        let mut by_function: BTreeMap<String, u64> = BTreeMap::new();
        for r in &p.records {
            *states.entry(state_from_stack(&r.stack)).or_default() += r.count;
            let site = blocking_site(&r.stack).to_string();
            *by_function.entry(site).or_default() += r.count;
        }
        let mut by_function: Vec<(String, u64)> = by_function.into_iter().collect();
        by_function.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        GoroutineSummary {
            total: p.total,
            http_client_connections: crate::pprof::goroutine::http_client_connections(p),
            by_state: states.into_iter().map(|(s, n)| (s.as_str(), n)).collect(),
            by_function,
        }
    }
}

/// Packages whose frames are how a goroutine blocks, not where: the blocking site is
/// the first frame outside them (`main.waitForReply`, `net/http.(*persistConn).readLoop`).
/// `net.` matches package net only, not `net/http.`.
const BLOCKING_HELPERS: &[&str] = &[
    "runtime.",
    "internal/",
    "sync.",
    "time.",
    "net.",
    "bufio.",
    "io.",
    "os.",
    "syscall.",
];

/// The function a goroutine is blocked in, for `leakwatch_goroutine_growth{function}`.
pub fn blocking_site(stack: &[String]) -> &str {
    stack
        .iter()
        .find(|f| !BLOCKING_HELPERS.iter().any(|h| f.starts_with(h)))
        .or(stack.first())
        .map(String::as_str)
        .unwrap_or("unknown")
}
