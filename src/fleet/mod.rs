//! Fleet mode (`--discover`): finding every Go service that serves pprof on this node, with its pod identity, without per-target configuration.

pub mod gobuild;
pub mod identity;
pub mod netns;
