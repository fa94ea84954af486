//! The README's metrics reference, rendered from the table.

use super::def::{Kind, exposed_name};
use super::table::METRICS;

/// The README's metrics reference: one Markdown table row per family, in table order,
/// with the collector that switches it (`(off)`: not in the lean default).
/// `README.md` holds this between `<!-- metrics:begin -->` and `<!-- metrics:end -->`;
/// a test keeps them equal (`UPDATE_GOLDEN=1` rewrites the README section).
pub fn markdown_reference() -> String {
    let mut out =
        String::from("| metric | type | labels | collector | help |\n|---|---|---|---|---|\n");
    for d in METRICS {
        let mut labels: Vec<&str> = Vec::new();
        if d.per_target {
            labels.push("target, ...");
        }
        labels.extend(d.labels.iter().copied());
        let kind = match d.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let collector = match d.collector {
            None => "always".to_string(),
            Some(c) if c.default_on() => format!("`{}`", c.name()),
            Some(c) => format!("`{}` (off)", c.name()),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            exposed_name(d),
            kind,
            labels.join(", "),
            collector,
            d.help.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod readme_tests {
    /// The README's collectors table names every collector in order with its default
    /// (its series counts are checked on a live target: tests/it/collectors.rs).
    #[test]
    fn readme_collectors_table_names_every_collector_and_its_default() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
        let readme = std::fs::read_to_string(&path).expect("README.md");
        let b = readme
            .find("<!-- collectors:begin -->")
            .expect("collectors table");
        let e = readme.find("<!-- collectors:end -->").expect("its end");
        let rows: Vec<(String, String)> = readme[b..e]
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((name.to_string(), cells.get(2)?.to_string()))
            })
            .collect();
        let want: Vec<(String, String)> = crate::config::Collector::ALL
            .iter()
            .map(|c| {
                let on = if c.default_on() { "on" } else { "off" };
                (c.name().to_string(), on.to_string())
            })
            .collect();
        assert_eq!(rows, want);
    }

    const BEGIN: &str = "<!-- metrics:begin -->\n";
    const END: &str = "<!-- metrics:end -->";

    #[test]
    fn readme_metrics_reference_matches_the_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
        let readme = std::fs::read_to_string(&path).expect("README.md");
        let (Some(b), Some(e)) = (readme.find(BEGIN), readme.find(END)) else {
            panic!("README.md has no {BEGIN:?} ... {END:?} section");
        };
        let current = &readme[b + BEGIN.len()..e];
        let want = super::markdown_reference();
        if current != want {
            if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
                let updated = format!("{}{}{}", &readme[..b + BEGIN.len()], want, &readme[e..]);
                std::fs::write(&path, updated).unwrap();
                return;
            }
            panic!(
                "README metrics reference is stale: run UPDATE_GOLDEN=1 cargo test --lib readme"
            );
        }
    }
}
