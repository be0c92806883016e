//! What one response shows, built from the families and their label sets:
//! every series (the registry built once at start-up), or a [`Scope`] that
//! narrows it to one target (`/probe`) and shows the targets whose
//! collection did not finish by the scrape deadline as down. A scoped answer
//! is a registry of views over the same families, made for that response:
//! nothing is copied, nothing is patched after encoding.

use std::collections::HashSet;
use std::fmt::{self, Debug};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::metrics::encode::{Format, encode_registry};
use crate::metrics::labels::TargetLabels;

/// What one response shows.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only this target's series (`/probe`); `None`: every series.
    pub only: Option<TargetLabels>,
    /// Targets shown with `whatsapp_up` 0 in this response only: their
    /// collection was still running at the scrape deadline.
    pub down: HashSet<TargetLabels>,
}

impl Scope {
    /// Every series as the registry holds it.
    pub fn is_whole(&self) -> bool {
        self.only.is_none() && self.down.is_empty()
    }
}

/// A family that can be shown through a [`Scope`].
pub trait Scoped: Send + Sync + Debug + 'static {
    /// Encodes the series `scope` shows.
    fn encode_in(&self, encoder: MetricEncoder, scope: &Scope) -> fmt::Result;
    /// Whether `scope` shows none of its series (then not even its metadata is written).
    fn is_empty_in(&self, scope: &Scope) -> bool;
    /// Counter, gauge, histogram, ...
    fn metric_type(&self) -> MetricType;
}

/// A family without target labels (request counts by endpoint, build info):
/// in a whole answer, never in a target's.
#[derive(Debug, Clone)]
pub struct Unscoped<M>(pub M);

impl<M: EncodeMetric + Send + Sync + Debug + 'static> Scoped for Unscoped<M> {
    fn encode_in(&self, encoder: MetricEncoder, scope: &Scope) -> fmt::Result {
        match scope.only {
            None => self.0.encode(encoder),
            Some(_) => Ok(()),
        }
    }

    fn is_empty_in(&self, scope: &Scope) -> bool {
        scope.only.is_some() || self.0.is_empty()
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
}

/// A family registered in a registry through a scope.
#[derive(Debug)]
struct InScope {
    family: Arc<dyn Scoped>,
    scope: Arc<Scope>,
}

impl EncodeMetric for InScope {
    fn encode(&self, encoder: MetricEncoder) -> fmt::Result {
        self.family.encode_in(encoder, &self.scope)
    }

    fn metric_type(&self) -> MetricType {
        self.family.metric_type()
    }

    fn is_empty(&self) -> bool {
        self.family.is_empty_in(&self.scope)
    }
}

/// One registered family, with the registry that shows all of it.
#[derive(Debug)]
struct Described {
    name: &'static str,
    help: String,
    family: Arc<dyn Scoped>,
    whole: Registry,
}

/// Every family the exporter exposes, in registration order: the metric
/// groups register into it. Read-only once built.
///
/// An answer is made of parts, one per family, each in the response's
/// format and each made on its own ([`Exposition::encode_part`]), so that the
/// server can make them on several threads at once and join them in order
/// ([`Exposition::join`]); [`Exposition::encode`] makes them one after the other.
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<Described>,
}

impl Exposition {
    /// Registers a family under `name` (a counter without `_total`:
    /// prometheus-client appends it).
    pub fn register(&mut self, name: &'static str, help: impl Into<String>, family: impl Scoped) {
        let family: Arc<dyn Scoped> = Arc::new(family);
        let help = help.into();
        let mut whole = Registry::default();
        whole.register(
            name,
            help.clone(),
            InScope {
                family: family.clone(),
                scope: Arc::default(),
            },
        );
        self.families.push(Described {
            name,
            help,
            family,
            whole,
        });
    }

    /// The number of parts of an answer (the families registered).
    pub fn parts(&self) -> usize {
        self.families.len()
    }

