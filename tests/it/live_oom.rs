//! A real kernel OOM kill seen through the whole exporter: leaky-service leaking in a
//! 96 MiB child v1 memory cgroup until the kernel kills it, leakwatch watching it, and
//! what leakwatch reports before (usage, time-to-OOM), at (v1 `oom_kill` event, kmsg
//! kill count, anon RSS) and after the kill (the restarted process found again).
//!
//! Needs root and the v1 memory controller at /sys/fs/cgroup/memory (this host and CI):
//! without them the test fails with a message saying so; it never skips.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::{
    GoToolchain, Leakwatch, LeakyService, Metrics, free_port, parse_leaked, toolchains,
    try_http_get,
};

const LIMIT: u64 = 96 << 20;
const V1_MEMORY: &str = "/sys/fs/cgroup/memory";
const TARGET: &str = "oomsvc";

/// A child of this process's own v1 memory cgroup, limited to [`LIMIT`]. Dropping it
/// kills whatever is still in it and removes it, pass or fail.
struct OomCgroup {
    dir: PathBuf,
    /// The path inside the hierarchy: what leakwatch's `cgroup:` takes and what the
    /// kernel prints as `task_memcg`.
    path: String,
}

impl OomCgroup {
    /// Panics (never skips) when the cgroup cannot be made: the test must run in CI.
    fn create(name: &str) -> OomCgroup {
        const NEEDS: &str = "this test needs root and a writable cgroup v1 memory hierarchy at \
             /sys/fs/cgroup/memory with this process's memory cgroup listed in /proc/self/cgroup \
             (the development host's and CI's hybrid layout, see tests/fixtures/host-cgroup)";
        let own = fs::read_to_string("/proc/self/cgroup")
            .unwrap_or_else(|e| panic!("cannot read /proc/self/cgroup: {e}; {NEEDS}"));
        let parent = leakwatch::system::discover::parse_proc_cgroup(&own)
            .unwrap_or_else(|e| panic!("/proc/self/cgroup: {e}; {NEEDS}"))
            .v1_memory
            .unwrap_or_else(|| panic!("no v1 memory line in /proc/self/cgroup {own:?}; {NEEDS}"));
        let path = format!(
            "{}/{name}-{}",
            parent.trim_end_matches('/'),
            std::process::id()
        );
        let dir = Path::new(V1_MEMORY).join(path.trim_start_matches('/'));
        if let Err(e) = fs::create_dir(&dir) {
            panic!(
                "cannot create the test cgroup {}: {e}; {NEEDS}",
                dir.display()
            );
        }
        let cg = OomCgroup { dir, path };
        // memsw.limit may not go below limit_in_bytes, so limit first. With memsw capped
        // too, swap (none on this host, but maybe on another) cannot absorb the leak.
        cg.write("memory.limit_in_bytes", LIMIT);
        if cg.dir.join("memory.memsw.limit_in_bytes").exists() {
            cg.write("memory.memsw.limit_in_bytes", LIMIT);
        }
        cg
    }

    fn write(&self, file: &str, value: u64) {
        let p = self.dir.join(file);
        fs::write(&p, value.to_string())
            .unwrap_or_else(|e| panic!("cannot write {value} to {}: {e}", p.display()));
    }

    /// A v1 file's number, e.g. `memory.usage_in_bytes`.
    fn read(&self, file: &str) -> u64 {
        let p = self.dir.join(file);
        let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        text.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}: {text:?}", p.display()))
    }

    /// `oom_kill N` of memory.oom_control, read directly (the ground truth).
    fn oom_kills(&self) -> u64 {
        let p = self.dir.join("memory.oom_control");
        fs::read_to_string(&p)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no oom_kill line in {}", p.display()))
    }

    fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }
}

