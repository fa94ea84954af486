//! The one error type of the library: what failed, where (URL, path, line) and why;
//! and [`with_line`], which finds the line of a YAML file an error is about.

use std::path::PathBuf;
use std::sync::LazyLock;

use regex::Regex;

/// Everything that can go wrong inside leakwatch. Messages name the input
/// (URL, path, line number) and, where it helps, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is not the format the parser reads (wrong endpoint, HTML error page, ...).
    #[error("{format}: not this format: {reason}")]
    NotFormat {
        format: &'static str,
        reason: String,
    },
    /// The input is the right format but broken at a known line.
    #[error("{format}: line {line}: {reason}")]
    Malformed {
        format: &'static str,
        line: usize,
        reason: String,
    },
    /// A protobuf profile (`perftools.profiles.Profile`) that could not be decoded.
    #[error("protobuf profile: {0}")]
    Proto(String),
    /// Fetching from a target failed; `reason` is the bounded label used in metrics.
    #[error("fetching {url}: {reason}: {detail}")]
    Fetch {
        url: String,
        reason: FetchReason,
        detail: String,
    },
    /// The configuration file or flags are invalid.
    #[error("config: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its content is not what the kernel writes there.
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
}

/// Why a fetch failed: a small closed set, used as the `reason` label of
/// `leakwatch_scrape_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FetchReason {
    Connect,
    Timeout,
    HttpStatus,
    TooLarge,
    Parse,
    Redirect,
    Body,
    /// A credentials file (bearer token, password) could not be read.
    Credentials,
}

impl FetchReason {
    pub const ALL: [FetchReason; 8] = [
        FetchReason::Connect,
        FetchReason::Timeout,
        FetchReason::HttpStatus,
        FetchReason::TooLarge,
        FetchReason::Parse,
        FetchReason::Redirect,
        FetchReason::Body,
        FetchReason::Credentials,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FetchReason::Connect => "connect",
            FetchReason::Timeout => "timeout",
            FetchReason::HttpStatus => "http_status",
            FetchReason::TooLarge => "too_large",
            FetchReason::Parse => "parse",
            FetchReason::Redirect => "redirect",
            FetchReason::Body => "body",
            FetchReason::Credentials => "credentials",
        }
    }
}

impl std::fmt::Display for FetchReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// Shorthand for a parser error at a 1-based line.
    pub fn malformed(format: &'static str, line: usize, reason: impl Into<String>) -> Self {
        Error::Malformed {
            format,
            line,
            reason: reason.into(),
        }
    }

    /// Shorthand for an I/O error on a path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The bounded reason label for metrics, for any error met while scraping.
    pub fn reason(&self) -> FetchReason {
        match self {
            Error::Fetch { reason, .. } => *reason,
            _ => FetchReason::Parse,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds the line of a YAML file to an error about it, found by scanning the text:
/// for a validation error about `targets[i]` or `targets[i].key`, the line of that
/// item or key; for the parser's "unknown field" at the top level (which it reports
/// without a position), the line that starts with that key. Messages that already
/// carry a line, or name nothing to find, are returned as they are.
pub fn with_line(text: &str, msg: String) -> String {
    static TARGET_KEY: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^targets\[(\d+)\](?:\.([a-z_]+))?").expect("valid regex"));
    let Some(c) = TARGET_KEY.captures(&msg) else {
        return with_top_level_line(text, msg);
    };
    let Some(index) = c.get(1).and_then(|m| m.as_str().parse::<usize>().ok()) else {
        return msg;
    };
    let key = c.get(2).map(|m| m.as_str());
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| l.trim_end() == "targets:") else {
        return msg;
    };
    // Items of the targets sequence: lines whose first non-space is "- ", at the
    // indentation of the first one.
    let item_indent = lines[start + 1..]
        .iter()
        .find(|l| l.trim_start().starts_with("- "))
        .map(|l| l.len() - l.trim_start().len());
    let Some(indent) = item_indent else {
        return msg;
    };
    let items: Vec<usize> = (start + 1..lines.len())
        .filter(|&i| {
            let l = lines[i];
            l.len() - l.trim_start().len() == indent && l.trim_start().starts_with("- ")
        })
        .collect();
    let Some(&first) = items.get(index) else {
        return msg;
    };
    let end = items.get(index + 1).copied().unwrap_or(lines.len());
    let line = match key {
        None => first,
        Some(k) => (first..end)
            .find(|&i| {
                let t = lines[i].trim_start().trim_start_matches("- ");
                t.starts_with(&format!("{k}:"))
                    || lines[i].contains(&format!("{{{k}:"))
                    || lines[i].contains(&format!(" {k}:"))
            })
            .unwrap_or(first),
    };
    format!("{msg} at line {}", line + 1)
}

/// The line of a top-level key the parser reports as unknown without a position.
fn with_top_level_line(text: &str, msg: String) -> String {
    if msg.contains(" at line ") {
        return msg;
    }
    let key = msg
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(k, _)| k);
    let line = key.and_then(|k| {
        text.lines().position(|l| {
            l.strip_prefix(k)
                .is_some_and(|r| r.trim_start().starts_with(':'))
        })
    });
    match line {
        Some(i) => format!("{msg} at line {} column 1", i + 1),
        None => msg,
    }
}
