//! Line charts drawn on the server (readable without JavaScript, nothing fetched from
//! anywhere): the lines and grid as inline SVG stretched to the page's width, the axis
//! labels and legend as HTML text, and downsampling to a bounded number of points.

use std::fmt::Write as _;

use maud::{Markup, html};

use crate::units::{fmt_bytes, fmt_duration};

/// Most points drawn per series: a 30-minute window at 1 s would otherwise be 1,800.
pub const MAX_POINTS: usize = 300;

/// How a chart's values are written on its axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Count,
}

impl Unit {
    fn fmt(self, v: f64) -> String {
        match self {
            Unit::Bytes => fmt_bytes(v),
            Unit::Count if v.fract().abs() > 1e-9 => format!("{v:.1}"),
            Unit::Count => format!("{v:.0}"),
        }
    }
}

/// One line of a chart: (seconds relative to the newest sample, <= 0; value).
#[derive(Debug, Clone)]
pub struct Series {
    pub label: &'static str,
    pub color: &'static str,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// At most `max` points: the series split into `max / 2` buckets of time order, each
/// keeping its lowest and highest point (so spikes and troughs survive), in order.
pub fn downsample(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max < 2 {
        return points.to_vec();
    }
    let buckets = max / 2;
    let mut out = Vec::with_capacity(max);
    for b in 0..buckets {
        let lo = b * points.len() / buckets;
        let hi = ((b + 1) * points.len() / buckets).min(points.len());
        let Some(chunk) = points.get(lo..hi) else {
            continue;
        };
        let min = chunk
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.1.total_cmp(&b.1.1));
        let max = chunk
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.1.total_cmp(&b.1.1));
        match (min, max) {
            (Some((i, p)), Some((j, q))) if i != j => {
                if i < j {
                    out.extend([*p, *q]);
                } else {
                    out.extend([*q, *p]);
                }
            }
            (Some((_, p)), _) => out.push(*p),
            _ => {}
        }
    }
    out
}

/// 1, 2 or 5 times a power of ten, at least `v` (the top of an axis).
fn nice_ceiling(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let exp = v.log10().floor();
    let base = 10f64.powf(exp);
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * base >= v {
            return m * base;
        }
    }
    10.0 * base
}

/// Like [`nice_ceiling`] but on powers of two for bytes, so ticks read 16 MiB not 15.3.
fn nice_ceiling_bytes(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1024.0;
    }
    let mut top = 1024.0;
    while top < v {
        // 1, 1.5, 2 steps of each power of two keep the chart reasonably full.
        if top * 1.5 >= v {
            return top * 1.5;
        }
        top *= 2.0;
    }
    top
}

/// The plot area's coordinates: the SVG stretches them to the page's width
/// (`preserveAspectRatio="none"`, strokes that do not scale), so only the lines are in
/// the SVG; the axis labels are HTML text beside it, at the page's font size at any
/// width (drawn inside a scaled SVG they shrank to 5 px on a phone).
const W: f64 = 1000.0;
const H: f64 = 200.0;

