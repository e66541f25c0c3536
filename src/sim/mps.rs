//! The Ministry of Public Security's centralised system (Bộ Công an: residence registration,
//! identity cards), a .NET service: an API key in the `apikey` header, page numbers from 1 with an
//! inclusive `tuNgay` filter ascending by update time, PascalCase fields, local `yyyyMMddHHmmss`
//! dates, two-digit status strings in an order of its own, applicant types 0/1/2 (not the portal's
//! 1/2/4), upper-case GUID ids and the records deep at `ketQua.duLieu.hoSo`, beside an
//! application-level result (`ketQua.maLoi` "00").
//!
//! Credentials: `api_key`.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
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

pub const LIST_PATH: &str = "/api/v1/hoso/danhsach";
const MAX_PAGE_SIZE: usize = 1000;
const DEFAULT_PAGE_SIZE: usize = 10;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct MpsRecord {
    #[serde(rename = "HoSoID")]
    ho_so_id: String,
    ma_ho_so: String,
    /// The city desk's code when the dossier was transferred from it.
    ma_ho_so_chuyen_den: Option<String>,
    thu_tuc: ThuTuc,
    co_quan: CoQuan,
    nguoi_nop: NguoiNop,
    /// 0 online, 1 in person, 2 postal.
    hinh_thuc_nop: u8,
    ngay_nop: String,
    ngay_tiep_nhan: String,
    ngay_hen_tra: String,
    ngay_hoan_thanh: Option<String>,
    ngay_tra: Option<String>,
    ngay_tu_choi: Option<String>,
    ngay_cap_nhat: String,
    trang_thai: String,
    danh_sach_bo_sung: Vec<BoSung>,
    qua_trinh_xu_ly: Vec<XuLy>,
    giay_to_nop: Vec<GiayTo>,
    ket_qua_giai_quyet: Vec<KetQua>,
    le_phi: Vec<LePhi>,
    so_hoa: u8,
    /// 0 not paid online, 1 paid on the national portal.
    thanh_toan_truc_tuyen: u8,
    #[serde(rename = "XacThucVNeID")]
    xac_thuc_vneid: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ThuTuc {
    #[serde(rename = "MaTTHC")]
    ma_tthc: String,
    #[serde(rename = "TenTTHC")]
    ten_tthc: String,
    ma_linh_vuc: String,
    ten_linh_vuc: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CoQuan {
    ma_co_quan: String,
    ten_co_quan: String,
    /// Administrative level: 2 province (a department), 4 commune.
    cap: u8,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct NguoiNop {
    ho_va_ten: String,
    so_dinh_danh: String,
    so_dien_thoai: String,
    email: String,
    /// 0 citizen, 1 business, 2 other.
    loai_doi_tuong: u8,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct BoSung {
    ma_bo_sung: String,
    noi_dung: String,
    ngay_yeu_cau: String,
    ngay_tiep_nhan: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct XuLy {
    can_bo: String,
    chuc_vu: String,
    don_vi: String,
    noi_dung: String,
    thoi_gian_bat_dau: String,
    thoi_gian_ket_thuc: String,
    han_xu_ly: String,
    trang_thai: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct GiayTo {
    ma_thanh_phan: String,
    ten_giay_to: String,
    duong_dan: String,
    so_hoa: u8,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct KetQua {
    ma_ket_qua: String,
    ten_ket_qua: String,
    duong_dan: String,
    ban_dien_tu: u8,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct LePhi {
    ma_phi: String,
    ten_phi: String,
    so_tien: u64,
    /// `TM` cash at the desk, `TT` paid online.
    hinh_thuc_thu: String,
}

/// The system's status codes, in the portal's order (1–10): its own order is 01 new, 02 received,
/// 03 processing, 04 supplement, 05 payment, 06 result ready, 07 returned, 08 refused,
/// 09 withdrawn, 10 stopped.
const STATUSES: [&str; 10] = ["01", "02", "08", "03", "04", "05", "09", "10", "06", "07"];

pub fn status_to_mps(status: u8) -> &'static str {
    STATUSES[usize::from(status.clamp(1, 10)) - 1]
}

fn status_from_mps(s: &str) -> Option<u8> {
    let i = STATUSES.iter().position(|x| *x == s)?;
    u8::try_from(i + 1).ok()
}

const DATE_FORMAT: &str = "%Y%m%d%H%M%S";

/// Local civil time, digits only: `20260309081500`.
pub fn format_date(t: Timestamp) -> String {
    t.to_zoned_datetime(vn_tz()).strftime(DATE_FORMAT).to_string()
}

pub fn parse_date(field: &str, s: &str) -> Result<Timestamp, String> {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{field}: not a yyyyMMddHHmmss date: {s:?}"));
    }
    DateTime::strptime(DATE_FORMAT, s)
        .and_then(|dt| dt.to_zoned_datetime(vn_tz()))
        .map(|z| z.timestamp())
        .map_err(|e| format!("{field}: not a yyyyMMddHHmmss date: {s:?} ({e})"))
}

fn parse_opt(field: &str, s: &Option<String>) -> Result<Option<Timestamp>, String> {
    s.as_deref().map(|s| parse_date(field, s)).transpose()
}

impl MpsRecord {
    pub fn from_model(d: &Dossier) -> Self {
        let t = format_date;
        MpsRecord {
            ho_so_id: d.native_id.clone(),
            ma_ho_so: d.code.clone(),
            ma_ho_so_chuyen_den: d.ref_code.clone(),
            thu_tuc: ThuTuc {
                ma_tthc: d.procedure.code.clone(),
                ten_tthc: d.procedure.name.clone(),
                ma_linh_vuc: d.procedure.sector_code.clone(),
                ten_linh_vuc: d.procedure.sector_name.clone(),
            },
            co_quan: CoQuan {
                ma_co_quan: d.agency.code.clone(),
                ten_co_quan: d.agency.name.clone(),
                cap: match d.agency.level {
                    Level::Department => 2,
                    Level::Commune => 4,
                },
            },
            nguoi_nop: NguoiNop {
                ho_va_ten: d.applicant.name.clone(),
                so_dinh_danh: d.applicant.id_number.clone(),
                so_dien_thoai: d.applicant.phone.clone(),
                email: d.applicant.email.clone(),
                loai_doi_tuong: match d.applicant.kind {
                    ApplicantKind::Citizen => 0,
                    ApplicantKind::Business => 1,
                },
            },
            hinh_thuc_nop: match d.channel {
                Channel::Online => 0,
                Channel::InPerson => 1,
                Channel::Postal => 2,
            },
            ngay_nop: t(d.applied_at),
            ngay_tiep_nhan: t(d.received_at),
            ngay_hen_tra: t(d.due_at),
            ngay_hoan_thanh: d.completed_at.map(t),
            ngay_tra: d.returned_at.map(t),
            ngay_tu_choi: d.refused_at.map(t),
            ngay_cap_nhat: t(d.updated_at),
            trang_thai: status_to_mps(d.status).to_owned(),
            danh_sach_bo_sung: d
                .supplements
                .iter()
                .map(|s| BoSung {
                    ma_bo_sung: s.id.clone(),
                    noi_dung: s.content.clone(),
                    ngay_yeu_cau: t(s.requested_at),
                    ngay_tiep_nhan: s.received_at.map(t),
                })
                .collect(),
            qua_trinh_xu_ly: d
                .steps
                .iter()
                .map(|s| XuLy {
                    can_bo: s.assignee.clone(),
                    chuc_vu: s.position.clone(),
                    don_vi: s.department.clone(),
                    noi_dung: s.content.clone(),
                    thoi_gian_bat_dau: t(s.started_at.unwrap_or(s.at)),
                    thoi_gian_ket_thuc: t(s.at),
                    han_xu_ly: t(s.due),
                    trang_thai: status_to_mps(s.status).to_owned(),
                })
                .collect(),
            giay_to_nop: d
                .attachments
                .iter()
                .map(|a| GiayTo {
                    ma_thanh_phan: a.code.clone(),
                    ten_giay_to: a.name.clone().or_else(|| a.filename.clone()).unwrap_or_default(),
                    duong_dan: a.url.clone(),
                    so_hoa: u8::from(a.digitized),
                })
                .collect(),
            ket_qua_giai_quyet: d
                .results
                .iter()
                .map(|r| KetQua {
                    ma_ket_qua: r.code.clone(),
                    ten_ket_qua: r.name.clone(),
                    duong_dan: r.url.clone(),
                    ban_dien_tu: u8::from(r.electronic),
                })
                .collect(),
            le_phi: d
                .fees
                .iter()
                .map(|f| LePhi {
                    ma_phi: f.code.clone(),
                    ten_phi: f.name.clone(),
                    so_tien: f.amount,
                    hinh_thuc_thu: if f.online { "TT" } else { "TM" }.to_owned(),
                })
                .collect(),
            so_hoa: u8::from(d.digitized),
            thanh_toan_truc_tuyen: u8::from(d.paid_online),
            xac_thuc_vneid: d.vneid_verified,
        }
    }

    /// The record in the simulator's own terms, or why it cannot be (a malformed record).
    pub fn to_model(&self) -> Result<Dossier, String> {
        let status = status_from_mps(&self.trang_thai)
            .ok_or_else(|| format!("TrangThai: unknown status {:?}", self.trang_thai))?;
        let mut steps = Vec::with_capacity(self.qua_trinh_xu_ly.len());
        for (i, s) in self.qua_trinh_xu_ly.iter().enumerate() {
            steps.push(Step {
                id: None,
                assignee: s.can_bo.clone(),
                position: s.chuc_vu.clone(),
                department: s.don_vi.clone(),
                content: s.noi_dung.clone(),
                started_at: Some(parse_date(&format!("QuaTrinhXuLy[{i}].ThoiGianBatDau"), &s.thoi_gian_bat_dau)?),
                at: parse_date(&format!("QuaTrinhXuLy[{i}].ThoiGianKetThuc"), &s.thoi_gian_ket_thuc)?,
                due: parse_date(&format!("QuaTrinhXuLy[{i}].HanXuLy"), &s.han_xu_ly)?,
                status: status_from_mps(&s.trang_thai)
                    .ok_or_else(|| format!("QuaTrinhXuLy[{i}].TrangThai: unknown status {:?}", s.trang_thai))?,
            });
        }
        let mut supplements = Vec::with_capacity(self.danh_sach_bo_sung.len());
        for (i, s) in self.danh_sach_bo_sung.iter().enumerate() {
            supplements.push(Supplement {
                id: s.ma_bo_sung.clone(),
                content: s.noi_dung.clone(),
                requested_at: parse_date(&format!("DanhSachBoSung[{i}].NgayYeuCau"), &s.ngay_yeu_cau)?,
                received_at: parse_opt(&format!("DanhSachBoSung[{i}].NgayTiepNhan"), &s.ngay_tiep_nhan)?,
            });
        }
        Ok(Dossier {
            source: Source::Mps,
            native_id: self.ho_so_id.clone(),
            code: self.ma_ho_so.clone(),
            ref_code: self.ma_ho_so_chuyen_den.clone(),
            procedure: ProcedureRef {
                code: self.thu_tuc.ma_tthc.clone(),
                name: self.thu_tuc.ten_tthc.clone(),
                sector_code: self.thu_tuc.ma_linh_vuc.clone(),
                sector_name: self.thu_tuc.ten_linh_vuc.clone(),
            },
            agency: AgencyRef {
                code: self.co_quan.ma_co_quan.clone(),
                name: self.co_quan.ten_co_quan.clone(),
                level: match self.co_quan.cap {
                    2 => Level::Department,
                    4 => Level::Commune,
                    other => return Err(format!("CoQuan.Cap: unknown level {other}")),
                },
            },
            applicant: Applicant {
                kind: match self.nguoi_nop.loai_doi_tuong {
                    0 => ApplicantKind::Citizen,
                    1 => ApplicantKind::Business,
                    other => return Err(format!("NguoiNop.LoaiDoiTuong: type {other} is not simulated")),
                },
                name: self.nguoi_nop.ho_va_ten.clone(),
                id_number: self.nguoi_nop.so_dinh_danh.clone(),
                phone: self.nguoi_nop.so_dien_thoai.clone(),
                email: self.nguoi_nop.email.clone(),
            },
            channel: match self.hinh_thuc_nop {
                0 => Channel::Online,
                1 => Channel::InPerson,
                2 => Channel::Postal,
                other => return Err(format!("HinhThucNop: unknown channel {other}")),
            },
            applied_at: parse_date("NgayNop", &self.ngay_nop)?,
            received_at: parse_date("NgayTiepNhan", &self.ngay_tiep_nhan)?,
            due_at: parse_date("NgayHenTra", &self.ngay_hen_tra)?,
            completed_at: parse_opt("NgayHoanThanh", &self.ngay_hoan_thanh)?,
            returned_at: parse_opt("NgayTra", &self.ngay_tra)?,
            refused_at: parse_opt("NgayTuChoi", &self.ngay_tu_choi)?,
            updated_at: parse_date("NgayCapNhat", &self.ngay_cap_nhat)?,
            status,
            supplements,
            steps,
            attachments: self
                .giay_to_nop
                .iter()
                .map(|g| Attachment {
                    id: None,
                    code: g.ma_thanh_phan.clone(),
                    name: Some(g.ten_giay_to.clone()),
                    filename: None,
                    digitized: g.so_hoa == 1,
                    url: g.duong_dan.clone(),
                })
                .collect(),
            results: self
                .ket_qua_giai_quyet
                .iter()
                .map(|k| ResultDoc {
                    id: None,
                    code: k.ma_ket_qua.clone(),
                    name: k.ten_ket_qua.clone(),
                    url: k.duong_dan.clone(),
                    electronic: k.ban_dien_tu == 1,
                })
                .collect(),
            fees: self
                .le_phi
                .iter()
                .map(|l| Fee {
                    code: l.ma_phi.clone(),
                    name: l.ten_phi.clone(),
                    amount: l.so_tien,
                    online: l.hinh_thuc_thu == "TT",
                })
                .collect(),
            digitized: self.so_hoa == 1,
            paid_online: self.thanh_toan_truc_tuyen == 1,
            vneid_verified: self.xac_thuc_vneid,
        })
    }
}

pub fn render(d: &Dossier) -> Value {
    serde_json::to_value(MpsRecord::from_model(d)).unwrap_or_default()
}

/// Reads one fixture record: a well-formed dossier, or the raw record with the reason it is malformed.
/// The id and updated time must be readable whatever else is wrong, or the record cannot be listed.
pub fn parse(raw: &Value) -> Result<Result<Dossier, (String, Timestamp, String)>, String> {
    let id = raw.get("HoSoID").and_then(Value::as_str).ok_or("a public-security record without HoSoID")?.to_owned();
    let updated = raw
        .get("NgayCapNhat")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("public-security record {id}: no NgayCapNhat"))
        .and_then(|s| parse_date("NgayCapNhat", s))?;
    let parsed = serde_json::from_value::<MpsRecord>(raw.clone()).map_err(|e| e.to_string()).and_then(|r| r.to_model());
    Ok(parsed.map_err(|reason| (id, updated, reason)))
}

/// Breaks a rendered record the way this system's records have been seen broken; returns the reason.
pub fn damage(raw: &mut Value, variant: u64, now: Timestamp) -> &'static str {
    if variant.is_multiple_of(2) {
        // Another system's date format leaking through an import.
        raw["NgayTiepNhan"] = Value::from(now.to_zoned_datetime(vn_tz()).strftime("%Y-%m-%d %H:%M:%S").to_string());
        "NgayTiepNhan: not yyyyMMddHHmmss"
    } else {
        raw["TrangThai"] = Value::from("11");
        "TrangThai: unknown status \"11\""
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().route(LIST_PATH, get(list)).with_state(shared)
}

fn failure(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "ketQua": { "trangThai": "LOI", "maLoi": status.as_u16().to_string(), "moTa": message, "duLieu": null },
    });
    (status, Json(body)).into_response()
}

async fn list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let plan = match faults::gate(&shared, Source::Mps, Call::List).await {
        Ok(plan) => plan,
        Err(answer) => return answer,
    };
    let key = headers.get("apikey").and_then(|v| v.to_str().ok());
    if key != Some(shared.opts.mps_api_key.as_str()) {
        return failure(StatusCode::FORBIDDEN, "apikey không hợp lệ hoặc không có quyền truy cập");
    }
    let page = match q.get("trang").map(|s| s.parse::<usize>()) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        Some(_) => return failure(StatusCode::BAD_REQUEST, "Tham số trang phải là số nguyên ≥ 1"),
    };
    let size = match q.get("soLuong").map(|s| s.parse::<usize>()) {
        None => DEFAULT_PAGE_SIZE,
        Some(Ok(s)) if (1..=MAX_PAGE_SIZE).contains(&s) => s,
        Some(_) => {
            return failure(
                StatusCode::BAD_REQUEST,
                &format!("Tham số soLuong phải nằm trong khoảng 1–{MAX_PAGE_SIZE}"),
            );
        }
    };
    let since = match q.get("tuNgay").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match parse_date("tuNgay", s) {
            Ok(t) => Some(t),
            Err(_) => return failure(StatusCode::BAD_REQUEST, "Tham số tuNgay phải có dạng yyyyMMddHHmmss"),
        },
    };
    let walk =
        Walk { key: format!("tuNgay={}&soLuong={size}", q.get("tuNgay").map_or("", String::as_str)), first: page == 1 };
    faults::between_pages(&shared, Source::Mps, &plan, &walk);

    let upstream = shared.lock_upstream();
    let from = since.map_or(0, |t| upstream.position_since(Source::Mps, t));
    let total = upstream.count(Source::Mps) - from;
    let records = upstream.ascending(Source::Mps, from.saturating_add((page - 1).saturating_mul(size)), size);
    let envelope = json!({
        "ketQua": {
            "trangThai": "THANH_CONG",
            "maLoi": "00",
            "moTa": "Thành công",
            "duLieu": { "hoSo": faults::RECORDS, "tongSo": total, "trang": page, "soLuong": size },
        },
    });
    let body = upstream.page_json(Source::Mps, &envelope, &records);
    drop(upstream);
    faults::answer(&shared, Source::Mps, &plan, Some(&walk), body)
}
