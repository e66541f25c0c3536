//! The city's procedure system, in the dialect of VNPT iGate: API-key auth, Spring pages sorted by
//! `updatedDate` descending, no "updated since" filter, ISO 8601 UTC dates with milliseconds, iGate's
//! own status ids (0–9, not the portal's 1–10) and channel ids (0–2, not the portal's 1–3).
//!
//! Credentials: `api_key` (header `X-API-Key`). Records at `content`.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    Shared,
    catalogue::{ApplicantKind, Level},
    faults::{self, Call, Walk},
    model::{
        AgencyRef, Applicant, Attachment, Channel, Dossier, Fee, ProcedureRef, ResultDoc, Source, Step, Supplement,
    },
};
use crate::clock::vn_tz;

/// The largest page the simulated iGate serves: raised for the ingest benchmark's big walks.
const MAX_PAGE_SIZE: usize = 1000;
const DEFAULT_PAGE_SIZE: usize = 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CityRecord {
    id: String,
    code: String,
    nation_code: Option<String>,
    procedure: CityProcedure,
    agency: CityAgency,
    applicant: CityApplicant,
    apply_method: IdName,
    applied_date: String,
    accepted_date: String,
    appointment_date: String,
    completed_date: Option<String>,
    returned_date: Option<String>,
    refused_date: Option<String>,
    updated_date: String,
    dossier_status: IdName,
    additional_request: Vec<CityAdditionalRequest>,
    task: Vec<CityTask>,
    attachment: Vec<CityAttachment>,
    result: Vec<CityResult>,
    fee: Vec<CityFee>,
    digitized: bool,
    paid_online: bool,
    vneid_verified: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeName {
    code: String,
    name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CityProcedure {
    code: String,
    name: String,
    sector: CodeName,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CityAgency {
    code: String,
    name: String,
    level: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CityApplicant {
    #[serde(rename = "type")]
    kind: i64,
    data: CityApplicantData,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CityApplicantData {
    fullname: String,
    identity_number: String,
    phone_number: String,
    email: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdName {
    id: i64,
    name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CityAdditionalRequest {
    id: String,
    content: String,
    requested_date: String,
    received_date: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fullname {
    fullname: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Name {
    name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CityTask {
    id: String,
    assignee: Fullname,
    position: String,
    agency: Name,
    content: String,
    created_date: String,
    completed_date: String,
    due_date: String,
    status_id: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CityAttachment {
    id: String,
    filename: String,
    group: String,
    digitized: bool,
    url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CityResult {
    id: String,
    name: String,
    code: String,
    url: String,
    electronic: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CityFee {
    code: String,
    name: String,
    amount: u64,
    method: String,
}

/// iGate status id and name for a portal status.
pub fn status_to_city(status: u8) -> (i64, &'static str) {
    match status {
        1 => (0, "Mới đăng ký"),
        2 => (1, "Đã tiếp nhận"),
        3 => (7, "Từ chối tiếp nhận"),
        4 => (2, "Đang xử lý"),
        5 => (3, "Yêu cầu bổ sung"),
        6 => (4, "Chờ thực hiện nghĩa vụ tài chính"),
        7 => (8, "Đã rút hồ sơ"),
        8 => (9, "Dừng xử lý"),
        9 => (5, "Có kết quả"),
        _ => (6, "Đã trả kết quả"),
    }
}

fn status_from_city(id: i64) -> Option<u8> {
    Some(match id {
        0 => 1,
        1 => 2,
        2 => 4,
        3 => 5,
        4 => 6,
        5 => 9,
        6 => 10,
        7 => 3,
        8 => 7,
        9 => 8,
        _ => return None,
    })
}

fn channel_to_city(c: Channel) -> IdName {
    let (id, name) = match c {
        Channel::InPerson => (0, "Trực tiếp"),
        Channel::Online => (1, "Trực tuyến"),
        Channel::Postal => (2, "Dịch vụ bưu chính công ích"),
    };
    IdName { id, name: name.to_owned() }
}

/// iGate's date format: UTC with milliseconds.
pub fn format_date(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn parse_date(field: &str, s: &str) -> Result<Timestamp, String> {
    s.parse::<Timestamp>().map_err(|e| format!("{field}: not an ISO 8601 instant: {s:?} ({e})"))
}

fn parse_opt(field: &str, s: &Option<String>) -> Result<Option<Timestamp>, String> {
    s.as_deref().map(|s| parse_date(field, s)).transpose()
}

impl CityRecord {
    pub fn from_model(d: &Dossier) -> Self {
        let (status_id, status_name) = status_to_city(d.status);
        CityRecord {
            id: d.native_id.clone(),
            code: d.code.clone(),
            nation_code: d.ref_code.clone(),
            procedure: CityProcedure {
                code: d.procedure.code.clone(),
                name: d.procedure.name.clone(),
                sector: CodeName { code: d.procedure.sector_code.clone(), name: d.procedure.sector_name.clone() },
            },
            agency: CityAgency {
                code: d.agency.code.clone(),
                name: d.agency.name.clone(),
                level: match d.agency.level {
                    Level::Department => "department",
                    Level::Commune => "commune",
                }
                .to_owned(),
            },
            applicant: CityApplicant {
                kind: match d.applicant.kind {
                    ApplicantKind::Citizen => 1,
                    ApplicantKind::Business => 2,
                },
                data: CityApplicantData {
                    fullname: d.applicant.name.clone(),
                    identity_number: d.applicant.id_number.clone(),
                    phone_number: d.applicant.phone.clone(),
                    email: d.applicant.email.clone(),
                },
            },
            apply_method: channel_to_city(d.channel),
            applied_date: format_date(d.applied_at),
            accepted_date: format_date(d.received_at),
            appointment_date: format_date(d.due_at),
            completed_date: d.completed_at.map(format_date),
            returned_date: d.returned_at.map(format_date),
            refused_date: d.refused_at.map(format_date),
            updated_date: format_date(d.updated_at),
            dossier_status: IdName { id: status_id, name: status_name.to_owned() },
            additional_request: d
                .supplements
                .iter()
                .map(|s| CityAdditionalRequest {
                    id: s.id.clone(),
                    content: s.content.clone(),
                    requested_date: format_date(s.requested_at),
                    received_date: s.received_at.map(format_date),
                })
                .collect(),
            task: d
                .steps
                .iter()
                .map(|s| CityTask {
                    id: s.id.clone().unwrap_or_default(),
                    assignee: Fullname { fullname: s.assignee.clone() },
                    position: s.position.clone(),
                    agency: Name { name: s.department.clone() },
                    content: s.content.clone(),
                    created_date: format_date(s.started_at.unwrap_or(s.at)),
                    completed_date: format_date(s.at),
                    due_date: format_date(s.due),
                    status_id: status_to_city(s.status).0,
                })
                .collect(),
            attachment: d
                .attachments
                .iter()
                .map(|a| CityAttachment {
                    id: a.id.clone().unwrap_or_default(),
                    filename: a.filename.clone().or_else(|| a.name.clone()).unwrap_or_default(),
                    group: a.code.clone(),
                    digitized: a.digitized,
                    url: a.url.clone(),
                })
                .collect(),
            result: d
                .results
                .iter()
                .map(|r| CityResult {
                    id: r.id.clone().unwrap_or_default(),
                    name: r.name.clone(),
                    code: r.code.clone(),
                    url: r.url.clone(),
                    electronic: r.electronic,
                })
                .collect(),
            fee: d
                .fees
                .iter()
                .map(|f| CityFee {
                    code: f.code.clone(),
                    name: f.name.clone(),
                    amount: f.amount,
                    method: if f.online { "online" } else { "direct" }.to_owned(),
                })
                .collect(),
            digitized: d.digitized,
            paid_online: d.paid_online,
            vneid_verified: d.vneid_verified,
        }
    }

    /// The record in the simulator's own terms, or why it cannot be (a malformed record).
    pub fn to_model(&self) -> Result<Dossier, String> {
        let status = status_from_city(self.dossier_status.id)
            .ok_or_else(|| format!("dossierStatus.id: unknown status {}", self.dossier_status.id))?;
        let mut steps = Vec::with_capacity(self.task.len());
        for (i, t) in self.task.iter().enumerate() {
            steps.push(Step {
                id: Some(t.id.clone()),
                assignee: t.assignee.fullname.clone(),
                position: t.position.clone(),
                department: t.agency.name.clone(),
                content: t.content.clone(),
                started_at: Some(parse_date(&format!("task[{i}].createdDate"), &t.created_date)?),
                at: parse_date(&format!("task[{i}].completedDate"), &t.completed_date)?,
                due: parse_date(&format!("task[{i}].dueDate"), &t.due_date)?,
                status: status_from_city(t.status_id)
                    .ok_or_else(|| format!("task[{i}].statusId: unknown status {}", t.status_id))?,
            });
        }
        let mut supplements = Vec::with_capacity(self.additional_request.len());
        for (i, s) in self.additional_request.iter().enumerate() {
            supplements.push(Supplement {
                id: s.id.clone(),
                content: s.content.clone(),
                requested_at: parse_date(&format!("additionalRequest[{i}].requestedDate"), &s.requested_date)?,
                received_at: parse_opt(&format!("additionalRequest[{i}].receivedDate"), &s.received_date)?,
            });
        }
        Ok(Dossier {
            source: Source::City,
            native_id: self.id.clone(),
            code: self.code.clone(),
            ref_code: self.nation_code.clone(),
            procedure: ProcedureRef {
                code: self.procedure.code.clone(),
                name: self.procedure.name.clone(),
                sector_code: self.procedure.sector.code.clone(),
                sector_name: self.procedure.sector.name.clone(),
            },
            agency: AgencyRef {
                code: self.agency.code.clone(),
                name: self.agency.name.clone(),
                level: match self.agency.level.as_str() {
                    "department" => Level::Department,
                    "commune" => Level::Commune,
                    other => return Err(format!("agency.level: unknown level {other:?}")),
                },
            },
            applicant: Applicant {
                kind: match self.applicant.kind {
                    1 => ApplicantKind::Citizen,
                    2 => ApplicantKind::Business,
                    other => return Err(format!("applicant.type: unknown type {other}")),
                },
                name: self.applicant.data.fullname.clone(),
                id_number: self.applicant.data.identity_number.clone(),
                phone: self.applicant.data.phone_number.clone(),
                email: self.applicant.data.email.clone(),
            },
            channel: match self.apply_method.id {
                0 => Channel::InPerson,
                1 => Channel::Online,
                2 => Channel::Postal,
                other => return Err(format!("applyMethod.id: unknown channel {other}")),
            },
            applied_at: parse_date("appliedDate", &self.applied_date)?,
            received_at: parse_date("acceptedDate", &self.accepted_date)?,
            due_at: parse_date("appointmentDate", &self.appointment_date)?,
            completed_at: parse_opt("completedDate", &self.completed_date)?,
            returned_at: parse_opt("returnedDate", &self.returned_date)?,
            refused_at: parse_opt("refusedDate", &self.refused_date)?,
            updated_at: parse_date("updatedDate", &self.updated_date)?,
            status,
            supplements,
            steps,
            attachments: self
                .attachment
                .iter()
                .map(|a| Attachment {
                    id: Some(a.id.clone()),
                    code: a.group.clone(),
                    name: None,
                    filename: Some(a.filename.clone()),
                    digitized: a.digitized,
                    url: a.url.clone(),
                })
                .collect(),
            results: self
                .result
                .iter()
                .map(|r| ResultDoc {
                    id: Some(r.id.clone()),
                    code: r.code.clone(),
                    name: r.name.clone(),
                    url: r.url.clone(),
                    electronic: r.electronic,
                })
                .collect(),
            fees: self
                .fee
                .iter()
                .map(|f| Fee {
                    code: f.code.clone(),
                    name: f.name.clone(),
                    amount: f.amount,
                    online: f.method == "online",
                })
                .collect(),
            digitized: self.digitized,
            paid_online: self.paid_online,
            vneid_verified: self.vneid_verified,
        })
    }
}

pub fn render(d: &Dossier) -> Value {
    serde_json::to_value(CityRecord::from_model(d)).unwrap_or_default()
}

/// Reads one fixture record: a well-formed dossier, or the raw record with the reason it is malformed.
/// The id and updated time must be readable whatever else is wrong, or the record cannot be listed.
pub fn parse(raw: &Value) -> Result<Result<Dossier, (String, Timestamp, String)>, String> {
    let id = raw.get("id").and_then(Value::as_str).ok_or("a city record without a string id")?.to_owned();
    let updated = raw
        .get("updatedDate")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("city record {id}: no updatedDate"))
        .and_then(|s| parse_date("updatedDate", s))?;
    let parsed =
        serde_json::from_value::<CityRecord>(raw.clone()).map_err(|e| e.to_string()).and_then(|r| r.to_model());
    Ok(parsed.map_err(|reason| (id, updated, reason)))
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().route("/pa/dossier/search", get(search)).with_state(shared)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "status": status.as_u16(), "error": code, "message": message }))).into_response()
}

async fn search(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let plan = match faults::gate(&shared, Source::City, Call::List).await {
        Ok(plan) => plan,
        Err(answer) => return answer,
    };
    let key_ok = headers.get("x-api-key").and_then(|v| v.to_str().ok()).is_some_and(|k| k == shared.opts.city_api_key);
    if !key_ok {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "Thiếu hoặc sai khóa truy cập (X-API-Key)");
    }
    let page = match q.get("page").map(|s| s.parse::<usize>()) {
        None => 0,
        Some(Ok(p)) => p,
        Some(Err(_)) => {
            return error(StatusCode::BAD_REQUEST, "bad_request", "page phải là số nguyên ≥ 0");
        }
    };
    let size = match q.get("size").map(|s| s.parse::<usize>()) {
        None => DEFAULT_PAGE_SIZE,
        Some(Ok(s)) if (1..=MAX_PAGE_SIZE).contains(&s) => s,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("size phải nằm trong khoảng 1–{MAX_PAGE_SIZE}"),
            );
        }
    };
    if q.get("sort").is_some_and(|s| s != "updatedDate,desc") {
        return error(StatusCode::BAD_REQUEST, "bad_request", "Chỉ hỗ trợ sort=updatedDate,desc");
    }
    let walk = Walk { key: format!("size={size}"), first: page == 0 };
    faults::between_pages(&shared, Source::City, &plan, &walk);

    let upstream = shared.lock_upstream();
    let total = upstream.count(Source::City);
    // Newest first, ties by id descending: what iGate's Mongo sort gives.
    let content = upstream.descending(Source::City, page.saturating_mul(size), size);
    let total_pages = total.div_ceil(size);
    let envelope = json!({
        "content": faults::RECORDS,
        "number": page,
        "size": size,
        "totalElements": total,
        "totalPages": total_pages,
        "last": page.saturating_add(1) >= total_pages,
    });
    let body = upstream.page_json(Source::City, &envelope, &content);
    drop(upstream);
    faults::answer(&shared, Source::City, &plan, Some(&walk), body)
}

/// Breaks a rendered record the way iGate records have been seen broken; returns the reason.
pub fn damage(raw: &mut Value, variant: u64, now: Timestamp) -> &'static str {
    if variant.is_multiple_of(2) {
        raw["dossierStatus"] = json!({ "id": 42, "name": "Chờ phê duyệt" });
        "dossierStatus.id: unknown status 42"
    } else {
        let year = now.to_zoned_datetime(vn_tz()).year();
        raw["acceptedDate"] = Value::from(format!("{year}-02-30T{}.000Z", now.strftime("%H:%M:%S")));
        "acceptedDate: impossible date"
    }
}
