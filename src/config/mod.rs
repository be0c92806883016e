//! The YAML configuration file: what to collect, from where, and how often.
//!
//! [`Config::from_yaml`] parses and validates in one go and reports every
//! problem it finds (with the YAML line where it can tell), so
//! `--config.check` shows a user all that is wrong at once.

mod file;
mod problem;
mod target;
mod validate;

pub use file::{
    AccountConfig, CollectConfig, Config, DiscoveryConfig, GraphApiConfig, HealthConfig,
    ShardConfig, TOKEN_ENV,
};
pub use problem::{ConfigError, Problem};
pub use target::{AccountSpec, CollectorKind, Shard, ShardError, TargetSpec, UnknownCollector};
pub(crate) use validate::is_digits;

use std::path::Path;

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
    use std::time::Duration;

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
        assert!(c.config.health.enabled);
        assert_eq!(c.config.health.interval, Duration::from_secs(600));
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
health:
  interval: 0s
";
        let e = Config::from_yaml(yaml, "t", env_token).unwrap_err();
        let text = e.to_string();
        for want in [
            "line 2: graph_api.version",
            "line 4: collect.page_size: 500 is out of range",
            "line 5: collect.lookback",
            "line 7: accounts[0].waba_id: \"12a\" is not a numeric id",
            "line 10: accounts[1].phone_number_ids[0]: 222 is configured twice",
            "line 12: health.interval: must be more than 0s",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert_eq!(e.problems.len(), 6, "{text}");
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
