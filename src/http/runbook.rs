//! `GET /runbook`: the runbook (`docs/runbook.md`, built in) as a page, with GitHub's
//! heading anchors, so every alert's `runbook_url` resolves on a default install. The
//! page is written for the instance serving it: its address in place of the
//! placeholder `leakwatch:10760`, and with `?target=NAME` that target's name, address,
//! newest dump pair and top package in place of `orders`, `orders:6060`, `BASE`, `NEW`
//! and `PACKAGE` ([`fill`]), so its commands run as they stand.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::get;
use maud::{PreEscaped, html};
use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use regex::Regex;

use super::address::{Instance, PLACEHOLDER};
use super::layout::{Width, page};
use crate::state::AppState;

/// The runbook's Markdown, as shipped.
pub const MARKDOWN: &str = include_str!("../../docs/runbook.md");

/// The sentence of the shipped runbook that names its placeholders.
const ASSUME: &str = "Commands below assume leakwatch listens on `leakwatch:10760` and the target is named `orders`; substitute yours.";

/// The runbook route.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/runbook", get(runbook))
}

/// What the served runbook is written for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fill {
    /// This instance: `127.0.0.1:10760` and `http://127.0.0.1:10760`.
    pub host_port: String,
    pub origin: String,
    pub target: Option<TargetFill>,
}

/// One target as the runbook names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetFill {
    pub name: String,
    /// Its base URL without credentials or a trailing slash: `http://10.0.0.5:6060`.
    pub url: String,
    /// Its newest dump pair: (baseline, suspect) file names.
    pub pair: Option<(String, String)>,
    /// The package holding most of its heap.
    pub package: Option<String>,
}

/// Whether `s` can stand in Markdown, a URL and a shell command unquoted.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:/%~+=,@-".contains(c))
}

/// The shipped Markdown written for `fill`. A value that could not stand unquoted in a
/// command (or would be read as Markdown) is left as its placeholder.
pub fn fill(markdown: &str, fill: &Fill) -> String {
    let target = fill
        .target
        .as_ref()
        .filter(|t| plain(&t.name) && plain(&t.url));
    let intro = match target {
        Some(t) => format!(
            "Commands below are written for this leakwatch (`{}`) and the target `{}` (`{}`); they run as they stand from any machine that reaches both.",
            fill.host_port, t.name, t.url
        ),
        None => format!(
            "Commands below are written for this leakwatch (`{}`) and a target named `orders`; substitute yours, or open this page from a target's verdict (`/runbook?target=NAME`).",
            fill.host_port
        ),
    };
    let mut md = markdown.replace(ASSUME, &intro);
    md = md
        .replace(&format!("http://{PLACEHOLDER}"), &fill.origin)
        .replace(PLACEHOLDER, &fill.host_port);
    let Some(t) = target else {
        return md;
    };
    md = md.replace("http://orders:6060", &t.url);
    md = word("orders")
        .replace_all(&md, t.name.as_str())
        .into_owned();
    if let Some((base, new)) = t.pair.as_ref().filter(|(b, n)| plain(b) && plain(n)) {
        // `NEW-NAME` (a job name the reader picks) is not the dump `NEW`.
        const KEEP: &str = "\u{1}JOB\u{1}";
        md = md.replace("NEW-NAME", KEEP);
        md = word("BASE").replace_all(&md, base.as_str()).into_owned();
        md = word("NEW").replace_all(&md, new.as_str()).into_owned();
        md = md.replace(KEEP, "NEW-NAME");
    }
    if let Some(p) = t.package.as_ref().filter(|p| plain(p)) {
        md = word("PACKAGE").replace_all(&md, p.as_str()).into_owned();
    }
    md
}

/// `w` as a whole word.
fn word(w: &str) -> Regex {
    Regex::new(&format!(r"\b{w}\b")).expect("a word is a regex")
}

async fn runbook(
    State(state): State<Arc<AppState>>,
    at: Instance,
    Query(q): Query<HashMap<String, String>>,
) -> Html<String> {
    let target = q.get("target").and_then(|name| {
        let targets = state.targets();
        let t = targets.iter().find(|t| &t.config.name == name)?;
        let st = t.status();
        Some(TargetFill {
            name: name.clone(),
            url: crate::scrape::redact_url(t.config.url.as_str())
                .trim_end_matches('/')
                .to_string(),
            pair: state
                .dumps
                .pair_for(name)
                .map(|(b, n)| (b.name.clone(), n.name.clone())),
            package: st
                .signals
                .as_ref()
                .and_then(|s| s.top_package.as_ref())
                .map(|(p, _)| p.clone()),
        })
    });
    let f = Fill {
        host_port: at.host_port(),
        origin: at.origin(),
        target,
    };
    Html(render(&fill(MARKDOWN, &f)))
}

