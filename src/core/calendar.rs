//! The civil-service working-time calendar and due times (thời hạn giải quyết), as
//! `spec/calendar-vn.md` states them.
//!
//! Data, not code: office sessions, weekends, days off and swapped working days come from
//! `config/calendar.toml`, which operators extend each year when the Government announces the next
//! year's holidays and swaps. Pure: no I/O and no clock; every function is given the instants it
//! reasons about, so `explain` and the cross-checks can be replayed exactly.
//!
//! Working time is counted on the wall clock of Asia/Ho_Chi_Minh, which has kept UTC+7 without
//! daylight saving since 1975: an hour of office time is an hour of elapsed time.
//!
//! Decisions where the spec is silent (each one is pinned by a test below):
//! - A date listed both as a day off and as a swapped working day is rejected when the file is read,
//!   not settled by a priority: it is almost always a copy-paste slip, and either silent choice would
//!   move due dates by a day. A swapped working day must fall on a weekend, for the same reason.
//! - One working day is one day's office hours (the sessions' total, 8 h by default, as the spec
//!   says), so N working days counted from the opening of a day end at the close of a day whatever
//!   hours an operator configures.
//! - The end of a session belongs to it ("reaching the end of a session counts as reached"), the
//!   start too. A receipt at exactly 11:30 or 17:00 starts the clock at the next session.
//! - Calendar-day limits, like every other limit, count from the receipt moved into office hours.
//! - Limits are whole numbers: a fractional working day is written in working hours (0,5 ngày =
//!   `Hours(4)` with the 8-hour day). The spec needs nothing finer.
//! - "Early" needs the work session containing the due time; for a due time outside office hours
//!   (a source's own due date may be anywhere) it is the last session that started before it.
//! - Overlapping supplement pauses are counted once; a pause still open runs until the dossier's end
//!   (or the time it is judged at).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::record::Supplement;
use crate::clock::vn_tz;

/// The longest break a single `[[day_off]]` row may cover. Tết, the longest, is 9 days: a longer
/// range is a typo in a year or a month, and would silently stop every clock.
const MAX_RANGE_DAYS: i32 = 31;

// ---------------------------------------------------------------------------------------------
// The data file
// ---------------------------------------------------------------------------------------------

/// `config/calendar.toml` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarFile {
    #[serde(default)]
    pub office: OfficeSpec,
    #[serde(default)]
    pub day_off: Vec<DayOffEntry>,
    #[serde(default)]
    pub working_day: Vec<WorkingDayEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficeSpec {
    /// Office sessions of a working day, local time, in order with a break between them.
    #[serde(default = "default_sessions")]
    pub sessions: Vec<SessionSpec>,
    /// Days off every week unless listed as a working day.
    #[serde(default = "default_weekend")]
    pub weekend: Vec<WeekdayName>,
    /// The same-day rule's cutoff: received before it, due at the close of that working day.
    #[serde(default = "default_cutoff", deserialize_with = "time_of_day")]
    pub same_day_cutoff: Time,
}

impl Default for OfficeSpec {
    fn default() -> Self {
        Self { sessions: default_sessions(), weekend: default_weekend(), same_day_cutoff: default_cutoff() }
    }
}

fn default_sessions() -> Vec<SessionSpec> {
    vec![
        SessionSpec { start: jiff::civil::time(7, 0, 0, 0), end: jiff::civil::time(11, 30, 0, 0) },
        SessionSpec { start: jiff::civil::time(13, 30, 0, 0), end: jiff::civil::time(17, 0, 0, 0) },
    ]
}
fn default_weekend() -> Vec<WeekdayName> {
    vec![WeekdayName::Saturday, WeekdayName::Sunday]
}
fn default_cutoff() -> Time {
    jiff::civil::time(15, 0, 0, 0)
}

/// One office session, `{ start = "07:00", end = "11:30" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSpec {
    #[serde(deserialize_with = "time_of_day")]
    pub start: Time,
    #[serde(deserialize_with = "time_of_day")]
    pub end: Time,
}

/// A weekday as operators write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeekdayName {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl WeekdayName {
    fn weekday(self) -> Weekday {
        match self {
            WeekdayName::Monday => Weekday::Monday,
            WeekdayName::Tuesday => Weekday::Tuesday,
            WeekdayName::Wednesday => Weekday::Wednesday,
            WeekdayName::Thursday => Weekday::Thursday,
            WeekdayName::Friday => Weekday::Friday,
            WeekdayName::Saturday => Weekday::Saturday,
            WeekdayName::Sunday => Weekday::Sunday,
        }
    }
}

/// A day off, or a range of them (`date` to `to`, inclusive).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DayOffEntry {
    #[serde(deserialize_with = "date_value")]
    pub date: Date,
    /// The last day of a range, inclusive.
    #[serde(default, deserialize_with = "optional_date")]
    pub to: Option<Date>,
    /// What the break is, as operators know it: shown in explanations.
    pub name: String,
}

/// A swapped working day (ngày làm bù) on a weekend.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkingDayEntry {
    #[serde(deserialize_with = "date_value")]
    pub date: Date,
    pub name: String,
}

/// A date as a TOML date (`2026-01-10`) or a string (`"2026-01-10"`), like the cutover table.
fn date_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
    super::cutover::date_or_text(d)
}

fn optional_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
    date_value(d).map(Some)
}

/// A time of day as `"HH:MM"` (or a TOML local time `07:00:00`).
fn time_of_day<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
    let bad = |shown: &dyn fmt::Display| {
        serde::de::Error::custom(format!("{shown} is not a time of day (write HH:MM, e.g. \"07:00\")"))
    };
    match toml::Value::deserialize(d)? {
        toml::Value::String(s) => parse_hh_mm(&s).ok_or_else(|| bad(&format_args!("{s:?}"))),
        toml::Value::Datetime(t) if t.date.is_none() && t.offset.is_none() => {
            t.to_string().parse().map_err(|_| bad(&t))
        }
        other => Err(bad(&other)),
    }
}

fn parse_hh_mm(s: &str) -> Option<Time> {
    let (h, m) = s.trim().split_once(':')?;
    let digits = |p: &str, max_len: usize| (1..=max_len).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(h, 2) || !digits(m, 2) || m.len() != 2 {
        return None;
    }
    Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

/// A problem in the calendar file: the key (dotted path) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarIssue {
    pub key: String,
    pub reason: String,
}

impl CalendarIssue {
    fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { key: key.into(), reason: reason.into() }
    }
}

impl fmt::Display for CalendarIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "key `{}`: {}", self.key, self.reason)
        }
    }
}

impl CalendarFile {
    /// Check everything and build the calendar; every problem is returned, so an operator fixes
    /// them in one go.
    pub fn build(self) -> Result<Calendar, Vec<CalendarIssue>> {
        let mut issues = Vec::new();
        let office = &self.office;

        if office.sessions.is_empty() {
            issues.push(CalendarIssue::new(
                "office.sessions",
                "at least one session is needed, e.g. { start = \"07:00\", end = \"11:30\" }",
            ));
        }
        for (i, s) in office.sessions.iter().enumerate() {
            if s.start >= s.end {
                issues.push(CalendarIssue::new(
                    format!("office.sessions[{i}]"),
                    format!("{}–{} does not end after it starts", hm(s.start), hm(s.end)),
                ));
            }
            if let Some(prev) = i.checked_sub(1).map(|p| &office.sessions[p])
                && s.start <= prev.end
            {
                issues.push(CalendarIssue::new(
                    format!("office.sessions[{i}]"),
                    format!(
                        "{}–{} overlaps or touches sessions[{}] {}–{}: list sessions in the order of the day with a \
                         break between them (write touching sessions as one)",
                        hm(s.start),
                        hm(s.end),
                        i - 1,
                        hm(prev.start),
                        hm(prev.end)
                    ),
                ));
            }
        }

        let mut weekend = [false; 7];
        for (i, w) in office.weekend.iter().enumerate() {
            let slot = &mut weekend[weekday_index(w.weekday())];
            if *slot {
                issues.push(CalendarIssue::new(format!("office.weekend[{i}]"), format!("{w:?} is listed twice")));
            }
            *slot = true;
        }
        if weekend.iter().all(|&w| w) {
            issues.push(CalendarIssue::new(
                "office.weekend",
                "every day of the week is a weekend: no day is left to work",
            ));
        }

        let (open, close) = match (office.sessions.first(), office.sessions.last()) {
            (Some(first), Some(last)) => (first.start, last.end),
            _ => (Time::midnight(), Time::midnight()),
        };
        if !office.sessions.is_empty() && (office.same_day_cutoff <= open || office.same_day_cutoff > close) {
            issues.push(CalendarIssue::new(
                "office.same_day_cutoff",
                format!(
                    "{} is outside office hours ({}–{}): the cutoff must fall within the working day",
                    hm(office.same_day_cutoff),
                    hm(open),
                    hm(close)
                ),
            ));
        }

        let mut days_off: BTreeMap<Date, (usize, String)> = BTreeMap::new();
        for (i, e) in self.day_off.iter().enumerate() {
            if e.name.trim().is_empty() {
                issues.push(CalendarIssue::new(
                    format!("day_off[{i}].name"),
                    "must not be empty: operators read it in explanations",
                ));
            }
            let last = e.to.unwrap_or(e.date);
            let length = e.date.until(last).map(|s| s.get_days() + 1).unwrap_or(i32::MAX);
            if last < e.date {
                issues.push(CalendarIssue::new(
                    format!("day_off[{i}].to"),
                    format!("{last} is before the range's first day {}", e.date),
                ));
                continue;
            }
            if length > MAX_RANGE_DAYS {
                issues.push(CalendarIssue::new(
                    format!("day_off[{i}].to"),
                    format!(
                        "{} to {last} is {length} days; the longest break (Tết) is 9 and at most {MAX_RANGE_DAYS} \
                         are accepted: check the year and the month",
                        e.date
                    ),
                ));
                continue;
            }
            for date in e.date.series(jiff::Span::new().days(1)).take_while(|d| *d <= last) {
                if let Some((j, name)) = days_off.get(&date) {
                    issues.push(CalendarIssue::new(
                        format!("day_off[{i}]"),
                        format!("{date} is already a day off in day_off[{j}] ({name:?}): list each day once"),
                    ));
                    break;
                }
                days_off.insert(date, (i, e.name.clone()));
            }
        }

        let mut working_days: BTreeMap<Date, String> = BTreeMap::new();
        for (i, e) in self.working_day.iter().enumerate() {
            let key = format!("working_day[{i}].date");
            if e.name.trim().is_empty() {
                issues.push(CalendarIssue::new(
                    format!("working_day[{i}].name"),
                    "must not be empty: operators read it in explanations",
                ));
            }
            if let Some((j, name)) = days_off.get(&e.date) {
                issues.push(CalendarIssue::new(
                    key,
                    format!(
                        "{} is also a day off in day_off[{j}] ({name:?}): a date is either off or worked, remove one",
                        e.date
                    ),
                ));
            } else if !weekend[weekday_index(e.date.weekday())] {
                issues.push(CalendarIssue::new(
                    key,
                    format!(
                        "{} is a {:?}, a working day anyway: a swapped working day falls on the weekend",
                        e.date,
                        e.date.weekday()
                    ),
                ));
            } else if working_days.insert(e.date, e.name.clone()).is_some() {
                issues.push(CalendarIssue::new(key, format!("{} is listed twice", e.date)));
            }
        }

        if !issues.is_empty() {
            return Err(issues);
        }
        let sessions: Vec<Session> = office.sessions.iter().map(|s| Session { start: s.start, end: s.end }).collect();
        let day_length = sessions.iter().fold(SignedDuration::ZERO, |sum, s| sum + s.start.duration_until(s.end));
        let years = days_off.keys().chain(working_days.keys()).map(|d| d.year()).collect();
        Ok(Calendar {
            tz: vn_tz(),
            sessions,
            open,
            close,
            day_length,
            weekend,
            same_day_cutoff: office.same_day_cutoff,
            days_off: days_off.into_iter().map(|(d, (_, name))| (d, name)).collect(),
            working_days,
            years,
        })
    }
}

