//! The Ministry of Construction's centralised system (Bộ Xây dựng: building permits, practising
//! certificates), a Spring-style REST service: a static bearer token, `offset`/`limit` pages
//! ascending by update time with an inclusive `updatedFrom` filter, ISO 8601 dates with the
//! `+07:00` offset, its own integer statuses (10–90), records at `data.items`, the applicant nested
//! under `citizen` and the index flags under `flags`.
//!
//! Credentials: `token`. Offset pages shift when records move between two requests: a walker that
//! trusts them misses records.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
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

pub const LIST_PATH: &str = "/api/v1/dossiers";
const MAX_PAGE_SIZE: usize = 1000;
const DEFAULT_PAGE_SIZE: usize = 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MocRecord {
    id: u64,
    dossier_no: String,
    /// The city desk's code when the dossier was transferred from it.
    original_dossier_no: Option<String>,
    procedure: MocProcedure,
    agency: MocAgency,
    citizen: Citizen,
    submission_method: String,
    submitted_at: String,
    received_at: String,
    due_at: String,
    finished_at: Option<String>,
    returned_at: Option<String>,
    refused_at: Option<String>,
    updated_at: String,
    status: u16,
    supplement_requests: Vec<SupplementRequest>,
    workflow: Vec<WorkflowStep>,
    documents: Vec<Document>,
    outputs: Vec<Output>,
    fees: Vec<MocFee>,
    flags: Flags,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeName {
    code: String,
    name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MocProcedure {
    code: String,
    name: String,
    field: CodeName,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MocAgency {
    code: String,
    name: String,
    /// 1 provincial (a department), 2 commune.
    level: u8,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Citizen {
    name: String,
    id_no: String,
    phone: String,
    email: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SupplementRequest {
    id: String,
    reason: String,
    requested_at: String,
    fulfilled_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WorkflowStep {
    handler: String,
    title: String,
    unit: String,
    action: String,
    started_at: String,
    completed_at: String,
    deadline: String,
    status: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Document {
    code: String,
    name: String,
    file_name: String,
    url: String,
    scanned: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Output {
    number: String,
    name: String,
    url: String,
    e_signed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MocFee {
    code: String,
    name: String,
    amount: u64,
    payment_method: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Flags {
    digitized: bool,
    paid_online: bool,
    vneid_verified: bool,
}

/// The ministry's status codes, in the portal's order (1–10).
const STATUSES: [u16; 10] = [10, 20, 70, 30, 35, 40, 80, 90, 50, 60];

pub fn status_to_moc(status: u8) -> u16 {
    STATUSES[usize::from(status.clamp(1, 10)) - 1]
}

fn status_from_moc(code: u16) -> Option<u8> {
    let i = STATUSES.iter().position(|x| *x == code)?;
    u8::try_from(i + 1).ok()
}

/// ISO 8601 with the local offset, seconds precision: `2026-03-09T08:15:00+07:00`.
pub fn format_date(t: Timestamp) -> String {
    t.to_zoned_datetime(vn_tz()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// Any RFC 3339 instant (the ministry writes `+07:00`, and reads `Z` as well); a time without an
/// offset is not an instant.
pub fn parse_date(field: &str, s: &str) -> Result<Timestamp, String> {
    s.parse::<Timestamp>().map_err(|e| format!("{field}: not an ISO 8601 instant with an offset: {s:?} ({e})"))
}

fn parse_opt(field: &str, s: &Option<String>) -> Result<Option<Timestamp>, String> {
    s.as_deref().map(|s| parse_date(field, s)).transpose()
}

impl MocRecord {
    pub fn from_model(d: &Dossier) -> Self {
        MocRecord {
            id: d.native_id.parse().unwrap_or_default(),
            dossier_no: d.code.clone(),
            original_dossier_no: d.ref_code.clone(),
            procedure: MocProcedure {
                code: d.procedure.code.clone(),
                name: d.procedure.name.clone(),
                field: CodeName { code: d.procedure.sector_code.clone(), name: d.procedure.sector_name.clone() },
            },
            agency: MocAgency {
                code: d.agency.code.clone(),
                name: d.agency.name.clone(),
                level: match d.agency.level {
                    Level::Department => 1,
                    Level::Commune => 2,
                },
            },
            citizen: Citizen {
                name: d.applicant.name.clone(),
                id_no: d.applicant.id_number.clone(),
                phone: d.applicant.phone.clone(),
                email: d.applicant.email.clone(),
                kind: match d.applicant.kind {
                    ApplicantKind::Citizen => "CONG_DAN",
                    ApplicantKind::Business => "DOANH_NGHIEP",
                }
                .to_owned(),
            },
            submission_method: match d.channel {
                Channel::InPerson => "DIRECT",
                Channel::Online => "ONLINE",
                Channel::Postal => "POST",
            }
            .to_owned(),
            submitted_at: format_date(d.applied_at),
            received_at: format_date(d.received_at),
            due_at: format_date(d.due_at),
            finished_at: d.completed_at.map(format_date),
            returned_at: d.returned_at.map(format_date),
            refused_at: d.refused_at.map(format_date),
            updated_at: format_date(d.updated_at),
            status: status_to_moc(d.status),
            supplement_requests: d
                .supplements
                .iter()
                .map(|s| SupplementRequest {
                    id: s.id.clone(),
                    reason: s.content.clone(),
                    requested_at: format_date(s.requested_at),
                    fulfilled_at: s.received_at.map(format_date),
                })
                .collect(),
            workflow: d
                .steps
                .iter()
                .map(|s| WorkflowStep {
                    handler: s.assignee.clone(),
                    title: s.position.clone(),
                    unit: s.department.clone(),
                    action: s.content.clone(),
                    started_at: format_date(s.started_at.unwrap_or(s.at)),
                    completed_at: format_date(s.at),
                    deadline: format_date(s.due),
                    status: status_to_moc(s.status),
                })
                .collect(),
            documents: d
                .attachments
                .iter()
                .map(|a| Document {
                    code: a.code.clone(),
                    name: a.name.clone().or_else(|| a.filename.clone()).unwrap_or_default(),
                    file_name: a.filename.clone().or_else(|| a.name.clone()).unwrap_or_default(),
                    url: a.url.clone(),
                    scanned: a.digitized,
                })
                .collect(),
            outputs: d
                .results
                .iter()
                .map(|r| Output {
                    number: r.code.clone(),
                    name: r.name.clone(),
                    url: r.url.clone(),
                    e_signed: r.electronic,
                })
                .collect(),
            fees: d
                .fees
                .iter()
                .map(|f| MocFee {
                    code: f.code.clone(),
                    name: f.name.clone(),
                    amount: f.amount,
                    payment_method: if f.online { "ONLINE" } else { "CASH" }.to_owned(),
                })
                .collect(),
            flags: Flags { digitized: d.digitized, paid_online: d.paid_online, vneid_verified: d.vneid_verified },
        }
    }

    /// The record in the simulator's own terms, or why it cannot be (a malformed record).
    pub fn to_model(&self) -> Result<Dossier, String> {
        let status = status_from_moc(self.status).ok_or_else(|| format!("status: unknown status {}", self.status))?;
        let mut steps = Vec::with_capacity(self.workflow.len());
        for (i, s) in self.workflow.iter().enumerate() {
            steps.push(Step {
                id: None,
                assignee: s.handler.clone(),
                position: s.title.clone(),
                department: s.unit.clone(),
                content: s.action.clone(),
                started_at: Some(parse_date(&format!("workflow[{i}].startedAt"), &s.started_at)?),
                at: parse_date(&format!("workflow[{i}].completedAt"), &s.completed_at)?,
                due: parse_date(&format!("workflow[{i}].deadline"), &s.deadline)?,
                status: status_from_moc(s.status)
                    .ok_or_else(|| format!("workflow[{i}].status: unknown status {}", s.status))?,
            });
        }
        let mut supplements = Vec::with_capacity(self.supplement_requests.len());
        for (i, s) in self.supplement_requests.iter().enumerate() {
            supplements.push(Supplement {
                id: s.id.clone(),
                content: s.reason.clone(),
                requested_at: parse_date(&format!("supplementRequests[{i}].requestedAt"), &s.requested_at)?,
                received_at: parse_opt(&format!("supplementRequests[{i}].fulfilledAt"), &s.fulfilled_at)?,
            });
        }
        Ok(Dossier {
            source: Source::Moc,
            native_id: self.id.to_string(),
            code: self.dossier_no.clone(),
            ref_code: self.original_dossier_no.clone(),
            procedure: ProcedureRef {
                code: self.procedure.code.clone(),
                name: self.procedure.name.clone(),
                sector_code: self.procedure.field.code.clone(),
                sector_name: self.procedure.field.name.clone(),
            },
            agency: AgencyRef {
                code: self.agency.code.clone(),
                name: self.agency.name.clone(),
                level: match self.agency.level {
                    1 => Level::Department,
                    2 => Level::Commune,
                    other => return Err(format!("agency.level: unknown level {other}")),
                },
            },
            applicant: Applicant {
                kind: match self.citizen.kind.as_str() {
                    "CONG_DAN" => ApplicantKind::Citizen,
                    "DOANH_NGHIEP" => ApplicantKind::Business,
                    other => return Err(format!("citizen.type: unknown type {other:?}")),
                },
                name: self.citizen.name.clone(),
                id_number: self.citizen.id_no.clone(),
                phone: self.citizen.phone.clone(),
                email: self.citizen.email.clone(),
            },
            channel: match self.submission_method.as_str() {
                "DIRECT" => Channel::InPerson,
                "ONLINE" => Channel::Online,
                "POST" => Channel::Postal,
                other => return Err(format!("submissionMethod: unknown channel {other:?}")),
            },
            applied_at: parse_date("submittedAt", &self.submitted_at)?,
            received_at: parse_date("receivedAt", &self.received_at)?,
            due_at: parse_date("dueAt", &self.due_at)?,
            completed_at: parse_opt("finishedAt", &self.finished_at)?,
            returned_at: parse_opt("returnedAt", &self.returned_at)?,
            refused_at: parse_opt("refusedAt", &self.refused_at)?,
            updated_at: parse_date("updatedAt", &self.updated_at)?,
            status,
            supplements,
            steps,
            attachments: self
                .documents
                .iter()
                .map(|d| Attachment {
                    id: None,
                    code: d.code.clone(),
                    name: Some(d.name.clone()),
                    filename: Some(d.file_name.clone()),
                    digitized: d.scanned,
                    url: d.url.clone(),
                })
                .collect(),
            results: self
                .outputs
                .iter()
                .map(|o| ResultDoc {
                    id: None,
                    code: o.number.clone(),
                    name: o.name.clone(),
                    url: o.url.clone(),
                    electronic: o.e_signed,
                })
                .collect(),
            fees: self
                .fees
                .iter()
                .map(|f| Fee {
                    code: f.code.clone(),
                    name: f.name.clone(),
                    amount: f.amount,
                    online: f.payment_method == "ONLINE",
                })
                .collect(),
            digitized: self.flags.digitized,
            paid_online: self.flags.paid_online,
            vneid_verified: self.flags.vneid_verified,
        })
    }
}

pub fn render(d: &Dossier) -> Value {
    serde_json::to_value(MocRecord::from_model(d)).unwrap_or_default()
}

/// Reads one fixture record: a well-formed dossier, or the raw record with the reason it is malformed.
/// The id and updated time must be readable whatever else is wrong, or the record cannot be listed.
pub fn parse(raw: &Value) -> Result<Result<Dossier, (String, Timestamp, String)>, String> {
    let id = raw.get("id").and_then(Value::as_u64).ok_or("a construction record without a numeric id")?.to_string();
    let updated = raw
        .get("updatedAt")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("construction record {id}: no updatedAt"))
        .and_then(|s| parse_date("updatedAt", s))?;
    let parsed = serde_json::from_value::<MocRecord>(raw.clone()).map_err(|e| e.to_string()).and_then(|r| r.to_model());
    Ok(parsed.map_err(|reason| (id, updated, reason)))
}

/// Breaks a rendered record the way this system's records have been seen broken; returns the reason.
pub fn damage(raw: &mut Value, variant: u64, now: Timestamp) -> &'static str {
    if variant.is_multiple_of(2) {
        // A local time that lost its offset on the way out of the database.
        raw["receivedAt"] = Value::from(now.to_zoned_datetime(vn_tz()).strftime("%Y-%m-%dT%H:%M:%S").to_string());
        "receivedAt: no offset, not an instant"
    } else {
        raw["status"] = Value::from(99);
        "status: unknown status 99"
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().route(LIST_PATH, get(list)).with_state(shared)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "success": false, "error": { "code": code, "message": message } }))).into_response()
}

/// A numeric query parameter, or the message refusing it.
fn number(q: &HashMap<String, String>, name: &str, default: usize, max: usize) -> Result<usize, String> {
    let min = usize::from(name != "offset");
    match q.get(name).map(|s| s.parse::<usize>()) {
        None => Ok(default),
        Some(Ok(n)) if (min..=max).contains(&n) => Ok(n),
        Some(_) => Err(format!("{name} must be an integer from {min} to {max}")),
    }
}

async fn list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let plan = match faults::gate(&shared, Source::Moc, Call::List).await {
        Ok(plan) => plan,
        Err(answer) => return answer,
    };
    let bearer =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(shared.opts.moc_token.as_str()) {
        let mut answer = error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "Missing or invalid bearer token");
        answer.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        return answer;
    }
    let (offset, limit) =
        match (number(&q, "offset", 0, usize::MAX), number(&q, "limit", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)) {
            (Ok(offset), Ok(limit)) => (offset, limit),
            (Err(message), _) | (_, Err(message)) => {
                return error(StatusCode::BAD_REQUEST, "INVALID_PARAMETER", &message);
            }
        };
    let since = match q.get("updatedFrom").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match parse_date("updatedFrom", s) {
            Ok(t) => Some(t),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_PARAMETER",
                    "updatedFrom must be an ISO 8601 date-time with an offset, e.g. 2026-03-09T08:00:00+07:00",
                );
            }
        },
    };
    let walk = Walk {
        key: format!("updatedFrom={}&limit={limit}", q.get("updatedFrom").map_or("", String::as_str)),
        first: offset == 0,
    };
    faults::between_pages(&shared, Source::Moc, &plan, &walk);

    let upstream = shared.lock_upstream();
    let from = since.map_or(0, |t| upstream.position_since(Source::Moc, t));
    let total = upstream.count(Source::Moc) - from;
    let items = upstream.ascending(Source::Moc, from.saturating_add(offset), limit);
    let envelope = json!({
        "success": true,
        "data": { "items": faults::RECORDS, "offset": offset, "limit": limit, "total": total },
    });
    let body = upstream.page_json(Source::Moc, &envelope, &items);
    drop(upstream);
    faults::answer(&shared, Source::Moc, &plan, Some(&walk), body)
}
