//! The invariant checker: given the simulated systems' records, the simulated portal's history and
//! final state, and the bridge's store, says which of `architecture.md`'s invariants do not hold.
//! Every campaign (crash, fault) and the end-to-end tests end with it.
//!
//! Run it once the world is paused and the bridge has converged (or given up): each check reads
//! the final state, except "never regressed", which reads every object the portal ever accepted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use crate::core::timefmt::portal_time;
use crate::sim::World;
use crate::sim::portal::Receipt;

/// Which promise a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Invariant {
    /// 1: a dossier of a source is missing from the portal, or the portal holds it wrong.
    Missing,
    /// 2 and 4: a case with two live codes, or a code created more than once.
    Twice,
    /// 3: shown late on the portal while the sources say it is not.
    FalseLate,
    /// A dossier the portal once held ended was sent back to an open status.
    Regressed,
    /// 5 and "nothing lost": a record neither stored nor quarantined, or quarantined without a reason.
    Quarantine,
    /// 6: the sync log's chain is broken, or a change the bridge made on the portal is not in it.
    SyncLog,
    /// The store's file is damaged (`PRAGMA integrity_check`).
    Store,
}

impl Invariant {
    pub fn label(self) -> &'static str {
        match self {
            Invariant::Missing => "missing",
            Invariant::Twice => "twice",
            Invariant::FalseLate => "false late",
            Invariant::Regressed => "regressed",
            Invariant::Quarantine => "quarantine",
            Invariant::SyncLog => "sync log",
            Invariant::Store => "store",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: Invariant,
    pub detail: String,
}

/// What was checked, so a report that finds nothing also shows it looked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    pub cases: usize,
    pub portal_codes: usize,
    pub receipts: usize,
    pub source_records: usize,
    pub quarantined: usize,
    pub log_entries: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub violations: Vec<Violation>,
    pub checked: Checked,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    fn add(&mut self, invariant: Invariant, detail: String) {
        self.violations.push(Violation { invariant, detail });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.checked;
        writeln!(
            f,
            "checked {} cases, {} portal codes, {} portal receipts, {} source records ({} quarantined), {} sync-log entries: {}",
            c.cases,
            c.portal_codes,
            c.receipts,
            c.source_records,
            c.quarantined,
            c.log_entries,
            if self.is_clean() {
                "every invariant holds".to_string()
            } else {
                format!("{} violations", self.violations.len())
            }
        )?;
        let mut by: BTreeMap<Invariant, Vec<&str>> = BTreeMap::new();
        for v in &self.violations {
            by.entry(v.invariant).or_default().push(&v.detail);
        }
        for (inv, details) in by {
            writeln!(f, "  {} ({}):", inv.label(), details.len())?;
            for d in details.iter().take(15) {
                writeln!(f, "    {d}")?;
            }
        }
        Ok(())
    }
}

fn field<'a>(v: &'a serde_json::Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(|x| x.as_str())
}

/// How the portal differs from what the sources say it should show (empty: in sync): missing
/// dossiers, wrong status or times, codes created twice, a case live under two codes, codes no
/// source has. What a test waits on while the bridge converges.
pub fn portal_mismatches(world: &World) -> Vec<String> {
    portal_violations(world).into_iter().map(|v| v.detail).collect()
}

