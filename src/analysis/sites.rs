//! Per-site snapshots of the analysis window: in-use bytes per allocation site and
//! goroutine counts per blocking site at one time (names shared between snapshots), and
//! the checkpoints that keep a few of them across the window, with the spacing rule
//! the window's samples follow too; and the tracked sites (the heap's recent culprits)
//! whose bytes are kept at every heap profile.

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
        self.entry(name).map(|(_, v)| *v)
    }

    /// The site's entry: its stored (shared) name and value.
    pub(crate) fn entry(&self, name: &str) -> Option<&(Arc<str>, u64)> {
        self.entries
            .binary_search_by(|(n, _)| n.as_ref().cmp(name))
            .ok()
            .and_then(|i| self.entries.get(i))
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
                let shared = previous
                    .and_then(|p| p.entry(&name))
                    .map(|(n, _)| Arc::clone(n));
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

/// How many recent culprits [`TrackedSites`] follows at once.
pub const TRACKED_SITES: usize = 3;

/// The allocation sites the window's checkpoints named as growing most (the heap's
/// culprit) most recently, up to [`TRACKED_SITES`], each with its in-use bytes at
/// every heap profile since it was first named, oldest first. A leak beside a sawtooth
/// is read on its own site free of the sawtooth: a leaking site's sampled in-use bytes
/// only rise, while the whole heap at each GC carries whatever the sawtooth held at
/// that moment. Several are followed because the culprit can alternate (early in a
/// window a sawtooth site's phase can outgrow a slow leak between two snapshots), and
/// a series restarted at every change would never grow long enough to tell.
#[derive(Debug, Clone, Default)]
pub struct TrackedSites {
    /// Most recently named first.
    pub sites: Vec<TrackedSite>,
}

/// One followed site and its readings.
#[derive(Debug, Clone)]
pub struct TrackedSite {
    pub name: Arc<str>,
    pub points: VecDeque<(SystemTime, u64)>,
}

impl TrackedSites {
    /// Follows `culprit` (the current culprit's name, `None` when there is none) in
    /// `snap`, the newest snapshot: a new culprit starts a series (the least recently
    /// named one is dropped beyond [`TRACKED_SITES`]), and every followed site gets
    /// its reading. At most `max_points` points each, none before `start`.
    pub(crate) fn follow(
        &mut self,
        culprit: Option<&str>,
        snap: &SiteSnapshot,
        start: SystemTime,
        max_points: usize,
    ) {
        if let Some(name) = culprit {
            let site = match self.sites.iter().position(|t| t.name.as_ref() == name) {
                Some(i) => self.sites.remove(i),
                None => TrackedSite {
                    name: snap
                        .entry(name)
                        .map_or_else(|| Arc::from(name), |(n, _)| Arc::clone(n)),
                    points: VecDeque::new(),
                },
            };
            self.sites.insert(0, site);
            self.sites.truncate(TRACKED_SITES);
        }
        for t in &mut self.sites {
            t.points
                .push_back((snap.at, snap.get(&t.name).unwrap_or(0)));
            while t.points.len() > max_points.max(1)
                || t.points.front().is_some_and(|(at, _)| *at < start)
            {
                t.points.pop_front();
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.sites.clear();
    }

    pub(crate) fn approx_bytes(&self) -> usize {
        self.sites.capacity() * std::mem::size_of::<TrackedSite>()
            + self
                .sites
                .iter()
                .map(|t| t.points.capacity() * std::mem::size_of::<(SystemTime, u64)>())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(sec: u64, entries: &[(&str, u64)]) -> SiteSnapshot {
        let mut entries: Vec<(Arc<str>, u64)> =
            entries.iter().map(|(n, v)| (Arc::from(*n), *v)).collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        SiteSnapshot {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(sec),
            entries,
            other: 0,
        }
    }

    /// A culprit that alternates keeps both series whole; a fourth culprit drops the
    /// least recently named.
    #[test]
    fn alternating_culprits_keep_their_series() {
        let mut t = TrackedSites::default();
        let start = SystemTime::UNIX_EPOCH;
        let names = ["leak", "saw", "leak", "saw", "leak"];
        for (i, culprit) in names.iter().enumerate() {
            let s = snap(i as u64, &[("leak", 10 + i as u64), ("saw", 50 - i as u64)]);
            t.follow(Some(culprit), &s, start, 100);
        }
        let leak = t.sites.iter().find(|s| s.name.as_ref() == "leak").unwrap();
        let values: Vec<u64> = leak.points.iter().map(|p| p.1).collect();
        assert_eq!(values, [10, 11, 12, 13, 14]);
        assert_eq!(t.sites[0].name.as_ref(), "leak");
        assert_eq!(
            t.sites[1].points.len(),
            4,
            "saw, from when it was first named"
        );
        for (i, n) in ["a", "b", "c"].iter().enumerate() {
            t.follow(Some(n), &snap(10 + i as u64, &[]), start, 100);
        }
        let kept: Vec<&str> = t.sites.iter().map(|s| s.name.as_ref()).collect();
        assert_eq!(kept, ["c", "b", "a"]);
        // No culprit: the followed sites still get their readings; old points go.
        t.follow(
            None,
            &snap(20, &[("c", 7)]),
            SystemTime::UNIX_EPOCH + Duration::from_secs(12),
            100,
        );
        assert_eq!(
            t.sites[0].points.iter().map(|p| p.1).collect::<Vec<_>>(),
            [0, 7]
        );
    }
}
