//! Capped reads and gzip for every file or stream a user hands leakwatch (profiles for
//! `top` and `diff`, config and baseline files, dump files checked on disk): the one
//! gzip-with-cap and the one capped reader, so an endless stream, a huge file or a gzip
//! bomb is an error that names the cap, never an unbounded buffer. A leaf: it knows
//! no format beyond gzip.

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

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
            "decompressed profile exceeds the limit of {max_decompressed} bytes ({})",
            crate::units::fmt_size(max_decompressed)
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

/// Cap on the small files a user writes (config, web config, baseline): a YAML file
/// with thousands of targets is well under a MiB.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Reads all of `path` (a file, a FIFO, `/dev/stdin`, a device) into memory, refusing
/// more than `max_bytes`: a regular file by its size before reading, a stream once it
/// crosses the cap, so at most `max_bytes + 1` bytes are ever held. `flag` names what
/// raises the cap, for the error.
pub fn read_capped(path: &Path, max_bytes: u64, flag: &str) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("reading", path, e))?;
    read_capped_file(file, path, max_bytes, flag)
}

/// [`read_capped`] for a file the caller opened itself (for example inside a
/// container's root, where the path alone must not be followed); `path` names it in
/// errors.
pub fn read_capped_file(
    file: std::fs::File,
    path: &Path,
    max_bytes: u64,
    flag: &str,
) -> Result<Vec<u8>> {
    let too_big = |size: String| {
        let cap = crate::units::fmt_size(max_bytes);
        Error::io(
            "reading",
            path,
            std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                format!("{size} is over the input limit of {cap} ({max_bytes} bytes; {flag})"),
            ),
        )
    };
    let len = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    if let Some(len) = len
        && len > max_bytes
    {
        return Err(too_big(format!("the file ({len} bytes)")));
    }
    let mut out = Vec::with_capacity(len.map_or(0, |l| usize::try_from(l).unwrap_or(0)));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| Error::io("reading", path, e))?;
    if out.len() as u64 > max_bytes {
        return Err(too_big("the stream".to_string()));
    }
    Ok(out)
}

/// [`read_capped`] for a small text file the user writes (config, web config,
/// baseline): capped at [`MAX_CONFIG_BYTES`], UTF-8 required.
pub fn read_config_text(path: &Path) -> Result<String> {
    let bytes = read_capped(path, MAX_CONFIG_BYTES, "config and baseline files")?;
    String::from_utf8(bytes).map_err(|e| {
        Error::io(
            "reading",
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()),
        )
    })
}
