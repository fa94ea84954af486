//! The README's metrics reference, rendered from the table.

use super::def::{Kind, exposed_name};
use super::table::METRICS;

/// The README's metrics reference: one Markdown table row per family, in table order.
/// `README.md` holds this between `<!-- metrics:begin -->` and `<!-- metrics:end -->`;
/// a test keeps them equal (`UPDATE_GOLDEN=1` rewrites the README section).
pub fn markdown_reference() -> String {
    let mut out = String::from("| metric | type | labels | help |\n|---|---|---|---|\n");
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
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            exposed_name(d),
            kind,
            labels.join(", "),
            d.help.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod readme_tests {
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