fn weekday_index(w: Weekday) -> usize {
    usize::try_from(w.to_monday_zero_offset()).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// The calendar
// ---------------------------------------------------------------------------------------------

/// The working-time calendar, checked and ready to compute with.
#[derive(Debug, Clone)]
pub struct Calendar {
    tz: TimeZone,
    /// Sorted, non-empty, with a break between consecutive sessions.
    sessions: Vec<Session>,
    /// The first session's start and the last one's end: a day's opening and close.
    open: Time,
    close: Time,
    /// One working day of working time.
    day_length: SignedDuration,
    /// Indexed by Monday-zero weekday.
    weekend: [bool; 7],
    same_day_cutoff: Time,
    days_off: BTreeMap<Date, String>,
    working_days: BTreeMap<Date, String>,
    /// Years with at least one listed date: outside them only weekends are known.
    years: BTreeSet<i16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Session {
    start: Time,
    end: Time,
}

/// What kind of day a date is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayKind<'a> {
    Working,
    /// A weekend day the civil service works (ngày làm bù), with its listed name.
    SwappedWorking(&'a str),
    Weekend,
    /// A listed day off, with its name.
    DayOff(&'a str),
}

impl DayKind<'_> {
    pub fn is_working(self) -> bool {
        matches!(self, DayKind::Working | DayKind::SwappedWorking(_))
    }

    /// In words: "weekend", "day off: Tết Nguyên đán", "swapped working day: …"; empty for a
    /// plain working day.
    pub fn label(self) -> String {
        match self {
            DayKind::Working => String::new(),
            DayKind::SwappedWorking(name) => format!("swapped working day: {name}"),
            DayKind::Weekend => "weekend".into(),
            DayKind::DayOff(name) => format!("day off: {name}"),
        }
    }
}

/// A procedure's time limit (thời hạn giải quyết), as its catalogue entry states it. In TOML:
/// `{ working_days = 3 }`, `{ calendar_days = 15 }`, `{ hours = 4 }` or `"same_day"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeLimit {
    /// N working days (ngày làm việc): N working days of working time from the clock's start.
    WorkingDays(u32),
    /// N calendar days (ngày): due at the close of the N-th day after the clock's start, or of the
    /// next working day when that day is off (Civil Code 2015, Art. 148).
    CalendarDays(u32),
    /// N working hours (giờ làm việc); also how a fractional working day is written.
    Hours(u32),
    /// The same-day rule: before the cutoff (15:00), due at the close of that working day;
    /// otherwise at the close of the next one.
    SameDay,
}

impl fmt::Display for TimeLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: u32| if n == 1 { "" } else { "s" };
        match *self {
            TimeLimit::WorkingDays(n) => write!(f, "{n} working day{}", plural(n)),
            TimeLimit::CalendarDays(n) => write!(f, "{n} calendar day{}", plural(n)),
            TimeLimit::Hours(n) => write!(f, "{n} working hour{}", plural(n)),
            TimeLimit::SameDay => write!(f, "the same-day rule"),
        }
    }
}

/// Why a computation failed. Only absurd inputs reach these: dates beyond year 9999, or a negative
/// amount of working time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("the computation runs past the dates the calendar can represent (years -9999 to 9999)")]
    OutOfRange,
    #[error("an amount of working time cannot be negative")]
    NegativeDuration,
}

fn out_of_range<E>(_: E) -> CalendarError {
    CalendarError::OutOfRange
}

/// A supplement request's pause (status 5): from the request to the receipt of the supplement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub requested_at: Timestamp,
    /// `None` while the supplement is awaited.
    pub received_at: Option<Timestamp>,
}

impl From<&Supplement> for Pause {
    fn from(s: &Supplement) -> Self {
        Pause { requested_at: s.requested_at, received_at: s.received_at }
    }
}

/// The portal's verdict on a dossier (Decision 766, criterion 2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict", content = "reason")]
pub enum Verdict {
    /// Trước hạn: ended before the work session in which the due time falls.
    Early,
    /// Đúng hạn: ended at or before the due time, within its session.
    OnTime,
    /// Trễ hạn.
    Late(LateReason),
}

impl Verdict {
    /// Early counts as on time in the portal's on-time share.
    pub fn is_on_time(self) -> bool {
        !matches!(self, Verdict::Late(_))
    }

    pub fn name_vi(self) -> &'static str {
        match self {
            Verdict::Early => "trước hạn",
            Verdict::OnTime => "đúng hạn",
            Verdict::Late(_) => "trễ hạn",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LateReason {
    /// Ended after the due time.
    AfterDue,
    /// Still open after the due time (quá hạn).
    OpenPastDue,
    /// More than one supplement request: late by rule whatever the times.
    MoreThanOneSupplement,
}

/// Everything the due time and the verdict depend on.
#[derive(Debug, Clone, Copy)]
pub struct DeadlineCase<'a> {
    pub received_at: Timestamp,
    pub limit: TimeLimit,
    pub supplements: &'a [Pause],
    /// The end time the portal reads (finished, returned, stopped, refused, withdrawn); `None`
    /// while open.
    pub ended_at: Option<Timestamp>,
    /// When the case is judged: now, or a reporting period's end. An open supplement's pause runs
    /// until the end, or until this.
    pub as_of: Timestamp,
}

/// The computed due time and verdict, with the arithmetic in words when asked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// The first working instant at or after receipt.
    pub clock_start: Timestamp,
    /// The due time before supplement pauses.
    pub base_due: Timestamp,
    /// Working time paused for supplements (overlaps counted once).
    pub paused: SignedDuration,
    /// The due time the dossier is judged against (NgayHenTra as the bridge computes it).
    pub due: Timestamp,
    /// `None` while the dossier is open and not yet due.
    pub verdict: Option<Verdict>,
    /// Years the computation touched for which the calendar lists no days off: only weekends were
    /// skipped there, and the result is doubtful until the year's rows are added.
    pub uncovered_years: Vec<i16>,
    /// The arithmetic, one human-readable step per line ([`Calendar::explain`] only).
    pub steps: Vec<String>,
}

/// What a verdict depends on besides the due time.
struct Judged<'a> {
    supplements: &'a [Pause],
    ended_at: Option<Timestamp>,
    as_of: Timestamp,
}

/// One day of a walk through the calendar, kept only when explaining.
#[derive(Debug)]
struct DayLog {
    date: Date,
    /// `None` for a day off.
    counted: Option<Counted>,
}

#[derive(Debug)]
struct Counted {
    windows: Vec<(Time, Time)>,
    amount: SignedDuration,
    left: SignedDuration,
    /// The walk ended on this day.
    last: bool,
}

/// Explanation lines, or nothing at no cost when not explaining.
struct Trace<'s>(Option<&'s mut Vec<String>>);

impl Trace<'_> {
    fn on(&self) -> bool {
        self.0.is_some()
    }

    fn push(&mut self, line: impl FnOnce() -> String) {
        if let Some(steps) = self.0.as_deref_mut() {
            steps.push(line());
        }
    }
}

impl Calendar {
    /// Parse and check calendar file text. Syntax and type errors carry the key and the line.
    pub fn parse(text: &str) -> Result<Calendar, Vec<CalendarIssue>> {
        let de = toml::Deserializer::parse(text)
            .map_err(|e| vec![CalendarIssue::new("", e.to_string().trim_end().to_string())])?;
        let file: CalendarFile = serde_path_to_error::deserialize(de).map_err(|e| {
            vec![CalendarIssue::new(
                e.path().to_string().trim_start_matches('.').to_string(),
                e.inner().to_string().trim_end().to_string(),
            )]
        })?;
        file.build()
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// One working day of working time (the sessions' total: 8 h by default).
    pub fn working_day_length(&self) -> SignedDuration {
        self.day_length
    }

    /// A listed day off beats the weekend rule; a swapped working day beats it the other way.
    pub fn day_kind(&self, date: Date) -> DayKind<'_> {
        if let Some(name) = self.days_off.get(&date) {
            DayKind::DayOff(name)
        } else if let Some(name) = self.working_days.get(&date) {
            DayKind::SwappedWorking(name)
        } else if self.weekend[weekday_index(date.weekday())] {
            DayKind::Weekend
        } else {
            DayKind::Working
        }
    }

    /// The local calendar date of an instant.
    pub fn local_date(&self, t: Timestamp) -> Date {
        self.local(t).date()
    }

    pub fn is_working_day(&self, date: Date) -> bool {
        !self.days_off.contains_key(&date)
            && (self.working_days.contains_key(&date) || !self.weekend[weekday_index(date.weekday())])
    }

    /// Whether the file lists that year's days off at all.
    pub fn covers(&self, year: i16) -> bool {
        self.years.contains(&year)
    }

    /// Every listed day off, in order (for `check-config` and reports).
    pub fn days_off(&self) -> impl Iterator<Item = (Date, &str)> {
        self.days_off.iter().map(|(d, n)| (*d, n.as_str()))
    }

    /// Every listed swapped working day, in order.
    pub fn swapped_working_days(&self) -> impl Iterator<Item = (Date, &str)> {
        self.working_days.iter().map(|(d, n)| (*d, n.as_str()))
    }

