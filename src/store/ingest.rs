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
use crate::core::deadline::{DeadlineRules, DueCheck};
use crate::core::descriptor::SystemKind;
use crate::core::link::{self, Candidate};
use crate::core::merge::{self, LinkRule, Member, MergeOutcome};
use crate::core::payload;
use crate::core::record::SourceRecord;
use crate::core::status::Status;

/// What the merge needs to know about the configured sources.
#[derive(Debug, Clone, Default)]
pub struct MergeCtx {
    pub sources: HashMap<String, (SystemKind, PortalMode)>,
    pub cutover: CutoverTable,
    /// Linking by applicant identity, where the configuration enables it.
    pub identity: Option<crate::core::identity::IdentityLinking>,
    /// The bridge's own due-time reckoning; `None` reckons nothing (some store tests).
    pub deadlines: Option<DeadlineRules>,
}

impl MergeCtx {
    pub(crate) fn kind(&self, source: &str) -> SystemKind {
        self.sources.get(source).map(|s| s.0).unwrap_or(SystemKind::City)
    }
    fn pushes(&self, source: &str) -> bool {
        self.mode(source) == Some(PortalMode::Push)
    }
    fn mode(&self, source: &str) -> Option<PortalMode> {
        self.sources.get(source).map(|s| s.1)
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
    /// sync): prepared on the poller's thread so that the writer only has to store it; left for the
    /// writer to prepare when the record is most likely in a case already (a stored payload mapped
    /// again), where preparing it would be wasted work on most records.
    solo: std::cell::OnceCell<Solo>,
}

impl Prepared {
    /// The record's case on its own: prepared before, or now.
    pub fn solo(&self, ctx: &MergeCtx, now: Timestamp) -> &Solo {
        self.solo.get_or_init(|| Solo::of(&self.record, ctx, now))
    }
}

/// The case of a record that is its only member, decided in full: the dossier row, the portal
/// object and the progress items.
#[derive(Debug, Clone)]
pub struct Solo {
    pub object_text: String,
    pub object_hash: String,
    pub steps: Vec<outbox::StepItem>,
    pub status: u8,
    pub due_at: Option<String>,
    pub received_at: Option<String>,
    /// The merge's decision as `dossiers.canonical` stores it.
    pub decision: String,
    pub due: DueColumns,
    pub check: Option<DueCheck>,
}

/// A dossier row's due-time columns, from its reckoning (migration 8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DueColumns {
    pub computed_due: Option<String>,
    pub portal_due: Option<String>,
    pub watch_due: Option<String>,
    pub flags: Option<String>,
}

impl DueColumns {
    fn of(check: Option<&DueCheck>) -> DueColumns {
        check.map_or_else(DueColumns::default, |c| DueColumns {
            computed_due: c.computed_due.map(ts),
            portal_due: c.portal_due.map(ts),
            watch_due: c.watch_due().map(ts),
            flags: c.flags(),
        })
    }
}

/// The reckoning of a canonical state; where the sources give no due time, the bridge's own goes
/// into the state, so that it is what the portal gets.
pub(crate) fn reckon(ctx: &MergeCtx, state: &mut SourceRecord, now: Timestamp) -> Option<DueCheck> {
    let check = ctx.deadlines.as_ref()?.check(state, now);
    if state.due_at.is_none() {
        state.due_at = check.pushed_due;
    }
    Some(check)
}

/// The delivery order's key (earliest deadline first): the due time the portal judges against.
fn edf_key(check: Option<&DueCheck>, state: &SourceRecord) -> Option<Timestamp> {
    check.and_then(|c| c.portal_due).or(state.due_at)
}

/// Log the findings of a reckoning that were not already stored (`previous`): a due time in
/// doubt is written once, when it appears, not at every merge.
fn log_findings(
    conn: &Connection,
    log: &mut synclog::Chain,
    now: Timestamp,
    code: &str,
    source: &str,
    check: Option<&DueCheck>,
    previous: Option<&str>,
) -> anyhow::Result<()> {
    let Some(check) = check else { return Ok(()) };
    for f in check.new_findings(previous).filter(|f| f.is_warning()) {
        log.append(
            conn,
            now,
            &Entry::new(Level::Warn, f.log_kind(), f.describe(check))
                .source(source)
                .dossier(code)
                .details(json!({"finding": f, "source_due": check.source_due.map(ts), "computed_due": check.computed_due.map(ts), "portal_due": check.portal_due.map(ts)})),
        )?;
    }
    Ok(())
}

impl Solo {
    fn of(record: &SourceRecord, ctx: &MergeCtx, now: Timestamp) -> Solo {
        // The merge of one member: the cutover table and the system's kind play no part.
        let members = [Member { record, kind: SystemKind::City }];
        let canonical = match merge::merge(&members, &CutoverTable::default(), None) {
            Some(MergeOutcome::Ok(c)) => c,
            // A merge of one member with no previous state is always Ok; this is never taken.
            _ => merge::Canonical {
                portal_code: record.code.clone(),
                authority: (record.source.clone(), record.native_id.clone()),
                authority_reason: merge::AuthorityReason::Sole,
                state: record.clone(),
                other_codes: Vec::new(),
            },
        };
        let mut canonical = canonical;
        let check = reckon(ctx, &mut canonical.state, now);
        let state = &canonical.state;
        let object_text = payload::dossier_object(state, None).to_string();
        Solo {
            due: DueColumns::of(check.as_ref()),
            check,
            object_hash: sha256_hex(object_text.as_bytes()),
            object_text,
            steps: state.steps.iter().map(|s| outbox::StepItem::of(&state.code, s)).collect(),
            status: state.status.code(),
            due_at: state.due_at.map(ts),
            received_at: state.received_at.map(ts),
            decision: decision(&canonical),
        }
    }
}

/// The merge's decision as stored in `dossiers.canonical`: not the state, which is the members'
/// and is recomputed from them.
fn decision(c: &merge::Canonical) -> String {
    json!({
        "portal_code": c.portal_code,
        "authority": c.authority,
        "authority_reason": c.authority_reason,
        "other_codes": c.other_codes,
    })
    .to_string()
}

#[derive(Debug, Clone)]
pub struct BadRecord {
    pub native_id: Option<String>,
    pub reason: String,
    pub raw_text: String,
    pub raw_hash: String,
}

impl Incoming {
    /// A record that mapped, and its payload as received.
    /// `now`: when it is prepared (a case of its own is reckoned as of then).
    pub fn mapped(record: SourceRecord, raw_text: String, ctx: &MergeCtx, now: Timestamp) -> Incoming {
        Incoming::remapped(record, raw_text).prepared(ctx, now)
    }

    /// A mapped record with its case on its own prepared now (on the caller's thread, not the
    /// writer's); anything else as it is.
    pub fn prepared(self, ctx: &MergeCtx, now: Timestamp) -> Incoming {
        if let Incoming::Mapped(p) = &self {
            p.solo(ctx, now);
        }
        self
    }

