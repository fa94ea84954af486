//! The leak report page of one target, `GET /targets/{name}`: charts of the analysis
//! window (inline SVG, see [`super::charts`]), the verdict and its evidence, in-use
//! share by package, top growing functions, goroutine states, time to OOM and the
//! target's recent dumps.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::charts::{Series, Unit, svg_chart};
use super::html::html_escape;
use crate::analysis::headline::Headline;
use crate::analysis::window::Sample;
use crate::dump::DumpManager;
use crate::state::AppState;
use crate::targets::{Status, TargetState};
use crate::units::{fmt_bytes, fmt_duration};

/// The report routes, merged into [`crate::http::app`].
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/targets/{name}", get(page))
}

/// The landing page's link to a target's report.
pub fn target_link(name: &str) -> String {
    let n = html_escape(name);
    format!("<a href=\"/targets/{n}\">{n}</a>")
}

async fn page(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    let Some(t) = state.targets().into_iter().find(|t| t.config.name == name) else {
        let known: Vec<String> = state
            .targets()
            .iter()
            .map(|t| target_link(&t.config.name))
            .collect();
        let body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>unknown target</title></head><body>\
             <h1>No target named {}</h1><p>Known targets: {}</p><p><a href=\"/\">back</a></p></body></html>\n",
            html_escape(&name),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
        return (StatusCode::NOT_FOUND, Html(body)).into_response();
    };
    // Dumps join here once AppState carries the DumpManager.
    Html(render(&t, Some(state.dumps.as_ref()))).into_response()
}

/// A series of the window's samples, x relative to the newest sample.
fn series(
    samples: &[&Sample],
    newest: SystemTime,
    label: &'static str,
    color: &'static str,
    get: impl Fn(&Sample) -> Option<u64>,
) -> Series {
    Series {
        label,
        color,
        dashed: false,
        points: samples
            .iter()
            .filter_map(|s| {
                let v = get(s)?;
                let dt = newest
                    .duration_since(s.at)
                    .map(|d| -d.as_secs_f64())
                    .unwrap_or(0.0);
                Some((dt, v as f64))
            })
            .collect(),
    }
}

