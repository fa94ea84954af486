//! Parser of the legacy text heap profile served by `heap?debug=1` and `allocs?debug=1`
//! (FORMATS.md section 1), and the pprof-style scaling of its raw sample counts.
//!
//! Laid out like google/pprof's `profile/legacy_profile.go`: every line regex is declared
//! in one place and named for what it matches, and there is one function per piece of the
//! format (header, record line, frame line, MemStats trailer). The input is any bytes:
//! invalid UTF-8 is read lossily, and nothing here panics.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

use super::memstats::MemStats;
use super::{Frame, HeapProfile, HeapSample};
use crate::{Error, Result};

const FORMAT: &str = "heap profile text (debug=1)";

/// `heap profile: 10: 245760 [10: 245761] @ heap/1048576` — totals, then `heap/N` with
/// N = 2 x `runtime.MemProfileRate`.
static HEAP_HEADER_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^heap profile: *(\d+): *(\d+) *\[ *(\d+): *(\d+) *\] *@ *heap/(\d+) *$")
        .expect("heap header regex")
});

/// `10: 245760 [10: 245760] @ 0x6e3aeb 0x6e3c1c` — one record's counts and return PCs
/// (split and checked by [`parse_hex`]).
///
/// The line regexes only cut a line at its separators (spaces, tabs, `@`), which keeps
/// them unambiguous; the splits that need "the last `+`" or "the last `:`" are done in
/// code afterwards, where the rule is visible.
static RECORD_COUNTS_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(\d+): *(\d+) *\[ *(\d+): *(\d+) *\] *@([ 0-9a-fA-Fx]*)$").expect("record regex")
});

/// `#\t0x6e3aea\tmain.newSession+0xaa\t/src/main.go:96` — a symbolized frame: PC,
/// `FUNC+0xOFF` and `FILE:LINE` separated by runs of tabs (text/tabwriter pads the
/// columns of a block with several). [`parse_frame_line`] splits FUNC from the offset at
/// the **last** `+` (`fmt.glob..func1+0x5`) and FILE from the line at the **last** `:`
/// (`C:/x.go:3`, trimpath'ed `leakyapp/main.go:96`).
static SYMBOLIZED_FRAME_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^#\t+(0x[0-9a-fA-F]+)\t+([^\t]+)\t+([^\t]*)$").expect("symbolized frame regex")
});

/// `#\t0x4797a0` — a PC the runtime could not symbolize.
static PC_ONLY_FRAME_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^#\t+(0x[0-9a-fA-F]+)[\t ]*$").expect("pc frame regex"));

/// `# runtime.MemStats` — start of the trailer.
static MEMSTATS_START_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^# runtime\.MemStats *$").expect("memstats start regex"));

/// `# HeapAlloc = 4624144` — one MemStats field of the trailer.
static MEMSTATS_FIELD_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^# ([A-Za-z]+) = (.*)$").expect("memstats field regex"));

/// A parsed `heap?debug=1` body: the header, every record (raw, unscaled, in the order
/// printed) and the MemStats trailer (`None` if the body ended before it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeapText {
    pub header: HeapHeader,
    pub records: Vec<HeapRecord>,
    pub memstats: Option<MemStats>,
}

/// The first line. Its totals are the sums over the records, except that Go >= 1.21 adds
/// 1 to `alloc_bytes` when it equals `inuse_bytes`: never compare them to the byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapHeader {
    pub inuse_objects: u64,
    pub inuse_bytes: u64,
    pub alloc_objects: u64,
    pub alloc_bytes: u64,
    /// The N of `@ heap/N`: twice `runtime.MemProfileRate`; 0 = profiling off.
    pub rate: u64,
}

impl HeapHeader {
    /// `runtime.MemProfileRate`, the mean bytes between samples: N/2 for `heap/N`, as
    /// pprof reads the legacy `heap` header.
    pub fn sampling_period(&self) -> u64 {
        self.rate / 2
    }
}

