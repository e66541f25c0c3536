//! Operator attestation: a finish the sources do not hold.
//!
//! The seeds' "missing digital signature" case: the result was returned to the citizen on paper, on
//! time, but the electronic record never got its finish, so the portal shows the dossier late (or
//! open) for ever. An operator records what happened (`dvc-bridge attest`), with who and why; the
//! attested finish goes into the canonical state the portal gets, and the sync log and `explain`
//! show it. Pure: the store keeps the attestations and applies the newest at each merge.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::merge::MergeOutcome;
use super::record::SourceRecord;
use super::status::Status;

/// What an operator attests for a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    /// When the case was really finished (đã xử lý xong).
    pub finished_at: Timestamp,
    /// When the result was really handed to the citizen (đã trả kết quả), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returned_at: Option<Timestamp>,
    pub reason: String,
}

impl Attestation {
    /// Refuse an attestation that cannot be true: a return before the finish, a finish in the
    /// future or before the dossier was received.
    pub fn check(&self, received_at: Option<Timestamp>, now: Timestamp) -> Result<(), String> {
        if self.reason.trim().is_empty() {
            return Err("an attestation needs a reason".into());
        }
        if self.finished_at > now {
            return Err(format!("the finish {} is in the future", self.finished_at));
        }
        if let Some(r) = self.returned_at {
            if r < self.finished_at {
                return Err(format!("the return {r} is before the finish {}", self.finished_at));
            }
            if r > now {
                return Err(format!("the return {r} is in the future"));
            }
        }
        if let Some(received) = received_at
            && self.finished_at < received
        {
            return Err(format!("the finish {} is before the dossier was received ({received})", self.finished_at));
        }
        Ok(())
    }

    /// Whether it can apply to a case now in `status`: a case the sources ended otherwise
    /// (refused, withdrawn, stopped) was not finished, whatever is attested.
    pub fn applies_to(status: Status) -> Result<(), String> {
        match status {
            Status::Refused | Status::Withdrawn | Status::Stopped => Err(format!(
                "the sources say the dossier ended as {} ({}): a finish cannot be attested for it",
                status.code(),
                status.name_vi()
            )),
            _ => Ok(()),
        }
    }

    /// The canonical state with the attested finish: status at least finished (returned when a
    /// return is attested), the attested times in place of the sources'. The operator's word on
    /// when the case ended is what the attestation is for, so it wins over a later electronic
    /// finish. A state it does not apply to is left as it is.
    pub fn apply(&self, state: &mut SourceRecord) {
        if Self::applies_to(state.status).is_err() {
            return;
        }
        state.finished_at = Some(self.finished_at);
        if let Some(r) = self.returned_at {
            state.returned_at = Some(r);
            state.status = Status::Returned;
        } else if state.status != Status::Returned {
            state.status = Status::Finished;
        }
    }

    /// A merge's outcome with the attestation applied. An attested finish the sources have not
    /// caught up with is not a regression: the case stays at the attested end state.
    pub fn over(&self, outcome: MergeOutcome, previous: Option<Status>) -> MergeOutcome {
        match outcome {
            MergeOutcome::Ok(mut c) => {
                self.apply(&mut c.state);
                MergeOutcome::Ok(c)
            }
            MergeOutcome::Regression { mut canonical, from, .. } => {
                self.apply(&mut canonical.state);
                let to = canonical.state.status;
                if previous.is_none_or(|p| to.rank() >= p.rank()) {
                    MergeOutcome::Ok(canonical)
                } else {
                    MergeOutcome::Regression { canonical, from, to }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::merge::tests::rec;
    use crate::core::payload;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn attest(finished: &str, returned: Option<&str>) -> Attestation {
        Attestation {
            finished_at: t(finished), returned_at: returned.map(t), reason: "trả kết quả giấy".into()
        }
    }

    #[test]
    fn an_attested_finish_ends_an_open_case_at_the_attested_time() {
        let mut s = rec("city", "H26-1", "2026-03-02T02:00:00Z", "2026-03-05T02:00:00Z", Status::Processing);
        attest("2026-03-04T08:00:00Z", None).apply(&mut s);
        assert_eq!(s.status, Status::Finished);
        assert_eq!(payload::end_time(&s), Some(t("2026-03-04T08:00:00Z")));
        let mut s = rec("city", "H26-1", "2026-03-02T02:00:00Z", "2026-03-05T02:00:00Z", Status::Processing);
        attest("2026-03-04T08:00:00Z", Some("2026-03-04T09:00:00Z")).apply(&mut s);
        assert_eq!((s.status, s.returned_at), (Status::Returned, Some(t("2026-03-04T09:00:00Z"))));
        assert_eq!(payload::end_time(&s), Some(t("2026-03-04T08:00:00Z")), "the finish is the end");
    }

    #[test]
    fn it_wins_over_a_later_electronic_finish_and_never_lowers_a_return() {
        let mut s = rec("city", "H26-1", "2026-03-02T02:00:00Z", "2026-03-09T02:00:00Z", Status::Returned);
        s.finished_at = Some(t("2026-03-09T01:00:00Z"));
        s.returned_at = Some(t("2026-03-09T02:00:00Z"));
        attest("2026-03-04T08:00:00Z", None).apply(&mut s);
        assert_eq!(s.status, Status::Returned);
        assert_eq!(s.finished_at, Some(t("2026-03-04T08:00:00Z")));
    }

    #[test]
    fn a_case_ended_otherwise_is_left_alone() {
        let mut s = rec("city", "H26-1", "2026-03-02T02:00:00Z", "2026-03-05T02:00:00Z", Status::Withdrawn);
        let before = s.clone();
        attest("2026-03-04T08:00:00Z", None).apply(&mut s);
        assert_eq!(s, before);
        assert!(Attestation::applies_to(Status::Withdrawn).unwrap_err().contains("ended as 7"));
    }

    #[test]
    fn the_attested_finish_holds_while_the_sources_still_say_processing() {
        let s = rec("city", "H26-1", "2026-03-02T02:00:00Z", "2026-03-09T02:00:00Z", Status::Processing);
        let members = [crate::core::merge::Member { record: &s, kind: crate::core::descriptor::SystemKind::City }];
        let cutover = Default::default();
        let outcome = crate::core::merge::merge(&members, &cutover, Some(Status::Finished)).unwrap();
        assert!(matches!(outcome, MergeOutcome::Regression { .. }), "without it, a regression");
        match attest("2026-03-04T08:00:00Z", None).over(outcome, Some(Status::Finished)) {
            MergeOutcome::Ok(c) => assert_eq!(c.state.status, Status::Finished),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn impossible_times_are_refused() {
        let now = t("2026-03-10T00:00:00Z");
        let received = Some(t("2026-03-02T02:00:00Z"));
        assert!(attest("2026-03-04T08:00:00Z", None).check(received, now).is_ok());
        let e = attest("2026-03-11T08:00:00Z", None).check(received, now).unwrap_err();
        assert!(e.contains("future"), "{e}");
        let e = attest("2026-03-04T08:00:00Z", Some("2026-03-03T08:00:00Z")).check(received, now).unwrap_err();
        assert!(e.contains("before the finish"), "{e}");
        let e = attest("2026-03-01T08:00:00Z", None).check(received, now).unwrap_err();
        assert!(e.contains("before the dossier was received"), "{e}");
        let mut a = attest("2026-03-04T08:00:00Z", None);
        a.reason = " ".into();
        assert!(a.check(received, now).is_err());
    }
}
