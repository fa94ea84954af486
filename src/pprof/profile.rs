//! The format-independent profile types every parser fills and the rest of leakwatch
//! consumes: a heap profile of estimated values over interned stacks (and its builder),
//! a goroutine profile, a stack frame.

use super::stacks::{Name, Stack, StackRef, Stacks, StacksBuilder, Sym};

/// One stack frame as printed by the Go runtime (`#\t0xPC\tFUNC+0xOFF\tFILE:LINE`).
/// `function`, `file` and `line` are absent for a PC with no symbol.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    pub pc: u64,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// A heap profile with **estimated** (scaled) values, whatever format it came from:
/// the text's raw samples are scaled the way pprof does, the proto is already scaled.
/// This is the type analysis, diff and metrics use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeapProfile {
    /// Bytes between samples (`runtime.MemProfileRate`; `@ heap/N` is 2x this). 0 = profiling off.
    pub sampling_period: u64,
    /// The names and stacks the samples refer to.
    pub stacks: Stacks,
    pub samples: Vec<HeapSample>,
}

/// One allocation site (a stack) with estimated totals.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HeapSample {
    /// Function names, leaf (allocation site) first, in the profile's [`Stacks`]
    /// ([`HeapProfile::stack`]). Unsymbolized PCs appear as `0x...`.
    pub stack: StackRef,
    pub inuse_objects: u64,
    pub inuse_bytes: u64,
    pub alloc_objects: u64,
    pub alloc_bytes: u64,
}

/// The four values of a sample, or their sums over every sample of a [`HeapProfile`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapValues {
    pub inuse_objects: u64,
    pub inuse_bytes: u64,
    pub alloc_objects: u64,
    pub alloc_bytes: u64,
}

/// Sums over every sample of a [`HeapProfile`].
pub type HeapTotals = HeapValues;

impl HeapSample {
    pub fn values(&self) -> HeapValues {
        HeapValues {
            inuse_objects: self.inuse_objects,
            inuse_bytes: self.inuse_bytes,
            alloc_objects: self.alloc_objects,
            alloc_bytes: self.alloc_bytes,
        }
    }
}

impl HeapProfile {
    /// A sample's stack.
    pub fn stack(&self, s: &HeapSample) -> Stack<'_> {
        self.stacks.get(s.stack)
    }

    pub fn totals(&self) -> HeapTotals {
        let mut t = HeapTotals::default();
        for s in &self.samples {
            t.inuse_objects = t.inuse_objects.saturating_add(s.inuse_objects);
            t.inuse_bytes = t.inuse_bytes.saturating_add(s.inuse_bytes);
            t.alloc_objects = t.alloc_objects.saturating_add(s.alloc_objects);
            t.alloc_bytes = t.alloc_bytes.saturating_add(s.alloc_bytes);
        }
        t
    }

    /// A profile of `samples` as given (stacks named as pprof prints them, leaf first,
    /// `0x...` for a PC): for simulations, tests and benchmarks.
    pub fn from_samples<I, S, N>(sampling_period: u64, samples: I) -> crate::Result<HeapProfile>
    where
        I: IntoIterator<Item = (S, HeapValues)>,
        S: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        let mut b = HeapProfileBuilder::new(sampling_period);
        for (stack, values) in samples {
            b.push(stack, values)?;
        }
        Ok(b.finish())
    }
}

/// Builds a [`HeapProfile`] one sample at a time (each pushed as given, never merged).
pub struct HeapProfileBuilder {
    sampling_period: u64,
    stacks: StacksBuilder,
    samples: Vec<HeapSample>,
    syms: Vec<Sym>,
}

impl HeapProfileBuilder {
    pub fn new(sampling_period: u64) -> HeapProfileBuilder {
        HeapProfileBuilder {
            sampling_period,
            stacks: StacksBuilder::new(),
            samples: Vec::new(),
            syms: Vec::new(),
        }
    }

    /// The frame of `name` in this profile's table.
    pub fn frame(&mut self, name: Name<'_>) -> crate::Result<Sym> {
        match name {
            Name::Func(s) => self.stacks.intern(s),
            Name::Pc(pc) => self.stacks.pc(pc),
        }
    }

    /// Appends a sample whose stack is `syms` (from [`HeapProfileBuilder::frame`]).
    pub fn push_syms(&mut self, syms: &[Sym], v: HeapValues) -> crate::Result<()> {
        let stack = self.stacks.push(syms)?;
        self.samples.push(HeapSample {
            stack,
            inuse_objects: v.inuse_objects,
            inuse_bytes: v.inuse_bytes,
            alloc_objects: v.alloc_objects,
            alloc_bytes: v.alloc_bytes,
        });
        Ok(())
    }

    /// Appends a sample whose stack is named as pprof prints it, leaf first.
    pub fn push<S: AsRef<str>>(
        &mut self,
        names: impl IntoIterator<Item = S>,
        v: HeapValues,
    ) -> crate::Result<()> {
        let mut syms = std::mem::take(&mut self.syms);
        syms.clear();
        for n in names {
            syms.push(self.stacks.intern(n.as_ref())?);
        }
        let pushed = self.push_syms(&syms, v);
        self.syms = syms;
        pushed
    }

    pub fn finish(mut self) -> HeapProfile {
        self.samples.shrink_to_fit();
        HeapProfile {
            sampling_period: self.sampling_period,
            stacks: self.stacks.finish(),
            samples: self.samples,
        }
    }
}

/// A goroutine profile, format-independent: one record per distinct (stack, labels).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GoroutineProfile {
    /// The `total N` of the header (text) or the sum of counts (proto).
    pub total: u64,
    pub records: Vec<GoroutineRecord>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GoroutineRecord {
    pub count: u64,
    /// Function names, innermost first. The text form hides leading `runtime.*`
    /// frames (e.g. `runtime.chanrecv1`); the proto form keeps them.
    pub stack: Vec<String>,
    /// pprof labels (`# labels: {...}`), in the order printed.
    pub labels: Vec<(String, String)>,
}
