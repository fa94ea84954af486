//! Test support: a crude simulated Go service feeding a [`Window`], shared by the
//! signal tests and the emitter tests (`metrics::emit`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::analysis::kinds::ByKind;
use crate::analysis::signals::{SignalConfig, Signals, compute};
use crate::analysis::window::{
    ContainerObservation, GoroutineObservation, Observation, ObserveOutcome, Window, WindowConfig,
};
use crate::pprof::memstats::MemStats;
use crate::pprof::{HeapProfile, HeapValues};

pub(crate) const MIB: f64 = 1024.0 * 1024.0;
pub(crate) const T0: u64 = 1_800_000_000;

/// Deterministic noise in -1..1 (tests must not flake).
pub(crate) fn noise(i: u64) -> f64 {
    let x = i
        .wrapping_add(0x9E37_79B9_7F4A_7C15)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let x = (x ^ (x >> 31)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
}

/// A crude Go runtime: garbage is allocated at `alloc_rate` on top of the live heap;
/// when HeapAlloc reaches NextGC a GC runs, measures the live heap and sets
/// NextGC = 2 x live (GOGC=100, 4 MiB floor). The heap profile reports the live heap
/// of the last GC split between a leaking, a steady and a sawtooth site (with 1%
/// sampling noise on the steady site: the leak's objects stay, so its site only rises).
pub(crate) struct Sim {
    /// Live heap (bytes) at second `t`; the leaking part is what exceeds `base`.
    pub(crate) live: Box<dyn Fn(f64) -> f64>,
    pub(crate) base: f64,
    /// Live bytes of a third site at second `t` (a sawtooth: buffers built up and
    /// dropped), on top of `live`, reported in its own site.
    pub(crate) saw: Box<dyn Fn(f64) -> f64>,
    pub(crate) alloc_rate: f64,
    pub(crate) goroutines: Box<dyn Fn(f64) -> f64>,
    /// Second at which the process restarts (counters reset, new pid).
    pub(crate) restart_at: Option<u64>,
    pub(crate) rss: Box<dyn Fn(f64) -> f64>,
    pub(crate) limit: Option<u64>,
    /// The process started this many seconds before the run (its `/proc` start time);
    /// `None`: unknown, as for a remote target.
    pub(crate) started_before: Option<u64>,
}

impl Default for Sim {
    fn default() -> Self {
        Sim {
            live: Box::new(|_| 50.0 * MIB),
            base: 50.0 * MIB,
            saw: Box::new(|_| 0.0),
            alloc_rate: 8.0 * MIB,
            goroutines: Box::new(|_| 40.0),
            restart_at: None,
            rss: Box::new(|_| 200.0 * MIB),
            limit: None,
            started_before: None,
        }
    }
}

pub(crate) struct Run {
    pub(crate) window: Window,
    pub(crate) outcomes: Vec<ObserveOutcome>,
    /// The verdict after every observation once warm: (second, suspected by kind).
    pub(crate) verdicts: Vec<(u64, ByKind<bool>)>,
    pub(crate) last: Signals,
}

pub(crate) fn at(sec: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + sec)
}

