//! The leak report page of one target, `GET /targets/{name}`: charts of the analysis
//! window (inline SVG, see [`super::charts`]), the verdict and its evidence, in-use
//! share by package, top growing functions, goroutine states, time to OOM and the
//! target's recent dumps.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, html};

use super::address::Instance;
use super::charts::{Series, Unit, svg_chart};
use super::commands;
use super::html::{
    TIME_TO_OOM_ANCHOR, Tone, ago, headline_anchor, labelled, live_heap, reason_text,
    refresh_script, refresh_seconds, runbook_link, target_link, words,
};
use super::layout::{Width, page};
use crate::analysis::signals::Signals;
use crate::analysis::window::Sample;
use crate::dump::DumpManager;
use crate::state::AppState;
use crate::targets::{Status, TargetState};
use crate::units::{fmt_bytes, fmt_duration, fmt_duration_human};

/// The report route.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/targets/{name}", get(report))
}

async fn report(
    State(state): State<Arc<AppState>>,
    at: Instance,
    Path(name): Path<String>,
) -> Response {
    let targets = state.targets();
    let Some(t) = targets.iter().find(|t| t.config.name == name) else {
        let body = html! {
            h1 { "No target named " (name) }
            p {
                "Known targets: "
                @for (i, t) in targets.iter().enumerate() {
                    @if i > 0 { ", " }
                    (target_link(&t.config.name))
                }
                @if targets.is_empty() { "none" }
            }
            p { a href="/" { "back" } }
        };
        return (
            StatusCode::NOT_FOUND,
            page("unknown target", Width::Wide, body),
        )
            .into_response();
    };
    render(t, Some(state.dumps.as_ref()), &at).into_response()
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

/// The whole report page of one target, its commands written for `at`.
pub fn render(t: &TargetState, dumps: Option<&DumpManager>, at: &Instance) -> Markup {
    let st = t.status();
    let name = &t.config.name;
    let live = live_heap(&st);
    let secs = refresh_seconds(t.config.interval);
    let body = html! {
        h1 { (name) }
        p {
            code { (crate::scrape::redact_url(t.config.url.as_str())) } " · "
            @if st.up { span class="up" { "up" } } @else { span class="down" { "down" } }
            @if !live.0.is_empty() { " · live heap " (live) }
            @let (oom, oom_src, tone) = super::html::time_to_oom(&st);
            " · time to OOM "
            a id="ttoom" class=(tone.class()) href=(runbook_link(name, TIME_TO_OOM_ANCHOR)) { (oom) }
            @if !oom_src.is_empty() { " " span class="src" { "(" (oom_src) ")" } }
            " · last scrape " (ago(st.last_scrape))
            " · scrape every " (fmt_duration_human(t.config.interval))
            " · window " (fmt_duration_human(t.config.window))
            " (warm-up " (fmt_duration_human(st.window.warmup())) ") · "
            (st.window.len()) " samples held, " (st.window.restarts()) " restarts seen"
        }
        // A discovered target's pod identity (or a configured target's own labels).
        @if !t.config.labels.is_empty() {
            p class="muted" {
                @for (i, (k, v)) in t.config.labels.iter().enumerate() {
                    @if i > 0 { " · " }
                    (k) "=" code { (v) }
                }
            }
        }
        @if let Some(e) = st.last_error.as_deref().filter(|_| !st.up) {
            p class="down" { "last error: " (e) }
        }
        (verdict_section(name, &st))
        (charts_section(&st))
        (heap_sections(&st))
        (goroutine_section(&st))
        (oom_section(name, &st))
        h2 { "Recent dumps" }
        (dumps_section(dumps, name, at))
        p class="muted" {
            "This page refreshes every " (secs) " s, keeping your place ("
            a href="?refresh=0" { "stop" } ")."
        }
        (refresh_script(secs))
    };
    page(&format!("{name} – leakwatch report"), Width::Wide, body)
}

fn verdict_section(name: &str, st: &Status) -> Markup {
    let headline = st.headline();
    let box_class = match Tone::of_headline(&headline) {
        Tone::Red => "bad",
        Tone::Green => "good",
        Tone::Amber => "unsure",
        Tone::Grey => "cold",
    };
    let runbook = headline_anchor(&headline).map(|a| runbook_link(name, a));
    // While the window warms up: how far, as a bar.
    let warming = st.signals.as_ref().filter(|s| !s.warm);
    let need = st.window.warmup().as_secs_f64().max(1.0);
    html! {
        h2 { "Verdict" }
        // The evidence table (warm) or the provisional figures (warming up) below say
        // more than a second headline would.
        div class={ "verdict-box " (box_class) } id="verdict" {
            strong class=(Tone::of_headline(&headline).class()) { (headline.sentence()) }
            @if let Some(href) = &runbook {
                " · " a href=(href) { "what to do (runbook)" }
            }
            @if let Some(s) = warming {
                @let have = s.window_span_seconds.clamp(0.0, need);
                div {
                    progress id="warmup" max=(format!("{need:.0}")) value=(format!("{have:.0}")) {}
                    (format!("{:.0}", 100.0 * have / need)) "% of the warm-up"
                }
            }
        }
        @if let Some(s) = &st.signals {
            @if !s.warm {
                // The figures so far, before any verdict: what /metrics already has.
                div class="provisional" id="provisional" {
                    strong { "Provisional" }
                    ": the window is not warm yet (" (fmt_duration(s.window_span_seconds))
                    " of data). These figures are what the verdict will be judged on, and \
                     may still change; no verdict before "
                    (fmt_duration(st.window.warmup().as_secs_f64())) " of data."
                    (facts_table(s))
                }
            } @else {
                // The evidence: every kind with its reasons, suspected or not.
                div class="scroll" {
                    table id="evidence" class="cards" {
                        tr { th { "kind" } th { "state" } th { "score" } th { "evidence" } }
                        @for k in s.verdict.kinds() {
                            @let tone = Tone::of_state(k.state).class();
                            tr {
                                (labelled("kind", Some(tone), html! {
                                    a href=(runbook_link(name, k.kind.spec().runbook_anchor)) { (k.kind.as_str()) }
                                }))
                                (labelled("state", Some(tone), html! { span class="w" { (k.state.words()) } }))
                                (labelled("score", Some("num"), html! { (format!("{:.2}", k.score)) }))
                                (labelled("evidence", None, html! {
                                    ul { @for r in &k.reasons { li { (words(reason_text(k.state, r))) } } }
                                }))
                            }
                        }
                    }
                }
                (facts_table(s))
            }
        }
    }
}

/// The figures behind the verdict: slopes, ratios, GC, baseline.
fn facts_table(s: &Signals) -> Markup {
    let mut facts: Vec<(&str, String)> = Vec::new();
    if let Some(l) = &s.live {
        facts.push((
            "live heap slope",
            format!(
                "{}/h, monotonicity {:.2}",
                fmt_bytes(l.fit.slope * 3600.0),
                l.one_way()
            ),
        ));
    }
    if let Some(g) = &s.goroutines {
        facts.push((
            "goroutines",
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
            "top growing function",
            format!("{f} +{}", fmt_bytes(*g as f64)),
        ));
    }
    if let Some(f) = &s.heap_alloc {
        facts.push((
            "HeapAlloc slope",
            format!("{}/h", fmt_bytes(f.slope * 3600.0)),
        ));
    }
    if let Some(f) = &s.next_gc {
        facts.push(("NextGC slope", format!("{}/h", fmt_bytes(f.slope * 3600.0))));
    }
    if let Some(r) = s.alloc_free_bytes_ratio {
        facts.push(("allocated / freed bytes", format!("{r:.2}")));
    }
    if let Some(r) = s.alloc_free_objects_ratio {
        facts.push(("mallocs / frees", format!("{r:.2}")));
    }
    if let Some(h) = s.gc_headroom_bytes {
        facts.push(("GC headroom (NextGC − HeapAlloc)", fmt_bytes(h)));
    }
    if let Some(p) = s.gc_pause_p99_seconds {
        facts.push(("GC pause p99", format!("{:.2} ms", p * 1000.0)));
    }
    if let (Some(b), Some(r)) = (&s.baseline, s.baseline_ratio) {
        facts.push((
            "live heap vs baseline",
            format!("{:.2}× of {}", r, fmt_bytes(b.bytes as f64)),
        ));
    }
    html! {
        @if !facts.is_empty() {
            div class="scroll" {
                table id="facts" style="margin-top:1em" {
                    @for (k, v) in &facts { tr { th { (k) } td { (words(v)) } } }
                }
            }
        }
    }
}

fn charts_section(st: &Status) -> Markup {
    let samples: Vec<&Sample> = st.window.samples().iter().collect();
    let Some(newest) = samples.last().map(|s| s.at) else {
        return html! { h2 { "Window" } p class="muted" { "no samples yet" } };
    };
    // The x axis covers the data held (at least a minute), not the whole window: the
    // first minutes would be crammed into the right-most pixels.
    let span = st
        .window
        .span()
        .as_secs_f64()
        .max(60.0)
        .min(st.window.config().span.as_secs_f64());
    let s = |label: &'static str, color: &'static str, get: fn(&Sample) -> Option<u64>| {
        series(&samples, newest, label, color, get)
    };
    let dashed = |series: Series| Series {
        dashed: true,
        ..series
    };
    let heap = svg_chart(
        "Heap: live heap (after GC), HeapAlloc, NextGC",
        Unit::Bytes,
        span,
        &[
            s("live heap (heap profile)", "#c0392b", |s| s.profile_inuse),
            s("live heap (NextGC)", "#8e44ad", |s| s.nextgc_live),
            s("HeapAlloc", "#2e86c1", |s| s.heap_alloc),
            dashed(s("NextGC", "#7f8c8d", |s| s.next_gc)),
        ],
    );
    let goroutines = svg_chart(
        "Goroutines",
        Unit::Count,
        span,
        &[
            s("goroutines", "#16a085", |s| s.goroutines),
            s("HTTP client connections", "#d35400", |s| {
                s.http_client_connections
            }),
        ],
    );
    let has_container = samples
        .iter()
        .any(|s| s.working_set.is_some() || s.rss.is_some());
    let container = has_container.then(|| {
        svg_chart(
            "Container memory against its limit",
            Unit::Bytes,
            span,
            &[
                s("working set", "#2874a6", |s| s.working_set),
                s("RSS", "#27ae60", |s| s.rss),
                s("Go Sys", "#a569bd", |s| s.go_sys),
                dashed(s("cgroup limit", "#b03a2e", |s| s.cgroup_limit)),
                dashed(s("GOMEMLIMIT", "#ca6f1e", |s| s.gomemlimit)),
            ],
        )
    });
    html! {
        h2 { "Window" }
        (heap)
        p class="note" id="live-heap-note" {
            "Two estimates of the live heap: " b { "heap profile" } " is the in-use bytes of \
             the runtime's heap profile (what survived the last GC, published up to two GCs \
             late); " b { "NextGC" } " is NextGC ÷ (1 + GOGC/100), the heap the GC pacer \
             counted as live, which also counts goroutine stacks and globals, so it reads \
             higher. HeapAlloc is the live heap plus garbage not yet collected: a sawtooth."
        }
        (goroutines)
        @if let Some(c) = container {
            (c)
        } @else {
            p class="muted" {
                "Container memory: not watched (give the target a " code { "pid" } ", "
                code { "pid_file" } ", " code { "process" } " or " code { "cgroup" }
                " in the config)."
            }
        }
    }
}

/// Positive growth by site, without the `other` bucket.
fn growing(g: &[(String, i64)]) -> Vec<&(String, i64)> {
    g.iter().filter(|(f, n)| f != "other" && *n > 0).collect()
}

fn heap_sections(st: &Status) -> Markup {
    let Some(s) = &st.signals else {
        return html! {};
    };
    let growth = growing(&s.heap_growth);
    html! {
        div class="grid2" {
            div {
                h2 { "Top growing functions" }
                @if growth.is_empty() {
                    p class="muted" { "no allocation site grew across the window" }
                } @else {
                    div class="scroll" {
                        table id="growth" {
                            tr { th { "allocation site" } th { "in-use growth" } }
                            @for (f, g) in growth {
                                tr { td { code { (f) } } td class="num" { "+" (fmt_bytes(*g as f64)) } }
                            }
                        }
                    }
                }
            }
            div {
                h2 { "In-use share by package" }
                @if s.inuse_share.is_empty() {
                    p class="muted" { "no heap profile yet" }
                } @else {
                    div class="scroll" {
                        table id="packages" {
                            tr { th { "package" } th { "share" } }
                            @for (p, v) in s.inuse_share.iter().filter(|(p, v)| p != "other" || *v > 0.0) {
                                @let pct = (v * 100.0).clamp(0.0, 100.0);
                                tr {
                                    td { code { (p) } }
                                    td {
                                        span class="bar" style=(format!("width:{:.0}px", pct * 1.5)) {}
                                        (format!("{pct:.1}%"))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn goroutine_section(st: &Status) -> Markup {
    let Some(g) = &st.goroutines else {
        return html! { h2 { "Goroutines" } p class="muted" { "no goroutine profile yet" } };
    };
    let growth = st
        .signals
        .as_ref()
        .map(|s| growing(&s.goroutine_growth))
        .unwrap_or_default();
    html! {
        h2 { "Goroutines" }
        p { (g.total) " goroutines, " (g.http_client_connections) " HTTP client connections." }
        div class="grid2" {
            div {
                div class="scroll" {
                    table id="states" {
                        tr { th { "state" } th { "count" } }
                        @for (state, n) in &g.by_state {
                            tr class=[(*n == 0).then_some("muted")] {
                                td { (state) } td class="num" { (n) }
                            }
                        }
                    }
                }
            }
            div {
                @if growth.is_empty() {
                    p class="muted" { "no blocking site grew across the window" }
                } @else {
                    div class="scroll" {
                        table id="goroutine-growth" {
                            tr { th { "blocked in" } th { "growth" } }
                            @for (f, n) in growth {
                                tr { td { code { (f) } } td class="num" { "+" (n) } }
                            }
                        }
                    }
                }
                @if let Some(l) = &st.leaked {
                    p {
                        "The Go runtime's goroutineleak profile proves " b { (l.total) }
                        " goroutines leaked"
                        @if let Some((f, n)) = l.by_function.first() {
                            ", most in " code { (f) } " (" (n) ")"
                        }
                        "."
                    }
                }
            }
        }
    }
}

fn oom_section(name: &str, st: &Status) -> Markup {
    let Some(s) = &st.signals else {
        return html! { h2 { "Time to OOM" } p class="muted" { "no data yet" } };
    };
    let bytes = |b: u64| fmt_bytes(b as f64);
    let (_, _, tone) = super::html::time_to_oom(st);
    html! {
        h2 { "Time to OOM" }
        @match (&s.time_to_oom, &s.memory_limit, &s.memory_usage) {
            (Some(t), Some((lsrc, limit)), Some((usrc, usage))) => {
                p id="oom" class=(tone.class()) {
                    (fmt_duration(t.seconds)) " at the current rate ("
                    (fmt_duration(t.earliest_seconds)) " to " (fmt_duration(t.latest_seconds))
                    "): " (bytes(*usage)) " (" (usrc.as_str()) ") of " (bytes(*limit))
                    " (" (lsrc.as_str()) ") used, growing "
                    (fmt_bytes(t.rate_per_second * 3600.0)) "/h."
                }
            }
            (None, Some((lsrc, limit)), _) => {
                p id="oom" class=(tone.class()) {
                    "Not growing towards the " (lsrc.as_str()) " limit (" (bytes(*limit)) ")."
                }
            }
            _ => {
                p id="oom" class="muted" {
                    "No memory limit known (no cgroup limit, no GOMEMLIMIT, no "
                    code { "memory_limit" } " in the config): no time to OOM."
                }
            }
        }
        p { a href=(runbook_link(name, TIME_TO_OOM_ANCHOR)) { "Time to OOM in the runbook" } }
        @if st.oom.kills > 0 {
            p class="st-red" { (st.oom.kills) " OOM kill(s) of this target seen in the kernel log." }
        }
    }
}

/// The "recent dumps" section: the target's newest dumps with download links and the
/// commands comparing its latest suspect pair, fetched from this instance (`at`) over
/// HTTP; a hint when dumps are off.
pub fn dumps_section(dumps: Option<&DumpManager>, target: &str, at: &Instance) -> Markup {
    let Some(m) = dumps.filter(|m| m.enabled(target)) else {
        return html! {
            p id="dumps" class="muted" {
                "Dumps are not configured for this target (set " code { "dumps.dir" }
                " in the config to keep heap and goroutine profiles as evidence)."
            }
        };
    };
    let files = m.list(Some(target));
    html! {
        div id="dumps" {
            @if let Some((base, new)) = m.pair_for(target) {
                @let c = commands::pair(at, target, &base.name, &new.name);
                p { "Latest suspect pair (the baseline, then the suspect), fetched from this leakwatch and compared:" }
                pre class="cmd" { (c.fetch[0]) "\n" (c.fetch[1]) "\n" (c.diff) }
                p { "Or with Go's pprof, straight from the URLs:" }
                pre class="cmd" { (c.pprof) }
            }
            @if files.is_empty() {
                p class="muted" { "no dumps yet" }
            } @else {
                div class="scroll" {
                    table {
                        tr { th { "file" } th { "profile" } th { "reason" } th { "size" } }
                        @for f in files.iter().take(20) {
                            tr {
                                td { a href={ "/dumps/" (target) "/" (f.name) } { (f.name) } }
                                td { (f.profile.as_str()) }
                                td { (f.reason.as_str()) }
                                td class="num" { (fmt_bytes(f.size as f64)) }
                            }
                        }
                    }
                }
                p { a href={ "/dumps/" (target) "/" } { "all dumps of this target" } }
            }
        }
    }
}
