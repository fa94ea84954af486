//! Loading a profile file or body whatever its form: gzipped or not (the one
//! gzip-with-cap of leakwatch), protobuf or `heap?debug=1` text.

use std::borrow::Cow;
use std::io::Read;

use crate::pprof::HeapProfile;
use crate::{Error, Result};

/// The first two bytes of a gzip stream.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Gunzips `bytes` when they start with the gzip magic (Go serves profiles gzipped
/// without a `Content-Encoding` header); other bytes are returned as they are.
///
/// `max_decompressed` caps the decompressed size: a gzip bomb is an error, and never
/// more than `max_decompressed + 1` bytes are held in memory.
pub fn gunzip_capped(bytes: &[u8], max_decompressed: u64) -> Result<Cow<'_, [u8]>> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::new();
    match gunzip_capped_into(bytes, max_decompressed, &mut out) {
        Ok(_) => Ok(Cow::Owned(out)),
        Err(Gunzip::Io(e)) => Err(Error::Proto(format!("gunzip: {e}"))),
        Err(Gunzip::OverCap) => Err(Error::Proto(format!(
            "decompressed profile exceeds the limit of {max_decompressed} bytes"
        ))),
    }
}

/// Why [`gunzip_capped_into`] stopped.
#[derive(Debug)]
pub enum Gunzip {
    /// Not gzip, truncated, or a bad CRC/length; or `out` failed.
    Io(std::io::Error),
    /// More than the cap would come out.
    OverCap,
}

/// Decompresses the gzip stream (one or more members) read from `r` into `out`,
/// streaming, and returns the decompressed length: at most `max_decompressed` bytes
/// are written, then [`Gunzip::OverCap`]. The one gzip-with-cap of leakwatch: profiles
/// in memory ([`gunzip_capped`]) and dump files checked on disk go through it.
pub fn gunzip_capped_into(
    r: impl Read,
    max_decompressed: u64,
    out: &mut impl std::io::Write,
) -> std::result::Result<u64, Gunzip> {
    let mut dec = flate2::read::MultiGzDecoder::new(r).take(max_decompressed.saturating_add(1));
    let n = std::io::copy(&mut dec, out).map_err(Gunzip::Io)?;
    if n > max_decompressed {
        return Err(Gunzip::OverCap);
    }
    Ok(n)
}

/// Reads a heap profile in whatever form it comes: gzipped or raw protobuf, or
/// `heap?debug=1` text (optionally gzipped), whose raw counts are scaled the
/// way pprof does. `max_bytes` caps the decompressed size.
pub fn load_profile(bytes: &[u8], max_bytes: u64) -> Result<HeapProfile> {
    let plain = gunzip_capped(bytes, max_bytes)?;
    if plain.starts_with(b"heap profile:") {
        return Ok(crate::pprof::heap::parse_heap_text(&plain)?.estimate());
    }
    let p = crate::pprof::proto::decode(&plain, max_bytes)?;
    crate::pprof::proto::heap_profile(&p)
}
