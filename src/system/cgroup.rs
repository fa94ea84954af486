//! cgroup memory files (v2 `memory.*` and v1 `memory.*_in_bytes`): pure parsers, one
//! reader (their series are emitted by `metrics::emit`, same names for both versions).

use std::path::Path;

use super::discover::{CgroupLocation, CgroupVersion};
use crate::{Error, Result};

/// v1 prints "no limit" as `PAGE_COUNTER_MAX * PAGE_SIZE`, i.e. `i64::MAX` rounded down
/// to a page (9223372036854771712 with 4 KiB pages, less with 64 KiB pages). No real
/// machine has 2^62 bytes, so anything at or above it is "unlimited" on any page size.
pub const V1_UNLIMITED_THRESHOLD: u64 = 1 << 62;

/// One PSI line of `memory.pressure`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PsiLine {
    /// Percent of wall time stalled over the last 10/60/300 s (0..100, as the kernel prints).
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    /// Total stall time in microseconds.
    pub total_usec: u64,
}

/// `memory.pressure`: `some` always, `full` on every kernel that has memory PSI.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pressure {
    pub some: PsiLine,
    pub full: Option<PsiLine>,
}

/// One reading of a cgroup's memory files.
#[derive(Debug, Clone, PartialEq)]
pub struct CgroupMemory {
    pub version: CgroupVersion,
    pub path: String,
    /// v2 `memory.current`, v1 `memory.usage_in_bytes`.
    pub usage: u64,
    /// v2 `memory.max`, v1 `memory.limit_in_bytes`; `None` = unlimited.
    pub limit: Option<u64>,
    /// v2 `memory.high`; `None` = unlimited, and always on v1 (which has no such knob).
    pub high: Option<u64>,
    /// v2 `memory.peak` (5.19+), v1 `memory.max_usage_in_bytes`.
    pub peak: Option<u64>,
    /// v2 `memory.swap.current`, v1 `memsw.usage - usage` (only with swap accounting).
    pub swap_usage: Option<u64>,
    /// Every `memory.stat` line, in file order, as read.
    pub stat: Vec<(String, u64)>,
    /// v2 `memory.events`; v1 `oom_kill` (from `memory.oom_control`) and `failcnt`.
    pub events: Vec<(String, u64)>,
    /// v2 `memory.pressure` when PSI is enabled; never on v1.
    pub pressure: Option<Pressure>,
}

/// What a `memory.stat` field measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    /// A size in bytes (a gauge).
    Bytes,
    /// A count of events since the cgroup was created (a counter).
    Events,
    /// A limit echoed into the stat file (v1 `hierarchical_*_limit`): not exported.
    Limit,
}

/// cgroup v2 `memory.stat` fields (Documentation/admin-guide/cgroup-v2.rst, kernels
/// 6.1 and 6.12 as captured) and what they measure.
pub const V2_STAT_FIELDS: &[(&str, StatKind)] = {
    use StatKind::{Bytes as B, Events as E};
    &[
        ("anon", B),
        ("file", B),
        ("kernel", B),
        ("kernel_stack", B),
        ("pagetables", B),
        ("sec_pagetables", B),
        ("percpu", B),
        ("sock", B),
        ("vmalloc", B),
        ("shmem", B),
        ("zswap", B),
        ("zswapped", B),
        ("file_mapped", B),
        ("file_dirty", B),
        ("file_writeback", B),
        ("swapcached", B),
        ("anon_thp", B),
        ("file_thp", B),
        ("shmem_thp", B),
        ("inactive_anon", B),
        ("active_anon", B),
        ("inactive_file", B),
        ("active_file", B),
        ("unevictable", B),
        ("slab_reclaimable", B),
        ("slab_unreclaimable", B),
        ("slab", B),
        ("hugetlb", B),
        ("workingset_refault_anon", E),
        ("workingset_refault_file", E),
        ("workingset_activate_anon", E),
        ("workingset_activate_file", E),
        ("workingset_restore_anon", E),
        ("workingset_restore_file", E),
        ("workingset_nodereclaim", E),
        ("pgdemote_kswapd", E),
        ("pgdemote_direct", E),
        ("pgdemote_khugepaged", E),
        ("pgpromote_success", E),
        ("pgscan", E),
        ("pgsteal", E),
        ("pgscan_kswapd", E),
        ("pgscan_direct", E),
        ("pgscan_khugepaged", E),
        ("pgsteal_kswapd", E),
        ("pgsteal_direct", E),
        ("pgsteal_khugepaged", E),
        ("pgfault", E),
        ("pgmajfault", E),
        ("pgrefill", E),
        ("pgactivate", E),
        ("pgdeactivate", E),
        ("pglazyfree", E),
        ("pglazyfreed", E),
        ("swpin_zero", E),
        ("swpout_zero", E),
        ("zswpin", E),
        ("zswpout", E),
        ("zswpwb", E),
        ("thp_fault_alloc", E),
        ("thp_collapse_alloc", E),
        ("thp_swpout", E),
        ("thp_swpout_fallback", E),
        ("numa_pages_migrated", E),
        ("numa_pte_updates", E),
        ("numa_hint_faults", E),
    ]
};

