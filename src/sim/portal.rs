//! The National Public Service Portal (Cổng DVCQG), implementing `spec/dvcqg-portal.md`: session
//! auth, `DongBoHoSoMC`, `CapNhatTienDoHoSoMC`, `TraCuuHoSo`, the portal's lateness judgement, and
//! the simulator's own `/_sim/*` introspection and controls for tests that run the world as a
//! separate process: `expected`, `quarantine`, `portal`, `stats`, `now`, `systems`, `late` (GET);
//! `pause`, `resume`, `outage?down=`, `faults?system=` (a JSON `Faults`; GET lists them all),
//! `portal_faults` (a JSON `PortalFaults`; GET shows them), `bulk?system=&n=` and
//! `silent?system=&n=` (POST).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, atomic::Ordering},
    time::Instant,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use jiff::{Timestamp, civil::DateTime};
use serde_json::{Map, Value, json};

use super::{
    Faults, PortalCopy, PortalFaults, Shared,
    model::{Source, is_end, whole_second},
};
use crate::clock::vn_tz;

pub const AUTH_PATH: &str = "/dvcqg/auth";
pub const INTEGRATION_PATH: &str = "/dvcqg/integration";

/// Error codes the portal answers. Only "401" and the "đã tồn tại" code are in the spec; the others
/// are the simulator's choice and the bridge must not depend on them (it reads the messages).
const OK: &str = "0";
const CONFIG_FAULT: &str = "-1";
const INVALID: &str = "-2";
const EXISTS: &str = "-3";
const UNKNOWN: &str = "-4";
const SESSION: &str = "401";
const THROTTLED: &str = "429";

/// Progress items per `CapNhatTienDoHoSoMC` call (observed practice).
const MAX_PROGRESS_ITEMS: usize = 10;

const REQUIRED: [&str; 11] = [
    "MaHoSo",
    "MaTTHC",
    "TenTTHC",
    "MaLinhVuc",
    "KenhThucHien",
    "ChuHoSo",
    "LoaiDoiTuong",
    "NgayTiepNhan",
    "NgayHenTra",
    "TrangThaiHoSo",
    "DonViXuLy",
];
const OPTIONAL_TIMES: [&str; 4] = ["NgayKetThucXuLy", "NgayTra", "NgayTuChoi", "NgayNopHoSo"];
const SUPPLEMENT_TIMES: [&str; 4] = ["NgayBoSung", "NgayTiepNhanBoSung", "NgayHenTraTruoc", "NgayHenTraMoi"];
const LISTS: [&str; 4] = ["DanhSachHoSoBoSung", "DanhSachGiayToKetQua", "TaiLieuNop", "DanhSachLePhi"];

/// The portal's copy of one dossier.
#[derive(Debug, Clone)]
pub struct StoredCopy {
    pub dossier: Map<String, Value>,
    pub creates: u32,
    pub updates: u32,
    pub progress: Vec<Value>,
    pub first_seen_ended_at: Option<Timestamp>,
    /// Of `creates` and `updates`, the writes an upstream system made syncing its own dossiers
    /// (`self_sync`), not through the API the bridge calls.
    pub source_writes: u32,
}

#[derive(Debug, Default)]
pub struct PortalState {
    sessions: HashMap<String, Instant>,
    pub copies: BTreeMap<String, StoredCopy>,
    pub calls: u64,
    pub rejected_calls: u64,
    pub outage_answers: u64,
    rng: Option<fastrand::Rng>,
    /// Misbehaviour on demand, and its own draws (seeded, so that the same calls replay).
    pub faults: PortalFaults,
    fault_rng: Option<fastrand::Rng>,
    /// Until when a throttled client was told to stay away (`Retry-After`).
    quiet_until: Option<Instant>,
    /// The items of throttled calls (service and item as sent), and until when each was told to
    /// wait.
    held: HashMap<String, Instant>,
    pub counts: PortalCounts,
    /// Every dossier object the portal accepted, in the order it applied them.
    pub receipts: Vec<Receipt>,
}

