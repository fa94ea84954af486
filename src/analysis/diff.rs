//! Heap top and heap diff: `go tool pprof -top` and `-top -base BASE` over
//! [`HeapProfile`]s, with pprof's node trimming, ordering and number formatting,
//! plus per-function growth for the leak signals, pprof's `-ignore`, and a note naming
//! the rows that are mostly the cost of serving profiles (leakwatch's own polls).
//!
//! Differences from pprof, by design: nodes are keyed by function name only (as
//! pprof's default `functions` granularity does), samples with the same stack are
//! merged before the diff total is taken (pprof keeps samples apart when their
//! `bytes` label differs, which can only change the diff *total* when one size
//! grew and another shrank on the same stack), and the `(inline)` marks are not
//! printed because [`HeapProfile`] does not record which frames were inlined.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::hash::Hash;
use std::str::FromStr;

use foldhash::fast::RandomState;

use crate::pprof::{HeapProfile, HeapSample, Name, Stack};
use crate::{Error, Result};

/// Which of the four heap values to report (pprof's `-sample_index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleType {
    InuseSpace,
    InuseObjects,
    AllocSpace,
    AllocObjects,
}

impl SampleType {
    pub const ALL: [SampleType; 4] = [
        SampleType::InuseSpace,
        SampleType::InuseObjects,
        SampleType::AllocSpace,
        SampleType::AllocObjects,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SampleType::InuseSpace => "inuse_space",
            SampleType::InuseObjects => "inuse_objects",
            SampleType::AllocSpace => "alloc_space",
            SampleType::AllocObjects => "alloc_objects",
        }
    }

    /// Bytes (formatted B/kB/MB/...) rather than object counts.
    pub fn is_bytes(self) -> bool {
        matches!(self, SampleType::InuseSpace | SampleType::AllocSpace)
    }

    fn value(self, s: &HeapSample) -> i64 {
        let v = match self {
            SampleType::InuseSpace => s.inuse_bytes,
            SampleType::InuseObjects => s.inuse_objects,
            SampleType::AllocSpace => s.alloc_bytes,
            SampleType::AllocObjects => s.alloc_objects,
        };
        i64::try_from(v).unwrap_or(i64::MAX)
    }
}

impl std::fmt::Display for SampleType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SampleType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        SampleType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown sample type {s:?}: expected inuse_space, inuse_objects, alloc_space or alloc_objects"
                ))
            })
    }
}

/// What to report and how much of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopOptions {
    pub sample: SampleType,
    /// Rows to show (pprof's `-nodecount`); 0 shows every node above the cutoff.
    pub top: usize,
    /// Sort by cumulative rather than flat value (pprof's `-cum`).
    pub cum: bool,
    /// Also hide rows whose |flat| and |cum| are both below this.
    pub min_delta: Option<i64>,
    /// Leave out every sample whose stack has a function matching this (pprof's
    /// `-ignore`).
    pub ignore: Option<Ignore>,
}

/// A regex over function names for [`TopOptions::ignore`]; equal when the patterns are.
#[derive(Debug, Clone)]
pub struct Ignore(pub regex::Regex);

impl PartialEq for Ignore {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Ignore {}

impl Ignore {
    /// Whether a stack goes through a function the regex matches.
    fn drops(&self, stack: Stack<'_>) -> bool {
        stack.names().any(|f| f.with_text(|t| self.0.is_match(t)))
    }
}

impl Default for TopOptions {
    fn default() -> Self {
        TopOptions {
            sample: SampleType::InuseSpace,
            top: 0,
            cum: false,
            min_delta: None,
            ignore: None,
        }
    }
}

/// One function: `flat` = samples whose leaf it is, `cum` = samples it appears
/// in anywhere (once per sample, even when recursive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopRow {
    pub function: String,
    pub flat: i64,
    pub cum: i64,
    /// The part of `flat` from stacks that serve profiles
    /// ([`crate::pprof::funcname::PROFILE_SERVING`]): the cost of being watched.
    pub serving_flat: i64,
}

