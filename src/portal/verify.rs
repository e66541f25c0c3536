//! The verify sweep (architecture.md "Verify and repair"): dossiers are read back from the portal
//! with `TraCuuHoSo` and compared with the canonical state (`core::verify`); what differs is logged
//! and, for a source the bridge writes (portal_mode "push"), queued again with `force`. A source in
//! portal_mode "verify" writes its own dossiers: the bridge only reports them.
//!
//! Every `[verify] recent_interval_secs` of the clock a round reads back the dossiers changed since
//! they were last read (a push-mode one once the portal acknowledged it, a verify-mode one once the
//! source had `source_grace_secs` to sync it), then the round's share of the full cycle (every
//! dossier once per `full_cycle_hours`, the ones read longest ago first). The place reached is the
//! per-dossier mark in the store, so a restart resumes the cycle.
//!
//! Delivery comes first: the look-ups take tokens from the same rate limiter as delivery (a
//! sibling client), at most `rate_per_sec` of them, which the configuration keeps to half the
//! portal's limit; and a round waits while delivery has a batch or more ready to send. Candidate
//! reads run on a read-only connection of their own, off the writer; only what was found goes to
//! the writer, in one transaction per chunk.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rusqlite::Connection;
use tokio_util::sync::CancellationToken;

use super::client::{CallError, PortalClient};
use crate::clock::{self, Every, SharedClock};
use crate::config::Settings;
use crate::core::verify::{View, compare};
use crate::store::ingest::MergeCtx;
use crate::store::verify::{self as stored, Candidate, Finding, RecordReport};
use crate::store::{self, Writer};

/// Read-backs recorded per writer transaction.
const CHUNK: usize = 10;

/// Run the sweep until `stop` fires (at once when `[verify] enabled = false`).
pub async fn run(
    settings: Arc<Settings>,
    client: PortalClient,
    writer: Writer,
    clock: SharedClock,
    ctx: Arc<MergeCtx>,
    stop: CancellationToken,
) {
    if !settings.config.verify.enabled {
        return;
    }
    let reader = match store::open_reader(&settings.db_path()) {
        Ok(c) => Arc::new(Mutex::new(c)),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "the verify sweep cannot read the store; it does not run");
            return;
        }
    };
    let mut sweep = Sweep::new(settings, client, writer, clock, ctx, reader);
    sweep.run(stop).await;
}

struct Sweep {
    settings: Arc<Settings>,
    client: PortalClient,
    writer: Writer,
    clock: SharedClock,
    ctx: Arc<MergeCtx>,
    reader: Arc<Mutex<Connection>>,
    /// The sweep's own pace, on top of the portal's limiter it shares with delivery.
    pace: Arc<governor::DefaultDirectRateLimiter>,
    /// The full cycle's share not yet taken (fractions carry over from round to round).
    share: f64,
    /// Whether the cycle was found too long for the rate (said once).
    told_slow: bool,
}

/// Why a round ended before its list did.
enum Halt {
    Stopped,
    /// The portal cannot answer now (down, failing, misconfigured): the next round tries again.
    Portal(String),
    Backlog,
}

impl Sweep {
    fn new(
        settings: Arc<Settings>,
        client: PortalClient,
        writer: Writer,
        clock: SharedClock,
        ctx: Arc<MergeCtx>,
        reader: Arc<Mutex<Connection>>,
    ) -> Sweep {
        let rate = settings.config.verify.rate_per_sec;
        let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
        let quota = governor::Quota::with_period(period).unwrap_or_else(|| governor::Quota::per_second(nonzero(1)));
        Sweep {
            pace: Arc::new(governor::RateLimiter::direct(quota)),
            settings,
            client,
            writer,
            clock,
            ctx,
            reader,
            share: 0.0,
            told_slow: false,
        }
    }

