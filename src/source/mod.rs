//! Polling one upstream system: fetch pages through its descriptor, map them, commit each page in
//! one store transaction, and advance the cursor only as far as the walk has proven complete.
//!
//! Cursor = (updated time, native id), read back with `>=` from `cursor − lookback`, and never set
//! past the poll's start minus the lookback. Two walks:
//! - `updated_desc` (no "updated since" filter, VNPT iGate): page down from the newest until a page
//!   reaches below the watermark. Pages only ever shift towards later pages while the source
//!   changes (an updated record jumps to the front), so a walk may read a record twice but never
//!   skips one; the record that jumped is newer than the poll's start and the next poll sees it.
//!   The cursor advances only when the walk reached the watermark.
//! - `updated_asc` with an inclusive filter: a keyset walk, each request starting again at the last
//!   updated time read (so records moving to the end during the walk cannot shift others out of
//!   reach), stepping the page number only when a whole page shares one timestamp.

pub mod auth;

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use reqwest::Url;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::LoadedSource;
use crate::core::descriptor::{Method, PageOrder};
use crate::core::mapping::{Mapper, lookup};
use crate::core::timefmt::format_time;
use crate::net::{self, Failure};
use crate::store::Writer;
use crate::store::ingest::{self, Incoming, IngestReport, MergeCtx, Page};
use auth::Auth;

/// A walk is abandoned past this many pages: a source that never ends its listing is broken.
const MAX_PAGES: u64 = 100_000;

/// The outcome of one poll.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct PollReport {
    pub pages: u32,
    pub records: u32,
    pub ingest: IngestReport,
}

pub struct Poller {
    pub name: String,
    mapper: Mapper,
    base_url: String,
    client: reqwest::Client,
    limiter: Arc<governor::DefaultDirectRateLimiter>,
    auth: Auth,
    lookback: SignedDuration,
    max_retries: u32,
    clock: SharedClock,
    writer: Writer,
    ctx: Arc<MergeCtx>,
}

impl Poller {
    pub fn new(src: &LoadedSource, clock: SharedClock, writer: Writer, ctx: Arc<MergeCtx>) -> anyhow::Result<Poller> {
        let d = &src.descriptor;
        Ok(Poller {
            name: src.config.name.clone(),
            mapper: Mapper::new(d.clone()),
            base_url: src.base_url.trim_end_matches('/').to_string(),
            client: net::client(Duration::from_secs(d.http.timeout_secs))?,
            limiter: net::limiter(d.http.rate_limit_per_sec),
            auth: Auth::new(&d.auth, &src.config.credentials)?,
            lookback: SignedDuration::from_secs(src.config.lookback_secs as i64),
            max_retries: d.http.max_retries,
            clock,
            writer,
            ctx,
        })
    }