impl Drop for OomCgroup {
    fn drop(&mut self) {
        // A killed process may take a moment to leave the cgroup.
        for _ in 0..50 {
            let procs = fs::read_to_string(self.procs()).unwrap_or_default();
            for pid in procs.split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
            if fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("could not remove {}", self.dir.display());
    }
}

/// One read of leakwatch's `/metrics` while the service leaks.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Since just before the service started.
    t: f64,
    /// leakwatch's `last_scrape_timestamp_seconds`: when these values were computed.
    scraped_unix: Option<f64>,
    usage: Option<f64>,
    working_set: Option<f64>,
    tto: Option<f64>,
    pid: Option<f64>,
    /// The service's own count of leaked sessions (`/leaked`): how fast it really
    /// leaked, to tell a leak that changed pace from a bad estimate.
    leaked: Option<u64>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn mib(b: f64) -> f64 {
    b / f64::from(1u32 << 20)
}

/// The target's value of `name` (plus `extra` labels).
fn target_value(m: &Metrics, name: &str, extra: &[(&str, &str)]) -> Option<f64> {
    let mut labels = vec![("target", TARGET)];
    labels.extend_from_slice(extra);
    m.get(name, &labels)
}

/// Sessions the service leaked per second between `from` and `to` (seconds since start),
/// from its own `/leaked` counts.
fn pace(samples: &[Sample], from: f64, to: f64) -> String {
    let inside: Vec<(f64, u64)> = samples
        .iter()
        .filter(|s| s.t >= from && s.t <= to)
        .filter_map(|s| Some((s.t, s.leaked?)))
        .collect();
    match (inside.first(), inside.last()) {
        (Some(&(t0, n0)), Some(&(t1, n1))) if t1 > t0 => {
            format!("{:.1}/s", n1.saturating_sub(n0) as f64 / (t1 - t0))
        }
        _ => "?/s".to_string(),
    }
}

/// The whole life of one OOM-killed service under leakwatch, for one Go toolchain.
fn oom_kill_through_leakwatch(tc: &GoToolchain) {
    let tag = format!("go{}", tc.version);
    // Declared first: dropped last, after the service and leakwatch.
    let cg = OomCgroup::create(&format!("leakwatch-live-oom-{}", tag.replace('.', "")));
    assert_eq!(cg.read("memory.limit_in_bytes"), LIMIT);
    assert_eq!(
        cg.oom_kills(),
        0,
        "{}: a fresh cgroup has no kills",
        cg.path
    );

    // A flag value no other process on the host uses makes `process:` match only this
    // service (leaky-service rejects unknown flags; -labelled-every is inert in heap mode).
    let unique = 7919 + (std::process::id() % 100_000) * 100 + tc.minor();
    // A fixed port: the restarted service answers at the URL leakwatch already has.
    // (A later -addr overrides the harness's `-addr 127.0.0.1:0`.)
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let unique_s = unique.to_string();
    // 5 x 320 KiB every 500 ms, each page written (resident): ~3.1 MiB/s of sessions,
    // ~4 MiB/s of cgroup usage with the Go heap's overhead, a kill after ~25 s. Few
    // large ticks rather than many small ones: a Go ticker drops ticks its goroutine
    // is too late for. With 100 ms ticks, one run of the whole suite on 2 cores grew
    // ~40% slower before the halfway point than after (likely dropped ticks while the
    // machine was busiest), which no linear estimate can foresee.
    let args = [
        "-addr",
        &addr,
        "-mode",
        "heap",
        "-interval",
        "500ms",
        "-per-tick",
        "5",
        "-size",
        "320KiB",
        "-labelled-every",
        &unique_s,
    ];

    let t0 = Instant::now();
    let mut svc = LeakyService::start_in_cgroup(tc, &args, &cg.procs());
    let first_pid = svc.pid();
    let lw = Leakwatch::start(&format!(
        "system:\n  kernel_log: /dev/kmsg\n\
         targets:\n  - name: {TARGET}\n    url: http://{addr}\n    interval: 500ms\n    \
         window: 60s\n    warmup: 5s\n    process: '-labelled-every {unique}$'\n    \
         cgroup: {}\n",
        cg.path
    ));
    let labels_kmsg = [("source", "/dev/kmsg")];
    let readable = crate::support::wait_until(Duration::from_secs(10), "kmsg readable", || {
        lw.metrics()
            .get("leakwatch_kernel_log_readable", &labels_kmsg)
    });
    assert_eq!(readable, 1.0, "{tag}: leakwatch cannot read /dev/kmsg");

    // Sample /metrics every 500 ms until the kernel kills the service.
    let mut samples: Vec<Sample> = Vec::new();
    // The last few pages: the one two reads before the exit was seen predates the kill.
    let mut recent: std::collections::VecDeque<Metrics> = std::collections::VecDeque::new();
    let (status, killed_at, killed_unix) = loop {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "{tag}: not OOM-killed within 120 s; usage {:?} MiB; leakwatch:\n{}",
            samples.last().and_then(|s| s.usage).map(mib),
            lw.stderr()
        );
        let m = lw.metrics();
        samples.push(Sample {
            t: t0.elapsed().as_secs_f64(),
            scraped_unix: target_value(&m, "leakwatch_last_scrape_timestamp_seconds", &[]),
            usage: target_value(&m, "leakwatch_cgroup_memory_usage_bytes", &[]),
            working_set: target_value(&m, "leakwatch_cgroup_memory_working_set_bytes", &[]),
            tto: target_value(&m, "leakwatch_time_to_oom_seconds", &[]),
            pid: target_value(&m, "leakwatch_process_pid", &[]),
            leaked: try_http_get(&format!("{}/leaked", svc.url))
                .ok()
                .and_then(|(_, body)| {
                    parse_leaked(&String::from_utf8_lossy(&body))
                        .get("heap")
                        .copied()
                }),
        });
        if recent.len() == 3 {
            recent.pop_front();
        }
        recent.push_back(m);
        if let Some(st) = svc.wait_exit(Duration::from_millis(500)) {
            break (st, t0.elapsed().as_secs_f64(), unix_now());
        }
    };
    let before_kill = recent.pop_front().expect("at least one sample");

