//! The Ministry of Justice's centralised system: OAuth2 client credentials, an inclusive
//! `capNhatTu` filter with pages sorted by update time ascending, Vietnamese field names, local
//! `yyyy-MM-dd HH:mm:ss` dates and string statuses.
//!
//! Credentials: `client_id`, `client_secret`. Records at `duLieu.danhSach`.

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    Form, Json, Router,
    extract::{Query, State, rejection::FormRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use jiff::{Timestamp, civil::DateTime};
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

/// Token lifetime, in real seconds: short, so that a long test run exercises renewal.
pub const TOKEN_TTL_SECS: u64 = 300;
/// Raised for the ingest benchmark's big walks.
const MAX_PAGE_SIZE: usize = 1000;
const DEFAULT_PAGE_SIZE: usize = 50;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MojRecord {
    ho_so_id: u64,
    so_ho_so: String,
    ma_ho_so_goc: Option<String>,
    thu_tuc: ThuTuc,
    co_quan_xu_ly: CoQuan,
    nguoi_nop: NguoiNop,
    kenh_nop: String,
    ngay_nop: String,
    ngay_tiep_nhan: String,
    ngay_hen_tra: String,
    ngay_hoan_thanh: Option<String>,
    ngay_tra_ket_qua: Option<String>,
    ngay_tu_choi: Option<String>,
    ngay_cap_nhat: String,
    trang_thai: String,
    yeu_cau_bo_sung: Vec<YeuCauBoSung>,
    qua_trinh_xu_ly: Vec<QuaTrinh>,
    thanh_phan_ho_so: Vec<ThanhPhan>,
    ket_qua: Vec<KetQua>,
    le_phi: Vec<LePhi>,
    co_so_hoa: u8,
    thanh_toan_truc_tuyen: u8,
    #[serde(rename = "xacThucVNeID")]
    xac_thuc_vneid: u8,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThuTuc {
    #[serde(rename = "maTTHC")]
    ma_tthc: String,
    #[serde(rename = "tenTTHC")]
    ten_tthc: String,
    #[serde(rename = "maLinhVuc")]
    ma_linh_vuc: String,
    #[serde(rename = "tenLinhVuc")]
    ten_linh_vuc: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CoQuan {
    ma: String,
    ten: String,
    cap: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NguoiNop {
    ho_ten: String,
    so_giay_to: String,
    dien_thoai: String,
    email: String,
    loai_doi_tuong: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct YeuCauBoSung {
    ma: String,
    noi_dung: String,
    ngay_yeu_cau: String,
    ngay_nhan: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct QuaTrinh {
    nguoi_xu_ly: String,
    chuc_danh: String,
    phong_ban: String,
    noi_dung: String,
    thoi_diem: String,
    trang_thai: String,
    han_xu_ly: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ThanhPhan {
    ma: String,
    ten: String,
    da_so_hoa: u8,
    duong_dan: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KetQua {
    ma: String,
    ten: String,
    duong_dan: String,
    ban_dien_tu: u8,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LePhi {
    ma: String,
    ten: String,
    so_tien: String,
    hinh_thuc: String,
}

const STATUSES: [&str; 10] = [
    "MOI_DANG_KY",
    "DA_TIEP_NHAN",
    "KHONG_TIEP_NHAN",
    "DANG_XU_LY",
    "YEU_CAU_BO_SUNG",
    "CHO_THANH_TOAN",
    "RUT_HO_SO",
    "DUNG_XU_LY",
    "DA_XU_LY_XONG",
    "DA_TRA_KET_QUA",
];

pub fn status_to_moj(status: u8) -> &'static str {
    STATUSES[usize::from(status.clamp(1, 10)) - 1]
}

fn status_from_moj(s: &str) -> Option<u8> {
    let i = STATUSES.iter().position(|x| *x == s)?;
    u8::try_from(i + 1).ok()
}

const DATE_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// The ministry's date format: local civil time, no zone.
pub fn format_date(t: Timestamp) -> String {
    t.to_zoned_datetime(vn_tz()).strftime(DATE_FORMAT).to_string()
}

pub fn parse_date(field: &str, s: &str) -> Result<Timestamp, String> {
    DateTime::strptime(DATE_FORMAT, s)
        .and_then(|dt| dt.to_zoned_datetime(vn_tz()))
        .map(|z| z.timestamp())
        .map_err(|e| format!("{field}: not a yyyy-MM-dd HH:mm:ss date: {s:?} ({e})"))
}

fn parse_opt(field: &str, s: &Option<String>) -> Result<Option<Timestamp>, String> {
    s.as_deref().map(|s| parse_date(field, s)).transpose()
}

fn flag(b: bool) -> u8 {
    u8::from(b)
}

fn channel_code(c: Channel) -> &'static str {
    match c {
        Channel::InPerson => "TRUC_TIEP",
        Channel::Online => "TRUC_TUYEN",
        Channel::Postal => "BUU_CHINH",
    }
}

impl MojRecord {
    pub fn from_model(d: &Dossier) -> Self {
        MojRecord {
            ho_so_id: d.native_id.parse().unwrap_or_default(),
            so_ho_so: d.code.clone(),
            ma_ho_so_goc: d.ref_code.clone(),
            thu_tuc: ThuTuc {
                ma_tthc: d.procedure.code.clone(),
                ten_tthc: d.procedure.name.clone(),
                ma_linh_vuc: d.procedure.sector_code.clone(),
                ten_linh_vuc: d.procedure.sector_name.clone(),
            },
            co_quan_xu_ly: CoQuan {
                ma: d.agency.code.clone(),
                ten: d.agency.name.clone(),
                cap: match d.agency.level {
                    Level::Department => "TINH",
                    Level::Commune => "XA",
                }
                .to_owned(),
            },
            nguoi_nop: NguoiNop {
                ho_ten: d.applicant.name.clone(),
                so_giay_to: d.applicant.id_number.clone(),
                dien_thoai: d.applicant.phone.clone(),
                email: d.applicant.email.clone(),
                loai_doi_tuong: match d.applicant.kind {
                    ApplicantKind::Citizen => "CONG_DAN",
                    ApplicantKind::Business => "TO_CHUC",
                }
                .to_owned(),
            },
            kenh_nop: channel_code(d.channel).to_owned(),
            ngay_nop: format_date(d.applied_at),
            ngay_tiep_nhan: format_date(d.received_at),
            ngay_hen_tra: format_date(d.due_at),
            ngay_hoan_thanh: d.completed_at.map(format_date),
            ngay_tra_ket_qua: d.returned_at.map(format_date),
            ngay_tu_choi: d.refused_at.map(format_date),
            ngay_cap_nhat: format_date(d.updated_at),
            trang_thai: status_to_moj(d.status).to_owned(),
            yeu_cau_bo_sung: d
                .supplements
                .iter()
                .map(|s| YeuCauBoSung {
                    ma: s.id.clone(),
                    noi_dung: s.content.clone(),
                    ngay_yeu_cau: format_date(s.requested_at),
                    ngay_nhan: s.received_at.map(format_date),
                })
                .collect(),
            qua_trinh_xu_ly: d
                .steps
                .iter()
                .map(|s| QuaTrinh {
                    nguoi_xu_ly: s.assignee.clone(),
                    chuc_danh: s.position.clone(),
                    phong_ban: s.department.clone(),
                    noi_dung: s.content.clone(),
                    thoi_diem: format_date(s.at),
                    trang_thai: status_to_moj(s.status).to_owned(),
                    han_xu_ly: format_date(s.due),
                })
                .collect(),
            thanh_phan_ho_so: d
                .attachments
                .iter()
                .map(|a| ThanhPhan {
                    ma: a.code.clone(),
                    ten: a.name.clone().or_else(|| a.filename.clone()).unwrap_or_default(),
                    da_so_hoa: flag(a.digitized),
                    duong_dan: a.url.clone(),
                })
                .collect(),
            ket_qua: d
                .results
                .iter()
                .map(|r| KetQua {
                    ma: r.code.clone(),
                    ten: r.name.clone(),
                    duong_dan: r.url.clone(),
                    ban_dien_tu: flag(r.electronic),
                })
                .collect(),
            le_phi: d
                .fees
                .iter()
                .map(|f| LePhi {
                    ma: f.code.clone(),
                    ten: f.name.clone(),
                    so_tien: f.amount.to_string(),
                    hinh_thuc: if f.online { "TRUC_TUYEN" } else { "TRUC_TIEP" }.to_owned(),
                })
                .collect(),
            co_so_hoa: flag(d.digitized),
            thanh_toan_truc_tuyen: flag(d.paid_online),
            xac_thuc_vneid: flag(d.vneid_verified),
        }
    }

    /// The record in the simulator's own terms, or why it cannot be (a malformed record).
    pub fn to_model(&self) -> Result<Dossier, String> {
        let status = status_from_moj(&self.trang_thai)
            .ok_or_else(|| format!("trangThai: unknown status {:?}", self.trang_thai))?;
        let mut steps = Vec::with_capacity(self.qua_trinh_xu_ly.len());
        for (i, s) in self.qua_trinh_xu_ly.iter().enumerate() {
            steps.push(Step {
                id: None,
                assignee: s.nguoi_xu_ly.clone(),
                position: s.chuc_danh.clone(),
                department: s.phong_ban.clone(),
                content: s.noi_dung.clone(),
                started_at: None,
                at: parse_date(&format!("quaTrinhXuLy[{i}].thoiDiem"), &s.thoi_diem)?,
                due: parse_date(&format!("quaTrinhXuLy[{i}].hanXuLy"), &s.han_xu_ly)?,
                status: status_from_moj(&s.trang_thai)
                    .ok_or_else(|| format!("quaTrinhXuLy[{i}].trangThai: unknown status {:?}", s.trang_thai))?,
            });
        }
        let mut supplements = Vec::with_capacity(self.yeu_cau_bo_sung.len());
        for (i, s) in self.yeu_cau_bo_sung.iter().enumerate() {
            supplements.push(Supplement {
                id: s.ma.clone(),
                content: s.noi_dung.clone(),
                requested_at: parse_date(&format!("yeuCauBoSung[{i}].ngayYeuCau"), &s.ngay_yeu_cau)?,
                received_at: parse_opt(&format!("yeuCauBoSung[{i}].ngayNhan"), &s.ngay_nhan)?,
            });
        }
        let mut fees = Vec::with_capacity(self.le_phi.len());
        for (i, f) in self.le_phi.iter().enumerate() {
            fees.push(Fee {
                code: f.ma.clone(),
                name: f.ten.clone(),
                amount: f.so_tien.parse().map_err(|_| format!("lePhi[{i}].soTien: not an amount: {:?}", f.so_tien))?,
                online: f.hinh_thuc == "TRUC_TUYEN",
            });
        }
        Ok(Dossier {
            source: Source::Moj,
            native_id: self.ho_so_id.to_string(),
            code: self.so_ho_so.clone(),
            ref_code: self.ma_ho_so_goc.clone(),
            procedure: ProcedureRef {
                code: self.thu_tuc.ma_tthc.clone(),
                name: self.thu_tuc.ten_tthc.clone(),
                sector_code: self.thu_tuc.ma_linh_vuc.clone(),
                sector_name: self.thu_tuc.ten_linh_vuc.clone(),
            },
            agency: AgencyRef {
                code: self.co_quan_xu_ly.ma.clone(),
                name: self.co_quan_xu_ly.ten.clone(),
                level: match self.co_quan_xu_ly.cap.as_str() {
                    "TINH" => Level::Department,
                    "XA" => Level::Commune,
                    other => return Err(format!("coQuanXuLy.cap: unknown level {other:?}")),
                },
            },
            applicant: Applicant {
                kind: match self.nguoi_nop.loai_doi_tuong.as_str() {
                    "CONG_DAN" => ApplicantKind::Citizen,
                    "TO_CHUC" => ApplicantKind::Business,
                    other => return Err(format!("nguoiNop.loaiDoiTuong: unknown type {other:?}")),
                },
                name: self.nguoi_nop.ho_ten.clone(),
                id_number: self.nguoi_nop.so_giay_to.clone(),
                phone: self.nguoi_nop.dien_thoai.clone(),
                email: self.nguoi_nop.email.clone(),
            },
            channel: match self.kenh_nop.as_str() {
                "TRUC_TIEP" => Channel::InPerson,
                "TRUC_TUYEN" => Channel::Online,
                "BUU_CHINH" => Channel::Postal,
                other => return Err(format!("kenhNop: unknown channel {other:?}")),
            },
            applied_at: parse_date("ngayNop", &self.ngay_nop)?,
            received_at: parse_date("ngayTiepNhan", &self.ngay_tiep_nhan)?,
            due_at: parse_date("ngayHenTra", &self.ngay_hen_tra)?,
            completed_at: parse_opt("ngayHoanThanh", &self.ngay_hoan_thanh)?,
            returned_at: parse_opt("ngayTraKetQua", &self.ngay_tra_ket_qua)?,
            refused_at: parse_opt("ngayTuChoi", &self.ngay_tu_choi)?,
            updated_at: parse_date("ngayCapNhat", &self.ngay_cap_nhat)?,
            status,
            supplements,
            steps,
            attachments: self
                .thanh_phan_ho_so
                .iter()
                .map(|t| Attachment {
                    id: None,
                    code: t.ma.clone(),
                    name: Some(t.ten.clone()),
                    filename: None,
                    digitized: t.da_so_hoa == 1,
                    url: t.duong_dan.clone(),
                })
                .collect(),
            results: self
                .ket_qua
                .iter()
                .map(|k| ResultDoc {
                    id: None,
                    code: k.ma.clone(),
                    name: k.ten.clone(),
                    url: k.duong_dan.clone(),
                    electronic: k.ban_dien_tu == 1,
                })
                .collect(),
            fees,
            digitized: self.co_so_hoa == 1,
            paid_online: self.thanh_toan_truc_tuyen == 1,
            vneid_verified: self.xac_thuc_vneid == 1,
        })
    }
}

pub fn render(d: &Dossier) -> Value {
    serde_json::to_value(MojRecord::from_model(d)).unwrap_or_default()
}

/// Reads one fixture record: a well-formed dossier, or the raw record with the reason it is malformed.
/// The id and updated time must be readable whatever else is wrong, or the record cannot be listed.
pub fn parse(raw: &Value) -> Result<Result<Dossier, (String, Timestamp, String)>, String> {
    let id = raw.get("hoSoId").and_then(Value::as_u64).ok_or("a ministry record without a numeric hoSoId")?.to_string();
    let updated = raw
        .get("ngayCapNhat")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("ministry record {id}: no ngayCapNhat"))
        .and_then(|s| parse_date("ngayCapNhat", s))?;
    let parsed = serde_json::from_value::<MojRecord>(raw.clone()).map_err(|e| e.to_string()).and_then(|r| r.to_model());
    Ok(parsed.map_err(|reason| (id, updated, reason)))
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().route("/oauth/token", post(token)).route("/api/v2/ho-so", get(list)).with_state(shared)
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({ "error": error, "error_description": description }))).into_response()
}

async fn token(
    State(shared): State<Arc<Shared>>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let plan = match faults::gate(&shared, Source::Moj, Call::Auth).await {
        Ok(plan) => plan,
        Err(answer) => return answer,
    };
    let Ok(Form(form)) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expected an application/x-www-form-urlencoded body",
        );
    };
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only client_credentials is supported");
    }
    let opts = &shared.opts;
    if form.get("client_id") != Some(&opts.ministry_client_id)
        || form.get("client_secret") != Some(&opts.ministry_client_secret)
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "bad client credentials");
    }
    let token = shared.issue_token(Source::Moj, Duration::from_secs(TOKEN_TTL_SECS));
    let body = json!({ "access_token": token, "token_type": "bearer", "expires_in": TOKEN_TTL_SECS });
    faults::answer_json(&shared, Source::Moj, &plan, &body)
}