fn portal_violations(world: &World) -> Vec<Violation> {
    let expected = world.expected_portal();
    let portal = world.portal_snapshot();
    let mut out = Vec::new();
    let mut push = |invariant, detail| out.push(Violation { invariant, detail });
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for (code, e) in &expected {
        for m in &e.member_codes {
            owner.insert(m.as_str(), code.as_str());
        }
        let Some(copy) = portal.get(code) else {
            push(Invariant::Missing, format!("{code}: missing on the portal (expected status {})", e.status));
            continue;
        };
        let d = &copy.dossier;
        let mut want = |k: &str, v: Option<String>| {
            if field(d, k).map(str::to_string) != v {
                push(Invariant::Missing, format!("{code}: {k} is {:?}, sources say {:?}", field(d, k), v));
            }
        };
        want("TrangThaiHoSo", Some(e.status.to_string()));
        want("NgayTiepNhan", Some(portal_time(e.received_at)));
        want("NgayHenTra", Some(portal_time(e.due_at)));
        if let Some(t) = e.ended_at {
            want("NgayKetThucXuLy", Some(portal_time(t)));
        }
        if e.status == 10 {
            want("NgayTra", e.returned_at.map(portal_time));
        }
        if copy.creates != 1 {
            push(Invariant::Twice, format!("{code}: created {} times on the portal", copy.creates));
        }
    }
    // One live code per case: every other code of a case is absent or closed as a duplicate.
    for (code, copy) in &portal {
        match owner.get(code.as_str()) {
            Some(live) if *live == code.as_str() => {}
            Some(live) => {
                if copy.live {
                    push(Invariant::Twice, format!("{code}: live on the portal although the case's code is {live}"));
                }
            }
            None => push(Invariant::Missing, format!("{code}: on the portal but no source has such a dossier")),
        }
    }
    out
}

/// Objects that sent a code back to an open status after the portal held it ended, in the
/// order the portal applied them.
fn regressions(receipts: &[Receipt]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut ended: HashMap<&str, u8> = HashMap::new();
    for r in receipts {
        let Some(status) = r.status else { continue };
        if is_end(status) {
            ended.insert(&r.code, status);
        } else if let Some(was) = ended.get(r.code.as_str()) {
            out.push(Violation {
                invariant: Invariant::Regressed,
                detail: format!(
                    "{}: sent status {status} after the portal held it ended ({was}), call {}",
                    r.code, r.call
                ),
            });
        }
    }
    out
}

/// Records neither stored nor quarantined with a reason (`ids`: system, native id, malformed).
fn unaccounted(
    ids: Vec<(String, String, bool)>,
    stored: &BTreeSet<(String, String)>,
    quarantined: &BTreeSet<(String, String)>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    for (source, id, malformed) in ids {
        let key = (source, id);
        let detail = if malformed && !quarantined.contains(&key) {
            format!("{}/{}: malformed, not quarantined with a reason", key.0, key.1)
        } else if !malformed && !stored.contains(&key) {
            format!("{}/{}: neither stored nor quarantined", key.0, key.1)
        } else {
            continue;
        };
        out.push(Violation { invariant: Invariant::Quarantine, detail });
    }
    out
}

fn is_end(status: u8) -> bool {
    matches!(status, 3 | 7 | 8 | 9 | 10)
}

/// Every invariant, against the world and the bridge's store at `db`.
pub fn check(world: &World, db: &Path) -> Report {
    let mut report = Report { violations: portal_violations(world), ..Report::default() };
    let expected = world.expected_portal();
    let portal = world.portal_snapshot();
    report.checked.cases = expected.len();
    report.checked.portal_codes = portal.len();

    // 3: nothing shown late that the sources' own times say is not.
    let late = world.portal_lateness();
    for code in &late.false_late_codes {
        report.add(Invariant::FalseLate, format!("{code}: shown late on the portal, on time by its sources"));
    }

    // Never regressed: once the portal held a code ended, nothing the bridge sent reopened it.
    let receipts = world.portal_receipts();
    report.checked.receipts = receipts.len();
    report.violations.extend(regressions(&receipts));

    let conn = match crate::store::open_reader(db) {
        Ok(c) => c,
        Err(e) => {
            report.add(Invariant::Store, format!("{}: cannot be opened: {e:#}", db.display()));
            return report;
        }
    };
    store_checks(world, &conn, &portal, &mut report);
    report
}

