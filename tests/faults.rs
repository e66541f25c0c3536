//! Every misbehaviour of the upstream systems at once, through the real daemon: one system hangs
//! outright while the others answer with 5xx, 429, slow, truncated and HTML bodies, duplicated pages,
//! records moving between pages and skewed clocks. The healthy-enough systems keep flowing while the
//! hanging one is left alone by its circuit breaker; once it recovers, nothing is missing.

mod support;

use std::time::Duration;

use dvc_bridge::cli::demo::BridgeTuning;
use dvc_bridge::sim::Faults;
use support::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_misbehaviour_at_once_loses_nothing_and_never_stalls_the_others() {
    let tuning = BridgeTuning { timeout_secs: 2, max_retries: 1, breaker_cooldown_secs: 2, ..BridgeTuning::default() };
    let h = Harness::start_with(Duration::from_millis(150), tuning).await;
    let w = &h.world;
    w.set_faults("city", Faults { error_5xx: 0.2, duplicate_page: 0.2, ..Faults::default() });
    w.set_faults("moj", Faults { throttle_429: 0.3, modify_during_walk: 0.5, ..Faults::default() });
    w.set_faults("moc", Faults { slow_ms: 300, modify_during_walk: 0.5, ..Faults::default() });
    w.set_faults("mae", Faults { truncated: 0.2, clock_skew_secs: -180, ..Faults::default() });
    w.set_faults("mof", Faults { html_200: 0.25, clock_skew_secs: 150, ..Faults::default() });
    w.set_faults("mps", Faults { hang: 1.0, ..Faults::default() });
    let mut daemon = h.spawn_daemon(0);

    // The hanging system's breaker opens; meanwhile every other system's dossiers reach the store
    // and the portal.
    h.wait_count(
        "SELECT COUNT(*) FROM sync_log WHERE kind = 'source.breaker_open' AND source = 'mps'",
        1,
        Duration::from_secs(60),
    )
    .await;
    for source in ["city", "moj", "moc", "mae", "mof"] {
        h.wait_count(
            &format!("SELECT COUNT(*) FROM source_records WHERE source = '{source}'"),
            10,
            Duration::from_secs(60),
        )
        .await;
    }
    assert_eq!(h.query_i64("SELECT COUNT(*) FROM source_records WHERE source = 'mps'"), 0, "mps never answered");
    h.wait_count("SELECT COUNT(*) FROM portal_state", 100, Duration::from_secs(60)).await;
    let (code, out, _) = h.cli(&["status"]);
    assert_ne!(code, 0, "status reports the trouble:\n{out}");
    assert!(out.contains("mps") && (out.contains("open") || out.contains("half-open")), "{out}");

    // The hanging system recovers (the others keep misbehaving): once the world stops changing,
    // the portal matches every source.
    w.set_faults("mps", Faults::default());
    tokio::time::sleep(Duration::from_secs(3)).await;
    w.pause_changes();
    h.wait_converged(Duration::from_secs(120)).await;
    h.assert_invariants();
    assert!(h.query_i64("SELECT COUNT(*) FROM source_records WHERE source = 'mps'") > 10);
    assert!(h.query_i64("SELECT COUNT(*) FROM sync_log WHERE kind = 'source.breaker_closed' AND source = 'mps'") >= 1);
    // Each failure was logged with its reason, once per distinct problem, not once per retry.
    let failures = h.query_i64("SELECT COUNT(*) FROM sync_log WHERE kind = 'poll.failed'");
    assert!(failures >= 1, "failures are in the sync log");
    let fired = w.stats().faults_fired;
    for kind in ["error_5xx", "throttle_429", "truncated", "html_200", "hang"] {
        assert!(fired.get(kind).copied().unwrap_or(0) > 0, "fault {kind} never fired: {fired:?}");
    }
    daemon.kill().expect("kill");
    daemon.wait().expect("reap");
    h.world.shutdown().await;
}
