//! The text of a config error: the YAML reader's error turned into one line that names
//! the key (its full path), what was expected and where (line and column), with the
//! nearest valid key or value when one is misspelt; regexes compiled with errors that
//! show the pattern as written.
//!
//! The values' own readers say what they expect (durations and sizes in `units.rs`,
//! `gc` in `formats.rs`); this is the one place that words serde's generic parts for a
//! config file's reader (a "field" is a key, `usize` is a whole number).

use std::sync::LazyLock;

use regex::Regex;

use crate::error::{Error, Result};

/// serde's words for the Rust types of values, and how a config file's reader says them.
const TYPE_WORDS: &[(&str, &str)] = &[
    ("expected usize", "expected a whole number"),
    ("expected u64", "expected a whole number"),
    ("expected u32", "expected a whole number"),
    ("expected u16", "expected a whole number up to 65535"),
    ("expected u8", "expected a whole number up to 255"),
    ("expected i64", "expected a whole number"),
    ("expected f64", "expected a number"),
    ("expected f32", "expected a number"),
    ("expected a boolean", "expected true or false"),
    ("expected a sequence", "expected a list"),
    ("expected a map", "expected a mapping (key: value)"),
    ("unknown field", "unknown key"),
    ("duplicate field", "duplicate key"),
    ("missing field", "missing key"),
    ("unknown variant", "unknown value"),
];

/// serde's "unknown field `x`, expected one of `a`, `b`" (and variants'), with the list.
static UNKNOWN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"unknown (?:field|variant) `([^`]*)`, expected (?:one of )?((?:`[^`]*`(?:, | or )?)+)",
    )
    .expect("valid regex")
});
/// A derived struct's "expected struct Name".
static EXPECTED_STRUCT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"expected struct \w+").expect("valid regex"));
/// The position serde_norway appends to its message.
static POSITION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r" at (?:line \d+ column \d+|position \d+)$").expect("valid regex")
});

/// The settings keys of `defaults:`, for "it belongs under defaults".
use super::settings::KEYS as SETTINGS_KEYS;

/// One line for an error of the YAML reader: `path: what, expected what at line L column C`.
pub(super) fn parse_error(e: &serde_norway::Error) -> String {
    let text = e.to_string();
    let mut msg = POSITION.replace(&text, "").into_owned();
    if let Some(c) = UNKNOWN.captures(&msg) {
        let given = c[1].to_string();
        let choices: Vec<String> = c[2]
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        let top_level = !msg.contains(": unknown");
        let hint = match nearest(&given, &choices) {
            Some(n) => format!(" (did you mean `{n}`?)"),
            None if top_level && SETTINGS_KEYS.contains(&given.as_str()) => {
                " (a setting: put it under `defaults:` or a target)".to_string()
            }
            None => String::new(),
        };
        let at = c.get(1).map_or(0, |m| m.end() + 1);
        msg.insert_str(at, &hint);
    }
    for (serde_words, ours) in TYPE_WORDS {
        msg = msg.replace(serde_words, ours);
    }
    msg = EXPECTED_STRUCT
        .replace_all(&msg, "expected a mapping (key: value)")
        .into_owned();
    match e.location() {
        Some(l) => format!("{msg} at line {} column {}", l.line(), l.column()),
        None => msg,
    }
}

/// The choice `given` most likely misspells: at most a third of its letters apart (one
/// for short words), or one is the start of the other.
fn nearest<'a>(given: &str, choices: &'a [String]) -> Option<&'a str> {
    let limit = (given.chars().count() / 3).max(1);
    choices
        .iter()
        .map(|c| (strsim::damerau_levenshtein(given, c), c))
        .filter(|(d, c)| {
            *d <= limit || (given.len() >= 3 && (c.starts_with(given) || given.starts_with(*c)))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

/// Compiles the regex `pattern` of the config key `key`; `anchored`: it must match the
/// whole text. The error shows the pattern as written and the parser's reason.
pub(super) fn regex(key: &str, pattern: &str, anchored: bool) -> Result<Regex> {
    let reason = |e: regex::Error| {
        let detail = e.to_string();
        let why = detail
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("error: "))
            .unwrap_or(detail.as_str())
            .to_string();
        Error::Config(format!(
            "{key}: invalid regex {pattern:?} ({why}), expected a regular expression (Rust regex syntax)"
        ))
    };
    Regex::new(pattern).map_err(reason)?;
    if anchored {
        Regex::new(&format!("^(?:{pattern})$")).map_err(reason)
    } else {
        Regex::new(pattern).map_err(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_choice() {
        let keys: Vec<String> = ["interval", "timeout", "heap_every", "window", "warmup"]
            .map(String::from)
            .to_vec();
        let cases = [
            ("intervl", Some("interval")),
            ("inteval", Some("interval")),
            ("heap_evry", Some("heap_every")),
            ("heap", Some("heap_every")),
            ("timeout_", Some("timeout")),
            ("warmpu", Some("warmup")),
            ("bogus", None),
            ("x", None),
        ];
        for (given, want) in cases {
            assert_eq!(nearest(given, &keys), want, "{given}");
        }
    }
}
