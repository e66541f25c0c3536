//! Linking: which case a record belongs to, decided from the stored records that share a code or an
//! identity with it.
//!
//! Pure. The store gathers the candidates through its code index (`record_codes`: each record's own
//! code, the codes it references, and its identity pseudo-code where enabled) and carries the
//! decision out. The rules, and why links are stable:
//! - a candidate counts when it shares a code with the record, or (identity linking) its filed
//!   identity and a receipt within the window; never the record itself, never a pair an operator
//!   split apart;
//! - the record's case is the oldest (smallest id) of its current case and the candidates' cases,
//!   and every other of those cases is joined into it. Cases are only ever joined into the oldest,
//!   so a record's case id can only go down: a link never flips back and forth as records update.

use jiff::Timestamp;

use super::identity::IdentityLinking;
use super::merge::LinkRule;
use super::record::SourceRecord;

/// A stored record found through one of the record's codes or its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The case it is in.
    pub case: i64,
    pub source: String,
    pub native_id: String,
    /// Its own code.
    pub code: String,
    pub received_at: Option<Timestamp>,
    /// Found through the identity pseudo-code, not a shared code.
    pub by_identity: bool,
    /// An operator split this pair apart (`dvc-bridge split`): never linked again.
    pub split: bool,
}

impl Candidate {
    /// A stored record of case `case`, found through a shared code.
    pub fn of(case: i64, r: &SourceRecord) -> Candidate {
        Candidate {
            case,
            source: r.source.clone(),
            native_id: r.native_id.clone(),
            code: r.code.clone(),
            received_at: r.arrived_at(),
            by_identity: false,
            split: false,
        }
    }
}

/// What to do with the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The case it belongs to; `None`: it starts a case of its own.
    pub case: Option<i64>,
    /// When it moves into `case` (a new record, or a stored one whose case is joined into
    /// another): the rule and the candidate that brought it there (an index into the candidates;
    /// `None` for a case of its own).
    pub moved: Option<(LinkRule, Option<usize>)>,
    /// Other cases the record shows to be the same one: joined into `case`.
    pub join: Vec<i64>,
}

/// Whether a candidate counts as the same case as `record`.
fn counts(record: &SourceRecord, c: &Candidate, identity: Option<&IdentityLinking>) -> bool {
    let itself = c.source == record.source && c.native_id == record.native_id;
    let in_window = !c.by_identity || identity.is_some_and(|l| l.within_window(record.arrived_at(), c.received_at));
    !itself && !c.split && in_window
}

/// The rule a counted candidate links by.
fn rule(record: &SourceRecord, c: &Candidate) -> LinkRule {
    if c.by_identity {
        LinkRule::Identity
    } else if c.code == record.code {
        LinkRule::SameCode
    } else {
        LinkRule::Reference
    }
}

