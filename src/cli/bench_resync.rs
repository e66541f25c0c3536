//! `dvc-bridge bench resync`: what a full re-sync costs on a large store.
//!
//! An in-process simulated world holds every system's fixtures and `--dossiers` synthetic city
//! records, and makes no changes of its own. The bridge's configuration for it (as `demo` writes
//! it) is run through the operator's command, `dvc-bridge resync --all --now`, as a process of its
//! own: once on a fresh store (the first sync: every source walked into it, every case merged and
//! queued), then, after the portal's acknowledgement of every queued row has been recorded, once
//! more: the re-sync measured. Nothing changed in between, so it should queue nothing.
//!
//! The acknowledgements are recorded with the delivery task's own store calls
//! (`outbox::next_batch`, `mark_sent`, `ack_all`) without sending anything: the simulated portal
//! would have to hold every dossier object in memory, and at the reference rate limit (10 calls/s
//! of 20) a million take 83 minutes. Progress steps are marked sent in one statement.
//!
//! Each run's wall time is the child's, from its start to its exit; its peak memory is the
//! kernel's high-water mark (`VmHWM`) of the child, read every 100 ms while it runs; the split
//! between the walk and the merging is read from the request's progress in the store.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;

use crate::sim::{SimOptions, World};
use crate::store::{self, ingest, outbox};

#[derive(Debug, Args)]
pub struct ResyncArgs {
    /// Synthetic city records, besides every system's fixtures; each is a dossier of its own.
    #[arg(long, default_value_t = 1_000_000)]
    pub dossiers: usize,
    /// The city system's rate limit for the walks, in requests per second. The shipped
    /// descriptor's (10 requests of 100 records) is a courtesy to the production system, which
    /// caps a walk at 1,000 records/s; the default lifts it to measure the bridge.
    #[arg(long, default_value_t = 10_000)]
    pub rate_limit: u32,
    /// Records per page of the city system (default: the shipped descriptor's).
    #[arg(long)]
    pub page_size: Option<u32>,
    /// Keep the database, configuration and logs here (default: a temporary folder).
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
}

/// One `resync --all --now`, as the process that ran it saw it.
struct Run {
    wall: Duration,
    /// Until the request's progress first read "merging": the walks of every source.
    walk: Option<Duration>,
    peak_mib: f64,
    /// The request's outcome (`walked`, `dossiers`, `queued`, …).
    outcome: serde_json::Value,
    /// The database's size before and after, file and WAL, in MiB.
    mib: (f64, f64),
    /// Outbox rows and unsent progress steps, before and after.
    queue: (Queue, Queue),
}

/// What waits for the portal.
#[derive(Debug, Clone, Copy)]
struct Queue {
    outbox: i64,
    steps: i64,
}

impl Queue {
    fn read(db: &Path) -> anyhow::Result<Queue> {
        let conn = store::open_reader(db)?;
        let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
        Ok(Queue {
            outbox: count("SELECT COUNT(*) FROM outbox")?,
            steps: count("SELECT COUNT(*) FROM progress WHERE sent_at IS NULL")?,
        })
    }
}

impl Run {
    fn line(&self, what: &str) -> String {
        let o = &self.outcome;
        let walked: u64 = o["walked"].as_array().into_iter().flatten().filter_map(|w| w["records"].as_u64()).sum();
        let dossiers = o["dossiers"].as_u64().unwrap_or(0);
        let secs = self.wall.as_secs_f64();
        let split = match self.walk {
            Some(w) => format!(" (walks {:.1} s, merging {:.1} s)", w.as_secs_f64(), secs - w.as_secs_f64()),
            None => String::new(),
        };
        let (before, after) = self.queue;
        format!(
            "{what}: {walked} records walked, {dossiers} dossiers merged in {secs:.1} s{split}: {:.0} dossiers/s; \
             peak RSS {:.0} MiB; {} outbox rows queued ({} → {} in the outbox; {} by the merging), {} progress steps \
             ({} → {} unsent); database {:.0} → {:.0} MiB (file + WAL)",
            dossiers as f64 / secs,
            self.peak_mib,
            after.outbox - before.outbox,
            before.outbox,
            after.outbox,
            o["queued"].as_u64().unwrap_or(0),
            after.steps - before.steps,
            before.steps,
            after.steps,
            self.mib.0,
            self.mib.1,
        )
    }
}

/// The database's size, file and WAL, in MiB.
fn db_mib(db: &Path) -> f64 {
    let wal = db.with_extension("db-wal");
    let bytes: u64 = [db, wal.as_path()].iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    bytes as f64 / (1024.0 * 1024.0)
}

