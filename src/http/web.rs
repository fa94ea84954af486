//! The web config file (`--web.config.file`): leakwatch's own endpoints behind TLS,
//! client certificates and basic auth, as configured by the Prometheus
//! exporter-toolkit format, and [`serve`], which applies it. TLS is in
//! [`super::tls`], basic auth and extra headers in [`super::auth`].
//!
//! The file format is exporter-toolkit's
//! (<https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md>),
//! so one file serves node_exporter and leakwatch alike. What rustls cannot do is
//! refused at load with an error naming the key, never silently ignored: a security
//! setting that looks applied but is not is worse than a failed start.
//!
//! [`WebConfig::load`] reads and validates everything (certificates parse, key matches
//! certificate, hashes are bcrypt); [`serve`] applies it. As in exporter-toolkit every
//! path is protected, `/-/healthy` included. The connection cap and timeouts travel
//! with it ([`WebConfig::with_limits`]) and are applied in [`super::server`].

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;
use tokio::net::TcpListener;

pub use super::auth::REALM;
pub use super::server::{DEFAULT_MAX_CONNECTIONS, ServerLimits};
use super::tls::{RawTls, TlsSettings, tls_settings};
use crate::error::{Error, Result};

/// The headers exporter-toolkit lets a web config set, with the only values allowed
/// where the header is an enumeration (empty: any value).
const EXTRA_HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

// ---------------------------------------------------------------------------------
// The file as written
// ---------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    /// Accepted for compatibility; leakwatch speaks HTTP/1.1 only (see docs/web-config.md).
    #[serde(default, rename = "http2")]
    _http2: Option<bool>,
}
// ---------------------------------------------------------------------------------
// The validated config
// ---------------------------------------------------------------------------------

/// The exporter-toolkit web config file, validated
/// (<https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md>):
/// `tls_server_config` (`cert_file`/`cert`, `key_file`/`key`, `client_auth_type`
/// NoClientCert | VerifyClientCertIfGiven | RequireAndVerifyClientCert, `client_ca_file`/
/// `client_ca`, `min_version`/`max_version` TLS12 | TLS13, `cipher_suites`,
/// `curve_preferences`, `prefer_server_cipher_suites`), `basic_auth_users`
/// (`user: bcrypt-hash`) and `http_server_config.headers`. Unknown keys are rejected.
///
/// With it go the server's limits ([`ServerLimits`], from flags, not the file).
///
/// `Debug` never shows password hashes or keys.
#[derive(Clone, Default)]
pub struct WebConfig {
    tls: Option<TlsSettings>,
    users: Arc<BTreeMap<String, String>>,
    headers: Vec<(HeaderName, HeaderValue)>,
    limits: ServerLimits,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.as_ref().map(|t| t.client_auth))
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl WebConfig {
    /// Reads and validates a web config file; errors name the file and the key.
    pub fn load(path: &Path) -> Result<WebConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        WebConfig::from_yaml(&text, base)
            .map_err(|e| Error::Config(format!("web config {}: {e}", path.display())))
    }

    /// Parses and validates YAML text; relative file paths are resolved against `base`
    /// (the config file's directory, as exporter-toolkit does).
    fn from_yaml(text: &str, base: &Path) -> std::result::Result<WebConfig, String> {
        let raw: RawWebConfig = if text.trim().is_empty() {
            RawWebConfig::default()
        } else {
            serde_norway::from_str(text)
                .map_err(|e| crate::error::with_line(text, e.to_string()))?
        };
        let tls = match raw.tls_server_config {
            None => None,
            Some(t) => Some(tls_settings(t, base)?),
        };
        let users = raw.basic_auth_users.unwrap_or_default();
        for (user, hash) in &users {
            check_bcrypt(hash).map_err(|e| format!("basic_auth_users.{user}: {e}"))?;
        }
        let mut headers = Vec::new();
        let http = raw.http_server_config.unwrap_or_default();
        for (name, value) in http.headers.unwrap_or_default() {
            headers.push(check_header(&name, &value)?);
        }
        Ok(WebConfig {
            tls,
            users: Arc::new(users),
            headers,
            limits: ServerLimits::default(),
        })
    }

    /// The same config served under `limits` (connection cap, timeouts).
    pub fn with_limits(mut self, limits: ServerLimits) -> WebConfig {
        self.limits = limits;
        self
    }

    /// The limits the server runs under.
    pub fn limits(&self) -> ServerLimits {
        self.limits
    }

    /// Whether connections are TLS.
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether basic auth is required.
    pub fn basic_auth_enabled(&self) -> bool {
        !self.users.is_empty()
    }
}

/// `app` with the config's basic auth and extra headers applied to every route.
pub fn protect(app: axum::Router, web: &WebConfig) -> axum::Router {
    super::auth::protect(app, &web.users, &web.headers)
}

/// A stored hash is usable: bcrypt format, cost bcrypt accepts.
fn check_bcrypt(hash: &str) -> std::result::Result<(), String> {
    let parts: bcrypt::HashParts = hash.parse().map_err(|e| {
        format!("not a bcrypt hash ({e}); generate one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`")
    })?;
    let cost = parts.get_cost();
    if !(4..=31).contains(&cost) {
        return Err(format!("not a bcrypt hash (cost {cost} is outside 4..31)"));
    }
    Ok(())
}

fn check_header(name: &str, value: &str) -> std::result::Result<(HeaderName, HeaderValue), String> {
    let Some((_, allowed)) = EXTRA_HEADERS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = EXTRA_HEADERS.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "http_server_config.headers: HTTP header {name:?} can not be configured (allowed: {})",
            names.join(", ")
        ));
    };
    if !allowed.is_empty() && !allowed.contains(&value) {
        return Err(format!(
            "http_server_config.headers.{name}: invalid value {value:?}, expected one of {allowed:?}"
        ));
    }
    let header_name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|e| format!("http_server_config.headers.{name}: {e}"))?;
    let header_value = HeaderValue::from_str(value)
        .map_err(|e| format!("http_server_config.headers.{name}: invalid value {value:?}: {e}"))?;
    Ok((header_name, header_value))
}

// ---------------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------------

/// Serves `app` on `listener` with `web` applied (TLS, client certificates, basic
/// auth, extra headers, the connection cap and timeouts; plain HTTP with `None`)
/// until `shutdown` completes, then finishes in-flight requests (graceful).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    web: Option<WebConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let web = web.unwrap_or_default();
    if web.basic_auth_enabled() {
        // The count only: user names are not secrets, but they are an attacker's half.
        tracing::info!(users = web.users.len(), "basic auth is enabled");
    }
    let app = protect(app, &web);
    let tls = web.tls.as_ref().map(|tls| {
        tracing::info!(client_auth = ?tls.client_auth, basic_auth = web.basic_auth_enabled(), "TLS is enabled");
        tokio_rustls::TlsAcceptor::from(tls.config.clone())
    });
    super::server::serve_connections(listener, app, tls, web.limits, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_hashes() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let yaml = format!("basic_auth_users:\n  alice: {hash}\n");
        let web = WebConfig::from_yaml(&yaml, Path::new(".")).unwrap();
        let shown = format!("{web:?}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains(&hash), "{shown}");
    }
}
