//! The portal's objects (`DongBoHoSoMC` dossier, `CapNhatTienDoHoSoMC` progress), built from the
//! canonical state. Every value is sent as a string; times as `yyyyMMddHHmmss` local time.

use serde_json::{Map, Value};

use super::record::{SourceRecord, Step};
use super::status::Status;
use super::timefmt::portal_time;

/// `TrichYeuHoSo` is limited to 1000 characters on the portal.
const SUMMARY_MAX: usize = 1000;
/// `NguoiXuLy` is limited to 50 characters.
const ACTOR_MAX: usize = 50;

fn put(m: &mut Map<String, Value>, key: &str, v: Option<String>) {
    if let Some(v) = v {
        m.insert(key.to_string(), Value::String(v));
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn flag(b: Option<bool>) -> Option<String> {
    b.map(|b| if b { "1" } else { "0" }.to_string())
}

/// The end time the portal reads for lateness (`NgayKetThucXuLy`), by status.
pub fn end_time(r: &SourceRecord) -> Option<jiff::Timestamp> {
    match r.status {
        Status::Finished => r.finished_at,
        Status::Returned => r.finished_at.or(r.returned_at),
        Status::Refused => r.refused_at.or(r.finished_at),
        // A stop or a withdrawal has no dedicated time in most systems: the change that made it.
        Status::Stopped | Status::Withdrawn => r.finished_at.or(Some(r.updated_at)),
        _ => None,
    }
}

/// The complete dossier object for `DongBoHoSoMC`. An update replaces the portal's copy, so this is
/// always the whole object. `note` goes to `GhiChu`.
pub fn dossier_object(r: &SourceRecord, note: Option<&str>) -> Value {
    let mut m = Map::new();
    put(&mut m, "MaHoSo", Some(r.code.clone()));
    put(&mut m, "MaTTHC", Some(r.procedure.code.clone()));
    put(&mut m, "TenTTHC", r.procedure.name.clone());
    put(&mut m, "MaLinhVuc", r.procedure.sector_code.clone());
    put(&mut m, "KenhThucHien", r.channel.map(|c| c.to_string()));
    put(&mut m, "ChuHoSo", r.applicant.name.clone());
    put(&mut m, "LoaiDoiTuong", r.applicant.kind.map(|k| k.to_string()));
    put(&mut m, "MaDoiTuong", r.applicant.id_number.clone());
    put(&mut m, "SoDienThoai", r.applicant.phone.clone());
    put(&mut m, "Email", r.applicant.email.clone());
    put(&mut m, "NgayNopHoSo", r.submitted_at.map(portal_time));
    put(&mut m, "NgayTiepNhan", r.arrived_at().map(portal_time));
    put(&mut m, "NgayHenTra", r.due_at.map(portal_time));
    put(&mut m, "TrangThaiHoSo", Some(r.status.code().to_string()));
    put(&mut m, "NgayKetThucXuLy", end_time(r).map(portal_time));
    if r.status == Status::Returned {
        put(&mut m, "NgayTra", r.returned_at.map(portal_time));
    }
    if r.status == Status::Refused {
        put(&mut m, "NgayTuChoi", r.refused_at.map(portal_time));
    }
    put(&mut m, "DonViXuLy", r.agency.name.clone().or_else(|| r.agency.code.clone()));
    put(&mut m, "NoiNopHoSo", r.agency.code.clone());
    put(&mut m, "TrichYeuHoSo", r.summary.as_deref().map(|s| truncate(s, SUMMARY_MAX)));
    put(&mut m, "HoSoCoThanhPhanSoHoa", flag(r.digitized));
    put(&mut m, "TaiKhoanDuocXacThucVoiVNeID", flag(r.vneid_verified));
    put(&mut m, "DuocThanhToanTrucTuyen", r.paid_online.filter(|p| *p > 0).map(|p| p.to_string()));
    put(&mut m, "GhiChu", note.map(str::to_string));

    let supplements: Vec<Value> = r
        .supplements
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut o = Map::new();
            put(&mut o, "HoSoBoSungId", Some(s.id.clone().unwrap_or_else(|| (i + 1).to_string())));
            put(&mut o, "NoiDungBoSung", s.content.clone());
            put(&mut o, "NgayBoSung", Some(portal_time(s.requested_at)));
            put(&mut o, "NgayTiepNhanBoSung", s.received_at.map(portal_time));
            put(&mut o, "TrangThaiBoSung", Some(if s.received_at.is_some() { "1" } else { "0" }.to_string()));
            put(&mut o, "NgayHenTraTruoc", r.due_at.map(portal_time));
            Value::Object(o)
        })
        .collect();
    if !supplements.is_empty() {
        m.insert("DanhSachHoSoBoSung".into(), Value::Array(supplements));
    }
    let results: Vec<Value> = r
        .results
        .iter()
        .map(|d| {
            let mut o = Map::new();
            put(&mut o, "TenGiayTo", Some(d.name.clone()));
            put(&mut o, "GiayToId", d.id.clone());
            put(&mut o, "DuongDanTepTinKetQua", d.url.clone());
            put(&mut o, "MaGiayToKetQua", d.code.clone());
            Value::Object(o)
        })
        .collect();
    if !results.is_empty() {
        m.insert("DanhSachGiayToKetQua".into(), Value::Array(results));
    }
    let documents: Vec<Value> = r
        .documents
        .iter()
        .map(|d| {
            let mut o = Map::new();
            put(&mut o, "TepDinhKemId", d.id.clone());
            put(&mut o, "TenTepDinhKem", Some(d.name.clone()));
            put(&mut o, "MaThanhPhanHoSo", d.component_code.clone());
            put(&mut o, "DuongDanTaiTepTin", d.url.clone());
            put(&mut o, "DuocSoHoa", flag(d.digitized));
            Value::Object(o)
        })
        .collect();
    if !documents.is_empty() {
        m.insert("TaiLieuNop".into(), Value::Array(documents));
    }
    let fees: Vec<Value> = r
        .fees
        .iter()
        .map(|f| {
            let mut o = Map::new();
            put(&mut o, "TenPhiLePhi", Some(f.name.clone()));
            put(&mut o, "MaPhiLePhi", f.code.clone());
            put(&mut o, "HinhThucThu", f.method.map(|x| x.to_string()));
            put(&mut o, "Gia", f.amount.map(|x| x.to_string()));
            put(&mut o, "LoaiPhiLePhi", Some("1".to_string()));
            Value::Object(o)
        })
        .collect();
    if !fees.is_empty() {
        m.insert("DanhSachLePhi".into(), Value::Array(fees));
    }
    Value::Object(m)
}