/// `dvc-bridge resync --all --now` on `config`, followed until it ends.
async fn resync_all(config: &Path, db: &Path, log: &Path) -> anyhow::Result<Run> {
    let (mib, queue) = (db_mib(db), Queue::read(db)?);
    let started = Instant::now();
    let mut child = super::bench::KillOnDrop(
        Command::new(std::env::current_exe()?)
            .args(["resync", "--all", "--now", "--json", "--by", "bench", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()?,
    );
    let pid = child.0.id().to_string();
    let (mut peak_mib, mut walk) = (0.0f64, None);
    let status = loop {
        if let Some(status) = child.0.try_wait()? {
            break status;
        }
        if let Some(mib) = super::bench::peak_rss_mib_of(&pid) {
            peak_mib = peak_mib.max(mib);
        }
        if walk.is_none() && phase(db).is_some_and(|p| p == "merging") {
            walk = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let wall = started.elapsed();
    let mut out = String::new();
    if let Some(mut stdout) = child.0.stdout.take() {
        stdout.read_to_string(&mut out)?;
    }
    anyhow::ensure!(
        status.success(),
        "`resync --all --now` ended with {status}: {}{}",
        out.trim(),
        std::fs::read_to_string(log).unwrap_or_default()
    );
    let request: serde_json::Value = serde_json::from_str(out.trim())?;
    Ok(Run {
        wall,
        walk,
        peak_mib,
        outcome: request["result"].clone(),
        mib: (mib, db_mib(db)),
        queue: (queue, Queue::read(db)?),
    })
}

/// The phase of the latest re-sync request, as its progress tells it.
fn phase(db: &Path) -> Option<String> {
    let conn = store::open_reader(db).ok()?;
    let result: Option<String> =
        conn.query_row("SELECT result FROM resync_requests ORDER BY id DESC LIMIT 1", [], |r| r.get(0)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&result?).ok()?;
    v["phase"].as_str().map(str::to_owned)
}

/// Records as the portal's every row the outbox holds, as the delivery task does for a batch it
/// sent, and marks every progress step of a live code sent. Returns the rows acknowledged.
fn acknowledge_everything(conn: &mut rusqlite::Connection, now: jiff::Timestamp) -> anyhow::Result<usize> {
    let mut acked = 0;
    loop {
        let rows = outbox::next_batch(conn, now, 1_000, outbox::Order::Edf)?;
        if rows.is_empty() {
            break;
        }
        outbox::mark_sent(conn, &rows, now)?;
        outbox::ack_all(conn, &rows, now)?;
        acked += rows.len();
    }
    conn.execute(
        "UPDATE progress SET sent_at = ?1
          WHERE sent_at IS NULL AND code IN (SELECT code FROM portal_state WHERE live = 1)",
        [store::ts(now)],
    )?;
    Ok(acked)
}

pub async fn run(args: &ResyncArgs, dir: &Path) -> anyhow::Result<()> {
    let t = Instant::now();
    let fixtures = super::demo::unpack_fixtures(dir)?;
    let mut opts = SimOptions::demo(fixtures, crate::clock::SimClock::starting_now(super::demo::demo_start(), 1.0));
    // No change of its own: a second full re-sync then finds nothing to do.
    opts.tick = Duration::ZERO;
    let world = World::start(opts.clone()).await?;
    world.bulk_load("city", args.dossiers)?;
    eprintln!("simulated world ready with {} bulk city records in {:.1} s", args.dossiers, t.elapsed().as_secs_f64());

    let config = super::demo::write_config(dir, &world, &opts, &super::demo::BridgeTuning::default())?;
    let descriptor = dir.join("adapters/city-igate.toml");
    let mut doc: toml::Table = toml::from_str(&std::fs::read_to_string(&descriptor)?)?;
    let mut set = |table: &str, key: &str, value: toml::Value| {
        if let Some(t) = doc.get_mut(table).and_then(|t| t.as_table_mut()) {
            t.insert(key.into(), value);
        }
    };
    set("http", "rate_limit_per_sec", i64::from(args.rate_limit).into());
    if let Some(size) = args.page_size {
        set("list", "page_size", i64::from(size).into());
    }
    std::fs::write(&descriptor, toml::to_string(&doc)?)?;
    let settings = crate::config::load(&config, true).map_err(|e| anyhow::anyhow!("configuration invalid:\n{e}"))?;
    let db = settings.db_path();
    let page_size =
        settings.sources.iter().find(|s| s.config.name == "city").map_or(0, |s| s.descriptor.list.page_size);
    // What the daemon does at its start: `resync --now` wants a store a daemon has opened.
    ingest::register_sources(&store::open_writer(&db)?, &crate::daemon::registered_sources(&settings))?;

    let first = resync_all(&config, &db, &dir.join("first-sync.log")).await?;
    println!("{}", first.line("first sync (fresh store)"));

    let t = Instant::now();
    let mut conn = store::open_writer(&db)?;
    let acked = acknowledge_everything(&mut conn, settings.clock().now())?;
    drop(conn);
    eprintln!("{acked} outbox rows recorded as acknowledged by the portal in {:.1} s", t.elapsed().as_secs_f64());

    let resync = resync_all(&config, &db, &dir.join("resync.log")).await?;
    println!(
        "{} (the city walked at up to {} requests/s of {page_size} records)",
        resync.line("re-sync (resync --all --now)"),
        args.rate_limit
    );
    world.shutdown().await;
    Ok(())
}
