//! The canonical record: one dossier as one source holds it, in the portal's vocabulary.
//!
//! Every adapter maps its system's JSON to this shape. It carries everything the portal's dossier
//! object can hold where the source has it; a field the source lacks stays empty, never invented.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::status::Status;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// The configured source name (e.g. "city", "moj").
    pub source: String,
    /// The record's id in its own system.
    pub native_id: String,
    /// The dossier code (MaHoSo) this system gave the case.
    pub code: String,
    /// Codes of the same case in other systems, when this record names them (e.g. iGate `nationCode`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_codes: Vec<String>,
    pub procedure: Procedure,
    #[serde(default)]
    pub agency: Agency,
    #[serde(default)]
    pub applicant: Applicant,
    /// KenhThucHien: 1 in person, 2 online, 3 postal.
    pub channel: Option<u8>,
    pub submitted_at: Option<Timestamp>,
    pub received_at: Option<Timestamp>,
    pub due_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub returned_at: Option<Timestamp>,
    pub refused_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    pub status: Status,
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supplements: Vec<Supplement>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub documents: Vec<Document>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<ResultDocument>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fees: Vec<Fee>,
    /// HoSoCoThanhPhanSoHoa.
    pub digitized: Option<bool>,
    /// DuocThanhToanTrucTuyen: 1 paid on the portal, 2 through the local gateway; 0/None not online.
    pub paid_online: Option<u8>,
    /// TaiKhoanDuocXacThucVoiVNeID.
    pub vneid_verified: Option<bool>,
}

impl SourceRecord {
    /// When the case reached this system: the receipt, else the submission.
    pub fn arrived_at(&self) -> Option<Timestamp> {
        self.received_at.or(self.submitted_at)
    }

    /// Every code this record is known by or points at.
    pub fn all_codes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.code.as_str()).chain(self.reference_codes.iter().map(String::as_str))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Procedure {
    /// MaTTHC.
    pub code: String,
    pub name: Option<String>,
    /// MaLinhVuc.
    pub sector_code: Option<String>,
    pub sector_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Agency {
    pub code: Option<String>,
    pub name: Option<String>,
    /// "department" or "commune" as the source says it, normalised by the descriptor.
    pub level: Option<String>,
}

/// The applicant. Personal data: kept for the portal and for keyed-hash matching only; its `Debug`
/// output is masked so that it cannot leak into logs by accident.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Applicant {
    pub name: Option<String>,
    /// CCCD or tax code.
    pub id_number: Option<String>,
    /// LoaiDoiTuong: 1 citizen, 2 business, 3 state body, 4 other.
    pub kind: Option<u8>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

impl std::fmt::Debug for Applicant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applicant")
            .field("name", &self.name.as_deref().map(crate::core::privacy::mask_name))
            .field("id_number", &self.id_number.as_deref().map(crate::core::privacy::mask_digits))
            .field("kind", &self.kind)
            .field("phone", &self.phone.as_deref().map(crate::core::privacy::mask_digits))
            .field("email", &self.email.as_deref().map(crate::core::privacy::mask_email))
            .finish()
    }
}

/// A supplement request (yêu cầu bổ sung): the clock pauses from request to receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Supplement {
    pub id: Option<String>,
    pub content: Option<String>,
    pub requested_at: Timestamp,
    pub received_at: Option<Timestamp>,
}

/// A processing step (tiến độ) for `CapNhatTienDoHoSoMC`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub actor: Option<String>,
    pub title: Option<String>,
    pub department: Option<String>,
    pub content: Option<String>,
    pub at: Timestamp,
    pub status: Option<Status>,
    pub started_at: Option<Timestamp>,
    pub deadline: Option<Timestamp>,
}

/// A submitted document (TaiLieuNop).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub id: Option<String>,
    pub name: String,
    pub component_code: Option<String>,
    pub url: Option<String>,
    pub digitized: Option<bool>,
}

/// A result document (DanhSachGiayToKetQua).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultDocument {
    pub id: Option<String>,
    pub name: String,
    pub code: Option<String>,
    pub url: Option<String>,
    pub electronic: Option<bool>,
}

/// A fee (DanhSachLePhi).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fee {
    pub code: Option<String>,
    pub name: String,
    /// In đồng.
    pub amount: Option<i64>,
    /// HinhThucThu as the descriptor maps it.
    pub method: Option<u8>,
}