/// What the portal saw of its clients' behaviour (see `SimStats`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PortalCounts {
    pub logins: u64,
    pub session_refusals: u64,
    pub throttled: u64,
    pub early_calls: u64,
    pub early_items: u64,
    pub exists_answers: u64,
    pub refused_by_fault: u64,
    pub dong_bo_calls: u64,
}

/// One dossier object the portal accepted (`World::portal_receipts`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    /// Position among every object accepted, from 0.
    pub seq: u64,
    /// The `DongBoHoSoMC` call it came in, counted from 1 (a batch shares its call).
    pub call: u64,
    pub code: String,
    /// Simulated time of the call.
    pub at: Timestamp,
    /// Sent as an update (`isUpdating` "True").
    pub update: bool,
    pub status: Option<u8>,
}

/// How late a client may come back after a `Retry-After` and still count as having waited: the
/// client's clock and the portal's are the same machine's, but each reads it at its own moment.
const RETRY_AFTER_GRACE: std::time::Duration = std::time::Duration::from_millis(20);

impl PortalState {
    /// An upstream system writes its own copy of a dossier (`self_sync`): a create or an update as
    /// the portal sees any writer, counted apart in `source_writes`. Nothing is written when the
    /// copy is already exactly this. Returns whether it wrote.
    pub fn write_from_source(&mut self, code: &str, obj: Map<String, Value>, now: Timestamp) -> bool {
        let ended = status_of(&obj).is_some_and(is_end);
        match self.copies.get_mut(code) {
            Some(copy) if copy.dossier == obj => return false,
            Some(copy) => {
                copy.dossier = obj;
                copy.updates += 1;
                copy.source_writes += 1;
                if ended && copy.first_seen_ended_at.is_none() {
                    copy.first_seen_ended_at = Some(now);
                }
            }
            None => {
                self.copies.insert(
                    code.to_owned(),
                    StoredCopy {
                        dossier: obj,
                        creates: 1,
                        updates: 0,
                        progress: Vec::new(),
                        first_seen_ended_at: ended.then_some(now),
                        source_writes: 1,
                    },
                );
            }
        }
        true
    }

    /// A portal whose fault draws come from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { fault_rng: Some(fastrand::Rng::with_seed(seed ^ 0x0d0c_9a11_7e57_u64)), ..Self::default() }
    }

    /// The 429 answer this call gets, if any: inside a window a previous 429 opened, or drawn.
    /// One draw per call whatever the settings, so that the stream does not depend on them. The
    /// dossiers a throttled call carried are remembered until the window ends.
    fn throttle(&mut self, body: &[u8]) -> Option<Response> {
        let now = Instant::now();
        let drawn = self.fault_rng.get_or_insert_with(fastrand::Rng::new).f64() < self.faults.throttle_429;
        let wait = match self.quiet_until {
            Some(until) if until > now + RETRY_AFTER_GRACE => {
                self.counts.early_calls += 1;
                until - now
            }
            _ if drawn => {
                let wait = std::time::Duration::from_secs(self.faults.retry_after_secs.max(1));
                self.quiet_until = Some(now + wait);
                wait
            }
            _ => return None,
        };
        self.counts.throttled += 1;
        // An item sent again while the 429 that refused it still holds: the client ignored the
        // Retry-After for that very item, not only for the portal.
        self.held.retain(|_, until| *until > now);
        if let Ok(Value::Object(call)) = serde_json::from_slice::<Value>(body)
            && let Some(Value::Array(items)) = call.get("data")
        {
            // The very item again (a newer state of the dossier, or another of its steps, is other
            // work); a call's items once.
            let service = text(&call, "service").ok().flatten().unwrap_or_default();
            let keys: std::collections::BTreeSet<String> =
                items.iter().map(|item| format!("{service} {item}")).collect();
            for key in keys {
                if self.held.get(&key).is_some_and(|until| *until > now + RETRY_AFTER_GRACE) {
                    self.counts.early_items += 1;
                }
                self.held.insert(key, now + wait);
            }
        }
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, secs.to_string())],
                Json(json!({
                    "error_code": THROTTLED,
                    "message": format!("Vượt quá số lượng yêu cầu cho phép, vui lòng thử lại sau {secs} giây"),
                })),
            )
                .into_response(),
        )
    }

    pub fn snapshot(&self, now: Timestamp) -> BTreeMap<String, PortalCopy> {
        self.copies
            .iter()
            .map(|(code, c)| {
                (
                    code.clone(),
                    PortalCopy {
                        dossier: Value::Object(c.dossier.clone()),
                        creates: c.creates,
                        updates: c.updates,
                        progress: c.progress.clone(),
                        first_seen_ended_at: c.first_seen_ended_at,
                        source_writes: c.source_writes,
                        late: judge(c, now),
                        live: !is_closed_duplicate(&c.dossier),
                    },
                )
            })
            .collect()
    }
}

