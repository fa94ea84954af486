//! Decoder of the gzipped `perftools.profiles.Profile` protobuf that
//! `/debug/pprof/heap` and `/debug/pprof/goroutine` serve, and its conversion to
//! the format-independent [`HeapProfile`] and [`GoroutineProfile`].
//!
//! The message types are written by hand with `prost` derives (field numbers from
//! google/pprof `proto/profile.proto`) so the build needs no `protoc`.

use std::collections::HashMap;

use prost::Message;

use super::profile::{
    GoroutineProfile, GoroutineRecord, HeapProfile, HeapProfileBuilder, HeapValues,
};
use super::stacks::Name;
use crate::{Error, Result};

/// `perftools.profiles.Profile`. String fields are indexes into `string_table`
/// (index 0 is always the empty string).
#[derive(Clone, PartialEq, Message)]
pub struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<ProfileSample>,
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "7")]
    pub drop_frames: i64,
    #[prost(int64, tag = "8")]
    pub keep_frames: i64,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
    #[prost(int64, tag = "15")]
    pub doc_url: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// One `Sample` message of profile.proto: a stack and its values.
#[derive(Clone, PartialEq, Message)]
pub struct ProfileSample {
    /// Leaf (innermost) location first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
    #[prost(int64, tag = "3")]
    pub num: i64,
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Mapping {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    #[prost(int64, tag = "5")]
    pub filename: i64,
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(uint64, tag = "3")]
    pub address: u64,
    /// `line[0]` is the innermost frame: each line is inlined into the next one.
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
    #[prost(bool, tag = "5")]
    pub is_folded: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
    #[prost(int64, tag = "3")]
    pub column: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}

/// Decodes a profile, gunzipping it first when it starts with the gzip magic
/// (Go serves it gzipped without a `Content-Encoding` header).
///
/// `max_decompressed` caps the decompressed size: a gzip bomb is an error, and
/// never more than `max_decompressed + 1` bytes are held in memory.
pub fn decode(bytes: &[u8], max_decompressed: u64) -> Result<Profile> {
    let raw = crate::files::gunzip_capped(bytes, max_decompressed)?;
    if matches!(raw, std::borrow::Cow::Borrowed(_)) && bytes.len() as u64 > max_decompressed {
        return Err(Error::Proto(format!(
            "profile of {} bytes exceeds the limit of {max_decompressed} bytes",
            bytes.len()
        )));
    }
    if raw.is_empty() {
        return Err(Error::Proto("empty profile".into()));
    }
    Profile::decode(raw.as_ref()).map_err(|e| Error::Proto(e.to_string()))
}

/// Resolves the string-table indexes and location ids of a decoded [`Profile`].
struct Symbols<'a> {
    p: &'a Profile,
    locations: HashMap<u64, &'a Location>,
    functions: HashMap<u64, &'a str>,
}

impl<'a> Symbols<'a> {
    fn new(p: &'a Profile) -> Self {
        let locations = p.location.iter().map(|l| (l.id, l)).collect();
        let functions = p
            .function
            .iter()
            .map(|f| (f.id, str_at(p, f.name)))
            .collect();
        Symbols {
            p,
            locations,
            functions,
        }
    }