    /// One request for one page, with auth and rate limit; re-authenticates once on a 401.
    async fn fetch_once(&mut self, page: u64, since: Option<Timestamp>) -> Result<Vec<serde_json::Value>, Failure> {
        let d = &self.mapper.descriptor;
        let mut url = Url::parse(&format!("{}{}", self.base_url, d.list.path))
            .map_err(|e| Failure::Permanent(format!("bad list URL: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in &d.list.query {
                q.append_pair(k, v);
            }
            q.append_pair(&d.pagination.page_param, &page.to_string());
            q.append_pair(&d.pagination.size_param, &d.list.page_size.to_string());
            if let (Some(param), Some(t)) = (&d.pagination.updated_since_param, since) {
                let fmt = d.pagination.updated_since_format.as_ref().unwrap_or(&d.dates.format);
                q.append_pair(param, &format_time(t, fmt, &d.time_zone()));
            }
        }
        let method = d.list.method;
        for attempt in 0..2 {
            self.limiter.until_ready().await;
            let req = match method {
                Method::Get => self.client.get(url.clone()),
                Method::Post => self.client.post(url.clone()),
            };
            let req = self.auth.apply(&self.client, &self.base_url, req.header("Accept", "application/json")).await?;
            let resp = req.send().await.map_err(|e| net::from_reqwest(&e))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.text().await.map_err(|e| net::from_reqwest(&e))?;
            if !status.is_success() {
                match net::from_status(status, &headers, &body) {
                    Failure::Unauthorized(_) if attempt == 0 => {
                        self.auth.invalidate();
                        continue;
                    }
                    Failure::Unauthorized(r) => return Err(Failure::Permanent(format!("credentials refused: {r}"))),
                    other => return Err(other),
                }
            }
            return self.records_of(&net::parse_json(&body)?);
        }
        Err(Failure::Permanent("credentials refused twice".into()))
    }

    fn records_of(&self, v: &serde_json::Value) -> Result<Vec<serde_json::Value>, Failure> {
        let r = &self.mapper.descriptor.response;
        if let Some(p) = &r.success_path {
            let code = lookup(v, p).map(|c| c.as_str().map(str::to_string).unwrap_or_else(|| c.to_string()));
            if !code.as_ref().is_some_and(|c| r.success_values.contains(c)) {
                return Err(Failure::transient(format!("the system answered with result code {code:?} at `{p}`")));
            }
        }
        match lookup(v, &r.records) {
            Some(serde_json::Value::Array(a)) => Ok(a.clone()),
            None => Ok(Vec::new()),
            Some(_) => Err(Failure::transient(format!("`{}` in the response is not a list", r.records))),
        }
    }

    async fn fetch(&mut self, page: u64, since: Option<Timestamp>) -> Result<Vec<serde_json::Value>, Failure> {
        let mut schedule = net::backoff(self.max_retries, Duration::from_millis(250));
        loop {
            match self.fetch_once(page, since).await {
                Err(e) => match net::next_delay(&e, &mut schedule) {
                    Some(wait) => {
                        tracing::debug!(source = %self.name, page, error = %e, ?wait, "retrying page");
                        tokio::time::sleep(wait).await;
                    }
                    None => return Err(e),
                },
                ok => return ok,
            }
        }
    }

    fn map_page(&self, raw: Vec<serde_json::Value>) -> (Vec<Incoming>, Vec<(Timestamp, String)>) {
        let mut items = Vec::with_capacity(raw.len());
        let mut keys = Vec::with_capacity(raw.len());
        for v in raw {
            let id = self.mapper.native_id(&v);
            if let (Some(t), Some(id)) = (self.mapper.updated_at(&v), id.clone()) {
                keys.push((t, id));
            }
            match self.mapper.map(&self.name, &v) {
                Ok(r) => items.push(Incoming::Mapped { record: Box::new(r), raw: v }),
                Err(e) => items.push(Incoming::Bad { native_id: id, reason: e.to_string(), raw: v }),
            }
        }
        (items, keys)
    }

    async fn commit(&self, items: Vec<Incoming>, cursor: Option<(Timestamp, String)>) -> anyhow::Result<IngestReport> {
        let ctx = self.ctx.clone();
        let page = Page { source: self.name.clone(), items, cursor };
        let now = self.clock.now();
        self.writer.call(move |c| ingest::ingest_page(c, &ctx, page, now)).await
    }

    /// Poll once. Returns early (without advancing the cursor further) when `stop` fires; what was
    /// committed stays committed.
    pub async fn poll(&mut self, stop: &CancellationToken) -> anyhow::Result<PollReport> {
        let name = self.name.clone();
        let stored = self.writer.call(move |c| ingest::cursor(c, &name)).await?;
        let start = self.clock.now();
        // Nothing committed may claim to cover time the source could still be writing.
        let cap = start.checked_sub(self.lookback).unwrap_or(start);
        let watermark = stored.as_ref().map(|c| c.0.checked_sub(self.lookback).unwrap_or(c.0));
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
        let d = &self.mapper.descriptor;
        let (order, first, size) = (d.pagination.order, d.pagination.first_page, d.list.page_size as usize);
        let mut report = PollReport::default();
        let mut page = first;
        let mut since = watermark;
        let mut max_seen: Option<(Timestamp, String)> = None;
        loop {
            if stop.is_cancelled() {
                return Ok(report);
            }
            if page - first >= MAX_PAGES {
                anyhow::bail!("walked {MAX_PAGES} pages without reaching the end: the source's paging looks broken");
            }
            let raw = tokio::select! {
                r = self.fetch(page, if order == PageOrder::UpdatedAsc { since } else { None }) => r?,
                _ = stop.cancelled() => return Ok(report),
            };
            let n = raw.len();
            let (items, keys) = self.map_page(raw);
            report.pages += 1;
            report.records += n as u32;
            let page_max = keys.iter().max().cloned();
            let page_min = keys.iter().map(|k| k.0).min();
            if let Some(m) = &page_max
                && max_seen.as_ref().is_none_or(|s| m > s)
            {
                max_seen = Some(m.clone());
            }
            let last_page = n < size;
            match order {
                PageOrder::UpdatedDesc => {
                    let reached = last_page || matches!((watermark, page_min), (Some(w), Some(m)) if m < w);
                    let cursor = if reached { advance(max_seen.clone()) } else { None };
                    report.ingest += self.commit(items, cursor).await?;
                    if reached {
                        return Ok(report);
                    }
                    page += 1;
                }
                PageOrder::UpdatedAsc => {
                    report.ingest += self.commit(items, advance(page_max.clone())).await?;
                    if last_page {
                        return Ok(report);
                    }
                    match page_max {
                        Some((t, _)) if since.is_none_or(|s| t > s) => {
                            since = Some(t);
                            page = first;
                        }
                        _ => page += 1,
                    }
                }
            }
        }
    }
}
