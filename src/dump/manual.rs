//! Manual dumps (`POST /api/v1/dump`): the throttle that keeps requests from outside
//! within the target's dump cooldown and overhead budget.

use std::time::{Duration, Instant};

use super::manager::DumpManager;
use super::profile::{ProfileType, Reason};
use super::store::DumpFile;
use super::throttle::dump_gap;
use crate::error::Error;

impl DumpManager {
    /// A dump requested from outside (`POST /api/v1/dump`), under the target's
    /// throttle: at most one per profile per `cooldown`, and no more often than
    /// `request time / overhead_budget` (the share of a core the service may spend on
    /// leakwatch). While one runs, others are refused too, and a failed one counts (it
    /// cost the service all the same). Refused requests say how long to wait
    /// ([`ManualRefusal::TooSoon`], sent as `Retry-After`).
    pub async fn dump_manual(
        &self,
        target: &str,
        profile: ProfileType,
    ) -> std::result::Result<DumpFile, ManualRefusal> {
        let i = profile.index();
        let started = Instant::now();
        let (cooldown, budget) = {
            let record = self.record(target).ok_or_else(|| {
                ManualRefusal::Failed(Error::Config(format!("unknown target {target:?}")))
            })?;
            let mut entry = record.lock();
            let e = &mut *entry;
            if let Some(t) = e.manual_not_before[i].filter(|t| *t > started) {
                return Err(ManualRefusal::TooSoon(t - started));
            }
            let cfg = &e.target.config;
            // Held while this one runs (a dump cannot outlast its timeout).
            e.manual_not_before[i] = Some(started + cfg.cooldown.max(cfg.timeout));
            (cfg.cooldown, e.target.overhead_budget)
        };
        let result = self.dump_now(target, profile, Reason::Manual).await;
        let gap = dump_gap(cooldown, started.elapsed(), budget);
        self.with_entry(target, |e| e.manual_not_before[i] = Some(started + gap));
        result.map_err(ManualRefusal::Failed)
    }
}

/// Why a manual dump was not taken.
#[derive(Debug)]
pub enum ManualRefusal {
    /// Too soon after the last manual dump of this profile (or one is running): wait
    /// this long.
    TooSoon(Duration),
    /// Attempted (or could not start) and failed.
    Failed(Error),
}
