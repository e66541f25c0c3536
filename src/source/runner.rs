//! One source's life in the daemon: poll on its interval, sweep in full on its schedule, back off
//! and open the circuit breaker when it fails or is slow, and record all of it for `status` and the
//! sync log. Each source has its own runner, so one system down never slows the others.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::Poller;
use super::breaker::{Breaker, BreakerConfig, Transition};
use super::fetch::Fetch;
use crate::clock::SharedClock;
use crate::config::SourceConfig;
use crate::stats::Counters;
use crate::store::synclog::{Entry, Level};
use crate::store::{Writer, report, ts};

pub struct Runner<F: Fetch> {
    pub poller: Poller<F>,
    pub config: SourceConfig,
    pub writer: Writer,
    pub clock: SharedClock,
    pub stats: Arc<Counters>,
}

impl<F: Fetch> Runner<F> {
    async fn log(&self, entry: Entry) {
        self.writer.log_or_complain(self.clock.now(), entry).await;
    }

    async fn store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Option<T> {
        match self.writer.call(move |c| Ok(f(c)?)).await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::error!(source = %self.config.name, error = %format!("{e:#}"), "store unavailable");
                None
            }
        }
    }

    fn sweep_due(&self, last: Option<Timestamp>, now: Timestamp) -> bool {
        let every = self.config.full_sweep_interval_secs;
        every > 0 && last.is_none_or(|l| now.duration_since(l).as_secs() >= every as i64)
    }

    /// Run until `stop` fires.
    pub async fn run(mut self, stop: CancellationToken) {
        let name = self.config.name.clone();
        let interval = Duration::from_secs(self.config.poll_interval_secs.max(1));
        let mut breaker = Breaker::new(BreakerConfig {
            failures_to_open: self.config.breaker_failures.max(1),
            cooldown: Duration::from_secs(self.config.breaker_cooldown_secs.max(1)),
            max_cooldown: Duration::from_secs(1800),
        });
        let n = name.clone();
        let mut last_sweep: Option<Timestamp> =
            self.store(move |c| report::last_sweep(c, &n)).await.flatten().and_then(|s| s.parse().ok());
        let mut failing: Option<String> = None;
        let mut consecutive = 0u32;
        while !stop.is_cancelled() {
            let (wait, probing) = breaker.wait(Instant::now());
            if probing.is_some() {
                self.log(
                    Entry::new(
                        Level::Info,
                        "source.breaker_half_open",
                        "cooling-off over: probing the source with one poll",
                    )
                    .source(&name),
                )
                .await;
                let n = name.clone();
                self.store(move |c| report::breaker_changed(c, &n, "half-open", None)).await;
            }
            if wait > Duration::ZERO {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = stop.cancelled() => break,
                }
            }
            let full = self.sweep_due(last_sweep, self.clock.now());
            let (n, at) = (name.clone(), ts(self.clock.now()));
            self.store(move |c| report::poll_started(c, &n, &at)).await;
            let started = Instant::now();
            let outcome = self.poller.poll(&stop, full).await;
            let elapsed = started.elapsed();
            let error = outcome.as_ref().err().map(|e| format!("{e:#}"));
            let (n, at, err) = (name.clone(), ts(self.clock.now()), error.clone());
            self.store(move |c| report::poll_finished(c, &n, &at, err.as_deref())).await;
            let mut healthy = error.is_none();
            crate::metrics::poll(&name, elapsed, outcome.as_ref().ok());
            match outcome {
                Ok(r) => {
                    Counters::add(&self.stats.polled, u64::from(r.records));
                    Counters::add(&self.stats.new, u64::from(r.ingest.new));
                    Counters::add(&self.stats.changed, u64::from(r.ingest.changed));
                    Counters::add(&self.stats.quarantined, u64::from(r.ingest.quarantined));
                    tracing::debug!(source = %name, full, pages = r.pages, records = r.records, new = r.ingest.new, changed = r.ingest.changed, "poll done");
                    if full && r.complete {
                        let now = self.clock.now();
                        last_sweep = Some(now);
                        let (n, at) = (name.clone(), ts(now));
                        self.store(move |c| report::swept(c, &n, &at)).await;
                        self.log(
                            Entry::new(
                                Level::Info,
                                "source.full_sweep",
                                format!("full sweep: {} records read in {} pages", r.records, r.pages),
                            )
                            .source(&name),
                        )
                        .await;
                    }
                    let per_page = elapsed / r.pages.max(1);
                    if per_page > Duration::from_secs(self.config.slow_page_secs.max(1)) {
                        healthy = false;
                        tracing::warn!(source = %name, ?per_page, "source is slow");
                    }
                    consecutive = 0;
                    if failing.take().is_some() {
                        self.log(Entry::new(Level::Info, "poll.recovered", "source answers again").source(&name)).await;
                    }
                }
                Err(_) => {
                    let msg = error.unwrap_or_default();
                    Counters::add(&self.stats.poll_errors, 1);
                    consecutive += 1;
                    tracing::warn!(source = %name, error = %msg, "poll failed");
                    if failing.as_deref() != Some(msg.as_str()) {
                        self.log(
                            Entry::new(
                                Level::Warn,
                                "poll.failed",
                                format!("poll failed: {msg}; retrying with backoff"),
                            )
                            .source(&name),
                        )
                        .await;
                        failing = Some(msg);
                    }
                }
            }
            if stop.is_cancelled() {
                break;
            }
            match breaker.record(Instant::now(), healthy) {
                Some(Transition::Opened { cooldown }) => {
                    let until = self.clock.after_real(cooldown);
                    self.log(
                        Entry::new(
                            Level::Warn,
                            "source.breaker_open",
                            format!("circuit breaker open: the source failed or was slow {} time(s) in a row; leaving it alone for {}s", self.config.breaker_failures, cooldown.as_secs()),
                        )
                        .source(&name),
                    )
                    .await;
                    let (n, u) = (name.clone(), ts(until));
                    self.store(move |c| report::breaker_changed(c, &n, "open", Some(&u))).await;
                    continue;
                }
                Some(Transition::Closed) => {
                    self.log(
                        Entry::new(Level::Info, "source.breaker_closed", "circuit breaker closed: polling normally")
                            .source(&name),
                    )
                    .await;
                    let n = name.clone();
                    self.store(move |c| report::breaker_changed(c, &n, "closed", None)).await;
                }
                Some(Transition::Probing) | None => {}
            }
            // Back off a failing source between polls (up to 8 intervals) before the breaker opens.
            let wait = interval * 2u32.saturating_pow(consecutive.min(3));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => {}
            }
        }
    }
}
