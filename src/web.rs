//! `--web.config.file`: TLS, basic auth and response headers for the HTTP
//! server, in the format of the Prometheus exporter-toolkit.
//!
//! The file (and the certificate, key and CA files it names) is checked for
//! changes on every connection and request, as exporter-toolkit reads it on
//! every request, so certificates and passwords rotate without a restart. A
//! file that becomes invalid fails closed: requests get 500 (over the last
//! valid certificate) until it is fixed, and the problem is logged once per
//! change. Whether
//! the listener speaks TLS, and HTTP/2, is decided at start-up.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

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
    users: HashMap<String, String>,
    /// Extra response headers.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// `http_server_config.http2`.
    pub http2: bool,
    /// The files this configuration was built from, for change detection.
    files: Vec<PathBuf>,
}

/// Reads and checks a web configuration file: every referenced file must
/// load, every hash must be bcrypt, every header allowed.
pub fn load(path: &Path) -> Result<WebSettings, String> {
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
            ));
        }
    }
    let mut headers = Vec::new();
    for (name, value) in &file.http_server_config.headers {
        let lower = name.to_ascii_lowercase();
        if !ALLOWED_HEADERS.contains(&lower.as_str()) {
            return Err(format!(
                "http_server_config.headers: {name} cannot be set; allowed: {}",
                ALLOWED_HEADERS.join(", ")
            ));
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
            return Err(format!(
                "http_server_config.headers.{name}: invalid value {value:?}"
            ));
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

fn tls_version(v: Option<&str>, field: &str) -> Result<Option<u8>, String> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some("TLS12") => Ok(Some(12)),
        Some("TLS13") => Ok(Some(13)),
        Some(other @ ("TLS10" | "TLS11")) => Err(format!(
            "tls_server_config.{field}: {other} is not supported (TLS12 or TLS13)"
        )),
        Some(other) => Err(format!(
            "tls_server_config.{field}: unknown version {other:?} (TLS12 or TLS13)"
        )),
    }
}

fn tls_config(
    t: &TlsServerConfig,
    base: &Path,
    http2: bool,
    files: &mut Vec<PathBuf>,
) -> Result<ServerConfig, String> {
    let resolve = |p: &Path| -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let cert_file = resolve(&t.cert_file);
    let key_file = resolve(&t.key_file);
    let read = |p: &Path, what: &str| -> Result<Vec<u8>, String> {
        std::fs::read(p).map_err(|e| format!("tls_server_config.{what} {}: {e}", p.display()))
    };
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(&cert_file, "cert_file")?)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("tls_server_config.cert_file {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config.cert_file {}: no certificate in it",
            cert_file.display()
        ));
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
        return Err("tls_server_config: min_version is above max_version".into());
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
                ));
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
            ));
        }
        other => {
            return Err(format!(
                "tls_server_config.client_auth_type: unknown value {other:?}"
            ));
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

/// Modification time and size of each file, to notice a change.
type Fingerprint = Vec<Option<(SystemTime, u64)>>;

fn fingerprint(files: &[PathBuf]) -> Fingerprint {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
        })
        .collect()
}

struct Cached {
    files: Vec<PathBuf>,
    stamp: Fingerprint,
    result: Result<Arc<WebSettings>, String>,
    /// TLS of the last valid file: handshakes go on with it while the file
    /// is invalid, so clients get a 500 that says so rather than a reset.
    last_good_tls: Option<Arc<ServerConfig>>,
}

/// The web configuration in force: none, or a file re-read when it (or a
/// file it names) changes.
pub struct WebConfig {
    path: Option<PathBuf>,
    /// TLS and HTTP/2 as at start-up.
    pub tls: bool,
    /// `http2` as at start-up.
    pub http2: bool,
    cache: Mutex<Cached>,
    /// Passwords that matched their hash lately (bcrypt is slow on purpose).
    verified: Mutex<HashSet<(String, String, String)>>,
}

const VERIFIED_CACHE: usize = 100;

