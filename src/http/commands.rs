//! The next steps the pages print as commands, written for where the reader is: a dump
//! pair fetched from this instance over HTTP (`curl`), then compared with
//! `leakwatch diff`, or by `go tool pprof` straight from the URLs. Never a path on the
//! leakwatch host, which the reader's machine does not have.

use super::address::Instance;
use crate::dump::shell_quote;

/// The commands comparing one target's dump pair (baseline, suspect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairCommands {
    /// The two downloads, each `curl -fsS -o NAME URL`.
    pub fetch: [String; 2],
    /// `leakwatch diff BASE NEW --sample inuse_space`, on the downloaded files.
    pub diff: String,
    /// `go tool pprof -top -base URL URL`: the same ranking without downloading.
    pub pprof: String,
    /// The downloads and the diff as one line (`&&`), for the JSON's `command`.
    pub one_line: String,
}

/// The dump `file` of `target` on this instance.
pub fn dump_url(at: &Instance, target: &str, file: &str) -> String {
    at.url(&["dumps", target, file])
}

/// The commands for `target`'s pair `base` -> `new` (dump file names).
pub fn pair(at: &Instance, target: &str, base: &str, new: &str) -> PairCommands {
    let (base_url, new_url) = (dump_url(at, target, base), dump_url(at, target, new));
    let (b, n) = (shell_quote(base), shell_quote(new));
    let fetch = [
        format!("curl -fsS -o {b} {}", shell_quote(&base_url)),
        format!("curl -fsS -o {n} {}", shell_quote(&new_url)),
    ];
    let diff = format!("leakwatch diff {b} {n} --sample inuse_space");
    let pprof = format!(
        "go tool pprof -top -base {} {}",
        shell_quote(&base_url),
        shell_quote(&new_url)
    );
    let one_line = format!("{} && {} && {diff}", fetch[0], fetch[1]);
    PairCommands {
        fetch,
        diff,
        pprof,
        one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::address::ExternalUrl;
    use axum::http::{HeaderMap, header};

    #[test]
    fn pair_fetches_over_http_from_this_instance() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "10.0.0.7:10760".parse().unwrap());
        let at = Instance::of(None, &h, false);
        let c = pair(
            &at,
            "my svc",
            "heap-a-baseline.pb.gz",
            "heap-b-suspect.pb.gz",
        );
        assert_eq!(
            c.fetch[0],
            "curl -fsS -o heap-a-baseline.pb.gz 'http://10.0.0.7:10760/dumps/my%20svc/heap-a-baseline.pb.gz'"
        );
        assert_eq!(
            c.diff,
            "leakwatch diff heap-a-baseline.pb.gz heap-b-suspect.pb.gz --sample inuse_space"
        );
        assert_eq!(
            c.pprof,
            "go tool pprof -top -base 'http://10.0.0.7:10760/dumps/my%20svc/heap-a-baseline.pb.gz' 'http://10.0.0.7:10760/dumps/my%20svc/heap-b-suspect.pb.gz'"
        );
        assert_eq!(
            c.one_line,
            format!("{} && {} && {}", c.fetch[0], c.fetch[1], c.diff)
        );
        // A plain name needs no quotes; one a shell would split is quoted.
        let plain = pair(&at, "orders", "a.pb.gz", "b.pb.gz");
        assert_eq!(
            plain.fetch[1],
            "curl -fsS -o b.pb.gz http://10.0.0.7:10760/dumps/orders/b.pb.gz"
        );
        let q = pair(&at, "x", "it's", "b");
        assert!(q.fetch[0].starts_with("curl -fsS -o 'it'\\''s' "), "{q:?}");
    }

    #[test]
    fn pair_uses_the_external_url_over_the_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:10760".parse().unwrap());
        let ext = ExternalUrl::parse("https://lw.example.com:8443").unwrap();
        let c = pair(
            &Instance::of(Some(&ext), &h, false),
            "orders",
            "a.pb.gz",
            "b.pb.gz",
        );
        assert_eq!(
            c.fetch[0],
            "curl -fsS -o a.pb.gz https://lw.example.com:8443/dumps/orders/a.pb.gz"
        );
        assert_eq!(
            c.pprof,
            "go tool pprof -top -base https://lw.example.com:8443/dumps/orders/a.pb.gz https://lw.example.com:8443/dumps/orders/b.pb.gz"
        );
    }
}
