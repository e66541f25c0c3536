//! Ingest: one page from a source, in one transaction.
//!
//! Upsert the page's records (unchanged payloads skipped by hash), quarantine what could not be
//! mapped, link each changed record into its case, recompute the canonical dossier of every case
//! touched, write outbox rows for what the portal must learn, append the sync log, and advance the
//! cursor — all or nothing. A crash before the commit loses nothing: the next poll re-reads the page
//! from the last committed cursor.

use std::collections::{BTreeSet, HashMap};

use anyhow::Context;
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::synclog::{self, Entry, Level};
use super::{outbox, sha256_hex, ts};
use crate::config::PortalMode;
use crate::core::cutover::CutoverTable;
use crate::core::descriptor::SystemKind;
use crate::core::merge::{self, LinkRule, Member, MergeOutcome};
use crate::core::payload;
use crate::core::record::SourceRecord;
use crate::core::status::Status;

/// What the merge needs to know about the configured sources.
#[derive(Debug, Clone, Default)]
pub struct MergeCtx {
    pub sources: HashMap<String, (SystemKind, PortalMode)>,
    pub cutover: CutoverTable,
}

impl MergeCtx {
    fn kind(&self, source: &str) -> SystemKind {
        self.sources.get(source).map(|s| s.0).unwrap_or(SystemKind::City)
    }
    fn pushes(&self, source: &str) -> bool {
        self.sources.get(source).is_some_and(|s| s.1 == PortalMode::Push)
    }
}

/// One record of a page, mapped or not, with its serialised forms and hash prepared by the caller
/// (the poller's task), so that the single writer thread spends its time on the database only.
#[derive(Debug, Clone)]
pub enum Incoming {
    Mapped(Box<Prepared>),
    Bad(Box<BadRecord>),
}

#[derive(Debug, Clone)]
pub struct Prepared {
    pub record: SourceRecord,
    pub raw_text: String,
    pub raw_hash: String,
    pub mapped_json: String,
    /// What the portal gets if this record starts a case of its own (the usual case on a first
    /// sync): prepared here so that the writer only has to store it.
    pub solo: Solo,
}

/// The portal object and progress items of a case whose only member is one record.
#[derive(Debug, Clone)]
pub struct Solo {
    pub object_text: String,
    pub object_hash: String,
    pub steps: Vec<outbox::StepItem>,
}

