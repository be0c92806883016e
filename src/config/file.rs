//! The configuration file as written: its sections, their keys and defaults.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

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
    /// Account health: each number's health status, each account's templates.
    #[serde(default)]
    pub health: HealthConfig,
}

/// `health:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Whether health status and templates are read at all.
    pub enabled: bool,
    /// How often each phone number's health status and each account's
    /// templates are read.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            enabled: true,
            interval: Duration::from_secs(600),
        }
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
    /// Pages one walk reads at most: the baseline, the head of a collection,
    /// and one whole sweep (message_history), or one collection (activities).
    pub max_pages: u32,
    /// Older pages of message_history read per collection after the head,
    /// continuing the sweep of the lookback window.
    pub sweep_pages: u32,
    /// The head of a message_history collection reads on while a page holds
    /// messages sent less than this long ago (their statuses still move).
    #[serde(with = "humantime_serde")]
    pub head_age: Duration,
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
    /// Distinct values per label per target of every other label taken from
    /// the API (delivery status, webhook state, application, category, event
    /// type, usage type, error code) before `other`.
    pub max_label_values: usize,
    /// A message SENT this long ago without DELIVERED, READ, FAILED or DELETED is undelivered.
    #[serde(with = "humantime_serde")]
    pub undelivered_after: Duration,
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
            max_pages: 50,
            sweep_pages: 2,
            head_age: Duration::from_secs(300),
            lookback: Duration::from_secs(24 * 3600),
            min_interval: Duration::from_secs(60),
            concurrency: 8,
            webhook_failure_states: vec!["FAILED".into(), "ERROR".into(), "RETRYING".into()],
            max_error_labels: 20,
            max_label_values: 50,
            undelivered_after: Duration::from_secs(600),
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
