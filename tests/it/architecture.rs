//! The one-way architecture, checked on the source text: which module may import
//! which, and how big a file may grow. The README's "Architecture" section states the
//! same rules; this test keeps them true.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The top-level module a file belongs to: `src/analysis/window.rs` -> `analysis`,
/// `src/config.rs` -> `config`; `lib.rs` and `main.rs` are the crate root.
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The text before the file's `#[cfg(test)]` module: what ships.
fn non_test(text: &str) -> &str {
    text.find("\n#[cfg(test)]").map_or(text, |i| &text[..i])
}

/// Top-level modules a file refers to: `crate::x`, and `x` inside `crate::{x, y::z}`.
fn imports(text: &str) -> BTreeSet<String> {
    let path = Regex::new(r"crate::([a-z_][a-z0-9_]*)").unwrap();
    let group = Regex::new(r"crate::\{([^}]*)\}").unwrap();
    let mut out: BTreeSet<String> = path.captures_iter(text).map(|c| c[1].to_string()).collect();
    for c in group.captures_iter(text) {
        for item in c[1].split(',') {
            let first = item.trim().split("::").next().unwrap_or("").trim();
            if first
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_lowercase())
            {
                out.insert(first.to_string());
            }
        }
    }
    out
}

/// A module's path from the crate root: `src/analysis/window.rs` -> `["analysis",
/// "window"]`, `src/http/mod.rs` -> `["http"]`, `src/lib.rs` -> `[]`; `src/main.rs` (the
/// binary, which reaches the library as `leakwatch::`) -> `["main"]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    match (parts.is_empty(), stem) {
        (true, "lib") => {}
        (_, "mod") => {}
        _ => parts.push(stem.to_string()),
    }
    parts
}

/// `a::{b, c::{d, e as f}}` -> `a::b`, `a::c::d`, `a::c::e as f`.
fn expand_use(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let (path, alias) = tree.split_once(" as ").unwrap_or((tree, ""));
        let path: String = path.split_whitespace().collect();
        return vec![match alias.trim() {
            "" => path,
            alias => format!("{path} as {alias}"),
        }];
    };
    let base = tree[..open]
        .trim()
        .trim_end_matches("::")
        .trim()
        .to_string();
    let (mut items, mut depth, mut cur) = (Vec::new(), 0i32, String::new());
    for ch in tree[open + 1..].chars() {
        match ch {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            _ => {}
        }
        if ch == ',' && depth == 0 {
            items.push(std::mem::take(&mut cur));
        } else {
            cur.push(ch);
        }
    }
    items.push(cur);
    items
        .iter()
        .filter(|i| !i.trim().is_empty())
        .flat_map(|i| {
            let i = i.trim();
            let joined = match (base.is_empty(), i) {
                (_, "self") => base.clone(),
                (true, _) => i.to_string(),
                (false, _) => format!("{base}::{i}"),
            };
            expand_use(&joined)
        })
        .collect()
}

/// The crate's files as a module graph: which module each file's shipped code (before
/// its `#[cfg(test)]` module) refers to, with every `pub use` re-export followed to the
/// module that defines the item. A file is a node: `mod.rs` and `lib.rs` included.
struct ModuleGraph {
    modules: BTreeMap<Vec<String>, String>,
    reexports: BTreeMap<Vec<String>, BTreeMap<String, String>>,
}

impl ModuleGraph {
    /// `files`: path under `src/` -> text.
    fn new(files: &BTreeMap<PathBuf, String>) -> Self {
        let reexport = Regex::new(r"\bpub(?:\([a-z]+\))? use ([^;]+);").unwrap();
        let mut modules = BTreeMap::new();
        let mut reexports = BTreeMap::new();
        for (rel, text) in files {
            let m = module_path(rel);
            let shipped = non_test(text).to_string();
            let mut names = BTreeMap::new();
            for c in reexport.captures_iter(&shipped) {
                for item in expand_use(&c[1]) {
                    let (path, alias) = item.split_once(" as ").unwrap_or((&item, ""));
                    let name = match alias.trim() {
                        "" => path.rsplit("::").next().unwrap_or(""),
                        alias => alias,
                    };
                    if name != "*" {
                        names.insert(name.to_string(), path.to_string());
                    }
                }
            }
            reexports.insert(m.clone(), names);
            modules.insert(m, shipped);
        }
        ModuleGraph { modules, reexports }
    }

