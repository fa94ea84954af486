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
