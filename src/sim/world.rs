//! The upstream world's state: the records of the city and the ministries, which records are the
//! same case, the rules that change them over time, and the truth the portal should end up showing.
//!
//! Each system's records are kept in the order it lists them, in a compact sorted index by
//! (updated, id): a page is a binary search and a slice, so a world of a million records (the
//! ingest benchmark's) pages as fast as the fixtures do.

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
};

use jiff::{
    SignedDuration, Timestamp, ToSpan,
    civil::{Date, Weekday},
};
use serde_json::Value;

use super::{
    Change, Duplication, ExpectedDossier, ExpectedMember, SilentChange,
    catalogue::{ApplicantKind, Catalogue, Procedure},
    city,
    faults::RECORDS,
    mae, moc,
    model::{
        AgencyRef, Applicant, Attachment, Channel, Dossier, Fee, IdKey, IdStyle, ProcedureRef, ResultDoc, Source, Step,
        Supplement, due_after, is_end, uuid,
    },
    mof, moj, mps,
    portal::late_by_rule,
};
use crate::clock::vn_tz;

mod scenario;

pub use scenario::{DueWave, ScriptedDossier};

/// A record as an upstream system holds it.
#[derive(Debug, Clone)]
pub enum Record {
    /// Boxed: a dossier is large, and a bulk world holds a million small records beside it.
    Good(Box<Dossier>),
    Malformed(Box<Malformed>),
    /// A synthetic record of the ingest benchmark: rendered through its system's dialect on demand.
    Bulk(Bulk),
}

/// A record the bridge must quarantine: served exactly as recorded, and never changed.
#[derive(Debug, Clone)]
pub struct Malformed {
    pub native_id: String,
    pub updated_at: Timestamp,
    pub raw: Value,
}

/// A well-formed record in a few words: what `World::bulk_load` adds by the million. It never
/// changes and is its own case; rendering expands it through the catalogue and its dialect.
#[derive(Debug, Clone)]
pub struct Bulk {
    /// Feeds the native id (see [`bulk_native_id`]).
    pub id_seq: u64,
    /// Feeds the dossier code.
    pub code_seq: u64,
    /// Indexes into the catalogue's lists.
    pub procedure: u16,
    pub agency: u16,
    pub applicant: u16,
    pub channel: Channel,
    pub status: u8,
    pub received_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Record {
    pub fn updated_at(&self) -> Timestamp {
        match self {
            Record::Good(d) => d.updated_at,
            Record::Malformed(m) => m.updated_at,
            Record::Bulk(b) => b.updated_at,
        }
    }

    pub fn native_id(&self, source: Source) -> Cow<'_, str> {
        match self {
            Record::Good(d) => Cow::Borrowed(&d.native_id),
            Record::Malformed(m) => Cow::Borrowed(&m.native_id),
            Record::Bulk(b) => Cow::Owned(bulk_native_id(source, b)),
        }
    }
}

fn bulk_native_id(source: Source, b: &Bulk) -> String {
    match source.id_style() {
        IdStyle::ObjectId => format!("{:08x}{:016x}", b.received_at.as_second().max(0), b.id_seq),
        IdStyle::Number => b.id_seq.to_string(),
        IdStyle::Uuid => uuid(0xb01c_0000_0000_0000, b.id_seq, source == Source::Mps),
    }
}

/// What a bulk record shares with others of its kind: everything but its ids, times and applicant.
type Shape = (u16, u16, Channel, u8);

/// Where a bulk record's own values go in the rendering of its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Id,
    Code,
    Name,
    IdNumber,
    Phone,
    Email,
    Applied,
    Received,
    Due,
    Completed,
    Returned,
    Updated,
}

#[derive(Debug)]
enum Piece {
    Text(Vec<u8>),
    Slot(Slot),
}

/// A bulk record of one shape rendered once through its dialect with marker values, cut where the
/// markers are. Filling it costs a few copies, where rendering through serde costs tens of
/// microseconds in a debug build: the difference between a 200,000-record walk in seconds or in
/// half a minute.
#[derive(Debug)]
struct Template(Vec<Piece>);

/// Marker values: nothing a dialect writes contains them by chance.
const MARK_ID: &str = "987654321012345";
const MARK_TEXTS: [(Slot, &str); 5] = [
    (Slot::Code, "BULK-MARK-CODE"),
    (Slot::Name, "BULK-MARK-NAME"),
    (Slot::IdNumber, "BULK-MARK-IDNO"),
    (Slot::Phone, "BULK-MARK-PHONE"),
    (Slot::Email, "BULK-MARK-EMAIL"),
];
const MARK_TIMES: [Slot; 6] =
    [Slot::Applied, Slot::Received, Slot::Due, Slot::Completed, Slot::Returned, Slot::Updated];

/// A marker instant per time slot, in 2099, seconds apart.
fn mark_time(slot: Slot) -> Timestamp {
    let i = MARK_TIMES.iter().position(|s| *s == slot).unwrap_or(0) as i64;
    Timestamp::from_second(4_070_908_800 + 61 * (i + 1)).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A time exactly as `source` writes it inside its JSON (without the quotes of a string).
fn time_text(source: Source, t: Timestamp) -> String {
    match source {
        Source::City => city::format_date(t),
        Source::Moj => moj::format_date(t),
        Source::Moc => moc::format_date(t),
        Source::Mae => mae::millis(t).to_string(),
        Source::Mof => mof::format_date(t),
        Source::Mps => mps::format_date(t),
    }
}

/// Text as it sits inside a JSON string.
fn json_text(s: &str) -> Cow<'_, str> {
    if s.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        let quoted = serde_json::to_string(s).unwrap_or_default();
        Cow::Owned(quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or_default().to_owned())
    } else {
        Cow::Borrowed(s)
    }
}

impl Template {
    fn new(source: Source, rendered: &[u8]) -> Self {
        let mut marks: Vec<(Vec<u8>, Slot)> = vec![(MARK_ID.as_bytes().to_vec(), Slot::Id)];
        marks.extend(MARK_TEXTS.iter().map(|(slot, text)| (text.as_bytes().to_vec(), *slot)));
        marks.extend(MARK_TIMES.iter().map(|slot| (time_text(source, mark_time(*slot)).into_bytes(), *slot)));
        let mut pieces = Vec::new();
        let mut text = Vec::new();
        let mut i = 0;
        while i < rendered.len() {
            match marks.iter().find(|(m, _)| rendered[i..].starts_with(m)) {
                Some((m, slot)) => {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                    pieces.push(Piece::Slot(*slot));
                    i += m.len();
                }
                None => {
                    text.push(rendered[i]);
                    i += 1;
                }
            }
        }
        pieces.push(Piece::Text(text));
        Template(pieces)
    }

    fn fill(&self, source: Source, v: &BulkView<'_>, out: &mut Vec<u8>) {
        for piece in &self.0 {
            let value = match piece {
                Piece::Text(t) => {
                    out.extend_from_slice(t);
                    continue;
                }
                Piece::Slot(Slot::Id) => json_text(&v.native_id),
                Piece::Slot(Slot::Code) => json_text(&v.code),
                Piece::Slot(Slot::Name) => json_text(v.applicant[0]),
                Piece::Slot(Slot::IdNumber) => json_text(v.applicant[1]),
                Piece::Slot(Slot::Phone) => json_text(v.applicant[2]),
                Piece::Slot(Slot::Email) => json_text(v.applicant[3]),
                Piece::Slot(slot) => {
                    let b = v.bulk;
                    let t = match slot {
                        Slot::Applied | Slot::Received => b.received_at,
                        Slot::Due => v.due,
                        Slot::Completed => b.finished_at(),
                        _ => b.updated_at,
                    };
                    Cow::Owned(time_text(source, t))
                }
            };
            out.extend_from_slice(value.as_bytes());
        }
    }
}

/// What a bulk record's template is filled with, borrowed from the catalogue where it can be.
struct BulkView<'a> {
    bulk: &'a Bulk,
    native_id: String,
    code: String,
    /// Name, id number, phone, email.
    applicant: [&'a str; 4],
    due: Timestamp,
}

