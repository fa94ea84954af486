//! Container and process memory: cgroup v1/v2 files, /proc, kernel OOM-kill log; the
//! namespaces of processes.
//!
//! Each submodule pairs pure `parse_*` functions (unit-tested on fixture text) with
//! `read_*` functions doing the I/O, as node_exporter's collectors do.

pub mod cgroup;
pub mod discover;
pub mod kmsg;
pub mod listener;
pub mod ns;
pub mod proc;

pub use cgroup::{CgroupMemory, Pressure, PsiLine, StatKind, read_cgroup_memory};
pub use discover::{
    CgroupLocation, CgroupVersion, Discovered, ProcessSelector, discover, pid_alive,
};
pub use kmsg::{
    KernelLogOptions, KernelLogReader, KernelLogSource, OomKill, attribute, spawn_kernel_log_reader,
};
pub use listener::{Found, Listener, find_listener};
pub use proc::{ProcessMemory, read_boot_time, read_process};
