//! The one HTML document every page fills: doctype, head, the shared stylesheet and the
//! navigation; pages hand in a title and their body ([`page`]).
//!
//! Pages are written with maud (`html!`): the markup is Rust, checked when the crate
//! compiles (an unclosed element or a misspelt variable does not build), and every
//! value spliced in is escaped by the crate (only [`PreEscaped`] is not: the stylesheet,
//! the self-refresh script, rendered Markdown). maud over askama because the pages are
//! built from loops and conditions over the target's state (charts, evidence, tables):
//! in maud those stay ordinary Rust next to the data, with no template files to keep in
//! step with the structs they render.

use maud::{DOCTYPE, Markup, PreEscaped, html};

/// How wide the page reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// Tables and charts: up to 1100 px.
    Wide,
    /// Running text (the runbook): a column of about 52 em.
    Text,
}

/// The shared stylesheet: every class any page uses.
///
/// Words and numbers are never broken inside themselves: table cells wrap only at
/// spaces (`overflow-wrap: normal; word-break: keep-all`) and every table sits in a
/// `.scroll` box that scrolls sideways when the table is wider than the screen; running
/// text breaks a word only when it is longer than the whole line. On a phone the
/// landing table becomes one card per target, each value beside its label (`.k`).
const CSS: &str = "body{font-family:system-ui,sans-serif;margin:1.5em 2em;color:#222;max-width:1100px}\
body.text{max-width:52em;margin:1em auto;padding:0 1em;line-height:1.45}\
nav{margin-bottom:0.6em}nav a{margin-right:0.2em}\
h1{margin-bottom:0.2em;overflow-wrap:break-word}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:2px}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
td,th,td *,th *{overflow-wrap:normal;word-break:keep-all}\
p,li,pre{overflow-wrap:break-word}\
.scroll{overflow-x:auto;max-width:100%}.w,td a,td code{white-space:nowrap}\
td ul{margin:0;padding-left:1.2em}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}.muted{color:#777}\
.st-red{color:#b00;font-weight:bold}.st-amber{color:#8a5300}.st-green{color:#1a7a1a}.st-grey{color:#666}\
.st-red a,.st-amber a,.st-green a,.st-grey a{color:inherit}\
.down{color:#b00}.up{color:#1a7a1a}.src{color:#666;font-size:0.9em;font-weight:normal}\
.k{display:none}\
.verdict-box{padding:0.6em 1em;border-radius:6px;margin:0.8em 0}\
.verdict-box.bad{background:#fdecea;border:1px solid #e0a0a0}.verdict-box.good{background:#eef8ee;border:1px solid #a0d0a0}\
.verdict-box.unsure{background:#fff6e0;border:1px solid #e8c37a}.verdict-box.cold{background:#f4f4f4;border:1px solid #ccc}\
figure.chart{margin:1em 0}figcaption{font-weight:600;margin-bottom:4px}\
.plot{display:grid;grid-template-columns:64px 1fr;grid-template-rows:200px auto;margin-top:8px}\
.plot svg{width:100%;height:200px;display:block;border-left:1px solid #888;border-bottom:1px solid #888;overflow:visible}\
svg .grid{stroke:#e6e6e6;stroke-width:1}\
.yaxis,.xaxis{position:relative;font-size:12px;color:#555}.xaxis{height:1.5em}\
.ylabel{position:absolute;right:6px;transform:translateY(-50%);white-space:nowrap}\
.xlabel{position:absolute;top:3px;transform:translateX(-50%);white-space:nowrap}\
.xlabel.first{transform:none}.xlabel.last{transform:translateX(-100%)}\
.legend span{margin-right:1.4em;font-size:0.9em;white-space:nowrap}.legend i{display:inline-block;width:12px;height:3px;margin-right:5px;vertical-align:middle}\
.bar{display:inline-block;height:10px;background:#4a78c2;vertical-align:middle;margin-right:6px}\
code,pre{background:#f6f6f6;padding:2px 4px;border-radius:3px}pre{padding:6px 8px;overflow-x:auto}\
pre.cmd{white-space:pre;margin:4px 0}\
.grid2{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:1.5em}\
.note{font-size:0.85em;color:#555;margin:2px 0 0 0}\
.provisional{background:#fff8e1;border:1px solid #e8d48a;padding:0.5em 0.8em;border-radius:6px}\
progress{width:16em;max-width:60%;vertical-align:middle;margin-right:0.5em}\
@media (max-width:700px){body{margin:0.8em}.grid2{grid-template-columns:minmax(0,1fr)}\
td,th{padding:3px 4px}.legend span{display:inline-block;margin-right:0.8em}\
table.cards,table.cards tbody,table.cards tr{display:block}\
table.cards tr:first-child{display:none}table.cards tr{border:1px solid #ccc;margin-bottom:0.8em}\
table.cards td{display:grid;grid-template-columns:6.5em minmax(0,1fr);column-gap:0.6em;border:none;padding:3px 6px}\
table.cards td.empty{display:none}\
table.cards .k{display:block;color:#666}table.cards td.num{text-align:left}\
table.cards .v{overflow-x:auto}}";

/// A whole page: `title` in the head, the navigation, then `body`.
pub fn page(title: &str, width: Width, body: Markup) -> Markup {
    let class = match width {
        Width::Wide => "wide",
        Width::Text => "text",
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body class=(class) {
                nav {
                    a href="/" { b { "leakwatch" } } " · "
                    a href="/metrics" { "metrics" } " · "
                    a href="/dumps/" { "dumps" } " · "
                    a href="/runbook" { "runbook" }
                }
                (body)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shell_with_escaped_title() {
        let p = page("a<b", Width::Text, html! { p { "x & y" } }).into_string();
        assert!(p.starts_with("<!DOCTYPE html><html lang=\"en\">"), "{p}");
        assert!(p.contains("<title>a&lt;b</title>"), "{p}");
        assert!(p.contains("<body class=\"text\"><nav>"), "{p}");
        assert!(p.contains("<p>x &amp; y</p></body></html>"), "{p}");
    }
}
