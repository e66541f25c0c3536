//! The verify sweep's side of the store (`portal::verify` runs it): which dossiers to read back
//! next, the portal object each should show, and what a read-back found — the per-dossier mark
//! (migration 10, so a restart resumes the cycle), the sync-log entries and, for sources the bridge
//! writes, the repair, all in one transaction.
//!
//! A dossier is read back when its authoritative source is in portal_mode "push" or "verify" and
//! nothing for its code waits in the outbox (queued or parked: the portal is not meant to hold it
//! yet, so a difference is no divergence). "Recent": changed since it was last read back (a
//! push-mode dossier acknowledged by the portal, a verify-mode one changed at least the grace ago).
//! "Cycle": the ones read back longest ago (never first), a share each round.

use std::collections::HashMap;

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value, json};

use super::ingest::{self, MergeCtx};
use super::synclog::{self, Entry, Level};
use super::{sha256_hex, ts};
use crate::core::merge::MergeOutcome;
use crate::core::payload;
use crate::core::record::SourceRecord;
use crate::core::status::Status;
use crate::core::verify::Divergence;

/// One dossier to read back.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub dossier_id: i64,
    /// The code looked up: the case's live code.
    pub code: String,
    /// The authoritative member's source.
    pub source: String,
    /// Whether the bridge writes this source's dossiers (portal_mode "push"): a divergence is then
    /// repaired; otherwise ("verify") it is only reported.
    pub repair: bool,
    /// The object the portal should hold.
    pub canonical: Map<String, Value>,
    /// The case's state when it was read (its `content_hash`, and when the portal last
    /// acknowledged its code): a finding is recorded only if neither moved meanwhile.
    pub seen: Seen,
}

/// What a read-back's finding is only valid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub content_hash: String,
    pub acked_at: Option<String>,
}

/// The columns every selection reads, and the eligibility every selection shares.
const SELECT: &str = "SELECT d.id, d.portal_code, d.content_hash, d.status, s.name, s.portal_mode,
                             p.content_hash, p.payload, p.acked_at
      FROM dossiers d
      JOIN sources s ON s.name = json_extract(d.canonical, '$.authority[0]') AND s.portal_mode IN ('push', 'verify')
      LEFT JOIN portal_state p ON p.code = d.portal_code
      LEFT JOIN verify_marks v ON v.dossier_id = d.id";
const ELIGIBLE: &str =
    "d.content_hash IS NOT NULL AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.code = d.portal_code)";

struct Row {
    id: i64,
    code: String,
    hash: String,
    status: Option<u8>,
    source: String,
    mode: String,
    acked_hash: Option<String>,
    acked_payload: Option<String>,
    acked_at: Option<String>,
}

fn rows(conn: &Connection, sql: &str, p: &[&dyn rusqlite::ToSql]) -> anyhow::Result<Vec<Row>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let found = stmt.query_map(p, |r| {
        Ok(Row {
            id: r.get(0)?,
            code: r.get(1)?,
            hash: r.get(2)?,
            status: r.get(3)?,
            source: r.get(4)?,
            mode: r.get(5)?,
            acked_hash: r.get(6)?,
            acked_payload: r.get(7)?,
            acked_at: r.get(8)?,
        })
    })?;
    Ok(found.collect::<Result<_, _>>()?)
}

/// Dossiers changed since they were last read back (or never read back), the oldest change first:
/// changed at or after `since` (older changes are the cycle's), and, for a verify-mode source, no
/// later than `grace_cutoff`.
pub fn recent(
    conn: &Connection,
    ctx: &MergeCtx,
    since: Timestamp,
    grace_cutoff: Timestamp,
    now: Timestamp,
    limit: usize,
) -> anyhow::Result<Vec<Candidate>> {
    let sql = format!(
        "{SELECT} WHERE {ELIGIBLE}
           AND MAX(d.updated_at, COALESCE(p.acked_at, '')) >= ?1
           AND MAX(d.updated_at, COALESCE(p.acked_at, '')) > COALESCE(v.verified_at, '')
           AND (s.portal_mode = 'push' OR d.updated_at <= ?2)
         ORDER BY MAX(d.updated_at, COALESCE(p.acked_at, '')) LIMIT ?3"
    );
    candidates(conn, ctx, &sql, &[&ts(since), &ts(grace_cutoff), &(limit as i64)], now)
}

