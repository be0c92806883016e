//! `tls_server_config` to a rustls server configuration, with
//! exporter-toolkit's meaning: certificate and key from a file or inline,
//! versions, Go's cipher suite and curve names mapped onto what rustls
//! offers (a name it cannot honour is an error naming it; P-521, which Go
//! has and rustls' provider lacks, is added here), the client CA
//! and the client auth type (see [`super::client_auth`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::agreement;
use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::{NamedGroup, ServerConfig, SupportedCipherSuite};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::web::WebConfigError;
use crate::web::client_auth::{ClientAuth, ClientVerifier};
use crate::web::file::TlsServerConfig;

/// Go's names of the TLS 1.2 suites rustls offers.
const TLS12_SUITES: [(&str, SupportedCipherSuite); 6] = [
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        rustls::crypto::aws_lc_rs::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        rustls::crypto::aws_lc_rs::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        rustls::crypto::aws_lc_rs::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        rustls::crypto::aws_lc_rs::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        rustls::crypto::aws_lc_rs::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        rustls::crypto::aws_lc_rs::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// Go's TLS 1.3 suite names: accepted and, as in Go, without effect (every
/// TLS 1.3 suite stays on).
const TLS13_SUITES: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// Names Go accepts (its `tls.CipherSuites()`) that rustls does not
/// implement: CBC and RSA key exchange.
const NOT_IN_RUSTLS: [&str; 8] = [
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
];

/// What HTTP/2 needs among the TLS 1.2 suites (RFC 7540 9.2.2; Go checks it).
const HTTP2_REQUIRED: [&str; 2] = [
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
];

/// exporter-toolkit's curve names.
fn curve(name: &str) -> Result<&'static dyn SupportedKxGroup, String> {
    match name {
        "CurveP256" => Ok(rustls::crypto::aws_lc_rs::kx_group::SECP256R1),
        "CurveP384" => Ok(rustls::crypto::aws_lc_rs::kx_group::SECP384R1),
        "X25519" => Ok(rustls::crypto::aws_lc_rs::kx_group::X25519),
        "CurveP521" => Ok(SECP521R1),
        other => Err(format!(
            "unknown curve {other:?} (CurveP256, CurveP384, CurveP521, X25519)"
        )),
    }
}

/// ECDHE over P-521 (secp521r1), which Go offers and rustls' aws-lc-rs
/// provider does not: the same aws-lc agreement rustls uses for P-256 and
/// P-384, on the larger curve.
pub static SECP521R1: &dyn SupportedKxGroup = &P521;

#[derive(Debug)]
struct P521;

struct P521Exchange {
    key: agreement::EphemeralPrivateKey,
    public: Vec<u8>,
}

impl SupportedKxGroup for P521 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P521, &rng)
            .map_err(|_| rustls::Error::FailedToGetRandomBytes)?;
        let public = key
            .compute_public_key()
            .map_err(|_| rustls::Error::FailedToGetRandomBytes)?
            .as_ref()
            .to_vec();
        Ok(Box::new(P521Exchange { key, public }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::secp521r1
    }
}

impl ActiveKeyExchange for P521Exchange {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, rustls::Error> {
        let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P521, peer);
        agreement::agree_ephemeral(self.key, peer, (), |secret| Ok(SharedSecret::from(secret)))
            .map_err(|()| rustls::PeerMisbehaved::InvalidKeyShare.into())
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::secp521r1
    }
}

fn cipher_suites(names: &[String]) -> Result<Vec<SupportedCipherSuite>, String> {
    let mut tls12 = Vec::new();
    for name in names {
        if let Some((_, s)) = TLS12_SUITES.iter().find(|(n, _)| n == name) {
            tls12.push(*s);
        } else if TLS13_SUITES.contains(&name.as_str()) {
            continue;
        } else if NOT_IN_RUSTLS.contains(&name.as_str()) {
            return Err(format!(
                "{name} is not offered by rustls (no CBC or RSA key exchange suites); the TLS 1.2 suites it offers: {}",
                TLS12_SUITES.map(|(n, _)| n).join(", ")
            ));
        } else {
            return Err(format!("unknown cipher {name:?}"));
        }
    }
    // TLS 1.3 suites are not configurable, in Go as here.
    let mut all: Vec<SupportedCipherSuite> = rustls::crypto::aws_lc_rs::DEFAULT_CIPHER_SUITES
        .iter()
        .filter(|s| s.tls13().is_some())
        .copied()
        .collect();
    all.extend(tls12);
    Ok(all)
}

fn tls_version(v: Option<&str>, field: &str) -> Result<Option<u8>, WebConfigError> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some("TLS12") => Ok(Some(12)),
        Some("TLS13") => Ok(Some(13)),
        Some(other @ ("TLS10" | "TLS11")) => Err(format!(
            "tls_server_config.{field}: {other} is not offered by rustls (TLS12 or TLS13)"
        )
        .into()),
        Some(other) => Err(format!(
            "tls_server_config.{field}: unknown TLS version {other:?} (TLS10, TLS11, TLS12, TLS13)"
        )
        .into()),
    }
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

