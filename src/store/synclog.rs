//! The sync log: append-only and hash-chained, so a removed or altered entry is detectable.
//!
//! Each entry's hash is SHA-256 over the previous entry's hash and the entry's own fields. Messages
//! never carry personal data in clear: callers pass codes, statuses and times, not names.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{sha256_hex, ts};

/// The hash the first entry chains from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// One entry to append.
#[derive(Debug, Clone)]
pub struct Entry {
    pub level: Level,
    /// A dotted kind: `record.new`, `dossier.changed`, `portal.acked`, `portal.rejected`, …
    pub kind: &'static str,
    pub source: Option<String>,
    pub dossier: Option<String>,
    /// `daemon`, or the operator's name.
    pub actor: String,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

impl Entry {
    pub fn new(level: Level, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            level,
            kind,
            source: None,
            dossier: None,
            actor: "daemon".into(),
            message: message.into(),
            details: None,
        }
    }

    pub fn source(mut self, s: &str) -> Self {
        self.source = Some(s.to_string());
        self
    }

    pub fn dossier(mut self, code: &str) -> Self {
        self.dossier = Some(code.to_string());
        self
    }

    pub fn details(mut self, d: serde_json::Value) -> Self {
        self.details = Some(d);
        self
    }
}

/// The hash of an entry: over the previous hash and the entry's fields in column order
/// (at, level, kind, source, dossier, actor, message, details), JSON-encoded so that no field's
/// content can be mistaken for a separator.
fn entry_hash(prev: &str, fields: [Option<&str>; 8]) -> String {
    let all = serde_json::json!([prev, fields]);
    sha256_hex(all.to_string().as_bytes())
}

/// Append one entry (inside the caller's transaction, so the log and the change it records commit
/// together).
pub fn append(conn: &Connection, at: Timestamp, e: &Entry) -> rusqlite::Result<i64> {
    Chain::default().append(conn, at, e)
}

/// Appends within one transaction, remembering the last hash instead of reading it back each time.
/// Scoped to a transaction on purpose: after a rollback the remembered hash would be wrong.
#[derive(Debug, Default)]
pub struct Chain {
    last: Option<String>,
}

impl Chain {
    pub fn append(&mut self, conn: &Connection, at: Timestamp, e: &Entry) -> rusqlite::Result<i64> {
        let prev = match self.last.take() {
            Some(h) => h,
            None => conn
                .prepare_cached("SELECT hash FROM sync_log ORDER BY seq DESC LIMIT 1")?
                .query_row([], |r| r.get(0))
                .optional()?
                .unwrap_or_else(|| GENESIS.to_string()),
        };
        let (seq, hash) = insert(conn, at, e, &prev)?;
        self.last = Some(hash);
        Ok(seq)
    }
}

/// Insert an entry chained to `prev`; returns its sequence number and hash.
fn insert(conn: &Connection, at: Timestamp, e: &Entry, prev: &str) -> rusqlite::Result<(i64, String)> {
    let at = ts(at);
    let details = e.details.as_ref().map(|d| d.to_string());
    let hash = entry_hash(
        prev,
        [
            Some(&at),
            Some(e.level.as_str()),
            Some(e.kind),
            e.source.as_deref(),
            e.dossier.as_deref(),
            Some(&e.actor),
            Some(&e.message),
            details.as_deref(),
        ],
    );
    conn.prepare_cached(
        "INSERT INTO sync_log (at, level, kind, source, dossier, actor, message, details, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        at,
        e.level.as_str(),
        e.kind,
        e.source,
        e.dossier,
        e.actor,
        e.message,
        details,
        prev,
        hash
    ])?;
    Ok((conn.last_insert_rowid(), hash))
}

