//! Delivery: send the outbox to the portal, most urgent first, and record each acknowledgement.
//!
//! A row leaves the outbox only when the portal acknowledged it. A transient failure (the portal
//! down, slow, rate-limiting) reschedules the row with backoff; a permanent rejection parks it with
//! the portal's message; a configuration fault stops sending without blaming the rows.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::client::{CallError, ItemOutcome, PortalClient};
use crate::clock::SharedClock;
use crate::config::DeliveryConfig;
use crate::stats::Counters;
use crate::store::Writer;
use crate::store::outbox::{self, Kind, ProgressRow, Row};
use crate::store::synclog::{Entry, Level};

pub struct Delivery {
    client: PortalClient,
    writer: Writer,
    clock: SharedClock,
    cfg: DeliveryConfig,
    stats: Arc<Counters>,
    /// The problem currently reported, so an outage is logged once, not once per row.
    trouble: Option<String>,
}

impl Delivery {
    pub fn new(
        client: PortalClient,
        writer: Writer,
        clock: SharedClock,
        cfg: DeliveryConfig,
        stats: Arc<Counters>,
    ) -> Self {
        Self { client, writer, clock, cfg, stats, trouble: None }
    }

    /// Send until `stop` fires. A send in flight finishes and its acknowledgement is recorded first.
    pub async fn run(mut self, stop: CancellationToken) {
        let idle = Duration::from_millis(self.cfg.idle_poll_ms);
        while !stop.is_cancelled() {
            let pause = match self.step().await {
                Ok(true) => continue,
                Ok(false) => idle,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "delivery step failed");
                    Duration::from_secs(self.cfg.backoff_secs.max(1))
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.cancelled() => {}
            }
        }
    }

    fn retry_at(&self, attempts: i64, hint: Option<Duration>) -> jiff::Timestamp {
        let base = self.cfg.backoff_secs.max(1) as f64 * 2f64.powi(attempts.clamp(0, 20) as i32);
        let capped = base.min(self.cfg.max_backoff_secs as f64);
        let jittered = capped * (0.5 + fastrand::f64() / 2.0);
        let wait = hint.unwrap_or(Duration::from_secs_f64(jittered));
        self.clock.after_real(wait)
    }

    async fn log(&self, entry: Entry) -> anyhow::Result<()> {
        self.writer.log(self.clock.now(), entry).await
    }

    /// Report a problem once; `None` reports recovery.
    async fn trouble(&mut self, problem: Option<String>, level: Level) -> anyhow::Result<()> {
        if self.trouble == problem {
            return Ok(());
        }
        match &problem {
            Some(p) => {
                tracing::warn!(problem = %p, "portal delivery impaired");
                self.log(Entry::new(level, "portal.impaired", format!("{p}; queued work waits and is retried")))
                    .await?;
            }
            None => {
                tracing::info!("portal delivery recovered");
                self.log(Entry::new(Level::Info, "portal.recovered", "portal answers again; draining the queue"))
                    .await?;
            }
        }
        self.trouble = problem;
        Ok(())
    }

    /// One round: a batch of dossiers, else a batch of progress steps. `Ok(true)` when work was done.
    async fn step(&mut self) -> anyhow::Result<bool> {
        let now = self.clock.now();
        let (limit, order) = (self.cfg.batch_size, self.cfg.order);
        // The rows are marked sent as they are taken: the daemon may stop while the portal holds
        // the answer, and a code the portal may have created must never be forgotten.
        let rows = self
            .writer
            .call(move |c| {
                let rows = outbox::next_batch(c, now, limit, order)?;
                outbox::mark_sent(c, &rows, now)?;
                Ok(rows)
            })
            .await?;
        if !rows.is_empty() {
            self.send_rows(rows).await?;
            return Ok(true);
        }
        let limit = self.cfg.progress_chunk * 5;
        let steps = self.writer.call(move |c| outbox::next_progress(c, now, limit)).await?;
        if !steps.is_empty() {
            self.send_steps(steps).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn send_rows(&mut self, rows: Vec<Row>) -> anyhow::Result<()> {
        let (updates, creates): (Vec<Row>, Vec<Row>) = rows.into_iter().partition(|r| r.known_to_portal);
        let mut queue: Vec<(bool, Vec<Row>)> = vec![(false, creates), (true, updates)];
        // A row the portal answers "exists" (or "unknown") is re-sent the other way, once.
        let mut rerouted = std::collections::HashSet::new();
        while let Some((updating, group)) = queue.pop() {
            if group.is_empty() {
                continue;
            }
            let payloads: Vec<Value> = group.iter().map(|r| r.payload.clone()).collect();
            crate::failpoint::hit("delivery.before_call");
            match self.client.sync_dossiers(updating, &payloads).await {
                Ok(outcomes) => {
                    crate::failpoint::hit("delivery.after_call");
                    self.trouble(None, Level::Info).await?;
                    let mut other_way = Vec::new();
                    let mut acked = Vec::new();
                    for (row, (_, outcome)) in group.into_iter().zip(outcomes) {
                        match outcome {
                            ItemOutcome::Ok => acked.push(row),
                            ItemOutcome::Unknown if row.kind == Kind::Close => self.unneeded_close(row).await?,
                            ItemOutcome::Exists | ItemOutcome::Unknown if rerouted.insert(row.id) => {
                                other_way.push(row)
                            }
                            ItemOutcome::Exists | ItemOutcome::Unknown => {
                                self.reschedule(&[row], "the portal answered create and update inconsistently", None)
                                    .await?
                            }
                            ItemOutcome::Rejected(m) => self.park(row, &m).await?,
                        }
                    }
                    self.acked(acked).await?;
                    queue.push((!updating, other_way));
                }
                Err(CallError::Config(m)) => {
                    self.trouble(Some(format!("portal configuration fault: {m}")), Level::Error).await?;
                    self.reschedule(&group, &m, None).await?;
                }
                Err(CallError::Net(f)) if f.is_transient() => {
                    self.trouble(Some(format!("portal unreachable or failing: {f}")), Level::Warn).await?;
                    Counters::add(&self.stats.push_errors, 1);
                    self.reschedule(&group, &f.to_string(), f.retry_after()).await?;
                }
                // A whole batch refused: send each row alone to find the one at fault.
                Err(CallError::Net(_)) if group.len() > 1 => {
                    queue.extend(group.into_iter().map(|r| (updating, vec![r])));
                }
                Err(CallError::Net(f)) => {
                    for row in group {
                        self.park(row, &f.to_string()).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Record a batch's acknowledgements in one transaction.
    async fn acked(&mut self, rows: Vec<Row>) -> anyhow::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let closes = rows.iter().filter(|r| r.kind == Kind::Close).count() as u64;
        let upserts = rows.len() as u64 - closes;
        self.writer.call(move |c| outbox::ack_all(c, &rows, now)).await?;
        Counters::add(&self.stats.pushed, upserts);
        Counters::add(&self.stats.closed, closes);
        Ok(())
    }

    async fn unneeded_close(&mut self, row: Row) -> anyhow::Result<()> {
        let now = self.clock.now();
        tracing::info!(code = %row.code, "the portal does not hold a code the bridge meant to close: nothing to close");
        self.writer.call(move |c| outbox::settle_unneeded_close(c, &row, now)).await
    }

    async fn park(&mut self, row: Row, message: &str) -> anyhow::Result<()> {
        let now = self.clock.now();
        let message = message.to_string();
        tracing::warn!(code = %row.code, %message, "portal rejected a dossier; parked");
        self.writer.call(move |c| outbox::park(c, &row, &message, now)).await?;
        Counters::add(&self.stats.parked, 1);
        Ok(())
    }

    async fn reschedule(&mut self, rows: &[Row], error: &str, hint: Option<Duration>) -> anyhow::Result<()> {
        let plan: Vec<(i64, jiff::Timestamp)> = rows.iter().map(|r| (r.id, self.retry_at(r.attempts, hint))).collect();
        let error = error.to_string();
        self.writer
            .call(move |c| {
                for (id, at) in plan {
                    outbox::retry(c, id, &error, at)?;
                }
                Ok(())
            })
            .await
    }

    async fn send_steps(&mut self, steps: Vec<ProgressRow>) -> anyhow::Result<()> {
        let chunk = self.cfg.progress_chunk.max(1);
        for part in steps.chunks(chunk) {
            let items: Vec<Value> = part.iter().map(|s| s.payload.clone()).collect();
            let part = part.to_vec();
            let outcome = self.client.send_progress(&items).await;
            let now = self.clock.now();
            match outcome {
                Ok(ItemOutcome::Ok) => {
                    crate::failpoint::hit("delivery.progress_after_call");
                    let n = part.len() as u64;
                    self.writer.call(move |c| outbox::progress_sent(c, &part, now)).await?;
                    Counters::add(&self.stats.steps, n);
                }
                Ok(other) => {
                    let at = self.retry_at(3, None);
                    let msg = format!("{other:?}");
                    self.writer.call(move |c| outbox::progress_retry(c, &part, &msg, at)).await?;
                }
                Err(e) => {
                    let hint = match &e {
                        CallError::Net(f) => f.retry_after(),
                        CallError::Config(_) => None,
                    };
                    let at = self.retry_at(1, hint);
                    let msg = e.to_string();
                    self.writer.call(move |c| outbox::progress_retry(c, &part, &msg, at)).await?;
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