/// The dossiers read back longest ago, never-read ones first, leaving out `skip` (this round's
/// recent ones); for a verify-mode source, only once its last change is older than `grace_cutoff`.
pub fn cycle(
    conn: &Connection,
    ctx: &MergeCtx,
    grace_cutoff: Timestamp,
    now: Timestamp,
    limit: usize,
    skip: &[i64],
) -> anyhow::Result<Vec<Candidate>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let grace = "(s.portal_mode = 'push' OR d.updated_at <= ?1)";
    // Two reads rather than one ORDER BY over every dossier: the never-read ones need no order, the
    // others come in the order of the marks' index; each read stops at its limit.
    let want = (limit + skip.len()) as i64;
    let never = format!("{SELECT} WHERE {ELIGIBLE} AND {grace} AND v.dossier_id IS NULL LIMIT ?2");
    let mut found = candidates(conn, ctx, &never, &[&ts(grace_cutoff), &want], now)?;
    found.retain(|c| !skip.contains(&c.dossier_id));
    if found.len() < limit {
        let oldest = format!(
            "{SELECT} WHERE {ELIGIBLE} AND {grace} AND v.dossier_id IS NOT NULL ORDER BY v.verified_at LIMIT ?2"
        );
        let more = candidates(conn, ctx, &oldest, &[&ts(grace_cutoff), &want], now)?;
        found.extend(more.into_iter().filter(|c| !skip.contains(&c.dossier_id)));
    }
    found.truncate(limit);
    Ok(found)
}

fn candidates(
    conn: &Connection,
    ctx: &MergeCtx,
    sql: &str,
    p: &[&dyn rusqlite::ToSql],
    now: Timestamp,
) -> anyhow::Result<Vec<Candidate>> {
    let mut out = Vec::new();
    for row in rows(conn, sql, p)? {
        // A case changing under the read (a merge not yet carried out, a conflict waiting for an
        // operator) has no settled object: it is read back once it has.
        let Some(canonical) = canonical_object(conn, ctx, &row, now)? else { continue };
        out.push(Candidate {
            dossier_id: row.id,
            code: row.code,
            repair: row.mode == "push",
            source: row.source,
            canonical,
            seen: Seen { content_hash: row.hash, acked_at: row.acked_at },
        });
    }
    Ok(out)
}

/// The object the portal should hold for a case: what it acknowledged, when that is the case's
/// current state (the usual push-mode case); else the case merged again from its members, when the
/// result is the state last decided (`dossiers.content_hash`).
fn canonical_object(
    conn: &Connection,
    ctx: &MergeCtx,
    row: &Row,
    now: Timestamp,
) -> anyhow::Result<Option<Map<String, Value>>> {
    if row.acked_hash.as_deref() == Some(row.hash.as_str())
        && let Some(Ok(Value::Object(o))) = row.acked_payload.as_deref().map(serde_json::from_str)
    {
        return Ok(Some(o));
    }
    let Some(state) = merged_state(conn, ctx, row.id, row.status.and_then(Status::from_code), now)? else {
        return Ok(None);
    };
    let text = payload::dossier_object(&state, None).to_string();
    if sha256_hex(text.as_bytes()) != row.hash {
        return Ok(None);
    }
    match serde_json::from_str(&text)? {
        Value::Object(o) => Ok(Some(o)),
        _ => Ok(None),
    }
}

