//! A target's process and cgroup: found again when needed (from the config's selector,
//! or for a loopback target that names none, from the process listening on its port),
//! then their memory files read on the blocking pool.

use std::time::{Duration, Instant};

use super::state::{SystemStatus, TargetState};
use crate::config::SystemConfig;
use crate::scrape::Fetcher;
use crate::system::{CgroupLocation, Found, Listener, ProcessSelector};

/// How often a loopback target whose listening process was not found (or not the
/// service) is looked at again: each look lists every process's open files.
const LISTENER_RETRY: Duration = Duration::from_secs(60);

/// The largest `/debug/pprof/cmdline` read: a command line, not a profile.
const MAX_CMDLINE_BYTES: u64 = 256 << 10;

impl TargetState {
    /// Finds the process and cgroup again when needed (first time, process gone, or a
    /// pid file that may have changed), then reads their memory files. File reads are
    /// small but blocking, so they run on the blocking pool.
    pub(super) async fn read_system(&self, fetcher: &Fetcher) {
        let (prev_pid, prev_loc, listener_checked) = {
            let st = self.status();
            (
                st.system.pid,
                st.system.location.clone(),
                st.system.listener_checked,
            )
        };
        // A loopback target with no selector: its listening process, verified against
        // the command line the target reports, looked for at most every minute.
        let mut listener = None;
        if let Some(l) = self.listener
            && !prev_pid.is_some_and(|p| crate::system::pid_alive(&self.system.proc_root, p))
            // At once when the process found before is gone (restarted).
            && (prev_pid.is_some() || listener_checked.is_none_or(|at| at.elapsed() >= LISTENER_RETRY))
        {
            let first_look = listener_checked.is_none();
            listener = Some((l, self.target_cmdline(fetcher).await, first_look));
        }
        let checked = if listener.is_some() {
            Some(Instant::now())
        } else {
            listener_checked
        };
        let selector = self.selector.clone();
        let cgroup = self.config.cgroup.clone();
        let sys = self.system.clone();
        let name = self.config.name.clone();
        let read = tokio::task::spawn_blocking(move || {
            read_system_blocking(
                &name,
                &selector,
                listener,
                cgroup.as_deref(),
                &sys,
                prev_pid,
                prev_loc,
            )
        })
        .await;
        match read {
            Ok(mut system) => {
                system.listener_checked = checked;
                self.status().system = system;
            }
            Err(e) => {
                tracing::error!(target_name = %self.config.name, error = %e, "reading system files panicked")
            }
        }
    }

    /// The target's `/debug/pprof/cmdline` (`os.Args` joined with NULs), or why not.
    async fn target_cmdline(&self, fetcher: &Fetcher) -> Result<Vec<u8>, String> {
        let url = self.config.endpoint("/debug/pprof/cmdline");
        fetcher
            .get_with(
                &url,
                self.config.timeout,
                MAX_CMDLINE_BYTES,
                &self.config.auth,
            )
            .await
            .map(|f| f.body)
            // Logged: a target may echo the request's credentials in its error reply.
            .map_err(|e| self.config.scrub_secrets(&e.to_string()))
    }
}

/// Discovery (when needed) and reads of the cgroup and `/proc` files. `listener` is
/// set when a loopback target's process is to be looked for, with its reported
/// command line and whether this is the first look (later ones log only at debug).
fn read_system_blocking(
    name: &str,
    selector: &ProcessSelector,
    listener: Option<(Listener, Result<Vec<u8>, String>, bool)>,
    cgroup: Option<&str>,
    sys: &SystemConfig,
    prev_pid: Option<u32>,
    prev_loc: Option<CgroupLocation>,
) -> SystemStatus {
    let still_there = prev_pid.is_some_and(|p| crate::system::pid_alive(&sys.proc_root, p))
        && selector.pid_file.is_none()
        && (prev_loc.is_some() || cgroup.is_none());
    let found = match listener {
        Some((l, cmdline, first)) if !still_there => {
            Some(listening_pid(name, &l, cmdline, first, sys))
        }
        _ => None,
    };
    let (pid, location) = if still_there {
        (prev_pid, prev_loc)
    } else if selector.is_empty() && cgroup.is_none() && found.is_none() {
        // A loopback target between looks: nothing new to find.
        (None, None)
    } else {
        let by_port = ProcessSelector {
            pid: found.flatten(),
            ..ProcessSelector::default()
        };
        let selector = if selector.is_empty() {
            &by_port
        } else {
            selector
        };
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
    // A named process that is not running is an error; a loopback target's process
    // that was not found is simply not known.
    let process_read = match pid {
        Some(p) => Some(crate::system::read_process(&sys.proc_root, p).map_err(|e| e.to_string())),
        None if !selector.is_empty() => Some(Err("process not running".to_string())),
        None => None,
    };
    SystemStatus {
        pid,
        location,
        cgroup: cgroup_read,
        process: process_read,
        listener_checked: None,
    }
}

/// The PID of the process listening on a loopback target's port, when it runs the
/// command line the target reports; every other outcome is logged and gives `None`.
fn listening_pid(
    name: &str,
    l: &Listener,
    cmdline: Result<Vec<u8>, String>,
    first: bool,
    sys: &SystemConfig,
) -> Option<u32> {
    // Said once at info; the retries every minute only at debug.
    macro_rules! note {
        ($($t:tt)*) => {
            if first {
                tracing::info!($($t)*)
            } else {
                tracing::debug!($($t)*)
            }
        };
    }
    let cmdline = match cmdline {
        Ok(c) => c,
        Err(e) => {
            note!(target_name = name, port = l.port, error = %e, "not looking for the process listening on the target's port: its /debug/pprof/cmdline cannot confirm which one it is");
            return None;
        }
    };
    match crate::system::find_listener(l, &cmdline, &sys.proc_root) {
        Ok(Found::Process(pid)) => Some(pid),
        Ok(Found::Nothing) => {
            tracing::debug!(
                target_name = name,
                port = l.port,
                "no visible process listens on the target's port (another network or PID namespace?)"
            );
            None
        }
        Ok(Found::NotTheService(pids)) => {
            tracing::info!(
                target_name = name,
                port = l.port,
                ?pids,
                "the process listening on the target's port does not run the target's command line (a port forwarder?): not reading its memory; set pid, pid_file, process or cgroup"
            );
            None
        }
        Err(e) => {
            tracing::warn!(target_name = name, port = l.port, error = %e, "looking for the process listening on the target's port failed");
            None
        }
    }
}
