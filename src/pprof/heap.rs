//! Parser of the legacy text heap profile served by `heap?debug=1` and `allocs?debug=1`
//! (FORMATS.md section 1), and the pprof-style scaling of its raw sample counts.
//!
//! Laid out like google/pprof's `profile/legacy_profile.go`: the line grammar is declared
//! in one place and named for what it matches ([`super::heap_lines`]: the header, record,
//! frame and trailer patterns), with one function per piece of the format (header,
//! record line, frame line, MemStats trailer). The input is any bytes: invalid UTF-8 is
//! read lossily, and nothing here panics.
//!
//! Two readers share that grammar, both through the line reader of `super::heap_stream`:
//! [`parse_heap_text`] keeps every record as printed, and [`parse_heap_estimate`] (or
//! [`HeapEstimateReader`], fed as a body downloads) merges each record into its stack's
//! estimate as it is read, so a record-dense body never exists twice in memory.

use foldhash::fast::RandomState;

pub use super::heap_lines::HeapHeader;
use super::heap_lines::{Counts, FORMAT, FrameRef};
use super::heap_stream::{HeapTextReader, RecordSink};
use super::memstats::MemStats;
use super::profile::{Frame, HeapProfile, HeapSample};
use super::stacks::{StacksBuilder, Sym, hash_syms};
use crate::{Error, Result};

/// A parsed `heap?debug=1` body: the header, every record (raw, unscaled, in the order
/// printed) and the MemStats trailer (`None` if the body ended before it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeapText {
    pub header: HeapHeader,
    pub records: Vec<HeapRecord>,
    pub memstats: Option<MemStats>,
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

/// A body read straight into estimates ([`parse_heap_estimate`]): the header, the
/// profile `parse_heap_text(..).estimate()` gives, and the MemStats trailer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeapEstimate {
    pub header: HeapHeader,
    pub profile: HeapProfile,
    pub memstats: Option<MemStats>,
}

/// Parses a `heap?debug=1` / `allocs?debug=1` body, keeping every record as printed.
///
/// Errors: [`Error::NotFormat`] when the first line is not a heap profile header (a 404
/// `Unknown profile`, an HTML page, a proto body); [`Error::Malformed`] with the 1-based
/// line for a line that fits nowhere in the grammar.
pub fn parse_heap_text(input: &[u8]) -> Result<HeapText> {
    struct Keep(Vec<HeapRecord>);
    impl RecordSink for Keep {
        fn record(&mut self, c: Counts, addrs: &[u64]) -> Result<()> {
            self.0.push(HeapRecord {
                inuse_objects: c.inuse_objects,
                inuse_bytes: c.inuse_bytes,
                alloc_objects: c.alloc_objects,
                alloc_bytes: c.alloc_bytes,
                addrs: addrs.to_vec(),
                frames: Vec::new(),
            });
            Ok(())
        }
        fn frame(&mut self, f: FrameRef<'_>) -> Result<()> {
            if let Some(r) = self.0.last_mut() {
                r.frames.push(Frame {
                    pc: f.pc,
                    function: f.function.map(str::to_string),
                    file: f.file.map(str::to_string),
                    line: f.line,
                });
            }
            Ok(())
        }
        fn end(&mut self) -> Result<()> {
            Ok(())
        }
    }
    let mut reader = HeapTextReader::new(Keep(Vec::new()));
    reader.feed(input)?;
    let (header, memstats, keep) = reader.finish()?;
    Ok(HeapText {
        header,
        records: keep.0,
        memstats,
    })
}

/// Parses a body straight into its estimated profile: the same result (and errors) as
/// `parse_heap_text(input)?.estimate()`, but each record is merged into its stack's
/// sample as soon as it is read, and names are interned as they are read, so memory is
/// the samples and the name table alone: a few words per distinct stack, whatever the
/// record density (records, then `String` stacks, cost ~15-20x the body).
pub fn parse_heap_estimate(input: &[u8]) -> Result<HeapEstimate> {
    let mut reader = HeapEstimateReader::new();
    // The whole body is here: size the tables once for what it holds.
    reader.0.sink_mut().reserve_for(input);
    reader.feed(input)?;
    reader.finish()
}

