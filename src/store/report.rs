//! Read-only summaries for `status` and the demo's live line.

use rusqlite::{Connection, params};
use serde::Serialize;

/// The cases a code names: the case whose portal code it is, and the case of every record that
/// carries it as its own code (found through `record_codes`). Used by `resync --dossier` and
/// `explain`.
pub fn cases_with_code(conn: &Connection, code: &str) -> rusqlite::Result<Vec<i64>> {
    conn.prepare_cached(
        "SELECT id FROM dossiers WHERE portal_code = ?1
         UNION SELECT dossier_id FROM source_records
               WHERE (source, native_id) IN (SELECT source, native_id FROM record_codes WHERE code = ?1)
                 AND code = ?1 AND dossier_id IS NOT NULL",
    )?
    .query_map([code], |r| r.get(0))?
    .collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceStatus {
    pub name: String,
    pub adapter: String,
    pub kind: String,
    pub portal_mode: String,
    pub last_poll_at: Option<String>,
    pub last_ok_at: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub polls: i64,
    pub poll_errors: i64,
    pub consecutive_errors: i64,
    pub records: i64,
    pub quarantined: i64,
    pub cursor: Option<String>,
    pub breaker: String,
    pub breaker_until: Option<String>,
    pub last_full_sweep_at: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DeliveryStatus {
    pub queued: i64,
    pub parked: i64,
    pub oldest_queued_at: Option<String>,
    pub progress_unsent: i64,
    pub live_on_portal: i64,
    pub closed_duplicates: i64,
    /// The parked rows, oldest first (at most [`PARKED_LISTED`]): what an operator must fix.
    pub parked_rows: Vec<ParkedRow>,
}

/// A delivery the portal refused for good, waiting for a fix and `resync --parked`.
#[derive(Debug, Clone, Serialize)]
pub struct ParkedRow {
    pub code: String,
    pub version: i64,
    /// The portal's message, as it gave it.
    pub error: Option<String>,
    pub attempts: i64,
    pub enqueued_at: String,
}

/// Parked rows listed by [`delivery`] (all are counted).
pub const PARKED_LISTED: usize = 20;

#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub sources: Vec<SourceStatus>,
    pub delivery: DeliveryStatus,
    pub dossiers: i64,
    pub conflicts: i64,
    pub log_entries: i64,
}

pub fn sources(conn: &Connection) -> rusqlite::Result<Vec<SourceStatus>> {
    conn.prepare_cached(
        "SELECT s.name, s.adapter, s.kind, s.portal_mode, s.last_poll_at, s.last_ok_at, s.last_error, s.last_error_at,
                s.polls, s.poll_errors, s.consecutive_errors,
                (SELECT COUNT(*) FROM source_records r WHERE r.source = s.name),
                (SELECT COUNT(*) FROM quarantine q WHERE q.source = s.name AND q.resolved_at IS NULL),
                (SELECT c.updated_at FROM cursors c WHERE c.source = s.name),
                s.breaker, s.breaker_until, s.last_full_sweep_at
         FROM sources s ORDER BY s.name",
    )?
    .query_map([], |r| {
        Ok(SourceStatus {
            name: r.get(0)?,
            adapter: r.get(1)?,
            kind: r.get(2)?,
            portal_mode: r.get(3)?,
            last_poll_at: r.get(4)?,
            last_ok_at: r.get(5)?,
            last_error: r.get(6)?,
            last_error_at: r.get(7)?,
            polls: r.get(8)?,
            poll_errors: r.get(9)?,
            consecutive_errors: r.get(10)?,
            records: r.get(11)?,
            quarantined: r.get(12)?,
            cursor: r.get(13)?,
            breaker: r.get(14)?,
            breaker_until: r.get(15)?,
            last_full_sweep_at: r.get(16)?,
        })
    })?
    .collect()
}

pub fn delivery(conn: &Connection) -> rusqlite::Result<DeliveryStatus> {
    let (queued, parked, oldest) = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(state = 'queued'), 0), COALESCE(SUM(state = 'parked'), 0),
                MIN(CASE WHEN state = 'queued' THEN enqueued_at END) FROM outbox",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let progress_unsent =
        conn.prepare_cached("SELECT COUNT(*) FROM progress WHERE sent_at IS NULL")?.query_row([], |r| r.get(0))?;
    let (live, closed) = conn
        .prepare_cached("SELECT COALESCE(SUM(live = 1), 0), COALESCE(SUM(live = 0), 0) FROM portal_state")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let parked_rows = conn
        .prepare_cached(
            "SELECT code, version, last_error, attempts, enqueued_at FROM outbox WHERE state = 'parked'
             ORDER BY enqueued_at, id LIMIT ?1",
        )?
        .query_map([PARKED_LISTED as i64], |r| {
            Ok(ParkedRow {
                code: r.get(0)?,
                version: r.get(1)?,
                error: r.get(2)?,
                attempts: r.get(3)?,
                enqueued_at: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(DeliveryStatus {
        queued,
        parked,
        parked_rows,
        oldest_queued_at: oldest,
        progress_unsent,
        live_on_portal: live,
        closed_duplicates: closed,
    })
}

pub fn overview(conn: &Connection) -> rusqlite::Result<Overview> {
    Ok(Overview {
        sources: sources(conn)?,
        delivery: delivery(conn)?,
        dossiers: conn.prepare_cached("SELECT COUNT(*) FROM dossiers")?.query_row([], |r| r.get(0))?,
        conflicts: conn
            .prepare_cached("SELECT COUNT(*) FROM dossiers WHERE conflict IS NOT NULL")?
            .query_row([], |r| r.get(0))?,
        log_entries: conn.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM sync_log")?.query_row([], |r| r.get(0))?,
    })
}

/// What the daemon has been doing lately, for `status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Activity {
    /// Dossier objects the portal acknowledged in the last ten minutes.
    pub acked_last_10_min: i64,
    /// The verify sweep's last read-back, and how much it covers.
    pub verify_last_at: Option<String>,
    pub verified_last_day: i64,
    /// Dossiers whose last read-back differed from the canonical state.
    pub verify_divergent: i64,
}

pub fn activity(conn: &Connection, now: jiff::Timestamp) -> rusqlite::Result<Activity> {
    let ago = |secs: i64| super::ts(now - jiff::SignedDuration::from_secs(secs));
    // Newest first along the index on (kind, seq), bounded: the log is in time order.
    let acked_last_10_min = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM (SELECT at FROM sync_log WHERE kind = 'portal.acked' ORDER BY seq DESC LIMIT 100000)
             WHERE at >= ?1",
        )?
        .query_row([ago(600)], |r| r.get(0))?;
    let (verify_last_at, verified_last_day, verify_divergent) = conn
        .prepare_cached(
            "SELECT MAX(verified_at), COALESCE(SUM(verified_at >= ?1), 0), COALESCE(SUM(divergence IS NOT NULL), 0)
             FROM verify_marks",
        )?
        .query_row([ago(86_400)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(Activity { acked_last_10_min, verify_last_at, verified_last_day, verify_divergent })
}

/// Record the start of a poll.
pub fn poll_started(conn: &Connection, source: &str, at: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE sources SET last_poll_at = ?2, polls = polls + 1 WHERE name = ?1")?
        .execute(params![source, at])?;
    Ok(())
}

/// Record the outcome of a poll.
pub fn poll_finished(conn: &Connection, source: &str, at: &str, error: Option<&str>) -> rusqlite::Result<()> {
    match error {
        None => conn
            .prepare_cached("UPDATE sources SET last_ok_at = ?2, consecutive_errors = 0 WHERE name = ?1")?
            .execute(params![source, at])?,
        Some(e) => conn
            .prepare_cached(
                "UPDATE sources SET last_error = ?3, last_error_at = ?2, poll_errors = poll_errors + 1,
                                consecutive_errors = consecutive_errors + 1 WHERE name = ?1",
            )?
            .execute(params![source, at, e])?,
    };
    Ok(())
}

/// Record the circuit breaker's state (`until`: when an open breaker will probe again).
pub fn breaker_changed(conn: &Connection, source: &str, state: &str, until: Option<&str>) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE sources SET breaker = ?2, breaker_until = ?3 WHERE name = ?1")?
        .execute(params![source, state, until])?;
    Ok(())
}

/// Record a completed full sweep.
pub fn swept(conn: &Connection, source: &str, at: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE sources SET last_full_sweep_at = ?2 WHERE name = ?1")?.execute(params![source, at])?;
    Ok(())
}

/// When the source was last swept in full.
pub fn last_sweep(conn: &Connection, source: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT last_full_sweep_at FROM sources WHERE name = ?1")?.query_row([source], |r| r.get(0))
}
