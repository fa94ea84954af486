//! The line grammar of the `heap?debug=1` text, declared in one place: the header,
//! record, frame and MemStats trailer lines, and one function reading each (header,
//! record line, frame line, trailer field). Record and frame lines, which are most of a
//! body (millions of lines in a big one), are matched by hand because a regex capture
//! costs more than the rest of the parse: the regexes below are the grammar, the hand
//! matchers implement it, and a unit test holds the two to the same answers.

use std::sync::LazyLock;

use regex::Regex;

use super::memstats::MemStats;
use crate::{Error, Result};

/// `10: 245760 [10: 245760] @ 0x6e3aeb 0x6e3c1c` — one record's counts and return PCs
/// (split and checked by the heap parser), matched by [`match_record`].
///
/// The line patterns only cut a line at its separators (spaces, tabs, `@`), which keeps
/// them unambiguous; the splits that need "the last `+`" or "the last `:`" are done in
/// code afterwards, where the rule is visible.
pub const RECORD_COUNTS: &str =
    r"^([0-9]+): *([0-9]+) *\[ *([0-9]+): *([0-9]+) *\] *@([ 0-9a-fA-Fx]*)$";

/// `#\t0x6e3aea\tmain.newSession+0xaa\t/src/main.go:96` — a symbolized frame: PC,
/// `FUNC+0xOFF` and `FILE:LINE` separated by runs of tabs (text/tabwriter pads the
/// columns of a block with several). The heap parser splits FUNC from the offset at
/// the **last** `+` (`fmt.glob..func1+0x5`) and FILE from the line at the **last** `:`
/// (`C:/x.go:3`, trimpath'ed `leakyapp/main.go:96`).
pub const SYMBOLIZED_FRAME: &str = r"^#\t+(0x[0-9a-fA-F]+)\t+([^\t]+)\t+([^\t]*)$";

/// `#\t0x4797a0` — a PC the runtime could not symbolize.
pub const PC_ONLY_FRAME: &str = r"^#\t+(0x[0-9a-fA-F]+)[\t ]*$";

/// `# runtime.MemStats` — start of the trailer (matched by hand: it is tried on every
/// record line).
pub const MEMSTATS_START: &str = r"^# runtime\.MemStats *$";

/// The format as errors name it.
pub(super) const FORMAT: &str = "heap profile text (debug=1)";

/// `heap profile: 10: 245760 [10: 245761] @ heap/1048576` — totals, then `heap/N` with
/// N = 2 x `runtime.MemProfileRate`.
static HEAP_HEADER_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^heap profile: *(\d+): *(\d+) *\[ *(\d+): *(\d+) *\] *@ *heap/(\d+) *$")
        .expect("heap header regex")
});

/// `# HeapAlloc = 4624144` — one MemStats field of the trailer.
static MEMSTATS_FIELD_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^# ([A-Za-z]+) = (.*)$").expect("memstats field regex"));

/// [`MEMSTATS_START`] by hand.
pub(crate) fn is_memstats_start(line: &str) -> bool {
    line.strip_prefix("# runtime.MemStats")
        .is_some_and(|rest| rest.bytes().all(|b| b == b' '))
}

/// A cursor over one line for the hand matchers: each step consumes what one piece of
/// the pattern matches, or fails.
struct Cursor<'a>(&'a str);

impl<'a> Cursor<'a> {
    /// `X+` for the bytes `X` accepts.
    fn some(&mut self, accept: impl Fn(u8) -> bool) -> Option<&'a str> {
        let end = self
            .0
            .bytes()
            .position(|b| !accept(b))
            .unwrap_or(self.0.len());
        (end > 0).then(|| {
            let (run, rest) = self.0.split_at(end);
            self.0 = rest;
            run
        })
    }
    /// `X*`.
    fn any(&mut self, accept: impl Fn(u8) -> bool) {
        let _ = self.some(accept);
    }
    /// One literal byte.
    fn lit(&mut self, b: u8) -> Option<()> {
        self.0 = self.0.strip_prefix(char::from(b))?;
        Some(())
    }
    /// `0x[0-9a-fA-F]+`.
    fn pc(&mut self) -> Option<&'a str> {
        let whole = self.0;
        let rest = whole.strip_prefix("0x")?;
        let digits = rest
            .bytes()
            .position(|b| !b.is_ascii_hexdigit())
            .unwrap_or(rest.len());
        (digits > 0).then(|| {
            let (pc, rest) = whole.split_at(2 + digits);
            self.0 = rest;
            pc
        })
    }
}