impl Bulk {
    /// When a finished bulk record was finished: two hours before its last change, not before receipt.
    fn finished_at(&self) -> Timestamp {
        (self.updated_at - SignedDuration::from_hours(2)).max(self.received_at)
    }
}

/// A system's record in its own dialect.
pub fn render(d: &Dossier) -> Value {
    match d.source {
        Source::City => city::render(d),
        Source::Moj => moj::render(d),
        Source::Moc => moc::render(d),
        Source::Mae => mae::render(d),
        Source::Mof => mof::render(d),
        Source::Mps => mps::render(d),
    }
}

/// A recorded record in `source`'s dialect: a well-formed dossier, or the raw record's id, updated
/// time and what is wrong with it. `Err` when not even the id and updated time can be read.
pub type Parsed = Result<Result<Dossier, (String, Timestamp, String)>, String>;

pub fn parse(source: Source, raw: &Value) -> Parsed {
    match source {
        Source::City => city::parse(raw),
        Source::Moj => moj::parse(raw),
        Source::Moc => moc::parse(raw),
        Source::Mae => mae::parse(raw),
        Source::Mof => mof::parse(raw),
        Source::Mps => mps::parse(raw),
    }
}

/// Damages a rendered record the way `source` has been seen to break; returns the reason.
fn damage(source: Source, raw: &mut Value, variant: u64, now: Timestamp) -> &'static str {
    match source {
        Source::City => city::damage(raw, variant, now),
        Source::Moj => moj::damage(raw, variant, now),
        Source::Moc => moc::damage(raw, variant, now),
        Source::Mae => mae::damage(raw, variant, now),
        Source::Mof => mof::damage(raw, variant, now),
        Source::Mps => mps::damage(raw, variant, now),
    }
}

/// Where a member of a case lives: its system and its index in that system's list.
pub type Member = (Source, usize);

/// How often the change rules pick each kind of change. The live world follows the brief's list of
/// transitions; the fixture generator adds the rarer ones so that the recorded history holds them.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Share of changes that are a new dossier rather than a step of an open one.
    pub new_rate: f64,
    /// Share of new centralised dossiers that were first received at a city desk (a transfer pair).
    pub transfer_rate: f64,
    /// Chance that processing is stopped (status 8) instead of finished.
    pub stop_rate: f64,
    /// Chance that a dossier that already had a supplement is asked for a second one.
    pub second_supplement_rate: f64,
    /// A dossier changes again only this long after its last change: zero in the live world (every
    /// tick may move anything), about a working day in the recorded history, where days pass. Long
    /// procedures wait longer (a quarter of their duration per step), as they do in reality.
    pub min_step_gap: SignedDuration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            new_rate: 0.25,
            transfer_rate: 0.2,
            stop_rate: 0.0,
            second_supplement_rate: 0.0,
            min_step_gap: SignedDuration::ZERO,
        }
    }
}

/// One entry of a system's list order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    updated: Timestamp,
    id: IdKey,
    /// The record's position in the system's record list.
    at: u32,
}

/// One system's records, in arrival order, and its list order.
#[derive(Debug, Default)]
struct Store {
    records: Vec<Record>,
    /// Sorted ascending; a change moves one entry (a memmove, cheap next to rendering a page).
    index: Vec<Key>,
}

#[derive(Debug)]
pub struct Upstream {
    pub catalogue: Catalogue,
    /// Each ministry's cutover for this city (wildcard: all its procedures). A ministry without one
    /// has not taken anything over.
    pub cutovers: BTreeMap<Source, Date>,
    pub tuning: Tuning,
    stores: [Store; 6],
    /// Members of each case. Cases only gain members when they are created (a transfer creates both
    /// copies at once), so this is computed once per case. Bulk records are not here: each is a
    /// case of its own.
    cases: Vec<Vec<Member>>,
    pub rng: fastrand::Rng,
    pub paused: bool,
    pub changes_made: u64,
    pub new_dossiers: u64,
    pub malformed_injected: u64,
    /// Per system: the next sequence number of its dossier codes.
    next_seq: [u64; 6],
    /// Per system: the next numeric id (and the bulk id sequence of the others).
    next_id: [u64; 6],
    /// Per system: how far its clock is off the world's (a fault on demand).
    skew: [SignedDuration; 6],
    /// Per system: bulk records' renderings by shape, made once at load (see [`Template`]).
    templates: Vec<HashMap<Shape, Template>>,
    /// Procedures with re-entered pairs (see [`Upstream::reenter`]), which only the applicant links:
    /// no applicant files one of them twice, so that the same procedure and applicant mean the same
    /// case in this world, as they do to the bridge.
    identity_linked: BTreeSet<String>,
    /// Scripted finishes still to come (see [`Upstream::due_wave`]).
    script: scenario::Script,
    /// The change rounds' changes not yet taken (see [`Upstream::take_journal`]), the oldest
    /// dropped beyond [`JOURNAL_CAP`].
    journal: VecDeque<Change>,
}

/// The most changes the journal keeps untaken: a world nobody reads the journal of stays bounded
/// (a few MiB).
const JOURNAL_CAP: usize = 100_000;

/// Where a dossier code ends in its sequence number: `H26.31-251215-0007` → 7.
fn code_seq(code: &str) -> u64 {
    code.rsplit('-').next().and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn pick<'a, T>(rng: &mut fastrand::Rng, items: &'a [T]) -> &'a T {
    &items[rng.usize(..items.len())]
}

/// A procedure drawn in proportion to its weight; `None` when no procedure has any.
fn draw_weighted<'a>(rng: &mut fastrand::Rng, procedures: &'a [Procedure]) -> Option<&'a Procedure> {
    let total: u32 = procedures.iter().map(|p| p.weight).sum();
    if total == 0 {
        return None;
    }
    let mut left = rng.u32(..total);
    for p in procedures {
        if left < p.weight {
            return Some(p);
        }
        left -= p.weight;
    }
    None
}

/// A receipt `minutes` after 08:00 on the latest working day (weekends skipped) from which a
/// procedure of `days` working days is past due at `now`.
fn past_due_receipt(now: Timestamp, days: u32, minutes: i64) -> anyhow::Result<Timestamp> {
    let tz = vn_tz();
    let mut day = now.to_zoned_datetime(tz.clone()).date();
    loop {
        day = day.checked_sub(1.day())?;
        if matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday) {
            continue;
        }
        let received =
            day.at(8, 0, 0, 0).to_zoned_datetime(tz.clone())?.timestamp() + SignedDuration::from_mins(minutes);
        if due_after(received, days) < now {
            return Ok(received);
        }
    }
}

/// The truth for a case whose first receipt is `first`'s and whose state is `auth`'s, as if it had
/// no other member (the caller adds them).
fn expected_of(auth: &Dossier, first: &Dossier, now: Timestamp) -> ExpectedDossier {
    let supplements: Vec<_> = auth.supplements.iter().map(|s| (Some(s.requested_at), s.received_at)).collect();
    ExpectedDossier {
        portal_code: first.code.clone(),
        member_codes: vec![first.code.clone()],
        procedure_code: auth.procedure.code.clone(),
        status: auth.status,
        received_at: first.received_at,
        due_at: auth.due_at,
        ended_at: auth.ended_at(),
        returned_at: auth.returned_at,
        duplication: None,
        members: vec![ExpectedMember {
            system: auth.source.name().to_owned(),
            native_id: auth.native_id.clone(),
            code: auth.code.clone(),
            status: auth.status,
            due_at: auth.due_at,
            authoritative: true,
        }],
        late: late_by_rule(auth.due_at, &supplements, is_end(auth.status), auth.ended_at(), now),
    }
}

impl Upstream {
    pub fn new(catalogue: Catalogue, cutovers: BTreeMap<Source, Date>, seed: u64) -> Self {
        let mut next_id = [1; 6];
        for (source, first) in [
            (Source::Moj, 10_001),
            (Source::Moc, 1_200_001),
            (Source::Mof, 300_001),
            (Source::Mae, 1),
            (Source::Mps, 1),
        ] {
            next_id[source.index()] = first;
        }
        Self {
            catalogue,
            cutovers,
            tuning: Tuning::default(),
            stores: Default::default(),
            cases: Vec::new(),
            rng: fastrand::Rng::with_seed(seed),
            paused: false,
            changes_made: 0,
            new_dossiers: 0,
            malformed_injected: 0,
            next_seq: [1; 6],
            next_id,
            skew: [SignedDuration::ZERO; 6],
            templates: Source::ALL.iter().map(|_| HashMap::new()).collect(),
            identity_linked: BTreeSet::new(),
            script: scenario::Script::default(),
            journal: VecDeque::new(),
        }
    }

