//! Linking by applicant identity: for procedures where the two systems share no code and no
//! reference, the same procedure, the same applicant and receipts close in time make one case.
//!
//! The applicant's identity number is never stored for this purpose in clear: records are filed
//! under a keyed hash (HMAC-SHA-256 with a secret key of the city's) of the procedure and the
//! number, which tells equal identities apart from unequal ones and nothing else. The hash is
//! filed as a pseudo-code beside a record's real codes, so that finding candidates is the same
//! look-up as for codes; the receipt window is checked on each candidate.

use hmac::{Hmac, KeyInit, Mac};
use jiff::SignedDuration;
use sha2::Sha256;

use super::record::SourceRecord;

/// What the configuration enables.
#[derive(Clone)]
pub struct IdentityLinking {
    key: Vec<u8>,
    /// Procedure codes (MaTTHC) linked by identity; `*` for all.
    pub procedures: Vec<String>,
    /// How far apart two receipts may be.
    pub window: SignedDuration,
}

impl std::fmt::Debug for IdentityLinking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never reaches a log.
        f.debug_struct("IdentityLinking")
            .field("key", &"***")
            .field("procedures", &self.procedures)
            .field("window", &self.window)
            .finish()
    }
}

/// Identity pseudo-codes start with this, which no dossier code does.
pub const PREFIX: &str = "≡";

impl IdentityLinking {
    pub fn new(key: &[u8], procedures: Vec<String>, window: SignedDuration) -> Self {
        Self { key: key.to_vec(), procedures, window }
    }

    fn covers(&self, procedure: &str) -> bool {
        self.procedures.iter().any(|p| p == "*" || p == procedure)
    }

    /// The pseudo-code a record is filed under, if its procedure is linked by identity and it
    /// names its applicant.
    pub fn code_of(&self, rec: &SourceRecord) -> Option<String> {
        if !self.covers(&rec.procedure.code) {
            return None;
        }
        let id = normalise(rec.applicant.id_number.as_deref()?);
        if id.is_empty() {
            return None;
        }
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).ok()?;
        mac.update(rec.procedure.code.as_bytes());
        // A separator no procedure code contains, so that (procedure, id) pairs cannot collide.
        mac.update(&[0x1f]);
        mac.update(id.as_bytes());
        let tag = mac.finalize().into_bytes();
        // 128 bits: collisions are out of reach for a city's dossiers.
        let hex: String = tag[..16].iter().map(|b| format!("{b:02x}")).collect();
        Some(format!("{PREFIX}{hex}"))
    }

    /// Whether two receipts are within the window (an unknown receipt never is).
    pub fn within_window(&self, a: Option<jiff::Timestamp>, b: Option<jiff::Timestamp>) -> bool {
        match (a, b) {
            (Some(x), Some(y)) => x.duration_since(y).abs() <= self.window,
            _ => false,
        }
    }
}

/// Identity numbers are compared without spaces, dots or dashes and in upper case: systems
/// write the same CCCD or tax code differently.
fn normalise(id: &str) -> String {
    id.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::merge::tests::rec;
    use crate::core::status::Status;

    fn linking(procedures: &[&str]) -> IdentityLinking {
        IdentityLinking::new(
            b"city-secret",
            procedures.iter().map(|s| s.to_string()).collect(),
            SignedDuration::from_hours(72),
        )
    }

    fn with_id(code: &str, received: &str, id: &str) -> SourceRecord {
        let mut r = rec("city", code, received, received, Status::Received);
        r.applicant.id_number = Some(id.into());
        r
    }

    #[test]
    fn the_same_applicant_and_procedure_share_a_code_that_hides_the_number() {
        let l = linking(&["1.001193"]);
        let a = l.code_of(&with_id("C-1", "2026-03-02T02:00:00Z", "031 090 001 234")).unwrap();
        let b = l.code_of(&with_id("M-9", "2026-03-03T02:00:00Z", "031-090-001-234")).unwrap();
        assert_eq!(a, b, "formatting of the number does not matter");
        assert!(a.starts_with(PREFIX));
        assert!(!a.contains("031090001234") && !a.contains("1234"), "{a}");
        assert_ne!(a, l.code_of(&with_id("C-2", "2026-03-02T02:00:00Z", "031090001235")).unwrap());
        let other_key = IdentityLinking::new(b"another", vec!["*".into()], SignedDuration::from_hours(72));
        assert_ne!(a, other_key.code_of(&with_id("C-1", "2026-03-02T02:00:00Z", "031090001234")).unwrap());
    }

    #[test]
    fn only_named_procedures_and_records_with_a_number_are_filed() {
        let l = linking(&["2.000001"]);
        assert!(l.code_of(&with_id("C-1", "2026-03-02T02:00:00Z", "031090001234")).is_none());
        let all = linking(&["*"]);
        assert!(all.code_of(&with_id("C-1", "2026-03-02T02:00:00Z", "031090001234")).is_some());
        assert!(all.code_of(&with_id("C-1", "2026-03-02T02:00:00Z", " - ")).is_none());
        let mut r = with_id("C-1", "2026-03-02T02:00:00Z", "x");
        r.applicant.id_number = None;
        assert!(all.code_of(&r).is_none());
    }

    #[test]
    fn receipts_must_be_within_the_window() {
        let l = linking(&["*"]);
        let t = |s: &str| Some(s.parse::<jiff::Timestamp>().unwrap());
        let a = t("2026-03-02T02:00:00Z");
        assert!(l.within_window(a, t("2026-03-05T02:00:00Z")));
        assert!(!l.within_window(a, t("2026-03-05T02:00:01Z")));
        assert!(l.within_window(t("2026-02-28T02:00:00Z"), a));
        assert!(!l.within_window(a, None));
    }
}
