//! A target's schedule under the overhead budget: which endpoints are due on a tick,
//! what each request cost, and the intervals and ratios that result.

use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use super::{
    ENDPOINT_GOROUTINE, ENDPOINT_GOROUTINELEAK, ENDPOINT_HEAP, ENDPOINT_MEMSTATS, MemStatsSource,
    TargetState,
};
use crate::budget::{BudgetPolicy, EndpointBudget};
use crate::config::HeapFormat;

/// Each endpoint's schedule under the overhead budget, and what the target offers.
#[derive(Debug)]
pub(super) struct Schedule {
    pub(super) heap: EndpointBudget,
    pub(super) memstats: EndpointBudget,
    pub(super) goroutine: EndpointBudget,
    pub(super) goroutineleak: EndpointBudget,
    pub(super) policy: BudgetPolicy,
    /// `None`: detect on the next tick (first contact, after failures or a restart).
    pub(super) memstats_source: Option<MemStatsSource>,
    pub(super) expvar_failures: u32,
    pub(super) goroutineleak_available: Option<bool>,
    /// When `gc: auto` last asked the service for a GC.
    pub(super) last_forced_gc: Option<Instant>,
}

/// What one tick requests.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    pub(super) detect_memstats: bool,
    pub(super) detect_goroutineleak: bool,
    pub(super) heap: bool,
    pub(super) memstats: bool,
    pub(super) goroutine: bool,
    pub(super) goroutineleak: bool,
}

/// The overhead budget in force and, per scheduled endpoint, its effective interval
/// and estimated cost ratio.
#[derive(Debug, Clone)]
pub struct BudgetView {
    pub budget: f64,
    pub endpoints: Vec<(&'static str, Duration, Option<f64>)>,
}

impl TargetState {
    pub(super) fn schedule(&self) -> MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What is due now.
    pub(super) fn plan(&self, now: Instant) -> Plan {
        let s = self.schedule();
        let text_heap = self.config.heap_format == HeapFormat::Text;
        Plan {
            detect_memstats: !text_heap && s.memstats_source.is_none(),
            detect_goroutineleak: s.goroutineleak_available.is_none(),
            heap: s.heap.due(now),
            memstats: !text_heap && s.memstats_source.is_some() && s.memstats.due(now),
            goroutine: s.goroutine.due(now),
            goroutineleak: s.goroutineleak_available == Some(true) && s.goroutineleak.due(now),
        }
    }

    /// Records the cost of a request to `endpoint` and reschedules it under the budget.
    pub(super) fn charge(&self, endpoint: &'static str, started: Instant, took: Duration) {
        let mut s = self.schedule();
        let budget = s.policy.current(started);
        let boosted = s.policy.boosted(started);
        let slot = match endpoint {
            ENDPOINT_HEAP => &mut s.heap,
            ENDPOINT_MEMSTATS => &mut s.memstats,
            ENDPOINT_GOROUTINE => &mut s.goroutine,
            ENDPOINT_GOROUTINELEAK => &mut s.goroutineleak,
            _ => return,
        };
        if let Some(new) = slot.record(started, took, budget) {
            let configured = slot.configured_interval();
            tracing::info!(
                target_name = %self.config.name,
                endpoint,
                request_seconds = took.as_secs_f64(),
                budget,
                boosted,
                effective_interval = ?new,
                ?configured,
                "overhead budget: interval adapted"
            );
        }
    }

    /// The budget's state now, for its series.
    pub fn budget_view(&self, now: Instant) -> BudgetView {
        let sched = self.schedule();
        let mut endpoints = vec![
            (ENDPOINT_HEAP, &sched.heap),
            (ENDPOINT_GOROUTINE, &sched.goroutine),
        ];
        if sched.memstats_source.is_some() && self.config.heap_format == HeapFormat::Proto {
            endpoints.push((ENDPOINT_MEMSTATS, &sched.memstats));
        }
        if sched.goroutineleak_available == Some(true) {
            endpoints.push((ENDPOINT_GOROUTINELEAK, &sched.goroutineleak));
        }
        BudgetView {
            budget: sched.policy.current(now),
            endpoints: endpoints
                .into_iter()
                .map(|(name, b)| (name, b.effective_interval(), b.overhead_ratio()))
                .collect(),
        }
    }
}
