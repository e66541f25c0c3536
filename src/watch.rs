//! The deadline watch: every `[deadlines] watch_interval_secs` of the clock it looks over the open
//! dossiers and logs each one whose due time came within the at-risk horizon or passed
//! (`store::deadlines::watch`). Its own task: the poll and delivery loops never wait on it.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::store::{Writer, deadlines};

/// How often the task wakes to see whether a look is due (real time; the interval itself is in
/// clock time, which a simulated clock runs faster).
const TICK: Duration = Duration::from_secs(1);

pub async fn run(settings: Arc<Settings>, writer: Writer, clock: SharedClock, stop: CancellationToken) {
    let every = SignedDuration::from_secs(settings.config.deadlines.watch_interval_secs as i64);
    let mut last: Option<Timestamp> = None;
    while !stop.is_cancelled() {
        let now = clock.now();
        if last.is_none_or(|l| now.duration_since(l) >= every) {
            last = Some(now);
            if let Err(e) = look(&settings, &writer, now).await {
                tracing::error!(error = %format!("{e:#}"), "the deadline watch failed; it tries again at its next look");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.cancelled() => {}
        }
    }
}

async fn look(settings: &Settings, writer: &Writer, now: Timestamp) -> anyhow::Result<()> {
    let calendar = settings.deadlines.calendar.clone();
    let cutoff = deadlines::at_risk_cutoff(&calendar, now, settings.config.deadlines.at_risk_working_hours)?;
    let report = writer.call(move |c| deadlines::watch(c, &calendar, now, cutoff)).await?;
    if report != deadlines::WatchReport::default() {
        tracing::info!(
            at_risk = report.at_risk,
            overdue = report.overdue,
            false_late = report.false_late,
            "deadline watch: dossiers newly at risk or past due (see the sync log)"
        );
    }
    Ok(())
}
