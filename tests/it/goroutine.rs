//! Goroutine parsers on the captured fixtures: `debug=1` text, `debug=2`
//! tracebacks, the protobuf profile, state classification and its cross-checks.

use std::collections::BTreeMap;
use std::path::PathBuf;

use leakwatch::pprof::GoroutineProfile;
use leakwatch::pprof::goroutine::{
    GoroutineProfileKind, GoroutineState, count_by_state, count_tracebacks_by_state,
    http_client_connections, parse_goroutine_text, parse_goroutine_traceback, state_from_stack,
    state_from_wait_reason,
};
use leakwatch::pprof::proto;

const MAX: u64 = 64 << 20;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn text_profile(rel: &str) -> GoroutineProfile {
    parse_goroutine_text(&read(rel)).unwrap().to_profile()
}

fn proto_profile(rel: &str) -> GoroutineProfile {
    proto::goroutine_profile(&proto::decode(&read(rel), MAX).unwrap()).unwrap()
}

fn count_fn(p: &GoroutineProfile, func: &str) -> u64 {
    p.records
        .iter()
        .filter(|r| r.stack.iter().any(|f| f == func))
        .map(|r| r.count)
        .sum()
}

fn labelled(p: &GoroutineProfile) -> u64 {
    p.records
        .iter()
        .filter(|r| !r.labels.is_empty())
        .map(|r| r.count)
        .sum()
}

/// (file, kind, total, records, goroutines with labels, in main.waitForReply)
#[test]
fn debug1_text_fixtures() {
    use GoroutineProfileKind::*;
    let cases: &[(&str, GoroutineProfileKind, u64, usize, u64, u64)] = &[
        (
            "go1.19/blocked/goroutine_debug1.txt",
            Goroutine,
            40,
            15,
            0,
            0,
        ),
        (
            "go1.19/goroutine/goroutine_debug1.txt",
            Goroutine,
            309,
            6,
            102,
            305,
        ),
        (
            "go1.19/httpclient/goroutine_debug1.txt",
            Goroutine,
            188,
            8,
            0,
            0,
        ),
        (
            "go1.23/blocked/goroutine_debug1.txt",
            Goroutine,
            40,
            15,
            0,
            0,
        ),
        (
            "go1.23/goroutine/goroutine_debug1.txt",
            Goroutine,
            309,
            6,
            102,
            305,
        ),
        (
            "go1.23/long-blocked/goroutine_debug1.txt",
            Goroutine,
            183,
            23,
            9,
            35,
        ),
        (
            "go1.26/goroutine/goroutine_debug1.txt",
            Goroutine,
            309,
            6,
            102,
            305,
        ),
        (
            "go1.26/long-blocked/goroutine_debug1.txt",
            Goroutine,
            76,
            18,
            18,
            35,
        ),
        (
            "go1.26-trimpath/combined/goroutine_debug1.txt",
            Goroutine,
            512,
            13,
            32,
            126,
        ),
        (
            "go1.26-leakprof/goroutine/goroutineleak_debug1.txt",
            GoroutineLeak,
            180,
            2,
            90,
            180,
        ),
        (
            "go1.26-leakprof/blocked/goroutineleak_debug1.txt",
            GoroutineLeak,
            15,
            5,
            0,
            0,
        ),
    ];
    for &(rel, kind, total, records, with_labels, wait_for_reply) in cases {
        let t = parse_goroutine_text(&read(rel)).unwrap();
        assert_eq!(t.kind, kind, "{rel}");
        assert_eq!(t.total, total, "{rel}");
        assert_eq!(t.records.len(), records, "{rel}");
        assert_eq!(
            t.records.iter().map(|r| r.count).sum::<u64>(),
            total,
            "{rel}"
        );
        let p = t.to_profile();
        assert_eq!(p.total, total, "{rel}");
        assert_eq!(labelled(&p), with_labels, "{rel}");
        assert_eq!(count_fn(&p, "main.waitForReply"), wait_for_reply, "{rel}");
    }
}

