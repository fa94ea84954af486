//! Go symbol helpers: the package a function belongs to, which frame of an
//! allocation stack is the "allocation site" worth blaming, and which frames serve
//! profiles (the cost of being watched).
//!
//! Go prints functions as `IMPORT/PATH.Name`, `PATH.(*Type).Method`,
//! `PATH.Type[...].Method`, `PATH.outer.func1`, `PATH.glob..func1`. The package is
//! everything up to the first `.` after the last `/` of the import path; the only
//! trap is a last path element that itself holds a dot (`gopkg.in/yaml.v3`), handled
//! below.

use super::stacks::Name;

/// The import path of the package a Go function belongs to.
///
/// `net/http.(*persistConn).readLoop` -> `net/http`; `main.newSession` -> `main`;
/// `gopkg.in/yaml.v3.(*decoder).unmarshal` -> `gopkg.in/yaml.v3`. A name with no `.`
/// (an unsymbolized `0x4797a1`) is returned whole.
pub fn package_of(func: &str) -> &str {
    // A `/` inside a receiver or type arguments is not part of the import path.
    let path_part_end = func.find(['(', '[']).unwrap_or(func.len());
    let last_slash = func
        .get(..path_part_end)
        .and_then(|p| p.rfind('/'))
        .map_or(0, |i| i + 1);
    let Some(rest) = func.get(last_slash..) else {
        return func;
    };
    let Some(dot) = rest.find('.') else {
        return func;
    };
    let mut end = last_slash + dot;
    // gopkg.in-style major versions (`yaml.v3`) put a dot in the last path element.
    // Only for import paths with a `/`: `main.v2` is function v2 of package main.
    if last_slash > 0 {
        let after = rest.get(dot + 1..).unwrap_or("");
        let elem_len = after.find('.').unwrap_or(after.len());
        let elem = after.get(..elem_len).unwrap_or("");
        let is_major_version = elem.len() >= 2
            && elem.starts_with('v')
            && elem.bytes().skip(1).all(|b| b.is_ascii_digit());
        if is_major_version && elem_len < after.len() {
            end += 1 + elem_len;
        }
    }
    func.get(..end).unwrap_or(func)
}

/// Prefixes of functions that allocate on behalf of their caller: the runtime
/// (`runtime.mallocgc`, `runtime.makeslice`, `runtime.growslice`, map growth), reflection,
/// and the standard containers, formatters and converters (`bytes.growSlice`,
/// `strings.(*Builder).grow`, `strconv.Itoa`, `slices.Grow[...]`, `maps.Clone`,
/// `fmt.Sprintf`, `sync.(*Pool).Get`, `sort`, `errors.New`, `io.ReadAll`, JSON/base64/hex
/// decoding, `internal/*` packages the standard library uses for all of these).
/// A leak is never *their* fault: the caller holds on to what they return, so the
/// allocation site is the first frame outside them.
///
/// Deliberately **not** here: `net/http`, `net/`, `crypto/`, `database/sql`. Those
/// packages own long-lived state themselves: when a response body is never closed, the
/// connection's `bufio.NewReaderSize` buffers are allocated from
/// `net/http.(*Transport).dialConn`, and the site should say `net/http`, the package whose
/// objects are leaking, not the caller's `main.fetch` several frames up (the caller shows
/// up in the goroutine profile instead).
pub const DEFAULT_ALLOC_HELPERS: &[&str] = &[
    "runtime.",
    "reflect.",
    "internal/",
    "bytes.",
    "strings.",
    "strconv.",
    "slices.",
    "maps.",
    "bufio.",
    "fmt.",
    "sync.",
    "sort.",
    "errors.",
    "io.",
    "unicode/",
    "unicode.",
    "encoding/binary.",
    "encoding/json.",
    "encoding/base64.",
    "encoding/hex.",
];

/// The frame to blame for an allocation, as its position in the stack (leaf first): the
/// first frame that is not an allocation helper (a function matching one of `helpers` as
/// a prefix). When every frame is a helper (a runtime-internal allocation) the leaf
/// itself; `None` for an empty stack.
pub fn allocation_site<'a>(
    stack: impl IntoIterator<Item = Name<'a>>,
    helpers: &[String],
) -> Option<usize> {
    let mut frames = 0;
    for (i, f) in stack.into_iter().enumerate() {
        if !helpers.iter().any(|h| f.starts_with(h)) {
            return Some(i);
        }
        frames += 1;
    }
    (frames > 0).then_some(0)
}

