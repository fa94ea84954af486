//! What a verdict says: the leak kinds, and for each its state (suspected, no leak,
//! inconclusive, warming up, stale), score and plain-sentence reasons. The rule that
//! fills them in is [`crate::analysis::verdict`].

/// What leaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakKind {
    Heap,
    Goroutine,
    HttpConnections,
}

impl LeakKind {
    pub const ALL: [LeakKind; 3] = [
        LeakKind::Heap,
        LeakKind::Goroutine,
        LeakKind::HttpConnections,
    ];

    /// The `kind` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            LeakKind::Heap => "heap",
            LeakKind::Goroutine => "goroutine",
            LeakKind::HttpConnections => "http_connections",
        }
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

/// The verdict for every kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub heap: KindVerdict,
    pub goroutine: KindVerdict,
    pub http_connections: KindVerdict,
}

impl Verdict {
    pub fn kinds(&self) -> [&KindVerdict; 3] {
        [&self.heap, &self.goroutine, &self.http_connections]
    }

    pub fn any_suspected(&self) -> bool {
        self.kinds().iter().any(|k| k.suspected)
    }

    fn kinds_mut(&mut self) -> [&mut KindVerdict; 3] {
        [
            &mut self.heap,
            &mut self.goroutine,
            &mut self.http_connections,
        ]
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
        self.kinds().into_iter().find(|k| {
            k.state == VerdictState::WarmingUp
                || (k.kind == LeakKind::Heap && k.state == VerdictState::Inconclusive)
        })
    }

    /// No verdict from old samples: the target is down or its process is gone.
    pub fn mark_stale(&mut self, why: &str) {
        for k in self.kinds_mut() {
            *k = KindVerdict::new(k.kind, VerdictState::Stale, 0.0, vec![why.to_string()]);
        }
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
