//! Polling one upstream system: fetch pages, map them, commit each page in one store transaction,
//! and advance the cursor only as far as the walk has proven complete.
//!
//! Cursor = (updated time, native id), read back with `>=` from `cursor − lookback`, and never set
//! past the poll's start minus the lookback (so a source whose clock runs behind, or that commits a
//! change late, is still caught). The cursor never moves backwards. Two walks, whatever the
//! pagination style (page number, offset, token, link):
//! - `updated_desc` (no "updated since" filter, VNPT iGate): page down from the newest until a page
//!   reaches below the watermark. While the source changes, records only ever shift towards later
//!   pages (an updated record jumps to the front), so a walk may read a record twice but never skips
//!   one; the record that jumped is newer than the poll's start and the next poll sees it. The cursor
//!   advances only in the transaction of the page that reached the watermark.
//! - `updated_asc` with an inclusive filter: a keyset walk. After each page the walk starts again at
//!   the page's last updated time (so records moving to the end during the walk cannot shift others
//!   out of reach), and follows the source's continuation only when a whole page shares one
//!   timestamp. Each page commits the cursor it covers. Inside such a run, positions *can* shift:
//!   a record already read that is updated meanwhile leaves the run, and the record behind the
//!   page boundary slides into the part already read. It reappears later in the same walk with a
//!   newer time, which is how the walk notices: the cursor is then held at the run's time, so the
//!   next poll walks the run again, until a walk passes it undisturbed.
//!
//! A full sweep (`full = true`) walks everything from the beginning; it catches whatever an
//! incremental poll could not see (a record whose updated time the source never bumped).

pub mod auth;
pub mod breaker;
pub mod fetch;
mod raw;
pub mod runner;
#[cfg(test)]
mod walk_props;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::core::descriptor::PageOrder;
use crate::core::mapping::Mapper;
use crate::store::ingest::{self, Incoming, IngestReport, MergeCtx, Page};
use crate::store::{Pending, Writer};
use fetch::{Fetch, PageRequest, Position};

/// A walk is abandoned past this many pages: a source that never ends its listing is broken.
const MAX_PAGES: u64 = 1_000_000;

/// Pages are committed together up to this many records. Each commit rewrites every index page
/// it touched, and indexes keyed by a source's ids are touched at random: at a million records,
/// `bench ingest` made 17.8k records/s committing every 500 records, 20.5k every 1,000, 23.9k
/// every 2,000 (peak memory 129, 143, 147 MiB). A crash loses at most this much fetched work,
/// which the next poll reads again.
const COMMIT_RECORDS: usize = 2_000;
/// Records fetched wait at most this long for more to commit with (a slow source).
const COMMIT_WAIT: Duration = Duration::from_secs(1);

/// Pages fetched and mapped, waiting to be committed together.
struct Batch {
    items: Vec<Incoming>,
    cursor: Option<(Timestamp, String)>,
    since: Instant,
}

impl Batch {
    fn add(batch: &mut Option<Batch>, items: Vec<Incoming>, cursor: Option<(Timestamp, String)>) {
        let b = batch.get_or_insert_with(|| Batch { items: Vec::new(), cursor: None, since: Instant::now() });
        b.items.extend(items);
        // Each page's cursor holds once that page and every page before it are stored.
        if cursor.is_some() {
            b.cursor = cursor;
        }
    }

    fn full(&self) -> bool {
        self.items.len() >= COMMIT_RECORDS || self.since.elapsed() >= COMMIT_WAIT
    }
}

/// Map one raw record for the store: mapped, or quarantined with the reason.
/// `text`: the record as the source sent it, if known; `now`: when it is prepared.
pub fn incoming(
    mapper: &Mapper,
    source: &str,
    raw: &serde_json::Value,
    text: Option<String>,
    ctx: &MergeCtx,
    now: Timestamp,
) -> Incoming {
    let text = text.unwrap_or_else(|| raw.to_string());
    remapped(mapper, source, raw, text).prepared(ctx, now)
}