/// Decide `record`'s case. `current`: the case it is in (`None` for a new record). A candidate found
/// both by a code and by identity should be listed by code first: the first listing of a stored
/// record is the one its rule is read from.
pub fn decide(
    record: &SourceRecord,
    current: Option<i64>,
    candidates: &[Candidate],
    identity: Option<&IdentityLinking>,
) -> Decision {
    let counted: Vec<usize> = (0..candidates.len()).filter(|&i| counts(record, &candidates[i], identity)).collect();
    let target = counted.iter().map(|&i| candidates[i].case).chain(current).min();
    let Some(target) = target else {
        return Decision { case: None, moved: Some((LinkRule::First, None)), join: Vec::new() };
    };
    let moved = (current != Some(target)).then(|| {
        // The target is not the current case, so a counted candidate brought it.
        let via = counted.iter().copied().find(|&i| candidates[i].case == target);
        (via.map_or(LinkRule::First, |i| rule(record, &candidates[i])), via)
    });
    let mut join: Vec<i64> =
        counted.iter().map(|&i| candidates[i].case).chain(current).filter(|&c| c != target).collect();
    join.sort_unstable();
    join.dedup();
    Decision { case: Some(target), moved, join }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::core::merge::tests::rec;
    use crate::core::status::Status;

    fn cand(case: i64, source: &str, code: &str) -> Candidate {
        Candidate {
            case,
            source: source.into(),
            native_id: format!("{source}-{code}"),
            code: code.into(),
            received_at: Some("2026-02-01T02:00:00Z".parse().unwrap()),
            by_identity: false,
            split: false,
        }
    }

    fn record() -> SourceRecord {
        rec("moj", "BTP-1", "2026-02-01T03:00:00Z", "2026-02-01T03:00:00Z", Status::Received)
    }

    #[test]
    fn a_record_nothing_shares_a_code_with_starts_a_case() {
        let d = decide(&record(), None, &[], None);
        assert_eq!(d, Decision { case: None, moved: Some((LinkRule::First, None)), join: vec![] });
        // Stored already, still alone: it stays where it is.
        let d = decide(&record(), Some(4), &[], None);
        assert_eq!(d, Decision { case: Some(4), moved: None, join: vec![] });
    }

    #[test]
    fn the_rule_is_read_from_the_candidate_that_brought_the_record() {
        let r = record();
        let d = decide(&r, None, &[cand(3, "city", "BTP-1")], None);
        assert_eq!(d.moved, Some((LinkRule::SameCode, Some(0))));
        let d = decide(&r, None, &[cand(3, "city", "H26-1")], None);
        assert_eq!(d.moved, Some((LinkRule::Reference, Some(0))));
    }

    #[test]
    fn a_record_joining_two_cases_goes_to_the_oldest_and_the_other_is_joined() {
        let d = decide(&record(), Some(9), &[cand(5, "city", "H26-1"), cand(7, "mps", "BCA-1")], None);
        assert_eq!(d, Decision { case: Some(5), moved: Some((LinkRule::Reference, Some(0))), join: vec![7, 9] });
    }

    #[test]
    fn itself_a_split_pair_and_an_identity_outside_the_window_do_not_count() {
        let r = record();
        let mut own = cand(2, "moj", "BTP-1");
        own.native_id = r.native_id.clone();
        let mut split = cand(3, "city", "BTP-1");
        split.split = true;
        let linking = IdentityLinking::new(b"k", vec!["*".into()], jiff::SignedDuration::from_hours(72));
        let mut far = cand(4, "city", "H26-9");
        far.by_identity = true;
        far.received_at = Some("2026-01-01T02:00:00Z".parse().unwrap());
        let d = decide(&r, Some(8), &[own, split, far.clone()], Some(&linking));
        assert_eq!(d, Decision { case: Some(8), moved: None, join: vec![] });
        // Within the window it links, by identity.
        far.received_at = Some("2026-01-31T02:00:00Z".parse().unwrap());
        let d = decide(&r, Some(8), &[far.clone()], Some(&linking));
        assert_eq!(d, Decision { case: Some(4), moved: Some((LinkRule::Identity, Some(0))), join: vec![8] });
        // With identity linking off, an identity candidate never counts.
        assert_eq!(decide(&r, Some(8), &[far], None).case, Some(8));
    }

    fn candidates() -> impl Strategy<Value = Vec<Candidate>> {
        prop::collection::vec(
            (1i64..8, 0usize..3, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
                |(case, source, same_code, by_identity, split)| {
                    let source = ["city", "mps", "mof"][source];
                    let mut c = cand(case, source, if same_code { "BTP-1" } else { "X" });
                    c.native_id = format!("{source}-{case}");
                    c.by_identity = by_identity;
                    c.split = split;
                    c
                },
            ),
            0..8,
        )
    }

    proptest! {
        /// Links are stable: once the decision is carried out (the record in its case, the other
        /// cases joined into it), deciding again moves nothing and joins nothing; and a record's
        /// case only ever goes to a smaller id, so it never flips back.
        #[test]
        fn a_carried_out_decision_is_a_fixed_point_and_cases_only_go_down(
            cands in candidates(),
            current in prop::option::of(1i64..8),
        ) {
            let r = record();
            let linking = IdentityLinking::new(b"k", vec!["*".into()], jiff::SignedDuration::from_hours(72));
            let d = decide(&r, current, &cands, Some(&linking));
            if let (Some(now), Some(before)) = (d.case, current) {
                prop_assert!(now <= before);
            }
            let Some(case) = d.case else {
                prop_assert!(cands.iter().all(|c| !counts(&r, c, Some(&linking))));
                return Ok(());
            };
            let after: Vec<Candidate> = cands
                .iter()
                .cloned()
                .map(|mut c| {
                    if d.join.contains(&c.case) {
                        c.case = case;
                    }
                    c
                })
                .collect();
            let again = decide(&r, Some(case), &after, Some(&linking));
            prop_assert_eq!(again, Decision { case: Some(case), moved: None, join: vec![] });
        }

        /// The candidates' order changes nothing but which of two candidates of the target case
        /// names the rule.
        #[test]
        fn the_case_and_the_joins_do_not_depend_on_the_candidates_order(
            cands in candidates(),
            current in prop::option::of(1i64..8),
        ) {
            let r = record();
            let mut reversed = cands.clone();
            reversed.reverse();
            let (a, b) = (decide(&r, current, &cands, None), decide(&r, current, &reversed, None));
            prop_assert_eq!(a.case, b.case);
            prop_assert_eq!(a.join, b.join);
            prop_assert_eq!(a.moved.is_some(), b.moved.is_some());
        }
    }
}
