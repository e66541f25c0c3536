//! Metrics and health on a loopback HTTP port (`[metrics] listen`): Prometheus text at `/metrics`,
//! `/healthz` for probes.
//!
//! Events are counted where they happen (a poll: `poll`); the rest is sampled from the store every
//! few seconds on a reader connection of its own (outbox depth and age, per-source lag and
//! quarantine, dossiers at risk, overdue and falsely late) and from the in-process counters the
//! demo's line also reads (deliveries). `/healthz` answers what `dvc-bridge status` would: 200 for
//! healthy or degraded, 503 when failing or when the store cannot be read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::source::PollReport;
use crate::stats::Counters;
use crate::store::{deadlines, report};

/// How often gauges are read from the store.
const SAMPLE: Duration = Duration::from_secs(5);

/// The process-wide recorder, installed once: a reload keeps it (and its counts).
pub fn install() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(&[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0])?
        .install_recorder()?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// One poll of a source: its count, its duration, what it read.
pub fn poll(source: &str, elapsed: Duration, report: Option<&PollReport>) {
    let source = source.to_string();
    histogram!("dvc_bridge_poll_duration_seconds", "source" => source.clone()).record(elapsed.as_secs_f64());
    match report {
        Some(r) => {
            counter!("dvc_bridge_polls_total", "source" => source.clone(), "outcome" => "ok").increment(1);
            for (outcome, n) in [
                ("new", r.ingest.new),
                ("changed", r.ingest.changed),
                ("unchanged", r.ingest.unchanged),
                ("quarantined", r.ingest.quarantined),
            ] {
                counter!("dvc_bridge_records_total", "source" => source.clone(), "outcome" => outcome)
                    .increment(u64::from(n));
            }
        }
        None => counter!("dvc_bridge_polls_total", "source" => source, "outcome" => "error").increment(1),
    }
}

#[derive(Clone)]
struct App {
    handle: PrometheusHandle,
    settings: Arc<Settings>,
}

/// Serve `/metrics` and `/healthz` on `addr` and sample the store until `stop` fires. A port that
/// cannot be bound is an error for the caller to report; the daemon keeps syncing without it.
pub async fn serve(
    addr: SocketAddr,
    settings: Arc<Settings>,
    clock: SharedClock,
    stats: Arc<Counters>,
    stop: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let handle = install()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = App { handle, settings: settings.clone() };
    let router = Router::new().route("/metrics", get(metrics)).route("/healthz", get(healthz)).with_state(app);
    let s = stop.clone();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(s.cancelled_owned()).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    tokio::spawn(sample_loop(settings, clock, stats, stop));
    Ok(bound)
}

async fn metrics(State(app): State<App>) -> impl IntoResponse {
    app.handle.run_upkeep();
    ([("content-type", "text/plain; version=0.0.4")], app.handle.render())
}

async fn healthz(State(app): State<App>) -> impl IntoResponse {
    let db = app.settings.db_path();
    let read = tokio::task::spawn_blocking(move || -> anyhow::Result<report::Overview> {
        let conn = crate::store::open_reader(&db)?;
        Ok(report::overview(&conn)?)
    })
    .await;
    match read {
        Ok(Ok(o)) => {
            let (code, why) = crate::cli::status::health(&o);
            let name = crate::cli::status::HEALTH[code as usize];
            let status = if code == crate::cli::EXIT_ERROR { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
            (status, axum::Json(serde_json::json!({"health": name, "reasons": why})))
        }
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                serde_json::json!({"health": "failing", "reasons": [format!("the store cannot be read: {e:#}")]}),
            ),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"health": "failing", "reasons": [e.to_string()]})),
        ),
    }
}

async fn sample_loop(settings: Arc<Settings>, clock: SharedClock, stats: Arc<Counters>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let (s, now) = (settings.clone(), clock.now());
        match tokio::task::spawn_blocking(move || sample(&s, now)).await {
            Ok(Err(e)) => tracing::debug!(error = %format!("{e:#}"), "metrics: the store could not be sampled"),
            Err(e) => tracing::debug!(error = %e, "metrics: sampling panicked"),
            Ok(Ok(())) => {}
        }
        for (name, value) in [
            ("dvc_bridge_portal_dossiers_acked_total", &stats.pushed),
            ("dvc_bridge_portal_duplicates_closed_total", &stats.closed),
            ("dvc_bridge_portal_steps_acked_total", &stats.steps),
            ("dvc_bridge_portal_rejected_total", &stats.parked),
            ("dvc_bridge_portal_errors_total", &stats.push_errors),
        ] {
            counter!(name).absolute(Counters::get(value));
        }
        tokio::select! {
            _ = tokio::time::sleep(SAMPLE) => {}
            _ = stop.cancelled() => {}
        }
    }
}

/// Gauges read from the store.
fn sample(settings: &Settings, now: jiff::Timestamp) -> anyhow::Result<()> {
    let conn = crate::store::open_reader(&settings.db_path())?;
    let o = report::overview(&conn)?;
    for s in &o.sources {
        let lag = s
            .last_ok_at
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map_or(f64::NAN, |t| now.duration_since(t).as_secs_f64());
        gauge!("dvc_bridge_source_lag_seconds", "source" => s.name.clone()).set(lag);
        gauge!("dvc_bridge_source_quarantined", "source" => s.name.clone()).set(s.quarantined as f64);
        gauge!("dvc_bridge_source_consecutive_errors", "source" => s.name.clone()).set(s.consecutive_errors as f64);
        gauge!("dvc_bridge_source_breaker_open", "source" => s.name.clone()).set(if s.breaker == "closed" {
            0.0
        } else {
            1.0
        });
    }
    let d = &o.delivery;
    gauge!("dvc_bridge_outbox_depth", "state" => "queued").set(d.queued as f64);
    gauge!("dvc_bridge_outbox_depth", "state" => "parked").set(d.parked as f64);
    let oldest = d
        .oldest_queued_at
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or(0.0, |t| now.duration_since(t).as_secs_f64().max(0.0));
    gauge!("dvc_bridge_outbox_oldest_age_seconds").set(oldest);
    gauge!("dvc_bridge_progress_unsent").set(d.progress_unsent as f64);
    gauge!("dvc_bridge_dossiers").set(o.dossiers as f64);
    gauge!("dvc_bridge_dossiers_in_conflict").set(o.conflicts as f64);
    let horizon = settings.config.deadlines.at_risk_working_hours;
    let cutoff = deadlines::at_risk_cutoff(&settings.deadlines.calendar, now, horizon)?;
    let due = deadlines::overview(&conn, now, cutoff, horizon, 0)?;
    gauge!("dvc_bridge_dossiers_at_risk").set(due.at_risk as f64);
    gauge!("dvc_bridge_dossiers_overdue").set(due.overdue as f64);
    gauge!("dvc_bridge_dossiers_false_late", "state" => "open").set(due.false_late_open as f64);
    gauge!("dvc_bridge_dossiers_false_late", "state" => "ended").set(due.false_late_ended as f64);
    Ok(())
}
