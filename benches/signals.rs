//! Cost per target per scrape of the analysis: `Window::observe` + `signals::compute`
//! on a full default window (30 minutes at 15 s = 121 samples) fed a realistic heap
//! profile (200 allocation sites, 12-frame stacks) and goroutine summary, and the
//! window's memory (`approx_bytes`), printed once.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use leakwatch::analysis::signals::{SignalConfig, compute};
use leakwatch::analysis::window::{
    ContainerObservation, GoroutineObservation, Observation, Window, WindowConfig,
};
use leakwatch::pprof::memstats::MemStats;
use leakwatch::pprof::{HeapProfile, HeapValues};

const SITES: usize = 200;
const INTERVAL: u64 = 15;

fn profile(step: u64) -> HeapProfile {
    let samples = (0..SITES).map(|i| {
        let mut stack = vec![
            "runtime.mallocgc".to_string(),
            "runtime.makeslice".to_string(),
        ];
        stack.push(format!(
            "github.com/acme/orders/pkg{}.(*Store{i}).Put",
            i % 17
        ));
        stack.extend((0..9).map(|d| format!("github.com/acme/orders/handler{}.serve{d}", i % 5)));
        let grow = if i == 7 { step * 30_000 } else { 0 };
        let values = HeapValues {
            inuse_objects: 10 + i as u64,
            inuse_bytes: 40_000 + 1_000 * i as u64 + grow,
            alloc_objects: 1000 * (step + 1),
            alloc_bytes: 4_000_000 * (step + 1),
        };
        (stack, values)
    });
    HeapProfile::from_samples(512 * 1024, samples).expect("small profile")
}

fn observation(step: u64) -> Observation {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + step * INTERVAL);
    let end_ns = |k: u64| (1_800_000_000 + step * INTERVAL) * 1_000_000_000 - k * 3_000_000_000;
    let memstats = MemStats {
        heap_alloc: Some(60_000_000 + (step % 7) * 5_000_000),
        next_gc: Some(120_000_000 + step * 1000),
        heap_objects: Some(500_000),
        total_alloc: Some(1_000_000_000 + step * 50_000_000),
        mallocs: Some(10_000_000 + step * 500_000),
        frees: Some(9_500_000 + step * 499_000),
        num_gc: Some(step * 5),
        sys: Some(200_000_000),
        pause_ns: (0..256).map(|k| 100_000 + k * 10).collect(),
        pause_end: (0..256).map(end_ns).collect(),
        ..MemStats::default()
    };
    Observation {
        pid: Some(4242),
        memstats: Some(memstats),
        heap: Some(Arc::new(profile(step))),
        goroutines: Some(GoroutineObservation {
            total: 300 + step,
            http_client_connections: 20,
            by_state: vec![("chan_receive".into(), 200)],
            by_function: (0..30)
                .map(|i| (format!("github.com/acme/orders/worker.wait{i}"), 10 + step))
                .collect(),
        }),
        container: Some(ContainerObservation {
            usage: Some(300_000_000),
            working_set: Some(250_000_000 + step * 100_000),
            limit: Some(1 << 30),
        }),
        rss: Some(240_000_000),
        gomemlimit: None,
        gogc: None,
        ..Observation::at(at)
    }
}

fn full_window() -> (Window, u64) {
    let mut w = Window::new(&WindowConfig::default());
    let steps = 30 * 60 / INTERVAL;
    for step in 0..=steps {
        w.observe(observation(step));
    }
    (w, steps + 1)
}

fn signals(c: &mut Criterion) {
    let (window, next) = full_window();
    let cfg = SignalConfig::default();
    println!(
        "full default window: {} samples over {:?}, approx_bytes = {} ({:.1} KiB) per target",
        window.len(),
        window.span(),
        window.approx_bytes(),
        window.approx_bytes() as f64 / 1024.0
    );
    let mut group = c.benchmark_group("signals");
    group.bench_function("observe+compute/full_window_200_sites", |b| {
        b.iter_batched(
            || (window.clone(), observation(next)),
            |(mut w, obs)| {
                w.observe(obs);
                black_box(compute(&w, &cfg))
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("compute/full_window_200_sites", |b| {
        b.iter(|| black_box(compute(black_box(&window), &cfg)))
    });
    group.finish();
}

criterion_group!(benches, signals);
criterion_main!(benches);
