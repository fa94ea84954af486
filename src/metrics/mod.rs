//! The metrics room, the only place that knows metric names: the table of every
//! family (`table`, with what a family is in `def`), the [`Sink`] series are pushed
//! into and their encoding (`sink`), the README's reference (`readme`),
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
mod def;
pub mod emit;
mod readme;
mod sink;
mod table;

pub use collector::TargetsCollector;
pub use def::{Kind, MetricDef, exposed_name};
pub use readme::markdown_reference;
pub use sink::{LabelledSamples, OneShot, Series, Sink, Value, encode_groups};
pub use table::{METRICS, lookup};