/// cgroup v1 `memory.stat` fields (Documentation/admin-guide/cgroup-v1/memory.rst, the
/// host's 6.18 kernel) without their `total_` twins, which have the same kind.
pub const V1_STAT_FIELDS: &[(&str, StatKind)] = {
    use StatKind::{Bytes as B, Events as E, Limit as L};
    &[
        ("cache", B),
        ("rss", B),
        ("rss_huge", B),
        ("shmem", B),
        ("mapped_file", B),
        ("dirty", B),
        ("writeback", B),
        ("swap", B),
        ("swapcached", B),
        ("inactive_anon", B),
        ("active_anon", B),
        ("inactive_file", B),
        ("active_file", B),
        ("unevictable", B),
        ("workingset_refault_anon", E),
        ("workingset_refault_file", E),
        ("workingset_activate_anon", E),
        ("workingset_activate_file", E),
        ("workingset_restore_anon", E),
        ("workingset_restore_file", E),
        ("workingset_nodereclaim", E),
        ("pgpgin", E),
        ("pgpgout", E),
        ("pgfault", E),
        ("pgmajfault", E),
        ("hierarchical_memory_limit", L),
        ("hierarchical_memsw_limit", L),
    ]
};

/// The kind of a field no table lists (a newer kernel): page, THP, NUMA, workingset and
/// swap-in/out counters are named with these prefixes; everything else the kernel adds
/// to memory.stat has been a size in bytes. A test checks both tables follow this rule.
pub fn stat_kind_by_rule(field: &str) -> StatKind {
    const EVENT_PREFIXES: [&str; 7] = [
        "pg",
        "thp_",
        "numa_",
        "workingset_",
        "zswp",
        "swpin",
        "swpout",
    ];
    if field.starts_with("hierarchical_") && field.ends_with("_limit") {
        StatKind::Limit
    } else if EVENT_PREFIXES.iter().any(|p| field.starts_with(p)) {
        StatKind::Events
    } else {
        StatKind::Bytes
    }
}

/// The kind of a `memory.stat` field: the table first, the rule for unknown names.
pub fn stat_kind(version: CgroupVersion, field: &str) -> StatKind {
    let table = match version {
        CgroupVersion::V2 => V2_STAT_FIELDS,
        CgroupVersion::V1 => V1_STAT_FIELDS,
    };
    let base = match version {
        CgroupVersion::V1 => field.strip_prefix("total_").unwrap_or(field),
        CgroupVersion::V2 => field,
    };
    table
        .iter()
        .find(|(name, _)| *name == base)
        .map(|(_, k)| *k)
        .unwrap_or_else(|| stat_kind_by_rule(base))
}

fn parse_u64_token(format: &'static str, line: usize, tok: &str) -> Result<u64> {
    tok.parse::<u64>().map_err(|_| {
        Error::malformed(
            format,
            line,
            format!("expected an unsigned integer, got {tok:?}"),
        )
    })
}