fn nonempty_path(p: &Option<PathBuf>) -> Option<&Path> {
    p.as_deref().filter(|p| !p.as_os_str().is_empty())
}

/// Builds the server configuration; every file read is added to `files`.
pub(super) fn server_config(
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
    let mut read = |p: &Path, what: &str| -> Result<Vec<u8>, WebConfigError> {
        let p = resolve(p);
        let bytes = std::fs::read(&p).map_err(|e| {
            WebConfigError::from(format!("tls_server_config.{what} {}: {e}", p.display()))
        })?;
        files.push(p);
        Ok(bytes)
    };
    let cert_file = nonempty_path(&t.cert_file);
    let key_file = nonempty_path(&t.key_file);
    if cert_file.is_none() && nonempty(&t.cert).is_none() {
        return Err("tls_server_config: missing one of cert or cert_file"
            .to_string()
            .into());
    }
    if key_file.is_none() && nonempty(&t.key).is_none() {
        return Err("tls_server_config: missing one of key or key_file"
            .to_string()
            .into());
    }
    let (cert_pem, cert_what) = match cert_file {
        Some(p) => (read(p, "cert_file")?, "cert_file"),
        None => (t.cert.clone().unwrap_or_default().into_bytes(), "cert"),
    };
    let (key_pem, key_what) = match key_file {
        Some(p) => (read(p, "key_file")?, "key_file"),
        None => (t.key.clone().unwrap_or_default().into_bytes(), "key"),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls_server_config.{cert_what}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("tls_server_config.{cert_what}: no PEM certificate in it").into());
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("tls_server_config.{key_what}: {e}"))?;

    let min = tls_version(t.min_version.as_deref(), "min_version")?.unwrap_or(12);
    let max = tls_version(t.max_version.as_deref(), "max_version")?.unwrap_or(13);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();
    if versions.is_empty() {
        return Err("tls_server_config: min_version is above max_version"
            .to_string()
            .into());
    }
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    let suites = t.cipher_suites.as_deref().unwrap_or_default();
    if !suites.is_empty() {
        provider.cipher_suites =
            cipher_suites(suites).map_err(|e| format!("tls_server_config.cipher_suites: {e}"))?;
        if http2 && min < 13 && !suites.iter().any(|s| HTTP2_REQUIRED.contains(&s.as_str())) {
            return Err(format!(
                "tls_server_config.cipher_suites: HTTP/2 needs one of {} among the TLS 1.2 suites (or set http_server_config.http2: false, or min_version: TLS13)",
                HTTP2_REQUIRED.join(" or ")
            )
            .into());
        }
    }
    let curves = t.curve_preferences.as_deref().unwrap_or_default();
    if !curves.is_empty() {
        provider.kx_groups = curves
            .iter()
            .map(|c| curve(c))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("tls_server_config.curve_preferences: {e}"))?;
    }
    let provider = Arc::new(provider);

    // The CA is read before the policy is checked, as in exporter-toolkit.
    let ca_pem = match (nonempty_path(&t.client_ca_file), nonempty(&t.client_ca)) {
        (Some(p), _) => Some(read(p, "client_ca_file")?),
        (None, Some(text)) => Some(text.as_bytes().to_vec()),
        (None, None) => None,
    };
    let auth_name = t.client_auth_type.as_deref().unwrap_or_default();
    let auth = ClientAuth::parse(auth_name).ok_or_else(|| {
        format!(
            "tls_server_config.client_auth_type: invalid ClientAuth {auth_name:?} (NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
        )
    })?;
    if ca_pem.is_some() && auth == ClientAuth::None {
        return Err(
            "tls_server_config: client CA's have been configured without a Client Auth Policy: set client_auth_type (VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
                .to_string()
                .into(),
        );
    }
    let roots: Vec<CertificateDer<'static>> = ca_pem
        .as_deref()
        .map(|pem| {
            CertificateDer::pem_slice_iter(pem)
                .filter_map(Result::ok)
                .collect()
        })
        .unwrap_or_default();
    if auth == ClientAuth::RequireAndVerify && roots.is_empty() {
        tracing::warn!(
            "tls_server_config: RequireAndVerifyClientCert without a client CA certificate: no client can connect"
        );
    }
    let sans = t.client_allowed_sans.clone();
    if sans.is_some() && auth == ClientAuth::None {
        tracing::warn!(
            "tls_server_config.client_allowed_sans has no effect without a client_auth_type, as in exporter-toolkit"
        );
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let builder = if auth == ClientAuth::None {
        builder.with_no_client_auth()
    } else {
        let verifier = ClientVerifier::new(auth, roots, sans, provider)
            .map_err(|e| format!("tls_server_config.client_ca: {e}"))?;
        builder.with_client_cert_verifier(Arc::new(verifier))
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_server_config: certificate and key do not go together: {e}"))?;
    cfg.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    cfg.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(cfg)
}
