//! What a re-sync covers: the scope an operator names on the command line, checked before it is
//! stored as a request for the daemon.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The scope of a re-sync. Several selectors add up (a union), except `since`/`until`, which
/// narrow `source`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Dossier codes: the portal's code or any member's code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dossiers: Vec<String>,
    /// A source, walked again in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// With `source`: the cases whose records the source last updated in this range are merged
    /// and pushed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    /// A procedure code (MaTTHC): every case with a member of that procedure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procedure: Option<String>,
    /// Quarantined records, mapped again with the current descriptors.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quarantined: bool,
    /// Outbox rows the portal rejected, sent again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub parked: bool,
    /// Every source walked again, every case merged again, quarantine and parked rows retried.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    /// An operator's split of a wrongly linked record out of its case (`dvc-bridge split`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitRequest>,
    /// An operator's attested finish for a case (`dvc-bridge attest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attest: Option<AttestRequest>,
}

/// A case, by any of its codes, and what is attested for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestRequest {
    pub code: String,
    pub attestation: super::attest::Attestation,
}

/// A record to take out of its case, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitRequest {
    pub source: String,
    pub native_id: String,
    pub reason: String,
}

impl Scope {
    /// Refuse a scope that selects nothing or mixes what cannot go together; `sources` are the
    /// configured source names.
    pub fn check(&self, sources: &[&str]) -> Result<(), String> {
        let selects = !self.dossiers.is_empty()
            || self.source.is_some()
            || self.procedure.is_some()
            || self.quarantined
            || self.parked
            || self.all
            || self.split.is_some()
            || self.attest.is_some();
        if (self.since.is_some() || self.until.is_some()) && self.source.is_none() {
            return Err("--since and --until narrow a --source: name the source too".into());
        }
        if !selects {
            return Err(
                "nothing to re-sync: name --dossier, --source, --procedure, --quarantined, --parked or --all".into()
            );
        }
        if let (Some(a), Some(b)) = (self.since, self.until)
            && a > b
        {
            return Err(format!("--since {a} is after --until {b}"));
        }
        if let Some(s) = &self.source
            && !sources.contains(&s.as_str())
        {
            return Err(format!("no source named {s:?} in the configuration (sources: {})", sources.join(", ")));
        }
        if let Some(c) = self.dossiers.iter().find(|c| c.trim().is_empty()) {
            return Err(format!("empty dossier code {c:?}"));
        }
        Ok(())
    }

    /// The sources to walk again.
    pub fn sources_to_walk<'a>(&self, sources: &[&'a str]) -> Vec<&'a str> {
        if self.all {
            return sources.to_vec();
        }
        sources.iter().copied().filter(|s| self.source.as_deref() == Some(*s)).collect()
    }

    /// One line for the sync log and the CLI.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.all {
            parts.push("everything".to_string());
        }
        if !self.dossiers.is_empty() {
            parts.push(format!("dossier(s) {}", self.dossiers.join(", ")));
        }
        if let Some(s) = &self.source {
            let mut p = format!("source {s}");
            if let Some(t) = self.since {
                p.push_str(&format!(" since {t}"));
            }
            if let Some(t) = self.until {
                p.push_str(&format!(" until {t}"));
            }
            parts.push(p);
        }
        if let Some(p) = &self.procedure {
            parts.push(format!("procedure {p}"));
        }
        if self.quarantined {
            parts.push("quarantined records".into());
        }
        if self.parked {
            parts.push("parked deliveries".into());
        }
        if let Some(s) = &self.split {
            parts.push(format!("split {}/{} out of its case ({})", s.source, s.native_id, s.reason));
        }
        if let Some(a) = &self.attest {
            parts.push(format!("attest the finish of {} ({})", a.code, a.attestation.reason));
        }
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCES: &[&str] = &["city", "moj"];

    #[test]
    fn a_scope_must_select_something_that_exists() {
        assert!(Scope::default().check(SOURCES).unwrap_err().contains("nothing to re-sync"));
        let s = Scope { source: Some("moc".into()), ..Scope::default() };
        assert!(s.check(SOURCES).unwrap_err().contains("no source named \"moc\""));
        let s = Scope { since: Some("2026-03-01T00:00:00Z".parse().unwrap()), ..Scope::default() };
        assert!(s.check(SOURCES).unwrap_err().contains("name the source"));
        let s = Scope {
            source: Some("city".into()),
            since: Some("2026-03-02T00:00:00Z".parse().unwrap()),
            until: Some("2026-03-01T00:00:00Z".parse().unwrap()),
            ..Scope::default()
        };
        assert!(s.check(SOURCES).unwrap_err().contains("is after"));
        assert!(Scope { quarantined: true, ..Scope::default() }.check(SOURCES).is_ok());
    }

    #[test]
    fn all_walks_every_source_and_a_source_only_itself() {
        assert_eq!(Scope { all: true, ..Scope::default() }.sources_to_walk(SOURCES), vec!["city", "moj"]);
        assert_eq!(Scope { source: Some("moj".into()), ..Scope::default() }.sources_to_walk(SOURCES), vec!["moj"]);
        assert!(Scope { parked: true, ..Scope::default() }.sources_to_walk(SOURCES).is_empty());
    }

    #[test]
    fn a_scope_survives_the_request_table() {
        let s = Scope { dossiers: vec!["H26.1".into()], parked: true, ..Scope::default() };
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(text, r#"{"dossiers":["H26.1"],"parked":true}"#);
        assert_eq!(serde_json::from_str::<Scope>(&text).unwrap(), s);
    }
}