    /// A stored payload that mapped again: its case on its own is prepared by the writer, only if
    /// the record turns out to start one.
    pub fn remapped(record: SourceRecord, raw_text: String) -> Incoming {
        let raw_hash = sha256_hex(raw_text.as_bytes());
        let mapped_json = serde_json::to_string(&record).unwrap_or_default();
        Incoming::Mapped(Box::new(Prepared { record, raw_text, raw_hash, mapped_json, solo: Default::default() }))
    }

    /// A record that did not map, and why.
    pub fn bad(native_id: Option<String>, reason: String, raw_text: String) -> Incoming {
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
    /// Stored payloads mapped again (a re-sync, or a quarantine retry): a payload stored before
    /// is stored again when the current descriptor maps it differently.
    pub remap: bool,
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
    ingest(conn, ctx, &page, now)
}

/// `ingest_page`, leaving the page to the caller: a poller hands it back to its own thread to be
/// freed, sparing the writer (freeing a page of records is a few percent of its time).
pub fn ingest(conn: &mut Connection, ctx: &MergeCtx, page: &Page, now: Timestamp) -> anyhow::Result<IngestReport> {
    let tx = conn.transaction()?;
    let mut report = IngestReport::default();
    // Whether any record of this source waits in quarantine: if not, storing a record has no
    // quarantined version to resolve (one query a page instead of one a record).
    let mut quarantine_open: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM quarantine WHERE source = ?1 AND resolved_at IS NULL)")?
        .query_row([&page.source], |r| r.get(0))?;
    let mut log = synclog::Chain::default();
    // Phase 1: every changed record is stored before any is linked, so that linking sees the codes
    // records have now, not the ones they had. A new record is only noted here: phase 2 writes it
    // once, already placed in its case, rather than writing it and then rewriting it with its case.
    let mut touched: Vec<(&Prepared, Stored)> = Vec::new();
    let mut new_at: HashMap<String, usize> = HashMap::new();
    for item in &page.items {
        let p = match item {
            Incoming::Bad(b) => {
                quarantine_open = true;
                if quarantine(&tx, &mut log, &page.source, b, now)? {
                    report.quarantined += 1;
                }
                continue;
            }
            Incoming::Mapped(p) => p,
        };
        // The same record twice in one page (a source's bug): the later copy wins.
        if let Some(&i) = new_at.get(&p.record.native_id) {
            if touched[i].0.raw_hash == p.raw_hash {
                report.unchanged += 1;
            } else {
                touched[i].0 = p;
            }
            continue;
        }
        let stored = match existing(&tx, &p.record)? {
            None => Stored::New,
            Some((hash, ..))
                if hash == p.raw_hash && !(page.remap && mapped_differs(&tx, &p.record, &p.mapped_json)?) =>
            {
                report.unchanged += 1;
                continue;
            }
            Some((_, e, old_codes)) => {
                store_changed(&tx, ctx, p, old_codes, now)?;
                Stored::Changed(e)
            }
        };
        if quarantine_open {
            resolve_quarantined(&tx, &p.record, now)?;
        }
        if stored == Stored::New {
            report.new += 1;
            new_at.insert(p.record.native_id.clone(), touched.len());
        } else {
            report.changed += 1;
        }
        touched.push((p, stored));
    }
    // Phase 2: link each record into its case, in page order. Cases created by this page whose
    // one member is the record that created them have a known prior state (nothing decided,
    // nothing queued or acknowledged), which spares the look-ups.
    let mut dossiers = BTreeSet::new();
    let mut created: HashMap<i64, usize> = HashMap::new();
    for (i, (p, stored)) in touched.iter().enumerate() {
        let linked = link(&tx, &mut log, ctx, p, *stored, now)?;
        if *stored == Stored::New {
            insert_new(&tx, p, &linked, now)?;
        } else if let Some(rule) = linked.moved {
            tx.prepare_cached(
                "UPDATE source_records SET dossier_id = ?3, link_rule = ?4 WHERE source = ?1 AND native_id = ?2",
            )?
            .execute(params![p.record.source, p.record.native_id, linked.id, rule.as_str()])?;
        }
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
    // A record that created its case is told by the case's own entry.
    let creators: std::collections::HashSet<usize> = created.values().copied().collect();
    for (i, (p, stored)) in touched.iter().enumerate() {
        if !creators.contains(&i) {
            log_record(&tx, &mut log, &p.record, *stored, now)?;
        }
    }
    let fresh: HashMap<(&str, &str), &SourceRecord> =
        touched.iter().map(|(p, _)| ((p.record.source.as_str(), p.record.native_id.as_str()), &p.record)).collect();
    for id in dossiers {
        report.enqueued += match created.get(&id) {
            Some(&i) => started(&tx, &mut log, ctx, id, touched[i].0, now)?,
            None => recompute_with(&tx, &mut log, ctx, id, now, &fresh, false)?,
        };
    }
    if let Some((t, id)) = &page.cursor {
        tx.prepare_cached(
            "INSERT INTO cursors (source, updated_at, native_id, committed_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(source) DO UPDATE SET updated_at = excluded.updated_at, native_id = excluded.native_id,
                                               committed_at = excluded.committed_at",
        )?
        .execute(params![page.source, ts(*t), id, ts(now)])?;
    }
    crate::failpoint::hit("store.ingest.before_commit");
    tx.commit()?;
    Ok(report)
}

/// The unresolved quarantined payloads of a source (the newest per record), as stored and parsed,
/// to map again after a descriptor fix.
pub fn pending_quarantine(conn: &Connection, source: &str) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT raw FROM quarantine q WHERE source = ?1 AND resolved_at IS NULL
           AND last_at = (SELECT MAX(last_at) FROM quarantine q2
                          WHERE q2.source = q.source AND q2.native_id = q.native_id AND q2.resolved_at IS NULL)
         ORDER BY last_at",
    )?;
    let raws = stmt.query_map([source], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
    Ok(raws.into_iter().filter_map(|r| serde_json::from_str(&r).ok().map(|v| (r, v))).collect())
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
    /// With what the record was before.
    Changed(Existing),
}

/// What a record was before this page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Existing {
    status: i64,
    dossier_id: Option<i64>,
}

/// A stored record's payload hash, what it was, and the codes it was filed under.
type Found = (String, Existing, Vec<String>);

