//! Carrying out a re-sync request: in the daemon (its re-sync task) or in the CLI (`resync --now`,
//! holding the writer lease).
//!
//! In order: quarantined records are mapped again with the current descriptors; parked deliveries
//! go back to the queue; the sources in scope are walked again in full (their cursors only ever
//! move forward); the stored payloads of the cases in scope are mapped again, and the cases merged
//! again and queued for the portal where their state differs from what it acknowledged (cases
//! named by code are queued even if it acknowledged them). Nothing else is touched: other sources,
//! cursors and cases keep their state.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::core::mapping::Mapper;
use crate::core::resync::Scope;
use crate::source::Poller;
use crate::source::fetch::HttpFetch;
use crate::store::Writer;
use crate::store::ingest::{self, Incoming, MergeCtx, Page};
use crate::store::resync::{self, Request};
use crate::store::synclog::{Entry, Level};

/// Cases merged again per transaction.
const CHUNK: usize = 200;

/// What a re-sync needs from the running system.
#[derive(Clone)]
pub struct Env {
    pub settings: Arc<Settings>,
    pub writer: Writer,
    pub clock: SharedClock,
    pub ctx: Arc<MergeCtx>,
}

/// Map every quarantined payload again with the current descriptors; what maps now is stored.
/// Returns how many were released.
pub async fn retry_quarantine(env: &Env) -> anyhow::Result<u64> {
    let mut released = 0;
    for src in &env.settings.sources {
        let name = src.config.name.clone();
        let n = name.clone();
        let pending = env.writer.call(move |c| ingest::pending_quarantine(c, &n)).await?;
        if pending.is_empty() {
            continue;
        }
        let mapper = Mapper::new(src.descriptor.clone());
        let now = env.clock.now();
        let items: Vec<Incoming> = pending
            .into_iter()
            .map(|(text, raw)| crate::source::incoming(&mapper, &name, &raw, Some(text), &env.ctx, now))
            .collect();
        let total = items.len();
        let mapped = items.iter().filter(|i| matches!(i, Incoming::Mapped(_))).count();
        if mapped == 0 {
            continue;
        }
        let (ctx, now) = (env.ctx.clone(), env.clock.now());
        let page = Page { source: name.clone(), items, cursor: None, remap: true };
        env.writer.call(move |c| ingest::ingest_page(c, &ctx, page, now)).await?;
        released += mapped as u64;
        env.writer
            .log_or_complain(
                env.clock.now(),
                Entry::new(
                    Level::Info,
                    "quarantine.released",
                    format!(
                        "{mapped} of {total} quarantined record(s) map with the current descriptor and were stored"
                    ),
                )
                .source(&name),
            )
            .await;
    }
    Ok(released)
}

/// Carry out one request; the outcome goes to the request's `result`.
pub async fn execute(env: &Env, req: &Request, stop: &CancellationToken) -> anyhow::Result<serde_json::Value> {
    let scope = &req.scope;
    let id = req.id;
    let progress = |phase: String, done: u64, total: u64| {
        let w = env.writer.clone();
        async move {
            let _ = w.call(move |c| resync::progress(c, id, &phase, done, total)).await;
        }
    };
    let mut outcome = serde_json::Map::new();
    if let Some(s) = scope.split.clone() {
        let (ctx, by, now) = (env.ctx.clone(), req.requested_by.clone(), env.clock.now());
        let done =
            env.writer.call(move |c| ingest::split(c, &ctx, &s.source, &s.native_id, &by, &s.reason, now)).await?;
        outcome.insert("split".into(), json!(done));
    }
    if let Some(a) = scope.attest.clone() {
        let (ctx, by, now) = (env.ctx.clone(), req.requested_by.clone(), env.clock.now());
        let done =
            env.writer.call(move |c| crate::store::attest::record(c, &ctx, &a.code, &a.attestation, &by, now)).await?;
        outcome.insert("attested".into(), json!(done));
    }
    if scope.quarantined || scope.all {
        progress("quarantine".into(), 0, 1).await;
        outcome.insert("quarantine_released".into(), json!(retry_quarantine(env).await?));
    }
    if scope.parked || scope.all {
        let now = env.clock.now();
        let n = env.writer.call(move |c| resync::release_parked(c, now)).await?;
        outcome.insert("parked_released".into(), json!(n));
    }
    let names: Vec<&str> = env.settings.sources.iter().map(|s| s.config.name.as_str()).collect();
    let walk = scope.sources_to_walk(&names);
    let mut walked = Vec::new();
    for (i, name) in walk.iter().enumerate() {
        anyhow::ensure!(!stop.is_cancelled(), "stopped before the walk of {name}");
        progress(format!("walking {name}"), i as u64, walk.len() as u64).await;
        let Some(src) = env.settings.sources.iter().find(|s| s.config.name == *name) else { continue };
        let fetch = HttpFetch::new(src).with_context(|| format!("source {name}"))?;
        let mut poller = Poller::new(
            name,
            Mapper::new(src.descriptor.clone()),
            fetch,
            src.config.lookback_secs,
            env.clock.clone(),
            env.writer.clone(),
            env.ctx.clone(),
        );
        let r = poller.poll(stop, true).await.with_context(|| format!("walking {name} again"))?;
        walked.push(json!({"source": name, "complete": r.complete, "records": r.records, "new": r.ingest.new,
                           "changed": r.ingest.changed, "quarantined": r.ingest.quarantined}));
    }
    if !walked.is_empty() {
        outcome.insert("walked".into(), json!(walked));
    }
    let (all, named, unknown) = {
        let (s, named_only) = (scope.clone(), Scope { dossiers: scope.dossiers.clone(), ..Scope::default() });
        env.writer
            .call(move |c| {
                Ok((resync::dossiers_in(c, &s)?, resync::dossiers_in(c, &named_only)?, resync::unknown_codes(c, &s)?))
            })
            .await?
    };
    if !unknown.is_empty() {
        outcome.insert("unknown_codes".into(), json!(unknown));
    }
    let named: HashSet<i64> = named.into_iter().collect();
    let mut queued = 0u64;
    for (n, chunk) in all.chunks(CHUNK).enumerate() {
        anyhow::ensure!(!stop.is_cancelled(), "stopped after {} of {} case(s)", n * CHUNK, all.len());
        progress("merging".into(), (n * CHUNK) as u64, all.len() as u64).await;
        queued += remerge(env, chunk, &named).await?;
    }
    outcome.insert("dossiers".into(), json!(all.len()));
    outcome.insert("queued".into(), json!(queued));
    Ok(serde_json::Value::Object(outcome))
}