/// The canonical state of a case as `ingest` decides it (merge, then the bridge's own due time
/// where the sources give none), without writing anything.
fn merged_state(
    conn: &Connection,
    ctx: &MergeCtx,
    dossier_id: i64,
    previous: Option<Status>,
    now: Timestamp,
) -> anyhow::Result<Option<SourceRecord>> {
    let records = ingest::members_of(conn, dossier_id, &Default::default())?;
    let Some(MergeOutcome::Ok(canonical)) = ingest::merge_case(conn, ctx, dossier_id, &records, previous)? else {
        return Ok(None);
    };
    let mut state = canonical.state;
    ingest::reckon(ctx, &mut state, now);
    Ok(Some(state))
}

/// How many dossiers the full cycle covers (the pace of its share per round).
pub fn dossier_count(conn: &Connection) -> anyhow::Result<u64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM dossiers", [], |r| r.get::<_, i64>(0))?.max(0) as u64)
}

/// Outbox rows ready to send now, counted up to `limit`: while delivery has this much to do, the
/// sweep leaves the portal to it.
pub fn delivery_backlog(conn: &Connection, now: Timestamp, limit: usize) -> anyhow::Result<usize> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM (SELECT 1 FROM outbox WHERE state = 'queued' AND next_attempt_at <= ?1 LIMIT ?2)",
        )?
        .query_row(params![ts(now), limit as i64], |r| r.get(0))?;
    Ok(n.max(0) as usize)
}

/// What reading one dossier back found.
#[derive(Debug, Clone)]
pub struct Finding {
    pub dossier_id: i64,
    pub code: String,
    pub source: String,
    pub repair: bool,
    /// Empty: the portal shows what it should.
    pub divergences: Vec<Divergence>,
    /// The candidate's `seen`.
    pub seen: Seen,
}

/// What `record` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecordReport {
    pub verified: u32,
    /// Dossiers found differing (logged or not).
    pub divergent: u32,
    /// Repairs queued (outbox rows written).
    pub repaired: u32,
    /// Dossiers differing before, in agreement now.
    pub resolved: u32,
}

struct Mark {
    verified_at: String,
    divergence: Option<String>,
    repaired_at: Option<String>,
}

