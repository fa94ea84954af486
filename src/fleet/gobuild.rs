//! Whether an executable is a Go program, and which Go version and main module built it:
//! the Go build info blob (`\xff Go buildinf:`) read from an ELF file with the `object`
//! crate, as `go version -m` and Go's `debug/buildinfo` read it.
//!
//! Only what is needed is read, through the section table: the ELF header, the program
//! and section headers, the section names and the `.go.buildinfo` section (for the
//! pre-1.18 pointer format also the two strings it points at). For a 10 MB Go binary
//! that is a few kilobytes, never the whole file; every read counts against
//! [`MAX_READ_BYTES`], so a garbled header cannot make it read (or allocate) more.
//!
//! A section table without `.go.buildinfo` is not Go (Go's linkers always emit it).
//! Without a section table (removed by `sstrip` and the like) the first writable,
//! non-executable `PT_LOAD` segment is searched, as Go does, up to [`MAX_SEARCH_BYTES`].

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;

use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};
use object::{Endianness, FileKind, ReadCache, elf};

use crate::error::{Error, Result};

/// A Go program's build info: its toolchain and what it was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoBuild {
    /// The toolchain, as `runtime.Version()` says it: `go1.19.8`, `go1.26.0`.
    pub version: String,
    /// The main module's path (`mod` line of the module info), e.g.
    /// `github.com/acme/payments`; None when built outside a module (`go build x.go`)
    /// or with the module info left out.
    pub main_path: Option<String>,
    /// The main package's import path (`path` line), e.g. `github.com/acme/payments/cmd/api`.
    pub package_path: Option<String>,
}

/// The most bytes read from one executable, all reads together.
pub const MAX_READ_BYTES: u64 = 4 << 20;
/// The most bytes of a data segment searched for the build info magic when there is
/// no section table (Go's linker puts the blob at the segment's start).
pub const MAX_SEARCH_BYTES: u64 = 64 << 10;
/// The most bytes of one build info string (version or module info) accepted.
const MAX_STRING_BYTES: u64 = 1 << 20;

const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const ALIGN: usize = 16;
/// Flag bit 1 of the header: version and module info follow the header inline
/// (Go 1.18+); otherwise two pointers to Go string headers follow the flags.
const FLAG_INLINE: u8 = 0x2;
/// Flag bit 0 of the pre-1.18 header: the pointers are big-endian.
const FLAG_BIG_ENDIAN: u8 = 0x1;

/// Reads the Go build info of the executable at `path` (in practice `/proc/PID/exe`,
/// which opens the file the process runs even when it was replaced or deleted since;
/// opening it needs ptrace read access to the process, as for its namespaces).
///
/// `Ok(None)`: not a Go program (not ELF, such as a script, or ELF without Go build
/// info, such as `/bin/ls` or a Rust binary). `Err`: the file cannot be read, or is
/// ELF but broken (truncated, garbled headers, a build info blob that does not parse).
pub fn read_go_build(path: &Path) -> Result<Option<GoBuild>> {
    let file = File::open(path).map_err(|e| Error::io("opening executable", path, e))?;
    read_go_build_from(file, path)
}

/// [`read_go_build`] on an open reader; `path` names it in errors.
pub fn read_go_build_from<R: Read + Seek>(mut reader: R, path: &Path) -> Result<Option<GoBuild>> {
    let mut ident = [0u8; 16];
    let got = read_up_to(&mut reader, &mut ident)
        .map_err(|e| Error::io("reading executable", path, e))?;
    if got < 4 || ident[..4] != elf::ELFMAG {
        return Ok(None);
    }
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("reading executable", path, e))?;
    let budget = Budget::default();
    let cache = ReadCache::new(Budgeted {
        inner: reader,
        budget: budget.clone(),
    });
    let found = match FileKind::parse(&cache) {
        Ok(FileKind::Elf32) => from_elf::<elf::FileHeader32<Endianness>, _>(&cache),
        Ok(FileKind::Elf64) => from_elf::<elf::FileHeader64<Endianness>, _>(&cache),
        Ok(_) | Err(_) => Err("an ELF magic but no valid ELF class".to_string()),
    };
    let bad = |reason: String| {
        if let Some(e) = budget.error.take() {
            return Error::io("reading executable", path, e);
        }
        Error::BadFile {
            path: path.to_path_buf(),
            reason: format!("not a readable ELF executable: {reason}"),
        }
    };
    let found = found.map_err(bad)?;
    let Some(blob) = found else {
        return Ok(None);
    };
    let version = blob.version;
    if version.is_empty() {
        return Err(bad("Go build info without a version".into()));
    }
    let (package_path, main_path) = parse_modinfo(&blob.modinfo);
    Ok(Some(GoBuild {
        version,
        main_path,
        package_path,
    }))
}