/// A value as text: the portal receives strings but accepts numbers. `None` for null or absent;
/// `Err` for a value of another kind.
fn text(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, ()> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(()),
    }
}

/// A portal time: exactly `yyyyMMddHHmmss`, local time.
pub fn parse_time(s: &str) -> Option<Timestamp> {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    DateTime::strptime("%Y%m%d%H%M%S", s).and_then(|dt| dt.to_zoned_datetime(vn_tz())).map(|z| z.timestamp()).ok()
}

pub fn format_time(t: Timestamp) -> String {
    t.to_zoned_datetime(vn_tz()).strftime("%Y%m%d%H%M%S").to_string()
}

fn time_field(obj: &Map<String, Value>, field: &str) -> Option<Timestamp> {
    text(obj, field).ok().flatten().and_then(|s| parse_time(&s))
}

fn invalid(field: &str, value: &str, why: &str) -> String {
    format!("Trường {field} không hợp lệ: \"{value}\" ({why})")
}

fn check_time(obj: &Map<String, Value>, field: &str, shown: &str) -> Result<(), String> {
    match text(obj, field) {
        Err(()) => Err(invalid(shown, "?", "phải là chuỗi")),
        Ok(Some(s)) if parse_time(&s).is_none() => Err(invalid(shown, &s, "không đúng định dạng yyyyMMddHHmmss")),
        _ => Ok(()),
    }
}

fn check_range(obj: &Map<String, Value>, field: &str, lo: u8, hi: u8) -> Result<(), String> {
    if let Ok(Some(s)) = text(obj, field)
        && !s.parse::<u8>().is_ok_and(|v| (lo..=hi).contains(&v))
    {
        return Err(invalid(field, &s, &format!("phải từ {lo} đến {hi}")));
    }
    Ok(())
}

fn check_length(obj: &Map<String, Value>, field: &str, max: usize) -> Result<(), String> {
    if let Ok(Some(s)) = text(obj, field)
        && s.chars().count() > max
    {
        return Err(format!("Trường {field} không hợp lệ: dài hơn {max} ký tự"));
    }
    Ok(())
}

/// Why a dossier object would be refused, naming the field: such a rejection is permanent.
fn validate_dossier(obj: &Map<String, Value>) -> Result<(), String> {
    for field in REQUIRED {
        match text(obj, field) {
            Ok(Some(_)) => {}
            Ok(None) => return Err(format!("Thiếu trường bắt buộc {field}")),
            Err(()) => return Err(invalid(field, "?", "phải là chuỗi")),
        }
    }
    for field in ["NgayTiepNhan", "NgayHenTra"].into_iter().chain(OPTIONAL_TIMES) {
        check_time(obj, field, field)?;
    }
    check_range(obj, "TrangThaiHoSo", 1, 10)?;
    check_range(obj, "KenhThucHien", 1, 3)?;
    check_range(obj, "LoaiDoiTuong", 1, 4)?;
    check_length(obj, "TrichYeuHoSo", 1000)?;
    for list in LISTS {
        match obj.get(list) {
            None | Some(Value::Null) | Some(Value::Array(_)) => {}
            Some(_) => return Err(format!("Trường {list} không hợp lệ: phải là mảng")),
        }
    }
    if let Some(Value::Array(items)) = obj.get("DanhSachHoSoBoSung") {
        for (i, item) in items.iter().enumerate() {
            let Value::Object(s) = item else {
                return Err(format!("Trường DanhSachHoSoBoSung[{i}] không hợp lệ: phải là đối tượng"));
            };
            for field in SUPPLEMENT_TIMES {
                check_time(s, field, &format!("DanhSachHoSoBoSung[{i}].{field}"))?;
            }
        }
    }
    Ok(())
}

