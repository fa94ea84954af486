//! Go build info read from real executables: leaky-service built by Go 1.19 and 1.26
//! (plain and stripped, on disk and through `/proc/PID/exe`), non-Go binaries, and
//! broken files; and how little of each file is read.

use std::cell::Cell;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use leakwatch::fleet::gobuild::{GoBuild, read_go_build, read_go_build_from};
use object::{Object, ObjectSection};

use crate::support::{LeakyService, build_leaky_service, build_leaky_service_with_env, toolchain};

/// A file reader that counts the bytes read through it.
struct Counting {
    file: std::fs::File,
    read: Rc<Cell<u64>>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

impl Seek for Counting {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.file.seek(pos)
    }
}

/// The build info and the bytes read to find it.
fn read_counted(path: &Path) -> (Option<GoBuild>, u64) {
    let read = Rc::new(Cell::new(0));
    let file = std::fs::File::open(path).unwrap();
    let counting = Counting {
        file,
        read: Rc::clone(&read),
    };
    let build = read_go_build_from(counting, path).unwrap_or_else(|e| panic!("{e}"));
    (build, read.get())
}

/// `-ldflags=-s -w` (Go 1.19's GOFLAGS cannot quote a space; there `-s` drops DWARF too).
fn stripped(version: &str) -> PathBuf {
    let tc = toolchain(version);
    let flags = if tc.minor() >= 21 {
        "'-ldflags=-s -w'"
    } else {
        "-ldflags=-s"
    };
    build_leaky_service_with_env(&tc, &[("GOFLAGS", flags)])
}

fn has_section(path: &Path, name: &str) -> bool {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    file.sections().any(|s| s.name() == Ok(name))
}

#[test]
fn go_builds_are_recognised_with_version_and_module() {
    let mut cases: Vec<(String, PathBuf, &str)> = Vec::new();
    for version in ["1.19", "1.26"] {
        let tc = toolchain(version);
        cases.push((format!("Go {version}"), build_leaky_service(&tc), version));
        let bin = stripped(version);
        assert!(
            !has_section(&bin, ".symtab") && !has_section(&bin, ".debug_info"),
            "{} still has symbols",
            bin.display()
        );
        cases.push((format!("Go {version} stripped"), bin, version));
    }
    // The section table removed, as sstrip does: found by searching the data segment.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(build_leaky_service(&toolchain("1.26"))).unwrap();
    bytes[0x28..0x30].fill(0); // e_shoff
    bytes[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
    let no_sections = dir.path().join("no-sections");
    std::fs::write(&no_sections, &bytes).unwrap();
    assert!(
        object::File::parse(&*bytes)
            .unwrap()
            .sections()
            .next()
            .is_none()
    );
    cases.push(("Go 1.26 without section table".into(), no_sections, "1.26"));
    for (what, bin, version) in &cases {
        let size = std::fs::metadata(bin).unwrap().len();
        let started = Instant::now();
        let (build, read) = read_counted(bin);
        let took = started.elapsed();
        let build = build.unwrap_or_else(|| panic!("{what}: not recognised as Go"));
        assert!(
            build.version.starts_with(&format!("go{version}."))
                || build.version == format!("go{version}"),
            "{what}: {build:?}"
        );
        assert_eq!(build.main_path.as_deref(), Some("leaky-service"), "{what}");
        assert_eq!(
            build.package_path.as_deref(),
            Some("leaky-service"),
            "{what}"
        );
        // Headers, section names and the build info section (or the first 64 KiB of
        // the data segment): never the whole file.
        assert!(read < 80 << 10, "{what}: read {read} of {size} bytes");
        eprintln!(
            "{what}: {} in {:?}, {read} of {size} bytes read",
            build.version, took
        );
        assert_eq!(read_go_build(bin).unwrap(), Some(build), "{what}");
    }
}

#[test]
fn a_running_go_process_is_read_through_proc_pid_exe() {
    let tc = toolchain("1.26");
    let svc = LeakyService::start(&tc, &[]);
    let exe = PathBuf::from(format!("/proc/{}/exe", svc.pid()));
    let build = read_go_build(&exe).unwrap().expect("a Go process");
    assert!(build.version.starts_with("go1.26"), "{build:?}");
    assert_eq!(build.main_path.as_deref(), Some("leaky-service"));
    // This test binary is Rust.
    assert_eq!(read_go_build(Path::new("/proc/self/exe")).unwrap(), None);
}

#[test]
fn other_executables_are_not_go() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    let random = dir.path().join("random");
    std::fs::write(&random, noise(1 << 16, 7)).unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let cases: [(&str, PathBuf); 5] = [
        ("/bin/ls", PathBuf::from("/bin/ls")),
        (
            "leakwatch (Rust)",
            PathBuf::from(env!("CARGO_BIN_EXE_leakwatch")),
        ),
        ("a shell script", script),
        ("random bytes", random),
        ("an empty file", empty),
    ];
    for (what, path) in cases {
        let (build, read) = read_counted(&path);
        assert_eq!(build, None, "{what}");
        assert!(read <= 16 << 10, "{what}: read {read} bytes");
        eprintln!("{what}: not Go, {read} bytes read");
    }
}