/// The two strings of a build info blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildStrings {
    pub version: String,
    /// The module info with its framing sentinels removed; empty if absent.
    pub modinfo: String,
}

/// What the build info header says; `Pointers` still needs the strings it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildHeader {
    /// Go 1.18+: the strings follow the header, each a uvarint length and its bytes.
    Inline(BuildStrings),
    /// Before Go 1.18: virtual addresses of two Go string headers `{data, len}`.
    Pointers {
        ptr_size: usize,
        big_endian: bool,
        version_at: u64,
        modinfo_at: u64,
    },
}

/// Finds the build info header in `data` (at a 16-byte aligned offset, as the linker
/// places it) and decodes it. `Ok(None)`: no magic, not Go. `Err`: the magic is there
/// but what follows is broken.
pub fn parse_build_header(data: &[u8]) -> Result<Option<BuildHeader>, String> {
    let Some(at) = find_magic(data) else {
        return Ok(None);
    };
    let header = &data[at..];
    if header.len() < HEADER_LEN {
        return Err(format!(
            "Go build info header cut short: {} of {HEADER_LEN} bytes",
            header.len()
        ));
    }
    let ptr_size = usize::from(header[14]);
    let flags = header[15];
    if flags & FLAG_INLINE != 0 {
        let (version, rest) = decode_string(&header[HEADER_LEN..], "version")?;
        let (modinfo, _) = decode_string(rest, "module info")?;
        return Ok(Some(BuildHeader::Inline(BuildStrings {
            version: String::from_utf8_lossy(version).into_owned(),
            modinfo: unframe_modinfo(modinfo),
        })));
    }
    if ptr_size != 4 && ptr_size != 8 {
        return Err(format!(
            "Go build info pointer size {ptr_size} (not 4 or 8)"
        ));
    }
    let big_endian = flags & FLAG_BIG_ENDIAN != 0;
    let word = |at: usize| read_word(&header[at..at + ptr_size], big_endian);
    Ok(Some(BuildHeader::Pointers {
        ptr_size,
        big_endian,
        version_at: word(16),
        modinfo_at: word(16 + ptr_size),
    }))
}

/// The main package path and main module path from the module info text
/// (`path\t<pkg>` and `mod\t<module>\t<version>\t<sum>` lines).
pub fn parse_modinfo(modinfo: &str) -> (Option<String>, Option<String>) {
    let field = |key: &str| {
        modinfo.lines().find_map(|line| {
            let mut parts = line.split('\t');
            (parts.next() == Some(key))
                .then(|| parts.next().unwrap_or("").trim().to_string())
                .filter(|v| !v.is_empty())
        })
    };
    (field("path"), field("mod"))
}

/// Module info is framed by 16-byte sentinels and ends with a newline before the last
/// one; anything else carries no module info (Go's `debug/buildinfo` rule).
fn unframe_modinfo(b: &[u8]) -> String {
    if b.len() >= 33 && b[b.len() - 17] == b'\n' {
        String::from_utf8_lossy(&b[16..b.len() - 16]).into_owned()
    } else {
        String::new()
    }
}

fn find_magic(data: &[u8]) -> Option<usize> {
    (0..data.len())
        .step_by(ALIGN)
        .find(|&at| data[at..].starts_with(MAGIC))
}

/// A uvarint length and that many bytes: the inline string encoding.
fn decode_string<'a>(data: &'a [u8], what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    let (mut len, mut shift, mut used) = (0u64, 0u32, 0usize);
    loop {
        let Some(&byte) = data.get(used) else {
            return Err(format!("Go build info {what}: length cut short"));
        };
        used += 1;
        if shift > 63 {
            return Err(format!("Go build info {what}: length overflows"));
        }
        len |= u64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let rest = &data[used..];
    match usize::try_from(len) {
        Ok(len) if len <= rest.len() => Ok((&rest[..len], &rest[len..])),
        _ => Err(format!(
            "Go build info {what}: {len} bytes announced, {} left",
            rest.len()
        )),
    }
}

fn read_word(b: &[u8], big_endian: bool) -> u64 {
    let mut v = 0u64;
    for i in 0..b.len() {
        let byte = if big_endian { b[i] } else { b[b.len() - 1 - i] };
        v = (v << 8) | u64::from(byte);
    }
    v
}