    /// When the clock starts for something received at `t`: `t` itself during a session; the
    /// session's start before it or in a break (before 07:00 → 07:00, lunch → 13:30); the next
    /// working day's opening after the close (17:00 itself included) or on a day off.
    pub fn next_working_instant(&self, t: Timestamp) -> Result<Timestamp, CalendarError> {
        let local = self.local(t);
        let start = self.next_open(local)?;
        if start == local { Ok(t) } else { self.instant(start) }
    }

    /// `t` plus `amount` of working time. The end of a session counts as reached: 4 h 30 from 07:00
    /// is 11:30, not 13:30. A zero amount leaves an instant already in a session (its end included)
    /// where it is, so that adding a then b is always adding a + b.
    pub fn add_working_time(&self, t: Timestamp, amount: SignedDuration) -> Result<Timestamp, CalendarError> {
        if amount.is_negative() {
            return Err(CalendarError::NegativeDuration);
        }
        let end = self.walk(self.local(t), amount, None)?;
        self.instant(end)
    }

    /// The due time for `n` working days from receipt (`n` × 8 working hours by default).
    pub fn add_working_days(&self, received: Timestamp, n: u32) -> Result<Timestamp, CalendarError> {
        self.due(received, TimeLimit::WorkingDays(n))
    }

    /// The due time for `n` working hours from receipt.
    pub fn add_working_hours(&self, received: Timestamp, n: u32) -> Result<Timestamp, CalendarError> {
        self.due(received, TimeLimit::Hours(n))
    }

    /// The due time for `n` calendar days from receipt.
    pub fn add_calendar_days(&self, received: Timestamp, n: u32) -> Result<Timestamp, CalendarError> {
        self.due(received, TimeLimit::CalendarDays(n))
    }

    /// The due time under the same-day rule.
    pub fn same_day_due(&self, received: Timestamp) -> Result<Timestamp, CalendarError> {
        self.due(received, TimeLimit::SameDay)
    }

    /// The due time for a procedure's limit, before any supplement pause.
    pub fn due(&self, received: Timestamp, limit: TimeLimit) -> Result<Timestamp, CalendarError> {
        let (_, due) = self.base_due(received, limit, &mut Trace(None))?;
        self.instant(due)
    }

    /// Working time between two instants; zero when `to` is not after `from`.
    pub fn working_time_between(&self, from: Timestamp, to: Timestamp) -> Result<SignedDuration, CalendarError> {
        if to <= from {
            return Ok(SignedDuration::ZERO);
        }
        self.between(self.local(from), self.local(to), None)
    }

    /// The working time paused by supplement requests, overlapping pauses counted once; a pause
    /// still open runs until `until`.
    pub fn paused_working_time(&self, pauses: &[Pause], until: Timestamp) -> Result<SignedDuration, CalendarError> {
        merged(pauses, until)
            .into_iter()
            .try_fold(SignedDuration::ZERO, |sum, (a, b)| Ok(sum + self.working_time_between(a, b)?))
    }

    /// A due time moved later by paused working time.
    pub fn extend_due(&self, due: Timestamp, paused: SignedDuration) -> Result<Timestamp, CalendarError> {
        if paused.is_zero() { Ok(due) } else { self.add_working_time(due, paused) }
    }

    /// The portal's verdict for a dossier that ended at `end`, judged against `due` (already moved
    /// by its pauses): more than one supplement request is late by rule; otherwise early when `end`
    /// is before the start of the work session in which `due` falls, on time when `end` ≤ `due`,
    /// late after.
    pub fn classify(
        &self,
        end: Timestamp,
        due: Timestamp,
        supplement_requests: usize,
    ) -> Result<Verdict, CalendarError> {
        if supplement_requests > 1 {
            return Ok(Verdict::Late(LateReason::MoreThanOneSupplement));
        }
        if end > due {
            return Ok(Verdict::Late(LateReason::AfterDue));
        }
        let session_start = self.instant(self.session_start_of(self.local(due))?)?;
        Ok(if end < session_start { Verdict::Early } else { Verdict::OnTime })
    }

    /// The due time and the verdict of one case.
    pub fn assess(&self, case: &DeadlineCase<'_>) -> Result<Assessment, CalendarError> {
        self.evaluate(case, &mut Trace(None))
    }

    /// The portal's judgement of a dossier whose due time is given (the pushed `NgayHenTra`) rather
    /// than computed: that due time moved by the supplement pauses, and the verdict (`None`: open
    /// and not yet due).
    pub fn judge(
        &self,
        due: Timestamp,
        supplements: &[Pause],
        ended_at: Option<Timestamp>,
        as_of: Timestamp,
    ) -> Result<(Timestamp, Option<Verdict>), CalendarError> {
        let (moved, _, verdict) = self.judge_traced(self.local(due), supplements, ended_at, as_of, &mut Trace(None))?;
        Ok((self.instant(moved)?, verdict))
    }

    /// [`assess`](Self::assess), with every step of the arithmetic in words (for `dvc-bridge explain`).
    pub fn explain(&self, case: &DeadlineCase<'_>) -> Result<Assessment, CalendarError> {
        let mut steps = Vec::new();
        let mut a = self.evaluate(case, &mut Trace(Some(&mut steps)))?;
        a.steps = steps;
        Ok(a)
    }

    // ---- internals: everything below works on local wall-clock time ----

    fn local(&self, t: Timestamp) -> DateTime {
        self.tz.to_datetime(t)
    }

    fn instant(&self, dt: DateTime) -> Result<Timestamp, CalendarError> {
        self.tz.to_ambiguous_timestamp(dt).compatible().map_err(out_of_range)
    }

    fn next_working_day(&self, mut date: Date) -> Result<Date, CalendarError> {
        // Terminates: validation leaves at least one working weekday, and days off are finite.
        loop {
            date = date.tomorrow().map_err(out_of_range)?;
            if self.is_working_day(date) {
                return Ok(date);
            }
        }
    }

    /// Half-open sessions: a session's end is not a moment the clock can start at.
    fn next_open(&self, at: DateTime) -> Result<DateTime, CalendarError> {
        let (date, time) = (at.date(), at.time());
        if self.is_working_day(date)
            && let Some(s) = self.sessions.iter().find(|s| time < s.end)
        {
            return Ok(date.to_datetime(time.max(s.start)));
        }
        Ok(self.next_working_day(date)?.to_datetime(self.open))
    }

    /// The start of the session containing `at` (its end included), or for an instant outside
    /// office hours the start of the last session before it.
    fn session_start_of(&self, at: DateTime) -> Result<DateTime, CalendarError> {
        let (mut date, time) = (at.date(), at.time());
        if self.is_working_day(date)
            && let Some(s) = self.sessions.iter().rev().find(|s| s.start <= time)
        {
            return Ok(date.to_datetime(s.start));
        }
        let last_start = self.sessions.last().map_or(self.open, |s| s.start);
        loop {
            date = date.yesterday().map_err(out_of_range)?;
            if self.is_working_day(date) {
                return Ok(date.to_datetime(last_start));
            }
        }
    }

    /// Closed sessions: an amount that runs out exactly at a session's end ends there.
    fn walk(
        &self,
        from: DateTime,
        amount: SignedDuration,
        mut log: Option<&mut Vec<DayLog>>,
    ) -> Result<DateTime, CalendarError> {
        let (mut date, mut time) = (from.date(), from.time());
        let mut left = amount;
        loop {
            if self.is_working_day(date) {
                let (mut windows, mut counted) = (Vec::new(), SignedDuration::ZERO);
                for s in &self.sessions {
                    if time > s.end {
                        continue;
                    }
                    let start = time.max(s.start);
                    let available = start.duration_until(s.end);
                    if left <= available {
                        let end = date.to_datetime(start).checked_add(left).map_err(out_of_range)?;
                        if let Some(log) = log.as_deref_mut() {
                            windows.push((start, end.time()));
                            let counted =
                                Counted { windows, amount: counted + left, left: SignedDuration::ZERO, last: true };
                            log.push(DayLog { date, counted: Some(counted) });
                        }
                        return Ok(end);
                    }
                    left -= available;
                    counted += available;
                    if log.is_some() && !available.is_zero() {
                        windows.push((start, s.end));
                    }
                }
                if let Some(log) = log.as_deref_mut() {
                    log.push(DayLog { date, counted: Some(Counted { windows, amount: counted, left, last: false }) });
                }
            } else if let Some(log) = log.as_deref_mut() {
                log.push(DayLog { date, counted: None });
            }
            date = date.tomorrow().map_err(out_of_range)?;
            time = Time::midnight();
        }
    }

    fn between(
        &self,
        from: DateTime,
        to: DateTime,
        mut log: Option<&mut Vec<DayLog>>,
    ) -> Result<SignedDuration, CalendarError> {
        let mut total = SignedDuration::ZERO;
        let mut date = from.date();
        loop {
            if self.is_working_day(date) {
                let lo = if date == from.date() { from.time() } else { Time::midnight() };
                let hi = if date == to.date() { to.time() } else { Time::MAX };
                for s in &self.sessions {
                    let (a, b) = (lo.max(s.start), hi.min(s.end));
                    if a < b {
                        total += a.duration_until(b);
                    }
                }
            } else if let Some(log) = log.as_deref_mut() {
                log.push(DayLog { date, counted: None });
            }
            if date >= to.date() {
                return Ok(total);
            }
            date = date.tomorrow().map_err(out_of_range)?;
        }
    }

    /// The clock's start and the due time, local, before pauses.
    fn base_due(
        &self,
        received: Timestamp,
        limit: TimeLimit,
        trace: &mut Trace,
    ) -> Result<(DateTime, DateTime), CalendarError> {
        let got = self.local(received);
        let start = self.next_open(got)?;
        trace.push(|| self.describe_receipt(got, start));
        let due = match limit {
            TimeLimit::WorkingDays(n) => {
                let amount = self
                    .day_length
                    .checked_mul(i32::try_from(n).map_err(out_of_range)?)
                    .ok_or(CalendarError::OutOfRange)?;
                trace.push(|| {
                    format!("+{limit} = {} of working time ({} a working day)", span(amount), span(self.day_length))
                });
                self.walk_traced(start, amount, trace)?
            }
            TimeLimit::Hours(n) => {
                let amount = SignedDuration::from_hours(i64::from(n));
                trace.push(|| format!("+{limit} = {} of working time", span(amount)));
                self.walk_traced(start, amount, trace)?
            }
            TimeLimit::CalendarDays(n) => {
                let nth =
                    start.date().checked_add(SignedDuration::from_hours(24 * i64::from(n))).map_err(out_of_range)?;
                trace.push(|| format!("+{limit} from {} → {}", day(start.date()), day(nth)));
                let mut last = nth;
                if !self.is_working_day(nth) {
                    last = self.next_working_day(nth)?;
                    trace.push(|| {
                        format!(
                            "{} is not a working day ({}) → the next working day, {}",
                            day(nth),
                            self.day_kind(nth).label(),
                            day(last)
                        )
                    });
                }
                last.to_datetime(self.close)
            }
            TimeLimit::SameDay => {
                let cutoff = hm(self.same_day_cutoff);
                if start.time() < self.same_day_cutoff {
                    trace.push(|| {
                        format!(
                            "same-day rule: the clock starts before {cutoff} → due at the close of that working day"
                        )
                    });
                    start.date().to_datetime(self.close)
                } else {
                    let next = self.next_working_day(start.date())?;
                    trace.push(|| {
                        format!(
                            "same-day rule: the clock starts at or after {cutoff} → due at the close of the next \
                             working day, {}",
                            day(next)
                        )
                    });
                    next.to_datetime(self.close)
                }
            }
        };
        trace.push(|| format!("→ due {}", when(due)));
        Ok((start, due))
    }

