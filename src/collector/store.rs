//! The state store: what each target has seen, kept across restarts in an
//! embedded database ([redb]: pure Rust, ACID transactions, crash-safe
//! with a checksummed copy-on-write B-tree, one writer at a time).
//!
//! - **Layout.** `targets`: `collector/target` -> the target's record
//!   without its events (JSON: an id, when it was saved, the last event
//!   time, the interned states and applications, the sweep). `events`:
//!   `(target id, event key)` -> the event's packed [`Mark`]. `meta`:
//!   the schema version and the next target id.
//! - **Writes.** One writer thread. A collection sends what it changed
//!   ([`Changes`]: the keys set or removed, or everything after a failed
//!   write) and waits until it is committed; what several collections send
//!   at once is committed in one transaction (a group commit, one fsync). A
//!   batch that fails is retried one write at a time, so one bad write fails
//!   alone.
//! - **Start-up.** A corrupt file is moved aside (`<path>.invalid`, then
//!   `.invalid.1`, ...: an older copy is never overwritten); a JSON state
//!   file of an earlier release is imported once and kept as
//!   `<path>.migrated`; a path that cannot be read or written (permissions, a
//!   directory, a missing parent directory) is a start-up error. Records of
//!   targets not saved within the lookback are dropped.
//!
//! Readers in other processes may open the file read-only while the
//! exporter runs ([`read_all`]).
//!
//! [redb]: https://docs.rs/redb

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use redb::{
    ConcurrencyMode, Database, DatabaseError, ReadableDatabase, ReadableTable, StorageError,
    TableDefinition,
};
use serde::{Deserialize, Serialize};

use crate::collector::seen::{Changes, Mark};
use crate::collector::state_file::{self, SeenRecord, TargetRecord};

/// Version of the store's layout; another version is refused.
pub const SCHEMA: u64 = 1;

const TARGETS: TableDefinition<&str, &[u8]> = TableDefinition::new("targets");
const EVENTS: TableDefinition<(u32, u64), u64> = TableDefinition::new("events");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The first bytes of every redb file.
const MAGIC: &[u8] = b"redb";

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The path cannot be used at all: a start-up error, nothing is reset.
    #[error("state_file {path}: {reason}")]
    Unusable {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Written by another version of the exporter.
    #[error(
        "state_file {path} has layout version {found}; this exporter reads version {SCHEMA}: use the release that wrote it, or move the file away"
    )]
    Version {
        /// The path.
        path: PathBuf,
        /// The version found.
        found: u64,
    },
    /// A read or write of the database failed.
    #[error("state store: {0}")]
    Db(String),
    /// The writer has stopped (shutdown).
    #[error("state store is closed")]
    Closed,
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(e.to_string())
}

/// What a target's record is stored as, besides its events.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    /// Key prefix of its events.
    id: u32,
    /// When it was last written (unix seconds).
    saved_at: i64,
    #[serde(flatten)]
    record: TargetRecord,
}

/// One target's write: its record (events left out) and what changed in its events.
#[derive(Debug)]
pub struct TargetWrite {
    /// `collector/target`.
    pub key: String,
    /// The record; its `seen` is ignored.
    pub record: TargetRecord,
    /// The events changed since the last write.
    pub changes: Changes,
    /// Now, unix seconds.
    pub saved_at: i64,
}

