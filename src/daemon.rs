//! The daemon: one poll task per source, one delivery task, the store's writer thread, systemd
//! notification, and a clean stop.
//!
//! Stop order on SIGTERM: the stop token fires; pollers stop between pages and delivery between
//! sends (a page's transaction or an acknowledgement already handed to the writer is finished);
//! the writer thread drains its queue; the lease is released.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::portal::client::PortalClient;
use crate::portal::delivery::Delivery;
use crate::source::Poller;
use crate::stats::Counters;
use crate::store::ingest::{self, MergeCtx};
use crate::store::synclog::{self, Entry, Level};
use crate::store::{self, Lease, Writer, report, ts};

/// Tell systemd (a no-op when not run by systemd: `NOTIFY_SOCKET` unset).
fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!(error = %e, "systemd notification failed");
    }
}

/// Everything the merge must know, from the settings.
pub fn merge_ctx(settings: &Settings) -> MergeCtx {
    MergeCtx {
        sources: settings
            .sources
            .iter()
            .map(|s| (s.config.name.clone(), (s.descriptor.kind, s.config.portal_mode)))
            .collect(),
        cutover: settings.cutover.clone(),
    }
}

async fn log(writer: &Writer, clock: &SharedClock, entry: Entry) {
    let now = clock.now();
    if let Err(e) = writer.call(move |c| Ok(synclog::append(c, now, &entry)?)).await {
        tracing::error!(error = %format!("{e:#}"), "cannot write the sync log");
    }
}

async fn poll_loop(
    mut poller: Poller,
    writer: Writer,
    clock: SharedClock,
    interval: Duration,
    stop: CancellationToken,
    stats: Arc<Counters>,
) {
    let name = poller.name.clone();
    let mut failing: Option<String> = None;
    let mut consecutive = 0u32;
    while !stop.is_cancelled() {
        let at = ts(clock.now());
        let (n, a) = (name.clone(), at.clone());
        if let Err(e) = writer.call(move |c| Ok(report::poll_started(c, &n, &a)?)).await {
            tracing::error!(source = %name, error = %format!("{e:#}"), "store unavailable");
        }
        let outcome = poller.poll(&stop).await;
        let at = ts(clock.now());
        let error = outcome.as_ref().err().map(|e| format!("{e:#}"));
        let (n, err) = (name.clone(), error.clone());
        if let Err(e) = writer.call(move |c| Ok(report::poll_finished(c, &n, &at, err.as_deref())?)).await {
            tracing::error!(source = %name, error = %format!("{e:#}"), "store unavailable");
        }
        match outcome {
            Ok(r) => {
                Counters::add(&stats.polled, u64::from(r.records));
                Counters::add(&stats.new, u64::from(r.ingest.new));
                Counters::add(&stats.changed, u64::from(r.ingest.changed));
                Counters::add(&stats.quarantined, u64::from(r.ingest.quarantined));
                tracing::debug!(source = %name, pages = r.pages, records = r.records, new = r.ingest.new, changed = r.ingest.changed, "poll done");
                consecutive = 0;
                if failing.take().is_some() {
                    log(
                        &writer,
                        &clock,
                        Entry::new(Level::Info, "poll.recovered", "source answers again").source(&name),
                    )
                    .await;
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                Counters::add(&stats.poll_errors, 1);
                consecutive += 1;
                tracing::warn!(source = %name, error = %msg, "poll failed");
                if failing.as_deref() != Some(msg.as_str()) {
                    log(
                        &writer,
                        &clock,
                        Entry::new(Level::Warn, "poll.failed", format!("poll failed: {msg}; retrying with backoff"))
                            .source(&name),
                    )
                    .await;
                    failing = Some(msg);
                }
            }
        }
        // Back off a failing source (up to 32 intervals, at most 10 minutes): never hammer it.
        let factor = 2u32.saturating_pow(consecutive.min(5));
        let wait = (interval * factor).min(Duration::from_secs(600).max(interval));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => {}
        }
    }
}

/// Run the daemon until `stop` fires.
pub async fn run(settings: Settings, stop: CancellationToken, stats: Arc<Counters>) -> anyhow::Result<()> {
    let db = settings.db_path();
    let lease = tokio::select! {
        l = Lease::acquire(&db, || tracing::warn!(db = %db.display(), "another dvc-bridge process holds the writer lease; waiting for it")) => l?,
        _ = stop.cancelled() => return Ok(()),
    };
    let conn = store::open_writer(&db)?;
    let (writer, writer_thread) = Writer::start(conn);
    let clock = settings.clock();
    let registered: Vec<_> = settings
        .sources
        .iter()
        .map(|s| (s.config.name.clone(), s.config.adapter.clone(), s.descriptor.kind, s.config.portal_mode))
        .collect();
    writer.call(move |c| ingest::register_sources(c, &registered)).await?;
    let ctx = Arc::new(merge_ctx(&settings));

    let mut tasks = tokio::task::JoinSet::new();
    for src in settings.sources.iter().filter(|s| s.config.enabled) {
        let poller = Poller::new(src, clock.clone(), writer.clone(), ctx.clone())
            .with_context(|| format!("source {}", src.config.name))?;
        let interval = Duration::from_secs(src.config.poll_interval_secs);
        tasks.spawn(poll_loop(poller, writer.clone(), clock.clone(), interval, stop.clone(), stats.clone()));
    }
    let client = PortalClient::new(settings.config.portal.clone())?;
    let delivery =
        Delivery::new(client, writer.clone(), clock.clone(), settings.config.delivery.clone(), stats.clone());
    tasks.spawn(delivery.run(stop.clone()));

    log(
        &writer,
        &clock,
        Entry::new(
            Level::Info,
            "daemon.started",
            format!(
                "dvc-bridge {} started: {} source(s), database {}",
                env!("CARGO_PKG_VERSION"),
                settings.sources.len(),
                db.display()
            ),
        ),
    )
    .await;
    tracing::info!(sources = settings.sources.len(), db = %db.display(), "dvc-bridge running");
    notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("syncing")]);

    // The watchdog is pinged only while the writer answers: a wedged store stops the pings and
    // systemd restarts the service.
    if let Some(period) = sd_notify::watchdog_enabled() {
        let (w, s) = (writer.clone(), stop.clone());
        tasks.spawn(async move {
            while !s.is_cancelled() {
                if w.call(|_| Ok(())).await.is_ok() {
                    notify(&[sd_notify::NotifyState::Watchdog]);
                }
                tokio::select! {
                    _ = tokio::time::sleep(period / 2) => {}
                    _ = s.cancelled() => {}
                }
            }
        });
    }

    stop.cancelled().await;
    notify(&[sd_notify::NotifyState::Stopping, sd_notify::NotifyState::Status("stopping")]);
    tracing::info!("stopping: finishing work in flight");
    while tasks.join_next().await.is_some() {}
    log(&writer, &clock, Entry::new(Level::Info, "daemon.stopped", "dvc-bridge stopped cleanly")).await;
    drop(writer);
    tokio::task::spawn_blocking(move || writer_thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the store writer thread panicked"))?;
    drop(lease);
    Ok(())
}

/// A stop token fired by SIGTERM or SIGINT. SIGHUP is acknowledged in the log.
pub fn signal_stop() -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let stop = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let s = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM received"); break; }
                _ = int.recv() => { tracing::info!("SIGINT received"); break; }
                _ = hup.recv() => {
                    tracing::warn!("SIGHUP received: live reload is not implemented yet; restart the service to apply configuration changes");
                }
            }
        }
        s.cancel();
    });
    Ok(stop)
}
