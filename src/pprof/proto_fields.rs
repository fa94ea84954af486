//! A protobuf profile read as it arrives: gunzipped when it starts with the gzip magic,
//! capped on its decompressed size, and cut into its top-level fields, each handed to a
//! [`FieldSink`] as soon as it is complete. The decompressed body is never held whole:
//! only the field being cut (one sample, location, function or string) waits for the
//! rest of its bytes. A gzipped body is kept compressed until its end (Go gzips its
//! profiles about 9:1), then decompressed a buffer at a time.

use std::io::Write;

use crate::files::{GZIP_MAGIC, Gunzip, gunzip_capped_into};
use crate::{Error, Result};

/// The value of one top-level field.
#[derive(Debug, Clone, Copy)]
pub(super) enum Field<'a> {
    Varint(u64),
    /// A length-delimited field: a message, a string or a packed list.
    Bytes(&'a [u8]),
    /// A 32- or 64-bit fixed-width value (the profile message has none).
    Fixed,
}

/// Takes the top-level fields of a message in the order they come.
pub(super) trait FieldSink {
    /// Field `number` and its value, which ends `read` bytes into the body.
    fn field(&mut self, number: u32, value: Field<'_>, read: u64) -> Result<()>;
}

fn malformed(what: &str) -> Error {
    Error::Proto(format!("failed to decode Protobuf message: {what}"))
}

/// The varint at the start of `buf` and its length; `None` when `buf` ends inside it.
/// Plain loops and indexing: a body of one-byte fields is cut at tens of MB/s even in
/// a debug build (CI's), where iterator adapters are not inlined.
fn varint(buf: &[u8]) -> Result<Option<(u64, usize)>> {
    let mut v: u64 = 0;
    let mut i = 0;
    while i < buf.len() && i < 10 {
        let b = buf[i];
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if i == 9 && b > 1 {
                return Err(malformed("invalid varint"));
            }
            return Ok(Some((v, i + 1)));
        }
        i += 1;
    }
    if buf.len() >= 10 {
        return Err(malformed("invalid varint"));
    }
    Ok(None)
}

/// Hands the first field of `buf` (`start` bytes into the body) to `sink`: the bytes it
/// took, `None` when `buf` ends inside it.
fn one_field(buf: &[u8], sink: &mut impl FieldSink, start: u64) -> Result<Option<usize>> {
    let Some((key, n)) = varint(buf)? else {
        return Ok(None);
    };
    let number = key >> 3;
    if number == 0 || number >= 1 << 29 {
        return Err(malformed(&format!("invalid tag value: {number}")));
    }
    let number = number as u32;
    let rest = &buf[n..];
    let (value, used) = match key & 7 {
        0 => match varint(rest)? {
            Some((v, m)) => (Field::Varint(v), m),
            None => return Ok(None),
        },
        1 | 5 => {
            let width = if key & 7 == 1 { 8 } else { 4 };
            if rest.len() < width {
                return Ok(None);
            }
            (Field::Fixed, width)
        }
        2 => {
            let Some((len, m)) = varint(rest)? else {
                return Ok(None);
            };
            let Some(end) = usize::try_from(len).ok().and_then(|l| l.checked_add(m)) else {
                return Err(malformed("buffer underflow"));
            };
            match rest.get(m..end) {
                Some(bytes) => (Field::Bytes(bytes), end),
                None => return Ok(None),
            }
        }
        w => return Err(malformed(&format!("invalid wire type value: {w}"))),
    };
    // Where the field ends: the same whatever pieces the body came in.
    sink.field(number, value, start + (n + used) as u64)?;
    Ok(Some(n + used))
}

/// Cuts fields from bytes pushed in pieces of any size.
struct Cutter<S> {
    sink: S,
    /// The start of a field whose end has not arrived.
    carry: Vec<u8>,
    seen: u64,
}

