//! Throughput of the `heap?debug=1` text parser and of the pprof-style estimate, on the
//! largest capture (go1.23/callsites, 1,216 records, ~2 MB once gunzipped).

use std::hint::black_box;
use std::io::Read;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leakwatch::pprof::heap::parse_heap_text;

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

fn heap_text(c: &mut Criterion) {
    let body = callsites_body();
    let parsed = parse_heap_text(&body).expect("callsites fixture parses");

    let mut group = c.benchmark_group("heap_text");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("parse_heap_text/callsites", |b| {
        b.iter(|| parse_heap_text(black_box(&body)).map(|h| h.records.len()))
    });
    // Same byte count, so the figure compares directly with the parse.
    group.bench_function("estimate/callsites", |b| {
        b.iter(|| black_box(&parsed).estimate().samples.len())
    });
    group.finish();
}

criterion_group!(benches, heap_text);
criterion_main!(benches);
