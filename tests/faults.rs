//! Every misbehaviour of the upstream systems at once, through the real daemon: one system hangs
//! outright while the others answer with 5xx, 429, slow, truncated and HTML bodies, duplicated pages,
//! records moving between pages and skewed clocks. The healthy-enough systems keep flowing while the
//! hanging one is left alone by its circuit breaker; once it recovers, nothing is missing.
//!
//! Then the fault campaign: rounds of misbehaviour drawn from a seed (upstream and portal, with
//! outages and kills), after which the invariant checker must find nothing. The seed is printed;
//! `DVC_FAULT_SEED` replays the draws (the world's, the systems' faults and the portal's all come
//! from it) and `DVC_FAULT_ROUNDS` sets the number of rounds (6 in CI).

mod support;

use std::time::Duration;

use dvc_bridge::cli::demo::BridgeTuning;
use dvc_bridge::sim::{Faults, PortalFaults};
use support::Harness;

const SYSTEMS: [&str; 6] = ["city", "moj", "moc", "mae", "mof", "mps"];

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

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// One system's misbehaviour for a round: each kind with its own chance of being on at all.
fn draw_faults(rng: &mut fastrand::Rng) -> Faults {
    let mut p = |on: f64, max: f64| if rng.f64() < on { rng.f64() * max } else { 0.0 };
    let mut f = Faults {
        error_5xx: p(0.4, 0.3),
        throttle_429: p(0.4, 0.3),
        truncated: p(0.3, 0.2),
        html_200: p(0.3, 0.2),
        duplicate_page: p(0.3, 0.3),
        modify_during_walk: p(0.4, 0.5),
        silent_change: p(0.2, 0.2),
        hang: p(0.1, 1.0),
        ..Faults::default()
    };
    f.slow_ms = if rng.f64() < 0.3 { rng.u64(50..400) } else { 0 };
    f.clock_skew_secs = if rng.f64() < 0.3 { rng.i64(-240..=240) } else { 0 };
    f
}

fn draw_portal_faults(rng: &mut fastrand::Rng) -> PortalFaults {
    PortalFaults {
        throttle_429: if rng.f64() < 0.4 { rng.f64() * 0.15 } else { 0.0 },
        retry_after_secs: rng.u64(1..=2),
        session_ttl_ms: if rng.f64() < 0.4 { rng.u64(400..3000) } else { 0 },
        slow_ms: if rng.f64() < 0.3 { rng.u64(50..800) } else { 0 },
        ..PortalFaults::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_fault_campaign_keeps_every_invariant() {
    let rounds = env_u64("DVC_FAULT_ROUNDS").unwrap_or(6);
    let seed = env_u64("DVC_FAULT_SEED").unwrap_or_else(|| fastrand::u64(..));
    eprintln!("fault campaign: {rounds} rounds, seed {seed} (replay: DVC_FAULT_SEED={seed} DVC_FAULT_ROUNDS={rounds})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let tuning = BridgeTuning { timeout_secs: 2, max_retries: 1, breaker_cooldown_secs: 2, ..BridgeTuning::default() };
    let h = Harness::start_shaped(Duration::from_millis(150), tuning, |o| o.seed = seed).await;
    // Silent changes are found only by full sweeps.
    h.set_source_option("full_sweep_interval_secs", 4);
    let w = &h.world;
    let mut daemon = h.spawn_daemon(0);
    let (mut kills, mut outages) = (0, 0);
    for round in 0..rounds {
        let mut plan = Vec::new();
        for system in SYSTEMS {
            let f = if rng.f64() < 0.6 { draw_faults(&mut rng) } else { Faults::default() };
            if f != Faults::default() {
                plan.push(format!("{system} {f:?}"));
            }
            w.set_faults(system, f);
        }
        let pf = draw_portal_faults(&mut rng);
        plan.push(format!("portal {pf:?}"));
        w.set_portal_faults(pf);
        let outage = rng.f64() < 0.3;
        w.set_portal_outage(outage);
        outages += usize::from(outage);
        let length = Duration::from_millis(rng.u64(2000..5000));
        eprintln!(
            "fault campaign round {round} ({length:?}{}):\n  {}",
            if outage { ", portal down" } else { "" },
            plan.join("\n  ")
        );
        tokio::time::sleep(length).await;
        if rng.f64() < 0.3 {
            daemon.kill().expect("SIGKILL");
            daemon.wait().expect("reap");
            kills += 1;
            daemon = h.spawn_daemon((kills % 7) + 1);
        }
    }
    // Healed: every system and the portal behave; the world stops; the bridge must converge.
    for system in SYSTEMS {
        w.set_faults(system, Faults::default());
    }
    w.set_portal_faults(PortalFaults::default());
    w.set_portal_outage(false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.pause_changes();
    h.wait_converged(Duration::from_secs(150)).await;
    daemon.kill().expect("SIGKILL");
    daemon.wait().expect("reap");
    let report = h.assert_invariants();
    let stats = w.stats();
    eprintln!(
        "fault campaign: seed {seed}, {rounds} rounds, {kills} kills, {outages} portal outages, faults fired {:?}, \
         portal: {} throttled, {} session refusals\n{report}",
        stats.faults_fired, stats.portal_throttled, stats.portal_session_refusals
    );
    h.world.shutdown().await;
}
