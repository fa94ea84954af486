//! Render time of `/metrics` for 1000 and 5000 targets with realistic state: every
//! target scraped (twice, so the analysis window has a slope) from the in-process fake
//! fleet of examples/fake-fleet.rs, which replays the real captures of tests/fixtures.
//! Two figures per size: `render`, the page as the `/metrics` handler builds it between
//! ticks (every target's block already encoded: the concatenation), and `encode_all`,
//! every target's block encoded again (what the loops spend once per tick in all).

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use leakwatch::AppState;
use leakwatch::config::Config;
use leakwatch::scrape::Fetcher;
use leakwatch::targets::TickObserver;

// The fleet's loading and routes, shared with the example binary (its `main` is unused here).
#[allow(dead_code)]
#[path = "../examples/fake-fleet.rs"]
mod fake_fleet;

const SIZES: [usize; 2] = [1000, 5000];

fn config(port: u16, n: usize) -> Config {
    let mut yaml =
        String::from("defaults:\n  interval: 15s\nsystem:\n  kernel_log: 'off'\ntargets:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  - name: t{i:04}\n    url: http://127.0.0.1:{port}/t{i:04}\n"
        ));
    }
    Config::from_yaml(&yaml).expect("generated config is valid")
}

/// An `AppState` for `n` targets, each scraped `rounds` times from a fake fleet.
fn scraped_state(rt: &tokio::runtime::Runtime, n: usize, rounds: usize) -> AppState {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let captures = fake_fleet::load_captures(&fixtures).expect("fixture captures");
    let fleet = Arc::new(fake_fleet::Fleet::new(captures, n, 5, Duration::ZERO));
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        tokio::spawn(fake_fleet::serve_fleet(fleet.clone(), listener));
        let state = AppState::new(config(port, n)).expect("state");
        let fetcher = Fetcher::new().expect("fetcher");
        for round in 0..rounds {
            if round > 0 {
                // Scrapes are stamped with wall time: let the window see two instants.
                tokio::time::sleep(Duration::from_millis(1100)).await;
            }
            futures_util::stream::iter(state.targets())
                .for_each_concurrent(leakwatch::MAX_CONCURRENT_SCRAPES, |t| {
                    let fetcher = fetcher.clone();
                    async move { t.scrape_once(&fetcher).await }
                })
                .await;
        }
        let up = state.targets().iter().filter(|t| t.status().up).count();
        assert_eq!(up, n, "every fake target answers");
        state
    })
}

fn render(state: &AppState) -> String {
    state.metrics.render()
}

/// Every target's block encoded again, as the loops do at the end of their ticks.
fn encode_all(state: &AppState) {
    for t in state.targets() {
        state.metrics.tick_done(&t);
    }
}

fn metrics_render(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("metrics_render");
    group.sample_size(20);
    for n in SIZES {
        let state = scraped_state(&rt, n, 2);
        let body = render(&state);
        let series = body
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count();
        eprintln!(
            "metrics_render: {n} targets -> {} bytes, {series} series ({:.1} per target)",
            body.len(),
            series as f64 / n as f64
        );
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("render/{n}_targets"), |b| {
            b.iter(|| black_box(render(black_box(&state))).len())
        });
        group.bench_function(format!("encode_all/{n}_targets"), |b| {
            b.iter(|| encode_all(black_box(&state)))
        });
    }
    group.finish();
}

criterion_group!(benches, metrics_render);
criterion_main!(benches);
