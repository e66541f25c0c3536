//! The deadline watch: every `[deadlines] watch_interval_secs` of the clock it looks over the open
//! dossiers and logs each one whose due time came within the at-risk horizon or passed
//! (`store::deadlines::watch`). Its own task: the poll and delivery loops never wait on it.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::clock::{self, Every, SharedClock};
use crate::config::Settings;
use crate::store::{Writer, deadlines};

pub async fn run(settings: Arc<Settings>, writer: Writer, clock: SharedClock, stop: CancellationToken) {
    let mut schedule = Every::new(SignedDuration::from_secs(settings.config.deadlines.watch_interval_secs as i64));
    while !stop.is_cancelled() {
        let now = clock.now();
        if schedule.due(now).is_some()
            && let Err(e) = look(&settings, &writer, now).await
        {
            tracing::error!(error = %format!("{e:#}"), "the deadline watch failed; it tries again at its next look");
        }
        clock::tick(&stop).await;
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
