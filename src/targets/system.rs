//! A target's process and cgroup: found again when needed (from the config's selector,
//! or for a loopback target that names none, from the process serving its port),
//! then their memory files read on the blocking pool.

use std::time::{Duration, Instant};

use super::state::{SystemStatus, TargetState};
use crate::config::SystemConfig;
use crate::scrape::Fetcher;
use crate::system::{CgroupLocation, Found, Listener, ProcessSelector};

/// How often a loopback target's process is looked for again, or the one found checked
/// again: each look makes a connection to the target and reads `/proc/net/tcp{,6}`, and
/// when the process found before no longer serves it, lists every process's open files.
const LISTENER_RETRY: Duration = Duration::from_secs(60);

/// A look for a loopback target's process: where it listens, the command line it
/// reports (or why not), whether this is the first look (later ones log only at
/// debug), and how long to wait for it.
struct Look {
    listener: Listener,
    cmdline: Result<Vec<u8>, String>,
    first: bool,
    timeout: Duration,
}

/// What a look concluded about the process found before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// This process serves the target and runs its command line.
    Adopt(u32),
    /// No process seen here is the target's (whichever was found before is dropped).
    NoneFound,
    /// The look could not tell (the target's command line or the connection failed):
    /// the process found before is kept while it runs.
    Unsure,
}

impl Outcome {
    /// What changes given the process found before (`kept`, still running): `None` to
    /// keep it, `Some(pid)` to adopt that one instead (`Some(None)`: none).
    fn change(self, kept: Option<u32>) -> Option<Option<u32>> {
        match self {
            Outcome::Adopt(pid) if kept == Some(pid) => None,
            Outcome::Adopt(pid) => Some(Some(pid)),
            Outcome::NoneFound => Some(None),
            Outcome::Unsure => None,
        }
    }
}

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
        // A loopback target with no selector: the process serving its port, verified
        // against the command line the target reports, looked for (or checked again)
        // every minute, and at once when the process found before is gone.
        let mut look = None;
        if let Some(l) = self.listener
            && (prev_pid.is_some_and(|p| !crate::system::pid_alive(&self.system.proc_root, p))
                || listener_checked.is_none_or(|at| at.elapsed() >= LISTENER_RETRY))
        {
            let first_look = listener_checked.is_none();
            look = Some(Look {
                listener: l,
                cmdline: self.target_cmdline(fetcher).await,
                first: first_look,
                timeout: self.request_timeout(),
            });
        }
        let checked = if look.is_some() {
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
                look,
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
                self.request_timeout(),
                MAX_CMDLINE_BYTES,
                &self.config.auth,
            )
            .await
            .map(|f| f.body)
            // Logged: a target may echo the request's credentials in its error reply.
            .map_err(|e| self.config.scrub_secrets(&e.to_string()))
    }
}

/// Discovery (when needed) and reads of the cgroup and `/proc` files. `look` is set
/// when a loopback target's process is to be looked for or checked again.
fn read_system_blocking(
    name: &str,
    selector: &ProcessSelector,
    look: Option<Look>,
    cgroup: Option<&str>,
    sys: &SystemConfig,
    prev_pid: Option<u32>,
    prev_loc: Option<CgroupLocation>,
) -> SystemStatus {
    let still_there = prev_pid.is_some_and(|p| crate::system::pid_alive(&sys.proc_root, p))
        && selector.pid_file.is_none()
        && (prev_loc.is_some() || cgroup.is_none());
    let kept = prev_pid.filter(|_| still_there);
    let outcome = look.map(|look| serving_pid(name, look, sys, kept));
    let found = outcome.and_then(|o| o.change(kept));
    if let (Some(None), Some(pid)) = (found, kept) {
        tracing::info!(
            target_name = name,
            pid,
            "the process found before no longer serves the target's port: not reading its memory any more"
        );
    }
    let (pid, location) = if still_there && found.is_none() {
        (prev_pid, prev_loc)
    } else if selector.is_empty() && cgroup.is_none() && found.flatten().is_none() {
        // A loopback target between looks, or whose process was not found.
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

/// The process serving a loopback target's port, when it runs the command line the
/// target reports; every other outcome is logged. `known` is the process found before
/// (still running), looked at first.
fn serving_pid(name: &str, look: Look, sys: &SystemConfig, known: Option<u32>) -> Outcome {
    let Look {
        listener: l,
        cmdline,
        first,
        timeout,
    } = look;
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
            note!(target_name = name, port = l.port, error = %e, "not looking for the process serving the target's port: its /debug/pprof/cmdline cannot confirm which one it is");
            return Outcome::Unsure;
        }
    };
    match crate::system::find_listener(&l, &cmdline, &sys.proc_root, timeout, known) {
        Ok(Found::Process(pid)) => Outcome::Adopt(pid),
        Ok(Found::Nothing) => {
            tracing::debug!(
                target_name = name,
                port = l.port,
                "no visible process serves the target's port (another PID namespace?)"
            );
            Outcome::NoneFound
        }
        Ok(Found::NotTheService(pids)) => {
            tracing::info!(
                target_name = name,
                port = l.port,
                ?pids,
                "the process serving the target's port does not run the target's command line (a port forwarder?): not reading its memory; set pid, pid_file, process or cgroup"
            );
            Outcome::NoneFound
        }
        Err(e) => {
            note!(target_name = name, port = l.port, error = %e, "looking for the process serving the target's port failed");
            Outcome::Unsure
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each look checks the process found before again: one that no longer serves the
    /// port is dropped, or replaced by the one that does; a look that cannot tell keeps it.
    #[test]
    fn a_look_keeps_replaces_or_drops_the_process_found_before() {
        // (process found before and still running, outcome, change)
        let cases = [
            (Some(10), Outcome::Adopt(10), None),
            (Some(10), Outcome::Adopt(20), Some(Some(20))),
            (Some(10), Outcome::NoneFound, Some(None)),
            (Some(10), Outcome::Unsure, None),
            (None, Outcome::Adopt(20), Some(Some(20))),
            (None, Outcome::NoneFound, Some(None)),
            (None, Outcome::Unsure, None),
        ];
        for (kept, outcome, want) in cases {
            assert_eq!(outcome.change(kept), want, "{kept:?} {outcome:?}");
        }
    }
}
