//! Identity and merge: from the records that are one case to the one dossier the portal shows.
//!
//! Pure. The store finds the members (records sharing a code or naming each other's code); this
//! module decides the portal code, which member is authoritative and why, and the canonical state.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::cutover::CutoverTable;
use super::descriptor::SystemKind;
use super::record::SourceRecord;
use super::status::Status;
use crate::clock::vn_tz;

/// Why two records were linked into one dossier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkRule {
    /// The first record of its case.
    First,
    /// The same dossier code in both systems.
    SameCode,
    /// One record names the other's code in a reference field.
    Reference,
    /// The same procedure and applicant, received within the configured window.
    Identity,
    /// Split out of a case by an operator (`dvc-bridge split`).
    Split,
}

impl LinkRule {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkRule::First => "first",
            LinkRule::SameCode => "same_code",
            LinkRule::Reference => "reference",
            LinkRule::Identity => "identity",
            LinkRule::Split => "split",
        }
    }
}

/// One member of a case, as the merge sees it.
#[derive(Debug, Clone)]
pub struct Member<'a> {
    pub record: &'a SourceRecord,
    pub kind: SystemKind,
}

/// Why the authoritative member was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "rule")]
pub enum AuthorityReason {
    /// The case has one member.
    Sole,
    /// Received before the ministry's cutover for the procedure: the city system finishes it.
    BeforeCutover { cutover: jiff::civil::Date },
    /// Received on or after the cutover: the ministry system is authoritative.
    AfterCutover { cutover: jiff::civil::Date },
    /// No cutover row covers the procedure: the most recently updated member, and operators are told.
    NoCutoverRow { ministry_source: String, procedure: String },
    /// Members of one kind only: the most recently updated.
    LatestUpdate,
}

impl AuthorityReason {
    pub fn describe(&self) -> String {
        match self {
            AuthorityReason::Sole => "only member".into(),
            AuthorityReason::BeforeCutover { cutover } => {
                format!("received before cutover {cutover}: city system is authoritative")
            }
            AuthorityReason::AfterCutover { cutover } => {
                format!("received on/after cutover {cutover}: ministry system is authoritative")
            }
            AuthorityReason::NoCutoverRow { ministry_source, procedure } => {
                format!("no cutover row for {ministry_source}/{procedure}: latest-updated member used")
            }
            AuthorityReason::LatestUpdate => "latest-updated member".into(),
        }
    }
}

/// The one dossier the portal should show for a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Canonical {
    /// The code the portal knows the case by: the member with the earliest receipt.
    pub portal_code: String,
    /// (source, native id) of the authoritative member.
    pub authority: (String, String),
    pub authority_reason: AuthorityReason,
    /// The state pushed: the authoritative member's, with the portal code and the case's first receipt.
    pub state: SourceRecord,
    /// Codes of the other members: each must not be live on the portal.
    pub other_codes: Vec<String>,
}

/// The outcome of merging a case.
#[derive(Debug, Clone, PartialEq)]
pub enum MergeOutcome {
    Ok(Canonical),
    /// The new state would move the dossier backwards from an end state: not pushed, an operator decides.
    Regression {
        canonical: Canonical,
        from: Status,
        to: Status,
    },
}

fn earliest_key(m: &Member<'_>) -> (Timestamp, u8, String, String) {
    (
        m.record.arrived_at().unwrap_or(m.record.updated_at),
        if m.kind == SystemKind::City { 0 } else { 1 },
        m.record.source.clone(),
        m.record.code.clone(),
    )
}

fn latest<'m, 'a>(members: impl Iterator<Item = &'m Member<'a>>) -> Option<&'m Member<'a>>
where
    'a: 'm,
{
    members.max_by_key(|m| (m.record.updated_at, m.record.source.clone(), m.record.native_id.clone()))
}