/// [`incoming`] for a stored payload mapped again (a re-sync re-merging its cases): nearly always
/// in a case already, so what the record would be on its own is left for the writer to prepare
/// if it ever needs it.
pub fn remapped(mapper: &Mapper, source: &str, raw: &serde_json::Value, text: String) -> Incoming {
    match mapper.map(source, raw) {
        Ok(r) => Incoming::remapped(r, text),
        Err(e) => Incoming::bad(mapper.native_id(raw), e.to_string(), text),
    }
}

/// A page handed to the writer.
struct Committing(Pending<(IngestReport, Page)>);

impl Committing {
    async fn wait(self) -> anyhow::Result<IngestReport> {
        let (report, page) = self.0.wait().await?;
        drop(page);
        Ok(report)
    }
}

/// The outcome of one poll.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct PollReport {
    pub pages: u32,
    pub records: u32,
    pub ingest: IngestReport,
    /// Whether the walk reached its end (false when stopped early).
    pub complete: bool,
}

pub struct Poller<F: Fetch> {
    pub name: String,
    mapper: Mapper,
    fetch: F,
    lookback: SignedDuration,
    clock: SharedClock,
    writer: Writer,
    ctx: Arc<MergeCtx>,
}

impl<F: Fetch> Poller<F> {
    pub fn new(
        name: &str,
        mapper: Mapper,
        fetch: F,
        lookback_secs: u64,
        clock: SharedClock,
        writer: Writer,
        ctx: Arc<MergeCtx>,
    ) -> Self {
        Poller {
            name: name.to_string(),
            mapper,
            fetch,
            lookback: SignedDuration::from_secs(lookback_secs as i64),
            clock,
            writer,
            ctx,
        }
    }

    fn map_page(
        &self,
        raw: Vec<serde_json::Value>,
        texts: Option<Vec<String>>,
    ) -> (Vec<Incoming>, Vec<(Timestamp, String)>) {
        let keys = raw.iter().filter_map(|v| Some((self.mapper.updated_at(v)?, self.mapper.native_id(v)?))).collect();
        let mut texts = texts.map(Vec::into_iter);
        let now = self.clock.now();
        let items = raw
            .iter()
            .map(|v| incoming(&self.mapper, &self.name, v, texts.as_mut().and_then(Iterator::next), &self.ctx, now))
            .collect();
        (items, keys)
    }

    /// Commit what is waiting and wait for every commit.
    async fn drain(
        &self,
        batch: &mut Option<Batch>,
        inflight: &mut Option<Committing>,
        report: &mut PollReport,
    ) -> anyhow::Result<()> {
        if let Some(p) = inflight.take() {
            report.ingest += p.wait().await?;
        }
        if let Some(b) = batch.take() {
            report.ingest += self.commit(b.items, b.cursor)?.wait().await?;
        }
        Ok(())
    }

    /// Hand a page to the writer; it commits while the walk fetches the next one.
    fn commit(&self, items: Vec<Incoming>, cursor: Option<(Timestamp, String)>) -> anyhow::Result<Committing> {
        let ctx = self.ctx.clone();
        let page = Page { source: self.name.clone(), items, cursor, remap: false };
        let now = self.clock.now();
        // The page comes back with the report, to be freed here rather than on the writer.
        Ok(Committing(self.writer.submit(move |c| Ok((ingest::ingest(c, &ctx, &page, now)?, page)))?))
    }