/// The stored record of the same id, if any.
fn existing(conn: &Connection, rec: &SourceRecord) -> anyhow::Result<Option<Found>> {
    let row: Option<(String, Existing, String, String)> = conn
        .prepare_cached(
            "SELECT raw_hash, status, dossier_id, code, ref_codes FROM source_records WHERE source = ?1 AND native_id = ?2",
        )?
        .query_row(params![rec.source, rec.native_id], |r| {
            Ok((r.get(0)?, Existing { status: r.get(1)?, dossier_id: r.get(2)? }, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    Ok(row.map(|(hash, e, code, refs)| {
        let mut codes: Vec<String> = serde_json::from_str(&refs).unwrap_or_default();
        codes.push(code);
        (hash, e, codes)
    }))
}

/// Whether a stored record was mapped differently from `mapped`.
fn mapped_differs(conn: &Connection, rec: &SourceRecord, mapped: &str) -> anyhow::Result<bool> {
    let stored: String = conn
        .prepare_cached("SELECT mapped FROM source_records WHERE source = ?1 AND native_id = ?2")?
        .query_row(params![rec.source, rec.native_id], |r| r.get(0))?;
    Ok(stored != mapped)
}

/// Store a new version of a stored record, filed under the codes it has now instead of `old_codes`;
/// its case is decided by `link` afterwards.
fn store_changed(
    conn: &Connection,
    ctx: &MergeCtx,
    p: &Prepared,
    mut old_codes: Vec<String>,
    now: Timestamp,
) -> anyhow::Result<()> {
    let rec = &p.record;
    // The identity it was filed under, from what it was (the number is not kept beside it).
    if let Some(l) = &ctx.identity
        && let Some(code) = l.code_of(&load_record(conn, &rec.source, &rec.native_id)?)
    {
        old_codes.push(code);
    }
    write_record(conn, p, None, now)?;
    let mut forget =
        conn.prepare_cached("DELETE FROM record_codes WHERE code = ?1 AND source = ?2 AND native_id = ?3")?;
    for code in &old_codes {
        forget.execute(params![code, rec.source, rec.native_id])?;
    }
    write_codes(conn, rec, ctx.identity.as_ref().and_then(|l| l.code_of(rec)).as_deref())
}

/// Store a record seen for the first time, already placed in its case.
fn insert_new(conn: &Connection, p: &Prepared, linked: &Linked, now: Timestamp) -> anyhow::Result<()> {
    write_record(conn, p, Some((linked.id, linked.moved.unwrap_or(LinkRule::First))), now)?;
    write_codes(conn, &p.record, linked.identity.as_deref())
}

/// Insert a record (with its case, `placed`) or update a stored one's content (its case is left
/// for `link` to change).
fn write_record(
    conn: &Connection,
    p: &Prepared,
    placed: Option<(i64, LinkRule)>,
    now: Timestamp,
) -> anyhow::Result<()> {
    let rec = &p.record;
    conn.prepare_cached(
        "INSERT INTO source_records (source, native_id, code, ref_codes, procedure, status, received_at, updated_at,
                                     raw_hash, raw, mapped, dossier_id, link_rule, first_seen_at, last_changed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14)
         ON CONFLICT(source, native_id) DO UPDATE SET code = excluded.code, ref_codes = excluded.ref_codes,
            procedure = excluded.procedure, status = excluded.status, received_at = excluded.received_at,
            updated_at = excluded.updated_at, raw_hash = excluded.raw_hash, raw = excluded.raw,
            mapped = excluded.mapped, last_changed_at = excluded.last_changed_at",
    )?
    .execute(params![
        rec.source,
        rec.native_id,
        rec.code,
        serde_json::to_string(&rec.reference_codes)?,
        rec.procedure.code,
        rec.status.code(),
        rec.arrived_at().map(ts),
        ts(rec.updated_at),
        p.raw_hash,
        p.raw_text,
        p.mapped_json,
        placed.map(|p| p.0),
        placed.map(|p| p.1.as_str()),
        ts(now)
    ])?;
    Ok(())
}

/// Every code a record is known by or points at, and its identity pseudo-code where linking by
/// identity covers it, for `link` to find.
fn write_codes(conn: &Connection, rec: &SourceRecord, identity: Option<&str>) -> anyhow::Result<()> {
    let mut stmt =
        conn.prepare_cached("INSERT OR IGNORE INTO record_codes (code, source, native_id) VALUES (?1, ?2, ?3)")?;
    for code in rec.all_codes() {
        stmt.execute(params![code, rec.source, rec.native_id])?;
    }
    if let Some(code) = identity {
        stmt.execute(params![code, rec.source, rec.native_id])?;
    }
    Ok(())
}

/// A record that maps again supersedes its quarantined versions.
fn resolve_quarantined(conn: &Connection, rec: &SourceRecord, now: Timestamp) -> anyhow::Result<()> {
    conn.prepare_cached(
        "UPDATE quarantine SET resolved_at = ?3 WHERE source = ?1 AND native_id = ?2 AND resolved_at IS NULL",
    )?
    .execute(params![rec.source, rec.native_id, ts(now)])?;
    Ok(())
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
        Stored::Changed(old) if old.status != i64::from(rec.status.code()) => {
            ("record.changed", format!("record {} status {} → {}", rec.native_id, old.status, rec.status))
        }
        Stored::Changed(_) => ("record.changed", format!("record {} changed, status {}", rec.native_id, rec.status)),
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

/// Where `link` puts a record.
struct Linked {
    id: i64,
    /// The record started a case of its own.
    created: bool,
    /// The record must be (re)written into case `id` by this rule; `None` when it stays where it
    /// was.
    moved: Option<LinkRule>,
    /// Cases joined into `id` because this record showed them to be the same.
    joined: Vec<i64>,
    /// The record's identity pseudo-code, where linking by identity covers it.
    identity: Option<String>,
}

/// The case of a record (stored if it changed, about to be stored if it is new): gather the
/// stored records sharing a code or its identity, let `core::link::decide` choose, and carry that
/// out, creating the case or joining cases; the caller writes the record's own `dossier_id`.
fn link(
    conn: &Connection,
    log: &mut synclog::Chain,
    ctx: &MergeCtx,
    p: &Prepared,
    stored: Stored,
    now: Timestamp,
) -> anyhow::Result<Linked> {
    let rec = &p.record;
    let current = match stored {
        Stored::New => None,
        Stored::Changed(e) => e.dossier_id,
    };
    // Other records sharing any code with this one (its own code or a reference), then those
    // filed under the same identity; core::link decides which count and where the record goes.
    let linking = ctx.identity.as_ref();
    let identity = linking.and_then(|l| l.code_of(rec));
    let mut candidates: Vec<Candidate> = Vec::new();
    {
        let mut stmt = conn.prepare_cached(
            // A subquery, not a join: the bundled SQLite re-prepared the join form of this
            // statement at every execution (a sixth of the writer's time in a first sync), which
            // it does not do for this one.
            "SELECT dossier_id, source, native_id, code, received_at FROM source_records
             WHERE dossier_id IS NOT NULL
               AND (source, native_id) IN (SELECT source, native_id FROM record_codes WHERE code = ?1)",
        )?;
        let mut split = conn.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM link_splits WHERE source = ?1 AND native_id = ?2 AND other_source = ?3
                                                      AND other_native_id = ?4)
                 OR EXISTS (SELECT 1 FROM link_splits WHERE source = ?3 AND native_id = ?4 AND other_source = ?1
                                                      AND other_native_id = ?2)",
        )?;
        let codes = rec.all_codes().map(|c| (c, false)).chain(identity.as_deref().map(|c| (c, true)));
        for (code, by_identity) in codes {
            let rows = stmt.query_map(params![code], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get(3)?, r.get(4)?))
            })?;
            for row in rows {
                let (case, source, native_id, code, received): (i64, String, String, String, Option<String>) = row?;
                // Listed once, by the first code that found it (codes before the identity).
                if candidates.iter().any(|c| c.source == source && c.native_id == native_id) {
                    continue;
                }
                let itself = source == rec.source && native_id == rec.native_id;
                let split =
                    !itself && split.query_row(params![rec.source, rec.native_id, source, native_id], |r| r.get(0))?;
                candidates.push(Candidate {
                    case,
                    source,
                    native_id,
                    code,
                    received_at: received.and_then(|t| t.parse().ok()),
                    by_identity,
                    split,
                });
            }
        }
    }
    let decision = link::decide(rec, current, &candidates, linking);
    let Some(target) = decision.case else {
        // Only a new record starts a case (a stored one is in one already): written once, final.
        let s = p.solo(ctx, now);
        conn.prepare_cached(
            "INSERT INTO dossiers (portal_code, status, due_at, received_at, version, content_hash, canonical,
                                   created_at, updated_at, computed_due, portal_due, watch_due, due_flags)
             VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            rec.code,
            s.status,
            s.due_at,
            s.received_at,
            s.object_hash,
            s.decision,
            ts(now),
            s.due.computed_due,
            s.due.portal_due,
            s.due.watch_due,
            s.due.flags
        ])?;
        let id = conn.last_insert_rowid();
        return Ok(Linked { id, created: true, moved: Some(LinkRule::First), joined: Vec::new(), identity });
    };
    let moved = decision.moved.map(|(rule, _)| rule);
    if let Some(rule) = moved.filter(|r| *r != LinkRule::First) {
        let target_code: String =
            conn.prepare_cached("SELECT portal_code FROM dossiers WHERE id = ?1")?.query_row([target], |r| r.get(0))?;
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
    // Join any other case this record shows to be the same one.
    for &other in &decision.join {
        conn.prepare_cached("UPDATE source_records SET dossier_id = ?1 WHERE dossier_id = ?2")?
            .execute(params![target, other])?;
        conn.prepare_cached("UPDATE attestations SET dossier_id = ?1 WHERE dossier_id = ?2")?
            .execute(params![target, other])?;
        // Found by code (the outbox has no index by case): its rows carry its members' codes.
        conn.prepare_cached(
            "UPDATE outbox SET dossier_id = ?1
             WHERE code IN (SELECT code FROM source_records WHERE dossier_id = ?1) AND dossier_id = ?2",
        )?
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
    Ok(Linked { id: target, created: false, moved, joined: decision.join, identity })
}

/// What `split` did: the case the record left and the case it now is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Split {
    pub from_case: String,
    pub new_case: String,
    pub apart_from: Vec<String>,
}