/// A body read as it arrives, chunk by chunk: a scrape parses while it downloads, so a
/// big body is never held whole (only what is parsed from it, and one line).
pub trait ChunkReader: Send + 'static {
    type Output: Send + 'static;
    /// Reads what `chunk` completes. After an error, feed it nothing more.
    fn feed(&mut self, chunk: &[u8]) -> Result<()>;
    /// Ends the body.
    fn finish(self) -> Result<Self::Output>;
}

/// [`parse_heap_estimate`] fed chunk by chunk.
pub struct HeapEstimateReader(HeapTextReader<Estimator>);

impl Default for HeapEstimateReader {
    fn default() -> Self {
        HeapEstimateReader::new()
    }
}

impl HeapEstimateReader {
    pub fn new() -> HeapEstimateReader {
        HeapEstimateReader(HeapTextReader::new(Estimator::new(0)))
    }

    /// Reads what `chunk` completes. After an error, feed it nothing more.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<()> {
        self.0.feed(chunk)
    }

    /// Ends the body: its header, estimated profile and MemStats trailer.
    pub fn finish(self) -> Result<HeapEstimate> {
        let (header, memstats, est) = self.0.finish()?;
        Ok(HeapEstimate {
            header,
            profile: est.finish(),
            memstats,
        })
    }
}

impl ChunkReader for HeapEstimateReader {
    type Output = HeapEstimate;
    fn feed(&mut self, chunk: &[u8]) -> Result<()> {
        HeapEstimateReader::feed(self, chunk)
    }
    fn finish(self) -> Result<HeapEstimate> {
        HeapEstimateReader::finish(self)
    }
}

/// Only the MemStats trailer of a body (every line is still checked).
pub fn parse_heap_memstats(input: &[u8]) -> Result<Option<MemStats>> {
    let mut reader = HeapMemStatsReader::default();
    reader.feed(input)?;
    reader.finish()
}

/// [`parse_heap_memstats`] fed chunk by chunk.
pub struct HeapMemStatsReader(HeapTextReader<Skip>);

/// A sink that keeps no record.
struct Skip;

impl RecordSink for Skip {
    fn record(&mut self, _: Counts, _: &[u64]) -> Result<()> {
        Ok(())
    }
    fn frame(&mut self, _: FrameRef<'_>) -> Result<()> {
        Ok(())
    }
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

impl Default for HeapMemStatsReader {
    fn default() -> Self {
        HeapMemStatsReader(HeapTextReader::new(Skip))
    }
}

impl ChunkReader for HeapMemStatsReader {
    type Output = Option<MemStats>;
    fn feed(&mut self, chunk: &[u8]) -> Result<()> {
        self.0.feed(chunk)
    }
    fn finish(self) -> Result<Option<MemStats>> {
        Ok(self.0.finish()?.1)
    }
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
    ///
    /// Errors only when the names or frames pass 4 GiB (the table's indexes are 32-bit).
    pub fn estimate(&self) -> Result<HeapProfile> {
        let mut est = Estimator::new(self.header.sampling_period());
        // The records replayed through the sink the streaming reader feeds.
        for r in &self.records {
            let counts = Counts {
                inuse_objects: r.inuse_objects,
                inuse_bytes: r.inuse_bytes,
                alloc_objects: r.alloc_objects,
                alloc_bytes: r.alloc_bytes,
            };
            est.record(counts, &r.addrs)?;
            for f in &r.frames {
                est.frame(FrameRef {
                    pc: f.pc,
                    function: f.function.as_deref(),
                    file: f.file.as_deref(),
                    line: f.line,
                })?;
            }
            est.end()?;
        }
        Ok(est.finish())
    }
}

/// Scales records and merges them into one sample per distinct stack (function names
/// leaf first; an unsymbolized frame as `0x...`; a record with no frame lines at all by
/// its `@` PCs, so it still has an identity), in first-seen order.
///
/// Names are interned as they are read (a [`StacksBuilder`]), so a stack is a slice of
/// one-word frames: hashed and compared without touching the names, and stored once, in
/// the profile's table. The index holds only sample positions.
struct Estimator {
    period: u64,
    stacks: StacksBuilder,
    samples: Vec<HeapSample>,
    index: hashbrown::HashTable<u32>,
    // Randomly seeded (per process and per parse): a target cannot choose stacks that
    // collide. foldhash, not SipHash: every record is hashed.
    hasher: RandomState,
    /// The record being read: its counts, its `@` PCs and its stack so far.
    counts: Counts,
    addrs: Vec<u64>,
    syms: Vec<Sym>,
}

impl Estimator {
    fn new(period: u64) -> Estimator {
        Estimator {
            period,
            stacks: StacksBuilder::new(),
            samples: Vec::new(),
            index: hashbrown::HashTable::new(),
            hasher: RandomState::default(),
            counts: Counts::default(),
            addrs: Vec::new(),
            syms: Vec::new(),
        }
    }

