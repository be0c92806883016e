//! The web configuration file as written (exporter-toolkit's format, every
//! key of it), and turning it into settings: every referenced file must
//! load, every hash must be bcrypt, every header allowed. What
//! exporter-toolkit refuses is refused here, naming the key.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use rustls::ServerConfig;
use serde::Deserialize;

use crate::web::tls;

/// What is wrong with a web configuration, naming the file or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WebConfigError(String);

impl From<String> for WebConfigError {
    fn from(message: String) -> Self {
        WebConfigError(message)
    }
}

/// The file as written. A key given with no value means its default, as
/// in Go's YAML.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebConfigFile {
    #[serde(default)]
    tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    http_server_config: Option<HttpServerConfig>,
    #[serde(default)]
    rate_limit: Option<RateLimitConfig>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, Option<String>>>,
}

/// `tls_server_config`, every key exporter-toolkit has.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct TlsServerConfig {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub client_ca: Option<String>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub client_auth_type: Option<String>,
    pub client_ca_file: Option<PathBuf>,
    pub cipher_suites: Option<Vec<String>>,
    pub curve_preferences: Option<Vec<String>>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub prefer_server_cipher_suites: Option<bool>,
    pub client_allowed_sans: Option<Vec<String>>,
}

impl TlsServerConfig {
    /// exporter-toolkit's `IsEnabled`: any certificate, key, CA or client
    /// auth type set turns TLS on; cipher suites alone do not.
    fn is_enabled(&self) -> bool {
        let set = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
        let set_path =
            |p: &Option<PathBuf>| p.as_deref().is_some_and(|p| !p.as_os_str().is_empty());
        set(&self.cert)
            || set(&self.key)
            || set(&self.client_ca)
            || set(&self.client_auth_type)
            || set_path(&self.cert_file)
            || set_path(&self.key_file)
            || set_path(&self.client_ca_file)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpServerConfig {
    #[serde(default)]
    http2: Option<bool>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
}

/// `rate_limit`: a token bucket of `burst` tokens refilled one per
/// `interval`, for every request (Go's `rate.NewLimiter(rate.Every(interval), burst)`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitConfig {
    #[serde(default)]
    burst: Option<u32>,
    #[serde(default)]
    interval: Option<GoDuration>,
}

/// A Go duration as YAML writes it: a string (`1s`, `1m30s`) or an integer
/// of nanoseconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum GoDuration {
    Nanos(u64),
    Text(String),
}

impl GoDuration {
    fn get(&self) -> Result<Duration, String> {
        match self {
            GoDuration::Nanos(n) => Ok(Duration::from_nanos(*n)),
            GoDuration::Text(t) if t.trim() == "0" => Ok(Duration::ZERO),
            GoDuration::Text(t) => humantime::parse_duration(t.trim())
                .map_err(|e| format!("rate_limit.interval: {t:?}: {e}")),
        }
    }
}

/// The rate limit in force: `burst` requests at once, one more per `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// One token per interval.
    pub interval: Duration,
    /// Tokens at most (0: every request is refused, as in Go).
    pub burst: u32,
}

/// Response headers the file may set, and the values allowed (none: any),
/// exactly as exporter-toolkit spells them.
const ALLOWED_HEADERS: [(&str, &[&str]); 5] = [
    ("Content-Security-Policy", &[]),
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
];

/// A loaded, checked web configuration.
pub struct WebSettings {
    /// The TLS server configuration, when `tls_server_config` turns TLS on.
    pub tls: Option<Arc<ServerConfig>>,
    /// User name to bcrypt hash; empty means no authentication.
    pub(super) users: HashMap<String, String>,
    /// The configured hash of the highest cost: what an unknown user's
    /// password is checked against, so that it costs the same.
    pub(super) costliest: Option<String>,
    /// Extra response headers.
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    /// `rate_limit`, when its interval is above zero.
    pub(super) rate_limit: Option<RateLimit>,
    /// `http_server_config.http2`.
    pub http2: bool,
    /// The files this configuration was built from, for change detection.
    pub(super) files: Vec<PathBuf>,
}

impl WebSettings {
    /// No file: plain HTTP, no authentication, HTTP/2 allowed.
    pub(super) fn none() -> WebSettings {
        WebSettings {
            tls: None,
            users: HashMap::new(),
            costliest: None,
            headers: Vec::new(),
            rate_limit: None,
            http2: true,
            files: Vec::new(),
        }
    }
}

/// Reads and checks a web configuration file.
pub fn load(path: &Path) -> Result<WebSettings, WebConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: WebConfigFile = if text.trim().is_empty() {
        WebConfigFile::default()
    } else {
        serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let http = file.http_server_config.unwrap_or_default();
    let http2 = http.http2.unwrap_or(true);
    let mut files = vec![path.to_path_buf()];
    let tls = match &file.tls_server_config {
        Some(t) if t.is_enabled() => {
            Some(Arc::new(tls::server_config(t, base, http2, &mut files)?))
        }
        _ => None,
    };
    let mut users = HashMap::new();
    let mut costliest: Option<(u32, String)> = None;
    for (user, hash) in file.basic_auth_users.unwrap_or_default() {
        let hash = hash.unwrap_or_default();
        let Ok(parts) = hash.parse::<bcrypt::HashParts>() else {
            return Err(format!(
                "basic_auth_users.{user}: not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
            ).into());
        };
        if costliest
            .as_ref()
            .is_none_or(|(c, _)| parts.get_cost() > *c)
        {
            costliest = Some((parts.get_cost(), hash.clone()));
        }
        users.insert(user, hash);
    }
    let mut headers = Vec::new();
    for (name, value) in http.headers.unwrap_or_default() {
        let Some((_, allowed)) = ALLOWED_HEADERS.iter().find(|(n, _)| *n == name) else {
            return Err(format!(
                "http_server_config.headers: {name} cannot be set; allowed: {}",
                ALLOWED_HEADERS.map(|(n, _)| n).join(", ")
            )
            .into());
        };
        let parsed = HeaderValue::from_str(&value)
            .ok()
            .filter(|_| allowed.is_empty() || allowed.contains(&value.as_str()));
        let Some(v) = parsed else {
            return Err(format!(
                "http_server_config.headers.{name}: invalid value {value:?}{}",
                if allowed.is_empty() {
                    String::new()
                } else {
                    format!(" (one of: {})", allowed.join(", "))
                }
            )
            .into());
        };
        let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|e| format!("http_server_config.headers.{name}: {e}"))?;
        headers.push((name, v));
    }
    let rate_limit = match file.rate_limit {
        Some(r) => {
            let interval = match &r.interval {
                Some(i) => i.get()?,
                None => Duration::ZERO,
            };
            (!interval.is_zero()).then_some(RateLimit {
                interval,
                burst: r.burst.unwrap_or(0),
            })
        }
        None => None,
    };
    if rate_limit.is_some_and(|r| r.burst == 0) {
        tracing::warn!(file = %path.display(), "rate_limit.burst is 0: every request is refused with 429, as exporter-toolkit does");
    }
    Ok(WebSettings {
        tls,
        users,
        costliest: costliest.map(|(_, h)| h),
        headers,
        rate_limit,
        http2,
        files,
    })
}
