//! The guard in front of every route: writes need their flag (`--web.enable-lifecycle`,
//! `--web.enable-admin-api`) and must not come from another site's page.

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
pub fn same_origin(headers: &HeaderMap, authority: Option<&str>) -> Result<(), String> {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("?"));
    if let Some(site) = text("sec-fetch-site") {
        return match site {
            "same-origin" | "none" => Ok(()),
            other => Err(format!("Sec-Fetch-Site: {other}")),
        };
    }
    let Some(origin) = text("origin") else {
        return Ok(());
    };
    let host = text("host").or(authority).unwrap_or_default();
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match origin_host {
        Some(o) if !host.is_empty() && o.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(format!("Origin {origin:?} is not this server ({host:?})")),
    }
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
                    ("origin", "http://lw:10760"),
                ],
                false,
            ),
            (vec![("origin", "http://lw:10760")], true),
            (vec![("origin", "https://LW:10760")], true),
            (vec![("origin", "http://lw:10761")], false),
            (vec![("origin", "http://evil.example")], false),
            (vec![("origin", "null")], false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, "lw:10760".parse().unwrap());
            for (k, v) in &headers {
                h.insert(*k, v.parse().unwrap());
            }
            assert_eq!(same_origin(&h, None).is_ok(), ok, "{headers:?}");
        }
        // HTTP/2: no Host header, the authority of the request instead.
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, "https://lw:10760".parse().unwrap());
        assert!(same_origin(&h, Some("lw:10760")).is_ok());
        assert!(same_origin(&h, None).is_err());
    }
}