impl Solo {
    fn of(record: &SourceRecord) -> Solo {
        // A case of one member is that member (merge::merge keeps its code, times and fields).
        let object_text = payload::dossier_object(record, None).to_string();
        Solo {
            object_hash: sha256_hex(object_text.as_bytes()),
            object_text,
            steps: record.steps.iter().map(|s| outbox::StepItem::of(&record.code, s)).collect(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BadRecord {
    pub native_id: Option<String>,
    pub reason: String,
    pub raw_text: String,
    pub raw_hash: String,
}

impl Incoming {
    /// A record that mapped.
    pub fn mapped(record: SourceRecord, raw: &serde_json::Value) -> Incoming {
        let raw_text = raw.to_string();
        let raw_hash = sha256_hex(raw_text.as_bytes());
        let mapped_json = serde_json::to_string(&record).unwrap_or_default();
        let solo = Solo::of(&record);
        Incoming::Mapped(Box::new(Prepared { record, raw_text, raw_hash, mapped_json, solo }))
    }

    /// A record that did not map, and why.
    pub fn bad(native_id: Option<String>, reason: String, raw: &serde_json::Value) -> Incoming {
        let raw_text = raw.to_string();
        let raw_hash = sha256_hex(raw_text.as_bytes());
        Incoming::Bad(Box::new(BadRecord { native_id, reason, raw_text, raw_hash }))
    }
}

/// A page to commit.
#[derive(Debug, Clone)]
pub struct Page {
    pub source: String,
    pub items: Vec<Incoming>,
    /// The cursor to commit with the page, if the walk allows advancing it now.
    pub cursor: Option<(Timestamp, String)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestReport {
    pub new: u32,
    pub changed: u32,
    pub unchanged: u32,
    pub quarantined: u32,
    pub enqueued: u32,
}

impl std::ops::AddAssign for IngestReport {
    fn add_assign(&mut self, o: Self) {
        self.new += o.new;
        self.changed += o.changed;
        self.unchanged += o.unchanged;
        self.quarantined += o.quarantined;
        self.enqueued += o.enqueued;
    }
}

/// Register the configured sources (idempotent).
pub fn register_sources(conn: &Connection, sources: &[(String, String, SystemKind, PortalMode)]) -> anyhow::Result<()> {
    for (name, adapter, kind, mode) in sources {
        conn.prepare_cached("INSERT INTO sources (name, adapter, kind, portal_mode) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET adapter = excluded.adapter, kind = excluded.kind, portal_mode = excluded.portal_mode")?.execute(
            params![name, adapter, serde_json::to_value(kind)?.as_str(), serde_json::to_value(mode)?.as_str()],
        )?;
    }
    Ok(())
}

/// The committed cursor of a source.
pub fn cursor(conn: &Connection, source: &str) -> anyhow::Result<Option<(Timestamp, String)>> {
    let row: Option<(String, String)> = conn
        .prepare_cached("SELECT updated_at, native_id FROM cursors WHERE source = ?1")?
        .query_row([source], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(t, id)| Ok((super::parse_ts(&t)?, id))).transpose()
}

/// Commit one page. See the module comment.
pub fn ingest_page(conn: &mut Connection, ctx: &MergeCtx, page: Page, now: Timestamp) -> anyhow::Result<IngestReport> {
    let tx = conn.transaction()?;
    let mut report = IngestReport::default();
    // Whether any record of this source waits in quarantine: if not, storing a record has no
    // quarantined version to resolve (one query a page instead of one a record).
    let mut quarantine_open: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM quarantine WHERE source = ?1 AND resolved_at IS NULL)")?
        .query_row([&page.source], |r| r.get(0))?;
    let mut log = synclog::Chain::default();
    let mut touched: Vec<(Box<Prepared>, Stored)> = Vec::new();
    for item in page.items {
        match item {
            Incoming::Bad(b) => {
                quarantine_open = true;
                if quarantine(&tx, &mut log, &page.source, &b, now)? {
                    report.quarantined += 1;
                }
            }
            Incoming::Mapped(p) => match store_record(&tx, &p, quarantine_open, now)? {
                Stored::Unchanged => report.unchanged += 1,
                stored => {
                    if stored == Stored::New {
                        report.new += 1;
                    } else {
                        report.changed += 1;
                    }
                    touched.push((p, stored));
                }
            },
        }
    }
    // Cases created by this page whose one member is the record that created them: their prior
    // state is known (nothing decided, nothing queued or acknowledged), which spares the look-ups.
    let mut dossiers = BTreeSet::new();
    let mut created: HashMap<i64, usize> = HashMap::new();
    for (i, (p, stored)) in touched.iter().enumerate() {
        let linked = link(&tx, &mut log, &p.record, *stored == Stored::New, now)?;
        dossiers.insert(linked.id);
        if linked.created {
            created.insert(linked.id, i);
        } else {
            created.remove(&linked.id);
            for gone in &linked.joined {
                created.remove(gone);
            }
        }
    }
    for (i, (p, stored)) in touched.iter().enumerate() {
        // A record that created its case is told by the case's own entry.
        if !created.values().any(|&c| c == i) {
            log_record(&tx, &mut log, &p.record, *stored, now)?;
        }
    }
    let fresh: HashMap<(&str, &str), &SourceRecord> =
        touched.iter().map(|(p, _)| ((p.record.source.as_str(), p.record.native_id.as_str()), &p.record)).collect();
    for id in dossiers {
        let single = created.get(&id).map(|&i| &*touched[i].0);
        report.enqueued += recompute_with(&tx, &mut log, ctx, id, now, &fresh, single)?;
    }
    if let Some((t, id)) = &page.cursor {
        tx.prepare_cached(
            "INSERT INTO cursors (source, updated_at, native_id, committed_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(source) DO UPDATE SET updated_at = excluded.updated_at, native_id = excluded.native_id,
                                               committed_at = excluded.committed_at",
        )?
        .execute(params![page.source, ts(*t), id, ts(now)])?;
    }
    tx.commit()?;
    Ok(report)
}

/// The unresolved quarantined payloads of a source (the newest per record), to map again after a
/// descriptor fix.
pub fn pending_quarantine(conn: &Connection, source: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut stmt = conn.prepare_cached(
        "SELECT raw FROM quarantine q WHERE source = ?1 AND resolved_at IS NULL
           AND last_at = (SELECT MAX(last_at) FROM quarantine q2
                          WHERE q2.source = q.source AND q2.native_id = q.native_id AND q2.resolved_at IS NULL)
         ORDER BY last_at",
    )?;
    let raws = stmt.query_map([source], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
    Ok(raws.iter().filter_map(|r| serde_json::from_str(r).ok()).collect())
}

/// Returns true when this is a new quarantine entry (not the same bad payload seen again).
fn quarantine(
    conn: &Connection,
    log: &mut synclog::Chain,
    source: &str,
    b: &BadRecord,
    now: Timestamp,
) -> anyhow::Result<bool> {
    let native_id = b.native_id.as_deref().unwrap_or("");
    let (hash, reason, raw_text) = (&b.raw_hash, &b.reason, &b.raw_text);
    let updated = conn
        .prepare_cached(
            "UPDATE quarantine SET last_at = ?4, seen = seen + 1, reason = ?5
         WHERE source = ?1 AND native_id = ?2 AND raw_hash = ?3",
        )?
        .execute(params![source, native_id, hash, ts(now), reason])?;
    if updated > 0 {
        return Ok(false);
    }
    conn.prepare_cached("INSERT INTO quarantine (source, native_id, raw_hash, reason, raw, first_at, last_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)")?.execute(
        params![source, native_id, hash, reason, raw_text, ts(now)],
    )?;
    let id = if native_id.is_empty() { "(unreadable id)" } else { native_id };
    log.append(
        conn,
        now,
        &Entry::new(Level::Warn, "record.quarantined", format!("record {id} quarantined: {reason}"))
            .source(source)
            .details(json!({"native_id": native_id, "raw_hash": hash})),
    )?;
    Ok(true)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    New,
    /// With the status the record had before.
    Changed(i64),
    Unchanged,
}

fn store_record(conn: &Connection, p: &Prepared, quarantine_open: bool, now: Timestamp) -> anyhow::Result<Stored> {
    let (rec, hash, raw_text, mapped) = (&p.record, &p.raw_hash, &p.raw_text, &p.mapped_json);
    let existing: Option<(String, i64)> = conn
        .prepare_cached("SELECT raw_hash, status FROM source_records WHERE source = ?1 AND native_id = ?2")?
        .query_row(params![rec.source, rec.native_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if existing.as_ref().is_some_and(|(h, _)| h == hash) {
        return Ok(Stored::Unchanged);
    }
    let refs = serde_json::to_string(&rec.reference_codes)?;
    conn.prepare_cached(
        "INSERT INTO source_records (source, native_id, code, ref_codes, procedure, status, received_at, updated_at,
                                     raw_hash, raw, mapped, first_seen_at, last_changed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)
         ON CONFLICT(source, native_id) DO UPDATE SET code = excluded.code, ref_codes = excluded.ref_codes,
            procedure = excluded.procedure, status = excluded.status, received_at = excluded.received_at,
            updated_at = excluded.updated_at, raw_hash = excluded.raw_hash, raw = excluded.raw,
            mapped = excluded.mapped, last_changed_at = excluded.last_changed_at",
    )?
    .execute(params![
        rec.source,
        rec.native_id,
        rec.code,
        refs,
        rec.procedure.code,
        rec.status.code(),
        rec.arrived_at().map(ts),
        ts(rec.updated_at),
        hash,
        raw_text,
        mapped,
        ts(now)
    ])?;
    if existing.is_some() {
        conn.prepare_cached("DELETE FROM record_codes WHERE source = ?1 AND native_id = ?2")?
            .execute(params![rec.source, rec.native_id])?;
    }
    for code in rec.all_codes() {
        conn.prepare_cached("INSERT OR IGNORE INTO record_codes (code, source, native_id) VALUES (?1, ?2, ?3)")?
            .execute(params![code, rec.source, rec.native_id])?;
    }
    // A record that maps again supersedes its quarantined versions.
    if quarantine_open {
        conn.prepare_cached(
            "UPDATE quarantine SET resolved_at = ?3 WHERE source = ?1 AND native_id = ?2 AND resolved_at IS NULL",
        )?
        .execute(params![rec.source, rec.native_id, ts(now)])?;
    }
    Ok(match existing {
        Some((_, old)) => Stored::Changed(old),
        None => Stored::New,
    })
}

/// The sync-log entry for a stored record.
fn log_record(
    conn: &Connection,
    log: &mut synclog::Chain,
    rec: &SourceRecord,
    stored: Stored,
    now: Timestamp,
) -> anyhow::Result<()> {
    let (kind, msg) = match stored {
        Stored::Changed(old) if old != i64::from(rec.status.code()) => {
            ("record.changed", format!("record {} status {} → {}", rec.native_id, old, rec.status))
        }
        Stored::Changed(_) | Stored::Unchanged => {
            ("record.changed", format!("record {} changed, status {}", rec.native_id, rec.status))
        }
        Stored::New => {
            ("record.new", format!("new record {} ({}), status {}", rec.native_id, rec.procedure.code, rec.status))
        }
    };
    log.append(conn, now, &Entry::new(Level::Info, kind, msg).source(&rec.source).dossier(&rec.code))?;
    Ok(())
}

fn load_record(conn: &Connection, source: &str, native_id: &str) -> anyhow::Result<SourceRecord> {
    let mapped: String = conn
        .prepare_cached("SELECT mapped FROM source_records WHERE source = ?1 AND native_id = ?2")?
        .query_row(params![source, native_id], |r| r.get(0))?;
    serde_json::from_str(&mapped).with_context(|| format!("stored record {source}/{native_id} does not parse"))
}

/// Link a stored record into its case; returns the dossier id. Cases that this record shows to be
/// one are joined into the oldest (lowest id), so links never flip back and forth.
/// Where `link` put a record.
struct Linked {
    id: i64,
    /// The record started a case of its own.
    created: bool,
    /// Cases joined into `id` because this record showed them to be the same.
    joined: Vec<i64>,
}

fn link(
    conn: &Connection,
    log: &mut synclog::Chain,
    rec: &SourceRecord,
    new: bool,
    now: Timestamp,
) -> anyhow::Result<Linked> {
    // A record stored for the first time belongs to no case yet.
    let current: Option<i64> = if new {
        None
    } else {
        conn.prepare_cached("SELECT dossier_id FROM source_records WHERE source = ?1 AND native_id = ?2")?
            .query_row(params![rec.source, rec.native_id], |r| r.get(0))?
    };
    // Other records sharing any code with this one (its own code or a reference).
    let mut matches: Vec<(i64, String, String)> = Vec::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT sr.dossier_id, sr.source, sr.native_id FROM record_codes rc
             JOIN source_records sr ON sr.source = rc.source AND sr.native_id = rc.native_id
             WHERE rc.code = ?1 AND sr.dossier_id IS NOT NULL AND NOT (sr.source = ?2 AND sr.native_id = ?3)",
        )?;
        for code in rec.all_codes() {
            for row in
                stmt.query_map(params![code, rec.source, rec.native_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            {
                matches.push(row?);
            }
        }
    }
    let mut ids: BTreeSet<i64> = matches.iter().map(|m| m.0).collect();
    ids.extend(current);
    let Some(&target) = ids.iter().next() else {
        conn.prepare_cached("INSERT INTO dossiers (portal_code, created_at, updated_at) VALUES (?1, ?2, ?2)")?
            .execute(params![rec.code, ts(now)])?;
        let id = conn.last_insert_rowid();
        conn.prepare_cached(
            "UPDATE source_records SET dossier_id = ?3, link_rule = ?4 WHERE source = ?1 AND native_id = ?2",
        )?
        .execute(params![rec.source, rec.native_id, id, LinkRule::First.as_str()])?;
        return Ok(Linked { id, created: true, joined: Vec::new() });
    };
    if current != Some(target) {
        let (_, ms, mn) = matches.iter().find(|m| m.0 == target).cloned().unwrap_or_default();
        let rule = if ms.is_empty() {
            LinkRule::First
        } else {
            merge::link_rule(rec, &load_record(conn, &ms, &mn)?).unwrap_or(LinkRule::Reference)
        };
        conn.prepare_cached(
            "UPDATE source_records SET dossier_id = ?3, link_rule = ?4 WHERE source = ?1 AND native_id = ?2",
        )?
        .execute(params![rec.source, rec.native_id, target, rule.as_str()])?;
        if rule != LinkRule::First {
            let target_code: String = conn
                .prepare_cached("SELECT portal_code FROM dossiers WHERE id = ?1")?
                .query_row([target], |r| r.get(0))?;
            log.append(
                conn,
                now,
                &Entry::new(
                    Level::Info,
                    "dossier.linked",
                    format!(
                        "{}/{} (code {}) linked to case {target_code} by rule {}",
                        rec.source,
                        rec.native_id,
                        rec.code,
                        rule.as_str()
                    ),
                )
                .source(&rec.source)
                .dossier(&target_code),
            )?;
        }
    }
    // Join any other case this record shows to be the same one.
    for &other in ids.iter().filter(|&&i| i != target) {
        conn.prepare_cached("UPDATE source_records SET dossier_id = ?1 WHERE dossier_id = ?2")?
            .execute(params![target, other])?;
        conn.prepare_cached("UPDATE outbox SET dossier_id = ?1 WHERE dossier_id = ?2")?
            .execute(params![target, other])?;
        let other_code: String =
            conn.prepare_cached("SELECT portal_code FROM dossiers WHERE id = ?1")?.query_row([other], |r| r.get(0))?;
        conn.prepare_cached("DELETE FROM dossiers WHERE id = ?1")?.execute([other])?;
        log.append(
            conn,
            now,
            &Entry::new(
                Level::Info,
                "dossier.joined",
                format!("case {other_code} joined into the same case through record {}/{}", rec.source, rec.native_id),
            )
            .source(&rec.source)
            .dossier(&other_code),
        )?;
    }
    Ok(Linked { id: target, created: false, joined: ids.into_iter().filter(|&i| i != target).collect() })
}

/// Recompute a case's canonical dossier and queue what the portal must learn. Returns how many
/// outbox rows were written.
pub fn recompute(conn: &Connection, ctx: &MergeCtx, dossier_id: i64, now: Timestamp) -> anyhow::Result<u32> {
    recompute_with(conn, &mut synclog::Chain::default(), ctx, dossier_id, now, &HashMap::new(), None)
}

/// `recompute`, taking the members just stored from memory rather than parsing them back.
/// The members of a case, from memory where this page just stored them.
fn members_of(
    conn: &Connection,
    dossier_id: i64,
    fresh: &HashMap<(&str, &str), &SourceRecord>,
) -> anyhow::Result<Vec<SourceRecord>> {
    let keys: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT source, native_id FROM source_records WHERE dossier_id = ?1 ORDER BY source, native_id",
        )?
        .query_map([dossier_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    keys.iter()
        .map(|(s, n)| match fresh.get(&(s.as_str(), n.as_str())) {
            Some(r) => Ok((*r).clone()),
            None => load_record(conn, s, n),
        })
        .collect()
}

/// `single`: the case was created just now by this one record, so its members and prior state are
/// known without reading them back.
fn recompute_with(
    conn: &Connection,
    log: &mut synclog::Chain,
    ctx: &MergeCtx,
    dossier_id: i64,
    now: Timestamp,
    fresh: &HashMap<(&str, &str), &SourceRecord>,
    single: Option<&Prepared>,
) -> anyhow::Result<u32> {
    type Prior = (Option<u8>, Option<String>, String, i64, Option<String>);
    let (records, prior): (Vec<SourceRecord>, Prior) = match single {
        Some(p) => (vec![p.record.clone()], (None, None, p.record.code.clone(), 0, None)),
        None => {
            // A case joined into another earlier in this page no longer exists.
            let Some(prior) = conn
                .prepare_cached(
                    "SELECT status, content_hash, portal_code, version, conflict FROM dossiers WHERE id = ?1",
                )?
                .query_row([dossier_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
                .optional()?
            else {
                return Ok(0);
            };
            (members_of(conn, dossier_id, fresh)?, prior)
        }
    };
    let brand_new = single.is_some();
    let (prev_status, prev_hash, prev_code, version, prev_conflict) = prior;
    let members: Vec<Member<'_>> = records.iter().map(|r| Member { record: r, kind: ctx.kind(&r.source) }).collect();
    let previous = prev_status.and_then(Status::from_code);
    let Some(outcome) = merge::merge(&members, &ctx.cutover, previous) else {
        return Ok(0);
    };
    let canonical = match outcome {
        MergeOutcome::Regression { canonical, from, to } => {
            let conflict = format!(
                "{}/{} would move the dossier from {from} back to {to}",
                canonical.authority.0, canonical.authority.1
            );
            if prev_conflict.as_deref() != Some(conflict.as_str()) {
                conn.prepare_cached("UPDATE dossiers SET conflict = ?2, updated_at = ?3 WHERE id = ?1")?
                    .execute(params![dossier_id, conflict, ts(now)])?;
                log.append(
                    conn,
                    now,
                    &Entry::new(
                        Level::Warn,
                        "conflict.regression",
                        format!("{conflict}: not pushed; correct the source and re-sync, or attest"),
                    )
                    .source(&canonical.authority.0)
                    .dossier(&prev_code),
                )?;
            }
            return Ok(0);
        }
        MergeOutcome::Ok(c) => c,
    };
    let (object, hash) = match single {
        Some(p) => (p.solo.object_text.clone(), p.solo.object_hash.clone()),
        None => {
            let text = payload::dossier_object(&canonical.state, None).to_string();
            let hash = sha256_hex(text.as_bytes());
            (text, hash)
        }
    };
    let code = canonical.portal_code.clone();
    let changed = prev_hash.as_deref() != Some(hash.as_str()) || prev_code != code;
    let version = if changed { version + 1 } else { version };
    if changed {
        conn.prepare_cached(
            "UPDATE dossiers SET portal_code = ?2, status = ?3, due_at = ?4, received_at = ?5, version = ?6,
                                 content_hash = ?7, canonical = ?8, conflict = NULL, updated_at = ?9 WHERE id = ?1",
        )?
        .execute(params![
            dossier_id,
            code,
            canonical.state.status.code(),
            canonical.state.due_at.map(ts),
            canonical.state.received_at.map(ts),
            version,
            hash,
            // The decision, not the state: the state is the members' and is recomputed from them.
            json!({
                "portal_code": canonical.portal_code,
                "authority": canonical.authority,
                "authority_reason": canonical.authority_reason,
                "other_codes": canonical.other_codes,
            })
            .to_string(),
            ts(now)
        ])?;
        let kind = if prev_hash.is_none() { "dossier.created" } else { "dossier.changed" };
        let mut msg = match single {
            Some(p) => format!(
                "new record {} ({}) starts the case; status {}",
                p.record.native_id, p.record.procedure.code, canonical.state.status
            ),
            None => format!("status {} ({})", canonical.state.status, canonical.authority_reason.describe()),
        };
        if prev_code != code && prev_hash.is_some() {
            msg.push_str(&format!("; portal code now {code} (was {prev_code}): earliest receipt"));
        }
        log.append(
            conn,
            now,
            &Entry::new(Level::Info, kind, msg)
                .source(&canonical.authority.0)
                .dossier(&code)
                .details(json!({"version": version, "members": records.iter().map(|r| format!("{}/{}", r.source, r.native_id)).collect::<Vec<_>>()})),
        )?;
    } else if prev_conflict.is_some() {
        conn.prepare_cached("UPDATE dossiers SET conflict = NULL WHERE id = ?1")?.execute([dossier_id])?;
    }
    if !ctx.pushes(&canonical.authority.0) {
        return Ok(0);
    }
    let mut written = 0;
    if changed || !outbox::is_settled(conn, &code, &hash)? {
        written += outbox::enqueue(
            conn,
            outbox::NewRow {
                dossier_id,
                code: &code,
                kind: outbox::Kind::Upsert,
                version,
                content_hash: &hash,
                payload: &object,
                deadline: canonical.state.due_at,
                fresh: brand_new,
            },
            now,
        )?;
    }
    let steps = match single {
        Some(p) => p.solo.steps.clone(),
        None => canonical.state.steps.iter().map(|s| outbox::StepItem::of(&code, s)).collect(),
    };
    for step in &steps {
        outbox::enqueue_progress(conn, &code, step, now)?;
    }
    // Every other code of the case must not stay live on the portal.
    for other in &canonical.other_codes {
        outbox::drop_pending_for(conn, other)?;
        if outbox::is_live(conn, other)?
            && let Some(dup) = records.iter().find(|r| &r.code == other)
        {
            written += outbox::enqueue_close(conn, dossier_id, version, dup, &code, now)?;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::merge::tests::rec;
    use crate::store::{open_writer, outbox};

    fn setup() -> (tempfile::TempDir, Connection, MergeCtx) {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("t.db")).unwrap();
        let sources = vec![
            ("city".to_string(), "city-igate".to_string(), SystemKind::City, PortalMode::Push),
            ("moj".to_string(), "moj".to_string(), SystemKind::Ministry, PortalMode::Push),
        ];
        register_sources(&conn, &sources).unwrap();
        let ctx = MergeCtx {
            sources: sources.iter().map(|(n, _, k, m)| (n.clone(), (*k, *m))).collect(),
            cutover: toml::from_str("[[cutover]]\nsource = \"moj\"\nprocedure = \"*\"\ndate = \"2026-01-15\"\n")
                .unwrap(),
        };
        (dir, conn, ctx)
    }

    fn page(source: &str, r: &SourceRecord) -> Page {
        let raw = serde_json::to_value(r).unwrap();
        Page { source: source.into(), items: vec![Incoming::mapped(r.clone(), &raw)], cursor: None }
    }

    fn now() -> Timestamp {
        "2026-03-09T01:00:00Z".parse().unwrap()
    }

    fn send_all(conn: &mut Connection) -> Vec<(String, outbox::Kind, String)> {
        let rows = outbox::next_batch(conn, now(), 100).unwrap();
        let mut sent = Vec::new();
        for row in rows {
            sent.push((row.code.clone(), row.kind, row.payload["TrangThaiHoSo"].as_str().unwrap_or("").to_string()));
            outbox::ack(conn, &row, now()).unwrap();
        }
        sent
    }

    #[test]
    fn a_code_pushed_before_an_earlier_member_appeared_is_closed_as_a_duplicate() {
        let (_d, mut conn, ctx) = setup();
        let mut moj = rec("moj", "M-7", "2026-02-03T02:00:00Z", "2026-02-05T02:00:00Z", Status::Processing);
        moj.reference_codes = vec!["C-7".into()];
        ingest_page(&mut conn, &ctx, page("moj", &moj), now()).unwrap();
        assert_eq!(send_all(&mut conn), vec![("M-7".to_string(), outbox::Kind::Upsert, "4".to_string())]);

        // The city copy, received a day earlier, shows up: its code becomes the case's live code.
        let city = rec("city", "C-7", "2026-02-02T02:00:00Z", "2026-02-02T02:00:00Z", Status::Received);
        let r = ingest_page(&mut conn, &ctx, page("city", &city), now()).unwrap();
        assert_eq!(r.new, 1);
        let mut sent = send_all(&mut conn);
        sent.sort();
        assert_eq!(
            sent,
            vec![
                ("C-7".to_string(), outbox::Kind::Upsert, "4".to_string()),
                ("M-7".to_string(), outbox::Kind::Close, "8".to_string()),
            ],
            "the live code carries the ministry's status; the earlier-pushed code is closed"
        );
        assert!(!outbox::is_live(&conn, "M-7").unwrap());
        assert!(outbox::is_live(&conn, "C-7").unwrap());
        let dossiers: i64 = conn.query_row("SELECT COUNT(*) FROM dossiers", [], |r| r.get(0)).unwrap();
        assert_eq!(dossiers, 1);
        let linked: i64 = conn
            .query_row("SELECT COUNT(*) FROM sync_log WHERE kind = 'dossier.linked' AND dossier = 'M-7'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(linked, 1, "the link is in the sync log with its rule");
        // Nothing more to send: the portal holds exactly the canonical state.
        assert!(send_all(&mut conn).is_empty());
    }

    #[test]
    fn an_end_state_that_would_regress_is_held_back_as_a_conflict() {
        let (_d, mut conn, ctx) = setup();
        let mut c = rec("city", "C-9", "2026-02-02T02:00:00Z", "2026-02-06T02:00:00Z", Status::Finished);
        c.finished_at = Some("2026-02-06T02:00:00Z".parse().unwrap());
        ingest_page(&mut conn, &ctx, page("city", &c), now()).unwrap();
        assert_eq!(send_all(&mut conn).len(), 1);
        let mut back = c.clone();
        back.status = Status::Processing;
        back.updated_at = "2026-02-07T02:00:00Z".parse().unwrap();
        let r = ingest_page(&mut conn, &ctx, page("city", &back), now()).unwrap();
        assert_eq!((r.changed, r.enqueued), (1, 0));
        assert!(send_all(&mut conn).is_empty(), "a regression is never pushed");
        let conflict: Option<String> = conn.query_row("SELECT conflict FROM dossiers", [], |r| r.get(0)).unwrap();
        assert!(conflict.unwrap().contains("back to 4"));
        let logged: i64 = conn
            .query_row("SELECT COUNT(*) FROM sync_log WHERE kind = 'conflict.regression'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(logged, 1);
    }

    #[test]
    fn a_solo_case_prepared_off_the_writer_is_what_the_merge_decides() {
        let (_d, _conn, ctx) = setup();
        let mut r = rec("moj", "M-5", "2026-02-03T02:00:00Z", "2026-02-05T02:00:00Z", Status::Processing);
        r.reference_codes = vec!["C-5".into()];
        r.steps.push(crate::core::record::Step {
            actor: Some("Trần Thị B".into()),
            title: None,
            department: None,
            content: Some("Thẩm định".into()),
            at: "2026-02-04T02:00:00Z".parse().unwrap(),
            status: Some(Status::Processing),
            started_at: None,
            deadline: None,
        });
        let solo = Solo::of(&r);
        let members = [Member { record: &r, kind: ctx.kind("moj") }];
        let Some(MergeOutcome::Ok(c)) = merge::merge(&members, &ctx.cutover, None) else { panic!() };
        assert_eq!(solo.object_text, payload::dossier_object(&c.state, None).to_string());
        let steps: Vec<String> = c.state.steps.iter().map(|s| outbox::StepItem::of(&c.portal_code, s).text).collect();
        assert_eq!(solo.steps.iter().map(|s| s.text.clone()).collect::<Vec<_>>(), steps);
    }

    #[test]
    fn an_unchanged_payload_is_skipped_and_a_bad_one_quarantined_once() {
        let (_d, mut conn, ctx) = setup();
        let c = rec("city", "C-1", "2026-02-02T02:00:00Z", "2026-02-02T02:00:00Z", Status::Received);
        assert_eq!(ingest_page(&mut conn, &ctx, page("city", &c), now()).unwrap().new, 1);
        assert_eq!(ingest_page(&mut conn, &ctx, page("city", &c), now()).unwrap().unchanged, 1);
        let bad = Page {
            source: "city".into(),
            items: vec![Incoming::bad(
                Some("x1".into()),
                "field `status`: bad".into(),
                &serde_json::json!({"id": "x1"}),
            )],
            cursor: Some(("2026-02-02T02:00:00Z".parse().unwrap(), "x1".into())),
        };
        assert_eq!(ingest_page(&mut conn, &ctx, bad.clone(), now()).unwrap().quarantined, 1);
        assert_eq!(
            ingest_page(&mut conn, &ctx, bad, now()).unwrap().quarantined,
            0,
            "the same bad payload is counted once"
        );
        let seen: i64 = conn.query_row("SELECT seen FROM quarantine", [], |r| r.get(0)).unwrap();
        assert_eq!(seen, 2);
        assert!(cursor(&conn, "city").unwrap().is_some(), "a page of bad records still advances the cursor");
    }
}
