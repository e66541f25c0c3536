//! Attestations in the store: recorded by `dvc-bridge attest` (through a request the daemon
//! carries out), applied to the case's canonical state at every merge (`ingest::recompute`), shown
//! by `explain`.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::json;

use super::ingest::{self, MergeCtx};
use super::report::cases_with_code;
use super::synclog::{self, Entry, Level};
use super::ts;
use crate::core::attest::Attestation;
use crate::core::status::Status;
use crate::core::timefmt::display_time;

/// The attestation in force for a case: the newest.
pub fn active(conn: &Connection, dossier_id: i64) -> anyhow::Result<Option<Attestation>> {
    let text: Option<String> = conn
        .prepare_cached("SELECT attestation FROM attestations WHERE dossier_id = ?1 ORDER BY id DESC LIMIT 1")?
        .query_row([dossier_id], |r| r.get(0))
        .optional()?;
    Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
}

/// One stored attestation, for `explain`.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub code: String,
    pub attestation: Attestation,
    pub by: String,
    pub at: String,
}

/// Every attestation of a case, oldest first (the last is in force).
pub fn list(conn: &Connection, dossier_id: i64) -> anyhow::Result<Vec<Recorded>> {
    let mut stmt = conn.prepare_cached(
        "SELECT code, attestation, attested_by, attested_at FROM attestations WHERE dossier_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([dossier_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
    })?;
    rows.map(|row| {
        let (code, text, by, at) = row?;
        Ok(Recorded { code, attestation: serde_json::from_str(&text)?, by, at })
    })
    .collect()
}

/// What `attest` did.
#[derive(Debug, Clone, Serialize)]
pub struct Attested {
    /// The case's portal code after the merge.
    pub case: String,
    pub status: u8,
    /// Outbox rows written: the portal learns the attested finish.
    pub queued: u32,
}

/// Record an operator's attestation for the case `code` names, merge the case again and queue it
/// for the portal. One transaction; refused (nothing written) when the attestation cannot be true.
pub fn record(
    conn: &mut Connection,
    ctx: &MergeCtx,
    code: &str,
    attestation: &Attestation,
    by: &str,
    now: Timestamp,
) -> anyhow::Result<Attested> {
    let tx = conn.transaction()?;
    let cases = cases_with_code(&tx, code)?;
    let id = match cases.as_slice() {
        [] => anyhow::bail!("no dossier with the code {code:?} in the store"),
        [id] => *id,
        _ => anyhow::bail!("the code {code:?} names {} cases; attest by the portal code of one", cases.len()),
    };
    let (portal_code, status, received): (String, Option<u8>, Option<String>) =
        tx.query_row("SELECT portal_code, status, received_at FROM dossiers WHERE id = ?1", [id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    let received = received.map(|r| r.parse::<Timestamp>()).transpose()?;
    attestation.check(received, now).map_err(|e| anyhow::anyhow!(e))?;
    if let Some(s) = status.and_then(Status::from_code) {
        Attestation::applies_to(s).map_err(|e| anyhow::anyhow!(e))?;
    }
    tx.execute(
        "INSERT INTO attestations (dossier_id, code, attestation, attested_by, attested_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, code, serde_json::to_string(attestation)?, by, ts(now)],
    )?;
    let returned = attestation.returned_at.map(|r| format!(", returned {}", display_time(r))).unwrap_or_default();
    let mut entry = Entry::new(
        Level::Warn,
        "dossier.attested",
        format!(
            "finish attested by {by}: finished {}{returned}; reason: {}",
            display_time(attestation.finished_at),
            attestation.reason
        ),
    )
    .dossier(&portal_code)
    .details(json!({"named": code, "attestation": attestation}));
    entry.actor = by.to_string();
    synclog::Chain::default().append(&tx, now, &entry)?;
    let queued = ingest::recompute(&tx, ctx, id, now, false)?;
    let (case, status): (String, u8) =
        tx.query_row("SELECT portal_code, status FROM dossiers WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    tx.commit()?;
    Ok(Attested { case, status, queued })
}