/// The result of [`top`] or [`diff`], in the order pprof prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopReport {
    pub sample: SampleType,
    /// pprof's total: the sum of |value| over samples (for a diff, of the
    /// merged new-minus-base samples), the base of every percentage.
    pub total: i64,
    pub rows: Vec<TopRow>,
    /// Whether this is a diff (`-base`).
    pub is_diff: bool,
    /// Nodes left out because |cum| was under pprof's node fraction (0.5%).
    pub dropped_nodes: usize,
    /// Nodes left after that cutoff, before `top` cut the list.
    pub nodes_before_top: usize,
    /// Sum of |value| over the samples whose stack serves a profile.
    pub serving_total: i64,
}

/// pprof's default `-nodefraction`.
const NODE_FRACTION: f64 = 0.005;

/// `go tool pprof -top -sample_index=...` of one profile.
pub fn top(p: &HeapProfile, opts: &TopOptions) -> TopReport {
    let samples: Vec<(Stack<'_>, i64)> = p
        .samples
        .iter()
        .map(|s| (p.stack(s), opts.sample.value(s)))
        .collect();
    report(&samples, opts, false)
}

/// `go tool pprof -top -base BASE NEW`: every value is new minus base.
pub fn diff(base: &HeapProfile, new: &HeapProfile, opts: &TopOptions) -> TopReport {
    let merged = merged_delta(base, new, opts.sample);
    report(&merged, opts, true)
}

/// Object size of a sample's bucket. Go keys its profile buckets by (stack,
/// object size) and pprof merges base and new samples only when the size label
/// matches too; the scaled values keep the size approximately.
fn object_size(s: &HeapSample) -> f64 {
    if s.alloc_objects == 0 {
        0.0
    } else {
        s.alloc_bytes as f64 / s.alloc_objects as f64
    }
}

/// Whether two samples of the same stack can be the same (stack, size) bucket.
/// Scaling truncates the object count, so bytes/objects of an estimate is off
/// from the true size by up to one object's worth: allow that much.
fn same_bucket(a: &HeapSample, b: &HeapSample) -> bool {
    let (sa, sb) = (object_size(a), object_size(b));
    if sa == 0.0 || sb == 0.0 {
        return sa == sb;
    }
    // Both estimates are at or above the true size, by at most a factor 1 + 1/objects.
    let objects = a.alloc_objects.min(b.alloc_objects).max(1) as f64;
    sa.max(sb) / sa.min(sb) - 1.0 <= 1.0 / objects + 0.001
}

/// New minus base, pairing each new sample with the base sample of the same
/// stack and the nearest object size (pprof's merge); unpaired samples of either
/// side stay as they are, so pprof's total (sum of |value|) comes out the same.
fn merged_delta<'a>(
    base: &'a HeapProfile,
    new: &'a HeapProfile,
    sample: SampleType,
) -> Vec<(Stack<'a>, i64)> {
    // Stacks of two profiles: keyed by their names (each profile has its own table).
    let mut by_stack: HashMap<Stack<'a>, Vec<usize>, RandomState> = HashMap::default();
    for (i, s) in base.samples.iter().enumerate() {
        by_stack.entry(base.stack(s)).or_default().push(i);
    }
    let mut used = vec![false; base.samples.len()];
    let mut out = Vec::with_capacity(new.samples.len() + base.samples.len());
    for s in &new.samples {
        let mut v = sample.value(s);
        if let Some(cands) = by_stack.get_mut(&new.stack(s)) {
            let size = object_size(s);
            let best = cands
                .iter()
                .enumerate()
                .filter_map(|(k, &i)| base.samples.get(i).map(|b| (k, i, b)))
                .filter(|(_, _, b)| same_bucket(s, b))
                .min_by(|x, y| {
                    let dx = (object_size(x.2) / size).ln().abs();
                    let dy = (object_size(y.2) / size).ln().abs();
                    dx.total_cmp(&dy)
                })
                .map(|(k, i, b)| (k, i, sample.value(b)));
            if let Some((k, i, bv)) = best {
                cands.swap_remove(k);
                if let Some(u) = used.get_mut(i) {
                    *u = true;
                }
                v = v.saturating_sub(bv);
            }
        }
        out.push((new.stack(s), v));
    }
    for (s, u) in base.samples.iter().zip(&used) {
        if !u {
            out.push((base.stack(s), sample.value(s).saturating_neg()));
        }
    }
    out
}

