//! Parsers of `goroutine?debug=1` (and `goroutineleak?debug=1`) text and of
//! `goroutine?debug=2` tracebacks, and the classification of a goroutine into a
//! small closed set of [`GoroutineState`]s from its wait reason or its stack.

use std::collections::BTreeMap;

use super::profile::{Frame, GoroutineProfile, GoroutineRecord};
use crate::{Error, Result};

const TEXT: &str = "goroutine profile (debug=1)";
const TRACEBACK: &str = "goroutine traceback (debug=2)";

/// Which endpoint produced a `debug=1` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoroutineProfileKind {
    /// `goroutine profile: total N`: every goroutine.
    Goroutine,
    /// `goroutineleak profile: total N` (Go 1.26, `GOEXPERIMENT=goroutineleakprofile`):
    /// only goroutines the GC proved can never wake.
    GoroutineLeak,
}

/// A parsed `goroutine?debug=1` response.
#[derive(Debug, Clone, PartialEq)]
pub struct GoroutineText {
    pub kind: GoroutineProfileKind,
    /// The header's `total N`.
    pub total: u64,
    pub records: Vec<GoroutineTextRecord>,
}

/// One distinct (stack, label set) with the number of goroutines on it.
#[derive(Debug, Clone, PartialEq)]
pub struct GoroutineTextRecord {
    pub count: u64,
    /// Return PCs of the `@` line, including the hidden runtime frames.
    pub addrs: Vec<u64>,
    /// `# labels: {...}` pairs, in the order printed.
    pub labels: Vec<(String, String)>,
    /// Frame lines, innermost first; leading `runtime.*` frames are not printed by Go.
    pub frames: Vec<Frame>,
}

/// Parses `goroutine?debug=1` or `goroutineleak?debug=1`.
pub fn parse_goroutine_text(input: &[u8]) -> Result<GoroutineText> {
    let text = std::str::from_utf8(input).map_err(|e| Error::NotFormat {
        format: TEXT,
        reason: format!("not UTF-8 text: {e}"),
    })?;
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l));
    let (_, header) = lines.next().unwrap_or((1, ""));
    let (kind, total) = parse_text_header(header)?;
    let mut records: Vec<GoroutineTextRecord> = Vec::new();
    let mut current: Option<GoroutineTextRecord> = None;
    for (no, line) in lines {
        if line.is_empty() {
            if let Some(r) = current.take() {
                records.push(r);
            }
            continue;
        }
        match current.as_mut() {
            None => current = Some(parse_record_line(no, line)?),
            Some(rec) => {
                if let Some(rest) = line.strip_prefix("# labels: ") {
                    if !rec.frames.is_empty() || !rec.labels.is_empty() {
                        return Err(Error::malformed(TEXT, no, "labels line after frames"));
                    }
                    rec.labels = parse_text_labels(rest)
                        .ok_or_else(|| Error::malformed(TEXT, no, "bad labels line"))?;
                } else {
                    rec.frames.push(parse_frame_line(TEXT, no, line)?);
                }
            }
        }
    }
    if let Some(r) = current.take() {
        records.push(r);
    }
    Ok(GoroutineText {
        kind,
        total,
        records,
    })
}

fn parse_text_header(header: &str) -> Result<(GoroutineProfileKind, u64)> {
    let (kind, rest) = if let Some(r) = header.strip_prefix("goroutine profile: total ") {
        (GoroutineProfileKind::Goroutine, r)
    } else if let Some(r) = header.strip_prefix("goroutineleak profile: total ") {
        (GoroutineProfileKind::GoroutineLeak, r)
    } else {
        let shown: String = header.chars().take(60).collect();
        return Err(Error::NotFormat {
            format: TEXT,
            reason: format!("first line is {shown:?}, expected \"goroutine profile: total N\""),
        });
    };
    let total = rest
        .parse()
        .map_err(|_| Error::malformed(TEXT, 1, format!("bad total {rest:?}")))?;
    Ok((kind, total))
}

/// `COUNT @ 0x... 0x...`
fn parse_record_line(no: usize, line: &str) -> Result<GoroutineTextRecord> {
    let (count, addrs) = line
        .split_once(" @")
        .ok_or_else(|| Error::malformed(TEXT, no, "expected \"COUNT @ ADDRS\""))?;
    let count = count
        .parse()
        .map_err(|_| Error::malformed(TEXT, no, format!("bad count {count:?}")))?;
    let addrs = addrs
        .split_whitespace()
        .map(|a| {
            parse_hex(a).ok_or_else(|| Error::malformed(TEXT, no, format!("bad address {a:?}")))
        })
        .collect::<Result<Vec<u64>>>()?;
    Ok(GoroutineTextRecord {
        count,
        addrs,
        labels: Vec::new(),
        frames: Vec::new(),
    })
}

