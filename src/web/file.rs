//! The web configuration file as written, and turning it into settings:
//! every referenced file must load, every hash must be bcrypt, every header allowed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// What is wrong with a web configuration, naming the file or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WebConfigError(String);

impl From<String> for WebConfigError {
    fn from(message: String) -> Self {
        WebConfigError(message)
    }
}

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebConfigFile {
    #[serde(default)]
    tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    http_server_config: HttpServerConfig,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsServerConfig {
    cert_file: PathBuf,
    key_file: PathBuf,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpServerConfig {
    #[serde(default = "yes")]
    http2: bool,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            http2: true,
            headers: BTreeMap::new(),
        }
    }
}

fn yes() -> bool {
    true
}

/// Response headers the file may set (as exporter-toolkit allows).
const ALLOWED_HEADERS: [&str; 5] = [
    "content-security-policy",
    "strict-transport-security",
    "x-content-type-options",
    "x-frame-options",
    "x-xss-protection",
];

/// A loaded, checked web configuration.
pub struct WebSettings {
    /// The TLS server configuration, when `tls_server_config` is set.
    pub tls: Option<Arc<ServerConfig>>,
    /// User name to bcrypt hash; empty means no authentication.
    pub(super) users: HashMap<String, String>,
    /// Extra response headers.
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    /// `http_server_config.http2`.
    pub http2: bool,
    /// The files this configuration was built from, for change detection.
    pub(super) files: Vec<PathBuf>,
}

/// Reads and checks a web configuration file: every referenced file must
/// load, every hash must be bcrypt, every header allowed.
pub fn load(path: &Path) -> Result<WebSettings, WebConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: WebConfigFile = if text.trim().is_empty() {
        WebConfigFile::default()
    } else {
        serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut files = vec![path.to_path_buf()];
    let tls = match &file.tls_server_config {
        Some(t) => Some(Arc::new(tls_config(
            t,
            base,
            file.http_server_config.http2,
            &mut files,
        )?)),
        None => None,
    };
    for (user, hash) in &file.basic_auth_users {
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(format!(
                "basic_auth_users.{user}: not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
            ).into());
        }
    }
    let mut headers = Vec::new();
    for (name, value) in &file.http_server_config.headers {
        let lower = name.to_ascii_lowercase();
        if !ALLOWED_HEADERS.contains(&lower.as_str()) {
            return Err(format!(
                "http_server_config.headers: {name} cannot be set; allowed: {}",
                ALLOWED_HEADERS.join(", ")
            )
            .into());
        }
        let bad = match lower.as_str() {
            "x-content-type-options" => !value.eq_ignore_ascii_case("nosniff"),
            "x-frame-options" => {
                !(value.eq_ignore_ascii_case("deny") || value.eq_ignore_ascii_case("sameorigin"))
            }
            _ => false,
        };
        let parsed = HeaderValue::from_str(value).ok().filter(|_| !bad);
        let Some(v) = parsed else {
            return Err(
                format!("http_server_config.headers.{name}: invalid value {value:?}").into(),
            );
        };
        let name = HeaderName::from_bytes(lower.as_bytes())
            .map_err(|e| format!("http_server_config.headers.{name}: {e}"))?;
        headers.push((name, v));
    }
    Ok(WebSettings {
        tls,
        users: file.basic_auth_users.into_iter().collect(),
        headers,
        http2: file.http_server_config.http2,
        files,
    })
}

fn tls_version(v: Option<&str>, field: &str) -> Result<Option<u8>, WebConfigError> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some("TLS12") => Ok(Some(12)),
        Some("TLS13") => Ok(Some(13)),
        Some(other @ ("TLS10" | "TLS11")) => Err(format!(
            "tls_server_config.{field}: {other} is not supported (TLS12 or TLS13)"
        )
        .into()),
        Some(other) => Err(format!(
            "tls_server_config.{field}: unknown version {other:?} (TLS12 or TLS13)"
        )
        .into()),
    }
}

fn tls_config(
    t: &TlsServerConfig,
    base: &Path,
    http2: bool,
    files: &mut Vec<PathBuf>,
) -> Result<ServerConfig, WebConfigError> {
    let resolve = |p: &Path| -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let cert_file = resolve(&t.cert_file);
    let key_file = resolve(&t.key_file);
    let read = |p: &Path, what: &str| -> Result<Vec<u8>, WebConfigError> {
        std::fs::read(p)
            .map_err(|e| format!("tls_server_config.{what} {}: {e}", p.display()).into())
    };
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(&cert_file, "cert_file")?)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("tls_server_config.cert_file {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config.cert_file {}: no certificate in it",
            cert_file.display()
        )
        .into());
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&key_file, "key_file")?)
        .map_err(|e| format!("tls_server_config.key_file {}: {e}", key_file.display()))?;
    files.push(cert_file);
    files.push(key_file);
    let min = tls_version(t.min_version.as_deref(), "min_version")?.unwrap_or(12);
    let max = tls_version(t.max_version.as_deref(), "max_version")?.unwrap_or(13);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();
    if versions.is_empty() {
        return Err(WebConfigError::from(
            "tls_server_config: min_version is above max_version".to_string(),
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let auth = t.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let builder = match auth {
        "" | "NoClientCert" => builder.with_no_client_auth(),
        "VerifyClientCertIfGiven" | "RequireAndVerifyClientCert" => {
            let Some(ca) = &t.client_ca_file else {
                return Err(format!(
                    "tls_server_config.client_ca_file is required with client_auth_type {auth}"
                )
                .into());
            };
            let ca = resolve(ca);
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&read(&ca, "client_ca_file")?) {
                let c = c.map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
                roots
                    .add(c)
                    .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            }
            files.push(ca);
            let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if auth == "VerifyClientCertIfGiven" {
                v = v.allow_unauthenticated();
            }
            let verifier = v
                .build()
                .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        "RequestClientCert" | "RequireAnyClientCert" => {
            return Err(format!(
                "tls_server_config.client_auth_type {auth} (a certificate nobody verifies) is not supported: use VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            ).into());
        }
        other => {
            return Err(
                format!("tls_server_config.client_auth_type: unknown value {other:?}").into(),
            );
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_server_config: certificate and key do not go together: {e}"))?;
    cfg.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(cfg)
}
