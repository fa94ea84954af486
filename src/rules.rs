//! The Prometheus rule file leakwatch ships (`alerts/leakwatch-rules.yml`), rendered
//! for one install: where its runbook and dashboard live, and which `up` series is
//! leakwatch's own (`leakwatch rules`).

use crate::error::{Error, Result};

/// The shipped rule file; it is what [`render`] prints with the defaults.
pub const SHIPPED: &str = include_str!("../alerts/leakwatch-rules.yml");

/// The runbook every shipped `runbook_url` points at: the one leakwatch serves at
/// `/runbook` on its default listen address. Each alert appends `#<its name>`.
pub const DEFAULT_RUNBOOK_URL: &str = "http://127.0.0.1:10760/runbook";

/// The `up` selector of the shipped "leakwatch is down / absent" alerts.
pub const DEFAULT_SELECTOR: &str = r#"job="leakwatch""#;

/// What one install changes in the rules.
#[derive(Debug, Clone)]
pub struct RuleOptions {
    /// Runbook page; `#<alert name lower-cased>` is appended per alert.
    pub runbook_url: String,
    /// Added to every alert as the `dashboard_url` annotation (may use templates such
    /// as `{{ $labels.target }}`).
    pub dashboard_url: Option<String>,
    /// Label matchers that select leakwatch's own `up` series (`job="leakwatch"`).
    pub selector: String,
}

impl Default for RuleOptions {
    fn default() -> Self {
        RuleOptions {
            runbook_url: DEFAULT_RUNBOOK_URL.into(),
            dashboard_url: None,
            selector: DEFAULT_SELECTOR.into(),
        }
    }
}

/// Every value goes into the file as a plain YAML scalar (`runbook_url: VALUE`,
/// `expr: up{VALUE} == 0`): a line break, a tab or a control character, `": "`, `" #"`
/// or a trailing `:` would end it early or start a key of its own, and promtool would
/// refuse the file (or, worse, read another one).
fn check_plain_yaml(flag: &str, value: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::Config(format!("{flag} {value:?}: {why}")));
    if value
        .chars()
        .any(|c| c.is_control() || (c.is_whitespace() && c != ' '))
    {
        return bad("no line breaks, tabs or control characters");
    }
    if value.contains(": ") || value.contains(" #") || value.ends_with(':') {
        return bad("no ': ', ' #' or trailing ':' (they end a YAML value)");
    }
    Ok(())
}

fn check_url(flag: &str, url: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::Config(format!("{flag} {url:?}: {why}")));
    check_plain_yaml(flag, url)?;
    // Templates ({{ $labels.target }}) are Prometheus's business: check what is left.
    let plain = regex::Regex::new(r"\{\{[^}]*\}\}")
        .expect("valid regex")
        .replace_all(url, "x");
    match reqwest::Url::parse(&plain) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Ok(()),
        Ok(u) => bad(&format!("scheme {:?} is not http or https", u.scheme())),
        Err(e) => bad(&e.to_string()),
    }
}

fn check_selector(selector: &str) -> Result<()> {
    check_plain_yaml("--selector", selector)?;
    let matcher = r#"[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"([^"\\\n]|\\.)*""#;
    let re =
        regex::Regex::new(&format!(r"^\s*{matcher}(\s*,\s*{matcher})*\s*$")).expect("valid regex");
    if re.is_match(selector) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "--selector {selector:?}: want PromQL label matchers such as job=\"leakwatch\" \
             (without braces)"
        )))
    }
}