/// Record what reading dossiers back found, in one transaction: each dossier's mark; each
/// divergence in the sync log (`verify.missing` or `verify.divergence`) with what differs; for a
/// push-mode source, the canonical state queued again (`ingest::recompute` with `force`), unless a
/// repair of the same divergence was queued since `hold_since` and did not hold (then
/// `verify.repair_failed`, once). A verify-mode source's divergence is logged when it first appears
/// or changes, never repaired; agreement after a divergence is logged as `verify.resolved`.
pub fn record(
    conn: &mut Connection,
    ctx: &MergeCtx,
    found: &[Finding],
    now: Timestamp,
    hold_since: Timestamp,
) -> anyhow::Result<RecordReport> {
    let tx = conn.transaction()?;
    let mut log = synclog::Chain::default();
    let mut report = RecordReport::default();
    let (now_s, hold_s) = (ts(now), ts(hold_since));
    for f in found {
        // The case changed while it was read back (joined into another, merged again, queued,
        // acknowledged): the finding may be about a state already gone. Not recorded: a changed
        // case is read back again as a recent one.
        let now_seen: Option<(Option<String>, Option<String>, bool)> = tx
            .prepare_cached(
                "SELECT d.content_hash, p.acked_at, EXISTS (SELECT 1 FROM outbox o WHERE o.code = d.portal_code)
                 FROM dossiers d LEFT JOIN portal_state p ON p.code = d.portal_code WHERE d.id = ?1 AND d.portal_code = ?2",
            )?
            .query_row(params![f.dossier_id, f.code], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let unchanged = now_seen.is_some_and(|(hash, acked, queued)| {
            !queued && hash.as_deref() == Some(f.seen.content_hash.as_str()) && acked == f.seen.acked_at
        });
        if !unchanged {
            continue;
        }
        report.verified += 1;
        let prev: Option<Mark> = tx
            .prepare_cached("SELECT verified_at, divergence, repaired_at FROM verify_marks WHERE dossier_id = ?1")?
            .query_row([f.dossier_id], |r| {
                Ok(Mark { verified_at: r.get(0)?, divergence: r.get(1)?, repaired_at: r.get(2)? })
            })
            .optional()?;
        let key = (!f.divergences.is_empty()).then(|| serde_json::to_string(&f.divergences)).transpose()?;
        let prev_key = prev.as_ref().and_then(|m| m.divergence.clone());
        let mut repaired_at = prev.as_ref().and_then(|m| m.repaired_at.clone());
        match &key {
            None => {
                if prev_key.is_some() {
                    report.resolved += 1;
                    log.append(
                        &tx,
                        now,
                        &Entry::new(Level::Info, "verify.resolved", "the portal shows the canonical state again")
                            .source(&f.source)
                            .dossier(&f.code),
                    )?;
                }
            }
            Some(key) => {
                report.divergent += 1;
                let what: Vec<String> = f.divergences.iter().map(Divergence::describe).collect();
                let kind =
                    if f.divergences.contains(&Divergence::Missing) { "verify.missing" } else { "verify.divergence" };
                let details = |action: &str, queued: u32| {
                    json!({"divergences": f.divergences, "portal_mode": if f.repair { "push" } else { "verify" },
                           "action": action, "queued": queued})
                };
                let same = prev_key.as_deref() == Some(key.as_str());
                let held = f.repair && same && repaired_at.as_deref().is_some_and(|r| r >= hold_s.as_str());
                if held {
                    // Told once: at the first look after the repair was queued.
                    let first_look_since = prev.as_ref().is_some_and(|m| Some(&m.verified_at) <= repaired_at.as_ref());
                    if first_look_since {
                        log.append(
                            &tx,
                            now,
                            &Entry::new(
                                Level::Error,
                                "verify.repair_failed",
                                format!(
                                    "the portal still differs after a repair was acknowledged: {}; not queued again \
                                     before the next full cycle: see what the portal does with this dossier",
                                    what.join("; ")
                                ),
                            )
                            .source(&f.source)
                            .dossier(&f.code)
                            .details(details("held", 0)),
                        )?;
                    }
                } else if f.repair {
                    let queued = ingest::recompute(&tx, ctx, f.dossier_id, now, true)?;
                    report.repaired += queued;
                    repaired_at = Some(now_s.clone());
                    let action = if queued > 0 {
                        "the canonical state is queued for the portal again".to_string()
                    } else {
                        "nothing could be queued (the case is waiting for an operator or no longer pushed)".to_string()
                    };
                    log.append(
                        &tx,
                        now,
                        &Entry::new(Level::Warn, kind, format!("{}; {action}", what.join("; ")))
                            .source(&f.source)
                            .dossier(&f.code)
                            .details(details("repair", queued)),
                    )?;
                } else if !same {
                    log.append(
                        &tx,
                        now,
                        &Entry::new(
                            Level::Warn,
                            kind,
                            format!(
                                "{}; reported only: source {} writes its own dossiers (portal_mode verify)",
                                what.join("; "),
                                f.source
                            ),
                        )
                        .source(&f.source)
                        .dossier(&f.code)
                        .details(details("report", 0)),
                    )?;
                }
            }
        }
        tx.prepare_cached(
            "INSERT INTO verify_marks (dossier_id, code, verified_at, divergence, repaired_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(dossier_id) DO UPDATE SET code = excluded.code, verified_at = excluded.verified_at,
                 divergence = excluded.divergence, repaired_at = excluded.repaired_at",
        )?
        .execute(params![f.dossier_id, f.code, now_s, key, repaired_at])?;
    }
    tx.commit()?;
    Ok(report)
}

/// Drop the marks of cases that no longer exist (joined into another case). Returns how many.
pub fn forget_gone(conn: &Connection) -> anyhow::Result<usize> {
    Ok(conn.execute(
        "DELETE FROM verify_marks WHERE NOT EXISTS (SELECT 1 FROM dossiers d WHERE d.id = verify_marks.dossier_id)",
        [],
    )?)
}

/// Each dossier's last read-back, by id (tests and reports).
pub fn marks(conn: &Connection) -> anyhow::Result<HashMap<i64, (String, Option<String>)>> {
    let mut stmt = conn.prepare("SELECT dossier_id, verified_at, divergence FROM verify_marks")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PortalMode;
    use crate::core::descriptor::SystemKind;
    use crate::core::merge::tests::rec;
    use crate::core::verify::TimeField;
    use crate::store::ingest::{Incoming, Page};
    use crate::store::{open_writer, outbox};

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A city pushed by the bridge, a ministry that syncs itself.
    fn setup() -> (tempfile::TempDir, Connection, MergeCtx) {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("t.db")).unwrap();
        let sources = [
            ("city".to_string(), "city-igate".to_string(), SystemKind::City, PortalMode::Push),
            ("mps".to_string(), "mps".to_string(), SystemKind::Ministry, PortalMode::Verify),
        ];
        ingest::register_sources(&conn, &sources).unwrap();
        let ctx = MergeCtx {
            sources: sources.iter().map(|(n, _, k, m)| (n.clone(), (*k, *m))).collect(),
            ..MergeCtx::default()
        };
        (dir, conn, ctx)
    }

    fn ingest(conn: &mut Connection, ctx: &MergeCtx, r: &SourceRecord, now: Timestamp) {
        let raw = serde_json::to_string(r).unwrap();
        let page = Page {
            source: r.source.clone(),
            items: vec![Incoming::mapped(r.clone(), raw, ctx, now)],
            cursor: None,
            remap: false,
        };
        ingest::ingest_page(conn, ctx, page, now).unwrap();
    }

    fn id_of(conn: &Connection, code: &str) -> i64 {
        conn.query_row("SELECT id FROM dossiers WHERE portal_code = ?1", [code], |r| r.get(0)).unwrap()
    }

    fn kinds(conn: &Connection, code: &str) -> Vec<String> {
        conn.prepare("SELECT kind FROM sync_log WHERE dossier = ?1 AND kind LIKE 'verify.%' ORDER BY seq")
            .unwrap()
            .query_map([code], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn finding(c: &Candidate, divergences: Vec<Divergence>) -> Finding {
        Finding {
            dossier_id: c.dossier_id,
            code: c.code.clone(),
            source: c.source.clone(),
            repair: c.repair,
            divergences,
            seen: c.seen.clone(),
        }
    }

    /// The dossier as the cycle reads it now (any grace passed).
    fn read(conn: &Connection, ctx: &MergeCtx, code: &str, now: Timestamp) -> Candidate {
        let all = cycle(conn, ctx, now, now, 10, &[]).unwrap();
        all.into_iter().find(|c| c.code == code).unwrap_or_else(|| panic!("{code} is not read back"))
    }

    #[test]
    fn what_is_read_back_when_and_against_what() {
        let (_dir, mut conn, ctx) = setup();
        let at = t("2026-03-09T01:00:00Z");
        ingest(
            &mut conn,
            &ctx,
            &rec("city", "C-1", "2026-03-02T01:00:00Z", "2026-03-03T01:00:00Z", Status::Processing),
            at,
        );
        ingest(
            &mut conn,
            &ctx,
            &rec("mps", "B-1", "2026-03-02T02:00:00Z", "2026-03-03T02:00:00Z", Status::Received),
            at,
        );
        let later = t("2026-03-09T02:00:00Z");
        let (since, grace) = (t("2026-03-08T00:00:00Z"), t("2026-03-09T00:30:00Z"));

        // The city's dossier waits in the outbox, the ministry's is within its grace: neither yet.
        assert!(recent(&conn, &ctx, since, grace, later, 10).unwrap().is_empty());
        let rows = outbox::next_batch(&conn, later, 10, outbox::Order::Edf).unwrap();
        assert_eq!(rows.len(), 1, "the verify-mode source's dossier is never queued");
        outbox::ack(&mut conn, &rows[0], later).unwrap();
        let got = recent(&conn, &ctx, since, grace, later, 10).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].code.as_str(), got[0].repair), ("C-1", true));
        assert_eq!(
            serde_json::Value::Object(got[0].canonical.clone()),
            rows[0].payload,
            "what the portal acknowledged"
        );

        // Past the grace, the ministry's dossier too, against its state merged again.
        let got = recent(&conn, &ctx, since, t("2026-03-09T01:30:00Z"), later, 10).unwrap();
        let ministry = got.iter().find(|c| c.code == "B-1").expect("the ministry's dossier");
        assert!(!ministry.repair);
        assert_eq!(ministry.canonical["TrangThaiHoSo"], "2");
        assert_eq!(ministry.canonical["NgayTiepNhan"], "20260302090000");

        // Read back: no longer recent; the cycle takes the one never read first, then the oldest.
        let city = got.iter().find(|c| c.code == "C-1").unwrap();
        record(&mut conn, &ctx, &[finding(city, vec![])], later, since).unwrap();
        let got = recent(&conn, &ctx, since, t("2026-03-09T01:30:00Z"), later, 10).unwrap();
        assert_eq!(got.iter().map(|c| c.code.as_str()).collect::<Vec<_>>(), ["B-1"]);
        let cycle_codes = |skip: &[i64], limit| -> Vec<String> {
            cycle(&conn, &ctx, t("2026-03-09T01:30:00Z"), later, limit, skip)
                .unwrap()
                .into_iter()
                .map(|c| c.code)
                .collect()
        };
        assert_eq!(cycle_codes(&[], 1), ["B-1"]);
        assert_eq!(cycle_codes(&[], 2), ["B-1", "C-1"]);
        assert_eq!(cycle_codes(&[id_of(&conn, "B-1")], 2), ["C-1"]);
        assert_eq!(marks(&conn).unwrap()[&id_of(&conn, "C-1")], (ts(later), None));
    }

    #[test]
    fn a_pushed_dossier_is_repaired_once_and_a_repair_that_does_not_hold_is_said_once() {
        let (_dir, mut conn, ctx) = setup();
        let at = t("2026-03-09T01:00:00Z");
        ingest(
            &mut conn,
            &ctx,
            &rec("city", "C-1", "2026-03-02T01:00:00Z", "2026-03-03T01:00:00Z", Status::Processing),
            at,
        );
        let row = outbox::next_batch(&conn, at, 10, outbox::Order::Edf).unwrap().remove(0);
        outbox::ack(&mut conn, &row, at).unwrap();
        let hold = t("2026-03-08T00:00:00Z");
        let missing = |c: &Candidate| vec![finding(c, vec![Divergence::Missing])];

        let c = read(&conn, &ctx, "C-1", at);
        let r = record(&mut conn, &ctx, &missing(&c), at, hold).unwrap();
        assert_eq!((r.divergent, r.repaired), (1, 1));
        assert_eq!(kinds(&conn, "C-1"), ["verify.missing"]);
        let queued = outbox::next_batch(&conn, at, 10, outbox::Order::Edf).unwrap();
        assert_eq!(queued.len(), 1, "the canonical state queued again although the portal acknowledged it");
        // A finding about the state read before the repair is not recorded once the case moved on.
        assert_eq!(record(&mut conn, &ctx, &missing(&c), at, hold).unwrap().verified, 0);
        let later = t("2026-03-09T01:10:00Z");
        outbox::ack(&mut conn, &queued[0], later).unwrap();
        assert_eq!(record(&mut conn, &ctx, &missing(&c), later, hold).unwrap().verified, 0);

        // Acknowledged, so recent again; still missing: said once, not queued again within the hold.
        fn recent_codes(conn: &Connection, ctx: &MergeCtx, since: Timestamp, now: Timestamp) -> Vec<String> {
            recent(conn, ctx, since, now, now, 10).unwrap().into_iter().map(|c| c.code).collect()
        }
        assert_eq!(recent_codes(&conn, &ctx, hold, later), ["C-1"]);
        for now in ["2026-03-09T02:00:00Z", "2026-03-09T03:00:00Z"] {
            let c = read(&conn, &ctx, "C-1", t(now));
            assert_eq!(record(&mut conn, &ctx, &missing(&c), t(now), hold).unwrap().repaired, 0);
        }
        assert!(recent_codes(&conn, &ctx, hold, t("2026-03-09T03:00:00Z")).is_empty());
        assert_eq!(kinds(&conn, "C-1"), ["verify.missing", "verify.repair_failed"]);
        assert!(outbox::next_batch(&conn, at, 10, outbox::Order::Edf).unwrap().is_empty());
        // After the hold (a full cycle later), it is repaired again.
        let next_day = t("2026-03-10T02:00:00Z");
        let c = read(&conn, &ctx, "C-1", next_day);
        assert_eq!(record(&mut conn, &ctx, &missing(&c), next_day, t("2026-03-09T03:30:00Z")).unwrap().repaired, 1);
        let queued = outbox::next_batch(&conn, next_day, 10, outbox::Order::Edf).unwrap();
        outbox::ack(&mut conn, &queued[0], next_day).unwrap();
        // Agreement after a divergence is said once.
        let c = read(&conn, &ctx, "C-1", next_day);
        let r = record(&mut conn, &ctx, &[finding(&c, vec![])], next_day, hold).unwrap();
        assert_eq!(r.resolved, 1);
        assert_eq!(
            kinds(&conn, "C-1"),
            ["verify.missing", "verify.repair_failed", "verify.missing", "verify.resolved"]
        );
    }

    #[test]
    fn a_self_syncing_sources_divergence_is_reported_when_it_appears_or_changes_and_never_repaired() {
        let (_dir, mut conn, ctx) = setup();
        let at = t("2026-03-09T01:00:00Z");
        ingest(
            &mut conn,
            &ctx,
            &rec("mps", "B-1", "2026-03-02T02:00:00Z", "2026-03-03T02:00:00Z", Status::Received),
            at,
        );
        let c = recent(&conn, &ctx, t("2026-03-08T00:00:00Z"), at, at, 10).unwrap().remove(0);
        let stale = vec![Divergence::Status { portal: Some(1), canonical: Some(2) }];
        let later = vec![
            Divergence::Status { portal: Some(1), canonical: Some(2) },
            Divergence::Time { field: TimeField::NgayHenTra, portal: None, canonical: Some(at) },
        ];
        for (n, divergences) in [stale.clone(), stale, later.clone(), later, vec![]].into_iter().enumerate() {
            let r = record(
                &mut conn,
                &ctx,
                &[finding(&c, divergences)],
                at + jiff::SignedDuration::from_mins(n as i64),
                at,
            )
            .unwrap();
            assert_eq!(r.repaired, 0);
        }
        assert_eq!(kinds(&conn, "B-1"), ["verify.divergence", "verify.divergence", "verify.resolved"]);
        assert_eq!(conn.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get::<_, i64>(0)).unwrap(), 0);
        let (message, details): (String, String) = conn
            .query_row(
                "SELECT message, details FROM sync_log WHERE kind = 'verify.divergence' ORDER BY seq LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(
            message.contains("status 1 on the portal, 2 in the sources") && message.contains("reported only"),
            "{message}"
        );
        assert!(details.contains("\"action\":\"report\""), "{details}");
    }

    #[test]
    fn marks_of_joined_cases_are_dropped_and_a_backlog_is_counted() {
        let (_dir, mut conn, ctx) = setup();
        let at = t("2026-03-09T01:00:00Z");
        ingest(
            &mut conn,
            &ctx,
            &rec("city", "C-1", "2026-03-02T01:00:00Z", "2026-03-03T01:00:00Z", Status::Processing),
            at,
        );
        assert_eq!(delivery_backlog(&conn, at, 5).unwrap(), 1);
        assert_eq!(dossier_count(&conn).unwrap(), 1);
        conn.execute("INSERT INTO verify_marks (dossier_id, code, verified_at) VALUES (999, 'GONE', 'x')", []).unwrap();
        assert_eq!(forget_gone(&conn).unwrap(), 1);
        assert!(marks(&conn).unwrap().is_empty());
    }
}