#[test]
fn broken_files_are_errors_naming_the_file() {
    let go = build_leaky_service(&toolchain("1.19"));
    let bytes = std::fs::read(&go).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, data: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    };
    let mut elf_noise = bytes[..16].to_vec();
    elf_noise.extend(noise(4096, 11));
    let mut bad_class = b"\x7fELF\x07".to_vec();
    bad_class.resize(64, 0);
    // The build info blob's version length an endless uvarint.
    let mut garbled = bytes.clone();
    let at = garbled
        .windows(14)
        .position(|w| w == b"\xff Go buildinf:")
        .unwrap();
    garbled[at + 32..at + 42].fill(0xff);
    let cases = [
        (
            "half a Go binary",
            write("half", &bytes[..bytes.len() / 2]),
            "not a readable ELF executable",
        ),
        (
            "a Go binary cut after its headers",
            write("head", &bytes[..100]),
            "not a readable ELF executable",
        ),
        (
            "ELF magic then noise",
            write("noise", &elf_noise),
            "not a readable ELF executable",
        ),
        (
            "ELF magic, no class",
            write("class", &bad_class),
            "no valid ELF class",
        ),
        (
            "a garbled build info",
            write("garbled", &garbled),
            "Go build info version: length overflows",
        ),
        (
            "a directory",
            dir.path().to_path_buf(),
            "reading executable",
        ),
        (
            "a missing file",
            dir.path().join("missing"),
            "opening executable",
        ),
    ];
    for (what, path, want) in cases {
        let err = read_go_build(&path).expect_err(what).to_string();
        assert!(
            err.contains(want) && err.contains(&*path.to_string_lossy()),
            "{what}: {err}"
        );
    }
}

/// Deterministic noise (xorshift), so a failure repeats.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// No pre-1.18 toolchain is installed, so the pointer format is made from a Go 1.19
/// binary: its inline blob is rewritten the way Go 1.13-1.17 laid it out (two pointers
/// to Go string headers `{data, len}`, the headers placed after the blob, the data the
/// blob's own string bytes), so the reader follows real virtual addresses through the
/// binary's real program headers.
#[test]
fn the_pre_1_18_pointer_format_is_read_through_the_segments() {
    let go = build_leaky_service(&toolchain("1.19"));
    let want = read_go_build(&go).unwrap().expect("Go 1.19");
    let mut bytes = std::fs::read(&go).unwrap();
    let (offset, addr) = {
        let file = object::File::parse(&*bytes).unwrap();
        let s = file.section_by_name(".go.buildinfo").unwrap();
        (s.file_range().unwrap().0 as usize, s.address())
    };
    let uvarint = |at: usize| -> (usize, usize) {
        let (mut v, mut shift, mut i) = (0usize, 0, at);
        loop {
            let b = bytes[i];
            i += 1;
            v |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                return (v, i);
            }
        }
    };
    let (vlen, vdata) = uvarint(offset + 32);
    let (mlen, mdata) = uvarint(vdata + vlen);
    let headers = (mdata + mlen).next_multiple_of(8);
    let va = |file_off: usize| addr + (file_off - offset) as u64;
    let put = |bytes: &mut Vec<u8>, at: usize, v: u64| {
        bytes[at..at + 8].copy_from_slice(&v.to_le_bytes())
    };
    put(&mut bytes, headers, va(vdata));
    put(&mut bytes, headers + 8, vlen as u64);
    put(&mut bytes, headers + 16, va(mdata));
    put(&mut bytes, headers + 24, mlen as u64);
    put(&mut bytes, offset + 16, va(headers));
    put(&mut bytes, offset + 24, va(headers + 16));
    bytes[offset + 15] = 0; // flags: pointers, little-endian
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("pointer-format");
    std::fs::write(&old, &bytes).unwrap();
    assert_eq!(read_go_build(&old).unwrap(), Some(want));

    // A pointer outside every loaded segment is an error, not a guess.
    put(&mut bytes, offset + 16, 0x10);
    std::fs::write(&old, &bytes).unwrap();
    let err = read_go_build(&old).unwrap_err().to_string();
    assert!(
        err.contains("address 0x10 is in no loaded segment"),
        "{err}"
    );
}
