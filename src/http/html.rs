//! Fragments more than one page shows: a target's link, its headline with the evidence
//! of each kind and their colours, its live heap, its time to OOM, links into the
//! runbook, how long ago, and the self-refresh.

use std::time::SystemTime;

use maud::{Markup, PreEscaped, html};

use crate::analysis::headline::{Headline, plain_reason};
use crate::analysis::oom::{LimitSource, UsageSource};
use crate::analysis::verdict::VerdictState;
use crate::targets::Status;
use crate::units::{fmt_bytes, fmt_duration};

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

/// The target's live heap as every page shows it, from the one figure of its state
/// ([`crate::analysis::signals::Signals::live_heap`]): the bytes, then their source
/// (`48.0 MiB` `heap profile`), or empty.
pub fn live_heap(st: &Status) -> Markup {
    match st.signals.as_ref().and_then(|s| s.live_heap()) {
        Some(l) => html! {
            span class="live-heap" { b { (nb(&fmt_bytes(l.bytes as f64))) } " " span class="src" { "(" (l.source.words()) ")" } }
        },
        None => html! {},
    }
}

/// Text for a table cell that wraps only at its spaces: each word a browser would
/// break inside is kept whole (`.w`). The line-breaking rules (Unicode UAX #14) open a
/// break after `-`, `/`, `?`, `!`, `|` and `}` followed by a letter, and around most
/// punctuation outside ASCII; brackets, quotes, `.,:;` and digits never break a word,
/// so `(up`, `3),` or `127.0.0.1:6061` stay as they are (text a reader or a test
/// searches for stays unsplit).
pub fn words(text: &str) -> Markup {
    let breaks = |w: &str| {
        w.chars()
            .any(|c| "-/?!|}".contains(c) || (!c.is_ascii() && !c.is_alphanumeric()))
    };
    html! {
        @for (i, w) in text.split(' ').enumerate() {
            @if i > 0 { " " }
            @if breaks(w) { span class="w" { (w) } } @else { (w) }
        }
    }
}

/// A cell of a `cards` table: on a phone each row is a card and each cell shows its
/// `label` beside its value (`.k`, hidden on a desktop where the header row says it);
/// an empty cell is left out of the card.
pub fn labelled(label: &str, class: Option<&str>, value: Markup) -> Markup {
    let class = match (class, value.0.is_empty()) {
        (Some(c), _) => Some(c.to_string()),
        (None, true) => Some("empty".to_string()),
        (None, false) => None,
    };
    html! {
        td data-label=(label) class=[class] {
            span class="k" { (label) }
            div class="v" { (value) }
        }
    }
}

/// `s` with its spaces made non-breaking: a value and its unit stay on one line.
pub fn nb(s: &str) -> String {
    s.replace(' ', "\u{a0}")
}

/// How a state reads at a glance, as a colour: red (a leak), amber (cannot tell yet),
/// green (judged, no leak), grey (unknown: no data, stale).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Red,
    Amber,
    Green,
    Grey,
}

impl Tone {
    /// The CSS class (colours in the layout's stylesheet).
    pub fn class(self) -> &'static str {
        match self {
            Tone::Red => "st-red",
            Tone::Amber => "st-amber",
            Tone::Green => "st-green",
            Tone::Grey => "st-grey",
        }
    }

    /// The tone of a target's headline.
    pub fn of_headline(h: &Headline) -> Tone {
        match h {
            Headline::Suspected { .. } => Tone::Red,
            Headline::NoLeak => Tone::Green,
            Headline::WarmingUp { .. } | Headline::Undecided { .. } => Tone::Amber,
            Headline::NoData | Headline::Stale { .. } => Tone::Grey,
        }
    }

    /// The tone of one kind's verdict.
    pub fn of_state(s: VerdictState) -> Tone {
        match s {
            VerdictState::Suspected => Tone::Red,
            VerdictState::NoLeak => Tone::Green,
            VerdictState::Inconclusive | VerdictState::WarmingUp | VerdictState::Explained => {
                Tone::Amber
            }
            VerdictState::Stale => Tone::Grey,
        }
    }
}

/// The runbook rendered for `target`, at its section `anchor`:
/// `/runbook?target=orders#leakwatchheapleaksuspected`.
pub fn runbook_link(target: &str, anchor: &str) -> String {
    let mut u = reqwest::Url::parse("http://x/runbook").expect("a URL");
    u.query_pairs_mut().append_pair("target", target);
    format!("{}?{}#{anchor}", u.path(), u.query().unwrap_or_default())
}

/// The runbook section of a headline that has one: the first suspected kind's alert,
/// or the target-down section for a stale verdict.
pub fn headline_anchor(h: &Headline) -> Option<&'static str> {
    match h {
        Headline::Suspected { kinds } => kinds.first().map(|k| k.spec().runbook_anchor),
        Headline::Undecided { kind, .. } => Some(kind.spec().runbook_anchor),
        Headline::Stale { .. } => Some(TARGET_DOWN_ANCHOR),
        _ => None,
    }
}

/// The runbook section of a target that is down or gone.
pub const TARGET_DOWN_ANCHOR: &str = "leakwatchtargetdown";
/// The runbook section of the time to OOM.
pub const TIME_TO_OOM_ANCHOR: &str = "leakwatchtimetooom";

