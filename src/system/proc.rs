//! A process's memory from `/proc/PID` (status, fd count, GOMEMLIMIT/GOGC from its
//! environment); its series are emitted by `metrics::emit`.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use procfs::FromRead;
use procfs::process::{Process, Status};

use crate::{Error, Result};

/// One reading of a process's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessMemory {
    pub pid: u32,
    /// VmRSS in bytes.
    pub rss: u64,
    /// VmSize in bytes.
    pub vms: u64,
    /// VmHWM (peak RSS) in bytes.
    pub hwm: u64,
    pub threads: u64,
    pub open_fds: u64,
    /// GOMEMLIMIT in bytes; `None` when unset or `off`.
    pub gomemlimit: Option<u64>,
    /// GOGC as the Go runtime reads it (`off` = -1); `None` when unset.
    pub gogc: Option<i64>,
    /// When the process started (`/proc/PID/stat` starttime after `/proc/stat` btime);
    /// `None` where either is missing (fixture trees). A process that has run for hours
    /// is not filling start-up caches.
    pub start_time: Option<SystemTime>,
    /// The host's `MemAvailable` (`/proc/meminfo`): with the process's own usage, the
    /// memory the kernel's OOM killer lets it reach when nothing else limits it.
    pub host_available: Option<u64>,
}

/// The memory fields of `/proc/PID/status`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusMemory {
    pub rss: u64,
    pub vms: u64,
    pub hwm: u64,
    pub threads: u64,
}

fn kib(v: u64) -> u64 {
    v.saturating_mul(1024)
}

fn from_status(st: &Status) -> Result<StatusMemory> {
    // Kernel threads and zombies have no Vm* lines: nothing to measure.
    let (Some(rss), Some(vms)) = (st.vmrss, st.vmsize) else {
        return Err(Error::malformed(
            "/proc/PID/status",
            0,
            format!(
                "process {} has no VmRSS/VmSize (kernel thread or zombie)",
                st.pid
            ),
        ));
    };
    Ok(StatusMemory {
        rss: kib(rss),
        vms: kib(vms),
        hwm: kib(st.vmhwm.unwrap_or(rss)),
        threads: st.threads,
    })
}

/// Parses `/proc/PID/status` text with procfs's parser (values are in KiB there).
pub fn parse_status(text: &str) -> Result<StatusMemory> {
    let st = Status::from_read(text.as_bytes())
        .map_err(|e| Error::malformed("/proc/PID/status", 0, e.to_string()))?;
    from_status(&st)
}

/// Go's `GOMEMLIMIT` syntax (runtime `parseByteCount`): a plain byte count, or a count
/// with a `B`, `KiB`, `MiB`, `GiB` or `TiB` suffix; `off` (or empty) means no limit, as
/// does `math.MaxInt64`, the runtime's default. Values Go would reject are errors (such a
/// process would not have started).
pub fn parse_gomemlimit(s: &str) -> Result<Option<u64>> {
    const FORMAT: &str = "GOMEMLIMIT";
    let bad = |why: &str| Error::malformed(FORMAT, 1, format!("{s:?}: {why}"));
    if s.is_empty() || s == "off" {
        return Ok(None);
    }
    let (digits, mult): (&str, u64) = if let Some(n) = s.strip_suffix("KiB") {
        (n, 1 << 10)
    } else if let Some(n) = s.strip_suffix("MiB") {
        (n, 1 << 20)
    } else if let Some(n) = s.strip_suffix("GiB") {
        (n, 1 << 30)
    } else if let Some(n) = s.strip_suffix("TiB") {
        (n, 1 << 40)
    } else if let Some(n) = s.strip_suffix('B') {
        (n, 1)
    } else {
        (s, 1)
    };
    // Go's atoi64 accepts a leading `-` (a negative count is then rejected) but no `+`.
    if digits.starts_with('+') {
        return Err(bad("not a byte count (a leading + is not accepted)"));
    }
    let n: i64 = digits
        .parse()
        .map_err(|_| bad("not a byte count (want N, NB, NKiB, NMiB, NGiB, NTiB or off)"))?;
    let n = u64::try_from(n).map_err(|_| bad("negative"))?;
    let bytes = n.checked_mul(mult).ok_or_else(|| bad("overflows"))?;
    if bytes > i64::MAX as u64 {
        return Err(bad("larger than math.MaxInt64"));
    }
    Ok((bytes != i64::MAX as u64).then_some(bytes))
}