/// [`DEFAULT_ALLOC_HELPERS`] as owned strings, the form config and [`allocation_site`] take.
pub fn default_alloc_helpers() -> Vec<String> {
    DEFAULT_ALLOC_HELPERS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Package prefixes of the frames that answer profile requests: a stack through one of
/// them allocated while serving `/debug/pprof/*` (leakwatch's polls, or any other
/// profiler's), not for the service's own work.
pub const PROFILE_SERVING: [&str; 2] = ["net/http/pprof.", "runtime/pprof."];

/// The same as a regex for `leakwatch top --ignore` and `go tool pprof -ignore`.
pub const PROFILE_SERVING_REGEX: &str = "^(net/http/pprof|runtime/pprof)\\.";

/// Whether `func` is one of the frames that serve profiles ([`PROFILE_SERVING`]).
pub fn serves_profiles(func: &str) -> bool {
    PROFILE_SERVING.iter().any(|p| func.starts_with(p))
}

/// Whether a stack goes through a frame that serves profiles: what it allocated
/// (`compress/flate` buffers of the gzipped profile, the profile builder) is the cost
/// of being watched, not the service's own work.
pub fn stack_serves_profiles<'a>(stack: impl IntoIterator<Item = Name<'a>>) -> bool {
    stack.into_iter().any(|f| f.with_text(serves_profiles))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_of_table() {
        let cases = [
            ("net/http.(*persistConn).readLoop", "net/http"),
            (
                "github.com/acme/orders/cache.(*Store).Put",
                "github.com/acme/orders/cache",
            ),
            ("main.newSession", "main"),
            ("main.startBlocked.func1", "main"),
            ("internal/sync.(*HashTrieMap[...]).Load", "internal/sync"),
            ("fmt.glob..func1", "fmt"),
            ("slices.Grow[...]", "slices"),
            (
                "encoding/json.typeEncoder.OnceValue[...].func3",
                "encoding/json",
            ),
            ("gopkg.in/yaml.v3.(*decoder).unmarshal", "gopkg.in/yaml.v3"),
            ("gopkg.in/yaml.v3.Unmarshal", "gopkg.in/yaml.v3"),
            ("gopkg.in/yaml%2ev3.Unmarshal", "gopkg.in/yaml%2ev3"),
            ("github.com/x/y/v2.New", "github.com/x/y/v2"),
            ("main.v2", "main"),
            ("runtime.malg", "runtime"),
            ("runtime/pprof.StartCPUProfile", "runtime/pprof"),
            ("0x4797a1", "0x4797a1"),
            ("", ""),
            ("/", "/"),
            ("a/b", "a/b"),
            ("main.(*T[a/b.C]).M", "main"),
        ];
        for (func, want) in cases {
            assert_eq!(package_of(func), want, "{func}");
        }
    }

    #[test]
    fn allocation_site_table() {
        let helpers = default_alloc_helpers();
        let s = |v: &[&'static str]| v.to_vec();
        let site = |stack: &[&'static str], helpers: &[String]| {
            allocation_site(stack.iter().map(|f| Name::from_text(f)), helpers).map(|i| stack[i])
        };
        let cases: &[(Vec<&str>, Option<&str>)] = &[
            (
                s(&["main.newSession", "main.cacheSession"]),
                Some("main.newSession"),
            ),
            (
                s(&["bytes.growSlice", "bytes.(*Buffer).grow", "main.render"]),
                Some("main.render"),
            ),
            (
                s(&[
                    "bufio.NewReaderSize",
                    "net/http.(*Transport).dialConn",
                    "main.fetch",
                ]),
                Some("net/http.(*Transport).dialConn"),
            ),
            (
                s(&["runtime.malg", "runtime.newproc1", "runtime.systemstack"]),
                Some("runtime.malg"),
            ),
            (s(&["0x4797a1", "main.f"]), Some("0x4797a1")),
            (
                s(&["internal/sync.newIndirectNode[...]", "unique.Make[...]"]),
                Some("unique.Make[...]"),
            ),
            (Vec::new(), None),
        ];
        for (stack, want) in cases {
            assert_eq!(site(stack, &helpers), *want, "{stack:?}");
        }
        // With no helpers, the leaf is the site.
        assert_eq!(
            site(&["runtime.makeslice", "main.f"], &[]),
            Some("runtime.makeslice")
        );
    }
}
