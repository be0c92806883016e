//! `--web.config.file`: TLS (certificates made here with rcgen), basic auth,
//! client certificates, response headers, and changes picked up without a
//! restart; the health endpoints.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

use crate::support::*;
use whatsapp_exporter::config::{Config, TOKEN_ENV};
use whatsapp_exporter::server::{self, AppState, Options};
use whatsapp_exporter::web::WebConfig;

/// A CA that signs server and client certificates.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names` and its key, in PEM.
    fn issue(&self, names: &[&str]) -> (String, String) {
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes a server certificate of `ca` into `dir`.
fn write_server_cert(dir: &Path, ca: &Ca) {
    let (cert, key) = ca.issue(&["localhost", "127.0.0.1"]);
    std::fs::write(dir.join("server.crt"), cert).unwrap();
    std::fs::write(dir.join("server.key"), key).unwrap();
}

fn hash(password: &str) -> String {
    // Cost 4: the lowest bcrypt allows, to keep the test quick.
    bcrypt::hash(password, 4).unwrap()
}

/// Starts the exporter in process on 127.0.0.1:0 with `web.yml` of `dir`.
async fn serve(dir: &Path) -> (String, tokio::sync::oneshot::Sender<()>) {
    let (_sim, url) = simulator().await; // serves on after this handle goes
    let loaded = Config::from_yaml(&config_yaml(&url, "", ""), "test", |k| {
        (k == TOKEN_ENV).then(|| TOKEN.to_string())
    })
    .unwrap();
    let web = WebConfig::from_file(&dir.join("web.yml")).expect("valid web config");
    let state: Arc<AppState> = AppState::new(
        &loaded,
        Options {
            web,
            ..Options::default()
        },
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::run(listener, state, async {
        let _ = rx.await;
    }));
    (format!("localhost:{port}"), tx)
}

/// A client trusting only `ca`, with no connection reuse (each request
/// makes a new handshake, which sees the certificate in force).
fn client(ca: &Ca, identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()])
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10));
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

fn web_yml(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("web.yml");
    std::fs::write(&p, text).unwrap();
    p
}

