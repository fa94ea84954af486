//! Loading a profile file or body whatever its form: gzipped or not, protobuf or
//! `heap?debug=1` text. Reading the file and gunzipping it under a cap are
//! [`crate::files`]' job.

use std::path::Path;

use super::profile::HeapProfile;
use crate::error::Result;
use crate::files::{gunzip_capped, read_capped};

/// Default cap on a profile read by `top` and `diff` (`--max-input-bytes`), and on its
/// decompressed size: the biggest heap profiles seen are tens of MB.
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 256 << 20;

/// Reads a profile file with [`read_capped`] and loads it with [`load_profile`]: the
/// file and its decompressed form are each at most `max_bytes`.
pub fn load_profile_file(path: &Path, max_bytes: u64) -> Result<HeapProfile> {
    let bytes = read_capped(path, max_bytes, "raise it with --max-input-bytes")?;
    load_profile(&bytes, max_bytes)
}

/// Reads a heap profile in whatever form it comes: gzipped or raw protobuf, or
/// `heap?debug=1` text (optionally gzipped), whose raw counts are scaled the
/// way pprof does. `max_bytes` caps the decompressed size.
pub fn load_profile(bytes: &[u8], max_bytes: u64) -> Result<HeapProfile> {
    let plain = gunzip_capped(bytes, max_bytes)?;
    if plain.starts_with(b"heap profile:") {
        return Ok(crate::pprof::heap::parse_heap_estimate(&plain)?.profile);
    }
    let p = crate::pprof::proto::decode(&plain, max_bytes)?;
    crate::pprof::proto::heap_profile(&p)
}