enum Job {
    Write(
        TargetWrite,
        tokio::sync::oneshot::Sender<Result<(), StoreError>>,
    ),
    Forget(i64, HashSet<String>),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// How the store was found at start-up.
#[derive(Debug, Clone, PartialEq)]
pub enum Opened {
    /// Nothing was there: a new store.
    New,
    /// An existing store.
    Existing,
    /// A JSON state file was imported; it is kept at `migrated`.
    Imported {
        /// Targets imported.
        targets: usize,
        /// Where the JSON file is now.
        migrated: PathBuf,
    },
    /// The file was not usable and was moved to `aside`; a new store was made.
    SetAside {
        /// Where it is now.
        aside: PathBuf,
        /// Why it was not usable.
        reason: String,
    },
}

/// The open store: reads from any thread, writes through its one writer.
pub struct Store {
    path: PathBuf,
    db: Arc<Database>,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Store {
    /// Stops the writer (after the writes sent so far) so the file is closed when this returns.
    fn drop(&mut self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = writer {
            let _ = w.join();
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn builder() -> redb::Builder {
    let mut b = Database::builder();
    b.set_concurrency_mode(ConcurrencyMode::SingleWriter)
        // A file altered behind redb's back fails to open instead of being trusted.
        .set_check_integrity_on_open(true);
    b
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Moves `path` to `<path><suffix>`, or `.1`, `.2`, ... after it: never over an existing file.
fn move_aside(path: &Path, suffix: &str) -> std::io::Result<PathBuf> {
    for n in 0u32.. {
        let to = if n == 0 {
            with_suffix(path, suffix)
        } else {
            with_suffix(path, &format!("{suffix}.{n}"))
        };
        // A hard link fails if `to` exists: no check-then-rename race.
        match std::fs::hard_link(path, &to) {
            Ok(()) => {
                std::fs::remove_file(path)?;
                sync_parent(path);
                return Ok(to);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(_) if !to.exists() => {
                // No hard links on this file system.
                std::fs::rename(path, &to)?;
                sync_parent(path);
                return Ok(to);
            }
            Err(_) => continue,
        }
    }
    Err(std::io::Error::other("no free name to move the file aside"))
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Makes a rename durable.
fn sync_parent(path: &Path) {
    if let Ok(d) = std::fs::File::open(parent(path)) {
        let _ = d.sync_all();
    }
}

/// What is at the path.
enum Found {
    Nothing,
    Redb,
    Json,
    Garbage(String),
}

fn unusable(path: &Path, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Unusable {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn look(path: &Path) -> Result<Found, StoreError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = parent(path);
            return match std::fs::metadata(dir) {
                Ok(d) if d.is_dir() => Ok(Found::Nothing),
                Ok(_) => Err(unusable(
                    path,
                    format!("{} is not a directory", dir.display()),
                )),
                Err(e) => Err(unusable(
                    path,
                    format!("its directory {}: {e}", dir.display()),
                )),
            };
        }
        Err(e) => return Err(unusable(path, e)),
    };
    if meta.is_dir() {
        return Err(unusable(path, "is a directory, not a file"));
    }
    let mut head = Vec::with_capacity(64);
    std::fs::File::open(path)
        .and_then(|f| f.take(64).read_to_end(&mut head))
        .map_err(|e| unusable(path, e))?;
    let text = head.iter().find(|b| !b.is_ascii_whitespace());
    Ok(if head.is_empty() {
        // What a crash of an earlier release's JSON write could leave: it holds nothing.
        Found::Nothing
    } else if head.starts_with(MAGIC) {
        Found::Redb
    } else if text == Some(&b'{') {
        Found::Json
    } else {
        Found::Garbage("neither a state store nor a JSON state file".into())
    })
}

/// Opens redb at `path`: `Ok(Err(reason))` for a corrupt file, `Err` for a
/// path that cannot be opened at all.
fn open_db(path: &Path, create: bool) -> Result<Result<Database, String>, StoreError> {
    let opened = std::panic::catch_unwind(AssertUnwindSafe(|| {
        if create {
            builder().create(path)
        } else {
            builder().open(path)
        }
    }));
    let result = match opened {
        Ok(r) => r,
        Err(_) => {
            return Ok(Err(
                "the database cannot be read (it made redb panic)".into()
            ));
        }
    };
    match result {
        Ok(db) => Ok(Ok(db)),
        // A file cut short or garbled is corrupt; any other I/O error is the path's.
        Err(DatabaseError::Storage(StorageError::Io(e)))
            if !matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
            ) =>
        {
            Err(unusable(path, e))
        }
        Err(e @ (DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch)) => {
            Err(unusable(
                path,
                format!("{e}: another process has it open (is a second exporter running?)"),
            ))
        }
        Err(e) => Ok(Err(e.to_string())),
    }
}

/// Creates the tables and checks the layout version.
fn prepare(path: &Path, db: &Database) -> Result<Result<(), String>, StoreError> {
    let check = || -> Result<Option<u64>, redb::Error> {
        let txn = db.begin_write()?;
        let found = {
            txn.open_table(TARGETS)?;
            txn.open_table(EVENTS)?;
            let mut meta = txn.open_table(META)?;
            let found = meta.get("schema")?.map(|v| v.value());
            if found.is_none() {
                meta.insert("schema", SCHEMA)?;
            }
            found
        };
        txn.commit()?;
        Ok(found)
    };
    match check() {
        Ok(Some(v)) if v != SCHEMA => Err(StoreError::Version {
            path: path.to_path_buf(),
            found: v,
        }),
        Ok(_) => Ok(Ok(())),
        Err(redb::Error::Io(e)) => Err(unusable(path, e)),
        Err(e) => Ok(Err(e.to_string())),
    }
}

impl Store {
    /// Opens (or creates, imports, repairs) the store at `path`; records of
    /// targets last saved before `stale_before` (unix seconds) are dropped.
    pub fn open(path: &Path, stale_before: i64) -> Result<(Store, Opened), StoreError> {
        let importing = with_suffix(path, ".importing");
        if importing.exists() {
            if path.exists() {
                // An import stopped before it was done: do it again.
                std::fs::remove_file(&importing).map_err(|e| unusable(&importing, e))?;
            } else {
                // An import stopped after the JSON file was kept aside: finish it.
                std::fs::rename(&importing, path).map_err(|e| unusable(path, e))?;
            }
        }
        let mut opened = Opened::Existing;
        let mut imported = None;
        match look(path)? {
            Found::Nothing => opened = Opened::New,
            Found::Redb => {}
            Found::Json => match state_file::load(path) {
                Ok(file) => imported = Some(file),
                Err(e) => opened = set_aside(path, e.to_string())?,
            },
            Found::Garbage(reason) => opened = set_aside(path, reason)?,
        }
        if let Some(file) = imported {
            let n = file.targets.len();
            Self::import(&importing, file)?;
            let migrated = move_aside(path, ".migrated").map_err(|e| unusable(path, e))?;
            std::fs::rename(&importing, path).map_err(|e| unusable(path, e))?;
            sync_parent(path);
            opened = Opened::Imported {
                targets: n,
                migrated,
            };
        }
        let db = match open_db(path, true)? {
            Ok(db) => match prepare(path, &db)? {
                Ok(()) => db,
                Err(reason) => {
                    drop(db);
                    opened = set_aside(path, reason)?;
                    Self::fresh(path)?
                }
            },
            Err(reason) => {
                opened = set_aside(path, reason)?;
                Self::fresh(path)?
            }
        };
        let store = Store::start(path, db);
        store.forget_sync(stale_before)?;
        Ok((store, opened))
    }

    fn fresh(path: &Path) -> Result<Database, StoreError> {
        let db = open_db(path, true)?.map_err(|r| unusable(path, r))?;
        prepare(path, &db)?.map_err(|r| unusable(path, r))?;
        Ok(db)
    }

    fn import(at: &Path, file: state_file::StateFile) -> Result<(), StoreError> {
        let _ = std::fs::remove_file(at);
        let db = Self::fresh(at)?;
        let now = crate::collector::settings::unix_now();
        let txn = db.begin_write().map_err(db_err)?;
        {
            let mut t = Tables::open(&txn)?;
            for (key, mut record) in file.targets {
                let seen = std::mem::take(&mut record.seen);
                let changes = Changes::All(seen.into_iter().map(|e| (e.key, e.mark)).collect());
                t.apply(&TargetWrite {
                    key,
                    record,
                    changes,
                    saved_at: now,
                })?;
            }
        }
        txn.commit().map_err(db_err)?;
        drop(db);
        if let Ok(f) = std::fs::File::open(at) {
            let _ = f.sync_all();
        }
        Ok(())
    }

    fn start(path: &Path, db: Database) -> Store {
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel();
        let writer = {
            let db = db.clone();
            std::thread::Builder::new()
                .name("state-store".into())
                .spawn(move || write_loop(&db, &rx))
                .ok()
        };
        Store {
            path: path.to_path_buf(),
            db,
            jobs: Mutex::new(writer.is_some().then_some(tx)),
            writer: Mutex::new(writer),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The record of target `key` with its events, if it has one.
    pub fn load(&self, key: &str) -> Result<Option<TargetRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        read_target(&txn, key)
    }

    /// Commits `write`; returns when it is durable (or failed).
    pub async fn write(&self, write: TargetWrite) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Job::Write(write, tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Drops (in the background) the records of targets last saved before
    /// `before`, but those in `keep` (targets collected now).
    pub fn forget_before(&self, before: i64, keep: HashSet<String>) {
        let _ = self.send(Job::Forget(before, keep));
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.as_ref()
            .ok_or(StoreError::Closed)?
            .send(job)
            .map_err(|_| StoreError::Closed)
    }

    fn forget_sync(&self, before: i64) -> Result<(), StoreError> {
        let n = forget_stale(&self.db, before, &HashSet::new())?;
        if n > 0 {
            tracing::info!(
                targets = n,
                "state store: dropped targets not collected within the lookback"
            );
        }
        Ok(())
    }

    /// Waits until every write sent so far is committed, then stops the
    /// writer (later writes fail with [`StoreError::Closed`]).
    pub async fn close(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.send(Job::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = writer {
            let _ = tokio::task::spawn_blocking(move || w.join()).await;
        }
    }
}

fn set_aside(path: &Path, reason: String) -> Result<Opened, StoreError> {
    let aside = move_aside(path, ".invalid").map_err(|e| unusable(path, e))?;
    tracing::error!(
        path = %path.display(),
        set_aside = %aside.display(),
        reason = %reason,
        "state_file is corrupt: moved aside, starting a new store (every target takes a baseline)"
    );
    Ok(Opened::SetAside { aside, reason })
}

fn read_target(txn: &redb::ReadTransaction, key: &str) -> Result<Option<TargetRecord>, StoreError> {
    let targets = txn.open_table(TARGETS).map_err(db_err)?;
    let Some(bytes) = targets.get(key).map_err(db_err)? else {
        return Ok(None);
    };
    let stored: Stored = serde_json::from_slice(bytes.value())
        .map_err(|e| StoreError::Db(format!("record of {key} cannot be read: {e}")))?;
    let events = txn.open_table(EVENTS).map_err(db_err)?;
    let mut record = stored.record;
    for entry in events
        .range((stored.id, 0)..=(stored.id, u64::MAX))
        .map_err(db_err)?
    {
        let (k, v) = entry.map_err(db_err)?;
        record.seen.push(SeenRecord {
            key: k.value().1,
            mark: Mark::unpack(v.value()),
        });
    }
    Ok(Some(record))
}

/// Every target record of the store at `path`, read in a read-only handle
/// (allowed while the exporter has it open).
pub fn read_all(path: &Path) -> Result<BTreeMap<String, TargetRecord>, StoreError> {
    let db = builder().open_read_only(path).map_err(db_err)?;
    let txn = db.begin_read().map_err(db_err)?;
    let keys: Vec<String> = {
        let targets = txn.open_table(TARGETS).map_err(db_err)?;
        let mut keys = Vec::new();
        for entry in targets.iter().map_err(db_err)? {
            keys.push(entry.map_err(db_err)?.0.value().to_string());
        }
        keys
    };
    let mut out = BTreeMap::new();
    for key in keys {
        if let Some(r) = read_target(&txn, &key)? {
            out.insert(key, r);
        }
    }
    Ok(out)
}

/// The tables of one write transaction.
struct Tables<'t> {
    targets: redb::Table<'t, &'static str, &'static [u8]>,
    events: redb::Table<'t, (u32, u64), u64>,
    meta: redb::Table<'t, &'static str, u64>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t redb::WriteTransaction) -> Result<Tables<'t>, StoreError> {
        Ok(Tables {
            targets: txn.open_table(TARGETS).map_err(db_err)?,
            events: txn.open_table(EVENTS).map_err(db_err)?,
            meta: txn.open_table(META).map_err(db_err)?,
        })
    }

    fn id_of(&mut self, key: &str) -> Result<Option<u32>, StoreError> {
        let Some(bytes) = self.targets.get(key).map_err(db_err)? else {
            return Ok(None);
        };
        // An unreadable record gets a new id: its old events are dropped below.
        Ok(serde_json::from_slice::<Stored>(bytes.value())
            .ok()
            .map(|s| s.id))
    }

    fn apply(&mut self, w: &TargetWrite) -> Result<(), StoreError> {
        let id = match self.id_of(&w.key)? {
            Some(id) => id,
            None => {
                let next = self
                    .meta
                    .get("next_id")
                    .map_err(db_err)?
                    .map_or(1, |v| v.value());
                let id = u32::try_from(next).map_err(|_| db_err("target ids exhausted"))?;
                self.meta.insert("next_id", next + 1).map_err(db_err)?;
                // Nothing can be stored under a new id yet; clear it anyway.
                self.clear_events(id)?;
                id
            }
        };
        match &w.changes {
            Changes::All(entries) => {
                self.clear_events(id)?;
                for (k, m) in entries {
                    self.events.insert((id, *k), m.pack()).map_err(db_err)?;
                }
            }
            Changes::Keys(keys) => {
                for (k, m) in keys {
                    match m {
                        Some(m) => self.events.insert((id, *k), m.pack()).map(drop),
                        None => self.events.remove((id, *k)).map(drop),
                    }
                    .map_err(db_err)?;
                }
            }
        }
        let mut record = w.record.clone();
        record.seen = Vec::new();
        let json = serde_json::to_vec(&Stored {
            id,
            saved_at: w.saved_at,
            record,
        })
        .map_err(db_err)?;
        self.targets
            .insert(w.key.as_str(), json.as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    fn clear_events(&mut self, id: u32) -> Result<(), StoreError> {
        self.events
            .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)
            .map_err(db_err)
    }

    fn forget(&mut self, before: i64, keep: &HashSet<String>) -> Result<usize, StoreError> {
        let mut stale = Vec::new();
        for entry in self.targets.iter().map_err(db_err)? {
            let (k, v) = entry.map_err(db_err)?;
            if keep.contains(k.value()) {
                continue;
            }
            match serde_json::from_slice::<Stored>(v.value()) {
                Ok(s) if s.saved_at >= before => {}
                parsed => stale.push((k.value().to_string(), parsed.ok().map(|s| s.id))),
            }
        }
        for (key, id) in &stale {
            self.targets.remove(key.as_str()).map_err(db_err)?;
            if let Some(id) = id {
                self.clear_events(*id)?;
            }
        }
        Ok(stale.len())
    }
}

/// Commits `batch` in one transaction.
fn commit(db: &Database, batch: &[&TargetWrite]) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(db_err)?;
    {
        let mut t = Tables::open(&txn)?;
        for w in batch {
            t.apply(w)?;
        }
    }
    txn.commit().map_err(db_err)
}

/// The writer: takes every job waiting, commits the writes among them in
/// one transaction, answers each.
fn write_loop(db: &Database, jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut writes = Vec::new();
        let mut flushes = Vec::new();
        let mut forget = None;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Write(w, done) => writes.push((w, done)),
                Job::Forget(t, keep) => forget = Some((t, keep)),
                Job::Flush(done) => flushes.push(done),
            }
            if writes.len() < 1024 {
                next = jobs.try_recv().ok();
            }
        }
        if !writes.is_empty() {
            let batch: Vec<&TargetWrite> = writes.iter().map(|(w, _)| w).collect();
            match commit(db, &batch) {
                Ok(()) => {
                    for (_, done) in writes {
                        let _ = done.send(Ok(()));
                    }
                }
                Err(e) if writes.len() == 1 => {
                    for (_, done) in writes {
                        let _ = done.send(Err(StoreError::Db(e.to_string())));
                    }
                }
                // One at a time: a write that cannot be made fails alone.
                Err(_) => {
                    for (w, done) in writes {
                        let _ = done.send(commit(db, &[&w]));
                    }
                }
            }
        }
        if let Some((before, keep)) = forget
            && let Err(e) = forget_stale(db, before, &keep)
        {
            tracing::warn!(error = %e, "state store: cannot drop targets no longer collected");
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Drops, in one transaction, the targets not in `keep` last saved before
/// `before` (or unreadable); returns how many.
fn forget_stale(db: &Database, before: i64, keep: &HashSet<String>) -> Result<usize, StoreError> {
    let txn = db.begin_write().map_err(db_err)?;
    let n = Tables::open(&txn)?.forget(before, keep)?;
    txn.commit().map_err(db_err)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::sweep::SweepState;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wa-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn record(last: i64) -> TargetRecord {
        TargetRecord {
            last_event_timestamp: Some(last),
            webhook_states: vec!["PENDING".into()],
            sweep: SweepState {
                cursor: Some("c".into()),
                pages: 2,
                ..SweepState::default()
            },
            ..TargetRecord::default()
        }
    }

    fn write(key: &str, last: i64, changes: Changes) -> TargetWrite {
        TargetWrite {
            key: key.into(),
            record: record(last),
            changes,
            saved_at: 1_000,
        }
    }

    #[tokio::test]
    async fn writes_changes_and_reads_them_back() {
        let d = dir("rw");
        let path = d.join("state.db");
        let (store, opened) = Store::open(&path, 0).unwrap();
        assert_eq!(opened, Opened::New);
        let all = Changes::All(vec![(1, Mark::at(10)), (2, Mark::at(20))]);
        store
            .write(write("message_history/1", 20, all))
            .await
            .unwrap();
        store
            .write(write(
                "activities/9",
                5,
                Changes::All(vec![(1, Mark::at(5))]),
            ))
            .await
            .unwrap();
        let keys = Changes::Keys(vec![(1, None), (3, Some(Mark::at(30)))]);
        store
            .write(write("message_history/1", 30, keys))
            .await
            .unwrap();
        let r = store.load("message_history/1").unwrap().unwrap();
        let seen: Vec<(u64, i64)> = r.seen.iter().map(|e| (e.key, e.mark.time)).collect();
        assert_eq!(seen, vec![(2, 20), (3, 30)]);
        assert_eq!(r.last_event_timestamp, Some(30));
        assert_eq!(r.sweep.cursor.as_deref(), Some("c"));
        // Another target's event with the same key is its own.
        assert_eq!(store.load("activities/9").unwrap().unwrap().seen.len(), 1);
        assert!(store.load("activities/8").unwrap().is_none());
        // A reader in another handle sees what was committed.
        assert_eq!(read_all(&path).unwrap().len(), 2);
        store.close().await;
        assert!(matches!(
            store.write(write("a/1", 1, Changes::Keys(vec![]))).await,
            Err(StoreError::Closed)
        ));
        drop(store);
        // Reopened: everything is there; stale targets are dropped.
        let (store, opened) = Store::open(&path, 0).unwrap();
        assert_eq!(opened, Opened::Existing);
        assert_eq!(
            store.load("message_history/1").unwrap().unwrap().seen.len(),
            2
        );
        drop(store);
        let (store, _) = Store::open(&path, 1_001).unwrap();
        assert!(store.load("message_history/1").unwrap().is_none());
        drop(store);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn imports_a_json_state_file_once() {
        let d = dir("import");
        let path = d.join("state.json");
        std::fs::write(
            &path,
            br#"{"version":1,"targets":{"message_history/1":{"last_event_timestamp":5,"seen":[[7,5],[8,6]],"partial":false}}}"#,
        )
        .unwrap();
        let (store, opened) = Store::open(&path, 0).unwrap();
        let migrated = d.join("state.json.migrated");
        assert_eq!(
            opened,
            Opened::Imported {
                targets: 1,
                migrated: migrated.clone()
            }
        );
        assert!(
            std::fs::read_to_string(&migrated)
                .unwrap()
                .contains("\"seen\"")
        );
        let r = store.load("message_history/1").unwrap().unwrap();
        assert_eq!(r.seen.len(), 2);
        assert_eq!(r.last_event_timestamp, Some(5));
        drop(store);
        let (_store, opened) = Store::open(&path, 0).unwrap();
        assert_eq!(opened, Opened::Existing, "imported once");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn corrupt_files_go_aside_without_overwriting_and_unreadable_paths_are_errors() {
        let d = dir("aside");
        let path = d.join("state.db");
        for (n, junk) in [
            &b"garbage"[..],
            b"{not json",
            b"redb\x1a\x0a\xa9\x0d\x0a broken",
        ]
        .into_iter()
        .enumerate()
        {
            std::fs::write(&path, junk).unwrap();
            let (store, opened) = Store::open(&path, 0).unwrap();
            let want = match n {
                0 => d.join("state.db.invalid"),
                n => d.join(format!("state.db.invalid.{n}")),
            };
            assert!(
                matches!(&opened, Opened::SetAside { aside, .. } if *aside == want),
                "{opened:?}"
            );
            assert_eq!(
                std::fs::read(&want).unwrap(),
                junk,
                "the older copy is kept"
            );
            drop(store);
            std::fs::remove_file(&path).unwrap();
        }
        // A directory, a missing parent: errors naming the path, nothing moved.
        std::fs::create_dir(&path).unwrap();
        let e = Store::open(&path, 0).unwrap_err().to_string();
        assert!(e.contains("state.db") && e.contains("directory"), "{e}");
        assert!(path.is_dir());
        let e = Store::open(&d.join("no/such/state.db"), 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no/such"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
