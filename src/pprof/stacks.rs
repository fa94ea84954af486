//! The stacks of one heap profile, interned: each function name is stored once, a frame
//! is one word (a name of the table, or an unsymbolized PC kept as its number) and a
//! stack is a range of frames. A profile then costs a few words per distinct stack
//! whatever the record density of its body; a `Vec<String>` per stack cost ~20x the
//! body on one-frame records.
//!
//! Names compare, hash and sort as the text pprof prints (`0x...` for a PC), so stacks of
//! two profiles (each with its own table) are compared by [`Name`], and stacks of one
//! profile by their [`Sym`]s, which is cheaper.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

use foldhash::fast::RandomState;

use crate::{Error, Result};

/// The top bit of a [`Sym`]: set for a name of the table, clear for a PC.
const NAME_BIT: u64 = 1 << 63;

/// One frame of a stack, in one word: a function name of its profile's table, or an
/// unsymbolized PC. Only meaningful with the [`Stacks`] it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sym(u64);

impl Sym {
    /// No frame (where an empty stack has its site): never a frame of any table.
    pub const NONE: Sym = Sym(u64::MAX);

    /// The word itself (an order for sorting frames of one table).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// A frame's name as pprof prints it: a function, or `0x...` for a PC with no symbol.
///
/// Two names are equal exactly when their texts are: the canonical text of a PC
/// (`format!("{pc:#x}")`, PC under 2^63) is only ever held as [`Name::Pc`]; make names
/// from text with [`Name::from_text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Name<'a> {
    Func(&'a str),
    Pc(u64),
}

/// The PC whose `{:#x}` text is `s`, if `s` is that canonical text (and the PC fits a [`Sym`]).
fn canonical_pc(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x")?;
    let ok = !digits.is_empty() // the text `{:#x}` writes, nothing else
        && digits.len() <= 16
        && (digits == "0" || !digits.starts_with('0'))
        && digits
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !ok {
        return None;
    }
    let pc = u64::from_str_radix(digits, 16).ok()?;
    (pc & NAME_BIT == 0).then_some(pc)
}

impl<'a> Name<'a> {
    /// The name printed as `s`: a PC for the `0x...` text of one, else a function.
    pub fn from_text(s: &'a str) -> Name<'a> {
        match canonical_pc(s) {
            Some(pc) => Name::Pc(pc),
            None => Name::Func(s),
        }
    }

    /// Calls `f` with the text, formatting a PC on the stack (no allocation).
    pub fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match *self {
            Name::Func(s) => f(s),
            Name::Pc(pc) => {
                let mut buf = [0u8; 18];
                buf[0] = b'0';
                buf[1] = b'x';
                let digits = (64 - pc.leading_zeros() as usize).div_ceil(4).max(1);
                for i in 0..digits {
                    let d = ((pc >> (4 * (digits - 1 - i))) & 0xf) as usize;
                    buf[2 + i] = b"0123456789abcdef"[d];
                }
                f(std::str::from_utf8(&buf[..2 + digits]).unwrap_or("0x?"))
            }
        }
    }

    pub fn starts_with(&self, prefix: &str) -> bool {
        self.with_text(|t| t.starts_with(prefix))
    }
}

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Name::Func(s) => f.write_str(s),
            Name::Pc(pc) => write!(f, "{pc:#x}"),
        }
    }
}

impl Ord for Name<'_> {
    /// By text, as the old `String` stacks sorted.
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Name::Func(a), Name::Func(b)) => a.cmp(b),
            _ => self.with_text(|a| other.with_text(|b| a.cmp(b))),
        }
    }
}

impl PartialOrd for Name<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Where a sample's stack is in its profile's [`Stacks`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StackRef {
    start: u32,
    len: u32,
}

/// The names and stacks of one profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stacks {
    /// Every function name, one after the other.
    text: String,
    /// Name `i` is `text[ends[i - 1]..ends[i]]` (from 0 for the first).
    ends: Vec<u32>,
    /// Every stack's frames, one stack after the other.
    frames: Vec<Sym>,
}

impl Stacks {
    /// Bytes the table holds (its names, their ends and every stack's frames).
    pub fn held_bytes(&self) -> u64 {
        let n = self.text.capacity()
            + self.ends.capacity() * std::mem::size_of::<u32>()
            + self.frames.capacity() * std::mem::size_of::<Sym>();
        n as u64
    }

