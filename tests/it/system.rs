//! Container and process memory on fixture trees (cgroup v2 from kernels 6.1 and 6.12,
//! this host's cgroup v1, /proc), against this machine's real /proc and v1 memory
//! cgroups, and a real OOM kill seen through /dev/kmsg.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use leakwatch::metrics::emit::{Emit, EmitProcess};
use leakwatch::metrics::{Sink, Value, exposed_name};
use leakwatch::system::cgroup::{StatKind, stat_kind};
use leakwatch::system::kmsg::{self, KernelLogOptions, KernelLogSource, OomKill};
use leakwatch::system::proc::read_process;
use leakwatch::system::{
    CgroupLocation, CgroupMemory, CgroupVersion, ProcessSelector, discover, pid_alive,
    read_cgroup_memory,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/system")
}

fn v2_loc(kernel: &str, snap: &str, svc: &str) -> CgroupLocation {
    CgroupLocation {
        version: CgroupVersion::V2,
        path: format!("/system.slice/{svc}.service"),
        dir: fixtures()
            .join("cgroup-v2-vm")
            .join(kernel)
            .join(snap)
            .join(svc),
    }
}

fn v1_host_loc() -> CgroupLocation {
    CgroupLocation {
        version: CgroupVersion::V1,
        path: "/process_api/<id>".into(),
        dir: fixtures().join("host-cgroup/v1_memory"),
    }
}

/// Samples as `name{label="value",...} value`, one per line, sorted.
fn render(sink: &Sink) -> String {
    let mut lines: Vec<String> = sink
        .samples
        .iter()
        .map(|s| {
            let labels: Vec<String> = s
                .def
                .labels
                .iter()
                .zip(&s.labels)
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            let value = match s.value {
                Value::Int(v) => v.to_string(),
                Value::Float(v) => format!("{v}"),
            };
            if labels.is_empty() {
                format!("{} {value}", exposed_name(s.def))
            } else {
                format!("{}{{{}}} {value}", exposed_name(s.def), labels.join(","))
            }
        })
        .collect();
    lines.sort();
    lines.join("\n") + "\n"
}

fn find(sink: &Sink, name: &str, labels: &[&str]) -> Option<f64> {
    sink.samples
        .iter()
        .find(|s| {
            exposed_name(s.def) == name
                && s.labels
                    .iter()
                    .map(String::as_str)
                    .eq(labels.iter().copied())
        })
        .map(|s| s.value.as_f64())
}

fn check_golden(name: &str, got: &str) {
    let path = golden_dir().join(name);
    if crate::support::update_golden() {
        fs::create_dir_all(golden_dir()).unwrap();
        fs::write(&path, got).unwrap();
        return;
    }
    let want = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create)",
            path.display()
        )
    });
    assert_eq!(
        got,
        want,
        "{} differs (UPDATE_GOLDEN=1 regenerates)",
        path.display()
    );
}

fn snapshots(kernel: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(fixtures().join("cgroup-v2-vm").join(kernel))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('s') && n.contains('_') && !n.ends_with(".txt"))
        .collect();
    v.sort();
    v
}

