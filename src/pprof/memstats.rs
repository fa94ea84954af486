//! `runtime.MemStats` as a Go service reports it: the `# runtime.MemStats` trailer of
//! `heap?debug=1` (field by field, driven by the heap text reader) and the `memstats` object
//! of expvar's `/debug/vars` (its series are emitted by `metrics::emit`).
//!
//! Every field is an `Option`: a field the input does not carry (expvar has no `MaxRSS`,
//! a truncated trailer lacks its last lines) stays `None` and its series is left out,
//! rather than being reported as a misleading 0.

use serde::Deserialize;

use crate::{Error, Result};

/// The fields of Go's `runtime.MemStats` that its text and JSON forms carry.
/// Byte values are bytes; `last_gc` and `pause_end` are Unix nanoseconds.
///
/// The serde names are expvar's JSON keys (the Go field names); the text trailer uses
/// the same names except for the `Stack`/`MSpan`/`MCache` lines, which pack the
/// `*Inuse / *Sys` pair into one line (see [`MemStats::set_text_field`]).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MemStats {
    #[serde(rename = "Alloc")]
    pub alloc: Option<u64>,
    #[serde(rename = "TotalAlloc")]
    pub total_alloc: Option<u64>,
    #[serde(rename = "Sys")]
    pub sys: Option<u64>,
    #[serde(rename = "Lookups")]
    pub lookups: Option<u64>,
    #[serde(rename = "Mallocs")]
    pub mallocs: Option<u64>,
    #[serde(rename = "Frees")]
    pub frees: Option<u64>,
    #[serde(rename = "HeapAlloc")]
    pub heap_alloc: Option<u64>,
    #[serde(rename = "HeapSys")]
    pub heap_sys: Option<u64>,
    #[serde(rename = "HeapIdle")]
    pub heap_idle: Option<u64>,
    #[serde(rename = "HeapInuse")]
    pub heap_inuse: Option<u64>,
    #[serde(rename = "HeapReleased")]
    pub heap_released: Option<u64>,
    #[serde(rename = "HeapObjects")]
    pub heap_objects: Option<u64>,
    #[serde(rename = "StackInuse")]
    pub stack_inuse: Option<u64>,
    #[serde(rename = "StackSys")]
    pub stack_sys: Option<u64>,
    #[serde(rename = "MSpanInuse")]
    pub mspan_inuse: Option<u64>,
    #[serde(rename = "MSpanSys")]
    pub mspan_sys: Option<u64>,
    #[serde(rename = "MCacheInuse")]
    pub mcache_inuse: Option<u64>,
    #[serde(rename = "MCacheSys")]
    pub mcache_sys: Option<u64>,
    #[serde(rename = "BuckHashSys")]
    pub buck_hash_sys: Option<u64>,
    #[serde(rename = "GCSys")]
    pub gc_sys: Option<u64>,
    #[serde(rename = "OtherSys")]
    pub other_sys: Option<u64>,
    #[serde(rename = "NextGC")]
    pub next_gc: Option<u64>,
    /// Unix nanoseconds of the end of the last GC; 0 if there was none.
    #[serde(rename = "LastGC")]
    pub last_gc: Option<u64>,
    #[serde(rename = "NumGC")]
    pub num_gc: Option<u64>,
    #[serde(rename = "NumForcedGC")]
    pub num_forced_gc: Option<u64>,
    #[serde(rename = "GCCPUFraction")]
    pub gc_cpu_fraction: Option<f64>,
    #[serde(rename = "DebugGC")]
    pub debug_gc: Option<bool>,
    /// Bytes (`getrusage` `ru_maxrss` x 1024 on Linux). Only in the text trailer.
    #[serde(rename = "MaxRSS")]
    pub max_rss: Option<u64>,
    /// The 256-slot circular buffer of recent stop-the-world pause durations (ns).
    #[serde(rename = "PauseNs")]
    pub pause_ns: Vec<u64>,
    /// The matching circular buffer of pause end times (Unix ns, 0 = unused slot).
    #[serde(rename = "PauseEnd")]
    pub pause_end: Vec<u64>,
}