    /// Loads the recorded records of every system (each in its own dialect) and links the cases.
    pub fn load(&mut self, raws: &BTreeMap<Source, Vec<Value>>) -> anyhow::Result<()> {
        for (&source, raws) in raws {
            for (i, raw) in raws.iter().enumerate() {
                let parsed =
                    parse(source, raw).map_err(|e| anyhow::anyhow!("{} fixture record {i}: {e}", source.name()))?;
                let record = match parsed {
                    Ok(d) => Record::Good(Box::new(d)),
                    Err((native_id, updated_at, reason)) => {
                        tracing::debug!(source = source.name(), %native_id, %reason, "malformed fixture record");
                        Record::Malformed(Box::new(Malformed { native_id, updated_at, raw: raw.clone() }))
                    }
                };
                self.stores[source.index()].records.push(record);
            }
        }
        self.check_unique_ids()?;
        for source in Source::ALL {
            let store = &self.stores[source.index()];
            let prefix = source.code_shape().map(|(p, _)| format!("{p}-"));
            for r in &store.records {
                if source.id_style() == IdStyle::Number
                    && let Ok(id) = r.native_id(source).parse::<u64>()
                {
                    self.next_id[source.index()] = self.next_id[source.index()].max(id + 1);
                }
                if let Record::Good(d) = r
                    && prefix.as_deref().is_none_or(|p| d.code.starts_with(p))
                {
                    self.next_seq[source.index()] = self.next_seq[source.index()].max(code_seq(&d.code) + 1);
                }
            }
            self.rebuild_index(source);
        }
        self.link_cases();
        Ok(())
    }

    fn check_unique_ids(&self) -> anyhow::Result<()> {
        for source in Source::ALL {
            let mut ids = BTreeSet::new();
            let mut codes = BTreeSet::new();
            for r in self.records(source) {
                let id = r.native_id(source);
                anyhow::ensure!(ids.insert(id.to_string()), "{} fixtures: id {id} appears twice", source.name());
                if let Record::Good(d) = r {
                    anyhow::ensure!(
                        codes.insert(d.code.as_str()),
                        "{} fixtures: code {} appears twice",
                        source.name(),
                        d.code
                    );
                }
            }
        }
        Ok(())
    }

    /// Groups loaded records into cases the way the bridge is meant to: a ministry record joins the
    /// city record its reference field names, or the city record with its own code (a migrated copy).
    fn link_cases(&mut self) {
        self.cases.clear();
        let mut by_city_code: HashMap<&str, usize> = HashMap::new();
        for (i, r) in self.stores[Source::City.index()].records.iter().enumerate() {
            if let Record::Good(d) = r {
                by_city_code.insert(d.code.as_str(), self.cases.len());
                self.cases.push(vec![(Source::City, i)]);
            }
        }
        for source in Source::ALL.into_iter().filter(|s| s.is_ministry()) {
            for (i, r) in self.stores[source.index()].records.iter().enumerate() {
                if let Record::Good(d) = r {
                    let linked = d
                        .ref_code
                        .as_deref()
                        .and_then(|c| by_city_code.get(c))
                        .or_else(|| by_city_code.get(d.code.as_str()));
                    match linked {
                        Some(&case) => self.cases[case].push((source, i)),
                        None => self.cases.push(vec![(source, i)]),
                    }
                }
            }
        }
    }

    fn key(&self, source: Source, at: usize) -> Key {
        let r = &self.stores[source.index()].records[at];
        Key { updated: r.updated_at(), id: source.id_key(&r.native_id(source)), at: at as u32 }
    }

    fn rebuild_index(&mut self, source: Source) {
        let n = self.stores[source.index()].records.len();
        let mut index: Vec<Key> = (0..n).map(|at| self.key(source, at)).collect();
        index.sort_unstable();
        self.stores[source.index()].index = index;
    }

    /// Puts a record (new, or changed from `old` updated time) at its place in the list order.
    fn reindex(&mut self, (source, at): Member, old: Option<Timestamp>) {
        let key = self.key(source, at);
        let index = &mut self.stores[source.index()].index;
        if let Some(updated) = old
            && let Ok(pos) = index.binary_search(&Key { updated, ..key })
        {
            index.remove(pos);
        }
        let pos = index.binary_search(&key).unwrap_or_else(|p| p);
        index.insert(pos, key);
    }

    /// Every record of a system, in arrival order.
    pub fn records(&self, source: Source) -> &[Record] {
        &self.stores[source.index()].records
    }

    pub fn count(&self, source: Source) -> usize {
        self.stores[source.index()].records.len()
    }

    /// Records in the system's list order ascending (updated, then id) from position `from`.
    pub fn ascending(&self, source: Source, from: usize, take: usize) -> Vec<&Record> {
        let store = &self.stores[source.index()];
        let from = from.min(store.index.len());
        let to = from.saturating_add(take).min(store.index.len());
        store.index[from..to].iter().map(|k| &store.records[k.at as usize]).collect()
    }

    /// Records newest first (updated, then id, both descending), skipping `skip`.
    pub fn descending(&self, source: Source, skip: usize, take: usize) -> Vec<&Record> {
        let store = &self.stores[source.index()];
        let to = store.index.len().saturating_sub(skip);
        let from = to.saturating_sub(take);
        store.index[from..to].iter().rev().map(|k| &store.records[k.at as usize]).collect()
    }

    /// The position (ascending) of the first record updated at or after `since`.
    pub fn position_since(&self, source: Source, since: Timestamp) -> usize {
        self.stores[source.index()].index.partition_point(|k| k.updated < since)
    }

    /// The position (ascending) just after the record keyed (`updated`, `id`): a keyset cursor.
    pub fn position_after(&self, source: Source, updated: Timestamp, id: IdKey) -> usize {
        self.stores[source.index()].index.partition_point(|k| (k.updated, k.id) <= (updated, id))
    }

    /// A record as its system serves it.
    pub fn render(&self, source: Source, r: &Record) -> Value {
        match r {
            Record::Good(d) => render(d),
            Record::Malformed(m) => m.raw.clone(),
            Record::Bulk(b) => render(&self.expand(source, b)),
        }
    }

    /// One record as its system serves it, serialised.
    fn record_json(&self, source: Source, r: &Record, out: &mut Vec<u8>) {
        if let Record::Bulk(b) = r
            && let Some(template) = self.templates[source.index()].get(&(b.procedure, b.agency, b.channel, b.status))
            && let Some(view) = self.view(source, b)
        {
            template.fill(source, &view, out);
            return;
        }
        let value = self.render(source, r);
        // Writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &value);
    }

