//! Reading a `heap?debug=1` body as it arrives: fed whole or chunk by chunk (a scrape
//! parses while it downloads, so a big body is never held whole), the reader cuts lines,
//! reads each with the line grammar of `heap_lines.rs` in the order of the format
//! (header, records and their frame lines, MemStats trailer) and hands records to a
//! [`RecordSink`] piece by piece.
//!
//! Fed in any cuts, it reads exactly the lines `body.split('\n')` gives, each lossily
//! decoded as the whole body would be (a newline never ends inside a UTF-8 sequence).

use std::borrow::Cow;

use super::heap_lines::{
    Counts, FrameRef, HeapHeader, is_memstats_start, parse_frame_line, parse_header,
    parse_memstats_line, parse_record_line,
};
use super::memstats::MemStats;
use crate::Result;

/// What the reader hands each record to: its record line, then each of its frame lines,
/// then its end. Nothing read is borrowed past the call.
pub(super) trait RecordSink {
    fn header(&mut self, _header: &HeapHeader) {}
    fn record(&mut self, counts: Counts, addrs: &[u64]) -> Result<()>;
    fn frame(&mut self, frame: FrameRef<'_>) -> Result<()>;
    fn end(&mut self) -> Result<()>;
}

/// Where the reader is in the format.
#[derive(Default)]
struct Position {
    /// Lines read (the 1-based number of the last one).
    line: usize,
    header: Option<HeapHeader>,
    /// A record line was read and no line has ended its record yet.
    in_record: bool,
    /// `Some` once `# runtime.MemStats` was read: every later line is a field.
    trailer: Option<MemStats>,
    addrs: Vec<u64>,
}

impl Position {
    fn read(&mut self, line: &str, sink: &mut impl RecordSink) -> Result<()> {
        self.line += 1;
        let n = self.line;
        if self.header.is_none() {
            let header = parse_header(line)?;
            sink.header(&header);
            self.header = Some(header);
            return Ok(());
        }
        if let Some(stats) = &mut self.trailer {
            return if line.is_empty() {
                Ok(())
            } else {
                parse_memstats_line(n, line, stats)
            };
        }
        // Frame lines, and only they, start with `#` and a tab (the trailer has `# `);
        // they belong to the record line just before them.
        if self.in_record && line.starts_with("#\t") {
            return sink.frame(parse_frame_line(n, line)?);
        }
        self.end_record(sink)?;
        if line.is_empty() {
            return Ok(());
        }
        if is_memstats_start(line) {
            self.trailer = Some(MemStats::default());
            return Ok(());
        }
        let counts = parse_record_line(n, line, &mut self.addrs)?;
        sink.record(counts, &self.addrs)?;
        self.in_record = true;
        Ok(())
    }

    fn end_record(&mut self, sink: &mut impl RecordSink) -> Result<()> {
        if std::mem::take(&mut self.in_record) {
            sink.end()?;
        }
        Ok(())
    }
}

/// A `heap?debug=1` body read as it arrives, into `sink`.
pub(super) struct HeapTextReader<S> {
    at: Position,
    sink: S,
    /// The start of a line whose newline has not arrived yet.
    pending: Vec<u8>,
}

impl<S: RecordSink> HeapTextReader<S> {
    pub(super) fn new(sink: S) -> Self {
        HeapTextReader {
            at: Position::default(),
            sink,
            pending: Vec::new(),
        }
    }

    pub(super) fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Reads every line `chunk` completes; keeps the rest for the next chunk. After an
    /// error the reader is done: feed it nothing more.
    pub(super) fn feed(&mut self, chunk: &[u8]) -> Result<()> {
        let Some(last) = memchr::memrchr(b'\n', chunk) else {
            self.pending.extend_from_slice(chunk);
            return Ok(());
        };
        let (mut lines, rest) = chunk.split_at(last + 1);
        if !self.pending.is_empty() {
            let end = memchr::memchr(b'\n', lines).unwrap_or(last);
            self.pending.extend_from_slice(&lines[..end]);
            let line = std::mem::take(&mut self.pending);
            self.read_lines(&line)?;
            self.pending = line;
            self.pending.clear();
            lines = &lines[end + 1..];
        }
        if let Some((_, whole)) = lines.split_last() {
            self.read_lines(whole)?;
        }
        self.pending.extend_from_slice(rest);
        Ok(())
    }

    /// Reads the last line (what follows the last newline, maybe nothing) and ends the
    /// body: the header, the MemStats trailer (`None` if the body ended before it) and
    /// the sink.
    pub(super) fn finish(mut self) -> Result<(HeapHeader, Option<MemStats>, S)> {
        let last = std::mem::take(&mut self.pending);
        self.read_lines(&last)?;
        self.at.end_record(&mut self.sink)?;
        let header = self.at.header.unwrap_or_default();
        Ok((header, self.at.trailer, self.sink))
    }

    /// `block.split('\n')`, each line read; valid UTF-8 (the usual case) in place,
    /// anything else once, lossily. A line's `\r` goes: a profile saved on Windows or
    /// passed through a CRLF proxy reads as Go wrote it.
    fn read_lines(&mut self, block: &[u8]) -> Result<()> {
        let text = match std::str::from_utf8(block) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(block),
        };
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            self.at.read(line, &mut self.sink)?;
        }
        Ok(())
    }
}