fn validate_progress(obj: &Map<String, Value>) -> Result<(), String> {
    for field in ["MaHoSo", "ThoiDiemXuLy", "TrangThai"] {
        match text(obj, field) {
            Ok(Some(_)) => {}
            Ok(None) => return Err(format!("Thiếu trường bắt buộc {field}")),
            Err(()) => return Err(invalid(field, "?", "phải là chuỗi")),
        }
    }
    for field in ["ThoiDiemXuLy", "NgayBatDau", "NgayKetThucTheoQuyDinh"] {
        check_time(obj, field, field)?;
    }
    check_range(obj, "TrangThai", 1, 10)?;
    check_length(obj, "NguoiXuLy", 50)
}

fn status_of(obj: &Map<String, Value>) -> Option<u8> {
    text(obj, "TrangThaiHoSo").ok().flatten()?.parse().ok()
}

/// Whether `GhiChu` names a dossier code other than the copy's own: a code-like token, i.e. one with
/// a digit and a dash (`H26.31-251215-0001`, `BTP-260116-000123`).
fn names_other_code(note: &str, own: &str) -> bool {
    note.split(|c: char| !(c.is_alphanumeric() || c == '.' || c == '-'))
        .map(|t| t.trim_matches(|c| c == '.' || c == '-'))
        .any(|t| t != own && t.contains('-') && t.chars().any(|c| c.is_ascii_digit()))
}

/// A closed duplicate: stopped, with a note naming the case's canonical code. Not live, never late.
pub fn is_closed_duplicate(obj: &Map<String, Value>) -> bool {
    let own = text(obj, "MaHoSo").ok().flatten().unwrap_or_default();
    status_of(obj) == Some(8) && text(obj, "GhiChu").ok().flatten().is_some_and(|note| names_other_code(&note, &own))
}

/// The portal's verdict ("How the portal judges a dossier") on its copy of a dossier.
pub fn judge(copy: &StoredCopy, now: Timestamp) -> bool {
    let obj = &copy.dossier;
    if is_closed_duplicate(obj) {
        return false;
    }
    let Some(due) = time_field(obj, "NgayHenTra") else {
        return false;
    };
    let supplements: Vec<(Option<Timestamp>, Option<Timestamp>)> = match obj.get("DanhSachHoSoBoSung") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_object)
            .map(|s| (time_field(s, "NgayBoSung"), time_field(s, "NgayTiepNhanBoSung")))
            .collect(),
        _ => Vec::new(),
    };
    let ended = status_of(obj).is_some_and(is_end);
    let end = time_field(obj, "NgayKetThucXuLy")
        .or_else(|| time_field(obj, "NgayTra"))
        .or_else(|| time_field(obj, "NgayTuChoi"))
        .or(copy.first_seen_ended_at);
    late_by_rule(due, &supplements, ended, end, now)
}

/// The portal's lateness rule on plain times, so that the world can judge a source's own record by
/// the rule the portal judges its copy by. `supplements`: each request's (asked, received) times;
/// `ended`: in an end state, at `end` (unknown: not late). The supplement pause is plain elapsed
/// time here rather than working time: close enough for the simulator, and a difference the
/// bridge's own verdict must not rely on.
pub fn late_by_rule(
    due: Timestamp,
    supplements: &[(Option<Timestamp>, Option<Timestamp>)],
    ended: bool,
    end: Option<Timestamp>,
    now: Timestamp,
) -> bool {
    if supplements.len() > 1 {
        return true;
    }
    let mut due = due;
    let mut awaited_since = None;
    for s in supplements {
        match *s {
            (Some(asked), Some(got)) if got > asked => {
                due = due.checked_add(got.duration_since(asked)).unwrap_or(due);
            }
            (Some(asked), None) => awaited_since = Some(asked),
            _ => {}
        }
    }
    if ended {
        return end.is_some_and(|end| end > due);
    }
    match awaited_since {
        Some(asked) => asked > due,
        None => now > due,
    }
}

