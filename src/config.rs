//! The YAML configuration file: what to collect, from where, and how often.
//!
//! [`Config::from_yaml`] parses and validates in one go and reports every
//! problem it finds (with the YAML line where it can tell), so
//! `--config.check` shows a user all that is wrong at once.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::secret::AccessToken;

/// Environment variable used for the token when no `access_token_file` is set.
pub const TOKEN_ENV: &str = "WHATSAPP_ACCESS_TOKEN";

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the Graph API is and how to talk to it.
    #[serde(default)]
    pub graph_api: GraphApiConfig,
    /// WhatsApp Business Accounts and their phone numbers.
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    /// How much to fetch and how often.
    #[serde(default)]
    pub collect: CollectConfig,
    /// Where the seen-state is kept across restarts (optional).
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    /// Listing of phone numbers (health, and the numbers of accounts without `phone_number_ids`).
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    /// This process collects one shard of the targets (`--shard` overrides it).
    #[serde(default)]
    pub shard: Option<ShardConfig>,
}

/// `shard:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardConfig {
    /// This replica's shard, 0-based; absent: the ordinal at the end of
    /// `$POD_NAME` or `$HOSTNAME` (a StatefulSet pod `name-2` is shard 2).
    #[serde(default)]
    pub index: Option<u32>,
    /// How many shards.
    pub count: u32,
}

/// One shard of the targets: those whose stable hash modulo `count` is `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based.
    pub index: u32,
    /// At least 1.
    pub count: u32,
}

impl Shard {
    /// Parses `I/N` (`--shard`).
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected INDEX/COUNT, like 0/2"))?;
        let index: u32 = i
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: {i:?} is not a number"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: {n:?} is not a number"))?;
        Shard::new(index, count).map_err(|e| format!("{s:?}: {e}"))
    }

    /// Checks `index < count`.
    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 || index >= count {
            return Err(format!(
                "shard index {index} must be below the count {count} (and the count at least 1)"
            ));
        }
        Ok(Shard { index, count })
    }

    /// The shard of `shard:` in the config, the index from the environment
    /// (`POD_NAME`, else `HOSTNAME`, up to its last `-`) when not given.
    pub fn from_config(
        c: &ShardConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Shard, String> {
        let index = match c.index {
            Some(i) => i,
            None => {
                let name = env("POD_NAME")
                    .or_else(|| env("HOSTNAME"))
                    .ok_or("shard.index is not set and neither POD_NAME nor HOSTNAME is")?;
                name.rsplit('-')
                    .next()
                    .and_then(|o| o.parse().ok())
                    .ok_or_else(|| {
                        format!("shard.index is not set and {name:?} does not end in -ORDINAL")
                    })?
            }
        };
        Shard::new(index, c.count)
    }

    /// Whether this shard collects `target`: FNV-1a of `collector/id`, stable
    /// across processes, builds and restarts.
    pub fn owns(&self, target: &TargetSpec) -> bool {
        let key = crate::collector::seen::event_key(&[target.collector.as_str(), &target.id]);
        key % u64::from(self.count) == u64::from(self.index)
    }
}

/// `discovery:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// How often each account's phone numbers are listed.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            interval: Duration::from_secs(600),
        }
    }
}

/// `graph_api:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphApiConfig {
    /// Base URL, without the version (`https://graph.facebook.com`).
    pub base_url: String,
    /// Graph API version path segment (`v23.0`).
    pub version: String,
    /// File holding the access token; else `WHATSAPP_ACCESS_TOKEN`.
    pub access_token_file: Option<PathBuf>,
    /// Timeout of one HTTP request, body included.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest response body accepted; a larger one is an error (`too_large`).
    pub max_response_bytes: usize,
    /// Retries of a transient failure (5xx, `is_transient`, network, timeout).
    pub max_retries: u32,
}

impl Default for GraphApiConfig {
    fn default() -> Self {
        GraphApiConfig {
            base_url: "https://graph.facebook.com".into(),
            version: "v23.0".into(),
            access_token_file: None,
            request_timeout: Duration::from_secs(10),
            max_response_bytes: 16 * 1024 * 1024,
            max_retries: 2,
        }
    }
}

