//! The checks serde cannot make, each problem with the YAML line where it
//! can be told, so `--config.check` shows every problem at once.

use std::collections::HashSet;

use crate::config::file::Config;
use crate::config::problem::Problem;

impl Config {
    /// Checks values serde cannot; returns every problem.
    pub(super) fn validate(&self, text: &str) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |key: &str, message: String| {
            out.push(Problem {
                line: line_of_key(text, key.rsplit('.').next().unwrap_or(key), 0),
                message: format!("{key}: {message}"),
            })
        };
        let g = &self.graph_api;
        match url::Url::parse(&g.base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.query().is_none() => {}
            Ok(_) => bad(
                "graph_api.base_url",
                format!("{:?} must be an http(s) URL without a query", g.base_url),
            ),
            Err(e) => bad(
                "graph_api.base_url",
                format!("{:?} is not a URL: {e}", g.base_url),
            ),
        }
        let version_ok = g
            .version
            .strip_prefix('v')
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(a, b)| is_digits(a) && is_digits(b));
        if !version_ok {
            bad(
                "graph_api.version",
                format!("{:?} must look like v23.0", g.version),
            );
        }
        if g.request_timeout.is_zero() {
            bad("graph_api.request_timeout", "must be more than 0s".into());
        }
        if g.max_response_bytes < 1024 {
            bad(
                "graph_api.max_response_bytes",
                format!("{} is too small (at least 1024)", g.max_response_bytes),
            );
        }
        if self.health.enabled && self.health.interval.is_zero() {
            bad(
                "health.interval",
                "must be more than 0s (health.enabled: false turns the checks off)".into(),
            );
        }
        let c = &self.collect;
        if !(1..=100).contains(&c.page_size) {
            bad(
                "collect.page_size",
                format!("{} is out of range 1..100", c.page_size),
            );
        }
        if !(1..=1000).contains(&c.max_pages) {
            bad(
                "collect.max_pages",
                format!("{} is out of range 1..1000", c.max_pages),
            );
        }
        if !(1..=crate::collector::seen::Interned::MAX).contains(&c.max_label_values) {
            bad(
                "collect.max_label_values",
                format!(
                    "{} is out of range 1..{}",
                    c.max_label_values,
                    crate::collector::seen::Interned::MAX
                ),
            );
        }
        if !(1..=c.max_pages.max(1)).contains(&c.sweep_pages) {
            bad(
                "collect.sweep_pages",
                format!(
                    "{} is out of range 1..{} (collect.max_pages)",
                    c.sweep_pages, c.max_pages
                ),
            );
        }
        if c.lookback.is_zero() {
            bad("collect.lookback", "must be more than 0s".into());
        } else {
            if c.head_age >= c.lookback {
                bad(
                    "collect.head_age",
                    "must be less than collect.lookback".into(),
                );
            }
            if c.undelivered_after.is_zero() || c.undelivered_after >= c.lookback {
                bad(
                    "collect.undelivered_after",
                    "must be more than 0s and less than collect.lookback".into(),
                );
            }
        }
        if !(1..=1024).contains(&c.concurrency) {
            bad(
                "collect.concurrency",
                format!("{} is out of range 1..1024", c.concurrency),
            );
        }
        if c.webhook_failure_states.iter().any(|s| s.trim().is_empty()) {
            bad(
                "collect.webhook_failure_states",
                "contains an empty value".into(),
            );
        }
        if !(c.usage_threshold_percent > 0.0 && c.usage_threshold_percent <= 100.0) {
            bad(
                "collect.usage_threshold_percent",
                format!("{} is out of range (0, 100]", c.usage_threshold_percent),
            );
        }
        if c.backoff_initial.is_zero() || c.backoff_max < c.backoff_initial {
            bad(
                "collect.backoff_max",
                "backoff_initial must be more than 0s and backoff_max at least backoff_initial"
                    .into(),
            );
        }
        if c.max_requests_per_hour == Some(0) {
            bad(
                "collect.max_requests_per_hour",
                "0 would forbid every call; leave it out for no cap".into(),
            );
        }
        if g.max_retries > 10 {
            bad(
                "graph_api.max_retries",
                format!("{} is out of range 0..10", g.max_retries),
            );
        }
        if let Some(sh) = &self.shard {
            let index_ok = sh.index.is_none_or(|i| i < sh.count);
            if sh.count == 0 || !index_ok {
                bad(
                    "shard.count",
                    format!("must be at least 1 and above shard.index ({:?})", sh.index),
                );
            }
        }
        if self.accounts.is_empty() {
            out.push(Problem {
                line: line_of_key(text, "accounts", 0),
                message: "accounts: at least one account (waba_id) is required".into(),
            });
        }
        let mut wabas = HashSet::new();
        let mut phones = HashSet::new();
        for (i, a) in self.accounts.iter().enumerate() {
            let mut id_problem = |id: &str, key: String, seen: &mut HashSet<String>| {
                if !is_digits(id) {
                    out.push(Problem {
                        line: line_of_value(text, id, 0),
                        message: format!("{key}: {id:?} is not a numeric id"),
                    });
                } else if !seen.insert(id.to_string()) {
                    out.push(Problem {
                        line: line_of_value(text, id, 1),
                        message: format!("{key}: {id} is configured twice (duplicate target)"),
                    });
                }
            };
            id_problem(&a.waba_id, format!("accounts[{i}].waba_id"), &mut wabas);
            for (j, p) in a.phone_number_ids.iter().flatten().enumerate() {
                id_problem(
                    p,
                    format!("accounts[{i}].phone_number_ids[{j}]"),
                    &mut phones,
                );
            }
        }
        out
    }
}

/// A non-empty string of ASCII digits: the shape of every Graph API id here.
pub(crate) fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// 1-based line of the `nth` (0-based) line whose key is `key`.
pub(super) fn line_of_key(text: &str, key: &str, nth: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_start().trim_start_matches("- ");
            t.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .nth(nth)
        .map(|(i, _)| i + 1)
}

/// 1-based line of the `nth` (0-based) occurrence of `value` as a whole token.
pub(super) fn line_of_value(text: &str, value: &str, nth: usize) -> Option<usize> {
    if value.is_empty() {
        return None;
    }
    let mut count = 0;
    for (i, line) in text.lines().enumerate() {
        let code = line.split('#').next().unwrap_or("");
        let hits = code
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
            .filter(|w| *w == value)
            .count();
        if count + hits > nth {
            return Some(i + 1);
        }
        count += hits;
    }
    None
}