    fn walk_traced(
        &self,
        from: DateTime,
        amount: SignedDuration,
        trace: &mut Trace,
    ) -> Result<DateTime, CalendarError> {
        if !trace.on() {
            return self.walk(from, amount, None);
        }
        let mut log = Vec::new();
        let end = self.walk(from, amount, Some(&mut log))?;
        self.render_walk(&log, trace);
        Ok(end)
    }

    fn evaluate(&self, case: &DeadlineCase<'_>, trace: &mut Trace) -> Result<Assessment, CalendarError> {
        let (start, base_due) = self.base_due(case.received_at, case.limit, trace)?;
        let (due, paused, verdict) = self.judge_traced(base_due, case.supplements, case.ended_at, case.as_of, trace)?;
        let due_at = self.instant(due)?;

        let uncovered_years: Vec<i16> = (start.year()..=due.year()).filter(|y| !self.covers(*y)).collect();
        if !uncovered_years.is_empty() {
            let years = uncovered_years.iter().map(i16::to_string).collect::<Vec<_>>().join(", ");
            trace.push(|| {
                format!(
                    "warning: the calendar lists no days off for {years}; only weekends were skipped there (add the \
                     year to config/calendar.toml)"
                )
            });
        }

        Ok(Assessment {
            clock_start: self.instant(start)?,
            base_due: self.instant(base_due)?,
            paused,
            due: due_at,
            verdict,
            uncovered_years,
            steps: Vec::new(),
        })
    }

    /// The pauses and the verdict against a base due time (local): the due time moved by the
    /// pauses, the paused working time, and the verdict (`None`: open and not yet due).
    fn judge_traced(
        &self,
        base_due: DateTime,
        supplements: &[Pause],
        ended_at: Option<Timestamp>,
        as_of: Timestamp,
        trace: &mut Trace,
    ) -> Result<(DateTime, SignedDuration, Option<Verdict>), CalendarError> {
        let case = Judged { supplements, ended_at, as_of };
        let until = case.ended_at.unwrap_or(case.as_of);

        // Each pause on its own line first (explaining only); the sum below counts overlaps once.
        let mut separate = SignedDuration::ZERO;
        let explaining = trace.on();
        for (i, p) in case.supplements.iter().enumerate().filter(|_| explaining) {
            let (from, to) = (self.local(p.requested_at), self.local(p.received_at.unwrap_or(until)));
            let mut log = Vec::new();
            let amount = if to > from { self.between(from, to, Some(&mut log))? } else { SignedDuration::ZERO };
            separate += amount;
            let received = match p.received_at {
                Some(_) => format!("received {}", when(to)),
                None => format!("still awaited at {}", when(to)),
            };
            let holidays = self.holiday_runs(&log);
            trace.push(|| {
                let skipped = if holidays.is_empty() {
                    String::new()
                } else {
                    format!(" (not counted: {})", holidays.join("; "))
                };
                format!(
                    "supplement {}: requested {}, {received} → {} of working time paused{skipped}",
                    i + 1,
                    when(from),
                    span(amount)
                )
            });
        }
        let paused = self.paused_working_time(case.supplements, until)?;
        if paused < separate {
            trace.push(|| format!("overlapping pauses are counted once: {} paused in all", span(paused)));
        }
        let due = if paused.is_zero() {
            base_due
        } else {
            trace.push(|| format!("due {} + {} paused", when(base_due), span(paused)));
            let due = self.walk_traced(base_due, paused, trace)?;
            trace.push(|| format!("→ due {}", when(due)));
            due
        };
        let due_at = self.instant(due)?;

        let verdict = match case.ended_at {
            Some(end) => {
                let v = self.classify(end, due_at, case.supplements.len())?;
                if trace.on() {
                    let line = self.describe_verdict(self.local(end), due, v, case.supplements.len())?;
                    trace.push(|| line);
                }
                Some(v)
            }
            None if case.supplements.len() > 1 => {
                let n = case.supplements.len();
                trace.push(|| {
                    format!(
                        "open with {n} supplement requests: more than one is late by rule (766, criterion 2.1) → \
                         trễ hạn"
                    )
                });
                Some(Verdict::Late(LateReason::MoreThanOneSupplement))
            }
            None if case.as_of > due_at => {
                trace.push(|| {
                    format!("still open at {}, after the due time → trễ hạn (quá hạn)", when(self.local(case.as_of)))
                });
                Some(Verdict::Late(LateReason::OpenPastDue))
            }
            None => {
                trace.push(|| format!("still open at {}, not yet due", when(self.local(case.as_of))));
                None
            }
        };
        Ok((due, paused, verdict))
    }

    fn describe_receipt(&self, got: DateTime, start: DateTime) -> String {
        let kind = self.day_kind(got.date());
        if start == got {
            let note =
                if let DayKind::SwappedWorking(_) = kind { format!(" ({})", kind.label()) } else { String::new() };
            return format!("received {}{note} → the clock starts then", when(got));
        }
        let why = if !kind.is_working() {
            kind.label()
        } else if got.time() < self.open {
            "before office hours".into()
        } else if got.time() >= self.close {
            "after office hours".into()
        } else {
            "between sessions".into()
        };
        format!("received {} ({why}) → the clock starts {}", when(got), when(start))
    }

    fn describe_verdict(
        &self,
        end: DateTime,
        due: DateTime,
        v: Verdict,
        supplements: usize,
    ) -> Result<String, CalendarError> {
        Ok(match v {
            Verdict::Late(LateReason::MoreThanOneSupplement) => format!(
                "ended {}; {supplements} supplement requests: more than one is late by rule (766, criterion 2.1) \
                 → trễ hạn",
                when(end)
            ),
            Verdict::Late(_) => format!("ended {}, after the due time {} → trễ hạn", when(end), when(due)),
            Verdict::Early | Verdict::OnTime => {
                let session = self.session_start_of(due)?;
                let rel = if v == Verdict::Early { "before" } else { "not before" };
                format!(
                    "ended {} ≤ due, {rel} {}, the start of the session the due time falls in → {}",
                    when(end),
                    when(session),
                    v.name_vi()
                )
            }
        })
    }

    /// One line per run of similar days: days off with the same reason, full ordinary working
    /// days, and each partial or swapped day on its own.
    fn render_walk(&self, log: &[DayLog], trace: &mut Trace) {
        let is_full = |d: &DayLog| {
            d.counted.as_ref().is_some_and(|c| !c.last && c.amount == self.day_length)
                && self.day_kind(d.date) == DayKind::Working
        };
        let mut i = 0;
        while i < log.len() {
            let first = &log[i];
            let mut j = i;
            match &first.counted {
                None => {
                    let label = self.day_kind(first.date).label();
                    while j + 1 < log.len()
                        && log[j + 1].counted.is_none()
                        && self.day_kind(log[j + 1].date).label() == label
                    {
                        j += 1;
                    }
                    trace.push(|| format!("{}: {label}, not counted", days(first.date, log[j].date)));
                }
                Some(_) if is_full(first) => {
                    while j + 1 < log.len() && is_full(&log[j + 1]) {
                        j += 1;
                    }
                    let n = j - i + 1;
                    let left = log[j].counted.as_ref().map_or(SignedDuration::ZERO, |c| c.left);
                    trace.push(|| {
                        let what =
                            if n == 1 { "a full working day".to_string() } else { format!("{n} full working days") };
                        format!("{}: {what}, {} left", days(first.date, log[j].date), span(left))
                    });
                }
                Some(c) => {
                    let label = self.day_kind(first.date).label();
                    let note = if label.is_empty() { String::new() } else { format!(" ({label})") };
                    let windows: Vec<String> =
                        c.windows.iter().map(|(a, b)| format!("{}–{}", hm(*a), hm(*b))).collect();
                    let windows =
                        if windows.is_empty() { "nothing left in office hours".into() } else { windows.join(", ") };
                    trace.push(|| {
                        if c.last {
                            format!("{}{note}: {windows} = {} → reached", day(first.date), span(c.amount))
                        } else {
                            format!("{}{note}: {windows} = {}, {} left", day(first.date), span(c.amount), span(c.left))
                        }
                    });
                }
            }
            i = j + 1;
        }
    }

    /// The listed days off inside a pause, as runs: weekends go without saying.
    fn holiday_runs(&self, log: &[DayLog]) -> Vec<String> {
        let mut runs: Vec<(Date, Date, String)> = Vec::new();
        for d in log {
            let DayKind::DayOff(name) = self.day_kind(d.date) else { continue };
            match runs.last_mut() {
                Some((_, last, n)) if n == name && last.tomorrow().ok() == Some(d.date) => *last = d.date,
                _ => runs.push((d.date, d.date, name.to_string())),
            }
        }
        runs.into_iter().map(|(a, b, name)| format!("{} {name}", days(a, b))).collect()
    }
}

