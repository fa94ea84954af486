//! The `/metrics` page: each target's series encoded once per tick into a block
//! (at the end of the tick, or on the first read after it), the page the
//! concatenation of the blocks with the exporter's own series and the dump series of
//! the moment.
//!
//! A block is never half-updated: it is encoded from one reading of the target's
//! status, and while a tick is under way (some of its pieces written, not yet all)
//! the block of the last whole state is served. A block is encoded again only when
//! the target's state moved on ([`TickMark`]) or the collectors in force changed;
//! a removed target's block goes with it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use super::emit;
use super::sink::{LabelledSamples, Sink};
use super::text::{Block, render};
use crate::config::{Collectors, DiscoverReport, Refusal, ReloadStatus, Skip};
use crate::dump;
use crate::kernel_log::KernelLogStatus;
use crate::targets::{TargetState, Targets, TickMark, TickObserver};

/// Builds `/metrics` from the targets' current state.
#[derive(Debug)]
pub struct TargetsCollector {
    pub targets: Arc<Targets>,
    pub kernel: Arc<KernelLogStatus>,
    pub reload: Arc<ReloadStatus>,
    pub dumps: Arc<dump::DumpManager>,
    /// `leakwatch_web_info`'s `external_url`, set once at start (absent: no series).
    external_url: OnceLock<String>,
    blocks: Mutex<HashMap<usize, Cached>>,
    /// The collectors in force (config `metrics:`, then the `--collector.*` flags).
    collectors: RwLock<Collectors>,
    /// What fleet mode's last rescan found; `None` without `--discover` (no series).
    discover: Mutex<Option<DiscoverReport>>,
}

/// A target's encoded block and the state it was encoded from.
#[derive(Debug)]
struct Cached {
    /// Holds the target's allocation, so its address (the key) is not reused while
    /// the entry lives.
    target: Weak<TargetState>,
    mark: TickMark,
    collectors: Collectors,
    block: Arc<Block>,
}

impl TargetsCollector {
    pub fn new(
        targets: Arc<Targets>,
        kernel: Arc<KernelLogStatus>,
        reload: Arc<ReloadStatus>,
        dumps: Arc<dump::DumpManager>,
    ) -> Self {
        TargetsCollector {
            targets,
            kernel,
            reload,
            dumps,
            external_url: OnceLock::new(),
            blocks: Mutex::new(HashMap::new()),
            collectors: RwLock::new(Collectors::default()),
            discover: Mutex::new(None),
        }
    }