/// Map the members of some cases again from their stored payloads, then merge the cases again and
/// queue what the portal must learn. Returns the outbox rows written.
async fn remerge(env: &Env, ids: &[i64], named: &HashSet<i64>) -> anyhow::Result<u64> {
    let list = ids.to_vec();
    let payloads = env.writer.call(move |c| resync::member_payloads(c, &list)).await?;
    let mut by_source: BTreeMap<String, Vec<(String, serde_json::Value)>> = BTreeMap::new();
    for (source, text) in payloads {
        // A payload that no longer parses was stored by an older release: leave it as it is.
        if let Ok(v) = serde_json::from_str(&text) {
            by_source.entry(source).or_default().push((text, v));
        }
    }
    let mut pages = Vec::new();
    for (source, raws) in by_source {
        // A source no longer configured: its records stay as they were mapped.
        let Some(src) = env.settings.sources.iter().find(|s| s.config.name == source) else { continue };
        let mapper = Mapper::new(src.descriptor.clone());
        let items = raws.into_iter().map(|(t, v)| crate::source::remapped(&mapper, &source, &v, t)).collect();
        pages.push(Page { source, items, cursor: None, remap: true });
    }
    let (ctx, now) = (env.ctx.clone(), env.clock.now());
    let forced: Vec<(i64, bool)> = ids.iter().map(|id| (*id, named.contains(id))).collect();
    env.writer
        .call(move |c| {
            let mut written = 0u64;
            for page in pages {
                written += u64::from(ingest::ingest_page(c, &ctx, page, now)?.enqueued);
            }
            let tx = c.transaction()?;
            for (id, force) in forced {
                written += u64::from(ingest::recompute(&tx, &ctx, id, now, force)?);
            }
            tx.commit()?;
            Ok(written)
        })
        .await
}

/// The daemon's re-sync task: take pending requests one at a time, within a second of their
/// arrival.
pub async fn run(env: Env, stop: CancellationToken) {
    loop {
        let now = env.clock.now();
        match env.writer.call(move |c| resync::take(c, now)).await {
            Ok(Some(req)) => run_one(&env, &req, &stop).await,
            Ok(None) => {}
            Err(e) => tracing::error!(error = %format!("{e:#}"), "cannot read re-sync requests"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Carry out a request taken from the queue and record its end. A request cut short by a stop
/// stays running, to be taken again at the next start.
pub async fn run_one(env: &Env, req: &Request, stop: &CancellationToken) {
    tracing::info!(request = req.id, scope = %req.scope.describe(), by = %req.requested_by, "re-sync started");
    let outcome = execute(env, req, stop).await;
    if stop.is_cancelled() {
        tracing::info!(request = req.id, "re-sync interrupted by the stop; it runs again at the next start");
        return;
    }
    let outcome = outcome.map_err(|e| format!("{e:#}"));
    match &outcome {
        Ok(v) => tracing::info!(request = req.id, outcome = %v, "re-sync done"),
        Err(e) => tracing::error!(request = req.id, error = %e, "re-sync failed"),
    }
    let (req, now) = (req.clone(), env.clock.now());
    if let Err(e) = env.writer.call(move |c| resync::finish(c, &req, outcome, now)).await {
        tracing::error!(error = %format!("{e:#}"), "cannot record the end of a re-sync");
    }
}
