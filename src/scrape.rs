//! The one HTTP client of leakwatch (scrapes and dumps alike): credentials, same-origin
//! redirects, timeouts, size caps while streaming, buffered and streamed GETs, error
//! classification. (Each target's loop is `targets::run`.)

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::error::{Error, FetchReason, Result};

/// How requests to a target authenticate: a bearer token or a basic-auth password read
/// from files at each request (so rotated secrets are picked up), and extra headers.
/// Secrets are never kept in memory longer than one request, never logged (the `Debug`
/// form hides header values), and never exported.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestAuth {
    #[serde(default)]
    pub bearer_token_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub basic_auth: Option<BasicCredentials>,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

/// The basic-auth credentials leakwatch sends to a target; the password comes from a
/// file. (The users leakwatch itself accepts are `http::auth`'s user table.)
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicCredentials {
    pub username: String,
    pub password_file: std::path::PathBuf,
}

impl std::fmt::Debug for RequestAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestAuth")
            .field("bearer_token_file", &self.bearer_token_file)
            .field("basic_auth", &self.basic_auth)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl RequestAuth {
    pub fn is_empty(&self) -> bool {
        self.bearer_token_file.is_none() && self.basic_auth.is_none() && self.headers.is_empty()
    }

    /// Checks what can be checked at load: header names and values are valid HTTP, and
    /// at most one of bearer token and basic auth.
    pub fn validate(&self, key: &str) -> Result<()> {
        if self.bearer_token_file.is_some() && self.basic_auth.is_some() {
            return Err(Error::Config(format!(
                "{key}: give at most one of bearer_token_file and basic_auth"
            )));
        }
        for (k, v) in &self.headers {
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                Error::Config(format!("{key}.headers: {k:?} is not a valid header name"))
            })?;
            reqwest::header::HeaderValue::from_str(v).map_err(|_| {
                Error::Config(format!("{key}.headers.{k}: not a valid header value"))
            })?;
        }
        Ok(())
    }

    /// Adds the credentials and headers to a request.
    pub fn apply(
        &self,
        url: &str,
        mut req: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder> {
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(path) = &self.bearer_token_file {
            let token = read_secret(url, path, "bearer_token_file")?;
            req = req.bearer_auth(token);
        }
        if let Some(b) = &self.basic_auth {
            let password = read_secret(url, &b.password_file, "basic_auth.password_file")?;
            req = req.basic_auth(&b.username, Some(password));
        }
        Ok(req)
    }
}

fn read_secret(url: &str, path: &std::path::Path, key: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| {
            fetch_error(
                url,
                FetchReason::Credentials,
                format!("reading {key} {}: {e}", path.display()),
            )
        })
}

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
            .redirect(reqwest::redirect::Policy::custom(redirect_policy))
            .pool_max_idle_per_host(2)
            .build()
            .map_err(|e| Error::Config(format!("building the HTTP client: {e}")))?;
        Ok(Fetcher { client })
    }

    /// GETs `url`, reading at most `max_bytes` of body within `timeout` (the whole
    /// request, body included). A bigger body is abandoned as soon as the cap is
    /// crossed, so memory stays bounded whatever the target sends.
    pub async fn get(&self, url: &str, timeout: Duration, max_bytes: u64) -> Result<Fetched> {
        self.get_with(url, timeout, max_bytes, &RequestAuth::default())
            .await
    }

    /// [`Fetcher::get`] with the target's credentials and headers.
    pub async fn get_with(
        &self,
        url: &str,
        timeout: Duration,
        max_bytes: u64,
        auth: &RequestAuth,
    ) -> Result<Fetched> {
        let start = Instant::now();
        let fut = self.get_inner(url, max_bytes, auth);
        let body = match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r?,
            Err(_) => return Err(timed_out(url, timeout)),
        };
        Ok(Fetched {
            body,
            elapsed: start.elapsed(),
        })
    }

    async fn get_inner(&self, url: &str, max_bytes: u64, auth: &RequestAuth) -> Result<Vec<u8>> {
        let mut resp = self.get_streamed(url, max_bytes, auth).await?;
        // One buffer of the announced size (already checked against the cap), not a
        // run of doublings: a big body is then one allocation, freed as one.
        let mut body = Vec::with_capacity(resp.announced_len());
        while let Some(chunk) = resp.chunk().await? {
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Sends a GET and returns the response for its body to be read chunk by chunk
    /// (dumps go straight to disk): the status and Content-Length are checked, and
    /// [`Streamed::chunk`] fails as soon as the body crosses `max_bytes`. The caller
    /// bounds the whole request with its own timeout.
    pub async fn get_streamed(
        &self,
        url: &str,
        max_bytes: u64,
        auth: &RequestAuth,
    ) -> Result<Streamed> {
        let resp = send_checked(&self.client, url, auth, max_bytes).await?;
        Ok(Streamed {
            url: url.to_string(),
            resp,
            max_bytes,
            read: 0,
        })
    }
}

/// A response whose body is being read, never past its size cap.
#[derive(Debug)]
pub struct Streamed {
    url: String,
    resp: reqwest::Response,
    max_bytes: u64,
    read: u64,
}

impl Streamed {
    /// The body's Content-Length, when announced (never over the cap); else 0.
    pub fn announced_len(&self) -> usize {
        self.resp
            .content_length()
            .filter(|n| *n <= self.max_bytes)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
    }

    /// The next piece of the body; None at its end. A transport error or a body over
    /// the cap is an error.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>> {
        let Some(chunk) = self
            .resp
            .chunk()
            .await
            .map_err(|e| classify(&self.url, &e))?
        else {
            return Ok(None);
        };
        self.read = self.read.saturating_add(chunk.len() as u64);
        if self.read > self.max_bytes {
            return Err(fetch_error(
                &self.url,
                FetchReason::TooLarge,
                format!("body is over the {}-byte limit", self.max_bytes),
            ));
        }
        Ok(Some(chunk))
    }
}

