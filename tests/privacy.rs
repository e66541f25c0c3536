//! Citizens' names, ID numbers, phone numbers and e-mail addresses never appear in clear in what
//! the bridge writes for people to read: its log output (at debug level), the sync log (messages
//! and details), and the operator commands' output. The portal gets them; nobody else does.

mod support;

use std::time::Duration;

use support::Harness;

/// Every personal datum of the simulated citizens.
fn personal_data() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/people.json")).unwrap();
    let people: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    people
        .iter()
        .flat_map(|p| ["fullname", "identity_number", "phone", "email"].map(|k| p[k].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_personal_datum_appears_in_clear_in_any_log_or_operator_output() {
    let h = Harness::start(Duration::from_millis(150)).await;
    let mut daemon = h.spawn_daemon_logging(0, "debug");
    tokio::time::sleep(Duration::from_secs(4)).await;
    h.world.pause_changes();
    h.wait_converged(Duration::from_secs(90)).await;

    let logs = h.daemon_logs();
    assert!(logs.lines().count() > 50 && logs.contains("DEBUG"), "the daemon logged at debug level:\n{logs}");
    let mut outputs: Vec<(String, String)> = vec![("daemon log (debug)".into(), logs)];
    let c = dvc_bridge::store::open_reader(&h.db()).unwrap();
    let entries: Vec<String> = c
        .prepare("SELECT seq || ' ' || kind || ' ' || message || ' ' || COALESCE(details, '') FROM sync_log")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(entries.len() > 100, "a real log: {} entries", entries.len());
    outputs.push(("sync log".into(), entries.join("\n")));
    // The operator's commands, on cases holding citizens' data (the quarantined ones included).
    let codes: Vec<String> = c
        .prepare("SELECT portal_code FROM dossiers ORDER BY id LIMIT 20")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for args in [vec!["log", "--limit", "100000"], vec!["log", "--json", "--limit", "100000"], vec!["status", "--json"]]
    {
        let (_, out, err) = h.cli(&args);
        outputs.push((args.join(" "), format!("{out}{err}")));
    }
    for code in &codes {
        let (rc, out, err) = h.cli(&["explain", code, "--json"]);
        assert_eq!(rc, 0, "{err}");
        outputs.push((format!("explain {code}"), out));
    }
    let data = personal_data();
    assert!(data.len() > 100, "the fixtures hold citizens");
    let mut leaks = Vec::new();
    for (what, text) in &outputs {
        for d in data.iter().filter(|d| text.contains(d.as_str())) {
            let line = text.lines().find(|l| l.contains(d.as_str())).unwrap_or_default();
            leaks.push(format!("{what}: {d:?} in {line}"));
        }
    }
    assert!(leaks.is_empty(), "personal data in clear:\n{}", leaks.join("\n"));
    // The portal did get them: the test looked where it should.
    let portal = h.world.portal_snapshot();
    let on_portal = serde_json::to_string(&portal).unwrap();
    assert!(data.iter().any(|d| on_portal.contains(d.as_str())), "the portal holds the applicants");

    daemon.kill().unwrap();
    daemon.wait().unwrap();
    h.world.shutdown().await;
}