/// One record: raw sample counts of one stack (not estimates of the real heap).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeapRecord {
    pub inuse_objects: u64,
    pub inuse_bytes: u64,
    pub alloc_objects: u64,
    pub alloc_bytes: u64,
    /// Return PCs from the `@` list, leaf first.
    pub addrs: Vec<u64>,
    /// Frame lines, leaf first. Not 1:1 with `addrs`: inlining expands a PC into several
    /// frames, and leading `runtime.*` frames are hidden.
    pub frames: Vec<Frame>,
}

/// Parses a `heap?debug=1` / `allocs?debug=1` body.
///
/// Errors: [`Error::NotFormat`] when the first line is not a heap profile header (a 404
/// `Unknown profile`, an HTML page, a proto body); [`Error::Malformed`] with the 1-based
/// line for a line that fits nowhere in the grammar.
pub fn parse_heap_text(input: &[u8]) -> Result<HeapText> {
    let text = String::from_utf8_lossy(input);
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .peekable();

    let (_, first) = lines.next().unwrap_or((1, ""));
    let header = parse_header(first)?;
    let mut profile = HeapText {
        header,
        records: Vec::new(),
        memstats: None,
    };

    while let Some((n, line)) = lines.next() {
        if line.is_empty() {
            continue;
        }
        if MEMSTATS_START_RE.is_match(line) {
            profile.memstats = Some(parse_memstats_trailer(&mut lines)?);
            break;
        }
        let mut record = parse_record_line(n, line)?;
        // Frame lines, and only they, start with `#` and a tab (the trailer has `# `).
        while let Some(&(n, line)) = lines.peek() {
            if !line.starts_with("#\t") {
                break;
            }
            record.frames.push(parse_frame_line(n, line)?);
            lines.next();
        }
        profile.records.push(record);
    }
    Ok(profile)
}

/// The `heap profile: ...` line. Anything that does not even start like one is another
/// format; a line that does but is broken is malformed.
fn parse_header(line: &str) -> Result<HeapHeader> {
    let Some(c) = HEAP_HEADER_RE.captures(line) else {
        if line.starts_with("heap profile:") {
            return Err(Error::malformed(
                FORMAT,
                1,
                format!("bad header {:?}", clip(line)),
            ));
        }
        let reason = if line.trim().is_empty() {
            "empty first line".to_string()
        } else {
            format!("first line is {:?}, not 'heap profile: ...'", clip(line))
        };
        return Err(Error::NotFormat {
            format: FORMAT,
            reason,
        });
    };
    let num = |i: usize| parse_dec(c.get(i).map_or("", |m| m.as_str()), 1, "header");
    Ok(HeapHeader {
        inuse_objects: num(1)?,
        inuse_bytes: num(2)?,
        alloc_objects: num(3)?,
        alloc_bytes: num(4)?,
        rate: num(5)?,
    })
}

/// `INUSE_OBJ: INUSE_BYTES [ALLOC_OBJ: ALLOC_BYTES] @ PC...` — starts a record.
fn parse_record_line(n: usize, line: &str) -> Result<HeapRecord> {
    let Some(c) = RECORD_COUNTS_RE.captures(line) else {
        let reason = if line.starts_with("#\t") {
            "frame line outside a record".to_string()
        } else {
            format!(
                "expected a record 'N: N [N: N] @ 0x...', got {:?}",
                clip(line)
            )
        };
        return Err(Error::malformed(FORMAT, n, reason));
    };
    let num = |i: usize| parse_dec(c.get(i).map_or("", |m| m.as_str()), n, "record");
    let addrs = c
        .get(5)
        .map_or("", |m| m.as_str())
        .split_ascii_whitespace()
        .map(|a| parse_hex(a, n))
        .collect::<Result<Vec<u64>>>()?;
    Ok(HeapRecord {
        inuse_objects: num(1)?,
        inuse_bytes: num(2)?,
        alloc_objects: num(3)?,
        alloc_bytes: num(4)?,
        addrs,
        frames: Vec::new(),
    })
}

