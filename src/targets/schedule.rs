//! A target's schedule under the overhead budget: which endpoints are due on a tick,
//! what each request cost, and the intervals and ratios that result.

use std::time::{Duration, Instant};

use super::endpoint::{
    ENDPOINT_GOROUTINE, ENDPOINT_GOROUTINELEAK, ENDPOINT_HEAP, ENDPOINT_MEMSTATS, MemStatsSource,
};
use crate::budget::{BudgetPolicy, EndpointBudget};
use crate::config::{HeapFormat, TargetConfig};

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

impl Schedule {
    /// The schedule of a target with `config`: every endpoint at its configured
    /// interval, nothing detected yet.
    pub(super) fn new(config: &TargetConfig) -> Schedule {
        Schedule {
            heap: EndpointBudget::new(config.interval),
            memstats: EndpointBudget::new(config.interval),
            goroutine: EndpointBudget::new(config.interval),
            goroutineleak: EndpointBudget::new(config.goroutineleak_interval.max(config.interval)),
            policy: BudgetPolicy::new(
                config.overhead_budget,
                config.budget_boost,
                config.budget_boost_for,
            ),
            memstats_source: None,
            expvar_failures: 0,
            goroutineleak_available: None,
            last_forced_gc: None,
        }
    }

    /// What is due now.
    pub(super) fn plan(&self, heap_format: HeapFormat, now: Instant) -> Plan {
        let text_heap = heap_format == HeapFormat::Text;
        Plan {
            detect_memstats: !text_heap && self.memstats_source.is_none(),
            detect_goroutineleak: self.goroutineleak_available.is_none(),
            heap: self.heap.due(now),
            memstats: !text_heap && self.memstats_source.is_some() && self.memstats.due(now),
            goroutine: self.goroutine.due(now),
            goroutineleak: self.goroutineleak_available == Some(true)
                && self.goroutineleak.due(now),
        }
    }

    /// Records the cost of a request to `endpoint` and reschedules it under the budget.
    pub(super) fn charge(
        &mut self,
        target_name: &str,
        endpoint: &'static str,
        started: Instant,
        took: Duration,
    ) {
        let budget = self.policy.current(started);
        let boosted = self.policy.boosted(started);
        let slot = match endpoint {
            ENDPOINT_HEAP => &mut self.heap,
            ENDPOINT_MEMSTATS => &mut self.memstats,
            ENDPOINT_GOROUTINE => &mut self.goroutine,
            ENDPOINT_GOROUTINELEAK => &mut self.goroutineleak,
            _ => return,
        };
        if let Some(new) = slot.record(started, took, budget) {
            let configured = slot.configured_interval();
            tracing::info!(
                target_name = %target_name,
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
    pub(super) fn budget_view(&self, heap_format: HeapFormat, now: Instant) -> BudgetView {
        let mut endpoints = vec![
            (ENDPOINT_HEAP, &self.heap),
            (ENDPOINT_GOROUTINE, &self.goroutine),
        ];
        if self.memstats_source.is_some() && heap_format == HeapFormat::Proto {
            endpoints.push((ENDPOINT_MEMSTATS, &self.memstats));
        }
        if self.goroutineleak_available == Some(true) {
            endpoints.push((ENDPOINT_GOROUTINELEAK, &self.goroutineleak));
        }
        BudgetView {
            budget: self.policy.current(now),
            endpoints: endpoints
                .into_iter()
                .map(|(name, b)| (name, b.effective_interval(), b.overhead_ratio()))
                .collect(),
        }
    }
}
