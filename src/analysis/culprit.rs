//! The culprit: growth of in-use bytes per allocation site and of goroutines per
//! blocking site across the window, ranked by *sustained* growth (a site must grow
//! through the checkpoints), top N plus `other`; and the in-use share by package.

use crate::analysis::diff::flat_growth;
use crate::analysis::sites::SiteSnapshot;
use crate::pprof::funcname::package_of;

pub(crate) fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Per-site growth from `old` to `new`, largest first; a site gone since `old` shrank to 0.
pub(crate) fn site_growth(old: &SiteSnapshot, new: &SiteSnapshot) -> Vec<(String, i64)> {
    let mut growth: Vec<(String, i64)> = new
        .entries
        .iter()
        .map(|(n, v)| {
            let before = old.get(n).unwrap_or(0);
            (n.to_string(), signed(*v).saturating_sub(signed(before)))
        })
        .chain(
            old.entries
                .iter()
                .filter(|(n, _)| new.get(n).is_none())
                .map(|(n, v)| (n.to_string(), -signed(*v))),
        )
        .filter(|(_, g)| *g != 0)
        .collect();
    growth.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    growth
}

/// Heap growth by allocation site, through the diff's flat growth
/// ([`crate::analysis::diff::flat_growth`], as `growth_by_function` uses it): a snapshot's
/// sites are the leaves (helpers such as `runtime.makeslice` already skipped when the
/// snapshot was taken), new counted up and old down.
pub(crate) fn heap_site_growth(old: &SiteSnapshot, new: &SiteSnapshot) -> Vec<(String, i64)> {
    let up = new.entries.iter().map(|(site, b)| (site, signed(*b)));
    let down = old
        .entries
        .iter()
        .map(|(site, b)| (site, signed(*b).saturating_neg()));
    flat_growth(up.chain(down))
}

/// The two snapshots a site's *sustained* growth is measured between: per site, the
/// largest value in the earlier half of the checkpoints and the smallest in the later
/// half. A leaking site grows through every checkpoint, so this barely changes its
/// growth; a saw-tooth site (a request buffer freed every few seconds) is high in one
/// checkpoint and low in another, so its "growth" between two arbitrary snapshots
/// vanishes here instead of outranking a slow leak. With two snapshots it is plain
/// newest minus oldest.
pub(crate) fn sustained_bounds(snaps: &[&SiteSnapshot]) -> Option<(SiteSnapshot, SiteSnapshot)> {
    let (first, last) = (snaps.first()?, snaps.last()?);
    let half = (snaps.len() / 2).max(1);
    let early = &snaps[..half];
    let late = &snaps[snaps.len() - half..];
    let mut names: Vec<std::sync::Arc<str>> = snaps
        .iter()
        .flat_map(|s| s.entries.iter().map(|(n, _)| n.clone()))
        .collect();
    names.sort();
    names.dedup();
    let fold = |part: &[&SiteSnapshot], pick: fn(u64, u64) -> u64| {
        names
            .iter()
            .map(|n| {
                let v = part
                    .iter()
                    .map(|s| s.get(n).unwrap_or(0))
                    .reduce(pick)
                    .unwrap_or(0);
                (n.clone(), v)
            })
            .collect::<Vec<_>>()
    };
    Some((
        SiteSnapshot {
            at: first.at,
            entries: fold(early, u64::max),
            other: first.other,
        },
        SiteSnapshot {
            at: last.at,
            entries: fold(late, u64::min),
            other: last.other,
        },
    ))
}

/// Heap growth by site over the whole window (newest minus oldest, the diff code),
/// ranked by *sustained* growth ([`sustained_bounds`]): only sites that grew through
/// the checkpoints are named; the rest, saw-tooth sites included, go to `other`.
pub(crate) fn sustained_growth_top_n(
    old: &SiteSnapshot,
    new: &SiteSnapshot,
    snaps: &[&SiteSnapshot],
    top_n: usize,
) -> Vec<(String, i64)> {
    if old.at >= new.at {
        return Vec::new();
    }
    let full = heap_site_growth(old, new);
    let Some((early, late)) = sustained_bounds(snaps) else {
        return growth_top_n(old, new, top_n, heap_site_growth);
    };
    let sustained: Vec<(String, i64)> = heap_site_growth(&early, &late)
        .into_iter()
        .filter(|(_, g)| *g > 0)
        .collect();
    let mut ranked = Vec::with_capacity(sustained.len());
    let mut rest = signed(new.other).saturating_sub(signed(old.other));
    for (name, g) in &full {
        if !sustained.iter().any(|(n, _)| n == name) {
            rest = rest.saturating_add(*g);
        }
    }
    for (name, sg) in &sustained {
        let g = full
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, g)| *g)
            .unwrap_or(*sg);
        ranked.push((name.clone(), g));
    }
    top_n_with_other(&ranked, rest, top_n)
}

/// The `top_n` largest positive growths, then `other`: everything else, including
/// `other_delta` (the change of the snapshots' own `other` buckets).
pub(crate) fn top_n_with_other(
    growth: &[(String, i64)],
    other_delta: i64,
    top_n: usize,
) -> Vec<(String, i64)> {
    let total = growth
        .iter()
        .fold(other_delta, |acc, (_, g)| acc.saturating_add(*g));
    let mut out: Vec<(String, i64)> = growth
        .iter()
        .filter(|(_, g)| *g > 0)
        .take(top_n)
        .cloned()
        .collect();
    let top_sum = out.iter().fold(0i64, |acc, (_, g)| acc.saturating_add(*g));
    out.push(("other".to_string(), total.saturating_sub(top_sum)));
    out
}

/// Growth from the window's oldest to its newest snapshot, top N plus `other`; empty
/// while there is only one snapshot.
pub(crate) fn growth_top_n(
    old: &SiteSnapshot,
    new: &SiteSnapshot,
    top_n: usize,
    per_site: fn(&SiteSnapshot, &SiteSnapshot) -> Vec<(String, i64)>,
) -> Vec<(String, i64)> {
    if old.at >= new.at {
        return Vec::new();
    }
    let other_delta = signed(new.other).saturating_sub(signed(old.other));
    top_n_with_other(&per_site(old, new), other_delta, top_n)
}

/// The first entry of a top-N list unless it is `other`.
pub(crate) fn culprit(g: &[(String, i64)]) -> Option<(&str, i64)> {
    g.first()
        .filter(|(n, _)| n != "other")
        .map(|(n, v)| (n.as_str(), *v))
}

/// In-use share by package of the newest heap snapshot: top N, then `other`.
pub(crate) fn package_shares(snap: &SiteSnapshot, top_n: usize) -> Vec<(String, f64)> {
    let total = snap.total();
    if total == 0 {
        return Vec::new();
    }
    let mut by_pkg: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    for (site, bytes) in &snap.entries {
        let e = by_pkg.entry(package_of(site)).or_insert(0);
        *e = e.saturating_add(*bytes);
    }
    let mut pkgs: Vec<(&str, u64)> = by_pkg.into_iter().collect();
    pkgs.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let mut out: Vec<(String, f64)> = pkgs
        .iter()
        .take(top_n)
        .map(|(p, b)| (p.to_string(), *b as f64 / total as f64))
        .collect();
    let rest = pkgs
        .iter()
        .skip(top_n)
        .fold(snap.other, |acc, (_, b)| acc.saturating_add(*b));
    out.push(("other".to_string(), rest as f64 / total as f64));
    out
}
