//! A target's process and cgroup: found again when needed, then their memory files
//! read on the blocking pool.

use super::{SystemStatus, TargetState};
use crate::config::SystemConfig;
use crate::system::{CgroupLocation, ProcessSelector};

impl TargetState {
    /// Finds the process and cgroup again when needed (first time, process gone, or a
    /// pid file that may have changed), then reads their memory files. File reads are
    /// small but blocking, so they run on the blocking pool.
    pub(super) async fn read_system(&self) {
        let (prev_pid, prev_loc) = {
            let st = self.status();
            (st.system.pid, st.system.location.clone())
        };
        let selector = self.selector.clone();
        let cgroup = self.config.cgroup.clone();
        let sys = self.system.clone();
        let name = self.config.name.clone();
        let read = tokio::task::spawn_blocking(move || {
            read_system_blocking(
                &name,
                &selector,
                cgroup.as_deref(),
                &sys,
                prev_pid,
                prev_loc,
            )
        })
        .await;
        match read {
            Ok(system) => self.status().system = system,
            Err(e) => {
                tracing::error!(target_name = %self.config.name, error = %e, "reading system files panicked")
            }
        }
    }
}

/// Discovery (when needed) and reads of the cgroup and `/proc` files.
fn read_system_blocking(
    name: &str,
    selector: &ProcessSelector,
    cgroup: Option<&str>,
    sys: &SystemConfig,
    prev_pid: Option<u32>,
    prev_loc: Option<CgroupLocation>,
) -> SystemStatus {
    let still_there = prev_pid.is_some_and(|p| crate::system::pid_alive(&sys.proc_root, p))
        && selector.pid_file.is_none()
        && (prev_loc.is_some() || cgroup.is_none());
    let (pid, location) = if still_there {
        (prev_pid, prev_loc)
    } else {
        match crate::system::discover(selector, cgroup, &sys.proc_root, &sys.cgroup_root) {
            Ok(d) => {
                if d.pid != prev_pid && d.pid.is_some() {
                    tracing::info!(target_name = name, pid = ?d.pid, cgroup = ?d.cgroup.as_ref().map(|c| &c.path), "found the target's process");
                }
                (d.pid, d.cgroup)
            }
            Err(e) => {
                tracing::warn!(target_name = name, error = %e, "finding the target's process failed");
                return SystemStatus {
                    cgroup: Some(Err(e.to_string())),
                    process: (!selector.is_empty()).then(|| Err(e.to_string())),
                    ..SystemStatus::default()
                };
            }
        }
    };
    let cgroup_read = location.as_ref().map(|loc| {
        crate::system::read_cgroup_memory(loc).map_err(|e| {
            tracing::debug!(target_name = name, error = %e, "reading cgroup memory failed");
            e.to_string()
        })
    });
    let process_read = if selector.is_empty() {
        None
    } else {
        Some(match pid {
            Some(p) => crate::system::read_process(&sys.proc_root, p).map_err(|e| e.to_string()),
            None => Err("process not running".to_string()),
        })
    };
    SystemStatus {
        pid,
        location,
        cgroup: cgroup_read,
        process: process_read,
    }
}