impl WebConfig {
    /// No file: plain HTTP, no authentication.
    pub fn none() -> Arc<WebConfig> {
        Arc::new(WebConfig {
            path: None,
            tls: false,
            http2: true,
            cache: Mutex::new(Cached {
                files: Vec::new(),
                stamp: Vec::new(),
                last_good_tls: None,
                result: Ok(Arc::new(WebSettings {
                    tls: None,
                    users: HashMap::new(),
                    headers: Vec::new(),
                    http2: true,
                    files: Vec::new(),
                })),
            }),
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// Loads `path`; an error says what is wrong with it.
    pub fn from_file(path: &Path) -> Result<Arc<WebConfig>, String> {
        let settings = load(path)?;
        Ok(Arc::new(WebConfig {
            path: Some(path.to_path_buf()),
            tls: settings.tls.is_some(),
            http2: settings.http2,
            cache: Mutex::new(Cached {
                last_good_tls: settings.tls.clone(),
                stamp: fingerprint(&settings.files),
                files: settings.files.clone(),
                result: Ok(Arc::new(settings)),
            }),
            verified: Mutex::new(HashSet::new()),
        }))
    }

    /// The settings in force, re-read if a file changed.
    pub fn current(&self) -> Result<Arc<WebSettings>, String> {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let Some(path) = &self.path else {
            return c.result.clone();
        };
        let stamp = fingerprint(&c.files);
        if stamp == c.stamp {
            return c.result.clone();
        }
        let result = load(path).and_then(|s| {
            if s.tls.is_some() != self.tls {
                Err(format!(
                    "{}: tls_server_config was {} at start-up; restart to change it",
                    path.display(),
                    if self.tls { "set" } else { "absent" }
                ))
            } else {
                Ok(Arc::new(s))
            }
        });
        match &result {
            Ok(s) => {
                c.files = s.files.clone();
                c.last_good_tls = s.tls.clone();
                tracing::info!(file = %path.display(), "web configuration reloaded");
            }
            Err(e) => {
                // Keep watching the same files; a fix is noticed as a change.
                tracing::error!(error = %e, "web configuration invalid: refusing requests until it is fixed");
            }
        }
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        c.stamp = fingerprint(&c.files);
        c.result = result;
        c.result.clone()
    }

    /// The TLS configuration for a new connection: the file's, or while the
    /// file is invalid, the last valid one's.
    pub fn tls_config(&self) -> Option<Arc<ServerConfig>> {
        let current = self.current();
        let c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match current {
            Ok(s) => s.tls.clone(),
            Err(_) => c.last_good_tls.clone(),
        }
    }

    /// Whether `authorization` (the header) names a configured user with the
    /// right password. Unknown users cost a bcrypt check too, so timing does
    /// not tell which users exist.
    async fn authorized(&self, s: &WebSettings, authorization: Option<&str>) -> bool {
        let Some((user, pass)) = authorization.and_then(basic_credentials) else {
            return false;
        };
        let (hash, known) = match s.users.get(&user) {
            Some(h) => (h.clone(), true),
            None => (dummy_hash().to_string(), false),
        };
        let key = (user, pass, hash);
        if known
            && self
                .verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&key)
        {
            return true;
        }
        let (pass, hash) = (key.1.clone(), key.2.clone());
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pass, &hash).unwrap_or(false))
            .await
            .unwrap_or(false)
            && known;
        if ok {
            let mut v = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if v.len() >= VERIFIED_CACHE {
                v.clear();
            }
            v.insert(key);
        }
        ok
    }
}

/// A valid bcrypt hash of nothing anybody sends, for unknown users.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| bcrypt::hash("whatsapp-exporter: no such user", 10).unwrap_or_default())
}

fn basic_credentials(h: &str) -> Option<(String, String)> {
    let (scheme, rest) = h.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Middleware: basic auth (when users are configured) and the configured
/// response headers, on every path.
pub async fn guard(State(web): State<Arc<WebConfig>>, req: Request, next: Next) -> Response {
    let settings = match web.current() {
        Ok(s) => s,
        Err(_) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "web configuration invalid; see the exporter's log\n",
            )
                .into_response();
        }
    };
    let mut resp = if settings.users.is_empty()
        || web
            .authorized(
                &settings,
                req.headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok()),
            )
            .await
    {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic")],
            "Unauthorized\n",
        )
            .into_response()
    };
    for (k, v) in &settings.headers {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wa-web-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn empty_file_means_nothing_required() {
        let d = dir("empty");
        let s = load(&write(&d, "web.yml", "")).unwrap();
        assert!(s.tls.is_none() && s.users.is_empty() && s.http2);
    }

    #[test]
    fn problems_are_named() {
        let d = dir("bad");
        for (text, want) in [
            ("basic_auth_users:\n  alice: plain\n", "not a bcrypt hash"),
            (
                "http_server_config:\n  headers:\n    Content-Type: text/html\n",
                "cannot be set",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                "invalid value",
            ),
            (
                "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n",
                "cert_file",
            ),
            ("tls_config: {}\n", "unknown field"),
        ] {
            let e = load(&write(&d, "web.yml", text)).err().unwrap();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn credentials_parse() {
        // "alice:s3cret:with:colons"
        let h = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:s3cret:with:colons")
        );
        assert_eq!(
            basic_credentials(&h),
            Some(("alice".into(), "s3cret:with:colons".into()))
        );
        assert_eq!(basic_credentials("Bearer x"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
    }
}