    /// Part `i` of the answer for `scope` in `format`: family `i`'s metadata
    /// and the series `scope` shows, or nothing when it shows none. Past the
    /// last family, an empty part.
    pub fn encode_part(
        &self,
        i: usize,
        format: Format,
        scope: &Arc<Scope>,
    ) -> Result<String, fmt::Error> {
        let Some(d) = self.families.get(i) else {
            return Ok(String::new());
        };
        let scoped;
        let registry = if scope.is_whole() {
            &d.whole
        } else {
            let mut r = Registry::default();
            r.register(
                d.name,
                d.help.clone(),
                InScope {
                    family: d.family.clone(),
                    scope: scope.clone(),
                },
            );
            scoped = r;
            &scoped
        };
        encode_registry(registry, format)
    }

    /// The answer made of `parts` (in family order) in `format`.
    pub fn join(parts: &[String], format: Format) -> String {
        let eof = match format {
            Format::OpenMetrics => "# EOF\n",
            Format::Classic => "",
        };
        let mut out =
            String::with_capacity(parts.iter().map(String::len).sum::<usize>() + eof.len());
        for p in parts {
            out.push_str(p);
        }
        out.push_str(eof);
        out
    }

    /// The answer for `scope` in `format`, its parts made one after the other.
    pub fn encode(&self, format: Format, scope: &Scope) -> Result<String, fmt::Error> {
        let scope = Arc::new(scope.clone());
        let parts = (0..self.parts())
            .map(|i| self.encode_part(i, format, &scope))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::join(&parts, format))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::metrics::labels::{ACTIVITIES, MESSAGE_HISTORY, StatusLabels};

    fn target(collector: &'static str, id: &str) -> TargetLabels {
        TargetLabels {
            collector,
            target: id.into(),
        }
    }

    #[test]
    fn scopes_narrow_and_mark_down_from_the_label_sets() {
        let mut exp = Exposition::default();
        let m = Metrics::register(&mut exp, "v", "r");
        let (a, b) = (target(MESSAGE_HISTORY, "1"), target(ACTIVITIES, "12"));
        for t in [&a, &b] {
            m.init_target(t);
            m.collection.up.get_or_create(t).set(1);
        }
        m.events
            .status_events
            .get_or_create(&StatusLabels {
                phone_number_id: "1".into(),
                delivery_status: "SENT".into(),
            })
            .inc();
        let whole = exp.encode(Format::Classic, &Scope::default()).unwrap();
        assert!(whole.contains("whatsapp_up{collector=\"activities\",target=\"12\"} 1\n"));
        assert!(whole.contains("whatsapp_exporter_build_info{"));

        let only_a = Scope {
            only: Some(a.clone()),
            down: HashSet::new(),
        };
        let text = exp.encode(Format::Classic, &only_a).unwrap();
        assert!(text.contains("whatsapp_up{collector=\"message_history\",target=\"1\"} 1\n"));
        assert!(text.contains("whatsapp_message_status_events_total{phone_number_id=\"1\""));
        assert!(text.contains("whatsapp_graph_api_throttled{target=\"1\"} 0\n"));
        assert!(!text.contains("\"12\""), "{text}");
        assert!(!text.contains("build_info"), "{text}");
        // A family with nothing in scope is left out, metadata and all.
        assert!(!text.contains("whatsapp_activity_events"), "{text}");

        let a_down = Scope {
            only: None,
            down: [a.clone()].into(),
        };
        let text = exp.encode(Format::OpenMetrics, &a_down).unwrap();
        assert!(text.contains("whatsapp_up{collector=\"message_history\",target=\"1\"} 0\n"));
        assert!(text.contains("whatsapp_up{collector=\"activities\",target=\"12\"} 1\n"));
        assert!(text.ends_with("# EOF\n"));
        // In that response only: the registry keeps the last collection's value.
        assert_eq!(m.collection.up.get(&a).map(|g| g.get()), Some(1));
    }
}
