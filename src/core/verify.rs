//! Verification: the portal's copy of a dossier against the bridge's canonical state
//! (architecture.md "Verify and repair"), as plain data.
//!
//! Both sides are read the same way, from a portal dossier object: the canonical one as the bridge
//! sends it (`payload::dossier_object`), the portal's as `TraCuuHoSo` answers it. Only what the
//! portal's figures are computed from is compared: the status, the received, due, finished and
//! returned times, and the portal's verdict (a copy shown late while the canonical state is on time).
//! Fields such as names or documents are not compared, so nothing personal ever reaches a finding.
//!
//! Pure: the store gathers the canonical objects, the portal task looks the codes up, this decides.

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};

use super::calendar::{Calendar, Pause};
use super::timefmt::{display_time, parse_portal_time};

/// The portal's end states (3, 7, 8, 9, 10).
fn is_end(status: u8) -> bool {
    matches!(status, 3 | 7 | 8 | 9 | 10)
}

/// What verification reads of one portal dossier object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// `TrangThaiHoSo`.
    pub status: Option<u8>,
    /// `NgayTiepNhan`.
    pub received_at: Option<Timestamp>,
    /// `NgayHenTra`.
    pub due_at: Option<Timestamp>,
    /// `NgayKetThucXuLy`.
    pub finished_at: Option<Timestamp>,
    /// `NgayTra`.
    pub returned_at: Option<Timestamp>,
    /// `NgayTuChoi`: not compared, but an end the portal's verdict reads.
    pub refused_at: Option<Timestamp>,
    /// `DanhSachHoSoBoSung`: the pauses the portal's verdict reads.
    pub supplements: Vec<Pause>,
    /// Whether the portal's rule shows the object late at the time it was judged (`None`: cannot
    /// tell, e.g. an end state without any end time, judged by when the portal first saw it ended).
    pub late: Option<bool>,
}

/// A value as text: the portal's values are strings, but numbers are accepted.
fn text<'a>(obj: &'a Map<String, Value>, field: &str) -> Option<std::borrow::Cow<'a, str>> {
    match obj.get(field)? {
        Value::String(s) if !s.trim().is_empty() => Some(std::borrow::Cow::Borrowed(s.trim())),
        Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        _ => None,
    }
}

fn time(obj: &Map<String, Value>, field: &str) -> Option<Timestamp> {
    text(obj, field).and_then(|s| parse_portal_time(&s).ok())
}

impl View {
    /// Read a portal dossier object. A time that is absent or unreadable is `None` (it is then
    /// reported as differing from a canonical time, which is what an operator needs to know).
    pub fn of(obj: &Map<String, Value>) -> View {
        let supplements = match obj.get("DanhSachHoSoBoSung") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_object)
                .filter_map(|s| {
                    Some(Pause { requested_at: time(s, "NgayBoSung")?, received_at: time(s, "NgayTiepNhanBoSung") })
                })
                .collect(),
            _ => Vec::new(),
        };
        View {
            status: text(obj, "TrangThaiHoSo").and_then(|s| s.parse().ok()),
            received_at: time(obj, "NgayTiepNhan"),
            due_at: time(obj, "NgayHenTra"),
            finished_at: time(obj, "NgayKetThucXuLy"),
            returned_at: time(obj, "NgayTra"),
            refused_at: time(obj, "NgayTuChoi"),
            supplements,
            late: None,
        }
    }

    /// The view with the portal's verdict at `as_of` (spec "How the portal judges a dossier"):
    /// against `NgayHenTra` moved by the supplement pauses, ended at `NgayKetThucXuLy`, else
    /// `NgayTra`, else `NgayTuChoi`; open and past due is late.
    pub fn judged(mut self, calendar: &Calendar, as_of: Timestamp) -> View {
        self.late = self.shown_late(calendar, as_of);
        self
    }

    fn shown_late(&self, calendar: &Calendar, as_of: Timestamp) -> Option<bool> {
        let due = self.due_at?;
        let ended = self.status.is_some_and(is_end);
        let end = if ended { Some(self.finished_at.or(self.returned_at).or(self.refused_at)?) } else { None };
        let (_, verdict) = calendar.judge(due, &self.supplements, end, as_of).ok()?;
        Some(verdict.is_some_and(|v| !v.is_on_time()))
    }
}

/// A time field the comparison reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TimeField {
    NgayTiepNhan,
    NgayHenTra,
    NgayKetThucXuLy,
    NgayTra,
}

