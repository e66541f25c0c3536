//! The crash campaign (invariants 4 and the rest after it): the real daemon, under steady upstream
//! change, killed with SIGKILL again and again, at random instants and at failpoints where a
//! random kill would rarely land (inside a store transaction, between a portal call and the
//! record of its answer), and restarted each time; at the end the world pauses, one last daemon
//! converges, and the invariant checker (`sim::check`) must find nothing, the store's integrity
//! check included.
//!
//! `DVC_CRASH_KILLS` sets the number of kills (default 24: what CI runs; the long campaign in
//! RELIABILITY.md ran 500), `DVC_CRASH_SEED` replays a campaign's choices (its seed is printed).

mod support;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use support::Harness;

enum Plan {
    /// Kill after this long.
    Timer(Duration),
    /// Arm the failpoint to fire on its n-th pass.
    Failpoint(&'static str, u32),
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_instants_and_at_failpoints_the_daemon_loses_and_duplicates_nothing() {
    let kills = env_u64("DVC_CRASH_KILLS").unwrap_or(24) as usize;
    let seed = env_u64("DVC_CRASH_SEED").unwrap_or_else(|| fastrand::u64(..));
    eprintln!("crash campaign: {kills} kills, seed {seed} (replay: DVC_CRASH_SEED={seed} DVC_CRASH_KILLS={kills})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let h = Harness::start(Duration::from_millis(150)).await;
    let t0 = Instant::now();
    let (mut by_timer, mut unreached) = (0usize, 0usize);
    let mut by_failpoint: BTreeMap<&str, usize> = BTreeMap::new();
    for n in 0..kills {
        let plan = if rng.bool() {
            Plan::Timer(Duration::from_millis(rng.u64(150..2500)))
        } else {
            let points = dvc_bridge::failpoint::ALL;
            Plan::Failpoint(points[rng.usize(..points.len())], rng.u32(1..=12))
        };
        let log = n % 8;
        match plan {
            Plan::Timer(after) => {
                let mut daemon = h.spawn_daemon(log);
                tokio::time::sleep(after).await;
                daemon.kill().expect("SIGKILL");
                daemon.wait().expect("reap");
                by_timer += 1;
            }
            Plan::Failpoint(point, pass) => {
                let spec = format!("{point}={pass}");
                let mut daemon =
                    h.spawn_daemon_with(log, "dvc_bridge=info,warn", &[(dvc_bridge::failpoint::ENV, spec.as_str())]);
                let until = Instant::now() + Duration::from_secs(6);
                let status = loop {
                    if let Some(status) = daemon.try_wait().expect("wait") {
                        break Some(status);
                    }
                    if Instant::now() > until {
                        break None;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                };
                match status {
                    Some(s) if s.signal() == Some(9) => *by_failpoint.entry(point).or_default() += 1,
                    Some(s) => panic!("daemon {n} ended on its own ({s}) with {spec}:\n{}", h.daemon_logs()),
                    None => {
                        // Not reached in time (nothing to ingest, say): an ordinary kill instead.
                        daemon.kill().expect("SIGKILL");
                        daemon.wait().expect("reap");
                        unreached += 1;
                    }
                }
            }
        }
    }
    let fired: usize = by_failpoint.values().sum();
    eprintln!(
        "crash campaign: {kills} kills in {:.0?}: {by_timer} at random instants, {fired} at failpoints {by_failpoint:?}, \
         {unreached} failpoints not reached in time (killed then)",
        t0.elapsed()
    );
    assert_eq!(by_timer + fired + unreached, kills);
    assert!(kills < 8 || fired * 4 >= kills - by_timer, "most armed failpoints must fire: {by_failpoint:?}");

    let mut daemon = h.spawn_daemon(8);
    tokio::time::sleep(Duration::from_secs(2)).await;
    h.world.pause_changes();
    h.wait_converged(Duration::from_secs(120)).await;
    daemon.kill().expect("SIGKILL");
    daemon.wait().expect("reap");
    let report = h.assert_invariants();
    eprintln!("crash campaign: {report}");
    h.world.shutdown().await;
}
