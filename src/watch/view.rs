//! What `leakwatch watch` shows while it runs: one row per target, as a line per
//! sample (not a terminal) or a redrawn table with a progress bar (a terminal).

use std::io::Write as _;
use std::time::Duration;

use crate::analysis::headline::Headline;
use crate::printable::printable_line;
use crate::targets::TargetState;
use crate::units::{fmt_bytes, fmt_duration};

/// One target at one sample: the line of the live view.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub up: bool,
    pub live_heap: Option<u64>,
    pub heap_alloc: Option<u64>,
    /// Live-heap slope, bytes per hour.
    pub slope_per_hour: Option<f64>,
    pub goroutines: Option<u64>,
    pub headline: Headline,
    pub error: Option<String>,
}

pub(super) fn row_of(t: &TargetState) -> Row {
    let st = t.status();
    let sig = st.signals.as_ref();
    Row {
        name: t.config.name.clone(),
        up: st.up,
        live_heap: sig.and_then(|s| s.live_heap()).map(|l| l.bytes),
        heap_alloc: st.window.newest().and_then(|s| s.heap_alloc),
        slope_per_hour: sig
            .and_then(|s| s.live.as_ref())
            .map(|t| t.fit.slope * 3600.0),
        goroutines: st.goroutines.as_ref().map(|g| g.total),
        headline: st.headline(),
        error: if st.up { None } else { st.last_error.clone() },
    }
}

fn opt_bytes(v: Option<u64>) -> String {
    v.map_or("-".to_string(), |b| fmt_bytes(b as f64))
}

pub(super) fn opt_rate(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |r| {
        let s = fmt_bytes(r);
        if r >= 0.0 {
            format!("+{s}/h")
        } else {
            format!("{s}/h")
        }
    })
}

/// The non-TTY line of one target at one sample, what the target sent escaped.
pub fn render_line(sample: usize, total: usize, elapsed: Duration, r: &Row) -> String {
    printable_line(&raw_line(sample, total, elapsed, r)).into_owned()
}

fn raw_line(sample: usize, total: usize, elapsed: Duration, r: &Row) -> String {
    let mut line = format!(
        "[{sample}/{total}] t={:.1}s {} ",
        elapsed.as_secs_f64(),
        r.name
    );
    if r.up {
        line.push_str(&format!(
            "live_heap={} heap_alloc={} slope={} goroutines={} verdict={}",
            opt_bytes(r.live_heap),
            opt_bytes(r.heap_alloc),
            opt_rate(r.slope_per_hour),
            r.goroutines.map_or("-".to_string(), |g| g.to_string()),
            r.headline.line()
        ));
    } else {
        line.push_str(&format!(
            "DOWN error={} verdict={}",
            r.error.as_deref().unwrap_or("no response yet"),
            r.headline.line()
        ));
    }
    line
}

/// The TTY view: a progress bar, then a table of targets (its own colours, and what the
/// targets sent escaped).
pub(super) fn render_screen(
    elapsed: Duration,
    total: Duration,
    sample: usize,
    samples: usize,
    rows: &[Row],
) -> Vec<String> {
    const WIDTH: usize = 30;
    let frac = (elapsed.as_secs_f64() / total.as_secs_f64().max(1e-9)).clamp(0.0, 1.0);
    let filled = (frac * WIDTH as f64).round() as usize;
    let mut out = vec![format!(
        "leakwatch watch [{}{}] {} / {}  sample {sample}/{samples}",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        fmt_duration(elapsed.as_secs_f64()),
        fmt_duration(total.as_secs_f64()),
    )];
    out.push(format!(
        "  {:<24} {:>11} {:>11} {:>14} {:>10}  verdict",
        "target", "live heap", "HeapAlloc", "slope", "goroutines"
    ));
    for r in rows {
        if r.up || r.live_heap.is_some() {
            let (pre, post) = if matches!(r.headline, Headline::Suspected { .. }) {
                ("\x1b[1;31m", "\x1b[0m")
            } else {
                ("", "")
            };
            out.push(format!(
                "  {:<24} {:>11} {:>11} {:>14} {:>10}  {pre}{}{post}",
                printable_line(&r.name),
                opt_bytes(r.live_heap),
                opt_bytes(r.heap_alloc),
                opt_rate(r.slope_per_hour),
                r.goroutines.map_or("-".to_string(), |g| g.to_string()),
                printable_line(&r.headline.line())
            ));
        } else {
            out.push(format!(
                "  {:<24} \x1b[31mDOWN\x1b[0m {}",
                printable_line(&r.name),
                printable_line(r.error.as_deref().unwrap_or("no response yet"))
            ));
        }
    }
    out
}

/// Replaces the previous screen (`lines` tall) with `new`.
pub(super) fn redraw(lines: &mut usize, new: &[String]) {
    let mut out = String::new();
    if *lines > 0 {
        out.push_str(&format!("\x1b[{}A\r\x1b[J", *lines));
    }
    for l in new {
        out.push_str(l);
        out.push('\n');
    }
    *lines = new.len();
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_tty_lines() {
        let r = Row {
            name: "127.0.0.1:6060".into(),
            up: true,
            live_heap: Some(3 * 1024 * 1024),
            heap_alloc: Some(4 * 1024 * 1024),
            slope_per_hour: Some(2.5 * 1024.0 * 1024.0),
            goroutines: Some(7),
            headline: Headline::NoLeak,
            error: None,
        };
        assert_eq!(
            render_line(3, 25, Duration::from_millis(1500), &r),
            "[3/25] t=1.5s 127.0.0.1:6060 live_heap=3.0 MiB heap_alloc=4.0 MiB slope=+2.5 MiB/h goroutines=7 verdict=no leak"
        );
        let down = Row {
            up: false,
            error: Some("heap: connection refused".into()),
            headline: Headline::NoData,
            ..r
        };
        assert_eq!(
            render_line(1, 2, Duration::ZERO, &down),
            "[1/2] t=0.0s 127.0.0.1:6060 DOWN error=heap: connection refused verdict=no data yet"
        );
    }

    #[test]
    fn what_a_target_sent_is_escaped_in_lines_and_on_screen() {
        let r = Row {
            name: "127.0.0.1:6060".into(),
            up: false,
            live_heap: None,
            heap_alloc: None,
            slope_per_hour: None,
            goroutines: None,
            headline: Headline::NoData,
            error: Some("heap: 500: \x1b]52;c;aGk=\x07\x1b[2J\nfake line".into()),
        };
        let line = render_line(1, 2, Duration::ZERO, &r);
        assert!(
            line.contains("\\x1b]52;c;aGk=\\x07\\x1b[2J\\nfake"),
            "{line}"
        );
        assert!(!line.contains(['\x1b', '\x07', '\n']), "{line}");
        let screen = render_screen(Duration::ZERO, Duration::from_secs(1), 1, 2, &[r]).join("\n");
        // Only the view's own colour codes remain.
        let own = screen.replace("\x1b[31m", "").replace("\x1b[0m", "");
        assert!(!own.contains(['\x1b', '\x07']), "{screen:?}");
        assert!(screen.contains("\\x1b[2J"), "{screen:?}");
    }
}
