//! Where the dump manager finds each target's dump record: a [`DumpRoster`]. In the
//! exporter that is the target registry, which holds one record per target (its state
//! and its dumps) and swaps them together on reload; a manager used on its own (tests,
//! tools) keeps a [`DumpList`].

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use super::record::{DumpTarget, TargetDumps};

/// The list of target dump records a manager works over. Target names are unique
/// (validated at config load).
pub trait DumpRoster: std::fmt::Debug + Send + Sync {
    /// The record of the target named `name`, if it is watched.
    fn dumps_of(&self, name: &str) -> Option<Arc<TargetDumps>>;
    /// Every watched target's record.
    fn all_dumps(&self) -> Vec<Arc<TargetDumps>>;
}

/// A manager's own list of records, by target name, swapped as a whole with
/// [`set_targets`](Self::set_targets) the way the target registry swaps its records.
#[derive(Debug, Default)]
pub struct DumpList {
    records: RwLock<BTreeMap<String, Arc<TargetDumps>>>,
}

impl DumpList {
    /// Fresh records for `targets`: indexes their existing dumps and removes stale
    /// temporary files.
    pub fn new(targets: Vec<DumpTarget>) -> Self {
        let records = targets
            .into_iter()
            .map(|t| (t.name.clone(), Arc::new(TargetDumps::new(t))))
            .collect();
        DumpList {
            records: RwLock::new(records),
        }
    }

    /// Swaps the target set (a reload): a target keeping its name and dump directory
    /// keeps its record ([`TargetDumps::carry`]); others start afresh.
    pub fn set_targets(&self, targets: Vec<DumpTarget>) {
        let old = self
            .records
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let new = targets
            .into_iter()
            .map(|t| {
                let name = t.name.clone();
                (name, TargetDumps::carry(old.get(&t.name), t))
            })
            .collect();
        *self.records.write().unwrap_or_else(|e| e.into_inner()) = new;
    }
}

impl DumpRoster for DumpList {
    fn dumps_of(&self, name: &str) -> Option<Arc<TargetDumps>> {
        self.records
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn all_dumps(&self) -> Vec<Arc<TargetDumps>> {
        self.records
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}
