//! The YAML configuration file: what to collect, from where, and how often.
//!
//! [`Config::from_yaml`] parses and validates in one go and reports every
//! problem it finds (with the YAML line where it can tell), so
//! `--config.check` shows a user all that is wrong at once.

mod target;
mod validate;

pub use target::{CollectorKind, Shard, ShardConfig, ShardError, TargetSpec, UnknownCollector};
pub(crate) use validate::is_digits;

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

/// `--config.check`: validates the configuration file (and the web
/// configuration file, when given), prints the verdict or every problem,
/// and returns whether both are valid.
pub fn check(config_file: &Path, web_config_file: Option<&Path>) -> bool {
    let mut ok = match Config::load(config_file) {
        Ok(c) => {
            println!(
                "{}: configuration is valid ({} targets)",
                config_file.display(),
                c.targets.len()
            );
            true
        }
        Err(e) => {
            eprint!("{e}");
            false
        }
    };
    if let Some(web) = web_config_file {
        match crate::web::load(web) {
            Ok(_) => println!("{}: web configuration is valid", web.display()),
            Err(e) => {
                eprintln!("invalid --web.config.file: {e}");
                ok = false;
            }
        }
    }
    ok
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