/// One entry of `accounts:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// WhatsApp Business Account id (digits).
    #[serde(deserialize_with = "id_string")]
    pub waba_id: String,
    /// Phone number ids of this account (digits); absent: discovered with
    /// `GET /{WABA-ID}/phone_numbers` every `discovery.interval`.
    #[serde(default, deserialize_with = "opt_id_strings")]
    pub phone_number_ids: Option<Vec<String>>,
    /// Token file for this account only, overriding the global one.
    #[serde(default)]
    pub access_token_file: Option<PathBuf>,
}

/// `collect:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectConfig {
    /// Records per page, sent as `limit=` (1..=100).
    pub page_size: u32,
    /// Pages per target per collection.
    pub max_pages: u32,
    /// How far back, by event time, events are counted and remembered.
    #[serde(with = "humantime_serde")]
    pub lookback: Duration,
    /// A scrape sooner than this after the last collection attempt of a target reuses it.
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
    /// Targets collected at the same time.
    pub concurrency: usize,
    /// `webhook_update_state` values that count as failures.
    pub webhook_failure_states: Vec<String>,
    /// Distinct `error` label values per phone number before `other`.
    pub max_error_labels: usize,
    /// API usage (percent, from Meta's headers) at which calls stop until access is regained.
    pub usage_threshold_percent: f64,
    /// First backoff after a rate limit without a regain time.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// Longest backoff.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Hard cap of calls per token per rolling hour, whatever the headers say.
    pub max_requests_per_hour: Option<u32>,
}

impl Default for CollectConfig {
    fn default() -> Self {
        CollectConfig {
            page_size: 100,
            max_pages: 10,
            lookback: Duration::from_secs(24 * 3600),
            min_interval: Duration::from_secs(60),
            concurrency: 8,
            webhook_failure_states: vec!["FAILED".into(), "ERROR".into(), "RETRYING".into()],
            max_error_labels: 20,
            usage_threshold_percent: 90.0,
            backoff_initial: Duration::from_secs(60),
            backoff_max: Duration::from_secs(3600),
            max_requests_per_hour: None,
        }
    }
}

/// Accepts an id written as a YAML string or an unquoted integer.
fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Str(String),
        Num(u64),
    }
    Ok(match Id::deserialize(d)? {
        Id::Str(s) => s,
        Id::Num(n) => n.to_string(),
    })
}

fn opt_id_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "id_string")] String);
    Ok(Some(
        Vec::<Wrapped>::deserialize(d)?
            .into_iter()
            .map(|w| w.0)
            .collect(),
    ))
}

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based YAML line, where known.
    pub line: Option<usize>,
    /// What is wrong, naming the key.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    /// The file, for the message.
    pub source_name: String,
    /// All problems, in file order where known.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} problem(s) in the configuration:",
            self.source_name,
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// A collection target: one WABA (activities) or one phone number (message_history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// Which collector.
    pub collector: CollectorKind,
    /// WABA id or phone number id.
    pub id: String,
    /// The WABA the target belongs to.
    pub waba_id: String,
    /// Token used for its calls.
    pub token: AccessToken,
}

/// The two collectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CollectorKind {
    /// `GET /{WABA-ID}/activities`.
    Activities,
    /// `GET /{Phone-Number-ID}/message_history`.
    MessageHistory,
    /// `GET /{WABA-ID}/phone_numbers`: discovery and phone number health,
    /// never a collection target.
    PhoneNumbers,
}

impl CollectorKind {
    /// Label value and Graph edge name.
    pub fn as_str(self) -> &'static str {
        match self {
            CollectorKind::Activities => "activities",
            CollectorKind::MessageHistory => "message_history",
            CollectorKind::PhoneNumbers => "phone_numbers",
        }
    }
}

/// A validated configuration with its tokens read.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The parsed file.
    pub config: Config,
    /// Every configured target, activities first, in file order.
    pub targets: Vec<TargetSpec>,
    /// Every account with its token, for listing its phone numbers.
    pub accounts: Vec<AccountSpec>,
}

/// An account whose phone numbers are listed (for their health, and as
/// targets when `discover`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSpec {
    /// WABA id.
    pub waba_id: String,
    /// Token for its calls.
    pub token: AccessToken,
    /// `phone_number_ids` is absent: the listed numbers are targets.
    pub discover: bool,
}