/// The build info of a parsed ELF file; `Err` describes what is broken.
fn from_elf<'d, Elf, R>(data: R) -> Result<Option<BuildStrings>, String>
where
    Elf: FileHeader<Endian = Endianness>,
    R: object::ReadRef<'d>,
{
    let e = |e: object::Error| e.to_string();
    let header = Elf::parse(data).map_err(e)?;
    let endian = header.endian().map_err(e)?;
    let segments = header.program_headers(endian, data).map_err(e)?;
    let sections = header.sections(endian, data).map_err(e)?;
    let read = |offset: u64, len: u64| {
        data.read_bytes_at(offset, len)
            .map_err(|()| format!("cannot read {len} bytes at offset {offset}"))
    };
    let region = match sections.section_by_name(endian, b".go.buildinfo") {
        Some((_, s)) if s.sh_type(endian) != elf::SHT_NOBITS => {
            let (offset, size) = s.file_range(endian).ok_or("empty .go.buildinfo")?;
            read(offset, size.min(MAX_STRING_BYTES + HEADER_LEN as u64))?
        }
        Some(_) => return Err(".go.buildinfo has no bytes in the file".into()),
        // Go's linkers (internal and external) always emit the section: a section
        // table without it is not Go.
        None if !sections.is_empty() => return Ok(None),
        None => match segments.iter().find(|p| {
            p.p_type(endian) == elf::PT_LOAD
                && p.p_flags(endian) & (elf::PF_X | elf::PF_W) == elf::PF_W
        }) {
            Some(p) => {
                let (offset, size) = p.file_range(endian);
                read(offset, size.min(MAX_SEARCH_BYTES))?
            }
            None => return Ok(None),
        },
    };
    match parse_build_header(region)? {
        None => Ok(None),
        Some(BuildHeader::Inline(strings)) => Ok(Some(strings)),
        Some(BuildHeader::Pointers {
            ptr_size,
            big_endian,
            version_at,
            modinfo_at,
        }) => {
            // A Go string header {data, len}, then its bytes, each found through the
            // loadable segment holding that virtual address.
            let at_address = |addr: u64, len: u64| -> Result<&'d [u8], String> {
                let p = segments
                    .iter()
                    .find(|p| {
                        let start: u64 = p.p_vaddr(endian).into();
                        let filesz: u64 = p.p_filesz(endian).into();
                        p.p_type(endian) == elf::PT_LOAD
                            && addr >= start
                            && addr.saturating_add(len) <= start.saturating_add(filesz)
                    })
                    .ok_or_else(|| format!("address {addr:#x} is in no loaded segment"))?;
                let offset: u64 = p.p_offset(endian).into();
                let vaddr: u64 = p.p_vaddr(endian).into();
                read(offset + (addr - vaddr), len)
            };
            let string = |at: u64, what: &str| -> Result<&'d [u8], String> {
                let w = ptr_size as u64;
                let hdr = at_address(at, 2 * w)?;
                let ptr = read_word(&hdr[..ptr_size], big_endian);
                let len = read_word(&hdr[ptr_size..], big_endian);
                if len > MAX_STRING_BYTES {
                    return Err(format!("Go build info {what}: {len} bytes"));
                }
                at_address(ptr, len)
            };
            Ok(Some(BuildStrings {
                version: String::from_utf8_lossy(string(version_at, "version")?).into_owned(),
                modinfo: unframe_modinfo(string(modinfo_at, "module info")?),
            }))
        }
    }
}

/// Fills `buf` as far as the reader goes; the count read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Bytes read so far and the first I/O error, shared with the reader inside the cache
/// (which turns every error into `()`).
#[derive(Default, Clone)]
struct Budget {
    used: Rc<Cell<u64>>,
    error: Rc<Cell<Option<io::Error>>>,
}

/// A reader that stops at [`MAX_READ_BYTES`] and remembers its first error.
struct Budgeted<R> {
    inner: R,
    budget: Budget,
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let used = self.budget.used.get();
        if used.saturating_add(buf.len() as u64) > MAX_READ_BYTES {
            let message = format!("would read more than {MAX_READ_BYTES} bytes");
            self.budget
                .error
                .set(Some(io::Error::other(message.clone())));
            return Err(io::Error::other(message));
        }
        let result = self.inner.read(buf);
        match &result {
            Ok(n) => self.budget.used.set(used + *n as u64),
            Err(e) => {
                let first = self.budget.error.take();
                self.budget.error.set(Some(
                    first.unwrap_or_else(|| io::Error::new(e.kind(), e.to_string())),
                ));
            }
        }
        result
    }
}

