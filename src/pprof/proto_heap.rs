//! The heap (or allocs) profile of a protobuf body, decoded as the body arrives into
//! compact tables, then resolved into interned stacks ([`HeapProfile`]), the text
//! path's representation. Decoding the whole `Profile` message first held every sample,
//! location, function and string as its own allocation: ~7x the decompressed body at
//! its peak, and much of it left in the allocator's arenas afterwards.
//!
//! Go writes the samples before the locations, functions and strings they refer to, so
//! samples wait in their encoded form (labels dropped: the most compact form there is),
//! locations and functions as rows of numbers, and strings in one text. The tables may
//! hold at most [`TABLE_BYTES_PER_BODY_BYTE`] times the bytes read so far, and the
//! resolved profile at most [`PROFILE_BYTES_PER_BODY_BYTE`] times the body: a body
//! dense in empty records, or in locations with many inlined lines referenced by many
//! samples, is an error, never a multiple of the body it came from.

use prost::Message;

use super::heap::ChunkReader;
use super::profile::{HeapProfile, HeapProfileBuilder, HeapSample, HeapValues};
use super::proto::{Function, Location, Mapping, ProfileSample, ValueType};
use super::proto_fields::{Field, FieldSink, ProtoBody};
use super::stacks::{Name, Sym};
use crate::{Error, Result};

/// The tables may hold this many bytes per body byte read so far (plus [`SLACK`]).
/// Go's profiles need under one; a body of nothing but locations, about two (a
/// 32-byte row and an 8-byte line for a location of ~20 bytes).
const TABLE_BYTES_PER_BODY_BYTE: u64 = 3;
/// The resolved profile (a 40-byte sample, an 8-byte frame per inlined line of each of
/// its locations) may be this many bytes per body byte (plus [`SLACK`]). A location id
/// is 2 or 3 bytes of a sample and its frames 8 bytes each, inlining adding more: Go's
/// deep stacks come to ~4x; the cap stops a location of many lines referenced by many
/// samples (before, samples x lines frames, unbounded by the body).
const PROFILE_BYTES_PER_BODY_BYTE: u64 = 16;
/// Room any profile gets, however small its body.
const SLACK: u64 = 1 << 20;

/// Decodes a heap profile (gzipped or raw protobuf) whole: the same result as
/// [`super::proto::decode`] then [`super::proto::heap_profile`], in bounded memory.
pub fn decode_heap_profile(bytes: &[u8], max_decompressed: u64) -> Result<HeapProfile> {
    let mut r = HeapProtoReader::new(max_decompressed);
    r.feed(bytes)?;
    r.finish()
}

/// A protobuf heap profile read chunk by chunk as it downloads.
pub struct HeapProtoReader(ProtoBody<Tables>);

impl HeapProtoReader {
    /// `max_decompressed` caps the profile's size once gunzipped.
    pub fn new(max_decompressed: u64) -> HeapProtoReader {
        HeapProtoReader(ProtoBody::new(Tables::default(), max_decompressed))
    }

    /// Bytes the tables hold now (for tests of the bound).
    pub fn held(&self) -> u64 {
        self.0.sink().held()
    }
}

impl ChunkReader for HeapProtoReader {
    type Output = HeapProfile;
    fn feed(&mut self, chunk: &[u8]) -> Result<()> {
        self.0.feed(chunk)
    }
    fn finish(self) -> Result<HeapProfile> {
        let (tables, body_len) = self.0.finish()?;
        tables.resolve(body_len)
    }
}

/// One `Location`: its lines' function ids are `lines[lines_at..lines_at + lines_len]`,
/// and once a sample used it, its frames are `frames[frames_at..][..frames_len]`.
#[derive(Clone, Copy)]
struct LocationRow {
    id: u64,
    address: u64,
    lines_at: u32,
    lines_len: u32,
    frames_at: u32,
    frames_len: u32,
}

const UNRESOLVED: u32 = u32::MAX;

/// What a body decoded so far holds, in compact tables.
#[derive(Default)]
struct Tables {
    /// `(type, unit)` string indexes of each sample type.
    sample_types: Vec<(i64, i64)>,
    /// Each sample, length-delimited, its labels dropped.
    samples: Vec<u8>,
    sample_count: u64,
    locations: Vec<LocationRow>,
    lines: Vec<u64>,
    /// `(id, name)`: a function's id and its name's string index.
    functions: Vec<(u64, i64)>,
    /// Every string of the table, one after the other; string `i` ends at `ends[i]`.
    text: String,
    ends: Vec<u32>,
    period: i64,
    // Messages decoded into again and again, so no field allocates.
    sample: ProfileSample,
    location: Location,
    function: Function,
    mapping: Mapping,
    value_type: ValueType,
}

