//! The [`Sink`] emitters push series into, by metric name (checked against the table),
//! and the groups of series that share per-target labels ([`LabelledSamples`]); their
//! encoding is `text`'s.

use super::def::{Kind, MetricDef};
use super::table::lookup;
use crate::config::Collectors;

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
/// in debug builds (and so in tests) and are dropped in release builds. A series of a
/// collector not in force is dropped at the push.
#[derive(Debug)]
pub struct Sink {
    pub samples: Vec<Series>,
    collectors: Collectors,
}

impl Default for Sink {
    fn default() -> Self {
        Sink::new()
    }
}

impl Sink {
    /// A sink keeping every series.
    pub fn new() -> Self {
        Sink::with(Collectors::ALL)
    }

    /// A sink keeping the series of `collectors` (and those of no collector).
    pub fn with(collectors: Collectors) -> Self {
        Sink {
            samples: Vec::new(),
            collectors,
        }
    }

    fn push(&mut self, name: &str, kind: Kind, labels: &[&str], value: Value) {
        let Some(def) = lookup(name, kind) else {
            debug_assert!(false, "metric {name} ({kind:?}) is not in metrics::METRICS");
            return;
        };
        if def.collector.is_some_and(|c| !self.collectors.contains(c)) {
            return;
        }
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
