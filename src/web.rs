//! leakwatch's own endpoints behind TLS, client certificates and basic auth, configured
//! by the Prometheus exporter-toolkit web config file (`--web.config.file`).
//!
//! The file format is exporter-toolkit's
//! (<https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md>),
//! so one file serves node_exporter and leakwatch alike. What rustls cannot do is
//! refused at load with an error naming the key, never silently ignored: a security
//! setting that looks applied but is not is worse than a failed start.
//!
//! [`WebConfig::load`] reads and validates everything (certificates parse, key matches
//! certificate, hashes are bcrypt); [`serve`] applies it. As in exporter-toolkit every
//! path is protected, `/-/healthy` included.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};

use crate::error::{Error, Result};

/// The realm of the `WWW-Authenticate` challenge.
pub const REALM: &str = "leakwatch";

/// A client that connects and never finishes its handshake holds only its own task,
/// and only this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Remembered good (user, password) pairs, so a scrape every 15s does not pay a bcrypt
/// computation each time (exporter-toolkit keeps the same kind of cache). Cleared
/// when full rather than evicted one by one: a full cache means someone is cycling
/// credentials, and re-verifying the legitimate one costs a single bcrypt.
const AUTH_CACHE_MAX: usize = 256;

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
struct RawTls {
    #[serde(default)]
    cert_file: Option<PathBuf>,
    #[serde(default)]
    key_file: Option<PathBuf>,
    /// Inline PEM certificate chain (instead of `cert_file`).
    #[serde(default)]
    cert: Option<String>,
    /// Inline PEM private key (instead of `key_file`).
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    client_ca: Option<String>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
    #[serde(default)]
    cipher_suites: Option<Vec<String>>,
    #[serde(default)]
    curve_preferences: Option<Vec<String>>,
    #[serde(default)]
    prefer_server_cipher_suites: Option<bool>,
    // exporter-toolkit keys leakwatch cannot honour: declared so the error says
    // "not supported" instead of "unknown field".
    #[serde(default)]
    client_allowed_sans: Option<serde_norway::Value>,
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
/// `Debug` never shows password hashes or keys.
#[derive(Clone, Default)]
pub struct WebConfig {
    tls: Option<TlsSettings>,
    users: Arc<BTreeMap<String, String>>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Clone)]
struct TlsSettings {
    config: Arc<ServerConfig>,
    client_auth: ClientAuth,
}

/// exporter-toolkit's `client_auth_type` values that rustls can enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    NoClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
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
            serde_norway::from_str(text).map_err(|e| with_line(text, e.to_string()))?
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
        })
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

/// The YAML parser reports no position for an unknown key at the top level; point at
/// the line that starts with it, so every unknown-key error has a line.
fn with_line(text: &str, msg: String) -> String {
    if msg.contains(" at line ") {
        return msg;
    }
    let key = msg
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(k, _)| k);
    let line = key.and_then(|k| {
        text.lines().position(|l| {
            l.strip_prefix(k)
                .is_some_and(|r| r.trim_start().starts_with(':'))
        })
    });
    match line {
        Some(i) => format!("{msg} at line {} column 1", i + 1),
        None => msg,
    }
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
// TLS
// ---------------------------------------------------------------------------------

/// Where the certificate and key come from: files are re-read when they change, so a
/// rotated certificate is served without a restart (exporter-toolkit re-reads them
/// on every handshake).
#[derive(Clone)]
enum PemSource {
    File(PathBuf),
    Inline(String),
}

/// Inline PEM may be a private key: never printed.
impl std::fmt::Debug for PemSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PemSource::File(p) => f.debug_tuple("File").field(p).finish(),
            PemSource::Inline(_) => f.write_str("Inline(..)"),
        }
    }
}

impl PemSource {
    fn pick(
        file: Option<PathBuf>,
        inline: Option<String>,
        file_key: &str,
        inline_key: &str,
        base: &Path,
    ) -> std::result::Result<Option<PemSource>, String> {
        let file = file.filter(|p| !p.as_os_str().is_empty());
        let inline = inline.filter(|s| !s.trim().is_empty());
        match (file, inline) {
            (Some(_), Some(_)) => Err(format!(
                "tls_server_config: set {file_key} or {inline_key}, not both"
            )),
            (Some(p), None) => Ok(Some(PemSource::File(base.join(p)))),
            (None, Some(s)) => Ok(Some(PemSource::Inline(s))),
            (None, None) => Ok(None),
        }
    }