/// The one non-empty line of a single-value file, trimmed.
fn single_line<'a>(format: &'static str, text: &'a str) -> Result<&'a str> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let Some(first) = lines.next() else {
        return Err(Error::malformed(format, 1, "empty file"));
    };
    if lines.next().is_some() {
        return Err(Error::malformed(format, 2, "expected a single value"));
    }
    Ok(first)
}

/// A file holding one integer (`memory.current`, `memory.peak`, v1 `*_in_bytes`, ...).
pub fn parse_u64_file(format: &'static str, text: &str) -> Result<u64> {
    parse_u64_token(format, 1, single_line(format, text)?)
}

/// v2 `memory.max` / `memory.high`: an integer or `max` (`None` = unlimited).
pub fn parse_max_file(format: &'static str, text: &str) -> Result<Option<u64>> {
    match single_line(format, text)? {
        "max" => Ok(None),
        tok => parse_u64_token(format, 1, tok).map(Some),
    }
}

/// v1 `memory.limit_in_bytes`: huge values mean unlimited (see [`V1_UNLIMITED_THRESHOLD`]).
pub fn parse_v1_limit(text: &str) -> Result<Option<u64>> {
    let v = parse_u64_file("memory.limit_in_bytes", text)?;
    Ok((v < V1_UNLIMITED_THRESHOLD).then_some(v))
}

/// `key SP INT` lines: `memory.stat`, `memory.events`, v1 `memory.oom_control`.
pub fn parse_flat_keyed(format: &'static str, text: &str) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(key), Some(val), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::malformed(
                format,
                i + 1,
                format!("expected \"key value\", got {line:?}"),
            ));
        };
        out.push((key.to_string(), parse_u64_token(format, i + 1, val)?));
    }
    if out.is_empty() {
        return Err(Error::malformed(format, 1, "empty file"));
    }
    Ok(out)
}

/// `memory.pressure`: `some avg10=F avg60=F avg300=F total=INT` and the same for `full`.
pub fn parse_pressure(text: &str) -> Result<Pressure> {
    const FORMAT: &str = "memory.pressure";
    let mut some = None;
    let mut full = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let kind = parts.next().unwrap_or_default();
        let (mut avg10, mut avg60, mut avg300, mut total) = (None, None, None, None);
        for part in parts {
            let Some((k, v)) = part.split_once('=') else {
                return Err(Error::malformed(
                    FORMAT,
                    i + 1,
                    format!("expected key=value, got {part:?}"),
                ));
            };
            let avg = || -> Result<f64> {
                v.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .ok_or_else(|| {
                        Error::malformed(FORMAT, i + 1, format!("{k}={v:?} is not a percentage"))
                    })
            };
            match k {
                "avg10" => avg10 = Some(avg()?),
                "avg60" => avg60 = Some(avg()?),
                "avg300" => avg300 = Some(avg()?),
                "total" => total = Some(parse_u64_token(FORMAT, i + 1, v)?),
                _ => {} // newer kernels may add keys
            }
        }
        let (Some(avg10), Some(avg60), Some(avg300), Some(total_usec)) =
            (avg10, avg60, avg300, total)
        else {
            return Err(Error::malformed(
                FORMAT,
                i + 1,
                "missing one of avg10 avg60 avg300 total",
            ));
        };
        let psi = PsiLine {
            avg10,
            avg60,
            avg300,
            total_usec,
        };
        match kind {
            "some" => some = Some(psi),
            "full" => full = Some(psi),
            other => {
                return Err(Error::malformed(
                    FORMAT,
                    i + 1,
                    format!("expected some or full, got {other:?}"),
                ));
            }
        }
    }
    let Some(some) = some else {
        return Err(Error::malformed(FORMAT, 1, "no \"some\" line"));
    };
    Ok(Pressure { some, full })
}

