//! Masking of personal data (names, ID numbers, phones, e-mail) for logs and operator output.
//!
//! Citizens' personal data never appears in clear outside the store and the portal payload.

/// "Nguyễn Văn An" → "N. V. A.": enough for an operator to tell two people apart on a screen.
pub fn mask_name(name: &str) -> String {
    name.split_whitespace().filter_map(|w| w.chars().next()).map(|c| format!("{c}.")).collect::<Vec<_>>().join(" ")
}

/// "031090001234" → "********1234".
pub fn mask_digits(s: &str) -> String {
    let n = s.chars().count();
    let keep = if n >= 8 { 4 } else { 0 };
    s.chars().enumerate().map(|(i, c)| if i + keep < n { '*' } else { c }).collect()
}

/// "an.nguyen@example.vn" → "a***@example.vn".
pub fn mask_email(s: &str) -> String {
    match s.split_once('@') {
        Some((user, domain)) => {
            let first = user.chars().next().map(String::from).unwrap_or_default();
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_nothing_identifying() {
        assert_eq!(mask_name("Nguyễn Văn An"), "N. V. A.");
        assert_eq!(mask_digits("031090001234"), "********1234");
        assert_eq!(mask_digits("12345"), "*****");
        assert_eq!(mask_email("an.nguyen@example.vn"), "a***@example.vn");
        let a = crate::core::record::Applicant {
            name: Some("Nguyễn Văn An".into()),
            id_number: Some("031090001234".into()),
            kind: Some(1),
            phone: Some("0912345678".into()),
            email: None,
        };
        let shown = format!("{a:?}");
        assert!(!shown.contains("Nguyễn"), "{shown}");
        assert!(!shown.contains("031090001234"), "{shown}");
        assert!(!shown.contains("0912345678"), "{shown}");
    }
}