#[test]
fn v2_every_snapshot_of_both_kernels() {
    // (kernel, snapshot, service, memory.current, memory.peak, events high/max/oom/oom_kill)
    type Row = (&'static str, &'static str, &'static str, u64, u64, [u64; 4]);
    let table: &[Row] = &[
        (
            "kernel-6.1",
            "s1_early",
            "leakyapp",
            18452480,
            18452480,
            [0, 0, 0, 0],
        ),
        (
            "kernel-6.1",
            "s1_early",
            "steady",
            15855616,
            16109568,
            [0, 0, 0, 0],
        ),
        (
            "kernel-6.1",
            "s2_growing",
            "leakyapp",
            41578496,
            41578496,
            [0, 0, 0, 0],
        ),
        (
            "kernel-6.1",
            "s2_growing",
            "steady",
            18243584,
            18710528,
            [0, 0, 0, 0],
        ),
        (
            "kernel-6.1",
            "s3_over_high",
            "leakyapp",
            54501376,
            54501376,
            [17, 0, 0, 0],
        ),
        (
            "kernel-6.1",
            "s3_over_high",
            "steady",
            18247680,
            22609920,
            [0, 0, 0, 0],
        ),
        (
            "kernel-6.1",
            "s4_after_oom_kill",
            "leakyapp",
            24576,
            67108864,
            [970, 35, 1, 1],
        ),
        (
            "kernel-6.1",
            "s4_after_oom_kill",
            "steady",
            18984960,
            23560192,
            [0, 0, 0, 0],
        ),
        (
            "kernel-6.12",
            "s1_early",
            "leakyapp",
            18194432,
            18452480,
            [0, 0, 0, 0],
        ),
        (
            "kernel-6.12",
            "s1_early",
            "steady",
            15835136,
            16347136,
            [0, 0, 0, 0],
        ),
        (
            "kernel-6.12",
            "s2_growing",
            "leakyapp",
            41803776,
            41803776,
            [0, 0, 0, 0],
        ),
        (
            "kernel-6.12",
            "s2_growing",
            "steady",
            14020608,
            18427904,
            [0, 0, 0, 0],
        ),
        (
            "kernel-6.12",
            "s3_over_high",
            "leakyapp",
            53956608,
            54464512,
            [17, 0, 0, 0],
        ),
        (
            "kernel-6.12",
            "s3_over_high",
            "steady",
            20520960,
            20615168,
            [0, 0, 0, 0],
        ),
        (
            "kernel-6.12",
            "s4_timeout_no_oom",
            "leakyapp",
            66338816,
            66846720,
            [986, 0, 0, 0],
        ),
        (
            "kernel-6.12",
            "s4_timeout_no_oom",
            "steady",
            21639168,
            21835776,
            [0, 0, 0, 0],
        ),
    ];
    let mut covered = BTreeSet::new();
    for &(kernel, snap, svc, usage, peak, [high_ev, max_ev, oom, oom_kill]) in table {
        let m = read_cgroup_memory(&v2_loc(kernel, snap, svc)).unwrap();
        let ctx = format!("{kernel}/{snap}/{svc}");
        assert_eq!(m.version, CgroupVersion::V2);
        assert_eq!(m.usage, usage, "{ctx}");
        assert_eq!(m.peak, Some(peak), "{ctx}");
        let (limit, high) = if svc == "leakyapp" {
            (67108864, 52428800)
        } else {
            (201326592, 150994944)
        };
        assert_eq!((m.limit, m.high), (Some(limit), Some(high)), "{ctx}");
        assert_eq!(m.swap_usage, Some(0), "{ctx}");
        // inactive_file is 0 in every capture: the working set is the whole usage.
        assert_eq!(m.stat_value("inactive_file"), Some(0), "{ctx}");
        assert_eq!(m.working_set(), usage, "{ctx}");
        assert_eq!(
            ["low", "high", "max", "oom", "oom_kill", "oom_group_kill"].map(|e| m.event(e)),
            [
                Some(0),
                Some(high_ev),
                Some(max_ev),
                Some(oom),
                Some(oom_kill),
                Some(0)
            ],
            "{ctx}"
        );
        assert!(m.pressure.is_some(), "{ctx}");
        // 6.12 adds pgdemote_* & co to memory.stat: parsed and counted as events.
        let has_new_keys = m.stat_value("pgdemote_kswapd").is_some();
        assert_eq!(has_new_keys, kernel == "kernel-6.12", "{ctx}");
        assert_eq!(
            m.stat.len(),
            if kernel == "kernel-6.12" { 65 } else { 51 },
            "{ctx}"
        );
        let mut sink = Sink::new();
        m.push_samples(&mut sink);
        assert_eq!(
            find(&sink, "leakwatch_cgroup_memory_limit_bytes", &[]),
            Some(limit as f64)
        );
        assert_eq!(
            find(&sink, "leakwatch_cgroup_memory_events_total", &["oom_kill"]),
            Some(oom_kill as f64)
        );
        if kernel == "kernel-6.12" {
            assert_eq!(
                find(
                    &sink,
                    "leakwatch_cgroup_memory_stat_events_total",
                    &["pgdemote_kswapd"]
                ),
                Some(0.0)
            );
        }
        covered.insert(format!("{kernel}/{snap}"));
    }
    // Every snapshot directory of both kernels is in the table.
    for kernel in ["kernel-6.1", "kernel-6.12"] {
        for snap in snapshots(kernel) {
            assert!(
                covered.contains(&format!("{kernel}/{snap}")),
                "{kernel}/{snap} not tested"
            );
        }
    }
}

#[test]
fn v2_pressure_values() {
    // (kernel, snapshot, some avg10, some total, full avg10, full total)
    let table = [
        ("kernel-6.1", "s1_early", 0.0, 0u64, 0.0, 0u64),
        ("kernel-6.1", "s3_over_high", 3.07, 498919, 3.07, 474333),
        (
            "kernel-6.1",
            "s4_after_oom_kill",
            72.07,
            23411942,
            71.48,
            23122536,
        ),
        ("kernel-6.12", "s3_over_high", 1.99, 507232, 1.99, 498725),
        (
            "kernel-6.12",
            "s4_timeout_no_oom",
            90.76,
            49048853,
            90.14,
            48524578,
        ),
    ];
    for (kernel, snap, s10, stot, f10, ftot) in table {
        let m = read_cgroup_memory(&v2_loc(kernel, snap, "leakyapp")).unwrap();
        let p = m.pressure.unwrap();
        let full = p.full.unwrap();
        assert_eq!(
            (p.some.avg10, p.some.total_usec),
            (s10, stot),
            "{kernel}/{snap}"
        );
        assert_eq!(
            (full.avg10, full.total_usec),
            (f10, ftot),
            "{kernel}/{snap}"
        );
        let mut sink = Sink::new();
        m.push_samples(&mut sink);
        let stall = find(
            &sink,
            "leakwatch_cgroup_memory_pressure_stall_seconds_total",
            &["some"],
        )
        .unwrap();
        assert!(
            (stall - stot as f64 / 1e6).abs() < 1e-9,
            "{kernel}/{snap}: {stall}"
        );
        let ratio = find(
            &sink,
            "leakwatch_cgroup_memory_pressure_avg10_ratio",
            &["full"],
        )
        .unwrap();
        assert!(
            (ratio - f10 / 100.0).abs() < 1e-9,
            "{kernel}/{snap}: {ratio}"
        );
        assert!((0.0..=1.0).contains(&ratio));
    }
}

#[test]
fn v1_host_fixture() {
    let m = read_cgroup_memory(&v1_host_loc()).unwrap();
    assert_eq!(m.version, CgroupVersion::V1);
    assert_eq!(m.usage, 531841024);
    assert_eq!(m.limit, None, "9223372036854771712 means unlimited");
    assert_eq!(m.high, None);
    assert_eq!(m.peak, Some(2178211840));
    // memsw (531546112) was read a moment before usage and is smaller: clamped at 0.
    assert_eq!(m.swap_usage, Some(0));
    assert_eq!(m.working_set(), 531841024 - 140128256);
    assert_eq!(
        m.events,
        vec![("oom_kill".to_string(), 0), ("failcnt".to_string(), 0)]
    );
    assert!(m.pressure.is_none());
    assert_eq!(
        stat_kind(CgroupVersion::V1, "total_pgpgin"),
        StatKind::Events
    );
    let mut sink = Sink::new();
    m.push_samples(&mut sink);
    assert_eq!(
        find(&sink, "leakwatch_cgroup_memory_limit_bytes", &[]),
        None
    );
    assert_eq!(find(&sink, "leakwatch_cgroup_memory_high_bytes", &[]), None);
    assert_eq!(
        find(&sink, "leakwatch_cgroup_memory_stat_bytes", &["cache"]),
        Some(374689792.0)
    );
    assert_eq!(
        find(
            &sink,
            "leakwatch_cgroup_memory_stat_bytes",
            &["inactive_file"]
        ),
        Some(140128256.0)
    );
    assert_eq!(
        find(
            &sink,
            "leakwatch_cgroup_memory_stat_bytes",
            &["hierarchical_memory_limit"]
        ),
        None
    );
    assert_eq!(
        find(
            &sink,
            "leakwatch_cgroup_memory_stat_bytes",
            &["total_cache"]
        ),
        None
    );
    assert_eq!(
        find(
            &sink,
            "leakwatch_cgroup_memory_stat_events_total",
            &["pgfault"]
        ),
        Some(10305137.0)
    );
    assert_eq!(
        find(&sink, "leakwatch_cgroup_info", &["v1", "/process_api/<id>"]),
        Some(1.0)
    );
}

#[test]
fn v1_and_v2_share_metric_names() {
    let names = |m: &CgroupMemory| -> BTreeSet<String> {
        let mut sink = Sink::new();
        m.push_samples(&mut sink);
        sink.samples
            .iter()
            .map(|s| exposed_name(s.def).into_owned())
            .collect()
    };
    let v1 = names(&read_cgroup_memory(&v1_host_loc()).unwrap());
    let mut v1_limited = read_cgroup_memory(&v1_host_loc()).unwrap();
    v1_limited.limit = Some(1 << 30);
    let v1 = &v1 | &names(&v1_limited);
    let v2 = names(&read_cgroup_memory(&v2_loc("kernel-6.1", "s3_over_high", "leakyapp")).unwrap());
    let only_v2: Vec<&String> = v2.difference(&v1).collect();
    let only_v1: Vec<&String> = v1.difference(&v2).collect();
    assert!(only_v1.is_empty(), "v1-only names: {only_v1:?}");
    // v1 has no memory.high and no PSI file: those, and only those, are v2-only.
    assert_eq!(
        only_v2,
        [
            "leakwatch_cgroup_memory_high_bytes",
            "leakwatch_cgroup_memory_pressure_avg10_ratio",
            "leakwatch_cgroup_memory_pressure_stall_seconds_total",
        ]
    );
    // The fields both kernels' memory.stat share are exported under the same names.
    let fields = |m: &CgroupMemory| -> BTreeSet<String> {
        m.exported_stat()
            .into_iter()
            .map(|(k, _, _)| k.to_string())
            .collect()
    };
    let f1 = fields(&read_cgroup_memory(&v1_host_loc()).unwrap());
    let f2 = fields(&read_cgroup_memory(&v2_loc("kernel-6.1", "s1_early", "leakyapp")).unwrap());
    for shared in [
        "shmem",
        "inactive_file",
        "active_file",
        "inactive_anon",
        "pgfault",
        "pgmajfault",
        "swapcached",
    ] {
        assert!(f1.contains(shared) && f2.contains(shared), "{shared}");
    }
}

#[test]
fn golden_cgroup_and_process_samples() {
    for kernel in ["kernel-6.1", "kernel-6.12"] {
        let mut out = String::new();
        for snap in snapshots(kernel) {
            for svc in ["leakyapp", "steady"] {
                let loc = v2_loc(kernel, &snap, svc);
                let m = read_cgroup_memory(&loc).unwrap();
                let mut sink = Sink::new();
                m.push_samples(&mut sink);
                let status = loc.dir.join("proc_status.txt");
                if status.exists() {
                    let root = fake_proc(&[(
                        1,
                        &fs::read_to_string(&status).unwrap(),
                        "leakyapp",
                        "",
                        "0::/\n",
                        3,
                    )]);
                    let p = read_process(root.path(), 1).unwrap();
                    p.push_samples(&mut sink, Some(10 << 20), m.limit);
                }
                out.push_str(&format!("# {snap}/{svc}\n{}", render(&sink)));
            }
        }
        check_golden(&format!("v2_{kernel}.txt"), &out);
    }
    let mut sink = Sink::new();
    read_cgroup_memory(&v1_host_loc())
        .unwrap()
        .push_samples(&mut sink);
    check_golden("v1_host.txt", &render(&sink));
}

/// Copies a fixture cgroup dir and corrupts one file at a time: every read must end in
/// Ok or an error naming the file, never a panic.
#[test]
fn corrupt_cgroup_files_give_errors_naming_the_file() {
    let cases: &[(CgroupLocation, &[&str])] = &[
        (
            v2_loc("kernel-6.1", "s3_over_high", "leakyapp"),
            &[
                "memory.current",
                "memory.max",
                "memory.high",
                "memory.peak",
                "memory.stat",
                "memory.events",
                "memory.pressure",
                "memory.swap.current",
            ],
        ),
        (
            v1_host_loc(),
            &[
                "memory.usage_in_bytes",
                "memory.limit_in_bytes",
                "memory.max_usage_in_bytes",
                "memory.stat",
                "memory.oom_control",
                "memory.failcnt",
                "memory.memsw.usage_in_bytes",
            ],
        ),
    ];
    let mut errors = 0;
    for (loc, files) in cases {
        let tmp = tempfile::tempdir().unwrap();
        for e in fs::read_dir(&loc.dir).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
        }
        let copy = CgroupLocation {
            dir: tmp.path().to_path_buf(),
            ..loc.clone()
        };
        for file in *files {
            let orig = fs::read_to_string(loc.dir.join(file)).unwrap();
            let mut variants: Vec<String> =
                (0..orig.len()).map(|n| orig[..n].to_string()).collect();
            variants.extend(
                [
                    "garbage\n",
                    "-1\n",
                    "max max\n",
                    "key\n",
                    "k 1 2\n",
                    "some avg10=1\n",
                    "\u{0}\u{ff}",
                    "99999999999999999999999\n",
                ]
                .map(String::from),
            );
            for v in variants {
                fs::write(tmp.path().join(file), &v).unwrap();
                if let Err(e) = read_cgroup_memory(&copy) {
                    errors += 1;
                    let msg = e.to_string();
                    assert!(
                        msg.contains(file),
                        "{file} = {v:?}: error does not name the file: {msg}"
                    );
                }
            }
            fs::write(tmp.path().join(file), &orig).unwrap();
        }
        // A required file missing: an I/O error naming it.
        fs::remove_file(tmp.path().join(files[0])).unwrap();
        let msg = read_cgroup_memory(&copy).unwrap_err().to_string();
        assert!(
            msg.contains(files[0]) && msg.contains("No such file"),
            "{msg}"
        );
    }
    assert!(errors > 100, "only {errors} corruptions were rejected");
    let tmp = tempfile::tempdir().unwrap();
    fs::copy(
        v2_loc("kernel-6.1", "s1_early", "leakyapp")
            .dir
            .join("memory.current"),
        tmp.path().join("memory.current"),
    )
    .unwrap();
    fs::write(tmp.path().join("memory.max"), "sixty-four\n").unwrap();
    fs::write(tmp.path().join("memory.stat"), "anon 1\n").unwrap();
    let loc = CgroupLocation {
        version: CgroupVersion::V2,
        path: "/x".into(),
        dir: tmp.path().to_path_buf(),
    };
    let msg = read_cgroup_memory(&loc).unwrap_err().to_string();
    assert!(
        msg.contains("memory.max: line 1: expected an unsigned integer, got \"sixty-four\""),
        "{msg}"
    );
}