/// GitHub's anchor for a heading's text: lower-case, punctuation dropped (but `-` and
/// `_`), spaces to hyphens. The alerts' anchors are their names lower-cased.
pub fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The page for `markdown`: every heading gets its GitHub anchor as `id`.
pub fn render(markdown: &str) -> String {
    let mut events: Vec<Event<'_>> = Parser::new_ext(markdown, Options::ENABLE_TABLES).collect();
    let mut i = 0;
    while i < events.len() {
        if let Event::Start(Tag::Heading { .. }) = &events[i] {
            let mut text = String::new();
            for e in &events[i + 1..] {
                match e {
                    Event::End(TagEnd::Heading(_)) => break,
                    Event::Text(t) | Event::Code(t) => text.push_str(t),
                    _ => {}
                }
            }
            if let Event::Start(Tag::Heading { id, .. }) = &mut events[i] {
                *id = Some(CowStr::from(anchor(&text)));
            }
        }
        i += 1;
    }
    let title = events
        .iter()
        .position(|e| {
            matches!(
                e,
                Event::Start(Tag::Heading {
                    level: HeadingLevel::H1,
                    ..
                })
            )
        })
        .and_then(|i| match events.get(i + 1) {
            Some(Event::Text(t)) => Some(t.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "leakwatch runbook".into());
    let mut body = String::with_capacity(markdown.len() * 2);
    pulldown_cmark::html::push_html(&mut body, events.into_iter());
    page(&title, Width::Text, html! { (PreEscaped(body)) }).into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_follow_github() {
        for (heading, want) in [
            ("LeakwatchTimeToOOM", "leakwatchtimetooom"),
            ("Verify the fix", "verify-the-fix"),
            ("What leakwatch diff shows!", "what-leakwatch-diff-shows"),
            ("snake_case-and-dash", "snake_case-and-dash"),
        ] {
            assert_eq!(anchor(heading), want);
        }
    }

    #[test]
    fn filled_for_this_instance_and_target() {
        let at = Fill {
            host_port: "10.1.2.3:9999".into(),
            origin: "http://10.1.2.3:9999".into(),
            target: None,
        };
        let md = fill(MARKDOWN, &at);
        assert!(!md.contains("leakwatch:10760"), "{md}");
        assert!(md.contains("curl -s 'http://10.1.2.3:9999/dumps/orders/?format=json'"));
        assert!(md.contains("this leakwatch (`10.1.2.3:9999`) and a target named `orders`"));
        let t = Fill {
            target: Some(TargetFill {
                name: "checkout".into(),
                url: "http://127.0.0.1:6061".into(),
                pair: Some((
                    "heap-a-baseline.pb.gz".into(),
                    "heap-b-suspect.pb.gz".into(),
                )),
                package: Some("main".into()),
            }),
            ..at.clone()
        };
        let md = fill(MARKDOWN, &t);
        for gone in ["orders", "leakwatch:10760", " BASE ", "PACKAGE"] {
            assert!(!md.contains(gone), "{gone:?} left in {md}");
        }
        for want in [
            "curl -fsS -o heap-a-baseline.pb.gz http://10.1.2.3:9999/dumps/checkout/heap-a-baseline.pb.gz",
            "leakwatch diff heap-a-baseline.pb.gz heap-b-suspect.pb.gz --sample inuse_space",
            "curl -s -o base.pb.gz http://127.0.0.1:6061/debug/pprof/heap",
            "leakwatch watch http://127.0.0.1:6061 --for 10m --baseline-file checkout-baseline.json",
            "job=\"NEW-NAME\"",
            "| grep main`",
        ] {
            assert!(md.contains(want), "no {want:?} in {md}");
        }
        // A name that would need quoting (or is Markdown) stays the placeholder.
        let odd = Fill {
            target: Some(TargetFill {
                name: "<b>x</b>".into(),
                url: "http://h:1".into(),
                ..Default::default()
            }),
            ..at
        };
        let md = fill(MARKDOWN, &odd);
        assert!(md.contains("/dumps/orders/") && !md.contains("<b>x</b>"));
    }

    #[test]
    fn headings_get_ids_and_code_is_escaped() {
        let page = render("# Book\n\n## Verify the `fix`\n\n```sh\ncurl -s 'a?b=1&c=<d>'\n```\n");
        assert!(page.contains("<title>Book</title>"), "{page}");
        assert!(page.contains("<h2 id=\"verify-the-fix\">"), "{page}");
        assert!(page.contains("curl -s 'a?b=1&amp;c=&lt;d&gt;'"), "{page}");
    }
}
