//! The daemon: a runner per source, one delivery task, the verify sweep, the re-sync task, the
//! deadline watch, the store's writer thread, systemd notification, reload on SIGHUP, and a clean
//! stop.
//!
//! Stop order on SIGTERM: the stop token fires; pollers stop between pages and delivery between
//! sends (a page's transaction or an acknowledgement already handed to the writer is finished);
//! the writer thread drains its queue; the lease is released.
//!
//! Reload on SIGHUP: the configuration and descriptors are read again; if they are valid the
//! workers are stopped the same way and started again with them, and quarantined records are mapped
//! again (a descriptor fix releases them). If not, the problems go to the sync log and the daemon
//! keeps running as it was.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::core::mapping::Mapper;
use crate::portal::client::PortalClient;
use crate::portal::delivery::Delivery;
use crate::source::Poller;
use crate::source::fetch::HttpFetch;
use crate::source::runner::Runner;
use crate::stats::Counters;
use crate::store::ingest::{self, MergeCtx};
use crate::store::synclog::{Entry, Level};
use crate::store::{self, Lease, Writer};

/// Tell systemd (a no-op when not run by systemd: `NOTIFY_SOCKET` unset).
fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!(error = %e, "systemd notification failed");
    }
}

/// The configured sources as the store registers them at the start (`ingest::register_sources`).
pub fn registered_sources(
    settings: &Settings,
) -> Vec<(String, String, crate::core::descriptor::SystemKind, crate::config::PortalMode)> {
    settings
        .sources
        .iter()
        .map(|s| (s.config.name.clone(), s.config.adapter.clone(), s.descriptor.kind, s.config.portal_mode))
        .collect()
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
        identity: identity_linking(&settings.config.linking),
        deadlines: Some(settings.deadlines.clone()),
    }
}

/// The identity linking the configuration enables (its key was checked when it was loaded).
fn identity_linking(c: &crate::config::LinkingConfig) -> Option<crate::core::identity::IdentityLinking> {
    if c.identity_procedures.is_empty() {
        return None;
    }
    match c.identity_key.as_ref().map(|k| k.resolve()) {
        Some(Ok(key)) => Some(crate::core::identity::IdentityLinking::new(
            key.as_bytes(),
            c.identity_procedures.clone(),
            jiff::SignedDuration::from_hours(c.identity_window_hours as i64),
        )),
        Some(Err(e)) => {
            tracing::error!(error = %e, "linking by identity is off: its key cannot be read");
            None
        }
        None => None,
    }
}

async fn log(writer: &Writer, clock: &SharedClock, entry: Entry) {
    writer.log_or_complain(clock.now(), entry).await;
}

/// The tasks that a reload replaces.
struct Workers {
    stop: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
}

