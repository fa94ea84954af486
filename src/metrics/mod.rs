//! The metrics room, the only place that knows metric names: the table of every
//! family ([`table`]), the [`Sink`] series are pushed into and their encoding (here),
//! every emitter that turns values into series ([`emit`]), and the scrape-time
//! collector ([`collector`]).
//!
//! Metrics are built fresh on each `/metrics` request from each target's latest state
//! (the client_rust `Collector` pattern): a removed target's series disappear, and a
//! failed read only leaves out its own series. Emitters push [`Series`] into a [`Sink`]
//! by metric name; the collector groups them by family in table order and checks every
//! name against [`METRICS`].
//!
//! Counter names in the table have no `_total`: the text encoder appends it.

pub mod collector;
pub mod emit;
mod table;

pub use collector::TargetsCollector;
pub use table::METRICS;

use std::borrow::Cow;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

/// One metric family: its name (without `_total` for counters), type, the labels it
/// carries beyond the per-target ones (`target` + configured labels), and its help.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
    /// Whether the series carries the per-target labels.
    pub per_target: bool,
}

/// Looks a metric family up by name and kind (a gauge and a counter may share a base name).
pub fn lookup(name: &str, kind: Kind) -> Option<&'static MetricDef> {
    METRICS.iter().find(|d| d.name == name && d.kind == kind)
}

/// The name a family is exposed under (`_total` appended to counters).
pub fn exposed_name(def: &MetricDef) -> Cow<'static, str> {
    match def.kind {
        Kind::Gauge => Cow::Borrowed(def.name),
        Kind::Counter => Cow::Owned(format!("{}_total", def.name)),
    }
}

/// One series value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(u64::from(v))
    }
}

impl Value {
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Int(v) => v as f64,
            Value::Float(v) => v,
        }
    }
}

/// One series: family (by index into [`METRICS`]), its own label values (in the order of
/// the def's `labels`) and value. Per-target labels are added by the collector.
#[derive(Debug, Clone)]
pub struct Series {
    pub def: &'static MetricDef,
    pub labels: Vec<String>,
    pub value: Value,
}

/// Where modules push their series. Unknown names are a programming error: they panic
/// in debug builds (and so in tests) and are dropped in release builds.
#[derive(Debug, Default)]
pub struct Sink {
    pub samples: Vec<Series>,
}

impl Sink {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, name: &str, kind: Kind, labels: &[&str], value: Value) {
        let Some(def) = lookup(name, kind) else {
            debug_assert!(false, "metric {name} ({kind:?}) is not in metrics::METRICS");
            return;
        };
        debug_assert_eq!(
            def.labels.len(),
            labels.len(),
            "metric {name}: label values do not match {:?}",
            def.labels
        );
        if let Value::Float(f) = value
            && !f.is_finite()
        {
            return;
        }
        self.samples.push(Series {
            def,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            value,
        });
    }

    /// A gauge with no labels of its own.
    pub fn gauge(&mut self, name: &str, value: impl Into<Value>) {
        self.push(name, Kind::Gauge, &[], value.into());
    }

    /// A gauge with label values in the order of its def.
    pub fn gauge_with(&mut self, name: &str, labels: &[&str], value: impl Into<Value>) {
        self.push(name, Kind::Gauge, labels, value.into());
    }

    /// A counter (name without `_total`).
    pub fn counter(&mut self, name: &str, value: impl Into<Value>) {
        self.push(name, Kind::Counter, &[], value.into());
    }

    /// A counter with label values in the order of its def.
    pub fn counter_with(&mut self, name: &str, labels: &[&str], value: impl Into<Value>) {
        self.push(name, Kind::Counter, labels, value.into());
    }
}

/// A group of samples that share per-target labels (`target` + configured labels).
#[derive(Debug, Clone, Default)]
pub struct LabelledSamples {
    pub target_labels: Vec<(String, String)>,
    pub samples: Vec<Series>,
}

