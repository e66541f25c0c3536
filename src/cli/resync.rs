//! `dvc-bridge resync`: ask the running daemon to re-sync a scope, follow a request, or (with no
//! daemon running) carry it out here with `--now`.
//!
//! A request is a row in the store: the daemon takes it within about a second. `--now` takes the
//! writer lease first, so a daemon starting meanwhile waits for it (and a running daemon makes
//! `--now` refuse, pointing to the request route instead).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::{EXIT_DEGRADED, EXIT_ERROR, EXIT_OK};
use crate::config::Settings;
use crate::core::resync::Scope;
use crate::store::resync::{self, Request};
use crate::store::{self, Lease, Writer};

#[derive(Debug, Args)]
pub struct ResyncArgs {
    /// Dossier codes (the portal's or any member's): re-read, re-merged and pushed again.
    #[arg(long = "dossier", value_name = "CODE", num_args = 1..)]
    pub dossiers: Vec<String>,
    /// A source, walked again in full.
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// With --source: only cases the source updated since then (RFC 3339, or a date in Việt Nam time).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<Timestamp>,
    /// With --source: only cases the source updated until then.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<Timestamp>,
    /// Every case with a record of this procedure (MaTTHC).
    #[arg(long, value_name = "MaTTHC")]
    pub procedure: Option<String>,
    /// Quarantined records, mapped again with the current descriptors.
    #[arg(long)]
    pub quarantined: bool,
    /// Deliveries the portal rejected, sent again.
    #[arg(long)]
    pub parked: bool,
    /// Everything: every source walked, every case re-merged, quarantine and parked retried.
    #[arg(long)]
    pub all: bool,
    /// Who asks, for the sync log (default: $SUDO_USER, then $USER).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// Follow the request to its end, with its progress.
    #[arg(long)]
    pub wait: bool,
    /// No daemon is running: carry the request out in this process.
    #[arg(long)]
    pub now: bool,
    /// Report on a request instead (exit 0 done, 1 pending or running, 2 failed or unknown).
    #[arg(long, value_name = "ID", conflicts_with_all = ["dossiers", "source", "procedure", "quarantined", "parked", "all", "now"])]
    pub status: Option<i64>,
    /// Print the request as JSON.
    #[arg(long)]
    pub json: bool,
}

/// An RFC 3339 time, a local time in Việt Nam ("2026-03-04 15:30"), or a date meaning its
/// midnight in Việt Nam.
pub(super) fn parse_time(s: &str) -> Result<Timestamp, String> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    let local = |dt: jiff::civil::DateTime| {
        dt.to_zoned_datetime(crate::clock::vn_tz()).map(|z| z.timestamp()).map_err(|e| e.to_string())
    };
    if let Ok(dt) = s.replacen(' ', "T", 1).parse::<jiff::civil::DateTime>() {
        return local(dt);
    }
    let d: jiff::civil::Date = s.parse().map_err(|_| {
        format!("{s:?} is neither an RFC 3339 time, a local time (YYYY-MM-DD HH:MM) nor a date (YYYY-MM-DD)")
    })?;
    local(d.to_datetime(jiff::civil::Time::midnight()))
}

impl ResyncArgs {
    fn scope(&self) -> Scope {
        Scope {
            dossiers: self.dossiers.clone(),
            source: self.source.clone(),
            since: self.since,
            until: self.until,
            procedure: self.procedure.clone(),
            quarantined: self.quarantined,
            parked: self.parked,
            all: self.all,
            split: None,
            attest: None,
        }
    }

    fn by(&self) -> String {
        self.by
            .clone()
            .or_else(|| std::env::var("SUDO_USER").ok())
            .or_else(|| std::env::var("USER").ok())
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "operator".into())
    }
}

fn print(req: &Request, json: bool) {
    if json {
        println!("{}", serde_json::to_string(req).unwrap_or_default());
        return;
    }
    println!("re-sync #{}: {} ({})", req.id, req.state, req.scope.describe());
    println!("  requested by {} at {}", req.requested_by, req.requested_at);
    if let Some(t) = &req.started_at {
        println!("  started at {t}");
    }
    if let Some(t) = &req.finished_at {
        println!("  finished at {t}");
    }
    if let Some(r) = &req.result {
        println!("  {}", r);
    }
}

fn exit_for(req: &Request) -> u8 {
    match req.state.as_str() {
        "done" => EXIT_OK,
        "failed" => EXIT_ERROR,
        _ => EXIT_DEGRADED,
    }
}

