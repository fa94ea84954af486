//! The one error type of the library: what failed, where (URL, path, line) and why.

use std::path::PathBuf;

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