/// The rule file for `o`. Only three things change: every `runbook_url` base, an
/// added `dashboard_url` after each `runbook_url`, and the `up{...}` selector of the
/// alerts on leakwatch itself. Everything else is the shipped file, byte for byte.
pub fn render(o: &RuleOptions) -> Result<String> {
    check_url("--runbook-url", &o.runbook_url)?;
    if o.runbook_url.contains('#') {
        return Err(Error::Config(format!(
            "--runbook-url {:?}: no #fragment (each alert adds its own)",
            o.runbook_url
        )));
    }
    if let Some(d) = &o.dashboard_url {
        check_url("--dashboard-url", d)?;
    }
    check_selector(&o.selector)?;
    let base = format!("{DEFAULT_RUNBOOK_URL}#");
    let default_up = format!("up{{{DEFAULT_SELECTOR}}}");
    let up = format!("up{{{}}}", o.selector.trim());
    let mut out = String::with_capacity(SHIPPED.len() + 4096);
    for line in SHIPPED.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("runbook_url: ")
            && let Some(anchor) = rest.trim_end().strip_prefix(&base)
        {
            let indent = &line[..line.len() - trimmed.len()];
            out.push_str(&format!(
                "{indent}runbook_url: {}#{anchor}\n",
                o.runbook_url
            ));
            if let Some(d) = &o.dashboard_url {
                out.push_str(&format!("{indent}dashboard_url: {d}\n"));
            }
            continue;
        }
        out.push_str(&line.replace(&default_up, &up));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::kinds::LeakKind;

    /// A new leak kind compiles once its row of the kind table is filled; what it
    /// needs outside the code is checked here: its alert on its `kind` label (rules and
    /// rule tests), its runbook section (an alert's name is one word: GitHub's anchor of
    /// its heading is the name lower-cased, as the table's anchor is), and its label in
    /// the dashboard's verdict panel.
    #[test]
    fn every_leak_kind_has_its_alert_runbook_section_and_panels() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
        let rule_tests: String = std::fs::read_dir(root.join("alerts/tests"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        let runbook = read("docs/runbook.md");
        for kind in LeakKind::ALL {
            let spec = kind.spec();
            let alert = SHIPPED
                .split("- alert: ")
                .find(|a| a.starts_with(&format!("{}\n", spec.alert)))
                .unwrap_or_else(|| panic!("{kind:?}: no alert {} in the rules", spec.alert));
            let on_kind = format!("{{kind=\"{}\"}} == 1", spec.label);
            assert!(alert.contains(&on_kind), "{}: not on {on_kind}", spec.alert);
            assert!(
                alert.contains(&format!("{DEFAULT_RUNBOOK_URL}#{}\n", spec.runbook_anchor)),
                "{}: runbook_url is not #{}",
                spec.alert,
                spec.runbook_anchor
            );
            assert!(
                runbook.contains(&format!("\n## {}\n", spec.alert)),
                "{kind:?}: no runbook section {}",
                spec.alert
            );
            assert!(
                rule_tests.contains(&format!("alertname: {}\n", spec.alert))
                    && rule_tests.contains(&format!("kind=\"{}\"", spec.label)),
                "{}: no rule test (alerts/tests/)",
                spec.alert
            );
        }
        // The kinds, listed where the dashboard's verdict panel names them all (the
        // verdict's help text: metrics/table.rs).
        let labels: Vec<&str> = LeakKind::ALL.iter().map(|k| k.as_str()).collect();
        let listed = format!("({})", labels.join(", "));
        let dashboard = read("dashboards/leakwatch-target.json");
        assert!(
            dashboard.contains(&format!("verdict per kind of leak {listed}")),
            "dashboards/leakwatch-target.json (scripts/gen-dashboards.py): {listed}"
        );
    }

    #[test]
    fn defaults_render_the_shipped_file() {
        assert_eq!(render(&RuleOptions::default()).unwrap(), SHIPPED);
    }

    #[test]
    fn every_alert_gets_the_urls_and_the_selector() {
        let o = RuleOptions {
            runbook_url: "https://wiki.example/leakwatch/runbook".into(),
            dashboard_url: Some(
                "https://grafana.example/d/lw?var-target={{ $labels.target }}".into(),
            ),
            selector: r#"job="lw", namespace="mon""#.into(),
        };
        let out = render(&o).unwrap();
        let alerts = SHIPPED.matches("- alert: ").count();
        assert_eq!(
            out.matches("runbook_url: https://wiki.example/leakwatch/runbook#")
                .count(),
            alerts
        );
        assert_eq!(
            out.matches("dashboard_url: https://grafana.example/")
                .count(),
            alerts
        );
        assert!(!out.contains(DEFAULT_RUNBOOK_URL));
        assert!(out.contains(r#"up{job="lw", namespace="mon"}"#));
        assert!(!out.contains(r#"up{job="leakwatch"}"#));
    }

    /// What is accepted reads back from the YAML as given, in every alert.
    #[test]
    fn accepted_values_read_back_from_the_yaml() {
        let o = RuleOptions {
            runbook_url: "https://wiki.example/a:b/runbook?x=1".into(),
            dashboard_url: Some("https://g.example/d/x?var-t={{ $labels.target }}&a=b:c".into()),
            selector: r#"job="lw:1", instance!~"a#b""#.into(),
        };
        let out = render(&o).unwrap();
        let doc: serde_json::Value = serde_norway::from_str(&out).unwrap();
        let rules: Vec<&serde_json::Value> = doc["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap())
            .collect();
        let alerts: Vec<_> = rules.iter().filter(|r| r.get("alert").is_some()).collect();
        assert!(!alerts.is_empty());
        for a in alerts {
            let ann = &a["annotations"];
            let runbook = ann["runbook_url"].as_str().unwrap();
            assert!(
                runbook.starts_with(&format!("{}#", o.runbook_url)),
                "{runbook}"
            );
            assert_eq!(ann["dashboard_url"].as_str(), o.dashboard_url.as_deref());
        }
        let up = format!("up{{{}}}", o.selector);
        assert!(
            rules
                .iter()
                .any(|r| r["expr"].as_str().is_some_and(|e| e.contains(&up))),
            "{up}"
        );
    }

    #[test]
    fn bad_options_are_refused_naming_the_flag() {
        let cases = [
            (
                RuleOptions {
                    runbook_url: "ftp://x/r".into(),
                    ..RuleOptions::default()
                },
                "--runbook-url",
            ),
            (
                RuleOptions {
                    runbook_url: "not a url".into(),
                    ..RuleOptions::default()
                },
                "--runbook-url",
            ),
            (
                RuleOptions {
                    runbook_url: "https://x/r#top".into(),
                    ..RuleOptions::default()
                },
                "#fragment",
            ),
            (
                RuleOptions {
                    runbook_url: "https://x/r\nfoo: 1".into(),
                    ..RuleOptions::default()
                },
                "line breaks",
            ),
            (
                RuleOptions {
                    runbook_url: "https://x/a: b".into(),
                    ..RuleOptions::default()
                },
                "': '",
            ),
            (
                RuleOptions {
                    dashboard_url: Some("https://g/d?x=1\r\nfoo".into()),
                    ..RuleOptions::default()
                },
                "line breaks",
            ),
            (
                RuleOptions {
                    dashboard_url: Some("https://g/d?q=a: b".into()),
                    ..RuleOptions::default()
                },
                "--dashboard-url",
            ),
            (
                RuleOptions {
                    dashboard_url: Some("https://g/d/x:".into()),
                    ..RuleOptions::default()
                },
                "trailing ':'",
            ),
            (
                RuleOptions {
                    selector: "job=\"a\",\ninstance=\"b\"".into(),
                    ..RuleOptions::default()
                },
                "line breaks",
            ),
            (
                RuleOptions {
                    selector: "job=\"a: b\"".into(),
                    ..RuleOptions::default()
                },
                "--selector",
            ),
            (
                RuleOptions {
                    selector: "job=\"a #b\"".into(),
                    ..RuleOptions::default()
                },
                "' #'",
            ),
            (
                RuleOptions {
                    dashboard_url: Some("grafana".into()),
                    ..RuleOptions::default()
                },
                "--dashboard-url",
            ),
            (
                RuleOptions {
                    selector: "{job=\"x\"}".into(),
                    ..RuleOptions::default()
                },
                "--selector",
            ),
            (
                RuleOptions {
                    selector: "job=leakwatch".into(),
                    ..RuleOptions::default()
                },
                "--selector",
            ),
            (
                RuleOptions {
                    selector: String::new(),
                    ..RuleOptions::default()
                },
                "--selector",
            ),
        ];
        for (o, want) in cases {
            let e = render(&o).unwrap_err().to_string();
            assert!(e.contains(want), "{o:?}: {e}");
        }
    }
}