#[test]
fn debug1_record_details() {
    let t = parse_goroutine_text(&read("go1.23/blocked/goroutine_debug1.txt")).unwrap();
    let first = &t.records[0];
    assert_eq!(first.count, 6);
    assert_eq!(first.addrs.len(), 10);
    assert_eq!(first.addrs[0], 0x47198e);
    assert_eq!(first.frames.len(), 7);
    let f = &first.frames[0];
    assert_eq!(f.pc, 0x470c84);
    assert_eq!(
        f.function.as_deref(),
        Some("internal/poll.runtime_pollWait")
    );
    assert_eq!(
        f.file.as_deref(),
        Some("/usr/lib/go-1.23/src/runtime/netpoll.go")
    );
    assert_eq!(f.line, Some(351));
    // "1 @ 0x4797a1": a goroutine not started yet, no frame printed.
    let last = t.records.last().unwrap();
    assert_eq!((last.count, last.frames.len()), (1, 0));

    let t = parse_goroutine_text(&read("go1.19/goroutine/goroutine_debug1.txt")).unwrap();
    let with_labels = t.records.iter().find(|r| !r.labels.is_empty()).unwrap();
    assert_eq!(
        with_labels.labels,
        vec![
            ("handler".to_string(), "/api/orders".to_string()),
            ("tenant".to_string(), "acme".to_string())
        ]
    );
    // -trimpath: module-relative file names.
    let t = parse_goroutine_text(&read("go1.26-trimpath/combined/goroutine_debug1.txt")).unwrap();
    assert!(
        t.records
            .iter()
            .flat_map(|r| &r.frames)
            .any(|f| f.file.as_deref() == Some("leakyapp/main.go"))
    );
}

#[test]
fn debug1_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "not this format"),
        (b"<html>", "not this format"),
        (
            b"heap profile: 1: 2 [3: 4] @ heap/1048576\n",
            "not this format",
        ),
        (b"goroutine profile: total x\n", "line 1: bad total"),
        (b"goroutine profile: total 1\n1 0x1\n", "line 2"),
        (
            b"goroutine profile: total 1\n1 @ 0x1\n#\t0x1\tmain.f\t/x.go:1\n",
            "line 3",
        ),
        (
            b"goroutine profile: total 1\n1 @ 0xZZ\n",
            "line 2: bad address",
        ),
        (
            b"goroutine profile: total 1\n1 @ 0x1\n# labels: {\"a\"}\n",
            "line 3: bad labels",
        ),
    ];
    for (input, want) in cases {
        let err = parse_goroutine_text(input).unwrap_err().to_string();
        assert!(
            err.contains(want),
            "{:?}: {err}",
            String::from_utf8_lossy(input)
        );
    }
}

/// (file, goroutines, with ", N minutes", with labels, leaked, created by main.startRequestWorker)
#[test]
fn debug2_fixtures() {
    let cases: &[(&str, usize, usize, usize, usize, usize)] = &[
        ("go1.19/goroutine/goroutine_debug2.txt", 309, 0, 0, 0, 305),
        (
            "go1.23/long-blocked/goroutine_debug2.txt",
            183,
            77,
            0,
            0,
            35,
        ),
        (
            "go1.26/long-blocked/goroutine_debug2.txt",
            76,
            47,
            18,
            0,
            35,
        ),
        (
            "go1.26-leakprof/goroutine/goroutineleak_debug2.txt",
            187,
            0,
            0,
            183,
            183,
        ),
        (
            "go1.26-leakprof/blocked/goroutineleak_debug2.txt",
            40,
            0,
            0,
            15,
            0,
        ),
    ];
    for &(rel, n, minutes, labels, leaked, created) in cases {
        let t = parse_goroutine_traceback(&read(rel)).unwrap();
        assert_eq!(t.len(), n, "{rel}");
        assert_eq!(
            t.iter().filter(|g| g.minutes == Some(1)).count(),
            minutes,
            "{rel}"
        );
        assert_eq!(
            t.iter().filter(|g| !g.labels.is_empty()).count(),
            labels,
            "{rel}"
        );
        assert_eq!(t.iter().filter(|g| g.leaked).count(), leaked, "{rel}");
        let by_worker = t
            .iter()
            .filter(|g| g.created_by.as_deref() == Some("main.startRequestWorker"))
            .count();
        assert_eq!(by_worker, created, "{rel}");
        assert!(t.iter().all(|g| !g.wait_reason.contains("leaked")), "{rel}");
    }
    let t = parse_goroutine_traceback(&read("go1.23/blocked/goroutine_debug2.txt")).unwrap();
    let first = &t[0];
    assert_eq!((first.id, first.wait_reason.as_str()), (32, "running"));
    assert_eq!(first.stack[0], "runtime/pprof.writeGoroutineStacks");
    assert_eq!(first.stack[8], "net/http.(*conn).serve");
    assert_eq!(first.stack.len(), 9);
    assert_eq!(
        first.created_by.as_deref(),
        Some("net/http.(*Server).Serve")
    );
    let nil_chan = t.iter().find(|g| g.id == 6).unwrap();
    assert_eq!(nil_chan.wait_reason, "chan receive (nil chan)");
    assert_eq!(nil_chan.stack, vec!["main.blockNilChan".to_string()]);

    let t = parse_goroutine_traceback(&read("go1.26/long-blocked/goroutine_debug2.txt")).unwrap();
    let g = t.iter().find(|g| g.id == 12).unwrap();
    assert_eq!(g.wait_reason, "chan receive");
    assert_eq!(g.minutes, Some(1));
    assert_eq!(
        g.labels,
        vec![
            ("handler".to_string(), "/api/orders".to_string()),
            ("tenant".to_string(), "acme".to_string())
        ]
    );
}

