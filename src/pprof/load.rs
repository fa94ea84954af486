//! Loading a profile file or body whatever its form: gzipped or not, protobuf or
//! `heap?debug=1` text. Reading the file and gunzipping it under a cap are
//! [`crate::files`]' job.

use std::path::Path;

use super::profile::HeapProfile;
use crate::error::{Error, Result};
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
    match form_of(&plain) {
        Form::HeapText => Ok(crate::pprof::heap::parse_heap_estimate(&plain)?.profile),
        Form::MemStatsOnly => Err(Error::NotFormat {
            format: "heap?debug=1 text",
            reason: "only its '# runtime.MemStats' block, no 'heap profile:' line or records: \
                     save the whole /debug/pprof/heap?debug=1 (or /debug/pprof/heap)"
                .to_string(),
        }),
        Form::Proto => crate::pprof::proto_heap::decode_heap_profile(&plain, max_bytes),
    }
}

/// What a decompressed profile is, from its first bytes.
#[derive(Debug, PartialEq, Eq)]
enum Form {
    /// `heap?debug=1` text (also with CRLF line ends).
    HeapText,
    /// The text's MemStats trailer alone: text, with no profile in it.
    MemStatsOnly,
    /// Anything else: a protobuf `Profile` (whose decoder says when it is not one).
    Proto,
}

fn form_of(plain: &[u8]) -> Form {
    let start = plain.strip_prefix(b"\xef\xbb\xbf").unwrap_or(plain);
    let start = &start[start
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(start.len())..];
    if start.starts_with(b"heap profile:") {
        Form::HeapText
    } else if start.starts_with(b"# runtime.MemStats") {
        Form::MemStatsOnly
    } else {
        Form::Proto
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMSTATS: &str = "# runtime.MemStats\n# Alloc = 4657568\n# TotalAlloc = 4751696\n\
                            # Sys = 16816392\n# HeapAlloc = 4657568\n# NumGC = 3\n";

    #[test]
    fn a_memstats_only_file_is_told_as_text() {
        for body in [
            MEMSTATS.to_string(),
            MEMSTATS.replace('\n', "\r\n"),
            format!("\n\n{MEMSTATS}"),
        ] {
            let e = load_profile(body.as_bytes(), 1 << 20)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("runtime.MemStats") && !e.contains("protobuf"),
                "{e}"
            );
        }
    }

    #[test]
    fn crlf_text_profiles_read_as_their_lf_form() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        for f in ["go1.23/heap/heap_debug1.txt", "go1.26/heap/heap_debug1.txt"] {
            let lf = std::fs::read_to_string(root.join(f)).unwrap();
            let crlf = lf.replace('\n', "\r\n");
            let want = load_profile(lf.as_bytes(), 1 << 24).unwrap();
            let got = load_profile(crlf.as_bytes(), 1 << 24).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert!(got == want, "{f}: the CRLF profile differs");
            assert!(!want.samples.is_empty(), "{f}");
            let est = crate::pprof::heap::parse_heap_estimate(crlf.as_bytes()).unwrap();
            assert!(est.memstats.is_some(), "{f}: the CRLF trailer is read");
        }
    }
}