impl TimeField {
    fn of(self, v: &View) -> Option<Timestamp> {
        match self {
            TimeField::NgayTiepNhan => v.received_at,
            TimeField::NgayHenTra => v.due_at,
            TimeField::NgayKetThucXuLy => v.finished_at,
            TimeField::NgayTra => v.returned_at,
        }
    }

    fn meaning(self) -> &'static str {
        match self {
            TimeField::NgayTiepNhan => "received",
            TimeField::NgayHenTra => "due",
            TimeField::NgayKetThucXuLy => "finished",
            TimeField::NgayTra => "returned",
        }
    }
}

/// One way the portal's copy differs from the canonical state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "divergence")]
pub enum Divergence {
    /// The portal does not know the code.
    Missing,
    /// `TrangThaiHoSo` differs.
    Status { portal: Option<u8>, canonical: Option<u8> },
    /// A time differs, or is missing on one side.
    Time { field: TimeField, portal: Option<Timestamp>, canonical: Option<Timestamp> },
    /// The portal shows the dossier late while the canonical state, judged by the same rule, is not.
    FalseLate,
}

impl Divergence {
    /// A short name for logs and counts.
    pub fn name(&self) -> &'static str {
        match self {
            Divergence::Missing => "missing",
            Divergence::Status { .. } => "status",
            Divergence::Time { .. } => "time",
            Divergence::FalseLate => "false_late",
        }
    }

    /// In words, with codes, statuses and times only (nothing personal).
    pub fn describe(&self) -> String {
        let t = |t: &Option<Timestamp>| t.map_or_else(|| "none".to_string(), display_time);
        match self {
            Divergence::Missing => "missing on the portal".to_string(),
            Divergence::Status { portal, canonical } => format!(
                "status {} on the portal, {} in the sources",
                portal.map_or_else(|| "none".to_string(), |s| s.to_string()),
                canonical.map_or_else(|| "none".to_string(), |s| s.to_string())
            ),
            Divergence::Time { field, portal, canonical } => {
                format!("{field:?} ({}) {} on the portal, {} in the sources", field.meaning(), t(portal), t(canonical))
            }
            Divergence::FalseLate => "shown late on the portal although on time".to_string(),
        }
    }
}

