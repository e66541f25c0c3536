//! A case that dual running put in two systems reaches the portal as one live dossier, whichever
//! way it got there (`architecture.md`, "Identity during dual running"): one test per link rule,
//! and one where the city's copies are seen only after the ministries' were pushed.
//!
//! Each test runs the same scenario through the simulated world and the real daemon: the recorded
//! history (copies migrated at a cutover, dossiers transferred from a city desk), a few dossiers
//! re-entered by hand into ministry systems (only the applicant links them), and the world changing
//! while the bridge syncs. Once the portal matches the sources, every case of the test's rule must
//! show exactly one live code, the authoritative member's status, the lateness the authoritative
//! member's own times give, and in the store the rule that linked its members.

mod support;

use std::{collections::BTreeMap, process::Child, time::Duration};

use dvc_bridge::sim::{Duplication, ExpectedDossier, PortalCopy};
use jiff::Timestamp;
use support::Harness;

/// Centralised procedures whose ministries re-enter city dossiers by hand, one per ministry
/// dialect (moj, mof, mps): the bridge is configured to link exactly these by identity.
const IDENTITY_PROCEDURES: [&str; 3] = ["1.000894", "2.001610", "1.013151"];
const REENTERED_PER_PROCEDURE: usize = 2;

/// Kills the daemon when a test ends early, so that a failed assertion leaves no process behind.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// How the daemon first meets the world.
#[derive(Clone, Copy, PartialEq)]
enum Start {
    /// Every source polled from the start, as in production.
    Together,
    /// The city polled only once the ministries' copies are on the portal: a case's code changes
    /// to the city copy's (received first) after another code was pushed, which must be closed.
    CityLast,
}

/// The scenario once the portal matched the sources (or the time limit passed) and the daemon
/// stopped.
struct Outcome {
    h: Harness,
    expected: BTreeMap<String, ExpectedDossier>,
    portal: BTreeMap<String, PortalCopy>,
    now: Timestamp,
    /// Where the portal still differs from the sources, all rules together (empty: in sync).
    unsettled: Vec<String>,
}

async fn run_scenario(start: Start) -> Outcome {
    let h = Harness::start(Duration::from_millis(150)).await;
    for procedure in IDENTITY_PROCEDURES {
        let codes = h.world.reenter(procedure, REENTERED_PER_PROCEDURE).expect("re-entered pairs");
        assert_eq!(codes.len(), REENTERED_PER_PROCEDURE, "{procedure}: {codes:?}");
    }
    h.enable_identity_linking(&IDENTITY_PROCEDURES, 72);
    if start == Start::CityLast {
        enable_city(&h, false);
    }
    let mut daemon = Daemon(h.spawn_daemon(0));
    if start == Start::CityLast {
        let ministry_codes: Vec<String> = h
            .world
            .expected_portal()
            .values()
            .flat_map(|e| e.members.iter().filter(|m| m.system != "city").map(|m| m.code.clone()))
            .collect();
        wait_until_on_portal(&h, &ministry_codes, Duration::from_secs(60)).await;
        enable_city(&h, true);
        support::kill("-HUP", daemon.0.id());
    }
    // Let the world change under the daemon (new transfers, steps of authoritative members), then
    // freeze it and let the bridge catch up. A rule the bridge gets wrong keeps the portal from
    // matching: then each test still reports only what is wrong with its own rule's cases.
    tokio::time::sleep(Duration::from_secs(4)).await;
    h.world.pause_changes();
    let unsettled = h.settle(Duration::from_secs(60)).await;
    let expected = h.world.expected_portal();
    let portal = h.world.portal_snapshot();
    let now = h.world.now();
    support::kill("-TERM", daemon.0.id());
    let status = tokio::task::block_in_place(|| daemon.0.wait()).expect("wait for the daemon");
    assert!(status.success(), "daemon exit {status:?}\n{}", support::tail(&h.daemon_logs(), 30));
    Outcome { h, expected, portal, now, unsettled }
}

/// Turns the city source on or off in the configuration (read at start and on SIGHUP).
fn enable_city(h: &Harness, enabled: bool) {
    h.edit_config(|doc| {
        let sources = doc.get_mut("sources").and_then(|s| s.as_array_mut()).expect("[[sources]]");
        let city = sources.iter_mut().filter_map(|s| s.as_table_mut()).find(|s| s["name"].as_str() == Some("city"));
        city.expect("a city source").insert("enabled".into(), enabled.into());
    });
}

