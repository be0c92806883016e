//! The account health group: whether each entity a phone number depends on
//! can send (`GET /{Phone-Number-ID}?fields=health_status`), and the
//! templates of each account with their status and quality
//! (`GET /{WABA-ID}/message_templates`).

use std::collections::{BTreeMap, HashMap, HashSet};

use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::exposition::Exposition;
use crate::metrics::labels::{
    EntityErrorLabels, EntityStateLabels, TemplateInfoLabels, TemplateQualityLabels,
    TemplateStatusLabels,
};
use crate::metrics::shared::one_hot;
use crate::metrics::tracked::Tracked;

/// The `can_send_message` values always exposed (0 or 1).
pub const CAN_SEND: [&str; 3] = ["AVAILABLE", "LIMITED", "BLOCKED"];
/// The template statuses always exposed (0 or 1).
pub const TEMPLATE_STATUSES: [&str; 5] = ["APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED"];
/// The template quality scores always exposed (0 or 1).
pub const TEMPLATE_SCORES: [&str; 4] = ["GREEN", "YELLOW", "RED", "UNKNOWN"];

/// One entity as a health check reported it, labels ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityReport {
    /// `PHONE_NUMBER`, `WABA`, ... (or another value the API gives).
    pub entity_type: String,
    /// Its id.
    pub entity_id: String,
    /// `can_send_message` (or `unknown`).
    pub state: String,
    /// Its errors' codes, capped.
    pub error_codes: Vec<String>,
}

/// One listed template, labels ready.
#[derive(Debug, Clone)]
pub struct ListedTemplate {
    /// Template id.
    pub id: String,
    /// Name (or `unknown`).
    pub name: String,
    /// Language (or `unknown`).
    pub language: String,
    /// Category (or `unknown`).
    pub category: String,
    /// Status (or `unknown`).
    pub status: String,
    /// Quality score (or `unknown`).
    pub score: String,
}

/// `whatsapp_health_*` and `whatsapp_template_*`.
#[derive(Clone, Debug)]
pub struct HealthMetrics {
    can_send: Tracked<EntityStateLabels, Gauge>,
    errors: Tracked<EntityErrorLabels, Gauge>,
    template_info: Tracked<TemplateInfoLabels, Gauge>,
    template_status: Tracked<TemplateStatusLabels, Gauge>,
    template_quality: Tracked<TemplateQualityLabels, Gauge>,
}

impl HealthMetrics {
    /// Creates the group's families and registers them.
    pub fn register(exp: &mut Exposition) -> Self {
        let m = HealthMetrics {
            can_send: Tracked::default(),
            errors: Tracked::default(),
            template_info: Tracked::default(),
            template_status: Tracked::default(),
            template_quality: Tracked::default(),
        };
        exp.register(
            "whatsapp_health_can_send_message",
            "1 for the entity's current can_send_message (GET /{Phone-Number-ID}?fields=health_status, every health.interval), 0 for the other states (AVAILABLE, LIMITED, BLOCKED); an entity shared by several numbers (WABA, business, app) has one series set",
            m.can_send.clone(),
        );
        exp.register(
            "whatsapp_health_errors",
            "1 for each error Meta lists for the entity in its health status (error codes capped at collect.max_label_values per entity, then other)",
            m.errors.clone(),
        );
        exp.register(
            "whatsapp_template_info",
            "1 for each message template listed by GET /{WABA-ID}/message_templates (every health.interval); labels give its name, language and category",
            m.template_info.clone(),
        );
        exp.register(
            "whatsapp_template_status",
            "1 for the template's current status, 0 for the other statuses (APPROVED, PENDING, REJECTED, PAUSED, DISABLED)",
            m.template_status.clone(),
        );
        exp.register(
            "whatsapp_template_quality",
            "1 for the template's current quality score, 0 for the other scores (GREEN, YELLOW, RED, UNKNOWN); unknown when Meta gives none",
            m.template_quality.clone(),
        );
        m
    }

