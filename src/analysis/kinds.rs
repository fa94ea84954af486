//! What leaks and what a verdict says. The leak kinds are one table ([`KindSpec`], one
//! row per [`LeakKind`]: label, unit, floors, the series judged, alert and runbook
//! anchor), and a verdict holds, for each kind, its state (suspected, no leak,
//! inconclusive, warming up, stale), score and plain-sentence reasons. The rule that
//! fills them in is `analysis/verdict.rs`.
//!
//! Adding a kind: its variant here and its row in [`LeakKind::spec`], the code that
//! measures it (a [`Sample`] field and the observation that fills it), its floors in
//! the thresholds, and its alert, rule test, runbook section and label in the verdict's
//! help and dashboard panel (the tests of `rules.rs` and `metrics/table.rs` check
//! them); the compiler points at everything else.

use std::ops::{Index, IndexMut};

use crate::analysis::criteria::Unit;
use crate::analysis::observation::Sample;
use crate::analysis::thresholds::{Floors, Thresholds};

/// What leaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakKind {
    Heap,
    Goroutine,
    HttpConnections,
}

/// The window series a kind is judged on.
#[derive(Debug, Clone, Copy)]
pub enum Series {
    /// The live heap: read once per GC by two estimators (the heap profile and NextGC),
    /// needing GC cycles and the runtime's corroboration (the verdict's rule 1-3).
    LiveHeap,
    /// A count read from every sample (the goroutine profile's).
    Count(fn(&Sample) -> Option<u64>),
}

/// One leak kind's properties: its row of the kind table.
#[derive(Debug)]
pub struct KindSpec {
    /// The `kind` label value of `leakwatch_leak_suspected` and the other verdict series.
    pub label: &'static str,
    /// What grows, as a reason names it: "goroutines: +120 goroutines over 30m ...".
    pub name: &'static str,
    /// How its values read (bytes, or a count of what).
    pub unit: Unit,
    /// The window series judged.
    pub series: Series,
    /// Its growth floors in the thresholds.
    pub floors: fn(&Thresholds) -> Floors,
    /// The config keys of those floors under `signals.thresholds` (absolute, relative).
    pub floor_keys: [&'static str; 2],
    /// The shipped alert on it (`alerts/leakwatch-rules.yml`).
    pub alert: &'static str,
    /// Its section in the runbook (`docs/runbook.md`, served at `/runbook`): the
    /// alert's name lower-cased, GitHub's heading anchor.
    pub runbook_anchor: &'static str,
    /// "Inconclusive" means "cannot be judged yet" (every view shows it as such, never
    /// as "no leak"): the live heap, measured only at a GC, is inconclusive until
    /// enough GCs ran. A count is inconclusive only without data.
    pub inconclusive_is_undecided: bool,
}

const HEAP: KindSpec = KindSpec {
    label: "heap",
    name: "live heap",
    unit: Unit::Bytes,
    series: Series::LiveHeap,
    floors: |t| Floors {
        per_hour: t.heap_min_growth_bytes_per_hour,
        relative_per_hour: t.heap_min_relative_growth_per_hour,
    },
    floor_keys: [
        "heap_min_growth_bytes_per_hour",
        "heap_min_relative_growth_per_hour",
    ],
    alert: "LeakwatchHeapLeakSuspected",
    runbook_anchor: "leakwatchheapleaksuspected",
    inconclusive_is_undecided: true,
};

const GOROUTINE: KindSpec = KindSpec {
    label: "goroutine",
    name: "goroutines",
    unit: Unit::Count("goroutines"),
    series: Series::Count(|s| s.goroutines),
    floors: |t| Floors {
        per_hour: t.goroutine_min_growth_per_hour,
        relative_per_hour: t.goroutine_min_relative_growth_per_hour,
    },
    floor_keys: [
        "goroutine_min_growth_per_hour",
        "goroutine_min_relative_growth_per_hour",
    ],
    alert: "LeakwatchGoroutineLeakSuspected",
    runbook_anchor: "leakwatchgoroutineleaksuspected",
    inconclusive_is_undecided: false,
};

/// Goroutines in `net/http.(*persistConn).readLoop`: HTTP client connections never
/// closed.
const HTTP_CONNECTIONS: KindSpec = KindSpec {
    label: "http_connections",
    name: "HTTP client connections",
    unit: Unit::Count("connections"),
    series: Series::Count(|s| s.http_client_connections),
    floors: |t| Floors {
        per_hour: t.http_connections_min_growth_per_hour,
        relative_per_hour: t.http_connections_min_relative_growth_per_hour,
    },
    floor_keys: [
        "http_connections_min_growth_per_hour",
        "http_connections_min_relative_growth_per_hour",
    ],
    alert: "LeakwatchHTTPConnectionLeakSuspected",
    runbook_anchor: "leakwatchhttpconnectionleaksuspected",
    inconclusive_is_undecided: false,
};

impl LeakKind {
    pub const COUNT: usize = 3;