    /// The module a path written in module `from` refers to, or `None` for paths
    /// outside the crate (std, other crates, locals).
    fn resolve(&self, from: &[String], path: &str, depth: usize) -> Option<Vec<String>> {
        let path = path.split(" as ").next().unwrap_or(path);
        let segs: Vec<&str> = path
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let first = *segs.first()?;
        let (mut base, mut rest): (Vec<String>, &[&str]) = match first {
            "crate" | "leakwatch" => (Vec::new(), &segs[1..]),
            "self" => (from.to_vec(), &segs[1..]),
            "super" => {
                let mut b = from.to_vec();
                let mut i = 0;
                while segs.get(i) == Some(&"super") {
                    b.pop();
                    i += 1;
                }
                (b, &segs[i..])
            }
            child => {
                let mut b = from.to_vec();
                b.push(child.to_string());
                if !self.modules.contains_key(&b) {
                    return None;
                }
                (b, &segs[1..])
            }
        };
        while let Some(next) = rest.first() {
            let mut deeper = base.clone();
            deeper.push(next.to_string());
            if !self.modules.contains_key(&deeper) {
                break;
            }
            base = deeper;
            rest = &rest[1..];
        }
        if let (Some(item), true) = (rest.first(), depth < 8)
            && let Some(target) = self.reexports.get(&base).and_then(|r| r.get(*item))
            && let Some(m) = self.resolve(&base, target, depth + 1)
        {
            return Some(m);
        }
        Some(base)
    }

    /// Every module each module refers to (itself left out).
    fn edges(&self) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
        let use_stmt = Regex::new(r"\buse ([^;]+);").unwrap();
        let inline = Regex::new(
            r"\b((?:crate|super|self|leakwatch)(?:::(?:\{[^;]*?\}|[A-Za-z_][A-Za-z0-9_]*))+)",
        )
        .unwrap();
        let mut out = BTreeMap::new();
        for (m, text) in &self.modules {
            let mut deps = BTreeSet::new();
            let mut paths: Vec<String> = Vec::new();
            let text = text.as_str();
            for c in use_stmt.captures_iter(text) {
                paths.extend(expand_use(&c[1]));
            }
            for c in inline.captures_iter(text) {
                paths.extend(expand_use(&c[1]));
            }
            // A child module named without a prefix (`http::app(...)` in lib.rs).
            for child in self.modules.keys().filter(|k| {
                k.len() == m.len() + 1 && k.starts_with(m) && !(m.is_empty() && k[0] == "main")
            }) {
                let name = child.last().unwrap();
                let bare = Regex::new(&format!(
                    r"(?:^|[^\w:])({name}(?:::[A-Za-z_][A-Za-z0-9_]*)+)"
                ))
                .unwrap();
                paths.extend(bare.captures_iter(text).map(|c| c[1].to_string()));
            }
            for p in paths {
                if let Some(d) = self.resolve(m, &p, 0)
                    && d != *m
                {
                    deps.insert(d);
                }
            }
            out.insert(m.clone(), deps);
        }
        out
    }
}

fn name_of(m: &[String]) -> String {
    if m.is_empty() {
        "lib".to_string()
    } else {
        m.join("/")
    }
}

/// The first import cycle found by a depth-first search, as module names.
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(n, g, &mut Vec::new(), &mut done))
}

fn crate_files() -> BTreeMap<PathBuf, String> {
    rust_files(&src())
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f.strip_prefix(src()).unwrap().to_path_buf(), text)
        })
        .collect()
}

/// The file-level graph, named `analysis/window`, `http` (for `http/mod.rs`), `lib`.
fn file_graph(files: &BTreeMap<PathBuf, String>) -> BTreeMap<String, BTreeSet<String>> {
    ModuleGraph::new(files)
        .edges()
        .into_iter()
        .map(|(m, d)| (name_of(&m), d.iter().map(|x| name_of(x)).collect()))
        .collect()
}

/// The folder-level graph: every file counts as its top-level module (`lib` for the
/// crate root).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let top = |n: &str| n.split('/').next().unwrap().to_string();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, deps) in file_graph(&crate_files()) {
        let entry = g.entry(top(&m)).or_default();
        for d in deps {
            if top(&d) != top(&m) {
                entry.insert(top(&d));
            }
        }
    }
    g
}

