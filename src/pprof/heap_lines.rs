//! The line grammar of the `heap?debug=1` text: record and frame lines, which are most
//! of a body (millions of lines in a big one), matched by hand because a regex capture
//! costs more than the rest of the parse. The regexes below are the grammar; the hand
//! matchers implement it, and a unit test holds the two to the same answers.

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

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

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