    /// Every kind, in the order of their series and of every per-kind list.
    pub const ALL: [LeakKind; LeakKind::COUNT] = [
        LeakKind::Heap,
        LeakKind::Goroutine,
        LeakKind::HttpConnections,
    ];

    /// Its row of the kind table.
    pub fn spec(self) -> &'static KindSpec {
        match self {
            LeakKind::Heap => &HEAP,
            LeakKind::Goroutine => &GOROUTINE,
            LeakKind::HttpConnections => &HTTP_CONNECTIONS,
        }
    }

    /// The `kind` label value.
    pub fn as_str(self) -> &'static str {
        self.spec().label
    }

    /// Its place in [`LeakKind::ALL`] (declaration order).
    fn index(self) -> usize {
        self as usize
    }
}

/// One value per leak kind, in [`LeakKind::ALL`] order; indexed by kind.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ByKind<T>([T; LeakKind::COUNT]);

impl<T> ByKind<T> {
    pub fn from_fn(f: impl FnMut(LeakKind) -> T) -> Self {
        ByKind(LeakKind::ALL.map(f))
    }

    /// The values in [`LeakKind::ALL`] order.
    pub fn values(&self) -> &[T] {
        &self.0
    }

    /// `(kind, value)` in [`LeakKind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (LeakKind, &T)> {
        LeakKind::ALL.into_iter().zip(&self.0)
    }
}

impl<T> Index<LeakKind> for ByKind<T> {
    type Output = T;
    fn index(&self, kind: LeakKind) -> &T {
        &self.0[kind.index()]
    }
}

impl<T> IndexMut<LeakKind> for ByKind<T> {
    fn index_mut(&mut self, kind: LeakKind) -> &mut T {
        &mut self.0[kind.index()]
    }
}

/// Where a verdict stands: the `state` label of `leakwatch_leak_verdict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictState {
    /// Every criterion holds.
    Suspected,
    /// The evidence is there and it says no (or growth stopped after start-up).
    NoLeak,
    /// The window cannot tell: e.g. HeapAlloc grew but too few GC cycles measured the
    /// live heap. Never read as "no leak".
    Inconclusive,
    /// Not enough window yet, or growth still within the process's start-up grace.
    WarmingUp,
    /// The target is down or its process is gone: no verdict from old samples.
    Stale,
    /// It grows, but another leak explains it (an HTTP connection leak holds two
    /// goroutines and its buffers per connection): one cause, one verdict.
    Explained,
}

impl VerdictState {
    pub const ALL: [VerdictState; 6] = [
        VerdictState::Suspected,
        VerdictState::NoLeak,
        VerdictState::Inconclusive,
        VerdictState::WarmingUp,
        VerdictState::Stale,
        VerdictState::Explained,
    ];

    /// The `state` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictState::Suspected => "suspected",
            VerdictState::NoLeak => "no_leak",
            VerdictState::Inconclusive => "inconclusive",
            VerdictState::WarmingUp => "warming_up",
            VerdictState::Stale => "stale",
            VerdictState::Explained => "explained",
        }
    }

    /// How people read it: `LEAK SUSPECTED`, `no leak`, `inconclusive`...
    pub fn words(self) -> &'static str {
        match self {
            VerdictState::Suspected => "LEAK SUSPECTED",
            VerdictState::NoLeak => "no leak",
            VerdictState::Inconclusive => "inconclusive",
            VerdictState::WarmingUp => "warming up",
            VerdictState::Stale => "stale",
            VerdictState::Explained => "explained by another leak",
        }
    }
}

