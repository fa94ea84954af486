//! Known secret values of a target (bearer token, basic-auth password and its
//! `Authorization` encoding, header values) and their removal from error texts, as
//! themselves or JSON-escaped or percent-encoded.
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

/// The pure rule behind [`RequestAuth::scrub_secrets`]: each secret is found as
/// itself and encoded the ways an echo may carry it, character by character (so mixed
/// forms are found too): percent-encoded (either case, `+` for a space), JSON-escaped
/// (`\"`, `\/`, `\u00xx`, as Go's encoder writes `<`, `>` and `&`).
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        let chars: Vec<Vec<String>> = s.chars().map(forms).collect();
        out = scrub_one(&out, &chars);
    }
    out
}

/// The ways one character of a secret may appear in a text; the first is the
/// character itself, the rest are encodings (matched ignoring ASCII case).
fn forms(c: char) -> Vec<String> {
    let mut buf = [0u8; 4];
    let mut units = [0u16; 2];
    let mut v = vec![
        c.to_string(),
        c.encode_utf8(&mut buf)
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect(),
        c.encode_utf16(&mut units)
            .iter()
            .map(|u| format!("\\u{u:04X}"))
            .collect(),
    ];
    let short = match c {
        ' ' => "+",
        '"' => "\\\"",
        '\\' => "\\\\",
        '/' => "\\/",
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        _ => "",
    };
    if !short.is_empty() {
        v.push(short.to_string());
    }
    v
}

/// The text positions reached by matching `form` at each of `from`, and whether the
/// text ends inside one of the forms (a reply cut in the middle of an encoding).
fn step(text: &str, from: &[usize], forms: &[String]) -> (Vec<usize>, bool) {
    let mut next = Vec::new();
    let mut cut = false;
    for &p in from {
        let rest = &text.as_bytes()[p..];
        for (k, f) in forms.iter().enumerate() {
            let f = f.as_bytes();
            let same = |a: &[u8], b: &[u8]| {
                if k == 0 {
                    a == b
                } else {
                    a.eq_ignore_ascii_case(b)
                }
            };
            if rest.len() >= f.len() && same(&rest[..f.len()], f) {
                next.push(p + f.len());
            } else if !rest.is_empty() && rest.len() < f.len() && same(rest, &f[..rest.len()]) {
                cut = true;
            }
        }
    }
    next.sort_unstable();
    next.dedup();
    (next, cut)
}

/// `text` with every occurrence of one secret (its characters' forms) replaced,
/// including one cut off at the end after at least [`MIN_SECRET_LEN`] characters
/// (error replies are truncated to their first bytes).
fn scrub_one(text: &str, chars: &[Vec<String>]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let mut reach = vec![i];
        let mut end = None;
        for (k, forms) in chars.iter().enumerate() {
            let (next, cut) = step(text, &reach, forms);
            // k characters matched and the text ends there or inside the next one.
            if k >= MIN_SECRET_LEN && (cut || reach.contains(&text.len())) {
                end = Some(text.len());
                break;
            }
            if next.is_empty() {
                break;
            }
            reach = next;
            if k + 1 == chars.len() {
                end = reach.last().copied();
            }
        }
        match end {
            Some(e) if e > i => {
                out.push_str(REDACTED);
                i = e;
            }
            _ => {
                let c = text[i..].chars().next().expect("a char at a boundary");
                out.push(c);
                i += c.len_utf8();
            }
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
    fn encoded_forms_are_found_too() {
        let secrets = vec!["open/sesame+4<&\"z".to_string(), "pässwörd".to_string()];
        let cases = [
            // JSON: serde's, Go's (\u003c, \u0026, \/), mixed case hex.
            (
                r#"{"auth":"Bearer open/sesame+4<&\"z"}"#,
                r#"{"auth":"Bearer <redacted>"}"#,
            ),
            (
                r#"{"auth":"open\/sesame+4\u003c\u0026\"z"}"#,
                r#"{"auth":"<redacted>"}"#,
            ),
            (r"x open\/sesame+4\u003C\u0026\u0022z y", "x <redacted> y"),
            // Percent-encoded, either case; `+` stays or is encoded.
            ("?t=open%2Fsesame%2B4%3C%26%22z&x=1", "?t=<redacted>&x=1"),
            ("?t=open%2fsesame%2b4%3c%26%22z", "?t=<redacted>"),
            ("?t=open/sesame+4%3C&%22z", "?t=<redacted>"),
            (
                r"p%C3%A4ssw%C3%B6rd and p\u00e4ssw\u00f6rd",
                "<redacted> and <redacted>",
            ),
            // Cut off in the middle, even inside an encoding.
            ("reply cut at open%2Fsesa", "reply cut at <redacted>"),
            ("reply cut at open%2Fsesame%2", "reply cut at <redacted>"),
            (r"reply cut at open\/sesame\u00", "reply cut at <redacted>"),
            // Not a secret: left alone.
            (
                r"open%2F and 100% sure \u0041",
                r"open%2F and 100% sure \u0041",
            ),
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
