//! The metrics room, the only place that knows metric names: the table of every
//! family (`table`, with what a family is in `def`), the [`Sink`] series are pushed
//! into (`sink`), their text encoding into blocks and pages (`text`), the README's
//! reference (`readme`), every emitter that turns values into series ([`emit`]), and
//! the `/metrics` page built from per-target blocks ([`collector`]).
//!
//! Metrics are built from each target's latest state (the client_rust `Collector`
//! pattern: a removed target's series disappear, and a failed read only leaves out its
//! own series), encoded once per tick per target: a page concatenates the blocks.
//! Emitters push [`Series`] into a [`Sink`] by metric name, checked against
//! [`METRICS`]; a page groups them by family in table order.
//!
//! Counter names in the table have no `_total`: the text encoder appends it.

pub mod collector;
mod def;
pub mod emit;
mod readme;
mod sink;
mod table;
mod text;

pub use collector::TargetsCollector;
pub use def::{Kind, MetricDef, exposed_name};
pub use readme::markdown_reference;
pub use sink::{LabelledSamples, Series, Sink, Value};
pub use table::{METRICS, lookup};
pub use text::{Block, render};
