//! Re-sync requests (the `resync_requests` table) and the store's side of carrying one out.
//!
//! The CLI writes a request; the daemon's re-sync task takes the oldest pending one, marks it
//! running, reports progress in `result`, and marks it done or failed. A request found running
//! when the daemon starts was interrupted by a stop or a crash: it is run again (every step is
//! idempotent).

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::synclog::{self, Entry, Level};
use super::ts;
use crate::core::resync::Scope;

/// A request as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Request {
    pub id: i64,
    pub scope: Scope,
    pub requested_by: String,
    pub requested_at: String,
    pub state: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Progress while running (`phase`, `done`, `total`), the outcome when done, the error when failed.
    pub result: Option<serde_json::Value>,
}

impl Request {
    pub fn finished(&self) -> bool {
        self.state == "done" || self.state == "failed"
    }
}

/// Store a request; returns its id. Logged with the operator's name.
pub fn request(conn: &Connection, scope: &Scope, by: &str, now: Timestamp) -> anyhow::Result<i64> {
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        "INSERT INTO resync_requests (scope, requested_by, requested_at) VALUES (?1, ?2, ?3)",
        params![serde_json::to_string(scope)?, by, ts(now)],
    )?;
    let id = tx.last_insert_rowid();
    let mut e = Entry::new(Level::Info, "resync.requested", format!("re-sync #{id} requested: {}", scope.describe()))
        .details(json!({"request": id, "scope": scope}));
    e.actor = by.to_string();
    synclog::append(&tx, now, &e)?;
    tx.commit()?;
    Ok(id)
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Request> {
    let scope: String = r.get(1)?;
    let result: Option<String> = r.get(7)?;
    Ok(Request {
        id: r.get(0)?,
        scope: serde_json::from_str(&scope).unwrap_or_default(),
        requested_by: r.get(2)?,
        requested_at: r.get(3)?,
        state: r.get(4)?,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        result: result.and_then(|t| serde_json::from_str(&t).ok()),
    })
}

const COLUMNS: &str = "id, scope, requested_by, requested_at, state, started_at, finished_at, result";

/// One request by id.
pub fn get(conn: &Connection, id: i64) -> anyhow::Result<Option<Request>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM resync_requests WHERE id = ?1"))?
        .query_row([id], row)
        .optional()?)
}

/// The oldest request waiting for a daemon, if any.
pub fn oldest_pending(conn: &Connection) -> anyhow::Result<Option<i64>> {
    Ok(conn.query_row("SELECT MIN(id) FROM resync_requests WHERE state = 'pending'", [], |r| r.get(0))?)
}

/// Requests left running by a daemon that stopped or crashed go back to the queue.
pub fn requeue_interrupted(conn: &Connection) -> anyhow::Result<usize> {
    Ok(conn.execute("UPDATE resync_requests SET state = 'pending' WHERE state = 'running'", [])?)
}

/// Take the oldest pending request: it is marked running.
pub fn take(conn: &mut Connection, now: Timestamp) -> anyhow::Result<Option<Request>> {
    let tx = conn.transaction()?;
    let Some(mut req) = tx
        .prepare_cached(&format!("SELECT {COLUMNS} FROM resync_requests WHERE state = 'pending' ORDER BY id LIMIT 1"))?
        .query_row([], row)
        .optional()?
    else {
        return Ok(None);
    };
    tx.execute(
        "UPDATE resync_requests SET state = 'running', started_at = ?2, result = NULL WHERE id = ?1",
        params![req.id, ts(now)],
    )?;
    let mut e =
        Entry::new(Level::Info, "resync.started", format!("re-sync #{} started: {}", req.id, req.scope.describe()))
            .details(json!({"request": req.id}));
    e.actor = req.requested_by.clone();
    synclog::append(&tx, now, &e)?;
    tx.commit()?;
    req.state = "running".into();
    Ok(Some(req))
}