fn answer(error_code: &str, message: &str, result: Vec<Value>) -> Response {
    Json(json!({ "error_code": error_code, "message": message, "result": result })).into_response()
}

/// One item's outcome: its error code and message when refused.
type Outcome = Result<(), (&'static str, String)>;

/// One item's outcome in a batch answer.
fn item(code: &str, outcome: &Outcome) -> Value {
    match outcome {
        Ok(()) => json!({ "MaHoSo": code, "error_code": OK, "message": "Thành công" }),
        Err((ec, msg)) => json!({ "MaHoSo": code, "error_code": ec, "message": msg }),
    }
}

/// The answer to a batch: the top level carries the first failed item's code and message.
fn batch_answer(portal: &mut PortalState, outcomes: Vec<(String, Outcome)>) -> Response {
    let first_failure = outcomes.iter().find_map(|(_, o)| o.as_ref().err()).cloned();
    let result = outcomes.iter().map(|(c, o)| item(c, o)).collect();
    match first_failure {
        None => answer(OK, "Thành công", result),
        Some((ec, msg)) => {
            portal.rejected_calls += 1;
            answer(ec, &msg, result)
        }
    }
}

fn as_flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn dong_bo(portal: &mut PortalState, body: &Map<String, Value>, now: Timestamp) -> Response {
    portal.counts.dong_bo_calls += 1;
    let call = portal.counts.dong_bo_calls;
    let Some(updating) = body.get("isUpdating").and_then(as_flag) else {
        portal.rejected_calls += 1;
        return answer(INVALID, "Tham số isUpdating không hợp lệ: phải là \"True\" hoặc \"False\"", vec![]);
    };
    let Some(Value::Array(items)) = body.get("data") else {
        portal.rejected_calls += 1;
        return answer(INVALID, "Tham số data không hợp lệ: phải là mảng hồ sơ", vec![]);
    };
    let mut outcomes = Vec::with_capacity(items.len());
    for raw in items {
        let Value::Object(obj) = raw else {
            outcomes.push((String::new(), Err((INVALID, "Hồ sơ không hợp lệ: phải là đối tượng".to_owned()))));
            continue;
        };
        let code = text(obj, "MaHoSo").ok().flatten().unwrap_or_default();
        let outcome =
            validate_dossier(obj).map_err(|m| (INVALID, m)).and_then(|()| refused_by_fault(portal, obj, &code));
        let outcome = outcome.and_then(|()| {
            let ended = status_of(obj).is_some_and(is_end);
            match (updating, portal.copies.get_mut(&code)) {
                (false, Some(_)) => {
                    portal.counts.exists_answers += 1;
                    Err((EXISTS, format!("Hồ sơ {code} đã tồn tại trên Cổng DVCQG")))
                }
                (true, None) => Err((UNKNOWN, format!("Hồ sơ {code} không tồn tại trên Cổng DVCQG"))),
                (false, None) => {
                    portal.copies.insert(
                        code.clone(),
                        StoredCopy {
                            dossier: obj.clone(),
                            creates: 1,
                            updates: 0,
                            progress: Vec::new(),
                            first_seen_ended_at: ended.then_some(now),
                            source_writes: 0,
                        },
                    );
                    Ok(())
                }
                (true, Some(copy)) => {
                    copy.dossier = obj.clone();
                    copy.updates += 1;
                    if ended && copy.first_seen_ended_at.is_none() {
                        copy.first_seen_ended_at = Some(now);
                    }
                    Ok(())
                }
            }
        });
        if outcome.is_ok() {
            let seq = portal.receipts.len() as u64;
            let status = status_of(obj);
            portal.receipts.push(Receipt { seq, call, code: code.clone(), at: now, update: updating, status });
        }
        outcomes.push((code, outcome));
    }
    batch_answer(portal, outcomes)
}

/// The permanent rejection `PortalFaults::reject` asks for, naming the field and its value.
fn refused_by_fault(portal: &mut PortalState, obj: &Map<String, Value>, code: &str) -> Outcome {
    let Some(field) = portal.faults.reject.get(code) else {
        return Ok(());
    };
    let value = text(obj, field).ok().flatten().unwrap_or_default();
    let message = invalid(field, &value, "không có trong danh mục của Cơ sở dữ liệu quốc gia về TTHC");
    portal.counts.refused_by_fault += 1;
    Err((INVALID, message))
}

fn tien_do(portal: &mut PortalState, body: &Map<String, Value>) -> Response {
    let Some(Value::Array(items)) = body.get("data") else {
        portal.rejected_calls += 1;
        return answer(INVALID, "Tham số data không hợp lệ: phải là mảng tiến độ", vec![]);
    };
    if items.len() > MAX_PROGRESS_ITEMS {
        portal.rejected_calls += 1;
        return answer(
            INVALID,
            &format!(
                "Tham số data không hợp lệ: tối đa {MAX_PROGRESS_ITEMS} bản ghi mỗi lần gọi (nhận {})",
                items.len()
            ),
            vec![],
        );
    }
    let mut outcomes = Vec::with_capacity(items.len());
    for raw in items {
        let Value::Object(obj) = raw else {
            outcomes.push((String::new(), Err((INVALID, "Tiến độ không hợp lệ: phải là đối tượng".to_owned()))));
            continue;
        };
        let code = text(obj, "MaHoSo").ok().flatten().unwrap_or_default();
        let outcome =
            validate_progress(obj).map_err(|m| (INVALID, m)).and_then(|()| match portal.copies.get_mut(&code) {
                None => Err((UNKNOWN, format!("Hồ sơ {code} không tồn tại trên Cổng DVCQG"))),
                Some(copy) => {
                    copy.progress.push(raw.clone());
                    Ok(())
                }
            });
        outcomes.push((code, outcome));
    }
    batch_answer(portal, outcomes)
}

fn tra_cuu(portal: &mut PortalState, body: &Map<String, Value>) -> Response {
    let code = text(body, "mahoso").ok().flatten().or_else(|| text(body, "MaHoSo").ok().flatten());
    let Some(code) = code else {
        portal.rejected_calls += 1;
        return answer(INVALID, "Thiếu tham số mahoso", vec![]);
    };
    let result = portal.copies.get(&code).map(|c| vec![Value::Object(c.dossier.clone())]).unwrap_or_default();
    answer(OK, "Thành công", result)
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(AUTH_PATH, post(auth))
        .route(INTEGRATION_PATH, post(integration))
        .route("/_sim/expected", get(sim_expected))
        .route("/_sim/quarantine", get(sim_quarantine))
        .route("/_sim/portal", get(sim_portal))
        .route("/_sim/stats", get(sim_stats))
        .route("/_sim/now", get(sim_now))
        .route("/_sim/pause", post(sim_pause))
        .route("/_sim/resume", post(sim_resume))
        .route("/_sim/outage", post(sim_outage))
        .route("/_sim/faults", get(sim_faults).post(sim_set_faults))
        .route("/_sim/portal_faults", get(sim_portal_faults).post(sim_set_portal_faults))
        .route("/_sim/late", get(sim_late))
        .route("/_sim/systems", get(sim_systems))
        .route("/_sim/bulk", post(sim_bulk))
        .route("/_sim/silent", post(sim_silent))
        .with_state(shared)
}

/// What every portal call goes through first: the outage switch, the call count, the routing header
/// and a JSON object body. `Err` is the answer to send instead.
fn admit(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, Box<Response>> {
    let mut portal = shared.lock_portal();
    portal.calls += 1;
    let refusal = if shared.portal_down.load(Ordering::SeqCst) {
        portal.outage_answers += 1;
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            Json(json!({ "error_code": "503", "message": "Hệ thống đang bảo trì, vui lòng thử lại sau" })),
        )
            .into_response()
    } else if let Some(throttled) = portal.throttle(body) {
        throttled
    } else {
        let dstcode = headers.get("dstcode").and_then(|v| v.to_str().ok());
        if dstcode != Some(shared.opts.portal_dstcode.as_str()) {
            answer(CONFIG_FAULT, &format!("Mã định tuyến dstcode không hợp lệ: \"{}\"", dstcode.unwrap_or("")), vec![])
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(obj)) => return Ok(obj),
                _ => (
                    StatusCode::BAD_REQUEST,
                    Json(json!({ "error_code": INVALID, "message": "Dữ liệu gửi lên không phải đối tượng JSON hợp lệ", "result": [] })),
                )
                    .into_response(),
            }
        }
    };
    portal.rejected_calls += 1;
    Err(Box::new(refusal))
}

