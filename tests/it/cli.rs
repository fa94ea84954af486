//! The command line as the README writes it: the exporter's flags before or after
//! `serve`, and help that lists every option with its default.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{free_port, try_http_get, wait_until};

fn leakwatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_leakwatch"))
}

#[test]
fn server_flags_work_before_and_after_serve() {
    for before in [true, false] {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let flags = [
            "--web.listen-address",
            listen.as_str(),
            "--target",
            "http://127.0.0.1:9",
            "--log.level",
            "warn",
        ];
        let mut cmd = leakwatch();
        if before {
            cmd.args(flags).arg("serve");
        } else {
            cmd.arg("serve").args(flags);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start leakwatch");
        let answered = wait_until(
            Duration::from_secs(20),
            "/metrics on --web.listen-address",
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("leakwatch exited with {status} (flags before serve: {before})");
                }
                match try_http_get(&format!("http://{listen}/metrics")) {
                    // The target's series appear with its first scrape.
                    Ok((200, body)) => Some(String::from_utf8_lossy(&body).into_owned())
                        .filter(|b| b.contains("leakwatch_up{")),
                    _ => None,
                }
            },
        );
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            answered.contains("leakwatch_up{"),
            "flags before serve: {before}"
        );
    }
}

#[test]
fn help_lists_every_server_option_with_its_default() {
    let out = leakwatch().args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--target",
        "--web.listen-address",
        "--web.config.file",
        "--web.enable-lifecycle",
        "--web.enable-admin-api",
        "--web.max-connections",
        "--log.level",
        "--config.check",
        "--shard",
    ] {
        assert!(help.contains(flag), "serve --help lacks {flag}:\n{help}");
    }
    for default in [
        "127.0.0.1:10760",
        "http://127.0.0.1:6060",
        "[default: 512]",
        "[default: info",
    ] {
        assert!(
            help.contains(default),
            "serve --help lacks {default}:\n{help}"
        );
    }
    let out = leakwatch().arg("--help").output().unwrap();
    let top = String::from_utf8_lossy(&out.stdout);
    assert!(
        top.contains("127.0.0.1:10760"),
        "--help lacks the default listen address"
    );
    // One wording for watch's exit codes everywhere.
    assert!(top.contains("2 (could not judge)"), "{top}");
    // Every collector, both switches, with its default, before and after `serve`.
    for text in [&top, &help] {
        for c in leakwatch::config::Collector::ALL {
            let on = format!("--collector.{}", c.name());
            let default = if c.default_on() { "on" } else { "off" };
            let off = format!("--no-collector.{}", c.name());
            // The flag's help, in the long layout (next line) or the short one.
            let at = text
                .find(&format!("{on} "))
                .or_else(|| text.find(&format!("{on}\n")))
                .unwrap_or_else(|| panic!("--help lacks {on}:\n{text}"));
            let end = text[at..]
                .find(&off)
                .unwrap_or_else(|| panic!("--help lacks {off}:\n{text}"));
            let flag_help = text[at..at + end].trim_end();
            assert!(
                flag_help.ends_with(&format!("[default: {default}]")),
                "{on}: {flag_help:?}"
            );
        }
    }
}

/// A collector flag names a collector leakwatch has; a misspelt one is refused before
/// anything starts (clap's error, exit 2), with the nearest flag.
#[test]
fn collector_flags_are_checked() {
    let out = leakwatch()
        .args([
            "--collector.memstat",
            "--target",
            "http://127.0.0.1:9",
            "--config.check",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unexpected argument '--collector.memstat'"),
        "{err}"
    );
    assert!(err.contains("--collector.memstats"), "{err}");
    for args in [
        &["--collector.memstats_detail", "--no-collector.oom"][..],
        &["serve", "--no-collector.scrape", "--collector.budget"][..],
    ] {
        let out = leakwatch()
            .args(args)
            .args(["--target", "http://127.0.0.1:9", "--config.check"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