    /// Sizes the tables once for a body: every record line has an `@` (frame lines may
    /// too, in module paths), so there are at most that many records. Growing them by
    /// doubling instead left a trail of freed buffers the allocator kept (and a peak of
    /// old and new at each step); room never written is address space, not memory, and
    /// [`Estimator::finish`] gives it back.
    fn reserve_for(&mut self, body: &[u8]) {
        let records = memchr::memchr_iter(b'@', body).count();
        self.samples.reserve(records);
        self.index.reserve(records, |_| 0);
        self.stacks.reserve_frames(records);
    }

    /// Adds one record whose stack is `self.syms` (made by its [`RecordSink`] calls).
    fn add(&mut self, c: Counts) -> Result<()> {
        let (inuse_objects, inuse_bytes) =
            scale_sample(c.inuse_objects, c.inuse_bytes, self.period);
        let (alloc_objects, alloc_bytes) =
            scale_sample(c.alloc_objects, c.alloc_bytes, self.period);
        let Estimator {
            stacks,
            samples,
            index,
            hasher,
            syms,
            ..
        } = self;
        let hash = hash_syms(hasher, syms);
        let same = |i: &u32| {
            samples
                .get(*i as usize)
                .is_some_and(|s| stacks.frames(s.stack) == syms.as_slice())
        };
        if let Some(&i) = index.find(hash, same) {
            if let Some(s) = samples.get_mut(i as usize) {
                s.inuse_objects = s.inuse_objects.saturating_add(inuse_objects);
                s.inuse_bytes = s.inuse_bytes.saturating_add(inuse_bytes);
                s.alloc_objects = s.alloc_objects.saturating_add(alloc_objects);
                s.alloc_bytes = s.alloc_bytes.saturating_add(alloc_bytes);
            }
            return Ok(());
        }
        let id = u32::try_from(samples.len())
            .map_err(|_| Error::malformed(FORMAT, 0, "more than 4 Gi distinct stacks"))?;
        samples.push(HeapSample {
            stack: stacks.push(syms)?,
            inuse_objects,
            inuse_bytes,
            alloc_objects,
            alloc_bytes,
        });
        let rehash = |i: &u32| {
            samples
                .get(*i as usize)
                .map_or(0, |s| hash_syms(hasher, stacks.frames(s.stack)))
        };
        index.insert_unique(hash, id, rehash);
        Ok(())
    }

    fn finish(mut self) -> HeapProfile {
        // Big vectors are their own mappings: shrinking them remaps, it does not copy.
        self.samples.shrink_to_fit();
        HeapProfile {
            sampling_period: self.period,
            stacks: self.stacks.finish(),
            samples: self.samples,
        }
    }
}

/// [`parse_heap_estimate`]'s sink: names interned as their frame lines are read, each
/// record merged when it ends.
impl RecordSink for Estimator {
    fn header(&mut self, header: &HeapHeader) {
        self.period = header.sampling_period();
    }

    fn record(&mut self, counts: Counts, addrs: &[u64]) -> Result<()> {
        self.counts = counts;
        self.addrs.clear();
        self.addrs.extend_from_slice(addrs);
        self.syms.clear();
        Ok(())
    }