async fn auth(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let obj = match admit(&shared, &headers, &body) {
        Ok(obj) => obj,
        Err(answer) => return *answer,
    };
    let mut portal = shared.lock_portal();
    let user = text(&obj, "username").ok().flatten();
    let pass = text(&obj, "password").ok().flatten();
    if user.as_deref() != Some(shared.opts.portal_username.as_str())
        || pass.as_deref() != Some(shared.opts.portal_password.as_str())
    {
        portal.rejected_calls += 1;
        return Json(
            json!({ "session": null, "error_code": CONFIG_FAULT, "message": "Tên đăng nhập hoặc mật khẩu không đúng" }),
        )
        .into_response();
    }
    let now = Instant::now();
    portal.sessions.retain(|_, exp| *exp > now);
    let rng = portal.rng.get_or_insert_with(fastrand::Rng::new);
    let session = format!("{:016x}{:016x}", rng.u64(..), rng.u64(..));
    let ttl = match portal.faults.session_ttl_ms {
        0 => shared.opts.portal_session_ttl,
        ms => std::time::Duration::from_millis(ms),
    };
    portal.sessions.insert(session.clone(), now + ttl);
    portal.counts.logins += 1;
    Json(json!({ "session": session, "error_code": 0, "message": "Đăng nhập thành công" })).into_response()
}

