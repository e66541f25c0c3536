//! End to end through the real daemon: the simulated city and ministry change while the bridge
//! syncs them to the simulated portal; at the end the portal shows every dossier once, with the
//! sources' status and times.

mod support;

use std::time::Duration;

use support::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dossier_of_both_systems_reaches_the_portal_once() {
    let h = Harness::start(Duration::from_millis(150)).await;
    let mut daemon = h.spawn_daemon(0);
    // Let the world change under the daemon for a while, then freeze it and let the bridge catch up.
    tokio::time::sleep(Duration::from_secs(6)).await;
    h.world.pause_changes();
    h.wait_converged(Duration::from_secs(90)).await;
    h.assert_invariants();

    let expected = h.world.expected_portal();
    let dual = expected.values().filter(|e| e.member_codes.len() > 1).count();
    let same_code = expected.values().filter(|e| e.member_codes.len() == 1).count();
    assert!(dual >= 3, "the scenario must hold dossiers present in both systems (found {dual})");
    assert!(same_code > 50, "the scenario must hold ordinary dossiers (found {same_code})");
    let stats = h.world.stats();
    assert!(stats.changes_made > 0, "the world changed during the run");

    // Malformed records are quarantined with a reason, not dropped and not pushed.
    let quarantined = h.world.expected_quarantine();
    assert!(!quarantined.is_empty(), "the scenario injects malformed records");
    for (source, native_id) in &quarantined {
        let n = h.query_i64(&format!(
            "SELECT COUNT(*) FROM quarantine WHERE source = '{source}' AND native_id = '{native_id}' AND reason <> ''"
        ));
        assert_eq!(n, 1, "{source}/{native_id} must be quarantined with a reason");
    }

    // The operator's tools read the store while the daemon runs.
    let (code, out, err) = h.cli(&["status"]);
    assert!(code == 0 || code == 1, "status exit {code}: {err}");
    assert!(out.contains("city") && out.contains("moj"), "{out}");
    assert!(out.contains("deadlines:") && out.contains("in doubt"), "status reports due times: {out}");
    let some_dual = expected.values().find(|e| e.member_codes.len() > 1).expect("a dual case");
    let (code, out, err) = h.cli(&["log", "--dossier", &some_dual.portal_code]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("portal.acked"), "log for {} shows the push:\n{out}", some_dual.portal_code);

    // Metrics and health on the port the daemon logged (the test configuration asks for a free one).
    let addr: String = {
        let c = dvc_bridge::store::open_reader(&h.db()).unwrap();
        c.query_row(
            "SELECT json_extract(details, '$.addr') FROM sync_log WHERE kind = 'metrics.listening' ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("the metrics address is logged")
    };
    let http = dvc_bridge::net::client(Duration::from_secs(10)).unwrap();
    let text = http.get(format!("http://{addr}/metrics")).send().await.unwrap().text().await.unwrap();
    for series in [
        "dvc_bridge_polls_total{source=\"city\",outcome=\"ok\"}",
        "dvc_bridge_poll_duration_seconds_bucket{source=\"moj\"",
        "dvc_bridge_records_total{source=\"city\",outcome=\"new\"}",
        "dvc_bridge_outbox_depth{state=\"queued\"}",
        "dvc_bridge_source_lag_seconds{source=\"city\"}",
        "dvc_bridge_portal_dossiers_acked_total",
        "dvc_bridge_dossiers_at_risk",
        "dvc_bridge_dossiers_false_late{state=\"open\"}",
    ] {
        assert!(text.contains(series), "/metrics lacks {series}:\n{text}");
    }
    let health = http.get(format!("http://{addr}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert!(body["health"] == "healthy" || body["health"] == "degraded", "{body}");

    // SIGTERM stops it cleanly.
    let pid = daemon.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let status = tokio::task::spawn_blocking(move || daemon.wait()).await.expect("join").expect("wait");
    assert!(status.success(), "daemon exit {status:?}\n{}", support::tail(&h.daemon_logs(), 30));
    assert_eq!(h.query_i64("SELECT COUNT(*) FROM sync_log WHERE kind = 'daemon.stopped'"), 1);

    // The sync log is evidence: its chain verifies, and an altered or a removed entry is found.
    let (code, out, err) = h.cli(&["log", "--verify"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("intact"), "{out}");
    let db = rusqlite::Connection::open(h.db()).expect("open the store");
    let middle = h.query_i64("SELECT MAX(seq) / 2 FROM sync_log");
    db.execute("UPDATE sync_log SET message = message || ' (edited)' WHERE seq = ?1", [middle]).unwrap();
    let (code, out, _) = h.cli(&["log", "--verify"]);
    assert_eq!(code, 1, "an altered entry: {out}");
    assert!(out.contains(&format!("entry {middle}")), "{out}");
    db.execute("UPDATE sync_log SET message = replace(message, ' (edited)', '') WHERE seq = ?1", [middle]).unwrap();
    assert_eq!(h.cli(&["log", "--verify"]).0, 0, "restored");
    db.execute("DELETE FROM sync_log WHERE seq = ?1", [middle]).unwrap();
    let (code, out, _) = h.cli(&["log", "--verify"]);
    assert_eq!(code, 1, "a removed entry: {out}");
    // A time range: nothing before the clock's start.
    let (code, out, _) = h.cli(&["log", "--until", "2000-01-01", "--json"]);
    assert_eq!((code, out.trim()), (0, ""));
    h.world.shutdown().await;
}