impl<S: FieldSink> Cutter<S> {
    fn push(&mut self, data: &[u8]) -> Result<()> {
        self.seen = self.seen.saturating_add(data.len() as u64);
        if self.carry.is_empty() {
            let start = self.seen - data.len() as u64;
            let used = cut(data, &mut self.sink, start)?;
            self.carry.extend_from_slice(&data[used..]);
            return Ok(());
        }
        self.carry.extend_from_slice(data);
        let start = self.seen - self.carry.len() as u64;
        let used = cut(&self.carry, &mut self.sink, start)?;
        self.carry.drain(..used);
        if self.carry.is_empty() && self.carry.capacity() > 1 << 20 {
            // A big field went through: do not keep its room.
            self.carry = Vec::new();
        }
        Ok(())
    }
}

/// Hands every complete field of `buf` (`start` bytes into the body) to `sink`: the
/// bytes they took.
fn cut(buf: &[u8], sink: &mut impl FieldSink, start: u64) -> Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        // A one-byte key of a varint field and a one-byte value, without the general
        // path's calls (a debug build does not inline them).
        let key = buf[at];
        if key & 0x87 == 0 && key != 0 && at + 1 < buf.len() && buf[at + 1] < 0x80 {
            let value = Field::Varint(u64::from(buf[at + 1]));
            at += 2;
            sink.field(u32::from(key >> 3), value, start + at as u64)?;
            continue;
        }
        match one_field(&buf[at..], sink, start + at as u64)? {
            Some(n) => at += n,
            None => break,
        }
    }
    Ok(at)
}

/// Lets [`gunzip_capped_into`] write into a [`Cutter`], keeping the sink's error.
struct CutterWriter<'a, S> {
    cutter: &'a mut Cutter<S>,
    failed: Option<Error>,
}