/// One line of progress, drawn over itself.
fn draw(req: &Request) {
    let r = req.result.as_ref();
    let phase = r.and_then(|v| v["phase"].as_str()).unwrap_or(req.state.as_str()).to_string();
    let (done, total) =
        (r.and_then(|v| v["done"].as_u64()).unwrap_or(0), r.and_then(|v| v["total"].as_u64()).unwrap_or(0));
    let width = 30usize;
    let filled = if total == 0 { 0 } else { (done as usize * width / total as usize).min(width) };
    eprint!("\r[{}{}] {phase} {done}/{total}            ", "#".repeat(filled), " ".repeat(width - filled));
    let _ = std::io::stderr().flush();
}

/// Follow a request until it ends.
fn follow(conn: &rusqlite::Connection, id: i64, json: bool) -> anyhow::Result<u8> {
    loop {
        let req = resync::get(conn, id)?.ok_or_else(|| anyhow::anyhow!("no re-sync request #{id}"))?;
        if req.finished() {
            eprintln!();
            print(&req, json);
            return Ok(exit_for(&req));
        }
        draw(&req);
        std::thread::sleep(Duration::from_millis(300));
    }
}

async fn now(settings: Settings, scope: Scope, by: String, json: bool) -> anyhow::Result<u8> {
    let db = settings.db_path();
    let Some(lease) = Lease::try_acquire(&db)? else {
        anyhow::bail!(
            "a daemon (or another `resync --now`) holds the store: leave out --now and the running daemon carries the request out"
        );
    };
    let conn = store::open_writer(&db)?;
    let (writer, thread) = Writer::start(conn);
    let clock = settings.clock();
    let env = crate::resync::Env {
        ctx: Arc::new(crate::daemon::merge_ctx(&settings)),
        settings: Arc::new(settings),
        writer: writer.clone(),
        clock: clock.clone(),
    };
    let t = clock.now();
    let s = scope.clone();
    let b = by.clone();
    // Older pending requests are the daemon's to run, in order: refuse before storing this one.
    // With none, the request stored here is the oldest, and the one taken.
    let req = writer
        .call(move |c| {
            if let Some(older) = resync::oldest_pending(c)? {
                anyhow::bail!(
                    "older requests are pending (#{older} first): start the daemon to run them, then try again"
                );
            }
            resync::request(c, &s, &b, t)?;
            resync::take(c, t)?.ok_or_else(|| anyhow::anyhow!("the request vanished"))
        })
        .await?;
    let id = req.id;
    eprintln!("request #{id} by {by}; carrying it out here");
    let stop = CancellationToken::new();
    crate::resync::run_one(&env, &req, &stop).await;
    let done = writer.call(move |c| resync::get(c, id)).await?.ok_or_else(|| anyhow::anyhow!("no request #{id}"))?;
    drop(env);
    drop(writer);
    tokio::task::spawn_blocking(move || thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the store writer thread panicked"))?;
    drop(lease);
    print(&done, json);
    Ok(exit_for(&done))
}

pub fn main(file: &Path, args: &ResyncArgs) -> u8 {
    let settings = match crate::config::load(file, args.now) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dvc-bridge resync: the configuration has problems:\n{e}");
            return EXIT_ERROR;
        }
    };
    let result = (|| -> anyhow::Result<u8> {
        if let Some(id) = args.status {
            let conn = store::open_reader(&settings.db_path())?;
            let req = resync::get(&conn, id)?.ok_or_else(|| anyhow::anyhow!("no re-sync request #{id}"))?;
            print(&req, args.json);
            return Ok(exit_for(&req));
        }
        submit(settings, args.scope(), &args.by(), args.wait, args.now, args.json)
    })();
    result.unwrap_or_else(|e| super::fail(&e))
}

/// Hand a request to the running daemon (following it with `wait`), or carry it out here (`now`).
pub fn submit(settings: Settings, scope: Scope, by: &str, wait: bool, now_: bool, json: bool) -> anyhow::Result<u8> {
    let names: Vec<&str> = settings.sources.iter().map(|s| s.config.name.as_str()).collect();
    scope.check(&names).map_err(|e| anyhow::anyhow!(e))?;
    if now_ {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        return rt.block_on(now(settings, scope, by.to_string(), json));
    }
    let conn = store::open_requester(&settings.db_path())?;
    let id = resync::request(&conn, &scope, by, settings.clock().now())?;
    println!("request #{id}: {}", scope.describe());
    if Lease::try_acquire(&settings.db_path())?.is_some() {
        eprintln!("note: no daemon is running on this store; the request waits for it (or add --now)");
    }
    if wait { follow(&conn, id, json) } else { Ok(EXIT_OK) }
}
