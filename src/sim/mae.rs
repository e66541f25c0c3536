//! The Ministry of Agriculture and Environment's centralised system (Bộ Nông nghiệp và Môi trường:
//! land registration, environmental permits), an English-named API behind Keycloak: a password
//! grant token, `POST /api/records/search` with paging and filter in a JSON body, next-page tokens
//! (a keyset: pages do not shift under concurrent changes), ascending by modified time with an
//! inclusive `filter.modifiedFrom`, times as epoch milliseconds, English status codes, records at
//! `records`.
//!
//! Credentials: `client_id`, `username`, `password` (the client is public: no secret).

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    Form, Json, Router,
    body::Bytes,
    extract::{State, rejection::FormRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    Shared,
    catalogue::{ApplicantKind, Level},
    faults::{self, Call, Walk},
    model::{
        AgencyRef, Applicant, Attachment, Channel, Dossier, Fee, ProcedureRef, ResultDoc, Source, Step, Supplement,
    },
};

pub const TOKEN_PATH: &str = "/realms/dvc/protocol/openid-connect/token";
pub const SEARCH_PATH: &str = "/api/records/search";
/// Access token lifetime, in real seconds (Keycloak's default).
pub const TOKEN_TTL_SECS: u64 = 300;
const MAX_PAGE_SIZE: u64 = 1000;
const DEFAULT_PAGE_SIZE: u64 = 50;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaeRecord {
    record_id: String,
    record_number: String,
    /// The city desk's code when the dossier was transferred from it.
    source_record_number: Option<String>,
    service: Service,
    office: Office,
    applicant: MaeApplicant,
    channel: String,
    submitted_time: i64,
    received_time: i64,
    due_time: i64,
    completed_time: Option<i64>,
    delivered_time: Option<i64>,
    rejected_time: Option<i64>,
    modified_time: i64,
    state: String,
    supplements: Vec<MaeSupplement>,
    history: Vec<HistoryEntry>,
    attachments: Vec<MaeAttachment>,
    outcomes: Vec<Outcome>,
    charges: Vec<Charge>,
    digitized: bool,
    /// `PORTAL` when paid through the national portal's payment platform, else `NONE`.
    online_payment: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeName {
    code: String,
    name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Service {
    code: String,
    name: String,
    domain: CodeName,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Office {
    code: String,
    name: String,
    tier: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MaeApplicant {
    #[serde(rename = "type")]
    kind: String,
    full_name: String,
    identifier: Identifier,
    contact: Contact,
    vneid_verified: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Identifier {
    /// `CCCD` (citizen identity card) or `MST` (tax code).
    scheme: String,
    value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Contact {
    phone: String,
    email: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MaeSupplement {
    supplement_id: String,
    description: String,
    request_time: i64,
    response_time: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Actor {
    name: String,
    title: String,
    unit: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryEntry {
    actor: Actor,
    note: String,
    time: i64,
    state: String,
    deadline: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MaeAttachment {
    component_code: String,
    title: String,
    digitized: bool,
    link: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Outcome {
    code: String,
    title: String,
    link: String,
    electronic: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Charge {
    code: String,
    title: String,
    amount: u64,
    channel: String,
}

/// The system's states, in the portal's order (1–10).
const STATES: [&str; 10] = [
    "SUBMITTED",
    "RECEIVED",
    "REJECTED",
    "IN_PROGRESS",
    "NEED_SUPPLEMENT",
    "AWAITING_PAYMENT",
    "WITHDRAWN",
    "SUSPENDED",
    "COMPLETED",
    "DELIVERED",
];

pub fn status_to_mae(status: u8) -> &'static str {
    STATES[usize::from(status.clamp(1, 10)) - 1]
}

fn status_from_mae(s: &str) -> Option<u8> {
    let i = STATES.iter().position(|x| *x == s)?;
    u8::try_from(i + 1).ok()
}

pub fn millis(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn from_millis(field: &str, ms: i64) -> Result<Timestamp, String> {
    Timestamp::from_millisecond(ms).map_err(|e| format!("{field}: not an epoch time in milliseconds: {ms} ({e})"))
}

fn from_millis_opt(field: &str, ms: Option<i64>) -> Result<Option<Timestamp>, String> {
    ms.map(|ms| from_millis(field, ms)).transpose()
}

impl MaeRecord {
    pub fn from_model(d: &Dossier) -> Self {
        MaeRecord {
            record_id: d.native_id.clone(),
            record_number: d.code.clone(),
            source_record_number: d.ref_code.clone(),
            service: Service {
                code: d.procedure.code.clone(),
                name: d.procedure.name.clone(),
                domain: CodeName { code: d.procedure.sector_code.clone(), name: d.procedure.sector_name.clone() },
            },
            office: Office {
                code: d.agency.code.clone(),
                name: d.agency.name.clone(),
                tier: match d.agency.level {
                    Level::Department => "PROVINCIAL",
                    Level::Commune => "COMMUNAL",
                }
                .to_owned(),
            },
            applicant: MaeApplicant {
                kind: match d.applicant.kind {
                    ApplicantKind::Citizen => "INDIVIDUAL",
                    ApplicantKind::Business => "ORGANIZATION",
                }
                .to_owned(),
                full_name: d.applicant.name.clone(),
                identifier: Identifier {
                    scheme: match d.applicant.kind {
                        ApplicantKind::Citizen => "CCCD",
                        ApplicantKind::Business => "MST",
                    }
                    .to_owned(),
                    value: d.applicant.id_number.clone(),
                },
                contact: Contact { phone: d.applicant.phone.clone(), email: d.applicant.email.clone() },
                vneid_verified: d.vneid_verified,
            },
            channel: match d.channel {
                Channel::InPerson => "IN_PERSON",
                Channel::Online => "ONLINE",
                Channel::Postal => "POSTAL",
            }
            .to_owned(),
            submitted_time: millis(d.applied_at),
            received_time: millis(d.received_at),
            due_time: millis(d.due_at),
            completed_time: d.completed_at.map(millis),
            delivered_time: d.returned_at.map(millis),
            rejected_time: d.refused_at.map(millis),
            modified_time: millis(d.updated_at),
            state: status_to_mae(d.status).to_owned(),
            supplements: d
                .supplements
                .iter()
                .map(|s| MaeSupplement {
                    supplement_id: s.id.clone(),
                    description: s.content.clone(),
                    request_time: millis(s.requested_at),
                    response_time: s.received_at.map(millis),
                })
                .collect(),
            history: d
                .steps
                .iter()
                .map(|s| HistoryEntry {
                    actor: Actor { name: s.assignee.clone(), title: s.position.clone(), unit: s.department.clone() },
                    note: s.content.clone(),
                    time: millis(s.at),
                    state: status_to_mae(s.status).to_owned(),
                    deadline: millis(s.due),
                })
                .collect(),
            attachments: d
                .attachments
                .iter()
                .map(|a| MaeAttachment {
                    component_code: a.code.clone(),
                    title: a.name.clone().or_else(|| a.filename.clone()).unwrap_or_default(),
                    digitized: a.digitized,
                    link: a.url.clone(),
                })
                .collect(),
            outcomes: d
                .results
                .iter()
                .map(|r| Outcome {
                    code: r.code.clone(),
                    title: r.name.clone(),
                    link: r.url.clone(),
                    electronic: r.electronic,
                })
                .collect(),
            charges: d
                .fees
                .iter()
                .map(|f| Charge {
                    code: f.code.clone(),
                    title: f.name.clone(),
                    amount: f.amount,
                    channel: if f.online { "ONLINE" } else { "COUNTER" }.to_owned(),
                })
                .collect(),
            digitized: d.digitized,
            online_payment: if d.paid_online { "PORTAL" } else { "NONE" }.to_owned(),
        }
    }

    /// The record in the simulator's own terms, or why it cannot be (a malformed record).
    pub fn to_model(&self) -> Result<Dossier, String> {
        let status = status_from_mae(&self.state).ok_or_else(|| format!("state: unknown state {:?}", self.state))?;
        let mut steps = Vec::with_capacity(self.history.len());
        for (i, h) in self.history.iter().enumerate() {
            steps.push(Step {
                id: None,
                assignee: h.actor.name.clone(),
                position: h.actor.title.clone(),
                department: h.actor.unit.clone(),
                content: h.note.clone(),
                started_at: None,
                at: from_millis(&format!("history[{i}].time"), h.time)?,
                due: from_millis(&format!("history[{i}].deadline"), h.deadline)?,
                status: status_from_mae(&h.state)
                    .ok_or_else(|| format!("history[{i}].state: unknown state {:?}", h.state))?,
            });
        }
        let mut supplements = Vec::with_capacity(self.supplements.len());
        for (i, s) in self.supplements.iter().enumerate() {
            supplements.push(Supplement {
                id: s.supplement_id.clone(),
                content: s.description.clone(),
                requested_at: from_millis(&format!("supplements[{i}].requestTime"), s.request_time)?,
                received_at: from_millis_opt(&format!("supplements[{i}].responseTime"), s.response_time)?,
            });
        }
        let kind = match self.applicant.kind.as_str() {
            "INDIVIDUAL" => ApplicantKind::Citizen,
            "ORGANIZATION" => ApplicantKind::Business,
            other => return Err(format!("applicant.type: unknown type {other:?}")),
        };
        Ok(Dossier {
            source: Source::Mae,
            native_id: self.record_id.clone(),
            code: self.record_number.clone(),
            ref_code: self.source_record_number.clone(),
            procedure: ProcedureRef {
                code: self.service.code.clone(),
                name: self.service.name.clone(),
                sector_code: self.service.domain.code.clone(),
                sector_name: self.service.domain.name.clone(),
            },
            agency: AgencyRef {
                code: self.office.code.clone(),
                name: self.office.name.clone(),
                level: match self.office.tier.as_str() {
                    "PROVINCIAL" => Level::Department,
                    "COMMUNAL" => Level::Commune,
                    other => return Err(format!("office.tier: unknown tier {other:?}")),
                },
            },
            applicant: Applicant {
                kind,
                name: self.applicant.full_name.clone(),
                id_number: self.applicant.identifier.value.clone(),
                phone: self.applicant.contact.phone.clone(),
                email: self.applicant.contact.email.clone(),
            },
            channel: match self.channel.as_str() {
                "IN_PERSON" => Channel::InPerson,
                "ONLINE" => Channel::Online,
                "POSTAL" => Channel::Postal,
                other => return Err(format!("channel: unknown channel {other:?}")),
            },
            applied_at: from_millis("submittedTime", self.submitted_time)?,
            received_at: from_millis("receivedTime", self.received_time)?,
            due_at: from_millis("dueTime", self.due_time)?,
            completed_at: from_millis_opt("completedTime", self.completed_time)?,
            returned_at: from_millis_opt("deliveredTime", self.delivered_time)?,
            refused_at: from_millis_opt("rejectedTime", self.rejected_time)?,
            updated_at: from_millis("modifiedTime", self.modified_time)?,
            status,
            supplements,
            steps,
            attachments: self
                .attachments
                .iter()
                .map(|a| Attachment {
                    id: None,
                    code: a.component_code.clone(),
                    name: Some(a.title.clone()),
                    filename: None,
                    digitized: a.digitized,
                    url: a.link.clone(),
                })
                .collect(),
            results: self
                .outcomes
                .iter()
                .map(|o| ResultDoc {
                    id: None,
                    code: o.code.clone(),
                    name: o.title.clone(),
                    url: o.link.clone(),
                    electronic: o.electronic,
                })
                .collect(),
            fees: self
                .charges
                .iter()
                .map(|c| Fee {
                    code: c.code.clone(),
                    name: c.title.clone(),
                    amount: c.amount,
                    online: c.channel == "ONLINE",
                })
                .collect(),
            digitized: self.digitized,
            paid_online: match self.online_payment.as_str() {
                "PORTAL" => true,
                "NONE" => false,
                other => return Err(format!("onlinePayment: unknown value {other:?}")),
            },
            vneid_verified: self.applicant.vneid_verified,
        })
    }
}

pub fn render(d: &Dossier) -> Value {
    serde_json::to_value(MaeRecord::from_model(d)).unwrap_or_default()
}

/// Reads one fixture record: a well-formed dossier, or the raw record with the reason it is malformed.
/// The id and updated time must be readable whatever else is wrong, or the record cannot be listed.
pub fn parse(raw: &Value) -> Result<Result<Dossier, (String, Timestamp, String)>, String> {
    let id =
        raw.get("recordId").and_then(Value::as_str).ok_or("a land/environment record without recordId")?.to_owned();
    let updated = raw
        .get("modifiedTime")
        .and_then(Value::as_i64)
        .ok_or_else(|| format!("land/environment record {id}: no modifiedTime"))
        .and_then(|ms| from_millis("modifiedTime", ms))?;
    let parsed = serde_json::from_value::<MaeRecord>(raw.clone()).map_err(|e| e.to_string()).and_then(|r| r.to_model());
    Ok(parsed.map_err(|reason| (id, updated, reason)))
}

/// Breaks a rendered record the way this system's records have been seen broken; returns the reason.
pub fn damage(raw: &mut Value, variant: u64, now: Timestamp) -> &'static str {
    if variant.is_multiple_of(2) {
        raw["state"] = Value::from("PENDING_APPROVAL");
        "state: unknown state \"PENDING_APPROVAL\""
    } else {
        // A time written as text by a hand-made export.
        raw["receivedTime"] = Value::from(now.to_string());
        "receivedTime: text instead of epoch milliseconds"
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().route(TOKEN_PATH, post(token)).route(SEARCH_PATH, post(search)).with_state(shared)
}

fn oidc_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({ "error": error, "error_description": description }))).into_response()
}

/// Keycloak's token endpoint, password grant only.
async fn token(
    State(shared): State<Arc<Shared>>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let plan = match faults::gate(&shared, Source::Mae, Call::Auth).await {
        Ok(plan) => plan,
        Err(answer) => return answer,
    };
    let Ok(Form(form)) = form else {
        return oidc_error(StatusCode::BAD_REQUEST, "invalid_request", "Missing form parameter: grant_type");
    };
    if form.get("grant_type").map(String::as_str) != Some("password") {
        return oidc_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Unsupported grant_type");
    }
    let opts = &shared.opts;
    if form.get("client_id") != Some(&opts.mae_client_id) {
        return oidc_error(StatusCode::UNAUTHORIZED, "invalid_client", "Invalid client or Invalid client credentials");
    }
    if form.get("username") != Some(&opts.mae_username) || form.get("password") != Some(&opts.mae_password) {
        return oidc_error(StatusCode::UNAUTHORIZED, "invalid_grant", "Invalid user credentials");
    }
    let token = shared.issue_token(Source::Mae, Duration::from_secs(TOKEN_TTL_SECS));
    let body = json!({
        "access_token": token,
        "expires_in": TOKEN_TTL_SECS,
        "refresh_expires_in": 1800,
        "refresh_token": format!("r.{token}"),
        "token_type": "Bearer",
        "not-before-policy": 0,
        "session_state": format!("{:x}", token.len() * 7919),
        "scope": form.get("scope").map_or("profile email", String::as_str),
    });
    faults::answer_json(&shared, Source::Mae, &plan, &body)
}

fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "error": { "code": status.as_u16(), "status": code, "message": message } });
    (status, Json(body)).into_response()
}

fn invalid(message: &str) -> Response {
    api_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
}

/// A whole number, written as a JSON number or as text (the service's JSON mapper coerces both).
fn whole(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A page token: the last record served (modified time and id), opaque to clients.
fn encode_token(modified: Timestamp, id: &str) -> String {
    format!("{}|{id}", modified.as_millisecond()).bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str) -> Option<(Timestamp, String)> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..token.len()).step_by(2).map(|i| token.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect();
    let text = String::from_utf8(bytes?).ok()?;
    let (ms, id) = text.split_once('|')?;
    Some((Timestamp::from_millisecond(ms.parse().ok()?).ok()?, id.to_owned()))
}

/// What a search body asks for, checked field by field as the service does (unknown names refused:
/// a parameter in the wrong place must not be silently ignored).
struct Search {
    since: Option<Timestamp>,
    size: usize,
    token: Option<String>,
}

fn read_search(body: &[u8]) -> Result<Search, String> {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return Err("Invalid JSON payload: expected an object".to_owned());
    };
    let known = ["filter", "pageSize", "pageToken", "orderBy"];
    if let Some(unknown) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("Invalid JSON payload received. Unknown name \"{unknown}\""));
    }
    let empty = Map::new();
    let filter = match obj.get("filter") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(f)) => f,
        Some(_) => return Err("filter must be an object".to_owned()),
    };
    if let Some(unknown) = filter.keys().find(|k| k.as_str() != "modifiedFrom") {
        return Err(format!("Invalid JSON payload received. Unknown name \"filter.{unknown}\""));
    }
    let since = match filter.get("modifiedFrom") {
        None | Some(Value::Null) => None,
        Some(v) => match whole(v).and_then(|ms| Timestamp::from_millisecond(ms).ok()) {
            Some(t) => Some(t),
            None => return Err("filter.modifiedFrom must be epoch milliseconds".to_owned()),
        },
    };
    let size = match obj.get("pageSize") {
        None | Some(Value::Null) => DEFAULT_PAGE_SIZE,
        Some(v) => match whole(v).and_then(|n| u64::try_from(n).ok()) {
            Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            _ => return Err(format!("pageSize must be between 1 and {MAX_PAGE_SIZE}")),
        },
    };
    let token = match obj.get("pageToken") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("pageToken must be a string".to_owned()),
    };
    match obj.get("orderBy") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "modifiedTime asc" => {}
        Some(_) => return Err("orderBy: only \"modifiedTime asc\" is supported".to_owned()),
    }
    Ok(Search { since, size: usize::try_from(size).unwrap_or(1), token })
}

