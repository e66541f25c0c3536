//! The bridge's own reckoning of a dossier's due time, checked against the source's
//! (architecture.md "Deadlines").
//!
//! The source's `NgayHenTra` is the legal appointment and is what the bridge pushes; the portal
//! judges the dossier against it, moved by the supplement pauses. The bridge computes the due time
//! the law gives (procedure's limit, calendar, receipt) and says where the two part: a source due on
//! a day off, earlier or later than the law's, or with the pause already folded in (pushed beside
//! the supplements, the portal would count the pause twice); and where the portal would show late
//! a dossier the bridge's reckoning finds on time (a false late). Where the source gives no due
//! time the bridge's own is pushed.
//!
//! Pure: the store keeps the result beside the dossier, `status` and the deadline watch read it.

use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::calendar::{Calendar, DayKind, Pause, TimeLimit, Verdict};
use super::payload;
use super::procedures::ProcedureTable;
use super::record::SourceRecord;
use super::status::Status;
use super::timefmt::display_time;

/// When a source's due time counts as agreeing with the bridge's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DueTolerance {
    /// To the second.
    Exact,
    /// On the same calendar day (local): many systems give the appointment as the close of the
    /// day the law's due time falls on, and the portal's verdict is the same for any end the
    /// citizen can meet within that day's office hours.
    #[default]
    SameDay,
}

/// What the reckoning needs, from the configuration.
#[derive(Debug, Clone)]
pub struct DeadlineRules {
    pub calendar: Arc<Calendar>,
    pub procedures: Arc<ProcedureTable>,
    pub tolerance: DueTolerance,
}

/// One way a dossier's due time is in doubt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "finding")]
pub enum Finding {
    /// The procedure has no time limit in the procedures table: the source's due time cannot be
    /// checked.
    NoTimeLimit,
    /// The source gives no due time: the bridge pushes its own.
    NoSourceDue,
    /// The source's due time falls on a day off.
    OnDayOff { day_off: String },
    /// The source's due time is earlier than the law's: the portal may show the dossier late
    /// while it is on time.
    Earlier { computed: Timestamp },
    /// The source's due time is later than the law's: the portal may show on time a dossier
    /// that is late.
    Later { computed: Timestamp },
    /// The source's due time already holds the supplement pause; the supplements travel to the
    /// portal beside it, which moves it again.
    PauseFolded { computed: Timestamp },
    /// The source shows a supplement requested (status 5) but lists no supplement awaited: the
    /// portal's clock does not stop, and the pause the law grants is lost.
    PauseMissing,
    /// The dossier ended, and the portal would show it late; by the bridge's reckoning it is on
    /// time. (An open dossier's false late comes with time passing: the deadline watch finds it.)
    FalseLate,
    /// The reckoning failed (dates out of range).
    Unreckonable { error: String },
}

impl Finding {
    /// A short stable name (stored in `dossiers.due_flags`, shown by `status`), and the sync
    /// log's kind for it.
    fn names(&self) -> (&'static str, &'static str) {
        match self {
            Finding::NoTimeLimit => ("no_time_limit", "deadline.no_time_limit"),
            Finding::NoSourceDue => ("no_source_due", "deadline.no_source_due"),
            Finding::OnDayOff { .. } => ("on_day_off", "deadline.on_day_off"),
            Finding::Earlier { .. } => ("earlier", "deadline.earlier"),
            Finding::Later { .. } => ("later", "deadline.later"),
            Finding::PauseFolded { .. } => ("pause_folded", "deadline.pause_folded"),
            Finding::PauseMissing => ("pause_missing", "deadline.pause_missing"),
            Finding::FalseLate => ("false_late", "deadline.false_late"),
            Finding::Unreckonable { .. } => ("unreckonable", "deadline.unreckonable"),
        }
    }