    pub fn get(&self, r: StackRef) -> Stack<'_> {
        let start = r.start as usize;
        let syms = self
            .frames
            .get(start..start.saturating_add(r.len as usize))
            .unwrap_or(&[]);
        Stack { table: self, syms }
    }

    pub fn name(&self, s: Sym) -> Name<'_> {
        if s.0 & NAME_BIT == 0 {
            return Name::Pc(s.0);
        }
        let i = (s.0 & !NAME_BIT) as usize;
        let start = match i.checked_sub(1) {
            Some(p) => self.ends.get(p).map_or(0, |e| *e as usize),
            None => 0,
        };
        let end = self.ends.get(i).map_or(start, |e| *e as usize);
        Name::Func(self.text.get(start..end).unwrap_or(""))
    }
}

/// One stack, leaf first, borrowing its table.
#[derive(Clone, Copy)]
pub struct Stack<'a> {
    table: &'a Stacks,
    syms: &'a [Sym],
}

impl<'a> Stack<'a> {
    pub fn len(&self) -> usize {
        self.syms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    /// The frames, for comparing stacks of the same profile.
    pub fn syms(&self) -> &'a [Sym] {
        self.syms
    }

    pub fn names(&self) -> impl DoubleEndedIterator<Item = Name<'a>> + ExactSizeIterator + 'a {
        let table = self.table;
        self.syms.iter().map(move |s| table.name(*s))
    }

    /// The allocation site's frame (the leaf).
    pub fn leaf(&self) -> Option<Name<'a>> {
        self.names().next()
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.names().map(|n| n.to_string()).collect()
    }
}

impl PartialEq for Stack<'_> {
    /// By names: stacks of different tables compare by what they print.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.names().eq(other.names())
    }
}

impl Eq for Stack<'_> {}

impl Hash for Stack<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.len().hash(state);
        for n in self.names() {
            n.hash(state);
        }
    }
}

impl fmt::Debug for Stack<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// Builds a [`Stacks`]: interns names (by text, through a randomly seeded index dropped
/// at [`StacksBuilder::finish`]) and appends stacks.
#[derive(Default)]
pub struct StacksBuilder {
    table: Stacks,
    index: hashbrown::HashTable<u32>,
    // Randomly seeded (per process and per parse): a target cannot choose names that
    // collide. foldhash, not SipHash: every frame of a body is hashed.
    hasher: RandomState,
}

fn too_large(what: &str) -> Error {
    Error::Proto(format!(
        "profile too large to index: more than 4 GiB of {what}"
    ))
}

impl StacksBuilder {
    pub fn new() -> StacksBuilder {
        StacksBuilder::default()
    }

    /// The frame printed as `text`: a function name, or a PC for its `0x...` text.
    pub fn intern(&mut self, text: &str) -> Result<Sym> {
        if text.starts_with("0x")
            && let Some(pc) = canonical_pc(text)
        {
            return Ok(Sym(pc));
        }
        let StacksBuilder {
            table,
            index,
            hasher,
        } = self;
        let hash = hasher.hash_one(text);
        let eq = |i: &u32| table.name(Sym(NAME_BIT | u64::from(*i))) == Name::Func(text);
        if let Some(&i) = index.find(hash, eq) {
            return Ok(Sym(NAME_BIT | u64::from(i)));
        }
        let id = u32::try_from(table.ends.len()).map_err(|_| too_large("names"))?;
        let end = table
            .text
            .len()
            .checked_add(text.len())
            .and_then(|e| u32::try_from(e).ok())
            .ok_or_else(|| too_large("names"))?;
        table.text.push_str(text);
        table.ends.push(end);
        let rehash = |i: &u32| match table.name(Sym(NAME_BIT | u64::from(*i))) {
            Name::Func(s) => hasher.hash_one(s),
            Name::Pc(_) => 0,
        };
        index.insert_unique(hash, id, rehash);
        Ok(Sym(NAME_BIT | u64::from(id)))
    }

    /// The frame of an unsymbolized PC.
    pub fn pc(&mut self, pc: u64) -> Result<Sym> {
        if pc & NAME_BIT == 0 {
            return Ok(Sym(pc));
        }
        self.intern(&format!("{pc:#x}"))
    }

    /// Appends a stack.
    pub fn push(&mut self, syms: &[Sym]) -> Result<StackRef> {
        let start = u32::try_from(self.table.frames.len()).map_err(|_| too_large("frames"))?;
        let len = u32::try_from(syms.len()).map_err(|_| too_large("frames"))?;
        start.checked_add(len).ok_or_else(|| too_large("frames"))?;
        self.table.frames.extend_from_slice(syms);
        Ok(StackRef { start, len })
    }