    // The kernel killed it: SIGKILL, and the cgroup's own counter says one OOM kill.
    assert_eq!(
        status.signal(),
        Some(9),
        "{tag}: the service ended with {status:?}, not SIGKILL; stderr:\n{}",
        svc.stderr()
    );
    assert_eq!(cg.oom_kills(), 1, "{tag}: memory.oom_control");

    // Usage climbed toward the limit, as leakwatch reported it, with the right pid.
    let usages: Vec<f64> = samples.iter().filter_map(|s| s.usage).collect();
    let max_usage = usages.iter().copied().fold(0.0, f64::max);
    assert!(
        usages.len() >= 20,
        "{tag}: only {} usage readings",
        usages.len()
    );
    assert!(
        usages[0] < LIMIT as f64 / 4.0,
        "{tag}: usage started at {} MiB",
        mib(usages[0])
    );
    assert!(
        max_usage >= 0.85 * LIMIT as f64 && max_usage <= LIMIT as f64,
        "{tag}: max usage {} MiB",
        mib(max_usage)
    );
    for w in usages.windows(2) {
        // A steady leak: never a drop of more than a few MiB between readings.
        assert!(
            w[1] >= w[0] - f64::from(4u32 << 20),
            "{tag}: usage fell {} -> {} MiB",
            mib(w[0]),
            mib(w[1])
        );
    }
    let pid_seen = samples.iter().filter(|s| s.pid.is_some()).count();
    assert!(
        samples
            .iter()
            .filter_map(|s| s.pid)
            .all(|p| p == f64::from(first_pid))
            && pid_seen >= samples.len() / 2,
        "{tag}: leakwatch_process_pid should be {first_pid}: {samples:?}"
    );
    assert_eq!(
        target_value(&before_kill, "leakwatch_cgroup_memory_limit_bytes", &[]),
        Some(LIMIT as f64)
    );