/// Pauses as intervals ending at `until` when still open, sorted and with overlaps merged.
fn merged(pauses: &[Pause], until: Timestamp) -> Vec<(Timestamp, Timestamp)> {
    let mut spans: Vec<(Timestamp, Timestamp)> =
        pauses.iter().map(|p| (p.requested_at, p.received_at.unwrap_or(until))).filter(|(a, b)| a < b).collect();
    spans.sort();
    let mut out: Vec<(Timestamp, Timestamp)> = Vec::with_capacity(spans.len());
    for (a, b) in spans {
        match out.last_mut() {
            Some((_, end)) if a <= *end => *end = (*end).max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

// ---- formatting for explanations ----

fn hm(t: Time) -> String {
    if t.second() == 0 && t.subsec_nanosecond() == 0 {
        t.strftime("%H:%M").to_string()
    } else {
        t.strftime("%H:%M:%S").to_string()
    }
}

fn day(d: Date) -> String {
    d.strftime("%a %Y-%m-%d").to_string()
}

fn days(first: Date, last: Date) -> String {
    if first == last { day(first) } else { format!("{} – {}", day(first), day(last)) }
}

fn when(dt: DateTime) -> String {
    format!("{} {}", day(dt.date()), hm(dt.time()))
}

/// Working time for people: "24 h", "6 h 48 min", "45 min", "1 h 30 s".
pub fn span(d: SignedDuration) -> String {
    let secs = d.as_secs();
    let parts = [(secs / 3600, "h"), (secs % 3600 / 60, "min"), (secs % 60, "s")];
    let shown: Vec<String> = parts.iter().filter(|(n, _)| *n != 0).map(|(n, unit)| format!("{n} {unit}")).collect();
    if shown.is_empty() { "0 h".into() } else { shown.join(" ") }
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use proptest::prelude::*;

    use super::TimeLimit::{CalendarDays as Cd, Hours, SameDay, WorkingDays as Wd};
    use super::*;

    const SHIPPED: &str = include_str!("../../config/calendar.toml");

    static CAL: LazyLock<Calendar> =
        LazyLock::new(|| Calendar::parse(SHIPPED).unwrap_or_else(|e| panic!("config/calendar.toml: {e:?}")));

    /// A local Asia/Ho_Chi_Minh time: "2026-01-10 09:12".
    fn at(s: &str) -> Timestamp {
        let dt: DateTime = s.replace(' ', "T").parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        vn_tz().to_timestamp(dt).unwrap()
    }

    /// Back to local time, with seconds only when there are some.
    fn show(t: Timestamp) -> String {
        let dt = vn_tz().to_datetime(t);
        format!("{} {}", dt.date(), hm(dt.time()))
    }

    fn date(s: &str) -> Date {
        s.parse().unwrap()
    }

    fn mins(n: i64) -> SignedDuration {
        SignedDuration::from_mins(n)
    }

    /// Every day off of `spec/calendar-vn.md`, as (first, last) ranges.
    const SPEC_DAYS_OFF: &[(&str, &str)] = &[
        ("2025-01-01", "2025-01-01"),
        ("2025-01-25", "2025-02-02"),
        ("2025-04-07", "2025-04-07"),
        ("2025-04-30", "2025-05-04"),
        ("2025-08-30", "2025-09-02"),
        ("2026-01-01", "2026-01-04"),
        ("2026-02-14", "2026-02-22"),
        ("2026-04-27", "2026-04-27"),
        ("2026-04-30", "2026-05-03"),
        ("2026-08-29", "2026-09-02"),
    ];
    const SPEC_SWAPPED: &[&str] = &["2025-04-26", "2026-01-10", "2026-08-22"];

    fn expand(first: &str, last: &str) -> Vec<Date> {
        let (first, last) = (date(first), date(last));
        first.series(jiff::Span::new().days(1)).take_while(|d| *d <= last).collect()
    }

    fn check_due(rows: &[(&str, TimeLimit, &str)]) {
        for (received, limit, want) in rows {
            let got = CAL.due(at(received), *limit).unwrap();
            assert_eq!(show(got), *want, "received {received}, {limit}");
        }
    }

    // ---- the data file ----

    #[test]
    fn the_shipped_file_holds_exactly_the_spec_dates() {
        let want: Vec<Date> = SPEC_DAYS_OFF.iter().flat_map(|(a, b)| expand(a, b)).collect();
        let got: Vec<Date> = CAL.days_off().map(|(d, _)| d).collect();
        assert_eq!(got, want);
        assert_eq!(got.len(), 1 + 9 + 1 + 5 + 4 + 4 + 9 + 1 + 4 + 5);
        let swapped: Vec<Date> = CAL.swapped_working_days().map(|(d, _)| d).collect();
        assert_eq!(swapped, SPEC_SWAPPED.iter().map(|d| date(d)).collect::<Vec<_>>());
        assert_eq!(CAL.working_day_length(), SignedDuration::from_hours(8));
        assert_eq!(CAL.same_day_cutoff, jiff::civil::time(15, 0, 0, 0));
        assert_eq!((CAL.open, CAL.close), (jiff::civil::time(7, 0, 0, 0), jiff::civil::time(17, 0, 0, 0)));
        assert!(CAL.covers(2025) && CAL.covers(2026) && !CAL.covers(2027));
        // 24/11 is not confirmed: a working Tuesday by default.
        assert_eq!(CAL.day_kind(date("2026-11-24")), DayKind::Working);
        assert_eq!(
            CAL.day_kind(date("2026-02-17")),
            DayKind::DayOff("Tết Nguyên đán Bính Ngọ (mùng 1 Tết: thứ Ba 17/2)")
        );
    }

    #[test]
    fn the_commented_24_november_example_adds_the_day_by_configuration_alone() {
        let commented = "# [[day_off]]\n# date = 2026-11-24\n# name = \"Ngày Văn hóa Việt Nam\"\n";
        assert!(SHIPPED.contains(commented), "the example is in config/calendar.toml");
        let c = Calendar::parse(&SHIPPED.replace(commented, &commented.replace("# ", ""))).unwrap();
        assert_eq!(c.day_kind(date("2026-11-24")), DayKind::DayOff("Ngày Văn hóa Việt Nam"));
        assert_eq!(show(c.due(at("2026-11-23 10:00"), Wd(1)).unwrap()), "2026-11-25 10:00");
        assert_eq!(show(CAL.due(at("2026-11-23 10:00"), Wd(1)).unwrap()), "2026-11-24 10:00");
    }

    #[test]
    fn an_empty_file_means_default_office_hours_and_no_holidays() {
        let c = Calendar::parse("").unwrap();
        assert_eq!((c.open, c.close, c.working_day_length()), (CAL.open, CAL.close, SignedDuration::from_hours(8)));
        assert_eq!(c.day_kind(date("2026-01-01")), DayKind::Working);
        assert_eq!(c.day_kind(date("2026-01-03")), DayKind::Weekend);
        assert!(!c.covers(2026));
    }

    #[test]
    fn other_office_hours_make_a_working_day_of_their_total() {
        let c = Calendar::parse(
            "[office]\nsessions = [{ start = \"07:30\", end = \"11:30\" }, { start = \"13:00\", end = \"16:30\" }]\n\
             same_day_cutoff = \"14:30\"\n",
        )
        .unwrap();
        assert_eq!(c.working_day_length(), mins(450));
        // A working day from the opening ends at the close, not 30 minutes into the next day.
        assert_eq!(show(c.due(at("2026-03-09 07:30"), Wd(1)).unwrap()), "2026-03-09 16:30");
        assert_eq!(show(c.due(at("2026-03-09 14:29"), SameDay).unwrap()), "2026-03-09 16:30");
        assert_eq!(show(c.due(at("2026-03-09 14:30"), SameDay).unwrap()), "2026-03-10 16:30");
    }

    #[test]
    fn bad_files_are_rejected_with_the_key_and_a_reason() {
        let off_and_working =
            "[[day_off]]\ndate = 2026-01-10\nname = \"x\"\n[[working_day]]\ndate = 2026-01-10\nname = \"y\"\n";
        let rows: &[(&str, &str, &str)] = &[
            (
                "[office]\nsessions = [{ start = \"7h\", end = \"11:30\" }]",
                "office.sessions[0].start",
                "\"7h\" is not a time of day",
            ),
            (
                "[office]\nsessions = [{ start = \"07:00\", end = \"25:00\" }]",
                "office.sessions[0].end",
                "not a time of day",
            ),
            (
                "[office]\nsessions = [{ start = \"07:00\", end = \"11:30\" }, { start = \"11:00\", end = \"17:00\" }]",
                "office.sessions[1]",
                "overlaps or touches sessions[0] 07:00–11:30",
            ),
            (
                "[office]\nsessions = [{ start = \"07:00\", end = \"11:30\" }, { start = \"11:30\", end = \"17:00\" }]",
                "office.sessions[1]",
                "write touching sessions as one",
            ),
            (
                "[office]\nsessions = [{ start = \"11:30\", end = \"07:00\" }]",
                "office.sessions[0]",
                "does not end after it starts",
            ),
            ("[office]\nsessions = []", "office.sessions", "at least one session"),
            (
                "[office]\nsame_day_cutoff = \"18:00\"",
                "office.same_day_cutoff",
                "18:00 is outside office hours (07:00–17:00)",
            ),
            ("[office]\nweekend = [\"saturday\", \"saturday\"]", "office.weekend[1]", "listed twice"),
            ("[office]\nweekend = [\"saturdy\"]", "office.weekend[0]", "unknown variant `saturdy`"),
            (
                "[office]\nweekend = [\"monday\", \"tuesday\", \"wednesday\", \"thursday\", \"friday\", \"saturday\", \
                 \"sunday\"]",
                "office.weekend",
                "no day is left to work",
            ),
            ("[office]\nhours = 8", "office.hours", "unknown field `hours`"),
            ("[[day_offs]]\ndate = 2026-01-01\nname = \"x\"", "day_offs", "unknown field `day_offs`"),
            (
                "[[day_off]]\ndate = 2026-01-01\nuntil = 2026-01-04\nname = \"x\"",
                "day_off[0].until",
                "unknown field `until`",
            ),
            ("[[day_off]]\ndate = 20260101\nname = \"x\"", "day_off[0].date", "is not a plain date"),
            ("[[day_off]]\ndate = \"2026-02-30\"\nname = \"x\"", "day_off[0].date", "is not a date"),
            ("[[day_off]]\ndate = 2026-01-01\nname = \"\"", "day_off[0].name", "must not be empty"),
            (
                "[[day_off]]\ndate = 2026-01-04\nto = 2026-01-01\nname = \"x\"",
                "day_off[0].to",
                "2026-01-01 is before the range's first day 2026-01-04",
            ),
            ("[[day_off]]\ndate = 2026-02-14\nto = 2027-02-22\nname = \"x\"", "day_off[0].to", "check the year"),
            (
                "[[day_off]]\ndate = 2026-04-30\nto = 2026-05-03\nname = \"a\"\n\
                 [[day_off]]\ndate = 2026-05-01\nname = \"b\"",
                "day_off[1]",
                "2026-05-01 is already a day off in day_off[0] (\"a\")",
            ),
            (
                off_and_working,
                "working_day[0].date",
                "2026-01-10 is also a day off in day_off[0] (\"x\"): a date is either off or worked",
            ),
            (
                "[[working_day]]\ndate = 2026-01-09\nname = \"x\"",
                "working_day[0].date",
                "is a Friday, a working day anyway",
            ),
            (
                "[[working_day]]\ndate = 2026-01-10\nname = \"x\"\n[[working_day]]\ndate = 2026-01-10\nname = \"y\"",
                "working_day[1].date",
                "listed twice",
            ),
            ("[office", "", "line 1"),
        ];
        for (text, key, reason) in rows {
            let issues = Calendar::parse(text).err().unwrap_or_else(|| panic!("accepted: {text}"));
            assert!(
                issues.iter().any(|i| i.key == *key && i.reason.contains(reason)),
                "{text}\nwanted key {key:?} with {reason:?}, got {issues:#?}"
            );
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = "[office]\nsame_day_cutoff = \"06:00\"\n[[day_off]]\ndate = 2026-01-10\nname = \"\"\n\
                    [[working_day]]\ndate = 2026-01-10\nname = \"y\"\n";
        let keys: Vec<String> = Calendar::parse(text).unwrap_err().into_iter().map(|i| i.key).collect();
        assert_eq!(keys, ["office.same_day_cutoff", "day_off[0].name", "working_day[0].date"]);
    }

    #[test]
    fn time_limits_read_from_toml() {
        #[derive(Deserialize)]
        struct P {
            limit: TimeLimit,
        }
        let read = |s: &str| toml::from_str::<P>(s).map(|p| p.limit);
        assert_eq!(read("limit = { working_days = 3 }").unwrap(), Wd(3));
        assert_eq!(read("limit = { calendar_days = 15 }").unwrap(), Cd(15));
        assert_eq!(read("limit = { hours = 4 }").unwrap(), Hours(4));
        assert_eq!(read("limit = \"same_day\"").unwrap(), SameDay);
        assert!(read("limit = { working_day = 3 }").is_err());
        assert_eq!(Wd(1).to_string(), "1 working day");
        assert_eq!(Cd(15).to_string(), "15 calendar days");
    }

    // ---- days off and swapped days ----

    #[test]
    fn every_listed_day_off_is_off_and_the_days_around_each_block_work() {
        for (first, last) in SPEC_DAYS_OFF {
            for d in expand(first, last) {
                assert!(!CAL.is_working_day(d), "{d} is a day off");
                assert!(matches!(CAL.day_kind(d), DayKind::DayOff(_)), "{d}");
            }
        }
        for d in [
            "2024-12-31",
            "2025-01-02",
            "2025-01-24",
            "2025-02-03",
            "2025-04-04",
            "2025-04-08",
            "2025-04-29",
            "2025-05-05",
            "2025-08-29",
            "2025-09-03",
            "2025-12-31",
            "2026-01-05",
            "2026-02-13",
            "2026-02-23",
            "2026-04-24",
            "2026-04-28",
            "2026-04-29",
            "2026-05-04",
            "2026-08-28",
            "2026-09-03",
        ] {
            assert_eq!(CAL.day_kind(date(d)), DayKind::Working, "{d}");
        }
    }

    #[test]
    fn one_working_day_before_each_holiday_block_lands_after_it() {
        check_due(&[
            ("2024-12-31 10:00", Wd(1), "2025-01-02 10:00"),
            ("2025-01-24 10:00", Wd(1), "2025-02-03 10:00"),
            ("2025-04-04 10:00", Wd(1), "2025-04-08 10:00"),
            ("2025-04-29 10:00", Wd(1), "2025-05-05 10:00"),
            ("2025-08-29 10:00", Wd(1), "2025-09-03 10:00"),
            ("2025-12-31 10:00", Wd(1), "2026-01-05 10:00"),
            ("2026-02-13 10:00", Wd(1), "2026-02-23 10:00"),
            ("2026-04-24 10:00", Wd(1), "2026-04-28 10:00"),
            ("2026-04-29 10:00", Wd(1), "2026-05-04 10:00"),
            ("2026-08-28 10:00", Wd(1), "2026-09-03 10:00"),
        ]);
    }

    #[test]
    fn received_inside_each_holiday_block_the_clock_starts_the_next_working_morning() {
        check_due(&[
            ("2025-01-01 09:00", Wd(1), "2025-01-02 17:00"),
            ("2025-01-28 09:00", Wd(1), "2025-02-03 17:00"),
            ("2025-04-07 09:00", Wd(1), "2025-04-08 17:00"),
            ("2025-05-01 09:00", Wd(1), "2025-05-05 17:00"),
            ("2025-09-01 09:00", Wd(1), "2025-09-03 17:00"),
            ("2026-01-02 09:00", Wd(1), "2026-01-05 17:00"),
            ("2026-02-17 09:00", Wd(1), "2026-02-23 17:00"),
            ("2026-04-27 09:00", Wd(1), "2026-04-28 17:00"),
            ("2026-05-01 09:00", Wd(1), "2026-05-04 17:00"),
            ("2026-08-31 09:00", Wd(1), "2026-09-03 17:00"),
        ]);
    }

    #[test]
    fn several_working_days_across_holiday_blocks() {
        check_due(&[
            // Mon 20/1 09:00: 21, 22, 23, 24, [Tết 25/1–2/2], 3, 4, 5, 6, 7, [weekend], Mon 10/2.
            ("2025-01-20 09:00", Wd(10), "2025-02-10 09:00"),
            ("2025-04-03 14:00", Wd(3), "2025-04-09 14:00"),
            ("2025-08-28 11:00", Wd(2), "2025-09-03 11:00"),
            ("2025-12-30 08:00", Wd(3), "2026-01-06 08:00"),
            ("2026-02-09 14:00", Wd(5), "2026-02-23 14:00"),
            // Thu 23/4: Fri 24, [27/4 Hùng Kings], Tue 28, Wed 29, [30/4–3/5], Mon 4/5.
            ("2026-04-23 09:30", Wd(4), "2026-05-04 09:30"),
            ("2026-08-27 08:00", Wd(3), "2026-09-04 08:00"),
        ]);
    }

    #[test]
    fn swapped_saturdays_are_working_days() {
        for d in SPEC_SWAPPED {
            assert!(matches!(CAL.day_kind(date(d)), DayKind::SwappedWorking(_)), "{d}");
        }
        assert_eq!(CAL.day_kind(date("2026-01-17")), DayKind::Weekend);
        check_due(&[
            ("2026-01-10 09:12", Wd(3), "2026-01-14 09:12"),
            ("2026-01-09 10:00", Wd(1), "2026-01-10 10:00"),
            // Fri 25/4 → the swapped Sat 26/4 → Mon 28/4 → Tue 29/4 → [30/4–4/5] → Mon 5/5.
            ("2025-04-25 16:00", Wd(1), "2025-04-26 16:00"),
            ("2025-04-25 16:00", Wd(2), "2025-04-28 16:00"),
            ("2025-04-25 16:00", Wd(3), "2025-04-29 16:00"),
            ("2025-04-25 16:00", Wd(4), "2025-05-05 16:00"),
            ("2026-08-21 16:00", Wd(1), "2026-08-22 16:00"),
            ("2026-08-22 10:00", Wd(1), "2026-08-24 10:00"),
            // An ordinary Saturday: the clock starts on Monday.
            ("2026-01-17 10:00", Wd(1), "2026-01-19 17:00"),
        ]);
    }

    // ---- receipt outside office hours and the session-end rule ----

    #[test]
    fn the_clock_starts_at_the_next_working_instant() {
        let rows = [
            ("2026-03-09 00:00", "2026-03-09 07:00"),
            ("2026-03-09 06:30", "2026-03-09 07:00"),
            ("2026-03-09 07:00", "2026-03-09 07:00"),
            ("2026-03-09 11:29", "2026-03-09 11:29"),
            ("2026-03-09 11:30", "2026-03-09 13:30"),
            ("2026-03-09 12:15", "2026-03-09 13:30"),
            ("2026-03-09 16:59", "2026-03-09 16:59"),
            ("2026-03-09 17:00", "2026-03-10 07:00"),
            ("2026-03-09 23:59", "2026-03-10 07:00"),
            ("2026-03-13 18:00", "2026-03-16 07:00"),
            ("2026-03-14 10:00", "2026-03-16 07:00"),
            ("2026-02-14 09:00", "2026-02-23 07:00"),
            ("2026-01-09 18:00", "2026-01-10 07:00"),
            ("2025-12-31 17:30", "2026-01-05 07:00"),
        ];
        for (received, want) in rows {
            assert_eq!(show(CAL.next_working_instant(at(received)).unwrap()), want, "received {received}");
        }
        let exact = at("2026-03-09 09:12:07.5");
        assert_eq!(CAL.next_working_instant(exact).unwrap(), exact);
    }

    #[test]
    fn after_hours_lunch_and_early_receipt() {
        check_due(&[
            ("2026-03-09 18:30", Wd(1), "2026-03-10 17:00"),
            // Lunch: from 13:30, 3 h 30 on Monday and 4 h 30 on Tuesday end at 11:30, not 13:30.
            ("2026-03-09 12:00", Wd(1), "2026-03-10 11:30"),
            ("2026-03-09 06:00", Wd(1), "2026-03-09 17:00"),
            ("2026-03-14 10:00", Wd(2), "2026-03-17 17:00"),
            ("2026-03-09 11:30", Hours(1), "2026-03-09 14:30"),
            ("2026-03-09 17:00", Hours(1), "2026-03-10 08:00"),
        ]);
    }

    #[test]
    fn reaching_the_end_of_a_session_counts_as_reached() {
        let rows = [
            ("2026-03-09 07:00", 240, "2026-03-09 11:00"),
            ("2026-03-09 07:00", 270, "2026-03-09 11:30"),
            ("2026-03-09 07:00", 271, "2026-03-09 13:31"),
            ("2026-03-09 07:00", 480, "2026-03-09 17:00"),
            ("2026-03-09 07:00", 481, "2026-03-10 07:01"),
            ("2026-03-09 11:30", 0, "2026-03-09 11:30"),
            ("2026-03-09 11:30", 1, "2026-03-09 13:31"),
            ("2026-03-09 17:00", 0, "2026-03-09 17:00"),
            ("2026-03-09 12:00", 0, "2026-03-09 13:30"),
            ("2026-03-13 17:00", 60, "2026-03-16 08:00"),
            ("2026-02-13 16:00", 60, "2026-02-13 17:00"),
            ("2026-02-13 16:00", 61, "2026-02-23 07:01"),
        ];
        for (from, n, want) in rows {
            assert_eq!(show(CAL.add_working_time(at(from), mins(n)).unwrap()), want, "{from} + {n} min");
        }
        assert_eq!(CAL.add_working_time(at("2026-03-09 07:00"), mins(-1)), Err(CalendarError::NegativeDuration));
        check_due(&[
            ("2026-03-09 07:00", Hours(4), "2026-03-09 11:00"),
            ("2026-03-09 09:00", Hours(4), "2026-03-09 15:00"),
            ("2026-03-09 07:00", Hours(8), "2026-03-09 17:00"),
            ("2026-03-09 15:00", Hours(4), "2026-03-10 09:00"),
            ("2026-03-13 13:30", Hours(12), "2026-03-17 07:30"),
            ("2026-02-13 16:00", Hours(2), "2026-02-23 08:00"),
        ]);
        assert_eq!(show(CAL.add_working_days(at("2026-03-09 07:00"), 1).unwrap()), "2026-03-09 17:00");
        assert_eq!(show(CAL.add_working_hours(at("2026-03-09 07:00"), 4).unwrap()), "2026-03-09 11:00");
    }

    // ---- the same-day rule and calendar days ----

    #[test]
    fn the_same_day_rule() {
        check_due(&[
            ("2026-03-09 14:59", SameDay, "2026-03-09 17:00"),
            ("2026-03-09 15:00", SameDay, "2026-03-10 17:00"),
            ("2026-03-09 15:01", SameDay, "2026-03-10 17:00"),
            ("2026-03-09 06:30", SameDay, "2026-03-09 17:00"),
            ("2026-03-09 12:00", SameDay, "2026-03-09 17:00"),
            ("2026-03-09 17:00", SameDay, "2026-03-10 17:00"),
            ("2026-03-09 18:00", SameDay, "2026-03-10 17:00"),
            // Friday.
            ("2026-03-13 10:00", SameDay, "2026-03-13 17:00"),
            ("2026-03-13 15:30", SameDay, "2026-03-16 17:00"),
            // The last working day before a holiday block.
            ("2026-02-13 14:00", SameDay, "2026-02-13 17:00"),
            ("2026-02-13 15:30", SameDay, "2026-02-23 17:00"),
            ("2026-04-29 16:00", SameDay, "2026-05-04 17:00"),
            ("2025-08-29 15:45", SameDay, "2025-09-03 17:00"),
            ("2026-02-17 09:00", SameDay, "2026-02-23 17:00"),
            // Swapped Saturdays.
            ("2026-01-09 16:00", SameDay, "2026-01-10 17:00"),
            ("2026-01-10 15:10", SameDay, "2026-01-12 17:00"),
        ]);
        assert_eq!(show(CAL.same_day_due(at("2026-03-09 14:59")).unwrap()), "2026-03-09 17:00");
    }

    #[test]
    fn calendar_days_never_end_on_a_day_off() {
        check_due(&[
            ("2026-03-09 10:00", Cd(0), "2026-03-09 17:00"),
            ("2026-03-09 10:00", Cd(3), "2026-03-12 17:00"),
            ("2026-03-09 10:00", Cd(5), "2026-03-16 17:00"),
            ("2026-02-09 10:00", Cd(5), "2026-02-23 17:00"),
            ("2026-01-05 09:00", Cd(45), "2026-02-23 17:00"),
            ("2026-04-24 10:00", Cd(3), "2026-04-28 17:00"),
            ("2026-04-01 09:00", Cd(30), "2026-05-04 17:00"),
            ("2025-12-31 10:00", Cd(1), "2026-01-05 17:00"),
            ("2025-08-29 10:00", Cd(1), "2025-09-03 17:00"),
            ("2025-04-24 10:00", Cd(2), "2025-04-26 17:00"),
            ("2026-01-08 10:00", Cd(2), "2026-01-10 17:00"),
            // Received after hours on Friday: counted from Monday.
            ("2026-03-13 18:00", Cd(2), "2026-03-18 17:00"),
        ]);
        assert_eq!(show(CAL.add_calendar_days(at("2026-03-09 10:00"), 5).unwrap()), "2026-03-16 17:00");
    }

    // ---- pauses ----

    #[test]
    fn working_time_between_two_instants() {
        let rows = [
            ("2026-04-29 10:00", "2026-05-04 09:00", 420),
            ("2026-02-13 16:00", "2026-02-23 08:00", 120),
            ("2025-01-24 16:00", "2025-02-03 08:00", 120),
            ("2026-03-09 10:00", "2026-03-09 10:00", 0),
            ("2026-03-09 11:00", "2026-03-09 10:00", 0),
            ("2026-03-09 12:00", "2026-03-09 13:00", 0),
            ("2026-03-09 11:00", "2026-03-09 14:00", 60),
            ("2026-03-09 18:00", "2026-03-10 06:00", 0),
            ("2026-03-09 07:00", "2026-03-16 07:00", 5 * 480),
            ("2026-01-10 10:00", "2026-01-10 12:00", 90),
            ("2026-01-17 10:00", "2026-01-17 12:00", 0),
        ];
        for (a, b, want) in rows {
            assert_eq!(CAL.working_time_between(at(a), at(b)).unwrap(), mins(want), "{a} → {b}");
        }
    }

    #[test]
    fn pauses_merge_overlaps_and_run_until_the_end_when_open() {
        let p = |a: &str, b: Option<&str>| Pause { requested_at: at(a), received_at: b.map(at) };
        let until = at("2026-03-10 08:00");
        let rows: Vec<(Vec<Pause>, i64)> = vec![
            (vec![], 0),
            (
                vec![p("2026-03-09 08:00", Some("2026-03-09 10:00")), p("2026-03-09 09:00", Some("2026-03-09 11:00"))],
                180,
            ),
            (
                vec![p("2026-03-09 14:00", Some("2026-03-09 15:00")), p("2026-03-09 08:00", Some("2026-03-09 09:00"))],
                120,
            ),
            (
                vec![p("2026-03-09 08:00", Some("2026-03-09 16:00")), p("2026-03-09 09:00", Some("2026-03-09 10:00"))],
                360,
            ),
            (vec![p("2026-03-09 16:00", None)], 120),
            (vec![p("2026-03-09 16:00", Some("2026-03-09 15:00"))], 0),
        ];
        for (pauses, want) in rows {
            assert_eq!(CAL.paused_working_time(&pauses, until).unwrap(), mins(want), "{pauses:?}");
        }
        assert_eq!(show(CAL.extend_due(at("2026-02-13 17:00"), mins(120)).unwrap()), "2026-02-23 09:00");
        assert_eq!(CAL.extend_due(at("2026-03-12 17:00"), SignedDuration::ZERO).unwrap(), at("2026-03-12 17:00"));
    }

    fn case<'a>(
        received: &str,
        limit: TimeLimit,
        supplements: &'a [Pause],
        ended: Option<&str>,
        as_of: &str,
    ) -> DeadlineCase<'a> {
        DeadlineCase { received_at: at(received), limit, supplements, ended_at: ended.map(at), as_of: at(as_of) }
    }

    #[test]
    fn a_supplement_pause_across_a_holiday_moves_the_due_time() {
        // 2026: received Mon 20/4 09:00, 5 working days → Tue 28/4 09:00 (Mon 27/4 is off). Paused Tue
        // 28/4 08:00 → Mon 4/5 10:00: 7 h + 8 h + [30/4–3/5] + 3 h = 18 h. Tue 28/4 09:00 + 18 h: 6 h,
        // 8 h on Wed 29/4, [30/4–3/5], 4 h → Mon 4/5 11:00.
        let pauses = [Pause { requested_at: at("2026-04-28 08:00"), received_at: Some(at("2026-05-04 10:00")) }];
        let rows = [
            (Some("2026-05-04 10:30"), Some(Verdict::OnTime)),
            (Some("2026-05-04 11:00"), Some(Verdict::OnTime)),
            (Some("2026-05-04 11:01"), Some(Verdict::Late(LateReason::AfterDue))),
            (Some("2026-04-29 10:00"), Some(Verdict::Early)),
            (None, None),
        ];
        for (ended, verdict) in rows {
            let a = CAL.assess(&case("2026-04-20 09:00", Wd(5), &pauses, ended, "2026-05-04 10:45")).unwrap();
            assert_eq!(show(a.clock_start), "2026-04-20 09:00");
            assert_eq!(show(a.base_due), "2026-04-28 09:00");
            assert_eq!(a.paused, SignedDuration::from_hours(18));
            assert_eq!(show(a.due), "2026-05-04 11:00");
            assert_eq!(a.verdict, verdict, "ended {ended:?}");
            assert!(a.steps.is_empty() && a.uncovered_years.is_empty());
        }
        // 2025: Thu 16/1 08:00 + 5 → Thu 23/1 08:00; paused Wed 22/1 15:00 → Tue 4/2 08:00 = 2 + 8 + 8 +
        // [Tết] + 8 + 1 = 27 h; Thu 23/1 08:00 + 27 h = 7 + 8 + [Tết] + 8 + 4 → Tue 4/2 11:00.
        let pauses = [Pause { requested_at: at("2025-01-22 15:00"), received_at: Some(at("2025-02-04 08:00")) }];
        let a = CAL
            .assess(&case("2025-01-16 08:00", Wd(5), &pauses, Some("2025-02-04 10:00"), "2025-03-01 00:00"))
            .unwrap();
        assert_eq!(
            (show(a.base_due), a.paused, show(a.due)),
            ("2025-01-23 08:00".into(), SignedDuration::from_hours(27), "2025-02-04 11:00".into())
        );
        assert_eq!(a.verdict, Some(Verdict::OnTime));
    }

    // ---- classification ----

    #[test]
    fn on_time_early_and_late_as_the_portal_says() {
        use LateReason::*;
        use Verdict::*;
        let rows = [
            // Due at 17:00: its session starts at 13:30.
            ("2026-03-12 17:00", "2026-03-12 13:29", 0, Early),
            ("2026-03-12 17:00", "2026-03-12 12:00", 0, Early),
            ("2026-03-12 17:00", "2026-03-12 13:30", 0, OnTime),
            ("2026-03-12 17:00", "2026-03-12 17:00", 0, OnTime),
            ("2026-03-12 17:00", "2026-03-12 17:00:01", 0, Late(AfterDue)),
            ("2026-03-12 17:00", "2026-03-11 16:00", 1, Early),
            ("2026-03-12 17:00", "2026-03-11 16:00", 2, Late(MoreThanOneSupplement)),
            ("2026-03-12 17:00", "2026-03-12 15:00", 3, Late(MoreThanOneSupplement)),
            // Due in the morning session, its end included.
            ("2026-03-12 11:00", "2026-03-12 06:59", 0, Early),
            ("2026-03-12 11:00", "2026-03-12 07:00", 0, OnTime),
            ("2026-03-12 11:00", "2026-03-12 11:00", 0, OnTime),
            ("2026-03-12 11:00", "2026-03-12 11:01", 0, Late(AfterDue)),
            ("2026-03-12 11:30", "2026-03-12 06:59", 0, Early),
            ("2026-03-12 11:30", "2026-03-12 07:00", 0, OnTime),
            ("2026-03-12 13:30", "2026-03-12 13:29", 0, Early),
            ("2026-03-12 13:30", "2026-03-12 13:30", 0, OnTime),
            ("2026-03-16 07:30", "2026-03-13 16:00", 0, Early),
            ("2026-03-16 07:30", "2026-03-16 07:10", 0, OnTime),
            ("2026-02-23 09:00", "2026-02-13 16:59", 0, Early),
            ("2026-02-23 09:00", "2026-02-23 07:00", 0, OnTime),
            // A source's due time outside office hours: the last session that started before it.
            ("2026-03-12 18:00", "2026-03-12 13:00", 0, Early),
            ("2026-03-12 18:00", "2026-03-12 17:30", 0, OnTime),
            ("2026-03-15 17:00", "2026-03-13 13:00", 0, Early),
            ("2026-03-15 17:00", "2026-03-13 14:00", 0, OnTime),
            ("2026-03-15 17:00", "2026-03-14 10:00", 0, OnTime),
        ];
        for (due, end, n, want) in rows {
            assert_eq!(CAL.classify(at(end), at(due), n).unwrap(), want, "due {due}, ended {end}, {n} supplements");
        }
        assert!(Early.is_on_time() && OnTime.is_on_time() && !Late(AfterDue).is_on_time());
    }

    #[test]
    fn open_dossiers_are_late_only_once_past_due_or_by_rule() {
        use LateReason::*;
        let one = [Pause { requested_at: at("2026-03-09 11:00"), received_at: Some(at("2026-03-09 13:30")) }];
        let two = [one[0], Pause { requested_at: at("2026-03-09 14:00"), received_at: Some(at("2026-03-09 15:00")) }];
        // Mon 9/3 10:00 + 2 working days → Wed 11/3 10:00; one pause of 30 min → 10:30.
        let rows: [(&[Pause], &str, Option<Verdict>, &str); 5] = [
            (&[], "2026-03-11 09:00", None, "2026-03-11 10:00"),
            (&[], "2026-03-11 10:01", Some(Verdict::Late(OpenPastDue)), "2026-03-11 10:00"),
            (&one, "2026-03-11 10:15", None, "2026-03-11 10:30"),
            (&one, "2026-03-11 10:31", Some(Verdict::Late(OpenPastDue)), "2026-03-11 10:30"),
            (&two, "2026-03-09 16:00", Some(Verdict::Late(MoreThanOneSupplement)), "2026-03-11 11:30"),
        ];
        for (pauses, as_of, want, due) in rows {
            let a = CAL.assess(&case("2026-03-09 10:00", Wd(2), pauses, None, as_of)).unwrap();
            assert_eq!(
                (a.verdict, show(a.due)),
                (want, due.to_string()),
                "as of {as_of}, {} supplements",
                pauses.len()
            );
        }
        // A supplement still awaited keeps the clock stopped: Tue 10:00 → Thu 10:00 is 16 h paused.
        let open = [Pause { requested_at: at("2026-03-10 10:00"), received_at: None }];
        let a = CAL.assess(&case("2026-03-09 10:00", Wd(2), &open, None, "2026-03-12 10:00")).unwrap();
        assert_eq!(
            (a.paused, show(a.due), a.verdict),
            (SignedDuration::from_hours(16), "2026-03-13 10:00".into(), None)
        );
    }

    #[test]
    fn a_year_missing_from_the_file_is_flagged() {
        // Fri 1/1/2027 is not listed yet: it counts as a working day, and the assessment says so.
        let a = CAL.explain(&case("2026-12-30 10:00", Wd(5), &[], None, "2026-12-30 10:00")).unwrap();
        assert_eq!(show(a.due), "2027-01-06 10:00");
        assert_eq!(a.uncovered_years, [2027]);
        assert!(
            a.steps.last().is_some_and(|s| s.starts_with("warning: the calendar lists no days off for 2027")),
            "{:#?}",
            a.steps
        );
    }

    // ---- explanations ----

    #[test]
    fn the_explanation_spells_out_the_arithmetic() {
        let a =
            CAL.explain(&case("2026-01-10 09:12", Wd(3), &[], Some("2026-01-14 08:00"), "2026-01-20 00:00")).unwrap();
        let swapped = "swapped working day: làm bù cho thứ Sáu 2/1/2026";
        assert_eq!(
            a.steps,
            [
                format!("received Sat 2026-01-10 09:12 ({swapped}) → the clock starts then"),
                "+3 working days = 24 h of working time (8 h a working day)".into(),
                format!("Sat 2026-01-10 ({swapped}): 09:12–11:30, 13:30–17:00 = 5 h 48 min, 18 h 12 min left"),
                "Sun 2026-01-11: weekend, not counted".into(),
                "Mon 2026-01-12 – Tue 2026-01-13: 2 full working days, 2 h 12 min left".into(),
                "Wed 2026-01-14: 07:00–09:12 = 2 h 12 min → reached".into(),
                "→ due Wed 2026-01-14 09:12".into(),
                "ended Wed 2026-01-14 08:00 ≤ due, not before Wed 2026-01-14 07:00, the start of the session the due \
                 time falls in → đúng hạn"
                    .into(),
            ]
        );
        assert_eq!(a.verdict, Some(Verdict::OnTime));
        assert_eq!(
            a,
            CAL.assess(&case("2026-01-10 09:12", Wd(3), &[], Some("2026-01-14 08:00"), "2026-01-20 00:00"))
                .map(|b| Assessment { steps: a.steps.clone(), ..b })
                .unwrap()
        );
    }

    #[test]
    fn the_explanation_names_holidays_and_pauses() {
        let pauses = [Pause { requested_at: at("2026-04-28 08:00"), received_at: Some(at("2026-05-04 10:00")) }];
        let a = CAL
            .explain(&case("2026-04-20 09:00", Wd(5), &pauses, Some("2026-04-29 10:00"), "2026-05-05 00:00"))
            .unwrap();
        let holiday = "Ngày Chiến thắng 30/4 và Quốc tế Lao động 1/5";
        for want in [
            "received Mon 2026-04-20 09:00 → the clock starts then".to_string(),
            "Sat 2026-04-25 – Sun 2026-04-26: weekend, not counted".into(),
            "Mon 2026-04-27: day off: Giỗ Tổ Hùng Vương (10/3 âm lịch, Chủ nhật 26/4, nghỉ bù thứ Hai 27/4), not \
             counted"
                .into(),
            "→ due Tue 2026-04-28 09:00".into(),
            format!(
                "supplement 1: requested Tue 2026-04-28 08:00, received Mon 2026-05-04 10:00 → 18 h of working time \
                 paused (not counted: Thu 2026-04-30 – Sun 2026-05-03 {holiday})"
            ),
            "due Tue 2026-04-28 09:00 + 18 h paused".into(),
            format!("Thu 2026-04-30 – Sun 2026-05-03: day off: {holiday}, not counted"),
            "Mon 2026-05-04: 07:00–11:00 = 4 h → reached".into(),
            "→ due Mon 2026-05-04 11:00".into(),
            "ended Wed 2026-04-29 10:00 ≤ due, before Mon 2026-05-04 07:00, the start of the session the due time \
             falls in → trước hạn"
                .into(),
        ] {
            assert!(a.steps.contains(&want), "missing {want:?} in {:#?}", a.steps);
        }

        let a = CAL.explain(&case("2026-02-17 09:00", SameDay, &[], None, "2026-02-23 18:00")).unwrap();
        assert_eq!(
            a.steps,
            [
                "received Tue 2026-02-17 09:00 (day off: Tết Nguyên đán Bính Ngọ (mùng 1 Tết: thứ Ba 17/2)) → the \
                 clock starts Mon 2026-02-23 07:00",
                "same-day rule: the clock starts before 15:00 → due at the close of that working day",
                "→ due Mon 2026-02-23 17:00",
                "still open at Mon 2026-02-23 18:00, after the due time → trễ hạn (quá hạn)",
            ]
        );
        let a = CAL.explain(&case("2026-03-13 18:00", Cd(1), &[], None, "2026-03-13 18:00")).unwrap();
        assert_eq!(
            a.steps,
            [
                "received Fri 2026-03-13 18:00 (after office hours) → the clock starts Mon 2026-03-16 07:00",
                "+1 calendar day from Mon 2026-03-16 → Tue 2026-03-17",
                "→ due Tue 2026-03-17 17:00",
                "still open at Fri 2026-03-13 18:00, not yet due",
            ]
        );
    }

    // ---- properties ----

    fn instant() -> impl Strategy<Value = Timestamp> {
        let start = at("2025-01-01 00:00");
        (0i64..2 * 366 * 86_400).prop_map(move |s| start.checked_add(SignedDuration::from_secs(s)).unwrap())
    }

    fn amount() -> impl Strategy<Value = SignedDuration> {
        (0i64..30 * 8 * 3600).prop_map(SignedDuration::from_secs)
    }

    fn limit() -> impl Strategy<Value = TimeLimit> {
        prop_oneof![(0u32..60).prop_map(Wd), (0u32..90).prop_map(Cd), (0u32..100).prop_map(Hours), Just(SameDay)]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn adding_a_then_b_is_adding_a_plus_b(t in instant(), a in amount(), b in amount()) {
            let stepwise = CAL.add_working_time(CAL.add_working_time(t, a).unwrap(), b).unwrap();
            prop_assert_eq!(stepwise, CAL.add_working_time(t, a + b).unwrap());
        }

        #[test]
        fn adding_working_time_is_monotonic(t in instant(), a in amount(), b in amount(), later in 0i64..10 * 86_400) {
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(CAL.add_working_time(t, lo).unwrap() <= CAL.add_working_time(t, hi).unwrap());
            let t2 = t.checked_add(SignedDuration::from_secs(later)).unwrap();
            prop_assert!(CAL.add_working_time(t, a).unwrap() <= CAL.add_working_time(t2, a).unwrap());
        }

        #[test]
        fn working_time_between_undoes_adding(t in instant(), a in amount()) {
            let end = CAL.add_working_time(t, a).unwrap();
            prop_assert_eq!(CAL.working_time_between(t, end).unwrap(), a);
        }

        #[test]
        fn a_due_time_is_never_before_receipt_nor_outside_office_hours(t in instant(), limit in limit()) {
            let due = CAL.due(t, limit).unwrap();
            prop_assert!(due >= CAL.next_working_instant(t).unwrap());
            let local = vn_tz().to_datetime(due);
            prop_assert!(CAL.is_working_day(local.date()), "{} falls on a day off", show(due));
            let in_session = CAL.sessions.iter().any(|s| s.start <= local.time() && local.time() <= s.end);
            prop_assert!(in_session, "{} is outside office hours", show(due));
        }
    }
}
