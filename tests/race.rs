//! `resync --now` racing a daemon that starts meanwhile: the store coordinates through the writer
//! lease. The daemon waits for the re-sync to finish, the request runs exactly once, nothing is
//! corrupted, and the portal ends matching the sources.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Harness, kill};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_starting_during_resync_now_waits_for_it_and_nothing_runs_twice() {
    let h = Harness::start(Duration::ZERO).await;
    let mut daemon = h.spawn_daemon(0);
    h.wait_converged(Duration::from_secs(60)).await;
    kill("-TERM", daemon.id());
    assert!(tokio::task::block_in_place(|| daemon.wait()).unwrap().success());

    // Every source walked again here, and a daemon started while it runs.
    let resync = Command::new(env!("CARGO_BIN_EXE_dvc-bridge"))
        .args(["resync", "--all", "--now", "--by", "Lan", "--json", "--config"])
        .arg(&h.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn resync");
    // It holds the lease from before it stores its request until it is done.
    h.wait_count("SELECT COUNT(*) FROM sync_log WHERE kind = 'resync.started'", 1, Duration::from_secs(30)).await;
    let mut daemon = h.spawn_daemon(1);
    let out = tokio::task::block_in_place(|| resync.wait_with_output()).unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let req: serde_json::Value = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
    assert_eq!(req["state"], "done", "{req}");
    assert_eq!(req["result"]["walked"].as_array().map(Vec::len), Some(6), "{req}");

    h.wait_count("SELECT COUNT(*) FROM sync_log WHERE kind = 'daemon.started'", 2, Duration::from_secs(30)).await;
    h.wait_converged(Duration::from_secs(60)).await;
    // The daemon started once the re-sync let go of the store, and did not run it again.
    let seq = |kind: &str| h.query_i64(&format!("SELECT MAX(seq) FROM sync_log WHERE kind = '{kind}'"));
    let order = {
        let c = dvc_bridge::store::open_reader(&h.db()).unwrap();
        let mut stmt = c
            .prepare("SELECT seq || ' ' || at || ' ' || kind FROM sync_log WHERE kind LIKE 'daemon.%' OR kind LIKE 'resync.%' ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect::<Vec<_>>()
    };
    assert!(seq("daemon.started") > seq("resync.done"), "the daemon waited for the lease: {order:#?}");
    assert!(h.daemon_logs().contains("holds the writer lease; waiting"), "{}", h.daemon_logs());
    assert_eq!(h.query_i64("SELECT COUNT(*) FROM sync_log WHERE kind = 'resync.started'"), 1);
    assert_eq!(h.query_i64("SELECT COUNT(*) FROM resync_requests WHERE state <> 'done'"), 0);
    let conn = dvc_bridge::store::open_reader(&h.db()).unwrap();
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    let (rc, out, _) = h.cli(&["log", "--verify"]);
    assert_eq!(rc, 0, "{out}");

    kill("-TERM", daemon.id());
    assert!(tokio::task::block_in_place(|| daemon.wait()).unwrap().success());
    h.world.shutdown().await;
}