    // The kill in leakwatch: the v1 event and the kmsg count each rise by exactly 1.
    let oom_event = [("event", "oom_kill")];
    assert_eq!(
        target_value(
            &before_kill,
            "leakwatch_cgroup_memory_events_total",
            &oom_event
        ),
        Some(0.0),
        "{tag}: before the kill"
    );
    assert_eq!(
        target_value(&before_kill, "leakwatch_oom_kills_total", &[]),
        Some(0.0),
        "{tag}: before the kill"
    );
    let after = crate::support::wait_until(
        Duration::from_secs(15),
        "leakwatch to report the OOM kill",
        || {
            let m = lw.metrics();
            let event = target_value(&m, "leakwatch_cgroup_memory_events_total", &oom_event);
            let kills = target_value(&m, "leakwatch_oom_kills_total", &[]);
            (event >= Some(1.0) && kills >= Some(1.0)).then_some(m)
        },
    );
    let reported_at = t0.elapsed().as_secs_f64();
    // Several more scrapes and kernel-log reads must not count it again.
    std::thread::sleep(Duration::from_secs(3));
    let settled = lw.metrics();
    for m in [&after, &settled] {
        assert_eq!(
            target_value(m, "leakwatch_cgroup_memory_events_total", &oom_event),
            Some(1.0),
            "{tag}: v1 oom_kill event"
        );
        assert_eq!(
            target_value(m, "leakwatch_oom_kills_total", &[]),
            Some(1.0),
            "{tag}: kmsg-derived kills; leakwatch log:\n{}",
            lw.stderr()
        );
    }
    let anon_rss = target_value(&settled, "leakwatch_last_oom_kill_anon_rss_bytes", &[])
        .unwrap_or_else(|| panic!("{tag}: no leakwatch_last_oom_kill_anon_rss_bytes"));
    assert!(
        anon_rss >= 0.75 * LIMIT as f64 && anon_rss <= LIMIT as f64,
        "{tag}: anon RSS at the kill {} MiB",
        mib(anon_rss)
    );
    let kill_ts = target_value(&settled, "leakwatch_last_oom_kill_timestamp_seconds", &[])
        .unwrap_or_else(|| panic!("{tag}: no leakwatch_last_oom_kill_timestamp_seconds"));
    // The kernel's time of the kill (since boot, made absolute with /proc/uptime) comes
    // before the test saw the exit, and not by much.
    let kill_ts_lead = killed_unix - kill_ts;
    assert!(
        (-1.0..=5.0).contains(&kill_ts_lead),
        "{tag}: kill timestamp {kill_ts} vs exit seen at {killed_unix}"
    );

    // Time-to-OOM. The estimate examined is the one leakwatch published at the first
    // scrape whose cgroup usage had passed half the limit: the moment an operator is
    // told "half the container is used", with half the growth still to come, defined
    // without knowing when the kill will happen. Its "now" is the scrape's own
    // timestamp; the actual remaining time runs from there to the kill as the test saw
    // it (the exit polled every 20 ms).
    let half = samples
        .iter()
        .find(|s| s.usage.is_some_and(|u| u >= LIMIT as f64 / 2.0))
        .copied()
        .unwrap_or_else(|| panic!("{tag}: usage never passed half the limit: {samples:?}"));
    let estimate = half.tto.unwrap_or_else(|| {
        panic!("{tag}: no leakwatch_time_to_oom_seconds when usage passed half the limit: {half:?}")
    });
    let scraped = half.scraped_unix.expect("scrape timestamp");
    let actual = killed_unix - scraped;
    let error = (estimate - actual) / actual;
    // For the report: the estimate at half the elapsed time to the kill.
    let mid = samples.iter().rfind(|s| s.t <= killed_at / 2.0).copied();

    // The service restarts in the same cgroup: leakwatch finds the new process.
    let svc2 = LeakyService::start_in_cgroup(tc, &args, &cg.procs());
    let new_pid = svc2.pid();
    assert_ne!(new_pid, first_pid);
    let restarted = crate::support::wait_until(
        Duration::from_secs(20),
        "leakwatch to find the restarted service",
        || {
            let m = lw.metrics();
            let found = target_value(&m, "leakwatch_process_pid", &[]) == Some(f64::from(new_pid))
                && target_value(&m, "leakwatch_up", &[]) == Some(1.0)
                && target_value(&m, "leakwatch_cgroup_memory_usage_bytes", &[])
                    .is_some_and(|u| u >= f64::from(2u32 << 20));
            found.then_some(m)
        },
    );
    let usage2 = target_value(&restarted, "leakwatch_cgroup_memory_usage_bytes", &[]).unwrap();
    let rss2 = target_value(&restarted, "leakwatch_process_resident_memory_bytes", &[]);
    assert!(
        rss2.is_some_and(|r| r > 0.0),
        "{tag}: no RSS for the new process"
    );
    // Counters of the kill survive the restart; there is still exactly one.
    assert_eq!(
        target_value(&restarted, "leakwatch_oom_kills_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        target_value(
            &restarted,
            "leakwatch_cgroup_memory_events_total",
            &oom_event
        ),
        Some(1.0)
    );

