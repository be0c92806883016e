//! The JSON state file of earlier releases, and the record of one target's
//! seen-state that the state store ([`crate::collector::store`]) keeps.
//!
//! A JSON file is only read: the store imports it once at start-up.
//! Version 2 keeps, per event, the webhook state, application and error
//! fingerprint it was last seen with, and whether it is the SENT event of a
//! message still on its way (`[key, time, state, app, error, undelivered]`,
//! the indices into the target's `webhook_states` and `applications`). A
//! version 1 file (`[key, time]` only) still loads: its events adopt the
//! state they are next seen with, without counting a change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::collector::seen::Mark;
use crate::collector::sweep::SweepState;

/// Current format version.
pub const VERSION: u32 = 2;
/// Oldest version read.
pub const OLDEST: u32 = 1;

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StateFile {
    /// Format version; another version is refused.
    pub version: u32,
    /// Per target, keyed `collector/target`.
    pub targets: BTreeMap<String, TargetRecord>,
}

/// One target's seen-state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TargetRecord {
    /// Newest event time seen.
    #[serde(default)]
    pub last_event_timestamp: Option<i64>,
    /// `[key, event time, state, app, error, undelivered]` per event (`[key, event time]` in version 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seen: Vec<SeenRecord>,
    /// The last activities walk failed partway (see `TargetState::partial`).
    #[serde(default)]
    pub partial: bool,
    /// Webhook states, in the order the marks' `state` indices refer to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhook_states: Vec<String>,
    /// Applications, in the order the marks' `app` indices refer to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<String>,
    /// Where the sweep of the window stands (message_history).
    #[serde(default, skip_serializing_if = "SweepState::is_empty")]
    pub sweep: SweepState,
}

/// One remembered event: its key and how it was last seen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeenRecord {
    /// Identity key.
    pub key: u64,
    /// Time, state, application, error.
    pub mark: Mark,
}

impl Serialize for SeenRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.mark;
        if (m.state, m.app, m.error, m.undelivered) == (0, 0, 0, false) {
            (self.key, m.time).serialize(s)
        } else {
            let undelivered = u8::from(m.undelivered);
            (self.key, m.time, m.state, m.app, m.error, undelivered).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for SeenRecord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SeenRecord;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("[key, time] or [key, time, state, app, error, undelivered]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<SeenRecord, A::Error> {
                let missing = |n| serde::de::Error::invalid_length(n, &self);
                let key = a.next_element()?.ok_or_else(|| missing(0))?;
                let time = a.next_element()?.ok_or_else(|| missing(1))?;
                let state = a.next_element()?.unwrap_or(0);
                let app = a.next_element()?.unwrap_or(0);
                let error = a.next_element()?.unwrap_or(0);
                let undelivered: u8 = a.next_element()?.unwrap_or(0);
                if a.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(serde::de::Error::invalid_length(7, &self));
                }
                Ok(SeenRecord {
                    key,
                    mark: Mark {
                        time,
                        state,
                        undelivered: undelivered != 0,
                        app,
                        error,
                    },
                })
            }
        }
        d.deserialize_seq(V)
    }
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading failed.
    #[error("cannot read state file {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// Not our JSON.
    #[error("state file {0} is not valid: {1}")]
    Invalid(PathBuf, String),
    /// Written by another version.
    #[error("state file {0} has version {1}, this exporter reads versions {OLDEST} to {VERSION}")]
    Version(PathBuf, u32),
}

/// Key of a target in the file.
pub fn target_key(collector: &str, target: &str) -> String {
    format!("{collector}/{target}")
}

/// Loads the file; a missing file is an empty state.
pub fn load(path: &Path) -> Result<StateFile, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(StateFile {
                version: VERSION,
                ..Default::default()
            });
        }
        Err(e) => return Err(StateError::Io(path.to_path_buf(), e)),
    };
    let mut file: StateFile = serde_json::from_slice(&bytes)
        .map_err(|e| StateError::Invalid(path.to_path_buf(), e.to_string()))?;
    if !(OLDEST..=VERSION).contains(&file.version) {
        return Err(StateError::Version(path.to_path_buf(), file.version));
    }
    file.version = VERSION;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_missing_and_invalid() {
        let dir = std::env::temp_dir().join(format!("wa-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let _ = std::fs::remove_file(&path);
        assert!(load(&path).unwrap().targets.is_empty());
        let mut s = StateFile {
            version: VERSION,
            ..Default::default()
        };
        s.targets.insert(
            target_key("message_history", "1"),
            TargetRecord {
                last_event_timestamp: Some(5),
                seen: vec![
                    SeenRecord {
                        key: u64::MAX,
                        mark: Mark::at(5),
                    },
                    SeenRecord {
                        key: 7,
                        mark: Mark {
                            time: 6,
                            state: 2,
                            undelivered: true,
                            app: 1,
                            error: 999,
                        },
                    },
                ],
                partial: true,
                webhook_states: vec!["PENDING".into(), "FAILED".into()],
                applications: vec!["42".into()],
                sweep: SweepState {
                    cursor: Some("Y3Vyc29y+/=".into()),
                    pages: 4,
                    since: Some(1.5),
                    head_mark: Some(5),
                    floor: Some(2),
                },
            },
        );
        std::fs::write(&path, serde_json::to_vec(&s).unwrap()).unwrap();
        assert_eq!(load(&path).unwrap(), s);
        // Version 1, as the previous release wrote it: events without state.
        std::fs::write(
            &path,
            br#"{"version":1,"targets":{"message_history/1":{"last_event_timestamp":5,"seen":[[18446744073709551615,5]],"partial":false}}}"#,
        )
        .unwrap();
        let v1 = load(&path).unwrap();
        assert_eq!(v1.version, VERSION);
        assert_eq!(
            v1.targets["message_history/1"].seen,
            vec![SeenRecord {
                key: u64::MAX,
                mark: Mark::at(5)
            }]
        );
        std::fs::write(&path, br#"{"version":2,"targets":{"a/1":{"seen":[[1]]}}}"#).unwrap();
        assert!(matches!(load(&path), Err(StateError::Invalid(..))));
        std::fs::write(&path, b"{\"version\": 9, \"targets\": {}}").unwrap();
        assert!(matches!(load(&path), Err(StateError::Version(_, 9))));
        std::fs::write(&path, b"garbage").unwrap();
        assert!(matches!(load(&path), Err(StateError::Invalid(..))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
