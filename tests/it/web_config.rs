//! The web configuration agrees with exporter-toolkit's: every case of its
//! `web/tls_config_test.go` (one row per fixture of its `web/testdata/`,
//! with certificates and files of our own, made here), run on the real
//! binary: a file it refuses is refused by `--config.check` naming the key,
//! and a file it serves is served by `--demo` with the same outcome for the
//! same client (plain or TLS, cipher suites, curves, client certificate,
//! rate limit). The server certificate is ECDSA (rcgen makes no RSA keys),
//! so the fixtures name the ECDHE_ECDSA twins of exporter-toolkit's
//! ECDHE_RSA suites.
//!
//! Where the verdicts differ, the row says so: rustls has no CBC suites, so
//! `allCiphers` is refused naming the suite; and rustls clients cannot speak
//! TLS 1.1, so that probe is left out.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use rustls::crypto::SupportedKxGroup;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_whatsapp-exporter");

/// A client for one probe.
#[derive(Clone, Copy)]
pub enum Client {
    /// Plain HTTP.
    Plain,
    /// TLS with the CA that signed the server certificate.
    Tls {
        /// A client certificate of the fixture directory, by file stem.
        cert: Option<&'static str>,
        /// Cipher suites offered (Go names); empty: rustls' defaults.
        suites: &'static [&'static str],
        /// Curves offered (Go names); empty: rustls' defaults.
        curves: &'static [&'static str],
        /// Offer TLS 1.2 only.
        tls12: bool,
    },
}

pub const TLS: Client = Client::Tls {
    cert: None,
    suites: &[],
    curves: &[],
    tls12: false,
};

const fn with_cert(name: &'static str) -> Client {
    Client::Tls {
        cert: Some(name),
        suites: &[],
        curves: &[],
        tls12: false,
    }
}

const fn with_suites(suites: &'static [&'static str]) -> Client {
    Client::Tls {
        cert: None,
        suites,
        curves: &[],
        tls12: true,
    }
}

const fn with_curves(curves: &'static [&'static str]) -> Client {
    Client::Tls {
        cert: None,
        suites: &[],
        curves,
        tls12: false,
    }
}

/// What a probe must see.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// This status (and, if given, this negotiated cipher suite).
    Status(u16, Option<&'static str>),
    /// Go's 400 to plain HTTP on the TLS port.
    PlainHttpRefused,
    /// No HTTP answer over TLS: the handshake (or its first read) fails.
    NoTls,
    /// At least one 429 among 11 requests.
    TooManyRequests,
    /// Every one of 11 requests is 200.
    AllOk,
}

/// A fixture: its exporter-toolkit name, its text, and the verdict.
struct Case {
    name: &'static str,
    yaml: String,
    verdict: Verdict,
    /// Logged at warn when its probes' handshakes are rejected.
    logged: Option<&'static str>,
}

impl Case {
    fn logged(self, reason: &'static str) -> Case {
        Case {
            logged: Some(reason),
            ..self
        }
    }
}