/// v1 `memory.oom_control` as events: only `oom_kill` (4.13+) counts; `under_oom` and
/// `oom_kill_disable` are states, not events.
pub fn parse_v1_oom_control(text: &str) -> Result<Option<u64>> {
    let pairs = parse_flat_keyed("memory.oom_control", text)?;
    Ok(pairs
        .into_iter()
        .find(|(k, _)| k == "oom_kill")
        .map(|(_, v)| v))
}

fn read_opt(dir: &Path, name: &str) -> Result<Option<String>> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(Some(t)),
        // Missing on older kernels, or not supported (PSI off gives EOPNOTSUPP).
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.kind() == std::io::ErrorKind::Unsupported
                || e.raw_os_error() == Some(95) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::io("reading", path, e)),
    }
}

fn read_req(dir: &Path, name: &str) -> Result<String> {
    let path = dir.join(name);
    std::fs::read_to_string(&path).map_err(|e| Error::io("reading", path, e))
}

/// Attaches the file's path to a parser error.
fn at<T>(dir: &Path, name: &str, r: Result<T>) -> Result<T> {
    r.map_err(|e| Error::BadFile {
        path: dir.join(name),
        reason: e.to_string(),
    })
}

/// Reads a cgroup's memory files. `memory.current` / `memory.usage_in_bytes`,
/// the limit and `memory.stat` are required; the rest are read when present.
pub fn read_cgroup_memory(loc: &CgroupLocation) -> Result<CgroupMemory> {
    match loc.version {
        CgroupVersion::V2 => read_v2(loc),
        CgroupVersion::V1 => read_v1(loc),
    }
}

fn read_v2(loc: &CgroupLocation) -> Result<CgroupMemory> {
    let d = loc.dir.as_path();
    let usage = at(
        d,
        "memory.current",
        parse_u64_file("memory.current", &read_req(d, "memory.current")?),
    )?;
    let limit = at(
        d,
        "memory.max",
        parse_max_file("memory.max", &read_req(d, "memory.max")?),
    )?;
    let stat = at(
        d,
        "memory.stat",
        parse_flat_keyed("memory.stat", &read_req(d, "memory.stat")?),
    )?;
    let high = match read_opt(d, "memory.high")? {
        Some(t) => at(d, "memory.high", parse_max_file("memory.high", &t))?,
        None => None,
    };
    let peak = match read_opt(d, "memory.peak")? {
        Some(t) => Some(at(d, "memory.peak", parse_u64_file("memory.peak", &t))?),
        None => None,
    };
    let swap_usage = match read_opt(d, "memory.swap.current")? {
        Some(t) => Some(at(
            d,
            "memory.swap.current",
            parse_u64_file("memory.swap.current", &t),
        )?),
        None => None,
    };
    let events = match read_opt(d, "memory.events")? {
        Some(t) => at(d, "memory.events", parse_flat_keyed("memory.events", &t))?,
        None => Vec::new(),
    };
    let pressure = match read_opt(d, "memory.pressure")? {
        Some(t) => Some(at(d, "memory.pressure", parse_pressure(&t))?),
        None => None,
    };
    Ok(CgroupMemory {
        version: CgroupVersion::V2,
        path: loc.path.clone(),
        usage,
        limit,
        high,
        peak,
        swap_usage,
        stat,
        events,
        pressure,
    })
}

