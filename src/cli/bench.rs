//! `dvc-bridge bench ingest`: ingest throughput from the simulator into the store.
//!
//! The simulator runs as a process of its own (`dvc-bridge simulate --bulk`) so that the peak
//! memory reported is the bridge's alone. The bridge side is the production path: the source's
//! descriptor, HTTP over loopback, mapping, one transaction per page with linking, merging and
//! outbox rows, into a fresh SQLite file. One full walk is timed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use super::{EXIT_ERROR, EXIT_OK};
use crate::config::{Credentials, LoadedSource, PortalMode, SecretRef, SourceConfig};
use crate::core::descriptor::Descriptor;
use crate::core::mapping::Mapper;
use crate::source::Poller;
use crate::source::fetch::HttpFetch;
use crate::store::ingest::{self, MergeCtx};
use crate::store::{self, Writer};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Records per second from the simulated city system into the store, and peak memory.
    Ingest {
        /// Synthetic records the simulated system serves.
        #[arg(long, default_value_t = 100_000)]
        records: usize,
        /// Records per page requested.
        #[arg(long, default_value_t = 500)]
        page_size: u32,
        /// Keep the database here (default: a temporary folder).
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
    },
    /// Dossiers per second through the pure merge (authority, earliest receipt, field filling),
    /// with a share of the cases held in both a city and a ministry system.
    Merge {
        /// Cases to merge.
        #[arg(long, default_value_t = 1_000_000)]
        dossiers: usize,
        /// Share of the cases with a copy in both systems (0–1).
        #[arg(long, default_value_t = 0.1)]
        duplicated: f64,
    },
}

/// Peak resident memory of this process, from the kernel (`VmHWM`), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

struct Simulator(Child);

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `dvc-bridge simulate` with `records` bulk city records; returns it and the city URL.
fn start_simulator(records: usize) -> anyhow::Result<(Simulator, String)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["simulate", "--ports", "0", "0", "0", "--tick-ms", "0", "--bulk"])
        .arg(format!("city={records}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no simulator output"))?;
    let sim = Simulator(child);
    let mut city = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if line.starts_with("city ") {
            city = line.split_whitespace().last().map(str::to_string);
        }
        if line == "ready" {
            break;
        }
    }
    let city = city.ok_or_else(|| anyhow::anyhow!("the simulator did not report the city system's address"))?;
    Ok((sim, city))
}

async fn ingest(records: usize, page_size: u32, dir: &Path) -> anyhow::Result<()> {
    let t_load = Instant::now();
    let (_sim, city_url) = tokio::task::spawn_blocking(move || start_simulator(records)).await??;
    eprintln!("simulator ready with {records} bulk records in {:.1}s", t_load.elapsed().as_secs_f64());
    let text = super::demo::ADAPTERS.iter().find(|(n, _)| *n == "city-igate.toml").map(|(_, t)| *t).unwrap_or_default();
    let mut descriptor = Descriptor::parse(text).map_err(|e| anyhow::anyhow!("{}: {}", e.key, e.reason))?;
    descriptor.list.page_size = page_size;
    // The descriptor's rate limit is politeness towards a production system (10 requests/s for the
    // city's); the benchmark measures what the bridge itself can take in.
    descriptor.http.rate_limit_per_sec = 10_000;
    let key_file = dir.join("city-api-key");
    std::fs::write(
        &key_file,
        crate::sim::SimOptions::demo(
            Default::default(),
            crate::clock::SimClock::starting_now(super::demo::demo_start(), 1.0),
        )
        .city_api_key,
    )?;
    let config: SourceConfig = serde_json::from_value(serde_json::json!({"name": "city", "adapter": "city-igate"}))?;
    let source = LoadedSource {
        config: SourceConfig {
            credentials: Credentials { api_key: Some(SecretRef::File { file: key_file }), ..Credentials::default() },
            ..config
        },
        descriptor: descriptor.clone(),
        descriptor_path: "city-igate.toml".into(),
        base_url: city_url,
    };
    let db = dir.join("dvc-bridge.db");
    let conn = store::open_writer(&db)?;
    ingest::register_sources(&conn, &[("city".into(), "city-igate".into(), descriptor.kind, PortalMode::Push)])?;
    let (writer, thread) = Writer::start(conn);
    let ctx = Arc::new(MergeCtx {
        sources: [("city".to_string(), (descriptor.kind, PortalMode::Push))].into_iter().collect(),
        cutover: Default::default(),
        identity: None,
        // The shipped calendar and time limits: every dossier is reckoned, as in production.
        deadlines: Some(shipped_deadlines()?),
    });
    let clock: crate::clock::SharedClock = Arc::new(crate::clock::SystemClock);
    let mut poller =
        Poller::new("city", Mapper::new(descriptor), HttpFetch::new(&source)?, 300, clock, writer.clone(), ctx);
    let started = Instant::now();
    let report = poller.poll(&CancellationToken::new(), true).await?;
    let secs = started.elapsed().as_secs_f64();
    drop(poller);
    drop(writer);
    tokio::task::spawn_blocking(move || thread.join()).await?.map_err(|_| anyhow::anyhow!("writer thread panicked"))?;
    let size: u64 = ["dvc-bridge.db", "dvc-bridge.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "ingest: {} records in {} pages, {:.2} s: {:.0} records/s; peak RSS {:.0} MiB; database {:.0} MiB ({} new, {} quarantined, {} outbox rows)",
        report.records,
        report.pages,
        secs,
        f64::from(report.records) / secs,
        peak_rss_mib().unwrap_or(f64::NAN),
        size as f64 / (1024.0 * 1024.0),
        report.ingest.new,
        report.ingest.quarantined,
        report.ingest.enqueued
    );
    Ok(())
}

