//! The simulator's own, dialect-free view of a dossier. Each upstream system renders it in its own
//! dialect (`city.rs`, `moj.rs`, `moc.rs`, `mae.rs`, `mof.rs`, `mps.rs`) and parses its fixtures
//! back into it, so one set of change rules drives every system.

use jiff::{Timestamp, ToSpan, civil::Weekday};

use super::catalogue::{ApplicantKind, Level};
use crate::clock::vn_tz;

/// The upstream system a record lives in: the city's, and the centralised systems of the five
/// ministries whose procedures Hải Phòng's departments and communes handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    City,
    /// Bộ Tư pháp (Justice): civil status, certification, judicial records.
    Moj,
    /// Bộ Xây dựng (Construction): building permits, practising certificates.
    Moc,
    /// Bộ Nông nghiệp và Môi trường (Agriculture and Environment): land, environment.
    Mae,
    /// Bộ Tài chính (Finance): business and household-business registration.
    Mof,
    /// Bộ Công an (Public Security): residence, identity cards.
    Mps,
}

/// How a system's record ids sort, so that its list order can be kept in a compact index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdStyle {
    /// 24 hex digits shaped like a Mongo ObjectId (iGate).
    ObjectId,
    /// A decimal number without leading zeros.
    Number,
    /// A UUID, lower or upper case.
    Uuid,
}

impl Source {
    /// Every system, the city first: the order of every per-system list the simulator shows.
    pub const ALL: [Source; 6] = [Source::City, Source::Moj, Source::Moc, Source::Mae, Source::Mof, Source::Mps];

    pub fn name(self) -> &'static str {
        match self {
            Source::City => "city",
            Source::Moj => "moj",
            Source::Moc => "moc",
            Source::Mae => "mae",
            Source::Mof => "mof",
            Source::Mps => "mps",
        }
    }

    pub fn from_name(name: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Position in [`Source::ALL`], for per-system arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn is_ministry(self) -> bool {
        self != Source::City
    }

    /// The stem of the system's adapter descriptor in `adapters/`.
    pub fn adapter(self) -> &'static str {
        match self {
            Source::City => "city-igate",
            other => other.name(),
        }
    }

    /// Who runs the system, as a step's text names it.
    pub fn owner_title(self) -> &'static str {
        match self {
            Source::City => "thành phố",
            Source::Moj => "Bộ Tư pháp",
            Source::Moc => "Bộ Xây dựng",
            Source::Mae => "Bộ Nông nghiệp và Môi trường",
            Source::Mof => "Bộ Tài chính",
            Source::Mps => "Bộ Công an",
        }
    }

    /// A ministry system's dossier code prefix and sequence width (`BTP-260116-000123`); the city's
    /// codes start with the receiving agency's prefix instead.
    pub fn code_shape(self) -> Option<(&'static str, usize)> {
        match self {
            Source::City => None,
            Source::Moj => Some(("BTP", 6)),
            Source::Moc => Some(("BXD", 5)),
            Source::Mae => Some(("BNNMT", 6)),
            Source::Mof => Some(("BTC", 5)),
            Source::Mps => Some(("BCA", 6)),
        }
    }

    pub fn id_style(self) -> IdStyle {
        match self {
            Source::City => IdStyle::ObjectId,
            Source::Moj | Source::Moc | Source::Mof => IdStyle::Number,
            Source::Mae | Source::Mps => IdStyle::Uuid,
        }
    }

    /// Where the system serves submitted files and issued results.
    pub fn hosts(self) -> (&'static str, &'static str) {
        match self {
            Source::City => ("https://dichvucong.haiphong.gov.vn/files", "https://dichvucong.haiphong.gov.vn/ket-qua"),
            Source::Moj => ("https://dichvucong.moj.gov.vn/tep-tin", "https://dichvucong.moj.gov.vn/ket-qua"),
            Source::Moc => ("https://dvc.moc.gov.vn/files", "https://dvc.moc.gov.vn/results"),
            Source::Mae => ("https://dvc.mae.gov.vn/attachments", "https://dvc.mae.gov.vn/outcomes"),
            Source::Mof => ("https://dangkykinhdoanh.gov.vn/tai-lieu", "https://dangkykinhdoanh.gov.vn/ket-qua"),
            Source::Mps => ("https://dichvucong.bocongan.gov.vn/tep-tin", "https://dichvucong.bocongan.gov.vn/ket-qua"),
        }
    }

    /// The sort key of a record id, in the system's own id order (the tie-break of its list order).
    /// Ids the simulator did not make sort last.
    pub fn id_key(self, id: &str) -> IdKey {
        let parsed = match self.id_style() {
            IdStyle::Number if !id.starts_with('0') || id == "0" => id.parse::<u128>().ok(),
            IdStyle::Number => None,
            IdStyle::ObjectId if id.len() == 24 => u128::from_str_radix(id, 16).ok(),
            IdStyle::ObjectId => None,
            IdStyle::Uuid => {
                let hex: String = id.chars().filter(|c| *c != '-').collect();
                (hex.len() == 32).then(|| u128::from_str_radix(&hex, 16).ok()).flatten()
            }
        };
        let v = parsed.unwrap_or(u128::MAX);
        // Two halves rather than a u128: keeps the index entry 8-aligned, so a million of them
        // stay small.
        [(v >> 64) as u64, v as u64]
    }
}

/// A record id as a sortable pair of words (see [`Source::id_key`]).
pub type IdKey = [u64; 2];

/// A UUID (version 4 shape) from two words, lower case; Bộ Công an's .NET system writes it upper case.
pub fn uuid(hi: u64, lo: u64, upper: bool) -> String {
    let hi = (hi & 0xffff_ffff_ffff_0fff) | 0x4000;
    let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let s = format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    );
    if upper { s.to_uppercase() } else { s }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// The system's own record id, in its style (see [`IdStyle`]): iGate's 24 hex digits, a
    /// number, or a UUID.
    pub native_id: String,
    pub code: String,
    /// Another system's code for the same case: a ministry's reference to the city desk's code
    /// (`maHoSoGoc`, `originalDossierNo`, …), the city's `nationCode`.
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