impl Workers {
    async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn start_workers(
    settings: &Settings,
    writer: &Writer,
    clock: &SharedClock,
    stats: &Arc<Counters>,
) -> anyhow::Result<Workers> {
    let registered = registered_sources(settings);
    writer.call(move |c| ingest::register_sources(c, &registered)).await?;
    let ctx = Arc::new(merge_ctx(settings));
    let env = crate::resync::Env {
        settings: Arc::new(settings.clone()),
        writer: writer.clone(),
        clock: clock.clone(),
        ctx: ctx.clone(),
    };
    // A descriptor fix (this start, or a reload) releases what it makes mappable.
    crate::resync::retry_quarantine(&env).await?;
    let stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    for src in settings.sources.iter().filter(|s| s.config.enabled) {
        let fetch = HttpFetch::new(src).with_context(|| format!("source {}", src.config.name))?;
        let mapper = Mapper::new(src.descriptor.clone());
        let poller = Poller::new(
            &src.config.name,
            mapper,
            fetch,
            src.config.lookback_secs,
            clock.clone(),
            writer.clone(),
            ctx.clone(),
        );
        let runner = Runner {
            poller,
            config: src.config.clone(),
            writer: writer.clone(),
            clock: clock.clone(),
            stats: stats.clone(),
        };
        tasks.spawn(runner.run(stop.clone()));
    }
    let client = PortalClient::new(settings.config.portal.clone())?;
    tasks.spawn(crate::portal::verify::run(
        env.settings.clone(),
        client.sibling(),
        writer.clone(),
        clock.clone(),
        ctx.clone(),
        stop.clone(),
    ));
    let delivery =
        Delivery::new(client, writer.clone(), clock.clone(), settings.config.delivery.clone(), stats.clone());
    tasks.spawn(delivery.run(stop.clone()));
    tasks.spawn(crate::watch::run(env.settings.clone(), writer.clone(), clock.clone(), stop.clone()));
    tasks.spawn(crate::retention::run(env.settings.clone(), writer.clone(), clock.clone(), stop.clone()));
    tasks.spawn(crate::resync::run(env, stop.clone()));
    Ok(Workers { stop, tasks })
}

/// Run the daemon until `stop` fires; each message on `reload` re-reads the configuration.
pub async fn run(
    settings: Settings,
    stop: CancellationToken,
    mut reload: mpsc::Receiver<()>,
    stats: Arc<Counters>,
) -> anyhow::Result<()> {
    let db = settings.db_path();
    let lease = tokio::select! {
        l = Lease::acquire(&db, || tracing::warn!(db = %db.display(), "another dvc-bridge process holds the writer lease; waiting for it")) => l?,
        _ = stop.cancelled() => return Ok(()),
    };
    let conn = store::open_writer(&db)?;
    let interrupted = store::resync::requeue_interrupted(&conn)?;
    if interrupted > 0 {
        tracing::info!(requests = interrupted, "re-sync requests cut short by the last stop run again");
    }
    let (writer, writer_thread) = Writer::start(conn);
    let clock = settings.clock();
    // Not reloaded: a new address takes a restart.
    if settings.config.metrics.enabled {
        let m = &settings.config.metrics;
        let served =
            crate::metrics::serve(m.listen, Arc::new(settings.clone()), clock.clone(), stats.clone(), stop.clone())
                .await;
        let entry = match served {
            Ok(addr) => {
                tracing::info!(%addr, "metrics at http://{addr}/metrics, health at http://{addr}/healthz");
                Entry::new(
                    Level::Info,
                    "metrics.listening",
                    format!("metrics at http://{addr}/metrics, health at /healthz"),
                )
                .details(serde_json::json!({"addr": addr.to_string()}))
            }
            Err(e) => {
                tracing::error!(addr = %m.listen, error = %format!("{e:#}"), "metrics not served; syncing goes on");
                Entry::new(
                    Level::Error,
                    "metrics.failed",
                    format!("metrics not served on {}: {e:#}; check [metrics] listen (syncing goes on)", m.listen),
                )
            }
        };
        log(&writer, &clock, entry).await;
    }
    let mut workers = start_workers(&settings, &writer, &clock, &stats).await?;
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
    let watchdog = sd_notify::watchdog_enabled().map(|period| {
        let (w, s) = (writer.clone(), stop.clone());
        tokio::spawn(async move {
            while !s.is_cancelled() {
                if w.call(|_| Ok(())).await.is_ok() {
                    notify(&[sd_notify::NotifyState::Watchdog]);
                }
                tokio::select! {
                    _ = tokio::time::sleep(period / 2) => {}
                    _ = s.cancelled() => {}
                }
            }
        })
    });

    let file = settings.file.clone();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(()) = reload.recv() => {
                notify(&[sd_notify::NotifyState::Reloading]);
                match crate::config::load(&file, true) {
                    Err(errors) => {
                        tracing::error!(problems = %errors, "reload refused: the configuration has problems; still running the previous one");
                        log(&writer, &clock, Entry::new(Level::Error, "config.reload_failed", format!("reload refused, previous configuration kept: {errors}"))).await;
                    }
                    Ok(new) => {
                        workers.stop().await;
                        workers = start_workers(&new, &writer, &clock, &stats).await?;
                        log(&writer, &clock, Entry::new(Level::Info, "config.reloaded", format!("configuration and descriptors reloaded: {} source(s)", new.sources.len()))).await;
                        tracing::info!("configuration reloaded");
                    }
                }
                notify(&[sd_notify::NotifyState::Ready]);
            }
        }
    }
    notify(&[sd_notify::NotifyState::Stopping, sd_notify::NotifyState::Status("stopping")]);
    tracing::info!("stopping: finishing work in flight");
    workers.stop().await;
    if let Some(w) = watchdog {
        let _ = w.await;
    }
    log(&writer, &clock, Entry::new(Level::Info, "daemon.stopped", "dvc-bridge stopped cleanly")).await;
    drop(writer);
    tokio::task::spawn_blocking(move || writer_thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the store writer thread panicked"))?;
    drop(lease);
    Ok(())
}

/// SIGTERM or SIGINT fire the stop token; SIGHUP sends a reload request.
pub fn signals() -> anyhow::Result<(CancellationToken, mpsc::Receiver<()>)> {
    use tokio::signal::unix::{SignalKind, signal};
    let stop = CancellationToken::new();
    let (tx, rx) = mpsc::channel(4);
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
                    tracing::info!("SIGHUP received: reloading the configuration");
                    let _ = tx.try_send(());
                }
            }
        }
        s.cancel();
    });
    Ok((stop, rx))
}
