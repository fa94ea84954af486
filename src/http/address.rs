//! This instance's address as its reader reaches it, for the links and commands the
//! pages print: decided here and nowhere else. It is the request's `Host` over the
//! request's scheme (`https` on a TLS connection); a `--web.external-url` flag, when one
//! exists, is the one thing to read first in [`Instance::of`].

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use reqwest::Url;

/// Marks a request that came over TLS (inserted by the server loop).
#[derive(Debug, Clone, Copy)]
pub struct ServedOverTls;

/// The address written when the request names none that can be trusted in a command
/// (no `Host`, or one that is not `host[:port]`): the runbook's placeholder.
pub const PLACEHOLDER: &str = "leakwatch:10760";

/// This instance as the reader reaches it: `http://127.0.0.1:10760`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    base: Url,
}

impl Instance {
    /// From a request's headers and whether it came over TLS.
    pub fn of(headers: &HeaderMap, tls: bool) -> Instance {
        let scheme = if tls { "https" } else { "http" };
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| is_host_port(h))
            .unwrap_or(PLACEHOLDER);
        let base = Url::parse(&format!("{scheme}://{host}/"))
            .or_else(|_| Url::parse(&format!("{scheme}://{PLACEHOLDER}/")))
            .expect("the placeholder is a URL");
        Instance { base }
    }

    /// `http://127.0.0.1:10760`, no trailing slash.
    pub fn origin(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// `127.0.0.1:10760`: what the runbook's `leakwatch:10760` stands for.
    pub fn host_port(&self) -> String {
        self.origin()
            .split_once("://")
            .map(|(_, h)| h.to_string())
            .unwrap_or_default()
    }

    /// The URL of `segments` under this instance, each percent-encoded as one path
    /// segment (`["dumps", "a b", ""]` gives `.../dumps/a%20b/`).
    pub fn url(&self, segments: &[&str]) -> String {
        let mut u = self.base.clone();
        if let Ok(mut path) = u.path_segments_mut() {
            path.clear().extend(segments);
        }
        u.to_string()
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` of plain characters: a value safe to put
/// in a URL and a shell command.
fn is_host_port(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        && !h.starts_with(['.', '-', ':'])
}

impl<S: Send + Sync> FromRequestParts<S> for Instance {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let tls = parts.extensions.get::<ServedOverTls>().is_some();
        Ok(Instance::of(&parts.headers, tls))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_host(h: Option<&str>, tls: bool) -> Instance {
        let mut headers = HeaderMap::new();
        if let Some(h) = h {
            headers.insert(header::HOST, h.parse().unwrap());
        }
        Instance::of(&headers, tls)
    }

    #[test]
    fn host_header_or_placeholder() {
        // (Host, tls, origin)
        let cases = [
            (Some("127.0.0.1:10760"), false, "http://127.0.0.1:10760"),
            (Some("lw.example.com"), true, "https://lw.example.com"),
            (Some("[::1]:8080"), false, "http://[::1]:8080"),
            (None, false, "http://leakwatch:10760"),
            (Some("a;rm -rf ~"), false, "http://leakwatch:10760"),
            (Some("user@host"), false, "http://leakwatch:10760"),
            (Some("host/path"), false, "http://leakwatch:10760"),
            (Some("-x"), false, "http://leakwatch:10760"),
        ];
        for (host, tls, want) in cases {
            assert_eq!(with_host(host, tls).origin(), want, "{host:?}");
        }
        assert_eq!(
            with_host(Some("127.0.0.1:10760"), false).host_port(),
            "127.0.0.1:10760"
        );
    }

    #[test]
    fn urls_encode_each_segment() {
        let i = with_host(Some("h:1"), false);
        assert_eq!(
            i.url(&["dumps", "a b/c", "heap.pb.gz"]),
            "http://h:1/dumps/a%20b%2Fc/heap.pb.gz"
        );
        assert_eq!(i.url(&["dumps", "orders", ""]), "http://h:1/dumps/orders/");
    }
}