    /// Fetch a page that is not a repeat of the previous one, and that honours the filter. A system
    /// that answers a request for the next page with the page it just sent (a duplicated page), or
    /// a filtered request with records older than the filter (a stale or replayed answer, or a
    /// filter it ignores), would make the walk miss records: ask again, and fail the poll (leaving
    /// the cursor where it is) if it persists.
    async fn fetch_fresh(
        &mut self,
        req: &PageRequest,
        prev_ids: &[Option<String>],
    ) -> anyhow::Result<fetch::PageAnswer> {
        const ASKS: usize = 3;
        for ask in 0..ASKS {
            let answer = self.fetch.fetch(req).await?;
            let same_as_before = !prev_ids.is_empty()
                && answer.records.len() == prev_ids.len()
                && answer.records.iter().zip(prev_ids).all(|(v, id)| self.mapper.native_id(v) == *id);
            // A keyset restart may rightly answer exactly the previous page (every record of it at
            // the restart's time), but so does a stale repeat, whose continuation would skip the
            // listing's true first pages: it is asked once more, and then trusted.
            let repeated = same_as_before && (!matches!(req.position, Position::First) || ask == 0);
            // Judged at the filter's own granularity: the instant the source read from what was sent.
            let unfiltered = req
                .since
                .map(|s| fetch::since_filter(&self.mapper.descriptor, s).1)
                .is_some_and(|s| answer.records.iter().any(|v| self.mapper.updated_at(v).is_some_and(|t| t < s)));
            if !repeated && !unfiltered {
                return Ok(answer);
            }
            tracing::debug!(source = %self.name, position = ?req.position, repeated, unfiltered, "the source's answer cannot be trusted; asking again");
        }
        anyhow::bail!(
            "the source answered {ASKS} requests for {:?} (updated since {:?}) with a repeated page or records outside the filter: its paging is broken",
            req.position,
            req.since
        )
    }