    /// Room for `n` more frames.
    pub fn reserve_frames(&mut self, n: usize) {
        self.table.frames.reserve(n);
    }

    /// The frames of a stack pushed earlier.
    pub fn frames(&self, r: StackRef) -> &[Sym] {
        self.table.get(r).syms
    }

    pub fn finish(self) -> Stacks {
        let mut t = self.table;
        // Big vectors are their own mappings: shrinking them remaps, it does not copy.
        t.text.shrink_to_fit();
        t.ends.shrink_to_fit();
        t.frames.shrink_to_fit();
        t
    }
}

/// A hash of a stack's frames (for indexes of the stacks of one table).
pub fn hash_syms(hasher: &RandomState, syms: &[Sym]) -> u64 {
    hasher.hash_one(syms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_their_text() {
        let cases = [
            ("main.f", Name::Func("main.f")),
            ("0x4a1b2c", Name::Pc(0x4a1b2c)),
            ("0x0", Name::Pc(0)),
            // Not the canonical text of a PC: kept as a function name.
            ("0x00ab", Name::Func("0x00ab")),
            ("0xAB", Name::Func("0xAB")),
            ("0x", Name::Func("0x")),
            ("0x1g", Name::Func("0x1g")),
            ("0x8000000000000000", Name::Func("0x8000000000000000")),
            ("0x10000000000000000", Name::Func("0x10000000000000000")),
        ];
        let mut b = StacksBuilder::new();
        let syms: Vec<Sym> = cases.iter().map(|(t, _)| b.intern(t).unwrap()).collect();
        let big = b.pc(u64::MAX).unwrap();
        let table = b.finish();
        for ((text, want), sym) in cases.iter().zip(syms) {
            assert_eq!(Name::from_text(text), *want, "{text}");
            assert_eq!(table.name(sym), *want, "{text}");
            assert_eq!(table.name(sym).to_string(), *text, "{text}");
            assert_eq!(want.with_text(str::to_string), *text, "{text}");
        }
        // A PC over 2^63 is kept as text, and still prints as itself.
        assert_eq!(table.name(big), Name::Func("0xffffffffffffffff"));
        for pc in [0, 1, 0xf, 0x10, 0x4a1b2c, u64::MAX >> 1] {
            let n = Name::Pc(pc);
            assert_eq!(n.with_text(str::to_string), format!("{pc:#x}"));
            assert_eq!(Name::from_text(&format!("{pc:#x}")), n);
        }
    }

    #[test]
    fn names_are_interned_once_and_stacks_compare_across_tables() {
        let mut a = StacksBuilder::new();
        let f = a.intern("main.f").unwrap();
        let g = a.intern("main.g").unwrap();
        assert_eq!(a.intern("main.f").unwrap(), f);
        let r1 = a.push(&[f, g]).unwrap();
        let pc = a.pc(0x10).unwrap();
        let r2 = a.push(&[pc, f]).unwrap();
        let ta = a.finish();
        assert_eq!(ta.text, "main.fmain.g");

        let mut b = StacksBuilder::new();
        let g2 = b.intern("main.g").unwrap();
        let f2 = b.intern("main.f").unwrap();
        let r3 = b.push(&[f2, g2]).unwrap();
        let tb = b.finish();
        assert_ne!(f, f2, "ids are per table");
        assert_eq!(ta.get(r1), tb.get(r3), "same names, different tables");
        assert_ne!(ta.get(r1), ta.get(r2));
        assert_eq!(ta.get(r2).to_strings(), ["0x10", "main.f"]);
        assert_eq!(ta.get(r2).leaf(), Some(Name::Pc(0x10)));
        assert_eq!(
            format!("{:?}", ta.get(r1)),
            "[Func(\"main.f\"), Func(\"main.g\")]"
        );
        assert!(ta.get(StackRef::default()).is_empty());
        assert!(
            ta.get(StackRef { start: 99, len: 3 }).is_empty(),
            "out of range"
        );
    }

    #[test]
    fn names_sort_by_text() {
        let mut v = [
            Name::Func("main.f"),
            Name::Pc(0x2),
            Name::Pc(0x1f),
            Name::Func("0x1g"),
            Name::Func("a"),
        ];
        v.sort();
        let texts: Vec<String> = v.iter().map(|n| n.to_string()).collect();
        let mut want = texts.clone();
        want.sort();
        assert_eq!(texts, want);
        assert!(Name::Pc(0x4797a1).starts_with("0x47"));
        assert!(!Name::Pc(0x4797a1).starts_with("runtime."));
    }
}