/// A stored entry.
#[derive(Debug, Clone, Serialize)]
pub struct LogRow {
    pub seq: i64,
    pub at: String,
    pub level: String,
    pub kind: String,
    pub source: Option<String>,
    pub dossier: Option<String>,
    pub actor: String,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

/// Filters for reading the log.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub dossier: Option<String>,
    pub source: Option<String>,
    pub kind: Option<String>,
    pub level: Option<String>,
    pub after_seq: Option<i64>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

/// The newest `limit` entries matching `f`, oldest first.
pub fn query(conn: &Connection, f: &Filter, limit: usize) -> rusqlite::Result<Vec<LogRow>> {
    let mut rows: Vec<LogRow> = conn
        .prepare(
            "SELECT seq, at, level, kind, source, dossier, actor, message, details FROM sync_log
             WHERE (?1 IS NULL OR dossier = ?1) AND (?2 IS NULL OR source = ?2)
               AND (?3 IS NULL OR kind = ?3 OR kind LIKE ?3 || '.%') AND (?4 IS NULL OR level = ?4)
               AND (?5 IS NULL OR seq > ?5) AND (?7 IS NULL OR at >= ?7) AND (?8 IS NULL OR at < ?8)
             ORDER BY seq DESC LIMIT ?6",
        )?
        .query_map(
            params![f.dossier, f.source, f.kind, f.level, f.after_seq, limit as i64, f.since.map(ts), f.until.map(ts)],
            |r| {
                let details: Option<String> = r.get(8)?;
                Ok(LogRow {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    level: r.get(2)?,
                    kind: r.get(3)?,
                    source: r.get(4)?,
                    dossier: r.get(5)?,
                    actor: r.get(6)?,
                    message: r.get(7)?,
                    details: details.and_then(|d| serde_json::from_str(&d).ok()),
                })
            },
        )?
        .collect::<Result<_, _>>()?;
    rows.reverse();
    Ok(rows)
}

/// The last pruning's anchor, for `log --verify`.
#[derive(Debug, Clone, Serialize)]
pub struct AnchorInfo {
    pub seq: i64,
    pub at: String,
    pub pruned: i64,
}

pub fn anchor_info(conn: &Connection) -> rusqlite::Result<Option<AnchorInfo>> {
    conn.prepare_cached("SELECT seq, at, pruned FROM sync_log_anchor WHERE id = 1")?
        .query_row([], |r| Ok(AnchorInfo { seq: r.get(0)?, at: r.get(1)?, pruned: r.get(2)? }))
        .optional()
}

/// Where the chain starts: the last pruned entry's hash (see [`prune`]), or the genesis hash.
fn anchor(conn: &Connection) -> rusqlite::Result<Option<(i64, String)>> {
    conn.prepare_cached("SELECT seq, hash FROM sync_log_anchor WHERE id = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// Walk the whole chain from its anchor. `Ok(n)` with the number of entries, or the first broken
/// link.
pub fn verify(conn: &Connection) -> rusqlite::Result<Result<u64, String>> {
    let mut stmt = conn.prepare_cached("SELECT seq, at, level, kind, source, dossier, actor, message, details, prev_hash, hash FROM sync_log ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut prev = anchor(conn)?.map_or_else(|| GENESIS.to_string(), |(_, h)| h);
    let mut n = 0u64;
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let stored_prev: String = r.get(9)?;
        let stored_hash: String = r.get(10)?;
        if stored_prev != prev {
            return Ok(Err(format!("entry {seq}: chain broken (an entry before it was removed or altered)")));
        }
        let cols: Vec<Option<String>> = (1..=8).map(|i| r.get(i)).collect::<Result<_, _>>()?;
        let fields: [Option<&str>; 8] = std::array::from_fn(|i| cols[i].as_deref());
        let h = entry_hash(&prev, fields);
        if h != stored_hash {
            return Ok(Err(format!("entry {seq}: content does not match its hash (altered)")));
        }
        prev = stored_hash;
        n += 1;
    }
    Ok(Ok(n))
}

/// What one pruning did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub entries: u64,
    /// The new anchor: the last entry pruned.
    pub anchor_seq: i64,
}

/// Delete the entries older than `before`, oldest first, at most `limit` of them, and move the
/// anchor to the last one deleted, so that [`verify`] still checks every entry left: the first of
/// them must name the anchor's hash. The newest entry is never pruned (the chain's head). The
/// pruning itself is logged. One transaction.
pub fn prune(
    conn: &mut Connection,
    before: Timestamp,
    limit: usize,
    now: Timestamp,
) -> rusqlite::Result<Option<Pruned>> {
    let tx = conn.transaction()?;
    let before = super::ts(before);
    // The oldest entries, in chain order, while they are older than `before`: a prefix of the
    // chain (an entry's time is the clock's when it was written, which may run a little out of
    // order between tasks; the prefix stops at the first entry that is not old enough).
    let head: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM sync_log", [], |r| r.get(0))?;
    let mut last: Option<(i64, String, String)> = None;
    {
        let mut stmt = tx.prepare_cached("SELECT seq, hash, at FROM sync_log ORDER BY seq LIMIT ?1")?;
        let mut rows = stmt.query([limit as i64])?;
        while let Some(r) = rows.next()? {
            let (seq, hash, at): (i64, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
            if at >= before || seq >= head {
                break;
            }
            last = Some((seq, hash, at));
        }
    }
    let Some((seq, hash, at)) = last else { return Ok(None) };
    let entries = tx.prepare_cached("DELETE FROM sync_log WHERE seq <= ?1")?.execute([seq])? as u64;
    tx.prepare_cached(
        "INSERT INTO sync_log_anchor (id, seq, hash, at, pruned, pruned_at) VALUES (1, ?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, at = excluded.at,
             pruned = pruned + excluded.pruned, pruned_at = excluded.pruned_at",
    )?
    .execute(params![seq, hash, at, entries as i64, super::ts(now)])?;
    Chain::default().append(
        &tx,
        now,
        &Entry::new(
            Level::Info,
            "log.pruned",
            format!("{entries} sync-log entries older than the retention pruned, up to entry {seq}; the chain now starts there"),
        )
        .details(serde_json::json!({"entries": entries, "anchor_seq": seq, "anchor_hash": hash, "anchor_at": at})),
    )?;
    tx.commit()?;
    Ok(Some(Pruned { entries, anchor_seq: seq }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_verifies_and_detects_tampering_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open_writer(&dir.path().join("t.db")).unwrap();
        let t: Timestamp = "2026-03-09T01:00:00Z".parse().unwrap();
        for i in 0..5 {
            append(&conn, t, &Entry::new(Level::Info, "record.new", format!("entry {i}")).dossier("C-1")).unwrap();
        }
        assert_eq!(verify(&conn).unwrap(), Ok(5));
        assert_eq!(query(&conn, &Filter { dossier: Some("C-1".into()), ..Default::default() }, 2).unwrap().len(), 2);

        conn.execute("UPDATE sync_log SET message = 'forged' WHERE seq = 3", []).unwrap();
        assert!(verify(&conn).unwrap().unwrap_err().contains("entry 3"));
        conn.execute("UPDATE sync_log SET message = 'entry 2' WHERE seq = 3", []).unwrap();
        assert_eq!(verify(&conn).unwrap(), Ok(5));
        conn.execute("DELETE FROM sync_log WHERE seq = 2", []).unwrap();
        assert!(verify(&conn).unwrap().unwrap_err().contains("entry 3"));
    }

    #[test]
    fn pruning_keeps_the_rest_of_the_chain_verifiable_from_its_anchor() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = super::super::open_writer(&dir.path().join("t.db")).unwrap();
        let day =
            |d: i8| -> Timestamp { jiff::civil::date(2026, 3, d).at(1, 0, 0, 0).in_tz("UTC").unwrap().timestamp() };
        for d in 1..=10 {
            append(&conn, day(d), &Entry::new(Level::Info, "record.new", format!("day {d}"))).unwrap();
        }
        let now = day(20);
        // At most 2 at a time, oldest first.
        assert_eq!(prune(&mut conn, day(6), 2, now).unwrap(), Some(Pruned { entries: 2, anchor_seq: 2 }));
        assert_eq!(verify(&conn).unwrap(), Ok(9), "8 left and the pruning's own entry");
        assert_eq!(prune(&mut conn, day(6), 100, now).unwrap(), Some(Pruned { entries: 3, anchor_seq: 5 }));
        assert_eq!(verify(&conn).unwrap(), Ok(7));
        assert_eq!(prune(&mut conn, day(6), 100, now).unwrap(), None, "nothing older left");
        let pruned: i64 = conn.query_row("SELECT pruned FROM sync_log_anchor", [], |r| r.get(0)).unwrap();
        assert_eq!(pruned, 5);
        // Removing the first entry left is still detected.
        conn.execute("DELETE FROM sync_log WHERE seq = 6", []).unwrap();
        assert!(verify(&conn).unwrap().unwrap_err().contains("entry 7"));
        // Everything is older than the retention: the head stays, the chain has one link at least.
        let mut conn2 = super::super::open_writer(&dir.path().join("u.db")).unwrap();
        for d in 1..=3 {
            append(&conn2, day(d), &Entry::new(Level::Info, "record.new", format!("day {d}"))).unwrap();
        }
        assert_eq!(prune(&mut conn2, day(30), 100, now).unwrap().map(|p| p.entries), Some(2));
        assert_eq!(verify(&conn2).unwrap(), Ok(2));
    }
}