#[test]
fn kmsg_fixture_gives_one_kill_and_truncations_do_not_panic() {
    let text =
        fs::read_to_string(fixtures().join("cgroup-v2-vm/kernel-6.1/dmesg_oom.txt")).unwrap();
    let kills = kmsg::parse_oom_log(&text);
    assert_eq!(
        kills,
        vec![OomKill {
            pid: 104,
            task: "leakyapp".into(),
            task_memcg: Some("/system.slice/leakyapp.service".into()),
            oom_memcg: Some("/system.slice/leakyapp.service".into()),
            anon_rss_bytes: Some(65028 * 1024),
            monotonic_usec: Some(43_593_012),
        }]
    );
    let targets: &[(&str, Option<u32>, Option<&str>)] = &[
        ("steady", Some(103), Some("/system.slice/steady.service")),
        ("leaky", Some(999), Some("/system.slice/leakyapp.service")),
    ];
    assert_eq!(kmsg::attribute(&kills[0], targets), Some("leaky"));
    // The same lines as /dev/kmsg records give the same kill.
    let as_kmsg: String = text
        .lines()
        .filter_map(kmsg::parse_kmsg_record)
        .filter(|l| l.monotonic_usec.is_some())
        .map(|l| {
            format!(
                "6,{},{},-;{}\n SUBSYSTEM=x\n",
                1,
                l.monotonic_usec.unwrap(),
                l.message
            )
        })
        .collect();
    let via_kmsg = kmsg::parse_oom_log(&as_kmsg);
    assert_eq!(via_kmsg, kills);
    // Every truncation of every line: no panic, and a truncated kill line is not a kill
    // with wrong numbers (it is either no event or has the same pid).
    for line in text.lines() {
        for cut in 0..=line.len() {
            let Some(part) = line.get(..cut) else {
                continue;
            };
            if let Some(kl) = kmsg::parse_kmsg_record(part)
                && let Some(ev) = kmsg::parse_oom(&kl.message)
            {
                let pid = match ev {
                    kmsg::OomEvent::Selected(s) => s.pid,
                    kmsg::OomEvent::Killed(k) => k.pid,
                };
                assert!(
                    pid == 104 || "104".starts_with(&pid.to_string()),
                    "{part:?}"
                );
            }
        }
    }
    // Corrupted bytes: no panic.
    let bytes = text.as_bytes();
    for i in (0..bytes.len()).step_by(13) {
        let mut b = bytes.to_vec();
        b[i] = b"\xff,;=[]("[i % 7];
        let _ = kmsg::parse_oom_log(&String::from_utf8_lossy(&b));
    }
}