/// A line chart: an SVG of the lines and grid with HTML axis labels and a legend;
/// `span` is the x range in seconds (the data held), drawn from `-span` to `now`. It
/// takes the page's width. The legend gives each series' newest value (the newest
/// sample's, not a downsampled point).
pub fn svg_chart(title: &str, unit: Unit, span: f64, series: &[Series]) -> Markup {
    let drawn: Vec<(&Series, Vec<(f64, f64)>)> = series
        .iter()
        .filter(|s| !s.points.is_empty())
        .map(|s| (s, downsample(&s.points, MAX_POINTS)))
        .collect();
    if drawn.is_empty() {
        return html! {
            figure class="chart" {
                figcaption { (title) }
                p class="muted" { "no data in the window yet" }
            }
        };
    }
    let vmax = drawn
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .fold(0.0f64, f64::max);
    let top = match unit {
        Unit::Bytes => nice_ceiling_bytes(vmax),
        Unit::Count => nice_ceiling(vmax.max(1.0)),
    };
    let span = if span > 0.0 { span } else { 1.0 };
    // Shares of the plot (0..1) from the left and from the top.
    let fx = |t: f64| ((t + span) / span).clamp(0.0, 1.0);
    let fy = |v: f64| 1.0 - (v / top).clamp(0.0, 1.0);
    let f1 = |v: f64| format!("{v:.1}");
    let points = |pts: &[(f64, f64)]| {
        let mut p = String::with_capacity(pts.len() * 14);
        for (t, v) in pts {
            let _ = write!(p, "{:.1},{:.1} ", W * fx(*t), H * fy(*v));
        }
        p.trim_end().to_string()
    };
    // Y labels 0, 1/4 .. top; x labels -span .. now in quarters.
    let yticks: Vec<(f64, String)> = (0..=4)
        .map(|i| {
            let v = top * f64::from(i) / 4.0;
            (fy(v), unit.fmt(v))
        })
        .collect();
    let xticks: Vec<(f64, String, &str)> = (0..=4)
        .map(|i| {
            let t = -span + span * f64::from(i) / 4.0;
            let label = if i == 4 {
                "now".to_string()
            } else {
                format!("-{}", fmt_duration(-t))
            };
            let place = match i {
                0 => "xlabel first",
                4 => "xlabel last",
                _ => "xlabel",
            };
            (fx(t), label, place)
        })
        .collect();
    let pct = |share: f64| format!("{:.1}%", share * 100.0);
    html! {
        figure class="chart" {
            figcaption { (title) }
            div class="plot" {
                div class="yaxis" aria-hidden="true" {
                    @for (yy, label) in &yticks {
                        span class="ylabel" style={ "top:" (pct(*yy)) } { (super::html::nb(label)) }
                    }
                }
                svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (W) " " (H) }
                    preserveAspectRatio="none" role="img" aria-label=(title) {
                    @for (yy, _) in &yticks {
                        line class="grid" x1="0" y1=(f1(H * yy)) x2=(W) y2=(f1(H * yy))
                            vector-effect="non-scaling-stroke" {}
                    }
                    @for (s, pts) in &drawn {
                        polyline data-series=(s.label) fill="none" stroke=(s.color) stroke-width="1.8"
                            vector-effect="non-scaling-stroke" stroke-dasharray=[s.dashed.then_some("6 4")]
                            points=(points(pts)) {
                            title { (s.label) }
                        }
                    }
                }
                div {}
                div class="xaxis" aria-hidden="true" {
                    @for (xx, label, place) in &xticks {
                        span class=(place) style={ "left:" (pct(*xx)) } { (label) }
                    }
                }
            }
            div class="legend" {
                @for (s, _) in &drawn {
                    span {
                        i style={ "background:" (s.color) } {}
                        (s.label) " " b { (s.points.last().map(|p| super::html::nb(&unit.fmt(p.1))).unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsample_keeps_extremes_and_bound() {
        let pts: Vec<(f64, f64)> = (0..1800)
            .map(|i| (f64::from(i), if i == 777 { 1e9 } else { f64::from(i % 7) }))
            .collect();
        let d = downsample(&pts, MAX_POINTS);
        assert!(d.len() <= MAX_POINTS, "{}", d.len());
        assert!(d.len() >= MAX_POINTS - 2);
        assert!(d.contains(&(777.0, 1e9)), "spike kept");
        assert!(d.windows(2).all(|w| w[0].0 < w[1].0), "time order");
        let short = vec![(0.0, 1.0), (1.0, 2.0)];
        assert_eq!(downsample(&short, MAX_POINTS), short);
    }

    #[test]
    fn nice_axis_tops() {
        let cases = [
            (0.0, 1.0),
            (3.0, 5.0),
            (7.0, 10.0),
            (11.0, 20.0),
            (180.0, 200.0),
        ];
        for (v, want) in cases {
            assert_eq!(nice_ceiling(v), want, "{v}");
        }
        assert_eq!(nice_ceiling_bytes(1000.0), 1024.0);
        assert_eq!(nice_ceiling_bytes(10.0 * 1048576.0), 12.0 * 1048576.0);
        assert_eq!(nice_ceiling_bytes(13.0 * 1048576.0), 16.0 * 1048576.0);
    }

    #[test]
    fn chart_escapes_and_draws_points() {
        let s = Series {
            label: "a<b",
            color: "#000",
            dashed: false,
            points: vec![(-10.0, 0.0), (-5.0, 512.0), (0.0, 1024.0)],
        };
        let svg = svg_chart("t & <x>", Unit::Bytes, 10.0, &[s]).into_string();
        assert!(svg.contains("t &amp; &lt;x&gt;"));
        assert!(svg.contains("data-series=\"a&lt;b\""));
        // x from 0 to 1000, y from 200 (0) to 0 (1 KiB top).
        assert!(
            svg.contains("points=\"0.0,200.0 500.0,100.0 1000.0,0.0\""),
            "{svg}"
        );
        // The labels are HTML beside the plot: 1 KiB at the top, 0 at the bottom.
        assert!(
            svg.contains("<span class=\"ylabel\" style=\"top:0.0%\">1.0\u{a0}KiB</span>"),
            "{svg}"
        );
        assert!(
            svg.contains("style=\"top:100.0%\">0\u{a0}B</span>"),
            "{svg}"
        );
        assert!(svg.contains(">now</span>") && svg.contains(">-10s</span>"));
        // The legend's value is the newest point's.
        assert!(svg.contains("<b>1.0\u{a0}KiB</b>"), "{svg}");
        let empty = svg_chart("none", Unit::Count, 10.0, &[]).into_string();
        assert!(empty.contains("no data in the window yet"));
    }
}
