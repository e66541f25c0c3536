//! The Ministry of Finance's centralised system (Bộ Tài chính: business and household-business
//! registration): a session login (`POST /auth/dang-nhap`, token in `X-Auth-Token`, expiring after
//! some minutes), pages linked by `links.next` (a relative URL, absent on the last page), newest
//! first with no "updated since" filter (like iGate), local `dd/MM/yyyy HH:mm:ss` dates, statuses
//! as Vietnamese words, times nested under `thoiGian`, records at `data`; applicants are mostly
//! businesses.
//!
//! Credentials: `username`, `password`.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Query, State},
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

pub const LOGIN_PATH: &str = "/auth/dang-nhap";
pub const LIST_PATH: &str = "/api/v1/ho-so";
const MAX_PAGE_SIZE: usize = 1000;
const DEFAULT_PAGE_SIZE: usize = 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MofRecord {
    id: String,
    ma_ho_so: String,
    /// The city desk's code when the dossier was transferred from it (liên thông).
    ma_ho_so_lien_thong: Option<String>,
    thu_tuc: ThuTuc,
    don_vi_xu_ly: DonVi,
    chu_ho_so: ChuHoSo,
    hinh_thuc_nop: String,
    thoi_gian: ThoiGian,
    trang_thai: String,
    bo_sung: Vec<BoSung>,
    xu_ly: Vec<XuLy>,
    giay_to: Vec<GiayTo>,
    ket_qua: Vec<KetQua>,
    phi_le_phi: Vec<PhiLePhi>,
    da_so_hoa: bool,
    /// "Có" when paid through the ministry's own payment gateway, else "Không".
    thanh_toan_truc_tuyen: String,
    #[serde(rename = "xacThucVNeID")]
    xac_thuc_vneid: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaTen {
    ma: String,
    ten: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ThuTuc {
    ma_thu_tuc: String,
    ten_thu_tuc: String,
    linh_vuc: MaTen,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DonVi {
    ma: String,
    ten: String,
    loai: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChuHoSo {
    loai: String,
    ten: String,
    /// Tax code for a business, CCCD for a person.
    ma_so: String,
    dien_thoai: String,
    thu_dien_tu: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ThoiGian {
    nop: String,
    tiep_nhan: String,
    hen_tra: String,
    hoan_thanh: Option<String>,
    tra_ket_qua: Option<String>,
    tu_choi: Option<String>,
    cap_nhat: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BoSung {
    ma: String,
    noi_dung: String,
    ngay_yeu_cau: String,
    ngay_bo_sung: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct XuLy {
    can_bo: String,
    chuc_vu: String,
    phong_ban: String,
    noi_dung: String,
    thoi_gian: String,
    trang_thai: String,
    han_xu_ly: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GiayTo {
    ma: String,
    ten: String,
    ten_tep: String,
    duong_dan: String,
    da_so_hoa: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KetQua {
    so_hieu: String,
    ten: String,
    duong_dan: String,
    ky_so: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PhiLePhi {
    ma: String,
    ten: String,
    so_tien: u64,
    hinh_thuc_thu: String,
}

/// The system's status words, in the portal's order (1–10).
const STATUSES: [&str; 10] = [
    "Chờ tiếp nhận",
    "Mới tiếp nhận",
    "Từ chối tiếp nhận",
    "Đang xử lý",
    "Chờ bổ sung",
    "Chờ nộp phí",
    "Đã rút hồ sơ",
    "Dừng xử lý",
    "Đã có kết quả",
    "Đã trả kết quả",
];

pub fn status_to_mof(status: u8) -> &'static str {
    STATUSES[usize::from(status.clamp(1, 10)) - 1]
}

fn status_from_mof(s: &str) -> Option<u8> {
    let i = STATUSES.iter().position(|x| *x == s)?;
    u8::try_from(i + 1).ok()
}

const DATE_FORMAT: &str = "%d/%m/%Y %H:%M:%S";

/// Local civil time, day first: `09/03/2026 08:15:00`.
pub fn format_date(t: Timestamp) -> String {
    t.to_zoned_datetime(vn_tz()).strftime(DATE_FORMAT).to_string()
}

pub fn parse_date(field: &str, s: &str) -> Result<Timestamp, String> {
    DateTime::strptime(DATE_FORMAT, s)
        .and_then(|dt| dt.to_zoned_datetime(vn_tz()))
        .map(|z| z.timestamp())
        .map_err(|e| format!("{field}: not a dd/MM/yyyy HH:mm:ss date: {s:?} ({e})"))
}

fn parse_opt(field: &str, s: &Option<String>) -> Result<Option<Timestamp>, String> {
    s.as_deref().map(|s| parse_date(field, s)).transpose()
}

const CHANNELS: [(Channel, &str); 3] =
    [(Channel::InPerson, "Trực tiếp"), (Channel::Online, "Trực tuyến"), (Channel::Postal, "Bưu chính công ích")];

impl MofRecord {
    pub fn from_model(d: &Dossier) -> Self {
        let t = format_date;
        MofRecord {
            id: d.native_id.clone(),
            ma_ho_so: d.code.clone(),
            ma_ho_so_lien_thong: d.ref_code.clone(),
            thu_tuc: ThuTuc {
                ma_thu_tuc: d.procedure.code.clone(),
                ten_thu_tuc: d.procedure.name.clone(),
                linh_vuc: MaTen { ma: d.procedure.sector_code.clone(), ten: d.procedure.sector_name.clone() },
            },
            don_vi_xu_ly: DonVi {
                ma: d.agency.code.clone(),
                ten: d.agency.name.clone(),
                loai: match d.agency.level {
                    Level::Department => "SO_NGANH",
                    Level::Commune => "UBND_XA",
                }
                .to_owned(),
            },
            chu_ho_so: ChuHoSo {
                loai: match d.applicant.kind {
                    ApplicantKind::Citizen => "CA_NHAN",
                    ApplicantKind::Business => "DOANH_NGHIEP",
                }
                .to_owned(),
                ten: d.applicant.name.clone(),
                ma_so: d.applicant.id_number.clone(),
                dien_thoai: d.applicant.phone.clone(),
                thu_dien_tu: d.applicant.email.clone(),
            },
            hinh_thuc_nop: CHANNELS.iter().find(|(c, _)| *c == d.channel).map_or("", |(_, n)| n).to_owned(),
            thoi_gian: ThoiGian {
                nop: t(d.applied_at),
                tiep_nhan: t(d.received_at),
                hen_tra: t(d.due_at),
                hoan_thanh: d.completed_at.map(t),
                tra_ket_qua: d.returned_at.map(t),
                tu_choi: d.refused_at.map(t),
                cap_nhat: t(d.updated_at),
            },
            trang_thai: status_to_mof(d.status).to_owned(),
            bo_sung: d
                .supplements
                .iter()
                .map(|s| BoSung {
                    ma: s.id.clone(),
                    noi_dung: s.content.clone(),
                    ngay_yeu_cau: t(s.requested_at),
                    ngay_bo_sung: s.received_at.map(t),
                })
                .collect(),
            xu_ly: d
                .steps
                .iter()
                .map(|s| XuLy {
                    can_bo: s.assignee.clone(),
                    chuc_vu: s.position.clone(),
                    phong_ban: s.department.clone(),
                    noi_dung: s.content.clone(),
                    thoi_gian: t(s.at),
                    trang_thai: status_to_mof(s.status).to_owned(),
                    han_xu_ly: t(s.due),
                })
                .collect(),
            giay_to: d
                .attachments
                .iter()
                .map(|a| GiayTo {
                    ma: a.code.clone(),
                    ten: a.name.clone().or_else(|| a.filename.clone()).unwrap_or_default(),
                    ten_tep: a.filename.clone().or_else(|| a.name.clone()).unwrap_or_default(),
                    duong_dan: a.url.clone(),
                    da_so_hoa: a.digitized,
                })
                .collect(),
            ket_qua: d
                .results
                .iter()
                .map(|r| KetQua {
                    so_hieu: r.code.clone(),
                    ten: r.name.clone(),
                    duong_dan: r.url.clone(),
                    ky_so: r.electronic,
                })
                .collect(),
            phi_le_phi: d
                .fees
                .iter()
                .map(|f| PhiLePhi {
                    ma: f.code.clone(),
                    ten: f.name.clone(),
                    so_tien: f.amount,
                    hinh_thuc_thu: if f.online { "Trực tuyến" } else { "Tiền mặt" }.to_owned(),
                })
                .collect(),
            da_so_hoa: d.digitized,
            thanh_toan_truc_tuyen: if d.paid_online { "Có" } else { "Không" }.to_owned(),
            xac_thuc_vneid: d.vneid_verified,
        }
    }

    /// The record in the simulator's own terms, or why it cannot be (a malformed record).
    pub fn to_model(&self) -> Result<Dossier, String> {
        let status = status_from_mof(&self.trang_thai)
            .ok_or_else(|| format!("trangThai: unknown status {:?}", self.trang_thai))?;
        let mut steps = Vec::with_capacity(self.xu_ly.len());
        for (i, s) in self.xu_ly.iter().enumerate() {
            steps.push(Step {
                id: None,
                assignee: s.can_bo.clone(),
                position: s.chuc_vu.clone(),
                department: s.phong_ban.clone(),
                content: s.noi_dung.clone(),
                started_at: None,
                at: parse_date(&format!("xuLy[{i}].thoiGian"), &s.thoi_gian)?,
                due: parse_date(&format!("xuLy[{i}].hanXuLy"), &s.han_xu_ly)?,
                status: status_from_mof(&s.trang_thai)
                    .ok_or_else(|| format!("xuLy[{i}].trangThai: unknown status {:?}", s.trang_thai))?,
            });
        }
        let mut supplements = Vec::with_capacity(self.bo_sung.len());
        for (i, s) in self.bo_sung.iter().enumerate() {
            supplements.push(Supplement {
                id: s.ma.clone(),
                content: s.noi_dung.clone(),
                requested_at: parse_date(&format!("boSung[{i}].ngayYeuCau"), &s.ngay_yeu_cau)?,
                received_at: parse_opt(&format!("boSung[{i}].ngayBoSung"), &s.ngay_bo_sung)?,
            });
        }
        let times = &self.thoi_gian;
        Ok(Dossier {
            source: Source::Mof,
            native_id: self.id.clone(),
            code: self.ma_ho_so.clone(),
            ref_code: self.ma_ho_so_lien_thong.clone(),
            procedure: ProcedureRef {
                code: self.thu_tuc.ma_thu_tuc.clone(),
                name: self.thu_tuc.ten_thu_tuc.clone(),
                sector_code: self.thu_tuc.linh_vuc.ma.clone(),
                sector_name: self.thu_tuc.linh_vuc.ten.clone(),
            },
            agency: AgencyRef {
                code: self.don_vi_xu_ly.ma.clone(),
                name: self.don_vi_xu_ly.ten.clone(),
                level: match self.don_vi_xu_ly.loai.as_str() {
                    "SO_NGANH" => Level::Department,
                    "UBND_XA" => Level::Commune,
                    other => return Err(format!("donViXuLy.loai: unknown kind {other:?}")),
                },
            },
            applicant: Applicant {
                kind: match self.chu_ho_so.loai.as_str() {
                    "CA_NHAN" => ApplicantKind::Citizen,
                    "DOANH_NGHIEP" => ApplicantKind::Business,
                    other => return Err(format!("chuHoSo.loai: unknown kind {other:?}")),
                },
                name: self.chu_ho_so.ten.clone(),
                id_number: self.chu_ho_so.ma_so.clone(),
                phone: self.chu_ho_so.dien_thoai.clone(),
                email: self.chu_ho_so.thu_dien_tu.clone(),
            },
            channel: CHANNELS
                .iter()
                .find(|(_, n)| *n == self.hinh_thuc_nop)
                .map(|(c, _)| *c)
                .ok_or_else(|| format!("hinhThucNop: unknown channel {:?}", self.hinh_thuc_nop))?,
            applied_at: parse_date("thoiGian.nop", &times.nop)?,
            received_at: parse_date("thoiGian.tiepNhan", &times.tiep_nhan)?,
            due_at: parse_date("thoiGian.henTra", &times.hen_tra)?,
            completed_at: parse_opt("thoiGian.hoanThanh", &times.hoan_thanh)?,
            returned_at: parse_opt("thoiGian.traKetQua", &times.tra_ket_qua)?,
            refused_at: parse_opt("thoiGian.tuChoi", &times.tu_choi)?,
            updated_at: parse_date("thoiGian.capNhat", &times.cap_nhat)?,
            status,
            supplements,
            steps,
            attachments: self
                .giay_to
                .iter()
                .map(|g| Attachment {
                    id: None,
                    code: g.ma.clone(),
                    name: Some(g.ten.clone()),
                    filename: Some(g.ten_tep.clone()),
                    digitized: g.da_so_hoa,
                    url: g.duong_dan.clone(),
                })
                .collect(),
            results: self
                .ket_qua
                .iter()
                .map(|k| ResultDoc {
                    id: None,
                    code: k.so_hieu.clone(),
                    name: k.ten.clone(),
                    url: k.duong_dan.clone(),
                    electronic: k.ky_so,
                })
                .collect(),
            fees: self
                .phi_le_phi
                .iter()
                .map(|p| Fee {
                    code: p.ma.clone(),
                    name: p.ten.clone(),
                    amount: p.so_tien,
                    online: p.hinh_thuc_thu == "Trực tuyến",
                })
                .collect(),
            digitized: self.da_so_hoa,
            paid_online: match self.thanh_toan_truc_tuyen.as_str() {
                "Có" => true,
                "Không" => false,
                other => return Err(format!("thanhToanTrucTuyen: unknown value {other:?}")),
            },
            vneid_verified: self.xac_thuc_vneid,
        })
    }
}

pub fn render(d: &Dossier) -> Value {
    serde_json::to_value(MofRecord::from_model(d)).unwrap_or_default()
}

/// Reads one fixture record: a well-formed dossier, or the raw record with the reason it is malformed.
/// The id and updated time must be readable whatever else is wrong, or the record cannot be listed.
pub fn parse(raw: &Value) -> Result<Result<Dossier, (String, Timestamp, String)>, String> {
    let id = raw.get("id").and_then(Value::as_str).ok_or("a finance record without a string id")?.to_owned();
    let updated = raw
        .pointer("/thoiGian/capNhat")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("finance record {id}: no thoiGian.capNhat"))
        .and_then(|s| parse_date("thoiGian.capNhat", s))?;
    let parsed = serde_json::from_value::<MofRecord>(raw.clone()).map_err(|e| e.to_string()).and_then(|r| r.to_model());
    Ok(parsed.map_err(|reason| (id, updated, reason)))
}

/// Breaks a rendered record the way this system's records have been seen broken; returns the reason.
pub fn damage(raw: &mut Value, variant: u64, _now: Timestamp) -> &'static str {
    if variant.is_multiple_of(2) {
        // A record saved before its procedure was chosen.
        raw["thuTuc"]["maThuTuc"] = Value::Null;
        "thuTuc.maThuTuc: missing procedure code"
    } else {
        raw["trangThai"] = Value::from("Chờ phê duyệt");
        "trangThai: unknown status \"Chờ phê duyệt\""
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().route(LOGIN_PATH, post(login)).route(LIST_PATH, get(list)).with_state(shared)
}

fn failure(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "maKetQua": code, "thongDiep": message, "data": null }))).into_response()
}

async fn login(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let plan = match faults::gate(&shared, Source::Mof, Call::Auth).await {
        Ok(plan) => plan,
        Err(answer) => return answer,
    };
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(&body) else {
        return failure(StatusCode::BAD_REQUEST, "400", "Dữ liệu đăng nhập không hợp lệ");
    };
    let field = |name: &str| obj.get(name).and_then(Value::as_str);
    let opts = &shared.opts;
    if field("tenDangNhap") != Some(opts.mof_username.as_str()) || field("matKhau") != Some(opts.mof_password.as_str())
    {
        return failure(StatusCode::UNAUTHORIZED, "01", "Tên đăng nhập hoặc mật khẩu không đúng");
    }
    let token = shared.issue_token(Source::Mof, opts.mof_session_ttl);
    let body = json!({
        "maKetQua": "00",
        "thongDiep": "Đăng nhập thành công",
        "data": { "token": token, "hetHanSau": opts.mof_session_ttl.as_secs() },
    });
    faults::answer_json(&shared, Source::Mof, &plan, &body)
}

fn page_link(page: usize, size: usize) -> String {
    format!("{LIST_PATH}?trang={page}&kichThuoc={size}")
}

async fn list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let plan = match faults::gate(&shared, Source::Mof, Call::List).await {
        Ok(plan) => plan,
        Err(answer) => return answer,
    };
    let session = headers.get("x-auth-token").and_then(|v| v.to_str().ok());
    if !session.is_some_and(|t| shared.token_valid(Source::Mof, t)) {
        return failure(StatusCode::UNAUTHORIZED, "401", "Phiên đăng nhập đã hết hạn hoặc không hợp lệ");
    }
    let page = match q.get("trang").map(|s| s.parse::<usize>()) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        Some(_) => return failure(StatusCode::BAD_REQUEST, "400", "Tham số trang phải là số nguyên ≥ 1"),
    };
    let size = match q.get("kichThuoc").map(|s| s.parse::<usize>()) {
        None => DEFAULT_PAGE_SIZE,
        Some(Ok(s)) if (1..=MAX_PAGE_SIZE).contains(&s) => s,
        Some(_) => {
            return failure(
                StatusCode::BAD_REQUEST,
                "400",
                &format!("Tham số kichThuoc phải nằm trong khoảng 1–{MAX_PAGE_SIZE}"),
            );
        }
    };
    let walk = Walk { key: format!("kichThuoc={size}"), first: page == 1 };
    faults::between_pages(&shared, Source::Mof, &plan, &walk);

    let upstream = shared.lock_upstream();
    let total = upstream.count(Source::Mof);
    let skip = (page - 1).saturating_mul(size);
    let data = upstream.descending(Source::Mof, skip, size);
    let mut links = json!({ "self": page_link(page, size) });
    if skip.saturating_add(size) < total {
        links["next"] = Value::from(page_link(page + 1, size));
    }
    let envelope = json!({
        "data": faults::RECORDS,
        "links": links,
        "meta": { "trang": page, "kichThuoc": size, "tongSo": total },
    });
    let body = upstream.page_json(Source::Mof, &envelope, &data);
    drop(upstream);
    faults::answer(&shared, Source::Mof, &plan, Some(&walk), body)
}