/// Progress of a running request, for `resync --wait`.
pub fn progress(conn: &Connection, id: i64, phase: &str, done: u64, total: u64) -> anyhow::Result<()> {
    conn.execute(
        "UPDATE resync_requests SET result = ?2 WHERE id = ?1 AND state = 'running'",
        params![id, json!({"phase": phase, "done": done, "total": total}).to_string()],
    )?;
    Ok(())
}

/// The end of a request: its outcome, or its error. Logged with the operator's name.
pub fn finish(
    conn: &Connection,
    req: &Request,
    outcome: Result<serde_json::Value, String>,
    now: Timestamp,
) -> anyhow::Result<()> {
    let tx = conn.unchecked_transaction()?;
    let (state, result, mut e) = match outcome {
        Ok(v) => (
            "done",
            v.clone(),
            Entry::new(Level::Info, "resync.done", format!("re-sync #{} done: {}", req.id, req.scope.describe()))
                .details(json!({"request": req.id, "outcome": v})),
        ),
        Err(err) => (
            "failed",
            json!({"error": err}),
            Entry::new(Level::Error, "resync.failed", format!("re-sync #{} failed: {err}", req.id))
                .details(json!({"request": req.id})),
        ),
    };
    e.actor = req.requested_by.clone();
    tx.execute(
        "UPDATE resync_requests SET state = ?2, finished_at = ?3, result = ?4 WHERE id = ?1",
        params![req.id, state, ts(now), result.to_string()],
    )?;
    synclog::append(&tx, now, &e)?;
    tx.commit()?;
    Ok(())
}

/// Parked outbox rows go back to the queue, to be sent at once. Returns how many.
pub fn release_parked(conn: &Connection, now: Timestamp) -> anyhow::Result<usize> {
    Ok(conn.execute(
        "UPDATE outbox SET state = 'queued', attempts = 0, next_attempt_at = ?1 WHERE state = 'parked'",
        [ts(now)],
    )?)
}

/// The cases a scope names (besides whole-source walks), by id.
pub fn dossiers_in(conn: &Connection, scope: &Scope) -> anyhow::Result<Vec<i64>> {
    let mut ids = std::collections::BTreeSet::new();
    if scope.all {
        let mut stmt = conn.prepare("SELECT id FROM dossiers")?;
        for id in stmt.query_map([], |r| r.get(0))? {
            ids.insert(id?);
        }
    }
    for code in &scope.dossiers {
        ids.extend(super::report::cases_with_code(conn, code)?);
    }
    if let Some(p) = &scope.procedure {
        let mut stmt = conn.prepare(
            "SELECT DISTINCT dossier_id FROM source_records WHERE procedure = ?1 AND dossier_id IS NOT NULL",
        )?;
        for id in stmt.query_map([p], |r| r.get(0))? {
            ids.insert(id?);
        }
    }
    if let Some(s) = &scope.source {
        let since = scope.since.map(ts).unwrap_or_default();
        let until = scope.until.map(ts).unwrap_or_else(|| "9999".into());
        let mut stmt = conn.prepare(
            "SELECT DISTINCT dossier_id FROM source_records
             WHERE source = ?1 AND updated_at >= ?2 AND updated_at <= ?3 AND dossier_id IS NOT NULL",
        )?;
        for id in stmt.query_map(params![s, since, until], |r| r.get(0))? {
            ids.insert(id?);
        }
    }
    Ok(ids.into_iter().collect())
}

/// The codes of `scope.dossiers` that match no case, to tell the operator.
pub fn unknown_codes(conn: &Connection, scope: &Scope) -> anyhow::Result<Vec<String>> {
    let mut unknown = Vec::new();
    for code in &scope.dossiers {
        if super::report::cases_with_code(conn, code)?.is_empty() {
            unknown.push(code.clone());
        }
    }
    Ok(unknown)
}

/// The stored payloads of the members of some cases: (source, payload as received).
pub fn member_payloads(conn: &Connection, ids: &[i64]) -> anyhow::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached("SELECT source, raw FROM source_records WHERE dossier_id = ?1")?;
    let mut out = Vec::new();
    for id in ids {
        for r in stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))? {
            out.push(r?);
        }
    }
    Ok(out)
}