/// Decide which member is authoritative.
pub fn authority<'m, 'a>(
    members: &'m [Member<'a>],
    cutover: &CutoverTable,
) -> Option<(&'m Member<'a>, AuthorityReason)> {
    if members.len() == 1 {
        return Some((&members[0], AuthorityReason::Sole));
    }
    let first = members.iter().min_by_key(|m| earliest_key(m))?;
    let ministry = members.iter().filter(|m| m.kind == SystemKind::Ministry);
    let city = members.iter().filter(|m| m.kind == SystemKind::City);
    let Some(ministry_member) = latest(ministry.clone()) else {
        return latest(members.iter()).map(|m| (m, AuthorityReason::LatestUpdate));
    };
    let Some(city_member) = latest(city) else {
        return latest(members.iter()).map(|m| (m, AuthorityReason::LatestUpdate));
    };
    let procedure = &ministry_member.record.procedure.code;
    match cutover.date_for(&ministry_member.record.source, procedure) {
        Some(date) => {
            let received = first.record.arrived_at().unwrap_or(first.record.updated_at);
            let local_day = received.to_zoned_datetime(vn_tz()).date();
            if local_day < date {
                Some((city_member, AuthorityReason::BeforeCutover { cutover: date }))
            } else {
                Some((ministry_member, AuthorityReason::AfterCutover { cutover: date }))
            }
        }
        None => latest(members.iter()).map(|m| {
            (
                m,
                AuthorityReason::NoCutoverRow {
                    ministry_source: ministry_member.record.source.clone(),
                    procedure: procedure.clone(),
                },
            )
        }),
    }
}

