//! The guard in front of every route: writes need their flag (`--web.enable-lifecycle`,
//! `--web.enable-admin-api`) and must not come from another site's page, nor from a
//! page that reached leakwatch through a DNS name rebound to its address.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::WriteAccess;

/// In front of every route: reads pass; a write (any method but GET, HEAD, OPTIONS)
/// needs its flag (403 naming it) and must not come from another site's page (403).
/// `POST /-/reload` is lifecycle, every other write admin.
pub async fn guard_writes(State(access): State<WriteAccess>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let (allowed, flag, what) = if req.uri().path() == "/-/reload" {
        (
            access.lifecycle,
            "--web.enable-lifecycle",
            "the lifecycle API",
        )
    } else {
        (access.admin_api, "--web.enable-admin-api", "the admin API")
    };
    if !allowed {
        return (
            StatusCode::FORBIDDEN,
            format!("{what} is off: start leakwatch with {flag} to allow this request\n"),
        )
            .into_response();
    }
    let authority = req.uri().authority().map(|a| a.as_str().to_string());
    if let Err(why) = same_origin(req.headers(), authority.as_deref()) {
        tracing::warn!(path = %req.uri().path(), %why, "cross-site write refused");
        return (
            StatusCode::FORBIDDEN,
            format!("cross-site request refused: {why}\n"),
        )
            .into_response();
    }
    next.run(req).await
}

/// Whether a write comes from leakwatch's own origin or from no browser page at all,
/// the rule of Go's `http.CrossOriginProtection`: browsers send `Sec-Fetch-Site`
/// (only `same-origin` and `none`, a typed address, pass); older ones send `Origin`,
/// which must name the `Host` asked for; requests with neither (curl, scripts,
/// promtool) are not from a page and pass.
///
/// A page's own origin is not enough: evil.example's page, its DNS name rebound to
/// 127.0.0.1, is same-origin with itself and reaches leakwatch with `Host:
/// evil.example`. So a write from a browser must also name this server by address (an
/// IP address or `localhost`), which no other site can make a browser send. No page of
/// leakwatch writes: browsers only read.
pub fn same_origin(headers: &HeaderMap, authority: Option<&str>) -> Result<(), String> {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("?"));
    let host = text("host").or(authority).unwrap_or_default();
    let from_browser = text("sec-fetch-site").is_some() || text("origin").is_some();
    if from_browser && !names_an_address(host) {
        return Err(format!(
            "Host {host:?} is a DNS name (it may have been rebound to this address): \
             a browser's write must ask for leakwatch by IP address or localhost"
        ));
    }
    if let Some(site) = text("sec-fetch-site") {
        return match site {
            "same-origin" | "none" => Ok(()),
            other => Err(format!("Sec-Fetch-Site: {other}")),
        };
    }
    let Some(origin) = text("origin") else {
        return Ok(());
    };
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match origin_host {
        Some(o) if !host.is_empty() && o.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(format!("Origin {origin:?} is not this server ({host:?})")),
    }
}

/// Whether a `Host` (with or without its port) is an IP address or `localhost`: a
/// name no DNS answer of another site can stand behind.
fn names_an_address(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => {
            return rest
                .split_once(']')
                .is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok());
        }
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        },
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    #[test]
    fn writes_from_other_sites_are_told_apart() {
        for (headers, ok) in [
            (vec![], true),
            (vec![("sec-fetch-site", "same-origin")], true),
            (vec![("sec-fetch-site", "none")], true),
            (vec![("sec-fetch-site", "same-site")], false),
            (vec![("sec-fetch-site", "cross-site")], false),
            // Sec-Fetch-Site decides when present (a browser sent both).
            (
                vec![
                    ("sec-fetch-site", "cross-site"),
                    ("origin", "http://localhost:10760"),
                ],
                false,
            ),
            (vec![("origin", "http://localhost:10760")], true),
            (vec![("origin", "https://LOCALHOST:10760")], true),
            (vec![("origin", "http://localhost:10761")], false),
            (vec![("origin", "http://evil.example")], false),
            (vec![("origin", "null")], false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, "localhost:10760".parse().unwrap());
            for (k, v) in &headers {
                h.insert(*k, v.parse().unwrap());
            }
            assert_eq!(same_origin(&h, None).is_ok(), ok, "{headers:?}");
        }
    }

    #[test]
    fn a_browser_write_must_ask_for_an_address_not_a_name() {
        // (Host, from a browser (same origin), allowed)
        for (host, browser, ok) in [
            ("127.0.0.1:10760", true, true),
            ("[::1]:10760", true, true),
            ("[::1]", true, true),
            ("10.1.2.3", true, true),
            ("localhost:10760", true, true),
            ("LOCALHOST.:10760", true, true),
            ("lw.localhost:10760", true, true),
            // DNS rebinding: the attacker's name, rebound to this address.
            ("evil.example:10760", true, false),
            ("127.0.0.1.evil.example:10760", true, false),
            ("localhost.evil.example", true, false),
            ("[::1", true, false),
            ("", true, false),
            // Not a browser (curl --header Host:...): no page, no rebinding.
            ("evil.example:10760", false, true),
        ] {
            let mut h = HeaderMap::new();
            if !host.is_empty() {
                h.insert(header::HOST, host.parse().unwrap());
            }
            if browser {
                h.insert("sec-fetch-site", "same-origin".parse().unwrap());
                let origin = format!("http://{host}");
                h.insert(header::ORIGIN, origin.parse().unwrap());
            }
            assert_eq!(same_origin(&h, None).is_ok(), ok, "{host}");
        }
    }

    #[test]
    fn http2_has_the_authority_instead_of_host() {
        // HTTP/2: no Host header, the authority of the request instead.
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, "https://127.0.0.1:10760".parse().unwrap());
        assert!(same_origin(&h, Some("127.0.0.1:10760")).is_ok());
        assert!(same_origin(&h, None).is_err());
    }
}
