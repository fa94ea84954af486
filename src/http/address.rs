//! This instance's address as its reader reaches it, for the links and commands the
//! pages print: decided here and nowhere else. The `--web.external-url` flag
//! ([`ExternalUrl`], as in Prometheus: the URL under which leakwatch is reachable from
//! outside) when given, read first in [`Instance::of`]; otherwise the request's `Host`
//! over the request's scheme (`https` on a TLS connection). The same URL is exported as
//! `leakwatch_web_info{external_url}` ([`ExternalUrl::exported`]) for the dashboards'
//! links.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use reqwest::Url;

/// Marks a request that came over TLS (inserted by the server loop).
#[derive(Debug, Clone, Copy)]
pub struct ServedOverTls;

/// `--web.external-url`: the URL under which this leakwatch is reachable from outside
/// (behind a load balancer, a node's or pod's address), written into every link and
/// command the pages, the JSON and the runbook print, whatever `Host` a request
/// carried. `http` or `https`, a host, an optional port; no user, query or fragment.
/// A path prefix is refused: leakwatch serves at the root, and its pages link from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalUrl(Url);

impl ExternalUrl {
    /// Validates the flag's value; the error says what is wrong and what is expected.
    pub fn parse(s: &str) -> Result<ExternalUrl, String> {
        const WANT: &str = "expected http(s)://HOST[:PORT], e.g. http://10.0.0.7:10760";
        let u = Url::parse(s.trim()).map_err(|e| format!("{s:?}: not a URL ({e}); {WANT}"))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(format!(
                "{s:?}: scheme {:?} is not http or https; {WANT}",
                u.scheme()
            ));
        }
        match u.host_str() {
            Some(h) if is_host_port(h) => {}
            Some(h) => {
                return Err(format!(
                    "{s:?}: host {h:?} is not a plain name or address; {WANT}"
                ));
            }
            None => return Err(format!("{s:?}: no host; {WANT}")),
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(format!(
                "{s:?}: a user or password does not belong in a link every page prints; {WANT}"
            ));
        }
        if u.query().is_some() || u.fragment().is_some() {
            return Err(format!(
                "{s:?}: a query or fragment cannot prefix leakwatch's paths; {WANT}"
            ));
        }
        if u.path() != "/" {
            return Err(format!(
                "{s:?}: path {:?}: leakwatch serves at the root and cannot be linked under a \
                 path prefix; {WANT}",
                u.path()
            ));
        }
        Ok(ExternalUrl(u))
    }

    /// The value of `leakwatch_web_info`'s `external_url` label: no trailing slash,
    /// so the dashboards append `/targets/NAME`.
    pub fn exported(&self) -> String {
        self.0.as_str().trim_end_matches('/').to_string()
    }

    /// What to export when no flag is given: `scheme://IP:port` of the listener, unless
    /// it listens on every address (`0.0.0.0`, `[::]`), which names none a browser
    /// could use.
    pub fn of_listener(addr: std::net::SocketAddr, tls: bool) -> Option<ExternalUrl> {
        if addr.ip().is_unspecified() {
            return None;
        }
        let scheme = if tls { "https" } else { "http" };
        Url::parse(&format!("{scheme}://{addr}/"))
            .ok()
            .map(ExternalUrl)
    }
}

/// The address written when the request names none that can be trusted in a command
/// (no `Host`, or one that is not `host[:port]`): the runbook's placeholder.
pub const PLACEHOLDER: &str = "leakwatch:10760";

/// This instance as the reader reaches it: `http://127.0.0.1:10760`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    base: Url,
}

impl Instance {
    /// `--web.external-url` when given, else from a request's headers and whether it
    /// came over TLS.
    pub fn of(external: Option<&ExternalUrl>, headers: &HeaderMap, tls: bool) -> Instance {
        if let Some(e) = external {
            return Instance { base: e.0.clone() };
        }
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
        let external = parts.extensions.get::<ExternalUrl>();
        Ok(Instance::of(external, &parts.headers, tls))
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
        Instance::of(None, &headers, tls)
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

    #[test]
    fn external_url_wins_over_the_host_header() {
        let e = ExternalUrl::parse("https://lw.example.com:8443").unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:10760".parse().unwrap());
        let i = Instance::of(Some(&e), &h, false);
        assert_eq!(i.origin(), "https://lw.example.com:8443");
        assert_eq!(i.host_port(), "lw.example.com:8443");
        assert_eq!(
            i.url(&["targets", "a b"]),
            "https://lw.example.com:8443/targets/a%20b"
        );
        assert_eq!(e.exported(), "https://lw.example.com:8443");
    }

    #[test]
    fn external_url_is_validated() {
        // (flag value, Ok(exported) or Err(a piece of the error))
        let cases: [(&str, Result<&str, &str>); 12] = [
            ("http://10.0.0.7:10760", Ok("http://10.0.0.7:10760")),
            ("http://10.0.0.7:10760/", Ok("http://10.0.0.7:10760")),
            ("https://lw.example.com", Ok("https://lw.example.com")),
            ("http://[fd00::7]:10760", Ok("http://[fd00::7]:10760")),
            ("10.0.0.7:10760", Err("not a URL")),
            ("lw.example.com:10760", Err("is not http or https")),
            (
                "ftp://lw.example.com",
                Err("scheme \"ftp\" is not http or https"),
            ),
            ("http://u:p@lw:1", Err("a user or password")),
            ("http://lw:1/?x=1", Err("a query or fragment")),
            ("http://lw:1/#top", Err("a query or fragment")),
            ("http://lw:1/leakwatch", Err("path \"/leakwatch\"")),
            ("http://a_b:1", Err("host \"a_b\" is not a plain name")),
        ];
        for (flag, want) in cases {
            match (ExternalUrl::parse(flag), want) {
                (Ok(e), Ok(w)) => assert_eq!(e.exported(), w, "{flag}"),
                (Err(e), Err(w)) => {
                    assert!(e.contains(w), "{flag}: {e}");
                    assert!(e.contains("expected http(s)://HOST[:PORT]"), "{flag}: {e}");
                }
                (got, want) => panic!("{flag}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn listener_address_unless_wildcard() {
        let at =
            |a: &str, tls| ExternalUrl::of_listener(a.parse().unwrap(), tls).map(|e| e.exported());
        assert_eq!(
            at("127.0.0.1:10760", false).as_deref(),
            Some("http://127.0.0.1:10760")
        );
        assert_eq!(
            at("10.0.0.7:8443", true).as_deref(),
            Some("https://10.0.0.7:8443")
        );
        assert_eq!(
            at("[::1]:10760", false).as_deref(),
            Some("http://[::1]:10760")
        );
        assert_eq!(at("0.0.0.0:10760", false), None);
        assert_eq!(at("[::]:10760", false), None);
    }
}
