//! The overhead budget: how often each endpoint of a target may be requested so that
//! serving leakwatch costs the Go service at most a set share of one CPU core.
//!
//! The cost model: the wall time of a request is the proxy for the CPU the service
//! spends producing the response (profile serialization is CPU-bound and single
//! threaded in the Go runtime; measured: `heap?debug=1` of a 4,000-site profile took
//! about 1.07 s of service CPU and about as long on the wire). With a smoothed request
//! time `t` and a budget `b` (a fraction of one core), the endpoint's interval is
//! stretched to `max(configured, t / b)`, so `t / interval <= b`. It returns to the
//! configured interval as soon as requests get cheap again. While a leak is suspected
//! the budget may be raised (doubled by default) for a bounded time, to gather more
//! evidence when it matters.

use std::time::{Duration, Instant};

/// Smoothing of the request time: new = a * sample + (1 - a) * old.
const EWMA_ALPHA: f64 = 0.3;

/// Per-endpoint schedule under a budget.
#[derive(Debug, Clone)]
pub struct EndpointBudget {
    configured: Duration,
    cost_seconds: Option<f64>,
    effective: Duration,
    next_due: Option<Instant>,
}

impl EndpointBudget {
    pub fn new(configured: Duration) -> Self {
        EndpointBudget {
            configured,
            cost_seconds: None,
            effective: configured,
            next_due: None,
        }
    }

    /// Whether the endpoint should be requested at `now` (always the first time).
    pub fn due(&self, now: Instant) -> bool {
        self.next_due.is_none_or(|t| now >= t)
    }

    /// Records a request that took `took` (or failed after `took`) at `started`, and
    /// schedules the next one under `budget` (a fraction of one core; 0 = no budget).
    /// Returns the new effective interval when it changed by more than 10%.
    pub fn record(&mut self, started: Instant, took: Duration, budget: f64) -> Option<Duration> {
        let t = took.as_secs_f64();
        let cost = match self.cost_seconds {
            Some(old) => EWMA_ALPHA * t + (1.0 - EWMA_ALPHA) * old,
            None => t,
        };
        self.cost_seconds = Some(cost);
        let wanted = if budget > 0.0 {
            Duration::from_secs_f64((cost / budget).min(24.0 * 3600.0))
        } else {
            Duration::ZERO
        };
        let effective = wanted.max(self.configured);
        let before = self.effective.as_secs_f64();
        self.effective = effective;
        // Due a little early so a tick at the configured rate is not missed by jitter.
        let slack = self.configured.mul_f64(0.1);
        self.next_due = Some(started + effective.saturating_sub(slack));
        let after = effective.as_secs_f64();
        ((after - before).abs() > 0.1 * before).then_some(effective)
    }

    pub fn effective_interval(&self) -> Duration {
        self.effective
    }

    pub fn configured_interval(&self) -> Duration {
        self.configured
    }

    /// Estimated share of one core the service spends on this endpoint.
    pub fn overhead_ratio(&self) -> Option<f64> {
        let cost = self.cost_seconds?;
        Some(cost / self.effective.as_secs_f64().max(1e-9))
    }
}

/// The budget in force for a target: the configured one, raised for a bounded time
/// after a leak is first suspected.
#[derive(Debug, Clone)]
pub struct BudgetPolicy {
    pub base: f64,
    pub boost_factor: f64,
    pub boost_for: Duration,
    boosted_until: Option<Instant>,
}

impl BudgetPolicy {
    pub fn new(base: f64, boost_factor: f64, boost_for: Duration) -> Self {
        BudgetPolicy {
            base,
            boost_factor,
            boost_for,
            boosted_until: None,
        }
    }

    /// Called each scrape with whether a leak is suspected: the first suspicion starts
    /// a boost; it ends after `boost_for` even if the suspicion lasts (bounded cost).
    pub fn on_verdict(&mut self, suspected: bool, now: Instant) {
        match (suspected, self.boosted_until) {
            (true, None) => self.boosted_until = Some(now + self.boost_for),
            (false, Some(until)) if now >= until => self.boosted_until = None,
            _ => {}
        }
    }

    /// The budget at `now`.
    pub fn current(&self, now: Instant) -> f64 {
        match self.boosted_until {
            Some(until) if now < until => self.base * self.boost_factor,
            _ => self.base,
        }
    }

    pub fn boosted(&self, now: Instant) -> bool {
        self.current(now) > self.base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cheap_requests_keep_the_configured_interval() {
        let mut b = EndpointBudget::new(Duration::from_secs(15));
        let t0 = Instant::now();
        // 46 ms at 1%: 4.6 s wanted, below 15 s.
        b.record(t0, Duration::from_millis(46), 0.01);
        assert_eq!(b.effective_interval(), Duration::from_secs(15));
        assert!(!b.due(t0 + Duration::from_secs(10)));
        assert!(b.due(t0 + Duration::from_secs(14)));
        let r = b.overhead_ratio().unwrap();
        assert!((r - 0.046 / 15.0).abs() < 1e-9, "{r}");
    }

    #[test]
    fn expensive_requests_stretch_the_interval_then_recover() {
        let mut b = EndpointBudget::new(Duration::from_secs(15));
        let t0 = Instant::now();
        // 1,074 ms at 1%: 107.4 s.
        let changed = b.record(t0, Duration::from_millis(1074), 0.01);
        assert_eq!(changed, Some(Duration::from_secs_f64(107.4)));
        assert!((b.overhead_ratio().unwrap() - 0.01).abs() < 1e-9);
        assert!(!b.due(t0 + Duration::from_secs(60)));
        // Requests get cheap: the smoothed cost falls and the interval comes back.
        let mut t = t0;
        for _ in 0..30 {
            t += b.effective_interval();
            b.record(t, Duration::from_millis(20), 0.01);
        }
        assert_eq!(b.effective_interval(), Duration::from_secs(15));
    }

    #[test]
    fn never_below_the_configured_interval_and_no_budget_means_configured() {
        let mut b = EndpointBudget::new(Duration::from_secs(30));
        b.record(Instant::now(), Duration::from_secs(2), 0.0);
        assert_eq!(b.effective_interval(), Duration::from_secs(30));
    }

    #[test]
    fn boost_doubles_for_a_bounded_time() {
        let mut p = BudgetPolicy::new(0.01, 2.0, Duration::from_secs(600));
        let t0 = Instant::now();
        assert_eq!(p.current(t0), 0.01);
        p.on_verdict(true, t0);
        assert_eq!(p.current(t0 + Duration::from_secs(1)), 0.02);
        assert!(p.boosted(t0 + Duration::from_secs(599)));
        // Still suspected after the boost: back to base, no new boost.
        p.on_verdict(true, t0 + Duration::from_secs(700));
        assert_eq!(p.current(t0 + Duration::from_secs(700)), 0.01);
        // Cleared, then suspected again: a new boost.
        p.on_verdict(false, t0 + Duration::from_secs(800));
        p.on_verdict(true, t0 + Duration::from_secs(900));
        assert_eq!(p.current(t0 + Duration::from_secs(901)), 0.02);
    }
}
