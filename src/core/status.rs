//! The portal's dossier status codes (TrangThaiHoSo) and their order.

use serde::{Deserialize, Serialize};

/// A dossier status in the portal's standard vocabulary (1–10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Status {
    New = 1,
    Received = 2,
    Refused = 3,
    Processing = 4,
    SupplementRequested = 5,
    PaymentRequested = 6,
    Withdrawn = 7,
    Stopped = 8,
    Finished = 9,
    Returned = 10,
}

impl Status {
    pub const ALL: [Status; 10] = [
        Status::New,
        Status::Received,
        Status::Refused,
        Status::Processing,
        Status::SupplementRequested,
        Status::PaymentRequested,
        Status::Withdrawn,
        Status::Stopped,
        Status::Finished,
        Status::Returned,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.code() == code)
    }

    /// End states: the dossier's clock has stopped.
    pub fn is_end(self) -> bool {
        matches!(self, Status::Refused | Status::Withdrawn | Status::Stopped | Status::Finished | Status::Returned)
    }

    /// Rank for the "status never regresses" rule: every end state ranks above every open one, and
    /// "result returned" above "finished". Open states share one rank: a dossier legitimately moves
    /// between processing, supplement and payment in any order.
    pub fn rank(self) -> u8 {
        match self {
            Status::Returned => 3,
            s if s.is_end() => 2,
            _ => 1,
        }
    }

    /// The name operators know (Vietnamese, as on the portal).
    pub fn name_vi(self) -> &'static str {
        match self {
            Status::New => "Mới đăng ký",
            Status::Received => "Được tiếp nhận",
            Status::Refused => "Không được tiếp nhận",
            Status::Processing => "Đang xử lý",
            Status::SupplementRequested => "Yêu cầu bổ sung giấy tờ",
            Status::PaymentRequested => "Yêu cầu thực hiện nghĩa vụ tài chính",
            Status::Withdrawn => "Công dân yêu cầu rút hồ sơ",
            Status::Stopped => "Dừng xử lý",
            Status::Finished => "Đã xử lý xong",
            Status::Returned => "Đã trả kết quả",
        }
    }
}

impl TryFrom<u8> for Status {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        Status::from_code(v).ok_or_else(|| format!("status {v} is not a portal status (1–10)"))
    }
}

impl From<Status> for u8 {
    fn from(s: Status) -> u8 {
        s.code()
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code(), self.name_vi())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_end_state_ranks_above_every_open_state() {
        for a in Status::ALL {
            for b in Status::ALL {
                if a.is_end() && !b.is_end() {
                    assert!(a.rank() > b.rank(), "{a} must rank above {b}");
                }
            }
        }
        assert!(Status::Returned.rank() > Status::Finished.rank());
    }

    #[test]
    fn codes_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::from_code(s.code()), Some(s));
        }
        assert_eq!(Status::from_code(0), None);
        assert_eq!(Status::from_code(11), None);
    }
}