impl<R: Seek> Seek for Budgeted<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An inline-format (Go 1.18+) blob: header, then uvarint-prefixed strings.
    fn inline_blob(version: &str, modinfo: &[u8]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend([8, FLAG_INLINE]);
        b.resize(HEADER_LEN, 0);
        for s in [version.as_bytes(), modinfo] {
            let mut n = s.len();
            while n >= 0x80 {
                b.push((n as u8) | 0x80);
                n >>= 7;
            }
            b.push(n as u8);
            b.extend_from_slice(s);
        }
        b
    }

    fn framed(text: &str) -> Vec<u8> {
        let mut m = vec![0x30u8; 16];
        m.extend_from_slice(text.as_bytes());
        m.extend([0xf9u8; 16]);
        m
    }

    const MODINFO: &str = "path\texample.com/leaky/cmd/svc\nmod\texample.com/leaky\t(devel)\t\n";

    #[test]
    fn build_headers() {
        let long = "x".repeat(300); // a two-byte uvarint length
        let mut padded = vec![0u8; 48];
        padded.extend(inline_blob("go1.26.0", &framed(MODINFO)));
        let mut misaligned = vec![0u8; 8];
        misaligned.extend(inline_blob("go1.26.0", b""));
        let mut pointers = MAGIC.to_vec();
        pointers.extend([8, 0]);
        pointers.extend(0x4000u64.to_le_bytes());
        pointers.extend(0x4010u64.to_le_bytes());
        let mut pointers_be = MAGIC.to_vec();
        pointers_be.extend([4, FLAG_BIG_ENDIAN]);
        pointers_be.extend(0x1000u32.to_be_bytes());
        pointers_be.extend(0x1008u32.to_be_bytes());
        pointers_be.resize(HEADER_LEN, 0);
        let inline = |v: &str, m: &str| {
            Ok(Some(BuildHeader::Inline(BuildStrings {
                version: v.into(),
                modinfo: m.into(),
            })))
        };
        type Want = Result<Option<BuildHeader>, String>;
        let cases: Vec<(&str, Vec<u8>, Want)> = vec![
            ("empty", vec![], Ok(None)),
            ("no magic", b"\x7fELF not go at all".repeat(20), Ok(None)),
            ("misaligned magic", misaligned, Ok(None)),
            ("inline, module info", padded, inline("go1.26.0", MODINFO)),
            (
                "inline, no module info",
                inline_blob("go1.19.8", b""),
                inline("go1.19.8", ""),
            ),
            (
                "inline, unframed module info",
                inline_blob("go1.21.0", b"path\tx\n"),
                inline("go1.21.0", ""),
            ),
            (
                "inline, long version",
                inline_blob(&long, b""),
                inline(&long, ""),
            ),
            (
                "pointers, little-endian",
                pointers,
                Ok(Some(BuildHeader::Pointers {
                    ptr_size: 8,
                    big_endian: false,
                    version_at: 0x4000,
                    modinfo_at: 0x4010,
                })),
            ),
            (
                "pointers, big-endian 32-bit",
                pointers_be,
                Ok(Some(BuildHeader::Pointers {
                    ptr_size: 4,
                    big_endian: true,
                    version_at: 0x1000,
                    modinfo_at: 0x1008,
                })),
            ),
            (
                "header cut short",
                MAGIC.to_vec(),
                Err("Go build info header cut short: 14 of 32 bytes".into()),
            ),
            (
                "string cut short",
                inline_blob("go1.26.0", b"")[..36].to_vec(),
                Err("Go build info version: 8 bytes announced, 3 left".into()),
            ),
            (
                "length cut short",
                inline_blob("", b"")[..HEADER_LEN].to_vec(),
                Err("Go build info version: length cut short".into()),
            ),
        ];
        for (name, data, want) in cases {
            assert_eq!(parse_build_header(&data), want, "{name}");
        }
        let mut bad_ptr = MAGIC.to_vec();
        bad_ptr.extend([3, 0]);
        bad_ptr.resize(HEADER_LEN, 0);
        assert_eq!(
            parse_build_header(&bad_ptr),
            Err("Go build info pointer size 3 (not 4 or 8)".into())
        );
        let mut overflow = MAGIC.to_vec();
        overflow.extend([8, FLAG_INLINE]);
        overflow.resize(HEADER_LEN, 0);
        overflow.extend([0xff; 12]);
        assert_eq!(
            parse_build_header(&overflow),
            Err("Go build info version: length overflows".into())
        );
    }

    #[test]
    fn modinfo_lines() {
        let cases = [
            (
                MODINFO,
                Some("example.com/leaky/cmd/svc"),
                Some("example.com/leaky"),
            ),
            (
                "path\tcommand-line-arguments\nbuild\t-compiler=gc\n",
                Some("command-line-arguments"),
                None,
            ),
            ("", None, None),
            ("mod\t\t\npath\n", None, None),
            (
                "dep\tgolang.org/x/net\tv0.1.0\nmod\tm\tv1\n",
                None,
                Some("m"),
            ),
        ];
        for (text, path, module) in cases {
            let got = parse_modinfo(text);
            assert_eq!(
                got,
                (path.map(String::from), module.map(String::from)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn parsers_never_panic_on_any_input() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..400 {
            let mut data = MAGIC.to_vec();
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                data.push(seed as u8);
            }
            let _ = parse_build_header(&data);
            let _ = parse_modinfo(&String::from_utf8_lossy(&data));
        }
    }
}