// ---------------------------------------------------------------------------------
// The page
// ---------------------------------------------------------------------------------

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em 2em;color:#222;max-width:1100px}\
h1{margin-bottom:0.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:2px}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
td.num{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#777}\
.suspect{color:#b00;font-weight:bold}.ok{color:#070}.down{color:#b00}.up{color:#070}\
.verdict-box{padding:0.6em 1em;border-radius:6px;margin:0.8em 0}\
.verdict-box.bad{background:#fdecea;border:1px solid #e0a0a0}.verdict-box.good{background:#eef8ee;border:1px solid #a0d0a0}\
.verdict-box.cold{background:#f4f4f4;border:1px solid #ccc}\
figure.chart{margin:1em 0}figcaption{font-weight:600;margin-bottom:4px}\
svg .grid{stroke:#e6e6e6;stroke-width:1}svg .axis{stroke:#888;stroke-width:1}\
svg text{font-size:11px;fill:#555;font-family:system-ui,sans-serif}\
.legend span{margin-right:1.4em;font-size:0.9em}.legend i{display:inline-block;width:12px;height:3px;margin-right:5px;vertical-align:middle}\
.bar{display:inline-block;height:10px;background:#4a78c2;vertical-align:middle;margin-right:6px}\
code,pre{background:#f6f6f6;padding:2px 4px;border-radius:3px}pre{padding:6px 8px;overflow-x:auto}\
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:1.5em}\
td,th,li,p{overflow-wrap:anywhere}.note{font-size:0.85em;color:#555;margin:2px 0 0 0}\
.provisional{background:#fff8e1;border:1px solid #e8d48a;padding:0.5em 0.8em;border-radius:6px}\
progress{width:16em;max-width:60%;vertical-align:middle;margin-right:0.5em}\
@media (max-width:700px){body{margin:0.8em}.grid2{grid-template-columns:1fr}\
table{width:100%}td,th{padding:3px 4px}.legend span{display:inline-block;margin-right:0.8em}}";

/// The whole report page of one target.
pub fn render(t: &TargetState, dumps: Option<&DumpManager>) -> String {
    let st = t.status();
    let name = &t.config.name;
    let mut page = String::with_capacity(64 * 1024);
    let _ = write!(
        page,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} – leakwatch report</title><style>{STYLE}</style></head><body>\
         <p><a href=\"/\">← all targets</a> · <a href=\"/metrics\">metrics</a></p>\
         <h1>{}</h1>",
        html_escape(name),
        html_escape(name)
    );
    let (class, word) = if st.up {
        ("up", "up")
    } else {
        ("down", "down")
    };
    let last = st
        .last_scrape
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map_or("never".to_string(), |d| {
            format!("{:.1}s ago", d.as_secs_f64())
        });
    let live = st
        .signals
        .as_ref()
        .and_then(|s| s.live_heap())
        .map(|l| format!(" · live heap {l}"))
        .unwrap_or_default();
    let _ = write!(
        page,
        "<p><code>{}</code> · <span class=\"{class}\">{word}</span>{} · last scrape {last} · \
         scrape every {} · window {} (warm-up {}) · {} samples held, {} restarts seen</p>",
        html_escape(&crate::scrape::redact_url(t.config.url.as_str())),
        html_escape(&live),
        crate::units::fmt_duration_human(t.config.interval),
        crate::units::fmt_duration_human(t.config.window),
        crate::units::fmt_duration_human(st.window.warmup()),
        st.window.len(),
        st.window.restarts(),
    );
    if let Some(e) = st.last_error.as_deref().filter(|_| !st.up) {
        let _ = write!(page, "<p class=\"down\">last error: {}</p>", html_escape(e));
    }
    verdict_section(&mut page, &st);
    charts_section(&mut page, &st);
    heap_sections(&mut page, &st);
    goroutine_section(&mut page, &st);
    oom_section(&mut page, &st);
    page.push_str("<h2>Recent dumps</h2>");
    page.push_str(&dumps_section(dumps, name));
    let secs = super::html::refresh_seconds(t.config.interval);
    let _ = writeln!(
        page,
        "<p class=\"muted\">This page refreshes every {secs} s, keeping your place \
         (<a href=\"?refresh=0\">stop</a>).</p>{}</body></html>",
        super::html::refresh_script(secs)
    );
    page
}

fn verdict_section(page: &mut String, st: &Status) {
    page.push_str("<h2>Verdict</h2>");
    let headline = st.headline();
    let box_class = match headline {
        Headline::Suspected { .. } => "bad",
        Headline::NoLeak => "good",
        _ => "cold",
    };
    // While the window warms up: how far, as a bar.
    let progress = match &st.signals {
        Some(s) if !s.warm => {
            let need = st.window.warmup().as_secs_f64().max(1.0);
            let have = s.window_span_seconds.clamp(0.0, need);
            format!(
                "<div><progress id=\"warmup\" max=\"{need:.0}\" value=\"{have:.0}\"></progress>\
                 {:.0}% of the warm-up</div>",
                100.0 * have / need
            )
        }
        _ => String::new(),
    };
    // The evidence table (warm) or the provisional figures (warming up) below say
    // more than a second headline would.
    let _ = write!(
        page,
        "<div class=\"verdict-box {box_class}\" id=\"verdict\"><strong>{}</strong>{progress}</div>",
        html_escape(&headline.sentence()),
    );
    let Some(s) = &st.signals else {
        return;
    };
    if !s.warm {
        // The figures so far, before any verdict: what /metrics already has.
        let _ = write!(
            page,
            "<div class=\"provisional\" id=\"provisional\"><strong>Provisional</strong>: the \
             window is not warm yet ({} of data). These figures are what the verdict will be \
             judged on, and may still change; no verdict before {} of data.",
            fmt_duration(s.window_span_seconds),
            fmt_duration(st.window.warmup().as_secs_f64())
        );
        facts_table(page, s);
        page.push_str("</div>");
        return;
    }
    // The evidence: every kind with its reasons, suspected or not.
    page.push_str("<table id=\"evidence\"><tr><th>kind</th><th>score</th><th>evidence</th></tr>");
    for k in s.verdict.kinds() {
        let cls = if k.suspected { "suspect" } else { "ok" };
        let reasons: Vec<String> = k
            .reasons
            .iter()
            .map(|r| format!("<li>{}</li>", html_escape(r)))
            .collect();
        let _ = write!(
            page,
            "<tr><td class=\"{cls}\">{}</td><td class=\"num\">{:.2}</td><td><ul>{}</ul></td></tr>",
            k.kind.as_str(),
            k.score,
            reasons.concat()
        );
    }
    page.push_str("</table>");
    facts_table(page, s);
}

/// The figures behind the verdict: slopes, ratios, GC, baseline.
fn facts_table(page: &mut String, s: &crate::analysis::signals::Signals) {
    let mut facts: Vec<(String, String)> = Vec::new();
    if let Some(l) = &s.live {
        facts.push((
            "live heap slope".into(),
            format!(
                "{}/h, monotonicity {:.2}",
                fmt_bytes(l.fit.slope * 3600.0),
                l.monotonicity
            ),
        ));
    }
    if let Some(g) = &s.goroutines {
        facts.push((
            "goroutines".into(),
            format!(
                "{:.0}, {:+.0}/h, monotonicity {:.2}",
                g.latest,
                g.fit.slope * 3600.0,
                g.monotonicity
            ),
        ));
    }
    if let Some((f, g)) = s.heap_growth.iter().find(|(f, g)| f != "other" && *g > 0) {
        facts.push((
            "top growing function".into(),
            format!("{f} +{}", fmt_bytes(*g as f64)),
        ));
    }
    if let Some(f) = &s.heap_alloc {
        facts.push((
            "HeapAlloc slope".into(),
            format!("{}/h", fmt_bytes(f.slope * 3600.0)),
        ));
    }
    if let Some(f) = &s.next_gc {
        facts.push((
            "NextGC slope".into(),
            format!("{}/h", fmt_bytes(f.slope * 3600.0)),
        ));
    }
    if let Some(r) = s.alloc_free_bytes_ratio {
        facts.push(("allocated / freed bytes".into(), format!("{r:.2}")));
    }
    if let Some(r) = s.alloc_free_objects_ratio {
        facts.push(("mallocs / frees".into(), format!("{r:.2}")));
    }
    if let Some(h) = s.gc_headroom_bytes {
        facts.push(("GC headroom (NextGC − HeapAlloc)".into(), fmt_bytes(h)));
    }
    if let Some(p) = s.gc_pause_p99_seconds {
        facts.push(("GC pause p99".into(), format!("{:.2} ms", p * 1000.0)));
    }
    if let (Some(b), Some(r)) = (&s.baseline, s.baseline_ratio) {
        facts.push((
            "live heap vs baseline".into(),
            format!("{:.2}× of {}", r, fmt_bytes(b.bytes as f64)),
        ));
    }
    if !facts.is_empty() {
        page.push_str("<table id=\"facts\" style=\"margin-top:1em\">");
        for (k, v) in facts {
            let _ = write!(
                page,
                "<tr><th>{}</th><td>{}</td></tr>",
                html_escape(&k),
                html_escape(&v)
            );
        }
        page.push_str("</table>");
    }
}

fn charts_section(page: &mut String, st: &Status) {
    page.push_str("<h2>Window</h2>");
    let samples: Vec<&Sample> = st.window.samples().iter().collect();
    let Some(newest) = samples.last().map(|s| s.at) else {
        page.push_str("<p class=\"muted\">no samples yet</p>");
        return;
    };
    // The x axis covers the data held (at least a minute), not the whole window: the
    // first minutes would be crammed into the right-most pixels.
    let span = st
        .window
        .span()
        .as_secs_f64()
        .max(60.0)
        .min(st.window.config().span.as_secs_f64());
    page.push_str(&svg_chart(
        "Heap: live heap (after GC), HeapAlloc, NextGC",
        Unit::Bytes,
        span,
        &[
            series(
                &samples,
                newest,
                "live heap (heap profile)",
                "#c0392b",
                |s| s.profile_inuse,
            ),
            series(&samples, newest, "live heap (NextGC)", "#8e44ad", |s| {
                s.nextgc_live
            }),
            series(&samples, newest, "HeapAlloc", "#2e86c1", |s| s.heap_alloc),
            Series {
                dashed: true,
                ..series(&samples, newest, "NextGC", "#7f8c8d", |s| s.next_gc)
            },
        ],
    ));
    page.push_str(
        "<p class=\"note\" id=\"live-heap-note\">Two estimates of the live heap: \
         <b>heap profile</b> is the in-use bytes of the runtime's heap profile (what survived \
         the last GC, published up to two GCs late); <b>NextGC</b> is NextGC ÷ (1 + GOGC/100), \
         the heap the GC pacer counted as live, which also counts goroutine stacks and \
         globals, so it reads higher. HeapAlloc is the live heap plus garbage not yet \
         collected: a sawtooth.</p>",
    );
    page.push_str(&svg_chart(
        "Goroutines",
        Unit::Count,
        span,
        &[
            series(&samples, newest, "goroutines", "#16a085", |s| s.goroutines),
            series(
                &samples,
                newest,
                "HTTP client connections",
                "#d35400",
                |s| s.http_client_connections,
            ),
        ],
    ));
    let has_container = samples
        .iter()
        .any(|s| s.working_set.is_some() || s.rss.is_some());
    if has_container {
        page.push_str(&svg_chart(
            "Container memory against its limit",
            Unit::Bytes,
            span,
            &[
                series(&samples, newest, "working set", "#2874a6", |s| {
                    s.working_set
                }),
                series(&samples, newest, "RSS", "#27ae60", |s| s.rss),
                series(&samples, newest, "Go Sys", "#a569bd", |s| s.go_sys),
                Series {
                    dashed: true,
                    ..series(&samples, newest, "cgroup limit", "#b03a2e", |s| {
                        s.cgroup_limit
                    })
                },
                Series {
                    dashed: true,
                    ..series(&samples, newest, "GOMEMLIMIT", "#ca6f1e", |s| s.gomemlimit)
                },
            ],
        ));
    } else {
        page.push_str(
            "<p class=\"muted\">Container memory: not watched (give the target a <code>pid</code>, \
             <code>pid_file</code>, <code>process</code> or <code>cgroup</code> in the config).</p>",
        );
    }
}

fn heap_sections(page: &mut String, st: &Status) {
    let Some(s) = &st.signals else {
        return;
    };
    page.push_str("<div class=\"grid2\"><div><h2>Top growing functions</h2>");
    let growing: Vec<&(String, i64)> = s
        .heap_growth
        .iter()
        .filter(|(f, g)| f != "other" && *g > 0)
        .collect();
    if growing.is_empty() {
        page.push_str("<p class=\"muted\">no allocation site grew across the window</p>");
    } else {
        page.push_str(
            "<table id=\"growth\"><tr><th>allocation site</th><th>in-use growth</th></tr>",
        );
        for (f, g) in growing {
            let _ = write!(
                page,
                "<tr><td><code>{}</code></td><td class=\"num\">+{}</td></tr>",
                html_escape(f),
                html_escape(&fmt_bytes(*g as f64))
            );
        }
        page.push_str("</table>");
    }
    page.push_str("</div><div><h2>In-use share by package</h2>");
    if s.inuse_share.is_empty() {
        page.push_str("<p class=\"muted\">no heap profile yet</p>");
    } else {
        page.push_str("<table id=\"packages\"><tr><th>package</th><th>share</th></tr>");
        for (p, v) in s
            .inuse_share
            .iter()
            .filter(|(p, v)| p != "other" || *v > 0.0)
        {
            let pct = (v * 100.0).clamp(0.0, 100.0);
            let _ = write!(
                page,
                "<tr><td><code>{}</code></td><td><span class=\"bar\" style=\"width:{:.0}px\"></span>{pct:.1}%</td></tr>",
                html_escape(p),
                pct * 1.5
            );
        }
        page.push_str("</table>");
    }
    page.push_str("</div></div>");
}

fn goroutine_section(page: &mut String, st: &Status) {
    page.push_str("<h2>Goroutines</h2>");
    let Some(g) = &st.goroutines else {
        page.push_str("<p class=\"muted\">no goroutine profile yet</p>");
        return;
    };
    let _ = write!(
        page,
        "<p>{} goroutines, {} HTTP client connections.</p><div class=\"grid2\"><div>\
         <table id=\"states\"><tr><th>state</th><th>count</th></tr>",
        g.total, g.http_client_connections
    );
    for (state, n) in &g.by_state {
        let cls = if *n == 0 { " class=\"muted\"" } else { "" };
        let _ = write!(
            page,
            "<tr{cls}><td>{}</td><td class=\"num\">{n}</td></tr>",
            html_escape(state)
        );
    }
    page.push_str("</table></div><div>");
    let growth: Vec<&(String, i64)> = st
        .signals
        .as_ref()
        .map(|s| {
            s.goroutine_growth
                .iter()
                .filter(|(f, n)| f != "other" && *n > 0)
                .collect()
        })
        .unwrap_or_default();
    if growth.is_empty() {
        page.push_str("<p class=\"muted\">no blocking site grew across the window</p>");
    } else {
        page.push_str("<table id=\"goroutine-growth\"><tr><th>blocked in</th><th>growth</th></tr>");
        for (f, n) in growth {
            let _ = write!(
                page,
                "<tr><td><code>{}</code></td><td class=\"num\">+{n}</td></tr>",
                html_escape(f)
            );
        }
        page.push_str("</table>");
    }
    if let Some(l) = &st.leaked {
        let _ = write!(
            page,
            "<p>The Go runtime's goroutineleak profile proves <b>{}</b> goroutines leaked",
            l.total
        );
        if let Some((f, n)) = l.by_function.first() {
            let _ = write!(page, ", most in <code>{}</code> ({n})", html_escape(f));
        }
        page.push_str(".</p>");
    }
    page.push_str("</div></div>");
}

fn oom_section(page: &mut String, st: &Status) {
    page.push_str("<h2>Time to OOM</h2>");
    let Some(s) = &st.signals else {
        page.push_str("<p class=\"muted\">no data yet</p>");
        return;
    };
    match (&s.time_to_oom, &s.memory_limit, &s.memory_usage) {
        (Some(t), Some((lsrc, limit)), Some((usrc, usage))) => {
            let _ = write!(
                page,
                "<p id=\"oom\" class=\"suspect\">{} at the current rate ({} to {}): {} ({}) of {} ({}) used, growing {}/h.</p>",
                html_escape(&fmt_duration(t.seconds)),
                html_escape(&fmt_duration(t.earliest_seconds)),
                html_escape(&fmt_duration(t.latest_seconds)),
                html_escape(&fmt_bytes(*usage as f64)),
                usrc.as_str(),
                html_escape(&fmt_bytes(*limit as f64)),
                lsrc.as_str(),
                html_escape(&fmt_bytes(t.rate_per_second * 3600.0))
            );
        }
        (None, Some((lsrc, limit)), _) => {
            let _ = write!(
                page,
                "<p id=\"oom\">Not growing towards the {} limit ({}).</p>",
                lsrc.as_str(),
                html_escape(&fmt_bytes(*limit as f64))
            );
        }
        _ => page.push_str(
            "<p id=\"oom\" class=\"muted\">No memory limit known (no cgroup limit, no GOMEMLIMIT, \
             no <code>memory_limit</code> in the config): no time to OOM.</p>",
        ),
    }
    if st.oom.kills > 0 {
        let _ = write!(
            page,
            "<p class=\"suspect\">{} OOM kill(s) of this target seen in the kernel log.</p>",
            st.oom.kills
        );
    }
}

/// The "recent dumps" section: the target's newest dumps with download links and the
/// `leakwatch diff` command for its latest suspect pair; `None` when dumps are off.
pub fn dumps_section(dumps: Option<&DumpManager>, target: &str) -> String {
    let Some(m) = dumps.filter(|m| m.enabled(target)) else {
        return "<p id=\"dumps\" class=\"muted\">Dumps are not configured for this target \
                (set <code>dumps.dir</code> in the config to keep heap and goroutine profiles \
                as evidence).</p>"
            .to_string();
    };
    let files = m.list(Some(target));
    let mut out = String::from("<div id=\"dumps\">");
    if let Some((base, new)) = m.pair_for(target) {
        let _ = write!(
            out,
            "<p>Latest suspect pair, ready to compare:</p><pre>leakwatch diff {} {}</pre>",
            html_escape(&crate::dump::shell_quote(&base.path.to_string_lossy())),
            html_escape(&crate::dump::shell_quote(&new.path.to_string_lossy()))
        );
    }
    if files.is_empty() {
        out.push_str("<p class=\"muted\">no dumps yet</p>");
    } else {
        out.push_str("<table><tr><th>file</th><th>profile</th><th>reason</th><th>size</th></tr>");
        for f in files.iter().take(20) {
            let _ = write!(
                out,
                "<tr><td><a href=\"/dumps/{}/{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
                html_escape(target),
                html_escape(&f.name),
                html_escape(&f.name),
                f.profile.as_str(),
                f.reason.as_str(),
                html_escape(&fmt_bytes(f.size as f64))
            );
        }
        out.push_str("</table>");
        let _ = write!(
            out,
            "<p><a href=\"/dumps/{}/\">all dumps of this target</a></p>",
            html_escape(target)
        );
    }
    out.push_str("</div>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_is_escaped() {
        assert_eq!(
            target_link("a\"b"),
            "<a href=\"/targets/a&quot;b\">a&quot;b</a>"
        );
    }
}
