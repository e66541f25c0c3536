//! The upstream world's state: the records of the city and the ministry, which records are the same
//! case, the rules that change them over time, and the truth the portal should end up showing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::{SignedDuration, Timestamp, civil::Date};
use serde_json::Value;

use super::{
    ExpectedDossier,
    catalogue::{ApplicantKind, Catalogue, Procedure},
    city,
    model::{
        AgencyRef, Applicant, Attachment, Channel, Dossier, Fee, ProcedureRef, ResultDoc, Source, Step, Supplement,
        due_after,
    },
    moj,
};
use crate::clock::vn_tz;

/// A record as an upstream system holds it.
#[derive(Debug, Clone)]
pub enum Record {
    /// Boxed: a dossier is large and malformed records are few.
    Good(Box<Dossier>),
    Malformed(Malformed),
}

/// A record the bridge must quarantine: served exactly as recorded, and never changed.
#[derive(Debug, Clone)]
pub struct Malformed {
    pub native_id: String,
    pub updated_at: Timestamp,
    pub raw: Value,
}

impl Record {
    pub fn updated_at(&self) -> Timestamp {
        match self {
            Record::Good(d) => d.updated_at,
            Record::Malformed(m) => m.updated_at,
        }
    }

    pub fn native_id(&self) -> &str {
        match self {
            Record::Good(d) => &d.native_id,
            Record::Malformed(m) => &m.native_id,
        }
    }