/// The object that closes a code found to be a duplicate of `canonical_code`: stopped (8), ended at
/// its own receipt (it never was the live copy), no supplements: closing it creates no late record.
pub fn closed_duplicate_object(dup: &SourceRecord, canonical_code: &str) -> Value {
    let mut r = dup.clone();
    r.status = Status::Stopped;
    r.supplements.clear();
    let received = r.arrived_at().unwrap_or(r.updated_at);
    r.finished_at = Some(received);
    if r.due_at.is_none_or(|d| d < received) {
        r.due_at = Some(received);
    }
    let note = format!("Hồ sơ trùng với hồ sơ {canonical_code} (cùng một hồ sơ trên hai hệ thống); đã đóng bản trùng.");
    dossier_object(&r, Some(&note))
}

/// The `CapNhatTienDoHoSoMC` item for one processing step.
pub fn progress_object(code: &str, s: &Step) -> Value {
    let mut o = Map::new();
    put(&mut o, "MaHoSo", Some(code.to_string()));
    put(&mut o, "NguoiXuLy", s.actor.as_deref().map(|a| truncate(a, ACTOR_MAX)));
    put(&mut o, "ChucDanh", s.title.clone());
    put(&mut o, "ThoiDiemXuLy", Some(portal_time(s.at)));
    put(&mut o, "PhongBanXuLy", s.department.clone());
    put(&mut o, "NoiDungXuLy", s.content.clone());
    put(&mut o, "TrangThai", s.status.map(|x| x.code().to_string()));
    put(&mut o, "NgayBatDau", s.started_at.map(portal_time));
    put(&mut o, "NgayKetThucTheoQuyDinh", s.deadline.map(portal_time));
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::merge::tests::rec;

    #[test]
    fn a_returned_dossier_carries_its_end_and_return_times_as_strings() {
        let mut r = rec("city", "C-1", "2026-03-02T01:00:00Z", "2026-03-05T03:00:00Z", Status::Returned);
        r.finished_at = Some("2026-03-04T09:00:00Z".parse().unwrap());
        r.returned_at = Some("2026-03-05T03:00:00Z".parse().unwrap());
        let o = dossier_object(&r, None);
        assert_eq!(o["MaHoSo"], "C-1");
        assert_eq!(o["TrangThaiHoSo"], "10");
        assert_eq!(o["NgayTiepNhan"], "20260302080000");
        assert_eq!(o["NgayKetThucXuLy"], "20260304160000");
        assert_eq!(o["NgayTra"], "20260305100000");
        assert_eq!(o["KenhThucHien"], "2");
        assert!(o.get("NgayTuChoi").is_none());
    }

    #[test]
    fn a_closed_duplicate_ends_at_its_own_receipt_and_names_the_live_code() {
        let mut r = rec("moj", "M-1", "2026-03-02T01:00:00Z", "2026-03-05T03:00:00Z", Status::Processing);
        r.supplements.push(crate::core::record::Supplement {
            id: None,
            content: None,
            requested_at: "2026-03-03T01:00:00Z".parse().unwrap(),
            received_at: None,
        });
        let o = closed_duplicate_object(&r, "C-1");
        assert_eq!(o["TrangThaiHoSo"], "8");
        assert_eq!(o["NgayKetThucXuLy"], o["NgayTiepNhan"]);
        assert!(o["GhiChu"].as_str().unwrap().contains("C-1"));
        assert!(o.get("DanhSachHoSoBoSung").is_none());
    }
}