/// Waits until every one of `codes` is on the portal.
async fn wait_until_on_portal(h: &Harness, codes: &[String], limit: Duration) {
    let t0 = std::time::Instant::now();
    loop {
        let portal = h.world.portal_snapshot();
        let missing: Vec<&String> = codes.iter().filter(|c| !portal.contains_key(*c)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            t0.elapsed() < limit,
            "{} of {} codes never reached the portal, e.g. {:?}\n{}",
            missing.len(),
            codes.len(),
            &missing[..missing.len().min(5)],
            support::tail(&h.daemon_logs(), 30)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// End states of the portal's vocabulary.
fn is_end(status: u8) -> bool {
    matches!(status, 3 | 7 | 8 | 9 | 10)
}

/// How each rule's pairs came about, and what must come of them.
struct Rule {
    duplication: Duplication,
    /// `source_records.link_rule` of the member linked second.
    link_rule: &'static str,
    /// Whose copy is authoritative: `"city"`, or `"ministry"` (any ministry system).
    authority: &'static str,
    /// The fewest cases of the rule the scenario must hold for the test to prove anything.
    at_least: usize,
}

/// Migrated at the cutover, received before it: the city's copy rules.
const SAME_CODE: Rule =
    Rule { duplication: Duplication::Migrated, link_rule: "same_code", authority: "city", at_least: 15 };
/// Transferred from a city desk after the cutover: the ministry's copy rules.
const REFERENCE: Rule =
    Rule { duplication: Duplication::Transferred, link_rule: "reference", authority: "ministry", at_least: 30 };
/// Re-entered by hand after the cutover: the ministry's copy rules.
const IDENTITY: Rule = Rule {
    duplication: Duplication::Reentered,
    link_rule: "identity",
    authority: "ministry",
    at_least: IDENTITY_PROCEDURES.len() * REENTERED_PER_PROCEDURE,
};

/// Everything wrong with the cases of `rule` (empty: nothing).
fn rule_problems(o: &Outcome, rule: &Rule) -> Vec<String> {
    let name = rule.link_rule;
    let cases: Vec<&ExpectedDossier> =
        o.expected.values().filter(|e| e.duplication == Some(rule.duplication)).collect();
    if cases.len() < rule.at_least {
        return vec![format!(
            "the scenario must hold at least {} cases linked by {name} (found {})",
            rule.at_least,
            cases.len()
        )];
    }
    let mut out = Vec::new();
    // The checks only bite if a wrong choice would show: some stale member open, past due and in
    // another status than the authoritative one, in a case that is not late.
    let telling = cases.iter().any(|e| {
        !e.late
            && e.members
                .iter()
                .any(|m| !m.authoritative && !is_end(m.status) && m.due_at < o.now && m.status != e.status)
    });
    if !telling {
        out.push(format!("{name}: no case has a stale member that showing would have made wrong and late"));
    }
    let wrong: Vec<Vec<String>> = cases.iter().map(|e| case_problems(o, rule, e)).filter(|p| !p.is_empty()).collect();
    if !wrong.is_empty() {
        out.push(format!("{} of {} cases linked by {name} are wrong:", wrong.len(), cases.len()));
        out.extend(wrong.concat());
    }
    out
}

/// Panics with every problem in `problems`, and what the portal and the daemon say beside them.
fn assert_none(o: &Outcome, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{}\n\n(the portal still differed from the sources in {} ways, all rules together; first ones:\n{})\n\n\
         daemon logs:\n{}",
        problems.join("\n"),
        o.unsettled.len(),
        o.unsettled.iter().take(10).cloned().collect::<Vec<_>>().join("\n"),
        support::tail(&o.h.daemon_logs(), 30)
    );
}

/// What is wrong with one case, on the portal and in the store (empty: nothing).
fn case_problems(o: &Outcome, rule: &Rule, e: &ExpectedDossier) -> Vec<String> {
    let code = &e.portal_code;
    let mut out = Vec::new();
    let Some(auth) = e.members.iter().find(|m| m.authoritative) else {
        return vec![format!("{code}: the world names no authoritative member")];
    };
    let authority = if auth.system == "city" { "city" } else { "ministry" };
    if authority != rule.authority || e.members.len() != 2 {
        out.push(format!(
            "{code}: expected a city and a ministry member, the {} one authoritative; the world says {:?}",
            rule.authority, e.members
        ));
    }

    // One live code: the case's, created once; every other member's code absent or closed.
    match o.portal.get(code) {
        None => out.push(format!("{code}: missing on the portal")),
        Some(copy) => {
            if !copy.live || copy.creates != 1 {
                out.push(format!("{code}: live {} and created {} times on the portal", copy.live, copy.creates));
            }
            let shown = copy.dossier["TrangThaiHoSo"].as_str().and_then(|s| s.parse::<u8>().ok());
            if shown != Some(auth.status) {
                out.push(format!(
                    "{code}: the portal shows status {shown:?}, the authoritative {} member {} has {}",
                    auth.system, auth.native_id, auth.status
                ));
            }
            if copy.late != e.late {
                let (shown, says) = if copy.late { ("late", "on time") } else { ("on time", "late") };
                out.push(format!(
                    "{code}: the portal shows it {shown}, the authoritative {} member {} says {says} (due {}, ended \
                     {:?}, status {})",
                    auth.system, auth.native_id, e.due_at, e.ended_at, auth.status
                ));
            }
        }
    }
    // Whatever else still differs for the case's codes (times, a second create, …).
    for member in &e.member_codes {
        let prefix = format!("{member}: ");
        out.extend(o.unsettled.iter().filter(|m| m.starts_with(&prefix)).cloned());
    }
    for other in e.member_codes.iter().filter(|c| *c != code) {
        if o.portal.get(other).is_some_and(|c| c.live) {
            out.push(format!("{code}: the member code {other} is live on the portal too"));
        }
    }

    // In the store: all members in one case under the portal code, one of them linked by the rule.
    let db = o.h.reader();
    let mut rows = Vec::new();
    for m in &e.members {
        let row = db.query_row(
            "SELECT r.link_rule, d.portal_code FROM source_records r JOIN dossiers d ON d.id = r.dossier_id
             WHERE r.source = ?1 AND r.native_id = ?2",
            [&m.system, &m.native_id],
            |r| Ok((r.get::<_, Option<String>>(0)?, r.get::<_, String>(1)?)),
        );
        match row {
            Ok(row) => rows.push(row),
            Err(err) => {
                out.push(format!("{code}: member {}/{} not in a case in the store: {err}", m.system, m.native_id))
            }
        }
    }
    let mut rules: Vec<&str> = rows.iter().map(|(r, _)| r.as_deref().unwrap_or("none")).collect();
    rules.sort_unstable();
    let mut want = vec!["first", rule.link_rule];
    want.sort_unstable();
    if rows.len() == e.members.len() && rules != want {
        out.push(format!("{code}: members linked by {rules:?}, expected {want:?}"));
    }
    if let Some((_, other)) = rows.iter().find(|(_, case)| case != code) {
        out.push(format!("{code}: a member is in the store's case {other}"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_migrated_with_the_city_code_is_one_live_dossier_with_the_city_status() {
    let o = run_scenario(Start::Together).await;
    assert_none(&o, &rule_problems(&o, &SAME_CODE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_naming_the_city_code_is_one_live_dossier_with_the_ministry_status() {
    let o = run_scenario(Start::Together).await;
    assert_none(&o, &rule_problems(&o, &REFERENCE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_reentered_for_the_same_applicant_is_one_live_dossier_with_the_ministry_status() {
    let o = run_scenario(Start::Together).await;
    assert_none(&o, &rule_problems(&o, &IDENTITY));
}

/// The city's copies seen only after the ministries' were pushed: every rule still ends with one
/// live code per case, and where the city's code takes over, the code pushed first is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_city_copy_seen_after_its_ministry_copy_was_pushed_takes_the_case_over() {
    let o = run_scenario(Start::CityLast).await;
    let mut problems: Vec<String> =
        [SAME_CODE, REFERENCE, IDENTITY].iter().flat_map(|r| rule_problems(&o, r)).collect();
    for rule in [REFERENCE, IDENTITY] {
        let closed = o
            .expected
            .values()
            .filter(|e| e.duplication == Some(rule.duplication))
            .filter(|e| e.member_codes.iter().any(|c| *c != e.portal_code && o.portal.get(c).is_some_and(|p| !p.live)))
            .count();
        if closed < rule.at_least {
            problems.push(format!(
                "{}: {closed} cases had the ministry code pushed first closed on the portal, expected at least {}",
                rule.link_rule, rule.at_least
            ));
        }
    }
    assert_none(&o, &problems);
}
