//! `dvc-bridge bench freshness`: how long a change in a source system takes to reach the portal.
//!
//! An in-process simulated world on a real-time clock (simulated time is real time) changes at a
//! steady rate; the real daemon (`dvc-bridge run`, a process of its own, with the demo's tuning
//! but for the poll interval) syncs it. The world notes each change its change rounds make
//! (`World::change_journal`: the case's portal code, the status the portal should then show, the
//! instant); the portal notes each dossier object it accepts (`World::portal_receipts`).
//!
//! A change's freshness is the time from the change to the first object of its code the portal
//! accepted at or after it that carries it: one showing the status the change left, or the status
//! a later change of the same case left, made by then (the later change overtook it before the
//! bridge read it, so the portal never shows its status, but shows it superseded). The first
//! object after the change, whatever its status, would also count an object read from the source
//! before the change and still on its way.
//!
//! The world starts paused and the daemon syncs the fixtures until the portal matches the sources;
//! then the changes start, and after `--warmup-secs` the measurement. At its end the world pauses
//! again, and the measured changes are followed until each reached the portal; those that never
//! did (by three poll intervals and a minute after the pause) are reported apart.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Args;

use super::demo::BridgeTuning;
use crate::sim::{Change, Receipt, SimOptions, World};

#[derive(Debug, Args)]
pub struct FreshnessArgs {
    /// Changes per second in the source systems (new dossiers and steps of open ones).
    #[arg(long, default_value_t = 20.0)]
    pub changes_per_sec: f64,
    /// Length of the measurement, in minutes.
    #[arg(long, default_value_t = 3.0)]
    pub minutes: f64,
    /// Seconds of changes between the fixtures' convergence and the measurement.
    #[arg(long, default_value_t = 10)]
    pub warmup_secs: u64,
    /// The daemon's poll interval, in seconds: one run each (default: the demo's 1 s, then the
    /// shipped default).
    #[arg(long = "poll-interval", value_name = "SECS")]
    pub poll_intervals: Vec<u64>,
    /// Dossiers per `DongBoHoSoMC` call.
    #[arg(long, default_value_t = 20)]
    pub batch_size: usize,
    /// Keep the databases and logs here (default: a temporary folder).
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
}

/// The poll interval a source gets when its configuration names none.
fn shipped_poll_interval() -> anyhow::Result<u64> {
    let source: crate::config::SourceConfig =
        serde_json::from_value(serde_json::json!({"name": "city", "adapter": "city-igate"}))?;
    Ok(source.poll_interval_secs)
}

pub async fn run(args: &FreshnessArgs, dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(args.changes_per_sec > 0.0, "--changes-per-sec must be above 0");
    anyhow::ensure!(args.minutes > 0.0, "--minutes must be above 0");
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    let intervals = if args.poll_intervals.is_empty() {
        vec![BridgeTuning::default().poll_interval_secs, shipped_poll_interval()?]
    } else {
        args.poll_intervals.clone()
    };
    for secs in intervals {
        anyhow::ensure!(secs > 0, "--poll-interval must be at least 1");
        let tuning = BridgeTuning { poll_interval_secs: secs, batch_size: args.batch_size, ..BridgeTuning::default() };
        let figures = measure(args, &tuning, &dir.join(format!("poll-{secs}s"))).await?;
        println!("{}", figures.line(&tuning));
    }
    Ok(())
}

/// What one run measured.
struct Figures {
    /// Each measured change's freshness, in seconds, sorted.
    seconds: Vec<f64>,
    /// Measured changes the portal never received.
    unreached: usize,
    /// Length of the measurement.
    window: Duration,
    /// From the daemon's start until the portal matched the paused world's fixtures.
    fixtures_converged: Duration,
    /// From the pause at the end until every measured change had reached the portal (or the
    /// wait gave up).
    drained: Duration,
    /// How the portal still differed from the sources at the end (0: in sync).
    mismatches: usize,
    poll_errors: String,
}

/// The `p`-th quantile (0–1) of sorted values, by nearest rank.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Figures {
    fn line(&self, t: &BridgeTuning) -> String {
        let n = self.seconds.len() + self.unreached;
        let q = |p| quantile(&self.seconds, p);
        format!(
            "freshness (poll every {} s, up to {} dossiers per call, delivery idle poll {} ms): {n} changes in {:.0} s \
             ({:.1}/s): p50 {:.2} s, p90 {:.2} s, p99 {:.2} s, max {:.2} s; {} never reached the portal (the fixtures \
             converged in {:.1} s; the last change reached the portal {:.1} s after the pause; {} portal mismatches at \
             the end{})",
            t.poll_interval_secs,
            t.batch_size,
            t.idle_poll_ms,
            self.window.as_secs_f64(),
            n as f64 / self.window.as_secs_f64(),
            q(0.5),
            q(0.9),
            q(0.99),
            self.seconds.last().copied().unwrap_or(f64::NAN),
            self.unreached,
            self.fixtures_converged.as_secs_f64(),
            self.drained.as_secs_f64(),
            self.mismatches,
            self.poll_errors,
        )
    }
}