fn report(samples: &[(Stack<'_>, i64)], opts: &TopOptions, is_diff: bool) -> TopReport {
    // With `ignore`, pprof still states the total (and cuts nodes at a fraction of the
    // flat sum) of the whole profile, so the rows' percentages are of everything.
    let mut total: i64 = 0;
    let mut ignored_flat: i64 = 0;
    let mut serving_total: i64 = 0;
    let mut serving_flat: HashMap<Name<'_>, i64, RandomState> = HashMap::default();
    let mut nodes: HashMap<Name<'_>, (i64, i64), RandomState> = HashMap::default();
    let mut seen: HashSet<Name<'_>, RandomState> = HashSet::default();
    for &(stack, v) in samples {
        // pprof skips zero-valued samples: they create no node.
        if v == 0 {
            continue;
        }
        total = total.saturating_add(v.saturating_abs());
        if opts.ignore.as_ref().is_some_and(|i| i.drops(stack)) {
            if stack.leaf().is_some() {
                ignored_flat = ignored_flat.saturating_add(v);
            }
            continue;
        }
        seen.clear();
        for f in stack.names() {
            if seen.insert(f) {
                let n = nodes.entry(f).or_insert((0, 0));
                n.1 = n.1.saturating_add(v);
            }
        }
        let serving = crate::pprof::funcname::stack_serves_profiles(stack.names());
        if serving {
            serving_total = serving_total.saturating_add(v.saturating_abs());
        }
        if let Some(leaf) = stack.leaf() {
            let n = nodes.entry(leaf).or_insert((0, 0));
            n.0 = n.0.saturating_add(v);
            if serving {
                let s = serving_flat.entry(leaf).or_insert(0);
                *s = s.saturating_add(v);
            }
        }
    }
    // pprof cuts at a fraction of the sum of flat values (not of |values|).
    let flat_sum: i64 = nodes
        .values()
        .fold(ignored_flat, |a, n| a.saturating_add(n.0));
    let cutoff = ((flat_sum as f64) * NODE_FRACTION) as i64;
    let cutoff = cutoff.saturating_abs();
    let all = nodes.len();
    let mut rows: Vec<TopRow> = nodes
        .into_iter()
        .filter(|(_, (_, cum))| cum.saturating_abs() >= cutoff)
        .map(|(f, (flat, cum))| TopRow {
            function: f.to_string(),
            flat,
            cum,
            serving_flat: serving_flat.get(&f).copied().unwrap_or(0),
        })
        .collect();
    let dropped_nodes = all - rows.len();
    if opts.cum {
        rows.sort_by(|a, b| {
            b.cum
                .unsigned_abs()
                .cmp(&a.cum.unsigned_abs())
                .then_with(|| a.function.cmp(&b.function))
                .then_with(|| b.flat.unsigned_abs().cmp(&a.flat.unsigned_abs()))
        });
    } else {
        rows.sort_by(|a, b| {
            b.flat
                .unsigned_abs()
                .cmp(&a.flat.unsigned_abs())
                .then_with(|| a.function.cmp(&b.function))
                .then_with(|| b.cum.unsigned_abs().cmp(&a.cum.unsigned_abs()))
        });
    }
    if let Some(min) = opts.min_delta {
        let min = min.unsigned_abs();
        rows.retain(|r| r.flat.unsigned_abs() >= min || r.cum.unsigned_abs() >= min);
    }
    let nodes_before_top = rows.len();
    if opts.top > 0 {
        rows.truncate(opts.top);
    }
    TopReport {
        sample: opts.sample,
        total,
        rows,
        is_diff,
        dropped_nodes,
        nodes_before_top,
        serving_total,
    }
}

/// Flat growth (new minus base) per function, largest growth first; functions
/// with no change are left out. The leak signals use the head of this list.
pub fn growth_by_function(
    base: &HeapProfile,
    new: &HeapProfile,
    sample: SampleType,
) -> Vec<(String, i64)> {
    let leaves = [(new, 1i64), (base, -1i64)]
        .into_iter()
        .flat_map(|(p, sign)| {
            p.samples.iter().filter_map(move |s| {
                let leaf = p.stack(s).leaf()?;
                Some((leaf, sample.value(s).saturating_mul(sign)))
            })
        });
    flat_growth(leaves)
}

/// The sum of the values given for each name, left out where it is 0, largest first
/// (then by name): the flat growth of [`growth_by_function`] from (leaf, signed value)
/// pairs.
pub fn flat_growth<K: Hash + Eq + Display>(
    values: impl IntoIterator<Item = (K, i64)>,
) -> Vec<(String, i64)> {
    let mut flat: HashMap<K, i64, RandomState> = HashMap::default();
    for (k, v) in values {
        let e = flat.entry(k).or_insert(0);
        *e = e.saturating_add(v);
    }
    let mut out: Vec<(String, i64)> = flat
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .map(|(f, v)| (f.to_string(), v))
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// Output unit chosen like pprof's `selectOutputUnit` for `-unit=minimum`.
#[derive(Debug, Clone, Copy)]
struct Unit {
    name: &'static str,
    factor: f64,
}

const MEMORY_UNITS: [(&str, f64); 6] = [
    ("B", 1.0),
    ("kB", 1024.0),
    ("MB", 1048576.0),
    ("GB", 1073741824.0),
    ("TB", 1099511627776.0),
    ("PB", 1125899906842624.0),
];

/// The largest memory unit that `v` bytes fill at least once (pprof's autoScale).
fn auto_unit(v: i64) -> Option<Unit> {
    let v = v.unsigned_abs() as f64;
    MEMORY_UNITS
        .iter()
        .rev()
        .find(|(_, f)| v / f >= 1.0)
        .map(|&(name, factor)| Unit { name, factor })
}

impl TopReport {
    fn unit(&self) -> Option<Unit> {
        if !self.sample.is_bytes() {
            return None;
        }
        let mut min: i64 = 0;
        for r in &self.rows {
            let mut m = r.flat.saturating_abs();
            if m == 0 {
                m = r.cum.saturating_abs();
            }
            if m > 0 && (min == 0 || m < min) {
                min = m;
            }
        }
        let max = self.total;
        if min == 0 {
            min = max;
        }
        let (min_u, max_u) = (auto_unit(min), auto_unit(max));
        let unit = match (min_u, max_u) {
            (Some(a), Some(b)) if a.name != b.name && min.saturating_mul(100) < max => {
                auto_unit(min.saturating_mul(100))
            }
            (a, _) => a,
        };
        Some(unit.unwrap_or(Unit {
            name: "B",
            factor: 1.0,
        }))
    }

    fn format_value(&self, unit: Option<Unit>, v: i64) -> String {
        let s = match unit {
            Some(u) => format!("{:.2}", v as f64 / u.factor),
            None => format!("{v}.00"),
        };
        let s = s.strip_suffix(".00").unwrap_or(&s).to_string();
        if s == "0" || s == "-0" {
            return "0".to_string();
        }
        match unit {
            Some(u) => s + u.name,
            None => s,
        }
    }

    /// Sum of the flat values of the rows shown.
    pub fn shown_flat(&self) -> i64 {
        self.rows.iter().fold(0i64, |a, r| a.saturating_add(r.flat))
    }

    /// The report as `go tool pprof -top` prints it (without the `File:` and
    /// `Time:` lines, and without `(inline)` marks).
    pub fn render(&self) -> String {
        let unit = self.unit();
        let fv = |v: i64| self.format_value(unit, v);
        let mut out = String::new();
        out.push_str(&format!(
            "Type: {}{}\n",
            self.sample,
            if self.is_diff { " (new - base)" } else { "" }
        ));
        let shown = self.shown_flat();
        out.push_str(&format!(
            "Showing nodes accounting for {}, {} of {} total\n",
            fv(shown),
            percentage(shown, self.total).trim(),
            fv(self.total)
        ));
        if self.total != 0 {
            if self.dropped_nodes > 0 {
                let cut = ((self.total as f64) * NODE_FRACTION) as i64;
                out.push_str(&format!(
                    "Dropped {} node{} (cum <= {})\n",
                    self.dropped_nodes,
                    if self.dropped_nodes > 1 { "s" } else { "" },
                    fv(cut.saturating_abs())
                ));
            }
            if !self.rows.is_empty() && self.rows.len() < self.nodes_before_top {
                out.push_str(&format!(
                    "Showing top {} nodes out of {}\n",
                    self.rows.len(),
                    self.nodes_before_top
                ));
            }
        }
        out.push_str("      flat  flat%   sum%        cum   cum%\n");
        let mut sum: i64 = 0;
        for r in &self.rows {
            sum = sum.saturating_add(r.flat);
            out.push_str(&format!(
                "{:>10} {} {} {:>10} {}  {}\n",
                fv(r.flat),
                percentage(r.flat, self.total),
                percentage(sum, self.total),
                fv(r.cum),
                percentage(r.cum, self.total),
                crate::printable::printable_line(&r.function)
            ));
        }
        out
    }
}

impl TopReport {
    /// Rows shown whose flat value is mostly (over half) from stacks that serve
    /// profiles, with that part.
    pub fn serving_rows(&self) -> Vec<(&str, i64)> {
        self.rows
            .iter()
            .filter(|r| r.flat != 0 && r.serving_flat.unsigned_abs() * 2 > r.flat.unsigned_abs())
            .map(|r| (r.function.as_str(), r.serving_flat))
            .collect()
    }

    /// A note for the reader (printed after the table, not in it, so the table stays
    /// pprof's): which rows shown are mostly the cost of serving profiles, and how to
    /// leave them out. `None` when no row shown is.
    pub fn serving_note(&self) -> Option<String> {
        let rows = self.serving_rows();
        if rows.is_empty() {
            return None;
        }
        let unit = self.unit();
        let mut out = format!(
            "note: {} of the total {} ({}) was allocated while serving profiles \
             (stacks through net/http/pprof or runtime/pprof: leakwatch's polls and any \
             other profiler's), not by the service's own work; these rows are mostly that:\n",
            self.format_value(unit, self.serving_total),
            self.format_value(unit, self.total),
            percentage(self.serving_total, self.total).trim()
        );
        for (f, v) in rows {
            out.push_str(&format!(
                "  {:>10}  {}\n",
                self.format_value(unit, v),
                crate::printable::printable_line(f)
            ));
        }
        out.push_str(&format!(
            "  leave them out with --ignore '{re}' (go tool pprof: -ignore '{re}')\n",
            re = crate::pprof::funcname::PROFILE_SERVING_REGEX
        ));
        Some(out)
    }
}

/// pprof's `measurement.Percentage`: `  100%`, `%5.2f%%` from 1%, Go's `%5.2g%%` below.
fn percentage(value: i64, total: i64) -> String {
    let ratio = if total != 0 {
        (value as f64 / total as f64).abs() * 100.0
    } else {
        0.0
    };
    if (99.95..=100.05).contains(&ratio) {
        "  100%".to_string()
    } else if ratio >= 1.0 {
        format!("{ratio:5.2}%")
    } else {
        format!("{:>5}%", go_g2(ratio))
    }
}

/// Go's `%.2g` of a non-negative finite float.
fn go_g2(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".to_string();
    }
    // Rust's `{:.1e}` rounds to 2 significant digits exactly like %g does.
    let e = format!("{v:.1e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..2).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{}{:02}", trim(mant), sign, exp.unsigned_abs())
    } else {
        let decimals = usize::try_from(1 - exp).unwrap_or(0);
        trim(&format!("{v:.decimals$}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pprof::HeapValues;
    use crate::pprof::funcname::PROFILE_SERVING_REGEX;

    #[test]
    fn go_percentages() {
        let cases = [
            (1, 1, "  100%"),
            (0, 5, "    0%"),
            (5413, 10000, "54.13%"),
            (51, 100000, "0.051%"),
            (64, 1000000, "0.0064%"),
            (64, 1000000000, "6.4e-06%"),
            (-826, 10000, " 8.26%"),
            (996, 100000, "    1%"),
            (9996, 1000000, "    1%"),
        ];
        for (v, t, want) in cases {
            assert_eq!(percentage(v, t), want, "{v}/{t}");
        }
    }

    fn profile(samples: &[(&[&str], u64)]) -> HeapProfile {
        // One-byte objects: every sample of a stack is the same (stack, size) bucket.
        let values = |inuse_bytes| HeapValues {
            inuse_bytes,
            inuse_objects: inuse_bytes,
            alloc_bytes: inuse_bytes,
            alloc_objects: inuse_bytes,
        };
        HeapProfile::from_samples(1, samples.iter().map(|(s, b)| (*s, values(*b)))).unwrap()
    }

    #[test]
    fn flat_cum_and_recursion() {
        let p = profile(&[
            (&["leaf", "rec", "rec", "main"], 1000),
            (&["rec", "main"], 500),
            (&["other"], 0),
        ]);
        let r = top(&p, &TopOptions::default());
        assert_eq!(r.total, 1500);
        let get = |f: &str| r.rows.iter().find(|x| x.function == f).cloned().unwrap();
        assert_eq!((get("leaf").flat, get("leaf").cum), (1000, 1000));
        assert_eq!((get("rec").flat, get("rec").cum), (500, 1500));
        assert_eq!((get("main").flat, get("main").cum), (0, 1500));
        assert!(r.rows.iter().all(|x| x.function != "other"));
        assert_eq!(r.rows[0].function, "leaf");
        let g = growth_by_function(&HeapProfile::default(), &p, SampleType::InuseSpace);
        assert_eq!(g, vec![("leaf".into(), 1000), ("rec".into(), 500)]);
    }

    /// Rows mostly from stacks that serve profiles are named (and only those); the
    /// table itself does not change; `ignore` drops every stack through a match.
    #[test]
    fn rows_that_serve_profiles() {
        let gzip = [
            "compress/flate.NewWriter",
            "net/http/pprof.handler.ServeHTTP",
        ];
        let proto = [
            "runtime/pprof.(*profileBuilder).build",
            "net/http.(*conn).serve",
        ];
        let p = profile(&[
            (&gzip, 3000),
            (&["compress/flate.NewWriter", "main.archive"], 1000),
            (&proto, 400),
            (
                &["runtime.mallocgc", "runtime/pprof.(*profMap).lookup"],
                300,
            ),
            (&["runtime.mallocgc", "main.newSession"], 900),
            (&["main.newSession", "main.loop"], 2000),
        ]);
        let r = top(&p, &TopOptions::default());
        assert_eq!((r.total, r.serving_total), (7600, 3700));
        // (function, part of its flat from serving stacks) for each row mostly that:
        // runtime.mallocgc's 300 of 1200 is not "mostly".
        let mut rows = r.serving_rows();
        rows.sort();
        assert_eq!(
            rows,
            vec![
                ("compress/flate.NewWriter", 3000),
                ("runtime/pprof.(*profileBuilder).build", 400)
            ]
        );
        let note = r.serving_note().unwrap();
        assert!(note.contains("3700B of the total 7600B (48.68%)"), "{note}");
        assert!(note.contains(PROFILE_SERVING_REGEX), "{note}");
        let ignore = Ignore(regex::Regex::new(PROFILE_SERVING_REGEX).unwrap());
        let kept = top(
            &p,
            &TopOptions {
                ignore: Some(ignore),
                ..TopOptions::default()
            },
        );
        assert_eq!(
            (kept.total, kept.serving_total),
            (7600, 0),
            "pprof keeps the whole total"
        );
        assert_eq!(kept.rows[0].function, "main.newSession");
        assert!(kept.serving_note().is_none());
    }

    /// Each profile has its own name table: stacks pair up by their names, PCs included.
    #[test]
    fn diff_pairs_stacks_by_name_across_tables() {
        let base = profile(&[
            (&["main.a", "main.main"], 100),
            (&["0x4a1b", "main.main"], 10),
            (&["main.gone"], 5),
        ]);
        let new = profile(&[
            (&["main.new"], 7),
            (&["0x4a1b", "main.main"], 30),
            (&["main.a", "main.main"], 400),
        ]);
        let r = diff(&base, &new, &TopOptions::default());
        let flat = |f: &str| r.rows.iter().find(|x| x.function == f).map(|x| x.flat);
        assert_eq!(flat("main.a"), Some(300));
        assert_eq!(flat("0x4a1b"), Some(20));
        assert_eq!(flat("main.new"), Some(7));
        assert_eq!(flat("main.gone"), Some(-5));
        assert_eq!(r.total, 300 + 20 + 7 + 5);
        let g = growth_by_function(&base, &new, SampleType::InuseSpace);
        assert_eq!(
            g,
            [
                ("main.a".to_string(), 300),
                ("0x4a1b".to_string(), 20),
                ("main.new".to_string(), 7),
                ("main.gone".to_string(), -5)
            ]
        );
    }

    #[test]
    fn sample_type_from_str() {
        for t in SampleType::ALL {
            assert_eq!(t.as_str().parse::<SampleType>().unwrap(), t);
        }
        assert!("inuse".parse::<SampleType>().is_err());
    }
}