fn proto_err(e: prost::DecodeError) -> Error {
    Error::Proto(e.to_string())
}

fn too_large(what: &str) -> Error {
    Error::Proto(format!(
        "profile too large to index: more than 4 GiB of {what}"
    ))
}

fn index(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|i| *i != UNRESOLVED)
        .ok_or_else(|| too_large(what))
}

impl Tables {
    fn held(&self) -> u64 {
        let sizes = [
            self.sample_types.len() * 16,
            self.samples.len(),
            self.locations.len() * std::mem::size_of::<LocationRow>(),
            self.lines.len() * 8,
            self.functions.len() * 16,
            self.text.len(),
            self.ends.len() * 4,
        ];
        sizes.iter().map(|s| *s as u64).sum()
    }

    fn str(&self, idx: i64) -> &str {
        let Ok(i) = usize::try_from(idx) else {
            return "";
        };
        let Some(end) = self.ends.get(i) else {
            return "";
        };
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p] as usize);
        self.text.get(start..*end as usize).unwrap_or("")
    }

    fn sample_index(&self, name: &str) -> Option<usize> {
        self.sample_types
            .iter()
            .position(|(t, _)| self.str(*t) == name)
    }

    fn message(&mut self, number: u32, b: &[u8]) -> Result<()> {
        match number {
            1 => {
                self.value_type.clear();
                self.value_type.merge(b).map_err(proto_err)?;
                let vt = &self.value_type;
                self.sample_types.push((vt.r#type, vt.unit));
            }
            2 => {
                self.sample.clear();
                self.sample.merge(b).map_err(proto_err)?;
                self.sample.label.clear();
                self.sample
                    .encode_length_delimited(&mut self.samples)
                    .map_err(|e| Error::Proto(e.to_string()))?;
                self.sample_count += 1;
            }
            3 => {
                // Unused, but a broken mapping is a broken profile.
                self.mapping.clear();
                self.mapping.merge(b).map_err(proto_err)?;
            }
            4 => {
                self.location.clear();
                self.location.merge(b).map_err(proto_err)?;
                let lines_at = index(self.lines.len(), "lines")?;
                self.lines
                    .extend(self.location.line.iter().map(|l| l.function_id));
                self.locations.push(LocationRow {
                    id: self.location.id,
                    address: self.location.address,
                    lines_at,
                    lines_len: index(self.location.line.len(), "lines")?,
                    frames_at: UNRESOLVED,
                    frames_len: 0,
                });
            }
            5 => {
                self.function.clear();
                self.function.merge(b).map_err(proto_err)?;
                self.functions.push((self.function.id, self.function.name));
            }
            6 => {
                let s = std::str::from_utf8(b).map_err(|_| {
                    Error::Proto(
                        "failed to decode Protobuf message: invalid string value: data is not UTF-8 encoded"
                            .into(),
                    )
                })?;
                self.text.push_str(s);
                self.ends.push(index(self.text.len(), "strings")?);
            }
            11 => {
                self.value_type.clear();
                self.value_type.merge(b).map_err(proto_err)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The profile these tables describe, samples in the order they came: the same as
    /// `heap_profile(&decode(..))`, names interned in the same order.
    fn resolve(mut self, body_len: u64) -> Result<HeapProfile> {
        let idx = |n| self.sample_index(n);
        let (ao, asp, io, isp) = (
            idx("alloc_objects"),
            idx("alloc_space"),
            idx("inuse_objects"),
            idx("inuse_space"),
        );
        if io.is_none() && isp.is_none() && ao.is_none() && asp.is_none() {
            let names: Vec<&str> = self.sample_types.iter().map(|v| self.str(v.0)).collect();
            return Err(Error::NotFormat {
                format: "heap profile (protobuf)",
                reason: format!("no heap sample types, found {names:?}"),
            });
        }
        // By id, the last of a repeated id winning (as a map built in order keeps it).
        self.locations.reverse();
        self.locations.sort_by_key(|l| l.id);
        self.locations.dedup_by_key(|l| l.id);
        self.functions.reverse();
        self.functions.sort_by_key(|f| f.0);
        self.functions.dedup_by_key(|f| f.0);

        let budget = body_len
            .saturating_mul(PROFILE_BYTES_PER_BODY_BYTE)
            .saturating_add(SLACK);
        let per_sample = std::mem::size_of::<HeapSample>() as u64;
        let mut used: u64 = 0;
        let mut out = HeapProfileBuilder::new(u64::try_from(self.period).unwrap_or(0));
        let mut resolved: Vec<Sym> = Vec::new();
        let mut stack: Vec<Sym> = Vec::new();
        let mut sample = ProfileSample::default();
        let samples = std::mem::take(&mut self.samples);
        let mut rest = samples.as_slice();
        while !rest.is_empty() {
            sample.clear();
            sample
                .merge_length_delimited(&mut rest)
                .map_err(proto_err)?;
            stack.clear();
            for id in &sample.location_id {
                let frames = self.frames_of(*id, &mut out, &mut resolved)?;
                stack.extend_from_slice(frames);
            }
            used = used.saturating_add(per_sample + 8 * stack.len() as u64);
            if used > budget {
                return Err(Error::Proto(format!(
                    "profile too dense: its {} samples expand to more than {budget} bytes \
                     of stacks from a {body_len}-byte body",
                    self.sample_count
                )));
            }
            let value = |i: Option<usize>| {
                // Negative values only appear in hand-made diff profiles; a heap has none.
                i.and_then(|i| sample.value.get(i))
                    .map(|v| u64::try_from(*v).unwrap_or(0))
                    .unwrap_or(0)
            };
            let values = HeapValues {
                inuse_objects: value(io),
                inuse_bytes: value(isp),
                alloc_objects: value(ao),
                alloc_bytes: value(asp),
            };
            out.push_syms(&stack, values)?;
        }
        Ok(out.finish())
    }

    /// The frames of location `id`, innermost first, inlined lines expanded; a location
    /// with no line, or a line's function with no name, is its address. Resolved once.
    fn frames_of<'r>(
        &mut self,
        id: u64,
        out: &mut HeapProfileBuilder,
        resolved: &'r mut Vec<Sym>,
    ) -> Result<&'r [Sym]> {
        let row = self
            .locations
            .binary_search_by_key(&id, |l| l.id)
            .map_err(|_| Error::Proto(format!("sample refers to unknown location {id}")))?;
        let loc = self.locations[row];
        if loc.frames_at == UNRESOLVED {
            let at = resolved.len();
            let lines = loc.lines_at as usize..(loc.lines_at + loc.lines_len) as usize;
            if lines.is_empty() {
                resolved.push(out.frame(Name::Pc(loc.address))?);
            }
            for function_id in &self.lines[lines] {
                let name = match self.functions.binary_search_by_key(function_id, |f| f.0) {
                    Ok(f) => self.str(self.functions[f].1),
                    Err(_) => {
                        return Err(Error::Proto(format!(
                            "location {id} refers to unknown function {function_id}"
                        )));
                    }
                };
                let name = if name.is_empty() {
                    Name::Pc(loc.address)
                } else {
                    Name::Func(name)
                };
                resolved.push(out.frame(name)?);
            }
            let row = &mut self.locations[row];
            row.frames_at = index(at, "frames")?;
            row.frames_len = index(resolved.len() - at, "frames")?;
        }
        let row = self.locations[row];
        let at = row.frames_at as usize;
        Ok(&resolved[at..at + row.frames_len as usize])
    }
}

impl FieldSink for Tables {
    fn field(&mut self, number: u32, value: Field<'_>, read: u64) -> Result<()> {
        let wrong = || {
            Err(Error::Proto(format!(
                "failed to decode Protobuf message: Profile field {number}: invalid wire type"
            )))
        };
        match (number, value) {
            (1..=6 | 11, Field::Bytes(b)) => self.message(number, b)?,
            (12, Field::Varint(v)) => self.period = v as i64,
            (7..=10 | 13..=15, Field::Varint(_)) | (13, Field::Bytes(_)) => return Ok(()),
            (1..=15, _) => return wrong(),
            // Unknown fields are skipped, as prost does; they add nothing to the tables.
            _ => return Ok(()),
        }
        let budget = read
            .saturating_mul(TABLE_BYTES_PER_BODY_BYTE)
            .saturating_add(SLACK);
        if self.held() > budget {
            return Err(Error::Proto(format!(
                "profile too dense: its tables would hold more than {budget} bytes \
                 after {read} bytes of it"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pprof::proto::{decode, heap_profile, synthetic_heap_profile};

    const MAX: u64 = 256 << 20;

    /// The old decoder: the whole message, then the profile.
    fn whole(bytes: &[u8]) -> Result<HeapProfile> {
        heap_profile(&decode(bytes, MAX)?)
    }

    fn in_pieces(bytes: &[u8], piece: usize) -> Result<HeapProfile> {
        let mut r = HeapProtoReader::new(MAX);
        for c in bytes.chunks(piece) {
            r.feed(c)?;
        }
        r.finish()
    }

    fn heap_fixtures() -> Vec<std::path::PathBuf> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut out = Vec::new();
        let mut dirs = vec![root];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                if p.is_dir() {
                    dirs.push(p);
                } else if name.ends_with(".pb.gz") || name.ends_with(".pb") {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn every_fixture_decodes_as_the_whole_message_did() {
        let fixtures = heap_fixtures();
        assert!(fixtures.len() >= 40, "{} fixtures", fixtures.len());
        let mut heaps = 0;
        for path in fixtures {
            let gz = std::fs::read(&path).unwrap();
            let plain = crate::files::gunzip_capped(&gz, MAX).unwrap().into_owned();
            let want = whole(&gz);
            for (what, bytes) in [("gzip", &gz), ("raw", &plain)] {
                for piece in [1, 7, 4096, usize::MAX] {
                    let got = in_pieces(bytes, piece.min(bytes.len()));
                    match (&want, &got) {
                        (Ok(w), Ok(g)) => assert_eq!(w, g, "{} {what} {piece}", path.display()),
                        (Err(w), Err(g)) => assert_eq!(
                            w.to_string(),
                            g.to_string(),
                            "{} {what} {piece}",
                            path.display()
                        ),
                        _ => panic!("{} {what} {piece}: {want:?} / {got:?}", path.display()),
                    }
                }
            }
            heaps += usize::from(want.is_ok());
        }
        assert!(heaps >= 15, "{heaps} heap profiles");
    }

    #[test]
    fn a_big_profile_is_decoded_in_bounded_memory_as_the_whole_message_was() {
        let body = synthetic_heap_profile(300_000).encode_to_vec();
        let body_len = body.len() as u64;
        let want = whole(&body).unwrap();
        let mut r = HeapProtoReader::new(MAX);
        let mut peak_tables = 0;
        for c in body.chunks(64 << 10) {
            r.feed(c).unwrap();
            peak_tables = peak_tables.max(r.held());
        }
        let got = r.finish().unwrap();
        assert_eq!(got.samples.len(), 300_000);
        assert_eq!(got, want);
        let kept = got.samples.capacity() as u64 * std::mem::size_of::<HeapSample>() as u64
            + got.stacks.held_bytes();
        eprintln!(
            "{body_len} bytes: tables at most {peak_tables} ({:.2}x), profile {kept} ({:.2}x)",
            peak_tables as f64 / body_len as f64,
            kept as f64 / body_len as f64
        );
        // Tables and the profile built from them are what a decode holds at its peak.
        assert!(
            peak_tables + kept < 5 * body_len / 2,
            "{peak_tables} + {kept}"
        );
    }

    #[test]
    fn dense_bodies_are_refused_not_amplified() {
        // A location of 10,000 lines referenced 2,000 times by samples of 3 bytes:
        // 20 million frames from a 60 kB body.
        let mut p = synthetic_heap_profile(1);
        p.location[0].line = vec![p.location[0].line[0].clone(); 10_000];
        let leaf = p.location[0].id;
        p.sample = vec![
            ProfileSample {
                location_id: vec![leaf],
                ..Default::default()
            };
            2_000
        ];
        let err = decode_heap_profile(&p.encode_to_vec(), MAX).unwrap_err();
        assert!(err.to_string().contains("too dense"), "{err}");
        // Empty locations: two bytes each for a 32-byte row.
        let mut p = synthetic_heap_profile(1);
        p.location.extend((0..2_000_000).map(|i| Location {
            id: 10_000 + i,
            ..Default::default()
        }));
        let err = decode_heap_profile(&p.encode_to_vec(), MAX).unwrap_err();
        assert!(err.to_string().contains("too dense"), "{err}");
    }
}
