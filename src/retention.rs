//! Sync-log retention: with `[store] sync_log_retention_days` set, entries older than that are
//! pruned once an hour (of the clock), 10,000 per transaction so the writer is never held long.
//! The chain stays verifiable from the last entry pruned (`store::synclog::prune`).

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::clock::{self, Every, SharedClock};
use crate::config::Settings;
use crate::store::{Writer, synclog};

/// Entries deleted per transaction.
const BATCH: usize = 10_000;
/// Clock time between two prunings.
const EVERY: SignedDuration = SignedDuration::from_hours(1);

pub async fn run(settings: Arc<Settings>, writer: Writer, clock: SharedClock, stop: CancellationToken) {
    let days = settings.config.store.sync_log_retention_days;
    if days == 0 {
        return;
    }
    let keep = SignedDuration::from_hours(24 * i64::from(days));
    let mut schedule = Every::new(EVERY);
    while !stop.is_cancelled() {
        let now = clock.now();
        if schedule.due(now).is_some()
            && let Err(e) = prune(&writer, now, keep, &stop).await
        {
            tracing::error!(error = %format!("{e:#}"), "pruning the sync log failed; it is tried again in an hour");
        }
        clock::tick(&stop).await;
    }
}

async fn prune(writer: &Writer, now: Timestamp, keep: SignedDuration, stop: &CancellationToken) -> anyhow::Result<()> {
    let before = now - keep;
    while !stop.is_cancelled() {
        let done = writer.call(move |c| Ok(synclog::prune(c, before, BATCH, now)?)).await?;
        match done {
            Some(p) => tracing::info!(entries = p.entries, anchor = p.anchor_seq, "sync log pruned"),
            None => break,
        }
    }
    Ok(())
}