fn parse_hex(s: &str) -> Option<u64> {
    let h = s.strip_prefix("0x")?;
    if h.is_empty() {
        return None;
    }
    u64::from_str_radix(h, 16).ok()
}

/// `#\t0xPC\tFUNC+0xOFF\tFILE:LINE` or `#\t0xPC`, with runs of tabs from tabwriter.
pub(crate) fn parse_frame_line(format: &'static str, no: usize, line: &str) -> Result<Frame> {
    let rest = line
        .strip_prefix('#')
        .ok_or_else(|| Error::malformed(format, no, "expected a frame line \"#\\t0x...\""))?;
    let mut fields = rest.split('\t').filter(|f| !f.is_empty());
    let pc = fields
        .next()
        .and_then(parse_hex)
        .ok_or_else(|| Error::malformed(format, no, "frame line without a hex PC"))?;
    let Some(func) = fields.next() else {
        return Ok(Frame {
            pc,
            ..Frame::default()
        });
    };
    let function = match func.rsplit_once('+') {
        Some((name, off)) if parse_hex(off).is_some() && !name.is_empty() => name,
        _ => {
            return Err(Error::malformed(
                format,
                no,
                format!("bad FUNC+0xOFF {func:?}"),
            ));
        }
    };
    // FILE may hold spaces or tabs only in theory; take the rest of the line.
    let pos: Vec<&str> = fields.collect();
    let pos = pos.join("\t");
    let (file, line_no) = pos
        .rsplit_once(':')
        .and_then(|(f, l)| Some((f, l.parse::<u32>().ok()?)))
        .ok_or_else(|| Error::malformed(format, no, format!("bad FILE:LINE {pos:?}")))?;
    Ok(Frame {
        pc,
        function: Some(function.to_string()),
        file: Some(file.to_string()),
        line: Some(line_no),
    })
}

/// `{"k":"v", "k2":"v2"}` (debug=1) with Go-quoted strings.
fn parse_text_labels(s: &str) -> Option<Vec<(String, String)>> {
    parse_label_map(s, ":")
}

/// A `{` QSTR SEP QSTR { ", " QSTR SEP QSTR } `}` map; `sep` is `:` in debug=1
/// and `: ` in debug=2 statuses.
fn parse_label_map(s: &str, sep: &str) -> Option<Vec<(String, String)>> {
    let mut rest = s.strip_prefix('{')?;
    let mut out = Vec::new();
    if let Some(r) = rest.strip_prefix('}') {
        return r.is_empty().then_some(out);
    }
    loop {
        let (k, r) = parse_go_quoted(rest)?;
        let r = r.strip_prefix(sep)?;
        let (v, r) = parse_go_quoted(r)?;
        out.push((k, v));
        if let Some(r) = r.strip_prefix(", ") {
            rest = r;
        } else {
            return (r == "}").then_some(out);
        }
    }
}

/// Parses a Go `%q` string at the start of `s`; returns it and the rest.
fn parse_go_quoted(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('"')?.char_indices();
    let body = &s[1..];
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &body[i + 1..])),
            '\\' => {
                let (_, e) = chars.next()?;
                let simple = match e {
                    'a' => Some('\x07'),
                    'b' => Some('\x08'),
                    'f' => Some('\x0c'),
                    'n' => Some('\n'),
                    'r' => Some('\r'),
                    't' => Some('\t'),
                    'v' => Some('\x0b'),
                    '\\' => Some('\\'),
                    '"' => Some('"'),
                    '\'' => Some('\''),
                    _ => None,
                };
                if let Some(c) = simple {
                    out.push(c);
                    continue;
                }
                let digits = match e {
                    'x' => 2,
                    'u' => 4,
                    'U' => 8,
                    '0'..='7' => 2,
                    _ => return None,
                };
                let mut hex = String::new();
                if matches!(e, '0'..='7') {
                    hex.push(e);
                }
                for _ in 0..digits {
                    hex.push(chars.next()?.1);
                }
                let radix = if matches!(e, '0'..='7') { 8 } else { 16 };
                let v = u32::from_str_radix(&hex, radix).ok()?;
                // \x and octal escapes are bytes; a lone byte >= 0x80 is not valid UTF-8,
                // so keep it as U+FFFD like a lossy decode would.
                let c = if matches!(e, 'x' | '0'..='7') && v >= 0x80 {
                    '\u{fffd}'
                } else {
                    char::from_u32(v).unwrap_or('\u{fffd}')
                };
                out.push(c);
            }
            c => out.push(c),
        }
    }
    None
}