/// The error of a request that did not complete within `timeout`.
pub fn timed_out(url: &str, timeout: Duration) -> Error {
    fetch_error(
        url,
        FetchReason::Timeout,
        format!("no complete response within {timeout:?}"),
    )
}

/// Most redirects a request follows.
pub const MAX_REDIRECTS: usize = 3;

/// Follows at most [`MAX_REDIRECTS`] redirects, and only to the same scheme, host and
/// port as the original request: a target can never send leakwatch to another host
/// (no SSRF through a redirect, no traffic to addresses nobody configured).
fn redirect_policy(attempt: reqwest::redirect::Attempt) -> reqwest::redirect::Action {
    let decision = redirect_allowed(attempt.previous(), attempt.url());
    match decision {
        Ok(()) => attempt.follow(),
        Err(why) => attempt.error(why),
    }
}

/// The pure rule behind [`redirect_policy`]: `previous[0]` is the original URL.
pub fn redirect_allowed(previous: &[reqwest::Url], next: &reqwest::Url) -> Result<(), String> {
    if previous.len() > MAX_REDIRECTS {
        return Err(format!("more than {MAX_REDIRECTS} redirects"));
    }
    let Some(first) = previous.first() else {
        return Ok(());
    };
    if previous.iter().any(|u| u == next) {
        return Err(format!("redirect loop at {}", redact_url(next.as_str())));
    }
    let origin = |u: &reqwest::Url| {
        (
            u.scheme().to_string(),
            u.host_str().map(str::to_string),
            u.port_or_known_default(),
        )
    };
    if origin(first) != origin(next) {
        return Err(format!(
            "redirect to another host refused: {} -> {}",
            first.host_str().unwrap_or("?"),
            next.host_str().unwrap_or("?")
        ));
    }
    Ok(())
}

/// Sends a GET with the target's credentials and checks what can be checked before the
/// body: a transport error, a non-2xx status (with the first 200 bytes of the body, as
/// Go's pprof errors are one short line) and a Content-Length over `max_bytes`. Shared by
/// scrapes and dumps.
async fn send_checked(
    client: &reqwest::Client,
    url: &str,
    auth: &RequestAuth,
    max_bytes: u64,
) -> Result<reqwest::Response> {
    let resp = auth
        .apply(url, client.get(url))?
        .send()
        .await
        .map_err(|e| classify(url, &e))?;
    let status = resp.status();
    if !status.is_success() {
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
    Ok(resp)
}

pub(crate) fn fetch_error(url: &str, reason: FetchReason, detail: String) -> Error {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_on_the_target() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        let first = u("http://127.0.0.1:6060/debug/pprof/heap");
        // Same origin: followed.
        assert!(
            redirect_allowed(
                std::slice::from_ref(&first),
                &u("http://127.0.0.1:6060/debug/pprof/heap?x=1")
            )
            .is_ok()
        );
        // Another host, port or scheme: refused without connecting.
        for other in [
            "http://10.0.0.1:6060/debug/pprof/heap",
            "http://127.0.0.2:6060/debug/pprof/heap",
            "http://127.0.0.1:6061/debug/pprof/heap",
            "https://127.0.0.1:6060/debug/pprof/heap",
            "http://metadata.google.internal/computeMetadata/v1/",
        ] {
            let err = redirect_allowed(std::slice::from_ref(&first), &u(other)).unwrap_err();
            assert!(err.contains("another host"), "{other}: {err}");
        }
        // Loops and long chains.
        let second = u("http://127.0.0.1:6060/a");
        assert!(
            redirect_allowed(&[first.clone(), second.clone()], &first)
                .unwrap_err()
                .contains("loop")
        );
        let chain: Vec<_> = (0..4)
            .map(|i| u(&format!("http://127.0.0.1:6060/{i}")))
            .collect();
        assert!(
            redirect_allowed(&chain, &u("http://127.0.0.1:6060/x"))
                .unwrap_err()
                .contains("more than")
        );
    }

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