    /// Shows the entities the numbers' last health checks reported, each
    /// reported newest first: an entity reported by several numbers takes
    /// the first report's values. Entities no number reports any more lose
    /// their series.
    pub fn publish<'a>(&self, reports: impl IntoIterator<Item = &'a EntityReport>) {
        let mut entities: BTreeMap<(&str, &str), &EntityReport> = BTreeMap::new();
        for r in reports {
            entities
                .entry((r.entity_type.as_str(), r.entity_id.as_str()))
                .or_insert(r);
        }
        let mut states = HashMap::new();
        let mut errors = HashSet::new();
        for r in entities.values() {
            for s in CAN_SEND.iter().copied().chain([r.state.as_str()]) {
                states.insert(
                    EntityStateLabels {
                        entity_type: r.entity_type.clone(),
                        entity_id: r.entity_id.clone(),
                        state: s.to_string(),
                    },
                    i64::from(s == r.state),
                );
            }
            for code in &r.error_codes {
                errors.insert(EntityErrorLabels {
                    entity_type: r.entity_type.clone(),
                    entity_id: r.entity_id.clone(),
                    error_code: code.clone(),
                });
            }
        }
        self.can_send.retain(|l| states.contains_key(l));
        for (l, v) in &states {
            self.can_send.get_or_create(l).set(*v);
        }
        self.errors.retain(|l| errors.contains(l));
        for l in &errors {
            self.errors.get_or_create(l).set(1);
        }
    }

    /// Records the templates just listed for `waba_id`. When the listing is
    /// `complete`, the series of its templates not listed go; a truncated
    /// listing leaves them as they were.
    pub fn record_templates(&self, waba_id: &str, listed: &[ListedTemplate], complete: bool) {
        for t in listed {
            let id = t.id.as_str();
            let info = TemplateInfoLabels {
                waba_id: waba_id.to_string(),
                template_id: t.id.clone(),
                name: t.name.clone(),
                language: t.language.clone(),
                category: t.category.clone(),
            };
            self.template_info
                .retain(|l| l.waba_id != waba_id || l.template_id != id || *l == info);
            self.template_info.get_or_create(&info).set(1);
            let of_this = |w: &str, tid: &str| w == waba_id && tid == id;
            one_hot(
                &self.template_status,
                &TEMPLATE_STATUSES,
                &t.status,
                |l| of_this(&l.waba_id, &l.template_id).then_some(l.status.as_str()),
                |status| TemplateStatusLabels {
                    waba_id: waba_id.to_string(),
                    template_id: t.id.clone(),
                    status,
                },
            );
            one_hot(
                &self.template_quality,
                &TEMPLATE_SCORES,
                &t.score,
                |l| of_this(&l.waba_id, &l.template_id).then_some(l.score.as_str()),
                |score| TemplateQualityLabels {
                    waba_id: waba_id.to_string(),
                    template_id: t.id.clone(),
                    score,
                },
            );
        }
        if complete {
            let ids: HashSet<&str> = listed.iter().map(|t| t.id.as_str()).collect();
            let keep = |w: &str, tid: &str| w != waba_id || ids.contains(tid);
            self.template_info
                .retain(|l| keep(&l.waba_id, &l.template_id));
            self.template_status
                .retain(|l| keep(&l.waba_id, &l.template_id));
            self.template_quality
                .retain(|l| keep(&l.waba_id, &l.template_id));
        }
    }

    /// Removes the template series of `waba_id` (its account is no longer collected).
    pub fn forget_templates(&self, waba_id: &str) {
        self.record_templates(waba_id, &[], true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(t: &str, id: &str, state: &str, errors: &[&str]) -> EntityReport {
        EntityReport {
            entity_type: t.into(),
            entity_id: id.into(),
            state: state.into(),
            error_codes: errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn state_of(m: &HealthMetrics, t: &str, id: &str) -> Vec<(String, i64)> {
        let mut v: Vec<_> = m
            .can_send
            .keys()
            .into_iter()
            .filter(|l| l.entity_type == t && l.entity_id == id)
            .map(|l| {
                let g = m.can_send.get(&l).map(|g| g.get()).unwrap_or(-1);
                (l.state, g)
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn shared_entities_are_one_series_set_and_leave_with_their_last_reporter() {
        let mut exp = Exposition::default();
        let m = HealthMetrics::register(&mut exp);
        let newest = [
            report("PHONE_NUMBER", "1", "AVAILABLE", &[]),
            report("WABA", "10", "BLOCKED", &["141014"]),
        ];
        let older = [
            report("PHONE_NUMBER", "2", "AVAILABLE", &[]),
            report("WABA", "10", "AVAILABLE", &[]),
            report("FUTURE_THING", "9", "SOMETIMES", &[]),
        ];
        m.publish(newest.iter().chain(&older));
        assert_eq!(
            state_of(&m, "WABA", "10"),
            [
                ("AVAILABLE".into(), 0),
                ("BLOCKED".into(), 1),
                ("LIMITED".into(), 0)
            ]
        );
        assert_eq!(state_of(&m, "FUTURE_THING", "9").len(), 4);
        assert_eq!(m.errors.keys().len(), 1);
        // Number 1 gone: the WABA takes number 2's report, its error goes.
        m.publish(older.iter());
        assert_eq!(state_of(&m, "WABA", "10")[0], ("AVAILABLE".into(), 1));
        assert!(state_of(&m, "PHONE_NUMBER", "1").is_empty());
        assert!(m.errors.keys().is_empty());
        m.publish([]);
        assert!(m.can_send.keys().is_empty());
    }

    fn template(id: &str, status: &str, score: &str) -> ListedTemplate {
        ListedTemplate {
            id: id.into(),
            name: format!("t{id}"),
            language: "en_US".into(),
            category: "UTILITY".into(),
            status: status.into(),
            score: score.into(),
        }
    }

    #[test]
    fn templates_are_one_hot_and_a_vanished_one_loses_its_series() {
        let mut exp = Exposition::default();
        let m = HealthMetrics::register(&mut exp);
        m.record_templates(
            "10",
            &[
                template("1", "APPROVED", "GREEN"),
                template("2", "PAUSED", "unknown"),
            ],
            true,
        );
        m.record_templates("11", &[template("1", "APPROVED", "GREEN")], true);
        assert_eq!(m.template_status.keys().len(), 15);
        assert_eq!(m.template_quality.keys().len(), 4 + 5 + 4);
        // A truncated listing without template 2 keeps it.
        m.record_templates("10", &[template("1", "REJECTED", "RED")], false);
        assert_eq!(m.template_info.keys().len(), 3);
        m.record_templates("10", &[template("1", "REJECTED", "RED")], true);
        let tids: HashSet<_> = m
            .template_info
            .keys()
            .into_iter()
            .map(|l| (l.waba_id, l.template_id))
            .collect();
        assert_eq!(
            tids,
            [("10".into(), "1".into()), ("11".into(), "1".into())].into()
        );
        assert!(
            m.template_quality
                .keys()
                .iter()
                .all(|l| l.score != "unknown")
        );
        m.forget_templates("10");
        assert!(m.template_status.keys().iter().all(|l| l.waba_id == "11"));
    }
}