/// [`RECORD_COUNTS`] by hand: the four counts and the `@` list.
pub(crate) fn match_record(line: &str) -> Option<([&str; 4], &str)> {
    let digit = |b: u8| b.is_ascii_digit();
    let space = |b: u8| b == b' ';
    let mut c = Cursor(line);
    let a = c.some(digit)?;
    c.lit(b':')?;
    c.any(space);
    let b = c.some(digit)?;
    c.any(space);
    c.lit(b'[')?;
    c.any(space);
    let d = c.some(digit)?;
    c.lit(b':')?;
    c.any(space);
    let e = c.some(digit)?;
    c.any(space);
    c.lit(b']')?;
    c.any(space);
    c.lit(b'@')?;
    let addrs = c.0;
    addrs
        .bytes()
        .all(|b| b == b' ' || b == b'x' || b.is_ascii_hexdigit())
        .then_some(([a, b, d, e], addrs))
}

/// A frame line as [`SYMBOLIZED_FRAME`] or [`PC_ONLY_FRAME`] cut it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameMatch<'a> {
    Symbolized {
        pc: &'a str,
        func: &'a str,
        file: &'a str,
    },
    PcOnly {
        pc: &'a str,
    },
}

/// [`SYMBOLIZED_FRAME`], else [`PC_ONLY_FRAME`], by hand.
pub(crate) fn match_frame(line: &str) -> Option<FrameMatch<'_>> {
    let tab = |b: u8| b == b'\t';
    let mut c = Cursor(line);
    c.lit(b'#')?;
    c.some(tab)?;
    let pc = c.pc()?;
    let after_pc = c.0;
    // FUNC and FILE hold no tab, so the runs of tabs cut the rest in one way only.
    if c.some(tab).is_some()
        && let Some((func, rest)) = c.0.split_once('\t')
        && !func.is_empty()
    {
        let file = rest.trim_start_matches('\t');
        if !file.contains('\t') {
            return Some(FrameMatch::Symbolized { pc, func, file });
        }
    }
    after_pc
        .bytes()
        .all(|b| b == b'\t' || b == b' ')
        .then_some(FrameMatch::PcOnly { pc })
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

/// The raw counts of a record line.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Counts {
    pub(super) inuse_objects: u64,
    pub(super) inuse_bytes: u64,
    pub(super) alloc_objects: u64,
    pub(super) alloc_bytes: u64,
}

/// A frame line, borrowing the body.
#[derive(Debug, Clone, Copy)]
pub(super) struct FrameRef<'a> {
    pub(super) pc: u64,
    pub(super) function: Option<&'a str>,
    pub(super) file: Option<&'a str>,
    pub(super) line: Option<u32>,
}