    pub fn render(&self) -> Value {
        match self {
            Record::Good(d) => match d.source {
                Source::City => city::render(d),
                Source::Moj => moj::render(d),
            },
            Record::Malformed(m) => m.raw.clone(),
        }
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
    /// tick may move anything), about a working day in the recorded history, where days pass.
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

#[derive(Debug)]
pub struct Upstream {
    pub catalogue: Catalogue,
    pub cutover: Date,
    pub tuning: Tuning,
    city: Vec<Record>,
    moj: Vec<Record>,
    /// Members of each case. Cases only gain members when they are created (a transfer creates both
    /// copies at once), so this is computed once per case.
    cases: Vec<Vec<Member>>,
    pub rng: fastrand::Rng,
    pub paused: bool,
    pub changes_made: u64,
    pub new_dossiers: u64,
    pub malformed_injected: u64,
    next_city_seq: u64,
    next_moj_seq: u64,
    next_moj_id: u64,
}

/// Where a dossier code ends in its sequence number: `H26.31-251215-0007` → 7.
fn code_seq(code: &str) -> u64 {
    code.rsplit('-').next().and_then(|s| s.parse().ok()).unwrap_or(0)
}

impl Upstream {
    pub fn new(catalogue: Catalogue, cutover: Date, seed: u64) -> Self {
        Self {
            catalogue,
            cutover,
            tuning: Tuning::default(),
            city: Vec::new(),
            moj: Vec::new(),
            cases: Vec::new(),
            rng: fastrand::Rng::with_seed(seed),
            paused: false,
            changes_made: 0,
            new_dossiers: 0,
            malformed_injected: 0,
            next_city_seq: 1,
            next_moj_seq: 1,
            next_moj_id: 10001,
        }
    }

    /// Loads the recorded records of both systems (each in its own dialect) and links the cases.
    pub fn load(&mut self, city_raw: &[Value], moj_raw: &[Value]) -> anyhow::Result<()> {
        for (source, raws) in [(Source::City, city_raw), (Source::Moj, moj_raw)] {
            for (i, raw) in raws.iter().enumerate() {
                let parsed = match source {
                    Source::City => city::parse(raw),
                    Source::Moj => moj::parse(raw),
                }
                .map_err(|e| anyhow::anyhow!("{} fixture record {i}: {e}", source.name()))?;
                let record = match parsed {
                    Ok(d) => Record::Good(Box::new(d)),
                    Err((native_id, updated_at, reason)) => {
                        tracing::debug!(source = source.name(), %native_id, %reason, "malformed fixture record");
                        Record::Malformed(Malformed { native_id, updated_at, raw: raw.clone() })
                    }
                };
                self.list_mut(source).push(record);
            }
        }
        self.check_unique_ids()?;
        for r in &self.city {
            if let Record::Good(d) = r {
                self.next_city_seq = self.next_city_seq.max(code_seq(&d.code) + 1);
            }
        }
        for r in &self.moj {
            self.next_moj_id = self.next_moj_id.max(r.native_id().parse::<u64>().unwrap_or(0) + 1);
            if let Record::Good(d) = r
                && d.code.starts_with("BTP-")
            {
                self.next_moj_seq = self.next_moj_seq.max(code_seq(&d.code) + 1);
            }
        }
        self.link_cases();
        Ok(())
    }

    fn check_unique_ids(&self) -> anyhow::Result<()> {
        for source in [Source::City, Source::Moj] {
            let mut ids = BTreeSet::new();
            let mut codes = BTreeSet::new();
            for r in self.records(source) {
                anyhow::ensure!(
                    ids.insert(r.native_id()),
                    "{} fixtures: id {} appears twice",
                    source.name(),
                    r.native_id()
                );
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
    /// city record its `maHoSoGoc` names, or the city record with its own code (a migrated copy).
    fn link_cases(&mut self) {
        self.cases.clear();
        let mut by_city_code: HashMap<&str, usize> = HashMap::new();
        for (i, r) in self.city.iter().enumerate() {
            if let Record::Good(d) = r {
                by_city_code.insert(d.code.as_str(), self.cases.len());
                self.cases.push(vec![(Source::City, i)]);
            }
        }
        for (i, r) in self.moj.iter().enumerate() {
            if let Record::Good(d) = r {
                let linked = d
                    .ref_code
                    .as_deref()
                    .and_then(|c| by_city_code.get(c))
                    .or_else(|| by_city_code.get(d.code.as_str()));
                match linked {
                    Some(&case) => self.cases[case].push((Source::Moj, i)),
                    None => self.cases.push(vec![(Source::Moj, i)]),
                }
            }
        }
    }

    pub fn records(&self, source: Source) -> &[Record] {
        match source {
            Source::City => &self.city,
            Source::Moj => &self.moj,
        }
    }

    fn list_mut(&mut self, source: Source) -> &mut Vec<Record> {
        match source {
            Source::City => &mut self.city,
            Source::Moj => &mut self.moj,
        }
    }

    fn dossier(&self, (source, i): Member) -> Option<&Dossier> {
        match self.records(source).get(i) {
            Some(Record::Good(d)) => Some(d),
            _ => None,
        }
    }

    fn dossier_mut(&mut self, (source, i): Member) -> Option<&mut Dossier> {
        match self.list_mut(source).get_mut(i) {
            Some(Record::Good(d)) => Some(d),
            _ => None,
        }
    }

    /// The newest update time of any record: a clock that starts earlier would make changes go back
    /// in time.
    pub fn latest_update(&self) -> Option<Timestamp> {
        self.city.iter().chain(&self.moj).map(Record::updated_at).max()
    }

    /// The member with the earliest receipt; ties go to the city, whose code was issued first.
    fn earliest(&self, case: &[Member]) -> Option<(Member, &Dossier)> {
        case.iter().filter_map(|&m| self.dossier(m).map(|d| (m, d))).min_by_key(|(m, d)| (d.received_at, m.0))
    }

    /// Whether a procedure received at `received` belongs to the city system: city-only procedures
    /// always do; centralised ones when received (local date) before the ministry's cutover.
    fn city_owns(&self, procedure_code: &str, received: Timestamp) -> bool {
        let centralised = self.catalogue.procedure(procedure_code).is_some_and(|p| p.owner.is_some());
        !centralised || received.to_zoned_datetime(vn_tz()).date() < self.cutover
    }

    /// The member whose state the portal must show (the authority rule of `architecture.md`). Falls
    /// back to the earliest member when the rule names a system the case has no copy in.
    fn authoritative(&self, case: &[Member]) -> Option<Member> {
        let (first, d) = self.earliest(case)?;
        let preferred = if self.city_owns(&d.procedure.code, d.received_at) { Source::City } else { Source::Moj };
        Some(case.iter().copied().find(|m| m.0 == preferred && self.dossier(*m).is_some()).unwrap_or(first))
    }

    /// What the portal should hold once the bridge has caught up: one entry per case.
    pub fn expected(&self) -> BTreeMap<String, ExpectedDossier> {
        let mut out = BTreeMap::new();
        for case in &self.cases {
            let (Some((_, first)), Some(auth)) =
                (self.earliest(case), self.authoritative(case).and_then(|m| self.dossier(m)))
            else {
                continue;
            };
            let member_codes: BTreeSet<String> =
                case.iter().filter_map(|&m| self.dossier(m).map(|d| d.code.clone())).collect();
            out.insert(
                first.code.clone(),
                ExpectedDossier {
                    portal_code: first.code.clone(),
                    member_codes: member_codes.into_iter().collect(),
                    procedure_code: auth.procedure.code.clone(),
                    status: auth.status,
                    received_at: first.received_at,
                    due_at: auth.due_at,
                    ended_at: auth.ended_at(),
                    returned_at: auth.returned_at,
                },
            );
        }
        out
    }

    pub fn quarantine(&self) -> Vec<(String, String)> {
        [Source::City, Source::Moj]
            .into_iter()
            .flat_map(|s| {
                self.records(s).iter().filter_map(move |r| match r {
                    Record::Malformed(m) => Some((s.name().to_owned(), m.native_id.clone())),
                    Record::Good(_) => None,
                })
            })
            .collect()
    }

    /// One round of upstream activity, every change stamped `now`: up to `n` changes, none of them
    /// to a record already changed in this round. Returns how many were made.
    pub fn round(&mut self, now: Timestamp, n: u32, malformed_every: Option<u32>) -> u32 {
        let mut touched: BTreeSet<Member> = BTreeSet::new();
        let mut made = 0;
        for _ in 0..n {
            let candidates: Vec<Member> = self
                .cases
                .iter()
                .filter_map(|c| self.authoritative(c))
                .filter(|m| !touched.contains(m))
                .filter(|&m| {
                    self.dossier(m).is_some_and(|d| {
                        matches!(d.status, 2 | 4 | 5 | 9) && d.updated_at + self.tuning.min_step_gap <= now
                    })
                })
                .collect();
            let idle = candidates.is_empty() && self.tuning.min_step_gap.is_zero();
            if idle || self.rng.f64() < self.tuning.new_rate {
                touched.extend(self.create(now));
                self.new_dossiers += 1;
                if malformed_every.is_some_and(|every| every > 0 && self.new_dossiers.is_multiple_of(u64::from(every)))
                {
                    self.inject_malformed(now);
                }
                made += 1;
            } else if !candidates.is_empty() {
                let m = candidates[self.rng.usize(..candidates.len())];
                self.advance(m, now);
                touched.insert(m);
                made += 1;
            }
        }
        self.changes_made += u64::from(made);
        made
    }

    fn pick<'a, T>(rng: &mut fastrand::Rng, items: &'a [T]) -> &'a T {
        &items[rng.usize(..items.len())]
    }

    fn hex_id(&mut self, at: Timestamp) -> String {
        // Shaped like a Mongo ObjectId: creation seconds first, so ids sort roughly by creation.
        format!("{:08x}{:016x}", at.as_second().max(0), self.rng.u64(..))
    }

    fn official(&mut self) -> String {
        Self::pick(&mut self.rng, &self.catalogue.people).fullname.clone()
    }

    /// A new dossier received `received`, recorded in `source`, whose record first appears at `now`.
    fn build(&mut self, source: Source, proc: &Procedure, received: Timestamp, now: Timestamp) -> Dossier {
        let agency = match &proc.agency {
            Some(code) => self.catalogue.agency(code).cloned(),
            None => None,
        };
        let agency = agency.unwrap_or_else(|| {
            let communes: Vec<_> = self.catalogue.communes().cloned().collect();
            Self::pick(&mut self.rng, &communes).clone()
        });
        let applicant = match proc.applicant {
            ApplicantKind::Citizen => {
                let p = Self::pick(&mut self.rng, &self.catalogue.people);
                Applicant {
                    kind: ApplicantKind::Citizen,
                    name: p.fullname.clone(),
                    id_number: p.identity_number.clone(),
                    phone: p.phone.clone(),
                    email: p.email.clone(),
                }
            }
            ApplicantKind::Business => {
                let b = Self::pick(&mut self.rng, &self.catalogue.businesses);
                Applicant {
                    kind: ApplicantKind::Business,
                    name: b.name.clone(),
                    id_number: b.tax_code.clone(),
                    phone: b.phone.clone(),
                    email: b.email.clone(),
                }
            }
        };
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
        let yymmdd = local_date.strftime("%y%m%d");
        let (native_id, code) = match source {
            Source::City => {
                let seq = self.next_city_seq;
                self.next_city_seq += 1;
                (self.hex_id(now), format!("{}-{yymmdd}-{seq:04}", agency.dossier_prefix))
            }
            Source::Moj => {
                let (id, seq) = (self.next_moj_id, self.next_moj_seq);
                self.next_moj_id += 1;
                self.next_moj_seq += 1;
                (id.to_string(), format!("BTP-{yymmdd}-{seq:06}"))
            }
        };
        let base_url = match source {
            Source::City => "https://dichvucong.haiphong.gov.vn/files",
            Source::Moj => "https://dichvucong.moj.gov.vn/tep-tin",
        };
        let mut attachments = Vec::with_capacity(proc.documents.len());
        for doc in &proc.documents {
            let id = (source == Source::City).then(|| self.hex_id(received));
            let file = doc.file.clone().unwrap_or_else(|| format!("{}.pdf", doc.code));
            attachments.push(Attachment {
                url: format!("{base_url}/{}/{file}", id.as_deref().unwrap_or(&code)),
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
            id: (source == Source::City).then(|| self.hex_id(received)),
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

    fn push(&mut self, d: Dossier) -> Member {
        let source = d.source;
        let list = self.list_mut(source);
        list.push(Record::Good(Box::new(d)));
        (source, list.len() - 1)
    }

    /// A new dossier, received now, in the system that owns its procedure now; sometimes a
    /// centralised one was first received at a city desk and transferred (a pair). Returns the
    /// members created.
    fn create(&mut self, now: Timestamp) -> Vec<Member> {
        let proc = self.catalogue.draw_procedure(&mut self.rng).clone();
        if self.city_owns(&proc.code, now) {
            let d = self.build(Source::City, &proc, now, now);
            let m = self.push(d);
            self.cases.push(vec![m]);
            return vec![m];
        }
        if self.rng.f64() >= self.tuning.transfer_rate {
            let d = self.build(Source::Moj, &proc, now, now);
            let m = self.push(d);
            self.cases.push(vec![m]);
            return vec![m];
        }
        let desk_received = now - SignedDuration::from_mins(self.rng.i64(30..=180));
        let mut desk = self.build(Source::City, &proc, desk_received, now);
        let mut transferred = self.build(Source::Moj, &proc, now, now);
        transferred.ref_code = Some(desk.code.clone());
        transferred.applicant = desk.applicant.clone();
        transferred.channel = desk.channel;
        transferred.applied_at = desk.applied_at;
        if let Some(receipt) = transferred.steps.first_mut() {
            receipt.content = format!("Tiếp nhận hồ sơ chuyển từ một cửa thành phố (mã {})", desk.code);
        }
        let clerk = desk.steps.first().map(|s| s.assignee.clone());
        let hand_over = Step {
            id: Some(self.hex_id(now)),
            assignee: clerk.unwrap_or_else(|| self.official()),
            position: "Công chức Bộ phận Một cửa".to_owned(),
            department: "Bộ phận Một cửa".to_owned(),
            content: "Chuyển hồ sơ sang Hệ thống thông tin giải quyết TTHC của Bộ Tư pháp".to_owned(),
            started_at: Some(desk_received),
            at: now,
            due: desk.due_at,
            status: 2,
        };
        desk.steps.push(hand_over);
        let a = self.push(desk);
        let b = self.push(transferred);
        self.cases.push(vec![a, b]);
        vec![a, b]
    }

    /// A new record that the bridge must quarantine, cycling through the kinds of damage seen in
    /// practice. It belongs to no case and never changes.
    fn inject_malformed(&mut self, now: Timestamp) {
        let kind = self.malformed_injected % 4;
        self.malformed_injected += 1;
        let source = if kind.is_multiple_of(2) { Source::City } else { Source::Moj };
        // The ministry only holds centralised procedures, even in its broken records.
        let eligible: Vec<Procedure> =
            self.catalogue.procedures.iter().filter(|p| p.owner.is_some() || source == Source::City).cloned().collect();
        let proc = if eligible.is_empty() {
            self.catalogue.draw_procedure(&mut self.rng).clone()
        } else {
            Self::pick(&mut self.rng, &eligible).clone()
        };
        let d = self.build(source, &proc, now, now);
        let native_id = d.native_id.clone();
        let mut raw = Record::Good(Box::new(d)).render();
        let local = now.to_zoned_datetime(vn_tz());
        let reason = match kind {
            0 => {
                raw["dossierStatus"] = serde_json::json!({ "id": 42, "name": "Chờ phê duyệt" });
                "dossierStatus.id: unknown status 42"
            }
            1 => {
                raw["ngayTiepNhan"] = Value::from(format!("{}-02-31 {}", local.year(), local.strftime("%H:%M:%S")));
                "ngayTiepNhan: impossible date"
            }
            2 => {
                raw["acceptedDate"] = Value::from(format!("{}-02-30T{}.000Z", local.year(), now.strftime("%H:%M:%S")));
                "acceptedDate: impossible date"
            }
            _ => {
                raw["trangThai"] = Value::from("CHO_PHE_DUYET");
                "trangThai: unknown status \"CHO_PHE_DUYET\""
            }
        };
        tracing::debug!(source = source.name(), %native_id, reason, "injected a malformed record");
        self.list_mut(source).push(Record::Malformed(Malformed { native_id, updated_at: now, raw }));
    }

    /// Moves an open (or finished, not yet returned) dossier one step along its life.
    fn advance(&mut self, m: Member, now: Timestamp) {
        let Some(d) = self.dossier(m) else { return };
        let (status, supplements) = (d.status, d.supplements.len());
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
        let supplement_reason = *Self::pick(&mut self.rng, &SUPPLEMENT_REASONS);
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
        let step_id = city.then(|| self.hex_id(now));
        let extra_id = self.hex_id(now);
        let electronic = self.rng.f64() < 0.9;
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
                    let host = if city {
                        "https://dichvucong.haiphong.gov.vn/ket-qua"
                    } else {
                        "https://dichvucong.moj.gov.vn/ket-qua"
                    };
                    d.results.push(ResultDoc {
                        id: city.then_some(extra_id),
                        url: format!("{host}/{}/{}.pdf", d.code, kind.code),
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
        d.updated_at = now;
    }
}

/// Only the fixture generator migrates: in the live world the cutover has already happened.
#[cfg(test)]
impl Upstream {
    pub fn cases(&self) -> &[Vec<Member>] {
        &self.cases
    }

    pub fn dossier_at(&self, m: Member) -> Option<&Dossier> {
        self.dossier(m)
    }

    /// Copies an open city dossier into the ministry system at the cutover, keeping its code (a
    /// case (a) pair). The copy never changes again: the city stays authoritative for it.
    pub fn migrate(&mut self, city_index: usize, now: Timestamp) -> bool {
        let Some(Record::Good(d)) = self.city.get(city_index) else {
            return false;
        };
        let mut copy = (**d).clone();
        copy.source = Source::Moj;
        copy.native_id = self.next_moj_id.to_string();
        self.next_moj_id += 1;
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
