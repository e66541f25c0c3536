//! A daemon killed with SIGKILL mid-sync loses nothing and duplicates nothing on the portal.

mod support;

use std::time::{Duration, Instant};

use support::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_mid_sync_loses_and_duplicates_nothing() {
    let h = Harness::start(Duration::from_millis(150)).await;
    let mut kills = 0;
    // Kill it several times at varied moments while it is ingesting and pushing.
    for (n, after_ms) in [700u64, 1300, 450, 2100].into_iter().enumerate() {
        let mut daemon = h.spawn_daemon(n);
        let t0 = Instant::now();
        // Wait until it has done something, so each kill lands mid-work rather than at start.
        while t0.elapsed() < Duration::from_secs(20) && h.world.stats().portal_calls == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        daemon.kill().expect("SIGKILL");
        daemon.wait().expect("reap");
        kills += 1;
    }
    assert_eq!(kills, 4);
    assert!(!h.mismatches().is_empty() || h.world.stats().changes_made > 0);

    let mut daemon = h.spawn_daemon(5);
    tokio::time::sleep(Duration::from_secs(3)).await;
    h.world.pause_changes();
    h.wait_converged(Duration::from_secs(90)).await;
    daemon.kill().expect("SIGKILL");
    daemon.wait().expect("reap");

    h.assert_invariants();
    h.world.shutdown().await;
}