fn read_v1(loc: &CgroupLocation) -> Result<CgroupMemory> {
    let d = loc.dir.as_path();
    let usage = at(
        d,
        "memory.usage_in_bytes",
        parse_u64_file(
            "memory.usage_in_bytes",
            &read_req(d, "memory.usage_in_bytes")?,
        ),
    )?;
    let limit = at(
        d,
        "memory.limit_in_bytes",
        parse_v1_limit(&read_req(d, "memory.limit_in_bytes")?),
    )?;
    let stat = at(
        d,
        "memory.stat",
        parse_flat_keyed("memory.stat", &read_req(d, "memory.stat")?),
    )?;
    let peak = match read_opt(d, "memory.max_usage_in_bytes")? {
        Some(t) => Some(at(
            d,
            "memory.max_usage_in_bytes",
            parse_u64_file("memory.max_usage_in_bytes", &t),
        )?),
        None => None,
    };
    // memsw files exist only with swap accounting (swapaccount=1).
    let swap_usage = match read_opt(d, "memory.memsw.usage_in_bytes")? {
        Some(t) => {
            let memsw = at(
                d,
                "memory.memsw.usage_in_bytes",
                parse_u64_file("memory.memsw.usage_in_bytes", &t),
            )?;
            Some(memsw.saturating_sub(usage))
        }
        None => None,
    };
    let mut events = Vec::new();
    if let Some(t) = read_opt(d, "memory.oom_control")?
        && let Some(n) = at(d, "memory.oom_control", parse_v1_oom_control(&t))?
    {
        events.push(("oom_kill".to_string(), n));
    }
    if let Some(t) = read_opt(d, "memory.failcnt")? {
        events.push((
            "failcnt".to_string(),
            at(d, "memory.failcnt", parse_u64_file("memory.failcnt", &t))?,
        ));
    }
    Ok(CgroupMemory {
        version: CgroupVersion::V1,
        path: loc.path.clone(),
        usage,
        limit,
        high: None,
        peak,
        swap_usage,
        stat,
        events,
        pressure: None,
    })
}

impl CgroupMemory {
    /// A `memory.stat` value by name.
    pub fn stat_value(&self, field: &str) -> Option<u64> {
        self.stat.iter().find(|(k, _)| k == field).map(|(_, v)| *v)
    }