/// Cases are generated in chunks and merged as they come, so that memory stays flat; only the
/// merging is timed.
/// The calendar and time limits shipped in `config/`, built into the binary for the benchmarks.
fn shipped_deadlines() -> anyhow::Result<crate::core::deadline::DeadlineRules> {
    let calendar = crate::core::calendar::Calendar::parse(include_str!("../../config/calendar.toml"))
        .map_err(|e| anyhow::anyhow!("the shipped calendar: {e:?}"))?;
    let procedures = toml::from_str(include_str!("../../config/procedures.toml"))?;
    Ok(crate::core::deadline::DeadlineRules::new(calendar, procedures))
}

fn merge(dossiers: usize, duplicated: f64) -> anyhow::Result<()> {
    use crate::core::descriptor::SystemKind;
    use crate::core::merge::{self, Member, MergeOutcome};
    use crate::core::record::{Applicant, Procedure, SourceRecord};
    use crate::core::status::Status;
    anyhow::ensure!((0.0..=1.0).contains(&duplicated), "--duplicated is a share between 0 and 1");
    let cutover: crate::core::cutover::CutoverTable =
        toml::from_str("[[cutover]]\nsource = \"moj\"\nprocedure = \"*\"\ndate = \"2026-01-15\"\n")?;
    let base: jiff::Timestamp = "2026-01-01T01:00:00Z".parse()?;
    let deadlines = shipped_deadlines()?;
    let now: jiff::Timestamp = "2026-03-09T01:00:00Z".parse()?;
    let mut rng = fastrand::Rng::with_seed(7);
    let record = |source: &str, i: usize, code: String, rng: &mut fastrand::Rng| {
        let received = base + jiff::SignedDuration::from_mins(rng.i64(0..60 * 24 * 60));
        SourceRecord {
            source: source.into(),
            native_id: format!("{source}-{i}"),
            code,
            reference_codes: vec![],
            procedure: Procedure {
                code: "1.001193".into(),
                name: Some("Đăng ký khai sinh".into()),
                ..Default::default()
            },
            agency: Default::default(),
            applicant: Applicant {
                name: Some("Nguyễn Văn A".into()),
                id_number: Some(format!("0310{i:08}")),
                ..Default::default()
            },
            channel: Some(2),
            submitted_at: Some(received),
            received_at: Some(received),
            due_at: Some(received + jiff::SignedDuration::from_hours(24 * 7)),
            finished_at: None,
            returned_at: None,
            refused_at: None,
            updated_at: received + jiff::SignedDuration::from_hours(rng.i64(1..200)),
            status: [Status::Received, Status::Processing, Status::Finished][rng.usize(..3)],
            summary: None,
            supplements: vec![],
            steps: vec![],
            documents: vec![],
            results: vec![],
            fees: vec![],
            digitized: Some(true),
            paid_online: None,
            vneid_verified: None,
        }
    };
    const CHUNK: usize = 10_000;
    let (mut merged, mut pairs, mut timed) = (0usize, 0usize, std::time::Duration::ZERO);
    let mut i = 0;
    while i < dossiers {
        let n = CHUNK.min(dossiers - i);
        let cases: Vec<Vec<(SourceRecord, SystemKind)>> = (i..i + n)
            .map(|k| {
                let city = record("city", k, format!("H26.1-{k:08}"), &mut rng);
                if rng.f64() < duplicated {
                    let mut moj = record("moj", k, format!("BTP-{k:08}"), &mut rng);
                    moj.reference_codes = vec![city.code.clone()];
                    vec![(city, SystemKind::City), (moj, SystemKind::Ministry)]
                } else {
                    vec![(city, SystemKind::City)]
                }
            })
            .collect();
        let t = Instant::now();
        for case in &cases {
            let members: Vec<Member<'_>> = case.iter().map(|(r, k)| Member { record: r, kind: *k }).collect();
            if members.len() > 1 {
                pairs += usize::from(merge::link_rule(members[1].record, members[0].record).is_some());
            }
            // The merge, then the due-time reckoning of the canonical state, as the store does.
            if let Some(MergeOutcome::Ok(c)) = merge::merge(&members, &cutover, None) {
                let check = deadlines.check(&c.state, now);
                merged += usize::from(!c.portal_code.is_empty() && check.limit.is_some());
            }
        }
        timed += t.elapsed();
        i += n;
    }
    let secs = timed.as_secs_f64();
    println!(
        "merge: {merged} dossiers merged and reckoned ({pairs} held in two systems) in {secs:.2} s: {:.0} dossiers/s; peak RSS {:.0} MiB",
        merged as f64 / secs,
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}

pub fn main(args: &BenchArgs) -> u8 {
    super::init_tracing("warn", false);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return super::fail(&e.into()),
    };
    let result = rt.block_on(async {
        match &args.what {
            BenchWhat::Ingest { records, page_size, data_dir } => {
                let tmp = tempfile::tempdir()?;
                let dir = data_dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
                std::fs::create_dir_all(&dir)?;
                ingest(*records, *page_size, &dir).await
            }
            BenchWhat::Merge { dossiers, duplicated } => merge(*dossiers, *duplicated),
        }
    });
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("dvc-bridge bench: {e:#}");
            EXIT_ERROR
        }
    }
}
