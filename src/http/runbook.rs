//! `GET /runbook`: the runbook (`docs/runbook.md`, built in) as a page, with GitHub's
//! heading anchors, so every alert's `runbook_url` resolves on a default install.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use maud::{PreEscaped, html};
use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use super::layout::{Width, page};
use crate::state::AppState;

/// The runbook's Markdown, as shipped.
pub const MARKDOWN: &str = include_str!("../../docs/runbook.md");

/// The runbook route.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/runbook", get(runbook))
}

async fn runbook() -> Html<&'static str> {
    static PAGE: OnceLock<String> = OnceLock::new();
    Html(PAGE.get_or_init(|| render(MARKDOWN)).as_str())
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
    fn headings_get_ids_and_code_is_escaped() {
        let page = render("# Book\n\n## Verify the `fix`\n\n```sh\ncurl -s 'a?b=1&c=<d>'\n```\n");
        assert!(page.contains("<title>Book</title>"), "{page}");
        assert!(page.contains("<h2 id=\"verify-the-fix\">"), "{page}");
        assert!(page.contains("curl -s 'a?b=1&amp;c=&lt;d&gt;'"), "{page}");
    }
}
