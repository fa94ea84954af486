//! The one HTTP client of leakwatch and the per-target scrape schedule: timeouts,
//! size caps while streaming, error classification, jittered first scrapes and a
//! concurrency bound shared by all targets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, FetchReason, Result};
use crate::target::TargetState;

/// A fetched response body and how long the request took.
#[derive(Debug)]
pub struct Fetched {
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

/// The shared HTTP client (rustls, no proxy, bounded redirects).
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
}

impl Fetcher {
    pub fn new() -> Result<Self> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("leakwatch/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::limited(3))
            .pool_max_idle_per_host(2)
            .build()
            .map_err(|e| Error::Config(format!("building the HTTP client: {e}")))?;
        Ok(Fetcher { client })
    }

    /// GETs `url`, reading at most `max_bytes` of body within `timeout` (the whole
    /// request, body included). A bigger body is abandoned as soon as the cap is
    /// crossed, so memory stays bounded whatever the target sends.
    pub async fn get(&self, url: &str, timeout: Duration, max_bytes: u64) -> Result<Fetched> {
        let start = Instant::now();
        let fut = self.get_inner(url, max_bytes);
        let body = match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(fetch_error(
                    url,
                    FetchReason::Timeout,
                    format!("no complete response within {timeout:?}"),
                ));
            }
        };
        Ok(Fetched {
            body,
            elapsed: start.elapsed(),
        })
    }

    async fn get_inner(&self, url: &str, max_bytes: u64) -> Result<Vec<u8>> {
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| classify(url, &e))?;
        let status = resp.status();
        if !status.is_success() {
            // Keep a little of the body: Go's pprof errors are one short line.
            let mut snippet = Vec::new();
            let mut stream = resp.bytes_stream();
            while let Some(Ok(chunk)) = stream.next().await {
                snippet.extend_from_slice(&chunk);
                if snippet.len() > 200 {
                    snippet.truncate(200);
                    break;
                }
            }
            let text = String::from_utf8_lossy(&snippet).trim().to_string();
            return Err(fetch_error(
                url,
                FetchReason::HttpStatus,
                format!("HTTP {status}: {text}"),
            ));
        }
        if let Some(len) = resp.content_length()
            && len > max_bytes
        {
            return Err(fetch_error(
                url,
                FetchReason::TooLarge,
                format!("Content-Length {len} is over the {max_bytes}-byte limit"),
            ));
        }
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| classify(url, &e))?;
            if body.len() as u64 + chunk.len() as u64 > max_bytes {
                return Err(fetch_error(
                    url,
                    FetchReason::TooLarge,
                    format!("body is over the {max_bytes}-byte limit"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn fetch_error(url: &str, reason: FetchReason, detail: String) -> Error {
    Error::Fetch {
        url: redact_url(url),
        reason,
        detail,
    }
}

fn classify(url: &str, e: &reqwest::Error) -> Error {
    let reason = if e.is_timeout() {
        FetchReason::Timeout
    } else if e.is_redirect() {
        FetchReason::Redirect
    } else if e.is_connect() {
        FetchReason::Connect
    } else if e.is_body() || e.is_decode() {
        FetchReason::Body
    } else {
        FetchReason::Connect
    };
    // reqwest's Display includes the URL; use the source chain for the detail.
    let mut detail = String::new();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        if !detail.is_empty() {
            detail.push_str(": ");
        }
        detail.push_str(&s.to_string());
        src = s.source();
    }
    if detail.is_empty() {
        detail = e.to_string();
    }
    fetch_error(url, reason, detail)
}

/// Removes `user:password@` from a URL for logs, metrics and pages.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Runs one target's scrape loop until `shutdown` is cancelled: a jittered first
/// scrape (so many targets don't fire at once), then one scrape per interval, never
/// overlapping, each holding a permit of the shared concurrency bound.
pub async fn run_target(
    target: Arc<TargetState>,
    fetcher: Fetcher,
    permits: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    // Spread first scrapes over up to half an interval, at most 5 s: enough to avoid a
    // thundering herd of targets, short enough that a new target shows up quickly.
    let spread = (target.config.interval / 2).min(Duration::from_secs(5));
    let jitter = spread.mul_f64(fastrand::f64());
    tokio::select! {
        _ = tokio::time::sleep(jitter) => {}
        _ = shutdown.cancelled() => return,
    }
    loop {
        let started = Instant::now();
        {
            let Ok(_permit) = permits.acquire().await else {
                return;
            };
            tokio::select! {
                _ = target.scrape_once(&fetcher) => {}
                _ = shutdown.cancelled() => return,
            }
        }
        let wait = target.next_delay(started.elapsed());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact_url("http://user:secret@127.0.0.1:6060/debug/pprof/heap"),
            "http://127.0.0.1:6060/debug/pprof/heap"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:6060/x"),
            "http://127.0.0.1:6060/x"
        );
    }
}
