//! The Prometheus text exposition (format 0.0.4) written straight into a buffer: a
//! family's `# HELP` / `# TYPE` header and one line per series, byte for byte what
//! prometheus-client's `prometheus_text` encoder writes (the golden `/metrics` files
//! hold it). A group of series sharing per-target labels is encoded once into a
//! [`Block`] (its lines, family after family in table order), and a page is the
//! concatenation of blocks family by family ([`render`]): each family's header once,
//! then its lines from every block in order, so families stay contiguous.

use super::def::{Kind, MetricDef};
use super::sink::{LabelledSamples, Value};
use super::table::METRICS;

/// The position of `def` in [`METRICS`]. Every def a [`super::Sink`] holds comes from
/// that one table (a `static`), so its position is its address offset in it.
pub(super) fn family_index(def: &MetricDef) -> Option<usize> {
    let base = METRICS.as_ptr() as usize;
    let size = std::mem::size_of::<MetricDef>();
    let pos = (def as *const MetricDef as usize).wrapping_sub(base) / size;
    (pos < METRICS.len()).then_some(pos)
}

/// The encoded series of one group (a target's, or the exporter's own): its lines,
/// family after family in table order, and where each family's lines end.
#[derive(Debug, Default, Clone)]
pub struct Block {
    text: String,
    /// (family position in [`METRICS`], end of its lines in `text`), in table order.
    families: Vec<(u16, u32)>,
}