/// An operator's correction of a wrong link: the record leaves its case for a case of its own,
/// and linking never joins it with the case's other members again. Both cases are merged again
/// and queued for the portal; the sync log names who split it and why.
pub fn split(
    conn: &mut Connection,
    ctx: &MergeCtx,
    source: &str,
    native_id: &str,
    by: &str,
    reason: &str,
    now: Timestamp,
) -> anyhow::Result<Split> {
    let tx = conn.transaction()?;
    let (dossier_id, code): (Option<i64>, String) = tx
        .query_row(
            "SELECT dossier_id, code FROM source_records WHERE source = ?1 AND native_id = ?2",
            [source, native_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .ok_or_else(|| anyhow::anyhow!("no record {source}/{native_id} in the store"))?;
    let old = dossier_id.ok_or_else(|| anyhow::anyhow!("{source}/{native_id} belongs to no case"))?;
    let others: Vec<(String, String)> = tx
        .prepare("SELECT source, native_id FROM source_records WHERE dossier_id = ?1 AND NOT (source = ?2 AND native_id = ?3)")?
        .query_map(params![old, source, native_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(!others.is_empty(), "{source}/{native_id} is alone in its case: there is nothing to split");
    let from_case: String = tx.query_row("SELECT portal_code FROM dossiers WHERE id = ?1", [old], |r| r.get(0))?;
    tx.execute(
        "INSERT INTO dossiers (portal_code, created_at, updated_at) VALUES (?1, ?2, ?2)",
        params![code, ts(now)],
    )?;
    let new = tx.last_insert_rowid();
    tx.execute(
        "UPDATE source_records SET dossier_id = ?3, link_rule = ?4 WHERE source = ?1 AND native_id = ?2",
        params![source, native_id, new, LinkRule::Split.as_str()],
    )?;
    for (s, n) in &others {
        tx.execute(
            "INSERT OR IGNORE INTO link_splits (source, native_id, other_source, other_native_id, split_by, reason, split_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![source, native_id, s, n, by, reason, ts(now)],
        )?;
    }
    let apart_from: Vec<String> = others.iter().map(|(s, n)| format!("{s}/{n}")).collect();
    let mut log = synclog::Chain::default();
    let mut entry = Entry::new(
        Level::Warn,
        "dossier.split",
        format!("{source}/{native_id} (code {code}) split out of case {from_case}: {reason}"),
    )
    .source(source)
    .dossier(&from_case)
    .details(json!({"record": format!("{source}/{native_id}"), "apart_from": apart_from, "reason": reason}));
    entry.actor = by.to_string();
    log.append(&tx, now, &entry)?;
    for id in [old, new] {
        recompute_with(&tx, &mut log, ctx, id, now, &HashMap::new(), false)?;
    }
    let code_of =
        |id: i64| tx.query_row("SELECT portal_code FROM dossiers WHERE id = ?1", [id], |r| r.get::<_, String>(0));
    let result = Split { from_case: code_of(old)?, new_case: code_of(new)?, apart_from };
    tx.commit()?;
    Ok(result)
}

/// Recompute a case's canonical dossier and queue what the portal must learn. Returns how many
/// outbox rows were written.
/// `force`: queue the case for the portal even if the portal acknowledged this very state (an
/// operator's re-sync of the dossier: the portal's copy is in doubt).
pub fn recompute(
    conn: &Connection,
    ctx: &MergeCtx,
    dossier_id: i64,
    now: Timestamp,
    force: bool,
) -> anyhow::Result<u32> {
    recompute_with(conn, &mut synclog::Chain::default(), ctx, dossier_id, now, &HashMap::new(), force)
}

/// `recompute`, taking the members just stored from memory rather than parsing them back.
/// The members of a case, from memory where this page just stored them.
pub(crate) fn members_of(
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

/// The merge of a case's members with an operator's attestation applied: the one rule by which
/// both the recompute and the verify sweep's read-back decide a case.
pub(crate) fn merge_case(
    conn: &Connection,
    ctx: &MergeCtx,
    dossier_id: i64,
    records: &[SourceRecord],
    previous: Option<Status>,
) -> anyhow::Result<Option<MergeOutcome>> {
    let members: Vec<Member<'_>> = records.iter().map(|r| Member { record: r, kind: ctx.kind(&r.source) }).collect();
    let Some(outcome) = merge::merge(&members, &ctx.cutover, previous) else {
        return Ok(None);
    };
    Ok(Some(match super::attest::active(conn, dossier_id)? {
        Some(a) => a.over(outcome, previous),
        None => outcome,
    }))
}

/// A case started by a record of this page and still its only member: the dossier row was
/// written final by `link`; what remains is the log entry and the portal's work.
fn started(
    conn: &Connection,
    log: &mut synclog::Chain,
    ctx: &MergeCtx,
    dossier_id: i64,
    p: &Prepared,
    now: Timestamp,
) -> anyhow::Result<u32> {
    let (rec, s) = (&p.record, p.solo(ctx, now));
    log.append(
        conn,
        now,
        &Entry::new(
            Level::Info,
            "dossier.created",
            format!(
                "new record {} ({}) starts the case; status {}",
                rec.native_id,
                rec.procedure.code,
                Status::from_code(s.status).unwrap_or(rec.status)
            ),
        )
        .source(&rec.source)
        .dossier(&rec.code)
        .details(json!({"version": 1, "members": [format!("{}/{}", rec.source, rec.native_id)]})),
    )?;
    log_findings(conn, log, now, &rec.code, &rec.source, s.check.as_ref(), None)?;
    if !ctx.pushes(&rec.source) {
        return Ok(0);
    }
    let written = outbox::enqueue(
        conn,
        outbox::NewRow {
            dossier_id,
            code: &rec.code,
            kind: outbox::Kind::Upsert,
            version: 1,
            content_hash: &s.object_hash,
            payload: &s.object_text,
            deadline: edf_key(s.check.as_ref(), rec),
            fresh: true,
            force: false,
        },
        now,
    )?;
    for step in &s.steps {
        outbox::enqueue_progress(conn, &rec.code, step, now)?;
    }
    Ok(written)
}

fn recompute_with(
    conn: &Connection,
    log: &mut synclog::Chain,
    ctx: &MergeCtx,
    dossier_id: i64,
    now: Timestamp,
    fresh: &HashMap<(&str, &str), &SourceRecord>,
    force: bool,
) -> anyhow::Result<u32> {
    // A case joined into another earlier in this page no longer exists.
    let Some((prior, prior_due)) = conn
        .prepare_cached(
            "SELECT status, content_hash, portal_code, version, conflict,
                    computed_due, portal_due, watch_due, due_flags FROM dossiers WHERE id = ?1",
        )?
        .query_row([dossier_id], |r| {
            Ok((
                (
                    r.get::<_, Option<u8>>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ),
                DueColumns { computed_due: r.get(5)?, portal_due: r.get(6)?, watch_due: r.get(7)?, flags: r.get(8)? },
            ))
        })
        .optional()?
    else {
        return Ok(0);
    };
    let records = members_of(conn, dossier_id, fresh)?;
    let (prev_status, prev_hash, prev_code, version, prev_conflict) = prior;
    let previous = prev_status.and_then(Status::from_code);
    let Some(outcome) = merge_case(conn, ctx, dossier_id, &records, previous)? else {
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
    let mut canonical = canonical;
    let check = reckon(ctx, &mut canonical.state, now);
    let object = payload::dossier_object(&canonical.state, None).to_string();
    let hash = sha256_hex(object.as_bytes());
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
            decision(&canonical),
            ts(now)
        ])?;
        let kind = if prev_hash.is_none() { "dossier.created" } else { "dossier.changed" };
        let mut msg = format!("status {} ({})", canonical.state.status, canonical.authority_reason.describe());
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
    // Apart from the state, the reckoning changes with the procedures table and the calendar (a
    // reload, then a re-sync) and, for an open dossier, with time.
    let due = DueColumns::of(check.as_ref());
    if due != prior_due {
        conn.prepare_cached(
            "UPDATE dossiers SET computed_due = ?2, portal_due = ?3, due_flags = ?5,
                    watch_state = CASE WHEN watch_due IS ?4 THEN watch_state ELSE 0 END, watch_due = ?4
             WHERE id = ?1",
        )?
        .execute(params![dossier_id, due.computed_due, due.portal_due, due.watch_due, due.flags])?;
        log_findings(conn, log, now, &code, &canonical.authority.0, check.as_ref(), prior_due.flags.as_deref())?;
    }
    if !ctx.pushes(&canonical.authority.0) {
        return close_behind_verified(conn, ctx, dossier_id, version, &canonical, &records, now);
    }
    let mut written = 0;
    if changed || force || !outbox::is_settled(conn, &code, &hash)? {
        written += outbox::enqueue(
            conn,
            outbox::NewRow {
                dossier_id,
                code: &code,
                kind: outbox::Kind::Upsert,
                version,
                content_hash: &hash,
                payload: &object,
                deadline: edf_key(check.as_ref(), &canonical.state),
                fresh: false,
                force,
            },
            now,
        )?;
    }
    for step in canonical.state.steps.iter().map(|s| outbox::StepItem::of(&code, s)) {
        outbox::enqueue_progress(conn, &code, &step, now)?;
    }
    // Every other code of the case must not stay live on the portal.
    for other in &canonical.other_codes {
        if outbox::retire(conn, other)?
            && let Some(dup) = records.iter().find(|r| &r.code == other)
        {
            written += outbox::enqueue_close(conn, dossier_id, version, dup, &code, now)?;
        }
    }
    Ok(written)
}

/// A case whose authoritative system writes the portal itself (`verify`): the live copy is the one
/// it writes, under its own code. A copy the bridge pushed earlier under another code of the case
/// (typically the city's, before the ministry took the procedure over) is a duplicate the bridge
/// closes, naming that code. (`off`: nobody writes the case; nothing to do.)
fn close_behind_verified(
    conn: &Connection,
    ctx: &MergeCtx,
    dossier_id: i64,
    version: i64,
    canonical: &merge::Canonical,
    records: &[SourceRecord],
    now: Timestamp,
) -> anyhow::Result<u32> {
    let (source, native_id) = (&canonical.authority.0, &canonical.authority.1);
    let Some(authority) = records.iter().find(|r| &r.source == source && &r.native_id == native_id) else {
        return Ok(0);
    };
    if ctx.mode(source) != Some(PortalMode::Verify) {
        return Ok(0);
    }
    let mut written = 0;
    for dup in records.iter().filter(|r| r.code != authority.code) {
        if outbox::retire(conn, &dup.code)? {
            written += outbox::enqueue_close(conn, dossier_id, version, dup, &authority.code, now)?;
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
        (dir, conn, ctx())
    }

    /// A city and a ministry (migrated on 2026-01-15), with the shipped calendar and time limits.
    fn ctx() -> MergeCtx {
        let calendar = crate::core::calendar::Calendar::parse(include_str!("../../config/calendar.toml")).unwrap();
        let procedures = toml::from_str(include_str!("../../config/procedures.toml")).unwrap();
        MergeCtx {
            sources: [
                ("city".to_string(), (SystemKind::City, PortalMode::Push)),
                ("moj".to_string(), (SystemKind::Ministry, PortalMode::Push)),
            ]
            .into_iter()
            .collect(),
            cutover: toml::from_str("[[cutover]]\nsource = \"moj\"\nprocedure = \"*\"\ndate = \"2026-01-15\"\n")
                .unwrap(),
            identity: None,
            deadlines: Some(DeadlineRules::new(calendar, procedures)),
        }
    }

    fn mapped(r: &SourceRecord) -> Incoming {
        Incoming::mapped(r.clone(), serde_json::to_string(r).unwrap(), &ctx(), now())
    }

    fn page(source: &str, r: &SourceRecord) -> Page {
        let raw = serde_json::to_value(r).unwrap();
        Page {
            source: source.into(),
            items: vec![Incoming::mapped(r.clone(), raw.to_string(), &ctx(), now())],
            cursor: None,
            remap: false,
        }
    }

    fn now() -> Timestamp {
        "2026-03-09T01:00:00Z".parse().unwrap()
    }

    fn send_all(conn: &mut Connection) -> Vec<(String, outbox::Kind, String)> {
        let rows = outbox::next_batch(conn, now(), 100, outbox::Order::Edf).unwrap();
        let mut sent = Vec::new();
        for row in rows {
            sent.push((row.code.clone(), row.kind, row.payload["TrangThaiHoSo"].as_str().unwrap_or("").to_string()));
            outbox::ack(conn, &row, now()).unwrap();
        }
        sent
    }

    #[test]
    fn a_remapped_record_that_starts_a_case_is_prepared_by_the_writer_as_the_poller_would() {
        // A re-sync maps stored payloads without preparing their case on its own; the rare one that
        // still starts a case (its case was split off, say) must get the same dossier and object.
        let r = rec("moj", "M-9", "2026-02-03T02:00:00Z", "2026-02-05T02:00:00Z", Status::Processing);
        let mut stored = Vec::new();
        for item in [mapped(&r), Incoming::remapped(r.clone(), serde_json::to_string(&r).unwrap())] {
            let (_d, mut conn, ctx) = setup();
            let page = Page { source: "moj".into(), items: vec![item], cursor: None, remap: false };
            assert_eq!(ingest_page(&mut conn, &ctx, page, now()).unwrap().new, 1);
            let row: (String, i64, Option<String>) = conn
                .query_row("SELECT content_hash, status, due_at FROM dossiers WHERE portal_code = 'M-9'", [], |x| {
                    Ok((x.get(0)?, x.get(1)?, x.get(2)?))
                })
                .unwrap();
            let queued = send_all(&mut conn);
            stored.push((row, queued));
        }
        assert_eq!(stored[0], stored[1]);
        assert_eq!(stored[0].1.len(), 1, "the new case is queued for the portal: {:?}", stored[0].1);
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
    fn a_code_sent_but_never_answered_is_closed_when_an_earlier_member_appears() {
        let (_d, mut conn, ctx) = setup();
        let mut moj = rec("moj", "M-8", "2026-02-03T02:00:00Z", "2026-02-05T02:00:00Z", Status::Processing);
        moj.reference_codes = vec!["C-8".into()];
        ingest_page(&mut conn, &ctx, page("moj", &moj), now()).unwrap();
        // Sent, then the daemon stops before the answer: the portal may hold M-8.
        let rows = outbox::next_batch(&conn, now(), 100, outbox::Order::Edf).unwrap();
        outbox::mark_sent(&mut conn, &rows, now()).unwrap();
        let city = rec("city", "C-8", "2026-02-02T02:00:00Z", "2026-02-02T02:00:00Z", Status::Received);
        ingest_page(&mut conn, &ctx, page("city", &city), now()).unwrap();
        let rows = outbox::next_batch(&conn, now(), 100, outbox::Order::Edf).unwrap();
        let mut queued: Vec<(&str, outbox::Kind, bool)> =
            rows.iter().map(|r| (r.code.as_str(), r.kind, r.known_to_portal)).collect();
        queued.sort();
        assert_eq!(
            queued,
            vec![("C-8", outbox::Kind::Upsert, false), ("M-8", outbox::Kind::Close, true)],
            "the unanswered code is closed (always as an update), not forgotten"
        );
        // The portal never got it: "không tồn tại" settles the close, and nothing stays queued.
        let close = rows.into_iter().find(|r| r.kind == outbox::Kind::Close).unwrap();
        outbox::settle_unneeded_close(&mut conn, &close, now()).unwrap();
        let left: i64 =
            conn.query_row("SELECT COUNT(*) FROM portal_sent WHERE code = 'M-8'", [], |r| r.get(0)).unwrap();
        assert_eq!(left, 0);
        assert_eq!(send_all(&mut conn), vec![("C-8".to_string(), outbox::Kind::Upsert, "4".to_string())]);
        assert!(send_all(&mut conn).is_empty());

        // A code never sent is simply forgotten when it stops being live.
        let mut moj = rec("moj", "M-9", "2026-02-03T02:00:00Z", "2026-02-05T02:00:00Z", Status::Processing);
        moj.reference_codes = vec!["C-9".into()];
        ingest_page(&mut conn, &ctx, page("moj", &moj), now()).unwrap();
        let city = rec("city", "C-9", "2026-02-02T02:00:00Z", "2026-02-02T02:00:00Z", Status::Received);
        ingest_page(&mut conn, &ctx, page("city", &city), now()).unwrap();
        assert_eq!(send_all(&mut conn), vec![("C-9".to_string(), outbox::Kind::Upsert, "4".to_string())]);
    }

    #[test]
    fn a_city_copy_pushed_before_a_self_syncing_ministry_took_over_is_closed_naming_its_code() {
        let (_d, mut conn, mut ctx) = setup();
        ctx.sources.insert("moj".into(), (SystemKind::Ministry, PortalMode::Verify));
        let city = rec("city", "C-11", "2026-02-02T02:00:00Z", "2026-02-02T02:00:00Z", Status::Received);
        ingest_page(&mut conn, &ctx, page("city", &city), now()).unwrap();
        assert_eq!(send_all(&mut conn), vec![("C-11".to_string(), outbox::Kind::Upsert, "2".to_string())]);
        // The ministry (authoritative after its cutover) writes its own copy to the portal.
        let mut moj = rec("moj", "M-11", "2026-02-03T02:00:00Z", "2026-02-05T02:00:00Z", Status::Processing);
        moj.reference_codes = vec!["C-11".into()];
        ingest_page(&mut conn, &ctx, page("moj", &moj), now()).unwrap();
        let rows = outbox::next_batch(&conn, now(), 100, outbox::Order::Edf).unwrap();
        assert_eq!(rows.len(), 1, "only the close: the bridge never writes the ministry's copy");
        assert_eq!((rows[0].code.as_str(), rows[0].kind), ("C-11", outbox::Kind::Close));
        assert_eq!(rows[0].payload["GhiChu"].as_str().map(|n| n.contains("M-11")), Some(true), "{}", rows[0].payload);
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
        let solo = Solo::of(&r, &ctx, now());
        let members = [Member { record: &r, kind: ctx.kind("moj") }];
        let Some(MergeOutcome::Ok(c)) = merge::merge(&members, &ctx.cutover, None) else { panic!() };
        assert_eq!(solo.object_text, payload::dossier_object(&c.state, None).to_string());
        let steps: Vec<String> = c.state.steps.iter().map(|s| outbox::StepItem::of(&c.portal_code, s).text).collect();
        assert_eq!(solo.steps.iter().map(|s| s.text.clone()).collect::<Vec<_>>(), steps);
        // The dossier row written on the fast path is the one the full recompute decides: running
        // the recompute afterwards finds nothing to change and queues nothing more.
        let (_d, mut conn, ctx) = setup();
        ingest_page(&mut conn, &ctx, page("moj", &r), now()).unwrap();
        type Row = (i64, String, String, Option<String>, [Option<String>; 4]);
        let row = |conn: &Connection| -> Row {
            conn.query_row(
                "SELECT version, content_hash, canonical, due_at, computed_due, portal_due, watch_due, due_flags
                 FROM dossiers",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, [r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?])),
            )
            .unwrap()
        };
        let before = row(&conn);
        assert_eq!(before.0, 1);
        assert!(before.4.iter().take(3).all(Option::is_some), "reckoned on the fast path: {:?}", before.4);
        assert_eq!(recompute(&conn, &ctx, 1, now(), false).unwrap(), 0);
        assert_eq!(row(&conn), before);
        let queued: i64 = conn.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0)).unwrap();
        assert_eq!(queued, 1);
    }

    #[test]
    fn a_due_time_in_doubt_is_stored_flagged_and_logged_once_and_a_missing_one_is_the_bridges() {
        let (_d, mut conn, ctx) = setup();
        // 1.001193 takes 1 working day: received Thursday 12/02 10:00, due by law Friday 13/02
        // 10:00; the source says Tuesday 17/02, in Tết.
        let mut r = rec("city", "C-7", "2026-02-12T03:00:00Z", "2026-02-12T03:00:00Z", Status::Processing);
        r.due_at = Some("2026-02-17T10:00:00Z".parse().unwrap());
        ingest_page(&mut conn, &ctx, page("city", &r), now()).unwrap();
        let flags = |conn: &Connection| -> Option<String> {
            conn.query_row("SELECT due_flags FROM dossiers WHERE portal_code = 'C-7'", [], |r| r.get(0)).unwrap()
        };
        assert_eq!(flags(&conn).as_deref(), Some("later on_day_off"));
        let logged = |conn: &Connection| -> Vec<String> {
            let mut stmt = conn.prepare("SELECT kind FROM sync_log WHERE kind LIKE 'deadline.%' ORDER BY seq").unwrap();
            stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
        };
        assert_eq!(logged(&conn), ["deadline.on_day_off", "deadline.later"]);
        // A change elsewhere in the record: the same doubts, not logged again.
        r.status = Status::Finished;
        r.finished_at = Some("2026-02-13T02:00:00Z".parse().unwrap());
        r.updated_at = "2026-02-13T02:00:00Z".parse().unwrap();
        ingest_page(&mut conn, &ctx, page("city", &r), now()).unwrap();
        assert_eq!(logged(&conn).len(), 2);
        let watch: Option<String> =
            conn.query_row("SELECT watch_due FROM dossiers WHERE portal_code = 'C-7'", [], |r| r.get(0)).unwrap();
        assert_eq!(watch, None, "an ended dossier is not watched");

        // No due time from the source: the portal gets the bridge's.
        let mut n = rec("city", "C-8", "2026-03-02T03:00:00Z", "2026-03-02T03:00:00Z", Status::Processing);
        n.due_at = None;
        ingest_page(&mut conn, &ctx, page("city", &n), now()).unwrap();
        let payload: String =
            conn.query_row("SELECT payload FROM outbox WHERE code = 'C-8'", [], |r| r.get(0)).unwrap();
        assert!(payload.contains(r#""NgayHenTra":"20260303100000""#), "{payload}");
        assert_eq!(flags(&conn).as_deref(), Some("later on_day_off"), "C-7 unchanged");
    }

    #[test]
    fn an_attested_finish_is_pushed_holds_against_the_sources_and_is_refused_when_impossible() {
        use crate::core::attest::Attestation;
        let (_d, mut conn, ctx) = setup();
        let r = rec("city", "C-9", "2026-03-02T02:00:00Z", "2026-03-02T02:00:00Z", Status::Processing);
        ingest_page(&mut conn, &ctx, page("city", &r), now()).unwrap();
        let finished: Timestamp = "2026-03-04T08:00:00Z".parse().unwrap();
        let a = Attestation { finished_at: finished, returned_at: None, reason: "trả kết quả giấy".into() };
        let done = super::super::attest::record(&mut conn, &ctx, "C-9", &a, "Lan", now()).unwrap();
        assert_eq!((done.case.as_str(), done.status), ("C-9", 9));
        assert_eq!(done.queued, 1);
        let payload: String = conn
            .query_row("SELECT payload FROM outbox WHERE code = 'C-9' ORDER BY id DESC LIMIT 1", [], |r| r.get(0))
            .unwrap();
        assert!(payload.contains(r#""NgayKetThucXuLy":"20260304150000""#), "{payload}");
        let (actor, kind): (String, String) = conn
            .query_row("SELECT actor, kind FROM sync_log WHERE kind = 'dossier.attested'", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((actor.as_str(), kind.as_str()), ("Lan", "dossier.attested"));
        // The source still says processing: no regression conflict, the attested finish holds.
        let mut later = r.clone();
        later.updated_at = "2026-03-05T02:00:00Z".parse().unwrap();
        ingest_page(&mut conn, &ctx, page("city", &later), now()).unwrap();
        let (status, conflict): (i64, Option<String>) = conn
            .query_row("SELECT status, conflict FROM dossiers WHERE portal_code = 'C-9'", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((status, conflict), (9, None));

        // A finish before the receipt, or for a withdrawn case, is refused and nothing is written.
        let early = Attestation { finished_at: "2026-03-01T00:00:00Z".parse().unwrap(), ..a.clone() };
        let e = super::super::attest::record(&mut conn, &ctx, "C-9", &early, "Lan", now()).unwrap_err();
        assert!(e.to_string().contains("before the dossier was received"), "{e}");
        let w = rec("city", "C-10", "2026-03-02T02:00:00Z", "2026-03-02T02:00:00Z", Status::Withdrawn);
        ingest_page(&mut conn, &ctx, page("city", &w), now()).unwrap();
        let e = super::super::attest::record(&mut conn, &ctx, "C-10", &a, "Lan", now()).unwrap_err();
        assert!(e.to_string().contains("ended as 7"), "{e}");
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM attestations", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1);
        let e = super::super::attest::record(&mut conn, &ctx, "NOPE", &a, "Lan", now()).unwrap_err();
        assert!(e.to_string().contains("no dossier"), "{e}");
    }

    #[test]
    fn the_same_applicant_and_procedure_within_the_window_is_one_case_by_identity() {
        let (_d, mut conn, mut ctx) = setup();
        ctx.identity = Some(crate::core::identity::IdentityLinking::new(
            b"key",
            vec!["1.001193".into()],
            jiff::SignedDuration::from_hours(72),
        ));
        let with = |source: &str, code: &str, received: &str, id: &str| {
            let mut r = rec(source, code, received, received, Status::Received);
            r.applicant.id_number = Some(id.into());
            r
        };
        // No shared code, no reference: the same citizen's birth registration in both systems.
        ingest_page(&mut conn, &ctx, page("city", &with("city", "C-1", "2026-02-02T02:00:00Z", "031090001234")), now())
            .unwrap();
        ingest_page(
            &mut conn,
            &ctx,
            page("moj", &with("moj", "M-1", "2026-02-03T09:00:00Z", "031 090 001 234")),
            now(),
        )
        .unwrap();
        // The same citizen again, but a week later: another case.
        ingest_page(&mut conn, &ctx, page("moj", &with("moj", "M-2", "2026-02-10T02:00:00Z", "031090001234")), now())
            .unwrap();
        // Another citizen within the window: another case.
        ingest_page(&mut conn, &ctx, page("moj", &with("moj", "M-3", "2026-02-02T03:00:00Z", "031090009999")), now())
            .unwrap();
        let rules: Vec<(String, String, i64)> = conn
            .prepare("SELECT code, link_rule, dossier_id FROM source_records ORDER BY code")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rules,
            vec![
                ("C-1".to_string(), "first".to_string(), 1),
                ("M-1".to_string(), "identity".to_string(), 1),
                ("M-2".to_string(), "first".to_string(), 2),
                ("M-3".to_string(), "first".to_string(), 3),
            ]
        );
        let linked: String =
            conn.query_row("SELECT message FROM sync_log WHERE kind = 'dossier.linked'", [], |r| r.get(0)).unwrap();
        assert!(linked.contains("by rule identity"), "{linked}");
        // The number is filed only as a keyed hash.
        let clear: i64 =
            conn.query_row("SELECT COUNT(*) FROM record_codes WHERE code LIKE '%1234%'", [], |r| r.get(0)).unwrap();
        assert_eq!(clear, 0);
        // Without identity linking configured, the same records stay apart.
        let (_d2, mut conn2, ctx2) = setup();
        ingest_page(
            &mut conn2,
            &ctx2,
            page("city", &with("city", "C-1", "2026-02-02T02:00:00Z", "031090001234")),
            now(),
        )
        .unwrap();
        ingest_page(&mut conn2, &ctx2, page("moj", &with("moj", "M-1", "2026-02-03T09:00:00Z", "031090001234")), now())
            .unwrap();
        let cases: i64 = conn2.query_row("SELECT COUNT(*) FROM dossiers", [], |r| r.get(0)).unwrap();
        assert_eq!(cases, 2);
    }

    #[test]
    fn a_split_record_gets_a_case_of_its_own_and_is_never_linked_back() {
        let (_d, mut conn, ctx) = setup();
        let city = rec("city", "C-8", "2026-02-02T02:00:00Z", "2026-02-02T02:00:00Z", Status::Received);
        let mut moj = rec("moj", "M-8", "2026-02-03T02:00:00Z", "2026-02-04T02:00:00Z", Status::Processing);
        moj.reference_codes = vec!["C-8".into()];
        ingest_page(&mut conn, &ctx, page("city", &city), now()).unwrap();
        ingest_page(&mut conn, &ctx, page("moj", &moj), now()).unwrap();
        send_all(&mut conn);
        let cases = |c: &Connection| -> i64 { c.query_row("SELECT COUNT(*) FROM dossiers", [], |r| r.get(0)).unwrap() };
        assert_eq!(cases(&conn), 1);

        let s = split(&mut conn, &ctx, "moj", "moj-M-8", "Lan", "another citizen's dossier", now()).unwrap();
        assert_eq!((s.from_case.as_str(), s.new_case.as_str()), ("C-8", "M-8"));
        assert_eq!(cases(&conn), 2);
        let mut sent = send_all(&mut conn);
        sent.sort();
        assert_eq!(
            sent,
            vec![
                ("C-8".to_string(), outbox::Kind::Upsert, "2".to_string()),
                ("M-8".to_string(), outbox::Kind::Upsert, "4".to_string()),
            ],
            "each case carries its own status again"
        );
        let actor: String =
            conn.query_row("SELECT actor FROM sync_log WHERE kind = 'dossier.split'", [], |r| r.get(0)).unwrap();
        assert_eq!(actor, "Lan");

        // The ministry record changes and still names the city code: it stays apart.
        moj.status = Status::Finished;
        moj.finished_at = Some("2026-02-06T02:00:00Z".parse().unwrap());
        moj.updated_at = "2026-02-06T02:00:00Z".parse().unwrap();
        ingest_page(&mut conn, &ctx, page("moj", &moj), now()).unwrap();
        assert_eq!(cases(&conn), 2);
        let e = split(&mut conn, &ctx, "moj", "moj-M-8", "Lan", "again", now()).unwrap_err().to_string();
        assert!(e.contains("alone in its case"), "{e}");
        let e = split(&mut conn, &ctx, "moj", "nope", "Lan", "x", now()).unwrap_err().to_string();
        assert!(e.contains("no record"), "{e}");
    }

    #[test]
    fn the_same_new_record_twice_in_a_page_is_stored_once_as_its_later_copy() {
        let (_d, mut conn, ctx) = setup();
        let a = rec("city", "C-2", "2026-02-02T02:00:00Z", "2026-02-02T02:00:00Z", Status::Received);
        let mut b = a.clone();
        b.status = Status::Processing;
        b.updated_at = "2026-02-03T02:00:00Z".parse().unwrap();
        let mut page = page("city", &a);
        page.items.push(mapped(&b));
        page.items.push(mapped(&b));
        let r = ingest_page(&mut conn, &ctx, page, now()).unwrap();
        assert_eq!((r.new, r.changed, r.unchanged), (1, 0, 1));
        let (records, status): (i64, i64) = conn
            .query_row("SELECT COUNT(*), MAX(status) FROM source_records", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((records, status), (1, 4));
        assert_eq!(send_all(&mut conn), vec![("C-2".to_string(), outbox::Kind::Upsert, "4".to_string())]);
    }

    #[test]
    fn a_record_whose_reference_changed_is_no_longer_found_by_the_old_one() {
        let (_d, mut conn, ctx) = setup();
        let mut m = rec("moj", "M-3", "2026-02-03T02:00:00Z", "2026-02-03T02:00:00Z", Status::Received);
        m.reference_codes = vec!["C-WRONG".into()];
        ingest_page(&mut conn, &ctx, page("moj", &m), now()).unwrap();
        // The ministry corrects the reference before the city copy appears.
        m.reference_codes = vec!["C-3".into()];
        m.updated_at = "2026-02-04T02:00:00Z".parse().unwrap();
        assert_eq!(ingest_page(&mut conn, &ctx, page("moj", &m), now()).unwrap().changed, 1);
        let codes: Vec<String> = conn
            .prepare("SELECT code FROM record_codes ORDER BY code")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(codes, vec!["C-3".to_string(), "M-3".to_string()], "the old reference is forgotten");
        let wrong = rec("city", "C-WRONG", "2026-02-01T02:00:00Z", "2026-02-01T02:00:00Z", Status::Received);
        ingest_page(&mut conn, &ctx, page("city", &wrong), now()).unwrap();
        let right = rec("city", "C-3", "2026-02-02T02:00:00Z", "2026-02-02T02:00:00Z", Status::Received);
        ingest_page(&mut conn, &ctx, page("city", &right), now()).unwrap();
        let cases: Vec<(String, i64)> = conn
            .prepare("SELECT d.portal_code, COUNT(*) FROM dossiers d JOIN source_records r ON r.dossier_id = d.id GROUP BY d.id ORDER BY 1")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(cases, vec![("C-3".to_string(), 2), ("C-WRONG".to_string(), 1)]);
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
                serde_json::json!({"id": "x1"}).to_string(),
            )],
            cursor: Some(("2026-02-02T02:00:00Z".parse().unwrap(), "x1".into())),
            remap: false,
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