impl GoroutineText {
    /// The format-independent profile; a frame without a symbol appears as `0x...`.
    pub fn to_profile(&self) -> GoroutineProfile {
        GoroutineProfile {
            total: self.total,
            records: self
                .records
                .iter()
                .map(|r| GoroutineRecord {
                    count: r.count,
                    stack: r
                        .frames
                        .iter()
                        .map(|f| match &f.function {
                            Some(name) => name.clone(),
                            None => format!("{:#x}", f.pc),
                        })
                        .collect(),
                    labels: r.labels.clone(),
                })
                .collect(),
        }
    }
}

/// One goroutine of a `debug=2` dump.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Traceback {
    pub id: u64,
    /// The wait reason or scheduler state with the status decorations removed:
    /// `chan receive (nil chan)`, `sync.Mutex.Lock`, `running`, ...
    pub wait_reason: String,
    /// `, N minutes`: blocked at least that long (printed only from 1 minute on).
    pub minutes: Option<u64>,
    /// ` (leaked)`: the Go 1.26 leak detector proved it can never wake.
    pub leaked: bool,
    /// ` labels:{...}` (Go 1.26 with `GODEBUG=tracebacklabels=1`).
    pub labels: Vec<(String, String)>,
    /// Function names, innermost first (runtime frames are hidden as in debug=1).
    pub stack: Vec<String>,
    /// The function of `created by FUNC [in goroutine N]`.
    pub created_by: Option<String>,
}

/// Parses a `goroutine?debug=2` dump (one panic-style block per goroutine).
pub fn parse_goroutine_traceback(input: &[u8]) -> Result<Vec<Traceback>> {
    let text = std::str::from_utf8(input).map_err(|e| Error::NotFormat {
        format: TRACEBACK,
        reason: format!("not UTF-8 text: {e}"),
    })?;
    if !text.starts_with("goroutine ") {
        let shown: String = text.chars().take(60).collect();
        return Err(Error::NotFormat {
            format: TRACEBACK,
            reason: format!("starts with {shown:?}, expected \"goroutine N [status]:\""),
        });
    }
    let mut out = Vec::new();
    let mut current: Option<Traceback> = None;
    // After `created by`, the next position line belongs to the creator.
    for (i, line) in text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
    {
        let no = i + 1;
        if line.is_empty() {
            if let Some(t) = current.take() {
                out.push(t);
            }
            continue;
        }
        let Some(t) = current.as_mut() else {
            current = Some(parse_traceback_header(no, line)?);
            continue;
        };
        if line.starts_with('\t') || line.starts_with("...") {
            // Position lines, "...additional frames elided...", "\tgoroutine running on other thread".
            continue;
        }
        if let Some(creator) = line.strip_prefix("created by ") {
            let func = creator
                .split_once(" in goroutine ")
                .map_or(creator, |(f, _)| f);
            t.created_by = Some(func.to_string());
            continue;
        }
        t.stack.push(call_function(no, line)?.to_string());
    }
    if let Some(t) = current.take() {
        out.push(t);
    }
    Ok(out)
}

/// `FUNC(ARGS)` -> `FUNC`. Arguments never hold parentheses; names may (`(*T).m`).
fn call_function(no: usize, line: &str) -> Result<&str> {
    let open = line
        .strip_suffix(')')
        .and_then(|l| l.rfind('('))
        .filter(|&i| i > 0)
        .ok_or_else(|| Error::malformed(TRACEBACK, no, "expected a call line \"FUNC(ARGS)\""))?;
    Ok(&line[..open])
}

