//! Throughput of the `heap?debug=1` text parser and of the pprof-style estimate, on the
//! largest capture (go1.23/callsites, 1,216 records, ~2 MB once gunzipped); and of
//! `leakwatch top` on a 24.7 MB text profile next to `go tool pprof -top` on the same
//! file in the same run (the Go toolchain from `LEAKWATCH_BENCH_GO`, else
//! /opt/leakwatch-go/1.26/go, else `go` on PATH; skipped when none runs). And the
//! protobuf heap decoder (decoded as it downloads, into interned stacks) next to
//! decoding the whole message first, on a 30,000-record profile shaped like issue 23's.

use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leakwatch::analysis::diff::{TopOptions, top};
use leakwatch::pprof::heap::{parse_heap_estimate, parse_heap_text};
use leakwatch::pprof::load::{DEFAULT_MAX_INPUT_BYTES, load_profile_file};
use leakwatch::pprof::proto::{decode, heap_profile, synthetic_heap_profile};
use leakwatch::pprof::proto_heap::decode_heap_profile;
use prost::Message;

fn callsites_body() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/go1.23/callsites/heap_debug1.txt.gz");
    let gz = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut body = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut body)
        .expect("gunzip callsites fixture");
    body
}

/// The callsites capture's records 18 times over, each copy with its own package names
/// (`main.` -> `main7.`, ...) so stacks are distinct across copies, under one header and
/// one MemStats trailer: 24.7 MB, a big real-looking profile.
fn big_profile() -> PathBuf {
    let body = String::from_utf8(callsites_body()).expect("UTF-8 fixture");
    let (head, rest) = body.split_once('\n').expect("header");
    let (records, trailer) = rest.split_at(rest.find("# runtime.MemStats").unwrap_or(rest.len()));
    let mut out = String::with_capacity(26 << 20);
    out.push_str(head);
    out.push('\n');
    for k in 0..18 {
        out.push_str(&records.replace("\tmain.", &format!("\tmain{k}.")));
    }
    out.push_str(trailer);
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("heap_debug1_24.7MB.txt");
    std::fs::write(&path, out).expect("write the big profile");
    path
}

fn go_tool() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("LEAKWATCH_BENCH_GO").map(PathBuf::from),
        Some(PathBuf::from("/opt/leakwatch-go/1.26/go")),
        Some(PathBuf::from("go")),
    ];
    candidates.into_iter().flatten().find(|go| {
        Command::new(go)
            .args(["tool", "pprof", "-h"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    })
}

fn run_quiet(cmd: &mut Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    black_box(out.stdout.len());
}

fn heap_text(c: &mut Criterion) {
    let body = callsites_body();
    let parsed = parse_heap_text(&body).expect("callsites fixture parses");

    let mut group = c.benchmark_group("heap_text");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("parse_heap_text/callsites", |b| {
        b.iter(|| parse_heap_text(black_box(&body)).map(|h| h.records.len()))
    });
    group.bench_function("parse_heap_estimate/callsites", |b| {
        b.iter(|| parse_heap_estimate(black_box(&body)).map(|h| h.profile.samples.len()))
    });
    // Same byte count, so the figure compares directly with the parse.
    group.bench_function("estimate/callsites", |b| {
        b.iter(|| black_box(&parsed).estimate().map(|p| p.samples.len()))
    });
    group.finish();
}

/// `leakwatch top` and `go tool pprof -top` on the same 24.7 MB file, as processes
/// (start-up included), and the library half of `top` in process.
fn top_big_text(c: &mut Criterion) {
    let path = big_profile();
    let len = std::fs::metadata(&path).expect("big profile").len();
    let mut group = c.benchmark_group("top_text_24.7MB");
    group.throughput(Throughput::Bytes(len));
    group.sample_size(10);
    group.bench_function("load_and_top/in_process", |b| {
        b.iter(|| {
            let p = load_profile_file(&path, DEFAULT_MAX_INPUT_BYTES).expect("loads");
            top(&p, &TopOptions::default()).render().len()
        })
    });
    group.bench_function("leakwatch_top/process", |b| {
        b.iter(|| {
            run_quiet(
                Command::new(env!("CARGO_BIN_EXE_leakwatch"))
                    .arg("top")
                    .arg(&path),
            )
        })
    });
    match go_tool() {
        Some(go) => {
            group.bench_function("go_tool_pprof_top/process", |b| {
                b.iter(|| run_quiet(Command::new(&go).args(["tool", "pprof", "-top"]).arg(&path)))
            });
        }
        None => eprintln!("no Go toolchain: go tool pprof -top skipped"),
    }
    group.finish();
}

/// The protobuf heap profile (raw, 5.5 MB): streamed into compact tables, against the
/// whole `Profile` message decoded first.
fn heap_proto(c: &mut Criterion) {
    let body = synthetic_heap_profile(30_000).encode_to_vec();
    let mut group = c.benchmark_group("heap_proto_30k");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.sample_size(10);
    group.bench_function("decode_heap_profile", |b| {
        b.iter(|| {
            decode_heap_profile(black_box(&body), DEFAULT_MAX_INPUT_BYTES).map(|p| p.samples.len())
        })
    });
    group.bench_function("decode_then_heap_profile", |b| {
        b.iter(|| {
            decode(black_box(&body), DEFAULT_MAX_INPUT_BYTES)
                .and_then(|p| heap_profile(&p))
                .map(|p| p.samples.len())
        })
    });
    group.finish();
}

criterion_group!(benches, heap_text, top_big_text, heap_proto);
criterion_main!(benches);
