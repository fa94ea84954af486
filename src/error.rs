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
    /// Reaching into another process's network namespace failed at `step`.
    #[error("network namespace of pid {pid}: {step}: {source}{}", .step.hint(.source.kind()))]
    Netns {
        pid: u32,
        step: NetnsStep,
        #[source]
        source: std::io::Error,
    },
}

/// The steps of reaching a listener inside another network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetnsStep {
    /// Opening `/proc/PID/ns/net` (ptrace read access to the process).
    Open,
    /// `setns` into it on a dedicated thread.
    Enter,
    /// The pid now lives in another namespace than when first looked at.
    Changed,
    /// Connecting to a loopback listener inside it.
    Connect(std::net::SocketAddr),
    /// Binding the forwarder's listener on the host's loopback.
    Listen,
}

impl NetnsStep {
    /// What to do about a failure at this step: the privilege missing, the process gone.
    pub fn hint(self, kind: std::io::ErrorKind) -> &'static str {
        use std::io::ErrorKind::{ConnectionRefused, NotFound, PermissionDenied};
        match (self, kind) {
            (NetnsStep::Open, NotFound) => " (the process has exited)",
            (NetnsStep::Open, PermissionDenied) => {
                " (needs CAP_SYS_PTRACE, unless leakwatch runs as the process's user with at least its capabilities)"
            }
            (NetnsStep::Enter, PermissionDenied) => " (setns needs CAP_SYS_ADMIN)",
            (NetnsStep::Changed, _) => " (the process restarted or its pid was reused)",
            (NetnsStep::Connect(_), ConnectionRefused) => {
                " (nothing listens there inside the namespace)"
            }
            _ => "",
        }
    }
}

impl std::fmt::Display for NetnsStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetnsStep::Open => f.write_str("opening /proc/PID/ns/net"),
            NetnsStep::Enter => f.write_str("entering it (setns)"),
            NetnsStep::Changed => f.write_str("checking it is still the same namespace"),
            NetnsStep::Connect(to) => write!(f, "connecting to {to} inside it"),
            NetnsStep::Listen => f.write_str("binding the forwarder on the host's 127.0.0.1"),
        }
    }
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
/// for a validation error about `targets[i]`, `targets[i].key.sub...` or a section key
/// such as `defaults.signals.thresholds.min_monotonicity`, the line of the deepest key
/// found; for the parser's "unknown field" at the top level (which it reports without a
/// position), the line that starts with that key. Messages that already carry a line,
/// or name nothing to find, are returned as they are.
pub fn with_line(text: &str, msg: String) -> String {
    static KEY_PATH: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"^(?:targets\[(\d+)\]|(defaults|probe|system|discover|listen))((?:\.[A-Za-z0-9_-]+)*)",
        )
        .expect("valid regex")
    });
    if msg.contains(" at line ") {
        return msg;
    }
    let Some(c) = KEY_PATH.captures(&msg) else {
        return with_top_level_line(text, msg);
    };
    let lines: Vec<&str> = text.lines().collect();
    let segments: Vec<&str> = c
        .get(3)
        .map(|m| m.as_str().split('.').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let found = match (c.get(1), c.get(2)) {
        (Some(index), _) => index
            .as_str()
            .parse::<usize>()
            .ok()
            .and_then(|i| target_line(&lines, i, &segments)),
        (None, Some(section)) => lines
            .iter()
            .position(|l| l.starts_with(&format!("{}:", section.as_str())))
            .map(|at| descend(&lines, at, &segments)),
        (None, None) => None,
    };
    match found {
        Some(line) => format!("{msg} at line {}", line + 1),
        None => msg,
    }
}

/// The line of item `index` of the top-level `targets:` sequence, or of its key path.
fn target_line(lines: &[&str], index: usize, segments: &[&str]) -> Option<usize> {
    let start = lines.iter().position(|l| l.trim_end() == "targets:")?;
    // Items of the targets sequence: lines whose first non-space is "- ", at the
    // indentation of the first one.
    let indent = lines[start + 1..]
        .iter()
        .find(|l| l.trim_start().starts_with("- "))
        .map(|l| indent_of(l))?;
    let items: Vec<usize> = (start + 1..lines.len())
        .filter(|&i| indent_of(lines[i]) == indent && lines[i].trim_start().starts_with("- "))
        .collect();
    let &first = items.get(index)?;
    let end = items.get(index + 1).copied().unwrap_or(lines.len());
    let Some((k, rest)) = segments.split_first() else {
        return Some(first);
    };
    let at = (first..end)
        .find(|&i| {
            let t = lines[i].trim_start().trim_start_matches("- ");
            t.starts_with(&format!("{k}:"))
                || lines[i].contains(&format!("{{{k}:"))
                || lines[i].contains(&format!(" {k}:"))
        })
        .unwrap_or(first);
    Some(descend(lines, at, rest))
}

/// From the line of a key, the line of each nested key in turn (block style), or the
/// same line when the nested keys are written inline (`{a: 1}`).
fn descend(lines: &[&str], mut at: usize, segments: &[&str]) -> usize {
    for seg in segments {
        let parent = lines[at];
        if parent.contains('{') {
            break;
        }
        let indent = indent_of(parent);
        let child = lines[at + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || indent_of(l) > indent)
            .position(|l| {
                l.trim_start()
                    .trim_start_matches("- ")
                    .starts_with(&format!("{seg}:"))
            });
        match child {
            Some(offset) => at = at + 1 + offset,
            None => break,
        }
    }
    at
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
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