/// Source text without its comments, and the contents of its string literals (normal,
/// byte and raw), read with a small lexer: a `//` inside a string is not a comment, a
/// `"` inside a char literal or a comment opens no string.
fn lex(text: &str) -> (String, Vec<String>) {
    let raw = Regex::new(r#"^b?r(#*)""#).unwrap();
    let (mut code, mut literals) = (String::with_capacity(text.len()), Vec::new());
    let mut i = 0;
    let mut prev = ' ';
    while i < text.len() {
        let rest = &text[i..];
        let c = rest.chars().next().unwrap();
        // Where the token starting here ends, and the literal's contents if it is one.
        let (len, literal) = if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
            continue;
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
            continue;
        } else if let Some(m) = raw
            .captures(rest)
            .filter(|_| !(prev.is_alphanumeric() || prev == '_'))
        {
            let close = format!("\"{}", &m[1]);
            let start = m[0].len();
            let end = rest[start..].find(&close).map_or(rest.len(), |e| start + e);
            ((end + close.len()).min(rest.len()), Some(&rest[start..end]))
        } else if c == '"' {
            let b = rest.as_bytes();
            let mut j = 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let j = j.min(b.len());
            ((j + 1).min(b.len()), Some(&rest[1..j]))
        } else if c == '\'' {
            // A char literal ('"', '\''); a lifetime ('a) has no closing quote.
            let mut chars = rest[1..].char_indices();
            match (chars.next(), chars.next()) {
                (Some((_, '\\')), _) => (rest[2..].find('\'').map_or(rest.len(), |e| e + 3), None),
                (Some(_), Some((k, '\''))) => (k + 2, None),
                _ => (1, None),
            }
        } else {
            (c.len_utf8(), None)
        };
        literals.extend(literal.map(str::to_string));
        code.push_str(&rest[..len]);
        prev = rest[..len].chars().last().unwrap_or(' ');
        i += len;
    }
    (code, literals)
}

#[test]
fn the_lexer_tells_strings_from_comments() {
    let (code, lits) = lex(
        "let a = \"x // y\"; // \"leakwatch_in_comment\"\nlet q = ['\"', '\\'', 'é']; let r = r#\"s\"#; /* \"z\" */ 'a: loop { br\"b\\\"; f(\"e\\\"q\") }",
    );
    assert_eq!(lits, ["x // y", "s", "b\\", "e\\\"q"]);
    assert!(
        !code.contains("leakwatch_in_comment") && code.contains("'a: loop"),
        "{code}"
    );
}