impl<S: FieldSink> Write for CutterWriter<'_, S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.cutter.push(buf) {
            Ok(()) => Ok(buf.len()),
            Err(e) => {
                self.failed = Some(e);
                Err(std::io::Error::other("profile decoding stopped"))
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether the body is gzip, known from its first two bytes.
enum Form {
    Unknown,
    Gzip,
    Raw,
}

/// A protobuf profile fed as it downloads, its top-level fields handed to a sink.
pub(super) struct ProtoBody<S> {
    form: Form,
    /// The first byte (while the form is unknown), or the whole gzipped body.
    held: Vec<u8>,
    cutter: Cutter<S>,
    max_decompressed: u64,
}

impl<S: FieldSink> ProtoBody<S> {
    /// `max_decompressed` caps the profile once gunzipped (or as it is, when raw).
    pub(super) fn new(sink: S, max_decompressed: u64) -> ProtoBody<S> {
        ProtoBody {
            form: Form::Unknown,
            held: Vec::new(),
            cutter: Cutter {
                sink,
                carry: Vec::new(),
                seen: 0,
            },
            max_decompressed,
        }
    }

    pub(super) fn sink(&self) -> &S {
        &self.cutter.sink
    }

    /// Reads what `chunk` completes. After an error, feed it nothing more.
    pub(super) fn feed(&mut self, chunk: &[u8]) -> Result<()> {
        match self.form {
            Form::Gzip => self.held.extend_from_slice(chunk),
            Form::Raw => self.push_raw(chunk)?,
            Form::Unknown => {
                self.held.extend_from_slice(chunk);
                if self.held.len() >= GZIP_MAGIC.len() {
                    if self.held.starts_with(&GZIP_MAGIC) {
                        self.form = Form::Gzip;
                    } else {
                        self.form = Form::Raw;
                        let first = std::mem::take(&mut self.held);
                        self.push_raw(&first)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn push_raw(&mut self, data: &[u8]) -> Result<()> {
        self.cutter.push(data)?;
        if self.cutter.seen > self.max_decompressed {
            return Err(Error::Proto(format!(
                "profile of more than {} bytes exceeds the limit of {} bytes",
                self.max_decompressed, self.max_decompressed
            )));
        }
        Ok(())
    }

    /// Ends the body: the sink, and how many bytes the profile was (decompressed).
    pub(super) fn finish(mut self) -> Result<(S, u64)> {
        match self.form {
            Form::Raw => {}
            Form::Unknown => {
                let first = std::mem::take(&mut self.held);
                self.push_raw(&first)?;
            }
            Form::Gzip => {
                let gz = std::mem::take(&mut self.held);
                let max = self.max_decompressed;
                let mut w = CutterWriter {
                    cutter: &mut self.cutter,
                    failed: None,
                };
                let done = gunzip_capped_into(gz.as_slice(), max, &mut w);
                if let Some(e) = w.failed {
                    return Err(e);
                }
                match done {
                    Ok(_) => {}
                    Err(Gunzip::Io(e)) => return Err(Error::Proto(format!("gunzip: {e}"))),
                    Err(Gunzip::OverCap) => {
                        return Err(Error::Proto(format!(
                            "decompressed profile exceeds the limit of {max} bytes ({})",
                            crate::units::fmt_size(max)
                        )));
                    }
                }
            }
        }
        if self.cutter.seen == 0 {
            return Err(Error::Proto("empty profile".into()));
        }
        if !self.cutter.carry.is_empty() {
            return Err(malformed("buffer underflow"));
        }
        Ok((self.cutter.sink, self.cutter.seen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps every field as (number, text of the value).
    #[derive(Default)]
    struct Keep(Vec<(u32, String)>);

    impl FieldSink for Keep {
        fn field(&mut self, number: u32, value: Field<'_>, _: u64) -> Result<()> {
            self.0.push((number, format!("{value:?}")));
            Ok(())
        }
    }

    fn read(pieces: &[&[u8]]) -> Result<Vec<(u32, String)>> {
        let mut body = ProtoBody::new(Keep::default(), 1 << 20);
        for p in pieces {
            body.feed(p)?;
        }
        Ok(body.finish()?.0.0)
    }

    #[test]
    fn fields_are_cut_whatever_the_pieces() {
        // 1: varint 150; 2: bytes "ab"; 3: fixed64; 4: fixed32; 6: empty bytes.
        let msg: &[u8] = &[
            0x08, 0x96, 0x01, 0x12, 2, b'a', b'b', 0x19, 1, 2, 3, 4, 5, 6, 7, 8, 0x25, 1, 2, 3, 4,
            0x32, 0,
        ];
        let whole = read(&[msg]).unwrap();
        assert_eq!(
            whole,
            [
                (1, "Varint(150)".to_string()),
                (2, "Bytes([97, 98])".to_string()),
                (3, "Fixed".to_string()),
                (4, "Fixed".to_string()),
                (6, "Bytes([])".to_string()),
            ]
        );
        for cut in 0..=msg.len() {
            let (a, b) = msg.split_at(cut);
            assert_eq!(read(&[a, b]).unwrap(), whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = msg.chunks(1).collect();
        assert_eq!(read(&bytes).unwrap(), whole);
    }

    #[test]
    fn one_byte_fields_are_cut_fast() {
        // 8 MiB of 'x' is 4 Mi varint fields 15: as an endless hostile body sends them.
        struct Count(u64);
        impl FieldSink for Count {
            fn field(&mut self, _: u32, _: Field<'_>, _: u64) -> Result<()> {
                self.0 += 1;
                Ok(())
            }
        }
        let body = vec![b'x'; 8 << 20];
        let started = std::time::Instant::now();
        let mut b = ProtoBody::new(Count(0), 16 << 20);
        for c in body.chunks(1 << 20) {
            b.feed(c).unwrap();
        }
        let (count, len) = b.finish().unwrap();
        eprintln!("{len} bytes cut in {:?}", started.elapsed());
        assert_eq!(count.0, 4 << 20);
    }

    #[test]
    fn broken_bodies_are_errors() {
        let cases: [(&[u8], &str); 6] = [
            (b"", "empty profile"),
            (&[0x12, 5, 1], "buffer underflow"),
            (&[0x08], "buffer underflow"),
            (&[0x0b], "invalid wire type"),
            (&[0x00, 0], "invalid tag value"),
            (
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
                ],
                "varint",
            ),
        ];
        for (body, want) in cases {
            let err = read(&[body]).unwrap_err().to_string();
            assert!(err.contains(want), "{body:?}: {err}");
        }
        let mut big = ProtoBody::new(Keep::default(), 4);
        let err = big.feed(&[0x08, 1, 0x08, 1, 0x08]).unwrap_err();
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
    }
}
