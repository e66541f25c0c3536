//! The outbox: what the portal must learn, kept until the portal acknowledges it.
//!
//! One queued row per code at most: a newer state supersedes an older one still waiting, so the
//! portal never receives an older state after a newer one. Rows are picked earliest deadline first.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::synclog::{self, Entry, Level};
use super::{sha256_hex, ts};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Create or update the dossier under its live code.
    Upsert,
    /// Close a code found to be a duplicate of the case's live code.
    Close,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Upsert => "upsert",
            Kind::Close => "close",
        }
    }
    fn parse(s: &str) -> Kind {
        if s == "close" { Kind::Close } else { Kind::Upsert }
    }
}

pub struct NewRow<'a> {
    pub dossier_id: i64,
    pub code: &'a str,
    pub kind: Kind,
    pub version: i64,
    pub content_hash: &'a str,
    /// The payload as sent (serialised once, by the caller that hashed it).
    pub payload: &'a str,
    pub deadline: Option<Timestamp>,
    /// The code belongs to a case created in this transaction: nothing of it can be acknowledged or
    /// queued yet, so the checks are skipped.
    pub fresh: bool,
    /// Queue even if the portal acknowledged this very content (an operator's re-sync).
    pub force: bool,
}

/// A row picked for sending.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: i64,
    pub dossier_id: i64,
    pub code: String,
    pub kind: Kind,
    pub version: i64,
    pub content_hash: String,
    pub payload: serde_json::Value,
    pub attempts: i64,
    /// Whether the portal already acknowledged this code once (then the call is an update).
    pub known_to_portal: bool,
}

