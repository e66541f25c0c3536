//! `dvc-bridge resync` against the real daemon: requests taken while it runs, `--now` without it
//! (and refused beside it), quarantined records released after a descriptor fix, a dossier pushed
//! again, and every step in the sync log under the operator's name.

mod support;

use std::time::{Duration, Instant};

use support::{Harness, kill, wait_for};

/// The portal matches the sources except for `code`, which it shows (pushed after its release).
async fn wait_converged_but(h: &Harness, code: &str, limit: Duration) {
    let t0 = Instant::now();
    loop {
        let m = h.mismatches();
        if m.len() == 1 && m[0].starts_with(&format!("{code}: on the portal")) {
            return;
        }
        assert!(
            t0.elapsed() < limit,
            "still differs: {m:?}
{}",
            support::tail(&h.daemon_logs(), 40)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn stop(daemon: &mut std::process::Child) {
    kill("-TERM", daemon.id());
    let status = tokio::task::block_in_place(|| daemon.wait()).unwrap();
    assert!(status.success());
}

const UNRELEASED: &str =
    "SELECT COUNT(*) FROM quarantine WHERE source = 'city' AND resolved_at IS NULL AND reason LIKE '%\"42\"%'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_runs_in_the_daemon_or_here_and_leaves_an_audit_trail() {
    let h = Harness::start(Duration::ZERO).await;
    let mut daemon = h.spawn_daemon(0);
    // The fixtures hold a city record whose status (42) the descriptor does not know.
    wait_for(&h, UNRELEASED, 1, Duration::from_secs(30)).await;
    h.wait_converged(Duration::from_secs(60)).await;

    // A dossier named by code is pushed again, even though the portal acknowledged it.
    let code: String = {
        let c = dvc_bridge::store::open_reader(&h.db()).unwrap();
        c.query_row("SELECT code FROM portal_state WHERE live = 1 ORDER BY code LIMIT 1", [], |r| r.get(0)).unwrap()
    };
    let acks = format!("SELECT COUNT(*) FROM sync_log WHERE kind = 'portal.acked' AND dossier = '{code}'");
    let before = h.query_i64(&acks);
    let (rc, out, err) = h.cli(&["resync", "--dossier", &code, "--by", "Nguyễn Văn An", "--wait"]);
    assert_eq!(rc, 0, "{out}\n{err}");
    assert!(out.contains("done"), "{out}");
    h.wait_count(&acks, before + 1, Duration::from_secs(20)).await;

    // A request for a source that does not exist is refused before it is stored.
    let (rc, _, err) = h.cli(&["resync", "--source", "nowhere"]);
    assert_eq!(rc, 2);
    assert!(err.contains("no source named"), "{err}");

    // Beside a running daemon, --now refuses and says what to do instead.
    let (rc, _, err) = h.cli(&["resync", "--quarantined", "--now"]);
    assert_eq!(rc, 2);
    assert!(err.contains("leave out --now"), "{err}");

    // With the daemon stopped, the descriptor is fixed, and `--now` releases the record here.
    stop(&mut daemon);
    let adapter = h.dir.path().join("adapters/city-igate.toml");
    let text = std::fs::read_to_string(&adapter).unwrap();
    std::fs::write(&adapter, text.replace("[status_map]\n", "[status_map]\n\"42\" = 4\n")).unwrap();
    let (rc, out, err) = h.cli(&["resync", "--quarantined", "--now", "--by", "Lan", "--json"]);
    assert_eq!(rc, 0, "{out}\n{err}");
    let req: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(req["state"], "done");
    assert_eq!(req["result"]["quarantine_released"], 1, "{req}");
    assert_eq!(h.query_i64(UNRELEASED), 0);

    // Started again, the daemon pushes the released record (which the simulator's truth counts as
    // never to be shown: it was made malformed on purpose) and keeps the rest in sync.
    let released: String = {
        let c = dvc_bridge::store::open_reader(&h.db()).unwrap();
        c.query_row(
            "SELECT r.code FROM source_records r JOIN quarantine q ON q.source = r.source AND q.native_id = r.native_id
             WHERE q.reason LIKE '%\"42\"%'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    let mut daemon = h.spawn_daemon(1);
    wait_converged_but(&h, &released, Duration::from_secs(60)).await;

    // A whole source walked again while the daemon runs: nothing new, nothing lost.
    let (rc, out, err) = h.cli(&["resync", "--source", "moj", "--wait", "--json"]);
    assert_eq!(rc, 0, "{out}\n{err}");
    let req: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(req["result"]["walked"][0]["source"], "moj", "{req}");
    assert_eq!(req["result"]["walked"][0]["complete"], true, "{req}");
    let (rc, out, _) = h.cli(&["resync", "--status", &req["id"].to_string()]);
    assert_eq!(rc, 0);
    assert!(out.contains("done"), "{out}");
    wait_converged_but(&h, &released, Duration::from_secs(30)).await;

    // A time range of a source, and a procedure: the cases in scope merged again, none queued
    // (the portal holds them already), the portal still matching.
    let (rc, out, err) =
        h.cli(&["resync", "--source", "city", "--since", "2026-02-01", "--until", "2026-03-01", "--wait", "--json"]);
    assert_eq!(rc, 0, "{out}\n{err}");
    let req: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let in_range = h.query_i64(
        "SELECT COUNT(DISTINCT dossier_id) FROM source_records
         WHERE source = 'city' AND updated_at >= '2026-01-31T17:00:00Z' AND updated_at < '2026-02-28T17:00:00Z'",
    );
    assert!(in_range > 0, "the fixtures hold city records updated in February");
    assert_eq!(req["result"]["dossiers"].as_i64(), Some(in_range), "{req}");
    let (rc, out, err) = h.cli(&["resync", "--procedure", "1.000894", "--wait", "--json"]);
    assert_eq!(rc, 0, "{out}\n{err}");
    let req: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert!(req["result"]["dossiers"].as_i64().is_some_and(|n| n > 0), "{req}");
    wait_converged_but(&h, &released, Duration::from_secs(30)).await;

    // Every request is in the sync log, with who asked, and the chain still verifies.
    for (kind, want) in [("resync.requested", 5), ("resync.started", 5), ("resync.done", 5)] {
        assert_eq!(h.query_i64(&format!("SELECT COUNT(*) FROM sync_log WHERE kind = '{kind}'")), want, "{kind}");
    }
    assert_eq!(h.query_i64("SELECT COUNT(*) FROM sync_log WHERE kind LIKE 'resync.%' AND actor = 'Lan'"), 3);
    assert_eq!(h.query_i64("SELECT COUNT(*) FROM sync_log WHERE kind LIKE 'resync.%' AND actor = 'Nguyễn Văn An'"), 3);
    let c = dvc_bridge::store::open_reader(&h.db()).unwrap();
    assert!(dvc_bridge::store::synclog::verify(&c).unwrap().is_ok());

    // An operator splits a dual-running pair apart beside the running daemon (the simulator's
    // truth still counts them as one, so the portal is not compared after this).
    let (source, native_id): (String, String) = c
        .query_row(
            "SELECT source, native_id FROM source_records WHERE link_rule IN ('same_code', 'reference') LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // `explain` of that pair: both members, the rule that linked them, who is authoritative, where
    // each field came from, and the due time worked out on the calendar.
    let code: String = c
        .query_row("SELECT code FROM source_records WHERE source = ?1 AND native_id = ?2", [&source, &native_id], |r| {
            r.get(0)
        })
        .unwrap();
    let (rc, out, err) = h.cli(&["explain", &code, "--json"]);
    assert_eq!(rc, 0, "{out}\n{err}");
    let x: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let members = x["members"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{x}");
    assert!(members.iter().any(|m| m["linked_by"] == "same_code" || m["linked_by"] == "reference"), "{x}");
    assert!(x["authority"]["why"].as_str().is_some_and(|w| !w.is_empty()), "{x}");
    assert!(x["fields"]["received_at"]["from"].as_str().is_some_and(|f| f.contains('/')), "{x}");
    assert!(
        x["deadline"]["computed_due"].is_string() || x["deadline"]["arithmetic"]["note"].is_string(),
        "a due time, or why there is none: {x}"
    );
    assert!(x["deadline"]["portal_due"].is_string(), "what the portal judges against: {x}");
    assert!(
        x["history"].as_array().is_some_and(|h| h.iter().any(|e| e["kind"] == "dossier.created")),
        "the case's sync-log history: {x}"
    );
    let (rc, out, _) = h.cli(&["explain", &code]);
    assert_eq!(rc, 0);
    assert!(out.contains("Authoritative:") && out.contains("Due time:"), "{out}");
    let (rc, _, err) = h.cli(&["explain", "NO-SUCH-CODE"]);
    assert_eq!(rc, 2);
    assert!(err.contains("no dossier"), "{err}");

    let cases = h.query_i64("SELECT COUNT(*) FROM dossiers");
    let record = format!("{source}/{native_id}");
    let (rc, out, err) = h.cli(&["split", &record, "--by", "Lan", "--reason", "two citizens' dossiers", "--json"]);
    assert_eq!(rc, 0, "{out}\n{err}");
    assert!(out.contains("new_case"), "{out}");
    assert_eq!(h.query_i64("SELECT COUNT(*) FROM dossiers"), cases + 1);
    assert_eq!(h.query_i64("SELECT COUNT(*) FROM sync_log WHERE kind = 'dossier.split' AND actor = 'Lan'"), 1);
    let (rc, _, err) = h.cli(&["split", "nowhere", "--by", "Lan", "--reason", "x"]);
    assert_eq!(rc, 2);
    assert!(err.contains("SOURCE/NATIVE_ID"), "{err}");

    // An open dossier whose result went out on paper: the attested finish reaches the portal.
    let (open, received): (String, String) = c
        .query_row(
            "SELECT d.portal_code, d.received_at FROM dossiers d JOIN portal_state p ON p.code = d.portal_code
             WHERE d.status IN (2, 4) AND p.live = 1 ORDER BY d.received_at LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let finished = (received.parse::<jiff::Timestamp>().unwrap() + jiff::SignedDuration::from_hours(2)).to_string();
    let args = ["attest", &open, "--finished-at", &finished, "--by", "Trần Thị Lan", "--reason", "trả kết quả giấy"];
    let (rc, out, err) = h.cli(&args);
    assert_eq!(rc, 0, "{out}\n{err}");
    h.wait_count(
        &format!("SELECT COUNT(*) FROM portal_state WHERE code = '{open}' AND status IN (9, 10)"),
        1,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        h.query_i64(&format!(
            "SELECT COUNT(*) FROM sync_log WHERE kind = 'dossier.attested' AND actor = 'Trần Thị Lan' AND dossier = '{open}'"
        )),
        1
    );
    let (rc, out, _) = h.cli(&["explain", &open, "--json"]);
    assert_eq!(rc, 0);
    let x: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(x["attestations"][0]["by"], "Trần Thị Lan", "{x}");
    assert!(x["fields"]["ended_at"]["from"].as_str().is_some_and(|f| f.starts_with("attested by")), "{x}");
    // A finish in the future is refused before anything is stored.
    let (rc, _, err) = h.cli(&["attest", &open, "--finished-at", "2099-01-01", "--by", "Lan", "--reason", "x"]);
    assert_eq!(rc, 2);
    assert!(err.contains("future"), "{err}");
    stop(&mut daemon);
    h.world.shutdown().await;
}
