//! What a dump is of and why it was taken: the profile types leakwatch dumps, the
//! reasons in dump names and the `reason` label, and the retention pool of each reason.

use serde::Serialize;

/// The profiles leakwatch dumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileType {
    Heap,
    Goroutine,
}

impl ProfileType {
    pub const ALL: [ProfileType; 2] = [ProfileType::Heap, ProfileType::Goroutine];

    pub fn as_str(self) -> &'static str {
        match self {
            ProfileType::Heap => "heap",
            ProfileType::Goroutine => "goroutine",
        }
    }

    /// The endpoint serving the binary profile.
    pub fn path(self) -> &'static str {
        match self {
            ProfileType::Heap => "/debug/pprof/heap",
            ProfileType::Goroutine => "/debug/pprof/goroutine",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ProfileType::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// Why a dump was taken (the `reason` label and the last part of the file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    Schedule,
    Suspect,
    Manual,
    /// First contact (the exporter) or a watch's first sample (`leakwatch watch`).
    Baseline,
    /// The end of a `leakwatch watch` run, compared with its `baseline`.
    Final,
    /// Memory about to run out (time to OOM short, or usage near the limit): the
    /// profile from just before an OOM kill, once per episode and cooldown.
    #[serde(rename = "pre_oom")]
    PreOom,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::Schedule,
        Reason::Suspect,
        Reason::Manual,
        Reason::Baseline,
        Reason::Final,
        Reason::PreOom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Schedule => "schedule",
            Reason::Suspect => "suspect",
            Reason::Manual => "manual",
            Reason::Baseline => "baseline",
            Reason::Final => "final",
            Reason::PreOom => "pre_oom",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The retention pool dumps of this reason are pruned in.
    pub fn pool(self) -> Pool {
        match self {
            Reason::Schedule | Reason::Suspect | Reason::Baseline | Reason::Final => Pool::Evidence,
            Reason::Manual => Pool::Manual,
            Reason::PreOom => Pool::PreOom,
        }
    }
}

/// The retention pools of one target and profile type: each is pruned under the
/// `retention` limits on its own, so dumps of one pool never push out another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// Scheduled, suspect and baseline dumps (and `watch`'s baseline and final).
    Evidence,
    /// Requested from outside (`POST /api/v1/dump`).
    Manual,
    /// Taken when memory was about to run out: a target bouncing near its limit could
    /// otherwise flush the evidence of the leak out.
    PreOom,
}