fn api_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "maLoi": status.as_u16().to_string(), "thongBao": message, "duLieu": null }))).into_response()
}

async fn list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let plan = match faults::gate(&shared, Source::Moj, Call::List).await {
        Ok(plan) => plan,
        Err(answer) => return answer,
    };
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    if !bearer.is_some_and(|t| shared.token_valid(Source::Moj, t)) {
        return api_error(StatusCode::UNAUTHORIZED, "Token không hợp lệ hoặc đã hết hạn");
    }
    let since = match q.get("capNhatTu").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match parse_date("capNhatTu", s) {
            Ok(t) => Some(t),
            Err(_) => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "Tham số capNhatTu không đúng định dạng yyyy-MM-dd HH:mm:ss",
                );
            }
        },
    };
    let page = match q.get("trang").map(|s| s.parse::<usize>()) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        Some(_) => {
            return api_error(StatusCode::BAD_REQUEST, "Tham số trang phải là số nguyên ≥ 1");
        }
    };
    let size = match q.get("soBanGhi").map(|s| s.parse::<usize>()) {
        None => DEFAULT_PAGE_SIZE,
        Some(Ok(s)) if (1..=MAX_PAGE_SIZE).contains(&s) => s,
        Some(_) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                &format!("Tham số soBanGhi phải nằm trong khoảng 1–{MAX_PAGE_SIZE}"),
            );
        }
    };

    let walk = Walk {
        key: format!("capNhatTu={}&soBanGhi={size}", q.get("capNhatTu").map_or("", String::as_str)),
        first: page == 1,
    };
    faults::between_pages(&shared, Source::Moj, &plan, &walk);

    let upstream = shared.lock_upstream();
    // Oldest first by ngayCapNhat, ties by hoSoId: the list order the index keeps.
    let from = since.map_or(0, |t| upstream.position_since(Source::Moj, t));
    let total = upstream.count(Source::Moj) - from;
    let items = upstream.ascending(Source::Moj, from.saturating_add((page - 1).saturating_mul(size)), size);
    let envelope = json!({
        "maLoi": "0",
        "thongBao": "Thành công",
        "duLieu": { "danhSach": faults::RECORDS, "tongSoBanGhi": total, "trang": page, "soBanGhi": size },
    });
    let body = upstream.page_json(Source::Moj, &envelope, &items);
    drop(upstream);
    faults::answer(&shared, Source::Moj, &plan, Some(&walk), body)
}

/// Breaks a rendered record the way the ministry's records have been seen broken; returns the reason.
pub fn damage(raw: &mut Value, variant: u64, now: Timestamp) -> &'static str {
    if variant.is_multiple_of(2) {
        let local = now.to_zoned_datetime(vn_tz());
        raw["ngayTiepNhan"] = Value::from(format!("{}-02-31 {}", local.year(), local.strftime("%H:%M:%S")));
        "ngayTiepNhan: impossible date"
    } else {
        raw["trangThai"] = Value::from("CHO_PHE_DUYET");
        "trangThai: unknown status \"CHO_PHE_DUYET\""
    }
}