    /// A page answer: `envelope` serialised with `records` in place of its [`RECORDS`] marker,
    /// exactly as if they had been in it.
    pub fn page_json(&self, source: Source, envelope: &Value, records: &[&Record]) -> Vec<u8> {
        let text = serde_json::to_vec(envelope).unwrap_or_default();
        let marker = serde_json::to_vec(RECORDS).unwrap_or_default();
        let at = text.windows(marker.len()).position(|w| w == marker.as_slice()).unwrap_or(text.len());
        let mut out = Vec::with_capacity(text.len() + records.len() * 1024);
        out.extend_from_slice(&text[..at]);
        out.push(b'[');
        for (i, r) in records.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            self.record_json(source, r, &mut out);
        }
        out.push(b']');
        out.extend_from_slice(text.get(at + marker.len()..).unwrap_or_default());
        out
    }

    /// The shape's template, made once: a bulk record rendered with marker values.
    fn add_template(&mut self, source: Source, shape: Shape) {
        if self.templates[source.index()].contains_key(&shape) {
            return;
        }
        let (procedure, agency, channel, status) = shape;
        let marked = Bulk {
            id_seq: 0,
            code_seq: 0,
            procedure,
            agency,
            applicant: 0,
            channel,
            status,
            received_at: mark_time(Slot::Received),
            updated_at: mark_time(Slot::Updated),
        };
        let mut d = self.expand(source, &marked);
        d.native_id = MARK_ID.to_owned();
        for (slot, text) in MARK_TEXTS {
            let field = match slot {
                Slot::Code => &mut d.code,
                Slot::Name => &mut d.applicant.name,
                Slot::IdNumber => &mut d.applicant.id_number,
                Slot::Phone => &mut d.applicant.phone,
                _ => &mut d.applicant.email,
            };
            *field = text.to_owned();
        }
        d.applied_at = mark_time(Slot::Applied);
        d.due_at = mark_time(Slot::Due);
        d.completed_at = d.completed_at.map(|_| mark_time(Slot::Completed));
        d.returned_at = d.returned_at.map(|_| mark_time(Slot::Returned));
        let template = Template::new(source, &serde_json::to_vec(&render(&d)).unwrap_or_default());
        self.templates[source.index()].insert(shape, template);
    }

    fn dossier(&self, (source, i): Member) -> Option<&Dossier> {
        match self.stores[source.index()].records.get(i) {
            Some(Record::Good(d)) => Some(d),
            _ => None,
        }
    }

    fn dossier_mut(&mut self, (source, i): Member) -> Option<&mut Dossier> {
        match self.stores[source.index()].records.get_mut(i) {
            Some(Record::Good(d)) => Some(d),
            _ => None,
        }
    }

    /// The newest update time of any record: a clock that starts earlier would make changes go back
    /// in time.
    pub fn latest_update(&self) -> Option<Timestamp> {
        self.stores.iter().filter_map(|s| s.index.last().map(|k| k.updated)).max()
    }

    /// The time a system stamps a change made at world time `now` (its clock may be skewed).
    fn stamp(&self, source: Source, now: Timestamp) -> Timestamp {
        now.checked_add(self.skew[source.index()]).unwrap_or(now)
    }

    pub fn set_skew(&mut self, source: Source, skew: SignedDuration) {
        self.skew[source.index()] = skew;
    }

    /// The member with the earliest receipt; ties go to the city, whose code was issued first.
    fn earliest(&self, case: &[Member]) -> Option<(Member, &Dossier)> {
        case.iter().filter_map(|&m| self.dossier(m).map(|d| (m, d))).min_by_key(|(m, d)| (d.received_at, m.0))
    }

    /// The system a procedure received at `received` belongs to: its ministry's from that
    /// ministry's cutover (local date) on, else the city's.
    fn owner_at(&self, procedure_code: &str, received: Timestamp) -> Source {
        match self.catalogue.owner(procedure_code) {
            Some(ministry)
                if self
                    .cutovers
                    .get(&ministry)
                    .is_some_and(|cutover| received.to_zoned_datetime(vn_tz()).date() >= *cutover) =>
            {
                ministry
            }
            _ => Source::City,
        }
    }

    /// The member whose state the portal must show (the authority rule of `architecture.md`). Falls
    /// back to the earliest member when the rule names a system the case has no copy in.
    fn authoritative(&self, case: &[Member]) -> Option<Member> {
        let (first, d) = self.earliest(case)?;
        let preferred = self.owner_at(&d.procedure.code, d.received_at);
        Some(case.iter().copied().find(|m| m.0 == preferred && self.dossier(*m).is_some()).unwrap_or(first))
    }

    /// How a case came to be in more than one system, read from its members: a code two members
    /// share is a migration, a member naming another's code a transfer, neither a re-entry.
    fn duplication(&self, case: &[Member]) -> Option<Duplication> {
        let members: Vec<&Dossier> = case.iter().filter_map(|&m| self.dossier(m)).collect();
        if members.len() < 2 {
            return None;
        }
        let pairs = || members.iter().enumerate().flat_map(|(i, a)| members[i + 1..].iter().map(move |b| (*a, *b)));
        let names = |a: &Dossier, b: &Dossier| a.ref_code.as_deref() == Some(b.code.as_str());
        Some(if pairs().any(|(a, b)| a.code == b.code) {
            Duplication::Migrated
        } else if pairs().any(|(a, b)| names(a, b) || names(b, a)) {
            Duplication::Transferred
        } else {
            Duplication::Reentered
        })
    }

    /// What the portal should hold once the bridge has caught up: one entry per case, its lateness
    /// judged at `now`.
    pub fn expected(&self, now: Timestamp) -> BTreeMap<String, ExpectedDossier> {
        let mut out = BTreeMap::new();
        for case in &self.cases {
            let (Some((_, first)), Some(auth)) = (self.earliest(case), self.authoritative(case)) else {
                continue;
            };
            let Some(auth_dossier) = self.dossier(auth) else { continue };
            let member_codes: BTreeSet<String> =
                case.iter().filter_map(|&m| self.dossier(m).map(|d| d.code.clone())).collect();
            let members = case
                .iter()
                .filter_map(|&m| self.dossier(m).map(|d| (m, d)))
                .map(|(m, d)| ExpectedMember {
                    system: m.0.name().to_owned(),
                    native_id: d.native_id.clone(),
                    code: d.code.clone(),
                    status: d.status,
                    due_at: d.due_at,
                    authoritative: m == auth,
                })
                .collect();
            let mut e = expected_of(auth_dossier, first, now);
            e.member_codes = member_codes.into_iter().collect();
            e.duplication = self.duplication(case);
            e.members = members;
            out.insert(first.code.clone(), e);
        }
        for source in Source::ALL {
            for r in self.records(source) {
                if let Record::Bulk(b) = r {
                    let d = self.expand(source, b);
                    out.insert(d.code.clone(), expected_of(&d, &d, now));
                }
            }
        }
        out
    }

    /// The cases whose authoritative record is in `source`: each case's portal code (its earliest
    /// member's), its earliest receipt, and the authoritative record (what a system that syncs its
    /// own dossiers to the portal writes; see `self_sync`).
    pub fn authoritative_in(&self, source: Source) -> Vec<(&str, Timestamp, &Dossier)> {
        self.cases
            .iter()
            .filter_map(|case| {
                let auth = self.authoritative(case).filter(|m| m.0 == source)?;
                let (_, first) = self.earliest(case)?;
                Some((first.code.as_str(), first.received_at, self.dossier(auth)?))
            })
            .collect()
    }

    pub fn quarantine(&self) -> Vec<(String, String)> {
        Source::ALL
            .into_iter()
            .flat_map(|s| {
                self.records(s).iter().filter_map(move |r| match r {
                    Record::Malformed(m) => Some((s.name().to_owned(), m.native_id.clone())),
                    _ => None,
                })
            })
            .collect()
    }

    /// `(source, native id, malformed)` of every record every system holds: what the bridge must
    /// have stored, or quarantined with a reason.
    pub fn all_ids(&self) -> Vec<(String, String, bool)> {
        Source::ALL
            .into_iter()
            .flat_map(|s| {
                self.records(s)
                    .iter()
                    .map(move |r| (s.name().to_owned(), r.native_id(s).into_owned(), matches!(r, Record::Malformed(_))))
            })
            .collect()
    }

    /// One round of upstream activity at world time `now` (each system stamps it with its own
    /// clock, to the whole second): up to `n` changes, none of them to a record already changed in
    /// this round, each noted in the journal at `now` itself. `only` confines the round to one
    /// system's records (a change "during a walk" of that system). Returns how many changes were
    /// made.
    pub fn round(&mut self, now: Timestamp, n: u32, malformed_every: Option<u32>, only: Option<Source>) -> u32 {
        let (at, now) = (now, super::model::whole_second(now));
        let mut touched: BTreeSet<Member> = BTreeSet::new();
        let mut made = 0;
        for _ in 0..n {
            let candidates: Vec<(usize, Member)> = self
                .cases
                .iter()
                .enumerate()
                .filter_map(|(case, c)| Some((case, self.authoritative(c)?)))
                .filter(|(_, m)| only.is_none_or(|s| m.0 == s) && !touched.contains(m) && !self.script.holds(m))
                .filter(|&(_, m)| {
                    self.dossier(m).is_some_and(|d| {
                        matches!(d.status, 2 | 4 | 5 | 9) && d.updated_at + self.step_gap(d) <= self.stamp(m.0, now)
                    })
                })
                .collect();
            let idle = candidates.is_empty() && self.tuning.min_step_gap.is_zero();
            if idle || self.rng.f64() < self.tuning.new_rate {
                let created = self.create(now, only);
                if created.is_empty() {
                    continue;
                }
                touched.extend(created);
                self.note(self.cases.len() - 1, at);
                self.new_dossiers += 1;
                if malformed_every.is_some_and(|every| every > 0 && self.new_dossiers.is_multiple_of(u64::from(every)))
                {
                    self.inject_malformed(now);
                }
                made += 1;
            } else if !candidates.is_empty() {
                let (case, m) = candidates[self.rng.usize(..candidates.len())];
                self.advance(m, now, true);
                self.note(case, at);
                touched.insert(m);
                made += 1;
            }
        }
        self.changes_made += u64::from(made);
        made
    }

    /// Notes in the journal that a case changed at `at`: its portal code and the status the
    /// portal should now show.
    fn note(&mut self, case: usize, at: Timestamp) {
        let Some(members) = self.cases.get(case) else { return };
        let (Some((_, first)), Some(auth)) = (self.earliest(members), self.authoritative(members)) else { return };
        let Some(status) = self.dossier(auth).map(|d| d.status) else { return };
        let change = Change { code: first.code.clone(), status, at };
        if self.journal.len() == JOURNAL_CAP {
            self.journal.pop_front();
        }
        self.journal.push_back(change);
    }

    /// The change rounds' changes since the last call, oldest first (at most [`JOURNAL_CAP`]).
    pub fn take_journal(&mut self) -> Vec<Change> {
        self.journal.drain(..).collect()
    }

    /// How long `d` rests after a change before it may change again (see [`Tuning::min_step_gap`]).
    fn step_gap(&self, d: &Dossier) -> SignedDuration {
        let gap = self.tuning.min_step_gap;
        if gap.is_zero() {
            return gap;
        }
        let days = self.catalogue.procedure(&d.procedure.code).map_or(1, |p| p.duration_days);
        gap.max(SignedDuration::from_hours(6 * i64::from(days)))
    }

    fn object_id(&mut self, at: Timestamp) -> String {
        // Shaped like a Mongo ObjectId: creation seconds first, so ids sort roughly by creation.
        format!("{:08x}{:016x}", at.as_second().max(0), self.rng.u64(..))
    }

    /// A fresh native id in `source`'s style.
    fn new_id(&mut self, source: Source, at: Timestamp) -> String {
        match source.id_style() {
            IdStyle::ObjectId => self.object_id(at),
            IdStyle::Number => {
                let id = self.next_id[source.index()];
                self.next_id[source.index()] += 1;
                id.to_string()
            }
            IdStyle::Uuid => {
                let (hi, lo) = (self.rng.u64(..), self.rng.u64(..));
                uuid(hi, lo, source == Source::Mps)
            }
        }
    }

    /// A fresh dossier code of `source` for a dossier received by `agency_prefix` on `yymmdd`.
    fn new_code(&mut self, source: Source, agency_prefix: &str, yymmdd: &str) -> String {
        let seq = self.next_seq[source.index()];
        self.next_seq[source.index()] += 1;
        match source.code_shape() {
            None => format!("{agency_prefix}-{yymmdd}-{seq:04}"),
            Some((prefix, width)) => format!("{prefix}-{yymmdd}-{seq:0width$}"),
        }
    }

    fn official(&mut self) -> String {
        pick(&mut self.rng, &self.catalogue.people).fullname.clone()
    }

    /// A new dossier received `received`, recorded in `source`, whose record first appears at `now`.
    fn build(&mut self, source: Source, proc: &Procedure, received: Timestamp, now: Timestamp) -> Dossier {
        let agency = match &proc.agency {
            Some(code) => self.catalogue.agency(code).cloned(),
            None => None,
        };
        let agency = agency.unwrap_or_else(|| {
            let communes: Vec<_> = self.catalogue.communes().cloned().collect();
            pick(&mut self.rng, &communes).clone()
        });
        let applicant = self.draw_applicant(proc);
        // Nearly everything is filed online in reality (99.86% in Hải Phòng's Q1 2026 report); the
        // simulator files less online so that the in-person and postal mappings get exercised.
        let r = self.rng.f64();
        let (channel, applied) = if r < 0.8 {
            (Channel::Online, received - SignedDuration::from_mins(self.rng.i64(5..=720)))
        } else if r < 0.95 {
            (Channel::InPerson, received)
        } else {
            (Channel::Postal, received - SignedDuration::from_hours(self.rng.i64(24..=72)))
        };
        let local_date = received.to_zoned_datetime(vn_tz()).date();
        let yymmdd = local_date.strftime("%y%m%d").to_string();
        let native_id = self.new_id(source, now);
        let code = self.new_code(source, &agency.dossier_prefix, &yymmdd);
        let city = source == Source::City;
        let (files, _) = source.hosts();
        let mut attachments = Vec::with_capacity(proc.documents.len());
        for doc in &proc.documents {
            // Only iGate gives each uploaded file an id of its own.
            let id = city.then(|| self.object_id(received));
            let file = doc.file.clone().unwrap_or_else(|| format!("{}.pdf", doc.code));
            attachments.push(Attachment {
                url: format!("{files}/{}/{file}", id.as_deref().unwrap_or(&code)),
                id,
                code: doc.code.clone(),
                name: Some(doc.name.clone()),
                filename: Some(file),
                digitized: self.rng.f64() < 0.9,
            });
        }
        let online = channel == Channel::Online;
        let fees: Vec<Fee> = proc
            .fee
            .iter()
            .map(|f| Fee { code: f.code.clone(), name: f.name.clone(), amount: f.amount, online })
            .collect();
        let due = due_after(received, proc.duration_days);
        let step = Step {
            id: city.then(|| self.object_id(received)),
            assignee: self.official(),
            position: "Công chức Bộ phận Một cửa".to_owned(),
            department: "Bộ phận Một cửa".to_owned(),
            content: "Tiếp nhận hồ sơ".to_owned(),
            started_at: Some(applied),
            at: received,
            due,
            status: 2,
        };
        Dossier {
            source,
            native_id,
            code,
            ref_code: None,
            procedure: ProcedureRef {
                code: proc.code.clone(),
                name: proc.name.clone(),
                sector_code: proc.sector.code.clone(),
                sector_name: proc.sector.name.clone(),
            },
            agency: AgencyRef { code: agency.code.clone(), name: agency.name.clone(), level: agency.level },
            applicant,
            channel,
            applied_at: applied,
            received_at: received,
            due_at: due,
            completed_at: None,
            returned_at: None,
            refused_at: None,
            updated_at: now,
            status: 2,
            supplements: Vec::new(),
            steps: vec![step],
            attachments,
            results: Vec::new(),
            paid_online: online && !fees.is_empty() && self.rng.f64() < 0.7,
            fees,
            digitized: self.rng.f64() < 0.95,
            vneid_verified: online && self.rng.f64() < 0.9,
        }
    }

    /// The applicant of a new dossier of `proc`: anyone, but for a procedure only the applicant
    /// links (see [`Upstream::identity_linked`]) someone who has not filed it yet, while there is
    /// such a one. Without such procedures the draw is the same as ever, so that the recorded
    /// history stays reproducible from its seed.
    fn draw_applicant(&mut self, proc: &Procedure) -> Applicant {
        let filed =
            if self.identity_linked.contains(&proc.code) { self.applicants_of(&proc.code) } else { BTreeSet::new() };
        let cat = &self.catalogue;
        match proc.applicant {
            ApplicantKind::Citizen => {
                let fresh: Vec<_> = cat.people.iter().filter(|p| !filed.contains(&p.identity_number)).collect();
                let p = if fresh.is_empty() { pick(&mut self.rng, &cat.people) } else { *pick(&mut self.rng, &fresh) };
                citizen(p)
            }
            ApplicantKind::Business => {
                let fresh: Vec<_> = cat.businesses.iter().filter(|b| !filed.contains(&b.tax_code)).collect();
                let b =
                    if fresh.is_empty() { pick(&mut self.rng, &cat.businesses) } else { *pick(&mut self.rng, &fresh) };
                business(b)
            }
        }
    }

    /// The identity numbers of everyone with a (well-formed) record of `procedure` in any system.
    fn applicants_of(&self, procedure: &str) -> BTreeSet<String> {
        self.stores
            .iter()
            .flat_map(|s| &s.records)
            .filter_map(|r| match r {
                Record::Good(d) if d.procedure.code == procedure => Some(d.applicant.id_number.clone()),
                _ => None,
            })
            .collect()
    }

    fn push(&mut self, d: Dossier) -> Member {
        let source = d.source;
        let list = &mut self.stores[source.index()].records;
        list.push(Record::Good(Box::new(d)));
        let m = (source, list.len() - 1);
        self.reindex(m, None);
        m
    }

    /// A new dossier, received now, in the system that owns its procedure now; sometimes a
    /// centralised one was first received at a city desk and transferred (a pair). With `only`, the
    /// procedure is one that system owns now. Returns the members created (none when `only` owns
    /// no procedure now).
    fn create(&mut self, now: Timestamp, only: Option<Source>) -> Vec<Member> {
        let eligible: Vec<Procedure> = self
            .catalogue
            .procedures
            .iter()
            .filter(|p| only.is_none_or(|s| self.owner_at(&p.code, now) == s))
            .cloned()
            .collect();
        let Some(proc) = draw_weighted(&mut self.rng, &eligible).cloned() else { return Vec::new() };
        let owner = self.owner_at(&proc.code, now);
        let owner_now = self.stamp(owner, now);
        if owner == Source::City || self.rng.f64() >= self.tuning.transfer_rate {
            let d = self.build(owner, &proc, owner_now, owner_now);
            let m = self.push(d);
            self.cases.push(vec![m]);
            return vec![m];
        }
        let city_now = self.stamp(Source::City, now);
        let desk_received = city_now - SignedDuration::from_mins(self.rng.i64(30..=180));
        self.hand_over(&proc, owner, desk_received, city_now, owner_now, true).to_vec()
    }

    /// A dossier of `proc` received at a city desk at `desk_received` and handed over to `owner`'s
    /// system at `at`, where it is received at `owner_received`: the desk's copy, which ends with
    /// the hand-over, and the ministry's, which names the desk's code when `cites_desk_code` (a
    /// transfer) and otherwise shares only the procedure and the applicant with it (re-entered by
    /// hand). Both are stored as one case.
    fn hand_over(
        &mut self,
        proc: &Procedure,
        owner: Source,
        desk_received: Timestamp,
        at: Timestamp,
        owner_received: Timestamp,
        cites_desk_code: bool,
    ) -> [Member; 2] {
        let mut desk = self.build(Source::City, proc, desk_received, at);
        let mut copy = self.build(owner, proc, owner_received, owner_received);
        copy.applicant = desk.applicant.clone();
        copy.channel = desk.channel;
        copy.applied_at = desk.applied_at;
        if let Some(receipt) = copy.steps.first_mut() {
            receipt.content = if cites_desk_code {
                format!("Tiếp nhận hồ sơ chuyển từ một cửa thành phố (mã {})", desk.code)
            } else {
                "Tiếp nhận hồ sơ nhập lại từ hồ sơ giấy của một cửa thành phố".to_owned()
            };
        }
        if cites_desk_code {
            copy.ref_code = Some(desk.code.clone());
        }
        let clerk = desk.steps.first().map(|s| s.assignee.clone());
        let hand_over = Step {
            id: Some(self.object_id(at)),
            assignee: clerk.unwrap_or_else(|| self.official()),
            position: "Công chức Bộ phận Một cửa".to_owned(),
            department: "Bộ phận Một cửa".to_owned(),
            content: format!("Chuyển hồ sơ sang Hệ thống thông tin giải quyết TTHC của {}", owner.owner_title()),
            started_at: Some(desk_received),
            at,
            due: desk.due_at,
            status: 2,
        };
        desk.steps.push(hand_over);
        let a = self.push(desk);
        let b = self.push(copy);
        self.cases.push(vec![a, b]);
        [a, b]
    }

    /// See [`super::World::reenter`]. The pairs are received 25 minutes apart from 08:00 on the
    /// latest working day far enough back that the desk copy is past due now, and the ministry's
    /// copy is taken to an end state within hours of its receipt, well before its own due time.
    /// Nothing changes when the procedure is refused.
    pub fn reenter(&mut self, procedure: &str, n: usize, now: Timestamp) -> anyhow::Result<Vec<String>> {
        let proc = self
            .catalogue
            .procedure(procedure)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("procedure {procedure} is not in procedures.json"))?;
        let owner = self
            .catalogue
            .owner(procedure)
            .ok_or_else(|| anyhow::anyhow!("procedure {procedure} is the city's own: no ministry re-enters it"))?;
        // Linking by identity would join two cases of one applicant: refuse a world that has them.
        let mut cases_of: HashMap<&str, usize> = HashMap::new();
        for (i, case) in self.cases.iter().enumerate() {
            for d in case.iter().filter_map(|&m| self.dossier(m)).filter(|d| d.procedure.code == procedure) {
                if let Some(other) = cases_of.insert(&d.applicant.id_number, i).filter(|&other| other != i) {
                    anyhow::bail!(
                        "procedure {procedure}: the recorded dossiers already hold one applicant in two cases \
                         ({} and {}), which linking by identity would join",
                        self.earliest(&self.cases[other]).map_or("?", |(_, d)| d.code.as_str()),
                        d.code
                    );
                }
            }
        }
        let mut receipts = Vec::with_capacity(n);
        for i in 0..n {
            let received = past_due_receipt(now, proc.duration_days, 25 * i64::try_from(i).unwrap_or(0))?;
            anyhow::ensure!(
                self.owner_at(procedure, received) == owner,
                "procedure {procedure}: the {} system had not taken it over on {}, the latest working day a \
                 dossier received on would be past due now",
                owner.name(),
                received.to_zoned_datetime(vn_tz()).date()
            );
            receipts.push(received);
        }
        self.identity_linked.insert(procedure.to_owned());
        let mut codes = Vec::with_capacity(n);
        for desk_received in receipts {
            let handed_over = desk_received + SignedDuration::from_mins(self.rng.i64(30..=180));
            let [desk, copy] = self.hand_over(&proc, owner, desk_received, handed_over, handed_over, false);
            // Two to four steps reach an end state (2 → 4 → 5 → 4 → 9 at most); the bound only guards
            // against a change rule that would not.
            let mut at = handed_over;
            for _ in 0..8 {
                if self.dossier(copy).is_none_or(|d| is_end(d.status)) {
                    break;
                }
                at += SignedDuration::from_mins(self.rng.i64(20..=60));
                self.advance(copy, at, true);
            }
            codes.extend(self.dossier(desk).map(|d| d.code.clone()));
        }
        Ok(codes)
    }

    /// A new record that the bridge must quarantine, cycling through the systems and the kinds of
    /// damage seen in each. It belongs to no case and never changes.
    fn inject_malformed(&mut self, now: Timestamp) {
        let k = self.malformed_injected;
        self.malformed_injected += 1;
        let source = Source::ALL[(k % 6) as usize];
        let variant = k / 6;
        // A ministry only holds its own procedures, even in its broken records.
        let eligible: Vec<Procedure> = self
            .catalogue
            .procedures
            .iter()
            .filter(|p| !source.is_ministry() || self.catalogue.owner(&p.code) == Some(source))
            .cloned()
            .collect();
        let proc = if eligible.is_empty() {
            self.catalogue.draw_procedure(&mut self.rng).clone()
        } else {
            pick(&mut self.rng, &eligible).clone()
        };
        let now = self.stamp(source, now);
        let d = self.build(source, &proc, now, now);
        let native_id = d.native_id.clone();
        let mut raw = render(&d);
        let reason = damage(source, &mut raw, variant, now);
        tracing::debug!(source = source.name(), %native_id, reason, "injected a malformed record");
        let list = &mut self.stores[source.index()].records;
        list.push(Record::Malformed(Box::new(Malformed { native_id, updated_at: now, raw })));
        let m = (source, list.len() - 1);
        self.reindex(m, None);
    }

    /// Moves up to `n` of `source`'s open (or finished, not yet returned) records one step along
    /// their life, as a round does, but leaves their updated time where it was: what a system does
    /// when a change bypasses whatever bumps that time (a fix straight in its database, a batch
    /// job). An incremental poll by updated time does not look for such a change; a full sweep
    /// reads it. Only authoritative members are changed, so the expected portal truth moves with
    /// each one.
    ///
    /// `oldest_first` takes the records updated longest ago: they sit furthest behind any cursor, so
    /// no lookback reaches them and a test knows the change is invisible to incremental polls.
    /// Otherwise they are drawn at random. Returns what changed, in the order it was changed.
    pub fn silent_change(&mut self, source: Source, n: usize, now: Timestamp, oldest_first: bool) -> Vec<SilentChange> {
        let mut candidates: Vec<(Timestamp, Member, String)> = self
            .cases
            .iter()
            .filter_map(|case| {
                let m = self.authoritative(case).filter(|m| m.0 == source)?;
                let d = self.dossier(m).filter(|d| matches!(d.status, 2 | 4 | 5 | 9))?;
                let (_, first) = self.earliest(case)?;
                Some((d.updated_at, m, first.code.clone()))
            })
            .collect();
        if oldest_first {
            candidates.sort_unstable_by_key(|(updated, m, _)| (*updated, m.1));
        } else {
            self.rng.shuffle(&mut candidates);
        }
        let mut out = Vec::new();
        for (_, m, portal_code) in candidates.into_iter().take(n) {
            let Some(from) = self.dossier(m).map(|d| d.status) else { continue };
            self.advance(m, now, false);
            let Some(d) = self.dossier(m).filter(|d| d.status != from) else { continue };
            out.push(SilentChange {
                system: source.name().to_owned(),
                native_id: d.native_id.clone(),
                code: d.code.clone(),
                portal_code,
                from,
                to: d.status,
            });
        }
        self.changes_made += out.len() as u64;
        out
    }

    /// Moves an open (or finished, not yet returned) dossier one step along its life. `touch`:
    /// the system stamps the change on the record's updated time, as systems normally do (see
    /// [`Upstream::silent_change`] for one that does not).
    fn advance(&mut self, m: Member, now: Timestamp, touch: bool) {
        let now = self.stamp(m.0, now);
        let Some(d) = self.dossier(m) else { return };
        let (status, supplements, old_updated) = (d.status, d.supplements.len(), d.updated_at);
        let proc = self.catalogue.procedure(&d.procedure.code).cloned();
        let tuning = self.tuning;
        let r = self.rng.f64();
        let next = match status {
            2 if r < 0.05 => 3,
            2 => 4,
            4 if r < 0.04 => 7,
            4 if r < 0.04 + tuning.stop_rate => 8,
            4 if r < 0.34
                && (supplements == 0 || (supplements == 1 && self.rng.f64() < tuning.second_supplement_rate)) =>
            {
                5
            }
            4 => 9,
            5 => 4,
            9 => 10,
            _ => return,
        };
        const DESK: &str = "Bộ phận Một cửa";
        const DESK_CLERK: &str = "Công chức Bộ phận Một cửa";
        const SUPPLEMENT_REASONS: [&str; 4] = [
            "Bổ sung bản sao giấy tờ tùy thân còn hiệu lực",
            "Bổ sung giấy tờ chứng minh nơi cư trú",
            "Bổ sung bản vẽ có chữ ký của chủ đầu tư",
            "Tờ khai chưa ghi đủ thông tin, đề nghị kê khai lại",
        ];
        let department = proc.as_ref().map_or("Bộ phận chuyên môn", |p| p.department.as_str());
        let supplement_reason = *pick(&mut self.rng, &SUPPLEMENT_REASONS);
        let (content, position, unit) = match (status, next) {
            (_, 3) => ("Từ chối tiếp nhận: hồ sơ không thuộc thẩm quyền giải quyết".to_owned(), DESK_CLERK, DESK),
            (5, 4) => ("Tiếp nhận hồ sơ bổ sung".to_owned(), DESK_CLERK, DESK),
            (_, 4) => ("Thẩm định hồ sơ".to_owned(), "Chuyên viên", department),
            (_, 5) => (format!("Yêu cầu bổ sung: {supplement_reason}"), "Chuyên viên", department),
            (_, 7) => ("Công dân đề nghị rút hồ sơ".to_owned(), "Chuyên viên", department),
            (_, 8) => {
                ("Dừng xử lý: người nộp không hoàn thiện hồ sơ theo quy định".to_owned(), "Lãnh đạo phòng", department)
            }
            (_, 9) => ("Phê duyệt và ký kết quả giải quyết".to_owned(), "Lãnh đạo phòng", department),
            _ => ("Trả kết quả cho người nộp".to_owned(), DESK_CLERK, DESK),
        };
        let (position, unit) = (position.to_owned(), unit.to_owned());
        let assignee = self.official();
        let city = m.0 == Source::City;
        let step_id = city.then(|| self.object_id(now));
        let extra_id = self.object_id(now);
        let electronic = self.rng.f64() < 0.9;
        let (_, results_host) = m.0.hosts();
        let Some(d) = self.dossier_mut(m) else { return };
        match next {
            3 => d.refused_at = Some(now),
            5 => d.supplements.push(Supplement {
                id: extra_id,
                content: supplement_reason.to_owned(),
                requested_at: now,
                received_at: None,
            }),
            4 if status == 5 => {
                if let Some(s) = d.supplements.iter_mut().rev().find(|s| s.received_at.is_none()) {
                    s.received_at = Some(now);
                }
            }
            9 => {
                d.completed_at = Some(now);
                if let Some(kind) = proc.map(|p| p.result) {
                    d.results.push(ResultDoc {
                        id: city.then_some(extra_id),
                        url: format!("{results_host}/{}/{}.pdf", d.code, kind.code),
                        code: format!("{}-{}", kind.code, d.code),
                        name: kind.name,
                        electronic,
                    });
                }
            }
            10 => d.returned_at = Some(now),
            _ => {}
        }
        let started = d.steps.last().map(|s| s.at);
        d.steps.push(Step {
            id: step_id,
            assignee,
            position,
            department: unit,
            content,
            started_at: started,
            at: now,
            due: d.due_at,
            status: next,
        });
        d.status = next;
        if touch {
            d.updated_at = now;
            self.reindex(m, Some(old_updated));
        }
    }

    /// Adds `n` synthetic well-formed records to `source`, updated one second apart up to just
    /// before `now`: the ingest benchmark's world. Each procedure is one the system runs (a
    /// ministry's own, or the city's own), so every record is its own case.
    pub fn bulk_load(&mut self, source: Source, n: usize, now: Timestamp) -> anyhow::Result<()> {
        let eligible: Vec<u16> = (0..self.catalogue.procedures.len())
            .filter(|&i| {
                let owner = self.catalogue.owner(&self.catalogue.procedures[i].code);
                if source.is_ministry() { owner == Some(source) } else { owner.is_none() }
            })
            .filter_map(|i| u16::try_from(i).ok())
            .collect();
        anyhow::ensure!(!eligible.is_empty(), "no procedure in procedures.json is run by the {} system", source.name());
        anyhow::ensure!(
            self.catalogue.agencies.len() <= usize::from(u16::MAX)
                && self.catalogue.people.len() <= usize::from(u16::MAX)
                && self.catalogue.businesses.len() <= usize::from(u16::MAX),
            "the catalogue is too large for bulk records"
        );
        let start = self.stores[source.index()].records.len();
        anyhow::ensure!(
            start.saturating_add(n) < u32::MAX as usize,
            "{} would hold more than {} records",
            source.name(),
            u32::MAX
        );
        let communes: Vec<u16> = self
            .catalogue
            .agencies
            .iter()
            .enumerate()
            .filter(|(_, a)| a.level == super::catalogue::Level::Commune)
            .filter_map(|(i, _)| u16::try_from(i).ok())
            .collect();
        let now = super::model::whole_second(self.stamp(source, now));
        let base = now - SignedDuration::from_secs(i64::try_from(n).unwrap_or(i64::MAX));
        let mut records = Vec::with_capacity(n);
        for i in 0..n {
            let p = usize::from(*pick(&mut self.rng, &eligible));
            let proc = &self.catalogue.procedures[p];
            let agency = match &proc.agency {
                Some(code) => self.catalogue.agencies.iter().position(|a| &a.code == code),
                None => None,
            }
            .and_then(|a| u16::try_from(a).ok())
            .or_else(|| (!communes.is_empty()).then(|| *pick(&mut self.rng, &communes)))
            .unwrap_or(0);
            let applicants = match proc.applicant {
                ApplicantKind::Citizen => self.catalogue.people.len(),
                ApplicantKind::Business => self.catalogue.businesses.len(),
            };
            let updated_at = base + SignedDuration::from_secs(i64::try_from(i).unwrap_or(0));
            let received_at = updated_at - SignedDuration::from_mins(self.rng.i64(10..=4320));
            let r = self.rng.u8(..10);
            records.push(Bulk {
                id_seq: self.next_id[source.index()] + i as u64,
                code_seq: self.next_seq[source.index()] + i as u64,
                procedure: p as u16,
                agency,
                applicant: self.rng.usize(..applicants.max(1)) as u16,
                channel: if self.rng.u8(..20) == 0 { Channel::InPerson } else { Channel::Online },
                status: match r {
                    0..=2 => 2,
                    3..=6 => 4,
                    7 => 9,
                    _ => 10,
                },
                received_at,
                updated_at,
            });
        }
        self.next_id[source.index()] += n as u64;
        self.next_seq[source.index()] += n as u64;
        let shapes: std::collections::HashSet<Shape> =
            records.iter().map(|b| (b.procedure, b.agency, b.channel, b.status)).collect();
        for shape in shapes {
            self.add_template(source, shape);
        }
        let store = &mut self.stores[source.index()];
        store.index.reserve(n);
        for (i, b) in records.iter().enumerate() {
            let id = source.id_key(&bulk_native_id(source, b));
            store.index.push(Key { updated: b.updated_at, id, at: (start + i) as u32 });
        }
        store.records.extend(records.into_iter().map(Record::Bulk));
        store.index.sort_unstable();
        Ok(())
    }

    fn bulk_code(&self, source: Source, b: &Bulk, agency_prefix: &str) -> String {
        let yymmdd = b.received_at.to_zoned_datetime(vn_tz()).date().strftime("%y%m%d").to_string();
        match source.code_shape() {
            None => format!("{agency_prefix}-{yymmdd}-{:04}", b.code_seq),
            Some((prefix, width)) => format!("{prefix}-{yymmdd}-{:0width$}", b.code_seq),
        }
    }

    /// The values a bulk record's template needs, without building the whole dossier.
    fn view<'a>(&'a self, source: Source, b: &'a Bulk) -> Option<BulkView<'a>> {
        let cat = &self.catalogue;
        let proc = cat.procedures.get(usize::from(b.procedure))?;
        let agency = cat.agencies.get(usize::from(b.agency))?;
        let applicant = match proc.applicant {
            ApplicantKind::Citizen => {
                let p = cat.people.get(usize::from(b.applicant))?;
                [p.fullname.as_str(), &p.identity_number, &p.phone, &p.email]
            }
            ApplicantKind::Business => {
                let x = cat.businesses.get(usize::from(b.applicant))?;
                [x.name.as_str(), &x.tax_code, &x.phone, &x.email]
            }
        };
        Some(BulkView {
            bulk: b,
            native_id: bulk_native_id(source, b),
            code: self.bulk_code(source, b, &agency.dossier_prefix),
            applicant,
            due: due_after(b.received_at, proc.duration_days),
        })
    }

    /// A bulk record as a dossier of its system: the catalogue's data, no steps or documents.
    fn expand(&self, source: Source, b: &Bulk) -> Dossier {
        let cat = &self.catalogue;
        let proc = &cat.procedures[usize::from(b.procedure).min(cat.procedures.len().saturating_sub(1))];
        let agency = &cat.agencies[usize::from(b.agency).min(cat.agencies.len().saturating_sub(1))];
        let applicant = match proc.applicant {
            ApplicantKind::Citizen => citizen(&cat.people[usize::from(b.applicant) % cat.people.len().max(1)]),
            ApplicantKind::Business => {
                business(&cat.businesses[usize::from(b.applicant) % cat.businesses.len().max(1)])
            }
        };
        let code = self.bulk_code(source, b, &agency.dossier_prefix);
        let online = b.channel == Channel::Online;
        Dossier {
            source,
            native_id: bulk_native_id(source, b),
            code,
            ref_code: None,
            procedure: ProcedureRef {
                code: proc.code.clone(),
                name: proc.name.clone(),
                sector_code: proc.sector.code.clone(),
                sector_name: proc.sector.name.clone(),
            },
            agency: AgencyRef { code: agency.code.clone(), name: agency.name.clone(), level: agency.level },
            applicant,
            channel: b.channel,
            applied_at: b.received_at,
            received_at: b.received_at,
            due_at: due_after(b.received_at, proc.duration_days),
            completed_at: matches!(b.status, 9 | 10).then(|| b.finished_at()),
            returned_at: (b.status == 10).then_some(b.updated_at),
            refused_at: None,
            updated_at: b.updated_at,
            status: b.status,
            supplements: Vec::new(),
            steps: Vec::new(),
            attachments: Vec::new(),
            results: Vec::new(),
            fees: proc
                .fee
                .iter()
                .map(|f| Fee { code: f.code.clone(), name: f.name.clone(), amount: f.amount, online })
                .collect(),
            digitized: true,
            paid_online: online && proc.fee.is_some(),
            vneid_verified: online,
        }
    }
}

