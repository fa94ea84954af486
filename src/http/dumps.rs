//! The dump routes: `POST /api/v1/dump`, the `/dumps/` listing (HTML or JSON, each
//! suspect pair with the commands that fetch it from this instance and compare it) and
//! downloads, over a [`DumpManager`]. Manual dumps are throttled by the manager (429
//! with `Retry-After`); whether writes are allowed at all is decided by
//! [`super::guard::guard_writes`] in front of every route.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;
use serde::Serialize;

use super::address::Instance;
use super::commands;
use super::layout::{Width, page};
use crate::dump::{DumpFile, DumpManager, ManualRefusal, ProfileType, Refusal};
use crate::error::{Error, FetchReason};
use crate::units::format_utc;

/// The dump routes over their own state, mergeable into any router:
/// `POST /api/v1/dump?target=NAME&profile=heap|goroutine`, `GET /dumps/` (HTML, or
/// JSON with `Accept: application/json` or `?format=json`), `GET /dumps/<target>/`
/// and `GET /dumps/<target>/<file>` (download).
pub fn routes<S: Clone + Send + Sync + 'static>(manager: Arc<DumpManager>) -> Router<S> {
    Router::new()
        .route("/api/v1/dump", post(api_dump))
        .route("/dumps", get(|| async { Redirect::permanent("/dumps/") }))
        .route("/dumps/", get(list_all))
        .route("/dumps/{target}/", get(list_target))
        .route("/dumps/{target}/{file}", get(download))
        .with_state(manager)
}

fn json_error(status: StatusCode, msg: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": msg.into() })),
    )
        .into_response()
}

#[derive(Serialize)]
struct FileView<'a> {
    #[serde(flatten)]
    file: &'a DumpFile,
    time_utc: String,
    url: String,
}

fn view(f: &DumpFile) -> FileView<'_> {
    FileView {
        file: f,
        time_utc: format_utc(f.time),
        url: format!("/dumps/{}/{}", f.target, f.name),
    }
}

async fn api_dump(
    State(m): State<Arc<DumpManager>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(target) = q.get("target") else {
        return json_error(StatusCode::BAD_REQUEST, "missing ?target=NAME");
    };
    let profile = match q.get("profile").map(String::as_str) {
        None => ProfileType::Heap,
        Some(s) => match ProfileType::parse(s) {
            Some(p) => p,
            None => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    format!("profile must be heap or goroutine, not {s:?}"),
                );
            }
        },
    };
    if !m.has_target(target) {
        return json_error(StatusCode::NOT_FOUND, format!("unknown target {target:?}"));
    }
    if !m.enabled(target) {
        return json_error(
            StatusCode::CONFLICT,
            format!("dumps are off for target {target:?}: set dumps.dir"),
        );
    }
    match m.dump_manual(target, profile).await {
        Ok(f) => (StatusCode::CREATED, axum::Json(view(&f))).into_response(),
        Err(ManualRefusal::TooSoon(wait)) => {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut r = json_error(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "a manual {} dump of {target:?} was taken or is running; the target's dump cooldown and overhead budget allow the next in {secs}s",
                    profile.as_str()
                ),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs.max(1)));
            r
        }
        Err(ManualRefusal::Failed(e)) => {
            let status = match &e {
                Error::Fetch {
                    reason: FetchReason::Timeout,
                    ..
                } => StatusCode::GATEWAY_TIMEOUT,
                Error::Fetch { .. } | Error::NotFormat { .. } => StatusCode::BAD_GATEWAY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            json_error(status, m.scrub(target, &e.to_string()))
        }
    }
}

fn wants_json(headers: &HeaderMap, q: &HashMap<String, String>) -> bool {
    if let Some(f) = q.get("format") {
        return f == "json";
    }
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
}

async fn list_all(
    State(m): State<Arc<DumpManager>>,
    at: Instance,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    listing(&m, None, &at, &headers, &q)
}