/// `GOGC` as the runtime's `readGOGC` reads it: `off` = -1, an int32, and anything else
/// the default 100.
pub fn parse_gogc(s: &str) -> i64 {
    if s == "off" {
        return -1;
    }
    s.parse::<i32>().map(i64::from).unwrap_or(100)
}

/// Reads `/proc/PID/status`, the fd count and the environment of `pid`.
pub fn read_process(proc_root: &Path, pid: u32) -> Result<ProcessMemory> {
    let dir = proc_root.join(pid.to_string());
    let proc_err = |action: &'static str, e: procfs::ProcError| {
        let kind = match e {
            procfs::ProcError::NotFound(_) => std::io::ErrorKind::NotFound,
            procfs::ProcError::PermissionDenied(_) => std::io::ErrorKind::PermissionDenied,
            _ => std::io::ErrorKind::Other,
        };
        Error::io(
            action,
            dir.clone(),
            std::io::Error::new(kind, e.to_string()),
        )
    };
    let p = Process::new_with_root(dir.clone()).map_err(|e| proc_err("opening", e))?;
    let st = p.status().map_err(|e| proc_err("reading status of", e))?;
    let mem = from_status(&st).map_err(|e| Error::BadFile {
        path: dir.join("status"),
        reason: e.to_string(),
    })?;
    // Counting entries works on every kernel and on fixture trees (procfs's fast path
    // uses the directory size, which only /proc on 6.2+ sets to the count).
    let fd_dir = dir.join("fd");
    let open_fds = std::fs::read_dir(&fd_dir)
        .map_err(|e| Error::io("listing", fd_dir.clone(), e))?
        .count() as u64;
    // environ is readable only by the process owner and root; not having it only loses
    // the GOMEMLIMIT/GOGC series.
    let env = p.environ().unwrap_or_default();
    let get = |k: &str| {
        env.get(std::ffi::OsStr::new(k))
            .map(|v| v.to_string_lossy().into_owned())
    };
    let gomemlimit = match get("GOMEMLIMIT") {
        Some(v) => parse_gomemlimit(&v).map_err(|e| Error::BadFile {
            path: dir.join("environ"),
            reason: e.to_string(),
        })?,
        None => None,
    };
    let gogc = get("GOGC").map(|v| parse_gogc(&v));
    let start_time = p.stat().ok().and_then(|stat| {
        let btime = std::fs::read_to_string(proc_root.join("stat"))
            .ok()
            .and_then(|t| parse_btime(&t))?;
        start_time(btime, stat.starttime, procfs::ticks_per_second())
    });
    let host_available = std::fs::read_to_string(proc_root.join("meminfo"))
        .ok()
        .and_then(|t| parse_mem_available(&t));
    Ok(ProcessMemory {
        pid,
        rss: mem.rss,
        vms: mem.vms,
        hwm: mem.hwm,
        threads: mem.threads,
        open_fds,
        gomemlimit,
        gogc,
        start_time,
        host_available,
    })
}