/// The `heap profile: ...` line. Anything that does not even start like one is another
/// format; a line that does but is broken is malformed.
pub(super) fn parse_header(line: &str) -> Result<HeapHeader> {
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

/// `INUSE_OBJ: INUSE_BYTES [ALLOC_OBJ: ALLOC_BYTES] @ PC...` — starts a record; its PCs
/// go to `addrs`.
pub(super) fn parse_record_line(n: usize, line: &str, addrs: &mut Vec<u64>) -> Result<Counts> {
    let Some((counts, pcs)) = match_record(line) else {
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
    let num = |i: usize| parse_dec(counts[i], n, "record");
    addrs.clear();
    for a in pcs.split_ascii_whitespace() {
        addrs.push(parse_hex(a, n)?);
    }
    Ok(Counts {
        inuse_objects: num(0)?,
        inuse_bytes: num(1)?,
        alloc_objects: num(2)?,
        alloc_bytes: num(3)?,
    })
}

/// `#\tPC\tFUNC+OFF\tFILE:LINE` or `#\tPC`.
pub(super) fn parse_frame_line(n: usize, line: &str) -> Result<FrameRef<'_>> {
    match match_frame(line) {
        Some(FrameMatch::Symbolized { pc, func, file }) => {
            let bad =
                |what: &str| Error::malformed(FORMAT, n, format!("frame {what}: {:?}", clip(line)));
            let (function, offset) = func
                .rsplit_once('+')
                .ok_or_else(|| bad("without '+0xOFFSET'"))?;
            if function.is_empty() {
                return Err(bad("with an empty function name"));
            }
            parse_hex(offset, n)?;
            let (file, line_no) = file
                .rsplit_once(':')
                .ok_or_else(|| bad("without 'FILE:LINE'"))?;
            let line_no = line_no.trim_end_matches(' ').parse::<u32>().map_err(|e| {
                Error::malformed(FORMAT, n, format!("line number {:?}: {e}", clip(line_no)))
            })?;
            // Go prints `FUNC+0x0\t:0` when a symbol has no position.
            let has_position = !file.is_empty() || line_no != 0;
            Ok(FrameRef {
                pc: parse_hex(pc, n)?,
                function: Some(function),
                file: has_position.then_some(file),
                line: has_position.then_some(line_no),
            })
        }
        Some(FrameMatch::PcOnly { pc }) => Ok(FrameRef {
            pc: parse_hex(pc, n)?,
            function: None,
            file: None,
            line: None,
        }),
        None => Err(Error::malformed(
            FORMAT,
            n,
            format!(
                "expected a frame '#\\t0xPC\\tFUNC+0xOFF\\tFILE:LINE', got {:?}",
                clip(line)
            ),
        )),
    }
}

/// A `# NAME = VALUE` line after `# runtime.MemStats` (every line to the end of the body
/// is one), into `stats`.
pub(super) fn parse_memstats_line(n: usize, line: &str, stats: &mut MemStats) -> Result<()> {
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
        .map_err(|reason| Error::malformed(FORMAT, n, reason))
}

fn parse_dec(s: &str, line: usize, what: &str) -> Result<u64> {
    s.parse::<u64>()
        .map_err(|e| Error::malformed(FORMAT, line, format!("{what} number {:?}: {e}", clip(s))))
}

fn parse_hex(s: &str, line: usize) -> Result<u64> {
    let digits = s.strip_prefix("0x").unwrap_or("not hex");
    // Every PC and offset of a body comes through here: fold the usual case by hand, and
    // leave anything else (empty, too long, not hex) to `from_str_radix` and its error.
    if (1..=16).contains(&digits.len()) {
        let mut v: u64 = 0;
        let all_hex = digits.bytes().all(|b| {
            let d = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => return false,
            };
            v = (v << 4) | u64::from(d);
            true
        });
        if all_hex {
            return Ok(v);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

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
            assert_eq!(f.function, func, "{line}");
            assert_eq!(f.file, file, "{line}");
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

    /// The hand matchers give the regexes' answers (the grammar is the regexes).
    #[test]
    fn hand_matchers_agree_with_the_grammar() {
        let record = Regex::new(RECORD_COUNTS).unwrap();
        let symbolized = Regex::new(SYMBOLIZED_FRAME).unwrap();
        let pc_only = Regex::new(PC_ONLY_FRAME).unwrap();
        let memstats = Regex::new(MEMSTATS_START).unwrap();
        let seeds = [
            "10: 245760 [10: 245760] @ 0x6e3aeb 0x6e3c1c",
            "0: 0 [0: 0] @",
            "1:2[3:4]@0x1",
            "1:  2  [  3:  4  ]  @ 0x1  ",
            "#\t0x6e3aea\tmain.newSession+0xaa\t/src/main.go:96",
            "#\t\t0x6a50dc\tbufio.NewReader+0x19c\t\t/usr/bufio.go:60",
            "#\t0x5\tmain.f+0x0\t:0",
            "#\t0x4797a1",
            "#\t0x4797a1\t \t",
            "#\t0x1\tf\t",
            "#\t0x1\tf\tg\th",
            "# runtime.MemStats",
            "# runtime.MemStats  ",
            "#\t0x1 f\tx:1",
        ];
        // Each seed, then every prefix and every one-byte substitution from a set of
        // separators and digits: the places where a hand matcher could differ.
        let mut lines: Vec<String> = Vec::new();
        for s in seeds {
            for cut in 0..=s.len() {
                lines.push(s[..cut].to_string());
            }
            for i in 0..s.len() {
                for b in [
                    "\t", " ", ":", "x", "0", "g", "#", "@", "[", "]", "", "\u{663}",
                ] {
                    lines.push(format!("{}{b}{}", &s[..i], &s[i + 1..]));
                }
            }
        }
        for line in &lines {
            let want = record.captures(line).map(|c| {
                let g = |i| c.get(i).map_or("", |m| m.as_str());
                ([g(1), g(2), g(3), g(4)], g(5))
            });
            assert_eq!(match_record(line), want, "record {line:?}");
            let want = match (symbolized.captures(line), pc_only.captures(line)) {
                (Some(c), _) => Some(FrameMatch::Symbolized {
                    pc: c.get(1).unwrap().as_str(),
                    func: c.get(2).unwrap().as_str(),
                    file: c.get(3).unwrap().as_str(),
                }),
                (None, Some(c)) => Some(FrameMatch::PcOnly {
                    pc: c.get(1).unwrap().as_str(),
                }),
                (None, None) => None,
            };
            assert_eq!(match_frame(line), want, "frame {line:?}");
            assert_eq!(is_memstats_start(line), memstats.is_match(line), "{line:?}");
        }
    }
}
