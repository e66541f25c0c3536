//! Changes over time, the introspection and the expected truth.

use super::{
    city_moj::{moj_list, moj_token},
    *,
};

#[tokio::test]
async fn changes_happen_on_ticks_and_stop_when_paused() {
    let mut o = opts();
    o.tick = Duration::from_millis(40);
    let w = World::start(o).await.unwrap();
    let start = w.stats();
    tokio::time::timeout(Duration::from_secs(5), async {
        while w.stats().changes_made < 9 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the ticker makes changes");
    assert!(w.stats().city_records + w.stats().ministry_records >= start.city_records + start.ministry_records);

    w.pause_changes();
    let paused = w.stats();
    assert!(paused.paused);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(w.stats().changes_made, paused.changes_made, "no change while paused");

    let c = client();
    let r = c.post(format!("{}/_sim/resume", w.portal_url)).send().await.unwrap();
    assert!(r.status().is_success());
    tokio::time::timeout(Duration::from_secs(5), async {
        while w.stats().changes_made <= paused.changes_made {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("changes resume");
    w.shutdown().await;
}

#[tokio::test]
async fn a_round_stamps_every_change_with_the_same_second() {
    let w = World::start(opts()).await.unwrap();
    let made = w.change_now();
    assert!(made > 0);
    let up = w.shared.lock_upstream();
    let newest = up.latest_update().unwrap();
    assert_eq!(newest.subsec_nanosecond(), 0);
    let at_newest = Source::ALL.iter().flat_map(|&s| up.records(s)).filter(|r| r.updated_at() == newest).count();
    assert!(at_newest >= made as usize, "{at_newest} records at {newest}, {made} changes");
}

#[tokio::test]
async fn the_change_journal_names_each_changed_case_by_its_portal_code_and_new_status() {
    let w = World::start(opts()).await.unwrap();
    let before = w.now();
    let made: u32 = (0..5).map(|_| w.change_now()).sum();
    let journal = w.change_journal();
    assert_eq!(journal.len(), made as usize, "one entry per change");
    assert!(w.change_journal().is_empty(), "taking the journal empties it");
    let expected = w.expected_portal();
    for c in &journal {
        assert!(c.at >= before && c.at <= w.now(), "{c:?}: made in the rounds, to the instant");
        let e = expected.get(&c.code).unwrap_or_else(|| panic!("{c:?}: not a portal code"));
        assert_eq!(e.portal_code, c.code);
    }
    // A case's last change leaves the status the portal should show.
    let mut last = std::collections::BTreeMap::new();
    for c in &journal {
        last.insert(c.code.as_str(), c.status);
    }
    for (code, status) in last {
        assert_eq!(expected[code].status, status, "{code}");
    }
}

#[tokio::test]
async fn expected_truth_follows_the_authority_rule_for_every_ministrys_pairs() {
    let w = World::start(opts()).await.unwrap();
    let expected = w.expected_portal();
    let city = good_records(&w, Source::City);
    let cutovers: std::collections::BTreeMap<String, jiff::civil::Date> = w
        .cutovers()
        .into_iter()
        .map(|(s, p, d)| (s, (p, d)))
        .map(|(s, (p, d))| {
            assert_eq!(p, "*");
            (s, d)
        })
        .collect();
    assert_eq!(cutovers.len(), 5);
    let mut cases = city.len();
    for ministry in Source::ALL.into_iter().filter(|s| s.is_ministry()) {
        let records = good_records(&w, ministry);
        let cutover = cutovers[ministry.name()];
        let migrated: Vec<_> = records.iter().filter(|m| city.iter().any(|c| c.code == m.code)).collect();
        let transferred: Vec<_> = records.iter().filter(|m| m.ref_code.is_some()).collect();
        assert!(migrated.len() >= 2 && transferred.len() >= 2, "{}: pairs of both kinds", ministry.name());
        // One entry per case: every record is in exactly one case, pairs count once.
        cases += records.len() - migrated.len() - transferred.len();

        for m in &migrated {
            // (a) received before the cutover: one code, the city's copy rules.
            let c = city.iter().find(|c| c.code == m.code).unwrap();
            assert!(c.received_at.to_zoned_datetime(crate::clock::vn_tz()).date() < cutover);
            let e = &expected[&m.code];
            assert_eq!(e.portal_code, m.code);
            assert_eq!(e.member_codes, std::slice::from_ref(&m.code));
            assert_eq!(e.duplication, Some(crate::sim::Duplication::Migrated));
            assert_eq!(e.status, c.status);
            assert_eq!(e.ended_at, c.ended_at());
            assert_eq!(m.updated_at, m.steps.last().unwrap().at, "the migrated copy is stale");
        }
        for m in &transferred {
            // (b) received at a city desk after the cutover: the city code is the portal's, the
            // ministry's copy rules.
            let city_code = m.ref_code.clone().unwrap();
            let c = city.iter().find(|c| c.code == city_code).unwrap();
            assert!(m.received_at.to_zoned_datetime(crate::clock::vn_tz()).date() >= cutover);
            let e = &expected[&city_code];
            assert_eq!(e.portal_code, city_code, "{}", ministry.name());
            let mut members = vec![city_code.clone(), m.code.clone()];
            members.sort();
            assert_eq!(e.member_codes, members);
            assert_eq!(e.duplication, Some(crate::sim::Duplication::Transferred));
            assert_eq!(e.status, m.status);
            assert_eq!(e.due_at, m.due_at);
            assert_eq!(e.received_at, c.received_at);
            assert!(!expected.contains_key(&m.code));
        }
    }
    assert_eq!(expected.len(), cases);
    let quarantine = w.expected_quarantine();
    assert_eq!(quarantine.len(), 6);
    assert!(quarantine.iter().all(|(_, id)| !expected.contains_key(id)));
    w.shutdown().await;
}

#[tokio::test]
async fn new_transfer_pairs_advance_only_on_the_ministry_side() {
    let mut o = opts();
    o.changes_per_tick = 1;
    o.malformed_every = None;
    let w = World::start(o).await.unwrap();
    for ministry in Source::ALL.into_iter().filter(|s| s.is_ministry()) {
        let before = w.expected_portal();
        {
            let mut up = w.shared.lock_upstream();
            up.tuning.new_rate = 1.0;
            up.tuning.transfer_rate = 1.0;
            // Every procedure centralised by this ministry, so the new dossier goes to it (as a pair).
            for p in &mut up.catalogue.procedures {
                p.owner = Some(ministry.name().to_owned());
            }
        }
        assert_eq!(w.change_now(), 1);
        let after = w.expected_portal();
        let new: Vec<_> = after.values().filter(|e| !before.contains_key(&e.portal_code)).collect();
        assert_eq!(new.len(), 1);
        let pair = new[0].clone();
        assert_eq!(pair.member_codes.len(), 2);
        assert!(pair.portal_code.starts_with("H26."), "the city desk's code: {}", pair.portal_code);
        let (prefix, _) = ministry.code_shape().unwrap();
        assert!(pair.member_codes.iter().any(|c| c.starts_with(prefix)), "{:?}", pair.member_codes);
        assert_eq!(pair.status, 2);

        w.shared.lock_upstream().tuning.new_rate = 0.0;
        let moved = (0..400).find_map(|_| {
            w.change_now();
            let e = w.expected_portal()[&pair.portal_code].clone();
            (e.status != 2).then_some(e)
        });
        let moved = moved.expect("the pair's ministry copy advances eventually");
        let city_copy = good_records(&w, Source::City).into_iter().find(|d| d.code == pair.portal_code).unwrap();
        assert_eq!(city_copy.status, 2, "the city desk's copy is stale");
        let ministry_copy =
            good_records(&w, ministry).into_iter().find(|d| d.ref_code.as_deref() == Some(&pair.portal_code)).unwrap();
        assert_eq!(moved.status, ministry_copy.status);
    }
    w.shutdown().await;
}

#[tokio::test]
async fn malformed_records_are_injected_in_every_system_and_served_raw() {
    let mut o = opts();
    o.malformed_every = Some(1);
    let w = World::start(o).await.unwrap();
    w.shared.lock_upstream().tuning.new_rate = 1.0;
    while w.stats().malformed_injected < 12 {
        w.change_now();
    }
    let quarantine = w.expected_quarantine();
    for s in Source::ALL {
        let n = quarantine.iter().filter(|(name, _)| name == s.name()).count();
        assert!(n >= 3, "{}: {n} malformed records", s.name());
    }
    let c = client();
    let (_, body) = moj_token(&c, &w, "bridge-secret").await;
    let token = body["access_token"].as_str().unwrap();
    let (_, body) = moj_list(&c, &w, token, &[("soBanGhi", "1000")]).await;
    let moj_ids: Vec<String> = body["duLieu"]["danhSach"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["ngayTiepNhan"].as_str().is_some_and(|s| s.contains("-02-31")) || r["trangThai"] == "CHO_PHE_DUYET"
        })
        .map(|r| r["hoSoId"].to_string())
        .collect();
    let expected_moj: Vec<String> = quarantine.iter().filter(|(s, _)| s == "moj").map(|(_, id)| id.clone()).collect();
    assert_eq!(moj_ids, expected_moj);
    // Each served raw: the dialect's own parser refuses every one of them.
    for s in Source::ALL {
        for r in w.shared.lock_upstream().records(s) {
            if let super::super::world::Record::Malformed(m) = r {
                assert!(matches!(super::super::world::parse(s, &m.raw), Ok(Err(_))), "{} {}", s.name(), m.native_id);
            }
        }
    }
    w.shutdown().await;
}

#[tokio::test]
async fn introspection_over_http_matches_the_api() {
    let w = World::start(opts()).await.unwrap();
    let c = client();
    let get = |path: &str| c.get(format!("{}/_sim/{path}", w.portal_url)).send();
    let expected: std::collections::BTreeMap<String, crate::sim::ExpectedDossier> =
        get("expected").await.unwrap().json().await.unwrap();
    assert_eq!(expected, w.expected_portal());
    let quarantine: Vec<(String, String)> = get("quarantine").await.unwrap().json().await.unwrap();
    assert_eq!(quarantine, w.expected_quarantine());
    let stats: crate::sim::SimStats = get("stats").await.unwrap().json().await.unwrap();
    assert_eq!(stats, w.stats());
    let portal: std::collections::BTreeMap<String, crate::sim::PortalCopy> =
        get("portal").await.unwrap().json().await.unwrap();
    assert!(portal.is_empty());
    c.post(format!("{}/_sim/pause", w.portal_url)).send().await.unwrap();
    assert!(w.stats().paused);
    w.shutdown().await;
}

#[tokio::test]
async fn a_clock_before_the_fixtures_is_refused() {
    let mut o = opts();
    o.clock = SimClock::starting_now(t("2026-01-01T00:00:00Z"), 1.0);
    let err = World::start(o).await.unwrap_err().to_string();
    assert!(err.contains("before the fixtures' last recorded change"), "{err}");
}

#[tokio::test]
async fn reentered_pairs_share_only_procedure_and_applicant_and_the_ministry_copy_rules() {
    const PROCEDURE: &str = "1.000894";
    let w = World::start(opts()).await.unwrap();
    let codes = w.reenter(PROCEDURE, 3).unwrap();
    assert_eq!(codes.len(), 3);
    let now = w.now();
    let expected = w.expected_portal();
    let city = good_records(&w, Source::City);
    let moj = good_records(&w, Source::Moj);
    for code in &codes {
        let e = &expected[code];
        assert_eq!(e.duplication, Some(crate::sim::Duplication::Reentered), "{code}");
        let [desk, copy] = [false, true].map(|auth| e.members.iter().find(|m| m.authoritative == auth).unwrap());
        assert_eq!((desk.system.as_str(), copy.system.as_str()), ("city", "moj"), "the ministry's copy rules");
        let desk = city.iter().find(|d| d.native_id == desk.native_id).unwrap();
        let copy = moj.iter().find(|d| d.native_id == copy.native_id).unwrap();
        assert_eq!(e.portal_code, desk.code, "the desk received it first");
        assert_ne!(desk.code, copy.code);
        assert_eq!((desk.ref_code.as_deref(), copy.ref_code.as_deref()), (None, None));
        assert_eq!(desk.applicant, copy.applicant);
        assert_eq!((desk.procedure.code.as_str(), copy.procedure.code.as_str()), (PROCEDURE, PROCEDURE));
        // The stale desk copy would show late on its own; the case, judged on the ministry's copy, does not.
        assert_eq!(desk.status, 2);
        assert!(desk.due_at < now, "{code}: the desk copy is past due");
        assert!(super::super::model::is_end(copy.status) && copy.updated_at < now, "{code}: ended before now");
        assert_eq!(e.status, copy.status);
        assert!(!e.late, "{code}: ended on time");
    }
    // From now on nobody files the procedure twice: every new dossier of it has a new applicant.
    {
        let mut up = w.shared.lock_upstream();
        up.tuning.new_rate = 1.0;
        for p in &mut up.catalogue.procedures {
            p.weight = u32::from(p.code == PROCEDURE);
        }
    }
    for _ in 0..10 {
        w.change_now();
    }
    let mut applicants: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for e in w.expected_portal().values().filter(|e| e.procedure_code == PROCEDURE) {
        for m in &e.members {
            let system = Source::from_name(&m.system).unwrap();
            let d = good_records(&w, system).into_iter().find(|d| d.native_id == m.native_id).unwrap();
            let case = applicants.entry(d.applicant.id_number).or_insert_with(|| e.portal_code.clone());
            assert_eq!(*case, e.portal_code, "one applicant in two cases of {PROCEDURE}");
        }
    }
    assert!(applicants.len() >= 3 + 10, "{} applicants", applicants.len());
    let err = w.reenter("1.001193", 1).unwrap_err().to_string();
    assert!(err.contains("one applicant in two cases"), "{err}");
    let err = w.reenter("2.000633", 1).unwrap_err().to_string();
    assert!(err.contains("the city's own"), "{err}");
    w.shutdown().await;
}
