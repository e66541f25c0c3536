//! The store: one SQLite file in WAL mode, one writer.
//!
//! - `open_writer` / `open_reader`: pragmas, then migrations (writer) or a version check (reader).
//! - [`Lease`]: the writer lease, an OS file lock beside the database: taken at start, released at
//!   exit, and released by the kernel after a crash, so a restart after `kill -9` never waits.
//! - [`Writer`]: the one writer connection, owned by one thread; async tasks send it closures, so
//!   every transaction runs to completion on that thread even while the daemon shuts down.
//! - `ingest`, `outbox`, `synclog`, `report`, `resync`, `deadlines`, `verify`: what is stored and how it is
//!   read.

pub mod attest;
mod checkpoint;
pub mod deadlines;
pub mod ingest;
pub mod outbox;
pub mod report;
pub mod resync;
pub mod synclog;
pub mod verify;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags};

/// Append-only list of migrations; the index + 1 is the schema version (`user_version`).
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_source_health.sql"),
    include_str!("migrations/0003_record_codes_index.sql"),
    include_str!("migrations/0004_drop_record_codes_record.sql"),
    include_str!("migrations/0005_outbox_key.sql"),
    include_str!("migrations/0006_drop_source_records_code.sql"),
    include_str!("migrations/0007_link_splits.sql"),
    include_str!("migrations/0008_due_checks.sql"),
    include_str!("migrations/0009_attestations.sql"),
    include_str!("migrations/0010_sync_log_anchor.sql"),
    include_str!("migrations/0011_verify.sql"),
    include_str!("migrations/0012_portal_sent.sql"),
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

fn pragmas(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL in WAL mode is durable against application crashes (kill -9); a power loss may lose
    // the last transactions, which the next poll re-reads from the sources.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // 64 MiB of page cache: index updates of a large ingest stay in memory. A bound, not a need.
    conn.pragma_update(None, "cache_size", -65_536)?;
    Ok(())
}

fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

fn refuse_newer(path: &Path, v: i64) -> anyhow::Result<()> {
    if v > SCHEMA_VERSION {
        bail!(
            "database {} has schema version {v}, newer than this dvc-bridge understands ({SCHEMA_VERSION}): \
             it was written by a newer release. Run that release, or restore a backup made for this one",
            path.display()
        );
    }
    Ok(())
}

/// Open the database for writing and bring its schema up to date (all pending migrations in one
/// exclusive transaction).
pub fn open_writer(path: &Path) -> anyhow::Result<Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create data folder {}", dir.display()))?;
    }
    let mut conn = Connection::open(path).with_context(|| format!("cannot open database {}", path.display()))?;
    // Records, dossiers and outbox rows are 1–3 KiB each: in the default 4 KiB pages one row fills a
    // page and wastes half of it. The page size can only be chosen before the first table exists.
    if version(&conn)? == 0 {
        conn.pragma_update(None, "page_size", 16_384)?;
    }
    pragmas(&conn).with_context(|| format!("cannot configure database {}", path.display()))?;
    // Ingest runs a few dozen distinct statements per record: keep them all prepared.
    conn.set_prepared_statement_cache_capacity(128);
    // Most of the checkpointing runs on a thread of its own (see `checkpoint`).
    conn.pragma_update(None, "wal_autocheckpoint", checkpoint::WRITER_PAGES)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
    let v = version(&tx)?;
    refuse_newer(path, v)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(v as usize) {
        tx.execute_batch(sql).with_context(|| format!("migration {} failed on {}", i + 1, path.display()))?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(conn)
}