    fn read(&self, key: &str) -> std::result::Result<Vec<u8>, String> {
        match self {
            PemSource::File(p) => std::fs::read(p)
                .map_err(|e| format!("tls_server_config.{key}: reading {}: {e}", p.display())),
            PemSource::Inline(s) => Ok(s.as_bytes().to_vec()),
        }
    }

    /// What identifies the current content without reading it: (mtime, length).
    fn stamp(&self) -> Stamp {
        match self {
            PemSource::File(p) => std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len()))),
            PemSource::Inline(_) => None,
        }
    }

    fn cert_key(&self) -> &'static str {
        match self {
            PemSource::File(_) => "cert_file",
            PemSource::Inline(_) => "cert",
        }
    }

    fn key_key(&self) -> &'static str {
        match self {
            PemSource::File(_) => "key_file",
            PemSource::Inline(_) => "key",
        }
    }
}

fn parse_certs(pem: &[u8], key: &str) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_server_config.{key}: not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config.{key}: no certificate found (expected PEM \"BEGIN CERTIFICATE\" blocks)"
        ));
    }
    Ok(certs)
}

fn parse_key(pem: &[u8], key: &str) -> std::result::Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| format!("tls_server_config.{key}: no usable PEM private key: {e}"))
}

/// Loads the certificate chain and key, checking that they belong together.
fn load_certified_key(
    cert: &PemSource,
    key: &PemSource,
    provider: &CryptoProvider,
) -> std::result::Result<CertifiedKey, String> {
    let certs = parse_certs(&cert.read(cert.cert_key())?, cert.cert_key())?;
    let private = parse_key(&key.read(key.key_key())?, key.key_key())?;
    CertifiedKey::from_der(certs, private, provider).map_err(|e| {
        let why = match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                "the private key is not the key of the (first) certificate".to_string()
            }
            other => other.to_string(),
        };
        format!(
            "tls_server_config: {} and {} do not form a usable pair: {why}",
            cert.cert_key(),
            key.key_key()
        )
    })
}

/// Serves the certificate, re-reading the files when their mtime or size changes.
/// A rotation caught half-written keeps the previous pair (and says so) until the
/// files are consistent again.
#[derive(Debug)]
struct ReloadingCert {
    cert: PemSource,
    key: PemSource,
    provider: Arc<CryptoProvider>,
    current: Mutex<Loaded>,
}

/// (mtime, size) of a file; `None` for inline PEM or an unreadable file.
type Stamp = Option<(SystemTime, u64)>;

/// The pair being served and the stamps of the files it was read from.
#[derive(Debug)]
struct Loaded {
    cert: Stamp,
    key: Stamp,
    pair: Arc<CertifiedKey>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let (cert, key) = (self.cert.stamp(), self.key.stamp());
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if (current.cert, current.key) != (cert, key) {
            match load_certified_key(&self.cert, &self.key, &self.provider) {
                Ok(pair) => {
                    tracing::info!("TLS certificate reloaded");
                    current.pair = Arc::new(pair);
                }
                Err(error) => {
                    tracing::warn!(%error, "TLS certificate changed but cannot be loaded; serving the previous one");
                }
            }
            // Remembered on failure too, so a broken file is not re-parsed per handshake.
            current.cert = cert;
            current.key = key;
        }
        Some(current.pair.clone())
    }
}

