//! Configuration: the strict YAML file, the defaults every target inherits, and
//! validation at load time. Errors name the key (and, from the YAML parser, the line).
//!
//! A target's settings are one struct ([`TargetSettings`]) for the built-in values,
//! `defaults:` and each target's own keys, merged once; [`Config::load`] /
//! [`Config::from_yaml`] return a fully resolved [`Config`].
//!
//! Inside: `file` (the file's sections and keys) reads through `section` (settings
//! keys shared with their own) into `settings`; `ranges` checks values (and warns of
//! unreasonable ones); `target` resolves one target and `load` the whole
//! configuration; `errors` words the YAML reader's errors and compiles regexes.

mod collectors;
mod discover;
mod errors;
mod file;
mod formats;
mod load;
mod ranges;
mod reload;
mod section;
mod settings;
mod target;

pub use collectors::{Collector, Collectors, MetricsConfig};
pub use discover::{
    Candidate, DiscoverConfig, DiscoverFilter, DiscoverReport, DiscoverRule, Refusal, Skip,
};
pub use file::{ProbeConfig, ProbeModule, SystemConfig};
pub use formats::{GcMode, GoroutineFormat, HeapFormat};
pub use load::{Config, DEFAULT_LISTEN, DEFAULT_TARGET_URL, RegexEq, hashmod};
pub use reload::ReloadStatus;
pub use settings::TargetSettings;
pub use target::TargetConfig;