/// A reason without the state its line already names ([`plain_reason`]).
pub fn reason_text(state: VerdictState, reason: &str) -> &str {
    plain_reason(state, reason)
}

/// The verdict cell of the landing page: the headline, then each kind with its state,
/// linked to its runbook section, and its evidence once there is a verdict to explain.
pub fn verdict_cell(name: &str, st: &Status) -> Markup {
    let h = st.headline();
    let kinds = match &h {
        Headline::Suspected { .. } | Headline::Undecided { .. } | Headline::NoLeak => {
            st.signals.as_ref().map(|s| s.verdict.kinds())
        }
        _ => None,
    };
    html! {
        div class={ "headline " (Tone::of_headline(&h).class()) } { (h.line()) }
        @if let Headline::Stale { reason } = &h {
            ul { li { (words(reason)) } }
        }
        @for k in kinds.into_iter().flatten() {
            div class={ "kind " (Tone::of_state(k.state).class()) } {
                a href=(runbook_link(name, k.kind.spec().runbook_anchor)) { (k.kind.as_str()) }
                ": " (k.state.words()) " " span class="src" { "(score\u{a0}" (format!("{:.2}", k.score)) ")" }
            }
            @if k.suspected {
                ul { @for r in &k.reasons { li { (words(r)) } } }
            } @else if k.state != VerdictState::NoLeak {
                @if let Some(r) = k.reasons.first() {
                    ul { li { (words(reason_text(k.state, r))) } }
                }
            }
        }
    }
}

/// What a limit is called where a reader sees it.
fn limit_words(l: LimitSource) -> &'static str {
    match l {
        LimitSource::Cgroup => "cgroup limit",
        LimitSource::Gomemlimit => "GOMEMLIMIT",
        LimitSource::Config => "memory_limit",
        LimitSource::Host => "host memory",
    }
}

/// What a usage is called where a reader sees it.
fn usage_words(u: UsageSource) -> &'static str {
    match u {
        UsageSource::WorkingSet => "working set",
        UsageSource::Rss => "RSS",
        UsageSource::GoSys => "Go Sys",
    }
}

/// The time to OOM in a few words and its source: (`42m`, `Go Sys of 256.0 MiB
/// memory_limit`, tone); `not growing` with the limit; `no limit known`; `no data yet`.
pub fn time_to_oom(st: &Status) -> (String, String, Tone) {
    let Some(s) = st
        .signals
        .as_ref()
        .filter(|_| st.headline() != Headline::NoData)
    else {
        return ("no data yet".into(), String::new(), Tone::Grey);
    };
    let bytes = |b: u64| nb(&fmt_bytes(b as f64));
    match (&s.time_to_oom, &s.memory_limit, &s.memory_usage) {
        (Some(t), Some((lsrc, limit)), Some((usrc, _))) => (
            fmt_duration(t.seconds),
            format!(
                "{} toward {} {}",
                usage_words(*usrc),
                bytes(*limit),
                limit_words(*lsrc)
            ),
            Tone::Red,
        ),
        (None, Some((lsrc, limit)), _) => (
            "not growing".into(),
            format!("toward {} {}", bytes(*limit), limit_words(*lsrc)),
            Tone::Green,
        ),
        _ => (
            "no limit known".into(),
            "no cgroup limit, GOMEMLIMIT or memory_limit".into(),
            Tone::Grey,
        ),
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

    #[test]
    fn words_that_would_break_are_kept_whole() {
        // (text, HTML)
        let cases = [
            ("most in main.orphan (42)", "most in main.orphan (42)"),
            ("up 127.0.0.1:6061", "up 127.0.0.1:6061"),
            (
                "GET http://h/a-b failed",
                "GET <span class=\"w\">http://h/a-b</span> failed",
            ),
            ("retry?x", "<span class=\"w\">retry?x</span>"),
            ("a\u{2013}b", "<span class=\"w\">a\u{2013}b</span>"),
        ];
        for (text, want) in cases {
            assert_eq!(words(text).into_string(), want, "{text:?}");
        }
    }

    #[test]
    fn tones_match_states() {
        use VerdictState::*;
        let cases = [
            (Suspected, Tone::Red),
            (NoLeak, Tone::Green),
            (Inconclusive, Tone::Amber),
            (WarmingUp, Tone::Amber),
            (Explained, Tone::Amber),
            (Stale, Tone::Grey),
        ];
        for (state, tone) in cases {
            assert_eq!(Tone::of_state(state), tone, "{state:?}");
        }
        assert_eq!(
            Tone::of_headline(&Headline::Undecided {
                kind: crate::analysis::kinds::LeakKind::Heap,
                state: Inconclusive,
                reason: None
            }),
            Tone::Amber
        );
        assert_eq!(Tone::of_headline(&Headline::NoData), Tone::Grey);
        assert_eq!(Tone::of_headline(&Headline::NoLeak), Tone::Green);
    }

    #[test]
    fn runbook_links_and_reasons() {
        assert_eq!(
            runbook_link("a b&c", "leakwatchtimetooom"),
            "/runbook?target=a+b%26c#leakwatchtimetooom"
        );
        assert_eq!(
            reason_text(VerdictState::Inconclusive, "inconclusive: only 1 GC cycle"),
            "only 1 GC cycle"
        );
        assert_eq!(
            reason_text(VerdictState::NoLeak, "inconclusive: x"),
            "inconclusive: x"
        );
    }
}