async fn integration(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let obj = match admit(&shared, &headers, &body) {
        Ok(obj) => obj,
        Err(answer) => return *answer,
    };
    let now = shared.now();
    let (response, delay) = serve(&shared, &obj, now);
    if !delay.is_zero() {
        // The items are applied: a client that dies before this answer never learns it.
        tokio::time::sleep(delay).await;
    }
    response
}

/// One integration call after admission: its answer, and how long to hold it back
/// (`PortalFaults::slow_ms`, for `DongBoHoSoMC`).
fn serve(shared: &Shared, obj: &Map<String, Value>, now: Timestamp) -> (Response, std::time::Duration) {
    let mut portal = shared.lock_portal();
    let session_ok = text(obj, "session")
        .ok()
        .flatten()
        .and_then(|s| portal.sessions.get(&s).copied())
        .is_some_and(|exp| exp > Instant::now());
    let no_delay = std::time::Duration::ZERO;
    if !session_ok {
        portal.rejected_calls += 1;
        portal.counts.session_refusals += 1;
        return (answer(SESSION, "Phiên làm việc không hợp lệ hoặc đã hết hạn", vec![]), no_delay);
    }
    let madonvi = text(obj, "madonvi").ok().flatten().unwrap_or_default();
    if madonvi != shared.opts.portal_madonvi {
        portal.rejected_calls += 1;
        let message = format!("Mã đơn vị không hợp lệ hoặc không được phép đồng bộ: \"{madonvi}\"");
        return (answer(CONFIG_FAULT, &message, vec![]), no_delay);
    }
    let service = text(obj, "service").ok().flatten().unwrap_or_default();
    match service.as_str() {
        "DongBoHoSoMC" => {
            let delay = std::time::Duration::from_millis(portal.faults.slow_ms);
            (dong_bo(&mut portal, obj, now), delay)
        }
        "CapNhatTienDoHoSoMC" => (tien_do(&mut portal, obj), no_delay),
        "TraCuuHoSo" => (tra_cuu(&mut portal, obj), no_delay),
        other => {
            portal.rejected_calls += 1;
            (answer(CONFIG_FAULT, &format!("Dịch vụ \"{other}\" không được hỗ trợ"), vec![]), no_delay)
        }
    }
}

async fn sim_expected(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.expected_portal()).into_response()
}

async fn sim_quarantine(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.expected_quarantine()).into_response()
}

async fn sim_portal(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.portal_snapshot()).into_response()
}

async fn sim_stats(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.stats()).into_response()
}

async fn sim_now(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!({ "now": shared.now() })).into_response()
}

