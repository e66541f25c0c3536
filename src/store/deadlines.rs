//! Deadlines in the store: the watch over open dossiers' due times (at risk, overdue, falsely
//! late), and the summary `status` prints. The due times themselves are reckoned by
//! `core::deadline` when a dossier is merged and kept in `dossiers` (migration 8).
//!
//! What changes with time alone lives here: an open dossier comes within the at-risk horizon, then
//! passes the due time the portal holds; when the law's due time (the bridge's reckoning) has not
//! passed by then, the portal shows it late falsely.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rusqlite::{Connection, params};
use serde::Serialize;
use serde_json::json;

use super::synclog::{self, Entry, Level};
use super::{parse_ts, ts};
use crate::core::calendar::{self, Calendar};
use crate::core::timefmt::display_time;

/// `dossiers.watch_state`: what the watch has logged for the current `watch_due`.
const LOGGED_AT_RISK: i64 = 1;
const LOGGED_OVERDUE: i64 = 2;

/// The instant up to which an open dossier's due time makes it at risk: `horizon_hours` of working
/// time from `now`.
pub fn at_risk_cutoff(calendar: &Calendar, now: Timestamp, horizon_hours: u32) -> anyhow::Result<Timestamp> {
    Ok(calendar.add_working_time(now, jiff::SignedDuration::from_hours(i64::from(horizon_hours)))?)
}

/// What one look found and logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WatchReport {
    pub at_risk: u32,
    pub overdue: u32,
    pub false_late: u32,
}

struct Watched {
    id: i64,
    code: String,
    status: Option<i64>,
    due: String,
    computed: Option<String>,
}