/// A plain integer field of the text trailer, by its Go name.
fn text_u64_field<'a>(m: &'a mut MemStats, name: &str) -> Option<&'a mut Option<u64>> {
    Some(match name {
        "Alloc" => &mut m.alloc,
        "TotalAlloc" => &mut m.total_alloc,
        "Sys" => &mut m.sys,
        "Lookups" => &mut m.lookups,
        "Mallocs" => &mut m.mallocs,
        "Frees" => &mut m.frees,
        "HeapAlloc" => &mut m.heap_alloc,
        "HeapSys" => &mut m.heap_sys,
        "HeapIdle" => &mut m.heap_idle,
        "HeapInuse" => &mut m.heap_inuse,
        "HeapReleased" => &mut m.heap_released,
        "HeapObjects" => &mut m.heap_objects,
        "BuckHashSys" => &mut m.buck_hash_sys,
        "GCSys" => &mut m.gc_sys,
        "OtherSys" => &mut m.other_sys,
        "NextGC" => &mut m.next_gc,
        "LastGC" => &mut m.last_gc,
        "NumGC" => &mut m.num_gc,
        "NumForcedGC" => &mut m.num_forced_gc,
        "MaxRSS" => &mut m.max_rss,
        _ => return None,
    })
}

fn parse_u64(value: &str) -> std::result::Result<u64, String> {
    value
        .trim()
        .parse::<u64>()
        .map_err(|e| format!("{value:?} is not an unsigned integer: {e}"))
}

/// `INT / INT`, as in `# Stack = 327680 / 327680`.
fn parse_pair(value: &str) -> std::result::Result<(u64, u64), String> {
    let (a, b) = value
        .split_once('/')
        .ok_or_else(|| format!("{value:?} is not 'INUSE / SYS'"))?;
    Ok((parse_u64(a)?, parse_u64(b)?))
}

/// `[INT INT ... INT]`, as Go's `%v` prints a `[256]uint64`.
fn parse_list(value: &str) -> std::result::Result<Vec<u64>, String> {
    let inner = value
        .trim()
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .ok_or_else(|| "expected a list '[INT ... INT]'".to_string())?;
    inner.split_ascii_whitespace().map(parse_u64).collect()
}

impl MemStats {
    /// Sets one field from a `# NAME = VALUE` line of the `heap?debug=1` trailer.
    /// Unknown names are ignored (a future Go may add lines); a known name with a
    /// value that does not parse is an error, returned as the reason for the caller
    /// to attach the line number to.
    pub fn set_text_field(&mut self, name: &str, value: &str) -> std::result::Result<(), String> {
        let field_error = |reason: String| format!("MemStats {name}: {reason}");
        if let Some(slot) = text_u64_field(self, name) {
            *slot = Some(parse_u64(value).map_err(field_error)?);
            return Ok(());
        }
        match name {
            "Stack" => {
                (self.stack_inuse, self.stack_sys) =
                    split_some(parse_pair(value).map_err(field_error)?)
            }
            "MSpan" => {
                (self.mspan_inuse, self.mspan_sys) =
                    split_some(parse_pair(value).map_err(field_error)?)
            }
            "MCache" => {
                (self.mcache_inuse, self.mcache_sys) =
                    split_some(parse_pair(value).map_err(field_error)?)
            }
            "PauseNs" => self.pause_ns = parse_list(value).map_err(field_error)?,
            "PauseEnd" => self.pause_end = parse_list(value).map_err(field_error)?,
            "GCCPUFraction" => {
                // Go's %v of a float64: `0`, `0.0014226287054816267` or `1.2e-05`;
                // Rust's parser reads all three.
                let f = value
                    .trim()
                    .parse::<f64>()
                    .map_err(|e| field_error(format!("{value:?} is not a number: {e}")))?;
                self.gc_cpu_fraction = Some(f);
            }
            "DebugGC" => {
                self.debug_gc = Some(match value.trim() {
                    "true" => true,
                    "false" => false,
                    other => return Err(field_error(format!("{other:?} is not true or false"))),
                })
            }
            _ => {}
        }
        Ok(())
    }

    /// The most recent stop-the-world pause: `PauseNs[(NumGC+255) % 256]`.
    /// `None` before the first GC (the ring is all zeros then) or when the ring is missing.
    pub fn last_pause_ns(&self) -> Option<u64> {
        let num_gc = self.num_gc?;
        if num_gc == 0 {
            return None;
        }
        let slot = (num_gc % 256 + 255) % 256;
        self.pause_ns.get(usize::try_from(slot).ok()?).copied()
    }

    /// The longest pause in the ring (the last 256 GCs); `None` when the ring is missing.
    pub fn max_pause_ns(&self) -> Option<u64> {
        self.pause_ns.iter().copied().max()
    }
}

fn split_some((a, b): (u64, u64)) -> (Option<u64>, Option<u64>) {
    (Some(a), Some(b))
}

