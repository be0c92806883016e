//! What a configuration resolves to: the targets (one WABA for activities,
//! one phone number for message_history) with their tokens, the accounts
//! whose numbers are listed, and the shard of them this process collects.

use std::path::Path;

use crate::config::file::{Config, ShardConfig, TOKEN_ENV};
use crate::config::problem::Problem;
use crate::config::validate::{line_of_key, line_of_value};
use crate::fnv;
use crate::secret::AccessToken;

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
    pub fn parse(s: &str) -> Result<Shard, ShardError> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| ShardError::Syntax(s.to_string()))?;
        let number = |part: &str| {
            part.trim()
                .parse::<u32>()
                .map_err(|_| ShardError::NotANumber {
                    input: s.to_string(),
                    part: part.to_string(),
                })
        };
        Shard::new(number(i)?, number(n)?)
    }

    /// Checks `index < count`.
    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if count == 0 || index >= count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }

    /// The shard of `shard:` in the config, the index from the environment
    /// (`POD_NAME`, else `HOSTNAME`, up to its last `-`) when not given.
    pub fn from_config(
        c: &ShardConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Shard, ShardError> {
        let index = match c.index {
            Some(i) => i,
            None => {
                let name = env("POD_NAME")
                    .or_else(|| env("HOSTNAME"))
                    .ok_or(ShardError::NoPodName)?;
                name.rsplit('-')
                    .next()
                    .and_then(|o| o.parse().ok())
                    .ok_or(ShardError::NoOrdinal(name))?
            }
        };
        Shard::new(index, c.count)
    }

    /// Whether this shard collects `target`: FNV-1a of `collector/id`, stable
    /// across processes, builds and restarts.
    pub fn owns(&self, target: &TargetSpec) -> bool {
        let key = fnv::hash(&[target.collector.as_str(), &target.id]);
        key % u64::from(self.count) == u64::from(self.index)
    }
}

/// Why a shard is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Not `I/N`.
    #[error("{0:?}: expected INDEX/COUNT, like 0/2")]
    Syntax(String),
    /// A part of `I/N` is not a number.
    #[error("{input:?}: {part:?} is not a number")]
    NotANumber {
        /// The whole value.
        input: String,
        /// The part that is not a number.
        part: String,
    },
    /// `index >= count` or `count == 0`.
    #[error("shard index {index} must be below the count {count} (and the count at least 1)")]
    OutOfRange {
        /// 0-based index.
        index: u32,
        /// Number of shards.
        count: u32,
    },
    /// No index and nothing to take it from.
    #[error("shard.index is not set and neither POD_NAME nor HOSTNAME is")]
    NoPodName,
    /// No index and the pod name has no ordinal.
    #[error("shard.index is not set and {0:?} does not end in -ORDINAL")]
    NoOrdinal(String),
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
    /// The events of an account: `GET /{WABA-ID}/activities`.
    Activities,
    /// The delivery statuses of a phone number: `GET /{Phone-Number-ID}/message_history`.
    MessageHistory,
}

impl CollectorKind {
    /// Every collector.
    pub const ALL: [CollectorKind; 2] = [CollectorKind::Activities, CollectorKind::MessageHistory];

    /// The `collector` label value, as users write it.
    pub const fn as_str(self) -> &'static str {
        match self {
            CollectorKind::Activities => "activities",
            CollectorKind::MessageHistory => "message_history",
        }
    }

    /// `activities or message_history`, for messages.
    pub fn choices() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
        names.join(" or ")
    }
}

impl std::fmt::Display for CollectorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A collector name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown collector {name:?}: {choices}", name = .0, choices = CollectorKind::choices())]
pub struct UnknownCollector(pub String);

impl std::str::FromStr for CollectorKind {
    type Err = UnknownCollector;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownCollector(s.to_string()))
    }
}

impl<'de> serde::Deserialize<'de> for CollectorKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Config {
    /// Reads tokens and lists targets; pushes a problem per missing or unreadable token.
    pub(super) fn resolve_targets(
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
}
