//! Fleet mode (`--discover`): finding every Go service that serves pprof on this node,
//! with its pod identity, without per-target configuration.
//!
//! `scan` looks at `/proc` (which processes are Go, `gobuild`; their listening sockets
//! in their own network namespace; who they are, `identity`); `runner` asks each new
//! listener for its pprof command line (through `netns` when it lives in a pod's
//! network namespace) and swaps the targets found into the registry every rescan;
//! `admission` keeps its books (which ports are watched, refused and why, over a cap).

pub mod admission;
pub mod gobuild;
pub mod identity;
pub mod netns;
pub mod runner;
pub mod scan;
