//! The fixed reference data of the simulated world: procedures, agencies and applicants, read from
//! `fixtures/` so that a scenario can change the world without changing code.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use super::model::Source;

/// One administrative procedure (TTHC) of the national catalogue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Procedure {
    pub code: String,
    pub name: String,
    pub sector: Sector,
    /// The ministry whose centralised system took it over (`"moj"`, `"moc"`, `"mae"`, `"mof"`,
    /// `"mps"`); `None` for procedures only the city runs.
    pub owner: Option<String>,
    /// Relative volume: certified copies and civil status dwarf construction permits.
    pub weight: u32,
    pub duration_days: u32,
    /// The department that handles it; `None` means any commune-level unit does.
    pub agency: Option<String>,
    /// The unit inside the agency named in processing steps.
    pub department: String,
    pub applicant: ApplicantKind,
    pub documents: Vec<DocumentKind>,
    pub result: DocumentKind,
    pub fee: Option<FeeKind>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sector {
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplicantKind {
    Citizen,
    Business,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentKind {
    pub code: String,
    pub name: String,
    /// Only the result kind lacks a file name: results are issued, not uploaded.
    #[serde(default)]
    pub file: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeeKind {
    pub code: String,
    pub name: String,
    pub amount: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Department,
    Commune,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agency {
    pub code: String,
    pub name: String,
    pub level: Level,
    /// The start of the city system's dossier codes for this agency (`H26.31-251215-0001`).
    pub dossier_prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub fullname: String,
    pub identity_number: String,
    pub phone: String,
    pub email: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Business {
    pub name: String,
    pub tax_code: String,
    pub phone: String,
    pub email: String,
}

#[derive(Debug, Clone)]
pub struct Catalogue {
    pub procedures: Vec<Procedure>,
    pub agencies: Vec<Agency>,
    pub people: Vec<Person>,
    pub businesses: Vec<Business>,
}

impl Catalogue {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let cat = Self {
            procedures: read_json(&dir.join("procedures.json"))?,
            agencies: read_json(&dir.join("agencies.json"))?,
            people: read_json(&dir.join("people.json"))?,
            businesses: read_json(&dir.join("businesses.json"))?,
        };
        cat.validate()?;
        Ok(cat)
    }

    /// Catches fixture edits that would make the world pick from an empty list later, mid-run.
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.procedures.iter().any(|p| p.weight > 0),
            "procedures.json has no procedure with a weight above 0"
        );
        anyhow::ensure!(!self.people.is_empty(), "people.json is empty");
        anyhow::ensure!(!self.businesses.is_empty(), "businesses.json is empty");
        anyhow::ensure!(
            self.agencies.iter().any(|a| a.level == Level::Commune),
            "agencies.json has no commune-level unit"
        );
        for p in &self.procedures {
            if let Some(owner) = &p.owner {
                anyhow::ensure!(
                    Source::from_name(owner).is_some_and(Source::is_ministry),
                    "procedure {}: owner {owner:?} is not a ministry system (moj, moc, mae, mof, mps)",
                    p.code
                );
            }
            anyhow::ensure!(p.duration_days > 0, "procedure {}: duration_days must be at least 1", p.code);
            if let Some(code) = &p.agency {
                anyhow::ensure!(
                    self.agency(code).is_some(),
                    "procedure {}: agency {code} is not in agencies.json",
                    p.code
                );
            }
        }
        Ok(())
    }

    /// The ministry system that centralised a procedure, if any.
    pub fn owner(&self, code: &str) -> Option<Source> {
        self.procedure(code).and_then(|p| p.owner.as_deref()).and_then(Source::from_name)
    }

    pub fn procedure(&self, code: &str) -> Option<&Procedure> {
        self.procedures.iter().find(|p| p.code == code)
    }

    /// A procedure drawn in proportion to its weight.
    pub fn draw_procedure(&self, rng: &mut fastrand::Rng) -> &Procedure {
        let total: u32 = self.procedures.iter().map(|p| p.weight).sum();
        let mut left = rng.u32(..total.max(1));
        for p in &self.procedures {
            if left < p.weight {
                return p;
            }
            left -= p.weight;
        }
        // Unreachable while `validate` holds; the first procedure is as good as any.
        &self.procedures[0]
    }

    pub fn agency(&self, code: &str) -> Option<&Agency> {
        self.agencies.iter().find(|a| a.code == code)
    }

    pub fn communes(&self) -> impl Iterator<Item = &Agency> {
        self.agencies.iter().filter(|a| a.level == Level::Commune)
    }
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}