impl Config {
    /// Reads, parses and validates a config file, reading the token files it names.
    pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: name.clone(),
            problems: vec![Problem {
                line: None,
                message: format!("cannot read the config file: {e}"),
            }],
        })?;
        Self::from_yaml(&text, &name, |k| std::env::var(k).ok())
    }

    /// Parses and validates YAML text; `env` looks up environment variables.
    pub fn from_yaml(
        text: &str,
        source_name: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<LoadedConfig, ConfigError> {
        let fail = |problems| ConfigError {
            source_name: source_name.to_string(),
            problems,
        };
        let config: Config = serde_norway::from_str(text).map_err(|e| {
            fail(vec![Problem {
                line: e.location().map(|l| l.line()),
                message: e.to_string(),
            }])
        })?;
        let mut problems = config.validate(text);
        let (targets, accounts) = config.resolve_targets(text, &env, &mut problems);
        if problems.is_empty() {
            Ok(LoadedConfig {
                config,
                targets,
                accounts,
            })
        } else {
            problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
            Err(fail(problems))
        }
    }

    /// Checks values serde cannot; returns every problem.
    fn validate(&self, text: &str) -> Vec<Problem> {
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
        if c.lookback.is_zero() {
            bad("collect.lookback", "must be more than 0s".into());
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

    /// Reads tokens and lists targets; pushes a problem per missing or unreadable token.
    fn resolve_targets(
        &self,
        text: &str,
        env: &impl Fn(&str) -> Option<String>,
        problems: &mut Vec<Problem>,
    ) -> (Vec<TargetSpec>, Vec<AccountSpec>) {
        let mut read = |path: &Path, key: &str| -> Option<AccessToken> {
            let line = line_of_key(text, "access_token_file", 0);
            match std::fs::read_to_string(path) {
                Ok(s) if !s.trim().is_empty() => Some(AccessToken::new(&s)),
                Ok(_) => {
                    problems.push(Problem {
                        line,
                        message: format!("{key}: {} is empty", path.display()),
                    });
                    None
                }
                Err(e) => {
                    problems.push(Problem {
                        line,
                        message: format!("{key}: cannot read {}: {e}", path.display()),
                    });
                    None
                }
            }
        };
        let global = match &self.graph_api.access_token_file {
            Some(p) => read(p, "graph_api.access_token_file"),
            None => env(TOKEN_ENV)
                .filter(|s| !s.trim().is_empty())
                .map(|s| AccessToken::new(&s)),
        };
        let mut acts = Vec::new();
        let mut phones = Vec::new();
        let mut missing = Vec::new();
        let mut accounts = Vec::new();
        for (i, a) in self.accounts.iter().enumerate() {
            let token = match &a.access_token_file {
                Some(p) => read(p, &format!("accounts[{i}].access_token_file")),
                None => global.clone(),
            };
            let Some(token) = token else {
                if a.access_token_file.is_none() {
                    missing.push(Problem {
                        line: line_of_value(text, &a.waba_id, 0),
                        message: format!(
                            "accounts[{i}]: no access token: set graph_api.access_token_file, \
                             accounts[{i}].access_token_file or the {TOKEN_ENV} environment variable"
                        ),
                    });
                }
                continue;
            };
            acts.push(TargetSpec {
                collector: CollectorKind::Activities,
                id: a.waba_id.clone(),
                waba_id: a.waba_id.clone(),
                token: token.clone(),
            });
            accounts.push(AccountSpec {
                waba_id: a.waba_id.clone(),
                token: token.clone(),
                discover: a.phone_number_ids.is_none(),
            });
            phones.extend(a.phone_number_ids.iter().flatten().map(|p| TargetSpec {
                collector: CollectorKind::MessageHistory,
                id: p.clone(),
                waba_id: a.waba_id.clone(),
                token: token.clone(),
            }));
        }
        problems.extend(missing);
        acts.extend(phones);
        (acts, accounts)
    }
}

/// A non-empty string of ASCII digits: the shape of every Graph API id here.
pub(crate) fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// 1-based line of the `nth` (0-based) line whose key is `key`.
fn line_of_key(text: &str, key: &str, nth: usize) -> Option<usize> {
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
fn line_of_value(text: &str, value: &str, nth: usize) -> Option<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_split_targets_disjointly_and_completely() {
        assert_eq!(Shard::parse("1/3"), Ok(Shard { index: 1, count: 3 }));
        for bad in ["3/3", "1", "a/2", "0/0"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        let env = |name: &'static str| move |k: &str| (k == "HOSTNAME").then(|| name.to_string());
        let c = ShardConfig {
            index: None,
            count: 4,
        };
        assert_eq!(
            Shard::from_config(&c, env("wa-exporter-2")),
            Ok(Shard { index: 2, count: 4 })
        );
        assert!(Shard::from_config(&c, env("wa-exporter")).is_err());
        assert!(Shard::from_config(&c, env("wa-exporter-7")).is_err());
        let targets: Vec<TargetSpec> = (0..1000u64)
            .map(|i| TargetSpec {
                collector: CollectorKind::MessageHistory,
                id: (1_000_000_000_000_000 + i).to_string(),
                waba_id: "1".into(),
                token: AccessToken::new("t"),
            })
            .collect();
        let shards: Vec<Shard> = (0..3).map(|i| Shard { index: i, count: 3 }).collect();
        for t in &targets {
            assert_eq!(shards.iter().filter(|s| s.owns(t)).count(), 1, "{}", t.id);
        }
        for s in &shards {
            let n = targets.iter().filter(|t| s.owns(t)).count();
            assert!((250..420).contains(&n), "shard {} has {n} of 1000", s.index);
        }
    }

    fn env_token(k: &str) -> Option<String> {
        (k == TOKEN_ENV).then(|| "tok123".to_string())
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::from_yaml(
            "accounts:\n  - waba_id: \"111\"\n    phone_number_ids: [\"222\", 333]\n",
            "t",
            env_token,
        )
        .unwrap();
        assert_eq!(c.config.graph_api.version, "v23.0");
        assert_eq!(c.config.collect.page_size, 100);
        assert_eq!(c.config.collect.min_interval, Duration::from_secs(60));
        let ids: Vec<_> = c
            .targets
            .iter()
            .map(|t| (t.collector, t.id.as_str()))
            .collect();
        assert_eq!(
            ids,
            vec![
                (CollectorKind::Activities, "111"),
                (CollectorKind::MessageHistory, "222"),
                (CollectorKind::MessageHistory, "333")
            ]
        );
        assert_eq!(c.targets[0].token.expose(), "tok123");
    }

    #[test]
    fn every_problem_reported_with_lines() {
        let yaml = "\
graph_api:
  version: latest
collect:
  page_size: 500
  lookback: 0s
accounts:
  - waba_id: \"12a\"
    phone_number_ids: [\"222\"]
  - waba_id: \"999\"
    phone_number_ids: [\"222\"]
";
        let e = Config::from_yaml(yaml, "t", env_token).unwrap_err();
        let text = e.to_string();
        for want in [
            "line 2: graph_api.version",
            "line 4: collect.page_size: 500 is out of range",
            "line 5: collect.lookback",
            "line 7: accounts[0].waba_id: \"12a\" is not a numeric id",
            "line 10: accounts[1].phone_number_ids[0]: 222 is configured twice",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert_eq!(e.problems.len(), 5, "{text}");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = Config::from_yaml(
            "accounts:\n  - waba_id: \"1\"\ncollect:\n  page_sise: 5\n",
            "t",
            env_token,
        )
        .unwrap_err();
        assert_eq!(e.problems[0].line, Some(4));
        assert!(e.problems[0].message.contains("page_sise"), "{e}");
    }

    #[test]
    fn missing_token_is_an_error() {
        let e = Config::from_yaml("accounts:\n  - waba_id: \"1\"\n", "t", |_| None).unwrap_err();
        assert!(e.to_string().contains(TOKEN_ENV), "{e}");
        let e = Config::from_yaml(
            "graph_api:\n  access_token_file: /nonexistent/tok\naccounts:\n  - waba_id: \"1\"\n",
            "t",
            env_token,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("line 2: graph_api.access_token_file: cannot read /nonexistent/tok"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_waba() {
        let e = Config::from_yaml(
            "accounts:\n  - waba_id: \"1\"\n  - waba_id: \"1\"\n",
            "t",
            env_token,
        )
        .unwrap_err();
        assert_eq!(e.problems.len(), 1);
        assert_eq!(e.problems[0].line, Some(3));
    }
}
