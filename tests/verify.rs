//! The verify sweep through the real daemon: dossiers are read back from the simulated portal
//! (`TraCuuHoSo`) and compared with what the sources say.
//!
//! One world, two kinds of source. The Ministry of Public Security's system writes its own
//! dossiers to the portal (`portal_mode = "verify"`), leaving some out and writing some stale; the
//! others are pushed by the bridge. The sweep must report the ministry's faults without ever
//! writing its dossiers, and must find and repair a pushed dossier altered or removed on the
//! portal behind the bridge's back.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use dvc_bridge::cli::demo::BridgeTuning;
use dvc_bridge::sim::{Faults, SelfSync, SelfSynced};
use serde_json::Value;
use support::{Harness, tail};

/// The system that syncs itself.
const SELF_SYNCING: &str = "mps";

/// Verify settings for a 60× clock: a round every real second, every dossier read back every 15
/// real seconds, a source given one real second to sync itself.
fn configure(h: &Harness) {
    let text = std::fs::read_to_string(&h.config).expect("read the configuration");
    let mut doc: toml::Table = toml::from_str(&text).expect("the configuration is TOML");
    let table = |pairs: &[(&str, toml::Value)]| {
        toml::Value::Table(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    };
    doc.insert(
        "verify".into(),
        table(&[
            ("enabled", true.into()),
            ("recent_interval_secs", 60.into()),
            ("full_cycle_hours", 0.25.into()),
            ("source_grace_secs", 60.into()),
            ("rate_per_sec", 25.into()),
        ]),
    );
    doc["portal"].as_table_mut().expect("[portal]").insert("rate_limit_per_sec".into(), 60.into());
    for source in doc["sources"].as_array_mut().expect("[[sources]]") {
        let source = source.as_table_mut().expect("a [[sources]] table");
        if source["name"].as_str() == Some(SELF_SYNCING) {
            source.insert("portal_mode".into(), "verify".into());
        }
    }
    std::fs::write(&h.config, toml::to_string(&doc).expect("TOML")).expect("write the configuration");
}

/// `(dossier, kind, message, details)` of the sync log's `verify.*` entries.
fn verify_log(h: &Harness) -> Vec<(String, String, String, Value)> {
    let c = dvc_bridge::store::open_reader(&h.db()).expect("open the store");
    let mut stmt = c
        .prepare("SELECT dossier, kind, message, details FROM sync_log WHERE kind LIKE 'verify.%' ORDER BY seq")
        .expect("query");
    stmt.query_map([], |r| {
        let details: Option<String> = r.get(3)?;
        Ok((
            r.get::<_, Option<String>>(0)?.unwrap_or_default(),
            r.get(1)?,
            r.get(2)?,
            details.and_then(|d| serde_json::from_str(&d).ok()).unwrap_or(Value::Null),
        ))
    })
    .expect("rows")
    .collect::<Result<_, _>>()
    .expect("rows")
}

/// Wait until `done` holds, or panic with `what` and the daemon's logs.
async fn wait_until(h: &Harness, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < limit, "{what} not within {limit:?}\n{}", tail(&h.daemon_logs(), 40));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the portal shows wrong about `codes` (empty: as the sources say).
fn mismatches_of(h: &Harness, codes: &BTreeSet<String>) -> Vec<String> {
    h.mismatches().into_iter().filter(|m| codes.iter().any(|c| m.starts_with(&format!("{c}:")))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_repairs_what_the_bridge_writes_and_only_reports_what_a_source_writes_itself() {
    let h = Harness::start_shaped(Duration::ZERO, BridgeTuning::default(), |o| {
        o.self_sync.insert(SELF_SYNCING.into(), SelfSync { missing: 0.15, stale: 0.25 });
        // Some of the ministry's cases were received at a city desk and transferred: a city
        // record seen before its ministry record is the city's dossier, which the bridge writes.
        // The city answers slowly so that the ministry's records are in first, and "never
        // written" is about the sweep, not about the order the first polls happen to finish in.
        o.faults.insert("city".into(), Faults { slow_ms: 1000, ..Faults::default() });
    })
    .await;
    configure(&h);
    let fates = h.world.self_synced();
    let faulty: BTreeMap<&str, SelfSynced> =
        fates.iter().filter(|(_, f)| **f != SelfSynced::Written).map(|(c, f)| (c.as_str(), *f)).collect();
    for kind in [SelfSynced::Written, SelfSynced::Missing, SelfSynced::StaleStatus, SelfSynced::StaleFinish] {
        assert!(fates.values().any(|f| *f == kind), "the scenario needs a {kind:?} dossier: {fates:?}");
    }
    let pushed: BTreeSet<String> = h.world.expected_portal().into_keys().filter(|c| !fates.contains_key(c)).collect();
    let mut daemon = h.spawn_daemon(0);

    // The bridge syncs what it writes; the self-synced dossiers are the ministry's business.
    wait_until(&h, "the pushed dossiers on the portal", Duration::from_secs(40), || {
        mismatches_of(&h, &pushed).is_empty()
    })
    .await;

    // (a) Behind the bridge's back: an ended dossier loses its end on the portal, another vanishes.
    let expected = h.world.expected_portal();
    let altered = pushed.iter().find(|c| expected[*c].status == 9).expect("a finished pushed dossier").clone();
    let removed = pushed.iter().find(|c| **c != altered && expected[*c].status == 4).expect("an open one").clone();
    let name = h
        .world
        .tamper_portal(&altered, |d| {
            d.insert("TrangThaiHoSo".into(), "4".into());
            d.remove("NgayKetThucXuLy");
            d["ChuHoSo"].as_str().map(str::to_owned)
        })
        .expect("the altered dossier is on the portal")
        .expect("a ChuHoSo");
    assert!(h.world.remove_from_portal(&removed));
    let tampered: BTreeSet<String> = [altered.clone(), removed.clone()].into();
    assert_eq!(mismatches_of(&h, &tampered).len(), 3, "{:?}", mismatches_of(&h, &tampered));

    // Found by the full cycle, logged with what differs, repaired through the outbox, and seen
    // repaired at the next read-back.
    let logged = |code: &str, kind: &str| verify_log(&h).iter().any(|(d, k, ..)| d == code && k == kind);
    wait_until(&h, "both divergences found and resolved", Duration::from_secs(40), || {
        logged(&altered, "verify.resolved") && logged(&removed, "verify.resolved")
    })
    .await;
    assert!(mismatches_of(&h, &tampered).is_empty(), "{:?}", mismatches_of(&h, &tampered));
    let log = verify_log(&h);
    let entry = |code: &str, kind: &str| {
        log.iter().find(|(d, k, ..)| d == code && k == kind).unwrap_or_else(|| panic!("{kind} for {code}: {log:#?}"))
    };
    let (_, _, message, details) = entry(&altered, "verify.divergence");
    assert!(message.contains("status 4 on the portal, 9 in the sources"), "{message}");
    assert!(message.contains("NgayKetThucXuLy"), "{message}");
    assert_eq!(details["action"], "repair");
    assert_eq!(details["queued"], 1);
    let (_, _, message, details) = entry(&removed, "verify.missing");
    assert!(message.contains("missing on the portal"), "{message}");
    assert_eq!(details["action"], "repair");
    for (_, _, message, details) in &log {
        assert!(!message.contains(&name) && !details.to_string().contains(&name), "personal data in the log");
    }
    let portal = h.world.portal_snapshot();
    assert!(portal[&altered].updates >= 1 && portal[&altered].source_writes == 0);
    assert_eq!(portal[&removed].creates, 1, "created again");

    // (b) The self-syncing ministry: every fault reported, once, and nothing else of it.
    let reported = || -> BTreeSet<String> {
        verify_log(&h)
            .into_iter()
            .filter(|(d, k, ..)| fates.contains_key(d) && (k == "verify.missing" || k == "verify.divergence"))
            .map(|(d, ..)| d)
            .collect()
    };
    wait_until(&h, "every faulty self-synced dossier reported", Duration::from_secs(30), || {
        reported().len() >= faulty.len()
    })
    .await;
    let want: BTreeSet<String> = faulty.keys().map(|c| c.to_string()).collect();
    assert_eq!(reported(), want, "exactly the faulty ones are reported");
    let log = verify_log(&h);
    for (code, fate) in &faulty {
        let entries: Vec<_> = log.iter().filter(|(d, k, ..)| d == code && k != "verify.resolved").collect();
        assert_eq!(entries.len(), 1, "{code} reported once: {entries:#?}");
        let (_, kind, message, details) = entries[0];
        assert_eq!(details["action"], "report", "{code}");
        assert!(message.contains("reported only"), "{message}");
        match fate {
            SelfSynced::Missing => assert_eq!(kind, "verify.missing"),
            SelfSynced::StaleStatus => assert!(kind == "verify.divergence" && message.contains("status"), "{message}"),
            SelfSynced::StaleFinish => {
                assert!(kind == "verify.divergence" && message.contains("NgayKetThucXuLy"), "{message}")
            }
            SelfSynced::Written => unreachable!(),
        }
    }
    // The bridge never wrote them: no outbox row or acknowledgement, no call the portal counted.
    let of_ministry = format!("json_extract(d.canonical, '$.authority[0]') = '{SELF_SYNCING}'");
    assert_eq!(
        h.query_i64(&format!(
            "SELECT COUNT(*) FROM outbox o JOIN dossiers d ON d.id = o.dossier_id WHERE {of_ministry}"
        )),
        0
    );
    assert_eq!(
        h.query_i64(&format!(
            "SELECT COUNT(*) FROM portal_state p JOIN dossiers d ON d.portal_code = p.code WHERE {of_ministry}"
        )),
        0
    );
    assert!(h.query_i64(&format!("SELECT COUNT(*) FROM dossiers d WHERE {of_ministry}")) >= fates.len() as i64);
    let portal = h.world.portal_snapshot();
    for (code, fate) in &fates {
        match portal.get(code) {
            None => assert_eq!(*fate, SelfSynced::Missing, "{code} is on the portal unless left out"),
            Some(copy) => {
                assert_eq!(copy.creates + copy.updates, copy.source_writes, "{code}: only the ministry wrote it")
            }
        }
    }
    assert!(mismatches_of(&h, &want).len() >= faulty.len(), "the faults are still there: reported, not repaired");

    daemon.kill().expect("kill");
    daemon.wait().expect("reap");
    h.world.shutdown().await;
}