/// `#\tPC\tFUNC+OFF\tFILE:LINE` or `#\tPC`.
fn parse_frame_line(n: usize, line: &str) -> Result<Frame> {
    if let Some(c) = SYMBOLIZED_FRAME_RE.captures(line) {
        let group = |i: usize| c.get(i).map_or("", |m| m.as_str());
        let bad =
            |what: &str| Error::malformed(FORMAT, n, format!("frame {what}: {:?}", clip(line)));
        let (function, offset) = group(2)
            .rsplit_once('+')
            .ok_or_else(|| bad("without '+0xOFFSET'"))?;
        if function.is_empty() {
            return Err(bad("with an empty function name"));
        }
        parse_hex(offset, n)?;
        let (file, line_no) = group(3)
            .rsplit_once(':')
            .ok_or_else(|| bad("without 'FILE:LINE'"))?;
        let line_no = line_no.trim_end_matches(' ').parse::<u32>().map_err(|e| {
            Error::malformed(FORMAT, n, format!("line number {:?}: {e}", clip(line_no)))
        })?;
        // Go prints `FUNC+0x0\t:0` when a symbol has no position.
        let has_position = !file.is_empty() || line_no != 0;
        return Ok(Frame {
            pc: parse_hex(group(1), n)?,
            function: Some(function.to_string()),
            file: has_position.then(|| file.to_string()),
            line: has_position.then_some(line_no),
        });
    }
    if let Some(c) = PC_ONLY_FRAME_RE.captures(line) {
        return Ok(Frame {
            pc: parse_hex(c.get(1).map_or("", |m| m.as_str()), n)?,
            ..Frame::default()
        });
    }
    Err(Error::malformed(
        FORMAT,
        n,
        format!(
            "expected a frame '#\\t0xPC\\tFUNC+0xOFF\\tFILE:LINE', got {:?}",
            clip(line)
        ),
    ))
}

/// The `# NAME = VALUE` lines after `# runtime.MemStats`, up to the end of the body.
fn parse_memstats_trailer<'a>(
    lines: &mut impl Iterator<Item = (usize, &'a str)>,
) -> Result<MemStats> {
    let mut stats = MemStats::default();
    for (n, line) in lines {
        if line.is_empty() {
            continue;
        }
        let Some(c) = MEMSTATS_FIELD_RE.captures(line) else {
            return Err(Error::malformed(
                FORMAT,
                n,
                format!(
                    "expected '# Name = value' in the MemStats block, got {:?}",
                    clip(line)
                ),
            ));
        };
        let name = c.get(1).map_or("", |m| m.as_str());
        let value = c.get(2).map_or("", |m| m.as_str());
        stats
            .set_text_field(name, value)
            .map_err(|reason| Error::malformed(FORMAT, n, reason))?;
    }
    Ok(stats)
}

fn parse_dec(s: &str, line: usize, what: &str) -> Result<u64> {
    s.parse::<u64>()
        .map_err(|e| Error::malformed(FORMAT, line, format!("{what} number {:?}: {e}", clip(s))))
}

fn parse_hex(s: &str, line: usize) -> Result<u64> {
    let digits = s.strip_prefix("0x").unwrap_or("not hex");
    u64::from_str_radix(digits, 16)
        .map_err(|e| Error::malformed(FORMAT, line, format!("address {:?}: {e}", clip(s))))
}

