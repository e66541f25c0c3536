//! SIGHUP: a descriptor fix releases quarantined records without a restart; a broken configuration
//! is refused and the daemon keeps running on the one it had.

mod support;

use std::time::Duration;

use support::{Harness, kill, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_descriptor_fixed_and_reloaded_releases_quarantined_records() {
    let h = Harness::start(Duration::ZERO).await;
    let mut daemon = h.spawn_daemon(0);
    // The fixtures hold a city record whose status (42) the descriptor does not know.
    let unreleased =
        "SELECT COUNT(*) FROM quarantine WHERE source = 'city' AND resolved_at IS NULL AND reason LIKE '%\"42\"%'";
    wait_for(&h, unreleased, 1, Duration::from_secs(30)).await;

    // A broken configuration is refused; the daemon keeps running.
    let config = std::fs::read_to_string(&h.config).unwrap();
    std::fs::write(&h.config, config.replace("[delivery]", "[delivery]\nbatch_sise = 3")).unwrap();
    kill("-HUP", daemon.id());
    wait_for(&h, "SELECT COUNT(*) FROM sync_log WHERE kind = 'config.reload_failed'", 1, Duration::from_secs(20)).await;
    std::fs::write(&h.config, &config).unwrap();
    assert!(daemon.try_wait().unwrap().is_none(), "the daemon must survive a bad reload");

    // The operator maps status 42 and reloads: the record is stored, no restart.
    let adapter = h.dir.path().join("adapters/city-igate.toml");
    let text = std::fs::read_to_string(&adapter).unwrap();
    std::fs::write(&adapter, text.replace("[status_map]\n", "[status_map]\n\"42\" = 4\n")).unwrap();
    kill("-HUP", daemon.id());
    wait_for(&h, unreleased, 0, Duration::from_secs(30)).await;
    // The release happens while the workers start again, before the reload is logged as done.
    wait_for(&h, "SELECT COUNT(*) FROM sync_log WHERE kind = 'config.reloaded'", 1, Duration::from_secs(10)).await;
    assert_eq!(h.query_i64("SELECT COUNT(*) FROM sync_log WHERE kind = 'quarantine.released' AND source = 'city'"), 1);
    let stored = h.query_i64(
        "SELECT COUNT(*) FROM source_records r JOIN quarantine q ON q.source = r.source AND q.native_id = r.native_id
         WHERE q.reason LIKE '%\"42\"%'",
    );
    assert_eq!(stored, 1, "the released record is stored");

    kill("-TERM", daemon.id());
    let status = tokio::task::block_in_place(|| daemon.wait()).unwrap();
    assert!(status.success());
    h.world.shutdown().await;
}