/// The boot time (`btime`, Unix seconds) from `/proc/stat` text.
pub fn parse_btime(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Seconds since boot from `/proc/uptime` text (its first field; finite, not negative).
pub fn parse_uptime(text: &str) -> Option<Duration> {
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

/// When the machine booted: now minus `<proc_root>/uptime`.
pub fn read_boot_time(proc_root: &Path) -> Option<SystemTime> {
    let text = std::fs::read_to_string(proc_root.join("uptime")).ok()?;
    SystemTime::now().checked_sub(parse_uptime(&text)?)
}

/// `MemAvailable` in bytes from `/proc/meminfo` text (the kernel writes kB = KiB).
pub fn parse_mem_available(text: &str) -> Option<u64> {
    let rest = text.lines().find_map(|l| l.strip_prefix("MemAvailable:"))?;
    let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib(kb))
}

/// A process's start time from the boot time and its `starttime` in clock ticks.
pub fn start_time(btime: u64, starttime_ticks: u64, ticks_per_second: u64) -> Option<SystemTime> {
    if ticks_per_second == 0 {
        return None;
    }
    let since_boot = Duration::from_secs_f64(starttime_ticks as f64 / ticks_per_second as f64);
    UNIX_EPOCH
        .checked_add(Duration::from_secs(btime))?
        .checked_add(since_boot)
}

impl ProcessMemory {
    /// RSS not covered by the Go runtime's own mappings: `RSS - (Sys - HeapReleased)`,
    /// clamped at 0. Sys counts reserved-but-untouched memory too, so this is a lower
    /// bound of what cgo, mmap and the like hold.
    pub fn non_go_resident(&self, go_sys_minus_released: u64) -> u64 {
        self.rss.saturating_sub(go_sys_minus_released)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn boot_time_mem_available_and_start_time() {
        let stat = "cpu  1 2 3 4\nintr 5\nbtime 1764000000\nprocesses 7\n";
        assert_eq!(parse_btime(stat), Some(1_764_000_000));
        assert_eq!(parse_btime("cpu 1\n"), None);
        assert_eq!(parse_btime("btime soon\n"), None);
        assert_eq!(
            parse_uptime("12345.67 54321.00\n"),
            Some(Duration::from_secs_f64(12345.67))
        );
        for bad in ["", "soon 1.0\n", "-1.0 2.0\n", "NaN 1\n", "inf 1\n"] {
            assert_eq!(parse_uptime(bad), None, "{bad:?}");
        }
        let meminfo =
            "MemTotal:       24000000 kB\nMemFree:         1000 kB\nMemAvailable:   22000000 kB\n";
        assert_eq!(parse_mem_available(meminfo), Some(22_000_000 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: lots\n"), None);
        let t = start_time(1_764_000_000, 250, 100).unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap(),
            Duration::from_millis(1_764_000_002_500)
        );
        assert_eq!(start_time(1, 1, 0), None);
    }

    use super::*;

    #[test]
    fn gomemlimit_syntax() {
        let ok: &[(&str, Option<u64>)] = &[
            ("", None),
            ("off", None),
            ("9223372036854775807", None),
            ("0", Some(0)),
            ("1048576", Some(1048576)),
            ("100B", Some(100)),
            ("512KiB", Some(512 << 10)),
            ("48MiB", Some(48 << 20)),
            ("2GiB", Some(2 << 30)),
            ("1TiB", Some(1 << 40)),
            ("-0", Some(0)),
        ];
        for (s, want) in ok {
            assert_eq!(parse_gomemlimit(s).unwrap(), *want, "{s:?}");
        }
        for bad in [
            "-1",
            "10MB",
            "10 MiB",
            "MiB",
            "B",
            "1.5GiB",
            "9999999TiB",
            "10k",
            "Off",
        ] {
            assert!(parse_gomemlimit(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn gogc_as_the_runtime_reads_it() {
        for (s, want) in [
            ("off", -1),
            ("50", 50),
            ("-1", -1),
            ("", 100),
            ("abc", 100),
            ("99999999999", 100),
        ] {
            assert_eq!(parse_gogc(s), want, "{s:?}");
        }
    }

    #[test]
    fn status_errors_do_not_panic() {
        let good = include_str!(
            "../../tests/fixtures/cgroup-v2-vm/kernel-6.1/s1_early/leakyapp/proc_status.txt"
        );
        let m = parse_status(good).unwrap();
        assert_eq!(m.rss, 24172 * 1024);
        assert_eq!(m.vms, 1232020 * 1024);
        assert_eq!(m.threads, 4);
        for cut in (0..good.len()).step_by(7) {
            let _ = parse_status(good.get(..cut).unwrap_or(""));
        }
        assert!(parse_status("").is_err());
        let no_rss: String = good
            .lines()
            .filter(|l| !l.starts_with("VmRSS"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            parse_status(&no_rss)
                .unwrap_err()
                .to_string()
                .contains("no VmRSS")
        );
    }
}