    fn str(&self, idx: i64) -> &'a str {
        str_at(self.p, idx)
    }

    /// Function names, innermost first, with inlined frames expanded.
    /// A location with no line (unsymbolized PC) appears as `0x...`.
    fn stack(&self, location_ids: &[u64]) -> Result<Vec<String>> {
        let mut out = Vec::with_capacity(location_ids.len());
        self.each_frame(location_ids, |n| {
            out.push(n.to_string());
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` with each frame's name, innermost first, inlined frames expanded; a
    /// location with no line or no function name is its address.
    fn each_frame(
        &self,
        location_ids: &[u64],
        mut f: impl FnMut(Name<'a>) -> Result<()>,
    ) -> Result<()> {
        for id in location_ids {
            let loc = self
                .locations
                .get(id)
                .ok_or_else(|| Error::Proto(format!("sample refers to unknown location {id}")))?;
            if loc.line.is_empty() {
                f(Name::Pc(loc.address))?;
                continue;
            }
            for line in &loc.line {
                match self.functions.get(&line.function_id) {
                    Some(name) if !name.is_empty() => f(Name::Func(name))?,
                    Some(_) => f(Name::Pc(loc.address))?,
                    None => {
                        return Err(Error::Proto(format!(
                            "location {id} refers to unknown function {}",
                            line.function_id
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

fn str_at(p: &Profile, idx: i64) -> &str {
    usize::try_from(idx)
        .ok()
        .and_then(|i| p.string_table.get(i))
        .map(String::as_str)
        .unwrap_or("")
}

/// Index of the sample type named `name`, if present.
fn sample_index(p: &Profile, name: &str) -> Option<usize> {
    p.sample_type
        .iter()
        .position(|vt| str_at(p, vt.r#type) == name)
}

fn value_at(s: &ProfileSample, idx: Option<usize>) -> u64 {
    // Negative values only appear in hand-made diff profiles; a heap has none.
    idx.and_then(|i| s.value.get(i))
        .map(|v| u64::try_from(*v).unwrap_or(0))
        .unwrap_or(0)
}

/// The heap (or allocs) profile with the values Go already scaled, picked by
/// sample type name so the order of `sample_type` does not matter.
pub fn heap_profile(p: &Profile) -> Result<HeapProfile> {
    let idx = |n| sample_index(p, n);
    let (ao, asp, io, isp) = (
        idx("alloc_objects"),
        idx("alloc_space"),
        idx("inuse_objects"),
        idx("inuse_space"),
    );
    if io.is_none() && isp.is_none() && ao.is_none() && asp.is_none() {
        let names: Vec<&str> = p.sample_type.iter().map(|v| str_at(p, v.r#type)).collect();
        return Err(Error::NotFormat {
            format: "heap profile (protobuf)",
            reason: format!("no heap sample types, found {names:?}"),
        });
    }
    let syms = Symbols::new(p);
    let mut out = HeapProfileBuilder::new(u64::try_from(p.period).unwrap_or(0));
    let mut frames = Vec::new();
    for s in &p.sample {
        frames.clear();
        syms.each_frame(&s.location_id, |name| {
            frames.push(out.frame(name)?);
            Ok(())
        })?;
        let values = HeapValues {
            inuse_objects: value_at(s, io),
            inuse_bytes: value_at(s, isp),
            alloc_objects: value_at(s, ao),
            alloc_bytes: value_at(s, asp),
        };
        out.push_syms(&frames, values)?;
    }
    Ok(out.finish())
}

/// The goroutine profile: one record per sample, labels (string ones only)
/// sorted by key as the `debug=1` text prints them.
pub fn goroutine_profile(p: &Profile) -> Result<GoroutineProfile> {
    let idx = sample_index(p, "goroutine").or(if p.sample_type.len() == 1 {
        Some(0)
    } else {
        None
    });
    let Some(idx) = idx else {
        let names: Vec<&str> = p.sample_type.iter().map(|v| str_at(p, v.r#type)).collect();
        return Err(Error::NotFormat {
            format: "goroutine profile (protobuf)",
            reason: format!("no goroutine sample type, found {names:?}"),
        });
    };
    let syms = Symbols::new(p);
    let mut total: u64 = 0;
    let mut records = Vec::with_capacity(p.sample.len());
    for s in &p.sample {
        let count = value_at(s, Some(idx));
        total = total.saturating_add(count);
        let mut labels: Vec<(String, String)> = s
            .label
            .iter()
            .filter(|l| l.str != 0)
            .map(|l| (syms.str(l.key).to_string(), syms.str(l.str).to_string()))
            .collect();
        labels.sort();
        records.push(GoroutineRecord {
            count,
            stack: syms.stack(&s.location_id)?,
            labels,
        });
    }
    Ok(GoroutineProfile { total, records })
}

/// For tests and benchmarks, a heap profile shaped like issue 23's attack: `records` samples, each with its own leaf
/// location (one line, its own function and name) over 7 frames of a shared pool,
/// four values and Go's `bytes` label. 300,000 records: ~54 MB.
pub fn synthetic_heap_profile(records: u64) -> Profile {
    let mut strings: Vec<String> = ["", "alloc_objects", "count", "alloc_space", "bytes"]
        .iter()
        .chain(&["inuse_objects", "count", "inuse_space", "bytes", "space"])
        .map(|s| s.to_string())
        .collect();
    let vt = |t: i64, u: i64| ValueType { r#type: t, unit: u };
    let mut p = Profile {
        sample_type: vec![vt(1, 2), vt(3, 4), vt(5, 6), vt(7, 8)],
        period: 524288,
        period_type: Some(vt(9, 4)),
        ..Default::default()
    };
    let mut add = |p: &mut Profile, name: String, file: String| {
        let id = p.function.len() as u64 + 1;
        strings.push(name);
        strings.push(file);
        p.function.push(Function {
            id,
            name: strings.len() as i64 - 2,
            system_name: strings.len() as i64 - 2,
            filename: strings.len() as i64 - 1,
            start_line: 10,
        });
        p.location.push(Location {
            id,
            mapping_id: 1,
            address: 0x400000 + 16 * id,
            line: vec![Line {
                function_id: id,
                line: 42,
                column: 0,
            }],
            is_folded: false,
        });
        id
    };
    let pool: Vec<u64> = (0..1000)
        .map(|i| {
            add(
                &mut p,
                format!("github.com/acme/service/internal/pool{i}.(*Worker).Run"),
                format!("/src/service/internal/pool{i}/worker.go"),
            )
        })
        .collect();
    for i in 0..records {
        let leaf = add(
            &mut p,
            format!("github.com/acme/service/internal/cache.(*Store).leak{i}"),
            format!("/src/service/internal/cache/store{i}.go"),
        );
        let mut location_id = vec![leaf];
        location_id.extend((0..7).map(|k| pool[((i * 7 + k * 131) % 1000) as usize]));
        p.sample.push(ProfileSample {
            location_id,
            value: vec![1 + i as i64 % 7, 4096 + i as i64, 1, 4096 + i as i64],
            label: vec![Label {
                key: 4,
                num: 4096 + i as i64,
                ..Default::default()
            }],
        });
    }
    p.string_table = strings;
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_bomb_over_cap_is_an_error() {
        let bomb = gzip(&vec![0u8; 10 << 20]);
        let err = decode(&bomb, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
    }

    #[test]
    fn raw_and_gzipped_decode_alike() {
        let p = Profile {
            sample_type: vec![ValueType { r#type: 1, unit: 2 }],
            string_table: vec![
                "".into(),
                "goroutine".into(),
                "count".into(),
                "main.f".into(),
            ],
            function: vec![Function {
                id: 7,
                name: 3,
                ..Default::default()
            }],
            location: vec![Location {
                id: 1,
                line: vec![Line {
                    function_id: 7,
                    line: 3,
                    column: 0,
                }],
                ..Default::default()
            }],
            sample: vec![ProfileSample {
                location_id: vec![1],
                value: vec![4],
                label: vec![],
            }],
            ..Default::default()
        };
        let bytes = p.encode_to_vec();
        assert_eq!(decode(&bytes, 1 << 20).unwrap(), p);
        assert_eq!(decode(&gzip(&bytes), 1 << 20).unwrap(), p);
        let g = goroutine_profile(&p).unwrap();
        assert_eq!(g.total, 4);
        assert_eq!(g.records[0].stack, vec!["main.f".to_string()]);
        assert!(heap_profile(&p).is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode(b"", 100).is_err());
        assert!(decode(&[0x1f, 0x8b, 0, 0], 100).is_err());
        assert!(decode(&[0xff; 20], 100).is_err());
    }
}