    // The record, for the report.
    let mut curve = String::new();
    let mut next_t = 0.0;
    for s in &samples {
        if s.t >= next_t {
            curve.push_str(&format!(
                "\n  t={:5.1}s usage={:6.1} MiB ws={:6.1} MiB leaked={:4} tto={}",
                s.t,
                s.usage.map(mib).unwrap_or(f64::NAN),
                s.working_set.map(mib).unwrap_or(f64::NAN),
                s.leaked.unwrap_or(0),
                s.tto
                    .map(|v| format!("{v:.1}s"))
                    .unwrap_or_else(|| "-".into())
            ));
            next_t = s.t + 3.0;
        }
    }
    eprintln!(
        "live OOM {tag}: killed {killed_at:.2}s after start (kernel time {kill_ts_lead:+.2}s \
         before the exit was seen), leakwatch counted it {:.2}s after; anon-rss {:.1} MiB; \
         max usage {:.1} MiB; restarted pid {new_pid} (was {first_pid}), usage {:.1} MiB\n  \
         TTO at half the limit (t={:.1}s, usage {:.1} MiB): estimate {estimate:.2}s, actual \
         {actual:.2}s, error {:+.1}%; sessions leaked {} before, {} after\n  TTO at half the time to the kill: {}\n  usage curve:{curve}",
        reported_at - killed_at,
        mib(anon_rss),
        mib(max_usage),
        mib(usage2),
        half.t,
        mib(half.usage.unwrap_or(0.0)),
        error * 100.0,
        pace(&samples, 0.0, half.t),
        pace(&samples, half.t, killed_at),
        mid.map(|s| match (s.tto, s.scraped_unix) {
            (Some(e), Some(at)) => format!(
                "t={:.1}s estimate {e:.2}s, actual {:.2}s, error {:+.1}%",
                s.t,
                killed_unix - at,
                (e - (killed_unix - at)) / (killed_unix - at) * 100.0
            ),
            _ => format!("t={:.1}s no estimate yet", s.t),
        })
        .unwrap_or_else(|| "no sample".into()),
    );
    assert!(
        error.abs() <= 0.25,
        "{tag}: time-to-OOM estimate {estimate:.2}s at usage {} MiB is off by {:+.1}% \
         from the actual {actual:.2}s (limit 25%); the service leaked {} before and {} \
         after that point (a change of pace is the service's, not the estimate's); \
         samples: {samples:?}",
        mib(half.usage.unwrap_or(0.0)),
        error * 100.0,
        pace(&samples, 0.0, half.t),
        pace(&samples, half.t, killed_at),
    );
    drop(svc2);
    drop(lw);
    let dir = cg.dir.clone();
    drop(cg);
    assert!(!dir.exists(), "{} left behind", dir.display());
}

/// The live test, once per default toolchain (in parallel: each has its own
/// cgroup, service, leakwatch and unique `process:` pattern, and each leakwatch sees
/// the other's kill in /dev/kmsg and must not count it).
#[test]
fn live_oom_kill_counted_once_and_time_to_oom_within_25_percent() {
    let tcs = toolchains();
    std::thread::scope(|s| {
        let handles: Vec<_> = tcs
            .iter()
            .map(|tc| s.spawn(|| oom_kill_through_leakwatch(tc)))
            .collect();
        for h in handles {
            if let Err(e) = h.join() {
                std::panic::resume_unwind(e);
            }
        }
    });
}