/// A fake proc root: `(pid, status text, cmdline args joined by space, environ
/// "K=V K=V", cgroup text, fd count)`.
fn fake_proc(procs: &[(u32, &str, &str, &str, &str, usize)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for &(pid, status, cmdline, environ, cgroup, fds) in procs {
        let d = root.path().join(pid.to_string());
        fs::create_dir_all(d.join("fd")).unwrap();
        fs::write(d.join("status"), status).unwrap();
        let nul = |s: &str| {
            s.split(' ')
                .filter(|w| !w.is_empty())
                .map(|w| format!("{w}\0"))
                .collect::<String>()
        };
        fs::write(d.join("cmdline"), nul(cmdline)).unwrap();
        fs::write(d.join("environ"), nul(environ)).unwrap();
        fs::write(d.join("cgroup"), cgroup).unwrap();
        for i in 0..fds {
            fs::write(d.join("fd").join(i.to_string()), "").unwrap();
        }
    }
    root
}

/// A fake cgroup root with the given files (relative path -> content).
fn fake_cgroup_root(files: &[(&str, &str)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for (rel, content) in files {
        let p = root.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
    root
}

#[test]
fn process_fixtures_through_a_fake_proc_root() {
    let status = fs::read_to_string(
        fixtures().join("cgroup-v2-vm/kernel-6.12/s2_growing/leakyapp/proc_status.txt"),
    )
    .unwrap();
    let cg = fs::read_to_string(
        fixtures().join("cgroup-v2-vm/kernel-6.12/s2_growing/leakyapp/proc_pid_cgroup.txt"),
    )
    .unwrap();
    let root = fake_proc(&[
        (
            150,
            &status,
            "/usr/bin/leakyapp -mode heap -interval 100ms",
            "HOME=/ GOMEMLIMIT=48MiB GOGC=50",
            &cg,
            7,
        ),
        (
            149,
            &status,
            "/usr/bin/leakyapp -mode healthy",
            "GOMEMLIMIT=off GOGC=off",
            "0::/system.slice/steady.service\n",
            5,
        ),
        (
            7,
            &status,
            "/usr/bin/leakyapp -mode heap -interval 100ms",
            "GOMEMLIMIT=128MiB",
            &cg,
            1,
        ),
    ]);
    let vm_rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    let p = read_process(root.path(), 150).unwrap();
    assert_eq!(p.rss, vm_rss_kb * 1024);
    assert_eq!(p.open_fds, 7);
    assert_eq!(p.gomemlimit, Some(48 << 20));
    assert_eq!(p.gogc, Some(50));
    let mut sink = Sink::new();
    p.push_samples(&mut sink, Some(p.rss - 1000), Some(67108864));
    assert_eq!(
        find(&sink, "leakwatch_process_non_go_resident_bytes", &[]),
        Some(1000.0)
    );
    assert_eq!(
        find(
            &sink,
            "leakwatch_process_gomemlimit_exceeds_cgroup_limit",
            &[]
        ),
        Some(0.0)
    );
    assert_eq!(find(&sink, "leakwatch_process_pid", &[]), Some(150.0));
    let mut sink = Sink::new();
    p.push_samples(&mut sink, Some(p.rss + 1), None);
    assert_eq!(
        find(&sink, "leakwatch_process_non_go_resident_bytes", &[]),
        Some(0.0),
        "clamped at 0"
    );
    assert_eq!(
        find(
            &sink,
            "leakwatch_process_gomemlimit_exceeds_cgroup_limit",
            &[]
        ),
        None
    );

    let steady = read_process(root.path(), 149).unwrap();
    assert_eq!((steady.gomemlimit, steady.gogc), (None, Some(-1)));
    let big = read_process(root.path(), 7).unwrap();
    let mut sink = Sink::new();
    big.push_samples(&mut sink, None, Some(67108864));
    assert_eq!(
        find(
            &sink,
            "leakwatch_process_gomemlimit_exceeds_cgroup_limit",
            &[]
        ),
        Some(1.0)
    );
    assert_eq!(find(&sink, "leakwatch_process_gogc", &[]), None);
    assert!(
        read_process(root.path(), 4242)
            .unwrap_err()
            .to_string()
            .contains("4242")
    );

    // Discovery on the same tree: the regex picks the lowest matching pid (7), its
    // cgroup is v2 because memory.current exists there.
    let cgroot = fake_cgroup_root(&[("system.slice/leakyapp.service/memory.current", "1\n")]);
    let sel = ProcessSelector {
        process: Some(regex::Regex::new(r"leakyapp -mode heap").unwrap()),
        ..Default::default()
    };
    let d = discover(&sel, None, root.path(), cgroot.path()).unwrap();
    assert_eq!(d.pid, Some(7));
    let loc = d.cgroup.unwrap();
    assert_eq!(
        (loc.version, loc.path.as_str()),
        (CgroupVersion::V2, "/system.slice/leakyapp.service")
    );
    assert_eq!(loc.dir, cgroot.path().join("system.slice/leakyapp.service"));
    // steady's cgroup has no memory.current in this tree and no v1 line: no cgroup.
    let sel = ProcessSelector {
        pid: Some(149),
        ..Default::default()
    };
    assert_eq!(
        discover(&sel, None, root.path(), cgroot.path())
            .unwrap()
            .cgroup,
        None
    );
    // pid_file, dead pid, missing pid file.
    let pf = root.path().join("svc.pid");
    fs::write(&pf, "150\n").unwrap();
    let sel = ProcessSelector {
        pid_file: Some(pf.clone()),
        ..Default::default()
    };
    assert_eq!(
        discover(&sel, None, root.path(), cgroot.path())
            .unwrap()
            .pid,
        Some(150)
    );
    fs::write(&pf, "4242\n").unwrap();
    assert_eq!(
        discover(&sel, None, root.path(), cgroot.path())
            .unwrap()
            .pid,
        None
    );
    fs::write(&pf, "not a pid\n").unwrap();
    let msg = discover(&sel, None, root.path(), cgroot.path())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("svc.pid") && msg.contains("not a pid"),
        "{msg}"
    );
    fs::remove_file(&pf).unwrap();
    assert_eq!(
        discover(&sel, None, root.path(), cgroot.path())
            .unwrap()
            .pid,
        None
    );
    assert!(pid_alive(root.path(), 150));
    assert!(!pid_alive(root.path(), 4242));
}

#[test]
fn cgroup_location_on_pure_v2_and_hybrid_hosts() {
    let hybrid = fs::read_to_string(fixtures().join("host-cgroup/proc_self_cgroup.txt")).unwrap();
    let pure = fs::read_to_string(
        fixtures().join("cgroup-v2-vm/kernel-6.1/s1_early/leakyapp/proc_pid_cgroup.txt"),
    )
    .unwrap();
    let status = fs::read_to_string(
        fixtures().join("cgroup-v2-vm/kernel-6.1/s1_early/leakyapp/proc_status.txt"),
    )
    .unwrap();
    // (cgroup text, files in the cgroup root, expected version, expected dir)
    type Case<'a> = (
        &'a str,
        &'a [&'a str],
        Option<(CgroupVersion, &'a str, &'a str)>,
    );
    let cases: &[Case] = &[
        // Pure v2.
        (
            &pure,
            &["system.slice/leakyapp.service/memory.current"],
            Some((
                CgroupVersion::V2,
                "/system.slice/leakyapp.service",
                "system.slice/leakyapp.service",
            )),
        ),
        // Pure v2, process in the root cgroup (no memory.current there): nothing to read.
        ("0::/\n", &["cgroup.controllers"], None),
        // Hybrid like this host: `0::/` but the unified root has no memory.current.
        (
            &hybrid,
            &[
                "unified/cgroup.controllers",
                "memory/process_api/<id>/memory.usage_in_bytes",
            ],
            Some((
                CgroupVersion::V1,
                "/process_api/<id>",
                "memory/process_api/<id>",
            )),
        ),
        // Hybrid whose unified hierarchy does account memory: v2 wins.
        (
            "4:memory:/a\n0::/b\n",
            &["unified/b/memory.current", "memory/a/memory.usage_in_bytes"],
            Some((CgroupVersion::V2, "/b", "unified/b")),
        ),
        // v1 only.
        (
            "4:memory:/\n1:cpu:/\n",
            &["memory/memory.usage_in_bytes"],
            Some((CgroupVersion::V1, "/", "memory")),
        ),
    ];
    for (text, files, want) in cases {
        let proc_root = fake_proc(&[(42, &status, "x", "", text, 0)]);
        let files: Vec<(&str, &str)> = files.iter().map(|f| (*f, "0\n")).collect();
        let cgroot = fake_cgroup_root(&files);
        let sel = ProcessSelector {
            pid: Some(42),
            ..Default::default()
        };
        let d = discover(&sel, None, proc_root.path(), cgroot.path()).unwrap();
        assert_eq!(d.pid, Some(42));
        let got = d.cgroup.map(|l| (l.version, l.path, l.dir));
        let want = want.map(|(v, p, dir)| (v, p.to_string(), cgroot.path().join(dir)));
        assert_eq!(got, want, "{text:?}");
    }
    // A cgroup given in the config, on each layout; a wrong one names where it looked.
    let cgroot = fake_cgroup_root(&[
        ("system.slice/a.service/memory.current", "0\n"),
        ("unified/b/memory.current", "0\n"),
        ("memory/c/memory.usage_in_bytes", "0\n"),
    ]);
    let none = ProcessSelector::default();
    let empty = tempfile::tempdir().unwrap();
    for (given, version, dir) in [
        (
            "/system.slice/a.service",
            CgroupVersion::V2,
            "system.slice/a.service",
        ),
        ("b", CgroupVersion::V2, "unified/b"),
        ("/c", CgroupVersion::V1, "memory/c"),
    ] {
        let d = discover(&none, Some(given), empty.path(), cgroot.path()).unwrap();
        let loc = d.cgroup.unwrap();
        assert_eq!(
            (loc.version, loc.dir),
            (version, cgroot.path().join(dir)),
            "{given}"
        );
    }
    let msg = discover(&none, Some("/nope"), empty.path(), cgroot.path())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("cgroup /nope") && msg.contains("memory.usage_in_bytes"),
        "{msg}"
    );
}

