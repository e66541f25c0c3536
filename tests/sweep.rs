//! The scheduled full sweep through the real daemon: a record changed upstream without its updated
//! time moving (a fix straight in a system's database, a batch job) is invisible to incremental
//! polls by updated time, however many run; the next full sweep reads it, and the portal follows.
//! The walk-level version of this is `src/source/walk_props.rs`; this one proves the runner's
//! schedule, the store and delivery do their part.

mod support;

use std::time::{Duration, Instant};

use dvc_bridge::sim::SilentChange;
use support::{Harness, tail};

/// The sweep interval, in clock seconds: the harness's clock runs 60 times real time, so this is a
/// sweep every 6 real seconds, long enough for a few incremental polls (one a second) in between.
const SWEEP_EVERY: i64 = 360;

/// Full sweeps of `system` the daemon completed so far.
fn sweeps(h: &Harness, system: &str) -> i64 {
    h.query_i64(&format!("SELECT COUNT(*) FROM sync_log WHERE kind = 'source.full_sweep' AND source = '{system}'"))
}

/// Wait until the daemon has completed `want` full sweeps of `system`.
async fn wait_sweeps(h: &Harness, system: &str, want: i64) {
    // Two intervals and then some: a sweep is due an interval after the last one ended, and starts
    // at the next poll.
    let limit = Duration::from_secs(2 * SWEEP_EVERY as u64 / 60 + 8);
    let t0 = Instant::now();
    while sweeps(h, system) < want {
        assert!(
            t0.elapsed() < limit,
            "no full sweep of {system} in {limit:?} (sweeps so far: {}); the portal still differs in:\n{}\n\ndaemon logs:\n{}",
            sweeps(h, system),
            h.mismatches().join("\n"),
            tail(&h.daemon_logs(), 40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `record.changed` entries of the sync log for one record.
fn logged_changes(h: &Harness, c: &SilentChange) -> i64 {
    h.query_i64(&format!(
        "SELECT COUNT(*) FROM sync_log WHERE kind = 'record.changed' AND source = '{}' AND dossier = '{}'",
        c.system, c.code
    ))
}

/// Polls of `system` the daemon started so far.
fn polls(h: &Harness, system: &str) -> i64 {
    h.query_i64(&format!("SELECT polls FROM sources WHERE name = '{system}'"))
}

/// The status the store holds for one record.
fn stored_status(h: &Harness, c: &SilentChange) -> i64 {
    h.query_i64(&format!(
        "SELECT status FROM source_records WHERE source = '{}' AND native_id = '{}'",
        c.system, c.native_id
    ))
}

/// What the portal shows wrong about the changed cases.
fn mismatches_of(h: &Harness, changed: &[SilentChange]) -> Vec<String> {
    h.mismatches()
        .into_iter()
        .filter(|m| changed.iter().any(|c| m.starts_with(&format!("{}:", c.portal_code))))
        .collect()
}

/// Right after a sweep of `system`, `n` of its records change silently; incremental polls miss
/// them, the next sweep does not.
async fn silent_change_caught_by_the_next_sweep(h: &Harness, system: &str, n: usize) {
    // Start just after a sweep, so the next one is a whole interval away.
    wait_sweeps(h, system, sweeps(h, system) + 1).await;
    let changed = h.world.silent_change(system, n).expect("a known system");
    assert_eq!(changed.len(), n, "{system} has {n} records that can change: {changed:?}");
    let swept = sweeps(h, system);

    // Incremental polls: two that started after the change have completed once a third starts.
    let first = polls(h, system);
    let t0 = Instant::now();
    while polls(h, system) < first + 3 {
        assert!(t0.elapsed() < Duration::from_secs(10), "{system} is not polled\n{}", tail(&h.daemon_logs(), 40));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        sweeps(h, system),
        swept,
        "a sweep of {system} ran while incremental polls were watched: the test needs a longer SWEEP_EVERY"
    );
    let wrong = mismatches_of(h, &changed);
    for c in &changed {
        assert_eq!(stored_status(h, c), i64::from(c.from), "incremental polls do not see {c:?}");
        assert_eq!(logged_changes(h, c), 0, "nothing logged of {c:?}");
        assert!(
            wrong.iter().any(|m| m.starts_with(&format!("{}: TrangThaiHoSo", c.portal_code))),
            "the portal still shows the old status of {c:?}: {wrong:?}"
        );
    }

    // The next sweep reads every record again: once it is logged, its pages are in the store.
    wait_sweeps(h, system, swept + 1).await;
    for c in &changed {
        assert_eq!(stored_status(h, c), i64::from(c.to), "the sweep stored {c:?}");
        assert_eq!(logged_changes(h, c), 1, "the sweep logged {c:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_sweep_catches_changes_that_left_the_updated_time_alone() {
    // The world changes only on demand, so whatever the portal gets wrong is the silent change.
    let h = Harness::start(Duration::ZERO).await;
    h.set_source_option("full_sweep_interval_secs", SWEEP_EVERY);
    let mut daemon = h.spawn_daemon(0);
    h.wait_converged(Duration::from_secs(60)).await;

    // Two systems that filter by updated time, each walked its own way (offset pages, and pages
    // chained by token), each on its own sweep schedule. The systems listed newest first without a
    // filter (city, mof) are no use here: every poll reads their whole first page, which holds
    // every record of theirs that can still change, so a silent change there is seen anyway.
    tokio::join!(
        silent_change_caught_by_the_next_sweep(&h, "moc", 3),
        silent_change_caught_by_the_next_sweep(&h, "mae", 3),
    );
    // Then the portal: every changed case shows its new status.
    h.wait_converged(Duration::from_secs(30)).await;
    assert_eq!(h.world.stats().faults_fired["silent_change"], 6);
    daemon.kill().expect("kill");
    daemon.wait().expect("reap");
    h.world.shutdown().await;
}
