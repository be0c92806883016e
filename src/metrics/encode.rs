//! Exposition: OpenMetrics (what prometheus-client writes) and the classic
//! Prometheus text format 0.0.4, chosen from the scraper's `Accept` header as
//! the Go client does.
//!
//! The classic format is derived from the OpenMetrics text line by line:
//! counter families are renamed to their `_total` sample name (OpenMetrics
//! types `foo` and samples `foo_total`; the classic format wants both named
//! `foo_total`, which is what `promtool check metrics` checks), `# UNIT`,
//! `# EOF`, `_created` samples and exemplars are dropped, and OpenMetrics-only
//! types are mapped to classic ones.

use prometheus_client::registry::Registry;

/// Exposition format of one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
    /// `text/plain; version=0.0.4`.
    Classic,
}

impl Format {
    /// Picks the format for an `Accept` header: OpenMetrics when the client
    /// accepts it at least as much as plain text, else classic.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Classic;
        };
        let mut om_q: f32 = 0.0;
        let mut text_q: f32 = 0.0;
        for part in accept.split(',') {
            let mut params = part.split(';').map(str::trim);
            let media = params.next().unwrap_or("").to_ascii_lowercase();
            let q = params
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => om_q = om_q.max(q),
                "text/plain" | "text/*" | "*/*" => text_q = text_q.max(q),
                _ => {}
            }
        }
        if om_q > 0.0 && om_q >= text_q {
            Format::OpenMetrics
        } else {
            Format::Classic
        }
    }

    /// `openmetrics` or `classic`, for logs and spans.
    pub fn name(self) -> &'static str {
        match self {
            Format::OpenMetrics => "openmetrics",
            Format::Classic => "classic",
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Encodes the registry in the given format.
pub fn encode(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    let mut text = encode_registry(registry, format)?;
    if format == Format::OpenMetrics {
        prometheus_client::encoding::text::encode_eof(&mut text)?;
    }
    Ok(text)
}

/// Encodes the registry's families in the given format, without the
/// OpenMetrics `# EOF` line: a part of an answer.
pub fn encode_registry(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    let mut om = String::with_capacity(4 * 1024);
    prometheus_client::encoding::text::encode_registry(&mut om, registry)?;
    Ok(match format {
        Format::OpenMetrics => om,
        Format::Classic => openmetrics_to_classic(&om),
    })
}

/// Rewrites OpenMetrics text (as prometheus-client writes it) into the classic text format.
pub fn openmetrics_to_classic(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut help: Option<(&str, &str)> = None;
    // Name of the current counter family, whose `_created` samples are dropped.
    let mut counter: Option<&str> = None;
    for line in om.split_terminator('\n') {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, text));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, om_type) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (suffix, classic_type) = match om_type {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                "stateset" => ("", "gauge"),
                "gaugehistogram" => ("", "histogram"),
                "unknown" => ("", "untyped"),
                other => ("", other),
            };
            counter = (om_type == "counter").then_some(name);
            if let Some((help_name, text)) = help.take().filter(|(n, _)| *n == name) {
                out.push_str("# HELP ");
                out.push_str(help_name);
                out.push_str(suffix);
                out.push(' ');
                // OpenMetrics escapes `"` in HELP; the classic format does not.
                out.push_str(&text.replace("\\\"", "\""));
                out.push('\n');
            }
            out.push_str("# TYPE ");
            out.push_str(name);
            out.push_str(suffix);
            out.push(' ');
            out.push_str(classic_type);
            out.push('\n');
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            // `# UNIT`, `# EOF` and anything else OpenMetrics-only.
            continue;
        }
        let sample = strip_exemplar(line);
        if let Some(c) = counter {
            let name_end = sample.find(['{', ' ']).unwrap_or(sample.len());
            if sample[..name_end].strip_prefix(c) == Some("_created") {
                continue;
            }
        }
        out.push_str(sample);
        out.push('\n');
    }
    out
}

/// Cuts an OpenMetrics exemplar (` # {...} value`) off a sample line,
/// skipping over quoted label values that may themselves contain ` # `.
fn strip_exemplar(line: &str) -> &str {
    let bytes = line.as_bytes();
    // Most lines have no `#` at all: one vectorised search, not a walk of every byte.
    if memchr::memchr(b'#', bytes).is_none() {
        return line;
    }
    let mut i = 0;
    let mut in_quotes = false;
    let mut depth = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_quotes => i += 1,
            b'"' if depth > 0 => in_quotes = !in_quotes,
            b'{' if !in_quotes => depth += 1,
            b'}' if !in_quotes => depth -= 1,
            b'#' if !in_quotes && depth == 0 && i > 0 && bytes[i - 1] == b' ' => {
                return line[..i - 1].trim_end();
            }
            _ => {}
        }
        i += 1;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::histogram::Histogram;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct L {
        error: String,
    }

    #[test]
    fn negotiation_matches_prometheus_and_curl() {
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prom)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Classic);
        assert_eq!(Format::negotiate(None), Format::Classic);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::Classic
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0")),
            Format::Classic
        );
    }

    #[test]
    fn classic_renames_counters_and_drops_openmetrics_only_lines() {
        let mut r = Registry::default();
        let f: Family<L, Counter> = Family::default();
        f.get_or_create(&L {
            error: "tricky # \"quoted\" \\ value".into(),
        })
        .inc();
        r.register("demo_events", "Events seen", f);
        let h = Histogram::new([1.0]);
        h.observe(0.5);
        r.register("demo_duration_seconds", "Durations", h);
        let om = encode(&r, Format::OpenMetrics).unwrap();
        assert!(om.contains("# TYPE demo_events counter\n"), "{om}");
        assert!(om.ends_with("# EOF\n"));
        let classic = encode(&r, Format::Classic).unwrap();
        let expected = "\
# HELP demo_events_total Events seen.
# TYPE demo_events_total counter
demo_events_total{error=\"tricky # \\\"quoted\\\" \\\\ value\"} 1
# HELP demo_duration_seconds Durations.
# TYPE demo_duration_seconds histogram
demo_duration_seconds_sum 0.5
demo_duration_seconds_count 1
demo_duration_seconds_bucket{le=\"1.0\"} 1
demo_duration_seconds_bucket{le=\"+Inf\"} 1
";
        assert_eq!(classic, expected);
    }

    #[test]
    fn exemplars_and_created_are_dropped() {
        let om = "# HELP c X.\n# TYPE c counter\nc_total{a=\"x # y\"} 3 # {trace_id=\"abc\"} 1.0\nc_created 17\n# UNIT c seconds\n# EOF\n";
        assert_eq!(
            openmetrics_to_classic(om),
            "# HELP c_total X.\n# TYPE c_total counter\nc_total{a=\"x # y\"} 3\n"
        );
    }
}