/// Kills and reaps a child on drop.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn own_v1_memory_path() -> String {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap();
    let pc = leakwatch::system::discover::parse_proc_cgroup(&text).unwrap();
    pc.v1_memory.expect(
        "this test expects the development host's hybrid layout: a v1 memory line in /proc/self/cgroup \
         (see tests/fixtures/host-cgroup)",
    )
}

#[test]
fn real_proc_discovery_and_v1_memory_files() {
    use std::os::unix::process::CommandExt;
    let tag = format!(
        "leakwatch-disc-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    );
    let child = Command::new("sleep").arg0(&tag).arg("30").spawn().unwrap();
    let mut child = ChildGuard(child);
    let pid = child.0.id();
    let sel = ProcessSelector {
        process: Some(regex::Regex::new(&format!("^{} 30$", regex::escape(&tag))).unwrap()),
        ..Default::default()
    };
    // Until the child has exec'd, its cmdline is still ours: poll briefly.
    let mut d = Default::default();
    let mut took = Duration::ZERO;
    wait_until(|| {
        let t = Instant::now();
        d = discover(&sel, None, Path::new("/proc"), Path::new("/sys/fs/cgroup")).unwrap();
        took = t.elapsed();
        d.pid.is_some()
    });
    let d: leakwatch::system::Discovered = d;
    assert_eq!(d.pid, Some(pid));
    let loc = d.cgroup.expect("a memory cgroup for the sleep process");
    assert_eq!(
        loc.version,
        CgroupVersion::V1,
        "this host's memory controller is v1"
    );
    assert_eq!(loc.path, own_v1_memory_path());
    assert_eq!(
        loc.dir,
        Path::new("/sys/fs/cgroup/memory").join(loc.path.trim_start_matches('/'))
    );
    let m = read_cgroup_memory(&loc).unwrap();
    assert!(m.usage > 0);
    assert!(
        m.event("oom_kill").is_some() && m.event("failcnt").is_some(),
        "{:?}",
        m.events
    );
    assert!(m.stat_value("total_inactive_file").is_some());
    let p = read_process(Path::new("/proc"), pid).unwrap();
    assert!(p.rss > 0 && p.vms >= p.rss && p.hwm >= p.rss, "{p:?}");
    assert_eq!(p.threads, 1);
    assert!(p.open_fds >= 3, "{p:?}");
    // Our own cmdline never matches, even with a regex that matches everything.
    let any = ProcessSelector {
        process: Some(regex::Regex::new(".").unwrap()),
        ..Default::default()
    };
    assert_ne!(
        discover(&any, None, Path::new("/proc"), Path::new("/sys/fs/cgroup"))
            .unwrap()
            .pid,
        Some(std::process::id())
    );
    let own = std::env::args().next().unwrap();
    let own_sel = ProcessSelector {
        process: Some(regex::Regex::new(&format!("^{}", regex::escape(&own))).unwrap()),
        ..Default::default()
    };
    assert_ne!(
        discover(
            &own_sel,
            None,
            Path::new("/proc"),
            Path::new("/sys/fs/cgroup")
        )
        .unwrap()
        .pid,
        Some(std::process::id())
    );
    // After the process is gone, pid_alive says so and re-discovery finds nothing.
    assert!(pid_alive(Path::new("/proc"), pid));
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert!(!pid_alive(Path::new("/proc"), pid));
    assert_eq!(
        discover(&sel, None, Path::new("/proc"), Path::new("/sys/fs/cgroup"))
            .unwrap()
            .pid,
        None
    );
    eprintln!("discovery by regex over /proc took {took:?}");
}

#[test]
fn file_follower_tail_and_from_start() {
    let dmesg =
        fs::read_to_string(fixtures().join("cgroup-v2-vm/kernel-6.1/dmesg_oom.txt")).unwrap();
    let opts = KernelLogOptions {
        from_start: false,
        poll_interval: Duration::from_millis(20),
        retry_interval: Duration::from_millis(50),
    };
    let dir = tempfile::tempdir().unwrap();
    // Tail: old content is skipped, appended content (written in two pieces, cutting a
    // line in half) is delivered once.
    let path = dir.path().join("kern.log");
    fs::write(&path, &dmesg).unwrap();
    let (tx, rx) = mpsc::channel();
    let r = kmsg::spawn_kernel_log_reader(KernelLogSource::File(path.clone()), opts, tx).unwrap();
    wait_until(|| r.readable() == Some(true));
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "old lines were delivered"
    );
    let more = dmesg
        .replace("pid=104", "pid=105")
        .replace("Killed process 104", "Killed process 105");
    let (a, b) = more.split_at(more.len() - 40);
    append(&path, a);
    std::thread::sleep(Duration::from_millis(60));
    append(&path, b);
    let k = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((k.pid, k.anon_rss_bytes), (105, Some(65028 * 1024)));
    assert_eq!(
        k.task_memcg.as_deref(),
        Some("/system.slice/leakyapp.service")
    );
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    r.stop();
    wait_until(|| r.is_finished());

    // From the start.
    let (tx, rx) = mpsc::channel();
    let r = kmsg::spawn_kernel_log_reader(
        KernelLogSource::File(path.clone()),
        KernelLogOptions {
            from_start: true,
            ..opts
        },
        tx,
    )
    .unwrap();
    let pids: Vec<u32> = (0..2)
        .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap().pid)
        .collect();
    assert_eq!(pids, [104, 105]);
    r.stop();

    // Missing file: unreadable with a reason, then read from its start once it appears.
    let late = dir.path().join("late.log");
    let (tx, rx) = mpsc::channel();
    let r = kmsg::spawn_kernel_log_reader(KernelLogSource::File(late.clone()), opts, tx).unwrap();
    wait_until(|| r.readable() == Some(false));
    assert!(
        r.last_error().unwrap().contains("late.log"),
        "{:?}",
        r.last_error()
    );
    fs::write(&late, &dmesg).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap().pid, 104);
    assert_eq!(r.readable(), Some(true));
    assert_eq!(r.last_error(), None);
    // Dropping the receiver ends the thread at its next delivery.
    drop(rx);
    append(&late, &more);
    wait_until(|| r.is_finished());
}