/// Each change's freshness in seconds (see the module comment), and how many changes no receipt
/// carries.
fn freshness(changes: &[Change], receipts: &[Receipt]) -> (Vec<f64>, usize) {
    let mut by_code: HashMap<&str, Vec<&Receipt>> = HashMap::new();
    for r in receipts {
        by_code.entry(r.code.as_str()).or_default().push(r);
    }
    let mut changes_of: HashMap<&str, Vec<&Change>> = HashMap::new();
    for c in changes {
        changes_of.entry(c.code.as_str()).or_default().push(c);
    }
    let (mut seconds, mut unreached) = (Vec::with_capacity(changes.len()), 0);
    for (code, list) in &changes_of {
        let received = by_code.get(code).map(Vec::as_slice).unwrap_or_default();
        for (k, change) in list.iter().enumerate() {
            let carries = |r: &Receipt| {
                r.status == Some(change.status)
                    || list[k + 1..].iter().any(|later| later.at <= r.at && r.status == Some(later.status))
            };
            match received.iter().find(|r| r.at >= change.at && carries(r)) {
                Some(r) => seconds.push((r.at - change.at).as_secs_f64()),
                None => unreached += 1,
            }
        }
    }
    seconds.sort_by(f64::total_cmp);
    (seconds, unreached)
}

async fn measure(args: &FreshnessArgs, tuning: &BridgeTuning, dir: &Path) -> anyhow::Result<Figures> {
    std::fs::create_dir_all(dir)?;
    let fixtures = super::demo::unpack_fixtures(dir)?;
    let clock = crate::clock::SimClock::starting_now(super::demo::demo_start(), 1.0);
    let mut opts = SimOptions::demo(fixtures, clock);
    // Rounds of as many changes as the rate asks for each tenth of a second, or of one change,
    // less often.
    let per_round = (args.changes_per_sec * 0.1).ceil().max(1.0);
    opts.changes_per_tick = per_round as u32;
    opts.tick = Duration::from_secs_f64(per_round / args.changes_per_sec);
    let world = World::start(opts.clone()).await?;
    world.pause_changes();
    let config = super::demo::write_config(dir, &world, &opts, tuning)?;
    let daemon = super::bench::spawn_daemon(&config, dir)?;
    let patience = Duration::from_secs(60 + 3 * tuning.poll_interval_secs);

    let started = Instant::now();
    loop {
        let mismatches = crate::sim::check::portal_mismatches(&world);
        if mismatches.is_empty() {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < patience,
            "the portal still differs from the fixtures after {:.0} s ({} problems; the daemon's log is in {}), first: {}",
            started.elapsed().as_secs_f64(),
            mismatches.len(),
            dir.display(),
            mismatches[0]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fixtures_converged = started.elapsed();
    world.resume_changes();
    tokio::time::sleep(Duration::from_secs(args.warmup_secs)).await;
    world.change_journal();

    let window = Duration::from_secs_f64(args.minutes * 60.0);
    let mut changes = Vec::new();
    let started = Instant::now();
    while started.elapsed() < window {
        tokio::time::sleep(window.saturating_sub(started.elapsed()).min(Duration::from_secs(1))).await;
        changes.extend(world.change_journal());
    }
    world.pause_changes();
    changes.extend(world.change_journal());
    let window = started.elapsed();

    let paused = Instant::now();
    let (seconds, unreached) = loop {
        let (seconds, unreached) = freshness(&changes, &world.portal_receipts());
        if unreached == 0 || paused.elapsed() > patience {
            break (seconds, unreached);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let drained = paused.elapsed();
    let mismatches = crate::sim::check::portal_mismatches(&world).len();
    super::bench::stop_daemon(daemon).await?;
    let poll_errors = super::bench::failed_polls(&dir.join("data/dvc-bridge.db"));
    world.shutdown().await;
    Ok(Figures { seconds, unreached, window, fixtures_converged, drained, mismatches, poll_errors })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_773_016_200 + s).unwrap()
    }

    fn change(code: &str, status: u8, s: i64) -> Change {
        Change { code: code.into(), status, at: at(s) }
    }

    fn receipt(seq: u64, code: &str, status: u8, s: i64) -> Receipt {
        Receipt { seq, call: seq + 1, code: code.into(), at: at(s), update: true, status: Some(status) }
    }

    #[test]
    fn a_change_is_carried_by_the_first_object_showing_its_status_or_a_later_one() {
        let changes = [
            change("A", 4, 10),
            // Overtaken: the bridge read B only after its next change.
            change("B", 5, 10),
            change("B", 4, 12),
            change("C", 9, 10),
        ];
        let receipts = [
            // A's object read before the change, still on its way: not carrying it.
            receipt(0, "A", 2, 11),
            receipt(1, "A", 4, 13),
            receipt(2, "B", 4, 14),
            // C's status, but before the change: an older state of the case.
            receipt(3, "C", 9, 9),
        ];
        let (seconds, unreached) = freshness(&changes, &receipts);
        assert_eq!(seconds, vec![2.0, 3.0, 4.0], "A after 3 s, B's two after 4 and 2 s");
        assert_eq!(unreached, 1, "C never reached the portal");
    }

    #[test]
    fn quantiles_are_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(
            (quantile(&v, 0.5), quantile(&v, 0.9), quantile(&v, 0.99), quantile(&v, 1.0)),
            (50.0, 90.0, 99.0, 100.0)
        );
        assert!(quantile(&[], 0.5).is_nan());
    }
}