/// Open the database read-only (CLI while a daemon runs). Refuses a database from a newer release.
pub fn open_reader(path: &Path) -> anyhow::Result<Connection> {
    open_existing(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
}

/// Open the database to store a request beside a running daemon (`resync`, `split`): read-write
/// but without migrating, so only a database of exactly this release's schema is accepted.
pub fn open_requester(path: &Path) -> anyhow::Result<Connection> {
    let conn = open_existing(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    let v = version(&conn)?;
    if v != SCHEMA_VERSION {
        bail!(
            "database {} has schema version {v}, this dvc-bridge writes {SCHEMA_VERSION}: run the same release as the daemon",
            path.display()
        );
    }
    Ok(conn)
}

fn open_existing(path: &Path, flags: OpenFlags) -> anyhow::Result<Connection> {
    if !path.exists() {
        bail!("no database at {}: has the daemon run yet with this configuration? (store.data_dir)", path.display());
    }
    let conn =
        Connection::open_with_flags(path, flags).with_context(|| format!("cannot open database {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    refuse_newer(path, version(&conn)?)?;
    Ok(conn)
}

/// The writer lease: an exclusive lock on `dvc-bridge.lock` beside the database.
#[derive(Debug)]
pub struct Lease {
    _file: std::fs::File,
    pub path: PathBuf,
}

impl Lease {
    fn path_for(db: &Path) -> PathBuf {
        db.with_file_name("dvc-bridge.lock")
    }

    /// Take the lease if it is free.
    pub fn try_acquire(db: &Path) -> anyhow::Result<Option<Lease>> {
        let path = Self::path_for(db);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create data folder {}", dir.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open lease file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lease { _file: file, path })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
        }
    }

    /// Wait until the lease is free (another process holds it: a daemon, or a `--now` command).
    pub async fn acquire(db: &Path, mut waiting: impl FnMut()) -> anyhow::Result<Lease> {
        let mut told = false;
        loop {
            if let Some(l) = Self::try_acquire(db)? {
                return Ok(l);
            }
            if !told {
                waiting();
                told = true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The handle to the one writer connection. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: std::sync::mpsc::Sender<Job>,
}

impl Writer {
    /// Start the writer thread on an open connection. The thread ends when every handle is dropped,
    /// after finishing the jobs already sent.
    pub fn start(mut conn: Connection) -> (Writer, std::thread::JoinHandle<()>) {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        // The checkpointer is told of each job (at most one notice waits) and ends with the writer.
        let (commits, notices) = std::sync::mpsc::sync_channel::<()>(1);
        let db = conn.path().filter(|p| !p.is_empty()).map(PathBuf::from);
        let checkpointer = db.and_then(|db| {
            std::thread::Builder::new().name("store-checkpoint".into()).spawn(move || checkpoint::run(db, notices)).ok()
        });
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(&mut conn);
                    let _ = commits.try_send(());
                }
                drop(commits);
                if let Some(c) = checkpointer {
                    let _ = c.join();
                }
            })
            .unwrap_or_else(|e| panic!("cannot start the store writer thread: {e}"));
        (Writer { tx }, handle)
    }

    /// Run `f` on the writer connection and wait for its result.
    pub async fn call<R, F>(&self, f: F) -> anyhow::Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> anyhow::Result<R> + Send + 'static,
    {
        self.submit(f)?.wait().await
    }

    /// Append a sync-log entry in a transaction of its own.
    pub async fn log(&self, at: jiff::Timestamp, entry: synclog::Entry) -> anyhow::Result<()> {
        self.call(move |c| Ok(synclog::append(c, at, &entry)?)).await?;
        Ok(())
    }

    /// `log`, for callers that carry on when the store cannot take the entry (it says so loudly).
    pub async fn log_or_complain(&self, at: jiff::Timestamp, entry: synclog::Entry) {
        if let Err(e) = self.log(at, entry).await {
            tracing::error!(error = %format!("{e:#}"), "cannot write the sync log");
        }
    }

    /// Hand `f` to the writer now and wait for it later: jobs run in the order submitted, so a
    /// caller can prepare its next job while this one runs.
    pub fn submit<R, F>(&self, f: F) -> anyhow::Result<Pending<R>>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> anyhow::Result<R> + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        self.tx
            .send(Box::new(move |conn| {
                let _ = done.send(f(conn));
            }))
            .map_err(|_| anyhow::anyhow!("the store writer has stopped"))?;
        Ok(Pending(result))
    }
}

/// A job handed to the writer.
pub struct Pending<R>(tokio::sync::oneshot::Receiver<anyhow::Result<R>>);

impl<R> Pending<R> {
    pub async fn wait(self) -> anyhow::Result<R> {
        self.0.await.map_err(|_| anyhow::anyhow!("the store writer stopped during a job"))?
    }
}

/// Current time as stored: RFC 3339 UTC.
pub fn ts(t: jiff::Timestamp) -> String {
    t.to_string()
}

/// Parse a stored time.
pub fn parse_ts(s: &str) -> anyhow::Result<jiff::Timestamp> {
    s.parse().with_context(|| format!("bad time in the database: {s:?}"))
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let d = sha2::Sha256::digest(data);
    // By table: `format!` per byte cost more than the hash itself for a 1 KiB record.
    let mut s = String::with_capacity(64);
    for b in d.iter() {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_is_the_usual_lowercase_hex() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn migrations_apply_once_and_a_newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let conn = open_writer(&db).unwrap();
        assert_eq!(version(&conn).unwrap(), SCHEMA_VERSION);
        drop(conn);
        let conn = open_writer(&db).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        drop(conn);
        let e = open_writer(&db).unwrap_err().to_string();
        assert!(e.contains("newer"), "{e}");
        let e = open_reader(&db).unwrap_err().to_string();
        assert!(e.contains("newer"), "{e}");
    }

    #[test]
    fn queued_work_survives_the_outbox_migration() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let conn = Connection::open(&db).unwrap();
        for sql in &MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        conn.execute(
            "INSERT INTO outbox (dossier_id, code, kind, version, content_hash, idem_key, payload, enqueued_at, next_attempt_at)
             VALUES (1, 'H26.1', 'upsert', 2, 'abc', 'H26.1:upsert:2:abc', '{}', 't', 't')",
            [],
        )
        .unwrap();
        drop(conn);
        let conn = open_writer(&db).unwrap();
        let row: (String, i64, String) = conn
            .query_row("SELECT code, version, content_hash FROM outbox", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        assert_eq!(row, ("H26.1".to_string(), 2, "abc".to_string()));
        let plan: String = conn
            .query_row("EXPLAIN QUERY PLAN SELECT 1 FROM outbox WHERE code = 'x' AND content_hash = 'y'", [], |r| {
                r.get(3)
            })
            .unwrap();
        assert!(plan.contains("INDEX sqlite_autoindex_outbox_1 (code=?)"), "look-ups by code use the key: {plan}");
    }

    #[test]
    fn the_lease_is_exclusive_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let a = Lease::try_acquire(&db).unwrap().expect("free");
        assert!(Lease::try_acquire(&db).unwrap().is_none());
        drop(a);
        assert!(Lease::try_acquire(&db).unwrap().is_some());
    }
}
