//! HTML helpers shared by the pages: escaping, the verdict cell and self-refresh.

use crate::analysis::headline::Headline;
use crate::analysis::verdict::VerdictState;
use crate::targets::Status;

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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
pub fn verdict_html(st: &Status) -> String {
    let h = st.headline();
    let mut out = format!(
        "<div class=\"{}\">{}</div>",
        headline_class(&h),
        html_escape(&h.line())
    );
    match &h {
        Headline::NoData | Headline::WarmingUp { .. } => return out,
        Headline::Stale { reason } => {
            out.push_str(&format!("<ul><li>{}</li></ul>", html_escape(reason)));
            return out;
        }
        Headline::Suspected { .. } | Headline::Undecided { .. } | Headline::NoLeak => {}
    }
    let Some(sig) = &st.signals else {
        return out;
    };
    for k in sig.verdict.kinds() {
        let (class, word) = match k.state {
            VerdictState::Suspected => ("suspect", "LEAK SUSPECTED"),
            VerdictState::NoLeak => ("ok", "ok"),
            other => ("unsure", other.words()),
        };
        out.push_str(&format!(
            "<div class=\"{class}\">{}: {word} (score {:.2})</div>",
            k.kind.as_str(),
            k.score
        ));
        if !k.suspected
            && k.state != VerdictState::NoLeak
            && let Some(r) = k.reasons.first()
        {
            out.push_str(&format!("<ul><li>{}</li></ul>", html_escape(r)));
        }
        if k.suspected {
            out.push_str("<ul>");
            for r in &k.reasons {
                out.push_str(&format!("<li>{}</li>", html_escape(r)));
            }
            out.push_str("</ul>");
        }
    }
    out
}

/// Seconds between the page's automatic refreshes: the target's scrape interval,
/// within 5 s .. 60 s.
pub fn refresh_seconds(interval: std::time::Duration) -> u64 {
    interval.as_secs().clamp(5, 60)
}

/// Reloads the page every `secs` (unless `?refresh=0`) and puts the reader back where
/// they were scrolled.
pub fn refresh_script(secs: u64) -> String {
    format!(
        "<script>(function(){{var k='lw-scroll:'+location.pathname;\
         var y=sessionStorage.getItem(k);if(y!==null){{sessionStorage.removeItem(k);window.scrollTo(0,+y);}}\
         if(new URLSearchParams(location.search).get('refresh')==='0')return;\
         setTimeout(function(){{sessionStorage.setItem(k,String(window.scrollY));location.reload();}},{});}})();</script>",
        secs * 1000
    )
}
