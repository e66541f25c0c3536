//! Each procedure's time limit (thời hạn giải quyết), as data (`config/procedures.toml`): what the
//! bridge computes its own due time from, to check the sources' `NgayHenTra` against.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

use super::calendar::TimeLimit;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcedureTable {
    #[serde(default)]
    pub procedure: Vec<ProcedureLimit>,
    /// By code, built at the first lookup: a city lists well over a thousand procedures and every
    /// dossier merged looks its limit up.
    #[serde(skip)]
    index: OnceLock<HashMap<String, TimeLimit>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcedureLimit {
    /// MaTTHC.
    pub code: String,
    #[serde(default)]
    pub name: Option<String>,
    pub limit: TimeLimit,
}

impl ProcedureTable {
    /// The time limit of a procedure, if the table has it.
    pub fn limit_for(&self, code: &str) -> Option<TimeLimit> {
        // The first listing of a repeated code wins, as `problems` reports the later ones.
        let index = self.index.get_or_init(|| {
            let mut m = HashMap::with_capacity(self.procedure.len());
            for p in &self.procedure {
                m.entry(p.code.clone()).or_insert(p.limit);
            }
            m
        });
        index.get(code).copied()
    }

    /// Problems as (key, reason): an empty or repeated code, a limit of zero.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut out = Vec::new();
        for (i, p) in self.procedure.iter().enumerate() {
            let key = format!("procedure[{i}]");
            if p.code.trim().is_empty() {
                out.push((format!("{key}.code"), "must not be empty".into()));
            } else if let Some(first) = seen.insert(p.code.as_str(), i) {
                out.push((format!("{key}.code"), format!("{:?} is already listed as procedure[{first}]", p.code)));
            }
            let zero = matches!(p.limit, TimeLimit::WorkingDays(0) | TimeLimit::CalendarDays(0) | TimeLimit::Hours(0));
            if zero {
                out.push((format!("{key}.limit"), "a time limit of zero: use \"same_day\"".into()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_reads_and_answers_by_code() {
        let t: ProcedureTable = toml::from_str(include_str!("../../config/procedures.toml")).unwrap();
        assert!(t.problems().is_empty(), "{:?}", t.problems());
        assert_eq!(t.limit_for("1.000894"), Some(TimeLimit::WorkingDays(3)));
        assert_eq!(t.limit_for("9.999999"), None);
    }

    #[test]
    fn every_form_of_limit_reads_and_mistakes_are_named() {
        let t: ProcedureTable = toml::from_str(
            r#"
[[procedure]]
code = "A"
limit = "same_day"
[[procedure]]
code = "B"
limit = { calendar_days = 15 }
[[procedure]]
code = "A"
limit = { hours = 0 }
"#,
        )
        .unwrap();
        assert_eq!(t.limit_for("A"), Some(TimeLimit::SameDay));
        assert_eq!(t.limit_for("B"), Some(TimeLimit::CalendarDays(15)));
        let p = t.problems();
        assert!(p.iter().any(|(k, r)| k == "procedure[2].code" && r.contains("already listed")), "{p:?}");
        assert!(p.iter().any(|(k, _)| k == "procedure[2].limit"), "{p:?}");
        assert!(toml::from_str::<ProcedureTable>("[[procedure]]\ncode = \"A\"\nlimit = { weeks = 2 }\n").is_err());
    }
}