fn append(path: &Path, s: &str) {
    use std::io::Write;
    let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(s.as_bytes()).unwrap();
}

fn wait_until(mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "condition not met in 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A v1 memory cgroup made for one test: on drop, kills whatever is left in it and
/// removes it, whether the test passed or not.
struct CgroupGuard {
    dir: PathBuf,
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        for _ in 0..50 {
            let procs = fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
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

/// The whole OOM mechanism on this host, with the library only: a child v1 memory
/// cgroup limited to 96 MiB, a process allocating 10 MiB chunks in it, usage climbing,
/// `oom_kill 1` in the cgroup's events and one OOM kill from /dev/kmsg attributed to it.
#[test]
fn live_oom_kill_in_a_v1_child_cgroup() {
    const LIMIT: u64 = 96 << 20;
    let parent = own_v1_memory_path();
    let path = format!(
        "{}/leakwatch-test-{}",
        parent.trim_end_matches('/'),
        std::process::id()
    );
    let dir = Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'));
    if let Err(e) = fs::create_dir(&dir) {
        panic!(
            "cannot create the test cgroup {}: {e}. This test needs root and the v1 memory \
             controller at /sys/fs/cgroup/memory (this host's hybrid layout).",
            dir.display()
        );
    }
    let guard = CgroupGuard { dir: dir.clone() };
    fs::write(dir.join("memory.limit_in_bytes"), LIMIT.to_string()).unwrap();
    let loc = CgroupLocation {
        version: CgroupVersion::V1,
        path: path.clone(),
        dir: dir.clone(),
    };
    let before = read_cgroup_memory(&loc).unwrap();
    assert_eq!(before.limit, Some(LIMIT));
    assert_eq!(before.event("oom_kill"), Some(0));

    let (tx, rx) = mpsc::channel();
    let reader = kmsg::spawn_kernel_log_reader(
        KernelLogSource::Kmsg("/dev/kmsg".into()),
        KernelLogOptions::default(),
        tx,
    )
    .unwrap();
    wait_until(|| reader.readable().is_some());
    assert_eq!(
        reader.readable(),
        Some(true),
        "/dev/kmsg: {:?}",
        reader.last_error()
    );

    // The shell moves itself into the cgroup before exec'ing the allocator, so every
    // byte it allocates is charged there.
    let script = format!(
        "echo $$ > '{}' && exec python3 -c 'import time\nchunks = []\nwhile True:\n    chunks.append(b\"x\" * (10 << 20))\n    time.sleep(0.05)\n'",
        dir.join("cgroup.procs").display()
    );
    let t0 = Instant::now();
    let mut child = ChildGuard(Command::new("sh").arg("-c").arg(&script).spawn().unwrap());
    let pid = child.0.id();
    let mut usages: Vec<(Duration, u64)> = Vec::new();
    let status = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "not OOM-killed within 60 s; usages {usages:?}"
        );
        if let Ok(m) = read_cgroup_memory(&loc) {
            usages.push((t0.elapsed(), m.usage));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let killed_after = t0.elapsed();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "child ended with {status:?}, not SIGKILL"
    );
    // Usage climbed: many distinct readings, rising to near the limit.
    let max_usage = usages.iter().map(|(_, u)| *u).max().unwrap_or(0);
    let distinct: BTreeSet<u64> = usages.iter().map(|(_, u)| *u / (1 << 20)).collect();
    assert!(max_usage > LIMIT / 2, "max usage {max_usage}: {usages:?}");
    assert!(max_usage <= LIMIT, "usage above the limit: {max_usage}");
    assert!(distinct.len() >= 3, "usage did not climb: {usages:?}");
    let after = read_cgroup_memory(&loc).unwrap();
    assert_eq!(
        after.event("oom_kill"),
        Some(1),
        "events {:?}",
        after.events
    );
    assert!(after.event("failcnt").unwrap() > 0);
    assert!(after.peak.unwrap() >= max_usage && after.peak.unwrap() <= LIMIT);
    let mut sink = Sink::new();
    after.push_samples(&mut sink);
    assert_eq!(
        find(&sink, "leakwatch_cgroup_memory_events_total", &["oom_kill"]),
        Some(1.0)
    );
    assert_eq!(
        find(&sink, "leakwatch_cgroup_memory_limit_bytes", &[]),
        Some(LIMIT as f64)
    );

    // /dev/kmsg delivers the kill; other kills on the host are skipped.
    let targets: &[(&str, Option<u32>, Option<&str>)] = &[("oomtest", Some(pid), Some(&path))];
    let deadline = Instant::now() + Duration::from_secs(10);
    let kill = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let k = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no OOM kill of pid {pid} from /dev/kmsg within 10 s"));
        if kmsg::attribute(&k, targets).is_some() {
            break k;
        }
    };
    let seen_after = t0.elapsed();
    assert_eq!(kill.pid, pid);
    assert_eq!(kill.task, "python3");
    assert_eq!(kill.task_memcg.as_deref(), Some(path.as_str()));
    assert_eq!(kill.oom_memcg.as_deref(), Some(path.as_str()));
    assert!(kill.anon_rss_bytes.unwrap() > LIMIT / 2, "{kill:?}");
    assert!(kill.monotonic_usec.is_some());
    // Exactly one kill for this cgroup.
    std::thread::sleep(Duration::from_millis(300));
    let extra: Vec<OomKill> = rx
        .try_iter()
        .filter(|k| kmsg::attribute(k, targets).is_some())
        .collect();
    assert!(extra.is_empty(), "more than one kill: {extra:?}");
    reader.stop();
    drop(child);
    drop(guard);
    assert!(!dir.exists(), "{} left behind", dir.display());
    eprintln!(
        "live OOM: {} usage readings, max {} MiB, killed after {killed_after:?}, kmsg delivered by {seen_after:?}",
        usages.len(),
        max_usage >> 20
    );
}
