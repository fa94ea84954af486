//! The README against the code: its metrics reference lists exactly the families of
//! the metric table (`src/metrics/table.rs`), and every metric the README names
//! anywhere is one leakwatch exposes.

use std::collections::BTreeSet;
use std::path::Path;

use leakwatch::metrics::{METRICS, exposed_name};
use regex::Regex;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md")
}

/// Every family as exposed (counters with `_total`).
fn table() -> BTreeSet<String> {
    METRICS
        .iter()
        .map(|d| exposed_name(d).into_owned())
        .collect()
}

/// `leakwatch_a_{b,c}_d` -> `leakwatch_a_b_d`, `leakwatch_a_c_d`.
fn expand(name: &str) -> Vec<String> {
    let Some((head, rest)) = name.split_once('{') else {
        return vec![name.to_string()];
    };
    let Some((alts, tail)) = rest.split_once('}') else {
        return vec![name.to_string()];
    };
    alts.split(',')
        .flat_map(|a| expand(&format!("{head}{}{tail}", a.trim())))
        .collect()
}

#[test]
fn readme_metrics_reference_lists_exactly_the_table() {
    let text = readme();
    let begin = "<!-- metrics:begin -->";
    let end = "<!-- metrics:end -->";
    let (Some(b), Some(e)) = (text.find(begin), text.find(end)) else {
        panic!("README.md has no {begin} ... {end} section");
    };
    let row = Regex::new(r"(?m)^\| `(leakwatch_[a-z0-9_]+)` \|").unwrap();
    let listed: Vec<String> = row
        .captures_iter(&text[b..e])
        .map(|c| c[1].to_string())
        .collect();
    let documented: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(listed.len(), documented.len(), "a family listed twice");
    let table = table();
    let undocumented: Vec<&String> = table.difference(&documented).collect();
    let unknown: Vec<&String> = documented.difference(&table).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "README's metrics reference and src/metrics/table.rs disagree:\n\
         in the table, not in the README: {undocumented:?}\n\
         in the README, not in the table: {unknown:?}\n\
         (UPDATE_GOLDEN=1 cargo test --lib readme rewrites the README section)"
    );
}

#[test]
fn every_metric_the_readme_names_is_exposed() {
    let text = readme();
    // A name, with brace groups inside it (`leakwatch_x_{a,b}_bytes`, not a selector's
    // `{kind}`); one inside a recording rule's name (`target:leakwatch_x:rate5m`) is
    // the rule's, not a family's.
    let name = Regex::new(r"(:?)(leakwatch_(?:[a-z0-9_]+|\{[a-z0-9_, ]+\}_)+)").unwrap();
    let table = table();
    let unknown: BTreeSet<String> = name
        .captures_iter(&text)
        .filter(|c| c[1].is_empty())
        .flat_map(|c| expand(&c[2]))
        .filter(|n| !table.contains(n))
        .collect();
    assert!(
        unknown.is_empty(),
        "README.md names metrics leakwatch does not expose: {unknown:?}"
    );
}

#[test]
fn brace_groups_expand() {
    assert_eq!(
        expand("leakwatch_x_{a,b}_bytes"),
        ["leakwatch_x_a_bytes", "leakwatch_x_b_bytes"]
    );
    assert_eq!(expand("leakwatch_up"), ["leakwatch_up"]);
}

/// The README's table of contents links every `## ` section, in order, by the anchor
/// GitHub gives its heading.
#[test]
fn readme_contents_link_every_section_in_order() {
    let text = readme();
    let headings: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter(|h| *h != "Contents")
        .collect();
    let (_, after) = text
        .split_once("## Contents\n")
        .expect("a ## Contents section");
    let toc = after.split("\n## ").next().unwrap();
    let link = Regex::new(r"(?m)^- \[(.+)\]\(#([^)]+)\)$").unwrap();
    let entries: Vec<(String, String)> = link
        .captures_iter(toc)
        .map(|c| (c[1].to_string(), c[2].to_string()))
        .collect();
    let titles: Vec<&str> = entries.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(titles, headings, "the contents and the sections differ");
    for (title, anchor) in &entries {
        let want = leakwatch::http::runbook::anchor(&title.replace('`', ""));
        assert_eq!(anchor, &want, "{title}");
    }
}

/// The README's two Go lines (what a service needs) compile as it says: the import in
/// any file, the call in `main`, with Debian's Go 1.19 and Go 1.26.
#[test]
fn readme_go_snippet_compiles() {
    let text = readme();
    let (_, rest) = text.split_once("```go\n").expect("a ```go block");
    let block = rest.split("```").next().unwrap();
    let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 2, "two lines: {lines:?}");
    let program = format!(
        "package main\n\nimport \"net/http\"\n\n{}\n\nfunc main() {{\n\t{}\n\tselect {{}}\n}}\n",
        lines[0], lines[1]
    );
    for version in ["1.19", "1.26"] {
        let tc = crate::support::toolchain(version);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.go"), &program).unwrap();
        std::fs::write(dir.path().join("go.mod"), "module snippet\n\ngo 1.19\n").unwrap();
        let out = std::process::Command::new(&tc.go)
            .args(["vet", "."])
            .current_dir(dir.path())
            .env("GOFLAGS", "-mod=mod")
            .env("GOTOOLCHAIN", "local")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "Go {version}: go vet of\n{program}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
