//! Where traces go: the flag and the standard `OTEL_*` variables resolved
//! into [`OtlpSettings`], and the tracer provider built from them.

use anyhow::Context as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// gRPC (`grpc`), usually port 4317.
    Grpc,
    /// Protobuf over HTTP (`http/protobuf`, the default), usually port 4318.
    HttpProtobuf,
}

/// Where traces go, as resolved from the flag and the `OTEL_*` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    /// Transport.
    pub protocol: OtlpProtocol,
    /// Full endpoint when given by the flag; `None` lets the exporter read
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// with the specification's rules (`/v1/traces` appended to the latter
    /// for HTTP).
    pub endpoint: Option<String>,
}

/// Lets `OTEL_*` variables be read from anything (the process, a test map).
pub trait Env {
    /// The value of `name`, if set and not empty.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

/// Decides whether traces are exported and how. `flag_endpoint` is
/// `--tracing.otlp-endpoint`, a base URL like `OTEL_EXPORTER_OTLP_ENDPOINT`.
/// `Ok(None)`: tracing is off (nothing asks for it, `OTEL_SDK_DISABLED=true`
/// or `OTEL_TRACES_EXPORTER=none`).
pub fn resolve_otlp(
    flag_endpoint: Option<&str>,
    env: &dyn Env,
) -> anyhow::Result<Option<OtlpSettings>> {
    if env
        .get("OTEL_SDK_DISABLED")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return Ok(None);
    }
    match env.get("OTEL_TRACES_EXPORTER").as_deref().map(str::trim) {
        None | Some("otlp") => {}
        Some("none") => return Ok(None),
        Some(other) => anyhow::bail!(
            "OTEL_TRACES_EXPORTER={other} is not supported: use otlp (or none to turn tracing off)"
        ),
    }
    let flag_endpoint = flag_endpoint.map(str::trim).filter(|s| !s.is_empty());
    let from_env = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .find_map(|v| env.get(v).map(|e| (*v, e)));
    if flag_endpoint.is_none() && from_env.is_none() {
        return Ok(None);
    }
    let protocol = match env
        .get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| env.get("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .as_deref()
        .map(str::trim)
    {
        None | Some("http/protobuf") => OtlpProtocol::HttpProtobuf,
        Some("grpc") => OtlpProtocol::Grpc,
        Some(other) => anyhow::bail!(
            "OTLP protocol {other:?} is not supported: use grpc or http/protobuf \
             (OTEL_EXPORTER_OTLP_PROTOCOL / OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)"
        ),
    };
    let (name, raw) = match (flag_endpoint, &from_env) {
        (Some(f), _) => ("--tracing.otlp-endpoint", f.to_string()),
        (None, Some((v, e))) => (*v, e.clone()),
        (None, None) => return Ok(None),
    };
    let url = url::Url::parse(raw.trim())
        .with_context(|| format!("{name}={raw:?} is not a URL (like http://collector:4318)"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        anyhow::bail!("{name}={raw:?} must be an http:// or https:// URL with a host");
    }
    let endpoint = flag_endpoint.map(|f| match protocol {
        OtlpProtocol::HttpProtobuf => format!("{}/v1/traces", f.trim_end_matches('/')),
        OtlpProtocol::Grpc => f.to_string(),
    });
    Ok(Some(OtlpSettings { protocol, endpoint }))
}

pub(super) fn build_provider(s: &OtlpSettings) -> anyhow::Result<SdkTracerProvider> {
    let exporter = match s.protocol {
        OtlpProtocol::HttpProtobuf => {
            let b = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
            match &s.endpoint {
                Some(e) => b.with_endpoint(e).build(),
                None => b.build(),
            }
        }
        OtlpProtocol::Grpc => {
            let mut b = opentelemetry_otlp::SpanExporter::builder().with_tonic();
            let endpoint = s.endpoint.clone().or_else(|| {
                ProcessEnv
                    .get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                    .or_else(|| ProcessEnv.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
            });
            if endpoint.as_deref().is_some_and(|e| e.starts_with("https:")) {
                b = b.with_tls_config(
                    opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new()
                        .with_native_roots(),
                );
            }
            match &s.endpoint {
                Some(e) => b.with_endpoint(e).build(),
                None => b.build(),
            }
        }
    }
    .context("cannot set up the OTLP trace exporter")?;
    let mut resource = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    let named = ProcessEnv.get("OTEL_SERVICE_NAME").is_some()
        || ProcessEnv.get("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| {
            a.split(',')
                .any(|kv| kv.trim().starts_with("service.name="))
        });
    if !named {
        resource = resource.with_service_name("whatsapp-exporter");
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, &'static str>);

    impl Env for Map {
        fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
    }

    fn env(pairs: &[(&'static str, &'static str)]) -> Map {
        Map(pairs.iter().copied().collect())
    }

    #[test]
    fn off_unless_something_asks() {
        assert_eq!(resolve_otlp(None, &env(&[])).unwrap(), None);
        assert_eq!(
            resolve_otlp(None, &env(&[("OTEL_SERVICE_NAME", "x")])).unwrap(),
            None
        );
        let on = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")];
        assert!(resolve_otlp(None, &env(&on)).unwrap().is_some());
        let mut off = on.to_vec();
        off.push(("OTEL_SDK_DISABLED", "true"));
        assert_eq!(resolve_otlp(None, &env(&off)).unwrap(), None);
        let mut none = on.to_vec();
        none.push(("OTEL_TRACES_EXPORTER", "none"));
        assert_eq!(resolve_otlp(None, &env(&none)).unwrap(), None);
    }

    #[test]
    fn protocol_and_endpoint() {
        let s = resolve_otlp(
            None,
            &env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/x")]),
        )
        .unwrap()
        .unwrap();
        // The exporter reads the variable itself, with the specification's rules.
        assert_eq!(s.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(s.endpoint, None);
        let s = resolve_otlp(Some("http://c:4318/"), &env(&[]))
            .unwrap()
            .unwrap();
        assert_eq!(s.endpoint.as_deref(), Some("http://c:4318/v1/traces"));
        let grpc = env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        let s = resolve_otlp(Some("http://c:4317"), &grpc).unwrap().unwrap();
        assert_eq!(s.protocol, OtlpProtocol::Grpc);
        assert_eq!(s.endpoint.as_deref(), Some("http://c:4317"));
        // The per-signal variable wins.
        let both = env(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ]);
        let s = resolve_otlp(None, &both).unwrap().unwrap();
        assert_eq!(s.protocol, OtlpProtocol::HttpProtobuf);
    }

    #[test]
    fn bad_settings_are_clear_errors() {
        let json = env(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ]);
        let e = resolve_otlp(None, &json).unwrap_err().to_string();
        assert!(e.contains("http/json") && e.contains("grpc"), "{e}");
        let e = resolve_otlp(Some("collector:4317"), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--tracing.otlp-endpoint"), "{e}");
        let e = resolve_otlp(None, &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://c")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{e}");
        let e = resolve_otlp(
            None,
            &env(&[
                ("OTEL_TRACES_EXPORTER", "zipkin"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("zipkin"), "{e}");
    }
}
