//! Container and process memory: cgroup v1/v2 files, /proc, kernel OOM-kill log.