fn store_checks(
    world: &World,
    conn: &rusqlite::Connection,
    portal: &BTreeMap<String, crate::sim::PortalCopy>,
    report: &mut Report,
) {
    let fail = |report: &mut Report, what: &str, e: rusqlite::Error| {
        report.add(Invariant::Store, format!("{what}: {e}"));
    };
    match conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)) {
        Ok(s) if s == "ok" => {}
        Ok(s) => report.add(Invariant::Store, format!("integrity_check: {s}")),
        Err(e) => fail(report, "integrity_check", e),
    }

    // Nothing lost: every record is stored, or quarantined with a reason.
    let ids = |sql: &str| -> rusqlite::Result<BTreeSet<(String, String)>> {
        conn.prepare(sql)?.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
    };
    let stored = ids("SELECT source, native_id FROM source_records");
    let quarantined = ids("SELECT source, native_id FROM quarantine WHERE resolved_at IS NULL AND trim(reason) <> ''");
    match (stored, quarantined) {
        (Ok(stored), Ok(quarantined)) => {
            let world_ids = world.source_ids();
            report.checked.source_records = world_ids.len();
            report.checked.quarantined = world_ids.iter().filter(|(_, _, bad)| *bad).count();
            report.violations.extend(unaccounted(world_ids, &stored, &quarantined));
        }
        (Err(e), _) | (_, Err(e)) => fail(report, "reading records", e),
    }
    match conn.query_row("SELECT COUNT(*) FROM quarantine WHERE trim(reason) = ''", [], |r| r.get::<_, i64>(0)) {
        Ok(0) => {}
        Ok(n) => report.add(Invariant::Quarantine, format!("{n} quarantined records carry no reason")),
        Err(e) => fail(report, "reading the quarantine", e),
    }

    // 6: the chain verifies, and every code the bridge wrote on the portal has its write logged.
    match crate::store::synclog::verify(conn) {
        Ok(Ok(n)) => report.checked.log_entries = n,
        Ok(Err(broken)) => report.add(Invariant::SyncLog, format!("the chain does not verify: {broken}")),
        Err(e) => fail(report, "reading the sync log", e),
    }
    let logged = conn
        .prepare(
            "SELECT DISTINCT dossier FROM sync_log WHERE kind IN ('portal.acked', 'portal.closed_duplicate')
             AND dossier IS NOT NULL",
        )
        .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<BTreeSet<String>>>());
    match logged {
        Ok(logged) => {
            for (code, copy) in portal {
                if copy.creates + copy.updates > copy.source_writes && !logged.contains(code) {
                    report
                        .add(Invariant::SyncLog, format!("{code}: written on the portal by the bridge, never logged"));
                }
            }
        }
        Err(e) => fail(report, "reading the sync log", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(call: u64, code: &str, status: u8) -> Receipt {
        Receipt {
            seq: call,
            call,
            code: code.into(),
            at: jiff::Timestamp::UNIX_EPOCH,
            update: call > 1,
            status: Some(status),
        }
    }

    #[test]
    fn an_ended_code_sent_back_open_is_a_regression() {
        let ok = [receipt(1, "A", 2), receipt(2, "A", 4), receipt(3, "A", 5), receipt(4, "A", 9), receipt(5, "A", 10)];
        assert!(regressions(&ok).is_empty(), "open to open, open to ended, ended to ended");
        let closed = [receipt(1, "B", 9), receipt(2, "B", 8)];
        assert!(regressions(&closed).is_empty(), "a duplicate closed after it ended");
        let bad = [receipt(1, "A", 4), receipt(2, "C", 9), receipt(3, "A", 9), receipt(4, "C", 9), receipt(5, "A", 4)];
        let found = regressions(&bad);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].detail.starts_with("A: sent status 4") && found[0].detail.contains("call 5"), "{found:?}");
    }

    #[test]
    fn a_record_neither_stored_nor_quarantined_is_reported() {
        let key = |s: &str, i: &str| (s.to_string(), i.to_string());
        let stored: BTreeSet<_> = [key("city", "1"), key("moj", "1")].into();
        let quarantined: BTreeSet<_> = [key("city", "9")].into();
        let ids = vec![
            ("city".into(), "1".into(), false),
            ("city".into(), "9".into(), true),
            ("moj".into(), "1".into(), false),
        ];
        assert!(unaccounted(ids, &stored, &quarantined).is_empty());
        let ids = vec![("city".into(), "2".into(), false), ("moj".into(), "1".into(), true)];
        let found: Vec<String> = unaccounted(ids, &stored, &quarantined).into_iter().map(|v| v.detail).collect();
        assert_eq!(
            found,
            ["city/2: neither stored nor quarantined", "moj/1: malformed, not quarantined with a reason"]
        );
    }
}