/// Only the fixture generator migrates: in the live world the cutovers have already happened.
#[cfg(test)]
impl Upstream {
    pub fn cases(&self) -> &[Vec<Member>] {
        &self.cases
    }

    pub fn dossier_at(&self, m: Member) -> Option<&Dossier> {
        self.dossier(m)
    }

    /// Copies an open city dossier into ministry system `to` at its cutover, keeping its code (a
    /// case (a) pair). The copy never changes again: the city stays authoritative for it.
    pub fn migrate(&mut self, city_index: usize, to: Source, now: Timestamp) -> bool {
        let Some(Record::Good(d)) = self.stores[Source::City.index()].records.get(city_index) else {
            return false;
        };
        let mut copy = (**d).clone();
        copy.source = to;
        copy.native_id = self.new_id(to, now);
        for s in &mut copy.steps {
            s.id = None;
        }
        for a in &mut copy.attachments {
            a.id = None;
        }
        for r in &mut copy.results {
            r.id = None;
        }
        copy.steps.push(Step {
            id: None,
            assignee: "Hệ thống".to_owned(),
            position: "Quản trị hệ thống".to_owned(),
            department: "Trung tâm Chuyển đổi số".to_owned(),
            content: "Chuyển dữ liệu hồ sơ từ Hệ thống thông tin giải quyết TTHC thành phố".to_owned(),
            started_at: None,
            at: now,
            due: copy.due_at,
            status: copy.status,
        });
        copy.updated_at = now;
        let m = self.push(copy);
        if let Some(case) = self.cases.iter_mut().find(|c| c.contains(&(Source::City, city_index))) {
            case.push(m);
        }
        true
    }

    pub fn inject_malformed_for_fixtures(&mut self, now: Timestamp) {
        self.inject_malformed(now);
    }
}

fn citizen(p: &super::catalogue::Person) -> Applicant {
    Applicant {
        kind: ApplicantKind::Citizen,
        name: p.fullname.clone(),
        id_number: p.identity_number.clone(),
        phone: p.phone.clone(),
        email: p.email.clone(),
    }
}

fn business(b: &super::catalogue::Business) -> Applicant {
    Applicant {
        kind: ApplicantKind::Business,
        name: b.name.clone(),
        id_number: b.tax_code.clone(),
        phone: b.phone.clone(),
        email: b.email.clone(),
    }
}
