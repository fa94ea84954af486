//! Fuzzes the protobuf profile decoders (gzip or raw) with a small decompression cap: the
//! whole message read as a heap and as a goroutine profile, and the heap profile decoded
//! as a scrape reads it (`HeapProtoReader`, whole and fed in pieces sized by the first
//! byte), which must give the same profile or error whatever the pieces, and the whole
//! message's profile whenever both decode.
#![no_main]

use leakwatch::pprof::heap::ChunkReader;
use leakwatch::pprof::proto::{decode, goroutine_profile, heap_profile};
use leakwatch::pprof::proto_heap::{HeapProtoReader, decode_heap_profile};
use libfuzzer_sys::fuzz_target;

/// Small enough that a gzip bomb is cut off fast, big enough for the fixtures.
const MAX_DECOMPRESSED: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut whole = None;
    if let Ok(p) = decode(data, MAX_DECOMPRESSED) {
        if let Ok(h) = heap_profile(&p) {
            let _ = h.totals();
            whole = Some(h);
        }
        let _ = goroutine_profile(&p);
    }
    let streamed = decode_heap_profile(data, MAX_DECOMPRESSED);
    let size = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut reader = HeapProtoReader::new(MAX_DECOMPRESSED);
    let pieces = data
        .chunks(size)
        .try_for_each(|c| reader.feed(c))
        .and_then(|()| reader.finish());
    match (&streamed, &pieces) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "fed in pieces of {size}: profiles differ"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "errors differ"),
        _ => panic!("fed in pieces of {size}: one read failed"),
    }
    if let (Some(w), Ok(s)) = (&whole, &streamed) {
        assert_eq!(w, s, "the streamed profile differs from the whole message's");
    }
});
