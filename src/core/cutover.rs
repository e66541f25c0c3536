//! The cutover table: when each ministry's system took each procedure over for this city.
//!
//! Data, not code (`config/cutover.toml`): operators add a row when a ministry announces a
//! procedure's move, without a rebuild.

use jiff::civil::Date;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CutoverEntry {
    /// The ministry source's configured name.
    pub source: String,
    /// A procedure code (MaTTHC), or `*` for every procedure of that ministry.
    pub procedure: String,
    /// The first day (local) on which new dossiers went to the ministry system: a TOML date
    /// (`2026-01-15`) or a string (`"2026-01-15"`).
    #[serde(deserialize_with = "date_or_text")]
    pub date: Date,
}

/// A date as a TOML date (`2026-01-15`) or a string (`"2026-01-15"`); also read by the calendar.
pub(crate) fn date_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
    let text = match toml::Value::deserialize(d)? {
        toml::Value::String(s) => s,
        toml::Value::Datetime(t) if t.time.is_none() && t.offset.is_none() => t.to_string(),
        other => {
            return Err(serde::de::Error::custom(format!("{other} is not a plain date (write YYYY-MM-DD)")));
        }
    };
    text.parse().map_err(|e| serde::de::Error::custom(format!("{text:?} is not a date (write YYYY-MM-DD): {e}")))
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CutoverTable {
    #[serde(default)]
    pub cutover: Vec<CutoverEntry>,
}

impl CutoverTable {
    /// The cutover date for a ministry source and procedure: an exact procedure row wins over `*`.
    pub fn date_for(&self, source: &str, procedure: &str) -> Option<Date> {
        let rows = || self.cutover.iter().filter(move |e| e.source == source);
        rows().find(|e| e.procedure == procedure).or_else(|| rows().find(|e| e.procedure == "*")).map(|e| e.date)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_procedure_beats_wildcard() {
        let t: CutoverTable = toml::from_str(
            r#"
[[cutover]]
source = "moj"
procedure = "*"
date = "2026-01-15"
[[cutover]]
source = "moj"
procedure = "2.000488"
date = 2026-02-01
"#,
        )
        .unwrap();
        assert_eq!(t.date_for("moj", "1.001193"), Some("2026-01-15".parse().unwrap()));
        assert_eq!(t.date_for("moj", "2.000488"), Some("2026-02-01".parse().unwrap()));
        assert_eq!(t.date_for("mof", "1.001193"), None);
    }
}