    fn frame(&mut self, f: FrameRef<'_>) -> Result<()> {
        let sym = match f.function {
            Some(name) => self.stacks.intern(name)?,
            None => self.stacks.pc(f.pc)?,
        };
        self.syms.push(sym);
        Ok(())
    }

    fn end(&mut self) -> Result<()> {
        if self.syms.is_empty() {
            for pc in &self.addrs {
                self.syms.push(self.stacks.pc(*pc)?);
            }
        }
        self.add(self.counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let est = h.estimate().unwrap();
        // Same function names: merged into one sample, unscaled at period 1; the
        // all-zero record stays (a site whose objects were all freed).
        assert_eq!(est.samples.len(), 2);
        assert!(est.stack(&est.samples[1]).is_empty());
        assert_eq!(est.stack(&est.samples[0]).to_strings(), ["main.a", "0x1f"]);
        assert_eq!(
            (est.samples[0].inuse_objects, est.samples[0].inuse_bytes),
            (3, 96)
        );
        assert_eq!(est.samples[0].alloc_bytes, 128);
    }

    /// Streaming into estimates gives what the records give, errors included.
    #[test]
    fn estimate_while_streaming_equals_records_then_estimate() {
        let body = "heap profile: 3: 96 [4: 128] @ heap/1048576\n\
            1: 32 [1: 32] @ 0x10 0x20\n\
            #\t0xf\tmain.a+0x1\t/m.go:1\n\
            #\t0x1f\n\
            \n\
            2: 64 [3: 96] @ 0x30\n\
            #\t0x2f\tmain.a+0x1\t/m.go:2\n\
            #\t0x1f\n\
            \n\
            5: 5000 [9: 9000] @ 0x40 0x50\n\
            \n\
            0: 0 [0: 0] @\n\
            1: 1 [1: 1] @ 0x40 0x50\n\
            \n\
            # runtime.MemStats\n\
            # HeapAlloc = 42\n";
        let mut bodies: Vec<Vec<u8>> = vec![body.as_bytes().to_vec()];
        // Every truncation and a few corruptions: the same result or the same error.
        for cut in 0..body.len() {
            bodies.push(body.as_bytes()[..cut].to_vec());
        }
        for (from, to) in [
            ("0x2f", "0xzz"),
            ("+0x1", "+1"),
            ("@ 0x30", "@ 0x3q"),
            ("a+", "\u{ff}+"),
        ] {
            bodies.push(body.replacen(from, to, 1).into_bytes());
        }
        bodies.push(b"\xff\xfeheap".to_vec());
        for b in &bodies {
            let want = parse_heap_text(b).and_then(|t| Ok((t.header, t.estimate()?, t.memstats)));
            let got = parse_heap_estimate(b).map(|e| (e.header, e.profile, e.memstats));
            match (&want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g, "{:?}", String::from_utf8_lossy(b)),
                (Err(w), Err(g)) => assert_eq!(w.to_string(), g.to_string()),
                _ => panic!("{want:?} vs {got:?} on {:?}", String::from_utf8_lossy(b)),
            }
            let m = parse_heap_memstats(b).map_err(|e| e.to_string());
            assert_eq!(m, want.map(|w| w.2).map_err(|e| e.to_string()));
        }
        // Fed in pieces, as a scrape downloads it: the same, whatever the cuts.
        for b in &bodies {
            let whole = parse_heap_estimate(b).map_err(|e| e.to_string());
            for size in [1, 2, 3, 5, 8, 13, 64, 4096] {
                let mut reader = HeapEstimateReader::new();
                let fed = b.chunks(size).try_for_each(|c| reader.feed(c));
                let got = fed
                    .and_then(|()| reader.finish())
                    .map_err(|e| e.to_string());
                assert_eq!(
                    got,
                    whole,
                    "chunks of {size}: {:?}",
                    String::from_utf8_lossy(b)
                );
            }
        }
        let e = parse_heap_estimate(body.as_bytes()).unwrap();
        assert_eq!(e.profile.samples.len(), 3);
        let p = &e.profile;
        assert_eq!(p.stack(&p.samples[1]).to_strings(), ["0x40", "0x50"]);
        assert_eq!(e.memstats.and_then(|m| m.heap_alloc), Some(42));
    }
}