/// Reads the `memstats` object of expvar's `/debug/vars` JSON. Other keys (`cmdline`,
/// custom vars) and unknown MemStats fields (`BySize`, `EnableGC`, `PauseTotalNs`) are
/// ignored. Not JSON, or JSON without a `memstats` object, is [`Error::NotFormat`]; a
/// field of the wrong type is [`Error::Malformed`] at serde's line.
pub fn parse_expvar(json: &[u8]) -> Result<MemStats> {
    const FORMAT: &str = "expvar /debug/vars";

    #[derive(Deserialize)]
    struct Vars {
        memstats: Option<MemStats>,
    }

    let starts_like_object = json
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{');
    if !starts_like_object {
        return Err(Error::NotFormat {
            format: FORMAT,
            reason: "the body is not a JSON object".into(),
        });
    }
    let vars: Vars = serde_json::from_slice(json)
        .map_err(|e| Error::malformed(FORMAT, e.line().max(1), e.to_string()))?;
    vars.memstats.ok_or_else(|| Error::NotFormat {
        format: FORMAT,
        reason: "no \"memstats\" object (is the expvar package imported?)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_table() {
        type Check = fn(&MemStats) -> bool;
        let cases: &[(&str, &str, Check)] = &[
            ("Alloc", "4624144", |m| m.alloc == Some(4624144)),
            ("Stack", "327680 / 65536", |m| {
                m.stack_inuse == Some(327680) && m.stack_sys == Some(65536)
            }),
            ("MSpan", "54400 / 65280", |m| {
                m.mspan_inuse == Some(54400) && m.mspan_sys == Some(65280)
            }),
            ("MCache", "2400 / 15600", |m| {
                m.mcache_inuse == Some(2400) && m.mcache_sys == Some(15600)
            }),
            ("GCCPUFraction", "6.353448922953855e-05", |m| {
                m.gc_cpu_fraction == Some(6.353448922953855e-05)
            }),
            ("GCCPUFraction", "0", |m| m.gc_cpu_fraction == Some(0.0)),
            ("DebugGC", "true", |m| m.debug_gc == Some(true)),
            ("PauseNs", "[1 2 3]", |m| m.pause_ns == [1, 2, 3]),
            ("PauseEnd", "[]", |m| m.pause_end.is_empty()),
            ("SomethingNew", "whatever", |m| *m == MemStats::default()),
        ];
        for (name, value, check) in cases {
            let mut m = MemStats::default();
            m.set_text_field(name, value).unwrap();
            assert!(check(&m), "{name} = {value}: {m:?}");
        }
    }

    #[test]
    fn bad_text_values_are_errors() {
        for (name, value) in [
            ("Alloc", "-1"),
            ("Alloc", "18446744073709551616"),
            ("Stack", "327680"),
            ("PauseNs", "[1 2"),
            ("PauseNs", "[1 x]"),
            ("DebugGC", "yes"),
            ("GCCPUFraction", "one"),
        ] {
            let err = MemStats::default().set_text_field(name, value).unwrap_err();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn last_and_max_pause() {
        let mut m = MemStats {
            num_gc: Some(0),
            pause_ns: vec![0; 256],
            ..MemStats::default()
        };
        assert_eq!(m.last_pause_ns(), None);
        assert_eq!(m.max_pause_ns(), Some(0));
        m.pause_ns[0] = 500;
        m.pause_ns[1] = 900;
        m.pause_ns[255] = 7;
        m.num_gc = Some(2);
        assert_eq!(m.last_pause_ns(), Some(900));
        // After 256 GCs the ring wrapped: the latest is slot 255.
        m.num_gc = Some(256);
        assert_eq!(m.last_pause_ns(), Some(7));
        m.num_gc = Some(257);
        assert_eq!(m.last_pause_ns(), Some(500));
        m.num_gc = Some(u64::MAX);
        assert_eq!(m.last_pause_ns(), Some(m.pause_ns[254]));
        assert_eq!(m.max_pause_ns(), Some(900));
        assert_eq!(MemStats::default().max_pause_ns(), None);
    }

    #[test]
    fn expvar_errors() {
        assert!(matches!(
            parse_expvar(b"<html>"),
            Err(Error::NotFormat { .. })
        ));
        assert!(matches!(parse_expvar(b""), Err(Error::NotFormat { .. })));
        assert!(matches!(
            parse_expvar(b"{\"cmdline\": []}"),
            Err(Error::NotFormat { .. })
        ));
        match parse_expvar(b"{\n\"memstats\": {\n\"Alloc\": \"x\"}}") {
            Err(Error::Malformed { line, .. }) => assert_eq!(line, 3),
            other => panic!("{other:?}"),
        }
        let m = parse_expvar(br#"{"memstats": {"Alloc": 5, "BySize": [{"Size": 0}]}}"#).unwrap();
        assert_eq!(m.alloc, Some(5));
        assert_eq!(m.max_rss, None);
    }
}