    pub fn name(&self) -> &'static str {
        self.names().0
    }

    pub fn log_kind(&self) -> &'static str {
        self.names().1
    }

    /// Worth an operator's attention in the sync log (the others are counted by `status`).
    pub fn is_warning(&self) -> bool {
        !matches!(self, Finding::NoTimeLimit | Finding::NoSourceDue)
    }

    /// One line for the sync log and `explain`.
    pub fn describe(&self, check: &DueCheck) -> String {
        let source = check.source_due.map(display_time).unwrap_or_else(|| "—".into());
        match self {
            Finding::NoTimeLimit => "the procedure has no time limit in the procedures table: its due time \
                                     cannot be checked (add it to procedures.toml)"
                .into(),
            Finding::NoSourceDue => format!(
                "the source gives no due time; the bridge pushes its own, {}",
                check.computed_base.map(display_time).unwrap_or_else(|| "—".into())
            ),
            Finding::OnDayOff { day_off } => format!("the source's due time {source} falls on a day off ({day_off})"),
            Finding::Earlier { computed } => format!(
                "the source's due time {source} is earlier than the law's {}: the portal may show it late while \
                 it is on time",
                display_time(*computed)
            ),
            Finding::Later { computed } => format!(
                "the source's due time {source} is later than the law's {}: the portal may show it on time while \
                 it is late",
                display_time(*computed)
            ),
            Finding::PauseFolded { computed } => format!(
                "the source's due time {source} already holds the supplement pause (the law's due before the pause \
                 is {}): the portal adds the pause again",
                display_time(*computed)
            ),
            Finding::PauseMissing => "the source shows a supplement requested (status 5) but lists no supplement \
                                      awaited: the portal's clock keeps running (the source should send the request \
                                      in its supplements list)"
                .into(),
            Finding::FalseLate => format!(
                "the portal would show it late (due {}), but by the law's due time {} it is {}",
                check.portal_due.map(display_time).unwrap_or_else(|| "—".into()),
                check.computed_due.map(display_time).unwrap_or_else(|| "—".into()),
                check.computed_verdict.map(Verdict::name_vi).unwrap_or("not yet due")
            ),
            Finding::Unreckonable { error } => format!("the due time cannot be computed: {error}"),
        }
    }
}

/// The reckoning of one dossier at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DueCheck {
    pub limit: Option<TimeLimit>,
    /// The law's due time before pauses: what `NgayHenTra` should say.
    pub computed_base: Option<Timestamp>,
    /// The law's due time moved by the pauses, and the verdict against it.
    pub computed_due: Option<Timestamp>,
    pub computed_verdict: Option<Verdict>,
    pub source_due: Option<Timestamp>,
    /// What goes to the portal as `NgayHenTra`: the source's, else the bridge's.
    pub pushed_due: Option<Timestamp>,
    /// What the portal judges against (the pushed due moved by the pauses), and its verdict.
    pub portal_due: Option<Timestamp>,
    pub portal_verdict: Option<Verdict>,
    /// Not in an end state.
    pub open: bool,
    /// Open with a supplement still awaited: the clock is stopped.
    pub awaiting_supplement: bool,
    pub findings: Vec<Finding>,
}

impl DueCheck {
    /// The due time the dossier is watched against while its clock runs (at-risk, overdue,
    /// delivery order): `None` once it ended or while a supplement is awaited.
    pub fn watch_due(&self) -> Option<Timestamp> {
        (self.open && !self.awaiting_supplement).then_some(self.portal_due).flatten()
    }

    /// The findings' names, sorted and space-separated (`None` for none), as stored.
    pub fn flags(&self) -> Option<String> {
        let mut names: Vec<&str> = self.findings.iter().map(Finding::name).collect();
        names.sort_unstable();
        names.dedup();
        (!names.is_empty()).then(|| names.join(" "))
    }

    /// The findings whose names are not in `previous` (stored flags): what is new to log.
    pub fn new_findings<'a>(&'a self, previous: Option<&str>) -> impl Iterator<Item = &'a Finding> {
        let before: Vec<&str> = previous.map(|p| p.split(' ').collect()).unwrap_or_default();
        self.findings.iter().filter(move |f| !before.contains(&f.name()))
    }
}