async fn list_target(
    State(m): State<Arc<DumpManager>>,
    UrlPath(target): UrlPath<String>,
    at: Instance,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !m.has_target(&target) {
        return (StatusCode::NOT_FOUND, "unknown target\n").into_response();
    }
    listing(&m, Some(&target), &at, &headers, &q)
}

fn listing(
    m: &DumpManager,
    target: Option<&str>,
    at: &Instance,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Response {
    let files = m.list(target);
    let mut targets: Vec<String> = files.iter().map(|f| f.target.clone()).collect();
    targets.dedup();
    let pairs: Vec<serde_json::Value> = targets
        .iter()
        .filter_map(|t| {
            let (base, new) = m.pair_for(t)?;
            let c = commands::pair(at, t, &base.name, &new.name);
            Some(serde_json::json!({
                "target": t,
                "base": base.name,
                "new": new.name,
                "base_url": commands::dump_url(at, t, &base.name),
                "new_url": commands::dump_url(at, t, &new.name),
                "command": c.one_line,
                "pprof_command": c.pprof,
            }))
        })
        .collect();
    if wants_json(headers, q) {
        let views: Vec<FileView<'_>> = files.iter().map(view).collect();
        return axum::Json(serde_json::json!({ "dumps": views, "pairs": pairs })).into_response();
    }
    let body = html! {
        h1 { "Profile dumps" }
        p { a href="/dumps/?format=json" { "JSON" } }
        @for p in &pairs {
            @let s = |k: &str| p[k].as_str().unwrap_or_default().to_string();
            p {
                "Leak suspected on " b { (s("target")) }
                ": fetch the baseline and the suspect from this leakwatch and compare them:"
            }
            pre class="cmd" { (s("command")) }
            p { "Or with Go's pprof, straight from the URLs:" }
            pre class="cmd" { (s("pprof_command")) }
        }
        div class="scroll" { table {
            tr {
                th { "target" } th { "file" } th { "profile" } th { "reason" }
                th { "time (UTC)" } th { "bytes" }
            }
            @for f in &files {
                tr {
                    td { (f.target) }
                    td { a href={ "/dumps/" (f.target) "/" (f.name) } { (f.name) } }
                    td { (f.profile.as_str()) }
                    td { (f.reason.as_str()) }
                    td { (format_utc(f.time)) }
                    td { (f.size) }
                }
            }
            @if files.is_empty() {
                tr { td colspan="6" { "no dumps yet" } }
            }
        } }
    };
    page("leakwatch dumps", Width::Wide, body).into_response()
}

async fn download(
    State(m): State<Arc<DumpManager>>,
    UrlPath((target, file)): UrlPath<(String, String)>,
) -> Response {
    let checked = {
        let m = m.clone();
        let (target, file) = (target.clone(), file.clone());
        tokio::task::spawn_blocking(move || m.resolve_download(&target, &file)).await
    };
    let (path, meta) = match checked {
        Ok(Ok(v)) => v,
        Ok(Err(Refusal::NotFound)) => {
            return (StatusCode::NOT_FOUND, "no such dump\n").into_response();
        }
        Ok(Err(Refusal::Forbidden)) => return (StatusCode::FORBIDDEN, "refused\n").into_response(),
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response(),
    };
    let f = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) => return (StatusCode::NOT_FOUND, "no such dump\n").into_response(),
    };
    // The file opened must be the one checked (a swap in between is refused).
    {
        use std::os::unix::fs::MetadataExt as _;
        match f.metadata().await {
            Ok(now) if now.dev() == meta.dev() && now.ino() == meta.ino() && now.is_file() => {}
            _ => return (StatusCode::FORBIDDEN, "refused\n").into_response(),
        }
    }
    let stream = futures_util::stream::unfold(f, |mut f| async move {
        use tokio::io::AsyncReadExt as _;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, meta.len().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}