/// Error messages quote at most this much of a line: bodies can be megabytes of garbage.
fn clip(s: &str) -> &str {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// pprof's estimate of the real (count, bytes) behind a raw heap sample.
///
/// The runtime samples an allocation of `s` bytes with probability `1 - exp(-s/R)`, R
/// being the sampling period (`runtime.MemProfileRate`, N/2 of `heap/N`). A record whose
/// objects average `a = bytes/count` bytes therefore stands for
///
/// ```text
/// scale = 1 / (1 - exp(-a / R))
/// estimate = (trunc(count * scale), trunc(bytes * scale))
/// ```
///
/// as in google/pprof's `scaleHeapSample`. With `count` or `bytes` 0 the estimate is
/// (0, 0); with R <= 1 every allocation was recorded (`-memprofilerate 1`) or the rate is
/// unknown (`heap/0`, profiling off), and the raw values are returned unchanged.
/// Apply it separately to the in-use and the alloc pair.
pub fn scale_sample(count: u64, bytes: u64, sampling_period: u64) -> (u64, u64) {
    if count == 0 || bytes == 0 {
        return (0, 0);
    }
    if sampling_period <= 1 {
        return (count, bytes);
    }
    let avg_size = bytes as f64 / count as f64;
    let scale = 1.0 / (1.0 - (-avg_size / sampling_period as f64).exp());
    // `as` saturates and maps NaN to 0, so no input can panic here.
    ((count as f64 * scale) as u64, (bytes as f64 * scale) as u64)
}

impl HeapText {
    /// The profile with estimated values, in first-seen order. Records whose stacks have
    /// the same function names (they differ only in lines or PCs) are merged, so each
    /// [`HeapSample`] is one distinct stack as [`HeapSample`] promises.
    pub fn estimate(&self) -> HeapProfile {
        let period = self.header.sampling_period();
        let mut samples: Vec<HeapSample> = Vec::with_capacity(self.records.len());
        let mut index: HashMap<Vec<String>, usize> = HashMap::with_capacity(self.records.len());
        for r in &self.records {
            let (inuse_objects, inuse_bytes) = scale_sample(r.inuse_objects, r.inuse_bytes, period);
            let (alloc_objects, alloc_bytes) = scale_sample(r.alloc_objects, r.alloc_bytes, period);
            let stack = record_stack(r);
            match index.get(&stack) {
                Some(&i) => {
                    if let Some(s) = samples.get_mut(i) {
                        s.inuse_objects = s.inuse_objects.saturating_add(inuse_objects);
                        s.inuse_bytes = s.inuse_bytes.saturating_add(inuse_bytes);
                        s.alloc_objects = s.alloc_objects.saturating_add(alloc_objects);
                        s.alloc_bytes = s.alloc_bytes.saturating_add(alloc_bytes);
                    }
                }
                None => {
                    index.insert(stack.clone(), samples.len());
                    samples.push(HeapSample {
                        stack,
                        inuse_objects,
                        inuse_bytes,
                        alloc_objects,
                        alloc_bytes,
                    });
                }
            }
        }
        HeapProfile {
            sampling_period: period,
            samples,
        }
    }
}

/// Function names leaf first; an unsymbolized frame as `0x...`. A record with no frame
/// lines at all falls back to its `@` PCs so it still has an identity.
fn record_stack(r: &HeapRecord) -> Vec<String> {
    if r.frames.is_empty() {
        return r.addrs.iter().map(|pc| format!("{pc:#x}")).collect();
    }
    r.frames
        .iter()
        .map(|f| match &f.function {
            Some(name) => name.clone(),
            None => format!("{:#x}", f.pc),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (line, pc, function, file, line number)
    type FrameCase = (
        &'static str,
        u64,
        Option<&'static str>,
        Option<&'static str>,
        Option<u32>,
    );

    #[test]
    fn frame_lines_table() {
        let cases: &[FrameCase] = &[
            (
                "#\t0x6e3aea\tmain.newSession+0xaa\t/home/gopher/src/leakyapp/main.go:96",
                0x6e3aea,
                Some("main.newSession"),
                Some("/home/gopher/src/leakyapp/main.go"),
                Some(96),
            ),
            (
                "#\t0x6a50dc\tbufio.NewReader+0x19c\t\t/usr/lib/go-1.23/src/bufio/bufio.go:60",
                0x6a50dc,
                Some("bufio.NewReader"),
                Some("/usr/lib/go-1.23/src/bufio/bufio.go"),
                Some(60),
            ),
            (
                "#\t0x6c794f\tmain.newSession+0xcf\t\t\t\tleakyapp/main.go:96",
                0x6c794f,
                Some("main.newSession"),
                Some("leakyapp/main.go"),
                Some(96),
            ),
            (
                "#\t0x1\tfmt.glob..func1+0x5\tfmt/print.go:7",
                1,
                Some("fmt.glob..func1"),
                Some("fmt/print.go"),
                Some(7),
            ),
            (
                "#\t0x2\tinternal/sync.(*HashTrieMap[...]).Load+0x1f\t/go/src/internal/sync/hashtriemap.go:62",
                2,
                Some("internal/sync.(*HashTrieMap[...]).Load"),
                Some("/go/src/internal/sync/hashtriemap.go"),
                Some(62),
            ),
            (
                "#\t0x3\tpkg.f+a+0x10\tC:/w/x:y.go:12",
                3,
                Some("pkg.f+a"),
                Some("C:/w/x:y.go"),
                Some(12),
            ),
            ("#\t0x4797a1", 0x4797a1, None, None, None),
            ("#\t0x5\tmain.f+0x0\t:0", 5, Some("main.f"), None, None),
        ];
        for &(line, pc, func, file, line_no) in cases {
            let f = parse_frame_line(7, line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(f.pc, pc, "{line}");
            assert_eq!(f.function.as_deref(), func, "{line}");
            assert_eq!(f.file.as_deref(), file, "{line}");
            assert_eq!(f.line, line_no, "{line}");
        }
        for bad in [
            "#",
            "#\tmain.f+0x1\tx.go:1",
            "#\t0xzz",
            "#\t0x1\tf+0x1\tx.go:99999999999",
        ] {
            match parse_frame_line(7, bad) {
                Err(Error::Malformed { line: 7, .. }) => {}
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn scale_sample_table() {
        let cases = [
            // FORMATS.md: go1.23/heap main.newSession vs heap.pb.gz of the same moment.
            ((10, 245760, 524288), (218, 5366719)),
            ((0, 0, 524288), (0, 0)),
            ((3, 0, 524288), (0, 0)),
            ((0, 10, 524288), (0, 0)),
            ((5, 640, 1), (5, 640)),
            ((5, 640, 0), (5, 640)),
            // Objects far above the rate are sampled every time: scale ~ 1.
            ((2, 2 << 30, 524288), (2, 2 << 30)),
            ((u64::MAX, u64::MAX, 2), (u64::MAX, u64::MAX)),
        ];
        for ((c, b, r), want) in cases {
            assert_eq!(scale_sample(c, b, r), want, "{c} {b} {r}");
        }
    }

    #[test]
    fn header_errors_are_distinct() {
        assert!(matches!(parse_heap_text(b""), Err(Error::NotFormat { .. })));
        assert!(matches!(
            parse_heap_text(b"Unknown profile\n"),
            Err(Error::NotFormat { .. })
        ));
        assert!(matches!(
            parse_heap_text(b"heap profile: 1: x [0: 0] @ heap/2\n"),
            Err(Error::Malformed { line: 1, .. })
        ));
        assert!(matches!(
            parse_heap_text(b"heap profile: 1: 99999999999999999999 [0: 0] @ heap/2\n"),
            Err(Error::Malformed { line: 1, .. })
        ));
    }

    #[test]
    fn records_and_frames() {
        let body = b"heap profile: 3: 96 [4: 128] @ heap/2\n\
            1: 32 [1: 32] @ 0x10 0x20\n\
            #\t0xf\tmain.a+0x1\t/m.go:1\n\
            #\t0x1f\n\
            \n\
            2: 64 [3: 96] @ 0x30\n\
            #\t0x2f\tmain.a+0x1\t/m.go:2\n\
            #\t0x1f\n\
            \n\
            0: 0 [0: 0] @\n\
            \n";
        let h = parse_heap_text(body).unwrap();
        assert_eq!(h.header.rate, 2);
        assert_eq!(h.header.sampling_period(), 1);
        assert_eq!(h.records.len(), 3);
        assert_eq!(h.records[0].addrs, [0x10, 0x20]);
        assert_eq!(h.records[1].frames[0].line, Some(2));
        assert!(h.records[2].addrs.is_empty());
        assert_eq!(h.memstats, None);
        let est = h.estimate();
        // Same function names: merged into one sample, unscaled at period 1; the
        // all-zero record stays (a site whose objects were all freed).
        assert_eq!(est.samples.len(), 2);
        assert!(est.samples[1].stack.is_empty());
        assert_eq!(est.samples[0].stack, ["main.a", "0x1f"]);
        assert_eq!(
            (est.samples[0].inuse_objects, est.samples[0].inuse_bytes),
            (3, 96)
        );
        assert_eq!(est.samples[0].alloc_bytes, 128);
    }
}