/// Whether the portal has, or is about to get, exactly this content for the code.
pub fn is_settled(conn: &Connection, code: &str, hash: &str) -> anyhow::Result<bool> {
    let acked: Option<String> = conn
        .prepare_cached("SELECT content_hash FROM portal_state WHERE code = ?1")?
        .query_row([code], |r| r.get(0))
        .optional()?;
    if acked.as_deref() == Some(hash) {
        return Ok(true);
    }
    Ok(conn
        .prepare_cached("SELECT 1 FROM outbox WHERE code = ?1 AND content_hash = ?2")?
        .query_row(params![code, hash], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Whether the code is live on the portal (acknowledged and not closed).
pub fn is_live(conn: &Connection, code: &str) -> anyhow::Result<bool> {
    Ok(conn
        .prepare_cached("SELECT live FROM portal_state WHERE code = ?1")?
        .query_row([code], |r| r.get::<_, i64>(0))
        .optional()?
        == Some(1))
}

/// A code that is no longer its case's live code: forget its queued creates and steps, and say
/// whether the portal may hold it live, so that it must be closed: acknowledged live, or sent and
/// never answered (the daemon stopped between the call and the answer, and the portal may have
/// created it). Closing a code the portal never got costs one call ("không tồn tại": nothing to
/// close); forgetting one it did get leaves the case live twice.
pub fn retire(conn: &Connection, code: &str) -> anyhow::Result<bool> {
    let unanswered = conn
        .prepare_cached("SELECT 1 FROM portal_sent WHERE code = ?1")?
        .query_row([code], |_| Ok(()))
        .optional()?
        .is_some();
    let may_be_live = unanswered || is_live(conn, code)?;
    conn.prepare_cached("DELETE FROM outbox WHERE code = ?1 AND kind = 'upsert'")?.execute([code])?;
    conn.prepare_cached("DELETE FROM progress WHERE code = ?1 AND sent_at IS NULL")?.execute([code])?;
    Ok(may_be_live)
}

/// Mark the creates and updates about to be sent, before the call: whatever happens to the daemon
/// while the portal holds the answer, the code is then known to be possibly on the portal.
pub fn mark_sent(conn: &mut Connection, rows: &[Row], now: Timestamp) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    for row in rows.iter().filter(|r| r.kind == Kind::Upsert) {
        tx.prepare_cached("INSERT OR IGNORE INTO portal_sent (code, sent_at) VALUES (?1, ?2)")?
            .execute(params![row.code, ts(now)])?;
    }
    tx.commit()?;
    Ok(())
}

/// Queue a row, superseding any older row for the same code. Returns 1 if a row was written.
pub fn enqueue(conn: &Connection, row: NewRow<'_>, now: Timestamp) -> anyhow::Result<u32> {
    if row.fresh {
        return insert(conn, &row, now);
    }
    let acked: Option<(String, i64)> = conn
        .prepare_cached("SELECT content_hash, live FROM portal_state WHERE code = ?1")?
        .query_row([row.code], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let wanted_live = i64::from(row.kind == Kind::Upsert);
    if !row.force && acked.as_ref().is_some_and(|(h, live)| h == row.content_hash && *live == wanted_live) {
        conn.prepare_cached("DELETE FROM outbox WHERE code = ?1")?.execute([row.code])?;
        return Ok(0);
    }
    // Older states of the code are superseded; the same state is kept (the idempotency key).
    conn.prepare_cached(
        "DELETE FROM outbox WHERE code = ?1 AND NOT (kind = ?2 AND version = ?3 AND content_hash = ?4)",
    )?
    .execute(params![row.code, row.kind.as_str(), row.version, row.content_hash])?;
    insert(conn, &row, now)
}

fn insert(conn: &Connection, row: &NewRow<'_>, now: Timestamp) -> anyhow::Result<u32> {
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO outbox (dossier_id, code, kind, version, content_hash, payload, deadline, enqueued_at,
                                           next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        )?
        .execute(params![
            row.dossier_id,
            row.code,
            row.kind.as_str(),
            row.version,
            row.content_hash,
            row.payload,
            row.deadline.map(ts),
            ts(now)
        ])?;
    Ok(n as u32)
}

/// Queue the closing of `dup`'s code as a duplicate of the live code.
pub fn enqueue_close(
    conn: &Connection,
    dossier_id: i64,
    version: i64,
    dup: &crate::core::record::SourceRecord,
    live_code: &str,
    now: Timestamp,
) -> anyhow::Result<u32> {
    let close = crate::core::payload::closed_duplicate_object(dup, live_code).to_string();
    let hash = sha256_hex(close.as_bytes());
    enqueue(
        conn,
        NewRow {
            dossier_id,
            code: &dup.code,
            kind: Kind::Close,
            version,
            content_hash: &hash,
            payload: &close,
            deadline: dup.due_at,
            fresh: false,
            force: false,
        },
        now,
    )
}

/// Queue a processing step (idempotent: a step already queued or sent is not queued again).
/// A progress item ready to queue: its text and the key that makes queuing it idempotent.
#[derive(Debug, Clone)]
pub struct StepItem {
    pub key: String,
    pub text: String,
    pub at: Timestamp,
}

impl StepItem {
    pub fn of(code: &str, step: &crate::core::record::Step) -> StepItem {
        let text = crate::core::payload::progress_object(code, step).to_string();
        StepItem { key: sha256_hex(text.as_bytes()), text, at: step.at }
    }
}

pub fn enqueue_progress(conn: &Connection, code: &str, item: &StepItem, now: Timestamp) -> anyhow::Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO progress (code, step_key, payload, at, enqueued_at, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?
    .execute(params![code, item.key, item.text, ts(item.at), ts(now)])?;
    Ok(())
}

/// The order the outbox is sent in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Earliest deadline first: dossiers past their due time that the portal does not show ended
    /// (it shows them late until their end arrives), then by due time, then by age; no due time
    /// last.
    #[default]
    Edf,
    /// First in, first out: the order changes were made. The delivery benchmark's baseline.
    Fifo,
}

/// The next rows to send, in `order`.
pub fn next_batch(conn: &Connection, now: Timestamp, limit: usize, order: Order) -> anyhow::Result<Vec<Row>> {
    // Each read follows an index (`outbox_ready`: state, deadline, enqueued_at; the rowid for
    // FIFO): one ORDER BY with "no deadline last" made SQLite sort every queued row for each batch.
    // A close is always an update: a code the portal does not know has nothing to close.
    const COLUMNS: &str = "SELECT o.id, o.dossier_id, o.code, o.kind, o.version, o.content_hash, o.payload, o.attempts,
                o.kind = 'close' OR EXISTS (SELECT 1 FROM portal_state p WHERE p.code = o.code) FROM outbox o";
    let reads = match order {
        Order::Edf => vec![
            // Past due and not shown ended: each of these is shown late now, and its update may
            // end that.
            format!(
                "{COLUMNS} WHERE o.state = 'queued' AND o.deadline IS NOT NULL AND o.deadline <= ?1
                   AND o.next_attempt_at <= ?1
                   AND NOT EXISTS (SELECT 1 FROM portal_state p WHERE p.code = o.code AND p.status IN (3, 7, 8, 9, 10))
                 ORDER BY o.deadline, o.enqueued_at LIMIT ?2"
            ),
            format!(
                "{COLUMNS} WHERE o.state = 'queued' AND o.deadline IS NOT NULL AND o.next_attempt_at <= ?1
                 ORDER BY o.deadline, o.enqueued_at LIMIT ?2"
            ),
            format!(
                "{COLUMNS} WHERE o.state = 'queued' AND o.deadline IS NULL AND o.next_attempt_at <= ?1
                 ORDER BY o.enqueued_at LIMIT ?2"
            ),
        ],
        // Rows are inserted as changes are made (a superseded row is deleted and its successor
        // inserted), so the rowid is the order of the changes.
        Order::Fifo => {
            vec![format!("{COLUMNS} WHERE o.state = 'queued' AND o.next_attempt_at <= ?1 ORDER BY o.id LIMIT ?2")]
        }
    };
    let mut rows: Vec<Row> = Vec::new();
    for sql in reads {
        let want = limit - rows.len();
        if want == 0 {
            break;
        }
        // The second EDF read finds again what the first took: ask for that many more.
        let taken = rows.len();
        let mut stmt = conn.prepare_cached(&sql)?;
        let found = stmt.query_map(params![ts(now), (want + taken) as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, bool>(8)?,
            ))
        })?;
        for row in found {
            let (id, dossier_id, code, kind, version, content_hash, payload, attempts, known) = row?;
            if rows.len() == limit {
                break;
            }
            if rows[..taken].iter().any(|r| r.id == id) {
                continue;
            }
            rows.push(Row {
                id,
                dossier_id,
                code,
                kind: Kind::parse(&kind),
                version,
                content_hash,
                payload: serde_json::from_str(&payload)?,
                attempts,
                known_to_portal: known,
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
#[test]
fn the_next_batch_reads_the_queue_in_index_order() {
    let dir = tempfile::tempdir().unwrap();
    let conn = super::open_writer(&dir.path().join("t.db")).unwrap();
    for (i, deadline) in [Some("2026-03-02T00:00:00Z"), None, Some("2026-03-01T00:00:00Z")].iter().enumerate() {
        conn.execute(
            "INSERT INTO outbox (dossier_id, code, kind, version, content_hash, payload, deadline, enqueued_at, next_attempt_at)
             VALUES (?1, ?2, 'upsert', 1, 'h', '{}', ?3, ?4, ?4)",
            params![i as i64, format!("C-{i}"), deadline, format!("2026-01-0{}T00:00:00Z", 3 - i)],
        )
        .unwrap();
    }
    let now: Timestamp = "2026-03-09T00:00:00Z".parse().unwrap();
    let codes: Vec<String> = next_batch(&conn, now, 10, Order::Edf).unwrap().into_iter().map(|r| r.code).collect();
    assert_eq!(codes, ["C-2", "C-0", "C-1"], "earliest deadline first, no deadline last");
    assert_eq!(next_batch(&conn, now, 1, Order::Edf).unwrap().len(), 1);
    let codes: Vec<String> = next_batch(&conn, now, 10, Order::Fifo).unwrap().into_iter().map(|r| r.code).collect();
    assert_eq!(codes, ["C-0", "C-1", "C-2"], "in the order the changes were queued");

    // Past due: one the portal shows ended already (its verdict is settled) goes after one the
    // portal shows open, though its due time is earlier.
    conn.execute(
        "INSERT INTO portal_state (code, version, content_hash, status, live, payload, acked_at)
         VALUES ('C-2', 1, 'h', 9, 1, '{}', 'x')",
        [],
    )
    .unwrap();
    let codes: Vec<String> = next_batch(&conn, now, 10, Order::Edf).unwrap().into_iter().map(|r| r.code).collect();
    assert_eq!(codes, ["C-0", "C-2", "C-1"], "shown late now first");
    let codes: Vec<String> = next_batch(&conn, now, 2, Order::Edf).unwrap().into_iter().map(|r| r.code).collect();
    assert_eq!(codes, ["C-0", "C-2"], "each row once, up to the limit");
    let sql = "EXPLAIN QUERY PLAN SELECT id FROM outbox o WHERE o.state = 'queued' AND o.deadline IS NOT NULL
               AND o.next_attempt_at <= 'z' ORDER BY o.deadline, o.enqueued_at LIMIT 5";
    let plan: Vec<String> =
        conn.prepare(sql).unwrap().query_map([], |r| r.get(3)).unwrap().map(|r| r.unwrap()).collect();
    assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "no sort of the whole queue: {plan:?}");
}

/// The portal acknowledged a row: record what it now holds and drop the row.
pub fn ack(conn: &mut Connection, row: &Row, now: Timestamp) -> anyhow::Result<()> {
    ack_all(conn, std::slice::from_ref(row), now)
}

/// The portal acknowledged these rows (one transaction for a batch's answers).
pub fn ack_all(conn: &mut Connection, rows: &[Row], now: Timestamp) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    for row in rows {
        ack_one(&tx, row, now)?;
    }
    crate::failpoint::hit("store.ack.before_commit");
    tx.commit()?;
    Ok(())
}

fn ack_one(tx: &Connection, row: &Row, now: Timestamp) -> anyhow::Result<()> {
    let live = i64::from(row.kind == Kind::Upsert);
    let status: i64 = row.payload["TrangThaiHoSo"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
    tx.prepare_cached(
        "INSERT INTO portal_state (code, dossier_id, version, content_hash, status, live, payload, acked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(code) DO UPDATE SET dossier_id = excluded.dossier_id, version = excluded.version,
             content_hash = excluded.content_hash, status = excluded.status, live = excluded.live,
             payload = excluded.payload, acked_at = excluded.acked_at",
    )?
    .execute(params![
        row.code,
        row.dossier_id,
        row.version,
        row.content_hash,
        status,
        live,
        row.payload.to_string(),
        ts(now)
    ])?;
    tx.prepare_cached("DELETE FROM outbox WHERE id = ?1")?.execute([row.id])?;
    tx.prepare_cached("DELETE FROM portal_sent WHERE code = ?1")?.execute([row.code.as_str()])?;
    let (kind, msg) = match row.kind {
        Kind::Upsert => ("portal.acked", format!("portal holds version {} (status {status})", row.version)),
        Kind::Close => ("portal.closed_duplicate", "duplicate code closed on the portal (status 8)".to_string()),
    };
    synclog::append(
        tx,
        now,
        &Entry::new(Level::Info, kind, msg).dossier(&row.code).details(json!({"idem": row.content_hash})),
    )?;
    // The case may have found an earlier member while this row was in flight: then the code just
    // created is a duplicate, and must be closed.
    if row.kind == Kind::Upsert {
        let live_code: Option<String> = tx
            .prepare_cached("SELECT portal_code FROM dossiers WHERE id = ?1")?
            .query_row([row.dossier_id], |r| r.get(0))
            .optional()?;
        if let Some(live_code) = live_code.filter(|c| *c != row.code) {
            let dup: Option<String> = tx
                .prepare_cached("SELECT mapped FROM source_records WHERE dossier_id = ?1 AND code = ?2 LIMIT 1")?
                .query_row(params![row.dossier_id, row.code], |r| r.get(0))
                .optional()?;
            if let Some(dup) = dup {
                let dup: crate::core::record::SourceRecord = serde_json::from_str(&dup)?;
                enqueue_close(tx, row.dossier_id, row.version, &dup, &live_code, now)?;
            }
        }
    }
    Ok(())
}

/// A close the portal answered "không tồn tại": the code never reached it (its create was sent and
/// not answered, then refused or lost), so there is nothing to close.
pub fn settle_unneeded_close(conn: &mut Connection, row: &Row, now: Timestamp) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    tx.prepare_cached("DELETE FROM outbox WHERE id = ?1")?.execute([row.id])?;
    tx.prepare_cached("DELETE FROM portal_sent WHERE code = ?1")?.execute([row.code.as_str()])?;
    synclog::append(
        &tx,
        now,
        &Entry::new(Level::Info, "portal.close_unneeded", "the portal does not hold this code: nothing to close")
            .dossier(&row.code),
    )?;
    tx.commit()?;
    Ok(())
}

/// A transient failure: try again at `next_at`.
pub fn retry(conn: &Connection, id: i64, error: &str, next_at: Timestamp) -> anyhow::Result<()> {
    conn.prepare_cached(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE id = ?1",
    )?
    .execute(params![id, error, ts(next_at)])?;
    Ok(())
}

/// A permanent rejection: park the row with the portal's message, for an operator.
pub fn park(conn: &mut Connection, row: &Row, message: &str, now: Timestamp) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    tx.prepare_cached("UPDATE outbox SET attempts = attempts + 1, last_error = ?2, state = 'parked' WHERE id = ?1")?
        .execute(params![row.id, message])?;
    synclog::append(
        &tx,
        now,
        &Entry::new(
            Level::Error,
            "portal.rejected",
            format!("portal rejected version {}: {message}; parked until a fix and a re-sync", row.version),
        )
        .dossier(&row.code),
    )?;
    tx.commit()?;
    Ok(())
}

/// A queued progress step.
#[derive(Debug, Clone)]
pub struct ProgressRow {
    pub code: String,
    pub step_key: String,
    pub payload: serde_json::Value,
}

/// Steps ready to send: only for codes the portal already holds (it refuses steps of unknown ones).
pub fn next_progress(conn: &Connection, now: Timestamp, limit: usize) -> anyhow::Result<Vec<ProgressRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT g.code, g.step_key, g.payload FROM progress g JOIN portal_state p ON p.code = g.code AND p.live = 1
         WHERE g.sent_at IS NULL AND g.next_attempt_at <= ?1 ORDER BY g.code, g.at LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![ts(now), limit as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(code, step_key, payload)| Ok(ProgressRow { code, step_key, payload: serde_json::from_str(&payload)? }))
        .collect()
}

pub fn progress_sent(conn: &mut Connection, rows: &[ProgressRow], now: Timestamp) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    for r in rows {
        tx.prepare_cached("UPDATE progress SET sent_at = ?3 WHERE code = ?1 AND step_key = ?2")?.execute(params![
            r.code,
            r.step_key,
            ts(now)
        ])?;
    }
    tx.commit()?;
    Ok(())
}

pub fn progress_retry(conn: &Connection, rows: &[ProgressRow], error: &str, next_at: Timestamp) -> anyhow::Result<()> {
    for r in rows {
        conn.prepare_cached("UPDATE progress SET attempts = attempts + 1, last_error = ?3, next_attempt_at = ?4 WHERE code = ?1 AND step_key = ?2")?.execute(
            params![r.code, r.step_key, error, ts(next_at)],
        )?;
    }
    Ok(())
}