/// Encodes groups of samples as metric families in [`METRICS`] order: one descriptor
/// per family, every series of every group under it.
pub fn encode_groups(
    groups: &[LabelledSamples],
    mut encoder: DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    // Family position in METRICS -> [(group index, sample index)]. Every def a Sink
    // holds comes from METRICS, so its position is its address offset in the table.
    let base = METRICS.as_ptr() as usize;
    let size = std::mem::size_of::<MetricDef>();
    let mut by_family: Vec<Vec<(u32, u32)>> = vec![Vec::new(); METRICS.len()];
    for (gi, group) in groups.iter().enumerate() {
        for (si, s) in group.samples.iter().enumerate() {
            let pos = (s.def as *const MetricDef as usize).wrapping_sub(base) / size;
            if let Some(bucket) = by_family.get_mut(pos) {
                bucket.push((gi as u32, si as u32));
            }
        }
    }
    let mut labels: Vec<(&str, &str)> = Vec::with_capacity(8);
    for (def, entries) in METRICS.iter().zip(&by_family) {
        if entries.is_empty() {
            continue;
        }
        let metric_type = match def.kind {
            Kind::Gauge => MetricType::Gauge,
            Kind::Counter => MetricType::Counter,
        };
        let mut family = encoder.encode_descriptor(def.name, def.help, None, metric_type)?;
        for &(gi, si) in entries {
            let group = &groups[gi as usize];
            let s = &group.samples[si as usize];
            labels.clear();
            if def.per_target {
                labels.extend(
                    group
                        .target_labels
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
            let metric = ConstValue {
                kind: def.kind,
                value: s.value,
            };
            metric.encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

/// A collector of samples fixed at construction (one `/probe` response).
#[derive(Debug)]
pub struct OneShot(pub Vec<LabelledSamples>);

impl prometheus_client::collector::Collector for OneShot {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_groups(&self.0, encoder)
    }
}

#[derive(Debug)]
struct ConstValue {
    kind: Kind,
    value: Value,
}

impl EncodeMetric for ConstValue {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        match (self.kind, self.value) {
            (Kind::Gauge, Value::Int(v)) => encoder.encode_gauge(&v),
            (Kind::Gauge, Value::Float(v)) => encoder.encode_gauge(&v),
            (Kind::Counter, Value::Int(v)) => {
                encoder.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&v, None)
            }
            (Kind::Counter, Value::Float(v)) => {
                encoder.encode_counter::<prometheus_client::encoding::NoLabelSet, _, f64>(&v, None)
            }
        }
    }

    fn metric_type(&self) -> MetricType {
        match self.kind {
            Kind::Gauge => MetricType::Gauge,
            Kind::Counter => MetricType::Counter,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_follow_conventions_and_are_unique() {
        let mut seen = HashSet::new();
        let re = regex::Regex::new(r"^leakwatch_[a-z0-9_]+$").unwrap();
        for d in METRICS {
            assert!(re.is_match(d.name), "{}", d.name);
            assert!(
                seen.insert(exposed_name(d)),
                "duplicate exposed name {}",
                exposed_name(d)
            );
            assert!(
                !d.name.ends_with("_total"),
                "{}: encoder adds _total",
                d.name
            );
            assert!(!d.help.is_empty());
            assert!(
                !d.name.contains("percent"),
                "{}: ratios are 0..1, not percent",
                d.name
            );
            for l in d.labels {
                assert_ne!(*l, "target", "{}: target is a per-target label", d.name);
            }
        }
    }
}

/// The README's metrics reference: one Markdown table row per family, in table order.
/// `README.md` holds this between `<!-- metrics:begin -->` and `<!-- metrics:end -->`;
/// a test keeps them equal (`UPDATE_GOLDEN=1` rewrites the README section).
pub fn markdown_reference() -> String {
    let mut out = String::from("| metric | type | labels | help |\n|---|---|---|---|\n");
    for d in METRICS {
        let mut labels: Vec<&str> = Vec::new();
        if d.per_target {
            labels.push("target, ...");
        }
        labels.extend(d.labels.iter().copied());
        let kind = match d.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            exposed_name(d),
            kind,
            labels.join(", "),
            d.help.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod readme_tests {
    const BEGIN: &str = "<!-- metrics:begin -->\n";
    const END: &str = "<!-- metrics:end -->";

    #[test]
    fn readme_metrics_reference_matches_the_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
        let readme = std::fs::read_to_string(&path).expect("README.md");
        let (Some(b), Some(e)) = (readme.find(BEGIN), readme.find(END)) else {
            panic!("README.md has no {BEGIN:?} ... {END:?} section");
        };
        let current = &readme[b + BEGIN.len()..e];
        let want = super::markdown_reference();
        if current != want {
            if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
                let updated = format!("{}{}{}", &readme[..b + BEGIN.len()], want, &readme[e..]);
                std::fs::write(&path, updated).unwrap();
                return;
            }
            panic!(
                "README metrics reference is stale: run UPDATE_GOLDEN=1 cargo test --lib readme"
            );
        }
    }
}