impl DeadlineRules {
    /// Rules from a calendar and a procedures table, with the default tolerance.
    pub fn new(calendar: Calendar, procedures: ProcedureTable) -> Self {
        DeadlineRules {
            calendar: Arc::new(calendar),
            procedures: Arc::new(procedures),
            tolerance: DueTolerance::default(),
        }
    }

    /// The reckoning of a dossier's canonical state at `now`.
    pub fn check(&self, state: &SourceRecord, now: Timestamp) -> DueCheck {
        let cal = &self.calendar;
        let pauses: Vec<Pause> = state.supplements.iter().map(Pause::from).collect();
        let ended = payload::end_time(state);
        let open = !state.status.is_end();
        let mut findings = Vec::new();
        let limit = self.procedures.limit_for(&state.procedure.code);
        let computed = match (limit, state.arrived_at()) {
            (Some(limit), Some(received)) => {
                let case = super::calendar::DeadlineCase {
                    received_at: received,
                    limit,
                    supplements: &pauses,
                    ended_at: ended,
                    as_of: now,
                };
                match cal.assess(&case) {
                    Ok(a) => Some(a),
                    Err(e) => {
                        findings.push(Finding::Unreckonable { error: e.to_string() });
                        None
                    }
                }
            }
            (None, _) => {
                findings.push(Finding::NoTimeLimit);
                None
            }
            (Some(_), None) => None,
        };
        let source_due = state.due_at;
        if let Some(due) = source_due {
            let day = cal.local_date(due);
            if let DayKind::Weekend | DayKind::DayOff(_) = cal.day_kind(day) {
                findings.push(Finding::OnDayOff { day_off: format!("{day}, {}", cal.day_kind(day).label()) });
            }
            if let Some(a) = &computed {
                let agrees = |computed: Timestamp| match self.tolerance {
                    DueTolerance::Exact => due == computed,
                    DueTolerance::SameDay => cal.local_date(due) == cal.local_date(computed),
                };
                if !agrees(a.base_due) {
                    findings.push(if !a.paused.is_zero() && agrees(a.due) {
                        Finding::PauseFolded { computed: a.base_due }
                    } else if due < a.base_due {
                        Finding::Earlier { computed: a.base_due }
                    } else {
                        Finding::Later { computed: a.base_due }
                    });
                }
            }
        } else if computed.is_some() {
            findings.push(Finding::NoSourceDue);
        }
        let awaiting_supplement = open && pauses.iter().any(|p| p.received_at.is_none());
        if state.status == Status::SupplementRequested && !awaiting_supplement {
            findings.push(Finding::PauseMissing);
        }
        let pushed_due = source_due.or(computed.as_ref().map(|a| a.base_due));
        let (portal_due, portal_verdict) = match pushed_due.map(|d| cal.judge(d, &pauses, ended, now)) {
            Some(Ok((due, verdict))) => (Some(due), verdict),
            Some(Err(e)) => {
                findings.push(Finding::Unreckonable { error: e.to_string() });
                (None, None)
            }
            None => (None, None),
        };
        let computed_verdict = computed.as_ref().and_then(|a| a.verdict);
        if !open
            && computed.is_some()
            && portal_verdict.is_some_and(|v| !v.is_on_time())
            && computed_verdict.is_none_or(Verdict::is_on_time)
        {
            findings.push(Finding::FalseLate);
        }
        DueCheck {
            limit,
            computed_base: computed.as_ref().map(|a| a.base_due),
            computed_due: computed.as_ref().map(|a| a.due),
            computed_verdict,
            source_due,
            pushed_due,
            portal_due,
            portal_verdict,
            open,
            // As the portal sees it: a supplement request without its receipt.
            awaiting_supplement,
            findings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::calendar::LateReason;
    use crate::core::merge::tests::rec;
    use crate::core::record::Supplement;
    use crate::core::status::Status;

    fn rules(tolerance: DueTolerance) -> DeadlineRules {
        let calendar = Calendar::parse(include_str!("../../config/calendar.toml")).expect("shipped calendar");
        let procedures: ProcedureTable =
            toml::from_str("[[procedure]]\ncode = \"P3\"\nlimit = { working_days = 3 }\n").expect("table");
        DeadlineRules { tolerance, ..DeadlineRules::new(calendar, procedures) }
    }

    fn t(s: &str) -> Timestamp {
        // Local (UTC+7) wall-clock times read more naturally in a Vietnamese calendar's tests.
        format!("{s}+07:00").parse().expect("time")
    }

    /// A P3 dossier (3 working days) received at `received`, the source's due `due`.
    fn dossier(received: &str, due: Option<&str>, status: Status) -> SourceRecord {
        let mut r = rec("city", "HS-1", "2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z", status);
        r.procedure.code = "P3".into();
        r.received_at = Some(t(received));
        r.due_at = due.map(t);
        r
    }

    fn names(c: &DueCheck) -> Vec<&'static str> {
        c.findings.iter().map(Finding::name).collect()
    }

    #[test]
    fn a_source_due_at_the_close_of_the_laws_day_agrees_within_the_day_but_not_exactly() {
        // Monday 09:00 + 24 working hours = Thursday 09:00; the source says Thursday 17:00.
        let d = dossier("2026-03-09T09:00:00", Some("2026-03-12T17:00:00"), Status::Processing);
        let now = t("2026-03-10T08:00:00");
        let c = rules(DueTolerance::SameDay).check(&d, now);
        assert!(c.findings.is_empty(), "{:?}", c.findings);
        assert_eq!(c.computed_base, Some(t("2026-03-12T09:00:00")));
        assert_eq!(c.pushed_due, Some(t("2026-03-12T17:00:00")), "the source's due is what is pushed");
        assert_eq!(c.watch_due(), Some(t("2026-03-12T17:00:00")));
        let c = rules(DueTolerance::Exact).check(&d, now);
        assert_eq!(names(&c), ["later"]);
        assert!(
            c.findings[0].describe(&c).contains("later than the law's 2026-03-12 09:00:00"),
            "{}",
            c.findings[0].describe(&c)
        );
    }

    #[test]
    fn a_source_due_that_ignores_tet_is_flagged_and_its_on_time_finish_is_a_false_late() {
        // Thursday 12/02 10:00 + 3 working days over Tết (14–22/02 off) = Tuesday 24/02 10:00. A
        // system counting weekdays only says Tuesday 17/02, in the middle of Tết.
        let mut d = dossier("2026-02-12T10:00:00", Some("2026-02-17T17:00:00"), Status::Finished);
        d.finished_at = Some(t("2026-02-23T15:00:00"));
        let c = rules(DueTolerance::SameDay).check(&d, t("2026-03-01T08:00:00"));
        assert_eq!(c.computed_base, Some(t("2026-02-24T10:00:00")));
        assert_eq!(names(&c), ["on_day_off", "earlier", "false_late"]);
        assert!(c.findings[0].describe(&c).contains("Tết"), "{}", c.findings[0].describe(&c));
        assert_eq!(c.portal_verdict, Some(Verdict::Late(LateReason::AfterDue)));
        assert_eq!(c.computed_verdict, Some(Verdict::Early), "ended the working day before the due time's session");
        assert_eq!(c.watch_due(), None, "an ended dossier is not watched");
        assert_eq!(c.flags().as_deref(), Some("earlier false_late on_day_off"));
    }

    #[test]
    fn an_open_dossier_past_the_sources_due_but_not_the_laws_is_left_to_the_watch() {
        let d = dossier("2026-02-12T10:00:00", Some("2026-02-17T17:00:00"), Status::Processing);
        let c = rules(DueTolerance::SameDay).check(&d, t("2026-02-23T08:00:00"));
        assert_eq!(c.portal_verdict, Some(Verdict::Late(LateReason::OpenPastDue)));
        assert_eq!(c.computed_verdict, None, "not yet due by the law");
        // Stored findings are facts that hold until the record changes; this one changes with the
        // clock, so the watch reads it from the due times instead.
        assert!(!names(&c).contains(&"false_late"), "{:?}", c.findings);
        assert_eq!(c.watch_due(), Some(t("2026-02-17T17:00:00")));
        assert_eq!(c.computed_due, Some(t("2026-02-24T10:00:00")));
    }

    #[test]
    fn a_source_due_holding_the_pause_is_told_apart_from_a_plain_disagreement() {
        // Paused Tuesday 10/03 07:00 → Wednesday 11/03 07:00: 8 working hours. The law's due moves
        // from Thursday 12/03 09:00 to Friday 13/03 09:00; the source gives Friday.
        let mut d = dossier("2026-03-09T09:00:00", Some("2026-03-13T09:00:00"), Status::Processing);
        d.supplements.push(Supplement {
            id: None,
            requested_at: t("2026-03-10T07:00:00"),
            received_at: Some(t("2026-03-11T07:00:00")),
            content: None,
        });
        let c = rules(DueTolerance::SameDay).check(&d, t("2026-03-11T08:00:00"));
        assert_eq!(names(&c), ["pause_folded"]);
        assert_eq!(c.portal_due, Some(t("2026-03-16T09:00:00")), "the portal moves it again by the pause");
    }

    #[test]
    fn a_supplement_requested_without_its_request_listed_is_a_lost_pause() {
        let d = dossier("2026-03-09T09:00:00", Some("2026-03-12T17:00:00"), Status::SupplementRequested);
        let c = rules(DueTolerance::SameDay).check(&d, t("2026-03-10T08:00:00"));
        assert_eq!(names(&c), ["pause_missing"]);
        assert!(!c.awaiting_supplement, "the portal sees no pause");
        assert_eq!(c.watch_due(), Some(t("2026-03-12T17:00:00")), "so its clock runs: watched");
    }

    #[test]
    fn while_a_supplement_is_awaited_the_dossier_is_not_watched() {
        let mut d = dossier("2026-03-09T09:00:00", Some("2026-03-12T17:00:00"), Status::SupplementRequested);
        d.supplements.push(Supplement {
            id: None,
            requested_at: t("2026-03-10T07:00:00"),
            received_at: None,
            content: None,
        });
        let c = rules(DueTolerance::SameDay).check(&d, t("2026-03-20T08:00:00"));
        assert!(c.awaiting_supplement && c.open);
        assert_eq!(c.watch_due(), None);
        assert_eq!(c.portal_verdict, None, "an awaited supplement stops the clock: not late");
    }

    #[test]
    fn without_a_source_due_the_bridges_own_is_pushed_and_without_a_limit_nothing_is_checked() {
        let d = dossier("2026-03-09T09:00:00", None, Status::Processing);
        let c = rules(DueTolerance::SameDay).check(&d, t("2026-03-10T08:00:00"));
        assert_eq!(names(&c), ["no_source_due"]);
        assert_eq!(c.pushed_due, Some(t("2026-03-12T09:00:00")));
        assert!(!c.findings[0].is_warning());

        let mut d = dossier("2026-03-09T09:00:00", Some("2026-03-14T17:00:00"), Status::Processing);
        d.procedure.code = "UNLISTED".into();
        let c = rules(DueTolerance::SameDay).check(&d, t("2026-03-10T08:00:00"));
        assert_eq!(names(&c), ["no_time_limit", "on_day_off"], "a Saturday due is flagged even unchecked");
        assert_eq!(c.computed_due, None);
        assert_eq!(c.portal_due, Some(t("2026-03-14T17:00:00")));
    }

    #[test]
    fn only_findings_not_already_stored_are_new() {
        let mut d = dossier("2026-02-12T10:00:00", Some("2026-02-17T17:00:00"), Status::Finished);
        d.finished_at = Some(t("2026-02-23T15:00:00"));
        let c = rules(DueTolerance::SameDay).check(&d, t("2026-03-01T08:00:00"));
        let fresh: Vec<&str> = c.new_findings(Some("earlier on_day_off")).map(Finding::name).collect();
        assert_eq!(fresh, ["false_late"]);
        assert_eq!(c.new_findings(c.flags().as_deref()).count(), 0);
        assert_eq!(c.new_findings(None).count(), 3);
    }
}