/// How the portal's copy (`None`: the portal does not know the code) differs from the canonical
/// object; empty when it shows what it should.
pub fn compare(canonical: &View, portal: Option<&View>) -> Vec<Divergence> {
    let Some(portal) = portal else {
        return vec![Divergence::Missing];
    };
    let mut out = Vec::new();
    if portal.status != canonical.status {
        out.push(Divergence::Status { portal: portal.status, canonical: canonical.status });
    }
    for field in [TimeField::NgayTiepNhan, TimeField::NgayHenTra, TimeField::NgayKetThucXuLy, TimeField::NgayTra] {
        let (p, c) = (field.of(portal), field.of(canonical));
        if p != c {
            out.push(Divergence::Time { field, portal: p, canonical: c });
        }
    }
    if portal.late == Some(true) && canonical.late != Some(true) {
        out.push(Divergence::FalseLate);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::core::merge::tests::rec;
    use crate::core::payload::dossier_object;
    use crate::core::status::Status;

    fn cal() -> Calendar {
        Calendar::parse(include_str!("../../config/calendar.toml")).expect("shipped calendar")
    }

    fn t(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().expect("an object").clone()
    }

    /// A dossier finished on time: received 2 March, due 20 March, finished 10 March.
    fn finished() -> Value {
        let mut r = rec("city", "H26.1-260302-0001", "2026-03-02T01:00:00Z", "2026-03-10T03:00:00Z", Status::Finished);
        r.finished_at = Some(t("2026-03-10T03:00:00Z"));
        dossier_object(&r, None)
    }

    fn view(v: &Value, as_of: &str) -> View {
        View::of(&obj(v.clone())).judged(&cal(), t(as_of))
    }

    #[test]
    fn the_same_object_does_not_diverge_whatever_the_value_types() {
        let canonical = finished();
        let mut shown = canonical.clone();
        // The portal may answer numbers where it was sent strings, and add fields of its own.
        shown["TrangThaiHoSo"] = json!(9);
        shown["NgayHenTra"] = json!(20260320170000u64);
        shown["ChuHoSo"] = json!("someone else entirely");
        let (c, p) = (view(&canonical, "2026-03-25T00:00:00Z"), view(&shown, "2026-03-25T00:00:00Z"));
        assert_eq!(c.status, Some(9));
        assert_eq!(c.finished_at, Some(t("2026-03-10T03:00:00Z")));
        assert_eq!(c.late, Some(false));
        assert_eq!(compare(&c, Some(&p)), vec![]);
    }

    #[test]
    fn a_code_the_portal_does_not_know_is_missing_and_nothing_else() {
        let c = view(&finished(), "2026-03-25T00:00:00Z");
        assert_eq!(compare(&c, None), vec![Divergence::Missing]);
    }

    #[test]
    fn a_stale_copy_shows_its_status_its_missing_finish_and_a_false_late() {
        let canonical = finished();
        let mut stale = canonical.clone();
        stale["TrangThaiHoSo"] = json!("4");
        stale.as_object_mut().unwrap().remove("NgayKetThucXuLy");
        // Judged after the due time: the stale copy is open and past due, the dossier ended on time.
        let as_of = "2026-03-25T00:00:00Z";
        let found = compare(&view(&canonical, as_of), Some(&view(&stale, as_of)));
        assert_eq!(
            found,
            vec![
                Divergence::Status { portal: Some(4), canonical: Some(9) },
                Divergence::Time {
                    field: TimeField::NgayKetThucXuLy,
                    portal: None,
                    canonical: Some(t("2026-03-10T03:00:00Z"))
                },
                Divergence::FalseLate,
            ]
        );
        assert_eq!(found[0].describe(), "status 4 on the portal, 9 in the sources");
        assert_eq!(
            found[1].describe(),
            "NgayKetThucXuLy (finished) none on the portal, 2026-03-10 10:00:00 in the sources"
        );
        // Before the due time the same stale copy is not (yet) shown late.
        let early = "2026-03-12T00:00:00Z";
        assert!(!compare(&view(&canonical, early), Some(&view(&stale, early))).contains(&Divergence::FalseLate));
    }

    #[test]
    fn a_time_one_second_off_or_unreadable_differs() {
        let canonical = finished();
        let mut shown = canonical.clone();
        shown["NgayTiepNhan"] = json!("20260302080001");
        shown["NgayHenTra"] = json!("20/03/2026 17:00");
        let found = compare(&View::of(&obj(canonical)), Some(&View::of(&obj(shown))));
        assert_eq!(
            found,
            vec![
                Divergence::Time {
                    field: TimeField::NgayTiepNhan,
                    portal: Some(t("2026-03-02T01:00:01Z")),
                    canonical: Some(t("2026-03-02T01:00:00Z"))
                },
                Divergence::Time {
                    field: TimeField::NgayHenTra,
                    portal: None,
                    canonical: Some(t("2026-03-20T10:00:00Z"))
                },
            ]
        );
    }

    #[test]
    fn a_copy_late_because_the_canonical_state_is_late_is_no_false_late() {
        // Finished after its due time: late on the portal, and late by the canonical state too.
        let mut r = rec("city", "H26.1-260302-0002", "2026-03-02T01:00:00Z", "2026-03-23T03:00:00Z", Status::Finished);
        r.finished_at = Some(t("2026-03-23T03:00:00Z"));
        let canonical = dossier_object(&r, None);
        let as_of = "2026-03-25T00:00:00Z";
        let c = view(&canonical, as_of);
        assert_eq!(c.late, Some(true));
        assert_eq!(compare(&c, Some(&view(&canonical, as_of))), vec![]);
    }

    #[test]
    fn the_supplement_pause_moves_the_verdict_and_an_end_without_a_time_is_not_judged() {
        // Open, past the due time, but a supplement is awaited: the portal's clock is stopped.
        let mut r = rec(
            "city",
            "H26.1-260302-0003",
            "2026-03-02T01:00:00Z",
            "2026-03-05T03:00:00Z",
            Status::SupplementRequested,
        );
        r.supplements.push(crate::core::record::Supplement {
            id: None,
            content: None,
            requested_at: t("2026-03-05T03:00:00Z"),
            received_at: None,
        });
        let waiting = dossier_object(&r, None);
        assert_eq!(view(&waiting, "2026-03-25T00:00:00Z").late, Some(false));
        let mut bare = waiting.clone();
        bare.as_object_mut().unwrap().remove("DanhSachHoSoBoSung");
        assert_eq!(view(&bare, "2026-03-25T00:00:00Z").late, Some(true), "without the pause it is overdue");
        // Ended without any end time: the portal judges by when it first saw it ended, unknown here.
        let mut ended = finished();
        ended.as_object_mut().unwrap().remove("NgayKetThucXuLy");
        assert_eq!(view(&ended, "2026-03-25T00:00:00Z").late, None);
    }
}
