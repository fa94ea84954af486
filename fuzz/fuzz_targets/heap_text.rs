//! Fuzzes the `heap?debug=1` text parsers and everything leakwatch does with their
//! result: estimates, totals, and the `top` report over the estimated profile. The
//! streaming reader the exporter scrapes with (`parse_heap_estimate`, and the same fed
//! in pieces as a download arrives) is checked against the record-keeping one: the same
//! estimate, MemStats and error, byte for byte.
#![no_main]

use leakwatch::analysis::diff::{TopOptions, top};
use leakwatch::pprof::heap::{HeapEstimateReader, parse_heap_estimate, parse_heap_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let kept = parse_heap_text(data);
    let streamed = parse_heap_estimate(data);
    // As a scrape reads it: in pieces (sized by the first byte) as it downloads.
    let size = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut reader = HeapEstimateReader::new();
    let pieces = data
        .chunks(size)
        .try_for_each(|c| reader.feed(c))
        .and_then(|()| reader.finish());
    match (&streamed, &pieces) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "fed in pieces of {size}: estimates differ"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "errors differ"),
        _ => panic!("fed in pieces of {size}: one read failed"),
    }
    match (&kept, &streamed) {
        (Ok(text), Ok(est)) => {
            let profile = text.estimate().expect("a kept body's estimate");
            assert_eq!(profile, est.profile, "estimates differ");
            assert_eq!(text.header, est.header, "headers differ");
            assert_eq!(text.memstats, est.memstats, "MemStats differ");
            let _ = profile.totals();
            let _ = top(&profile, &TopOptions::default());
            if let Some(m) = &text.memstats {
                let _ = m.last_pause_ns();
                let _ = m.max_pause_ns();
            }
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "errors differ"),
        _ => panic!(
            "one reader failed: kept {:?}, streamed {:?}",
            kept.as_ref().err(),
            streamed.as_ref().err()
        ),
    }
});
