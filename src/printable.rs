//! Text a target or a profile controls (function names, error bodies, goroutine
//! states), made safe for a terminal or a log: control characters shown escaped.
//!
//! A raw ESC or OSC sequence from a profile would otherwise reach the user's terminal:
//! a window title change, a screen clear, an OSC 52 clipboard write. Every print site
//! of `watch`, `top`, `diff` and the log formatter goes through here.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `s` with every control character but newline and tab escaped (`\x1b`, `\r`,
/// `\u{9b}`): for whole outputs whose own line breaks are kept. Ordinary UTF-8 passes.
pub fn printable(s: &str) -> Cow<'_, str> {
    escape(s, &['\n', '\t'])
}

/// Like [`printable`], with newlines escaped too: for one field on one line, so a value
/// cannot start a line of its own.
pub fn printable_line(s: &str) -> Cow<'_, str> {
    escape(s, &['\t'])
}

fn escape<'a>(s: &'a str, keep: &[char]) -> Cow<'a, str> {
    let unsafe_char = |c: char| c.is_control() && !keep.contains(&c);
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            _ if !unsafe_char(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // C0 controls and DEL as `\x1b`; C1 controls (U+0080..U+009F, CSI among
            // them, which some terminals obey as ESC [) as `\u{9b}`.
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// The log formatter's fields, each value escaped with [`printable_line`] (tracing's
/// own formatter escapes only the message and `Debug` strings, not `%value` fields
/// such as a target's error body). `log.*` fields (from the `log` crate's records)
/// are skipped, as tracing's formatter does.
pub fn log_field(
    w: &mut tracing_subscriber::fmt::format::Writer<'_>,
    field: &tracing::field::Field,
    value: &dyn std::fmt::Debug,
) -> std::fmt::Result {
    let name = field.name();
    if name.starts_with("log.") {
        return Ok(());
    }
    let text = format!("{value:?}");
    if name == "message" {
        write!(w, "{}", printable_line(&text))
    } else {
        write!(w, "{name}={}", printable_line(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_text_kept() {
        let cases = [
            ("plain main.leak", "plain main.leak"),
            ("héllo 日本 ✓", "héllo 日本 ✓"),
            ("a\tb\nc", "a\tb\nc"),
            ("\x1b]52;c;aGk=\x07", "\\x1b]52;c;aGk=\\x07"),
            ("\x1b[2J\x1b[K", "\\x1b[2J\\x1b[K"),
            ("cr\rover", "cr\\rover"),
            ("del\x7f nul\0", "del\\x7f nul\\x00"),
            ("c1 \u{9b}31m", "c1 \\u{9b}31m"),
        ];
        for (raw, want) in cases {
            assert_eq!(printable(raw), want, "{raw:?}");
        }
        assert_eq!(printable_line("a\nb\tc"), "a\\nb\tc");
        assert!(matches!(printable("ok"), Cow::Borrowed(_)));
    }
}
