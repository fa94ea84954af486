//! The kernel-log follower of the exporter: reads OOM-kill reports (system::kmsg) on
//! a thread and attributes each kill to the target whose cgroup or pid matches, or
//! counts it host-wide.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::SystemConfig;
use crate::system;
use crate::targets::Targets;

/// The kernel-log follower's health and the kills it could not attribute.
#[derive(Debug, Default)]
pub struct KernelLogStatus {
    /// (source path, readable) once the follower has tried to open the log.
    pub readable: std::sync::Mutex<Option<(String, bool)>>,
    pub host_kills: std::sync::atomic::AtomicU64,
}

/// Starts following the kernel log (`system.kernel_log`) for OOM kills (unless `off`):
/// a std thread reads it, another attributes each kill to the target whose cgroup or
/// pid matches, or counts it host-wide. Kernel times are placed with the boot time
/// read under `system.proc_root`.
pub fn start(
    sys: &SystemConfig,
    targets: Arc<Targets>,
    status: Arc<KernelLogStatus>,
) -> Option<Arc<system::KernelLogReader>> {
    use system::{KernelLogOptions, KernelLogSource};
    let source = sys.kernel_log.as_str();
    let proc_root: PathBuf = sys.proc_root.clone();
    if source == "off" {
        return None;
    }
    let kind = if source.starts_with("/dev/") {
        KernelLogSource::Kmsg(source.into())
    } else {
        KernelLogSource::File(source.into())
    };
    let is_kmsg = matches!(kind, KernelLogSource::Kmsg(_));
    let (tx, rx) = std::sync::mpsc::channel::<system::OomKill>();
    let reader = match system::spawn_kernel_log_reader(kind, KernelLogOptions::default(), tx) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            tracing::warn!(source, error = %e, "cannot start the kernel log reader");
            *status.readable.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((source.to_string(), false));
            return None;
        }
    };
    let source = source.to_string();
    let health = status.clone();
    let watcher = reader.clone();
    std::thread::Builder::new()
        .name("leakwatch-oom".into())
        .spawn(move || {
            loop {
                // Refresh the health gauge at least every second.
                let next = rx.recv_timeout(std::time::Duration::from_secs(1));
                if let Some(ok) = watcher.readable() {
                    *health.readable.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((source.clone(), ok));
                }
                match next {
                    Ok(kill) => attribute_kill(&targets, &health, &kill, is_kmsg, &proc_root),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
        })
        .ok()?;
    Some(reader)
}

fn attribute_kill(
    targets: &Targets,
    status: &KernelLogStatus,
    kill: &system::OomKill,
    is_kmsg: bool,
    proc_root: &Path,
) {
    let targets = targets.snapshot();
    let ids: Vec<(String, Option<u32>, Option<String>)> = targets
        .iter()
        .map(|t| {
            let (pid, cg) = t.oom_identity();
            (t.config.name.clone(), pid, cg)
        })
        .collect();
    let refs: Vec<(&str, Option<u32>, Option<&str>)> = ids
        .iter()
        .map(|(n, p, c)| (n.as_str(), *p, c.as_deref()))
        .collect();
    let now = std::time::SystemTime::now();
    // /dev/kmsg times are since boot; a replayed file's are from another boot.
    let when = match (
        is_kmsg,
        kill.monotonic_usec,
        system::read_boot_time(proc_root),
    ) {
        (true, Some(us), Some(boot)) => boot + std::time::Duration::from_micros(us),
        _ => now,
    };
    let unix = when
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    match system::attribute(kill, &refs) {
        Some(name) => {
            tracing::warn!(target_name = name, pid = kill.pid, task = %kill.task, memcg = ?kill.task_memcg, anon_rss_bytes = ?kill.anon_rss_bytes, "OOM kill of a watched process");
            if let Some(t) = targets.iter().find(|t| t.config.name == name) {
                t.record_oom_kill(unix, kill.anon_rss_bytes);
            }
        }
        None => {
            tracing::info!(pid = kill.pid, task = %kill.task, memcg = ?kill.task_memcg, "OOM kill of a process no target watches");
            status
                .host_kills
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