fn tls_settings(raw: RawTls, base: &Path) -> std::result::Result<TlsSettings, String> {
    if raw.client_allowed_sans.is_some() {
        return Err("tls_server_config.client_allowed_sans: not supported by leakwatch (remove it, or restrict clients with client_ca_file)".to_string());
    }
    let cert = PemSource::pick(raw.cert_file, raw.cert, "cert_file", "cert", base)?
        .ok_or("tls_server_config: cert_file is required (or cert, inline PEM)")?;
    let key = PemSource::pick(raw.key_file, raw.key, "key_file", "key", base)?
        .ok_or("tls_server_config: key_file is required (or key, inline PEM)")?;

    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = &raw.cipher_suites {
        provider.cipher_suites = cipher_suites(&provider, names)?;
    }
    if let Some(names) = &raw.curve_preferences {
        provider.kx_groups = curves(names)?;
    }
    let provider = Arc::new(provider);

    let min = tls_version(raw.min_version.as_deref(), "min_version")?.unwrap_or(TlsVersion::Tls12);
    let max = tls_version(raw.max_version.as_deref(), "max_version")?.unwrap_or(TlsVersion::Tls13);
    if min > max {
        return Err("tls_server_config: min_version is above max_version".to_string());
    }
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if min == TlsVersion::Tls12 {
        versions.push(&rustls::version::TLS12);
    }
    if max == TlsVersion::Tls13 {
        versions.push(&rustls::version::TLS13);
    }

    let client_auth = match raw.client_auth_type.as_deref().unwrap_or("") {
        "" | "NoClientCert" => ClientAuth::NoClientCert,
        "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
        "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
        "RequestClientCert" | "RequireAnyClientCert" => {
            return Err(format!(
                "tls_server_config.client_auth_type: {:?} (accepting unverified client certificates) is not supported by leakwatch; use RequireAndVerifyClientCert or VerifyClientCertIfGiven",
                raw.client_auth_type.unwrap_or_default()
            ));
        }
        other => {
            return Err(format!(
                "tls_server_config.client_auth_type: invalid value {other:?}, expected NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            ));
        }
    };
    let client_ca = PemSource::pick(
        raw.client_ca_file,
        raw.client_ca,
        "client_ca_file",
        "client_ca",
        base,
    )?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let builder = match (client_auth, client_ca) {
        (ClientAuth::NoClientCert, None) => builder.with_no_client_auth(),
        (ClientAuth::NoClientCert, Some(_)) => {
            return Err("tls_server_config: client_ca_file is set but client_auth_type is NoClientCert; set client_auth_type: RequireAndVerifyClientCert".to_string());
        }
        (_, None) => {
            return Err("tls_server_config.client_ca_file: required when client_auth_type verifies client certificates".to_string());
        }
        (auth, Some(ca)) => {
            let ca_key = match ca {
                PemSource::File(_) => "client_ca_file",
                PemSource::Inline(_) => "client_ca",
            };
            let mut roots = rustls::RootCertStore::empty();
            for c in parse_certs(&ca.read(ca_key)?, ca_key)? {
                roots
                    .add(c)
                    .map_err(|e| format!("tls_server_config.{ca_key}: {e}"))?;
            }
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if auth == ClientAuth::VerifyClientCertIfGiven {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| format!("tls_server_config.{ca_key}: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let ck = load_certified_key(&cert, &key, &provider)?;
    let resolver = ReloadingCert {
        current: Mutex::new(Loaded {
            cert: cert.stamp(),
            key: key.stamp(),
            pair: Arc::new(ck),
        }),
        cert,
        key,
        provider,
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    // Go's default is to prefer the server's order; rustls calls it ignore_client_order.
    config.ignore_client_order = raw.prefer_server_cipher_suites.unwrap_or(true);
    // axum serves HTTP/1.1 here; never let ALPN promise h2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsSettings {
        config: Arc::new(config),
        client_auth,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TlsVersion {
    Tls12,
    Tls13,
}

fn tls_version(v: Option<&str>, key: &str) -> std::result::Result<Option<TlsVersion>, String> {
    match v {
        None | Some("") => Ok(None),
        Some("TLS12") => Ok(Some(TlsVersion::Tls12)),
        Some("TLS13") => Ok(Some(TlsVersion::Tls13)),
        Some(v @ ("TLS10" | "TLS11")) => Err(format!(
            "tls_server_config.{key}: {v} is not supported (rustls speaks TLS12 and TLS13 only)"
        )),
        Some(v) => Err(format!(
            "tls_server_config.{key}: unknown TLS version {v:?}, expected TLS12 or TLS13"
        )),
    }
}

/// Go's names for TLS 1.2 suites, mapped onto rustls' (Go drops `_SHA256` from the
/// ChaCha20 names). As in Go, the list restricts TLS 1.2 only; TLS 1.3 suites stay.
fn cipher_suites(
    provider: &CryptoProvider,
    names: &[String],
) -> std::result::Result<Vec<rustls::SupportedCipherSuite>, String> {
    let name_of = |s: &rustls::SupportedCipherSuite| format!("{:?}", s.suite());
    let mut chosen: Vec<rustls::SupportedCipherSuite> = provider
        .cipher_suites
        .iter()
        .filter(|s| s.version() == &rustls::version::TLS13)
        .copied()
        .collect();
    for name in names {
        let wanted = if name.ends_with("_POLY1305") {
            format!("{name}_SHA256")
        } else {
            name.clone()
        };
        let found = provider
            .cipher_suites
            .iter()
            .find(|s| s.version() == &rustls::version::TLS12 && name_of(s) == wanted);
        match found {
            Some(s) => chosen.push(*s),
            None => {
                let supported: Vec<String> = provider
                    .cipher_suites
                    .iter()
                    .filter(|s| s.version() == &rustls::version::TLS12)
                    .map(name_of)
                    .collect();
                return Err(format!(
                    "tls_server_config.cipher_suites: {name:?} is not supported (supported: {})",
                    supported.join(", ")
                ));
            }
        }
    }
    Ok(chosen)
}

fn curves(
    names: &[String],
) -> std::result::Result<Vec<&'static dyn rustls::crypto::SupportedKxGroup>, String> {
    use rustls::crypto::ring::kx_group;
    names
        .iter()
        .map(|n| match n.as_str() {
            "X25519" => Ok(kx_group::X25519),
            "CurveP256" => Ok(kx_group::SECP256R1),
            "CurveP384" => Ok(kx_group::SECP384R1),
            other => Err(format!(
                "tls_server_config.curve_preferences: {other:?} is not supported (supported: X25519, CurveP256, CurveP384)"
            )),
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// Basic auth
// ---------------------------------------------------------------------------------

/// Checks `Authorization: Basic` against bcrypt hashes. Every failed attempt costs
/// one bcrypt computation whether or not the user exists (an unknown user is checked
/// against a dummy hash of the same cost), so timing does not reveal user names.
struct BasicAuth {
    users: Arc<BTreeMap<String, String>>,
    dummy_hash: String,
    /// (user, password) pairs verified before; see [`AUTH_CACHE_MAX`].
    good: Mutex<HashSet<(String, Vec<u8>)>>,
    /// One bcrypt at a time, as exporter-toolkit does: a flood of bad passwords costs
    /// one core, not all of them.
    bcrypt_turn: tokio::sync::Mutex<()>,
}

impl BasicAuth {
    fn new(users: Arc<BTreeMap<String, String>>) -> BasicAuth {
        let cost = users
            .values()
            .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
            .map(|p| p.get_cost())
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST);
        let dummy_hash = bcrypt::hash_with_salt(b"leakwatch-no-such-user", cost, [7u8; 16])
            .map(|h| h.to_string())
            .unwrap_or_default();
        BasicAuth {
            users,
            dummy_hash,
            good: Mutex::new(HashSet::new()),
            bcrypt_turn: tokio::sync::Mutex::new(()),
        }
    }

    async fn verify(&self, user: &str, password: &[u8]) -> bool {
        let entry = (user.to_string(), password.to_vec());
        if self
            .good
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&entry)
        {
            return true;
        }
        let (hash, known) = match self.users.get(user) {
            Some(h) => (h.clone(), true),
            None => (self.dummy_hash.clone(), false),
        };
        let _turn = self.bcrypt_turn.lock().await;
        let pw = password.to_vec();
        let matches =
            tokio::task::spawn_blocking(move || bcrypt::verify(pw, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        let ok = known && matches;
        if ok {
            let mut good = self.good.lock().unwrap_or_else(|e| e.into_inner());
            if good.len() >= AUTH_CACHE_MAX {
                good.clear();
            }
            good.insert(entry);
        }
        ok
    }
}

/// `Authorization: Basic base64(user:password)` -> (user, password). `None` for
/// anything else; never panics on hostile input.
fn parse_basic(value: &HeaderValue) -> Option<(String, Vec<u8>)> {
    let s = value.to_str().ok()?;
    let (scheme, rest) = s.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(rest.trim())?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let (user, password) = decoded.split_at(colon);
    let user = String::from_utf8(user.to_vec()).ok()?;
    Some((user, password.get(1..)?.to_vec()))
}

/// Standard base64 with padding (RFC 4648 §4), the alphabet of RFC 7617 credentials.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let body = s.trim_end_matches('=');
    let padding = s.len() - body.len();
    if padding > 2 || (!s.len().is_multiple_of(4) && padding > 0) || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.as_bytes().chunks(4) {
        let mut acc: u32 = 0;
        for &c in chunk {
            acc = (acc << 6) | sextet(c)?;
        }
        match chunk.len() {
            4 => out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]),
            3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
            2 => out.push((acc >> 4) as u8),
            _ => return None,
        }
    }
    Some(out)
}

fn unauthorized() -> Response {
    let mut resp = Response::new(Body::from("Unauthorized\n"));
    *resp.status_mut() = StatusCode::UNAUTHORIZED;
    let challenge = format!("Basic realm=\"{REALM}\"");
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

async fn require_auth(State(auth): State<Arc<BasicAuth>>, req: Request, next: Next) -> Response {
    let creds = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(parse_basic);
    match creds {
        Some((user, password)) if auth.verify(&user, &password).await => next.run(req).await,
        // Neither the user name nor the password is logged: a password typed into
        // the user field would end up in the log.
        _ => {
            tracing::debug!(path = %req.uri().path(), "basic auth failed");
            unauthorized()
        }
    }
}

async fn add_headers(
    State(headers): State<Arc<Vec<(HeaderName, HeaderValue)>>>,
    req: Request,
    next: Next,
) -> Response {
    let mut resp = next.run(req).await;
    for (k, v) in headers.iter() {
        if !resp.headers().contains_key(k) {
            resp.headers_mut().insert(k.clone(), v.clone());
        }
    }
    resp
}

/// `app` with the config's basic auth and extra headers applied to every route.
pub fn protect(app: axum::Router, web: &WebConfig) -> axum::Router {
    let mut app = app;
    if !web.users.is_empty() {
        let auth = Arc::new(BasicAuth::new(web.users.clone()));
        app = app.layer(middleware::from_fn_with_state(auth, require_auth));
    }
    if !web.headers.is_empty() {
        // Outermost, so the 401 carries the headers too (as in exporter-toolkit).
        app = app.layer(middleware::from_fn_with_state(
            Arc::new(web.headers.clone()),
            add_headers,
        ));
    }
    app
}

// ---------------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------------

/// A listener whose connections are TLS streams. Handshakes run in their own tasks,
/// so one slow or silent client never holds up the others.
struct TlsListener {
    incoming: tokio::sync::mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = tcp.accept() => a,
                    // The server is gone (shut down): stop accepting.
                    _ = tx.closed() => return,
                };
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(error) => {
                        // EMFILE and friends: back off instead of spinning, as axum does.
                        tracing::warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            incoming: rx,
            local,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(conn) => conn,
            // Only when the accept task ended, which it does not while we hold the
            // receiver; wait for shutdown rather than spin.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Serves `app` on `listener` with `web` applied (TLS, client certificates, basic
/// auth, extra headers; plain HTTP with `None`) until `shutdown` completes, then
/// finishes in-flight requests (graceful).
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
    match &web.tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(tls) => {
            tracing::info!(client_auth = ?tls.client_auth, basic_auth = web.basic_auth_enabled(), "TLS is enabled");
            let listener = TlsListener::new(listener, tls.config.clone())?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_table() {
        let cases: [(&str, Option<&[u8]>); 8] = [
            ("", Some(b"")),
            ("YQ==", Some(b"a")),
            ("YWI=", Some(b"ab")),
            ("YWJj", Some(b"abc")),
            ("YWxpY2U6c2VjcmV0", Some(b"alice:secret")),
            ("YQ", Some(b"a")),
            ("Y", None),
            ("YW*j", None),
        ];
        for (input, want) in cases {
            assert_eq!(base64_decode(input).as_deref(), want, "{input:?}");
        }
    }

    #[test]
    fn parse_basic_table() {
        type Case<'a> = (&'a str, Option<(&'a str, &'a [u8])>);
        let cases: [Case; 6] = [
            ("Basic YWxpY2U6c2VjcmV0", Some(("alice", b"secret"))),
            ("basic YWxpY2U6c2VjcmV0", Some(("alice", b"secret"))),
            // "alice:a:b" — the password may contain colons.
            ("Basic YWxpY2U6YTpi", Some(("alice", b"a:b"))),
            ("Basic YWxpY2U=", None), // no colon
            ("Bearer YWxpY2U6c2VjcmV0", None),
            ("Basic !!!", None),
        ];
        for (input, want) in cases {
            let got = parse_basic(&HeaderValue::from_str(input).unwrap());
            let got_ref = got.as_ref().map(|(u, p)| (u.as_str(), p.as_slice()));
            assert_eq!(got_ref, want, "{input:?}");
        }
    }

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