#[test]
fn debug2_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "not this format"),
        (b"goroutine profile: total 1\n", "line 1"),
        (b"goroutine 1 [running\n", "line 1"),
        (b"goroutine x [running]:\n", "line 1: bad goroutine id"),
        (b"goroutine 1 [running]:\nmain.main\n", "line 2"),
        (b"goroutine 1 [chan receive, x minutes]:\n", "line 1"),
    ];
    for (input, want) in cases {
        let err = parse_goroutine_traceback(input).unwrap_err().to_string();
        assert!(
            err.contains(want),
            "{:?}: {err}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn proto_fixtures() {
    // (file, total, records, labelled, main.waitForReply), as `go tool pprof -raw`
    // and `-tagfocus=handler=/api/orders` count them (fetched after the text).
    let cases: &[(&str, u64, usize, u64, u64)] = &[
        ("go1.19/blocked/goroutine.pb.gz", 40, 15, 0, 0),
        ("go1.23/blocked/goroutine.pb.gz", 40, 15, 0, 0),
        ("go1.26/blocked/goroutine.pb.gz", 40, 15, 0, 0),
        ("go1.23/goroutine/goroutine.pb.gz", 314, 6, 104, 310),
        (
            "go1.26-leakprof/goroutine/goroutineleak.pb.gz",
            183,
            2,
            92,
            183,
        ),
    ];
    for &(rel, total, records, with_labels, wait_for_reply) in cases {
        let p = proto_profile(rel);
        assert_eq!(p.total, total, "{rel}");
        assert_eq!(p.records.len(), records, "{rel}");
        assert_eq!(labelled(&p), with_labels, "{rel}");
        assert_eq!(count_fn(&p, "main.waitForReply"), wait_for_reply, "{rel}");
    }
    // The proto keeps the runtime frames and expands inlined calls.
    let p = proto_profile("go1.23/blocked/goroutine.pb.gz");
    let recv = p
        .records
        .iter()
        .find(|r| r.stack.last().map(String::as_str) == Some("main.blockChanRecv"))
        .unwrap();
    assert_eq!(
        recv.stack,
        [
            "runtime.gopark",
            "runtime.chanrecv",
            "runtime.chanrecv1",
            "main.blockChanRecv"
        ]
    );
    let mutex = p
        .records
        .iter()
        .find(|r| r.stack.iter().any(|f| f == "main.blockMutex"))
        .unwrap();
    assert_eq!(
        mutex.stack,
        [
            "runtime.gopark",
            "runtime.goparkunlock",
            "runtime.semacquire1",
            "sync.runtime_SemacquireMutex",
            "sync.(*Mutex).lockSlow",
            "sync.(*Mutex).Lock",
            "main.blockMutex"
        ]
    );
}

/// Same capture, two formats: the states from the proto's full stacks equal the
/// states from the debug=2 wait reasons. Only the goroutines serving the two
/// requests differ (running/runnable there, running/syscall here).
#[test]
fn states_from_proto_stacks_match_debug2_wait_reasons() {
    use GoroutineState::*;
    for v in ["go1.19", "go1.23", "go1.26"] {
        let pb = count_by_state(&proto_profile(&format!("{v}/blocked/goroutine.pb.gz")));
        let tb =
            parse_goroutine_traceback(&read(&format!("{v}/blocked/goroutine_debug2.txt"))).unwrap();
        let d2 = count_tracebacks_by_state(&tb);
        for s in GoroutineState::ALL {
            if !matches!(s, Running | Syscall) {
                assert_eq!(pb[&s], d2[&s], "{v} {s}");
            }
        }
        assert_eq!(
            pb[&Running] + pb[&Syscall],
            d2[&Running] + d2[&Syscall],
            "{v}"
        );
        assert_eq!(pb[&Running] + pb[&Syscall], 2, "{v}");
        // What the fixture is made of: 3 goroutines per blocking kind, 6 net readers.
        let want: BTreeMap<GoroutineState, u64> = [
            (ChanReceive, 6),
            (ChanSend, 3),
            (Select, 6),
            (Mutex, 9),
            (Cond, 3),
            (IoWait, 8),
            (Sleep, 3),
            (Other, 0),
        ]
        .into_iter()
        .collect();
        for (s, n) in want {
            assert_eq!(d2[&s], n, "{v} {s}");
        }

        // debug=1 hides runtime frames: channel and select waits become `other`,
        // the rest is still exact.
        let txt = count_by_state(&text_profile(&format!("{v}/blocked/goroutine_debug1.txt")));
        for s in [Mutex, Cond, IoWait, Sleep] {
            assert_eq!(txt[&s], d2[&s], "{v} text {s}");
        }
        assert_eq!(txt[&ChanReceive] + txt[&ChanSend] + txt[&Select], 0, "{v}");
        assert_eq!(txt[&Other], 15, "{v}");
    }
}

#[test]
fn stack_classification_table() {
    use GoroutineState::*;
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cases: &[(&[&str], GoroutineState)] = &[
        (&["runtime.gopark", "runtime.selectgo", "main.f"], Select),
        (&["runtime.gopark", "runtime.block", "main.f"], Select),
        (&["runtime.gopark", "runtime.chansend1", "main.f"], ChanSend),
        (
            &[
                "internal/sync.runtime_SemacquireMutex",
                "internal/sync.(*Mutex).lockSlow",
            ],
            Mutex,
        ),
        (
            &["sync.runtime_SemacquireWaitGroup", "sync.(*WaitGroup).Wait"],
            Mutex,
        ),
        (
            &[
                "runtime.goparkunlock",
                "sync.runtime_notifyListWait",
                "sync.(*Cond).Wait",
            ],
            Cond,
        ),
        (&["time.Sleep", "main.f"], Sleep),
        (
            &["internal/runtime/syscall.Syscall6", "syscall.RawSyscall6"],
            Syscall,
        ),
        (
            &[
                "runtime.goroutineProfileWithLabels",
                "runtime/pprof.writeGoroutine",
            ],
            Running,
        ),
        (
            &[
                "runtime/pprof.writeRuntimeProfile",
                "net/http.(*conn).serve",
            ],
            Running,
        ),
        (&[], Running),
        (&["runtime.gopark", "runtime.gcBgMarkWorker"], Other),
        (
            &["main.waitForReply", "main.startRequestWorker.func1"],
            Other,
        ),
    ];
    for (stack, want) in cases {
        assert_eq!(state_from_stack(&s(stack)), *want, "{stack:?}");
    }
}

/// One `net/http.(*persistConn).readLoop` per connection whose body was never
/// closed. leaked.txt (60) was read first; the profiles a few ticks later.
#[test]
fn http_client_connections_match_leaked() {
    let cases: &[(&str, u64, u64)] = &[("go1.19", 61, 61), ("go1.23", 61, 61), ("go1.26", 61, 62)];
    for &(v, text_n, proto_n) in cases {
        let leaked =
            std::fs::read_to_string(fixture(&format!("{v}/httpclient/leaked.txt"))).unwrap();
        let leaked: u64 = leaked
            .lines()
            .find_map(|l| l.strip_prefix("httpclient "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(leaked, 60);
        let txt = text_profile(&format!("{v}/httpclient/goroutine_debug1.txt"));
        let pb = proto_profile(&format!("{v}/httpclient/goroutine.pb.gz"));
        assert_eq!(http_client_connections(&txt), text_n, "{v}");
        assert_eq!(http_client_connections(&pb), proto_n, "{v}");
        for n in [text_n, proto_n] {
            assert!(
                (leaked..=leaked + 5).contains(&n),
                "{v}: {n} vs leaked {leaked}"
            );
        }
        // Each leaked connection also has a writeLoop goroutine.
        assert_eq!(
            count_fn(&txt, "net/http.(*persistConn).writeLoop"),
            text_n,
            "{v}"
        );
    }
    let healthy = text_profile("go1.23/healthy/goroutine_debug1.txt");
    assert_eq!(http_client_connections(&healthy), 0);
}

#[test]
fn wait_reasons_of_every_fixture_are_known() {
    // Every status in the captures maps to a real state except runtime-internal ones.
    for rel in [
        "go1.19/blocked/goroutine_debug2.txt",
        "go1.23/long-blocked/goroutine_debug2.txt",
        "go1.26/long-blocked/goroutine_debug2.txt",
        "go1.26-leakprof/goroutine/goroutineleak_debug2.txt",
    ] {
        for g in parse_goroutine_traceback(&read(rel)).unwrap() {
            assert_ne!(
                state_from_wait_reason(&g.wait_reason),
                GoroutineState::Other,
                "{rel}: {}",
                g.wait_reason
            );
        }
    }
}

/// Deterministic corruption: xorshift, so a failure reproduces.
fn mutations(input: &[u8], mut seed: u64, rounds: usize) -> Vec<Vec<u8>> {
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut out = Vec::new();
    let step = (input.len() / 97).max(1);
    for cut in (0..input.len()).step_by(step) {
        out.push(input[..cut].to_vec());
    }
    for _ in 0..rounds {
        let mut m = input.to_vec();
        if m.is_empty() {
            break;
        }
        for _ in 0..(next() % 8 + 1) {
            let i = (next() % m.len() as u64) as usize;
            m[i] = match next() % 4 {
                0 => next() as u8,
                1 => b'\n',
                2 => b'\t',
                _ => m[i] ^ 0x80,
            };
        }
        out.push(m);
    }
    out
}

#[test]
fn parsers_never_panic_on_truncated_or_corrupted_input() {
    for rel in [
        "go1.23/blocked/goroutine_debug1.txt",
        "go1.26/long-blocked/goroutine_debug1.txt",
        "go1.26-leakprof/goroutine/goroutineleak_debug1.txt",
    ] {
        for m in mutations(&read(rel), 0x9e3779b97f4a7c15, 300) {
            if let Ok(t) = parse_goroutine_text(&m) {
                let p = t.to_profile();
                let _ = count_by_state(&p);
            }
        }
    }
    for rel in [
        "go1.23/blocked/goroutine_debug2.txt",
        "go1.26/long-blocked/goroutine_debug2.txt",
        "go1.26-leakprof/blocked/goroutineleak_debug2.txt",
    ] {
        for m in mutations(&read(rel), 0x2545f4914f6cdd1d, 300) {
            if let Ok(t) = parse_goroutine_traceback(&m) {
                let _ = count_tracebacks_by_state(&t);
            }
        }
    }
    for rel in [
        "go1.23/blocked/goroutine.pb.gz",
        "go1.23/heap/heap.pb.gz",
        "go1.23/callsites/heap.pb.gz",
    ] {
        let gz = read(rel);
        let raw = proto::decode(&gz, MAX).unwrap();
        let raw = prost::Message::encode_to_vec(&raw);
        for input in [gz, raw] {
            for m in mutations(&input, 0xdeadbeefcafef00d, 300) {
                if let Ok(p) = proto::decode(&m, MAX) {
                    let _ = proto::heap_profile(&p);
                    let _ = proto::goroutine_profile(&p);
                }
            }
        }
    }
}