/// `goroutine N [gp=.. m=.. ][STATUS]:`
fn parse_traceback_header(no: usize, line: &str) -> Result<Traceback> {
    let bad = |why: &str| Error::malformed(TRACEBACK, no, why.to_string());
    let rest = line
        .strip_prefix("goroutine ")
        .ok_or_else(|| bad("expected \"goroutine N [status]:\""))?;
    let (id, rest) = rest
        .split_once(' ')
        .ok_or_else(|| bad("no status after the goroutine id"))?;
    let id = id.parse().map_err(|_| bad("bad goroutine id"))?;
    let status = rest
        .strip_suffix("]:")
        .and_then(|r| r.find('[').map(|i| &r[i + 1..]))
        .ok_or_else(|| bad("expected \"[status]:\" at the end of the line"))?;
    let mut t = Traceback {
        id,
        ..Traceback::default()
    };
    let mut status = status;
    if let Some(i) = status.find(" labels:{") {
        t.labels = parse_label_map(&status[i + " labels:".len()..], ": ")
            .ok_or_else(|| bad("bad labels:{...} in the status"))?;
        status = &status[..i];
    }
    let mut parts = status.split(", ");
    let mut reason = parts.next().unwrap_or("");
    for part in parts {
        if let Some(m) = part.strip_suffix(" minutes") {
            t.minutes = Some(m.parse().map_err(|_| bad("bad \", N minutes\""))?);
        }
        // ", locked to thread" and ", synctest bubble N" carry nothing we use.
    }
    loop {
        if let Some(r) = reason.strip_suffix(" (leaked)") {
            t.leaked = true;
            reason = r;
        } else if let Some(r) = reason
            .strip_suffix(" (scan)")
            .or_else(|| reason.strip_suffix(" (durable)"))
        {
            reason = r;
        } else {
            break;
        }
    }
    if reason.is_empty() {
        return Err(bad("empty status"));
    }
    t.wait_reason = reason.to_string();
    Ok(t)
}

/// What a goroutine is doing, in a closed set small enough for a metric label.
///
/// `Mutex` covers every semaphore wait of package `sync`: `Mutex`, `RWMutex` and
/// `WaitGroup.Wait`. Go 1.19 prints all three as `semacquire` (1.23 still prints
/// `WaitGroup.Wait` so), so only this grouping gives the same answer from a
/// `debug=2` status of every version as from a stack. `Cond` is `sync.Cond.Wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GoroutineState {
    ChanReceive,
    ChanSend,
    Select,
    Mutex,
    Cond,
    IoWait,
    Sleep,
    Syscall,
    /// Running or runnable (including preempted).
    Running,
    /// Anything else: runtime-internal waits, and stacks that cannot be classified.
    Other,
}

impl GoroutineState {
    pub const ALL: [GoroutineState; 10] = [
        GoroutineState::ChanReceive,
        GoroutineState::ChanSend,
        GoroutineState::Select,
        GoroutineState::Mutex,
        GoroutineState::Cond,
        GoroutineState::IoWait,
        GoroutineState::Sleep,
        GoroutineState::Syscall,
        GoroutineState::Running,
        GoroutineState::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GoroutineState::ChanReceive => "chan_receive",
            GoroutineState::ChanSend => "chan_send",
            GoroutineState::Select => "select",
            GoroutineState::Mutex => "mutex",
            GoroutineState::Cond => "cond",
            GoroutineState::IoWait => "io_wait",
            GoroutineState::Sleep => "sleep",
            GoroutineState::Syscall => "syscall",
            GoroutineState::Running => "running",
            GoroutineState::Other => "other",
        }
    }
}