fn fill<T: Clone>(target: &mut Option<T>, others: &[Member<'_>], get: impl Fn(&SourceRecord) -> &Option<T>) {
    if target.is_none() {
        *target = others.iter().find_map(|m| get(m.record).clone());
    }
}

/// Merge a case's members into its canonical dossier. `previous` is the status last decided for it.
pub fn merge(members: &[Member<'_>], cutover: &CutoverTable, previous: Option<Status>) -> Option<MergeOutcome> {
    // One order whatever order the members came in (the store lists them by key, a page by
    // arrival): every choice below that takes "the first" then gives the same dossier.
    let mut sorted: Vec<Member<'_>> = members.to_vec();
    sorted.sort_by(|a, b| {
        (&a.record.source, &a.record.native_id, a.record.updated_at).cmp(&(
            &b.record.source,
            &b.record.native_id,
            b.record.updated_at,
        ))
    });
    let members = sorted.as_slice();
    let (auth, reason) = authority(members, cutover)?;
    let first = members.iter().min_by_key(|m| earliest_key(m))?;
    let mut state = auth.record.clone();
    state.code = first.record.code.clone();
    // The case began when the citizen first handed it in, whichever system holds that record.
    state.received_at = members.iter().filter_map(|m| m.record.received_at).min().or(state.received_at);
    state.submitted_at = members.iter().filter_map(|m| m.record.submitted_at).min().or(state.submitted_at);
    // Fields the authoritative member lacks come from the others (never invented).
    fill(&mut state.procedure.name, members, |r| &r.procedure.name);
    fill(&mut state.procedure.sector_code, members, |r| &r.procedure.sector_code);
    fill(&mut state.procedure.sector_name, members, |r| &r.procedure.sector_name);
    fill(&mut state.agency.code, members, |r| &r.agency.code);
    fill(&mut state.agency.name, members, |r| &r.agency.name);
    fill(&mut state.applicant.name, members, |r| &r.applicant.name);
    fill(&mut state.applicant.id_number, members, |r| &r.applicant.id_number);
    fill(&mut state.applicant.kind, members, |r| &r.applicant.kind);
    fill(&mut state.applicant.phone, members, |r| &r.applicant.phone);
    fill(&mut state.applicant.email, members, |r| &r.applicant.email);
    fill(&mut state.channel, members, |r| &r.channel);
    let mut reference_codes: Vec<String> = Vec::new();
    for m in members {
        for c in m.record.all_codes() {
            if c != state.code && !reference_codes.iter().any(|r| r == c) {
                reference_codes.push(c.to_string());
            }
        }
    }
    let mut other_codes: Vec<String> =
        members.iter().map(|m| m.record.code.clone()).filter(|c| *c != state.code).collect();
    other_codes.sort();
    other_codes.dedup();
    state.reference_codes = reference_codes;
    let canonical = Canonical {
        portal_code: state.code.clone(),
        authority: (auth.record.source.clone(), auth.record.native_id.clone()),
        authority_reason: reason,
        state,
        other_codes,
    };
    match previous {
        Some(prev) if canonical.state.status.rank() < prev.rank() => {
            Some(MergeOutcome::Regression { from: prev, to: canonical.state.status, canonical })
        }
        _ => Some(MergeOutcome::Ok(canonical)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::record::{Procedure, SourceRecord};

    pub(crate) fn rec(source: &str, code: &str, received: &str, updated: &str, status: Status) -> SourceRecord {
        SourceRecord {
            source: source.into(),
            native_id: format!("{source}-{code}"),
            code: code.into(),
            reference_codes: vec![],
            procedure: Procedure {
                code: "1.001193".into(),
                name: Some("Đăng ký khai sinh".into()),
                sector_code: None,
                sector_name: None,
            },
            agency: Default::default(),
            applicant: Default::default(),
            channel: Some(2),
            submitted_at: None,
            received_at: Some(received.parse().unwrap()),
            due_at: Some("2026-03-20T10:00:00Z".parse().unwrap()),
            finished_at: None,
            returned_at: None,
            refused_at: None,
            updated_at: updated.parse().unwrap(),
            status,
            summary: None,
            supplements: vec![],
            steps: vec![],
            documents: vec![],
            results: vec![],
            fees: vec![],
            digitized: None,
            paid_online: None,
            vneid_verified: None,
        }
    }

    fn table() -> CutoverTable {
        toml::from_str("[[cutover]]\nsource = \"moj\"\nprocedure = \"*\"\ndate = \"2026-01-15\"\n").unwrap()
    }

    #[test]
    fn before_cutover_the_city_copy_rules_and_its_code_is_kept() {
        let city = rec("city", "C-1", "2026-01-10T02:00:00Z", "2026-01-20T02:00:00Z", Status::Finished);
        let mut moj = rec("moj", "M-1", "2026-01-16T02:00:00Z", "2026-01-21T02:00:00Z", Status::Received);
        moj.reference_codes = vec!["C-1".into()];
        let linked = crate::core::link::decide(&moj, None, &[crate::core::link::Candidate::of(1, &city)], None);
        assert_eq!(linked.moved, Some((LinkRule::Reference, Some(0))));
        let members =
            [Member { record: &city, kind: SystemKind::City }, Member { record: &moj, kind: SystemKind::Ministry }];
        let Some(MergeOutcome::Ok(c)) = merge(&members, &table(), None) else { panic!() };
        assert_eq!(c.portal_code, "C-1");
        assert_eq!(c.state.status, Status::Finished);
        assert_eq!(c.authority.0, "city");
        assert_eq!(c.other_codes, vec!["M-1".to_string()]);
        assert!(matches!(c.authority_reason, AuthorityReason::BeforeCutover { .. }));
    }

    #[test]
    fn after_cutover_the_ministry_copy_rules_but_the_first_code_stays() {
        let city = rec("city", "C-2", "2026-02-02T02:00:00Z", "2026-02-02T02:00:00Z", Status::Received);
        let mut moj = rec("moj", "M-2", "2026-02-03T02:00:00Z", "2026-02-10T02:00:00Z", Status::Processing);
        moj.reference_codes = vec!["C-2".into()];
        let members =
            [Member { record: &moj, kind: SystemKind::Ministry }, Member { record: &city, kind: SystemKind::City }];
        let Some(MergeOutcome::Ok(c)) = merge(&members, &table(), None) else { panic!() };
        assert_eq!(c.portal_code, "C-2");
        assert_eq!(c.state.status, Status::Processing);
        assert_eq!(c.state.received_at, city.received_at);
        assert!(matches!(c.authority_reason, AuthorityReason::AfterCutover { .. }));
    }

    #[test]
    fn an_end_state_never_regresses() {
        let city = rec("city", "C-3", "2026-02-02T02:00:00Z", "2026-02-05T02:00:00Z", Status::Processing);
        let members = [Member { record: &city, kind: SystemKind::City }];
        match merge(&members, &table(), Some(Status::Finished)) {
            Some(MergeOutcome::Regression { from, to, .. }) => {
                assert_eq!((from, to), (Status::Finished, Status::Processing));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(merge(&members, &table(), Some(Status::Received)), Some(MergeOutcome::Ok(_))));
    }

    #[test]
    fn a_missing_cutover_row_falls_back_and_says_so() {
        let city = rec("city", "C-4", "2026-02-02T02:00:00Z", "2026-02-02T02:00:00Z", Status::Received);
        let moj = rec("moj", "C-4", "2026-02-03T02:00:00Z", "2026-02-04T02:00:00Z", Status::Processing);
        let members =
            [Member { record: &city, kind: SystemKind::City }, Member { record: &moj, kind: SystemKind::Ministry }];
        let Some(MergeOutcome::Ok(c)) = merge(&members, &CutoverTable::default(), None) else { panic!() };
        assert_eq!(c.authority.0, "moj");
        assert!(matches!(c.authority_reason, AuthorityReason::NoCutoverRow { .. }));
        assert!(c.other_codes.is_empty(), "same code in both systems is one portal code");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        const SOURCES: [(&str, SystemKind); 3] =
            [("city", SystemKind::City), ("moj", SystemKind::Ministry), ("moc", SystemKind::Ministry)];

        /// A member: which system, which of three codes, receipt and update days, status, and
        /// fields some members lack (so that filling them from others is exercised).
        fn member() -> impl Strategy<Value = (usize, SourceRecord)> {
            (0usize..3, 0u8..3, 0i64..40, 0i64..40, 1u8..=10, proptest::option::of(0u8..3), any::<bool>()).prop_map(
                |(src, code, recv, upd, status, phone, named)| {
                    let day = |d: i64| {
                        (jiff::Timestamp::from_second(1_767_225_600).unwrap()
                            + jiff::SignedDuration::from_hours(24 * d))
                        .to_string()
                    };
                    let mut r = rec(
                        SOURCES[src].0,
                        &format!("K-{code}"),
                        &day(recv),
                        &day(recv + upd),
                        Status::from_code(status).unwrap_or(Status::Received),
                    );
                    r.applicant.phone = phone.map(|p| format!("09000000{p}"));
                    if !named {
                        r.procedure.name = None;
                    }
                    r.reference_codes = vec![format!("K-{}", (code + 1) % 3)];
                    (src, r)
                },
            )
        }

        fn case() -> impl Strategy<Value = Vec<(usize, SourceRecord)>> {
            prop::collection::vec(member(), 1..5).prop_map(|mut v| {
                // Native ids are unique within a system.
                for (i, (_, r)) in v.iter_mut().enumerate() {
                    r.native_id = format!("{}-{i}", r.source);
                }
                v
            })
        }

        fn members(v: &[(usize, SourceRecord)]) -> Vec<Member<'_>> {
            v.iter().map(|(s, r)| Member { record: r, kind: SOURCES[*s].1 }).collect()
        }

        proptest! {
            #[test]
            fn the_same_members_in_any_order_give_the_same_dossier(v in case(), seed in any::<u64>(), prev in proptest::option::of(1u8..=10)) {
                let previous = prev.and_then(Status::from_code);
                let a = merge(&members(&v), &table(), previous);
                let mut shuffled = v.clone();
                fastrand::Rng::with_seed(seed).shuffle(&mut shuffled);
                let b = merge(&members(&shuffled), &table(), previous);
                prop_assert_eq!(a, b);
            }

            #[test]
            fn a_dossier_never_moves_back_from_an_end_state(v in case(), prev in 1u8..=10) {
                let previous = Status::from_code(prev).unwrap_or(Status::Received);
                match merge(&members(&v), &table(), Some(previous)) {
                    Some(MergeOutcome::Ok(c)) => prop_assert!(c.state.status.rank() >= previous.rank()),
                    Some(MergeOutcome::Regression { from, to, .. }) => {
                        prop_assert_eq!(from, previous);
                        prop_assert!(to.rank() < previous.rank());
                    }
                    None => prop_assert!(false, "a case with members always merges"),
                }
            }
        }
    }
}