enum Verdict {
    /// `--config.check` fails, saying this.
    Refused(&'static str),
    /// Served; each probe as given.
    Serves(Vec<(Client, Expect)>),
}

/// A directory with the server certificate (for `localhost`, signed by
/// `ca`), two self-signed client certificates, and the fixtures written there.
pub struct Fixtures {
    pub ca: String,
    pub dir: std::path::PathBuf,
}

fn self_signed_client(dir: &Path, name: &str, san: Option<&str>) {
    let mut params =
        CertificateParams::new(san.map(|s| vec![s.to_string()]).unwrap_or_default()).unwrap();
    // What `openssl req -x509` makes: CA:TRUE.
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

pub fn fixtures(name: &str) -> Fixtures {
    let dir = temp_dir(name);
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "parity CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("server.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    self_signed_client(&dir, "client_selfsigned", None);
    self_signed_client(&dir, "client2_selfsigned", Some("test3"));
    Fixtures {
        ca: ca_cert.pem(),
        dir,
    }
}

fn indent(pem: &str) -> String {
    pem.lines().map(|l| format!("    {l}\n")).collect()
}

const SERVER: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

fn cases(f: &Fixtures) -> Vec<Case> {
    use Expect::*;
    use Verdict::*;
    let read = |n: &str| std::fs::read_to_string(f.dir.join(n)).unwrap();
    let given = "  client_auth_type: VerifyClientCertIfGiven\n";
    let case = |name, yaml: &str, verdict| Case {
        name,
        yaml: yaml.to_string(),
        verdict,
        logged: None,
    };
    vec![
        case(
            "web_config_empty.yml",
            "",
            Serves(vec![(Client::Plain, Status(200, None)), (TLS, NoTls)]),
        ),
        case(
            "web_config_junk.yml",
            "hWkNKCp3fvIx3jKnsaBI\nTuEjdwNS8A2vYdFbiKqr\nay3RiOtykgt4m6m3KOol\n",
            Refused("invalid type"),
        ),
        case(
            "web_config_junk_key.yml",
            "tls_server_config:\n  cert_filse: server.crt\n",
            Refused("unknown field `cert_filse`"),
        ),
        case(
            "web_config_noAuth_certPath_empty.bad.yml",
            "tls_server_config:\n  cert_file: \"\"\n  key_file: server.key\n",
            Refused("missing one of cert or cert_file"),
        ),
        case(
            "web_config_noAuth_cert_empty.bad.yml",
            "tls_server_config:\n  cert: \"\"\n  key_file: server.key\n",
            Refused("missing one of cert or cert_file"),
        ),
        case(
            "web_config_noAuth_keyPath_empty.bad.yml",
            "tls_server_config:\n  cert_file: server.crt\n  key_file: \"\"\n",
            Refused("missing one of key or key_file"),
        ),
        case(
            "web_config_noAuth_key_empty.bad.yml",
            "tls_server_config:\n  cert_file: server.crt\n  key: \"\"\n",
            Refused("missing one of key or key_file"),
        ),
        case(
            "web_config_noAuth_certPath_keyPath_empty.bad.yml",
            "tls_server_config:\n  cert_file: \"\"\n  key_file: \"\"\n  client_auth_type: x\n",
            Refused("missing one of cert or cert_file"),
        ),
        case(
            "web_config_noAuth_certPath_invalid.bad.yml",
            "tls_server_config:\n  cert_file: somefile\n  key_file: server.key\n",
            Refused("No such file"),
        ),
        case(
            "web_config_noAuth_keyPath_invalid.bad.yml",
            "tls_server_config:\n  cert_file: server.cert\n  key_file: somefile\n",
            Refused("No such file"),
        ),
        case(
            "web_config_noAuth_certPath_keyPath_invalid.bad.yml",
            "tls_server_config:\n  cert_file: somefile\n  key_file: somefile\n",
            Refused("No such file"),
        ),
        case(
            "web_config_noAuth.bad.yml",
            &format!("{SERVER}  client_ca_file: /dev/null\n"),
            Refused("without a Client Auth Policy"),
        ),
        case(
            "web_config_auth_clientCAs_invalid.bad.yml",
            &format!("{SERVER}  client_ca_file: somefile\n"),
            Refused("No such file"),
        ),
        case(
            "web_config_auth_user_list_invalid.bad.yml",
            &format!("{SERVER}basic_auth_users:\n  john: doe\n"),
            Refused("not a bcrypt hash"),
        ),
        case(
            "web_config_noAuth_inventedCiphers.bad.yml",
            &format!(
                "{SERVER}{given}  cipher_suites:\n  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048\n"
            ),
            Refused("unknown cipher"),
        ),
        case(
            "web_config_noAuth_inventedCurves.bad.yml",
            &format!("{SERVER}{given}  curve_preferences:\n    - CurveP257\n"),
            Refused("unknown curve"),
        ),
        case(
            "web_config_noAuth_wrongTLSVersion.bad.yml",
            &format!("{SERVER}{given}  min_version: TLS111\n"),
            Refused("unknown TLS version"),
        ),
        case(
            "web_config_noAuth_noHTTP2Cipher.bad.yml",
            &format!(
                "{SERVER}{given}  cipher_suites:\n    - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n  max_version: TLS12\n"
            ),
            Refused("HTTP/2 needs"),
        ),
        case(
            "web_config_headers_content_type_options.bad.yml",
            "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
            Refused("invalid value"),
        ),
        case(
            "web_config_headers_frame_options.bad.yml",
            "http_server_config:\n  headers:\n    X-Frame-Options: foo\n",
            Refused("invalid value"),
        ),
        case(
            "web_config_headers_extra_header.bad.yml",
            "http_server_config:\n  headers:\n    Content-Type: foo\n",
            Refused("cannot be set"),
        ),
        // Differs: exporter-toolkit serves it; rustls has no CBC suites.
        case(
            "web_config_noAuth_allCiphers.good.yml",
            &format!(
                "{SERVER}{given}  cipher_suites:\n  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n  - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n  - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n  - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n  - TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256\n  - TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256\n  - TLS_AES_128_GCM_SHA256\n  - TLS_AES_256_GCM_SHA384\n  - TLS_CHACHA20_POLY1305_SHA256\n  - TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA\n"
            ),
            Refused("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA is not offered by rustls"),
        ),
        case(
            "web_config_noAuth.good.yml",
            &format!("{SERVER}{given}"),
            Serves(vec![
                (Client::Plain, PlainHttpRefused),
                (TLS, Status(200, None)),
            ]),
        ),
        case(
            "web_config_noAuth_tlsInline.good.yml",
            &format!(
                "tls_server_config:\n  cert: |\n{}  key: |\n{}{given}",
                indent(&read("server.crt")),
                indent(&read("server.key"))
            ),
            Serves(vec![(TLS, Status(200, None))]),
        ),
        case(
            "web_config_noAuth_someCiphers.good.yml",
            &format!(
                "{SERVER}{given}  cipher_suites:\n  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n  - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n  min_version: TLS12\n  max_version: TLS12\n"
            ),
            Serves(vec![
                (
                    with_suites(&["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]),
                    Status(200, Some("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")),
                ),
                (
                    with_suites(&["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"]),
                    NoTls,
                ),
                // The server's order wins.
                (
                    with_suites(&[
                        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                    ]),
                    Status(200, Some("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")),
                ),
            ]),
        ),
        case(
            "web_config_noAuth_someCiphers_noOrder.good.yml",
            &format!(
                "{SERVER}{given}  cipher_suites:\n  - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n  prefer_server_cipher_suites: false\n  min_version: TLS12\n  max_version: TLS12\n"
            ),
            // The client's order wins.
            Serves(vec![(
                with_suites(&[
                    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                ]),
                Status(200, Some("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")),
            )]),
        ),
        case(
            "web_config_noAuth_allCurves.good.yml",
            &format!(
                "{SERVER}{given}  curve_preferences:\n    - CurveP256\n    - CurveP384\n    - CurveP521\n    - X25519\n"
            ),
            Serves(vec![
                (TLS, Status(200, None)),
                (with_curves(&["CurveP521"]), Status(200, None)),
            ]),
        ),
        case(
            "web_config_noAuth_someCurves.good.yml",
            &format!("{SERVER}{given}  min_version: TLS13\n  curve_preferences:\n  - CurveP521\n"),
            Serves(vec![
                (with_curves(&["CurveP521"]), Status(200, None)),
                (with_curves(&["CurveP384"]), NoTls),
            ]),
        ),
        case(
            "web_config_noAuth_noHTTP2.good.yml",
            &format!(
                "{SERVER}{given}  cipher_suites:\n    - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n  max_version: TLS12\nhttp_server_config:\n  http2: false\n"
            ),
            Serves(vec![(
                TLS,
                Status(200, Some("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384")),
            )]),
        ),
        case(
            "web_config_headers.good.yml",
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000; includeSubDomains\n    X-Content-Type-Options: nosniff\n    X-XSS-Protection: 1\n    Content-Security-Policy: \"default-src 'self' *.test.example.net\"\n",
            Serves(vec![(Client::Plain, Status(200, None))]),
        ),
        case(
            "tls_config_noAuth.requireanyclientcert.good.yml",
            &format!("{SERVER}  client_auth_type: RequireAnyClientCert\n"),
            Serves(vec![
                (with_cert("client_selfsigned"), Status(200, None)),
                (TLS, NoTls),
            ]),
        ),
        case(
            "tls_config_noAuth.requireanyclientcertkeyinline.good.yml",
            &format!(
                "tls_server_config:\n  cert_file: server.crt\n  key: |\n{}  client_auth_type: RequireClientCert\n",
                indent(&read("server.key"))
            ),
            Serves(vec![(with_cert("client_selfsigned"), Status(200, None))]),
        ),
        case(
            "tls_config_noAuth.requireandverifyclientcert.good.yml",
            &format!(
                "{SERVER}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client_selfsigned.pem\n"
            ),
            Serves(vec![
                (with_cert("client_selfsigned"), Status(200, None)),
                (with_cert("client2_selfsigned"), NoTls),
                (TLS, NoTls),
            ]),
        )
        .logged("invalid peer certificate"),
        case(
            "web_config_auth_client_san.good.yaml",
            &format!(
                "{SERVER}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client2_selfsigned.pem\n  client_allowed_sans:\n    - one\n    - test3\n    - two\n"
            ),
            Serves(vec![(with_cert("client2_selfsigned"), Status(200, None))]),
        ),
        case(
            "web_config_auth_client_san.bad.yaml",
            &format!(
                "{SERVER}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client2_selfsigned.pem\n  client_allowed_sans:\n    - bad\n"
            ),
            Serves(vec![(with_cert("client2_selfsigned"), NoTls)]),
        )
        .logged("none of client_allowed_sans"),
        case(
            "web_config_noAuth.good.blocking.yml",
            &format!("{SERVER}  client_auth_type: RequireAndVerifyClientCert\n"),
            Serves(vec![(TLS, NoTls), (with_cert("client_selfsigned"), NoTls)]),
        ),
        case(
            "web_config_auth_clientCAs_missing.bad.yml",
            &format!("{SERVER}  client_auth_type: RequireAndVerifyClientCert\n"),
            // Not in exporter-toolkit's table; its code serves it, as the
            // blocking file above.
            Serves(vec![(TLS, NoTls)]),
        ),
        case(
            "web_config_users.good.yml",
            &format!(
                "{SERVER}basic_auth_users:\n  alice: {}\n  carol: {}\n",
                bcrypt::hash("a", 4).unwrap(),
                bcrypt::hash("c", 5).unwrap()
            ),
            Serves(vec![(TLS, Status(401, None))]),
        ),
        case(
            "web_config_users_noTLS.good.yml",
            "basic_auth_users:\n",
            Serves(vec![(Client::Plain, Status(200, None))]),
        ),
        case(
            "web_config_rate_limiter_nonblocking.yaml",
            "rate_limit:\n  interval: 0\n  burst: 0\n",
            Serves(vec![(Client::Plain, AllOk)]),
        ),
        case(
            "web_config_rate_limiter_one_second.yaml",
            "rate_limit:\n  interval: \"1s\"\n  burst: 0\n",
            Serves(vec![(Client::Plain, TooManyRequests)]),
        ),
    ]
}

fn suite(name: &str) -> rustls::SupportedCipherSuite {
    use rustls::crypto::aws_lc_rs::cipher_suite::*;
    match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        other => panic!("no client suite {other}"),
    }
}

fn curve(name: &str) -> &'static dyn SupportedKxGroup {
    use rustls::crypto::aws_lc_rs::kx_group::*;
    match name {
        "CurveP256" => SECP256R1,
        "CurveP384" => SECP384R1,
        "CurveP521" => whatsapp_exporter::web::SECP521R1,
        "X25519" => X25519,
        other => panic!("no client curve {other}"),
    }
}

/// A TLS connection to the exporter over `tcp`, trusting the fixtures' CA.
pub async fn tls_connect(
    f: &Fixtures,
    tcp: tokio::net::TcpStream,
    cert: Option<&str>,
    suites: &[&str],
    curves: &[&str],
    tls12: bool,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if !suites.is_empty() {
        provider.cipher_suites = suites.iter().map(|s| suite(s)).collect();
    }
    if !curves.is_empty() {
        provider.kx_groups = curves.iter().map(|c| curve(c)).collect();
    }
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12 {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(f.ca.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let config = match cert {
        Some(name) => {
            let chain =
                vec![CertificateDer::from_pem_file(f.dir.join(format!("{name}.pem"))).unwrap()];
            let key = PrivateKeyDer::from_pem_file(f.dir.join(format!("{name}.key"))).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))
}

/// What one request got.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The negotiated cipher suite, over TLS.
    pub suite: Option<String>,
    pub body: String,
}

/// One `GET path` on a connection of its own, over TLS with the fixtures' CA
/// unless `client` is plain: the answer, or why no HTTP answer came.
pub async fn request(
    f: &Fixtures,
    port: u16,
    path: &str,
    client: Client,
) -> Result<Answer, String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut body = Vec::new();
    let suite;
    match client {
        Client::Plain => {
            let mut tcp = tcp;
            tcp.write_all(request.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let _ = tcp.read_to_end(&mut body).await;
            suite = None;
        }
        Client::Tls {
            cert,
            suites,
            curves,
            tls12,
        } => {
            let mut tls = tls_connect(f, tcp, cert, suites, curves, tls12).await?;
            suite = tls
                .get_ref()
                .1
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()));
            tls.write_all(request.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            if let Err(e) = tls.read_to_end(&mut body).await
                && body.is_empty()
            {
                return Err(format!("read: {e}"));
            }
        }
    }
    let text = String::from_utf8_lossy(&body);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    if status == 400 && !text.contains("Client sent an HTTP request to an HTTPS server.") {
        return Err(format!("a 400 that is not Go's: {text:?}"));
    }
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok(Answer {
        status,
        suite,
        body,
    })
}

/// One `GET /-/healthy`: the status and the negotiated suite.
async fn get(f: &Fixtures, port: u16, client: Client) -> Result<(u16, Option<String>), String> {
    request(f, port, "/-/healthy", client)
        .await
        .map(|a| (a.status, a.suite))
}

fn check_config(f: &Fixtures, web: &Path) -> std::process::Output {
    let cfg = f.dir.join("config.yml");
    std::fs::write(f.dir.join("token"), "t\n").unwrap();
    std::fs::write(
        &cfg,
        format!(
            "graph_api:\n  access_token_file: {}\naccounts:\n  - waba_id: \"1\"\n",
            f.dir.join("token").display()
        ),
    )
    .unwrap();
    std::process::Command::new(BIN)
        .args([
            "--config.check",
            &format!("--config.file={}", cfg.display()),
            &format!("--web.config.file={}", web.display()),
        ])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_configs_mean_what_they_mean_to_exporter_toolkit() {
    let f = fixtures("web-config-parity");
    let missing = check_config(&f, &f.dir.join("somefile"));
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("No such file"));
    let mut failures = Vec::new();
    let cases = cases(&f);
    for case in &cases {
        let path = f.dir.join(case.name);
        std::fs::write(&path, &case.yaml).unwrap();
        let checked = check_config(&f, &path);
        let err = String::from_utf8_lossy(&checked.stderr).to_string();
        let probes = match &case.verdict {
            Verdict::Refused(want) => {
                if checked.status.success() || !err.contains(want) {
                    failures.push(format!(
                        "{}: want refused with {want:?}, got {err:?}",
                        case.name
                    ));
                }
                continue;
            }
            Verdict::Serves(probes) => {
                if !checked.status.success() {
                    failures.push(format!("{}: want served, refused with {err:?}", case.name));
                    continue;
                }
                probes
            }
        };
        let port = free_port();
        let _running = Running(
            std::process::Command::new(BIN)
                .args([
                    "--demo",
                    &format!("--web.listen-address=127.0.0.1:{port}"),
                    &format!("--web.config.file={}", path.display()),
                    "--log.level=warn",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(f.dir.join(format!("{}.log", case.name))).unwrap())
                .spawn()
                .unwrap(),
        );
        eventually(
            Duration::from_secs(20),
            "the exporter to listen",
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
        for (client, expect) in probes {
            let verdict = match expect {
                Expect::AllOk | Expect::TooManyRequests => {
                    let mut statuses = Vec::new();
                    for _ in 0..=10 {
                        statuses.push(get(&f, port, *client).await.map(|(s, _)| s));
                    }
                    let ok = match expect {
                        Expect::AllOk => statuses.iter().all(|s| s == &Ok(200)),
                        _ => statuses.contains(&Ok(429)),
                    };
                    (!ok).then(|| format!("{statuses:?}"))
                }
                _ => {
                    let got = get(&f, port, *client).await;
                    let ok = match (expect, &got) {
                        (Expect::Status(want, suite), Ok((s, negotiated))) => {
                            s == want && suite.is_none_or(|w| negotiated.as_deref() == Some(w))
                        }
                        (Expect::PlainHttpRefused, Ok((400, _))) => true,
                        (Expect::NoTls, Err(_)) => true,
                        _ => false,
                    };
                    (!ok).then(|| format!("{got:?}"))
                }
            };
            if let Some(got) = verdict {
                failures.push(format!("{}: want {expect:?}, got {got}", case.name));
            }
        }
        if let Some(reason) = case.logged {
            // A rejected handshake is logged at warn, with its reason.
            let log = f.dir.join(format!("{}.log", case.name));
            let until = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("TLS handshake rejected") && text.contains(reason) {
                    break;
                }
                if std::time::Instant::now() > until {
                    failures.push(format!(
                        "{}: no rejection with {reason:?} logged at warn",
                        case.name
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures disagree:\n{}",
        failures.len(),
        cases.len() + 1,
        failures.join("\n")
    );
}
