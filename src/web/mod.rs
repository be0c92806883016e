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

mod auth;
mod client_auth;
mod file;
mod tls;

use auth::Verdict;
pub use file::{RateLimit, WebConfigError, WebSettings, load};
pub use tls::SECP521R1;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rustls::ServerConfig;

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
    result: Result<Arc<WebSettings>, WebConfigError>,
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
    /// Password checks: bounded, and remembered.
    passwords: auth::Passwords,
    /// `rate_limit`'s bucket.
    bucket: Mutex<auth::Bucket>,
}

impl WebConfig {
    /// No file: plain HTTP, no authentication.
    pub fn none() -> Arc<WebConfig> {
        WebConfig::with(None, WebSettings::none())
    }

    /// Loads `path`; an error says what is wrong with it.
    pub fn from_file(path: &Path) -> Result<Arc<WebConfig>, WebConfigError> {
        Ok(WebConfig::with(Some(path.to_path_buf()), load(path)?))
    }

    /// In force from now on: `settings`, read from `path` if there is one.
    fn with(path: Option<PathBuf>, settings: WebSettings) -> Arc<WebConfig> {
        Arc::new(WebConfig {
            path,
            tls: settings.tls.is_some(),
            http2: settings.http2,
            cache: Mutex::new(Cached {
                last_good_tls: settings.tls.clone(),
                stamp: fingerprint(&settings.files),
                files: settings.files.clone(),
                result: Ok(Arc::new(settings)),
            }),
            passwords: auth::Passwords::default(),
            bucket: Mutex::new(auth::Bucket::default()),
        })
    }

    /// The settings in force, re-read if a file changed.
    pub fn current(&self) -> Result<Arc<WebSettings>, WebConfigError> {
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
                Err(WebConfigError::from(format!(
                    "{}: tls_server_config was {} at start-up; restart to change it",
                    path.display(),
                    if self.tls { "set" } else { "absent" }
                )))
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
        self.passwords.forget();
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

    /// Takes a token of the rate limit in force; `false`: answer 429.
    fn admit(&self, s: &WebSettings) -> bool {
        match s.rate_limit {
            None => true,
            Some(limit) => self
                .bucket
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(limit, std::time::Instant::now()),
        }
    }
}

/// The address a request came from, put in its extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::IpAddr);

/// What [`guard`] needs: the web configuration and the series it counts refusals in.
#[derive(Clone)]
pub struct Guard {
    /// The web configuration in force.
    pub web: Arc<WebConfig>,
    /// Where refused requests are counted.
    pub http: crate::metrics::HttpMetrics,
}

fn too_many(retry_after: &'static str) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, retry_after)],
        "Too Many Requests\n",
    )
        .into_response()
}

/// Middleware: the rate limit, basic auth (when users are configured) and
/// the configured response headers, on every path, in exporter-toolkit's order.
pub async fn guard(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let web = &g.web;
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
    if !web.admit(&settings) {
        g.http.refused("rate_limit");
        return too_many("1");
    }
    let verdict = if settings.users.is_empty() {
        Verdict::Allowed
    } else {
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let client = req.extensions().get::<ClientAddr>().map(|c| c.0);
        web.passwords.check(&settings, header, client).await
    };
    let mut resp = match verdict {
        Verdict::Allowed => next.run(req).await,
        Verdict::Denied => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic")],
            "Unauthorized\n",
        )
            .into_response(),
        Verdict::Busy => {
            g.http.refused("auth_busy");
            too_many("1")
        }
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
                "http_server_config:\n  headers:\n    X-Frame-Options: DENY\n",
                "invalid value",
            ),
            (
                "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n",
                "cert_file",
            ),
            ("tls_config: {}\n", "unknown field"),
            (
                "http_server_config:\n  headers:\n    x-frame-options: deny\n",
                "cannot be set",
            ),
        ] {
            let e = load(&write(&d, "web.yml", text)).err().unwrap();
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
    }
}
