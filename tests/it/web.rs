//! The web config (`--web.config.file`): real TLS handshakes against a test CA made
//! with rcgen, client certificates, basic auth, extra headers, the exact error text
//! of bad files, and that credentials never reach the log.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use leakwatch::config::Config;
use leakwatch::http::web::WebConfig;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::support::free_port;

const CONFIG: &str = "targets:\n  - name: orders\n    url: http://127.0.0.1:1\n";
const PASSWORD: &str = "s3cret-Leak!watch";

/// A CA with a server certificate for 127.0.0.1/localhost and a client certificate,
/// plus a second, unrelated CA's client certificate. All PEM.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
    stranger_cert: String,
    stranger_key: String,
}

fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names.clone()).unwrap();
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    fn new() -> Pki {
        let (ca, issuer) = new_ca("leakwatch test CA");
        let (server_cert, server_key) = leaf(
            &issuer,
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) = leaf(
            &issuer,
            &["prometheus"],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let (_, other) = new_ca("some other CA");
        let (stranger_cert, stranger_key) =
            leaf(&other, &["prometheus"], ExtendedKeyUsagePurpose::ClientAuth);
        Pki {
            ca,
            server_cert,
            server_key,
            client_cert,
            client_key,
            stranger_cert,
            stranger_key,
        }
    }

    /// Writes ca.pem, server.pem, server.key into `dir`.
    fn write(&self, dir: &Path) {
        std::fs::write(dir.join("ca.pem"), &self.ca).unwrap();
        std::fs::write(dir.join("server.pem"), &self.server_cert).unwrap();
        std::fs::write(dir.join("server.key"), &self.server_key).unwrap();
    }
}