/// The verdict for one kind.
#[derive(Debug, Clone, PartialEq)]
pub struct KindVerdict {
    pub kind: LeakKind,
    /// 0..1; >= 0.5 exactly when `suspected`.
    pub score: f64,
    pub suspected: bool,
    pub state: VerdictState,
    /// Another leak this one is a consequence of (a connection leak grows goroutines).
    pub explained_by: Option<LeakKind>,
    /// Plain sentences for the landing page: slope, monotonicity, culprit, or why not.
    pub reasons: Vec<String>,
}

/// The verdict for every kind, in [`LeakKind::ALL`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict(ByKind<KindVerdict>);

impl Verdict {
    /// The verdict of `judge(kind)` for every kind.
    pub fn from_fn(mut judge: impl FnMut(LeakKind) -> KindVerdict) -> Self {
        Verdict(ByKind::from_fn(|kind| {
            let v = judge(kind);
            debug_assert_eq!(v.kind, kind, "a verdict filed under another kind");
            v
        }))
    }

    pub fn get(&self, kind: LeakKind) -> &KindVerdict {
        &self.0[kind]
    }

    pub fn get_mut(&mut self, kind: LeakKind) -> &mut KindVerdict {
        &mut self.0[kind]
    }

    /// Every kind's verdict, in [`LeakKind::ALL`] order.
    pub fn kinds(&self) -> &[KindVerdict] {
        self.0.values()
    }

    pub fn any_suspected(&self) -> bool {
        self.kinds().iter().any(|k| k.suspected)
    }

    /// The label values of the kinds suspected.
    pub fn suspected_kinds(&self) -> Vec<&'static str> {
        self.kinds()
            .iter()
            .filter(|k| k.suspected)
            .map(|k| k.kind.as_str())
            .collect()
    }

    /// The first kind that cannot be judged yet — growth still inside the process's
    /// start-up grace, or a heap that grew between too few GC cycles — which every view
    /// must show as such, never as "no leak".
    pub fn undecided(&self) -> Option<&KindVerdict> {
        self.kinds().iter().find(|k| {
            k.state == VerdictState::WarmingUp
                || (k.kind.spec().inconclusive_is_undecided
                    && k.state == VerdictState::Inconclusive)
        })
    }

    /// No verdict from old samples: the target is down or its process is gone.
    pub fn mark_stale(&mut self, why: &str) {
        *self = Verdict::from_fn(|kind| {
            KindVerdict::new(kind, VerdictState::Stale, 0.0, vec![why.to_string()])
        });
    }
}

impl KindVerdict {
    pub fn new(kind: LeakKind, state: VerdictState, score: f64, reasons: Vec<String>) -> Self {
        KindVerdict {
            kind,
            score,
            suspected: state == VerdictState::Suspected,
            state,
            explained_by: None,
            reasons,
        }
    }

    /// Makes this kind a certain leak (score 1) for `why` (the runtime's proof, an OOM
    /// kill after growth), keeping the other reasons.
    pub fn certain(&mut self, why: String) {
        self.score = 1.0;
        self.suspected = true;
        self.state = VerdictState::Suspected;
        self.reasons.insert(0, why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_indexed_in_their_table_order() {
        for (i, k) in LeakKind::ALL.into_iter().enumerate() {
            assert_eq!(k.index(), i, "{k:?}");
        }
        let labels: Vec<&str> = LeakKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(labels, ["heap", "goroutine", "http_connections"]);
        let by = ByKind::from_fn(LeakKind::as_str);
        for k in LeakKind::ALL {
            assert_eq!(by[k], k.as_str());
        }
    }

    #[test]
    fn every_kind_has_its_own_floor_keys_and_alert() {
        let t = Thresholds::default();
        for k in LeakKind::ALL {
            let s = k.spec();
            for key in s.floor_keys {
                assert!(key.starts_with(s.label), "{k:?}: {key}");
            }
            assert!((s.floors)(&t).per_hour > 0.0, "{k:?}");
            assert_eq!(s.runbook_anchor, s.alert.to_lowercase(), "{k:?}");
        }
    }
}