    /// The collectors in force.
    pub fn collectors(&self) -> Collectors {
        *self.collectors.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the collectors in force: each block is encoded again on its next read.
    pub fn set_collectors(&self, collectors: Collectors) {
        *self.collectors.write().unwrap_or_else(|e| e.into_inner()) = collectors;
    }

    /// Exports `leakwatch_web_info{external_url}` from now on (the first call wins).
    pub fn set_external_url(&self, url: String) {
        let _ = self.external_url.set(url);
    }

    /// What fleet mode's last rescan found: its series from now on.
    pub fn set_discover(&self, report: DiscoverReport) {
        *self.discover.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Cached>> {
        self.blocks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `t`'s block: the cached one while its state has not moved, else encoded now.
    /// Encoded mid-tick, the new block is served only when no whole one exists.
    pub fn block(&self, t: &Arc<TargetState>) -> Arc<Block> {
        let key = Arc::as_ptr(t) as usize;
        let current = t.tick_mark();
        let collectors = self.collectors();
        let old = self
            .cache()
            .get(&key)
            .filter(|c| c.collectors == collectors)
            .map(|c| (c.mark, c.block.clone()));
        if let Some((mark, block)) = &old
            && mark.whole
            && mark.generation == current.generation
        {
            return block.clone();
        }
        let (mark, block) = encode(t, collectors);
        match old {
            Some((old_mark, old_block)) if !mark.whole && old_mark.whole => old_block,
            _ => self.store(t, mark, collectors, block),
        }
    }

    fn store(
        &self,
        t: &Arc<TargetState>,
        mark: TickMark,
        collectors: Collectors,
        block: Block,
    ) -> Arc<Block> {
        let block = Arc::new(block);
        let cached = Cached {
            target: Arc::downgrade(t),
            mark,
            collectors,
            block: block.clone(),
        };
        self.cache().insert(Arc::as_ptr(t) as usize, cached);
        block
    }

    /// Drops the blocks of targets no longer watched.
    fn prune(&self, live: &[Arc<TargetState>]) {
        let keep: HashSet<usize> = live.iter().map(|t| Arc::as_ptr(t) as usize).collect();
        self.cache()
            .retain(|k, c| keep.contains(k) && c.target.strong_count() > 0);
    }

    /// The exporter's own series: version, its external URL, targets, reloads, the
    /// kernel log, fleet mode.
    fn global(&self, targets: usize) -> Block {
        let mut global = Sink::new();
        global.gauge_with("leakwatch_build_info", &[env!("CARGO_PKG_VERSION")], 1u64);
        if let Some(url) = self.external_url.get() {
            global.gauge_with("leakwatch_web_info", &[url], 1u64);
        }
        global.gauge("leakwatch_targets", targets as u64);
        global.gauge(
            "leakwatch_config_last_reload_successful",
            self.reload
                .last_ok
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        global.gauge(
            "leakwatch_config_last_reload_success_timestamp_seconds",
            *self
                .reload
                .last_success_unix
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        if let Some((source, ok)) = self
            .kernel
            .readable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            global.gauge_with("leakwatch_kernel_log_readable", &[&source], ok);
            global.counter(
                "leakwatch_host_oom_kills",
                self.kernel
                    .host_kills
                    .load(std::sync::atomic::Ordering::Relaxed),
            );
        }
        if let Some(d) = &*self.discover.lock().unwrap_or_else(|e| e.into_inner()) {
            discover(d, &mut global);
        }
        Block::encode(&LabelledSamples {
            target_labels: Vec::new(),
            samples: global.samples,
        })
    }

    /// The whole `/metrics` page (Prometheus text format 0.0.4).
    pub fn render(&self) -> String {
        let targets = self.targets.snapshot();
        let global = self.global(targets.len());
        let mut dump_stats = self.dumps.all_stats();
        let collectors = self.collectors();
        let mut blocks: Vec<Arc<Block>> = Vec::with_capacity(targets.len());
        let mut dumps: Vec<(usize, Block)> = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            blocks.push(self.block(t));
            // Dump series change when a dump is written, not at a tick: read now.
            if let Some(s) = dump_stats.remove(&t.config.name) {
                let mut sink = Sink::with(collectors);
                emit::dump_stats(&s, &mut sink);
                let group = LabelledSamples {
                    target_labels: t.config.label_pairs(),
                    samples: sink.samples,
                };
                dumps.push((i, Block::encode(&group)));
            }
        }
        self.prune(&targets);
        let mut page: Vec<&Block> = Vec::with_capacity(blocks.len() + dumps.len() + 1);
        page.push(&global);
        let mut extra = dumps.iter().peekable();
        for (i, b) in blocks.iter().enumerate() {
            page.push(b);
            if let Some((_, d)) = extra.next_if(|(j, _)| *j == i) {
                page.push(d);
            }
        }
        render(&page)
    }
}

impl TickObserver for TargetsCollector {
    /// Encodes the target's block at the end of its tick, so a read only concatenates.
    fn tick_done(&self, target: &Arc<TargetState>) {
        let collectors = self.collectors();
        let (mark, block) = encode(target, collectors);
        self.store(target, mark, collectors, block);
    }
}

/// Fleet mode's series: every reason, zero or not, so a rate or an alert has a series.
fn discover(d: &DiscoverReport, sink: &mut Sink) {
    sink.gauge("leakwatch_discover_targets", d.targets as u64);
    sink.gauge("leakwatch_discover_go_processes", d.go_processes as u64);
    for why in Skip::ALL {
        sink.gauge_with(
            "leakwatch_discover_skipped_processes",
            &[why.as_str()],
            d.skipped(why) as u64,
        );
    }
    for why in Refusal::ALL {
        sink.gauge_with(
            "leakwatch_discover_refused_ports",
            &[why.as_str()],
            d.refused(why) as u64,
        );
    }
    sink.counter("leakwatch_discover_rescans", d.rescans);
    sink.gauge(
        "leakwatch_discover_rescan_duration_seconds",
        d.last_rescan_seconds,
    );
}

/// `t`'s block from one reading of its status, with where that state stood: the
/// series of `collectors`.
fn encode(t: &TargetState, collectors: Collectors) -> (TickMark, Block) {
    let mut sink = Sink::with(collectors);
    let mark = emit::target_marked(t, &mut sink);
    let group = LabelledSamples {
        target_labels: t.config.label_pairs(),
        samples: sink.samples,
    };
    (mark, Block::encode(&group))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::state::AppState;

    fn state(names: &[&str]) -> AppState {
        let mut yaml = String::from("system:\n  kernel_log: 'off'\ntargets:\n");
        for n in names {
            yaml.push_str(&format!("  - name: {n}\n    url: http://127.0.0.1:9/{n}\n"));
        }
        AppState::new(Config::from_yaml(&yaml).unwrap()).unwrap()
    }

    fn scraped(t: &TargetState, up: bool) {
        let mut st = t.status();
        st.scrapes += 1;
        st.up = up;
        st.system.pid = Some(4242);
    }

    fn value(page: &str, series: &str) -> Option<String> {
        page.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')
                .map(str::to_string)
        })
    }

    #[test]
    fn a_block_is_never_half_updated_and_moves_with_the_state() {
        let s = state(&["a", "b"]);
        let (a, b) = (s.targets()[0].clone(), s.targets()[1].clone());
        scraped(&a, true);
        let page = s.metrics.render();
        assert_eq!(
            value(&page, "leakwatch_up{target=\"a\"}").as_deref(),
            Some("1")
        );
        // b was never scraped: no series of its own.
        assert!(!page.contains("target=\"b\""), "{page}");

        // Half-way through a tick, a piece written: the last whole state is served.
        let tick = a.begin_tick();
        a.status().up = false;
        let page = s.metrics.render();
        assert_eq!(
            value(&page, "leakwatch_up{target=\"a\"}").as_deref(),
            Some("1")
        );
        // Same while an OOM kill is recorded meanwhile (its own whole change).
        a.record_oom_kill(1_800_000_000.0, Some(1 << 20));
        let page = s.metrics.render();
        assert_eq!(
            value(&page, "leakwatch_up{target=\"a\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            value(&page, "leakwatch_oom_kills_total{target=\"a\"}").as_deref(),
            Some("0")
        );
        drop(tick);
        let page = s.metrics.render();
        assert_eq!(
            value(&page, "leakwatch_up{target=\"a\"}").as_deref(),
            Some("0")
        );
        assert_eq!(
            value(&page, "leakwatch_oom_kills_total{target=\"a\"}").as_deref(),
            Some("1")
        );

        // Outside a tick, an OOM kill shows on the next read.
        a.record_oom_kill(1_800_000_100.0, None);
        let page = s.metrics.render();
        assert_eq!(
            value(&page, "leakwatch_oom_kills_total{target=\"a\"}").as_deref(),
            Some("2")
        );

        // Mid-way through its first tick, b is still the whole state read before: not
        // scraped yet, no series; at the tick's end, its series.
        let first = b.begin_tick();
        scraped(&b, true);
        assert!(!s.metrics.render().contains("target=\"b\""));
        drop(first);
        let page = s.metrics.render();
        assert_eq!(
            value(&page, "leakwatch_up{target=\"b\"}").as_deref(),
            Some("1")
        );
        // A target never read before, mid-way through a tick, is shown as it stands
        // rather than left out.
        let s2 = state(&["c"]);
        let c = s2.targets()[0].clone();
        let _first = c.begin_tick();
        scraped(&c, true);
        let page = s2.metrics.render();
        assert_eq!(
            value(&page, "leakwatch_up{target=\"c\"}").as_deref(),
            Some("1")
        );

        // Unchanged state: the same block, not encoded again.
        let before = s.metrics.block(&a);
        assert!(Arc::ptr_eq(&before, &s.metrics.block(&a)));
        // The end of a tick encodes it once (what the loop calls).
        s.metrics.tick_done(&a);
        let after = s.metrics.block(&a);
        assert!(!Arc::ptr_eq(&before, &after));
        assert!(Arc::ptr_eq(&after, &s.metrics.block(&a)));
    }

    #[test]
    fn a_change_of_collectors_encodes_the_blocks_again() {
        use crate::config::{Collector, Collectors};
        let s = state(&["a"]);
        let a = s.targets()[0].clone();
        scraped(&a, true);
        let lean = s.metrics.block(&a);
        assert!(s.metrics.render().contains("leakwatch_up{target=\"a\"} 1"));
        s.metrics
            .set_collectors(Collectors::with([(Collector::Scrape, false)]));
        let page = s.metrics.render();
        assert!(!page.contains("leakwatch_up"), "{page}");
        assert!(
            page.contains("leakwatch_oom_kills_total{target=\"a\"} 0"),
            "{page}"
        );
        s.metrics.set_collectors(Collectors::default());
        let again = s.metrics.block(&a);
        assert!(!Arc::ptr_eq(&lean, &again));
        assert_eq!(again.series(), lean.series());
        // The config's `metrics:` is in force from the start.
        let yaml = "metrics:\n  collectors: {oom: false}\nsystem:\n  kernel_log: 'off'\ntargets:\n  - name: b\n    url: http://127.0.0.1:9/b\n";
        let s = AppState::new(Config::from_yaml(yaml).unwrap()).unwrap();
        scraped(&s.targets()[0], true);
        let page = s.metrics.render();
        assert!(page.contains("leakwatch_up{target=\"b\"} 1"), "{page}");
        assert!(!page.contains("leakwatch_oom_kills"), "{page}");
    }

    #[test]
    fn fleet_series_only_with_discover_and_every_reason() {
        let s = state(&["a"]);
        assert!(!s.metrics.render().contains("leakwatch_discover_"));
        s.metrics.set_discover(DiscoverReport {
            targets: 2,
            go_processes: 4,
            skipped: vec![(Skip::NotGo, 310), (Skip::Unreadable, 1)],
            refused: vec![(Refusal::MaxTargets, 3), (Refusal::NoPprof, 1)],
            rescans: 5,
            last_rescan_seconds: 0.25,
        });
        let page = s.metrics.render();
        let want = [
            ("leakwatch_discover_targets", "2"),
            ("leakwatch_discover_go_processes", "4"),
            (
                "leakwatch_discover_skipped_processes{reason=\"not_go\"}",
                "310",
            ),
            (
                "leakwatch_discover_skipped_processes{reason=\"unreadable\"}",
                "1",
            ),
            (
                "leakwatch_discover_refused_ports{reason=\"max_targets\"}",
                "3",
            ),
            ("leakwatch_discover_refused_ports{reason=\"no_pprof\"}", "1"),
            // A reason with none is 0, not absent.
            ("leakwatch_discover_refused_ports{reason=\"denied\"}", "0"),
            (
                "leakwatch_discover_refused_ports{reason=\"cmdline_mismatch\"}",
                "0",
            ),
            ("leakwatch_discover_rescans_total", "5"),
            ("leakwatch_discover_rescan_duration_seconds", "0.25"),
        ];
        for (series, v) in want {
            assert_eq!(value(&page, series).as_deref(), Some(v), "{series}\n{page}");
        }
        assert!(
            page.contains("# TYPE leakwatch_discover_rescans_total counter"),
            "{page}"
        );
        let reasons = page
            .lines()
            .filter(|l| l.starts_with("leakwatch_discover_refused_ports{"))
            .count();
        assert_eq!(reasons, Refusal::ALL.len(), "{page}");
    }

    #[test]
    fn a_removed_target_takes_its_block_with_it() {
        let s = state(&["a", "b"]);
        for t in s.targets() {
            scraped(&t, true);
        }
        assert!(s.metrics.render().contains("leakwatch_up{target=\"b\"} 1"));
        assert_eq!(s.metrics.cache().len(), 2);
        s.targets.reload(
            &Config::from_yaml(
                "system:\n  kernel_log: 'off'\ntargets:\n  - name: a\n    url: http://127.0.0.1:9/a\n",
            )
            .unwrap(),
            false,
        );
        let page = s.metrics.render();
        assert!(!page.contains("target=\"b\""), "{page}");
        assert!(page.contains("leakwatch_targets 1\n"), "{page}");
        assert_eq!(s.metrics.cache().len(), 1);
    }
}
