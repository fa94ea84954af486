//! Terminal escapes a profile or a target controls never reach the terminal raw: a heap
//! profile whose function names carry ESC/OSC sequences through `top` and `diff`, and a
//! target whose error body carries them through `watch` (piped) and the exporter's log.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{Leakwatch, wait_until};

/// An OSC 52 clipboard write, a screen clear, a line erase, a window title change.
const EVIL: [&str; 4] = [
    "\x1b]52;c;cm0gLXJmIH4K\x07",
    "\x1b[2J",
    "\x1b[K",
    "\x1b]0;pwned\x1b\\",
];

/// Bytes a terminal would act on: C0 controls but newline and tab, DEL, and the C1
/// controls (as UTF-8).
fn raw_controls(text: &[u8]) -> Vec<String> {
    let s = String::from_utf8_lossy(text);
    s.char_indices()
        .filter(|(_, c)| c.is_control() && *c != '\n' && *c != '\t')
        .map(|(i, c)| format!("{c:?} at {i}"))
        .collect()
}

fn assert_clean(what: &str, out: &[u8]) {
    let found = raw_controls(out);
    assert!(
        found.is_empty(),
        "{what} printed raw control characters {found:?}:\n{}",
        String::from_utf8_lossy(out).escape_debug()
    );
}

/// A `heap?debug=1` profile whose leaf functions are named by [`EVIL`], `scale` times
/// the bytes of the first.
fn evil_profile(scale: u64) -> String {
    let mut text = String::new();
    let mut records = String::new();
    let (mut objects, mut bytes) = (0u64, 0u64);
    for (i, name) in EVIL.iter().enumerate() {
        let n = (i as u64 + 1) * scale;
        let b = n * 4096;
        objects += n;
        bytes += b;
        records.push_str(&format!(
            "{n}: {b} [{n}: {b}] @ 0x4{i}0 0x4{i}1\n\
             #\t0x4{i}0\t{name}+0x10\t/src/evil.go:{i}\n\
             #\t0x4{i}1\tmain.main+0x20\t/src/main.go:1\n\n"
        ));
    }
    text.push_str(&format!(
        "heap profile: {objects}: {bytes} [{objects}: {bytes}] @ heap/1048576\n"
    ));
    text.push_str(&records);
    text.push_str("\n# runtime.MemStats\n# Alloc = 1000\n# HeapAlloc = 1000\n# NumGC = 3\n");
    text
}

fn leakwatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_leakwatch"))
}

#[test]
fn top_and_diff_escape_function_names() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.txt");
    let new = dir.path().join("new.txt");
    std::fs::write(&base, evil_profile(1)).unwrap();
    std::fs::write(&new, evil_profile(3)).unwrap();
    let runs: [(&str, Vec<&Path>); 2] = [("top", vec![&new]), ("diff", vec![&base, &new])];
    for (cmd, files) in runs {
        let out = leakwatch()
            .arg(cmd)
            .args(files)
            .output()
            .expect("run leakwatch");
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_clean(cmd, &out.stdout);
        assert_clean(cmd, &out.stderr);
        let text = String::from_utf8_lossy(&out.stdout);
        // The names are there, escaped.
        for want in ["\\x1b]52;c;cm0gLXJmIH4K\\x07", "\\x1b[2J", "main.main"] {
            assert!(text.contains(want), "{cmd} lacks {want:?}:\n{text}");
        }
    }
}

/// A target answering every request with a 500 whose body carries [`EVIL`] (and a line
/// break, which must not start a line of its own).
fn evil_target() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { continue };
            let _ = sock.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf);
            let body = format!("broken {}\nverdict=no leak {}", EVIL[0], EVIL.join(" "));
            let _ = write!(
                sock,
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn watch_escapes_a_targets_error_body() {
    let url = evil_target();
    let out = leakwatch()
        .args([
            "watch",
            &url,
            "--for",
            "2s",
            "--every",
            "1s",
            "--timeout",
            "2s",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run leakwatch watch");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("broken"), "the error is shown:\n{stdout}");
    assert!(
        stdout.contains("\\x1b[2J"),
        "the error is shown escaped:\n{stdout}"
    );
    assert_clean("watch stdout", &out.stdout);
    assert_clean("watch stderr", &out.stderr);
    // The body's line break is escaped: no line starts with what the target wrote.
    assert!(
        !stdout.lines().any(|l| l.starts_with("verdict=")),
        "{stdout}"
    );
}

#[test]
fn the_log_escapes_a_targets_error_body() {
    let url = evil_target();
    let lw = Leakwatch::start(&format!(
        "system:\n  kernel_log: 'off'\ntargets:\n  - name: evil\n    url: {url}\n    interval: 1s\n"
    ));
    let log = wait_until(Duration::from_secs(20), "a logged scrape failure", || {
        Some(lw.stderr()).filter(|s| s.contains("scrape failed") && s.contains("broken"))
    });
    assert!(log.contains("\\x1b[2J"), "escaped in the log:\n{log}");
    assert_clean("the log", log.as_bytes());
}
