//! What Meta says a call used: the `X-App-Usage` and
//! `X-Business-Use-Case-Usage` headers, read leniently (a missing or
//! malformed header reports nothing).

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

/// Usage reported by one response's headers (percentages).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// `(usage_type, metric, percent)`: `app` for `X-App-Usage`, else the business-use-case type.
    pub values: Vec<(String, &'static str, f64)>,
    /// Longest `estimated_time_to_regain_access`, if a business-use-case header was present.
    pub regain: Option<Duration>,
    /// Whether `X-App-Usage` was present (app-level usage).
    pub app_reported: bool,
}

/// The three percentages both headers report.
#[derive(Deserialize)]
struct Percentages {
    #[serde(default)]
    call_count: Option<f64>,
    #[serde(default)]
    total_cputime: Option<f64>,
    #[serde(default)]
    total_time: Option<f64>,
}

impl Percentages {
    fn each(&self) -> impl Iterator<Item = (&'static str, f64)> {
        [
            ("call_count", self.call_count),
            ("total_cputime", self.total_cputime),
            ("total_time", self.total_time),
        ]
        .into_iter()
        .filter_map(|(metric, v)| v.filter(|v| v.is_finite()).map(|v| (metric, v)))
    }
}

#[derive(Deserialize)]
struct BucEntry {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(flatten)]
    percentages: Percentages,
    #[serde(default)]
    estimated_time_to_regain_access: Option<f64>,
}

impl Usage {
    /// Parses the two headers; a missing or malformed header reports nothing.
    pub fn parse(app: Option<&str>, buc: Option<&str>) -> Usage {
        let mut u = Usage::default();
        if let Some(a) = app.and_then(|s| serde_json::from_str::<Percentages>(s).ok()) {
            u.app_reported = true;
            u.values
                .extend(a.each().map(|(metric, v)| ("app".to_string(), metric, v)));
        }
        if let Some(b) =
            buc.and_then(|s| serde_json::from_str::<HashMap<String, Vec<BucEntry>>>(s).ok())
        {
            let mut regain = 0.0f64;
            let mut best: HashMap<(String, &'static str), f64> = HashMap::new();
            for e in b.into_values().flatten() {
                let kind = e.kind.unwrap_or_else(|| "unknown".into());
                for (metric, v) in e.percentages.each() {
                    let slot = best.entry((kind.clone(), metric)).or_insert(v);
                    *slot = slot.max(v);
                }
                if let Some(r) = e.estimated_time_to_regain_access.filter(|r| r.is_finite()) {
                    regain = regain.max(r);
                }
            }
            let mut values: Vec<_> = best.into_iter().map(|((k, m), v)| (k, m, v)).collect();
            values.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            u.values.extend(values);
            u.regain = Some(Duration::from_secs_f64(
                regain.clamp(0.0, 7.0 * 24.0 * 60.0) * 60.0,
            ));
        }
        u
    }

    /// The highest percentage reported at app level (`app`) or for the business use cases.
    pub fn highest(&self, app: bool) -> f64 {
        self.values
            .iter()
            .filter(|(k, _, _)| (k == "app") == app)
            .map(|(_, _, v)| *v)
            .fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meta_headers() {
        let u = Usage::parse(
            Some(r#"{"call_count":28,"total_time":25,"total_cputime":25}"#),
            Some(
                r#"{"112130216863063":[{"type":"whatsapp_business_management","call_count":95,"total_cputime":1,"total_time":2,"estimated_time_to_regain_access":3}]}"#,
            ),
        );
        assert!(u.values.contains(&("app".into(), "call_count", 28.0)));
        assert!(
            u.values
                .contains(&("whatsapp_business_management".into(), "call_count", 95.0))
        );
        assert_eq!(u.regain, Some(Duration::from_secs(180)));
        assert_eq!(Usage::parse(None, None), Usage::default());
        assert_eq!(Usage::parse(Some("garbage"), Some("[1]")), Usage::default());
    }
}