async fn search(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let plan = match faults::gate(&shared, Source::Mae, Call::List).await {
        Ok(plan) => plan,
        Err(answer) => return answer,
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    if !bearer.is_some_and(|t| shared.token_valid(Source::Mae, t)) {
        let mut answer = api_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "Invalid or expired access token");
        answer.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        return answer;
    }
    let search = match read_search(&body) {
        Ok(s) => s,
        Err(message) => return invalid(&message),
    };
    let after = match search.token.as_deref().map(decode_token) {
        None => None,
        Some(Some(key)) => Some(key),
        Some(None) => return invalid("Invalid page token"),
    };
    let walk = Walk {
        key: format!("modifiedFrom={:?}&pageSize={}", search.since.map(millis), search.size),
        first: after.is_none(),
    };
    faults::between_pages(&shared, Source::Mae, &plan, &walk);

    let upstream = shared.lock_upstream();
    let from = search.since.map_or(0, |t| upstream.position_since(Source::Mae, t));
    let total = upstream.count(Source::Mae) - from;
    let start = match &after {
        Some((t, id)) => from.max(upstream.position_after(Source::Mae, *t, Source::Mae.id_key(id))),
        None => from,
    };
    let page = upstream.ascending(Source::Mae, start, search.size);
    let next = (start + page.len() < upstream.count(Source::Mae))
        .then(|| page.last().map(|r| encode_token(r.updated_at(), &r.native_id(Source::Mae))))
        .flatten();
    let mut envelope = json!({ "records": faults::RECORDS, "totalSize": total });
    if let Some(next) = next {
        envelope["nextPageToken"] = Value::from(next);
    }
    let body = upstream.page_json(Source::Mae, &envelope, &page);
    drop(upstream);
    faults::answer(&shared, Source::Mae, &plan, Some(&walk), body)
}