async fn sim_pause(State(shared): State<Arc<Shared>>) -> Response {
    shared.set_paused(true);
    Json(json!({ "ok": true, "paused": true })).into_response()
}

async fn sim_resume(State(shared): State<Arc<Shared>>) -> Response {
    shared.set_paused(false);
    Json(json!({ "ok": true, "paused": false })).into_response()
}

async fn sim_outage(State(shared): State<Arc<Shared>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(down) = q.get("down").and_then(|v| v.parse::<bool>().ok()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "ok": false, "message": "expected ?down=true or ?down=false" })),
        )
            .into_response();
    };
    shared.portal_down.store(down, Ordering::SeqCst);
    Json(json!({ "ok": true, "down": down })).into_response()
}

/// Which dossiers the portal shows late now, which of them falsely, and the false-late total so
/// far (see `World::portal_lateness`).
async fn sim_late(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.portal_lateness()).into_response()
}

async fn sim_portal_faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.lock_portal().faults.clone()).into_response()
}

/// Replaces the portal's faults: `POST /_sim/portal_faults` with a JSON `PortalFaults` (missing
/// fields are zero, so `{}` clears them).
async fn sim_set_portal_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let faults: PortalFaults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return bad_request(&format!("expected a PortalFaults object: {e}")),
    };
    shared.set_portal_faults(faults);
    Json(json!({ "ok": true, "faults": shared.lock_portal().faults.clone() })).into_response()
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "ok": false, "message": message }))).into_response()
}

fn system_param(q: &HashMap<String, String>) -> Option<Source> {
    q.get("system").and_then(|s| Source::from_name(s))
}

const SYSTEM_EXPECTED: &str = "expected ?system= one of city, moj, moc, mae, mof, mps";

/// Every upstream system's faults, by name.
async fn sim_faults(State(shared): State<Arc<Shared>>) -> Response {
    let book = shared.lock_faults();
    let all: BTreeMap<&str, Faults> = Source::ALL.iter().map(|s| (s.name(), book.get(*s))).collect();
    Json(all).into_response()
}

/// Replaces one system's faults: `POST /_sim/faults?system=moc` with a JSON `Faults` (missing
/// fields are zero, so `{}` clears them).
async fn sim_set_faults(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let Some(source) = system_param(&q) else {
        return bad_request(SYSTEM_EXPECTED);
    };
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return bad_request(&format!("expected a Faults object: {e}")),
    };
    shared.set_faults(source, faults);
    Json(json!({ "ok": true, "system": source.name(), "faults": shared.lock_faults().get(source) })).into_response()
}

/// Changes records without moving their updated time, from another process (see
/// `World::silent_change`): `POST /_sim/silent?system=city&n=3` answers the changes made.
async fn sim_silent(State(shared): State<Arc<Shared>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(source) = system_param(&q) else {
        return bad_request(SYSTEM_EXPECTED);
    };
    let Some(n) = q.get("n").and_then(|n| n.parse::<usize>().ok()) else {
        return bad_request("expected ?n= a record count");
    };
    Json(shared.silent_change(source, n)).into_response()
}

/// The upstream systems as a client configures them (address, adapter, credentials).
async fn sim_systems(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.systems.get().cloned().unwrap_or_default()).into_response()
}

/// Adds bulk records to a system from another process: `POST /_sim/bulk?system=moj&n=1000000`.
async fn sim_bulk(State(shared): State<Arc<Shared>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(source) = system_param(&q) else {
        return bad_request(SYSTEM_EXPECTED);
    };
    let Some(n) = q.get("n").and_then(|n| n.parse::<usize>().ok()) else {
        return bad_request("expected ?n= a record count");
    };
    // A million records take a moment under the world's lock: off the async workers.
    let now = whole_second(shared.now());
    let worker = shared.clone();
    let loaded = tokio::task::spawn_blocking(move || worker.lock_upstream().bulk_load(source, n, now)).await;
    match loaded {
        Ok(Ok(())) => Json(json!({ "ok": true, "system": source.name(), "added": n })).into_response(),
        Ok(Err(e)) => bad_request(&e.to_string()),
        Err(e) => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "ok": false, "message": e.to_string() }))).into_response()
        }
    }
}
