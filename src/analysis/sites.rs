//! Per-site snapshots of the analysis window: in-use bytes per allocation site and
//! goroutine counts per blocking site at one time (names shared between snapshots), and
//! the checkpoints that keep a few of them across the window, with the spacing rule
//! the window's samples follow too; and the one tracked site (the heap's culprit) whose
//! bytes are kept at every heap profile.

use std::collections::VecDeque;
use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Given times newest first, whether the newest is closer than `spacing` to the one
/// before it, and so is only the current "latest", replaced by the next arrival.
pub(crate) fn newest_is_temporary(
    mut newest_first: impl Iterator<Item = SystemTime>,
    spacing: Duration,
) -> bool {
    match (newest_first.next(), newest_first.next()) {
        (Some(newest), Some(before)) => newest.duration_since(before).unwrap_or_default() < spacing,
        _ => false,
    }
}

/// Per-site values at one time: sorted by name, names shared between snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteSnapshot {
    pub at: SystemTime,
    pub entries: Vec<(Arc<str>, u64)>,
    /// Sum over sites beyond `max_sites`.
    pub other: u64,
}

impl SiteSnapshot {
    pub fn get(&self, name: &str) -> Option<u64> {
        self.entries
            .binary_search_by(|(n, _)| n.as_ref().cmp(name))
            .ok()
            .and_then(|i| self.entries.get(i))
            .map(|(_, v)| *v)
    }

    pub fn total(&self) -> u64 {
        self.entries
            .iter()
            .fold(self.other, |acc, (_, v)| acc.saturating_add(*v))
    }

    /// Builds a snapshot of the `max_sites` largest values (ties: the first names),
    /// reusing names already stored in `previous` so a site's name is kept once across
    /// snapshots. `values` has one entry per site, keyed by anything `name` turns into
    /// the site's name: only the kept sites' names are ever written out.
    pub(crate) fn build<K: Copy, N: Ord + Display>(
        at: SystemTime,
        mut values: Vec<(K, u64)>,
        name: impl Fn(K) -> N,
        max_sites: usize,
        previous: Option<&SiteSnapshot>,
    ) -> SiteSnapshot {
        if values.len() > max_sites {
            values.select_nth_unstable_by(max_sites, |a, b| {
                b.1.cmp(&a.1).then_with(|| name(a.0).cmp(&name(b.0)))
            });
        }
        let other = values
            .iter()
            .skip(max_sites)
            .fold(0u64, |acc, (_, v)| acc.saturating_add(*v));
        values.truncate(max_sites);
        let mut entries: Vec<(Arc<str>, u64)> = values
            .into_iter()
            .map(|(key, v)| {
                let name = name(key).to_string();
                let shared = previous.and_then(|p| {
                    p.entries
                        .binary_search_by(|(n, _)| n.as_ref().cmp(name.as_str()))
                        .ok()
                        .and_then(|i| p.entries.get(i))
                        .map(|(n, _)| Arc::clone(n))
                });
                (shared.unwrap_or_else(|| Arc::from(name)), v)
            })
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        SiteSnapshot { at, entries, other }
    }

    pub(crate) fn approx_bytes(&self) -> usize {
        let names: usize = self
            .entries
            .iter()
            // A shared name is counted once in total, split between its holders.
            .map(|(n, _)| n.len() / Arc::strong_count(n).max(1))
            .sum();
        std::mem::size_of::<Self>()
            + self.entries.capacity() * std::mem::size_of::<(Arc<str>, u64)>()
            + names
    }
}

/// Snapshots at most `span / CHECKPOINTS` apart, oldest first; the last is the newest.
#[derive(Debug, Clone, Default)]
pub(crate) struct Checkpoints {
    pub(crate) snapshots: VecDeque<SiteSnapshot>,
}

impl Checkpoints {
    pub(crate) fn push(&mut self, snap: SiteSnapshot, spacing: Duration) {
        // The newest snapshot is kept as a checkpoint once it is `spacing` after the one
        // before it; until then each new snapshot replaces it.
        if newest_is_temporary(self.snapshots.iter().rev().map(|s| s.at), spacing) {
            self.snapshots.pop_back();
        }
        self.snapshots.push_back(snap);
    }

    pub(crate) fn evict_before(&mut self, start: SystemTime) {
        while self.snapshots.len() > 1 && self.snapshots.front().is_some_and(|s| s.at < start) {
            self.snapshots.pop_front();
        }
        if self.snapshots.front().is_some_and(|s| s.at < start) {
            self.snapshots.clear();
        }
    }

    pub(crate) fn previous_names(&self) -> Option<&SiteSnapshot> {
        self.snapshots.back()
    }

    pub(crate) fn approx_bytes(&self) -> usize {
        self.snapshots.capacity() * std::mem::size_of::<SiteSnapshot>()
            + self
                .snapshots
                .iter()
                .map(|s| s.approx_bytes() - std::mem::size_of::<SiteSnapshot>())
                .sum::<usize>()
    }
}

/// The allocation site the window's checkpoints name as growing most (the heap's
/// culprit), and its in-use bytes at each heap profile since it became the culprit,
/// oldest first. A leak beside a sawtooth is read on it free of the sawtooth: a leaking
/// site's sampled in-use bytes only rise, while the whole heap at each GC carries
/// whatever the sawtooth held at that moment.
#[derive(Debug, Clone)]
pub struct TrackedSite {
    pub name: Arc<str>,
    pub points: VecDeque<(SystemTime, u64)>,
}

impl TrackedSite {
    /// Follows `culprit` (the current culprit's name, `None` when there is none) in
    /// `snap`, the newest snapshot: a new culprit starts a new series, no culprit
    /// keeps following the last one. At most `max_points` points, none before `start`.
    pub(crate) fn follow(
        tracked: &mut Option<TrackedSite>,
        culprit: Option<&str>,
        snap: &SiteSnapshot,
        start: SystemTime,
        max_points: usize,
    ) {
        if let Some(name) = culprit
            && tracked.as_ref().is_none_or(|t| t.name.as_ref() != name)
        {
            let shared = snap
                .entries
                .binary_search_by(|(n, _)| n.as_ref().cmp(name))
                .ok()
                .and_then(|i| snap.entries.get(i))
                .map_or_else(|| Arc::from(name), |(n, _)| Arc::clone(n));
            *tracked = Some(TrackedSite {
                name: shared,
                points: VecDeque::new(),
            });
        }
        let Some(t) = tracked else { return };
        t.points
            .push_back((snap.at, snap.get(&t.name).unwrap_or(0)));
        while t.points.len() > max_points.max(1)
            || t.points.front().is_some_and(|(at, _)| *at < start)
        {
            t.points.pop_front();
        }
    }

    pub(crate) fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.points.capacity() * std::mem::size_of::<(SystemTime, u64)>()
    }
}