    /// Poll once (`full`: a sweep from the beginning). Returns early, without advancing the cursor
    /// further, when `stop` fires; what was committed stays committed.
    pub async fn poll(&mut self, stop: &CancellationToken, full: bool) -> anyhow::Result<PollReport> {
        let name = self.name.clone();
        let stored = self.writer.call(move |c| ingest::cursor(c, &name)).await?;
        let start = self.clock.now();
        let cap = start.checked_sub(self.lookback).unwrap_or(start);
        let watermark =
            if full { None } else { stored.as_ref().map(|c| c.0.checked_sub(self.lookback).unwrap_or(c.0)) };
        // The cursor to commit: what was seen, capped, and never behind what is already stored.
        let advance = |seen: Option<(Timestamp, String)>| -> Option<(Timestamp, String)> {
            let mut c = seen?;
            if c.0 > cap {
                c = (cap, String::new());
            }
            match &stored {
                Some(s) if *s >= c => None,
                _ => Some(c),
            }
        };
        let order = self.mapper.descriptor.pagination.order;
        let mut report = PollReport::default();
        let mut req = PageRequest {
            position: Position::First,
            since: if order == PageOrder::UpdatedAsc { watermark } else { None },
        };
        let mut max_seen: Option<(Timestamp, String)> = None;
        let mut positions_seen: HashSet<(Position, Option<Timestamp>)> = HashSet::new();
        // Records read inside runs walked by continuation (id hash → the run's time), the earliest
        // run seen disturbed, and the earliest run walked by continuation at all. Only runs longer
        // than a page are tracked, so memory follows the longest such run, not the listing.
        let hasher = RandomState::new();
        let mut in_runs: HashMap<u64, Timestamp> = HashMap::new();
        let mut disturbed: Option<Timestamp> = None;
        let mut hold: Option<Timestamp> = None;
        let mut prev_keys: Vec<(Timestamp, String)> = Vec::new();
        let mut prev_ids: Vec<Option<String>> = Vec::new();
        // At most one page is committing while the next is fetched; pages commit in order.
        let mut inflight: Option<Committing> = None;
        let mut batch: Option<Batch> = None;
        loop {
            if stop.is_cancelled() {
                self.drain(&mut batch, &mut inflight, &mut report).await?;
                return Ok(report);
            }
            if u64::from(report.pages) >= MAX_PAGES {
                anyhow::bail!("walked {MAX_PAGES} pages without reaching the end: the source's paging looks broken");
            }
            // A continuation that comes back to where the walk already was would loop forever.
            if !matches!(req.position, Position::First) && !positions_seen.insert((req.position.clone(), req.since)) {
                anyhow::bail!(
                    "the source sent the walk back to a page it already read ({:?}): its paging is inconsistent",
                    req.position
                );
            }
            let answer = tokio::select! {
                r = self.fetch_fresh(&req, &prev_ids) => r,
                _ = stop.cancelled() => continue,
            };
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    // What was read before the failure is kept.
                    self.drain(&mut batch, &mut inflight, &mut report).await?;
                    return Err(e);
                }
            };
            prev_ids = answer.records.iter().map(|v| self.mapper.native_id(v)).collect();
            let n = answer.records.len();
            let (items, keys) = self.map_page(answer.records, answer.texts);
            report.pages += 1;
            report.records += n as u32;
            let page_max = keys.iter().max().cloned();
            let page_min = keys.iter().map(|k| k.0).min();
            if let Some(m) = &page_max
                && max_seen.as_ref().is_none_or(|s| m > s)
            {
                max_seen = Some(m.clone());
            }
            if order == PageOrder::UpdatedAsc {
                let run = match (matches!(req.position, Position::First), req.since) {
                    (false, Some(run)) => Some(run),
                    _ => None,
                };
                // The run's records on the page before count as read in it before this page is
                // checked: one of them that moved on is what shifts a record past this page.
                if let Some(run) = run {
                    hold = Some(hold.map_or(run, |h| h.min(run)));
                    for (t, id) in &prev_keys {
                        if *t == run {
                            in_runs.insert(hasher.hash_one(id), run);
                        }
                    }
                }
                for (t, id) in &keys {
                    if let Some(run) = in_runs.get(&hasher.hash_one(id))
                        && run < t
                    {
                        disturbed = Some(disturbed.map_or(*run, |d| d.min(*run)));
                    }
                }
                if let Some(run) = run {
                    for (t, id) in &keys {
                        if *t == run {
                            in_runs.insert(hasher.hash_one(id), run);
                        }
                    }
                }
            }
            let below_watermark = matches!((watermark, page_min), (Some(w), Some(m)) if m < w);
            let held = |c: Option<(Timestamp, String)>, at: Option<Timestamp>| match (c, at) {
                (Some(c), Some(t)) if c.0 > t => advance(Some((t, String::new()))),
                (c, _) => advance(c),
            };
            let cursor = match order {
                PageOrder::UpdatedDesc if answer.next.is_none() || below_watermark => advance(max_seen.clone()),
                PageOrder::UpdatedDesc => None,
                // The last page of an undisturbed walk may pass the runs it walked by continuation.
                PageOrder::UpdatedAsc if answer.next.is_none() => held(page_max.clone(), disturbed),
                PageOrder::UpdatedAsc => held(page_max.clone(), hold),
            };
            if disturbed.is_some() && answer.next.is_none() {
                tracing::debug!(source = %self.name, ?disturbed, "a run of equal timestamps changed during the walk; the next poll walks it again");
            }
            prev_keys = keys;
            Batch::add(&mut batch, items, cursor);
            let next = match answer.next {
                Some(next) if !(order == PageOrder::UpdatedDesc && below_watermark) => next,
                _ => {
                    self.drain(&mut batch, &mut inflight, &mut report).await?;
                    report.complete = true;
                    return Ok(report);
                }
            };
            if let Some(b) = batch.take_if(|b| b.full()) {
                if let Some(p) = inflight.take() {
                    report.ingest += p.wait().await?;
                }
                inflight = Some(self.commit(b.items, b.cursor)?);
            }
            req = match page_max {
                // Keyset restart: from the last updated time read, not from a position that may have shifted.
                Some((t, _)) if order == PageOrder::UpdatedAsc && req.since.is_none_or(|s| t > s) => {
                    PageRequest { position: Position::First, since: Some(t) }
                }
                _ => PageRequest { position: next, since: req.since },
            };
        }
    }
}