impl std::fmt::Display for GoroutineState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies a `debug=2` status (Go 1.19 to 1.26 wait reasons and scheduler
/// states). Status decorations (`(leaked)`, `, N minutes`, `labels:{...}`,
/// `(durable)`, `(synctest)`) are ignored, so a raw status works too.
pub fn state_from_wait_reason(reason: &str) -> GoroutineState {
    use GoroutineState::*;
    let mut r = reason.trim();
    if let Some(i) = r.find(" labels:{") {
        r = &r[..i];
    }
    if let Some((head, _)) = r.split_once(", ") {
        r = head;
    }
    loop {
        let stripped = [" (leaked)", " (scan)", " (durable)", " (synctest)"]
            .iter()
            .find_map(|s| r.strip_suffix(s));
        match stripped {
            Some(s) => r = s,
            None => break,
        }
    }
    match r {
        "chan receive" | "chan receive (nil chan)" => ChanReceive,
        "chan send" | "chan send (nil chan)" => ChanSend,
        "select" | "select (no cases)" => Select,
        "semacquire"
        | "sync.Mutex.Lock"
        | "sync.RWMutex.RLock"
        | "sync.RWMutex.Lock"
        | "sync.WaitGroup.Wait" => Mutex,
        "sync.Cond.Wait" => Cond,
        "IO wait" => IoWait,
        "sleep" => Sleep,
        "syscall" => Syscall,
        "running" | "runnable" | "preempted" => Running,
        _ => Other,
    }
}

/// Innermost function names that decide the state; the first match from the
/// innermost frame wins.
const STACK_MARKERS: &[(&str, GoroutineState)] = {
    use GoroutineState::*;
    &[
        ("runtime.chanrecv", ChanReceive),
        ("runtime.chanrecv1", ChanReceive),
        ("runtime.chanrecv2", ChanReceive),
        ("runtime.chansend", ChanSend),
        ("runtime.chansend1", ChanSend),
        ("runtime.selectgo", Select),
        ("runtime.block", Select),
        ("runtime.semacquire1", Mutex),
        ("runtime.semacquire", Mutex),
        ("sync.runtime_Semacquire", Mutex),
        ("sync.runtime_SemacquireMutex", Mutex),
        ("sync.runtime_SemacquireRWMutexR", Mutex),
        ("sync.runtime_SemacquireRWMutex", Mutex),
        ("sync.runtime_SemacquireWaitGroup", Mutex),
        ("internal/sync.runtime_SemacquireMutex", Mutex),
        ("sync.(*Mutex).Lock", Mutex),
        ("sync.(*Mutex).lockSlow", Mutex),
        ("internal/sync.(*Mutex).Lock", Mutex),
        ("internal/sync.(*Mutex).lockSlow", Mutex),
        ("sync.(*RWMutex).Lock", Mutex),
        ("sync.(*RWMutex).RLock", Mutex),
        ("sync.(*WaitGroup).Wait", Mutex),
        ("sync.runtime_notifyListWait", Cond),
        ("runtime.notifyListWait", Cond),
        ("sync.(*Cond).Wait", Cond),
        ("internal/poll.runtime_pollWait", IoWait),
        ("runtime.netpollblock", IoWait),
        ("time.Sleep", Sleep),
        ("runtime.timeSleep", Sleep),
        ("syscall.Syscall", Syscall),
        ("syscall.Syscall6", Syscall),
        ("syscall.RawSyscall", Syscall),
        ("syscall.RawSyscall6", Syscall),
        ("syscall.syscall", Syscall),
        ("runtime/internal/syscall.Syscall6", Syscall),
        ("internal/runtime/syscall.Syscall6", Syscall),
        ("runtime.entersyscall", Syscall),
        ("runtime.entersyscallblock", Syscall),
    ]
};

/// Classifies a stack of function names, innermost first.
///
/// Exact on full stacks (the protobuf goroutine profile keeps `runtime.gopark`,
/// `runtime.chanrecv1`, `runtime.selectgo`, ...). On `debug=1`/`debug=2` text the
/// leading `runtime.*` frames are hidden, so channel and select waits, whose
/// only evidence is a runtime frame, leave a bare user frame: that is `Other`.
/// Waits that go through a non-runtime package frame (`sync.(*Mutex).Lock`,
/// `sync.(*Cond).Wait`, `internal/poll.runtime_pollWait`, `time.Sleep`) are still
/// found there. A stack that starts in a runtime frame other than a park
/// (`runtime.goroutineProfileWithLabels`, or in text `runtime/pprof.*`) is the
/// goroutine running the dump: `Running`. So is an empty stack: a goroutine that
/// has not started yet has only `runtime.goexit`, which Go never prints
/// (`debug=2` shows it `[runnable]`). A parked stack with no known wait is `Other`.
pub fn state_from_stack(stack: &[String]) -> GoroutineState {
    for name in stack {
        if let Some((_, s)) = STACK_MARKERS.iter().find(|(m, _)| *m == name) {
            return *s;
        }
    }
    match stack.first().map(String::as_str) {
        None | Some("runtime.goexit") => GoroutineState::Running,
        Some("runtime.gopark" | "runtime.goparkunlock" | "runtime.park_m") => GoroutineState::Other,
        Some(f) if f.starts_with("runtime.") || f.starts_with("runtime/pprof.") => {
            GoroutineState::Running
        }
        _ => GoroutineState::Other,
    }
}

/// Goroutine counts per state from stacks, every state present (0 when none).
pub fn count_by_state(p: &GoroutineProfile) -> BTreeMap<GoroutineState, u64> {
    let mut out: BTreeMap<GoroutineState, u64> =
        GoroutineState::ALL.iter().map(|s| (*s, 0)).collect();
    for r in &p.records {
        let e = out.entry(state_from_stack(&r.stack)).or_insert(0);
        *e = e.saturating_add(r.count);
    }
    out
}

/// Goroutine counts per state from `debug=2` statuses, every state present.
pub fn count_tracebacks_by_state(t: &[Traceback]) -> BTreeMap<GoroutineState, u64> {
    let mut out: BTreeMap<GoroutineState, u64> =
        GoroutineState::ALL.iter().map(|s| (*s, 0)).collect();
    for g in t {
        *out.entry(state_from_wait_reason(&g.wait_reason))
            .or_insert(0) += 1;
    }
    out
}

/// The HTTP client's connection reader: one per open keep-alive connection.
const PERSIST_CONN_READ_LOOP: &str = "net/http.(*persistConn).readLoop";

/// Open `net/http` client connections: goroutines whose stack holds
/// `net/http.(*persistConn).readLoop`. A response body never closed keeps one alive.
pub fn http_client_connections(p: &GoroutineProfile) -> u64 {
    p.records
        .iter()
        .filter(|r| r.stack.iter().any(|f| f == PERSIST_CONN_READ_LOOP))
        .fold(0u64, |acc, r| acc.saturating_add(r.count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_line_ends_read_as_lf() {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/go1.23/heap");
        let lf = std::fs::read_to_string(root.join("goroutine_debug1.txt")).unwrap();
        let want = parse_goroutine_text(lf.as_bytes()).unwrap();
        let got = parse_goroutine_text(lf.replace('\n', "\r\n").as_bytes()).unwrap();
        assert_eq!(got, want);
        let lf = std::fs::read_to_string(root.join("goroutine_debug2.txt")).unwrap();
        let want = parse_goroutine_traceback(lf.as_bytes()).unwrap();
        let got = parse_goroutine_traceback(lf.replace('\n', "\r\n").as_bytes()).unwrap();
        assert_eq!(got, want);
        assert!(!want.is_empty());
    }

    #[test]
    fn wait_reasons() {
        use GoroutineState::*;
        let cases = [
            ("chan receive", ChanReceive),
            ("chan receive (nil chan)", ChanReceive),
            ("chan receive (leaked)", ChanReceive),
            ("chan receive (durable)", ChanReceive),
            ("chan receive (synctest)", ChanReceive),
            ("chan send, 1 minutes", ChanSend),
            ("select (no cases)", Select),
            ("semacquire", Mutex),
            ("sync.Mutex.Lock", Mutex),
            ("sync.RWMutex.RLock", Mutex),
            ("sync.WaitGroup.Wait", Mutex),
            ("sync.WaitGroup.Wait (synctest)", Mutex),
            ("sync.Cond.Wait", Cond),
            ("IO wait, 5 minutes", IoWait),
            ("sleep", Sleep),
            ("syscall, locked to thread", Syscall),
            ("running", Running),
            ("runnable", Running),
            ("GC worker (idle)", Other),
            ("finalizer wait", Other),
            (
                "chan receive, 1 minutes labels:{\"handler\": \"/x\"}",
                ChanReceive,
            ),
        ];
        for (reason, want) in cases {
            assert_eq!(state_from_wait_reason(reason), want, "{reason}");
        }
    }

    #[test]
    fn traceback_header_decorations() {
        let t = parse_traceback_header(
            1,
            r#"goroutine 21 [chan receive (nil chan) (leaked), 3 minutes, locked to thread labels:{"handler": "/api/orders", "tenant": "ac\"me"}]:"#,
        )
        .unwrap();
        assert_eq!(t.id, 21);
        assert_eq!(t.wait_reason, "chan receive (nil chan)");
        assert!(t.leaked);
        assert_eq!(t.minutes, Some(3));
        assert_eq!(
            t.labels,
            vec![
                ("handler".to_string(), "/api/orders".to_string()),
                ("tenant".to_string(), "ac\"me".to_string())
            ]
        );
        let t = parse_traceback_header(1, "goroutine 7 gp=0xc000007 m=nil [select]:").unwrap();
        assert_eq!((t.id, t.wait_reason.as_str()), (7, "select"));
    }

    #[test]
    fn go_quoted_escapes() {
        assert_eq!(
            parse_go_quoted(r#""a\tb\u00e9\x41\101" rest"#),
            Some(("a\tbéAA".to_string(), " rest"))
        );
        assert_eq!(parse_go_quoted(r#""unterminated"#), None);
        assert_eq!(parse_go_quoted(r#""\"#), None);
    }
}