impl Block {
    /// The lines of `group`: each series with the group's per-target labels (for
    /// per-target families) then its own, families in table order, series of one
    /// family in the order they were pushed.
    pub fn encode(group: &LabelledSamples) -> Block {
        let mut order: Vec<(u16, u32)> = group
            .samples
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((family_index(s.def)? as u16, i as u32)))
            .collect();
        order.sort_unstable();
        let mut text = String::with_capacity(order.len() * 96);
        let mut families: Vec<(u16, u32)> = Vec::new();
        for (f, i) in order {
            let s = &group.samples[i as usize];
            series_line(&mut text, s.def, &group.target_labels, &s.labels, s.value);
            let end = text.len() as u32;
            match families.last_mut() {
                Some((last, e)) if *last == f => *e = end,
                _ => families.push((f, end)),
            }
        }
        Block { text, families }
    }

    /// Number of series (lines) in the block.
    pub fn series(&self) -> usize {
        memchr::memchr_iter(b'\n', self.text.as_bytes()).count()
    }

    /// Bytes of encoded lines.
    pub fn len(&self) -> usize {
        self.text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

/// The page of `blocks`: for every family in table order that any block holds, its
/// header once, then its lines from each block in order.
pub fn render(blocks: &[&Block]) -> String {
    let total: usize = blocks.iter().map(|b| b.text.len()).sum();
    // Each block's family list is walked once, in block order, into per-family lists
    // of (block, start, end): walking the table and asking every block for each family
    // touched every block's list once per family (~10 ms of cache misses at 1,000
    // targets, most of the page's time).
    let mut by_family: Vec<Vec<(u32, u32, u32)>> = vec![Vec::new(); METRICS.len()];
    for (b, block) in blocks.iter().enumerate() {
        let mut start = 0u32;
        for &(family, end) in &block.families {
            if let Some(list) = by_family.get_mut(family as usize) {
                list.push((b as u32, start, end));
            }
            start = end;
        }
    }
    let mut out = String::with_capacity(total + 16 * 1024);
    for (def, segments) in METRICS.iter().zip(&by_family) {
        if segments.is_empty() {
            continue;
        }
        header(&mut out, def);
        for &(b, start, end) in segments {
            out.push_str(&blocks[b as usize].text[start as usize..end as usize]);
        }
    }
    out
}

/// `# HELP name help` and `# TYPE name kind` (counters named with `_total`).
fn header(out: &mut String, def: &MetricDef) {
    out.push_str("# HELP ");
    name(out, def);
    out.push(' ');
    escaped(out, def.help, false);
    out.push_str("\n# TYPE ");
    name(out, def);
    out.push_str(match def.kind {
        Kind::Gauge => " gauge\n",
        Kind::Counter => " counter\n",
    });
}

fn name(out: &mut String, def: &MetricDef) {
    out.push_str(def.name);
    if def.kind == Kind::Counter {
        out.push_str("_total");
    }
}

/// One series line: `name{target labels,own labels} value`.
fn series_line(
    out: &mut String,
    def: &MetricDef,
    target_labels: &[(String, String)],
    labels: &[String],
    value: Value,
) {
    name(out, def);
    let mut first = true;
    let mut label = |out: &mut String, k: &str, v: &str| {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        escaped(out, v, true);
        out.push('"');
    };
    if def.per_target {
        for (k, v) in target_labels {
            label(out, k, v);
        }
    }
    for (k, v) in def.labels.iter().zip(labels) {
        label(out, k, v);
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    match value {
        Value::Int(v) => out.push_str(itoa::Buffer::new().format(v)),
        Value::Float(v) if v.is_finite() => out.push_str(dtoa::Buffer::new().format_finite(v)),
        Value::Float(v) if v.is_nan() => out.push_str("NaN"),
        Value::Float(v) if v > 0.0 => out.push_str("+Inf"),
        Value::Float(_) => out.push_str("-Inf"),
    }
    out.push('\n');
}

/// Help text escapes `\` and newlines; label values `"` too.
fn escaped(out: &mut String, s: &str, quote: bool) {
    if !s
        .bytes()
        .any(|b| b == b'\\' || b == b'\n' || (quote && b == b'"'))
    {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::sink::{Series, Sink};
    use crate::metrics::table::lookup;
    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
    use prometheus_client::metrics::MetricType;

    /// The reference: prometheus-client's own text encoder over the same groups.
    #[derive(Debug)]
    struct Reference(Vec<LabelledSamples>);

    #[derive(Debug)]
    struct Const(Kind, Value);

    impl EncodeMetric for Const {
        fn encode(
            &self,
            mut e: prometheus_client::encoding::MetricEncoder,
        ) -> Result<(), std::fmt::Error> {
            use prometheus_client::encoding::NoLabelSet;
            match (self.0, self.1) {
                (Kind::Gauge, Value::Int(v)) => e.encode_gauge(&v),
                (Kind::Gauge, Value::Float(v)) => e.encode_gauge(&v),
                (Kind::Counter, Value::Int(v)) => e.encode_counter::<NoLabelSet, _, u64>(&v, None),
                (Kind::Counter, Value::Float(v)) => {
                    e.encode_counter::<NoLabelSet, _, f64>(&v, None)
                }
            }
        }
        fn metric_type(&self) -> MetricType {
            match self.0 {
                Kind::Gauge => MetricType::Gauge,
                Kind::Counter => MetricType::Counter,
            }
        }
    }

    impl prometheus_client::collector::Collector for Reference {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            for (f, def) in METRICS.iter().enumerate() {
                let entries: Vec<(&LabelledSamples, &Series)> = self
                    .0
                    .iter()
                    .flat_map(|g| g.samples.iter().map(move |s| (g, s)))
                    .filter(|(_, s)| family_index(s.def) == Some(f))
                    .collect();
                if entries.is_empty() {
                    continue;
                }
                let kind = Const(def.kind, Value::Int(0)).metric_type();
                let mut family = encoder.encode_descriptor(def.name, def.help, None, kind)?;
                for (g, s) in entries {
                    let mut labels: Vec<(&str, &str)> = Vec::new();
                    if def.per_target {
                        labels.extend(
                            g.target_labels
                                .iter()
                                .map(|(k, v)| (k.as_str(), v.as_str())),
                        );
                    }
                    labels.extend(
                        def.labels
                            .iter()
                            .copied()
                            .zip(s.labels.iter().map(String::as_str)),
                    );
                    Const(def.kind, s.value).encode(family.encode_family(&labels)?)?;
                }
            }
            Ok(())
        }
    }

    fn group(target: &str, extra: &str) -> LabelledSamples {
        let mut sink = Sink::new();
        sink.gauge("leakwatch_up", 1u64);
        sink.gauge_with("leakwatch_scrape_duration_seconds", &["heap"], 0.25);
        sink.gauge_with("leakwatch_scrape_duration_seconds", &["goroutine"], 1e-7);
        sink.counter_with("leakwatch_scrape_errors", &["heap", "timeout"], 3u64);
        sink.gauge("leakwatch_heap_live_bytes", 1.5e21);
        sink.gauge_with(
            "leakwatch_heap_growth_bytes",
            &["main.(*T).\"odd\"\\fn\nx"],
            -2.0,
        );
        sink.counter("leakwatch_go_memstats_alloc_bytes", 12u64);
        sink.gauge("leakwatch_go_memstats_alloc_bytes", 0.0);
        // Pushed out of table order: the block puts it in its place.
        sink.gauge("leakwatch_targets", 2u64);
        LabelledSamples {
            target_labels: vec![
                ("target".into(), target.into()),
                ("team".into(), extra.into()),
            ],
            samples: sink.samples,
        }
    }

    #[test]
    fn blocks_render_exactly_what_prometheus_client_writes() {
        let groups = vec![
            LabelledSamples {
                target_labels: Vec::new(),
                samples: {
                    let mut s = Sink::new();
                    s.gauge_with("leakwatch_build_info", &["0.1.0"], 1u64);
                    s.samples
                },
            },
            group("a", "x\"y"),
            LabelledSamples::default(),
            group("b", "back\\slash"),
        ];
        let mut want = String::new();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Reference(groups.clone())));
        prometheus_client::encoding::prometheus_text::encode(&mut want, &registry).unwrap();
        let blocks: Vec<Block> = groups.iter().map(Block::encode).collect();
        let got = render(&blocks.iter().collect::<Vec<_>>());
        assert_eq!(got, want);
        assert!(got.contains("leakwatch_scrape_duration_seconds{target=\"a\",team=\"x\\\"y\",endpoint=\"goroutine\"} 1e-7\n"), "{got}");
        assert_eq!(blocks[1].series(), 9);
        assert!(lookup("leakwatch_up", Kind::Gauge).is_some());
    }

    #[test]
    fn an_empty_page_is_empty() {
        assert_eq!(render(&[]), "");
        assert_eq!(render(&[&Block::default()]), "");
    }
}