fn watched(conn: &Connection, sql: &str, p: &[&dyn rusqlite::ToSql]) -> anyhow::Result<Vec<Watched>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(p, |r| {
        Ok(Watched { id: r.get(0)?, code: r.get(1)?, status: r.get(2)?, due: r.get(3)?, computed: r.get(4)? })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Log each open dossier whose due time came within the horizon (`deadline.at_risk`) or passed
/// (`deadline.overdue`, or `deadline.false_late` when the law's due time has not passed) since the
/// last look, once per due time. One transaction.
pub fn watch(
    conn: &mut Connection,
    calendar: &Calendar,
    now: Timestamp,
    cutoff: Timestamp,
) -> anyhow::Result<WatchReport> {
    let tx = conn.transaction()?;
    let mut log = synclog::Chain::default();
    let mut report = WatchReport::default();
    let (now_s, cutoff_s) = (ts(now), ts(cutoff));
    let mark = |id: i64, state: i64| -> rusqlite::Result<usize> {
        tx.prepare_cached("UPDATE dossiers SET watch_state = ?2 WHERE id = ?1")?.execute(params![id, state])
    };
    // `watch_due` is NULL unless the dossier is open with its clock running (the index holds only
    // those), so both reads touch what they report and little else.
    let overdue = watched(
        &tx,
        "SELECT id, portal_code, status, watch_due, computed_due FROM dossiers
         WHERE watch_due IS NOT NULL AND watch_due <= ?1 AND watch_state < 2 ORDER BY watch_due",
        &[&now_s],
    )?;
    for d in overdue {
        let law_not_passed = d.computed.as_deref().is_some_and(|c| c > now_s.as_str());
        let due = display_time(parse_ts(&d.due)?);
        let status = d.status.map_or_else(|| "?".into(), |s| s.to_string());
        let entry = if law_not_passed {
            report.false_late += 1;
            let law = d.computed.as_deref().map(parse_ts).transpose()?.map(display_time).unwrap_or_default();
            Entry::new(
                Level::Warn,
                "deadline.false_late",
                format!(
                    "open (status {status}) past the due time the portal holds, {due}: the portal shows it late, but \
                     the law's due time is {law}"
                ),
            )
        } else {
            report.overdue += 1;
            Entry::new(
                Level::Warn,
                "deadline.overdue",
                format!("open (status {status}) past its due time {due}: the portal shows it late (quá hạn)"),
            )
        };
        log.append(&tx, now, &entry.dossier(&d.code).details(json!({"due": d.due, "computed_due": d.computed})))?;
        mark(d.id, LOGGED_OVERDUE)?;
    }
    let at_risk = watched(
        &tx,
        "SELECT id, portal_code, status, watch_due, computed_due FROM dossiers
         WHERE watch_due IS NOT NULL AND watch_due > ?1 AND watch_due <= ?2 AND watch_state < 1 ORDER BY watch_due",
        &[&now_s, &cutoff_s],
    )?;
    for d in at_risk {
        report.at_risk += 1;
        let due = parse_ts(&d.due)?;
        let left = calendar.working_time_between(now, due)?;
        let status = d.status.map_or_else(|| "?".into(), |s| s.to_string());
        log.append(
            &tx,
            now,
            &Entry::new(
                Level::Warn,
                "deadline.at_risk",
                format!(
                    "open (status {status}), due {}: {} of working time left",
                    display_time(due),
                    calendar::span(left)
                ),
            )
            .dossier(&d.code)
            .details(json!({"due": d.due, "working_minutes_left": left.as_secs() / 60})),
        )?;
        mark(d.id, LOGGED_AT_RISK)?;
    }
    tx.commit()?;
    Ok(report)
}

/// An open dossier coming due.
#[derive(Debug, Clone, Serialize)]
pub struct Due {
    pub code: String,
    pub status: Option<i64>,
    pub due: String,
    /// The law's due time, when it differs from the due time the portal holds.
    pub computed_due: Option<String>,
}

/// The deadline part of `status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeadlineOverview {
    pub horizon_working_hours: u32,
    /// Open, clock running, due within the horizon.
    pub at_risk: i64,
    /// The first of them, soonest due first.
    pub at_risk_first: Vec<Due>,
    /// Open past the due time the portal holds: shown late.
    pub overdue: i64,
    /// Of those, the ones whose law's due time has not passed: shown late falsely.
    pub false_late_open: i64,
    /// Ended on time by the law's due time, shown late by the portal's.
    pub false_late_ended: i64,
    /// Dossiers by finding (`core::deadline::Finding::name`).
    pub findings: BTreeMap<String, i64>,
    /// Procedures seen without a time limit in the procedures table.
    pub procedures_without_limit: Vec<String>,
}

pub fn overview(
    conn: &Connection,
    now: Timestamp,
    cutoff: Timestamp,
    horizon: u32,
    list: usize,
) -> anyhow::Result<DeadlineOverview> {
    let (now_s, cutoff_s) = (ts(now), ts(cutoff));
    let one = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<i64> {
        conn.prepare_cached(sql)?.query_row(p, |r| r.get(0))
    };
    let at_risk = one(
        "SELECT COUNT(*) FROM dossiers WHERE watch_due IS NOT NULL AND watch_due > ?1 AND watch_due <= ?2",
        &[&now_s, &cutoff_s],
    )?;
    let overdue = one("SELECT COUNT(*) FROM dossiers WHERE watch_due IS NOT NULL AND watch_due <= ?1", &[&now_s])?;
    let false_late_open = one(
        "SELECT COUNT(*) FROM dossiers WHERE watch_due IS NOT NULL AND watch_due <= ?1 AND computed_due > ?1",
        &[&now_s],
    )?;
    let mut findings: BTreeMap<String, i64> = BTreeMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT due_flags, COUNT(*) FROM dossiers WHERE due_flags IS NOT NULL GROUP BY due_flags",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (flags, n) = row?;
            for name in flags.split(' ') {
                *findings.entry(name.to_string()).or_default() += n;
            }
        }
    }
    let false_late_ended = findings.get("false_late").copied().unwrap_or(0);
    let at_risk_first = {
        let mut stmt = conn.prepare_cached(
            "SELECT portal_code, status, watch_due, computed_due FROM dossiers
             WHERE watch_due IS NOT NULL AND watch_due > ?1 AND watch_due <= ?2 ORDER BY watch_due LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![now_s, cutoff_s, list as i64], |r| {
            let due: String = r.get(2)?;
            let computed: Option<String> = r.get(3)?;
            Ok(Due { code: r.get(0)?, status: r.get(1)?, computed_due: computed.filter(|c| *c != due), due })
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    let procedures_without_limit = if findings.contains_key("no_time_limit") {
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT s.procedure FROM dossiers d JOIN source_records s ON s.dossier_id = d.id
             WHERE d.due_flags IS NOT NULL AND d.due_flags LIKE '%no_time_limit%' ORDER BY s.procedure LIMIT 50",
        )?;
        stmt.query_map([], |r| r.get(0))?.collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    Ok(DeadlineOverview {
        horizon_working_hours: horizon,
        at_risk,
        at_risk_first,
        overdue,
        false_late_open,
        false_late_ended,
        findings,
        procedures_without_limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::open_writer;

    fn t(s: &str) -> Timestamp {
        format!("{s}+07:00").parse().unwrap()
    }

    fn calendar() -> Calendar {
        Calendar::parse(include_str!("../../config/calendar.toml")).unwrap()
    }

    /// A dossier row as the merge leaves it: open with the clock running when `watch` is set.
    fn dossier(conn: &Connection, code: &str, watch: Option<&str>, computed: Option<&str>, flags: Option<&str>) {
        conn.execute(
            "INSERT INTO dossiers (portal_code, status, created_at, updated_at, portal_due, watch_due, computed_due,
                                   due_flags)
             VALUES (?1, 4, 'x', 'x', ?2, ?2, ?3, ?4)",
            params![code, watch.map(|w| ts(t(w))), computed.map(|c| ts(t(c))), flags],
        )
        .unwrap();
    }

    fn kinds(conn: &Connection) -> Vec<(String, String)> {
        let mut stmt = conn.prepare("SELECT kind, dossier FROM sync_log ORDER BY seq").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    }

    #[test]
    fn each_open_dossier_is_logged_once_as_it_comes_due_and_once_as_it_passes() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_writer(&dir.path().join("t.db")).unwrap();
        let cal = calendar();
        dossier(&conn, "SOON", Some("2026-03-09T15:00:00"), Some("2026-03-09T15:00:00"), None);
        dossier(&conn, "LATER", Some("2026-03-11T15:00:00"), Some("2026-03-11T15:00:00"), None);
        dossier(&conn, "PAST", Some("2026-03-06T17:00:00"), Some("2026-03-06T17:00:00"), None);
        // Past the due time the portal holds, not the law's: shown late falsely.
        dossier(&conn, "FALSE", Some("2026-03-06T17:00:00"), Some("2026-03-13T09:00:00"), Some("earlier"));
        dossier(&conn, "ENDED", None, Some("2026-03-02T09:00:00"), Some("false_late"));

        let now = t("2026-03-09T08:00:00");
        let cutoff = at_risk_cutoff(&cal, now, 8).unwrap();
        assert_eq!(cutoff, t("2026-03-10T08:00:00"), "8 working hours from Monday 08:00");
        let r = watch(&mut conn, &cal, now, cutoff).unwrap();
        assert_eq!(r, WatchReport { at_risk: 1, overdue: 1, false_late: 1 });
        let logged = kinds(&conn);
        assert!(logged.contains(&("deadline.at_risk".into(), "SOON".into())), "{logged:?}");
        assert!(logged.contains(&("deadline.overdue".into(), "PAST".into())), "{logged:?}");
        assert!(logged.contains(&("deadline.false_late".into(), "FALSE".into())), "{logged:?}");

        let o = overview(&conn, now, cutoff, 8, 10).unwrap();
        assert_eq!((o.at_risk, o.overdue, o.false_late_open, o.false_late_ended), (1, 2, 1, 1));
        assert_eq!(o.at_risk_first.iter().map(|d| d.code.as_str()).collect::<Vec<_>>(), ["SOON"]);
        assert_eq!(o.findings.get("earlier"), Some(&1));

        // A second look at the same instant logs nothing more.
        assert_eq!(watch(&mut conn, &cal, now, cutoff).unwrap(), WatchReport::default());
        // Tuesday 16:00: SOON has passed, LATER (Wednesday 15:00) has come within a working day.
        let now = t("2026-03-10T16:00:00");
        let r = watch(&mut conn, &cal, now, at_risk_cutoff(&cal, now, 8).unwrap()).unwrap();
        assert_eq!(r, WatchReport { at_risk: 1, overdue: 1, false_late: 0 });
        assert_eq!(kinds(&conn).len(), 5);
    }
}
