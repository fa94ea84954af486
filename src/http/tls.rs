//! TLS for leakwatch's own endpoints: certificates and keys (files re-read when they
//! change, or inline PEM), client certificate verification, versions, cipher suites
//! and curves as exporter-toolkit names them. Handshakes run in each connection's task
//! (`super::server`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Deserialize;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};

/// `tls_server_config` as written in the web config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    #[serde(default)]
    pub(super) cert_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) key_file: Option<PathBuf>,
    /// Inline PEM certificate chain (instead of `cert_file`).
    #[serde(default)]
    pub(super) cert: Option<String>,
    /// Inline PEM private key (instead of `key_file`).
    #[serde(default)]
    pub(super) key: Option<String>,
    #[serde(default)]
    pub(super) client_auth_type: Option<String>,
    #[serde(default)]
    pub(super) client_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) client_ca: Option<String>,
    #[serde(default)]
    pub(super) min_version: Option<String>,
    #[serde(default)]
    pub(super) max_version: Option<String>,
    #[serde(default)]
    pub(super) cipher_suites: Option<Vec<String>>,
    #[serde(default)]
    pub(super) curve_preferences: Option<Vec<String>>,
    #[serde(default)]
    pub(super) prefer_server_cipher_suites: Option<bool>,
    // exporter-toolkit keys leakwatch cannot honour: declared so the error says
    // "not supported" instead of "unknown field".
    #[serde(default)]
    pub(super) client_allowed_sans: Option<serde_norway::Value>,
}

#[derive(Clone)]
pub(super) struct TlsSettings {
    pub(super) config: Arc<ServerConfig>,
    pub(super) client_auth: ClientAuth,
}

/// exporter-toolkit's `client_auth_type` values that rustls can enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientAuth {
    NoClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

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

pub(super) fn tls_settings(raw: RawTls, base: &Path) -> std::result::Result<TlsSettings, String> {
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
