//! The optional state file: what each target has seen, so a restart neither
//! re-counts history nor loses the events that happened while it was down.
//!
//! Versioned JSON, written atomically (temporary file, fsync, rename). Only
//! targets whose baseline is done have an entry; entries are pruned past the
//! lookback like the in-memory state, which bounds the file's size.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Current format version.
pub const VERSION: u32 = 1;

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
    /// `[key, event time]` pairs.
    #[serde(default)]
    pub seen: Vec<(u64, i64)>,
    /// The last activities walk failed partway (see `TargetState::partial`).
    #[serde(default)]
    pub partial: bool,
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
    #[error("state file {0} has version {1}, this exporter reads version {VERSION}")]
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
    let file: StateFile = serde_json::from_slice(&bytes)
        .map_err(|e| StateError::Invalid(path.to_path_buf(), e.to_string()))?;
    if file.version != VERSION {
        return Err(StateError::Version(path.to_path_buf(), file.version));
    }
    Ok(file)
}

/// Moves an unusable file aside (`<name>.invalid`) so nothing is lost when a new one is written.
pub fn set_aside(path: &Path) -> std::io::Result<PathBuf> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".invalid");
    let aside = PathBuf::from(aside);
    std::fs::rename(path, &aside)?;
    Ok(aside)
}

/// Writes the file atomically.
pub fn save(path: &Path, state: &StateFile) -> std::io::Result<()> {
    let json = serde_json::to_vec(state).map_err(std::io::Error::other)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
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
                seen: vec![(u64::MAX, 5)],
                partial: true,
            },
        );
        save(&path, &s).unwrap();
        assert_eq!(load(&path).unwrap(), s);
        std::fs::write(&path, b"{\"version\": 9, \"targets\": {}}").unwrap();
        assert!(matches!(load(&path), Err(StateError::Version(_, 9))));
        std::fs::write(&path, b"garbage").unwrap();
        assert!(matches!(load(&path), Err(StateError::Invalid(..))));
        let aside = set_aside(&path).unwrap();
        assert_eq!(std::fs::read(&aside).unwrap(), b"garbage");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
