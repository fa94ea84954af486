//! Known secret values of a target (bearer token, basic-auth password and its
//! `Authorization` encoding, header values) and their removal from error texts.
//!
//! A target may echo the request back in an error reply (a 401 page that prints the
//! `Authorization` header it refused); the start of that reply becomes the target's
//! last error, shown on the landing and report pages, in `watch` and in logs. Every
//! such text (a scrape's last error, a failed dump's log line and API reply) goes
//! through [`RequestAuth::scrub_secrets`] first.

use base64::Engine;

use crate::scrape::RequestAuth;

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Secrets shorter than this are not searched for: a 1-3 character header value
/// (`1`, `yes`) would mangle ordinary text and protects nothing.
const MIN_SECRET_LEN: usize = 4;

impl RequestAuth {
    /// The secret values requests with these credentials carry, longest first. The
    /// token and password files are read again (only when an error is recorded), so a
    /// rotated secret is known too.
    pub fn known_secrets(&self) -> Vec<String> {
        let auth = self;
        let mut secrets: Vec<String> = auth.headers.values().cloned().collect();
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        };
        if let Some(token) = auth.bearer_token_file.as_deref().and_then(read) {
            secrets.push(token);
        }
        if let Some(b) = &auth.basic_auth
            && let Some(password) = read(&b.password_file)
        {
            let header = format!("{}:{password}", b.username);
            secrets.push(base64::engine::general_purpose::STANDARD.encode(header));
            secrets.push(password);
        }
        secrets.retain(|s| s.len() >= MIN_SECRET_LEN);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        secrets
    }

    /// `text` with every known secret replaced by [`REDACTED`], including a secret cut
    /// off at the end of the text (error replies are truncated to their first bytes).
    pub fn scrub_secrets(&self, text: &str) -> String {
        let secrets = self.known_secrets();
        scrub(text, &secrets)
    }
}

/// The pure rule behind [`RequestAuth::scrub_secrets`].
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), REDACTED);
        }
    }
    // A truncated reply may end in the first part of a secret.
    for s in secrets {
        let longest = (MIN_SECRET_LEN..s.len())
            .rev()
            .filter(|&n| s.is_char_boundary(n))
            .find(|&n| out.ends_with(&s[..n]));
        if let Some(n) = longest {
            out.truncate(out.len() - n);
            out.push_str(REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_whole_and_cut_off() {
        let secrets = vec!["s3cr3t-token".to_string(), "hunter22".to_string()];
        let cases = [
            (
                "HTTP 401: Authorization: Bearer s3cr3t-token refused",
                "HTTP 401: Authorization: Bearer <redacted> refused",
            ),
            ("key hunter22 and hunter22", "key <redacted> and <redacted>"),
            ("reply cut at s3cr3t-to", "reply cut at <redacted>"),
            // Too short a tail to be a secret's start: left alone.
            ("ends in s3c", "ends in s3c"),
            ("nothing here", "nothing here"),
        ];
        for (text, want) in cases {
            assert_eq!(scrub(text, &secrets), want, "for {text:?}");
        }
    }

    #[test]
    fn every_kind_of_secret_is_known() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "tok-12345\n").unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "pa55word\n").unwrap();
        let yaml = format!(
            "targets:\n  - name: a\n    url: http://x\n    bearer_token_file: {}\n    headers: {{X-Api-Key: key-6789, X-Short: no}}\n  - name: b\n    url: http://y\n    basic_auth: {{username: bob, password_file: {}}}\n",
            token.display(),
            password.display()
        );
        let c = crate::config::Config::from_yaml(&yaml).unwrap();
        assert_eq!(c.targets[0].known_secrets(), ["tok-12345", "key-6789"]);
        // base64("bob:pa55word"): what a Basic Authorization header carries.
        assert_eq!(
            c.targets[1].known_secrets(),
            ["Ym9iOnBhNTV3b3Jk", "pa55word"]
        );
        assert_eq!(
            c.targets[1].scrub_secrets("got Authorization: Basic Ym9iOnBhNTV3b3Jk"),
            "got Authorization: Basic <redacted>"
        );
    }
}