pub(crate) fn run(
    sim: &Sim,
    seconds: u64,
    every: u64,
    wcfg: &WindowConfig,
    scfg: &SignalConfig,
) -> Run {
    let mut window = Window::new(wcfg);
    let mut outcomes = Vec::new();
    let mut verdicts = Vec::new();
    let (mut heap_alloc, mut next_gc, mut num_gc) = (0.0f64, 4.0 * MIB, 0u64);
    let (mut total_alloc, mut gc_live, mut gc_saw, mut gc_leak) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut pauses: Vec<(u64, u64)> = Vec::new();
    let mut pid = 100;
    let mut started = 0u64;
    let mut last = None;
    for sec in 0..=seconds {
        if sim.restart_at == Some(sec) {
            (
                heap_alloc,
                next_gc,
                num_gc,
                total_alloc,
                gc_live,
                gc_saw,
                gc_leak,
            ) = (0.0, 4.0 * MIB, 0, 0.0, 0.0, 0.0, 0.0);
            pauses.clear();
            pid += 1;
            started = sec;
        }
        let t = sec as f64;
        let saw = (sim.saw)(t);
        let live = (sim.live)(t) + saw;
        let before = heap_alloc;
        heap_alloc = heap_alloc.max(live) + sim.alloc_rate;
        total_alloc += heap_alloc - before;
        if heap_alloc >= next_gc {
            num_gc += 1;
            gc_live = (live - saw) * (1.0 + 0.01 * noise(num_gc * 7 + 3));
            // The leak's objects stay: its site carries none of the noise.
            gc_leak = (live - saw - sim.base).max(0.0);
            gc_saw = saw;
            heap_alloc = live;
            // The GC's own measure of the live heap jitters too (floating garbage).
            next_gc = (2.0 * live * (1.0 + 0.005 * noise(num_gc * 13 + 5))).max(4.0 * MIB);
            let end = (T0 + sec) * 1_000_000_000;
            pauses.push((end, 100_000 + (num_gc % 10) * 50_000));
        }
        if sec % every != 0 {
            continue;
        }
        let ring: Vec<(u64, u64)> = pauses.iter().rev().take(256).copied().collect();
        let ms = MemStats {
            heap_alloc: Some(heap_alloc as u64),
            next_gc: Some(next_gc as u64),
            num_gc: Some(num_gc),
            total_alloc: Some(total_alloc as u64),
            mallocs: Some((total_alloc / 64.0) as u64),
            frees: Some(((total_alloc - heap_alloc) / 64.0) as u64),
            heap_objects: Some((heap_alloc / 64.0) as u64),
            sys: Some((next_gc * 1.2) as u64),
            pause_ns: ring.iter().map(|p| p.1).collect(),
            pause_end: ring.iter().map(|p| p.0).collect(),
            ..MemStats::default()
        };
        let leaking = gc_leak.min(gc_live);
        let samples = [
            (
                &["main.newSession", "main.cacheSession"][..],
                HeapValues {
                    inuse_bytes: leaking as u64,
                    inuse_objects: (leaking / 30000.0) as u64,
                    alloc_bytes: (total_alloc * 0.1) as u64,
                    alloc_objects: 1,
                },
            ),
            (
                &[
                    "runtime.makeslice",
                    "encoding/json.Marshal",
                    "github.com/acme/api.render",
                ][..],
                HeapValues {
                    inuse_bytes: (gc_live - leaking) as u64,
                    inuse_objects: 1000,
                    alloc_bytes: (total_alloc * 0.8) as u64,
                    alloc_objects: 1000,
                },
            ),
            (
                &["main.handleBatch", "main.serve"][..],
                HeapValues {
                    inuse_bytes: gc_saw as u64,
                    inuse_objects: (gc_saw / 65536.0) as u64,
                    alloc_bytes: (total_alloc * 0.1) as u64,
                    alloc_objects: 1,
                },
            ),
        ];
        let heap = HeapProfile::from_samples(512 * 1024, samples)
            .map(Arc::new)
            .ok();
        let g = (sim.goroutines)(t).round() as u64;
        let obs = Observation {
            pid: Some(pid),
            memstats: Some(ms),
            heap,
            goroutines: Some(GoroutineObservation {
                total: g,
                http_client_connections: g / 4,
                by_state: Vec::new(),
                by_function: vec![
                    ("main.waitForReply".into(), g.saturating_sub(10)),
                    ("net/http.(*conn).serve".into(), 10),
                ],
            }),
            container: Some(ContainerObservation {
                usage: None,
                working_set: Some((sim.rss)((sec - started) as f64) as u64),
                limit: sim.limit,
            }),
            rss: None,
            gomemlimit: None,
            gogc: None,
            // A restarted process started when it restarted.
            process_start: sim.started_before.map(|b| {
                if started == 0 {
                    at(0) - Duration::from_secs(b)
                } else {
                    at(started)
                }
            }),
            ..Observation::at(at(sec))
        };
        outcomes.push(window.observe(obs));
        // Judge once a minute (and at the end): enough to catch a transient false alarm.
        if sec % 60 != 0 && sec + every <= seconds {
            continue;
        }
        let s = compute(&window, scfg);
        if s.warm {
            verdicts.push((sec, ByKind::from_fn(|k| s.verdict.get(k).suspected)));
        }
        last = Some(s);
    }
    Run {
        window,
        outcomes,
        verdicts,
        last: last.expect("at least one observation"),
    }
}

pub(crate) fn linear(start: f64, per_hour: f64) -> Box<dyn Fn(f64) -> f64> {
    Box::new(move |t| start + per_hour * t / 3600.0)
}

/// Two samples 15 s apart: too few for any slope, verdict or time-to-OOM.
pub(crate) fn two_early_samples() -> Window {
    let mut w = Window::new(&WindowConfig::default());
    for (i, heap) in [10u64, 20].iter().enumerate() {
        w.observe(Observation {
            memstats: Some(MemStats {
                heap_alloc: Some(heap * 1_000_000),
                next_gc: Some(heap * 2_000_000),
                ..MemStats::default()
            }),
            rss: Some(heap * 3_000_000),
            gomemlimit: Some(1 << 30),
            ..Observation::at(at(i as u64 * 15))
        });
    }
    w
}

/// A service leaking 20 MiB/h into `main.newSession` on top of a 50 MiB heap, under a
/// 1 GiB cgroup limit, watched for 45 minutes every 15 s.
pub(crate) fn leaking_45_minutes() -> Run {
    let sim = Sim {
        live: linear(50.0 * MIB, 20.0 * MIB),
        limit: Some(1 << 30),
        ..Sim::default()
    };
    run(
        &sim,
        45 * 60,
        15,
        &WindowConfig::default(),
        &SignalConfig::default(),
    )
}
