//! What a metric family is: its kind, name, labels and help ([`MetricDef`]), the
//! constructors the table is written with, and the name it is exposed under.

use std::borrow::Cow;

use crate::config::Collector;

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
    /// The collector that switches a per-target family on or off (`None`: always
    /// exported, the exporter's own and `/probe`'s series).
    pub collector: Option<Collector>,
}

impl MetricDef {
    /// The family in `collector`.
    pub(super) const fn of(mut self, collector: Collector) -> MetricDef {
        self.collector = Some(collector);
        self
    }
}

/// The name a family is exposed under (`_total` appended to counters).
pub fn exposed_name(def: &MetricDef) -> Cow<'static, str> {
    match def.kind {
        Kind::Gauge => Cow::Borrowed(def.name),
        Kind::Counter => Cow::Owned(format!("{}_total", def.name)),
    }
}

/// A per-target gauge.
pub(super) const fn g(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> MetricDef {
    MetricDef {
        name,
        kind: Kind::Gauge,
        labels,
        help,
        per_target: true,
        collector: None,
    }
}

/// A per-target counter.
pub(super) const fn c(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> MetricDef {
    MetricDef {
        name,
        kind: Kind::Counter,
        labels,
        help,
        per_target: true,
        collector: None,
    }
}

/// A family without the per-target labels.
pub(super) const fn global(mut def: MetricDef) -> MetricDef {
    def.per_target = false;
    def
}
