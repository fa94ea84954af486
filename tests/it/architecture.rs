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

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<String> = rust_files(&src()).iter().map(|p| module_of(p)).collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in rust_files(&src()) {
        let m = module_of(&f);
        let text = std::fs::read_to_string(&f).unwrap();
        let deps = g.entry(m.clone()).or_default();
        for d in imports(&text) {
            if d != m && modules.contains(&d) {
                deps.insert(d);
            }
        }
    }
    g
}

#[test]
fn parsers_readers_and_analysis_know_no_metric_names_and_write_no_html() {
    let tag = Regex::new(r"<(div|table|tr|td|ul|li|span|svg|html|p|a|h[1-6])[ >]").unwrap();
    let mut bad = Vec::new();
    for f in rust_files(&src()) {
        let m = module_of(&f);
        let text = std::fs::read_to_string(&f).unwrap();
        if ["pprof", "system", "analysis"].contains(&m.as_str()) {
            if imports(&text).contains("metrics") {
                bad.push(format!("{} imports crate::metrics", f.display()));
            }
            if non_test(&text).contains("\"leakwatch_") {
                bad.push(format!("{} names a metric", f.display()));
            }
        }
        if m != "http" && tag.is_match(non_test(&text)) {
            bad.push(format!("{} writes HTML outside src/http/", f.display()));
        }
        if !["http", "lib", "main"].contains(&m.as_str()) && imports(&text).contains("http") {
            bad.push(format!("{} imports crate::http", f.display()));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn modules_import_each_other_one_way() {
    // The error and units modules are leaves everyone may use; the crate root (lib.rs,
    // main.rs) wires everything together.
    let mut g = graph();
    g.remove("lib");
    g.remove("main");
    for deps in g.values_mut() {
        deps.remove("error");
        deps.remove("units");
        deps.remove("lib");
        deps.remove("main");
    }
    // Depth-first search for a cycle; report the first one found.
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
    for n in g.keys() {
        if let Some(cycle) = visit(n, &g, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}\ngraph: {g:#?}", cycle.join(" -> "));
        }
    }
    // The leaves import nothing of the crate but each other's values.
    for leaf in ["pprof", "system", "units", "error"] {
        let deps = &g.get(leaf).cloned().unwrap_or_default();
        let allowed: BTreeSet<String> = ["pprof", "system", "error", "units"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(deps.is_subset(&allowed), "{leaf} imports {deps:?}");
    }
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