fn write_web(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("web.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// leakwatch's real router behind `web::serve` on 127.0.0.1:0; stops when dropped.
struct Server {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn serve(web: Option<WebConfig>) -> Server {
    let state = leakwatch::AppState::new(Config::from_yaml(CONFIG).unwrap()).unwrap();
    let app = leakwatch::http::app(Arc::new(state));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        leakwatch::http::web::serve(listener, app, web, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Server { addr, _stop: tx }
}

fn client(ca: Option<&str>, identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .tls_built_in_root_certs(false);
    if let Some(ca) = ca {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
    }
    if let Some((cert, key)) = identity {
        let pem = format!("{cert}{key}");
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

#[tokio::test]
async fn tls_serves_metrics_and_plain_http_to_the_tls_port_fails() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    pki.write(dir.path());
    // Relative paths are resolved against the web config's directory.
    let web = write_web(
        dir.path(),
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  min_version: TLS13\n",
    );
    let server = serve(Some(WebConfig::load(&web).unwrap())).await;

    let c = client(Some(&pki.ca), None);
    let resp = c
        .get(format!("https://127.0.0.1:{}/metrics", server.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    let body = resp.text().await.unwrap();
    assert!(body.contains("leakwatch_targets 1"), "{body}");

    let plain = client(None, None)
        .get(format!("http://127.0.0.1:{}/metrics", server.addr.port()))
        .send()
        .await;
    assert!(
        plain.is_err(),
        "plain HTTP to the TLS port answered: {plain:?}"
    );

    // min_version: TLS13 turns a TLS 1.2-only client away.
    let tls12 = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca.as_bytes()).unwrap())
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap()
        .get(format!("https://127.0.0.1:{}/metrics", server.addr.port()))
        .send()
        .await;
    let err = format!("{:?}", tls12.unwrap_err());
    assert!(err.contains("ProtocolVersion"), "{err}");

    // A client that does not trust the CA refuses the certificate.
    let untrusting = client(None, None)
        .get(format!("https://127.0.0.1:{}/metrics", server.addr.port()))
        .send()
        .await;
    let err = format!("{:?}", untrusting.unwrap_err());
    assert!(err.contains("UnknownIssuer"), "{err}");

    // The server still serves after the failed handshakes.
    let again = c
        .get(format!(
            "https://localhost:{}/-/healthy",
            server.addr.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn basic_auth_protects_every_path() {
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let web = write_web(
        dir.path(),
        &format!(
            "basic_auth_users:\n  prometheus: {hash}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        ),
    );
    let server = serve(Some(WebConfig::load(&web).unwrap())).await;
    let c = client(None, None);
    let url = |p: &str| format!("http://{}{p}", server.addr);

    for path in ["/metrics", "/", "/-/healthy", "/-/ready"] {
        let resp = c.get(url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{path}");
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Basic realm=\"leakwatch\"",
            "{path}"
        );
        // Configured headers are on the 401 too.
        assert_eq!(resp.headers()["x-frame-options"], "deny", "{path}");
    }

    let cases: [(&str, &str, u16); 5] = [
        ("prometheus", "wrong", 401),
        ("prometheus", "", 401),
        ("nobody", PASSWORD, 401),
        ("PROMETHEUS", PASSWORD, 401),
        ("prometheus", PASSWORD, 200),
    ];
    for (user, password, want) in cases {
        let resp = c
            .get(url("/metrics"))
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), want, "{user}:{password}");
        if want == 200 {
            assert_eq!(resp.headers()["x-frame-options"], "deny");
            let body = resp.text().await.unwrap();
            assert!(body.contains("leakwatch_targets 1"), "{body}");
        }
    }
    // A second good request is answered from the cache, still 200.
    let resp = c
        .get(url("/-/healthy"))
        .basic_auth("prometheus", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn client_certificates_are_required_and_verified() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    pki.write(dir.path());
    let web = write_web(
        dir.path(),
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n",
    );
    let server = serve(Some(WebConfig::load(&web).unwrap())).await;
    let url = format!("https://127.0.0.1:{}/metrics", server.addr.port());

    let without = client(Some(&pki.ca), None).get(&url).send().await;
    let err = format!("{:?}", without.unwrap_err());
    assert!(err.contains("CertificateRequired"), "{err}");

    let stranger = client(Some(&pki.ca), Some((&pki.stranger_cert, &pki.stranger_key)))
        .get(&url)
        .send()
        .await;
    let err = format!("{:?}", stranger.unwrap_err());
    assert!(
        err.contains("UnknownCA") || err.contains("BadCertificate"),
        "{err}"
    );

    let with = client(Some(&pki.ca), Some((&pki.client_cert, &pki.client_key)))
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), 200);
    assert!(with.text().await.unwrap().contains("leakwatch_targets 1"));
}

#[tokio::test]
async fn verify_client_cert_if_given_admits_anonymous_but_not_strangers() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    pki.write(dir.path());
    let web = write_web(
        dir.path(),
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n",
    );
    let server = serve(Some(WebConfig::load(&web).unwrap())).await;
    let url = format!("https://127.0.0.1:{}/-/healthy", server.addr.port());
    let anonymous = client(Some(&pki.ca), None).get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 200);
    let stranger = client(Some(&pki.ca), Some((&pki.stranger_cert, &pki.stranger_key)))
        .get(&url)
        .send()
        .await;
    assert!(stranger.is_err(), "{stranger:?}");
}

#[tokio::test]
async fn rotated_certificate_files_are_served_without_restart() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    pki.write(dir.path());
    let web = write_web(
        dir.path(),
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n",
    );
    let server = serve(Some(WebConfig::load(&web).unwrap())).await;
    let url = format!("https://127.0.0.1:{}/-/healthy", server.addr.port());
    let old = client(Some(&pki.ca), None);
    assert_eq!(old.get(&url).send().await.unwrap().status(), 200);

    // A new CA and server pair, written over the files (different size, so the
    // change is seen even within one mtime tick).
    let (new_ca_pem, issuer) = new_ca("rotated CA with a longer name");
    let (cert, key) = leaf(
        &issuer,
        &["127.0.0.1", "localhost", "rotated.example"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    std::fs::write(dir.path().join("server.key"), key).unwrap();
    std::fs::write(dir.path().join("server.pem"), cert).unwrap();

    let fresh = client(Some(&new_ca_pem), None);
    assert_eq!(fresh.get(&url).send().await.unwrap().status(), 200);
    let stale = client(Some(&pki.ca), None).get(&url).send().await;
    assert!(stale.is_err(), "the old CA still verifies: {stale:?}");
}

#[tokio::test]
async fn run_serves_tls_and_shuts_down_gracefully() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    pki.write(dir.path());
    let web = write_web(
        dir.path(),
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n",
    );
    let web = WebConfig::load(&web).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(leakwatch::run(
        Config::from_yaml(CONFIG).unwrap(),
        leakwatch::RunOptions {
            web: Some(web),
            ..Default::default()
        },
        listener,
        async move {
            let _ = rx.await;
        },
    ));
    let c = client(Some(&pki.ca), None);
    let resp = c
        .get(format!("https://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let _ = tx.send(());
    let done = tokio::time::timeout(Duration::from_secs(10), task).await;
    assert!(
        matches!(done, Ok(Ok(Ok(())))),
        "run did not stop cleanly: {done:?}"
    );
}

#[test]
fn bad_web_configs_are_rejected_naming_the_key() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    pki.write(dir.path());
    let d = dir.path().display().to_string();
    let good_tls = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";
    let cases: Vec<(&str, String, String)> = vec![
        (
            "unknown top-level key",
            "tls_config:\n  cert_file: server.pem\n".to_string(),
            "unknown field `tls_config`, expected one of `tls_server_config`, `http_server_config`, `basic_auth_users` at line 1 column 1".to_string(),
        ),
        (
            "unknown key under tls_server_config",
            format!("{good_tls}  cert_flie: x.pem\n"),
            "tls_server_config: unknown field `cert_flie`, expected one of `cert_file`, `key_file`, `cert`, `key`, `client_auth_type`, `client_ca_file`, `client_ca`, `min_version`, `max_version`, `cipher_suites`, `curve_preferences`, `prefer_server_cipher_suites`, `client_allowed_sans` at line 4 column 3".to_string(),
        ),
        (
            "unknown key under http_server_config",
            "http_server_config:\n  header:\n    X-Frame-Options: deny\n".to_string(),
            "http_server_config: unknown field `header`, expected `headers` or `http2` at line 2 column 3".to_string(),
        ),
        (
            "missing cert file",
            "tls_server_config:\n  cert_file: missing.pem\n  key_file: server.key\n".to_string(),
            format!("tls_server_config.cert_file: reading {d}/missing.pem: No such file or directory (os error 2)"),
        ),
        (
            "missing key file",
            "tls_server_config:\n  cert_file: server.pem\n  key_file: missing.key\n".to_string(),
            format!("tls_server_config.key_file: reading {d}/missing.key: No such file or directory (os error 2)"),
        ),
        (
            "no cert_file",
            "tls_server_config:\n  key_file: server.key\n".to_string(),
            "tls_server_config: cert_file is required (or cert, inline PEM)".to_string(),
        ),
        (
            "cert file is not a certificate",
            "tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n".to_string(),
            "tls_server_config.cert_file: no certificate found (expected PEM \"BEGIN CERTIFICATE\" blocks)".to_string(),
        ),
        (
            "key of another certificate",
            "tls_server_config:\n  cert_file: server.pem\n  key_file: client.key\n".to_string(),
            "tls_server_config: cert_file and key_file do not form a usable pair: the private key is not the key of the (first) certificate".to_string(),
        ),
        (
            "bad bcrypt hash",
            "basic_auth_users:\n  alice: plaintext-password\n".to_string(),
            "basic_auth_users.alice: not a bcrypt hash (Invalid hash: the hash format is malformed; expected 60 ASCII bytes); generate one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`".to_string(),
        ),
        (
            "bad client_auth_type",
            format!("{good_tls}  client_auth_type: RequireClientCert\n  client_ca_file: ca.pem\n"),
            "tls_server_config.client_auth_type: invalid value \"RequireClientCert\", expected NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert".to_string(),
        ),
        (
            "unsupported client_auth_type",
            format!("{good_tls}  client_auth_type: RequireAnyClientCert\n"),
            "tls_server_config.client_auth_type: \"RequireAnyClientCert\" (accepting unverified client certificates) is not supported by leakwatch; use RequireAndVerifyClientCert or VerifyClientCertIfGiven".to_string(),
        ),
        (
            "client auth without a CA",
            format!("{good_tls}  client_auth_type: RequireAndVerifyClientCert\n"),
            "tls_server_config.client_ca_file: required when client_auth_type verifies client certificates".to_string(),
        ),
        (
            "CA without client auth",
            format!("{good_tls}  client_ca_file: ca.pem\n"),
            "tls_server_config: client_ca_file is set but client_auth_type is NoClientCert; set client_auth_type: RequireAndVerifyClientCert".to_string(),
        ),
        (
            "TLS 1.1",
            format!("{good_tls}  min_version: TLS11\n"),
            "tls_server_config.min_version: TLS11 is not supported (rustls speaks TLS12 and TLS13 only)".to_string(),
        ),
        (
            "min above max",
            format!("{good_tls}  min_version: TLS13\n  max_version: TLS12\n"),
            "tls_server_config: min_version is above max_version".to_string(),
        ),
        (
            "unknown cipher suite",
            format!("{good_tls}  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n"),
            "tls_server_config.cipher_suites: \"TLS_RSA_WITH_AES_128_CBC_SHA\" is not supported (supported: TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)".to_string(),
        ),
        (
            "unknown curve",
            format!("{good_tls}  curve_preferences: [CurveP521]\n"),
            "tls_server_config.curve_preferences: \"CurveP521\" is not supported (supported: X25519, CurveP256, CurveP384)".to_string(),
        ),
        (
            "client_allowed_sans",
            format!("{good_tls}  client_allowed_sans: [prometheus]\n"),
            "tls_server_config.client_allowed_sans: not supported by leakwatch (remove it, or restrict clients with client_ca_file)".to_string(),
        ),
        (
            "header that cannot be set",
            "http_server_config:\n  headers:\n    Server: leakwatch\n".to_string(),
            "http_server_config.headers: HTTP header \"Server\" can not be configured (allowed: Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, Content-Security-Policy)".to_string(),
        ),
        (
            "header value outside its enumeration",
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n".to_string(),
            "http_server_config.headers.X-Frame-Options: invalid value \"allow\", expected one of [\"deny\", \"sameorigin\"]".to_string(),
        ),
    ];
    std::fs::write(dir.path().join("client.key"), &pki.client_key).unwrap();
    let mut wrong = Vec::new();
    for (what, yaml, want) in cases {
        let path = write_web(dir.path(), &yaml);
        let err = WebConfig::load(&path).expect_err(what).to_string();
        let want = format!("config: web config {}: {want}", path.display());
        if err != want {
            wrong.push(format!("{what}:\n   got: {err}\n  want: {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn accepted_web_configs() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    pki.write(dir.path());
    let inline = format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}",
        indent(&pki.server_cert),
        indent(&pki.server_key)
    );
    let cases: Vec<(&str, String, bool, bool)> = vec![
        ("empty file", String::new(), false, false),
        (
            "exporter-toolkit example",
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  min_version: TLS12\n  max_version: TLS13\n  cipher_suites: [TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n  curve_preferences: [X25519, CurveP256]\n  prefer_server_cipher_suites: true\nhttp_server_config:\n  http2: true\n  headers:\n    Strict-Transport-Security: max-age=31536000\n".to_string(),
            true,
            false,
        ),
        ("inline cert and key", inline, true, false),
        (
            "basic auth only",
            format!(
                "basic_auth_users:\n  alice: {}\n  bob: {}\n",
                bcrypt::hash("a", 4).unwrap(),
                bcrypt::hash("b", 5).unwrap()
            ),
            false,
            true,
        ),
    ];
    for (what, yaml, tls, auth) in cases {
        let path = write_web(dir.path(), &yaml);
        let web = WebConfig::load(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(web.tls_enabled(), tls, "{what}");
        assert_eq!(web.basic_auth_enabled(), auth, "{what}");
    }
}

/// The example in docs/web-config.md loads, with certificates under its file names.
#[test]
fn documented_example_loads() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/web-config.md"))
        .unwrap();
    let example = doc
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a yaml block in docs/web-config.md");
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("leakwatch.crt"), &pki.server_cert).unwrap();
    std::fs::write(dir.path().join("leakwatch.key"), &pki.server_key).unwrap();
    std::fs::write(dir.path().join("prometheus-ca.crt"), &pki.ca).unwrap();
    let web = WebConfig::load(&write_web(dir.path(), example))
        .unwrap_or_else(|e| panic!("{e}\n{example}"));
    assert!(web.tls_enabled());
    assert!(web.basic_auth_enabled());
    assert_eq!(
        format!("{web:?}"),
        "WebConfig { tls: Some(RequireAndVerifyClientCert), users: [\"prometheus\"], headers: [\"strict-transport-security\", \"x-content-type-options\"] }"
    );
}

fn indent(pem: &str) -> String {
    pem.lines().map(|l| format!("    {l}\n")).collect()
}

/// The binary with `--web.config.file`: a bad file stops it before it listens; a good
/// one serves TLS + basic auth, and neither the password nor its hash is ever logged,
/// even at debug level after good and bad logins.
#[test]
fn binary_checks_the_file_and_never_logs_credentials() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    pki.write(dir.path());
    let config = dir.path().join("leakwatch.yaml");
    std::fs::write(&config, CONFIG).unwrap();

    let bad = write_web(dir.path(), "basic_auth_users:\n  alice: nope\n");
    let port = free_port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_leakwatch"))
        .arg("--config")
        .arg(&config)
        .arg("--web.config.file")
        .arg(&bad)
        .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "config: web config {}: basic_auth_users.alice: not a bcrypt hash",
            bad.display()
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("listening"),
        "listened despite a bad web config: {stderr}"
    );

    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let web = write_web(
        dir.path(),
        &format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\nbasic_auth_users:\n  prometheus: {hash}\n"
        ),
    );
    let log = dir.path().join("stderr.log");
    let port = free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_leakwatch"))
        .arg("--config")
        .arg(&config)
        .arg("--web.config.file")
        .arg(&web)
        .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
        .args(["--log.level", "debug"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = client(Some(&pki.ca), None);
    let url = format!("https://127.0.0.1:{port}/metrics");
    let statuses = rt.block_on(async {
        // Wait for the listener: a 401 means TLS and auth are up.
        let mut first = None;
        for _ in 0..200 {
            if let Ok(r) = c.get(&url).send().await {
                first = Some(r.status().as_u16());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let wrong = c
            .get(&url)
            .basic_auth("prometheus", Some("not-the-password"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        // A password typed into the user field must not leak either.
        let swapped = c
            .get(&url)
            .basic_auth(PASSWORD, Some("prometheus"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        let right = c
            .get(&url)
            .basic_auth("prometheus", Some(PASSWORD))
            .send()
            .await
            .map(|r| r.status().as_u16());
        (first, wrong.ok(), swapped.ok(), right.ok())
    });
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut exited = false;
    for _ in 0..100 {
        if let Ok(Some(_)) = child.try_wait() {
            exited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        statuses,
        (Some(401), Some(401), Some(401), Some(200)),
        "{stderr}"
    );
    assert!(exited, "leakwatch did not stop on SIGTERM: {stderr}");
    assert!(stderr.contains("TLS is enabled"), "{stderr}");
    assert!(stderr.contains("basic auth is enabled users=1"), "{stderr}");
    assert!(stderr.contains("basic auth failed"), "{stderr}");
    for secret in [PASSWORD, hash.as_str(), &hash[7..29]] {
        assert!(
            !stderr.contains(secret),
            "{secret:?} is in the log:\n{stderr}"
        );
    }
    // The base64 form of the credentials is not logged either.
    let b64 = "cHJvbWV0aGV1czpzM2NyZXQtTGVhayF3YXRjaA"; // prometheus:s3cret-Leak!watch
    assert!(!stderr.contains(b64), "{stderr}");
}

// ---------------------------------------------------------------------------------
// The server under hostile load: idle connections, half headers, the open-file limit
// ---------------------------------------------------------------------------------

/// The real binary, started by `sh` after `ulimit {limit}`, on a free loopback port.
/// Killed when dropped.
struct Limited {
    child: std::process::Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Limited {
    fn start(limit: &str, extra: &[&str]) -> Limited {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("leakwatch.yaml");
        std::fs::write(&config, CONFIG).unwrap();
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit {limit} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_leakwatch"))
            .arg("--config")
            .arg(&config)
            .args(["--web.listen-address", &addr.to_string()])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut lw = Limited { child, addr, dir };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while get_metrics(addr, Duration::from_secs(2)).is_err() {
            if let Ok(Some(status)) = lw.child.try_wait() {
                panic!("leakwatch exited with {status}: {}", lw.stderr());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "leakwatch never answered: {}",
                lw.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        lw
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Open file descriptors of the process right now.
    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// (soft, hard) "Max open files" from /proc/PID/limits.
    fn nofile_limits(&self) -> (String, String) {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.child.id())).unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        let mut fields = line["Max open files".len()..].split_whitespace();
        (
            fields.next().unwrap().to_string(),
            fields.next().unwrap().to_string(),
        )
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET /metrics with `timeout` for connecting and for the answer; the body on a 200.
fn get_metrics(addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout)).unwrap();
    s.set_write_timeout(Some(timeout)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    if answer.starts_with("HTTP/1.1 200") && answer.contains("leakwatch_targets") {
        Ok(answer)
    } else {
        Err(format!("unexpected answer: {:.200}", answer))
    }
}

/// Finding 2 of issue 15: with the usual 1024 open-file limit, 1,100 idle connections
/// made `/metrics` unreachable ("Too many open files" on accept) for as long as they
/// were held. Now the connection cap keeps descriptors for the exporter's own work,
/// and idle or half-header connections make way for a client that sends a request.
#[test]
fn idle_connections_and_half_headers_do_not_take_metrics_down() {
    // This test process holds 1,200 sockets itself.
    let own = rlimit::increase_nofile_limit(4096).unwrap();
    assert!(
        own >= 1400,
        "this test needs 1400 open files, the hard limit is {own}"
    );
    let lw = Limited::start("-n 1024", &[]);
    assert_eq!(lw.nofile_limits(), ("1024".into(), "1024".into()));

    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..1200 {
        use std::io::Write;
        match std::net::TcpStream::connect_timeout(&lw.addr, Duration::from_secs(1)) {
            Ok(mut s) => {
                // A third send nothing, a third half a request head, a third one byte.
                let _ = match i % 3 {
                    0 => Ok(()),
                    1 => s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "),
                    _ => s.write_all(b"G"),
                };
                held.push(s);
            }
            Err(_) => refused += 1,
        }
    }
    let fds_while_held = lw.open_fds();

    let started = std::time::Instant::now();
    let mut last = String::new();
    let answered = loop {
        match get_metrics(lw.addr, Duration::from_secs(5)) {
            Ok(_) => break true,
            Err(e) => last = e,
        }
        if started.elapsed() > Duration::from_secs(40) {
            break false;
        }
    };
    let fds_after = lw.open_fds();
    assert!(
        answered,
        "/metrics did not answer within 40 s while {} idle connections were held \
         ({refused} refused); leakwatch had {fds_while_held} open files; last error: {last}\n{}",
        held.len(),
        lw.stderr().lines().take(20).collect::<Vec<_>>().join("\n")
    );
    // The cap (512 by default) bounds the descriptors connections take.
    assert!(
        fds_while_held.max(fds_after) <= 512 + 64,
        "leakwatch held {fds_while_held} then {fds_after} open files: the connection cap is not applied"
    );
    eprintln!(
        "held {} connections; /metrics answered after {:?}; leakwatch open files {fds_while_held} -> {fds_after}",
        held.len(),
        started.elapsed()
    );
}

/// The soft RLIMIT_NOFILE is raised to the hard limit at start.
#[test]
fn soft_open_file_limit_is_raised_to_the_hard_limit() {
    let lw = Limited::start("-S -n 256", &[]);
    let (soft, hard) = lw.nofile_limits();
    assert_ne!(hard, "256", "the hard limit is 256 here: nothing to test");
    assert_eq!(soft, hard, "soft limit not raised");
}

/// `--web.max-connections` is the cap: with 8, the ninth idle connection is never
/// served alongside the eight, and leakwatch's descriptors stay bounded.
#[test]
fn max_connections_flag_caps_connections() {
    let lw = Limited::start("-n 1024", &["--web.max-connections", "8"]);
    let before = lw.open_fds();
    let held: Vec<_> = (0..100)
        .map(|_| std::net::TcpStream::connect_timeout(&lw.addr, Duration::from_secs(3)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let during = lw.open_fds();
    assert!(
        during <= before + 8 + 2,
        "{during} open files with 100 idle connections and a cap of 8 (before: {before})"
    );
    // A real request still gets through: the oldest idle connection makes way.
    get_metrics(lw.addr, Duration::from_secs(20)).unwrap();
    drop(held);
}

/// `web::serve` with `limits` around any router; stops when dropped.
async fn serve_router(app: axum::Router, limits: leakwatch::http::web::ServerLimits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let web = WebConfig::default().with_limits(limits);
    tokio::spawn(async move {
        leakwatch::http::web::serve(listener, app, Some(web), async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Server { addr, _stop: tx }
}

/// Everything the server sends until it closes (or `bound` passes: then `None`).
async fn read_until_closed(s: &mut tokio::net::TcpStream, bound: Duration) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    match tokio::time::timeout(bound, s.read_to_end(&mut got)).await {
        Ok(_) => Some(got),
        Err(_) => None,
    }
}

/// A request head must arrive within the header-read timeout: a silent connection, half
/// a head and a kept-alive connection with no next request are all closed.
#[tokio::test]
async fn header_read_timeout_closes_silent_and_half_header_connections() {
    use tokio::io::AsyncWriteExt;
    let limits = leakwatch::http::web::ServerLimits {
        header_read_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let server = serve_router(
        axum::Router::new().route("/", axum::routing::get(|| async { "ok" })),
        limits,
    )
    .await;
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut half = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    half.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    let mut kept = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    for (what, s) in [
        ("silent", &mut silent),
        ("half a head", &mut half),
        ("kept alive", &mut kept),
    ] {
        let got = read_until_closed(s, Duration::from_secs(10)).await;
        assert!(got.is_some(), "{what}: connection still open after 10 s");
        if what == "kept alive" {
            let text = String::from_utf8_lossy(got.as_deref().unwrap_or_default()).into_owned();
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        }
    }
}

/// A client that stops reading its answer is closed after the idle timeout (before:
/// it held its connection and the answer's memory for as long as it liked), while a
/// handler that runs longer than the idle timeout still answers.
#[tokio::test]
async fn idle_timeout_closes_a_stalled_reader_but_not_a_slow_handler() {
    use tokio::io::AsyncWriteExt;
    const BIG: usize = 64 << 20;
    let limits = leakwatch::http::web::ServerLimits {
        idle_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let app = axum::Router::new()
        .route("/big", axum::routing::get(|| async { vec![b'x'; BIG] }))
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                "done"
            }),
        );
    let server = serve_router(app, limits).await;

    let mut stalled = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stalled
        .write_all(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // Read nothing for well over the idle timeout.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let got = read_until_closed(&mut stalled, Duration::from_secs(20)).await;
    let got = got.expect("the stalled connection was neither closed nor finished in 20 s");
    assert!(
        got.len() < BIG,
        "the stalled reader was never cut off: it received all {} bytes",
        got.len()
    );
    let answer = read_until_closed(&mut slow, Duration::from_secs(20))
        .await
        .expect("the slow handler's connection never closed");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"),
        "{answer}"
    );
}

/// At the cap, connections whose requests are running are never replaced: the next
/// connection waits for one of them to finish.
#[tokio::test]
async fn busy_connections_are_not_replaced_at_the_cap() {
    use tokio::io::AsyncWriteExt;
    let limits = leakwatch::http::web::ServerLimits {
        max_connections: 2,
        ..Default::default()
    };
    let app = axum::Router::new()
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_millis(2500)).await;
                "slow done"
            }),
        )
        .route("/fast", axum::routing::get(|| async { "fast done" }));
    let server = serve_router(app, limits).await;
    let mut conns = Vec::new();
    for path in ["/slow", "/slow", "/fast"] {
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        conns.push(s);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, want) in ["slow done", "slow done", "fast done"].iter().enumerate() {
        let got = read_until_closed(&mut conns[i], Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("connection {i} never closed"));
        let got = String::from_utf8_lossy(&got).into_owned();
        assert!(got.ends_with(want), "connection {i}: {got:?}");
    }
}
