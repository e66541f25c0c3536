//! The simulator's own, dialect-free view of a dossier. Each upstream system renders it in its own
//! dialect (`city.rs`, `moj.rs`) and parses its fixtures back into it, so one set of change rules
//! drives both systems.

use jiff::{Timestamp, ToSpan, civil::Weekday};

use super::catalogue::{ApplicantKind, Level};
use crate::clock::vn_tz;

/// The upstream system a record lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    City,
    Moj,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::City => "city",
            Source::Moj => "moj",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    InPerson,
    Online,
    Postal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcedureRef {
    pub code: String,
    pub name: String,
    pub sector_code: String,
    pub sector_name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgencyRef {
    pub code: String,
    pub name: String,
    pub level: Level,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Applicant {
    pub kind: ApplicantKind,
    pub name: String,
    pub id_number: String,
    pub phone: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Supplement {
    pub id: String,
    pub content: String,
    pub requested_at: Timestamp,
    pub received_at: Option<Timestamp>,
}

/// One processing step. Fields one dialect lacks are optional, so that parsing a dialect's record and
/// rendering it again gives back the same record.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The city's task id (the ministry's steps have none).
    pub id: Option<String>,
    pub assignee: String,
    pub position: String,
    pub department: String,
    pub content: String,
    /// When the step was opened (the city records it; the ministry only records when it was done).
    pub started_at: Option<Timestamp>,
    pub at: Timestamp,
    pub due: Timestamp,
    pub status: u8,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// The city's file id (the ministry has none).
    pub id: Option<String>,
    /// The dossier component code.
    pub code: String,
    /// The component's name (the ministry shows it; the city shows the file name).
    pub name: Option<String>,
    pub filename: Option<String>,
    pub digitized: bool,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResultDoc {
    pub id: Option<String>,
    pub code: String,
    pub name: String,
    pub url: String,
    pub electronic: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fee {
    pub code: String,
    pub name: String,
    pub amount: u64,
    pub online: bool,
}

/// A well-formed dossier record of one upstream system. `status` uses the portal's vocabulary (1–10).
#[derive(Debug, Clone, PartialEq)]
pub struct Dossier {
    pub source: Source,
    /// The system's own record id: the city's 24-hex id, the ministry's numeric `hoSoId`.
    pub native_id: String,
    pub code: String,
    /// Another system's code for the same case: the ministry's `maHoSoGoc`, the city's `nationCode`.
    pub ref_code: Option<String>,
    pub procedure: ProcedureRef,
    pub agency: AgencyRef,
    pub applicant: Applicant,
    pub channel: Channel,
    pub applied_at: Timestamp,
    pub received_at: Timestamp,
    pub due_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub returned_at: Option<Timestamp>,
    pub refused_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    pub status: u8,
    pub supplements: Vec<Supplement>,
    pub steps: Vec<Step>,
    pub attachments: Vec<Attachment>,
    pub results: Vec<ResultDoc>,
    pub fees: Vec<Fee>,
    pub digitized: bool,
    pub paid_online: bool,
    pub vneid_verified: bool,
}

impl Dossier {
    /// When the case ended, as the portal should be told: finished for 9 and 10, refused for 3, and
    /// for 7 and 8 the moment of the change (neither dialect has a field for it, but a withdrawn or
    /// stopped record never changes again, so its updated time is that moment).
    pub fn ended_at(&self) -> Option<Timestamp> {
        match self.status {
            9 | 10 => self.completed_at,
            3 => self.refused_at,
            7 | 8 => Some(self.updated_at),
            _ => None,
        }
    }
}

/// End states of the portal's vocabulary.
pub fn is_end(status: u8) -> bool {
    matches!(status, 3 | 7 | 8 | 9 | 10)
}

/// Upstream systems stamp whole seconds; so do the simulator's changes, which makes equal timestamps
/// common (they are what tests a poller's cursor).
pub fn whole_second(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// The appointment a system fixes at receipt: `days` working days after the day of receipt, skipping
/// Saturdays and Sundays, at 17:00 local. Deliberately simpler than the real calendar (no holidays):
/// the bridge must push the source's value anyway and flag where its own computation disagrees.
pub fn due_after(received: Timestamp, days: u32) -> Timestamp {
    let tz = vn_tz();
    let mut date = received.to_zoned_datetime(tz.clone()).date();
    let mut left = days;
    while left > 0 {
        date = date.checked_add(1.day()).unwrap_or(date);
        if !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) {
            left -= 1;
        }
    }
    date.at(17, 0, 0, 0).to_zoned_datetime(tz).map(|z| z.timestamp()).unwrap_or(received)
}

/// Numeric ids compare as numbers when they have no leading zeros: shorter is smaller, then by text.
pub fn numeric_key(id: &str) -> (usize, &str) {
    (id.len(), id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_skips_the_weekend_and_lands_at_five_pm_local() {
        // Friday 2026-03-06 10:00 local + 1 working day = Monday 2026-03-09 17:00 local.
        let received: Timestamp = "2026-03-06T03:00:00Z".parse().unwrap();
        assert_eq!(due_after(received, 1), "2026-03-09T10:00:00Z".parse::<Timestamp>().unwrap());
        assert_eq!(due_after(received, 5), "2026-03-13T10:00:00Z".parse::<Timestamp>().unwrap());
    }
}
