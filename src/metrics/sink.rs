//! The [`Sink`] emitters push series into, by metric name (checked against the table),
//! and their encoding as metric families in table order: the scrape-time collector's
//! and a one-shot `/probe` response's.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;

use super::def::{Kind, MetricDef};
use super::table::{METRICS, lookup};

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