    async fn run(&mut self, stop: CancellationToken) {
        let cfg = self.settings.config.verify.clone();
        let mut schedule = Every::new(SignedDuration::from_secs(cfg.recent_interval_secs as i64));
        let mut tidy = Every::new(self.cycle());
        while !stop.is_cancelled() {
            let now = self.clock.now();
            if let Some(elapsed) = schedule.due(now) {
                if tidy.due(now).is_some()
                    && let Err(e) = self.writer.call(|c| stored::forget_gone(c)).await
                {
                    tracing::warn!(error = %format!("{e:#}"), "verify: cannot drop the marks of joined cases");
                }
                match self.round(now, elapsed, &stop).await {
                    Ok(report) if report.divergent > 0 => tracing::info!(
                        verified = report.verified,
                        divergent = report.divergent,
                        repaired = report.repaired,
                        resolved = report.resolved,
                        "verify: the portal differs from the sources (see the sync log)"
                    ),
                    Ok(report) => {
                        tracing::debug!(verified = report.verified, resolved = report.resolved, "verify round")
                    }
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "verify round failed; the next one tries again")
                    }
                }
            }
            clock::tick(&stop).await;
        }
    }

    fn cycle(&self) -> SignedDuration {
        SignedDuration::from_secs_f64(self.settings.config.verify.full_cycle_hours * 3600.0)
    }

    /// Look-ups one round may make: the rate over the round's length in real time.
    fn budget(&self) -> usize {
        let cfg = &self.settings.config.verify;
        let speed = self.clock.after_real(Duration::from_secs(1)).duration_since(self.clock.now()).as_secs_f64();
        let real_secs = cfg.recent_interval_secs as f64 / speed.max(f64::MIN_POSITIVE);
        (cfg.rate_per_sec * real_secs).ceil().clamp(1.0, 100_000.0) as usize
    }

    /// Run `f` on the sweep's own read-only connection, off the async workers.
    async fn read<R, F>(&self, f: F) -> anyhow::Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection, &MergeCtx) -> anyhow::Result<R> + Send + 'static,
    {
        let (reader, ctx) = (self.reader.clone(), self.ctx.clone());
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(|e| e.into_inner());
            f(&conn, &ctx)
        })
        .await?
    }

    async fn backlogged(&self) -> anyhow::Result<bool> {
        let (now, batch) = (self.clock.now(), self.settings.config.delivery.batch_size.max(1));
        Ok(self.read(move |c, _| stored::delivery_backlog(c, now, batch)).await? >= batch)
    }

    /// One round: the recent changes, then the cycle's share, each looked up and recorded.
    async fn round(
        &mut self,
        now: Timestamp,
        elapsed: SignedDuration,
        stop: &CancellationToken,
    ) -> anyhow::Result<RecordReport> {
        let mut report = RecordReport::default();
        if self.backlogged().await? {
            tracing::debug!("verify: delivery has work waiting; this round is left out");
            return Ok(report);
        }
        let cfg = self.settings.config.verify.clone();
        let budget = self.budget();
        let cycle = self.cycle();
        let grace_cutoff = now - SignedDuration::from_secs(cfg.source_grace_secs as i64);
        let since = now.checked_sub(cycle).unwrap_or(now);
        let recent = self.read(move |c, ctx| stored::recent(c, ctx, since, grace_cutoff, now, budget)).await?;
        let dossiers = self.read(|c, _| stored::dossier_count(c)).await?;
        let per_sec = dossiers as f64 / cycle.as_secs_f64().max(1.0);
        self.share += per_sec * elapsed.as_secs_f64();
        let room = budget.saturating_sub(recent.len());
        if per_sec * cfg.recent_interval_secs as f64 > budget as f64 && !self.told_slow {
            self.told_slow = true;
            tracing::warn!(
                dossiers,
                rate_per_sec = cfg.rate_per_sec,
                full_cycle_hours = cfg.full_cycle_hours,
                "verify: the full cycle needs more look-ups than [verify] rate_per_sec allows; it will take longer"
            );
        }
        self.share = self.share.min(room as f64);
        let take = self.share.floor() as usize;
        let skip: Vec<i64> = recent.iter().map(|c| c.dossier_id).collect();
        let due = self.read(move |c, ctx| stored::cycle(c, ctx, grace_cutoff, now, take, &skip)).await?;
        self.share -= due.len() as f64;
        let hold_since = since;
        let mut halt = None;
        for chunk in recent.chunks(CHUNK).chain(due.chunks(CHUNK)) {
            if halt.is_some() {
                break;
            }
            let mut found = Vec::with_capacity(chunk.len());
            if let Err(h) = self.look_up(chunk, &mut found, stop).await {
                halt = Some(h);
            }
            if !found.is_empty() {
                let (ctx, at) = (self.ctx.clone(), self.clock.now());
                let r = self.writer.call(move |c| stored::record(c, &ctx, &found, at, hold_since)).await?;
                report.verified += r.verified;
                report.divergent += r.divergent;
                report.repaired += r.repaired;
                report.resolved += r.resolved;
            }
            if halt.is_none() && self.backlogged().await? {
                halt = Some(Halt::Backlog);
            }
        }
        match halt {
            Some(Halt::Portal(why)) => {
                tracing::warn!(problem = %why, "verify: the portal cannot answer look-ups now; the next round tries again")
            }
            Some(Halt::Backlog) => tracing::debug!("verify: delivery has work waiting; the round stops here"),
            Some(Halt::Stopped) | None => {}
        }
        Ok(report)
    }

    /// Look each candidate up, in order, into `found`; stops early (with why) on a stop, or when
    /// the portal cannot answer.
    async fn look_up(
        &mut self,
        chunk: &[Candidate],
        found: &mut Vec<Finding>,
        stop: &CancellationToken,
    ) -> Result<(), Halt> {
        let calendar = self.settings.deadlines.calendar.clone();
        for c in chunk {
            tokio::select! {
                _ = self.pace.until_ready() => {}
                _ = stop.cancelled() => return Err(Halt::Stopped),
            }
            let copy = match self.client.lookup(&c.code).await {
                Ok(copy) => copy,
                Err(CallError::Net(f)) if !f.is_transient() && !matches!(f, crate::net::Failure::Unauthorized(_)) => {
                    tracing::warn!(code = %c.code, error = %f, "verify: the portal refused the look-up of one dossier; it is tried again next round");
                    continue;
                }
                Err(e) => return Err(Halt::Portal(e.to_string())),
            };
            // Both judged at the same instant: the portal's verdict of an open dossier moves with time.
            let now = self.clock.now();
            let canonical = View::of(&c.canonical).judged(&calendar, now);
            let shown = copy.map(|o| View::of(&o).judged(&calendar, now));
            found.push(Finding {
                dossier_id: c.dossier_id,
                code: c.code.clone(),
                source: c.source.clone(),
                repair: c.repair,
                divergences: compare(&canonical, shown.as_ref()),
                seen: c.seen.clone(),
            });
        }
        Ok(())
    }
}

fn nonzero(n: u32) -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN)
}