#[test]
fn only_metrics_names_metrics_and_only_http_writes_html() {
    let tag = Regex::new(r"<(div|table|tr|td|ul|li|span|svg|html|p|a|h[1-6])[ >]").unwrap();
    let mut bad = Vec::new();
    for f in rust_files(&src()) {
        let m = module_of(&f);
        let text = std::fs::read_to_string(&f).unwrap();
        if ["pprof", "system", "analysis"].contains(&m.as_str())
            && imports(&text).contains("metrics")
        {
            bad.push(format!("{} imports crate::metrics", f.display()));
        }
        // Every module but metrics: no metric name in a string, outside comments and
        // the tests.
        let (_, literals) = lex(non_test(&text));
        if m != "metrics"
            && let Some(l) = literals.iter().find(|l| l.contains("leakwatch_"))
        {
            bad.push(format!("{} names a metric: {l:?}", f.display()));
        }
        if m != "http" && tag.is_match(non_test(&text)) {
            bad.push(format!("{} writes HTML outside src/http/", f.display()));
        }
        if !["http", "app", "main"].contains(&m.as_str()) && imports(&text).contains("http") {
            bad.push(format!("{} imports crate::http", f.display()));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Every file under `dir` (any extension), for the templates a page may use.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn one_html_document_shell() {
    // The doctype and the <html> element, as markup or as maud's `(DOCTYPE)` and
    // `html lang=...`: the pages fill one layout, none writes its own.
    let shell =
        Regex::new(r"(?i)<!doctype\s+html|<html[\s>]|\(\s*DOCTYPE\s*\)|\bhtml\s+lang\s*=").unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shells: Vec<String> = all_files(&root.join("src"))
        .into_iter()
        .chain(all_files(&root.join("templates")))
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let code = if f.extension().is_some_and(|x| x == "rs") {
                lex(non_test(&text)).0
            } else {
                text
            };
            shell.is_match(&code)
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        shells.len() <= 1,
        "more than one HTML document shell: {shells:?}"
    );
    assert!(
        !shells.is_empty(),
        "the shell went missing: update this test"
    );
}

#[test]
fn modules_import_each_other_one_way() {
    // Each folder counts as one module; the crate root (lib.rs, main.rs) and the runtime
    // (app.rs) count like any other.
    let g = graph();
    if let Some(cycle) = find_cycle(&g) {
        panic!("import cycle: {}\ngraph: {g:#?}", cycle.join(" -> "));
    }
    // The leaves import nothing of the crate but each other's values.
    for leaf in ["pprof", "system", "files", "units", "error"] {
        let deps = &g.get(leaf).cloned().unwrap_or_default();
        let allowed: BTreeSet<String> = ["pprof", "system", "error", "units", "files"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(deps.is_subset(&allowed), "{leaf} imports {deps:?}");
    }
}

#[test]
fn no_import_cycle_between_files_anywhere() {
    // Inside folders too: a folder's mod.rs is its face (declarations and re-exports),
    // not a place its children import back from.
    let g = file_graph(&crate_files());
    assert!(g.contains_key("lib") && g.contains_key("main"), "{g:?}");
    // Every group of files that import each other, to fix in one go.
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(n) = todo.pop() {
            for d in g.get(&n).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> = g.keys().map(|n| (n, reach(n))).collect();
    let groups: BTreeSet<Vec<String>> = g
        .keys()
        .filter(|n| reached[n].contains(*n))
        .map(|n| {
            reached[n]
                .iter()
                .filter(|m| reached[m].contains(n))
                .cloned()
                .collect()
        })
        .collect();
    assert!(
        groups.is_empty(),
        "files that import each other (mod.rs is named after its folder; re-exports are followed to the file that defines the item):\n{}\nfirst cycle: {}",
        groups
            .iter()
            .map(|g| g.join(", "))
            .collect::<Vec<_>>()
            .join("\n"),
        find_cycle(&g).unwrap_or_default().join(" -> ")
    );
}

#[test]
fn the_crate_root_is_a_map() {
    // lib.rs: the module table a newcomer reads first, declarations and re-exports;
    // the runtime lives in app.rs.
    let text = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let lines = text.lines().count();
    assert!(
        lines <= 100,
        "src/lib.rs has {lines} lines (at most about 100)"
    );
    let code =
        Regex::new(r"(?m)^\s*(pub\s+)?(async\s+)?(fn|struct|enum|impl|trait|static|const|type)\b")
            .unwrap();
    let found: Vec<&str> = text.lines().filter(|l| code.is_match(l)).collect();
    assert!(found.is_empty(), "src/lib.rs defines items: {found:?}");
}

#[test]
fn the_file_graph_follows_reexports_super_and_bare_children() {
    // The scanner itself: a cycle hidden behind a re-export, `super::` and a bare child
    // path are all seen; paths to other crates are not edges.
    let files: BTreeMap<PathBuf, String> = [
        ("lib.rs", "pub mod a;\npub mod b;\npub use a::thing::Thing;\nfn f() { b::go(); }"),
        ("a/mod.rs", "mod thing;\npub use thing::Thing;\npub use self::thing::{Other as O};"),
        ("a/thing.rs", "use super::super::b::helper;\nuse std::fmt;\npub struct Thing;"),
        ("b.rs", "use crate::{Thing, a::O};\nuse tokio::sync::Mutex;\n#[cfg(test)]\nmod tests { use crate::a::*; }"),
    ]
    .into_iter()
    .map(|(p, t)| (PathBuf::from(p), t.to_string()))
    .collect();
    let g = file_graph(&files);
    let deps = |m: &str| g[m].iter().cloned().collect::<Vec<_>>();
    assert_eq!(deps("lib"), ["a/thing", "b"]);
    assert_eq!(deps("a"), ["a/thing"]);
    assert_eq!(deps("a/thing"), ["b"]);
    assert_eq!(deps("b"), ["a/thing"]);
    let cycle = find_cycle(&g).expect("a/thing -> b -> a/thing");
    assert!(cycle.contains(&"a/thing".to_string()) && cycle.contains(&"b".to_string()));
}

#[test]
fn no_source_file_grows_past_about_600_lines_outside_its_tests() {
    // "About 600": a table or a file a few lines over is fine; a second concern is not.
    const LIMIT: usize = 640;
    let mut big = Vec::new();
    for f in rust_files(&src()) {
        let text = std::fs::read_to_string(&f).unwrap();
        let n = non_test(&text).lines().count();
        if n > LIMIT {
            big.push(format!("{}: {n} lines", f.display()));
        }
    }
    assert!(
        big.is_empty(),
        "over {LIMIT} lines outside tests:\n{}",
        big.join("\n")
    );
}

#[test]
fn every_module_says_what_it_owns() {
    let mut missing = Vec::new();
    for f in rust_files(&src()) {
        let text = std::fs::read_to_string(&f).unwrap();
        if !text.trim_start().starts_with("//!") {
            missing.push(f.display().to_string());
        }
    }
    assert!(missing.is_empty(), "no `//!` line: {missing:?}");
}

#[test]
fn the_import_scanner_sees_grouped_and_plain_paths() {
    let text = "use crate::{AppState, system};\nuse crate::analysis::window::Window;\nlet x = crate::units::unix_now();\nuse crate::{metrics::Sink, Error};";
    let got: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(got, ["analysis", "metrics", "system", "units"]);
}
