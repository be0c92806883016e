//! Client certificates as exporter-toolkit (Go's crypto/tls) checks them:
//! the five `client_auth_type`s, a self-signed certificate listed as its
//! own CA (Go accepts a certificate found in the CA pool as a chain of one,
//! CA:TRUE or not; webpki alone refuses it as a CA used as an end entity),
//! and `client_allowed_sans`.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// `client_auth_type`, with Go's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `NoClientCert` or empty: none asked for.
    None,
    /// `RequestClientCert`: asked for, not required, not verified.
    Request,
    /// `RequireAnyClientCert` (or `RequireClientCert`): required, not verified.
    RequireAny,
    /// `VerifyClientCertIfGiven`: verified when given.
    VerifyIfGiven,
    /// `RequireAndVerifyClientCert`: required and verified.
    RequireAndVerify,
}

impl ClientAuth {
    /// Parses exporter-toolkit's names.
    pub fn parse(s: &str) -> Option<ClientAuth> {
        Some(match s {
            "" | "NoClientCert" => ClientAuth::None,
            "RequestClientCert" => ClientAuth::Request,
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAny,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerify,
            _ => return None,
        })
    }

    fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify
        )
    }
}

/// The verifier of one web configuration.
#[derive(Debug)]
pub struct ClientVerifier {
    auth: ClientAuth,
    /// The CA certificates, as given.
    roots: Vec<CertificateDer<'static>>,
    /// Chains to `roots` (none when there are no roots: nothing verifies).
    webpki: Option<Arc<dyn ClientCertVerifier>>,
    hints: Vec<DistinguishedName>,
    allowed_sans: Option<Vec<String>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientVerifier {
    /// For `auth` (not [`ClientAuth::None`]) with the CA certificates `roots`.
    pub fn new(
        auth: ClientAuth,
        roots: Vec<CertificateDer<'static>>,
        allowed_sans: Option<Vec<String>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<ClientVerifier, String> {
        let mut store = rustls::RootCertStore::empty();
        for c in &roots {
            store.add(c.clone()).map_err(|e| e.to_string())?;
        }
        let hints = store.subjects();
        let webpki = if store.is_empty() {
            None
        } else {
            Some(
                WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider.clone())
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| e.to_string())?,
            )
        };
        Ok(ClientVerifier {
            auth,
            roots,
            webpki,
            hints,
            allowed_sans,
            algorithms: provider.signature_verification_algorithms,
        })
    }

    fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        if self.roots.iter().any(|r| r.as_ref() == end_entity.as_ref()) {
            // Go: a certificate in the pool is a chain of one.
            return self_listed(end_entity, now);
        }
        match &self.webpki {
            Some(v) => v
                .verify_client_cert(end_entity, intermediates, now)
                .map(|_| ()),
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        }
    }
}

fn other(message: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
        std::io::Error::other(message),
    ))))
}

/// A certificate listed as its own CA: within its validity, and usable for
/// client authentication if it restricts its usage.
fn self_listed(der: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let now = now.as_secs() as i64;
    let validity = cert.validity();
    if now < validity.not_before.timestamp() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet,
        ));
    }
    if now > validity.not_after.timestamp() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
    }
    if let Ok(Some(eku)) = cert.extended_key_usage()
        && !(eku.value.any || eku.value.client_auth)
    {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::InvalidPurpose,
        ));
    }
    Ok(())
}

/// Every subject alternative name, written as Go writes them.
fn sans(der: &CertificateDer<'_>) -> Result<Vec<String>, rustls::Error> {
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Ok(Vec::new());
    };
    Ok(ext
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                Some((*s).to_string())
            }
            GeneralName::IPAddress(b) => match b.len() {
                4 => <[u8; 4]>::try_from(*b)
                    .ok()
                    .map(|a| std::net::Ipv4Addr::from(a).to_string()),
                16 => <[u8; 16]>::try_from(*b)
                    .ok()
                    .map(|a| std::net::Ipv6Addr::from(a).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect())
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        // With allowed SANs, exporter-toolkit refuses a connection without a
        // certificate whatever the type.
        matches!(
            self.auth,
            ClientAuth::RequireAny | ClientAuth::RequireAndVerify
        ) || self.allowed_sans.is_some()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if self.auth.verifies() {
            self.verify_chain(end_entity, intermediates, now)?;
        }
        if let Some(allowed) = &self.allowed_sans {
            let found = sans(end_entity)?;
            if !found.iter().any(|s| allowed.contains(s)) {
                return Err(other(format!(
                    "the client certificate has none of client_allowed_sans {allowed:?} (it has {found:?})"
                )));
            }
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