const TLS: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_basic_auth() {
    let dir = temp_dir("web-tls");
    let ca = Ca::new("test CA");
    write_server_cert(&dir, &ca);
    web_yml(
        &dir,
        &format!(
            "{TLS}basic_auth_users:\n  prometheus: {}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n",
            hash("s3cret")
        ),
    );
    let (addr, _stop) = serve(&dir).await;
    let c = client(&ca, None);
    let url = format!("https://{addr}/metrics");

    let good = c
        .get(&url)
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 200);
    assert_eq!(good.version(), reqwest::Version::HTTP_2, "h2 by ALPN");
    assert_eq!(good.headers()["x-frame-options"], "deny");
    assert!(good.text().await.unwrap().contains("whatsapp_up{"));

    for (user, pass) in [("prometheus", "wrong"), ("nobody", "s3cret")] {
        let r = c
            .get(&url)
            .basic_auth(user, Some(pass))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{user}:{pass}");
        assert_eq!(r.headers()["www-authenticate"], "Basic");
    }
    for path in ["/metrics", "/-/healthy", "/", "/-/reload"] {
        let r = c.get(format!("https://{addr}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without credentials");
    }
    let healthy = c
        .get(format!("https://{addr}/-/healthy"))
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthy.status(), 200);

    // Plain HTTP to the TLS port gets Go's 400, nothing of the exporter's.
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 400);
    assert_eq!(
        plain.text().await.unwrap(),
        "Client sent an HTTP request to an HTTPS server.\n"
    );
    // Nor does a client that does not trust the certificate.
    let other = client(&Ca::new("other CA"), None).get(&url).send().await;
    assert!(other.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_and_passwords_change_without_a_restart() {
    let dir = temp_dir("web-rotate");
    let (old_ca, new_ca) = (Ca::new("old CA"), Ca::new("new CA"));
    write_server_cert(&dir, &old_ca);
    web_yml(
        &dir,
        &format!("{TLS}basic_auth_users:\n  prometheus: {}\n", hash("one")),
    );
    let (addr, _stop) = serve(&dir).await;
    let url = format!("https://{addr}/-/ready");
    let get = |ca: &Ca, pass: &str| {
        let req = client(ca, None)
            .get(&url)
            .basic_auth("prometheus", Some(pass.to_string()));
        async move { req.send().await.map(|r| r.status().as_u16()) }
    };
    assert_eq!(get(&old_ca, "one").await.unwrap(), 200);
    assert!(get(&new_ca, "one").await.is_err());

    // The certificate is renewed by a new CA; the password changes.
    write_server_cert(&dir, &new_ca);
    web_yml(
        &dir,
        &format!("{TLS}basic_auth_users:\n  prometheus: {}\n", hash("two")),
    );
    assert_eq!(get(&new_ca, "two").await.unwrap(), 200);
    assert_eq!(get(&new_ca, "one").await.unwrap(), 401);
    assert!(get(&old_ca, "two").await.is_err());

    // A broken file fails closed (500) until it is fixed.
    web_yml(
        &dir,
        &format!("{TLS}basic_auth_users:\n  prometheus: plain\n"),
    );
    assert_eq!(get(&new_ca, "two").await.unwrap(), 500);
    web_yml(
        &dir,
        &format!("{TLS}basic_auth_users:\n  prometheus: {}\n", hash("two")),
    );
    assert_eq!(get(&new_ca, "two").await.unwrap(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_verified() {
    let dir = temp_dir("web-mtls");
    let ca = Ca::new("server CA");
    write_server_cert(&dir, &ca);
    let clients = Ca::new("client CA");
    std::fs::write(dir.join("clients.crt"), &clients.pem).unwrap();
    web_yml(
        &dir,
        &format!(
            "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients.crt\n  min_version: TLS13\n"
        ),
    );
    let (addr, _stop) = serve(&dir).await;
    let url = format!("https://{addr}/-/healthy");
    let (cert, key) = clients.issue(&["prometheus"]);
    let ok = client(&ca, Some((&cert, &key)))
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(client(&ca, None).get(&url).send().await.is_err());
    let (stranger, stranger_key) = Ca::new("stranger").issue(&["x"]);
    assert!(
        client(&ca, Some((&stranger, &stranger_key)))
            .get(&url)
            .send()
            .await
            .is_err()
    );
}

#[test]
fn a_bad_web_config_is_a_clear_error_at_start_up() {
    let dir = temp_dir("web-bad");
    write_server_cert(&dir, &Ca::new("CA"));
    for (text, want) in [
        (
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
            "missing.crt",
        ),
        ("basic_auth_users:\n  alice: hunter2\n", "not a bcrypt hash"),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireSomething\n",
            "invalid ClientAuth",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS10\n",
            "TLS10",
        ),
    ] {
        let path = web_yml(&dir, text);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_whatsapp-exporter"))
            .args([
                "--demo",
                &format!("--web.listen-address=127.0.0.1:{}", free_port()),
                &format!("--web.config.file={}", path.display()),
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--web.config.file") && err.contains(want),
            "{text}: {err}"
        );
        // --config.check checks it too.
        let cfg = dir.join("config.yml");
        std::fs::write(dir.join("token"), "t\n").unwrap();
        std::fs::write(
            &cfg,
            format!(
                "graph_api:\n  access_token_file: {}\naccounts:\n  - waba_id: \"1\"\n",
                dir.join("token").display()
            ),
        )
        .unwrap();
        let check = std::process::Command::new(env!("CARGO_BIN_EXE_whatsapp-exporter"))
            .args([
                "--config.check",
                &format!("--config.file={}", cfg.display()),
                &format!("--web.config.file={}", path.display()),
            ])
            .output()
            .unwrap();
        assert!(!check.status.success(), "{text}");
        assert!(
            String::from_utf8_lossy(&check.stderr).contains(want),
            "{text}"
        );
    }
}
