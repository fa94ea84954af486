//! Fragments more than one page shows: a target's link, its headline with the evidence
//! of each kind, its live heap, how long ago, and the self-refresh.

use std::time::SystemTime;

use maud::{Markup, PreEscaped, html};

use crate::analysis::headline::Headline;
use crate::analysis::verdict::VerdictState;
use crate::targets::Status;

/// A link to a target's report.
pub fn target_link(name: &str) -> Markup {
    html! { a href={ "/targets/" (name) } { (name) } }
}

/// `4.2s ago`, or `never`.
pub fn ago(t: Option<SystemTime>) -> String {
    match t.and_then(|t| SystemTime::now().duration_since(t).ok()) {
        Some(d) => format!("{:.1}s ago", d.as_secs_f64()),
        None => "never".to_string(),
    }
}

/// The target's live heap as every page shows it: `48.0 MiB (heap profile)`, or empty.
pub fn live_heap(st: &Status) -> String {
    st.signals
        .as_ref()
        .and_then(|s| s.live_heap())
        .map(|l| l.to_string())
        .unwrap_or_default()
}

/// The CSS class of a headline: `suspect` (a leak), `ok` (judged, no leak) or `unsure`
/// (anything that cannot tell yet).
pub fn headline_class(h: &Headline) -> &'static str {
    match h {
        Headline::Suspected { .. } => "suspect",
        Headline::NoLeak => "ok",
        _ => "unsure",
    }
}

/// The verdict cell of the landing page: the headline, then each kind with its
/// evidence once there is a verdict to explain.
pub fn verdict_cell(st: &Status) -> Markup {
    let h = st.headline();
    let kinds = match &h {
        Headline::Suspected { .. } | Headline::Undecided { .. } | Headline::NoLeak => {
            st.signals.as_ref().map(|s| s.verdict.kinds())
        }
        _ => None,
    };
    html! {
        div class=(headline_class(&h)) { (h.line()) }
        @if let Headline::Stale { reason } = &h {
            ul { li { (reason) } }
        }
        @for k in kinds.into_iter().flatten() {
            @let (class, word) = match k.state {
                VerdictState::Suspected => ("suspect", "LEAK SUSPECTED"),
                VerdictState::NoLeak => ("ok", "ok"),
                other => ("unsure", other.words()),
            };
            div class=(class) { (k.kind.as_str()) ": " (word) " (score " (format!("{:.2}", k.score)) ")" }
            @if k.suspected {
                ul { @for r in &k.reasons { li { (r) } } }
            } @else if k.state != VerdictState::NoLeak {
                @if let Some(r) = k.reasons.first() {
                    ul { li { (r) } }
                }
            }
        }
    }
}

/// Seconds between the page's automatic refreshes: the target's scrape interval,
/// within 5 s .. 60 s.
pub fn refresh_seconds(interval: std::time::Duration) -> u64 {
    interval.as_secs().clamp(5, 60)
}

/// Reloads the page every `secs` (unless `?refresh=0`) and puts the reader back where
/// they were scrolled.
pub fn refresh_script(secs: u64) -> Markup {
    let js = format!(
        "(function(){{var k='lw-scroll:'+location.pathname;\
         var y=sessionStorage.getItem(k);if(y!==null){{sessionStorage.removeItem(k);window.scrollTo(0,+y);}}\
         if(new URLSearchParams(location.search).get('refresh')==='0')return;\
         setTimeout(function(){{sessionStorage.setItem(k,String(window.scrollY));location.reload();}},{});}})();",
        secs * 1000
    );
    html! { script { (PreEscaped(js)) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_is_escaped() {
        assert_eq!(
            target_link("a\"b<").into_string(),
            "<a href=\"/targets/a&quot;b&lt;\">a&quot;b&lt;</a>"
        );
    }
}