    /// A memory event count by name (`oom_kill`, `max`, `failcnt`, ...).
    pub fn event(&self, name: &str) -> Option<u64> {
        self.events.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    /// Usage minus inactive file pages, clamped at 0: what kubelet and cAdvisor call the
    /// working set, and what the OOM killer cannot reclaim cheaply. v1 uses the
    /// hierarchical `total_inactive_file`, since `usage_in_bytes` is hierarchical too.
    pub fn working_set(&self) -> u64 {
        let inactive = match self.version {
            CgroupVersion::V2 => self.stat_value("inactive_file"),
            CgroupVersion::V1 => self
                .stat_value("total_inactive_file")
                .or_else(|| self.stat_value("inactive_file")),
        };
        self.usage.saturating_sub(inactive.unwrap_or(0))
    }

    /// The `memory.stat` fields as exported: v2 as read; v1 uses each field's
    /// hierarchical `total_X` value under the name `X` (v2's stat is hierarchical, so
    /// the same name means the same thing on both), falling back to the local value.
    pub fn exported_stat(&self) -> Vec<(&str, u64, StatKind)> {
        match self.version {
            CgroupVersion::V2 => self
                .stat
                .iter()
                .map(|(k, v)| (k.as_str(), *v, stat_kind(CgroupVersion::V2, k)))
                .collect(),
            CgroupVersion::V1 => {
                let mut out: Vec<(&str, u64, StatKind)> = Vec::new();
                for (k, v) in &self.stat {
                    let base = k.strip_prefix("total_").unwrap_or(k);
                    let hierarchical = k.starts_with("total_");
                    if let Some(slot) = out.iter_mut().find(|(n, _, _)| *n == base) {
                        if hierarchical {
                            slot.1 = *v;
                        }
                    } else {
                        out.push((base, *v, stat_kind(CgroupVersion::V1, base)));
                    }
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_follow_the_rule_for_unknown_fields() {
        for (table, name) in [(V2_STAT_FIELDS, "v2"), (V1_STAT_FIELDS, "v1")] {
            for (field, kind) in table {
                assert_eq!(stat_kind_by_rule(field), *kind, "{name} {field}");
            }
        }
        assert_eq!(
            stat_kind(CgroupVersion::V1, "total_pgfault"),
            StatKind::Events
        );
        assert_eq!(stat_kind(CgroupVersion::V1, "total_cache"), StatKind::Bytes);
        assert_eq!(stat_kind(CgroupVersion::V2, "pgfoo_new"), StatKind::Events);
        assert_eq!(
            stat_kind(CgroupVersion::V2, "zswap_new_bytes"),
            StatKind::Bytes
        );
    }

    #[test]
    fn single_values() {
        assert_eq!(parse_u64_file("f", "123\n").unwrap(), 123);
        assert_eq!(parse_max_file("f", "max\n").unwrap(), None);
        assert_eq!(parse_max_file("f", "67108864\n").unwrap(), Some(67108864));
        assert_eq!(parse_v1_limit("9223372036854771712\n").unwrap(), None);
        // 64 KiB pages round i64::MAX down further; still unlimited.
        assert_eq!(parse_v1_limit("9223372036854710272\n").unwrap(), None);
        assert_eq!(parse_v1_limit("100663296\n").unwrap(), Some(100663296));
        for bad in [
            "",
            "\n",
            "-1\n",
            "12 kB\n",
            "1\n2\n",
            "18446744073709551616\n",
        ] {
            assert!(parse_u64_file("f", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pressure_lines() {
        let p = parse_pressure(
            "some avg10=3.07 avg60=0.55 avg300=0.11 total=498919\nfull avg10=3.07 avg60=0.55 avg300=0.11 total=474333\n",
        )
        .unwrap();
        assert_eq!(p.some.avg10, 3.07);
        assert_eq!(p.some.total_usec, 498919);
        assert_eq!(p.full.unwrap().total_usec, 474333);
        let only_some = parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n").unwrap();
        assert!(only_some.full.is_none());
        for (bad, want) in [
            ("", "no \"some\" line"),
            ("some avg10=1 avg60=1 avg300=1\n", "line 1: missing"),
            (
                "some avg10=x avg60=1 avg300=1 total=1\n",
                "not a percentage",
            ),
            (
                "half avg10=1 avg60=1 avg300=1 total=1\n",
                "expected some or full",
            ),
            (
                "some avg10=1 avg60=1 avg300=1 total=1\nfull avg10\n",
                "line 2",
            ),
        ] {
            let err = parse_pressure(bad).unwrap_err().to_string();
            assert!(err.contains(want), "{bad:?}: {err}");
        }
    }

    fn mem(version: CgroupVersion, usage: u64, stat: &[(&str, u64)]) -> CgroupMemory {
        CgroupMemory {
            version,
            path: "/x".into(),
            usage,
            limit: None,
            high: None,
            peak: None,
            swap_usage: None,
            stat: stat.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            events: vec![],
            pressure: None,
        }
    }

    #[test]
    fn working_set_subtracts_inactive_file_and_clamps() {
        let cases = [
            (CgroupVersion::V2, 1000, vec![("inactive_file", 300)], 700),
            (CgroupVersion::V2, 100, vec![("inactive_file", 300)], 0),
            (CgroupVersion::V2, 100, vec![], 100),
            (
                CgroupVersion::V1,
                1000,
                vec![("inactive_file", 10), ("total_inactive_file", 400)],
                600,
            ),
            (CgroupVersion::V1, 1000, vec![("inactive_file", 10)], 990),
        ];
        for (v, usage, stat, want) in cases {
            assert_eq!(
                mem(v, usage, &stat).working_set(),
                want,
                "{v:?} {usage} {stat:?}"
            );
        }
    }

    #[test]
    fn v1_exports_hierarchical_values_under_plain_names() {
        let m = mem(
            CgroupVersion::V1,
            1,
            &[
                ("cache", 5),
                ("pgfault", 7),
                ("hierarchical_memory_limit", 9),
                ("total_cache", 50),
                ("total_pgfault", 70),
            ],
        );
        let got: Vec<_> = m
            .exported_stat()
            .into_iter()
            .map(|(k, v, kind)| (k.to_string(), v, kind))
            .collect();
        assert_eq!(
            got,
            vec![
                ("cache".to_string(), 50, StatKind::Bytes),
                ("pgfault".to_string(), 70, StatKind::Events),
                ("hierarchical_memory_limit".to_string(), 9, StatKind::Limit),
            ]
        );
    }
}
